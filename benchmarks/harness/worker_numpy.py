"""numpy peer for the FC NPK: (X Xᵀ) ⊙ Π_l (G_l G_lᵀ) in float32 with the gates of the same
network (weights dumped by the gatednet worker), the way one writes it in numpy."""
import glob
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from workloads import D_IN, DEPTH_HIDDEN, WIDTH  # noqa: E402

import numpy as np  # noqa: E402


def load_weights(directory):
    ws = []
    for l in range(DEPTH_HIDDEN):
        (path,) = glob.glob(os.path.join(directory, f"wf{l}_*.f32"))
        r, c = map(int, path.rsplit("_", 1)[1][:-4].split("x"))
        ws.append(np.fromfile(path, dtype=np.float32).reshape(r, c))
    return ws


def npk_numpy(x, ws):
    k = x @ x.T
    h = x
    for w in ws:
        q = h @ w.T
        g = (q > 0).astype(np.float32)
        k *= g @ g.T
        h = np.maximum(q, 0)
    return k


def npk_tiled(x, ws, tile=2048):
    """The same kernel by row/column tiles: gates once, then for the upper-triangle tiles
    (X_i X_jᵀ) ⊙ Π_l (G_l,i G_l,jᵀ) in a tile-sized buffer, stored and mirrored. Half the
    products of the plain form and no n×n temporaries."""
    n = x.shape[0]
    gs, h = [], x
    for w in ws:
        q = h @ w.T
        gs.append((q > 0).astype(np.float32))
        h = np.maximum(q, 0)
    k = np.empty((n, n), dtype=np.float32)
    for i0 in range(0, n, tile):
        i1 = min(n, i0 + tile)
        for j0 in range(i0, n, tile):
            j1 = min(n, j0 + tile)
            acc = np.matmul(x[i0:i1], x[j0:j1].T)
            t = np.empty_like(acc)
            for g in gs:
                np.matmul(g[i0:i1], g[j0:j1].T, out=t)
                acc *= t
            k[i0:i1, j0:j1] = acc
            if j0 != i0:
                k[j0:j1, i0:i1] = acc.T
    return k


FORMS = {"plain": npk_numpy, "tiled": npk_tiled}
FORM_TEXT = {"plain": "plain (X Xᵀ) ⊙ Π (G Gᵀ) on n×n", "tiled": "tiled 2048×2048, upper triangle mirrored"}


def npk(task):
    n = task["n"]
    if common.have_fmnist():
        x = common.read_idx_numpy("train_x", n)
    else:
        x = common.synthetic_numpy(n, D_IN)[0]
    if task.get("weights_dir"):
        ws = load_weights(task["weights_dir"])
    else:
        rng = np.random.default_rng(0)
        sizes = [D_IN] + [WIDTH] * DEPTH_HIDDEN
        ws = [(rng.standard_normal((o, i)) * np.sqrt(2 / i)).astype(np.float32)
              for i, o in zip(sizes[:-1], sizes[1:])]
    holder = {}

    def form(f):
        def run():
            holder["k"] = None  # drop the previous result first, as the caller would
            holder["k"] = f(x, ws)
        return lambda: run
    forms = [f for f in task.get("forms", "plain").split(",") if f in FORMS]
    if len(forms) > 1:
        label, run, tried = common.pick_fastest([(f, form(FORMS[f])) for f in forms], trials=1)
        if label is None:
            raise RuntimeError("every NPK form failed: " + common.tried_text(tried))
    else:
        label, run, tried = forms[0], form(FORMS[forms[0]])(), {}
    res = common.measure(run, task["runs"], task.get("warmup", 1))
    res["config"] = (f"{FORM_TEXT[label]}, float32, numpy {np.__version__}"
                     + (f" (faster of: {common.tried_text(tried)})" if tried else ""))
    k = holder["k"]
    res.update(items=n, output_bytes=k.nbytes)
    res["samples"] = [[i, j, float(k[i, j])] for i, j in (task.get("pairs") or common.sample_pairs(n))]
    return res


def info(task):
    a = np.random.rand(2048, 784).astype(np.float32)
    b = np.random.rand(784, 2048).astype(np.float32)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.3:
        a @ b
        reps += 1
    gflops = 2.0 * 2048 * 2048 * 784 * reps / (time.perf_counter() - t0) / 1e9
    blas = {}
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
    except Exception:
        pass
    core = None
    try:
        from threadpoolctl import threadpool_info
        core = [(i.get("internal_api"), i.get("architecture"), i.get("num_threads"))
                for i in threadpool_info()]
    except Exception:
        pass
    return {"version": np.__version__, "blas": {k: blas.get(k) for k in ("name", "version")},
            "threadpool": core, "sgemm_gflops_2048x2048x784": gflops}


if __name__ == "__main__":
    common.main({"npk": npk, "info": info})
