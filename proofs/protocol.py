"""Unbounded proof of PCC across one two-phase update, for any connection ``c``.

Time is a symbolic integer; the learn-delay bound ``B`` is any non-negative
integer; every other connection is abstracted into one free Boolean per CPU
guard ("some other connection is still pending"), so the proof holds for any
number of them. The update is up to three phase-changing CPU steps
``T1 < T2 < T3`` after ``t_req``; the phase after each is *computed* by
``model.decisions.next_phase`` from the guards ``may_exec`` / ``may_seal`` /
``may_finish``, and every packet of ``c`` is decided by ``packet_version`` /
``drops_sealed`` / ``records_transit``, all called with the Z3 ``Ops``. Patch a
decision and this encoding changes with it.

Abstractions and their soundness assumptions (each next to its use below):

* ConnTable: ``c``'s lookup hits only its own entry, from the instant ``I``
  the CPU writes it. Entries of other connections that alias ``c`` are the
  digest residual risk (the oracle's ``digest-alias``); the cuckoo proof shows
  the CPU's own writes never change a known lookup.
* TransitTable: ``transit_hit = recorded ∨ fp`` with ``fp`` one free Boolean.
  Sound because the filter has no false negatives within an epoch (proved in
  ``tables.py``) and cells are written only in RECORD (``records_transit``),
  so after T1 the filter, hence ``fp``, is constant.
* Learning queue: the CPU learns ``c`` at some ``L ≥ a`` from any of its
  learn events; the anchor's event is visible at ``V ≤ a + B`` and every CPU
  step at ``T ≥ V`` has read it (``advance`` drains visible events). The entry
  gets the anchor's version: take the first packet that breaks the claim;
  every earlier packet, hence every learn event the CPU can have read, used
  the anchor's version (the minimal-counterexample argument).
* Events are totally ordered: CPU steps and ``c``'s packets are at distinct
  instants (ties in a trace are broken by position).
* Faults (lost events, CPU restarts) are outside this proof: the oracle
  classifies them as ``fault``; BMC and the explicit search include them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import z3

from model import decisions as d
from model import events as ev
from model.config import Config
from model.hashing import HashPlan
from model.types import ACK, SYN, FiveTuple, Packet
from proofs.replay import queue_after
from proofs.symbolic import Z3, Outcome, prove, value
from silkcheck.examples import DEMO_VIP, DIP1, DIP2, client
from silkcheck.trace import Trace

STEPS = 3
SCALE = 10
"""Z3 instants are multiplied by this in a trace, leaving room for helper packets."""


@dataclass
class Schedule:
    """The symbols of one update and one connection ``c``."""

    t_req: Any
    steps: list[Any]
    bound: Any
    anchor: Any
    later: Any
    record: Any
    has_record: Any
    visible: Any
    learned: Any
    placed: Any
    fp: Any
    old: Any
    new: Any
    others_before_req: list[Any]
    others_old: list[Any]
    v0: Any
    """The anchor's version (constrained to what ``packet_version`` gives it)."""

    @classmethod
    def fresh(cls) -> Schedule:
        ints = z3.Ints("t_req B a p r V L I old new")
        return cls(
            t_req=ints[0], steps=[z3.Int(f"T{k + 1}") for k in range(STEPS)], bound=ints[1],
            anchor=ints[2], later=ints[3], record=ints[4], has_record=z3.Bool("has_r"),
            visible=ints[5], learned=ints[6], placed=ints[7], fp=z3.Bool("fp"), old=ints[8], new=ints[9],
            others_before_req=[z3.Bool(f"other_before_req@T{k + 1}") for k in range(STEPS)],
            others_old=[z3.Bool(f"other_old@T{k + 1}") for k in range(STEPS)], v0=z3.Int("v0"),
        )  # fmt: skip

    # ------------------------------------------------------------ the update, step by step

    def pending(self, t: Any) -> Any:
        """``c`` is known to the CPU at ``t`` but its entry is not written yet."""
        return z3.And(self.learned <= t, self.placed > t)

    def phases(self) -> list[Any]:
        """Phase after each CPU step, from ``next_phase`` and the guards the CPU evaluates."""
        phases = [d.RECORD]
        started = self.t_req
        for k, t in enumerate(self.steps):
            waited = t >= started + self.bound
            before_req = z3.Or(z3.And(self.pending(t), self.anchor < self.t_req), self.others_before_req[k])
            old_pending = z3.Or(z3.And(self.pending(t), self.v0 == self.old), self.others_old[k])
            phase = d.next_phase(
                Z3, phases[-1], d.may_exec(Z3, waited, before_req), d.may_seal(Z3, old_pending),
                d.may_finish(Z3, waited, old_pending),
            )  # fmt: skip
            phases.append(phase)
            started = t
        return phases[1:]

    def phase_at(self, t: Any) -> Any:
        term = self._phases[-1]
        for k in reversed(range(STEPS)):
            term = z3.If(t < self.steps[k], self._phases[k - 1] if k else d.RECORD, term)
        return z3.If(t < self.t_req, d.NORMAL, term)

    def vip_versions(self, t: Any) -> tuple[Any, Any]:
        """VIPTable (old, new) at ``t``: old == new before t_req and once back in NORMAL."""
        finished = z3.And(t >= self.t_req, self.phase_at(t) == d.NORMAL)
        return z3.If(finished, self.new, self.old), z3.If(t < self.t_req, self.old, self.new)

    # ------------------------------------------------------------ c's packets

    def hit(self, t: Any) -> Any:
        return t >= self.placed

    def recorded_before(self, t: Any) -> Any:
        anchor = z3.And(self.anchor < t, d.records_transit(Z3, self.hit(self.anchor), self.phase_at(self.anchor)))
        record = z3.And(
            self.has_record, self.record < t, d.records_transit(Z3, self.hit(self.record), self.phase_at(self.record))
        )
        return z3.Or(anchor, record)

    def transit_hit(self, t: Any) -> Any:
        consults = z3.And(z3.Not(self.hit(t)), d.consults_transit(Z3, self.phase_at(t)))
        return z3.And(consults, z3.Or(self.recorded_before(t), self.fp))

    def forwarded(self, t: Any) -> Any:
        return z3.Not(d.drops_sealed(Z3, self.hit(t), self.phase_at(t), self.transit_hit(t)))

    def version(self, t: Any, hit_version: Any) -> Any:
        old, new = self.vip_versions(t)
        return d.packet_version(Z3, self.hit(t), hit_version, self.phase_at(t), self.transit_hit(t), old, new)

    def build(self) -> None:
        self._phases: list[Any] = self.phases()

    # ------------------------------------------------------------ the proof

    def assumptions(self) -> list[Any]:
        cpu_steps = [self.t_req, *self.steps]
        packets = [self.anchor, self.later, self.record]
        instants = [*cpu_steps, self.placed]
        changes = [
            z3.Or(self._phases[k] != (self._phases[k - 1] if k else d.RECORD),
                  (self._phases[k - 1] if k else d.RECORD) == d.NORMAL)
            for k in range(STEPS)
        ]  # fmt: skip
        return [
            self.t_req >= 0,
            *(a < b for a, b in itertools.pairwise(cpu_steps)),
            *changes,  # each step changes the phase, until the update is over
            self.bound >= 0,
            self.old != self.new,  # a fresh version (reclamation proof)
            self.anchor < self.later,
            z3.Implies(self.has_record, z3.And(self.anchor < self.record, self.record < self.later)),
            *(p != i for p in packets for i in instants),  # total order of events
            self.anchor <= self.visible, self.visible <= self.anchor + self.bound,  # the learn-delay bound
            self.anchor <= self.learned, self.learned <= self.placed,  # learned from any of c's events
            *(z3.Implies(self.visible <= t, self.learned <= t) for t in self.steps),  # advance drains
            self.forwarded(self.anchor),
            self.v0 == self.version(self.anchor, self.v0),  # c's entry, if any, is written after the anchor
        ]

    def claim(self) -> Any:
        """Every later forwarded packet of ``c`` uses the anchor's version."""
        later = self.later
        return z3.Implies(self.forwarded(later), self.version(later, self.v0) == self.v0)

    def cases(self) -> dict[str, Any]:
        """Situations the claim must be shown to cover (each must be reachable, or the proof is vacuous)."""
        a = self.anchor
        anchor_in = {f"anchor in {name}": self.phase_at(a) == ph for ph, name in d.PHASE_NAMES.items()}
        anchor_in["anchor in normal"] = a < self.t_req
        anchor_in["anchor after t_finish"] = z3.And(a > self.t_req, self.phase_at(a) == d.NORMAL)
        pending = {f"c pending at T{k + 1}": self.pending(t) for k, t in enumerate(self.steps)}
        unknown = {f"c's learn event in flight at T{k + 1}": self.learned > t for k, t in enumerate(self.steps)}
        bloom = {"Bloom false positive used": z3.And(self.fp, z3.Not(self.recorded_before(a)),
                                                     self.transit_hit(self.later))}  # fmt: skip
        base = z3.And(self.forwarded(self.later))
        return {name: z3.And(base, cond) for name, cond in {**anchor_in, **pending, **unknown, **bloom}.items()}


def schedule() -> Schedule:
    s = Schedule.fresh()
    s.build()
    return s


def prove_update_pcc() -> Outcome:
    s = schedule()
    return prove_cases("PCC across the two-phase update", s, s.assumptions())


def prove_cases(name: str, s: Schedule, assumptions: list[Any]) -> Outcome:
    """Check every case is reachable, then prove the claim."""
    for case, condition in s.cases().items():
        outcome = prove(f"{name}: {case}", assumptions, z3.BoolVal(True), condition)
        if outcome.status != "proved":
            return Outcome(name, outcome.status, outcome.seconds, detail=f"unreachable case: {case}")
    return prove(name, assumptions, s.claim(), s.forwarded(s.later))


# ---------------------------------------------------------------- counterexamples as traces


def realizable(s: Schedule, extra: list[Any] | None = None) -> list[Any]:
    """Constraints that make a Z3 model a trace of the concrete model.

    The concrete CPU places a connection when it reads its learn event, and
    there are no other connections besides a Bloom helper.
    """
    limits = [s.t_req, *s.steps, s.anchor, s.later, s.record, s.visible, s.learned, s.bound]
    return [
        s.placed == s.learned,
        *(z3.Not(o) for o in s.others_before_req + s.others_old),
        *(z3.And(x >= 1, x <= 200) for x in limits),
        *(s.learned != t for t in [s.t_req, *s.steps]),
        *(extra or []),
    ]


def counterexample_trace(s: Schedule, model: z3.ModelRef, name: str, description: str) -> Trace:
    """Turn a Z3 model of a PCC violation into a trace: VIP pool {DIP1} (version 0) → {DIP2}."""
    v = {k: value(model, getattr(s, k)) for k in ("t_req", "anchor", "later", "record", "visible", "learned")}
    steps = [value(model, t) for t in s.steps]
    bound = value(model, s.bound)
    config = Config(learn_delay_bound=bound * SCALE, bloom_bits=4, bloom_hashes=1)
    plan = HashPlan(config)
    conn = client(1)
    timed: list[tuple[int, int, ev.Event]] = [
        (v["t_req"] * SCALE, 0, ev.UpdateRequested(v["t_req"] * SCALE, DEMO_VIP, (DIP2,))),
        (v["anchor"] * SCALE, 0, ev.PacketArrives(v["anchor"] * SCALE, Packet(conn, SYN))),
        (v["later"] * SCALE, 0, ev.PacketArrives(v["later"] * SCALE, Packet(conn, ACK))),
        (v["learned"] * SCALE, 0, ev.CpuLearns(v["learned"] * SCALE)),
        *((t * SCALE, 0, ev.CpuAdvances(t * SCALE)) for t in steps),
    ]
    if value(model, s.has_record):
        timed.append((v["record"] * SCALE, 0, ev.PacketArrives(v["record"] * SCALE, Packet(conn, ACK))))
    if value(model, s.fp):
        # A connection recorded in RECORD whose Bloom cell is c's: c is a false positive.
        helper = _bloom_twin(plan, conn)
        timed.append((v["t_req"] * SCALE, 1, ev.PacketArrives(v["t_req"] * SCALE, Packet(helper, SYN))))
    timed.sort(key=lambda x: (x[0], x[1]))
    trace = Trace(config, {DEMO_VIP: (DIP1,)}, [e for _, _, e in timed], name, description, "fail")
    _delay_learns(trace, conn, v["visible"] * SCALE)
    return trace


def _delay_learns(trace: Trace, conn: FiveTuple, visible: int) -> None:
    """Every learn event of ``conn`` sent before ``visible`` becomes visible then (a delay fault each)."""
    i = 0
    while i < len(trace.events):
        e = trace.events[i]
        if isinstance(e, ev.PacketArrives) and e.packet.ft == conn and e.t < visible:
            queue = queue_after(trace, i + 1)
            if queue and queue[-1].ft == conn and queue[-1].sent == e.t:
                trace.events.insert(i + 1, ev.LearnDelayed(e.t, len(queue) - 1, visible - e.t))
                i += 1
        i += 1


def _bloom_twin(plan: HashPlan, conn: FiveTuple) -> FiveTuple:
    cells = set(plan.flow(conn).bloom)
    return next(ft for n in range(2, 10_000) if set(plan.flow(ft := client(n, 41000)).bloom) == cells and ft != conn)
