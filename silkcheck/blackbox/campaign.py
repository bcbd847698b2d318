"""``silkcheck blackbox``: hunt for a PCC violation, shrink it by re-running, measure how often it reproduces.

Runs are real time and so nondeterministic: a shrinking step (``shrink.py``) is kept when
the smaller trace fails ``confirm`` re-runs in a row, and the final trace is re-run
``repro`` times; the saved trace says how many of those failed. Every violating trace is
saved the moment it is found (the workload as it ran), then the smallest failing trace
beside it each time the shrinker finds a smaller one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from model import events as ev
from model.config import Config
from model.types import Dip, Vip
from silkcheck.blackbox.harness import BlackboxRun, Session, Setup, print_progress
from silkcheck.blackbox.shrink import Budget, shrink
from silkcheck.blackbox.workload import WorkloadSpec, generate
from silkcheck.oracle import Verdict, judge
from silkcheck.trace import Trace, save


@dataclass
class Found:
    verdict: Verdict
    run: BlackboxRun
    saved: Path
    after_s: float
    shrunk: Trace | None = None
    shrunk_saved: Path | None = None
    reproduced: int = 0
    repro_runs: int = 0
    shrink_runs: int = 0


@dataclass
class CampaignResult:
    rounds: int = 0
    packets: int = 0
    connections: int = 0
    seconds: float = 0.0
    found: Found | None = None
    runs: list[BlackboxRun] = field(default_factory=list)


def _judge(config: Config, run: BlackboxRun) -> Verdict:
    return judge(config, run.observations)


def hunt(session: Session, spec: WorkloadSpec, config: Config, pools: dict[Vip, tuple[Dip, ...]],
         dips: tuple[Dip, ...], budget_s: float, seed: int, out: Path, command: str, shrink_it: bool = True,
         repro: int = 10, shrink_runs: int = 200, confirm: int = 3,
         progress: Callable[[str], None] = print_progress) -> CampaignResult:  # fmt: skip
    """Rounds of fresh workloads until a violation or the budget is spent."""
    result = CampaignResult()
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    while time.monotonic() - started < budget_s:
        trace = generate(spec, config, pools, dips, seed + result.rounds)
        result.rounds += 1
        run = session.run(trace)
        verdict = _judge(config, run)
        result.packets += run.stats.packets
        result.connections += run.stats.connections
        progress(f"round {result.rounds} (seed {seed + result.rounds - 1}): {run.stats.packets:,} packets, "
                 f"{run.stats.connections:,} connections, {run.stats.packets_per_s:,.0f} packets/s: "
                 f"{verdict.summary()}")  # fmt: skip
        if not verdict.ok:
            found_at = time.monotonic() - started
            path = out / f"found-seed{seed + result.rounds - 1}.json"
            _save(run.recorded, path, command, f"found after {found_at:.1f} s: {verdict.summary()}")
            result.found = Found(verdict, run, path, found_at)
            progress(f"violation after {found_at:.1f} s; saved {path}")
            if shrink_it:
                _shrink_and_measure(session, config, result.found, repro, command, progress, shrink_runs, confirm)
            break
    result.seconds = time.monotonic() - started
    return result


def survive(session: Session, spec: WorkloadSpec, config: Config, pools: dict[Vip, tuple[Dip, ...]],
            dips: tuple[Dip, ...], budget_s: float, seed: int, out: Path, command: str,
            progress: Callable[[str], None] = print_progress) -> tuple[str, bool]:  # fmt: skip
    """Rounds for the whole budget, whatever they find: the survival run. Violating rounds are saved."""
    started = time.monotonic()
    rounds = packets = connections = violations = dropped = late = skipped = failed_starts = 0
    busy = 0.0
    findings: dict[str, int] = {}
    nemesis: dict[str, int] = {}
    out.mkdir(parents=True, exist_ok=True)
    while time.monotonic() - started < budget_s:
        trace = generate(spec, config, pools, dips, seed + rounds)
        run = session.run(trace)
        verdict = _judge(config, run)
        rounds += 1
        packets += run.stats.packets
        connections += run.stats.connections
        busy += run.stats.seconds
        violations += len(verdict.violations)
        for f in verdict.findings:
            findings[f.category] = findings.get(f.category, 0) + 1
        for kind, count in run.stats.nemesis.items():
            nemesis[kind] = nemesis.get(kind, 0) + count
        dropped += run.stats.dropped
        late += run.stats.late_frames
        skipped += run.stats.nemesis_skipped
        failed_starts += run.stats.failed_starts
        if not verdict.ok:
            path = out / f"survival-seed{seed + rounds - 1}.json"
            _save(run.recorded, path, command, verdict.summary())
            progress(f"violation saved: {path}")
        elapsed = time.monotonic() - started
        progress(f"{elapsed:6.0f} s: round {rounds}: {verdict.summary()}; {packets:,} packets, "
                 f"{connections:,} connections, {violations} violations")  # fmt: skip
    elapsed = time.monotonic() - started
    text = "\n".join([
        f"survival: {rounds} rounds in {elapsed:.0f} s ({busy:.0f} s of workload on the clock)",
        f"  {packets:,} packets ({packets / busy:,.0f} packets/s), {connections:,} connections "
        f"({connections / busy:,.1f} connections/s)",
        f"  nemesis: {', '.join(f'{k} x{v}' for k, v in sorted(nemesis.items())) or 'none'} ({skipped} could "
        f"not act: the controller was restarting); controller starts that failed and were retried: {failed_starts}",
        f"  dropped (no frame before the barrier): {dropped:,}; frames after their packet was judged dropped: {late:,}",
        f"  findings: {', '.join(f'{k} {v}' for k, v in sorted(findings.items())) or 'none'}",
        f"  PCC violations: {violations}",
    ])  # fmt: skip
    return text, violations == 0


def _save(trace: Trace, path: Path, command: str, note: str) -> None:
    trace.expect = "fail"
    trace.description = f"{note}. Replay: {command} {path}"
    save(trace, path)


def fails(session: Session, trace: Trace) -> bool:
    return not _judge(trace.config, session.run(trace)).ok


def _shrink_and_measure(session: Session, config: Config, found: Found, repro: int, command: str,
                        progress: Callable[[str], None], budget_runs: int, confirm: int) -> None:  # fmt: skip
    """Shrink (a candidate counts as failing when it fails ``confirm`` runs in a row; the
    smallest so far is saved as it is found), then count how often the result reproduces."""
    path = found.saved.with_name(found.saved.stem + "-shrunk.json")
    original = len(found.run.recorded.events)
    budget = Budget(budget_runs)
    runs = [0]

    def still_fails(candidate: Trace) -> bool:
        for attempt in range(confirm):
            runs[0] += 1
            verdict = _judge(config, session.run(candidate))
            progress(f"shrink run {runs[0]} (candidate {budget.spent}/{budget.runs}"
                     f"{f', confirming {attempt + 1}/{confirm}' if attempt else ''}): {len(candidate.events)} events: "
                     f"{verdict.summary()}")  # fmt: skip
            if verdict.ok:
                return False
        _save(candidate, path, command, f"shrinking: {len(candidate.events)} of {original} events so far")
        return True

    shrunk = shrink(found.run.recorded, found.verdict, still_fails, budget)
    found.shrink_runs = runs[0]
    found.reproduced = sum(fails(session, shrunk) for _ in range(repro))
    found.repro_runs = repro
    found.shrunk = shrunk
    found.shrunk_saved = path
    _save(shrunk, path, command, f"shrunk from {original} to {len(shrunk.events)} events in {runs[0]} runs; "
                                 f"reproduced {found.reproduced}/{repro} runs")  # fmt: skip
    progress(f"shrunk to {len(shrunk.events)} events, reproduces {found.reproduced}/{repro}: {path}")


def summary(result: CampaignResult, setup: Setup) -> str:
    lines = [f"{result.rounds} rounds, {result.packets:,} packets, {result.connections:,} connections in "
             f"{result.seconds:.1f} s"]  # fmt: skip
    found = result.found
    if found is None:
        lines.append("no PCC violation found")
        return "\n".join(lines)
    lines.append(f"PCC violation found after {found.after_s:.1f} s: {found.verdict.summary()}")
    lines.append(f"  workload as it ran: {found.saved}")
    if found.shrunk is not None:
        packets = sum(isinstance(e, ev.PacketArrives) for e in found.shrunk.events)
        lines.append(f"  shrunk ({found.shrink_runs} runs): {len(found.shrunk.events)} events, {packets} packets: "
                     f"{found.shrunk_saved}")  # fmt: skip
        lines.append(f"  reproduces {found.reproduced}/{found.repro_runs} runs")
    lines.append(json.dumps(setup.extra) if setup.extra else "")
    return "\n".join(line for line in lines if line)
