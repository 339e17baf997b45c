"""Shared fixtures: a small real data set (Fashion-MNIST test split, read by the library)."""
import os
from pathlib import Path

import numpy as np
import pytest

import gatednet as gn

FASHION = Path(os.environ.get("GATEDNET_FASHION_DIR", "/usr/share/datasets/fashion-mnist"))


@pytest.fixture(scope="session")
def fashion():
    """(x, y): the 10000 Fashion-MNIST test images as float32 (10000, 784) in [0, 1], int32 labels."""
    images = FASHION / "t10k-images-idx3-ubyte.gz"
    labels = FASHION / "t10k-labels-idx1-ubyte.gz"
    if not images.exists():
        pytest.skip(f"Fashion-MNIST not found in {FASHION} (Debian package dataset-fashion-mnist)")
    x = np.asarray(gn.load_idx(images, scale=1 / 255)).reshape(-1, 784)
    y = np.asarray(gn.load_idx(labels))
    return x, y


@pytest.fixture(scope="session")
def small(fashion):
    """2000 training and 500 held-out examples."""
    x, y = fashion
    return x[:2000], y[:2000], x[2000:2500], y[2000:2500]


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def tiny(rng):
    """A tiny DGN and a random batch, for fast API checks."""
    net = gn.Network(6, [5, 4], 3, regime="fixed_random_ii", seed=7)
    x = rng.standard_normal((17, 6)).astype(np.float32)
    y = rng.integers(0, 3, 17).astype(np.int32)
    return net, x, y


@pytest.fixture(scope="module")
def cluster():
    """A Dask LocalCluster of two worker processes (one thread each), shared by a test module."""
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        yield c
