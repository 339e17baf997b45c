"""Kernel ridge regression / classification on a kernel held in zarr, never all in memory.

Method: preconditioned block conjugate gradient on (K + ridge I) alpha = Y (Ji and Li's
breakdown-free variant: all target columns share one search space, orthonormalised each
step), one streamed product K @ P per iteration (P n x at most t columns: a few
Dask tasks per pass, each reading whole tiles in place; a symmetric store is read through its
upper tiles only, so a pass reads half the store; the client holds n x t vectors). The
preconditioner is the randomized Nystrom preconditioner of Frangella, Tropp and Udell (SIAM J.
Matrix Anal. Appl. 2023): a sketch Y = K Omega (n x rank), by default for Omega = rank random
columns of the identity (column Nystrom: one read of those columns, no arithmetic; a Gaussian
Omega is an option, a float32 product costing about rank / 10 passes), gives
K ~ U diag(lam) U^T and

    P^-1 = (lam_rank + ridge) U (diag(lam) + ridge)^-1 U^T + (I - U U^T).

Why this and not plain CG or a dense solve: path kernels have fast decaying spectra (a few
large eigenvalues from the mean and the class structure), so plain CG needs a number of passes
growing with the condition number lam_1 / ridge, and each pass reads the kernel from
disk (its upper half: 7.2 GB at n = 60,000). The Nystrom preconditioner removes the top `rank` eigenvalues
from the conditioning; CG then needs passes that grow with lam_rank / ridge, typically tens.
A dense solve would need the n x n matrix in memory (in float64: 28.8 GB at n = 60,000).
Everything of size n x rank or n x t stays on the client in float64.
"""

from __future__ import annotations

import os
import time

import numpy as np

from ._common import MAX_CANCELLED, WorkerWatch, check_worker_timeout


def _check_finished(group, path):
    """Whether the gatednet store ``group`` (at ``path``) is symmetric; ValueError if it has
    unfinished tiles (they would read as zeros)."""
    from .kernels import tiles_done

    finished, total = tiles_done(path)
    if finished < total:
        raise ValueError(f"kernel: {path!r} has {total - finished} of {total} tiles unfinished; "
                         f"run kernel_to_zarr again to finish it")
    return bool(group.attrs["gatednet"].get("symmetric", False))


class _Operator:
    """K @ P for a kernel held out of memory, one pass over its tiles per product.

    A gatednet store (path or its zarr array on a filesystem): tasks of whole tiles read in
    place (memory-mapped chunk files on a local store, see _chunks.py; zarr reads elsewhere),
    P scattered once per product. A symmetric store is read through its upper tiles only, each
    off-diagonal tile serving both K_ij P_j and K_ji P_i = K_ij^T P_i: half the bytes of a
    pass. Tiles are grouped in tasks of about equal work, two per worker thread. A dask array:
    dask's own blockwise product. Without a client the tasks run in this process; with one,
    each pass waits for the cluster's workers as a WorkerWatch says (warns while there are none,
    TimeoutError after ``worker_timeout`` seconds without any)."""

    def __init__(self, kernel, client, worker_timeout=None):
        import dask.array as da
        import zarr

        check_worker_timeout(worker_timeout)
        self.client, self.path, self.dask, self.symmetric = client, None, None, False
        if isinstance(kernel, (str, os.PathLike)):
            path = os.path.abspath(os.fspath(kernel))
            try:
                g = zarr.open_group(path, mode="r")
            except Exception:
                raise ValueError(f"kernel: {path!r} is not a gatednet kernel store") from None
            if "kernel" not in g or "gatednet" not in g.attrs:
                raise ValueError(f"kernel: {path!r} is not a gatednet kernel store")
            self.symmetric = _check_finished(g, path)
            self.path = os.path.join(path, "kernel")
            arr = g["kernel"]
        elif isinstance(kernel, zarr.Array):
            arr = kernel
            root = getattr(arr.store, "root", None)
            if root is not None:
                self.path = os.path.join(str(root), arr.path)
                # the "kernel" array of a gatednet store: the same checks as for the store's path
                # (its unfinished tiles read as zeros)
                group = os.path.dirname(self.path)
                try:
                    g = zarr.open_group(group, mode="r")
                except Exception:
                    g = None
                if g is not None and "gatednet" in g.attrs and os.path.basename(self.path) == "kernel":
                    self.symmetric = _check_finished(g, group)
        elif isinstance(kernel, da.Array):
            arr = kernel
        else:
            raise TypeError(f"kernel: expected a zarr array, a store path or a dask array, got {type(kernel).__name__}")
        if self.path is None:
            self.dask = arr if isinstance(arr, da.Array) else da.from_zarr(arr)
            self.chunk = self.dask.chunks[0][0], self.dask.chunks[1][0]
        else:
            self.chunk = tuple(arr.chunks)
        self.shape = tuple(arr.shape)
        self.grid = (-(-self.shape[0] // self.chunk[0]), -(-self.shape[1] // self.chunk[1]))
        self.watch = None if client is None else WorkerWatch(client, worker_timeout, f"a pass over {self._name()}")

    def _name(self):
        return repr(os.path.dirname(self.path)) if self.path is not None else "a kernel"

    def _gather(self, futures):
        """The futures' results, in order, once all have finished (watching the workers)."""
        for _ in self.watch.completed(futures):
            pass
        return self.client.gather(futures)

    def _pass(self, submit):
        """``submit()`` -> (futures, extra futures to release after); their results in order. A
        pass whose tasks Dask cancelled (P was scattered to workers that all left) is sent again
        once a worker is back: passes only read the store. MAX_CANCELLED cancelled attempts raise."""
        from concurrent.futures import CancelledError

        for attempt in range(MAX_CANCELLED):
            self.watch.wait_for_worker()
            futures, extra = submit()
            try:
                return self._gather(futures)
            except CancelledError as e:
                if attempt == MAX_CANCELLED - 1:
                    raise RuntimeError(f"a pass over {self._name()} was cancelled {MAX_CANCELLED} times (its workers "
                                       f"left each time)") from e
            finally:
                self.client.cancel(futures + extra)

    def _compute(self, x):
        if self.client is None:
            return x.compute()
        self.watch.wait_for_worker()
        fut = self.client.compute(x)
        try:
            return self._gather([fut])[0]
        finally:
            self.client.cancel([fut])

    def _tasks(self):
        """Lists of tiles, one list per task: about two tasks per worker thread, of equal work."""
        ta, tb = self.grid
        if self.symmetric:
            tiles = [(i, j) for i in range(ta) for j in range(i, tb)]
        else:
            tiles = [(i, j) for i in range(ta) for j in range(tb)]
        threads = 1 if self.client is None else max(1, sum(self.client.nthreads().values()))
        tasks = min(len(tiles), 2 * threads) if self.client is not None else 1
        loads, groups = [0.0] * tasks, [[] for _ in range(tasks)]
        for ij in tiles:  # every tile costs about the same: its bytes (an off-diagonal one two products)
            k = loads.index(min(loads))
            loads[k] += 1.0 if ij[0] == ij[1] or not self.symmetric else 1.5
            groups[k].append(ij)
        return [sorted(g) for g in groups if g]

    def matmul(self, P, sketch=False):
        """K @ P (float64). ``sketch``: products in float32 (for the Nystrom sketch K Omega,
        which only shapes the preconditioner: half the work, and any rounding there changes
        the number of passes, not the solution CG converges to)."""
        import dask.array as da

        P = np.ascontiguousarray(P, dtype=np.float32 if sketch else np.float64)
        if self.dask is not None:
            return np.asarray(self._compute(self.dask @ da.from_array(P, chunks=(self.chunk[1], P.shape[1]))),
                              dtype=np.float64)
        if self.client is None:
            parts = [_tiles_product(self.path, g, self.symmetric, P) for g in self._tasks()]
        else:
            def submit():  # after a worker is there: the scatter and the task count need one
                pf = self.client.scatter(P, broadcast=True, hash=False)
                return [self.client.submit(_tiles_product, self.path, g, self.symmetric, pf, pure=False)
                        for g in self._tasks()], [pf]

            parts = self._pass(submit)
        out = np.zeros((self.shape[0], P.shape[1]))
        t0, t1 = self.chunk
        for part in parts:
            for i, block in part.items():
                out[i * t0:i * t0 + block.shape[0]] += block
        return out

    def __matmul__(self, P):
        return self.matmul(P)

    def columns(self, cols):
        """K[:, cols] (float64, n x len(cols)) for sorted distinct column indices: one read of
        the (upper) tiles and no arithmetic."""
        cols = np.asarray(cols, dtype=np.int64)
        if self.dask is not None:
            return np.asarray(self._compute(self.dask[:, cols]), dtype=np.float64)
        if self.client is None:
            parts = [_tiles_columns(self.path, g, self.symmetric, cols) for g in self._tasks()]
        else:
            parts = self._pass(lambda: ([self.client.submit(_tiles_columns, self.path, g, self.symmetric, cols,
                                                            pure=False) for g in self._tasks()], []))
        out = np.zeros((self.shape[0], cols.size))
        for part in parts:
            for i, (block, where) in part.items():
                out[i * self.chunk[0]:i * self.chunk[0] + block.shape[0], where] = block
        return out

    def diagonal(self):
        import dask.array as da

        if self.dask is not None:
            return np.asarray(self._compute(da.diagonal(self.dask)), dtype=np.float64)
        import zarr

        arr = zarr.open_array(self.path, mode="r")
        n, t = min(self.shape), self.chunk[0]
        return np.concatenate([np.diagonal(arr[r:r + t, r:r + t]) for r in range(0, n, t)]).astype(np.float64)


_ROWS = 256  # rows of a tile converted to float64 at once (stays in cache for both products)


def _tiles_product(path, tiles, symmetric, P):
    """{row block i: its rows of K @ P} from the given tiles of the zarr array at path.

    Tile (i, j) adds K_ij P_j to block i, and, for a symmetric store's off-diagonal tile, also
    K_ij^T P_i to block j. A tile is read in place (memory-mapped chunk file) when the store
    allows, and converted to P's dtype _ROWS rows at a time, each slab serving both products."""
    import zarr

    from ._chunks import RawChunks

    arr = zarr.open_array(path, mode="r")
    raw = RawChunks.of(arr)
    t0, t1 = arr.chunks
    n0, n1 = arr.shape
    out = {}

    def block(i, rows):
        b = out.get(i)
        if b is None:
            b = out[i] = np.zeros((rows, P.shape[1]))
        return b

    for i, j in tiles:
        r0, r1, c0, c1 = i * t0, min(n0, (i + 1) * t0), j * t1, min(n1, (j + 1) * t1)
        tile = raw.read(i, j) if raw is not None else arr[r0:r1, c0:c1]
        oi = block(i, r1 - r0)
        mirror = symmetric and i != j
        oj = block(j, c1 - c0) if mirror else None
        Pj, Pi = P[c0:c1], P[r0:r1]
        for s in range(0, r1 - r0, _ROWS):
            slab = np.asarray(tile[s:s + _ROWS], dtype=P.dtype)
            oi[s:s + _ROWS] += slab @ Pj
            if mirror:
                oj += slab.T @ Pi[s:s + _ROWS]
        del tile
    return out


def _tiles_columns(path, tiles, symmetric, cols):
    """{row block i: (its rows of K[:, cols] that these tiles hold, positions in cols)}."""
    import zarr

    from ._chunks import RawChunks

    arr = zarr.open_array(path, mode="r")
    raw = RawChunks.of(arr)
    t0, t1 = arr.chunks
    n0, n1 = arr.shape
    got = {}

    def put(i, rows, where, values):
        if where.size:
            got.setdefault(i, []).append((where, np.asarray(values, dtype=np.float64)))

    for i, j in tiles:
        r0, r1, c0, c1 = i * t0, min(n0, (i + 1) * t0), j * t1, min(n1, (j + 1) * t1)
        tile = raw.read(i, j) if raw is not None else arr[r0:r1, c0:c1]
        inside = np.flatnonzero((cols >= c0) & (cols < c1))
        put(i, r1 - r0, inside, tile[:, cols[inside] - c0])
        if symmetric and i != j:
            mirrored = np.flatnonzero((cols >= r0) & (cols < r1))
            put(j, c1 - c0, mirrored, tile[cols[mirrored] - r0, :].T)
        del tile
    out = {}
    for i, pieces in got.items():
        where = np.concatenate([w for w, _ in pieces])
        out[i] = (np.concatenate([v for _, v in pieces], axis=1), where)
    return out


def kernel_diagonal(kernel, client=None, worker_timeout=None):
    """The diagonal of a kernel store (reads the diagonal tiles only, in this process), float64.
    A dask array's diagonal is computed on ``client`` (``worker_timeout`` as for ridge_fit)."""
    return _Operator(kernel, client, worker_timeout).diagonal()


def ridge_fit(kernel, targets, ridge, *, rank=256, tol=1e-6, max_iter=300, seed=0, client=None,
              callback=None, sketch="columns", block=True, products="float64", worker_timeout=None):
    """alpha (n x t, float64) with (K + ridge I) alpha = targets, by Nystrom-preconditioned CG.

    ``kernel``: the n x n kernel (a gatednet store path, its zarr array, or a dask array); only
    streamed products K @ P are computed, tile by tile. ``targets``: n values or n x t (e.g.
    ``gatednet.kernel_targets(labels, classes)``). ``ridge`` > 0 (absolute; a scale-free choice is
    a multiple of the mean diagonal, :func:`kernel_diagonal`). Stops when every column's relative
    residual ||r|| / ||y|| is below ``tol``, or after ``max_iter`` passes. ``rank``: Nystrom rank
    (0: no preconditioner). ``sketch``: how the Nystrom sketch Y = K Omega is taken:
    "columns" (Omega = ``rank`` random columns of the identity: one read of the store, no
    arithmetic) or "gaussian" (an orthonormal Gaussian Omega: a float32 product costing about
    rank / 10 CG passes of arithmetic; a better preconditioner for slowly decaying spectra).
    ``products``: "float64" (every CG product exact to float64 rounding) or "float32" (float32
    products, about half the arithmetic of a pass, for tolerances well above 1e-6; one more
    float64 pass at the end measures the true residual reported). ``block``: one block CG over all columns
    (Ji and Li 2017), else one CG per column sharing the passes. Returns (alpha, info) with
    info = {"iterations", "residual", "passes", "seconds", "rank", "sketch_seconds" (the sketch
    pass and factorisation)}; ``callback(iteration, residuals)`` after each pass.

    ``client``: a distributed.Client whose workers run the passes (None: this process). While
    its cluster has no worker a RuntimeWarning names the scheduler and ``dask worker ADDRESS``
    (within seconds, then every 30 s); ``worker_timeout`` (seconds, None = wait as long as it
    takes) raises TimeoutError after that long without any worker.
    """
    t_start = time.perf_counter()
    K = _Operator(kernel, client, worker_timeout)
    n = K.shape[0]
    if len(K.shape) != 2 or K.shape[1] != n:
        raise ValueError(f"kernel: expected a square kernel, got shape {K.shape}")
    Y = np.asarray(targets, dtype=np.float64)
    vector = Y.ndim == 1
    if vector:
        Y = Y[:, None]
    if Y.ndim != 2 or Y.shape[0] != n or Y.shape[1] == 0:
        raise ValueError(f"targets: expected {n} rows (one per kernel row) of at least one value, "
                         f"got shape {np.shape(targets)}")
    if not np.isfinite(Y).all():
        raise ValueError("targets: contains NaN or Inf")
    if not _real(ridge) or not (ridge > 0 and np.isfinite(ridge)):
        raise ValueError(f"ridge: expected a finite number > 0, got {ridge!r}")
    for name, value in (("rank", rank), ("max_iter", max_iter), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name}: expected a whole number >= 0, got {value!r}")
    if not _real(tol) or not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol: expected a finite number >= 0, got {tol!r}")
    if sketch not in ("columns", "gaussian"):
        raise ValueError(f"sketch: expected 'columns' or 'gaussian', got {sketch!r}")
    if products not in ("float64", "float32"):
        raise ValueError(f"products: expected 'float64' or 'float32', got {products!r}")
    rank = int(min(rank, n))

    def matmul(P):
        return K.matmul(P, sketch=products == "float32")

    passes = 0
    t_sketch = 0.0
    if rank > 0:
        rng = np.random.default_rng(seed)
        if sketch == "columns":
            # Omega = rank distinct columns of the identity, uniformly at random: Y = K Omega is
            # a read of those columns, no products (for the normalised kernels, whose diagonal is
            # flat, uniform sampling is the diagonal-proportional sampling of column Nystrom).
            picked = np.sort(rng.choice(n, size=rank, replace=False))
            Yo = K.columns(picked)
            eps = np.finfo(np.float32).eps  # the entries are float32

            def omega_t(A):  # Omega^T A
                return A[picked]

            def add_omega(A, c):  # A += c * Omega
                A[picked, np.arange(rank)] += c
        else:  # "gaussian"
            omega, _ = np.linalg.qr(rng.standard_normal((n, rank)))
            omega = omega.astype(np.float32).astype(np.float64)  # the Omega the pass multiplies
            Yo = K.matmul(omega, sketch=True)
            eps = np.finfo(np.float32).eps

            def omega_t(A):
                return omega.T @ A

            def add_omega(A, c):
                A += c * omega
        passes += 1
        _check_finite(Yo, "the columns read for the preconditioner" if sketch == "columns" else "the sketch K Omega")
        # The stabilising shift of Frangella et al.: eps * ||Y|| (float32 products or entries);
        # raised tenfold while Omega^T Y is not numerically positive definite.
        shift = eps * np.linalg.norm(Yo)
        add_omega(Yo, shift)
        for attempt in range(8):
            M = omega_t(Yo)
            try:
                C = np.linalg.cholesky((M + M.T) / 2)  # lower: Omega^T Yo = C C^T
                break
            except np.linalg.LinAlgError:
                if attempt == 7:
                    raise
                add_omega(Yo, 9 * shift)
                shift *= 10
        # B = Yo C^-T = U diag(s) V^T, from the r x r Gram B^T B = C^-1 (Yo^T Yo) C^-T = V S^2 V^T:
        # two n x r x r products instead of an SVD of the n x r matrix (at n = 60,000 and
        # r = 1,000 the SVD alone took minutes). Directions with s^2 below 1e-10 of the largest
        # are dropped (their U columns would not be orthonormal; they carry no eigenvalue that
        # matters beside the ridge).
        from scipy.linalg import solve_triangular

        G = solve_triangular(C, solve_triangular(C, Yo.T @ Yo, lower=True).T, lower=True)  # C^-1 A C^-T
        s2, V = np.linalg.eigh((G + G.T) / 2)
        s2, V = s2[::-1], V[:, ::-1]
        keep = s2 > 1e-10 * s2[0]
        s2, V = s2[keep], V[:, keep]
        U = Yo @ (solve_triangular(C, V, lower=True, trans="T") / np.sqrt(s2))  # B V S^-1
        lam = np.maximum(s2 - shift, 0.0)
        scale = lam[-1] + ridge
        t_sketch = time.perf_counter() - t_start

        def precondition(R):
            UR = U.T @ R
            return U @ (UR * (scale / (lam + ridge))[:, None]) + (R - U @ UR)
    else:
        def precondition(R):
            return R.copy()

    X = np.zeros_like(Y)
    R = Y.copy()
    norms = np.linalg.norm(Y, axis=0)
    norms[norms == 0] = 1.0
    res = np.linalg.norm(R, axis=0) / norms
    it = 0
    if block and Y.shape[1] > 1:
        # Breakdown-free block PCG (Ji and Li, BIT 2017): one search space shared by all columns,
        # kept orthonormal (dependent directions dropped), so a pass serves every column with
        # every direction instead of each column with its own.
        P = _orth(precondition(R))
        while it < max_iter and res.max() > tol and P.shape[1] > 0:
            Q = matmul(P) + ridge * P
            passes += 1
            _check_finite(Q, "a product K @ P")
            PQ = P.T @ Q
            PQ = (PQ + PQ.T) / 2
            alpha = np.linalg.solve(PQ, P.T @ R)
            X += P @ alpha
            R -= Q @ alpha
            it += 1
            res = np.linalg.norm(R, axis=0) / norms
            if callback is not None:
                callback(it, res.copy())
            if res.max() <= tol:
                break
            Z = precondition(R)
            P = _orth(Z - P @ np.linalg.solve(PQ, Q.T @ Z))
    else:
        Z = precondition(R)
        P = Z.copy()
        rz = np.einsum("ij,ij->j", R, Z)
        while it < max_iter and res.max() > tol:
            AP = matmul(P) + ridge * P
            passes += 1
            _check_finite(AP, "a product K @ P")
            # a column already solved exactly (e.g. all-zero targets) has P = 0: it takes no step
            # (0 / 0 would make it NaN)
            curvature = np.einsum("ij,ij->j", P, AP)
            alpha = np.divide(rz, curvature, out=np.zeros_like(rz), where=curvature > 0)
            X += P * alpha
            R -= AP * alpha
            Z = precondition(R)
            rz_new = np.einsum("ij,ij->j", R, Z)
            P = Z + P * np.divide(rz_new, rz, out=np.zeros_like(rz), where=rz > 0)
            rz = rz_new
            it += 1
            res = np.linalg.norm(R, axis=0) / norms
            if callback is not None:
                callback(it, res.copy())
    if products == "float32":  # the residual CG tracked drifts with float32 products: measure it
        R = Y - (K.matmul(X) + ridge * X)
        passes += 1
        _check_finite(R, "the residual pass")
        res = np.linalg.norm(R, axis=0) / norms
    info = {"iterations": it, "residual": float(res.max()), "passes": passes,
            "seconds": time.perf_counter() - t_start, "rank": rank,
            "sketch_seconds": t_sketch}
    return (X[:, 0] if vector else X), info


def _real(x):
    """Whether ``x`` is a real scalar (a bool is not)."""
    return not isinstance(x, bool) and isinstance(x, (int, float, np.integer, np.floating))


def _check_finite(values, where):
    """ValueError if ``values`` (computed from the kernel) hold NaN or Inf: the kernel does, and CG
    would otherwise return NaN coefficients or fail deep inside a factorisation."""
    if not np.isfinite(values).all():
        raise ValueError(f"kernel: holds NaN or Inf ({where} is not finite)")


def _orth(W):
    """Orthonormal basis of the columns of W, dropping directions below 1e-10 of the largest
    (columns that converged or became dependent)."""
    Q, Rr = np.linalg.qr(W)
    U, s, _ = np.linalg.svd(Rr)
    keep = s > 1e-10 * s[0] if s.size and s[0] > 0 else np.zeros(s.shape, bool)
    return Q @ U[:, keep]


def ridge_predict(cross_kernel, alpha, client=None, worker_timeout=None):
    """Scores K(test, train) @ alpha, streamed over the tiles of the m x n cross kernel (a store
    from ``kernel_to_zarr(net, x_test, path, xb=x_train)``, its zarr array or a dask array).
    ``client`` and ``worker_timeout`` as for :func:`ridge_fit`."""
    K = _Operator(cross_kernel, client, worker_timeout)
    A = np.asarray(alpha, dtype=np.float64)
    vector = A.ndim == 1
    A = A.reshape(A.shape[0], -1)
    if A.shape[0] != K.shape[1]:
        raise ValueError(f"alpha: expected {K.shape[1]} rows (one per training input), got {A.shape[0]}")
    if not np.isfinite(A).all():
        raise ValueError("alpha: contains NaN or Inf")
    out = K @ np.ascontiguousarray(A)
    return out[:, 0] if vector else out
