"""ConnTable at SilkRoad's scale: the SRAM image in numpy, and the CPU's placement over it.

``ConnTable`` is what the switch holds: per stage, bucket and slot one uint32
packing a valid bit, the version and the digest (4 bytes a slot, about 4.4 bytes
a connection at 90% load). Its ``lookup`` has ``DataPlane.lookup``'s meaning:
stages in order, the first (bucket, digest) match wins.

``BulkCpu`` is the switch CPU placing many connections at once under the rules
of ``model.cpu.Cpu``: ``slots_per_bucket`` entries a bucket, a (bucket, digest)
key at most once a stage, every write checked not to change any known
connection's lookup, cuckoo moves that insert the new copy before deleting the
old. Its shadow (like the real CPU's) knows which flow owns each slot.

Why a fast path is exact. A flow whose (bucket, digest) key in every stage is
shared with no other flow of the universe (*plain*) is watched by nobody else:
writing or moving it can change no other lookup and no key can be taken. Only
*aliased* flows (sharing a key somewhere; a handful among 10M with 24-bit
digests) need the reference's per-write check, done one at a time. Plain flows
are placed first-fit in stage order, vectorised stage by stage — the same
placement as one-by-one first-fit, because a bucket of stage s takes, in
arrival order, the first flows that reach it. What first-fit cannot place is
placed one by one with a breadth-first search for a chain of moves of plain
entries (``cuckoo_depth`` moves and ``search_limit`` buckets at most). Aliased
entries are never moved (the reference may move one out of an aliased flow's
way): placement differs from the reference's, the lookup semantics do not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from model import decisions as d
from model.config import Config
from model.hashing import STAGE_ORDERS

VALID = np.uint32(1 << 31)
UNKNOWN = -2
"""``BulkCpu.stage_of`` of a flow the CPU has not learned."""
UNPLACED = -1
"""``BulkCpu.stage_of`` of a learned flow without an entry of its own."""
MISS = -1
Write = tuple[int, int, int | None]
"""(stage, key, version) written into a ConnTable; version None deletes. key = bucket << 32 | digest."""
LOOKUP_CHUNK = 1 << 20


class GeometryError(ValueError):
    """A ConnTable shape the compact representation cannot hold."""


@dataclass(frozen=True)
class Geometry:
    stages: int
    buckets_per_stage: int
    slots_per_bucket: int
    digest_bits: int = 24
    version_bits: int = 6
    cuckoo_depth: int = 4

    def __post_init__(self) -> None:
        checks = [
            ("stages", 1, len(STAGE_ORDERS)),
            ("buckets_per_stage", 1, (1 << 32) - 1),
            ("slots_per_bucket", 1, 255),
            ("digest_bits", 1, 30),
            ("version_bits", 1, 30),
            ("cuckoo_depth", 0, 64),
        ]
        for name, low, high in checks:
            value = getattr(self, name)
            if not low <= value <= high:
                raise GeometryError(f"{name} = {value} is out of range [{low}, {high}]")
        if self.digest_bits + self.version_bits > 31:
            raise GeometryError(
                f"digest_bits + version_bits = {self.digest_bits + self.version_bits}: a slot packs both "
                "and a valid bit into 32 bits, so at most 31"
            )

    @property
    def capacity(self) -> int:
        return self.stages * self.buckets_per_stage * self.slots_per_bucket

    @property
    def hardware_bits_per_slot(self) -> int:
        """What a switch stores per slot: digest + version (occupancy is a digest/valid encoding)."""
        return self.digest_bits + self.version_bits

    @classmethod
    def from_config(cls, config: Config) -> Geometry:
        return cls(config.stages, config.buckets_per_stage, config.slots_per_bucket, config.digest_bits,
                   config.version_bits, config.cuckoo_depth)  # fmt: skip

    @classmethod
    def for_load(cls, connections: int, load: float, stages: int, slots_per_bucket: int, **kwargs: int) -> Geometry:
        """The smallest table that holds ``connections`` at no more than ``load``."""
        buckets = math.ceil(connections / (load * stages * slots_per_bucket))
        return cls(stages, buckets, slots_per_bucket, **kwargs)


class ConnTable:
    """The switch's ConnTable: uint32 cells [stage, bucket, slot] = valid | version | digest.

    The valid entries of a bucket are kept in its first ``fill`` slots; a bucket
    is a set of keys, so where in the bucket an entry sits has no meaning.
    """

    def __init__(self, geometry: Geometry) -> None:
        g = geometry
        self.geometry = g
        self.cells = np.zeros((g.stages, g.buckets_per_stage, g.slots_per_bucket), dtype=np.uint32)
        self.fill = np.zeros((g.stages, g.buckets_per_stage), dtype=np.uint8)
        self._digest_mask = np.uint32((1 << g.digest_bits) - 1)
        self.key_mask = VALID | self._digest_mask
        self._version_mask = np.uint32((1 << g.version_bits) - 1)

    def pack(self, digest: np.ndarray, version: np.ndarray) -> np.ndarray:
        return VALID | (version.astype(np.uint32) << np.uint32(self.geometry.digest_bits)) | digest

    def version_of(self, cell: np.ndarray) -> np.ndarray:
        return (cell >> np.uint32(self.geometry.digest_bits)) & self._version_mask

    @property
    def connections(self) -> int:
        return int(self.fill.sum(dtype=np.int64))

    @property
    def load(self) -> float:
        return self.connections / self.geometry.capacity

    @property
    def nbytes(self) -> int:
        return self.cells.nbytes + self.fill.nbytes

    def lookup(self, digest: np.ndarray, buckets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each flow: (stage of the first (bucket, digest) match or MISS, its version or MISS)."""
        count = len(digest)
        stage_hit = np.full(count, MISS, dtype=np.int8)
        version = np.full(count, MISS, dtype=np.int32)
        for start in range(0, count, LOOKUP_CHUNK):
            part = slice(start, start + LOOKUP_CHUNK)
            self._lookup_chunk(digest[part], buckets[:, part], stage_hit[part], version[part])
        return stage_hit, version

    def _lookup_chunk(self, digest: np.ndarray, buckets: np.ndarray, stage_hit: np.ndarray,
                      version: np.ndarray) -> None:  # fmt: skip
        pending = np.arange(len(digest))
        for stage in range(self.geometry.stages):
            rows = self.cells[stage][buckets[stage, pending]]
            match = (rows & self.key_mask) == (VALID | digest[pending])[:, None]
            found = match.any(axis=1)
            hit = pending[found]
            stage_hit[hit] = stage
            version[hit] = self.version_of(rows[found, match[found].argmax(axis=1)])
            pending = pending[~found]

    def version_at(self, stage: int, bucket: int, digest: int) -> int:
        """The version of the entry (bucket, digest) in ``stage``, or MISS."""
        cells = self.cells[stage, bucket, : int(self.fill[stage, bucket])]
        match = np.nonzero((cells & self.key_mask) == (VALID | np.uint32(digest)))[0]
        return int(self.version_of(cells[match[0]])) if len(match) else MISS

    def entries(self) -> list[tuple[int, int, int, int]]:
        """Every valid entry as (stage, bucket, digest, version)."""
        stage, bucket, slot = np.nonzero(self.cells & VALID)
        cells = self.cells[stage, bucket, slot]
        return list(zip(stage.tolist(), bucket.tolist(), (cells & self._digest_mask).tolist(),
                        self.version_of(cells).tolist(), strict=True))  # fmt: skip


@dataclass
class PlacementStats:
    first_fit: int = 0
    """Placed by the vectorised first-fit pass."""
    one_step: int = 0
    """Placed by vectorised rounds that each move one plain entry out of the way."""
    one_by_one: int = 0
    """Placed one at a time (aliased flows and what the vectorised passes left)."""
    moves: int = 0
    """Existing entries moved by cuckoo chains."""
    failed: int = 0


@dataclass
class BulkCpu:
    """The switch CPU's placement over a universe of flows known by their hashes.

    ``digest[i]``, ``buckets[:, i]`` and ``versions[i]`` describe flow ``i``;
    ``insert`` learns flows by index.
    """

    geometry: Geometry
    digest: np.ndarray
    buckets: np.ndarray
    versions: np.ndarray
    table: ConnTable = field(init=False)
    owner: np.ndarray = field(init=False)
    stage_of: np.ndarray = field(init=False)
    aliased: np.ndarray = field(init=False)
    watchers: dict[tuple[int, int], np.ndarray] = field(init=False)
    """(stage, key) -> the flows reading that key, for keys shared by several flows."""
    stats: PlacementStats = field(default_factory=PlacementStats)
    search_limit: int = 1024
    """Buckets a cuckoo search may visit for one flow: near capacity an unbounded breadth-first
    search costs seconds a flow, and a real CPU has a time budget per insertion too."""

    def __post_init__(self) -> None:
        g = self.geometry
        count = len(self.digest)
        if count >= 1 << 31:
            raise GeometryError(f"{count} flows: slot owners are int32")
        if int(self.versions.max(initial=0)) >> g.version_bits:
            raise GeometryError(f"a version does not fit in {g.version_bits} bits")
        self.table = ConnTable(g)
        self.owner = np.full((g.stages, g.buckets_per_stage, g.slots_per_bucket), -1, dtype=np.int32)
        self.stage_of = np.full(count, UNKNOWN, dtype=np.int8)
        self.aliased = np.zeros(count, dtype=bool)
        self.watchers = {}
        for stage in range(g.stages):
            keys = self._keys(stage, slice(None))
            ordered = np.sort(keys)
            repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
            if not len(repeated):
                continue
            members = np.nonzero(repeated[np.searchsorted(repeated, keys).clip(max=len(repeated) - 1)] == keys)[0]
            self.aliased[members] = True
            member_keys = keys[members]
            order = np.argsort(member_keys, kind="stable")
            boundaries = np.nonzero(member_keys[order][1:] != member_keys[order][:-1])[0] + 1
            for group in np.split(members[order], boundaries):
                self.watchers[(stage, int(keys[group[0]]))] = group

    def _keys(self, stage: int, flows: slice | np.ndarray) -> np.ndarray:
        return (self.buckets[stage, flows].astype(np.uint64) << np.uint64(32)) | self.digest[flows]

    # ------------------------------------------------------------ the public operations

    def insert(self, flows: np.ndarray) -> np.ndarray:
        """Learn and place ``flows`` (indices, in arrival order); returns those that could not be placed."""
        flows = np.asarray(flows, dtype=np.int64)
        if (self.stage_of[flows] != UNKNOWN).any():
            raise ValueError("insert: a flow is learned twice")
        unplaced_before = np.count_nonzero(self.stage_of == UNPLACED)
        self.stage_of[flows] = UNPLACED
        if np.count_nonzero(self.stage_of == UNPLACED) - unplaced_before != len(flows):
            raise ValueError("insert: a flow is listed twice")
        leftover = self._relocate_one_step(self._first_fit(flows[~self.aliased[flows]]))
        one_by_one = flows[self.aliased[flows] | np.isin(flows, leftover)]
        failed = [int(x) for x in one_by_one.tolist() if not self._place(x)]
        self.stats.failed += len(failed)
        return np.array(failed, dtype=np.int64)

    def lookup(self, flows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.table.lookup(self.digest[flows], self.buckets[:, flows])

    @property
    def nbytes(self) -> int:
        """The CPU's shadow: slot owners, flow stages, flow hashes and versions."""
        arrays = (self.owner, self.stage_of, self.aliased, self.digest, self.buckets, self.versions)
        return sum(a.nbytes for a in arrays)

    # ------------------------------------------------------------ vectorised first fit

    def _first_fit(self, flows: np.ndarray) -> np.ndarray:
        """Place plain flows in the first stage with room, in arrival order; return the rest."""
        g = self.geometry
        remaining = flows
        for stage in range(g.stages):
            if not len(remaining):
                break
            bucket = self.buckets[stage, remaining]
            order = np.argsort(bucket, kind="stable")
            sorted_bucket = bucket[order]
            position = np.arange(len(order))
            starts = np.ones(len(order), dtype=bool)
            starts[1:] = sorted_bucket[1:] != sorted_bucket[:-1]
            rank = position - np.maximum.accumulate(np.where(starts, position, 0))
            slot = self.table.fill[stage, sorted_bucket].astype(np.int64) + rank
            fits = slot < g.slots_per_bucket
            placed = remaining[order[fits]]
            placed_bucket = sorted_bucket[fits]
            self.table.cells[stage, placed_bucket, slot[fits]] = self.table.pack(
                self.digest[placed], self.versions[placed]
            )
            self.owner[stage, placed_bucket, slot[fits]] = placed
            self.stage_of[placed] = stage
            added = np.bincount(placed_bucket, minlength=g.buckets_per_stage)
            self.table.fill[stage] += added.astype(np.uint8)
            self.stats.first_fit += len(placed)
            remaining = remaining[np.sort(order[~fits])]
        return remaining

    def _relocate_one_step(self, flows: np.ndarray) -> np.ndarray:
        """Rounds of one-move cuckoo chains for plain flows first-fit could not place.

        Each flow picks the first (stage, slot, target stage) whose blocker is plain
        and has room in the target; of those picks, only moves touching buckets no
        other pick touches are made, so they are independent. Each is the writes
        ``insert blocker at target; delete blocker; insert flow``. Returns the rest.
        """
        g = self.geometry
        stages, slots, width = g.stages, g.slots_per_bucket, g.buckets_per_stage
        remaining = flows
        while len(remaining):
            own_buckets = self.buckets[:, remaining].T.astype(np.int64)  # [flow, stage]
            blockers = self.owner[np.arange(stages)[None, :], own_buckets]  # [flow, stage, slot]
            movable = ~self.aliased[blockers]
            targets = self.buckets[:, blockers].astype(np.int64)  # [target, flow, stage, slot]
            room = self.table.fill[np.arange(stages)[:, None, None, None], targets] < slots
            other = np.arange(stages)[:, None, None, None] != np.arange(stages)[None, None, :, None]
            feasible = (room & other & movable[None]).transpose(1, 2, 3, 0).reshape(len(remaining), -1)
            has = feasible.any(axis=1)
            choice = feasible.argmax(axis=1)[has]
            stage, slot, target = np.unravel_index(choice, (stages, slots, stages))
            rows = np.nonzero(has)[0]
            source_id = stage * width + own_buckets[rows, stage]
            target_bucket = targets[target, rows, stage, slot]
            target_id = target * width + target_bucket
            ids, counts = np.unique(np.concatenate([source_id, target_id]), return_counts=True)
            alone = counts[np.searchsorted(ids, source_id)] + counts[np.searchsorted(ids, target_id)] == 2
            if not alone.any():
                break
            rows, stage, slot, target, target_bucket = (a[alone] for a in (rows, stage, slot, target, target_bucket))
            flow = remaining[rows]
            blocker = blockers[rows, stage, slot]
            source_bucket = own_buckets[rows, stage]
            target_slot = self.table.fill[target, target_bucket].astype(np.int64)
            self.table.cells[target, target_bucket, target_slot] = self.table.cells[stage, source_bucket, slot]
            self.owner[target, target_bucket, target_slot] = blocker
            self.table.fill[target, target_bucket] += np.uint8(1)
            self.stage_of[blocker] = target
            self.table.cells[stage, source_bucket, slot] = self.table.pack(self.digest[flow], self.versions[flow])
            self.owner[stage, source_bucket, slot] = flow
            self.stage_of[flow] = stage
            self.stats.one_step += len(flow)
            self.stats.moves += len(flow)
            placed = np.zeros(len(remaining), dtype=bool)
            placed[rows] = True
            remaining = remaining[~placed]
        return remaining

    # ------------------------------------------------------------ one at a time, with the reference's checks

    def _bucket(self, flow: int, stage: int) -> int:
        return int(self.buckets[stage, flow])

    def _has_room(self, stage: int, bucket: int) -> bool:
        return int(self.table.fill[stage, bucket]) < self.geometry.slots_per_bucket

    def _entry_version(self, stage: int, flow: int) -> int:
        """The version of the entry matching ``flow``'s key in ``stage``, or MISS."""
        return self.table.version_at(stage, self._bucket(flow, stage), int(self.digest[flow]))

    def _key(self, flow: int, stage: int) -> int:
        return (int(self.buckets[stage, flow]) << 32) | int(self.digest[flow])

    def _resolve(self, flow: int, writes: Sequence[Write] = ()) -> int:
        """``Cpu._resolve``: the version ``flow``'s lookup gets, as if ``writes`` were made."""
        for stage in range(self.geometry.stages):
            written = [version for s, key, version in writes if s == stage and key == self._key(flow, stage)]
            if written:
                if written[-1] is not None:
                    return written[-1]
                continue
            version = self._entry_version(stage, flow)
            if version != MISS:
                return version
        return MISS

    def _keeps_lookups(self, writes: Sequence[Write], owner: int) -> bool:
        """By the model's own ``write_keeps_lookup``: do ``writes`` (for ``owner``'s entry) keep
        every known lookup of the keys they touch?"""
        watching = {owner}
        for stage, key, _ in writes:
            watching.update(self.watchers.get((stage, key), np.array([], dtype=np.int64)).tolist())
        for watcher in watching:
            own_stage = int(self.stage_of[watcher])
            if own_stage == UNKNOWN:
                continue
            # The owner inserts (or moves) its entry: it must resolve to its own version after.
            keeps = d.write_keeps_lookup(d.CONCRETE, watcher == owner, False, self._resolve(watcher),
                                         self._resolve(watcher, writes), int(self.versions[watcher]),
                                         own_stage != UNPLACED)  # fmt: skip
            if not keeps:
                return False
        return True

    def _may_write(self, flow: int, stage: int) -> bool:
        """``Cpu._fits`` without the room check: the key is free and the write changes no known lookup."""
        if not self.aliased[flow]:
            return True
        if self._entry_version(stage, flow) != MISS:
            return False
        return self._keeps_lookups([(stage, self._key(flow, stage), int(self.versions[flow]))], flow)

    def _place(self, flow: int) -> bool:
        """First fit, else a breadth-first search for the shortest chain of moves that makes room."""
        g = self.geometry
        starts = [stage for stage in range(g.stages) if self._may_write(flow, stage)]
        for stage in starts:
            if self._has_room(stage, self._bucket(flow, stage)):
                self._move(flow, stage)
                self.stats.one_by_one += 1
                return True
        return self._cuckoo(flow, starts)

    def _cuckoo(self, flow: int, starts: list[int]) -> bool:
        """Breadth-first search for the shortest chain of moves of plain entries that frees a slot
        in one of ``starts``; makes the moves, last first."""
        g = self.geometry
        frontier = [(stage, self._bucket(flow, stage), ((flow, stage),)) for stage in starts]
        visited = {(stage, bucket) for stage, bucket, _ in frontier}
        for _ in range(g.cuckoo_depth):
            deeper = []
            for stage, bucket, chain in frontier:
                in_chain = {moved for moved, _ in chain}
                for blocker in self.owner[stage, bucket].tolist():
                    if self.aliased[blocker] or blocker in in_chain:
                        continue
                    for target in range(g.stages):
                        target_bucket = self._bucket(blocker, target)
                        if target == stage or (target, target_bucket) in visited:
                            continue
                        longer = (*chain, (blocker, target))
                        if self._has_room(target, target_bucket):
                            for moved, to in reversed(longer):
                                self._move(moved, to)
                            self.stats.one_by_one += 1
                            self.stats.moves += len(longer) - 1
                            return True
                        visited.add((target, target_bucket))
                        deeper.append((target, target_bucket, longer))
                        if len(visited) >= self.search_limit:
                            return False
            frontier = deeper
        return False

    def _move(self, flow: int, stage: int) -> None:
        """Insert ``flow``'s entry in ``stage``, then delete its old one: never a window without one."""
        bucket = self._bucket(flow, stage)
        slot = int(self.table.fill[stage, bucket])
        self.table.cells[stage, bucket, slot] = self.table.pack(self.digest[flow], self.versions[flow])
        self.owner[stage, bucket, slot] = flow
        self.table.fill[stage, bucket] += 1
        old = int(self.stage_of[flow])
        self.stage_of[flow] = stage
        if old >= 0:
            self._delete(flow, old)

    def _delete(self, flow: int, stage: int) -> None:
        bucket = self._bucket(flow, stage)
        last = int(self.table.fill[stage, bucket]) - 1
        slot = int(np.nonzero(self.owner[stage, bucket, : last + 1] == flow)[0][0])
        self.table.cells[stage, bucket, slot] = self.table.cells[stage, bucket, last]
        self.owner[stage, bucket, slot] = self.owner[stage, bucket, last]
        self.table.cells[stage, bucket, last] = 0
        self.owner[stage, bucket, last] = -1
        self.table.fill[stage, bucket] -= 1
