"""What the conv recipes of "Duality simplifies..." and "Half-space feature learning" share:
the C1–C4 net of the duality paper's Figure 4, image data, training that keeps the per-epoch
curve (optionally with a cosine learning-rate decay) and the hidden maps of Figure 5. Their
claims are judged with :mod:`gatednet.experiments.verdicts` (re-exported here, so the recipes
import one module).

Not a recipe (the leading underscore keeps it out of ``list``).
"""
from __future__ import annotations

import math

import numpy as np

from gatednet.experiments import data as D
from gatednet.experiments.common import check_choices, curve, fit as fit_epochs, report, train
from gatednet.experiments.verdicts import (METRIC, all_of, at_least, band, conclude, pair, plateau,  # noqa: F401
                                           pm, rise, spread, spread_text, unconverged, within)

TRAIN_METRIC = "train accuracy %"
# "Duality simplifies...", Table 1 / §4.2 optimiser: Adam 3e-4, batch 32.
ADAM = dict(optimizer="adam", lr=3e-4, batch_size=32)


def c1_c4(filters, classes):
    """Figure 4 of "Duality simplifies...": C1..C4, each ``filters`` filters 3x3 stride 1 (zero
    padding keeps 28x28, so gates of all four layers share a shape and can be permuted or tiled),
    global average pooling, a dense output layer."""
    return [("conv", int(filters), 3, 1, "zero")] * 4 + [("gap",), ("dense", int(classes))]


def images(data, n_train, n_test):
    """(x, y, xt, yt, shape, classes): the first n_train / n_test rows of the dataset at ``data``,
    flat NHWC rows; ``shape`` is (height, width, channels), the ConvNetwork input_shape order (the
    dataset stores (C, H, W))."""
    ds = D.load(data)
    x, y = D.subset(ds.x_train, ds.y_train, n_train)
    xt, yt = D.subset(ds.x_test, ds.y_test, n_test)
    c, h, w = ds.shape
    return x, y, xt, yt, (h, w, c), ds.classes


def cosine_lr(lr, epoch, epochs):
    """The learning rate of ``epoch`` (0-based) of ``epochs`` under a per-epoch cosine decay from
    ``lr`` towards 0: lr · (1 + cos(π·epoch/epochs)) / 2."""
    return lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


SCHEDULES = (None, "cosine")


def check_fit(fit, setting="fit"):
    """ValueError naming ``setting`` for a ``fit`` dict :func:`fit_curve` cannot take: an entry
    that is not a ``ConvNetwork.fit`` option the recipe leaves to the user, or an unknown
    ``lr_schedule``. Called by the recipes' tasks(), so that a --set typo fails before any work."""
    import inspect

    import gatednet as gn

    own = {"self", "x", "y", "epochs", "validation_data", "callback", "progress", "shuffle_seed"}
    allowed = [k for k in inspect.signature(gn.ConvNetwork.fit).parameters if k not in own] + ["lr_schedule"]
    check_choices(f"{setting} entries", list(fit), allowed)
    check_choices(f"{setting}.lr_schedule", [fit.get("lr_schedule")], SCHEDULES)


def fit_curve(net, x, y, epochs, label, validation, lr_schedule=None, **fit):
    """Train with progress; the per-epoch curve as {"train": [%], "test": [%]} (test: on
    ``validation``, the true labels). ``lr_schedule="cosine"``: one ``fit`` call per epoch at
    :func:`cosine_lr` (the Adam moments and the shuffling carry over between calls). A run that
    diverged has NaN from that epoch on (common.fit)."""
    if lr_schedule is None:
        hist = train(net, x, y, epochs, label, validation, **fit)
    elif lr_schedule == "cosine":
        hist = []
        for e in range(epochs):
            m = fit_epochs(net, x, y, 1, validation, **dict(fit, lr=cosine_lr(fit["lr"], e, epochs)))[0]
            report(label, e + 1, epochs, m["test_accuracy"])
            hist.append(m)
    else:
        raise ValueError(f"lr_schedule: expected None or 'cosine', got {lr_schedule!r}")
    return curve(hist)


def best(curve):
    """Best test accuracy of a run (the papers' "best performance in each run"); NaN for a run that
    diverged (NaN epochs), not the best epoch before it blew up."""
    t = curve["test"]
    return float("nan") if any(math.isnan(v) for v in t) else max(t)


def end(curve, last):
    """Mean test accuracy over the last ``last`` epochs (Table 2's "End")."""
    return float(np.mean(curve["test"][-last:]))


# ---- Figure 5: hidden maps of the feature and the value net ---------------------------------

def _conv_same(z, w, k):
    """One zero-padded k x k stride-1 convolution of an (H, W, C) map with a library weight
    (fan_out x k*k*C, fan_in index (ky*k + kx)*C + c), as the engine computes it."""
    h, wd, c = z.shape
    p = k // 2
    zp = np.pad(z, ((p, p), (p, p), (0, 0)))
    patches = np.lib.stride_tricks.sliding_window_view(zp, (k, k), axis=(0, 1))  # H, W, C, k, k
    patches = patches.transpose(0, 1, 3, 4, 2).reshape(h, wd, k * k * c)
    return patches @ np.asarray(w, dtype=np.float64).T


def hidden_maps(net, image, layers, value_ones):
    """Hidden outputs of the gated conv layers for one input image (flat NHWC row), as two lists
    of (H, W, C) arrays: the feature net's (ReLU of its pre-activations) and the value net's
    (its pre-activations times the wired gates the library reports, on an all-ones input when
    ``value_ones``). Only for nets whose gated layers are the leading zero-padded, stride-1,
    bias-free convs of ``layers`` (C1–C4). The library does not export hidden outputs, so the
    convolutions are redone here in numpy; the gates come from the library (``net.gates``)."""
    h, w, c = net.input_shape
    x = np.asarray(image, dtype=np.float64).reshape(h, w, c)
    convs = [layer for layer in layers if layer[0] == "conv"]
    feature, value = [], []
    zf = x
    zv = np.ones_like(x) if value_ones else x
    row = np.ascontiguousarray(np.asarray(image, dtype=np.float32).reshape(1, -1))
    for l, layer in enumerate(convs):
        k = layer[2]
        qf = _conv_same(zf, net.tensor(f"feature.{l}.weight"), k)
        zf = np.maximum(qf, 0.0)
        feature.append(zf)
        gates = np.asarray(net.gates(row, l, wired=True), dtype=np.float64)[0]
        zv = _conv_same(zv, net.tensor(f"value.{l}.weight"), k) * gates
        value.append(zv)
    return feature, value
