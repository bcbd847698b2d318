"""Small builders shared by the unit tests."""

from __future__ import annotations

from model import events as ev
from model.config import Config
from model.switch import Switch
from model.types import PROTO_TCP, Dip, FiveTuple, Packet, Vip, parse_ip

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
