"""The conv recipes (conv-gates, gate-rotation, random-labels, no-act, dlgn-table): their smoke runs,
the pieces they build on (wirings, the deep linear net, Figure 5's hidden maps, the row
aggregation) and their claims' checks, which must follow the numbers either way."""
import json
import os

import numpy as np
import pytest

import gatednet as gn
import gatednet.experiments as ex
from gatednet.experiments import FAILS, HOLDS, Results
from gatednet.experiments import data as D
from gatednet.experiments.recipes import _conv
from gatednet.experiments.recipes import r02_conv_gates as cg
from gatednet.experiments.recipes import r03_gate_rotation as gr
from gatednet.experiments.recipes import r04_random_labels as rl
from gatednet.experiments.recipes import r05_no_act as na
from gatednet.experiments.recipes import r07_dlgn_table as dt
from gatednet.experiments.runner import run_recipe

pytestmark = pytest.mark.skipif(not os.path.isdir(D.DEFAULT_DATA),
                                reason=f"Fashion-MNIST not found in {D.DEFAULT_DATA}")

MINE = ("conv-gates", "gate-rotation", "random-labels", "no-act", "dlgn-table")
M = _conv.METRIC


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Each conv recipe once at smoke size: {name: (out_dir, rows, verdicts)}, in the session-wide
    folder test_experiments.py uses, so whichever module runs second resumes the stored tasks."""
    runs = {}
    for name in MINE:
        out = tmp_path_factory.getbasetemp() / "recipes-smoke" / name
        rows, verdicts, _info = run_recipe(ex.get(name), size="smoke", out=out, progress=False)
        runs[name] = (out, rows, verdicts)
    return runs


def _task(out, key):
    return json.loads((out / "tasks" / f"{key}.json").read_text())["result"]


# ---- smoke runs ---------------------------------------------------------------------------------

def test_smoke_runs_are_registered_and_tested(smoke):
    for name in MINE:
        recipe = ex.get(name)
        _out, rows, verdicts = smoke[name]
        assert rows and all(0.0 <= r["value"] <= 100.0 for r in rows), name
        assert [v.status for v in verdicts] != [] and all(v.status in (HOLDS, FAILS) for v in verdicts), verdicts
        assert recipe.paper_dataset == "CIFAR-10" and recipe.paper_results
        assert set(recipe.sizes) == {"smoke", "quick", "paper"}


def test_conv_gates_smoke_rows(smoke):
    out, rows, _ = smoke["conv-gates"]
    res = Results(rows)
    for model in cg.GATED:
        assert set(res.settings(model=model)) == {cg.ALL, *cg.CLASSES}
        # Each wiring class holds 1 of the 2 sampled models of its kind; the average over all wirings
        # is the mean of the 4 classes' means (one model each at smoke).
        classes = [res.mean(model, M, c) for c in cg.CLASSES]
        assert res.mean(model, M, cg.ALL) == pytest.approx(np.mean(classes))
    assert res.settings(model=cg.RELU) == [cg.ALL]
    runs = _task(out, "learnt-s0")
    assert [r["model"] for r in runs] == [cg.RELU] + [cg.FL] * 4
    for r in runs:  # best is the best epoch of the stored curve
        assert r["best"] == max(r["curve"]["test"])


def test_gate_rotation_smoke_writes_figure5(smoke):
    out, rows, _ = smoke["gate-rotation"]
    assert {r["model"] for r in rows} == {gr.RELU, gr.FL, gr.DEC}
    maps = _task(out, "learnt-s0")["maps"]
    assert np.asarray(maps["image"]).shape == (28, 28, 1)
    assert [np.asarray(m).shape for m in maps["feature"]] == [(28, 28, 2)] * 4
    assert [np.asarray(m).shape for m in maps["value"]] == [(28, 28, 2)] * 4
    assert (np.asarray(maps["feature"][0]) >= 0).all()  # ReLU outputs
    assert (out / "figure5_hidden_maps.png").read_bytes()[:4] == b"\x89PNG"
    assert "maps" not in _task(out, "decoupled-s0")


def test_random_labels_smoke_models_and_curves(smoke):
    out, rows, _ = smoke["random-labels"]
    res = Results(rows)
    s = ex.get("random-labels").settings("smoke")
    assert set(res.models(setting=rl.setting(0))) == {rl.M1B, rl.M1E, rl.M2, rl.M3}  # no Phase II at γ = 0
    assert set(res.models(setting=rl.setting(50))) == {rl.M1B, rl.M1E, rl.M2, rl.M4, rl.M5}
    for g in s["gammas"]:
        assert res.mean(rl.M1B, M, rl.setting(g)) >= res.mean(rl.M1E, M, rl.setting(g))  # best >= any mean
    run = _task(out, "gamma50-s0")
    assert len(run["curves"]["M1"]["test"]) == s["epochs_up"] and len(run["curves"]["M4"]["test"]) == s["epochs_down"]
    m3 = _task(out, "gamma0-s0")["curves"]["M3"]
    assert len(m3["test"]) == s["epochs_up"] + s["epochs_down"]


def test_no_act_and_dlgn_table_smoke(smoke):
    _, rows, _ = smoke["no-act"]
    assert {(r["setting"], r["model"]) for r in rows} == {(a, m) for a in na.ARCHS for m in (na.RELU, na.NOACT)}
    _, rows, _ = smoke["dlgn-table"]
    res = Results(rows)
    assert set(res.models()) == {dt.RELU, dt.DLGN, dt.PWC, dt.DLN, dt.NTK}
    for model in res.models():
        assert len(res.values(model, _conv.TRAIN_METRIC)) == len(res.values(model, M)) == 1
    # Kernel ridge with a ridge of 1e-3 of the mean diagonal nearly interpolates its training set.
    assert res.mean(dt.NTK, _conv.TRAIN_METRIC) >= 95.0


# ---- building blocks ----------------------------------------------------------------------------

def test_wirings():
    few = cg.wirings(2, seed=3)
    assert few[:2] == [([0, 1, 2, 3], "x"), ([0, 1, 2, 3], "ones")] and len(few) == 4
    assert few == cg.wirings(2, seed=3) and few[2][0] == few[3][0] != [0, 1, 2, 3]
    every = cg.wirings(24, seed=0)
    assert len(every) == 48 and len({(tuple(p), v) for p, v in every}) == 48
    assert cg.wiring_class([1, 0, 2, 3], "ones") == "permuted, x^v = 1"
    assert cg.wiring_class([0, 1, 2, 3], "x") == "identity, x^v = x"


def test_hidden_maps_reproduce_the_library(rng):
    """Figure 5's maps: numpy's feature maps give the library's gates, and the value maps
    (library wired gates, all-ones input, rotated) pooled through the output layer give predict."""
    layers = _conv.c1_c4(3, 10)
    x = rng.random((1, 784)).astype(np.float32)
    source = gn.ConvNetwork(layers, (28, 28, 1), "relu", seed=1)
    net = gn.ConvNetwork(layers, (28, 28, 1), "fixed_learnt", gate_source=source, seed=2,
                         wiring="tiled_rotated", wiring_seed=5, value_input="ones")
    feature, value = _conv.hidden_maps(net, x[0], layers, value_ones=True)
    for l, f in enumerate(feature):
        np.testing.assert_array_equal((f > 0).astype(np.float32), np.asarray(net.gates(x, l))[0])
    wired = [np.asarray(net.gates(x, l, wired=True))[0] for l in range(4)]
    assert any(not np.array_equal(w, (f > 0)) for w, f in zip(wired, feature))  # the rotation moved gates
    out = value[-1].mean(axis=(0, 1)) @ np.asarray(net.tensor("value.4.weight"), dtype=np.float64).T
    np.testing.assert_allclose(out, np.asarray(net.predict(x))[0], rtol=1e-4, atol=1e-5)


def test_deep_linear_net_is_affine(rng):
    net = dt.deep_linear((8, 8, 1), 3, 4 / 26, seed=1)
    a, b = rng.random((2, 64)).astype(np.float32)
    for l in range(net.n_gated):
        assert np.asarray(net.gates(np.stack([a, b]), l)).min() == 1.0  # every gate on
    x = rng.random((16, 64)).astype(np.float32)
    net.fit(x, np.arange(16, dtype=np.int32) % 3, epochs=2, lr=1e-2)  # biases now nonzero
    fa, fb, fmid = (np.asarray(net.predict(v[None]))[0] for v in (a, b, (a + b) / 2))
    np.testing.assert_allclose(fmid, (fa + fb) / 2, rtol=1e-4, atol=1e-5)
    assert not np.allclose(fa, fb)


def test_conv_gates_rows_average_wiring_classes():
    def run(model, perm, vi, acc):
        return dict(model=model, permutation=perm, value_input=vi, best=acc, curve={})
    results = {"ii-s0": [run(cg.II, [0, 1, 2, 3], "x", 50.0), run(cg.II, [0, 1, 2, 3], "ones", 52.0),
                         run(cg.II, [1, 0, 2, 3], "x", 54.0), run(cg.II, [1, 0, 2, 3], "ones", 56.0),
                         run(cg.II, [3, 2, 1, 0], "ones", 60.0)]}
    res = Results(cg.rows(results, {}))
    assert res.values(cg.II, M, cg.ALL) == [pytest.approx(54.4)]
    assert res.values(cg.II, M, "permuted, x^v = 1") == [58.0]
    assert res.values(cg.II, M, "identity, x^v = x") == [50.0]


# ---- claims follow the numbers -------------------------------------------------------------------

def _rows(*entries):
    return [dict(setting=s, model=m, seed=0, metric=metric, value=v, **extra)
            for s, m, metric, v, extra in entries]


def _verdict(claims, index, rows, settings=None):
    return claims[index].evaluate(Results(rows), settings or {})


def test_conv_gates_claims():
    def table(shift):
        out = []
        for model, base in ((cg.II, 60.0), (cg.DI, 60.5), (cg.DEC, 70.0), (cg.FL, 72.0)):
            out.append((cg.ALL, model, M, base, {}))
            for j, c in enumerate(cg.CLASSES):
                out.append((c, model, M, base + (shift if j == 3 else 0.0), {}))
        out.append((cg.ALL, cg.RELU, M, 72.5, {}))
        return _rows(*out)
    assert _verdict(cg.CLAIMS, 0, table(0.8)).status == HOLDS
    v = _verdict(cg.CLAIMS, 0, table(-1.5))
    assert v.status == FAILS and "-1.50" in v.detail
    assert _verdict(cg.CLAIMS, 1, table(0)).status == HOLDS
    assert _verdict(cg.CLAIMS, 2, table(0)).status == HOLDS  # |72.5 − 72| ≤ 1
    rows = [r if r["model"] != cg.DEC else dict(r, value=61.0) for r in table(0)]
    assert _verdict(cg.CLAIMS, 1, rows).status == FAILS  # decoupled 61 − DI 60.5 < 1


def test_gate_rotation_claims():
    rows = _rows(("", gr.RELU, M, 80.0, {}), ("", gr.FL, M, 79.2, {}), ("", gr.DEC, M, 77.0, {}))
    assert _verdict(gr.CLAIMS, 0, rows).status == HOLDS
    assert _verdict(gr.CLAIMS, 1, rows).status == FAILS


def _table2(m4, m5, m2=(76.0, 71.0, 64.0), m3_0=79.5):
    entries = [(rl.setting(0), rl.M1B, M, 81.0, dict(gamma=0)), (rl.setting(0), rl.M2, M, 80.0, dict(gamma=0)),
               (rl.setting(0), rl.M3, M, m3_0, dict(gamma=0))]
    for g, b, a2, a4, a5 in zip((25, 50, 75), (75.0, 70.0, 57.0), m2, m4, m5):
        entries += [(rl.setting(g), rl.M1B, M, b, dict(gamma=g)), (rl.setting(g), rl.M2, M, a2, dict(gamma=g)),
                    (rl.setting(g), rl.M4, M, a4, dict(gamma=g)), (rl.setting(g), rl.M5, M, a5, dict(gamma=g))]
    return _rows(*entries)


def test_random_labels_claims():
    good = _table2(m4=(77.0, 73.5, 68.0), m5=(76.8, 73.6, 67.5))
    assert [_verdict(rl.CLAIMS, i, good).status for i in range(3)] == [HOLDS] * 3
    assert _verdict(rl.CLAIMS, 0, _table2((77, 73, 68), (77, 73, 68), m2=(74.0, 71.0, 64.0))).status == FAILS
    assert _verdict(rl.CLAIMS, 1, _table2((77.0, 78.0, 68.0), (77.0, 78.0, 68.0))).status == FAILS  # M4 rises
    assert _verdict(rl.CLAIMS, 1, _table2((77.0, 73.0, 68.0), (74.0, 73.0, 68.0))).status == FAILS  # M5 ≠ M4
    assert _verdict(rl.CLAIMS, 1, _table2((77.0, 73.0, 68.0), (74.0, 73.0, 68.0)),
                    {"m4_m5_tolerance_points": 3.5}).status == HOLDS
    assert _verdict(rl.CLAIMS, 2, _table2((77, 73, 68), (77, 73, 68), m3_0=78.5)).status == FAILS


def test_no_act_and_dlgn_claims():
    rows = _rows(("VGG19", na.RELU, M, 85.0, {}), ("VGG19", na.NOACT, M, 83.0, {}),
                 ("ResNet (DavidNet)", na.RELU, M, 86.0, {}), ("ResNet (DavidNet)", na.NOACT, M, 82.5, {}))
    v = _verdict(na.CLAIMS, 0, rows)
    assert v.status == FAILS and "-3.50" in v.detail
    assert _verdict(na.CLAIMS, 0, rows, {"tolerance_points": 4.0}).status == HOLDS
    rows = _rows(("", dt.RELU, M, 88.0, {}), ("", dt.DLGN, M, 87.0, {}), ("", dt.PWC, M, 86.0, {}),
                 ("", dt.DLN, M, 80.0, {}), ("", dt.NTK, M, 82.0, {}))
    assert [_verdict(dt.CLAIMS, i, rows).status for i in range(2)] == [HOLDS, FAILS]  # 86 − 82 < 5
