"""Units of work a recipe is made of, and the executors that run them.

A :class:`Task` is a module-level function with plain keyword arguments (numbers, strings,
lists, dicts; datasets by path), so it can be pickled to another process or machine and its
JSON result stored under its key. An executor runs a list of tasks and hands each result back
to the calling process as it finishes; the runner stores it (``OUT/tasks/<key>.json``) so an
interrupted run resumes where it stopped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

__all__ = ["Task", "Executor", "SerialExecutor", "check_key"]

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
    ``fn``: a module-level (picklable) function. ``kwargs``: picklable plain values."""

    key: str
    fn: Callable[..., Any]
    kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        check_key(self.key)
        if not callable(self.fn):
            raise TypeError(f"task {self.key}: fn is not callable")

    def __call__(self):
        return self.fn(**self.kwargs)


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
