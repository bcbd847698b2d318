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

from model import decisions as d
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
                  _in(o, g("cslot"), 0, o.transit_slots), g("requests") >= 0, o.eq(g("present"), True),
                  o.eq(o.eq(g("requests"), 0), o.eq(g("oldest"), NEVER)), _time(o, st, g("oldest"))]  # fmt: skip
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
    # Learning a connection ends its expiry: only the events of a forgotten one are stale.
    unexpired = o.or_(o.not_(known), o.eq(g("expired"), NEVER))
    return o.and_(o.ite(known, learned, forgotten), ghost, unexpired)


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
        filled = o.and_(o.is_pool(w.pool), o.not_(o.eq(w.pool, EMPTY)))
        pool_ok = o.and_(vip, _version(o, w.version), o.or_(o.eq(w.kind, sy.W_POOL_DELETE), filled))
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
        cached = sy.projected(o, st)
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


# ---------------------------------------------------------------- versions: allocation and reuse


def _pending_kind(o: Domain, st: Step, kind: int) -> Any:
    """Is a write of this kind pending (a lemma's situation)?"""
    return o.or_(*(o.and_(there, o.eq(w.kind, kind)) for w, there in o.pending(st)))


def _before_each_write(o: Domain, st: Step, fact: Callable[[Step, sy.Write, Any], Any]) -> Any:
    """``fact`` of each pending write and the tables just before it takes effect (the writes
    ahead of it applied): the write queue is ordered, so what the CPU decided after an
    earlier write took effect in its shadow holds when its own turn comes."""
    cur = Step(st.state)
    cur.changes = dict(st.changes)
    facts = []
    for _ in o.pending(st):
        w, there = o.pending(cur)[0]
        facts.append(o.or_(o.not_(there), fact(cur, w, there)))
        sy.apply_write(o, cur, required=False)
    return o.and_(*facts)


def _pool_write_fresh(o: Domain, st: Step, _: Any) -> Any:
    """A pool write fills a version whose pool is out when its turn comes (the CPU allocates only
    free versions, and a reclaimed one's delete is ahead of it in the queue)."""

    def fresh(cur: Step, w: sy.Write, _: Any) -> Any:
        empty = o.or_(*(o.and_(is_v, o.eq(o.read(cur, "pool", v, w.version), EMPTY)) for v, is_v in o.refer_vip(w.vip)))
        return o.or_(o.not_(o.eq(w.kind, sy.W_POOL)), empty)

    return _before_each_write(o, st, fresh)


LEMMAS += [
    Lemma("a pending pool write fills a version whose pool is out when its turn comes", _pool_write_fresh,
          lambda o, st, _: _pending_kind(o, st, sy.W_POOL),
          per_connection=False),
]  # fmt: skip


def _vip_successor(o: Domain, prev: tuple[Any, ...], nxt: tuple[Any, ...]) -> Any:
    """Is VIPTable entry ``nxt`` one step of an update after ``prev`` (start, or one phase on)?"""
    phase, old, new, epoch, slot = prev
    p, x, y, e, s = nxt
    kept = o.and_(o.eq(x, old), o.eq(y, new), o.eq(e, epoch), o.eq(s, slot))
    return o.ite(o.eq(phase, d.NORMAL), o.and_(o.eq(p, d.RECORD), o.eq(x, old), o.not_(o.eq(y, x))),
                 o.ite(o.eq(phase, d.SEALED), o.and_(o.eq(p, d.NORMAL), o.eq(x, new), o.eq(y, new), o.eq(e, epoch),
                                                     o.eq(s, slot)),
                       o.and_(o.eq(p, phase + 1), kept)))  # fmt: skip


def _vip_chain(o: Domain, st: Step, _: Any) -> Any:
    """Each pending VIPTable write moves its VIP's entry one step along an update."""

    def step_on(cur: Step, w: sy.Write, _: Any) -> Any:
        return o.or_(o.not_(o.eq(w.kind, sy.W_VIP)),
                     *(o.and_(is_v, _vip_successor(o, tuple(cur.get("vip", v, f) for f in VIP_ENTRY), w.entry))
                       for v, is_v in o.refer_vip(w.vip)))  # fmt: skip

    return _before_each_write(o, st, step_on)


VIP_ENTRY = ("phase", "old", "new", "epoch", "slot")

LEMMAS += [
    Lemma("each pending VIPTable write moves its entry one step along an update", _vip_chain,
          lambda o, st, _: _pending_kind(o, st, sy.W_VIP),
          per_connection=False),
]  # fmt: skip


# ---------------------------------------------------------------- the update protocol: what a connection resolves to


def learnable(o: Domain, st: Step, e: sy.Event, c: Any) -> Any:
    """Would the CPU learn connection c from queued event e (not a whitelist event, not stale)?"""
    return o.and_(o.not_(o.eq(e.kind, sy.AUTH)), o.not_(sy._stale(o, st, e, c)))


def _events_of(o: Domain, st: Step, c: Any) -> list[tuple[sy.Event, Any]]:
    """c's queued events the CPU would learn from, each with the condition that it is there."""
    return [(e, o.and_(there, o.same(e.conn, c), learnable(o, st, e, c))) for e, there in o.queue(st)]


def _sent_by(o: Domain, st: Step, c: Any) -> list[tuple[sy.Event, Any]]:
    """c's queued events other than whitelist events, stale or not (the CPU learns anew from a
    stale one once it learned the connection again), each with the condition that it is there."""
    return [(e, o.and_(there, o.same(e.conn, c), o.not_(o.eq(e.kind, sy.AUTH)))) for e, there in o.queue(st)]


def watched(o: Domain, st: Step, c: Any) -> Any:
    """Live, anchored and not excused: PCC speaks of its next packet. A connection whose learn
    event was lost is watched again once a later event of it is queued (learning it ends the excuse)."""
    lost = st.get("conn", c, "g_lost")
    resumed = o.or_(o.eq(lost, NEVER), *(o.and_(q, e.sent > lost) for e, q in _events_of(o, st, c)))
    return o.and_(live(o, st, c), anchored(o, st, c), o.not_(st.get("conn", c, "g_excused")), resumed)


def _resolves_to_anchor(o: Domain, st: Step, c: Any) -> Any:
    """A watched connection's packet would use a version whose pool gives its anchor (forwarded or
    dropped after t_seal), never another VIP's entry."""
    f = sy.forwarding(o, st, c)
    return o.or_(o.not_(watched(o, st, c)), o.and_(o.not_(f.foreign), o.eq(f.dest, st.get("conn", c, "g_anchor"))))


def _known_version(o: Domain, st: Step, c: Any) -> Any:
    """What the CPU learned of a live unexcused incarnation (anchored yet or not) is the version it
    resolves to."""
    followed = o.and_(live(o, st, c), o.not_(excused(o, st, c)), sy.learned_incarnation(o, st, c))
    return o.or_(o.not_(followed), o.not_(st.get("conn", c, "known")),
                 o.eq(st.get("conn", c, "kver"), sy.forwarding(o, st, c).version))  # fmt: skip


def _queued_version(o: Domain, st: Step, c: Any) -> Any:
    """A watched connection that misses ConnTable, which the CPU has not learned in this
    incarnation, has a learn event of a miss queued carrying the version it resolves to (one that
    teaches the CPU that version), or the CPU knows that version of it already and no queued event
    that may be of an earlier incarnation renews it, or a pending write is about to change its lookup (which
    excuses it)."""
    f = sy.forwarding(o, st, c)
    # An end event teaches the version only to a CPU that does not know the connection (``Cpu._on_learn``).
    known = st.get("conn", c, "known")
    carried = o.or_(*(o.and_(q, o.not_(e.hit), o.eq(e.version, f.version),
                             o.or_(o.not_(known), o.not_(o.eq(e.kind, sy.END)))) for e, q in _events_of(o, st, c)))
    # Known with that version, and no queued event that may be of an earlier incarnation renews it to another.
    kver, ksent = st.get("conn", c, "kver"), st.get("conn", c, "ksent")
    renews = o.or_(*(o.and_(q, d.learn_renews_version(o, o.eq(e.kind, sy.END), e.sent, ksent, e.version, kver,
                                                            sy.gone_hit(o, _projected(o, st), e, c)),
                            o.not_(sy.of_incarnation(o, st, c, e.sent))) for e, q in _events_of(o, st, c)))  # fmt: skip
    kept = o.and_(known, o.eq(kver, f.version), o.not_(renews))
    # Or a pending write makes it hit: that changes the lookup of a connection the CPU has not
    # learned in this incarnation, which excuses it (``excuse_changed``).
    captured = sy.lookup(o, _projected(o, st), c)[0]
    return o.or_(o.not_(watched(o, st, c)), sy.learned_incarnation(o, st, c), f.hit, carried, kept, captured)


def _recorded(o: Domain, st: Step, c: Any) -> Any:
    """In RECORD, a live unexcused connection that misses and whose last packet came after the
    RECORD entry took effect has its TransitTable cells set to the update's epoch (that packet
    missed too, or its lookup changed since, which a known connection's cannot and excuses an
    unknown one)."""
    v = o.vip_of(c)
    misses = o.and_(live(o, st, c), o.not_(excused(o, st, c)), o.not_(sy.forwarding(o, st, c).hit))
    later = st.get("conn", c, "g_last") > st.get("vip", v, "requested")
    situation = o.and_(o.eq(st.get("vip", v, "phase"), d.RECORD), st.get("vip", v, "up"), misses, later)
    slot, epoch = st.get("vip", v, "slot"), st.get("vip", v, "epoch")
    return o.or_(o.not_(situation), d.transit_contains(o, [o.read(st, "cell", slot, i) for i in o.cells(c)], epoch))


def _sealed_old(o: Domain, st: Step, c: Any) -> Any:
    """After t_seal, a queued event of an old-version connection was sent before the seal took effect."""
    v = o.vip_of(c)
    sealed = o.and_(o.eq(st.get("vip", v, "phase"), d.SEALED), st.get("vip", v, "up"))
    late = o.or_(*(o.and_(q, o.eq(e.version, st.get("vip", v, "old")), e.sent > st.get("vip", v, "started"),
                          o.not_(e.hit)) for e, q in _sent_by(o, st, c)))  # fmt: skip
    return o.not_(o.and_(sealed, late))


LEMMAS += [
    Lemma("a watched connection resolves to a version whose pool gives its anchor", _resolves_to_anchor,
          lambda o, st, c: watched(o, st, c)),
    Lemma("a live unexcused connection the CPU learned resolves to the version it knows", _known_version,
          lambda o, st, c: o.and_(watched(o, st, c), st.get("conn", c, "known"),
                                  o.eq(st.get("conn", c, "stage"), EMPTY))),
    Lemma("a watched connection not learned in its incarnation that misses has its version queued or known",
          _queued_version,
          lambda o, st, c: o.and_(watched(o, st, c), o.not_(st.get("conn", c, "known")))),
    Lemma("in RECORD, a live unexcused connection that misses, seen after the entry took effect, is recorded",
          _recorded,
          lambda o, st, c: o.and_(o.eq(st.get("vip", o.vip_of(c), "phase"), d.RECORD), watched(o, st, c))),
    Lemma("after t_seal, a queued old-version miss event was sent before the seal", _sealed_old,
          lambda o, st, c: o.eq(st.get("vip", o.vip_of(c), "phase"), d.SEALED)),
]  # fmt: skip


def _one_step(o: Domain, st: Step, _: Any) -> Any:
    """The pending writes are one CPU step's (it decides once its earlier writes took effect), in
    the order it makes them: whitelist additions while reading, then placements, then forgets,
    then pool and VIPTable writes, pool deletes last."""
    pending = o.pending(st)
    placing = (sy.W_INSERT, sy.W_MOVE_DELETE)
    conn_kinds, later_kinds = (*placing, sy.W_FORGET_DELETE), (sy.W_POOL, sy.W_POOL_DELETE, sy.W_VIP)
    # A connection's entry is deleted to forget it only once it is forgotten.
    facts = [o.or_(o.not_(there), o.not_(o.eq(w.kind, sy.W_FORGET_DELETE)),
                   *(o.and_(o.same(w.owner, c), o.not_(st.get("conn", c, "known"))) for c in o.conns()))
             for w, there in pending]  # fmt: skip
    for i, (wi, ti) in enumerate(pending):
        for wj, tj in pending[i + 1 :]:
            both = o.and_(ti, tj)
            earlier_kind = o.or_(*(o.eq(wi.kind, k) for k in placing))
            facts += [o.or_(o.not_(both), o.eq(wi.decided, wj.decided)),
                      o.or_(o.not_(both), o.not_(o.eq(wj.kind, sy.W_WHITELIST)), o.eq(wi.kind, sy.W_WHITELIST)),
                      o.or_(o.not_(both), o.not_(o.or_(*(o.eq(wj.kind, k) for k in placing))),
                            o.eq(wi.kind, sy.W_WHITELIST), earlier_kind),
                      o.or_(o.not_(both), o.not_(o.or_(*(o.eq(wj.kind, k) for k in conn_kinds))),
                            o.not_(o.or_(*(o.eq(wi.kind, k) for k in later_kinds)))),
                      o.or_(o.not_(both), o.not_(o.eq(wi.kind, sy.W_POOL_DELETE)),
                            o.eq(wj.kind, sy.W_POOL_DELETE))]  # fmt: skip
    return o.and_(*facts)


LEMMAS += [
    Lemma("the pending writes are one CPU step's, in its order (whitelist, placements, the rest)", _one_step,
          lambda o, st, _: o.or_(*(there for _, there in o.pending(st)[1:])), per_connection=False),
]  # fmt: skip


def _sent_by_packets(o: Domain, st: Step, c: Any) -> Any:
    """What is known or queued of a connection was sent by its packets: no later than its last one."""
    last = st.get("conn", c, "g_last")
    facts = [o.or_(o.not_(there), o.not_(o.same(e.conn, c)), e.sent <= last) for e, there in o.queue(st)]
    known = st.get("conn", c, "known")
    facts += [o.or_(o.not_(known), st.get("conn", c, f) <= last) for f in ("ksent", "opened", "ended")]
    return o.and_(*facts)


def _conn_writes_pending(o: Domain, st: Step, _: Any) -> Any:
    """A pending ConnTable delete removes the entry it names when its turn comes, of the version the
    write carries: a move's old copy of its (known) owner's version, or a forgotten connection's entry."""

    def names(cur: Step, w: sy.Write, _: Any) -> Any:
        entry = o.read(cur, "entry", w.stage, w.key)
        moving = o.or_(*(o.and_(o.same(w.owner, c), st.get("conn", c, "known"),
                                o.eq(st.get("conn", c, "kver"), w.version)) for c in o.conns()))  # fmt: skip
        deleting = o.or_(o.eq(w.kind, sy.W_MOVE_DELETE), o.eq(w.kind, sy.W_FORGET_DELETE))
        return o.and_(o.or_(o.not_(deleting), o.eq(entry, w.version)),
                      o.or_(o.not_(o.eq(w.kind, sy.W_MOVE_DELETE)), moving))  # fmt: skip

    return _before_each_write(o, st, names)


LEMMAS += [
    Lemma("what the CPU knows or will learn of a connection was sent by its packets", _sent_by_packets,
          lambda o, st, c: o.or_(*(o.and_(there, o.same(e.conn, c)) for e, there in o.queue(st)))),
    Lemma("a pending ConnTable delete removes the entry it names, of its version (a move's: its owner's)",
          _conn_writes_pending,
          lambda o, st, _: _pending_kind(o, st, sy.W_MOVE_DELETE),
          per_connection=False),
]  # fmt: skip


def _vip_write_pending(o: Domain, st: Step, v: Any, phase: int) -> Any:
    return o.or_(*(o.and_(there, o.eq(w.kind, sy.W_VIP), o.eq(w.vip, v), o.eq(w.entry[0], phase))
                   for w, there in o.pending(st)))  # fmt: skip


def _decided_protocol(o: Domain, st: Step, c: Any) -> Any:
    """What t_exec and t_finish checked when the CPU decided them holds until their entry takes
    effect: t_exec waited a learn-delay bound after the RECORD entry took effect, and every miss
    event sent before that was read and its connection placed; after t_finish no miss event of
    the old version is queued, and no unplaced connection the CPU knows has it."""
    v = o.vip_of(c)
    requested, old = st.get("vip", v, "requested"), st.get("vip", v, "old")
    unplaced = o.and_(st.get("conn", c, "known"), o.eq(st.get("conn", c, "stage"), EMPTY))
    misses = [(e, o.and_(q, o.not_(e.hit))) for e, q in _sent_by(o, st, c)]
    early = o.or_(o.and_(unplaced, st.get("conn", c, "ksent") <= requested),
                  *(o.and_(q, e.sent <= requested) for e, q in misses))  # fmt: skip
    old_left = o.or_(o.and_(unplaced, o.eq(st.get("conn", c, "kver"), old)),
                     *(o.and_(q, o.eq(e.version, old)) for e, q in misses))  # fmt: skip
    exec_waited = o.and_(*(o.or_(o.not_(there), o.not_(o.eq(w.kind, sy.W_VIP)), o.not_(o.eq(w.vip, v)),
                                 o.not_(o.eq(w.entry[0], d.TRANSIT)), w.decided >= requested + o.bound)
                           for w, there in o.pending(st)))  # fmt: skip
    return o.and_(exec_waited, o.not_(o.and_(_vip_write_pending(o, st, v, d.TRANSIT), early)),
                  o.not_(o.and_(_vip_write_pending(o, st, v, d.NORMAL), old_left)))  # fmt: skip


LEMMAS += [
    Lemma("what t_exec and t_finish checked holds until their entries take effect", _decided_protocol,
          lambda o, st, c: o.or_(_vip_write_pending(o, st, o.vip_of(c), d.TRANSIT),
                                 _vip_write_pending(o, st, o.vip_of(c), d.NORMAL))),
]  # fmt: skip


def _event_hits(o: Domain, st: Step, _: Any) -> Any:
    """A new-connection or SYN learn event comes from a miss, a collision from a hit."""
    facts = []
    for e, there in o.queue(st):
        miss = o.or_(o.eq(e.kind, sy.NEW), o.eq(e.kind, sy.SYN_EV))
        facts += [o.or_(o.not_(there), o.not_(miss), o.not_(e.hit)),
                  o.or_(o.not_(there), o.not_(o.eq(e.kind, sy.COLLISION)), e.hit)]  # fmt: skip
    return o.and_(*facts)


LEMMAS += [
    Lemma("a new-connection or SYN event comes from a miss, a collision from a hit", _event_hits,
          lambda o, st, _: o.or_(*(o.and_(there, o.eq(e.kind, sy.COLLISION)) for e, there in o.queue(st))),
          per_connection=False),
]  # fmt: skip


def _one_owner(o: Domain, st: Step, c: Any) -> Any:
    """No two placed connections hold the same key of a stage (the CPU's table maps a key to one)."""
    stage = st.get("conn", c, "stage")
    placed = o.and_(st.get("conn", c, "known"), o.not_(o.eq(stage, EMPTY)))
    shared = [o.and_(st.get("conn", x, "known"), o.eq(st.get("conn", x, "stage"), stage),
                     o.eq(sy.key_at(o, x, stage), sy.key_at(o, c, stage))) for x in o.conns() if x != c]  # fmt: skip
    return o.or_(o.not_(placed), o.not_(o.or_(*shared)))


LEMMAS += [
    Lemma("no two placed connections hold the same key", _one_owner,
          lambda o, st, c: o.not_(o.eq(st.get("conn", c, "stage"), EMPTY))),
]  # fmt: skip


def _advanced_once(o: Domain, st: Step, _: Any) -> Any:
    """A CPU step moves each update on once: of two pending VIPTable writes of a VIP, the first ends
    an update and the second starts the next."""
    pending = o.pending(st)
    facts = []
    for i, (wi, ti) in enumerate(pending):
        for wj, tj in pending[i + 1 :]:
            both = o.and_(ti, tj, o.eq(wi.kind, sy.W_VIP), o.eq(wj.kind, sy.W_VIP), o.eq(wi.vip, wj.vip))
            facts.append(o.or_(o.not_(both), o.and_(o.eq(wi.entry[0], d.NORMAL), o.eq(wj.entry[0], d.RECORD))))
    return o.and_(*facts)


LEMMAS += [
    Lemma("a CPU step moves each update on once (two pending VIPTable writes: an end, then a start)", _advanced_once,
          lambda o, st, _: o.or_(*(o.and_(there, o.eq(w.kind, sy.W_VIP), o.eq(w.entry[0], d.NORMAL))
                                   for w, there in o.pending(st))), per_connection=False),
]  # fmt: skip


def _sent_in_order(o: Domain, st: Step, _: Any) -> Any:
    """Learn events are queued as their packets come: oldest sent first."""
    queue = o.queue(st)
    return o.and_(*(o.or_(o.not_(o.and_(ti, tj)), ei.sent <= ej.sent)
                    for i, (ei, ti) in enumerate(queue) for ej, tj in queue[i + 1 :]))  # fmt: skip


LEMMAS += [
    Lemma("learn events are queued oldest sent first", _sent_in_order,
          lambda o, st, _: o.or_(*(there for _, there in o.queue(st)[1:])), per_connection=False),
]  # fmt: skip


def _reclaimed_unused(o: Domain, st: Step, _: Any) -> Any:
    """What reclaiming a version checked holds until its pool's delete takes effect (the CPU
    decides nothing meanwhile): no connection it knows has it, nor an event it would learn from
    of a connection's current, unexcused incarnation."""
    facts = []
    for w, there in o.pending(st):
        for v, is_v in o.refer_vip(w.vip):
            known = [o.and_(st.get("conn", c, "known"), o.eq(o.vip_of(c), v),
                            o.eq(st.get("conn", c, "kver"), w.version)) for c in o.conns()]  # fmt: skip
            # Reclaiming ignores the events of an excused incarnation (a later one may be unexcused);
            # a forgotten connection hits its entry until the delete ahead of the pool's takes effect.
            flying = [o.and_(q, o.not_(e.hit), o.eq(e.version, w.version), o.eq(o.vip_of(c), v),
                             o.not_(st.get("conn", c, "g_excused")), e.sent >= st.get("conn", c, "g_start"))
                      for c in o.conns() for e, q in _events_of(o, st, c)]  # fmt: skip
            facts.append(o.or_(o.not_(there), o.not_(is_v), o.not_(o.eq(w.kind, sy.W_POOL_DELETE)),
                               o.not_(o.or_(*known, *flying))))  # fmt: skip
    return o.and_(*facts)


LEMMAS += [
    Lemma("a version whose pool delete is pending is no known connection's, nor a queued event's", _reclaimed_unused,
          lambda o, st, _: _pending_kind(o, st, sy.W_POOL_DELETE),
          per_connection=False),
]  # fmt: skip


def _miss_events_current(o: Domain, st: Step, c: Any) -> Any:
    """A queued miss event the CPU would learn from carries the version a miss of its connection
    would use now: VIPTable changes only what a miss of a recorded connection uses once every
    miss event sent before recording began was read (t_exec), a miss that asks TransitTable keeps
    its answer until t_finish, which waits until no old-version miss event is queued."""
    v = o.vip_of(c)
    now = d.miss_version(o, st.get("vip", v, "phase"), sy.transit_hit(o, st, c), st.get("vip", v, "old"),
                         st.get("vip", v, "new"))  # fmt: skip
    return o.and_(*(o.or_(o.not_(q), e.hit, o.eq(e.version, now)) for e, q in _sent_by(o, st, c)))


LEMMAS += [
    Lemma("a queued miss event carries the version a miss of its connection uses now", _miss_events_current,
          lambda o, st, c: o.or_(*(o.and_(q, o.not_(e.hit)) for e, q in _events_of(o, st, c)))),
]  # fmt: skip


def _recorded_events(o: Domain, st: Step, c: Any) -> Any:
    """While packets see an update, a queued old-version miss event sent after its RECORD entry took
    effect has its connection's TransitTable cells set to the update's epoch (its packet recorded
    them, and only a later update's RECORD entry overwrites them)."""
    v = o.vip_of(c)
    updating = o.not_(o.eq(st.get("vip", v, "phase"), d.NORMAL))
    late = o.or_(*(o.and_(q, o.not_(e.hit), o.eq(e.version, st.get("vip", v, "old")),
                          e.sent > st.get("vip", v, "requested")) for e, q in _sent_by(o, st, c)))  # fmt: skip
    slot, epoch = st.get("vip", v, "slot"), st.get("vip", v, "epoch")
    cells = [o.read(st, "cell", slot, i) for i in o.cells(c)]
    return o.or_(o.not_(o.and_(updating, late)), d.transit_contains(o, cells, epoch))


LEMMAS += [
    Lemma("in an update, a queued old-version miss event sent after recording began is recorded", _recorded_events,
          lambda o, st, c: o.and_(o.eq(st.get("vip", o.vip_of(c), "phase"), d.TRANSIT),
                                  o.or_(*(o.and_(q, o.not_(e.hit)) for e, q in _events_of(o, st, c))))),
]  # fmt: skip


def _writes_of(o: Domain, st: Step, c: Any, *kinds: int) -> list[tuple[sy.Write, Any]]:
    """Every pending write slot, with the condition that it holds one of ``kinds`` for c."""
    return [(w, o.and_(there, o.or_(*(o.eq(w.kind, k) for k in kinds)), o.same(w.owner, c)))
            for w, there in o.pending(st)]  # fmt: skip


def _placed_entry_not_doomed(o: Domain, st: Step, c: Any) -> Any:
    """Every delete queued for a placed connection's entry has an insert of it queued after it (a
    move away and back, a forget and a new placement): its entry is there once the queue drains."""
    stage = st.get("conn", c, "stage")
    slots = o.pending(st)
    at_entry = [o.and_(there, sy.is_conn_write(o, w), o.eq(w.stage, stage), o.eq(w.key, sy.key_at(o, c, stage)))
                for w, there in slots]  # fmt: skip
    deleting = [o.and_(here, o.or_(o.eq(w.kind, sy.W_MOVE_DELETE), o.eq(w.kind, sy.W_FORGET_DELETE)))
                for (w, _), here in zip(slots, at_entry, strict=True)]  # fmt: skip
    inserting = [o.and_(here, o.eq(w.kind, sy.W_INSERT), o.same(w.owner, c))
                 for (w, _), here in zip(slots, at_entry, strict=True)]  # fmt: skip
    placed = o.not_(o.eq(stage, EMPTY))
    followed = [o.or_(o.not_(deleting[j]), *inserting[j + 1 :]) for j in range(len(slots))]
    # Another connection's insert there is older than the CPU's shadow table giving c the key.
    others = [o.and_(here, o.eq(w.kind, sy.W_INSERT), o.not_(o.same(w.owner, c)))
              for (w, _), here in zip(slots, at_entry, strict=True)]  # fmt: skip
    displaced = [o.or_(o.not_(others[j]), *deleting[j + 1 :]) for j in range(len(slots))]
    return o.or_(o.not_(placed), o.and_(*followed, *displaced))


def _inserts_kept_or_undone(o: Domain, st: Step, c: Any) -> Any:
    """A queued insert of c is where the CPU has c now, or a delete of that entry is queued after
    it (c moved on, or was forgotten: the CPU forgets a placed connection only once its insert
    took effect)."""
    slots = o.pending(st)
    facts = []
    for j, (w, mine) in enumerate(_writes_of(o, st, c, sy.W_INSERT)):
        kept = o.and_(st.get("conn", c, "known"), o.eq(st.get("conn", c, "stage"), w.stage),
                      o.eq(w.key, sy.key_at(o, c, w.stage)))
        undone = [o.and_(later, o.or_(o.eq(v.kind, sy.W_MOVE_DELETE), o.eq(v.kind, sy.W_FORGET_DELETE)),
                         o.eq(v.stage, w.stage), o.eq(v.key, w.key)) for v, later in slots[j + 1 :]]
        facts.append(o.or_(o.not_(mine), kept, *undone))
    return o.and_(*facts)


def _misses_before_placement(o: Domain, st: Step, c: Any) -> Any:
    """A queued miss event of a connection whose entry is in the table was sent no later than that
    entry's idle timer: its packets hit the entry from its insert on, and the timer starts there."""
    stage = st.get("conn", c, "stage")
    timer = o.read(st, "timer", stage, sy.key_at(o, c, stage))
    return o.or_(o.not_(sy.placed_now(o, st, c)),
                 o.and_(*(o.or_(o.not_(q), e.hit, e.sent <= timer) for e, q in _sent_by(o, st, c))))


def _no_miss_while_forgetting(o: Domain, st: Step, c: Any) -> Any:
    """While the delete of a forgotten connection's entry is queued, no miss event of it sent since
    the CPU decided the delete is queued: its entry was in the table then (its insert had taken
    effect) and its packets hit it until the delete takes effect."""
    slots = o.pending(st)
    forgets = _writes_of(o, st, c, sy.W_FORGET_DELETE)
    inserts = [mine for _, mine in _writes_of(o, st, c, sy.W_INSERT)]
    missed = [o.not_(o.and_(forgetting, q, o.not_(e.hit), o.not_(e.sent < w.decided)))
              for w, forgetting in forgets for e, q in _sent_by(o, st, c)]  # fmt: skip
    # The CPU forgets a placed connection only once its insert took effect: none is queued before.
    ordered = [o.not_(o.and_(inserts[i], forgets[j][1])) for j in range(len(slots)) for i in range(j)]
    # Its entry was in the table when the CPU decided the delete, and no write to it is queued before.
    present = []
    for j, (w, forgetting) in enumerate(forgets):
        earlier = [o.and_(there, sy.is_conn_write(o, v), o.eq(v.stage, w.stage), o.eq(v.key, w.key))
                   for v, there in slots[:j]]  # fmt: skip
        present.append(o.or_(o.not_(forgetting), o.and_(o.eq(w.key, sy.key_at(o, c, w.stage)),
                                                        o.not_(o.eq(o.read(st, "entry", w.stage, w.key), EMPTY)),
                                                        o.not_(o.or_(*earlier)))))  # fmt: skip
    # It marked the connection expired when it decided the delete, unless it learned it again since.
    expired = st.get("conn", c, "expired")
    marked = [o.or_(o.not_(forgetting), st.get("conn", c, "known"),
                    o.and_(o.not_(o.eq(expired, NEVER)), o.not_(expired < w.decided))) for w, forgetting in forgets]
    return o.and_(*missed, *ordered, *present, *marked)


def _new_events_learnable(o: Domain, st: Step, c: Any) -> Any:
    """A queued new-connection event is not stale: the learning filter drops a later incarnation's
    miss event while one is queued, so a stale one would hide it from the CPU."""
    return o.and_(*(o.or_(o.not_(q), o.not_(o.same(e.conn, c)), o.not_(o.eq(e.kind, sy.NEW)),
                          o.not_(sy._stale(o, st, e, c))) for e, q in o.queue(st)))  # fmt: skip


LEMMAS += [
    Lemma("a delete queued for a placed connection's entry has its insert queued after it", _placed_entry_not_doomed,
          lambda o, st, c: o.and_(o.not_(o.eq(st.get("conn", c, "stage"), EMPTY)),
                                  o.not_(sy.placed_now(o, st, c)))),
    Lemma("a queued insert is where the CPU has its connection, or a delete of it is queued after it",
          _inserts_kept_or_undone,
          lambda o, st, c: o.or_(*(mine for _, mine in _writes_of(o, st, c, sy.W_INSERT)))),
    Lemma("a placed connection's queued miss events were sent no later than its entry's timer",
          _misses_before_placement,
          lambda o, st, c: o.and_(sy.placed_now(o, st, c), o.or_(*(o.and_(q, o.not_(e.hit))
                                                                   for e, q in _sent_by(o, st, c))))),
    Lemma("no miss event of a connection is queued from after its entry's delete was decided",
          _no_miss_while_forgetting,
          lambda o, st, c: o.or_(*(mine for _, mine in _writes_of(o, st, c, sy.W_FORGET_DELETE)))),
    Lemma("a queued new-connection event is not stale", _new_events_learnable,
          lambda o, st, c: o.and_(o.not_(o.eq(st.get("conn", c, "expired"), NEVER)), o.queued(st, sy.NEW, c))),
]  # fmt: skip


def _events_current(o: Domain, st: Step, c: Any) -> Any:
    """A live unexcused connection's queued events of its incarnation carry the version it resolves
    to now, and a hit event's entry is still what its lookup hits: a write that changes its lookup
    keeps the version (the CPU learned it) or excuses it."""
    f = sy.forwarding(o, st, c)
    followed = o.and_(live(o, st, c), o.not_(excused(o, st, c)))
    return o.or_(o.not_(followed),
                 o.and_(*(o.or_(o.not_(q), o.not_(sy.of_incarnation(o, st, c, e.sent)),
                                o.and_(o.eq(f.version, e.version), o.or_(o.not_(e.hit), f.hit)))
                          for e, q in _sent_by(o, st, c))))  # fmt: skip


LEMMAS += [
    Lemma("a live unexcused connection's queued events carry the version it resolves to", _events_current,
          lambda o, st, c: o.and_(live(o, st, c), o.or_(*(q for _, q in _sent_by(o, st, c))))),
]  # fmt: skip


def _unknown_with_a_miss_end(o: Domain, st: Step, c: Any) -> Any:
    """The CPU does not know c, and an end event of a packet of c that missed is queued."""
    ends = o.or_(*(o.and_(q, o.eq(e.kind, sy.END), o.not_(e.hit)) for e, q in _events_of(o, st, c)))
    return o.and_(o.not_(st.get("conn", c, "known")), ends)


def _ends_accompanied(o: Domain, st: Step, c: Any) -> Any:
    """A packet that misses sends a new-connection or SYN event with its end event (the learning
    filter drops the former only while one is queued): a watched connection the CPU does not know,
    that misses, with an end event of a miss queued, has one of those queued too (a write that
    makes it miss excuses it, and one it forwarded nothing in may be forgotten)."""
    news = o.or_(*(o.and_(q, o.or_(o.eq(e.kind, sy.NEW), o.eq(e.kind, sy.SYN_EV))) for e, q in _events_of(o, st, c)))
    situation = o.and_(watched(o, st, c), o.not_(sy.forwarding(o, st, c).hit), _unknown_with_a_miss_end(o, st, c))
    return o.or_(o.not_(situation), news)


LEMMAS += [
    Lemma("a watched unknown connection that misses, with a miss's end event queued, has a new-connection one queued",
          _ends_accompanied, _unknown_with_a_miss_end),
]  # fmt: skip


def _read_in_order(o: Domain, st: Step, c: Any) -> Any:
    """A queued event of a connection the CPU knows was sent no earlier than the newest event it
    learned of it, or became visible only after that one was sent: the queue is in the order
    events were sent and the CPU reads visible ones oldest first (one it passed over was not
    visible yet)."""
    g = lambda f: st.get("conn", c, f)  # noqa: E731
    newest = sy.maximum(o, g("ksent"), sy.maximum(o, g("opened"), g("ended")))
    return o.or_(o.not_(g("known")),
                 o.and_(*(o.or_(o.not_(q), o.not_(o.same(e.conn, c)), e.sent >= newest, e.visible > newest)
                          for e, q in o.queue(st))))  # fmt: skip


LEMMAS += [
    Lemma("a queued event of a known connection is no older than the newest it learned, or was not visible then",
          _read_in_order,
          lambda o, st, c: o.and_(st.get("conn", c, "known"), o.or_(*(q for _, q in _sent_by(o, st, c))))),
]  # fmt: skip


def _placed_resolves(o: Domain, st: Step, c: Any) -> Any:
    """A connection whose entry packets see resolves to its own version (a write keeps the lookup of
    every connection the CPU knows, so no entry of another version comes to shadow its own)."""
    hit, version, _ = sy.lookup(o, st, c)
    placed = o.and_(st.get("conn", c, "known"), sy.placed_now(o, st, c))
    return o.or_(o.not_(placed), o.and_(hit, o.eq(version, st.get("conn", c, "kver"))))


LEMMAS += [
    Lemma("a connection whose entry is in the table packets see resolves to its own version", _placed_resolves,
          lambda o, st, c: o.and_(st.get("conn", c, "known"), sy.placed_now(o, st, c))),
]  # fmt: skip


def _ended_closes(o: Domain, st: Step, c: Any) -> Any:
    """An end event of a connection's current incarnation, queued or learned, closed that incarnation."""
    ended = st.get("conn", c, "ended")
    learned = o.and_(st.get("conn", c, "known"), o.not_(o.eq(ended, NEVER)), sy.of_incarnation(o, st, c, ended))
    queued = [o.and_(q, o.eq(e.kind, sy.END), sy.of_incarnation(o, st, c, e.sent)) for e, q in _sent_by(o, st, c)]
    return o.or_(o.not_(o.or_(learned, *queued)), st.get("conn", c, "g_closed"))


LEMMAS += [
    Lemma("an end event of a connection's incarnation, queued or learned, closed it", _ended_closes,
          lambda o, st, c: o.and_(st.get("conn", c, "known"), o.not_(o.eq(st.get("conn", c, "ended"), NEVER)))),
]  # fmt: skip

