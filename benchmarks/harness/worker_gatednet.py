"""gatednet side of every workload, through the C ABI with ctypes (no numpy needed)."""
import ctypes
import mmap
import os
import sys
from ctypes import c_float, c_int32

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import gn  # noqa: E402
from workloads import CLASSES, D_IN, REGIMES, WIDTH, DEPTH_HIDDEN  # noqa: E402

LIB = None


def measure(task, fn):
    """common.measure, plus the GEMM-only speed of this hot path's products measured right
    after each timed call (same load), when the orchestrator passes task['ref_shapes']."""
    after = None
    if task.get("ref_shapes"):
        ref = common.SgemmReference(task["ref_shapes"])
        secs = task.get("ref_seconds", 0.1)
        after = lambda: ref.gflops(secs)  # noqa: E731
    return common.measure(fn, task["runs"], task.get("warmup", 1), after=after)


def lib():
    global LIB
    if LIB is None:
        LIB = gn.Lib()
    return LIB


def load(which_x, which_y, n):
    """First n rows of a Fashion-MNIST split as ctypes arrays (seeded noise without it)."""
    if common.have_fmnist():
        x, dims = lib().idx_read_f32(common.data_path(which_x), 1.0 / 255.0)
        y, _ = lib().idx_read_i32(common.data_path(which_y))
        if n > dims[0]:
            raise ValueError(f"n={n} > {dims[0]} rows in {which_x}")
        return x, y, "fashion-mnist"
    xs, ys = common.synthetic(n, D_IN, CLASSES)
    return (c_float * (n * D_IN))(*xs), (c_int32 * n)(*ys), "synthetic"


def fc_net(regime, seed=0):
    return lib().network(REGIMES[regime][0], D_IN, [WIDTH] * DEPTH_HIDDEN, CLASSES, seed=seed)


def train(task):
    n, batch = task["n"], task["batch"]
    x, y, data = load("train_x", "train_y", n)
    net = fc_net(task["regime"])
    seed = [0]

    def run():
        seed[0] += 1
        net.train(x, y, n, batch, epochs=1, lr=3e-4, seed=seed[0])
    res = measure(task, run)
    res.update(items=n, data=data, describe=net.describe())
    return res


def infer(task):
    n = task["n"]
    x, _, data = load("test_x", "test_y", n)
    net = fc_net(task["regime"])
    out = (c_float * (n * CLASSES))()
    res = measure(task, lambda: net.predict(x, n, out, n * CLASSES))
    res.update(items=n, data=data)
    return res


def _dump_weights(net, directory):
    """Feature weights (hidden layers) as raw float32 files for the numpy peer."""
    os.makedirs(directory, exist_ok=True)
    for l in range(DEPTH_HIDDEN):
        w, (r, c) = net.weights(gn.PART_FEATURE, l)
        with open(os.path.join(directory, f"wf{l}_{r}x{c}.f32"), "wb") as f:
            f.write(bytes(w))


def fresh_pages(nbytes):
    """A fresh anonymous mapping for a kernel's output, advised for transparent huge pages as
    numpy's allocator advises its large arrays (numpy's NPK peer writes into such an array): the
    first-touch page faults then cost the same on both sides."""
    m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE)  # private: shared anonymous memory is shmem, which gets no THP
    if hasattr(mmap, "MADV_HUGEPAGE"):
        m.madvise(mmap.MADV_HUGEPAGE)
    return m


def npk(task):
    n = task["n"]
    x, _, data = load("train_x", "train_y", n)
    net = fc_net("fixed_hard")
    if task.get("weights_dir"):
        _dump_weights(net, task["weights_dir"])
    holder = {}

    def run():
        # a fresh output per call, as numpy's peer allocates one: fresh anonymous pages, first
        # touched (and counted) inside the kernel call, like numpy's uninitialised result
        # (a ctypes array would also be memset to zero first, a pass numpy does not make)
        holder["out"] = None
        out = holder["out"] = (c_float * (n * n)).from_buffer(fresh_pages(4 * n * n))
        if suite:
            gn.kernel_compute(net, "npk", x, n, x, n, out, n, n * n)
        else:
            net.kernel("npk", x, n, x, n, out, n, n * n)
    suite = lib().has("gn_kernel_compute")
    res = measure(task, run)
    res["api"] = "gn_kernel_compute (gate path auto)" if suite else "gn_kernel"
    out = holder["out"]
    res.update(items=n, data=data, output_bytes=4 * n * n,
               samples=[[i, j, out[i * n + j]] for i, j in common.sample_pairs(n)])
    return res


def scaling(task):
    """NPK for one n: in memory up to task['mmap_from'], else the upper triangle computed in
    row bands into a memory-mapped file, each band mapped only while it is written."""
    n = task["n"]
    if n < task["mmap_from"]:
        r = npk(dict(task, weights_dir=None))
        r["mode"] = "in-memory"
        return r
    x, _, data = load("train_x", "train_y", n)
    net = fc_net("fixed_hard")
    suite = lib().has("gn_kernel_compute")
    band = task.get("band", 4096)  # a multiple of 1024 rows keeps band offsets page aligned
    path = os.path.join(task["scratch"], f"npk_{n}.f32")
    nbytes = 4 * n * n

    def run():
        with open(path, "wb+") as f:
            f.truncate(nbytes)
            for i0 in range(0, n, band):
                rows = min(band, n - i0)
                off = 4 * i0 * n
                mm = mmap.mmap(f.fileno(), 4 * rows * n, offset=off)
                base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
                # band rows i0.., columns i0.. (upper triangle incl. the diagonal block)
                outp = ctypes.cast(base + 4 * i0, ctypes.POINTER(c_float))
                cap = (rows - 1) * n + (n - i0)
                if suite:  # diagonal block (one triangle), then the rest of the band
                    gn.kernel_compute(net, "npk", x, n, x, n, outp, n, cap, row_begin=i0,
                                      row_count=rows, col_begin=i0, col_count=rows, upper_only=1)
                    if i0 + rows < n:
                        outq = ctypes.cast(base + 4 * (i0 + rows), ctypes.POINTER(c_float))
                        gn.kernel_compute(net, "npk", x, n, x, n, outq, n,
                                          (rows - 1) * n + (n - i0 - rows), row_begin=i0,
                                          row_count=rows, col_begin=i0 + rows)
                        del outq
                else:
                    xa = gn.offset(x, i0 * D_IN)
                    net.kernel("npk", xa, rows, xa, n - i0, outp, n, cap)
                del outp
                mm.close()  # unmapped band by band; the OS writes the pages back lazily
    try:
        res = measure(task, run)
        with open(path, "rb") as f:  # check a few stored entries against an in-RAM recompute
            pairs = [(i, j) for i, j in common.sample_pairs(n, 6) if j >= i]
            vals = []
            for i, j in pairs:
                f.seek(4 * (i * n + j))
                vals.append(c_float.from_buffer_copy(f.read(4)).value)
        res["samples"] = [[i, j, v] for (i, j), v in zip(pairs, vals)]
        one = (c_float * 1)()
        err = 0.0
        for (i, j), v in zip(pairs, vals):
            net.kernel("npk", gn.offset(x, i * D_IN), 1, gn.offset(x, j * D_IN), 1, one, 1, 1)
            err = max(err, abs(v - one[0]) / max(abs(one[0]), 1e-30))
        res["check_rel_err"] = err
    finally:
        if os.path.exists(path):
            os.remove(path)
    res.update(items=n, data=data, output_bytes=nbytes, mode=f"mmap file, {band}-row bands")
    return res


def info(task):
    L = lib()
    ob = gn.openblas_info(L)
    shapes = task.get("ref_shapes") or {}
    refs = {}
    for name, sh in shapes.items():
        refs[name] = common.sgemm_reference([tuple(s) for s in sh], min_seconds=task.get("ref_seconds", 0.25))
    return {"version": L.version(), "path": L.path,
            "openblas": ob, "exports": {k: L.has(k) for k in task.get("probe", [])},
            "sgemm_gflops": refs}


def _need(*names):
    missing = [f for f in names if not lib().has(f)]
    if missing:
        return {"unavailable": "not available in this build (" + ", ".join(missing) + " not exported)"}
    return None


def ntk_empirical(task):
    """Empirical NTK of the ReLU MLP, summed over the 10 outputs (trace), gradients w.r.t. the
    weights as stored (standard parametrisation), like neural-tangents' trace_axes=(-1,)."""
    miss = _need("gn_kernel_compute", "gn_kernel_options_init")
    if miss:
        return miss
    n = task["n"]
    x, _, data = load("train_x", "train_y", n)
    net = fc_net("relu")
    if task.get("weights_dir"):
        os.makedirs(task["weights_dir"], exist_ok=True)
        for l in range(DEPTH_HIDDEN + 1):
            w, (r, c) = net.weights(gn.PART_VALUE, l)
            with open(os.path.join(task["weights_dir"], f"wv{l}_{r}x{c}.f32"), "wb") as f:
                f.write(bytes(w))
    holder = {}

    def run():  # a fresh output per call, first touched inside the call (as the peer's)
        holder["out"] = None
        out = holder["out"] = (c_float * (n * n)).from_buffer(fresh_pages(4 * n * n))
        gn.kernel_compute(net, "ntk", x, n, x, n, out, n, n * n, output=-1)
    res = measure(task, run)
    out = holder["out"]
    res.update(items=n, data=data, output_bytes=4 * n * n,
               samples=[[i, j, out[i * n + j]] for i, j in common.sample_pairs(n)])
    return res


def ntk_infinite(task):
    """Infinite-width NTK (NTK parametrisation, ReLU, no bias) of one output unit."""
    miss = _need("gn_kernel_compute", "gn_kernel_options_init")
    if miss:
        return miss
    n = task["n"]
    hidden = task.get("depth", 6) - 1
    x, _, data = load("train_x", "train_y", n)
    net = lib().network("relu", D_IN, [WIDTH] * hidden, CLASSES, seed=0)
    out = (c_float * (n * n))()
    res = measure(task, lambda: gn.kernel_compute(net, "ntk_limit", x, n, x, n, out, n, n * n,
                                                   output=0))
    res.update(items=n, data=data, output_bytes=4 * n * n,
               samples=[[i, j, out[i * n + j]] for i, j in common.sample_pairs(n)])
    return res


def conv_train(task):
    miss = _need("gn_conv_network_create", "gn_conv_network_train", "gn_conv_architecture_layers")
    if miss:
        return miss
    batch, steps = task["batch"], task["steps"]
    n = batch * steps
    x, y, data = load("train_x", "train_y", n)
    regime = REGIMES[task.get("regime", "fixed_hard")][0]
    net = gn.ConvNetwork(lib(), "gconv", regime)
    seed = [0]

    def run():
        seed[0] += 1
        net.train(x, y, n, batch, epochs=1, lr=3e-4, seed=seed[0])
    res = measure(task, run)
    res.update(items=n, data=data, describe=net.describe(), layers=net.layer_list())
    return res


HANDLERS = {"ntk_empirical": ntk_empirical, "ntk_infinite": ntk_infinite,
            "conv_train": conv_train, "train": train, "infer": infer, "npk": npk, "scaling": scaling, "info": info}

if __name__ == "__main__":
    common.main(HANDLERS)
