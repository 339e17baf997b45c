"""gatednet.distributed on real Dask components: a LocalCluster of processes, and a scheduler and
two workers started with the `dask scheduler` / `dask worker` commands."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import gatednet as gn

pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")
from distributed import Client, LocalCluster  # noqa: E402

from gatednet import distributed as gd  # noqa: E402

# Workers import this module's task functions by name: LocalCluster workers inherit sys.path;
# the processes started from the command line get PYTHONPATH (test_dask_scheduler_and_worker_commands).


@pytest.fixture
def client(cluster):
    with Client(cluster) as c:
        yield c


@pytest.fixture
def net():
    src = gn.Network(12, [16, 8], 3, regime="relu", seed=3)
    return gn.Network(12, [16, 8], 3, regime="fixed_learnt", gate_source=src, seed=4)


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((45, 12)).astype(np.float32)
    xt = rng.standard_normal((13, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    return x, xt, tmp_path / "x.npy"


# ---- tiled kernels ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, options", [
    ("npk", {}), ("npk_normalized", {}), ("npk_trace_normalized", {}), ("base", {"layer": 1}),
    ("overlap", {}), ("ntk_value", {"output": 1}), ("npk_limit", {}),
])
def test_symmetric_tiles_equal_one_library_call(client, net, data, tmp_path, kind, options):
    x, _, xpath = data
    K = gd.kernel_to_zarr(net, xpath, tmp_path / "K.zarr", kind=kind, tile=16, client=client, **options)
    want = np.asarray(net.kernel(x, None, kind, **options))
    got = K[...]
    assert got.shape == (45, 45) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6 * np.abs(want).max())
    np.testing.assert_array_equal(got, got.T)  # lower tiles are the upper ones transposed
    assert gd.tiles_done(tmp_path / "K.zarr") == (6, 6)  # 3 x 3 tiles, upper triangle only


@pytest.mark.parametrize("kind, options, xb", [
    ("npk_normalized", {}, None), ("npk", {}, None), ("overlap", {}, None), ("base", {"layer": 1}, None),
    ("npk", {}, "xt"),
])
def test_tiles_share_each_row_blocks_gates(client, net, data, tmp_path, monkeypatch, kind, options, xb):
    from distributed import get_task_stream

    from gatednet.distributed import kernels

    x, xt, xpath = data
    xb = None if xb is None else xt
    with get_task_stream(client) as stream:
        K = gd.kernel_to_zarr(net, xpath, tmp_path / "K.zarr", xb=xb, kind=kind, tile=16, client=client, **options)[...]
    names = [t["key"].split("-")[1] for t in stream.data]
    # symmetric: 3 row blocks, each in 3 of the 6 tiles; x by xt: xt's one block is in all 3
    # tiles, each block of x in one (its tile computes those gates itself)
    assert names.count("gates") == (3 if xb is None else 1), names
    assert names.count("tile") == (6 if xb is None else 3)
    monkeypatch.setattr(kernels, "_gates_shareable", lambda *a: False)
    with get_task_stream(client) as stream:
        own = gd.kernel_to_zarr(net, xpath, tmp_path / "own.zarr", xb=xb, kind=kind, tile=16, client=client,
                                **options)[...]
    assert not [t for t in stream.data if "gates" in t["key"]]
    np.testing.assert_array_equal(K, own)  # given gates are the gates: the same bits
    want = np.asarray(net.kernel(x, xb, kind, **options))
    np.testing.assert_allclose(K, want, rtol=2e-5, atol=1e-6 * np.abs(want).max())


def test_kernels_that_cannot_share_gates_compute_their_own(client, data, tmp_path):
    from distributed import get_task_stream

    x, _, xpath = data
    soft = gn.Network(12, [16, 8], 3, regime="decoupled", seed=2)
    hard = gn.Network(12, [16, 8], 3, regime="fixed_random_ii", seed=2)
    for net, kind in ((soft, "npk"), (hard, "npk_trace_normalized"), (hard, "ntk_value"), (hard, "input_gram")):
        with get_task_stream(client) as stream:
            K = gd.kernel_to_zarr(net, xpath, tmp_path / f"{kind}.zarr", kind=kind, tile=16, client=client,
                                  overwrite=True)[...]
        assert not [t for t in stream.data if "gates" in t["key"]], (net.regime, kind)
        np.testing.assert_allclose(K, np.asarray(net.kernel(x, None, kind)), rtol=2e-5, atol=1e-5)


def test_cross_kernel_scattered_inputs_and_lazy_array(client, net, data, tmp_path):
    x, xt, xpath = data
    K = gd.kernel_to_zarr(net.to_bytes(), xt, tmp_path / "Kt.zarr", xb=xpath, kind="npk", tile=8, client=client)
    want = np.asarray(net.npk(xt, x))
    np.testing.assert_allclose(K[...], want, rtol=2e-5)
    lazy = gd.kernel_array(net, xt, xb=x, kind="npk", tile=8)
    assert lazy.chunks == ((8, 5), (8,) * 5 + (5,))
    np.testing.assert_array_equal(lazy.compute(scheduler="sync"), K[...])
    sym = gd.kernel_array(net, xpath, kind="npk", tile=16)
    np.testing.assert_array_equal(client.compute(sym).result(),
                                  gd.kernel_to_zarr(net, xpath, tmp_path / "K.zarr", tile=16, client=client)[...])


def test_conv_network_tiles(client, tmp_path):
    net = gn.ConvNetwork([("conv", 4, 3, 1, "circular"), ("conv", 4, 3, 1, "circular"), ("gap",), ("dense", 3)],
                         (5, 5, 1), regime="relu", seed=2)
    x = np.random.default_rng(1).standard_normal((19, 5, 5, 1)).astype(np.float32)
    path = tmp_path / "conv.gn"
    net.save(path)
    K = gd.kernel_to_zarr(path, x, tmp_path / "K.zarr", kind="npk", tile=7, client=client)
    np.testing.assert_allclose(K[...], np.asarray(net.npk(x)), rtol=2e-5)
    with pytest.raises(ValueError, match="not a ConvNetwork kernel"):
        gd.kernel_to_zarr(path, x, tmp_path / "K2.zarr", kind="ntk", client=client)


def test_tile_for_and_connect_check_their_arguments():
    for args, message in (((0,), "n_a: expected a whole number >= 1, got 0"),
                          ((100, 0), "n_b: expected a whole number >= 1, got 0"),
                          ((100, None, 0), "workers: expected a whole number >= 1, got 0"),
                          ((100, None, 2.5), "workers: expected a whole number >= 1, got 2.5")):
        with pytest.raises(ValueError, match=message):
            gd.tile_for(*args)
    for timeout in (-1, 0, float("nan"), float("inf"), "10"):
        with pytest.raises(ValueError, match="timeout: expected a finite number of seconds > 0"):
            gd.connect("tcp://127.0.0.1:9", timeout=timeout)


def test_tile_for_balances_workers_and_bounds_memory():
    # n = 10,000 on 2 workers: two row panels; tile (0, 1) on one worker, the two half-cost
    # diagonal tiles on the other.
    assert gd.tile_for(10000, None, workers=2) == 5000
    assert gd.tile_for(10000, None, workers=1) == 5000  # ceil(10000 / 8192) = 2 panels
    assert gd.tile_for(5000, None, workers=1) == 5000   # one call, as the library alone
    for n, w in [(60000, 2), (20000, 2), (100000, 4), (7, 3), (12345, 5)]:
        t = gd.tile_for(n, None, workers=w)
        assert 1 <= t <= 8192
        from gatednet.distributed.kernels import _longest_first, _tile_costs
        costs = _tile_costs(n, n, True, t)
        _, makespan = _longest_first(costs, w)
        assert makespan * w <= 1.25 * sum(c for c, _ in costs) or n < 10
    t = gd.tile_for(10000, 60000, workers=2)  # a cross kernel: square tiles, edge bounded
    assert t <= 8192 and -(-10000 // t) * -(-60000 // t) % 2 == 0


def test_chunk_files_are_raw_and_passes_read_upper_tiles(client, net, tmp_path):
    from gatednet.distributed._chunks import RawChunks
    from gatednet.distributed.ridge import _Operator

    x = np.random.default_rng(8).standard_normal((37, 12)).astype(np.float32)
    K = gd.kernel_to_zarr(net, x, tmp_path / "K.zarr", kind="npk_normalized", tile=10, client=client)
    want = np.asarray(net.kernel(x, None, "npk_normalized"))
    raw = RawChunks.of(K)
    assert raw is not None and raw.chunks == (10, 10)
    np.testing.assert_array_equal(raw.read(3, 1), K[30:37, 10:20])  # a mapped edge chunk
    assert not list((tmp_path / "K.zarr").rglob("*.partial"))
    # workers reuse chunk buffers from tile to tile: an edge chunk's padding is still the fill value
    for i, j in ((3, 0), (3, 3), (0, 3)):
        padded = np.fromfile(raw.path(i, j), dtype="<f4").reshape(10, 10)
        rows, cols = min(10, 37 - 10 * i), min(10, 37 - 10 * j)
        assert not padded[rows:, :].any() and not padded[:, cols:].any()
        np.testing.assert_array_equal(padded[:rows, :cols], K[10 * i:10 * i + rows, 10 * j:10 * j + cols])
    np.testing.assert_array_equal(K[...], K[...].T)
    np.testing.assert_allclose(K[...], want, rtol=2e-5, atol=1e-7)
    P = np.random.default_rng(1).standard_normal((37, 3))
    exact = K[...].astype(np.float64) @ P
    for c in (None, client):
        op = _Operator(tmp_path / "K.zarr", c)
        assert op.symmetric  # reads the 10 upper tiles only, each off-diagonal one twice used
        np.testing.assert_allclose(op.matmul(P), exact, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(op.matmul(P, sketch=True), exact, rtol=1e-4, atol=1e-5)
        cols = np.array([0, 4, 9, 10, 23, 36])  # both sides of tile edges; a mirrored read
        np.testing.assert_array_equal(op.columns(cols), K[...][:, cols])
    Kt = gd.kernel_to_zarr(net, x[:13], tmp_path / "Kt.zarr", xb=x, kind="npk_normalized", tile=10, client=client)
    np.testing.assert_allclose(_Operator(tmp_path / "Kt.zarr", client).matmul(P), Kt[...].astype(np.float64) @ P,
                               rtol=1e-12, atol=1e-12)


# ---- fault tolerance ----------------------------------------------------------------------------

def uninterrupted(net, x, tile):
    """The same tiles computed in this process in one go (dask's synchronous scheduler)."""
    return gd.kernel_array(net, x, kind="npk", tile=tile).compute(scheduler="sync")


def test_restarted_client_resumes_and_matches_uninterrupted_run(cluster, net, data, tmp_path):
    x, _, xpath = data
    full = uninterrupted(net, xpath, 8)

    class Stop(Exception):
        pass

    def stop_after_three(done, total):
        if done >= 3:
            raise Stop

    with Client(cluster) as c:  # the client dies mid-run
        with pytest.raises(Stop):
            gd.kernel_to_zarr(net, xpath, tmp_path / "K.zarr", kind="npk", tile=8, client=c,
                              progress=stop_after_three)
    finished, total = gd.tiles_done(tmp_path / "K.zarr")
    assert 3 <= finished < total == 21  # 6 x 6 tiles, upper triangle
    seen = []
    with Client(cluster) as c:  # a new client resumes: finished tiles are skipped
        K = gd.kernel_to_zarr(net, xpath, tmp_path / "K.zarr", kind="npk", tile=8, client=c,
                              progress=lambda d, t: seen.append(d))
    assert seen[0] >= finished and seen[-1] == total and len(seen) <= total - finished + 1
    np.testing.assert_array_equal(K[...], full)  # bit for bit


def test_killed_worker_process_run_completes_bit_for_bit(net, tmp_path):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((72, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ref = uninterrupted(net, tmp_path / "x.npy", 6)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cl, \
            Client(cl) as c:
        pids = list(c.run(os.getpid).values())
        # the kill below then lands mid-run however fast the machine is (the 78 tiles otherwise
        # finish in milliseconds)
        c.run(slow_tiles)
        state = {}

        def run():
            try:
                state["K"] = gd.kernel_to_zarr(net, tmp_path / "x.npy", tmp_path / "K.zarr", tile=6, client=c)[...]
            except BaseException as e:  # reported below
                state["error"] = e

        t = threading.Thread(target=run)
        t.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (tmp_path / "K.zarr").exists():
                try:
                    finished, total = gd.tiles_done(tmp_path / "K.zarr")
                except Exception:
                    finished = 0
                if finished >= 5:
                    break
            time.sleep(0.01)
        os.kill(pids[0], signal.SIGKILL)  # the worker process dies mid-run
        killed_at, total = gd.tiles_done(tmp_path / "K.zarr")
        t.join(120)
        assert not t.is_alive() and "error" not in state, state.get("error")
    assert killed_at < total == 78  # 12 x 12 tiles, upper triangle
    np.testing.assert_array_equal(state["K"], ref)


# ---- bad input ---------------------------------------------------------------------------------

def test_bad_inputs_fail_before_work_and_keep_what_was_written(client, net, data, tmp_path):
    x, _, xpath = data
    good = gd.kernel_to_zarr(net, xpath, tmp_path / "K.zarr", tile=16, client=client)[...]
    before = {p: p.read_bytes() for p in (tmp_path / "K.zarr").rglob("*") if p.is_file()}

    # a store holding another shape, dtype or computation
    with pytest.raises(ValueError, match=r"shape \(45, 45\) .*needs shape \(40, 40\)"):
        gd.kernel_to_zarr(net, x[:40], tmp_path / "K.zarr", tile=16, client=client)
    with pytest.raises(ValueError, match="another computation.*kind"):
        gd.kernel_to_zarr(net, xpath, tmp_path / "K.zarr", kind="overlap", tile=16, client=client)
    g = zarr.open_group(tmp_path / "f64.zarr", mode="w")
    g.create_array("kernel", shape=(45, 45), chunks=(16, 16), dtype="float64")
    with pytest.raises(ValueError, match="dtype float64.*float32"):
        gd.kernel_to_zarr(net, xpath, tmp_path / "f64.zarr", tile=16, client=client)
    zarr.open_array(tmp_path / "plain.zarr", mode="w", shape=(3,), dtype="f4")
    with pytest.raises(ValueError, match="not a zarr group"):
        gd.kernel_to_zarr(net, xpath, tmp_path / "plain.zarr", tile=16, client=client)

    # a network file that is not ours, or damaged
    (tmp_path / "other.bin").write_bytes(b"PK\x03\x04 a zip, not a network" * 10)
    with pytest.raises(ValueError, match="not a gatednet network file"):
        gd.kernel_to_zarr(tmp_path / "other.bin", xpath, tmp_path / "new.zarr", client=client)
    blob = bytearray(net.to_bytes())
    blob[40] ^= 0xFF
    with pytest.raises(gn.CorruptFileError):
        gd.kernel_to_zarr(bytes(blob), xpath, tmp_path / "new.zarr", client=client)

    # inputs with NaN, in memory or in a file; wrong width
    bad = x.copy()
    bad[30, 2] = np.nan
    with pytest.raises(ValueError, match="row 30 contains NaN"):
        gd.kernel_to_zarr(net, bad, tmp_path / "new.zarr", client=client)
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match="row 30 contains NaN"):
        gd.kernel_to_zarr(net, tmp_path / "bad.npy", tmp_path / "new.zarr", client=client)
    with pytest.raises(ValueError, match="rows of 11 values, the network takes 12"):
        gd.kernel_to_zarr(net, x[:, :11], tmp_path / "new.zarr", client=client)
    assert not (tmp_path / "new.zarr").exists()

    # a scheduler that does not answer
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match=r"no Dask scheduler answered at 'tcp://127.0.0.1:9' within 2 s"):
        gd.connect("tcp://127.0.0.1:9", timeout=2)
    assert time.monotonic() - t0 < 15
    with pytest.raises(ConnectionError, match="within 1 s"):
        gd.DaskExecutor("tcp://127.0.0.1:9", timeout=1).run(tasks_of(train_tiny, [0]), print)

    after = {p: p.read_bytes() for p in (tmp_path / "K.zarr").rglob("*") if p.is_file()}
    assert after == before
    np.testing.assert_array_equal(zarr.open_group(tmp_path / "K.zarr")["kernel"][...], good)


def test_store_holds_the_network_and_workers_read_it_without_a_scatter(client, net, data, tmp_path, monkeypatch):
    x, _, xpath = data
    scattered = []
    real = client.scatter
    monkeypatch.setattr(client, "scatter", lambda d, **kw: scattered.append(d) or real(d, **kw))
    K = gd.kernel_to_zarr(net, xpath, tmp_path / "K.zarr", tile=16, client=client)
    assert scattered == []  # a file input travels as its path, the network in the store
    back = gd.stored_network(tmp_path / "K.zarr")
    assert type(back) is gn.Network and back.to_bytes() == net.to_bytes()
    np.testing.assert_array_equal(K[...], np.asarray(back.kernel(x, None, "npk")))
    # the stored bytes are checked against the store's record
    g = zarr.open_group(tmp_path / "K.zarr", mode="r+")
    blob = g["network"][...]
    blob[100] ^= 1
    g["network"][...] = blob
    with pytest.raises(ValueError, match="does not match its recorded SHA-256"):
        gd.stored_network(tmp_path / "K.zarr")
    from gatednet.distributed import _common
    monkeypatch.setattr(_common, "_NETS", {})  # a worker that has not cached this network yet
    with pytest.raises(ValueError, match="do not match their recorded SHA-256"):
        _common.worker_network(lambda: blob.tobytes(), "Network",
                               zarr.open_group(tmp_path / "K.zarr").attrs["gatednet"]["network_sha256"])


def test_interrupted_store_creation_is_redone_and_a_started_store_is_kept(client, net, data, tmp_path):
    x, _, xpath = data
    from gatednet.distributed import kernels

    # a client killed between creating the arrays and writing the attributes: created again
    plan, blob, _, _, _ = kernels._plan(net, xpath, "npk", None, 16, 0, None, "auto", False)
    kernels._create_store(str(tmp_path / "K.zarr"), plan, blob)[2].result()
    with pytest.raises(ValueError, match="not a finished gatednet kernel store"):
        gd.stored_network(tmp_path / "K.zarr")
    K = gd.kernel_to_zarr(net, xpath, tmp_path / "K.zarr", tile=16, client=client)
    np.testing.assert_array_equal(K[...], np.asarray(net.kernel(x, None, "npk")))
    attrs = zarr.open_group(tmp_path / "K.zarr").attrs["gatednet"]
    assert len(attrs["inputs_sha256"]) == 64  # recorded once the tiles were sent
    # a client that stopped after sending the tiles but before recording the inputs' digest
    g = zarr.open_group(tmp_path / "K.zarr", mode="r+")
    g.attrs["gatednet"] = dict(attrs, inputs_sha256=None)
    with pytest.raises(ValueError, match="stopped before recording its inputs' digest; overwrite=True"):
        gd.kernel_to_zarr(net, xpath, tmp_path / "K.zarr", tile=16, client=client)
    K = gd.kernel_to_zarr(net, xpath, tmp_path / "K.zarr", tile=16, client=client, overwrite=True)
    assert zarr.open_group(tmp_path / "K.zarr").attrs["gatednet"] == attrs
    # killed earlier: an empty group, or only the network array so far: created again too
    for n, arrays in enumerate(([], ["network"])):
        g = zarr.open_group(tmp_path / f"E{n}.zarr", mode="w")
        for name in arrays:
            g.create_array(name, shape=(len(blob),), dtype="uint8")
        K = gd.kernel_to_zarr(net, xpath, tmp_path / f"E{n}.zarr", tile=16, client=client)
        np.testing.assert_array_equal(K[...], np.asarray(net.kernel(x, None, "npk")))
    # a group holding anything else, or a kernel array without our network, is not ours to delete
    for n, names in enumerate((["kernel"], ["network", "mine"])):
        g = zarr.open_group(tmp_path / f"U{n}.zarr", mode="w")
        for name in names:
            g.create_array(name, shape=(45, 45), dtype="float32")
        with pytest.raises(ValueError):
            gd.kernel_to_zarr(net, xpath, tmp_path / f"U{n}.zarr", tile=16, client=client)
        assert set(zarr.open_group(tmp_path / f"U{n}.zarr").array_keys()) == set(names)
    # the same layout with a tile marked done is not ours to delete
    kernels._create_store(str(tmp_path / "L.zarr"), plan, blob)[2].result()
    zarr.open_group(tmp_path / "L.zarr", mode="r+")["done"][0, 0] = 1
    with pytest.raises(ValueError, match="not a gatednet kernel store"):
        gd.kernel_to_zarr(net, xpath, tmp_path / "L.zarr", tile=16, client=client)
    assert zarr.open_group(tmp_path / "L.zarr")["done"][0, 0] == 1


def test_inputs_digest_covers_every_segment(monkeypatch, tmp_path):
    from gatednet.distributed import _common

    monkeypatch.setattr(_common, "DIGEST_SEGMENT", 4096)  # 9 segments, hashed on two threads
    x = np.random.default_rng(0).standard_normal((300, 30)).astype(np.float32)
    d0 = _common.Inputs(x, "x", 30).digest()
    np.save(tmp_path / "x.npy", x)
    assert _common.Inputs(tmp_path / "x.npy", "x", 30).digest() == d0  # a file and an array agree
    for row in (0, 150, 299):  # first, a middle and the last segment
        y = x.copy()
        y[row, 7] = np.nextafter(y[row, 7], np.inf)
        assert _common.Inputs(y, "x", 30).digest() != d0
    assert _common.Inputs(x.reshape(600, 15), "x", 15).digest() != d0  # same bytes, other shape
    monkeypatch.setattr(_common, "DIGEST_SEGMENT", 1 << 24)
    assert _common.Inputs(x, "x", 30).digest() != d0  # the segment size is part of the format


def test_an_unchanged_input_file_is_checked_and_hashed_once(monkeypatch, tmp_path):
    from gatednet.distributed import _common

    monkeypatch.setattr(_common, "_CHECKED_FILES", {})
    x = np.random.default_rng(1).standard_normal((50, 6)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    d0 = _common.Inputs(x, "x", 6).digest()
    # just written: not remembered (a change in the same timestamp tick would go unseen)
    assert _common.Inputs(path, "x", 6).digest() == d0 and not _common._CHECKED_FILES
    old = time.time() - 10
    os.utime(path, (old, old))  # settled (the change time moves too, to now: see below)
    monkeypatch.setattr(_common, "FILE_SETTLED", 0.0)
    assert _common.Inputs(path, "x", 6).digest() == d0
    assert list(_common._CHECKED_FILES.values()) == [d0]
    scans = []
    with monkeypatch.context() as m:
        m.setattr(_common.np, "isfinite", lambda a: scans.append(1) or np.ones(a.shape, bool))
        assert _common.Inputs(path, "x", 6).digest() == d0 and not scans  # neither scanned nor hashed again
    # the same file changed in place (same size, same mtime set back): its change time moved
    bad = x.copy()
    bad[7, 2] = np.nan
    np.save(path, bad)
    os.utime(path, (old, old))
    with pytest.raises(ValueError, match="row 7 contains NaN"):
        _common.Inputs(path, "x", 6)
    np.save(path, x + 1)
    assert _common.Inputs(path, "x", 6).digest() == _common.Inputs(x + 1, "x", 6).digest() != d0


def test_a_store_made_again_at_a_path_is_reopened_by_the_workers(client, net, data, tmp_path):
    x, _, xpath = data
    store = tmp_path / "K.zarr"
    gd.kernel_to_zarr(net, xpath, store, kind="npk", tile=16, client=client)
    # same path, another shape and tile: the workers' open arrays of the first store must not be used
    np.save(tmp_path / "x2.npy", x[:30])
    K = gd.kernel_to_zarr(net, tmp_path / "x2.npy", store, kind="npk_normalized", tile=7, client=client,
                          overwrite=True)
    want = np.asarray(net.kernel(x[:30], None, "npk_normalized"))
    np.testing.assert_allclose(K[...], want, rtol=2e-5, atol=1e-6)
    assert gd.tiles_done(store) == (15, 15)
    done = zarr.open_group(str(store), mode="r")["done"]
    assert done.shape == (5, 5) and done[...].sum() == 15  # markers written as zarr reads them


# ---- kernel ridge beyond memory -----------------------------------------------------------------

def test_out_of_range_layer_or_output_fail_before_the_store_is_made(client, net, data, tmp_path):
    x, _, _ = data
    for n, (options, name) in enumerate((({"layer": 99}, "layer"), ({"output": 7}, "output"))):
        store = tmp_path / f"K{n}.zarr"
        with pytest.raises(ValueError, match=name):
            gd.kernel_to_zarr(net, x, store, client=client, **options)
        assert not store.exists()
        with pytest.raises(ValueError, match=name):
            gd.kernel_array(net, x, **options)
    # a kind this network cannot give (hard gates pass no gradient to the feature weights)
    with pytest.raises(gn.GatedNetError, match="(?i)soft gates|unsupported|frozen"):
        gd.kernel_to_zarr(net, x, tmp_path / "K9.zarr", kind="ntk_feature", client=client)
    assert not (tmp_path / "K9.zarr").exists()


def test_ridge_on_zarr_matches_dense_solve(client, tmp_path):
    import dask
    from scipy.linalg import solve

    rng = np.random.default_rng(2)
    x = rng.standard_normal((150, 10)).astype(np.float32)
    xt = rng.standard_normal((31, 10)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 0)
    net = gn.Network(10, [32, 32], 3, regime="fixed_random_ii", seed=1)
    gd.kernel_to_zarr(net, x, tmp_path / "K.zarr", kind="npk_normalized", tile=64, client=client)
    gd.kernel_to_zarr(net, xt, tmp_path / "Kt.zarr", xb=x, kind="npk_normalized", tile=64, client=client)
    K = np.asarray(net.npk(x, normalized=True), dtype=np.float64)
    Kt = np.asarray(net.npk(xt, x, normalized=True), dtype=np.float64)
    T = np.asarray(gn.kernel_targets(y, 3))
    diag = gd.kernel_diagonal(tmp_path / "K.zarr", client=client)
    np.testing.assert_allclose(diag, np.diag(K), rtol=1e-5)
    ridge = 1e-3 * diag.mean()
    dense = solve(K + ridge * np.eye(150), T, assume_a="pos")
    # passes over K as one Dask task per row panel of tiles, on the cluster
    on_cluster, info = gd.ridge_fit(tmp_path / "K.zarr", T, ridge, rank=40, tol=1e-5, client=client)
    assert info["residual"] <= 1e-5
    np.testing.assert_allclose(on_cluster, dense, rtol=1e-2, atol=1e-4 * np.abs(dense).max())
    with dask.config.set(scheduler="threads"):  # the same passes in this process (fast for a test)
        alpha, info = gd.ridge_fit(tmp_path / "K.zarr", T, ridge, rank=40, tol=1e-9)
        assert info["residual"] <= 1e-9
        np.testing.assert_allclose(alpha, dense, rtol=1e-4, atol=1e-6 * np.abs(dense).max())
        f32, info32 = gd.ridge_fit(tmp_path / "K.zarr", T, ridge, rank=40, tol=1e-4, products="float32")
        assert info32["residual"] <= 1e-3  # measured with a float64 pass after the float32 CG
        np.testing.assert_allclose(f32, dense, rtol=1e-2, atol=1e-3 * np.abs(dense).max())
        gauss, _ = gd.ridge_fit(tmp_path / "K.zarr", T, ridge, rank=40, tol=1e-9, sketch="gaussian")
        np.testing.assert_allclose(gauss, dense, rtol=1e-4, atol=1e-6 * np.abs(dense).max())
        _, plain = gd.ridge_fit(tmp_path / "K.zarr", T, ridge, rank=0, tol=1e-9, max_iter=info["passes"])
        assert plain["residual"] > 10 * info["residual"]  # the preconditioner saves passes
        lazy_kernel = gd.kernel_array(net, x, kind="npk_normalized", tile=64).persist(scheduler="sync")
        lazy, _ = gd.ridge_fit(lazy_kernel, T, ridge, rank=40, tol=1e-9)
        np.testing.assert_allclose(lazy, alpha, rtol=1e-6, atol=1e-9 * np.abs(dense).max())  # same K
        single, _ = gd.ridge_fit(lazy_kernel, T[:, 1], ridge, rank=40, tol=1e-9)
        assert single.shape == (150,)
        np.testing.assert_allclose(single, dense[:, 1], rtol=1e-4, atol=1e-6 * np.abs(dense).max())
    lib, _ = gn.kernel_ridge_fit(np.asarray(K, np.float32), T, ridge)
    np.testing.assert_allclose(alpha, np.asarray(lib), rtol=2e-3, atol=1e-4 * np.abs(dense).max())
    scores = gd.ridge_predict(tmp_path / "Kt.zarr", alpha, client=client)
    np.testing.assert_allclose(scores, Kt @ dense, rtol=1e-4, atol=1e-6)


def test_ridge_arguments_are_checked_before_any_pass():
    import dask

    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 10)).astype(np.float32)
    net = gn.Network(10, [16], 3, regime="fixed_random_ii", seed=1)
    T = np.asarray(gn.kernel_targets(rng.integers(0, 3, 40).astype(np.int32), 3))
    with dask.config.set(scheduler="sync"):
        K = gd.kernel_array(net, x, kind="npk_normalized", tile=16).persist()
        for options, message in (({"rank": -3}, "rank: expected a whole number >= 0, got -3"),
                                 ({"rank": 2.5}, "rank: expected a whole number"),
                                 ({"max_iter": -1}, "max_iter: expected a whole number >= 0"),
                                 ({"tol": float("nan")}, "tol: expected a finite number >= 0"),
                                 ({"tol": -1e-3}, "tol: expected a finite number >= 0"),
                                 ({"sketch": "svd"}, "sketch: expected 'columns' or 'gaussian', got 'svd'")):
            with pytest.raises(ValueError, match=message):
                gd.ridge_fit(K, T, 1e-3, **options)
        alpha, info = gd.ridge_fit(K, T, 1e-3, rank=0, max_iter=0)  # the boundary values are valid
        assert info["passes"] <= 1 and alpha.shape == (40, 3)


def test_ridge_solves_an_all_zero_target_column_and_refuses_a_non_finite_kernel():
    import dask
    import dask.array as da
    from scipy.linalg import solve

    rng = np.random.default_rng(4)
    A = rng.standard_normal((30, 30))
    K = (A @ A.T / 30 + 0.1 * np.eye(30)).astype(np.float32)
    T = np.stack([rng.standard_normal(30), np.zeros(30)], axis=1)  # e.g. a class absent from a subset
    dense = solve(K.astype(np.float64) + 1e-2 * np.eye(30), T, assume_a="pos")
    with dask.config.set(scheduler="sync"):
        for block in (True, False):
            for rank in (0, 5):
                alpha, info = gd.ridge_fit(da.from_array(K, chunks=10), T, 1e-2, rank=rank, block=block, tol=1e-9)
                assert info["residual"] <= 1e-9, (block, rank, info)  # was NaN for block=False
                np.testing.assert_allclose(alpha, dense, rtol=1e-6, atol=1e-9)
                assert not alpha[:, 1].any()
        bad = K.copy()
        bad[3, 4] = bad[4, 3] = np.nan
        for block in (True, False):
            for rank in (0, 5):  # was NaN coefficients, or LinAlgError / scipy's ValueError deep inside
                with pytest.raises(ValueError, match="kernel: holds NaN or Inf"):
                    gd.ridge_fit(da.from_array(bad, chunks=10), T, 1e-2, rank=rank, block=block)
        for ridge in (True, np.array([1.0, 2.0]), "1", None, 0.0, float("inf")):
            with pytest.raises(ValueError, match="ridge: expected a finite number > 0"):
                gd.ridge_fit(da.from_array(K, chunks=10), T, ridge)
        for seed in (-1, 1.5, True):
            with pytest.raises(ValueError, match="seed: expected a whole number >= 0"):
                gd.ridge_fit(da.from_array(K, chunks=10), T, 1e-2, seed=seed)
        with pytest.raises(ValueError, match="targets: expected 30 rows"):
            gd.ridge_fit(da.from_array(K, chunks=10), np.zeros((30, 0)), 1e-2)
        with pytest.raises(ValueError, match="alpha: contains NaN or Inf"):
            gd.ridge_predict(da.from_array(K, chunks=10), np.full(30, np.nan))


def test_ridge_refuses_unfinished_store(cluster, net, data, tmp_path):
    _, _, xpath = data

    def stop(done, total):
        if done >= 2:
            raise KeyboardInterrupt

    with Client(cluster) as c, pytest.raises(KeyboardInterrupt):
        gd.kernel_to_zarr(net, xpath, tmp_path / "K.zarr", tile=4, client=c, progress=stop)
    # The tiles already queued on the workers may all finish after the interrupt (they take
    # milliseconds): unmark one, so that the store is unfinished whatever the timing.
    zarr.open_group(str(tmp_path / "K.zarr"), mode="r+")["done"][0, 1] = 0
    with pytest.raises(ValueError, match="tiles unfinished"):
        gd.ridge_fit(tmp_path / "K.zarr", np.ones(45), 1.0)
    # its zarr array too (was read with the unfinished tiles as zeros)
    arr = zarr.open_group(str(tmp_path / "K.zarr"), mode="r")["kernel"]
    for fn in (lambda: gd.ridge_fit(arr, np.ones(45), 1.0), lambda: gd.ridge_predict(arr, np.ones(45)),
               lambda: gd.kernel_diagonal(arr)):
        with pytest.raises(ValueError, match="tiles unfinished"):
            fn()


# ---- sweeps -------------------------------------------------------------------------------------

def train_tiny(seed, epochs):
    """A real (tiny) training: a ReLU net on a fixed synthetic problem; JSON result."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 8)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
    net = gn.Network(8, [16], 2, regime="relu", seed=seed)
    net.fit(x, y, epochs=epochs, lr=1e-2, batch_size=20)
    return {"seed": seed, "accuracy": net.evaluate(x, y)["accuracy"]}


def fail_on_three(seed, epochs):
    if seed == 3:
        raise ArithmeticError("seed 3 diverged")
    return train_tiny(seed, epochs)


def tasks_of(fn, seeds):
    return [SimpleNamespace(key=f"seed={s}", fn=fn, kwargs={"seed": s, "epochs": 2}) for s in seeds]


def test_executor_reports_each_result_and_equals_local_runs(client):
    got = {}
    gd.DaskExecutor(client=client).run(tasks_of(train_tiny, range(6)), lambda k, r: got.__setitem__(k, r))
    assert got == {f"seed={s}": train_tiny(s, 2) for s in range(6)}  # same seeds, same bits
    json.dumps(got)


def test_executor_keeps_results_when_a_task_fails(client):
    got = {}
    with pytest.raises(gd.TaskFailed, match="1 of 5 tasks failed; 'seed=3': ArithmeticError: seed 3 diverged") as e:
        gd.DaskExecutor(client=client).run(tasks_of(fail_on_three, range(5)), lambda k, r: got.__setitem__(k, r))
    assert set(e.value.failures) == {"seed=3"}
    assert set(got) == {"seed=0", "seed=1", "seed=2", "seed=4"}
    with pytest.raises(ValueError, match="duplicate keys 'seed=1'"):
        gd.DaskExecutor(client=client).run(tasks_of(train_tiny, [1, 1]), print)
    with pytest.raises(ValueError, match="module-level function"):
        gd.DaskExecutor(client=client).run([SimpleNamespace(key="a", fn=lambda: 1, kwargs={})], print)


def numpy_result(seed):
    """A result with numpy scalars and arrays, which the runner stores as plain JSON."""
    return {"seed": np.int64(seed), "share": np.float32(0.5), "ok": np.bool_(True), "counts": np.arange(2)}


def test_executor_accepts_the_results_a_serial_run_accepts(client, tmp_path, capsys):
    """A task returning numpy scalars ran serially but failed on Dask (TypeError: not JSON
    serialisable): the worker's check did not use the runner's conversion."""
    from gatednet.experiments import SerialExecutor, Task
    from gatednet.experiments.report import read_json, write_json

    tasks = [Task(f"s{s}", numpy_result, {"seed": s}) for s in range(3)]
    serial, dask_got = {}, {}
    SerialExecutor().run(tasks, serial.__setitem__)
    gd.DaskExecutor(client=client).run(tasks, dask_got.__setitem__)
    for key in serial:
        write_json(tmp_path / f"{key}-serial.json", serial[key])
        write_json(tmp_path / f"{key}-dask.json", dask_got[key])
        assert read_json(tmp_path / f"{key}-dask.json") == read_json(tmp_path / f"{key}-serial.json") == \
            {"seed": int(key[1:]), "share": 0.5, "ok": True, "counts": [0, 1]}


def test_bad_workers_or_scheduler_fail_before_any_work(tmp_path, capsys):
    from gatednet.experiments.__main__ import main

    for workers in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="workers: expected a positive number of processes"):
            gd.DaskExecutor(workers=workers)
    with pytest.raises(ValueError, match="scheduler: expected an address"):
        gd.DaskExecutor(scheduler="")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:  # was a traceback from the first run, the output folder made
        main(["run", "nu-dynamics", "--size", "smoke", "--workers", "0", "--out", str(out)])
    assert e.value.code == 2 and "workers: expected a positive number of processes, got 0" in capsys.readouterr().err
    assert not out.exists()
    for args, message in ((["--workers", "1", "--worker-timeout", "-5"], "worker_timeout: expected a finite number"),
                          (["--worker-timeout", "5"], "--worker-timeout is for a Dask run")):
        with pytest.raises(SystemExit) as e:
            main(["run", "nu-dynamics", "--size", "smoke", "--out", str(out)] + args)
        assert e.value.code == 2 and message in capsys.readouterr().err
        assert not out.exists()


def digest_of_source(seed, inputs):
    """A task that takes another task's result (see gatednet.experiments.tasks.bind)."""
    import hashlib
    blob = inputs["source"]["blob"]
    return {"seed": seed, "sha256": hashlib.sha256(blob.encode()).hexdigest(), "length": len(blob)}


def test_executor_sends_a_shared_needed_result_once(client, monkeypatch):
    import hashlib
    from gatednet.experiments.tasks import Task, bind

    source = {"blob": "ab" * 1_000_000}  # 2 MB, as a trained net is at paper size
    tasks = [bind(Task(f"user-{s}", digest_of_source, {"seed": s}, needs=("source",)), {"source": source})
             for s in range(12)]
    scattered = []
    real = client.scatter
    monkeypatch.setattr(client, "scatter", lambda data, **kw: scattered.append(data) or real(data, **kw))
    got = {}
    gd.DaskExecutor(client=client).run(tasks, lambda k, r: got.__setitem__(k, r))
    want = hashlib.sha256(source["blob"].encode()).hexdigest()
    assert got == {f"user-{s}": {"seed": s, "sha256": want, "length": 2_000_000} for s in range(12)}
    assert len(scattered) == 1 and scattered[0] is source  # one transfer for 12 tasks


def test_recipe_sweep_on_cluster_persists_and_resumes(client, tmp_path):
    import dataclasses

    experiments = pytest.importorskip("gatednet.experiments")
    recipe = dataclasses.replace(experiments.get("dlgn-halfspaces"), plots=None)  # tables only: fast
    out = tmp_path / "halfspaces"
    ex = gd.DaskExecutor(client=client)
    rows = experiments.run(recipe, size="smoke", out=out, executor=ex, progress=False)
    info = json.loads((out / "run.json").read_text())
    assert info["tasks_run"] == info["tasks"] > 1 and "DaskExecutor" in info["executor"]
    stored = sorted((out / "tasks").glob("*.json"))
    assert len(stored) == info["tasks"] and len(rows) >= info["tasks"]
    # a task run here gives the bits a worker gave
    record = json.loads(stored[0].read_text())
    task = next(t for t in experiments.get("dlgn-halfspaces").tasks(
        experiments.get("dlgn-halfspaces").settings("smoke"), [0], info["data"]) if t.key == record["key"])
    assert json.loads(json.dumps(task())) == record["result"]
    # a second run resumes: nothing is sent to the cluster
    experiments.run(recipe, size="smoke", out=out, executor=ex, progress=False)
    info = json.loads((out / "run.json").read_text())
    assert info["tasks_run"] == 0 and info["tasks_resumed"] == info["tasks"]


# ---- the dask command-line tools ------------------------------------------------------------------

def test_dask_scheduler_and_worker_commands(scheduler, net, data, tmp_path):
    """`dask scheduler` and two `dask worker ADDRESS` processes, as users start them (with nannies)."""
    x, _, xpath = data
    workers = [scheduler.start_worker(nanny=True) for _ in range(2)]
    client = gd.connect(scheduler.address, timeout=30)
    try:
        client.wait_for_workers(2, timeout=60)
        K = gd.kernel_to_zarr(net, xpath, tmp_path / "K.zarr", tile=16, client=client)
        np.testing.assert_allclose(K[...], np.asarray(net.npk(x)), rtol=2e-5)
        got = {}
        with gd.DaskExecutor(scheduler.address) as ex:
            ex.run(tasks_of(train_tiny, range(3)), lambda k, r: got.__setitem__(k, r))
        assert got == {f"seed={s}": train_tiny(s, 2) for s in range(3)}
        client.shutdown()  # stops the scheduler and its workers
    finally:
        client.close()
    for p in [scheduler.process] + workers:
        assert p.wait(30) is not None


def test_chunk_buffer_pool_reuses_and_bounds_memory():
    from gatednet.distributed._chunks import _BufferPool

    pool = _BufferPool(keep=2)
    a, b, c = (pool.take((4, 4)) for _ in range(3))
    assert len({id(a), id(b), id(c)}) == 3  # buffers in use are never handed out twice
    for buf in (a, b, c, a):
        pool.give(buf)
    assert len(pool.free) == 2 and len({id(x) for x in pool.free}) == 2  # at most keep, no duplicates
    again = pool.take((4, 4))
    assert any(again is x for x in (a, b, c))
    pool.give(np.empty((8, 8), np.float32))  # another store's chunk shape: older buffers dropped
    assert [x.shape for x in pool.free] == [(8, 8)]
    assert pool.take((4, 4)).shape == (4, 4)  # a shape not kept: a new buffer


# ---- a cluster without workers ----------------------------------------------------------------

@pytest.fixture
def fast_watch(monkeypatch):
    """Short check / warning intervals, so a wait for workers shows in a second, not minutes."""
    from gatednet.distributed import _common

    monkeypatch.setattr(_common, "WORKER_POLL", 0.05)
    monkeypatch.setattr(_common, "WORKER_WARN_AFTER", 0.2)
    monkeypatch.setattr(_common, "WORKER_WARN_EVERY", 0.4)


@pytest.fixture
def scheduler(tmp_path):
    """A `dask scheduler` process without workers: SimpleNamespace(address, start_worker(), process)."""
    bindir = Path(sys.executable).parent
    sched_file = tmp_path / "scheduler.json"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
    procs = [subprocess.Popen([str(bindir / "dask"), "scheduler", "--scheduler-file", str(sched_file),
                               "--host", "127.0.0.1", "--port", "0", "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]

    def start_worker(nanny=False):
        # --no-nanny (default): the process started is the worker (killing it leaves nothing to
        # restart it); nanny=True: as `dask worker ADDRESS` starts it
        p = subprocess.Popen([str(bindir / "dask"), "worker", s.address, "--nthreads", "1",
                              *([] if nanny else ["--no-nanny"]), "--no-dashboard", "--local-directory", str(tmp_path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        procs.append(p)
        return p

    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        s = SimpleNamespace(address=json.loads(sched_file.read_text())["address"], start_worker=start_worker,
                            process=procs[0])
        yield s
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def no_worker_warnings(caught, address):
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    return [m for m in msgs if f"scheduler at {address} has no worker" in m and f"dask worker {address}" in m]


def test_worker_timeout_is_checked_before_any_work(client, net, data, tmp_path):
    x, _, xpath = data
    for bad in (0, -1.0, float("inf"), float("nan"), True, "10"):
        with pytest.raises(ValueError, match="worker_timeout: expected a finite number of seconds > 0"):
            gd.kernel_to_zarr(net, xpath, tmp_path / "K.zarr", client=client, worker_timeout=bad)
        with pytest.raises(ValueError, match="worker_timeout"):
            gd.DaskExecutor(client=client, worker_timeout=bad)
        with pytest.raises(ValueError, match="worker_timeout"):
            gd.ridge_fit(tmp_path / "nothing.zarr", np.ones(3), 1.0, client=client, worker_timeout=bad)
    assert not (tmp_path / "K.zarr").exists()


def test_no_worker_warns_then_times_out_naming_the_scheduler(scheduler, fast_watch, cluster, net, data, tmp_path):
    x, _, xpath = data
    with Client(cluster) as c:  # a finished store, for the ridge passes below
        gd.kernel_to_zarr(net, xpath, tmp_path / "done.zarr", tile=16, client=c)
    address = scheduler.address
    with Client(address, timeout=30) as c:
        runs = {
            "file inputs": lambda: gd.kernel_to_zarr(net, xpath, tmp_path / "K.zarr", tile=16, client=c,
                                                     worker_timeout=1.0),
            "in-memory inputs": lambda: gd.kernel_to_zarr(net, x, tmp_path / "K2.zarr", tile=16, client=c,
                                                          worker_timeout=1.0),
            "sweep": lambda: gd.DaskExecutor(client=c, worker_timeout=1.0).run(
                tasks_of(train_tiny, range(2)), lambda k, r: None),
            "ridge": lambda: gd.ridge_fit(tmp_path / "done.zarr", np.ones(len(x)), 1e-2, client=c,
                                          worker_timeout=1.0),
        }
        for name, run in runs.items():
            t0 = time.monotonic()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with pytest.raises(TimeoutError, match=f"scheduler at {address} has no worker.*worker_timeout=1 s"):
                    run()
            assert 1.0 <= time.monotonic() - t0 < 10, name
            assert len(no_worker_warnings(caught, address)) >= 2, (name, [str(w.message) for w in caught])
        assert not (tmp_path / "K.zarr").exists()  # gave up before creating the store


def slow_down(module, name, seconds):
    """Run on workers (``c.run(slow_down, module, name, seconds)``): ``module.name`` takes at
    least ``seconds`` more per call, so that a kill lands mid-run however fast the machine is."""
    import importlib
    import time as _time

    mod = importlib.import_module(module)
    inner = getattr(mod, name)

    def slow(*args, **kwargs):
        _time.sleep(seconds)
        return inner(*args, **kwargs)
    setattr(mod, name, slow)


def slow_tiles():
    """Run on workers: each tile takes at least 50 ms."""
    slow_down("gatednet.distributed.kernels", "_worker_tile", 0.05)


def run_in_thread(fn):
    state = {}

    def run():
        try:
            state["result"] = fn()
        except BaseException as e:  # reported by the test
            state["error"] = e

    t = threading.Thread(target=run)
    t.start()
    return t, state


def wait_for_tiles(store, at_least, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if gd.tiles_done(store)[0] >= at_least:
                return
        except Exception:  # the store is being created
            pass
        time.sleep(0.01)
    raise AssertionError(f"fewer than {at_least} tiles finished in {seconds} s")


@pytest.mark.parametrize("comes_back", [False, True])
def test_all_workers_leaving_mid_run_warns_and_keeps_finished_tiles(scheduler, fast_watch, net, tmp_path,
                                                                     comes_back):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((72, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ref = uninterrupted(net, tmp_path / "x.npy", 6)
    store = tmp_path / "K.zarr"
    workers = [scheduler.start_worker() for _ in range(2)]
    with Client(scheduler.address, timeout=30) as c:
        c.wait_for_workers(2, timeout=60)
        c.run(slow_tiles)
        timeout = 60.0 if comes_back else 1.0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t, state = run_in_thread(lambda: gd.kernel_to_zarr(net, tmp_path / "x.npy", store, tile=6, client=c,
                                                               worker_timeout=timeout)[...])
            wait_for_tiles(store, 5)
            for w in workers:
                w.kill()  # every worker dies mid-run
            for w in workers:
                w.wait()
            killed_at, total = gd.tiles_done(store)
            if comes_back:
                deadline = time.monotonic() + 30
                while not no_worker_warnings(caught, scheduler.address) and time.monotonic() < deadline:
                    time.sleep(0.05)
                scheduler.start_worker()  # a worker joins again: the run completes
            t.join(120)
        assert not t.is_alive()
        warned = no_worker_warnings(caught, scheduler.address)
        assert warned and "every worker left" in warned[0]
        assert killed_at < total == 78  # 12 x 12 tiles, upper triangle
        if comes_back:
            assert "error" not in state, state.get("error")
            np.testing.assert_array_equal(state["result"], ref)  # bit for bit
            return
        assert isinstance(state.get("error"), TimeoutError), state
        assert f"scheduler at {scheduler.address}" in str(state["error"])
        kept, _ = gd.tiles_done(store)
        assert killed_at <= kept < total  # the finished tiles stay recorded
        scheduler.start_worker()
        c.wait_for_workers(1, timeout=60)
        seen = []
        K = gd.kernel_to_zarr(net, tmp_path / "x.npy", store, tile=6, client=c, progress=lambda d, n: seen.append(d))
        assert seen[0] == kept  # resumed: only the missing tiles computed
        np.testing.assert_array_equal(K[...], ref)


def slow_train(seed, epochs):
    time.sleep(0.3)
    return train_tiny(seed, epochs)


def test_sweep_whose_workers_all_leave_keeps_finished_results(scheduler, fast_watch):
    workers = [scheduler.start_worker() for _ in range(2)]
    with Client(scheduler.address, timeout=30) as c:
        c.wait_for_workers(2, timeout=60)
        got = {}
        ex = gd.DaskExecutor(client=c, worker_timeout=1.0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t, state = run_in_thread(lambda: ex.run(tasks_of(slow_train, range(40)),
                                                    lambda k, r: got.__setitem__(k, r)))
            deadline = time.monotonic() + 60
            while len(got) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            for w in workers:
                w.kill()
            t.join(60)
        assert not t.is_alive()
        assert isinstance(state.get("error"), TimeoutError), state
        assert no_worker_warnings(caught, scheduler.address)
        assert 2 <= len(got) < 40  # the results given to on_result before the workers left
        assert all(got[f"seed={s}"] == train_tiny(s, 2) for s in (int(k[5:]) for k in got))


def test_ridge_pass_whose_workers_all_leave_is_sent_again_when_one_joins(scheduler, fast_watch, net, tmp_path):
    from gatednet.distributed.ridge import _Operator

    x = np.random.default_rng(3).standard_normal((40, 12)).astype(np.float32)
    P = np.random.default_rng(4).standard_normal((40, 3))
    workers = [scheduler.start_worker() for _ in range(2)]
    with Client(scheduler.address, timeout=30) as c:
        c.wait_for_workers(2, timeout=60)
        K = gd.kernel_to_zarr(net, x, tmp_path / "K.zarr", tile=16, client=c)[...]
        c.run(slow_down, "gatednet.distributed.ridge", "_tiles_product", 0.5)  # a kill lands mid-pass
        op = _Operator(str(tmp_path / "K.zarr"), c)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t, state = run_in_thread(lambda: op.matmul(P))
            time.sleep(0.25)  # the pass's tasks are running, P is on the workers only
            for w in workers:
                w.kill()
            deadline = time.monotonic() + 30
            while not no_worker_warnings(caught, scheduler.address) and time.monotonic() < deadline:
                time.sleep(0.05)
            scheduler.start_worker()  # P is scattered again and the pass sent again
            t.join(120)
        assert not t.is_alive() and "error" not in state, state.get("error")
        np.testing.assert_allclose(state["result"], K.astype(np.float64) @ P, rtol=1e-6, atol=1e-9)


def test_sweep_completes_when_a_worker_joins_again(scheduler, fast_watch):
    got, caught = sweep_through_losing_every_worker(scheduler, tasks_of(slow_train, range(12)))
    assert no_worker_warnings(caught, scheduler.address)
    assert got == {f"seed={s}": train_tiny(s, 2) for s in range(12)}


def sweep_through_losing_every_worker(scheduler, tasks):
    """Run ``tasks`` on two workers of ``scheduler``, kill both once 2 results are in, start a
    new worker once the no-worker warning came; returns (results by key, warnings caught)."""
    workers = [scheduler.start_worker() for _ in range(2)]
    with Client(scheduler.address, timeout=30) as c:
        c.wait_for_workers(2, timeout=60)
        got = {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t, state = run_in_thread(lambda: gd.DaskExecutor(client=c).run(tasks, lambda k, r: got.__setitem__(k, r)))
            deadline = time.monotonic() + 60
            while len(got) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            for w in workers:
                w.kill()
            while not no_worker_warnings(caught, scheduler.address) and time.monotonic() < deadline:
                time.sleep(0.05)
            scheduler.start_worker()
            t.join(120)
        assert not t.is_alive() and "error" not in state, state.get("error")
    return got, caught


def test_kernel_started_before_any_worker_completes_once_one_joins(scheduler, fast_watch, net, data, tmp_path,
                                                                   monkeypatch):
    from gatednet.distributed import kernels

    monkeypatch.setattr(kernels, "FIRST_WORKER_WAIT", 0.3)  # tiles chosen and sent without a worker
    x, _, xpath = data
    with Client(scheduler.address, timeout=30) as c:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t, state = run_in_thread(lambda: gd.kernel_to_zarr(net, xpath, tmp_path / "K.zarr", client=c)[...])
            deadline = time.monotonic() + 30
            while not no_worker_warnings(caught, scheduler.address) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert t.is_alive()  # waiting, not failed
            scheduler.start_worker()
            t.join(120)
        assert not t.is_alive() and "error" not in state, state.get("error")
        warned = no_worker_warnings(caught, scheduler.address)
        assert "no worker has joined" in warned[0] and "worker_timeout=None" in warned[0]
        np.testing.assert_allclose(state["result"], np.asarray(net.npk(x)), rtol=2e-5)


# ---- review findings ----------------------------------------------------------------------------

def test_trace_normalized_kernel_whose_first_row_has_zero_trace(net, data):
    # The one-row option probe used row 0 alone: a zero row has an NPK of 0, so the probe's
    # trace-normalised call failed ("trace of the npk is 0") although the trace over all rows is
    # positive and the whole kernel well defined.
    x = data[0].copy()
    x[0] = 0.0
    want = np.asarray(net.kernel(x, None, "npk_trace_normalized"))
    got = gd.kernel_array(net, x, kind="npk_trace_normalized", tile=16).compute(scheduler="sync")
    np.testing.assert_array_equal(got, want)


def test_conv_network_kernel_it_cannot_give_fails_before_the_store_is_made(client, tmp_path):
    # The option probe ran for Network only: a ConvNetwork with global max pooling (no path
    # kernel) made the store and then failed on a worker ("tile (0, 0) ... failed on a worker").
    cn = gn.ConvNetwork([("conv", 4, 3), ("gmp",), ("dense", 2)], (4, 4, 1))
    x = np.random.default_rng(0).standard_normal((6, 4, 4, 1)).astype(np.float32)
    with pytest.raises(gn.GatedNetError, match="max pooling"):
        gd.kernel_to_zarr(cn, x, tmp_path / "K.zarr", tile=4, client=client)
    assert not (tmp_path / "K.zarr").exists()
    with pytest.raises(gn.GatedNetError, match="max pooling"):
        gd.kernel_array(cn, x, tile=4)


def test_stored_network_of_a_format_1_store_is_a_clear_error(net, data, tmp_path):
    # A store made before the network was stored (format 1) has no "network" array:
    # stored_network raised a bare KeyError('network').
    from gatednet.distributed import kernels

    x = data[0]
    plan, blob, a, b, _ = kernels._plan(net, x, "npk", None, 16, 0, None, "auto", False)
    g, _, written = kernels._create_store(str(tmp_path / "K.zarr"), plan, blob)
    written.result()
    kernels._finish_store(g, dict(kernels._describe(plan, a, b), format=1))
    del g["network"]
    with pytest.raises(ValueError, match="holds no network .*format 1"):
        gd.stored_network(tmp_path / "K.zarr")


def test_all_workers_leaving_mid_run_with_in_memory_inputs_completes_when_one_joins(scheduler, fast_watch, net,
                                                                                     tmp_path):
    # In-memory inputs are scattered to the workers: when every worker leaves, the scattered
    # copies go with them, and the tiles sent again must not wait on (or fail for) lost data.
    x = np.random.default_rng(9).standard_normal((72, 12)).astype(np.float32)
    ref = uninterrupted(net, x, 6)
    store = tmp_path / "K.zarr"
    workers = [scheduler.start_worker() for _ in range(2)]
    with Client(scheduler.address, timeout=30) as c:
        c.wait_for_workers(2, timeout=60)
        c.run(slow_tiles)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t, state = run_in_thread(lambda: gd.kernel_to_zarr(net, x, store, tile=6, client=c,
                                                               worker_timeout=60)[...])
            wait_for_tiles(store, 5)
            for w in workers:
                w.kill()
            for w in workers:
                w.wait()
            deadline = time.monotonic() + 30
            while not no_worker_warnings(caught, scheduler.address) and time.monotonic() < deadline:
                time.sleep(0.05)
            scheduler.start_worker()
            t.join(90)
        assert not t.is_alive()
        assert "error" not in state, state.get("error")
        np.testing.assert_array_equal(state["result"], ref)


def slow_digest_of_source(seed, inputs):
    time.sleep(0.2)
    return digest_of_source(seed, inputs)


def test_sweep_with_a_shared_needed_result_completes_when_a_worker_joins_again(scheduler, fast_watch):
    # A needed result is scattered to the workers once; when every worker leaves it goes with
    # them, and the tasks that take it must be sent again with it, not fail as cancelled.
    import hashlib
    from gatednet.experiments.tasks import Task, bind

    source = {"blob": "ab" * 1000}
    tasks = [bind(Task(f"user-{s}", slow_digest_of_source, {"seed": s}, needs=("source",)), {"source": source})
             for s in range(12)]
    got, _ = sweep_through_losing_every_worker(scheduler, tasks)
    want = hashlib.sha256(source["blob"].encode()).hexdigest()
    assert got == {f"user-{s}": {"seed": s, "sha256": want, "length": 2000} for s in range(12)}
