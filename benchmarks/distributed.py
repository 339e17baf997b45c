"""Benchmarks of gatednet.distributed on real Fashion-MNIST (results: benchmarks/DISTRIBUTED.md).

    python benchmarks/distributed.py overhead --n 10000          # Dask tiles vs one library call
    python benchmarks/distributed.py scaling --n 20000 40000      # NPK to zarr: s per entry, worker RSS
    python benchmarks/distributed.py sweep --tasks 8              # models/hour on 1 and 2 workers
    python benchmarks/distributed.py curve --n 1000 5000 10000 20000   # kernel ridge learning curve

Every command prints a markdown table. --workdir holds the .npy inputs and zarr stores
(default /tmp/gatednet-distributed-bench; stores are deleted after use unless --keep).
"""

import os
import sys

# This file is named distributed.py: keep its directory off sys.path so that `import distributed`
# finds Dask's package, not this script.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != _HERE]

import argparse  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402

import gatednet as gn  # noqa: E402
from gatednet import distributed as gd  # noqa: E402

DATA = os.environ.get("GATEDNET_FASHION_DIR", "/usr/share/datasets/fashion-mnist")
WIDTHS = [128] * 4


def fashion():
    def read(name, scale=None):
        return np.asarray(gn.load_idx(os.path.join(DATA, name), scale))
    x = read("train-images-idx3-ubyte.gz", 1 / 255).reshape(-1, 784)
    y = read("train-labels-idx1-ubyte.gz").astype(np.int32)
    xt = read("t10k-images-idx3-ubyte.gz", 1 / 255).reshape(-1, 784)
    yt = read("t10k-labels-idx1-ubyte.gz").astype(np.int32)
    return x, y, xt, yt


def npy(workdir, name, arr):
    path = os.path.join(workdir, name + ".npy")
    np.save(path, np.ascontiguousarray(arr, dtype=np.float32))
    return path


def drop(path, keep):
    if not keep:
        shutil.rmtree(path, ignore_errors=True)


def load():
    return os.getloadavg()[0]


def worker_peak_rss_mb(client):
    return {w: r / 1024 for w, r in client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss).items()}


def gated_network(x, y, seed=1, epochs=5):
    """A ReLU net trained on (x, y) and the fixed-learnt DGN on its gates, trained on the same data."""
    relu = gn.Network(784, WIDTHS, 10, regime="relu", seed=seed)
    relu.fit(x, y, epochs=epochs, lr=1e-3)
    dgn = gn.Network(784, WIDTHS, 10, regime="fixed_learnt", gate_source=relu, seed=seed + 1)
    dgn.fit(x, y, epochs=epochs, lr=1e-3)
    return relu, dgn


def overhead(args, data):
    """Per run, one after the other on the same cores, in one process run: the direct call (a new
    result array, the binding's default), the direct call into a reused ``out`` array (the
    fastest way to call it repeatedly), the direct call + np.save of its result to the same disk,
    and gatednet.distributed to zarr. ``--idle S`` sleeps S seconds before each timed call: on
    this VM memory left unused for a few seconds goes back to the host and costs ~10x to touch
    again, which is what a call made now and then meets; back to back (0) every call finds
    memory its predecessor just freed."""
    x, y, _, _ = data
    net = gn.Network(784, WIDTHS, 10, regime="fixed_random_ii", seed=1)
    xs = x[:args.n]
    path = npy(args.workdir, f"x{args.n}", xs)
    rows = []
    client = connect(args)
    if args.zarr_writes:  # measure the write path of two sessions ago: tiles through zarr
        client.run(_through_zarr)
    tile = args.tile or gd.tile_for(args.n, None, sum(client.nthreads().values()))
    out = np.empty((args.n, args.n), np.float32)

    def timed(fn):
        time.sleep(args.idle)
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    try:
        store = os.path.join(args.workdir, "overhead.zarr")
        saved = os.path.join(args.workdir, "overhead-direct.npy")
        # warm-up (not timed): workers load the library, map the inputs, first-touch their pages
        gd.kernel_to_zarr(net, path, store, kind=args.kind, tile=tile, client=client, overwrite=True)
        drop(store, False)
        net.kernel(xs, None, args.kind, out=out)
        for rep in range(args.repeat):
            t_direct = timed(lambda: net.kernel(xs, None, args.kind))
            t_out = timed(lambda: net.kernel(xs, None, args.kind, out=out))
            t_saved = timed(lambda: np.save(saved, np.asarray(net.kernel(xs, None, args.kind))))
            os.unlink(saved)
            t_dask = timed(lambda: gd.kernel_to_zarr(net, path, store, kind=args.kind, tile=tile, client=client,
                                                     overwrite=True))
            drop(store, args.keep)
            rows.append((rep, t_direct, t_out, t_saved, t_dask, load()))
            print(rows[-1], flush=True)
    finally:
        gd.close_client(client)
    writes = "through zarr" if args.zarr_writes else "raw chunk files"
    print(f"\n### Overhead: {args.kind}, n = {args.n}, tile {tile}, {args.workers} workers "
          f"({args.mp_method}), chunk writes {writes}, idle {args.idle:g} s before each call\n")
    print("| run | direct call (s) | direct into reused out (s) | direct + np.save (s) | gatednet.distributed "
          "to zarr (s) | ratio to direct | ratio to direct into out | ratio to direct + save | load avg |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r, d, o, sv, k, la in rows:
        print(f"| {r} | {d:.2f} | {o:.2f} | {sv:.2f} | {k:.2f} | {k / d:.2f} | {k / o:.2f} | {k / sv:.2f} | {la:.1f} |")
    med = lambda v: float(np.median(v))  # noqa: E731
    d, o, sv, k = (np.array([r[i] for r in rows]) for i in (1, 2, 3, 4))
    print(f"| median | {med(d):.2f} | {med(o):.2f} | {med(sv):.2f} | {med(k):.2f} | {med(k / d):.2f} | "
          f"{med(k / o):.2f} | {med(k / sv):.2f} | |")


def passes(args, data):
    """Seconds per CG pass (K @ P, P n x 10 in float64) over an n x n NPK store, against reading
    the store's files (page cache) and against the in-memory product."""
    x, _, _, _ = data
    net = gn.Network(784, WIDTHS, 10, regime="fixed_random_ii", seed=1)
    n = args.n[0]
    path = npy(args.workdir, f"x{n}", x[:n])
    client = connect(args)
    store = os.path.join(args.workdir, f"pass{n}.zarr")
    rows = []
    try:
        gd.kernel_to_zarr(net, path, store, kind=args.kind, tile=args.tile, client=client, overwrite=True)
        from gatednet.distributed.ridge import _Operator

        op = _Operator(store, client)
        P = np.random.default_rng(0).standard_normal((n, 10))
        files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(store, "kernel")) for f in fs]
        for rep in range(args.repeat):
            t0 = time.perf_counter()
            nbytes = 0
            for f in files:
                with open(f, "rb") as fh:
                    while chunk := fh.read(1 << 24):
                        nbytes += len(chunk)
            t_read = time.perf_counter() - t0
            t0 = time.perf_counter()
            op.matmul(P)
            t_pass = time.perf_counter() - t0
            t0 = time.perf_counter()
            op.matmul(P, sketch=True)
            t_pass32 = time.perf_counter() - t0
            t0 = time.perf_counter()
            op.columns(np.sort(np.random.default_rng(1).choice(n, args.rank, replace=False)))
            t_sketch = time.perf_counter() - t0
            rows.append((rep, nbytes / 1e9, t_read, t_pass, t_pass32, t_sketch, load()))
            print(rows[-1], flush=True)
    finally:
        gd.close_client(client)
        drop(store, args.keep)
    print(f"\n### CG pass over the n = {n} store ({args.workers} workers)\n")
    print(f"| run | store (GB) | read all files, 1 thread (s) | CG pass K @ P, P n x 10 f64 (s) | "
          f"same in f32 (s) | sketch: read {args.rank} columns (s) | load avg |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.2f} | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.2f} | {r[6]:.1f} |")


def _through_zarr():
    """On a worker: write tiles through zarr instead of as raw chunk files."""
    from gatednet.distributed import _chunks

    _chunks.RawChunks.of = classmethod(lambda cls, arr: None)


def connect(args):
    """A LocalCluster of args.workers processes, started by spawn (Dask's default) or fork."""
    import dask
    import distributed  # noqa: F401  (loads its config defaults; set() below then restores them)

    with dask.config.set({"distributed.worker.multiprocessing-method": args.mp_method}):
        client = gd.connect(workers=args.workers)
        client.wait_for_workers(args.workers)
    return client


def scaling(args, data):
    x, _, _, _ = data
    net = gn.Network(784, WIDTHS, 10, regime="fixed_random_ii", seed=1)
    rows = []
    for n in args.n:
        path = npy(args.workdir, f"x{n}", x[:n])
        client = connect(args)  # fresh workers: their peak RSS is this run's
        try:
            store = os.path.join(args.workdir, f"scaling{n}.zarr")
            t0 = time.perf_counter()
            gd.kernel_to_zarr(net, path, store, kind=args.kind, tile=args.tile, client=client, overwrite=True)
            seconds = time.perf_counter() - t0
            rss = worker_peak_rss_mb(client)
        finally:
            gd.close_client(client)
        drop(store, args.keep)
        rows.append((n, seconds, seconds / (n * (n + 1) / 2) * 1e9, max(rss.values()), n * n * 4 / 1e9, load()))
        print(rows[-1], flush=True)
    print(f"\n### Scaling: {args.kind} to zarr, tile {args.tile}, {args.workers} workers\n")
    print("| n | store (GB) | wall (s) | ns per computed entry (upper triangle) | peak RSS per worker (MB) | load avg |")
    print("|---|---|---|---|---|---|")
    for n, s, ns, rss, gb, la in rows:
        print(f"| {n} | {gb:.1f} | {s:.0f} | {ns:.2f} | {rss:.0f} | {la:.1f} |")


def sweep_task(seed, n, epochs):
    """One sweep model: a ReLU net 784-128x4-10 trained on n Fashion-MNIST images, test accuracy."""
    x, y, xt, yt = fashion()
    net = gn.Network(784, WIDTHS, 10, regime="relu", seed=seed)
    net.fit(x[:n], y[:n], epochs=epochs, lr=1e-3, shuffle_seed=seed)
    return {"seed": seed, "accuracy": net.evaluate(xt, yt)["accuracy"]}


def sweep(args, data):
    rows = []
    for workers in (1, 2):
        tasks = [SimpleNamespace(key=f"seed={s}", fn=sweep_task, kwargs={"seed": s, "n": args.sweep_n, "epochs": 1})
                 for s in range(args.tasks)]
        got = {}
        with gd.DaskExecutor(workers=workers) as ex:
            ex.client.wait_for_workers(workers)
            t0 = time.perf_counter()
            ex.run(tasks, lambda k, r: got.__setitem__(k, r))
            seconds = time.perf_counter() - t0
        assert len(got) == args.tasks
        rows.append((workers, seconds, args.tasks / seconds * 3600, load()))
        print(rows[-1], flush=True)
    print(f"\n### Sweep throughput: {args.tasks} models (ReLU 784-128x4-10, {args.sweep_n} images, 1 epoch)\n")
    print("| workers | wall (s) | models per hour | load avg |")
    print("|---|---|---|---|")
    for w, s, mph, la in rows:
        print(f"| {w} | {s:.0f} | {mph:.0f} | {la:.1f} |")


def curve(args, data):
    x, y, xt, yt = data
    xt, yt = xt[:args.test], yt[:args.test]
    test_path = npy(args.workdir, "xtest", xt)
    rows = []
    client = connect(args)
    try:
        for n in args.n:
            xs, ys = x[:n], y[:n]
            path = npy(args.workdir, f"x{n}", xs)
            epochs = int(min(50, max(5, 200_000 // n)))
            t0 = time.perf_counter()
            relu, dgn = gated_network(xs, ys, epochs=epochs)
            t_train = time.perf_counter() - t0
            print(f"n={n}: trained both nets ({epochs} epochs) in {t_train:.0f} s, load {load():.1f}", flush=True)
            acc_relu, acc_dgn = relu.evaluate(xt, yt)["accuracy"], dgn.evaluate(xt, yt)["accuracy"]
            targets = np.asarray(gn.kernel_targets(ys, 10))
            for kind in args.kinds:
                K = os.path.join(args.workdir, f"K{n}-{kind}.zarr")
                Kt = os.path.join(args.workdir, f"Kt{n}-{kind}.zarr")
                t0 = time.perf_counter()
                gd.kernel_to_zarr(dgn, path, K, kind=kind, tile=args.tile, client=client)
                gd.kernel_to_zarr(dgn, test_path, Kt, xb=path, kind=kind, tile=args.tile, client=client)
                t_kernel = time.perf_counter() - t0
                ridge = args.ridge * gd.kernel_diagonal(K, client=client).mean()
                print(f"n={n} {kind}: kernels {t_kernel:.0f} s, load {load():.1f}", flush=True)
                t_fit = time.perf_counter()

                def report(it, res):
                    print(f"  pass {it}: max residual {res.max():.2e}, {time.perf_counter() - t_fit:.0f} s "
                          f"since the fit began, load {load():.1f}", flush=True)
                alpha, info = gd.ridge_fit(K, targets, ridge, rank=min(args.rank, n), tol=args.tol,
                                           max_iter=args.max_iter, client=client, callback=report,
                                           products=args.products, sketch=args.sketch)
                t0 = time.perf_counter()
                acc = float((gd.ridge_predict(Kt, alpha, client=client).argmax(1) == yt).mean())
                t_pred = time.perf_counter() - t0
                per_pass = (info["seconds"] - info["sketch_seconds"]) / max(1, info["iterations"])
                rows.append((n, kind, acc, acc_dgn, acc_relu, t_kernel, info["seconds"], info["passes"],
                             info["residual"], t_pred, t_train, load(), info["sketch_seconds"], per_pass))
                print(rows[-1], flush=True)
                drop(K, args.keep)
                drop(Kt, args.keep)
    finally:
        gd.close_client(client)
    print(f"\n### Learning curve: kernel ridge on Fashion-MNIST ({args.test} test images), 784-128x4-10\n")
    print("| n | kernel | kernel acc | DGN (same gates) acc | ReLU acc | kernels K + cross (s) | ridge CG (s) | "
          "passes | residual | sketch pass + factor (s) | s per CG pass | predict (s) | train both nets (s) | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.4f} | {r[3]:.4f} | {r[4]:.4f} | {r[5]:.0f} | {r[6]:.0f} | {r[7]} | "
              f"{r[8]:.1e} | {r[12]:.0f} | {r[13]:.1f} | {r[9]:.1f} | {r[10]:.0f} | {r[11]:.1f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("overhead", "passes", "scaling", "sweep", "curve"))
    p.add_argument("--n", type=int, nargs="+", default=None)
    p.add_argument("--kind", default="npk_normalized")
    p.add_argument("--tile", type=int, default=None, help="tile edge (default: gatednet.distributed.tile_for)")
    p.add_argument("--mp-method", default="spawn", choices=("spawn", "fork", "forkserver"),
                   help="how LocalCluster starts workers (fork: a child of a process that loaded the "
                        "library computes on its calling thread only, see gatednet.h 'fork()')")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--tasks", type=int, default=8)
    p.add_argument("--sweep-n", type=int, default=10000)
    p.add_argument("--test", type=int, default=10000)
    p.add_argument("--ridge", type=float, default=1e-2, help="ridge as a fraction of the mean diagonal")
    p.add_argument("--rank", type=int, default=500, help="Nystrom preconditioner rank")
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--products", default="float64", choices=("float64", "float32"),
                   help="curve: precision of the CG products (gatednet.distributed.ridge_fit)")
    p.add_argument("--sketch", default="columns", choices=("columns", "gaussian"),
                   help="curve: the Nystrom sketch (gatednet.distributed.ridge_fit)")
    p.add_argument("--zarr-writes", action="store_true",
                   help="overhead: write tiles through zarr (the write path of two sessions ago), for comparison")
    p.add_argument("--idle", type=float, default=0.0,
                   help="overhead: seconds to sleep before each timed call (0: back to back)")
    p.add_argument("--kinds", nargs="+", default=["npk_normalized", "npk_limit"],
                   help="curve: the kernels (npk_normalized = NPK of the DGN's learnt gates)")
    p.add_argument("--max-iter", type=int, default=200)
    p.add_argument("--workdir", default="/tmp/gatednet-distributed-bench")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    if args.n is None:
        args.n = {"overhead": 10000, "passes": [10000], "scaling": [20000, 40000],
                  "curve": [1000, 5000, 10000, 20000]}.get(args.what)
    if args.what == "overhead" and isinstance(args.n, list):
        args.n = args.n[0]
    print(f"gatednet {gn.library_version}, {os.cpu_count()} cores, load avg {load():.1f} at start", flush=True)
    {"overhead": overhead, "passes": passes, "scaling": scaling, "sweep": sweep,
     "curve": curve}[args.what](args, fashion())


if __name__ == "__main__":
    main()
