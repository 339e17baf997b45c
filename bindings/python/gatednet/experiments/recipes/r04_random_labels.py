"""random-labels — "Duality simplifies deep neural networks with ReLUs", Table 2, Figures 6, 8, 9.

Setup (paper §4.2): the DGN of Figure 4 (left) — C1–C4 (128 filters 3×3) + GAP + dense, value
input x, identity wiring. Two phases, label noise γ ∈ {0, 25, 50, 75} %:

- Phase I (upstream): a ReLU net trained on labels of which a fraction γ is replaced by uniform
  random classes gives M1(γ). "Best" is its best test accuracy (true test labels) over the
  phase, "End" the mean over its last 10 epochs.
- M2(γ): the gates of M1(γ) at the end of Phase I, frozen ("fixed learnt"); a fresh value net
  trained on the true labels.
- M3(γ): the same frozen gates; the value net trained upstream with 100 % random labels, then
  downstream with the true labels (Q2: do fixed gates resist random labels?).
- Phase II (downstream, γ > 0 only): M1(γ) trained further on the true labels gives M4(γ).
- M5(γ): the gates of M4(γ) frozen, a fresh value net trained on the true labels.

Every column but "End" is the best test accuracy of its run; 3 runs; Adam 3e-4, batch 32.
Label noise is the library's ``corrupt_labels`` (round(γ n) positions redrawn uniformly).

Fashion-MNIST (28×28×1) replaces CIFAR-10. The paper does not give the epochs of each phase;
``paper`` uses 60 epochs upstream, 30 downstream, 30 for a value net, 128 filters, 60,000 images,
3 seeds. Run time at ``paper`` size (12 tasks), measured by ``python -m gatednet.experiments run
random-labels --size paper --probe --probe-steps 5`` (2026-11-28, 2 cores shared with other jobs at
a load average of 15–17; RESULTS-papers-probe.md): 3.2 months serial at that load (an upper bound),
19 days with both cores busy (the idle-machine figure); one task (a γ and seed: M1–M5) 6.5–8.6 days
at that load. Beyond one machine: send the 12 tasks to a Dask cluster with ``--scheduler ADDRESS``
(README, "On several machines").
``quick``: 16 filters, 1,000 training and 1,000 test images, 24 epochs upstream, 12 downstream,
12 per value net, End over the last 2 epochs, Adam 1e-2 with batch 16 and a per-epoch cosine decay
within each phase and value net (the optimiser measured for conv-gates), 2 seeds; M3 only at
γ = 0 (the only M3 a claim reads). Measured with one seed at γ = 0 and 75 (2026-11-28, 279 s of
CPU time): at 24 / 12 / 12 epochs every net had stopped rising (M1 +0.00 / +0.75, value nets and
M4 −0.40 to +0.60, M3 downstream +0.40); at 16 / 8 / 8 (γ = 25) M1, M2 and M4 still rose by 1.1,
1.8 and 3.7 points over their last 2 epochs. The converging budget costs more than the few
minutes ``quick`` aims at: CPU time in RESULTS-papers-conv.md (~19 CPU-minutes estimated from the
probe). The old ``quick`` (3,000 images, 5 / 3 / 3 epochs at a constant rate, 1 seed, ~260 s)
left M1 rising by 7–12 points.
"""
from __future__ import annotations

import numpy as np

import gatednet as gn
from gatednet.experiments import UNDECIDED, Claim, Recipe, Task
from gatednet.experiments.common import derive_seed, inherit_divergence
from gatednet.experiments.recipes._conv import check_fit
from gatednet.experiments.recipes._conv import (METRIC, all_of, at_least, band, best, c1_c4, conclude, end,
                                                fit_curve, images, pair, plateau, pm, rise, spread,
                                                spread_text, unconverged, within)

M1B, M1E, M2, M3, M4, M5 = "M1 Best", "M1 End", "M2", "M3", "M4", "M5"
MODELS = (M1B, M1E, M2, M3, M4, M5)


def setting(gamma):
    return f"γ = {gamma} %"


def run(data, gamma, filters, seed, n_train, n_test, epochs_up, epochs_down, epochs_value, end_epochs,
        fit, with_m3):
    """Models M1..M5 of one noise level and seed: their rows and training curves."""
    x, y, xt, yt, shape, classes = images(data, n_train, n_test)
    layers = c1_c4(filters, classes)
    val = (xt, yt)
    fit = dict(fit, shuffle_seed=derive_seed("shuffle", seed, gamma))
    noisy = np.array(y, dtype=np.int32)
    gn.corrupt_labels(noisy, classes, gamma / 100.0, derive_seed("random-labels", seed, gamma, "noise"))
    random = np.array(y, dtype=np.int32)
    gn.corrupt_labels(random, classes, 1.0, derive_seed("random-labels", seed, gamma, "random"))
    seed_of = lambda model: derive_seed("random-labels", seed, gamma, model)  # noqa: E731
    label = lambda model: f"{model}(γ={gamma}) seed {seed}"  # noqa: E731
    curves, acc = {}, {}

    def value_net(source, model):
        net = gn.ConvNetwork(layers, shape, "fixed_learnt", gate_source=source, seed=seed_of(model))
        inherit_divergence(net, source)
        return net

    with gn.ConvNetwork(layers, shape, "relu", seed=seed_of("M1")) as m1:
        curves["M1"] = fit_curve(m1, x, noisy, epochs_up, label("M1"), val, **fit)
        acc[M1B], acc[M1E] = best(curves["M1"]), end(curves["M1"], end_epochs)
        with value_net(m1, "M2") as m2:
            curves["M2"] = fit_curve(m2, x, y, epochs_value, label("M2"), val, **fit)
            acc[M2] = best(curves["M2"])
        if with_m3:
            with value_net(m1, "M3") as m3:
                up = fit_curve(m3, x, random, epochs_up, label("M3 upstream"), val, **fit)
                down = fit_curve(m3, x, y, epochs_down, label("M3 downstream"), val, **fit)
                curves["M3"] = {k: up[k] + down[k] for k in up}
                acc[M3] = best(down)
        if gamma > 0:  # Phase II: M1 goes on with the true labels
            curves["M4"] = fit_curve(m1, x, y, epochs_down, label("M4"), val, **fit)
            acc[M4] = best(curves["M4"])
            with value_net(m1, "M5") as m5:
                curves["M5"] = fit_curve(m5, x, y, epochs_value, label("M5"), val, **fit)
                acc[M5] = best(curves["M5"])
    rows = [dict(setting=setting(gamma), model=m, seed=seed, metric=METRIC, value=v, gamma=gamma)
            for m, v in acc.items()]
    return {"rows": rows, "curves": curves, "gamma": gamma, "seed": seed}


def tasks(s, seeds, data):
    check_fit(s["fit"])
    return [Task(f"gamma{g}-s{seed}", run, dict(
        data=data, gamma=g, filters=s["filters"], seed=seed, n_train=s["n_train"], n_test=s["n_test"],
        epochs_up=s["epochs_up"], epochs_down=s["epochs_down"], epochs_value=s["epochs_value"],
        end_epochs=s["end_epochs"], fit=s["fit"], with_m3=g in s["m3_gammas"]))
        for seed in seeds for g in s["gammas"]]


def rows(results, s):
    """The runs' rows, each with the ``rise`` (_conv.rise) of the curve its accuracy comes from:
    M1's for M1 Best and End, M3's downstream phase for M3, the model's own otherwise."""
    last, _ = plateau(s)
    out = []
    for run_ in results.values():
        curves = run_["curves"]
        judged = {M1B: curves["M1"], M1E: curves["M1"]}
        if "M3" in curves:
            judged[M3] = {k: v[-s["epochs_down"]:] for k, v in curves["M3"].items()}
        out += [dict(r, rise=rise(judged.get(r["model"]) or curves[r["model"]], last)) for r in run_["rows"]]
    return out


# ---- claims -------------------------------------------------------------------------------------

def _gammas(res, model):
    return sorted({r["gamma"] for r in res.select(model, METRIC)})


def _spread(res):
    return spread(res, [(m, g) for m in MODELS for g in res.settings(model=m)])


def m2_beats_m1_best(res, s):
    """Degradation after 'Best' hits the value (NPV) only: the Phase-I gates in a fresh value
    net do at least as well as M1's best, for every γ > 0 measured."""
    sd, df = _spread(res)
    parts, outcomes, unmet, summaries = [], [], [], []
    for g in [g for g in _gammas(res, M2) if g > 0]:
        outcome, d, u, not_yet, summary = pair(res, s, (M2, setting(g)), (M1B, setting(g)), at_least, 0.0, sd)
        outcomes.append(outcome)
        unmet += not_yet
        summaries.append(summary.split(": ", 1)[1])
        parts.append(f"γ={g}: M2 {res.mean(M2, METRIC, setting(g)):.2f} vs M1-Best "
                     f"{res.mean(M1B, METRIC, setting(g)):.2f} (Δ {d:+.2f} {pm(u)})")
    if not outcomes:
        return None, "no γ > 0 measured"
    status = all_of(outcomes)
    last, limit = plateau(s)
    return conclude(status, "M2 ≥ M1-Best? " + "; ".join(parts) + f"; {spread_text(sd, df)}; rise over the last "
                    f"{last} epochs (converged ≤ {limit}): " + ", ".join(summaries), unmet if status is UNDECIDED else [], sd)


def gates_degrade(res, s):
    """M4 and M5 fall as γ grows (each step down by more than its noise band, and γ = 75 below
    the clean M1(0)-Best), and M5 ≈ M4 within the tolerance."""
    tol = s.get("m4_m5_tolerance_points", 1.0)
    gs = _gammas(res, M4)
    if len(gs) < 2:
        return None, "needs M4 at two γ > 0"
    sd, df = _spread(res)
    clean = (M1B, setting(0))
    outcomes = []
    for m in (M4, M5):
        for g0, g1 in zip(gs, gs[1:]):
            a, b = (m, setting(g0)), (m, setting(g1))
            outcomes.append(at_least(res.mean(m, METRIC, a[1]) - res.mean(m, METRIC, b[1]), 0.0, band(res, a, b, sd, s)))
        last = (m, setting(gs[-1]))
        outcomes.append(at_least(res.mean(clean[0], METRIC, clean[1]) - res.mean(m, METRIC, last[1]), 0.0,
                                 band(res, clean, last, sd, s)))
    gaps = [(res.mean(M5, METRIC, setting(g)) - res.mean(M4, METRIC, setting(g)),
             band(res, (M5, setting(g)), (M4, setting(g)), sd, s)) for g in gs]
    outcomes += [within(d, tol, u) for d, u in gaps]
    fmt = lambda m: ", ".join(f"{g}: {res.mean(m, METRIC, setting(g)):.2f}" for g in gs)  # noqa: E731
    unmet, summary = unconverged(res, [clean] + [(m, setting(g)) for m in (M4, M5) for g in gs], s)
    return conclude(all_of(outcomes),
                    f"M1(0)-Best {res.mean(M1B, METRIC, setting(0)):.2f}; M4 {fmt(M4)}; M5 {fmt(M5)}; "
                    f"M5 − M4 " + ", ".join(f"{d:+.2f} {pm(u)}" for d, u in gaps) + f" within {tol}?; "
                    f"{spread_text(sd, df)}; {summary}", unmet, sd)


def fixed_gates_resist(res, s):
    limit = s.get("m3_loss_points", 2.0)
    sd, df = _spread(res)
    # M1(0)-Best − M3(0) < limit, i.e. M3 − M1-Best > −limit
    outcome, d, u, unmet, summary = pair(res, s, (M3, setting(0)), (M1B, setting(0)), at_least, -limit, sd)
    return conclude(outcome, f"M1(0)-Best {res.mean(M1B, METRIC, setting(0)):.2f} − M3(0) "
                    f"{res.mean(M3, METRIC, setting(0)):.2f} = {-d:+.2f} {pm(u)} < {limit}? "
                    f"{spread_text(sd, df)}; {summary}", unmet, sd)


CLAIMS = [
    Claim("M2(γ) ≥ M1(γ)-Best: the gates at the end of upstream training are no worse than the "
          "ReLU net at its best (degradation hits the NPV)", m2_beats_m1_best),
    Claim("M4 and M5 degrade with γ and M5 ≈ M4: the gates cause the degradation", gates_degrade),
    Claim("With fixed gates, 100 % random labels upstream cost less than 2 points: "
          "M1(0)-Best − M3(0) < 2", fixed_gates_resist),
]

_T2 = {0: ((81.2, .3), (80.0, .4), (80.3, .2), (79.3, .4), None, None),
       25: ((76.1, .6), (63.1, .7), (74.7, .5), (72.3, .2), (76.9, .1), (76.9, .4)),
       50: ((70.9, .8), (41.5, 1.1), (69.9, .3), (66.8, .1), (73.4, .3), (73.6, .4)),
       75: ((56.9, .4), (23.4, .4), (63.9, .4), (60.0, .3), (68.1, .4), (67.7, .6))}
PAPER = [dict(setting=setting(g), model=m, metric=METRIC, value=v[0], std=v[1])
         for g, vals in _T2.items() for m, v in zip(MODELS, vals) if v is not None]


def plots(results, rows_, s, out_dir):
    from gatednet.experiments.plotting import pyplot, save
    plt = pyplot()
    if plt is None:
        return []
    runs = [r for r in results.values() if isinstance(r, dict) and "curves" in r]
    first_seed = min(r["seed"] for r in runs)
    runs = sorted((r for r in runs if r["seed"] == first_seed), key=lambda r: r["gamma"])
    files = []
    # Figure 8: upstream M1(γ) on top, downstream M4(γ) below; train (dashed) and test accuracy.
    fig, ax = plt.subplots(2, 1, figsize=(6.5, 6), sharey=True)
    for i, r in enumerate(runs):  # one colour per γ in both panels
        for row, model in ((0, "M1"), (1, "M4")):
            c = r["curves"].get(model)
            if c is None:
                continue
            ep = np.arange(1, len(c["test"]) + 1)
            ax[row].plot(ep, c["test"], color=f"C{i}", label=f"γ = {r['gamma']} % test")
            ax[row].plot(ep, c["train"], ls="--", color=f"C{i}", label=f"γ = {r['gamma']} % train")
    ax[0].set_title("Figure 8: upstream M1(γ) (noisy labels), top; downstream M4(γ) (true labels), bottom",
                    fontsize=9)
    for a in ax:
        a.set_xlabel("epoch of the phase")
        a.set_ylabel("accuracy (%)")
        a.xaxis.get_major_locator().set_params(integer=True)
        a.legend(fontsize=7, ncol=2)
    files.append(save(fig, out_dir, "figure8_phases.png"))
    # Figure 9: every model of one run (the largest γ that has them all, else the largest γ).
    full = [r for r in runs if {"M1", "M2", "M4", "M5"} <= set(r["curves"])] or runs
    r = full[-1]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for model, c in r["curves"].items():
        ep = np.arange(1, len(c["test"]) + 1)
        ax[0].plot(ep, c["train"], label=model)
        ax[1].plot(ep, c["test"], label=model)
    for a, what in zip(ax, ("train (labels of the phase)", "test (true labels)")):
        a.set_title(f"Figure 9: γ = {r['gamma']} %, {what}", fontsize=9)
        a.set_xlabel("epoch of the model's run")
        a.xaxis.get_major_locator().set_params(integer=True)
        a.legend(fontsize=7)
    ax[0].set_ylabel("accuracy (%)")
    files.append(save(fig, out_dir, "figure9_models.png"))
    return files


_FIT_SMOKE = dict(optimizer="adam", lr=3e-3, batch_size=16, lr_schedule="cosine")
_FIT_QUICK = dict(optimizer="adam", lr=1e-2, batch_size=16, lr_schedule="cosine")  # as conv-gates (probed there)
RECIPE = Recipe(
    name="random-labels",
    # 2: a run that diverged gives NaN values (experiments.common), not the accuracy of NaN scores
    version=2,
    title="Upstream random labels, downstream true labels: the gates carry the damage (M1–M5)",
    paper="Duality simplifies deep neural networks with ReLUs",
    reproduces="Table 2, Figures 6, 8, 9",
    paper_dataset="CIFAR-10",
    sizes={
        "smoke": dict(seeds=1, gammas=[0, 25, 50], m3_gammas=[0], filters=2, n_train=100, n_test=100,
                      epochs_up=2, epochs_down=1, epochs_value=1, end_epochs=1, fit=_FIT_SMOKE),
        "quick": dict(seeds=2, gammas=[0, 25, 50, 75], m3_gammas=[0], filters=16, n_train=1000,
                      n_test=1000, epochs_up=24, epochs_down=12, epochs_value=12, end_epochs=2,
                      fit=_FIT_QUICK, m4_m5_tolerance_points=2.0),
        "paper": dict(seeds=3, gammas=[0, 25, 50, 75], m3_gammas=[0, 25, 50, 75], filters=128,
                      n_train=60000, n_test=10000, epochs_up=60, epochs_down=30, epochs_value=30,
                      end_epochs=10, fit=dict(optimizer="adam", lr=3e-4, batch_size=32)),
    },
    tasks=tasks,
    rows=rows,
    claims=CLAIMS,
    paper_results=PAPER,
    plots=plots,
    notes="""Fashion-MNIST replaces CIFAR-10. The paper's 'Best then End' drop needs a net that memorises
the noisy labels; `quick`'s 16-filter GAP net (24 upstream epochs on 1,000 images, cosine decay) fits
the noisy training labels only partly, so M1's End stays near its Best. `quick` allows |M5 − M4| ≤ 2
points (1 at `paper`), as before. M3 is
run at γ = 0 only in `quick` (all γ at `paper`). A verdict is "undecided" when a compared net still rose
by more than `plateau_points` over its last `plateau_epochs` epochs or ran fewer than twice that, or
when a difference ± its noise band (2 standard errors of the seed-to-seed spread) straddles the
claim's threshold.""",
)
