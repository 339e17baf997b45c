"""Shared helpers for the benchmark workers: timing, peak memory, data, JSON protocol.

Every worker is run in a fresh interpreter by bench.py with one JSON task as argv[1] and
prints one JSON result as its last stdout line, so peak memory is per workload and peers
with conflicting dependencies (torch / jax) never share a process.
"""
import ctypes
import gzip
import json
import os
import statistics
import struct
import sys
import time
import traceback

FMNIST_DIR = os.environ.get("GATEDNET_FMNIST", "/usr/share/datasets/fashion-mnist")
FILES = {"train_x": "train-images-idx3-ubyte.gz", "train_y": "train-labels-idx1-ubyte.gz",
         "test_x": "t10k-images-idx3-ubyte.gz", "test_y": "t10k-labels-idx1-ubyte.gz"}


def data_path(which):
    if os.environ.get("BENCH_SMOKE") == "1":  # smoke sizes fit the 10k test split: faster load
        which = which.replace("train", "test")
    return os.path.join(FMNIST_DIR, FILES[which])


def have_fmnist():
    return all(os.path.exists(data_path(k)) for k in FILES)


def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) * 1024
    return out


def reset_peak():
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_during(fn):
    """(result, bytes): run fn once and return the peak RSS growth over the RSS before it."""
    before = status()["VmRSS"]
    exact = reset_peak()
    r = fn()
    peak = status()["VmHWM"] - before
    return r, (peak if exact else None)


def measure(fn, runs, warmup=1, after=None):
    """Wall times of `runs` calls after `warmup` untimed calls; the first warm-up's peak
    memory is measured. Returns dict(times, peak_bytes, warmup_s).

    With BENCH_INTERACTIVE=1 the timed calls are paced by the orchestrator: after the
    warm-up the worker prints @@READY@@ and then times one call per "run" line on stdin
    (answering @@TIME@@ seconds) until "end", so two sides can alternate run by run on a
    noisy machine and see the same conditions. `after` (untimed) runs after each timed call;
    its return values are collected in "after"."""
    after_values = []
    peak = None
    first = [True]

    def call():
        nonlocal peak
        if first[0]:  # the first call, warm-up or not, is the one whose peak memory counts
            first[0] = False
            _, peak = peak_during(fn)
        else:
            fn()
    wt = []
    for i in range(warmup):
        t0 = time.perf_counter()
        call()
        wt.append(time.perf_counter() - t0)
    times = []
    if os.environ.get("BENCH_INTERACTIVE") == "1":
        print("@@READY@@", flush=True)
        for line in sys.stdin:
            if line.strip() != "run":
                break
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
            if after:
                after_values.append(after())
            print(f"@@TIME@@ {times[-1]!r}", flush=True)
    else:
        for _ in range(runs):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
            if after:
                after_values.append(after())
    return {"times": times, "peak_bytes": peak, "warmup_s": wt, "after": after_values}


def summary(times):
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def read_idx_numpy(which, limit=None):
    """Fashion-MNIST as numpy (float32 in [0,1] for images, int64 labels)."""
    import numpy as np
    with gzip.open(data_path(which), "rb") as f:
        raw = f.read()
    zero, dtype, nd = struct.unpack(">HBB", raw[:4])
    dims = struct.unpack(">" + "I" * nd, raw[4:4 + 4 * nd])
    a = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)
    if limit is not None:
        a = a[:limit]
    if nd == 1:
        return a.astype(np.int64)
    return (a.reshape(a.shape[0], -1).astype(np.float32) / np.float32(255.0))


def synthetic(n, d, classes=10, seed=0):
    """Seeded uniform inputs and labels (lists), used when Fashion-MNIST is absent; every side
    draws the same values from the same Python generator."""
    import random
    rng = random.Random(seed)
    return [rng.random() for _ in range(n * d)], [rng.randrange(classes) for _ in range(n)]


def synthetic_numpy(n, d, classes=10, seed=0):
    import numpy as np
    x, y = synthetic(n, d, classes, seed)
    return np.asarray(x, dtype=np.float32).reshape(n, d), np.asarray(y, dtype=np.int64)


def sample_pairs(n, k=16):
    """Fixed kernel entries (i, j) both sides report for the cross-check."""
    import random
    rng = random.Random(12345)
    return [(rng.randrange(n), rng.randrange(n)) for _ in range(k)] + [(0, 0), (n - 1, n - 1)]


def main(handlers):
    """Worker entry: dispatch argv[1] task to handlers[task['workload']], print JSON."""
    task = json.loads(sys.argv[1])
    try:
        h = handlers.get(task["workload"])
        if h is None:
            res = {"unavailable": f"workload {task['workload']} not implemented by this peer"}
        else:
            res = h(task)
    except Exception as e:  # reported in the table, never hidden
        res = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-2000:]}
    sys.stdout.flush()
    print("\n@@RESULT@@" + json.dumps(res))


class SgemmReference:
    """cblas_sgemm of the OpenBLAS libgatednet links (libopenblas.so.0) running a list of
    row-major (m, n, k) shapes back to back: the GEMM-only speed of a hot path's products."""

    def __init__(self, shapes, lib=None):
        ob = ctypes.CDLL(lib or "libopenblas.so.0")
        self.f = ob.cblas_sgemm
        self.f.restype = None
        F = ctypes.c_float
        self.shapes = [tuple(int(v) for v in s) for s in shapes]
        self.a = (F * max(m * k for m, n, k in self.shapes))()
        self.b = (F * max(k * n for m, n, k in self.shapes))()
        self.c = (F * max(m * n for m, n, k in self.shapes))()
        for arr in (self.a, self.b):  # non-zero, denormal-free operands
            ctypes.memset(arr, 0x3c, ctypes.sizeof(arr))
        self.flops = sum(2.0 * m * n * k for m, n, k in self.shapes)
        self.once()

    def once(self):
        F = ctypes.c_float
        for m, n, k in self.shapes:
            self.f(101, 111, 111, m, n, k, F(1.0), self.a, k, self.b, n, F(0.0), self.c, n)

    def gflops(self, min_seconds):
        reps, t0 = 0, time.perf_counter()
        while True:
            self.once()
            reps += 1
            dt = time.perf_counter() - t0
            if dt >= min_seconds:
                return self.flops * reps / dt / 1e9


def sgemm_reference(shapes, min_seconds=0.3, lib=None):
    """GFLOP/s of SgemmReference(shapes), repeated for >= min_seconds."""
    return SgemmReference(shapes, lib).gflops(min_seconds)


def pick_fastest(candidates, trials=2, warmup=1):
    """The fastest of several configurations of one workload, as a user tuning it would find.

    candidates: list of (label, make) where make() applies the configuration (threads ...) and
    returns the call to time; it may raise (e.g. torch.compile without a compiler), which is
    recorded. Each candidate gets `warmup` untimed calls (compilation) and `trials` timed ones;
    its score is its fastest trial. Returns (label, run, tried) with tried = {label: seconds or
    error text}; the winner's make() is applied again last so its settings are the live ones.
    (None, None, tried) when every candidate failed."""
    tried, best = {}, None
    for label, make in candidates:
        try:
            run = make()
            for _ in range(warmup):
                run()
            ts = []
            for _ in range(trials):
                t0 = time.perf_counter()
                run()
                ts.append(time.perf_counter() - t0)
            tried[label] = min(ts)
            if best is None or tried[label] < tried[best[0]]:
                best = (label, make)
        except Exception as e:  # reported in the configuration text, never hidden
            tried[label] = f"failed: {type(e).__name__}: {str(e)[:120]}"
    if best is None:
        return None, None, tried
    return best[0], best[1](), tried


def tried_text(tried):
    """'a 0.41 s, b 0.52 s' for the configuration column."""
    return ", ".join(f"{k} {v:.3g} s" if isinstance(v, float) else f"{k} {v}"
                     for k, v in tried.items())
