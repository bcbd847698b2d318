"""Unsafe protocol variants, made by patching ``model.decisions`` (the shipped model stays clean).

Each is proven unsafe the same way: Z3 finds a model of the negated PCC claim
under the patch, the model becomes a trace, the *patched* concrete model
replays it and the black-box oracle reports a ``violation``; the trace is then
shrunk to a 1-minimal one and saved under ``proofs/counterexamples/``. The
same trace passes on the shipped design.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import z3

from model import decisions as d
from model import events as ev
from model.config import Config
from model.cpu import Cpu, Known
from model.types import ACK, SYN, Dip, FiveTuple, Packet, parse_ip
from proofs import explicit, protocol
from proofs.replay import minimize, reproduces
from proofs.symbolic import SAFE, UNSAFE, Outcome, prove
from silkcheck.examples import DEMO_VIP, client
from silkcheck.trace import Trace

_miss_version = d.miss_version
_next_phase = d.next_phase
_may_exec = d.may_exec
_may_finish = d.may_finish


def _skip_transit(o: d.Ops, phase: Any, transit_hit: Any, old: Any, new: Any) -> Any:
    return _miss_version(o, phase, False, old, new)


def _finish_at_exec(o: d.Ops, phase: Any, exec_ok: Any, seal_ok: Any, finish_ok: Any) -> Any:
    return o.ite(o.eq(phase, d.RECORD), o.ite(exec_ok, d.NORMAL, d.RECORD), phase)


def _no_seal(o: d.Ops, phase: Any, exec_ok: Any, seal_ok: Any, finish_ok: Any) -> Any:
    skipped = o.ite(o.eq(phase, d.TRANSIT), o.ite(seal_ok, d.NORMAL, d.TRANSIT), phase)
    return o.ite(o.eq(phase, d.RECORD), _next_phase(o, phase, exec_ok, seal_ok, finish_ok), skipped)


def _no_learn_wait(o: d.Ops, waited_bound: Any, uninstalled_before_req: Any) -> Any:
    return _may_exec(o, True, uninstalled_before_req)


def _exec_ignores_unplaced(o: d.Ops, waited_bound: Any, uninstalled_before_req: Any) -> Any:
    return _may_exec(o, waited_bound, False)


def _finish_without_wait(o: d.Ops, waited_bound: Any, uninstalled_old: Any) -> Any:
    return _may_finish(o, True, uninstalled_old)


def _sealed_forwards(o: d.Ops, hit: Any, phase: Any, transit_hit: Any) -> Any:
    return False


@dataclass
class Variant:
    name: str
    description: str
    patches: dict[str, Callable[..., Any]]
    situation: Callable[[protocol.Schedule], list[Any]] = field(default=lambda s: [])
    """Extra constraints naming the situation the variant is about."""
    search_scope: str | None = None
    """Refuted by exhaustive search of this ``explicit.SCOPES`` scope instead of Z3: the update
    proof's traces place a connection when it is learned, and this variant needs one that is not."""

    @property
    def method(self) -> str:
        return f"explicit search ({self.search_scope})" if self.search_scope else "unbounded (Z3)"

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for attr, fn in self.patches.items():
                stack.enter_context(mock.patch.object(d, attr, fn))
            yield


def _fp_pending_at_finish(s: protocol.Schedule) -> list[Any]:
    return [s.fp, z3.Not(s.recorded_before(s.later)), s.learned > s.steps[2]]


VARIANTS = [
    Variant("skip-transit", "TransitTable unused: a miss in TRANSIT always takes the new version",
            {"miss_version": _skip_transit}),
    Variant("finish-at-exec", "TransitTable cleared at t_exec: the VIP goes straight from RECORD to NORMAL",
            {"next_phase": _finish_at_exec}),
    Variant("no-seal", "the paper-literal t_finish: TransitTable cleared as soon as known old-version "
            "connections are installed (no SEALED phase)", {"next_phase": _no_seal}),
    Variant("no-learn-wait", "t_exec without the learn-delay wait: older pending connections are not waited for",
            {"may_exec": _no_learn_wait}),
    Variant("exec-ignores-unplaced", "t_exec waits the learn-delay bound but not for connections that arrived "
            "before t_req and are learned but not yet placed (ConnTable bucket full)",
            {"may_exec": _exec_ignores_unplaced}, search_scope="full-table"),
    Variant("fp-pending-at-finish", "t_finish without the learn-delay wait: a Bloom false-positive connection "
            "is still pending (its learn event in flight) at t_finish", {"may_finish": _finish_without_wait},
            _fp_pending_at_finish),
    Variant("sealed-forwards", "SEALED forwards TransitTable hits with the old version instead of dropping them",
            {"drops_sealed": _sealed_forwards}),
]  # fmt: skip
VARIANTS_BY_NAME = {v.name: v for v in VARIANTS}


@dataclass
class Refutation:
    variant: Variant
    outcome: Outcome
    trace: Trace | None
    minimal: Trace | None
    reproduces: bool
    safe_on_shipped: bool


def refute(variant: Variant, shrink: bool = True) -> Refutation:
    """Z3 counterexample under the patch → trace → replay (patched model) → shrink; replay on the shipped one."""
    if variant.search_scope is not None:
        return _refute_by_search(variant, variant.search_scope, shrink)
    with variant.applied():
        s = protocol.schedule()
        assumptions = s.assumptions() + protocol.realizable(s, variant.situation(s))
        outcome = prove(f"unsafe variant {variant.name}", assumptions, s.claim(), s.forwarded(s.later))
        if outcome.status != UNSAFE or outcome.model is None:
            return Refutation(variant, outcome, None, None, False, False)
        trace = protocol.counterexample_trace(s, outcome.model, variant.name, variant.description)
        bad = reproduces(trace)
        minimal = minimize(trace) if bad and shrink else None
    safe = not reproduces(minimal or trace)
    return Refutation(variant, outcome, trace, minimal, bad, safe)


def _refute_by_search(variant: Variant, scope: str, shrink: bool) -> Refutation:
    """The breadth-first search's shortest bad path under the patch is the counterexample."""
    with variant.applied():
        found = explicit.search(explicit.SCOPES[scope])
        trace = found.counterexample
        status = UNSAFE if trace is not None else SAFE
        outcome = Outcome(f"unsafe variant {variant.name}", status, found.seconds,
                          detail=f"{found.states} states searched")  # fmt: skip
        if trace is None:
            return Refutation(variant, outcome, None, None, False, False)
        trace.name, trace.description = variant.name, variant.description
        bad = reproduces(trace)
        minimal = minimize(trace) if bad and shrink else None
    return Refutation(variant, outcome, trace, minimal, bad, not reproduces(minimal or trace))


# ---------------------------------------------------------------- a CPU variant, found by random walks


def _unchecked_move(self: Cpu, conn: Known, stage: int, key: tuple[int, int]) -> bool:
    return True


UNCHECKED_MOVE = ("unchecked-move-delete", "the CPU checks a cuckoo move's insert but not its delete: a lookup "
                  "through the old copy falls through to another version in a later stage")  # fmt: skip
_MOVE_CONFIG = Config(digest_bits=1, stages=3, buckets_per_stage=2, slots_per_bucket=1, learn_delay_bound=0)
_MOVE_POOLS = tuple((Dip(parse_ip("10.0.1.10") + (v << 8), 8080),) for v in range(3))


@contextlib.contextmanager
def unchecked_move() -> Iterator[None]:
    with mock.patch.object(Cpu, "_move_is_safe", _unchecked_move):
        yield


def random_walk(seed: int) -> Trace:
    """Eight connections open one by one into a 3-stage, 2-bucket, 1-slot table, with pool updates between."""
    rng = random.Random(seed)
    conns = [client(n, 1000 + n) for n in range(8)]
    rng.shuffle(conns)
    trace = Trace(_MOVE_CONFIG, {DEMO_VIP: _MOVE_POOLS[0]}, [], UNCHECKED_MOVE[0], UNCHECKED_MOVE[1], "fail")
    t = 0
    started: list[FiveTuple] = []

    def at(event: Callable[[int], ev.Event]) -> None:
        nonlocal t
        t += 1
        trace.events.append(event(t))

    for ft in conns:
        at(lambda t, ft=ft: ev.PacketArrives(t, Packet(ft, SYN)))
        started.append(ft)
        at(ev.CpuLearns)
        if rng.random() < 0.5:
            pool = rng.choice(_MOVE_POOLS)
            at(lambda t, pool=pool: ev.UpdateRequested(t, DEMO_VIP, pool))
            for _ in range(3):
                at(ev.CpuAdvances)
        for other in started:
            at(lambda t, other=other: ev.PacketArrives(t, Packet(other, ACK)))
    return trace


def refute_unchecked_move(seeds: int = 400) -> tuple[int, Trace | None]:
    """The first seeded random walk that breaks PCC under the variant, shrunk (and how many walks it took)."""
    with unchecked_move():
        for seed in range(seeds):
            trace = random_walk(seed)
            if reproduces(trace):
                return seed + 1, minimize(trace)
    return seeds, None
