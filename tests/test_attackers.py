"""Hostile clients: replayed, guessed and flooded cookies, judged from the wire, and the mutants they kill."""

from __future__ import annotations

import random

import pytest

from fuzz import scenario as sc
from fuzz.invariants import Checker
from fuzz.machines import MACHINE_FLOOD_MAX
from fuzz.mutants import get_mutant
from fuzz.walk import replay
from model import events as ev
from model.config import Config
from model.switch import Switch
from model.types import ACK, SYN, Packet, parse_ip
from silkcheck.cli import main
from silkcheck.examples import DEMO_VIP, client, syn_flood, write_flood
from silkcheck.oracle import judge
from silkcheck.targets.model import ModelTarget, step_all
from silkcheck.trace import CookieAck
from tests.helpers import OTHER_PORT, OWNED, SPOOFED, replay_attack


@pytest.mark.parametrize(
    ("mutant", "replayed"), [("cookie-without-source", SPOOFED), ("cookie-without-source-port", OTHER_PORT)]
)
def test_a_replayed_cookie_is_refused_by_the_shipped_switch_and_kills_the_mutant(mutant, replayed):
    trace = replay_attack(replayed)
    shipped = replay(trace.config, trace.vips, trace.events)
    assert shipped.failure is None
    assert [o.path for o in ModelTarget().run(trace)[:2]] == ["auth:syn-ack", "auth:drop"]
    with get_mutant(mutant).patch():
        killed = replay(trace.config, trace.vips, trace.events)
        verdict = judge(trace.config, ModelTarget().run(trace))
    # The abstract system's own guard catches the replayed ACK (the wire invariant, checked after
    # it, agrees: the next test).
    assert killed.failure is not None and (killed.failure.category, killed.failure.at) == ("refinement", 1)
    assert "whitelisted only by the cookie of the SYN-ACK sent to its 5-tuple" in killed.failure.kind
    assert [(f.kind, f.ft.src_ip) for f in verdict.violations] == [("spoofed", replayed.src_ip)]


def test_the_whitelist_invariant_judges_the_wire_not_the_mutated_cookie():
    """The mutated cookie function agrees with the replay; what the switch sent (and to whom) does not."""
    trace = replay_attack(SPOOFED)
    with get_mutant("cookie-without-source").patch():
        switch = Switch.boot(trace.config, trace.vips)
        observations = step_all(switch, trace)
        mutated_cookie = switch.dataplane.plan.cookie(SPOOFED)
    syn_ack, replayed = observations[:2]
    assert replayed.packet.ack == syn_ack.reply_seq + 1  # the runner answered the SYN-ACK the attacker saw
    assert replayed.packet.ack == mutated_cookie + 1 and replayed.path == "auth:cookie-ok"  # and the bug agrees
    checker = Checker(switch, refine=False)  # made after the run: it did not see the steps
    for o in observations[:2]:
        checker.after(ev.PacketArrives(o.t, o.packet), o)
    assert checker.wire.proved == set()  # no SYN-ACK went to the spoofed flow that answered
    assert checker.check(len(observations) - 1).kind == "whitelist_only_proved"


def test_reactive_acks_follow_each_run_s_own_syn_acks():
    trace = replay_attack(OWNED)  # the attacker answers its own SYN-ACK: legitimate
    shipped = ModelTarget().run(trace)
    with get_mutant("cookie-without-source").patch():
        mutated = ModelTarget().run(trace)
    assert shipped[0].reply_seq != mutated[0].reply_seq
    for run in (shipped, mutated):
        assert run[1].packet.ack == run[0].reply_seq + 1 and run[1].path == "auth:cookie-ok"


def world(seed: int, syn_auth: bool = True) -> sc.World:
    dips = sc.dip_universe()
    config = Config(syn_auth=syn_auth, learn_delay_bound=100, buckets_per_stage=8)
    return sc.World.create(config, {DEMO_VIP: dips[:2], DEMO_VIP._replace(ip=DEMO_VIP.ip + 1): dips[2:3]}, dips)


def test_replays_vary_source_port_vip_and_time():
    changed = set()
    for seed in range(200):
        c, w = sc.RandomChooser(random.Random(seed)), world(seed)
        for event in sc.cookie_replay(c, w):
            w.apply(event)
        replays = [e for e in w.trace.events if isinstance(e, CookieAck)]
        assert replays and all(sc.is_owned(e.cookie_of.src_ip) for e in replays)
        for e in replays:
            seen, sent = e.cookie_of, e.packet.ft
            changed.add(tuple(name for name in ("src_ip", "src_port", "dst_ip") if getattr(seen, name) !=
                              getattr(sent, name)))  # fmt: skip
    assert {(), ("src_ip",), ("src_port",), ("dst_ip",)} <= changed
    assert any(len(c) >= 2 for c in changed)


def test_guessers_are_bounded_and_spoof():
    for seed in range(200):
        c, w = sc.RandomChooser(random.Random(seed)), world(seed)
        w.seen[OWNED] = None
        events = sc.spoofed_packet(c, w)
        assert 1 <= len(events) <= sc.GUESSES
        assert len({e.packet.ft for e in events}) == 1
        assert not sc.is_owned(events[0].packet.ft.src_ip)


class Fixed(sc.RandomChooser):
    """Every chance comes true: the largest flood."""

    def chance(self, percent: int) -> bool:
        return True


def test_floods_reach_the_world_s_largest_with_distinct_sources():
    w = world(1)
    flood = sc.syn_flood(Fixed(random.Random(1)), w)
    assert len(flood) == 100_000 == len({e.packet.ft.src_ip for e in flood})
    assert all(e.packet.is_syn and not sc.is_client(e.packet.ft.src_ip) for e in flood)
    w.flood_max = MACHINE_FLOOD_MAX
    assert len(sc.syn_flood(Fixed(random.Random(1)), w)) == MACHINE_FLOOD_MAX
    assert len(sc.syn_flood(Fixed(random.Random(1)), world(1, syn_auth=False))) == sc.UNAUTHENTICATED_FLOOD_MAX
    sizes = [sc.flood_size(sc.RandomChooser(random.Random(seed)), 100_000) for seed in range(2000)]
    assert sum(sizes) / len(sizes) < 200 and min(sizes) >= 2


def test_legitimate_clients_answer_with_the_syn_ack_they_received():
    c, w = sc.RandomChooser(random.Random(3)), world(3)
    ft = client(1)
    w.apply(ev.PacketArrives(0, Packet(ft, SYN)))
    assert w.due == {ft}
    [answer] = sc.cookie_reply(c, w)
    assert answer == CookieAck(w.now, Packet(ft, ACK, seq=1), ft, 1)
    assert w.apply(answer).path == "auth:cookie-ok"


def test_a_flood_with_reactive_clients_whitelists_only_them(tmp_path, capsys):
    path = write_flood(5_000, 50, tmp_path)
    assert syn_flood(5_000, 50).reactive
    assert main(["replay", str(path), "--summary"]) == 0
    out = capsys.readouterr().out
    assert "connection  " not in out  # no per-connection table
    assert "findings: none" in out
    assert ("50 sources answered theirs, 50 of them served (reached a DIP); whitelisted: 50 sources, 0 that had "
            "not answered; ConnTable entries of sources that had not answered: 0") in out  # fmt: skip


def test_examples_flood_options_are_checked(capsys):
    assert main(["examples", "--spoofed", "10"]) == 2
    assert "give --spoofed and --legit together" in capsys.readouterr().err
    assert main(["examples", "--spoofed", "10", "--legit", "0"]) == 2
    assert "argument --legit: 0 is out of range" in capsys.readouterr().err


def test_owned_spoofed_and_client_addresses_are_apart():
    ranges = [(sc.CLIENT_BASE, sc.CLIENT_SOURCES), (sc.OWNED_BASE, sc.OWNED_SOURCES),
              (sc.SPOOFED_BASE, sc.SPOOFED_SOURCES)]  # fmt: skip
    for i, (a, n) in enumerate(ranges):
        for b, m in ranges[i + 1 :]:
            assert a + n <= b or b + m <= a
    assert parse_ip("172.16.0.1") == sc.SPOOFED_BASE
