"""The random-walk explorer: the machines' events without Hypothesis's per-step overhead.

A walk draws a small configuration, then takes weighted random steps
(``fuzz.scenario.WEIGHTS``), checking the structural invariants every few
steps (``STRUCTURAL_EVERY``) and the PCC oracle at the end of the walk (a
violation, once in the observations, stays there). ``replay`` runs a trace under the same checks: it
is the shrinker's test and the example database's replayer.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from fuzz.invariants import CRASH, Checker, Failure, oracle_failure
from fuzz.mutants import Patcher
from fuzz.scenario import WEIGHTS, RandomChooser, World, advance_clock
from model.config import Config
from model.observations import CpuObservation, Observation, PacketObservation
from model.switch import InvalidEvent, Switch
from model.types import Dip, Vip
from silkcheck.oracle import Verdict
from silkcheck.targets.model import Driver
from silkcheck.trace import Trace, TraceEvent

WALK_LENGTHS = (40, 120, 300)


@dataclass
class Coverage:
    """Which protocol phases, table outcomes, CPU actions and findings a campaign reached."""

    counts: Counter[str] = field(default_factory=Counter)

    def note(self, o: Observation, switch: Switch) -> None:
        self.counts.update(observation_features(o))
        if isinstance(o, PacketObservation) and switch.pending:
            self.counts[f"between-writes:{switch.pending[0].kind}"] += 1

    def note_verdict(self, verdict: Verdict) -> None:
        self.counts.update(f"finding:{f.category}" for f in verdict.findings)

    def merge(self, other: Counter[str]) -> None:
        self.counts.update(other)


_VERSION = re.compile(r":v\d+$")


def observation_features(o: Observation) -> list[str]:
    if isinstance(o, PacketObservation):
        return [f"path:{_VERSION.sub('', o.path)}", *(f"learn-sent:{k}" for k in o.learned)]
    assert isinstance(o, CpuObservation)
    features = [f"cpu:{o.kind}"]
    moved = {w.owner for w in o.installs} & {w.owner for w in o.removes}
    features += ["cpu:install"] * bool(o.installs) + ["cpu:move"] * bool(moved)
    features += ["cpu:remove"] * any(w.owner not in moved for w in o.removes)
    features += [f"phase:{p.phase}" for p in o.phases]
    features += ["cpu:whitelist"] * bool(o.whitelisted) + ["fault:unplaced-lost"] * bool(o.lost)
    for note in o.notes:
        for marker, feature in _NOTE_FEATURES:
            if marker in note:
                features.append(feature)
    return features


_NOTE_FEATURES = (
    ("reclaimed", "cpu:reclaim"),
    ("versions are in use", "cpu:update-waits-for-version"),
    ("still relies on its entry", "cpu:expiry-kept-for-unplaced"),
    ("unplaced and silent", "cpu:forgot-silent-unplaced"),
    ("became unsafe", "cpu:placement-stopped"),
    ("last DIP", "cpu:last-dip-kept"),
)


@dataclass
class Outcome:
    trace: Trace
    """The events that ran (invalid ones left out), up to the failure if there is one."""
    failure: Failure | None
    steps: int
    verdict: Verdict | None = None


STRUCTURAL_EVERY = 8
"""The walk checks the structural invariants after every 8th CPU step and at its end, not after
each: they recount the tables and cost more than a step (``Checker.every``). A failing walk is
taken again with checks after every CPU step, which pins the failure to the first step that
shows it (what shrinking starts from). A violation that a later CPU step repairs before the
next check goes unseen; the campaign's Hypothesis machines check after every step."""


@dataclass(frozen=True)
class Checks:
    """Which checks a walk makes (campaigns make all three; ``refinement-bench`` one at a time)."""

    refinement: bool = True
    """Every step is a step of the abstract system (``spec``)."""
    invariants: bool = True
    """The structural invariants of the switch's state."""
    pcc: bool = True
    """The PCC oracle on the walk's observations."""
    check_alpha: bool = False
    """The refinement check's own shortcuts checked on every step (``Refinement.check_alpha``)."""
    lemmas: bool = False
    """The induction's lemmas on α of every state (with ``refinement``; not in campaigns: slow)."""


ALL_CHECKS = Checks()
REFINEMENT_ONLY = Checks(refinement=True, invariants=False, pcc=False)
PCC_ONLY = Checks(refinement=False, invariants=False, pcc=True)


def walk(seed: int, coverage: Coverage | None = None, checks: Checks = ALL_CHECKS) -> Outcome:
    """One random walk from a freshly drawn small switch, checked by ``checks``."""
    outcome = _walk(seed, coverage, STRUCTURAL_EVERY, checks)
    if outcome.failure is None:
        return outcome
    pinned = _walk(seed, None, 1, checks)  # the same events: no generator reads the checker
    return dataclasses.replace(pinned, steps=outcome.steps + pinned.steps)


def _walk(seed: int, coverage: Coverage | None, check_every: int, checks: Checks) -> Outcome:
    rng = random.Random(seed)
    chooser = RandomChooser(rng)
    world = World.draw(chooser)
    checker = Checker(world.switch, every=check_every, refine=checks.refinement, invariants=checks.invariants,
                      check_alpha=checks.check_alpha, lemmas=checks.lemmas)  # fmt: skip
    generators, cumulative = list(WEIGHTS), list(itertools.accumulate(WEIGHTS.values()))
    steps = 0
    for _ in range(chooser.pick(WALK_LENGTHS)):
        if chooser.chance(60):
            advance_clock(chooser, world)
        for event in rng.choices(generators, cum_weights=cumulative)[0](chooser, world):
            try:
                observation = world.apply(event)
            except Exception as error:  # the model itself broke: that is a finding too
                world.trace.events.append(event)
                index = len(world.trace.events) - 1
                return Outcome(world.trace, Failure(CRASH, type(error).__name__, str(error), index), steps)
            if observation is None:
                continue
            steps += 1
            if coverage is not None:
                coverage.note(observation, world.switch)
            failure = checker.after(event, observation)
            if failure is not None:
                return Outcome(world.trace, failure, steps)
    if world.trace.events and checks.invariants:
        failure = checker.check(len(world.trace.events) - 1)
        if failure is not None:
            return Outcome(world.trace, failure, steps)
    if not checks.pcc:
        return Outcome(world.trace, None, steps)
    failure, verdict = oracle_failure(world.config, world.observations)
    if coverage is not None:
        coverage.note_verdict(verdict)
    return Outcome(world.trace, failure, steps, verdict)


def replay(
    config: Config, vips: dict[Vip, tuple[Dip, ...]], events: Sequence[TraceEvent], checks: Checks = ALL_CHECKS
) -> Outcome:
    """Run events under ``checks`` (default every one); events the switch cannot take (now) are dropped."""
    trace = Trace(config, dict(vips), name="fuzz")
    switch = Switch.boot(config, vips)
    driver = Driver(switch)
    checker = Checker(switch, refine=checks.refinement, invariants=checks.invariants)
    observations: list[Observation] = []
    for event in events:
        index = len(trace.events)
        try:
            observation = driver.step(index, event)
        except InvalidEvent:
            continue
        except Exception as error:
            trace.events.append(event)
            return Outcome(trace, Failure(CRASH, type(error).__name__, str(error), index), len(trace.events))
        trace.events.append(event)
        observations.append(observation)
        failure = checker.after(event, observation)
        if failure is not None:
            return Outcome(trace, failure, len(trace.events))
    if not checks.pcc:
        return Outcome(trace, None, len(trace.events))
    failure, verdict = oracle_failure(config, observations)
    if failure is not None:
        del trace.events[failure.at + 1 :]
    return Outcome(trace, failure, len(trace.events), verdict)


def shrink(trace: Trace, failure: Failure, checks: Checks = ALL_CHECKS) -> tuple[Trace, Failure]:
    """Delta debugging over events: drop chunks, then single events, while the same failure persists
    under ``checks`` (those of the search that found it: under every check, a refinement failure
    earlier in the trace would hide a PCC one).

    Removing events keeps the times monotone; events that a removal made
    invalid (a learn fault whose queue slot is gone) are dropped by ``replay``.
    """
    events = list(trace.events)

    def still_fails(candidate: list[TraceEvent]) -> list[TraceEvent] | None:
        out = replay(trace.config, trace.vips, candidate, checks)
        if out.failure is not None and out.failure.signature == failure.signature:
            return out.trace.events
        return None

    events = still_fails(events) or events
    chunk = max(len(events) // 2, 1)
    while True:
        removed = False
        start = len(events) - chunk
        while start >= 0 and events:
            smaller = still_fails(events[:start] + events[start + chunk :])
            if smaller is not None:
                events = smaller
                removed = True
            start = min(start, len(events)) - chunk
        if chunk == 1 and not removed:
            break
        if not removed:
            chunk = max(chunk // 2, 1)
    small = replay(trace.config, trace.vips, events, checks)
    assert small.failure is not None
    return Trace(trace.config, dict(trace.vips), events, name=trace.name, expect="fail"), small.failure


# ---------------------------------------------------------------- a search under one check


@dataclass
class Kill:
    seconds: float
    """CPU seconds of walks until the kill (or the budget, if none)."""
    steps: int
    seed: int | None = None
    """The killing walk (None: the mutant survived the budget)."""
    trace: Trace | None = None
    """The killing walk's events, up to its failure."""
    failure: Failure | None = None


def time_to_kill(patch: Patcher, checks: Checks, budget_s: float) -> Kill:
    """Walks from seed 0 under ``patch`` (a mutant's) and ``checks`` alone, until one fails in a way
    the shipped model does not show on the same trace, or ``budget_s`` CPU seconds pass. The CPU
    time is this thread's: ``silkcheck mutants`` runs it beside an embedded Dask scheduler, whose
    threads would otherwise spend a share of the budget."""
    start, steps, seed = time.thread_time(), 0, 0
    while (spent := time.thread_time() - start) < budget_s:
        with patch():
            outcome = walk(seed, checks=checks)
        steps += outcome.steps
        failure, trace = outcome.failure, outcome.trace
        if failure is not None and replay(trace.config, trace.vips, trace.events).failure is None:
            return Kill(time.thread_time() - start, steps, seed, trace, failure)
        seed += 1
    return Kill(spent, steps)
