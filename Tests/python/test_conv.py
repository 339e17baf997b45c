"""gatednet.ConvNetwork: construction, training, gates, the conv path kernel, persistence, bad inputs."""
import copy
import os
import pickle
import signal
import threading
import time

import numpy as np
import pytest

import gatednet as gn

TINY = [("conv", 3, 3, 1, "circular"), ("conv", 2, 3, 1, "circular"), ("gap",), ("dense", 2)]
SMALL = [("conv", 4, 3), ("gap",), ("dense", 3)]  # input (5, 5, 2)
FASHION_LAYERS = [("conv", 8, 3, 2), ("conv", 16, 3, 2), ("flatten",), ("dense", 10)]  # 14x14x8, 7x7x16


@pytest.fixture
def fashion_images(fashion):
    x, y = fashion
    return x.reshape(-1, 28, 28, 1), y


def test_layer_formats_and_info(rng):
    as_dicts = [dict(kind="conv", units=4, kernel=3, stride=2, padding="valid", bias=True),
                dict(kind="conv", units=4, kernel=3, block=1), ("conv", 4, 3, {"block": 1}),
                {"kind": "flatten"}, ("dense", 6, True), ("dense", 3)]
    net = gn.ConvNetwork(as_dicts, (9, 9, 2), "fixed_random_ii", seed=4)
    info = net.info()
    # valid 3x3 stride 2 on 9x9 -> 4x4; zero-padded 3x3 stride 1 keeps 4x4; the dense layer is gated.
    assert info["gated_shapes"] == ((4, 4, 4), (4, 4, 4), (4, 4, 4), (1, 1, 6))
    assert info["input_shape"] == (9, 9, 2) and info["input_size"] == 162 and info["output_size"] == 3
    assert info["n_gated"] == 4 and info["n_blocks"] == 1 and info["regime"] == "fixed_random_ii"
    assert info["feature_frozen"] and not info["value_frozen"] and info["wiring"] == "permuted"
    assert "fixed_random_ii" in repr(net) and "residual block" in repr(net)
    names = net.tensor_names()
    assert names[0] == "feature.0.weight" and "feature.0.bias" in names and names[-1].startswith("value.")
    w = np.asarray(net.tensor("feature.0.weight"))
    assert w.shape == (4, 3 * 3 * 2)  # fan_out x (k*k*in_channels)
    assert sum(np.asarray(t).size for t in net.tensors().values()) == net.parameter_count
    np.testing.assert_array_equal(np.asarray(net.tensor("feature.0.bias")), np.zeros((4, 1), np.float32))
    # Same seed, same weights; flat rows, NHWC images and (n, H, W) agree.
    again = gn.ConvNetwork(as_dicts, (9, 9, 2), "fixed_random_ii", seed=4)
    x = rng.standard_normal((5, 9, 9, 2)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(net.predict(x)), np.asarray(again.predict(x.reshape(5, -1))))
    one = gn.ConvNetwork(SMALL, (5, 5, 1), seed=1)
    x1 = rng.standard_normal((3, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(one.predict(x1)), np.asarray(one.predict(x1[..., None])))


def test_set_tensor_round_trip(rng):
    net = gn.ConvNetwork(SMALL, (5, 5, 2), "fixed_random_ii", seed=1)
    w = rng.standard_normal((4, 18)).astype(np.float32)
    net.set_tensor("feature.0.weight", w)  # works on the frozen part
    np.testing.assert_array_equal(np.asarray(net.tensor(0)), w)
    with pytest.raises(ValueError, match="values: expected 72 elements"):
        net.set_tensor(0, w[:, :5])
    with pytest.raises(gn.ArgumentError, match="NaN"):
        net.set_tensor(0, np.full(72, np.nan, np.float32))
    with pytest.raises(IndexError, match=r"tensor: got 9, need -3 ... 2"):
        net.tensor(9)
    with pytest.raises(KeyError):
        net.tensor("value.7.weight")


@pytest.mark.parametrize("arch, shape, scale, regime", [
    ("gconv", (8, 8, 1), 1 / 16, "fixed_random_ii"),
    ("vconv", (8, 8, 1), 1 / 16, "decoupled"),
    ("dlgn_conv", (8, 8, 1), 0.25, "dlgn"),
    ("resnet_small", (8, 8, 3), 0.5, "relu"),
    ("vgg19", (32, 32, 3), 1 / 32, "fixed_random_di"),
    ("davidnet", (16, 16, 3), 1 / 32, "dlgn_pwc"),
])
def test_named_architectures(arch, shape, scale, regime, rng):
    layers = gn.ConvNetwork.architecture_layers(arch, 10, scale)
    assert layers[-1] == dict(kind="dense", units=10, bias=False, block=0)
    net = gn.ConvNetwork.named(arch, shape, 10, width_scale=scale, regime=regime, seed=3)
    same = gn.ConvNetwork(layers, shape, regime, seed=3)  # the listed layers build the same net
    assert net.info() == same.info()
    gated = [l for l in layers[:-1] if l["kind"] in ("conv", "dense")]
    assert net.n_gated == len(gated) and net.output_size == 10 and net.regime == regime
    h, w, c = shape
    x = rng.standard_normal((2, h, w, c)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(net.predict(x)), np.asarray(same.predict(x)))
    if arch == "gconv":
        assert [l.get("units") for l in layers] == [4, 4, 8, 8, None, 16, 10]  # 64/64/128/128, 256 over 16
        assert [l["kind"] for l in layers] == ["conv"] * 4 + ["global_avg_pool", "dense", "dense"]
    if arch == "resnet_small":
        assert net.info()["n_blocks"] == 3


def test_paper_003_net():
    net = gn.ConvNetwork.named("dlgn_conv", (28, 28, 1), 10, regime="dlgn")
    info = net.info()
    assert info["gated_shapes"] == ((28, 28, 26),) * 5 + ((1, 1, 64),)
    assert info["activation"] == "identity" and info["gate"] == "soft"


@pytest.mark.parametrize("regime", gn.REGIMES)
def test_every_regime_trains_one_step(regime, rng):
    source = None
    if regime == "fixed_learnt":
        source = gn.ConvNetwork(TINY, (4, 4, 2), "relu", seed=1)
    net = gn.ConvNetwork(TINY, (4, 4, 2), regime, gate_source=source, seed=2)
    x = rng.standard_normal((8, 4, 4, 2)).astype(np.float32)
    y = (np.arange(8) % 2).astype(np.int32)
    before = {k: np.array(v) for k, v in net.tensors().items()}
    hist = net.fit(x, y, epochs=1, batch_size=8, lr=1e-2)
    assert len(hist) == 1 and hist[0]["epoch"] == 1 and net.epochs_trained == 1
    assert hist[0]["test_accuracy"] is None and np.isfinite(hist[0]["train_loss"])
    after = net.tensors()
    changed = [k for k in before if not np.array_equal(before[k], np.asarray(after[k]))]
    assert any(k.startswith("value.") for k in changed) or net.info()["tied"]
    assert changed
    if net.feature_frozen:
        assert not [k for k in changed if k.startswith("feature.")]
    if source is not None:  # fixed_learnt: the gates are the source's
        for l in range(net.n_gated):
            np.testing.assert_array_equal(np.asarray(net.gates(x, l)), np.asarray(source.gates(x, l)))


def test_fashion_fixed_gates_stay_bit_identical(fashion_images):
    x, y = fashion_images
    net = gn.ConvNetwork(FASHION_LAYERS, (28, 28, 1), "fixed_random_ii", seed=1)
    before = {k: np.array(v) for k, v in net.tensors().items()}
    gates0 = np.array(net.gates(x[2000:2100], 1))
    seen = []
    hist = net.fit(x[:1000], y[:1000], epochs=2, lr=3e-3, validation_data=(x[2000:2500], y[2000:2500]),
                   callback=seen.append)
    assert seen == hist and [m["epoch"] for m in hist] == [1, 2]
    # Measured 0.76 after 2 epochs on 1000 images (chance 0.10).
    assert hist[-1]["test_accuracy"] > 0.65
    ev = net.evaluate(x[2000:2500], y[2000:2500])
    assert ev["accuracy"] == pytest.approx(hist[-1]["test_accuracy"])
    assert np.mean(np.asarray(net.predict_classes(x[2000:2500])) == y[2000:2500]) == pytest.approx(ev["accuracy"])
    after = net.tensors()
    for name, w in before.items():
        if name.startswith("feature."):
            np.testing.assert_array_equal(np.asarray(after[name]), w, err_msg=name)
        else:
            assert not np.array_equal(np.asarray(after[name]), w), name
    np.testing.assert_array_equal(np.asarray(net.gates(x[2000:2100], 1)), gates0)


def test_fit_callback_stops_and_propagates(rng):
    net = gn.ConvNetwork(SMALL, (5, 5, 2), "fixed_random_ii")
    x = rng.standard_normal((20, 50)).astype(np.float32)
    y = rng.integers(0, 3, 20).astype(np.int32)
    assert len(net.fit(x, y, epochs=5, callback=lambda m: False)) == 1
    with pytest.raises(ZeroDivisionError):
        net.fit(x, y, epochs=5, callback=lambda m: 1 / 0)
    assert net.epochs_trained == 2
    with pytest.raises(gn.GatedNetError, match="busy"):
        net.fit(x, y, epochs=2, callback=lambda m: net.predict(x))
    with pytest.raises(gn.UnsupportedError):
        net.freeze("value")
        net.fit(x, y)  # hard gates pass no gradient: nothing to train


def test_keyboard_interrupt_undoes_the_epoch(fashion_images):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread")
    x, y = fashion_images
    reps = 60  # one epoch over 60 copies of 1000 images takes several seconds
    xl, yl = np.concatenate([x[:1000]] * reps), np.concatenate([y[:1000]] * reps)
    net = gn.ConvNetwork(FASHION_LAYERS, (28, 28, 1), "fixed_random_ii", seed=1)
    net.fit(x[:500], y[:500], epochs=1)
    before = np.array(net.predict(x[:50]))
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    try:
        start = time.monotonic()
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            net.fit(xl, yl, epochs=1)
        elapsed = time.monotonic() - start
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, old)
    assert elapsed < 2.0  # stopped inside the epoch, not at its end
    assert net.epochs_trained == 1
    np.testing.assert_array_equal(np.asarray(net.predict(x[:50])), before)


def test_threads_share_a_network_and_the_gil_is_released(fashion_images):
    x, y = fashion_images
    net = gn.ConvNetwork(FASHION_LAYERS, (28, 28, 1), "fixed_random_ii", seed=1)
    x4, y4 = np.concatenate([x[:1000]] * 4), np.concatenate([y[:1000]] * 4)
    t0 = time.monotonic()
    net.fit(x4, y4, epochs=1)
    one_epoch = time.monotonic() - t0
    errors, stamps = [], []
    done = threading.Event()

    def train():
        try:
            net.fit(x4, y4, epochs=1)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
        done.set()

    def infer():
        try:
            for _ in range(5):
                p = np.asarray(net.predict(x[:200]))
                assert p.shape == (200, 10) and np.isfinite(p).all()
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=train), threading.Thread(target=infer)]
    for t in threads:
        t.start()
    while not done.is_set():
        stamps.append(time.monotonic())
        time.sleep(0.001)
    for t in threads:
        t.join()
    assert not errors and net.epochs_trained == 2
    gaps = np.diff(stamps)
    assert one_epoch > 0.05 and len(stamps) >= 10
    assert gaps.max() < 0.5 * one_epoch, (gaps.max(), one_epoch)


def test_copy_feature_weights_and_freeze(rng):
    teacher = gn.ConvNetwork(TINY, (4, 4, 2), "relu", seed=1)
    x = rng.standard_normal((6, 4, 4, 2)).astype(np.float32)
    teacher.fit(x, np.arange(6, dtype=np.int32) % 2, epochs=2, batch_size=3, lr=1e-2)
    dgn = gn.ConvNetwork(TINY, (4, 4, 2), "decoupled", seed=2, gate="hard")
    assert not dgn.feature_frozen
    dgn.copy_feature_weights(teacher, freeze=True)
    assert dgn.feature_frozen
    for l in range(dgn.n_gated):
        np.testing.assert_array_equal(np.asarray(dgn.gates(x, l)), np.asarray(teacher.gates(x, l)))
    dgn.unfreeze("feature")
    assert not dgn.feature_frozen
    dgn.freeze("value")
    assert dgn.value_frozen
    with pytest.raises(gn.ArgumentError, match="differ"):
        gn.ConvNetwork(SMALL, (4, 4, 2)).copy_feature_weights(teacher)
    with pytest.raises(TypeError, match="source: expected a gatednet.ConvNetwork"):
        dgn.copy_feature_weights(gn.Network(32, [4], 2))


def numpy_conv_npk(net, xa, xb):
    """MATH.md section 4 recursion for circular stride-1 conv layers + GAP + output, from the gates."""
    h, w, c = net.input_shape
    ya, yb = np.arange(h).repeat(w), np.tile(np.arange(w), h)  # position p = y*w + x
    a, b = xa.reshape(len(xa), h * w, c).astype(np.float64), xb.reshape(len(xb), h * w, c).astype(np.float64)
    ga = [np.asarray(net.gates(xa, l, wired=True), np.float64).reshape(len(xa), h * w, -1) for l in range(net.n_gated)]
    gb = [np.asarray(net.gates(xb, l, wired=True), np.float64).reshape(len(xb), h * w, -1) for l in range(net.n_gated)]
    out = np.zeros((len(xa), len(xb)))
    for i in range(len(xa)):
        for j in range(len(xb)):
            s = a[i] @ b[j].T
            for l in range(net.n_gated):
                t = np.zeros_like(s)
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        q = ((ya + dy) % h) * w + (yb + dx) % w
                        t += s[np.ix_(q, q)]
                s = t * (ga[l][i] @ gb[l][j].T)
            out[i, j] = s.sum() / (h * w) ** 2
    return out


def test_npk_matches_numpy_recursion_and_is_symmetric(rng):
    # Equal shapes so that the value layers can swap gates: the kernel must use the wired ones.
    layers = [("conv", 3, 3, 1, "circular"), ("conv", 3, 3, 1, "circular"), ("gap",), ("dense", 2)]
    net = gn.ConvNetwork(layers, (4, 4, 2), "fixed_random_ii", seed=5, permutation=[1, 0])
    xa = rng.standard_normal((4, 4, 4, 2)).astype(np.float32)
    xb = rng.standard_normal((3, 32)).astype(np.float32)
    k = np.asarray(net.npk(xa))
    np.testing.assert_array_equal(k, k.T)
    assert np.all(np.linalg.eigvalsh(k.astype(np.float64)) > -1e-4 * np.trace(k))
    np.testing.assert_allclose(k, numpy_conv_npk(net, xa, xa), rtol=1e-4, atol=1e-6)
    kab = np.asarray(net.npk(xa, xb))
    np.testing.assert_allclose(kab, numpy_conv_npk(net, xa, xb.reshape(3, 4, 4, 2)), rtol=1e-4, atol=1e-6)
    # Invariance to a joint circular shift of both inputs (MATH.md section 7.6).
    roll = lambda z: np.roll(z.reshape(-1, 4, 4, 2), (1, 3), axis=(1, 2))
    np.testing.assert_allclose(np.asarray(net.npk(roll(xa), roll(xb))), kab, rtol=1e-4, atol=1e-6)
    # input_gram is the plain Gram matrix; gate_overlap with x replaced by ones.
    np.testing.assert_allclose(np.asarray(net.kernel(xa, xb, "input_gram")),
                               xa.reshape(4, -1) @ xb.T, rtol=1e-5, atol=1e-5)
    ov = np.asarray(net.kernel(xa, kind="overlap"))
    np.testing.assert_array_equal(ov, ov.T)
    assert np.all(np.diag(ov) > 0)
    with pytest.raises(gn.UnsupportedError):
        gn.ConvNetwork([("conv", 2, 3), ("gmp",), ("dense", 2)], (4, 4, 1)).npk(xa[:, :, :, :1])


def test_wiring_permuted_and_tiled_rotated(rng):
    layers = [("conv", 3, 3), ("conv", 2, 3), ("conv", 3, 3), ("gap",), ("dense", 2)]
    x = rng.standard_normal((5, 6, 6, 1)).astype(np.float32)
    perm = gn.ConvNetwork(layers, (6, 6, 1), "fixed_random_ii", permutation=[2, 1, 0], seed=3)
    for l, src in enumerate([2, 1, 0]):
        np.testing.assert_array_equal(np.asarray(perm.gates(x, l, wired=True)), np.asarray(perm.gates(x, src)))
    tiled = gn.ConvNetwork(layers, (6, 6, 1), "fixed_random_ii", wiring="tiled_rotated", wiring_seed=11, seed=3)
    assert tiled.info()["wiring"] == "tiled_rotated"
    own = np.concatenate([np.asarray(tiled.gates(x, l)) for l in range(3)], axis=3)
    wired = np.concatenate([np.asarray(tiled.gates(x, l, wired=True)) for l in range(3)], axis=3)
    assert not np.array_equal(own, wired)
    # The wired gates are the stacked feature gates rolled along height, width and channels.
    shifts = [(a, b, c) for a in range(6) for b in range(6) for c in range(8)
              if np.array_equal(np.roll(own, (a, b, c), axis=(1, 2, 3)), wired)]
    assert len(shifts) >= 1, "wired gates are not a circular roll of the feature gates"


def test_outputs_are_zero_copy(rng):
    net = gn.ConvNetwork(SMALL, (5, 5, 2), "fixed_random_ii")
    x = rng.standard_normal((6, 5, 5, 2)).astype(np.float32)
    for buf, shape in ((net.predict(x), (6, 3)), (net.npk(x), (6, 6)), (net.gates(x, 0), (6, 5, 5, 4)),
                       (net.tensor(0), (4, 18))):
        assert isinstance(buf, gn.Buffer) and buf.shape == shape
        a, b = np.asarray(buf), np.asarray(buf)
        assert np.shares_memory(a, b) and a.ctypes.data == buf.address
    out = np.zeros((6, 3), np.float32)
    assert net.predict(x, out=out) is out
    np.testing.assert_array_equal(out, np.asarray(net.predict(x)))
    wide = np.zeros((6, 10), np.float32)  # a kernel may go into a column slice (strided rows)
    net.npk(x, out=wide[:, 2:8])
    np.testing.assert_array_equal(wide[:, 2:8], np.asarray(net.npk(x)))
    assert not wide[:, :2].any() and not wide[:, 8:].any()


def test_pickle_save_load_round_trip(tmp_path, rng):
    net = gn.ConvNetwork([("conv", 3, 3, 1, "zero", True, 1), ("conv", 3, 3, {"block": 1}), ("gap",),
                          ("dense", 4, True), ("dense", 3)], (5, 5, 2), "decoupled", seed=8)
    x = rng.standard_normal((10, 50)).astype(np.float32)
    y = rng.integers(0, 3, 10).astype(np.int32)
    net.fit(x, y, epochs=1, batch_size=5, lr=1e-2)
    ref = np.asarray(net.predict(x))
    for other in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net), copy.copy(net), net.clone(),
                  gn.ConvNetwork.from_bytes(net.to_bytes())):
        assert type(other) is gn.ConvNetwork and other.info() == net.info()
        np.testing.assert_array_equal(np.asarray(other.predict(x)), ref)
    path = tmp_path / "net.gconv"
    net.save(path, optimizer_state=True)
    loaded = gn.ConvNetwork.load(path)
    np.testing.assert_array_equal(np.asarray(loaded.predict(x)), ref)
    # Optimizer state travels with pickle: one more epoch gives the same weights on both.
    twin = pickle.loads(pickle.dumps(net))
    net.fit(x, y, epochs=1, batch_size=5, lr=1e-2)
    twin.fit(x, y, epochs=1, batch_size=5, lr=1e-2)
    np.testing.assert_array_equal(np.asarray(twin.predict(x)), np.asarray(net.predict(x)))


def test_close_and_context_manager(rng):
    net = gn.ConvNetwork(SMALL, (5, 5, 2))
    x = rng.standard_normal((2, 50)).astype(np.float32)
    with net as n:
        assert n is net and not net.closed
        n.predict(x)
    assert net.closed and "closed" in repr(net)
    net.close()


def _closed():
    net = gn.ConvNetwork(SMALL, (5, 5, 2), "fixed_random_ii")
    net.close()
    return net


X = np.random.default_rng(0).standard_normal((6, 5, 5, 2)).astype(np.float32)
Y = np.arange(6, dtype=np.int32) % 3
NAN_X = X.copy()
NAN_X[2, 1, 3, 0] = np.nan

BAD_SPECS = [
    # (id, layers, input_shape, kwargs, exception, message regex)
    ("kernel larger than input", [("conv", 4, 7, 1, "valid"), ("dense", 3)], (5, 5, 2), {},
     gn.ArgumentError, "kernel: got 7, larger than its input"),
    ("stride 0", [("conv", 4, 3, 0), ("dense", 3)], (5, 5, 2), {}, gn.ArgumentError, r"layers\[0\]\.stride: got 0"),
    ("units 0", [("conv", 0, 3), ("dense", 3)], (5, 5, 2), {}, gn.ArgumentError, r"layers\[0\]\.units: got 0"),
    ("last not dense", [("conv", 4, 3), ("gap",)], (5, 5, 2), {}, gn.ArgumentError, "last layer must be a dense"),
    ("permutation unequal shapes", [("conv", 4, 3), ("conv", 8, 3), ("gap",), ("dense", 3)], (5, 5, 2),
     dict(regime="custom", permutation=[1, 0]), gn.ArgumentError, r"permutation\[0\] = 1: .*need equal shapes"),
    ("permutation length", SMALL, (5, 5, 2), dict(permutation=[0, 0]), ValueError, "permutation: got 2 entries, need 1"),
    ("permutation repeats", [("conv", 4, 3), ("conv", 4, 3), ("gap",), ("dense", 3)], (5, 5, 2),
     dict(regime="custom", permutation=[0, 0]), gn.ArgumentError, "not a permutation"),
    ("tiling unequal sizes", [("conv", 4, 3), ("conv", 4, 3, 2), ("gap",), ("dense", 3)], (5, 5, 2),
     dict(regime="fixed_random_ii", wiring="tiled_rotated"), gn.ArgumentError, "tiled_rotated"),
    ("input shape 0", SMALL, (5, 5, 0), {}, gn.ArgumentError, "in_channels: got 0"),
    ("input shape 2-D", SMALL, (5, 5), {}, ValueError, r"input_shape: expected \(height, width, channels\)"),
    ("unknown kind", [("pool", 2), ("dense", 3)], (5, 5, 2), {}, ValueError, r"layers\[0\]\.kind: unknown value"),
    ("bad padding", [("conv", 4, 3, 1, "same"), ("dense", 3)], (5, 5, 2), {}, ValueError,
     r"layers\[0\]\.padding: unknown value 'same'"),
    ("too many fields", [("dense", 3, False, 0, 9)], (5, 5, 2), {}, ValueError, r"layers\[0\]: dense takes at most 3"),
    ("conv without kernel", [("conv", 3), ("dense", 3)], (5, 5, 2), {}, ValueError, r"layers\[0\]: conv needs 'kernel'"),
    ("unknown field", [dict(kind="dense", units=3, widht=4)], (5, 5, 2), {}, ValueError, "unknown field.*widht"),
    ("layers not a list", "conv", (5, 5, 2), {}, TypeError, "layers: expected a list"),
    ("regime", SMALL, (5, 5, 2), dict(regime="resnet"), ValueError, "regime: unknown value"),
    ("relu soft", SMALL, (5, 5, 2), dict(gate="soft"), gn.ArgumentError, "relu"),
    ("beta 0", SMALL, (5, 5, 2), dict(regime="custom", gate="soft", beta=0.0), gn.ArgumentError, "beta"),
    ("fixed_learnt no source", SMALL, (5, 5, 2), dict(regime="fixed_learnt"), gn.ArgumentError, "gate_source"),
    ("source not conv", SMALL, (5, 5, 2), dict(regime="fixed_learnt", gate_source=gn.Network(50, [4], 3)),
     TypeError, "gate_source: expected a gatednet.ConvNetwork"),
    ("source closed", SMALL, (5, 5, 2), dict(regime="fixed_learnt", gate_source=_closed()),
     gn.ClosedNetworkError, "closed"),
    ("source other shape", SMALL, (5, 5, 2),
     dict(regime="fixed_learnt", gate_source=gn.ConvNetwork([("conv", 5, 3), ("gap",), ("dense", 3)], (5, 5, 2))),
     gn.ArgumentError, "differ"),
]


@pytest.mark.parametrize("layers, shape, kwargs, exc, match", [c[1:] for c in BAD_SPECS], ids=[c[0] for c in BAD_SPECS])
def test_bad_specs(layers, shape, kwargs, exc, match):
    with pytest.raises(exc, match=match) as info:
        gn.ConvNetwork(layers, shape, **kwargs)
    if isinstance(info.value, gn.GatedNetError):
        assert info.value.status_name.startswith("GN_ERR_")


def test_bad_named():
    with pytest.raises(ValueError, match="arch: unknown value 'resnet50'"):
        gn.ConvNetwork.named("resnet50", (8, 8, 3), 10)
    with pytest.raises(gn.ArgumentError, match="width_scale: got 0"):
        gn.ConvNetwork.named("gconv", (8, 8, 3), 10, width_scale=0)
    with pytest.raises(gn.ArgumentError, match="classes: got 0"):
        gn.ConvNetwork.architecture_layers("gconv", 0)
    with pytest.raises(TypeError, match="unexpected keyword.*colour"):
        gn.ConvNetwork.named("gconv", (8, 8, 3), 10, width_scale=1 / 16, colour="red")


CALLS = [
    # (id, call(net), exception, message regex)
    ("x NCHW", lambda n: n.predict(X.transpose(0, 3, 1, 2)), ValueError,
     r"x: expected NHWC images of shape \(n, 5, 5, 2\) or rows of shape \(n, 50\), got shape \(6, 2, 5, 5\)"),
    ("x wrong channels", lambda n: n.predict(np.zeros((6, 5, 5, 3), np.float32)), ValueError, r"x: .*\(6, 5, 5, 3\)"),
    ("x 3-D multi-channel", lambda n: n.predict(X.reshape(6, 5, 10)), ValueError, "x: expected NHWC"),
    ("x wrong size", lambda n: n.predict(X.reshape(6, -1)[:, :40]), ValueError, r"x: .*got shape \(6, 40\)"),
    ("x int", lambda n: n.predict(X.astype(np.int32)), TypeError, "x: expected float32"),
    ("x NaN", lambda n: n.predict(NAN_X), gn.ArgumentError, "x: contains NaN or Inf"),
    ("x NaN fit", lambda n: n.fit(NAN_X, Y), gn.ArgumentError, "x: contains NaN or Inf"),
    ("xb NaN kernel", lambda n: n.npk(X, NAN_X), gn.ArgumentError, "xb: contains NaN or Inf"),
    ("xb channels kernel", lambda n: n.npk(X, X.transpose(0, 3, 1, 2)), ValueError, "xb: expected NHWC"),
    ("x_test channels", lambda n: n.fit(X, Y, validation_data=(np.zeros((6, 5, 5, 1), np.float32), Y)),
     ValueError, "x_test: "),
    ("y length", lambda n: n.fit(X, Y[:5]), ValueError, "y: expected 6 labels"),
    ("y out of range", lambda n: n.fit(X, Y + 3), gn.ArgumentError, r"y\[0\]: got 3"),
    ("epochs 0", lambda n: n.fit(X, Y, epochs=0), gn.ArgumentError, "epochs: got 0"),
    ("gates layer", lambda n: n.gates(X, 3), gn.LayerIndexError, r"layer: got 3, need -1 ... 0"),
    ("gates out shape", lambda n: n.gates(X, 0, out=np.zeros((6, 100), np.float32)), ValueError,
     r"out: expected shape \(6, 5, 5, 4\), got shape \(6, 100\)"),
    ("kernel kind", lambda n: n.kernel(X, kind="ntk"), ValueError, "kind: unknown value"),
    ("part", lambda n: n.freeze("gating"), ValueError, "part: unknown value"),
    ("closed predict", lambda n: _closed().predict(X), gn.ClosedNetworkError, "closed"),
    ("closed fit", lambda n: _closed().fit(X, Y), gn.ClosedNetworkError, "closed"),
    ("closed kernel", lambda n: _closed().npk(X), gn.ClosedNetworkError, "closed"),
    ("closed pickle", lambda n: pickle.dumps(_closed()), gn.ClosedNetworkError, "closed"),
    ("closed source", lambda n: n.copy_feature_weights(_closed()), gn.ClosedNetworkError, "closed"),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in CALLS], ids=[c[0] for c in CALLS])
def test_bad_calls(call, exc, match):
    net = gn.ConvNetwork(SMALL, (5, 5, 2), "fixed_random_ii", seed=1)
    before = net.to_bytes(optimizer_state=True)
    with pytest.raises(exc, match=match) as info:
        call(net)
    if isinstance(info.value, gn.GatedNetError):
        assert info.value.status_name.startswith("GN_ERR_") and info.value.status > 0
    # A failed call leaves the network as it was, and usable.
    assert net.to_bytes(optimizer_state=True) == before
    assert np.asarray(net.predict(X)).shape == (6, 3)


def test_wrong_files(tmp_path):
    conv = gn.ConvNetwork(SMALL, (5, 5, 2))
    dense = gn.Network(50, [4], 3)
    conv.save(tmp_path / "conv.bin")
    dense.save(tmp_path / "dense.bin")
    with pytest.raises(gn.CorruptFileError):
        gn.ConvNetwork.load(tmp_path / "dense.bin")
    with pytest.raises(gn.CorruptFileError):
        gn.Network.load(tmp_path / "conv.bin")
    with pytest.raises(gn.CorruptFileError):
        gn.ConvNetwork.from_bytes(dense.to_bytes())
    good = conv.to_bytes()
    for bad in (b"", good[:-1], good[:30], bytes(len(good)), good[:60] + bytes([good[60] ^ 1]) + good[61:]):
        with pytest.raises(gn.CorruptFileError):
            gn.ConvNetwork.from_bytes(bad)
    with pytest.raises(gn.FileError, match="missing"):
        gn.ConvNetwork.load(tmp_path / "missing.bin")
    with pytest.raises(gn.FileError):
        conv.save(tmp_path / "no" / "dir" / "x.bin")
    with pytest.raises(TypeError, match="data: expected a bytes-like"):
        gn.ConvNetwork.from_bytes("text")
