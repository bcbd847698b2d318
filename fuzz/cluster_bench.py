"""``silkcheck cluster-bench``: what running a campaign on Dask costs, against plain processes.

The same walk tasks (``fuzz.campaign.FuzzTask``: seeds are fixed by the task
index, so both runners take exactly the same steps, which is checked) run
twice per round and worker count: through ``run_campaign`` on an embedded
``LocalCluster`` (scheduler, queue, streamed reports, polling: everything a
campaign pays), and in a ``multiprocessing`` pool of as many processes
calling ``run_fuzz_task`` directly. Rounds alternate the two, so load from
elsewhere on the machine falls on both; the figure is the ratio of their
steps/s, best round against best round. The machine may be shared, so each
run also counts the CPU seconds of this process and all its children (the
scheduler and client live here; the workers or pool processes are children):
CPU time per step does not grow when other work takes the cores, and Dask's
own work (scheduling, heartbeats, serialising, polling) is all in it.
Start-up (spawning and importing) is left out of both and printed apart.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import time
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
    """CPU seconds per run (this process and its children)."""
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


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and every live descendant."""
    me = psutil.Process()
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def _refuse_reports(kind: str, payload: dict[str, Any]) -> None:
    raise RuntimeError(f"the shipped model failed during the benchmark: {payload.get('failure')}")


def _plain_task(task: FuzzTask) -> Tally:
    return run_fuzz_task(task, _refuse_reports)


def _ready(_: int) -> None:
    time.sleep(0.2)  # long enough that every pool process takes one and is up before timing starts


def tasks_for(count: int, seed: int) -> list[FuzzTask]:
    """What ``run_campaign(tasks=count, hypothesis_share=0, budget=inf)`` submits."""
    return [FuzzTask(SHIPPED, "walk", seed, index, UNITS["walk"], math.inf) for index in range(count)]


def _compare(workers: int, count: int, rounds: int, seed: int) -> tuple[Runs, Runs]:
    """(plain, dask) for ``count`` tasks on ``workers`` workers."""
    plain, dask = Runs(), Runs()
    began = time.perf_counter()
    with open_cluster(None, workers) as client:
        dask.start = time.perf_counter() - began
        began = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_import_campaign) as pool:
            pool.map(_ready, range(workers), chunksize=1)
            plain.start = time.perf_counter() - began
            for _ in range(rounds):
                began, cpu = time.perf_counter(), cpu_seconds()
                steps = sum(t.steps for t in pool.imap_unordered(_plain_task, tasks_for(count, seed)))
                plain.add(steps, time.perf_counter() - began, cpu_seconds() - cpu)
                cpu = cpu_seconds()
                result = run_campaign(client, SHIPPED, math.inf, seed, db=None, progress=False, hypothesis_share=0,
                                      tasks=count)  # fmt: skip
                if result.found or result.tasks != count:
                    raise RuntimeError(f"the Dask campaign did {result.tasks}/{count} tasks, found {result.found}")
                dask.add(result.steps, result.seconds, cpu_seconds() - cpu)
    if plain.steps != dask.steps:
        raise RuntimeError(f"the same tasks took {plain.steps} steps in processes, {dask.steps} on Dask")
    return plain, dask


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
