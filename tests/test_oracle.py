"""The PCC oracle on hand-built observations: it must flag what is wrong, and only that."""

from model.config import Config
from model.observations import DROP, FORWARD, REPLY, CpuObservation, EntryWrite, PacketObservation
from model.types import ACK, FIN, PROTO_TCP, SYN, Packet, Vip, parse_ip
from silkcheck.oracle import DIGEST_ALIAS, DIP_FAILURE, FAULT, VIOLATION, judge
from tests.helpers import D1, D2, flow

CONFIG = Config(idle_timeout=1000, teardown_grace=100, learn_delay_bound=10)
A, B = flow(1), flow(2)
OTHER_VIP = Vip(parse_ip("20.0.0.2"), 80, PROTO_TCP)


class History:
    def __init__(self) -> None:
        self.obs: list = []

    def pkt(self, t, ft, action=FORWARD, dip=D1, flags=ACK, hit_key=None, **kw):
        packet = Packet(ft, flags, kw.pop("seq", 0), kw.pop("ack", 0))
        dip = dip if action == FORWARD else None
        self.obs.append(PacketObservation(len(self.obs), t, packet, action, dip, hit_key=hit_key, **kw))
        return self

    def cpu(self, t, **kw):
        self.obs.append(CpuObservation(len(self.obs), t, kw.pop("kind", "learn"), **kw))
        return self

    def judge(self, config=CONFIG):
        return judge(config, self.obs)


def test_consistent_history_passes():
    v = History().pkt(0, A, flags=SYN).pkt(1, B, dip=D2, flags=SYN).pkt(2, A).pkt(3, B, dip=D2).judge()
    assert v.ok and not v.findings
    assert [(i.ft, len(i.packets)) for i in v.incarnations] == [(A, 2), (B, 2)]


def test_moved_connection_is_a_violation_naming_its_packets():
    v = History().pkt(0, A, flags=SYN).pkt(1, B).pkt(2, A).pkt(3, A, dip=D2).pkt(4, A, dip=D2).judge()
    assert not v.ok
    (finding,) = v.findings
    assert finding.category == VIOLATION and finding.ft == A
    assert [p.index for p in finding.offending] == [3, 4]
    assert [p.index for p in finding.packets] == [0, 2, 3]
    assert "packet #0 went to 10.0.1.10:8080, packet #3 to 10.0.2.10:8080" in finding.explanation


def test_drops_do_not_anchor_and_are_not_moves():
    v = History().pkt(0, A, action=DROP, flags=SYN).pkt(1, A, dip=D2, flags=SYN).pkt(2, A, action=DROP).judge()
    assert v.ok and v.incarnations[0].anchor.index == 1


def test_idle_gap_starts_a_new_incarnation():
    v = History().pkt(0, A, flags=SYN).pkt(2000, A, dip=D2).judge()
    assert v.ok and len(v.incarnations) == 2


def test_packets_within_grace_after_fin_belong_to_the_connection():
    moved = History().pkt(0, A, flags=SYN).pkt(10, A, flags=FIN | ACK).pkt(50, A, dip=D2).judge()
    assert not moved.ok
    later = History().pkt(0, A, flags=SYN).pkt(10, A, flags=FIN | ACK).pkt(200, A, dip=D2).judge()
    assert later.ok and len(later.incarnations) == 2
    reuse = History().pkt(0, A, flags=SYN).pkt(10, A, flags=FIN | ACK).pkt(20, A, dip=D2, flags=SYN).judge()
    assert reuse.ok and len(reuse.incarnations) == 2


def test_leftover_packets_after_a_closed_connection_are_closing_too():
    h = History().pkt(0, A, flags=SYN).pkt(10, A, flags=FIN | ACK).pkt(200, A).pkt(400, A, dip=D2)
    v = h.judge()
    assert v.ok and len(v.incarnations) == 3


def test_retransmitted_syn_is_the_same_incarnation():
    v = History().pkt(0, A, flags=SYN).pkt(5, A, dip=D2, flags=SYN).judge()
    assert not v.ok


def test_failed_dip_is_reported_apart():
    v = History().pkt(0, A, flags=SYN).cpu(1, kind="dip_fail", failed_dips=(D1,)).pkt(2, A, dip=D2).judge()
    assert v.ok and [f.category for f in v.findings] == [DIP_FAILURE]


def test_lost_learn_event_is_reported_as_a_fault():
    v = History().pkt(0, A, flags=SYN).cpu(1, kind="lose_learn", lost=((A, 0),)).pkt(2, A, dip=D2).judge()
    assert v.ok and [f.category for f in v.findings] == [FAULT]


def test_a_lost_event_shapes_later_incarnations_until_the_cpu_learns_a_later_packet():
    # The SYN's event is lost; after an idle gap the connection continues by hits (no learn events).
    h = History().pkt(0, A, flags=SYN, learned=("syn",)).cpu(1, kind="lose_learn", lost=((A, 0),))
    unlearned = h.pkt(2000, A).pkt(2100, A, dip=D2).judge()
    assert unlearned.ok and [f.category for f in unlearned.findings] == [FAULT]
    # A later packet taught the CPU again: the fault no longer explains the move.
    h = History().pkt(0, A, flags=SYN, learned=("syn",)).cpu(1, kind="lose_learn", lost=((A, 0),))
    relearned = h.pkt(2000, A, learned=("new",)).cpu(2001, learned=(("new", A),)).pkt(2100, A, dip=D2).judge()
    assert not relearned.ok and [f.category for f in relearned.findings] == [VIOLATION]


def test_a_key_freed_by_a_move_and_taken_in_the_same_step_has_the_new_owner():
    key, other = (1, 1, 0), (2, 0, 0)
    c = flow(3, vip=OTHER_VIP)
    moves = dict(installs=(EntryWrite(*other, 0, B), EntryWrite(*key, 0, c)), removes=(EntryWrite(*key, 0, B),))
    v = History().cpu(0, **moves).pkt(1, A, flags=SYN, hit_key=key).pkt(2, A, dip=D2).judge()
    assert [f.category for f in v.findings] == [DIGEST_ALIAS]  # captured by c, a connection of another VIP
    assert "another VIP" in v.findings[0].explanation


def test_entry_of_another_connection_written_before_learning_is_digest_alias():
    key = (0, 3, 0x5)
    v = (
        History()
        .pkt(0, A, flags=SYN)  # A misses: pending, learn in flight
        .cpu(1, installs=(EntryWrite(*key, 1, B),), learned=(("new", B),))  # B's entry aliases A
        .pkt(2, A, dip=D2, hit_key=key)
        .judge()
    )
    assert v.ok and [f.category for f in v.findings] == [DIGEST_ALIAS]
    assert "changed at #1 before the CPU had learned this connection" in v.findings[0].explanation


def test_capture_by_another_vips_connection_is_digest_alias():
    from model.types import Vip

    key = (2, 0, 0x0)
    other_vip = Vip(A.dst_ip, 443, A.proto)
    captor = flow(9, vip=other_vip)
    v = (
        History()
        .cpu(0, installs=(EntryWrite(*key, 1, captor),))
        .pkt(1, A, hit_key=key)
        .cpu(2, notes=("reclaimed version 1",))
        .pkt(3, A, dip=D2, hit_key=key)
        .judge()
    )
    assert [f.category for f in v.findings] == [DIGEST_ALIAS]
    assert "a connection of another VIP" in v.findings[0].explanation


def test_alias_entry_after_the_cpu_learned_the_connection_is_a_violation():
    key = (0, 3, 0x5)
    v = (
        History()
        .pkt(0, A, flags=SYN)
        .cpu(1, learned=(("new", A),))  # the CPU knows A (unplaced)
        .cpu(2, installs=(EntryWrite(*key, 1, B),))
        .pkt(3, A, dip=D2, hit_key=key)
        .judge()
    )
    assert [f.category for f in v.findings] == [VIOLATION]


def test_hit_on_an_alias_installed_before_the_connection_started_is_a_violation():
    key = (0, 3, 0x5)
    v = (
        History()
        .cpu(0, installs=(EntryWrite(*key, 1, B),))
        .pkt(1, A, flags=SYN)  # a SYN that ignored its hit (the paper-literal rule)
        .pkt(2, A, dip=D2, hit_key=key)
        .judge()
    )
    assert [f.category for f in v.findings] == [VIOLATION]


def test_spoofed_source_reaching_a_dip_is_a_violation():
    config = Config(syn_auth=True)
    v = History().pkt(0, A, flags=SYN).judge(config)
    assert [(f.category, f.kind) for f in v.findings] == [(VIOLATION, "spoofed")]


def test_source_proven_by_cookie_may_reach_a_dip():
    config = Config(syn_auth=True)
    h = History().pkt(0, A, action=REPLY, flags=SYN, reply_flags=SYN | ACK, reply_seq=41)
    h.pkt(1, A, action=REPLY, flags=ACK, ack=42, reply_flags=0x04)
    h.pkt(2, A._replace(src_port=7), flags=SYN).pkt(3, A._replace(src_port=7))
    assert h.judge(config).ok
    wrong = History().pkt(0, A, action=REPLY, flags=SYN, reply_flags=SYN | ACK, reply_seq=41)
    wrong.pkt(1, A, action=DROP, flags=ACK, ack=41).pkt(2, A._replace(src_port=7), flags=SYN)
    assert not wrong.judge(config).ok


def test_a_cookie_proves_only_from_the_flow_its_syn_ack_went_to():
    config = Config(syn_auth=True)
    h = History().pkt(0, A, action=REPLY, flags=SYN, reply_flags=SYN | ACK, reply_seq=41)
    h.pkt(1, A._replace(src_port=7), action=REPLY, flags=ACK, ack=42, reply_flags=0x04)  # another port answers
    h.cpu(2, whitelisted=(A.src_ip,), installs=(EntryWrite(0, 1, 2, 0, A._replace(src_port=8)),))
    h.pkt(3, A._replace(src_port=8), flags=SYN)
    v = h.judge(config)
    assert [(f.kind, f.ft.src_port) for f in v.violations] == [("spoofed", 8)]
    assert (v.auth.syn_acks, v.auth.proved, v.auth.served) == (1, 0, 0)
    assert (v.auth.whitelisted, v.auth.whitelisted_unproved, v.auth.entries_unproved) == (1, 1, 1)


def test_the_authentication_tally_counts_proved_and_served_sources():
    config = Config(syn_auth=True)
    h = History().pkt(0, A, action=REPLY, flags=SYN, reply_flags=SYN | ACK, reply_seq=41)
    h.pkt(1, A, action=REPLY, flags=ACK, ack=42, reply_flags=0x04).cpu(2, whitelisted=(A.src_ip,))
    h.pkt(3, B, action=REPLY, flags=SYN, reply_flags=SYN | ACK, reply_seq=9).pkt(4, A._replace(src_port=7), flags=SYN)
    v = h.judge(config)
    assert v.ok
    assert (v.auth.syn_acks, v.auth.proved, v.auth.served, v.auth.whitelisted, v.auth.whitelisted_unproved) == (
        2, 1, 1, 1, 0)  # fmt: skip
