"""Construction from specs and presets, description, parameters, freezing, copying gates."""
import subprocess
import sys

import numpy as np
import pytest

import gatednet as gn


def relu(q):
    return np.maximum(q, 0)


def numpy_forward(net, x):
    """The DGN forward pass of MATH.md section 1 from the exported weights (no biases)."""
    info = net.info()
    L = len(info["hidden_widths"])
    wf = [np.asarray(net.weights("feature", l), dtype=np.float64) for l in range(L)]
    wv = [np.asarray(net.weights("value", l), dtype=np.float64) for l in range(L + 1)]
    x = np.asarray(x, dtype=np.float64)
    act = relu if info["activation"] == "relu" else (lambda q: q)
    zf, gates = x, []
    for l in range(L):
        q = zf @ wf[l].T
        gates.append((q > 0).astype(np.float64) if info["gate"] == "hard" else 1 / (1 + np.exp(-info["beta"] * q)))
        zf = act(q)
    zv = np.ones_like(x) if info["value_input"] == "ones" else x
    for l in range(L):
        zv = (zv @ wv[l].T) * gates[info["permutation"][l]]
    return zv @ wv[L].T, gates


def test_works_without_numpy():
    code = """
import sys, array
sys.modules["numpy"] = None  # make "import numpy" fail
import gatednet as gn
net = gn.Network(3, [4], 2, regime="fixed_random_ii", seed=1)
x = memoryview(array.array("f", [0.5, -1.0, 2.0, 1.0, 0.0, -0.5])).cast("B").cast("f", (2, 3))
p = net.predict(x)
assert p.shape == (2, 2) and len(p.tolist()) == 2
net.fit(x, array.array("i", [0, 1]), epochs=2)
k = memoryview(net.npk(x))
assert k.shape == (2, 2) and k[0, 1] == k[1, 0]
print("ok")
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_version():
    assert gn.library_version == "0.1.0"
    assert gn.__version__ == "0.2.0"  # the Python API of issue 11 (library ABI unchanged: 0.1.0)
    assert gn._core.header_version_number == 100


@pytest.mark.parametrize("regime, expect", [
    ("relu", dict(tied=True, feature_head=True, gate="hard", activation="relu", feature_frozen=False)),
    ("decoupled", dict(tied=False, gate="soft", beta=10.0, feature_frozen=False)),
    ("fixed_random_ii", dict(tied=False, gate="hard", feature_frozen=True)),
    ("fixed_random_di", dict(tied=False, gate="hard", feature_frozen=True)),
    ("dlgn", dict(activation="identity", gate="soft", value_input="x")),
    ("dlgn_pwc", dict(activation="identity", gate="soft", value_input="ones")),
    ("custom", dict(tied=False, gate="hard", feature_frozen=False)),
])
def test_presets(regime, expect):
    net = gn.Network(10, [8, 6], 4, regime=regime, seed=3)
    info = net.info()
    assert info["regime"] == regime
    assert info["input_size"] == 10 and info["hidden_widths"] == (8, 6) and info["output_size"] == 4
    for k, v in expect.items():
        assert info[k] == v, k
    assert regime in repr(net) and "10-8-6-4" in repr(net)
    assert net.epochs_trained == 0


def test_spec_overrides_and_round_trip():
    net = gn.Network(12, [7, 7, 7], 2, regime="custom", activation="identity", gate="soft", beta=4.0,
                     value_input="ones", permutation=[2, 0, 1], bias=True, feature_head=True,
                     feature_frozen=True, init="bernoulli", init_scale=1.5, seed=99)
    info = net.info()
    assert info["activation"] == "identity" and info["gate"] == "soft" and info["beta"] == 4.0
    assert info["value_input"] == "ones" and info["permutation"] == (2, 0, 1)
    assert info["bias"] and info["feature_head"] and info["feature_frozen"]
    assert "permutation" in repr(net) and "soft gates" in repr(net)
    again = gn.Network(**net.spec)
    a, b = again.info(), net.info()
    for k in ("regime", "input_size", "hidden_widths", "output_size", "activation", "gate", "beta",
              "value_input", "permutation", "bias", "feature_head", "feature_frozen", "parameter_count"):
        assert a[k] == b[k], k
    # Bernoulli init: every hidden weight is +-init_scale/sqrt(fan_in).
    w = np.asarray(net.weights("feature", 0))
    np.testing.assert_allclose(np.abs(w), 1.5 / np.sqrt(12), rtol=1e-6)
    assert set(np.unique(np.sign(w))) == {-1.0, 1.0}
    np.testing.assert_array_equal(np.asarray(net.bias("feature", 0)), np.zeros(7, np.float32))


def test_seed_reproducible_and_distinct():
    a = gn.Network(5, [4], 2, regime="fixed_random_ii", seed=np.uint64(1))  # numpy ints are fine
    b = gn.Network(5, [4], 2, regime="fixed_random_ii", seed=1)
    c = gn.Network(5, [4], 2, regime="fixed_random_ii", seed=2)
    wa, wb, wc = (np.asarray(n.weights("value", 0)) for n in (a, b, c))
    np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(wa, wc)


@pytest.mark.parametrize("regime", ["relu", "fixed_random_ii", "dlgn", "dlgn_pwc", "decoupled"])
def test_predict_and_gates_match_numpy_forward(regime, rng):
    kwargs = dict(permutation=[1, 0]) if regime == "fixed_random_ii" else {}
    net = gn.Network(9, [6, 6], 3, regime=regime, seed=5, **kwargs)
    x = rng.standard_normal((11, 9)).astype(np.float32)
    ref, gates = numpy_forward(net, x)
    np.testing.assert_allclose(np.asarray(net.predict(x)), ref, rtol=1e-4, atol=1e-5)
    for l, g in enumerate(net.gates(x)):
        np.testing.assert_allclose(np.asarray(g), gates[l], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(net.predict_classes(x)), np.argmax(ref, axis=1))


def test_set_weights_round_trip(rng):
    net = gn.Network(4, [3], 2, regime="fixed_random_ii")
    w = rng.standard_normal((2, 3)).astype(np.float32)
    net.set_weights("value", 1, w)
    np.testing.assert_array_equal(np.asarray(net.weights("value", 1)), w)
    net.set_weights("value", 1, w.ravel().astype(np.float64))  # any float buffer of 6 elements
    np.testing.assert_array_equal(np.asarray(net.weights("value", 1)), w)
    with pytest.raises(ValueError, match="w: expected 6 elements"):
        net.set_weights("value", 1, np.zeros(5, np.float32))
    with pytest.raises(gn.ArgumentError, match="layer"):
        net.weights("value", 5)
    with pytest.raises(gn.UnsupportedError):
        net.bias("value", 0)


def test_freeze_keeps_weights_bit_identical(small):
    x, y, _, _ = small
    net = gn.Network(784, [32], 10, regime="custom", seed=1)
    net.freeze("feature")
    assert net.feature_frozen and not net.value_frozen
    f0 = np.array(net.weights("feature", 0))
    v0 = np.array(net.weights("value", 0))
    net.fit(x[:500], y[:500], epochs=1, lr=1e-3)
    np.testing.assert_array_equal(np.asarray(net.weights("feature", 0)), f0)
    assert not np.array_equal(np.asarray(net.weights("value", 0)), v0)
    net.unfreeze("feature")
    net.freeze("value")
    v1 = np.array(net.weights("value", 0))
    with pytest.raises(gn.UnsupportedError, match="nothing to train"):  # hard gates pass no gradient
        net.fit(x[:100], y[:100])
    np.testing.assert_array_equal(np.asarray(net.weights("value", 0)), v1)


def test_copy_feature_weights_gives_same_gates(small):
    x, y, xt, _ = small
    teacher = gn.Network(784, [24, 24], 10, regime="relu", seed=1)
    teacher.fit(x[:600], y[:600], epochs=1, lr=1e-3)
    dgn = gn.Network(784, [24, 24], 10, regime="fixed_random_ii", seed=2)
    dgn.copy_feature_weights(teacher, freeze=True)
    assert dgn.feature_frozen
    for gt, gd in zip(teacher.gates(xt[:50]), dgn.gates(xt[:50])):
        np.testing.assert_array_equal(np.asarray(gt), np.asarray(gd))
    # The fixed_learnt preset does the same at construction.
    fl = gn.Network(784, [24, 24], 10, regime="fixed_learnt", gate_source=teacher, seed=3)
    assert fl.feature_frozen and fl.regime == "fixed_learnt"
    np.testing.assert_array_equal(np.asarray(fl.weights("feature", 1)), np.asarray(teacher.weights("feature", 1)))
    with pytest.raises(gn.ArgumentError, match="SHAPE|width|shape|differ"):
        gn.Network(784, [24, 12], 10, regime="fixed_random_ii").copy_feature_weights(teacher)
    with pytest.raises(TypeError, match="source"):
        dgn.copy_feature_weights("teacher")


def test_close_and_context_manager(tiny):
    net, x, _ = tiny
    with net as n:
        assert n is net and not net.closed
        net.predict(x)
    assert net.closed
    assert "closed" in repr(net)
    net.close()  # idempotent
    with pytest.raises(gn.ClosedNetworkError, match="closed"):
        net.predict(x)
    with pytest.raises(ValueError):
        net.info()


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(regime="nonsense"), ValueError, "regime: unknown value"),
    (dict(regime="relu", gate="soft"), gn.ArgumentError, "relu"),
    (dict(regime="custom", gate="soft", beta=0.0), gn.ArgumentError, "beta"),
    (dict(regime="custom", permutation=[0, 0]), gn.ArgumentError, "permutation"),
    (dict(regime="custom", permutation=[0]), ValueError, "permutation: got 1 entries"),
    (dict(regime="fixed_learnt"), gn.ArgumentError, "gate_source"),
    (dict(regime="custom", gate_source=3), TypeError, None),
    (dict(regime="custom", init_scale=-1.0), gn.ArgumentError, "init_scale"),
    (dict(regime="custom", seed=-1), ValueError, "seed"),
    (dict(regime="custom", activation=5), ValueError, "activation"),
])
def test_bad_specs(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        gn.Network(5, [4, 4], 3, **kwargs)


def test_bad_sizes():
    with pytest.raises(gn.ArgumentError, match="input_size"):
        gn.Network(0, [4], 3)
    with pytest.raises(gn.ArgumentError, match="hidden_widths\\[1\\]"):
        gn.Network(5, [4, 0], 3)
    with pytest.raises(gn.ArgumentError, match="n_hidden"):
        gn.Network(5, [], 3)
    with pytest.raises(TypeError, match="hidden_widths"):
        gn.Network(5, ["a"], 3)
    with pytest.raises(gn.OutOfMemoryError):
        gn.Network(2**30, [2**30], 3)


@pytest.mark.parametrize("regime", gn.REGIMES)
def test_spec_rebuilds_every_preset(regime):
    source = gn.Network(5, [4, 4], 3, regime="relu", seed=1) if regime == "fixed_learnt" else None
    net = gn.Network(5, [4, 4], 3, regime=regime, gate_source=source, seed=2)
    again = gn.Network(**net.spec, gate_source=source)
    assert again.info() == net.info()
