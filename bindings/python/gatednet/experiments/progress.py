"""Progress display of a run: which model, which epoch, the accuracy so far, the time left.

Tasks report from wherever they run with :func:`report`; it reaches the display only in the
process that owns one (the serial executor runs tasks there), and is a no-op elsewhere
(e.g. in distributed workers, whose progress shows as tasks completing). tqdm is used when
installed, plain text lines otherwise.
"""
from __future__ import annotations

import math
import sys
import time

__all__ = ["Display", "report", "fit_callback"]

_active = None  # the Display of this process, if a run is in progress here


def report(model, epoch=None, epochs=None, accuracy=None, loss=None):
    """Tell the display that ``model`` finished ``epoch`` of ``epochs`` with ``accuracy`` (0..1),
    or with ``loss`` (regression, where accuracy is undefined)."""
    if _active is not None:
        _active.epoch(model, epoch, epochs, accuracy, loss)


def _finite(v):
    return v is not None and math.isfinite(v)


def fit_callback(model):
    """A ``Network.fit`` callback that reports each epoch under the name ``model``: the test
    accuracy if validation data, else the train accuracy; for regression (accuracy NaN) the
    test or train loss."""
    def callback(m):
        acc = next((a for a in (m.get("test_accuracy"), m.get("train_accuracy")) if _finite(a)), None)
        loss = None
        if acc is None:
            loss = next((v for v in (m.get("test_loss"), m.get("train_loss")) if _finite(v)), None)
        report(model, m.get("epoch_in_call"), m.get("epochs_in_call"), acc, loss)
    return callback


def _duration(seconds):
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Display:
    """A bar over the tasks of a run (``total`` tasks, ``done`` of them already stored)."""

    def __init__(self, name, total, done=0, enabled=True, stream=None, use_tqdm=True):
        self.name, self.total, self.done = name, total, done
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.fresh = 0  # tasks completed in this session (the rate of the time estimate)
        self.state = ""
        self.bar = None
        self.last_line = 0.0
        if enabled and use_tqdm:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, initial=done, desc=name, unit="task", file=self.stream,
                                dynamic_ncols=True, leave=True)

    def __enter__(self):
        global _active
        self.previous, _active = _active, self
        return self

    def __exit__(self, *exc):
        global _active
        _active = self.previous
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            self._line(final=True)

    def time_left(self):
        if self.fresh == 0:
            return None
        per_task = (time.monotonic() - self.start) / self.fresh
        return per_task * (self.total - self.done)

    def epoch(self, model, epoch, epochs, accuracy, loss=None):
        parts = [str(model)]
        if epoch is not None:
            parts.append(f"epoch {epoch}/{epochs}" if epochs else f"epoch {epoch}")
        if accuracy is not None:
            parts.append(f"acc {accuracy:.3f}")
        elif loss is not None:
            parts.append(f"loss {loss:.4g}")
        self.state = " ".join(parts)
        if self.bar is not None:
            self.bar.set_postfix_str(self.state, refresh=True)
        elif self.enabled and time.monotonic() - self.last_line > 2.0:
            self._line()

    def task_done(self, key):
        self.done += 1
        self.fresh += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled:
            self._line()

    def _line(self, final=False):
        self.last_line = time.monotonic()
        left = self.time_left()
        eta = "" if left is None or final else f", about {_duration(left)} left"
        print(f"[{self.name}] {self.done}/{self.total} tasks, {_duration(time.monotonic() - self.start)} "
              f"elapsed{eta}{' | ' + self.state if self.state and not final else ''}",
              file=self.stream, flush=True)
