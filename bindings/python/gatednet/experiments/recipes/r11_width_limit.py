"""width-limit — "Neural Path Features in Deep Learning", §3–4 (infinite width, Theorem 4.1).

Setup: (a) for fixed random gates (Gaussian feature weights, no bias) the finite-width normalised
NPK Σ ⊙ Π_l G_l G_lᵀ / w converges to its infinite-width limit (arc-cosine recursion,
``Network.npk_limit``) as the width w grows; we plot the relative Frobenius error against w on a
log-log scale (Monte Carlo: slope ≈ −1/2), each point the mean over several random nets
(the error of one net is noisy: inputs with non-negative pixels are strongly correlated, so the
fraction of active gates in a layer, shared by every entry, dominates it). (b) Kernel ridge regression with the limiting NPK
against DGNs with fixed random gates (FRNPF-II) of growing width trained on the same images:
by Theorem 4.1 the fixed-NPF learner is tied to its NPK as w → ∞.

Fashion-MNIST test images (kernel part) and training subsets replace MNIST. ``paper``: depth 6,
widths 16..4096, 500 points for (a); 10,000 training images for (b) (a 10,000² limit kernel and
its Cholesky: ~1 GB of float64), nets of width up to 2048 trained 10 epochs, 5 seeds. Run time
(46 tasks), measured by ``python -m gatednet.experiments run width-limit --size paper --probe
--probe-steps 5`` (2026-11-28, 2 cores shared with other jobs at a load average of 16–17;
RESULTS-papers-probe.md): 2.3 hours serial at that load (an upper bound), 19 minutes with both
cores busy (the idle-machine figure); the width-2048 nets take ~21 min each at that load, the
kernel ridge task ~8 min, the width-4096 NPKs ~3 min per seed.

``quick``: depth 4, NPK widths 16..1024 on 200 test images (6 nets per seed), nets of width 32, 128
and 512 trained on 3,000 images for 30 epochs, Adam 3e-4 with a per-epoch cosine decay of the
step (the paper states no schedule; ``paper`` keeps a constant step), 6 seeds. Epochs needed,
measured (2026-11-28) with a constant step (commit 0cf57a5, before the schedule: ``--set
epochs=30 --seeds 5``, stopped after the width-32 and width-128 nets): the width-32 nets rise by ≤ 1 point over 2 epochs
only from ~epoch 21 on and still jump above it later (+1.4 at epoch 26: epoch-to-epoch noise of the
constant step), the width-128 nets from epoch 11. With the cosine decay over 30 epochs every net's
rise over its last 2 epochs is ≤ 0.1 point. CPU time of one ``quick`` run: 183 s user+sys
(``/usr/bin/time -v python -m gatednet.experiments run width-limit --size quick``, 2 cores shared
with other jobs at a load average of ~10; 13 min wall).
"""
from __future__ import annotations

import numpy as np

import gatednet as gn
from gatednet.experiments import Claim, Recipe, Task
from gatednet.experiments import data as D
from gatednet.experiments.common import accuracy, check_choices, derive_seed, report, scores_accuracy
from gatednet.experiments.recipes._conv import SCHEDULES, fit_curve
from gatednet.experiments.verdicts import (all_of, at_least, band, conclude, pair, plateau, pm, sample, spread,
                                           spread_text, unconverged, with_rise, within)

ERR = "relative NPK error ‖H_w − H_∞‖/‖H_∞‖"
ACC = "test accuracy %"
KRR, NET = "kernel ridge, limiting NPK", "fixed random gates (II)"


def _net(width):
    return f"{NET}, width {width}"


def _npk(width):
    return f"width {width}"


def kernel_error(data, seed, width, depth, n_points, draws):
    """Relative error of the normalised NPK of random gates, averaged over ``draws`` networks."""
    ds = D.load(data)
    x = np.ascontiguousarray(ds.x_test[:n_points])
    errs = []
    for draw in range(draws):
        with gn.Network(x.shape[1], [width] * (depth - 1), ds.classes, "fixed_random_ii",
                        seed=derive_seed("width-limit", seed, width, draw)) as net:
            h = np.asarray(net.npk(x, normalized=True), dtype=np.float64)
            lim = np.asarray(net.npk_limit(x), dtype=np.float64)
        errs.append(np.linalg.norm(h - lim) / np.linalg.norm(lim))
    err = float(np.mean(errs))
    report(f"NPK width {width} seed {seed}", accuracy=None)
    return [dict(setting="NPK convergence", model=_npk(width), seed=seed, metric=ERR, value=err, width=width)]


def kernel_ridge(data, depth, n_train, n_test, ridge_rel):
    ds = D.load(data)
    x, y = D.subset(ds.x_train, ds.y_train, n_train)
    xt, yt = D.subset(ds.x_test, ds.y_test, n_test)
    with gn.Network(x.shape[1], [64] * (depth - 1), ds.classes, "fixed_random_ii") as shape:  # the limit needs only the shape
        k = shape.npk_limit(x)
        kt = shape.npk_limit(xt, x)
    ridge = ridge_rel * float(np.trace(np.asarray(k))) / len(y)
    alpha, _used = gn.kernel_ridge_fit(k, gn.kernel_targets(y, ds.classes), ridge=ridge)
    acc = scores_accuracy(gn.kernel_ridge_predict(kt, alpha), yt)
    report(KRR, accuracy=acc / 100)
    return [dict(setting="accuracy", model=KRR, seed=0, metric=ACC, value=acc, width=float("inf"))]


def train_net(data, seed, width, depth, n_train, n_test, epochs, lr, batch, lr_schedule=None):
    """A fixed-random-gate net trained ``epochs`` epochs (``lr_schedule``: None, constant ``lr``;
    "cosine", a per-epoch cosine decay from ``lr``, _conv.fit_curve): its row and test curve."""
    ds = D.load(data)
    x, y = D.subset(ds.x_train, ds.y_train, n_train)
    xt, yt = D.subset(ds.x_test, ds.y_test, n_test)
    with gn.Network(x.shape[1], [width] * (depth - 1), ds.classes, "fixed_random_ii",
                    seed=derive_seed("width-limit net", seed, width)) as net:
        c = fit_curve(net, x, y, epochs, f"FR-II width {width} seed {seed}", (xt, yt), lr_schedule=lr_schedule,
                      batch_size=batch, lr=lr, shuffle_seed=derive_seed("shuffle", seed))
        acc = accuracy(net, xt, yt)
    return {"rows": [dict(setting="accuracy", model=_net(width), seed=seed, metric=ACC, value=acc, width=width)],
            "curve": c}


def tasks(s, seeds, data):
    check_choices("lr_schedule", [s.get("lr_schedule")], SCHEDULES)
    out = [Task(f"npk-w{w}-s{seed}", kernel_error, dict(data=data, seed=seed, width=w, depth=s["depth"],
                                                          n_points=s["n_points"], draws=s["draws"]))
           for w in s["kernel_widths"] for seed in seeds]
    out.append(Task("krr", kernel_ridge, dict(data=data, depth=s["depth"], n_train=s["n_train"],
                                              n_test=s["n_test"], ridge_rel=s["ridge_rel"])))
    out += [Task(f"net-w{w}-s{seed}", train_net, dict(data=data, seed=seed, width=w, depth=s["depth"],
                                                      n_train=s["n_train"], n_test=s["n_test"], epochs=s["epochs"],
                                                      lr=s["lr"], batch=s["batch"],
                                                      lr_schedule=s.get("lr_schedule")))
            for w in s["net_widths"] for seed in seeds]
    return out


def rows(results, s):
    """The tasks' rows; a trained net's carry the ``rise`` (verdicts.rise) of its test-accuracy curve."""
    last, _ = plateau(s)
    out = []
    for key, result in results.items():
        if isinstance(result, dict):
            out += with_rise(result["rows"], result["curve"], last)
        elif key.startswith("net-"):  # stored before the curves were kept
            out += with_rise(result, None, last)
        else:  # the NPK error and the kernel ridge: nothing trained
            out += result
    return out


def _errors(res, s):
    widths = s["kernel_widths"]
    return widths, [res.mean(_npk(w), ERR, "NPK convergence") for w in widths]


# ---- claims -------------------------------------------------------------------------------------
# The unit of replication is the seed (each seed's error is already the mean over ``draws`` nets).
# Errors of two widths are compared as two groups (experiments.verdicts.pair: difference of means
# outside the noise band of the seed-to-seed spread pooled over the two); the rate by each seed's
# own log-log slope (mean ± its band); the NPK needs no training, so no learning precondition.
# The trained nets' accuracies are judged like the other FC recipes' (noise band, still learning);
# kernel ridge is deterministic (one solve, no seed).

def _two_widths(s, key):
    """(None, why) when the setting ``key`` lists fewer than two widths (e.g. --set
    "kernel_widths=[16]"): a claim about growing width is then not tested; else None."""
    if len(s[key]) < 2:
        return None, f"needs at least two {key} to compare, got {list(s[key])}"
    return None


def error_shrinks(res, s):
    untested = _two_widths(s, "kernel_widths")
    if untested:
        return untested
    widths, errs = _errors(res, s)
    outcomes, parts, sds = [], [], []
    for w0, w1 in zip(widths, widths[1:]):
        a, b = (_npk(w0), "NPK convergence"), (_npk(w1), "NPK convergence")
        sd, df = spread(res, [a, b], ERR)
        outcome, d, u, _unmet, _summary = pair(res, s, a, b, at_least, 0.0, sd, ERR)
        outcomes.append(outcome)
        sds.append(sd)
        parts.append(f"{w0} → {w1}: {res.mean(a[0], ERR, a[1]):.4f} − {res.mean(b[0], ERR, b[1]):.4f} = "
                     f"{d:+.4f} {pm(u, 4)} ({spread_text(sd, df, digits=4)})")
    return conclude(all_of(outcomes), f"mean error over {s['draws']} nets per seed, {s['seeds']} seeds; fall at each "
                    "step of width > 0? " + "; ".join(parts), [], None if None in sds else max(sds))


def _slope(widths, errs):
    return float(np.polyfit(np.log(widths), np.log(errs), 1)[0])


def monte_carlo_rate(res, s):
    lo, hi = s.get("rate_window", (-0.7, -0.3))
    untested = _two_widths(s, "kernel_widths")
    if untested:
        return untested
    widths, errs = _errors(res, s)
    slopes = []
    for seed in res.seeds(setting="NPK convergence"):
        slopes.append(_slope(widths, [res.mean(_npk(w), ERR, "NPK convergence", seed=seed) for w in widths]))
    mean, u, sd, df = sample(slopes, s)
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    return conclude(within(mean - centre, half, u),
                    f"log-log slope of the mean errors {_slope(widths, errs):.3f}; per seed "
                    + ", ".join(f"{v:.3f}" for v in slopes) + f": mean {mean:.3f} {pm(u, 3)} in [{lo}, {hi}] "
                    f"(≈ −1/2)? ({spread_text(sd, df, pooled=False, digits=3)})", [], sd)


def nets_approach_kernel(res, s):
    untested = _two_widths(s, "net_widths")
    if untested:
        return untested
    krr = res.mean(KRR, ACC, "accuracy")
    ws = s["net_widths"]
    narrow, wide = (_net(ws[0]), "accuracy"), (_net(ws[-1]), "accuracy")
    means = {w: res.mean(_net(w), ACC, "accuracy") for w in ws}
    sd, df = spread(res, [narrow, wide], ACC)
    listed = ", ".join(f"{w}: {abs(m - krr):.2f}" for w, m in means.items())
    if krr >= max(means[ws[0]], means[ws[-1]]):
        # both below the kernel: closer is higher, and a net still learning can only rise
        outcome, d, u, unmet, summary = pair(res, s, wide, narrow, at_least, 0.0, sd, ACC)
        how = f"both below it, so closer = higher: widest − narrowest = {d:+.2f} {pm(u)} > 0?"
    else:
        d = abs(means[ws[0]] - krr) - abs(means[ws[-1]] - krr)
        u = band(res, wide, narrow, sd, s, ACC)
        outcome = at_least(d, 0.0, u)
        unmet, summary = unconverged(res, [narrow, wide], s, ACC)
        how = f"|narrowest − kernel| − |widest − kernel| = {d:+.2f} {pm(u)} > 0?"
    return conclude(outcome, f"kernel ridge {krr:.2f} (deterministic); |net − kernel| by width: {listed}; {how} "
                    f"{spread_text(sd, df)}; {summary}", unmet, sd)


def plots(results, rows, s, out_dir):
    from gatednet.experiments.plotting import pyplot, save
    from gatednet.experiments.recipe import Results
    plt = pyplot()
    if plt is None:
        return []
    res = Results(rows)
    widths, errs = _errors(res, s)
    stds = [res.std(_npk(w), ERR, "NPK convergence") for w in widths]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].errorbar(widths, errs, yerr=stds, marker="o", capsize=3, label="measured")
    ref = errs[0] * (np.asarray(widths, float) / widths[0]) ** -0.5
    axes[0].plot(widths, ref, "--", color="gray", label="∝ w^(−1/2)")
    axes[0].set_xscale("log", base=2)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("width w")
    axes[0].set_ylabel("‖H_w − H_∞‖_F / ‖H_∞‖_F")
    axes[0].set_title(f"normalised NPK of random gates, depth {s['depth']}")
    axes[0].legend(fontsize=8)
    ws = s["net_widths"]
    means = [res.mean(_net(w), ACC, "accuracy") for w in ws]
    sd = [res.std(_net(w), ACC, "accuracy") for w in ws]
    axes[1].errorbar(ws, means, yerr=sd, marker="o", capsize=3, label=NET)
    axes[1].axhline(res.mean(KRR, ACC, "accuracy"), color="C3", ls="--", label=KRR)
    axes[1].set_xscale("log", base=2)
    axes[1].set_xlabel("width w")
    axes[1].set_ylabel("test accuracy (%)")
    axes[1].set_title(f"{s['n_train']} training images")
    axes[1].legend(fontsize=8)
    return [save(fig, out_dir, "width_limit.png")]


RECIPE = Recipe(
    name="width-limit",
    # 2: a run that diverged gives NaN values (experiments.common), not the accuracy of NaN scores
    version=2,
    title="Finite-width NPK of random gates → its infinite-width limit; kernel ridge vs nets of growing width",
    paper="Neural Path Features in Deep Learning",
    reproduces="§3–4, Theorem 4.1 (infinite width)",
    paper_dataset="MNIST",
    sizes={
        "smoke": dict(seeds=1, depth=3, kernel_widths=[16, 256], n_points=60, draws=3, net_widths=[16, 128],
                      n_train=600, n_test=300, epochs=2, lr=1e-3, batch=32, ridge_rel=1e-3, lr_schedule="cosine"),
        "quick": dict(seeds=6, depth=4, kernel_widths=[16, 64, 256, 1024], n_points=200, draws=6,
                      net_widths=[32, 128, 512], n_train=3000, n_test=2000, epochs=30, lr=3e-4, batch=32,
                      ridge_rel=1e-3, lr_schedule="cosine"),
        "paper": dict(seeds=5, depth=6, kernel_widths=[16, 64, 256, 1024, 4096], n_points=500, draws=10,
                      net_widths=[32, 128, 512, 2048], n_train=10000, n_test=10000, epochs=10, lr=3e-4, batch=32,
                      ridge_rel=1e-3),
    },
    tasks=tasks,
    rows=rows,
    claims=[
        Claim("The finite-width normalised NPK of random gates converges to the limit as width grows "
              "(error falls at every 4× step of width)", error_shrinks),
        Claim("It converges at the Monte Carlo rate, error ∝ w^(−1/2) (each seed's log-log slope; their mean "
              "in [−0.7, −0.3])", monte_carlo_rate),
        Claim("Fixed-random-gate nets get closer to kernel ridge with the limiting NPK as width grows",
              nets_approach_kernel),
    ],
    paper_results=[],
    plots=plots,
    notes="""The paper states the limit (Theorem 4.1, §4.2) without a figure or numbers; this recipe is a
check of the theory on real images. Kernel ridge uses a small ridge (1e-3 × mean diagonal). A verdict is
"undecided" when a difference ± its noise band (2 standard errors of the seed-to-seed spread; not measured
with 1 seed) straddles the threshold, or when a compared net still rose by more than `plateau_points` (1)
over its last `plateau_epochs` (2) epochs or ran fewer than twice that.""",
)
