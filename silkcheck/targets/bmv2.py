"""The BMv2 target: ``p4/silkroad.p4`` in ``simple_switch_grpc``, driven over P4Runtime.

One control plane, two backends: the switch CPU is the model's own
``model.cpu.Cpu``; here it drives ``P4RuntimeDataPlane``, which turns its
operations into P4Runtime writes instead of model table updates.

Packets are injected as P4Runtime PacketOuts carrying a tag and an emulated
ingress port; the program processes them like any packet from that port and
returns what it would send (PacketIn, with the egress port) plus a ``report``
digest saying what it decided. So the target needs no root, no interfaces
and no fixed sleeps: each packet is done when its report (and, unless it was
dropped, its frame) has arrived.

What BMv2 cannot do over P4Runtime, and how the target keeps the model's semantics:

* Learn events are digests; the learning filter and the queue the CPU reads
  are ``model.dataplane.LearnChannel``, stamped with the trace time of the
  packet that sent them, so ``read_learns(now, limit)`` and the delay/loss
  faults behave as in the model. (BMv2's own filter is keyed on whole
  samples and cleared by acks, not by CPU reads; every report carries a
  unique tag, so it never filters one.)
* ConnTable idle timers run on trace time: each report names the entry its
  packet hit, which refreshes that entry's timer (BMv2's idle timeout runs on
  wall-clock time).
* Registers cannot be written: TransitTable is cleared by epochs (see the P4).
"""

from __future__ import annotations

import atexit
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import grpc

from model import decisions as d
from model import events as ev
from model.config import Config
from model.cpu import Cpu
from model.dataplane import LearnChannel, LearnEvent
from model.hashing import HashPlan
from model.observations import DROP, FORWARD, REPLY, Observation, PacketObservation
from model.switch import Switch
from model.types import Dip, FiveTuple, Packet, Vip
from silkcheck import frames
from silkcheck.frames import CLIENT_PORT, Egress
from silkcheck.p4build import Build, build, require_tool
from silkcheck.p4runtime import P4Info, P4RuntimeClient, P4RuntimeError, StreamItem, Tables, decode, encode
from silkcheck.processes import stop_process
from silkcheck.silkroad_backend import SilkRoadWrites
from silkcheck.targets.model import step_all
from silkcheck.trace import Trace, TraceError

CPU_PORT = 255
PACKET_TIMEOUT_S = 10.0
START_TIMEOUT_S = 30.0

# p4/silkroad.p4 report_t, field for field.
REPORT_FIELDS = (
    "tag", "outcome", "path", "learned", "src_ip", "dst_ip", "src_port", "dst_port", "proto",
    "version", "phase", "consults", "transit_hit", "hit", "hit_stage", "digest",
    "bucket0", "bucket1", "bucket2", "bucket3", "bucket4", "bucket5", "bucket6", "bucket7",
    "bloom0", "bloom1", "bloom2", "bloom3", "dip_index", "cookie",
)  # fmt: skip
ACTIONS = {0: DROP, 1: FORWARD, 2: REPLY}
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
        if f["hit"]:
            return f"hit:stage{f['hit_stage']}:v{v}"
        if f["consults"]:
            return f"miss:transit-{'hit' if f['transit_hit'] else 'miss'}:v{v}"
        return f"miss:{d.PHASE_NAMES[f['phase']]}:v{v}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimpleSwitch:
    """A ``simple_switch_grpc`` process: by default on loopback ports with no interfaces.

    The black-box target gives it ``interfaces`` (port -> veth name), runs it inside a
    network namespace (``launcher``: the command prefix that enters it) and has it serve
    P4Runtime on a Unix socket, which every namespace can reach."""

    def __init__(self, interfaces: dict[int, str] | None = None, launcher: tuple[str, ...] = (),
                 unix_grpc: bool = False, cpu_port: int | None = CPU_PORT) -> None:  # fmt: skip
        binary = require_tool("simple_switch_grpc")
        self.workdir = Path(tempfile.mkdtemp(prefix="silkcheck-bmv2-"))
        self.grpc_address = f"unix:{self.workdir}/p4runtime.sock" if unix_grpc else f"127.0.0.1:{_free_port()}"
        self.log_path = self.workdir / "switch.log"
        ports = [arg for port, name in sorted((interfaces or {}).items()) for arg in ("-i", f"{port}@{name}")]
        cpu = ["--cpu-port", str(cpu_port)] if cpu_port is not None else []
        command = [
            *launcher, binary, "--no-p4", "--device-id", "0", *ports, "--thrift-port", str(_free_port()),
            *self._notifications_option(binary),
            "--", "--grpc-server-addr", self.grpc_address, *cpu,
        ]  # fmt: skip
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        self._wait_ready()

    def _notifications_option(self, binary: str) -> list[str]:
        # Two switches on one host must not share the default nanomsg socket.
        help_text = subprocess.run([binary, "--help"], capture_output=True, text=True, check=False).stdout
        if "--notifications-addr" not in help_text:
            return []
        return ["--notifications-addr", f"ipc://{self.workdir}/notifications.ipc"]

    def _wait_ready(self) -> None:
        """Poll the gRPC port until it answers; give up if the process dies or time runs out."""
        deadline = time.monotonic() + START_TIMEOUT_S
        with grpc.insecure_channel(self.grpc_address) as channel:
            while True:
                if self.process.poll() is not None:
                    raise P4RuntimeError(f"simple_switch_grpc exited at start:\n{self.log_tail()}")
                try:
                    grpc.channel_ready_future(channel).result(timeout=0.2)
                    return
                except grpc.FutureTimeoutError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise P4RuntimeError(f"simple_switch_grpc did not answer on {self.grpc_address}") from None

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
    egress: dict[int, Egress] = field(default_factory=dict)
    """Trace event index -> what the switch sent for that packet."""
    reports: dict[int, Report] = field(default_factory=dict)

    # ------------------------------------------------------------ backend operations (model.cpu.Backend)

    def idle_time(self, stage: int, bucket: int, digest: int, now: int) -> int:
        return now - self.last_hit[(stage, bucket, digest)]

    # ------------------------------------------------------------ packets

    def inject(self, index: int, packet: Packet) -> tuple[Report, Egress | None]:
        """Send one packet through the pipeline and wait for its report and output."""
        tag = index + 1
        meta = self.tables.info.packet_metadata["packet_out"]
        self.client.packet_out(
            frames.packet_frame(packet).to_bytes(),
            {meta["tag"][0]: encode(tag, 32), meta["ingress_port"][0]: encode(CLIENT_PORT, 16)},
        )
        report: Report | None = None
        egress: Egress | None = None
        deadline = time.monotonic() + PACKET_TIMEOUT_S
        while report is None or (report["outcome"] != 0 and egress is None):
            item = self._next(deadline, index)
            if item.kind == "digest":
                for data in item.message.data:  # type: ignore[attr-defined]
                    found = Report({n: decode(m.bitstring) for n, m in zip(REPORT_FIELDS, data.struct.members,
                                                                             strict=True)})  # fmt: skip
                    if found["tag"] != tag:
                        raise P4RuntimeError(f"report for tag {found['tag']} while waiting for {tag}")
                    report = found
            elif item.kind == "packet":
                egress = self._egress(item.message, tag)
            else:
                raise P4RuntimeError(f"stream error: {item.message}")
        return report, egress

    def _next(self, deadline: float, index: int) -> StreamItem:
        try:
            return self.client.received.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise P4RuntimeError(f"events[{index}]: no report from the switch within {PACKET_TIMEOUT_S} s") from None

    def _egress(self, packet: object, tag: int) -> Egress:
        meta = {m.metadata_id: decode(m.value) for m in packet.metadata}  # type: ignore[attr-defined]
        ids = self.tables.info.packet_metadata["packet_in"]
        if meta.get(ids["tag"][0]) != tag:
            raise P4RuntimeError(f"frame for tag {meta.get(ids['tag'][0])} while waiting for {tag}")
        return Egress(meta[ids["egress_port"][0]], bytes(packet.payload))  # type: ignore[attr-defined]

    def process(self, index: int, t: int, packet: Packet) -> PacketObservation:
        """One trace packet through BMv2, observed as the model observes its own."""
        report, egress = self.inject(index, packet)
        self.reports[index] = report
        if egress is not None:
            self.egress[index] = egress
        hit_key = None
        if report["hit"]:
            hit_key = (report["hit_stage"], report.bucket(report["hit_stage"]), report["digest"])
            self.last_hit[hit_key] = t
        learned = tuple(
            kind for kind, bit in LEARN_BITS.items()
            if report["learned"] & bit and self.learn(t, kind, report.ft, report["version"])
        )  # fmt: skip
        action = ACTIONS[report["outcome"]]
        base = PacketObservation(index, t, packet, action, learned=learned, hit_key=hit_key, path=report.path_text())
        if action == DROP or egress is None:
            return base
        out = frames.parse(egress.frame)
        if action == FORWARD:
            return base._replace(dip=Dip(out.dst_ip, out.dst_port))
        return base._replace(reply_flags=out.flags, reply_seq=out.seq, reply_ack=out.ack)


class Bmv2Switch(Switch):
    """The model's ``Switch`` with BMv2 as its data plane: packets go to the
    switch, every other event to the same CPU and learn channel as the model."""

    def step(self, index: int, event: ev.Event) -> Observation:
        if isinstance(event, ev.PacketArrives):
            return self.dataplane.process(index, event.t, event.packet)  # type: ignore[attr-defined]
        return super().step(index, event)


@dataclass
class Bmv2Run:
    observations: list[Observation]
    dataplane: P4RuntimeDataPlane


class Bmv2Target:
    """Runs traces on one ``simple_switch_grpc``; each run loads a fresh pipeline (empty tables and registers)."""

    name = "bmv2"

    def __init__(self) -> None:
        self._switch: SimpleSwitch | None = None
        self._client: P4RuntimeClient | None = None
        atexit.register(self.close)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._switch is not None:
            self._switch.stop()
            self._switch = None

    def __enter__(self) -> Bmv2Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> P4RuntimeClient:
        if self._client is None:
            self._switch = SimpleSwitch()
            self._client = P4RuntimeClient(self._switch.grpc_address)
        return self._client

    def load(self, config: Config) -> Tables:
        """A fresh pipeline for ``config``: compiled if needed, pushed, digests enabled."""
        compiled: Build = build(config)
        client = self._connect()
        info = P4Info(compiled.p4info)
        try:
            client.set_pipeline(info, compiled.json.read_bytes())
        except P4RuntimeError as error:
            tail = self._switch.log_tail() if self._switch else ""
            raise P4RuntimeError(f"{error}\n{tail}") from None
        while not client.received.empty():
            client.received.get_nowait()
        tables = Tables(client, info)
        tables.enable_digest("report_t")
        return tables

    def dataplane(self, config: Config) -> P4RuntimeDataPlane:
        tables = self.load(config)
        return P4RuntimeDataPlane(config, HashPlan(config), tables, tables.client)

    def run_full(self, trace: Trace) -> Bmv2Run:
        dataplane = self.dataplane(trace.config)
        cpu = Cpu.boot(trace.config, dataplane.plan, dataplane, trace.vips)
        switch = Bmv2Switch(trace.config, dataplane, cpu)  # type: ignore[arg-type]
        observations = step_all(switch, trace)
        return Bmv2Run(observations, dataplane)

    def run(self, trace: Trace) -> list[Observation]:
        return self.run_full(trace).observations


@cache
def shared_target() -> Bmv2Target:
    """One switch process per Python process, reused by every run (each run reloads the pipeline)."""
    return Bmv2Target()


def run_paused(trace: Trace, pause_at: int) -> list[Observation]:
    """Events before ``pause_at`` on the shared switch, then stop with it running so a person can
    read its tables from a p4runtime-shell session (the command is printed); Enter ends the pause.
    The observations (and so the verdict) are those of the events before the pause."""
    if not 0 <= pause_at <= len(trace.events):
        raise TraceError(f"--pause-at {pause_at}: the trace has events 0..{len(trace.events) - 1}")
    target = shared_target()
    dataplane = target.dataplane(trace.config)
    cpu = Cpu.boot(trace.config, dataplane.plan, dataplane, trace.vips)
    head = Trace(trace.config, trace.vips, trace.events[:pause_at], trace.name)
    observations = step_all(Bmv2Switch(trace.config, dataplane, cpu), head)  # type: ignore[arg-type]
    assert target._switch is not None
    address = target._switch.grpc_address
    print(f"paused before events[{pause_at}] with simple_switch_grpc running at {address}. In another shell:")
    print(f"  {sys.executable} -m p4runtime_sh --grpc-addr {address} --device-id 0 --election-id 0,2")
    print("  (then e.g. TableEntry('ConnTable0').read(lambda e: print(e)), TableEntry('VIPTable').read(...))")
    print("press Enter to end the pause", flush=True)
    sys.stdin.readline()
    return observations
