"""A measured run-time estimate of a recipe at a size, without running it
(``python -m gatednet.experiments run NAME --size paper --probe``).

The probe builds the real task list at that size and groups the tasks into kinds (tasks whose
keyword arguments differ only by ``seed`` and ``wiring``; a task that needs another's result gets
that of the probed task, or of the needed task run first, its time not counted). For each kind it runs one task through its real
code, on the real data and at full width, while a :class:`Meter` caps the library's costly
calls and times them:

- ``fit``: two short calls on the real rows — 1 minibatch step (the per-call overhead) and
  K steps (``steps``, raised until the call takes ``target_seconds``) — give seconds per step;
  the validation pass of each epoch is timed on the first rows of the validation set (seconds
  per row). The planned call costs overhead + epochs × steps per epoch × s/step + epochs ×
  validation rows × s/row. The measurement is reused for later calls with the same
  architecture, regime, batch size, optimiser and loss (wirings — layer permutation, value
  input, rotation offsets — are assumed not to change the step time); such calls train nothing.
  A call no longer than the measurement itself runs in full.
- ``evaluate`` / ``predict`` / ``predict_classes`` on more than ``eval_rows`` rows: timed on
  the first ``eval_rows`` rows, scaled by the rows.
- kernels (``Network.kernel`` / ``ConvNetwork.kernel``, so ``npk``, ``ntk``, ``overlap``, the
  limits) of more than ``kernel_entries`` entries: computed on a leading block, scaled by the
  entries (an upper bound: per-row costs scale too); the result is an all-zero read-only view
  of the full shape.
- ``kernel_ridge_fit`` / ``kernel_eigenvalues`` / ``kernel_nu`` on an n × n kernel larger than
  the block: timed on an m × m positive definite block and scaled by (n/m)³;
  ``kernel_ridge_predict``: by entries. Results are zeros of the full shape.

Everything else a task does (data loading, k-means, label corruption, small kernels, plots of
hidden maps, ...) runs in full and is measured as the task's fixed cost. The results the
capped calls return are placeholders, so the probe reports times only, never accuracies.

The extrapolated time of a kind is (fixed + Σ planned calls) × tasks of the kind; the total is
the sum over kinds — the serial wall time on this machine at the load during the probe (an
upper bound when the machine is shared; the load average is recorded). Beside it, the same sum
of CPU time (every unit time comes with the CPU/wall ratio of its measurement) divided by the
cores: the run time with every core busy throughout, the figure for an idle machine.
"""
from __future__ import annotations

import functools
import json
import math
import os
import re
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .tasks import bind

__all__ = ["Meter", "probe_recipe", "task_kinds", "format_table"]

NOT_MEASURED = [
    "the run's own bookkeeping after the tasks (rows, verdicts, table.md, plots): not measured, "
    "assumed seconds",
    "per-epoch work a capped fit does not repeat over the full training set (its shuffle; the "
    "binding's check of the full input buffer per call): not measured, assumed small against "
    "the steps (the short fits see the same rows per step)",
]


def _now():
    return time.perf_counter()


def _duration(seconds):
    """1.2 s / 3.4 min / 5.6 h / 7.8 d / 9.1 months / 2.3 years."""
    if not math.isfinite(seconds):
        return str(seconds)
    for limit, div, unit in ((120, 1, "s"), (7200, 60, "min"), (172800, 3600, "h"),
                             (86400 * 60, 86400, "d"), (86400 * 730, 86400 * 30.44, "months")):
        if seconds < limit:
            return f"{seconds / div:.1f} {unit}"
    return f"{seconds / (86400 * 365.25):.1f} years"


def _rows(x):
    return int(np.shape(x)[0])


class LoadSampler:
    """Samples the 1-minute load average every ``every`` seconds in a background thread."""

    def __init__(self, every=5.0):
        self.every = every
        self.samples = []
        self._stop = threading.Event()
        self._thread = None

    @staticmethod
    def now():
        try:
            return os.getloadavg()[0]
        except OSError:
            return float("nan")

    def __enter__(self):
        self.samples.append(self.now())

        def loop():
            while not self._stop.wait(self.every):
                self.samples.append(self.now())

        self._thread = threading.Thread(target=loop, name="probe-load", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.samples.append(self.now())

    def summary(self):
        s = [v for v in self.samples if math.isfinite(v)]
        if not s:
            return {"samples": 0}
        return {"samples": len(s), "min": round(min(s), 2), "mean": round(sum(s) / len(s), 2),
                "max": round(max(s), 2)}


class Meter:
    """While entered, replaces the costly methods of ``classes`` (default gatednet.Network and
    ConvNetwork) and the kernel algebra functions of ``gatednet`` with capped, timed versions
    (see the module docstring); restores them on exit. Not thread-safe; one at a time.

    ``begin_task()`` / ``end_task()`` bracket one task; end_task returns (its planned calls, the
    wall and the CPU seconds spent inside the capped calls). Functions are patched on the module
    (``gatednet.kernel_ridge_fit``), so a name imported before the probe is not capped."""

    def __init__(self, steps=5, target_seconds=1.0, eval_rows=256, kernel_entries=1_000_000,
                 classes=None, module=None):
        if steps < 2:
            raise ValueError(f"steps: need at least 2 (a 1-step call and a K-step call), got {steps}")
        self.steps = int(steps)
        self.target_seconds = float(target_seconds)
        self.eval_rows = int(eval_rows)
        self.kernel_entries = int(kernel_entries)
        self.block = max(2, math.isqrt(self.kernel_entries))
        if classes is None or module is None:
            import gatednet as gn
            classes = (gn.Network, gn.ConvNetwork) if classes is None else classes
            module = gn if module is None else module
        self.classes = tuple(classes)
        self.module = module
        self.cache = {}        # signature -> measurement
        self.calls = []        # planned calls of the current task
        self.inside = 0.0      # seconds spent in capped calls of the current task
        self.inside_cpu = 0.0  # their CPU seconds (all threads of this process)
        self.ratio = 1.0       # CPU seconds per second of the last timed call
        self._depth = 0
        self._saved = []
        self.skipped = {}      # id(net) -> [net, planned epochs a capped fit did not train]

    # ---- patching ------------------------------------------------------------------------------

    def __enter__(self):
        for cls in self.classes:
            for name, make in (("fit", self._fit), ("evaluate", self._forward), ("predict", self._forward),
                               ("predict_classes", self._forward), ("kernel", self._kernel)):
                original = getattr(cls, name, None)
                if original is None:
                    continue
                self._saved.append((cls, name, cls.__dict__.get(name, _ABSENT)))
                setattr(cls, name, make(original, name))
        for name, make in (("kernel_ridge_fit", self._solve), ("kernel_eigenvalues", self._solve),
                           ("kernel_nu", self._solve), ("kernel_ridge_predict", self._ridge_predict)):
            original = getattr(self.module, name, None)
            if original is None:
                continue
            self._saved.append((self.module, name, original))
            setattr(self.module, name, make(original, name))
        for cls in self.classes:  # a net reports the epochs it was asked to train, capped or not
            prop = cls.__dict__.get("epochs_trained")
            if isinstance(prop, property):
                self._saved.append((cls, "epochs_trained", prop))
                setattr(cls, "epochs_trained", property(
                    lambda net, fget=prop.fget: fget(net) + self.skipped.get(id(net), (None, 0))[1],
                    doc=prop.__doc__))
        return self

    def __exit__(self, *exc):
        for owner, name, original in reversed(self._saved):
            if original is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        self._saved = []
        self.skipped = {}

    def begin_task(self):
        self.calls, self.inside, self.inside_cpu = [], 0.0, 0.0

    def end_task(self):
        return self.calls, self.inside, self.inside_cpu

    # ---- helpers -------------------------------------------------------------------------------

    @staticmethod
    def signature(net):
        """What a step's cost depends on: the architecture and regime, not the wiring or state."""
        own = getattr(net, "probe_signature", None)
        if callable(own):
            return (type(net).__name__, own())
        info = dict(net._info())
        for volatile in ("epochs_trained", "permutation", "value_input"):
            info.pop(volatile, None)
        return (type(net).__name__, tuple(sorted((k, repr(v)) for k, v in info.items())))

    def _record(self, what, ratio=None, **fields):
        """One planned call: ``seconds`` of wall time; its CPU seconds are ``seconds`` × ``ratio``,
        the CPU/wall ratio of the measurement its unit time came from."""
        fields["what"] = what
        fields["seconds"] = float(fields["seconds"])
        fields["cpu_seconds"] = fields["seconds"] * (self.ratio if ratio is None else ratio)
        self.calls.append(fields)

    def _through(self, what, units, unit, fn, *args, **kwargs):
        """Run a call in full (it is small) and record its measured time."""
        out, t = self._timed(fn, *args, **kwargs)
        self._record(what, seconds=t, units=units, unit=unit, unit_seconds=t / max(units, 1), how="run in full",
                     measured=True)
        return out

    def _timed(self, fn, *args, **kwargs):
        t, c = _now(), time.process_time()
        out = fn(*args, **kwargs)
        wall = _now() - t
        self.ratio = (time.process_time() - c) / wall if wall > 0 else 1.0
        return out, wall

    def _outer(self, wrapper):
        """Time spent in the outermost capped call is the task's non-fixed time."""
        @functools.wraps(wrapper)
        def run(*args, **kwargs):
            if self._depth:
                return wrapper(*args, **kwargs)
            self._depth += 1
            t, c = _now(), time.process_time()
            try:
                return wrapper(*args, **kwargs)
            finally:
                self.inside += _now() - t
                self.inside_cpu += time.process_time() - c
                self._depth -= 1
        return run

    # ---- fit -----------------------------------------------------------------------------------

    def _fit(self, original, _name):
        meter = self

        def fit(net, x, y, epochs=1, *, batch_size=32, validation_data=None, callback=None, progress=False,
                **options):
            n = _rows(x)
            if epochs <= 0 or n == 0:
                return meter._through("train", 0, "step", original, net, x, y, epochs, batch_size=batch_size,
                                      validation_data=validation_data, callback=callback, progress=progress,
                                      **options)
            before = meter._real_epochs(net)
            try:
                return meter._capped_fit(original, net, x, y, epochs, batch_size, validation_data, options)
            finally:
                skipped = epochs - (meter._real_epochs(net) - before) if before is not None else 0
                if skipped:  # keep the reference: the id is not reused while the probe runs
                    entry = meter.skipped.setdefault(id(net), [net, 0])
                    entry[1] += skipped

        return self._outer(fit)

    @staticmethod
    def _real_epochs(net):
        info = getattr(net, "_info", None)
        return info()["epochs_trained"] if callable(info) else None

    def _capped_fit(self, original, net, x, y, epochs, batch_size, validation_data, options):
        """The fit of ``_fit`` for a call of ``epochs`` epochs over ``x`` (see the module docstring)."""
        meter = self
        n = _rows(x)
        per_epoch = math.ceil(n / batch_size)
        planned = epochs * per_epoch
        n_val = _rows(validation_data[0]) if validation_data is not None else 0
        key = ("fit", meter.signature(net), batch_size, options.get("optimizer", "adam"),
               options.get("loss", "cross_entropy"), bool(options.get("train_feature_head", False)))
        m = meter.cache.get(key)
        how = "reused (same architecture, regime, batch, optimiser)"
        if m is None:
            m, history = meter._measure_fit(original, net, x, y, epochs, batch_size, per_epoch, planned,
                                            validation_data, options)
            if history is not None:  # ran in full
                meter._record("train", ratio=m["ratio"], seconds=m["full_seconds"], units=planned, unit="step",
                              unit_seconds=m["full_seconds"] / planned, how="run in full", measured=True)
                return history
            meter.cache[key] = m
            how = f"measured: 1 and {m['steps']} steps"
        if n_val and "val_row_seconds" not in m:
            m["val_row_seconds"], m["val_metrics"], m["val_how"] = meter._measure_rows(
                net, validation_data, options.get("loss", "cross_entropy"))
            m["val_ratio"] = meter.ratio
        train_s = m["overhead"] + planned * m["step_seconds"]
        meter._record("train", ratio=m["ratio"], seconds=train_s, units=planned, unit="step", unit_seconds=m["step_seconds"],
                      overhead=m["overhead"], how=how, measured=True)
        if n_val:
            rows = epochs * n_val
            meter._record("validation", ratio=m["val_ratio"], seconds=rows * m["val_row_seconds"], units=rows, unit="row",
                          unit_seconds=m["val_row_seconds"], how=m["val_how"], measured=True)
            m["val_how"] = "reused (same architecture)"
        history = []
        for e in range(epochs):
            h = dict(m["metrics"])
            h.update(epoch_in_call=e + 1, epochs_in_call=epochs, seconds=train_s / epochs)
            if n_val:
                h.update(test_loss=m["val_metrics"]["loss"], test_accuracy=m["val_metrics"]["accuracy"])
            else:
                h.update(test_loss=None, test_accuracy=None)
            history.append(h)
        return history

    def _measure_fit(self, original, net, x, y, epochs, batch_size, per_epoch, planned, validation_data, options):
        """(measurement, None), or (measurement, history) when the whole call is as short as the
        measurement would be (it then runs in full, validation included)."""
        go = functools.partial(original, net, batch_size=batch_size, **options)
        if planned <= self.steps + 1:
            history, t = self._timed(go, x, y, epochs, validation_data=validation_data)
            return {"full_seconds": t, "ratio": self.ratio}, history
        _, t1 = self._timed(go, x[:batch_size], y[:batch_size], 1)
        want = max(self.steps, math.ceil(self.target_seconds / max(t1, 1e-9)))
        if want + 1 >= planned:
            history, t = self._timed(go, x, y, epochs, validation_data=validation_data)
            return {"full_seconds": t + t1, "ratio": self.ratio}, history
        if want < per_epoch:
            hist, t2 = self._timed(go, x[:want * batch_size], y[:want * batch_size], 1)
            steps = want
        else:  # several epochs of a small training set
            e = math.ceil(want / per_epoch)
            hist, t2 = self._timed(go, x, y, e)
            steps = e * per_epoch
        step = (t2 - t1) / (steps - 1) if t2 > t1 else t2 / steps
        metrics = {k: v for k, v in hist[-1].items() if k not in ("epoch_in_call", "epochs_in_call", "seconds")}
        return {"step_seconds": step, "overhead": max(0.0, t1 - step), "steps": steps, "metrics": metrics,
                "ratio": self.ratio}, None

    def _measure_rows(self, net, data, loss):
        """Seconds per row of a forward pass (``evaluate``) on the first eval_rows rows of ``data``,
        or on all of it when that is predicted to take less than target_seconds (a small set's
        per-call cost is then measured, not scaled by rows)."""
        x, y = data
        evaluate = _unpatched(type(net), "evaluate", self)
        n = min(_rows(x), self.eval_rows)
        metrics, t = self._timed(evaluate, net, x[:n], y[:n], loss)
        if n < _rows(x) and t * _rows(x) / n < self.target_seconds:
            n = _rows(x)
            metrics, t = self._timed(evaluate, net, x, y, loss)
        return t / n, metrics, f"measured on {n} rows"

    # ---- forward passes ------------------------------------------------------------------------

    def _forward(self, original, name):
        meter = self

        def forward(net, x, *args, **kwargs):
            n = _rows(x)
            if n <= meter.eval_rows or kwargs.get("out") is not None:
                return meter._through(name, n, "row", original, net, x, *args, **kwargs)
            key = ("forward", name, meter.signature(net))
            m = meter.cache.get(key)
            how = "reused (same architecture)"
            if m is None:
                r = meter.eval_rows
                sub_args = tuple(a[:r] if _is_rows(a, n) else a for a in args)
                out, t = meter._timed(original, net, x[:r], *sub_args, **kwargs)
                m = meter.cache[key] = {"row_seconds": t / r, "out": out, "ratio": meter.ratio}
                how = f"measured on {r} rows"
            if n * m["row_seconds"] < meter.target_seconds:  # cheap: run it in full (real result)
                return meter._through(name, n, "row", original, net, x, *args, **kwargs)
            meter._record(name, ratio=m["ratio"], seconds=n * m["row_seconds"], units=n, unit="row", unit_seconds=m["row_seconds"],
                          how=how, measured=True)
            out = m["out"]
            if isinstance(out, dict):
                return dict(out)
            a = np.asarray(out)
            return np.resize(a, (n,) + a.shape[1:])

        return self._outer(forward)

    # ---- kernels -------------------------------------------------------------------------------

    def _kernel(self, original, _name):
        meter = self

        def kernel(net, xa, xb=None, kind="npk", **options):
            if isinstance(xa, str):  # the deprecated kernel(kind, xa, xb) order
                return meter._through(f"kernel {xa}", 1, "call", original, net, xa, xb, kind, **options)
            na = _rows(xa)
            nb = na if xb is None else _rows(xb)
            if na * nb <= meter.kernel_entries or options.get("out") is not None:
                return meter._through(f"kernel {kind}", na * nb, "entry", original, net, xa, xb, kind, **options)
            key = ("kernel", meter.signature(net), kind, xb is None,
                   tuple(sorted((k, repr(v)) for k, v in options.items() if k != "progress")))
            m = meter.cache.get(key)
            how = "reused (same architecture and kind)"
            if m is None:
                ma, mb = min(na, meter.block), min(nb, meter.block)
                block, t = meter._timed(original, net, xa[:ma], None if xb is None else xb[:mb], kind, **options)
                m = meter.cache[key] = {"entry_seconds": t / (ma * mb), "dtype": np.asarray(block).dtype,
                                        "ratio": meter.ratio}
                how = f"measured on a {ma} × {mb} block"
            meter._record(f"kernel {kind}", ratio=m["ratio"], seconds=na * nb * m["entry_seconds"], units=na * nb, unit="entry",
                          unit_seconds=m["entry_seconds"], how=how, measured=True)
            return np.broadcast_to(np.zeros((), dtype=m["dtype"]), (na, nb))

        return self._outer(kernel)

    def _spd_block(self, m):
        rng = np.random.default_rng(0)
        g = rng.standard_normal((m, m)).astype(np.float32)
        return np.ascontiguousarray(g @ g.T / m + np.eye(m, dtype=np.float32))

    def _solve(self, original, name):
        meter = self

        def solve(k, *args, **kwargs):
            shape = np.shape(k)
            n = shape[0]
            if n <= meter.block:
                return meter._through(name, 1, f"{n} × {n} solve", original, k, *args, **kwargs)
            m = meter.block
            key = ("solve", name, m)
            c = meter.cache.get(key)
            how = "reused"
            if c is None:
                block = meter._spd_block(m)
                if name == "kernel_ridge_fit":
                    targets = np.asarray(args[0] if args else kwargs["targets"])
                    sub = np.ascontiguousarray(np.resize(targets, (m,) + targets.shape[1:]), dtype=np.float32)
                    _, t = meter._timed(original, block, sub, *args[1:], **{k_: v for k_, v in kwargs.items()
                                                                            if k_ != "targets"})
                elif name == "kernel_nu":
                    y = np.asarray(args[0] if args else kwargs["y"])
                    _, t = meter._timed(original, block, np.resize(y, (m,)).astype(np.float32))
                else:
                    _, t = meter._timed(original, block)
                c = meter.cache[key] = {"seconds": t, "m": m, "ratio": meter.ratio}
                how = f"measured on a {m} × {m} block"
            scale = (n / c["m"]) ** 3
            meter._record(name, ratio=c["ratio"], seconds=c["seconds"] * scale, units=1, unit=f"{n} × {n} solve",
                          unit_seconds=c["seconds"] * scale, how=how + f", scaled by (n/m)³ = {scale:.3g}",
                          measured=True)
            if name == "kernel_ridge_fit":
                targets = np.asarray(args[0] if args else kwargs["targets"])
                ridge = args[1] if len(args) > 1 else kwargs.get("ridge", 0.0)
                return np.zeros((n,) + targets.shape[1:], dtype=np.float32), float(ridge)
            if name == "kernel_nu":
                return 1.0, 0.0
            return np.zeros(n, dtype=np.float32)

        return self._outer(solve)

    def _ridge_predict(self, original, name):
        meter = self

        def predict(k_test, alpha):
            na, nb = np.shape(k_test)[:2]
            if na * nb <= meter.kernel_entries:
                return meter._through(name, na * nb, "entry", original, k_test, alpha)
            a = np.asarray(alpha)
            ma, mb = min(na, meter.block), min(nb, meter.block)
            key = ("ridge_predict", ma, mb, a.shape[1:])
            c = meter.cache.get(key)
            how = "reused"
            if c is None:
                kb = np.ones((ma, mb), dtype=np.float32)
                ab = np.ones((mb,) + a.shape[1:], dtype=np.float32)
                _, t = meter._timed(original, kb, ab)
                c = meter.cache[key] = {"entry_seconds": t / (ma * mb), "ratio": meter.ratio}
                how = f"measured on a {ma} × {mb} block"
            meter._record(name, ratio=c["ratio"], seconds=na * nb * c["entry_seconds"], units=na * nb, unit="entry",
                          unit_seconds=c["entry_seconds"], how=how, measured=True)
            return np.zeros((na,) + a.shape[1:], dtype=np.float32)

        return self._outer(predict)


_ABSENT = object()


def _unpatched(cls, name, meter):
    """The original ``cls.name`` saved by ``meter`` (for a measurement inside a capped call)."""
    for owner, n, original in meter._saved:
        if owner is cls and n == name and original is not _ABSENT:
            return original
    # inherited: the original is the first base class's attribute
    for base in cls.__mro__[1:]:
        if name in base.__dict__:
            return base.__dict__[name]
    raise AttributeError(name)


def _is_rows(a, n):
    return hasattr(a, "shape") and len(np.shape(a)) >= 1 and np.shape(a)[0] == n


# ---- task kinds and the probe --------------------------------------------------------------------

# Keyword arguments that do not change a task's cost: the seed, the dataset path, and a gated
# net's wiring (layer permutation, value input), which the Meter assumes leaves the step time.
_SAME_COST = ("seed", "data", "wiring")


def _kind_key(task):
    kw = {k: v for k, v in task.kwargs.items() if k not in _SAME_COST}
    return (getattr(task.fn, "__module__", ""), getattr(task.fn, "__qualname__", repr(task.fn)),
            json.dumps(kw, sort_keys=True, default=repr))


def task_kinds(tasks):
    """[(representative task, count)]: tasks grouped by function and keyword arguments other than
    ``seed``, ``data`` and ``wiring``, in first-seen order."""
    kinds = {}
    for t in tasks:
        key = _kind_key(t)
        if key in kinds:
            kinds[key][1] += 1
        else:
            kinds[key] = [t, 1]
    return [(t, c) for t, c in kinds.values()]


def _clear_caches(fn):
    """Clear functools caches of the task's module (e.g. a per-seed k-means), so each kind pays
    its own fixed costs as a task on a fresh worker would; the dataset cache is kept."""
    module = sys.modules.get(getattr(fn, "__module__", ""), None)
    for value in vars(module).values() if module is not None else ():
        clear = getattr(value, "cache_clear", None)
        if callable(clear):
            clear()


def _summarise(calls):
    """Group a task's planned calls by (what, unit): count, units, seconds, unit time, how."""
    groups = {}
    for c in calls:
        g = groups.setdefault((c["what"], c["unit"]), {"what": c["what"], "unit": c["unit"], "calls": 0,
                                                       "units": 0, "seconds": 0.0, "cpu_seconds": 0.0,
                                                       "how": []})
        g["calls"] += 1
        g["units"] += c["units"]
        g["seconds"] += c["seconds"]
        g["cpu_seconds"] += c["cpu_seconds"]
        if c["how"] not in g["how"]:
            g["how"].append(c["how"])
    for g in groups.values():
        g["unit_seconds"] = g["seconds"] / g["units"] if g["units"] else 0.0
    return list(groups.values())


def probe_recipe(recipe, size="paper", seeds=None, data=None, out=None, steps=5, target_seconds=1.0,
                 eval_rows=256, kernel_entries=1_000_000, stream=None, meter_options=None, overrides=None):
    """Measure and extrapolate the serial run time of ``recipe`` at ``size`` (with the settings
    ``overrides`` changes, see gatednet.experiments.run); returns the report dict (also written to
    ``OUT/probe.json`` when ``out`` is given) and prints the table."""
    from .overrides import check_overrides
    from .runner import build_tasks, resolve
    stream = stream or sys.stdout
    changed = check_overrides(recipe, size, overrides)
    settings, seed_list, data_path = resolve(recipe, size, seeds, data, changed)
    tasks, by_key = build_tasks(recipe, settings, seed_list, data_path)  # every need is a task of the run
    kinds = task_kinds(tasks)
    done = {}  # key -> result of the tasks probed (placeholder numbers), for the tasks needing them

    def provide(task):
        """Run (untimed) the tasks ``task`` needs that no probed task provided yet."""
        for k in task.needs:
            if k not in done:
                provide(by_key[k])
                meter.begin_task()
                done[k] = bind(by_key[k], done)()
    print(f"probe {recipe.name}, size {size}: {len(tasks)} tasks of {len(kinds)} kinds; running one task "
          f"per kind with capped training ({steps} steps)", file=stream, flush=True)
    rows = []
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    wall0, cpu0 = _now(), time.process_time()
    with LoadSampler() as load, Meter(steps=steps, target_seconds=target_seconds, eval_rows=eval_rows,
                                      kernel_entries=kernel_entries, **(meter_options or {})) as meter:
        for task, count in kinds:
            provide(task)
            _clear_caches(task.fn)
            meter.begin_task()
            t0, c0 = _now(), time.process_time()
            done[task.key] = bind(task, done)()
            wall = _now() - t0
            cpu = time.process_time() - c0
            calls, inside, inside_cpu = meter.end_task()
            fixed = max(0.0, wall - inside)
            fixed_cpu = max(0.0, cpu - inside_cpu)
            per_task = fixed + sum(c["seconds"] for c in calls)
            per_task_cpu = fixed_cpu + sum(c["cpu_seconds"] for c in calls)
            kind = re.sub(r"-s\d+$", "", task.key) + (" (every wiring)" if "wiring" in task.kwargs else "")
            rows.append({"kind": kind, "example_task": task.key, "tasks": count,
                         "probe_seconds": round(wall, 3), "probe_cpu_seconds": round(cpu, 3),
                         "fixed_seconds": round(fixed, 3), "fixed_cpu_seconds": round(fixed_cpu, 3),
                         "units": _summarise(calls), "per_task_seconds": per_task, "total_seconds": per_task * count,
                         "per_task_cpu_seconds": per_task_cpu, "total_cpu_seconds": per_task_cpu * count})
            print(f"  {task.key}: probed in {wall:.1f} s → {_duration(per_task)} per task × {count}",
                  file=stream, flush=True)
    total = sum(r["total_seconds"] for r in rows)
    total_cpu = sum(r["total_cpu_seconds"] for r in rows)
    cores = os.cpu_count() or 1
    report = {
        "recipe": recipe.name, "size": size, "seeds": len(seed_list), "tasks": len(tasks), "kinds": len(kinds),
        "data": data_path, "settings": settings, "overrides": changed, "probe_steps": steps, "target_seconds": target_seconds,
        "eval_rows": eval_rows, "kernel_entries": kernel_entries,
        "started": started, "probe_wall_seconds": round(_now() - wall0, 3),
        "probe_cpu_seconds": round(time.process_time() - cpu0, 3),
        "cpu_count": os.cpu_count(), "load_average": load.summary(),
        "estimate_seconds": total, "estimate": _duration(total),
        "estimate_cpu_seconds": total_cpu,
        # the wall time if every core did this CPU work throughout, e.g. on an idle machine
        "busy_cores_seconds": total_cpu / cores, "busy_cores": _duration(total_cpu / cores),
        "rows": rows, "not_measured": list(NOT_MEASURED),
        "note": ("estimate: serial wall time of the whole run on this machine, extrapolated from the probe "
                 "under the load average shown (an upper bound for an idle machine); busy_cores: the "
                 "extrapolated CPU time (all threads of the process) divided by the cores, the wall time if "
                 "every core did that work throughout — an idle-machine figure, though not a strict bound: "
                 "the CPU time was measured under the same load, where waiting threads may spin"),
    }
    import gatednet
    report["gatednet_version"] = gatednet.__version__
    print(format_table(report), file=stream, flush=True)
    if out is not None:
        out = Path(out).expanduser()  # "--out=~/x": the shell leaves that ~ alone
        out.mkdir(parents=True, exist_ok=True)
        from .report import write_text
        write_text(out / "probe.json", json.dumps(report, indent=1, default=repr) + "\n")
        print(f"probe report in {out / 'probe.json'}", file=stream)
    return report


def format_table(report):
    """The probe's table (markdown): one row per task kind, then the total and the load."""
    lines = [f"| task kind | tasks | probe (s) | measured unit times | per task | total |",
             "|---|---:|---:|---|---:|---:|"]
    for r in report["rows"]:
        parts = [f"fixed {r['fixed_seconds']:.1f} s (run in full)"]
        for u in r["units"]:
            if u["unit"].endswith("solve"):
                amount = f"{u['units']} × {u['unit']}"
            else:
                amount = f"{u['units']:,} {u['unit'] if u['units'] == 1 else _PLURAL.get(u['unit'], u['unit'] + 's')}"
            parts.append(f"{u['what']}: {amount} × {_unit(u['unit_seconds'])} ({'; '.join(u['how'])})")
        lines.append(f"| {r['kind']} | {r['tasks']} | {r['probe_seconds']:.1f} | {'<br>'.join(parts)} | "
                     f"{_duration(r['per_task_seconds'])} | {_duration(r['total_seconds'])} |")
    load = report["load_average"]
    lines.append("")
    lines.append(f"**Total: {report['estimate']}** ({report['estimate_seconds']:.0f} s) serial on "
                 f"{report['cpu_count']} cores, extrapolated from a {report['probe_wall_seconds']:.0f} s probe "
                 f"({report['probe_cpu_seconds']:.0f} s CPU) at a 1-minute load average of "
                 f"{load.get('min', 'nan')}–{load.get('max', 'nan')} (mean {load.get('mean', 'nan')}): "
                 f"an upper bound for an idle machine. Extrapolated CPU time "
                 f"{_duration(report['estimate_cpu_seconds'])}: {report['busy_cores']} with every core busy "
                 f"throughout (an idle-machine figure; the CPU time was measured under the same load).")
    lines.append("Not measured: " + "; ".join(report["not_measured"]) + ".")
    return "\n".join(lines)


_PLURAL = {"entry": "entries"}


def _unit(seconds):
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.2f} µs"
    return f"{seconds * 1e9:.2f} ns"
