"""Datasets of the recipes, loaded inside tasks by path and cached per process.

``load(path)`` reads either a directory laid out like Fashion-MNIST (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, gzipped
or plain; read by the library's IDX reader) or an ``.npz`` file with ``x_train``, ``y_train``,
``x_test``, ``y_test``. Images come back as float32 rows in [0, 1] (integer pixels are divided
by 255), labels as int32.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import gatednet as gn

__all__ = ["DEFAULT_DATA", "Dataset", "load", "dataset_name", "subset", "balanced_subset"]

DEFAULT_DATA = os.environ.get("GATEDNET_FASHION_DIR", "/usr/share/datasets/fashion-mnist")

_IDX = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
        "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray  # (n, d) float32, read-only
    y_train: np.ndarray  # (n,) int32
    x_test: np.ndarray
    y_test: np.ndarray
    shape: tuple         # (channels, height, width) of one image
    name: str

    @property
    def classes(self):
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def dataset_name(path):
    """How tables name the data at ``path`` ("Fashion-MNIST" for the default)."""
    p = Path(path or DEFAULT_DATA)
    if p.resolve() == Path(DEFAULT_DATA).resolve() or "fashion" in p.name.lower():
        return "Fashion-MNIST"
    return p.stem


def _idx_file(directory, stem):
    for name in (stem + ".gz", stem):
        if (directory / name).exists():
            return directory / name
    # MNIST mirrors sometimes use dots instead of dashes
    for name in (stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(f"--data {directory}: no {stem}[.gz] (expected a directory laid out "
                            f"like Fashion-MNIST, or an .npz with x_train/y_train/x_test/y_test)")


def _images(a):
    """(n, ...) pixels -> float32 rows in [0, 1] and the (C, H, W) shape of one image."""
    a = np.asarray(a)
    n = a.shape[0]
    if a.ndim == 2:
        shape = (1, 1, a.shape[1])
    elif a.ndim == 3:
        shape = (1, a.shape[1], a.shape[2])
    elif a.ndim == 4:  # NHWC
        shape = (a.shape[3], a.shape[1], a.shape[2])
    else:
        raise ValueError(f"images: expected 2 to 4 dimensions, got shape {a.shape}")
    x = a.reshape(n, -1)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / 255
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x, shape


@functools.lru_cache(maxsize=4)
def _load(path):
    p = Path(path)
    if p.is_dir():
        arrays = {}
        for key, stem in _IDX.items():
            f = _idx_file(p, stem)
            arrays[key] = np.asarray(gn.load_idx(f, scale=1 / 255) if key.startswith("x") else gn.load_idx(f))
    elif p.suffix == ".npz" and p.exists():
        with np.load(p) as z:
            missing = [k for k in _IDX if k not in z]
            if missing:
                raise ValueError(f"--data {p}: missing array(s) {', '.join(missing)}")
            arrays = {k: z[k] for k in _IDX}
    else:
        raise FileNotFoundError(f"--data {p}: not a directory of IDX files nor an .npz file")
    x_train, shape = _images(arrays["x_train"])
    x_test, shape_test = _images(arrays["x_test"])
    if shape != shape_test:
        raise ValueError(f"--data {p}: train images {shape} and test images {shape_test} differ")
    out = {}
    for key, value in (("x_train", x_train), ("x_test", x_test),
                       ("y_train", np.ascontiguousarray(arrays["y_train"], dtype=np.int32).reshape(-1)),
                       ("y_test", np.ascontiguousarray(arrays["y_test"], dtype=np.int32).reshape(-1))):
        value.setflags(write=False)
        out[key] = value
    return Dataset(shape=shape, name=dataset_name(path), **out)


def load(path=None):
    """The dataset at ``path`` (default: Fashion-MNIST of the Debian package), cached per process.
    Arrays are read-only: copy before changing them (e.g. corrupting labels)."""
    # cached by absolute path: the same relative path in another working directory is other data
    return _load(os.path.abspath(os.path.expanduser(os.fspath(path or DEFAULT_DATA))))


def subset(x, y, n):
    """The first ``n`` rows (the datasets are already in random order); n None or <= 0: all."""
    if n is None or n <= 0 or n >= len(y):
        return x, y
    return x[:n], y[:n]


def balanced_subset(y, per_class, classes=None, seed=0):
    """Indices of ``per_class`` rows of each class in ``classes`` (default: all), drawn at random
    (numpy Generator seeded by ``seed``), in class order."""
    rng = np.random.default_rng(seed)
    classes = sorted(set(int(c) for c in y)) if classes is None else classes
    idx = []
    for c in classes:
        rows = np.flatnonzero(y == c)
        if len(rows) < per_class:
            raise ValueError(f"class {c}: {len(rows)} rows, need {per_class}")
        idx.append(np.sort(rng.choice(rows, per_class, replace=False)))
    return np.concatenate(idx)
