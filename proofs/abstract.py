"""PCC of the abstract system (``spec.system``) that the model is checked to refine.

Three pieces of evidence, reported together by ``silkcheck prove``:

* **k-induction with lemmas** (k = 1) over one ``spec.symbolic.Scope``: the base case (``init``
  satisfies every lemma of ``spec.lemmas``), then, from *any* state satisfying all of them and
  ¬bad, one step of the transition relation: each lemma is checked as its own query (inductive
  relative to the others, so a broken one is named), and ¬bad afterwards. When every lemma is
  inductive, PCC holds at every depth of the scope. The lemmas are evaluated on α of every
  state of concrete runs too (``spec.check``), so a lemma that is false there is known to be false,
  not only weak.
* **bounded model checking** of the same transition relation from ``init``: no state with ``bad``
  within a depth, and the situations PCC speaks of (an update under way, a connection anchored)
  are reachable in it (the bound is not vacuous; TRANSIT takes 6 steps: request, two writes,
  the learn-delay wait, t_exec and its write).
* **refinement**: random fuzz walks of the model with every step checked against the abstract
  system (``spec.check.Refinement``, the walk's ``refine`` invariant): the steps checked and the
  failures, so "proved" reads "proved for a system the model was checked to refine on N steps".

What the scope leaves out is said by ``spec.symbolic`` (and ``SCOPE.name``); a scope without
faults has no lost learn event, so ``g_lost`` stays unset (the one scope fact added to the lemmas).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import z3

from fuzz.invariants import REFINEMENT
from fuzz.walk import walk
from model import decisions as d
from spec import lemmas as lm
from spec.symbolic import Scope, System
from spec.system import EMPTY, NEVER, Step

SCOPE = Scope("2 conns, 1 VIP, 2 stages of 2 keys, 4 versions, 2 learn events, 3 writes, no faults",
              connections=2, queue=2, pending=3, places=1, faults=False)  # fmt: skip
"""The scope of the proofs: small enough that each query takes seconds."""


@dataclass
class LemmaResult:
    name: str
    inductive: bool
    seconds: float


@dataclass
class Induction:
    scope: Scope
    base: bool
    satisfiable: bool
    """Some state satisfying every lemma and ¬bad takes a step (the hypothesis is not empty)."""
    lemmas: list[LemmaResult]
    pcc_step: bool
    """¬bad after one step from any state satisfying every lemma and ¬bad."""
    seconds: float

    @property
    def proved(self) -> bool:
        return self.base and self.satisfiable and self.pcc_step and all(r.inductive for r in self.lemmas)

    def broken(self) -> list[str]:
        return [r.name for r in self.lemmas if not r.inductive]


def _scope_facts(system: System, s: dict[tuple[Any, ...], Any]) -> list[Any]:
    if system.scope.faults:
        return []
    return [s["conn", c, "g_lost"] == NEVER for c in range(system.scope.connections)]


def induction(scope: Scope = SCOPE, lemmas: Sequence[lm.Lemma] = lm.LEMMAS,
              targets: Sequence[str] | None = None) -> Induction:  # fmt: skip
    """Base case, then each lemma and ¬bad after one step from any state satisfying all of them
    (``targets``: only the lemmas of these names are checked after the step)."""
    start = time.perf_counter()
    system = System(scope)
    o = system.o
    s0 = system.fresh("init")
    base_solver = z3.Solver()
    base_solver.add(*o.constants(), system.init(s0), z3.Not(z3.And(*(lem.at(o, Step(s0)) for lem in lemmas))))
    base = base_solver.check() == z3.unsat

    pre, post = system.fresh("pre"), system.fresh("post")
    solver = z3.Solver()
    solver.add(*o.constants(), *(lem.at(o, Step(pre)) for lem in lemmas), *_scope_facts(system, pre),
               z3.Not(pre["bad",]), system.step(pre, post, "step"))  # fmt: skip
    satisfiable = solver.check() == z3.sat
    results = []
    for lem in lemmas:
        if targets is not None and lem.name not in targets:
            continue
        t0 = time.perf_counter()
        solver.push()
        solver.add(z3.Not(lem.at(o, Step(post))))
        results.append(LemmaResult(lem.name, solver.check() == z3.unsat, time.perf_counter() - t0))
        solver.pop()
    solver.push()
    solver.add(post["bad",])
    pcc_step = solver.check() == z3.unsat
    solver.pop()
    return Induction(scope, base, satisfiable, results, pcc_step, time.perf_counter() - start)


@dataclass
class Bounded:
    depth: int
    safe: bool
    reachable: dict[str, bool]
    seconds: float


REACH: dict[str, Callable[[dict[tuple[Any, ...], Any]], Any]] = {
    "an update recording": lambda s: s["vip", 0, "phase"] == d.RECORD,
    "a connection anchored": lambda s: s["conn", 0, "g_anchor"] != EMPTY,
}
"""Situations a bounded run must reach for its "no violation" to mean something."""


def bmc(scope: Scope = SCOPE, depth: int = 6) -> Bounded:
    """No state with ``bad`` within ``depth`` steps of ``init``; each ``REACH`` situation reached."""
    start = time.perf_counter()
    system = System(scope)
    solver = z3.Solver()
    states = [system.fresh("0")]
    solver.add(*system.o.constants(), system.init(states[0]))
    reached = dict.fromkeys(REACH, False)
    safe = True
    for k in range(1, depth + 1):
        states.append(system.fresh(str(k)))
        solver.add(system.step(states[-2], states[-1], str(k - 1)))
        solver.push()
        solver.add(states[-1]["bad",])
        if solver.check() == z3.sat:
            safe = False
            solver.pop()
            return Bounded(k, safe, reached, time.perf_counter() - start)
        solver.pop()
        for name, situation in REACH.items():
            if not reached[name]:
                solver.push()
                solver.add(situation(states[-1]))
                reached[name] = solver.check() == z3.sat
                solver.pop()
    return Bounded(depth, safe, reached, time.perf_counter() - start)


@dataclass
class Refined:
    walks: int
    steps: int
    failures: list[str]
    seconds: float


def refinement_evidence(walks: int) -> Refined:
    """Fuzz walks of the model with every step checked against the abstract system."""
    start = time.perf_counter()
    steps, failures = 0, []
    for seed in range(walks):
        out = walk(seed)
        steps += out.steps
        if out.failure is not None and out.failure.category == REFINEMENT:
            failures.append(f"walk {seed}: {out.failure.message}")
    return Refined(walks, steps, failures, time.perf_counter() - start)


@contextmanager
def guard_dropped(prefix: str) -> Iterator[None]:
    """The abstract system without the guard conjuncts whose name starts with ``prefix`` (a
    non-vacuity check: the proofs must notice a weaker system)."""
    require = Step.require

    def keep(self: Step, name: str, cond: Any) -> None:
        if not name.startswith(prefix):
            require(self, name, cond)

    Step.require = keep  # type: ignore[method-assign]
    try:
        yield
    finally:
        Step.require = require  # type: ignore[method-assign]
