"""``silkcheck blackbox-bench``: the harness's cost per packet, and BMv2's packets/s through each example.

Every setup gets the same traffic, sent as fast as the switch takes it: ``packets`` packets
round-robin over ``connections`` connections of the first VIP, at most ``WINDOW`` unresolved
at a time (more would overflow the kernel's backlog and measure drops), barrier rounds as a
run sends them, then the drop rule settles the rest. Each example first sends one packet per
connection and settles, so stateful ones have learned them (their controllers are running).

The baseline, measured in the same process: the same harness code (frame numbering, the
reader thread, matching, barriers) on a bare veth pair, its client end sending straight to
its server end: the harness with a switch that costs nothing. Its time per packet is the
harness's overhead; an example's packets/s over it says how much of a run the switch takes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from model.types import ACK, FiveTuple, Packet, Vip
from silkcheck.blackbox.controller import start_controller
from silkcheck.blackbox.harness import BARRIER_EVERY, SETTLE_TIMEOUT_S, Session, barrier_packets
from silkcheck.blackbox.ports import Namespace
from silkcheck.blackbox.wire import Wire
from silkcheck.blackbox.workload import CLIENT_NET
from silkcheck.trace import Trace

WINDOW = 256
"""Packets in flight at most (the kernel's default netdev backlog is 1,000)."""


@dataclass(frozen=True)
class Measured:
    name: str
    packets: int
    seconds: float
    forwarded: int
    dropped: int

    @property
    def packets_per_s(self) -> float:
        return self.packets / self.seconds

    @property
    def us_per_packet(self) -> float:
        return self.seconds / self.packets * 1e6


def traffic(vip: Vip, packets: int, connections: int) -> list[Packet]:
    flows = [FiveTuple(CLIENT_NET + 1 + n, vip.ip, 10_000 + n, vip.port, vip.proto) for n in range(connections)]
    return [Packet(flows[i % connections], ACK, i) for i in range(packets)]


def blast(wire: Wire, packets: list[Packet], barriers: list[Packet], client_port: int) -> float:
    """Send ``packets`` (at most ``WINDOW`` unresolved), then settle; seconds from first send to the last result."""
    wire.take_results()
    start = time.perf_counter()
    for index, packet in enumerate(packets):
        wire.wait_in_flight_below(WINDOW, SETTLE_TIMEOUT_S)
        wire.send_packet(index, int((time.perf_counter() - start) * 1e6), packet, client_port)
        if (index + 1) % BARRIER_EVERY == 0:
            wire.send_barriers(barriers, client_port)
    wire.settle(barriers, client_port, SETTLE_TIMEOUT_S)
    return time.perf_counter() - start


def _measured(name: str, wire: Wire, seconds: float, packets: int) -> Measured:
    results = wire.take_results()
    forwarded = sum(o.action == "forward" for o in results)
    return Measured(name, packets, seconds, forwarded, sum(o.action == "drop" for o in results))


def loopback(packets: list[Packet], vip: Vip) -> Measured:
    """The baseline: the harness on one veth pair (client port 1 at one end, server port 2 at the other)."""
    namespace = Namespace((1,))
    try:
        ends = namespace.open_sockets({1: namespace.harness_side(1), 2: namespace.switch_side(1)})
        wire = Wire(ends, (1,), (2,))
        try:
            barriers = barrier_packets(wire, vip, 1, (2,))
            seconds = blast(wire, packets, barriers, 1)
            return _measured("harness alone (veth loopback)", wire, seconds, len(packets))
        finally:
            wire.close()
    finally:
        namespace.close()


def through(session: Session, trace: Trace, packets: list[Packet], name: str) -> Measured:
    """The same traffic through BMv2 running the session's program, its controller started."""
    session.load_pipeline()
    adapter = session.adapter_class()
    start_controller(adapter, session.switch_address, dict(trace.vips), False)
    try:
        assert session.wire is not None
        client = session.setup.client_ports[0]
        barriers = barrier_packets(session.wire, next(iter(trace.vips)), client, session.setup.server_ports)
        connections = len({p.ft for p in packets})
        blast(session.wire, packets[:connections], barriers, client)  # one packet per connection: learned
        seconds = blast(session.wire, packets, barriers, client)
        return _measured(name, session.wire, seconds, len(packets))
    finally:
        adapter.stop()


def report(baseline: Measured, rows: list[Measured]) -> str:
    lines = [f"{'setup':<34} {'packets':>8} {'s':>7} {'packets/s':>10} {'µs/packet':>10} {'x harness':>9} "
             f"{'forwarded':>9} {'dropped':>7}"]  # fmt: skip
    for row in [baseline, *rows]:
        lines.append(f"{row.name:<34} {row.packets:>8,} {row.seconds:>7.2f} {row.packets_per_s:>10,.0f} "
                     f"{row.us_per_packet:>10.1f} {baseline.packets_per_s / row.packets_per_s:>9.1f} "
                     f"{row.forwarded:>9,} {row.dropped:>7,}")  # fmt: skip
    lines.append(f"harness overhead: {baseline.us_per_packet:.1f} µs per packet (the loopback row); "
                 "'x harness': how many times longer a packet takes through that setup")  # fmt: skip
    return "\n".join(lines)


def run_bench(setups: list[tuple[str, Callable[[], Session], Trace]], packets: int, connections: int,
              progress: Callable[[str], None]) -> str:  # fmt: skip
    """The baseline, then each (name, session factory, trace with its VIPs) in turn."""
    vip = next(iter(setups[0][2].vips))
    sent = traffic(vip, packets, connections)
    progress(f"baseline: {packets:,} packets through the harness alone")
    baseline = loopback(sent, vip)
    rows = []
    for name, open_session, trace in setups:
        progress(f"{name}: {packets:,} packets through BMv2")
        with open_session() as session:
            rows.append(through(session, trace, sent, name))
    return report(baseline, rows)
