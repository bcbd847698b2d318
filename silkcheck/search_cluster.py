"""The explicit-state search (``proofs.explicit``) on a Dask cluster: one actor per partition.

Partition p owns the states whose home (``Node.home``, the least switch digest) is p modulo the number of partitions
(``proofs.explicit.owner``), one partition per worker of the cluster when the search starts. Each
lives in a Dask actor (``PartitionActor``: its seen set and its part of the frontier), and a level
is two rounds of calls from the client, every actor at once:

1. ``expand``: the actor expands its part of the frontier and returns, per other partition, the
   successors that partition owns, pickled (each state sent once);
2. ``admit``: the actor gets what the others sent it and keeps, of those and its own successors,
   the states it has not seen; it returns the level's checkpoint.

The client forwards the pickled batches without opening them. Actors do not call each other: a
call from one actor to another on a worker that died waits out Dask's connection timeouts, a call
from the client fails at once, so the client always knows which partition it lost.

The same result as one process. Each actor admits a level's successors, its own too, in the order
of their paths (the letters' positions from the boot), keeping the first of each fingerprint. So
every state keeps the least of its shortest paths, as in the one-process search, whose frontier is
in that order; with the path the state keeps the refinement history of that path, so the edges
checked, the findings, the counterexample and the refinement mismatch are the same.

Lost workers. After each level the client holds every partition's checkpoint: the fingerprints it
has seen (8 bytes a state) and its frontier (pickled, some 300 bytes a state; one level's, not the
whole search's). When a call fails because a worker went away, every partition starts again from
the checkpoint of the last completed level, on the workers there are then (the nanny of an
embedded cluster restarts a killed worker; on a real cluster, the others), and the level runs
again: the search goes on to the same result. After ``retries`` such losses, or with no worker
left, it stops with a ``SearchError`` naming the lost partitions, their workers and what had been
explored; it never waits for a worker that is gone.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import time
import uuid
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil

from proofs import explicit
from proofs.explicit import Expander, LevelStats, Node, Partition, Scope, SearchError, SearchResult
from silkcheck.cluster import CONNECT_TIMEOUT_S, TASK_LOCK, ClusterError, CodeMismatch, code_fingerprint
from silkcheck.targets.model import cycle_collection_paused

RETRIES = 3
"""Worker losses a search survives (each restarts every partition from the last completed level)."""
LOST_WAIT_S = 10.0
"""How long the client waits for the scheduler to see that a failed call's worker is gone."""


@dataclass
class Checkpoint:
    """A partition at the end of a completed level: what a new actor needs to take its place."""

    seen: list[bytes] = field(default_factory=list)
    """Its fingerprints, one ``array('Q')`` of each level's new states."""
    frontier: bytes = pickle.dumps([])

    def states(self) -> int:
        return sum(len(chunk) for chunk in self.seen) // 8


def _design(name: str | None) -> contextlib.AbstractContextManager[Any]:
    """The patch of a named unsafe design (a fuzz mutant or a proof variant), or none."""
    if name is None:
        return contextlib.nullcontext()
    from silkcheck.cli import unsafe_designs

    return unsafe_designs()[name]()


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


class PartitionActor:
    """One partition of a search on a Dask worker. It routes its own successors through ``admit``
    too (``Partition`` with ``part=-1`` keeps none while it expands), so a level's states are
    admitted in path order."""

    def __init__(self, scope: Scope, refinement: bool, design: str | None, part: int, parts: int,
                 fingerprint: str, checkpoint: Checkpoint) -> None:  # fmt: skip
        if fingerprint != code_fingerprint():
            raise CodeMismatch(f"worker pid {os.getpid()} runs other silkcheck code than the client")
        self.part, self.design = part, design
        self.cpu_start = time.process_time()
        with self._patched():
            expander = Expander(scope, refinement)
            expander.own(part, parts)
            self.partition = Partition(expander, -1, parts)
        self.partition.seen = set(array("Q", b"".join(checkpoint.seen)))
        self.partition.frontier = pickle.loads(checkpoint.frontier)
        self.own: list[Node] = []

    def where(self) -> tuple[str, int]:
        from distributed import get_worker

        return get_worker().address, os.getpid()

    @contextlib.contextmanager
    def _patched(self) -> Iterator[None]:
        with TASK_LOCK, _design(self.design), cycle_collection_paused():  # a design patches modules: one at a time
            yield

    def _usage(self) -> tuple[int, float]:
        return _rss(), time.process_time() - self.cpu_start

    def expand(self) -> tuple[LevelStats, list[bytes], int, float]:
        """Expand this part of the level; per partition, the successors it owns (this one's kept here)."""
        stats = LevelStats()
        with self._patched():
            outgoing = self.partition.expand(stats, 0)
        self.own = outgoing[self.part]
        batches = [b"" if to == self.part else pickle.dumps(nodes, 5) for to, nodes in enumerate(outgoing)]
        return stats, batches, *self._usage()

    def admit(self, batches: list[bytes], budget: int) -> tuple[LevelStats, int, Checkpoint, int, float]:
        """Keep this level's new states (its own successors and the others'), least path first. The
        cyclic collector stays paused here too: unpickling and pickling a level's nodes makes tuples
        by the million, and each full collection would walk every node the actor keeps (with it
        running, 33 and 13 µs a node in and out of a pickle, against 2.7 and 6.3 paused)."""
        with cycle_collection_paused():
            nodes = self.own + [node for batch in batches for node in pickle.loads(batch)]
            self.own = []
            nodes.sort(key=lambda node: node.path)  # a level's paths have one length: least is first
            stats = LevelStats()
            self.partition.admit(nodes, stats, budget)
            frontier = self.partition.frontier
            delta = Checkpoint([array("Q", [node.fingerprint for node in frontier]).tobytes()],
                               pickle.dumps(frontier, 5))  # fmt: skip
        return stats, len(frontier), delta, *self._usage()


class DaskRunner:
    """``proofs.explicit.Runner`` on Dask actors: the client's side of the levels, and the restarts."""

    def __init__(self, client: Any, expander: Expander, parts: int, design: str | None, retries: int,
                 note: Callable[[str], None]) -> None:  # fmt: skip
        self.client, self.expander, self.parts, self.design = client, expander, parts, design
        self.retries, self.note = retries, note
        self.fingerprint = code_fingerprint()
        self.checkpoints = [Checkpoint() for _ in range(parts)]
        self.sizes = [0] * parts
        self.levels = 0
        """Completed levels, the root's included."""
        self.losses = 0
        self.usage = [(0, 0.0)] * parts
        self.cpu_before = 0.0
        """CPU seconds of actors replaced after a loss."""
        self.futures: list[Any] = []
        """The actors' futures: an actor lives while its future is held."""
        self.actors: list[Any] = []
        self.homes: list[tuple[str, int]] = []
        """Per partition, its actor's worker address and process id."""

    # ------------------------------------------------------------ explicit.Runner

    def admit_root(self) -> LevelStats:
        home = explicit.owner(self.expander.root.home, self.parts)
        root = pickle.dumps([self.expander.root], 5)
        return self._retrying(lambda: self._admit([[root] if part == home else [] for part in range(self.parts)], 1))

    def frontier_size(self) -> int:
        return sum(self.sizes)

    def level(self, budget: int) -> LevelStats:
        share = -(-budget // self.parts)  # each owns about as many new states
        return self._retrying(lambda: self._level(share))

    def rss(self) -> int:
        return _rss() + sum(rss for rss, _ in self.usage)

    def worker_cpu(self) -> float:
        return self.cpu_before + sum(cpu for _, cpu in self.usage)

    def close(self) -> None:
        self.actors, self.futures = [], []  # released futures: the scheduler deletes the actors

    # ------------------------------------------------------------ a level

    def _level(self, share: int) -> LevelStats:
        expanded = self._results([actor.expand() for actor in self.actors])
        stats = LevelStats()
        for part_stats, *_ in expanded:
            stats.add(part_stats)
        inboxes = [[batches[to] for part, (_, batches, *_) in enumerate(expanded) if part != to]
                   for to in range(self.parts)]  # fmt: skip
        stats.add(self._admit(inboxes, share))
        return stats

    def _admit(self, inboxes: list[list[bytes]], budget: int) -> LevelStats:
        calls = [actor.admit(inbox, budget) for actor, inbox in zip(self.actors, inboxes, strict=True)]
        admitted = self._results(calls)
        stats = LevelStats()
        for part, (part_stats, size, delta, rss, cpu) in enumerate(admitted):  # the level is complete: commit
            stats.add(part_stats)
            self.sizes[part], self.usage[part] = size, (rss, cpu)
            checkpoint = self.checkpoints[part]
            checkpoint.seen += delta.seen
            checkpoint.frontier = delta.frontier
        self.levels += 1
        return stats

    def _results(self, futures: list[Any]) -> list[Any]:
        out = []
        for part, future in enumerate(futures):
            try:
                out.append(future.result())
            except CodeMismatch as error:
                raise ClusterError(str(error)) from None
            except Exception as error:
                raise _CallFailed(part, error) from error
        return out

    # ------------------------------------------------------------ actors, losses and restarts

    def _retrying(self, step: Callable[[], LevelStats]) -> LevelStats:
        while True:
            try:
                if not self.actors:
                    self._start()
                return step()
            except _CallFailed as failed:
                self._recover(failed)

    def _start(self) -> None:
        """An actor per partition from its checkpoint, spread over the workers there are now."""
        workers = self._wait_for_workers()
        run = uuid.uuid4().hex[:12]
        self.futures = [
            self.client.submit(PartitionActor, self.expander.scope, self.expander.refinement, self.design, part,
                               self.parts, self.fingerprint, self.checkpoints[part], actor=True,
                               workers=[workers[part % len(workers)]], key=f"silkcheck-search-{run}-{part}")
            for part in range(self.parts)
        ]  # fmt: skip
        try:
            actors = [future.result() for future in self.futures]
        except CodeMismatch as error:
            raise ClusterError(str(error)) from None
        except Exception as error:
            raise _CallFailed(-1, error) from error
        self.homes = self._results([actor.where() for actor in actors])
        self.actors = actors

    def _wait_for_workers(self) -> list[str]:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while not (workers := sorted(self.client.nthreads())):
            if time.monotonic() > deadline:
                raise PartitionLost(f"no Dask worker left for the search ({self._explored()})")
            time.sleep(0.2)
        return workers

    def _recover(self, failed: _CallFailed) -> None:
        maybe = _maybe_lost(failed.error)
        lost = self._lost(maybe)
        if not lost and not (failed.part < 0 and maybe):  # a worker that died while the actors started
            raise SearchError(f"search partition {failed.part} failed ({self._explored()}): "
                              f"{type(failed.error).__name__}: {failed.error}") from failed.error  # fmt: skip
        self.losses += 1
        where = ", ".join(f"partition {part} (worker {self.homes[part][0]}, pid {self.homes[part][1]})"
                          for part in lost) or f"a worker starting the actors ({failed.error})"  # fmt: skip
        if self.losses > self.retries:
            raise PartitionLost(f"lost {where} during level {self.levels}; {self._explored()}; gave up after "
                                f"{self.retries} restart{'s' * (self.retries != 1)}") from failed.error  # fmt: skip
        self.note(f"lost {where} during level {self.levels}: every partition restarts from its checkpoint "
                  f"({self._explored()}), restart {self.losses} of {self.retries}")  # fmt: skip
        self.cpu_before += sum(cpu for _, cpu in self.usage)
        self.usage = [(0, 0.0)] * self.parts
        self.actors, self.futures = [], []

    def _lost(self, wait: bool) -> list[int]:
        """The partitions whose worker the scheduler no longer has (``wait``: give it a little time to notice)."""
        deadline = time.monotonic() + (LOST_WAIT_S if wait else 0)
        while True:
            alive = self.client.nthreads()
            lost = [part for part, (address, _) in enumerate(self.homes) if address not in alive]
            if lost or time.monotonic() > deadline:
                return lost
            time.sleep(0.2)

    def _explored(self) -> str:
        if not self.levels:
            return "nothing explored yet"
        return f"{sum(c.states() for c in self.checkpoints):,} states explored to depth {self.levels - 1}"


class PartitionLost(SearchError, ClusterError):
    """Workers went away more often than the search restarts, or none is left (``silkcheck``: exit 2,
    as for a cluster that cannot run a campaign)."""


def _maybe_lost(error: BaseException) -> bool:
    """Whether a failed call may be a worker that went away (a bug in the search raises its own error)."""
    return isinstance(error, OSError) or (isinstance(error, RuntimeError) and "was lost" in str(error))


class _CallFailed(Exception):
    def __init__(self, part: int, error: BaseException) -> None:
        super().__init__(f"partition {part}: {error}")
        self.part, self.error = part, error


def search_on_cluster(client: Any, scope: Scope, progress: Callable[[str], None] | None = None,
                      refinement: bool = False, design: str | None = None,
                      retries: int = RETRIES) -> SearchResult:  # fmt: skip
    """``explicit.search`` with one partition per worker of ``client``'s cluster; ``design`` names an
    unsafe variant to apply on the workers and here (where findings are confirmed)."""
    parts = len(client.nthreads())
    if parts == 0:
        raise ClusterError("the Dask cluster has no worker to run the search on")
    note = progress or (lambda _: None)
    with _design(design):
        return explicit.search(scope, progress, refinement, workers=parts,
                               runner=lambda expander: DaskRunner(client, expander, parts, design, retries, note))


def run_search_bench(name: str, workers: int) -> None:
    """``silkcheck search-bench``: one scope searched in one process, in ``workers`` forked processes
    and on an embedded Dask cluster of ``workers``, in this run; the cluster's start is printed apart."""
    from silkcheck import report
    from silkcheck.cluster import open_cluster, warm

    scope = explicit.SCOPES[name]
    refinement = scope.writes
    note = lambda line: print(f"  {line}", file=sys.stderr, flush=True)  # noqa: E731
    runs = [("one process", explicit.search(scope, note, refinement))]
    runs.append((f"{workers} forked processes", explicit.search(scope, note, refinement, workers=workers)))
    started = time.perf_counter()
    with open_cluster(None, workers) as client:
        warm(client, "silkcheck.search_cluster")
        start_s = time.perf_counter() - started
        runs.append((f"Dask, {workers} workers", search_on_cluster(client, scope, note, refinement)))
    base = runs[0][1]
    rows = [[runner, r.workers, f"{r.states:,}", f"{r.edges:,}", r.depth, f"{r.seconds:.1f}", f"{r.rate:,.0f}",
             f"{r.generated_rate:,.0f}", f"{r.cpu_seconds:.1f}", f"{r.rate / base.rate:.2f}x"]
            for runner, r in runs]  # fmt: skip
    check = " (refinement on every edge)" if refinement else ""
    print(f"explicit-state search of {name}{check}: distinct states/s and generated (every edge) per second by "
          "wall clock, CPU s of every process of the search")
    print(report.table(["runner", "partitions", "states", "edges", "depth", "s", "states/s", "generated/s", "CPU s",
                        "vs one process"], rows))  # fmt: skip
    same = all((r.states, r.edges, r.depth) == (base.states, base.edges, base.depth) for _, r in runs)
    print(f"same states, edges and depth on every runner: {'yes' if same else 'NO'}; Dask cluster start "
          f"{start_s:.1f} s (not in its rate); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if not same:
        raise SearchError("the runners found different state graphs: the partitioned search is unsound")
