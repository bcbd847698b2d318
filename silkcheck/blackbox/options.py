"""Command-line options that name a black-box setup: an example, or a program and a controller."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from model.config import Config
from model.types import Dip, Vip
from silkcheck.blackbox.examples import example
from silkcheck.blackbox.harness import Setup
from silkcheck.trace import TraceError, parse_dip, parse_vip


@dataclass(frozen=True)
class Chosen:
    setup: Setup
    config: Config
    pools: dict[Vip, tuple[Dip, ...]]
    dips: tuple[Dip, ...]
    """Every DIP a workload may put in a pool."""
    replay_flags: str
    """The options that rebuild this setup, for saved traces' replay commands."""


def add_setup_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--example", help="stateless (a), flip (b) or silkroad (c): the program, controller and VIPs")
    p.add_argument("--program", help="the compiled program (BMv2 JSON)")
    p.add_argument("--p4info", help="its P4Info (text format)")
    p.add_argument("--controller", help="the controller adapter: FILE.py:CLASS or MODULE:CLASS")
    p.add_argument("--client-port", type=int, action="append", default=[], help="a port facing clients (default 1)")
    p.add_argument("--server-port", type=int, action="append", default=[], help="a port facing servers (default 2)")


def add_pool_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vip", action="append", default=[], help="IP:PORT/tcp|udp (repeatable)")
    p.add_argument("--pool", action="append", default=[], help="DIP,DIP,... the initial pool of each --vip in order")
    p.add_argument("--dips", help="DIP,DIP,... the DIPs updates draw pools from (default: those of the pools)")


def _dips(text: str, option: str) -> tuple[Dip, ...]:
    try:
        return tuple(parse_dip(x) for x in text.split(","))
    except ValueError as error:
        raise TraceError(f"{option} {text!r}: {error}") from None


def chosen_setup(args: argparse.Namespace, with_pools: bool = True) -> Chosen:
    """The setup the options name; ``with_pools=False`` when a trace brings its own VIPs."""
    ports = {"client_ports": tuple(args.client_port) or (1,), "server_ports": tuple(args.server_port) or (2,)}
    if args.example:
        try:
            ex = example(args.example)
        except ValueError as error:
            raise TraceError(f"--example: {error}") from None
        base = ex.setup()
        setup = Setup(base.program, base.p4info, base.controller, **ports, extra=base.extra)
        pools, config, flags = ex.pools(), ex.config, f"--example {ex.name}"
        dips: tuple[Dip, ...] = tuple(d for n in range(1, 5) for d in [parse_dip(f"10.0.{n}.10:8080")])
    else:
        missing = [o for o in ("program", "p4info", "controller") if not getattr(args, o)]
        if missing:
            raise TraceError(f"give --example, or all of --program, --p4info and --controller (missing: "
                             f"{', '.join('--' + m for m in missing)})")  # fmt: skip
        setup = Setup(Path(args.program), Path(args.p4info), args.controller, **ports)
        flags = f"--program {args.program} --p4info {args.p4info} --controller {args.controller}"
        config = Config()
        pools = _pools(args) if with_pools else {}
        dips = tuple(dict.fromkeys(d for pool in pools.values() for d in pool))
    if getattr(args, "dips", None):
        dips = _dips(args.dips, "--dips")
    for option, values in (("--client-port", args.client_port), ("--server-port", args.server_port)):
        flags += "".join(f" {option} {v}" for v in values)
    return Chosen(setup, config, pools, dips, flags)


def _pools(args: argparse.Namespace) -> dict[Vip, tuple[Dip, ...]]:
    vip_texts = getattr(args, "vip", [])
    if not vip_texts:
        raise TraceError("give at least one --vip IP:PORT/tcp with its --pool DIP,DIP (or --example)")
    pool_texts = getattr(args, "pool", [])
    if len(pool_texts) not in (1, len(vip_texts)):
        raise TraceError(f"{len(vip_texts)} --vip but {len(pool_texts)} --pool: give one pool, or one per VIP")
    pools = {}
    for i, text in enumerate(vip_texts):
        try:
            vip = parse_vip(text)
        except ValueError as error:
            raise TraceError(f"--vip {text!r}: {error}") from None
        pools[vip] = _dips(pool_texts[i if len(pool_texts) > 1 else 0], "--pool")
    return pools
