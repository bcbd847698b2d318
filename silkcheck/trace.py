"""The trace language: one versioned JSON format every part of silkcheck speaks.

A trace is a config header, the VIPs with their initial pools, and timestamped
events (ticks = µs, non-decreasing)::

    {"format": "silkcheck-trace", "version": 1, "name": "...", "expect": "pass",
     "config": {"digest_bits": 24, ...},          # omitted fields take defaults
     "vips": [{"vip": "20.0.0.1:80/tcp", "pool": ["10.0.1.10:8080"]}],
     "events": [
       {"t": 0,  "kind": "packet", "src": "1.2.3.4:1000", "dst": "20.0.0.1:80",
                 "proto": "tcp", "flags": "S", "seq": 0, "ack": 0},
       {"t": 1,  "kind": "packet", "src": "1.2.3.4:1000", "dst": "20.0.0.1:80",
                 "proto": "tcp", "flags": "A", "seq": 1, "ack": "cookie+1"},     # version 2
       {"t": 5,  "kind": "update", "vip": "20.0.0.1:80/tcp", "pool": ["10.0.1.10:8080", "10.0.2.10:8080"]},
       {"t": 6,  "kind": "cpu", "learn": 2},        # learn: omitted or null = all visible
       {"t": 7,  "kind": "advance"},
       {"t": 8,  "kind": "expire"},
       {"t": 9,  "kind": "fault", "fault": "lose_learn", "index": 0},
       {"t": 9,  "kind": "fault", "fault": "delay_learn", "index": 0, "delay": 50},   # <= learn_delay_bound
       {"t": 9,  "kind": "fault", "fault": "late_learn", "index": 0, "delay": 500},   # > learn_delay_bound
       {"t": 9,  "kind": "fault", "fault": "cpu_restart"},
       {"t": 9,  "kind": "fault", "fault": "dip_fail", "dip": "10.0.1.10:8080"},
       {"t": 9,  "kind": "fault", "fault": "digest_delay", "duration": 2000000, "delay": 300000}]}

The last is a *nemesis* fault (``Nemesis``): one of ``NEMESIS_FAULTS``, run only by the
black-box target, which acts on the real switch and controller for ``duration`` µs.

Loading reads the file through ``silkcheck.inputs`` (size limit, strict UTF-8
and strict JSON), checks everything and names the file, the event and the
field of the first problem (``TraceError``); values are quoted only briefly.

Reactive packets (version 2). A client cannot know its SYN cookie before the
switch sends it, so a packet's ``ack`` may name a cookie instead of a number:
``"cookie+1"`` is the sequence number of the last SYN-ACK the switch sent to this
packet's own 5-tuple, plus one (a legitimate client's answer);
``"cookie(SRC->DST)+N"`` takes the SYN-ACK sent to another 5-tuple of the same
protocol (an attacker replaying a cookie it saw at an address it owns), any
offset ``+N``/``-N`` or none (a guess near it), and ``"cookie(SRC->DST)^0xHEX+1"``
XORs the cookie with a constant first (an attacker computing another flow's
cookie from one it saw: a CRC is affine, see ``proofs/cookie.py``). The runner computes the number
when the packet is sent, from what that run's target sent (``CookieAck``,
``silkcheck.targets.model.Driver``), so the same trace means the same on every
target and under every mutant.

Single CPU writes (version 2 too): packets between the switch CPU's table writes. An event that sets
the CPU to work (``update``, ``cpu``, ``advance``, ``expire``, the ``cpu_restart``
and ``dip_fail`` faults) may say ``"writes": k``: only the first k of the writes
it makes take effect then; each ``{"kind": "write", "count": n}`` event (n = 1 if
omitted) applies the next n, and packets in between see the tables half written.
Without ``writes`` (every version-1 trace) a CPU action's writes all take effect at
once. A trace is saved with the lowest version that holds its events.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from model import events as ev
from model.config import Config, ConfigError
from model.types import (
    PROTO_BY_NUMBER,
    PROTO_NAMES,
    PROTO_TCP,
    Dip,
    FiveTuple,
    Packet,
    Vip,
    flags_str,
    ip_str,
    parse_flags,
    parse_ip,
)
from silkcheck.inputs import TRACE_MAX_BYTES, InputError, ascii_int, brief, parse_json, read_text

NEMESIS_FAULTS = ("controller_pause", "controller_kill", "digest_delay", "digest_drop", "write_delay")
"""Faults of the black-box target's nemesis: pause the controller process, kill it (restarted
after ``duration``), delay or drop the digests it receives, slow its table writes."""
NEMESIS_DELAYED = ("digest_delay", "write_delay")

FORMAT = "silkcheck-trace"
VERSION = 1
"""The version of a trace without reactive packets."""
REACTIVE_VERSION = 2
"""The version that added reactive packets (``CookieAck``)."""
VERSIONS = (VERSION, REACTIVE_VERSION)
WRITES_VERSION = 2
"""The version that added single CPU writes (``writes`` and ``write`` events)."""
EXPECTATIONS = ("pass", "fail")


class TraceError(InputError):
    """A trace that cannot be loaded, with where and why."""


class Nemesis(NamedTuple):
    """A fault on the real switch and controller (black-box target only), lasting ``duration`` µs."""

    t: int
    fault: str
    duration: int
    delay: int = 0
    """µs each digest or table write is held back (digest_delay, write_delay)."""


class CookieAck(NamedTuple):
    """A packet whose ack number is computed when it is sent: the cookie (sequence number) of the
    last SYN-ACK the switch sent to ``cookie_of``, XOR ``xor``, plus ``offset``, modulo 2**32.

    A legitimate client answers its own SYN-ACK (``cookie_of`` is the packet's own 5-tuple,
    offset 1); an attacker replays a cookie it saw at a flow of its own from another 5-tuple,
    guesses near it (another offset), or computes another flow's cookie from it (``xor``).
    ``packet.ack`` is replaced when the packet is sent."""

    t: int
    packet: Packet
    cookie_of: FiveTuple
    offset: int = 1
    xor: int = 0

    def sent_with(self, cookie: int) -> ev.PacketArrives:
        """The packet as sent, answering ``cookie``."""
        return ev.PacketArrives(self.t, self.packet._replace(ack=((cookie ^ self.xor) + self.offset) & 0xFFFFFFFF))


TraceEvent = ev.Event | CookieAck | Nemesis
"""What a trace holds: the model's events, packets the runner completes (``CookieAck``), and
faults on a real switch and controller (``Nemesis``, black-box target only)."""
PacketEvent = ev.PacketArrives | CookieAck


@dataclass
class Trace:
    config: Config
    vips: dict[Vip, tuple[Dip, ...]]
    events: list[TraceEvent] = field(default_factory=list)
    name: str = ""
    description: str = ""
    expect: str | None = None
    source: str = ""
    """The file it was loaded from ("" if built in memory): what errors found while running it name."""

    @property
    def packets(self) -> list[PacketEvent]:
        return [e for e in self.events if isinstance(e, ev.PacketArrives | CookieAck)]

    @property
    def reactive(self) -> bool:
        return any(isinstance(e, CookieAck) for e in self.events)


# ---------------------------------------------------------------- text forms


def dip_text(dip: Dip) -> str:
    return f"{ip_str(dip.ip)}:{dip.port}"


def vip_text(vip: Vip) -> str:
    return f"{ip_str(vip.ip)}:{vip.port}/{PROTO_BY_NUMBER[vip.proto]}"


def _parse_endpoint(text: object) -> tuple[int, int]:
    if not isinstance(text, str):
        raise ValueError(f'expected "IP:PORT", got {brief(text)}')
    return _endpoint(text)


@functools.lru_cache(maxsize=1 << 16)
def _endpoint(text: str) -> tuple[int, int]:
    """An "IP:PORT" parsed once: traces name the same endpoints again and again (errors are not cached)."""
    if text.count(":") != 1:
        raise ValueError(f'expected "IP:PORT", got {brief(text)}')
    host, port_text = text.split(":")
    try:
        ip = parse_ip(host)
    except ValueError:
        raise ValueError(f"{brief(host)} is not an IPv4 address") from None
    port = _port(port_text)
    if port is None:
        raise ValueError(f"port {brief(port_text)} is not in 0..65535")
    return ip, port


def _port(text: str) -> int | None:
    """A port of at most 5 ASCII digits (no sign, no other script's digits), or None."""
    if not 1 <= len(text) <= 5 or text[0] in "+-":
        return None
    try:
        port = ascii_int(text)
    except ValueError:
        return None
    return port if port <= 0xFFFF else None


def _parse_proto(text: object) -> int:
    if not isinstance(text, str) or text not in PROTO_NAMES:
        raise ValueError(f"expected one of {', '.join(PROTO_NAMES)}, got {brief(text)}")
    return PROTO_NAMES[text]  # type: ignore[index]


def parse_dip(text: object) -> Dip:
    return Dip(*_parse_endpoint(text))


def parse_vip(text: object) -> Vip:
    if not isinstance(text, str) or text.count("/") != 1:
        raise ValueError(f'expected "IP:PORT/tcp" or "IP:PORT/udp", got {brief(text)}')
    endpoint, proto = text.split("/")
    return Vip(*_parse_endpoint(endpoint), _parse_proto(proto))


def parse_pool_text(text: str) -> tuple[Dip, ...]:
    """A pool written on the command line: ``DIP,DIP,...``."""
    pool = tuple(parse_dip(item.strip()) for item in text.split(",") if item.strip())
    if not pool:
        raise ValueError(f"pool {brief(text)} names no DIP")
    if len(set(pool)) != len(pool):
        raise ValueError(f"pool {brief(text)} lists a DIP twice")
    return pool


# ---------------------------------------------------------------- loading


class _Reader:
    """Field access that reports where a problem is."""

    def __init__(self, source: str, where: str, data: object) -> None:
        self.source = source
        self.where = where
        if not isinstance(data, dict):
            self.fail(f"expected a JSON object, got {type(data).__name__}")
        self.data: dict[str, Any] = data  # type: ignore[assignment]
        self.used: set[str] = set()

    def fail(self, message: str, name: str | None = None) -> None:
        place = f"{self.where}.{name}" if name else self.where
        raise TraceError(f"{self.source}: {place}: {message}")

    def get(
        self,
        name: str,
        parse: Callable[[Any], Any],
        default: object = ...,
    ) -> Any:
        self.used.add(name)
        if name not in self.data:
            if default is ...:
                self.fail("missing required field", name)
            return default
        try:
            return parse(self.data[name])
        except (ValueError, TypeError, ConfigError) as error:
            self.fail(str(error), name)

    def done(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            self.fail(f"unknown field(s) {_some(brief(name) if len(name) > 40 else name for name in extra)}")


def _some(names: Iterable[str], limit: int = 5) -> str:
    """The first ``limit`` names, and how many more: a message about one of 100,000 DIPs lists a few."""
    names = list(names)
    more = f" and {len(names) - limit:,} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _int_in(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if type(value) is not int:
            raise ValueError(f"expected an integer, got {brief(value)}")
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range [{low}, {high}]")
        return value

    return parse


def _learn_delay(low: int, high: int, bound: int, other: str) -> Callable[[Any], int]:
    """A learn delay within [low, high], one side of the config's learn-delay bound; an error on the
    other side names the fault that takes it."""
    within = _int_in(low, high)

    def parse(value: Any) -> int:
        try:
            return within(value)
        except ValueError as e:
            if type(value) is int and 0 <= value <= 1 << 31:
                raise ValueError(f"{e}: learn_delay_bound is {bound}, use {other} for this delay") from None
            raise

    return parse


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {brief(value)}")
    return value


def _pool(value: Any) -> tuple[Dip, ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of DIPs, got {brief(value)}")
    if not value:
        raise ValueError("the pool is empty: a VIP needs at least one DIP")
    pool = tuple(parse_dip(x) for x in value)
    if len(set(pool)) != len(pool):
        raise ValueError("the pool lists a DIP twice")
    return pool


def _expect(value: Any) -> str:
    if value not in EXPECTATIONS:
        raise ValueError(f"expected one of {', '.join(EXPECTATIONS)}, got {brief(value)}")
    return value


def _pool_within(config: Config) -> Callable[[Any], tuple[Dip, ...]]:
    def parse(value: Any) -> tuple[Dip, ...]:
        if isinstance(value, list) and len(value) > config.max_pool_size:
            raise ValueError(f"{len(value):,} DIPs; a pool holds at most {config.max_pool_size:,} in the P4 program "
                             "(16-bit pool size, config dip_pool_capacity)")  # fmt: skip
        return _pool(value)

    return parse


U32 = _int_in(0, 0xFFFFFFFF)
TIME_MAX = 1 << 62
TIME = _int_in(0, TIME_MAX)
WRITE_COUNT = _int_in(0, 1 << 31)


def load(path: str | Path) -> Trace:
    try:
        text = read_text(path, "trace", TRACE_MAX_BYTES)
    except InputError as error:
        raise TraceError(str(error)) from None
    return loads(text, str(path))


def loads(text: str, source: str = "<trace>") -> Trace:
    try:
        data = parse_json(text, source)
    except InputError as error:
        raise TraceError(str(error)) from None
    return from_dict(data, source)


def from_dict(data: object, source: str = "<trace>") -> Trace:
    top = _Reader(source, "trace", data)
    fmt = top.get("format", _string)
    if fmt != FORMAT:
        top.fail(f"expected {FORMAT!r}, got {brief(fmt)}", "format")
    version = top.get("version", _int_in(0, 1 << 31))
    if version not in VERSIONS:
        top.fail(f"this silkcheck reads versions {VERSION} to {VERSIONS[-1]}, the trace is version {version}",
                 "version")  # fmt: skip
    name = top.get("name", _string, "")
    description = top.get("description", _string, "")
    expect = top.get("expect", _expect, None)
    config_data = top.get("config", lambda x: x, {})
    if not isinstance(config_data, dict):
        top.fail(f"expected a JSON object, got {brief(config_data)}", "config")
    try:
        config = Config.from_dict(config_data)
    except (ConfigError, TypeError) as error:
        top.fail(str(error), "config")
    vips_data = top.get("vips", lambda x: x)
    if not isinstance(vips_data, list) or not vips_data:
        top.fail("expected a non-empty list of VIPs", "vips")
    if len(vips_data) > config.vip_capacity:
        top.fail(f"{len(vips_data):,} VIPs; the P4 program's VIPTable holds {config.vip_capacity:,} "
                 "(config vip_capacity)", "vips")  # fmt: skip
    vips: dict[Vip, tuple[Dip, ...]] = {}
    for i, item in enumerate(vips_data):
        r = _Reader(source, f"vips[{i}]", item)
        vip = r.get("vip", parse_vip)
        if vip in vips:
            r.fail(f"VIP {vip_text(vip)} is listed twice", "vip")
        vips[vip] = r.get("pool", _pool_within(config))
        r.done()
    installed = sum(len(pool) for pool in vips.values())
    if installed > config.dip_pool_capacity:
        top.fail(f"the initial pools hold {installed:,} DIPs together; the P4 program's DIPPoolTable holds "
                 f"{config.dip_pool_capacity:,} (config dip_pool_capacity)", "vips")  # fmt: skip
    events_data = top.get("events", lambda x: x)
    if not isinstance(events_data, list):
        top.fail("expected a list of events", "events")
    top.done()

    events = EventReader(source, config, vips, version)
    return Trace(config, vips, [events.read(i, item) for i, item in enumerate(events_data)], name, description,
                 expect, source)  # fmt: skip


class EventReader:
    """Reads a trace's events one at a time, in order, checking each against the header and the
    events before it (so a trace too long to hold can be read as a stream)."""

    def __init__(self, source: str, config: Config, vips: dict[Vip, tuple[Dip, ...]], version: int = VERSION) -> None:
        self.source = source
        self.context = _Context(config, vips, {dip for pool in vips.values() for dip in pool}, version)
        self.last_t = 0

    def read(self, i: int, item: object) -> TraceEvent:
        r = _Reader(self.source, f"events[{i}]", item)
        kind = r.get("kind", _string)
        if kind not in _EVENT_READERS:
            r.fail(f"unknown event kind {brief(kind)}; expected one of {', '.join(_EVENT_READERS)}", "kind")
        r.where = f"events[{i}] ({kind})"
        t = r.get("t", TIME)
        if t < self.last_t:
            r.fail(f"time goes backwards: {t} after {self.last_t}", "t")
        self.last_t = t
        event = _EVENT_READERS[kind](r, t, self.context)
        if isinstance(event, ev.CPU_ACTIONS):
            event = event._replace(writes=self.context.since_writes(r).get("writes", WRITE_COUNT, None))
        r.done()
        return event


@dataclass
class _Context:
    """What later events are checked against: the config, the VIPs, every DIP named so far."""

    config: Config
    vips: dict[Vip, tuple[Dip, ...]]
    dips: set[Dip]
    version: int

    def since_writes(self, r: _Reader) -> _Reader:
        """``r``, once it is known that its event may speak of single writes (version 2 on)."""
        if self.version < WRITES_VERSION and ("writes" in r.data or r.data.get("kind") == "write"):
            field = "writes" if "writes" in r.data else "kind"
            r.fail(f"single CPU writes need trace version {WRITES_VERSION} (this trace is {self.version})", field)
        return r

    def known_vip(self, vip: Vip) -> str | None:
        """None if ``vip`` is in the trace, else what is wrong."""
        if vip in self.vips:
            return None
        return f"unknown VIP {vip_text(vip)} (known: {_some(vip_text(v) for v in self.vips)})"


def _read_packet(r: _Reader, t: int, c: _Context) -> TraceEvent:
    src = r.get("src", _parse_endpoint)
    dst = r.get("dst", _parse_endpoint)
    proto = r.get("proto", _parse_proto)
    flags = r.get("flags", lambda x: parse_flags(_string(x)), 0)
    if flags and proto != PROTO_NAMES["tcp"]:
        r.fail("only TCP packets have flags", "flags")
    ft = FiveTuple(src[0], dst[0], src[1], dst[1], proto)
    problem = c.known_vip(ft.vip)
    if problem:
        r.fail(problem, "dst")
    seq = r.get("seq", U32, 0)
    ack = r.get("ack", lambda x: _parse_cookie_ack(x, ft) if isinstance(x, str) else U32(x), 0)
    if isinstance(ack, int):
        return ev.PacketArrives(t, Packet(ft, flags, seq, ack))
    cookie_of, xor, offset = ack
    if c.version < REACTIVE_VERSION:
        r.fail(f"a reactive ack needs trace version {REACTIVE_VERSION}; the trace is version {c.version}", "ack")
    if proto != PROTO_TCP:
        r.fail("only TCP packets answer a SYN cookie", "ack")
    if not c.config.syn_auth:
        r.fail("config.syn_auth is false: the switch sends no SYN-ACK whose cookie this could answer", "ack")
    problem = c.known_vip(cookie_of.vip)
    if problem:
        r.fail(f"the cookie's flow: {problem}", "ack")
    return CookieAck(t, Packet(ft, flags, seq), cookie_of, offset, xor)


_COOKIE_ACK = re.compile(
    r"cookie(?:\((?P<src>[^()]*)->(?P<dst>[^()]*)\))?(?:\^0x(?P<xor>[0-9a-f]{1,8}))?(?P<offset>[+-][0-9]{1,10})?"
)
COOKIE_ACK_FORMS = '"cookie", "cookie+N", "cookie-N", "cookie(SRC_IP:PORT->DST_IP:PORT)+N" or "cookie(...)^0xHEX+N"'


def _parse_cookie_ack(text: str, ft: FiveTuple) -> tuple[FiveTuple, int, int]:
    """``"cookie+1"``: (the packet's own 5-tuple, no xor, +1); ``"cookie(A:p->V:q)^0xff-3"``: (that
    5-tuple, 0xff, -3)."""
    match = _COOKIE_ACK.fullmatch(text)
    if match is None:
        raise ValueError(f"expected an integer or one of {COOKIE_ACK_FORMS}, got {text[:80]!r}")
    offset = int(match["offset"] or 0)
    if not -0xFFFFFFFF <= offset <= 0xFFFFFFFF:
        raise ValueError(f"offset {offset} is out of range [-4294967295, 4294967295]")
    xor = int(match["xor"] or "0", 16)
    if match["src"] is None:
        return ft, xor, offset
    (src_ip, src_port), (dst_ip, dst_port) = _parse_endpoint(match["src"]), _parse_endpoint(match["dst"])
    return FiveTuple(src_ip, dst_ip, src_port, dst_port, ft.proto), xor, offset


def cookie_ack_text(e: CookieAck) -> str:
    """The ``ack`` field of a reactive packet."""
    ref = e.cookie_of
    at = "" if ref == e.packet.ft else f"({ip_str(ref.src_ip)}:{ref.src_port}->{ip_str(ref.dst_ip)}:{ref.dst_port})"
    xor = f"^{e.xor:#010x}" if e.xor else ""
    return f"cookie{at}{xor}{e.offset:+d}" if e.offset else f"cookie{at}{xor}"


def _read_update(r: _Reader, t: int, c: _Context) -> ev.Event:
    vip = r.get("vip", parse_vip)
    if vip not in c.vips:
        r.fail(f"unknown VIP {vip_text(vip)}", "vip")
    pool = r.get("pool", _pool_within(c.config))
    c.dips.update(pool)
    return ev.UpdateRequested(t, vip, pool)


def _read_cpu(r: _Reader, t: int, c: _Context) -> ev.Event:
    learn = r.get("learn", lambda x: None if x is None else _int_in(1, 1 << 31)(x), None)
    return ev.CpuLearns(t, learn)


def _read_writes(r: _Reader, t: int, c: _Context) -> ev.Event:
    return ev.CpuWrites(t, c.since_writes(r).get("count", _int_in(1, 1 << 31), 1))


def _read_fault(r: _Reader, t: int, c: _Context) -> ev.Event | Nemesis:
    fault = r.get("fault", _string)
    if fault == "lose_learn":
        return ev.LearnLost(t, r.get("index", _int_in(0, 1 << 31)))
    if fault in ("delay_learn", "late_learn"):
        index = r.get("index", _int_in(0, 1 << 31))
        bound = c.config.learn_delay_bound
        if fault == "delay_learn":
            return ev.LearnDelayed(t, index, r.get("delay", _learn_delay(0, bound, bound, "late_learn")))
        return ev.LearnLate(t, index, r.get("delay", _learn_delay(bound + 1, 1 << 31, bound, "delay_learn")))
    if fault == "cpu_restart":
        return ev.CpuRestarts(t)
    if fault == "dip_fail":
        dip = r.get("dip", parse_dip)
        if dip not in c.dips:
            r.fail(f"{dip_text(dip)} is in no pool so far (known: {_some(sorted(dip_text(x) for x in c.dips))})", "dip")
        return ev.DipFails(t, dip)
    if fault in NEMESIS_FAULTS:
        duration = r.get("duration", TIME)
        return Nemesis(t, fault, duration, r.get("delay", TIME) if fault in NEMESIS_DELAYED else 0)
    known = ", ".join(("lose_learn", "delay_learn", "late_learn", "cpu_restart", "dip_fail", *NEMESIS_FAULTS))
    r.fail(f"unknown fault {brief(fault)}; expected one of {known}", "fault")
    raise AssertionError  # unreachable: fail raises


_EVENT_READERS: dict[str, Callable[[_Reader, int, _Context], TraceEvent]] = {
    "packet": _read_packet,
    "update": _read_update,
    "cpu": _read_cpu,
    "advance": lambda r, t, c: ev.CpuAdvances(t),
    "expire": lambda r, t, c: ev.CpuExpires(t),
    "fault": _read_fault,
    "write": _read_writes,
}


# ---------------------------------------------------------------- saving


def event_to_dict(e: TraceEvent) -> dict[str, Any]:
    if isinstance(e, CookieAck):
        return event_to_dict(ev.PacketArrives(e.t, e.packet._replace(ack=0))) | {"ack": cookie_ack_text(e)}
    out = _event_fields(e)
    if isinstance(e, ev.CPU_ACTIONS) and e.writes is not None:
        out["writes"] = e.writes
    return out


def _event_fields(e: ev.Event) -> dict[str, Any]:
    match e:
        case ev.PacketArrives(t, Packet(ft, flags, seq, ack)):
            out: dict[str, Any] = {
                "t": t, "kind": "packet",
                "src": f"{ip_str(ft.src_ip)}:{ft.src_port}", "dst": f"{ip_str(ft.dst_ip)}:{ft.dst_port}",
                "proto": PROTO_BY_NUMBER[ft.proto],
            }  # fmt: skip
            if flags:
                out["flags"] = flags_str(flags)
            if seq:
                out["seq"] = seq
            if ack:
                out["ack"] = ack
            return out
        case ev.UpdateRequested(t, vip, pool, _):
            return {"t": t, "kind": "update", "vip": vip_text(vip), "pool": [dip_text(x) for x in pool]}
        case ev.CpuLearns(t, limit, _):
            return {"t": t, "kind": "cpu"} if limit is None else {"t": t, "kind": "cpu", "learn": limit}
        case ev.CpuAdvances(t, _):
            return {"t": t, "kind": "advance"}
        case ev.CpuExpires(t, _):
            return {"t": t, "kind": "expire"}
        case ev.LearnLost(t, index):
            return {"t": t, "kind": "fault", "fault": "lose_learn", "index": index}
        case ev.LearnDelayed(t, index, delay):
            return {"t": t, "kind": "fault", "fault": "delay_learn", "index": index, "delay": delay}
        case ev.LearnLate(t, index, delay):
            return {"t": t, "kind": "fault", "fault": "late_learn", "index": index, "delay": delay}
        case ev.CpuRestarts(t, _):
            return {"t": t, "kind": "fault", "fault": "cpu_restart"}
        case ev.DipFails(t, dip, _):
            return {"t": t, "kind": "fault", "fault": "dip_fail", "dip": dip_text(dip)}
        case ev.CpuWrites(t, count):
            return {"t": t, "kind": "write"} if count == 1 else {"t": t, "kind": "write", "count": count}
        case Nemesis(t, fault, duration, delay):
            out = {"t": t, "kind": "fault", "fault": fault, "duration": duration}
            return out | {"delay": delay} if fault in NEMESIS_DELAYED else out
    raise TypeError(f"not an event: {e!r}")


def lowest_version(events: list[TraceEvent]) -> int:
    """The oldest version that holds ``events`` (older silkchecks read it too)."""
    needs = [REACTIVE_VERSION] * any(isinstance(e, CookieAck) for e in events)
    needs += [WRITES_VERSION] * any(
        isinstance(e, ev.CpuWrites) or (isinstance(e, ev.CPU_ACTIONS) and e.writes is not None) for e in events
    )
    return max(needs, default=VERSION)


def to_dict(trace: Trace) -> dict[str, Any]:
    defaults = Config().to_dict()
    out: dict[str, Any] = {"format": FORMAT, "version": lowest_version(trace.events)}
    if trace.name:
        out["name"] = trace.name
    if trace.description:
        out["description"] = trace.description
    if trace.expect:
        out["expect"] = trace.expect
    out["config"] = {k: v for k, v in trace.config.to_dict().items() if defaults[k] != v}
    out["vips"] = [{"vip": vip_text(v), "pool": [dip_text(x) for x in p]} for v, p in trace.vips.items()]
    out["events"] = [event_to_dict(e) for e in trace.events]
    return out


class TraceWriter:
    """A trace as JSON with one event per line (so traces diff well), written event by event:
    the header first, so a trace too long to hold in memory can be saved as it streams by
    (``version``: the one its header names, by default the lowest that holds ``trace.events``)."""

    def __init__(self, trace: Trace, out: TextIO, version: int | None = None) -> None:
        self.out = out
        data = to_dict(dataclasses.replace(trace, events=[]))
        del data["events"]
        data["version"] = lowest_version(trace.events) if version is None else version
        out.write(json.dumps(data, indent=2)[:-2] + ',\n  "events": [\n')
        self.separator = ""

    def write(self, event: TraceEvent) -> None:
        self.out.write(self.separator + "    " + json.dumps(event_to_dict(event)))
        self.separator = ",\n"

    def close(self) -> None:
        self.out.write("\n  ]\n}\n")


def dumps(trace: Trace) -> str:
    out = io.StringIO()
    writer = TraceWriter(trace, out)
    for event in trace.events:
        writer.write(event)
    writer.close()
    return out.getvalue()


def save(trace: Trace, path: str | Path) -> None:
    Path(path).write_text(dumps(trace))
