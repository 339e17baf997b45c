"""One API for Network and ConvNetwork: signatures, Python indexing, hidden state, weights by
position, inherited gate_source settings, error messages in Python terms, label dtypes and
fixed return shapes of the kernel helpers, NHWC input_shape, normalised conv kernels."""
import inspect
import re
import warnings

import numpy as np
import pytest

import gatednet as gn

CONV_LAYERS = [("conv", 3, 3), ("conv", 4, 3), ("gap",), ("dense", 5), ("dense", 3)]


def _conv(regime="fixed_random_ii", **kw):
    return gn.ConvNetwork(CONV_LAYERS, (4, 5, 2), regime, seed=3, **kw)


def _fc(regime="fixed_random_ii", **kw):
    return gn.Network(6, [5, 4], 3, regime, seed=3, **kw)


# ---- one signature for both classes ------------------------------------------------------------

SHARED = ["kernel", "npk", "overlap", "input_gram", "gates", "preactivations", "activations", "fit", "evaluate",
          "weights", "bias", "set_weights", "tensors", "tensor_names", "freeze", "unfreeze", "info"]


def _params(cls, name):
    return list(inspect.signature(getattr(cls, name)).parameters.values())


@pytest.mark.parametrize("name", SHARED)
def test_same_methods_same_leading_arguments(name):
    fc, conv = _params(gn.Network, name), _params(gn.ConvNetwork, name)
    # The positional parameters agree in name and order (defaults may differ, e.g. weights' layer).
    pos = lambda ps: [p.name for p in ps if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert pos(fc) == pos(conv), name
    # Keyword-only options: the shared ones are the same set, save each class's own extras.
    own = {"packed", "wired", "train_feature_head", "projection", "output", "rows", "cols", "upper_only",
           "gate_path", "ntk_scaling", "gates_a", "gates_b"}
    kw = lambda ps: {p.name for p in ps if p.kind is p.KEYWORD_ONLY} - own
    assert kw(fc) == kw(conv), name


@pytest.mark.parametrize("cls", [gn.Network, gn.ConvNetwork])
def test_out_is_keyword_only_everywhere(cls):
    checked = 0
    for name, member in inspect.getmembers(cls, callable):
        if name.startswith("_"):
            continue
        try:
            sig = inspect.signature(member)
        except (TypeError, ValueError):
            continue
        if "out" in sig.parameters:
            assert sig.parameters["out"].kind is inspect.Parameter.KEYWORD_ONLY, f"{cls.__name__}.{name}"
            checked += 1
    assert checked >= 8
    assert inspect.signature(cls.predict).parameters["out"].kind is inspect.Parameter.KEYWORD_ONLY  # C methods too
    x = np.zeros((2, 6), np.float32)
    with pytest.raises(TypeError):
        _fc().predict(x, np.zeros((2, 3), np.float32))  # out positionally


def test_kernel_argument_order_and_deprecated_order(rng):
    net = _fc()
    xa, xb = rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal((3, 6)).astype(np.float32)
    new = np.asarray(net.kernel(xa, xb, "overlap"))
    with pytest.warns(DeprecationWarning, match="kernel"):
        old = np.asarray(net.kernel("overlap", xa, xb))
    np.testing.assert_array_equal(new, old)
    with pytest.warns(DeprecationWarning):
        np.testing.assert_array_equal(np.asarray(net.kernel("npk", xa)), np.asarray(net.kernel(xa)))
    conv = _conv()
    xc = rng.standard_normal((3, 4, 5, 2)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(conv.kernel(xc, xc[:2], "overlap")),
                                  np.asarray(conv.kernel(xc, xc[:2], kind="gate_overlap")))
    with pytest.raises(ValueError, match="layer: got 0"):
        conv.kernel(xc, layer=0)


# ---- Python indexing -----------------------------------------------------------------------------

def test_negative_layers(rng):
    net = _fc(bias=True)
    x = rng.standard_normal((7, 6)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(net.gates(x, -1)), np.asarray(net.gates(x, 1)))
    np.testing.assert_array_equal(np.asarray(net.weights("value", -1)), np.asarray(net.weights("value", 2)))
    np.testing.assert_array_equal(np.asarray(net.bias("feature", -2)), np.asarray(net.bias("feature", 1)))
    np.testing.assert_array_equal(np.asarray(net.base_kernel(x, layer=-2)), np.asarray(net.base_kernel(x, layer=0)))
    np.testing.assert_array_equal(np.asarray(net.preactivations(x, layer=-1)), np.asarray(net.preactivations(x, layer=1)))
    with pytest.raises(gn.LayerIndexError, match=r"layer: got 2, need -2 ... 1") as info:
        net.gates(x, 2)
    assert isinstance(info.value, IndexError) and isinstance(info.value, gn.ArgumentError)
    assert info.value.status_name == "GN_ERR_INVALID_ARGUMENT" and gn._core.status_name(info.value.status) == info.value.status_name
    conv = _conv()
    xc = rng.standard_normal((3, 4, 5, 2)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(conv.gates(xc, -1, wired=True)), np.asarray(conv.gates(xc, 2, wired=True)))
    with pytest.raises(IndexError, match=r"layer: got -4, need -3 ... 2"):
        conv.gates(xc, -4)


def test_conv_weights_by_position_survive_a_projection():
    # A projection skip is parameter tensor 3: names after it shift, positions do not.
    layers = [("conv", 2, 3), ("conv", 4, 3, {"block": 1}), ("conv", 4, 3, {"block": 1}), ("dense", 5), ("dense", 3)]
    net = gn.ConvNetwork(layers, (4, 4, 1), "decoupled", seed=2)
    names = net.tensor_names()
    assert names[-1] == "value.5.weight" and net.n_layers == 5
    assert net.tensor_layers()[names.index("value.3.weight")] == (2, True)
    t = lambda name: np.asarray(net.tensor(name))
    np.testing.assert_array_equal(np.asarray(net.weights("value", 3)), t("value.4.weight"))
    np.testing.assert_array_equal(np.asarray(net.weights("value", -1)), t("value.5.weight"))
    np.testing.assert_array_equal(np.asarray(net.weights("feature", 2, projection=True)), t("feature.3.weight"))
    np.testing.assert_array_equal(np.asarray(net.weights("feature", 0)), t("feature.0.weight"))
    w = np.arange(15, dtype=np.float32).reshape(3, 5)
    net.set_weights("value", -1, w)
    np.testing.assert_array_equal(t("value.5.weight"), w)
    with pytest.raises(ValueError, match=r"layers\[4\] has no feature weight"):
        net.weights("feature", 4)  # the feature net has no output layer
    with pytest.raises(ValueError, match="bias"):
        net.bias("value", 1)
    pooled = _conv()
    with pytest.raises(ValueError, match=r"layers\[2\] has no value weight"):
        pooled.weights("value", 2)  # global average pooling


def test_network_tensors_all_weights_in_one_call():
    net = _fc(bias=True, feature_head=True)
    t = net.tensors()
    assert list(t) == net.tensor_names()
    assert set(t) == {f"{p}.{l}.{k}" for p in ("feature", "value") for l in range(3) for k in ("weight", "bias")}
    np.testing.assert_array_equal(np.asarray(t["value.1.weight"]), np.asarray(net.weights("value", 1)))
    np.testing.assert_array_equal(np.asarray(t["feature.2.bias"]), np.asarray(net.bias("feature", 2)))
    relu = gn.Network(6, [5], 3, "relu")
    assert relu.tensor_names() == ["feature.0.weight", "feature.1.weight"]


# ---- hidden state --------------------------------------------------------------------------------

@pytest.mark.parametrize("regime", ["decoupled", "fixed_random_ii", "relu", "dlgn"])
def test_dense_hidden_state_matches_numpy(regime, rng):
    net = gn.Network(6, [5, 4], 3, regime, bias=True, seed=4)
    x = rng.standard_normal((9, 6)).astype(np.float32)
    info = net.info()
    zf = x.astype(np.float64)
    zv = zf.copy() if info["value_input"] == "x" else np.ones_like(zf)
    gates = [np.asarray(g, np.float64) for g in net.gates(x)]
    for l in range(2):
        wf, bf = np.asarray(net.weights("feature", l), np.float64), np.asarray(net.bias("feature", l), np.float64)
        q = zf @ wf.T + bf
        zf = np.maximum(q, 0) if info["activation"] == "relu" else q
        np.testing.assert_allclose(np.asarray(net.preactivations(x, "feature", l)), q, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(net.activations(x, "feature", l)), zf, rtol=1e-5, atol=1e-5)
        wv, bv = np.asarray(net.weights("value", l), np.float64), np.asarray(net.bias("value", l), np.float64)
        qv = zv @ wv.T + bv
        zv = qv * gates[info["permutation"][l]]
        np.testing.assert_allclose(np.asarray(net.preactivations(x, "value", l)), qv, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(net.activations(x, "value", l)), zv, rtol=1e-5, atol=1e-5)
    out = zv @ np.asarray(net.weights("value", -1), np.float64).T + np.asarray(net.bias("value", -1))
    np.testing.assert_allclose(np.asarray(net.predict(x)), out, rtol=1e-5, atol=1e-5)
    every = net.activations(x, "value")
    assert isinstance(every, list) and len(every) == 2 and every[1].shape == (9, 4)
    buf = np.zeros((9, 4), np.float32)
    assert net.activations(x, "value", 1, out=buf) is buf


def test_conv_hidden_state(rng):
    net = _conv("decoupled", gate="hard")
    x = rng.standard_normal((5, 4, 5, 2)).astype(np.float32)
    for l, shape in enumerate(net.gated_shapes):
        q = np.asarray(net.preactivations(x, "feature", l))
        assert q.shape == (5,) + tuple(shape)
        np.testing.assert_array_equal(np.asarray(net.gates(x, l)), (q > 0).astype(np.float32))
        np.testing.assert_array_equal(np.asarray(net.activations(x, "feature", l)), np.maximum(q, 0))
        np.testing.assert_array_equal(np.asarray(net.activations(x, "value", l)),
                                      np.asarray(net.preactivations(x, "value", l)) * np.asarray(net.gates(x, l, wired=True)))
    zv = np.asarray(net.activations(x, "value", -1), np.float64).reshape(5, -1)
    np.testing.assert_allclose(np.asarray(net.predict(x)), zv @ np.asarray(net.weights("value", -1), np.float64).T,
                               rtol=1e-5, atol=1e-5)


# ---- gate_source settings, lr, messages ------------------------------------------------------------

def test_fixed_learnt_inherits_bias_and_widths(rng):
    relu = gn.Network(6, [5, 4], 3, "relu", bias=True, seed=1)
    x = rng.standard_normal((8, 6)).astype(np.float32)
    relu.fit(x, np.arange(8) % 3, epochs=1)
    dgn = gn.Network(6, None, 3, "fixed_learnt", gate_source=relu, seed=2)
    assert dgn.info()["bias"] is True and dgn.hidden_widths == (5, 4)
    for l in range(2):
        np.testing.assert_array_equal(np.asarray(dgn.gates(x, l)), np.asarray(relu.gates(x, l)))
    assert gn.Network(6, [5, 4], 3, "fixed_learnt", gate_source=relu).info()["bias"] is True
    with pytest.raises(ValueError, match=r"bias: got False, but gate_source has bias=True"):
        gn.Network(6, [5, 4], 3, "fixed_learnt", gate_source=relu, bias=False)
    with pytest.raises(ValueError, match=r"hidden_widths: got \[5, 5\], but gate_source has \[5, 4\]"):
        gn.Network(6, [5, 5], 3, "fixed_learnt", gate_source=relu)


def test_conv_fixed_learnt_inherits_layer_biases(rng):
    src = gn.ConvNetwork([("conv", 2, 3, {"bias": True}), ("conv", 3, 3), ("gap",), ("dense", 3)], (4, 4, 1), "relu",
                         seed=1)
    net = gn.ConvNetwork([("conv", 2, 3), ("conv", 3, 3), ("gap",), ("dense", 3)], (4, 4, 1), "fixed_learnt",
                         gate_source=src, seed=2)
    assert "feature.0.bias" in net.tensor_names() and "value.0.bias" in net.tensor_names()
    assert not any(n.endswith(".bias") and not n.endswith(".0.bias") for n in net.tensor_names())
    x = rng.standard_normal((5, 4, 4, 1)).astype(np.float32)
    for l in range(2):
        np.testing.assert_array_equal(np.asarray(net.gates(x, l)), np.asarray(src.gates(x, l)))
    with pytest.raises(ValueError, match=r"layers\[1\]\.bias: got True, but gate_source's layer 1 has bias=False"):
        gn.ConvNetwork([("conv", 2, 3), ("conv", 3, 3, {"bias": True}), ("gap",), ("dense", 3)], (4, 4, 1),
                       "fixed_learnt", gate_source=src)


def test_copy_feature_weights_names_source():
    net = gn.Network(6, [5], 3, "fixed_random_ii")
    with pytest.raises(gn.ArgumentError, match="^source: bias") as info:
        net.copy_feature_weights(gn.Network(6, [5], 3, "relu", bias=True))
    assert info.value.status_name == "GN_ERR_SHAPE"


@pytest.mark.parametrize("call, match", [
    (lambda: gn.Network(6, [5], 3, "decoupled", beta=-1.0), r"^beta: got -1"),
    (lambda: gn.Network(6, [0], 3), r"^hidden_widths\[0\]: got 0"),
    (lambda: gn.Network(6, [5], 3).fit(np.zeros((4, 6), np.float32), np.zeros(4, np.int32), epochs=0), r"^epochs: got 0"),
    (lambda: gn.ConvNetwork([("conv", 0, 3), ("dense", 3)], (5, 5, 2)), r"^layers\[0\]\.units: got 0"),
    (lambda: gn.Network(6, [5], 3).fit(np.zeros((4, 6), np.float32), np.zeros(4, np.int32), batch_size=0),
     r"^batch_size: got 0"),
])
def test_library_errors_name_python_arguments(call, match):
    with pytest.raises(gn.GatedNetError) as info:
        call()
    text = str(info.value)
    assert re.search(match, text), text
    assert not re.search(r"\bgn_\w+:", text) and "spec->" not in text and "opts->" not in text


# ---- kernel helpers: label dtypes and fixed shapes -------------------------------------------------

def test_kernel_helpers_take_any_integer_or_bool_labels(rng):
    x = rng.standard_normal((12, 6)).astype(np.float32)
    k = np.asarray(_fc().npk(x, normalized="trace")) + 1e-3 * np.eye(12, dtype=np.float32)
    labels = np.arange(12) % 2
    pm = np.where(labels == 1, 1.0, -1.0)
    ref = gn.kernel_nu(k, pm.astype(np.float32))
    for y in (pm.astype(np.int8), pm.astype(np.int64), pm.astype(np.float64)):
        assert gn.kernel_nu(k, y) == pytest.approx(ref)
    assert gn.kernel_nu(k, labels.astype(bool)) == gn.kernel_nu(k, labels.astype(np.float32))
    alpha, _ = gn.kernel_ridge_fit(k, pm.astype(np.int8), ridge=1e-3)
    np.testing.assert_array_equal(np.asarray(alpha), np.asarray(gn.kernel_ridge_fit(k, pm, ridge=1e-3)[0]))
    assert alpha.shape == (12, 1)
    onehot = np.asarray(gn.kernel_targets(labels.astype(np.int32), 2))
    for dtype in (bool, np.uint8, np.int16, np.uint32, np.int64):
        np.testing.assert_array_equal(np.asarray(gn.kernel_targets(labels.astype(dtype), 2)), onehot)
    one = np.asarray(gn.kernel_targets(labels.astype(bool), 1))
    assert one.shape == (12, 1)  # always 2-D, whatever the number of classes
    np.testing.assert_array_equal(one[:, 0], pm.astype(np.float32))
    net = gn.Network(6, [5, 4], 3, "fixed_random_ii")
    mean, counts = net.active_paths_by_group(x, labels.astype(bool), 2)
    np.testing.assert_array_equal(np.asarray(counts), [6, 6])
    assert np.asarray(net.active_paths(x)).shape == (12,)
    with pytest.warns(DeprecationWarning, match="active_paths_by_group"):
        old = net.active_paths(x, labels, 2)
    np.testing.assert_array_equal(np.asarray(old[0]), np.asarray(mean))


# ---- NHWC input_shape ------------------------------------------------------------------------------

def test_conv_input_shape_is_nhwc(rng):
    net = gn.ConvNetwork([("conv", 2, 3), ("gap",), ("dense", 3)], (4, 6, 2), seed=1)
    assert net.input_shape == (4, 6, 2) and net.info()["input_shape"] == (4, 6, 2)
    assert net.gated_shapes == ((4, 6, 2),)
    x = rng.standard_normal((3, 4, 6, 2)).astype(np.float32)
    assert net.predict(x).shape == (3, 3)
    for chw in ((1, 28, 28), (3, 32, 32)):
        with pytest.raises(ValueError, match=r"reads as \(channels, height, width\).*use \(\d+, \d+, \d\)"):
            gn.ConvNetwork([("conv", 2, 3), ("gap",), ("dense", 3)], chw)
    with pytest.raises(ValueError, match="reads as"):
        gn.ConvNetwork.named("gconv", (3, 32, 32), 10, width_scale=1 / 16)
    odd = gn.ConvNetwork([("conv", 2, 1), ("gap",), ("dense", 3)], {"height": 1, "width": 8, "channels": 8})
    assert odd.input_shape == (1, 8, 8)


# ---- normalised conv kernels ---------------------------------------------------------------------

def test_conv_npk_normalized(rng):
    net = _conv()
    x = rng.standard_normal((5, 4, 5, 2)).astype(np.float32)
    h = np.asarray(net.npk(x), np.float64)
    # No residual blocks: each gated layer's Gram over its channels/width, 3 * 4 * 5 in all.
    np.testing.assert_allclose(np.asarray(net.npk(x, normalized="layer")), h / 60, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(net.npk(x, normalized=True)), np.asarray(net.npk(x, normalized="layer")))
    t = np.asarray(net.npk(x, normalized="trace"), np.float64)
    np.testing.assert_allclose(t, h / np.trace(h), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(net.npk(x[:2], x, normalized="trace")), h[:2] / np.trace(h[:2, :2]),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="normalized: expected False, 'layer'"):
        net.npk(x, normalized="rows")


def test_deep_conv_raw_npk_errors_normalised_kinds_do_not_overflow(rng):
    deep = gn.ConvNetwork([("conv", 64, 3)] * 20 + [("gap",), ("dense", 2)], (3, 3, 1), "fixed_random_ii", seed=2)
    x = (rng.random((3, 3, 3, 1)) + 2).astype(np.float32)
    with pytest.raises(gn.ArgumentError, match="npk_normalized, npk_trace_normalized"):
        deep.npk(x)
    t = np.asarray(deep.npk(x, normalized="trace"))
    assert np.isfinite(t).all() and np.trace(t) == pytest.approx(1, rel=1e-5)
