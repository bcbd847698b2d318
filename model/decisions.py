"""The pipeline's and the update protocol's decisions, written once.

Every decision is a function of an ``Ops`` and plain values. ``CONCRETE`` runs
it on Python values (what the model executes); ``proofs/`` passes a Z3
implementation of the same interface, so the symbolic encoding *is* this code
and cannot drift from it.
"""

from __future__ import annotations

from typing import Any, Protocol

# VIPTable update phases. The paper's t_finish is split in two (SEALED, then
# NORMAL): see ``may_seal`` for why.
NORMAL = 0
RECORD = 1  # t_req .. t_exec: misses use the old version and are recorded in TransitTable
TRANSIT = 2  # t_exec .. t_seal: misses ask TransitTable: hit -> old, miss -> new
SEALED = 3  # t_seal .. t_finish: a miss that hits TransitTable is dropped, not forwarded
PHASE_NAMES = {NORMAL: "normal", RECORD: "record", TRANSIT: "transit", SEALED: "sealed"}

# Outcomes of SYN authentication for a TCP packet from a source not yet whitelisted.
AUTH_PASS = 0
AUTH_SYNACK = 1  # reply with a cookie SYN-ACK
AUTH_WHITELIST = 2  # valid cookie ACK: learn the source, reply RST so the client reconnects
AUTH_DROP = 3


class Ops(Protocol):
    def ite(self, cond: Any, then: Any, other: Any) -> Any: ...
    def and_(self, *args: Any) -> Any: ...
    def or_(self, *args: Any) -> Any: ...
    def not_(self, arg: Any) -> Any: ...
    def eq(self, a: Any, b: Any) -> Any: ...


class ConcreteOps:
    @staticmethod
    def ite(cond: Any, then: Any, other: Any) -> Any:
        return then if cond else other

    @staticmethod
    def and_(*args: Any) -> bool:
        return all(args)

    @staticmethod
    def or_(*args: Any) -> bool:
        return any(args)

    @staticmethod
    def not_(arg: Any) -> bool:
        return not arg

    @staticmethod
    def eq(a: Any, b: Any) -> bool:
        return a == b


CONCRETE = ConcreteOps()


# ---------------------------------------------------------------- data plane


def consults_transit(o: Ops, phase: Any) -> Any:
    """Whether a ConnTable miss asks TransitTable (after t_exec, until t_finish)."""
    return o.or_(o.eq(phase, TRANSIT), o.eq(phase, SEALED))


def miss_version(o: Ops, phase: Any, transit_hit: Any, old_version: Any, new_version: Any) -> Any:
    """The version a packet that misses ConnTable uses.

    Before t_exec the VIP still serves the old version (in NORMAL old == new).
    After t_exec TransitTable separates connections recorded before t_exec
    (old) from those that arrived after (new).
    """
    return o.ite(o.and_(consults_transit(o, phase), o.not_(transit_hit)), new_version, old_version)


def packet_version(
    o: Ops, hit: Any, hit_version: Any, phase: Any, transit_hit: Any, old_version: Any, new_version: Any
) -> Any:
    """The DIP-pool version a packet is forwarded with.

    A ConnTable hit wins, *including a SYN's hit*. The paper says a SYN must
    not trust its hit; what it must not trust is that the entry is its own, so
    it is learned as a collision (``learns_collision``). Its version is kept:
    the hit entry's pool is alive while the entry is, and every later packet of
    the connection hits the same entry until the CPU acts, so any other choice
    would give the SYN and its ACKs different DIPs.
    """
    return o.ite(hit, hit_version, miss_version(o, phase, transit_hit, old_version, new_version))


def drops_sealed(o: Ops, hit: Any, phase: Any, transit_hit: Any) -> Any:
    """A miss that hits TransitTable after t_seal is dropped, unforwarded and unlearned.

    It is either a recorded connection whose learn event is still in flight
    (installed within the learn-delay bound, after which it hits ConnTable)
    or a new connection that is a Bloom false positive (it retransmits and,
    after t_finish, takes the new version). Forwarding it with the old version
    could commit a connection the CPU cannot know about before it clears
    TransitTable.
    """
    return o.and_(o.not_(hit), o.eq(phase, SEALED), transit_hit)


def records_transit(o: Ops, hit: Any, phase: Any) -> Any:
    """Between t_req and t_exec every miss is recorded in TransitTable."""
    return o.and_(o.not_(hit), o.eq(phase, RECORD))


def learns_new(o: Ops, hit: Any, phase: Any, transit_hit: Any) -> Any:
    """A forwarded miss tells the CPU about a connection it has not installed."""
    return o.and_(o.not_(hit), o.not_(drops_sealed(o, hit, phase, transit_hit)))


def learns_collision(o: Ops, hit: Any, is_syn: Any) -> Any:
    """A SYN that hits ConnTable hit someone else's entry (or a closing one of its own)."""
    return o.and_(hit, is_syn)


def auth_outcome(o: Ops, is_syn: Any, is_bare_ack: Any, cookie_ok: Any) -> Any:
    """SYN authentication for a TCP packet from a source not on the whitelist."""
    return o.ite(
        is_syn,
        AUTH_SYNACK,
        o.ite(o.and_(is_bare_ack, cookie_ok), AUTH_WHITELIST, AUTH_DROP),
    )


def transit_contains(o: Ops, cells: list[Any], epoch: Any) -> Any:
    """An epoch-tagged Bloom filter: a cell is set iff it holds the current epoch."""
    return o.and_(*(o.eq(cell, epoch) for cell in cells))


# ---------------------------------------------------------------- switch CPU: table writes and versions


def write_keeps_lookup(
    o: Ops, is_owner: Any, deleting: Any, before: Any, after: Any, own_version: Any, placed: Any
) -> Any:
    """May one ConnTable write change a known connection's lookup from ``before`` to ``after``?

    The connection the write is for must resolve to its own version after an
    insert. Any other known connection must keep its result, except that one
    not yet placed may start to hit an entry of its own version.
    """
    return o.ite(
        is_owner,
        o.or_(deleting, o.eq(after, own_version)),
        o.or_(o.eq(after, before), o.and_(o.not_(placed), o.eq(after, own_version))),
    )


def learn_renews_version(o: Ops, is_end: Any, sent: Any, known_sent: Any, version: Any, known_version: Any,
                         gone: Any) -> Any:  # fmt: skip
    """Does a learn event give an unplaced connection, known with ``known_version`` from an event
    sent at ``known_sent``, the version its packets use now?

    Any later miss or hit says so (a new incarnation, or an aliasing entry that went away).
    Events of one tick are queued in packet order, so the one read later in the same tick
    is taken as the later packet. Not an end event: it carries no version the connection goes
    on to use. Nor a hit on an entry that its lookup no longer reaches in the CPU's shadow
    (``gone``): its packets do not use that version any more, and a delayed event is read
    after a later one, so such a hit may be an earlier packet's, of the previous incarnation
    in the tick the new one began, whose version a miss already replaced.
    """
    return o.and_(o.not_(is_end), o.not_(gone), sent >= known_sent, o.not_(o.eq(version, known_version)))


def may_reclaim(o: Ops, in_vip_entry: Any, referenced: Any, waited_bound: Any) -> Any:
    """A version's pool may be deleted (and the version reused) once nothing can refer to it.

    Not the VIP's old or new version, no learned connection holds it, and a
    learn-delay bound has passed since the last reference went away (a learn
    event carrying it may be in flight that long).
    """
    return o.and_(o.not_(in_vip_entry), o.not_(referenced), waited_bound)


# ---------------------------------------------------------------- update protocol


def may_exec(o: Ops, waited_bound: Any, uninstalled_before_req: Any) -> Any:
    """t_exec: every connection that started before t_req is in ConnTable.

    The CPU drains the visible learn events before it decides. It cannot see
    those still in flight, so it also waits the learn-delay bound after t_req;
    after that, a connection it still does not know sent its last learn event
    after t_req, and so is recorded in TransitTable.
    """
    return o.and_(waited_bound, o.not_(uninstalled_before_req))


def may_seal(o: Ops, uninstalled_old: Any) -> Any:
    """t_seal: every connection known to use the old version is in ConnTable.

    The paper clears TransitTable here (t_finish). That is unsafe: a Bloom
    false positive that arrived just before has its learn event in flight and
    would move to the new version once TransitTable is cleared. Sealing first
    stops new old-version connections (``drops_sealed``); clearing waits one
    learn-delay bound more (``may_finish``).
    """
    return o.not_(uninstalled_old)


def may_finish(o: Ops, waited_bound: Any, uninstalled_old: Any) -> Any:
    """t_finish: no old-version connection can still be unknown to the CPU.

    Learn events sent before t_seal have arrived (the bound), and after t_seal
    no packet is forwarded with the old version by a miss.
    """
    return o.and_(waited_bound, o.not_(uninstalled_old))


def next_phase(o: Ops, phase: Any, exec_ok: Any, seal_ok: Any, finish_ok: Any) -> Any:
    """One step of the two-phase update (with the seal) for one VIP."""
    return o.ite(
        o.eq(phase, RECORD),
        o.ite(exec_ok, TRANSIT, RECORD),
        o.ite(
            o.eq(phase, TRANSIT),
            o.ite(seal_ok, SEALED, TRANSIT),
            o.ite(o.eq(phase, SEALED), o.ite(finish_ok, NORMAL, SEALED), phase),
        ),
    )
