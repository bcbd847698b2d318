"""The abstract SilkRoad switch: its state, its named actions, and the PCC property.

State. A flat map from paths to values, the same for Python values and Z3 terms:

``("now",)``                      the clock
``("vip", v, f)``                 VIPTable as packets see it (``present phase old new epoch slot``), the
                                  CPU's copy (``cphase cold cnew cepoch cslot``), the CPU's update
                                  (``up`` active, ``uphase uold unew uepoch uslot started requested``),
                                  ``requests`` queued, ``oldest`` the time of the oldest of them
``("entry", s, k)``, ``("timer", s, k)``  ConnTable: version (``EMPTY``) and idle timer per stage and key,
                                  and ``("evip", s, k)`` the VIP of the connection it was written for
``("pool", v, ver)``, ``("cpool", v, ver)``  DIPPoolTable as packets see it, and as the CPU wrote it
``("cell", slot, i)``             TransitTable: the epoch a Bloom cell holds
``("wl", src)``, ``("cwl", src)``  the whitelist, as packets see it and as the CPU wrote it
``("epoch",)``                    the CPU's epoch counter
``("queue",)``                    the learn events in flight (``Event``)
``("pending",)``                  the table writes the CPU made that have not taken effect (``Write``)
``("conn", c, f)``                what the CPU knows of connection c (``known kver ksent khit opened ended
                                  stage expired``) and the ghost history PCC is judged on (``g_*``;
                                  ``g_cookie`` the cookie of the last SYN-ACK sent to c; ``g_tied``
                                  its incarnation began in the tick of its predecessor's last packet)

Actions are functions ``(Domain, Step, ...) -> None`` that state guard conjuncts
(``step.require(name, term)``) and changes (``step.set(path, term)``); later parts of one
action read earlier changes (``step.get``). Every per-packet and protocol decision is
``model.decisions``, called with the domain's Ops, so the checked relation is the
proved one and both are the model's own decisions.

What is abstracted, and why it is sound:
* Hashes are constants (``Domain.key``, ``cells``, ``dest``, ``cookie``): the abstract
  system takes the switch's hash functions as given. Their bit-exactness is tested
  against BMv2, their independence by the GF(2) rank tests.
* The CPU's placement search is free: any write the CPU makes is allowed if, when it
  takes effect, it keeps every lookup of a connection the CPU knows
  (``model.decisions.write_keeps_lookup`` on the tables packets see). This is what the
  proofs rest on, checked on the real tables, not on the CPU's shadow.
* What the CPU knows of a connection's silence is not modelled: it may forget a
  connection only when the connection's last packet is older than the limit (the
  ghost clock), and a placed one only by deleting its entry.
* Pools are compared by identity (``dest``): the DIP a connection's flow maps to in a
  pool. In Z3 every pool is its own destination, so a version change is a move.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from model import decisions as d

EMPTY = -1
"""No ConnTable entry, no pool, no version."""
NEVER = -1
"""No time (an unset timer)."""

# Learn event kinds (codes, so Z3 can hold them).
NEW, SYN_EV, COLLISION, END, AUTH = 0, 1, 2, 3, 4
EVENT_NAMES = {NEW: "new", SYN_EV: "syn", COLLISION: "collision", END: "end", AUTH: "auth"}
EVENT_CODES = {name: code for code, name in EVENT_NAMES.items()}
FILTERED = (NEW, AUTH)
"""Kinds the learning filter de-duplicates: a repeat is not queued while one is."""

# Write kinds.
W_INSERT, W_MOVE_DELETE, W_FORGET_DELETE, W_POOL, W_POOL_DELETE, W_VIP, W_WHITELIST = range(7)
WRITE_NAMES = {W_INSERT: "conn-insert", W_MOVE_DELETE: "conn-delete:move", W_FORGET_DELETE: "conn-delete:forget",
               W_POOL: "pool-write", W_POOL_DELETE: "pool-delete", W_VIP: "vip-write",
               W_WHITELIST: "whitelist-add"}  # fmt: skip

CONN_FIELDS = ("known", "kver", "ksent", "khit", "opened", "ended", "stage", "expired", "xstage")
"""``khit``: its version is the one an entry its packet hit held (``Known.version_from_hit``);
``expired``/``xstage``: when and in which stage the CPU removed the entry of a connection it forgot."""
GHOST_FIELDS = ("g_start", "g_last", "g_closed", "g_anchor", "g_excused", "g_lost", "g_cookie", "g_tied")
"""``g_tied``: a FIN and the SYN that reuses its 5-tuple may come in one tick, and learn events
carry only the tick they were sent in, so an event of that tick may be of either incarnation:
the CPU learned the later one for sure only from a later tick (``of_incarnation``)."""
UPDATE_FIELDS = ("up", "uphase", "uold", "unew", "uepoch", "uslot", "started", "requested")
UPDATE_IDLE = (False, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, NEVER, NEVER)
"""The CPU's update fields of a VIP without an update running."""
VIP_FIELDS = ("present", "phase", "old", "new", "epoch", "slot", "cphase", "cold", "cnew", "cepoch", "cslot", "up",
              "uphase", "uold", "unew", "uepoch", "uslot", "started", "requested", "requests", "oldest")  # fmt: skip


class Event(NamedTuple):
    """A learn event in flight."""

    kind: Any
    conn: Any
    version: Any
    sent: Any
    visible: Any
    hit: Any
    """Its packet hit a ConnTable entry."""
    hit_stage: Any
    """The stage of that entry (``EMPTY`` when it missed): only a hit on the removed entry is stale."""


class Write(NamedTuple):
    """One table write the CPU made. Fields a kind does not use are ``EMPTY``."""

    kind: Any
    decided: Any
    """When the CPU decided it (what it knew then is what it could protect)."""
    owner: Any = EMPTY
    stage: Any = EMPTY
    key: Any = EMPTY
    version: Any = EMPTY
    vip: Any = EMPTY
    pool: Any = EMPTY
    entry: tuple[Any, ...] = (EMPTY, EMPTY, EMPTY, EMPTY, EMPTY)
    """A VIPTable write's (phase, old, new, epoch, slot)."""
    releases: Any = EMPTY
    src: Any = EMPTY


class Domain(Protocol):
    """What the abstract system needs from its evaluator: ``model.decisions.Ops``, the scope
    (connections, VIPs, versions, the config's timing), the hash constants, and the few
    structure operations whose representation differs (tables indexed by a hash, the learn
    queue, the write queue)."""

    # model.decisions.Ops
    def ite(self, cond: Any, then: Any, other: Any) -> Any: ...
    def and_(self, *args: Any) -> Any: ...
    def or_(self, *args: Any) -> Any: ...
    def not_(self, arg: Any) -> Any: ...
    def eq(self, a: Any, b: Any) -> Any: ...

    def may(self, cond: Any) -> bool:
        """Can ``cond`` hold? False only where it is known to be false (a concrete value): then what
        it enables is skipped, where each guard would be an implication from it and each effect
        conditional on it."""
        ...

    # scope
    stages: int
    versions: int
    epochs: int
    transit_slots: int
    bound: Any
    idle_timeout: Any
    teardown_grace: Any
    syn_auth: bool

    def conns(self) -> Sequence[Any]: ...
    def readers(self, stage: Any, key: Any) -> Sequence[Any]:
        """The connections whose lookup reads ``(stage, key)`` (at least: all of them will do)."""
        ...

    def vips(self) -> Sequence[Any]: ...
    def refer(self, ref: Any) -> list[tuple[Any, Any]]:
        """The connections a reference held in the state may denote, each with the condition that it does."""
        ...

    def refer_vip(self, ref: Any) -> list[tuple[Any, Any]]: ...
    def same(self, ref: Any, c: Any) -> Any:
        """Does a reference held in the state denote connection c?"""
        ...

    # hash constants
    def vip_of(self, c: Any) -> Any: ...
    def key(self, c: Any, stage: int) -> Any: ...
    def cells(self, c: Any) -> Sequence[Any]: ...
    def dest(self, c: Any, pool: Any) -> Any: ...
    def src(self, c: Any) -> Any: ...
    def cookie(self, c: Any) -> Any: ...

    # structure
    def read(self, step: Step, table: str, *index: Any) -> Any:
        """A table cell (``entry``, ``timer``, ``pool``, ``cpool``, ``cell``, ``wl``, ``cwl``); indices may be terms."""
        ...

    def update(self, step: Step, table: str, cond: Any, value: Any, *index: Any) -> None:
        """Set a table cell to ``value`` if ``cond``."""
        ...

    def is_pool(self, x: Any) -> Any:
        """Is ``x`` a pool identity or ``EMPTY``?"""
        ...

    def keys_of(self, stage: int) -> Sequence[Any]:
        """The ConnTable keys of a stage the state speaks of."""
        ...

    def cell_indices(self) -> Sequence[tuple[Any, Any]]:
        """The (slot, cell) of every TransitTable cell the state speaks of."""
        ...

    def ordered(self, step: Step) -> Sequence[Any]:
        """What keeps the queues' representation whole (oldest first, no holes)."""
        ...

    def queue(self, step: Step) -> Sequence[tuple[Event, Any]]:
        """The learn queue: each event with the condition that it is there."""
        ...

    def queue_add(self, step: Step, event: Event, cond: Any) -> None: ...
    def queued(self, step: Step, kind: Any, c: Any) -> Any:
        """Is an event of this kind of connection c queued?"""
        ...

    def queue_drop(self, step: Step, gone: Sequence[Any]) -> None:
        """Remove the events of ``queue(step)`` whose flag in ``gone`` holds."""
        ...

    def queue_set(self, step: Step, index: int, event: Event) -> None: ...
    def pending(self, step: Step) -> Sequence[tuple[Write, Any]]: ...
    def pending_append(self, step: Step, write: Write, cond: Any) -> None: ...
    def pending_pop(self, step: Step) -> tuple[Write, Any]:
        """The oldest pending write, removed, with the condition that there was one."""
        ...


_UNSET = object()


class Step:
    """One action's guard conjuncts and changes over a state (a mapping from paths)."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.changes: dict[tuple[Any, ...], Any] = {}
        self.guards: list[tuple[str, Any]] = []

    def get(self, *path: Any) -> Any:
        value = self.changes.get(path, _UNSET)
        return self.state[path] if value is _UNSET else value

    def set(self, value: Any, *path: Any) -> None:
        self.changes[path] = value

    def require(self, name: str, cond: Any) -> None:
        self.guards.append((name, cond))


def maximum(o: Domain, a: Any, b: Any) -> Any:
    return o.ite(a >= b, a, b)


def when(o: Domain, st: Step, cond: Any, value: Any, *path: Any) -> None:
    """Set ``path`` to ``value`` if ``cond`` holds (else it keeps its value)."""
    st.set(o.ite(cond, value, st.get(*path)), *path)


# ---------------------------------------------------------------- what packets see


def lookup(o: Domain, st: Step, c: Any) -> tuple[Any, Any, Any]:
    """ConnTable for connection c: (hit, version, stage); the first stage whose key matches wins."""
    hit, version, stage = o.eq(0, 1), EMPTY, EMPTY
    for s in reversed(range(o.stages)):
        entry = o.read(st, "entry", s, o.key(c, s))
        present = o.not_(o.eq(entry, EMPTY))
        hit, version, stage = o.or_(present, hit), o.ite(present, entry, version), o.ite(present, s, stage)
    return hit, version, stage


def vip_field(o: Domain, st: Step, v: Any, name: str) -> Any:
    return st.get("vip", v, name)


def conn_vip(o: Domain, st: Step, c: Any, name: str) -> Any:
    return vip_field(o, st, o.vip_of(c), name)


def transit_hit(o: Domain, st: Step, c: Any) -> Any:
    """Would a ConnTable miss of c hit TransitTable now (``model.decisions.transit_contains``)?"""
    slot, epoch = conn_vip(o, st, c, "slot"), conn_vip(o, st, c, "epoch")
    cells = [o.read(st, "cell", slot, i) for i in o.cells(c)]
    return o.and_(d.consults_transit(o, conn_vip(o, st, c, "phase")), d.transit_contains(o, cells, epoch))


def authenticating(o: Domain, st: Step, c: Any) -> Any:
    """Does a TCP packet of c go through SYN authentication (its source is not whitelisted)?"""
    if not o.syn_auth:  # a constant of the scope
        return False
    return o.not_(o.read(st, "wl", o.src(c)))


class Forwarding(NamedTuple):
    """What the data plane does with a (non-SYN-auth) packet of a connection now."""

    hit: Any
    hit_version: Any
    hit_stage: Any
    foreign: Any
    """It hit the entry of another VIP's connection (whose version names an unrelated pool)."""
    transit: Any
    dropped: Any
    """Dropped after t_seal (a miss that hits TransitTable)."""
    version: Any
    pool: Any
    forwarded: Any
    dest: Any


def forwarding(o: Domain, st: Step, c: Any) -> Forwarding:
    hit, hit_version, hit_stage = lookup(o, st, c)
    foreign = o.and_(hit, o.not_(o.eq(o.read(st, "evip", hit_stage, key_at(o, c, hit_stage)), o.vip_of(c))))
    phase = conn_vip(o, st, c, "phase")
    transit = o.and_(o.not_(hit), transit_hit(o, st, c))
    dropped = d.drops_sealed(o, hit, phase, transit)
    version = d.packet_version(o, hit, hit_version, phase, transit, conn_vip(o, st, c, "old"),
                               conn_vip(o, st, c, "new"))  # fmt: skip
    pool = o.read(st, "pool", o.vip_of(c), version)
    forwarded = o.and_(o.not_(dropped), o.not_(o.eq(pool, EMPTY)))
    return Forwarding(hit, hit_version, hit_stage, foreign, transit, dropped, version, pool, forwarded,
                      o.dest(c, pool))  # fmt: skip


# ---------------------------------------------------------------- the ghost: incarnations, anchors, excuses


def of_incarnation(o: Domain, st: Step, c: Any, sent: Any) -> Any:
    """Was a learn event of c sent at ``sent`` surely sent by its current incarnation?"""
    start = st.get("conn", c, "g_start")
    return o.or_(sent > start, o.and_(o.eq(sent, start), o.not_(st.get("conn", c, "g_tied"))))


def learned_incarnation(o: Domain, st: Step, c: Any) -> Any:
    """Does the CPU know c's version from a packet of its current incarnation? (An end event does
    not renew the version the CPU knows (``Cpu._on_learn``), so it does not count.)"""
    newest = maximum(o, st.get("conn", c, "ksent"), st.get("conn", c, "opened"))
    return o.and_(st.get("conn", c, "known"), of_incarnation(o, st, c, newest))


def excuse_changed(o: Domain, st: Step, changed_lookups: dict[Any, Any], decided: Any) -> None:
    """A table write changed the lookups of these connections (per connection: whether it did). One
    the CPU had not learned (in this incarnation), or whose incarnation began after the write was
    decided, is excused: the residual risks ``digest-alias`` and ``write-race``."""
    for c, changed in changed_lookups.items():
        unprotected = o.or_(o.not_(learned_incarnation(o, st, c)), decided < st.get("conn", c, "g_start"))
        when(o, st, o.and_(changed, unprotected), True, "conn", c, "g_excused")


# ---------------------------------------------------------------- packets


class PacketOutcome(NamedTuple):
    action: Any
    """``FORWARD``, ``DROP`` or ``REPLY`` (codes)."""
    dest: Any
    reply_syn_ack: Any
    learned: tuple[tuple[int, Any], ...]
    """(event kind, sent?) of each learn event the packet could send, in the model's order."""
    hit_stage: Any
    bad: Any
    """A forwarded packet of a live, anchored, unexcused incarnation went elsewhere."""


FORWARD, DROP, REPLY = 0, 1, 2


def packet(o: Domain, st: Step, c: Any, is_syn: Any, is_end: Any, is_bare_ack: Any, ack: Any,
           is_tcp: Any) -> PacketOutcome:  # fmt: skip
    """A packet of connection c through the ingress pipeline (``model.dataplane.process_packet``)."""
    now = st.get("now")
    _incarnation(o, st, c, is_syn)
    present = conn_vip(o, st, c, "present")  # a VIPTable entry: other packets are dropped
    auth = o.and_(present, is_tcp, authenticating(o, st, c))
    outcome = d.auth_outcome(o, is_syn, is_bare_ack, o.eq(ack, (o.cookie(c) + 1) % (1 << 32)))
    whitelist = o.and_(auth, o.eq(outcome, d.AUTH_WHITELIST))
    # What a source proves by answering: that it received the SYN-ACK sent to its 5-tuple. A cookie
    # that leaves a field out lets one source's cookie open another's (the oracle's ``spoofed``).
    sent_cookie = st.get("conn", c, "g_cookie")
    st.require("a source is whitelisted only by the cookie of the SYN-ACK sent to its 5-tuple",
               o.or_(o.not_(whitelist),
                     o.and_(o.not_(o.eq(sent_cookie, NEVER)), o.eq(ack, (sent_cookie + 1) % (1 << 32)))))  # fmt: skip
    when(o, st, o.and_(auth, o.eq(outcome, d.AUTH_SYNACK)), o.cookie(c), "conn", c, "g_cookie")
    phase = conn_vip(o, st, c, "phase")
    current = o.ite(d.consults_transit(o, phase), conn_vip(o, st, c, "new"), conn_vip(o, st, c, "old"))
    auth_learned = _learn(o, st, AUTH, c, current, False, EMPTY, whitelist)

    f = forwarding(o, st, c)
    normal = o.and_(present, o.not_(auth))
    forwarded = o.and_(normal, f.forwarded)
    passes = o.and_(normal, o.not_(f.dropped))
    o.update(st, "timer", o.and_(passes, f.hit), now, f.hit_stage, key_at(o, c, f.hit_stage))
    records = o.and_(passes, d.records_transit(o, f.hit, phase))
    slot = conn_vip(o, st, c, "slot")
    for i in o.cells(c):
        o.update(st, "cell", records, conn_vip(o, st, c, "epoch"), slot, i)
    learns_new = o.and_(passes, d.learns_new(o, f.hit, phase, f.transit))
    hit_stage = o.ite(f.hit, f.hit_stage, EMPTY)
    sent_syn = _learn(o, st, SYN_EV, c, f.version, f.hit, hit_stage, o.and_(learns_new, is_syn))
    sent_new = _learn(o, st, NEW, c, f.version, f.hit, hit_stage, o.and_(learns_new, o.not_(is_syn)))
    sent_collision = _learn(o, st, COLLISION, c, f.version, f.hit, hit_stage,
                            o.and_(passes, d.learns_collision(o, f.hit, is_syn)))  # fmt: skip
    sent_end = _learn(o, st, END, c, f.version, f.hit, hit_stage, o.and_(passes, is_end))

    # Captured by another VIP's entry: the residual risk of digests (``digest-alias``).
    when(o, st, o.and_(passes, f.foreign), True, "conn", c, "g_excused")
    anchor = st.get("conn", c, "g_anchor")
    excused = o.or_(st.get("conn", c, "g_excused"), o.not_(o.eq(st.get("conn", c, "g_lost"), NEVER)))
    moved = o.and_(forwarded, o.not_(o.eq(anchor, EMPTY)), o.not_(o.eq(anchor, f.dest)))
    bad = o.and_(moved, o.not_(excused))
    # An excused move excuses the rest of the incarnation (the oracle judges it by its first move).
    when(o, st, moved, True, "conn", c, "g_excused")
    when(o, st, o.and_(forwarded, o.eq(anchor, EMPTY)), f.dest, "conn", c, "g_anchor")
    st.set(now, "conn", c, "g_last")
    when(o, st, is_end, True, "conn", c, "g_closed")
    action = o.ite(auth, o.ite(o.eq(outcome, d.AUTH_DROP), DROP, REPLY), o.ite(forwarded, FORWARD, DROP))
    learned = ((AUTH, auth_learned), (SYN_EV, sent_syn), (NEW, sent_new), (COLLISION, sent_collision), (END, sent_end))
    return PacketOutcome(action, f.dest, o.and_(auth, o.eq(outcome, d.AUTH_SYNACK)), learned,
                         o.ite(normal, hit_stage, EMPTY), bad)  # fmt: skip


def _incarnation(o: Domain, st: Step, c: Any, is_syn: Any) -> None:
    """The oracle's incarnations: a packet after an idle gap, or after a FIN/RST a SYN or a packet
    after the grace, starts a new one (a non-SYN starter of a closed one is closing too)."""
    last, closed = st.get("conn", c, "g_last"), st.get("conn", c, "g_closed")
    gap = st.get("now") - last
    fresh = o.or_(o.eq(last, NEVER), gap > o.idle_timeout,
                  o.and_(closed, o.or_(is_syn, gap > o.teardown_grace)))  # fmt: skip
    leftover = o.and_(fresh, o.not_(o.eq(last, NEVER)), closed, o.not_(is_syn))
    when(o, st, fresh, o.eq(last, st.get("now")), "conn", c, "g_tied")
    when(o, st, fresh, st.get("now"), "conn", c, "g_start")
    when(o, st, fresh, EMPTY, "conn", c, "g_anchor")
    when(o, st, fresh, False, "conn", c, "g_excused")
    when(o, st, fresh, leftover, "conn", c, "g_closed")


def _learn(o: Domain, st: Step, kind: int, c: Any, version: Any, hit: Any, hit_stage: Any, cond: Any) -> Any:
    """Queue a learn event if ``cond``; the learning filter drops a repeat of a queued filtered one.
    Returns whether it was queued."""
    if kind in FILTERED:
        cond = o.and_(cond, o.not_(o.queued(st, kind, c)))
    now = st.get("now")
    o.queue_add(st, Event(kind, c, version, now, now, hit, hit_stage), cond)
    return cond


# ---------------------------------------------------------------- the learn channel's faults


def lose(o: Domain, st: Step, index: int) -> None:
    """Fault: a queued learn event never reaches the CPU. Its connection's moves are excused until
    the CPU learns from a later packet of it (the oracle's ``fault``)."""
    e, there = o.queue(st)[index]
    st.require("the lost event is queued", there)
    for c, is_c in o.refer(e.conn):
        lost = st.get("conn", c, "g_lost")
        when(o, st, is_c, maximum(o, lost, e.sent), "conn", c, "g_lost")
    o.queue_drop(st, [j == index for j in range(len(o.queue(st)))])


def delay(o: Domain, st: Step, index: int, visible: Any) -> None:
    """Fault: a queued learn event becomes visible later, within the learn-delay bound (a late one,
    already past it, stays as it is)."""
    e, there = o.queue(st)[index]
    st.require("the delayed event is queued", there)
    st.require("a delay keeps the event within the learn-delay bound",
               o.and_(visible >= e.visible, o.or_(visible <= e.sent + o.bound, o.eq(visible, e.visible))))  # fmt: skip
    o.queue_set(st, index, e._replace(visible=maximum(o, e.visible, visible)))


def late(o: Domain, st: Step, index: int, visible: Any) -> None:
    """Fault: a queued learn event becomes visible after the learn-delay bound. The protocol's waits
    (t_exec, t_finish, version reuse) rest on that bound, so for its connection this is a loss
    (``g_lost``, as ``lose``: its moves are excused until the CPU learns from a later packet of it,
    the oracle's ``fault``), and the event, read when it arrives, is a stale one about what the CPU
    may have moved on from. Keeping it queued (rather than dropping it) is what the model and a real
    switch do; a late event is told apart by its visibility past the bound (``overdue``).

    The k-induction's scope draws ``lose`` and ``delay`` but not this: its lemmas keep every queued
    event within the bound. What holds with late events is what the refinement check shows, step by
    step, against these same guards, with the late connection excused."""
    e, there = o.queue(st)[index]
    st.require("the late event is queued", there)
    st.require("a late event becomes visible past the learn-delay bound",
               o.and_(visible >= e.visible, visible > e.sent + o.bound))  # fmt: skip
    for c, is_c in o.refer(e.conn):
        when(o, st, is_c, maximum(o, st.get("conn", c, "g_lost"), e.sent), "conn", c, "g_lost")
    o.queue_set(st, index, e._replace(visible=visible))


def overdue(o: Domain, e: Event) -> Any:
    """Is ``e`` a late event (``late``), visible only past the learn-delay bound?"""
    return e.visible > e.sent + o.bound


def tick(o: Domain, st: Step, now: Any) -> None:
    st.require("time does not go back", now >= st.get("now"))
    st.set(now, "now")


# ---------------------------------------------------------------- the CPU: learning


def read_learns(o: Domain, st: Step, taken: Sequence[Any], limit: Any) -> None:
    """The CPU reads the queued events flagged in ``taken`` (in queue order): visible ones only, at
    most ``limit`` (None: all), and all visible ones unless it took ``limit``. What it learns is
    ``Cpu._on_learn``."""
    now = st.get("now")
    queue = o.queue(st)
    count = sum(o.ite(read, 1, 0) for read in taken)
    full = False if limit is None else o.eq(count, limit)
    if limit is not None:
        st.require("the CPU reads at most its limit of events", count <= limit)
    for j, ((e, there), read) in enumerate(zip(queue, taken, strict=True)):
        visible = o.and_(there, e.visible <= now)
        st.require("the CPU reads only visible events", o.or_(o.not_(read), visible))
        st.require("the CPU reads every visible event unless it reached its limit", o.or_(read, o.not_(visible), full))
        st.require("the CPU reads visible events oldest first",
                   o.or_(read, o.not_(visible), o.not_(o.or_(*taken[j + 1 :]))))  # fmt: skip
    # Reading adds only whitelist writes, so the CPU's shadow of ConnTable is one for the whole batch.
    shadow = projected(o, st)
    for (e, _), read in zip(queue, taken, strict=True):
        for c, is_c in o.refer(e.conn):
            act = o.and_(read, is_c)
            if o.may(act):  # an event not read changes nothing
                _on_learn(o, st, e, c, act, shadow)
    o.queue_drop(st, list(taken))


def gone_hit(o: Domain, shadow: Step, e: Event, c: Any) -> Any:
    """Did e's packet hit an entry that c's lookup no longer reaches in the CPU's shadow (``projected``)?"""
    return o.and_(e.hit, o.not_(o.eq(lookup(o, shadow, c)[1], e.version)))


def _on_learn(o: Domain, st: Step, e: Event, c: Any, act: Any, shadow: Step) -> None:
    def f(name: str) -> Any:
        return st.get("conn", c, name)

    auth = o.eq(e.kind, AUTH)
    src = o.src(c)
    whitelist = o.and_(act, auth, o.not_(o.read(st, "cwl", src)))
    o.update(st, "cwl", whitelist, True, src)
    o.pending_append(st, Write(W_WHITELIST, st.get("now"), src=src), whitelist)

    stale = _stale(o, st, e, c)
    learnable = o.and_(act, o.not_(auth), o.not_(stale))
    known = f("known")
    create = o.and_(learnable, o.not_(known))
    unplaced = o.and_(learnable, known, o.eq(f("stage"), EMPTY))
    newer = o.and_(unplaced, d.learn_renews_version(o, o.eq(e.kind, END), e.sent, f("ksent"), e.version, f("kver"),
                                                    gone_hit(o, shadow, e, c)))  # fmt: skip
    renew = o.or_(create, newer)
    # A miss of it with the version it has says its packets use that version, whatever gave it.
    confirmed = o.and_(unplaced, o.not_(o.eq(e.kind, END)), e.sent >= f("ksent"), o.not_(e.hit))
    st.set(o.or_(known, create), "conn", c, "known")
    st.set(o.ite(renew, e.version, f("kver")), "conn", c, "kver")
    st.set(o.ite(renew, e.sent, f("ksent")), "conn", c, "ksent")
    st.set(o.ite(renew, e.hit, o.and_(f("khit"), o.not_(confirmed))), "conn", c, "khit")
    when(o, st, create, EMPTY, "conn", c, "stage")
    when(o, st, create, NEVER, "conn", c, "expired")
    when(o, st, create, EMPTY, "conn", c, "xstage")
    opened, ended = o.ite(create, NEVER, f("opened")), o.ite(create, NEVER, f("ended"))
    opens = o.and_(learnable, o.or_(o.eq(e.kind, SYN_EV), o.eq(e.kind, COLLISION)))
    st.set(o.ite(opens, maximum(o, opened, e.sent), opened), "conn", c, "opened")
    st.set(o.ite(o.and_(learnable, o.eq(e.kind, END)), maximum(o, ended, e.sent), ended), "conn", c, "ended")
    lost = f("g_lost")
    when(o, st, o.and_(learnable, e.sent > lost), NEVER, "conn", c, "g_lost")


# ---------------------------------------------------------------- the CPU: decisions that write


def key_at(o: Domain, c: Any, stage: Any) -> Any:
    """c's ConnTable key in ``stage`` (which may be a term)."""
    key = o.key(c, o.stages - 1)
    for s in reversed(range(o.stages - 1)):
        key = o.ite(o.eq(stage, s), o.key(c, s), key)
    return key


def _conn_write(o: Domain, st: Step, kind: int, c: Any, stage: Any, cond: Any) -> tuple[Write, Any]:
    """Queue a ConnTable write if ``cond``; the write and its condition."""
    write = Write(kind, st.get("now"), owner=c, stage=stage, key=key_at(o, c, stage),
                  version=st.get("conn", c, "kver"), vip=o.vip_of(c))  # fmt: skip
    o.pending_append(st, write, cond)
    return write, cond


def place(o: Domain, st: Step, p: Place, shadow: Step) -> list[tuple[Write, Any]]:
    """The CPU places a connection (or moves it) at a stage: an insert carrying its version; or it
    ends a cuckoo move: the old copy goes. The search that chose them is not modelled: what keeps
    them safe is checked when each write takes effect (``_apply_conn``). ``shadow``: the CPU's
    shadow of the tables (``projected``). Returns the writes queued, each with its condition."""
    queued = []
    for c, is_c in o.refer(p.conn):
        here = o.and_(p.active, is_c)
        st.require(f"only a known connection's entry is written ({c})", o.or_(o.not_(here), st.get("conn", c, "known")))
        st.require(f"an entry is written in a stage of the table ({c})",
                   o.or_(o.not_(here), o.and_(p.stage >= 0, p.stage < o.stages)))  # fmt: skip
        # The CPU writes only keys of its own table that are no other connection's (its shadow); a
        # move's delete removes the owner's old copy (the new one is placed first).
        key = key_at(o, c, p.stage)
        others = [o.and_(st.get("conn", x, "known"), o.eq(st.get("conn", x, "stage"), p.stage),
                         o.eq(key_at(o, x, p.stage), key)) for x in o.readers(p.stage, key) if x != c]  # fmt: skip
        st.require(f"an entry is written at a key no other connection holds ({c})",
                   o.or_(o.not_(here), o.not_(o.or_(*others))))  # fmt: skip
        # A version an entry's hit gave it holds only while its lookup reaches an entry of that version
        # in the CPU's shadow; otherwise its next miss tells its version (``Cpu._place_unplaced``).
        unplaced = o.eq(st.get("conn", c, "stage"), EMPTY)
        reaches = o.eq(lookup(o, shadow, c)[1], st.get("conn", c, "kver"))
        st.require(f"a version from a hit is placed only while the shadow lookup still gives it ({c})",
                   o.or_(o.not_(here), p.move_delete, o.not_(unplaced), o.not_(st.get("conn", c, "khit")), reaches))
        elsewhere = o.not_(o.eq(st.get("conn", c, "stage"), p.stage))
        st.require(f"a move deletes its old copy ({c})", o.or_(o.not_(here), o.not_(p.move_delete), elsewhere))
        queued.append(_conn_write(o, st, o.ite(p.move_delete, W_MOVE_DELETE, W_INSERT), c, p.stage, here))
        when(o, st, o.and_(here, o.not_(p.move_delete)), p.stage, "conn", c, "stage")
    return queued


def forget(o: Domain, st: Step, f: Forget) -> None:
    """The CPU forgets a connection: it was silent past its limit (idle timeout, or teardown grace
    once it knew of a FIN/RST), its incarnation has forwarded nothing yet, or, unplaced, a new-
    connection or SYN event of it that is not stale is still queued (which teaches the CPU again the
    version its misses use; an end or hit event would not). A placed one loses its entry; later
    learn events of that entry are stale. (The CPU cannot hear a packet the data plane drops
    without a learn event, such as a miss that hits TransitTable after t_seal: an incarnation of
    such packets only may find itself forgotten, and nothing it forwarded relied on the CPU.)"""
    now = st.get("now")
    for c, is_c in o.refer(f.conn):
        here = o.and_(f.active, is_c)
        known, stage = st.get("conn", c, "known"), st.get("conn", c, "stage")
        closing = st.get("conn", c, "ended") > st.get("conn", c, "opened")
        placed = o.not_(o.eq(stage, EMPTY))
        limit = o.ite(o.and_(closing, placed), o.teardown_grace, o.idle_timeout)
        last = st.get("conn", c, "g_last")
        silent = o.or_(o.eq(last, NEVER), now - last > limit)
        # A queued miss event, once read, teaches the CPU the version the connection's misses use now.
        queued = o.or_(*(o.and_(there, o.same(e.conn, c), o.or_(o.eq(e.kind, NEW), o.eq(e.kind, SYN_EV)),
                                o.not_(_stale(o, st, e, c))) for e, there in o.queue(st)))  # fmt: skip
        faulted = o.not_(o.eq(st.get("conn", c, "g_lost"), NEVER))
        st.require(f"only a known connection is forgotten ({c})", o.or_(o.not_(here), known))
        unanchored = o.eq(st.get("conn", c, "g_anchor"), EMPTY)
        st.require(f"a forgotten connection was silent past its limit, forwarded nothing, or is still to be "
                   f"learned ({c})",
                   o.or_(o.not_(here), silent, unanchored, o.and_(o.not_(placed), o.or_(queued, faulted))))  # fmt: skip
        # The CPU reads a placed connection's silence off its entry's idle timer (``Cpu._idle``), and
        # an entry whose insert is still queued has not been idle at all (``Cpu._idle_time``).
        idle = now - o.read(st, "timer", stage, key_at(o, c, stage)) > limit
        st.require(f"a placed connection is forgotten only once its entry took effect and idled past its limit ({c})",
                   o.or_(o.not_(here), o.not_(placed), o.and_(placed_now(o, st, c), idle)))  # fmt: skip
        _conn_write(o, st, W_FORGET_DELETE, c, stage, o.and_(here, placed))
        _unknown(o, st, c, here)
        when(o, st, o.and_(here, placed), now, "conn", c, "expired")
        when(o, st, o.and_(here, placed), stage, "conn", c, "xstage")


FORGOTTEN = {"known": False, "kver": 0, "ksent": NEVER, "khit": False, "opened": NEVER, "ended": NEVER,
             "stage": EMPTY}
"""What the CPU knows of a connection it has forgotten."""


def _unknown(o: Domain, st: Step, c: Any, cond: Any) -> None:
    for name, value in FORGOTTEN.items():
        when(o, st, cond, value, "conn", c, name)


def restart(o: Domain, st: Step) -> None:
    """Fault: the CPU restarts from its journal; what it held in memory only, the unplaced
    connections, is gone (their moves are excused: the oracle's ``fault``), and the update
    protocol's waits start again."""
    now = st.get("now")
    for c in o.conns():
        gone = o.and_(st.get("conn", c, "known"), o.eq(st.get("conn", c, "stage"), EMPTY))
        _unknown(o, st, c, gone)
        when(o, st, gone, maximum(o, st.get("conn", c, "g_lost"), now), "conn", c, "g_lost")
    for v in o.vips():
        when(o, st, st.get("vip", v, "up"), now, "vip", v, "started")
        when(o, st, st.get("vip", v, "up"), now, "vip", v, "requested")


def request(o: Domain, st: Step, vip: Any, cond: Any = True) -> None:
    """An operator asks for a new pool for a VIP (a DIP failure asks for the pool without the DIP);
    the first request of an empty queue is its oldest."""
    for v, is_v in o.refer_vip(vip):
        here = o.and_(cond, is_v)
        requests = st.get("vip", v, "requests")
        when(o, st, o.and_(here, o.eq(requests, 0)), st.get("now"), "vip", v, "oldest")
        when(o, st, here, requests + 1, "vip", v, "requests")


def _referenced(o: Domain, st: Step, v: Any, version: Any) -> Any:
    return o.or_(*(o.and_(st.get("conn", c, "known"), o.eq(o.vip_of(c), v), o.eq(st.get("conn", c, "kver"), version))
                   for c in o.conns()))  # fmt: skip


CPU_ENTRY = ("cphase", "cold", "cnew", "cepoch", "cslot")


def _write_vip(o: Domain, st: Step, v: Any, entry: tuple[Any, ...], cond: Any, releases: Any = EMPTY) -> None:
    for f, value in zip(CPU_ENTRY, entry, strict=True):
        when(o, st, cond, value, "vip", v, f)
    o.pending_append(st, Write(W_VIP, st.get("now"), vip=v, entry=entry, releases=releases), cond)


def has_free_version(o: Domain, st: Step, v: Any) -> Any:
    """Has the CPU a version of v with no pool (``Cpu._free_version``)?"""
    return o.or_(*(o.eq(o.read(st, "cpool", v, version), EMPTY) for version in range(o.versions)))


def start_update(o: Domain, st: Step, s: Start) -> None:
    """t_req (decided): the oldest request of a VIP gets a free version and a free TransitTable
    slot; the pool is written before the VIPTable entry that names it.

    First come, first served across VIPs (``Cpu._start_updates``): no VIP whose oldest request
    is older and waits with no update running may have had a free version, since it would have
    had this slot. (A VIP with no free version does not hold the others back.) Only the queues'
    heads are ordered: the VIP's next request time is a free choice, no older than the one
    served (its queue is in request order) and not in the future, which lets more runs through,
    never fewer, so the check stays sound for the order it is about."""
    now = st.get("now")
    for v, is_v in o.refer_vip(s.vip):
        here = o.and_(s.active, is_v)

        def require(name: str, cond: Any, v: Any = v, here: Any = here) -> None:
            st.require(f"{name} ({v})", o.or_(o.not_(here), cond))

        requests, oldest = st.get("vip", v, "requests"), st.get("vip", v, "oldest")
        require("an update starts on a request", requests > 0)
        for u in o.vips():
            if u != v:
                older = o.and_(st.get("vip", u, "requests") > 0, o.not_(st.get("vip", u, "up")),
                               st.get("vip", u, "oldest") < oldest, has_free_version(o, st, u))  # fmt: skip
                require(f"updates start first come, first served across VIPs, and {u} asked earlier", o.not_(older))
        require("the next waiting request is the next in request order",
                o.ite(o.eq(requests, 1), o.eq(s.next_oldest, NEVER),
                      o.and_(s.next_oldest >= oldest, s.next_oldest <= now)))  # fmt: skip
        require("one update per VIP at a time", o.not_(st.get("vip", v, "up")))
        require("the new version is in range", o.and_(s.version >= 0, s.version < o.versions))
        require("the new version is free", o.eq(o.read(st, "cpool", v, s.version), EMPTY))
        require("the slot is in range", o.and_(s.slot >= 0, s.slot < o.transit_slots))
        for u in o.vips():
            if u != v:
                require("the slot is no other running update's",
                        o.not_(o.and_(st.get("vip", u, "up"), o.eq(st.get("vip", u, "uslot"), s.slot))))  # fmt: skip
        epoch = st.get("epoch") % (o.epochs - 1) + 1
        old = st.get("vip", v, "cold")
        when(o, st, here, requests - 1, "vip", v, "requests")
        when(o, st, here, s.next_oldest, "vip", v, "oldest")
        when(o, st, here, epoch, "epoch")
        o.update(st, "cpool", here, s.pool, v, s.version)
        o.pending_append(st, Write(W_POOL, now, vip=v, version=s.version, pool=s.pool), here)
        for f, value in zip(UPDATE_FIELDS, (True, d.RECORD, old, s.version, epoch, s.slot, now, now), strict=True):
            when(o, st, here, value, "vip", v, f)
        _write_vip(o, st, v, (d.RECORD, old, s.version, epoch, s.slot), here)


def advance_update(o: Domain, st: Step, v: Any) -> None:
    """The CPU moves v's update on as far as ``model.decisions.next_phase`` allows, from what it
    knows: t_exec, t_seal, t_finish (each a VIPTable write)."""
    up, phase, old, new = (st.get("vip", v, f) for f in ("up", "uphase", "uold", "unew"))
    now = st.get("now")
    waited = now >= st.get("vip", v, "started") + o.bound
    unplaced = [(c, o.and_(st.get("conn", c, "known"), o.eq(st.get("conn", c, "stage"), EMPTY), o.eq(o.vip_of(c), v)))
                for c in o.conns()]  # fmt: skip
    before_req = o.or_(*(o.and_(p, st.get("conn", c, "ksent") <= st.get("vip", v, "requested")) for c, p in unplaced))
    old_unplaced = o.or_(*(o.and_(p, o.eq(st.get("conn", c, "kver"), old)) for c, p in unplaced))
    nxt = d.next_phase(o, phase, d.may_exec(o, waited, before_req), d.may_seal(o, old_unplaced),
                       d.may_finish(o, waited, old_unplaced))  # fmt: skip
    changed = o.and_(up, o.not_(o.eq(nxt, phase)))
    finished = o.and_(changed, o.eq(nxt, d.NORMAL))
    epoch, slot = st.get("vip", v, "uepoch"), st.get("vip", v, "uslot")
    _write_vip(o, st, v, (nxt, o.ite(finished, new, old), new, epoch, slot), changed, o.ite(finished, old, EMPTY))
    when(o, st, changed, nxt, "vip", v, "uphase")
    when(o, st, changed, now, "vip", v, "started")
    for f, idle in zip(UPDATE_FIELDS, UPDATE_IDLE, strict=True):
        when(o, st, finished, idle, "vip", v, f)


def reclaim(o: Domain, st: Step, r: Reclaim) -> None:
    """The CPU frees a version's pool (``model.decisions.may_reclaim``), once nothing can refer to
    it: not VIPTable (the CPU's copy), no known connection, and no learn event in flight that would
    teach the CPU a connection using it, except a late one (``late``): the CPU waits out the bound,
    not the channel's broken promise, and the late event's connection is excused as a loss."""
    version = r.version
    for v, is_v in o.refer_vip(r.vip):
        here = o.and_(r.active, is_v)
        in_entry = o.or_(o.eq(version, st.get("vip", v, "cold")), o.eq(version, st.get("vip", v, "cnew")))
        in_flight = o.or_(*(o.and_(there, o.not_(o.eq(e.kind, AUTH)), o.eq(e.version, version), o.not_(overdue(o, e)),
                                   o.or_(*(o.and_(is_c, o.eq(o.vip_of(c), v), o.not_(_stale(o, st, e, c)),
                                                  o.not_(st.get("conn", c, "g_excused")))
                                           for c, is_c in o.refer(e.conn))))
                            for e, there in o.queue(st)))  # fmt: skip
        st.require(f"only an allocated version is reclaimed ({v})",
                   o.or_(o.not_(here), o.not_(o.eq(o.read(st, "cpool", v, version), EMPTY))))  # fmt: skip
        st.require(f"a reclaimed version is unused ({v})",
                   o.or_(o.not_(here), d.may_reclaim(o, in_entry, _referenced(o, st, v, version),
                                                      o.not_(in_flight))))  # fmt: skip
        o.update(st, "cpool", here, EMPTY, v, version)
        o.pending_append(st, Write(W_POOL_DELETE, st.get("now"), vip=v, version=version), here)


# ---------------------------------------------------------------- the CPU's steps: what one decision does


class Place(NamedTuple):
    active: Any
    move_delete: Any
    """False: an insert (a placement, or a move's new copy); True: the delete that ends a move."""
    conn: Any
    stage: Any


class Forget(NamedTuple):
    active: Any
    conn: Any


class Start(NamedTuple):
    active: Any
    vip: Any
    version: Any
    slot: Any
    pool: Any
    next_oldest: Any
    """When the VIP's next waiting request was made (``NEVER``: none waits)."""


class Reclaim(NamedTuple):
    active: Any
    vip: Any
    version: Any


def flush(o: Domain, st: Step, count: int) -> None:
    """The CPU first makes the writes it still had to make (``count``: how many are queued, at most)."""
    for _ in range(count):
        apply_write(o, st, required=False)


def _places(o: Domain, st: Step, places: Sequence[Place]) -> None:
    """Place connections in order. A placed connection's insert is a move's new copy: the next
    decision deletes its old copy, and only that ends a move (a move is never left half done)."""
    shadow = projected(o, st)
    for i, p in enumerate(places):
        for c, is_c in o.refer(p.conn):
            stage = st.get("conn", c, "stage")
            moving = o.and_(p.active, is_c, o.not_(p.move_delete), o.not_(o.eq(stage, EMPTY)))
            nxt = places[i + 1] if i + 1 < len(places) else None
            completed = False if nxt is None else o.and_(nxt.active, nxt.move_delete, o.same(nxt.conn, c),
                                                         o.eq(nxt.stage, stage))  # fmt: skip
            st.require(f"a move's insert is followed by its old copy's delete ({c})", o.or_(o.not_(moving), completed))
            prev = places[i - 1] if i > 0 else None
            started = False if prev is None else o.and_(prev.active, o.not_(prev.move_delete), o.same(prev.conn, c))
            deleting = o.and_(p.active, is_c, p.move_delete)
            st.require(f"a move's delete follows its new copy's insert ({c})", o.or_(o.not_(deleting), started))
        queued = place(o, st, p, shadow)
        if i + 1 < len(places):  # the next placement's shadow has these writes too (built once, not per placement)
            for write, cond in queued:
                o.pending_append(shadow, write, cond)
                apply_write(o, shadow, required=False)


def cpu_learn(o: Domain, st: Step, taken: Sequence[Any], limit: Any, places: Sequence[Place]) -> None:
    """``Cpu.learn``: read learn events (at most ``limit``), then place connections."""
    read_learns(o, st, taken, limit)
    _places(o, st, places)


def cpu_advance(o: Domain, st: Step, taken: Sequence[Any], places: Sequence[Place], order: Sequence[Any],
                starts: Sequence[Start], reclaims: Sequence[Reclaim]) -> None:  # fmt: skip
    """``Cpu.advance``: drain the learn events, place, move every update on (VIPs in ``order``),
    start waiting updates, reclaim versions."""
    read_learns(o, st, taken, None)
    _places(o, st, places)
    for v in order:
        advance_update(o, st, v)
    for s in starts:
        start_update(o, st, s)
    for r in reclaims:
        reclaim(o, st, r)


def cpu_expire(o: Domain, st: Step, taken: Sequence[Any], places: Sequence[Place], forgets: Sequence[Forget],
               reclaims: Sequence[Reclaim]) -> None:  # fmt: skip
    """``Cpu.expire``: drain the learn events, place, forget silent connections, reclaim versions."""
    read_learns(o, st, taken, None)
    _places(o, st, places)
    for f in forgets:
        forget(o, st, f)
    for r in reclaims:
        reclaim(o, st, r)


def operator_update(o: Domain, st: Step, vip: Any, starts: Sequence[Start]) -> None:
    """``Cpu.request_update``: a request, then the updates that can start do."""
    request(o, st, vip)
    for s in starts:
        start_update(o, st, s)


def dip_fail(o: Domain, st: Step, requests: Sequence[tuple[Any, Any]], starts: Sequence[Start]) -> None:
    """``Cpu.dip_failed``: a request for each VIP whose pool holds the DIP, then the updates that can start."""
    for active, vip in requests:
        request(o, st, vip, active)
    for s in starts:
        start_update(o, st, s)


def _stale(o: Domain, st: Step, e: Event, c: Any) -> Any:
    """Sent before c's entry was removed, about that entry: a hit on the removed entry's stage (in
    the tick of the delete too), or a miss before it. About the incarnation the CPU forgot
    (``Cpu.is_stale``)."""
    expired = st.get("conn", c, "expired")
    on_removed = o.and_(o.eq(e.hit_stage, st.get("conn", c, "xstage")), o.or_(e.sent < expired, o.eq(e.sent, expired)))
    return o.and_(o.not_(o.eq(expired, NEVER)), o.ite(e.hit, on_removed, e.sent < expired))


# ---------------------------------------------------------------- writes taking effect


def apply_write(o: Domain, st: Step, required: bool = True) -> None:
    """The oldest pending write takes effect (``required``: there must be one). Each kind's guard
    is what the proofs rest on, checked on the tables packets see now (the CPU checked its writes
    against its own shadow, if at all)."""
    w, there = o.pending_pop(st)
    if required:
        st.require("a write is pending", there)
    for apply, act in ((_apply_conn, o.and_(there, is_conn_write(o, w))),
                       (_apply_pool, o.and_(there, o.or_(o.eq(w.kind, W_POOL), o.eq(w.kind, W_POOL_DELETE)))),
                       (_apply_vip, o.and_(there, o.eq(w.kind, W_VIP)))):  # fmt: skip
        if o.may(act):  # a write of another kind: each guard and effect of this one is void
            apply(o, st, w, act)
    o.update(st, "wl", o.and_(there, o.eq(w.kind, W_WHITELIST)), True, w.src)


def projected(o: Domain, st: Step) -> Step:
    """The tables once every pending write has taken effect: the CPU's shadow of them."""
    after = Step(st.state)
    after.changes = dict(st.changes)
    for _ in o.pending(st):
        apply_write(o, after, required=False)
    return after


def is_conn_write(o: Domain, w: Write) -> Any:
    """Is ``w`` a ConnTable write?"""
    return o.or_(o.eq(w.kind, W_INSERT), o.eq(w.kind, W_MOVE_DELETE), o.eq(w.kind, W_FORGET_DELETE))


def placed_now(o: Domain, st: Step, c: Any) -> Any:
    """Is c's own entry in the table packets see (placed, and its insert not still pending)?"""
    stage = st.get("conn", c, "stage")
    pending = o.or_(*(o.and_(there, o.eq(w.kind, W_INSERT), o.same(w.owner, c), o.eq(w.stage, stage))
                      for w, there in o.pending(st)))  # fmt: skip
    return o.and_(o.not_(o.eq(stage, EMPTY)), o.not_(pending))


def _apply_conn(o: Domain, st: Step, w: Write, act: Any) -> None:
    """A ConnTable write keeps the lookup of every connection the CPU knows
    (``model.decisions.write_keeps_lookup``): its owner's resolves to its own version after an
    insert or a move's delete; any other keeps its result, or (unplaced) starts to hit an entry
    of its own version. A forgotten owner is no longer known. Lookups of connections the CPU
    does not know may change: the residual risk (``excuse_changed``)."""
    insert = o.eq(w.kind, W_INSERT)
    deleting = o.not_(insert)
    readers = o.readers(w.stage, w.key)
    before = {c: lookup(o, st, c)[1] for c in readers}
    old = o.read(st, "entry", w.stage, w.key)
    st.require("an insert takes an empty key", o.or_(o.not_(act), o.not_(insert), o.eq(old, EMPTY)))
    st.require("a delete removes an entry", o.or_(o.not_(act), insert, o.not_(o.eq(old, EMPTY))))
    o.update(st, "entry", act, o.ite(insert, w.version, EMPTY), w.stage, w.key)
    o.update(st, "timer", act, o.ite(insert, st.get("now"), NEVER), w.stage, w.key)
    o.update(st, "evip", act, o.ite(insert, w.vip, EMPTY), w.stage, w.key)
    after = {c: lookup(o, st, c)[1] for c in readers}  # the entry updates are all this write changes
    for c in readers:
        owner = o.same(w.owner, c)
        known = st.get("conn", c, "known")
        keeps = d.write_keeps_lookup(o, owner, o.and_(deleting, o.not_(o.eq(w.kind, W_MOVE_DELETE))), before[c],
                                     after[c], st.get("conn", c, "kver"), placed_now(o, st, c))  # fmt: skip
        st.require(f"a ConnTable write keeps every known lookup ({c})", o.or_(o.not_(act), o.not_(known), keeps))
    excuse_changed(o, st, {c: o.and_(act, o.not_(o.eq(before[c], after[c]))) for c in readers}, w.decided)
    for c, is_owner in o.refer(w.owner):
        # Its learn events sent until now hit the removed entry: stale (``Cpu.applied``).
        gone = o.and_(act, is_owner, o.eq(w.kind, W_FORGET_DELETE), o.not_(st.get("conn", c, "known")))
        when(o, st, gone, maximum(o, st.get("conn", c, "expired"), st.get("now")), "conn", c, "expired")
        when(o, st, gone, w.stage, "conn", c, "xstage")


def _apply_pool(o: Domain, st: Step, w: Write, act: Any) -> None:
    """DIPPoolTable: a version's pool is written while VIPTable does not name it (packets see no
    half-written pool) and removed only once VIPTable no longer does."""
    named = o.or_(*(o.and_(o.eq(u, w.vip), o.or_(o.eq(w.version, st.get("vip", u, "old")),
                                                 o.eq(w.version, st.get("vip", u, "new"))))
                    for u in o.vips()))  # fmt: skip
    st.require("a pool is written or deleted while VIPTable does not name its version",
               o.or_(o.not_(act), o.not_(named)))  # fmt: skip
    value = o.ite(o.eq(w.kind, W_POOL), w.pool, EMPTY)
    for u, is_u in o.refer_vip(w.vip):
        o.update(st, "pool", o.and_(act, is_u), value, u, w.version)


def _apply_vip(o: Domain, st: Step, w: Write, act: Any) -> None:
    """VIPTable: the entry the CPU decided, naming only versions whose pools are in, an epoch the
    TransitTable cells can hold, and a slot no other VIP's update uses. An update's waits run
    from when its VIPTable writes take effect (``Cpu.applied``)."""
    phase, old, new, epoch, slot = w.entry
    for v, is_v in o.refer_vip(w.vip):
        here = o.and_(act, is_v)
        for name, version in (("old", old), ("new", new)):
            st.require(f"a VIPTable entry names a version whose pool is in ({name})",
                       o.or_(o.not_(here), o.not_(o.eq(o.read(st, "pool", v, version), EMPTY))))  # fmt: skip
        running = o.not_(o.eq(phase, d.NORMAL))
        st.require("an update's VIPTable entry carries its epoch, within the register's width",
                   o.or_(o.not_(here), o.not_(running), o.and_(epoch >= 1, epoch < o.epochs,
                                                               o.eq(epoch, st.get("vip", v, "uepoch")))))  # fmt: skip
        for u in o.vips():
            if u != v:
                other = o.and_(o.not_(o.eq(st.get("vip", u, "phase"), d.NORMAL)), o.eq(st.get("vip", u, "slot"), slot))
                st.require("an update records into a TransitTable slot of its own",
                           o.or_(o.not_(here), o.not_(running), o.not_(other)))  # fmt: skip
        for name, value in zip(("phase", "old", "new", "epoch", "slot"), w.entry, strict=True):
            when(o, st, here, value, "vip", v, name)
        ours = o.and_(here, st.get("vip", v, "up"), o.eq(phase, st.get("vip", v, "uphase")),
                      o.eq(new, st.get("vip", v, "unew")))  # fmt: skip
        when(o, st, ours, st.get("now"), "vip", v, "started")
        when(o, st, o.and_(ours, o.eq(phase, d.RECORD)), st.get("now"), "vip", v, "requested")


# ---------------------------------------------------------------- the catalogue of actions

Action = Callable[..., Any]
ACTIONS: dict[str, Action] = {
    "packet": packet,
    "lose": lose,
    "delay": delay,
    "late": late,
    "tick": tick,
    "apply_write": apply_write,
    "cpu_learn": cpu_learn,
    "cpu_advance": cpu_advance,
    "cpu_expire": cpu_expire,
    "operator_update": operator_update,
    "dip_fail": dip_fail,
    "restart": restart,
}
"""Every action of the abstract system, by name: a CPU action is ``flush`` then one of these,
then the first of its writes take effect (``apply_write``)."""
