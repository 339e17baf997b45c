"""Units of work a recipe is made of, and the executors that run them.

A :class:`Task` is a module-level function with plain keyword arguments (numbers, strings,
lists, dicts; datasets by path), so it can be pickled to another process or machine and its
JSON result stored under its key. An executor runs a list of tasks and hands each result back
to the calling process as it finishes; the runner stores it (``OUT/tasks/<key>.json``) so an
interrupted run resumes where it stopped.

A task may take the results of other tasks of the same run (``needs``, e.g. the trained net
whose gates several value nets copy). The runner then runs the tasks in waves (:func:`waves`)
and hands an executor only tasks whose needs are :func:`bind`-ed in: every task an executor
sees is independent of the others in its list and may run in any order, anywhere.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

__all__ = ["Task", "Executor", "SerialExecutor", "check_key", "bind", "waves"]

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]*$")


def check_key(key: str) -> str:
    """``key`` if it is a non-empty, filesystem-safe name (letters, digits, ``._=+-``), else ValueError."""
    if not isinstance(key, str) or not _KEY.match(key) or len(key) > 200:
        raise ValueError(f"task key {key!r}: use letters, digits and ._=+- (at most 200 characters)")
    return key


@dataclass(frozen=True)
class Task:
    """One unit of work: ``fn(**kwargs)`` returns a JSON-serialisable result.

    ``key``: unique, filesystem-safe name within a run (it names the stored result).
    ``fn``: a module-level (picklable) function. ``kwargs``: picklable plain values.
    ``needs``: keys of tasks of the same run whose results ``fn`` takes as the keyword argument
    ``inputs`` ({key: result}); see :func:`bind`."""

    key: str
    fn: Callable[..., Any]
    kwargs: dict = field(default_factory=dict)
    needs: tuple = ()

    def __post_init__(self):
        check_key(self.key)
        if not callable(self.fn):
            raise TypeError(f"task {self.key}: fn is not callable")
        if isinstance(self.needs, str) or not all(isinstance(k, str) for k in self.needs):
            raise TypeError(f"task {self.key}: needs must be a tuple of task keys, got {self.needs!r}")
        object.__setattr__(self, "needs", tuple(self.needs))
        if self.key in self.needs:
            raise ValueError(f"task {self.key}: needs itself")
        if self.needs and "inputs" in self.kwargs:
            raise ValueError(f"task {self.key}: kwargs 'inputs' is reserved for the results of its needs")

    def __call__(self):
        if self.needs:
            raise RuntimeError(f"task {self.key} needs the results of {', '.join(self.needs)}: bind(task, "
                               "results) before calling it")
        return self.fn(**self.kwargs)


def bind(task: Task, results: dict) -> Task:
    """``task`` with the results of its needs (looked up in ``results`` {key: result}) passed as
    the keyword argument ``inputs``: an independent task with the same key and no needs."""
    if not task.needs:
        return task
    missing = [k for k in task.needs if k not in results]
    if missing:
        raise KeyError(f"task {task.key}: no result yet for {', '.join(missing)}")
    return Task(task.key, task.fn, dict(task.kwargs, inputs={k: results[k] for k in task.needs}))


def waves(tasks: Sequence[Task], done=()) -> list:
    """``tasks`` in waves [[Task], ...]: each task comes in the first wave after every task it
    needs (those in ``done``, keys of results already at hand, need no wave). Within a wave, the
    tasks other tasks need come first (an executor that starts tasks in order then finishes them
    early rather than last), otherwise in the order of ``tasks``. ValueError for a need that is
    neither a task nor done, or a cycle."""
    keys = {t.key for t in tasks}
    have = set(done)
    for t in tasks:
        unknown = [k for k in t.needs if k not in keys and k not in have]
        if unknown:
            raise ValueError(f"task {t.key} needs {', '.join(unknown)}, which is not a task of this run")
    needed = {k for t in tasks for k in t.needs}
    out, left = [], sorted(tasks, key=lambda t: t.key not in needed)  # stable
    while left:
        wave = [t for t in left if all(k in have for k in t.needs)]
        if not wave:
            raise ValueError(f"tasks {', '.join(t.key for t in left[:5])}: their needs form a cycle")
        out.append(wave)
        have.update(t.key for t in wave)
        left = [t for t in left if t.key not in have]
    return out


@runtime_checkable
class Executor(Protocol):
    """Runs tasks; calls ``on_result(key, result)`` in the calling process as each task
    finishes (any order) and raises if a task failed (after the results already delivered)."""

    def run(self, tasks: Sequence[Task], on_result: Callable[[str, Any], None]) -> None: ...


class SerialExecutor:
    """Runs the tasks one after another in this process (the default executor)."""

    def run(self, tasks: Sequence[Task], on_result: Callable[[str, Any], None]) -> None:
        for task in tasks:
            on_result(task.key, task())

    def __repr__(self):
        return "SerialExecutor()"
