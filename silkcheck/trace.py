"""The trace language: one versioned JSON format every part of silkcheck speaks.

A trace is a config header, the VIPs with their initial pools, and timestamped
events (ticks = µs, non-decreasing)::

    {"format": "silkcheck-trace", "version": 1, "name": "...", "expect": "pass",
     "config": {"digest_bits": 24, ...},          # omitted fields take defaults
     "vips": [{"vip": "20.0.0.1:80/tcp", "pool": ["10.0.1.10:8080"]}],
     "events": [
       {"t": 0,  "kind": "packet", "src": "1.2.3.4:1000", "dst": "20.0.0.1:80",
                 "proto": "tcp", "flags": "S", "seq": 0, "ack": 0},
       {"t": 5,  "kind": "update", "vip": "20.0.0.1:80/tcp", "pool": ["10.0.1.10:8080", "10.0.2.10:8080"]},
       {"t": 6,  "kind": "cpu", "learn": 2},        # learn: omitted or null = all visible
       {"t": 7,  "kind": "advance"},
       {"t": 8,  "kind": "expire"},
       {"t": 9,  "kind": "fault", "fault": "lose_learn", "index": 0},
       {"t": 9,  "kind": "fault", "fault": "delay_learn", "index": 0, "delay": 500},
       {"t": 9,  "kind": "fault", "fault": "cpu_restart"},
       {"t": 9,  "kind": "fault", "fault": "dip_fail", "dip": "10.0.1.10:8080"},
       {"t": 9,  "kind": "fault", "fault": "digest_delay", "duration": 2000000, "delay": 300000}]}

The last is a *nemesis* fault (``Nemesis``): one of ``NEMESIS_FAULTS``, run only by the
black-box target, which acts on the real switch and controller for ``duration`` µs.

Loading checks everything and names the file, the event and the field of the
first problem (``TraceError``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from model import events as ev
from model.config import Config, ConfigError
from model.types import (
    PROTO_BY_NUMBER,
    PROTO_NAMES,
    Dip,
    FiveTuple,
    Packet,
    Vip,
    flags_str,
    ip_str,
    parse_flags,
    parse_ip,
)

NEMESIS_FAULTS = ("controller_pause", "controller_kill", "digest_delay", "digest_drop", "write_delay")
"""Faults of the black-box target's nemesis: pause the controller process, kill it (restarted
after ``duration``), delay or drop the digests it receives, slow its table writes."""
NEMESIS_DELAYED = ("digest_delay", "write_delay")

FORMAT = "silkcheck-trace"
VERSION = 1
EXPECTATIONS = ("pass", "fail")


class TraceError(ValueError):
    """A trace that cannot be loaded, with where and why."""


class Nemesis(NamedTuple):
    """A fault on the real switch and controller (black-box target only), lasting ``duration`` µs."""

    t: int
    fault: str
    duration: int
    delay: int = 0
    """µs each digest or table write is held back (digest_delay, write_delay)."""


@dataclass
class Trace:
    config: Config
    vips: dict[Vip, tuple[Dip, ...]]
    events: list[ev.Event | Nemesis] = field(default_factory=list)
    name: str = ""
    description: str = ""
    expect: str | None = None

    @property
    def packets(self) -> list[ev.PacketArrives]:
        return [e for e in self.events if isinstance(e, ev.PacketArrives)]


# ---------------------------------------------------------------- text forms


def dip_text(dip: Dip) -> str:
    return f"{ip_str(dip.ip)}:{dip.port}"


def vip_text(vip: Vip) -> str:
    return f"{ip_str(vip.ip)}:{vip.port}/{PROTO_BY_NUMBER[vip.proto]}"


def _parse_endpoint(text: object) -> tuple[int, int]:
    if not isinstance(text, str) or text.count(":") != 1:
        raise ValueError(f'expected "IP:PORT", got {text!r}')
    host, port_text = text.split(":")
    try:
        ip = parse_ip(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IPv4 address") from None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 0xFFFF:
        raise ValueError(f"port {port_text!r} is not in 0..65535")
    return ip, int(port_text)


def _parse_proto(text: object) -> int:
    if text not in PROTO_NAMES:
        raise ValueError(f"expected one of {', '.join(PROTO_NAMES)}, got {text!r}")
    return PROTO_NAMES[text]  # type: ignore[index]


def parse_dip(text: object) -> Dip:
    return Dip(*_parse_endpoint(text))


def parse_vip(text: object) -> Vip:
    if not isinstance(text, str) or text.count("/") != 1:
        raise ValueError(f'expected "IP:PORT/tcp" or "IP:PORT/udp", got {text!r}')
    endpoint, proto = text.split("/")
    return Vip(*_parse_endpoint(endpoint), _parse_proto(proto))


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
            self.fail(f"unknown field(s) {', '.join(extra)}")


def _int_in(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if type(value) is not int:
            raise ValueError(f"expected an integer, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range [{low}, {high}]")
        return value

    return parse


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _pool(value: Any) -> tuple[Dip, ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of DIPs, got {value!r}")
    if not value:
        raise ValueError("the pool is empty: a VIP needs at least one DIP")
    pool = tuple(parse_dip(x) for x in value)
    if len(set(pool)) != len(pool):
        raise ValueError("the pool lists a DIP twice")
    return pool


def _expect(value: Any) -> str:
    if value not in EXPECTATIONS:
        raise ValueError(f"expected one of {', '.join(EXPECTATIONS)}, got {value!r}")
    return value


U32 = _int_in(0, 0xFFFFFFFF)
TIME = _int_in(0, 1 << 62)


def load(path: str | Path) -> Trace:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise TraceError(f"{path}: cannot read: {error.strerror}") from None
    return loads(text, str(path))


def loads(text: str, source: str = "<trace>") -> Trace:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise TraceError(f"{source}: line {error.lineno} column {error.colno}: invalid JSON: {error.msg}") from None
    return from_dict(data, source)


def from_dict(data: object, source: str = "<trace>") -> Trace:
    top = _Reader(source, "trace", data)
    fmt = top.get("format", _string)
    if fmt != FORMAT:
        top.fail(f"expected {FORMAT!r}, got {fmt!r}", "format")
    version = top.get("version", _int_in(0, 1 << 31))
    if version != VERSION:
        top.fail(f"this silkcheck reads version {VERSION}, the trace is version {version}", "version")
    name = top.get("name", _string, "")
    description = top.get("description", _string, "")
    expect = top.get("expect", _expect, None)
    config_data = top.get("config", lambda x: x, {})
    if not isinstance(config_data, dict):
        top.fail(f"expected a JSON object, got {config_data!r}", "config")
    try:
        config = Config.from_dict(config_data)
    except (ConfigError, TypeError) as error:
        top.fail(str(error), "config")
    vips_data = top.get("vips", lambda x: x)
    if not isinstance(vips_data, list) or not vips_data:
        top.fail("expected a non-empty list of VIPs", "vips")
    vips: dict[Vip, tuple[Dip, ...]] = {}
    for i, item in enumerate(vips_data):
        r = _Reader(source, f"vips[{i}]", item)
        vip = r.get("vip", parse_vip)
        if vip in vips:
            r.fail(f"VIP {vip_text(vip)} is listed twice", "vip")
        vips[vip] = r.get("pool", _pool)
        r.done()
    events_data = top.get("events", lambda x: x)
    if not isinstance(events_data, list):
        top.fail("expected a list of events", "events")
    top.done()

    events: list[ev.Event | Nemesis] = []
    context = _Context(config, vips, {dip for pool in vips.values() for dip in pool})
    last_t = 0
    for i, item in enumerate(events_data):
        r = _Reader(source, f"events[{i}]", item)
        kind = r.get("kind", _string)
        if kind not in _EVENT_READERS:
            r.fail(f"unknown event kind {kind!r}; expected one of {', '.join(_EVENT_READERS)}", "kind")
        r.where = f"events[{i}] ({kind})"
        t = r.get("t", TIME)
        if t < last_t:
            r.fail(f"time goes backwards: {t} after {last_t}", "t")
        last_t = t
        event = _EVENT_READERS[kind](r, t, context)
        r.done()
        events.append(event)
    return Trace(config, vips, events, name, description, expect)


@dataclass
class _Context:
    """What later events are checked against: the config, the VIPs, every DIP named so far."""

    config: Config
    vips: dict[Vip, tuple[Dip, ...]]
    dips: set[Dip]


def _read_packet(r: _Reader, t: int, c: _Context) -> ev.Event:
    src = r.get("src", _parse_endpoint)
    dst = r.get("dst", _parse_endpoint)
    proto = r.get("proto", _parse_proto)
    flags = r.get("flags", lambda x: parse_flags(_string(x)), 0)
    if flags and proto != PROTO_NAMES["tcp"]:
        r.fail("only TCP packets have flags", "flags")
    ft = FiveTuple(src[0], dst[0], src[1], dst[1], proto)
    if ft.vip not in c.vips:
        r.fail(f"unknown VIP {vip_text(ft.vip)} (known: {', '.join(vip_text(v) for v in c.vips)})", "dst")
    return ev.PacketArrives(t, Packet(ft, flags, r.get("seq", U32, 0), r.get("ack", U32, 0)))


def _read_update(r: _Reader, t: int, c: _Context) -> ev.Event:
    vip = r.get("vip", parse_vip)
    if vip not in c.vips:
        r.fail(f"unknown VIP {vip_text(vip)}", "vip")
    pool = r.get("pool", _pool)
    c.dips.update(pool)
    return ev.UpdateRequested(t, vip, pool)


def _read_cpu(r: _Reader, t: int, c: _Context) -> ev.Event:
    learn = r.get("learn", lambda x: None if x is None else _int_in(1, 1 << 31)(x), None)
    return ev.CpuLearns(t, learn)


def _read_fault(r: _Reader, t: int, c: _Context) -> ev.Event:
    fault = r.get("fault", _string)
    if fault == "lose_learn":
        return ev.LearnLost(t, r.get("index", _int_in(0, 1 << 31)))
    if fault == "delay_learn":
        index = r.get("index", _int_in(0, 1 << 31))
        return ev.LearnDelayed(t, index, r.get("delay", _int_in(0, c.config.learn_delay_bound)))
    if fault == "cpu_restart":
        return ev.CpuRestarts(t)
    if fault == "dip_fail":
        dip = r.get("dip", parse_dip)
        if dip not in c.dips:
            known = ", ".join(sorted(dip_text(x) for x in c.dips))
            r.fail(f"{dip_text(dip)} is in no pool so far (known: {known})", "dip")
        return ev.DipFails(t, dip)
    if fault in NEMESIS_FAULTS:
        duration = r.get("duration", TIME)
        return Nemesis(t, fault, duration, r.get("delay", TIME) if fault in NEMESIS_DELAYED else 0)
    known = ", ".join(("lose_learn", "delay_learn", "cpu_restart", "dip_fail", *NEMESIS_FAULTS))
    r.fail(f"unknown fault {fault!r}; expected one of {known}", "fault")
    raise AssertionError  # unreachable: fail raises


_EVENT_READERS: dict[str, Callable[[_Reader, int, _Context], ev.Event]] = {
    "packet": _read_packet,
    "update": _read_update,
    "cpu": _read_cpu,
    "advance": lambda r, t, c: ev.CpuAdvances(t),
    "expire": lambda r, t, c: ev.CpuExpires(t),
    "fault": _read_fault,
}


# ---------------------------------------------------------------- saving


def event_to_dict(e: ev.Event | Nemesis) -> dict[str, Any]:
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
        case ev.UpdateRequested(t, vip, pool):
            return {"t": t, "kind": "update", "vip": vip_text(vip), "pool": [dip_text(x) for x in pool]}
        case ev.CpuLearns(t, limit):
            return {"t": t, "kind": "cpu"} if limit is None else {"t": t, "kind": "cpu", "learn": limit}
        case ev.CpuAdvances(t):
            return {"t": t, "kind": "advance"}
        case ev.CpuExpires(t):
            return {"t": t, "kind": "expire"}
        case ev.LearnLost(t, index):
            return {"t": t, "kind": "fault", "fault": "lose_learn", "index": index}
        case ev.LearnDelayed(t, index, delay):
            return {"t": t, "kind": "fault", "fault": "delay_learn", "index": index, "delay": delay}
        case ev.CpuRestarts(t):
            return {"t": t, "kind": "fault", "fault": "cpu_restart"}
        case ev.DipFails(t, dip):
            return {"t": t, "kind": "fault", "fault": "dip_fail", "dip": dip_text(dip)}
        case Nemesis(t, fault, duration, delay):
            out = {"t": t, "kind": "fault", "fault": fault, "duration": duration}
            return out | {"delay": delay} if fault in NEMESIS_DELAYED else out
    raise TypeError(f"not an event: {e!r}")


def to_dict(trace: Trace) -> dict[str, Any]:
    defaults = Config().to_dict()
    out: dict[str, Any] = {"format": FORMAT, "version": VERSION}
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


def dumps(trace: Trace) -> str:
    """JSON with one event per line, so traces diff well."""
    data = to_dict(trace)
    events = data.pop("events")
    head = json.dumps(data, indent=2)[:-2]
    lines = ",\n".join("    " + json.dumps(e) for e in events)
    return f'{head},\n  "events": [\n{lines}\n  ]\n}}\n'


def save(trace: Trace, path: str | Path) -> None:
    Path(path).write_text(dumps(trace))
