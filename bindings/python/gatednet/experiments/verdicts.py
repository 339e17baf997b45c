"""How the recipes judge a claim from measured rows: a difference is decided only outside the
noise band of the seed-to-seed spread measured in the same run, and only once the compared nets
have stopped learning; otherwise the verdict is ``undecided`` (see :func:`recipe.decide`), with
the numbers either way.

Two comparisons, one band:

- two groups of runs (two models, or one model at two settings): mean(a) − mean(b) against
  ``noise_z`` · sd · sqrt(1/n_a + 1/n_b), sd the seed-to-seed standard deviation of single runs
  pooled over the groups (:func:`spread`, :func:`band`, :func:`pair`);
- one group against a fixed threshold, or per-seed differences of two numbers from the same seed
  (paired): mean ± ``noise_z`` · sd / sqrt(n) (:func:`sample`, :func:`differences`, :func:`beyond`;
  ratios judged as log10).

Still learning: rows of trained nets carry ``rise`` (see :func:`rise`; None: too few epochs to
tell); rows without the key are models with nothing left to learn (solved exactly, or measured
without training). Settings: ``plateau_epochs`` (the ``last`` of ``rise``), ``plateau_points``
(the largest rise of a net that counts as converged), ``noise_z`` (the band is noise_z standard
errors); ``plateau_unit`` and ``plateau_span`` name the rise's unit and span in the texts
(default "points" and "<plateau_epochs> epochs").
"""
from __future__ import annotations

import math

import numpy as np

from .recipe import UNDECIDED, Missing, Undecidable, decide, diverged, nonfinite_text

__all__ = ["METRIC", "rise", "with_rise", "rows_with_rise", "plateau", "unconverged", "rising", "spread", "band",
           "sample", "differences", "beyond", "within", "at_least", "all_of", "pair", "conclude", "spread_text", "pm"]

METRIC = "test accuracy %"


def rise(curve, last):
    """How much a run still improved at its end: the mean over its last ``last`` points minus the
    mean over the ``last`` before them; None if the curve is shorter than 2·``last`` (convergence
    not measurable). ``curve``: per-epoch values, higher is better (e.g. test accuracy in %), or a
    dict holding them under "test"."""
    t = curve["test"] if isinstance(curve, dict) else curve
    if last < 1 or len(t) < 2 * last:
        return None
    return float(np.mean(t[-last:]) - np.mean(t[-2 * last:-last]))


def with_rise(rows, curve, last):
    """``rows`` of one run, each with the ``rise`` of its ``curve``; None for a run stored without
    its curve (a result kept by an older version of the recipe): rise None and ``no_curve``, so
    its verdicts are undecided rather than judged as if it had converged."""
    if curve is None:
        return [dict(r, rise=None, no_curve=True) for r in rows]
    r = rise(curve, last)
    return [dict(row, rise=r) for row in rows]


def rows_with_rise(results, s):
    """A recipe's ``rows`` for tasks that return {"rows": [...], "curves": {model: curve}}: each
    row with the rise of its model's curve over the last plateau_epochs (a bare list of rows is a
    result stored before the curves were kept: see :func:`with_rise`)."""
    last, _ = plateau(s)
    out = []
    for result in results.values():
        if isinstance(result, list):
            out += with_rise(result, None, last)
            continue
        for r in result["rows"]:
            out += with_rise([r], result["curves"][r["model"]], last)
    return out


def plateau(s):
    return int(s.get("plateau_epochs", 2)), float(s.get("plateau_points", 1.0))


def _span(s):
    last, _ = plateau(s)
    return s.get("plateau_span", f"{last} epochs"), s.get("plateau_unit", "points")


def unconverged(res, groups, s, metric=METRIC):
    """(unmet, summary) for the nets of ``groups`` [(model, setting)]: ``unmet`` names each group
    one of whose runs still rose by more than plateau_points over its last plateau_epochs (or ran
    too few epochs to tell); ``summary`` gives every group's largest rise either way."""
    last, limit = plateau(s)
    span, unit = _span(s)
    unmet, parts = [], []
    for model, setting in groups:
        rows = res.select(model, metric, setting)
        if not rows or all("rise" not in r for r in rows):
            continue
        name = f"{model}{f' ({setting})' if setting else ''}"
        rises = [r.get("rise") for r in rows]
        if any(r.get("no_curve") for r in rows):
            unmet.append(f"{name} stored without its per-epoch curve, convergence not measurable")
            continue
        if any(v is None for v in rises):
            unmet.append(f"{name} ran fewer than {2 * last} epochs, convergence not measurable")
            continue
        if not all(math.isfinite(v) for v in rises):
            lost = nonfinite_text(v for v in rises if not math.isfinite(v))
            unmet.append(f"{name} has a run that diverged (rise {lost}), convergence not measurable")
            continue
        top = max(rises)
        parts.append(f"{name} {top:+.2f}")
        if top > limit:
            unmet.append(f"{name} still rising ({top:+.2f} {unit} over its last {span} > {limit})")
    summary = f"rise over the last {span} (converged ≤ {limit}): " + (", ".join(parts) or "–")
    return unmet, summary


def rising(res, group, s, metric=METRIC):
    """Whether the nets of ``group`` (model, setting) are still learning: True if one of its runs
    still rose by more than plateau_points over its last plateau_epochs, False if all settled (or
    the group has no curves: a model solved exactly), None if a run was too short to tell or
    diverged (a rise NaN or ±Inf)."""
    rows = res.select(group[0], metric, group[1])
    if all("rise" not in r for r in rows):
        return False
    rises = [r.get("rise") for r in rows]
    if any(v is None or not math.isfinite(v) for v in rises):
        return None
    return max(rises) > plateau(s)[1]


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


def sample(values, s):
    """(mean, band, sd, df) of per-seed values judged against a fixed threshold: band = noise_z ·
    sd / sqrt(n), sd the standard deviation of single seeds with df = n − 1; band and sd None for
    a single value (no spread measured). Undecidable if a value is NaN or ±Inf (e.g. a ratio of
    diverged runs): their mean and spread are no measurement."""
    v = np.asarray(values, dtype=np.float64)
    bad = v[~np.isfinite(v)]
    if len(bad):
        raise Undecidable(f"{len(bad)} of the {len(v)} per-seed values {'is' if len(bad) == 1 else 'are'} "
                          f"{nonfinite_text(bad)}")
    if len(v) < 2:
        return float(v.mean()), None, None, 0
    sd = float(v.std(ddof=1))
    return float(v.mean()), float(s.get("noise_z", 2.0)) * sd / math.sqrt(len(v)), sd, len(v) - 1


def differences(res, a, b, ratio=False):
    """Per-seed a − b (``ratio``: a / b) of two measurements (model, metric, setting) taken in the
    same seeds (paired: the same net, or nets that share the data the seed draws), over the seeds
    both have; Missing if there is none; ``ratio``: Undecidable if a denominator is 0."""
    def by_seed(g):
        return {r.get("seed", 0): float(r["value"]) for r in res.select(g[0], g[1], g[2])
                if r.get("value") is not None and not diverged(r)}
    va, vb = by_seed(a), by_seed(b)
    seeds = sorted(set(va) & set(vb))
    if not seeds:
        raise Missing(f"no seed with both {a[1]!r} of {a[0]} and {b[1]!r} of {b[0]}")
    if ratio:
        zero = [k for k in seeds if vb[k] == 0]
        if zero:
            raise Undecidable(f"ratio undefined: a denominator is 0 ({a[1]!r} of {a[0]} / {b[1]!r} of {b[0]}, "
                              f"seed {', '.join(map(str, zero))})")
        return [va[k] / vb[k] for k in seeds]
    return [va[k] - vb[k] for k in seeds]


def beyond(values, threshold, s, below=False, log=False, digits=2):
    """Per-seed values against a fixed threshold: whether their mean lies above it (``below``:
    under it) outside the noise band of :func:`sample`, as :func:`at_least`. ``log``: the values
    are ratios, judged as log10(value) against log10(threshold). Returns (outcome, text, sd), the
    text with the mean, its band, the threshold and the spread. ``log`` with a value or threshold
    ≤ 0: Undecidable (the log of a ratio ≤ 0 is undefined)."""
    if log:
        bad = [x for x in values if x <= 0]
        if bad:
            listed = ", ".join(f"{x:g}" for x in values)
            raise Undecidable(f"log ratio undefined: {len(bad)} of the ratios ({listed}) ≤ 0")
        if threshold <= 0:
            raise Undecidable(f"log ratio undefined: threshold {threshold:g} ≤ 0")
    v = [math.log10(x) if log else x for x in values]
    t = math.log10(threshold) if log else threshold
    mean, u, sd, df = sample(v, s)
    outcome = at_least(t - mean if below else mean - t, 0.0, u)
    f = f".{digits}f"
    sign = "<" if below else ">"
    if log:
        text = f"geometric mean {10 ** mean:{f}}, log10 {mean:+.3f} {pm(u, 3)} {sign} log10 {threshold:g}?"
    else:
        text = f"mean {mean:{f}} {pm(u, digits)} {sign} {threshold:g}?"
    return outcome, f"{text} ({spread_text(sd, df, pooled=False, digits=3 if log else digits)})", sd


def within(delta, tol, u):
    """|delta| ≤ tol, judged against the noise band ±u: True if it holds for every value in
    delta ± u, False if for none, else UNDECIDED (also when u is None: no spread measured, or when
    delta or u is NaN or ±Inf)."""
    if u is None or not (math.isfinite(delta) and math.isfinite(u)):
        return UNDECIDED
    if abs(delta) + u <= tol:
        return True
    if abs(delta) - u > tol:
        return False
    return UNDECIDED


def at_least(delta, margin, u):
    """delta ≥ margin, judged against the noise band ±u as :func:`within`."""
    if u is None or not (math.isfinite(delta) and math.isfinite(u)):
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


def spread_text(sd, df, pooled=True, digits=2):
    return "seed-to-seed spread not measured (1 seed)" if sd is None else \
        f"seed-to-seed spread (sd of single runs{', pooled' if pooled else ''}) {sd:.{digits}f} ({df} df)"


def pm(u, digits=2):
    return "± ?" if u is None else f"± {u:.{digits}f}"


def conclude(outcome, detail, unmet, sd):
    """A claim's (status, detail): UNDECIDED when a precondition is unmet (``unmet``: texts with
    their numbers) or the outcome is itself UNDECIDED (then the detail says whether the spread was
    not measured or the difference ± its band straddles the threshold); else the outcome."""
    if outcome is UNDECIDED and not unmet:
        unmet = ["seed-to-seed spread not measured (1 seed)" if sd is None
                 else "the difference ± its noise band straddles the threshold"]
    return decide(outcome, detail, unmet)


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
