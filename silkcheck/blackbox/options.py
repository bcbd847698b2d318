"""Command-line options that name a black-box setup: an example, or a program and a controller."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from model.config import Config
from model.types import Dip, Vip
from silkcheck import options as opt
from silkcheck.blackbox.examples import DIPS, example, examples
from silkcheck.blackbox.harness import Setup
from silkcheck.inputs import InputError
from silkcheck.trace import parse_pool_text, parse_vip


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
    p.add_argument("--example", type=opt.choice(lambda: list(examples()), "example"),
                   help="stateless (a), flip (b) or silkroad (c): the program, controller and VIPs")
    p.add_argument("--program", type=opt.input_file("program"), help="the compiled program (BMv2 JSON)")
    p.add_argument("--p4info", type=opt.input_file("P4Info"), help="its P4Info (text format)")
    p.add_argument("--controller", type=opt.validated(_controller_spec, "controller"),
                   help="the controller adapter: FILE.py:CLASS or MODULE:CLASS")
    p.add_argument("--client-port", type=SWITCH_PORT, action="append", default=[],
                   help="a port facing clients (default 1)")
    p.add_argument("--server-port", type=SWITCH_PORT, action="append", default=[],
                   help="a port facing servers (default 2)")


SWITCH_PORT = opt.integer(0, 510)
"""A v1model port (9 bits; 511 is the drop port)."""


def _controller_spec(text: str) -> None:
    if text.count(":") != 1 or not all(text.split(":")):
        raise ValueError(f"{text!r}: expected FILE.py:CLASS or MODULE:CLASS")


def add_pool_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vip", action="append", default=[], type=opt.validated(parse_vip, "VIP"),
                   help="IP:PORT/tcp|udp (repeatable)")
    p.add_argument("--pool", action="append", default=[], type=opt.validated(parse_pool_text, "pool"),
                   help="DIP,DIP,... the initial pool of each --vip in order")
    p.add_argument("--dips", type=opt.validated(parse_pool_text, "DIPs"),
                   help="DIP,DIP,... the DIPs updates draw pools from (default: those of the pools)")


def chosen_setup(args: argparse.Namespace, with_pools: bool = True) -> Chosen:
    """The setup the options name; ``with_pools=False`` when a trace brings its own VIPs."""
    ports = {"client_ports": tuple(args.client_port) or (1,), "server_ports": tuple(args.server_port) or (2,)}
    overlap = set(ports["client_ports"]) & set(ports["server_ports"])
    if overlap:
        raise InputError(f"--client-port and --server-port both name port(s) {sorted(overlap)}")
    if args.example:
        ex = example(args.example)
        base = ex.setup()
        setup = Setup(base.program, base.p4info, base.controller, **ports, extra=base.extra)
        pools, config, flags = ex.pools(), ex.config, f"--example {ex.name}"
        dips: tuple[Dip, ...] = DIPS
    else:
        missing = [o for o in ("program", "p4info", "controller") if not getattr(args, o)]
        if missing:
            raise InputError(f"give --example, or all of --program, --p4info and --controller (missing: "
                             f"{', '.join('--' + m for m in missing)})")  # fmt: skip
        setup = Setup(Path(args.program), Path(args.p4info), args.controller, **ports)
        flags = f"--program {args.program} --p4info {args.p4info} --controller {args.controller}"
        config = Config()
        pools = _pools(args) if with_pools else {}
        dips = tuple(dict.fromkeys(d for pool in pools.values() for d in pool))
    if getattr(args, "dips", None):
        dips = parse_pool_text(args.dips)
    for option, values in (("--client-port", args.client_port), ("--server-port", args.server_port)):
        flags += "".join(f" {option} {v}" for v in values)
    return Chosen(setup, config, pools, dips, flags)


def _pools(args: argparse.Namespace) -> dict[Vip, tuple[Dip, ...]]:
    vip_texts = getattr(args, "vip", [])
    if not vip_texts:
        raise InputError("give at least one --vip IP:PORT/tcp with its --pool DIP,DIP (or --example)")
    pool_texts = getattr(args, "pool", [])
    if len(pool_texts) not in (1, len(vip_texts)):
        raise InputError(f"{len(vip_texts)} --vip but {len(pool_texts)} --pool: give one pool, or one per VIP")
    return {parse_vip(text): parse_pool_text(pool_texts[i if len(pool_texts) > 1 else 0])
            for i, text in enumerate(vip_texts)}  # fmt: skip
