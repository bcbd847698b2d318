"""The SilkRoad ingress pipeline: the P4 program, table for table.

``process_packet`` reads like ``p4/silkroad.p4``'s ingress control: VIPTable,
SYN authentication, ConnTable stages, TransitTable, DIPPoolTable, learn.
``DataPlane`` is also the model *backend* of the switch CPU: the CPU writes it
through the same few operations it sends to BMv2 over P4Runtime.

SYN cookies are a CRC of a secret key and the 5-tuple. A CRC is not a MAC: an
attacker who sees one cookie can compute every other (``proofs/cookie.py``), so
the defence assumes an off-path attacker, who has seen no SYN-ACK under the
current key. (With a MAC it would be enough that it never sees the SYN-ACKs sent
to the addresses it spoofs.)
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from model import decisions as d
from model.config import Config
from model.hashing import FlowHashes, HashPlan, dip_index
from model.observations import DROP, FORWARD, REPLY, PacketObservation
from model.types import ACK, RST, SYN, Dip, FiveTuple, Packet, Vip

C = d.CONCRETE


class VipEntry(NamedTuple):
    """VIPTable action data. In NORMAL, old_version == new_version is the current version."""

    old_version: int
    new_version: int
    phase: int = d.NORMAL
    epoch: int = 0
    slot: int = 0
    """The TransitTable slot of the update in progress."""

    @property
    def current(self) -> int:
        return self.new_version if self.phase in (d.TRANSIT, d.SEALED) else self.old_version


@dataclass(slots=True)
class ConnEntry:
    """A ConnTable entry: the version, plus the hardware idle timer."""

    version: int
    last_hit: int


FILTERED_KINDS = frozenset({"new", "auth"})
"""Learn kinds the learning filter de-duplicates: every packet of a pending connection
misses, and repeats of these say nothing new. SYN, collision and FIN events are never
filtered: the CPU orders a connection's SYNs and FINs by send time, and a filtered
repeat would hide a SYN that came after a FIN (a new incarnation)."""


class LearnEvent(NamedTuple):
    sent: int
    visible: int
    kind: str  # "new" | "syn" | "collision" | "end" | "auth"
    ft: FiveTuple
    version: int
    hit_stage: int | None = None
    """The ConnTable stage whose entry the packet hit (its version is that entry's); None: it missed.
    Which entry, not only whether: with aliasing digests a connection's packet can hit another
    connection's entry while its own is being removed, and only its own makes the event stale."""

    @property
    def hit(self) -> bool:
        return self.hit_stage is not None


class LearnChannel:
    """The learn-event path from the data plane to the CPU: the ASIC's learning
    filter and the queue the CPU reads. Shared by the model's ``DataPlane`` and
    the BMv2 target, whose pipeline reports the raw learn events."""

    learn_queue: deque[LearnEvent]
    learn_filter: set[tuple[str, FiveTuple]]

    def learn(self, t: int, kind: str, ft: FiveTuple, version: int, hit_stage: int | None = None) -> bool:
        """Send a learn event; the learning filter drops a repeat of a queued idempotent one."""
        key = (kind, ft)
        if kind in FILTERED_KINDS:
            if key in self.learn_filter:
                return False
            self.learn_filter.add(key)
        self.learn_queue.append(LearnEvent(t, t, kind, ft, version, hit_stage))
        return True

    def read_learns(self, now: int, limit: int | None) -> list[LearnEvent]:
        """Hand the CPU the visible learn events, oldest first, and forget them."""
        taken: list[LearnEvent] = []
        kept: deque[LearnEvent] = deque()
        for event in self.learn_queue:
            if event.visible <= now and (limit is None or len(taken) < limit):
                taken.append(event)
                self.learn_filter.discard((event.kind, event.ft))
            else:
                kept.append(event)
        self.learn_queue = kept
        return taken

    # faults on the learn channel

    def lose_learn(self, index: int) -> LearnEvent:
        event = self.learn_queue[index]
        del self.learn_queue[index]
        self.learn_filter.discard((event.kind, event.ft))
        return event

    def delay_learn(self, index: int, delay: int) -> LearnEvent:
        event = self.learn_queue[index]
        self.learn_queue[index] = event._replace(visible=max(event.visible, event.sent + delay))
        return event


@dataclass
class DataPlane(LearnChannel):
    config: Config
    plan: HashPlan
    conn: list[dict[tuple[int, int], ConnEntry]]
    vips: dict[Vip, VipEntry] = field(default_factory=dict)
    pools: dict[tuple[Vip, int], tuple[Dip, ...]] = field(default_factory=dict)
    transit: list[list[int]] = field(default_factory=list)
    """TransitTable: per slot, one epoch per Bloom cell."""
    whitelist: set[int] = field(default_factory=set)
    learn_queue: deque[LearnEvent] = field(default_factory=deque)
    learn_filter: set[tuple[str, FiveTuple]] = field(default_factory=set)
    decisions: DecisionTable = field(default_factory=lambda: decision_table())
    """The ingress decisions, tabulated from ``model.decisions`` when the data plane is made, as a
    P4 program's are when it is compiled: a patched design (a mutant, a proof's variant) is
    patched before its switch boots."""

    @classmethod
    def empty(cls, config: Config) -> DataPlane:
        return cls(
            config=config,
            plan=HashPlan(config),
            conn=[{} for _ in range(config.stages)],
            transit=[[0] * config.bloom_bits for _ in range(config.transit_slots)],
        )

    # ------------------------------------------------------------ tables

    def lookup(self, h: FlowHashes) -> tuple[int, ConnEntry] | None:
        """ConnTable: the first stage whose (bucket, digest) matches wins."""
        digest, buckets = h.digest, h.buckets
        for stage, table in enumerate(self.conn):
            entry = table.get((buckets[stage], digest))
            if entry is not None:
                return stage, entry
        return None

    def transit_hit(self, h: FlowHashes, slot: int, epoch: int) -> bool:
        cells = self.transit[slot]
        return d.transit_contains(C, [cells[i] for i in h.bloom], epoch)

    def record_transit(self, h: FlowHashes, slot: int, epoch: int) -> None:
        cells = self.transit[slot]
        for i in h.bloom:
            cells[i] = epoch

    # ------------------------------------------------------------ backend operations (the CPU's writes)

    def insert_conn(self, stage: int, bucket: int, digest: int, version: int, now: int) -> None:
        table = self.conn[stage]
        if (bucket, digest) in table:
            raise RuntimeError(f"ConnTable stage {stage}: duplicate key ({bucket}, {digest})")
        table[(bucket, digest)] = ConnEntry(version, now)

    def delete_conn(self, stage: int, bucket: int, digest: int) -> None:
        del self.conn[stage][(bucket, digest)]

    def idle_time(self, stage: int, bucket: int, digest: int, now: int) -> int:
        return now - self.conn[stage][(bucket, digest)].last_hit

    def write_pool(self, vip: Vip, version: int, pool: tuple[Dip, ...]) -> None:
        self.pools[(vip, version)] = pool

    def delete_pool(self, vip: Vip, version: int) -> None:
        del self.pools[(vip, version)]

    def write_vip(self, vip: Vip, entry: VipEntry) -> None:
        self.vips[vip] = entry

    def add_whitelist(self, src_ip: int) -> None:
        self.whitelist.add(src_ip)


class PacketDecision(NamedTuple):
    """What ``model.decisions`` says about a packet, for one value of its inputs."""

    drops: bool
    version: int
    """Which version it takes: 0 the hit entry's, 1 the VIP's old one, 2 its new one."""
    records: bool
    learns_new: bool
    learns_collision: bool


class DecisionTable(NamedTuple):
    """The ingress decisions tabulated over their finite inputs, as a P4 compiler turns
    conditions into a match-action table: each entry is computed by the functions of
    ``model.decisions`` (never a second copy of them), and a packet reads one entry."""

    consults: dict[tuple[bool, int], bool]
    """(hit, phase) -> whether the packet asks TransitTable."""
    decide: dict[tuple[bool, int, bool, bool], PacketDecision]
    """(hit, phase, transit hit, SYN) -> the rest."""


@lru_cache(maxsize=8)
def _tabulate(*decisions: object) -> DecisionTable:
    """``decisions``: the functions read, which key the table: one patched (a mutant, a proof's
    variant) tabulates anew."""
    markers = (object(), object(), object())  # packet_version only selects among its inputs
    bools = (False, True)
    consults: dict[tuple[bool, int], bool] = {}
    decide: dict[tuple[bool, int, bool, bool], PacketDecision] = {}
    for hit, phase in itertools.product(bools, d.PHASE_NAMES):
        consults[hit, phase] = C.and_(not hit, d.consults_transit(C, phase))
        for transit_hit, is_syn in itertools.product(bools, bools):
            version = d.packet_version(C, hit, markers[0], phase, transit_hit, markers[1], markers[2])
            decide[hit, phase, transit_hit, is_syn] = PacketDecision(
                drops=bool(d.drops_sealed(C, hit, phase, transit_hit)),
                version=next(i for i, marker in enumerate(markers) if marker is version),
                records=bool(d.records_transit(C, hit, phase)),
                learns_new=bool(d.learns_new(C, hit, phase, transit_hit)),
                learns_collision=bool(d.learns_collision(C, hit, is_syn)),
            )
    return DecisionTable(consults, decide)


def decision_table() -> DecisionTable:
    """The table of the decisions as ``model.decisions`` has them now."""
    return _tabulate(d.consults_transit, d.miss_version, d.packet_version, d.drops_sealed, d.records_transit,
                     d.learns_new, d.learns_collision)  # fmt: skip


def process_packet(dp: DataPlane, index: int, t: int, pkt: Packet) -> PacketObservation:
    """One packet through the ingress pipeline."""
    ft = pkt.ft
    vip_key = (ft.dst_ip, ft.dst_port, ft.proto)  # VIPTable's match key: equal to the ``Vip`` it was written with
    vip = dp.vips.get(vip_key)
    if vip is None:
        return PacketObservation(index, t, pkt, DROP, path="no-vip")

    if dp.config.syn_auth and pkt.is_tcp and ft.src_ip not in dp.whitelist:
        return _authenticate(dp, index, t, pkt, vip)

    h = dp.plan.flow(ft)
    found = dp.lookup(h)
    hit = found is not None
    table = dp.decisions
    phase = vip.phase
    consults = table.consults[hit, phase]
    transit_hit = consults and dp.transit_hit(h, vip.slot, vip.epoch)
    is_syn = pkt.is_syn
    decision = table.decide[hit, phase, transit_hit, is_syn]

    if decision.drops:
        return PacketObservation(index, t, pkt, DROP, path="miss:sealed-transit-hit")

    hit_stage: int | None = None
    hit_key: tuple[int, int, int] | None = None
    if found:
        hit_stage, entry = found
        hit_key = h.stage_keys[hit_stage]
        entry.last_hit = t
    version = (entry.version if found else 0, vip.old_version, vip.new_version)[decision.version]
    if decision.records:
        dp.record_transit(h, vip.slot, vip.epoch)

    learned: tuple[str, ...] = ()
    # A SYN's miss is learned apart from other misses, so the learning filter cannot
    # swallow the start of a new incarnation behind a queued event of the old one.
    new_kind = "syn" if is_syn else "new"
    if decision.learns_new and dp.learn(t, new_kind, ft, version, hit_stage):
        learned += (new_kind,)
    if decision.learns_collision and dp.learn(t, "collision", ft, version, hit_stage):
        learned += ("collision",)
    if pkt.is_end and dp.learn(t, "end", ft, version, hit_stage):
        learned += ("end",)

    pool = dp.pools.get((vip_key, version))
    if pool is None:  # DIPPoolTable miss: the version's pool was reclaimed
        return PacketObservation(index, t, pkt, DROP, learned=learned, hit_key=hit_key, path=f"no-pool:v{version}")
    dip = pool[dip_index(h.dip_hash, len(pool))]
    path = forward_path(hit_stage, consults, transit_hit, phase, version)
    # Every field, in order, on the path most packets take (a forwarded packet makes no reply: the three
    # zeros); ``tuple.__new__`` skips the NamedTuple's generated ``__new__``, half the observation's cost.
    fields = (index, t, pkt, FORWARD, dip, 0, 0, 0, learned, hit_key, path, h.buckets, h.digest)
    return tuple.__new__(PacketObservation, fields)


@lru_cache(maxsize=1 << 10)
def forward_path(hit_stage: int | None, consults: bool, transit_hit: bool, phase: int, version: int) -> str:
    """``PacketObservation.path`` of a forwarded packet: one string per decision, which the packets
    that take it share."""
    if hit_stage is not None:
        return f"hit:stage{hit_stage}:v{version}"
    if consults:
        return f"miss:transit-{'hit' if transit_hit else 'miss'}:v{version}"
    return f"miss:{d.PHASE_NAMES[phase]}:v{version}"


def _authenticate(dp: DataPlane, index: int, t: int, pkt: Packet, vip: VipEntry) -> PacketObservation:
    ft = pkt.ft
    cookie = dp.plan.cookie(ft)
    is_bare_ack = pkt.flags & (SYN | ACK | RST) == ACK
    outcome = d.auth_outcome(C, pkt.is_syn, is_bare_ack, pkt.ack == (cookie + 1) & 0xFFFFFFFF)
    if outcome == d.AUTH_SYNACK:
        return PacketObservation(
            index, t, pkt, REPLY,
            reply_flags=SYN | ACK, reply_seq=cookie, reply_ack=(pkt.seq + 1) & 0xFFFFFFFF, path="auth:syn-ack",
        )  # fmt: skip
    if outcome == d.AUTH_WHITELIST:
        learned = ("auth",) if dp.learn(t, "auth", ft, vip.current) else ()
        return PacketObservation(
            index, t, pkt, REPLY,
            reply_flags=RST, reply_seq=pkt.ack, learned=learned, path="auth:cookie-ok",
        )  # fmt: skip
    return PacketObservation(index, t, pkt, DROP, path="auth:drop")
