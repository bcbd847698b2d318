"""Small builders shared by the unit tests."""

from __future__ import annotations

import json
from pathlib import Path

from fuzz.mutants import COUNTEREXAMPLES_DIR
from model import events as ev
from model.config import Config
from model.switch import Switch
from model.types import ACK, PROTO_TCP, SYN, Dip, FiveTuple, Packet, Vip, parse_ip
from silkcheck.trace import CookieAck, Trace

VIP = Vip(parse_ip("20.0.0.1"), 80, PROTO_TCP)
D1 = Dip(parse_ip("10.0.1.10"), 8080)
D2 = Dip(parse_ip("10.0.2.10"), 8080)
D3 = Dip(parse_ip("10.0.3.10"), 8080)


def flow(n: int, port: int = 40000, vip: Vip = VIP) -> FiveTuple:
    return FiveTuple(parse_ip("192.168.0.0") + n, vip.ip, port, vip.port, vip.proto)


class Run:
    """Drive a Switch event by event and keep every observation."""

    def __init__(self, config: Config | None = None, pool: tuple[Dip, ...] = (D1,)) -> None:
        self.config = config or Config(learn_delay_bound=100)
        self.switch = Switch.boot(self.config, {VIP: pool})
        self.observations: list = []
        self.t = 0

    def do(self, event_type: type, *args: object, dt: int = 1) -> object:
        self.t += dt
        event = event_type(self.t, *args)
        obs = self.switch.step(len(self.observations), event)
        self.observations.append(obs)
        return obs

    def packet(self, ft: FiveTuple, flags: int = 0x10, seq: int = 0, ack: int = 0, dt: int = 1):
        return self.do(ev.PacketArrives, Packet(ft, flags, seq, ack), dt=dt)

    def learn(self, limit: int | None = None, dt: int = 1):
        return self.do(ev.CpuLearns, limit, dt=dt)

    def advance(self, dt: int = 1):
        return self.do(ev.CpuAdvances, dt=dt)

    def expire(self, dt: int = 1):
        return self.do(ev.CpuExpires, dt=dt)

    def update(self, pool: tuple[Dip, ...], dt: int = 1):
        return self.do(ev.UpdateRequested, VIP, pool, dt=dt)

    @property
    def phase(self) -> int:
        return self.switch.dataplane.vips[VIP].phase


OWNED = FiveTuple(parse_ip("198.51.100.1"), VIP.ip, 40000, VIP.port, VIP.proto)
"""A flow from an address an attacker owns (it reads the SYN-ACKs sent there)."""
SPOOFED = OWNED._replace(src_ip=parse_ip("172.16.0.1"))
OTHER_PORT = OWNED._replace(src_port=40001)


def replay_attack(replayed: FiveTuple) -> Trace:
    """The attacker's SYN from its own address, the seen cookie + 1 replayed from ``replayed``, a CPU
    learn, and a SYN from the replayed source."""
    events = [
        ev.PacketArrives(0, Packet(OWNED, SYN, seq=5)),
        CookieAck(1, Packet(replayed, ACK, seq=6), OWNED, 1),
        ev.CpuLearns(2),
        ev.PacketArrives(3, Packet(replayed._replace(src_port=50000), SYN, seq=7)),
    ]
    return Trace(Config(syn_auth=True, learn_delay_bound=100), {VIP: (D1, D2)}, events, "replay")


def shipped_refuses(directory: Path) -> Path:
    """pool-after-exec-flip's counterexample with its second ``cpu`` event made a ``write``: only the
    mutant's CPU, which holds the new pool's write back, has one queued there; the shipped design
    refuses the trace at events[3]."""
    data = json.loads((COUNTEREXAMPLES_DIR / "pool-after-exec-flip.json").read_text())
    data["events"] = [{"t": 102, "kind": "write"} if e == {"t": 102, "kind": "cpu"} else e for e in data["events"]]
    path = directory / "pool-write-event.json"
    path.write_text(json.dumps(data))
    return path
