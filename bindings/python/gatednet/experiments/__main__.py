"""Command line: ``python -m gatednet.experiments list`` / ``run NAME [options]``."""
from __future__ import annotations

import argparse
import sys

from . import get, list_recipes
from .recipe import SIZES


def _executor(args):
    if args.scheduler is None and args.workers is None:
        if args.worker_timeout is not None:
            raise ValueError("--worker-timeout is for a Dask run: give --scheduler or --workers too")
        return None
    try:
        from gatednet.distributed import DaskExecutor
    except ImportError as e:
        raise SystemExit(f"--scheduler/--workers need gatednet.distributed.DaskExecutor (dask and "
                         f"distributed installed): {e}") from None
    return DaskExecutor(scheduler=args.scheduler, workers=args.workers, worker_timeout=args.worker_timeout)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gatednet.experiments",
                                     description="Reproduce the papers' tables and figures.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="name every recipe with the paper, table or figure it reproduces")
    r = sub.add_parser("run", help="run one recipe")
    r.add_argument("name")
    r.add_argument("--size", choices=SIZES, default="quick",
                   help="smoke: seconds; quick: a few minutes; paper: the paper's setup (default quick)")
    r.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the size's)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="change a setting of the size (repeatable), e.g. --set epochs=12 --set fit.lr=3e-3 "
                        "--set \"columns=['fixed learnt','ReLU']\". KEY: a key of the size's settings (printed "
                        "in table.md / run.json; KEY.SUBKEY inside a dict setting). VALUE: of the type it "
                        "replaces: int or float (12, 3e-4), bool (true/false), str as is, list/tuple/dict as "
                        "a Python literal; None leaves out a setting that some size leaves out "
                        "(--set lr_schedule=None). "
                        "The seed count is --seeds, not a setting")
    r.add_argument("--out", default=None,
                   help="output folder (default gatednet-results/NAME-SIZE, then the --set settings if any)")
    r.add_argument("--data", default=None,
                   help="IDX directory laid out like Fashion-MNIST, or .npz with x_train/y_train/x_test/y_test")
    r.add_argument("--scheduler", default=None, help="Dask scheduler address (distributed run)")
    r.add_argument("--workers", type=int, default=None, help="local Dask workers (distributed run)")
    r.add_argument("--worker-timeout", type=float, default=None, metavar="SECONDS",
                   help="give up (TimeoutError) after this long without any Dask worker; default: wait, "
                        "warning every 30 s")
    r.add_argument("--no-progress", action="store_true", help="no progress display")
    r.add_argument("--probe", action="store_true",
                   help="do not run: time one task of each kind with capped training and extrapolate the "
                        "run time of the whole size (writes OUT/probe.json)")
    r.add_argument("--probe-steps", type=int, default=5, metavar="K",
                   help="minibatch steps of each timed training call of --probe (default 5; at least 2)")
    args = parser.parse_args(argv)

    if args.command == "list":
        all_recipes = list_recipes()
        width = max(len(n) for n in all_recipes) if all_recipes else 0
        for name, rec in all_recipes.items():
            print(f"{name:<{width}}  {rec.reproduces} of \"{rec.paper}\": {rec.title}")
        return 0

    try:
        recipe = get(args.name)
    except KeyError as e:
        parser.error(str(e.args[0]))
    from .overrides import check_overrides, parse_assignments
    from .runner import build_tasks, resolve
    try:
        overrides = check_overrides(recipe, args.size, parse_assignments(args.overrides))
        # the run's tasks, built (cheaply, no data is read) to check the settings and --seeds
        # together before any work: e.g. a --set column name the recipe does not know
        build_tasks(recipe, *resolve(recipe, args.size, args.seeds, args.data, overrides))
    except ValueError as e:
        parser.error(str(e))
    if args.probe:
        if args.scheduler is not None or args.workers is not None:
            parser.error("--probe runs in this process: drop --scheduler/--workers")
        if args.probe_steps < 2:
            parser.error(f"--probe-steps: need at least 2, got {args.probe_steps}")
        from .probe import probe_recipe
        from .runner import default_out
        probe_recipe(recipe, size=args.size, seeds=args.seeds, data=args.data, steps=args.probe_steps,
                     out=args.out if args.out is not None else default_out(recipe.name, args.size, overrides),
                     overrides=overrides)
        return 0
    from .runner import run_recipe
    try:
        executor = _executor(args)
    except ValueError as e:  # e.g. --workers 0
        parser.error(f"--scheduler/--workers/--worker-timeout: {e}")
    try:
        run_recipe(recipe, size=args.size, seeds=args.seeds, out=args.out, data=args.data,
                   executor=executor, progress=not args.no_progress, overrides=overrides)
    finally:
        close = getattr(executor, "close", None)
        if close is not None:
            close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
