"""A run that diverged counts as diverged everywhere a recipe turns it into numbers, verdicts and
tables treat ±Inf like NaN, and a stored result records the libgatednet of the process that ran
its task (a Dask worker's, not the client's).

Divergence here is real: SGD with a learning rate that overflows float32. With one minibatch per
epoch the engine's per-minibatch loss check never sees the blown-up weights (the last update is
not checked), so fit returns and the outputs are NaN/Inf; with several minibatches the next loss
is NaN and the engine raises GN_ERR_NOT_FINITE after restoring the network to its state before
the call."""
import dataclasses
import io
import json
import math
import os

import numpy as np
import pytest

import gatednet as gn
import gatednet.experiments as ex
from gatednet.experiments import HOLDS, UNDECIDED, Claim, Results
from gatednet.experiments import data as D
from gatednet.experiments import verdicts as V
from gatednet.experiments.common import accuracy, curve, train
from gatednet.experiments.recipe import Recipe
from gatednet.experiments.recipes import _conv
from gatednet.experiments.recipes import r01_fc_regimes as fc
from gatednet.experiments.report import table_markdown
from gatednet.experiments.runner import run_recipe
from gatednet.experiments.tasks import Task

from experiment_helpers import CountingExecutor

needs_data = pytest.mark.skipif(not os.path.isdir(D.DEFAULT_DATA),
                                reason=f"Fashion-MNIST not found in {D.DEFAULT_DATA}")

M = V.METRIC


def _problem(n=32):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    return x, (np.arange(n) % 3).astype(np.int32)


def _blown_up_by_the_last_update():
    """A net whose one SGD step (one minibatch) at lr 1e30 left its outputs overflowing float32:
    fit returns, its history's test accuracy is a finite 43.75 % (argmax of non-finite scores)."""
    x, y = _problem()
    net = gn.Network(4, [8], 3, seed=1)
    history = train(net, x, y, 1, "blown up", (x, y), lr=1e30, optimizer="sgd", batch_size=32)
    return net, history, x, y


# ---- 1. a classifier that diverged -------------------------------------------------------------------

def test_a_net_blown_up_by_its_last_update_scores_nan():
    net, history, x, y = _blown_up_by_the_last_update()
    assert len(history) == 1 and history[0]["epoch"] == 1
    # main: the curve held the engine's finite 43.75 % and accuracy() raised ArgumentError
    c = curve(history)
    assert math.isnan(c["test"][0]) and math.isnan(c["train"][0])
    assert math.isnan(_conv.best(c)) and math.isnan(_conv.end(c, 1))
    assert math.isnan(accuracy(net, x, y))
    # not trained again: a later call is NaN epochs, and the net stays diverged
    more = train(net, x, y, 2, "blown up", (x, y), lr=1e-3)
    assert [m["epoch"] for m in more] == [2, 3] and all(m.get("diverged") for m in more)
    assert all(math.isnan(v) for v in curve(more)["test"])


def test_a_net_whose_training_raised_is_nan_not_its_restored_state():
    """Several minibatches: the second minibatch's loss is NaN, the engine raises and restores the
    net to its state before the call; that state (here the untrained net) scores a finite
    accuracy, which must not stand for the run."""
    x, y = _problem(64)
    net = gn.Network(4, [8], 3, seed=1)
    first = train(net, x, y, 2, "ok", (x, y), lr=1e-3, optimizer="sgd", batch_size=8)
    assert not any(math.isnan(v) for v in curve(first)["test"])
    history = train(net, x, y, 3, "raises", (x, y), lr=1e30, optimizer="sgd", batch_size=8)
    assert [m["epoch"] for m in history] == [3, 4, 5] and all(m["diverged"] for m in history)
    assert net.epochs_trained == 2  # restored by the engine
    assert math.isnan(accuracy(net, x, y)) and math.isnan(_conv.best(curve(history)))
    # inputs that are not finite are a caller's error, not a divergence
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(gn.GatedNetError, match="NaN or Inf"):
        train(gn.Network(4, [8], 3, seed=1), bad, y, 1, "bad", lr=1e-3)
    with pytest.raises(gn.GatedNetError, match="NaN or Inf"):
        accuracy(gn.Network(4, [8], 3, seed=1), bad, y)


def test_fit_curve_of_a_blown_up_net_gives_nan_best_not_the_epoch_before():
    x, y = _problem(64)
    for schedule in (None, "cosine"):
        net = gn.Network(4, [8], 3, seed=1)
        c = _conv.fit_curve(net, x, y, 3, "c", (x, y), lr_schedule=schedule, lr=1e30, optimizer="sgd",
                            batch_size=64)
        assert all(math.isnan(v) for v in c["test"]), (schedule, c)
        assert math.isnan(_conv.best(c))
    # a curve that diverged after a good epoch: best is NaN, not the good epoch's value
    assert math.isnan(_conv.best({"test": [50.0, float("nan")]}))
    assert _conv.best({"test": [50.0, 60.0]}) == 60.0
    assert math.isnan(V.rise({"test": [50.0, 60.0, 61.0, float("nan")]}, 2))


@needs_data
def test_a_diverged_fc_regimes_seed_is_a_nan_row_and_leaves_its_claims_undecided():
    """A real task of fc-regimes: on main its accuracy() raised ArgumentError (mean_loss NaN), so a
    diverged seed crashed the run; now both the ReLU net and the fixed learnt net on its gates are
    NaN rows, which Claim.evaluate counts as diverged."""
    result = fc.run_column(D.DEFAULT_DATA, "tiny", 24, 3, "sgd", 1e30, "relu", 2, 64, 64, 1, 64)
    rows = {r["model"]: r["value"] for r in result["rows"]}
    assert set(rows) == {fc.RELU, fc.GL} and all(math.isnan(v) for v in rows.values())
    assert all(math.isnan(v) for v in result["curves"][fc.RELU]["test"])
    healthy = []
    for model, mean in ((fc.RELU, 88.0), (fc.GL, 87.5)):
        healthy += [dict(setting="tiny SGD", model=model, seed=s, metric=M, value=mean + d, rise=0.1)
                    for s, d in ((0, -0.1), (1, 0.1))]
    rec = ex.get("fc-regimes")
    claim = rec.claims[0]  # ReLU vs fixed learnt GL
    assert claim.evaluate(Results(healthy), {}).status == HOLDS
    v = claim.evaluate(Results(healthy + [dict(r, rise=None) for r in result["rows"]]), {})
    assert v.status == UNDECIDED and "1 of 3 seeds diverged (value NaN): ReLU (tiny SGD)" in v.detail


def test_a_recipe_run_whose_nets_diverge_completes_with_nan_rows_and_undecided_claims(tmp_path):
    """dlgn-halfspaces (synthetic data) at a learning rate that blows every net up: on main the
    engine's divergence error ended the run (ArgumentError: train: loss became -nan)."""
    recipe = dataclasses.replace(ex.get("dlgn-halfspaces"), plots=None)
    rows, verdicts, _ = run_recipe(recipe, "smoke", out=tmp_path, progress=False, stream=io.StringIO(),
                                   overrides={"lr": 1e30})
    assert rows and all(math.isnan(r["value"]) for r in rows)
    assert verdicts and all(v.status == UNDECIDED and "diverged (value NaN)" in v.detail for v in verdicts)
    assert "1 seed diverged (NaN)" in (tmp_path / "table.md").read_text()


def test_the_recipes_results_of_the_old_accuracy_rule_are_recomputed(tmp_path):
    """Every recipe that trains a classifier turns it into numbers by the new rule: its version is
    past 1, and a result stored by version 1 (the old rule) is recomputed, not resumed."""
    assert all(ex.get(name).version >= 2 for name in ex.list_recipes())
    recipe = dataclasses.replace(ex.get("dlgn-halfspaces"), plots=None)

    def run():
        counter = CountingExecutor()
        run_recipe(recipe, "smoke", out=tmp_path, executor=counter, progress=False, stream=io.StringIO())
        return counter.keys
    keys = run()
    assert keys and run() == []
    stored = tmp_path / "tasks" / f"{keys[0]}.json"
    record = json.loads(stored.read_text())
    assert record["recipe_version"] == recipe.version
    stored.write_text(json.dumps(dict(record, recipe_version=1)))
    assert run() == [keys[0]]


# ---- 2. ±Inf is diverged like NaN -------------------------------------------------------------------

def _two_groups(a=88.0, b=80.0, extra=()):
    rows = [dict(setting="", model=m, seed=s, metric=M, value=v + d)
            for m, v in (("A", a), ("B", b)) for s, d in ((0, -0.1), (1, 0.1))]
    return rows + list(extra)


def _a_beats_b(res, s):
    sd, df = V.spread(res, [("A", ""), ("B", "")])
    outcome, d, u, unmet, summary = V.pair(res, s, ("A", ""), ("B", ""), V.at_least, 1.0, sd)
    return V.conclude(outcome, f"Δ = {d:+.2f} {V.pm(u)}", unmet, sd)


def test_an_inf_seed_leaves_the_claim_that_reads_it_undecided():
    claim = Claim("A beats B by a point", _a_beats_b)
    assert claim.evaluate(Results(_two_groups()), {}).status == HOLDS
    for inf, text in ((math.inf, "+Inf"), (-math.inf, "-Inf")):
        v = claim.evaluate(Results(_two_groups(extra=[dict(setting="", model="A", seed=2, metric=M, value=inf)])), {})
        # main: the mean took the Inf, Δ = +inf ± nan, "undecided: the difference ± its noise band
        # straddles the threshold", a reason that hides the diverged seed
        assert v.status == UNDECIDED, (inf, v)
        assert v.detail.endswith(f"undecided: 1 of 3 seeds diverged (value {text}): A, {M}")
        assert "Δ = +8.00" in v.detail  # the seeds left, either way
    both = [dict(setting="", model="A", seed=2, metric=M, value=math.inf),
            dict(setting="", model="A", seed=3, metric=M, value=float("nan"))]
    v = claim.evaluate(Results(_two_groups(extra=both)), {})
    assert v.status == UNDECIDED and "2 of 4 seeds diverged (value NaN/+Inf): A" in v.detail
    assert Results(_two_groups(extra=both)).values("A", M) == pytest.approx([87.9, 88.1])


def test_inf_in_paired_differences_and_per_seed_samples_is_undecided():
    rows = _two_groups() + [dict(setting="", model="A", seed=2, metric=M, value=math.inf),
                            dict(setting="", model="B", seed=2, metric=M, value=80.0)]
    res = Results(rows)
    assert V.differences(res, ("A", M, ""), ("B", M, "")) == pytest.approx([8.0, 8.0])  # seed 2 left out

    def diffs_positive(res, s):
        outcome, text, sd = V.beyond(V.differences(res, ("A", M, ""), ("B", M, "")), 0.0, s)
        return V.conclude(outcome, text, [], sd)
    claim = Claim("A above B in every seed", diffs_positive)
    assert claim.evaluate(Results(_two_groups()), {}).status == HOLDS
    v = claim.evaluate(res, {})
    assert v.status == UNDECIDED and "1 of 3 seeds diverged (value +Inf): A" in v.detail
    # a per-seed statistic a check computes (e.g. a ratio) that is not finite: no mean of it
    claim = Claim("ratios above 1", lambda res, s: V.conclude(*V.beyond([2.0, math.inf, 3.0], 1.0, s, log=True)[:2],
                                                               [], None))
    v = claim.evaluate(Results([]), {})
    assert v.status == UNDECIDED and "1 of the 3 per-seed values is +Inf" in v.detail
    # the band tests never decide on a non-finite difference or band
    assert V.within(math.inf, 1.0, 0.1) is UNDECIDED and V.at_least(math.inf, 1.0, 0.1) is UNDECIDED
    assert V.at_least(2.0, 1.0, math.inf) is UNDECIDED and V.within(0.0, 1.0, 0.1) is True
    assert V.at_least(-math.inf, 1.0, 0.1) is UNDECIDED and V.at_least(0.0, 1.0, 0.1) is False


def test_a_run_whose_curve_diverged_is_not_converged():
    rows = [dict(setting="", model="A", seed=s, metric=M, value=88.0, rise=r) for s, r in ((0, 0.1), (1, math.nan))]
    res = Results(rows)
    unmet, _ = V.unconverged(res, [("A", "")], {})
    assert unmet == ["A has a run that diverged (rise NaN), convergence not measurable"]
    assert V.rising(res, ("A", ""), {}) is None


def test_table_counts_inf_seeds_as_diverged_and_keeps_them_out_of_the_mean():
    rec = ex.get("fc-regimes")
    rows = _two_groups(extra=[dict(setting="", model="A", seed=2, metric=M, value=math.inf),
                              dict(setting="", model="B", seed=2, metric=M, value=-math.inf),
                              dict(setting="", model="B", seed=3, metric=M, value=float("nan"))])
    table = table_markdown(rec, rows, [], "d", {}, [0, 1, 2, 3], "smoke")
    assert f"|  | A | {M} | 88.00 ± 0.14; 1 seed diverged (+Inf) | 2 |" in table
    assert f"|  | B | {M} | 80.00 ± 0.14; 2 seeds diverged (NaN/-Inf) | 2 |" in table


# ---- 3. the library version of the process that ran a task -------------------------------------------
# Workers import this module's functions by name (LocalCluster workers inherit sys.path).

def set_library_version(version):
    """Run on a worker: make it a worker of another libgatednet (as a host of a mixed cluster
    whose library was built from another commit); None restores the one it loaded."""
    gn.library_version = gn._core.library_version if version is None else version
    return os.getpid()


def which_process(seed):
    """A task: the process it ran in (a tenth of a second, so that both workers take tasks)."""
    import time
    time.sleep(0.1)
    return {"seed": seed, "pid": os.getpid()}


SWEEP = Recipe(name="sweep", title="sweep", paper="none", reproduces="nothing", paper_dataset="none",
               sizes={size: dict(seeds=6) for size in ("smoke", "quick", "paper")},
               tasks=lambda s, seeds, data: [Task(f"s{seed}", which_process, dict(seed=seed)) for seed in seeds],
               rows=lambda results, s: [dict(setting="", model="m", seed=r["seed"], metric="pid", value=r["pid"])
                                        for r in results.values()])


@pytest.fixture
def client(cluster):
    from distributed import Client
    with Client(cluster) as c:
        yield c
        c.run(set_library_version, None)


def _run_sweep(client, out):
    from gatednet import distributed as gd
    stream = io.StringIO()
    run_recipe(SWEEP, "smoke", out=out, executor=gd.DaskExecutor(client=client), progress=False, stream=stream)
    records = {p.stem: json.loads(p.read_text()) for p in (out / "tasks").glob("*.json")}
    return records, json.loads((out / "run.json").read_text()), stream.getvalue()


def test_a_stored_result_records_the_library_of_the_worker_that_ran_it(client, tmp_path):
    """main recorded the client's gatednet.library_version for every result, so a result a worker
    of another libgatednet computed was resumed as if this library had computed it."""
    ours = gn.library_version
    client.run(set_library_version, "9.9.9-worker")  # every worker runs another library
    records, info, text = _run_sweep(client, tmp_path)
    assert len(records) == 6 and info["tasks_run"] == 6
    assert {r["library_version"] for r in records.values()} == {"9.9.9-worker"}
    assert info["library_version"] == ours and info["tasks_run_other_library"] == 6  # run.json: the client's
    assert f"6 results computed by workers running libgatednet '9.9.9-worker', this is {ours!r}" in text
    # the runner's version rule then recomputes them: they are not this library's results
    records, info, text = _run_sweep(client, tmp_path)
    assert info["tasks_recomputed_other_library"] == 6 and info["tasks_run"] == 6
    # workers of this library: recomputed once more, stored as this library's, then resumed
    client.run(set_library_version, None)
    records, info, _ = _run_sweep(client, tmp_path)
    assert info["tasks_run"] == 6 and {r["library_version"] for r in records.values()} == {ours}
    assert info["tasks_run_other_library"] == 0
    _, info, text = _run_sweep(client, tmp_path)
    assert info["tasks_run"] == 0 and info["tasks_resumed"] == 6 and "recomputed" not in text


def test_a_mixed_cluster_records_each_workers_own_library(client, tmp_path):
    ours = gn.library_version
    workers = sorted(client.scheduler_info()["workers"])
    patched = client.run(set_library_version, "9.9.9-other", workers=[workers[0]])
    old_pid = next(iter(patched.values()))
    records, info, _ = _run_sweep(client, tmp_path)
    expected = {r["key"]: "9.9.9-other" if r["result"]["pid"] == old_pid else ours for r in records.values()}
    assert {k: r["library_version"] for k, r in records.items()} == expected
    assert set(expected.values()) == {ours, "9.9.9-other"}  # both workers took tasks
    assert info["tasks_run_other_library"] == sum(v != ours for v in expected.values())
    # a later run recomputes exactly the other library's results and resumes this library's
    _, info, _ = _run_sweep(client, tmp_path)
    assert info["tasks_recomputed_other_library"] == sum(v != ours for v in expected.values())
    assert info["tasks_resumed"] == sum(v == ours for v in expected.values())


def test_a_serial_run_records_this_processs_library(tmp_path, monkeypatch):
    monkeypatch.setattr(gn, "library_version", "9.9.9-here")
    run_recipe(SWEEP, "smoke", out=tmp_path, progress=False, stream=io.StringIO())
    versions = {json.loads(p.read_text())["library_version"] for p in (tmp_path / "tasks").glob("*.json")}
    assert versions == {"9.9.9-here"}
