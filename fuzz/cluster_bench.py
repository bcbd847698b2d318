"""``silkcheck cluster-bench``: what running a campaign on Dask costs, against plain processes.

The same walk tasks (``fuzz.campaign.FuzzTask``: seeds are fixed by the task
index, so both runners take exactly the same steps, which is checked) run
once per round and worker count on each runner: through ``run_campaign`` on
an embedded ``LocalCluster`` (scheduler, queue, streamed reports, polling:
everything a campaign pays), and in a ``multiprocessing`` pool of as many
processes calling ``run_fuzz_task`` directly. Both freeze their heap before
the first task (``silkcheck.cluster.freeze_heap``), as a campaign's workers do.

The machine may be shared, and load from elsewhere comes and goes over
seconds: so the runs go in ABBA order (plain, dask, dask, plain, ...), each
round's two runs are compared with each other (a paired ratio, taken close
together in time), and the overhead is the median of the rounds' ratios, which
one disturbed round does not move. Each run also counts CPU seconds: of this
process (where the scheduler, the client and the pool's feeder threads live)
and of that runner's worker processes. CPU time per step grows much less than
wall time when other work takes the cores, and Dask's own work (scheduling,
heartbeats, serialising, polling, the workers' monitors) is all in it. Still,
on 2 cores shared with other jobs a walk's own CPU time swings by 10-20% from
run to run (the cores' caches and clock are shared), more than all of Dask's
work: so each run also counts the CPU spent outside the walk threads (the
busiest thread of each worker process), which is Dask's work, or the pool's.
Start-up (spawning and importing) is left out of both and printed apart.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil

from fuzz.campaign import SHIPPED, UNITS, FuzzTask, Tally, run_campaign, run_fuzz_task
from silkcheck import report
from silkcheck.cluster import freeze_heap, open_cluster


@dataclass
class Runs:
    steps: int = 0
    seconds: list[float] = field(default_factory=list)
    """Wall seconds per run, in round order."""
    cpu: list[float] = field(default_factory=list)
    """CPU seconds per run (this process and the runner's workers), in round order."""
    outside: list[float] = field(default_factory=list)
    """CPU seconds per run outside the threads that ran the walks, in round order."""
    start: float = 0.0
    """Seconds to start the workers (not in the rates)."""

    def add(self, steps: int, seconds: float, cpu: float, outside: float) -> None:
        if self.steps and steps != self.steps:
            raise RuntimeError(f"the same tasks took {steps} steps, before {self.steps}: the benchmark is unsound")
        self.steps = steps
        self.seconds.append(seconds)
        self.cpu.append(cpu)
        self.outside.append(outside)

    @property
    def rates(self) -> list[float]:
        return [self.steps / seconds for seconds in self.seconds]

    @property
    def cpu_per_step_us(self) -> list[float]:
        return [cpu / self.steps * 1e6 for cpu in self.cpu]

    @property
    def outside_per_step_us(self) -> list[float]:
        return [cpu / self.steps * 1e6 for cpu in self.outside]


@dataclass
class Overhead:
    """Dask's cost over plain processes, from each round's pair of runs (dask / plain - 1)."""

    wall: list[float]
    cpu: list[float]
    outside: list[float]
    """Dask's extra CPU outside the walk threads, as a share of plain processes' CPU per step."""

    @classmethod
    def of(cls, plain: Runs, dask: Runs) -> Overhead:
        def paired(ours: list[float], theirs: list[float]) -> list[float]:
            return [d / p - 1 for p, d in zip(theirs, ours, strict=True)]

        extra = [(d - p) / c for p, d, c in zip(plain.outside, dask.outside, plain.cpu, strict=True)]
        return cls(paired(dask.seconds, plain.seconds), paired(dask.cpu, plain.cpu), extra)


@dataclass(frozen=True)
class Cpu:
    """CPU seconds so far: in all (this process and the runner's workers) and per worker thread."""

    total: float
    threads: list[dict[int, float]]
    """For each worker process: thread id -> CPU seconds."""

    @classmethod
    def now(cls, processes: list[psutil.Process]) -> Cpu:
        total, threads = 0.0, []
        for process in [psutil.Process(), *processes]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
                if process in processes:
                    threads.append({t.id: t.user_time + t.system_time for t in process.threads()})
        return cls(total, threads)

    def since(self, before: Cpu) -> tuple[float, float]:
        """(CPU seconds, of which outside the walk threads): each worker's busiest thread ran the walks."""
        walks = sum(max((seconds - old.get(thread, 0.0) for thread, seconds in new.items()), default=0.0)
                    for old, new in zip(before.threads, self.threads, strict=True))  # fmt: skip
        return self.total - before.total, self.total - before.total - walks


class _Refusing:
    """A plain process's channel: nothing is ever cancelled, and the shipped model must not fail."""

    def report(self, kind: str, payload: dict[str, Any]) -> None:
        raise RuntimeError(f"the shipped model failed during the benchmark: {payload.get('failure')}")

    def cancelled(self) -> bool:
        return False


def _plain_task(task: FuzzTask) -> Tally:
    return run_fuzz_task(task, _Refusing())


def _ready(_: int) -> None:
    time.sleep(0.2)  # long enough that every pool process takes one and is up before timing starts


def tasks_for(count: int, seed: int) -> list[FuzzTask]:
    """What ``run_campaign(tasks=count, hypothesis_share=0, budget=inf)`` submits."""
    return [FuzzTask(SHIPPED, "walk", seed, index, UNITS["walk"], math.inf) for index in range(count)]


class _Timed:
    """One runner: its worker processes and its runs."""

    def __init__(self, processes: list[psutil.Process], start: float) -> None:
        self.processes = processes
        self.runs = Runs(start=start)

    @contextlib.contextmanager
    def run(self) -> Iterator[list[int]]:
        """Time what the block does; it appends the steps it took to the list."""
        steps: list[int] = []
        began, cpu = time.perf_counter(), Cpu.now(self.processes)
        yield steps
        self.runs.add(sum(steps), time.perf_counter() - began, *Cpu.now(self.processes).since(cpu))


def _compare(workers: int, count: int, rounds: int, seed: int) -> tuple[Runs, Runs]:
    """(plain, dask) for ``count`` tasks on ``workers`` workers."""
    began = time.perf_counter()
    with open_cluster(None, workers) as client:
        dask = _Timed([psutil.Process(pid) for pid in client.run(os.getpid).values()], time.perf_counter() - began)
        before = set(psutil.Process().children())
        began = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_import_campaign) as pool:
            pool.map(_ready, range(workers), chunksize=1)
            plain = _Timed(sorted(set(psutil.Process().children()) - before, key=lambda p: p.pid),
                           time.perf_counter() - began)  # fmt: skip
            for round_ in range(rounds):
                for runner in (plain, dask) if round_ % 2 == 0 else (dask, plain):
                    with runner.run() as steps:
                        if runner is plain:
                            steps += [t.steps for t in pool.imap_unordered(_plain_task, tasks_for(count, seed))]
                        else:
                            steps.append(_dask_campaign(client, count, seed))
    if plain.runs.steps != dask.runs.steps:
        raise RuntimeError(f"the same tasks took {plain.runs.steps} steps in processes, {dask.runs.steps} on Dask")
    return plain.runs, dask.runs


def _dask_campaign(client: Any, count: int, seed: int) -> int:
    result = run_campaign(client, SHIPPED, math.inf, seed, db=None, progress=False, hypothesis_share=0, tasks=count)
    if result.found or result.tasks != count:
        raise RuntimeError(f"the Dask campaign did {result.tasks}/{count} tasks, found {result.found}")
    return result.steps


def run_cluster_bench(tasks_per_worker: int, rounds: int, seed: int) -> None:
    rows = []
    overheads = []
    for workers in (1, 2):
        plain, dask = _compare(workers, tasks_per_worker * workers, rounds, seed)
        overheads.append(Overhead.of(plain, dask))
        for name, runs in (("plain processes", plain), ("dask LocalCluster", dask)):
            rows.append([workers, name, f"{runs.steps:,}", _figures(runs.rates, "{:,.0f}"),
                         f"{statistics.median(runs.rates):,.0f}", _figures(runs.cpu_per_step_us, "{:.1f}"),
                         f"{statistics.median(runs.cpu_per_step_us):.1f}",
                         f"{statistics.median(runs.outside_per_step_us):.2f}", f"{runs.start:.1f}s"])  # fmt: skip
    print(f"{tasks_per_worker} walk tasks of {UNITS['walk']} walks per worker, {rounds} rounds in ABBA order "
          f"(plain first in even rounds), seed {seed}")  # fmt: skip
    headers = ["workers", "runner", "steps", "steps/s per round", "median", "CPU µs/step per round", "median",
               "outside walks (median)", "start-up"]  # fmt: skip
    print(report.table(headers, rows))
    for workers, overhead in zip((1, 2), overheads, strict=True):
        print(f"dask overhead with {workers} worker{'s' * (workers > 1)} (median of the rounds' paired ratios): "
              f"wall time {statistics.median(overhead.wall):+.1%} ({_figures(overhead.wall, '{:+.1%}')}), "
              f"CPU per step {statistics.median(overhead.cpu):+.1%} ({_figures(overhead.cpu, '{:+.1%}')}), "
              f"CPU outside the walks {statistics.median(overhead.outside):+.1%} of a step "
              f"({_figures(overhead.outside, '{:+.1%}')})")  # fmt: skip


def _figures(values: list[float], form: str) -> str:
    return ", ".join(form.format(value) for value in values)


def _import_campaign() -> None:
    import fuzz.campaign  # noqa: F401  (the pool's processes import what the tasks need before timing)

    freeze_heap()  # as a campaign's Dask workers do before their first task
