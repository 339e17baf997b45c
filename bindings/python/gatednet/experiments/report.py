"""The files a run writes: results.csv, table.md, run.json (and task results, atomically)."""
from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from pathlib import Path

from .recipe import UNDECIDED, Results, _mean, _std, diverged, nonfinite_text

__all__ = ["write_json", "write_text", "read_json", "jsonable", "write_csv", "table_markdown", "format_value", "md_cell"]


def jsonable(obj):
    """numpy scalars and arrays -> plain Python (json.dump's default hook)."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path, obj):
    """Write JSON atomically (a temporary file in the same directory, then rename)."""
    _write_atomic(path, lambda f: json.dump(obj, f, default=jsonable, indent=1, allow_nan=True))


def write_text(path, text):
    """Write text atomically: an interrupted write leaves the previous file whole."""
    _write_atomic(path, lambda f: f.write(text))


def _write_atomic(path, write, newline=None, binary=False):
    """``write(f)`` into a temporary file in ``path``'s directory, then rename it to ``path``
    (text files as UTF-8: table.md holds ± and γ)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline=newline, encoding="utf-8")) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_csv(path, rows):
    """One row per (setting, model, seed, metric); extra keys of the rows become extra columns."""
    columns = ["setting", "model", "seed", "metric", "value"]
    for r in rows:
        for k in r:
            if k not in columns:
                columns.append(k)
    def write(f):
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in columns})

    _write_atomic(path, write, newline="")  # an interrupted write leaves the previous file whole


def format_value(x, digits=2):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    ax = abs(x)
    if ax != 0 and (ax < 10 ** -digits or ax >= 1e5):
        return f"{x:.{digits + 1}g}"
    return f"{x:.{digits}f}"


def md_cell(text):
    """Text safe inside a markdown table cell (pipes escaped, no line breaks)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _paper_cell(entry):
    if entry is None:
        return ""
    if entry.get("text"):
        return entry["text"]
    cell = format_value(entry["value"])
    if entry.get("std") is not None:
        cell += f" ± {format_value(entry['std'])}"
    return cell


def table_markdown(recipe, rows, verdicts, dataset, settings, seeds, size):
    """table.md: the claims with their verdicts, then mean ± std over seeds beside the paper (and
    how many seeds diverged: their NaN or ±Inf values are not in the mean)."""
    res = Results(rows)
    lines = [f"# {recipe.name}: {recipe.title}", "",
             f"Reproduces {recipe.reproduces} of *{recipe.paper}*. Size `{size}`, seeds {seeds}, "
             f"data: {dataset} (paper: {recipe.paper_dataset}).", ""]
    if verdicts:
        lines += ["## Claims", ""]
        for v in verdicts:
            lines.append(f"- **{v.status}**: {v.claim} — {v.detail}")
        if any(v.status == UNDECIDED for v in verdicts):
            lines += ["", f"*{UNDECIDED}*: measured, but the measurements do not meet the claim's "
                      "preconditions at this size (the reason and its numbers follow \"undecided:\")."]
        lines.append("")
    lines += ["## Results", "",
              f"| setting | model | metric | ours ({dataset}), mean ± std | seeds | paper ({recipe.paper_dataset}) |",
              "|---|---|---|---|---|---|"]
    for setting, model, metric in res.groups():
        try:
            vals = res.values(model, metric, setting)
            ours = f"{format_value(_mean(vals))} ± {format_value(_std(vals))}"
            n = len(vals)
        except LookupError:
            ours, n = "–", 0
        lost = [r["value"] for r in res.select(model, metric, setting) if diverged(r)]
        if lost:
            ours += f"; {len(lost)} seed{'s' if len(lost) != 1 else ''} diverged ({nonfinite_text(lost)})"
        paper = _paper_cell(recipe.paper_value(setting, model, metric))
        cells = (setting, model, metric, ours, n, paper)
        lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
    lines.append("")
    if recipe.notes:
        lines += ["## Differences from the paper", "", recipe.notes.strip(), ""]
    lines += ["## Settings", "", "```", json.dumps(settings, indent=1, default=jsonable), "```", ""]
    return "\n".join(lines)
