"""Kernel ridge regression / classification on a kernel held in zarr, never all in memory.

Method: preconditioned conjugate gradient on (K + ridge I) alpha = Y, one CG per target column,
all columns sharing each pass over K (one streamed product K @ P per iteration: one Dask task
per row panel of tiles, reading its tiles one at a time, so a task holds a tile plus its
panel's rows of the product; the client holds n x t vectors). The preconditioner is the
randomized Nystrom preconditioner of Frangella, Tropp and Udell (SIAM J. Matrix Anal. Appl.
2023): one more pass computes Y = K Omega for an orthonormal Gaussian Omega (n x rank), which
gives K ~ U diag(lam) U^T and

    P^-1 = (lam_rank + ridge) U (diag(lam) + ridge)^-1 U^T + (I - U U^T).

Why this and not plain CG or a dense solve: path kernels have fast decaying spectra (a few
large eigenvalues from the mean and the class structure), so plain CG needs a number of passes
growing with the condition number lam_1 / ridge, and each pass reads the whole n^2 kernel from
disk (14.4 GB at n = 60,000). The Nystrom preconditioner removes the top `rank` eigenvalues
from the conditioning; CG then needs passes that grow with lam_rank / ridge, typically tens.
A dense solve would need the n x n matrix in memory (in float64: 28.8 GB at n = 60,000).
Everything of size n x rank or n x t stays on the client in float64.
"""

from __future__ import annotations

import os
import time

import numpy as np


class _Operator:
    """K @ P for a kernel held out of memory, one pass over its tiles per product.

    A gatednet store (path or its zarr array on a filesystem): one task per row panel of tiles
    (P scattered once per product), each reading its panel tile by tile, so a task holds one tile
    and its n_rows x t output. A dask array: dask's own blockwise product. Without a client the
    panels run in this process."""

    def __init__(self, kernel, client):
        import dask.array as da
        import zarr

        self.client, self.path, self.dask = client, None, None
        if isinstance(kernel, (str, os.PathLike)):
            from .kernels import tiles_done

            path = os.path.abspath(os.fspath(kernel))
            try:
                g = zarr.open_group(path, mode="r")
            except Exception:
                raise ValueError(f"kernel: {path!r} is not a gatednet kernel store") from None
            if "kernel" not in g or "gatednet" not in g.attrs:
                raise ValueError(f"kernel: {path!r} is not a gatednet kernel store")
            finished, total = tiles_done(path)
            if finished < total:
                raise ValueError(f"kernel: {path!r} has {total - finished} of {total} tiles unfinished; "
                                 f"run kernel_to_zarr again to finish it")
            self.path = os.path.join(path, "kernel")
            arr = g["kernel"]
        elif isinstance(kernel, zarr.Array):
            arr = kernel
            root = getattr(arr.store, "root", None)
            if root is not None:
                self.path = os.path.join(str(root), arr.path)
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

    def __matmul__(self, P):
        import dask.array as da

        if self.dask is not None:
            return np.asarray(_compute(self.dask @ da.from_array(P, chunks=(self.chunk[1], P.shape[1])),
                                       self.client), dtype=np.float64)
        rows = range(0, self.shape[0], self.chunk[0])
        if self.client is None:
            return np.vstack([_panel(self.path, r, self.chunk, P) for r in rows])
        pf = self.client.scatter(P, broadcast=True, hash=False)
        futures = [self.client.submit(_panel, self.path, r, self.chunk, pf, pure=False) for r in rows]
        out = np.vstack(self.client.gather(futures))
        self.client.cancel(futures + [pf])
        return out

    def diagonal(self):
        import dask.array as da

        if self.dask is not None:
            return np.asarray(_compute(da.diagonal(self.dask), self.client), dtype=np.float64)
        import zarr

        arr = zarr.open_array(self.path, mode="r")
        n, t = min(self.shape), self.chunk[0]
        return np.concatenate([np.diagonal(arr[r:r + t, r:r + t]) for r in range(0, n, t)]).astype(np.float64)


def _panel(path, r0, chunk, P):
    """Rows [r0, r0 + chunk) of K @ P, read tile by tile from the zarr array at path."""
    import zarr

    arr = zarr.open_array(path, mode="r")
    r1 = min(arr.shape[0], r0 + chunk[0])
    out = np.zeros((r1 - r0, P.shape[1]))
    for c0 in range(0, arr.shape[1], chunk[1]):
        c1 = min(arr.shape[1], c0 + chunk[1])
        out += arr[r0:r1, c0:c1].astype(np.float64) @ P[c0:c1]
    return out


def _compute(x, client):
    return client.compute(x).result() if client is not None else x.compute()


def kernel_diagonal(kernel, client=None):
    """The diagonal of a kernel store (reads the diagonal tiles only), float64."""
    return _Operator(kernel, client).diagonal()


def ridge_fit(kernel, targets, ridge, *, rank=256, tol=1e-6, max_iter=300, seed=0, client=None,
              callback=None):
    """alpha (n x t, float64) with (K + ridge I) alpha = targets, by Nystrom-preconditioned CG.

    ``kernel``: the n x n kernel (a gatednet store path, its zarr array, or a dask array); only
    streamed products K @ P are computed, tile by tile. ``targets``: n values or n x t (e.g.
    ``gatednet.kernel_targets(labels, classes)``). ``ridge`` > 0 (absolute; a scale-free choice is
    a multiple of the mean diagonal, :func:`kernel_diagonal`). Stops when every column's relative
    residual ||r|| / ||y|| is below ``tol``, or after ``max_iter`` passes. ``rank``: Nystrom rank
    (0: plain CG). Returns (alpha, info) with info = {"iterations", "residual", "passes",
    "seconds", "rank"}; ``callback(iteration, residuals)`` after each pass.
    """
    t_start = time.perf_counter()
    K = _Operator(kernel, client)
    n = K.shape[0]
    if len(K.shape) != 2 or K.shape[1] != n:
        raise ValueError(f"kernel: expected a square kernel, got shape {K.shape}")
    Y = np.asarray(targets, dtype=np.float64)
    vector = Y.ndim == 1
    if vector:
        Y = Y[:, None]
    if Y.ndim != 2 or Y.shape[0] != n:
        raise ValueError(f"targets: expected {n} rows (one per kernel row), got shape {np.shape(targets)}")
    if not np.isfinite(Y).all():
        raise ValueError("targets: contains NaN or Inf")
    if not (ridge > 0 and np.isfinite(ridge)):
        raise ValueError(f"ridge: expected a positive number, got {ridge!r}")
    rank = int(min(rank, n))

    def matmul(P):
        return K @ np.ascontiguousarray(P)

    passes = 0
    if rank > 0:
        rng = np.random.default_rng(seed)
        omega, _ = np.linalg.qr(rng.standard_normal((n, rank)))
        Yo = matmul(omega)
        passes += 1
        shift = np.finfo(np.float64).eps * np.linalg.norm(Yo)
        Yo += shift * omega
        C = np.linalg.cholesky(omega.T @ Yo)  # lower: omega^T Yo = C C^T
        B = np.linalg.solve(C, Yo.T).T        # B = Yo C^-T
        U, s, _ = np.linalg.svd(B, full_matrices=False)
        lam = np.maximum(s * s - shift, 0.0)
        scale = lam[-1] + ridge

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
    Z = precondition(R)
    P = Z.copy()
    rz = np.einsum("ij,ij->j", R, Z)
    res = np.linalg.norm(R, axis=0) / norms
    it = 0
    while it < max_iter and res.max() > tol:
        AP = matmul(P) + ridge * P
        passes += 1
        alpha = rz / np.einsum("ij,ij->j", P, AP)
        X += P * alpha
        R -= AP * alpha
        Z = precondition(R)
        rz_new = np.einsum("ij,ij->j", R, Z)
        P = Z + P * (rz_new / rz)
        rz = rz_new
        it += 1
        res = np.linalg.norm(R, axis=0) / norms
        if callback is not None:
            callback(it, res.copy())
    info = {"iterations": it, "residual": float(res.max()), "passes": passes,
            "seconds": time.perf_counter() - t_start, "rank": rank}
    return (X[:, 0] if vector else X), info


def ridge_predict(cross_kernel, alpha, client=None):
    """Scores K(test, train) @ alpha, streamed over the tiles of the m x n cross kernel (a store
    from ``kernel_to_zarr(net, x_test, path, xb=x_train)``, its zarr array or a dask array)."""
    K = _Operator(cross_kernel, client)
    A = np.asarray(alpha, dtype=np.float64)
    vector = A.ndim == 1
    A = A.reshape(A.shape[0], -1)
    if A.shape[0] != K.shape[1]:
        raise ValueError(f"alpha: expected {K.shape[1]} rows (one per training input), got {A.shape[0]}")
    out = K @ np.ascontiguousarray(A)
    return out[:, 0] if vector else out
