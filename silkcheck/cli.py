"""The ``silkcheck`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from silkcheck import report
from silkcheck.examples import EXAMPLES_DIR, write_all
from silkcheck.oracle import Verdict, judge
from silkcheck.targets import get_target
from silkcheck.trace import Trace, TraceError, load


def _run(trace: Trace, target_name: str) -> Verdict:
    return judge(trace.config, get_target(target_name).run(trace))


def cmd_replay(args: argparse.Namespace) -> int:
    trace = load(args.trace)
    verdict = _run(trace, args.target)
    print(f"{trace.name or args.trace} on {args.target}: {verdict.summary()}")
    if trace.description:
        print(trace.description)
    print()
    print(report.connection_table(verdict))
    for finding in verdict.findings:
        print()
        print(report.explain(finding))
    show_timeline(trace, args)
    return 0 if verdict.ok else 1


def show_timeline(trace: Trace, args: argparse.Namespace) -> None:
    from silkcheck.timeline import html_timeline, text_timeline

    if args.target != "model":
        return
    observations = get_target(args.target).run(trace)
    verdict = judge(trace.config, observations)
    print()
    print(text_timeline(trace, observations, verdict))
    if args.html:
        html_timeline(trace, observations, verdict, args.html)
        print(f"wrote timeline page {args.html}")


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


def _targets(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="model", help="where to run: model (default)")


def _verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--examples", default=str(EXAMPLES_DIR), help="directory of example traces")
    _targets(p)


def _replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("trace")
    p.add_argument("--html", metavar="OUT", help="also write the timeline as an HTML page")
    _targets(p)


def _pcap_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("trace")
    p.add_argument("out")


def _examples_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", default=str(EXAMPLES_DIR))


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--packets", type=int, default=1_000_000)
    p.add_argument("--connections", type=int, default=20_000)


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
    p.add_argument("--target", default="model", help="model (default) or a mutant's name")
    p.add_argument("--db", default=".silkcheck/fuzz-db", help="example database directory")


def cmd_fuzz(args: argparse.Namespace) -> int:
    from fuzz.campaign import run_campaign, summary

    result = run_campaign(args.target, args.budget, args.workers, args.seed, Path(args.db))
    print(summary(result))
    return 1 if result.failed else 0


def _mutants_args(p: argparse.ArgumentParser) -> None:
    _campaign_args(p)
    p.add_argument("names", nargs="*", help="only these mutants (default: the whole catalogue)")


def cmd_mutants(args: argparse.Namespace) -> int:
    from fuzz.campaign import mutant_table

    text, all_killed = mutant_table(args.budget, args.workers, args.seed, args.names)
    print(text)
    return 0 if all_killed else 1


def _fuzz_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=10.0, help="time per explorer (default 10)")


def cmd_fuzz_bench(args: argparse.Namespace) -> int:
    from fuzz.bench import run_fuzz_bench

    run_fuzz_bench(args.seconds)
    return 0


Configure = Callable[[argparse.ArgumentParser], None]
Handler = Callable[[argparse.Namespace], int]

COMMANDS: list[tuple[str, str, Configure, Handler]] = [
    ("verify", "the main job: check the shipped design and print a verdict table", _verify_args, cmd_verify),
    ("replay", "run one trace and print its verdict and per-connection table", _replay_args, cmd_replay),
    ("pcap", "export a trace's packets as a pcap file", _pcap_args, cmd_pcap),
    ("examples", "regenerate the shipped example traces", _examples_args, cmd_examples),
    ("bench", "benchmark the model: packet rate and peak memory on a large trace", _bench_args, cmd_bench),
    ("fuzz", "fuzzing campaign: random walks, shrunk failures saved in a database", _fuzz_args, cmd_fuzz),
    ("mutants", "run a campaign against each catalogued unsafe mutant; table of kills", _mutants_args, cmd_mutants),
    ("fuzz-bench", "benchmark: Hypothesis machine vs random-walk steps/s", _fuzz_bench_args, cmd_fuzz_bench),
    ("prove", "run the proof suite (Z3, BMC, explicit-state search) and print a table", _prove_args, cmd_prove),
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
    except TraceError as error:
        print(f"silkcheck: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("silkcheck: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
