"""What holds in every reachable state of the abstract system: the lemmas of its k-induction.

Each lemma is a term of a state, over the same ``Domain`` as the actions, so it is
proved inductive in Z3 (``proofs/abstract.py``) and evaluated on α of every
concrete state a refinement check visits (``spec.check``): a lemma that fails on a
concrete run that refines the abstract system is not an invariant of it.

"live" is a connection whose next non-SYN packet, if it came now, would belong to
its current incarnation (the oracle's rule); "excused" one the abstract PCC
property excuses (a residual risk or a fault); "mv" the version a ConnTable miss
of it would use now.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spec import system as sy
from spec.system import EMPTY, NEVER, Domain, Step

Term = Callable[[Domain, Step, Any], Any]


@dataclass(frozen=True)
class Lemma:
    name: str
    holds: Term
    """Of one connection (``per_connection``) or of the whole state (the third argument is None)."""
    witness: Term
    """The situation it speaks about: a run from the initial state must reach it (non-vacuity)."""
    per_connection: bool = True

    def at(self, o: Domain, st: Step) -> Any:
        if not self.per_connection:
            return self.holds(o, st, None)
        return o.and_(*(self.holds(o, st, c) for c in o.conns()))

    def failing(self, o: Domain, st: Step) -> list[Any]:
        """Concretely: the connections it fails for (``[None]`` for a state lemma)."""
        if not self.per_connection:
            return [] if self.holds(o, st, None) else [None]
        return [c for c in o.conns() if not self.holds(o, st, c)]


def live(o: Domain, st: Step, c: Any) -> Any:
    last = st.get("conn", c, "g_last")
    gap = st.get("now") - last
    closed = st.get("conn", c, "g_closed")
    return o.and_(o.not_(o.eq(last, NEVER)), gap <= o.idle_timeout, o.or_(o.not_(closed), gap <= o.teardown_grace))


def excused(o: Domain, st: Step, c: Any) -> Any:
    return o.or_(st.get("conn", c, "g_excused"), o.not_(o.eq(st.get("conn", c, "g_lost"), NEVER)))


def anchored(o: Domain, st: Step, c: Any) -> Any:
    return o.not_(o.eq(st.get("conn", c, "g_anchor"), EMPTY))


def _pcc(o: Domain, st: Step, c: Any) -> Any:
    f = sy.forwarding(o, st, c)
    watched = o.and_(live(o, st, c), anchored(o, st, c), o.not_(excused(o, st, c)))
    return o.or_(o.not_(watched), o.not_(f.forwarded), o.eq(f.dest, st.get("conn", c, "g_anchor")))


LEMMAS: list[Lemma] = [
    Lemma("a live anchored connection's next packet goes to its anchor (or is dropped)", _pcc,
          lambda o, st, c: o.and_(live(o, st, c), anchored(o, st, c))),
]  # fmt: skip
