"""One black-box run: a trace played in real time against BMv2 and the user's controller.

A ``Session`` owns what lasts across runs (the namespace and its veth pairs, the
``simple_switch_grpc`` process, the P4Runtime proxy, the port sockets). Each ``run``
loads a fresh pipeline (empty tables and registers), starts the controller through
its adapter, finds the barrier connections, then plays the trace on the clock:

* ``packet`` — sent on the first client port at ``t`` µs after the run started;
* ``update`` — ``adapter.change_pool`` at ``t`` (observed as a CPU ``update``);
* nemesis faults — switched on at ``t`` and off ``duration`` µs later.

Observations are what came out of the switch (``wire.py``), stamped with the time the
packet was really sent; the recorded trace carries those times, so replaying it
schedules what really happened. Nothing else of the target reaches the oracle.
"""

from __future__ import annotations

import heapq
import itertools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from model import events as ev
from model.observations import DROP, CpuObservation, Observation, PacketObservation
from model.types import ACK, PROTO_TCP, FiveTuple, Packet, Vip, parse_ip
from silkcheck.blackbox.controller import (
    ControllerAdapter,
    Pools,
    SwitchAddress,
    election_ids,
    load_adapter,
    start_controller,
)
from silkcheck.blackbox.ports import Namespace
from silkcheck.blackbox.proxy import P4RuntimeProxy
from silkcheck.blackbox.wire import Wire
from silkcheck.p4runtime import P4Info, P4RuntimeClient, P4RuntimeError
from silkcheck.targets import TargetError
from silkcheck.trace import Nemesis, Trace, TraceError, vip_text

BARRIER_NET = parse_ip("192.0.2.0")
BARRIER_GAP_US = 500
"""A barrier round goes out when the next event is further away than this."""
BARRIER_EVERY = 64
"""... or after this many packets without one."""
SETTLE_TIMEOUT_S = 10.0
LOSS_MARGIN_US = 200_000
"""The learning of a connection that sent a packet this long before a digest drop or a
controller kill, or during it, may be lost (its digest in flight, or read and not acted on)."""
BLACKBOX_KINDS = (ev.PacketArrives, ev.UpdateRequested, Nemesis)


@dataclass(frozen=True)
class Setup:
    """What the black-box target runs: the compiled program, the controller adapter, the ports."""

    program: Path
    p4info: Path
    controller: str
    client_ports: tuple[int, ...] = (1,)
    server_ports: tuple[int, ...] = (2,)
    extra: dict[str, str] = field(default_factory=dict)
    """Shown in saved results: how to rebuild this setup (e.g. the example's name)."""

    @property
    def ports(self) -> tuple[int, ...]:
        return self.client_ports + self.server_ports


@dataclass
class RunStats:
    packets: int = 0
    connections: int = 0
    seconds: float = 0.0
    late_events_us: list[int] = field(default_factory=list)
    """How late each event was sent against its schedule."""
    barriers: int = 0
    late_frames: int = 0
    unknown_frames: int = 0
    nemesis: dict[str, int] = field(default_factory=dict)
    """Faults switched on, per kind."""
    nemesis_skipped: int = 0
    """Process faults that could not act (the controller was restarting, or had no process)."""
    dropped: int = 0
    """Packets the drop rule judged dropped."""
    proxy: dict[str, int] = field(default_factory=dict)
    failed_starts: int = 0
    """Controller (re)starts that exited before ready and were started again."""

    @property
    def packets_per_s(self) -> float:
        return self.packets / self.seconds if self.seconds else 0.0


@dataclass
class BlackboxRun:
    observations: list[Observation]
    recorded: Trace
    """The trace as it really ran: every event at the time it happened."""
    stats: RunStats


def check_blackbox_trace(trace: Trace) -> None:
    for index, event in enumerate(trace.events):
        if not isinstance(event, BLACKBOX_KINDS):
            kind = type(event).__name__
            raise TraceError(
                f"{trace.name or 'trace'}: events[{index}]: a {kind} event drives the model's own CPU; a black-box "
                "trace holds only packet, update and nemesis fault events (the controller runs on its own)"
            )


class Session:
    """The lasting part of the black-box target; ``close`` removes the namespace."""

    def __init__(self, setup: Setup) -> None:
        from silkcheck.targets.bmv2 import SimpleSwitch

        self.setup = setup
        self.adapter_class = load_adapter(setup.controller)
        for path in (setup.program, setup.p4info):
            if not Path(path).is_file():
                raise TargetError(f"no such file {path}")
        self.info = P4Info(Path(setup.p4info))
        self.device_json = Path(setup.program).read_bytes()
        self._elections = election_ids()
        self.namespace = Namespace(setup.ports)
        self.switch = None
        self.proxy = None
        self.wire = None
        try:
            self.switch = SimpleSwitch(interfaces=self.namespace.interfaces, launcher=self.namespace.launcher,
                                       unix_grpc=True)  # fmt: skip
            self.proxy = P4RuntimeProxy(self.switch.grpc_address, f"unix:{self.switch.workdir}/proxy.sock")
            self.wire = Wire(self.namespace.open_sockets(), setup.client_ports, setup.server_ports)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.wire is not None:
            self.wire.close()
        if self.proxy is not None:
            self.proxy.close()
        if self.switch is not None:
            self.switch.stop()
        self.namespace.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def switch_address(self) -> SwitchAddress:
        assert self.proxy is not None
        return SwitchAddress(self.proxy.address, 0, next(self._elections))

    def load_pipeline(self) -> None:
        """A fresh pipeline: every table and register empty."""
        assert self.switch is not None
        client = P4RuntimeClient(self.switch.grpc_address, election_id=next(self._elections))
        try:
            client.set_pipeline(self.info, self.device_json)
        except P4RuntimeError as error:
            raise P4RuntimeError(f"{error}\n{self.switch.log_tail()}") from None
        finally:
            client.close()

    def run(self, trace: Trace, progress: Callable[[str], None] | None = None,
            stop: threading.Event | None = None) -> BlackboxRun:  # fmt: skip
        check_blackbox_trace(trace)
        self.load_pipeline()
        adapter: ControllerAdapter = self.adapter_class()
        try:
            failed_starts = start_controller(adapter, self.switch_address, dict(trace.vips), False)
            player = _Player(self, adapter, trace, progress, stop)
            player.stats.failed_starts = failed_starts
            return player.play()
        finally:
            adapter.stop()


def sleep_until(deadline: float) -> None:
    """Until ``time.monotonic()`` reaches ``deadline``: sleep most of the way, then yield the core
    in short naps (precise enough, and BMv2 keeps the other core)."""
    while (ahead := deadline - time.monotonic()) > 0:
        time.sleep(ahead - 0.0005 if ahead > 0.001 else 0.00005)


def barrier_packets(wire: Wire, vip: Vip, client_port: int, server_ports: tuple[int, ...]) -> list[Packet]:
    """One barrier connection to ``vip`` per server port, found by probing (polls; gives up after a few seconds)."""
    flags = ACK if vip.proto == PROTO_TCP else 0
    found: dict[int, Packet] = {}
    for n in range(1, 256):
        if set(found) >= set(server_ports):
            return [found[p] for p in server_ports]
        packet = Packet(FiveTuple(BARRIER_NET + n, vip.ip, 9, vip.port, vip.proto), flags)
        port = wire.probe(packet, client_port, timeout=2.0 if n == 1 else 0.5)
        if port in server_ports and port not in found:
            found[port] = packet
        if port is None and n == 1:
            raise TargetError(
                f"the program forwarded no packet of a barrier connection to {vip_text(vip)} within 2 s "
                "(is the controller ready? does the program forward a new connection's non-SYN packet?)"
            )
    missing = sorted(set(server_ports) - set(found))
    raise TargetError(f"no barrier connection leaves by server port(s) {missing}")


class _Player:
    """Plays one trace on the clock and turns what came back into observations."""

    def __init__(self, session: Session, adapter: ControllerAdapter, trace: Trace,
                 progress: Callable[[str], None] | None, stop: threading.Event | None) -> None:  # fmt: skip
        self.session = session
        self.adapter = adapter
        self.trace = trace
        self.progress = progress
        self.stop = stop
        assert session.wire is not None and session.proxy is not None
        self.wire = session.wire
        self.proxy = session.proxy
        self.client_port = session.setup.client_ports[0]
        self.pools: Pools = dict(trace.vips)
        self.cpu_observations: dict[int, CpuObservation] = {}
        self.recorded: list[ev.Event | Nemesis] = []
        self.stats = RunStats()
        self.loss_windows: list[tuple[int, int, int]] = []
        """(nemesis event index, from, to) µs: packets sent then may have lost their learning."""
        self.restarts: list[threading.Thread] = []
        self.restart_failures: list[TargetError] = []

    def now_us(self) -> int:
        return int((time.monotonic() - self.start) * 1e6)

    def play(self) -> BlackboxRun:
        self.barriers = barrier_packets(self.wire, next(iter(self.trace.vips)), self.client_port,
                                        self.session.setup.server_ports)  # fmt: skip
        self.wire.take_results()  # nothing of the probes is an observation
        schedule: list[tuple[int, int, int, Callable[[], bool]]] = []
        order = itertools.count()
        for index, event in enumerate(self.trace.events):
            heapq.heappush(schedule, (event.t, next(order), index, self._action(index, event, schedule, order)))
        self.start = time.monotonic()
        since_barrier = 0
        last_report = self.start
        while schedule:
            if self.stop is not None and self.stop.is_set():
                break
            t, _, index, action = heapq.heappop(schedule)
            sleep_until(self.start + t / 1e6)
            if index >= 0:
                self.stats.late_events_us.append(max(0, self.now_us() - t))
            if action():
                since_barrier += 1
            gap = schedule[0][0] - self.now_us() if schedule else None
            if since_barrier and (gap is None or gap > BARRIER_GAP_US or since_barrier >= BARRIER_EVERY):
                self.wire.send_barriers(self.barriers, self.client_port)
                since_barrier = 0
            if self.progress is not None and time.monotonic() - last_report > 1.0:
                last_report = time.monotonic()
                self.progress(f"{self.now_us() / 1e6:6.1f} s  {self.stats.packets:,} packets sent")
        self.wire.settle(self.barriers, self.client_port, SETTLE_TIMEOUT_S)
        for thread in self.restarts:
            thread.join()
        if self.restart_failures:
            raise self.restart_failures[0]
        self.stats.seconds = time.monotonic() - self.start
        return self._finish()

    def _action(self, index: int, event: ev.Event | Nemesis, schedule: list[tuple[int, int, int, Callable[[], bool]]],
                order: itertools.count[int]) -> Callable[[], bool]:  # fmt: skip
        """What to do at the event's time; True when it sent a packet."""
        match event:
            case ev.PacketArrives(_, packet):
                def send() -> bool:
                    t = self.now_us()
                    self.wire.send_packet(index, t, packet, self.client_port)
                    self.recorded.append(ev.PacketArrives(t, packet))
                    self.stats.packets += 1
                    return True

                return send
            case ev.UpdateRequested(_, vip, pool):
                def update() -> bool:
                    t = self.now_us()
                    self.pools[vip] = pool
                    self.adapter.change_pool(vip, pool)
                    self.recorded.append(ev.UpdateRequested(t, vip, pool))
                    asked = f"asked the controller: {vip} -> {', '.join(str(d) for d in pool)}"
                    self.cpu_observations[index] = CpuObservation(index, t, "update", notes=(asked,))
                    return False

                return update
            case Nemesis():
                def begin() -> bool:
                    t = self.now_us()
                    self.recorded.append(event._replace(t=t))
                    ended = self._nemesis(index, event, t)
                    if ended is not None:
                        heapq.heappush(schedule, (t + event.duration, next(order), -1, ended))
                    return False

                return begin
        raise TraceError(f"events[{index}]: not a black-box event: {event!r}")

    # ------------------------------------------------------------ the nemesis

    def _nemesis(self, index: int, fault: Nemesis, t: int) -> Callable[[], bool] | None:
        """Switch ``fault`` on; return what switches it off (None: it could not act)."""
        self.stats.nemesis[fault.fault] = self.stats.nemesis.get(fault.fault, 0) + 1
        notes = [f"nemesis: {fault.fault} for {fault.duration / 1000:.0f} ms"]
        process = getattr(self.adapter, "process", None)
        faults = self.proxy.faults

        def off(action: Callable[[], None], loses: bool = False) -> Callable[[], bool]:
            def end() -> bool:
                action()
                if loses:
                    self.loss_windows.append((index, t - LOSS_MARGIN_US, self.now_us()))
                return False

            return end

        ended: Callable[[], bool] | None = None
        on_process = fault.fault in ("controller_pause", "controller_kill")
        if on_process and any(thread.is_alive() for thread in self.restarts):
            notes.append("skipped: the controller is still restarting")
            self.stats.nemesis_skipped += 1
        elif on_process and (process is None or process.poll() is not None):
            notes.append("skipped: the adapter has no live controller process")
            self.stats.nemesis_skipped += 1
        elif fault.fault == "controller_pause":
            os.kill(process.pid, signal.SIGSTOP)
            ended = off(lambda: os.kill(process.pid, signal.SIGCONT))
        elif fault.fault == "controller_kill":
            process.kill()
            process.wait()
            ended = off(self._restart_later, loses=False)
        elif fault.fault == "digest_delay":
            faults.digest_delay = fault.delay / 1e6
            ended = off(lambda: setattr(faults, "digest_delay", 0.0))
        elif fault.fault == "digest_drop":
            faults.drop_digests = True
            ended = off(lambda: setattr(faults, "drop_digests", False), loses=True)
        elif fault.fault == "write_delay":
            faults.write_delay = fault.delay / 1e6
            ended = off(lambda: setattr(faults, "write_delay", 0.0))
        self.cpu_observations[index] = CpuObservation(index, t, "fault", notes=tuple(notes))
        if fault.fault == "controller_kill" and ended is not None:
            self._kill_index, self._kill_t = index, t
        return ended

    def _restart_later(self) -> None:
        """Restart the killed controller off the clock's thread; its learning is lost until it is ready."""
        index, killed_at = self._kill_index, self._kill_t
        pools = dict(self.pools)

        def restart() -> None:
            try:
                self.stats.failed_starts += start_controller(self.adapter, self.session.switch_address, pools, True)
            except TargetError as error:
                self.restart_failures.append(error)
            finally:
                self.loss_windows.append((index, killed_at - LOSS_MARGIN_US, self.now_us()))

        thread = threading.Thread(target=restart, name="controller-restart")
        thread.start()
        self.restarts.append(thread)

    # ------------------------------------------------------------ observations

    def _finish(self) -> BlackboxRun:
        packets = {o.index: o for o in self.wire.take_results()}
        self._lost_learning(packets)
        observations: list[Observation] = []
        for index in range(len(self.trace.events)):
            if index in packets:
                observations.append(packets[index])
            elif index in self.cpu_observations:
                observations.append(self.cpu_observations[index])
        self.recorded.sort(key=lambda e: e.t)
        recorded = Trace(self.trace.config, dict(self.trace.vips), self.recorded, self.trace.name,
                         self.trace.description)  # fmt: skip
        counts = self.wire.counts
        self.stats.barriers, self.stats.late_frames, self.stats.unknown_frames = (
            counts.barriers, counts.late, counts.unknown)  # fmt: skip
        self.stats.proxy = dict(vars(self.proxy.counts))
        self.stats.connections = len({o.ft for o in packets.values()})
        self.stats.dropped = sum(o.action == DROP for o in packets.values())
        return BlackboxRun(observations, recorded, self.stats)

    def _lost_learning(self, packets: dict[int, PacketObservation]) -> None:
        """A digest drop or a kill destroys what the controller could learn from the packets
        sent meanwhile: the fault's observation names them, so the oracle can tell."""
        for index, low, high in self.loss_windows:
            lost = tuple((o.ft, o.t) for o in packets.values() if low <= o.t <= high)
            base = self.cpu_observations[index]
            self.cpu_observations[index] = base._replace(lost=base.lost + lost)


def print_progress(message: str) -> None:
    print(f"  [blackbox] {message}", file=sys.stderr, flush=True)
