"""Shrinking a black-box counterexample by re-running it: a cut, then delta debugging.

Every test is a real-time run on the switch (seconds each) and runs are nondeterministic,
so the shrinker tests as few candidates as it can and trusts none blindly:

1. **cut**: nothing sent after the first violating packet can have caused it;
2. **ddmin over connections** (Zeller's delta debugging, subsets then complements), every
   update and fault kept: a unit is one connection's packets (every incarnation of its
   5-tuple). A workload of hundreds of connections shrinks in O(k log n) runs when k of
   them matter, where removing one event at a time needs a run per event and round;
3. **ddmin over the updates and faults** left. Connections go first because they are the
   load, the updates and faults the causes: a violation that a lucky race under load gave
   without the fault fails too rarely to pass the caller's check once the load is gone,
   so the shrinker ends at the fault's counterexample, which reproduces;
4. **ddmin over single events** of what is left (which packets of a connection matter);
5. the trace moved to start at once (gaps kept: they are the timing).

``still_fails`` decides; the caller makes it strict (e.g. a candidate must fail twice in a
row). ``Budget`` caps the candidates tested: when it is spent, the smallest failing trace
found so far is the result.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from model import events as ev
from silkcheck.oracle import Verdict
from silkcheck.trace import Nemesis, Trace

T = TypeVar("T")
START_US = 10_000
"""Where a shrunk trace starts: time for the barrier probes' last frames to leave first."""


@dataclass
class Budget:
    runs: int
    spent: int = 0

    @property
    def left(self) -> bool:
        return self.spent < self.runs


def ddmin(items: Sequence[T], fails: Callable[[list[T]], bool], budget: Budget) -> list[T]:
    """A sublist of ``items`` (order kept) that still ``fails``, 1-minimal unless the budget
    ran out first: removing any one of its items makes it pass. ``items`` must fail. Each
    call of ``fails`` spends one of ``budget``."""
    current = list(items)
    n = 2
    while len(current) >= 2 and budget.left:
        chunks = _split(current, n)
        subsets = chunks
        complements = [[x for j, c in enumerate(chunks) if j != i for x in c] for i in range(len(chunks))]
        found = _first_failing(subsets, fails, budget)
        if found is not None:
            current, n = found, 2
            continue
        found = _first_failing(complements if n > 2 else [], fails, budget)
        if found is not None:
            current, n = found, max(n - 1, 2)
            continue
        if n >= len(current):
            break
        n = min(2 * n, len(current))
    return current


def _split(items: list[T], n: int) -> list[list[T]]:
    size, extra = divmod(len(items), n)
    chunks, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        chunks.append(items[start:end])
        start = end
    return chunks


def _first_failing(candidates: list[list[T]], fails: Callable[[list[T]], bool], budget: Budget) -> list[T] | None:
    for candidate in candidates:
        if not budget.left:
            return None
        budget.spent += 1
        if fails(candidate):
            return candidate
    return None


Event = ev.Event | Nemesis


def connections(events: Sequence[Event]) -> list[list[ev.PacketArrives]]:
    """Each connection's packets (every incarnation of its 5-tuple), in order of its first packet."""
    by_flow: dict[object, list[ev.PacketArrives]] = {}
    for event in events:
        if isinstance(event, ev.PacketArrives):
            by_flow.setdefault(event.packet.ft, []).append(event)
    return list(by_flow.values())


def shrink(trace: Trace, verdict: Verdict, still_fails: Callable[[Trace], bool], budget: Budget) -> Trace:
    """The smallest trace found that still fails (see the module's docstring for the steps)."""

    def keep(events: Sequence[Event]) -> Trace:
        return Trace(trace.config, dict(trace.vips), sorted(events, key=lambda e: e.t), trace.name,
                     trace.description)  # fmt: skip

    # A connection "moved" only if two of its packets are left; "spoofed" needs one packet.
    needed = 2 if all(f.kind == "moved" for f in verdict.violations) else 1

    def fails(events: Sequence[Event]) -> bool:
        per_flow = Counter(e.packet.ft for e in events if isinstance(e, ev.PacketArrives))
        if max(per_flow.values(), default=0) < needed:
            return False  # it cannot show the violation: not worth a run
        return still_fails(keep(events))

    events: list[Event] = list(trace.events)
    if verdict.violations:
        first_violation = min(f.first.t for f in verdict.violations)
        cut = [e for e in events if e.t <= first_violation]
        if len(cut) < len(events) and budget.left:
            budget.spent += 1
            if fails(cut):
                events = cut
    causes = [e for e in events if not isinstance(e, ev.PacketArrives)]
    kept = ddmin(connections(events), lambda units: fails(causes + [e for u in units for e in u]), budget)
    packets = [e for unit in kept for e in unit]
    causes = ddmin(causes, lambda some: fails(some + packets), budget) if causes else []
    events = ddmin(causes + packets, fails, budget)
    moved = keep(events)
    start = moved.events[0].t - START_US if moved.events else 0
    if start > 0 and budget.left:
        budget.spent += 1
        shifted = [e._replace(t=e.t - start) for e in moved.events]
        if fails(shifted):
            return keep(shifted)
    return moved
