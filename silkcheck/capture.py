"""Packet captures as workloads: a pcap's IPv4 TCP/UDP flows mapped onto configured VIPs.

Each distinct destination (IP, port, protocol) of the capture is mapped, in order
of first appearance, round-robin onto the configured VIPs of the same protocol;
clients keep their address and port. ``capture_events`` turns the packets into
trace events with CPU steps where the capture has traffic or pending work: a
learn step (an advance step when there are updates) at the end of every
``learn_interval`` that saw a packet, an expiry step at the end of every
``expire_interval`` that saw one, and advance steps for a while after each
update. A silent stretch of the capture costs nothing, however long.

Everything streams: ``CaptureStream`` parses one record at a time (no scapy),
and a corrupt header stops the read with the packet number and the field.
"""

from __future__ import annotations

import argparse
import struct
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from model import events as ev
from model.config import Config
from model.types import PROTO_BY_NUMBER, PROTO_TCP, PROTO_UDP, Dip, FiveTuple, Packet, Vip
from scale.flows import Flows
from silkcheck import inputs
from silkcheck import trace as tr
from silkcheck.pcap import PcapError, Record, read_records
from silkcheck.trace import Trace, parse_vip, vip_text

EXPIRE_INTERVAL = 1_000_000
"""Default µs between the CPU's expiry passes (a tenth of the default idle timeout)."""
NOT_USABLE = "not IPv4 TCP/UDP (or a fragment)"
INF = float("inf")


CaptureError = PcapError
"""A capture silkcheck cannot use, and why: from the file format up to the mapping onto VIPs."""


# ---------------------------------------------------------------- frames to packets

ETHERTYPE_IPV4 = 0x0800
VLAN_TAGS = (0x8100, 0x88A8, 0x9100)
LINK_ETHERNET, LINK_NULL, LINK_RAW, LINK_LOOP, LINK_SLL, LINK_IPV4, LINK_SLL2 = 1, 0, 101, 108, 113, 228, 276


def _ipv4_offset(path: Path, record: Record) -> int | None:
    """Where the IPv4 header of ``record`` starts (None: the frame holds something else)."""
    data, link = record.data, record.linktype
    if link == LINK_ETHERNET:
        at = 12
        while True:
            if len(data) < at + 2:
                raise CaptureError(f"{path}: packet #{record.number}: Ethernet frame of {len(data)} bytes is cut off "
                                   "before its EtherType")  # fmt: skip
            ethertype = data[at] << 8 | data[at + 1]
            if ethertype not in VLAN_TAGS:
                return at + 2 if ethertype == ETHERTYPE_IPV4 else None
            at += 4
    if link in (LINK_NULL, LINK_LOOP):
        family = data[:4]
        return 4 if family in (b"\x02\0\0\0", b"\0\0\0\x02") else None
    if link in (LINK_RAW, LINK_IPV4):
        return 0 if data[:1] and data[0] >> 4 == 4 else None
    if link in (LINK_SLL, LINK_SLL2):
        at = 14 if link == LINK_SLL else 0
        size = 16 if link == LINK_SLL else 20
        return size if data[at : at + 2] == b"\x08\x00" else None
    raise CaptureError(f"{path}: packet #{record.number}: link type {link} is not supported (Ethernet, raw IP, "
                       "loopback and Linux cooked captures are)")  # fmt: skip


class Header(NamedTuple):
    """The fields silkcheck reads from one packet."""

    src: int
    dst: int
    sport: int
    dport: int
    proto: int
    flags: int = 0
    seq: int = 0
    ack: int = 0


def parse_record(path: Path, record: Record) -> Header | None:
    """The IPv4 TCP/UDP header fields of ``record``, None for anything else (or a fragment)."""
    at = _ipv4_offset(path, record)
    if at is None:
        return None
    data = record.data

    def bad(header: str, problem: str) -> CaptureError:
        return CaptureError(f"{path}: packet #{record.number}: {header} header: {problem}")

    if len(data) - at < 20:
        raise bad("IPv4", f"only {len(data) - at} bytes captured, the header has at least 20")
    version, ihl = data[at] >> 4, data[at] & 0x0F
    if version != 4:
        raise bad("IPv4", f"version {version} (expected 4)")
    if ihl < 5:
        raise bad("IPv4", f"IHL {ihl} (at least 5, a 20-byte header)")
    total, fragment = struct.unpack_from("!HH", data, at + 2)
    if total < ihl * 4:
        raise bad("IPv4", f"total length {total} is shorter than its {ihl * 4}-byte header")
    if at + total > record.wire_length:
        raise bad("IPv4", f"total length {total} exceeds the {record.wire_length - at} bytes the frame carried "
                          "after its link header")  # fmt: skip
    proto = data[at + 9]
    if fragment & 0x3FFF or proto not in (PROTO_TCP, PROTO_UDP):
        return None  # a fragment (more-fragments flag or an offset), or not TCP/UDP
    l4 = at + ihl * 4
    captured = len(data) - l4
    src, dst = struct.unpack_from("!II", data, at + 12)
    if proto == PROTO_TCP:
        if total < ihl * 4 + 20:
            raise bad("IPv4", f"total length {total} cannot hold the {ihl * 4}-byte header and a TCP header")
        if captured < 14:
            raise bad("TCP", f"only {captured} bytes captured, silkcheck reads the first 14")
        offset = data[l4 + 12] >> 4
        if offset < 5:
            raise bad("TCP", f"data offset {offset} (at least 5, a 20-byte header)")
        sport, dport, seq, ack = struct.unpack_from("!HHII", data, l4)
        return Header(src, dst, sport, dport, proto, data[l4 + 13] & 0x1F, seq, ack)
    if total < ihl * 4 + 8:
        raise bad("IPv4", f"total length {total} cannot hold the {ihl * 4}-byte header and a UDP header")
    if captured < 8:
        raise bad("UDP", f"only {captured} bytes captured, the header has 8")
    sport, dport, length = struct.unpack_from("!HHH", data, l4)
    if length < 8:
        raise bad("UDP", f"length {length} (at least 8, its header)")
    return Header(src, dst, sport, dport, proto)


# ---------------------------------------------------------------- the stream of packets


@dataclass
class CaptureStream:
    """A capture's usable packets, read as they are iterated: (µs since the first packet, the
    packet as the switch sees it, addressed to its VIP). Times that go backwards are held at
    the latest time so far, as the switch would see them arrive."""

    path: Path
    vips: Sequence[Vip] | None = None
    """None keeps the capture's own destinations."""
    max_packets: int | None = None
    mapped: dict[tuple[int, int, int], Vip] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    records: int = 0
    packets: int = 0

    def __post_init__(self) -> None:
        inputs.open_binary(self.path, "capture").close()  # a missing, unreadable or special file: refused now

    def __iter__(self) -> Iterator[tuple[int, Packet]]:
        first: int | None = None
        last_t = 0
        cycle: Counter[int] = Counter()
        for record in read_records(self.path):
            if self.max_packets is not None and self.packets >= self.max_packets:
                break
            self.records += 1
            header = parse_record(self.path, record)
            if header is None:
                self.skipped[NOT_USABLE] += 1
                continue
            destination = (header.dst, header.dport, header.proto)
            vip = self.mapped.get(destination)
            if vip is None:
                vip = self._map(destination, cycle)
                if vip is None:
                    continue
            first = record.nanos if first is None else first
            last_t = max(last_t, (record.nanos - first + 500) // 1000)
            if last_t > tr.TIME_MAX:
                raise CaptureError(f"{self.path}: packet #{record.number} comes {last_t:,} µs after the first, "
                                   f"beyond the trace's time limit of {tr.TIME_MAX:,} µs")  # fmt: skip
            self.packets += 1
            ft = FiveTuple(header.src, vip.ip, header.sport, vip.port, header.proto)
            yield last_t, Packet(ft, header.flags, header.seq, header.ack)
        if not self.packets:
            wanted = " to map onto " + ", ".join(vip_text(v) for v in self.vips) if self.vips else ""
            seen = f" (read {self.records:,} packets: {', '.join(self.skipped)})" if self.records else \
                " (it holds no packets)"  # fmt: skip
            raise CaptureError(f"{self.path}: no IPv4 TCP or UDP packets{wanted}{seen}")

    def _map(self, destination: tuple[int, int, int], cycle: Counter[int]) -> Vip | None:
        proto = destination[2]
        if self.vips is None:
            vip = Vip(*destination)
        else:
            same = [v for v in self.vips if v.proto == proto]
            if not same:
                self.skipped[f"{PROTO_BY_NUMBER[proto].upper()} with no VIP of that protocol"] += 1
                return None
            vip = same[cycle[proto] % len(same)]
            cycle[proto] += 1
        self.mapped[destination] = vip
        return vip

    def summary(self) -> str:
        skipped = ", ".join(f"{count:,} {why}" for why, count in self.skipped.most_common())
        return (f"{self.path}: {self.packets:,} packets in {len(self.mapped):,} destinations mapped onto VIPs"
                + (f"; skipped {skipped}" if skipped else ""))  # fmt: skip


@dataclass
class Capture:
    """A whole capture read into memory (for small captures and the flow analysis)."""

    stream: CaptureStream
    packets: list[tuple[int, Packet]]

    @property
    def path(self) -> Path:
        return self.stream.path

    @property
    def mapped(self) -> dict[tuple[int, int, int], Vip]:
        return self.stream.mapped

    def __iter__(self) -> Iterator[tuple[int, Packet]]:
        return iter(self.packets)

    def summary(self) -> str:
        return self.stream.summary()


def read_capture(path: str | Path, vips: Sequence[Vip] | None = None, max_packets: int | None = None) -> Capture:
    """Read a pcap/pcapng whole; ``vips`` None keeps the capture's own destinations."""
    stream = CaptureStream(Path(path), vips, max_packets)
    return Capture(stream, list(stream))


def distinct_flows(packets: Iterable[tuple[int, Packet]]) -> tuple[Flows, np.ndarray]:
    """Every flow once (first appearance order), and whether its first packet is a TCP SYN."""
    first: dict[FiveTuple, bool] = {}
    for _, packet in packets:
        first.setdefault(packet.ft, packet.is_syn)
    return Flows.from_tuples(first), np.array(list(first.values()), dtype=bool)


# ---------------------------------------------------------------- packets to trace events


class _Grid:
    """CPU steps every ``period`` µs, made only at the grid points something is owed."""

    def __init__(self, period: int, make: Callable[[int], ev.Event]) -> None:
        self.period = period
        self.make = make
        self.spans: deque[list[int]] = deque()
        """Owed grid points as [first, last] runs, ascending and disjoint."""

    def point(self, t: int) -> int:
        """The step that covers time ``t``: the first grid point at or after it (the first is ``period``)."""
        return max(1, -(-t // self.period)) * self.period

    def owe(self, start: int, end: int) -> None:
        first, last = self.point(start), self.point(end)
        if self.spans and first <= self.spans[-1][1] + self.period:
            self.spans[-1][1] = max(self.spans[-1][1], last)
        else:
            self.spans.append([first, last])

    def due(self) -> int | None:
        return self.spans[0][0] if self.spans else None

    def pop(self) -> ev.Event:
        span = self.spans[0]
        t = span[0]
        if t >= span[1]:
            self.spans.popleft()
        else:
            span[0] += self.period
        return self.make(t)


def capture_events(packets: Iterable[tuple[int, Packet]], config: Config, learn_interval: int,
                   expire_interval: int = EXPIRE_INTERVAL,
                   updates: Sequence[ev.UpdateRequested] = ()) -> Iterator[ev.Event]:  # fmt: skip
    """The packets with the CPU's steps and the updates, in time order (at equal times: updates,
    then packets, then the learn step, then the expiry step). After an update the CPU keeps
    advancing for four learn-delay bounds and learn intervals, enough for the protocol's waits;
    an update still held up (by a connection it cannot place) goes on with the next traffic."""
    for name, interval in (("learn interval", learn_interval), ("expire interval", expire_interval)):
        if interval <= 0:
            raise CaptureError(f"{name} {interval} µs: it must be positive")
    learn = _Grid(learn_interval, ev.CpuAdvances if updates else ev.CpuLearns)
    expire = _Grid(expire_interval, ev.CpuExpires)
    settle = 4 * (config.learn_delay_bound + learn_interval)
    waiting = deque(sorted(updates, key=lambda u: u.t))

    def next_due() -> float:
        return min((g.due() or INF) for g in (learn, expire))

    def steps_before(t: float) -> Iterator[ev.Event]:
        while True:
            due = [(g.due(), rank, g) for rank, g in enumerate((learn, expire)) if g.due() is not None]
            if not due:
                return
            when, _, grid = min(due, key=lambda item: item[:2])
            if when >= t:  # type: ignore[operator]
                return
            yield grid.pop()

    def updates_until(t: float) -> Iterator[ev.Event]:
        while waiting and waiting[0].t <= t:
            update = waiting.popleft()
            yield from steps_before(update.t)
            yield update
            learn.owe(update.t, update.t + settle)

    # Most packets fall in an interval that already owes its steps: only the times are compared.
    due = INF
    owed = 0
    for t, packet in packets:
        if waiting and waiting[0].t <= t:
            yield from updates_until(t)
            due = next_due()
        if t > due:
            yield from steps_before(t)
            due = next_due()
        yield ev.PacketArrives(t, packet)
        if t > owed:
            learn.owe(t, t)
            expire.owe(t, t)
            owed = min(learn.spans[-1][1], expire.spans[-1][1])
            due = next_due()
    yield from updates_until(INF)
    yield from steps_before(INF)


def capture_trace(capture: Capture, config: Config, pools: dict[Vip, tuple[Dip, ...]], learn_interval: int,
                  updates: Sequence[ev.UpdateRequested] = (),
                  expire_interval: int = EXPIRE_INTERVAL) -> Trace:  # fmt: skip
    """A capture read whole as a trace (see ``capture_events``)."""
    trace = capture_header(capture.stream, config, pools, learn_interval)
    trace.events = list(capture_events(capture.packets, config, learn_interval, expire_interval, updates))
    return trace


def capture_header(stream: CaptureStream, config: Config, pools: dict[Vip, tuple[Dip, ...]],
                   learn_interval: int) -> Trace:  # fmt: skip
    """The trace a capture's events belong to, without its events."""
    used = set(stream.mapped.values()) if stream.vips is None else set(stream.vips)
    missing = sorted(vip_text(v) for v in used if v not in pools)
    if missing:
        raise CaptureError(f"{stream.path}: flows map onto {', '.join(missing)}, which has no pool")
    description = f"flows of {stream.path.name} mapped onto the VIPs; the CPU learns every {learn_interval} µs"
    return Trace(config, dict(pools), name=stream.path.stem, description=description)


# ---------------------------------------------------------------- the command line


def parse_vips(texts: Sequence[str]) -> list[Vip]:
    vips = []
    for text in texts:
        try:
            vips.append(parse_vip(text))
        except ValueError as error:
            raise CaptureError(f"--vip {text!r}: {error}") from None
    return vips


def _pools_header(vips: Sequence[Vip], pools: Sequence[str]) -> dict[Vip, tuple[Dip, ...]]:
    """The VIPs and pools, checked by the trace loader itself: what it refuses, the pcap path refuses."""
    pool_lists = [[item.strip() for item in text.split(",") if item.strip()] for text in pools]
    by_vip = [{"vip": vip_text(vip), "pool": pool_lists[i if len(pool_lists) > 1 else 0]} for i, vip in enumerate(vips)]
    try:
        return tr.from_dict({"format": tr.FORMAT, "version": tr.VERSION, "vips": by_vip, "events": []},
                            "--vip/--pool").vips  # fmt: skip
    except tr.TraceError as error:
        raise CaptureError(str(error)) from None


def capture_source(args: argparse.Namespace) -> tuple[Trace, CaptureStream, Iterator[ev.Event]]:
    """``silkcheck replay --pcap``: the trace header, the capture being read, and its events as a stream."""
    vips = parse_vips(args.vip)
    if not vips:
        raise CaptureError("--pcap needs at least one --vip to map the capture's flows onto")
    if not args.pool:
        raise CaptureError("--pcap needs --pool DIP,... (the VIPs' initial pool)")
    if len(args.pool) not in (1, len(vips)):
        raise CaptureError(f"give one --pool for every VIP or one for all: {len(vips)} VIPs, {len(args.pool)} pools")
    pools = _pools_header(vips, args.pool)
    if (args.update_at_us is None) != (args.update_pool is None):
        raise CaptureError("--update-at-us and --update-pool go together")
    updates = []
    if args.update_pool is not None:
        new_pool = next(iter(_pools_header(vips[:1], [args.update_pool]).values()))
        updates = [ev.UpdateRequested(args.update_at_us, vip, new_pool) for vip in vips]
    config = Config()
    stream = CaptureStream(Path(args.pcap), vips, args.max_packets)
    header = capture_header(stream, config, pools, args.learn_interval_us)
    events = capture_events(stream, config, args.learn_interval_us, args.expire_interval_us, updates)
    return header, stream, events
