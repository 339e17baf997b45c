"""The kernel suite (gn_kernel_compute and the kernel algebra) from Python."""
import os
import signal
import threading
import time

import numpy as np
import pytest

import gatednet as gn



def value_gradients(net, x):
    """Explicit per-example gradients of every output w.r.t. the value weights (MATH.md 7.5):
    returns g[n, k, P], P = number of value weights, for a hard-gated DGN without biases."""
    info = net.info()
    L = len(info["hidden_widths"])
    wv = [np.asarray(net.weights("value", l), np.float64) for l in range(L + 1)]
    gates = [np.asarray(g, np.float64) for g in net.gates(x)]
    perm = info["permutation"]
    grads = []
    for i in range(len(x)):
        z = [np.asarray(x[i], np.float64)]
        for l in range(L):
            z.append((wv[l] @ z[-1]) * gates[perm[l]][i])
        per_output = []
        for o in range(info["output_size"]):
            delta = np.zeros(info["output_size"])
            delta[o] = 1.0
            g = [None] * (L + 1)
            g[L] = np.outer(delta, z[L])
            for l in range(L - 1, -1, -1):
                delta = (wv[l + 1].T @ delta) * gates[perm[l]][i]
                g[l] = np.outer(delta, z[l])
            per_output.append(np.concatenate([m.ravel() for m in g]))
        grads.append(per_output)
    return np.array(grads)


def close(actual, expected, rtol=2e-5):
    actual = np.asarray(actual)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


def test_ntk_value_equals_gram_of_explicit_gradients(rng):
    net = gn.Network(7, [6, 5], 3, regime="fixed_random_ii", seed=4, permutation=None)
    x = rng.standard_normal((9, 7)).astype(np.float32)
    g = value_gradients(net, x)
    total = np.einsum("iop,jop->ij", g, g)
    close(net.ntk(x, part="value"), total)
    close(net.ntk(x), total)  # feature net frozen: the trainable NTK is K^v
    for o in range(3):
        close(net.ntk(x, part="value", output=o), g[:, o] @ g[:, o].T)
    xb = rng.standard_normal((4, 7)).astype(np.float32)
    both = np.concatenate([x, xb])
    gb = value_gradients(net, both)
    close(net.ntk(x, xb, part="value"), np.einsum("iop,jop->ij", gb[:9], gb[9:]))
    with pytest.raises(gn.UnsupportedError):
        net.ntk(x, part="feature")  # hard gates pass no gradient to the feature net


def test_trace_normalized_npk(small):
    _, _, xt, _ = small
    net = gn.Network(784, [32, 32], 10, regime="fixed_random_ii", seed=1)
    x = xt[:120]
    h = np.asarray(net.npk(x), np.float64)
    close(net.npk(x, normalized="trace"), h / np.trace(h))
    # The trace is over all rows of xa even for a block of rows.
    close(net.npk(x, normalized="trace", rows=slice(10, 30)), h[10:30] / np.trace(h))


def test_blocks_upper_only_and_gate_paths(small):
    _, _, xt, _ = small
    net = gn.Network(784, [64, 64], 10, regime="relu", seed=2)
    x = xt[:300]
    full = np.asarray(net.npk(x))
    np.testing.assert_array_equal(np.asarray(net.npk(x, rows=slice(40, 90), cols=(100, 300))), full[40:90, 100:300])
    np.testing.assert_array_equal(np.asarray(net.npk(x, rows=(250, None))), full[250:])
    upper = np.asarray(net.npk(x, upper_only=True))
    np.testing.assert_array_equal(np.triu(upper), np.triu(full))
    assert not np.tril(upper, -1).any()
    np.testing.assert_array_equal(np.asarray(net.npk(x, gate_path="float")), np.asarray(net.npk(x, gate_path="packed")))
    big = np.zeros((300, 400), np.float32)  # tile into a bigger matrix through a strided out
    for r0 in range(0, 300, 128):
        for c0 in range(0, 300, 128):
            r1, c1 = min(r0 + 128, 300), min(c0 + 128, 300)
            net.npk(x, rows=(r0, r1), cols=(c0, c1), out=big[r0:r1, c0:c1])
    np.testing.assert_array_equal(big[:, :300], full)
    with pytest.raises(ValueError, match=r"rows: block \[250, 350\) outside the 300 rows"):
        net.npk(x, rows=(250, 350))
    with pytest.raises(gn.UnsupportedError):
        gn.Network(784, [8], 10, regime="decoupled").npk(x, gate_path="packed")


def test_npk_limit_matches_arc_cosine_formula(rng):
    net = gn.Network(5, [16, 16, 16], 2, regime="fixed_random_ii", seed=1)
    x = rng.standard_normal((6, 5))
    gram = x @ x.T
    norms = np.sqrt(np.diag(gram))
    theta = np.arccos(np.clip(gram / np.outer(norms, norms), -1, 1))
    expected = gram.copy()
    for _ in range(3):
        expected *= (np.pi - theta) / (2 * np.pi)
        cos = (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / np.pi
        theta = np.arccos(np.clip(cos, -1, 1))
    close(net.npk_limit(x.astype(np.float32)), expected, rtol=1e-4)


def test_wide_random_networks_approach_npk_limit(rng):
    # MATH.md 7.7: the normalised NPK of random gates converges to the arc-cosine limit. Each
    # random gating deviates by O(1/sqrt(width)); if the limit is right (no bias) the deviation of
    # the average over s independent gatings shrinks like 1/sqrt(s) (here 1/sqrt(6) = 0.41).
    x = rng.standard_normal((30, 50)).astype(np.float32)
    limit = np.asarray(gn.Network(50, [1024, 1024], 2, regime="fixed_random_ii").npk_limit(x), np.float64)
    kernels = [np.asarray(gn.Network(50, [1024, 1024], 2, regime="fixed_random_ii", seed=s)
                          .npk(x, normalized=True), np.float64) for s in range(6)]
    single = np.mean([np.linalg.norm(k - limit) for k in kernels]) / np.linalg.norm(limit)
    averaged = np.linalg.norm(np.mean(kernels, axis=0) - limit) / np.linalg.norm(limit)
    assert single < 0.1
    assert averaged < 0.6 * single, (averaged, single)


def test_ntk_limit_sum_is_outputs_times_per_output(rng):
    net = gn.Network(6, [8, 8], 3, regime="relu", seed=1)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    close(net.ntk_limit(x), 3 * np.asarray(net.ntk_limit(x, output=0), np.float64))


def test_kernel_progress_callback_and_cancel(small):
    _, _, xt, _ = small
    net = gn.Network(784, [32], 10, regime="fixed_random_ii")
    x = np.concatenate([xt, xt, xt])  # 1500 rows: several tiles
    seen = []
    net.npk(x, progress=seen.append)
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] == 1.0 and 0 < seen[0] < 1
    with pytest.raises(gn.CancelledError) as info:
        net.npk(x, progress=lambda f: f < 0.3)
    assert info.value.status_name == "GN_ERR_CANCELLED"

    def bad(f):
        raise ZeroDivisionError("in progress")

    with pytest.raises(ZeroDivisionError, match="in progress"):
        net.npk(x, progress=bad)
    assert np.asarray(net.npk(xt[:10])).shape == (10, 10)  # still usable


def test_keyboard_interrupt_during_kernel(small, fashion):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread")
    x, _ = fashion
    net = gn.Network(784, [256, 256], 10, regime="relu", seed=1)
    t0 = time.monotonic()
    net.ntk(x[:800])
    per_entry = (time.monotonic() - t0) / 800**2
    n = 8000  # ~100 x the time of the 800 kernel
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    try:
        start = time.monotonic()
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            net.ntk(x[:n])
        elapsed = time.monotonic() - start
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, old)
    assert elapsed < 0.5 * per_entry * n * n, (elapsed, per_entry * n * n)
    assert np.asarray(net.ntk(x[:5])).shape == (5, 5)


def test_kernel_algebra_against_numpy(small):
    x, y, xt, yt = small
    net = gn.Network(784, [64, 64], 10, regime="relu", seed=5)
    xs, ys = x[:300], y[:300]
    k = np.asarray(net.npk(xs, normalized=True), np.float64)
    ev = np.asarray(gn.kernel_eigenvalues(net.npk(xs, normalized=True, upper_only=True)))
    assert ev.dtype == np.float64 and (np.diff(ev) <= 0).all()
    np.testing.assert_allclose(ev, np.sort(np.linalg.eigvalsh(k))[::-1], rtol=1e-4, atol=1e-6 * ev[0])

    pm = np.where(ys % 2 == 0, 1.0, -1.0).astype(np.float32)
    kk = np.asarray(net.npk(xs, normalized=True))
    nu, ridge = gn.kernel_nu(kk, pm)
    kh = k / np.trace(k) + ridge * np.eye(len(k))
    assert nu == pytest.approx(pm @ np.linalg.solve(kh, pm), rel=1e-3)

    targets = np.asarray(gn.kernel_targets(ys, 10))
    np.testing.assert_array_equal(targets, np.eye(10, dtype=np.float32)[ys])
    np.testing.assert_array_equal(np.asarray(gn.kernel_targets((ys % 2).astype(np.int32), 1)),
                                  np.where(ys % 2 == 1, 1, -1).astype(np.float32)[:, None])
    alpha, used = gn.kernel_ridge_fit(kk, targets, ridge=1e-3)
    ref = np.linalg.solve(k + (1e-3 + 0 * used) * np.eye(len(k)), targets)
    if used == pytest.approx(1e-3):
        np.testing.assert_allclose(np.asarray(alpha), ref, rtol=2e-3, atol=2e-3 * np.abs(ref).max())
    kt = np.asarray(net.npk(xt, xs, normalized=True))
    scores = np.asarray(gn.kernel_ridge_predict(kt, alpha))
    np.testing.assert_allclose(scores, kt.astype(np.float64) @ np.asarray(alpha, np.float64), rtol=1e-4, atol=1e-4)
    classes = np.asarray(gn.kernel_classes(scores))
    np.testing.assert_array_equal(classes, scores.argmax(axis=1))
    assert (classes == yt).mean() > 0.5  # a kernel machine on 300 examples
    with pytest.raises(ValueError, match="k: expected a square kernel matrix"):
        gn.kernel_eigenvalues(kk[:, :10])


def test_active_paths(small):
    _, _, xt, yt = small
    net = gn.Network(784, [16, 16], 10, regime="fixed_random_ii", seed=6)
    x = xt[:100]
    ap = np.asarray(net.active_paths(x))
    assert ap.dtype == np.float64
    np.testing.assert_allclose(ap, np.diag(np.asarray(net.overlap(x), np.float64)), rtol=1e-6)
    mean, counts = net.active_paths_by_group(x, yt[:100])
    counts = np.asarray(counts)
    np.testing.assert_array_equal(counts, np.bincount(yt[:100], minlength=10))
    for c in range(10):
        if counts[c]:
            assert np.asarray(mean)[c] == pytest.approx(ap[yt[:100] == c].mean())
    with pytest.raises(gn.ArgumentError):
        net.active_paths_by_group(x, yt[:100], n_groups=3)


def test_dlgn_gate_hyperplanes(rng):
    net = gn.Network(5, [6, 4], 2, regime="dlgn", bias=True, seed=2)
    x = rng.standard_normal((20, 5)).astype(np.float32)
    for layer in range(2):
        normals, offsets = (np.asarray(a, np.float64) for a in net.gate_hyperplanes(layer))
        assert normals.shape == ((6, 4)[layer], 5)
        expected = 1 / (1 + np.exp(-10.0 * (x @ normals.T + offsets)))
        np.testing.assert_allclose(np.asarray(net.gates(x, layer)), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(gn.UnsupportedError):
        gn.Network(5, [6], 2, regime="relu").gate_hyperplanes(0)


def test_gil_is_released_during_kernels(rng):
    x = rng.random((500, 784), dtype=np.float32)  # one 512 x 512 tile: a single library pass
    net = gn.Network(784, [512, 512], 10, regime="relu", seed=1)
    t0 = time.monotonic()
    net.ntk(x)
    duration = time.monotonic() - t0
    done = threading.Event()
    worker = threading.Thread(target=lambda: (net.ntk(x), done.set()))
    stamps = []
    worker.start()
    while not done.is_set():
        stamps.append(time.monotonic())
        time.sleep(0.001)
    worker.join()
    assert duration > 0.05 and len(stamps) >= 10
    assert np.diff(stamps).max() < 0.5 * duration, (np.diff(stamps).max(), duration)


def test_progress_callback_must_not_reenter_its_network(rng):
    net = gn.Network(6, [5], 2, regime="fixed_random_ii")
    x = rng.standard_normal((20, 6)).astype(np.float32)
    with pytest.raises(gn.GatedNetError, match="busy"):
        net.npk(x, progress=lambda f: net.predict(x))
    assert np.asarray(net.npk(x)).shape == (20, 20)


def test_kernel_bad_inputs_raise_documented_exceptions():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 6)).astype(np.float32)
    hard = gn.Network(6, [8, 8], 3, regime="fixed_random_ii", seed=1)
    relu = gn.Network(6, [8, 8], 3, regime="relu", seed=1)
    soft = gn.Network(6, [8, 8], 3, regime="decoupled", seed=1)
    bad_nan = x.copy()
    bad_nan[3, 2] = np.nan
    table = [
        # (call, exception, message fragment)
        (lambda: hard.npk(x, rng.standard_normal((5, 7)).astype(np.float32)), ValueError, "xb"),
        (lambda: hard.npk(x[:, :5]), ValueError, "xa"),
        (lambda: hard.npk(bad_nan), gn.ArgumentError, "xa: contains NaN"),
        (lambda: hard.base_kernel(x, layer=2), gn.ArgumentError, "layer"),
        (lambda: hard.ntk(x, output=3), gn.ArgumentError, "output"),
        (lambda: hard.ntk(x, part="feature"), gn.UnsupportedError, "soft"),
        (lambda: soft.npk_limit(x), gn.UnsupportedError, "hard"),
        (lambda: relu.gate_hyperplanes(0), gn.UnsupportedError, "linear gating network"),
        (lambda: gn.Network(6, [8, 8], 3, regime="dlgn", seed=1).gate_hyperplanes(5), gn.ArgumentError, "layer"),
        (lambda: hard.npk(x, rows=(15, 10)), ValueError, "rows: empty block"),
    ]
    for call, exc, fragment in table:
        with pytest.raises(exc, match=fragment):
            call()
    # Nothing failed changed the network: its kernel is the same as before the table.
    assert np.array_equal(np.asarray(hard.npk(x)), np.asarray(gn.Network(6, [8, 8], 3, regime="fixed_random_ii", seed=1).npk(x)))
