"""The run-time probe of the recipes (gatednet.experiments.probe): its extrapolation on a fake
network with known step, row and kernel-entry times; every recipe probed at `smoke`; and the
`paper` task plans hold the papers' settings (read from the plan, nothing trained)."""
import itertools
import json
import math
import os
import subprocess
import sys
import time
import types

import numpy as np
import pytest

import gatednet as gn
import gatednet.experiments as ex
from gatednet.experiments import Recipe, Task
from gatednet.experiments import data as D
from gatednet.experiments.probe import Meter, probe_recipe, task_kinds

needs_data = pytest.mark.skipif(not os.path.isdir(D.DEFAULT_DATA),
                                reason=f"Fashion-MNIST not found in {D.DEFAULT_DATA}")

# ---- extrapolation on a fake network with known unit times ----------------------------------------

STEP, ROW, ENTRY, FIXED = 4e-3, 1e-4, 1e-6, 0.05


class FakeNet:
    """Sleeps STEP per minibatch step, ROW per evaluated row, ENTRY per kernel entry."""

    def probe_signature(self):
        return ("fake",)

    def fit(self, x, y, epochs=1, *, batch_size=32, validation_data=None, callback=None, progress=False, **kw):
        time.sleep(STEP * epochs * math.ceil(len(x) / batch_size))
        if validation_data is not None:
            time.sleep(ROW * epochs * len(validation_data[0]))
        return [dict(epoch=e + 1, epoch_in_call=e + 1, epochs_in_call=epochs, train_loss=1.0, train_accuracy=0.5,
                     test_loss=None, test_accuracy=None, seconds=0.0) for e in range(epochs)]

    def evaluate(self, x, y, loss="cross_entropy"):
        time.sleep(ROW * len(x))
        return {"loss": 1.0, "accuracy": 0.5}

    def kernel(self, xa, xb=None, kind="npk", **options):
        nb = len(xa) if xb is None else len(xb)
        time.sleep(ENTRY * len(xa) * nb)
        return np.ones((len(xa), nb), np.float32)


def fake_task(seed, n_train, epochs, batch, n_val):
    time.sleep(FIXED)
    net = FakeNet()
    x, y = np.zeros((n_train, 3), np.float32), np.zeros(n_train, np.int32)
    xv, yv = np.zeros((n_val, 3), np.float32), np.zeros(n_val, np.int32)
    history = net.fit(x, y, epochs, batch_size=batch, validation_data=(xv, yv))
    assert len(history) == epochs and history[-1]["test_accuracy"] == 0.5
    k = net.kernel(xv)
    assert k.shape == (n_val, n_val)
    return [dict(setting="", model="fake", seed=seed, metric="m", value=1.0)]


def _fake_recipe():
    def tasks(s, seeds, data):
        return [Task(f"e{e}-s{seed}", fake_task, dict(seed=seed, n_train=3200, epochs=e, batch=32, n_val=1000))
                for e in s["epochs"] for seed in seeds]
    sizes = {k: dict(seeds=3, epochs=[20, 10]) for k in ("smoke", "quick", "paper")}
    return Recipe(name="fake", title="fake", paper="none", reproduces="none", paper_dataset="none", sizes=sizes,
                  tasks=tasks)


def _probe_fake(out):
    return probe_recipe(_fake_recipe(), size="paper", out=out, steps=3, target_seconds=0.05, eval_rows=100,
                        kernel_entries=10_000, stream=open(os.devnull, "w"),
                        meter_options=dict(classes=(FakeNet,), module=types.SimpleNamespace()))


def _timing_errors(report):
    """Unit times and totals of the fake probe that are off the known sleeps (empty if none)."""
    errors, expected_total = [], 0.0
    for row, epochs in zip(report["rows"], (20, 10)):
        units = {u["what"]: u for u in row["units"]}
        per_task = FIXED + epochs * 100 * STEP + epochs * 1000 * ROW + 1e6 * ENTRY
        expected_total += 3 * per_task
        for what, got, want, rel in (("step", units["train"]["unit_seconds"], STEP, 0.1),
                                     ("row", units["validation"]["unit_seconds"], ROW, 0.3),
                                     ("entry", units["kernel npk"]["unit_seconds"], ENTRY, 0.3),
                                     ("per task", row["per_task_seconds"], per_task, 0.1)):
            if got != pytest.approx(want, rel=rel):
                errors.append(f"e{epochs} {what}: {got:.3g} s, expected {want:.3g} s")
        if row["fixed_seconds"] != pytest.approx(FIXED, abs=0.04):
            errors.append(f"e{epochs} fixed: {row['fixed_seconds']} s, expected {FIXED} s")
    if report["estimate_seconds"] != pytest.approx(expected_total, rel=0.1):
        errors.append(f"total {report['estimate_seconds']:.3g} s, expected {expected_total:.3g} s")
    return errors


def test_extrapolation_of_a_fake_task_with_known_unit_times(tmp_path):
    # Sleeps overshoot when the machine is loaded: up to 3 attempts for the timings; the counts,
    # the sums and the file are checked on every attempt.
    errors = []
    for attempt in range(3):
        report = _probe_fake(tmp_path)
        assert FakeNet.fit.__qualname__ == "FakeNet.fit"  # restored after the probe
        assert [r["kind"] for r in report["rows"]] == ["e20", "e10"]
        assert [r["tasks"] for r in report["rows"]] == [3, 3]
        for row, epochs in zip(report["rows"], (20, 10)):
            units = {u["what"]: u for u in row["units"]}
            assert set(units) == {"train", "validation", "kernel npk"}
            assert units["train"]["units"] == epochs * 100          # 3200 rows / batch 32 per epoch
            assert units["validation"]["units"] == epochs * 1000
            assert units["kernel npk"]["units"] == 1000 * 1000
            assert row["per_task_seconds"] == pytest.approx(row["fixed_seconds"] + sum(u["seconds"] for u in units.values()),
                                                            abs=1e-3)
            assert row["total_seconds"] == pytest.approx(3 * row["per_task_seconds"])
            assert row["probe_seconds"] < row["per_task_seconds"] / 4  # the probe is much shorter than the task
        assert report["estimate_seconds"] == pytest.approx(sum(r["total_seconds"] for r in report["rows"]))
        saved = json.loads((tmp_path / "probe.json").read_text())
        assert saved["estimate_seconds"] == pytest.approx(report["estimate_seconds"])
        assert saved["load_average"]["samples"] >= 2 and saved["not_measured"]
        errors = _timing_errors(report)
        if not errors:
            return
    pytest.fail("timings off in 3 attempts (last: " + "; ".join(errors) + ")")


def test_short_calls_run_in_full_and_measurements_are_reused():
    calls = []

    class Counting(FakeNet):
        def fit(self, x, y, epochs=1, **kw):
            calls.append((len(x), epochs))
            return FakeNet.fit(self, x, y, epochs, **kw)

    with Meter(steps=3, target_seconds=0.01, classes=(Counting,), module=types.SimpleNamespace()) as m:
        m.begin_task()
        net = Counting()
        x, y = np.zeros((64, 3), np.float32), np.zeros(64, np.int32)
        net.fit(x, y, 2, batch_size=32)                 # 4 steps <= steps + 1: runs in full
        assert calls == [(64, 2)]
        big = np.zeros((3200, 3), np.float32), np.zeros(3200, np.int32)
        net.fit(*big, 5, batch_size=32)                 # measured: 1 step, then K steps
        assert calls[1] == (32, 1) and calls[2][1] == 1 and 3 * 32 <= calls[2][0] < 3200
        net.fit(*big, 7, batch_size=32)                 # same signature: nothing trained
        assert len(calls) == 3
        planned, _, _ = m.end_task()
    assert [c["units"] for c in planned] == [4, 500, 700]
    assert planned[0]["how"] == "run in full" and planned[2]["how"].startswith("reused")


def test_task_kinds_group_by_everything_but_the_seed():
    def f(**kw):
        return kw
    tasks = [Task(f"a{a}-s{s}", f, dict(seed=s, a=a, data="x")) for a in (1, 2) for s in range(3)]
    kinds = task_kinds(tasks)
    assert [(t.key, n) for t, n in kinds] == [("a1-s0", 3), ("a2-s0", 3)]


# ---- every recipe probed at smoke ----------------------------------------------------------------

@needs_data
@pytest.mark.parametrize("name", list(ex.list_recipes()))
def test_probe_at_smoke(name, tmp_path):
    recipe = ex.get(name)
    original = (gn.Network.fit, gn.ConvNetwork.kernel, gn.kernel_ridge_fit)
    report = probe_recipe(recipe, size="smoke", out=tmp_path, steps=2, target_seconds=0.02,
                          stream=open(os.devnull, "w"))
    assert (gn.Network.fit, gn.ConvNetwork.kernel, gn.kernel_ridge_fit) == original  # restored
    tasks = recipe.tasks(recipe.settings("smoke"), [0], D.DEFAULT_DATA)
    assert len(report["rows"]) == len(task_kinds(tasks)) == report["kinds"]
    assert sum(r["tasks"] for r in report["rows"]) == len(tasks)
    for row in report["rows"]:
        assert math.isfinite(row["total_seconds"]) and row["total_seconds"] > 0
    assert math.isfinite(report["estimate_seconds"]) and report["estimate_seconds"] > 0
    assert json.loads((tmp_path / "probe.json").read_text())["recipe"] == name


@needs_data
def test_probe_command_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "gatednet.experiments", "run", "nu-dynamics", "--size", "smoke",
                          "--probe", "--probe-steps", "2", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "| task kind |" in out.stdout and "Total:" in out.stdout
    report = json.loads((tmp_path / "probe.json").read_text())
    assert report["probe_steps"] == 2 and report["estimate_seconds"] > 0
    assert not (tmp_path / "tasks").exists()  # a probe stores no results


# ---- the paper plans hold the papers' settings ---------------------------------------------------

def plan(name, seeds=None):
    recipe = ex.get(name)
    s = recipe.settings("paper")
    n = s["seeds"] if seeds is None else seeds
    return s, recipe.tasks(s, list(range(n)), D.DEFAULT_DATA)


def kw(tasks, key):
    return [t.kwargs[key] for t in tasks]


def test_paper_plan_fc_regimes():
    s, tasks = plan("fc-regimes")
    assert s["seeds"] == 5
    combos = {(t.kwargs["width"], t.kwargs["depth"], t.kwargs["optimizer"]) for t in tasks}
    assert combos == {(w, d, o) for (w, d) in ((128, 6), (128, 10), (256, 6), (256, 10)) for o in ("adam", "sgd")}
    assert {t.kwargs["column"] for t in tasks} == {"relu", "decoupled", "frii", "frdi", "rl", "rp"}
    assert len(tasks) == 4 * 2 * 6 * 5
    assert set(kw(tasks, "n_train")) == {60000} and set(kw(tasks, "epochs")) == {20}


def test_paper_plan_conv_gates():
    from gatednet.experiments.recipes import r02_conv_gates as r02
    s, tasks = plan("conv-gates")
    assert set(kw(tasks, "filters")) == {128} and set(kw(tasks, "n_train")) == {60000}
    gated = [t for t in tasks if t.fn is r02.train_wiring]
    assert {t.kwargs["column"] for t in gated} == {r02.II, r02.DI, r02.DEC, r02.FL}
    for column in r02.GATED:  # 24 layer permutations x 2 value inputs per gated column, one task each
        wirings = [t.kwargs["wiring"] for t in gated if t.kwargs["column"] == column]
        assert len(wirings) == 48 and {w["value_input"] for w in wirings} == {"x", "ones"}
        assert {tuple(w["permutation"]) for w in wirings} == set(itertools.permutations(range(4)))
    assert [t.key for t in tasks if t.fn is r02.train_relu] == ["relu-s0"]
    for t in tasks:
        assert t.kwargs["fit"]["optimizer"] == "adam" and t.kwargs["fit"]["lr"] == 3e-4
        assert t.kwargs["fit"]["batch_size"] == 32
    layers = r02.c1_c4(128, 10)
    assert [l for l in layers if l[0] == "conv"] == [("conv", 128, 3, 1, "zero")] * 4


def test_paper_plan_gate_rotation():
    s, tasks = plan("gate-rotation")
    assert s["seeds"] == 10 and len(tasks) == 20
    assert sorted({t.kwargs["column"] for t in tasks}) == ["decoupled", "learnt"]
    assert set(kw(tasks, "filters")) == {128}
    assert sum(kw(tasks, "maps")) == 1  # Figure 5 from the first run


def test_paper_plan_random_labels():
    s, tasks = plan("random-labels")
    assert s["seeds"] == 3 and sorted({t.kwargs["gamma"] for t in tasks}) == [0, 25, 50, 75]
    assert all(t.kwargs["with_m3"] for t in tasks) and set(kw(tasks, "filters")) == {128}
    assert len(tasks) == 12


def test_paper_plan_no_act():
    s, tasks = plan("no-act")
    assert s["seeds"] == 5 and len(tasks) == 5 * 2 * 2
    assert set(kw(tasks, "width_scale")) == {1.0} and set(kw(tasks, "epochs")) == {32}
    assert {t.kwargs["fit"]["batch_size"] for t in tasks} == {128}
    assert {(t.kwargs["arch"], t.kwargs["model"]) for t in tasks} == {
        (a, m) for a in ("VGG19", "ResNet (DavidNet)") for m in ("ReLU", "DGN-No-Act")}


def test_paper_plan_nu_dynamics():
    s, tasks = plan("nu-dynamics")
    assert len(tasks) == 2 * 5
    assert set(kw(tasks, "width")) == {100} and set(kw(tasks, "depth")) == {5}  # w = 100, 4 hidden layers
    assert set(kw(tasks, "nu_points")) == {200}


def test_paper_plan_dlgn_table():
    s, tasks = plan("dlgn-table")
    assert s["seeds"] == 3 and len(tasks) == 3 * 5
    nets = [t for t in tasks if "width_scale" in t.kwargs]
    assert set(kw(nets, "width_scale")) == {1.0}
    assert {(t.kwargs["fit"]["optimizer"], t.kwargs["fit"]["lr"]) for t in nets} == {("adam", 2e-4)}
    layers = gn.ConvNetwork.architecture_layers("dlgn_conv", 10, 1.0)
    convs = [l for l in layers if l["kind"] == "conv"]
    dense = [l for l in layers if l["kind"] == "dense"]
    assert len(convs) == 5 and {l["units"] for l in convs} == {26} and {l["kernel"] for l in convs} == {3}
    assert [l["units"] for l in dense] == [64, 10]


def test_paper_plan_dlgn_modified_fmnist():
    s, tasks = plan("dlgn-modified-fmnist")
    assert set(kw(tasks, "width")) == {128} and set(kw(tasks, "depth")) == {6}  # 5 hidden layers of 128
    assert set(kw(tasks, "lr")) == {2e-4} and set(kw(tasks, "clusters")) == {5}
    assert {t.kwargs["model"] for t in tasks} == {"ReLU", "DLGN-PWC"}


def test_paper_plan_dlgn_halfspaces():
    s, tasks = plan("dlgn-halfspaces")
    assert set(kw(tasks, "width")) == {16} and set(kw(tasks, "depth")) == {6}
    assert set(kw(tasks, "epochs")) == {2000} and len(tasks) == 3 * 5


def test_paper_plan_npf_checkpoints():
    s, tasks = plan("npf-checkpoints")
    assert sorted({t.kwargs["epoch"] for t in tasks}) == [0, 1, 2, 4, 8, 16, 32]
    assert set(kw(tasks, "width")) == {128} and set(kw(tasks, "depth")) == {6}  # Arch-1
    assert len(tasks) == 7 * 5


def test_paper_plan_width_limit():
    s, tasks = plan("width-limit")
    widths = sorted({t.kwargs["width"] for t in tasks if t.key.startswith("npk-")})
    assert widths == [16, 64, 256, 1024, 4096]
    assert sorted({t.kwargs["width"] for t in tasks if t.key.startswith("net-")}) == [32, 128, 512, 2048]
    assert [t.kwargs["n_train"] for t in tasks if t.key == "krr"] == [10000]


def test_a_capped_fit_reports_the_epochs_it_was_asked_for():
    # recipes that train in chunks ask net.epochs_trained how far they are (dlgn-halfspaces)
    rng = np.random.default_rng(0)
    x = rng.random((3200, 4), dtype=np.float32)
    y = (x[:, 0] > 0.5).astype(np.int32)
    with gn.Network(4, [8], 2, "relu", seed=1) as net:
        with Meter(steps=2, target_seconds=0.001) as m:
            m.begin_task()
            net.fit(x, y, 3, batch_size=32)
            assert net.epochs_trained == 3
            net.fit(x, y, 4, batch_size=32)  # reused measurement: nothing trained
            assert net.epochs_trained == 7
            assert [c["units"] for c in m.end_task()[0]] == [300, 400]
        assert net.epochs_trained < 3  # the library's own count once the probe is over
