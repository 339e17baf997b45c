"""Gates and kernels against straightforward numpy computations on real data (MATH.md section 4)."""
import numpy as np
import pytest

import gatednet as gn


def exported_gates(net, x):
    return [np.asarray(g, dtype=np.float64) for g in net.gates(x)]


def reference_kernels(net, xa, xb):
    """Sigma, base kernels, Lambda, H and the normalised NPK from exported gates, in float64."""
    info = net.info()
    ga, gb = exported_gates(net, xa), exported_gates(net, xb)
    perm = info["permutation"]
    if info["value_input"] == "ones":
        sigma = np.full((len(xa), len(xb)), float(info["input_size"]))
    else:
        sigma = np.asarray(xa, np.float64) @ np.asarray(xb, np.float64).T
    base = [a @ b.T / a.shape[1] for a, b in zip(ga, gb)]
    overlap = np.ones_like(sigma)
    normalized = sigma.copy()
    for l in range(len(ga)):  # the value net's gates, after the permutation
        overlap *= ga[perm[l]] @ gb[perm[l]].T
        normalized *= base[perm[l]]
    return sigma, base, overlap, sigma * overlap, normalized


def close(actual, expected, rtol=2e-5):
    actual = np.asarray(actual)
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


@pytest.fixture(scope="module")
def trained_relu(small):
    x, y, _, _ = small
    net = gn.Network(784, [64, 64, 64], 10, regime="relu", seed=3)
    net.fit(x, y, epochs=2, lr=1e-3)
    return net


def test_npk_equals_numpy_from_exported_gates(trained_relu, small):
    _, _, xt, _ = small
    x = xt[:300]
    sigma, base, overlap, npk, normalized = reference_kernels(trained_relu, x, x)
    close(trained_relu.input_gram(x), sigma)
    for l in range(3):
        close(trained_relu.base_kernel(x, layer=l), base[l])
    close(trained_relu.overlap(x), overlap)
    close(trained_relu.npk(x), npk)
    close(trained_relu.kernel(x, kind="npk"), npk)
    close(trained_relu.npk(x, normalized=True), normalized)
    h = np.asarray(trained_relu.npk(x))
    np.testing.assert_array_equal(h, h.T)  # symmetric path: one triangle mirrored
    # Hard gates: w * B_l counts the gates on for both inputs, so it is an integer.
    b0 = np.asarray(trained_relu.base_kernel(x, layer=0)) * 64
    np.testing.assert_allclose(b0, np.round(b0), atol=1e-4)


def test_cross_batch_kernel_is_a_block_of_the_joint_kernel(trained_relu, small):
    _, _, xt, _ = small
    xa, xb = xt[:120], xt[120:200]
    joint = np.asarray(trained_relu.npk(xt[:200]))
    close(trained_relu.npk(xa, xb), joint[:120, 120:].astype(np.float64), rtol=1e-5)
    _, _, _, npk, _ = reference_kernels(trained_relu, xa, xb)
    close(trained_relu.npk(xa, xb), npk)


@pytest.mark.parametrize("regime, kwargs", [
    ("decoupled", {}),                               # soft gates
    ("dlgn_pwc", {}),                                # linear gating, value input ones
    ("fixed_random_ii", {"permutation": [2, 0, 1]}),  # permuted gating layers
])
def test_kernels_other_regimes(regime, kwargs, small):
    _, _, xt, _ = small
    net = gn.Network(784, [32, 32, 32], 10, regime=regime, seed=11, **kwargs)
    x = xt[:150]
    sigma, base, overlap, npk, normalized = reference_kernels(net, x, x)
    close(net.input_gram(x), sigma)
    close(net.overlap(x), overlap, rtol=5e-5)
    close(net.npk(x), npk, rtol=5e-5)
    close(net.npk(x, normalized=True), normalized, rtol=5e-5)


def test_permutation_leaves_normalized_product_unchanged(small):
    _, _, xt, _ = small
    x = xt[:100]
    a = gn.Network(784, [32, 32, 32], 10, regime="fixed_random_ii", seed=5)
    b = gn.Network(784, [32, 32, 32], 10, regime="fixed_random_ii", seed=5, permutation=[1, 2, 0])
    np.testing.assert_allclose(np.asarray(a.npk(x, normalized=True)), np.asarray(b.npk(x, normalized=True)),
                               rtol=1e-5)


def test_packed_gates_match_float_gates(trained_relu, small):
    _, _, xt, _ = small
    x = xt[:40]
    for l in range(3):
        dense = np.asarray(trained_relu.gates(x, l))
        packed = np.asarray(trained_relu.gates(x, l, packed=True))
        assert packed.dtype == np.uint64 and packed.shape == (40, 1)
        bits = (packed[:, :, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
        np.testing.assert_array_equal(bits.reshape(40, 64)[:, :64].astype(np.float32), dense)
    soft = gn.Network(784, [8], 10, regime="decoupled")
    with pytest.raises(gn.UnsupportedError, match="soft"):
        soft.gates(x, 0, packed=True)


def test_kernel_argument_errors(trained_relu, small):
    _, _, xt, _ = small
    with pytest.raises(ValueError, match="kind: unknown value 'rbf'"):
        trained_relu.kernel(xt[:5], kind="rbf")
    with pytest.raises(gn.ArgumentError, match="layer: got 3"):
        trained_relu.base_kernel(xt[:5], layer=3)
    with pytest.raises(ValueError, match=r"xb: expected a 2-D buffer of shape \(n, 784\)"):
        trained_relu.npk(xt[:5], xt[:5, :100])
