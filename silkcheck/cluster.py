"""Campaigns as small tasks on Dask ``distributed``: one code path for one machine and for many.

Without an address, ``open_cluster`` starts an embedded ``LocalCluster`` (one
single-threaded worker process per ``--workers``); with ``tcp://HOST:8786`` it
joins a running ``dask scheduler`` and its ``dask worker``\\ s. Either way a
campaign is a stream of short tasks (fuzz seed ranges, differential trace
batches), each a top-level function ``run(spec, channel) -> result`` that
Dask runs on some worker:

* what a task finds goes back at once through ``channel.report(kind,
  payload)``, a ``distributed.Queue`` on the scheduler; ``put`` returns only
  once the scheduler holds the message, so a worker that dies later loses
  none of it;
* Dask cannot stop a running task, so a task asks ``channel.cancelled()``
  between units of work (a ``distributed.Variable`` of cancelled keys, read
  at most every ``CANCEL_CHECK_S``): a campaign that stops early does not
  leave its workers busy with work nobody will read;
* a task whose worker dies is run again on another worker by the scheduler
  (up to ``distributed.scheduler.allowed-failures`` times), and a task is
  deterministic in its spec, so the rerun finds again what the lost run had
  not reported yet;
* the client keeps a few tasks per worker thread in flight, so workers that
  join a running campaign are used from their first free slot.

A new kind of work (e.g. a slice of an explicit-state search frontier) is one
more task function and a client loop around ``TaskStream``; nothing here
knows what a task does.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from silkcheck.inputs import brief
from silkcheck.targets import TargetError


class Channel(Protocol):
    """A task's line to its client."""

    def report(self, kind: str, payload: dict[str, Any]) -> None:
        """Send what the task found. The payload must be msgpack-encodable and comes back with lists
        turned into tuples, so structured data travels as text (a trace as its JSON)."""

    def cancelled(self) -> bool:
        """Whether the client no longer wants the task's result: it should return soon."""


TaskFunction = Callable[[Any, Channel], Any]

IN_FLIGHT_PER_THREAD = 2
"""Tasks queued per worker thread: one running, one ready, so a worker never waits for the client."""
POLL_S = 0.25
"""Longest wait for a report while no task ends (the client sleeps on the futures meanwhile)."""
CANCEL_CHECK_S = 0.5
"""How often a task asks whether it was cancelled at most (a scheduler round trip; a task the
campaign stopped may run this long for nobody)."""
ALL = "*"
"""In a stream's list of cancelled task keys: every task (the stream closed)."""
QUIET_CLUSTER = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
}
"""Dask settings for an embedded cluster. The workers' statistical profiler samples the task
thread's stack 100 times a second, which cost more than all the rest of Dask here; the event-loop
tick (20 ms), the resource monitor (0.5 s) and the memory monitors (0.1 s, in each worker and in
its nanny) wake the workers and every server in the client's process often. (Measured on 2
workers: Dask's own threads took about 4 µs of CPU per walk step before the memory monitors were
slowed, 2.5 after.) A worker over its memory limit is then stopped within a second, not 0.1 s.
The dashboard then has no profile page and coarser resource graphs."""
CONNECT_TIMEOUT_S = 15.0
PACKAGES = ("model", "spec", "fuzz", "silkcheck", "proofs", "scale")
"""The packages whose source a worker must share with the client (the tasks import them)."""
_ADDRESS = re.compile(r"^(tcp|tls|ws|wss)://[A-Za-z0-9._-]+(:[0-9]{1,5})?$")


class ClusterError(TargetError):
    """A cluster that cannot run the campaign: no scheduler at the address, or workers with other code."""


def parse_address(text: str) -> str:
    """A scheduler address ``tcp://HOST:PORT`` (also tls://, ws://, wss://); ValueError otherwise."""
    match = _ADDRESS.match(text)
    if not match or (match.group(2) and not 0 < int(match.group(2)[1:]) < 1 << 16):
        raise ValueError(f"bad scheduler address {brief(text)}: expected tcp://HOST:PORT with a port in 1..65535 "
                         "(e.g. tcp://10.0.0.5:8786)")  # fmt: skip
    return text


@cache
def code_fingerprint() -> str:
    """sha256 of the source of every silkcheck package, as this process imports it."""
    digest = hashlib.sha256()
    for package in PACKAGES:
        root = Path(__import__(package).__file__).parent  # type: ignore[arg-type]
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{package}/{path.relative_to(root)}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


# ---------------------------------------------------------------- the cluster


@contextlib.contextmanager
def open_cluster(address: str | None, workers: int = 1, timeout: float = CONNECT_TIMEOUT_S) -> Iterator[Any]:
    """A ``distributed.Client``: on the scheduler at ``address``, or on an embedded LocalCluster of
    ``workers`` single-threaded processes (stopped on exit). SIGTERM stops the campaign like Ctrl-C."""
    import dask
    from distributed import Client, LocalCluster

    cluster = None
    with _sigterm_interrupts():
        if address is None:
            with dask.config.set(QUIET_CLUSTER):
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=logging.ERROR)  # fmt: skip
            client = Client(cluster)
            where = f"local cluster of {workers} worker{'s' * (workers != 1)}"
        else:
            try:
                client = Client(address, timeout=timeout)
            except OSError as error:
                raise ClusterError(f"--cluster {address}: no Dask scheduler answered ({error})") from None
            where = f"cluster {address} ({len(client.nthreads())} workers)"
        try:
            if address is not None:
                _check_workers(client, address)
            print(f"  dask: {where}; dashboard {client.dashboard_link}", file=sys.stderr)
            yield client
        finally:
            with _quiet():
                client.close()
                if cluster is not None:
                    cluster.close()


def warm(client: Any, module: str) -> None:
    """Import ``module`` on every worker now, so a campaign's clock does not run while they do."""
    import importlib

    client.run(importlib.import_module, module)


def _check_workers(client: Any, address: str) -> None:
    mine = code_fingerprint()
    theirs = client.run(code_fingerprint)
    other = sorted(worker for worker, fingerprint in theirs.items() if fingerprint != mine)
    if other:
        raise ClusterError(f"--cluster {address}: workers {', '.join(other)} run other silkcheck code than this "
                           f"client (install the same version on every machine)")  # fmt: skip


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the client, so a terminated campaign stops its workers and
    reports what it found (it is saved already). SIGKILL cannot be caught: the workers of an
    embedded cluster then exit on their own, as their parent's pipe closes (``distributed.process``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Dask logs every connection it closes while a cluster stops; a campaign's stderr is its progress."""
    loggers = [logging.getLogger(name) for name in ("distributed", "tornado")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


# ---------------------------------------------------------------- tasks


@dataclass
class Done:
    """A task that ended: its spec, and its result or why it has none."""

    spec: Any
    result: Any = None
    lost: str | None = None
    """Set when no worker could finish the task (it killed every worker it ran on)."""


class TaskStream:
    """Tasks in flight on a cluster; their reports are handed to ``on_report`` as they arrive,
    before the completion of the task that sent them."""

    def __init__(self, client: Any, on_report: Callable[[dict[str, Any]], None], prefix: str) -> None:
        from distributed import Queue, Variable

        self.client = client
        self.on_report = on_report
        self.prefix = prefix
        name = f"silkcheck-{uuid.uuid4().hex}"
        self.channel = Queue(name, client=client)
        self.stops = Variable(name, client=client)
        self.cancelled_keys: list[str] = []
        self.stops.set(self.cancelled_keys)
        self.pending: dict[str, tuple[Any, Any]] = {}
        """Task key -> (spec, future), for every task submitted and not yet taken by ``poll``."""
        self.threads: dict[str, int] = client.nthreads()
        """Worker address -> threads, refreshed by ``poll`` once a second (asking is a scheduler round trip)."""
        self.asked = time.monotonic()
        self.news: list[str] = []
        """Workers that joined or left, as lines for the progress display (``membership`` takes them)."""

    def _refresh_workers(self) -> None:
        before, self.threads, self.asked = self.threads, self.client.nthreads(), time.monotonic()
        self.news += [f"worker {w} joined" for w in sorted(self.threads.keys() - before.keys())]
        self.news += [f"worker {w} left (its tasks run again elsewhere)" for w in sorted(before.keys() - self.threads)]

    def membership(self) -> list[str]:
        news, self.news = self.news, []
        return news

    def capacity(self) -> int:
        """How many tasks to keep in flight: a few per worker thread."""
        return IN_FLIGHT_PER_THREAD * max(sum(self.threads.values()), 1)

    def room(self) -> int:
        return self.capacity() - len(self.pending)

    def submit(self, run: TaskFunction, spec: Any) -> None:
        key = f"{self.prefix}-{uuid.uuid4().hex[:12]}"
        future = self.client.submit(run_task, run, spec, self.channel.name, key, code_fingerprint(), key=key)
        self.pending[key] = spec, future

    def poll(self, timeout: float = POLL_S) -> list[Done]:
        """Wait until a task ends or ``timeout`` passes, hand over the reports that arrived, and
        return the tasks that ended."""
        from distributed import wait

        if time.monotonic() - self.asked > 1:
            self._refresh_workers()
        futures = [future for _, future in self.pending.values()]
        if futures:
            with contextlib.suppress(TimeoutError):
                wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
        finished = [future for future in futures if future.done()]
        for message in self.channel.get(batch=True):  # after the completions: a done task's reports are in
            self.on_report(message)
        return [self._take(future) for future in finished]

    def _take(self, future: Any) -> Done:
        from distributed.scheduler import KilledWorker

        spec, _ = self.pending.pop(future.key)
        if future.status == "error":
            error = future.exception()
            if isinstance(error, KilledWorker):
                return Done(spec, lost=str(error))
            if isinstance(error, CodeMismatch):
                raise ClusterError(str(error))
            future.result()  # a bug in the task: raise it here, with the worker's traceback
        return Done(spec, future.result())

    def cancel(self, keep: Callable[[Any], bool] = lambda spec: False) -> None:
        """Cancel the tasks in flight whose spec ``keep`` refuses (a running one finishes, unheard)."""
        drop = [key for key, (spec, _) in self.pending.items() if not keep(spec)]
        if drop:
            self.cancelled_keys += drop
            self.stops.set(self.cancelled_keys)
            self.client.cancel([self.pending.pop(key)[1] for key in drop])

    def close(self) -> None:
        """Cancel every task; the variable stays (a few bytes on the scheduler), so a task still
        running learns it is cancelled instead of waiting for a variable that is gone."""
        with contextlib.suppress(Exception):  # the client may be gone already (Ctrl-C while connecting)
            self.cancel()
            self.stops.set([ALL])
            self.channel.close()


# ---------------------------------------------------------------- on the worker


class CodeMismatch(RuntimeError):
    """A worker whose silkcheck source differs from the client's (it joined with another version)."""


TASK_LOCK = threading.Lock()
"""One task at a time per process: tasks patch the model's modules for mutants, so two threads of
one worker (``dask worker --nthreads 2``) must not interleave."""


@cache
def _queue(name: str) -> Any:
    from distributed import Queue

    return Queue(name)


@cache
def _variable(name: str) -> Any:
    from distributed import Variable

    return Variable(name)


class _WorkerChannel:
    def __init__(self, name: str, key: str, worker: str) -> None:
        self.name = name
        self.key = key
        self.worker = worker
        self.asked = time.monotonic()
        self.answer = False

    def report(self, kind: str, payload: dict[str, Any]) -> None:
        if self._ask():  # reports are rare: ask now, so none goes to a stream that closed
            return
        _queue(self.name).put({"kind": kind, "task": self.key, "worker": self.worker, **payload})

    def cancelled(self) -> bool:
        return self.answer or (time.monotonic() - self.asked >= CANCEL_CHECK_S and self._ask())

    def _ask(self) -> bool:
        stopped = _variable(self.name).get()
        self.answer = self.key in stopped or ALL in stopped
        self.asked = time.monotonic()
        return self.answer


_frozen = False
"""Whether this process has frozen its heap (``freeze_heap``)."""


def freeze_heap() -> None:
    """Once per process, before its first task: collect, then move every object left to the
    collector's permanent generation. A Dask worker holds some 40-60k more tracked objects than a
    plain process (Dask, tornado, its 800-odd modules), which every full collection would walk
    again while the task runs: 3-6% of a walk step. Frozen objects are never freed, so this is
    done once, when what remains is what the process keeps (its modules and servers)."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True


def run_task(run: TaskFunction, spec: Any, channel: str, key: str, fingerprint: str) -> Any:
    """What Dask runs: ``run(spec, channel)`` with a channel to the client's ``TaskStream``."""
    from distributed import get_worker

    worker = get_worker().address
    if fingerprint != code_fingerprint():
        raise CodeMismatch(f"worker {worker} (pid {os.getpid()}) runs other silkcheck code than the client")
    with TASK_LOCK:
        freeze_heap()
        return run(spec, _WorkerChannel(channel, key, worker))
