"""The ``silkcheck`` command line."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.config import MAX_BLOOM_HASHES, MAX_STAGES
from model.events import Event
from model.observations import Observation
from silkcheck import options as opt
from silkcheck import report
from silkcheck.capture import EXPIRE_INTERVAL
from silkcheck.cluster import parse_address
from silkcheck.differential import PACKET_SHARE, departure
from silkcheck.examples import EXAMPLES_DIR, MAX_LEGIT_CLIENTS, MAX_SPOOFED_SOURCES, write_all, write_flood
from silkcheck.inputs import TRACE_MAX_BYTES, InputError, open_binary
from silkcheck.oracle import Verdict, judge
from silkcheck.targets import TargetError, get_target
from silkcheck.targets.model import ModelTarget, run_refined
from silkcheck.trace import TIME_MAX, Trace, TraceError, load, parse_pool_text, parse_vip

# Exit codes (the team's convention).
PASS = 0
VIOLATION = 1
"""A property was violated: a PCC violation, a model/BMv2 mismatch, a mutant that survived."""
BAD_INPUT = 2
INTERNAL_ERROR = 3
INTERRUPTED = 130
BROKEN_PIPE = 141
"""128 + SIGPIPE, what a shell reports for a process killed by a closed pipe."""
TARGETS = ("model", "bmv2")
MESSAGE_MAX = 2000


def _run(trace: Trace, target_name: str) -> Verdict:
    return judge(trace.config, get_target(target_name).run(trace))


def _observe(trace: Trace, args: argparse.Namespace) -> list[Observation]:
    if args.target == "blackbox":
        from silkcheck.blackbox.harness import Session
        from silkcheck.blackbox.options import chosen_setup

        with Session(chosen_setup(args, with_pools=False).setup) as session:
            return session.run(trace).observations
    if args.target == "bmv2" and args.pause_at is not None:
        from silkcheck.targets.bmv2 import run_paused

        return run_paused(trace, args.pause_at)
    return get_target(args.target).run(trace)


def unsafe_designs() -> dict[str, Callable[[], contextlib.AbstractContextManager[Any]]]:
    """Every named unsafe variant of the model, each with the patch that applies it: the fuzzer's
    mutants and the proofs' variants (whose saved counterexamples are named after them)."""
    from fuzz.mutants import MUTANTS
    from proofs.variants import UNCHECKED_MOVE, VARIANTS, unchecked_move

    designs: dict[str, Callable[[], contextlib.AbstractContextManager[Any]]] = {m.name: m.patch for m in MUTANTS}
    designs.update({v.name: v.applied for v in VARIANTS})
    designs[UNCHECKED_MOVE[0]] = unchecked_move
    return designs


def _variant_of(trace: Trace) -> str | None:
    """The unsafe variant a saved counterexample refutes: its name, or its name's end (``bmc-skip-transit``)."""
    return next((name for name in unsafe_designs() if trace.name == name or trace.name.endswith("-" + name)), None)


def cmd_replay(args: argparse.Namespace) -> int:
    patch = unsafe_designs()[args.mutant] if args.mutant else contextlib.nullcontext
    if args.mutant and args.target != "model":
        from fuzz.mutants import patched_layer

        # BMv2's switch CPU is the model's Cpu, so a CPU mutant runs there too (its table writes,
        # one by one, to the real P4 program); the design's decisions and the pipeline are the P4's.
        layer = patched_layer(patch)
        if args.target != "bmv2" or layer != "cpu":
            raise InputError(f"--mutant {args.mutant} patches the model's {layer}, which --target {args.target} "
                             "does not run: replay it on --target model")  # fmt: skip
    if (args.trace is None) == (args.pcap is None):
        raise TraceError("replay: give either a trace file or --pcap FILE")
    if args.pcap is not None or _too_large_to_load(args.trace):
        with patch():
            return replay_capture(args) if args.pcap is not None else replay_large_trace(args)
    trace = load(args.trace)
    shipped = ShippedRun.of(trace) if args.mutant else None
    try:
        with patch():
            return replay_trace(trace, args, shipped)
    except TraceError as error:
        variant = _variant_of(trace) if trace.expect == "fail" and not args.mutant else None
        if variant is None:
            raise
        raise TraceError(f"{error} ({_variant_hint(variant)})") from None


def _variant_hint(variant: str) -> str:
    return f"a counterexample of the unsafe variant {variant}: add --mutant {variant} to see it fail"


@dataclass(frozen=True)
class ShippedRun:
    """The shipped design's run of a trace on the model, made before a mutant is applied: how a run
    under the mutant compares with it, packet by packet (where a mutant that keeps PCC still shows)."""

    observations: list[Observation]
    refusal: str | None = None
    """Why the shipped design cannot run the trace at all: the mutant's CPU queued writes the
    shipped one does not (a ``write`` event with nothing queued), so the run under it is no run
    of the shipped design, what the refinement check says on the model and no check sees on BMv2."""

    @classmethod
    def of(cls, trace: Trace) -> ShippedRun:
        try:
            return cls(ModelTarget().run(trace))
        except TraceError as error:
            return cls([], str(error))

    def compare(self, observations: list[Observation]) -> str:
        if self.refusal is not None:
            return f"the shipped design cannot run this trace: {self.refusal}"
        left = departure(self.observations, observations)
        return f"leaves the shipped design at {left.what}" if left else "every packet as in the shipped design"


def replay_capture(args: argparse.Namespace) -> int:
    """``replay --pcap``: read, run and judged as a stream on the model (memory grows with live
    connections, not packets); held whole only for BMv2 or a timeline page, which need every event."""
    from silkcheck.capture import capture_source
    from silkcheck.streaming import saving

    header, capture, events = capture_source(args)
    if args.save_trace:
        events = saving(header, events, Path(args.save_trace))
    if args.target != "model" or args.html:
        header.events = list(events)
        print(capture.summary())
        return replay_trace(header, args)
    code = _judge_streamed(header, events, args, before=capture.summary)
    if args.save_trace:
        print(f"wrote {args.save_trace}")
    return code


def _too_large_to_load(path: str) -> bool:
    with open_binary(path, "trace") as file:  # a missing, unreadable or special file: its clear error now
        return os.fstat(file.fileno()).st_size > TRACE_MAX_BYTES


def replay_large_trace(args: argparse.Namespace) -> int:
    """A trace file too large to load whole, read, run and judged as a stream on the model."""
    from silkcheck.trace_stream import load_stream

    if args.target != "model" or args.html:
        raise InputError(f"{args.trace}: over {TRACE_MAX_BYTES:,} bytes, a trace is replayed as a stream: on the "
                         "model target, without --html")  # fmt: skip
    header, events = load_stream(args.trace)
    return _judge_streamed(header, events, args)


def _judge_streamed(header: Trace, events: Iterable[Event], args: argparse.Namespace,
                    before: Callable[[], str] | None = None) -> int:  # fmt: skip
    from silkcheck.streaming import describe, judge_stream
    from silkcheck.targets.model import ModelTarget

    result = judge_stream(header.config, ModelTarget().stream(header, events), progress=True)
    if before is not None:
        print(before())
    applied = f" with {args.mutant} applied" if args.mutant else ""
    print(describe((header.name or str(args.trace)) + applied, args.target, result, header.config.syn_auth))
    return PASS if result.verdict.ok else VIOLATION


def replay_trace(trace: Trace, args: argparse.Namespace, shipped: ShippedRun | None = None) -> int:
    # On the model, one run gives the observations and checks each step against the abstract system.
    observations, refined = run_refined(trace) if args.target == "model" else (_observe(trace, args), None)
    verdict = judge(trace.config, observations)
    applied = f" with {args.mutant} applied" if args.mutant else ""
    refusal = shipped.refusal if shipped is not None else None
    print(f"{trace.name or args.trace} on {args.target}{applied}: {report.headline(verdict, refined, refusal)}")
    if shipped is not None:
        print(f"against the shipped design: {shipped.compare(observations)}")
    if refined is not None:
        print(report.refinement(refined))
    if trace.description:
        print(trace.description)
    variant = _variant_of(trace) if trace.expect == "fail" and verdict.ok and not args.mutant else None
    if variant:
        print(f"({_variant_hint(variant)})")
    print()
    good = verdict.ok and (refined is None or refined.mismatch is None) and refusal is None
    if args.summary:
        print(report.summary(verdict, len(trace.events), len(trace.packets), trace.config.syn_auth))
        return PASS if good else VIOLATION
    print(report.connection_table(verdict))
    for finding in verdict.findings:
        print()
        print(report.explain(finding))
    if args.target == "model":
        show_timeline(trace, observations, verdict, args.html)
    return PASS if good else VIOLATION


def show_timeline(trace: Trace, observations: list[Observation], verdict: Verdict, html: str | None) -> None:
    from silkcheck.timeline import html_timeline, text_timeline

    print()
    print(text_timeline(trace, observations, verdict))
    if html:
        html_timeline(trace, observations, verdict, html)
        print(f"wrote timeline page {html}")


def verify_examples(directory: Path, target_name: str) -> tuple[str, bool]:
    paths = sorted(directory.glob("*.json"))
    if not paths:
        raise TraceError(f"{directory}: no example traces (*.json)")
    rows = []
    good = True
    for path in paths:
        trace = load(path)
        verdict = _run(trace, target_name)
        expected = trace.expect or "pass"
        matches = (expected == "pass") == verdict.ok
        good &= matches
        rows.append([path.stem, len(trace.packets), len(verdict.incarnations), expected, verdict.summary(),
                     "yes" if matches else "NO"])  # fmt: skip
    return report.table(["trace", "packets", "connections", "expect", "verdict", "as expected"], rows), good


def cmd_verify(args: argparse.Namespace) -> int:
    print(f"== example traces on the {args.target} target")
    text, good = verify_examples(Path(args.examples), args.target)
    print(text)
    print()
    from fuzz.campaign import verify_section

    good &= verify_section()
    print()
    good &= _prove_section()
    print()
    print("verify:", "OK" if good else "FAILED")
    return PASS if good else VIOLATION


def cmd_pcap(args: argparse.Namespace) -> int:
    from silkcheck.pcap import export_pcap

    count = export_pcap(load(args.trace), args.out)
    print(f"wrote {count} packets to {args.out}")
    return PASS


def cmd_examples(args: argparse.Namespace) -> int:
    if (args.spoofed is None) != (args.legit is None):
        raise TraceError("examples: give --spoofed and --legit together")
    if args.spoofed is None:
        paths = write_all(Path(args.dir))
    else:
        paths = [write_flood(args.spoofed, args.legit, Path(args.dir))]
    for path in paths:
        print(f"wrote {path}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from silkcheck.bench import run_model_bench

    run_model_bench(args.packets, args.connections)
    return 0


def cmd_pcap_bench(args: argparse.Namespace) -> int:
    from silkcheck.bench import run_pcap_bench

    run_pcap_bench(args.packets, args.span_s, args.connections, args.learn_interval_us, args.baseline_packets,
                   args.keep)  # fmt: skip
    return 0


def _pcap_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--packets", type=opt.count(BENCH_MAX_PACKETS * 5), default=10_000_000,
                   help="packets in the synthetic capture (default 10M)")
    p.add_argument("--span-s", type=opt.real(0, 10**8, low_open=True), default=3600.0,
                   help="seconds the capture spans (default 3600)")
    p.add_argument("--connections", type=opt.count(1_000_000), default=5_000,
                   help="live connections at a time (default 5,000)")
    p.add_argument("--learn-interval-us", type=opt.count(TIME_MAX), default=100_000,
                   help="CPU learn step interval (default 100 ms)")
    p.add_argument("--baseline-packets", type=opt.count(BENCH_MAX_PACKETS), default=300_000,
                   help="packets the in-memory baseline replays (default 300,000)")
    p.add_argument("--keep", metavar="PCAP", type=opt.output_file("capture"), help="write the capture here and keep it")


def _prove_section() -> bool:
    from proofs.suite import prove_section

    return prove_section()


def cmd_prove(args: argparse.Namespace) -> int:
    from proofs.suite import bench, run, table

    if args.bench:
        bench()
        return 0
    save_dir = Path(args.save) if args.save else None
    rows = run(quick=args.quick, save_dir=save_dir, progress=lambda stage: print(f"... {stage}", flush=True))
    print(table(rows))
    good = all(r.ok for r in rows)
    print()
    print("prove:", "OK" if good else "FAILED")
    return PASS if good else VIOLATION


def _prove_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="smaller BMC depth and search scope (what verify runs)")
    p.add_argument("--bench", action="store_true", help="per-property solver time and explicit-state states/s")
    p.add_argument("--save", metavar="DIR", type=opt.output_dir("counterexample"),
                   help="save every counterexample trace (minimal) into DIR")


def _scope_names() -> list[str]:
    from proofs.explicit import SCOPES

    return list(SCOPES)


def _search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("scope", type=opt.choice(_scope_names, "search scope"), help="a scope of proofs/explicit.py")
    p.add_argument("--refinement", action="store_true", help="check every edge against the abstract system")
    p.add_argument("--mutant", metavar="NAME", type=opt.choice(lambda: sorted(unsafe_designs()), "mutant"),
                   help="search this unsafe variant (a fuzz mutant or a proof variant) instead of the shipped design")
    p.add_argument("--max-depth", type=opt.count(10_000), help="every state within this many steps (default: "
                   "the scope's)")
    p.add_argument("--max-states", type=opt.count(10**10), help="state budget (default: the scope's)")
    p.add_argument("--save", metavar="DIR", type=opt.output_dir("counterexample"),
                   help="save the counterexample trace, if any, into DIR")
    _cluster_args(p, 256, "of the embedded Dask cluster, one search partition each")


def cmd_search(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from proofs.explicit import SCOPES
    from proofs.replay import save_counterexample
    from proofs.suite import search_text
    from silkcheck.cluster import open_cluster
    from silkcheck.search_cluster import search_on_cluster

    scope = SCOPES[args.scope]
    if args.max_depth is not None:
        scope = replace(scope, max_depth=args.max_depth)
    if args.max_states is not None:
        scope = replace(scope, max_states=args.max_states)
    with open_cluster(args.cluster, args.workers) as client:
        result = search_on_cluster(client, scope, lambda line: print(f"  {line}", file=sys.stderr, flush=True),
                                   args.refinement, args.mutant)  # fmt: skip
    design = f" with {args.mutant} applied" if args.mutant else ""
    design += f" on {result.workers} partition" + ("s" if result.workers != 1 else "")
    trace = result.counterexample
    if trace is None:
        print(f"search {scope.name}{design}: no violation: {search_text(result)}")
        return PASS
    if args.mutant:  # named as the variant's counterexamples are, so that replay names the variant
        trace = replace(trace, name=f"{trace.name}-{args.mutant}",
                        description=f"{trace.description}, with {args.mutant} applied")  # fmt: skip
    what = f"REFINEMENT MISMATCH ({result.mismatch})" if result.mismatch else "VIOLATION"
    saved = f", saved {save_counterexample(trace, Path(args.save))}" if args.save else ""
    print(f"search {scope.name}{design}: {what}: shortest path "
          f"{len(trace.events)} events after {result.states:,} states{saved}")  # fmt: skip
    return VIOLATION


def _search_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scope", default="update-2", type=opt.choice(_scope_names, "search scope"),
                   help="the scope every runner searches (default update-2)")
    p.add_argument("--workers", type=opt.count(64), default=2, help="Dask workers and forked processes (default 2)")


def cmd_search_bench(args: argparse.Namespace) -> int:
    from silkcheck.search_cluster import run_search_bench

    run_search_bench(args.scope, args.workers)
    return 0


def cmd_scale_bench(args: argparse.Namespace) -> int:
    from model.config import ConfigError
    from scale.bench import baseline_config, run_scale_bench, scale_geometry
    from scale.conntable import GeometryError

    sample = min(args.baseline_sample, args.connections)
    shape = f"{args.stages} stages x {args.slots} slots at load {args.load:g}"
    try:  # the options together, before the long work
        geometry = scale_geometry(args.connections, args.load, args.stages, args.slots, args.digest_bits,
                                  args.version_bits)  # fmt: skip
    except GeometryError as error:
        raise InputError(f"scale-bench: {args.connections:,} connections in {shape}: {error}") from None
    try:
        baseline = baseline_config(sample, args.load, args.stages, args.slots, args.digest_bits)
    except ConfigError as error:
        raise InputError(f"scale-bench: the model cannot hold the baseline's table ({sample:,} connections in "
                         f"{shape}): {error}; lower --baseline-sample") from None  # fmt: skip
    return PASS if run_scale_bench(geometry, args.connections, args.seed, baseline, sample) else VIOLATION


def cmd_analyze(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np

    from scale.analyze import ANALYZE_VIPS, FULL, QUICK, CaptureSource, RandomSource, Rates, run_analyze

    sweep = QUICK if args.quick else FULL
    overrides = {name: tuple(getattr(args, name)) for name in ("digest_bits", "stages", "slots", "loads",
                 "bloom_bits", "bloom_hashes", "latencies_ms") if getattr(args, name)}  # fmt: skip
    sweep = dataclasses.replace(sweep, **overrides)
    rates = Rates(args.new_conns_per_min, args.updates_per_min)
    if sweep.problems(rates):
        raise InputError("analyze: " + "; ".join(sweep.problems(rates)))
    rng = np.random.default_rng(args.seed)
    if args.pcap:
        from silkcheck.capture import CaptureStream, distinct_flows, parse_vips

        capture = CaptureStream(Path(args.pcap), parse_vips(args.vip) or None)
        flows, opens_with_syn = distinct_flows(capture)
        print(f"{args.pcap}: {capture.packets:,} packets, {len(flows):,} flows, "
              f"{opens_with_syn.mean():.1%} open with a TCP SYN")  # fmt: skip
        source = CaptureSource(flows, opens_with_syn, rng, name=Path(args.pcap).name)
    else:
        from silkcheck.capture import parse_vips

        vips = parse_vips(args.vip) or list(ANALYZE_VIPS)
        source = RandomSource(rng, vips, args.syn_share)
    run_analyze(sweep, rates, source, Path(args.out), args.seed)
    return 0


def _targets(p: argparse.ArgumentParser, blackbox: bool = False) -> None:
    if blackbox:
        p.add_argument("--target", default="model", type=opt.choice(lambda: (*TARGETS, "blackbox"), "target"),
                       help="where to run: model (default), bmv2, or blackbox (any P4 load balancer: see --example)")
        return
    p.add_argument("--target", default="model", type=opt.choice(lambda: TARGETS, "target"),
                   help="where to run: model (default) or bmv2")


def _verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--examples", default=str(EXAMPLES_DIR), type=opt.input_dir("examples directory"),
                   help="directory of example traces")
    _targets(p)


def _replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("trace", nargs="?", type=opt.input_file("trace"), help="a trace file (or give --pcap)")
    p.add_argument("--html", metavar="OUT", type=opt.output_file("timeline page"),
                   help="also write the timeline as an HTML page")
    p.add_argument("--summary", action="store_true",
                   help="print counts, the SYN-authentication tally and the first findings, not the "
                        "per-connection table and timeline")  # fmt: skip
    _targets(p, blackbox=True)
    p.add_argument("--mutant", metavar="NAME", type=opt.choice(lambda: sorted(unsafe_designs()), "mutant"),
                   help="run with this unsafe variant applied (a fuzz mutant or a proof variant): how a saved "
                        "counterexample fails")  # fmt: skip
    p.add_argument("--pcap", type=opt.input_file("capture"),
                   help="replay a packet capture: its flows mapped onto --vip, CPU steps inserted")
    _mapping_args(p)
    p.add_argument("--pool", action="append", default=[], type=opt.validated(parse_pool_text, "pool"),
                   help="DIP,DIP,... the pool of each --vip in order (one --pool serves every VIP)")
    p.add_argument("--learn-interval-us", type=opt.count(TIME_MAX), default=1000,
                   help="CPU learn step interval (insertion latency)")
    p.add_argument("--expire-interval-us", type=opt.count(TIME_MAX), default=EXPIRE_INTERVAL,
                   help=f"CPU expiry pass interval (default {EXPIRE_INTERVAL:,})")
    p.add_argument("--update-at-us", type=opt.integer(0, TIME_MAX),
                   help="request a pool update for every VIP at this capture time")
    p.add_argument("--update-pool", type=opt.validated(parse_pool_text, "pool"),
                   help="DIP,DIP,... the new pool of that update")
    p.add_argument("--max-packets", type=opt.count(1 << 40),
                   help="read at most this many usable packets of the capture")
    p.add_argument("--save-trace", type=opt.output_file("trace"),
                   help="also save the trace built from the capture as JSON")
    p.add_argument("--pause-at", type=opt.integer(0, 1 << 40), metavar="N",
                   help="bmv2: stop before event N with the switch running and print the p4runtime-shell command "
                        "that opens a session on it")  # fmt: skip
    from silkcheck.blackbox.options import add_setup_args

    add_setup_args(p)


def _mapping_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vip", action="append", default=[], type=opt.validated(parse_vip, "VIP"),
                   help="IP:PORT/tcp|udp; the capture's destinations are mapped onto these VIPs (repeatable)")


def _pcap_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("trace", type=opt.input_file("trace"))
    p.add_argument("out", type=opt.output_file("pcap"))


def _examples_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", default=str(EXAMPLES_DIR), type=opt.output_dir("examples"))
    p.add_argument("--spoofed", type=opt.integer(0, MAX_SPOOFED_SOURCES), metavar="N",
                   help="instead: write only a SYN flood of N spoofed sources (with --legit) into --dir")
    p.add_argument("--legit", type=opt.integer(1, MAX_LEGIT_CLIENTS), metavar="M",
                   help="the flood's legitimate clients, which answer the SYN-ACK they receive")  # fmt: skip


BENCH_MAX_PACKETS = 10_000_000
"""The workload is built in memory: 179 MB peak at 200,000 packets, so about 8 GB here."""


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--packets", type=opt.count(BENCH_MAX_PACKETS), default=1_000_000)
    p.add_argument("--connections", type=opt.count(1_000_000), default=20_000, help="live connections at most")


def cmd_p4_build(args: argparse.Namespace) -> int:
    from model.config import Config
    from silkcheck.p4build import build, defines

    config = load(args.config).config if args.config else Config()
    result = build(config)
    print(f"built p4/silkroad.p4 with {' '.join(defines(config))}")
    print(f"  BMv2 JSON: {result.json}")
    print(f"  P4Info:    {result.p4info}")
    if result.warnings:
        print(f"p4c said:\n{result.warnings}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from silkcheck.differential import run_differential

    return run_differential(args.traces, args.random, args.seed, args.events, workers=args.workers,
                            packet_share=args.packet_share, anchor=not args.no_anchor,
                            bmv2_log=Path(args.bmv2_log).resolve() if args.bmv2_log else None,
                            cluster=args.cluster, refine=not args.no_refinement)  # fmt: skip


def _p4_build_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=opt.input_file("trace"),
                   help="take the config header of this trace (default: the default Config)")


def _diff_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("traces", nargs="*", type=opt.input_file("trace"),
                   help="trace files to run on the model and on BMv2 (in this process)")
    p.add_argument("--random", type=opt.count(1 << 40, low=0), default=0, metavar="N", help="also run N random traces")
    p.add_argument("--seed", type=opt.SEED, default=1)
    p.add_argument("--events", type=opt.count(100_000), default=60, help="events per random trace")
    p.add_argument("--packet-share", type=opt.real(0, 1, low_open=True), default=PACKET_SHARE,
                   help=f"share of a random trace's events that are packets (default {PACKET_SHARE})")
    _cluster_args(p, 64, "of the embedded Dask cluster for the random traces, each with its own BMv2 switch")
    p.add_argument("--no-anchor", action="store_true", help="skip the raw BMv2 rate (pcap-fed) printed as the anchor")
    p.add_argument("--no-refinement", action="store_true",
                   help="do not check the random traces' model runs against the proved abstract system (a third to "
                        "a half of a campaign's CPU; fuzz campaigns check it); model and BMv2 are still compared "
                        "packet by packet")  # fmt: skip
    p.add_argument("--bmv2-log", metavar="FILE", type=opt.output_file("BMv2 log"),
                   help="turn BMv2's packet log on, into FILE (a worker's switch: FILE-PID)")


def _scale_bench_args(p: argparse.ArgumentParser) -> None:
    from scale.conntable import STAGE_ORDERS

    p.add_argument("--connections", type=opt.count(50_000_000), default=10_000_000)
    p.add_argument("--load", type=opt.real(0, 1, low_open=True), default=0.9, help="load factor the table is sized for")
    p.add_argument("--stages", type=opt.count(min(MAX_STAGES, len(STAGE_ORDERS))), default=4)
    p.add_argument("--slots", type=opt.count(64), default=4, help="slots per bucket")
    p.add_argument("--digest-bits", type=opt.count(30), default=24)
    p.add_argument("--version-bits", type=opt.integer(2, 16), default=6)
    p.add_argument("--seed", type=opt.SEED, default=1)
    p.add_argument("--baseline-sample", type=opt.count(1_000_000), default=20_000,
                   help="connections the model's CPU places")


def _analyze_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="a small sweep that finishes in under a minute")
    p.add_argument("--out", default="silkcheck-out/analyze", type=opt.output_dir("analysis"),
                   help="directory for the CSVs and PNG plots")
    p.add_argument("--seed", type=opt.SEED, default=1)
    p.add_argument("--digest-bits", type=opt.count(32), nargs="+")
    p.add_argument("--stages", type=opt.count(MAX_STAGES), nargs="+")
    p.add_argument("--slots", type=opt.count(255), nargs="+", help="slots per bucket")
    p.add_argument("--loads", type=opt.real(0, 1, low_open=True), nargs="+", help="ConnTable load factors")
    p.add_argument("--bloom-bits", type=opt.count(1 << 16), nargs="+")
    p.add_argument("--bloom-hashes", type=opt.count(MAX_BLOOM_HASHES), nargs="+")
    p.add_argument("--latencies-ms", type=opt.real(0, 3_600_000, low_open=True), nargs="+",
                   help="insertion latency = update window")
    p.add_argument("--new-conns-per-min", type=opt.real(0, 1e12, low_open=True), default=1_000_000)
    p.add_argument("--updates-per-min", type=opt.real(0, 1e9, low_open=True), default=100)
    p.add_argument("--syn-share", type=opt.real(0, 1), default=0.9,
                   help="share of new connections that open with a TCP SYN (random flows only)")
    p.add_argument("--pcap", type=opt.input_file("capture"),
                   help="take the flows from this capture instead of random ones")
    _mapping_args(p)


def _cluster_args(p: argparse.ArgumentParser, most: int, what: str) -> None:
    p.add_argument("--workers", type=opt.count(most), default=1,
                   help=f"worker processes {what} (default 1; with --cluster, the cluster's workers instead)")
    p.add_argument("--cluster", type=opt.validated(parse_address, "scheduler address"), metavar="tcp://HOST:8786",
                   help="run the tasks on the workers of this Dask scheduler instead of an embedded cluster")


def _campaign_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--budget", type=opt.duration(), default="60s", help="time budget: 30s, 10m, 1h (default 60s)")
    _cluster_args(p, 256, "of the embedded Dask cluster")
    p.add_argument("--seed", type=opt.SEED, default=0)


def _mutant_names() -> list[str]:
    from fuzz.mutants import MUTANTS_BY_NAME

    return list(MUTANTS_BY_NAME)


def _fuzz_args(p: argparse.ArgumentParser) -> None:
    _campaign_args(p)
    p.add_argument("--target", default="model", type=opt.choice(lambda: ["model", "bmv2", *_mutant_names()], "target"),
                   help="model (default), a mutant's name, or bmv2 (differential)")
    p.add_argument("--db", default=".silkcheck/fuzz-db", type=opt.output_dir("example database"),
                   help="example database directory")


def cmd_fuzz(args: argparse.Namespace) -> int:
    from fuzz.campaign import run_campaign, summary
    from silkcheck.cluster import open_cluster

    if args.target == "bmv2":  # a differential campaign: random traces on the model and on BMv2
        from silkcheck.differential import run_differential

        return run_differential([], 1 << 62, args.seed, 60, budget_s=args.budget, workers=args.workers,
                                cluster=args.cluster)  # fmt: skip
    with open_cluster(args.cluster, args.workers) as client:
        result = run_campaign(client, args.target, args.budget, args.seed, Path(args.db))
    print(summary(result))
    if result.failed:
        return VIOLATION
    if result.interrupted:
        return INTERRUPTED
    if result.steps == 0:
        raise InputError(f"--budget {args.budget:g} s ended before the campaign's first step: nothing was checked")
    return PASS


def _mutants_args(p: argparse.ArgumentParser) -> None:
    _campaign_args(p)
    p.add_argument("names", nargs="*", type=opt.choice(_mutant_names, "mutant"),
                   help="only these mutants (default: the whole catalogue)")
    p.add_argument("--db", default=".silkcheck/fuzz-db", type=opt.output_dir("example database"),
                   help="example database where each mutant's PCC trace is saved, under the mutant's name "
                        "(default .silkcheck/fuzz-db, as for fuzz)")  # fmt: skip
    p.add_argument("--pcc-all", action="store_true",
                   help="a PCC trace for every killed mutant (a PCC-only search where the kill was not a PCC "
                        "violation), not only for the write-level ones of issue #11")  # fmt: skip


def cmd_mutants(args: argparse.Namespace) -> int:
    from fuzz.campaign import mutant_table
    from silkcheck.cluster import open_cluster

    with open_cluster(args.cluster, args.workers) as client:
        text, all_killed = mutant_table(client, args.budget, args.seed, args.names, Path(args.db), args.pcc_all)
    print(text)
    return PASS if all_killed else VIOLATION


def _fuzz_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=opt.real(0, opt.DAY_S, low_open=True), default=10.0,
                   help="time per explorer (default 10)")


def cmd_fuzz_bench(args: argparse.Namespace) -> int:
    from fuzz.bench import run_fuzz_bench

    run_fuzz_bench(args.seconds)
    return 0


def _refinement_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--budget", type=opt.real(0, opt.DAY_S, low_open=True), default=30.0,
                   help="CPU seconds each mutant gets under each check (default 30)")
    p.add_argument("names", nargs="*", type=opt.choice(_mutant_names, "mutant"),
                   help="only these mutants (default: every one that changes the CPU or the data plane)")


def cmd_refinement_bench(args: argparse.Namespace) -> int:
    from fuzz.bench import run_refinement_bench

    return PASS if run_refinement_bench(args.budget, args.names) else VIOLATION


def _cluster_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks-per-worker", type=opt.count(10_000), default=6,
                   help="walk tasks per worker and run (6)")  # fmt: skip
    p.add_argument("--rounds", type=opt.count(100), default=4,
                   help="paired runs of the two runners per worker count, in ABBA order (4)")  # fmt: skip
    p.add_argument("--seed", type=opt.SEED, default=0)


def cmd_cluster_bench(args: argparse.Namespace) -> int:
    from fuzz.cluster_bench import run_cluster_bench

    run_cluster_bench(args.tasks_per_worker, args.rounds, args.seed)
    return 0


def _fuzz_fingerprint_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--walks", type=opt.count(10_000_000), default=600, help="random walks (seeds 0..N-1, default 600)")


def cmd_fuzz_fingerprint(args: argparse.Namespace) -> int:
    from fuzz.fingerprint import observation_fingerprint

    fingerprint, steps = observation_fingerprint(args.walks)
    print(f"{args.walks} walks, {steps:,} steps: observations sha256 {fingerprint}")
    return 0


def _blackbox_args(p: argparse.ArgumentParser) -> None:
    from silkcheck.blackbox.options import add_pool_args, add_setup_args
    from silkcheck.blackbox.workload import nemesis_kinds

    add_setup_args(p)
    add_pool_args(p)
    p.add_argument("--budget", type=opt.duration(), default=60.0, help="time to hunt: 10s, 10m (default 60s)")
    p.add_argument("--round", type=opt.duration(3600), default=3.0, help="length of each workload (default 3s)")
    p.add_argument("--seed", type=opt.SEED, default=0)
    p.add_argument("--connections-per-s", type=opt.real(0, 100_000, low_open=True), default=100.0,
                   help="new connections per second (default 100)")
    p.add_argument("--update-every", type=opt.duration(3600), default=1.0, help="time between pool updates (1s)")
    p.add_argument("--burst", type=opt.count(10_000, low=0), default=8,
                   help="new connections opened at each update (default 8)")
    p.add_argument("--syn-flood-per-s", type=opt.real(0, 100_000), default=0.0,
                   help="spoofed SYNs per second (default 0)")
    p.add_argument("--nemesis", default="none", type=opt.validated(nemesis_kinds, "nemesis"),
                   help="faults: all, none, or a list of controller_pause, controller_kill, digest_delay, "
                        "digest_drop, write_delay")  # fmt: skip
    p.add_argument("--no-shrink", action="store_true", help="save the violating workload, do not shrink it")
    p.add_argument("--repro", type=opt.count(1000), default=10,
                   help="re-runs of the shrunk trace to count (default 10)")
    p.add_argument("--shrink-runs", type=opt.count(100_000), default=200,
                   help="candidates the shrinker may try (default 200)")
    p.add_argument("--shrink-confirm", type=opt.count(100), default=3,
                   help="a candidate counts as failing after this many failing runs in a row (default 3)")
    p.add_argument("--survive", action="store_true", help="do not stop at a violation: run the whole budget")
    p.add_argument("--out", default="silkcheck-out/blackbox", type=opt.output_dir("black-box results"),
                   help="where violating traces are saved")


def cmd_blackbox(args: argparse.Namespace) -> int:
    from silkcheck.blackbox.campaign import hunt, summary, survive
    from silkcheck.blackbox.harness import Session
    from silkcheck.blackbox.options import chosen_setup
    from silkcheck.blackbox.workload import WorkloadSpec, nemesis_kinds

    chosen = chosen_setup(args)
    kinds = nemesis_kinds(args.nemesis)
    spec = WorkloadSpec(int(args.round * 1e6), args.connections_per_s, int(args.update_every * 1e6), args.burst,
                        args.syn_flood_per_s, kinds)  # fmt: skip
    command = f"silkcheck replay --target blackbox {chosen.replay_flags}"
    import signal

    # A SIGTERM (a timeout, CI) unwinds like Ctrl-C, so the namespace and the processes go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with Session(chosen.setup) as session:
        if args.survive:
            text, ok = survive(session, spec, chosen.config, chosen.pools, chosen.dips, args.budget, args.seed,
                               Path(args.out), command)  # fmt: skip
            print(text)
            return 0 if ok else 1
        result = hunt(session, spec, chosen.config, chosen.pools, chosen.dips, args.budget, args.seed,
                      Path(args.out), command, not args.no_shrink, args.repro, args.shrink_runs,
                      args.shrink_confirm)  # fmt: skip
    print(summary(result, chosen.setup))
    return VIOLATION if result.found else PASS


def _blackbox_bench_args(p: argparse.ArgumentParser) -> None:
    from silkcheck.blackbox.examples import examples

    p.add_argument("--packets", type=opt.count(10_000_000), default=5_000, help="packets per trial (default 5,000)")
    p.add_argument("--connections", type=opt.count(65_536), default=64,
                   help="connections they are spread over (default 64)")
    p.add_argument("--example", action="append", default=[], type=opt.choice(lambda: list(examples()), "example"),
                   help="stateless, flip or silkroad (repeatable; default: all three)")  # fmt: skip


def cmd_blackbox_bench(args: argparse.Namespace) -> int:
    from silkcheck.blackbox.bench import run_bench
    from silkcheck.blackbox.examples import example, examples
    from silkcheck.blackbox.harness import Session, print_progress
    from silkcheck.trace import Trace

    chosen = [example(name) for name in args.example] or list(examples().values())
    setups = [(f"({ex.letter}) {ex.name} on BMv2", lambda ex=ex: Session(ex.setup()), Trace(ex.config, ex.pools()))
              for ex in chosen]  # fmt: skip
    print(run_bench(setups, args.packets, args.connections, print_progress))
    return PASS


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("trace", type=opt.input_file("trace"))
    p.add_argument("--ptf", required=True, metavar="OUT.py", type=opt.output_file("PTF test"),
                   help="write a PTF test that replays the trace")
    from silkcheck.blackbox.options import add_setup_args

    add_setup_args(p)


def cmd_export(args: argparse.Namespace) -> int:
    from silkcheck.blackbox.options import chosen_setup
    from silkcheck.blackbox.ptf_export import export_ptf

    trace = load(args.trace)
    path = export_ptf(trace, chosen_setup(args, with_pools=False).setup, Path(args.ptf))
    print(f"wrote {path}; run it with: silkcheck ptf {path} --example NAME (or --program/--p4info/--controller)")
    return PASS


def _ptf_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("test", type=opt.input_file("PTF test"), help="a test written by silkcheck export --ptf")
    from silkcheck.blackbox.options import add_setup_args

    add_setup_args(p)


def cmd_ptf(args: argparse.Namespace) -> int:
    from silkcheck.blackbox.options import chosen_setup
    from silkcheck.blackbox.ptf_export import run_ptf

    code = run_ptf(Path(args.test), chosen_setup(args, with_pools=False).setup)
    print(f"ptf {args.test}: {'PASS' if code == 0 else f'FAIL (ptf exit code {code})'}")
    return PASS if code == 0 else VIOLATION


def cmd_build_examples(args: argparse.Namespace) -> int:
    from silkcheck.blackbox.examples import examples

    for ex in examples().values():
        compiled = ex.build()
        print(f"({ex.letter}) {ex.name}: {compiled.json}\n    silkcheck blackbox --program {compiled.json} "
              f"--p4info {compiled.p4info} --controller {ex.controller_spec} --vip 20.0.0.1:80/tcp "
              "--pool 10.0.1.10:8080,10.0.2.10:8080")  # fmt: skip
    return PASS


def _hostile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inputs", type=opt.count(1_000_000), default=2000, help="malformed inputs to draw (default 2000)")
    p.add_argument("--seed", type=opt.SEED, default=0)
    p.add_argument("--timeout", type=opt.real(0, 3600, low_open=True), default=30.0,
                   help="seconds an input may run before it counts as a hang (default 30)")
    p.add_argument("--out", default="silkcheck-out/hostile", type=opt.output_dir("hostile campaign"),
                   help="where every input that was not a clear error is written, with its output")


def cmd_hostile(args: argparse.Namespace) -> int:
    import time

    from silkcheck.hostile import CLEAR, Tally, campaign

    start = time.monotonic()
    last = 0.0

    def progress(done: int, tally: Tally) -> None:
        nonlocal last
        if time.monotonic() - last > 2 or done == args.inputs:
            last = time.monotonic()
            found = ", ".join(f"{n} {c}" for c, n in sorted(tally.counts.items()) if c != CLEAR) or "none"
            print(f"\r  {done:,}/{args.inputs:,} inputs, {time.monotonic() - start:.0f} s; not clear: {found}",
                  end="", file=sys.stderr, flush=True)  # fmt: skip

    tally = campaign(args.inputs, args.seed, args.timeout, args.out, progress)
    print(file=sys.stderr)
    print(tally.table())
    bad = tally.inputs - tally.counts[CLEAR] + sum(tally.controls.values()) - tally.controls[CLEAR]
    if tally.saved:
        print(f"\n{len(tally.saved)} inputs that were not a clear error written under {args.out}")
    print("\nhostile:", "OK" if not bad else "FAILED")
    return PASS if not bad else VIOLATION


Configure = Callable[[argparse.ArgumentParser], None]
Handler = Callable[[argparse.Namespace], int]

COMMANDS: list[tuple[str, str, Configure, Handler]] = [
    ("verify", "the main job: check the shipped design and print a verdict table", _verify_args, cmd_verify),
    ("replay", "run one trace and print its verdict and per-connection table", _replay_args, cmd_replay),
    ("pcap", "export a trace's packets as a pcap file", _pcap_args, cmd_pcap),
    ("examples", "regenerate the shipped example traces", _examples_args, cmd_examples),
    ("bench", "benchmark the model: packet rate, and memory streaming vs in memory, on a large trace", _bench_args,
     cmd_bench),
    ("pcap-bench", "write a large synthetic capture (vs scapy), replay it streaming (vs in memory): rates, peak RSS",
     _pcap_bench_args, cmd_pcap_bench),
    ("p4-build", "compile p4/silkroad.p4 for BMv2 with a trace's config (needs p4c)", _p4_build_args, cmd_p4_build),
    ("diff", "differential test: run traces on the model and on BMv2 and compare packet by packet", _diff_args,
     cmd_diff),
    ("analyze", "sweep digest bits, stages, slots, load and Bloom size: measured rates vs theory, CSV + plots",
     _analyze_args, cmd_analyze),
    ("scale-bench", "insert 10M connections into the compact ConnTable: time, rates, bytes per connection",
     _scale_bench_args, cmd_scale_bench),
    ("fuzz", "fuzzing campaign: random walks, shrunk failures saved in a database", _fuzz_args, cmd_fuzz),
    ("mutants", "run a campaign against each catalogued unsafe mutant; table of kills", _mutants_args, cmd_mutants),
    ("fuzz-bench", "benchmark: Hypothesis machine vs random-walk steps/s", _fuzz_bench_args, cmd_fuzz_bench),
    ("refinement-bench", "each CPU/data-plane mutant: CPU time to kill by the refinement check alone vs the PCC "
     "oracle alone", _refinement_bench_args, cmd_refinement_bench),
    ("cluster-bench", "benchmark: campaign steps/s on a Dask LocalCluster vs plain processes, 1 and 2 workers",
     _cluster_bench_args, cmd_cluster_bench),
    ("fuzz-fingerprint", "hash of the model's observations on N random walks (before/after a refactoring)",
     _fuzz_fingerprint_args, cmd_fuzz_fingerprint),
    ("prove", "run the proof suite (Z3, BMC, explicit-state search) and print a table", _prove_args, cmd_prove),
    ("search", "exhaustive explicit-state search of one scope on a Dask cluster, its frontier partitioned by "
     "state fingerprint", _search_args, cmd_search),
    ("search-bench", "benchmark: explicit-state search states/s in one process, in forked processes and on Dask",
     _search_bench_args, cmd_search_bench),
    ("blackbox", "black-box PCC testing of any P4 load balancer and its controller on BMv2, with faults",
     _blackbox_args, cmd_blackbox),
    ("blackbox-bench", "the black-box harness's cost per packet and BMv2's packets/s through each example",
     _blackbox_bench_args, cmd_blackbox_bench),
    ("export", "export a trace as a test for other tools (--ptf: a PTF test)", _export_args, cmd_export),
    ("ptf", "run a test written by export --ptf under ptf, against BMv2 on veth pairs", _ptf_args, cmd_ptf),
    ("build-examples", "compile the example load balancers of examples/ (needs p4c)", lambda p: None,
     cmd_build_examples),
    ("hostile", "hostile-input campaign: malformed traces, captures, files and options for every command",
     _hostile_args, cmd_hostile),
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the one place that turns what went wrong into an exit code."""
    for stream in (sys.stdout, sys.stderr):
        # A path or option given as undecodable bytes must not crash the message that names it.
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    # No abbreviations: a mistyped option is an error, not silently another option.
    parser = argparse.ArgumentParser(prog="silkcheck", description=__doc__, allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, configure, _ in COMMANDS:
        configure(sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False))
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help (0), or a bad option after argparse's usage message (2)
        return done.code if isinstance(done.code, int) else BAD_INPUT
    handler = next(h for n, _, _, h in COMMANDS if n == args.command)
    try:
        return handler(args)
    except (InputError, TargetError) as error:
        message = str(error)
        if len(message) > MESSAGE_MAX:  # a safety net: messages quote values briefly already
            message = f"{message[:MESSAGE_MAX]}… ({len(message):,} characters)"
        print(f"silkcheck: {message}", file=sys.stderr)
        return BAD_INPUT
    except KeyboardInterrupt:
        print("silkcheck: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # The reader (e.g. ``| head``) stopped reading: point stdout at /dev/null so the
        # interpreter's final flush does not raise again (the Python docs' recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE  # not PASS: the verdict was never read, it may have been a violation
    except Exception as error:
        return internal_error(error, argv)


def internal_error(error: BaseException, argv: Sequence[str] | None) -> int:
    """A short message asking for a bug report; the traceback goes to a file, not the screen."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(tempfile.gettempdir()) / f"silkcheck-crash-{stamp}-{os.getpid()}.txt"
    command = " ".join(sys.argv[:1] + list(sys.argv[1:] if argv is None else argv))
    try:
        path.write_text(f"command: {command}\n\n" + "".join(traceback.format_exception(error)),
                        errors="backslashreplace")  # fmt: skip
        saved = f"the traceback is in {path}"
    except OSError as write_error:
        saved = f"the traceback could not be saved ({write_error.strerror})"
    summary = f"{type(error).__name__}: {error}"
    if len(summary) > 200:
        summary = summary[:200] + "…"
    print(f"silkcheck: internal error (a bug in silkcheck, not in your input): {summary}\n"
          f"  please report it with the command line; {saved}", file=sys.stderr)  # fmt: skip
    return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
