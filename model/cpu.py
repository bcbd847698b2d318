"""The switch CPU: learning, cuckoo placement, teardown, versions, the update protocol.

The CPU keeps a *shadow* of what it wrote (it never reads the tables back) and
drives a ``Backend``: the model's ``DataPlane`` or, for BMv2, a P4Runtime
client. One control plane, two backends.

Safety of table writes. The CPU knows every connection it has learned (owned
ones have an entry; *unplaced* ones were learned but could not be inserted
yet). Before each single write it checks, over its shadow, that no known
connection's lookup result changes (``_write_is_safe``): an owned connection
keeps resolving to its own version, an unplaced one keeps missing or hits an
entry of its own version. Moves insert the new copy before deleting the old
one, so a lookup never misses in between (BMv2 has no atomic batches), and
a move is made only if its delete, too, keeps every known lookup
(``_move_is_safe``: the mover's or an alias's lookup that went through the old
copy must not fall through to another version in a later stage).
Connections the CPU does not know yet (their learn event is in flight) can
still be captured by an aliasing entry: that is the residual risk of digests,
which no CPU ordering can remove; the oracle reports it as ``digest-alias``.

Crash recovery. The CPU journals its shadow, its updates and queued requests
(with their request times, so first come, first served survives it) before
acting, so a restart loses only what it held in memory between reading learn
events and inserting them: the unplaced connections. Their packets
still miss and learn again; the restart is reported with those connections.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple, Protocol, TypeVar

from model import decisions as d
from model.config import Config
from model.dataplane import LearnEvent, VipEntry
from model.hashing import FlowHashes, HashPlan
from model.types import Dip, FiveTuple, Vip
from model.writes import FORGET, MOVE, ConnDelete, ConnInsert, PoolDelete, PoolWrite, TableWrite, VipWrite, WhitelistAdd

C = d.CONCRETE
MISS = -1

Writes = Mapping[tuple[int, tuple[int, int]], int | None]
"""ConnTable writes not made yet: (stage, (bucket, digest)) -> version (None: a delete)."""
NO_WRITES: Writes = MappingProxyType({})
T = TypeVar("T")


class Backend(Protocol):
    def insert_conn(self, stage: int, bucket: int, digest: int, version: int, now: int) -> None: ...
    def delete_conn(self, stage: int, bucket: int, digest: int) -> None: ...
    def idle_time(self, stage: int, bucket: int, digest: int, now: int) -> int: ...
    def write_pool(self, vip: Vip, version: int, pool: tuple[Dip, ...]) -> None: ...
    def delete_pool(self, vip: Vip, version: int) -> None: ...
    def write_vip(self, vip: Vip, entry: VipEntry) -> None: ...
    def add_whitelist(self, src_ip: int) -> None: ...
    def read_learns(self, now: int, limit: int | None) -> list[LearnEvent]: ...


@dataclass(slots=True)
class Known:
    """A connection the CPU has learned."""

    ft: FiveTuple
    hashes: FlowHashes
    version: int
    sent: int
    """When the packet that taught the CPU about it was sent."""
    opened: int = -1
    """When its latest SYN was sent (-1: it was learned from a non-SYN packet)."""
    ended: int = -1
    """When its latest FIN/RST was sent (-1: none)."""
    stage: int | None = None
    """Its own ConnTable entry's stage; None while unplaced."""
    seen: int = 0
    """Its latest packet as far as the CPU knows, from the idle timers of the entries its
    lookups reach (kept here because such an entry may be another connection's, and go) and,
    while it is unplaced, from reading its learn events."""
    failed_at: int = -1
    """The shadow generation in which placing it last failed: retrying before the shadow
    changes would search the same cuckoo tree to the same failure."""
    version_from_hit: bool = False
    """Its version is the one an entry its packet hit held (an alias's, for a SYN's collision
    event), not what a miss gave it: it holds only while its lookup still reaches that entry."""

    @property
    def closing(self) -> bool:
        """Torn down unless a SYN came after the FIN/RST (port reuse). Comparing send
        times, not arrival order, keeps this right when learn events are reordered."""
        return self.ended > self.opened


class Request(NamedTuple):
    """An operator's (or a DIP failure's) request for a new pool, waiting to start."""

    pool: tuple[Dip, ...]
    at: int
    """When it was made: updates start in this order across VIPs."""


class Removal(NamedTuple):
    """The removal of a connection's entry the CPU decided on (its idle timer ran out)."""

    at: int
    """When it took effect, or was decided while still queued."""
    stage: int
    """The stage of the removed entry: only a hit there was a hit on it."""


class Update(NamedTuple):
    old_version: int
    new_version: int
    epoch: int
    slot: int
    phase: int
    started: int
    """When the current phase began (t_req, t_exec, t_seal)."""
    requested: int
    """t_req."""


@dataclass
class CpuLog:
    """What one CPU action decided, for the observation (its writes are observed as they are applied)."""

    learned: list[tuple[str, FiveTuple, int]] = field(default_factory=list)
    lost: list[tuple[FiveTuple, int]] = field(default_factory=list)
    failed_dips: list[Dip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Move(NamedTuple):
    ft: FiveTuple
    stage: int


class Dead(NamedTuple):
    """A placement search that failed: this much depth left, these connections busy."""

    depth: int
    busy: frozenset[FiveTuple]


@dataclass
class SearchMemo:
    """What placement searches found out about one state of the shadow. Searches write
    nothing, so it holds until a placement writes (the generation moves) or a connection
    is learned: ``_place_unplaced`` keeps one for a pass, in which nothing is learned, and
    starts a new one when the generation moves."""

    generation: int
    dead: dict[FiveTuple, list[Dead]] = field(default_factory=dict)
    """Searches that failed: with no more depth and no fewer connections free to move,
    the same search fails again."""
    fits: dict[tuple[FiveTuple, int], bool] = field(default_factory=dict)
    blockers: dict[tuple[FiveTuple, int], list[Known]] = field(default_factory=dict)


def _remembered(cache: dict[tuple[FiveTuple, int], T], conn: Known, stage: int, find: Callable[[Known, int], T]) -> T:
    """``find(conn, stage)``, computed once per search memo."""
    key = (conn.ft, stage)
    if key not in cache:
        cache[key] = find(conn, stage)
    return cache[key]


@dataclass
class Cpu:
    config: Config
    plan: HashPlan
    backend: Backend
    known: dict[FiveTuple, Known] = field(default_factory=dict)
    table: list[dict[tuple[int, int], Known]] = field(default_factory=list)
    load: list[dict[int, int]] = field(default_factory=list)
    watchers: dict[tuple[int, int, int], set[FiveTuple]] = field(default_factory=dict)
    """(stage, bucket, digest) -> known connections whose lookup reads that key."""
    vip_entries: dict[Vip, VipEntry] = field(default_factory=dict)
    pools: dict[Vip, dict[int, tuple[Dip, ...]]] = field(default_factory=dict)
    refs: dict[tuple[Vip, int], int] = field(default_factory=dict)
    released: dict[tuple[Vip, int], int] = field(default_factory=dict)
    updates: dict[Vip, Update] = field(default_factory=dict)
    requests: dict[Vip, deque[Request]] = field(default_factory=dict)
    """Per VIP, its waiting requests, oldest first (journaled, with their times)."""
    whitelist: set[int] = field(default_factory=set)
    expired: dict[FiveTuple, Removal] = field(default_factory=dict)
    """The entry removal of each connection the CPU no longer knows: older learn events are about that past."""
    epoch: int = 0
    generation: int = 0
    """Counts the changes that can let a failed placement succeed: writes to the shadow table,
    forgotten connections, new versions of unplaced ones. Learning a connection is not one:
    it only adds a lookup that every write must keep."""
    pending: deque[TableWrite] | None = None
    """Writes made but not yet applied, oldest first; None: each write is applied as it is made."""

    def __post_init__(self) -> None:
        # Derived from ``known`` (so not a field, and rebuilt by whoever constructs a copy): the
        # connections still unplaced, in the order learned. A connection placed once stays placed
        # until forgotten, so learning, placing and forgetting keep it.
        self._unplaced = {ft: c for ft, c in self.known.items() if c.stage is None}

    @classmethod
    def boot(
        cls, config: Config, plan: HashPlan, backend: Backend, vips: dict[Vip, tuple[Dip, ...]], queued: bool = False
    ) -> Cpu:
        """The CPU after writing the initial pools and VIPTable (before any packet). ``queued``: from
        then on its writes wait in ``pending`` for whoever applies them (the model's switch)."""
        cpu = cls(config, plan, backend)
        cpu.table = [{} for _ in range(config.stages)]
        cpu.load = [{} for _ in range(config.stages)]
        for vip, pool in vips.items():
            cpu.pools[vip] = {0: pool}
            cpu._emit(PoolWrite(vip, 0, pool), 0)
            cpu._write_vip(vip, VipEntry(0, 0), 0)
            cpu.requests[vip] = deque()
        if queued:
            cpu.pending = deque()
        return cpu

    # ------------------------------------------------------------ writes

    def _emit(self, write: TableWrite, now: int) -> None:
        if self.pending is None:
            write.apply(self.backend, now)
            self.applied(write, now)
        else:
            self.pending.append(write)

    def apply_next(self, clock: Callable[[], int]) -> TableWrite:
        """The oldest queued write takes effect: sent at ``clock()``, and counted as in effect from
        ``clock()`` read again once the backend has it (on a real switch, after the write's latency)."""
        assert self.pending is not None, "a CPU booted with queued=False applies its writes as it makes them"
        write = self.pending.popleft()
        self._keep_hits(write, clock())
        write.apply(self.backend, clock())
        self.applied(write, clock())
        return write

    def _keep_hits(self, write: TableWrite, now: int) -> None:
        """As a queued delete takes effect, the hits its entry took since the CPU decided it are
        kept too (``_delete`` kept those before): packets between the two kept hitting it (fuzz
        seed 101). They are the hits of the connections whose lookups the switch's table, as it
        is before the delete, sends to that entry."""
        if not isinstance(write, ConnDelete):
            return
        at = (write.stage, write.bucket, write.digest)

        def reaches(watcher: Known) -> bool:
            keys = ((stage, *watcher.hashes.key(stage)) for stage in range(self.config.stages))
            return next((k for k in keys if k == at or self._in_switch(k)), None) == at

        self._carry_hits(at, now - self.backend.idle_time(*at, now), reaches)

    def _carry_hits(self, at: tuple[int, int, int], last_hit: int, reaches: Callable[[Known], bool]) -> None:
        """The entry at ``at`` is about to go: the connections whose lookups ``reaches`` it keep its
        last hit as their own latest packet."""
        for ft in self.watchers.get(at, ()):
            watcher = self.known[ft]
            if reaches(watcher):
                watcher.seen = max(watcher.seen, last_hit)

    def _queued_at(self, at: tuple[int, int, int], first: bool) -> TableWrite | None:
        """The first (or last) queued ConnTable write at ``at``."""
        writes = self.pending or ()
        return next((w for w in (writes if first else reversed(writes))
                     if isinstance(w, ConnInsert | ConnDelete) and w.at == at), None)  # fmt: skip

    def _in_switch(self, at: tuple[int, int, int]) -> bool:
        """Does the switch's ConnTable hold an entry at ``at`` now? The shadow holds what it will
        once the queued writes take effect; the first queued write at ``at`` says what is there."""
        first = self._queued_at(at, first=True)
        if first is not None:
            return isinstance(first, ConnDelete)
        stage, bucket, digest = at
        return (bucket, digest) in self.table[stage]

    def applied(self, write: TableWrite, now: int) -> None:
        """``write`` took effect at ``now``. The update protocol's waits run from when a VIPTable
        write takes effect, not from when it was decided: packets in between still saw the
        previous phase (a miss before RECORD was not recorded; a false positive before SEALED
        was forwarded with the old version)."""
        if isinstance(write, ConnDelete) and write.purpose == FORGET:
            # Until the entry is gone its hits still send learn events carrying its version:
            # they are stale, and the version is in use.
            removed = self.expired.get(write.owner)
            if write.owner not in self.known and (removed is None or removed.at <= now):
                self.expired[write.owner] = Removal(now, write.stage)
            key = (write.owner.vip, write.version)
            if not self.refs.get(key, 0):
                self.released[key] = max(self.released.get(key, now), now)
        if not isinstance(write, VipWrite):
            return
        up = self.updates.get(write.vip)
        entry = write.entry
        if up is not None and (entry.phase, entry.new_version) == (up.phase, up.new_version):
            requested = now if entry.phase == d.RECORD else up.requested
            self.updates[write.vip] = up._replace(started=now, requested=requested)
        if write.releases is not None:
            key = (write.vip, write.releases)
            self.released[key] = max(self.released.get(key, now), now)

    def _idle_time(self, stage: int, key: tuple[int, int], now: int) -> int:
        """An entry whose insert is still queued has not been idle at all."""
        if self.pending and isinstance(self._queued_at((stage, *key), first=False), ConnInsert):
            return 0
        return self.backend.idle_time(stage, *key, now)

    # ------------------------------------------------------------ learning

    def learn(self, now: int, limit: int | None, log: CpuLog) -> None:
        """Take in the whole batch, then place. Placing as events come would let an
        earlier event's write capture a connection whose event is later in the same
        batch, before the CPU registered it; a later event may also change the
        version of a connection still unplaced."""
        for event in self.backend.read_learns(now, limit):
            log.learned.append((event.kind, event.ft, event.sent))
            self._on_learn(event, now, log)
        self._place_unplaced(now, log)

    def _on_learn(self, event: LearnEvent, now: int, log: CpuLog) -> None:
        ft = event.ft
        if event.kind == "auth":
            if ft.src_ip not in self.whitelist:
                self.whitelist.add(ft.src_ip)
                self._emit(WhitelistAdd(ft.src_ip), now)
            return
        if self.is_stale(event):
            log.notes.append(f"ignored a stale {event.kind} learn event of {ft}")
            return
        conn = self.known.get(ft)
        if conn is None:
            # Even from an end event (a FIN/RST that hit another connection's entry,
            # or whose first learn event is late or lost): known, its lookups are
            # protected by the write checks until its grace runs out.
            conn = Known(ft, self.plan.flow(ft), event.version, event.sent, version_from_hit=event.hit)
            self.known[ft] = conn
            self._unplaced[ft] = conn
            self.expired.pop(ft, None)
            self._ref(ft.vip, conn.version, +1, event.sent)
            self._watch(conn, True)
        elif conn.stage is None and d.learn_renews_version(
            C, event.kind == "end", event.sent, conn.sent, event.version, conn.version,
            event.hit and self._resolve(conn.hashes) != event.version,
        ):
            # Still unplaced, its packets now use another version: install what they use now
            # (of one tick: tests/data/same-tick-miss-after-an-alias-hit.json).
            self._ref(ft.vip, conn.version, -1, event.sent)
            self._ref(ft.vip, event.version, +1, event.sent)
            conn.version, conn.sent = event.version, event.sent
            conn.version_from_hit = event.hit
            self.generation += 1
        elif event.kind != "end" and conn.stage is None and event.sent >= conn.sent and not event.hit:
            # A miss of it with the version it has: that is what its packets use now.
            conn.version_from_hit = False
        if conn.stage is None:
            # Its packets miss, and the learning filter may have hidden those sent until now.
            conn.seen = max(conn.seen, now)
        if event.kind == "end":
            conn.ended = max(conn.ended, event.sent)
        elif event.kind in ("syn", "collision"):
            # A SYN of a known connection is a retransmission or a new incarnation
            # reusing the 5-tuple; either way the entry and its version stay.
            conn.opened = max(conn.opened, event.sent)

    def is_stale(self, event: LearnEvent) -> bool:
        """Sent before its connection's entry was removed (the CPU decided to remove it before,
        from the entry's idle timer), about that entry: its version is stale for the incarnation
        that followed. A hit counts only on the removed entry's stage; a hit on another entry (an
        alias) says which version the connection's packets use while the CPU does not know it
        (tests/data/alias-hit-is-not-stale.json). In the tick of the delete, times do not
        order a packet and the delete: the event says whether its packet hit the entry (before the
        delete) or missed."""
        removed = self.expired.get(event.ft)
        if removed is None:
            return False
        if event.hit:
            return event.hit_stage == removed.stage and event.sent <= removed.at
        return event.sent < removed.at

    def _place_unplaced(self, now: int, log: CpuLog) -> None:
        # ``now``: an entry's idle timer starts at insertion, not when its (older) packet
        # was sent; packets that missed while the connection was pending did not refresh it.
        memo = SearchMemo(self.generation)
        for conn in list(self._unplaced.values()):
            if conn.version_from_hit and self._resolve(conn.hashes) != conn.version:
                # The entry that gave it its version is gone (or going): its packets miss and use
                # another version, which their learn events will tell. Placed with the old one, it
                # would move (the walk-1112 trace in tests/data/alias-gone-before-placement.json).
                continue
            if conn.failed_at != self.generation:
                if memo.generation != self.generation:
                    memo = SearchMemo(self.generation)
                self._place(conn, now, log, memo)

    def unplaced(self, vip: Vip) -> list[Known]:
        return [c for c in self._unplaced.values() if c.ft.vip == vip]

    # ------------------------------------------------------------ shadow lookups

    def _watch(self, conn: Known, add: bool) -> None:
        if not add:
            self.generation += 1
        for key in conn.hashes.stage_keys:
            if add:
                self.watchers.setdefault(key, set()).add(conn.ft)
            else:
                watching = self.watchers[key]
                watching.discard(conn.ft)
                if not watching:
                    del self.watchers[key]

    def _resolve(self, h: FlowHashes, writes: Writes = NO_WRITES) -> int:
        """The version a lookup of ``h`` gets from the shadow table (MISS if none),
        as if each ``(stage, key)`` of ``writes`` held its version (None: empty)."""
        digest = h.digest
        for stage, table in enumerate(self.table):
            key = (h.buckets[stage], digest)
            if writes and (stage, key) in writes:
                written = writes[(stage, key)]
                if written is not None:
                    return written
                continue
            entry = table.get(key)
            if entry is not None:
                return entry.version
        return MISS

    def _keeps_lookups(
        self,
        watched: tuple[int, tuple[int, int]],
        writes: Writes,
        owner: FiveTuple | None,
        deleting: bool,
    ) -> bool:
        """Would ``writes`` keep the lookup of every known connection that reads ``watched``?"""
        stage, key = watched
        for ft in self.watchers.get((stage, *key), ()):
            conn = self.known[ft]
            before = self._resolve(conn.hashes)
            after = self._resolve(conn.hashes, writes)
            if not d.write_keeps_lookup(C, ft == owner, deleting, before, after, conn.version, conn.stage is not None):
                return False
        return True

    def _write_is_safe(self, stage: int, key: tuple[int, int], version: int | None, owner: FiveTuple) -> bool:
        """Would writing ``version`` (None: deleting) at ``(stage, key)`` keep every known lookup?"""
        return self._keeps_lookups((stage, key), {(stage, key): version}, owner, version is None)

    def _move_is_safe(self, conn: Known, stage: int, key: tuple[int, int]) -> bool:
        """Would the whole move (new copy in, old one out) keep every known lookup, the mover's included?

        The delete of the old copy is the one write whose owner loses an entry:
        a lookup that went through it (the mover's own, or an alias's) falls
        through to the next matching stage, which may hold another version.
        """
        if conn.stage is None:
            return True
        old_key = conn.hashes.key(conn.stage)
        moved = {(stage, key): conn.version, (conn.stage, old_key): None}
        return self._keeps_lookups((conn.stage, old_key), moved, None, True)

    # ------------------------------------------------------------ placement (cuckoo)

    def _place(self, conn: Known, now: int, log: CpuLog, memo: SearchMemo) -> None:
        # Busy: the placed connections this plan moves; ``conn`` is unplaced and blocks no one.
        plan = self._plan(conn, self.config.cuckoo_depth, frozenset(), memo)
        if plan is None:
            conn.failed_at = self.generation
            return
        for move in plan:
            if not self._move(self.known[move.ft], move.stage, now, memo):
                log.notes.append(f"placement of {conn.ft} stopped: a planned move became unsafe")
                return

    def _fits(self, conn: Known, stage: int) -> bool:
        bucket, digest = conn.hashes.key(stage)
        return (
            self.load[stage].get(bucket, 0) < self.config.slots_per_bucket
            and (bucket, digest) not in self.table[stage]
            and self._write_is_safe(stage, (bucket, digest), conn.version, conn.ft)
            and self._move_is_safe(conn, stage, (bucket, digest))
        )

    def _plan(self, conn: Known, depth: int, busy: frozenset[FiveTuple], memo: SearchMemo) -> list[Move] | None:
        """Moves (deepest first) that end with ``conn`` in a stage of its own."""
        if any(depth <= old.depth and old.busy <= busy for old in memo.dead.get(conn.ft, ())):
            return None
        plan = self._search(conn, depth, busy, memo)
        if plan is None:
            memo.dead.setdefault(conn.ft, []).append(Dead(depth, busy))
        return plan

    def _search(self, conn: Known, depth: int, busy: frozenset[FiveTuple], memo: SearchMemo) -> list[Move] | None:
        stages = [s for s in range(self.config.stages) if s != conn.stage]
        for stage in stages:
            if _remembered(memo.fits, conn, stage, self._fits):
                return [Move(conn.ft, stage)]
        if depth == 0:
            return None
        for stage in stages:
            for blocker in _remembered(memo.blockers, conn, stage, self._blockers):
                if blocker.ft in busy:
                    continue
                sub = self._plan(blocker, depth - 1, busy | {blocker.ft}, memo)
                if sub is not None:
                    return [*sub, Move(conn.ft, stage)]
        return None

    def _blockers(self, conn: Known, stage: int) -> list[Known]:
        """Entries whose moving away could let ``conn`` into ``stage``."""
        bucket, digest = conn.hashes.key(stage)
        holder = self.table[stage].get((bucket, digest))
        if holder is not None:
            return [holder]
        earlier = [
            self.table[s][conn.hashes.key(s)]
            for s in range(stage)
            if conn.hashes.key(s) in self.table[s] and self.table[s][conn.hashes.key(s)].version != conn.version
        ]
        if earlier:
            return earlier[:1]
        if self.load[stage].get(bucket, 0) >= self.config.slots_per_bucket:
            return [c for (b, _), c in self.table[stage].items() if b == bucket]
        return []

    def _fits_now(self, conn: Known, stage: int, memo: SearchMemo) -> bool:
        """``_fits``, as ``memo`` found it while the shadow is still the one it searched: a plan's
        first move (most plans have one) is checked again only after an earlier move wrote."""
        if memo.generation == self.generation:
            return _remembered(memo.fits, conn, stage, self._fits)
        return self._fits(conn, stage)

    def _move(self, conn: Known, stage: int, now: int, memo: SearchMemo) -> bool:
        """Insert ``conn`` at ``stage``, then delete its old entry: never a window without one."""
        if not self._fits_now(conn, stage, memo):
            return False
        old_stage = conn.stage
        self._insert(conn, stage, now)
        if old_stage is not None:
            self._delete(conn, old_stage, now, MOVE)
        return True

    def _insert(self, conn: Known, stage: int, now: int) -> None:
        key = conn.hashes.key(stage)
        self._emit(ConnInsert(stage, *key, conn.version, conn.ft), now)
        self.generation += 1
        self.table[stage][key] = conn
        self.load[stage][key[0]] = self.load[stage].get(key[0], 0) + 1
        if conn.stage is None:
            del self._unplaced[conn.ft]
        conn.stage = stage

    def _delete(self, conn: Known, stage: int, now: int, purpose: str) -> None:
        key = conn.hashes.key(stage)
        # The entry's idle timer holds the hits of every connection whose lookup reaches it
        # (an alias's too, and a move deletes as well): keep them before the entry goes.
        self._carry_hits((stage, *key), now - self._idle_time(stage, key, now), lambda w: self._reached(w) == stage)
        self._emit(ConnDelete(stage, *key, conn.version, conn.ft, purpose), now)
        self.generation += 1
        del self.table[stage][key]
        self.load[stage][key[0]] -= 1

    # ------------------------------------------------------------ teardown and expiry

    def expire(self, now: int, log: CpuLog) -> None:
        """Drain the learn events, then remove idle and torn-down entries, and forget
        unplaced connections that went silent.

        Draining first lets a SYN that reuses a closing connection's 5-tuple
        cancel the teardown; one still in flight was sent less than a
        learn-delay bound ago, so its entry is not idle for ``teardown_grace``
        (which the config keeps at least that long).

        An unplaced connection would otherwise be known for ever while its bucket
        stays full, and hold its VIP's update and its version. It is forgotten after
        ``idle_timeout`` plus a learn-delay bound of silence: a packet whose learn
        event is still in flight then starts a new incarnation, and that event,
        read later, teaches the CPU the new one (so it is not marked expired).
        """
        self.learn(now, None, log)
        # Activity before any deletion: deleting one entry must not hide the hits another connection's
        # packets made on it. Only the timers of connections that may go need reading: a timer only
        # moves forward while its entry stays, an entry inserted ahead of a lookup starts at its
        # insertion, later than every hit the lookup made before, and a deleted entry's hits are
        # kept by the lookups it leaves (``_carry_hits``); so reading a timer later gives what reading
        # it now would. Reading every connection's was a third of a 1M-packet bench run.
        # Most are silent for less than the shortest limit, and then may not go whatever their state:
        # comparing ``seen`` first spares them the call (expiry's first pass was 5% of a bench run).
        silent_before = now - min(self.config.idle_timeout, self.config.teardown_grace)
        may_go = [c for c in self.known.values() if c.seen < silent_before and self._may_go(c, now)]
        for conn in may_go:
            idle = self._idle(conn, now)
            if idle is not None:
                conn.seen = max(conn.seen, now - idle)
        for conn in [c for c in self._unplaced.values() if self._may_go(c, now) and not self._unheard(c)]:
            self._forget(conn, now)
            log.notes.append(f"forgot {conn.ft}: unplaced and silent since {conn.seen}")
        # Only those that may go (in learn order): nothing here is learned or placed, and ``seen``
        # only moves forward, so a connection that could not go at the first test cannot now.
        for conn in may_go:
            if conn.stage is None or not self._may_go(conn, now):
                continue
            if not self._write_is_safe(conn.stage, conn.hashes.key(conn.stage), None, conn.ft):
                log.notes.append(f"kept {conn.ft}: an unplaced connection still relies on its entry")
                continue
            self.remove(conn, now)
        self._reclaim(now, log)

    def remove(self, conn: Known, now: int) -> None:
        """Delete a placed connection's entry and forget it; its learn events sent until then are stale."""
        assert conn.stage is not None
        self._delete(conn, conn.stage, now, FORGET)
        self._forget(conn, now)
        self.expired[conn.ft] = Removal(now, conn.stage)

    def _may_go(self, conn: Known, now: int) -> bool:
        """Silent for longer than it may be as far as the CPU knows (``seen``): a placed connection for
        ``idle_timeout`` (``teardown_grace`` once torn down), an unplaced one also for a learn-delay bound."""
        if conn.stage is None:
            return now - conn.seen > self.config.idle_timeout + self.config.learn_delay_bound
        return now - conn.seen > (self.config.teardown_grace if conn.closing else self.config.idle_timeout)

    def _unheard(self, conn: Known) -> bool:
        """Whether ``conn``'s silence cannot be heard: its VIP's update is sealed, so its packets
        miss and, when they hit TransitTable, are dropped without a learn event (``drops_sealed``).
        Those of a recorded connection of the old version always do; any other's do on a Bloom
        false positive, which the CPU cannot tell apart (an alias that held another version and
        was released, tests/data/sealed-released-alias-is-not-forgotten.json). Forgetting an
        old-version one would let the update finish and its next packet take the new version
        (tests/data/sealed-unplaced-is-not-forgotten.json); it holds the update until it is
        placed, as it would if it were heard. Any other is kept until the seal ends, when its
        misses are learned again."""
        up = self.updates.get(conn.ft.vip)
        return up is not None and up.phase == d.SEALED

    def _idle(self, conn: Known, now: int) -> int | None:
        """How long ``conn`` has been silent as far as its entries tell (None: its lookup
        misses): its packets refresh the entry its lookup reaches, which may be another
        connection's entry of the same version in an earlier stage than its own, if any."""
        reached = self._reached(conn)
        if reached is None:
            return None
        idle = self._idle_time(reached, conn.hashes.key(reached), now)
        if conn.stage is None or conn.stage == reached:
            return idle
        return min(idle, self._idle_time(conn.stage, conn.hashes.key(conn.stage), now))

    def _reached(self, conn: Known) -> int | None:
        """The stage whose entry ``conn``'s lookup reaches (None: it misses)."""
        digest, buckets = conn.hashes.digest, conn.hashes.buckets
        for stage, table in enumerate(self.table):
            if (buckets[stage], digest) in table:
                return stage
        return None

    def _forget(self, conn: Known, now: int) -> None:
        del self.known[conn.ft]
        self._unplaced.pop(conn.ft, None)
        self._watch(conn, False)
        self._ref(conn.ft.vip, conn.version, -1, now)

    # ------------------------------------------------------------ versions

    def _ref(self, vip: Vip, version: int, delta: int, now: int) -> None:
        key = (vip, version)
        self.refs[key] = self.refs.get(key, 0) + delta
        if self.refs[key] == 0:
            self.released[key] = now

    def _reclaim(self, now: int, log: CpuLog) -> None:
        """Free versions no entry, no learned connection and no in-flight learn event can refer to.

        A learn event carries the version its packet used, which was live when
        it was sent; it arrives within the learn-delay bound, so a version is
        freed only a bound after its last reference went away: after the last
        entry holding it is deleted and VIPTable stops naming it, as those writes
        take effect (``applied``), since packets in between still use it.
        """
        for vip, versions in self.pools.items():
            entry = self.vip_entries[vip]
            for version in list(versions):
                waited = now >= self.released.get((vip, version), now) + self.config.learn_delay_bound
                in_entry = version in (entry.old_version, entry.new_version)
                if not d.may_reclaim(C, in_entry, self.refs.get((vip, version), 0) > 0, waited):
                    continue
                del versions[version]
                self._emit(PoolDelete(vip, version), now)
                log.notes.append(f"reclaimed version {version} of {vip}")

    def _free_version(self, vip: Vip) -> int | None:
        used = self.pools[vip]
        entry = self.vip_entries[vip]
        for step in range(1, self.config.versions + 1):
            candidate = (entry.new_version + step) % self.config.versions
            if candidate not in used:
                return candidate
        return None

    # ------------------------------------------------------------ the update protocol

    def request_update(self, vip: Vip, pool: tuple[Dip, ...], now: int, log: CpuLog) -> None:
        self.requests[vip].append(Request(pool, now))
        self._start_updates(now, log)

    def waiting(self) -> list[Vip]:
        """The VIPs with a request waiting and no update running, oldest request first (ties in
        VIP order of boot: a stable sort)."""
        idle = [vip for vip, queue in self.requests.items() if queue and vip not in self.updates]
        return sorted(idle, key=lambda vip: self.requests[vip][0].at)

    def _start_updates(self, now: int, log: CpuLog) -> None:
        """Start waiting updates first come, first served across VIPs. TransitTable slots are
        shared, so once none is free no later request may start either. A free version is the
        VIP's own resource: a request whose VIP has none does not hold back the other VIPs
        (strict FCFS would stall every VIP behind one whose versions stay in use until its
        connections expire); it keeps its place and takes the next free slot once it has one."""
        for vip in self.waiting():
            version = self._free_version(vip)
            if version is None:
                log.notes.append(f"update of {vip} waits: all {self.config.versions} versions are in use")
                continue
            busy = {up.slot for up in self.updates.values()}
            slot = next((s for s in range(self.config.transit_slots) if s not in busy), None)
            if slot is None:
                slots = self.config.transit_slots
                log.notes.append(f"update of {vip} waits: all {slots} TransitTable slots are in use")
                continue
            pool = self.requests[vip].popleft().pool
            self.pools[vip][version] = pool
            self._emit(PoolWrite(vip, version, pool), now)
            self.epoch = self.epoch % (self.config.epochs - 1) + 1
            old = self.vip_entries[vip].old_version
            self.updates[vip] = Update(old, version, self.epoch, slot, d.RECORD, now, now)
            self._write_vip(vip, VipEntry(old, version, d.RECORD, self.epoch, slot), now)

    def advance(self, now: int, log: CpuLog) -> None:
        """Drain the learn events, then move every update on as far as its guards allow."""
        self.learn(now, None, log)
        for vip, up in list(self.updates.items()):
            waited = now >= up.started + self.config.learn_delay_bound
            unplaced = self.unplaced(vip)
            # <=: a packet in the same tick as t_req may have come before it, unrecorded.
            before_req = any(c.sent <= up.requested for c in unplaced)
            old_unplaced = any(c.version == up.old_version for c in unplaced)
            phase = d.next_phase(
                C,
                up.phase,
                d.may_exec(C, waited, before_req),
                d.may_seal(C, old_unplaced),
                d.may_finish(C, waited, old_unplaced),
            )
            if phase == up.phase:
                continue
            if phase == d.NORMAL:
                del self.updates[vip]
                entry = VipEntry(up.new_version, up.new_version, d.NORMAL, up.epoch, up.slot)
                self._write_vip(vip, entry, now, releases=up.old_version)
                self.released[(vip, up.old_version)] = now
            else:
                self.updates[vip] = up._replace(phase=phase, started=now)
                self._write_vip(vip, VipEntry(up.old_version, up.new_version, phase, up.epoch, up.slot), now)
        self._start_updates(now, log)
        self._reclaim(now, log)

    def _write_vip(self, vip: Vip, entry: VipEntry, now: int, releases: int | None = None) -> None:
        self.vip_entries[vip] = entry
        self._emit(VipWrite(vip, entry, releases), now)

    # ------------------------------------------------------------ faults

    def restart(self, now: int, log: CpuLog) -> None:
        for conn in list(self._unplaced.values()):
            log.lost.append((conn.ft, now))
            self._forget(conn, now)
        # Bound waits start again: the CPU cannot tell which learn events it had seen.
        self.updates = {vip: up._replace(started=now, requested=now) for vip, up in self.updates.items()}

    def dip_failed(self, dip: Dip, now: int, log: CpuLog) -> None:
        log.failed_dips.append(dip)
        for vip, queue in self.requests.items():
            latest = queue[-1].pool if queue else self.pools[vip][self.vip_entries[vip].new_version]
            if dip not in latest:
                continue
            survivors = tuple(x for x in latest if x != dip)
            if not survivors:
                log.notes.append(f"{dip} stays in {vip}: it is the pool's last DIP")
                continue
            self.request_update(vip, survivors, now, log)
