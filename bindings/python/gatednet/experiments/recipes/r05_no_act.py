"""no-act — "Duality simplifies deep neural networks with ReLUs", §5 and Figure 7.

Setup (paper §5): DGN-No-Act — the feature net of a standard architecture with its ReLUs
removed (identity activations: its features are convolutions and pooling only), gates
σ(β q) with β = 10 from its pre-activations, and the value net of the same architecture with
the ReLUs replaced by those gates (GaLU). Compared with the ReLU net of the same architecture,
for VGG19 and for a ResNet (DavidNet); the paper reports more than 90 % test accuracy on CIFAR-10
for both DGN-No-Acts (Figure 7, 5 runs, best of each run). SGD with momentum 0.9: VGG19 lr 0.1
(0.01 for the first 400 steps, ×0.1 at steps 32k and 48k), batch 128, 32 epochs; DavidNet lr 0.4,
batch 512 (with batch norm and weight decay 5e-4 in the paper's code).

In the library DGN-No-Act is the "dlgn" regime (identity feature activation, soft gates β = 10)
of the named architectures "vgg19" and "davidnet" (max pooling between stages is a stride-2
conv, no batch norm). Without batch norm the paper's step sizes diverge, so ``smoke`` and
``paper`` use SGD lr 0.01, momentum 0.9 (``paper`` at a constant rate), ``quick`` 3e-3.
Fashion-MNIST (28×28×1) replaces CIFAR-10.
``paper``: full width, 60,000 images, 32 epochs, batch 128, 5 seeds. Run time (20 tasks), measured
by ``python -m gatednet.experiments run no-act --size paper --probe --probe-steps 5`` (2026-11-28,
2 cores shared with other jobs at a load average of 15–19; RESULTS-papers-probe.md): 37 days serial
at that load (an upper bound), 5.3 days with both cores busy (the idle-machine figure); the longest
task (VGG19 DGN-No-Act) ~3.5 days at that load. Beyond one machine: send the 20 tasks to a Dask
cluster with ``--scheduler ADDRESS`` (README, "On several machines").
``quick``: width × 1/16 (VGG19 4–32 channels, DavidNet 4–32), 1,000 training and 1,000 test
images, 32 epochs, SGD 3e-3 (momentum 0.9, batch 16) with a per-epoch cosine decay, 2 seeds.
Measured (2026-11-28): the VGG19 DGN-No-Act net diverged (loss nan) at lr 0.01 (epoch 16 of 24,
seed 0) and at 5e-3 (epoch 14 of 32, seed 1); at 3e-3 no run diverged and after 32 epochs every
net rose ≤ 0.6 points over its last 2 epochs except the VGG19 No-Act (+1.25, epoch-to-epoch jumps
of up to 30 points until the decay's last third). CPU time (user + sys) of ``python -m
gatednet.experiments run no-act --size quick --workers 2``: ≈ 545 s (RESULTS-papers-conv.md). The
old ``quick`` (2,000 images × 4 epochs at a constant 0.01, 109 s) left the VGG19 nets rising by
30–41 points.
"""
from __future__ import annotations

import gatednet as gn
from gatednet.experiments import UNDECIDED, Claim, Recipe, Task
from gatednet.experiments.common import check_choices, derive_seed
from gatednet.experiments.recipes._conv import check_fit
from gatednet.experiments.recipes._conv import (METRIC, all_of, at_least, best, conclude, fit_curve, images,
                                                pair, plateau, pm, rise, spread, spread_text)

ARCHS = {"VGG19": "vgg19", "ResNet (DavidNet)": "davidnet"}
RELU, NOACT = "ReLU", "DGN-No-Act"
REGIME = {RELU: "relu", NOACT: "dlgn"}


def run(data, arch, model, width_scale, seed, n_train, n_test, epochs, fit):
    """One net of Figure 7: its best test accuracy and the curve."""
    x, y, xt, yt, shape, classes = images(data, n_train, n_test)
    fit = dict(fit, shuffle_seed=derive_seed("shuffle", seed))
    with gn.ConvNetwork.named(ARCHS[arch], shape, classes, width_scale=width_scale, regime=REGIME[model],
                              seed=derive_seed("no-act", arch, model, seed)) as net:
        curve = fit_curve(net, x, y, epochs, f"{arch} {model} seed {seed}", (xt, yt), **fit)
    return {"rows": [dict(setting=arch, model=model, seed=seed, metric=METRIC, value=best(curve))],
            "curve": curve, "arch": arch, "model": model, "seed": seed}


def tasks(s, seeds, data):
    check_fit(s["fit"])
    check_choices("archs", s["archs"], list(ARCHS))
    return [Task(f"{ARCHS[arch]}-{REGIME[model]}-s{seed}", run, dict(
        data=data, arch=arch, model=model, width_scale=s["width_scale"], seed=seed, n_train=s["n_train"],
        n_test=s["n_test"], epochs=s["epochs"], fit=s["fit"]))
        for seed in seeds for arch in s["archs"] for model in (RELU, NOACT)]


def rows(results, s):
    """The runs' rows with the ``rise`` (_conv.rise) of their curves."""
    last, _ = plateau(s)
    return [dict(r, rise=rise(run_["curve"], last)) for run_ in results.values() for r in run_["rows"]]


def no_act_close_to_relu(res, s):
    """Per architecture, No-Act ≥ ReLU − tol outside the noise band (spread pooled over the
    architecture's two models), judged against the nets still learning."""
    tol = s.get("tolerance_points", 3.0)
    outcomes, parts, unmet, spreads = [], [], [], []
    for arch in res.settings():
        sd, df = spread(res, [(NOACT, arch), (RELU, arch)])
        outcome, d, u, not_yet, summary = pair(res, s, (NOACT, arch), (RELU, arch), at_least, -tol, sd)
        outcomes.append(outcome)
        unmet += not_yet
        spreads.append(sd)
        parts.append(f"{arch}: ReLU {res.mean(RELU, METRIC, arch):.2f}, No-Act {res.mean(NOACT, METRIC, arch):.2f} "
                     f"(Δ = {d:+.2f} {pm(u)}; {spread_text(sd, df)}; {summary})")
    sd = None if any(v is None for v in spreads) else max(spreads)
    status = all_of(outcomes)
    return conclude(status, f"No-Act ≥ ReLU − {tol}? " + "; ".join(parts), unmet if status is UNDECIDED else [], sd)


CLAIMS = [
    Claim("A DGN whose feature net has no activations (DGN-No-Act) loses nothing against the ReLU "
          "net of the same architecture (at most 3 points below it; the paper: > 90 % on CIFAR-10 "
          "for VGG19 and DavidNet)", no_act_close_to_relu),
]

PAPER = [dict(setting=arch, model=NOACT, metric=METRIC, value=90.0, text="> 90") for arch in ARCHS]


def plots(results, rows_, s, out_dir):
    from gatednet.experiments.plotting import pyplot, save
    plt = pyplot()
    runs = [r for r in results.values() if isinstance(r, dict) and "curve" in r]
    if plt is None or not runs:
        return []
    archs = list(dict.fromkeys(r["arch"] for r in runs))
    fig, ax = plt.subplots(1, len(archs), figsize=(5 * len(archs), 3.5), sharey=True, squeeze=False)
    colours = {RELU: "C0", NOACT: "C3"}
    for j, arch in enumerate(archs):
        seen = set()
        for r in runs:
            if r["arch"] != arch:
                continue
            ax[0, j].plot(range(1, len(r["curve"]["test"]) + 1), r["curve"]["test"], color=colours[r["model"]],
                          label=None if r["model"] in seen else r["model"])
            seen.add(r["model"])
        ax[0, j].set_title(f"Figure 7: {arch} (Fashion-MNIST)", fontsize=9)
        ax[0, j].set_xlabel("epoch")
        ax[0, j].legend(fontsize=8)
    ax[0, 0].set_ylabel("test accuracy (%)")
    return [save(fig, out_dir, "figure7_no_act.png")]


_SGD = dict(optimizer="sgd", lr=0.01, momentum=0.9)
RECIPE = Recipe(
    name="no-act",
    # 2: a run that diverged gives NaN values (experiments.common), not the accuracy of NaN scores
    version=2,
    title="DGN-No-Act (feature net without activations) vs ReLU, VGG19- and ResNet-style",
    paper="Duality simplifies deep neural networks with ReLUs",
    reproduces="§5, Figure 7",
    paper_dataset="CIFAR-10",
    sizes={
        "smoke": dict(seeds=1, archs=list(ARCHS), width_scale=1 / 32, n_train=100, n_test=100, epochs=1,
                      fit=dict(_SGD, batch_size=32, lr_schedule="cosine")),
        "quick": dict(seeds=2, archs=list(ARCHS), width_scale=1 / 16, n_train=1000, n_test=1000, epochs=32,
                      fit=dict(_SGD, lr=3e-3, batch_size=16, lr_schedule="cosine")),
        "paper": dict(seeds=5, archs=list(ARCHS), width_scale=1.0, n_train=60000, n_test=10000, epochs=32,
                      fit=dict(_SGD, batch_size=128)),
    },
    tasks=tasks,
    rows=rows,
    claims=CLAIMS,
    paper_results=PAPER,
    plots=plots,
    notes="""Fashion-MNIST replaces CIFAR-10 and the nets have no batch norm, so the paper's step sizes
(0.1 / 0.4) are replaced by 0.01 (`quick`: 3e-3 with a cosine decay). Figure 7's bar values are not
in the paper's text; the
table shows its "> 90 %" for the No-Act nets and the claim's 3-point margin is ours. `quick` runs the
architectures at 1/16 of their width on 1,000 images for 32 epochs with SGD 3e-3 and a cosine decay
(0.01 and 5e-3 diverged for the VGG19 No-Act net over this many steps), 2 seeds. A verdict is
"undecided" when a compared net still rose by more than `plateau_points` over its last `plateau_epochs`
epochs, or when No-Act − ReLU ± its noise band (2 standard errors of the seed-to-seed spread of that
architecture) straddles −3 points.""",
)
