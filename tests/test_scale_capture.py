"""Packet captures as workloads: mapped onto VIPs, replayed through the target and the oracle."""

from __future__ import annotations

from pathlib import Path

import pytest

from model import events as ev
from model.config import Config
from model.types import PROTO_TCP, PROTO_UDP, Dip, Vip, parse_ip
from silkcheck.capture import CaptureError, capture_trace, distinct_flows, read_capture
from silkcheck.cli import main
from silkcheck.examples import EXAMPLES_DIR
from silkcheck.inputs import InputError
from silkcheck.oracle import judge
from silkcheck.pcap import export_pcap
from silkcheck.targets.model import ModelTarget
from silkcheck.trace import Trace, load

WEB = Vip(parse_ip("30.0.0.1"), 80, PROTO_TCP)
DNS = Vip(parse_ip("30.0.0.2"), 53, PROTO_UDP)
POOL = (Dip(parse_ip("10.0.1.10"), 8080), Dip(parse_ip("10.0.1.11"), 8080))


@pytest.fixture
def demo_pcap(tmp_path: Path) -> Path:
    path = tmp_path / "demo.pcap"
    export_pcap(load(EXAMPLES_DIR / "demo-update.json"), path)
    return path


def test_a_capture_becomes_a_trace_the_model_and_oracle_run(demo_pcap: Path) -> None:
    original = load(EXAMPLES_DIR / "demo-update.json")
    capture = read_capture(demo_pcap, [WEB, DNS])
    assert len(capture.packets) == len(original.packets)
    assert set(capture.mapped.values()) == {WEB}
    trace = capture_trace(capture, Config(), {WEB: POOL, DNS: POOL}, learn_interval=50)
    times = [e.t for e in trace.events]
    assert times == sorted(times)
    assert [e.packet.flags for e in trace.packets] == [e.packet.flags for e in original.packets]
    assert all(e.packet.ft.vip == WEB for e in trace.packets)
    steps = [e.t for e in trace.events if isinstance(e, ev.CpuLearns)]
    assert steps[:3] == [50, 100, 150] and steps[-1] >= trace.packets[-1].t
    verdict = judge(trace.config, ModelTarget().run(trace))
    assert verdict.ok and len(verdict.incarnations) == len(distinct_flows(capture)[0])


def test_destinations_map_round_robin_onto_vips_of_their_protocol(tmp_path: Path) -> None:
    """Three TCP destinations onto two TCP VIPs, in order of first appearance."""
    source = load(EXAMPLES_DIR / "demo-update.json")
    other = Vip(parse_ip("30.0.0.3"), 443, PROTO_TCP)
    packets = []
    for i, event in enumerate(source.packets[:9]):
        ft = event.packet.ft._replace(dst_ip=parse_ip("20.0.0.0") + i % 3)
        packets.append(ev.PacketArrives(event.t, event.packet._replace(ft=ft)))
    trace = Trace(source.config, {ft.vip: POOL for ft in (p.packet.ft for p in packets)}, list(packets))
    path = tmp_path / "three.pcap"
    export_pcap(trace, path)
    capture = read_capture(path, [WEB, other, DNS])
    assert list(capture.mapped.values()) == [WEB, other, WEB]


def test_replay_and_analyze_take_a_pcap_on_the_command_line(demo_pcap: Path, tmp_path: Path) -> None:
    saved = tmp_path / "from-pcap.json"
    code = main(["replay", "--pcap", str(demo_pcap), "--vip", "30.0.0.1:80/tcp", "--pool", "10.0.1.10:8080",
                 "--update-at-us", "200", "--update-pool", "10.0.1.10:8080,10.0.2.10:8080",
                 "--save-trace", str(saved)])  # fmt: skip
    assert code == 0
    trace = load(saved)
    assert any(isinstance(e, ev.UpdateRequested) for e in trace.events)
    assert any(isinstance(e, ev.CpuAdvances) for e in trace.events)
    out = tmp_path / "analyze"
    code = main(["analyze", "--quick", "--pcap", str(demo_pcap), "--vip", "30.0.0.1:80/tcp", "--out", str(out),
                 "--digest-bits", "8", "--stages", "2", "--slots", "2", "--loads", "0.5",
                 "--latencies-ms", "0.1"])  # fmt: skip
    assert code == 0
    assert (out / "false_hits.csv").read_text().count("\n") == 2


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_unusable_captures_are_refused_with_the_reason(demo_pcap: Path, tmp_path: Path) -> None:
    from scapy.layers.inet import ICMP, IP, TCP
    from scapy.layers.l2 import ARP, Ether
    from scapy.utils import wrpcap

    cases = [
        (_write(tmp_path / "text.pcap", b"this is not a capture\n"), "not a pcap"),
        (_write(tmp_path / "cut.pcap", demo_pcap.read_bytes()[:300]), "truncated: packet #4"),
        (tmp_path / "missing.pcap", "cannot read the capture: No such file"),
    ]
    arp = tmp_path / "arp.pcap"
    quoted_tcp = Ether() / IP(dst="1.1.1.1") / ICMP(type=3) / IP(src="1.1.1.1") / TCP(sport=80)
    wrpcap(str(arp), [Ether() / ARP(), quoted_tcp])
    cases.append((arp, "no IPv4 TCP or UDP packets"))
    for path, reason in cases:
        with pytest.raises((CaptureError, InputError), match=reason):
            read_capture(path, [WEB])
    with pytest.raises(CaptureError, match=r"to map onto 30\.0\.0\.2:53/udp"):
        read_capture(demo_pcap, [DNS])
    assert main(["replay", "--pcap", str(tmp_path / "text.pcap"), "--vip", "30.0.0.1:80/tcp",
                 "--pool", "10.0.1.10:8080"]) == 2  # fmt: skip
    assert main(["replay", "--pcap", str(demo_pcap), "--vip", "30.0.0.1:80/tcp"]) == 2
