"""Run experiment tasks (trainings of a sweep) as Dask tasks.

The executor contract of gatednet.experiments: a task has ``key`` (unique str), ``fn`` (a
module-level function, pickled by reference) and ``kwargs`` (plain values), and returns a
JSON-serialisable result; ``run(tasks, on_result)`` calls ``on_result(key, result)`` in the
calling process as each task finishes (any order), so the runner can persist it at once."""

from __future__ import annotations

import atexit
import itertools
import json
import os
import uuid

from ._common import MAX_CANCELLED, WorkerWatch, check_worker_timeout, close_client, connect, lost


def _call(fn, kwargs):
    """Worker side: run one task and check its result can be persisted as JSON, as the runner
    persists it (numpy scalars and arrays as plain numbers and lists: a result a SerialExecutor
    accepts is accepted here too)."""
    from gatednet.experiments.report import jsonable

    result = fn(**kwargs)
    try:
        json.dumps(result, default=jsonable)
    except (TypeError, ValueError) as e:
        raise TypeError(f"result of {getattr(fn, '__qualname__', fn)!r} is not JSON-serialisable: {e}") from None
    return result


def _scatter_needed(client, tasks, watch):
    """{id(result): future} for the results of needed tasks (``kwargs["inputs"]``, see
    gatednet.experiments.tasks.bind), each scattered to the cluster once: a result many tasks
    take (e.g. a trained net whose gates 48 value nets copy) then travels once, not once per task."""
    shared = {}
    for t in tasks:
        for result in (t.kwargs.get("inputs") or {}).values():
            if id(result) not in shared:
                watch.wait_for_worker()  # a scatter needs a worker
                shared[id(result)] = client.scatter(result, hash=False)
    return shared


def _with_shared(kwargs, shared):
    """kwargs with each needed result replaced by its scattered future (Dask passes the task the
    value: futures nested in a dict argument are resolved on the worker)."""
    kwargs = dict(kwargs)
    if kwargs.get("inputs"):
        kwargs["inputs"] = {k: shared[id(v)] for k, v in kwargs["inputs"].items()}
    return kwargs


class TaskFailed(RuntimeError):
    """One or more tasks raised; ``failures`` maps each failed key to its exception."""

    def __init__(self, failures, total):
        self.failures = failures
        key, exc = next(iter(failures.items()))
        more = f" (and {len(failures) - 1} more: {', '.join(list(failures)[1:4])})" if len(failures) > 1 else ""
        super().__init__(f"{len(failures)} of {total} tasks failed; {key!r}: {type(exc).__name__}: {exc}{more}")


class DaskExecutor:
    """Executor on a Dask cluster.

    ``scheduler``: address of a running scheduler ("tcp://host:8786", started with
    ``dask scheduler``; workers with ``dask worker ADDRESS``); ``workers``: without a scheduler,
    start a LocalCluster of that many processes (one thread each; default: os.cpu_count()).
    ``client``: use an existing distributed.Client instead. ``timeout``: seconds to wait for
    the scheduler (ConnectionError after it, before any task is sent). The connection is made
    on first use and closed by :meth:`close` (or ``with``); a cluster it started is shut down.

    ``run`` sends every task at once (the scheduler balances them), reports results as they
    finish, and lets the other tasks finish when one fails so their results are kept; it then
    raises :class:`TaskFailed` (a RuntimeError) naming the failed keys. An exception raised by
    ``on_result`` cancels the remaining tasks and propagates.

    While the cluster has no worker (none started, or all gone mid-run) ``run`` warns
    (RuntimeWarning naming the scheduler and ``dask worker ADDRESS``) within seconds and then every
    30 s; ``worker_timeout`` (seconds; None = wait as long as it takes, for clusters that add
    workers later) raises TimeoutError after that long without any worker, cancelling the
    tasks not finished (those finished were already given to ``on_result``).
    """

    def __init__(self, scheduler=None, workers=None, *, client=None, timeout=10.0, worker_timeout=None,
                 **cluster_options):
        if client is not None and (scheduler is not None or workers is not None):
            raise ValueError("give client= or scheduler=/workers=, not both")
        if scheduler is not None and workers is not None:
            raise ValueError("give either scheduler= (an address) or workers= (a local cluster), not both")
        # checked here, not at the first run (after the caller may have prepared its output)
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers: expected a positive number of processes, got {workers!r}")
        if scheduler is not None and (not isinstance(scheduler, str) or not scheduler):
            raise ValueError(f"scheduler: expected an address such as 'tcp://host:8786', got {scheduler!r}")
        self.scheduler, self.workers, self.timeout = scheduler, workers, timeout
        self.worker_timeout = check_worker_timeout(worker_timeout)
        self._options = cluster_options
        self._client = client
        self._owned = False

    @property
    def client(self):
        if self._client is None:
            workers = self.workers if self.scheduler is not None or self.workers is not None else os.cpu_count()
            self._client = connect(self.scheduler, None if self.scheduler else workers, self.timeout,
                                   **self._options)
            self._owned = True
            atexit.register(self.close)  # e.g. the experiments CLI, which does not close executors
        return self._client

    def run(self, tasks, on_result):
        tasks = list(tasks)
        keys = [t.key for t in tasks]
        if len(set(keys)) != len(keys):
            dup = sorted({k for k in keys if keys.count(k) > 1})
            raise ValueError(f"tasks: duplicate keys {', '.join(map(repr, dup[:5]))}")
        for t in tasks:
            if not isinstance(t.key, str):
                raise TypeError(f"task key {t.key!r}: expected a str")
            name = getattr(t.fn, "__qualname__", "")
            if not callable(t.fn) or "<lambda>" in name or "<locals>" in name:
                raise ValueError(f"task {t.key!r}: fn must be a module-level function (workers import it "
                                 f"by name), got {t.fn!r}")
        if not tasks:
            return
        client = self.client
        run = uuid.uuid4().hex[:8]
        watch = WorkerWatch(client, self.worker_timeout, f"{len(tasks)} tasks ({tasks[0].key!r}, ...)")
        shared = _scatter_needed(client, tasks, watch)
        by_key = {t.key: t for t in tasks}
        sends = itertools.count()

        def submit(t):
            return client.submit(_call, t.fn, _with_shared(t.kwargs, shared), key=f"gatednet-task-{run}-{next(sends)}",
                                 pure=False)

        futures = {submit(t): t.key for t in tasks}
        more, cancelled = [], {}  # tasks sent again while waiting; times Dask cancelled each task
        failures = {}
        try:
            for fut in watch.completed(list(futures), more=more):
                key = futures[fut]
                if fut.status == "cancelled":
                    # by Dask, not by us: the needed results it took were scattered to workers that
                    # all left; scatter them again (once a worker is there) and send the task again
                    cancelled[key] = cancelled.get(key, 0) + 1
                    if cancelled[key] > MAX_CANCELLED:
                        failures[key] = RuntimeError(f"cancelled by the cluster {cancelled[key]} times")
                        continue
                    if lost(list(shared.values())):
                        shared.clear()
                        shared.update(_scatter_needed(client, tasks, watch))
                    again = submit(by_key[key])
                    futures[again] = key
                    more.append(again)
                    continue
                if fut.status == "error":
                    failures[key] = fut.exception()
                    continue
                result = fut.result()
                fut.release()
                on_result(key, result)
        finally:
            client.cancel([f for f in futures if not f.done()])
        if failures:
            raise TaskFailed(failures, len(tasks)) from next(iter(failures.values()))

    def close(self):
        if self._client is not None and self._owned:
            atexit.unregister(self.close)
            close_client(self._client)
        self._client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        where = self.scheduler or (f"LocalCluster({self.workers} workers)" if self.workers else "default")
        return f"<gatednet.distributed.DaskExecutor {where}>"
