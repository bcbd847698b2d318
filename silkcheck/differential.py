"""Differential testing: the same trace on the model and on BMv2, compared packet by packet.

Observations must be equal field for field (action, DIP, reply flags/seq/ack,
learn kinds, hit ConnTable key, decision path; CPU installs, removals,
phases, whitelist), and every frame BMv2 sent must be byte for byte the frame
the model's decision implies (``silkcheck.frames.expected_output``) on the
port it implies. A mismatch is reported with the first differing event and
saved as a minimized trace.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from model import events as ev
from model.config import Config
from model.observations import FORWARD, Observation, PacketObservation
from model.switch import InvalidEvent, Switch
from model.types import ACK, FIN, PROTO_TCP, PROTO_UDP, RST, SYN, Dip, FiveTuple, Packet, Vip, parse_ip
from silkcheck import frames, report
from silkcheck.frames import CLIENT_PORT, SERVER_PORT, Egress
from silkcheck.inputs import InputError
from silkcheck.oracle import Verdict, judge
from silkcheck.targets.model import Driver, ModelTarget
from silkcheck.trace import CookieAck, Trace, TraceError, TraceEvent, save

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


# ---------------------------------------------------------------- running both targets


@dataclass
class Outcome:
    trace: Trace
    mismatch: Mismatch | None
    model_verdict: Verdict
    bmv2_verdict: Verdict
    model_seconds: float
    bmv2_seconds: float


Runner = Callable[[Trace], tuple[list[Observation], dict[int, Egress]]]


def bmv2_runner(target: object) -> Runner:
    """Run on a ``Bmv2Target``, returning its observations and the frames it sent."""

    def run(trace: Trace) -> tuple[list[Observation], dict[int, Egress]]:
        result = target.run_full(trace)  # type: ignore[attr-defined]
        return result.observations, result.dataplane.egress

    return run


def run_both(trace: Trace, runner: Runner) -> Outcome:
    start = time.perf_counter()
    model_obs = ModelTarget().run(trace)
    model_s = time.perf_counter() - start
    start = time.perf_counter()
    other_obs, egress = runner(trace)
    other_s = time.perf_counter() - start
    return Outcome(
        trace, compare(model_obs, other_obs, egress), judge(trace.config, model_obs), judge(trace.config, other_obs),
        model_s, other_s,
    )  # fmt: skip


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
        return run_both(candidate, runner).mismatch is not None
    except TraceError:  # removing an event made a later fault index invalid, or took a reactive packet's SYN-ACK
        return False


def save_mismatch(outcome: Outcome, runner: Runner, out_dir: Path = OUT_DIR) -> Path:
    assert outcome.mismatch is not None
    small = minimize(outcome.trace, runner, outcome.mismatch)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{small.name or 'trace'}.json"
    save(small, path)
    return path


def describe(outcome: Outcome) -> str:
    m = outcome.mismatch
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


@dataclass
class _Generator:
    rng: random.Random
    config: Config
    driver: Driver
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

    def step(self) -> None:
        self.t += self.rng.choice((1, 5, 20, 60, 200, 1000))
        r = self.rng.random()
        queued = len(self.driver.switch.dataplane.learn_queue)
        if r < 0.6:
            self.emit(self.packet())
        elif r < 0.72:
            self.emit(ev.CpuLearns(self.t, self.rng.choice((None, None, 1, 2))))
        elif r < 0.82:
            self.emit(ev.CpuAdvances(self.t))
        elif r < 0.87:
            self.emit(ev.CpuExpires(self.t))
        elif r < 0.93:
            vip = self.rng.choice((TCP_VIP, UDP_VIP))
            self.emit(ev.UpdateRequested(self.t, vip, tuple(self.rng.sample(DIPS, self.rng.randrange(1, 5)))))
        elif r < 0.96 and queued:
            self.emit(ev.LearnDelayed(self.t, self.rng.randrange(queued),
                                      self.rng.randrange(self.config.learn_delay_bound + 1)))  # fmt: skip
        elif r < 0.98 and queued:
            self.emit(ev.LearnLost(self.t, self.rng.randrange(queued)))
        elif r < 0.99:
            self.emit(ev.CpuRestarts(self.t))
        else:
            self.emit(ev.DipFails(self.t, self.rng.choice(DIPS)))


def random_trace(seed: int, profile: str, events: int = 60) -> Trace:
    """A random trace for ``profile``; generated against the model so every fault names a queued event."""
    rng = random.Random(seed)
    config = PROFILES[profile]
    vips = {TCP_VIP: DIPS[:2], UDP_VIP: DIPS[2:5]}
    gen = _Generator(rng, config, Driver(Switch.boot(config, vips)))
    while len(gen.events) < events:
        gen.step()
    return Trace(config, vips, gen.events, name=f"random-{profile}-{seed}")


# ---------------------------------------------------------------- campaigns


@dataclass
class CampaignResult:
    traces: int = 0
    packets: int = 0
    model_seconds: float = 0.0
    bmv2_seconds: float = 0.0
    mismatches: list[Path] = field(default_factory=list)
    findings: dict[str, list[int]] = field(default_factory=dict)
    """Oracle finding category -> [count on the model, count on bmv2]."""

    def add(self, outcome: Outcome) -> None:
        self.traces += 1
        self.packets += len(outcome.trace.packets)
        self.model_seconds += outcome.model_seconds
        self.bmv2_seconds += outcome.bmv2_seconds
        for column, verdict in enumerate((outcome.model_verdict, outcome.bmv2_verdict)):
            for finding in verdict.findings:
                self.findings.setdefault(finding.category, [0, 0])[column] += 1

    def figures(self) -> str:
        rows = [
            [name, f"{seconds:.2f}", f"{self.traces / seconds:,.1f}", f"{self.packets / seconds:,.0f}"]
            for name, seconds in (("model", self.model_seconds), ("bmv2", self.bmv2_seconds))
            if seconds > 0
        ]
        text = report.table(["target", "seconds", "traces/s", "packets/s"], rows)
        if self.model_seconds > 0 and self.bmv2_seconds > 0:
            text += f"\nbmv2 is {self.bmv2_seconds / self.model_seconds:,.0f}x slower than the model on the same traces"
        return text


def campaign(
    count: int,
    seed: int,
    runner: Runner,
    profiles: Sequence[str] = tuple(PROFILES),
    events: int = 60,
    out_dir: Path = OUT_DIR,
    progress: Callable[[int, CampaignResult], None] | None = None,
    budget_s: float | None = None,
) -> CampaignResult:
    """``count`` random traces (cycling through ``profiles``) on the model and on another target,
    stopping early once ``budget_s`` seconds have passed."""
    result = CampaignResult()
    deadline = None if budget_s is None else time.monotonic() + budget_s
    for n in range(count):
        if deadline is not None and time.monotonic() > deadline:
            break
        trace = random_trace(seed + n, profiles[n % len(profiles)], events)
        outcome = run_both(trace, runner)
        result.add(outcome)
        if outcome.mismatch is not None:
            result.mismatches.append(save_mismatch(outcome, runner, out_dir))
        if progress is not None:
            progress(n + 1, result)
    return result


# ---------------------------------------------------------------- the command


def run_differential(
    paths: Sequence[str], random_count: int, seed: int, events: int, budget_s: float | None = None
) -> int:
    """``silkcheck diff``: named traces, then ``random_count`` random ones (or as many as fit in
    ``budget_s`` seconds); 1 if any mismatch."""
    from silkcheck.targets.bmv2 import shared_target
    from silkcheck.trace import load

    if not paths and not random_count:
        raise TraceError("nothing to compare: name trace files and/or --random N")
    traces = {path: load(path) for path in paths}  # every file checked before BMv2 starts
    runner = bmv2_runner(shared_target())
    rows = []
    failed = False
    for path, trace in traces.items():
        outcome = run_both(trace, runner)
        saved = save_mismatch(outcome, runner) if outcome.mismatch else None
        failed |= saved is not None
        verdicts = [outcome.model_verdict.summary(), outcome.bmv2_verdict.summary()]
        result = describe(outcome) + (f" (saved {saved})" if saved else "")
        rows.append([Path(path).stem, len(outcome.trace.packets), *verdicts, result])
    if rows:
        print(report.table(["trace", "packets", "model verdict", "bmv2 verdict", "model vs bmv2"], rows))
    if random_count:
        if rows:
            print()
        amount = f"random traces for {budget_s:.0f} s" if budget_s is not None else f"{random_count} random traces"
        print(f"== {amount} (profiles {', '.join(PROFILES)}; {events} events each), seed {seed}")

        def progress(done: int, result: CampaignResult) -> None:
            if done % 25 == 0 or done == random_count:
                print(f"  {done} traces, {result.packets:,} packets, {len(result.mismatches)} mismatches", flush=True)

        result = campaign(random_count, seed, runner, events=events, progress=progress, budget_s=budget_s)
        if result.traces == 0:
            raise InputError(f"the budget of {budget_s:g} s ended before the first random trace: nothing was compared")
        print(result.figures())
        rows = [[category, model, bmv2] for category, (model, bmv2) in sorted(result.findings.items())]
        if rows:
            print("oracle findings (the PCC oracle judging each target's own observations):")
            print(report.table(["category", "model", "bmv2"], rows))
        for path in result.mismatches:
            print(f"mismatch saved: {path}")
        failed |= bool(result.mismatches)
    print("diff:", "MISMATCH" if failed else "model and bmv2 agree")
    return 1 if failed else 0
