"""save/load, bytes, pickle, copy and clone round trips."""
import copy
import pickle

import numpy as np
import pytest

import gatednet as gn


@pytest.fixture
def trained(small):
    x, y, _, _ = small
    net = gn.Network(784, [32, 16], 10, regime="decoupled", bias=True, seed=8)
    net.fit(x[:500], y[:500], epochs=2, lr=1e-3)
    return net


def same_network(a, b, x):
    assert a.info() == b.info()
    np.testing.assert_array_equal(np.asarray(a.predict(x)), np.asarray(b.predict(x)))
    for part in ("feature", "value"):
        for l in range(a.n_hidden + (part == "value")):
            np.testing.assert_array_equal(np.asarray(a.weights(part, l)), np.asarray(b.weights(part, l)))


def continue_training(net, x, y):
    return net.fit(x, y, epochs=1, lr=1e-3)[0]["train_loss"]


def test_save_load_round_trip(trained, small, tmp_path):
    x, y, xt, _ = small
    path = tmp_path / "net.gnet"
    trained.save(path, optimizer_state=True)
    loaded = gn.Network.load(path)
    assert isinstance(loaded, gn.Network)
    same_network(trained, loaded, xt[:50])
    assert continue_training(loaded, x[:500], y[:500]) == continue_training(trained, x[:500], y[:500])
    trained.save(str(path))  # str paths too; overwrites atomically
    assert gn.Network.load(str(path)).epochs_trained == 3


def test_pickle_round_trip(trained, small):
    x, y, xt, _ = small
    data = pickle.dumps(trained)
    restored = pickle.loads(data)
    assert type(restored) is gn.Network and restored is not trained
    same_network(trained, restored, xt[:50])
    # Optimizer state travels with the pickle: continued training is identical.
    assert continue_training(restored, x[:500], y[:500]) == continue_training(trained, x[:500], y[:500])
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        same_network(trained, pickle.loads(pickle.dumps(trained, protocol=protocol)), xt[:5])


class MyNet(gn.Network):
    pass


def test_subclass_survives_pickle_load_and_clone(tmp_path):
    net = MyNet(5, [4], 2, regime="fixed_random_ii", seed=1)
    assert type(pickle.loads(pickle.dumps(net))) is MyNet
    assert type(net.clone()) is MyNet
    net.save(tmp_path / "m.gnet")
    assert type(MyNet.load(tmp_path / "m.gnet")) is MyNet


def test_bytes_and_copies(trained, small):
    x, y, xt, _ = small
    b = trained.to_bytes()
    assert isinstance(b, bytes) and len(b) > 4 * trained.parameter_count
    assert len(trained.to_bytes(optimizer_state=True)) > len(b)
    same_network(trained, gn.Network.from_bytes(b), xt[:20])
    same_network(trained, gn.Network.from_bytes(memoryview(b)), xt[:20])
    same_network(trained, gn.Network.from_bytes(bytearray(b)), xt[:20])
    for c in (copy.copy(trained), copy.deepcopy(trained), trained.clone()):
        same_network(trained, c, xt[:20])
        c.fit(x[:100], y[:100])  # copies are independent
        assert c.epochs_trained == 3 and trained.epochs_trained == 2


def test_closed_network_cannot_be_pickled(tiny):
    net, _, _ = tiny
    net.close()
    with pytest.raises(gn.ClosedNetworkError):
        pickle.dumps(net)
