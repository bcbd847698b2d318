"""The switch CPU: placement, teardown, versions and each phase of the update protocol."""

import pytest

from model import decisions as d
from model import events as ev
from model.config import Config
from model.dataplane import LearnEvent
from model.hashing import HashPlan
from model.switch import InvalidEvent
from model.types import ACK, FIN, SYN
from tests.helpers import D1, D2, D3, VIP, Run, flow


def test_boot_installs_pools_and_viptable():
    run = Run()
    assert run.switch.dataplane.pools[(VIP, 0)] == (D1,)
    assert run.switch.dataplane.vips[VIP].phase == d.NORMAL


def test_learned_connection_is_installed_and_then_hits():
    run = Run()
    run.packet(flow(1), SYN)
    obs = run.learn()
    assert [w.owner for w in obs.installs] == [flow(1)]
    assert run.packet(flow(1)).hit_key == obs.installs[0].key


def test_partial_learning_takes_the_oldest_first():
    run = Run()
    for n in range(3):
        run.packet(flow(n), SYN)
    assert [ft for _, ft, _ in run.learn(2).learned] == [flow(0), flow(1)]
    assert [ft for _, ft, _ in run.learn().learned] == [flow(2)]


def test_update_phases_in_order_with_guards():
    run = Run(pool=(D1,))
    run.packet(flow(1), SYN)  # pending across t_req
    req = run.update((D1, D2))
    assert [p.phase for p in req.phases] == ["record"]
    assert run.switch.dataplane.pools[(VIP, 1)] == (D1, D2)
    early = run.advance()
    assert early.learned and early.installs  # it drains and installs before deciding
    assert early.phases == ()  # the learn-delay bound has not passed
    assert run.phase == d.RECORD
    assert [p.phase for p in run.advance(dt=100).phases] == ["transit"]
    assert [p.phase for p in run.advance().phases] == ["sealed"]
    assert run.advance().phases == ()  # t_finish waits a bound after t_seal
    finish = run.advance(dt=100)
    assert [(p.phase, p.old_version, p.new_version) for p in finish.phases] == [("normal", 1, 1)]
    assert run.packet(flow(1)).dip == D1  # installed with version 0


def test_an_unplaced_connection_is_forgotten_only_after_a_silence():
    config = Config(stages=1, buckets_per_stage=1, slots_per_bucket=1, learn_delay_bound=10, idle_timeout=100,
                    teardown_grace=10, cuckoo_depth=0)  # fmt: skip
    run = Run(config)
    run.packet(flow(1), SYN)
    run.learn()  # placed: the table is full now
    run.packet(flow(2), SYN)
    for _ in range(10):  # it keeps sending; its misses are learned (or held by the learning filter)
        run.packet(flow(1), dt=15)  # the slot's owner stays alive
        run.packet(flow(2), dt=15)
        run.expire(dt=30)
        assert flow(2) in run.switch.cpu.known and run.switch.cpu.known[flow(2)].stage is None
    run.packet(flow(1), dt=60)
    run.expire(dt=60)  # silent for idle_timeout + learn_delay_bound since its last event was read
    assert flow(2) not in run.switch.cpu.known
    assert run.switch.cpu.refs[(VIP, 0)] == 1  # only flow(1) holds version 0 now


def test_a_late_read_hit_on_an_entry_gone_from_the_shadow_keeps_an_unplaced_version():
    """A delayed event is read after a later one: a hit of the tick a miss taught the version in, on an
    entry the connection's lookup no longer reaches, is not what its packets use now."""
    config = Config(stages=1, buckets_per_stage=1, slots_per_bucket=1, learn_delay_bound=10, cuckoo_depth=0)
    run = Run(config)
    run.packet(flow(1), SYN)
    run.learn()  # placed: the table is full now
    sent = run.packet(flow(2), SYN).t
    run.learn()  # known with version 0, unplaced
    cpu = run.switch.cpu
    assert cpu.known[flow(2)].stage is None and cpu._resolve(cpu.known[flow(2)].hashes) != 1
    run.switch.dataplane.learn_queue.append(LearnEvent(sent, run.t, "collision", flow(2), 1, hit_stage=0))
    run.learn()
    assert cpu.known[flow(2)].version == 0 and not cpu.known[flow(2)].version_from_hit


def test_exec_waits_for_connections_that_could_not_be_installed():
    config = Config(stages=1, buckets_per_stage=1, slots_per_bucket=1, learn_delay_bound=10, cuckoo_depth=0)
    run = Run(config)
    run.packet(flow(1), SYN)
    run.packet(flow(2), SYN)
    run.learn()  # one fits, the other stays unplaced
    run.update((D2,))
    assert run.advance(dt=50).phases == ()
    assert run.phase == d.RECORD
    run.packet(flow(1), FIN | ACK)
    run.learn()
    run.expire(dt=config.teardown_grace + 10)
    run.learn()  # the unplaced one takes the freed slot
    assert [p.phase for p in run.advance(dt=50).phases] == ["transit"]


def test_connection_in_the_same_tick_as_t_req_blocks_t_exec():
    config = Config(stages=1, buckets_per_stage=1, slots_per_bucket=1, learn_delay_bound=10, cuckoo_depth=0)
    run = Run(config)
    run.packet(flow(1), SYN)
    run.learn()  # fills the only slot
    run.packet(flow(2), ACK)  # misses in NORMAL, unrecorded ...
    run.update((D2,), dt=0)  # ... in the very tick of t_req
    run.learn()  # learned but unplaced
    assert run.advance(dt=50).phases == ()
    assert run.phase == d.RECORD


def test_updates_of_one_vip_are_serialized():
    run = Run()
    run.update((D2,))
    second = run.update((D3,))
    assert second.phases == ()
    for _ in range(3):
        run.advance(dt=200)
    assert run.switch.dataplane.vips[VIP].phase == d.RECORD  # the queued update started after t_finish
    assert run.switch.dataplane.vips[VIP].new_version == 2


def test_updates_of_different_vips_wait_for_a_transit_slot():
    from model.switch import Switch
    from model.types import Vip

    other = Vip(VIP.ip, 443, VIP.proto)
    for slots, overlapping in ((1, False), (2, True)):
        switch = Switch.boot(Config(transit_slots=slots, learn_delay_bound=10), {VIP: (D1,), other: (D1,)})
        switch.step(0, ev.UpdateRequested(0, VIP, (D2,)))
        obs = switch.step(1, ev.UpdateRequested(1, other, (D2,)))
        assert bool(obs.phases) == overlapping
        assert any("TransitTable slots are in use" in n for n in obs.notes) != overlapping
        if overlapping:
            assert switch.dataplane.vips[other].slot != switch.dataplane.vips[VIP].slot
        for t in (20, 40, 60):
            switch.step(2, ev.CpuAdvances(t))
        assert switch.dataplane.vips[other].phase != d.NORMAL or overlapping


def test_old_version_is_reclaimed_a_bound_after_its_last_reference():
    run = Run()
    run.packet(flow(1), SYN)
    run.learn()
    run.update((D2,))
    for _ in range(3):
        run.advance(dt=200)
    assert (VIP, 0) in run.switch.dataplane.pools  # flow(1)'s entry still uses version 0
    run.packet(flow(1), FIN | ACK)
    run.learn()
    run.expire(dt=run.config.teardown_grace + 1)
    assert (VIP, 0) in run.switch.dataplane.pools  # in-flight learn events may still carry it
    notes = run.expire(dt=run.config.learn_delay_bound).notes
    assert (VIP, 0) not in run.switch.dataplane.pools
    assert any("reclaimed version 0" in n for n in notes)


def test_update_waits_when_every_version_is_in_use():
    run = Run(Config(version_bits=2, learn_delay_bound=10))
    pools = [(D2,), (D3,), (D1,)]
    for i, pool in enumerate(pools):
        run.packet(flow(i), SYN)
        run.learn()
        run.update(pool)
        for _ in range(3):
            run.advance(dt=20)
    # versions 0..3 are all referenced by live connections or current: a fourth waits
    run.packet(flow(9), SYN)
    run.learn()
    obs = run.update((D1, D2))
    assert any("all 4 versions are in use" in n for n in obs.notes)


def test_teardown_waits_for_the_grace_period():
    run = Run()
    run.packet(flow(1), SYN)
    run.learn()
    run.packet(flow(1), FIN | ACK)
    run.learn()
    assert run.expire(dt=run.config.teardown_grace - 10).removes == ()
    assert run.packet(flow(1), ACK).hit_key is not None  # a late ACK still hits
    assert [w.owner for w in run.expire(dt=run.config.teardown_grace + 1).removes] == [flow(1)]


def test_idle_connections_expire():
    run = Run()
    run.packet(flow(1), SYN)
    run.learn()
    assert [w.owner for w in run.expire(dt=run.config.idle_timeout + 1).removes] == [flow(1)]


def test_expiry_reads_only_the_timers_of_connections_that_may_go(monkeypatch):
    run = Run()
    for n in range(5):
        run.packet(flow(n), SYN)
    run.learn()
    run.packet(flow(0), ACK, dt=run.config.idle_timeout // 2)  # its entry's timer, not the CPU, knows
    dataplane = run.switch.dataplane
    read, reads = dataplane.idle_time, []
    monkeypatch.setattr(dataplane, "idle_time", lambda *key_now: reads.append(key_now[:3]) or read(*key_now))
    assert run.expire().removes == ()
    assert reads == []  # none has been silent for idle_timeout since the CPU learned it
    removes = run.expire(dt=run.config.idle_timeout // 2 + 10).removes
    assert sorted(w.owner for w in removes) == [flow(n) for n in range(1, 5)]  # flow(0) kept by its timer
    assert run.switch.cpu.known[flow(0)].stage is not None


def test_new_incarnation_during_teardown_keeps_its_entry():
    run = Run()
    run.packet(flow(1), SYN)
    run.learn()
    run.packet(flow(1), FIN | ACK)
    run.learn()
    run.packet(flow(1), SYN)  # port reuse: hits the closing entry
    run.learn()
    assert run.expire(dt=run.config.teardown_grace + 1).removes == ()


def test_cuckoo_moves_insert_before_delete():
    from silkcheck.examples import cuckoo_chain
    from silkcheck.targets.model import ModelTarget

    for obs in ModelTarget().run(cuckoo_chain()):
        removed = [w.owner for w in getattr(obs, "removes", ())]
        for owner in removed:
            installs = [i for i, w in enumerate(obs.installs) if w.owner == owner]
            assert installs, "a moved entry is installed at its new place first"


def test_collision_learn_places_the_newcomer_elsewhere():
    config = Config(digest_bits=4, buckets_per_stage=4, stages=2, learn_delay_bound=10)
    plan = HashPlan(config)
    key = plan.flow(flow(0, 30000)).key(0)
    other = next(flow(n, 30000) for n in range(1, 5000) if plan.flow(flow(n, 30000)).key(0) == key)
    run = Run(config)
    run.packet(flow(0, 30000), SYN)
    run.learn()
    syn = run.packet(other, SYN)
    assert syn.learned == ("collision",)
    obs = run.learn()
    assert obs.installs and obs.installs[0].stage == 1


def test_restart_loses_only_unplaced_connections():
    config = Config(stages=1, buckets_per_stage=1, slots_per_bucket=1, learn_delay_bound=10, cuckoo_depth=0)
    run = Run(config)
    run.packet(flow(1), SYN)
    run.packet(flow(2), SYN)
    run.learn()
    obs = run.do(ev.CpuRestarts)
    assert [ft for ft, _ in obs.lost] == [flow(2)]
    assert run.packet(flow(1)).hit_key is not None
    assert run.packet(flow(2)).learned == ("new",)  # it learns again


def test_dip_failure_requests_an_update_without_it():
    run = Run(pool=(D1, D2))
    obs = run.do(ev.DipFails, D1)
    assert obs.failed_dips == (D1,)
    assert run.switch.dataplane.pools[(VIP, 1)] == (D2,)


def test_last_dip_is_not_removed():
    run = Run(pool=(D1,))
    assert any("last DIP" in n for n in run.do(ev.DipFails, D1).notes)


def test_learn_faults_check_the_queue():
    run = Run()
    with pytest.raises(InvalidEvent, match="no queued learn event #0"):
        run.do(ev.LearnLost, 0)
    run.packet(flow(1), SYN)
    with pytest.raises(InvalidEvent, match="exceeds learn_delay_bound"):
        run.do(ev.LearnDelayed, 0, 10_000)
    run.do(ev.LearnDelayed, 0, 50)
    assert run.learn().learned == ()  # not visible yet
    assert run.learn(dt=60).learned
    run.packet(flow(2), ACK)
    assert [ft for ft, _ in run.do(ev.LearnLost, 0).lost] == [flow(2)]
