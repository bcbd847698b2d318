"""The PCC oracle on hand-built observations: it must flag what is wrong, and only that."""

import pytest

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
    relearned = h.pkt(2000, A, learned=("new",)).cpu(2001, learned=(("new", A, 2000),)).pkt(2100, A, dip=D2).judge()
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
        .cpu(1, installs=(EntryWrite(*key, 1, B),), learned=(("new", B, 0),))  # B's entry aliases A
        .pkt(2, A, dip=D2, hit_key=key)
        .judge()
    )
    assert v.ok and [f.category for f in v.findings] == [DIGEST_ALIAS]
    assert "changed at #1 (decided at #1) before the CPU learned this incarnation" in v.findings[0].explanation


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
        .cpu(1, learned=(("new", A, 0),))  # the CPU knows A (unplaced)
        .cpu(2, installs=(EntryWrite(*key, 1, B),))
        .pkt(3, A, dip=D2, hit_key=key)
        .judge()
    )
    assert [f.category for f in v.findings] == [VIOLATION]


A_PATH = dict(buckets=(3, 4, 6), digest=0x5)
"""A's lookup reads (0, 3, 0x5), (1, 4, 0x5) and (2, 6, 0x5)."""
NOW_AT_STAGE_0 = ("the entry (stage 1, bucket 4, digest 0x5) of", "found the same version at (stage 0, bucket 3)")


@pytest.mark.parametrize("split", [False, True], ids=["one-step", "packet-between-writes"])
def test_a_move_of_the_alias_the_lookup_already_reached_is_judged_by_the_alias_install(split: bool) -> None:
    old, new = (1, 4, 0x5), (0, 3, 0x5)
    copy, delete = dict(installs=(EntryWrite(*new, 1, B),)), dict(removes=(EntryWrite(*old, 1, B),))
    h = (
        History()
        .pkt(0, A, flags=SYN, **A_PATH)  # A misses everywhere
        .cpu(1, installs=(EntryWrite(*old, 1, B),))  # B's entry aliases A before the CPU knows A
        .cpu(2, learned=(("new", A, 0),))
    )
    h = h.cpu(3, **copy).pkt(4, A, dip=D2, hit_key=new).cpu(5, **delete) if split else h.cpu(3, **copy, **delete)
    v = h.pkt(6, A, dip=D2, hit_key=new).judge()
    assert v.ok and [f.category for f in v.findings] == [DIGEST_ALIAS]
    assert all(part in v.findings[0].explanation for part in NOW_AT_STAGE_0)
    assert "changed at #1 (decided at #1)" in v.findings[0].explanation


def test_an_entry_of_the_same_version_in_front_of_an_alias_keeps_the_alias_s_capture() -> None:
    alias, front = (1, 4, 0x5), (0, 3, 0x5)
    v = (
        History()
        .pkt(0, A, flags=SYN, **A_PATH)
        .cpu(1, installs=(EntryWrite(*alias, 1, B),))  # B's entry aliases A before the CPU knows A
        .cpu(2, learned=(("new", A, 0),))
        .cpu(3, installs=(EntryWrite(*front, 1, flow(7)),))  # another alias, same version, an earlier stage
        .pkt(4, A, dip=D2, hit_key=front)
        .judge()
    )
    assert v.ok and [f.category for f in v.findings] == [DIGEST_ALIAS]
    assert all(part in v.findings[0].explanation for part in NOW_AT_STAGE_0)


@pytest.mark.parametrize("old, version, shadow", [
    ((1, 9, 0x5), 1, None),  # the old copy was off A's path: the move made the capture
    ((2, 6, 0x5), 1, (1, 4, 0x5)),  # the old copy was behind another alias, of version 2: A's version changed
    ((1, 4, 0x5), 2, None),  # the copy has another version than the entry A's lookup reached
], ids=["off-path", "behind-another-entry", "other-version"])  # fmt: skip
def test_a_move_that_changes_what_the_lookup_reaches_is_judged_by_the_move(old, version, shadow) -> None:
    new = (0, 3, 0x5)
    aliases = (EntryWrite(*old, 1, B),) + ((EntryWrite(*shadow, 2, flow(7)),) if shadow else ())
    v = (
        History()
        .pkt(0, A, flags=SYN, **A_PATH)
        .cpu(1, installs=aliases)
        .cpu(2, learned=(("new", A, 0),))
        .cpu(3, installs=(EntryWrite(*new, version, B),), removes=(EntryWrite(*old, 1, B),))
        .pkt(4, A, dip=D2, hit_key=new)
        .judge()
    )
    assert [f.category for f in v.findings] == [VIOLATION]


@pytest.mark.parametrize("lost_up_to, category", [(3, DIGEST_ALIAS), (1, VIOLATION)],
                         ids=["all-it-knew-lost", "a-later-event-survives"])  # fmt: skip
def test_a_write_decided_after_a_fault_destroyed_what_the_cpu_knew_is_judged_as_before_learning(
    lost_up_to: int, category: str
) -> None:
    key = (0, 3, 0x5)
    v = (
        History()
        .pkt(0, A, flags=SYN, learned=("syn",))
        .pkt(2, A, learned=("new",))
        .cpu(3, learned=(("syn", A, 0), ("new", A, 2)))
        .cpu(4, kind="restart", lost=((A, lost_up_to),))  # what A's packets sent up to then taught the CPU may be gone
        .pkt(5, A, learned=("new",))
        .cpu(6, installs=(EntryWrite(*key, 1, B),))  # B's entry aliases A
        .cpu(7, learned=(("new", A, 5),))  # the CPU learns A again: the fault is healed
        .pkt(8, A, dip=D2, hit_key=key)
        .judge()
    )
    assert [f.category for f in v.findings] == [category]
    if category == DIGEST_ALIAS:
        assert "before the CPU learned this incarnation again (a fault at #3" in v.findings[0].explanation


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


# ---------------------------------------------------------------- the streaming oracle


def _findings(verdict):
    return [(f.category, f.kind, f.ft, f.incarnation, f.first.index, f.explanation) for f in verdict.findings]


def _both_ways(config, observations):
    """``judge`` and a streaming oracle keeping 4 packets per incarnation must find the same."""
    from silkcheck.oracle import Oracle

    whole = judge(config, observations)
    streamed = Oracle(config, window=4).feed_all(iter(observations)).verdict()
    assert _findings(streamed) == _findings(whole)
    assert streamed.connections == len(whole.incarnations) and not streamed.incarnations
    assert all(len(f.packets) <= 4 for f in streamed.findings)
    return whole


def test_streaming_judges_every_shipped_and_regression_trace_as_judge_does():
    from pathlib import Path

    from silkcheck.examples import EXAMPLES_DIR
    from silkcheck.targets.model import ModelTarget
    from silkcheck.trace import load

    paths = sorted(Path("tests/data").glob("*.json")) + sorted(EXAMPLES_DIR.glob("*.json"))
    assert len(paths) > 10
    for path in paths:
        trace = load(path)
        _both_ways(trace.config, ModelTarget().run(trace))


def test_streaming_judges_random_walks_as_judge_does_on_the_model_and_on_mutants():
    from fuzz.mutants import MUTANTS_BY_NAME
    from fuzz.walk import walk
    from silkcheck.targets.model import ModelTarget

    found = 0
    for mutant in (None, "teardown-without-grace", "exec-without-bound-wait", "cuckoo-unchecked-writes"):
        patch = MUTANTS_BY_NAME[mutant].patch() if mutant else __import__("contextlib").nullcontext()
        with patch:
            for seed in range(40):
                trace = walk(seed).trace
                found += len(_both_ways(trace.config, ModelTarget().run(trace)).findings)
    assert found > 0  # the comparison covered classified findings, not only passes


def test_streaming_memory_follows_live_connections_not_packets():
    """20,000 short connections one after another: only those within idle_timeout stay live."""
    from silkcheck.oracle import Oracle

    oracle = Oracle(CONFIG)
    peak = 0
    for n in range(20_000):
        ft = flow(n % 60_000, port=1000 + n // 60_000)
        for k, flags in enumerate((SYN, ACK, FIN | ACK)):
            oracle.feed(PacketObservation(3 * n + k, 10 * n + k, Packet(ft, flags), FORWARD, D1))
        peak = max(peak, len(oracle.live))
    verdict = oracle.verdict()
    assert verdict.ok and verdict.connections == 20_000 and verdict.packets == 60_000
    assert peak <= CONFIG.idle_timeout // 10 + 2


def test_streaming_keeps_cpu_history_only_for_awaiting_connections():
    from silkcheck.oracle import Oracle

    oracle = Oracle(CONFIG)
    for n in range(5_000):
        write = EntryWrite(0, n % 64, n, 0, flow(n))
        oracle.feed(CpuObservation(2 * n, 2 * n, "learn", installs=(write,), removes=(write,)))
        oracle.feed(PacketObservation(2 * n + 1, 2 * n + 1, Packet(flow(n), SYN), FORWARD, D1, hit_key=write.key))
    assert oracle.changes_kept < 3_000


def test_the_streaming_oracle_refuses_observations_out_of_time_order():
    import pytest

    from silkcheck.oracle import Oracle

    oracle = Oracle(CONFIG)
    oracle.feed(PacketObservation(0, 10, Packet(A, SYN), FORWARD, D1))
    with pytest.raises(ValueError, match="time order"):
        oracle.feed(PacketObservation(1, 5, Packet(A), FORWARD, D1))


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
