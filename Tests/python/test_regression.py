"""Regression through fit()/evaluate(): float targets y (n x outputs, or (n,) for one output)."""
import math

import numpy as np
import pytest

import gatednet as gn

SMALL = [("conv", 4, 3), ("gap",), ("dense", 2)]  # input (5, 5, 1)


def smooth(n, rng):
    """x on [-pi, pi]; targets (sin x, cos x)."""
    x = rng.uniform(-math.pi, math.pi, (n, 1)).astype(np.float32)
    return x, np.concatenate([np.sin(x), np.cos(x)], axis=1).astype(np.float32)


def test_fit_float_targets_regresses(rng):
    x, t = smooth(256, rng)
    xt, tt = smooth(128, rng)
    net = gn.Network(1, [32, 32], 2, regime="relu", bias=True, seed=3)
    start = net.evaluate(xt, tt)
    hist = net.fit(x, t, epochs=60, lr=1e-2, loss="squared", validation_data=(xt, tt))
    assert all(math.isnan(h["train_accuracy"]) and math.isnan(h["test_accuracy"]) for h in hist)
    end = net.evaluate(xt, tt)
    assert math.isnan(end["accuracy"]) and math.isnan(start["accuracy"])
    assert end["loss"] == hist[-1]["test_loss"]
    # the constant predictor's loss is 0.5 * (1/2 + 1/2) = 0.5
    assert end["loss"] < 0.02 < start["loss"], (start, end)
    y = np.asarray(net.predict(xt), dtype=np.float64)
    assert end["loss"] == pytest.approx(0.5 * np.mean(np.sum((y - tt) ** 2, axis=1)), rel=1e-5)


def test_loss_defaults_to_squared_for_float_targets(rng):
    x, t = smooth(64, rng)
    a = gn.Network(1, [8], 2, regime="relu", seed=5)
    b = a.clone()
    ha = a.fit(x, t, epochs=2, lr=1e-2)
    hb = b.fit(x, t, epochs=2, lr=1e-2, loss="squared")
    assert [h["train_loss"] for h in ha] == [h["train_loss"] for h in hb]
    assert a.evaluate(x, t)["loss"] == b.evaluate(x, t, loss="squared")["loss"]


def test_one_output_shapes_and_dtypes_agree(rng):
    """(n,), (n, 1), float64 and a strided view are the same targets: the same bits."""
    x = rng.standard_normal((100, 4)).astype(np.float32)
    t = np.tanh(x[:, 0] - x[:, 1]).astype(np.float32)
    wide = np.zeros((100, 3), np.float32)
    wide[:, 1] = t
    base = gn.Network(4, [16], 1, regime="decoupled", seed=8)
    results = []
    for y in (t, t[:, None], t.astype(np.float64), wide[:, 1]):
        net = base.clone()
        hist = net.fit(x, y, epochs=2, lr=1e-2, batch_size=20, loss="squared")
        results.append(([h["train_loss"] for h in hist], np.asarray(net.predict(x)).tobytes()))
    assert all(r == results[0] for r in results[1:])


def test_pm1_labels_equal_pm1_targets(rng):
    """k = 1: labels 0/1 under the squared loss are the targets -1/+1, bit for bit."""
    x = rng.standard_normal((120, 5)).astype(np.float32)
    labels = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int32)
    a = gn.Network(5, [16, 16], 1, regime="decoupled", seed=2)
    b = a.clone()
    ha = a.fit(x, labels, epochs=3, loss="squared", lr=1e-2, batch_size=32, validation_data=(x, labels))
    hb = b.fit(x, 2.0 * labels - 1, epochs=3, lr=1e-2, batch_size=32, validation_data=(x, 2.0 * labels - 1))
    assert [h["train_loss"] for h in ha] == [h["train_loss"] for h in hb]
    assert [h["test_loss"] for h in ha] == [h["test_loss"] for h in hb]
    assert a.to_bytes(optimizer_state=True) == b.to_bytes(optimizer_state=True)
    assert a.evaluate(x, labels, loss="squared")["loss"] == b.evaluate(x, 2.0 * labels - 1)["loss"]
    assert not math.isnan(ha[-1]["train_accuracy"]) and math.isnan(hb[-1]["train_accuracy"])


def test_integer_labels_keep_cross_entropy_by_default(tiny):
    net, x, y = tiny
    twin = net.clone()
    assert [h["train_loss"] for h in net.fit(x, y, epochs=2)] == \
        [h["train_loss"] for h in twin.fit(x, y, epochs=2, loss="cross_entropy")]
    assert not math.isnan(net.evaluate(x, y)["accuracy"])


def test_regression_errors(rng):
    x, t = smooth(20, rng)
    net = gn.Network(1, [8], 2, regime="relu", seed=1)
    before = net.to_bytes(optimizer_state=True)
    with pytest.raises(ValueError, match='loss.*squared.*cross_entropy'):
        net.fit(x, t, loss="cross_entropy")
    with pytest.raises(ValueError, match='squared'):
        net.evaluate(x, t, loss="cross_entropy")
    with pytest.raises(ValueError, match=r"y: expected a 2-D buffer of shape \(n, 2\)"):
        net.fit(x, t[:, :1], loss="squared")
    with pytest.raises(ValueError, match=r"y: expected a 2-D buffer of shape \(n, 2\)"):
        net.fit(x, t[:, 0], loss="squared")  # (n,) only for one output
    with pytest.raises(ValueError, match=r"y: expected 20 rows"):
        net.fit(x, t[:19])
    with pytest.raises(ValueError, match=r"y: expected 20 rows"):
        net.evaluate(x, t[:19])
    bad = t.copy()
    bad[3, 1] = np.nan
    with pytest.raises(gn.ArgumentError, match="y: contains NaN or Inf"):
        net.fit(x, bad)
    with pytest.raises(gn.ArgumentError, match="y: contains NaN or Inf"):
        net.evaluate(x, bad)
    bad[3, 1] = np.inf
    with pytest.raises(gn.ArgumentError, match="y_test: contains NaN or Inf"):
        net.fit(x, t, validation_data=(x, bad))
    with pytest.raises(TypeError, match="y_test: expected float32"):
        net.fit(x, t, validation_data=(x, np.zeros(20, np.int32)))
    with pytest.raises(ValueError, match=r"y_test: expected 5 rows"):
        net.fit(x, t, validation_data=(x[:5], t))
    assert net.to_bytes(optimizer_state=True) == before and net.epochs_trained == 0
    # a fit() callback may not use the network it trains
    with pytest.raises(gn.GatedNetError, match="busy"):
        net.fit(x, t, epochs=2, callback=lambda m: net.evaluate(x, t))


def test_conv_network_regression(rng):
    x = rng.standard_normal((60, 5, 5, 1)).astype(np.float32)
    # targets: mean of the left two columns and of the right two columns
    t = np.stack([x[:, :, :2, 0].mean(axis=(1, 2)), x[:, :, 3:, 0].mean(axis=(1, 2))], axis=1)
    net = gn.ConvNetwork(SMALL, (5, 5, 1), "decoupled", seed=3)
    start = net.evaluate(x, t)
    hist = net.fit(x, t, epochs=40, lr=1e-2, batch_size=10, validation_data=(x, t))
    end = net.evaluate(x, t)
    assert math.isnan(end["accuracy"]) and all(math.isnan(h["train_accuracy"]) for h in hist)
    assert end["loss"] == hist[-1]["test_loss"] and end["loss"] < 0.5 * start["loss"], (start, end)
    y = np.asarray(net.predict(x), dtype=np.float64)
    assert end["loss"] == pytest.approx(0.5 * np.mean(np.sum((y - t) ** 2, axis=1)), rel=1e-5)
    with pytest.raises(ValueError, match="squared"):
        net.fit(x, t, loss="ce")
    with pytest.raises(ValueError, match=r"y: expected a 2-D buffer of shape \(n, 2\)"):
        net.evaluate(x, t.ravel())
