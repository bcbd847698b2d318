"""Benchmarks: commands that print figures, never tests.

Memory figures come from a forked child per measured run: its peak resident set
(``VmHWM``) less what it had when it started, so each run is measured alone and
beside its baseline in the same command.
"""

from __future__ import annotations

import multiprocessing
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from model import events as ev
from model.config import Config
from model.hashing import dip_index
from model.types import ACK, FIN, PROTO_TCP, SYN, Dip, FiveTuple, Packet, Vip, ip_str, parse_ip
from silkcheck import report
from silkcheck.oracle import judge
from silkcheck.streaming import judge_stream
from silkcheck.targets.model import ModelTarget
from silkcheck.trace import Trace, TraceError

BENCH_VIP = Vip(parse_ip("20.0.0.1"), 80, PROTO_TCP)
BENCH_DIPS = tuple(Dip(parse_ip("10.0.1.0") + i, 8080) for i in range(1, 9))
Figures = dict[str, float]


def workload_events(packets: int, connections: int, seed: int = 1, span: int | None = None,
                    cpu: bool = True) -> Iterator[ev.Event]:  # fmt: skip
    """A steady mix: connections open, chatter and close; with ``cpu``, the CPU learns every 1,000
    packets and runs an update protocol step every 20,000, and a pool update comes every 200,000.
    Packet n arrives at n + 1 µs, or spread evenly over ``span`` µs."""
    rng = random.Random(seed)
    vip = BENCH_VIP
    live: list[FiveTuple] = []
    for n in range(packets):
        t = n + 1 if span is None else (n + 1) * span // packets
        if len(live) < connections and (not live or rng.random() < 0.05):
            ft = FiveTuple(rng.getrandbits(32), vip.ip, rng.randrange(1024, 65536), 80, PROTO_TCP)
            live.append(ft)
            yield ev.PacketArrives(t, Packet(ft, SYN))
        else:
            i = rng.randrange(len(live))
            closing = rng.random() < 0.02
            yield ev.PacketArrives(t, Packet(live[i], FIN | ACK if closing else ACK))
            if closing:
                live[i] = live[-1]
                live.pop()
        if not cpu:
            continue
        if n % 1_000 == 999:
            yield ev.CpuLearns(t)
        if n % 20_000 == 19_999:
            yield ev.CpuAdvances(t)
            yield ev.CpuExpires(t)
        if n % 200_000 == 100_000:
            yield ev.UpdateRequested(t, vip, tuple(rng.sample(BENCH_DIPS, 4)))


def bench_header() -> Trace:
    config = Config(buckets_per_stage=8192, learn_delay_bound=100)
    return Trace(config, {BENCH_VIP: BENCH_DIPS[:4]}, name="bench")


def workload(packets: int, connections: int, seed: int = 1) -> Trace:
    trace = bench_header()
    trace.events = list(workload_events(packets, connections, seed))
    return trace


def baseline_rate(trace: Trace) -> float:
    """An ideal exact-match load balancer over the same packets: a dict of 5-tuples (packets per CPU second)."""
    table: dict[FiveTuple, Dip] = {}
    pool = next(iter(trace.vips.values()))
    start = time.process_time()
    for e in trace.events:
        if isinstance(e, ev.PacketArrives):
            ft = e.packet.ft
            if ft not in table:
                table[ft] = pool[dip_index(hash(ft) & 0xFFFF, len(pool))]
    return len(trace.packets) / (time.process_time() - start)


def _stage(text: str) -> None:
    print(f"... {text}", file=sys.stderr, flush=True)


def _vm(field: str) -> int:
    """A ``/proc/self/status`` memory figure, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measured(work: Callable[[], Figures]) -> Figures:
    """``work`` in a forked child: its figures, plus ``grown`` (peak RSS less its RSS at the start)
    and ``peak`` (its whole peak RSS), in bytes."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def child() -> None:
        try:
            start = _vm("VmRSS")
            figures = work()
            send.send(figures | {"grown": _vm("VmHWM") - start, "peak": _vm("VmHWM")})
        except BaseException as error:  # the parent reports it; a child must not unwind into the parent's code
            send.send({"error": f"{type(error).__name__}: {error}"})  # type: ignore[dict-item]

    process = context.Process(target=child)
    process.start()
    figures = receive.recv()
    process.join()
    if "error" in figures:
        raise TraceError(f"benchmark run failed: {figures['error']}")
    return figures


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


# ---------------------------------------------------------------- silkcheck bench


def run_model_bench(packets: int, connections: int) -> None:
    if packets < 1 or connections < 1:
        raise TraceError(f"bench: --packets and --connections must be at least 1, got {packets:,} and {connections:,}")

    def in_memory() -> Figures:
        _stage(f"in memory: building a {packets:,}-packet workload, running it on the model, judging it")
        start = time.perf_counter()
        trace = workload(packets, connections)
        built = time.perf_counter() - start
        cpu_start = time.process_time()
        observations = ModelTarget().run(trace)
        model_s, model_cpu_s = time.perf_counter() - start - built, time.process_time() - cpu_start
        verdict = judge(trace.config, observations)
        total = time.perf_counter() - start
        del observations
        # The same run with the cyclic collector walking what it keeps (``run`` pauses it).
        collected_start = time.process_time()
        list(ModelTarget().stream(trace, trace.events))
        collected_cpu_s = time.process_time() - collected_start
        return {"seconds": total, "model_s": model_s, "model_cpu_s": model_cpu_s, "oracle_s": total - built - model_s,
                "built_s": built, "collected_cpu_s": collected_cpu_s,
                "events": len(trace.events), "connections": verdict.connections, "ok": verdict.ok,
                "baseline_rate": baseline_rate(trace), "live": connections}  # fmt: skip

    def streaming() -> Figures:
        _stage("streaming: the same workload generated, run and judged event by event")
        start = time.perf_counter()
        header = bench_header()
        result = judge_stream(header.config, ModelTarget().stream(header, workload_events(packets, connections)))
        return {"seconds": time.perf_counter() - start, "events": result.events, "ok": result.verdict.ok,
                "connections": result.verdict.connections, "live": result.peak_live}  # fmt: skip

    whole = measured(in_memory)
    stream = measured(streaming)
    print(f"workload: {packets:,} packets, {whole['events'] - packets:,.0f} CPU/update events, up to "
          f"{connections:,} live connections, {whole['connections']:,.0f} incarnations")  # fmt: skip
    # Rates per CPU second: the machine may be shared, and waiting for a core is not the model's time.
    model_rate = packets / whole["model_cpu_s"]
    print(f"model:    {whole['model_s']:8.2f} s  {model_rate:12,.0f} packets/s (with CPU steps; "
          f"{whole['model_cpu_s']:.2f} CPU s, {packets / whole['model_s']:,.0f} packets per wall-clock second; "
          f"{packets / whole['collected_cpu_s']:,.0f} packets/s with the cyclic collector running)")
    print(f"oracle:   {whole['oracle_s']:8.2f} s  {packets / whole['oracle_s']:12,.0f} packets/s")
    print(f"baseline: exact-match dict LB {whole['baseline_rate']:12,.0f} packets/s; "
          f"model is {whole['baseline_rate'] / model_rate:.1f}x slower")  # fmt: skip
    rows = [
        [name, f"{f['seconds']:.1f}", f"{packets / f['seconds']:,.0f}", _mib(f["grown"]), _mib(f["peak"]),
         f"{f['grown'] / packets:,.0f}", f"{f['live']:,.0f}", f"{f['grown'] / f['live']:,.0f}",
         "PASS" if f["ok"] else "FAIL"]
        for name, f in (("in memory (trace + observations + oracle)", whole), ("streaming", stream))
    ]  # fmt: skip
    print(report.table(["mode", "seconds", "packets/s", "RSS grown", "peak RSS", "bytes/packet", "live conns",
                        "bytes/live conn", "verdict"], rows))  # fmt: skip
    print(f"streaming uses {whole['grown'] / max(stream['grown'], 1):,.1f}x less memory than in memory; "
          f"both judged {stream['connections']:,.0f} incarnations"
          + ("" if stream["connections"] == whole["connections"] else " (MISMATCH in the count!)"))  # fmt: skip


# ---------------------------------------------------------------- silkcheck pcap-bench


def _timed_packets(events: Iterable[ev.Event]) -> Iterator[tuple[int, Packet]]:
    return ((e.t, e.packet) for e in events if isinstance(e, ev.PacketArrives))


def scapy_export(packets: Iterable[tuple[int, Packet]], path: Path) -> int:
    """The baseline: one scapy packet object per frame, as the pcap export was written before."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapWriter as ScapyWriter

    count = 0
    with ScapyWriter(str(path), linktype=1, sync=False) as writer:
        for t, packet in packets:
            ft = packet.ft
            frame = Ether() / IP(src=ip_str(ft.src_ip), dst=ip_str(ft.dst_ip)) / TCP(
                sport=ft.src_port, dport=ft.dst_port, flags=packet.flags, seq=packet.seq, ack=packet.ack)
            frame.time = t / 1_000_000
            writer.write(frame)
            count += 1
    return count


def run_pcap_bench(packets: int, span_s: float, connections: int, learn_interval: int, baseline_packets: int,
                   keep: str | None) -> None:  # fmt: skip
    """Write a synthetic capture with the streaming writer (vs scapy), then replay it as
    ``silkcheck replay --pcap`` does, streaming (vs the in-memory path on a prefix)."""
    from silkcheck.capture import CaptureStream, capture_events, capture_trace, read_capture
    from silkcheck.pcap import write_packets
    from silkcheck.streaming import judge_stream

    for name, value in (("--packets", packets), ("--connections", connections),
                        ("--learn-interval-us", learn_interval), ("--baseline-packets", baseline_packets)):  # fmt: skip
        if value < 1:
            raise TraceError(f"pcap-bench: {name} must be at least 1, got {value:,}")
    if not 0 < span_s < 10**9:
        raise TraceError(f"pcap-bench: --span-s must be positive (and under 10^9), got {span_s}")
    span = round(span_s * 1_000_000)
    path = Path(keep) if keep else Path("silkcheck-out") / "pcap-bench" / f"bench-{packets}.pcap"
    path.parent.mkdir(parents=True, exist_ok=True)

    sample = list(_timed_packets(workload_events(min(packets, 50_000), connections, span=span, cpu=False)))
    _stage(f"pcap export of the same {len(sample):,} packets: scapy (the baseline), then the streaming writer")
    rates = []
    for export in (scapy_export, write_packets):
        start = time.perf_counter()
        export(iter(sample), path)
        rates.append(len(sample) / (time.perf_counter() - start))
    print(f"pcap export: streaming writer {rates[1]:,.0f} packets/s, scapy baseline {rates[0]:,.0f} packets/s "
          f"({rates[1] / rates[0]:,.1f}x), on the same {len(sample):,} packets")  # fmt: skip
    _stage(f"writing {packets:,} packets over {span_s:,.0f} s to {path}")
    start = time.perf_counter()
    write_packets(_timed_packets(workload_events(packets, connections, span=span, cpu=False)), path)
    print(f"wrote {path}: {packets:,} packets in {time.perf_counter() - start:,.1f} s (workload generation included)")

    config = Config()
    pools = {BENCH_VIP: BENCH_DIPS[:4]}
    update = [ev.UpdateRequested(span // 2, BENCH_VIP, BENCH_DIPS[2:6])]

    def whole() -> Figures:
        _stage(f"baseline: the in-memory path (capture, trace, observations) on the first {baseline_packets:,}")
        start = time.perf_counter()
        capture = read_capture(path, [BENCH_VIP], baseline_packets)
        trace = capture_trace(capture, config, pools, learn_interval, update)
        verdict = judge(config, ModelTarget().run(trace))
        return {"seconds": time.perf_counter() - start, "packets": len(capture.packets), "ok": verdict.ok,
                "live": 0, "events": len(trace.events)}  # fmt: skip

    def streamed() -> Figures:
        _stage(f"streaming replay of all {packets:,} packets")
        start = time.perf_counter()
        stream = CaptureStream(path, [BENCH_VIP])
        header = Trace(config, pools, name=path.stem)
        events = capture_events(stream, config, learn_interval, updates=update)
        result = judge_stream(config, ModelTarget().stream(header, events), progress=True)
        verdict = result.verdict
        return {"seconds": time.perf_counter() - start, "packets": verdict.packets, "ok": verdict.ok,
                "live": result.peak_live, "events": result.events, "connections": verdict.connections}  # fmt: skip

    base = measured(whole)
    stream = measured(streamed)
    per_packet = base["grown"] / base["packets"]
    rows = [
        [name, f"{f['packets']:,.0f}", f"{f['events'] - f['packets']:,.0f}", f"{f['seconds']:.1f}",
         f"{f['packets'] / f['seconds']:,.0f}", _mib(f["grown"]), _mib(f["peak"]), f"{f['grown'] / f['packets']:,.0f}",
         f"{f['live']:,.0f}" if f["live"] else "-", "PASS" if f["ok"] else "FAIL"]
        for name, f in (("in memory (prefix)", base), ("streaming", stream))
    ]  # fmt: skip
    print(f"replay --pcap of {path} ({packets:,} packets over {span_s:,.0f} s, CPU learns every "
          f"{learn_interval:,} µs, one pool update mid-span):")  # fmt: skip
    print(report.table(["path", "packets", "CPU/update events", "seconds", "packets/s", "RSS grown", "peak RSS",
                        "bytes/packet", "peak live", "verdict"], rows))  # fmt: skip
    print(f"streaming peak RSS {_mib(stream['peak'])} for {packets:,} packets: grown "
          f"{stream['grown'] / stream['connections']:,.0f} bytes per incarnation seen ({stream['connections']:,.0f}; "
          f"what is kept per 5-tuple) or {stream['grown'] / max(stream['live'], 1):,.0f} per live one at the peak "
          f"({stream['live']:,.0f}); the in-memory path at {per_packet:,.0f} bytes/packet would need about "
          f"{_mib(per_packet * packets)} (extrapolated from its prefix)")  # fmt: skip
    if not keep:
        path.unlink()
