"""Benchmarks: commands that print figures, never tests."""

from __future__ import annotations

import random
import resource
import sys
import time

from model import events as ev
from model.config import Config
from model.hashing import dip_index
from model.types import ACK, FIN, PROTO_TCP, SYN, Dip, FiveTuple, Packet, Vip, parse_ip
from silkcheck.oracle import judge
from silkcheck.targets.model import ModelTarget
from silkcheck.trace import Trace


def workload(packets: int, connections: int, seed: int = 1) -> Trace:
    """A steady mix: connections open, chatter and close; the CPU learns every 1,000
    packets and runs an update protocol step every 20,000; a pool update every 200,000."""
    rng = random.Random(seed)
    vip = Vip(parse_ip("20.0.0.1"), 80, PROTO_TCP)
    dips = [Dip(parse_ip("10.0.1.0") + i, 8080) for i in range(1, 9)]
    config = Config(buckets_per_stage=8192, learn_delay_bound=100)
    trace = Trace(config, {vip: tuple(dips[:4])}, name="bench")
    live: list[FiveTuple] = []
    for n in range(packets):
        t = n + 1
        if len(live) < connections and (not live or rng.random() < 0.05):
            ft = FiveTuple(rng.getrandbits(32), vip.ip, rng.randrange(1024, 65536), 80, PROTO_TCP)
            live.append(ft)
            trace.events.append(ev.PacketArrives(t, Packet(ft, SYN)))
        else:
            i = rng.randrange(len(live))
            closing = rng.random() < 0.02
            trace.events.append(ev.PacketArrives(t, Packet(live[i], FIN | ACK if closing else ACK)))
            if closing:
                live[i] = live[-1]
                live.pop()
        if n % 1_000 == 999:
            trace.events.append(ev.CpuLearns(t))
        if n % 20_000 == 19_999:
            trace.events.append(ev.CpuAdvances(t))
            trace.events.append(ev.CpuExpires(t))
        if n % 200_000 == 100_000:
            trace.events.append(ev.UpdateRequested(t, vip, tuple(rng.sample(dips, 4))))
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


def run_model_bench(packets: int, connections: int) -> None:
    _stage(f"building a {packets:,}-packet workload")
    start = time.perf_counter()
    trace = workload(packets, connections)
    built = time.perf_counter() - start
    count = len(trace.packets)
    print(f"workload: {count:,} packets, {len(trace.events) - count:,} CPU/update events, "
          f"up to {connections:,} live connections (built in {built:.1f} s)")  # fmt: skip

    _stage("running it on the model")
    start, cpu_start = time.perf_counter(), time.process_time()
    observations = ModelTarget().run(trace)
    model_s, model_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start

    _stage("judging the observations")
    start = time.perf_counter()
    verdict = judge(trace.config, observations)
    oracle_s = time.perf_counter() - start

    _stage("running the baseline")
    base = baseline_rate(trace)
    # Rates per CPU second: the machine may be shared, and waiting for a core is not the model's time.
    model_rate = count / model_cpu_s
    print(f"model:    {model_s:8.2f} s  {model_rate:12,.0f} packets/s (with CPU steps; {model_cpu_s:.2f} CPU s, "
          f"{count / model_s:,.0f} packets per wall-clock second)")
    print(f"oracle:   {oracle_s:8.2f} s  {count / oracle_s:12,.0f} packets/s")
    print(f"baseline: exact-match dict LB {base:12,.0f} packets/s; model is {base / model_rate:.1f}x slower")
    print(f"verdict:  {verdict.summary()} over {len(verdict.incarnations):,} incarnations")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS: {peak_kib / 1024:,.0f} MiB (trace + observations + model + oracle)")
