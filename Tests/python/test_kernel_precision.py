"""Kernel precision (issue 11): exact infinite-width diagonals, and deep nets whose raw NPK is
beyond float32 — the normalised kinds stay finite and match a float64 reference, the raw
kinds raise an error that names the normalised kinds."""
import numpy as np
import pytest

import gatednet as gn


def npk_limit_reference(x, depth):
    """<x, x'> prod_l (pi - theta_{l-1}) / (2 pi), ReLU arc-cosine recursion, float64 (MATH.md §4)."""
    x = x.astype(np.float64)
    dot = x @ x.T
    n = np.sqrt(np.diag(dot))
    c = np.clip(dot / np.outer(n, n), -1, 1)
    k = dot.copy()
    for _ in range(depth):
        t = np.arccos(c)
        k *= (np.pi - t) / (2 * np.pi)
        c = np.clip((np.sin(t) + (np.pi - t) * c) / np.pi, -1, 1)
    return k


# The default init_scale is sqrt(2) stored as float32.
S2 = float(np.float32(np.sqrt(2))) ** 2


def ntk_limit_reference(x, depth, s2=S2):
    """Paper 002 eq. 7 for one output, NTK parametrisation, float64."""
    x = x.astype(np.float64)
    d = x.shape[1]
    cross = s2 * (x @ x.T) / d
    q = np.diag(cross).copy()
    theta = cross.copy()
    for _ in range(depth):
        c = np.clip(cross / np.sqrt(np.outer(q, q)), -1, 1)
        t = np.arccos(c)
        nxt = s2 / (2 * np.pi) * np.sqrt(np.outer(q, q)) * (np.sin(t) + (np.pi - t) * c)
        theta = theta * s2 * (np.pi - t) / (2 * np.pi) + nxt
        cross = nxt
        q = q * s2 / 2
    return theta


def test_limit_diagonals_exact():
    """The issue's example: depth 10, 784-d Gaussian inputs; the diagonal has theta = 0 exactly."""
    x = np.random.default_rng(0).standard_normal((8, 784)).astype(np.float32)
    depth = 10
    net = gn.Network(784, [64] * depth, 10, regime="fixed_random_ii")
    norms = (x.astype(np.float64) ** 2).sum(1)
    npk = np.asarray(net.npk_limit(x), dtype=np.float64)
    exact = norms / 2 ** depth
    assert np.all(np.abs(np.diag(npk) - exact) <= 2 ** -24 * exact)
    ref = npk_limit_reference(x, depth)
    off = ~np.eye(8, dtype=bool)
    assert np.max(np.abs(npk - ref)[off]) <= 1e-6 * exact.max()

    ntk = np.asarray(net.ntk_limit(x, output=0), dtype=np.float64)
    # Theta(x, x) = (L + 1) (s^2/2)^L s^2 |x|^2 / d (He init, s^2 = 2 up to float32 rounding).
    exact_ntk = (depth + 1) * (S2 / 2) ** depth * S2 * norms / 784
    assert np.all(np.abs(np.diag(ntk) - exact_ntk) <= 2 ** -24 * exact_ntk)
    assert np.max(np.abs(ntk - ntk_limit_reference(x, depth))[off]) <= 1e-6 * exact_ntk.max()
    # Summed over the 10 outputs: 10 times the per-output kernel.
    np.testing.assert_allclose(np.asarray(net.ntk_limit(x)), 10 * ntk, rtol=1e-6)

    # Identical inputs off the diagonal (a second batch repeating rows of the first) are exact too.
    cross = np.asarray(net.npk_limit(x, x[[3, 6]]), dtype=np.float64)
    assert cross[3, 0] == npk[3, 3] and cross[6, 1] == npk[6, 6]


def trace_normalised_reference(net, x):
    """H / trace H(x, x) in float64 from the library's gates, in log scale."""
    xd = x.astype(np.float64)
    sigma = xd @ xd.T
    log_h = np.log(np.abs(sigma))
    for layer in range(net.n_hidden):
        g = np.asarray(net.gates(x, layer), dtype=np.float64)
        log_h += np.log(g @ g.T)
    d = np.diag(log_h)
    log_trace = d.max() + np.log(np.exp(d - d.max()).sum())
    return np.sign(sigma) * np.exp(log_h - log_trace)


@pytest.mark.parametrize("depth", [20, 24, 64])
def test_deep_normalised_npk_finite(depth):
    """784-128xL at seed 1: raw H passes float32's range near L = 20; the normalised kinds do not."""
    x = np.random.default_rng(0).standard_normal((6, 784)).astype(np.float32)
    net = gn.Network(784, [128] * depth, 10, regime="fixed_random_ii", seed=1)
    ref = trace_normalised_reference(net, x)
    for gate_path in ("packed", "float"):
        k = np.asarray(net.npk(x, normalized="trace", gate_path=gate_path), dtype=np.float64)
        assert np.all(np.isfinite(k))
        np.testing.assert_allclose(k, ref, rtol=1e-5, atol=1e-30)
        assert abs(np.trace(k) - 1) < 1e-5
        layer = np.asarray(net.npk(x, normalized=True, gate_path=gate_path))
        assert np.all(np.isfinite(layer)) and np.all(np.diag(layer) > 0)
        # Raw kinds: an error naming the normalised kinds instead of a silent inf. The overlap
        # (about 64^L here, without the |x|^2 ~ 784 of the npk) passes 3.4e38 only from L = 22.
        if depth == 20:
            assert np.all(np.isfinite(np.asarray(net.overlap(x, gate_path=gate_path))))
        for raw in ("npk", "overlap") if depth > 20 else ("npk",):
            with pytest.raises(gn.ArgumentError, match="NPK_TRACE_NORMALIZED") as e:
                net.kernel(raw, x, gate_path=gate_path)
            assert e.value.status_name == "GN_ERR_NOT_FINITE"
            assert "npkNormalized" in str(e.value)


def test_shallow_raw_npk_unchanged():
    """Below the range limit the raw npk is computed as before: Sigma * prod_l G_l G_l^T."""
    x = np.random.default_rng(1).standard_normal((5, 30)).astype(np.float32)
    net = gn.Network(30, [16, 16, 16], 2, regime="fixed_random_ii", seed=3)
    h = np.asarray(net.npk(x), dtype=np.float64)
    ref = x.astype(np.float64) @ x.T.astype(np.float64)
    for layer in range(3):
        g = np.asarray(net.gates(x, layer), dtype=np.float64)
        ref *= g @ g.T
    np.testing.assert_allclose(h, ref, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(net.npk(x, normalized="trace")), ref / np.trace(ref), rtol=1e-5)
