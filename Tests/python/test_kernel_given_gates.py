"""Network.packed_gates and kernel(gates_a=, gates_b=): gates computed once and passed to many
kernel calls give the kernel computed without them, bit for bit; every call that cannot use them,
and every wrong array, raises before anything is computed."""
import tracemalloc

import numpy as np
import pytest

import gatednet as gn

WIDTHS = [70, 64, 130]  # a partial last word, a full word, three words: 2 + 1 + 3 = 6 per row
WORDS = 6


@pytest.fixture(scope="module")
def data():
    r = np.random.default_rng(17)
    return r.standard_normal((560, 12)).astype(np.float32), r.standard_normal((90, 12)).astype(np.float32)


@pytest.fixture(scope="module")
def hard():
    return gn.Network(12, WIDTHS, 3, regime="fixed_random_ii", seed=3)


def test_packed_gates_layout(hard, data):
    x, _ = data
    g = np.asarray(hard.packed_gates(x))
    assert g.dtype == np.uint64 and g.shape == (len(x), WORDS) and g.flags.c_contiguous
    # the per-layer packed gates side by side, in feature-net numbering
    parts = [np.asarray(hard.gates(x, l, packed=True)) for l in range(3)]
    np.testing.assert_array_equal(g, np.concatenate(parts, axis=1))
    # and they are the float gates' bits
    for l, (lo, w) in enumerate([(0, 70), (2, 64), (3, 130)]):
        f = np.asarray(hard.gates(x, l)) > 0
        words = g[:, lo:lo + (w + 63) // 64]
        bits = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")[:, :w].astype(bool)
        np.testing.assert_array_equal(bits, f)
    assert 0.1 < np.mean(np.asarray(hard.gates(x, 0)) > 0) < 0.9  # live gates: equality is not vacuous
    # out=: filled in place
    out = np.zeros((len(x), WORDS), np.uint64)
    assert hard.packed_gates(x, out=out) is out
    np.testing.assert_array_equal(out, g)


def test_packed_gates_soft_refused():
    soft = gn.Network(12, [8], 2, regime="dlgn", seed=1)
    with pytest.raises(gn.UnsupportedError, match="soft"):
        soft.packed_gates(np.zeros((3, 12), np.float32))


CASES = [("npk", 0), ("npk_normalized", 0), ("overlap", 0), ("base", 0), ("base", 2)]
BLOCKS = [(False, None, None), (True, None, None), (False, (37, 540), (5, 520)), (True, (100, 560), (11, 89))]


@pytest.mark.parametrize("kind,layer", CASES)
def test_equal_to_computed(hard, data, kind, layer):
    x, y = data
    gx, gy = hard.packed_gates(x), hard.packed_gates(y)
    for cross, rows, cols in BLOCKS:
        xb = y if cross else None
        want = np.asarray(hard.kernel(x, xb, kind, layer=layer, rows=rows, cols=cols))
        assert np.count_nonzero(want) > want.size // 2
        sides = [(gx, gy if cross else None), (gx, None)] + ([(None, gy)] if cross else [(gx, gx)])
        for ga, gb in sides:
            got = np.asarray(hard.kernel(x, xb, kind, layer=layer, rows=rows, cols=cols, gates_a=ga, gates_b=gb,
                                         gate_path="packed" if ga is None else "auto"))
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        # with the transposed output too
        R, C = want.shape
        t = np.empty((C, R), np.float32)
        got = np.asarray(hard.kernel(x, xb, kind, layer=layer, rows=rows, cols=cols, out_transposed=t, gates_a=gx,
                                     gates_b=gy if cross else None))
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        np.testing.assert_array_equal(t, want.T)


def test_gates_are_used_in_place(hard, data):
    """The given gates are read (not recomputed) and not copied: all layer-1 gates of row 4 turned
    on give B_1[4, j] = popcount(row j's layer-1 word) / 64."""
    x, _ = data
    g = np.array(hard.packed_gates(x[:20]))
    g[4, 2] = np.uint64(2**64 - 1)
    tracemalloc.start()
    try:
        b = np.asarray(hard.kernel(x[:20], None, "base", layer=1, gates_a=g))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    counts = np.array([bin(int(v)).count("1") for v in g[:, 2]], np.float32)
    np.testing.assert_array_equal(b[4], counts / 64)
    np.testing.assert_array_equal(b[:, 4], counts / 64)
    assert b[4, 4] == 1
    assert peak < 20 * 20 * 4 + 4096  # the result only: no copy of the gates


def test_refused_calls(hard, data):
    x, y = data
    gx, gy = hard.packed_gates(x), hard.packed_gates(y)
    for kind in ["input_gram", "npk_trace_normalized", "ntk_value", "ntk", "npk_limit", "ntk_limit"]:
        with pytest.raises(gn.ArgumentError, match="gates_a"):
            hard.kernel(x, y, kind, gates_a=gx)
        with pytest.raises(gn.ArgumentError, match="gates_b"):
            hard.kernel(x, y, kind, gates_b=gy)
    with pytest.raises(gn.ArgumentError, match="gate_path"):
        hard.kernel(x, y, "npk", gate_path="float", gates_a=gx)
    # symmetric: gates_b must be None or gates_a itself
    with pytest.raises(gn.ArgumentError, match="gates_b"):
        hard.kernel(x, None, "npk", gates_a=gx, gates_b=np.array(gx))
    with pytest.raises(gn.ArgumentError, match="gates_b"):
        hard.kernel(x, None, "npk", gates_b=gx)
    soft = gn.Network(12, WIDTHS, 3, regime="decoupled", seed=4)
    with pytest.raises(gn.UnsupportedError, match="soft"):
        soft.kernel(x, y, "npk", gates_a=gx)
    # a bit above layer 2's width (130 gates: bits 2.. of word 5) in row 33
    bad = np.array(gx)
    bad[33, 5] |= np.uint64(1 << 7)
    out = np.full((len(x), len(y)), -1, np.float32)
    with pytest.raises(gn.ArgumentError, match=r"row 33 .*layer 2"):
        hard.kernel(x, y, "npk_normalized", gates_a=bad, out=out)
    assert np.all(out == -1)


def test_bad_arrays(hard, data):
    x, y = data
    gx = np.asarray(hard.packed_gates(x))
    with pytest.raises(TypeError, match="gates_a.*uint64.*int64"):
        hard.kernel(x, y, "npk", gates_a=gx.view(np.int64))
    with pytest.raises(TypeError, match="gates_a.*uint64.*float64"):
        hard.kernel(x, y, "npk", gates_a=gx.astype(np.float64))
    with pytest.raises(TypeError, match="gates_b.*buffer protocol"):
        hard.kernel(x, y, "npk", gates_b=[[1, 2]])
    with pytest.raises(ValueError, match=r"gates_a.*\(560, 6\)"):
        hard.kernel(x, y, "npk", gates_a=gx[:-1])
    with pytest.raises(ValueError, match=r"gates_b.*\(90, 6\)"):
        hard.kernel(x, y, "npk", gates_b=gx[:90, :5])
    with pytest.raises(ValueError, match="gates_a.*shape"):
        hard.kernel(x, y, "npk", gates_a=gx.reshape(-1))
    strided = np.zeros((len(x), 2 * WORDS), np.uint64)[:, ::2]
    strided[...] = gx
    with pytest.raises(ValueError, match="gates_a.*C-contiguous"):
        hard.kernel(x, y, "npk", gates_a=strided)
    # a block: all rows of xa are still needed (row r of the gates is row r of xa)
    with pytest.raises(ValueError, match="gates_a"):
        hard.kernel(x, y, "npk", rows=(10, 20), gates_a=gx[10:20])
