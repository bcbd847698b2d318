"""Hostile inputs: malformed traces, captures, files and options for every subcommand.

Each input is a ``Case``: a command line, the files it names (bytes, or a
special file: FIFO, directory, ``/dev/zero``, a sparse file over the size
limit) and the exit code the README documents for it (2 for bad input). A case
runs as a user would run it, ``silkcheck.cli.main`` in a forked process of its
own, in a fresh directory, under a time limit and an address-space limit, and
is judged by what came back:

* ``clear error``: the documented exit code, a message, no traceback;
* ``traceback``: a Python traceback, exit code 3 (internal error) or a crash;
* ``hang``: the time limit, or memory exhausted;
* ``silently accepted``: a bad input that exited 0 or 1 as if it were fine;
* ``wrong exit code``: anything else.

Cases are drawn through a ``fuzz.scenario.Chooser``, so the same generators
serve Hypothesis (``tests/test_hostile.py`` draws a short run; Hypothesis
shrinks a failing case) and the campaign command ``silkcheck hostile``, which
also runs under Hypothesis and writes every case that was not a clear error,
with its files and output, to a directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzz.scenario import Chooser
from silkcheck import inputs
from silkcheck.trace import VERSIONS

CLEAR = "clear error"
TRACEBACK = "traceback"
HANG = "hang"
ACCEPTED = "silently accepted"
WRONG = "wrong exit code"
CLASSES = (CLEAR, TRACEBACK, HANG, ACCEPTED, WRONG)

BAD_INPUT = 2
MEMORY_LIMIT = 4 << 30
"""Address space a case may use: a command that reads /dev/zero into memory stops here, not at swap."""
ESCAPED = 99
"""The child's exit code when an exception escaped ``main`` itself."""


# ---------------------------------------------------------------- cases


class Special:
    """A file that is not a regular file with content."""

    FIFO = "fifo"
    DIRECTORY = "directory"
    DEV_ZERO = "/dev/zero"
    HUGE = "sparse file over the size limit"
    EMPTY_DIRECTORY = "empty directory"


FileSpec = bytes | str
"""Content of a regular file, or a ``Special`` kind."""


@dataclass(frozen=True)
class Case:
    kind: str
    """The class of malformation, e.g. ``trace/duplicate key``; the part before / is the family."""
    argv: tuple[str, ...]
    files: tuple[tuple[str, FileSpec], ...] = ()
    expect: int = BAD_INPUT
    malformed: bool = True
    """False for a valid control: a case that must pass (the harness is checked, too)."""

    @property
    def command(self) -> str:
        return self.argv[0] if self.argv else ""


def materialize(files: Sequence[tuple[str, FileSpec]], directory: Path) -> None:
    for name, spec in files:
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(spec, bytes):
            path.write_bytes(spec)
        elif spec == Special.FIFO:
            os.mkfifo(path)
        elif spec == Special.DIRECTORY:
            path.mkdir()
            (path / "inside.json").write_text("{}")
        elif spec == Special.EMPTY_DIRECTORY:
            path.mkdir()
        elif spec == Special.DEV_ZERO:
            path.symlink_to("/dev/zero")
        elif spec == Special.HUGE:
            with path.open("wb") as handle:
                handle.truncate(inputs.TRACE_MAX_BYTES + 1)
        else:
            raise ValueError(f"unknown file spec {spec!r}")


# ---------------------------------------------------------------- running one case


@dataclass
class Outcome:
    case: Case
    verdict: str
    code: int | None
    """The exit code, None for a hang."""
    stdout: str
    stderr: str
    seconds: float
    directory: Path


def _child(case: Case, directory: Path) -> None:
    """In the forked process: run the command as a user would, then leave without cleanup."""
    code = ESCAPED
    try:
        os.setpgid(0, 0)  # its own group, so that a hang is killed with everything it started
        os.chdir(directory)
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
        for fd, name in ((1, "stdout.txt"), (2, "stderr.txt")):
            os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
        sys.stdin = open(os.devnull)  # noqa: SIM115
        tempfile.tempdir = str(directory)  # where an internal error saves its traceback
        from silkcheck.cli import main

        code = main(list(case.argv))
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else BAD_INPUT
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def run_case(case: Case, workdir: Path, timeout: float) -> Outcome:
    directory = Path(tempfile.mkdtemp(prefix="case-", dir=workdir))
    materialize(case.files, directory)
    sys.stdout.flush()
    sys.stderr.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(case, directory)
    status = None
    while status is None:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = raw
        elif time.monotonic() - start > timeout:
            break
        else:
            time.sleep(0.005)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # a hang, or what the command left running
    if status is None:
        os.waitpid(pid, 0)
    seconds = time.monotonic() - start
    stdout = _read(directory / "stdout.txt")
    stderr = _read(directory / "stderr.txt")
    code = None if status is None else (os.waitstatus_to_exitcode(status))
    return Outcome(case, classify(case, code, stdout + stderr, directory), code, stdout, stderr, seconds, directory)


def _read(path: Path, limit: int = 200_000) -> str:
    try:
        with path.open("rb") as handle:
            return handle.read(limit).decode("utf-8", "backslashreplace")
    except OSError:
        return ""


def classify(case: Case, code: int | None, output: str, directory: Path) -> str:
    """Which of ``CLASSES`` an outcome is."""
    if code is None:
        return HANG
    crash = "\n".join(_read(p) for p in directory.glob("silkcheck-crash-*.txt"))
    if "MemoryError" in crash:
        return HANG  # memory blown up: the same defect as a hang, a bound that is missing
    if code in (3, ESCAPED) or code < 0 or "Traceback (most recent call last)" in output:
        return TRACEBACK
    if code == case.expect and (code != BAD_INPUT or output.strip()):
        return CLEAR
    if case.expect == BAD_INPUT and code in (0, 1):
        return ACCEPTED
    return WRONG


# ---------------------------------------------------------------- what cases are made of


class Raw:
    """JSON text spliced in as is (what ``json.dumps`` cannot write: 5,000-digit literals, NaN, ...)."""

    def __init__(self, text: str) -> None:
        self.text = text


class Pairs:
    """A JSON object written with these (key, value) pairs in order, duplicate keys included."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs


def dump(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Pairs):
        return "{" + ", ".join(f"{json.dumps(k)}: {dump(v)}" for k, v in value.pairs) + "}"
    if isinstance(value, dict):
        return dump(Pairs(list(value.items())))
    if isinstance(value, list):
        return "[" + ", ".join(dump(v) for v in value) + "]"
    return json.dumps(value)


TRACE: dict[str, Any] = {
    "format": "silkcheck-trace",
    "version": 1,
    "name": "hostile",
    "config": {"learn_delay_bound": 100},
    "vips": [{"vip": "20.0.0.1:80/tcp", "pool": ["10.0.1.10:8080"]},
             {"vip": "20.0.0.2:53/udp", "pool": ["10.0.2.10:53", "10.0.2.11:53"]}],
    "events": [
        {"t": 0, "kind": "packet", "src": "1.2.3.4:1000", "dst": "20.0.0.1:80", "proto": "tcp", "flags": "S"},
        {"t": 1, "kind": "packet", "src": "1.2.3.5:1000", "dst": "20.0.0.2:53", "proto": "udp"},
        {"t": 5, "kind": "update", "vip": "20.0.0.1:80/tcp", "pool": ["10.0.1.10:8080", "10.0.1.11:8080"]},
        {"t": 6, "kind": "fault", "fault": "delay_learn", "index": 0, "delay": 50},
        {"t": 7, "kind": "cpu", "learn": 1},
        {"t": 8, "kind": "packet", "src": "1.2.3.4:1000", "dst": "20.0.0.1:80", "proto": "tcp", "flags": "A",
         "seq": 1, "ack": 1},
        {"t": 9, "kind": "fault", "fault": "late_learn", "index": 0, "delay": 500},
        {"t": 9, "kind": "fault", "fault": "lose_learn", "index": 0},
        {"t": 10, "kind": "advance"},
        {"t": 11, "kind": "expire"},
        {"t": 12, "kind": "fault", "fault": "cpu_restart"},
        {"t": 13, "kind": "fault", "fault": "dip_fail", "dip": "10.0.1.11:8080"},
    ],
}  # fmt: skip
"""A valid trace with every event kind: the template every malformed trace is made from."""

LONE = "\ud800"
HUGE_TEXT = "x" * 200_000
BAD_ENDPOINTS = ["1.2.3.4:\u0668\u0660", "1.2.3.4:+80", "1.2.3.4:70000", "1.2.3.4:-1", "1.2.3.4", "\u0661.2.3.4:80",
                 "1.2.3.4:80:1", "01.2.3.4:80", "1.2.3.4: 80", "1.2.3.4:0x50", "1.2.3.4:8_0", "", HUGE_TEXT,
                 "1.2.3.256:80", "1.2.3.4:\uff18\uff10", LONE, 80, None, ["1.2.3.4:80"], {}]  # fmt: skip
BAD_VIPS = ["20.0.0.1:80/icmp", "20.0.0.1:80", "20.0.0.1:80/TCP", "20.0.0.1:\u0668\u0660/tcp", "20.0.0.1/tcp",
            "20.0.0.1:80/tcp/x", "", LONE, HUGE_TEXT, 5, None]  # fmt: skip
BAD_INTS = [-1, 1 << 64, "5", 5.5, True, [], {}, Raw("9" * 5000), Raw("1e400"), Raw("NaN"), Raw("-Infinity"),
            Raw("[" * 5000 + "]" * 5000)]  # fmt: skip
BAD_WORDS = ["teleport", "", "PACKET", 5, None, [], "packet\u0000", LONE, HUGE_TEXT]
_ANY_BAD = [None, 5, "x", [], {}, LONE, Raw("1e400"), True]
BAD_TOP = {"format": _ANY_BAD, "version": [*_ANY_BAD, max(VERSIONS) + 1, 0], "vips": _ANY_BAD,
           "events": [v for v in _ANY_BAD if v != []], "config": [v for v in _ANY_BAD if v != {}],
           "name": [v for v in _ANY_BAD if v != "x"], "expect": [*_ANY_BAD, "maybe", "PASS"]}  # fmt: skip
"""Per top-level field, values it may not have (``[]`` events and ``{}`` config are valid)."""
REQUIRED = {"": ["format", "version", "vips", "events"], "packet": ["t", "kind", "src", "dst", "proto"],
            "update": ["vip", "pool"], "delay_learn": ["index", "delay"], "late_learn": ["index", "delay"],
            "lose_learn": ["index"],
            "dip_fail": ["dip"], "fault": ["fault"]}  # fmt: skip
BAD_CONFIG = [("digest_bits", 0), ("digest_bits", 33), ("digest_bits", "24"), ("digest_bits", 24.0),
              ("digest_bits", True), ("version_bits", 1), ("stages", 9), ("buckets_per_stage", 0),
              ("buckets_per_stage", (1 << 16) + 1), ("slots_per_bucket", 65), ("bloom_bits", 0), ("bloom_hashes", 5),
              ("epoch_bits", 17), ("transit_slots", 0), ("syn_auth", 1), ("syn_auth", "yes"), ("cookie_key", -1),
              ("cookie_key", 1 << 32), ("idle_timeout", 0), ("teardown_grace", 10), ("learn_delay_bound", -1),
              ("cuckoo_depth", 65), ("vip_capacity", 0), ("vip_capacity", 1), ("dip_pool_capacity", 2),
              ("whitelist_capacity", 0), ("stagez", 2), (LONE, 1), ("digest_bits", Raw("9" * 5000))]  # fmt: skip


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _trace_bytes(data: Any) -> bytes:
    return dump(data).encode("utf-8", "surrogatepass") if not isinstance(data, bytes) else data


def _event_field_mutation(c: Chooser, data: dict[str, Any]) -> str:
    """One field of one event replaced by a value no reader may take; the kind of mutation."""
    index = c.integer(0, len(data["events"]) - 1)
    event = data["events"][index]
    name = c.pick(sorted(event))
    if name in ("src", "dst", "dip"):
        event[name] = c.pick(BAD_ENDPOINTS)
        return "trace/bad endpoint"
    if name == "vip":
        event[name] = c.pick(BAD_VIPS)
        return "trace/bad VIP"
    if name == "pool":
        event[name] = c.pick([[], ["10.0.1.10:8080", "10.0.1.10:8080"], "10.0.1.10:8080", [c.pick(BAD_ENDPOINTS)],
                              ["10.0.1.10:8080"] * 70_000])  # fmt: skip
        return "trace/bad pool"
    if name in ("kind", "fault", "proto", "flags"):
        event[name] = c.pick([*BAD_WORDS, "SX"] if name != "flags" else ["SX", "s", 5, LONE, [], HUGE_TEXT + "X"])
        return f"trace/bad {name}"
    if name == "t":
        previous = data["events"][index - 1]["t"] if index else 0
        event[name] = c.pick([*BAD_INTS, 1 << 63, -1] + ([previous - 1] if previous else []))
        return "trace/bad time"
    if name == "index":
        if c.chance(20):
            event[name] = 10**6
            return RUNTIME_INDEX
        event[name] = c.pick(BAD_INTS)
        return "trace/bad learn index"
    if name == "delay":
        # Past the learn-delay bound (100) for a delayed event, within it for a late one.
        event[name] = c.pick([*BAD_INTS, 100 if event.get("fault") == "late_learn" else 101])
        return "trace/bad delay"
    event[name] = c.pick([v for v in BAD_INTS if v is not None])  # learn, seq, ack
    return f"trace/bad {name}"


def _structure_mutation(c: Chooser, data: dict[str, Any]) -> tuple[Any, str]:
    choice = c.integer(0, 13)  # 9..13: one event's field, the largest space
    if choice == 0:
        where = c.pick(sorted(REQUIRED))
        if where == "":
            del data[c.pick(REQUIRED[""])]
        else:
            events = [e for e in data["events"] if where in (e["kind"], e.get("fault"))]
            if not events:
                del data["events"][0]["src"]
            else:
                event = c.pick(events)
                event.pop(c.pick([n for n in REQUIRED[where] if n in event] or ["kind"]), None)
        return data, "trace/missing field"
    if choice == 1:
        target = c.pick([data, data["config"], c.pick(data["vips"]), c.pick(data["events"])])
        target[c.pick(["colour", "", LONE, "T", HUGE_TEXT])] = 1
        return data, "trace/unknown field"
    if choice == 2:
        where = c.pick(["top", "config", "event", "vip"])
        if where == "top":
            return Pairs([*data.items(), ("version", 1)]), "trace/duplicate key"
        if where == "config":
            data["config"] = Pairs([("digest_bits", 0), ("digest_bits", 16)])
        elif where == "event":
            i = c.integer(0, len(data["events"]) - 1)
            event = data["events"][i]
            data["events"][i] = Pairs([*event.items(), ("t", event["t"])])
        else:
            data["vips"][0] = Pairs([*data["vips"][0].items(), ("pool", ["10.0.9.9:1"])])
        return data, "trace/duplicate key"
    if choice == 3:
        depth = c.pick([33, 100, 1000, 100_000])
        target = c.pick(["name", "config", "events"])
        data[target] = Raw("[" * depth + "]" * depth)
        return data, "trace/deep nesting"
    if choice == 4:
        return c.pick([[data], "trace", 5, None, Raw("NaN"), []]), "trace/not an object"
    if choice == 5:
        name = c.pick(sorted(BAD_TOP))
        data[name] = c.pick(BAD_TOP[name])
        return data, "trace/bad top-level field"
    if choice == 6:
        name, value = c.pick(BAD_CONFIG)
        if name == "vip_capacity" and value == 1:
            data["config"]["vip_capacity"] = 1  # two VIPs: more than the VIPTable holds
        elif name == "dip_pool_capacity":
            data["config"]["dip_pool_capacity"] = 2  # three DIPs in the initial pools
        else:
            data["config"][name] = value
        return data, "trace/bad config"
    if choice == 7:
        problem = c.pick(["vip twice", "dip twice", "empty pool", "no vips", "unknown vip", "udp flags",
                          "unknown dip", "update unknown vip", "whitelist overflow"])  # fmt: skip
        _semantic(problem, data)
        return data, RUNTIME_WHITELIST if problem == "whitelist overflow" else "trace/inconsistent"
    if choice == 8:
        data["config"] = {"learn_delay_bound": 100, "idle_timeout": 50}
        return data, "trace/bad config"
    return data, _event_field_mutation(c, data)


def _semantic(problem: str, data: dict[str, Any]) -> None:
    packet = data["events"][0]
    if problem == "vip twice":
        data["vips"].append(_copy(data["vips"][0]))
    elif problem == "dip twice":
        data["vips"][1]["pool"].append(data["vips"][1]["pool"][0])
    elif problem == "empty pool":
        data["vips"][0]["pool"] = []
    elif problem == "no vips":
        data["vips"] = []
    elif problem == "unknown vip":
        packet["dst"] = "20.0.0.9:80"
    elif problem == "udp flags":
        data["events"][1]["flags"] = "S"
    elif problem == "unknown dip":
        data["events"][-1]["dip"] = "9.9.9.9:1"
    elif problem == "update unknown vip":
        data["events"][2]["vip"] = "20.0.0.9:80/tcp"
    else:  # two clients prove their address; the whitelist holds one
        from model.config import Config
        from model.hashing import HashPlan
        from model.types import ACK, SYN, FiveTuple, Packet, parse_ip
        from silkcheck.trace import event_to_dict

        config = Config(learn_delay_bound=100, syn_auth=True, whitelist_capacity=1)
        data["config"] = {"learn_delay_bound": 100, "syn_auth": True, "whitelist_capacity": 1}
        plan = HashPlan(config)
        events = []
        for n in range(2):
            ft = FiveTuple(parse_ip("1.2.3.4") + n, parse_ip("20.0.0.1"), 1000, 80, 6)
            events += [Packet(ft, SYN, seq=7), Packet(ft, ACK, seq=8, ack=(plan.cookie(ft) + 1) & 0xFFFFFFFF)]
        from model.events import CpuLearns, PacketArrives

        data["events"] = [event_to_dict(PacketArrives(t, p)) for t, p in enumerate(events)]
        data["events"].append(event_to_dict(CpuLearns(10)))


def _byte_mutation(c: Chooser, text: bytes) -> tuple[bytes, str]:
    choice = c.integer(0, 6)
    if choice == 0:
        bad = c.pick([b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"\xe2\x82", b"\x80"])
        return text.replace(b'"hostile"', b'"host' + bad + b'ile"', 1), "trace/invalid UTF-8"
    if choice == 1:
        stripped = text.rstrip()
        return stripped[: c.integer(0, len(stripped) - 1)], "trace/truncated"
    if choice == 2:
        return b"\xef\xbb\xbf" + text, "trace/byte order mark"
    if choice == 3:
        return text.decode().encode(c.pick(["utf-16", "utf-32", "utf-16-be"])), "trace/not UTF-8"
    if choice == 4:
        return text.replace(b"{", b"{\x00", 1), "trace/NUL byte"
    if choice == 5:
        return text + c.pick([b"x", b"{}", b"\n]", b"\x00"]), "trace/trailing garbage"
    return b"", "trace/empty file"


def draw_trace_case(c: Chooser) -> Case:
    """A malformed trace (fields, structure, bytes, or a special file) for a command that reads one."""
    data = _copy(TRACE)
    family = c.integer(0, 9)
    if family <= 5:
        content, kind = _structure_mutation(c, data)
        blob: FileSpec = _trace_bytes(content)
    elif family <= 8:
        blob, kind = _byte_mutation(c, _trace_bytes(data))
    else:
        blob = c.pick([Special.FIFO, Special.DIRECTORY, Special.DEV_ZERO, Special.HUGE])
        kind = f"file/{blob}"
    command = c.pick(TRACE_COMMANDS if kind not in (RUNTIME_INDEX, RUNTIME_WHITELIST) else RUN_COMMANDS)
    return Case(kind, command("trace.json"), (("trace.json", blob),))


RUNTIME_INDEX = "trace/learn index beyond the queue"
RUNTIME_WHITELIST = "trace/whitelist overflow"
"""Well-formed traces that only running shows to be bad: given to commands that run them."""
RUN_COMMANDS: list[Callable[[str], tuple[str, ...]]] = [
    lambda path: ("replay", path),
    lambda path: ("diff", path),
    lambda path: ("verify", "--examples", "."),
]
TRACE_COMMANDS: list[Callable[[str], tuple[str, ...]]] = [
    lambda path: ("replay", path),
    lambda path: ("replay", path, "--html", "page.html"),
    lambda path: ("replay", path, "--mutant", "skip-transit"),
    lambda path: ("pcap", path, "out.pcap"),
    lambda path: ("diff", path),
    lambda path: ("p4-build", "--config", path),
    lambda path: ("verify", "--examples", "."),
]


# ---------------------------------------------------------------- captures


def valid_pcap() -> bytes:
    from silkcheck.pcap import export_pcap
    from silkcheck.trace import from_dict

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "capture.pcap"
        export_pcap(from_dict(_copy(TRACE)), path)
        return path.read_bytes()


def _records(blob: bytes) -> list[tuple[int, int]]:
    """(offset of the frame, its captured length) of each record of a classic pcap."""
    endian = "<" if blob[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    offset, found = 24, []
    while offset + 16 <= len(blob):
        caplen = struct.unpack(endian + "I", blob[offset + 8 : offset + 12])[0]
        found.append((offset + 16, caplen))
        offset += 16 + caplen
    return found


def _patch_every_ipv4(blob: bytes, patch: Callable[[bytearray, int], None]) -> bytes:
    out = bytearray(blob)
    for frame, _ in _records(blob):
        patch(out, frame + 14)  # the IPv4 header follows a 14-byte Ethernet header
    return bytes(out)


def draw_pcap_bytes(c: Chooser, good: bytes) -> tuple[FileSpec, str]:
    choice = c.integer(0, 9)
    if choice == 0:
        boundaries = {24} | {frame + caplen for frame, caplen in _records(good)}
        cuts = [n for n in range(25, len(good)) if n not in boundaries]
        return good[: c.pick(cuts)], "pcap/truncated"
    if choice == 1:
        return good[:24], "pcap/no packets"
    if choice == 2:
        return bytes(c.integer(0, 255) for _ in range(c.integer(0, 64))), "pcap/garbage"
    if choice == 3:
        return b"\x0a\x0d\x0d\x0a" + bytes(c.integer(0, 255) for _ in range(c.integer(0, 40))), "pcap/corrupt pcapng"
    if choice == 4:
        ihl = c.integer(0, 4)
        return _patch_every_ipv4(good, lambda b, ip: b.__setitem__(ip, 0x40 | ihl)), "pcap/IPv4 IHL < 5"
    if choice == 5:
        version = c.pick([0, 6, 15])
        return _patch_every_ipv4(good, lambda b, ip: b.__setitem__(ip, version << 4 | 5)), "pcap/IP version not 4"
    if choice == 6:
        length = c.pick([0, 19, 0xFFFF])
        return (_patch_every_ipv4(good, lambda b, ip: b.__setitem__(slice(ip + 2, ip + 4), struct.pack(">H", length))),
                "pcap/IPv4 total length wrong")  # fmt: skip
    if choice == 7:
        first = _records(good)[0][0]
        return good[: first - 8] + struct.pack("<II", 1 << 30, 1 << 30) + good[first:], "pcap/huge record length"
    if choice == 8:
        return good[:4] + b"\x09\x00" + good[6:], "pcap/unknown version"
    return b"", "pcap/empty file"


def draw_pcap_case(c: Chooser, good: bytes) -> Case:
    if c.chance(20):
        spec: FileSpec = c.pick([Special.FIFO, Special.DIRECTORY, Special.DEV_ZERO])
        kind = f"file/{spec}"
        command = c.pick([("replay", "--pcap", "cap.pcap", *CAPTURE_MAPPING),
                          ("analyze", "--quick", "--pcap", "cap.pcap", "--vip", "20.0.0.1:80/tcp")])  # fmt: skip
        return Case(kind, command, (("cap.pcap", spec),))
    blob, kind = draw_pcap_bytes(c, good)
    return Case(kind, ("replay", "--pcap", "cap.pcap", *CAPTURE_MAPPING), (("cap.pcap", blob),))


CAPTURE_MAPPING = ("--vip", "20.0.0.1:80/tcp", "--vip", "20.0.0.2:53/udp", "--pool", "10.0.1.10:8080")


# ---------------------------------------------------------------- options


BAD_VALUES: dict[str, list[str]] = {
    "count": ["0", "-1", "nan", "inf", "1e3", "1.5", "\u0663", "\uff13", " 3", "3_0", "0x10", "", "9" * 5000,
              str(1 << 70), "1,000", LONE],
    "count0": ["-1", "nan", "1e3", "\u0663", "0x10", "", str(1 << 70)],
    "seed": ["-1", "nan", "1.5", "\u0663", str(1 << 64), "", "0x1"],
    "time": ["-1", "1e15", "nan", str(1 << 63), "\u0663", ""],
    "fraction": ["0", "-0.5", "1.5", "nan", "inf", "-inf", "1e999", "", "\u0663", "1_0"],
    "share": ["-0.1", "1.01", "nan", "inf", "", "\u0660.5"],
    "positive": ["0", "-1", "nan", "inf", "1e999", "", "abc", "1_0", "\u0663"],
    "duration": ["0s", "-1s", "0", "nan", "inf", "1e9h", "\u0663\u0660s", "10x", "", "s", "1_0s", "  ", "2000h"],
    "choice": ["bmv3", "", "MODEL", "model ", LONE, "x" * 10_000],
    "outfile": ["adir", "nodir/x.out", "afile/x.out", "afifo", "/dev/full", "/proc/silkcheck-hostile"],
    "outdir": ["afile", "afile/sub", "/proc/silkcheck-hostile", "/dev/null"],
    "infile": ["missing.bin", "adir", "afifo", "/dev/zero", LONE + ".bin"],
    "indir": ["missing", "afile", "emptydir", "badtraces"],
    "vip": ["1.2.3.4:80", "1.2.3.4:80/icmp", "1.2.3.4:\u0668\u0660/tcp", "x", ""],
    "pool": ["", ",", "1.2.3.4", "1.2.3.4:80,1.2.3.4:80", "1.2.3.4:\u0668\u0660"],
    "address": ["10.0.0.5:8786", "tcp://", "http://10.0.0.5:8786", "tcp://10.0.0.5:0", "tcp://10.0.0.5:65536",
                "tcp://10.0.0.5:8786/x", "tcp://10.0.0.5:\u0668\u0667", "", LONE],
}  # fmt: skip

# (command line a bad value is put into, option, kind of value)
OPTION_SITES: list[tuple[tuple[str, ...], str, str]] = [
    (("replay", "trace.json"), "--target", "choice"),
    (("replay", "trace.json"), "--html", "outfile"),
    (("replay", "trace.json"), "--mutant", "choice"),
    (("replay", *CAPTURE_MAPPING), "--pcap", "infile"),
    (("replay", "--pcap", "cap.pcap", "--pool", "10.0.1.10:8080"), "--vip", "vip"),
    (("replay", "--pcap", "cap.pcap", "--vip", "20.0.0.1:80/tcp"), "--pool", "pool"),
    (("replay", "--pcap", "cap.pcap", *CAPTURE_MAPPING), "--learn-interval-us", "count"),
    (("replay", "--pcap", "cap.pcap", *CAPTURE_MAPPING, "--update-pool", "10.0.1.10:8080"), "--update-at-us", "time"),
    (("replay", "--pcap", "cap.pcap", *CAPTURE_MAPPING, "--update-at-us", "5"), "--update-pool", "pool"),
    (("replay", "--pcap", "cap.pcap", *CAPTURE_MAPPING), "--max-packets", "count"),
    (("replay", "--pcap", "cap.pcap", *CAPTURE_MAPPING), "--save-trace", "outfile"),
    (("verify",), "--examples", "indir"),
    (("verify",), "--target", "choice"),
    (("pcap", "trace.json"), "", "outfile"),
    (("examples",), "--dir", "outdir"),
    (("bench", "--connections", "20"), "--packets", "count"),
    (("bench", "--packets", "2000"), "--connections", "count"),
    (("diff", "trace.json"), "--random", "count0"),
    (("diff", "trace.json"), "--seed", "seed"),
    (("diff", "--random", "1"), "--events", "count"),
    (("analyze", "--quick"), "--out", "outdir"),
    (("analyze", "--quick"), "--seed", "seed"),
    (("analyze", "--quick"), "--digest-bits", "count"),
    (("analyze", "--quick"), "--stages", "count"),
    (("analyze", "--quick"), "--slots", "count"),
    (("analyze", "--quick"), "--loads", "fraction"),
    (("analyze", "--quick"), "--bloom-bits", "count"),
    (("analyze", "--quick"), "--bloom-hashes", "count"),
    (("analyze", "--quick"), "--latencies-ms", "positive"),
    (("analyze", "--quick"), "--new-conns-per-min", "positive"),
    (("analyze", "--quick"), "--updates-per-min", "positive"),
    (("analyze", "--quick"), "--syn-share", "share"),
    (("analyze", "--quick"), "--pcap", "infile"),
    (("analyze", "--quick"), "--vip", "vip"),
    (("scale-bench", "--baseline-sample", "100"), "--connections", "count"),
    (("scale-bench", "--connections", "2000", "--baseline-sample", "100"), "--load", "fraction"),
    (("scale-bench", "--connections", "2000", "--baseline-sample", "100"), "--stages", "count"),
    (("scale-bench", "--connections", "2000", "--baseline-sample", "100"), "--slots", "count"),
    (("scale-bench", "--connections", "2000", "--baseline-sample", "100"), "--digest-bits", "count"),
    (("scale-bench", "--connections", "2000", "--baseline-sample", "100"), "--version-bits", "count"),
    (("scale-bench", "--connections", "2000", "--baseline-sample", "100"), "--seed", "seed"),
    (("scale-bench", "--connections", "2000"), "--baseline-sample", "count"),
    (("fuzz",), "--budget", "duration"),
    (("fuzz", "--budget", "1s"), "--workers", "count"),
    (("fuzz", "--budget", "1s"), "--seed", "seed"),
    (("fuzz", "--budget", "1s"), "--target", "choice"),
    (("fuzz", "--budget", "1s"), "--db", "outdir"),
    (("mutants", "teardown-without-grace"), "--budget", "duration"),
    (("mutants", "--budget", "1s", "teardown-without-grace"), "--workers", "count"),
    (("mutants", "--budget", "1s"), "", "choice"),
    (("mutants", "--budget", "1s", "teardown-without-grace"), "--db", "outdir"),
    (("fuzz", "--budget", "1s"), "--cluster", "address"),
    (("mutants", "--budget", "1s", "teardown-without-grace"), "--cluster", "address"),
    (("diff", "--random", "1"), "--cluster", "address"),
    (("diff", "--random", "1"), "--workers", "count"),
    (("diff", "--random", "1"), "--packet-share", "share"),
    (("cluster-bench",), "--tasks-per-worker", "count"),
    (("cluster-bench",), "--rounds", "count"),
    (("cluster-bench",), "--seed", "seed"),
    (("fuzz-bench",), "--seconds", "positive"),
    (("fuzz-fingerprint",), "--walks", "count"),
    (("prove", "--quick"), "--save", "outdir"),
    (("hostile",), "--inputs", "count"),
    (("hostile", "--inputs", "1"), "--timeout", "positive"),
    (("hostile", "--inputs", "1"), "--out", "outdir"),
]

# Commands whose options are each fine but not together.
BAD_COMBINATIONS: list[tuple[str, ...]] = [
    ("scale-bench", "--connections", "3"),
    ("scale-bench", "--digest-bits", "30", "--version-bits", "6"),
    ("scale-bench", "--connections", "1000000", "--stages", "1", "--slots", "1", "--baseline-sample", "1000000"),
    ("analyze", "--quick", "--latencies-ms", "1000000", "--new-conns-per-min", "100000000000"),
    ("analyze", "--quick", "--digest-bits", "30"),
    ("replay", "trace.json", "--pcap", "cap.pcap"),
    ("replay",),
    ("replay", "--pcap", "cap.pcap", "--pool", "10.0.1.10:8080"),
    ("replay", "--pcap", "cap.pcap", "--vip", "20.0.0.1:80/tcp"),
    ("replay", "--pcap", "cap.pcap", *CAPTURE_MAPPING, "--update-at-us", "5"),
    ("replay", "--pcap", "cap.pcap", "--vip", "20.0.0.1:80/tcp", "--vip", "20.0.0.2:53/udp",
     "--pool", "10.0.1.10:8080", "--pool", "10.0.1.11:8080", "--pool", "10.0.1.12:8080"),
    ("replay", "trace.json", "--mutant", "skip-transit", "--target", "bmv2"),
    ("diff",),
    ("nosuchcommand",),
    ("replay", "trace.json", "--hmtl", "x.html"),
    ("replay", "trace.json", "--htm", "x.html"),
    ("pcap", "trace.json"),
    ("fuzz-bench", "--seconds"),
]  # fmt: skip

OPTION_FILES: tuple[tuple[str, FileSpec], ...] = (
    ("adir", Special.EMPTY_DIRECTORY), ("afile", b"not a directory\n"), ("afifo", Special.FIFO),
    ("emptydir", Special.EMPTY_DIRECTORY), ("badtraces/bad.json", b'{"format": "silkcheck-trace"'),
)  # fmt: skip


def draw_option_case(c: Chooser, trace: bytes, pcap: bytes) -> Case:
    files = (*OPTION_FILES, ("trace.json", trace), ("cap.pcap", pcap))
    if c.chance(15):
        argv = c.pick(BAD_COMBINATIONS)
        return Case(f"options/{argv[0]} combination", argv, files)
    base, option, kind = c.pick(OPTION_SITES)
    value = c.pick(BAD_VALUES[kind])
    argv = (*base, option, value) if option else (*base, value)
    return Case(f"options/{kind}", argv, files)


def controls(trace: bytes, pcap: bytes) -> list[Case]:
    """Valid inputs the harness must see pass (0) or fail as a violation (1): checks of the checker."""
    from proofs.replay import COUNTEREXAMPLES_DIR

    files = (("trace.json", trace), ("cap.pcap", pcap))
    counterexample = (("counterexample.json", (COUNTEREXAMPLES_DIR / "skip-transit.json").read_bytes()),)
    return [
        Case("control/valid input", ("replay", "trace.json", "--html", "page.html"), files, 0, malformed=False),
        Case("control/valid input", ("pcap", "trace.json", "out.pcap"), files, 0, malformed=False),
        Case("control/valid input", ("replay", "--pcap", "cap.pcap", *CAPTURE_MAPPING), files, 0, malformed=False),
        Case("control/violation", ("replay", "counterexample.json", "--mutant", "skip-transit"), counterexample, 1,
             malformed=False),
        Case("control/valid input", ("fuzz-fingerprint", "--walks", "2"), (), 0, malformed=False),
    ]  # fmt: skip


# ---------------------------------------------------------------- drawing and campaigns


@dataclass
class Materials:
    """What every case is made from, built once."""

    trace: bytes = field(default_factory=lambda: _trace_bytes(TRACE))
    pcap: bytes = field(default_factory=valid_pcap)


def draw_case(c: Chooser, materials: Materials) -> Case:
    family = c.integer(0, 9)
    if family <= 3:
        return draw_trace_case(c)
    if family <= 5:
        return draw_pcap_case(c, materials.pcap)
    return draw_option_case(c, materials.trace, materials.pcap)


def preload() -> None:
    """Import what commands use before forking, so each case does not import it again."""
    import numpy  # noqa: F401
    import scapy.all  # noqa: F401

    import proofs.variants  # noqa: F401
    import scale.analyze  # noqa: F401
    import silkcheck.capture
    import silkcheck.cli
    import silkcheck.timeline

    silkcheck.cli.unsafe_designs()


@dataclass
class Tally:
    counts: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    by_command: dict[str, Counter[str]] = field(default_factory=dict)
    controls: Counter[str] = field(default_factory=Counter)
    saved: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, outcome: Outcome) -> None:
        self.seconds += outcome.seconds
        if not outcome.case.malformed:
            self.controls[outcome.verdict] += 1
            return
        self.counts[outcome.verdict] += 1
        self.by_kind.setdefault(outcome.case.kind, Counter())[outcome.verdict] += 1
        self.by_command.setdefault(outcome.case.command, Counter())[outcome.verdict] += 1

    @property
    def inputs(self) -> int:
        return sum(self.counts.values())

    def table(self) -> str:
        from silkcheck import report

        def rows(groups: dict[str, Counter[str]]) -> list[list[object]]:
            return [[name, *(counts[c] for c in CLASSES)] for name, counts in sorted(groups.items())]

        parts = [
            f"{self.inputs:,} malformed inputs: " + ", ".join(f"{self.counts[c]:,} {c}" for c in CLASSES),
            f"valid controls: {sum(self.controls.values())} ({self.controls[CLEAR]} as documented)",
            "",
            report.table(["command", *CLASSES], rows(self.by_command)),
            "",
            report.table(["kind of input", *CLASSES], rows(self.by_kind)),
        ]
        return "\n".join(parts)


def save_outcome(outcome: Outcome, out_dir: Path, number: int) -> Path:
    """The case's files, command line and output, under ``out_dir/<class>/<number>-<kind>/``."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in outcome.case.kind)
    target = out_dir / outcome.verdict.replace(" ", "-") / f"{number:05d}-{slug}"
    target.mkdir(parents=True, exist_ok=True)
    for name, spec in outcome.case.files:
        if isinstance(spec, bytes):
            path = target / "files" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(spec)
    specials = {name: spec for name, spec in outcome.case.files if not isinstance(spec, bytes)}
    summary = {"kind": outcome.case.kind, "argv": list(outcome.case.argv), "expected exit code": outcome.case.expect,
               "exit code": outcome.code, "verdict": outcome.verdict, "seconds": round(outcome.seconds, 2),
               "special files": specials}  # fmt: skip
    (target / "case.json").write_text(json.dumps(summary, indent=2, ensure_ascii=True) + "\n")
    (target / "stdout.txt").write_text(outcome.stdout[:20_000], errors="backslashreplace")
    (target / "stderr.txt").write_text(outcome.stderr[:20_000], errors="backslashreplace")
    for crash in outcome.directory.glob("silkcheck-crash-*.txt"):
        shutil.copy(crash, target / crash.name)
    return target


def campaign(count: int, seed: int, timeout: float, out_dir: Path | None,
             progress: Callable[[int, Tally], None] | None = None) -> Tally:  # fmt: skip
    """The valid controls, then ``count`` Hypothesis-drawn malformed inputs, each run and judged."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    from fuzz.machines import DrawChooser

    preload()
    materials = Materials()
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="silkcheck-hostile-") as workdir:

        def judged(case: Case) -> None:
            outcome = run_case(case, Path(workdir), timeout)
            tally.add(outcome)
            if out_dir is not None and outcome.verdict != CLEAR:
                tally.saved.append(save_outcome(outcome, out_dir, tally.inputs + sum(tally.controls.values())))
            shutil.rmtree(outcome.directory, ignore_errors=True)
            if progress is not None:
                progress(tally.inputs, tally)

        for case in controls(materials.trace, materials.pcap):
            judged(case)

        @hypothesis_seed(seed)
        @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(st.data())
        def run(data: Any) -> None:
            judged(draw_case(DrawChooser(data), materials))

        run()
    return tally

