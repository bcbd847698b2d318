"""The Z3 side of ``model.decisions``: an ``Ops`` over Z3 terms, and how a proof is asked.

Every encoding in ``proofs/`` builds its terms by *calling* the decision
functions of ``model.decisions`` with ``Z3`` instead of ``CONCRETE``, so the
symbolic pipeline is the model's code. ``twin.py`` additionally checks, on the
whole bounded input space, that each Z3 term equals the concrete function.

A proof is ``prove(name, assumptions, claim, antecedent)``: it asserts ``unsat``
of ``assumptions ∧ ¬claim``, and refuses to call a proof a proof when it is
vacuous: the assumptions must be satisfiable together with the claim's
antecedent (the situation the claim speaks about must be reachable).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import z3


def _as_bool(value: Any) -> z3.BoolRef:
    return z3.BoolVal(value) if isinstance(value, bool) else value


class Z3Ops:
    """``model.decisions.Ops`` over Z3 terms (Python bools and ints are lifted)."""

    @staticmethod
    def ite(cond: Any, then: Any, other: Any) -> Any:
        return z3.If(_as_bool(cond), then, other)

    @staticmethod
    def and_(*args: Any) -> z3.BoolRef:
        return z3.And(*(_as_bool(a) for a in args))

    @staticmethod
    def or_(*args: Any) -> z3.BoolRef:
        return z3.Or(*(_as_bool(a) for a in args))

    @staticmethod
    def not_(arg: Any) -> z3.BoolRef:
        return z3.Not(_as_bool(arg))

    @staticmethod
    def eq(a: Any, b: Any) -> z3.BoolRef:
        return _as_bool(a == b)


Z3 = Z3Ops()

SAFE = "proved"
UNSAFE = "counterexample"
VACUOUS = "VACUOUS"


@dataclass
class Outcome:
    """What one solver question answered."""

    name: str
    status: str
    """``proved`` (negation unsat), ``counterexample`` (sat) or ``VACUOUS``."""
    seconds: float
    model: z3.ModelRef | None = None
    detail: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def proved(self) -> bool:
        return self.status == SAFE


def _solver(assumptions: Sequence[z3.BoolRef]) -> z3.Solver:
    solver = z3.Solver()
    solver.set("timeout", 60_000)
    solver.add(*assumptions)
    return solver


def prove(
    name: str, assumptions: Sequence[z3.BoolRef], claim: z3.BoolRef, antecedent: z3.BoolRef | bool = True
) -> Outcome:
    """Prove ``assumptions ⇒ claim``; VACUOUS if the assumptions with ``antecedent`` are unsatisfiable."""
    start = time.perf_counter()
    reach = _solver(assumptions)
    reach.add(_as_bool(antecedent))
    if reach.check() != z3.sat:
        return Outcome(name, VACUOUS, time.perf_counter() - start, detail="assumptions ∧ antecedent are unsat")
    solver = _solver(assumptions)
    solver.add(z3.Not(claim))
    answer = solver.check()
    seconds = time.perf_counter() - start
    if answer == z3.unsat:
        return Outcome(name, SAFE, seconds)
    if answer == z3.sat:
        return Outcome(name, UNSAFE, seconds, solver.model())
    raise RuntimeError(f"{name}: Z3 answered {answer} ({solver.reason_unknown()})")


def find(name: str, assumptions: Sequence[z3.BoolRef]) -> Outcome:
    """A model of ``assumptions`` (used to show a situation, e.g. a false positive, is reachable)."""
    start = time.perf_counter()
    solver = _solver(assumptions)
    answer = solver.check()
    seconds = time.perf_counter() - start
    if answer == z3.sat:
        return Outcome(name, UNSAFE, seconds, solver.model())
    if answer == z3.unsat:
        return Outcome(name, SAFE, seconds)
    raise RuntimeError(f"{name}: Z3 answered {answer} ({solver.reason_unknown()})")


def value(model: z3.ModelRef, term: Any) -> Any:
    """A Python value of ``term`` in ``model`` (ints and bools)."""
    result = model.eval(term, model_completion=True)
    if z3.is_bool(result):
        return z3.is_true(result)
    return result.as_long()
