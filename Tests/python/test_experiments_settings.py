"""Changing a recipe's settings for a run (``--set KEY=VALUE`` / ``run(..., overrides=...)``), and
tasks that take another task's result (conv-gates: one task per gated net, the fixed learnt
ones after their seed's ReLU net)."""
import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

import gatednet as gn
import gatednet.experiments as ex
from gatednet.experiments import Recipe, Results, Task
from gatednet.experiments import data as D
from gatednet.experiments.__main__ import main
from gatednet.experiments.common import derive_seed
from gatednet.experiments.overrides import apply_overrides, check_overrides, folder_suffix, parse_assignments
from gatednet.experiments.probe import probe_recipe, task_kinds
from gatednet.experiments.recipes import _conv
from gatednet.experiments.recipes import r02_conv_gates as cg
from gatednet.experiments.runner import default_out, run_recipe
from gatednet.experiments.tasks import bind, waves

from experiment_helpers import CountingExecutor

needs_data = pytest.mark.skipif(not os.path.isdir(D.DEFAULT_DATA),
                                reason=f"Fashion-MNIST not found in {D.DEFAULT_DATA}")

_SMOKE = dict(seeds=1, epochs=2, lr=1e-3, exact=True, optimizer="adam", widths=[16, 8], shape=(24, 3),
              fit=dict(lr=1e-3, batch_size=32), extra=None)
TOY = Recipe(name="toy", title="toy", paper="none", reproduces="nothing", paper_dataset="none",
             sizes={"smoke": _SMOKE, "quick": dict(_SMOKE, epochs=4, relu_epochs=8), "paper": dict(_SMOKE, epochs=20)},
             tasks=lambda s, seeds, data: [])


# ---- parsing and checking ---------------------------------------------------------------------------

def test_values_take_the_type_of_the_setting_they_replace():
    text = {"epochs": "3", "lr": "1", "exact": "false", "optimizer": "sgd", "widths": "[32, 4]",
            "shape": "(8, 2)", "fit.lr": "3e-3", "extra": "[1, 'a']"}
    changed = check_overrides(TOY, "smoke", text)
    assert changed == {"epochs": 3, "lr": 1.0, "exact": False, "optimizer": "sgd", "widths": [32, 4],
                       "shape": (8, 2), "fit.lr": 3e-3, "extra": [1, "a"]}
    assert type(changed["lr"]) is float and type(changed["shape"]) is tuple
    # Python values are checked the same way (a whole number is an int, an int a float where one is expected)
    assert check_overrides(TOY, "smoke", {"epochs": 3.0, "lr": 2, "widths": (4,), "optimizer": "sgd"}) == \
        {"epochs": 3, "lr": 2.0, "widths": [4], "optimizer": "sgd"}
    assert check_overrides(TOY, "smoke", {"epochs": "1e1", "exact": "on"}) == {"epochs": 10}
    # a key only another size defines is a setting of the recipe too
    assert check_overrides(TOY, "smoke", {"relu_epochs": "5"}) == {"relu_epochs": 5}
    # the size's own values change nothing (and so leave the output folder as it is)
    assert check_overrides(TOY, "smoke", {"epochs": "2", "fit.lr": 0.001, "exact": "yes"}) == {}
    s = apply_overrides(TOY.settings("smoke"), changed)
    assert s["fit"] == {"lr": 3e-3, "batch_size": 32} and s["epochs"] == 3 and s["seeds"] == 1
    assert TOY.sizes["smoke"]["fit"]["lr"] == 1e-3 and TOY.sizes["smoke"]["epochs"] == 2  # recipe untouched


@pytest.mark.parametrize("key,value,expected", [
    ("epochs", "abc", "expected int"), ("epochs", "2.5", "expected int"), ("epochs", True, "expected int"),
    ("lr", "fast", "expected float"), ("exact", "maybe", "expected bool"), ("exact", 1, "expected bool"),
    ("optimizer", 3, "expected str"), ("widths", "[1, 'a']", "expected list of int"),
    ("widths", "7", "expected list"), ("fit", "1", "expected dict"), ("fit.lr", "x", "expected float"),
    ("shape", "[1, None]", "expected tuple of int")])
def test_a_bad_value_names_the_key_and_the_type(key, value, expected):
    with pytest.raises(ValueError) as e:
        check_overrides(TOY, "smoke", {key: value})
    assert str(e.value).startswith(f"setting {key}: {expected}") and repr(value) in str(e.value)


def test_unknown_keys_are_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown setting 'epoch' of recipe toy; its settings: ") as e:
        check_overrides(TOY, "smoke", {"epoch": 1})
    listed = str(e.value).split("its settings: ")[1].split(", ")
    assert listed == sorted((set(_SMOKE) | {"relu_epochs"}) - {"seeds"})
    with pytest.raises(ValueError, match="unknown entry 'rate' of setting fit .*its entries: batch_size, lr"):
        check_overrides(TOY, "smoke", {"fit.rate": 1})
    with pytest.raises(ValueError, match="lr is a float, not a dict"):
        check_overrides(TOY, "smoke", {"lr.x": 1})
    with pytest.raises(ValueError, match="--seeds"):
        check_overrides(TOY, "smoke", {"seeds": 3})
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_assignments(["epochs"])
    with pytest.raises(ValueError, match="given twice"):
        parse_assignments(["epochs=1", "epochs=2"])
    assert parse_assignments(["columns=['a=b']", "lr= 1e-3"]) == {"columns": "['a=b']", "lr": " 1e-3"}


def test_overridden_runs_get_their_own_folder():
    assert default_out("toy", "smoke") == Path("gatednet-results/toy-smoke")
    assert default_out("toy", "smoke", {}) == Path("gatednet-results/toy-smoke")
    assert default_out("toy", "smoke", {"lr": 1.0, "epochs": 3}) == Path("gatednet-results/toy-smoke-epochs=3,lr=1.0")
    # text a folder name cannot hold is replaced, and a hash of the whole keeps the names apart
    a, b = folder_suffix({"columns": ["fixed learnt"]}), folder_suffix({"columns": ["fixed/learnt"]})
    assert a != b and all(re.fullmatch(r"[A-Za-z0-9._=+,-]+", f) for f in (a, b))
    assert folder_suffix({"columns": ["fixed learnt"]}) == a  # deterministic


# ---- tasks that need other tasks' results -----------------------------------------------------------

def _source(x):
    return {"value": 10 * x}


def _user(y, inputs):
    return {"value": inputs["src"]["value"] + y}


DEP = Recipe(name="dep", title="dep", paper="none", reproduces="nothing", paper_dataset="none",
             sizes={size: dict(seeds=1, x=1, y=2) for size in ("smoke", "quick", "paper")},
             tasks=lambda s, seeds, data: [Task("user", _user, dict(y=s["y"]), needs=("src",)),
                                           Task("src", _source, dict(x=s["x"]))],
             rows=lambda results, s: [dict(setting="", model="m", seed=0, metric="v",
                                           value=results["user"]["value"])])


def test_needs_run_first_and_a_changed_need_is_recomputed(tmp_path):
    def run(overrides=None):
        counter = CountingExecutor()
        rows, _, info = run_recipe(DEP, "smoke", out=tmp_path, executor=counter, progress=False,
                                   stream=open(os.devnull, "w"), overrides=overrides)
        return counter.keys, rows[0]["value"], info
    assert run()[:2] == (["src", "user"], 12)
    # x changes only src's kwargs: user, whose kwargs are the same, must not resume a result computed
    # from the old src
    keys, value, info = run({"x": "2"})
    assert (keys, value) == (["src", "user"], 22) and info["overrides"] == {"x": 2}
    assert run({"x": 2})[:2] == ([], 22)  # same settings: everything resumed
    assert run({"x": 2, "y": 5})[:2] == (["user"], 25)


def test_results_of_another_recipe_version_are_recomputed(tmp_path):
    import dataclasses

    def run(recipe):
        counter = CountingExecutor()
        run_recipe(recipe, "smoke", out=tmp_path, executor=counter, progress=False, stream=open(os.devnull, "w"))
        return counter.keys
    assert run(DEP) == ["src", "user"]
    assert run(DEP) == []  # same version (1): resumed
    v2 = dataclasses.replace(DEP, version=2)  # its tasks now return results of another form
    assert run(v2) == ["src", "user"]
    assert json.loads((tmp_path / "tasks" / "user.json").read_text())["recipe_version"] == 2
    assert run(v2) == []


def test_results_of_another_library_version_are_recomputed(tmp_path, monkeypatch):
    """A stored result recorded the recipe's version and function but not the library's: after a
    libgatednet fix that changes numbers, a resumed run mixed old and new results silently."""
    import io

    def run():
        counter, stream = CountingExecutor(), io.StringIO()
        _, _, info = run_recipe(DEP, "smoke", out=tmp_path, executor=counter, progress=False, stream=stream)
        return counter.keys, stream.getvalue(), info
    keys, text, info = run()
    record = json.loads((tmp_path / "tasks" / "user.json").read_text())
    assert keys == ["src", "user"]
    assert record["library_version"] == gn.library_version and record["gatednet_version"] == gn.__version__
    assert run()[0] == []  # the same library: resumed
    monkeypatch.setattr(gn, "library_version", "9.9.9-test")
    keys, text, info = run()
    assert keys == ["src", "user"] and info["tasks_recomputed_other_library"] == 2
    assert f"2 stored results recomputed: computed by libgatednet {record['library_version']!r}, this is " \
        "'9.9.9-test' (its numbers may differ)" in text
    assert json.loads((tmp_path / "tasks" / "src.json").read_text())["library_version"] == "9.9.9-test"
    keys, text, _ = run()
    assert keys == [] and "recomputed" not in text
    # a record stored before the version was recorded: its version is unknown; resumed, and said so
    for name in ("src.json", "user.json"):
        path = tmp_path / "tasks" / name
        old = json.loads(path.read_text())
        del old["library_version"], old["gatednet_version"]
        path.write_text(json.dumps(old))
    keys, text, info = run()
    assert keys == [] and info["tasks_resumed_library_unknown"] == 2
    assert "2 stored results resumed without a recorded libgatednet version" in text


def test_a_claim_that_raises_leaves_results_csv_written(tmp_path):
    """The measurements are written before the claims are judged: a check that fails on them
    cannot lose the run's rows."""
    def broken(res, s):
        raise RuntimeError("a bug in a check")
    recipe = Recipe(**{**DEP.__dict__, "claims": [ex.Claim("c", broken)]})
    with pytest.raises(RuntimeError, match="a bug in a check"):
        run_recipe(recipe, "smoke", out=tmp_path, progress=False, stream=open(os.devnull, "w"))
    assert "m,0,v,12" in (tmp_path / "results.csv").read_text()


def _diverging(seed):
    return [dict(setting="", model="m", seed=seed, metric="loss", value=float("nan") if seed == 1 else 0.5 + seed)]


def test_a_diverged_seed_is_named_in_every_file_and_never_crashes_the_run(tmp_path):
    """End to end: a seed whose loss is NaN leaves the claim undecided (run.json, table.md), its
    group's table row counts it, and a plot that fails on the data (here: every seed of a group
    diverged, so its mean is Missing, as in fc-regimes' bar plot) does not stop the run."""
    def below_one(res, s):
        m = res.mean("m", "loss")
        return m < 1, f"mean loss {m:.2f} < 1?"

    def plots(results, rows, s, out_dir):
        return [Results(rows).mean("m", "loss", seed=1)]
    recipe = Recipe(name="nan", title="t", paper="p", reproduces="r", paper_dataset="d",
                    sizes={s: {"seeds": 3} for s in ex.SIZES}, claims=[ex.Claim("loss below 1", below_one)],
                    tasks=lambda s, seeds, data: [Task(f"s{k}", _diverging, {"seed": k}) for k in seeds],
                    plots=plots)
    stream = __import__("io").StringIO()
    _, verdicts, info = run_recipe(recipe, "smoke", out=tmp_path, progress=False, stream=stream)
    assert verdicts[0].status == ex.UNDECIDED and info["verdicts"][0]["verdict"] == ex.UNDECIDED
    assert verdicts[0].detail == "mean loss 1.50 < 1?; undecided: 1 of 3 seeds diverged (value NaN): m, loss"
    table = (tmp_path / "table.md").read_text(encoding="utf-8")
    assert "| m | loss | 1.50 ± 1.41; 1 seed diverged (NaN) | 2 |" in table
    assert info["plot_error"].startswith("Missing: no results for model='m'")
    assert "plots failed, the tables are written: Missing" in stream.getvalue()


def test_task_needs_are_checked():
    with pytest.raises(ValueError, match="needs itself"):
        Task("a", _source, {"x": 1}, needs=("a",))
    with pytest.raises(TypeError, match="tuple of task keys"):
        Task("a", _source, {"x": 1}, needs="b")
    user = Task("user", _user, {"y": 1}, needs=("src",))
    with pytest.raises(RuntimeError, match="bind"):
        user()
    assert bind(user, {"src": {"value": 5}})() == {"value": 6}
    with pytest.raises(ValueError, match="needs nowhere, which is not a task"):
        waves([Task("a", _user, {"y": 1}, needs=("nowhere",))])
    with pytest.raises(ValueError, match="cycle"):
        waves([Task("a", _user, {"y": 1}, needs=("b",)), Task("b", _user, {"y": 1}, needs=("a",))])
    assert [[t.key for t in w] for w in waves([user, Task("src", _source, {"x": 1})])] == [["src"], ["user"]]
    assert [[t.key for t in w] for w in waves([user], done={"src": 1})] == [["user"]]
    # within a wave, what others need comes first
    other = Task("other", _source, {"x": 2})
    assert [[t.key for t in w] for w in waves([other, user, Task("src", _source, {"x": 1})])] == \
        [["src", "other"], ["user"]]


def labels_sum(data):
    """A task that reads the dataset at ``data``: the sum of its training labels."""
    return [dict(setting="", model="m", seed=0, metric="labels", value=int(D.load(data).y_train.sum()))]


def test_a_relative_data_path_names_the_data_of_its_own_directory(tmp_path, monkeypatch):
    """--data given relative was stored as is in the tasks' kwargs (and cached by D.load as is):
    the same relative name in another directory resumed the first directory's results."""
    recipe = Recipe(name="labels", title="t", paper="p", reproduces="r", paper_dataset="d",
                    sizes={s: {"seeds": 1} for s in ex.SIZES},
                    tasks=lambda s, seeds, data: [Task("sum", labels_sum, {"data": data})])
    sums = {}
    for name, label in (("a", 1), ("b", 2)):
        (tmp_path / name).mkdir()
        np.savez(tmp_path / name / "d.npz", x_train=np.zeros((3, 4), np.uint8), y_train=np.full(3, label),
                 x_test=np.zeros((2, 4), np.uint8), y_test=np.zeros(2))
        monkeypatch.chdir(tmp_path / name)
        counter = CountingExecutor()
        rows, _, info = run_recipe(recipe, "smoke", out=tmp_path / "out", data="d.npz", executor=counter,
                                   progress=False, stream=open(os.devnull, "w"))
        sums[name] = rows[0]["value"]
        assert counter.keys == ["sum"] and info["data"] == str(tmp_path / name / "d.npz")
    assert sums == {"a": 3, "b": 6}


def _one(v):
    return [dict(setting="", model="one", seed=0, metric="x", value=v)]


def _two(v):
    return [dict(setting="", model="two", seed=0, metric="x", value=2 * v)]


def test_a_stored_result_of_another_function_is_not_resumed(tmp_path):
    """Two recipes share task keys (relu-s0 is a key of five): run into the same --out with equal
    kwargs, the second resumed the first one's result."""
    def recipe(name, fn):
        return Recipe(name=name, title="t", paper="p", reproduces="r", paper_dataset="d",
                      sizes={s: {"seeds": 1} for s in ex.SIZES},
                      tasks=lambda s, seeds, data: [Task("relu-s0", fn, {"v": 1})])

    quiet = dict(out=tmp_path, progress=False, stream=open(os.devnull, "w"))
    rows_one, _, _ = run_recipe(recipe("one", _one), "smoke", **quiet)
    counter = CountingExecutor()
    rows_two, _, _ = run_recipe(recipe("two", _two), "smoke", executor=counter, **quiet)
    assert counter.keys == ["relu-s0"] and rows_two[0]["model"] == "two" and rows_two[0]["value"] == 2
    counter = CountingExecutor()
    assert run_recipe(recipe("two", _two), "smoke", executor=counter, **quiet)[0] == rows_two
    assert counter.keys == []  # its own result resumes


def test_an_executor_class_instead_of_an_instance_is_refused(tmp_path):
    from gatednet.experiments import SerialExecutor

    with pytest.raises(TypeError, match=r"executor: pass an instance, e.g. SerialExecutor\(...\), not the class"):
        run_recipe(TOY, "smoke", out=tmp_path / "x", executor=SerialExecutor, progress=False)
    assert not (tmp_path / "x").exists()


def test_a_home_relative_out_is_expanded(tmp_path, monkeypatch):
    """--out=~/x (the shell leaves that ~ alone) made a folder literally named "~" in the working
    directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    run_recipe(TOY, "smoke", out="~/res", progress=False, stream=open(os.devnull, "w"))
    assert (tmp_path / "home" / "res" / "run.json").exists() and not (tmp_path / "~").exists()


def test_a_fractional_or_bool_seed_count_is_refused(tmp_path):
    for seeds in (1.5, True, 0.0):
        with pytest.raises(ValueError, match="seeds: "):
            run_recipe(TOY, "smoke", seeds=seeds, out=tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_an_interrupted_run_leaves_the_previous_result_files_whole(tmp_path, monkeypatch):
    """results.csv and table.md were written in place: Ctrl-C while writing them left a truncated
    file beside the previous run's run.json."""
    import csv

    recipe = Recipe(name="files", title="t", paper="p", reproduces="r", paper_dataset="d",
                    sizes={s: {"seeds": 2, "v": 1.0} for s in ex.SIZES},
                    tasks=lambda s, seeds, data: [Task(f"s{k}", _row, {"seed": k, "v": s["v"]}) for k in seeds])
    quiet = dict(out=tmp_path, progress=False, stream=open(os.devnull, "w"))
    run_recipe(recipe, "smoke", **quiet)
    before = {name: (tmp_path / name).read_bytes() for name in ("results.csv", "table.md", "run.json")}
    assert "γ ± —" in (tmp_path / "table.md").read_text(encoding="utf-8")
    real = csv.DictWriter.writerow

    def interrupted(self, row):
        if row.get("seed") == 1:
            raise KeyboardInterrupt
        return real(self, row)

    monkeypatch.setattr(csv.DictWriter, "writerow", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, "smoke", overrides={"v": 2.0}, **quiet)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "run.json", "table.md", "tasks"]


def test_result_files_are_utf8_whatever_the_locale(tmp_path):
    """table.md and results.csv hold γ, ± and —: under an ASCII locale (LC_ALL=C without locale
    coercion) writing them raised UnicodeEncodeError after every task had run."""
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(
        "from gatednet.experiments import Recipe, SIZES, Task\n"
        "from gatednet.experiments.runner import run_recipe\n"
        "row = lambda: [dict(setting='\\u03b3 = 25 %', model='m', seed=0, metric='x', value=1.0)]\n"
        "r = Recipe(name='enc', title='t \\u00b1 \\u2014', paper='p', reproduces='r', paper_dataset='d',\n"
        "           sizes={s: {'seeds': 1} for s in SIZES}, tasks=lambda s, seeds, data: [Task('a', row)])\n"
        f"run_recipe(r, 'smoke', out={str(tmp_path / 'out')!r}, progress=False)\n", encoding="utf-8")
    env = dict(os.environ, LC_ALL="C", LANG="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0", PYTHONIOENCODING="utf-8")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "\u03b3 = 25 %" in (tmp_path / "out" / "table.md").read_text(encoding="utf-8")
    assert "\u03b3 = 25 %" in (tmp_path / "out" / "results.csv").read_text(encoding="utf-8")


def test_an_interrupted_plot_save_leaves_the_previous_plot_whole(tmp_path, monkeypatch):
    plt = pytest.importorskip("matplotlib.pyplot")
    from matplotlib.figure import Figure

    from gatednet.experiments.plotting import save

    assert save(plt.figure(), tmp_path, "a.png") == "a.png"
    before = (tmp_path / "a.png").read_bytes()
    assert before.startswith(b"\x89PNG")

    def interrupted(self, fname, **kw):
        (fname.write if hasattr(fname, "write") else open(fname, "wb").write)(b"half a PNG")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    fig = plt.figure()
    with pytest.raises(KeyboardInterrupt):
        save(fig, tmp_path, "a.png")
    assert (tmp_path / "a.png").read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["a.png"]
    assert not plt.fignum_exists(fig.number)  # closed either way


def _row(seed, v):
    return [dict(setting="γ ± —", model="m", seed=seed, metric="x", value=v * (seed + 1))]


@needs_data
def test_a_single_width_leaves_the_width_claims_untested(tmp_path):
    """width-limit with --set "kernel_widths=[16]" crashed computing its verdicts (max() of no
    width pairs) after every task had run, before results.csv was written."""
    quiet = dict(progress=False, stream=open(os.devnull, "w"))
    for key, claims in (("kernel_widths", [0, 1]), ("net_widths", [2])):
        _, verdicts, _ = run_recipe(ex.get("width-limit"), "smoke", out=tmp_path / key, overrides={key: "[16]"},
                                    **quiet)
        for i in claims:
            assert verdicts[i].status == ex.UNTESTED and f"needs at least two {key}" in verdicts[i].detail
        assert (tmp_path / key / "results.csv").exists()


def test_the_sizes_own_value_sets_the_type_of_an_override():
    """The template a value is checked against took another size's value where both sizes define
    the key: a float setting of smoke was refused a float because quick's value was an int."""
    r = Recipe(name="own", title="t", paper="p", reproduces="r", paper_dataset="d",
               sizes={"smoke": {"seeds": 1, "rate": 0.5, "fit": {"lr": 0.1}},
                      "quick": {"seeds": 1, "rate": 2, "fit": {"lr": 1}}, "paper": {"seeds": 1, "rate": 2}},
               tasks=lambda s, seeds, data: [])
    assert check_overrides(r, "smoke", {"rate": "0.25", "fit.lr": "0.05"}) == {"rate": 0.25, "fit.lr": 0.05}
    assert check_overrides(r, "quick", {"rate": "3", "fit.lr": "1e1"}) == {"rate": 3, "fit.lr": 10}
    with pytest.raises(ValueError, match=r"setting rate: expected int \(its quick value is 2\)"):
        check_overrides(r, "quick", {"rate": "0.25"})


def test_a_dict_setting_and_one_of_its_entries_together_are_refused(tmp_path, capsys):
    """--set fit.lr=0.1 --set "fit={...}" was accepted and the whole dict, applied after, dropped
    the entry without a word."""
    cg = ex.get("conv-gates")
    whole = "{'optimizer':'adam','lr':0.003,'batch_size':16}"
    for overrides in ({"fit.lr": "0.1", "fit": whole}, {"fit": whole, "fit.lr": "0.1"}):
        with pytest.raises(ValueError, match="setting fit.lr: fit is set as a whole too"):
            check_overrides(cg, "smoke", overrides)
    with pytest.raises(SystemExit) as e:
        main(["run", "conv-gates", "--size", "smoke", "--set", "fit.lr=0.1", "--set", f"fit={whole}",
              "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "fit is set as a whole too" in capsys.readouterr().err


def test_a_setting_some_size_leaves_out_can_be_left_out_with_none(tmp_path):
    """lr_schedule (absent at paper: a constant step) could not be turned off at smoke/quick:
    "--set lr_schedule=None" was taken as the text 'None' and failed inside the first task."""
    fc, cg = ex.get("fc-regimes"), ex.get("conv-gates")
    changed = check_overrides(fc, "quick", {"lr_schedule": "None"})
    assert changed == {"lr_schedule": None} and folder_suffix(changed) == "lr_schedule=null"
    settings = apply_overrides(fc.settings("quick"), changed)
    assert "lr_schedule" not in settings
    assert {t.kwargs["lr_schedule"] for t in fc.tasks(settings, [0], "data")} == {None}
    assert check_overrides(fc, "paper", {"lr_schedule": None}) == {}  # paper has none: no change
    changed = check_overrides(cg, "smoke", {"fit.lr_schedule": "none", "relu_epochs": "None"})
    assert changed == {"fit.lr_schedule": None}  # smoke has no relu_epochs: no change
    assert apply_overrides(cg.settings("smoke"), changed)["fit"] == {"optimizer": "adam", "lr": 0.003, "batch_size": 16}
    for key in ("epochs", "fit.lr"):  # every size has them: None is not a value of their type
        with pytest.raises(ValueError, match=f"setting {re.escape(key)}: expected"):
            check_overrides(cg, "smoke", {key: "None"})


def test_list_entries_and_classes_are_checked_before_any_work(tmp_path, capsys):
    wl = ex.get("width-limit")
    for key in ("kernel_widths", "net_widths"):
        for value in ("[0, 16]", "[16, -4]"):
            with pytest.raises(ValueError, match=f"setting {key}: every entry must be a finite number > 0"):
                check_overrides(wl, "smoke", {key: value})
    assert check_overrides(wl, "smoke", {"kernel_widths": "[8, 32]"}) == {"kernel_widths": [8, 32]}
    rl = ex.get("random-labels")  # γ = 0 is a size's entry: 0 stays allowed
    assert check_overrides(rl, "smoke", {"gammas": "[0, 10]"}) == {"gammas": [0, 10]}
    # nu-dynamics: a third class was silently merged into the first ("4 vs 7" on 4+9 vs 7)
    for value, message in (("[4, 7, 9]", "classes: expected two different class labels, got [4, 7, 9]"),
                           ("[4, 4]", "classes: expected two different class labels, got [4, 4]")):
        with pytest.raises(SystemExit) as e:
            main(["run", "nu-dynamics", "--size", "smoke", "--set", f"classes={value}", "--out", str(tmp_path / "o")])
        assert e.value.code == 2 and message in capsys.readouterr().err and not (tmp_path / "o").exists()
    from gatednet.experiments.recipes import r06_nu_dynamics as nu
    y = np.array([0, 4, 7, 4, 7, 9], dtype=np.int32)
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    with pytest.raises(ValueError, match=r"classes: the data has no image of class 17 \(its labels are 0..9\)"):
        nu._binary(x, y, [4, 17], 0)
    xb, yb = nu._binary(x, y, [4, 7], 0)
    assert yb.tolist() == [0, 1, 0, 1] and xb[:, 0].tolist() == [2, 4, 6, 8]


# ---- the command line ------------------------------------------------------------------------------

@pytest.mark.parametrize("item,message", [("epoch=1", "unknown setting 'epoch'"), ("epochs=two", "expected int"),
                                          ("seeds=2", "--seeds"), ("epochs", "KEY=VALUE")])
def test_cli_set_is_checked_before_any_work(tmp_path, capsys, item, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(["run", "nu-dynamics", "--size", "smoke", "--set", item, "--out", str(out)])
    assert e.value.code == 2 and message in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("name,item,message", [
    ("fc-regimes", "columns=['relux']", "columns: unknown 'relux'; choose from 'relu'"),
    ("fc-regimes", "optimizers=['sgdd']", "optimizers: unknown 'sgdd'; choose from 'adam', 'sgd'"),
    ("fc-regimes", "archs=['Arch-5']", "archs: unknown 'Arch-5'; choose from 'Arch-1'"),
    ("fc-regimes", "lr={'sgd':0.1}", "optimizers (with a learning rate in lr): unknown 'adam'"),
    ("no-act", "archs=['VGG']", "archs: unknown 'VGG'; choose from 'VGG19'"),
    ("dlgn-table", "models=['DLGNX']", "models: unknown 'DLGNX'; choose from 'ReLU network'"),
    ("conv-gates", "fit={'optimizer':'adam','lrr':0.1}", "fit entries: unknown 'lrr'; choose from 'batch_size', 'lr'"),
    ("no-act", "fit.lr_schedule=cosin", "fit.lr_schedule: unknown 'cosin'; choose from None, 'cosine'"),
    ("fc-regimes", "lr_schedule=linear", "lr_schedule: unknown 'linear'; choose from None, 'cosine'"),
    ("width-limit", "lr_schedule=Cosine", "lr_schedule: unknown 'Cosine'; choose from None, 'cosine'"),
    ("fc-regimes", "columns=['rl','rl']", "recipe fc-regimes: task key 'tiny-adam-rl-s0' used twice"),
    # the upper half is the low-frequency one: low > high made its table labels wrong
    ("dlgn-halfspaces", "low=13", "low=13 > high=12: low is the upper half's frequency")])
def test_a_set_name_the_recipe_does_not_know_fails_before_any_work(tmp_path, capsys, name, item, message):
    """A typo in a list of names was accepted (the type is right) and failed as a bare KeyError,
    for fc-regimes' columns only inside the task, after the tasks before it had trained."""
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(["run", name, "--size", "smoke", "--set", item, "--out", str(out)])
    assert e.value.code == 2 and message in capsys.readouterr().err and not out.exists()
    counter = CountingExecutor()
    key, _, value = item.partition("=")
    with pytest.raises(ValueError, match=re.escape(message)):
        run_recipe(ex.get(name), "smoke", out=out, executor=counter, progress=False, overrides={key: value})
    assert counter.keys == [] and not out.exists()


def test_cli_seed_count_is_checked_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    for seeds in ("0", "-2"):
        with pytest.raises(SystemExit) as e:
            main(["run", "nu-dynamics", "--size", "smoke", "--seeds", seeds, "--out", str(out)])
        assert e.value.code == 2 and f"seeds: need at least 1, got {seeds}" in capsys.readouterr().err
    assert not out.exists()


def test_cli_help_gives_the_syntax(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--set KEY=VALUE" in text and "Python literal" in text and "true/false" in text


# ---- a real recipe ---------------------------------------------------------------------------------

@needs_data
def test_an_override_changes_results_and_never_resumes_other_settings(tmp_path, monkeypatch):
    recipe = ex.get("nu-dynamics")
    same = tmp_path / "same"

    def run(out, overrides=None):
        counter = CountingExecutor()
        rows, _, info = run_recipe(recipe, "smoke", out=out, executor=counter, progress=False,
                                   stream=open(os.devnull, "w"), overrides=overrides)
        return counter.keys, Results(rows), info

    keys2, res2, info2 = run(same)
    keys1, res1, info1 = run(same, {"epochs": "1"})
    assert sorted(keys1) == sorted(keys2)  # nothing resumed from the 2-epoch run in the same folder
    assert info2["overrides"] == {} and info1["overrides"] == {"epochs": 1} and info1["settings"]["epochs"] == 1
    assert json.loads((same / "run.json").read_text())["overrides"] == {"epochs": 1}
    assert "Settings changed from the size's (`--set`): `epochs=1`. The notes under" in (same / "table.md").read_text()
    nu = "ν at end"
    assert res1.values("ReLU", nu) != res2.values("ReLU", nu)
    assert res1.values("ReLU", "ν at init") == res2.values("ReLU", "ν at init")  # same seed, same init
    for r in (json.loads(p.read_text()) for p in (same / "tasks").glob("*.json")):
        assert len(r["result"]["curve"]["epoch"]) == 2  # epochs 0 and 1
    # the default folder of an overridden run is its own; the same settings give the same numbers
    monkeypatch.chdir(tmp_path)
    keys, res, _ = run(None, {"epochs": 1})
    assert sorted(keys) == sorted(keys1) and res.rows == res1.rows
    assert (tmp_path / "gatednet-results" / "nu-dynamics-smoke-epochs=1" / "run.json").exists()
    assert run(same, {"epochs": 1})[0] == []  # same settings, same folder: resumed


@needs_data
def test_probe_honours_overrides():
    kw = dict(size="smoke", steps=2, target_seconds=0.02, stream=open(os.devnull, "w"))
    base = probe_recipe(ex.get("nu-dynamics"), **kw)
    short = probe_recipe(ex.get("nu-dynamics"), overrides={"epochs": "1"}, **kw)
    assert short["settings"]["epochs"] == 1 and short["overrides"] == {"epochs": 1} and base["overrides"] == {}

    def train_steps(report):
        return sum(u["units"] for r in report["rows"] for u in r["units"] if u["what"] == "train")
    assert 2 * train_steps(short) == train_steps(base) > 0  # half the epochs, half the steps


# ---- conv-gates: one task per gated net ---------------------------------------------------------------

def test_conv_gates_task_layout():
    recipe = ex.get("conv-gates")
    for size, n_seeds, per_seed in (("smoke", 1, 1 + 4 * 4), ("quick", 2, 1 + 4 * 4), ("paper", 1, 1 + 4 * 48)):
        s = recipe.settings(size)
        tasks = recipe.tasks(s, list(range(n_seeds)), "data")
        assert len(tasks) == n_seeds * per_seed == len({t.key for t in tasks})
        learnt = [t.key for t in tasks if t.kwargs.get("column") == cg.FL]
        assert len(learnt) == n_seeds * len(cg.wirings(s["permutations"], 0))
        for t in tasks:
            assert t.needs == ((f"relu-s{t.kwargs['seed']}",) if t.key in learnt else ())
            assert t.kwargs["epochs"] == (s.get("relu_epochs") or s["epochs"] if t.fn is cg.train_relu else s["epochs"])
        # first wave: every ReLU net and the columns that need none; second: the fixed learnt nets
        assert [sorted(t.key for t in w) for w in waves(tasks)] == [sorted(set(t.key for t in tasks) - set(learnt)),
                                                                    sorted(learnt)]
        assert [t.key for t in waves(tasks)[0][:n_seeds]] == [f"relu-s{k}" for k in range(n_seeds)]  # started first
    # an override of the gated nets' epochs leaves the ReLU (source) nets' own epochs
    s = apply_overrides(recipe.settings("quick"), check_overrides(recipe, "quick", {"epochs": "12"}))
    epochs = {t.fn.__name__: t.kwargs["epochs"] for t in recipe.tasks(s, [0], "data")}
    assert epochs == {"train_relu": 20, "train_wiring": 12}
    with pytest.raises(ValueError, match="columns: unknown"):
        recipe.tasks(dict(s, columns=["fixed learned"]), [0], "data")


class ShuffledPicklingExecutor:
    """Runs each list of tasks it gets in reverse order, each task a pickled copy (as a worker of a
    cluster gets it): the tasks of a list must be independent."""

    def __init__(self):
        self.waves = []

    def run(self, tasks, on_result):
        tasks = [pickle.loads(pickle.dumps(t)) for t in tasks]
        assert not any(t.needs for t in tasks)
        self.waves.append([t.key for t in tasks])
        for t in reversed(tasks):
            on_result(t.key, t())


@needs_data
def test_conv_gates_split_gives_the_numbers_of_one_process(tmp_path_factory):
    recipe = ex.get("conv-gates")
    s = recipe.settings("smoke")
    # the folder the other test modules' smoke runs use: resumed if one of them ran first
    serial = tmp_path_factory.getbasetemp() / "recipes-smoke" / "conv-gates"
    rows, verdicts, _ = run_recipe(recipe, "smoke", out=serial, progress=False, stream=open(os.devnull, "w"))
    executor = ShuffledPicklingExecutor()
    out = tmp_path_factory.mktemp("shuffled")
    rows2, verdicts2, _ = run_recipe(recipe, "smoke", out=out, executor=executor, progress=False,
                                     stream=open(os.devnull, "w"))
    assert rows2 == rows and [v.as_dict() for v in verdicts2] == [v.as_dict() for v in verdicts]
    assert len(executor.waves) == 2 and all(k.startswith("learnt-") for k in executor.waves[1])
    # the layout before the split, in one process: the ReLU net trained, then used (live) as the gate
    # source of every fixed-learnt wiring in turn; the per-wiring tasks give the same curves
    stored = {p.stem: json.loads(p.read_text())["result"] for p in (out / "tasks").glob("*.json")}
    x, y, xt, yt, shape, classes = _conv.images(D.DEFAULT_DATA, s["n_train"], s["n_test"])
    layers = _conv.c1_c4(s["filters"], classes)
    fit = dict(s["fit"], shuffle_seed=derive_seed("shuffle", 0))
    with gn.ConvNetwork(layers, shape, "relu", seed=derive_seed("conv-gates", 0, "relu")) as source:
        assert _conv.fit_curve(source, x, y, s["epochs"], "ReLU", (xt, yt), **fit) == stored["relu-s0"]["curve"]
        for permutation, value_input in cg.wirings(s["permutations"], 0):
            with gn.ConvNetwork(layers, shape, "fixed_learnt", permutation=permutation, value_input=value_input,
                                gate_source=source,
                                seed=derive_seed("conv-gates", 0, cg.FL, permutation, value_input)) as net:
                curve = _conv.fit_curve(net, x, y, s["epochs"], "FL", (xt, yt), **fit)
            assert curve == stored[cg.wiring_key(cg.FL, permutation, value_input, 0)]["curve"]


def test_probe_times_one_wiring_per_column():
    recipe = ex.get("conv-gates")
    kinds = task_kinds(recipe.tasks(recipe.settings("paper"), [0, 1], "data"))
    assert [(t.key, n) for t, n in kinds] == [("ii-p0123-x-s0", 96), ("di-p0123-x-s0", 96),
                                              ("decoupled-p0123-x-s0", 96), ("relu-s0", 2),
                                              ("learnt-p0123-x-s0", 96)]


def test_run_api_checks_overrides_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="unknown setting 'epoch' of recipe nu-dynamics"):
        ex.run("nu-dynamics", size="smoke", out=tmp_path / "x", progress=False, overrides={"epoch": 1})
    with pytest.raises(ValueError, match="setting epochs: expected int"):
        ex.probe("nu-dynamics", size="smoke", out=tmp_path / "x", overrides={"epochs": "one"})
    # values no size has: a count or rate that is positive in every size, a list never empty
    cg = ex.get("conv-gates")
    for key, value in (("epochs", 0), ("epochs", "-1"), ("fit.lr", "nan"), ("fit.lr", float("inf")),
                       ("n_train", 0), ("permutations", 0)):
        with pytest.raises(ValueError, match=f"setting {key}: must be a finite number > 0"):
            check_overrides(cg, "smoke", {key: value})
    with pytest.raises(ValueError, match="setting columns: must not be empty"):
        check_overrides(cg, "smoke", {"columns": []})
    with pytest.raises(ValueError, match="setting epochs: must be a finite number > 0"):
        ex.run("conv-gates", size="smoke", out=tmp_path / "x", progress=False, overrides={"epochs": 0})
    assert not (tmp_path / "x").exists()
    assert check_overrides(cg, "smoke", {"epochs": 3, "fit.lr": "1e-3"}) == {"epochs": 3, "fit.lr": 1e-3}
    nu = ex.get("nu-dynamics")  # a setting that is 0 in some size (n_test at paper) may be set to 0
    assert nu.settings("paper")["n_test"] == 0 and nu.settings("smoke")["n_test"] > 0
    assert check_overrides(nu, "smoke", {"n_test": 0}) == {"n_test": 0}


def test_every_setting_is_read_by_its_recipe():
    """A setting that no code of its recipe reads (s["key"] or s.get("key")) would be silently
    ignored by --set."""
    import inspect
    import sys
    from gatednet.experiments import verdicts
    shared = inspect.getsource(_conv) + inspect.getsource(verdicts)
    for name, recipe in ex.list_recipes().items():
        source = inspect.getsource(sys.modules[recipe.tasks.__module__]) + shared
        keys = set().union(*(recipe.settings(size) for size in ex.SIZES)) - {"seeds"}
        unread = sorted(k for k in keys if not re.search(rf'\[\s*"{k}"\s*\]|\.get\(\s*"{k}"', source))
        assert not unread, f"{name}: settings {unread} are never read"


# ---- npf-checkpoints: under the cosine decay every checkpoint is a point of one ReLU run ---------------

def test_npf_checkpoints_cosine_checkpoints_are_points_of_one_run():
    from gatednet.experiments.recipes import r10_npf_checkpoints as ck
    kw = dict(data=D.DEFAULT_DATA, seed=0, width=16, depth=3, n_train=300, n_test=200, value_epochs=2, lr=1e-3,
              batch=32, lr_schedule="cosine", relu_epochs=4)
    two, four = ck.checkpoint(epoch=2, **kw), ck.checkpoint(epoch=4, **kw)
    assert len(four["curves"][ck.RELU]["test"]) == 4
    assert four["curves"][ck.RELU]["train"][:2] == two["curves"][ck.RELU]["train"]  # the same run, cut at 2
    assert four["curves"][ck.RELU]["test"][:2] == two["curves"][ck.RELU]["test"]
    assert len(two["curves"][ck.FL]["test"]) == 2  # each value net its own decay over value_epochs
    for size in ("smoke", "quick"):  # the sizes the tests and the report run use the schedule
        assert ck.RECIPE.settings(size)["lr_schedule"] == "cosine"
