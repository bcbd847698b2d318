"""The three example load balancers under ``examples/``, and the step that compiles them.

=============  ==========================================================  ==============================
name           data plane                                                  controller (p4runtime-shell)
=============  ==========================================================  ==============================
``stateless``  (a) hash of the 5-tuple mod the pool's size                 writes pools
``flip``       (b) exact-match ConnTable, learned from digests             installs learned connections;
                                                                           flips a VIP's pool at once
``silkroad``   (c) ``p4/silkroad.p4``                                      ``model.cpu.Cpu`` in real time
=============  ==========================================================  ==============================

Compiled outputs go to ``build/examples/<name>/`` (never committed; ``silkcheck
build-examples`` or the first ``--example`` run makes them).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from model.config import Config
from model.types import Dip, Vip
from silkcheck.blackbox.harness import Setup
from silkcheck.p4build import ROOT, Build, build, compile_program
from silkcheck.trace import parse_dip, parse_vip

EXAMPLES = ROOT / "examples"
BUILD = ROOT / "build" / "examples"

VIP = parse_vip("20.0.0.1:80/tcp")
DIPS = tuple(parse_dip(f"10.0.{n}.10:8080") for n in range(1, 5))


@dataclass(frozen=True)
class Example:
    name: str
    letter: str
    source: Path
    controller: Path
    config: Config
    """The oracle's timing contract, and for ``silkroad`` the program's and the Cpu's config."""

    @property
    def controller_spec(self) -> str:
        return f"{self.controller}:Controller"

    def build(self) -> Build:
        if self.name == "silkroad":
            return build(self.config)
        sources = sorted(self.source.parent.glob("*.p4")) + sorted((EXAMPLES / "include").glob("*.p4"))
        key = hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()[:16]
        return compile_program(self.source, BUILD / f"{self.name}-{key}")

    def setup(self) -> Setup:
        compiled = self.build()
        return Setup(compiled.json, compiled.p4info, self.controller_spec, extra={"example": self.name})

    def pools(self) -> dict[Vip, tuple[Dip, ...]]:
        return {VIP: DIPS[:2]}


def silkroad_config() -> Config:
    """Example (c)'s config: the learn-delay bound covers the nemesis's digest delays (and a
    controller pause's), since real digests take that long; timeouts fit a real-time run."""
    data = json.loads((EXAMPLES / "silkroad" / "config.json").read_text())
    return Config.from_dict(data)


def examples() -> dict[str, Example]:
    found = {
        "stateless": Example("stateless", "a", EXAMPLES / "stateless" / "stateless.p4",
                             EXAMPLES / "stateless" / "controller.py", Config()),
        "flip": Example("flip", "b", EXAMPLES / "flip" / "flip.p4", EXAMPLES / "flip" / "controller.py", Config()),
        "silkroad": Example("silkroad", "c", ROOT / "p4" / "silkroad.p4", EXAMPLES / "silkroad" / "controller.py",
                            silkroad_config()),
    }  # fmt: skip
    return found


def example(name: str) -> Example:
    found = examples()
    by_letter = {e.letter: e for e in found.values()}
    if name in found:
        return found[name]
    if name in by_letter:
        return by_letter[name]
    raise ValueError(f"unknown example {name!r}; known: {', '.join(f'{e.name} ({e.letter})' for e in found.values())}")
