"""Helpers the recipes' tasks share: training with progress, accuracy in percent (NaN for a run that
diverged), seeds."""
from __future__ import annotations

import math
import weakref
import zlib

import numpy as np

from gatednet import GatedNetError

from .progress import fit_callback, report

__all__ = ["fit", "train", "curve", "accuracy", "evaluate", "scores_accuracy", "diverged", "mark_diverged",
           "inherit_divergence", "derive_seed", "rows_for", "report", "check_choices"]


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


# ---- divergence ------------------------------------------------------------------------------
# A run diverges when training blows up: the engine's training raises (the loss of a minibatch
# became NaN or Inf; the network is then restored to its state before the call), or the last
# update leaves weights or outputs NaN or Inf (no later minibatch checks it). Such a net's
# accuracy is NaN, never the near-chance argmax of NaN scores or the accuracy of the state it was
# restored to: a NaN row is what recipe.Claim.evaluate and table.md count as a diverged seed.

_DIVERGED = weakref.WeakSet()  # nets whose training diverged in this process


def _not_finite(error):
    """Whether a GatedNetError is the library's NaN/Inf status (a loss, output or weight that is
    not finite)."""
    return getattr(error, "status_name", None) == "GN_ERR_NOT_FINITE"


def _finite_array(a):
    return bool(np.isfinite(np.asarray(a)).all())


def mark_diverged(net):
    """Record that ``net``'s training diverged: every later :func:`fit` of it is NaN epochs and
    its :func:`accuracy` is NaN."""
    _DIVERGED.add(net)


def diverged(net, x=None):
    """Whether ``net`` diverged: its training did (:func:`fit`), a weight is NaN or Inf, or (given
    inputs ``x``) one of its outputs on ``x`` is."""
    if net in _DIVERGED:
        return True
    if not all(_finite_array(t) for t in net.tensors().values()):
        return True
    if x is None:
        return False
    try:
        return not _finite_array(net.predict(x))
    except GatedNetError as e:  # the library refuses to return non-finite outputs (or take such inputs)
        if _not_finite(e) and _finite_array(x):
            return True
        raise


def inherit_divergence(net, source):
    """Mark ``net`` diverged if ``source`` did: a net whose gates come from a diverged run (fixed
    learnt gates of a ReLU net that blew up) measures nothing of the paper's model."""
    if diverged(source):
        mark_diverged(net)


def _epoch_diverged(m):
    """An epoch whose training or test loss is NaN or Inf (accuracies NaN by design, as in
    regression, are not divergence)."""
    return any(m.get(k) is not None and not math.isfinite(m[k]) for k in ("train_loss", "test_loss"))


def _nan_metrics(validated):
    """The losses and accuracies of an epoch that diverged: NaN (None for test metrics without
    validation data)."""
    nan = float("nan")
    return {"train_loss": nan, "train_accuracy": nan, "test_loss": nan if validated else None,
            "test_accuracy": nan if validated else None, "diverged": True}


def _nan_epochs(epoch, first_in_call, epochs_in_call, validated):
    """Diverged epochs ``first_in_call``..``epochs_in_call`` of a call (1-based), the first of them
    epoch ``epoch`` of the net's life."""
    return [dict(epoch=epoch + i, epoch_in_call=e, epochs_in_call=epochs_in_call, seconds=0.0,
                 **_nan_metrics(validated))
            for i, e in enumerate(range(first_in_call, epochs_in_call + 1))]


def fit(net, x, y, epochs, validation=None, callback=None, **fit_options):
    """``net.fit`` that reports divergence as data: the history (one metrics dict per epoch) with
    the epochs from the one that diverged on marked ``"diverged": True`` and their losses and
    accuracies NaN, and the net marked (:func:`mark_diverged`). Divergence: the engine raises
    GN_ERR_NOT_FINITE on finite inputs (the history then has the epochs that completed, then NaN
    epochs up to ``epochs``), an epoch's loss is NaN or Inf, or a weight is after the call. A net
    already diverged is not trained again: NaN epochs."""
    validated = validation is not None
    done = []

    def record(m):
        done.append(dict(m))
        return None if callback is None else callback(m)

    if net in _DIVERGED:
        return _nan_epochs(net.epochs_trained + 1, 1, epochs, validated)
    try:
        history = net.fit(x, y, epochs=epochs, validation_data=validation, callback=record, **fit_options)
    except GatedNetError as e:
        if not _not_finite(e) or not all(_finite_array(a) for a in [x, y, *(validation or ())]):
            raise  # not a divergence: bad inputs or targets
        mark_diverged(net)  # restored to its state before the call: the epochs done are lost
        return done + _nan_epochs(net.epochs_trained + len(done) + 1, len(done) + 1, epochs, validated)
    history = [dict(m) for m in history]
    bad = next((i for i, m in enumerate(history) if _epoch_diverged(m)), None)
    if bad is None and history and diverged(net):
        bad = len(history) - 1  # the last update left a weight NaN or Inf
    if bad is not None:
        mark_diverged(net)
        for m in history[bad:]:
            m.update(_nan_metrics(validated))
    return history


def train(net, x, y, epochs, label, validation=None, **fit_options):
    """:func:`fit` with an epoch-by-epoch progress report under ``label``; returns the history."""
    if epochs <= 0:
        return []
    return fit(net, x, y, epochs, validation, callback=fit_callback(label), **fit_options)


def curve(history):
    """The per-epoch curve of a ``train`` history with validation data: {"train": [%], "test": [%]};
    NaN from the first epoch that diverged (see :func:`fit`) on."""
    train_acc, test_acc, lost = [], [], False
    for m in history:
        lost = lost or m.get("diverged", False) or _epoch_diverged(m)
        train_acc.append(float("nan") if lost else 100.0 * m["train_accuracy"])
        test_acc.append(float("nan") if lost else 100.0 * m["test_accuracy"])
    return {"train": train_acc, "test": test_acc}


def evaluate(net, x, y, loss=None):
    """``net.evaluate`` ({"loss", "accuracy"}), both NaN if ``net`` diverged (:func:`diverged` on
    ``x``)."""
    nan = {"loss": float("nan"), "accuracy": float("nan")}
    if diverged(net, x):
        return nan
    try:
        return net.evaluate(x, y, loss=loss)
    except GatedNetError as e:  # a loss that overflows float32 (not inputs or targets that are not finite)
        if _not_finite(e) and _finite_array(x) and _finite_array(y):
            return nan
        raise


def accuracy(net, x, y):
    """Test accuracy in percent; NaN if ``net`` diverged (:func:`diverged`: its training blew up,
    or its weights or outputs on ``x`` are NaN or Inf)."""
    return 100.0 * evaluate(net, x, y)["accuracy"]


def scores_accuracy(scores, y):
    """Accuracy in percent of class scores (n x classes, e.g. kernel ridge predictions): the share
    of rows whose largest score is the label's; NaN if a score is NaN or Inf (a diverged solve)."""
    import gatednet as gn

    scores = np.asarray(scores)
    if not _finite_array(scores):
        return float("nan")
    return 100.0 * float(np.mean(np.asarray(gn.kernel_classes(scores)) == np.asarray(y)))


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
