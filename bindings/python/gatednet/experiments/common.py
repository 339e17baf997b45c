"""Helpers the recipes' tasks share: training with progress, accuracy in percent, seeds."""
from __future__ import annotations

import zlib

import numpy as np

from .progress import fit_callback, report

__all__ = ["train", "curve", "accuracy", "derive_seed", "rows_for", "report", "check_choices"]


def derive_seed(*parts):
    """A 31-bit seed from any plain values (e.g. derive_seed("fc", seed, "relu")): the same parts
    give the same seed in every process and Python version (CRC-32, not hash())."""
    return zlib.crc32(repr(parts).encode()) & 0x7FFFFFFF


def check_choices(setting, values, known):
    """ValueError naming ``setting`` if one of ``values`` (e.g. the columns a --set asks for) is
    not in ``known``: a recipe's tasks() calls it so that a typo fails before any work, not as a
    KeyError inside a task."""
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ValueError(f"{setting}: unknown {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(map(repr, known))}")


def train(net, x, y, epochs, label, validation=None, **fit_options):
    """``net.fit`` with an epoch-by-epoch progress report under ``label``; returns the history."""
    if epochs <= 0:
        return []
    return net.fit(x, y, epochs=epochs, validation_data=validation, callback=fit_callback(label),
                   **fit_options)


def curve(history):
    """The per-epoch curve of a ``train`` history with validation data: {"train": [%], "test": [%]}."""
    return {"train": [100.0 * m["train_accuracy"] for m in history],
            "test": [100.0 * m["test_accuracy"] for m in history]}


def accuracy(net, x, y):
    """Test accuracy in percent."""
    return 100.0 * net.evaluate(x, y)["accuracy"]


def rows_for(setting, model, seed, metrics, **extra):
    """Rows {setting, model, seed, metric, value, **extra} for each metric: value pair."""
    return [dict(setting=setting, model=model, seed=seed, metric=m, value=float(v), **extra)
            for m, v in metrics.items()]


def sorted_by_label(y, n, classes):
    """Indices of up to ``n`` rows spread evenly over ``classes`` and sorted by label (for heatmaps)."""
    per = max(1, n // len(classes))
    idx = []
    for c in classes:
        idx.extend(np.flatnonzero(y == c)[:per].tolist())
    return np.asarray(idx, dtype=np.int64)
