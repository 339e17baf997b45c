"""The buffer contract: zero-copy inputs, library-owned outputs shared with numpy, out=."""
import array
import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import gatednet as gn


def test_output_is_a_view_not_a_copy(tiny):
    net, x, _ = tiny
    k = net.npk(x)
    assert isinstance(k, gn.Buffer)
    assert k.shape == (17, 17) and k.format == "f" and k.strides == (17 * 4, 4) and k.ndim == 2
    assert k.itemsize == 4 and k.nbytes == 17 * 17 * 4 and len(k) == 17
    a, b = np.asarray(k), np.asarray(k)
    assert a.dtype == np.float32 and a.shape == (17, 17) and a.flags.c_contiguous
    assert np.shares_memory(a, b)
    assert a.ctypes.data == k.address
    a[0, 0] = -123.0  # writes are seen through every view
    assert b[0, 0] == -123.0 and memoryview(k)[0, 0] == -123.0
    m = memoryview(k)
    assert m.format == "f" and m.shape == (17, 17) and not m.readonly
    assert k.exports >= 1
    m.release()


def test_output_outlives_network_and_buffer_object(rng):
    net = gn.Network(6, [5, 4], 3, regime="fixed_random_ii", seed=7)
    x = rng.standard_normal((17, 6)).astype(np.float32)
    k = net.npk(x)
    expected = np.array(k)  # a copy for comparison
    view = np.asarray(k)
    ref = weakref.ref(net)
    del net
    gc.collect()
    assert ref() is None  # the network is gone...
    np.testing.assert_array_equal(view, expected)  # ...its results are not
    del k
    gc.collect()
    np.testing.assert_array_equal(view, expected)  # the view keeps the memory alive


def test_buffer_freed_when_last_view_dies(tiny):
    net, x, _ = tiny
    k = net.npk(x)
    alive = weakref.ref(k)
    v = np.asarray(k)
    m = memoryview(k)
    del k
    gc.collect()
    assert alive() is not None  # numpy view and memoryview hold it
    del v
    gc.collect()
    assert alive() is not None and alive().exports == 1
    m.release()
    del m
    gc.collect()
    assert alive() is None  # freed (tp_dealloc frees the memory)


def test_tolist_and_tobytes(tiny):
    net, x, _ = tiny
    p = net.predict(x[:2])
    assert p.tolist() == np.asarray(p).tolist()
    assert p.tobytes() == np.asarray(p).tobytes()
    assert "float32" in repr(p) and "(2, 3)" in repr(p)


def test_float32_input_is_not_copied(small):
    x, _, _, _ = small
    net = gn.Network(784, [8], 10, regime="fixed_random_ii")
    xs = np.ascontiguousarray(x[:1000])  # 3 MB
    net.predict(xs)  # warm-up (workspace allocation inside the library)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        net.predict(xs)
        _, peak32 = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        net.predict(xs.astype(np.float64))
        _, peak64 = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak32 - base < 100_000, peak32 - base  # no copy of the 3 MB input
    assert peak64 - base >= xs.nbytes  # float64: one float32 copy (plus the float64 array)


def test_conversion_rule_gives_identical_results(tiny):
    net, x, y = tiny
    ref = np.asarray(net.predict(x))
    x64 = x.astype(np.float64)
    np.testing.assert_array_equal(np.asarray(net.predict(x64)), ref)
    wide = np.zeros((17, 12), np.float32)
    wide[:, ::2] = x
    strided = wide[:, ::2]
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(np.asarray(net.predict(strided)), ref)
    fortran = np.asfortranarray(x)
    np.testing.assert_array_equal(np.asarray(net.predict(fortran)), ref)
    mv = memoryview(x)
    np.testing.assert_array_equal(np.asarray(net.predict(mv)), ref)
    arr = array.array("f", x.ravel().tolist())
    flat = memoryview(arr).cast("B").cast("f", (17, 6))
    np.testing.assert_array_equal(np.asarray(net.predict(flat)), ref)
    # y: int32 in place; int64 / uint8 copied with a range check
    e = net.evaluate(x, y)
    assert net.evaluate(x, y.astype(np.int64)) == e
    assert net.evaluate(x, y.astype(np.uint8)) == e
    assert net.evaluate(x, array.array("i", y.tolist())) == e


def test_images_with_trailing_dims_are_flattened(small):
    x, y, _, _ = small
    net = gn.Network(784, [8], 10, regime="fixed_random_ii")
    np.testing.assert_array_equal(np.asarray(net.predict(x[:4].reshape(4, 28, 28))),
                                  np.asarray(net.predict(x[:4])))


def test_out_parameter_fills_in_place(tiny):
    net, x, y = tiny
    out = np.full((17, 3), np.nan, np.float32)
    r = net.predict(x, out=out)
    assert r is out
    np.testing.assert_array_equal(out, np.asarray(net.predict(x)))
    classes = np.zeros(17, np.int32)
    assert net.predict_classes(x, out=classes) is classes
    np.testing.assert_array_equal(classes, np.argmax(out, axis=1))
    g = np.zeros((17, 5), np.float32)
    assert net.gates(x, 0, out=g) is g
    np.testing.assert_array_equal(g, np.asarray(net.gates(x, 0)))


def test_kernel_out_may_have_strided_rows(tiny):
    net, x, _ = tiny
    ref = np.asarray(net.npk(x[:5], x))
    big = np.full((5, 40), 7.0, np.float32)
    window = big[:, 10:27]  # rows of 17 floats, row stride 40
    assert net.npk(x[:5], x, out=window) is window
    np.testing.assert_array_equal(window, ref)
    assert (big[:, :10] == 7).all() and (big[:, 27:] == 7).all()  # nothing outside is touched


@pytest.mark.parametrize("make_out, exc, match", [
    (lambda: np.zeros((17, 3), np.float64), TypeError, "out: expected a writable float32"),
    (lambda: np.zeros((17, 4), np.float32), ValueError, r"out: expected shape \(17, 3\)"),
    (lambda: np.zeros((3, 17), np.float32).T, ValueError, "out: needs a C-contiguous"),
    (lambda: _readonly((17, 3)), ValueError, "out: a writable"),
    (lambda: bytearray(17 * 3 * 4), TypeError, "out: expected a writable float32"),
])
def test_bad_out(tiny, make_out, exc, match):
    net, x, _ = tiny
    with pytest.raises(exc, match=match):
        net.predict(x, out=make_out())


def _readonly(shape):
    a = np.zeros(shape, np.float32)
    a.flags.writeable = False
    return a
