"""Running a recipe: tasks (skipping those already stored), rows, verdicts, files."""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from . import data as _data
from .progress import Display
from .overrides import apply_overrides, check_overrides, folder_suffix
from .recipe import Results
from .report import jsonable, read_json, table_markdown, write_csv, write_json, write_text
from .tasks import Executor, SerialExecutor, Task, bind, waves

__all__ = ["run_recipe", "default_out", "resolve", "build_tasks"]


def default_out(name, size, overrides=None):
    """gatednet-results/NAME-SIZE, followed by the changed settings (:func:`folder_suffix`) when
    ``overrides`` (checked, see check_overrides) changes any: runs of different settings never
    share a folder."""
    suffix = folder_suffix(overrides)
    return Path("gatednet-results") / (f"{name}-{size}" + (f"-{suffix}" if suffix else ""))


def _plain(obj):
    """kwargs as they read back from JSON (tuples -> lists, numpy -> Python)."""
    return json.loads(json.dumps(obj, default=jsonable))


def _needs(task, by_key):
    """What a task's result depends on beyond its own kwargs: {needed key: {"kwargs", "needs"}}
    of the tasks it takes results from, recursively ({} for an independent task)."""
    return {k: {"kwargs": _plain(by_key[k].kwargs), "needs": _needs(by_key[k], by_key)} for k in task.needs}


def _fn_name(task):
    return f"{getattr(task.fn, '__module__', '?')}.{getattr(task.fn, '__qualname__', repr(task.fn))}"


def _versions():
    """{"library_version", "gatednet_version"}: of the libgatednet (the engine, whose numbers a task
    computes) and the Python package this process loaded, as run.json records them; every stored
    task result records those of the process that ran it (run_recording_versions)."""
    import gatednet
    return {"library_version": gatednet.library_version, "gatednet_version": gatednet.__version__}


# the keyword under which run_recording_versions gets the task's own function
_TASK_FN = "__gatednet_task_fn__"


def run_recording_versions(**kwargs):
    """Run a task's function (``kwargs[_TASK_FN]``, called with the other kwargs) and return
    {"result": its result, "made_by": :func:`_versions`} of the process that ran it: on a Dask
    worker, the libgatednet that worker loaded, which may not be the client's."""
    fn = kwargs.pop(_TASK_FN)
    result = fn(**kwargs)
    return {"result": result, "made_by": _versions()}


def _recording_versions(task):
    """``task`` (bound: no needs) as one that returns its result with the versions of the process
    that runs it (:func:`run_recording_versions`): an executor sends this, whatever it is."""
    return Task(task.key, run_recording_versions, dict(task.kwargs, **{_TASK_FN: task.fn}))


def _stored(task_dir, task, by_key, version, library):
    """(record, None): the stored result of ``task`` if one exists for the same kwargs (and the
    same kwargs of the tasks it needs), the recipe's result ``version`` and the ``library``
    version; (None, its library version) for a result of another libgatednet; else (None, None).
    A task is a function of its kwargs (and its needs' results) alone, so every setting that can
    change its result is among them: a result computed under other settings, by a recipe whose
    results changed since (Recipe.version) or by another libgatednet (whose fixes may change
    numbers) is never resumed.
    A record without a library version (stored before it was recorded) is resumed: its version
    is unknown, and recomputing every such result could cost days; run_recipe says so."""
    path = task_dir / f"{task.key}.json"
    if not path.exists():
        return None, None
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return None, None  # unreadable (e.g. disk full mid-write of an old version): recompute
    if record.get("kwargs") != _plain(task.kwargs) or record.get("needs", {}) != _needs(task, by_key):
        return None, None  # the recipe's settings changed since: recompute
    if record.get("fn", _fn_name(task)) != _fn_name(task):
        return None, None  # another function's result under the same key (e.g. another recipe, same --out)
    if record.get("recipe_version", 1) != version:
        return None, None  # computed by a recipe whose results had another form: recompute
    if record.get("library_version", library) != library:
        return None, record["library_version"]  # another engine, maybe other numbers: recompute
    return record, None


def resolve(recipe, size, seeds, data, overrides=None):
    """(settings, seed list, data path) of a run of ``recipe`` at ``size``: ``overrides``
    ({setting: value}, see :mod:`.overrides`) checked and applied to the size's settings;
    ``seeds`` (None: the size's own count) must be at least 1; ``data`` None is the default
    dataset."""
    settings = apply_overrides(recipe.settings(size), check_overrides(recipe, size, overrides))
    if isinstance(seeds, bool) or (isinstance(seeds, float) and not seeds.is_integer()):
        raise ValueError(f"seeds: expected a whole number of seeds, got {seeds!r}")
    n_seeds = int(seeds if seeds is not None else settings.get("seeds", 1))
    if n_seeds < 1:
        raise ValueError(f"seeds: need at least 1, got {n_seeds}")
    settings["seeds"] = n_seeds
    # an absolute path: tasks (and stored results, whose kwargs hold it) name the same data from
    # any working directory, a Dask worker's included
    return settings, list(range(n_seeds)), os.path.abspath(os.path.expanduser(os.fspath(data or _data.DEFAULT_DATA)))


def build_tasks(recipe, settings, seed_list, data_path):
    """(tasks, {key: task}) of a run (see :func:`resolve`); ValueError, before any work, for a
    key used twice (e.g. a --set list naming a column twice) or needs that are not tasks of the
    run or form a cycle."""
    tasks = recipe.tasks(settings, seed_list, data_path)
    by_key = {}
    for t in tasks:
        if t.key in by_key:
            raise ValueError(f"recipe {recipe.name}: task key {t.key!r} used twice (a setting that names "
                             f"the same entry twice?)")
        by_key[t.key] = t
    waves(tasks)  # every need is a task of the run, without cycles
    return tasks, by_key


def _header(table, overrides):
    """table.md with a line naming the changed settings after its "Reproduces ..." line."""
    if not overrides:
        return table
    lines = table.split("\n")
    at = next((i + 1 for i, line in enumerate(lines) if line.startswith("Reproduces ")), 1)
    changed = ", ".join(f"`{k}={json.dumps(v, default=jsonable)}`" for k, v in overrides.items())
    line = (f"Settings changed from the size's (`--set`): {changed}. The notes under \"Differences from the "
            f"paper\" describe the size's own settings; the run's are under \"Settings\".")
    return "\n".join(lines[:at] + ["", line] + lines[at:])


def run_recipe(recipe, size="quick", seeds=None, out=None, data=None, executor=None, progress=True,
               stream=None, overrides=None):
    """Run ``recipe`` (see gatednet.experiments.run); returns (rows, verdicts, run_info)."""
    stream = stream or sys.stdout
    changed = check_overrides(recipe, size, overrides)
    settings, seed_list, data_path = resolve(recipe, size, seeds, data, changed)
    executor = executor or SerialExecutor()
    if isinstance(executor, type):  # the class has a run method too: it would fail deep inside
        raise TypeError(f"executor: pass an instance, e.g. {executor.__name__}(...), not the class")
    if not isinstance(executor, Executor):
        raise TypeError(f"executor: needs a run(tasks, on_result) method, got {type(executor).__name__}")
    tasks, by_key = build_tasks(recipe, settings, seed_list, data_path)

    dataset = recipe.dataset or _data.dataset_name(data_path)
    # expanduser: "--out=~/x" reaches us unexpanded (the shell expands only a leading ~)
    out = Path(out).expanduser() if out is not None else default_out(recipe.name, size, changed)
    task_dir = out / "tasks"
    task_dir.mkdir(parents=True, exist_ok=True)
    results, resumed, task_seconds = {}, [], {}
    made_by = _versions()
    library = made_by["library_version"]
    other_library, unknown_library, ran_other_library = {}, 0, {}
    for t in tasks:
        record, old = _stored(task_dir, t, by_key, recipe.version, library)
        if old is not None:
            other_library[old] = other_library.get(old, 0) + 1
        if record is not None:
            results[t.key] = record["result"]
            task_seconds[t.key] = record.get("seconds_since_previous", 0.0)
            resumed.append(t.key)
            unknown_library += "library_version" not in record
    todo = [t for t in tasks if t.key not in results]

    started = time.monotonic()
    began = datetime.now(timezone.utc).isoformat(timespec="seconds")
    print(f"{recipe.name} ({recipe.reproduces}, {recipe.paper}), size {size}, seeds {seed_list}"
          + "".join(f", {k}={v!r}" for k, v in changed.items())
          + f": {len(tasks)} tasks, {len(resumed)} already in {task_dir}", file=stream, flush=True)
    if other_library:
        print(f"{sum(other_library.values())} stored results recomputed: computed by libgatednet "
              + ", ".join(f"{v!r}" for v in other_library) + f", this is {library!r} (its numbers may differ)",
              file=stream, flush=True)
    if unknown_library:
        print(f"{unknown_library} stored results resumed without a recorded libgatednet version (stored before "
              f"it was recorded; this is {library!r}): delete them from {task_dir} to recompute them",
              file=stream, flush=True)

    with Display(recipe.name, len(tasks), len(resumed), enabled=progress) as display:
        last = [time.monotonic()]

        def on_result(key, ran):
            if key not in by_key:
                raise KeyError(f"executor returned an unknown task key {key!r}")
            # the versions of the process that ran the task (a worker's may differ from ours): a
            # later run recomputes the result by _stored's rule if its library is not that run's
            result, ran_by = ran["result"], ran["made_by"]
            if ran_by["library_version"] != library:
                ran_other_library[ran_by["library_version"]] = ran_other_library.get(ran_by["library_version"], 0) + 1
            now = time.monotonic()
            record = {"key": key, "fn": _fn_name(by_key[key]), "kwargs": _plain(by_key[key].kwargs), "result": result,
                      "needs": _needs(by_key[key], by_key), "recipe_version": recipe.version, **ran_by,
                      "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      "seconds_since_previous": round(now - last[0], 3)}
            last[0] = now
            task_seconds[key] = record["seconds_since_previous"]
            write_json(task_dir / f"{key}.json", record)
            results[key] = _plain(result)
            display.task_done(key)

        # a task runs in the wave after the tasks it needs; within a wave, in any order
        for wave in waves(todo, done=results):
            executor.run([_recording_versions(bind(t, results)) for t in wave], on_result)
    if ran_other_library:
        print(f"{sum(ran_other_library.values())} results computed by workers running libgatednet "
              + ", ".join(f"{v!r}" for v in ran_other_library) + f", this is {library!r}: stored as theirs (a later "
              "run here recomputes them)", file=stream, flush=True)

    missing = [t.key for t in tasks if t.key not in results]
    if missing:
        raise RuntimeError(f"executor finished without results for {len(missing)} task(s): {missing[:5]}")
    ordered = {t.key: results[t.key] for t in tasks}
    rows = recipe.rows(ordered, settings)
    write_csv(out / "results.csv", rows)  # first: the measurements stand whatever follows
    res = Results(rows)
    verdicts = [c.evaluate(res, settings) for c in recipe.claims]

    plots, plot_error = [], None
    if recipe.plots is not None:
        try:
            plots = list(recipe.plots(ordered, rows, settings, str(out)) or [])
        except ImportError as e:  # matplotlib missing: the tables still stand
            print(f"plots skipped: {e}", file=stream)
        except Exception as e:  # e.g. a model every seed of which diverged (NaN): the tables still stand
            print(f"plots failed, the tables are written: {type(e).__name__}: {e}", file=stream)
            plot_error = f"{type(e).__name__}: {e}"
    wall = time.monotonic() - started

    write_text(out / "table.md", _header(table_markdown(recipe, rows, verdicts, dataset, settings, seed_list, size),
                                         changed))
    info = {
        "recipe": recipe.name, "paper": recipe.paper, "reproduces": recipe.reproduces, "size": size,
        "seeds": seed_list, "settings": settings, "overrides": changed, "data": data_path, "dataset": dataset,
        **made_by,
        "python": platform.python_version(), "machine": platform.machine(),
        "started": began, "wall_seconds": round(wall, 3),
        # time between consecutive results, summed over every task including resumed ones: the
        # compute time of the whole run for a serial executor
        "task_seconds": round(sum(task_seconds.values()), 3),
        "tasks": len(tasks), "tasks_resumed": len(resumed), "tasks_run": len(todo),
        # resumed results stored before the library version was recorded (see _stored)
        "tasks_resumed_library_unknown": unknown_library,
        "tasks_recomputed_other_library": sum(other_library.values()),
        # results computed under another libgatednet than this process's (Dask workers), stored as such
        "tasks_run_other_library": sum(ran_other_library.values()),
        "executor": repr(executor), "plots": plots, "plot_error": plot_error,
        "verdicts": [v.as_dict() for v in verdicts],
    }
    write_json(out / "run.json", info)

    print(f"\n{recipe.name}: {len(rows)} result rows in {out}/results.csv, table in {out}/table.md "
          f"({wall:.1f} s)", file=stream)
    for v in verdicts:
        print(f"  {v}", file=stream)
    return rows, verdicts, info
