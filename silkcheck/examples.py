"""The shipped example traces, built here and saved under ``examples/``.

``silkcheck examples --write`` regenerates them; a test checks the files in
the repository are exactly what this module builds.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from model import events as ev
from model.config import Config
from model.hashing import HashPlan
from model.switch import Switch
from model.types import ACK, FIN, PROTO_TCP, SYN, Dip, FiveTuple, Packet, Vip, parse_ip
from silkcheck.trace import CookieAck, Trace, save

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"

DEMO_VIP = Vip(parse_ip("20.0.0.1"), 80, PROTO_TCP)
DIP1 = Dip(parse_ip("10.0.1.10"), 8080)
DIP2 = Dip(parse_ip("10.0.2.10"), 8080)
CLIENT_NET = parse_ip("192.168.0.0")
"""Legitimate clients' addresses are in 192.168.0.0/16 (``client``); spoofed ones never are."""


class Builder:
    """Writes a trace event by event on a running clock."""

    def __init__(self, name: str, description: str, config: Config, vips: dict[Vip, tuple[Dip, ...]]) -> None:
        self.trace = Trace(config, dict(vips), [], name, description, "pass")
        self.t = 0

    def tick(self, dt: int = 10) -> Builder:
        self.t += dt
        return self

    def packet(self, ft: FiveTuple, flags: int = ACK, seq: int = 0, ack: int = 0) -> Builder:
        self.trace.events.append(ev.PacketArrives(self.t, Packet(ft, flags, seq, ack)))
        return self.tick()

    def answer(self, ft: FiveTuple, seq: int) -> Builder:
        """The client's ACK to the SYN-ACK it received: cookie + 1, computed when it is sent."""
        self.trace.events.append(CookieAck(self.t, Packet(ft, ACK, seq), ft, 1))
        return self.tick()

    def cpu(self, limit: int | None = None) -> Builder:
        self.trace.events.append(ev.CpuLearns(self.t, limit))
        return self.tick()

    def advance(self) -> Builder:
        self.trace.events.append(ev.CpuAdvances(self.t))
        return self.tick()

    def expire(self) -> Builder:
        self.trace.events.append(ev.CpuExpires(self.t))
        return self.tick()

    def update(self, vip: Vip, pool: tuple[Dip, ...]) -> Builder:
        self.trace.events.append(ev.UpdateRequested(self.t, vip, pool))
        return self.tick()


def client(n: int, port: int = 40000, vip: Vip = DEMO_VIP) -> FiveTuple:
    return FiveTuple(CLIENT_NET + n, vip.ip, port, vip.port, vip.proto)


def demo_update() -> Trace:
    """The seed's demo: 20.0.0.1:80 grows from {10.0.1.10} to {10.0.1.10, 10.0.2.10}."""
    b = Builder(
        "demo-update",
        "The SilkRoad P4 demo: VIP 20.0.0.1:80 moves from pool v1 {10.0.1.10:8080} to v2 "
        "{10.0.1.10:8080, 10.0.2.10:8080}. Connections start before the update (installed and still "
        "pending), between t_req and t_exec, between t_exec and t_finish, and after; each keeps its DIP.",
        Config(learn_delay_bound=100),
        {DEMO_VIP: (DIP1,)},
    )
    conns = [client(n) for n in range(1, 13)]
    started: list[FiveTuple] = []

    def start(ft: FiveTuple) -> None:
        b.packet(ft, SYN)
        started.append(ft)

    def chatter() -> None:
        for ft in started:
            b.packet(ft)

    start(conns[0])
    start(conns[1])
    b.cpu()  # both installed
    start(conns[2])  # pending across t_req
    chatter()
    b.update(DEMO_VIP, (DIP1, DIP2))  # t_req
    start(conns[3])  # recorded in TransitTable
    start(conns[4])
    chatter()
    b.advance().tick(100)  # too early for t_exec: the learn-delay bound
    chatter()
    b.advance()  # t_exec
    start(conns[5])
    start(conns[6])
    chatter()
    b.cpu(1)
    chatter()
    b.tick(100).advance()  # t_seal
    chatter()
    start(conns[7])
    b.tick(100).advance()  # t_finish
    for ft in conns[8:]:
        start(ft)
    chatter()
    b.cpu()
    chatter()
    for ft in started[:3]:
        b.packet(ft, FIN | ACK)
    b.cpu()
    chatter()
    b.tick(Config().teardown_grace + 1).expire()
    return b.trace


MAX_SPOOFED_SOURCES = 10_000_000
MAX_LEGIT_CLIENTS = 65_535
"""Legitimate clients are addresses of 192.168.0.0/16."""
FLOOD_LEARN_EVERY = 1_000
"""A flood's trace lets the CPU learn after every 1,000 spoofed SYNs."""


def syn_flood(spoofed: int = 60, legit: int = 3) -> Trace:
    """Spoofed SYNs from ``spoofed`` distinct sources, and ``legit`` reactive clients that answer the
    SYN-ACK they receive (no cookie is computed here), spread evenly through the flood."""
    name = "syn-flood" if (spoofed, legit) == (60, 3) else f"syn-flood-{spoofed}x{legit}"
    b = Builder(
        name,
        f"SYN authentication under a SYN flood: {spoofed:,} spoofed SYNs never return the cookie and never "
        f"reach a DIP nor take ConnTable space; {legit:,} legitimate clients answer their SYN-ACK with "
        "cookie+1 (the first one after a wrong guess, which is dropped), are whitelisted, and their next "
        "connection is load-balanced.",
        Config(syn_auth=True, learn_delay_bound=100),
        {DEMO_VIP: (DIP1, DIP2)},
    )
    rng = random.Random(7)
    clients = [client(n, 50000) for n in range(1, legit + 1)]
    opens_after = [(4 * k + 1) * spoofed // (4 * legit) for k in range(legit)]
    sources: set[int] = set()
    opened = 0
    for i in range(spoofed):
        src = rng.getrandbits(32)
        while src in sources or src >> 16 == CLIENT_NET >> 16:
            src = rng.getrandbits(32)
        sources.add(src)
        b.packet(FiveTuple(src, DEMO_VIP.ip, rng.randrange(1024, 65536), 80, PROTO_TCP), SYN, seq=rng.getrandbits(32))
        while opened < legit and opens_after[opened] == i:
            ft = clients[opened]
            b.packet(ft, SYN, seq=1000)
            if opened == 0:
                b.packet(ft, ACK, seq=1001, ack=12345)  # a wrong cookie is dropped
            b.answer(ft, seq=1001)
            opened += 1
        if (i + 1) % FLOOD_LEARN_EVERY == 0:
            b.cpu()
    for ft in clients[opened:]:  # a flood too small to spread them over
        b.packet(ft, SYN, seq=1000).answer(ft, seq=1001)
    b.cpu()
    for ft in clients:
        retry = ft._replace(src_port=ft.src_port + 1)
        b.packet(retry, SYN, seq=2000)
        b.packet(retry, ACK, seq=2001)
    b.cpu()
    for ft in clients:
        b.packet(ft._replace(src_port=ft.src_port + 1), ACK, seq=2001)
    return b.trace


def _find(predicate: Callable[[FiveTuple], bool], start: int) -> FiveTuple:
    n = start
    while not predicate(client(n, 30000 + n % 1000)):
        n += 1
    return client(n, 30000 + n % 1000)


def digest_collision() -> Trace:
    """A new connection's SYN hits an older connection's entry (same bucket and digest)."""
    config = Config(digest_bits=4, buckets_per_stage=4, stages=2, slots_per_bucket=4, learn_delay_bound=100)
    plan = HashPlan(config)
    old = client(0, 30000)
    old_key = plan.flow(old).key(0)
    new = _find(lambda ft: ft != old and plan.flow(ft).key(0) == old_key, 1)
    b = Builder(
        "digest-collision",
        "Connection B shares A's stage-0 bucket and 4-bit digest. A is installed with version 0, then the "
        "pool changes. B's SYN hits A's entry: B keeps that entry's version (pool v0) and is learned as a "
        "collision; the CPU places B in another stage. Both keep their DIPs throughout.",
        config,
        {DEMO_VIP: (DIP1,)},
    )
    b.packet(old, SYN).cpu().packet(old)
    b.update(DEMO_VIP, (DIP2, DIP1)).tick(100).advance().tick(100).advance().tick(100).advance()
    b.packet(new, SYN).packet(old).packet(new).cpu().packet(new).packet(old)
    b.packet(old, FIN | ACK).cpu().packet(new).tick(config.teardown_grace + 1).expire()
    b.packet(new).packet(new, FIN | ACK)
    return b.trace


def cuckoo_chain() -> Trace:
    """A tiny table fills up until an insertion has to move entries along a cuckoo chain."""
    config = Config(stages=2, buckets_per_stage=4, slots_per_bucket=1, learn_delay_bound=100)
    b = Builder(
        "cuckoo-chain",
        "A 2-stage, 4-bucket, 1-slot ConnTable fills up; later insertions relocate existing entries "
        "(insert the new copy, then delete the old) so that no live connection ever misses.",
        config,
        {DEMO_VIP: (DIP1, DIP2)},
    )
    conns = _chain_workload(config)
    for ft in conns:
        b.packet(ft, SYN).cpu()
        for other in conns[: conns.index(ft) + 1]:
            b.packet(other)
    return b.trace


def _chain_workload(config: Config) -> list[FiveTuple]:
    """The first random clients (by seed) whose insertion, in order, needs a chain of at least two moves.

    Random addresses: CRC is linear, so a run of consecutive addresses lands in
    few buckets of a 4-bucket stage.
    """
    for seed in range(1000):
        switch = Switch.boot(config, {DEMO_VIP: (DIP1, DIP2)})
        rng = random.Random(seed)
        conns: list[FiveTuple] = []
        for _ in range(2 * config.conn_capacity):
            ft = FiveTuple(rng.getrandbits(32), DEMO_VIP.ip, rng.randrange(1024, 65536), 80, PROTO_TCP)
            conns.append(ft)
            switch.step(0, ev.PacketArrives(0, Packet(ft, SYN)))
            if len(switch.step(0, ev.CpuLearns(0)).removes) >= 2:  # type: ignore[union-attr]
                return conns
    raise AssertionError("no cuckoo chain in 1,000 seeds")


BUILDERS: dict[str, Callable[[], Trace]] = {
    "demo-update": demo_update,
    "syn-flood": syn_flood,
    "digest-collision": digest_collision,
    "cuckoo-chain": cuckoo_chain,
}


def write_all(directory: Path = EXAMPLES_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, build in BUILDERS.items():
        path = directory / f"{name}.json"
        save(build(), path)
        paths.append(path)
    return paths


def write_flood(spoofed: int, legit: int, directory: Path) -> Path:
    """A SYN flood of ``spoofed`` sources and ``legit`` reactive clients (``syn_flood``), saved in ``directory``."""
    trace = syn_flood(spoofed, legit)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{trace.name}.json"
    save(trace, path)
    return path
