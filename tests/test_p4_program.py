"""The P4 program and the differential machinery, checked without p4c or BMv2.

The program's source is read as text: its ``#ifndef`` defaults, hash field
orders and report layout must be the model's. The comparison logic runs on
the model against a mutated model.
"""

import re
import struct
from unittest import mock

import pytest

from model import decisions
from model.config import Config
from model.hashing import hash_uses
from model.observations import DROP, FORWARD, REPLY, PacketObservation
from model.types import ACK, PROTO_UDP, RST, SYN, Dip, FiveTuple, Packet
from silkcheck import differential, frames, p4build
from silkcheck.cli import main
from silkcheck.examples import EXAMPLES_DIR
from silkcheck.targets.bmv2 import PACKET_IN, PACKET_OUT, REPORT_FIELDS, REPORT_HEADER
from silkcheck.targets.model import ModelTarget
from silkcheck.trace import load
from tests.helpers import D1, D2, flow


def test_source_defaults_are_the_config_defaults():
    assert p4build.source_defaults() == Config().p4_constants()


def test_build_passes_every_constant_as_a_define():
    config = Config(digest_bits=8, stages=2, syn_auth=True)
    assert p4build.defines(config) == [f"-D{k}={v}" for k, v in config.p4_constants().items()]
    assert "-DSYN_AUTH=1" in p4build.defines(config)


def test_hash_calls_use_the_model_orders_and_algorithms():
    in_source = p4build.source_hashes()
    model = {use.name: (use.algorithm, use.order) for use in hash_uses(Config(stages=8, bloom_hashes=4))}
    targets = {"digest": "digest", "dip": "dip_index", "cookie": "cookie"}
    targets |= {f"stage{s}": f"bucket{s}" for s in range(8)} | {f"bloom{j}": f"bloom{j}" for j in range(4)}
    assert len(in_source) == len(model)
    for use, field in targets.items():
        assert in_source[field] == model[use], use


def test_report_digest_layout_is_the_one_the_target_decodes():
    source = p4build.P4_SOURCE.read_text()
    body = re.search(r"struct report_t \{(.*?)\}", source, re.S).group(1)
    assert tuple(re.findall(r"(\w+);", body)) == REPORT_FIELDS


def _header_fields(source: str, name: str) -> list[tuple[str, int]]:
    body = re.search(rf"header {name} \{{(.*?)\}}", source, re.S).group(1)
    return [(field, int(bits)) for bits, field in re.findall(r"bit<(\d+)>\s+(\w+);", body)]


def test_harness_headers_are_the_layouts_the_target_reads():
    """report_h carries REPORT_FIELDS in order at the widths REPORT_HEADER reads; packet_out_t and
    packet_in_t are the tag and port PACKET_OUT and PACKET_IN pack and unpack."""
    source = p4build.P4_SOURCE.read_text()
    widths = {"I": 32, "H": 16, "B": 8}
    letters = re.sub(r"(\d+)(\w)", lambda m: m.group(2) * int(m.group(1)), REPORT_HEADER.format.lstrip("!"))
    assert _header_fields(source, "report_h") == [(f, widths[c]) for f, c in zip(REPORT_FIELDS, letters, strict=True)]
    for name, layout in (("packet_out_t", PACKET_OUT), ("packet_in_t", PACKET_IN)):
        assert [bits for _, bits in _header_fields(source, name)] == [widths[c] for c in layout.format.lstrip("!")]


def test_build_folders_are_keyed_by_config(tmp_path):
    a = p4build.build_dir(Config(), tmp_path)
    assert p4build.build_dir(Config(), tmp_path) == a
    assert p4build.build_dir(Config(digest_bits=16), tmp_path) != a
    assert p4build.build_dir(Config(idle_timeout=5_000), tmp_path) == a  # not compiled in


def test_p4_build_without_p4c_names_the_missing_tool(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(p4build, "BUILD_ROOT", tmp_path / "build")
    assert main(["p4-build"]) == 2
    assert "p4c is not on PATH" in capsys.readouterr().err


# ---------------------------------------------------------------- frames


def _ones_sum_ok(data: bytes) -> bool:
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


@pytest.mark.parametrize("packet", [
    Packet(flow(1), SYN, seq=7),
    Packet(flow(2), ACK | RST, seq=0xFFFFFFFF, ack=12345),
    Packet(FiveTuple(0x01020304, 0x14000002, 5353, 53, PROTO_UDP)),
])  # fmt: skip
def test_frames_carry_valid_checksums_and_parse_back(packet):
    data = frames.packet_frame(packet).to_bytes()
    ip = data[14:34]
    l4 = data[34:]
    pseudo = ip[12:20] + bytes([0, packet.ft.proto]) + struct.pack("!H", len(l4))
    assert _ones_sum_ok(ip)
    assert _ones_sum_ok(pseudo + l4)
    assert frames.parse(data) == frames.packet_frame(packet)


def test_scapy_agrees_with_our_checksums():
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    data = frames.packet_frame(Packet(flow(3), SYN | ACK, seq=99, ack=100)).to_bytes()
    ours = Ether(data)
    fresh = Ether(data)
    del fresh[IP].chksum
    del fresh[TCP].chksum
    fresh = Ether(bytes(fresh))
    assert (ours[IP].chksum, ours[TCP].chksum) == (fresh[IP].chksum, fresh[TCP].chksum)


def test_expected_output_rewrites_forward_and_swaps_reply():
    packet = Packet(flow(1), SYN, seq=41)
    forward = frames.expected_output(PacketObservation(0, 0, packet, FORWARD, D2))
    assert (forward.dst_ip, forward.dst_port, forward.src_ip) == (D2.ip, D2.port, flow(1).src_ip)
    reply = frames.expected_output(PacketObservation(0, 0, packet, REPLY, reply_flags=SYN | ACK, reply_seq=5,
                                                     reply_ack=42))  # fmt: skip
    assert (reply.src_ip, reply.dst_ip, reply.src_port, reply.dst_port) == (
        flow(1).dst_ip, flow(1).src_ip, flow(1).dst_port, flow(1).src_port)  # fmt: skip
    assert (reply.flags, reply.seq, reply.ack) == (SYN | ACK, 5, 42)
    assert frames.expected_output(PacketObservation(0, 0, packet, DROP)) is None


# ---------------------------------------------------------------- comparison


def _model_runner(trace):
    """The model as 'the other target', sending exactly the frames its decisions imply."""
    observations = ModelTarget().run(trace)
    egress = {}
    for o in observations:
        if isinstance(o, PacketObservation) and (out := frames.expected_output(o)) is not None:
            port = frames.SERVER_PORT if o.action == FORWARD else frames.CLIENT_PORT
            egress[o.index] = frames.Egress(port, out.to_bytes())
    return observations, egress


def test_identical_targets_agree():
    outcome = differential.run_both(load(EXAMPLES_DIR / "demo-update.json"), _model_runner)
    assert outcome.mismatch is None


def test_a_different_dip_is_reported_at_its_packet():
    trace = load(EXAMPLES_DIR / "demo-update.json")
    model, egress = _model_runner(trace)
    index = next(o.index for o in model if isinstance(o, PacketObservation) and o.action == FORWARD)
    other = list(model)
    other[index] = other[index]._replace(dip=Dip(D1.ip + 1, D1.port))
    mismatch = differential.compare(model, other, egress)
    assert mismatch.index == index
    assert "dip: model" in mismatch.what


@pytest.mark.parametrize("damage", ["byte", "port", "missing"])
def test_frame_differences_are_reported(damage):
    trace = load(EXAMPLES_DIR / "syn-flood.json")
    model, egress = _model_runner(trace)
    index = min(egress)
    sent = egress[index]
    if damage == "byte":
        egress[index] = sent._replace(frame=sent.frame[:-1] + bytes([sent.frame[-1] ^ 1]))
    elif damage == "port":
        egress[index] = sent._replace(port=7)
    else:
        del egress[index]
    mismatch = differential.compare(model, model, egress)
    assert mismatch.index == index
    assert {"byte": "frame bytes differ", "port": "out of port 7", "missing": "sent no frame"}[damage] in mismatch.what


def test_a_frame_for_a_dropped_packet_is_a_mismatch():
    trace = load(EXAMPLES_DIR / "syn-flood.json")
    model, egress = _model_runner(trace)
    dropped = next(o for o in model if isinstance(o, PacketObservation) and o.action == DROP)
    egress[dropped.index] = frames.Egress(2, b"\0" * 60)
    assert differential.compare(model, model, egress).index == dropped.index


def test_a_mutant_is_caught_and_minimized(tmp_path):
    """A data plane that never drops sealed misses differs from the model; the saved trace still shows it."""
    trace = next(
        t for t in (differential.random_trace(seed, "collide") for seed in range(50))
        if any(o.path == "miss:sealed-transit-hit" for o in ModelTarget().run(t) if isinstance(o, PacketObservation))
    )  # fmt: skip

    def mutant(t):
        with mock.patch.object(decisions, "drops_sealed", lambda o, hit, phase, transit_hit: False):
            return _model_runner(t)

    outcome = differential.run_both(trace, mutant)
    assert outcome.mismatch is not None
    path = differential.save_mismatch(outcome, mutant, tmp_path)
    small = load(path)
    assert len(small.events) <= outcome.mismatch.index + 1
    assert differential.run_both(small, mutant).mismatch is not None
    assert differential.run_both(small, _model_runner).mismatch is None


def test_random_traces_are_reproducible_and_reach_every_decision():
    assert differential.random_trace(3, "synflood").events == differential.random_trace(3, "synflood").events
    paths = set()
    for profile in differential.PROFILES:
        for seed in range(15):
            for o in ModelTarget().run(differential.random_trace(seed, profile)):
                if isinstance(o, PacketObservation):
                    paths.add(o.path.split(":v")[0])
    assert {"no-vip", "auth:syn-ack", "auth:cookie-ok", "auth:drop", "miss:sealed-transit-hit", "miss:normal",
            "miss:record", "miss:transit-hit", "miss:transit-miss", "hit:stage0", "hit:stage1"} <= paths  # fmt: skip


def test_campaign_batches_hold_one_profile_each_and_every_trace_once():
    tasks = list(differential.campaign_tasks(40, 600))
    batches = list(differential.profile_batches(tasks, 4))
    assert all(len({task.profile for task in batch}) == 1 and 1 <= len(batch) <= 4 for batch in batches)
    assert sorted(task.seed for batch in batches for task in batch) == [task.seed for task in tasks]
    assert [len(batch) for batch in batches].count(4) == len(batches) - len(differential.PROFILES)
