"""The bad-input table: every row must raise the documented exception, never crash."""
import array

import numpy as np
import pytest

import gatednet as gn

X = np.random.default_rng(0).standard_normal((10, 6)).astype(np.float32)
Y = np.arange(10, dtype=np.int32) % 3
NAN_X = X.copy()
NAN_X[3, 2] = np.nan
INF_X = X.copy()
INF_X[0, 0] = np.inf


def _closed():
    net = gn.Network(6, [5, 4], 3, regime="fixed_random_ii")
    net.close()
    return net


CASES = [
    # (id, call(net), exception, message regex)
    ("x 1-D", lambda n: n.predict(X[0]), ValueError, r"x: expected a 2-D buffer of shape \(n, 6\), got shape \(6,\)"),
    ("x wrong cols", lambda n: n.predict(X[:, :5]), ValueError, r"x: .*got shape \(10, 5\)"),
    ("x no rows", lambda n: n.predict(X[:0]), ValueError, "x: expected at least one row"),
    ("x int dtype", lambda n: n.predict(X.astype(np.int32)), TypeError, "x: expected float32 data .*got int32"),
    ("x float16", lambda n: n.predict(X.astype(np.float16)), TypeError, "x: .*got float16"),
    ("x complex", lambda n: n.predict(X.astype(np.complex64)), TypeError, "x: expected float32"),
    ("x list", lambda n: n.predict(X.tolist()), TypeError, "x: expected an object with the buffer protocol"),
    ("x None", lambda n: n.predict(None), TypeError, "x: expected an object with the buffer protocol"),
    ("x big-endian", lambda n: n.predict(X.astype(">f4")), TypeError, "x: expected float32"),
    ("x NaN", lambda n: n.predict(NAN_X), gn.ArgumentError, "x: contains NaN or Inf"),
    ("x Inf in fit", lambda n: n.fit(INF_X, Y), gn.ArgumentError, "x: contains NaN or Inf"),
    ("x NaN kernel", lambda n: n.npk(X, NAN_X), gn.ArgumentError, "xb: contains NaN or Inf"),
    ("y length", lambda n: n.fit(X, Y[:9]), ValueError, r"y: expected 10 labels .*got shape \(9,\)"),
    ("y 2-D", lambda n: n.fit(X, Y.reshape(5, 2)), ValueError, "y: expected a 1-D buffer"),
    # float y are regression targets (n x output_size): a 1-D float y for 3 outputs is a shape error
    ("y float", lambda n: n.fit(X, Y.astype(np.float32)), ValueError, r"y: expected a 2-D buffer of shape \(n, 3\)"),
    ("y float cross-entropy", lambda n: n.fit(X, np.zeros((10, 3)), loss="cross_entropy"), ValueError,
     'loss: float y are real-valued targets, which take loss="squared" only'),
    ("y float16", lambda n: n.fit(X, Y.astype(np.float16)), TypeError, "y: expected integer or bool labels.*float16"),
    ("y out of range", lambda n: n.fit(X, Y + 5), gn.ArgumentError, r"y\[0\]: got 5, need 0 ... 2"),
    ("y negative", lambda n: n.evaluate(X, -Y - 1), gn.ArgumentError, r"y\[0\]: got -1"),
    ("y too big for int32", lambda n: n.fit(X, np.full(10, 2**40)), ValueError, r"y\[0\]: .* does not fit in int32"),
    ("validation half", lambda n: n.fit(X, Y, validation_data=(X, None)), ValueError, "x_test, y_test"),
    ("x_test cols", lambda n: n.fit(X, Y, validation_data=(X[:, :2], Y)), ValueError, "x_test: "),
    ("epochs 0", lambda n: n.fit(X, Y, epochs=0), gn.ArgumentError, "epochs: got 0"),
    ("batch 0", lambda n: n.fit(X, Y, batch_size=0), gn.ArgumentError, "batch_size: got 0"),
    ("lr negative", lambda n: n.fit(X, Y, lr=-1.0), ValueError, r"lr: got -1.0, need a finite number > 0"),
    ("lr string", lambda n: n.fit(X, Y, lr="fast"), TypeError, "lr: expected a number"),
    ("lr None", lambda n: n.fit(X, Y, lr=None), ValueError, "lr: got None"),
    ("adam_betas", lambda n: n.fit(X, Y, adam_betas=(1.5, 0.9)), ValueError, r"adam_betas: got \(1.5, 0.9\)"),
    ("optimizer", lambda n: n.fit(X, Y, optimizer="lbfgs"), ValueError, "optimizer: unknown value"),
    ("loss", lambda n: n.evaluate(X, Y, loss="hinge"), ValueError, "loss: unknown value"),
    ("gates layer", lambda n: n.gates(X, 7), gn.LayerIndexError, r"layer: got 7, need -2 ... 1"),
    ("gates layer -3", lambda n: n.gates(X, -3), IndexError, r"layer: got -3, need -2 ... 1"),
    ("gates layer float", lambda n: n.gates(X, 1.0), TypeError, "layer: expected an int"),
    ("weights layer", lambda n: n.weights("value", 3), ValueError, r"layer: got 3, need -3 ... 2"),
    ("weights part", lambda n: n.weights("gating", 0), ValueError, "part: unknown value"),
    ("set_weights NaN", lambda n: n.set_weights("value", 0, np.full(30, np.nan, np.float32)), gn.ArgumentError, "NaN"),
    ("head absent", lambda n: n.predict_feature_head(X), gn.UnsupportedError, "head"),
    ("closed predict", lambda n: _closed().predict(X), gn.ClosedNetworkError, "closed"),
    ("closed fit", lambda n: _closed().fit(X, Y), gn.ClosedNetworkError, "closed"),
    ("closed kernel", lambda n: _closed().npk(X), gn.ClosedNetworkError, "closed"),
    ("closed save", lambda n: _closed().save("/tmp/never.gnet"), gn.ClosedNetworkError, "closed"),
    ("closed pickle", lambda n: _closed().to_bytes(), gn.ClosedNetworkError, "closed"),
    ("closed source", lambda n: n.copy_feature_weights(_closed()), gn.ClosedNetworkError, "closed"),
    ("closed gate_source", lambda n: gn.Network(6, [5, 4], 3, regime="fixed_learnt", gate_source=_closed()),
     gn.ClosedNetworkError, "closed"),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(call, exc, match):
    net = gn.Network(6, [5, 4], 3, regime="fixed_random_ii", seed=1)
    before = np.array(net.weights("value", 0))
    with pytest.raises(exc, match=match) as info:
        call(net)
    if isinstance(info.value, gn.GatedNetError):
        assert info.value.status_name.startswith("GN_ERR_") and info.value.status > 0
    # A failed call leaves the network as it was, and usable.
    np.testing.assert_array_equal(np.asarray(net.weights("value", 0)), before)
    assert np.asarray(net.predict(X)).shape == (10, 3)


def test_exception_hierarchy():
    assert issubclass(gn.GatedNetError, RuntimeError)
    for cls in (gn.ArgumentError, gn.ClosedNetworkError, gn.CorruptFileError):
        assert issubclass(cls, gn.GatedNetError) and issubclass(cls, ValueError)
    assert issubclass(gn.FileError, OSError) and issubclass(gn.FileError, gn.GatedNetError)
    assert issubclass(gn.UnsupportedError, NotImplementedError)
    assert issubclass(gn.OutOfMemoryError, MemoryError)


def test_file_errors(tmp_path):
    with pytest.raises(gn.FileError, match="missing.gnet") as info:
        gn.Network.load(tmp_path / "missing.gnet")
    assert info.value.status_name == "GN_ERR_IO"
    assert isinstance(info.value, OSError)
    wrong = tmp_path / "wrong.gnet"
    wrong.write_bytes(b"this is not a network file at all" * 10)
    with pytest.raises(gn.CorruptFileError):
        gn.Network.load(wrong)
    net = gn.Network(6, [5], 3)
    with pytest.raises(gn.FileError):
        net.save(tmp_path / "no" / "such" / "dir" / "x.gnet")
    with pytest.raises(TypeError, match="path"):
        net.save(12)
    with pytest.raises(ValueError, match="NUL"):
        net.save("a\0b")
    with pytest.raises(gn.FileError):
        gn.load_idx(tmp_path / "missing.idx")
    with pytest.raises(gn.CorruptFileError):
        gn.load_idx(wrong)


def test_corrupt_bytes():
    good = gn.Network(6, [5], 3).to_bytes()
    for bad in (b"", good[:-1], good[:20], bytes(len(good)), good[:-4] + b"\0\0\0\0",
                good[:100] + bytes([good[100] ^ 1]) + good[101:]):
        with pytest.raises(gn.CorruptFileError):
            gn.Network.from_bytes(bad)
    with pytest.raises(TypeError, match="bytes-like"):
        gn.Network.from_bytes("text")


def test_corrupt_labels_helper():
    y = np.arange(1000, dtype=np.int32) % 10
    changed = gn.corrupt_labels(y, 10, 0.5, seed=3)
    diff = int((y != np.arange(1000) % 10).sum())
    assert changed == diff and 400 <= diff <= 500  # 500 redrawn, ~1/10 keep their label
    with pytest.raises(gn.ArgumentError, match="gamma"):
        gn.corrupt_labels(y, 10, 1.5)
    with pytest.raises(TypeError, match="labels: expected a writable int32"):
        gn.corrupt_labels(y.astype(np.int64), 10, 0.5)
    with pytest.raises(ValueError, match="labels"):
        gn.corrupt_labels(array.array("i", [1, 2]).tobytes(), 10, 0.5)
