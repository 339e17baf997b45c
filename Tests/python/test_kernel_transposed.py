"""kernel(out=, out_transposed=): the second output is ``out.T`` bit for bit, written in the same
pass, for FC and conv kernels; bad buffers raise naming ``out_transposed`` and write nothing."""
import numpy as np
import pytest

import gatednet as gn

SENTINEL = np.float32(-777.25)


def bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


@pytest.fixture(scope="module")
def data():
    r = np.random.default_rng(5)
    x = r.standard_normal((600, 12)).astype(np.float32)
    y = r.standard_normal((90, 12)).astype(np.float32)
    return x, y


@pytest.fixture(scope="module")
def nets():
    hard = gn.Network(12, [24, 16], 3, regime="fixed_random_ii", seed=1)
    relu = gn.Network(12, [16, 16], 2, regime="relu", seed=2)
    return hard, relu


def both(net, xa, xb, kind, rows=None, cols=None, **options):
    """out and out_transposed of one call, each a strided view (padded rows) into a
    sentinel-filled array, with the padded arrays for checking the padding."""
    na = len(xa)
    nb = na if xb is None else len(xb)
    r0, r1 = (0, na) if rows is None else rows
    c0, c1 = (0, nb) if cols is None else cols
    R, C = r1 - r0, c1 - c0
    out_pad = np.full((R, C + 3), SENTINEL, np.float32)
    t_pad = np.full((C, R + 5), SENTINEL, np.float32)
    net.kernel(xa, xb, kind, rows=rows, cols=cols, out=out_pad[:, :C], out_transposed=t_pad[:, :R],
               **options)
    return out_pad, t_pad, R, C


@pytest.mark.parametrize("kind,which,options", [
    ("npk", 0, {}), ("npk_normalized", 0, {}), ("npk_trace_normalized", 0, {}),
    ("ntk_value", 0, {"ntk_scaling": True}), ("ntk", 1, {"output": 1}), ("npk_limit", 0, {}),
    ("ntk_limit", 1, {}),
])
@pytest.mark.parametrize("block", ["symmetric", "cross", "offsets", "cross_offsets"])
def test_transposed_is_out_transposed_bit_for_bit(data, nets, kind, which, options, block):
    x, y = data
    net = nets[which]
    xb, rows, cols = {"symmetric": (None, None, None), "cross": (y, None, None),
                      "offsets": (None, (37, 590), (5, 530)), "cross_offsets": (y, (513, 600), (11, 89))}[block]
    out_pad, t_pad, R, C = both(net, x, xb, kind, rows, cols, **options)
    out, t = out_pad[:, :C], t_pad[:, :R]
    assert not np.any(out == SENTINEL)
    assert np.array_equal(bits(out.T), bits(t))
    assert np.all(out_pad[:, C:] == SENTINEL) and np.all(t_pad[:, R:] == SENTINEL)
    # out itself is what a call without out_transposed gives
    plain = np.asarray(net.kernel(x, xb, kind, rows=rows, cols=cols, **options))
    assert np.array_equal(bits(plain), bits(out))


def test_transposed_without_out_and_with_progress(data, nets):
    x, y = data
    net = nets[0]
    t = np.empty((len(y), len(x)), np.float32)
    seen = []
    k = np.asarray(net.kernel(x, y, "npk", out_transposed=t, progress=seen.append))
    assert np.array_equal(bits(k.T), bits(t))
    assert seen and seen[-1] == 1.0


def test_conv_transposed_bit_for_bit():
    net = gn.ConvNetwork([("conv", 3, 3), ("conv", 4, 3), ("gap",), ("dense", 5), ("dense", 2)], (5, 5, 2),
                         "decoupled", seed=31)
    r = np.random.default_rng(7)
    x = r.uniform(-1, 1, (40, 50)).astype(np.float32)
    y = r.uniform(-1, 1, (23, 50)).astype(np.float32)
    for xb in (None, y):
        for kind in ("npk", "npk_normalized"):
            nb = 40 if xb is None else 23
            out = np.full((40, nb), SENTINEL, np.float32)
            t_pad = np.full((nb, 44), SENTINEL, np.float32)
            seen = []
            net.kernel(x, xb, kind, out=out, out_transposed=t_pad[:, :40], progress=seen.append)
            assert np.array_equal(bits(out.T), bits(t_pad[:, :40]))
            assert np.all(t_pad[:, 40:] == SENTINEL)
            assert np.array_equal(bits(out), bits(np.asarray(net.kernel(x, xb, kind))))
            assert seen and seen[-1] == 1.0
    with pytest.raises(ValueError, match="out_transposed"):
        net.kernel(x, y, out=np.empty((40, 23), np.float32), out_transposed=np.empty((40, 23), np.float32))


@pytest.mark.parametrize("bad,error", [
    (lambda: np.empty((600, 90), np.float32), ValueError),            # not transposed
    (lambda: np.empty((90, 599), np.float32), ValueError),            # one column short
    (lambda: np.empty((90, 600), np.float64), TypeError),             # dtype
    (lambda: np.empty((600, 90), np.float32).T, ValueError),          # column-strided rows
    (lambda: np.empty((90, 600), np.float32)[:, None], ValueError),   # 3-D
    (lambda: [[0.0] * 600] * 90, TypeError),                          # no buffer protocol
])
def test_bad_out_transposed_names_it(data, nets, bad, error):
    x, y = data
    out = np.full((600, 90), SENTINEL, np.float32)
    with pytest.raises(error, match="out_transposed"):
        nets[0].kernel(x, y, out=out, out_transposed=bad())
    assert np.all(out == SENTINEL)


def test_read_only_overlap_and_upper_only_refused(data, nets):
    x, y = data
    net = nets[0]
    out = np.full((600, 90), SENTINEL, np.float32)
    t = np.full((90, 600), SENTINEL, np.float32)
    t.flags.writeable = False
    with pytest.raises(ValueError, match="out_transposed"):
        net.kernel(x, y, out=out, out_transposed=t)
    t = np.full((90, 600), SENTINEL, np.float32)
    big = np.full(600 * 90 + 90 * 600 - 1, SENTINEL, np.float32)
    with pytest.raises(gn.ArgumentError, match="out_transposed: overlaps out"):
        net.kernel(x, y, out=big[:600 * 90].reshape(600, 90), out_transposed=big[600 * 90 - 1:].reshape(90, 600))
    assert np.all(big == SENTINEL)
    sq = np.full((600, 600), SENTINEL, np.float32)
    tq = np.full((600, 600), SENTINEL, np.float32)
    with pytest.raises(ValueError, match="upper_only"):
        net.kernel(x, out=sq, out_transposed=tq, upper_only=True)
    assert np.all(sq == SENTINEL) and np.all(tq == SENTINEL) and np.all(out == SENTINEL)
