"""pcap files both ways: the streaming writer read back by scapy, the reader on pcap and pcapng,
corrupt captures refused with the packet and field, and the pcap path agreeing with the trace loader."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from model import events as ev
from model.config import Config
from model.types import PROTO_TCP, PROTO_UDP, Dip, Packet, Vip, parse_ip
from silkcheck.capture import CaptureError, CaptureStream, capture_events, capture_trace, read_capture
from silkcheck.cli import main
from silkcheck.examples import EXAMPLES_DIR, write_all
from silkcheck.frames import packet_frame
from silkcheck.inputs import InputError
from silkcheck.pcap import PcapError, PcapWriter, export_pcap, read_records
from silkcheck.targets.model import sent_packets
from silkcheck.trace import Trace, dumps, load, loads

WEB = Vip(parse_ip("30.0.0.1"), 80, PROTO_TCP)
DNS = Vip(parse_ip("30.0.0.2"), 53, PROTO_UDP)
POOL = (Dip(parse_ip("10.0.1.10"), 8080), Dip(parse_ip("10.0.1.11"), 8080))


def _examples(tmp_path: Path) -> list[Trace]:
    return [load(p) for p in write_all(tmp_path / "examples")]


def test_every_exported_packet_reads_back_in_scapy_with_its_fields_and_time(tmp_path: Path) -> None:
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.utils import rdpcap

    for trace in _examples(tmp_path):
        out = tmp_path / f"{trace.name}.pcap"
        assert export_pcap(trace, out) == len(trace.packets)
        frames = rdpcap(str(out))
        sent = list(sent_packets(trace))  # a reactive packet as it was sent, its ack answering a SYN-ACK
        assert len(frames) == len(sent) == len(trace.packets)
        for frame, (t, packet) in zip(frames, sent, strict=True):
            ft = packet.ft
            l4 = frame[TCP] if ft.proto == PROTO_TCP else frame[UDP]
            assert (frame[IP].src, frame[IP].dst) == (_dotted(ft.src_ip), _dotted(ft.dst_ip))
            assert (l4.sport, l4.dport) == (ft.src_port, ft.dst_port)
            if ft.proto == PROTO_TCP:
                assert (int(l4.flags), l4.seq, l4.ack) == (packet.flags, packet.seq, packet.ack)
            assert round(float(frame.time) * 1_000_000) == t
            for layer in (frame[IP], l4):  # checksums as scapy computes them afresh
                fresh = frame.copy()
                del fresh[type(layer)].chksum
                assert type(fresh)(bytes(fresh))[type(layer)].chksum == layer.chksum


def _dotted(ip: int) -> str:
    return ".".join(str(ip >> s & 0xFF) for s in (24, 16, 8, 0))


def test_pcapng_and_nanosecond_pcap_read_like_the_classic_pcap(tmp_path: Path) -> None:
    from scapy.utils import PcapNgWriter, PcapReader

    demo = load(EXAMPLES_DIR / "demo-update.json")
    classic = tmp_path / "demo.pcap"
    export_pcap(demo, classic)
    with PcapReader(str(classic)) as reader:
        frames = list(reader)
    ng = tmp_path / "demo.pcapng"
    with PcapNgWriter(str(ng)) as writer:
        for frame in frames:
            writer.write(frame)
    nanos = tmp_path / "demo-ns.pcap"
    with nanos.open("wb") as out:
        out.write(struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1))
        for event in demo.packets:
            data = packet_frame(event.packet).to_bytes()
            out.write(struct.pack(">IIII", event.t // 1_000_000, event.t % 1_000_000 * 1000, len(data), len(data)))
            out.write(data)
    expected = [(r.nanos, r.data) for r in read_records(classic)]
    assert len(expected) == len(demo.packets)
    for path in (ng, nanos):
        assert [(r.nanos, r.data) for r in read_records(path)] == expected
        assert read_capture(path, [WEB]).packets == read_capture(classic, [WEB]).packets


def _frame(ihl_version: int = 0x45, total: int = 40, tcp_offset: int = 5 << 4) -> bytes:
    good = bytearray(packet_frame(load(EXAMPLES_DIR / "demo-update.json").packets[0].packet).to_bytes())
    good[14] = ihl_version
    good[16:18] = total.to_bytes(2, "big")
    good[14 + 20 + 12] = tcp_offset
    return bytes(good)


def _capture(path: Path, frames: list[bytes], wire_length: int | None = None) -> Path:
    """``frames`` in a capture; the last one cut from a packet of ``wire_length`` bytes, if given."""
    with PcapWriter(path) as writer:
        for i, frame in enumerate(frames):
            writer.write(i, frame, wire_length if i == len(frames) - 1 else None)
    return path


@pytest.mark.parametrize(
    ("frame", "wire_length", "message"),
    [
        (_frame(ihl_version=0x40), None, r"packet #2: IPv4 header: IHL 0 \(at least 5"),
        (_frame(ihl_version=0x65), None, r"packet #2: IPv4 header: version 6 \(expected 4\)"),
        (_frame(total=0), None, r"packet #2: IPv4 header: total length 0 is shorter than its 20-byte header"),
        (_frame(total=30), None, r"packet #2: IPv4 header: total length 30 cannot hold .* a TCP header"),
        (_frame(total=41), None, r"packet #2: IPv4 header: total length 41 exceeds the 40 bytes the frame carried"),
        (_frame(tcp_offset=2 << 4), None, r"packet #2: TCP header: data offset 2 \(at least 5"),
        (_frame()[:40], 54, r"packet #2: TCP header: only 6 bytes captured"),
        (_frame()[:40], 39, r"packet #2: 40 bytes captured of a packet 39 bytes long on the wire"),
        (_frame()[:13], None, r"packet #2: Ethernet frame of 13 bytes is cut off"),
    ],
)
def test_corrupt_headers_are_refused_naming_file_packet_and_field(tmp_path: Path, frame: bytes,
                                                                   wire_length: int | None, message: str) -> None:
    path = _capture(tmp_path / "bad.pcap", [_frame(), frame], wire_length)
    with pytest.raises(CaptureError, match=message) as caught:
        read_capture(path, [WEB])
    assert str(path) in str(caught.value)
    assert main(["replay", "--pcap", str(path), "--vip", "30.0.0.1:80/tcp", "--pool", "10.0.1.10:8080"]) == 2


def test_a_classic_capture_of_another_version_is_refused(tmp_path: Path) -> None:
    path = _capture(tmp_path / "v9.pcap", [_frame()])
    data = bytearray(path.read_bytes())
    data[4:6] = (9).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(PcapError, match=r"v9.pcap: pcap version 9.4: silkcheck reads version 2.4"):
        list(read_records(path))


def test_truncated_and_corrupt_pcapng_blocks_are_refused(tmp_path: Path) -> None:
    from scapy.utils import PcapNgWriter, PcapReader

    classic = _capture(tmp_path / "two.pcap", [_frame(), _frame()])
    ng = tmp_path / "two.pcapng"
    with PcapReader(str(classic)) as reader, PcapNgWriter(str(ng)) as writer:
        for frame in reader:
            writer.write(frame)
    data = ng.read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[:-10])
    with pytest.raises(CaptureError, match=r"cut\.pcapng: truncated: the block after packet #1"):
        list(read_records(cut))
    bent = bytearray(data)
    bent[-4:] = struct.pack("<I", 999)  # the last block's trailing length
    (tmp_path / "bent.pcapng").write_bytes(bent)
    with pytest.raises(CaptureError, match="at its start but 999 at its end"):
        list(read_records(tmp_path / "bent.pcapng"))


def test_unreadable_captures_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError, match="cannot read the capture: it is a directory"):
        CaptureStream(tmp_path)
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(CaptureError, match="not a pcap or pcapng capture"):
        list(read_records(empty))
    assert main(["replay", "--pcap", str(tmp_path), "--vip", "30.0.0.1:80/tcp", "--pool", "10.0.1.10:8080"]) == 2
    assert "cannot read the capture: it is a directory" in capsys.readouterr().err


def test_cpu_steps_only_where_there_is_traffic_or_pending_work() -> None:
    """Two bursts an hour apart and an update long after both: a few dozen steps, not 3.6 million."""
    config = Config()
    packets = [load(EXAMPLES_DIR / "demo-update.json").packets[i].packet for i in range(4)]
    hour = 3_600_000_000
    timed = [(t, p) for t, p in zip((0, 10, 20, 30), packets, strict=True)]
    timed += [(hour + t, p) for t, p in timed]
    update = ev.UpdateRequested(10**15, WEB, POOL)
    events = list(capture_events(timed, config, 1000, 1_000_000, [update]))
    steps = [e for e in events if not isinstance(e, ev.PacketArrives | ev.UpdateRequested)]
    assert len(steps) < 30
    learn = [e.t for e in steps if isinstance(e, ev.CpuAdvances)]
    assert learn[0] == 1000 and hour + 1000 in learn and 10**15 in learn
    assert [e.t for e in steps if isinstance(e, ev.CpuExpires)] == [1_000_000, hour, hour + 1_000_000]
    assert [e.t for e in events] == sorted(e.t for e in events)


def test_a_huge_update_time_replays_in_bounded_work(tmp_path: Path) -> None:
    pcap = tmp_path / "demo.pcap"
    export_pcap(load(EXAMPLES_DIR / "demo-update.json"), pcap)
    saved = tmp_path / "late.json"
    assert main(["replay", "--pcap", str(pcap), "--vip", "30.0.0.1:80/tcp", "--pool", "10.0.1.10:8080",
                 "--update-at-us", str(10**15), "--update-pool", "10.0.1.10:8080,10.0.2.10:8080",
                 "--save-trace", str(saved)]) == 0  # fmt: skip
    assert len(load(saved).events) < 200


# ---------------------------------------------------------------- the pcap path and the loader agree


def test_what_the_pcap_path_builds_the_loader_accepts_unchanged(tmp_path: Path) -> None:
    for trace in _examples(tmp_path):
        pcap = tmp_path / f"{trace.name}.pcap"
        export_pcap(trace, pcap)
        vips = list(trace.vips)
        built = capture_trace(read_capture(pcap, vips), trace.config, trace.vips, 50,
                              [ev.UpdateRequested(100, vips[0], POOL)])  # fmt: skip
        again = loads(dumps(built), "again")
        assert again.events == built.events and again.vips == built.vips
        # ... and, for the fields they share, the packets the loader read come back from the capture.
        sent = list(sent_packets(trace))
        assert [(t - sent[0][0], packet) for t, packet in sent] == [(e.t, e.packet) for e in built.packets]


def test_streamed_save_trace_equals_the_whole_capture_trace(tmp_path: Path, capsys) -> None:
    pcap = tmp_path / "demo.pcap"
    export_pcap(load(EXAMPLES_DIR / "demo-update.json"), pcap)
    saved = tmp_path / "streamed.json"
    assert main(["replay", "--pcap", str(pcap), "--vip", "30.0.0.1:80/tcp", "--pool", "10.0.1.10:8080",
                 "--learn-interval-us", "50", "--save-trace", str(saved)]) == 0  # fmt: skip
    assert "judged as a stream" in capsys.readouterr().out
    whole = capture_trace(read_capture(pcap, [WEB]), Config(), {WEB: (POOL[0],)}, 50)
    assert saved.read_text() == dumps(whole)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--vip", "30.0.0.1:80/tcp", "--vip", "30.0.0.1:80/tcp", "--pool", "10.0.1.10:8080"],
         "VIP 30.0.0.1:80/tcp is listed twice"),
        (["--vip", "30.0.0.1:80/tcp", "--pool", "10.0.1.10:8080,10.0.1.10:8080"], "lists a DIP twice"),
        (["--vip", "30.0.0.1:80/tcp", "--pool", " , "], "names no DIP"),
        (["--vip", "30.0.0.1:80/tcp", "--pool", "10.0.1.10:8080", "--update-at-us", "-5", "--update-pool",
          "10.0.2.10:8080"], "--update-at-us: -5 is out of range"),
        (["--vip", "30.0.0.1:80/tcp", "--pool", "10.0.1.10:8080", "--update-at-us", "5", "--update-pool",
          "10.0.2.10:8080,10.0.2.10:8080"], "lists a DIP twice"),
    ],
)  # fmt: skip
def test_the_pcap_path_refuses_what_the_loader_refuses(tmp_path: Path, capsys, options, message) -> None:
    pcap = tmp_path / "demo.pcap"
    export_pcap(load(EXAMPLES_DIR / "demo-update.json"), pcap)
    assert main(["replay", "--pcap", str(pcap), *options]) == 2
    assert message in capsys.readouterr().err


def test_a_trace_the_loader_reads_replays_from_its_pcap_to_the_same_verdict(tmp_path: Path) -> None:
    from silkcheck.oracle import judge
    from silkcheck.targets.model import ModelTarget

    trace = load(EXAMPLES_DIR / "demo-update.json")
    pcap = tmp_path / "demo.pcap"
    export_pcap(trace, pcap)
    packets = [Packet(p.ft, p.flags, p.seq, p.ack) for _, p in CaptureStream(pcap, list(trace.vips))]
    assert packets == [e.packet for e in trace.packets]
    rebuilt = capture_trace(read_capture(pcap, list(trace.vips)), trace.config, trace.vips, 1000)
    assert judge(rebuilt.config, ModelTarget().run(rebuilt)).ok


def test_capture_times_that_go_backwards_are_held_so_the_trace_never_has_negative_or_falling_times(
    tmp_path: Path,
) -> None:
    frame = _frame()
    path = tmp_path / "jitter.pcap"
    with PcapWriter(path) as writer:
        for micros in (5_000, 4_000, 9_000, 1_000, 12_000):  # the first packet is not the earliest
            writer.write(micros, frame)
    capture = read_capture(path, [WEB])
    assert [t for t, _ in capture.packets] == [0, 0, 4_000, 4_000, 7_000]
    trace = capture_trace(capture, Config(), {WEB: POOL}, 1000)
    assert loads(dumps(trace), "jitter").events == trace.events


def test_a_streamed_replay_exits_1_and_explains_a_violation(tmp_path: Path, monkeypatch, capsys) -> None:
    """A model whose misses ignore TransitTable moves connections recorded during the update."""
    from model import decisions

    pcap = tmp_path / "demo.pcap"
    export_pcap(load(EXAMPLES_DIR / "demo-update.json"), pcap)
    monkeypatch.setattr(decisions, "miss_version", lambda o, phase, hit, old, new: new)
    assert main(["replay", "--pcap", str(pcap), "--vip", "30.0.0.1:80/tcp", "--pool", "10.0.1.10:8080",
                 "--update-at-us", "150", "--update-pool", "10.0.1.10:8080,10.0.2.10:8080",
                 "--learn-interval-us", "400"]) == 1  # fmt: skip
    out = capsys.readouterr().out
    assert "judged as a stream" in out and "[violation] moved:" in out and "!!" in out


# ---------------------------------------------------------------- trace files too large to load whole


def test_a_streamed_trace_file_reads_as_the_loader_reads_it(monkeypatch) -> None:
    from silkcheck import trace_stream
    from silkcheck.trace_stream import load_stream

    monkeypatch.setattr(trace_stream, "CHUNK", 7)  # values cut by chunk ends everywhere
    paths = sorted(EXAMPLES_DIR.glob("*.json")) + sorted(Path("tests/data").glob("*.json"))
    for path in paths:
        header, events = load_stream(path)
        whole = load(path)
        assert list(events) == whole.events, path
        assert (header.config, header.vips, header.name, header.expect) == \
            (whole.config, whole.vips, whole.name, whole.expect)  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('"kind": "packet"', '"kind": "pakket"', 1), r"events\[0\]\.kind: unknown event kind"),
        (lambda t: t.replace('"t": 0,', '"t": 0, "t": 1,', 1), "events\\[0\\]"),  # a duplicate key
        (lambda t: t.rstrip()[:-1] + ', "name": "late"}', "events must come last"),
        (lambda t: t[: len(t) // 2], "invalid JSON"),
        (lambda t: t.rstrip() + " {}", "text after the trace"),
    ],
)
def test_a_streamed_trace_file_refuses_what_the_loader_refuses(tmp_path: Path, edit, message) -> None:
    from silkcheck.trace import TraceError
    from silkcheck.trace_stream import load_stream

    path = tmp_path / "bad.json"
    path.write_text(edit((EXAMPLES_DIR / "demo-update.json").read_text()))
    with pytest.raises(TraceError, match=message):
        list(load_stream(path)[1])


def test_replay_streams_a_trace_file_over_the_load_limit(monkeypatch, capsys) -> None:
    from silkcheck import cli

    monkeypatch.setattr(cli, "TRACE_MAX_BYTES", 1000)
    assert main(["replay", str(EXAMPLES_DIR / "demo-update.json")]) == 0
    assert "demo-update on model: PASS" in capsys.readouterr().out
    assert main(["replay", str(EXAMPLES_DIR / "demo-update.json"), "--html", "x.html"]) == 2
    assert main(["replay", str(EXAMPLES_DIR / "digest-collision.json")]) == 0
    assert "judged as a stream" in capsys.readouterr().out
