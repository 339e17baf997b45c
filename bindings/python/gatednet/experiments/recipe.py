"""What a recipe is: the paper's setup (settings per size), its tasks, the claims it tests and
the paper's own numbers.

Rows are the measured results, one per (setting, model, seed, metric)::

    {"setting": "Arch-1 Adam", "model": "ReLU", "seed": 0, "metric": "test accuracy %", "value": 87.1}

A :class:`Claim` is a sentence from the paper and a check; the check reads the rows through a
:class:`Results` and returns ``(holds, detail)`` with the numbers it compared. Verdicts are
always computed from the measured rows, never written by hand. A check whose preconditions the
measurements do not meet (a net still learning, a difference inside the seed-to-seed spread)
returns ``UNDECIDED`` instead of a bool, best through :func:`decide`, with the numbers either way.

A value NaN or ±Inf is a diverged run (training blew up): :meth:`Results.values` leaves it out, and
:meth:`Claim.evaluate` makes every claim whose check selected such a row ``UNDECIDED``, naming how
many seeds of which group diverged; a helper that meets measurements admitting no judgement (a
ratio with a zero denominator) raises :class:`Undecidable`, which makes the claim ``UNDECIDED``
too: a verdict is never computed from silently incomplete data, and such data never crashes a run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Recipe", "Claim", "Verdict", "Results", "Missing", "Undecidable", "diverged", "decide", "HOLDS", "FAILS",
           "UNTESTED", "UNDECIDED", "SIZES"]

SIZES = ("smoke", "quick", "paper")
HOLDS, FAILS, UNTESTED = "holds", "does not hold", "not tested"
# Measured, but the measurements do not meet the claim's preconditions (see ``decide``).
UNDECIDED = "undecided"


class Missing(LookupError):
    """A claim's check asked for results this run did not produce (e.g. a model left out at this size)."""


class Undecidable(ArithmeticError):
    """A check's measurements admit no judgement (e.g. a ratio whose denominator is 0): the claim
    is UNDECIDED, with this message as the reason (see :meth:`Claim.evaluate`)."""


def diverged(row):
    """Whether a row's value is NaN or ±Inf: its run diverged (training blew up)."""
    v = row.get("value")
    try:
        return v is not None and not math.isfinite(float(v))
    except (TypeError, ValueError, OverflowError):
        return False


def nonfinite_text(values):
    """How non-finite ``values`` are, for a reason or a table cell: "NaN", "+Inf", "-Inf" or
    several of them joined by "/" (in that order)."""
    kinds = {"NaN" if math.isnan(v) else "+Inf" if v > 0 else "-Inf" for v in map(float, values)}
    return "/".join(k for k in ("NaN", "+Inf", "-Inf") if k in kinds)


def _mean(values):
    return sum(values) / len(values)


def _std(values):
    """Sample standard deviation (0 for a single value)."""
    if len(values) < 2:
        return 0.0
    m = _mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


class Results:
    """Measured rows, queried by setting / model / metric (``None`` matches any)."""

    def __init__(self, rows):
        self.rows = list(rows)
        # while a claim is evaluated: the rows its check selected (id -> row), its inputs
        self._read = None

    def select(self, model=None, metric=None, setting=None, **extra):
        """The matching rows (a check's inputs: see :meth:`Claim.evaluate`)."""
        out = self._match(model, metric, setting, **extra)
        if self._read is not None:
            self._read.update((id(r), r) for r in out)
        return out

    def _match(self, model=None, metric=None, setting=None, **extra):
        out = []
        for r in self.rows:
            if model is not None and r.get("model") != model:
                continue
            if metric is not None and r.get("metric") != metric:
                continue
            if setting is not None and r.get("setting", "") != setting:
                continue
            if any(r.get(k) != v for k, v in extra.items()):
                continue
            out.append(r)
        return out

    def values(self, model=None, metric=None, setting=None, **extra):
        """The values (one per seed) of the matching rows, in seed order, without the diverged
        (NaN or ±Inf) ones (a claim that selected those is UNDECIDED: see :meth:`Claim.evaluate`);
        Missing if none."""
        rows = sorted(self.select(model, metric, setting, **extra), key=lambda r: r.get("seed", 0))
        vals = [float(r["value"]) for r in rows if r.get("value") is not None and not diverged(r)]
        if not vals:
            where = ", ".join(f"{k}={v!r}" for k, v in dict(model=model, metric=metric, setting=setting,
                                                             **extra).items() if v is not None)
            raise Missing(f"no results for {where}")
        return vals

    def mean(self, model=None, metric=None, setting=None, **extra):
        return _mean(self.values(model, metric, setting, **extra))

    def std(self, model=None, metric=None, setting=None, **extra):
        return _std(self.values(model, metric, setting, **extra))

    def _distinct(self, field_name, **where):
        seen = []
        for r in self._match(**where):  # listing names reads no values: not a check's input
            v = r.get(field_name, "")
            if v not in seen:
                seen.append(v)
        return seen

    def settings(self, **where):
        return self._distinct("setting", **where)

    def models(self, **where):
        return self._distinct("model", **where)

    def metrics(self, **where):
        return self._distinct("metric", **where)

    def seeds(self, **where):
        return sorted(self._distinct("seed", **where))

    def diverged_text(self, rows):
        """One text per (setting, model, metric) group with diverged (NaN or ±Inf) rows among
        ``rows``: "k of n seeds diverged (value NaN): model (setting), metric", n the group's rows
        (the value "+Inf", "-Inf" or e.g. "NaN/+Inf" as it was)."""
        lost = {}
        for r in rows:
            if diverged(r):
                g = (r.get("setting", ""), r.get("model"), r.get("metric"))
                lost.setdefault(g, []).append(r["value"])
        out = []
        for (setting, model, metric), values in lost.items():
            k, n = len(values), len(self._match(model, metric, setting))
            out.append(f"{k} of {n} seed{'s' if n != 1 else ''} diverged (value {nonfinite_text(values)}): {model}"
                       f"{f' ({setting})' if setting else ''}, {metric}")
        return out

    def groups(self):
        """[(setting, model, metric), ...] in first-seen order."""
        seen, out = set(), []
        for r in self.rows:
            g = (r.get("setting", ""), r["model"], r["metric"])
            if g not in seen:
                seen.add(g)
                out.append(g)
        return out


@dataclass(frozen=True)
class Verdict:
    claim: str
    status: str  # HOLDS, FAILS, UNDECIDED or UNTESTED
    detail: str

    def __str__(self):
        return f"[{self.status}] {self.claim} — {self.detail}"

    def as_dict(self):
        return {"claim": self.claim, "verdict": self.status, "detail": self.detail}


@dataclass(frozen=True)
class Claim:
    """A claim of the paper and its check: ``check(results, settings) -> (ok, detail)``; ``ok`` is
    a bool, ``UNDECIDED`` (preconditions unmet) or None (not tested)."""

    text: str
    check: Callable[[Results, dict], tuple]

    def evaluate(self, results, settings=None):
        """The claim's Verdict. UNDECIDED also when the check selected a diverged (NaN or ±Inf) row (the
        reason names the groups and how many of their seeds diverged; the check's numbers, from
        the seeds left, stay in the detail) or raised :class:`Undecidable`; UNTESTED when the
        check returned None or raised :class:`Missing` (unless it read diverged rows: then the
        results are missing because they diverged)."""
        # a fresh view that records the rows the check selects: its inputs
        results = Results(results.rows if isinstance(results, Results) else results)
        results._read = {}
        missing = False
        try:
            ok, detail = self.check(results, settings or {})
        except Missing as e:
            ok, detail, missing = None, str(e), True
        except Undecidable as e:
            ok, detail = UNDECIDED, f"undecided: {e}"
        if isinstance(ok, str) and ok != UNDECIDED:
            raise ValueError(f"claim {self.text!r}: check returned {ok!r}, expected a bool, UNDECIDED or None")
        if ok is None and not missing:  # the check itself leaves the claim untested
            return Verdict(self.text, UNTESTED, detail)
        lost = results.diverged_text(results._read.values())
        if lost:  # a verdict from the seeds left would hide the diverged ones
            joiner = "; " if "undecided:" in detail else "; undecided: "
            return Verdict(self.text, UNDECIDED, detail + joiner + "; ".join(lost))
        if ok is None:
            return Verdict(self.text, UNTESTED, detail)
        if isinstance(ok, str):
            return Verdict(self.text, UNDECIDED, detail)
        return Verdict(self.text, HOLDS if ok else FAILS, detail)


def decide(ok, detail, unmet=()):
    """A check's answer given its preconditions: ``(UNDECIDED, detail + why)`` when ``unmet`` (one
    text per unmet precondition, with its numbers) is not empty, else ``(ok, detail)``. ``ok`` may
    itself be UNDECIDED (e.g. a difference inside the noise band)."""
    unmet = [u for u in unmet if u]
    if unmet:
        return UNDECIDED, f"{detail}; undecided: " + "; ".join(unmet)
    return ok, detail


def _collect_rows(results, settings):
    """Default: each task result is a list of rows, or a dict with a "rows" list."""
    rows = []
    for result in results.values():
        if isinstance(result, dict):
            rows.extend(result.get("rows", []))
        else:
            rows.extend(result)
    return rows


@dataclass
class Recipe:
    """One table or figure of a paper.

    - ``name``: the command-line name (e.g. "fc-regimes"); ``title``: one line.
    - ``paper``, ``reproduces`` ("Table 4", "Figure 3"), ``paper_dataset`` (the paper's data).
    - ``sizes``: {"smoke"|"quick"|"paper": settings dict}; each has ``seeds`` (default count).
    - ``tasks(settings, seeds, data) -> [Task]``: ``data`` is the dataset path (a str).
    - ``rows(results, settings) -> [row]`` from {task key: result} (default: concatenate).
    - ``claims``: [Claim]; ``paper_results``: rows with the paper's own values
      (``setting``, ``model``, ``metric``, ``value``, optional ``std`` or ``text``).
    - ``plots(results, rows, settings, out_dir) -> [file name]``: PNGs written into out_dir.
    - ``dataset``: None for the ``--data`` dataset, or a fixed name (synthetic data).
    - ``notes``: text for table.md (what differs from the paper and why).
    - ``version``: of what its tasks return. Raise it when a task's result changes for the same
      kwargs (another computation, new fields): stored results of another version are then
      recomputed instead of resumed.
    """

    name: str
    title: str
    paper: str
    reproduces: str
    paper_dataset: str
    sizes: dict
    tasks: Callable[..., list]
    claims: list = field(default_factory=list)
    rows: Callable[..., list] = _collect_rows
    paper_results: list = field(default_factory=list)
    plots: Callable[..., list] | None = None
    dataset: str | None = None
    notes: str = ""
    version: int = 1

    def __post_init__(self):
        missing = [s for s in SIZES if s not in self.sizes]
        if missing:
            raise ValueError(f"recipe {self.name}: no settings for size(s) {', '.join(missing)}")

    def settings(self, size):
        if size not in SIZES:
            raise ValueError(f"size: expected one of {', '.join(SIZES)}, got {size!r}")
        return dict(self.sizes[size])

    def paper_value(self, setting, model, metric) -> Any:
        for r in self.paper_results:
            if r.get("setting", "") == setting and r["model"] == model and r["metric"] == metric:
                return r
        return None
