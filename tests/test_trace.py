"""The trace language: round trips, the examples, and every loader error."""

import json

import pytest

from silkcheck.examples import BUILDERS, EXAMPLES_DIR
from silkcheck.targets.model import ModelTarget, sent_packets
from silkcheck.trace import CookieAck, TraceError, dumps, load, loads

GOOD = {
    "format": "silkcheck-trace",
    "version": 1,
    "vips": [{"vip": "20.0.0.1:80/tcp", "pool": ["10.0.1.10:8080"]}],
    "events": [
        {"t": 0, "kind": "packet", "src": "1.2.3.4:1000", "dst": "20.0.0.1:80", "proto": "tcp", "flags": "S"},
        {"t": 5, "kind": "update", "vip": "20.0.0.1:80/tcp", "pool": ["10.0.1.10:8080", "10.0.2.10:8080"]},
        {"t": 6, "kind": "cpu", "learn": 2},
        {"t": 7, "kind": "advance"},
        {"t": 8, "kind": "expire"},
        {"t": 9, "kind": "fault", "fault": "delay_learn", "index": 0, "delay": 500},
        {"t": 9, "kind": "fault", "fault": "lose_learn", "index": 0},
        {"t": 9, "kind": "fault", "fault": "cpu_restart"},
        {"t": 9, "kind": "fault", "fault": "dip_fail", "dip": "10.0.1.10:8080"},
    ],
}

GOOD_TEXT = json.dumps(GOOD)


GOOD_TEXT = json.dumps(GOOD)


def variant(path: str, value: object) -> str:
    """GOOD with one field replaced (path like 'events.0.src'); value None deletes it."""
    data = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key = int(last) if last.isdigit() else last
    if value is None:
        del node[key]
    else:
        node[key] = value
    return json.dumps(data)


def test_round_trip():
    trace = loads(json.dumps(GOOD), "good.json")
    assert len(trace.events) == 9
    again = loads(dumps(trace))
    assert again.events == trace.events and again.vips == trace.vips and again.config == trace.config


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_shipped_examples_are_what_the_builders_make(name):
    assert (EXAMPLES_DIR / f"{name}.json").read_text() == dumps(BUILDERS[name]())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format": ', "bad.json: line 1 column 12: invalid JSON"),
        ("[1, 2]", "bad.json: trace: expected a JSON object, got list"),
        (variant("format", "pcap"), "trace.format: expected 'silkcheck-trace', got 'pcap'"),
        (variant("version", 7), "trace.version: this silkcheck reads versions 1 to 2, the trace is version 7"),
        (variant("events.2.kind", "teleport"), "events[2].kind: unknown event kind 'teleport'"),
        (variant("events.0.dst", "20.0.0.2:80"), "events[0] (packet).dst: unknown VIP 20.0.0.2:80/tcp"),
        (variant("events.1.vip", "20.0.0.9:80/tcp"), "events[1] (update).vip: unknown VIP 20.0.0.9:80/tcp"),
        (variant("vips.0.pool", []), "vips[0].pool: the pool is empty: a VIP needs at least one DIP"),
        (variant("events.1.pool", []), "events[1] (update).pool: the pool is empty"),
        (variant("events.0.src", "1.2.3.4:70000"), "events[0] (packet).src: port '70000' is not in 0..65535"),
        (variant("events.0.src", "1.2.3.999:1"), "events[0] (packet).src: '1.2.3.999' is not an IPv4 address"),
        (variant("events.0.seq", 1 << 32), "events[0] (packet).seq: 4294967296 is out of range"),
        (variant("events.0.flags", "SX"), "events[0] (packet).flags: unknown TCP flag 'X'"),
        (variant("events.0.proto", "icmp"), "events[0] (packet).proto: expected one of tcp, udp, got 'icmp'"),
        (variant("events.3.t", 1), "events[3] (advance).t: time goes backwards: 1 after 6"),
        (variant("events.0.t", -1), "events[0] (packet).t: -1 is out of range"),
        (variant("events.2.learn", 0), "events[2] (cpu).learn: 0 is out of range"),
        (variant("events.5.delay", 5000), "events[5] (fault).delay: 5000 is out of range [0, 1000]"),
        (variant("events.8.dip", "9.9.9.9:1"), "events[8] (fault).dip: 9.9.9.9:1 is in no pool so far"),
        (variant("events.7.fault", "meteor"), "events[7] (fault).fault: unknown fault 'meteor'"),
        (variant("events.0.colour", "red"), "events[0] (packet): unknown field(s) colour"),
        (variant("events.0.src", None), "events[0] (packet).src: missing required field"),
        (variant("config", {"digest_bits": 40}), "trace.config: config field 'digest_bits' = 40 is out of range"),
        (variant("config", {"stagez": 2}), "trace.config: unknown config field(s) 'stagez'"),
        (variant("vips.0.vip", "20.0.0.1:80"), 'vips[0].vip: expected "IP:PORT/tcp" or "IP:PORT/udp"'),
        (variant("events.0.src", "1.2.3.4:٨٠"), "events[0] (packet).src: port '٨٠' is not in 0..65535"),
        (variant("events.0.src", "1.2.3.4:+80"), "events[0] (packet).src: port '+80' is not in 0..65535"),
        (variant("name", ["x" * 200_000]), "trace.name: expected a string, got ['xxxx"),
        (variant("config", {"vip_capacity": 0}), "config field 'vip_capacity' = 0 is out of range"),
        (GOOD_TEXT.replace('"version": 1', '"version": 1, "version": 1'), "bad.json: the top level: duplicate key(s)"),
        ('{"format": "silkcheck-trace", "version": 1, "vips": [], "events": [], "t": ' + "1" * 5000 + "}",
         "bad.json: t: an integer literal of 5,000 digits"),
    ],
)
def test_loader_errors_name_file_event_and_field(text, message):
    with pytest.raises(TraceError) as error:
        loads(text, "bad.json")
    assert message in str(error.value)
    assert len(str(error.value)) < 400  # values are quoted briefly, however long


def test_configs_the_p4_program_cannot_hold_are_refused():
    two_vips = json.loads(variant("config", {"vip_capacity": 1}))
    two_vips["vips"].append({"vip": "20.0.0.2:80/tcp", "pool": ["10.0.1.10:8080"]})
    with pytest.raises(TraceError, match=r"trace.vips: 2 VIPs; the P4 program's VIPTable holds 1"):
        loads(json.dumps(two_vips), "bad.json")
    small_pools = json.loads(variant("config", {"dip_pool_capacity": 1}))
    with pytest.raises(TraceError, match=r"events\[1\] \(update\).pool: 2 DIPs; a pool holds at most 1"):
        loads(json.dumps(small_pools), "bad.json")
    small_pools["config"]["dip_pool_capacity"] = 2
    small_pools["vips"] += [{"vip": "20.0.0.2:80/tcp", "pool": ["10.0.1.10:8080", "10.0.1.11:8080"]}]
    with pytest.raises(TraceError, match=r"trace.vips: the initial pools hold 3 DIPs together"):
        loads(json.dumps(small_pools), "bad.json")


REACTIVE = {
    "format": "silkcheck-trace",
    "version": 2,
    "config": {"syn_auth": True},
    "vips": [{"vip": f"20.0.0.{n}", "pool": ["10.0.1.10:8080"]} for n in ("1:80/tcp", "2:80/tcp", "3:53/udp")],
    "events": [
        {"t": 0, "kind": "packet", "src": "1.2.3.4:1000", "dst": "20.0.0.1:80", "proto": "tcp", "flags": "S"},
        {"t": 1, "kind": "packet", "src": "1.2.3.4:1000", "dst": "20.0.0.1:80", "proto": "tcp", "flags": "A",
         "seq": 1, "ack": "cookie+1"},
        {"t": 2, "kind": "packet", "src": "9.9.9.9:7", "dst": "20.0.0.2:80", "proto": "tcp", "flags": "A",
         "ack": "cookie(1.2.3.4:1000->20.0.0.1:80)^0x0000ff00-3"},
        {"t": 3, "kind": "packet", "src": "1.2.3.4:1000", "dst": "20.0.0.1:80", "proto": "tcp", "flags": "A",
         "ack": "cookie"},
    ],
}


def reactive_variant(index: int, **fields: object) -> str:
    data = json.loads(json.dumps(REACTIVE))
    node = data if index < 0 else data["events"][index]
    node.update(fields)
    return json.dumps(data)


def test_reactive_packets_round_trip_and_name_their_cookie():
    trace = loads(json.dumps(REACTIVE))
    own, other, bare = trace.events[1:]
    assert isinstance(own, CookieAck) and own.cookie_of == own.packet.ft and own.offset == 1
    assert isinstance(other, CookieAck) and str(other.cookie_of) == "1.2.3.4:1000->20.0.0.1:80/tcp"
    assert (other.xor, other.offset) == (0xFF00, -3) and bare.offset == 0 and bare.cookie_of == bare.packet.ft
    assert [e["ack"] for e in json.loads(dumps(trace))["events"][1:]] == [e["ack"] for e in REACTIVE["events"][1:]]
    assert loads(dumps(trace)).events == trace.events
    assert json.loads(dumps(trace))["version"] == 2
    assert json.loads(dumps(loads(json.dumps(GOOD))))["version"] == 1  # a version 1 trace stays version 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (reactive_variant(1, ack="cookie*2"), 'events[1] (packet).ack: expected an integer or one of "cookie"'),
        (reactive_variant(1, ack="cookie+٣"), "events[1] (packet).ack: expected an integer or one of"),
        (reactive_variant(1, ack="cookie+9999999999"), "events[1] (packet).ack: offset 9999999999 is out of range"),
        (reactive_variant(1, ack="cookie^0x123456789+1"), "events[1] (packet).ack: expected an integer or one of"),
        (reactive_variant(-1, version=1), "events[1] (packet).ack: a reactive ack needs trace version 2"),
        (reactive_variant(-1, config={}), "events[1] (packet).ack: config.syn_auth is false"),
        (reactive_variant(1, dst="20.0.0.3:53", proto="udp", flags="."),
         "events[1] (packet).ack: only TCP packets answer a SYN cookie"),
        (reactive_variant(2, ack="cookie(1.2.3.4:1000->20.0.0.9:80)+1"),
         "events[2] (packet).ack: the cookie's flow: unknown VIP 20.0.0.9:80/tcp"),
        (reactive_variant(2, ack="cookie(1.2.3.4->20.0.0.1:80)+1"),
         "events[2] (packet).ack: expected \"IP:PORT\", got '1.2.3.4'"),
    ],
)
def test_reactive_ack_errors_name_the_event_and_field(text, message):
    with pytest.raises(TraceError) as error:
        loads(text, "bad.json")
    assert message in str(error.value)


def test_a_reactive_packet_answers_what_the_target_sent():
    trace = loads(json.dumps(REACTIVE))
    observations = ModelTarget().run(trace)
    cookie = observations[0].reply_seq
    acks = [0, cookie + 1, ((cookie ^ 0xFF00) - 3) & 0xFFFFFFFF, cookie]
    assert [o.packet.ack for o in observations] == acks
    assert [o.path for o in observations[1:]] == ["auth:cookie-ok", "auth:drop", "auth:drop"]
    assert [(t, p.ack) for t, p in sent_packets(trace)] == list(enumerate(acks))


def test_a_reactive_packet_with_no_syn_ack_to_answer_is_a_trace_error():
    data = json.loads(json.dumps(REACTIVE))
    del data["events"][0]
    no_syn_ack = r"events\[0\] \(packet\): ack: the switch has sent no SYN-ACK to 1.2.3.4:1000"
    with pytest.raises(TraceError, match=no_syn_ack):
        ModelTarget().run(loads(json.dumps(data)))


def test_dip_fail_may_name_a_dip_added_by_an_update():
    trace = loads(variant("events.8.dip", "10.0.2.10:8080"))
    assert str(trace.events[8].dip) == "10.0.2.10:8080"


def test_missing_file(tmp_path):
    with pytest.raises(TraceError, match="cannot read"):
        load(tmp_path / "nope.json")


def test_pcap_export_opens_with_scapy(tmp_path):
    from scapy.layers.inet import TCP
    from scapy.utils import rdpcap

    from silkcheck.pcap import export_pcap

    trace = BUILDERS["demo-update"]()
    out = tmp_path / "demo.pcap"
    assert export_pcap(trace, out) == len(trace.packets)
    frames = rdpcap(str(out))
    assert len(frames) == len(trace.packets)
    first = trace.packets[0]
    assert frames[0][TCP].dport == 80 and frames[0][TCP].flags == "S"
    assert float(frames[1].time) == trace.packets[1].t / 1_000_000
    assert frames[0][TCP].sport == first.packet.ft.src_port
