"""dlgn-halfspaces — "Half-Space Feature Learning in Neural Networks", §4 and Figures 2, 3, 5, 6.

Setup (paper §4): a 2-D regression dataset on the unit circle whose target varies slowly on the
upper half (y > 0) and fast on the lower half. Here t = sin(f θ) with f = 2 on the upper half and
12 on the lower (continuous at θ = 0 and π), fitted with the squared loss on the values. Three
nets with 5 hidden layers of 16 neurons: a ReLU net, a DLGN-PWC (linear gating net, soft gates
β = 10, all-ones value input) and the same DLGN-PWC with its gating net frozen at initialisation
(no feature learning). Every DLGN gating neuron is on exactly on a half-space ``<u, x> + c > 0``:
we plot these lines per layer, the learnt function, the test MSE of each half over training, and
measure where the paths go.

Differences: the paper does not state its frequencies or its number of points; f = 2 / 12 and
1,000 points are ours. Biases are on (hyperplanes need offsets). Adam 1e-3, batch 32. Training
runs in chunks ending at checkpoint epochs (1, 2, 5, 10, ... and a tenth of the epochs) where
each half's test MSE is measured; chunks compose bit for bit into one run. ``paper``: 2,000
epochs (the paper: ReLU and DLGN converge in ~200 epochs, frozen gates > 2,000), 5 seeds. Run time
(15 tasks), measured by ``python -m gatednet.experiments run dlgn-halfspaces --size paper --probe
--probe-steps 5`` (2026-11-28, 2 cores shared with other jobs at a load average of ~13;
RESULTS-papers-probe.md): 25 minutes serial at that load (an upper bound), 4 minutes with both
cores busy (the idle-machine figure); tiny nets, so the time is per-minibatch overhead (~1.5 ms
a step at that load).

``quick``: 200 epochs, 3 seeds (81 s wall at a load average of 13–16). Longer runs do not let
the nets pass the still-learning test (test MSE falling by ≤ 10^0.1 over the last checkpoint
interval): measured (2026-11-28, ``--set epochs=1000``, 107 s CPU user+sys on 2 shared cores),
over epochs 500 → 1000 the test MSE of seeds 0, 1, 2 still fell by 10^(0.09, 0.00, 1.77) (ReLU),
10^(0.25, 0.16, 1.28) (DLGN-PWC) and 10^(−0.17, 0.26, 0.39) (gating frozen): the nets keep
fitting (and a constant Adam step leaves spikes a later epoch recovers from). A per-epoch cosine
decay over the 1,000 epochs (tried, not kept) makes the last interval fall more (DLGN-PWC 10^1.86),
the annealing's gain. So ``quick`` stays at 200 epochs; its claims about trained nets stay
undecided at any affordable size.
"""
from __future__ import annotations

import math

import numpy as np

import gatednet as gn
from gatednet.experiments import UNDECIDED, Claim, Recipe, Task
from gatednet.experiments.common import derive_seed, diverged, evaluate, train
from gatednet.experiments.verdicts import all_of, beyond, conclude, differences, plateau, unconverged, with_rise

RELU, DLGN, FROZEN = "ReLU", "DLGN-PWC", "DLGN-PWC, gating frozen at init"
KEYS = {RELU: "relu", DLGN: "dlgn", FROZEN: "frozen"}
MSE_UP, MSE_LOW = "test MSE, upper half (low frequency)", "test MSE, lower half (high frequency)"
EARLY = "test MSE lower / upper half at a tenth of the epochs"
PATHS = "active paths upper / lower half"
TRAIN_LOSS = "train loss (squared)"
COS_FIRST, COS_LAST = "first layer normals: mean |cos|", "last layer normals: mean |cos|"
LAST_TOP, FIRST_TOP = ("last layer: share of neurons on mostly in the upper half",
                       "first layer: share of neurons on mostly in the upper half")


def circle(n, seed, low=2, high=12):
    """n points on the unit circle and the target sin(f θ), f = low on the upper half, high below."""
    theta = np.random.default_rng(seed).uniform(0, 2 * math.pi, n)
    x = np.stack([np.cos(theta), np.sin(theta)], axis=1).astype(np.float32)
    f = np.where(np.sin(theta) > 0, low, high)
    return x, np.sin(f * theta).astype(np.float32), theta


def checkpoints(epochs):
    """Epochs after which each half's test MSE is measured: 1, 2, 5, 10, 20, 50, ..., a tenth of
    the epochs, and the last."""
    marks = {max(1, epochs // 10), epochs}
    for scale in (1, 10, 100, 1000, 10000):
        marks.update(m * scale for m in (1, 2, 5) if m * scale < epochs)
    return sorted(marks)


def half_mse(net, x, t, top):
    """Mean squared error (out − t)² of the test points of each half: (upper, lower); NaN for a
    net that diverged (common.diverged)."""
    if diverged(net, x):
        return float("nan"), float("nan")
    err = (np.asarray(net.predict(x), dtype=np.float64)[:, 0] - t) ** 2
    return float(err[top == 1].mean()), float(err[top == 0].mean())


def run_model(model, seed, width, depth, n_train, n_test, epochs, lr, batch, low, high, grid):
    x, t, _ = circle(n_train, derive_seed("circle-train", seed), low, high)
    xt, tt, _ = circle(n_test, derive_seed("circle-test", seed), low, high)
    top = (xt[:, 1] > 0).astype(np.int32)  # 1 = upper (low-frequency) half
    regime = "relu" if model == RELU else "dlgn_pwc"
    hidden = [width] * (depth - 1)
    with gn.Network(2, hidden, 1, regime, bias=True, seed=derive_seed("halfspaces", model, seed)) as net:
        if model == FROZEN:
            net.freeze("feature")
        curve = [(0, *half_mse(net, xt, tt, top))]
        for mark in checkpoints(epochs):
            train(net, x, t, mark - net.epochs_trained, f"{model} seed {seed}", batch_size=batch, lr=lr,
                  loss="squared", shuffle_seed=derive_seed("shuffle", seed))
            curve.append((mark, *half_mse(net, xt, tt, top)))
        early = next(c for c in curve if c[0] == max(1, epochs // 10))
        setting = f"circle f={low}/{high}"
        if diverged(net, xt):  # every number of the run is NaN: the table and claims count it as diverged
            names = [TRAIN_LOSS, MSE_UP, MSE_LOW, EARLY, PATHS, LAST_TOP, FIRST_TOP]
            names += [COS_FIRST, COS_LAST] if model != RELU else []
            return {"model": model, "seed": seed, "train_loss": float("nan"), "curve": curve, "diverged": True,
                    "rows": [dict(setting=setting, model=model, seed=seed, metric=k, value=float("nan"))
                             for k in names]}
        train_loss = evaluate(net, x, t)["loss"]
        means, _counts = net.active_paths_by_group(xt, top, 2)
        means = np.asarray(means)
        out = {"model": model, "seed": seed, "train_loss": train_loss, "curve": curve,
               "paths_top": float(means[1]), "paths_bottom": float(means[0])}
        # gate of every neuron on the test points: share of neurons on mostly for the upper half
        prefer_top = []
        for layer in range(depth - 1):
            g = np.asarray(net.gates(xt, layer))
            prefer_top.append(float(np.mean(g[top == 1].mean(0) > g[top == 0].mean(0))))
        out["prefer_top"] = prefer_top
        s = np.linspace(-1.5, 1.5, grid, dtype=np.float32)
        gx, gy = np.meshgrid(s, s)
        out["grid"] = np.asarray(net.predict(np.stack([gx.ravel(), gy.ravel()], 1))).reshape(grid, grid).tolist()
        order = np.argsort(np.arctan2(xt[:, 1], xt[:, 0]) % (2 * math.pi))
        out["fit"] = np.asarray(net.predict(xt[order]))[:, 0].tolist()
        if model != RELU:
            planes, align = [], []
            for layer in range(depth - 1):
                normals, offsets = (np.asarray(a) for a in net.gate_hyperplanes(layer))
                planes.append({"normals": normals.tolist(), "offsets": offsets.tolist()})
                u = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
                c = np.abs(u @ u.T)
                align.append(float(c[~np.eye(len(u), dtype=bool)].mean()))
            out["hyperplanes"], out["alignment"] = planes, align
    metrics = {TRAIN_LOSS: train_loss, MSE_UP: curve[-1][1], MSE_LOW: curve[-1][2],
               EARLY: early[2] / max(early[1], 1e-300),
               PATHS: out["paths_top"] / max(out["paths_bottom"], 1e-300),
               LAST_TOP: prefer_top[-1], FIRST_TOP: prefer_top[0]}
    if model != RELU:
        metrics[COS_FIRST] = out["alignment"][0]
        metrics[COS_LAST] = out["alignment"][-1]
    out["rows"] = [dict(setting=setting, model=model, seed=seed, metric=k, value=float(v)) for k, v in metrics.items()]
    return out


def tasks(s, seeds, data):
    # the upper half is the low-frequency one: its names (MSE_UP, the claims) say so
    if s["low"] > s["high"]:
        raise ValueError(f"low={s['low']!r} > high={s['high']!r}: low is the upper half's frequency, high the lower "
                         "half's, and the upper half is the low-frequency one (swap them)")
    return [Task(f"{KEYS[m]}-s{seed}", run_model, dict(
        model=m, seed=seed, width=s["width"], depth=s["depth"], n_train=s["n_train"], n_test=s["n_test"],
        epochs=s["epochs"], lr=s["lr"], batch=s["batch"], low=s["low"], high=s["high"], grid=s["grid"]))
        for m in (RELU, DLGN, FROZEN) for seed in seeds]


def rows(results, s):
    """The runs' rows; those measured at the end of training carry the ``rise`` (verdicts.rise) of
    the run's test MSE (both halves), in decades: log10 of its fall over the last checkpoint
    interval (e.g. epochs 100 → 200)."""
    last, _ = plateau(s)
    out = []
    for run in results.values():
        fit = [-math.log10(max((up + low) / 2, 1e-300)) for _epoch, up, low in run["curve"]] if "curve" in run else None
        judged = iter(with_rise([row for row in run["rows"] if row["metric"] != EARLY], fit, last))
        out += [row if row["metric"] == EARLY else next(judged) for row in run["rows"]]
    return out


# ---- claims -------------------------------------------------------------------------------------
# Seed statistics against the noise band of their mean (experiments.verdicts.beyond: 2 standard
# errors of the seed-to-seed spread); ratios as log10; two numbers of one seed compared per seed
# (paired: the same net, or nets fitted to the seed's circle). Claims about trained nets are
# undecided while a compared net still learns: its test MSE fell by more than plateau_points
# decades (a factor 10^0.1 ≈ 1.26) over the last checkpoint interval. The early ratio is measured
# at a tenth of the epochs by design.

def _judge(res, s, label, parts, models, metric):
    """A claim made of ``parts`` [(outcome, text, sd)] about the nets of ``models`` measured by
    ``metric`` (None: at a fixed epoch, no learning precondition): its (status, detail)."""
    status = all_of(p[0] for p in parts)
    unmet, summary = unconverged(res, [(m, None) for m in models], s, metric) if metric else ([], "")
    sds = [p[2] for p in parts]
    detail = f"{label}: " + "; ".join(p[1] for p in parts) + (f"; {summary}" if summary else "")
    return conclude(UNDECIDED if unmet else status, detail, unmet, None if None in sds else max(sds))


def feature_learning_helps(res, s):
    ratios = differences(res, (DLGN, TRAIN_LOSS, None), (FROZEN, TRAIN_LOSS, None), ratio=True)
    outcome, text, sd = beyond(ratios, 1.0, s, below=True, log=True)
    return _judge(res, s, f"train loss: DLGN-PWC {res.mean(DLGN, TRAIN_LOSS):.4f} vs gating frozen "
                  f"{res.mean(FROZEN, TRAIN_LOSS):.4f}", [(outcome, f"learning / frozen per seed (paired) {text}", sd)],
                  (DLGN, FROZEN), TRAIN_LOSS)


def _ratio_above_one(res, s, metric, label, judged_at):
    """The mean of ``metric`` (a ratio, as log10) above 1 for both the ReLU net and the DLGN-PWC."""
    parts = []
    for model in (RELU, DLGN):
        outcome, text, sd = beyond(res.values(model, metric), 1.0, s, log=True)
        parts.append((outcome, f"{model} {text}", sd))
    return _judge(res, s, label, parts, (RELU, DLGN), judged_at)


def easy_half_first(res, s):
    return _ratio_above_one(res, s, EARLY, "test MSE lower / upper half at a tenth of the epochs", None)


def paths_prefer_easy_half(res, s):
    return _ratio_above_one(res, s, PATHS, "active paths upper/lower half", PATHS)


def last_layer_on_easy_half(res, s):
    share = beyond(res.values(DLGN, LAST_TOP), 0.5, s)
    shift = beyond(differences(res, (DLGN, LAST_TOP, None), (DLGN, FIRST_TOP, None)), 0.0, s)
    return _judge(res, s, f"DLGN-PWC neurons on mostly in the upper half: last layer {res.mean(DLGN, LAST_TOP):.2f}, "
                  f"first layer {res.mean(DLGN, FIRST_TOP):.2f}",
                  [(share[0], f"last layer {share[1]}", share[2]),
                   (shift[0], f"last − first per seed (paired) {shift[1]}", shift[2])], (DLGN,), LAST_TOP)


def later_layers_cluster(res, s):
    outcome, text, sd = beyond(differences(res, (DLGN, COS_LAST, None), (DLGN, COS_FIRST, None)), 0.0, s, digits=3)
    return _judge(res, s, f"mean |cos| between normals: first layer {res.mean(DLGN, COS_FIRST):.3f}, last layer "
                  f"{res.mean(DLGN, COS_LAST):.3f}", [(outcome, f"last − first per seed (paired) {text}", sd)],
                  (DLGN,), COS_LAST)


def plots(results, rows, s, out_dir):
    from gatednet.experiments.plotting import pyplot, save
    plt = pyplot()
    if plt is None:
        return []
    by = {(r["model"], r["seed"]): r for r in results.values()}
    seed = min(k[1] for k in by)
    files = []
    x, t, theta = circle(s["n_test"], derive_seed("circle-test", seed), s["low"], s["high"])
    # hyperplanes of every DLGN-PWC layer, trained and frozen-at-init
    for model in (DLGN, FROZEN):
        r = by[(model, seed)]
        layers = r["hyperplanes"]
        fig, axes = plt.subplots(1, len(layers), figsize=(2.6 * len(layers), 2.8))
        for layer, (ax, p) in enumerate(zip(np.atleast_1d(axes), layers)):
            ax.scatter(x[:, 0], x[:, 1], c=t, s=3, cmap="coolwarm", vmin=-1, vmax=1)
            u = np.linspace(-1.5, 1.5, 2)
            for (a, b), c in zip(p["normals"], p["offsets"]):
                if abs(b) > abs(a):
                    ax.plot(u, -(a * u + c) / b, lw=0.7, color="k", alpha=0.6)
                else:
                    ax.plot(-(b * u + c) / (a if a else 1e-12), u, lw=0.7, color="k", alpha=0.6)
            ax.set_xlim(-1.5, 1.5)
            ax.set_ylim(-1.5, 1.5)
            ax.set_aspect("equal")
            ax.set_title(f"layer {layer + 1}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(f"{model}: effective hyperplanes <u, x> + c = 0 of every gating neuron (seed {seed})",
                     fontsize=10)
        files.append(save(fig, out_dir, f"hyperplanes_{KEYS[model]}.png"))
    models = [m for m in (RELU, DLGN, FROZEN) if (m, seed) in by]
    # learnt function on the plane, the target on the circle
    fig, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models), 3.2))
    for ax, m in zip(np.atleast_1d(axes), models):
        g = np.asarray(by[(m, seed)]["grid"])
        ax.imshow(g, origin="lower", extent=(-1.5, 1.5, -1.5, 1.5), cmap="coolwarm", vmin=-1.5, vmax=1.5)
        ax.scatter(x[:, 0], x[:, 1], c=t, s=2, cmap="coolwarm", vmin=-1, vmax=1, edgecolors="none")
        c = by[(m, seed)]["curve"][-1]
        ax.set_title(f"{m}\ntest MSE upper {c[1]:.3g}, lower {c[2]:.3g}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    files.append(save(fig, out_dir, "regions.png"))
    # the fit along the circle (Figure 5)
    order = np.argsort(theta % (2 * math.pi))
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(theta[order], t[order], color="k", lw=1.5, label="target sin(f θ)")
    for m in models:
        ax.plot(theta[order], by[(m, seed)]["fit"], lw=0.9, label=m)
    ax.axvline(math.pi, color="gray", lw=0.5)
    ax.set_xlabel("θ (upper half: 0 … π, lower half: π … 2π)")
    ax.legend(fontsize=7)
    files.append(save(fig, out_dir, "fit.png"))
    # each half's test MSE over training, mean over seeds
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for m, color in zip(models, ("C0", "C1", "C2")):
        curves = np.array([by[(mm, sd)]["curve"] for (mm, sd) in by if mm == m])
        mean = curves.mean(axis=0)
        ep = np.maximum(mean[:, 0], 0.5)  # epoch 0 drawn at 0.5 on the log axis
        ax.plot(ep, mean[:, 1], color=color, marker="o", ms=3, label=f"{m}, upper")
        ax.plot(ep, mean[:, 2], color=color, marker="o", ms=3, ls="--", label=f"{m}, lower")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("epoch (0 drawn at 0.5)")
    ax.set_ylabel("test MSE")
    ax.legend(fontsize=6)
    files.append(save(fig, out_dir, "mse_per_half.png"))
    # clustering of later layers: share of neurons on mostly in the upper half, per layer
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for m in models:
        shares = np.mean([by[(m, sd)]["prefer_top"] for (mm, sd) in by if mm == m], axis=0)
        ax.plot(np.arange(1, len(shares) + 1), shares, marker="o", label=m)
    ax.axhline(0.5, color="gray", lw=0.5)
    ax.set_xlabel("layer")
    ax.set_ylabel("neurons on mostly in the upper half")
    ax.legend(fontsize=7)
    files.append(save(fig, out_dir, "layer_preference.png"))
    return files


# Still learning: the test MSE fell by more than 10^0.1 ≈ 1.26× over the last checkpoint interval.
_PLATEAU = dict(plateau_epochs=1, plateau_points=0.1, plateau_unit="decades of test-MSE fall",
                plateau_span="checkpoint interval")
RECIPE = Recipe(
    name="dlgn-halfspaces",
    # 2: a run that diverged gives NaN values (experiments.common), not the accuracy of NaN scores
    version=2,
    title="DLGN gating neurons as half-spaces on a 2-D circle regression: hyperplanes, fit per half, "
          "later-layer clustering",
    paper="Half-Space Feature Learning in Neural Networks",
    reproduces="§4, Figures 2, 3, 5 and 6",
    paper_dataset="2-D circle regression (low / high frequency halves)",
    dataset="2-D circle (synthetic, real-valued target sin(f θ), f = 2 / 12)",
    sizes={
        "smoke": dict(seeds=1, width=16, depth=6, n_train=300, n_test=300, epochs=15, lr=1e-3, batch=32,
                      low=2, high=12, grid=40, **_PLATEAU),
        "quick": dict(seeds=3, width=16, depth=6, n_train=1000, n_test=1000, epochs=200, lr=1e-3, batch=32,
                      low=2, high=12, grid=100, **_PLATEAU),
        "paper": dict(seeds=5, width=16, depth=6, n_train=1000, n_test=1000, epochs=2000, lr=1e-3, batch=32,
                      low=2, high=12, grid=150, **_PLATEAU),
    },
    tasks=tasks,
    rows=rows,
    claims=[
        Claim("Feature learning helps: a DLGN whose gating learns fits better than one with gating frozen "
              "at initialisation", feature_learning_helps),
        Claim("The low-frequency (upper) half is learnt first: early in training its test MSE is below the "
              "high-frequency half's", easy_half_first),
        Claim("More paths are active on the low-frequency (upper) half than on the high-frequency half",
              paths_prefer_easy_half),
        Claim("Most last-layer DLGN neurons become active mostly in the upper (low-frequency) half, "
              "more than in the first layer", last_layer_on_easy_half),
        Claim("Later-layer DLGN neurons cluster: their half-space normals are more aligned than the "
              "first layer's", later_layers_cluster),
    ],
    paper_results=[
        dict(setting="circle f=2/12", model=DLGN, metric=LAST_TOP, text="3 of 4 shown (Fig. 6)"),
        dict(setting="circle f=2/12", model=DLGN, metric=PATHS, text="> 1 (Fig. 3c)"),
        dict(setting="circle f=2/12", model=DLGN, metric=EARLY,
             text="> 1 (Fig. 5: upper half learnt in a few epochs, lower > 100)"),
    ],
    plots=plots,
    notes="""The paper shows pictures rather than numbers, so its column holds the qualitative statements.
MSE is the mean of (output − target)² over the test points of one half; the train loss is the
squared loss 0.5·(output − target)² averaged over the training points. A verdict is "undecided" when a
compared net is still learning (its test MSE fell by more than 10^0.1 ≈ 1.26× over the last checkpoint
interval, e.g. epochs 100 → 200), or when the mean over seeds ± its noise band (2 standard errors; not
measured with 1 seed) straddles the threshold; ratios are judged as log10.""",
)
