"""The symbolic twin cannot drift: every decision's Z3 term equals the concrete function.

Every function of ``model.decisions`` that takes an ``Ops`` is found by
introspection (a new decision is checked without anyone listing it). For each,
Z3 proves that the term built by calling it with ``Z3`` equals, on the whole
bounded input space, the value ``CONCRETE`` computes: the concrete outputs
form a lookup table and ``term != table`` is ``unsat`` under the domain bounds.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from typing import Any

import z3

from model import decisions as d
from proofs.symbolic import Z3, Outcome, prove

BOOL = (False, True)
PHASES = (*d.PHASE_NAMES, 4)  # 4: a value outside the protocol, which next_phase must keep
VERSIONS = (-1, 0, 1, 2, 3)  # -1 is the CPU's MISS; 2 version bits suffice for every comparison
EPOCHS = (0, 1, 2, 3)
MAX_CELLS = 3
TIMES = (-1, 0, 1, 2)  # -1 is NEVER; only their order matters

_BOOL_PARAMS = {
    "hit", "transit_hit", "is_syn", "is_bare_ack", "cookie_ok", "waited_bound", "uninstalled_before_req",
    "uninstalled_old", "exec_ok", "seal_ok", "finish_ok", "is_owner", "deleting", "placed", "in_vip_entry",
    "referenced", "is_end", "gone",
}  # fmt: skip
_INT_PARAMS = {
    "phase": PHASES,
    "old_version": VERSIONS,
    "new_version": VERSIONS,
    "hit_version": VERSIONS,
    "own_version": VERSIONS,
    "before": VERSIONS,
    "after": VERSIONS,
    "epoch": EPOCHS,
    "version": VERSIONS,
    "known_version": VERSIONS,
    "sent": TIMES,
    "known_sent": TIMES,
}


class UnknownDomain(LookupError):
    """A decision parameter whose bounded domain nobody declared."""


def decisions() -> dict[str, Callable[..., Any]]:
    """Every decision: a public function of ``model.decisions`` whose first parameter is the ``Ops``."""
    found = {}
    for name, fn in vars(d).items():
        if inspect.isfunction(fn) and not name.startswith("_"):
            params = list(inspect.signature(fn).parameters)
            if params and params[0] == "o":
                found[name] = fn
    return found


def _domain(decision: str, param: str) -> tuple[Any, ...]:
    if param in _BOOL_PARAMS:
        return BOOL
    if param in _INT_PARAMS:
        return _INT_PARAMS[param]
    raise UnknownDomain(f"decision {decision}: parameter {param!r} has no declared domain in proofs/twin.py")


def _symbol(name: str, domain: tuple[Any, ...]) -> Any:
    return z3.Bool(name) if domain is BOOL else z3.Int(name)


def _in(symbol: Any, domain: tuple[Any, ...]) -> z3.BoolRef:
    return z3.BoolVal(True) if domain is BOOL else z3.Or(*(symbol == v for v in domain))


def check_twin(name: str, fn: Callable[..., Any]) -> list[Outcome]:
    """Prove Z3(fn) == CONCRETE(fn) on the bounded domain (one outcome per list length, if any)."""
    params = list(inspect.signature(fn).parameters)[1:]
    shapes: list[list[tuple[str, tuple[Any, ...]]]] = []
    if "cells" in params:
        for k in range(1, MAX_CELLS + 1):
            shapes.append([(f"cells{j}", EPOCHS) for j in range(k)] + [(p, _domain(name, p)) for p in params[1:]])
    else:
        shapes.append([(p, _domain(name, p)) for p in params])
    outcomes = []
    for shape in shapes:
        symbols = [_symbol(f"{name}.{p}", dom) for p, dom in shape]
        cell_count = sum(1 for p, _ in shape if p.startswith("cells"))

        def call(o: Any, args: list[Any], cell_count: int = cell_count) -> Any:
            if cell_count:
                return fn(o, list(args[:cell_count]), *args[cell_count:])
            return fn(o, *args)

        term = call(Z3, symbols)
        table = []
        for point in itertools.product(*(dom for _, dom in shape)):
            concrete = call(d.CONCRETE, list(point))
            if isinstance(concrete, bool):
                concrete = z3.BoolVal(concrete)
            match = z3.And(*(s == v for s, v in zip(symbols, point, strict=True)))
            table.append(z3.Implies(match, term == concrete))
        domain = [_in(s, dom) for s, (_, dom) in zip(symbols, shape, strict=True)]
        label = f"twin {name}" + (f" (k={cell_count})" if cell_count else "")
        outcomes.append(prove(label, domain, z3.And(*table)))
    return outcomes


def check_all_twins() -> list[Outcome]:
    return [o for name, fn in decisions().items() for o in check_twin(name, fn)]
