"""Shared pieces of gatednet.distributed: networks as bytes, inputs, clients.

Everything here runs either on the client (validation, before any work is sent) or on a worker
(cached per worker process, so the network is deserialised and an input file mapped once)."""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
import warnings
from concurrent.futures import Future
from pathlib import Path

import numpy as np

import gatednet as gn

_MAGICS = {b"GATEDNET": "Network", b"GNCONVNT": "ConvNetwork"}


def network_bytes(net):
    """(bytes, class name, network) of a network given as a Network / ConvNetwork, a file path or
    bytes; ``network`` is ``net`` itself or the network decoded from the file or bytes (which the
    caller closes).

    A file or bytes that is not a gatednet network raises ValueError here, before anything is
    sent to a cluster; a damaged gatednet file raises gatednet.CorruptFileError."""
    if isinstance(net, (gn.Network, gn.ConvNetwork)):
        if net.closed:
            raise ValueError("net: the network is closed")
        return bytes(net.to_bytes()), type(net).__name__, net
    else:
        if isinstance(net, (str, os.PathLike)):
            path = Path(net)
            if not path.is_file():
                raise FileNotFoundError(f"net: no network file at {str(path)!r}")
            data = path.read_bytes()
            where = f"net: {str(path)!r}"
        elif isinstance(net, (bytes, bytearray, memoryview)):
            data = bytes(net)
            where = "net: the given bytes"
        else:
            raise TypeError(f"net: expected a gatednet Network, ConvNetwork, a file path or bytes, "
                            f"got {type(net).__name__}")
        cls = _MAGICS.get(data[:8])
        if cls is None:
            raise ValueError(f"{where} is not a gatednet network file (first bytes {data[:8]!r}, "
                             f"expected b'GATEDNET' or b'GNCONVNT')")
    return data, cls, getattr(gn, cls).from_bytes(data)  # checks version, length and CRC-32 now


def digest(*parts):
    """Hex SHA-256 over byte strings (identifies a network or input set in a store's attributes)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, (bytes, bytearray, memoryview)) else str(p).encode())
    return h.hexdigest()


class Inputs:
    """Inputs for workers: a .npy file every worker memory-maps (a path on a shared filesystem),
    or an in-memory float32 array the client scatters once.

    The client builds it (checks shape, dtype and that every value is finite); ``spec`` is what
    travels to the workers (a path string, or the array itself)."""

    def __init__(self, x, name, input_size):
        self._digest, self._file = None, None
        if isinstance(x, (str, os.PathLike)):
            path = os.path.abspath(os.fspath(x))
            try:
                self._file = _file_identity(path)
                arr = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise ValueError(f"{name}: cannot read {path!r} as a .npy file ({e})") from None
            if arr.dtype != np.float32 or not arr.flags.c_contiguous:
                raise ValueError(f"{name}: {path!r} holds {arr.dtype} (C order {arr.flags.c_contiguous}); "
                                 f"expected a C-order float32 .npy so workers can map it in place")
            self.spec = path
        else:
            arr = np.ascontiguousarray(np.asarray(x), dtype=np.float32)
            self.spec = None  # the array itself, scattered by the caller
        if arr.ndim < 2 or arr.shape[0] == 0:
            raise ValueError(f"{name}: expected at least one row of inputs (n, ...), got shape {arr.shape}")
        self.n = arr.shape[0]
        self.array = arr.reshape(self.n, -1)
        if self.array.shape[1] != input_size:
            raise ValueError(f"{name}: rows of {self.array.shape[1]} values, the network takes "
                             f"{input_size} (shape {arr.shape})")
        known = _CHECKED_FILES.get(self._file) if self._file is not None else None
        if known is not None:  # this very file, unchanged since it was checked and hashed
            self._digest = Future()
            self._digest.set_result(known)
            return
        self._checked_at = time.time()
        step = max(1, (1 << 24) // max(1, input_size))  # check 64 MB at a time
        for b in range(0, self.n, step):
            block = self.array[b:b + step]
            if not np.isfinite(block).all():
                bad = b + int(np.argwhere(~np.isfinite(block))[0][0])
                raise ValueError(f"{name}: row {bad} contains NaN or Inf")

    def start_digest(self):
        """Start :meth:`digest` on background threads (hashlib releases the GIL), so that it
        overlaps the client's other start-up work (creating the store, scattering inputs)."""
        if self._digest is None:
            self._digest = in_background(self._sha256)

    def digest_known(self):
        """Whether :meth:`digest` returns at once (e.g. a file this process has hashed before)."""
        return self._digest is not None and self._digest.done()

    def digest(self):
        """Hex digest identifying the inputs in a store's attributes: SHA-256 over their shape and
        the SHA-256 of each 16 MiB segment of their C-order bytes (segments hash on two threads)."""
        self.start_digest()
        return self._digest.result()

    def _sha256(self):
        values = memoryview(np.ascontiguousarray(self.array).reshape(-1)).cast("B")  # no copy if C order
        parts = range(0, len(values), DIGEST_SEGMENT)
        hashes = [None] * len(parts)

        def hash_every_other(first):
            for k in range(first, len(parts), 2):
                hashes[k] = hashlib.sha256(values[parts[k]:parts[k] + DIGEST_SEGMENT]).digest()

        other = in_background(lambda: hash_every_other(1)) if len(parts) > 1 else None
        hash_every_other(0)
        if other is not None:
            other.result()
        h = hashlib.sha256(str(self.array.shape).encode())
        for d in hashes:
            h.update(d)
        result = h.hexdigest()
        if self._file is not None:
            _remember_file(self._file, self._checked_at, result)
        return result


DIGEST_SEGMENT = 1 << 24

# Input files this process has checked (finite) and hashed, by identity (see _file_identity):
# {identity: digest}. Calling kernel_to_zarr again on an unchanged file (another kind, another
# network, a resumed run) then skips the NaN scan and the SHA-256 (30 ms of CPU per 30 MB). A file
# changed in any way has another identity: its modification or change time moves, except within
# the filesystem's timestamp granularity (a few ms), which is why a file modified less than
# FILE_SETTLED seconds before its check is not remembered (as git treats "racily clean" files).
_CHECKED_FILES = {}
FILE_SETTLED = 2.0
_CHECKED_FILES_MAX = 64


def _file_identity(path):
    st = os.stat(path)
    return (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _remember_file(identity, checked_at, result):
    """Remember a file's digest if it is unchanged since ``checked_at`` (when its check began)
    and was last modified at least FILE_SETTLED seconds before that."""
    try:
        if _file_identity(identity[0]) != identity:
            return
    except OSError:
        return
    if max(identity[4], identity[5]) / 1e9 > checked_at - FILE_SETTLED:
        return
    if len(_CHECKED_FILES) >= _CHECKED_FILES_MAX:
        _CHECKED_FILES.clear()
    _CHECKED_FILES[identity] = result


def in_background(fn):
    """A Future of ``fn()`` run on a new daemon thread (a thread per call, not a pool: a pool's
    idle threads do not survive fork(), and a forked child would wait on them forever)."""
    fut = Future()

    def run():
        try:
            fut.set_result(fn())
        except BaseException as e:  # delivered to whoever waits on the result
            fut.set_exception(e)

    threading.Thread(target=run, name="gatednet-background", daemon=True).start()
    return fut


# ---- worker side (cached per process) ---------------------------------------------------------

_NETS = {}
_MAPS = {}


def worker_network(data, cls, token):
    """The network ``data`` deserialised once per worker process (keyed by its digest).
    ``data`` may be a function returning the bytes, called only when the network is not cached."""
    net = _NETS.get(token)
    if net is None:
        if callable(data):
            data = data()
            if digest(data) != token:
                raise ValueError(f"the network bytes read do not match their recorded SHA-256 {token}")
        if len(_NETS) >= 4:
            _NETS.clear()
        net = _NETS[token] = getattr(gn, cls).from_bytes(data)
    return net


def worker_inputs(spec):
    """A worker's view of inputs: a memory-mapped .npy (path, mapped once per version of the file:
    a file replaced or rewritten since it was mapped is mapped again) or the array itself."""
    if isinstance(spec, str):
        version = _file_identity(spec)
        hit = _MAPS.get(spec)
        if hit is not None and hit[0] == version:
            return hit[1]
        arr = np.load(spec, mmap_mode="r")
        arr = arr.reshape(arr.shape[0], -1)
        _MAPS[spec] = (version, arr)
        return arr
    return spec


# ---- clients ---------------------------------------------------------------------------------

# Dask settings of the local clusters connect() starts. An idle 2-worker cluster with Dask's
# defaults took 0.08-0.10 of a core per second (each worker's statistical profiler samples its
# task thread every 10 ms; every process checks its event loop every 20 ms and polls psutil every
# 0.5 s), 0.024-0.030 with these: on a 2-core machine that is about 20 ms of a 0.7 s kernel.
# What is lost: the dashboard's profile page and finer resource plots. A cluster started by
# other means keeps its own settings.
LOCAL_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
}


def connect(scheduler=None, workers=None, timeout=10.0, threads_per_worker=1, **cluster_options):
    """A distributed.Client: to the scheduler at ``scheduler`` (e.g. "tcp://host:8786"), or to a
    new LocalCluster of ``workers`` processes (one thread each by default: the library already
    uses two threads per call; Dask settings as in ``LOCAL_CLUSTER_CONFIG``). A scheduler that does not answer within ``timeout`` seconds
    raises ConnectionError naming the address; nothing is sent before that."""
    from distributed import Client, LocalCluster

    if scheduler is not None and workers is not None:
        raise ValueError("give either scheduler= (an address) or workers= (a local cluster), not both")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout: expected a finite number of seconds > 0, got {timeout!r}")
    if scheduler is not None:
        if not isinstance(scheduler, str) or not scheduler:
            raise TypeError(f"scheduler: expected an address such as 'tcp://host:8786', got {scheduler!r}")
        try:
            return Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError) as e:
            raise ConnectionError(f"no Dask scheduler answered at {scheduler!r} within {timeout:g} s "
                                  f"({type(e).__name__}: {e})") from None
    if workers is None:
        raise ValueError("give scheduler= (an address) or workers= (the number of local worker processes)")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected a positive number of processes, got {workers!r}")
    import dask

    with dask.config.set(LOCAL_CLUSTER_CONFIG):  # read by the scheduler and workers when they start
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                               dashboard_address=":0", **cluster_options)
    client = Client(cluster, timeout=timeout)
    client._gatednet_owns_cluster = cluster  # closed with close_client
    return client


def close_client(client):
    """Close a client from connect(), and its LocalCluster if connect() started one."""
    cluster = getattr(client, "_gatednet_owns_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def default_client(client):
    """``client`` or the current default distributed.Client (ValueError if there is none)."""
    if client is not None:
        return client
    from distributed import default_client as current

    try:
        return current()
    except ValueError:
        raise ValueError("client: no Dask client; pass client=gatednet.distributed.connect(workers=2) "
                         "or connect(scheduler='tcp://host:8786')") from None


# ---- waiting on a cluster that may have no worker ------------------------------------------------

# A task or pass Dask cancels (its scattered inputs went with every worker holding them) is sent
# again, at most this many times; then the run fails with a clear error instead of looping.
MAX_CANCELLED = 3


def lost(scattered):
    """Whether a scattered value (a Future, or the dict / list of Futures scatter makes of a dict
    / list; anything else counts as held) has a Future the cluster no longer holds."""
    if isinstance(scattered, dict):
        return any(lost(v) for v in scattered.values())
    if isinstance(scattered, (list, tuple)):
        return any(lost(v) for v in scattered)
    return getattr(scattered, "status", "finished") != "finished"


# While a run waits on a cluster without any worker (a `dask scheduler` started without
# `dask worker`, or every worker gone mid-run) it checks the cluster every WORKER_POLL seconds,
# warns after WORKER_WARN_AFTER seconds and then every WORKER_WARN_EVERY seconds while it lasts.
# (Module-level so that tests can shorten them.)
WORKER_POLL = 1.0
WORKER_WARN_AFTER = 3.0
WORKER_WARN_EVERY = 30.0


def check_worker_timeout(worker_timeout):
    """``worker_timeout`` if it is None or a finite number of seconds > 0, else ValueError."""
    if worker_timeout is None:
        return None
    if (isinstance(worker_timeout, bool) or not isinstance(worker_timeout, (int, float, np.integer, np.floating))
            or not (worker_timeout > 0 and math.isfinite(worker_timeout))):
        raise ValueError(f"worker_timeout: expected a finite number of seconds > 0, or None (wait for a "
                         f"worker as long as it takes), got {worker_timeout!r}")
    return float(worker_timeout)


class WorkerWatch:
    """Watches, while a run waits on a Dask cluster, that the cluster has at least one worker.

    Without one for WORKER_WARN_AFTER seconds it warns (RuntimeWarning naming the scheduler's
    address and ``dask worker ADDRESS``), again every WORKER_WARN_EVERY seconds while none joins,
    and after ``worker_timeout`` seconds without a worker (None: never) raises TimeoutError.
    A worker seen resets it: the timeout counts one uninterrupted stretch without workers.
    ``what``: what the run waits for, as the messages say it (e.g. "the tiles of '/data/K.zarr'").
    Nothing is cancelled or deleted here: the caller's finally clauses decide."""

    def __init__(self, client, worker_timeout, what):
        self.client, self.worker_timeout, self.what = client, check_worker_timeout(worker_timeout), what
        self.address = getattr(client.scheduler, "address", None) or "the scheduler"
        self.seen = False  # whether a worker was ever seen (what a timeout message says)
        self.since = None  # monotonic time since when no worker was seen
        self.returned = False  # whether workers were seen again after a stretch without any
        self.next_warning = None
        self.next_check = 0.0

    def workers(self):
        """The number of workers now; warns or raises (see the class) if there are none."""
        now = time.monotonic()
        self.next_check = now + WORKER_POLL
        count = len(self.client.nthreads())
        if count:
            self.returned = self.returned or self.since is not None
            self.seen, self.since = True, None
            return count
        if self.since is None:
            self.since, self.next_warning = now, now + WORKER_WARN_AFTER
        idle = now - self.since
        if self.worker_timeout is not None and idle >= self.worker_timeout:
            raise TimeoutError(self._message(idle) + f"; gave up after worker_timeout={self.worker_timeout:g} s")
        if now >= self.next_warning:
            self.next_warning = now + WORKER_WARN_EVERY
            until = ("until one joins (worker_timeout=None)" if self.worker_timeout is None else
                     f"up to worker_timeout={self.worker_timeout:g} s")
            warnings.warn(f"{self._message(idle)}; waiting {until}. Start one with: dask worker {self.address}",
                          RuntimeWarning, stacklevel=2)
        return 0

    def _message(self, idle):
        left = "every worker left" if self.seen else "no worker has joined"
        return f"the Dask scheduler at {self.address} has no worker ({left}; {idle:.0f} s), waiting to compute {self.what}"

    def poll(self):
        """:meth:`workers`, at most every WORKER_POLL seconds (cheap to call often)."""
        if time.monotonic() >= self.next_check:
            self.workers()

    def wait_for_worker(self, at_most=None):
        """Return once the cluster has a worker (True), or after ``at_most`` seconds (False);
        warns and raises meanwhile as the class says."""
        end = None if at_most is None else time.monotonic() + at_most
        while not self.workers():
            if end is not None and time.monotonic() >= end:
                return False
            time.sleep(WORKER_POLL if end is None else max(0.0, min(WORKER_POLL, end - time.monotonic())))
        return True

    def completed(self, futures, when_workers_return=None, more=None):
        """The futures as they finish (like distributed.as_completed, errors and cancelled ones
        included), checking the cluster's workers while none finishes. ``when_workers_return()``
        is called when workers join after a stretch without any, and returns futures to wait
        for too (e.g. tasks sent again in place of those a departed worker held). ``more``: a
        list the caller appends futures to between two yields (emptied here): waited for too."""
        from distributed import as_completed

        pending = as_completed(futures)
        self.returned = False  # only workers returning while these futures are waited for count
        while True:
            while more:
                pending.add(more.pop())
            while not pending.has_ready():
                if pending.is_empty():
                    return
                self.poll()
                if self.returned:
                    self.returned = False
                    for fut in (when_workers_return() if when_workers_return is not None else ()):
                        pending.add(fut)
                with pending.thread_condition:  # notified as each future finishes
                    if not pending.has_ready():  # checked under the lock: a finish is never missed
                        pending.thread_condition.wait(timeout=min(0.1, WORKER_POLL))
            yield next(pending)
