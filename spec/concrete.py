"""The abstract system over Python values, and the refinement mapping α from a model switch.

``ConcreteDomain`` is ``spec.system.Domain`` for one concrete state: the decisions'
``CONCRETE`` Ops, the switch's hash plan as the hash constants, Python tuples for the
learn and write queues. ``alpha`` reads a ``model.switch.Switch`` (never changing it)
into the abstract state's paths (``alpha_after_packet``: again, after a step that changes
only a few of them); the ghost fields (``g_*``) and the time each pending write was
decided are history the checker carries itself.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from typing import Any

from model import decisions as d
from model.config import Config
from model.dataplane import DataPlane, VipEntry
from model.hashing import HashPlan, dip_index
from model.switch import Switch
from model.types import FiveTuple, Vip
from model.writes import FORGET, ConnDelete, ConnInsert, PoolDelete, PoolWrite, TableWrite, VipWrite, WhitelistAdd
from spec import system as sy
from spec.system import EMPTY, NEVER, Event, Step, Write

C = d.CONCRETE
Path = tuple[Any, ...]

DEFAULTS = {
    "entry": EMPTY, "timer": NEVER, "evip": EMPTY, "pool": EMPTY, "cpool": EMPTY, "cell": 0, "wl": False, "cwl": False,
    "known": False, "kver": 0, "ksent": NEVER, "khit": False, "opened": NEVER, "ended": NEVER, "stage": EMPTY,
    "expired": NEVER, "xstage": EMPTY,
    "g_start": NEVER, "g_last": NEVER, "g_closed": False, "g_anchor": EMPTY, "g_excused": False, "g_lost": NEVER,
    "g_cookie": NEVER, "g_tied": False,
    "up": False, "uphase": EMPTY, "uold": EMPTY, "unew": EMPTY, "uepoch": EMPTY, "uslot": EMPTY, "started": NEVER,
    "requested": NEVER, "requests": 0, "oldest": NEVER, "present": False, "phase": d.NORMAL, "old": 0, "new": 0,
    "epoch": 0, "slot": 0, "queue": (), "pending": (),
}  # fmt: skip
"""The value of a path that α leaves out (an empty cell, a connection the CPU does not know)."""
_ABSENT = object()
_KIND_AND_CONN = operator.itemgetter(0, 1)
"""An ``Event``'s (kind, conn)."""


class State(dict[tuple[Any, ...], Any]):
    """Abstract state: paths to values, with every omitted path at its default; the history paths
    (the clock, the ghost) come from ``history``, which α does not read."""

    def __init__(self, history: dict[tuple[Any, ...], Any] | None = None) -> None:
        super().__init__()
        self.history = {} if history is None else history

    def __missing__(self, path: tuple[Any, ...]) -> Any:
        value = self.history.get(path, _ABSENT)
        return default(path) if value is _ABSENT else value


def default(path: tuple[Any, ...]) -> Any:
    """The value of a path α leaves out."""
    value = DEFAULTS.get(path[-1] if path[0] in ("conn", "vip") else path[0], _ABSENT)
    if value is _ABSENT:
        raise KeyError(f"the abstract state has no {path}")
    return value


class ConcreteDomain:
    """``spec.system.Domain`` over Python values, for one step of one switch."""

    ite = staticmethod(C.ite)
    and_ = staticmethod(C.and_)
    or_ = staticmethod(C.or_)
    not_ = staticmethod(operator.not_)  # C's ``not_`` and ``eq``, as builtins (called most of all)
    eq = staticmethod(operator.eq)
    may = staticmethod(bool)

    def __init__(self, config: Config, plan: HashPlan, vips: Sequence[Vip], readers: Readers,
                 before: State | None = None, queue_keys: QueueKeys | None = None) -> None:  # fmt: skip
        self.stages = config.stages
        self.versions = config.versions
        self.epochs = config.epochs
        self.transit_slots = config.transit_slots
        self.bound = config.learn_delay_bound
        self.idle_timeout = config.idle_timeout
        self.teardown_grace = config.teardown_grace
        self.syn_auth = config.syn_auth
        self.plan = plan
        self._vips = vips
        self._readers = readers
        self._before = before
        self._in_scope: list[FiveTuple] | None = None
        self._state_of_step: State = State()
        self._queue_keys = QueueKeys() if queue_keys is None else queue_keys

    def about(self, state: State) -> ConcreteDomain:
        """The domain for lemmas of ``state`` (the keys and cells it holds)."""
        self._state_of_step = state
        return self

    def conns(self) -> Sequence[Any]:
        """Every connection that has sent a packet; for a step from ``before``, only the ones the
        CPU knows there or can learn in the step (``in_scope``)."""
        if self._before is None:
            return self._readers.all
        if self._in_scope is None:
            self._in_scope = in_scope(self._before, self._readers.all)
        return self._in_scope

    def readers(self, stage: Any, key: Any) -> Sequence[Any]:
        return self._readers.of(stage, key)

    def vips(self) -> Sequence[Any]:
        return self._vips

    def refer(self, ref: Any) -> list[tuple[Any, Any]]:
        return [] if ref == EMPTY else [(ref, True)]

    def refer_vip(self, ref: Any) -> list[tuple[Any, Any]]:
        return [] if ref == EMPTY else [(ref, True)]

    @staticmethod
    def same(ref: Any, c: Any) -> bool:
        return ref == c

    def vip_of(self, c: FiveTuple) -> Vip:
        vip = self._readers.vip.get(c)
        return c.vip if vip is None else vip

    def key(self, c: FiveTuple, stage: int) -> tuple[int, int]:
        keys = self._readers.keys.get(c)
        return self.plan.flow(c).key(stage) if keys is None else keys[stage]

    def cells(self, c: FiveTuple) -> Sequence[int]:
        return self.plan.flow(c).bloom

    def dest(self, c: FiveTuple, pool: Any) -> Any:
        return EMPTY if pool == EMPTY else pool[dip_index(self.plan.flow(c).dip_hash, len(pool))]

    def src(self, c: FiveTuple) -> int:
        return c.src_ip

    def cookie(self, c: FiveTuple) -> int:
        return self.plan.cookie(c)

    def read(self, st: Step, table: str, *index: Any) -> Any:
        return st.get(table, *index)

    def update(self, st: Step, table: str, cond: Any, value: Any, *index: Any) -> None:
        if cond:
            st.set(value, table, *index)

    def queue(self, st: Step) -> Sequence[tuple[Event, Any]]:
        return [(e, True) for e in st.get("queue")]

    @staticmethod
    def is_pool(x: Any) -> bool:
        return x == EMPTY or (isinstance(x, tuple) and len(x) > 0)

    def keys_of(self, stage: int) -> Sequence[Any]:
        return [path[2] for path in self._state_of_step if path[0] == "entry" and path[1] == stage]

    def cell_indices(self) -> Sequence[tuple[Any, Any]]:
        return [path[1:] for path in self._state_of_step if path[0] == "cell"]

    @staticmethod
    def ordered(st: Step) -> Sequence[Any]:
        return ()  # Python tuples

    def queued(self, st: Step, kind: int, c: FiveTuple) -> bool:
        return (kind, c) in self._queue_keys.of(st.get("queue"))

    def queue_add(self, st: Step, event: Event, cond: Any) -> None:
        if cond:
            st.set((*st.get("queue"), event), "queue")

    def queue_drop(self, st: Step, gone: Sequence[Any]) -> None:
        st.set(tuple(e for e, g in zip(st.get("queue"), gone, strict=True) if not g), "queue")

    def queue_set(self, st: Step, index: int, event: Event) -> None:
        queue = list(st.get("queue"))
        queue[index] = event
        st.set(tuple(queue), "queue")

    def pending(self, st: Step) -> Sequence[tuple[Write, Any]]:
        return [(w, True) for w in st.get("pending")]

    def pending_append(self, st: Step, write: Write, cond: Any) -> None:
        if cond:
            st.set((*st.get("pending"), write), "pending")

    def pending_pop(self, st: Step) -> tuple[Write, Any]:
        pending = st.get("pending")
        if not pending:
            return Write(EMPTY, NEVER), False
        st.set(pending[1:], "pending")
        return pending[0], True


class QueueKeys:
    """The (kind, conn) of every event of the learn queue last asked about. A checker keeps one from
    step to step: learn queues grow long, a packet only appends to it, and ``queued`` is asked per
    packet, so the keys follow the queue's growth instead of being read from the whole queue again."""

    def __init__(self) -> None:
        self._queue: tuple[Event, ...] = ()
        self._keys: set[tuple[int, FiveTuple]] = set()

    def of(self, queue: tuple[Event, ...]) -> set[tuple[int, FiveTuple]]:
        known = self._queue
        if queue is not known:
            if len(queue) >= len(known) and queue[: len(known)] == known:  # compared in C, mostly by identity
                self._keys.update(map(_KIND_AND_CONN, queue[len(known) :]))
            else:  # a CPU step read events from it (and reads the whole queue itself)
                self._keys = set(map(_KIND_AND_CONN, queue))
            self._queue = queue
        return self._keys


def in_scope(before: State, conns: Sequence[FiveTuple]) -> list[FiveTuple]:
    """The connections of ``conns`` (in order) that the CPU knows in ``before`` or has a learn event
    of queued. Why a step's quantifiers need no others: every quantifier over ``conns()`` in
    ``spec.system`` (``place``, ``restart``, ``_referenced``, ``advance_update``) and ``spec.check``
    (``_expire``) conjoins ``known`` of its connection, and only ``read_learns`` makes a connection
    known, from an event queued before the step (no action both sends learn events and reads them).
    Any other connection stays unknown through the step: its conjunct is false, so leaving it out
    changes no guard's value and no effect (``Refinement.check_alpha`` compares the two on every
    step)."""
    queued = {e.conn for e in before["queue",]}
    return [c for c in conns if c in queued or dict.get(before, ("conn", c, "known"), False)]


# ---------------------------------------------------------------- α


def alpha(switch: Switch, decided: Sequence[int], history: dict[tuple[Any, ...], Any]) -> State:
    """The abstract state of ``switch``. ``decided``: when each pending write was decided, oldest
    first; ``history``: the clock and the ghost."""
    dp, cpu = switch.dataplane, switch.cpu
    s = State(history)
    s["epoch",] = cpu.epoch
    for v, e in dp.vips.items():
        s["vip", v, "present"] = True
        for name, value in zip(("phase", "old", "new", "epoch", "slot"), entry_fields(e), strict=True):
            s["vip", v, name] = value
    for v, e in cpu.vip_entries.items():
        for name, value in zip(("cphase", "cold", "cnew", "cepoch", "cslot"), entry_fields(e), strict=True):
            s["vip", v, name] = value
    for v, up in cpu.updates.items():
        values = (True, up.phase, up.old_version, up.new_version, up.epoch, up.slot, up.started, up.requested)
        for name, value in zip(sy.UPDATE_FIELDS, values, strict=True):
            s["vip", v, name] = value
    for v, queue in cpu.requests.items():
        if queue:
            s["vip", v, "requests"] = len(queue)
            s["vip", v, "oldest"] = queue[0].at
    owners = _entry_owners(switch)
    for stage, table in enumerate(dp.conn):
        for key, entry in table.items():
            s["entry", stage, key] = entry.version
            s["timer", stage, key] = entry.last_hit
            owner = owners.get((stage, key))
            if owner is not None:
                s["evip", stage, key] = owner.vip
    for (v, version), pool in dp.pools.items():
        s["pool", v, version] = pool
    for v, versions in cpu.pools.items():
        for version, pool in versions.items():
            s["cpool", v, version] = pool
    for slot, cells in enumerate(dp.transit):
        if any(cells):  # a slot no update has recorded in is all zeros: most are, read at C speed
            for i, epoch in enumerate(cells):
                if epoch:
                    s["cell", slot, i] = epoch
    for src in dp.whitelist:
        s["wl", src] = True
    for src in cpu.whitelist:
        s["cwl", src] = True
    for ft, conn in cpu.known.items():
        s["conn", ft, "known"] = True
        s["conn", ft, "kver"] = conn.version
        s["conn", ft, "ksent"] = conn.sent
        if conn.version_from_hit:
            s["conn", ft, "khit"] = True
        if conn.opened != NEVER:
            s["conn", ft, "opened"] = conn.opened
        if conn.ended != NEVER:
            s["conn", ft, "ended"] = conn.ended
        if conn.stage is not None:
            s["conn", ft, "stage"] = conn.stage
    for ft, removal in cpu.expired.items():
        s["conn", ft, "expired"] = removal.at
        s["conn", ft, "xstage"] = removal.stage
    s["queue",] = learn_events(dp)
    s["pending",] = tuple(abstract_write(w, t) for w, t in zip(switch.pending, decided, strict=True))
    return s


def learn_events(dp: DataPlane, start: int = 0) -> tuple[Event, ...]:
    """The learn queue as abstract events, from position ``start`` on."""
    return tuple(Event(sy.EVENT_CODES[e.kind], e.ft, e.version, e.sent, e.visible, e.hit,
                       EMPTY if e.hit_stage is None else e.hit_stage)
                 for e in itertools.islice(dp.learn_queue, start, None))  # fmt: skip



def alpha_after_packet(before: State, switch: Switch, ft: FiveTuple | None,
                       hit_key: tuple[int, int, int] | None) -> tuple[State, list[Path]]:  # fmt: skip
    """α of ``switch`` after a step that changed at most the learn queue and, for a packet of
    ``ft``, the idle timer of the entry it hit (``hit_key``) and its Bloom cells in its VIP's
    TransitTable slot (``model.dataplane.process_packet`` writes nothing else; lost and delayed
    learn events change only the queue): ``before`` with those paths read again from ``switch``.
    Returns the state and the paths read (every other path keeps its value)."""
    dp = switch.dataplane
    s = State(before.history)
    s.update(before)
    queue = before["queue",]
    if ft is None or len(dp.learn_queue) < len(queue):
        s["queue",] = learn_events(dp)
    elif len(dp.learn_queue) > len(queue):  # a packet only appends (``LearnChannel.learn``)
        s["queue",] = queue + learn_events(dp, len(queue))
    read: list[Path] = [("queue",)]
    if hit_key is not None:
        stage, *key = hit_key
        path = ("timer", stage, tuple(key))
        s[path] = dp.conn[stage][path[2]].last_hit
        read.append(path)
    entry = None if ft is None else dp.vips.get(ft.vip)
    if ft is not None and entry is not None:
        cells = dp.transit[entry.slot]
        for i in dp.plan.flow(ft).bloom:
            path = ("cell", entry.slot, i)
            if cells[i]:
                s[path] = cells[i]
            else:
                s.pop(path, None)
            read.append(path)
    return s, read


def _entry_owners(switch: Switch) -> dict[tuple[int, tuple[int, int]], FiveTuple | None]:
    """Whom each entry packets find was written for (``Switch.entry_owner`` for every key at once)."""
    owners: dict[tuple[int, tuple[int, int]], FiveTuple | None] = {
        (stage, key): conn.ft for stage, table in enumerate(switch.cpu.table) for key, conn in table.items()
    }
    first: dict[tuple[int, tuple[int, int]], FiveTuple | None] = {}
    for w in switch.pending:
        if isinstance(w, ConnInsert | ConnDelete):
            first.setdefault((w.stage, (w.bucket, w.digest)), w.owner if isinstance(w, ConnDelete) else None)
    owners.update(first)
    return owners


def entry_fields(e: VipEntry) -> tuple[int, int, int, int, int]:
    """A VIPTable entry as the abstract system orders it: (phase, old, new, epoch, slot)."""
    return e.phase, e.old_version, e.new_version, e.epoch, e.slot


def abstract_write(w: TableWrite, decided: int) -> Write:
    match w:
        case ConnInsert(stage, bucket, digest, version, owner):
            return Write(sy.W_INSERT, decided, owner, stage, (bucket, digest), version, owner.vip)
        case ConnDelete(stage, bucket, digest, version, owner, purpose):
            kind = sy.W_FORGET_DELETE if purpose == FORGET else sy.W_MOVE_DELETE
            return Write(kind, decided, owner, stage, (bucket, digest), version, owner.vip)
        case PoolWrite(vip, version, pool):
            return Write(sy.W_POOL, decided, vip=vip, version=version, pool=pool)
        case PoolDelete(vip, version):
            return Write(sy.W_POOL_DELETE, decided, vip=vip, version=version)
        case VipWrite(vip, entry, releases):
            return Write(sy.W_VIP, decided, vip=vip, entry=entry_fields(entry),
                         releases=EMPTY if releases is None else releases)  # fmt: skip
        case WhitelistAdd(src):
            return Write(sy.W_WHITELIST, decided, src=src)
    raise TypeError(f"not a table write: {w!r}")


class Readers:
    """The connections in scope, and for each ConnTable key the ones whose lookup reads it; each
    one's VIP and keys, which the abstract actions read many times a step."""

    def __init__(self, plan: HashPlan, stages: int) -> None:
        self.plan = plan
        self.stages = stages
        self.all: list[FiveTuple] = []
        self.vip: dict[FiveTuple, Vip] = {}
        self.keys: dict[FiveTuple, tuple[tuple[int, int], ...]] = {}
        self._by_key: dict[tuple[int, tuple[int, int]], list[FiveTuple]] = {}

    def add(self, c: FiveTuple) -> None:
        if c in self.keys:
            return
        self.all.append(c)
        self.vip[c] = c.vip
        h = self.plan.flow(c)
        self.keys[c] = tuple(h.key(stage) for stage in range(self.stages))
        for stage, key in enumerate(self.keys[c]):
            self._by_key.setdefault((stage, key), []).append(c)

    def of(self, stage: int, key: tuple[int, int]) -> list[FiveTuple]:
        return self._by_key.get((stage, key), [])
