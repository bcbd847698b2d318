r"""Fuzzing campaigns: random walks and Hypothesis machines as small tasks on a Dask cluster.

A campaign is a stream of ``FuzzTask``\ s (``silkcheck.cluster``), each a
range of walk seeds or a few Hypothesis batches on one target (the shipped
model or a mutant). A task reports each new failure twice, as found and as
shrunk; the client saves each in the example database (``fuzz.database``)
as it arrives, so Ctrl-C, SIGTERM or a lost worker keeps it. A rerun replays
the saved failures first. Progress (steps, steps/s, coverage, failures) goes
to stderr.

Walk tasks are deterministic in (campaign seed, task index): a task rerun on
another worker after its worker died walks the same seeds, and the first
failure a campaign finds is the same on one worker and on a hundred.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from fuzz import database, machines
from fuzz.invariants import PCC, Failure
from fuzz.mutants import BETWEEN_WRITES_MUTANTS, MUTANTS, Mutant, get_mutant
from fuzz.walk import ALL_CHECKS, PCC_ONLY, Checks, Coverage, replay, shrink, time_to_kill, walk
from silkcheck import report
from silkcheck.cluster import Channel, Done, TaskStream, open_cluster, warm
from silkcheck.oracle import judge
from silkcheck.targets.model import ModelTarget
from silkcheck.timeline import describe
from silkcheck.trace import Trace, TraceError, dumps, loads

DEFAULT_DB = Path(".silkcheck/fuzz-db")
DEADLINE_SLACK = 10.0
"""Seconds the client waits past the budget for tasks finishing a shrink before it leaves them."""
HYPOTHESIS_EXAMPLES = 5
"""Examples per Hypothesis batch: small, so a machine task ends about as soon as a walk task."""
UNITS = {"walk": 32, "machine": 2}
"""Walks, or Hypothesis batches, per task: about three seconds of work on this machine (a walk,
checked against the abstract system at every step, takes about 90 ms), so a lost task costs little
and Dask's per-task costs (scheduling, the queue, the cancel checks, the client's polls) stay near
1% (64 walks without the refinement check, under a second, cost measurably more on 2 workers)."""
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


def shows(target: str, checks: Checks = ALL_CHECKS) -> database.Shows:
    """The failure a trace shows on ``target``, under ``checks`` (default every one)."""

    def run(trace: Trace) -> Failure | None:
        with mutant_context(target):
            return replay(trace.config, trace.vips, trace.events, checks).failure

    return run


def save_finding(db: Path, target: str, trace: Trace, failure: Failure, checks: Checks = ALL_CHECKS) -> Path | None:
    """Save a failure of ``target`` (found under ``checks``) in the example database ``db``, named and
    described after it, with its one-screen explanation; the path, or None if the entry there is as short."""
    trace.name = f"{target}-{failure.category}-{failure.kind}"
    trace.description = failure.message
    text = explain(trace, failure, target)
    return database.save(db, target, trace, failure, text, shows(target, checks))


# ---------------------------------------------------------------- tasks (run on the workers)


class Explored(NamedTuple):
    trace: Trace | None
    failure: Failure | None
    steps: int


Explorer = Callable[[int, Coverage, ExampleDatabase | None], Explored]


def _walk_unit(seed: int, coverage: Coverage, examples: ExampleDatabase | None) -> Explored:
    outcome = walk(seed, coverage)
    return Explored(outcome.trace, outcome.failure, outcome.steps)


def _machine_unit(seed: int, coverage: Coverage, examples: ExampleDatabase | None) -> Explored:
    """One Hypothesis batch; Hypothesis draws its own randomness (the seed is not used)."""
    taken, failed = machines.run_batch(HYPOTHESIS_EXAMPLES, examples)
    return Explored(failed.trace, failed.failure, taken) if failed else Explored(None, None, taken)


EXPLORERS: dict[str, Explorer] = {"walk": _walk_unit, "machine": _machine_unit}


@dataclass(frozen=True)
class FuzzTask:
    """``units`` walks or Hypothesis batches on ``target``; the ``index``-th task of its campaign."""

    target: str
    explorer: str
    seed: int
    index: int
    units: int
    deadline: float
    """Wall-clock time (``time.time()``) after which the task starts no new unit."""
    stop_on_first: bool = False
    known: frozenset[tuple[str, str]] = frozenset()
    """Failure signatures the campaign has already shrunk: not reported again."""
    hypothesis_db: str | None = None

    def unit_seed(self, unit: int) -> int:
        """Distinct for every (campaign seed, task index < 2**32, unit < 2**16)."""
        return (self.seed << 48) + (self.index << 16) + unit


@dataclass
class Tally:
    """What one task did."""

    steps: int = 0
    coverage: Counter[str] = field(default_factory=Counter)


def run_fuzz_task(task: FuzzTask, channel: Channel) -> Tally:
    """Run ``task``, reporting each failure of a new signature as found, then shrunk. On a mutant,
    a failure the shipped model shows on the same trace is not the mutant's doing and is skipped.
    A cancelled task (its campaign stopped) ends at the next unit, or before shrinking."""
    examples = _hypothesis_database(task)
    coverage = Coverage()
    tally = Tally()
    seen = set(task.known)
    for unit in range(task.units):
        if time.time() >= task.deadline or channel.cancelled():
            break
        with mutant_context(task.target):
            explored = EXPLORERS[task.explorer](task.unit_seed(unit), coverage, examples)
        tally.steps += explored.steps
        trace, failure = explored.trace, explored.failure
        if trace is None or failure is None or failure.signature in seen or _shipped_shows(task.target, trace):
            continue
        seen.add(failure.signature)
        position = [task.index, unit]
        # The raw trace first: a worker lost while shrinking has reported the failure already.
        channel.report("failure", _finding(failure, trace, position, len(trace.events), final=False))
        if channel.cancelled():
            break
        with mutant_context(task.target):
            small, shrunk = shrink(trace, failure)
        if _shipped_shows(task.target, small):  # shrinking went where the shipped model fails too
            small, shrunk = trace, failure
        channel.report("failure", _finding(shrunk, small, position, len(trace.events), final=True))
        if task.stop_on_first:
            break
    tally.coverage = coverage.counts
    return tally


def _shipped_shows(target: str, trace: Trace) -> bool:
    return target != SHIPPED and replay(trace.config, trace.vips, trace.events).failure is not None


def _finding(failure: Failure, trace: Trace, position: list[int], raw_events: int, final: bool) -> dict[str, Any]:
    return {"failure": json.dumps(failure._asdict()), "trace": dumps(trace), "position": position,
            "raw_events": raw_events, "final": final}  # fmt: skip


def _hypothesis_database(task: FuzzTask) -> ExampleDatabase | None:
    """The Hypothesis machines' own database, where the worker can reach the campaign's directory
    (a worker on another machine without that path runs its machines without one)."""
    if task.explorer != "machine" or task.hypothesis_db is None:
        return None
    try:
        Path(task.hypothesis_db).mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return DirectoryBasedExampleDatabase(task.hypothesis_db)


# ---------------------------------------------------------------- the campaign (on the client)


@dataclass
class Found:
    failure: Failure
    trace: Trace
    seconds: float
    """Time from the campaign's start to the failure reaching the client (before shrinking)."""
    raw_events: int
    shrunk: bool
    position: tuple[int, int]
    """(task index, unit): where in the campaign's deterministic order the failure was found."""
    worker: str

    def rank(self) -> tuple[int, bool, tuple[int, int]]:
        """Which of two findings of one signature to keep: the shorter, the shrunk, the earlier."""
        return len(self.trace.events), not self.shrunk, self.position


@dataclass
class Result:
    target: str
    steps: int = 0
    seconds: float = 0.0
    tasks: int = 0
    coverage: Coverage = field(default_factory=Coverage)
    found: dict[tuple[str, str], Found] = field(default_factory=dict)
    first: Found | None = None
    """The shrunk failure found earliest in the campaign's order (what stops a mutant's campaign)."""
    replayed: list[tuple[Path, bool]] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    """Tasks no worker could finish (each killed every worker it ran on)."""
    interrupted: bool = False

    @property
    def failed(self) -> bool:
        return bool(self.found) or any(still for _, still in self.replayed)


def _warn(text: str) -> None:
    print(f"\n  {text}", file=sys.stderr)


class _Collector:
    """The client's side of one campaign: takes reports and ended tasks, saves failures."""

    def __init__(self, result: Result, db: Path | None, start: float) -> None:
        self.result = result
        self.db = db
        self.start = start
        self.arrived: dict[tuple[int, int], float] = {}

    def on_report(self, message: dict[str, Any]) -> None:
        if message["kind"] != "failure":
            return
        failure = Failure(**json.loads(message["failure"]))
        try:
            trace = loads(message["trace"], source=f"the trace of {failure.category}/{failure.kind}")
        except TraceError as error:  # a generator wrote what the trace language forbids
            _warn(f"failure {failure.signature} has an unloadable trace: {error}")
            return
        position = (message["position"][0], message["position"][1])
        seconds = self.arrived.setdefault(position, time.time() - self.start)
        found = Found(failure, trace, seconds, message["raw_events"], message["final"], position, message["worker"])
        result = self.result
        if found.shrunk and (result.first is None or found.position < result.first.position):
            result.first = found
        known = result.found.get(failure.signature)
        if known is not None and known.rank() <= found.rank():
            return
        result.found[failure.signature] = found
        if self.db is not None:
            path = self._save(found)
            what = "new failure" if known is None else "shorter trace of"
            where = f": {path}" if path else " (the database holds one as short)"
            _warn(f"{what} {failure.category}/{failure.kind} ({len(trace.events)} events){where}")

    def _save(self, found: Found) -> Path | None:
        assert self.db is not None
        return save_finding(self.db, self.result.target, found.trace, found.failure)

    def on_done(self, done: Done) -> None:
        result = self.result
        if done.lost is not None:
            result.lost.append(done.lost)
            _warn(f"task {done.spec.index} was given up: {done.lost}")
            return
        tally: Tally = done.result
        result.tasks += 1
        result.steps += tally.steps
        result.coverage.merge(tally.coverage)


def run_campaign(
    client: Any,
    target: str = SHIPPED,
    budget: float = 10.0,
    seed: int = 0,
    db: Path | None = DEFAULT_DB,
    stop_on_first: bool = False,
    progress: bool = True,
    hypothesis_share: float = 0.1,
    tasks: int | None = None,
) -> Result:
    """Random walks and Hypothesis machines (every ``1/hypothesis_share``-th task) on ``target``
    (``model`` or a mutant's name) on the Dask ``client``'s cluster, until the budget ends or
    ``tasks`` tasks are done. ``stop_on_first`` stops at the first failure in task order."""
    mutant_context(target)  # an unknown mutant fails here, before any task starts
    result = Result(target)
    if db is not None:
        result.replayed = database.replay_saved(db, target, shows(target), _warn)
        for path, still in result.replayed:
            print(f"  replayed {path}: {'STILL FAILS' if still else 'passes now'}", file=sys.stderr)
    hypothesis_db = str((database.target_dir(db, target) / "hypothesis").resolve()) if db is not None else None
    every = round(1 / hypothesis_share) if hypothesis_share > 0 else 0
    warm(client, __name__)
    start = time.time()
    deadline = start + budget
    side = _Collector(result, db, start)
    stream = TaskStream(client, side.on_report, prefix=f"fuzz-{target}")
    submitted = 0
    last_line = 0.0
    try:
        while True:
            more = time.time() < deadline and (tasks is None or submitted < tasks)
            if stop_on_first and result.first is not None:
                more = False  # the first failure's task and those before it still run: the earliest wins
                stream.cancel(keep=lambda task: task.index <= result.first.position[0])  # type: ignore[union-attr]
            while more and stream.room() > 0:
                explorer = "machine" if every and submitted % every == every - 1 else "walk"
                known = frozenset(sig for sig, found in result.found.items() if found.shrunk)
                stream.submit(run_fuzz_task, FuzzTask(target, explorer, seed, submitted, UNITS[explorer], deadline,
                                                      stop_on_first, known, hypothesis_db))  # fmt: skip
                submitted += 1
                more = time.time() < deadline and (tasks is None or submitted < tasks)
            for done in stream.poll():
                side.on_done(done)
            if not more and not stream.pending:
                break
            if time.time() > deadline + DEADLINE_SLACK:
                _warn(f"{len(stream.pending)} tasks still running {DEADLINE_SLACK:.0f}s after the budget: left")
                break
            if time.time() - last_line > 1:
                for line in stream.membership():
                    if progress:
                        _warn(line)
                if progress:
                    _progress(result, start, stream)
                last_line = time.time()
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        stream.close()
    result.seconds = time.time() - start
    if progress:
        _progress(result, start, stream)
        print(file=sys.stderr)
    return result


def _progress(result: Result, start: float, stream: TaskStream) -> None:
    elapsed = max(time.time() - start, 1e-9)
    print(
        f"\r  {elapsed:6.1f}s  {result.steps:>10,} steps  {result.steps / elapsed:>8,.0f} steps/s  "
        f"coverage {len(result.coverage.counts):>3} features  failures {len(result.found)}  "
        f"tasks {result.tasks}  workers {len(stream.threads)}",
        end="", file=sys.stderr, flush=True,
    )  # fmt: skip


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
    with open_cluster(None, 1) as client:
        result = run_campaign(client, SHIPPED, budget, seed=0, db=None, progress=False)
    print(summary(result))
    for found in result.found.values():
        print(explain(found.trace, found.failure))
    return not result.found


def check_mutant_names(names: list[str] | None) -> None:
    unknown = sorted(set(names or ()) - {m.name for m in MUTANTS})
    if unknown:
        raise TraceError(f"unknown mutant(s) {', '.join(unknown)}; known: {', '.join(m.name for m in MUTANTS)}")


def mutant_table(
    client: Any, budget: float, seed: int, names: list[str] | None = None, db: Path | None = None,
    pcc_all: bool = False,
) -> tuple[str, bool]:  # fmt: skip
    """A campaign against each mutant on the ``client``'s cluster, stopping at its first failure in
    task order: is every mutant killed? All but the times is the same on any number of workers.

    A kill by the refinement check (or an invariant) shows that the code left the abstract system,
    not that a connection moved. So each mutant of ``BETWEEN_WRITES_MUTANTS`` (with ``pcc_all``,
    every mutant) that was killed also gets a PCC trace: its kill's if that was
    a PCC violation, else one from a PCC-oracle-only search (``refinement-bench``'s) under the same
    budget, shrunk under that check alone. The traces go to the example database ``db``, under the
    mutant's name, where ``silkcheck fuzz --target MUTANT`` replays them first."""
    check_mutant_names(names)
    rows = []
    all_killed = True
    for mutant in MUTANTS:
        if names and mutant.name not in names:
            continue
        print(f"{mutant.name}:", file=sys.stderr)
        result = run_campaign(client, mutant.name, budget, seed, db=None, stop_on_first=True)
        found = result.first
        all_killed &= found is not None
        wanted = pcc_all or mutant in BETWEEN_WRITES_MUTANTS
        rows.append([
            mutant.name, mutant.mechanism, "killed" if found else "SURVIVED",
            f"{found.seconds:.1f}s" if found else "-",
            f"{found.raw_events} -> {len(found.trace.events)}" if found else "-",
            f"{found.failure.category}/{found.failure.kind}" if found else "-",
            f"{found.position[0]}/{found.position[1]}" if found else "-",
            *(pcc_trace(mutant, found, budget, db) if found and wanted else ("-", "-")),
        ])  # fmt: skip
    headers = ["mutant", "mechanism", "status", "time to kill", "trace (raw -> shrunk)", "failure", "task/unit",
               "PCC trace", "saved"]  # fmt: skip
    return report.table(headers, rows), all_killed


def pcc_trace(mutant: Mutant, found: Found, budget: float, db: Path | None) -> tuple[str, str]:
    """The table's two cells on ``mutant``'s PCC trace: how it was had, and where it was saved."""
    if found.failure.category == PCC:
        trace, failure, how = found.trace, found.failure, f"the kill's: {len(found.trace.events)} events"
    else:
        print(f"{mutant.name}: PCC-only search", file=sys.stderr)
        kill = time_to_kill(mutant.patch, PCC_ONLY, budget)
        if kill.trace is None or kill.failure is None:
            return f"NONE: PCC-only search found none in {kill.seconds:.0f}s CPU ({kill.steps:,} steps)", "-"
        with mutant.patch():
            trace, failure = shrink(kill.trace, kill.failure, PCC_ONLY)
        if _shipped_shows(mutant.name, trace):  # shrinking went where the shipped model fails too
            trace, failure = kill.trace, kill.failure
        how = (f"PCC-only search {kill.seconds:.1f}s CPU: walk {kill.seed}, "
               f"{len(kill.trace.events)} -> {len(trace.events)} events")  # fmt: skip
    how += f", {failure.kind}"
    if db is None:
        return how, "-"
    saved = save_finding(db, mutant.name, trace, failure, PCC_ONLY)
    return how, str(saved) if saved else "kept the database's, as short"
