"""The paper recipes (gatednet.experiments): every recipe at `smoke`, the files it writes, verdicts
computed from the numbers, resume without recomputation, reproducibility, data loading, the CLI."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import gatednet.experiments as ex
from gatednet.experiments import Results, Task
from gatednet.experiments import data as D
from gatednet.experiments.report import md_cell
from gatednet.experiments.runner import run_recipe

from experiment_helpers import CountingExecutor

pytestmark = pytest.mark.skipif(not os.path.isdir(D.DEFAULT_DATA),
                                reason=f"Fashion-MNIST not found in {D.DEFAULT_DATA}")

NAMES = list(ex.list_recipes())


def smoke_dir(tmp_path_factory, name):
    """One folder per recipe for the whole pytest session: another test module that runs a recipe
    at smoke size into it resumes these results instead of recomputing them."""
    return tmp_path_factory.getbasetemp() / "recipes-smoke" / name


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Every recipe once at smoke size: {name: (out_dir, rows, verdicts, info, executor)}."""
    runs = {}
    for name in NAMES:
        out = smoke_dir(tmp_path_factory, name)
        counter = CountingExecutor()
        rows, verdicts, info = run_recipe(ex.get(name), size="smoke", out=out, executor=counter, progress=False)
        if not counter.keys:  # resumed from an earlier module's run: the stored task keys
            counter.keys = [p.stem for p in (out / "tasks").glob("*.json")]
        runs[name] = (out, rows, verdicts, info, counter)
    return runs


def test_registry_finds_the_recipes():
    # recipes-a's six; recipes-b's are found the same way (module scan)
    for name in ("fc-regimes", "nu-dynamics", "dlgn-modified-fmnist", "dlgn-halfspaces", "npf-checkpoints",
                 "width-limit"):
        assert name in NAMES
    for rec in ex.list_recipes().values():
        assert rec.claims, f"{rec.name} tests no claim"
        assert {"smoke", "quick", "paper"} <= set(rec.sizes)
    with pytest.raises(KeyError, match="no recipe"):
        ex.get("no-such-recipe")


def test_cli_list():
    out = subprocess.run([sys.executable, "-m", "gatednet.experiments", "list"], capture_output=True,
                         text=True, check=True).stdout
    for name, rec in ex.list_recipes().items():
        line = next(l for l in out.splitlines() if l.startswith(name + " "))
        assert rec.reproduces in line and rec.paper in line


@pytest.mark.parametrize("name", NAMES)
def test_smoke_run_writes_every_file(smoke_runs, name):
    out, rows, verdicts, info, counter = smoke_runs[name]
    recipe = ex.get(name)
    assert rows and counter.keys, "the run produced nothing"
    for r in rows:
        assert {"setting", "model", "seed", "metric", "value"} <= set(r)
        assert np.isfinite(r["value"]), r
    # results.csv: one line per row, same values
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows)
    assert [float(t["value"]) for t in table] == pytest.approx([r["value"] for r in rows])
    # table.md: every (setting, model, metric) group and every claim with a computed verdict
    md = (out / "table.md").read_text()
    for setting, model, metric in Results(rows).groups():
        assert "| " + " | ".join(md_cell(c) for c in (setting, model, metric)) + " |" in md
    assert len(verdicts) == len(recipe.claims)
    for v, c in zip(verdicts, recipe.claims):
        assert v.status in (ex.HOLDS, ex.FAILS, ex.UNDECIDED), f"{name}: claim not tested at smoke size: {v}"
        assert f"**{v.status}**: {c.text}" in md
        assert any(ch.isdigit() for ch in v.detail), f"verdict without numbers: {v}"
    assert recipe.paper_dataset in md and info["dataset"] in md
    # run.json
    run = json.loads((out / "run.json").read_text())
    assert run["size"] == "smoke" and run["seeds"] == list(range(recipe.sizes["smoke"]["seeds"]))
    assert run["library_version"] and run["gatednet_version"] and run["wall_seconds"] > 0
    assert run["settings"]["seeds"] == len(run["seeds"])
    assert [v["verdict"] for v in run["verdicts"]] == [v.status for v in verdicts]
    # plots
    assert run["plots"], f"{name} made no plot"
    for p in run["plots"]:
        data = (out / p).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    # each task's result stored
    assert sorted(p.stem for p in (out / "tasks").glob("*.json")) == sorted(counter.keys)


def test_rerun_resumes_without_recomputing(smoke_runs):
    out, rows, _, _, first = smoke_runs["nu-dynamics"]
    again = CountingExecutor()
    rows2, _, info = run_recipe(ex.get("nu-dynamics"), size="smoke", out=out, executor=again, progress=False)
    assert again.keys == [] and info["tasks_resumed"] == len(first.keys)
    assert rows2 == rows
    # one stored result lost: exactly that task runs again, with the same numbers
    lost = first.keys[0]
    (out / "tasks" / f"{lost}.json").unlink()
    again = CountingExecutor()
    rows3, _, _ = run_recipe(ex.get("nu-dynamics"), size="smoke", out=out, executor=again, progress=False)
    assert again.keys == [lost] and rows3 == rows
    # a second seed only runs the new seed's tasks
    again = CountingExecutor()
    rows4, _, _ = run_recipe(ex.get("nu-dynamics"), size="smoke", seeds=2, out=out, executor=again, progress=False)
    assert sorted(again.keys) == sorted(k.replace("-s0", "-s1") for k in first.keys)
    assert {r["seed"] for r in rows4} == {0, 1}


def test_changed_settings_are_recomputed(tmp_path):
    recipe = ex.get("nu-dynamics")
    c1 = CountingExecutor()
    run_recipe(recipe, size="smoke", out=tmp_path, executor=c1, progress=False)
    changed = ex.Recipe(**{**recipe.__dict__, "sizes": {**recipe.sizes,
                                                         "smoke": {**recipe.sizes["smoke"], "epochs": 1}}})
    c2 = CountingExecutor()
    run_recipe(changed, size="smoke", out=tmp_path, executor=c2, progress=False)
    assert sorted(c2.keys) == sorted(c1.keys)


def test_same_seed_same_numbers(smoke_runs, tmp_path):
    name = "fc-regimes"
    rows, _, _ = run_recipe(ex.get(name), size="smoke", out=tmp_path, progress=False)
    assert rows == smoke_runs[name][1]


def test_run_api_returns_rows(smoke_runs):
    out = smoke_runs["width-limit"][0]
    result = ex.run("width-limit", size="smoke", out=out, progress=False)  # resumed: no recomputation
    records = result.to_dict("records") if hasattr(result, "to_dict") else result
    assert records == smoke_runs["width-limit"][1]


# The claims' verdicts on hand-made rows: test_experiments_verdicts.py.


def test_task_keys_and_executor_failures(tmp_path):
    with pytest.raises(ValueError, match="task key"):
        Task("bad/key", print)
    with pytest.raises(ValueError, match="task key"):
        Task("", print)

    def boom(**kw):
        raise RuntimeError("task failed")

    recipe = ex.Recipe(name="t", title="t", paper="p", reproduces="r", paper_dataset="d",
                       sizes={s: {"seeds": 1} for s in ex.SIZES},
                       tasks=lambda s, seeds, data: [Task("ok", _ok_task, {"v": 1}), Task("fails", boom)])
    with pytest.raises(RuntimeError, match="task failed"):
        run_recipe(recipe, size="smoke", out=tmp_path, progress=False)
    assert (tmp_path / "tasks" / "ok.json").exists()  # the finished task is kept for the re-run


def _ok_task(v):
    return [dict(setting="", model="m", seed=0, metric="x", value=v)]


def test_data_from_npz_and_idx(tmp_path):
    ds = D.load()
    assert ds.x_train.shape == (60000, 784) and ds.shape == (1, 28, 28) and ds.classes == 10
    assert ds.x_train.dtype == np.float32 and 0 <= ds.x_train.min() and ds.x_train.max() <= 1
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=rng.integers(0, 256, (50, 4, 4, 3), dtype=np.uint8), y_train=rng.integers(0, 3, 50),
             x_test=rng.integers(0, 256, (20, 4, 4, 3), dtype=np.uint8), y_test=rng.integers(0, 3, 20))
    t = D.load(path)
    assert t.x_train.shape == (50, 48) and t.shape == (3, 4, 4) and t.y_test.dtype == np.int32
    assert t.x_train.max() <= 1.0
    with pytest.raises(FileNotFoundError, match="--data"):
        D.load(tmp_path / "missing")
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="missing"):
        D.load(tmp_path / "partial.npz")


def test_cli_unknown_recipe():
    r = subprocess.run([sys.executable, "-m", "gatednet.experiments", "run", "no-such-recipe"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no recipe 'no-such-recipe'" in r.stderr and "fc-regimes" in r.stderr


def test_cli_run_and_distributed_flag(tmp_path):
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-m", "gatednet.experiments", "run", "nu-dynamics", "--size", "smoke",
                        "--out", str(tmp_path), "--no-progress"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "holds" in r.stdout and (tmp_path / "table.md").exists()
    try:
        import gatednet.distributed  # noqa: F401
    except ImportError:
        r = subprocess.run([sys.executable, "-m", "gatednet.experiments", "run", "nu-dynamics", "--size", "smoke",
                            "--out", str(tmp_path), "--workers", "2"], capture_output=True, text=True)
        assert r.returncode != 0 and "DaskExecutor" in r.stderr


def test_progress_text_display():
    import io
    from gatednet.experiments import progress
    stream = io.StringIO()
    progress.report("nobody listens", 1, 2, 0.5)  # no display in this process: a no-op
    with progress.Display("demo", total=3, done=1, stream=stream, use_tqdm=False) as display:
        progress.fit_callback("ReLU seed 0")({"epoch_in_call": 2, "epochs_in_call": 5, "test_accuracy": 0.875,
                                              "train_accuracy": 0.9})
        assert display.state == "ReLU seed 0 epoch 2/5 acc 0.875"
        nan = float("nan")
        progress.fit_callback("no test set")({"epoch_in_call": 1, "epochs_in_call": 5, "test_accuracy": nan,
                                              "train_accuracy": 0.5, "test_loss": nan, "train_loss": 0.7})
        assert display.state == "no test set epoch 1/5 acc 0.500"
        progress.fit_callback("regression")({"epoch_in_call": 3, "epochs_in_call": 5, "test_accuracy": nan,
                                             "train_accuracy": nan, "test_loss": 0.0125, "train_loss": 0.02})
        assert display.state == "regression epoch 3/5 loss 0.0125"
        progress.fit_callback("regression")({"epoch_in_call": 4, "epochs_in_call": 5, "test_accuracy": nan,
                                             "train_accuracy": nan, "test_loss": nan, "train_loss": 0.02})
        assert display.state == "regression epoch 4/5 loss 0.02"
        display.task_done("a")
        assert display.time_left() is not None and display.time_left() >= 0
    text = stream.getvalue()
    assert "| ReLU seed 0 epoch 2/5 acc 0.875" in text
    assert "[demo] 2/3 tasks" in text and "left | regression epoch 4/5 loss 0.02" in text
    assert progress._active is None
