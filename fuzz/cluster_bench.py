"""``silkcheck cluster-bench``: what running a campaign on Dask costs, against plain processes.

The same walk tasks (``fuzz.campaign.FuzzTask``: seeds are fixed by the task
index, so both runners take exactly the same steps, which is checked) run
once per round and worker count on each runner: through ``run_campaign`` on
an embedded ``LocalCluster`` (scheduler, queue, streamed reports, polling:
everything a campaign pays), and in a ``multiprocessing`` pool of as many
processes calling ``run_fuzz_task`` directly. Rounds alternate which runner
goes first, so load from elsewhere on the machine falls on both; steps/s are
compared best round against best round. The machine may be shared, so each
run also counts CPU seconds: of this process (where the scheduler, the client
and the pool's feeder threads live) and of that runner's worker processes.
CPU time per step grows much less than wall time when other work takes the
cores, and Dask's own work (scheduling, heartbeats, serialising, polling,
the workers' monitors) is all in it. Start-up (spawning and importing) is
left out of both and printed apart.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil

from fuzz.campaign import SHIPPED, UNITS, FuzzTask, Tally, run_campaign, run_fuzz_task
from silkcheck import report
from silkcheck.cluster import open_cluster


@dataclass
class Runs:
    steps: int = 0
    rates: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    """CPU seconds per run (this process and the runner's workers)."""
    start: float = 0.0
    """Seconds to start the workers (not in the rates)."""

    def add(self, steps: int, seconds: float, cpu: float) -> None:
        if self.steps and steps != self.steps:
            raise RuntimeError(f"the same tasks took {steps} steps, before {self.steps}: the benchmark is unsound")
        self.steps = steps
        self.rates.append(steps / seconds)
        self.cpu.append(cpu)

    @property
    def cpu_per_step_us(self) -> float:
        return min(self.cpu) / self.steps * 1e6


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User + system CPU seconds of this process and ``processes``."""
    total = 0.0
    for process in [psutil.Process(), *processes]:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


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
        began, cpu = time.perf_counter(), cpu_seconds(self.processes)
        yield steps
        self.runs.add(sum(steps), time.perf_counter() - began, cpu_seconds(self.processes) - cpu)


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
        overheads.append((max(plain.rates) / max(dask.rates) - 1, dask.cpu_per_step_us / plain.cpu_per_step_us - 1))
        for name, runs in (("plain processes", plain), ("dask LocalCluster", dask)):
            rows.append([workers, name, f"{runs.steps:,}", ", ".join(f"{r:,.0f}" for r in runs.rates),
                         f"{max(runs.rates):,.0f}", f"{runs.cpu_per_step_us:.1f}", f"{runs.start:.1f}s"])  # fmt: skip
    print(f"{tasks_per_worker} walk tasks of {UNITS['walk']} walks per worker, {rounds} rounds, seed {seed}")
    headers = ["workers", "runner", "steps", "steps/s per round", "best steps/s", "CPU µs/step (best)", "start-up"]
    print(report.table(headers, rows))
    for workers, (wall, cpu) in zip((1, 2), overheads, strict=True):
        print(f"dask overhead with {workers} worker{'s' * (workers > 1)}: steps/s {wall:+.1%}, CPU per step {cpu:+.1%}")


def _import_campaign() -> None:
    import fuzz.campaign  # noqa: F401  (the pool's processes import what the tasks need before timing)
