"""Exhaustive explicit-state search of the *concrete* model for small scopes.

The search steps ``model.switch.Switch`` with events from a small alphabet
(packets of a few connections, update requests, CPU learn/advance/expire
steps, single table writes, a clock tick, learn-delay faults), breadth first
from the switch's boot, to a fixpoint (every reachable state) or to a depth.

Alphabets. In an *atomic* scope a CPU letter's writes all take effect at once
(the model's default, ``writes=None``). In a *write-granular* scope
(``Scope.writes``) a CPU letter leaves every write it makes queued
(``writes=0``) and the ``write`` letter applies the next one, so packets, ticks
and learn delays come between single writes: the states between the two writes
of a cuckoo move, or between a pool write and the VIPTable write naming it, are
states of the search. CPU letters wait while writes are queued: the model's CPU
applies what it still has queued before it acts, which is what ``write``
letters with nothing between them do, so no state is lost by it. k writes in a
row at one instant are the atomic step, so a write-granular scope reaches every
state its atomic twin reaches, and the states in between.

The state key is an exact quotient (``Canon``): two states with equal images
have equal images after every letter, and make the same observations.

* Time is relative. Every instant becomes its age, and a gap between two
  consecutive instants is capped at ``Scope.cap``, one more than the largest
  constant the model compares a time difference with (``idle_timeout +
  learn_delay_bound``: an unplaced connection is forgotten after that much
  silence). A difference below the cap is kept; one the cap shortened still
  exceeds every constant, so every comparison comes out the same. New instants
  are the clock or the larger of two old ones, which keeps this so; the one
  offset the model adds (a delayed learn event becomes visible at ``sent +
  delay``) is kept as that offset, not as an instant.
* Order is kept where the CPU acts on it: the order in which it learned its
  connections (it places unplaced ones in that order), its pools per VIP (it
  reclaims in that order), the entries of one bucket (cuckoo blockers; only
  with several slots per bucket).
* Bookkeeping the rest determines is left out (bucket loads, watchers, flow
  hashes); the unbounded placement ``generation`` becomes, per connection,
  whether its placement failed since the shadow last changed: all ``Cpu``
  compares the two for.
* Hash values do not appear: a ConnTable key and a Bloom cell are named by the
  set (bit mask) of the scope's connections whose hashes fall there.

``check_fields`` refuses to run when a model class has a field this image does
not account for, and ``quotient_errors`` checks, on every merge of a scope, that
the merged states have the same successors (a test).

Symmetry of connection identities. The model uses a connection's 5-tuple only
for equality, as a dict or set key and through its hashes; it uses hash values
only for equality, as keys and as Bloom cell indices; it orders neither, and it
iterates sets only where the result does not depend on the order. So a
permutation π of the scope's connections is a symmetry of the whole transition
system when the hashes treat the permuted connections alike up to a relabelling
of hash values: in every stage π keeps which connections share a bucket and
which share a (bucket, digest) key, it maps the multiset of the Bloom cells'
connection masks onto itself, and every connection keeps its DIP in every pool
of the scope (DIPs are observed, so they are not relabelled). Relabelling the
image's connections and masks by π then *is* the image of the permuted state.
A state is its switch and its watch (below); ``Canon.switch_digests`` gives a
128-bit digest of the permuted switch's image per π, and a state's key is the
digest of the least (switch digest, permuted anchors) over the group of such π
(``Canon.perms``, ``Canon.key``): the same for every state of an orbit. With SYN
authentication on (cookies and whitelisted source addresses are not
relabelled) the group is the identity. The stored state of an orbit is the
concrete one first reached, so paths and traces need no relabelling.

Fingerprints. The key is 64 bits: BLAKE2b of ``marshal`` bytes (format 2,
without object references, so equal images give equal bytes in every process,
and on every machine with the same Python). Two states of different orbits
share a key with probability at most |G|²·n(n-1)/2^65 for n states and |G|
images per orbit (a union bound over pairs), which ``SearchResult`` reports as
``collision_bound``; the 128-bit switch digests under it add at most
(|G|·n)²/2^129, 2^-64 times less. A collision would merge two states and could
hide the successors of the second.

One model step per switch image and letter. The model never reads the watch, and
the image is exact, so all states with one switch image (however many watches
they come with) take a letter to one successor switch image with one packet
outcome. Without the refinement check the ``Expander`` steps the first switch
it reached of each image once per letter, remembers the outcome, and moves each
state's watch on by it (``memo``); a node then holds that representative switch,
and its path (replayed from the boot) is still its own. The refinement check
carries per-path history, so with it every edge steps its own switch, as
``search(memo=False)`` does without it (the baseline ``silkcheck prove --bench``
prints); ``quotient_errors`` compares the concrete states it merges, so it steps
every edge too.

PCC on every edge. The search state carries, per connection, the DIP of its
incarnation's first forwarded packet and the age of its last packet
(``Watch``), so PCC is judged on every edge, hence on every path; a forwarded
packet off its anchor is confirmed by the black-box oracle on the path's trace
(which knows the excuses: digest aliasing, write races, faults) before it stops
the search. Breadth-first order makes the first bad edge the end of a shortest
counterexample path.

Refinement on every edge (``search(refinement=True)``). Every edge explored is
checked against the abstract system (``spec.check.Refinement``): each node
carries the refinement state (the ghost history, when each pending write was
decided, the connections seen so far) of the *first* path that reached it, and
every edge leaving it is checked with that history. So every transition of the
reachable graph — every (state, letter) pair — is checked once, but with one
history: the ghost is history, not state, and a state reached by several paths
is judged with the first path's anchors, excuses and clock only, as the state
key merges paths by the concrete state alone. A mismatch stops the search like a
PCC violation; its path is a trace whose replay
(``silkcheck.targets.model.refinement_of``) shows the same mismatch.

Parallel expansion (``search(workers=k)``). Each level of the breadth-first
search is expanded by k processes (fork). Process i owns the states whose home
(``Node.home``: the least switch digest, the same for an orbit and for every
state of one switch image) is i modulo k (``owner``), so only it steps that
image: it keeps their seen set, expands its part of the level and sends every
successor it does not own to its owner, which deduplicates it.
``Partition`` is that unit (a seen set and a frontier; ``expand`` a level,
``admit`` states sent to it). ``search(runner=...)`` puts the partitions
elsewhere: ``silkcheck.search_cluster`` keeps one per Dask actor.
"""

from __future__ import annotations

import hashlib
import itertools
import marshal
import multiprocessing
import os
import queue
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, NamedTuple, Protocol

from model import events as ev
from model.config import Config
from model.cpu import Cpu, Known, Removal, Update
from model.dataplane import ConnEntry, DataPlane, LearnEvent
from model.hashing import HashPlan, dip_index
from model.observations import FORWARD, Observation, PacketObservation
from model.switch import Switch
from model.types import ACK, SYN, Dip, FiveTuple, Packet
from model.writes import FORGET, ConnDelete, ConnInsert, PoolDelete, PoolWrite, TableWrite, VipWrite, WhitelistAdd
from proofs.replay import verdict_of
from silkcheck.examples import DEMO_VIP, DIP1, DIP2, client
from silkcheck.oracle import VIOLATION, Verdict
from silkcheck.targets.model import cycle_collection_paused, refinement_of
from silkcheck.trace import Trace
from spec.check import Mismatch, Refinement
from spec.concrete import QueueKeys, Readers, State
from spec.system import EVENT_CODES

# ---------------------------------------------------------------- scopes

POOLS = ((DIP2,), (DIP1,))
"""Update n installs POOLS[n % 2]: every version change moves every connection's DIP."""
BOOT_POOL = (DIP1,)


@dataclass(frozen=True)
class Scope:
    name: str
    config: Config
    connections: int
    updates: int
    """How many pool updates the operator may request along a path."""
    delay_faults: bool = True
    expiry: bool = True
    writes: bool = False
    """Write-granular: CPU letters queue their writes, the ``write`` letter applies the next one."""
    symmetry: bool = True
    """Merge states that differ by a permutation of interchangeable connections."""
    max_states: int = 3_000_000
    max_depth: int | None = None
    """Explore every state within this many steps (None: until no new state)."""
    clients: tuple[int, ...] = ()
    """Which ``silkcheck.examples.client`` numbers the connections are (default 1..connections): a
    scope picks others for a hash pattern, e.g. two connections that alias in one stage only."""

    @property
    def conns(self) -> list[FiveTuple]:
        numbers = self.clients or tuple(range(1, self.connections + 1))
        if len(numbers) != self.connections:
            raise ValueError(f"scope {self.name}: {len(numbers)} clients for {self.connections} connections")
        return [client(n, 40000 + n) for n in numbers]

    @property
    def cap(self) -> int:
        c = self.config
        return max(c.idle_timeout + c.learn_delay_bound, c.teardown_grace) + 1

    @property
    def pools(self) -> tuple[tuple[Dip, ...], ...]:
        return (BOOT_POOL, *POOLS[: self.updates])


# ---------------------------------------------------------------- what the model's classes hold

_PACKED = {
    Switch: {"config", "dataplane", "cpu", "decided_at"},
    DataPlane: {"config", "plan", "conn", "vips", "pools", "transit", "whitelist", "learn_queue", "learn_filter",
                "decisions"},
    Cpu: {"config", "plan", "backend", "known", "table", "load", "watchers", "vip_entries", "pools", "refs",
          "released", "updates", "requests", "whitelist", "expired", "epoch", "generation", "pending"},
    Known: {"ft", "hashes", "version", "sent", "opened", "ended", "stage", "seen", "failed_at", "version_from_hit"},
    ConnEntry: {"version", "last_hit"},
}  # fmt: skip
"""Every field ``pack`` copies, per class (``DataPlane.decisions``, the design's, is made anew by ``unpack``)."""
_IMAGED = {
    LearnEvent: ("sent", "visible", "kind", "ft", "version", "hit_stage"),
    Removal: ("at", "stage"),
    Update: ("old_version", "new_version", "epoch", "slot", "phase", "started", "requested"),
    ConnInsert: ("stage", "bucket", "digest", "version", "owner"),
    ConnDelete: ("stage", "bucket", "digest", "version", "owner", "purpose"),
    PoolWrite: ("vip", "version", "pool"),
    PoolDelete: ("vip", "version"),
    VipWrite: ("vip", "entry", "releases"),
    WhitelistAdd: ("src_ip",),
}
"""The immutable records the image encodes field by field (``VipEntry`` is taken whole)."""
_REFINEMENT = {"switch", "state", "ghost", "decided", "steps", "vips", "readers", "check_alpha", "lemmas",
               "queue_keys"}
"""``check_alpha`` and ``lemmas`` are the checker's settings, not state: a restored checker keeps them."""


def check_fields() -> None:
    """``pack`` and the image name fields one by one: refuse to run if the model grew one they do not know."""
    for cls, known in _PACKED.items():
        _same_fields(cls.__name__, {f.name for f in fields(cls)}, known)  # type: ignore[arg-type]
    for record, names in _IMAGED.items():
        _same_fields(record.__name__, set(record._fields), set(names))
    _same_fields("spec.check.Refinement", {f.name for f in fields(Refinement)}, _REFINEMENT)


def _same_fields(name: str, actual: set[str], known: set[str]) -> None:
    if actual != known:
        raise RuntimeError(f"proofs/explicit.py is out of date for {name}: fields {sorted(actual ^ known)}")


# ---------------------------------------------------------------- a state as nested tuples


class Packed(NamedTuple):
    """The whole switch as nested tuples (absolute times, every dict in its order): what a search node
    stores, and sends to another process. ``unpack`` rebuilds the switch."""

    conn: tuple[Any, ...]
    vips: tuple[Any, ...]
    pools: tuple[Any, ...]
    transit: tuple[Any, ...]
    dp_whitelist: tuple[int, ...]
    learn_queue: tuple[LearnEvent, ...]
    learn_filter: tuple[Any, ...]
    known: tuple[Any, ...]
    table: tuple[Any, ...]
    load: tuple[Any, ...]
    watchers: tuple[Any, ...]
    vip_entries: tuple[Any, ...]
    cpu_pools: tuple[Any, ...]
    refs: tuple[Any, ...]
    released: tuple[Any, ...]
    updates: tuple[Any, ...]
    requests: tuple[Any, ...]
    cpu_whitelist: tuple[int, ...]
    expired: tuple[Any, ...]
    epoch: int
    generation: int
    pending: tuple[TableWrite, ...] | None
    decided_at: int


def pack(switch: Switch) -> Packed:
    dp, cpu = switch.dataplane, switch.cpu
    return Packed(
        tuple(tuple((k, e.version, e.last_hit) for k, e in t.items()) for t in dp.conn),
        tuple(dp.vips.items()), tuple(dp.pools.items()), tuple(map(tuple, dp.transit)), tuple(dp.whitelist),
        tuple(dp.learn_queue), tuple(dp.learn_filter),
        tuple((c.ft, c.version, c.sent, c.opened, c.ended, c.stage, c.seen, c.failed_at, c.version_from_hit)
              for c in cpu.known.values()),
        tuple(tuple((k, c.ft) for k, c in t.items()) for t in cpu.table), tuple(tuple(x.items()) for x in cpu.load),
        tuple((k, tuple(v)) for k, v in cpu.watchers.items()), tuple(cpu.vip_entries.items()),
        tuple((vip, tuple(p.items())) for vip, p in cpu.pools.items()), tuple(cpu.refs.items()),
        tuple(cpu.released.items()), tuple(cpu.updates.items()),
        tuple((vip, tuple(q)) for vip, q in cpu.requests.items()), tuple(cpu.whitelist), tuple(cpu.expired.items()),
        cpu.epoch, cpu.generation, None if cpu.pending is None else tuple(cpu.pending), switch.decided_at,
    )  # fmt: skip


def unpack(packed: Packed, config: Config, plan: HashPlan) -> Switch:
    """A fresh switch equal to the packed one, sharing only immutable parts (config, hash plan, records)."""
    p = packed
    dp = DataPlane(
        config, plan, [{k: ConnEntry(version, last) for k, version, last in t} for t in p.conn], dict(p.vips),
        dict(p.pools), [list(cells) for cells in p.transit], set(p.dp_whitelist), deque(p.learn_queue),
        set(p.learn_filter),
    )  # fmt: skip
    flow = plan.flow
    known = {row[0]: Known(row[0], flow(row[0]), *row[1:]) for row in p.known}
    cpu = Cpu(
        config, plan, dp, known, [{k: known[ft] for k, ft in t} for t in p.table], [dict(x) for x in p.load],
        {k: set(v) for k, v in p.watchers}, dict(p.vip_entries), {vip: dict(v) for vip, v in p.cpu_pools},
        dict(p.refs), dict(p.released), dict(p.updates), {vip: deque(q) for vip, q in p.requests},
        set(p.cpu_whitelist), dict(p.expired), p.epoch, p.generation, None if p.pending is None else deque(p.pending),
    )  # fmt: skip
    return Switch(config, dp, cpu, p.decided_at)


# ---------------------------------------------------------------- the search's own PCC bookkeeping


class Watch(NamedTuple):
    """Per connection (in scope order): the DIP its incarnation's first forwarded packet went to, as
    a plain (ip, port) tuple (``NO_ANCHOR``: none yet), and the age of its last packet (-1: none yet,
    capped at the scope's cap). Plain tuples, as the fingerprint marshals them."""

    anchors: tuple[tuple[tuple[int, ...], int], ...]
    updates_used: int


NO_ANCHOR: tuple[int, ...] = ()


def _watch_after(scope: Scope, watch: Watch, index: int | None, obs: PacketObservation | None,
                 ticked: bool) -> tuple[Watch, bool]:  # fmt: skip
    """Move the anchors on; report whether ``obs`` (of connection ``index``) broke PCC: a forwarded
    packet off its incarnation's anchor."""
    if not ticked and obs is None:
        return watch, False
    moved = False
    anchors = list(watch.anchors)
    if ticked:
        cap = scope.cap
        anchors = [(dip, min(last + 1, cap) if last >= 0 else last) for dip, last in anchors]
    elif obs is not None and index is not None:
        dip, last = anchors[index]
        if last > scope.config.idle_timeout:
            dip = NO_ANCHOR  # the oracle starts a new incarnation after an idle gap
        if obs.action == FORWARD:
            if not dip:
                dip = tuple(obs.dip)
            elif obs.dip != dip:
                moved = True
        anchors[index] = (dip, 0)
    return Watch(tuple(anchors), watch.updates_used), moved


# ---------------------------------------------------------------- the image, symmetry and fingerprints


class Canon:
    """The image of a search state (see the module docstring), its symmetry group, its fingerprint."""

    def __init__(self, scope: Scope, plan: HashPlan) -> None:
        config = scope.config
        self.scope = scope
        self.conns = scope.conns
        self.index = {ft: i for i, ft in enumerate(self.conns)}
        flows = [plan.flow(ft) for ft in self.conns]
        self.key_mask: list[dict[tuple[int, int], int]] = [{} for _ in range(config.stages)]
        for i, h in enumerate(flows):
            for stage in range(config.stages):
                masks = self.key_mask[stage]
                masks[h.key(stage)] = masks.get(h.key(stage), 0) | 1 << i
        self.cell_mask = [
            sum(1 << i for i, h in enumerate(flows) if cell in h.bloom) for cell in range(config.bloom_bits)
        ]
        self.vip_code = {DEMO_VIP: 0}
        self.expiry = scope.expiry
        self.bound = config.learn_delay_bound
        self.ordered_buckets = config.slots_per_bucket > 1
        sizes = sorted({len(p) for p in scope.pools})
        symmetric = scope.symmetry and not config.syn_auth
        self.perms = automorphisms(flows, config.stages, config.bloom_bits, sizes) if symmetric else [
            tuple(range(len(flows)))]  # fmt: skip
        self._maps = [(perm, [_permute_mask(perm, m) for m in range(1 << len(flows))]) for perm in self.perms]
        self._inverses = [tuple(sorted(range(len(perm)), key=perm.__getitem__)) for perm in self.perms]
        self._timeless_images: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.plain_pools = {pool: tuple(map(tuple, pool)) for pool in scope.pools}
        """The scope's pools as plain tuples (``marshal`` takes no named tuples): the only pools the
        alphabet installs."""

    @property
    def group(self) -> int:
        return len(self.perms)

    def fingerprint(self, switch: Switch, now: int, watch: Watch) -> int:
        return self.key(self.switch_digests(switch, now), watch)

    def switch_digests(self, switch: Switch, now: int,
                       known: Callable[[int], tuple[int, ...] | None] | None = None) -> tuple[int, ...]:  # fmt: skip
        """Per permutation of the group (the identity first), a 128-bit digest of the image of the
        permuted switch: the search state's image without the watch, which the model never reads.
        ``known`` looks up digests computed before by the identity's: the identity's image determines
        the others, so when it finds them they are not computed again."""
        ages, fixed, expired = self._fixed(switch, now)
        # The digest of the pair (fixed, moving): marshal writes a tuple as its header and then its
        # items, so the fixed part is written once for every permutation.
        head = _PAIR + marshal.dumps(fixed, 2)

        def digest(perm: Sequence[int], masks: Sequence[int]) -> int:
            moving = marshal.dumps(self._moving(switch, ages, expired, perm, masks), 2)
            return int.from_bytes(hashlib.blake2b(head + moving, digest_size=16).digest(), "little")

        identity = digest(*self._maps[0])
        found = None if known is None else known(identity)
        if found is not None:
            return found
        return (identity, *[digest(perm, masks) for perm, masks in self._maps[1:]])

    def key(self, digests: Sequence[int], watch: Watch) -> int:
        """The state's fingerprint from its switch's ``switch_digests``: the least (permuted switch,
        permuted anchors) over the group, so the same for every state of an orbit."""
        anchors = watch.anchors
        least = (digests[0], anchors)
        for i in range(1, len(digests)):
            # π moves connection j's anchor to π(j): position k holds that of π⁻¹(k)
            other = (digests[i], tuple([anchors[j] for j in self._inverses[i]]))
            if other < least:
                least = other
        return _digest((*least, watch.updates_used))

    def _fixed(self, switch: Switch, now: int) -> tuple[dict[int, int], tuple[Any, ...], list[tuple[FiveTuple, int]]]:
        """The live instants as ages, the part of the image no connection permutation changes, and the
        live expiry times.

        An instant is left out once the model can no longer read it: the learn time of a placed
        connection (only unplaced ones are compared with learn events and t_req), an update's phase
        start or a version's release once a learn-delay bound ago (only that wait is asked about, and
        the next change sets it to the clock), the expiry of a connection with no learn event sent by
        then still queued (later ones are not stale, and the next expiry sets it to the clock)."""
        dp, cpu = switch.dataplane, switch.cpu
        expiry, bound = self.expiry, self.bound
        times = [now, *[e.sent for e in dp.learn_queue]]
        for c in cpu.known.values():
            if c.stage is None:
                times.append(c.sent)
            if expiry:
                times += (c.opened, c.ended, c.seen)
        expired: list[tuple[FiveTuple, Removal]] = []
        if expiry:
            for table in dp.conn:
                times += [e.last_hit for e in table.values()]
            expired = [(ft, gone) for ft, gone in cpu.expired.items()
                       if gone.at >= now or any(e.ft == ft and e.sent <= gone.at for e in dp.learn_queue)]  # fmt: skip
            times += [removal.at for _, removal in expired]
        updates = []
        for v, u in cpu.updates.items():
            started = now - u.started < bound
            times.append(u.requested)
            if started:
                times.append(u.started)
            updates.append((v, u, started))
        allocated = cpu.pools
        released = []
        for (v, version), t in cpu.released.items():
            if version in allocated[v]:
                waiting = now - t < bound
                released.append((v, version, t, waiting))
                if waiting:
                    times.append(t)
        ages = _ages(times, now, self.scope.cap)
        vip, pool = self.vip_code, self.plain_pools
        # Request times are only compared with each other (first come, first served): their order is
        # what the model reads.
        rank = {t: i for i, t in enumerate(sorted({r.at for q in cpu.requests.values() for r in q}))}
        fixed = (
            *self._timeless(switch),
            _rows([(vip[v], version, ages[t] if waiting else bound) for v, version, t, waiting in released]),
            _rows([(vip[v], u.old_version, u.new_version, u.epoch, u.slot, u.phase,
                    ages[u.started] if started else bound, ages[u.requested]) for v, u, started in updates]),
            tuple([(vip[v], *[(pool[r.pool], rank[r.at]) for r in q]) for v, q in cpu.requests.items()]),
            cpu.epoch,
        )  # fmt: skip
        return ages, fixed, expired

    def _timeless(self, switch: Switch) -> tuple[Any, ...]:
        """The first items of the fixed image, which hold no instant: VIPs, pools, whitelists, version
        references. They change seldom, so each is kept by the model's records it is made of (a key
        holds no instant, so there are few)."""
        dp, cpu = switch.dataplane, switch.cpu
        records = (tuple(dp.vips.items()), tuple(dp.pools.items()), frozenset(dp.whitelist),
                   frozenset(cpu.whitelist), tuple(cpu.vip_entries.items()),
                   tuple([(v, tuple(p.items())) for v, p in cpu.pools.items()]), tuple(cpu.refs.items()))  # fmt: skip
        image = self._timeless_images.get(records)
        if image is None:
            vip, pool = self.vip_code, self.plain_pools
            image = self._timeless_images[records] = (
                _rows([(vip[v], *e) for v, e in dp.vips.items()]),
                _rows([(vip[v], version, pool[p]) for (v, version), p in dp.pools.items()]),
                _rows(list(dp.whitelist)), _rows(list(cpu.whitelist)),
                _rows([(vip[v], *e) for v, e in cpu.vip_entries.items()]),
                tuple([(vip[v], *[(version, pool[p]) for version, p in versions.items()])
                       for v, versions in cpu.pools.items()]),
                _rows([(vip[v], version, n) for (v, version), n in cpu.refs.items() if n]),
            )  # fmt: skip
        return image

    def _moving(self, switch: Switch, ages: dict[int, int], expired: list[tuple[FiveTuple, Removal]],
                perm: Sequence[int], masks: Sequence[int]) -> tuple[Any, ...]:  # fmt: skip
        """The part of the image that names connections, keys and cells, relabelled by ``perm``."""
        dp, cpu = switch.dataplane, switch.cpu
        index, key_mask, cell_mask, kinds = self.index, self.key_mask, self.cell_mask, EVENT_CODES
        generation = cpu.generation
        if self.expiry:
            conn = tuple(
                [
                    _rows([(masks[key_mask[stage][k]], e.version, ages[e.last_hit]) for k, e in table.items()])
                    for stage, table in enumerate(dp.conn)
                ]
            )
            # Every known connection in learn order: placement takes the unplaced ones in it, and
            # expiry deletes placed ones in it (each delete is checked against the ones before).
            known = tuple(
                [
                    (
                        perm[index[c.ft]],
                        c.version,
                        ages[c.sent],
                        -1,
                        c.failed_at == generation,
                        c.version_from_hit,
                        ages.get(c.opened, -1),
                        ages.get(c.ended, -1),
                        ages[c.seen],
                    )
                    if c.stage is None
                    else (
                        perm[index[c.ft]],
                        c.version,
                        -1,
                        c.stage,
                        False,
                        False,
                        ages.get(c.opened, -1),
                        ages.get(c.ended, -1),
                        ages[c.seen],
                    )
                    for c in cpu.known.values()
                ]
            )
            queue = tuple(
                [
                    (ages[e.sent], e.visible - e.sent, kinds[e.kind], perm[index[e.ft]], e.version, e.hit_stage)
                    for e in dp.learn_queue
                ]
            )
            gone = _rows([(perm[index[ft]], ages[removal.at], removal.stage) for ft, removal in expired])
        else:  # no idle timers, teardown or staleness: without expiry nothing reads them
            conn = tuple(
                [
                    _rows([(masks[key_mask[stage][k]], e.version) for k, e in table.items()])
                    for stage, table in enumerate(dp.conn)
                ]
            )
            # The unplaced in learn order (placement takes them in it), the placed in any.
            unplaced = tuple(
                [
                    (perm[index[c.ft]], c.version, ages[c.sent], c.failed_at == generation, c.version_from_hit)
                    for c in cpu.known.values()
                    if c.stage is None
                ]
            )
            placed = _rows([(perm[index[c.ft]], c.version, c.stage) for c in cpu.known.values() if c.stage is not None])
            known = (unplaced, placed)
            queue = tuple(
                [
                    (ages[e.sent], e.visible - e.sent, kinds[e.kind], perm[index[e.ft]], e.version)
                    for e in dp.learn_queue
                ]
            )
            gone = ()
        transit = tuple(
            [_rows([(masks[cell_mask[i]], epoch) for i, epoch in enumerate(cells) if epoch]) for cells in dp.transit]
        )
        learn_filter = _rows([(kinds[kind], perm[index[ft]]) for kind, ft in dp.learn_filter])
        buckets = (
            tuple([tuple([perm[index[c.ft]] for c in t.values()]) for t in cpu.table]) if self.ordered_buckets else ()
        )
        pending = tuple([self._write(w, perm, masks) for w in cpu.pending]) if cpu.pending else ()
        return conn, transit, queue, learn_filter, known, gone, buckets, pending

    def _write(self, w: TableWrite, perm: Sequence[int], masks: Sequence[int]) -> tuple[Any, ...]:
        vip = self.vip_code
        match w:
            case ConnInsert(stage, bucket, digest, version, owner):
                return 0, stage, masks[self.key_mask[stage][(bucket, digest)]], version, perm[self.index[owner]]
            case ConnDelete(stage, bucket, digest, version, owner, purpose):
                return (1, stage, masks[self.key_mask[stage][(bucket, digest)]], version, perm[self.index[owner]],
                        purpose == FORGET)  # fmt: skip
            case PoolWrite(v, version, p):
                return 2, vip[v], version, self.plain_pools[p]
            case PoolDelete(v, version):
                return 3, vip[v], version
            case VipWrite(v, entry, releases):
                return 4, vip[v], tuple(entry), -1 if releases is None else releases
            case WhitelistAdd(src):
                return 5, src
        raise TypeError(f"not a table write: {w!r}")


def _ages(times: list[int], now: int, cap: int) -> dict[int, int]:
    """Each instant's age (``now`` minus it), every gap between consecutive instants capped at ``cap``
    (-1, no instant, is left out). No instant is later than ``now``: the clock never goes back."""
    instants = sorted(set(times), reverse=True)
    assert instants[0] == now, "an instant after the clock"
    ages = {}
    age, later = 0, now
    for t in instants:
        if t < 0:
            break
        age += min(later - t, cap)
        ages[t] = age
        later = t
    return ages


def _rows(rows: list[Any]) -> tuple[Any, ...]:
    """The rows of an unordered collection in a canonical order."""
    if len(rows) > 1:
        rows.sort()
    return tuple(rows)


_PAIR = b"(" + (2).to_bytes(4, "little")
"""How ``marshal`` (format 2) starts a tuple of two items."""


def _digest(image: tuple[Any, ...], size: int = 8) -> int:
    return int.from_bytes(hashlib.blake2b(marshal.dumps(image, 2), digest_size=size).digest(), "little")


def _permute_mask(perm: Sequence[int], mask: int) -> int:
    return sum(1 << perm[i] for i in range(len(perm)) if mask >> i & 1)


def automorphisms(
    flows: Sequence[Any], stages: int, bloom_bits: int, pool_sizes: Sequence[int]
) -> list[tuple[int, ...]]:
    """The permutations of the connections (with these ``FlowHashes``) that the hashes cannot tell from
    the identity: per stage the same bucket and key sharing, the same multiset of Bloom cell masks,
    the same DIP index in every pool size. The identity comes first."""
    n = len(flows)

    def sharing(value: Callable[[Any], Any], perm: Sequence[int]) -> bool:
        return all((value(flows[a]) == value(flows[b])) == (value(flows[perm[a]]) == value(flows[perm[b]]))
                   for a in range(n) for b in range(n))  # fmt: skip

    cells = [sum(1 << i for i, h in enumerate(flows) if cell in h.bloom) for cell in range(bloom_bits)]
    found = []
    for perm in itertools.permutations(range(n)):
        same = (
            all(sharing(lambda h, s=s: h.buckets[s], perm) and sharing(lambda h, s=s: h.key(s), perm)
                for s in range(stages))
            and sorted(_permute_mask(perm, m) for m in cells) == sorted(cells)
            and all(dip_index(flows[perm[i]].dip_hash, size) == dip_index(flows[i].dip_hash, size)
                    for i in range(n) for size in pool_sizes)
        )  # fmt: skip
        if same:
            found.append(perm)
    return found


def owner(home: int, parts: int) -> int:
    """The partition (process, or Dask actor) that owns a state, by its ``Node.home``: one partition owns
    every state with one switch image (up to symmetry), so only that one steps the image."""
    return home % parts


# ---------------------------------------------------------------- the alphabet

Letter = tuple[str, Callable[[int], ev.Event] | None]
"""(label, event at time t); None: the clock tick."""


class Shape(NamedTuple):
    """What the alphabet reads of a state's switch (the image determines it)."""

    queue: int
    """Learn events queued."""
    pending: bool
    """Table writes queued."""
    delayable: tuple[int, ...]
    """The queued learn events a fault may still delay."""


def shape(scope: Scope, switch: Switch) -> Shape:
    bound = scope.config.learn_delay_bound
    queue = switch.dataplane.learn_queue
    delayable = tuple(i for i, e in enumerate(queue) if e.visible < e.sent + bound) if scope.delay_faults else ()
    return Shape(len(queue), bool(switch.cpu.pending), delayable)


def letters(scope: Scope, here: Shape, watch: Watch) -> list[Letter]:
    """The alphabet enabled in a state (its switch's ``shape``, its watch)."""
    out: list[Letter] = []
    for i, ft in enumerate(scope.conns):
        started = watch.anchors[i][1] >= 0
        flags = ACK if started else SYN
        packet = Packet(ft, flags)
        out.append((f"{'ack' if started else 'syn'} c{i + 1}", lambda t, p=packet: ev.PacketArrives(t, p)))
    if scope.writes and here.pending:
        out.append(("write", lambda t: ev.CpuWrites(t, 1)))
    else:
        writes = 0 if scope.writes else None
        if watch.updates_used < scope.updates:
            pool = POOLS[watch.updates_used % 2]
            out.append(("update", lambda t: ev.UpdateRequested(t, DEMO_VIP, pool, writes)))
        out.append(("learn", lambda t: ev.CpuLearns(t, None, writes)))
        if here.queue > 1:
            out.append(("learn 1", lambda t: ev.CpuLearns(t, 1, writes)))
        out.append(("advance", lambda t: ev.CpuAdvances(t, writes)))
        if scope.expiry:
            out.append(("expire", lambda t: ev.CpuExpires(t, writes)))
    bound = scope.config.learn_delay_bound
    for i in here.delayable:
        out.append((f"delay learn {i}", lambda t, i=i: ev.LearnDelayed(t, i, bound)))
    out.append(("tick", None))
    return out


# ---------------------------------------------------------------- nodes and edges


class RefinementState(NamedTuple):
    """What a node carries of the refinement check along the first path that reached it."""

    ghost: dict[tuple[Any, ...], Any]
    decided: tuple[int, ...]
    """When the CPU decided each of the switch's pending writes."""
    readers: tuple[FiveTuple, ...]
    """The connections that have sent a packet, in that order."""
    alpha: State
    """α of the node's switch with this history: the check computed it on the edge into the node, so
    each edge computes α of its successor only."""


class Node(NamedTuple):
    fingerprint: int
    packed: Packed
    now: int
    """With ``packed``: the switch, at this time. Without the refinement check, the first one the
    search reached of those with this switch image (``digests[0]``): the image is exact, so it has
    the same successor images and makes the same observations as the switch of this path."""
    digests: tuple[int, ...]
    """``Canon.switch_digests`` of the switch: the identity's first; the least is its ``home``."""
    watch: Watch
    path: bytes
    """The letter taken at each step from the boot: its position in ``letters`` there."""
    events: int
    """How many of those steps were events (not ticks): the next event's index in the trace."""
    refinement: RefinementState | None

    @property
    def home(self) -> int:
        """The same for every state of an orbit, and for all those of one switch image."""
        return min(self.digests)


class Finding(NamedTuple):
    """An edge that may end a search: a packet off its anchor, or a refinement mismatch."""

    path: bytes
    mismatch: Mismatch | None


class Edge(NamedTuple):
    """One step of the search: the successor (its switch, or the packed one of a tick) and what the step showed."""

    fingerprint: int
    switch: Switch | Packed
    now: int
    digests: tuple[int, ...]
    watch: Watch
    path: bytes
    events: int
    refinement: RefinementState | None
    moved: bool = False
    """A packet went off its incarnation's anchor."""
    mismatch: Mismatch | None = None

    def node(self) -> Node:
        packed = pack(self.switch) if isinstance(self.switch, Switch) else self.switch
        return Node(self.fingerprint, packed, self.now, self.digests, self.watch, self.path, self.events,
                    self.refinement)

    @property
    def home(self) -> int:
        return min(self.digests)


@dataclass
class LevelStats:
    edges: int = 0
    new: int = 0
    pending_states: int = 0
    """New states with table writes queued: the CPU is between two writes."""
    phases: set[int] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)

    def add(self, other: LevelStats) -> None:
        self.edges += other.edges
        self.new += other.new
        self.pending_states += other.pending_states
        self.phases |= other.phases
        self.findings += other.findings


class Move(NamedTuple):
    """A letter taken from one switch image: the image it leads to and what the packet did, if any."""

    switch_key: int
    observation: PacketObservation | None


class Representative(NamedTuple):
    """The switch the search stepped for every state with one switch image."""

    packed: Packed
    now: int
    shape: Shape
    digests: tuple[int, ...]


class Expander:
    """Steps one scope's states: the successors of a node, the trace of a path.

    Without the refinement check the search steps the model once per switch image and letter, not
    once per state and letter (``memo``): the model never reads the watch, and the image is exact,
    so every state with that switch image takes the letter to the same successor image with the
    same packet outcome; a state's successors are then the watch moved on by those outcomes. With
    the check every edge steps its own switch, with its own history (``quotient_errors`` too: it
    compares the concrete states it merges)."""

    def __init__(self, scope: Scope, refinement: bool, memo: bool = True) -> None:
        check_fields()
        self.scope = scope
        self.refinement = refinement
        self.memo = memo and not refinement
        boot = Switch.boot(scope.config, {DEMO_VIP: BOOT_POOL})
        self.config, self.plan = boot.config, boot.dataplane.plan
        self.canon = Canon(scope, self.plan)
        self.index = self.canon.index
        self.vips = sorted(boot.cpu.vip_entries)
        self._readers: dict[tuple[FiveTuple, ...], Readers] = {}
        self._representatives: dict[int, Representative] = {}
        self._moves: dict[tuple[int, type, ev.Event | None], Move] = {}
        self._alphabets: dict[tuple[Shape, tuple[bool, ...], int], list[tuple[bytes, type, ev.Event | None]]] = {}
        self._part, self._parts = 0, 1
        watch = Watch(tuple((NO_ANCHOR, -1) for _ in scope.conns), 0)
        ref = None
        if refinement:
            start = Refinement(boot)
            ref = RefinementState(start.ghost, tuple(start.decided), (), start.state)
        digests = self.canon.switch_digests(boot, 0)
        self.root = Node(self.canon.key(digests, watch), pack(boot), 0, digests, watch, b"", 0, ref)

    def own(self, part: int, parts: int) -> None:
        """Take the ticks only of the switch images partition ``part`` of ``parts`` owns: it is the one
        that expands them. A successor image another partition owns is kept only as the edge into it
        needs it (packed, its time and digests); its owner takes its ticks when it first expands it."""
        self._part, self._parts = part, parts

    @property
    def stepped(self) -> int:
        """Model steps and clock ticks the memo took (each once per switch image)."""
        return len(self._moves)

    def successors(self, node: Node) -> Iterator[Edge]:
        """Every edge from ``node``."""
        return self._remembered_successors(node) if self.memo else self._stepped_successors(node)

    def _remembered_successors(self, node: Node) -> Iterator[Edge]:
        scope, key, index, moves = self.scope, self.canon.key, self.index, self._moves
        here = self._representative(node)
        image = node.digests[0]
        for code, kind, event in self._alphabet(here.shape, node.watch):
            letter = (image, kind, event)
            move = moves.get(letter)
            if move is None:  # not a tick: ``_remember`` took those
                assert event is not None
                move = moves[letter] = self._step(here, event)
            there = self._representatives[move.switch_key]
            watch, moved, events = node.watch, False, node.events + 1
            if event is None:
                watch, _ = _watch_after(scope, watch, None, None, True)
                events -= 1
            elif isinstance(event, ev.UpdateRequested):
                watch = watch._replace(updates_used=watch.updates_used + 1)
            elif move.observation is not None:
                watch, moved = _watch_after(scope, watch, index[move.observation.ft], move.observation, False)
            yield Edge(key(there.digests, watch), there.packed, there.now, there.digests, watch, node.path + code,
                       events, None, moved)  # fmt: skip

    def _alphabet(self, here: Shape, watch: Watch) -> list[tuple[bytes, type, ev.Event | None]]:
        """``letters`` as (the path's byte, the event's kind, the event at time 0; None: the tick): a
        letter's event is the same at every time, and ``letters`` reads of the watch only which
        connections started and how many updates were used. Events of two kinds may be equal tuples."""
        started = tuple([last >= 0 for _, last in watch.anchors])
        known = (here, started, watch.updates_used)
        alphabet = self._alphabets.get(known)
        if alphabet is None:
            events = [None if make is None else make(0) for _, make in letters(self.scope, here, watch)]
            alphabet = self._alphabets[known] = [(bytes((code,)), type(e), e) for code, e in enumerate(events)]
        return alphabet

    def _representative(self, node: Node) -> Representative:
        here = self._representatives.get(node.digests[0])
        if here is None:  # the root, or a node another process stepped to
            switch = unpack(node.packed, self.config, self.plan)
            self._remember(switch, node.packed, node.now, node.digests)
            here = self._representatives[node.digests[0]]
        return here

    def _step(self, here: Representative, event: ev.Event) -> Move:
        """Take one letter other than the tick (``event`` at time 0) from a representative switch."""
        switch = unpack(here.packed, self.config, self.plan)
        obs = switch.step(0, event._replace(t=here.now))
        digests = self.canon.switch_digests(switch, here.now, self._digests_of)
        if digests[0] not in self._representatives:
            self._remember(switch, pack(switch), here.now, digests)
        return Move(digests[0], obs if isinstance(obs, PacketObservation) else None)

    def _remember(self, switch: Switch, packed: Packed, now: int, digests: tuple[int, ...]) -> None:
        """Keep a new representative (``switch`` at ``now``, packed), and the ticks from it, and from
        the new images they lead to: a tick only moves the clock, so the switch at hand is each of
        them, where stepping them later would unpack it again. A tick reaches an image seen before
        within ``Scope.cap`` ticks (then the clock is further from every instant than any constant).
        The ticks stop at an image another partition owns (``own``)."""
        here = shape(self.scope, switch)
        while True:
            self._representatives[digests[0]] = Representative(packed, now, here, digests)
            if self._parts > 1 and owner(min(digests), self._parts) != self._part:
                return
            later = self.canon.switch_digests(switch, now + 1, self._digests_of)
            self._moves[(digests[0], type(None), None)] = Move(later[0], None)
            if later[0] in self._representatives:
                return
            digests, now = later, now + 1

    def _digests_of(self, identity: int) -> tuple[int, ...] | None:
        """The switch digests of the representative with this identity digest, if there is one."""
        here = self._representatives.get(identity)
        return None if here is None else here.digests

    def _stepped_successors(self, node: Node) -> Iterator[Edge]:
        scope, config, plan = self.scope, self.config, self.plan
        digests_of, key = self.canon.switch_digests, self.canon.key
        base = unpack(node.packed, config, plan)
        pre = None if node.refinement is None else node.refinement.alpha
        for code, (_, make) in enumerate(letters(scope, shape(scope, base), node.watch)):
            path = node.path + bytes((code,))
            if make is None:  # a tick only moves the clock
                watch, _ = _watch_after(scope, node.watch, None, None, True)
                now = node.now + 1
                digests = digests_of(base, now)
                yield Edge(key(digests, watch), node.packed, now, digests, watch, path, node.events,
                           node.refinement)  # fmt: skip
                continue
            switch = unpack(node.packed, config, plan)
            event = make(node.now)
            obs = switch.step(node.events, event)
            watch = node.watch
            if isinstance(event, ev.UpdateRequested):
                watch = watch._replace(updates_used=watch.updates_used + 1)
            moved = False
            if isinstance(obs, PacketObservation):
                watch, moved = _watch_after(scope, watch, self.index[obs.ft], obs, False)
            ref, mismatch = None, None
            if node.refinement is not None:
                assert pre is not None
                ref, mismatch = self._refine(node.refinement, pre, switch, node.events, event, obs)
            digests = digests_of(switch, node.now)
            yield Edge(key(digests, watch), switch, node.now, digests, watch, path, node.events + 1, ref, moved,
                       mismatch)  # fmt: skip

    def _refine(self, state: RefinementState, pre: State, switch: Switch, index: int, event: ev.Event,
                obs: Observation) -> tuple[RefinementState, Mismatch | None]:  # fmt: skip
        """Check one edge with the refinement state of the node it leaves (never changing that state)."""
        ghost, decided, order, _ = state
        if isinstance(event, ev.PacketArrives) and event.packet.ft not in order:
            order = (*order, event.packet.ft)
        check = object.__new__(Refinement)  # the node's history, not a new one from this switch's boot
        check.switch, check.state, check.ghost, check.decided = switch, pre, dict(ghost), list(decided)
        check.steps, check.vips, check.readers, check.check_alpha = 0, self.vips, self._readers_of(order), False
        check.queue_keys = QueueKeys()
        mismatch = check.after(index, event, obs)
        check.state.history = check.ghost  # α after a packet is the node's with a few paths read again
        return RefinementState(check.ghost, tuple(check.decided), order, check.state), mismatch

    def _readers_of(self, order: tuple[FiveTuple, ...]) -> Readers:
        """One ``Readers`` per set of connections seen, shared by every node that saw them (the check
        only adds a connection it has not seen, and ``order`` already holds the packet's)."""
        readers = self._readers.get(order)
        if readers is None:
            readers = self._readers[order] = Readers(self.plan, self.config.stages)
            for ft in order:
                readers.add(ft)
        return readers

    def replay(self, path: bytes) -> tuple[list[ev.Event], list[str]]:
        """The events (at their times) and letter labels of a path from the boot."""
        scope = self.scope
        switch = unpack(self.root.packed, self.config, self.plan)
        watch, now, events, labels = self.root.watch, 0, [], []
        for code in path:
            label, make = letters(scope, shape(scope, switch), watch)[code]
            labels.append(label)
            if make is None:
                now += 1
                watch, _ = _watch_after(scope, watch, None, None, True)
                continue
            event = make(now)
            obs = switch.step(len(events), event)
            events.append(event)
            if isinstance(event, ev.UpdateRequested):
                watch = watch._replace(updates_used=watch.updates_used + 1)
            if isinstance(obs, PacketObservation):
                watch, _ = _watch_after(scope, watch, self.index[obs.ft], obs, False)
        return events, labels

    def trace(self, path: bytes, what: str) -> Trace:
        events, _ = self.replay(path)
        name = self.scope.name
        return Trace(self.config, {DEMO_VIP: BOOT_POOL}, list(events), f"search-{name}",
                     f"{what}: shortest path found by exhaustive search of scope {name}", "fail")  # fmt: skip


# ---------------------------------------------------------------- one partition of the search


class Partition:
    """The states one process (or Dask actor) owns: their fingerprints, and its part of the frontier."""

    def __init__(self, expander: Expander, part: int = 0, parts: int = 1) -> None:
        self.expander = expander
        self.part, self.parts = part, parts
        if part >= 0:  # an actor expands as -1 and says which part it is itself
            expander.own(part, parts)
        self.seen: set[int] = set()
        self.frontier: list[Node] = []
        self.sent: set[int] = set()
        """Fingerprints already sent to their owner: each is sent once."""

    @property
    def states(self) -> int:
        return len(self.seen)

    def admit(self, nodes: Iterable[Node], stats: LevelStats, budget: int) -> None:
        """Keep the nodes not seen yet for the next level (at most ``budget`` more states)."""
        for node in nodes:
            if node.fingerprint not in self.seen and stats.new < budget:
                self._keep(node, stats)

    def _keep(self, node: Node, stats: LevelStats) -> None:
        self.seen.add(node.fingerprint)
        self.frontier.append(node)
        stats.new += 1
        stats.phases.update(e.phase for _, e in node.packed.vips)
        if node.packed.pending:
            stats.pending_states += 1

    def expand(self, stats: LevelStats, budget: int) -> list[list[Node]]:
        """Expand this part of the level: successors it owns join its next frontier, the others are
        returned per owner (each once)."""
        level, self.frontier = self.frontier, []
        outgoing: list[list[Node]] = [[] for _ in range(self.parts)]
        seen, sent, part, parts = self.seen, self.sent, self.part, self.parts
        for node in level:
            for edge in self.expander.successors(node):
                stats.edges += 1
                if edge.moved or edge.mismatch is not None:
                    stats.findings.append(Finding(edge.path, edge.mismatch))
                fp = edge.fingerprint
                to = 0 if parts == 1 else owner(edge.home, parts)  # owner(home, 1); not part: an actor expands as -1
                if to == part:
                    if fp not in seen and stats.new < budget:
                        self._keep(edge.node(), stats)
                elif fp not in sent:
                    sent.add(fp)
                    outgoing[to].append(edge.node())
        return outgoing


# ---------------------------------------------------------------- the search


@dataclass
class SearchResult:
    scope: Scope
    states: int
    edges: int
    seconds: float
    depth: int
    cpu_seconds: float = 0.0
    """CPU time of every process of the search."""
    peak_rss: int = 0
    """Peak resident memory of the search's processes together, in bytes (sampled at each level)."""
    memory: int = 0
    """How much of it the search added (the peak minus the processes' memory when it started)."""
    workers: int = 1
    refinement: bool = False
    group: int = 1
    """Size of the symmetry group (1: no two connections are interchangeable)."""
    phases: frozenset[int] = frozenset()
    """The VIPTable phases (packets' view) seen in some state."""
    pending_states: int = 0
    counterexample: Trace | None = None
    verdict: Verdict | None = None
    mismatch: Mismatch | None = None
    """The refinement mismatch that stopped the search (replayed: the same)."""
    complete: bool = True
    """No state budget was hit (with ``depth_bounded``: every state within the depth)."""
    depth_bounded: bool = False

    @property
    def rate(self) -> float:
        """Distinct states per second (TLC's ``ds/min``, per second)."""
        return self.states / self.seconds if self.seconds else 0.0

    @property
    def generated_rate(self) -> float:
        """States generated per second as TLC counts them (its ``s/min``, per second): every successor
        computed, whether seen before or not; here, every edge."""
        return self.edges / self.seconds if self.seconds else 0.0

    @property
    def fixpoint(self) -> bool:
        """Every reachable state was explored: the frontier ran empty, no depth or state budget cut it."""
        return self.complete and not self.depth_bounded and self.counterexample is None and self.mismatch is None

    @property
    def collision_bound(self) -> float:
        """An upper bound on the probability that two of the states shared a fingerprint."""
        return self.group**2 * self.states * (self.states - 1) / 2**65

    def coverage(self) -> str:
        if not self.complete:
            return f"INCOMPLETE: stopped at the budget of {self.scope.max_states} states"
        if self.depth_bounded:
            return f"every state within {self.scope.max_depth} steps"
        return "fixpoint: every reachable state"


class SearchError(RuntimeError):
    """The model failed on a path of the search (a model bug, or a worker died)."""


class Runner(Protocol):
    """Where a search's partitions live and how a level runs on them: one process, forked processes
    (``_Serial``, ``_Processes``), or Dask actors (``silkcheck.search_cluster``)."""

    def admit_root(self) -> LevelStats: ...
    def frontier_size(self) -> int: ...
    def level(self, budget: int) -> LevelStats: ...
    def rss(self) -> int: ...
    def worker_cpu(self) -> float: ...
    def close(self) -> None: ...


def search(scope: Scope, progress: Callable[[str], None] | None = None, refinement: bool = False,
           workers: int = 1, memo: bool = True,
           runner: Callable[[Expander], Runner] | None = None) -> SearchResult:  # fmt: skip
    """Breadth-first over reachable states; stop at the first PCC violation the oracle confirms, or
    (with ``refinement``) at the first step the abstract system cannot take. ``memo=False``: step the
    model on every edge, as the refinement check does, also without it (``Expander``). ``runner``
    places the partitions (``workers`` of them) elsewhere; by default this process, or forked ones."""
    start, cpu_start = time.perf_counter(), time.process_time()
    expander = Expander(scope, refinement, memo)
    place = runner or (_Serial if workers <= 1 else lambda expander: _Processes(expander, workers))
    result = SearchResult(scope, 0, 0, 0.0, 0, workers=max(workers, 1), refinement=refinement,
                          group=expander.canon.group)  # fmt: skip
    with cycle_collection_paused():  # forked partitions inherit the pause
        run = place(expander)
        rss_start = run.rss()
        try:
            totals = run.admit_root()
            level = depth = 0
            while run.frontier_size():
                if scope.max_depth is not None and level >= scope.max_depth:
                    result.depth_bounded = True
                    break
                budget = scope.max_states - totals.new
                stats = run.level(budget)
                totals.add(stats)
                result.peak_rss = max(result.peak_rss, run.rss())
                level += 1
                depth = level if stats.new else depth
                if _stopped(expander, stats.findings, result):
                    break
                if stats.new >= budget and run.frontier_size():
                    result.complete = False
                    break
                if progress:
                    rate = totals.new / (time.perf_counter() - start)
                    progress(f"{scope.name}: depth {level}, {totals.new:,} states, {run.frontier_size():,} in the "
                             f"frontier, {rate:,.0f} states/s")  # fmt: skip
            result.cpu_seconds = time.process_time() - cpu_start + run.worker_cpu()
        finally:
            run.close()
    result.states, result.edges, result.depth = totals.new, totals.edges, depth
    result.memory = max(result.peak_rss - rss_start, 0)
    result.phases, result.pending_states = frozenset(totals.phases), totals.pending_states
    result.seconds = time.perf_counter() - start
    return result


def _stopped(expander: Expander, findings: list[Finding], result: SearchResult) -> bool:
    """Confirm the level's findings, shortest and first path first: a refinement mismatch by replaying
    its trace, a packet off its anchor by the oracle. The first confirmed one ends the search."""
    for finding in sorted(findings, key=lambda f: (len(f.path), f.path)):
        if finding.mismatch is not None:
            trace = expander.trace(finding.path, f"refinement mismatch: {finding.mismatch}")
            replayed = refinement_of(trace).mismatch
            if replayed != finding.mismatch:
                raise SearchError(f"scope {expander.scope.name}: the search saw {finding.mismatch}, the replay of "
                                  f"its path {replayed}")  # fmt: skip
            result.mismatch, result.counterexample = finding.mismatch, trace
            return True
        trace = expander.trace(finding.path, "PCC violation")
        verdict = verdict_of(trace)
        if any(f.category == VIOLATION for f in verdict.findings):
            result.counterexample, result.verdict = trace, verdict
            return True
    return False


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Serial:
    """The search in this process: one partition."""

    def __init__(self, expander: Expander) -> None:
        self.partition = Partition(expander)

    def admit_root(self) -> LevelStats:
        stats = LevelStats()
        self.partition.admit([self.partition.expander.root], stats, 1)
        return stats

    def frontier_size(self) -> int:
        return len(self.partition.frontier)

    def level(self, budget: int) -> LevelStats:
        stats = LevelStats()
        self.partition.expand(stats, budget)
        return stats

    def rss(self) -> int:
        return _rss()

    def worker_cpu(self) -> float:
        return 0.0

    def close(self) -> None:
        pass


class _Processes:
    """The search in ``workers`` forked processes, one partition each, levels in lockstep."""

    def __init__(self, expander: Expander, workers: int) -> None:
        context = multiprocessing.get_context("fork")
        self.workers = workers
        self.inboxes = [context.Queue() for _ in range(workers)]
        self.results: Any = context.Queue()
        self.processes = [
            context.Process(target=_worker, args=(expander, part, workers, self.inboxes, self.results), daemon=True)
            for part in range(workers)
        ]  # fmt: skip
        for process in self.processes:
            process.start()
        self.sizes = [0] * workers
        self.rss_now = 0
        self.cpu = [0.0] * workers
        self.root = expander.root

    def admit_root(self) -> LevelStats:
        home = owner(self.root.home, self.workers)
        for part, inbox in enumerate(self.inboxes):
            inbox.put(("root", self.root if part == home else None))
        return self._collect("root")

    def frontier_size(self) -> int:
        return sum(self.sizes)

    def level(self, budget: int) -> LevelStats:
        share = -(-budget // self.workers)  # each owns about as many new states
        for inbox in self.inboxes:
            inbox.put(("level", share))
        return self._collect("level")

    def _collect(self, what: str) -> LevelStats:
        stats = LevelStats()
        rss = _rss()
        for _ in range(self.workers):
            message = self._result()
            if message[0] == "error":
                raise SearchError(message[1])
            _, part, part_stats, size, part_rss, cpu = message
            stats.add(part_stats)
            self.sizes[part] = size
            self.cpu[part] = cpu
            rss += part_rss
        self.rss_now = rss
        return stats

    def _result(self) -> Any:
        while True:
            try:
                return self.results.get(timeout=5)
            except queue.Empty:
                dead = [p.pid for p in self.processes if not p.is_alive()]
                if dead:
                    raise SearchError(f"search worker process(es) {dead} died") from None

    def rss(self) -> int:
        return self.rss_now

    def worker_cpu(self) -> float:
        return sum(self.cpu)

    def close(self) -> None:
        for inbox in self.inboxes:
            inbox.put(("stop",))
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()


_BATCH = 2000
"""States per message between processes."""


def _worker(expander: Expander, part: int, parts: int, inboxes: Sequence[Any], results: Any) -> None:
    """One partition in its own process: per level, expand, send foreign successors to their owners,
    admit what the others send, report."""
    partition = Partition(expander, part, parts)
    inbox = inboxes[part]
    early: list[Any] = []
    """States of a level that another process sent before this one read the level's command (the
    processes' queues are not ordered with each other)."""
    try:
        while True:
            message = inbox.get()
            if message[0] in ("states", "done"):
                early.append(message)
                continue
            if message[0] == "stop":
                return
            stats = LevelStats()
            if message[0] == "root":
                partition.admit([] if message[1] is None else [message[1]], stats, 1)
            else:
                budget = message[1]
                outgoing = partition.expand(stats, budget)
                for other in range(parts):
                    if other != part:
                        for i in range(0, len(outgoing[other]), _BATCH):
                            inboxes[other].put(("states", outgoing[other][i : i + _BATCH]))
                        inboxes[other].put(("done",))
                backlog, early = early, []
                done = 0
                while done < parts - 1:
                    got = backlog.pop(0) if backlog else inbox.get()
                    if got[0] == "states":
                        partition.admit(got[1], stats, budget)
                    else:
                        done += 1
            results.put(("level", part, stats, len(partition.frontier), _rss(), time.process_time()))
    except Exception:  # reported to the coordinator, which raises it
        results.put(("error", f"search worker {part}:\n{traceback.format_exc()}"))


# ---------------------------------------------------------------- checking the quotient


def quotient_errors(scope: Scope, limit: int = 20) -> list[str]:
    """Search ``scope`` keeping one concrete state per key, and at every merge (an edge into a key seen
    before, from another concrete state) check that the merged states have the same successor keys and
    the same PCC outcomes. Empty: the image is exact on every merge this scope makes."""
    expander = Expander(scope, refinement=False, memo=False)
    stored: dict[int, Node] = {expander.root.fingerprint: expander.root}
    frontier = deque([expander.root])
    errors: list[str] = []
    checked: set[tuple[int, Packed, tuple[Any, ...]]] = set()

    def outcomes(node: Node) -> list[tuple[int, bool]]:
        return sorted((edge.fingerprint, edge.moved) for edge in expander.successors(node))

    while frontier and len(errors) < limit:
        node = frontier.popleft()
        if scope.max_depth is not None and len(node.path) >= scope.max_depth:
            continue
        for edge in expander.successors(node):
            child = edge.node()
            first = stored.get(child.fingerprint)
            if first is None:
                stored[child.fingerprint] = child
                frontier.append(child)
                continue
            same = first.packed == child.packed and first.now == child.now and first.watch == child.watch
            if same or (child.fingerprint, child.packed, child.watch) in checked:
                continue
            checked.add((child.fingerprint, child.packed, child.watch))
            if outcomes(first) != outcomes(child):
                _, first_labels = expander.replay(first.path)
                _, labels = expander.replay(child.path)
                errors.append(f"merged states differ in their successors: {first_labels} vs {labels}")
    return errors


# ---------------------------------------------------------------- the scopes

_UPDATE_CONFIG = Config(
    digest_bits=8,
    stages=2,
    buckets_per_stage=2,
    slots_per_bucket=1,
    bloom_bits=2,
    bloom_hashes=1,
    version_bits=2,
    epoch_bits=2,
    learn_delay_bound=1,
    idle_timeout=1,
    teardown_grace=1,
)
_EXPIRY_CONFIG = replace(_UPDATE_CONFIG, bloom_bits=1)
_FULL_TABLE_CONFIG = replace(_UPDATE_CONFIG, stages=1, buckets_per_stage=1)
_COLLISION_CONFIG = replace(_UPDATE_CONFIG, digest_bits=1, buckets_per_stage=1, bloom_bits=1, learn_delay_bound=0,
                            teardown_grace=0)  # fmt: skip
_PROMPT_CONFIG = replace(_UPDATE_CONFIG, learn_delay_bound=0)
"""Learn events visible at once (so no delay faults): what lets two connections reach a fixpoint."""

SCOPES = {
    # One connection, whole reachable graphs.
    "update-1": Scope("update-1", _UPDATE_CONFIG, connections=1, updates=1, expiry=False),
    "expiry-1": Scope("expiry-1", _EXPIRY_CONFIG, connections=1, updates=1),
    "two-updates-1": Scope("two-updates-1", _UPDATE_CONFIG, connections=1, updates=2, expiry=False),
    # Write-granular: packets, ticks and learn delays between the CPU's single table writes.
    "update-1-writes": Scope("update-1-writes", _UPDATE_CONFIG, connections=1, updates=1, expiry=False, writes=True),
    # Two connections, whole reachable graphs (``silkcheck prove --bench``).
    "update-2": Scope("update-2", _PROMPT_CONFIG, connections=2, updates=1, expiry=False),
    "full-table-2": Scope("full-table-2", replace(_PROMPT_CONFIG, stages=1, buckets_per_stage=1), connections=2,
                          updates=1, expiry=False),
    # Clients 1 and 3 have the same digest and (one bucket per stage) the same key in both stages.
    "collision-2": Scope("collision-2", _COLLISION_CONFIG, connections=2, updates=1, expiry=False, clients=(1, 3)),
    "expiry-2": Scope("expiry-2", replace(_EXPIRY_CONFIG, learn_delay_bound=0), connections=2, updates=0),
    "update-2-writes": Scope("update-2-writes", _PROMPT_CONFIG, connections=2, updates=1, expiry=False, writes=True),
    # Two connections or more, every state within a depth.
    "update": Scope("update", _UPDATE_CONFIG, connections=2, updates=1, expiry=False, max_depth=7),
    "expiry": Scope("expiry", _EXPIRY_CONFIG, connections=1, updates=2, max_depth=9),
    "full-table": Scope("full-table", _FULL_TABLE_CONFIG, connections=2, updates=1, expiry=False, max_depth=6),
    "collision": Scope("collision", _COLLISION_CONFIG, connections=3, updates=1, delay_faults=False, max_depth=6),
}  # fmt: skip
BENCH_SCOPES = ("update-2", "full-table-2", "collision-2", "expiry-2", "update-2-writes")
"""Two-connection scopes ``silkcheck prove --bench`` takes to their fixpoint."""
