"""``silkcheck fuzz-bench``: Hypothesis machine steps/s against random-walk steps/s on the full model."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from fuzz import machines
from fuzz.walk import walk

HYPOTHESIS_SETTINGS = settings(
    max_examples=20,
    stateful_step_count=50,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


def hypothesis_rate(seconds: float) -> tuple[int, float]:
    """Model steps taken by the Hypothesis machine (oracle and invariants checked every step)."""
    machines.SilkRoadMachine.steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        run_state_machine_as_test(machines.SilkRoadMachine, settings=HYPOTHESIS_SETTINGS)
    return machines.SilkRoadMachine.steps, time.perf_counter() - start


def walk_rate(seconds: float) -> tuple[int, float]:
    steps, n = 0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        steps += walk(n).steps
        n += 1
    return steps, time.perf_counter() - start


def run_fuzz_bench(seconds: float) -> None:
    h_steps, h_time = hypothesis_rate(seconds)
    w_steps, w_time = walk_rate(seconds)
    h_rate, w_rate = h_steps / h_time, w_steps / w_time
    print(f"hypothesis machine: {h_steps:>9,} steps in {h_time:5.1f} s = {h_rate:>9,.0f} steps/s")
    print(f"random walk:        {w_steps:>9,} steps in {w_time:5.1f} s = {w_rate:>9,.0f} steps/s")
    print(f"random walk / hypothesis: {w_rate / h_rate:.1f}x")
