"""The ``silkcheck`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from model.observations import Observation
from silkcheck import report
from silkcheck.examples import EXAMPLES_DIR, write_all
from silkcheck.oracle import Verdict, judge
from silkcheck.targets import TargetError, get_target
from silkcheck.trace import Trace, TraceError, load


def _run(trace: Trace, target_name: str) -> Verdict:
    return judge(trace.config, get_target(target_name).run(trace))


def _replay_source(args: argparse.Namespace) -> Trace:
    if (args.trace is None) == (args.pcap is None):
        raise TraceError("replay: give either a trace file or --pcap FILE")
    if args.trace is not None:
        return load(args.trace)
    from silkcheck.capture import capture_from_args

    return capture_from_args(args)


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


def cmd_replay(args: argparse.Namespace) -> int:
    trace = _replay_source(args)
    observations = _observe(trace, args)
    verdict = judge(trace.config, observations)
    print(f"{trace.name or args.trace} on {args.target}: {verdict.summary()}")
    if trace.description:
        print(trace.description)
    print()
    print(report.connection_table(verdict))
    for finding in verdict.findings:
        print()
        print(report.explain(finding))
    if args.target == "model":
        show_timeline(trace, observations, verdict, args.html)
    return 0 if verdict.ok else 1


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
    return 0 if good else 1


def cmd_pcap(args: argparse.Namespace) -> int:
    from silkcheck.pcap import export_pcap

    count = export_pcap(load(args.trace), args.out)
    print(f"wrote {count} packets to {args.out}")
    return 0


def cmd_examples(args: argparse.Namespace) -> int:
    for path in write_all(Path(args.dir)):
        print(f"wrote {path}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from silkcheck.bench import run_model_bench

    run_model_bench(args.packets, args.connections)
    return 0


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
    return 0 if good else 1


def _prove_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="smaller BMC depth and search scope (what verify runs)")
    p.add_argument("--bench", action="store_true", help="per-property solver time and explicit-state states/s")
    p.add_argument("--save", metavar="DIR", help="save every counterexample trace (minimal) into DIR")


def cmd_scale_bench(args: argparse.Namespace) -> int:
    from scale.bench import run_scale_bench

    good = run_scale_bench(args.connections, args.load, args.stages, args.slots, args.digest_bits,
                           args.version_bits, args.seed, args.baseline_sample)  # fmt: skip
    return 0 if good else 1


def cmd_analyze(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np

    from scale.analyze import ANALYZE_VIPS, FULL, QUICK, CaptureSource, RandomSource, Rates, run_analyze

    sweep = QUICK if args.quick else FULL
    overrides = {name: tuple(getattr(args, name)) for name in ("digest_bits", "stages", "slots", "loads",
                 "bloom_bits", "bloom_hashes", "latencies_ms") if getattr(args, name)}  # fmt: skip
    sweep = dataclasses.replace(sweep, **overrides)
    if sweep.problems():
        raise TraceError("analyze: " + "; ".join(sweep.problems()))
    rng = np.random.default_rng(args.seed)
    rates = Rates(args.new_conns_per_min, args.updates_per_min)
    if args.pcap:
        from silkcheck.capture import distinct_flows, parse_vips, read_capture

        capture = read_capture(args.pcap, parse_vips(args.vip) or None)
        flows, opens_with_syn = distinct_flows(capture)
        print(f"{args.pcap}: {len(capture.packets):,} packets, {len(flows):,} flows, "
              f"{opens_with_syn.mean():.1%} open with a TCP SYN")  # fmt: skip
        source = CaptureSource(flows, opens_with_syn, rng, name=Path(args.pcap).name)
    else:
        from silkcheck.capture import parse_vips

        vips = parse_vips(args.vip) or list(ANALYZE_VIPS)
        source = RandomSource(rng, vips, args.syn_share)
    run_analyze(sweep, rates, source, Path(args.out), args.seed)
    return 0


def _targets(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="model", help="where to run: model (default), bmv2 or blackbox")


def _verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--examples", default=str(EXAMPLES_DIR), help="directory of example traces")
    _targets(p)


def _replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("trace", nargs="?", help="a trace file (or give --pcap)")
    p.add_argument("--html", metavar="OUT", help="also write the timeline as an HTML page")
    _targets(p)
    p.add_argument("--pcap", help="replay a packet capture: its flows mapped onto --vip, CPU steps inserted")
    _mapping_args(p)
    p.add_argument("--pool", action="append", default=[],
                   help="DIP,DIP,... the pool of each --vip in order (one --pool serves every VIP)")
    p.add_argument("--learn-interval-us", type=int, default=1000, help="CPU learn step interval (insertion latency)")
    p.add_argument("--update-at-us", type=int, help="request a pool update for every VIP at this capture time")
    p.add_argument("--update-pool", help="DIP,DIP,... the new pool of that update")
    p.add_argument("--max-packets", type=int, help="read at most this many usable packets of the capture")
    p.add_argument("--save-trace", help="also save the trace built from the capture as JSON")
    p.add_argument("--pause-at", type=int, metavar="N",
                   help="bmv2: stop before event N with the switch running and open a p4runtime-shell session on it")
    from silkcheck.blackbox.options import add_setup_args

    add_setup_args(p)


def _mapping_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vip", action="append", default=[],
                   help="IP:PORT/tcp|udp; the capture's destinations are mapped onto these VIPs (repeatable)")


def _pcap_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("trace")
    p.add_argument("out")


def _examples_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", default=str(EXAMPLES_DIR))


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--packets", type=int, default=1_000_000)
    p.add_argument("--connections", type=int, default=20_000)


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

    return run_differential(args.traces, args.random, args.seed, args.events)


def _p4_build_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="take the config header of this trace (default: the default Config)")


def _diff_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("traces", nargs="*", help="trace files to run on the model and on BMv2")
    p.add_argument("--random", type=int, default=0, metavar="N", help="also run N random traces")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--events", type=int, default=60, help="events per random trace")
def _scale_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--connections", type=int, default=10_000_000)
    p.add_argument("--load", type=float, default=0.9, help="load factor the table is sized for")
    p.add_argument("--stages", type=int, default=4)
    p.add_argument("--slots", type=int, default=4, help="slots per bucket")
    p.add_argument("--digest-bits", type=int, default=24)
    p.add_argument("--version-bits", type=int, default=6)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--baseline-sample", type=int, default=20_000, help="connections the model's CPU places")


def _analyze_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="a small sweep that finishes in under a minute")
    p.add_argument("--out", default="silkcheck-out/analyze", help="directory for the CSVs and PNG plots")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--digest-bits", type=int, nargs="+")
    p.add_argument("--stages", type=int, nargs="+")
    p.add_argument("--slots", type=int, nargs="+", help="slots per bucket")
    p.add_argument("--loads", type=float, nargs="+", help="ConnTable load factors")
    p.add_argument("--bloom-bits", type=int, nargs="+")
    p.add_argument("--bloom-hashes", type=int, nargs="+")
    p.add_argument("--latencies-ms", type=float, nargs="+", help="insertion latency = update window")
    p.add_argument("--new-conns-per-min", type=float, default=1_000_000)
    p.add_argument("--updates-per-min", type=float, default=100)
    p.add_argument("--syn-share", type=float, default=0.9,
                   help="share of new connections that open with a TCP SYN (random flows only)")
    p.add_argument("--pcap", help="take the flows from this capture instead of random ones")
    _mapping_args(p)


def _budget(text: str) -> float:
    from fuzz.campaign import parse_budget

    try:
        return parse_budget(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _campaign_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--budget", type=_budget, default=_budget("60s"), help="time budget: 30s, 10m, 1h (default 60s)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    p.add_argument("--seed", type=int, default=0)


def _fuzz_args(p: argparse.ArgumentParser) -> None:
    _campaign_args(p)
    p.add_argument("--target", default="model", help="model (default), a mutant's name, or bmv2 (differential)")
    p.add_argument("--db", default=".silkcheck/fuzz-db", help="example database directory")


def cmd_fuzz(args: argparse.Namespace) -> int:
    from fuzz.campaign import run_campaign, summary

    if args.target == "bmv2":  # a differential campaign: random traces on the model and on BMv2
        from silkcheck.differential import run_differential

        return run_differential([], 1 << 62, args.seed, 60, budget_s=args.budget)
    if args.workers < 1:
        raise TraceError(f"--workers must be at least 1, got {args.workers}")
    result = run_campaign(args.target, args.budget, args.workers, args.seed, Path(args.db))
    print(summary(result))
    return 1 if result.failed else 0


def _mutants_args(p: argparse.ArgumentParser) -> None:
    _campaign_args(p)
    p.add_argument("names", nargs="*", help="only these mutants (default: the whole catalogue)")


def cmd_mutants(args: argparse.Namespace) -> int:
    from fuzz.campaign import mutant_table

    if args.workers < 1:
        raise TraceError(f"--workers must be at least 1, got {args.workers}")
    text, all_killed = mutant_table(args.budget, args.workers, args.seed, args.names)
    print(text)
    return 0 if all_killed else 1


def _fuzz_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=10.0, help="time per explorer (default 10)")


def cmd_fuzz_bench(args: argparse.Namespace) -> int:
    from fuzz.bench import run_fuzz_bench

    run_fuzz_bench(args.seconds)
    return 0


def _fuzz_fingerprint_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--walks", type=int, default=600, help="random walks (seeds 0..N-1, default 600)")


def cmd_fuzz_fingerprint(args: argparse.Namespace) -> int:
    from fuzz.fingerprint import observation_fingerprint

    if args.walks < 1:
        raise TraceError(f"--walks must be at least 1, got {args.walks}")
    fingerprint, steps = observation_fingerprint(args.walks)
    print(f"{args.walks} walks, {steps:,} steps: observations sha256 {fingerprint}")
    return 0


def _count(text: str) -> int:
    """A whole number of at least 1 (argparse reports anything else as bad input, exit 2)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def _blackbox_args(p: argparse.ArgumentParser) -> None:
    from silkcheck.blackbox.options import add_pool_args, add_setup_args

    add_setup_args(p)
    add_pool_args(p)
    p.add_argument("--budget", type=_budget, default=_budget("60s"), help="time to hunt: 10s, 10m (default 60s)")
    p.add_argument("--round", type=_budget, default=_budget("3s"), help="length of each workload (default 3s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--connections-per-s", type=float, default=100.0)
    p.add_argument("--update-every", type=_budget, default=_budget("1s"), help="time between pool updates (1s)")
    p.add_argument("--burst", type=int, default=8, help="new connections opened at each update (default 8)")
    p.add_argument("--syn-flood-per-s", type=float, default=0.0, help="spoofed SYNs per second (default 0)")
    p.add_argument("--nemesis", default="none",
                   help="faults: all, none, or a list of controller_pause, controller_kill, digest_delay, "
                        "digest_drop, write_delay")  # fmt: skip
    p.add_argument("--no-shrink", action="store_true", help="save the violating workload, do not shrink it")
    p.add_argument("--repro", type=_count, default=10, help="re-runs of the shrunk trace to count (default 10)")
    p.add_argument("--shrink-runs", type=_count, default=200, help="candidates the shrinker may try (default 200)")
    p.add_argument("--shrink-confirm", type=_count, default=3,
                   help="a candidate counts as failing after this many failing runs in a row (default 3)")
    p.add_argument("--survive", action="store_true", help="do not stop at a violation: run the whole budget")
    p.add_argument("--out", default="silkcheck-out/blackbox", help="where violating traces are saved")


def cmd_blackbox(args: argparse.Namespace) -> int:
    from silkcheck.blackbox.campaign import hunt, summary, survive
    from silkcheck.blackbox.harness import Session
    from silkcheck.blackbox.options import chosen_setup
    from silkcheck.blackbox.workload import WorkloadSpec, nemesis_kinds

    chosen = chosen_setup(args)
    try:
        kinds = nemesis_kinds(args.nemesis)
    except ValueError as error:
        raise TraceError(f"--nemesis: {error}") from None
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
    return 1 if result.found else 0


def _blackbox_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--packets", type=_count, default=5_000, help="packets per trial (default 5,000)")
    p.add_argument("--connections", type=_count, default=64, help="connections they are spread over (default 64)")
    p.add_argument("--example", action="append", default=[],
                   help="stateless, flip or silkroad (repeatable; default: all three)")  # fmt: skip


def cmd_blackbox_bench(args: argparse.Namespace) -> int:
    from silkcheck.blackbox.bench import run_bench
    from silkcheck.blackbox.examples import example, examples
    from silkcheck.blackbox.harness import Session, print_progress
    from silkcheck.trace import Trace

    try:
        chosen = [example(name) for name in args.example] or list(examples().values())
    except ValueError as error:
        raise TraceError(f"--example: {error}") from None
    setups = [(f"({ex.letter}) {ex.name} on BMv2", lambda ex=ex: Session(ex.setup()), Trace(ex.config, ex.pools()))
              for ex in chosen]  # fmt: skip
    print(run_bench(setups, args.packets, args.connections, print_progress))
    return 0


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("trace")
    p.add_argument("--ptf", required=True, metavar="OUT.py", help="write a PTF test that replays the trace")
    from silkcheck.blackbox.options import add_setup_args

    add_setup_args(p)


def cmd_export(args: argparse.Namespace) -> int:
    from silkcheck.blackbox.options import chosen_setup
    from silkcheck.blackbox.ptf_export import export_ptf

    trace = load(args.trace)
    path = export_ptf(trace, chosen_setup(args, with_pools=False).setup, Path(args.ptf))
    print(f"wrote {path}; run it with: silkcheck ptf {path} (and the same setup options)")
    return 0


def _ptf_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("test", help="a test written by silkcheck export --ptf")
    from silkcheck.blackbox.options import add_setup_args

    add_setup_args(p)


def cmd_ptf(args: argparse.Namespace) -> int:
    from silkcheck.blackbox.options import chosen_setup
    from silkcheck.blackbox.ptf_export import run_ptf

    code = run_ptf(Path(args.test), chosen_setup(args, with_pools=False).setup)
    print(f"ptf {args.test}: {'PASS' if code == 0 else f'FAIL (ptf exit code {code})'}")
    return 0 if code == 0 else 1


def cmd_build_examples(args: argparse.Namespace) -> int:
    from silkcheck.blackbox.examples import examples

    for ex in examples().values():
        compiled = ex.build()
        print(f"({ex.letter}) {ex.name}: {compiled.json}\n    silkcheck blackbox --program {compiled.json} "
              f"--p4info {compiled.p4info} --controller {ex.controller_spec} --vip 20.0.0.1:80/tcp "
              "--pool 10.0.1.10:8080,10.0.2.10:8080")  # fmt: skip
    return 0


Configure = Callable[[argparse.ArgumentParser], None]
Handler = Callable[[argparse.Namespace], int]

COMMANDS: list[tuple[str, str, Configure, Handler]] = [
    ("verify", "the main job: check the shipped design and print a verdict table", _verify_args, cmd_verify),
    ("replay", "run one trace and print its verdict and per-connection table", _replay_args, cmd_replay),
    ("pcap", "export a trace's packets as a pcap file", _pcap_args, cmd_pcap),
    ("examples", "regenerate the shipped example traces", _examples_args, cmd_examples),
    ("bench", "benchmark the model: packet rate and peak memory on a large trace", _bench_args, cmd_bench),
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
    ("fuzz-fingerprint", "hash of the model's observations on N random walks (before/after a refactoring)",
     _fuzz_fingerprint_args, cmd_fuzz_fingerprint),
    ("prove", "run the proof suite (Z3, BMC, explicit-state search) and print a table", _prove_args, cmd_prove),
    ("blackbox", "black-box PCC testing of any P4 load balancer and its controller on BMv2, with faults",
     _blackbox_args, cmd_blackbox),
    ("blackbox-bench", "the black-box harness's cost per packet and BMv2's packets/s through each example",
     _blackbox_bench_args, cmd_blackbox_bench),
    ("export", "export a trace as a test for other tools (--ptf: a PTF test)", _export_args, cmd_export),
    ("ptf", "run a test written by export --ptf under ptf, against BMv2 on veth pairs", _ptf_args, cmd_ptf),
    ("build-examples", "compile the example load balancers of examples/ (needs p4c)", lambda p: None,
     cmd_build_examples),
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="silkcheck", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, configure, _ in COMMANDS:
        configure(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    handler = next(h for n, _, _, h in COMMANDS if n == args.command)
    try:
        return handler(args)
    except (TraceError, TargetError) as error:
        print(f"silkcheck: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("silkcheck: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. ``| head``) stopped reading: point stdout at /dev/null so the
        # interpreter's final flush does not raise again (the Python docs' recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
