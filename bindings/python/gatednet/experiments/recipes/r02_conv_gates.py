"""conv-gates — "Duality simplifies deep neural networks with ReLUs", Table 1 and Figure 4 (right).

Setup (paper §4.1): the DGN of Figure 4 (right). Feature and value nets are both C1–C4 —
4 conv layers of 128 filters 3×3, stride 1 — then global average pooling and a dense output.
Value layer l is gated by feature layer π(l) for a permutation π of the 4 layers (24 models),
and the value net's input is either x ("standard") or an all-ones image ("all-ones"): 48 models.
Columns: fixed random gates with independent (II) and dependent (DI) initialisation, decoupled
learning (soft gates σ(βq), β = 10, both nets trained), fixed learnt gates (a ReLU net trained
first, its weights frozen as the feature net, a fresh value net trained), and the ReLU net
itself. Each gated column is averaged over the 48 models (1 run each, best test accuracy of
the run); ReLU over 5 runs. Adam 3e-4, batch 32.

Fashion-MNIST (28×28×1) replaces CIFAR-10. ``paper``: 128 filters, all 48 wirings (1 run
each, as the paper), 60,000 images, 20 epochs (the paper gives no epoch count), 1 seed (the
ReLU column is then 1 run, not 5; ``--seeds 5`` repeats everything). Run time at ``paper`` size,
measured by ``python -m gatednet.experiments run conv-gates --size paper --probe --probe-steps 5``
(2026-11-28, 2 cores shared with other jobs at a load average of 17–19; RESULTS-papers-probe.md):
7.8 months serial at that load (an upper bound), 33 days with both cores busy (the extrapolated
CPU time over 2 cores: the idle-machine figure); 1.9–3.7 s per training step of 32 images and
~40 ms per validation image at that load. Beyond one machine: a Dask cluster (``--scheduler
ADDRESS``, README "On several machines"). Tasks: per seed, the ReLU net (``relu-sK``: the ReLU
column and the source of the fixed learnt gates) and one task per gated column and wiring
(``learnt-p1032-ones-sK``; 4 × 48 at ``paper``: 193 tasks per seed, each about 1/193 of the run,
~8 CPU-hours idle by the estimate above; ``quick`` 4 × 4 + 1 = 17 per seed). The fixed learnt
tasks of a seed need its ReLU net's result (the trained net), so the runner starts them in a
second wave, after the first wave (every ReLU net and the other columns) has finished.
``quick`` (measured before the per-wiring split: 1,069 s of CPU time, 30 min wall on 2 cores at a
load average of 12–20, split over two processes, one per seed): 16 filters, 1,000 training and 1,000 test
images, Adam 1e-2 with batch 16 and a per-epoch cosine decay; the ReLU (source) net 20 epochs,
every gated net 8; 2 seeds; of the 48 wirings the identity and 1 random permutation (drawn from
the seed), each with x and all-ones value input (4 of 48 models per gated column and seed). The
learning rate is the fastest of 3e-4 / 1e-3 / 3e-3 / 1e-2 measured for the ReLU net (16 filters,
10,000 images, 6 epochs, batch 32, constant rate: 61.7 / 73.8 / 78.6 / 80.5 % test). Probe for
the epochs (1,000 images, batch 16, cosine): the ReLU net reaches 77.4 % in 24 epochs and has
stopped rising (−0.3 points over its last 2 epochs), a fixed-learnt value net 78.4 % in 12
(+0.35). ``quick`` stops short of that (20 and 8 epochs, ~9 CPU-minutes per seed), and in the
measured run every gated net was still rising at the end (+1.5 to +7.9 points over its last 2
epochs; one of the two ReLU nets +1.65), so all three claims came out undecided; more epochs
(24 / 12 or more) and seeds are the knobs to decide them, at ~1.5× the CPU time per seed.
Tried: ``--set relu_epochs=24 --set epochs=12 --seeds 6 --workers 2`` (3,286 s of CPU time, 44 min
wall on 2 Dask workers at a load of 4–15; RESULTS-papers-conv.md): still undecided. The gated nets
still rise ~2 points over their last 2 epochs, and a single net's seed-to-seed spread (1.34
points) makes the 1-point claims' band ± 1.55 at 6 seeds (~15 seeds for ± 1.0).
"""
from __future__ import annotations

import base64
import itertools

import numpy as np

import gatednet as gn
from gatednet.experiments import UNDECIDED, Claim, Recipe, Task
from gatednet.experiments.common import derive_seed, mark_diverged
from gatednet.experiments.recipes._conv import check_fit
from gatednet.experiments.recipes._conv import (METRIC, all_of, at_least, band, best, c1_c4, conclude, fit_curve, images,
                                                pair, plateau, pm, rise, spread, spread_text, unconverged,
                                                within)

RELU, II, DI, DEC, FL = "ReLU", "fixed random II", "fixed random DI", "decoupled", "fixed learnt"
GATED = (II, DI, DEC, FL)
REGIME = {II: "fixed_random_ii", DI: "fixed_random_di", DEC: "decoupled", FL: "fixed_learnt"}
COLUMN_KEY = {II: "ii", DI: "di", DEC: "decoupled", FL: "learnt"}
IDENTITY = (0, 1, 2, 3)
# Table rows (settings): the paper's column (the average over all wirings), then the classes.
ALL = "average over wirings"
CLASSES = ("identity, x^v = x", "permuted, x^v = x", "identity, x^v = 1", "permuted, x^v = 1")


def wirings(n_permutations, seed):
    """The (permutation, value_input) pairs of a run: all 24 permutations when n_permutations
    >= 24, else the identity and n_permutations-1 others drawn without replacement from
    derive_seed(seed); each with value input "x" and "ones"."""
    perms = list(itertools.permutations(range(4)))
    if n_permutations < len(perms):
        rng = np.random.default_rng(derive_seed("conv-gates", "permutations", seed))
        others = [p for p in perms if p != IDENTITY]
        picked = rng.choice(len(others), n_permutations - 1, replace=False)
        perms = [IDENTITY] + [others[i] for i in sorted(picked)]
    return [(list(p), v) for p in perms for v in ("x", "ones")]


def wiring_class(permutation, value_input):
    ident = tuple(permutation) == IDENTITY
    return CLASSES[(0 if ident else 1) + (2 if value_input == "ones" else 0)]


def _setup(data, filters, n_train, n_test, seed, fit):
    x, y, xt, yt, shape, classes = images(data, n_train, n_test)
    return x, y, xt, yt, shape, c1_c4(filters, classes), dict(fit, shuffle_seed=derive_seed("shuffle", seed))


def relu_key(seed):
    return f"relu-s{seed}"


def wiring_key(column, permutation, value_input, seed):
    return f"{COLUMN_KEY[column]}-p{''.join(map(str, permutation))}-{value_input}-s{seed}"


def train_relu(data, filters, seed, n_train, n_test, epochs, fit):
    """The ReLU column for one seed; the same net is the source of the fixed learnt column's
    gates. Returns its run and the trained net (``net``: ConvNetwork.to_bytes, base64) for the
    fixed-learnt wiring tasks of the seed, which need this task."""
    x, y, xt, yt, shape, layers, fit = _setup(data, filters, n_train, n_test, seed, fit)
    with gn.ConvNetwork(layers, shape, "relu", seed=derive_seed("conv-gates", seed, "relu")) as source:
        curve = fit_curve(source, x, y, epochs, f"ReLU seed {seed}", (xt, yt), **fit)
        net = base64.b64encode(source.to_bytes()).decode("ascii")
    return dict(model=RELU, permutation=list(IDENTITY), value_input="x", best=best(curve), curve=curve, net=net)


def train_wiring(data, column, filters, seed, n_train, n_test, epochs, fit, wiring, inputs=None):
    """One gated net of Table 1: ``column`` wired by ``wiring`` {"permutation", "value_input"}
    for one seed; the fixed learnt column copies its gates from the seed's ReLU net (``inputs``:
    the result of :func:`train_relu`, the task it needs)."""
    x, y, xt, yt, shape, layers, fit = _setup(data, filters, n_train, n_test, seed, fit)
    permutation, value_input = list(wiring["permutation"]), wiring["value_input"]
    source = None
    if column == FL:
        source = gn.ConvNetwork.from_bytes(base64.b64decode(inputs[relu_key(seed)]["net"]))
    name = f"{column} π={''.join(map(str, permutation))} x^v={value_input} seed {seed}"
    try:
        with gn.ConvNetwork(layers, shape, REGIME[column], permutation=permutation,
                            value_input=value_input, gate_source=source,
                            seed=derive_seed("conv-gates", seed, column, permutation, value_input)) as net:
            if column == FL and np.isnan(inputs[relu_key(seed)]["best"]):
                mark_diverged(net)  # its gates come from a ReLU net that blew up (restored as it was before)
            curve = fit_curve(net, x, y, epochs, name, (xt, yt), **fit)
    finally:
        if source is not None:
            source.close()
    return dict(model=column, permutation=permutation, value_input=value_input, best=best(curve), curve=curve)


def tasks(s, seeds, data):
    """Per seed: the ReLU net (if the ReLU or fixed learnt column is asked for; ``relu_epochs``,
    default ``epochs``), and one task per gated column and sampled wiring (``permutations``),
    the fixed learnt ones needing the seed's ReLU task."""
    check_fit(s["fit"])
    unknown = [c for c in s["columns"] if c not in (*GATED, RELU)]
    if unknown:
        raise ValueError(f"columns: unknown {unknown}; choose from {[*GATED, RELU]}")
    common = dict(data=data, filters=s["filters"], n_train=s["n_train"], n_test=s["n_test"], fit=s["fit"])
    out = []
    for seed in seeds:
        relu = None
        for column in s["columns"]:
            if column in (FL, RELU) and relu is None:
                relu = Task(relu_key(seed), train_relu, dict(common, seed=seed,
                                                             epochs=s.get("relu_epochs") or s["epochs"]))
                out.append(relu)
            if column == RELU:
                continue
            for permutation, value_input in wirings(s["permutations"], seed):
                out.append(Task(wiring_key(column, permutation, value_input, seed), train_wiring, dict(
                    common, column=column, seed=seed, epochs=s["epochs"],
                    wiring=dict(permutation=permutation, value_input=value_input)),
                    needs=(relu.key,) if column == FL else ()))
    return out


def rows(results, s):
    """Per seed and column: the mean best accuracy over all its wirings (the paper's number) and
    over each wiring class (identity / permuted × x / all-ones); ``rise`` is the largest rise
    (_conv.rise) of the runs averaged (None if any is too short to tell). ``results``: {task key:
    run}, each run one net (the ReLU net, or one gated net)."""
    last, _ = plateau(s)
    out = []

    def row(setting, model, seed, rs):
        rises = [rise(r["curve"], last) if r.get("curve") else None for r in rs]
        return dict(setting=setting, model=model, seed=seed, metric=METRIC,
                    value=float(np.mean([r["best"] for r in rs])), models=len(rs),
                    rise=None if any(v is None for v in rises) else float(np.max(rises)))  # NaN if one is

    by_model = {}  # (seed, model) -> runs, in task order
    for key, run in results.items():
        by_model.setdefault((int(key.rsplit("-s", 1)[1]), run["model"]), []).append(run)
    for (seed, model), rs in by_model.items():
        out.append(row(ALL, model, seed, rs))
        if model == RELU:
            continue
        for cls in CLASSES:
            vals = [r for r in rs if wiring_class(r["permutation"], r["value_input"]) == cls]
            if vals:
                out.append(row(cls, model, seed, vals))
    return out


# ---- claims -------------------------------------------------------------------------------------
# Each claim is decided only when the compared nets have converged (_conv.unconverged) and the
# difference lies outside the noise band of the seed-to-seed spread of the same run (_conv.band);
# otherwise its verdict is "undecided", with the numbers either way.

def _short(cls):
    return f"{cls.split(',')[0]}/{cls.split('= ')[1]}"


def robust_to_wiring(res, s):
    """Every gated column: the mean over permuted and/or all-ones wirings within tol of identity."""
    tol = s.get("tolerance_points", 1.0)
    models = [m for m in GATED if m in res.models()]
    if not models:
        return None, "no gated column measured"
    sd, df = spread(res, [(m, c) for m in models for c in CLASSES])
    outcomes, parts, reasons, summaries = [], [], [], []
    for model in models:
        ident = (model, CLASSES[0])
        others = [c for c in CLASSES[1:] if res.select(model, METRIC, c)]
        deltas = {c: res.mean(model, METRIC, c) - res.mean(model, METRIC, CLASSES[0]) for c in others}
        bands = {c: band(res, (model, c), ident, sd, s) for c in others}
        unmet, summary = unconverged(res, [(model, c) for c in CLASSES], s)
        outcome = all_of(within(deltas[c], tol, bands[c]) for c in others)
        outcomes.append(UNDECIDED if unmet else outcome)
        if unmet:
            reasons += unmet
        elif outcome is UNDECIDED and sd is not None:
            reasons.append(f"{model}: a |Δ| ± its band straddles {tol}")
        summaries.append(summary.split(": ", 1)[1])
        parts.append(f"{model}: identity {res.mean(model, METRIC, CLASSES[0]):.2f}, "
                     + ", ".join(f"{_short(c)} {d:+.2f} {pm(bands[c])}" for c, d in deltas.items()))
    last, limit = plateau(s)
    detail = (f"|Δ| ≤ {tol} outside the noise band? " + "; ".join(parts) + f"; {spread_text(sd, df)}; "
              f"rise over the last {last} epochs (converged ≤ {limit}): " + ", ".join(summaries))
    status = all_of(outcomes)
    return conclude(status, detail, reasons if status is UNDECIDED else [], sd)


def learnt_beats_random(res, s):
    """Table 1's ordering: fixed learnt and decoupled gates above both fixed random columns."""
    margin = s.get("margin_points", 1.0)
    sd, df = spread(res, [(m, ALL) for m in (FL, DEC, II, DI)])
    lo = min((FL, ALL), (DEC, ALL), key=lambda g: res.mean(g[0], METRIC, ALL))
    hi = max((II, ALL), (DI, ALL), key=lambda g: res.mean(g[0], METRIC, ALL))
    outcome, d, u, unmet, summary = pair(res, s, lo, hi, at_least, margin, sd,
                                         a_side=[(FL, ALL), (DEC, ALL)], b_side=[(II, ALL), (DI, ALL)])
    return conclude(outcome, f"min(fixed learnt, decoupled) {res.mean(lo[0], METRIC, ALL):.2f} − max(II, DI) "
                    f"{res.mean(hi[0], METRIC, ALL):.2f} = {d:+.2f} {pm(u)} ≥ {margin}? {spread_text(sd, df)}; "
                    f"{summary}", unmet, sd)


def learnt_recovers_relu(res, s):
    tol = s.get("tolerance_points", 1.0)
    sd, df = spread(res, [(RELU, ALL), (FL, ALL)])
    outcome, d, u, unmet, summary = pair(res, s, (RELU, ALL), (FL, ALL), within, tol, sd)
    return conclude(outcome, f"ReLU {res.mean(RELU, METRIC, ALL):.2f} vs fixed learnt {res.mean(FL, METRIC, ALL):.2f} "
                    f"(|Δ| = {abs(d):.2f} {pm(u)} ≤ {tol}?) {spread_text(sd, df)}; {summary}", unmet, sd)


CLAIMS = [
    Claim("Permuting the gate layers and feeding all-ones to the value net leave each gated "
          "column within about 1 point of identity wiring", robust_to_wiring),
    Claim("Fixed learnt and decoupled gates beat fixed random gates (II, DI)", learnt_beats_random),
    Claim("Fixed learnt gates recover the ReLU net's accuracy within 1 point", learnt_recovers_relu),
]

# Table 1, CIFAR-10 row (the MNIST row used FC nets).
PAPER = [dict(setting=ALL, model=m, metric=METRIC, value=v, std=sd) for m, v, sd in (
    (II, 67.5, 0.7), (DI, 67.6, 0.7), (DEC, 77.6, 0.6), (FL, 79.4, 0.3), (RELU, 80.4, 0.3))]


def plots(results, rows_, s, out_dir):
    from gatednet.experiments.plotting import pyplot, save
    from gatednet.experiments.recipe import Results
    plt = pyplot()
    if plt is None:
        return []
    res = Results(rows_)
    models = [m for m in GATED if m in res.models()]
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    width = 0.8 / len(CLASSES)
    for j, cls in enumerate(CLASSES):
        means = [res.mean(m, METRIC, cls) if res.select(m, METRIC, cls) else np.nan for m in models]
        ax.bar(np.arange(len(models)) + j * width, means, width, label=cls)
    if RELU in res.models():
        ax.axhline(res.mean(RELU, METRIC, ALL), color="k", ls="--", lw=1, label="ReLU")
    ax.set_xticks(np.arange(len(models)) + width * (len(CLASSES) - 1) / 2)
    ax.set_xticklabels(models)
    vals = [r["value"] for r in rows_]
    ax.set_ylim(max(0, min(vals) - 5), min(100, max(vals) + 3))
    ax.set_ylabel("best test accuracy (%)")
    ax.set_title("Table 1: gates under layer permutations and all-ones value input (Fashion-MNIST)",
                 fontsize=9)
    ax.legend(fontsize=7, ncol=3)
    return [save(fig, out_dir, "wirings.png")]


_FIT_SMOKE = dict(optimizer="adam", lr=3e-3, batch_size=16, lr_schedule="cosine")
# Probed on 1,000 images (16 filters, batch 16, Adam 1e-2 with a per-epoch cosine decay): the ReLU
# net reaches 77.4 % (best) in 24 epochs and has stopped rising (last 2 epochs −0.3 points against
# the 2 before); a fixed-learnt value net on its gates reaches 78.4 % in 12. So quick trains the
# ReLU (source) net 20 epochs and every gated net 8, each with its own cosine decay.
_FIT_QUICK = dict(optimizer="adam", lr=1e-2, batch_size=16, lr_schedule="cosine")
# The verdicts' thresholds (see the claims and _conv), written out so that --set can change them.
_VERDICT = dict(tolerance_points=1.0, margin_points=1.0, plateau_epochs=2, plateau_points=1.0, noise_z=2.0)
RECIPE = Recipe(
    name="conv-gates",
    # 2: a run that diverged gives NaN values (experiments.common), not the accuracy of NaN scores
    version=2,
    title="Conv gates under layer permutations and all-ones value input (C1–C4 + GAP)",
    paper="Duality simplifies deep neural networks with ReLUs",
    reproduces="Table 1, Figure 4",
    paper_dataset="CIFAR-10",
    sizes={
        "smoke": dict(seeds=1, filters=2, n_train=100, n_test=100, epochs=1, fit=_FIT_SMOKE,
                      permutations=2, columns=[II, DI, DEC, FL], **_VERDICT),
        "quick": dict(seeds=2, filters=16, n_train=1000, n_test=1000, epochs=8, relu_epochs=20, fit=_FIT_QUICK,
                      permutations=2, columns=[II, DI, DEC, FL], **_VERDICT),
        "paper": dict(seeds=1, filters=128, n_train=60000, n_test=10000, epochs=20,
                      fit=dict(optimizer="adam", lr=3e-4, batch_size=32), permutations=24,
                      columns=[II, DI, DEC, FL], **_VERDICT),
    },
    tasks=tasks,
    rows=rows,
    claims=CLAIMS,
    paper_results=PAPER,
    plots=plots,
    notes="""Fashion-MNIST replaces CIFAR-10 (the paper's conv row), so absolute accuracies differ.
`quick` uses 16 filters instead of 128, 1,000 training images, Adam 1e-2 (batch 16) with a cosine
decay, the ReLU net 20 epochs and the gated nets 8, 2 seeds, and 4 of the 48 wirings per gated
column and seed (identity and one random permutation, each with x and all-ones value input). A
verdict is "undecided" when a compared net still rose by more than `plateau_points` over its last
`plateau_epochs` epochs, or when the difference ± its noise band (2 standard errors from the
seed-to-seed spread pooled over the compared groups) straddles the claim's threshold. The ReLU
column is 1 run per seed (it is the fixed-learnt column's source).
"Best" is the best test accuracy over the epochs of a run, as in the paper.""",
)
