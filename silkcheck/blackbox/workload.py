"""Black-box workloads: connections over real time, pool updates, bursts, SYN floods, a nemesis.

A workload is a trace of packet, update and nemesis events (µs offsets), made from a
seed. Connections open with a handshake (a SYN, sometimes retransmitted, then the
ACK), send a few data packets and close with FIN (and the last ACK), RST, or go quiet.
A burst of new connections opens right at each pool update, where a load balancer's
bookkeeping is busiest; a SYN flood adds single SYNs from many sources. The nemesis
switches one fault on at a time, half of them just before a pool update (``FAULT_LEAD_US``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from model import events as ev
from model.config import Config
from model.types import ACK, FIN, PSH, RST, SYN, Dip, FiveTuple, Packet, Vip, parse_ip
from silkcheck.trace import NEMESIS_FAULTS, Nemesis, Trace

CLIENT_NET = parse_ip("198.18.0.0")
"""Clients come from 198.18.0.0/15 (RFC 2544's benchmarking range); SYN-flood sources from the upper half."""
FLOOD_NET = parse_ip("198.19.0.0")
FAULT_LEAD_US = 100_000
"""Half of the faults start at most this long before a pool update, so that they cover the
update and the burst of connections opened with it (the other half fall anywhere)."""


@dataclass(frozen=True)
class WorkloadSpec:
    duration_us: int = 3_000_000
    connections_per_s: float = 100.0
    update_every_us: int = 1_000_000
    burst: int = 8
    """New connections opened within 2 ms of each update."""
    syn_flood_per_s: float = 0.0
    nemesis: tuple[str, ...] = ()
    nemesis_every_us: int = 1_200_000
    max_digest_delay_us: int = 200_000
    """The nemesis never holds a digest longer: a design may rely on a learn-delay bound."""


def nemesis_kinds(text: str) -> tuple[str, ...]:
    """``all``, ``none`` or a comma-separated list of ``NEMESIS_FAULTS``."""
    if text in ("", "none"):
        return ()
    if text == "all":
        return NEMESIS_FAULTS
    kinds = tuple(k.strip() for k in text.split(","))
    unknown = [k for k in kinds if k not in NEMESIS_FAULTS]
    if unknown:
        known = ", ".join(NEMESIS_FAULTS)
        raise ValueError(f"unknown nemesis fault(s) {', '.join(unknown)}; known: all, none, {known}")
    return kinds


def generate(spec: WorkloadSpec, config: Config, pools: dict[Vip, tuple[Dip, ...]], dips: tuple[Dip, ...],
             seed: int, name: str = "") -> Trace:  # fmt: skip
    rng = random.Random(seed)
    events: list[ev.Event | Nemesis] = []
    vips = list(pools)
    serial = 0

    def connection(t0: int) -> None:
        nonlocal serial
        serial += 1
        vip = rng.choice(vips)
        ft = FiveTuple(CLIENT_NET + rng.randrange(1, 1 << 16), vip.ip, rng.randrange(1024, 65536), vip.port,
                       vip.proto)  # fmt: skip
        events.extend(_connection(rng, ft, t0))

    t = 0
    while (t := t + int(rng.expovariate(spec.connections_per_s) * 1e6)) < spec.duration_us:
        connection(t)
    current = dict(pools)
    for at in range(spec.update_every_us // 2, spec.duration_us, spec.update_every_us):
        at += rng.randrange(0, spec.update_every_us // 4)
        for vip in vips:
            choices = [p for n in range(1, len(dips) + 1) for p in [tuple(rng.sample(dips, n))] if p != current[vip]]
            current[vip] = rng.choice(choices)
            events.append(ev.UpdateRequested(at, vip, current[vip]))
        for _ in range(spec.burst):
            connection(max(0, at + rng.randrange(-2000, 2000)))
    if spec.syn_flood_per_s:
        t = 0
        while (t := t + int(rng.expovariate(spec.syn_flood_per_s) * 1e6)) < spec.duration_us:
            vip = rng.choice(vips)
            ft = FiveTuple(FLOOD_NET + rng.randrange(1 << 16), vip.ip, rng.randrange(1024, 65536), vip.port, vip.proto)
            events.append(ev.PacketArrives(t, Packet(ft, SYN, rng.randrange(1 << 32))))
    if spec.nemesis:
        updates = sorted({e.t for e in events if isinstance(e, ev.UpdateRequested)})
        at = spec.nemesis_every_us // 3
        while at < spec.duration_us:
            fault = rng.choice(spec.nemesis)
            duration = rng.randrange(100_000, 600_000)
            delay = {"digest_delay": rng.randrange(spec.max_digest_delay_us // 4, spec.max_digest_delay_us + 1),
                     "write_delay": rng.randrange(2_000, 20_000)}.get(fault, 0)  # fmt: skip
            events.append(Nemesis(at, fault, duration, delay))
            end = at + duration
            at = end + rng.randrange(spec.nemesis_every_us // 2, spec.nemesis_every_us)
            upcoming = [u for u in updates if u - FAULT_LEAD_US > end]
            if upcoming and rng.random() < 0.5:  # a fault when it hurts: just before the next update
                at = upcoming[0] - rng.randrange(0, FAULT_LEAD_US)
    events.sort(key=lambda e: e.t)
    return Trace(config, dict(pools), events, name or f"blackbox workload, seed {seed}")


def _connection(rng: random.Random, ft: FiveTuple, t0: int) -> list[ev.PacketArrives]:
    """One client's connection: handshake, data, close. Sequence numbers are the client's own."""
    isn = rng.randrange(1 << 32)
    server_isn = rng.randrange(1 << 32)
    out = [ev.PacketArrives(t0, Packet(ft, SYN, isn))]
    t = t0
    if rng.random() < 0.1:  # the SYN-ACK was lost: retransmit the SYN
        t += rng.randrange(20_000, 100_000)
        out.append(ev.PacketArrives(t, Packet(ft, SYN, isn)))
    seq, ack = (isn + 1) & 0xFFFFFFFF, (server_isn + 1) & 0xFFFFFFFF
    t += rng.randrange(1_000, 20_000)
    out.append(ev.PacketArrives(t, Packet(ft, ACK, seq, ack)))
    for _ in range(rng.randrange(1, 7)):
        t += int(rng.expovariate(1 / 80_000)) + 100
        out.append(ev.PacketArrives(t, Packet(ft, PSH | ACK, seq, ack)))
        seq = (seq + 100) & 0xFFFFFFFF
    end = rng.random()
    if end < 0.7:
        t += rng.randrange(1_000, 50_000)
        out.append(ev.PacketArrives(t, Packet(ft, FIN | ACK, seq, ack)))
        t += rng.randrange(1_000, 10_000)
        out.append(ev.PacketArrives(t, Packet(ft, ACK, (seq + 1) & 0xFFFFFFFF, (ack + 1) & 0xFFFFFFFF)))
    elif end < 0.85:
        t += rng.randrange(1_000, 50_000)
        out.append(ev.PacketArrives(t, Packet(ft, RST | ACK, seq, ack)))
    return out
