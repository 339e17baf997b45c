"""gate-rotation — "Duality simplifies deep neural networks with ReLUs", §4.1 and Figure 5.

Setup (paper §4.1, "Robustness of Gates"): the C1–C4 DGN of Figure 4 (4 conv layers × 128
filters 3×3, GAP, dense output). The gates of the four layers are tiled into one tensor along
the filter dimension and rotated (rolled circularly) by random offsets in the filter and both
image dimensions, then cut back into four layers: value layer l is masked by gates that came
from anywhere in the feature net. The value net's input is all-ones. Ten independent runs of
"fixed learnt" gates (a ReLU net trained first, frozen) and of "decoupled learning" (soft gates
β = 10, both nets trained through the rotation); the paper reports 79.4 ± 0.2 and 79.0 ± 0.5 on
CIFAR-10 against the ReLU feature net's 80.4 ± 0.3 (Table 1). Figure 5 (right) shows, for one
image, the input and the first 2 filters' outputs of each layer: feature net on top, value net
(all-ones input, rotated gates) below. Adam 3e-4, batch 32.

The library's "tiled_rotated" wiring draws the offsets from ``wiring_seed`` (one draw per run).
Fashion-MNIST (28×28×1) replaces CIFAR-10. ``paper``: 128 filters, 10 runs, 60,000 images,
20 epochs (not given in the paper). Run time at ``paper`` size (20 tasks), measured by ``python -m
gatednet.experiments run gate-rotation --size paper --probe --probe-steps 5`` (2026-11-28, 2 cores
shared with other jobs at a load average of 17–18; RESULTS-papers-probe.md): 39 days serial at that
load (an upper bound), 5.6 days with both cores busy (the idle-machine figure); each task (a ReLU
net and its fixed learnt DGN, or a decoupled DGN) ~2 days at that load. Beyond one machine: send
the 20 tasks to a Dask cluster with ``--scheduler ADDRESS`` (README, "On several machines").
``quick`` (measured: 307 s of CPU time, 16.7 min wall on 2 cores at a load average of 15–19):
16 filters, 1,000 training and 1,000 test images, Adam 1e-2 with batch 16 and a per-epoch cosine
decay (the learning rate measured for conv-gates), the ReLU net 24 epochs and the value nets 12 —
the budget at which the conv-gates probe saw both stop rising — 2 runs. In the measured run both
ReLU nets settled (rise +0.15 / −0.10 points), one fixed-learnt and both decoupled nets still rose
by 1.05–1.7 points, and with 2 runs the noise band is ±2.1 points: both claims undecided.
"""
from __future__ import annotations

import numpy as np

import gatednet as gn
from gatednet.experiments import Claim, Recipe, Task
from gatednet.experiments.common import derive_seed, diverged, inherit_divergence
from gatednet.experiments.recipes._conv import check_fit
from gatednet.experiments.recipes._conv import (METRIC, best, c1_c4, conclude, fit_curve, hidden_maps, images,
                                                pair, plateau, pm, rise, spread, spread_text, within)

RELU, FL, DEC = "ReLU (feature net)", "fixed learnt, rotated, x^v = 1", "decoupled, rotated, x^v = 1"
MAP_CHANNELS = 2  # Figure 5: the first 2 filters of each layer


def run(data, column, filters, seed, n_train, n_test, epochs, fit, maps, plateau_epochs=2, relu_epochs=None):
    """One run: "learnt" trains the ReLU net (``relu_epochs``, default ``epochs``) and the
    fixed-learnt DGN on its rotated gates (and, with ``maps``, the hidden maps of the first test
    image); "decoupled" the decoupled DGN."""
    x, y, xt, yt, shape, classes = images(data, n_train, n_test)
    layers = c1_c4(filters, classes)
    fit = dict(fit, shuffle_seed=derive_seed("shuffle", seed))
    rotated = dict(wiring="tiled_rotated", wiring_seed=derive_seed("gate-rotation", seed, "offsets"),
                   value_input="ones")
    out = {"rows": []}

    def add(model, curve):
        out["rows"].append(dict(setting="", model=model, seed=seed, metric=METRIC, value=best(curve),
                                rise=rise(curve, plateau_epochs)))

    if column == "decoupled":
        with gn.ConvNetwork(layers, shape, "decoupled", seed=derive_seed("gate-rotation", seed, "dec"),
                            **rotated) as net:
            add(DEC, fit_curve(net, x, y, epochs, f"decoupled rotated seed {seed}", (xt, yt), **fit))
        return out
    with gn.ConvNetwork(layers, shape, "relu", seed=derive_seed("gate-rotation", seed, "relu")) as source:
        add(RELU, fit_curve(source, x, y, relu_epochs or epochs, f"ReLU seed {seed}", (xt, yt), **fit))
        with gn.ConvNetwork(layers, shape, "fixed_learnt", gate_source=source,
                            seed=derive_seed("gate-rotation", seed, "learnt"), **rotated) as net:
            inherit_divergence(net, source)
            add(FL, fit_curve(net, x, y, epochs, f"fixed learnt rotated seed {seed}", (xt, yt), **fit))
            if maps and not diverged(net):
                feature, value = hidden_maps(net, xt[0], layers, value_ones=True)
                out["maps"] = {"image": np.asarray(xt[0]).reshape(shape).tolist(),
                               "feature": [m[:, :, :MAP_CHANNELS].tolist() for m in feature],
                               "value": [m[:, :, :MAP_CHANNELS].tolist() for m in value]}
    return out


def tasks(s, seeds, data):
    check_fit(s["fit"])
    return [Task(f"{column}-s{seed}", run, dict(
        data=data, column=column, filters=s["filters"], seed=seed, n_train=s["n_train"],
        n_test=s["n_test"], epochs=s["epochs"], fit=s["fit"], maps=(column == "learnt" and seed == seeds[0]),
        plateau_epochs=plateau(s)[0], relu_epochs=s.get("relu_epochs")))
        for seed in seeds for column in ("learnt", "decoupled")]


def _close(res, s, a, b, what):
    """|mean(a) − mean(b)| ≤ tol outside the noise band, judged against the nets still learning."""
    tol = s.get("tolerance_points", 1.0)
    sd, df = spread(res, [(m, "") for m in (RELU, FL, DEC) if m in res.models()])
    outcome, d, u, unmet, summary = pair(res, s, (a, ""), (b, ""), within, tol, sd)
    return conclude(outcome, f"{what[0]} {res.mean(a, METRIC):.2f} vs {what[1]} {res.mean(b, METRIC):.2f} "
                    f"(|Δ| = {abs(d):.2f} {pm(u)} ≤ {tol}?) {spread_text(sd, df)}; {summary}", unmet, sd)


def learnt_matches_feature_net(res, s):
    return _close(res, s, RELU, FL, ("ReLU feature net", "fixed learnt rotated, all-ones"))


def decoupled_matches_learnt(res, s):
    return _close(res, s, FL, DEC, ("fixed learnt rotated", "decoupled rotated"))


CLAIMS = [
    Claim("Despite the arbitrary rotation of the gates and the all-ones input, the value net "
          "(fixed learnt gates) is within 1 point of the feature net's test accuracy",
          learnt_matches_feature_net),
    Claim("Gate learning need not be layer-by-layer: decoupled learning through rotated gates "
          "stays within 1 point of fixed learnt rotated gates (79.0 vs 79.4)", decoupled_matches_learnt),
]

PAPER = [dict(setting="", model=RELU, metric=METRIC, value=80.4, std=0.3),
         dict(setting="", model=FL, metric=METRIC, value=79.4, std=0.2),
         dict(setting="", model=DEC, metric=METRIC, value=79.0, std=0.5)]


def plots(results, rows_, s, out_dir):
    from gatednet.experiments.plotting import library_plot, pyplot, save
    plt = pyplot()
    maps = next((r["maps"] for r in results.values() if isinstance(r, dict) and "maps" in r), None)
    if plt is None or maps is None:
        return []
    image = np.asarray(maps["image"])
    feature = [np.asarray(m) for m in maps["feature"]]
    value = [np.asarray(m) for m in maps["value"]]
    plot = library_plot()
    title = "Figure 5: feature net (top) vs value net, all-ones input and rotated gates (bottom)"
    if plot is not None and hasattr(plot, "hidden_maps"):
        fig = plot.hidden_maps(feature, value, image=image, value_image=np.ones_like(image),
                               k=MAP_CHANNELS, title=title)
    else:  # the same picture without gatednet.plot
        cols = 1 + sum(min(MAP_CHANNELS, m.shape[2]) for m in feature)
        fig, ax = plt.subplots(2, cols, figsize=(1.3 * cols, 2.9), squeeze=False)
        for r, (first, row) in enumerate(((image, feature), (np.ones_like(image), value))):
            panels = [("input", first[:, :, 0])] + [
                (f"L{l} c{c}", m[:, :, c]) for l, m in enumerate(row) for c in range(min(MAP_CHANNELS, m.shape[2]))]
            for c, (name, p) in enumerate(panels):
                ax[r, c].imshow(p, cmap="gray", interpolation="nearest")
                ax[r, c].set_title(name, fontsize="small")
                ax[r, c].set_xticks([])
                ax[r, c].set_yticks([])
            ax[r, 0].set_ylabel(("feature net", "value net")[r])
        fig.suptitle(title, fontsize=9)
    return [save(fig, out_dir, "figure5_hidden_maps.png")]


_FIT_SMOKE = dict(optimizer="adam", lr=3e-3, batch_size=16, lr_schedule="cosine")
_FIT_QUICK = dict(optimizer="adam", lr=1e-2, batch_size=16, lr_schedule="cosine")  # as conv-gates (probed there)
RECIPE = Recipe(
    name="gate-rotation",
    # 2: a run that diverged gives NaN values (experiments.common), not the accuracy of NaN scores
    version=2,
    title="Tiling + rotation of conv gates with all-ones value input (fixed learnt, decoupled)",
    paper="Duality simplifies deep neural networks with ReLUs",
    reproduces="§4.1, Figure 5",
    paper_dataset="CIFAR-10",
    sizes={
        "smoke": dict(seeds=1, filters=2, n_train=100, n_test=100, epochs=1, fit=_FIT_SMOKE),
        "quick": dict(seeds=2, filters=16, n_train=1000, n_test=1000, epochs=12, relu_epochs=24, fit=_FIT_QUICK),
        "paper": dict(seeds=10, filters=128, n_train=60000, n_test=10000, epochs=20,
                      fit=dict(optimizer="adam", lr=3e-4, batch_size=32)),
    },
    tasks=tasks,
    claims=CLAIMS,
    paper_results=PAPER,
    plots=plots,
    notes="""Fashion-MNIST replaces CIFAR-10. The paper tiles 4 × 128 = 512 filters and rotates by up to
512 along filters and 32 along each image side; here the offsets span the tiled channels (4 × filters)
and 28 pixels. `quick` uses 16 filters, 1,000 training images, Adam 1e-2 (batch 16) with a cosine decay,
the ReLU net 24 epochs and the value nets 12, and 2 runs instead of 10. A verdict is "undecided" when a
compared net still rose by more than `plateau_points` over its last `plateau_epochs` epochs, or when the
difference ± its noise band (2 standard errors from the seed-to-seed spread pooled over the three rows)
straddles the 1-point tolerance. The ReLU row is the fixed-learnt runs' source net (1 per run). Figure 5's
picture is the first test image of the first run.""",
)
