"""Packet captures as workloads: a pcap's IPv4 TCP/UDP flows mapped onto configured VIPs.

Each distinct destination (IP, port, protocol) of the capture is mapped, in order
of first appearance, round-robin onto the configured VIPs of the same protocol;
clients keep their address and port. ``capture_trace`` turns the packets into a
trace with CPU learn steps every ``learn_interval`` µs (the insertion latency),
which then runs through the normal target + oracle path.
"""

from __future__ import annotations

import argparse
import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model import events as ev
from model.config import Config
from model.types import PROTO_BY_NUMBER, PROTO_TCP, PROTO_UDP, Dip, FiveTuple, Packet, Vip
from scale.flows import Flows
from silkcheck.trace import Trace, TraceError, parse_dip, parse_vip, save, vip_text


class CaptureError(TraceError):
    """A capture silkcheck cannot use, and why."""


@dataclass
class Capture:
    path: Path
    packets: list[tuple[int, Packet]] = field(default_factory=list)
    """(µs since the first packet, the packet as the switch sees it: addressed to its VIP)."""
    mapped: dict[tuple[int, int, int], Vip] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        skipped = ", ".join(f"{count:,} {why}" for why, count in self.skipped.most_common())
        return (f"{self.path}: {len(self.packets):,} packets in {len(self.mapped):,} destinations mapped onto VIPs"
                + (f"; skipped {skipped}" if skipped else ""))  # fmt: skip


def read_capture(path: str | Path, vips: Sequence[Vip] | None = None, max_packets: int | None = None) -> Capture:
    """Read a pcap/pcapng; ``vips`` None keeps the capture's own destinations."""
    from scapy.error import Scapy_Exception
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.utils import PcapReader

    capture = Capture(Path(path))
    if not capture.path.is_file():
        raise CaptureError(f"{path}: no such capture file")
    _check_complete(capture.path)
    try:
        reader = PcapReader(str(path))
    except (Scapy_Exception, EOFError, ValueError) as error:
        raise CaptureError(f"{path}: not a pcap or pcapng capture ({error})") from None
    first: int | None = None
    last_t = 0
    number = 0
    vip_cycle: Counter[int] = Counter()
    with reader:
        while max_packets is None or len(capture.packets) < max_packets:
            try:
                frame = reader.read_packet()
            except EOFError:
                break
            except (Scapy_Exception, ValueError, OSError) as error:
                raise CaptureError(f"{path}: packet #{number + 1} is unreadable, the capture is truncated or "
                                   f"corrupt ({error})") from None  # fmt: skip
            number += 1
            ip = frame.getlayer(IP)
            l4 = frame.getlayer(TCP) or frame.getlayer(UDP)
            # The transport header right above IP: not one quoted inside an ICMP error.
            if ip is None or l4 is None or l4.underlayer is not ip or ip.frag or ip.flags.MF:
                capture.skipped["not IPv4 TCP/UDP (or a fragment)"] += 1
                continue
            proto = PROTO_TCP if frame.haslayer(TCP) else PROTO_UDP
            destination = (_ip_int(ip.dst), int(l4.dport), proto)
            vip = capture.mapped.get(destination)
            if vip is None:
                if vips is None:
                    vip = Vip(*destination)
                else:
                    same = [v for v in vips if v.proto == proto]
                    if not same:
                        capture.skipped[f"{PROTO_BY_NUMBER[proto].upper()} with no VIP of that protocol"] += 1
                        continue
                    vip = same[vip_cycle[proto] % len(same)]
                    vip_cycle[proto] += 1
                capture.mapped[destination] = vip
            micros = round(float(frame.time) * 1_000_000)
            first = micros if first is None else first
            last_t = max(last_t, micros - first)
            ft = FiveTuple(_ip_int(ip.src), vip.ip, int(l4.sport), vip.port, proto)
            flags = int(l4.flags) & 0x1F if proto == PROTO_TCP else 0
            seq, ack = (int(l4.seq), int(l4.ack)) if proto == PROTO_TCP else (0, 0)
            capture.packets.append((last_t, Packet(ft, flags, seq, ack)))
    if not capture.packets:
        wanted = " to map onto " + ", ".join(vip_text(v) for v in vips) if vips else ""
        seen = f" (read {number:,} packets: {', '.join(capture.skipped)})" if number else " (it holds no packets)"
        raise CaptureError(f"{path}: no IPv4 TCP or UDP packets{wanted}{seen}")
    return capture


PCAP_MAGICS = {b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">", b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<"}


def _check_complete(path: Path) -> None:
    """A classic pcap must end on a record boundary (scapy would quietly keep a cut-off packet)."""
    data = path.read_bytes()
    endian = PCAP_MAGICS.get(data[:4])
    if endian is None:
        return  # pcapng or not a capture: scapy decides
    offset = 24
    number = 0
    while offset < len(data):
        number += 1
        if offset + 16 > len(data):
            raise CaptureError(f"{path}: truncated: packet #{number}'s record header is cut off")
        caplen = struct.unpack(endian + "I", data[offset + 8 : offset + 12])[0]
        if offset + 16 + caplen > len(data):
            raise CaptureError(f"{path}: truncated: packet #{number} has {len(data) - offset - 16} of its "
                               f"{caplen} bytes")  # fmt: skip
        offset += 16 + caplen


def _ip_int(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return a << 24 | b << 16 | c << 8 | d


def distinct_flows(capture: Capture) -> tuple[Flows, np.ndarray]:
    """Every flow of the capture once (first appearance order), and whether its first packet is a TCP SYN."""
    first: dict[FiveTuple, bool] = {}
    for _, packet in capture.packets:
        first.setdefault(packet.ft, packet.is_syn)
    return Flows.from_tuples(first), np.array(list(first.values()), dtype=bool)


def capture_trace(capture: Capture, config: Config, pools: dict[Vip, tuple[Dip, ...]], learn_interval: int,
                  updates: Sequence[ev.UpdateRequested] = ()) -> Trace:  # fmt: skip
    """The capture as a trace: its packets, the CPU learning every ``learn_interval`` µs (advancing
    the update protocol when there are ``updates``), and the updates at their times."""
    if learn_interval <= 0:
        raise CaptureError(f"learn interval {learn_interval} µs: it must be positive")
    used = set(capture.mapped.values())
    missing = sorted(vip_text(v) for v in used if v not in pools)
    if missing:
        raise CaptureError(f"{capture.path}: flows map onto {', '.join(missing)}, which has no pool")
    description = f"flows of {capture.path.name} mapped onto the VIPs; the CPU learns every {learn_interval} µs"
    trace = Trace(config, dict(pools), name=capture.path.stem, description=description)
    cpu_step = ev.CpuAdvances if updates else ev.CpuLearns
    end = max([capture.packets[-1][0], *(u.t for u in updates)])
    steps = [cpu_step(t) for t in range(learn_interval, end + learn_interval, learn_interval)]
    packets = [ev.PacketArrives(t, packet) for t, packet in capture.packets]
    # At equal times: updates first, then the packets, then the CPU step.
    ranked = [(u.t, 0, u) for u in updates] + [(e.t, 1, e) for e in packets] + [(e.t, 2, e) for e in steps]
    trace.events = [event for _, _, event in sorted(ranked, key=lambda item: item[:2])]
    return trace


def _pool(text: str) -> tuple[Dip, ...]:
    try:
        pool = tuple(parse_dip(item.strip()) for item in text.split(",") if item.strip())
    except ValueError as error:
        raise CaptureError(f"pool {text!r}: {error}") from None
    if not pool:
        raise CaptureError(f"pool {text!r} is empty")
    return pool


def parse_vips(texts: Sequence[str]) -> list[Vip]:
    vips = []
    for text in texts:
        try:
            vips.append(parse_vip(text))
        except ValueError as error:
            raise CaptureError(f"--vip {text!r}: {error}") from None
    return vips


def capture_from_args(args: argparse.Namespace) -> Trace:
    """``silkcheck replay --pcap``: read, map, and build the trace (saved if asked)."""
    vips = parse_vips(args.vip)
    if not vips:
        raise CaptureError("--pcap needs at least one --vip to map the capture's flows onto")
    if len(args.pool) not in (1, len(vips)):
        raise CaptureError(f"give one --pool for every VIP or one for all: {len(vips)} VIPs, {len(args.pool)} pools")
    pools = [_pool(text) for text in args.pool] if args.pool else []
    if not pools:
        raise CaptureError("--pcap needs --pool DIP,... (the VIPs' initial pool)")
    by_vip = {vip: pools[i if len(pools) > 1 else 0] for i, vip in enumerate(vips)}
    capture = read_capture(args.pcap, vips, args.max_packets)
    print(capture.summary())
    updates = []
    if (args.update_at_us is None) != (args.update_pool is None):
        raise CaptureError("--update-at-us and --update-pool go together")
    if args.update_pool is not None:
        updates = [ev.UpdateRequested(args.update_at_us, vip, _pool(args.update_pool)) for vip in vips]
    trace = capture_trace(capture, Config(), by_vip, args.learn_interval_us, updates)
    if args.save_trace:
        save(trace, args.save_trace)
        print(f"wrote {args.save_trace}")
    return trace
