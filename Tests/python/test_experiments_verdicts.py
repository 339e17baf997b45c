"""How claims are judged (gatednet.experiments.verdicts) and the FC recipes' claims on hand-made
rows whose answer is known: a difference well outside its noise band holds or fails, one whose
band straddles the threshold is undecided, and so is a claim about a net still learning. The conv
recipes import the same helpers through recipes/_conv.py, and their verdicts are unchanged."""
import math

import numpy as np
import pytest

import gatednet.experiments as ex
from gatednet.experiments import FAILS, HOLDS, UNDECIDED, UNTESTED, Results
from gatednet.experiments import verdicts as V
from gatednet.experiments.recipes import _conv
from gatednet.experiments.recipes import r01_fc_regimes as fc
from gatednet.experiments.recipes import r02_conv_gates as cg
from gatednet.experiments.recipes import r04_random_labels as rl
from gatednet.experiments.recipes import r06_nu_dynamics as nu
from gatednet.experiments.recipes import r08_dlgn_modified_fmnist as mf
from gatednet.experiments.recipes import r09_dlgn_halfspaces as hs
from gatednet.experiments.recipes import r10_npf_checkpoints as ck
from gatednet.experiments.recipes import r11_width_limit as wl

M = V.METRIC
# Groups of 2 seeds at mean ± J: sd of single runs √2·J, so the band of a difference of two such
# means is 2·√2·J·√(1/2 + 1/2) = 0.28 and the band of one mean against a threshold 2·√2·J/√2 = 0.2.
J = 0.1


def _group(setting, model, mean, rise=0.2, metric=M, seeds=2, **extra):
    offsets = [0.0] if seeds == 1 else np.linspace(-J, J, seeds)
    rows = [dict(setting=setting, model=model, seed=i, metric=metric, value=mean + o, **extra)
            for i, o in enumerate(offsets)]
    return [dict(r, rise=rise) for r in rows] if rise is not None else rows


def _statuses(recipe, rows, settings=None):
    return [c.evaluate(Results(rows), settings or {}).status for c in recipe.claims]


# ---- the helpers ----------------------------------------------------------------------------------

def test_conv_recipes_judge_with_the_same_helpers():
    for name in ("rise", "plateau", "unconverged", "spread", "band", "within", "at_least", "all_of", "pair",
                 "conclude", "spread_text", "pm", "METRIC"):
        assert getattr(_conv, name) is getattr(V, name), name


def test_conv_verdicts_unchanged_by_the_move():
    # detail texts recorded from the helpers as they were in recipes/_conv.py before the move
    def table(relu=72.3, rise_relu=0.2):
        out = []
        for model, base in ((cg.II, 60.0), (cg.DI, 60.5), (cg.DEC, 70.0), (cg.FL, 72.0)):
            out += _group(cg.ALL, model, base)
            out += sum((_group(c, model, base + (0.3 if j == 3 else 0.0)) for j, c in enumerate(cg.CLASSES)), [])
        return out + _group(cg.ALL, cg.RELU, relu, rise=rise_relu)
    v = [c.evaluate(Results(table(68.0, 5.0)), {}) for c in cg.CLAIMS]
    assert [x.status for x in v] == [HOLDS, HOLDS, UNDECIDED]
    assert v[1].detail == ("min(fixed learnt, decoupled) 70.00 − max(II, DI) 60.50 = +9.50 ± 0.28 ≥ 1.0? "
                           "seed-to-seed spread (sd of single runs, pooled) 0.14 (4 df); rise over the last 2 "
                           "epochs (converged ≤ 1.0): fixed learnt (average over wirings) +0.20, decoupled "
                           "(average over wirings) +0.20, fixed random II (average over wirings) +0.20, fixed "
                           "random DI (average over wirings) +0.20")
    assert v[2].detail == ("ReLU 68.00 vs fixed learnt 72.00 (|Δ| = 4.00 ± 0.28 ≤ 1.0?) seed-to-seed spread (sd "
                           "of single runs, pooled) 0.14 (2 df); rise over the last 2 epochs (converged ≤ 1.0): "
                           "ReLU (average over wirings) +5.00, fixed learnt (average over wirings) +0.20; undecided: "
                           "ReLU (average over wirings) still rising (+5.00 points over its last 2 epochs > 1.0)")
    g0 = rl.setting(0)
    rows = _group(g0, rl.M1B, 81.0, gamma=0) + _group(g0, rl.M3, 79.1, gamma=0)
    v = rl.CLAIMS[2].evaluate(Results(rows), {})
    assert v.status == UNDECIDED and v.detail == (
        "M1(0)-Best 81.00 − M3(0) 79.10 = +1.90 ± 0.28 < 2.0? seed-to-seed spread (sd of single runs, pooled) 0.14 "
        "(2 df); rise over the last 2 epochs (converged ≤ 1.0): M3 (γ = 0 %) +0.20, M1 Best (γ = 0 %) +0.20; "
        "undecided: the difference ± its noise band straddles the threshold")


def test_sample_beyond_and_paired_differences():
    mean, u, sd, df = V.sample([1.0, 2.0, 3.0], {})
    assert (mean, sd, df) == (2.0, 1.0, 2) and u == pytest.approx(2 / math.sqrt(3))
    assert V.sample([5.0], {}) == (5.0, None, None, 0)
    assert V.beyond([1.0, 1.2], 0.5, {})[0] is True                # 1.1 − 0.2 ≥ 0.5
    assert V.beyond([1.0, 1.2], 1.5, {})[0] is False
    assert V.beyond([1.0, 1.2], 1.2, {})[0] == UNDECIDED           # 1.1 ± 0.2 straddles 1.2
    assert V.beyond([1.0, 1.2], 1.5, {}, below=True)[0] is True
    assert V.beyond([1.0], 0.0, {})[0] == UNDECIDED                # no spread with 1 seed
    outcome, text, _sd = V.beyond([0.5, 0.5 * 1.01], 1.0, {}, below=True, log=True)
    assert outcome is True and "geometric mean 0.50" in text and "log10 -0.299" in text
    # paired by seed: a gain of 0.02 in every seed decides, whatever the spread between seeds
    res = Results([dict(model="n", metric="a", seed=0, value=0.30), dict(model="n", metric="a", seed=1, value=0.70),
                   dict(model="n", metric="b", seed=0, value=0.32), dict(model="n", metric="b", seed=1, value=0.72),
                   dict(model="n", metric="b", seed=2, value=9.0)])
    assert V.differences(res, ("n", "b", None), ("n", "a", None)) == pytest.approx([0.02, 0.02])
    assert V.differences(res, ("n", "b", None), ("n", "a", None), ratio=True) == pytest.approx([0.32 / 0.3, 0.72 / 0.7])
    with pytest.raises(ex.Missing):
        V.differences(res, ("n", "b", None), ("n", "c", None))


def test_rise_rows_and_stored_results_without_curves():
    assert V.rise([50, 60, 70, 71, 72, 72.5], 2) == pytest.approx(72.25 - 70.5)
    assert V.rise({"test": [1, 2]}, 1) == 1 and V.rise([1, 2, 3], 2) is None
    results = {"a": {"rows": [dict(model="x", metric=M, value=1.0)], "curves": {"x": {"test": [60, 70, 72, 72.5]}}},
               "b": [dict(model="y", metric=M, value=2.0)]}  # stored before the curves were kept
    rows = V.rows_with_rise(results, {})
    assert rows[0]["rise"] == pytest.approx(72.25 - 65) and rows[1]["rise"] is None and rows[1]["no_curve"]
    unmet, _ = V.unconverged(Results(rows), [("y", None)], {})
    assert unmet == ["y stored without its per-epoch curve, convergence not measurable"]
    s = {"plateau_epochs": 1, "plateau_points": 0.1, "plateau_unit": "decades", "plateau_span": "interval"}
    unmet, summary = V.unconverged(Results(rows), [("x", None)], s)
    assert summary == "rise over the last interval (converged ≤ 0.1): x +7.25"
    assert unmet == ["x still rising (+7.25 decades over its last interval > 0.1)"]


# ---- fc-regimes -----------------------------------------------------------------------------------

def _table4(relu=88.0, gl=87.5, ii=84.0, di=84.2, rl_=80.0, rp=79.0, rise=None, setting="Arch-1 Adam"):
    rise = rise or {}
    values = {fc.RELU: relu, fc.GL: gl, fc.II: ii, fc.DI: di, fc.RL: rl_, fc.RP: rp}
    return sum((_group(setting, m, v, rise=rise.get(m, 0.2)) for m, v in values.items()), [])


def test_fc_regimes_claims():
    rec = ex.get("fc-regimes")
    assert _statuses(rec, _table4()) == [HOLDS] * 4  # 0.5 + .28 ≤ 1; 3.3 ≥ 1; 0.2 + .28 ≤ 0.5; 4 and 5 > 0
    # |ReLU − GL| 3; 85 − 87.5 < 1; |II − DI| 3.5; RL, RP above random
    assert _statuses(rec, _table4(gl=85.0, ii=87.5, di=84.0, rl_=86.0, rp=85.0)) == [FAILS] * 4
    v = rec.claims[0].evaluate(Results(_table4(gl=87.2)), {})  # 0.8 ± 0.28 straddles 1
    assert v.status == UNDECIDED and "0.80 ± 0.28" in v.detail and "straddles" in v.detail
    assert _statuses(rec, _table4(di=84.4))[2] == UNDECIDED  # 0.4 ± 0.28 against 0.5
    assert _statuses(rec, _table4(rp=83.8))[3] == UNDECIDED  # 0.2 ± 0.28 against 0
    v = rec.claims[0].evaluate(Results(_table4(rise={fc.GL: 3.0})), {})
    assert v.status == UNDECIDED and "fixed learnt GL (Arch-1 Adam) still rising (+3.00" in v.detail
    # the learnt side still rising can only widen a margin that already holds
    v = rec.claims[1].evaluate(Results(_table4(rise={fc.GL: 3.0})), {})
    assert v.status == HOLDS and "cannot change the outcome" in v.detail
    assert _statuses(rec, _table4(rise={fc.II: 3.0}))[1] == UNDECIDED
    # every setting must hold; a failing one decides, an undecided one leaves it open and is named
    both = _table4() + _table4(gl=85.0, setting="Arch-2 SGD")
    assert _statuses(rec, both)[0] == FAILS
    v = rec.claims[0].evaluate(Results(_table4() + _table4(gl=87.2, setting="Arch-2 SGD")), {})
    assert v.status == UNDECIDED and "undecided: Arch-2 SGD: the difference ± its noise band straddles" in v.detail
    assert rec.claims[3].evaluate(Results(_table4()[:8]), {}).status == UNTESTED


# ---- nu-dynamics ----------------------------------------------------------------------------------

def _nu(falls=(0.5, 0.52), moved=(0.0, 0.0), init=(0.5, 0.6), end=(0.6, 0.7), relu_end=(100.0, 1000.0),
        control_end=(200.0, 2000.0)):
    out = []
    for seed in range(2):
        for model, metrics in ((nu.RELU, {"ν end / init": falls[seed], "top-5 eigenvalue share at init": init[seed],
                                          "top-5 eigenvalue share at end": end[seed], "ν at end": relu_end[seed]}),
                               (nu.CONTROL, {nu.MOVED: moved[seed], "ν at end": control_end[seed]})):
            out += [dict(setting="classes 4 vs 7", model=model, seed=seed, metric=k, value=v)
                    for k, v in metrics.items()]
    return out


def test_nu_dynamics_claims():
    rec, s = ex.get("nu-dynamics"), {"top_k": 5}
    # ν falls in both seeds; the control is constant; the share grows by 0.1 in each seed; ReLU / control
    # is 0.5 in each seed although ν itself differs tenfold between the seeds (paired by seed)
    assert _statuses(rec, _nu(), s) == [HOLDS] * 4
    assert _statuses(rec, _nu(falls=(1.2, 1.25), moved=(0.0, 1e-3), end=(0.45, 0.55), control_end=(90.0, 900.0)),
                     s) == [FAILS] * 4
    assert _statuses(rec, _nu(falls=(0.5, 1.5)), s)[0] == UNDECIDED
    assert _statuses(rec, _nu(end=(0.4, 0.8)), s)[2] == UNDECIDED  # gains −0.1, +0.2
    v = rec.claims[1].evaluate(Results(_nu()), s)
    assert "not a seed statistic" in v.detail
    rows = nu.rows({"control-s0": {"rows": [dict(setting="", model=nu.CONTROL, seed=0, metric="ν at end", value=8.0)],
                                   "curve": {"nu": [10.0, 9.0, 8.0]}}}, s)
    assert Results(rows).values(nu.CONTROL, nu.MOVED) == [pytest.approx(0.2)]


# ---- dlgn-modified-fmnist -------------------------------------------------------------------------

def _halves(end=1.5, low=1.4, gap=10.0, rise=0.2):
    out = []
    for m in (mf.RELU, mf.PWC):
        out += _group("", m, end, rise=rise, metric=mf.END_RATIO) + _group("", m, low, rise=rise, metric=mf.LOW_RATIO)
        out += _group("", m, gap, rise=None, metric=mf.GAP)
    return out


def test_dlgn_modified_fmnist_claims():
    rec = ex.get("dlgn-modified-fmnist")
    assert _statuses(rec, _halves()) == [HOLDS] * 3
    assert _statuses(rec, _halves(end=0.6, low=0.6, gap=-5.0)) == [FAILS] * 3
    assert _statuses(rec, _halves(end=1.02))[0] == UNDECIDED  # log10 1.02 = 0.009 ± 0.06
    # still learning: the end allocation may change; a ratio already below 1 at some epoch stays
    assert _statuses(rec, _halves(rise=3.0)) == [UNDECIDED, UNDECIDED, HOLDS]
    assert _statuses(rec, _halves(low=0.6, rise=3.0))[1] == FAILS
    results = {"relu-s0": {"rows": [dict(model=mf.RELU, metric=mf.END_RATIO, value=1.0),
                                    dict(model=mf.RELU, metric=mf.GAP, value=3.0)],
                           "curve": {"acc_easy": [10, 50, 60, 70, 72], "acc_hard": [10, 30, 40, 45, 46]}}}
    rows = mf.rows(results, {"plateau_epochs": 2})
    assert rows[0]["rise"] == pytest.approx(71 - 55) and "rise" not in rows[1]  # easy half: (70+72)/2 − (50+60)/2


# ---- dlgn-halfspaces ------------------------------------------------------------------------------

def _circle(train_dlgn=0.01, train_frozen=0.05, early=4.0, paths=1.8, last=0.75, first=0.5, cos_first=0.4,
            cos_last=0.7, rise=0.0):
    out = []
    for seed, jitter in enumerate((0.99, 1.01)):
        for model in (hs.RELU, hs.DLGN, hs.FROZEN):
            metrics = {hs.TRAIN_LOSS: train_frozen if model == hs.FROZEN else train_dlgn, hs.EARLY: early,
                       hs.PATHS: paths, hs.LAST_TOP: last, hs.FIRST_TOP: first, hs.COS_FIRST: cos_first,
                       hs.COS_LAST: cos_last}
            out += [dict(setting="circle f=2/12", model=model, seed=seed, metric=k, value=v * jitter,
                         **({} if k == hs.EARLY else {"rise": rise})) for k, v in metrics.items()]
    return out


def test_dlgn_halfspaces_claims():
    rec = ex.get("dlgn-halfspaces")
    s = rec.settings("quick")
    assert _statuses(rec, _circle(), s) == [HOLDS] * 5
    assert _statuses(rec, _circle(0.05, 0.01, 0.7, 0.8, 0.4, 0.5, 0.7, 0.4), s) == [FAILS] * 5
    # last-layer share above 0.5 but not above the first layer's: fails
    assert _statuses(rec, _circle(last=0.6, first=0.7), s)[3] == FAILS
    # the test MSE still fell 10^0.5× over the last checkpoint interval: only the early ratio is decided
    v = rec.claims[0].evaluate(Results(_circle(rise=0.5)), s)
    assert v.status == UNDECIDED and "still rising (+0.50 decades of test-MSE fall over its last checkpoint" in v.detail
    assert _statuses(rec, _circle(rise=0.5), s) == [UNDECIDED, HOLDS, UNDECIDED, UNDECIDED, UNDECIDED]
    # a last-layer share of 0.45 and 0.60 (mean 0.525 ± 0.15) straddles 0.5
    rows = [dict(r, value=0.45 if r["seed"] == 0 else 0.60) if r["metric"] == hs.LAST_TOP else r for r in _circle()]
    v = rec.claims[3].evaluate(Results(rows), s)
    assert v.status == UNDECIDED and "mean 0.53 ± 0.15 > 0.5?" in v.detail
    assert rec.claims[1].evaluate(Results([]), s).status == UNTESTED
    # rows: the rise is the fall of the test MSE (both halves) over the last interval, in decades
    run = {"rows": [dict(model=hs.DLGN, metric=hs.PATHS, value=1.0), dict(model=hs.DLGN, metric=hs.EARLY, value=2.0)],
           "curve": [(0, 1.0, 1.0), (100, 0.1, 0.1), (200, 0.01, 0.01)]}
    rows = hs.rows({"dlgn-s0": run}, s)
    assert rows[0]["rise"] == pytest.approx(1.0) and "rise" not in rows[1]
    rows = hs.rows({"dlgn-s0": {"rows": run["rows"]}}, s)  # stored by a version that kept no curve
    assert rows[0]["no_curve"]
    # checkpoints: increasing, containing a tenth of the epochs and the last
    assert hs.checkpoints(200) == [1, 2, 5, 10, 20, 50, 100, 200]
    assert hs.checkpoints(15) == [1, 2, 5, 10, 15]
    x, t, theta = hs.circle(500, 3)
    np.testing.assert_allclose(np.hypot(x[:, 0], x[:, 1]), 1, rtol=1e-6)
    upper = np.sin(theta) > 0
    np.testing.assert_allclose(t[upper], np.sin(2 * theta[upper]), atol=1e-6)
    np.testing.assert_allclose(t[~upper], np.sin(12 * theta[~upper]), atol=1e-6)
    assert t.dtype == np.float32 and t.ndim == 1


# ---- npf-checkpoints ------------------------------------------------------------------------------

def _checkpoints(fl=(80.0, 82.0, 83.0, 84.0), relu=84.3, rise=None, swap_seed1=False):
    rise = rise or {}
    out = []
    for e, acc in zip((0, 1, 2, 4), fl):
        st = f"gates from epoch {e}"
        g = _group(st, ck.FL, acc, rise=rise.get(e, 0.2), epoch=e)
        if swap_seed1 and e in (1, 2):  # seed 1 falls from epoch 1 to 2
            g[1]["value"] = fl[3 - e]
        out += g + _group(st, ck.RELU, relu if e == 4 else 70.0, rise=rise.get(("relu", e), 0.2), epoch=e)
    return out


def test_npf_checkpoints_claims():
    rec = ex.get("npf-checkpoints")
    assert _statuses(rec, _checkpoints()) == [HOLDS] * 3
    assert _statuses(rec, _checkpoints(fl=(80.0, 82.0, 81.0, 80.5), relu=86.0)) == [FAILS] * 3
    assert _statuses(rec, _checkpoints(fl=(80.0, 82.0, 83.0, 81.1)))[0] == UNDECIDED  # 1.1 ± 0.28 against 1
    # ρ per seed: 1 and 0.8 → mean 0.9 ± 0.2 straddles 0.8
    v = rec.claims[1].evaluate(Results(_checkpoints(swap_seed1=True)), {})
    assert v.status == UNDECIDED and "per seed 1.00, 0.80" in v.detail
    # gates of the last checkpoint still learning can only widen the gain; those of epoch 0 could close it
    v = rec.claims[0].evaluate(Results(_checkpoints(rise={4: 3.0})), {})
    assert v.status == HOLDS and "cannot change the outcome" in v.detail
    assert _statuses(rec, _checkpoints(rise={0: 3.0}))[0] == UNDECIDED
    assert _statuses(rec, _checkpoints(rise={2: 3.0}))[1] == UNDECIDED
    assert _statuses(rec, _checkpoints(rise={("relu", 4): 3.0}))[2] == UNDECIDED


# ---- width-limit ----------------------------------------------------------------------------------

def _width(rate=-0.5, krr=85.0, nets=(70.0, 80.0), rise=None):
    rise = rise or {}
    out = []
    for w in (16, 64, 256):
        for seed, jitter in enumerate((0.98, 1.02)):
            out.append(dict(setting="NPK convergence", model=f"width {w}", seed=seed, metric=wl.ERR,
                            value=jitter * 2.0 * w ** rate, width=w))
    out.append(dict(setting="accuracy", model=wl.KRR, seed=0, metric=wl.ACC, value=krr))
    for w, acc in zip((32, 512), nets):
        out += _group("accuracy", f"{wl.NET}, width {w}", acc, rise=rise.get(w, 0.2), metric=wl.ACC, width=w)
    return out


def test_width_limit_claims():
    rec = ex.get("width-limit")
    s = dict(seeds=2, draws=3, kernel_widths=[16, 64, 256], net_widths=[32, 512])
    assert _statuses(rec, _width(), s) == [HOLDS] * 3
    assert _statuses(rec, _width(rate=0.1, nets=(70.0, 69.0)), s) == [FAILS] * 3
    assert _statuses(rec, _width(rate=-1.0), s)[1] == FAILS
    assert _statuses(rec, _width(nets=(70.0, 70.2)), s)[2] == UNDECIDED  # 0.2 ± 0.28
    # the kernel below both nets: closer means lower
    assert _statuses(rec, _width(krr=60.0, nets=(70.0, 65.0)), s)[2] == HOLDS
    # the wide net still rising towards the kernel cannot undo its lead; the narrow one could close it
    assert _statuses(rec, _width(rise={512: 3.0}), s)[2] == HOLDS
    v = rec.claims[2].evaluate(Results(_width(rise={32: 3.0})), s)
    assert v.status == UNDECIDED and "width 32 (accuracy) still rising" in v.detail
    # per-seed slopes: one at −0.2, one at −0.8 → mean −0.5 ± 0.6, not inside [−0.7, −0.3] for sure
    rows = [dict(r, value=2.0 * r["width"] ** (-0.2 if r["seed"] == 0 else -0.8)) if r["metric"] == wl.ERR else r
            for r in _width()]
    v = rec.claims[1].evaluate(Results(rows), s)
    assert v.status == UNDECIDED and "per seed -0.200, -0.800" in v.detail


# ---- incomplete data: diverged seeds and undefined ratios -----------------------------------------

def test_a_diverged_seed_leaves_every_claim_that_reads_it_undecided():
    """A seed whose value is NaN (training blew up) was dropped by Results.values, and the verdict
    was computed from the seeds left; only the seeds count of table.md hinted at it."""
    rec = ex.get("fc-regimes")
    nan = float("nan")
    rows = _table4() + [dict(_table4()[0], seed=2, value=nan)]  # a third ReLU seed diverged
    v = [c.evaluate(Results(rows), {}) for c in rec.claims]
    # the claims comparing ReLU are undecided and say why; the others (II, DI, RL, RP) still decide
    assert [x.status for x in v] == [UNDECIDED, UNDECIDED, HOLDS, HOLDS]
    assert v[0].detail.endswith("undecided: 1 of 3 seeds diverged (value NaN): ReLU (Arch-1 Adam), test accuracy %")
    assert "|Δ| = 0.50" in v[0].detail  # the numbers of the seeds left, either way
    # every seed of a group diverged: undecided (it was "not tested: no results")
    rows = [dict(r, value=nan) if r["model"] == fc.GL else r for r in _table4()]
    v = rec.claims[0].evaluate(Results(rows), {})
    assert v.status == UNDECIDED and "2 of 2 seeds diverged (value NaN): fixed learnt GL (Arch-1 Adam)" in v.detail
    # a conv recipe (the same Claim.evaluate)
    conv = []
    for model, base in ((cg.II, 60.0), (cg.DI, 60.5), (cg.DEC, 70.0), (cg.FL, 72.0), (cg.RELU, 72.3)):
        conv += _group(cg.ALL, model, base)
    assert cg.CLAIMS[1].evaluate(Results(conv), {}).status == HOLDS
    conv[2]["value"] = nan  # seed 0 of DI
    v = cg.CLAIMS[1].evaluate(Results(conv), {})
    assert v.status == UNDECIDED and "1 of 2 seeds diverged (value NaN): " + cg.DI in v.detail
    # paired per-seed differences drop the seed too, and say so
    rec = ex.get("dlgn-halfspaces")
    rows = [dict(r, value=nan) if (r["model"], r["metric"], r["seed"]) == (hs.FROZEN, hs.TRAIN_LOSS, 1) else r
            for r in _circle()]
    v = [c.evaluate(Results(rows), rec.settings("quick")) for c in rec.claims]
    assert [x.status for x in v] == [UNDECIDED] + [HOLDS] * 4
    assert "1 of 2 seeds diverged (value NaN): " + hs.FROZEN in v[0].detail
    # a check that itself leaves its claim untested (e.g. one width only) stays untested
    claim = ex.Claim("c", lambda res, s: (None, f"one value only: {res.values(hs.FROZEN, hs.TRAIN_LOSS)}"))
    assert claim.evaluate(Results(rows), {}).status == UNTESTED


def test_table_counts_the_diverged_seeds_where_the_values_are():
    from gatednet.experiments.report import table_markdown
    rec = ex.get("fc-regimes")
    rows = _table4() + [dict(_table4()[0], seed=2, value=float("nan"))]
    rows += [dict(r, value=float("nan")) for r in _group("Arch-1 Adam", "all lost", 1.0)]
    table = table_markdown(rec, rows, [], "d", {}, [0, 1, 2], "smoke")
    assert "| Arch-1 Adam | ReLU | test accuracy % | 88.00 ± 0.14; 1 seed diverged (NaN) | 2 |" in table
    assert "| Arch-1 Adam | all lost | test accuracy % | –; 2 seeds diverged (NaN) | 0 |" in table
    assert "| Arch-1 Adam | fixed learnt GL | test accuracy % | 87.50 ± 0.14 | 2 |" in table


def test_an_undefined_ratio_is_undecided_not_an_exception():
    """beyond(log=True) on a ratio ≤ 0 raised a math domain error and differences(ratio=True) on a
    zero denominator ZeroDivisionError: after every task had finished, before results.csv."""
    with pytest.raises(ex.Undecidable, match=r"log ratio undefined: 1 of the ratios \(0.5, -0.1\) ≤ 0"):
        V.beyond([0.5, -0.1], 1.0, {}, log=True)
    with pytest.raises(ex.Undecidable, match="log ratio undefined: 1 of the ratios"):
        V.beyond([0.0, 2.0], 1.0, {}, log=True)
    res = Results([dict(model="n", metric="a", seed=0, value=1.0), dict(model="n", metric="b", seed=0, value=0.0),
                   dict(model="n", metric="a", seed=1, value=1.0), dict(model="n", metric="b", seed=1, value=2.0)])
    with pytest.raises(ex.Undecidable, match=r"ratio undefined: a denominator is 0 \('a' of n / 'b' of n, seed 0\)"):
        V.differences(res, ("n", "a", None), ("n", "b", None), ratio=True)
    assert V.differences(res, ("n", "b", None), ("n", "a", None), ratio=True) == [0.0, 2.0]
    # through the recipes' claims: undecided with the reason, the other claims unaffected
    v = [c.evaluate(Results(_nu(control_end=(200.0, 0.0))), {"top_k": 5}) for c in nu.RECIPE.claims]
    assert [x.status for x in v] == [HOLDS, HOLDS, HOLDS, UNDECIDED]
    assert v[3].detail == "undecided: ratio undefined: a denominator is 0 ('ν at end' of " + nu.RELU + \
        " / 'ν at end' of " + nu.CONTROL + ", seed 1)"
    v = nu.RECIPE.claims[0].evaluate(Results(_nu(falls=(0.5, -0.2))), {"top_k": 5})
    assert v.status == UNDECIDED and "log ratio undefined" in v.detail
    rec = ex.get("dlgn-halfspaces")
    rows = [dict(r, value=0.0) if (r["model"], r["metric"]) == (hs.FROZEN, hs.TRAIN_LOSS) else r for r in _circle()]
    assert [c.evaluate(Results(rows), rec.settings("quick")).status for c in rec.claims] == [UNDECIDED] + [HOLDS] * 4
