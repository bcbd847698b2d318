"""Differential testing: the same trace on the model and on BMv2, compared packet by packet.

Observations must be equal field for field (action, DIP, reply flags/seq/ack,
learn kinds, hit ConnTable key, decision path; CPU installs, removals,
phases, whitelist), and every frame BMv2 sent must be byte for byte the frame
the model's decision implies (``silkcheck.frames.expected_output``) on the
port it implies. A mismatch is reported with the first differing event and
saved as a minimized trace.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from model import events as ev
from model.config import Config
from model.observations import FORWARD, Observation, PacketObservation
from model.switch import InvalidEvent, Switch
from model.types import ACK, FIN, PROTO_TCP, PROTO_UDP, RST, SYN, Dip, FiveTuple, Packet, Vip, parse_ip
from silkcheck import atomic, frames, report
from silkcheck.cluster import Channel, TaskStream
from silkcheck.frames import CLIENT_PORT, SERVER_PORT, Egress
from silkcheck.inputs import InputError
from silkcheck.oracle import Verdict, judge
from silkcheck.targets import TargetError
from silkcheck.targets.model import Driver, ModelTarget, refinement_of
from silkcheck.trace import CookieAck, PacketEvent, Trace, TraceError, TraceEvent, dumps
from spec.check import Mismatch as RefinementMismatch

if TYPE_CHECKING:
    from silkcheck.targets.bmv2 import Bmv2Target, RawRate

OUT_DIR = Path("silkcheck-out") / "diff"


class Mismatch(NamedTuple):
    index: int
    what: str


def _field_differences(model: Observation, other: Observation) -> list[str]:
    if type(model) is not type(other):
        return [f"model observed a {type(model).__name__}, bmv2 a {type(other).__name__}"]
    return [
        f"{name}: model {a!r}, bmv2 {b!r}"
        for name, a, b in zip(model._fields, model, other, strict=True)
        if a != b
    ]  # fmt: skip


def _frame_difference(obs: PacketObservation, sent: Egress | None) -> str | None:
    expected = frames.expected_output(obs)
    if expected is None:
        return None if sent is None else f"bmv2 sent a frame for a {obs.action} (port {sent.port})"
    if sent is None:
        return f"bmv2 sent no frame for a {obs.action}"
    port = SERVER_PORT if obs.action == FORWARD else CLIENT_PORT
    if sent.port != port:
        return f"bmv2 sent the frame out of port {sent.port}, expected {port}"
    want = expected.to_bytes()
    if sent.frame != want:
        same = (a == b for a, b in zip(want, sent.frame, strict=False))
        at = next((i for i, equal in enumerate(same) if not equal), min(len(want), len(sent.frame)))
        return f"frame bytes differ from byte {at}: expected {want.hex()}, bmv2 sent {sent.frame.hex()}"
    return None


def compare(
    model: Sequence[Observation], other: Sequence[Observation], egress: dict[int, Egress]
) -> Mismatch | None:
    """The first event where the targets disagree, or None."""
    for m, o in zip(model, other, strict=False):
        differences = _field_differences(m, o)
        if isinstance(m, PacketObservation) and not differences:
            frame = _frame_difference(m, egress.get(m.index))
            differences = [frame] if frame else []
        if differences:
            return Mismatch(m.index, "; ".join(differences))
    if len(model) != len(other):
        return Mismatch(min(len(model), len(other)), f"model made {len(model)} observations, bmv2 {len(other)}")
    return None


OUTCOME_FIELDS = ("action", "dip", "reply_flags", "reply_seq", "reply_ack")
"""What a packet's observation shows outside the switch: what a client or a server receives."""


def _outcome(obs: PacketObservation) -> str:
    where = f" to {obs.dip}" if obs.dip is not None else ""
    return f"{obs.action}{where} ({obs.path})" if obs.path else f"{obs.action}{where}"


def departure(shipped: Sequence[Observation], variant: Sequence[Observation]) -> Mismatch | None:
    """The first packet whose outcome under an unsafe variant differs from the shipped design's on
    the same trace, or None. A variant that harms availability but not PCC (a packet dropped that
    the design forwards, a new connection sent to another version) is told apart from the design
    here, where the PCC oracle passes both."""
    for a, b in zip(shipped, variant, strict=False):
        if not (isinstance(a, PacketObservation) and isinstance(b, PacketObservation)):
            continue
        if any(getattr(a, name) != getattr(b, name) for name in OUTCOME_FIELDS):
            return Mismatch(a.index, f"packet #{a.index} (t={a.t}, {a.packet.ft}): shipped design "
                                     f"{_outcome(a)}, this run {_outcome(b)}")  # fmt: skip
    return None


# ---------------------------------------------------------------- running both targets


@dataclass
class Outcome:
    trace: Trace
    mismatch: Mismatch | None
    model_verdict: Verdict
    bmv2_verdict: Verdict
    model_seconds: float
    bmv2_seconds: float
    refinement: RefinementMismatch | None = None
    """The first step of the model's run that the proved abstract system cannot take."""
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    """CPU time of this process per part of the run (``CPU_PARTS``); a switch's own is not in it."""


REFINEMENT_CPU = "refinement check"
CPU_PARTS = ("model", "bmv2 harness", REFINEMENT_CPU, "oracles and comparison")
"""The parts of a differential run that take this process's CPU, in the order they run."""

Runner = Callable[[Trace], tuple[list[Observation], dict[int, Egress]]]


def bmv2_runner(target: object) -> Runner:
    """Run on a ``Bmv2Target``, returning its observations and the frames it sent."""

    def run(trace: Trace) -> tuple[list[Observation], dict[int, Egress]]:
        result = target.run_full(trace)  # type: ignore[attr-defined]
        return result.observations, result.dataplane.egress

    return run


def run_both(trace: Trace, runner: Runner, refine: bool = True) -> Outcome:
    """The trace on the model and on ``runner``, compared; with ``refine``, the model's run checked
    against the proved abstract system too."""
    # The model's rate is its plain run's: the refinement verdict comes from a second, checked run
    # (several times slower), which would otherwise count as the model's time.
    cpu = [time.process_time()]
    start = time.perf_counter()
    model_obs = ModelTarget().run(trace)
    model_s = time.perf_counter() - start
    cpu.append(time.process_time())
    start = time.perf_counter()
    other_obs, egress = runner(trace)
    other_s = time.perf_counter() - start
    cpu.append(time.process_time())
    refinement = refinement_of(trace).mismatch if refine else None
    cpu.append(time.process_time())
    verdicts = judge(trace.config, model_obs), judge(trace.config, other_obs)
    mismatch = compare(model_obs, other_obs, egress)
    cpu.append(time.process_time())
    spent = {part: after - before for part, (before, after) in zip(CPU_PARTS, pairwise(cpu), strict=True)
             if refine or part != REFINEMENT_CPU}  # fmt: skip
    return Outcome(trace, mismatch, *verdicts, model_s, other_s, refinement, spent)


def minimize(trace: Trace, runner: Runner, mismatch: Mismatch, budget: int = 60) -> Trace:
    """A shorter trace that still mismatches: cut after the mismatch, then drop chunks of earlier events."""
    events = list(trace.events[: mismatch.index + 1])
    chunk = max(1, len(events) // 2)
    while chunk >= 1 and budget > 0:
        start = 0
        while start < len(events) - 1 and budget > 0:
            candidate = events[:start] + events[start + chunk :]
            budget -= 1
            if _still_mismatches(trace, candidate, runner):
                events = candidate
            else:
                start += chunk
        chunk //= 2
    return Trace(trace.config, trace.vips, events, name=f"{trace.name}-min",
                 description=f"minimized from {trace.name}: {mismatch.what}")  # fmt: skip


def _still_mismatches(trace: Trace, events: list[TraceEvent], runner: Runner) -> bool:
    candidate = Trace(trace.config, trace.vips, events, name=trace.name)
    if not candidate.packets:
        return False
    try:
        return run_both(candidate, runner, refine=False).mismatch is not None
    except TraceError:  # removing an event made a later fault index invalid, or took a reactive packet's SYN-ACK
        return False


def save_mismatch(outcome: Outcome, runner: Runner, out_dir: Path = OUT_DIR) -> Path:
    assert outcome.mismatch is not None
    small = minimize(outcome.trace, runner, outcome.mismatch)
    return save_text(dumps(small), small.name, out_dir)


def save_text(text: str, name: str, out_dir: Path) -> Path:
    """A trace's JSON in ``out_dir`` under its name, written whole or not at all."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name or 'trace'}.json"
    atomic.write_text(path, text)
    return path


def describe(outcome: Outcome) -> str:
    m = outcome.mismatch
    if outcome.refinement is not None:
        return f"the model leaves the proved abstract system: {outcome.refinement}"
    if m is None:
        return "agree"
    event = outcome.trace.events[m.index] if m.index < len(outcome.trace.events) else None
    return f"MISMATCH at events[{m.index}] ({event}): {m.what}"


# ---------------------------------------------------------------- random traces

PROFILES: dict[str, Config] = {
    # Tiny digests and tables: digest collisions, cuckoo moves, full buckets, Bloom false positives.
    "collide": Config(digest_bits=4, version_bits=2, stages=2, buckets_per_stage=4, slots_per_bucket=2,
                      bloom_bits=16, bloom_hashes=2, epoch_bits=2, transit_slots=2, learn_delay_bound=50,
                      idle_timeout=3000, teardown_grace=200, cuckoo_depth=2),
    # SYN authentication under a SYN flood, with valid and forged cookie ACKs.
    "synflood": Config(syn_auth=True, digest_bits=8, version_bits=3, stages=3, buckets_per_stage=16,
                       slots_per_bucket=2, bloom_bits=64, bloom_hashes=3, epoch_bits=3, learn_delay_bound=50,
                       idle_timeout=3000, teardown_grace=200),
    # The shipped widths: 24-bit digests, 4 stages, 2048-bit TransitTable.
    "wide": Config(learn_delay_bound=50, idle_timeout=3000, teardown_grace=200),
}

TCP_VIP = Vip(parse_ip("20.0.0.1"), 80, PROTO_TCP)
UDP_VIP = Vip(parse_ip("20.0.0.2"), 53, PROTO_UDP)
UNKNOWN_VIP = Vip(parse_ip("20.0.0.9"), 80, PROTO_TCP)
DIPS = tuple(Dip(parse_ip("10.0.1.0") + i, 8080) for i in range(1, 7))
BOOT_POOLS = {TCP_VIP: DIPS[:2], UDP_VIP: DIPS[2:5]}
"""Every random trace's VIPs and their pools at boot."""


PACKET_SHARE = 0.6
"""Share of a random trace's events that are packets (the rest: CPU steps, updates, faults)."""


@dataclass
class _Generator:
    rng: random.Random
    config: Config
    driver: Driver
    packet_share: float = PACKET_SHARE
    t: int = 0
    events: list[TraceEvent] = field(default_factory=list)
    flows: list[FiveTuple] = field(default_factory=list)

    def emit(self, event: TraceEvent) -> None:
        try:
            self.driver.step(len(self.events), event)
        except InvalidEvent:
            return
        self.events.append(event)

    def flow(self) -> FiveTuple:
        """A client 5-tuple from a small space, so that flows recur and collide."""
        if self.flows and self.rng.random() < 0.7:
            return self.rng.choice(self.flows)
        vip = self.rng.choice((TCP_VIP, TCP_VIP, UDP_VIP))
        ft = FiveTuple(parse_ip("192.168.0.0") + self.rng.randrange(16), vip.ip, 40000 + self.rng.randrange(8),
                       vip.port, vip.proto)  # fmt: skip
        self.flows.append(ft)
        return ft

    def packet(self) -> TraceEvent:
        r = self.rng.random()
        if r < 0.03:
            ft = FiveTuple(parse_ip("192.168.1.1"), UNKNOWN_VIP.ip, 1234, UNKNOWN_VIP.port, PROTO_TCP)
            return ev.PacketArrives(self.t, Packet(ft, SYN))
        if self.config.syn_auth and r < 0.25:  # a flood of spoofed SYNs, and cookie ACKs good and bad
            ft = FiveTuple(self.rng.getrandbits(32), TCP_VIP.ip, self.rng.randrange(1024, 65536), 80, PROTO_TCP)
            if self.rng.random() < 0.5:
                return ev.PacketArrives(self.t, Packet(ft, SYN, seq=self.rng.getrandbits(32)))
            ft = self.flow()
            if self.rng.random() < 0.3:  # a forged cookie: dropped
                return ev.PacketArrives(self.t, Packet(ft, ACK, seq=self.rng.getrandbits(32),
                                                       ack=self.rng.getrandbits(32)))  # fmt: skip
            # A real client answers the SYN-ACK its SYN got, on each target the one that target sent.
            self.emit(ev.PacketArrives(self.t, Packet(ft, SYN, seq=self.rng.getrandbits(32))))
            return CookieAck(self.t, Packet(ft, ACK, seq=self.rng.getrandbits(32)), ft, 1)
        ft = self.flow()
        if ft.proto == PROTO_UDP:
            return ev.PacketArrives(self.t, Packet(ft))
        flags = self.rng.choice((SYN, SYN, ACK, ACK, ACK, ACK, FIN | ACK, RST, SYN | ACK))
        return ev.PacketArrives(self.t, Packet(ft, flags, seq=self.rng.getrandbits(32), ack=self.rng.getrandbits(32)))

    def writes(self) -> int | None:
        """How many of a CPU step's writes take effect at once: mostly all, often few, so that
        packets come between the others (``write`` events apply them one by one)."""
        return self.rng.choice((None, None, None, 0, 1, 2))

    def step(self) -> None:
        self.t += self.rng.choice((0, 1, 5, 20, 60, 200, 1000))
        r = self.rng.random()
        queued = len(self.driver.switch.dataplane.learn_queue)
        pending = len(self.driver.switch.pending)
        if pending and self.rng.random() < 0.35:
            self.emit(ev.CpuWrites(self.t, self.rng.randint(1, min(pending, 2))))
            return
        if r < self.packet_share:
            self.emit(self.packet())
            return
        if self.packet_share != PACKET_SHARE:  # the other events keep the mix they have at the default share
            r = PACKET_SHARE + (r - self.packet_share) * (1 - PACKET_SHARE) / (1 - self.packet_share)
        if r < 0.72:
            self.emit(ev.CpuLearns(self.t, self.rng.choice((None, None, 1, 2)), self.writes()))
        elif r < 0.82:
            self.emit(ev.CpuAdvances(self.t, self.writes()))
        elif r < 0.87:
            self.emit(ev.CpuExpires(self.t, self.writes()))
        elif r < 0.93:
            vip = self.rng.choice((TCP_VIP, UDP_VIP))
            pool = tuple(self.rng.sample(DIPS, self.rng.randrange(1, 5)))
            self.emit(ev.UpdateRequested(self.t, vip, pool, self.writes()))
        elif r < 0.955 and queued:
            self.emit(ev.LearnDelayed(self.t, self.rng.randrange(queued),
                                      self.rng.randrange(self.config.learn_delay_bound + 1)))  # fmt: skip
        elif r < 0.965 and queued:
            bound = self.config.learn_delay_bound
            self.emit(ev.LearnLate(self.t, self.rng.randrange(queued), bound + 1 + self.rng.randrange(4 * bound + 1)))
        elif r < 0.98 and queued:
            self.emit(ev.LearnLost(self.t, self.rng.randrange(queued)))
        elif r < 0.99:
            self.emit(ev.CpuRestarts(self.t))
        else:
            self.emit(ev.DipFails(self.t, self.rng.choice(DIPS)))


def random_trace(seed: int, profile: str, events: int = 60, packet_share: float = PACKET_SHARE) -> Trace:
    """A random trace for ``profile``; generated against the model so every fault names a queued event.
    ``packet_share`` of the events are packets; the other events keep their mix."""
    if not 0 < packet_share < 1:
        raise TraceError(f"packet share {packet_share}: it must be above 0 and below 1")
    rng = random.Random(seed)
    config = PROFILES[profile]
    gen = _Generator(rng, config, Driver(Switch.boot(config, BOOT_POOLS)), packet_share)
    while len(gen.events) < events:
        gen.step()
    return Trace(config, dict(BOOT_POOLS), gen.events, name=f"random-{profile}-{seed}")


# ---------------------------------------------------------------- campaigns: batches of traces on a Dask cluster


@dataclass(frozen=True)
class RandomTask:
    """One random trace of a campaign, by what generates it."""

    seed: int
    profile: str
    events: int
    packet_share: float = PACKET_SHARE

    def trace(self) -> Trace:
        return random_trace(self.seed, self.profile, self.events, self.packet_share)


@dataclass
class TraceSummary:
    """What one trace's differential run found, small enough to send back from a worker."""

    profile: str
    packets: int
    model_seconds: float
    bmv2_seconds: float
    mismatch: str | None
    """``trace name: what differed``, when the targets disagree."""
    findings: dict[str, tuple[int, int]]
    """Oracle finding category -> (count on the model, count on bmv2)."""
    refinement: str | None = None
    """Where the model's run left the proved abstract system, if it did."""
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    """The worker's CPU time per part of the run (``CPU_PARTS``), and its switch's (``SWITCH_CPU``)."""


SWITCH_CPU = "simple_switch_grpc"


def run_task(task: RandomTask, runner: Runner, channel: Channel, refine: bool = True) -> TraceSummary:
    """The per-trace run: generate, run on both targets, compare. A mismatch is reported at once and
    again once minimized (minimizing reruns it on the switch dozens of times: a campaign stopped or
    a worker lost meanwhile keeps the trace as found)."""
    outcome = run_both(task.trace(), runner, refine)
    if outcome.mismatch is not None:
        found_as = outcome.trace.name
        channel.report("mismatch", {"name": found_as, "trace": dumps(outcome.trace), "found_as": found_as})
        if not channel.cancelled():
            small = minimize(outcome.trace, runner, outcome.mismatch)
            channel.report("mismatch", {"name": small.name, "trace": dumps(small), "found_as": found_as})
    findings: dict[str, list[int]] = {}
    for column, verdict in enumerate((outcome.model_verdict, outcome.bmv2_verdict)):
        for finding in verdict.findings:
            findings.setdefault(finding.category, [0, 0])[column] += 1
    mismatch = f"{outcome.trace.name}: {describe(outcome)}" if outcome.mismatch else None
    refinement = None if outcome.refinement is None else f"{outcome.trace.name}: {outcome.refinement}"
    return TraceSummary(task.profile, len(outcome.trace.packets), outcome.model_seconds, outcome.bmv2_seconds,
                        mismatch, {k: (a, b) for k, (a, b) in findings.items()}, refinement,
                        dict(outcome.cpu_seconds))  # fmt: skip


BATCH_EVENTS = 960
"""Events per task (whole traces of one profile, at least one): a second or two on BMv2, so a stop or a
lost worker costs little, Dask's per-task cost (milliseconds) stays under 1%, and the switch loads
its program once per batch (it resets it between the batch's traces: a push costs as much as a
trace)."""


@dataclass(frozen=True)
class DiffBatch:
    tasks: tuple[RandomTask, ...]
    deadline: float | None
    """Wall-clock time (``time.time()``) after which no trace of the batch starts."""
    bmv2_log: Path | None = None
    refine: bool = True
    """Check each model run against the proved abstract system too."""


@cache
def worker_target(bmv2_log: Path | None) -> Bmv2Target:
    """This worker process's own switch, started by its first batch and kept for the next ones. It
    dies with the process however the process ends: closed at exit, and sent SIGTERM by the kernel
    when the thread that started it ends (``SimpleSwitch``), which for a Dask worker's task thread
    is when the worker ends (killed too)."""
    from silkcheck.targets.bmv2 import Bmv2Target, shared_target

    if bmv2_log is None:
        return shared_target()
    return Bmv2Target(bmv2_log.with_name(f"{bmv2_log.stem}-{os.getpid()}{bmv2_log.suffix}"))


def run_diff_batch(batch: DiffBatch, channel: Channel) -> list[TraceSummary]:
    """On a Dask worker: the batch's traces on the model and on this worker's switch, until the
    batch's deadline or the campaign's stop."""
    target = worker_target(batch.bmv2_log)
    runner = bmv2_runner(target)
    summaries = []
    for task in batch.tasks:
        if (batch.deadline is not None and time.time() > batch.deadline) or channel.cancelled():
            break
        switch_cpu = target.switch_cpu_seconds()
        summary = run_task(task, runner, channel, batch.refine)
        summary.cpu_seconds[SWITCH_CPU] = target.switch_cpu_seconds() - switch_cpu
        summaries.append(summary)
    return summaries


@dataclass
class CampaignResult:
    traces: int = 0
    packets: int = 0
    model_seconds: float = 0.0
    bmv2_seconds: float = 0.0
    """Summed over the traces: one switch's time."""
    wall_seconds: float = 0.0
    workers: int = 1
    mismatches: list[str] = field(default_factory=list)
    """``trace name: what differed``, per mismatching trace."""
    saved: dict[str, Path] = field(default_factory=dict)
    """Mismatching trace's name -> its file: the trace as found, then its minimized one."""
    refinement_failures: list[str] = field(default_factory=list)
    """``trace name: where``, per trace whose model run left the proved abstract system."""
    findings: dict[str, list[int]] = field(default_factory=dict)
    """Oracle finding category -> [count on the model, count on bmv2]."""
    profiles: dict[str, list[int]] = field(default_factory=dict)
    """Profile -> [traces, packets] compared."""
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    """CPU time per part of the runs (``TraceSummary.cpu_seconds``), summed over the workers."""
    cores: int | None = None
    """Cores of the machine the workers and their switches share, if they share one."""
    interrupted: bool = False

    def add(self, summary: TraceSummary) -> None:
        self.traces += 1
        self.packets += summary.packets
        self.model_seconds += summary.model_seconds
        self.bmv2_seconds += summary.bmv2_seconds
        if summary.mismatch is not None:
            self.mismatches.append(summary.mismatch)
        if summary.refinement is not None:
            self.refinement_failures.append(summary.refinement)
        for category, counts in summary.findings.items():
            for column, count in enumerate(counts):
                self.findings.setdefault(category, [0, 0])[column] += count
        mine = self.profiles.setdefault(summary.profile, [0, 0])
        mine[0] += 1
        mine[1] += summary.packets
        for part, seconds in summary.cpu_seconds.items():
            self.cpu_seconds[part] = self.cpu_seconds.get(part, 0.0) + seconds

    def keep(self, message: dict[str, Any], out_dir: Path) -> None:
        """Save a mismatching trace a worker reported (its text as the worker wrote it: the client
        loses nothing to a check); its minimized trace replaces it."""
        found_as, name = message["found_as"], message["name"]
        minimized = name != found_as
        if found_as in self.saved and not minimized:
            return  # found again by a rerun of its batch: the file is there (or its minimized one)
        path = save_text(message["trace"], name, out_dir)
        before = self.saved.get(found_as)
        if before is not None and before != path:
            before.unlink(missing_ok=True)
        self.saved[found_as] = path
        print(f"  mismatch {found_as} {'minimized' if minimized else 'found'}: saved {path}", file=sys.stderr)

    @property
    def harness_rate(self) -> float:
        """Packets per wall-clock second through the BMv2 side of the campaign, all workers together."""
        return self.packets / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def figures(self) -> str:
        rows = [
            [name, f"{seconds:.2f}", f"{self.traces / seconds:,.1f}", f"{self.packets / seconds:,.0f}"]
            for name, seconds in (("model", self.model_seconds), ("bmv2 (per switch)", self.bmv2_seconds))
            if seconds > 0
        ]
        if self.wall_seconds > 0:
            rows.append([f"campaign wall clock, {self.workers} worker(s)", f"{self.wall_seconds:.2f}",
                         f"{self.traces / self.wall_seconds:,.1f}", f"{self.harness_rate:,.0f}"])  # fmt: skip
        text = report.table(["target", "seconds", "traces/s", "packets/s"], rows)
        if self.model_seconds > 0 and self.bmv2_seconds > 0:
            text += f"\nbmv2 is {self.bmv2_seconds / self.model_seconds:,.0f}x slower than the model on the same traces"
        return text + self._cpu_figures()

    def _cpu_figures(self) -> str:
        """Where a packet's CPU time goes, worker and switch together: what caps the campaign when
        the workers and their switches share a machine's cores."""
        if not self.packets or not self.cpu_seconds:
            return ""
        total = sum(self.cpu_seconds.values())
        rows = [[part, f"{seconds / self.packets * 1e6:,.0f}", f"{seconds / total:.0%}"]
                for part, seconds in self.cpu_seconds.items()]  # fmt: skip
        rows.append(["total", f"{total / self.packets * 1e6:,.0f}", "100%"])
        text = "\n" + report.table(["CPU per packet (workers and their switches)", "µs", "share"], rows)
        if self.cores:
            text += (f"\nCPU caps the campaign at {self.cores * self.packets / total:,.0f} packets/s on this "
                     f"machine's {self.cores} cores (it ran {self.harness_rate:,.0f})")  # fmt: skip
        return text


def campaign_tasks(count: int, seed: int, profiles: Sequence[str] = tuple(PROFILES), events: int = 60,
                   packet_share: float = PACKET_SHARE) -> Iterator[RandomTask]:  # fmt: skip
    """``count`` random traces, cycling through ``profiles``."""
    for n in range(count):
        yield RandomTask(seed + n, profiles[n % len(profiles)], events, packet_share)


def profile_batches(tasks: Iterable[RandomTask], size: int) -> Iterator[tuple[RandomTask, ...]]:
    """``tasks`` in batches of ``size`` of one profile each, a batch as soon as it is full; what is left
    of each profile at the end, last. The traces are the same, in another order."""
    filling: dict[str, list[RandomTask]] = {}
    for task in tasks:
        batch = filling.setdefault(task.profile, [])
        batch.append(task)
        if len(batch) == size:
            yield tuple(filling.pop(task.profile))
    yield from (tuple(batch) for batch in filling.values())


def campaign(
    client: Any,
    count: int,
    seed: int,
    profiles: Sequence[str] = tuple(PROFILES),
    events: int = 60,
    out_dir: Path = OUT_DIR,
    progress: Callable[[CampaignResult], None] | None = None,
    budget_s: float | None = None,
    packet_share: float = PACKET_SHARE,
    bmv2_log: Path | None = None,
    cores: int | None = None,
    refine: bool = True,
) -> CampaignResult:
    """``count`` random traces on the model and on BMv2, in batches on the Dask ``client``'s workers
    (each with a switch of its own), until ``budget_s`` seconds have passed or Ctrl-C (the result
    says so). Each mismatch is saved in ``out_dir`` as its worker reports it."""
    result = CampaignResult(workers=len(client.nthreads()), cores=cores)
    batches = profile_batches(campaign_tasks(count, seed, profiles, events, packet_share),
                              max(1, BATCH_EVENTS // events))  # fmt: skip
    stream = TaskStream(client, lambda message: result.keep(message, out_dir), prefix="diff")
    start = time.perf_counter()
    deadline = None if budget_s is None else time.time() + budget_s
    exhausted = False
    try:
        while not exhausted or stream.pending:
            while not exhausted and stream.room() > 0:
                batch = () if deadline is not None and time.time() > deadline else next(batches, ())
                exhausted = not batch
                if batch:
                    stream.submit(run_diff_batch, DiffBatch(batch, deadline, bmv2_log, refine))
            for done in stream.poll():
                if done.lost is not None:
                    first = done.spec.tasks[0].seed
                    raise TargetError(f"random traces of seeds {first}..{first + len(done.spec.tasks) - 1} killed "
                                      f"every worker that ran them ({done.lost}); each mismatch reported until "
                                      "then is saved")  # fmt: skip
                for summary in done.result:
                    result.add(summary)
                result.wall_seconds = time.perf_counter() - start
                if progress is not None:
                    progress(result)
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        stream.close()
    result.wall_seconds = time.perf_counter() - start
    return result


ANCHOR_PACKETS = 20_000
"""Packets per profile fed to the raw BMv2 anchor (taken from the campaign's own traces)."""


def raw_anchor(traces: dict[str, int], seed: int, profiles: Sequence[str], events: int,
               packet_share: float) -> dict[str, RawRate]:  # fmt: skip
    """On a worker: each profile's program fed from a pcap file the packets of the campaign's first
    ``traces[profile]`` traces of that profile, up to ``ANCHOR_PACKETS``."""
    from silkcheck.targets.bmv2 import raw_rate

    samples: dict[str, list[PacketEvent]] = {profile: [] for profile in traces}
    taken = dict.fromkeys(traces, 0)
    wanted = {profile for profile, count in traces.items() if count > 0}
    for task in campaign_tasks(1 << 62, seed, profiles, events, packet_share):
        if not wanted:
            break
        if task.profile not in wanted:
            continue
        samples[task.profile] += task.trace().packets
        taken[task.profile] += 1
        if taken[task.profile] == traces[task.profile] or len(samples[task.profile]) >= ANCHOR_PACKETS:
            wanted.remove(task.profile)
    return {profile: raw_rate(PROFILES[profile], BOOT_POOLS, packets) for profile, packets in sorted(samples.items())}


def anchor_table(result: CampaignResult, runs: Sequence[dict[str, RawRate]]) -> str:
    """The raw BMv2 rate of each profile's program, one switch alone and every worker's switch at
    once (``runs``: per worker, what its switch did, all run at the same time), and the harness
    rate against both: the campaign's packets over the time raw BMv2 would need for them."""
    from silkcheck.targets.bmv2 import RawRate

    alone = runs[0]
    together = {profile: RawRate.together([run[profile] for run in runs]) for profile in alone}
    rows = [[profile, f"{raw.packets:,}", f"{raw.seconds:.2f}", f"{raw.rate:,.0f}", f"{together[profile].rate:,.0f}"]
            for profile, raw in alone.items()]  # fmt: skip
    first = "one switch" if len(runs) == 1 else "worker 1's switch"  # beside the others, when there are others
    text = report.table(["raw BMv2 (pcap-fed)", "packets", "seconds", f"packets/s, {first}",
                         f"packets/s, {len(runs)} switches at once"], rows)  # fmt: skip
    for name, rates in ((first, alone), (f"{len(runs)} switches at once", together)):
        raw_seconds = sum(result.profiles[profile][1] / raw.rate for profile, raw in rates.items())
        anchor = result.packets / raw_seconds
        text += (f"\nanchor, {name}: raw BMv2 would take {raw_seconds:.1f} s for the campaign's {result.packets:,} "
                 f"packets ({anchor:,.0f} packets/s); the harness took {result.wall_seconds:.1f} s with "
                 f"{result.workers} worker(s): {result.harness_rate:,.0f} packets/s, "
                 f"{result.harness_rate / anchor:.2f}x the anchor")  # fmt: skip
    return text


def run_differential(
    paths: Sequence[str], random_count: int, seed: int, events: int, budget_s: float | None = None,
    workers: int = 1, packet_share: float = PACKET_SHARE, bmv2_log: Path | None = None, anchor: bool = True,
    cluster: str | None = None, refine: bool = True,
) -> int:  # fmt: skip
    """``silkcheck diff``: named traces in this process, then ``random_count`` random ones (or as
    many as fit in ``budget_s`` seconds) on the Dask cluster at ``cluster`` or an embedded one of
    ``workers`` workers, each with its own switch, with the raw BMv2 anchor; 1 if any mismatch."""
    from silkcheck.cluster import open_cluster
    from silkcheck.targets.bmv2 import Bmv2Target, shared_target
    from silkcheck.trace import load

    if not paths and not random_count:
        raise TraceError("nothing to compare: name trace files and/or --random N")
    if not 0 < packet_share < 1:
        raise TraceError(f"--packet-share must be above 0 and below 1, got {packet_share}")
    traces = {path: load(path) for path in paths}  # every file checked before BMv2 starts
    rows = []
    failed = False
    if traces:
        runner = bmv2_runner(shared_target() if bmv2_log is None else Bmv2Target(bmv2_log))
    for path, trace in traces.items():
        outcome = run_both(trace, runner)
        saved = save_mismatch(outcome, runner) if outcome.mismatch else None
        failed |= saved is not None or outcome.refinement is not None
        verdicts = [outcome.model_verdict.summary(), outcome.bmv2_verdict.summary()]
        result = describe(outcome) + (f" (saved {saved})" if saved else "")
        rows.append([Path(path).stem, len(outcome.trace.packets), *verdicts, result])
    if rows:
        print(report.table(["trace", "packets", "model verdict", "bmv2 verdict", "model vs bmv2"], rows))
    if not random_count:
        print("diff:", "MISMATCH" if failed else "model and bmv2 agree")
        return 1 if failed else 0
    if rows:
        print()
    amount = f"random traces for {budget_s:.0f} s" if budget_s is not None else f"{random_count:,} random traces"
    print(f"== {amount} (profiles {', '.join(PROFILES)}; {events} events each, {packet_share:.0%} packets), "
          f"seed {seed}", flush=True)  # fmt: skip
    shown = 0

    def progress(result: CampaignResult) -> None:
        nonlocal shown
        if result.traces // 25 > shown // 25 or result.traces == random_count:
            print(f"  {result.traces:,} traces, {result.packets:,} packets, {len(result.mismatches)} mismatches, "
                  f"{result.harness_rate:,.0f} packets/s", file=sys.stderr, flush=True)  # fmt: skip
        shown = result.traces

    with open_cluster(cluster, workers) as client:
        cores = len(os.sched_getaffinity(0)) if cluster is None else None  # an embedded cluster shares this machine
        result = campaign(client, random_count, seed, events=events, progress=progress, budget_s=budget_s,
                          packet_share=packet_share, bmv2_log=bmv2_log, cores=cores, refine=refine)  # fmt: skip
        if result.traces == 0 and not result.interrupted:
            raise InputError(f"the budget of {budget_s:g} s ended before the first random trace: nothing was compared")
        stopped = " (interrupted)" if result.interrupted else ""
        print(f"{result.traces:,} traces, {result.packets:,} packets, {len(result.mismatches)} mismatches{stopped}")
        print(result.figures())
        if anchor and result.traces and not result.interrupted:
            workers = sorted(client.scheduler_info()["workers"])
            print(f"... raw BMv2 anchor, on each of the {len(workers)} worker(s) at once: each profile's program fed "
                  "the packets of its traces from a pcap file", file=sys.stderr, flush=True)  # fmt: skip
            counts = {profile: traces for profile, (traces, _) in result.profiles.items()}
            runs = [client.submit(raw_anchor, counts, seed, tuple(PROFILES), events, packet_share, workers=[worker],
                                  pure=False) for worker in workers]  # fmt: skip
            print(anchor_table(result, [run.result() for run in runs]))
    rows = [[category, model, bmv2] for category, (model, bmv2) in sorted(result.findings.items())]
    if rows:
        print("oracle findings (the PCC oracle judging each target's own observations):")
        print(report.table(["category", "model", "bmv2"], rows))
    for mismatch in result.mismatches:
        print(f"mismatch: {mismatch}")
    for path in result.saved.values():
        print(f"mismatch saved: {path}")
    for failure in result.refinement_failures:
        print(f"refinement: {failure}")
    refined = result.traces - len(result.refinement_failures)
    if refine:
        print(f"refinement: {refined} of {result.traces} model runs are runs of the proved abstract system")
    else:
        print("refinement: not checked (--no-refinement)")
    failed |= bool(result.saved) or bool(result.refinement_failures)
    print("diff:", "MISMATCH" if failed else "model and bmv2 agree")
    if result.interrupted and not failed:
        raise KeyboardInterrupt  # after the figures: the command ends as interrupted
    return 1 if failed else 0
