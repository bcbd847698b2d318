"""Strategies: what can happen next to a SilkRoad switch, as a client population sees it.

The generators here are shared by the Hypothesis state machines (``fuzz.machines``)
and the random-walk explorer (``fuzz.walk``). Each draws its choices from a
``Chooser``: a ``random.Random`` for the walk, Hypothesis's ``data.draw`` for the
machines, so one piece of code decides what an interesting event looks like and
Hypothesis can still shrink every choice.

A ``World`` is the environment around one switch: the clients (their 5-tuples,
the SYN-ACKs they still have to answer, which ones ended), an attacker (the
SYN-ACKs sent to the addresses it owns), the operator (the last pool it asked for
per VIP) and the clock. It turns every generated event into one step of the
runner every target uses (``silkcheck.targets.model.Driver``) and keeps the trace,
so any failure is a replayable trace.

Clients and attackers are reactive: a cookie answer is a ``CookieAck``, whose ack
the runner computes from the SYN-ACK the switch actually sent, so a trace found on
a mutant means the same on the shipped model, on BMv2, and after shrinking.
Configurations are biased toward the tiny: few digest bits, buckets, slots and
Bloom bits, so collisions, false positives, cuckoo moves and version reuse are
common rather than one-in-a-million.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from model import events as ev
from model.config import Config
from model.observations import Observation, PacketObservation
from model.switch import InvalidEvent, Switch
from model.types import ACK, FIN, PROTO_TCP, PSH, RST, SYN, Dip, FiveTuple, Packet, Vip, parse_ip
from model.writes import ConnDelete, ConnInsert, VipWrite
from silkcheck.targets.model import Driver
from silkcheck.trace import CookieAck, Trace, TraceEvent
from silkcheck.wire import is_syn_ack

T = TypeVar("T")

VIP_BASE = parse_ip("20.0.0.1")
DIP_BASE = parse_ip("10.0.1.1")
CLIENT_BASE = parse_ip("192.168.0.1")
CLIENT_SOURCES = 12
"""Few client addresses, so whitelisted sources are reused by later connections."""
OWNED_BASE = parse_ip("198.51.100.1")
OWNED_SOURCES = 16
"""Addresses the attacker owns: it receives what the switch sends them (their SYN-ACKs)."""
SPOOFED_BASE = parse_ip("172.16.0.1")
SPOOFED_SOURCES = 1 << 20
"""Addresses the attacker sends from without owning them: it never sees their replies."""


def is_client(src_ip: int) -> bool:
    return CLIENT_BASE <= src_ip < CLIENT_BASE + CLIENT_SOURCES


def is_owned(src_ip: int) -> bool:
    return OWNED_BASE <= src_ip < OWNED_BASE + OWNED_SOURCES


class Chooser(Protocol):
    def integer(self, low: int, high: int) -> int: ...
    def pick(self, options: Sequence[T]) -> T: ...
    def chance(self, percent: int) -> bool: ...


class RandomChooser:
    """Choices scaled from ``random()``: cheaper than ``randint``'s exact rejection
    sampling, with a bias (at most n / 2**53 over n options) no walk can notice."""

    def __init__(self, rng: random.Random) -> None:
        self.random = rng.random

    def integer(self, low: int, high: int) -> int:
        return low + int(self.random() * (high - low + 1))

    def pick(self, options: Sequence[T]) -> T:
        return options[int(self.random() * len(options))]

    def chance(self, percent: int) -> bool:
        return self.random() * 100 < percent


# ---------------------------------------------------------------- configurations


def draw_config(c: Chooser) -> Config:
    """A small switch: collisions, Bloom false positives, full buckets and version reuse happen."""
    bound = c.pick((10, 100))
    return Config(
        digest_bits=c.pick((1, 2, 3, 4, 8, 16)),
        version_bits=c.pick((2, 2, 3)),
        stages=c.integer(1, 3),
        buckets_per_stage=c.pick((1, 2, 4, 8)),
        slots_per_bucket=c.pick((1, 1, 2, 4)),
        bloom_bits=c.pick((2, 4, 8, 32)),
        bloom_hashes=c.integer(1, 2),
        epoch_bits=c.pick((2, 8)),
        transit_slots=c.integer(1, 2),
        syn_auth=c.chance(25),
        # The config's lower limit (the learn-delay bound) is drawn too: safety arguments rest on it.
        idle_timeout=c.pick((bound, 20 * bound, 100 * bound)),
        teardown_grace=c.pick((bound, 2 * bound, 5 * bound)),
        learn_delay_bound=bound,
        cuckoo_depth=c.integer(0, 3),
    )


def draw_vips(c: Chooser, dips: Sequence[Dip]) -> dict[Vip, tuple[Dip, ...]]:
    count = c.integer(1, 3)
    return {Vip(VIP_BASE + i, 80, PROTO_TCP): tuple(dips[i : i + c.integer(1, 2)]) for i in range(count)}


def dip_universe() -> tuple[Dip, ...]:
    return tuple(Dip(DIP_BASE + i, 8080) for i in range(6))


# ---------------------------------------------------------------- the world


@dataclass
class World:
    """A switch, its clients and operator, and the trace that drove it."""

    switch: Switch
    trace: Trace
    dips: tuple[Dip, ...]
    observations: list[Observation] = field(default_factory=list)
    now: int = 0
    conns: list[FiveTuple] = field(default_factory=list)
    ended: set[FiveTuple] = field(default_factory=set)
    due: set[FiveTuple] = field(default_factory=set)
    """Legitimate clients the switch sent a SYN-ACK, whose answer is still due."""
    seen: dict[FiveTuple, None] = field(default_factory=dict)
    """The attacker's flows that received a SYN-ACK (what it saw), oldest first."""
    wanted: dict[Vip, tuple[Dip, ...]] = field(default_factory=dict)
    """The pool the operator last asked for, per VIP."""
    pooled: set[Dip] = field(default_factory=set)
    """Every DIP that has been in a pool."""
    next_port: int = 1024
    flood_max: int = 100_000
    """The largest SYN flood (spoofed sources) this world's attacker sends."""
    driver: Driver = field(init=False)

    def __post_init__(self) -> None:
        self.driver = Driver(self.switch)

    @classmethod
    def create(cls, config: Config, vips: dict[Vip, tuple[Dip, ...]], dips: tuple[Dip, ...]) -> World:
        trace = Trace(config, dict(vips), name="fuzz")
        pooled = {dip for pool in vips.values() for dip in pool}
        return cls(Switch.boot(config, vips), trace, dips, wanted=dict(vips), pooled=pooled)

    @classmethod
    def draw(cls, c: Chooser, flood_max: int = 100_000) -> World:
        dips = dip_universe()
        world = cls.create(draw_config(c), draw_vips(c, dips), dips)
        world.flood_max = flood_max
        return world

    @property
    def config(self) -> Config:
        return self.switch.config

    @property
    def vips(self) -> list[Vip]:
        return list(self.trace.vips)

    def apply(self, event: TraceEvent) -> Observation | None:
        """One step; an event the switch cannot take (or a reactive packet with no SYN-ACK to
        answer) is left out of the trace."""
        try:
            observation = self.driver.step(len(self.trace.events), event)
        except InvalidEvent:
            return None
        self.trace.events.append(event)
        self.observations.append(observation)
        if isinstance(observation, PacketObservation):
            self._client_sees(observation)
        return observation

    def _client_sees(self, o: PacketObservation) -> None:
        ft = o.ft
        if is_syn_ack(o) and is_client(ft.src_ip):
            self.due.add(ft)
        elif is_syn_ack(o) and is_owned(ft.src_ip):
            self.seen[ft] = None
        if o.packet.is_syn:
            self.ended.discard(ft)
        elif o.packet.is_end:
            self.ended.add(ft)

    def fresh_tuple(self, c: Chooser, src_ip: int) -> FiveTuple:
        vip = c.pick(self.vips)
        self.next_port += c.integer(1, 3)
        return FiveTuple(src_ip, vip.ip, self.next_port, vip.port, vip.proto)


# ---------------------------------------------------------------- event generators
# Each returns the events of one step (one, except a SYN flood), at ``world.now``.


def advance_clock(c: Chooser, w: World) -> None:
    """Mostly small steps; sometimes exactly at, or just past, a bound the protocol waits for."""
    cfg = w.config
    bound = cfg.learn_delay_bound
    w.now += c.pick((0, 1, 1, 3, 10, bound // 2, bound, bound + 1, cfg.teardown_grace + 1, cfg.idle_timeout + 1))


def new_connection(c: Chooser, w: World) -> list[TraceEvent]:
    ft = w.fresh_tuple(c, CLIENT_BASE + c.integer(0, CLIENT_SOURCES - 1))
    w.conns.append(ft)
    return [ev.PacketArrives(w.now, Packet(ft, SYN, seq=c.integer(0, 1000)))]


def connection_packet(c: Chooser, w: World) -> list[TraceEvent]:
    """A packet of a known connection: data, a SYN retransmission, its end, or a late one after the end."""
    if not w.conns:
        return new_connection(c, w)
    recent = w.conns[-8:]
    ft = c.pick(recent) if c.chance(70) else c.pick(w.conns)
    flags = c.pick((ACK, ACK, PSH | ACK, ACK, SYN, FIN | ACK, RST))
    return [ev.PacketArrives(w.now, Packet(ft, flags, seq=c.integer(1, 1000), ack=c.integer(1, 1000)))]


def cookie_reply(c: Chooser, w: World) -> list[TraceEvent]:
    """A legitimate client answers the SYN-ACK it received: cookie + 1, computed when it is sent."""
    if not w.due:
        return connection_packet(c, w)
    ft = c.pick(sorted(w.due))
    w.due.discard(ft)
    return [CookieAck(w.now, Packet(ft, ACK, seq=1), ft, 1)]


# ---------------------------------------------------------------- attackers


def _spoofed_source(c: Chooser) -> int:
    """Mostly an address nobody uses; sometimes a victim client's."""
    return CLIENT_BASE + c.integer(0, CLIENT_SOURCES - 1) if c.chance(20) else SPOOFED_BASE + c.integer(0, 1000)


REPLAYS = ("source", "port", "vip", "mixed", "later")


def cookie_replay(c: Chooser, w: World) -> list[TraceEvent]:
    """An attacker who owns a few addresses and sees the SYN-ACKs sent to them replays a cookie it
    saw: from another source address (spoofed, or a victim client's) with the same port and VIP,
    from another port of its own address, to another VIP, with several of these changed at once,
    or later from the flow it was sent to. First, when it has seen nothing (or wants a fresh
    cookie), a probe SYN from one of its addresses; afterwards, sometimes, the CPU learns and the
    replayed source tries a connection, as it would once it believes itself whitelisted."""
    if not w.config.syn_auth:
        return connection_packet(c, w)
    events: list[TraceEvent] = []
    if not w.seen or c.chance(40):
        seen = w.fresh_tuple(c, OWNED_BASE + c.integer(0, OWNED_SOURCES - 1))
        events.append(ev.PacketArrives(w.now, Packet(seen, SYN, seq=c.integer(0, 1000))))
    else:
        seen = c.pick(list(w.seen)[-8:])
    how = c.pick(REPLAYS)
    mixed = how == "mixed"
    src, port, vip = seen.src_ip, seen.src_port, seen.vip
    if how == "source" or (mixed and c.chance(50)):
        src = _spoofed_source(c)
    if how == "port" or (mixed and c.chance(50)):
        w.next_port += 1  # a port of the address that no SYN-ACK went to
        port = w.next_port
    if how == "vip" or (mixed and c.chance(50)):
        vip = c.pick([v for v in w.vips if v != seen.vip] or w.vips)
    replayed = FiveTuple(src, vip.ip, port, vip.port, vip.proto)
    events.append(CookieAck(w.now, Packet(replayed, ACK, seq=1), seen, 1))
    if c.chance(50):
        events.append(ev.CpuLearns(w.now))
        events.append(ev.PacketArrives(w.now, Packet(w.fresh_tuple(c, replayed.src_ip), SYN)))
    return events


GUESSES = 8
"""A guesser's budget: bare ACKs from one spoofed flow."""


def spoofed_packet(c: Chooser, w: World) -> list[TraceEvent]:
    """An off-path attacker at a spoofed source: a SYN whose SYN-ACK it never sees, or a bounded
    guesser, up to ``GUESSES`` bare ACKs each guessing the flow's cookie at random or near a cookie
    the attacker saw at its own addresses (another flow's cookie plus a small offset). No guesser
    computes a cookie from the CRC's linearity: that attacker breaks the design's secrecy
    assumption (``proofs/cookie.py``)."""
    ft = w.fresh_tuple(c, _spoofed_source(c))
    if c.chance(40):
        return [ev.PacketArrives(w.now, Packet(ft, SYN, seq=c.integer(0, 1000)))]
    guesses: list[TraceEvent] = []
    for _ in range(c.integer(1, GUESSES)):
        if w.seen and c.chance(50):
            near = c.pick(list(w.seen))
            guesses.append(CookieAck(w.now, Packet(ft, ACK, seq=c.integer(0, 1000)), near, c.integer(-3, 4)))
        else:
            guesses.append(ev.PacketArrives(w.now, Packet(ft, ACK, seq=c.integer(0, 1000),
                                                          ack=c.integer(0, (1 << 32) - 1))))  # fmt: skip
    return guesses


FLOOD_DECADE_CHANCE = 15
"""Percent chance that a flood is ten times larger, asked once per decade."""
UNAUTHENTICATED_FLOOD_MAX = 10_000
"""Without SYN authentication every spoofed SYN is a connection the CPU places (a flood of
100,000 takes 17 s on a tiny table): a larger flood costs more and shows nothing new."""


def flood_size(c: Chooser, largest: int) -> int:
    """2..6 spoofed SYNs mostly; 10..100 with 15%, 100..1,000 with 2.25%, ... up to ``largest``.

    Each decade is ten times larger and 1/0.15 ≈ 6.7 times rarer, so a random walk's flood is about 60
    packets on average (a walk step is about 1.3 events; a flood of 100,000 spoofed SYNs takes
    1.4 s and the walk's final judgement 2 s more) while a campaign of a few minutes per worker
    still meets floods of 10,000 and more. Hypothesis draws the chances far more often true
    (about 1% of its floods reach 100,000), hence ``World.flood_max``."""
    decade = 0
    while 10**decade < largest and c.chance(FLOOD_DECADE_CHANCE):
        decade += 1
    if decade == 0:
        return c.integer(2, 6)
    return min(largest, c.integer(10**decade, 10 ** (decade + 1)))


def syn_flood(c: Chooser, w: World) -> list[TraceEvent]:
    """SYNs from distinct spoofed sources to one VIP. The few choices are drawn once (the sources
    are consecutive addresses from a random start, the ports a stride apart), so a flood of
    100,000 costs a Hypothesis example a handful of draws, not 100,000."""
    count = flood_size(c, w.flood_max if w.config.syn_auth else min(w.flood_max, UNAUTHENTICATED_FLOOD_MAX))
    vip = c.pick(w.vips)
    start, port, seq = c.integer(0, SPOOFED_SOURCES - 1), c.integer(0, 64511), c.integer(0, 1000)
    return [
        ev.PacketArrives(w.now, Packet(FiveTuple(SPOOFED_BASE + (start + i) % SPOOFED_SOURCES, vip.ip,
                                                 1024 + (port + 7919 * i) % 64512, vip.port, vip.proto), SYN, seq))
        for i in range(count)
    ]  # fmt: skip


def writes_at_once(c: Chooser) -> int | None:
    """How many of a CPU action's writes take effect with it: often all, often few (the rest wait
    for ``cpu_write`` steps, and packets come in between)."""
    return c.pick((None, None, 0, 0, 1, 2))


def cpu_learn(c: Chooser, w: World) -> list[TraceEvent]:
    return [ev.CpuLearns(w.now, c.pick((None, None, 1, 2, 3)), writes_at_once(c))]


def cpu_advance(c: Chooser, w: World) -> list[TraceEvent]:
    return [ev.CpuAdvances(w.now, writes_at_once(c))]


def cpu_expire(c: Chooser, w: World) -> list[TraceEvent]:
    return [ev.CpuExpires(w.now, writes_at_once(c))]


def cpu_write(c: Chooser, w: World) -> list[TraceEvent]:
    """The next of the CPU's queued writes take effect."""
    queued = len(w.switch.pending)
    if not queued:
        return connection_packet(c, w)
    return [ev.CpuWrites(w.now, c.integer(1, min(queued, 3)))]


def write_by_write(c: Chooser, w: World) -> Iterator[TraceEvent]:
    """A CPU step whose writes then take effect one at a time, a packet that the next write
    matters to before each (lazily: each event is taken before the next is drawn)."""
    yield c.pick((cpu_learn, cpu_advance, cpu_expire, pool_update))(c, w)[0]._replace(writes=0)
    for _ in range(32):
        if not w.switch.pending:
            return
        yield from packet_between_writes(c, w)
        yield ev.CpuWrites(w.now, 1)


def placement_storm(c: Chooser, w: World) -> Iterator[TraceEvent]:
    """Several new connections of one VIP, then placed write by write: cuckoo moves of older
    connections (often of an older version) with their own packets between the moves' writes."""
    vip = c.pick(w.vips)
    for _ in range(c.integer(2, 5)):
        ft = FiveTuple(CLIENT_BASE + c.integer(0, CLIENT_SOURCES - 1), vip.ip, w.next_port + 1, vip.port, vip.proto)
        w.next_port += 1
        w.conns.append(ft)
        yield ev.PacketArrives(w.now, Packet(ft, SYN, seq=c.integer(0, 1000)))
    yield ev.CpuLearns(w.now, None, 0)
    for _ in range(32):
        if not w.switch.pending:
            return
        yield from packet_between_writes(c, w)
        yield ev.CpuWrites(w.now, 1)


def packet_between_writes(c: Chooser, w: World) -> list[TraceEvent]:
    """A packet that the next queued write matters to: of the connection whose entry it writes
    (or of one sharing that entry's key), or of the VIP whose VIPTable entry it writes."""
    pending = w.switch.pending
    if not pending:
        return connection_packet(c, w)
    write = pending[0]
    if isinstance(write, ConnInsert | ConnDelete):
        stage, key = write.stage, (write.bucket, write.digest)
        plan = w.switch.dataplane.plan
        sharing = [ft for ft in w.conns if plan.flow(ft).key(stage) == key]
        ft = c.pick(sharing) if sharing and c.chance(50) else write.owner
        flags = c.pick((ACK, ACK, PSH | ACK, SYN, FIN | ACK))
        return [ev.PacketArrives(w.now, Packet(ft, flags, seq=c.integer(1, 1000), ack=c.integer(1, 1000)))]
    if isinstance(write, VipWrite):
        of_vip = [ft for ft in w.conns[-12:] if ft.vip == write.vip]
        if of_vip and c.chance(60):
            return [ev.PacketArrives(w.now, Packet(c.pick(of_vip), ACK, seq=c.integer(1, 1000)))]
        ft = FiveTuple(CLIENT_BASE + c.integer(0, CLIENT_SOURCES - 1), write.vip.ip, w.next_port + 1, write.vip.port,
                       write.vip.proto)  # fmt: skip
        w.next_port += 1
        w.conns.append(ft)
        return [ev.PacketArrives(w.now, Packet(ft, SYN, seq=c.integer(0, 1000)))]
    return connection_packet(c, w)


def pool_update(c: Chooser, w: World) -> list[TraceEvent]:
    """Add, remove or replace a DIP in the pool the operator last asked for."""
    return pool_update_of(c, w, c.pick(w.vips))


def pool_update_of(c: Chooser, w: World, vip: Vip) -> list[TraceEvent]:
    pool = list(w.wanted[vip])
    outside = [d for d in w.dips if d not in pool]
    change = c.pick(("add", "remove", "replace"))
    if change == "add" and outside:
        pool.insert(c.integer(0, len(pool)), c.pick(outside))
    elif change == "remove" and len(pool) > 1:
        pool.remove(c.pick(pool))
    elif outside:
        pool[c.integer(0, len(pool) - 1)] = c.pick(outside)
    w.wanted[vip] = tuple(pool)
    w.pooled.update(pool)
    return [ev.UpdateRequested(w.now, vip, tuple(pool), writes_at_once(c))]


def learn_fault(c: Chooser, w: World) -> list[TraceEvent]:
    """A queued learn event is delayed (within the bound), lost, or late (past the bound, up to
    ten bounds or an idle timeout: late enough to miss t_exec, t_finish or a version's reuse)."""
    queued = len(w.switch.dataplane.learn_queue)
    index = c.integer(0, max(queued - 1, 0))
    bound = w.config.learn_delay_bound
    if c.chance(80):
        return [ev.LearnDelayed(w.now, index, c.integer(1, bound))]
    if c.chance(50):
        return [ev.LearnLost(w.now, index)]
    latest = c.pick((10 * bound + 1, w.config.idle_timeout + bound + 1))
    return [ev.LearnLate(w.now, index, c.integer(bound + 1, latest))]


def cpu_restart(c: Chooser, w: World) -> list[TraceEvent]:
    return [ev.CpuRestarts(w.now, writes_at_once(c))]


def dip_failure(c: Chooser, w: World) -> list[TraceEvent]:
    """A server that has been in some pool dies (a trace may only fail such a DIP)."""
    return [ev.DipFails(w.now, c.pick(sorted(w.pooled)), writes_at_once(c))]


def update_race(c: Chooser, w: World) -> list[TraceEvent]:
    """A pool update with a connection starting just before t_exec whose learn event is still in
    flight (delayed up to the bound) while the CPU advances the update several times in a row:
    the window the wait for the learn-delay bound and the seal exist for; sometimes the CPU then
    hears nothing for a while (``cpu_deafness``), as under the seal it cannot."""
    vip = c.pick(w.vips)
    bound = w.config.learn_delay_bound
    [request] = pool_update_of(c, w, vip)
    w.now += bound - c.integer(0, min(3, bound))
    ft = FiveTuple(CLIENT_BASE + c.integer(0, CLIENT_SOURCES - 1), vip.ip, w.next_port + 1, vip.port, vip.proto)
    w.next_port += 1
    w.conns.append(ft)
    start = w.now
    events: list[TraceEvent] = [request, ev.PacketArrives(start, Packet(ft, SYN))]
    events.append(ev.LearnDelayed(start, len(w.switch.dataplane.learn_queue), c.integer(1, bound)))
    for _ in range(c.integer(1, 4)):
        w.now += c.pick((0, 1, bound // 2, bound + 1))
        events.append(ev.CpuAdvances(w.now, writes_at_once(c)))
    w.now += c.integer(0, 2)
    events.append(ev.PacketArrives(w.now, Packet(ft, ACK)))
    if c.chance(50):
        events += cpu_deafness(c, w)
    return events


def update_cycle(c: Chooser, w: World) -> list[TraceEvent]:
    """A pool update taken through to the end (advances spaced past the bound), so versions run
    out and are reclaimed and reused while older connections still hold entries."""
    vip = c.pick(w.vips)
    events = pool_update_of(c, w, vip)
    for _ in range(4):
        w.now += w.config.learn_delay_bound + 1
        events.append(ev.CpuAdvances(w.now))
    if c.chance(50):
        events.append(ev.CpuExpires(w.now))
    return events


def cpu_deafness(c: Chooser, w: World) -> list[TraceEvent]:
    """The connections the CPU has not placed and the latest others keep sending (every half idle
    timeout) while the CPU takes no step for longer than idle_timeout + the learn-delay bound; then
    it expires, takes any running update on, and they send again. Whatever of them the CPU could
    not hear meanwhile (under a sealed update, a miss that hits TransitTable is dropped without a
    learn event) it must not take for silent."""
    cfg = w.config
    unplaced = [conn.ft for vip in w.vips for conn in w.switch.cpu.unplaced(vip)]
    recent = list(dict.fromkeys(unplaced[-6:] + w.conns[-c.integer(1, 6) :]))

    def send() -> list[TraceEvent]:
        return [ev.PacketArrives(w.now, Packet(ft, ACK, seq=c.integer(1, 1000))) for ft in recent]

    events: list[TraceEvent] = []
    start = w.now
    while w.now - start <= cfg.idle_timeout + cfg.learn_delay_bound:
        w.now += max(1, cfg.idle_timeout // 2)
        events += send()
    events.append(ev.CpuExpires(w.now, writes_at_once(c)))
    for _ in range(c.integer(1, 3)):
        w.now += cfg.learn_delay_bound + 1
        events.append(ev.CpuAdvances(w.now))
    return events + send()


Generator = Callable[[Chooser, World], Iterable[TraceEvent]]

WEIGHTS: dict[Generator, int] = {
    new_connection: 14,
    connection_packet: 30,
    cookie_reply: 6,
    cookie_replay: 4,
    spoofed_packet: 3,
    syn_flood: 1,
    cpu_learn: 10,
    cpu_advance: 10,
    cpu_expire: 4,
    cpu_write: 8,
    packet_between_writes: 6,
    write_by_write: 3,
    placement_storm: 2,
    pool_update: 5,
    update_race: 2,
    update_cycle: 2,
    cpu_deafness: 1,
    learn_fault: 8,
    cpu_restart: 1,
    dip_failure: 1,
}
"""How often the random walk takes each kind of step (the machines let Hypothesis choose)."""
