"""``silkcheck fuzz-bench``: Hypothesis machine steps/s against random-walk steps/s on the full model,
and what the refinement check costs the walk.

The explorers count a step the same way: one event the switch took (the
machines' ``SilkRoadMachine.steps``, the walk's ``Outcome.steps``; events the
switch refuses are not steps). Time is the process's CPU time, and they run
in alternating one-second slices, so other load on the machine slows no side
more than another. The walk runs twice, with every step checked against the
abstract system (``spec``, as campaigns run it) and without: the difference is
the refinement check's cost per step.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from fuzz import machines
from fuzz.mutants import MUTANTS, get_mutant
from fuzz.walk import PCC_ONLY, REFINEMENT_ONLY, Checks, Kill, time_to_kill, walk
from silkcheck import report

HYPOTHESIS_SETTINGS = settings(
    max_examples=20,
    stateful_step_count=50,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
SLICE = 1.0
"""CPU seconds each explorer runs before the other takes a turn."""


@dataclass
class Tally:
    steps: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.steps / self.seconds


def hypothesis_slice(tally: Tally) -> None:
    """Model steps taken by the Hypothesis machine (oracle and invariants checked every step)."""
    machines.SilkRoadMachine.steps = 0
    start = time.process_time()
    while time.process_time() - start < SLICE:
        run_state_machine_as_test(machines.SilkRoadMachine, settings=HYPOTHESIS_SETTINGS)
    tally.steps += machines.SilkRoadMachine.steps
    tally.seconds += time.process_time() - start


def walk_slice(tally: Tally, first_seed: int, refine: bool = True) -> int:
    """Random walks from ``first_seed`` on; returns the next unused seed."""
    seed = first_seed
    start = time.process_time()
    while time.process_time() - start < SLICE:
        tally.steps += walk(seed, checks=Checks(refinement=refine)).steps
        seed += 1
    tally.seconds += time.process_time() - start
    return seed


def run_fuzz_bench(seconds: float) -> None:
    hypothesis, walks, unrefined = Tally(), Tally(), Tally()
    seed = unrefined_seed = 0
    while min(hypothesis.seconds, walks.seconds, unrefined.seconds) < seconds:
        if hypothesis.seconds < seconds:
            hypothesis_slice(hypothesis)
        if walks.seconds < seconds:
            seed = walk_slice(walks, seed)
        if unrefined.seconds < seconds:
            unrefined_seed = walk_slice(unrefined, unrefined_seed, refine=False)
    explorers = (("hypothesis machine", hypothesis), ("random walk", walks), ("walk, unrefined", unrefined))
    for name, tally in explorers:
        print(f"{name + ':':<19} {tally.steps:>9,} steps in {tally.seconds:5.1f} CPU s = {tally.rate:>9,.0f} steps/s")
    print(f"random walk / hypothesis: {walks.rate / hypothesis.rate:.1f}x")
    check_us = (1 / walks.rate - 1 / unrefined.rate) * 1e6
    print(f"refinement check: {check_us:,.0f} us per step; the walk takes {unrefined.rate / walks.rate:.1f}x "
          "as long with it as without")


# ---------------------------------------------------------------- silkcheck refinement-bench


def run_refinement_bench(budget_s: float, names: list[str]) -> bool:
    """Each CPU and data-plane mutant, killed by the refinement check alone and by the PCC oracle
    alone (the same walks, seed by seed); True if refinement killed every one."""
    chosen = [get_mutant(n) for n in names] if names else [m for m in MUTANTS if m.layer != "design"]
    rows, by_refinement, by_pcc = [], [], []
    for mutant in chosen:
        print(f"... {mutant.name}", file=sys.stderr, flush=True)
        refined = time_to_kill(mutant.patch, REFINEMENT_ONLY, budget_s)
        pcc = time_to_kill(mutant.patch, PCC_ONLY, budget_s)
        by_refinement.append(refined.seconds if refined.seed is not None else math.inf)
        by_pcc.append(pcc.seconds if pcc.seed is not None else math.inf)
        rows.append([mutant.name, *_kill_cells(refined), *_kill_cells(pcc)])
    print(report.table(["mutant", "refinement", "steps", "where", "PCC oracle", "steps", "where"], rows))
    killed = sum(1 for s in by_refinement if s < math.inf)
    print(f"killed by refinement alone: {killed} of {len(chosen)}; by the PCC oracle alone: "
          f"{sum(1 for s in by_pcc if s < math.inf)} of {len(chosen)} (budget {budget_s:g} CPU s each)")
    print(f"median CPU seconds to kill: refinement {_median(by_refinement)}, PCC oracle {_median(by_pcc)} "
          "(a survivor counts as never)")
    return killed == len(chosen)


def _kill_cells(kill: Kill) -> list[str]:
    if kill.failure is None:
        return [f"survived {kill.seconds:.0f}s", f"{kill.steps:,}", "-"]
    return [f"{kill.seconds:.2f}s", f"{kill.steps:,}", f"walk {kill.seed} event {kill.failure.at}"]


def _median(seconds: list[float]) -> str:
    middle = statistics.median(seconds) if seconds else math.nan
    return "never" if middle == math.inf else f"{middle:.2f}s"
