"""fit(): metrics, callbacks (progress, early stop, exceptions), Ctrl-C, the GIL, threads."""
import os
import signal
import threading
import time
import traceback

import numpy as np
import pytest

import gatednet as gn

KEYS = {"epoch", "epoch_in_call", "epochs_in_call", "train_loss", "train_accuracy", "test_loss",
        "test_accuracy", "seconds"}


def test_fit_learns_fashion_mnist(small):
    x, y, xt, yt = small
    net = gn.Network(784, [64, 64], 10, regime="relu", seed=1)
    before = net.evaluate(xt, yt)["accuracy"]
    hist = net.fit(x, y, epochs=3, lr=1e-3, batch_size=32, validation_data=(xt, yt))
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert [h["epoch_in_call"] for h in hist] == [1, 2, 3]
    assert all(set(h) == KEYS and h["epochs_in_call"] == 3 and h["seconds"] > 0 for h in hist)
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    after = net.evaluate(xt, yt)
    assert after["accuracy"] > 0.65 > before
    assert after["accuracy"] == pytest.approx(hist[-1]["test_accuracy"])
    assert after["loss"] == pytest.approx(hist[-1]["test_loss"])
    more = net.fit(x, y, epochs=1, lr=1e-3)
    assert more[0]["epoch"] == 4 and more[0]["test_loss"] is None and more[0]["test_accuracy"] is None
    assert net.epochs_trained == 4


def test_fit_is_reproducible(small):
    x, y, _, _ = small
    runs = []
    for _ in range(2):
        net = gn.Network(784, [16], 10, regime="fixed_random_ii", seed=4)
        runs.append(net.fit(x[:300], y[:300], epochs=2, batch_size=16, optimizer="sgd", lr=0.05,
                            shuffle_seed=9)[-1]["train_loss"])
    assert runs[0] == runs[1]


def test_squared_loss_binary(rng):
    x = rng.standard_normal((200, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int32)
    net = gn.Network(5, [16], 1, regime="fixed_random_ii", seed=2)
    net.fit(x, y, epochs=30, loss="squared", optimizer="sgd", lr=0.01, batch_size=20)
    assert net.evaluate(x, y, loss="squared")["accuracy"] > 0.9


def test_callback_progress_like_tqdm(tiny):
    net, x, y = tiny

    class Bar:  # the interface a tqdm bar is driven through
        def __init__(self, total):
            self.total, self.n, self.postfix = total, 0, None

        def update(self, k):
            self.n += k

        def set_postfix(self, **kw):
            self.postfix = kw

    bar = Bar(5)
    seen = []

    def cb(m):
        seen.append(dict(m))
        bar.update(1)
        bar.set_postfix(loss=m["train_loss"], acc=m["train_accuracy"])

    hist = net.fit(x, y, epochs=5, batch_size=4, callback=cb)
    assert bar.n == 5 and seen == hist and bar.postfix["loss"] == hist[-1]["train_loss"]


def test_callback_with_real_tqdm(tiny):
    tqdm = pytest.importorskip("tqdm").tqdm
    net, x, y = tiny
    with tqdm(total=4, disable=False, file=open(os.devnull, "w")) as bar:
        net.fit(x, y, epochs=4, callback=lambda m: bar.update(1))
        assert bar.n == 4


def test_callback_early_stop(tiny):
    net, x, y = tiny
    hist = net.fit(x, y, epochs=10, callback=lambda m: m["epoch_in_call"] < 3)
    assert len(hist) == 3 and net.epochs_trained == 3
    hist = net.fit(x, y, epochs=2, callback=lambda m: None)  # None continues
    assert len(hist) == 2 and net.epochs_trained == 5


class Boom(Exception):
    pass


def test_callback_exception_propagates_with_traceback(tiny):
    net, x, y = tiny

    def exploding_callback(m):
        if m["epoch_in_call"] == 2:
            raise Boom("from the callback")

    with pytest.raises(Boom, match="from the callback") as info:
        net.fit(x, y, epochs=6, callback=exploding_callback)
    frames = traceback.extract_tb(info.value.__traceback__)
    assert any(f.name == "exploding_callback" for f in frames)
    assert net.epochs_trained == 2  # stopped right after the failing epoch
    assert np.isfinite(np.asarray(net.predict(x))).all()  # still usable
    assert len(net.fit(x, y, epochs=1)) == 1 and net.epochs_trained == 3


def test_callback_must_not_reenter_its_network(tiny):
    net, x, y = tiny
    with pytest.raises(gn.GatedNetError, match="busy"):
        net.fit(x, y, epochs=3, callback=lambda m: net.predict(x))
    assert net.epochs_trained == 1
    other = net.clone()  # other networks may be used from the callback
    accs = []
    net.fit(x, y, epochs=2, callback=lambda m: accs.append(other.evaluate(x, y)["accuracy"]))
    assert len(accs) == 2


def test_callback_not_callable(tiny):
    net, x, y = tiny
    with pytest.raises(TypeError, match="callback"):
        net.fit(x, y, callback=3)


def seconds_until_keyboard_interrupt(call, after=0.3):
    """Send SIGINT to this process `after` seconds into `call()`; assert that it raises
    KeyboardInterrupt and return how long it took."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread")
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(after, os.kill, (os.getpid(), signal.SIGINT))
    try:
        start = time.monotonic()
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            call()
        return time.monotonic() - start
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, old)


def test_keyboard_interrupt_stops_training_cleanly(small):
    x, y, _, _ = small
    net = gn.Network(784, [64], 10, regime="fixed_random_ii", seed=1)
    elapsed = seconds_until_keyboard_interrupt(lambda: net.fit(x, y, epochs=100_000, batch_size=64))
    assert elapsed < 10
    assert 1 <= net.epochs_trained < 100_000
    assert net.evaluate(x, y)["accuracy"] > 0.1  # usable, and trained a bit
    net.fit(x[:100], y[:100], epochs=1)


def test_keyboard_interrupt_stops_a_long_epoch_and_undoes_it(small):
    x, y, _, _ = small
    reps = 40  # one epoch over 40 copies of the data takes several seconds
    xl, yl = np.concatenate([x] * reps), np.concatenate([y] * reps)
    net = gn.Network(784, [128, 128], 10, regime="fixed_random_ii", seed=1)
    t0 = time.monotonic()
    net.fit(x, y, epochs=1, batch_size=32)
    long_epoch = reps * (time.monotonic() - t0)  # what the interrupted epoch would take, at this load
    before = np.array(net.predict(x[:50]))
    elapsed = seconds_until_keyboard_interrupt(lambda: net.fit(xl, yl, epochs=1, batch_size=32))
    assert elapsed < max(2.0, 0.5 * long_epoch)  # stopped inside the epoch, not at its end
    assert net.epochs_trained == 1
    assert np.array_equal(np.asarray(net.predict(x[:50])), before)  # the interrupted epoch was undone


def test_gil_is_released_during_training(small):
    x, y, _, _ = small
    net = gn.Network(784, [256, 256], 10, regime="fixed_random_ii", seed=1)
    x4 = np.concatenate([x, x, x, x])
    y4 = np.concatenate([y, y, y, y])
    t0 = time.monotonic()
    net.fit(x4, y4, epochs=1, batch_size=64)
    one_epoch = time.monotonic() - t0
    done = threading.Event()
    worker = threading.Thread(target=lambda: (net.fit(x4, y4, epochs=1, batch_size=64), done.set()))
    stamps = []
    worker.start()
    while not done.is_set():
        stamps.append(time.monotonic())  # a Python loop in this thread
        time.sleep(0.001)
    worker.join()
    gaps = np.diff(stamps)
    # The epoch is one library call with no callback inside: had it held the GIL, this loop
    # would have stalled for the whole epoch.
    assert one_epoch > 0.05 and len(stamps) >= 10
    assert gaps.max() < 0.5 * one_epoch, (gaps.max(), one_epoch)


def test_network_shared_between_threads(small):
    x, y, xt, yt = small
    net = gn.Network(784, [32], 10, regime="fixed_random_ii", seed=1)
    errors = []

    def train():
        try:
            for _ in range(3):
                net.fit(x[:500], y[:500], epochs=1)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def infer():
        try:
            for _ in range(20):
                p = np.asarray(net.predict(xt))
                assert p.shape == (500, 10) and np.isfinite(p).all()
                net.npk(xt[:50])
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=train), threading.Thread(target=train),
               threading.Thread(target=infer), threading.Thread(target=infer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert net.epochs_trained == 6


def test_divergence_restores_network(rng):
    x = (rng.standard_normal((64, 8)) * 100).astype(np.float32)
    y = rng.integers(0, 3, 64).astype(np.int32)
    net = gn.Network(8, [32, 32], 3, regime="fixed_random_ii", seed=1)
    before = np.array(net.weights("value", 1))
    with pytest.raises(gn.ArgumentError, match="restored") as info:
        net.fit(x, y, epochs=20, loss="squared", optimizer="sgd", lr=1e8, momentum=0.0)
    assert info.value.status_name == "GN_ERR_NOT_FINITE"
    np.testing.assert_array_equal(np.asarray(net.weights("value", 1)), before)
    assert net.epochs_trained == 0


def test_train_feature_head(small):
    x, y, _, _ = small
    net = gn.Network(784, [32], 10, regime="custom", feature_head=True, seed=1)
    v0 = np.array(net.weights("value", 0))
    f0 = np.array(net.weights("feature", 0))
    net.fit(x[:400], y[:400], epochs=1, lr=1e-3, train_feature_head=True)
    assert not np.array_equal(np.asarray(net.weights("feature", 0)), f0)
    np.testing.assert_array_equal(np.asarray(net.weights("value", 0)), v0)
    assert np.asarray(net.predict_feature_head(x[:5])).shape == (5, 10)
    with pytest.raises(gn.UnsupportedError, match="head"):
        gn.Network(784, [8], 10, regime="decoupled").fit(x[:10], y[:10], train_feature_head=True)
