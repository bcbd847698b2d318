"""``silkcheck blackbox-bench``: the harness's cost per packet, and BMv2's packets/s through each example.

Every setup gets the same traffic: ``packets`` packets round-robin over ``connections``
connections of the first VIP (each of which the examples forward), barrier rounds as a run
sends them, then the drop rule settles the rest. Each example first sends one packet per
connection and settles, so stateful ones have learned them (their controllers are running).

Two figures per setup, as RFC 2544 measures a device's throughput:

* **flat out**: sent as fast as the harness can, at most ``WINDOW`` unresolved (the kernel's
  backlog holds 1,000): packets sent and forwarded per second, and the share lost. BMv2
  drops what finds its egress queue full (64 packets per port by default), so a burst, or a
  stall of its threads on a loaded machine, loses packets (the veth counters show the frames
  reached BMv2's port);
* **without loss**: the highest paced rate at which at most ``LOSS`` of the packets are
  lost, by bisection between 0 and the flat-out rate (``STEPS`` trials). On a loaded machine
  this one measures the machine's stalls more than BMv2.

The baseline, measured in the same process: the same harness code (frame numbering, the
reader thread, matching, barriers, pacing) on a bare veth pair, its client end sending
straight to its server end: the harness with a switch that costs nothing. Its time per
forwarded packet flat out is the harness's overhead; an example's ratio to it says how many
times longer a packet takes through the switch than through the harness alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from model.types import ACK, FiveTuple, Packet, Vip
from silkcheck.blackbox.controller import start_controller
from silkcheck.blackbox.harness import BARRIER_EVERY, SETTLE_TIMEOUT_S, Session, barrier_packets, sleep_until
from silkcheck.blackbox.ports import Namespace
from silkcheck.blackbox.wire import Wire
from silkcheck.blackbox.workload import CLIENT_NET
from silkcheck.trace import Trace

WINDOW = 256
"""Packets in flight at most (the kernel's default netdev backlog is 1,000)."""
LOSS = 0.001
"""The loss a rate may have and still count as without loss."""
STEPS = 7
"""Bisection trials: the rate found is within 1/2^STEPS of the flat-out rate below the true one."""


@dataclass(frozen=True)
class Trial:
    rate: float | None
    """Packets/s asked for (None: flat out)."""
    packets: int
    seconds: float
    forwarded: int
    late: int
    """Frames that came after the drop rule had judged their packet dropped."""

    @property
    def packets_per_s(self) -> float:
        return self.packets / self.seconds

    @property
    def forwarded_per_s(self) -> float:
        return self.forwarded / self.seconds

    @property
    def loss(self) -> float:
        return 1 - self.forwarded / self.packets


@dataclass(frozen=True)
class Measured:
    name: str
    flat_out: Trial
    lossless: Trial | None
    """The fastest trial within ``LOSS`` (None: even the slowest lost more)."""

    @property
    def us_per_packet(self) -> float:
        """Per forwarded packet, flat out."""
        return 1e6 / self.flat_out.forwarded_per_s


def traffic(vip: Vip, packets: int, connections: int) -> list[Packet]:
    flows = [FiveTuple(CLIENT_NET + 1 + n, vip.ip, 10_000 + n, vip.port, vip.proto) for n in range(connections)]
    return [Packet(flows[i % connections], ACK, i) for i in range(packets)]


class Bench:
    """Trials of one setup: a wire, its barrier packets, the port to send on."""

    def __init__(self, wire: Wire, barriers: list[Packet], client_port: int) -> None:
        self.wire, self.barriers, self.client_port = wire, barriers, client_port

    def trial(self, packets: list[Packet], rate: float | None) -> Trial:
        """Send ``packets`` (paced at ``rate`` packets/s, at most ``WINDOW`` unresolved), settle, count."""
        wire = self.wire
        wire.take_results()
        late = wire.counts.late
        start = time.monotonic()
        for index, packet in enumerate(packets):
            if rate is not None:
                sleep_until(start + index / rate)
            wire.wait_in_flight_below(WINDOW, SETTLE_TIMEOUT_S)
            wire.send_packet(index, int((time.monotonic() - start) * 1e6), packet, self.client_port)
            if (index + 1) % BARRIER_EVERY == 0:
                wire.send_barriers(self.barriers, self.client_port)
        wire.settle(self.barriers, self.client_port, SETTLE_TIMEOUT_S)
        seconds = time.monotonic() - start
        forwarded = sum(o.action == "forward" for o in wire.take_results())
        return Trial(rate, len(packets), seconds, forwarded, wire.counts.late - late)

    def measure(self, name: str, packets: list[Packet]) -> Measured:
        flat_out = self.trial(packets, None)
        if flat_out.loss <= LOSS:
            return Measured(name, flat_out, flat_out)
        low, high, best = 0.0, flat_out.packets_per_s, None
        for _ in range(STEPS):
            rate = (low + high) / 2
            trial = self.trial(packets, rate)
            if trial.loss <= LOSS:
                low, best = rate, trial
            else:
                high = rate
        return Measured(name, flat_out, best)


def loopback(packets: list[Packet], vip: Vip) -> Measured:
    """The baseline: the harness on one veth pair (client port 1 at one end, server port 2 at the other)."""
    namespace = Namespace((1,))
    try:
        wire = Wire(namespace.open_sockets({1: namespace.harness_side(1), 2: namespace.switch_side(1)}), (1,), (2,))
        try:
            bench = Bench(wire, barrier_packets(wire, vip, 1, (2,)), 1)
            return bench.measure("harness alone (veth loopback)", packets)
        finally:
            wire.close()
    finally:
        namespace.close()


def through(session: Session, trace: Trace, packets: list[Packet], name: str) -> Measured:
    """The same traffic through BMv2 running the session's program, its controller started."""
    session.load_pipeline()
    adapter = session.adapter_class()
    try:
        start_controller(adapter, session.switch_address, dict(trace.vips), False)
        assert session.wire is not None
        client = session.setup.client_ports[0]
        barriers = barrier_packets(session.wire, next(iter(trace.vips)), client, session.setup.server_ports)
        bench = Bench(session.wire, barriers, client)
        bench.trial(packets[: len({p.ft for p in packets})], None)  # one packet per connection: learned
        return bench.measure(name, packets)
    finally:
        adapter.stop()


def report(baseline: Measured, rows: list[Measured]) -> str:
    head = (f"{'setup':<32} {'flat out: sent/s':>16} {'lost':>6} {'forwarded/s':>11} {'µs/packet':>9} "
            f"{'x harness':>9} {'without loss: packets/s':>23}")  # fmt: skip
    lines = [head]
    for row in [baseline, *rows]:
        flat = row.flat_out
        lossless = f"{row.lossless.packets_per_s:>23,.0f}" if row.lossless else f"{'none found':>23}"
        lines.append(f"{row.name:<32} {flat.packets_per_s:>16,.0f} {flat.loss:>6.1%} {flat.forwarded_per_s:>11,.0f} "
                     f"{row.us_per_packet:>9.1f} {row.us_per_packet / baseline.us_per_packet:>9.1f} {lossless}")
    lines.append(f"harness overhead: {baseline.us_per_packet:.1f} µs per packet (the loopback row, flat out); "
                 f"'x harness': a forwarded packet's time through that setup over it")  # fmt: skip
    late = sum(r.flat_out.late for r in rows)
    if late:
        lines.append(f"{late} frames came after their packets were judged dropped (the drop rule did not hold)")
    return "\n".join(lines)


def run_bench(setups: list[tuple[str, Callable[[], Session], Trace]], packets: int, connections: int,
              progress: Callable[[str], None]) -> str:  # fmt: skip
    """The baseline, then each (name, session factory, trace with its VIPs) in turn."""
    vip = next(iter(setups[0][2].vips))
    sent = traffic(vip, packets, connections)
    progress(f"baseline: {packets:,} packets per trial through the harness alone")
    baseline = loopback(sent, vip)
    rows = []
    for name, open_session, trace in setups:
        progress(f"{name}: {packets:,} packets per trial through BMv2")
        with open_session() as session:
            rows.append(through(session, trace, sent, name))
    return report(baseline, rows)
