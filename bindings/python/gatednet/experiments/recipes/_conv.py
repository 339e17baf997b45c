"""What the conv recipes of "Duality simplifies..." and "Half-space feature learning" share:
the C1–C4 net of the duality paper's Figure 4, image data, training that keeps the per-epoch
curve (optionally with a cosine learning-rate decay), the hidden maps of Figure 5, and the
preconditions their claims' verdicts check: each compared net has stopped learning, and a
difference is decided only outside the seed-to-seed noise band measured in the same run.

Not a recipe (the leading underscore keeps it out of ``list``).
"""
from __future__ import annotations

import math

import numpy as np

from gatednet.experiments import UNDECIDED, decide
from gatednet.experiments import data as D
from gatednet.experiments.common import report, train

METRIC = "test accuracy %"
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


def fit_curve(net, x, y, epochs, label, validation, lr_schedule=None, **fit):
    """Train with progress; the per-epoch curve as {"train": [%], "test": [%]} (test: on
    ``validation``, the true labels). ``lr_schedule="cosine"``: one ``fit`` call per epoch at
    :func:`cosine_lr` (the Adam moments and the shuffling carry over between calls)."""
    if lr_schedule is None:
        hist = train(net, x, y, epochs, label, validation, **fit)
    elif lr_schedule == "cosine":
        hist = []
        for e in range(epochs):
            m = net.fit(x, y, epochs=1, validation_data=validation, **dict(fit, lr=cosine_lr(fit["lr"], e, epochs)))[0]
            report(label, e + 1, epochs, m["test_accuracy"])
            hist.append(m)
    else:
        raise ValueError(f"lr_schedule: expected None or 'cosine', got {lr_schedule!r}")
    return {"train": [100.0 * m["train_accuracy"] for m in hist],
            "test": [100.0 * m["test_accuracy"] for m in hist]}


def rise(curve, last):
    """How much the test accuracy still rose at the end of a run: the mean over its last ``last``
    epochs minus the mean over the ``last`` before them (points); None if the run is shorter than
    2·``last`` epochs (convergence not measurable)."""
    t = curve["test"]
    if last < 1 or len(t) < 2 * last:
        return None
    return float(np.mean(t[-last:]) - np.mean(t[-2 * last:-last]))


def best(curve):
    """Best test accuracy of a run (the papers' "best performance in each run")."""
    return max(curve["test"])


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


# ---- preconditions of the verdicts --------------------------------------------------------------
# Rows of trained nets carry "rise" (see ``rise``; None: too few epochs to tell); rows without the
# key are models solved exactly (kernel ridge), which have nothing left to learn. Settings:
# ``plateau_epochs`` (the ``last`` of ``rise``), ``plateau_points`` (the largest rise of a net
# that counts as converged), ``noise_z`` (the noise band is noise_z standard errors).

def plateau(s):
    return int(s.get("plateau_epochs", 2)), float(s.get("plateau_points", 1.0))


def unconverged(res, groups, s, metric=METRIC):
    """(unmet, summary) for the nets of ``groups`` [(model, setting)]: ``unmet`` names each group
    one of whose runs still rose by more than plateau_points over its last plateau_epochs (or ran
    too few epochs to tell); ``summary`` gives every group's largest rise either way."""
    last, limit = plateau(s)
    unmet, parts = [], []
    for model, setting in groups:
        rows = res.select(model, metric, setting)
        if not rows or all("rise" not in r for r in rows):
            continue
        name = f"{model}{f' ({setting})' if setting else ''}"
        rises = [r.get("rise") for r in rows]
        if any(v is None for v in rises):
            unmet.append(f"{name} ran fewer than {2 * last} epochs, convergence not measurable")
            continue
        top = max(rises)
        parts.append(f"{name} {top:+.2f}")
        if top > limit:
            unmet.append(f"{name} still rising ({top:+.2f} points over its last {last} epochs > {limit})")
    summary = f"rise over the last {last} epochs (converged ≤ {limit}): " + (", ".join(parts) or "–")
    return unmet, summary


def spread(res, groups, metric=METRIC):
    """The seed-to-seed standard deviation of single runs, pooled over the ``groups`` [(model,
    setting)] that have at least 2 seeds: (sd, degrees of freedom); (None, 0) if none has."""
    ss, df = 0.0, 0
    for model, setting in groups:
        try:
            v = res.values(model, metric, setting)
        except LookupError:
            continue
        if len(v) >= 2:
            ss += float(np.sum((np.asarray(v) - np.mean(v)) ** 2))
            df += len(v) - 1
    return (math.sqrt(ss / df), df) if df else (None, 0)


def band(res, a, b, sd, s, metric=METRIC):
    """The noise band of mean(a) − mean(b) for groups a, b: noise_z · sd · sqrt(1/n_a + 1/n_b);
    None without a measured spread."""
    if sd is None:
        return None
    na, nb = len(res.values(a[0], metric, a[1])), len(res.values(b[0], metric, b[1]))
    return float(s.get("noise_z", 2.0)) * sd * math.sqrt(1.0 / na + 1.0 / nb)


def within(delta, tol, u):
    """|delta| ≤ tol, judged against the noise band ±u: True if it holds for every value in
    delta ± u, False if for none, else UNDECIDED (also when u is None: no spread measured)."""
    if u is None:
        return UNDECIDED
    if abs(delta) + u <= tol:
        return True
    if abs(delta) - u > tol:
        return False
    return UNDECIDED


def at_least(delta, margin, u):
    """delta ≥ margin, judged against the noise band ±u as :func:`within`."""
    if u is None:
        return UNDECIDED
    if delta - u >= margin:
        return True
    if delta + u < margin:
        return False
    return UNDECIDED


def all_of(outcomes):
    """Several parts of one claim: False if any part is False, True if all are True, else UNDECIDED."""
    outcomes = list(outcomes)
    if any(o is False for o in outcomes):
        return False
    if all(o is True for o in outcomes):
        return True
    return UNDECIDED


def spread_text(sd, df):
    return "seed-to-seed spread not measured (1 seed)" if sd is None else \
        f"seed-to-seed spread (sd of single runs, pooled) {sd:.2f} ({df} df)"


def pm(u):
    return "± ?" if u is None else f"± {u:.2f}"


def conclude(outcome, detail, unmet, sd):
    """A claim's (status, detail): UNDECIDED when a precondition is unmet (``unmet``: texts with
    their numbers) or the outcome is itself UNDECIDED (then the detail says whether the spread was
    not measured or the difference ± its band straddles the threshold); else the outcome."""
    if outcome is UNDECIDED and not unmet:
        unmet = ["seed-to-seed spread not measured (1 seed)" if sd is None
                 else "the difference ± its noise band straddles the threshold"]
    return decide(outcome, detail, unmet)


def rising(res, group, s, metric=METRIC):
    """Whether the nets of ``group`` (model, setting) are still learning: True if one of its runs
    still rose by more than plateau_points over its last plateau_epochs, False if all settled (or
    the group has no curves: a model solved exactly), None if a run was too short to tell."""
    rows = res.select(group[0], metric, group[1])
    if all("rise" not in r for r in rows):
        return False
    rises = [r.get("rise") for r in rows]
    if any(v is None for v in rises):
        return None
    return max(rises) > plateau(s)[1]


def pair(res, s, a, b, test, threshold, sd, metric=METRIC, a_side=None, b_side=None):
    """mean(a) − mean(b) judged by ``test`` (:func:`within` or :func:`at_least`) against
    ``threshold`` and the noise band, and against the nets still learning. A net still rising
    will end no lower, so Δ can then only move one way (up if only a rises, down if only b); the
    outcome stands if that move cannot change it (e.g. the rising net is already above the
    tolerance window and climbing out of it), else it is UNDECIDED. ``a_side`` / ``b_side``: the
    groups whose learning moves a's / b's mean (default [a] / [b]; e.g. all candidates of a min or
    max). Returns (outcome, Δ, band, unmet, summary): ``unmet`` names the unconverged nets when
    they leave the outcome open."""
    delta = res.mean(a[0], metric, a[1]) - res.mean(b[0], metric, b[1])
    u = band(res, a, b, sd, s, metric)
    now = test(delta, threshold, u)
    a_side, b_side = a_side or [a], b_side or [b]

    def side(groups):
        r = [rising(res, g, s, metric) for g in groups]
        return None if any(v is None for v in r) else any(r)

    ra, rb = side(a_side), side(b_side)
    unmet, summary = unconverged(res, a_side + b_side, s, metric)
    if not ra and not rb and ra is not None and rb is not None:
        return now, delta, u, [], summary
    move = None if ra is None or rb is None or (ra and rb) else (1 if ra else -1)
    if move is not None and now is not UNDECIDED:
        if test is at_least and now is (move > 0):
            return now, delta, u, [], summary + " (still rising, which cannot change the outcome)"
        if test is within and now is False and (delta > 0) == (move > 0):
            return now, delta, u, [], summary + " (still rising, away from the tolerance: cannot change the outcome)"
    return UNDECIDED, delta, u, unmet, summary
