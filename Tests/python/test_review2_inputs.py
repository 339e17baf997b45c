"""Review of input files on workers: a file replaced (renamed over, or rewritten with another
shape) between two kernel_to_zarr calls on the same long-lived workers."""
import os

import numpy as np
import pytest

import gatednet as gn

pytest.importorskip("distributed")
pytest.importorskip("zarr")
from distributed import Client, LocalCluster  # noqa: E402

from gatednet import distributed as gd  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c, \
            Client(c) as cl:
        yield cl


def test_workers_read_an_input_file_replaced_since_their_last_run(client, tmp_path):
    src = gn.Network(12, [16, 8], 3, regime="relu", seed=3)
    net = gn.Network(12, [16, 8], 3, regime="fixed_learnt", gate_source=src, seed=4)
    rng = np.random.default_rng(5)
    path = tmp_path / "x.npy"
    for step, (n, kind) in enumerate([(45, "npk"), (45, "npk"), (50, "npk"), (50, "ntk_value")]):
        x = rng.standard_normal((n, 12)).astype(np.float32)
        if step == 3:
            np.save(path, x)  # rewritten in place: the same file, new values
        else:
            np.save(tmp_path / "new.npy", x)
            os.replace(tmp_path / "new.npy", path)  # a new file renamed over the old one
        K = gd.kernel_to_zarr(net, path, tmp_path / f"K{step}.zarr", kind=kind, tile=16, client=client)
        np.testing.assert_allclose(K[...], np.asarray(net.kernel(x, None, kind)), rtol=2e-5, atol=1e-5,
                                   err_msg=f"step {step}")
