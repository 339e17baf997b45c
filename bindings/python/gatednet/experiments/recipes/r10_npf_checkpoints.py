"""npf-checkpoints — the authors' "continuous NPF learning" (companion to "Neural Path Features
in Deep Learning", Table 4): how good are the gates of a ReLU net at each point of its training?

Setup: a ReLU net (Arch-1, w = 128, d = 6) is trained; at epochs 0, 1, 2, 4, 8, … its gates are
copied into a DGN and frozen (fixed learnt regime), a fresh value network is trained on them for
a fixed budget, and its test accuracy is reported against the epoch the gates were copied at.
Epoch 0 is the untrained net: fixed random gates.

Fashion-MNIST replaces MNIST; Adam 3e-4, batch 32. ``paper``: 60,000 images, checkpoints
0..32, 20 value-net epochs, 5 seeds: per seed 7 × 20 value epochs plus 63 ReLU epochs (the
ReLU prefix is retrained in each checkpoint's task so tasks are independent). Run time (35
tasks), measured by ``python -m gatednet.experiments run npf-checkpoints --size paper --probe
--probe-steps 5`` (2026-11-28, 2 cores shared with other jobs at a load average of ~17;
RESULTS-papers-probe.md): 4.4 hours serial at that load (an upper bound), 43 minutes with both
cores busy (the idle-machine figure); ``--workers N`` spreads the tasks.

``quick``: 10,000 images, checkpoints 0, 1, 2, 4, 8, 16, 10 value-net epochs, a per-epoch cosine
decay of the step from 3e-4 (the paper states no schedule; ``paper`` keeps the constant step): the
ReLU net follows one decay over 16 epochs, so every checkpoint is a point of the same run, and each
value net its own over 10 epochs; 6 seeds. Epochs needed, measured (2026-11-28) with the constant
step (commit 0cf57a5, before the schedule: ``--set "checkpoints=[0,1,2,4,8,16]" --set
value_epochs=12 --seeds 5``, stopped after 3 tasks): the value nets stop gaining by epoch ~8 but then
swing by ±1 point from epoch to epoch (rise over 2 epochs −1.2 … +1.4 at epochs 9–12). With the
decay, 10 value-net epochs leave every value net's rise ≤ 0.63 point; the ReLU net's decay over
8 epochs (checkpoints up to 8, tried) still left it rising (+1.8 over its last 2 epochs), over 16 it
rises ≤ 0.26. CPU time of one ``quick`` run: 336 s user+sys (``/usr/bin/time -v python -m
gatednet.experiments run npf-checkpoints --size quick``, 2 cores shared with other jobs at a load
average of ~10; 19 min wall).
"""
from __future__ import annotations

import numpy as np

import gatednet as gn
from gatednet.experiments import UNDECIDED, Claim, Recipe, Task
from gatednet.experiments import data as D
from gatednet.experiments.common import accuracy, check_choices, curve, derive_seed, fit as fit_epochs, \
    inherit_divergence, report
from gatednet.experiments.recipes._conv import SCHEDULES, cosine_lr, fit_curve
from gatednet.experiments.verdicts import (METRIC, at_least, beyond, conclude, pair, pm, rows_with_rise, spread,
                                           spread_text, unconverged, within)

FL, RELU = "fixed learnt", "ReLU (gate source)"


def _setting(epoch):
    return f"gates from epoch {epoch}"


def checkpoint(data, seed, epoch, width, depth, n_train, n_test, value_epochs, lr, batch, lr_schedule=None,
               relu_epochs=None):
    """Train the ReLU net for ``epoch`` epochs, freeze its gates, train a fresh value net on them:
    the rows of both and their per-epoch curves ({model: {"train": [%], "test": [%]}}).
    ``lr_schedule="cosine"``: the ReLU net follows one cosine decay over ``relu_epochs`` (the last
    checkpoint) of which it runs the first ``epoch`` epochs, so every checkpoint is a point of the
    same run; each value net has its own decay over ``value_epochs``."""
    ds = D.load(data)
    x, y = D.subset(ds.x_train, ds.y_train, n_train)
    xt, yt = D.subset(ds.x_test, ds.y_test, n_test)
    hidden = [width] * (depth - 1)
    fit = dict(batch_size=batch, lr=lr, shuffle_seed=derive_seed("shuffle", seed))
    setting = _setting(epoch)
    with gn.Network(x.shape[1], hidden, ds.classes, "relu", seed=derive_seed("npf-ckpt relu", seed)) as relu:
        label = f"ReLU seed {seed} → epoch {epoch}"
        if lr_schedule == "cosine":
            hist = []
            for e in range(epoch):
                hist += fit_epochs(relu, x, y, 1, (xt, yt), **dict(fit, lr=cosine_lr(lr, e, relu_epochs or epoch)))
                report(label, e + 1, epoch, hist[-1]["test_accuracy"])
            relu_curve = curve(hist)
        else:
            relu_curve = fit_curve(relu, x, y, epoch, label, (xt, yt), **fit)
        relu_acc = accuracy(relu, xt, yt)
        with gn.Network(x.shape[1], hidden, ds.classes, "fixed_learnt", gate_source=relu,
                        seed=derive_seed("npf-ckpt value", seed, epoch)) as dgn:
            inherit_divergence(dgn, relu)
            fl_curve = fit_curve(dgn, x, y, value_epochs, f"fixed learnt (epoch-{epoch} gates) seed {seed}",
                                 (xt, yt), lr_schedule=lr_schedule, **fit)
            fl_acc = accuracy(dgn, xt, yt)
    return {"rows": [dict(setting=setting, model=FL, seed=seed, metric=METRIC, value=fl_acc, epoch=epoch),
                     dict(setting=setting, model=RELU, seed=seed, metric=METRIC, value=relu_acc, epoch=epoch)],
            "curves": {FL: fl_curve, RELU: relu_curve}}


def tasks(s, seeds, data):
    check_choices("lr_schedule", [s.get("lr_schedule")], SCHEDULES)
    return [Task(f"epoch{e}-s{seed}", checkpoint, dict(
        data=data, seed=seed, epoch=e, width=s["width"], depth=s["depth"], n_train=s["n_train"],
        n_test=s["n_test"], value_epochs=s["value_epochs"], lr=s["lr"], batch=s["batch"],
        lr_schedule=s.get("lr_schedule"), relu_epochs=max(s["checkpoints"])))
        for seed in seeds for e in s["checkpoints"]]


def _curve(res, model):
    epochs = sorted({r["epoch"] for r in res.select(model=model)})
    return epochs, [res.mean(model, METRIC, _setting(e)) for e in epochs]


def _spearman(a, b):
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if len(a) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


# ---- claims -------------------------------------------------------------------------------------
# Differences of mean accuracies are decided only outside the noise band of the seed-to-seed
# spread pooled over the compared groups, and only once the compared nets have stopped learning
# (experiments.verdicts.pair); the steady rise is judged on each seed's own Spearman ρ (mean ±
# its band), undecided while a value net still learns.

def learnt_gates_improve(res, s):
    margin = s.get("improvement_points", 1.0)
    epochs, accs = _curve(res, FL)
    first, last = (FL, _setting(epochs[0])), (FL, _setting(epochs[-1]))
    sd, df = spread(res, [first, last])
    outcome, d, u, unmet, summary = pair(res, s, last, first, at_least, margin, sd)
    return conclude(outcome, f"fixed learnt: gates from epoch {epochs[0]} {accs[0]:.2f} → epoch {epochs[-1]} "
                    f"{accs[-1]:.2f} (Δ = {d:+.2f} {pm(u)} ≥ {margin}?) {spread_text(sd, df)}; {summary}", unmet, sd)


def steady_improvement(res, s):
    floor = s.get("spearman_floor", 0.8)
    epochs, accs = _curve(res, FL)
    per_seed = []
    for seed in res.seeds(model=FL):
        e = sorted(r["epoch"] for r in res.select(FL, METRIC, seed=seed))
        per_seed.append(_spearman(e, [res.mean(FL, METRIC, _setting(x), seed=seed) for x in e]))
    outcome, text, sd = beyond(per_seed, floor, s)
    unmet, summary = unconverged(res, [(FL, _setting(e)) for e in epochs], s)
    return conclude(UNDECIDED if unmet else outcome,
                    "Spearman ρ(checkpoint epoch, accuracy) per seed " + ", ".join(f"{r:.2f}" for r in per_seed)
                    + f": {text}; means " + ", ".join(f"{e}: {a:.2f}" for e, a in zip(epochs, accs))
                    + f"; {summary}", unmet, sd)


def recovers_relu(res, s):
    tol = s.get("tolerance_points", 1.0)
    epochs, _ = _curve(res, FL)
    fl, relu = (FL, _setting(epochs[-1])), (RELU, _setting(epochs[-1]))
    sd, df = spread(res, [fl, relu])
    outcome, d, u, unmet, summary = pair(res, s, fl, relu, within, tol, sd)
    return conclude(outcome, f"epoch {epochs[-1]}: fixed learnt {res.mean(FL, METRIC, fl[1]):.2f} vs its source "
                    f"ReLU net {res.mean(RELU, METRIC, relu[1]):.2f} (|Δ| = {abs(d):.2f} {pm(u)} ≤ {tol}?) "
                    f"{spread_text(sd, df)}; {summary}", unmet, sd)


def plots(results, rows, s, out_dir):
    from gatednet.experiments.plotting import pyplot, save
    from gatednet.experiments.recipe import Results
    plt = pyplot()
    if plt is None:
        return []
    res = Results(rows)
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for model, marker in ((FL, "o"), (RELU, "s")):
        epochs, means = _curve(res, model)
        stds = [res.std(model, METRIC, _setting(e)) for e in epochs]
        ax.errorbar(np.asarray(epochs) + 0.5, means, yerr=stds, marker=marker, capsize=3, label=model)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("epoch the gates were copied at (+0.5, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Continuous NPF learning (Fashion-MNIST)")
    ax.legend(fontsize=8)
    return [save(fig, out_dir, "accuracy_vs_checkpoint.png")]


RECIPE = Recipe(
    name="npf-checkpoints",
    # 2: a run that diverged gives NaN values (experiments.common), not the accuracy of NaN scores
    version=2,
    title="Fixed learnt gates copied from a ReLU net at epochs 0, 1, 2, 4, 8, …: accuracy against the epoch",
    paper="Neural Path Features in Deep Learning",
    reproduces="continuous NPF learning (authors' code)",
    paper_dataset="MNIST",
    sizes={
        "smoke": dict(seeds=1, width=24, depth=3, n_train=1000, n_test=500, checkpoints=[0, 1, 2],
                      value_epochs=2, lr=1e-3, batch=32, lr_schedule="cosine"),
        "quick": dict(seeds=6, width=128, depth=6, n_train=10000, n_test=5000, checkpoints=[0, 1, 2, 4, 8, 16],
                      value_epochs=10, lr=3e-4, batch=32, lr_schedule="cosine"),
        "paper": dict(seeds=5, width=128, depth=6, n_train=60000, n_test=10000, checkpoints=[0, 1, 2, 4, 8, 16, 32],
                      value_epochs=20, lr=3e-4, batch=32),
    },
    tasks=tasks,
    rows=rows_with_rise,
    claims=[
        Claim("Gates learnt longer are better: fixed learnt gates from the last checkpoint beat those from "
              "initialisation by at least 1 point", learnt_gates_improve),
        Claim("The value net's accuracy rises steadily with the epoch the gates were copied at (Spearman ρ of "
              "each seed's checkpoints ≥ 0.8)", steady_improvement),
        Claim("Gates from the last checkpoint recover their ReLU net's accuracy within 1 point", recovers_relu),
    ],
    paper_results=[dict(setting="gates from epoch 0", model=FL, metric=METRIC, text="≈ fixed random (Table 4: 96.0)")],
    plots=plots,
    notes="""The authors' continuous-NPF experiment is in their code, not the paper text, so there are no
published numbers to set beside ours; epoch 0 corresponds to Table 4's fixed random gates. A verdict is
"undecided" when a compared value net (or source ReLU net) still rose by more than `plateau_points` (1) over
its last `plateau_epochs` (2) epochs or ran fewer than twice that, or when a difference ± its noise band
(2 standard errors of the seed-to-seed spread; not measured with 1 seed) straddles the threshold.""",
)
