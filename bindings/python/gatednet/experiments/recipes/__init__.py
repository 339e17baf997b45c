"""One module per recipe, found by gatednet.experiments.list_recipes() without registration: any
module here that defines ``RECIPE`` (a :class:`gatednet.experiments.Recipe`). Names start with
the recipe's number in issue 10 (``r01_fc_regimes``, ``r02_conv_gates``, ...), which orders the list.

A recipe module reads like the paper's setup section:

- a docstring: the paper's setup, what differs here and why, and the ``paper`` size's run time
  on 2 cores (measured or estimated);
- module-level task functions ``fn(**plain kwargs) -> JSON-serialisable result`` (a list of row
  dicts ``{setting, model, seed, metric, value}``, or a dict with ``"rows"`` and anything the
  plots need); datasets are passed as the ``data`` path and loaded with
  ``gatednet.experiments.data.load(data)`` (cached per process); report progress with
  ``common.train`` (fit with a progress callback) or ``progress.report``; every random choice
  from ``common.derive_seed(...)`` of the seed;
- ``tasks(settings, seeds, data) -> [Task(key, fn, kwargs)]``;
- claims: ``Claim(text, check)`` with ``check(results, settings) -> (bool, detail with numbers)``;
- ``RECIPE = Recipe(name=..., title=..., paper=..., reproduces=..., paper_dataset=...,
  sizes={"smoke": {...,"seeds": 1}, "quick": {...}, "paper": {...}}, tasks=tasks, claims=[...],
  paper_results=[{setting, model, metric, value, std | text}], plots=plots, notes=...)``.
"""
