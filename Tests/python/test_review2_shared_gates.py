"""Review of the shared packed gates: calls where xb is xa's very memory (the library then computes
a symmetric kernel, whose gates_a serve both sides)."""
import numpy as np
import pytest

import gatednet as gn


def hard_net():
    src = gn.Network(12, [16, 8], 3, regime="relu", seed=3)
    return gn.Network(12, [16, 8], 3, regime="fixed_learnt", gate_source=src, seed=4)


@pytest.mark.parametrize("kind", ["npk", "npk_normalized", "overlap"])
def test_kernel_of_x_with_itself_takes_gates_of_either_side(kind):
    net = hard_net()
    x = np.random.default_rng(5).standard_normal((45, 12)).astype(np.float32)
    want = np.asarray(net.kernel(x, x, kind))
    g = np.asarray(net.packed_gates(x))
    for given in ({"gates_a": g, "gates_b": g.copy()}, {"gates_b": g}, {"gates_a": g}):
        got = np.asarray(net.kernel(x, x, kind, **given))
        np.testing.assert_array_equal(got, want, err_msg=str(sorted(given)))
        block = np.asarray(net.kernel(x, x, kind, rows=(3, 40), cols=(10, 45), **given))
        np.testing.assert_array_equal(block, want[3:40, 10:45], err_msg=str(sorted(given)))


def test_distinct_memory_with_equal_values_is_a_cross_kernel_and_takes_both():
    net = hard_net()
    x = np.random.default_rng(6).standard_normal((20, 12)).astype(np.float32)
    xc = x.copy()
    g, gc = np.asarray(net.packed_gates(x)), np.asarray(net.packed_gates(xc))
    want = np.asarray(net.kernel(x, xc, "npk"))
    np.testing.assert_array_equal(np.asarray(net.kernel(x, xc, "npk", gates_a=g, gates_b=gc)), want)
    # xb=None keeps its documented rule: gates_b must be None or gates_a itself
    with pytest.raises(gn.ArgumentError, match="gates_b"):
        net.kernel(x, None, "npk", gates_a=g, gates_b=g.copy())


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed")
    pytest.importorskip("zarr")
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c, \
            Client(c) as cl:
        yield cl


@pytest.mark.parametrize("resume", [False, True])
def test_cross_kernel_of_a_file_with_itself_on_workers(client, tmp_path, monkeypatch, resume):
    import zarr

    from gatednet import distributed as gd
    from gatednet.distributed import kernels

    net = hard_net()
    x = np.random.default_rng(5).standard_normal((45, 12)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    store = tmp_path / "K.zarr"
    want = np.asarray(net.kernel(x, x, "npk"))
    if resume:
        # a store with tiles (0, 0) and (1, 0) left to do: block b0 is shared, a0 is not, so
        # tile (0, 0) gets gates_b alone
        with monkeypatch.context() as m:
            m.setattr(kernels, "_gates_shareable", lambda *a: False)
            gd.kernel_to_zarr(net, path, store, xb=path, kind="npk", tile=16, client=client)
        g = zarr.open_group(str(store), mode="r+")
        g["done"][0, 0] = 0
        g["done"][1, 0] = 0
        g["kernel"][0:32, 0:16] = 0
        assert gd.tiles_done(store) == (7, 9)
    K = gd.kernel_to_zarr(net, path, store, xb=path, kind="npk", tile=16, client=client)
    np.testing.assert_array_equal(K[...], want)
    assert gd.tiles_done(store) == (9, 9)


def _gate_keys_in_memory(dask_scheduler):
    return sorted(str(k) for k, ts in dask_scheduler.tasks.items() if "gatednet-gates" in str(k) and ts.state == "memory")


def test_a_row_blocks_gates_are_freed_once_its_tiles_are_done(client, tmp_path):
    """Worker memory stays a few tiles whatever n is: a block's gates are not held after the
    last tile that takes them (they were held until every tile of the kernel was done)."""
    from gatednet import distributed as gd

    net = hard_net()
    x = np.random.default_rng(5).standard_normal((64, 12)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    seen = []

    def progress(done, total):
        if done == total:
            seen.append(client.run_on_scheduler(_gate_keys_in_memory))

    K = gd.kernel_to_zarr(net, path, tmp_path / "K.zarr", kind="npk", tile=16, client=client, progress=progress)
    np.testing.assert_array_equal(K[...], np.asarray(net.kernel(x, None, "npk")))
    assert seen == [[]], seen
