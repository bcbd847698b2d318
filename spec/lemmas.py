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


# ---------------------------------------------------------------- what every field can be


def _in(o: Domain, x: Any, low: Any, high: Any) -> Any:
    """low <= x < high"""
    return o.and_(x >= low, x < high)


def _time(o: Domain, st: Step, t: Any) -> Any:
    """An instant that has been, or none."""
    return o.or_(o.eq(t, NEVER), _in(o, t, 0, st.get("now") + 1))


def _version(o: Domain, x: Any) -> Any:
    return _in(o, x, 0, o.versions)


def _vip_fields(o: Domain, st: Step, _: Any) -> Any:
    facts = [st.get("now") >= 0, _in(o, st.get("epoch"), 0, o.epochs)]
    for v in o.vips():
        g = lambda f, v=v: st.get("vip", v, f)  # noqa: E731
        facts += [_in(o, g("phase"), 0, 4), _in(o, g("cphase"), 0, 4), _version(o, g("old")), _version(o, g("new")),
                  _version(o, g("cold")), _version(o, g("cnew")), _in(o, g("epoch"), 0, o.epochs),
                  _in(o, g("cepoch"), 0, o.epochs), _in(o, g("slot"), 0, o.transit_slots),
                  _in(o, g("cslot"), 0, o.transit_slots), g("requests") >= 0, o.eq(g("present"), True)]  # fmt: skip
    return o.and_(*facts)


def _update_record(o: Domain, st: Step, _: Any) -> Any:
    """The CPU's update of a VIP is its VIPTable entry (as the CPU wrote it) while it runs."""
    facts = []
    for v in o.vips():
        g = lambda f, v=v: st.get("vip", v, f)  # noqa: E731
        running = g("up")
        same = o.and_(*(o.eq(g(f"c{x}"), g(f"u{x}")) for x in ("phase", "old", "new", "epoch", "slot")))
        idle = o.and_(*(o.eq(g(f), value) for f, value in zip(sy.UPDATE_FIELDS, sy.UPDATE_IDLE, strict=True)))
        facts += [o.eq(running, o.not_(o.eq(g("cphase"), 0))), o.ite(running, same, idle),
                  o.eq(o.eq(g("cphase"), 0), o.eq(g("cold"), g("cnew"))),
                  o.eq(o.eq(g("phase"), 0), o.eq(g("old"), g("new"))),
                  o.or_(o.not_(running),
                        o.and_(_time(o, st, g("requested")), g("requested") <= g("started"),
                               _time(o, st, g("started")), _in(o, g("uepoch"), 1, o.epochs)))]  # fmt: skip
    return o.and_(*facts)


def _tables(o: Domain, st: Step, _: Any) -> Any:
    """ConnTable cells: an entry has a version, a VIP and a timer, or none of them; pools are
    pool identities or none; Bloom cells hold epochs."""
    facts = []
    for s in range(o.stages):
        for k in o.keys_of(s):
            entry, evip, timer = (st.get(t, s, k) for t in ("entry", "evip", "timer"))
            empty = o.eq(entry, EMPTY)
            facts += [o.or_(empty, _version(o, entry)), o.eq(empty, o.eq(evip, EMPTY)), o.eq(empty, o.eq(timer, NEVER)),
                      o.or_(empty, o.or_(*(o.eq(evip, v) for v in o.vips()))), _time(o, st, timer)]  # fmt: skip
    for v in o.vips():
        for version in range(o.versions):
            facts += [o.is_pool(st.get(t, v, version)) for t in ("pool", "cpool")]
    for slot, i in o.cell_indices():
        facts.append(_in(o, st.get("cell", slot, i), 0, o.epochs))
    return o.and_(*facts)


def _queues(o: Domain, st: Step, _: Any) -> Any:
    """The learn and write queues hold what the actions put there, oldest first."""
    facts = []
    now = st.get("now")
    for e, there in o.queue(st):
        facts.append(o.or_(o.not_(there), o.and_(_in(o, e.kind, 0, 5), o.or_(*(o.eq(e.conn, c) for c in o.conns())),
                                                  _version(o, e.version), _in(o, e.sent, 0, now + 1),
                                                  e.sent <= e.visible, e.visible <= e.sent + o.bound)))  # fmt: skip
    for w, there in o.pending(st):
        facts.append(o.or_(o.not_(there), o.and_(_in(o, w.kind, 0, 7), _in(o, w.decided, 0, now + 1))))
    return o.and_(*facts, *o.ordered(st))


def _conn_fields(o: Domain, st: Step, c: Any) -> Any:
    g = lambda f: st.get("conn", c, f)  # noqa: E731
    known = g("known")
    learned = o.and_(_version(o, g("kver")), _in(o, g("ksent"), 0, st.get("now") + 1),
                     _time(o, st, g("opened")), _time(o, st, g("ended")),
                     o.or_(o.eq(g("stage"), EMPTY), _in(o, g("stage"), 0, o.stages)))  # fmt: skip
    forgotten = o.and_(*(o.eq(g(f), value) for f, value in sy.FORGOTTEN.items()))
    start, last = g("g_start"), g("g_last")
    ghost = o.and_(_time(o, st, start), _time(o, st, last), o.eq(o.eq(start, NEVER), o.eq(last, NEVER)), start <= last,
                   _time(o, st, g("expired")), _time(o, st, g("g_lost")),
                   o.or_(o.eq(g("g_anchor"), EMPTY), o.not_(o.eq(last, NEVER))))  # fmt: skip
    return o.and_(o.ite(known, learned, forgotten), ghost)


LEMMAS += [
    Lemma("the clock and VIPTable's fields are in range", _vip_fields, lambda o, st, _: st.get("now") > 0,
          per_connection=False),
    Lemma("the CPU's update of a VIP is its VIPTable entry while it runs; old == new iff normal", _update_record,
          lambda o, st, _: o.or_(*(st.get("vip", v, "up") for v in o.vips())), per_connection=False),
    Lemma("ConnTable, DIPPoolTable and TransitTable cells hold what writes put there", _tables,
          lambda o, st, _: o.or_(*(o.not_(o.eq(st.get("entry", s, k), EMPTY)) for s in range(o.stages)
                                   for k in o.keys_of(s))), per_connection=False),
    Lemma("the learn and write queues hold events and writes in order, timely", _queues,
          lambda o, st, _: o.or_(*(there for _, there in o.queue(st))), per_connection=False),
    Lemma("what the CPU knows of a connection is in range, and nothing once it forgot it", _conn_fields,
          lambda o, st, c: st.get("conn", c, "known")),
]  # fmt: skip


# ---------------------------------------------------------------- the CPU's writes and its shadow


def _write_fields(o: Domain, st: Step, _: Any) -> Any:
    """A pending write is one the decisions make: a ConnTable write at its owner's key, of its VIP."""
    facts = []
    for w, there in o.pending(st):
        conn = o.or_(*(o.eq(w.kind, k) for k in (sy.W_INSERT, sy.W_MOVE_DELETE, sy.W_FORGET_DELETE)))
        owner = o.or_(*(o.and_(o.same(w.owner, c), o.eq(w.vip, o.vip_of(c)), o.eq(w.key, sy.key_at(o, c, w.stage)))
                        for c in o.conns()))  # fmt: skip
        conn_ok = o.and_(owner, _in(o, w.stage, 0, o.stages), _version(o, w.version))
        vip = o.or_(*(o.eq(w.vip, v) for v in o.vips()))
        pool_ok = o.and_(
            vip, _version(o, w.version), o.or_(o.eq(w.kind, sy.W_POOL_DELETE), o.not_(o.eq(w.pool, EMPTY)))
        )
        phase, old, new, epoch, slot = w.entry
        vip_ok = o.and_(vip, _in(o, phase, 0, 4), _version(o, old), _version(o, new), _in(o, epoch, 0, o.epochs),
                        _in(o, slot, 0, o.transit_slots), o.eq(o.eq(phase, 0), o.eq(old, new)))  # fmt: skip
        pool_kind = o.or_(o.eq(w.kind, sy.W_POOL), o.eq(w.kind, sy.W_POOL_DELETE))
        ok = o.ite(conn, conn_ok, o.ite(pool_kind, pool_ok, o.ite(o.eq(w.kind, sy.W_VIP), vip_ok, True)))
        facts.append(o.or_(o.not_(there), ok))
    return o.and_(*facts)


def _projected(o: Domain, st: Step) -> Step:
    """The tables once every pending write has taken effect: what the CPU's shadow says they hold."""
    cached = getattr(st, "projected", None)
    if cached is None:
        cached = Step(st.state)
        cached.changes = dict(st.changes)
        for _ in o.pending(st):
            sy.apply_write(o, cached, required=False)
        st.projected = cached  # type: ignore[attr-defined]
    return cached


def _shadow(o: Domain, st: Step, c: Any) -> Any:
    """A placed connection has its own entry of its version once the pending writes take effect."""
    after = _projected(o, st)
    stage = st.get("conn", c, "stage")
    placed = o.and_(st.get("conn", c, "known"), o.not_(o.eq(stage, EMPTY)))
    entry = o.read(after, "entry", stage, sy.key_at(o, c, stage))
    evip = o.read(after, "evip", stage, sy.key_at(o, c, stage))
    return o.or_(o.not_(placed), o.and_(o.eq(entry, st.get("conn", c, "kver")), o.eq(evip, o.vip_of(c))))


def _owned(o: Domain, st: Step, _: Any) -> Any:
    """Once the pending writes take effect, every entry is a placed connection's own entry, and
    DIPPoolTable and VIPTable are what the CPU wrote."""
    after = _projected(o, st)
    facts = []
    for s in range(o.stages):
        for k in o.keys_of(s):
            entry, evip = after.get("entry", s, k), after.get("evip", s, k)
            owners = [o.and_(after.get("conn", c, "known"), o.eq(after.get("conn", c, "stage"), s),
                             o.eq(o.key(c, s), k), o.eq(after.get("conn", c, "kver"), entry), o.eq(evip, o.vip_of(c)))
                      for c in o.conns()]  # fmt: skip
            facts.append(o.or_(o.eq(entry, EMPTY), *owners))
    for v in o.vips():
        for version in range(o.versions):
            facts.append(o.eq(after.get("pool", v, version), st.get("cpool", v, version)))
        for x in ("phase", "old", "new", "epoch", "slot"):
            facts.append(o.eq(after.get("vip", v, x), st.get("vip", v, f"c{x}")))
    return o.and_(*facts)


def _named_pools(o: Domain, st: Step, _: Any) -> Any:
    """VIPTable names versions whose pools are in (as packets see both, and as the CPU wrote them)."""
    facts = []
    for v in o.vips():
        for x in ("old", "new"):
            facts.append(o.not_(o.eq(o.read(st, "pool", v, st.get("vip", v, x)), EMPTY)))
            facts.append(o.not_(o.eq(o.read(st, "cpool", v, st.get("vip", v, f"c{x}")), EMPTY)))
    return o.and_(*facts)


LEMMAS += [
    Lemma("a pending write is one the decisions make (a ConnTable write at its owner's key)", _write_fields,
          lambda o, st, _: o.or_(*(there for _, there in o.pending(st))), per_connection=False),
    Lemma("a placed connection's own entry holds its version once the pending writes take effect", _shadow,
          lambda o, st, c: o.not_(o.eq(st.get("conn", c, "stage"), EMPTY))),
    Lemma("once the pending writes take effect, the tables are the CPU's shadow", _owned,
          lambda o, st, _: o.or_(*(there for _, there in o.pending(st))), per_connection=False),
    Lemma("VIPTable names versions whose pools are in", _named_pools,
          lambda o, st, _: o.or_(*(o.not_(o.eq(st.get("vip", v, "old"), st.get("vip", v, "new"))) for v in o.vips())),
          per_connection=False),
]  # fmt: skip
