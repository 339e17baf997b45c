"""The papers' experiments as runnable recipes: one command per table or figure.

``python -m gatednet.experiments list`` names the recipes; ``python -m gatednet.experiments run
NAME [--size smoke|quick|paper] [--seeds K] [--set KEY=VALUE ...] [--out DIR] [--data PATH]``
runs one, and so does `run` from Python (``--set``: change a setting of the size, see
:mod:`gatednet.experiments.overrides`). ``run NAME --probe`` (or `probe`) measures instead how long a run would take. Every run writes ``results.csv``, ``table.md`` (ours beside the paper,
with the verdict of each claim the recipe tests), the plots as PNG and ``run.json`` to its
output folder; results of finished tasks are kept in ``OUT/tasks/`` so a re-run resumes.

Recipes are the modules of :mod:`gatednet.experiments.recipes` that define ``RECIPE`` (a
:class:`Recipe`); a new module there is picked up by ``list`` without registration.
"""
from __future__ import annotations

import importlib
import pkgutil

from .recipe import Claim, Missing, Undecidable, Recipe, Results, Verdict, decide, HOLDS, FAILS, UNTESTED, UNDECIDED, SIZES
from .tasks import Executor, SerialExecutor, Task

__all__ = ["run", "probe", "list_recipes", "get", "Recipe", "Claim", "Results", "Verdict", "Missing", "Undecidable", "Task",
           "Executor", "SerialExecutor", "decide", "HOLDS", "FAILS", "UNTESTED", "UNDECIDED", "SIZES"]


def list_recipes():
    """{name: Recipe} of every module in gatednet.experiments.recipes that defines RECIPE,
    in the order of the papers' recipe numbers (module names sort so)."""
    import importlib as _il
    package = _il.import_module(f"{__name__}.recipes")
    found = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        recipe = getattr(module, "RECIPE", None)
        if isinstance(recipe, Recipe):
            if recipe.name in found:
                raise RuntimeError(f"recipe name {recipe.name!r} defined twice ({info.name})")
            found[recipe.name] = recipe
    return found


def get(name):
    """The recipe called ``name`` (KeyError listing the names if there is none)."""
    all_recipes = list_recipes()
    if name not in all_recipes:
        raise KeyError(f"no recipe {name!r}; recipes: {', '.join(all_recipes)}")
    return all_recipes[name]


def run(name, size="quick", seeds=None, out=None, data=None, executor=None, progress=True, overrides=None):
    """Run recipe ``name`` at ``size`` ("smoke", "quick" or "paper") over ``seeds`` seeds (default:
    the size's count) into ``out`` (default ``gatednet-results/NAME-SIZE``, followed by the changed
    settings if any) on the dataset at ``data`` (IDX directory or .npz; default Fashion-MNIST).
    ``executor``: where tasks run (default :class:`SerialExecutor`; e.g.
    ``gatednet.distributed.DaskExecutor``). ``overrides``: {setting: value} replacing entries of
    the size's settings (``recipe.settings(size)``; "fit.lr" for an entry of a dict setting), each
    checked against the type of the value it replaces before any work (ValueError naming the
    key); see :mod:`gatednet.experiments.overrides`.

    Returns the result rows (dicts with setting, model, seed, metric, value), as a pandas
    DataFrame when pandas is installed. The verdicts are in ``OUT/run.json`` and ``OUT/table.md``
    (and printed)."""
    from .runner import run_recipe
    recipe = name if isinstance(name, Recipe) else get(name)
    rows, _verdicts, _info = run_recipe(recipe, size=size, seeds=seeds, out=out, data=data,
                                        executor=executor, progress=progress, overrides=overrides)
    try:
        import pandas
    except ImportError:
        return rows
    return pandas.DataFrame(rows)


# The submodule first: importing it binds the package attribute "probe" to the module, which the
# function below then replaces for good (a submodule already imported is not bound again).
from . import probe as _probe_module  # noqa: E402,F401


def probe(name, size="paper", seeds=None, out=None, data=None, steps=5, stream=None, overrides=None):
    """Measured estimate of how long ``run(name, size, seeds, overrides=overrides)`` takes on this machine, without
    running it: one task of each kind runs with training capped at ``steps`` minibatch steps per
    call (and kernels / solves on blocks); see :mod:`gatednet.experiments.probe`. Returns the
    report dict (``estimate_seconds``, one row per task kind, the load average); with ``out``,
    also writes ``OUT/probe.json``."""
    from .probe import probe_recipe
    recipe = name if isinstance(name, Recipe) else get(name)
    return probe_recipe(recipe, size=size, seeds=seeds, data=data, out=out, steps=steps, stream=stream,
                        overrides=overrides)
