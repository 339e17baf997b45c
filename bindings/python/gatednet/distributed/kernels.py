"""Kernels of a saved network over n inputs, computed tile by tile on Dask workers.

Layout of a store (a zarr group on a filesystem every worker sees):

    kernel   n_a x n_b float32, chunks tile x tile (one tile = one chunk: writes never race)
    done     tiles_a x tiles_b uint8, chunks 1 x 1: done[i, j] = 1 once tile (i, j) is written
             (for a symmetric kernel: tile (i, j), i <= j, and its transpose (j, i))
    network  uint8, the saved network the kernel is of (its file bytes): workers read it from
             here once (no scatter), and ``stored_network(store)`` gives it back
    attrs["gatednet"]  what the store holds (kind, options, shapes, tile, network and input
             digests), so that a resumed run can only continue the same computation. Written
             once the arrays and the network are; a store without it holds no finished tile.
             The inputs' digest is recorded just after the tiles are sent (inputs_sha256 None
             until then, i.e. for as long as hashing the inputs takes, about 0.1 s per 200 MB:
             a run whose client stopped in that window is not resumed but computed again
             with overwrite=True). One store is written by one kernel_to_zarr call at a time.

A task computes one tile with the library, writes its chunk(s), then its marker (for the path
kernels of hard gates, from the packed gates of its rows and columns that a task per row block
computed once: _gates_task). A worker
killed between the two leaves the marker unset and the tile is computed again, with the same
bits (the library's results depend only on the sizes), so a resumed or retried run equals an
uninterrupted one bit for bit.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import gatednet as gn

from ._chunks import RawChunks
from ._common import (MAX_CANCELLED, Inputs, WorkerWatch, check_worker_timeout, default_client, digest,
                      in_background, lost, network_bytes, worker_inputs, worker_network)

FC_KINDS = gn._KERNELS
CONV_KINDS = ("npk", "gate_overlap", "input_gram")
FORMAT = 2  # 2: the network is stored in the store; inputs digested by 16 MiB segments


MAX_TILE = 8192


def _tile_costs(n_a, n_b, symmetric, t):
    """[(cost, (i, j))] of the tiles to compute with edge t: entries the library fills (one
    triangle of a diagonal tile of a symmetric kernel)."""
    plan = {"n_a": n_a, "n_b": n_b, "tile": t, "symmetric": symmetric}
    out = []
    for i, j in tile_grid(plan)[2]:
        r0, r1, c0, c1 = tile_bounds(plan, i, j)
        h, w = r1 - r0, c1 - c0
        out.append((h * (h + 1) // 2 if symmetric and i == j else h * w, (i, j)))
    return out


def _longest_first(costs, slots):
    """Greedy longest-first placement of (cost, item) on ``slots`` equal slots: ([items per slot],
    makespan). Within 4/3 of the best placement; exact for the balanced grids tile_for picks."""
    loads = [0] * slots
    placed = [[] for _ in range(slots)]
    for cost, item in sorted(costs, key=lambda c: -c[0]):
        s = loads.index(min(loads))
        loads[s] += cost
        placed[s].append(item)
    return placed, max(loads)


def tile_for(n_a, n_b=None, workers=1, max_tile=MAX_TILE):
    """The tile edge kernel_to_zarr uses when given none: the fewest tiles (edge at most
    ``max_tile``, which bounds a worker's memory whatever n is) whose longest-first placement on
    ``workers`` worker threads is within 3% of a perfect split of the entries. E.g. n = 10,000
    on 2 workers: edge 5,000, tiles (0, 1) on one worker and the two half-cost diagonal tiles
    on the other. ``n_b=None``: the symmetric kernel of n_a inputs."""
    symmetric = n_b is None
    n_b = n_a if symmetric else n_b
    for name, value in (("n_a", n_a), ("n_b", n_b), ("workers", workers), ("max_tile", max_tile)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected a whole number >= 1, got {value!r}")
    big = max(n_a, n_b)
    first = max(1, -(-big // max_tile))
    best = None
    for p in range(first, first + 4 * workers + 8):
        t = -(-big // p)
        costs = _tile_costs(n_a, n_b, symmetric, t)
        total = sum(c for c, _ in costs)
        _, makespan = _longest_first(costs, workers)
        slack = makespan * workers / total
        if best is None or slack < best[0] - 1e-9:
            best = (slack, t)
        if slack <= 1.03 or t == 1:
            return t
    return best[1]


def _plan(net, x, kind, xb, tile, layer, output, gate_path, ntk_scaling, workers=1, digests=False):
    """Validate everything on the client; returns (plan dict, net bytes, Inputs a, Inputs b|None,
    whether the tiles can share their rows' gates: see _gates_shareable).
    ``tile=None``: tile_for(n_a, n_b, workers). ``digests``: start the inputs' digests as soon as
    the inputs are checked (they are the longest part of kernel_to_zarr's start-up)."""
    def inputs(input_size):
        a = Inputs(x, "x", input_size)
        b = None if xb is None else Inputs(xb, "xb", input_size)
        for i in (a, b):
            if digests and i is not None:
                i.start_digest()
        return a, b

    live = isinstance(net, (gn.Network, gn.ConvNetwork)) and not net.closed
    if live:  # the input size is known without the bytes: check the inputs and start hashing first
        a, b = inputs(net.input_size)
    data, cls, network = network_bytes(net)
    try:  # a network decoded from a file or bytes is closed however the checks end
        if cls == "ConvNetwork":
            kind = "gate_overlap" if kind == "overlap" else kind
            if kind not in CONV_KINDS:
                raise ValueError(f"kind: {kind!r} is not a ConvNetwork kernel ({', '.join(CONV_KINDS)})")
            if (layer, output, gate_path, ntk_scaling) != (0, None, "auto", False):
                raise ValueError("layer / output / gate_path / ntk_scaling: only for Network kernels")
        else:
            kind = FC_KINDS[gn._code(kind, FC_KINDS, "kind")]  # an unknown kind: ValueError naming the kinds
            gn._code(gate_path, gn._GATE_PATHS, "gate_path")
        if tile is not None and (isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 1):
            raise ValueError(f"tile: expected a positive number of rows per tile (or None: chosen from n and "
                             f"the workers), got {tile!r}")
        if not live:
            a, b = inputs(network.input_size)
        n_b = a.n if b is None else b.n
        # The library's own rules for layer / output / gate_path / ntk_scaling and what the kind
        # needs (e.g. soft gates for NTK_FEATURE, no max pooling in a ConvNetwork), checked by a
        # one-row call before a store exists: a bad option would otherwise fail on a worker, after
        # the store was made. (The trace-normalised NPK probes as the NPK: one row's trace can be 0
        # where all rows' is not.)
        xa1, xb1 = a.array[:1], None if b is None else b.array[:1]
        if cls == "ConvNetwork":
            network.kernel(xa1, xb1, kind)
        else:
            network.kernel(xa1, xb1, "npk" if kind == "npk_trace_normalized" else kind, layer=layer,
                           output=output, gate_path=gate_path, ntk_scaling=ntk_scaling)
        if tile is None:
            tile = tile_for(a.n, None if b is None else n_b, workers)
        shared = _gates_shareable(network, cls, kind, gate_path, xa1)
        plan = {
            "format": FORMAT, "cls": cls, "kind": kind, "layer": int(layer),
            "output": None if output is None else int(output), "gate_path": gate_path,
            "ntk_scaling": bool(ntk_scaling), "n_a": a.n, "n_b": n_b, "tile": int(tile),
            "symmetric": b is None, "network_sha256": digest(data),
        }
        return plan, data, a, b, shared
    finally:
        if network is not net:
            network.close()


SHARED_GATE_KINDS = ("npk", "npk_normalized", "overlap", "base")


def _gates_shareable(network, cls, kind, gate_path, row):
    """Whether the tiles of this kernel can take their rows' packed gates from tasks that compute
    each row block's gates once (instead of every tile computing them for its rows and columns,
    i.e. once per tile a row belongs to): Network path kernels that use hard gates bit-packed."""
    if cls != "Network" or kind not in SHARED_GATE_KINDS or gate_path == "float":
        return False
    try:
        network.packed_gates(row)
    except gn.GatedNetError:  # soft gates
        return False
    return True


def tile_bounds(plan, i, j):
    t = plan["tile"]
    return i * t, min(plan["n_a"], (i + 1) * t), j * t, min(plan["n_b"], (j + 1) * t)


def tile_grid(plan):
    """(tiles along rows, tiles along columns) and the tiles to compute (upper ones if symmetric)."""
    t = plan["tile"]
    ta, tb = -(-plan["n_a"] // t), -(-plan["n_b"] // t)
    tiles = [(i, j) for i in range(ta) for j in range(tb) if not plan["symmetric"] or j >= i]
    return ta, tb, tiles


def compute_tile(plan, net, xa, xb, i, j, out=None, out_transposed=None, gates=(None, None)):
    """One tile K[r0:r1, c0:c1] as a float32 array, by one library call (into ``out`` if given:
    a writable float32 view of the tile's shape, rows may be strided; and its transpose into
    ``out_transposed`` if given, in the same pass over the library's sub-tiles).

    Path kernels are per pair of inputs, so a tile is the kernel of the two row slices; the
    trace-normalised NPK divides by the trace over ALL rows, so it uses the library's block
    options on the whole inputs instead. A diagonal tile of a symmetric kernel is a symmetric
    call (one triangle computed, mirrored). ``gates``: the packed gates of the tile's rows and
    columns (from _gates_task), or None to compute them in the call."""
    r0, r1, c0, c1 = tile_bounds(plan, i, j)
    diag = plan["symmetric"] and i == j
    kind = plan["kind"]
    if plan["cls"] == "ConvNetwork":
        k = net.kernel(xa[r0:r1], None if diag else xb[c0:c1], kind, out=out, out_transposed=out_transposed)
    else:
        opts = dict(layer=plan["layer"], output=plan["output"], gate_path=plan["gate_path"],
                    ntk_scaling=plan["ntk_scaling"], out=out, out_transposed=out_transposed)
        if kind == "npk_trace_normalized":
            k = net.kernel(xa, None if plan["symmetric"] else xb, kind, rows=(r0, r1), cols=(c0, c1), **opts)
        else:
            ga, gb = gates
            if ga is not None:
                opts["gates_a"] = ga
            if gb is not None and not diag:
                opts["gates_b"] = gb
            k = net.kernel(xa[r0:r1], None if diag else xb[c0:c1], kind, **opts)
    return out if out is not None else np.asarray(k)


def _worker_tile(plan, data, xa_spec, xb_spec, i, j, out=None, out_transposed=None, gates=(None, None)):
    """``data``: the network's bytes, or a function returning them (read only on a cache miss)."""
    net = worker_network(data, plan["cls"], plan["network_sha256"])
    xa = worker_inputs(xa_spec)
    xb = xa if xb_spec is None else worker_inputs(xb_spec)
    return compute_tile(plan, net, xa, xb, i, j, out, out_transposed, gates)


def _gates_task(plan, path, x_spec, side, k):
    """Worker task: the packed gates of row block ``k`` of the inputs of ``side`` ("a": the rows,
    "b": the columns), for the tiles that need them (Dask hands them over, about 64 bytes per row
    for 512 hidden units)."""
    net = worker_network(lambda: _read_network(path), plan["cls"], plan["network_sha256"])
    x = worker_inputs(x_spec)
    begin, end = tile_bounds(plan, k, 0)[:2] if side == "a" else tile_bounds(plan, 0, k)[2:]
    return np.asarray(net.packed_gates(x[begin:end]))


# ---- zarr stores ------------------------------------------------------------------------------

def _describe(plan, a, b):
    d = dict(plan)
    d["inputs_sha256"] = a.digest() if b is None else digest(a.digest(), b.digest())
    return d


def _check_store(path, plan, attrs):
    """None if nothing is at ``path``; the open group if it holds this computation; else ValueError.

    Runs before any work is sent and writes nothing."""
    import zarr

    if not os.path.exists(path):
        return None
    try:
        g = zarr.open_group(path, mode="r+")
    except Exception as e:  # zarr raises several types for "not a group"
        raise ValueError(f"store: {path!r} exists and is not a zarr group ({type(e).__name__}: {e}); "
                         f"give a new path") from None
    shape = (plan["n_a"], plan["n_b"])
    t = plan["tile"]
    if "kernel" in g:
        k = g["kernel"]
        if tuple(k.shape) != shape or k.dtype != np.float32:
            raise ValueError(f"store: {path!r} holds a kernel of shape {tuple(k.shape)} and dtype {k.dtype}; "
                             f"this run needs shape {shape} float32 (give a new path, or overwrite=True)")
        if tuple(k.chunks) != (min(t, shape[0]), min(t, shape[1])):
            raise ValueError(f"store: {path!r} has chunks {tuple(k.chunks)}, this run tiles by {t} "
                             f"(pass tile={k.chunks[0]} to resume it)")
    old = g.attrs.get("gatednet")
    if old is None or "kernel" not in g or "done" not in g:
        raise ValueError(f"store: {path!r} is a zarr group but not a gatednet kernel store; give a new path")
    if old.get("inputs_sha256", "") is None:
        raise ValueError(f"store: {path!r} was left by a run whose client stopped before recording its "
                         f"inputs' digest; overwrite=True to compute it again")
    if old != attrs:
        diff = sorted(k for k in set(old) | set(attrs) if old.get(k) != attrs.get(k))
        raise ValueError(f"store: {path!r} holds another computation (differs in {', '.join(diff)}); "
                         f"give a new path, or overwrite=True to replace it")
    return g


def _create_store(path, plan, data):
    """A new store's arrays, without attributes (kernel_to_zarr writes them: provisional ones
    before the tiles are sent, the inputs' digest once they are); returns (group, its kernel
    array, a Future of the network's write, which runs on a background thread meanwhile)."""
    import zarr

    ta, tb, _ = tile_grid(plan)
    t = plan["tile"]
    g = zarr.open_group(path, mode="w")
    # the network array first: it marks a half-created store as ours (_interrupted_creation)
    net = g.create_array("network", shape=(len(data),), chunks=(max(1, len(data)),), dtype="uint8",
                         compressors=None)
    kernel = g.create_array("kernel", shape=(plan["n_a"], plan["n_b"]),
                            chunks=(min(t, plan["n_a"]), min(t, plan["n_b"])), dtype="float32", fill_value=0.0,
                            compressors=None)
    g.create_array("done", shape=(ta, tb), chunks=(1, 1), dtype="uint8", fill_value=0, compressors=None)

    def write():
        net[...] = np.frombuffer(data, np.uint8)

    return g, kernel, in_background(write)


def _finish_store(group, attrs):
    group.attrs["gatednet"] = attrs
    return group


def _read_network(path):
    """The network bytes a store holds."""
    import zarr

    return zarr.open_group(path, mode="r")["network"][...].tobytes()


def stored_network(store):
    """The network (a Network or ConvNetwork) whose kernel ``store`` holds, rebuilt from the bytes
    kernel_to_zarr saved in it; its SHA-256 is checked against the store's record."""
    import zarr

    path = os.fspath(store)
    g = zarr.open_group(path, mode="r")
    attrs = g.attrs.get("gatednet")
    if attrs is None:
        raise ValueError(f"store: {path!r} is not a finished gatednet kernel store")
    if "network" not in g:
        raise ValueError(f"store: {path!r} holds no network (made by an older gatednet, store format "
                         f"{attrs.get('format')!r}; the network is stored from format 2)")
    data = _read_network(path)
    if digest(data) != attrs["network_sha256"]:
        raise ValueError(f"store: {path!r}: the stored network does not match its recorded SHA-256")
    return getattr(gn, attrs["cls"]).from_bytes(data)


_STORES = {}  # in a worker process: {store path: (its arrays' metadata bytes, _open_store's result)}


def _open_store(path):
    """(kernel array, its RawChunks or None, done array, its RawChunks or None) of the store at
    ``path``, opened once per worker process: later tiles of the same store only compare the
    arrays' metadata files (a store created again at the path is opened again)."""
    import zarr

    def metadata(name):
        try:
            with open(os.path.join(path, name, "zarr.json"), "rb") as f:
                return f.read()
        except OSError:
            return None

    key = (metadata("kernel"), metadata("done"))
    hit = _STORES.get(path)
    if hit is not None and None not in key and hit[0] == key:
        return hit[1]
    g = zarr.open_group(path, mode="r+")
    arr, done = g["kernel"], g["done"]
    opened = (arr, RawChunks.of(arr), done, RawChunks.of(done, np.uint8))
    if len(_STORES) >= 8:
        _STORES.clear()
    _STORES[path] = (key, opened)
    return opened


_DONE = np.ones((1, 1), np.uint8)


def _zarr_tile_task(plan, path, xa_spec, xb_spec, i, j, ga=None, gb=None):
    """Worker task: compute tile (i, j), write it (and its transpose), then mark it done.

    On a local store the library computes the tile, and for an off-diagonal tile of a symmetric
    kernel its transpose (the mirrored lower tile), into chunk buffers (reused from tile to tile)
    that one write() each puts in their chunk files (see _chunks.py); elsewhere the tile goes
    through zarr. ``ga`` / ``gb``: the packed gates of the tile's rows / columns (_gates_task), or
    None. Returns (i, j, seconds in the library call, seconds writing)."""
    arr, raw, done, raw_done = _open_store(path)
    gates = (ga, gb)
    mirror = plan["symmetric"] and i != j
    data = lambda: _read_network(path)  # noqa: E731 (read once per worker process, then cached)
    if raw is None:
        t0 = time.perf_counter()
        k = _worker_tile(plan, data, xa_spec, xb_spec, i, j, gates=gates)
        t1 = time.perf_counter()
        r0, r1, c0, c1 = tile_bounds(plan, i, j)
        arr[r0:r1, c0:c1] = k
        if mirror:
            arr[c0:c1, r0:r1] = k.T
    else:
        buf, k = raw.buffer(i, j)
        mbuf, mk = raw.buffer(j, i) if mirror else (None, None)
        t0 = time.perf_counter()
        # the library writes the mirrored lower tile too, from the same sub-tiles, bit for bit
        _worker_tile(plan, data, xa_spec, xb_spec, i, j, out=k, out_transposed=mk, gates=gates)
        t1 = time.perf_counter()
        if mirror:
            # two files written on two threads: the end of a task is not one core's serial work
            with ThreadPoolExecutor(1) as pool:
                written = pool.submit(raw.commit, i, j, buf)
                raw.commit(j, i, mbuf)
                written.result()
            raw.release(buf, mbuf)
        else:
            raw.commit(i, j, buf)
            raw.release(buf)
    if raw_done is not None:
        raw_done.commit(i, j, _DONE)
    else:
        done[i, j] = 1
    return i, j, t1 - t0, time.perf_counter() - t1


def kernel_to_zarr(net, x, store, *, kind="npk", xb=None, tile=None, client=None, layer=0, output=None,
                   gate_path="auto", ntk_scaling=False, overwrite=False, progress=None, worker_timeout=None):
    """Compute a kernel of ``net`` over the rows of ``x`` (or ``x`` x ``xb``) on Dask workers into
    the zarr store ``store``; returns the ``kernel`` zarr array (``dask.array.from_zarr`` views it).

    ``net``: a Network / ConvNetwork, a saved network file or its bytes (sent once to each worker).
    ``x`` / ``xb``: a path to a C-order float32 .npy file every worker can read (memory-mapped,
    the way to go for big n), or an array (scattered once). ``kind`` and ``layer`` / ``output``
    / ``gate_path`` / ``ntk_scaling``: as for :meth:`gatednet.Network.kernel` (ConvNetwork:
    "npk", "gate_overlap", "input_gram"). ``xb=None``: the symmetric kernel of x, of which only
    the upper tiles are computed (each also written transposed).

    One task per ``tile`` x ``tile`` block (one zarr chunk); ``tile=None`` picks the edge from n
    and the cluster's worker threads (:func:`tile_for`; an existing store keeps its own), and the
    tasks are placed longest first on the workers. Tiles already marked done in an
    existing store of the same computation are skipped, so calling again after a crash, a killed
    worker or a restarted client finishes the job; the result equals an uninterrupted run bit
    for bit. Worker memory: a few tiles plus the library's per-call scratch, whatever n is, and
    for the path kernels of hard gates the rows' packed gates while tiles still need them
    (Σ_l ⌈w_l / 64⌉ · 8 bytes per row across the cluster: 64 bytes for 4 layers of 128).

    Raises, before any work is sent: ValueError for a network file that is not gatednet's,
    inputs with NaN/Inf or of the wrong width, a store holding another shape, dtype or
    computation (``overwrite=True`` replaces it; nothing is deleted otherwise). A failing tile
    raises RuntimeError naming the tile; finished tiles stay recorded.

    ``progress(done, total)`` is called in this process as tiles finish. ``client``: a
    distributed.Client (default: the current one).

    While the cluster has no worker (none started yet, or all gone mid-run) a RuntimeWarning
    names the scheduler and the command that starts a worker, within seconds and then every
    30 s; ``worker_timeout`` (seconds, None = wait as long as it takes: an adaptive cluster adds
    workers later) then raises TimeoutError after that long without any worker. Finished tiles
    stay recorded, so calling again once workers run finishes the job.
    """
    path = os.path.abspath(os.fspath(store))
    check_worker_timeout(worker_timeout)
    client = default_client(client)
    if tile is None and not overwrite:
        tile = _stored_tile(path)
    watch = WorkerWatch(client, worker_timeout, f"the tiles of {path!r}")
    threads = _worker_threads(watch)
    new = overwrite or not os.path.exists(path) or _interrupted_creation(path)
    # A resumed run checks the inputs' digest first: start hashing at once. A new store records it
    # once the tiles are sent, so that the hashing overlaps their computation, not the start-up.
    plan, data, a, b, shared = _plan(net, x, kind, xb, tile, layer, output, gate_path, ntk_scaling,
                                     workers=sum(threads.values()) or 1, digests=not new)
    _, _, tiles = tile_grid(plan)
    if new:
        # Every check has passed: create the store and scatter in-memory inputs while the inputs'
        # digests run; the attributes that make it a store of this computation come last.
        # The inputs' digest (the longest start-up step) is recorded once the tiles are sent: until
        # then the attributes say inputs_sha256 None, which a resumed run refuses.
        group, kernel, network_written = _create_store(path, plan, data)
        specs = _send(client, a, b, watch)
        network_written.result()
        if all(i is None or i.digest_known() for i in (a, b)):  # files hashed before: no provisional record
            _finish_store(group, _describe(plan, a, b))
            after_submit = None
        else:
            _finish_store(group, dict(plan, inputs_sha256=None))
            after_submit = lambda: _finish_store(group, _describe(plan, a, b))  # noqa: E731
        todo = tiles
    else:
        group = _check_store(path, plan, _describe(plan, a, b))
        kernel = None
        done = group["done"][...]
        todo = [(i, j) for i, j in tiles if not done[i, j]]
        specs = _send(client, a, b, watch) if todo else None
        after_submit = None
    if progress is not None:
        progress(len(tiles) - len(todo), len(tiles))
    if todo:
        _run_tiles(client, plan, path, specs, todo, len(tiles), progress, threads, watch, after_submit,
                   resend=lambda: _send(client, a, b, watch), shared_gates=shared)
    elif after_submit is not None:
        after_submit()
    return group["kernel"] if kernel is None else kernel


def _interrupted_creation(path):
    """True for a store kernel_to_zarr began to create and stopped before writing its attributes
    (a client killed in those milliseconds): no attributes, and either an empty group or our
    `network` array (created first) with at most our other two arrays and no tile done. It is
    created again rather than refused; anything else at the path is left to _check_store."""
    import zarr

    try:
        g = zarr.open_group(path, mode="r")
        arrays = set(g.array_keys())
        if "gatednet" in g.attrs or set(g.group_keys()) or not arrays <= {"kernel", "done", "network"}:
            return False
        return not arrays or ("network" in arrays and not ("done" in arrays and g["done"][...].any()))
    except Exception:  # not a zarr group: _check_store reports it
        return False


def _stored_tile(path):
    """The tile edge of an existing gatednet store at path, else None."""
    import zarr

    try:
        return int(zarr.open_group(path, mode="r").attrs["gatednet"]["tile"])
    except Exception:  # no store, or not ours: _check_store reports it
        return None


FIRST_WORKER_WAIT = 10.0  # seconds kernel_to_zarr waits for a first worker before choosing tiles without one


def _worker_threads(watch):
    """{worker address: threads} of the watched client's cluster (waits up to FIRST_WORKER_WAIT
    seconds for a first worker, warning or raising as the WorkerWatch says; {} if none came)."""
    if not watch.wait_for_worker(at_most=FIRST_WORKER_WAIT):
        return {}  # no worker yet: the tasks wait for one (watched by _run_tiles)
    return {addr: max(1, int(k)) for addr, k in watch.client.nthreads().items()}


def _placement(threads, plan, todo):
    """[(tile, worker address or None)] longest first: tiles placed greedily on the worker
    threads, so that e.g. the two half-cost diagonal tiles share one worker while another
    computes an off-diagonal tile. Dask alone would place tasks it has no timings for by
    count; a placement is a preference (loose), so a lost worker's tiles go elsewhere.
    ``threads``: {worker address: threads}, from :func:`_worker_threads`."""
    slots = [addr for addr, k in sorted(threads.items()) for _ in range(k)]
    wanted = set(todo)
    costs = [(c, ij) for c, ij in _tile_costs(plan["n_a"], plan["n_b"], plan["symmetric"], plan["tile"])
             if ij in wanted]
    if not slots:
        return [(ij, None) for _, ij in sorted(costs, key=lambda c: -c[0])]
    placed, _ = _longest_first(costs, len(slots))
    where = {ij: slots[s] for s, items in enumerate(placed) for ij in items}
    return [(ij, where[ij]) for _, ij in sorted(costs, key=lambda c: -c[0])]


def _gate_blocks(plan, order):
    """[((side, k), worker address or None)] of the row blocks whose gates two or more of the
    tiles in ``order`` ([(tile, address)] as _placement gives them) need: each computed once, by
    a task placed on a worker whose tiles need it, spreading the blocks over those workers and
    preferring the worker whose first tile needs that block alone (a diagonal tile, which can
    then start without waiting for another worker's gates). ``side`` "a": rows of x, "b": rows of
    xb; a symmetric kernel has only "a"."""
    side_b = "a" if plan["symmetric"] else "b"
    rank = {}  # address -> tiles placed on it so far (a tile's rank: when it starts there)
    need = {}  # block -> [(rank, blocks that tile needs, address)]
    for (i, j), addr in order:
        r = rank[addr] = rank.get(addr, -1) + 1
        blocks = {("a", i), (side_b, j)}
        for blk in blocks:
            need.setdefault(blk, []).append((r, len(blocks), addr))
    out, count = [], {}
    for blk, uses in sorted(need.items(), key=lambda kv: (min(u[0] for u in kv[1]), kv[0])):
        if len(uses) < 2:
            continue
        placed = [u for u in uses if u[2] is not None]
        if not placed:
            out.append((blk, None))
            continue
        r, _, addr = min(placed, key=lambda u: (count.get(u[2], 0), u[0], u[1], u[2]))
        count[addr] = count.get(addr, 0) + 1
        out.append((blk, addr))
    return out


def _send(client, a, b, watch):
    """(x spec, xb spec) for the tile tasks: in-memory inputs scattered once to every worker (a
    file input travels as its path; the network travels in the store). A scatter needs a worker:
    it waits for one first, as ``watch`` says."""
    def spec(inputs):
        if inputs is None or inputs.spec is not None:
            return None if inputs is None else inputs.spec
        watch.wait_for_worker()
        return client.scatter(inputs.array, broadcast=True, hash=False)

    return spec(a), spec(b)


def _run_tiles(client, plan, path, specs, todo, total, progress, threads, watch, after_submit=None, resend=None,
               shared_gates=False):
    """Submit the tiles, call ``after_submit()`` (while they compute), then wait for them (while
    the cluster has workers: see WorkerWatch). ``resend()``: the inputs' specs scattered again,
    for tiles cancelled because the scattered inputs were lost with every worker holding them.
    ``shared_gates``: each row block's packed gates are computed once, by a task of their own
    (_gate_blocks), and handed to the tiles that need them; a tile sent again computes its own."""
    run = uuid.uuid4().hex[:8]
    current = [specs]  # (x spec, xb spec), replaced by resend() once scattered inputs are lost
    order = _placement(threads, plan, todo)
    sent = {}  # future -> (tile, worker it is placed on or None), for the futures waited for
    more = []  # futures sent again while waiting, for watch.completed to wait for too
    keys = itertools.count()
    cancelled = {}  # tile -> times Dask cancelled it (not us)
    gate_futures = {}  # (side, block) -> Future of _gates_task
    if shared_gates:
        for (side, k), addr in _gate_blocks(plan, order):
            gate_futures[side, k] = client.submit(
                _gates_task, plan, path, specs[0] if side == "a" or specs[1] is None else specs[1], side, k,
                key=f"gatednet-gates-{side}{k}-{run}", pure=False, priority=len(order) + 1,
                workers=None if addr is None else [addr], allow_other_workers=addr is not None)
    side_b = "a" if plan["symmetric"] else "b"
    with_gates = set()  # the futures of tiles that wait for gate tasks

    def submit(k, i, j, addr, gates=True):
        xa_spec, xb_spec = current[0]
        ga = gate_futures.get(("a", i)) if gates else None
        gb = gate_futures.get((side_b, j)) if gates and not (plan["symmetric"] and i == j) else None
        fut = client.submit(_zarr_tile_task, plan, path, xa_spec, xb_spec, i, j, ga, gb,
                            key=f"gatednet-tile-{i}-{j}-{run}-{next(keys)}", pure=False, priority=len(order) - k,
                            workers=None if addr is None else [addr], allow_other_workers=addr is not None)
        sent[fut] = ((i, j), addr)
        if ga is not None or gb is not None:
            with_gates.add(fut)
        return fut

    def send_again(fut):
        # A tile Dask cancelled: its scattered inputs went with the last worker holding them
        # (every worker left), so they are scattered again (once a worker is there) and the
        # tile sent again; a tile cancelled again and again is an error, not a loop.
        (i, j), _ = sent.pop(fut)
        cancelled[i, j] = cancelled.get((i, j), 0) + 1
        if cancelled[i, j] > MAX_CANCELLED:
            raise RuntimeError(f"tile ({i}, {j}) of {path!r} was cancelled by the cluster {cancelled[i, j]} times; "
                               f"the finished tiles are kept: call again to finish")
        if lost(current[0]) and resend is not None:
            current[0] = resend()
        more.append(submit(0, i, j, None, gates=False))

    def unplace():
        # Every worker left and others joined: Dask keeps a task placed (even loosely) on a
        # departed worker waiting for that address forever (dask/distributed#7346), so the
        # placed tiles not finished are sent again without a placement (a tile written twice
        # is written with the same bits, atomically), and so are the tiles that wait for gate
        # tasks (which may be placed there too): they compute their own gates.
        stuck = [f for f, (_, addr) in sent.items() if (addr is not None or f in with_gates) and not f.done()]
        client.cancel(stuck)
        again = []
        for f in stuck:
            (i, j), _ = sent.pop(f)
            again.append(submit(0, i, j, None, gates=False))
        return again

    futures = [submit(k, i, j, addr) for k, ((i, j), addr) in enumerate(order)]
    # The tiles hold the gate tasks now (tiles sent again compute their own gates): dropped here,
    # each block's gates are freed once its last tile is done, not held until every tile is.
    gate_futures.clear()
    finished = total - len(order)
    try:
        if after_submit is not None:
            after_submit()
        for fut in watch.completed(futures, when_workers_return=unplace, more=more):
            if fut not in sent:  # cancelled and sent again by unplace()
                continue
            if fut.status == "cancelled":  # by Dask, not by us: never counted as finished
                send_again(fut)
                continue
            if fut.status == "error":
                (i, j), _ = sent[fut]
                raise RuntimeError(f"tile ({i}, {j}) of {path!r} failed on a worker: "
                                   f"{type(fut.exception()).__name__}: {fut.exception()}") from fut.exception()
            del sent[fut]
            fut.release()
            finished += 1
            if progress is not None:
                progress(finished, total)
    finally:
        client.cancel([f for f in list(sent) + list(gate_futures.values()) if not f.done()])


def tiles_done(store):
    """(finished, total) tiles of a store (what a resumed run would skip)."""
    import zarr

    g = zarr.open_group(os.fspath(store), mode="r")
    attrs = g.attrs["gatednet"]
    _, _, tiles = tile_grid(attrs)
    done = g["done"][...]
    return sum(int(done[i, j]) for i, j in tiles), len(tiles)


# ---- lazy dask arrays -------------------------------------------------------------------------

def _transposed(k):
    return np.ascontiguousarray(k.T)


def kernel_array(net, x, *, kind="npk", xb=None, tile=2048, layer=0, output=None, gate_path="auto",
                 ntk_scaling=False):
    """The same kernel as a lazy dask array (chunks = tiles), computed when you compute it (e.g.
    ``.to_zarr``, a reduction, or ``K @ v`` streamed over tiles). For a symmetric kernel a lower
    tile is the transpose of the upper tile's task result. Inputs as for :func:`kernel_to_zarr`."""
    import dask
    import dask.array as da

    plan, data, a, b, _ = _plan(net, x, kind, xb, tile, layer, output, gate_path, ntk_scaling)
    net_d = dask.delayed(data, pure=True)
    xa_d = a.spec if a.spec is not None else dask.delayed(a.array, pure=True)
    xb_d = None if b is None else (b.spec if b.spec is not None else dask.delayed(b.array, pure=True))
    ta, tb, tiles = tile_grid(plan)
    upper = {(i, j): dask.delayed(_worker_tile, pure=True)(plan, net_d, xa_d, xb_d, i, j) for i, j in tiles}
    rows = []
    for i in range(ta):
        row = []
        for j in range(tb):
            r0, r1, c0, c1 = tile_bounds(plan, i, j)
            d = upper[(i, j)] if (i, j) in upper else dask.delayed(_transposed, pure=True)(upper[(j, i)])
            row.append(da.from_delayed(d, shape=(r1 - r0, c1 - c0), dtype=np.float32))
        rows.append(row)
    return da.block(rows)
