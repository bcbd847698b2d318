"""Fuzzing campaigns: parallel random walks under a time budget, with a persistent database.

Every failure a worker finds is shrunk in the worker and saved by the parent
at once (``<db>/<target>/<category>-<kind>.json`` plus a ``.txt``
explanation), so interrupting a campaign keeps what it found. A rerun replays
the saved failures first. Progress (steps, steps/s, coverage, failures) goes
to stderr.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis.database import DirectoryBasedExampleDatabase

from fuzz import machines
from fuzz.invariants import PCC, Failure
from fuzz.mutants import MUTANTS, get_mutant
from fuzz.walk import Coverage, replay, shrink, walk
from silkcheck import report
from silkcheck.oracle import judge
from silkcheck.targets.model import ModelTarget
from silkcheck.timeline import describe
from silkcheck.trace import Trace, TraceError, from_dict, load, save, to_dict

DEFAULT_DB = Path(".silkcheck/fuzz-db")
HYPOTHESIS_EXAMPLES = 5
"""Examples per Hypothesis batch: small, so a worker returns to random walks often."""
SHIPPED = "model"
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, None: 1}


def parse_budget(text: str) -> float:
    """'30s', '10m', '1h' or plain seconds."""
    match = _BUDGET.match(text)
    if not match:
        raise ValueError(f"bad budget {text!r}: expected a number with an optional unit s, m or h (e.g. 30s, 10m)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def mutant_context(target: str) -> contextlib.AbstractContextManager[Any]:
    """Nothing for the shipped model; the named mutant's patch otherwise (TraceError if unknown)."""
    if target == SHIPPED:
        return contextlib.nullcontext()
    try:
        return get_mutant(target).patch()
    except ValueError as error:
        raise TraceError(f"--target: {error}") from None


@dataclass
class Found:
    failure: Failure
    trace: Trace
    seconds: float
    """Time from the campaign's start to the failure being found (before shrinking)."""
    raw_events: int
    shrunk: bool


@dataclass
class Result:
    target: str
    steps: int = 0
    seconds: float = 0.0
    coverage: Coverage = field(default_factory=Coverage)
    found: dict[tuple[str, str], Found] = field(default_factory=dict)
    replayed: list[tuple[Path, bool]] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> bool:
        return bool(self.found) or any(still for _, still in self.replayed)


# ---------------------------------------------------------------- workers


def _worker(target: str, seed: int, deadline: float, hypothesis_share: float, db: Path | None, out: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it saves, then stops us
    start = time.time()
    seen: set[tuple[str, str]] = set()
    coverage = Coverage()
    steps = 0
    last_report = time.time()
    hypothesis_time = 0.0
    database = DirectoryBasedExampleDatabase(str(db_dir(db, target) / "hypothesis")) if db is not None else None
    with mutant_context(target):
        n = 0
        while time.time() < deadline:
            if hypothesis_time < hypothesis_share * (time.time() - start):
                began = time.time()
                taken, failed = machines.run_batch(HYPOTHESIS_EXAMPLES, database)
                hypothesis_time += time.time() - began
                steps += taken
                trace, failure = (failed.trace, failed.failure) if failed else (None, None)
            else:
                outcome = walk(seed * 1_000_003 + n, coverage)
                n += 1
                steps += outcome.steps
                trace, failure = outcome.trace, outcome.failure
            # On a mutant every failure is reported: the parent keeps only those the shipped model does not share.
            if failure is not None and (failure.signature not in seen or target != SHIPPED):
                seen.add(failure.signature)
                found_at = time.time() - start
                assert trace is not None
                # The raw trace first: an interrupt while shrinking still keeps the failure.
                out.put(("failure", failure, to_dict(trace), found_at, len(trace.events), False))
                small, failure = shrink(trace, failure)
                out.put(("failure", failure, to_dict(small), found_at, len(trace.events), True))
            if time.time() - last_report > 0.5:
                out.put(("progress", steps, coverage.counts))
                steps, coverage, last_report = 0, Coverage(), time.time()
    out.put(("progress", steps, coverage.counts))
    out.put(("done",))


# ---------------------------------------------------------------- the database


def db_dir(db: Path, target: str) -> Path:
    return db / target


def replay_saved(db: Path, target: str) -> list[tuple[Path, bool]]:
    """Replay every saved failure of ``target``: (path, still fails)."""
    results = []
    directory = db_dir(db, target)
    if not directory.is_dir():
        return results
    with mutant_context(target):
        for path in sorted(directory.glob("*.json")):
            try:
                trace = load(path)
            except TraceError as error:
                print(f"  skipping {path}: {error}", file=sys.stderr)
                continue
            outcome = replay(trace.config, trace.vips, trace.events)
            results.append((path, outcome.failure is not None))
    return results


def save_failure(db: Path, target: str, found: Found) -> Path:
    directory = db_dir(db, target)
    directory.mkdir(parents=True, exist_ok=True)
    category, kind = found.failure.signature
    path = directory / f"{category}-{kind}.json"
    found.trace.name = f"{target}-{category}-{kind}"
    found.trace.description = found.failure.message
    save(found.trace, path)
    path.with_suffix(".txt").write_text(explain(found.trace, found.failure, target) + "\n")
    return path


# ---------------------------------------------------------------- explanation


def explain(trace: Trace, failure: Failure, target: str = SHIPPED) -> str:
    """One screen: which connection, which packets, which DIPs, and the events between."""
    lines = [f"[{failure.category}] {failure.kind} on {target}: {failure.message}"]
    lines.append(f"trace: {len(trace.events)} events, config {trace.config.to_dict()}")
    low = failure.at
    if failure.category == PCC:
        with mutant_context(target):
            observations = ModelTarget().run(trace)
        verdict = judge(trace.config, observations)
        finding = next(iter(verdict.violations), None)
        if finding is not None:
            lines.append(report.explain(finding))
            lines.append("DIPs reached: " + ", ".join(str(p.dip) for p in finding.packets if p.dip))
            low = finding.packets[0].index
    lines.append(f"events #{low}..#{failure.at}:")
    for index in range(max(0, min(low, failure.at - 15)), failure.at + 1):
        e = trace.events[index]
        lines.append(f"  #{index:<4} t={e.t:<8} {describe(e)}")
    return "\n".join(lines)


# ---------------------------------------------------------------- the campaign


def run_campaign(
    target: str = SHIPPED,
    budget: float = 10.0,
    workers: int = 1,
    seed: int = 0,
    db: Path | None = DEFAULT_DB,
    stop_on_first: bool = False,
    progress: bool = True,
    hypothesis_share: float = 0.1,
) -> Result:
    """Random walks and Hypothesis machines (``hypothesis_share`` of the time) on ``target``
    (``model`` or a mutant's name) until the budget ends."""
    mutant_context(target)  # an unknown mutant fails here, before any worker starts
    result = Result(target)
    if db is not None:
        result.replayed = replay_saved(db, target)
        for path, still in result.replayed:
            print(f"  replayed {path}: {'STILL FAILS' if still else 'passes now'}", file=sys.stderr)
    start = time.time()
    deadline = start + budget
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(target, seed + i, deadline, hypothesis_share, db, out), daemon=True)
             for i in range(workers)]  # fmt: skip
    for p in procs:
        p.start()
    running = len(procs)
    last_line = 0.0
    try:
        while running:
            try:
                message = out.get(timeout=0.2)
            except queue.Empty:
                message = None
            if message is not None:
                running -= message[0] == "done"
                _take(message, result, start, db, target)
                if stop_on_first and any(f.shrunk for f in result.found.values()):
                    break
            if progress and time.time() - last_line > 1:
                _progress(result, start)
                last_line = time.time()
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    result.seconds = time.time() - start
    if progress:
        _progress(result, start)
        print(file=sys.stderr)
    return result


def _take(message: tuple[Any, ...], result: Result, start: float, db: Path | None, target: str) -> None:
    if message[0] == "progress":
        result.steps += message[1]
        result.coverage.merge(message[2])
    elif message[0] == "failure":
        _, failure, trace_dict, found_at, raw, shrunk = message
        try:
            trace = from_dict(trace_dict)
        except TraceError as error:  # a generator wrote what the trace language forbids
            print(f"\n  failure {failure.signature} has an unloadable trace: {error}", file=sys.stderr)
            return
        found = Found(failure, trace, found_at, raw, shrunk)
        if target != SHIPPED and replay(found.trace.config, found.trace.vips, found.trace.events).failure:
            return  # the shipped model fails this trace too: not the mutant's doing
        known = result.found.get(failure.signature)
        if known is None or len(found.trace.events) < len(known.trace.events):
            result.found[failure.signature] = found
            if db is not None:
                path = save_failure(db, target, found)
                what = "new failure" if known is None else "shrunk to"
                print(f"\n  {what} {failure.category}/{failure.kind} ({len(found.trace.events)} events): {path}",
                      file=sys.stderr)  # fmt: skip


def _progress(result: Result, start: float) -> None:
    elapsed = max(time.time() - start, 1e-9)
    print(
        f"\r  {elapsed:6.1f}s  {result.steps:>10,} steps  {result.steps / elapsed:>8,.0f} steps/s  "
        f"coverage {len(result.coverage.counts):>3} features  failures {len(result.found)}",
        end="", file=sys.stderr, flush=True,
    )  # fmt: skip


def coverage_table(coverage: Coverage) -> str:
    groups: dict[str, list[str]] = {}
    for feature, count in sorted(coverage.counts.items()):
        group, _, name = feature.partition(":")
        groups.setdefault(group, []).append(f"{name}({count:,})")
    return "\n".join(f"  {group:<11} {', '.join(names)}" for group, names in groups.items())


def summary(result: Result) -> str:
    lines = [
        f"{result.target}: {result.steps:,} steps in {result.seconds:.1f}s "
        f"({result.steps / max(result.seconds, 1e-9):,.0f} steps/s)" + (" [interrupted]" if result.interrupted else ""),
        "coverage:",
        coverage_table(result.coverage),
    ]
    if result.found:
        lines.append("failures (shrunk):")
        for found in result.found.values():
            lines.append(f"  {found.failure.category}/{found.failure.kind}: found after {found.seconds:.1f}s, "
                         f"{found.raw_events} -> {len(found.trace.events)} events")  # fmt: skip
    else:
        lines.append("failures: none")
    return "\n".join(lines)


def verify_section(budget: float = 5.0) -> bool:
    """``silkcheck verify``'s fuzzing section: a short campaign on the shipped model."""
    print(f"== fuzz: {budget:.0f}s random-walk campaign on the shipped model")
    result = run_campaign(SHIPPED, budget, workers=1, seed=0, db=None, progress=False)
    print(summary(result))
    for found in result.found.values():
        print(explain(found.trace, found.failure))
    return not result.found


def mutant_table(budget: float, workers: int, seed: int, names: list[str] | None = None) -> tuple[str, bool]:
    """A campaign against each mutant, stopping at its first failure: is every mutant killed?"""
    unknown = sorted(set(names or ()) - {m.name for m in MUTANTS})
    if unknown:
        raise TraceError(f"unknown mutant(s) {', '.join(unknown)}; known: {', '.join(m.name for m in MUTANTS)}")
    rows = []
    all_killed = True
    for mutant in MUTANTS:
        if names and mutant.name not in names:
            continue
        print(f"{mutant.name}:", file=sys.stderr)
        result = run_campaign(mutant.name, budget, workers, seed, db=None, stop_on_first=True)
        found = min(result.found.values(), key=lambda f: f.seconds, default=None)
        all_killed &= found is not None
        rows.append([
            mutant.name, mutant.mechanism, "killed" if found else "SURVIVED",
            f"{found.seconds:.1f}s" if found else "-",
            f"{found.raw_events} -> {len(found.trace.events)}" if found else "-",
            f"{found.failure.category}/{found.failure.kind}" if found else "-",
        ])  # fmt: skip
    headers = ["mutant", "mechanism", "status", "time to kill", "trace (raw -> shrunk)", "failure"]
    return report.table(headers, rows), all_killed
