"""Unbounded PCC of the whole abstract switch (``proofs.bmc``): k-induction with strengthening lemmas.

¬violation alone is not k-inductive for any k: a ``tick`` step changes
nothing but the clock, so from an unreachable state that is one packet away
from a violation, every k-step prefix of ticks stays safe. The lemmas below
describe the reachable states well enough that the conjunction of all of
them and ¬violation is inductive (k = 1): from *any* state satisfying them,
every step of the transition relation leads to a state satisfying them. The
base case is ``init``. Together: no reachable state of the scope, at any
depth, is a violation.

Each lemma is checked as its own query (inductive relative to the others),
so a lemma that breaks is named. None is vacuous: the step from a state
satisfying all lemmas is satisfiable, and each lemma's situation is reached
by a run from ``init`` (bounded model checking finds one).

"mv(c)" below is the version a ConnTable miss of c would use now
(``System.miss_version``: ``model.decisions.miss_version`` of the phase and
c's TransitTable cell). "live" is an incarnation whose last packet is at
most ``idle_timeout`` old (a later packet would start a new one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import z3

from model import decisions as d
from proofs.bmc import BmcScope, State, System

ConnTerm = Callable[[System, State, int], Any]
GlobalTerm = Callable[[System, State], Any]


@dataclass(frozen=True)
class Lemma:
    name: str
    holds: ConnTerm | GlobalTerm
    witness: ConnTerm | GlobalTerm
    """The situation the lemma speaks about; a run from init must reach it (non-vacuity)."""
    per_connection: bool = True

    def term(self, system: System, s: State, fn: Callable[..., Any]) -> Any:
        if not self.per_connection:
            return fn(system, s)
        return z3.And(*(fn(system, s, i) for i in range(system.scope.connections)))

    def at(self, system: System, s: State) -> Any:
        return self.term(system, s, self.holds)

    def reached(self, system: System, s: State) -> Any:
        if not self.per_connection:
            return self.witness(system, s)
        return z3.Or(*(self.witness(system, s, i) for i in range(system.scope.connections)))


def _bit(sys: System, s: State, i: int) -> Any:
    return sys._bit(s, sys.cell[i])


def _pending(s: State, i: int) -> Any:
    c = s.conns[i]
    return z3.And(c["known"], z3.Not(c["placed"]))


def _anchored_live(sys: System, s: State, i: int) -> Any:
    c = s.conns[i]
    return z3.And(c["anchor"] != -1, z3.Not(c["excused"]), s.g["now"] - c["last_pkt"] <= sys.idle_timeout)


def _clock(sys: System, s: State) -> Any:
    g = s.g
    return z3.And(g["requested"] >= 0, g["requested"] <= g["started"], g["started"] <= g["now"],
                  z3.Implies(g["phase"] == d.RECORD, g["started"] == g["requested"]),
                  g["updates_left"] >= 0, g["updates_left"] <= sys.scope.updates,
                  z3.Or(*(g["phase"] == p for p in d.PHASE_NAMES)))  # fmt: skip


def _versions(sys: System, s: State) -> Any:
    g = s.g
    return z3.And(g["new"] == sys.scope.updates - g["updates_left"],
                  z3.If(g["phase"] == d.NORMAL, g["old"] == g["new"], g["new"] == g["old"] + 1))  # fmt: skip


def _timers(sys: System, s: State, i: int) -> Any:
    c, now, bound = s.conns[i], s.g["now"], sys.bound
    return z3.And(c["last_pkt"] <= now, c["ksent"] <= now, c["last_hit"] <= now,
                  z3.Implies(c["anchor"] != -1, c["last_pkt"] >= 0),
                  z3.Implies(c["queued"], z3.And(c["qsent"] <= c["qvis"], c["qvis"] <= c["qsent"] + bound,
                                                 c["qsent"] <= c["last_pkt"])))  # fmt: skip


def _placed(sys: System, s: State, i: int) -> Any:
    c = s.conns[i]
    return z3.Implies(c["placed"], z3.And(c["known"], c["last_pkt"] <= c["last_hit"]))


def _queued_version(sys: System, s: State, i: int) -> Any:
    c = s.conns[i]
    return z3.Implies(c["queued"], c["qver"] == sys.miss_version(s, i))


def _pending_version(sys: System, s: State, i: int) -> Any:
    return z3.Implies(_pending(s, i), s.conns[i]["kver"] == sys.miss_version(s, i))


def _recorded_situation(s: State, i: int) -> Any:
    c, g = s.conns[i], s.g
    after_req = z3.Or(z3.And(c["queued"], c["qsent"] > g["requested"]),
                      z3.And(_pending(s, i), c["ksent"] > g["requested"]))  # fmt: skip
    return z3.And(g["phase"] == d.RECORD, after_req)


def _recorded(sys: System, s: State, i: int) -> Any:
    return z3.Implies(_recorded_situation(s, i), _bit(sys, s, i) == s.g["epoch"])


def _sealed_old_situation(s: State, i: int) -> Any:
    c, g = s.conns[i], s.g
    return z3.And(g["phase"] == d.SEALED, c["queued"], c["qver"] == g["old"])


def _sealed_old(sys: System, s: State, i: int) -> Any:
    return z3.Implies(_sealed_old_situation(s, i), s.conns[i]["qsent"] <= s.g["started"])


def _anchor_kept(sys: System, s: State, i: int) -> Any:
    c = s.conns[i]
    remembered = z3.Or(z3.And(c["queued"], c["qver"] == c["anchor"]), z3.And(c["known"], c["kver"] == c["anchor"]))
    kept = z3.If(c["placed"], c["kver"] == c["anchor"], remembered)
    return z3.Implies(_anchored_live(sys, s, i), kept)


LEMMAS = [
    Lemma("clock: t_req ≤ phase start ≤ now; RECORD starts at t_req", _clock,
          lambda sys, s: s.g["phase"] == d.RECORD, per_connection=False),
    Lemma("VIPTable versions follow the phase (old == new iff NORMAL)", _versions,
          lambda sys, s: s.g["phase"] == d.SEALED, per_connection=False),
    Lemma("queued learn events are timely (sent ≤ visible ≤ sent + bound)", _timers,
          lambda sys, s, i: z3.And(s.conns[i]["queued"], s.conns[i]["qvis"] > s.conns[i]["qsent"])),
    Lemma("a placed connection is known and its entry saw its last packet", _placed,
          lambda sys, s, i: z3.And(s.conns[i]["placed"], s.conns[i]["last_pkt"] >= 0)),
    Lemma("a queued learn event carries mv(c)", _queued_version,
          lambda sys, s, i: z3.And(s.conns[i]["queued"], s.g["phase"] == d.TRANSIT)),
    Lemma("a pending connection's recorded version is mv(c)", _pending_version,
          lambda sys, s, i: z3.And(_pending(s, i), s.g["phase"] == d.TRANSIT)),
    Lemma("in RECORD, a connection learned after t_req has its TransitTable cell set", _recorded,
          lambda sys, s, i: _recorded_situation(s, i)),
    Lemma("in SEALED, a queued old-version learn event was sent before t_seal", _sealed_old,
          lambda sys, s, i: _sealed_old_situation(s, i)),
    Lemma("a live anchored connection resolves to its anchor (entry, or queued / pending version)", _anchor_kept,
          lambda sys, s, i: z3.And(_anchored_live(sys, s, i), z3.Not(s.conns[i]["placed"]), s.g["phase"] != d.NORMAL)),
]  # fmt: skip


@dataclass
class LemmaCheck:
    name: str
    inductive: bool
    reached_at: int | None
    """Depth at which a run from init reaches the lemma's situation (None: not within the depth)."""
    seconds: float

    @property
    def ok(self) -> bool:
        return self.inductive and self.reached_at is not None


@dataclass
class InductionResult:
    scope: BmcScope
    base: bool
    satisfiable: bool
    """Some state satisfying every lemma and ¬violation takes a step (the induction hypothesis is not empty)."""
    lemmas: list[LemmaCheck]
    property_inductive: bool
    property_seconds: float
    seconds: float

    @property
    def proved(self) -> bool:
        return self.base and self.satisfiable and self.property_inductive and all(c.ok for c in self.lemmas)

    def broken(self) -> list[str]:
        return [c.name for c in self.lemmas if not c.ok]


def prove_inductive(scope: BmcScope, lemmas: list[Lemma] = LEMMAS, witness_depth: int = 8) -> InductionResult:
    """Base case, then each lemma and ¬violation after one step from any state satisfying all of them."""
    start = time.perf_counter()
    system = System(scope)
    pre, post = State.fresh(0, scope), State.fresh(1, scope)
    everything = [lemma.at(system, pre) for lemma in lemmas]

    base_solver = z3.Solver()
    base_solver.add(*system.constants(), system.init(pre), z3.Not(z3.And(*everything)))
    base = base_solver.check() == z3.unsat

    solver = z3.Solver()
    solver.add(*system.constants(), *everything, z3.Not(pre.bad), system.step(pre, post, system.choice(0)))
    satisfiable = solver.check() == z3.sat
    reached = _witness_depths(system, lemmas, witness_depth)
    checks = []
    for lemma in lemmas:
        t0 = time.perf_counter()
        solver.push()
        solver.add(z3.Not(lemma.at(system, post)))
        inductive = solver.check() == z3.unsat
        solver.pop()
        checks.append(LemmaCheck(lemma.name, inductive, reached[lemma.name], time.perf_counter() - t0))
    t0 = time.perf_counter()
    solver.push()
    solver.add(post.bad)
    property_inductive = solver.check() == z3.unsat
    solver.pop()
    property_seconds = time.perf_counter() - t0
    return InductionResult(scope, base, satisfiable, checks, property_inductive, property_seconds,
                           time.perf_counter() - start)  # fmt: skip


def _witness_depths(system: System, lemmas: list[Lemma], max_depth: int) -> dict[str, int | None]:
    """Unroll from init; for each lemma the first depth at which its situation is reachable."""
    scope = system.scope
    solver = z3.Solver()
    states = [State.fresh(0, scope)]
    solver.add(*system.constants(), system.init(states[0]))
    found: dict[str, int | None] = {lemma.name: None for lemma in lemmas}
    for k in range(max_depth + 1):
        if k:
            states.append(State.fresh(k, scope))
            solver.add(system.step(states[-2], states[-1], system.choice(k - 1)))
        for lemma in lemmas:
            if found[lemma.name] is not None:
                continue
            solver.push()
            solver.add(lemma.reached(system, states[-1]))
            if solver.check() == z3.sat:
                found[lemma.name] = k
            solver.pop()
        if all(v is not None for v in found.values()):
            break
    return found
