"""The BMv2 target: ``p4/silkroad.p4`` in ``simple_switch_grpc``, driven over P4Runtime.

One control plane, two backends: the switch CPU is the model's own
``model.cpu.Cpu``; here it drives ``P4RuntimeDataPlane``, which turns its
operations into P4Runtime writes instead of model table updates.

Packets go in on the CPU port, through the switch's nanomsg packet port
(``silkcheck.nanomsg``), behind a ``packet_out`` header carrying a tag and an
emulated ingress port; the program processes them like any packet from that
port and sends each one back to the CPU port behind a ``packet_in`` header
with the port it would leave by, a ``report`` header saying what it decided
and, unless it was dropped, the frame it would send. (The headers are the
P4Runtime PacketOut/PacketIn ones; the frames skip P4Runtime's gRPC stream,
which costs more per packet than the switch does.) So the target needs no
root, no interfaces and no fixed sleeps: each packet is done when its answer
has arrived. Table writes go over P4Runtime.

What BMv2 cannot do over P4Runtime, and how the target keeps the model's semantics:

* Learn events are the reports' ``learned`` bits (a pipeline in service sends
  them as digests); the learning filter and the queue the CPU reads are
  ``model.dataplane.LearnChannel``, stamped with the trace time of the packet
  that sent them, so ``read_learns(now, limit)`` and the delay/loss faults
  behave as in the model.
* ConnTable idle timers run on trace time: each report names the entry its
  packet hit, which refreshes that entry's timer (BMv2's idle timeout runs on
  wall-clock time).
* Registers cannot be written: TransitTable is cleared by epochs (see the P4).
"""

from __future__ import annotations

import atexit
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

import psutil

from model import events as ev
from model.config import Config
from model.cpu import Cpu
from model.dataplane import LearnChannel, LearnEvent, forward_path
from model.hashing import HashPlan
from model.observations import DROP, FORWARD, REPLY, Observation, PacketObservation
from model.switch import InvalidEvent, Switch
from model.types import Dip, FiveTuple, Vip
from silkcheck import frames
from silkcheck.bmv2_thrift import ThriftClient
from silkcheck.frames import CLIENT_PORT, Egress
from silkcheck.nanomsg import PacketSocket
from silkcheck.p4build import Build, build, require_tool
from silkcheck.p4runtime import (
    P4Info,
    P4RuntimeClient,
    P4RuntimeError,
    Tables,
    pipeline_request,
)
from silkcheck.processes import stop_process
from silkcheck.silkroad_backend import SilkRoadWrites
from silkcheck.targets.model import Driver, event_error, step_each
from silkcheck.trace import CookieAck, PacketEvent, Trace, TraceError

CPU_PORT = 255
PACKET_OUT = struct.Struct("!IH")
"""p4/silkroad.p4 packet_out_t: tag, emulated ingress port."""
PACKET_IN = struct.Struct("!IH")
"""p4/silkroad.p4 packet_in_t: tag, the port the packet would leave by."""
PACKET_TIMEOUT_S = 10.0
IN_FLIGHT = 64
"""Packets injected and not yet answered, at most: every answer waits in the CPU port's egress queue,
which holds 64 packets (BMv2's default depth) and drops what does not fit. (With 128, a loaded machine
lost packets.)"""
START_TIMEOUT_S = 30.0

# p4/silkroad.p4 report_t (the learn digest) and report_h (a harness packet's report), field for field.
REPORT_FIELDS = (
    "tag", "outcome", "path", "learned", "src_ip", "dst_ip", "src_port", "dst_port", "proto",
    "version", "phase", "consults", "transit_hit", "hit", "hit_stage", "digest",
    "bucket0", "bucket1", "bucket2", "bucket3", "bucket4", "bucket5", "bucket6", "bucket7",
    "bloom0", "bloom1", "bloom2", "bloom3", "dip_index", "cookie",
)  # fmt: skip
REPORT_HEADER = struct.Struct("!IBBBIIHHBHBBBBBI8H4IHI")
"""report_h: ``REPORT_FIELDS`` in order, the version widened to 16 bits and the digest to 32."""
ACTIONS = {0: DROP, 1: FORWARD, 2: REPLY}
OUTCOME_DROP = 0
LEARN_BITS = {"new": 1, "syn": 16, "collision": 2, "end": 4, "auth": 8}
"""Learn kinds by their bit in ``report.learned``, in the order the model sends them."""
PATH_NO_VIP, PATH_AUTH_SYNACK, PATH_AUTH_COOKIE_OK, PATH_AUTH_DROP = 1, 2, 3, 4
PATH_SEALED_TRANSIT_HIT, PATH_NO_POOL, PATH_NO_DIP, PATH_FORWARD = 5, 6, 7, 8
FIXED_PATHS = {
    PATH_NO_VIP: "no-vip",
    PATH_AUTH_SYNACK: "auth:syn-ack",
    PATH_AUTH_COOKIE_OK: "auth:cookie-ok",
    PATH_AUTH_DROP: "auth:drop",
    PATH_SEALED_TRANSIT_HIT: "miss:sealed-transit-hit",
}


@dataclass(frozen=True)
class Report:
    """One ``report`` digest: what the pipeline decided for one packet."""

    fields: dict[str, int]

    def __getitem__(self, name: str) -> int:
        return self.fields[name]

    @property
    def ft(self) -> FiveTuple:
        f = self.fields
        return FiveTuple(f["src_ip"], f["dst_ip"], f["src_port"], f["dst_port"], f["proto"])

    def bucket(self, stage: int) -> int:
        return self.fields[f"bucket{stage}"]

    def path_text(self) -> str:
        """The model's ``PacketObservation.path`` for this decision."""
        f = self.fields
        v = f["version"]
        if f["path"] in FIXED_PATHS:
            return FIXED_PATHS[f["path"]]
        if f["path"] == PATH_NO_POOL:
            return f"no-pool:v{v}"
        if f["path"] == PATH_NO_DIP:
            return f"no-dip:v{v}"
        hit_stage = f["hit_stage"] if f["hit"] else None
        return forward_path(hit_stage, bool(f["consults"]), bool(f["transit_hit"]), f["phase"], v)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dying_with_parent(command: list[str]) -> list[str]:
    """``command`` run so that the kernel ends it when the Python process that started it dies,
    however it dies (a killed campaign worker leaves no switch behind): util-linux ``setpriv`` sets
    the parent-death signal and execs it. The signal follows the *thread* that started it: a main
    thread, or a Dask worker's task thread, which lives as long as its worker (Dask's executor
    threads end only when the worker closes). (A ``preexec_fn`` would do it too, but forks a
    process whose gRPC threads then complain.)"""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else command


class SimpleSwitch:
    """A ``simple_switch_grpc`` process. By default with no interfaces: every port's frames go in and
    out of its nanomsg packet port at ``packet_address`` (``silkcheck.nanomsg``), and it logs nothing
    (level off); ``log`` turns BMv2's own packet log on, into that file.

    With ``interfaces`` (port -> name) and ``files_wait_s``, port N reads ``NAME_in.pcap`` in
    ``workdir`` (which the caller prepared) after that many seconds, and writes ``NAME_out.pcap``.
    The black-box target gives it veth ``interfaces``, runs it inside a network namespace
    (``launcher``: the command prefix that enters it) and has it serve P4Runtime on a Unix socket
    (``unix_grpc``), which every namespace can reach."""

    def __init__(self, log: Path | None = None, *, interfaces: dict[int, str] | None = None, files_wait_s: int = 0,
                 workdir: Path | None = None, launcher: tuple[str, ...] = (), unix_grpc: bool = False) -> None:
        binary = require_tool("simple_switch_grpc")
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="silkcheck-bmv2-"))
        self.grpc_address = f"unix:{self.workdir}/p4runtime.sock" if unix_grpc else f"127.0.0.1:{_free_port()}"
        self.log_path = self.workdir / "switch.log"
        self.thrift_port = _free_port()
        # Off unless asked, and explicitly: with no log file BMv2 still formats every message at its
        # default level (trace), which doubles its CPU time per packet (measured, issue #14).
        logging = ["--log-file", str(log), "--log-level", "debug", "--log-flush"] if log else ["--log-level", "off"]
        ports = [arg for port, name in sorted((interfaces or {}).items()) for arg in ("-i", f"{port}@{name}")]
        files = ["--use-files", str(files_wait_s)] if files_wait_s else []
        self.packet_address = None if interfaces else f"ipc://{self.workdir}/packets.ipc"
        packet_port = ["--packet-in", self.packet_address] if self.packet_address else []
        command = [
            *launcher, binary, "--no-p4", "--device-id", "0", "--thrift-port", str(self.thrift_port), *logging, *files,
            *ports, *packet_port,
            *self._notifications_option(binary),
            "--", "--grpc-server-addr", self.grpc_address,
        ]  # fmt: skip
        with self.log_path.open("w") as out:
            self.process = subprocess.Popen(_dying_with_parent(command), stdout=out, stderr=subprocess.STDOUT,
                                            cwd=self.workdir)  # fmt: skip
        self._wait_ready()

    def _notifications_option(self, binary: str) -> list[str]:
        # Two switches on one host must not share the default nanomsg socket.
        help_text = subprocess.run([binary, "--help"], capture_output=True, text=True, check=False).stdout
        if "--notifications-addr" not in help_text:
            return []
        return ["--notifications-addr", f"ipc://{self.workdir}/notifications.ipc"]

    def _wait_ready(self) -> None:
        """Poll the gRPC address until it accepts a connection; give up if the process dies or time runs
        out. (A plain socket connect: a gRPC readiness future's poller thread outlives the channel it polls.)"""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise P4RuntimeError(f"simple_switch_grpc exited at start:\n{self.log_tail()}")
            try:
                self._connect().close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise P4RuntimeError(f"simple_switch_grpc did not answer on {self.grpc_address}") from None
                time.sleep(0.05)

    def _connect(self) -> socket.socket:
        if self.grpc_address.startswith("unix:"):
            unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            unix.settimeout(0.2)
            try:
                unix.connect(self.grpc_address.removeprefix("unix:"))
            except OSError:
                unix.close()
                raise
            return unix
        host, port = self.grpc_address.rsplit(":", 1)
        return socket.create_connection((host, int(port)), timeout=0.2)

    @cached_property
    def _process_info(self) -> psutil.Process:
        """Made once: making one reads /proc afresh (about 50 µs, twice per trace in a campaign)."""
        return psutil.Process(self.process.pid)

    def cpu_seconds(self) -> float:
        """CPU time (user and system, every thread) the switch process has used so far; 0 once it is gone."""
        try:
            times = self._process_info.cpu_times()
        except psutil.Error:
            return 0.0
        return times.user + times.system

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        stop_process(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class P4RuntimeDataPlane(SilkRoadWrites, LearnChannel):
    """The switch CPU's backend for BMv2 (its table writes are ``SilkRoadWrites``; each packet's
    report refreshes the idle timer of the entry it hit), and the packet port of the target."""

    config: Config
    plan: HashPlan
    tables: Tables
    client: P4RuntimeClient
    learn_queue: deque[LearnEvent] = field(default_factory=deque)
    learn_filter: set[tuple[str, FiveTuple]] = field(default_factory=set)
    last_hit: dict[tuple[int, int, int], int] = field(default_factory=dict)
    vip_written: set[Vip] = field(default_factory=set)
    pool_sizes: dict[tuple[Vip, int], int] = field(default_factory=dict)
    packets: PacketSocket | None = None
    """The switch's packet port; a data plane without one writes tables only (the raw anchor's)."""
    egress: dict[int, Egress] = field(default_factory=dict)
    """Trace event index -> what the switch sent for that packet."""
    reports: dict[int, Report] = field(default_factory=dict)

    # ------------------------------------------------------------ backend operations (model.cpu.Backend)

    def idle_time(self, stage: int, bucket: int, digest: int, now: int) -> int:
        return now - self.last_hit[(stage, bucket, digest)]

    # ------------------------------------------------------------ packets

    def inject(self, batch: Sequence[tuple[int, ev.PacketArrives]]) -> dict[int, tuple[Report, Egress | None]]:
        """Send a batch of packets through the pipeline, at most ``IN_FLIGHT`` at a time, and
        collect each one's report and output by its trace event index + 1. The table writes made
        so far are sent first: the packets must see them. Each packet carries a tag no earlier
        packet on this switch carried (``PacketSocket.tags``), so an answer left over from a run
        that failed mid-batch is told apart and skipped."""
        if self.packets is None:
            raise P4RuntimeError("this data plane has no packet port: it only writes tables")
        if not batch:  # the writes wait for the next packet (one request for several CPU steps)
            return {}
        self.tables.flush()
        first = self.packets.tags(len(batch))
        index_of = {first + k: index for k, (index, _) in enumerate(batch)}
        waiting = set(index_of)
        done: dict[int, tuple[Report, Egress | None]] = {}
        sent = 0
        while len(done) < len(batch):
            while sent < len(batch) and sent - len(done) < IN_FLIGHT:
                header = PACKET_OUT.pack(first + sent, CLIENT_PORT)
                self.packets.send(CPU_PORT, header + frames.packet_frame(batch[sent][1].packet).to_bytes())
                sent += 1
            answer = self.packets.receive(time.monotonic() + PACKET_TIMEOUT_S)
            if answer is None:
                index = min(index_of[tag] for tag in waiting)
                raise P4RuntimeError(f"events[{index}]: no answer from the switch within {PACKET_TIMEOUT_S} s")
            tag, result = self._answer(*answer)
            if tag in waiting:
                waiting.remove(tag)
                done[index_of[tag] + 1] = result
            elif tag >= first:
                raise P4RuntimeError(f"a second answer for events[{index_of[tag]}]" if tag in index_of
                                     else f"an answer for tag {tag}, which no packet carried yet")  # fmt: skip
        return done

    @staticmethod
    def _answer(port: int, data: bytes) -> tuple[int, tuple[Report, Egress | None]]:
        """A harness packet back from the switch: its tag, its report, and the frame it sent unless dropped."""
        if port != CPU_PORT:
            raise P4RuntimeError(f"the switch sent a frame out of port {port}: a harness packet goes back to the "
                                 f"CPU port {CPU_PORT}")  # fmt: skip
        if len(data) < PACKET_IN.size + REPORT_HEADER.size:
            raise P4RuntimeError(f"the switch sent {len(data)} bytes to the CPU, too short for packet_in and report")
        tag, egress_port = PACKET_IN.unpack_from(data)
        report = Report(dict(zip(REPORT_FIELDS, REPORT_HEADER.unpack_from(data, PACKET_IN.size), strict=True)))
        if report["outcome"] == OUTCOME_DROP:
            return tag, (report, None)
        return tag, (report, Egress(egress_port, data[PACKET_IN.size + REPORT_HEADER.size :]))

    def process(self, batch: Sequence[tuple[int, ev.PacketArrives]]) -> list[PacketObservation]:
        """Trace packets through BMv2 (no other event between them), observed as the model
        observes its own: in trace order, the learning filter and idle timers applied in that order."""
        results = self.inject(batch)
        return [self._observe(index, event, *results[index + 1]) for index, event in batch]

    def _observe(self, index: int, event: ev.PacketArrives, report: Report, egress: Egress | None) -> PacketObservation:
        t, packet = event
        self.reports[index] = report
        if egress is not None:
            self.egress[index] = egress
        hit_key = hit_stage = None
        if report["hit"]:
            hit_stage = report["hit_stage"]
            hit_key = (hit_stage, report.bucket(hit_stage), report["digest"])
            self.last_hit[hit_key] = t
        learned = tuple(
            kind for kind, bit in LEARN_BITS.items()
            if report["learned"] & bit and self.learn(t, kind, report.ft, report["version"], hit_stage)
        )  # fmt: skip
        action = ACTIONS[report["outcome"]]
        base = PacketObservation(index, t, packet, action, learned=learned, hit_key=hit_key, path=report.path_text())
        if action == DROP or egress is None:
            return base
        out = frames.parse(egress.frame)
        if action == FORWARD:
            buckets = tuple(report.bucket(stage) for stage in range(self.config.stages))
            return base._replace(dip=Dip(out.dst_ip, out.dst_port), buckets=buckets, digest=report["digest"])
        return base._replace(reply_flags=out.flags, reply_seq=out.seq, reply_ack=out.ack)


class Bmv2Switch(Switch):
    """The model's ``Switch`` with BMv2 as its data plane: packets go to the switch, every other
    event to the same CPU and learn channel as the model. Every event that is not a packet is a
    barrier: the packets between two of them go to the switch as one batch. A reactive packet is
    one too: its ack answers a SYN-ACK, so every packet before it must be back first."""

    def run(self, trace: Trace) -> list[Observation]:
        dataplane: P4RuntimeDataPlane = self.dataplane  # type: ignore[assignment]
        driver = Driver(self)
        observations: list[Observation] = []
        batch: list[tuple[int, ev.PacketArrives]] = []

        def flush() -> None:
            for observation in dataplane.process(batch):
                driver.wire.note(observation)
                observations.append(observation)
            batch.clear()

        for index, event in enumerate(trace.events):
            if type(event) is ev.PacketArrives:
                batch.append((index, event))
                continue
            flush()
            if isinstance(event, CookieAck):  # its ack answers a SYN-ACK: every packet before it is back
                try:
                    batch.append((index, driver.as_sent(event)))
                except InvalidEvent as error:
                    raise event_error(trace, index, event, str(error)) from None
                continue
            observations += step_each(driver, trace, [event], first=index)
        flush()
        return observations


@dataclass
class Bmv2Run:
    observations: list[Observation]
    dataplane: P4RuntimeDataPlane


class Bmv2Target:
    """Runs traces on one ``simple_switch_grpc``; each run starts on empty tables and registers. A
    run after a clean run of the same config reuses its pipeline, reset (``_reset``); any other run
    pushes the pipeline afresh."""

    name = "bmv2"

    def __init__(self, log: Path | None = None) -> None:
        self.log = log
        self._switch: SimpleSwitch | None = None
        self._client: P4RuntimeClient | None = None
        self._thrift: ThriftClient | None = None
        self._packets: PacketSocket | None = None
        self._reusable: tuple[Config, Tables] | None = None
        """The pipeline on the switch, by its config, and its tables: set by a run that ended cleanly."""
        self._closed_cpu_seconds = 0.0
        """CPU time of the switches this target started and stopped."""
        atexit.register(self.close)

    def close(self) -> None:
        self._reusable = None
        for connection in (self._thrift, self._packets, self._client):
            if connection is not None:
                connection.close()
        self._thrift = self._packets = self._client = None
        if self._switch is not None:
            self._closed_cpu_seconds += self._switch.cpu_seconds()
            self._switch.stop()
            self._switch = None

    def switch_cpu_seconds(self) -> float:
        """CPU time every switch process of this target has used, all of them together."""
        running = 0.0 if self._switch is None else self._switch.cpu_seconds()
        return self._closed_cpu_seconds + running

    def __enter__(self) -> Bmv2Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> P4RuntimeClient:
        if self._client is None:
            self._switch = SimpleSwitch(self.log)
            self._client = P4RuntimeClient(self._switch.grpc_address)
            self._thrift = ThriftClient(self._switch.thrift_port)
            assert self._switch.packet_address is not None
            self._packets = PacketSocket(self._switch.packet_address)
        return self._client

    def load(self, config: Config) -> Tables:
        """``config``'s pipeline with empty tables and registers: the one on the switch
        reset if the last run ended cleanly on it, else compiled if needed and pushed."""
        client = self._connect()
        reusable, self._reusable = self._reusable, None  # until this run ends cleanly too
        if reusable is not None and reusable[0] == config:
            tables = reusable[1]
            self._reset(tables)
        else:
            compiled: Build = build(config)
            info, request = _pipeline(compiled.p4info, compiled.json)
            try:
                client.push_pipeline(request)
            except P4RuntimeError as error:
                tail = self._switch.log_tail() if self._switch else ""
                raise P4RuntimeError(f"{error}\n{tail}") from None
            tables = Tables(client, info)
        return tables

    def _reset(self, tables: Tables) -> None:
        """The loaded pipeline as a fresh push leaves it, for a fraction of the cost (a push makes BMv2
        parse and build the whole program): every entry the last run left deleted (in the request
        that carries the next run's first writes), and every register zeroed over Thrift (P4Runtime
        cannot write BMv2's registers). No run changes a default action or sets an idle timer."""
        assert self._thrift is not None
        tables.clear()  # sent with the boot writes, before the first packet
        for register in tables.info.registers.values():
            self._thrift.register_reset(register.preamble.name)

    def dataplane(self, config: Config) -> P4RuntimeDataPlane:
        tables = self.load(config)
        return P4RuntimeDataPlane(config, HashPlan(config), tables, tables.client, packets=self._packets)

    def run_full(self, trace: Trace) -> Bmv2Run:
        dataplane = self.dataplane(trace.config)
        cpu = Cpu.boot(trace.config, dataplane.plan, dataplane, trace.vips, queued=True)
        switch = Bmv2Switch(trace.config, dataplane, cpu)  # type: ignore[arg-type]
        observations = switch.run(trace)
        dataplane.tables.flush()  # no packet sees the last writes, but a refused one is still an error
        self._reusable = (trace.config, dataplane.tables)
        return Bmv2Run(observations, dataplane)

    def run(self, trace: Trace) -> list[Observation]:
        return self.run_full(trace).observations


@cache
def _pipeline(p4info: Path, device_json: Path) -> tuple[P4Info, bytes]:
    """A build's P4Info and the request that pushes it, read and encoded once per process (a
    build's files never change: its directory is named by the config's hash)."""
    info = P4Info(p4info)
    return info, pipeline_request(info, device_json.read_bytes())


@cache
def shared_target() -> Bmv2Target:
    """One switch process per Python process, reused by every run (each run reloads the pipeline)."""
    return Bmv2Target()


FILES_WAIT_S = 3
"""How long a pcap-fed switch waits before reading its input: time to push the pipeline and the boot writes."""
RAW_SETTLE_S = 1.0


@dataclass(frozen=True)
class RawRate:
    packets: int
    outputs: int
    first_ns: int
    last_ns: int
    """Wall-clock times of the switch's first and last output."""

    @property
    def seconds(self) -> float:
        return (self.last_ns - self.first_ns) / 1e9

    @property
    def rate(self) -> float:
        return self.packets / self.seconds

    @staticmethod
    def together(rates: Sequence[RawRate]) -> RawRate:
        """Switches that ran at the same time as one: their packets over the span of all their outputs."""
        return RawRate(sum(r.packets for r in rates), sum(r.outputs for r in rates), min(r.first_ns for r in rates),
                       max(r.last_ns for r in rates))  # fmt: skip


def raw_rate(config: Config, vips: dict[Vip, tuple[Dip, ...]], packets: Sequence[PacketEvent]) -> RawRate:
    """BMv2 alone, as the anchor for the harness: the same program with the same boot writes (VIPs
    and pools), fed ``packets`` from a pcap file (``--use-files``) with no controller in the loop (a
    reactive packet goes as written, its ack unanswered: the anchor times the pipeline, not a verdict).
    The rate is the input packets over the time from the switch's first output to its last."""
    from silkcheck.pcap import read_records, write_packets

    if not packets:
        raise P4RuntimeError("raw BMv2 rate: no packets to feed")
    compiled = build(config)
    workdir = Path(tempfile.mkdtemp(prefix="silkcheck-bmv2-raw-"))
    interfaces = {port: f"port{port}" for port in (CLIENT_PORT, frames.SERVER_PORT)}
    write_packets(((e.t, e.packet) for e in packets), workdir / f"{interfaces[CLIENT_PORT]}_in.pcap")
    write_packets((), workdir / f"{interfaces[frames.SERVER_PORT]}_in.pcap")
    switch = SimpleSwitch(interfaces=interfaces, files_wait_s=FILES_WAIT_S, workdir=workdir)
    client = P4RuntimeClient(switch.grpc_address)
    try:
        info, request = _pipeline(compiled.p4info, compiled.json)
        client.push_pipeline(request)
        tables = Tables(client, info)
        dataplane = P4RuntimeDataPlane(config, HashPlan(config), tables, client)
        Cpu.boot(config, dataplane.plan, dataplane, vips)
        tables.flush()
        outputs = [workdir / f"{name}_out.pcap" for name in interfaces.values()]
        sizes: list[int] = []
        deadline = time.monotonic() + FILES_WAIT_S + PACKET_TIMEOUT_S + len(packets) / 100
        while time.monotonic() < deadline:  # until the output files stop growing
            time.sleep(RAW_SETTLE_S)
            now = [p.stat().st_size if p.exists() else 0 for p in outputs]
            if sum(now) and now == sizes:
                break
            sizes = now
        stamps = [r.nanos for p in outputs if p.exists() and p.stat().st_size for r in read_records(p)]
    finally:
        client.close()
        switch.stop()
    if len(stamps) < 2:
        raise P4RuntimeError(f"raw BMv2 rate: the switch sent {len(stamps)} of {len(packets)} packets out")
    return RawRate(len(packets), len(stamps), min(stamps), max(stamps))


def run_paused(trace: Trace, pause_at: int) -> list[Observation]:
    """Events before ``pause_at`` on the shared switch, then stop with it running so a person can
    read its tables from a p4runtime-shell session (the command is printed); Enter ends the pause.
    The observations (and so the verdict) are those of the events before the pause."""
    if not 0 <= pause_at <= len(trace.events):
        raise TraceError(f"--pause-at {pause_at}: the trace has events 0..{len(trace.events) - 1}")
    target = shared_target()
    dataplane = target.dataplane(trace.config)
    cpu = Cpu.boot(trace.config, dataplane.plan, dataplane, trace.vips, queued=True)
    head = Trace(trace.config, trace.vips, trace.events[:pause_at], trace.name)
    observations = Bmv2Switch(trace.config, dataplane, cpu).run(head)  # type: ignore[arg-type]
    dataplane.tables.flush()  # the writes of the last CPU step before the pause, for the person to read
    assert target._switch is not None
    address = target._switch.grpc_address
    print(f"paused before events[{pause_at}] with simple_switch_grpc running at {address}. In another shell:")
    print(f"  {sys.executable} -m p4runtime_sh --grpc-addr {address} --device-id 0 --election-id 0,2")
    print("  (then e.g. TableEntry('ConnTable0').read(lambda e: print(e)), TableEntry('VIPTable').read(...))")
    print("press Enter to end the pause", flush=True)
    sys.stdin.readline()
    return observations
