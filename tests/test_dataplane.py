"""Each table of the ingress pipeline."""

from model import decisions as d
from model.config import Config
from model.dataplane import DataPlane, VipEntry, process_packet
from model.observations import DROP, FORWARD, REPLY
from model.types import ACK, FIN, PROTO_TCP, SYN, FiveTuple, Packet, Vip, parse_ip
from tests.helpers import D1, D2, D3, VIP, flow

NORMAL_V0 = VipEntry(0, 0)


def dataplane(config: Config | None = None, entry: VipEntry = NORMAL_V0) -> DataPlane:
    dp = DataPlane.empty(config or Config())
    dp.write_vip(VIP, entry)
    dp.write_pool(VIP, 0, (D1,))
    dp.write_pool(VIP, 1, (D2, D3))
    return dp


def send(dp: DataPlane, ft: FiveTuple, flags: int = ACK, t: int = 0, seq: int = 0, ack: int = 0):
    return process_packet(dp, 0, t, Packet(ft, flags, seq, ack))


def test_viptable_miss_drops():
    dp = dataplane()
    other = FiveTuple(1, parse_ip("20.0.0.9"), 1, 80, PROTO_TCP)
    assert send(dp, other).action == DROP


def test_conntable_miss_uses_current_version_and_learns_once():
    dp = dataplane()
    first = send(dp, flow(1))
    again = send(dp, flow(1))
    assert first.action == FORWARD and first.dip == D1 and first.learned == ("new",)
    assert again.learned == ()  # the learning filter holds the queued event
    assert [e.kind for e in dp.learn_queue] == ["new"]
    assert dp.read_learns(0, None)[0].ft == flow(1)
    assert send(dp, flow(1)).learned == ("new",)  # once read, a miss learns again


def test_a_syn_miss_is_learned_apart_from_other_misses():
    dp = dataplane()
    assert send(dp, flow(1), FIN | ACK).learned == ("new", "end")
    assert send(dp, flow(1), SYN).learned == ("syn",)  # a new incarnation is not swallowed by the filter
    assert send(dp, flow(1), SYN).learned == ("syn",)  # SYNs are never filtered: their send times matter


def test_conntable_first_stage_hit_wins():
    dp = dataplane()
    h = dp.plan.flow(flow(1))
    dp.insert_conn(2, *h.key(2), 0, now=0)
    dp.insert_conn(1, *h.key(1), 1, now=0)
    obs = send(dp, flow(1))
    assert obs.hit_key == (1, *h.key(1))
    assert obs.dip in (D2, D3)
    assert obs.learned == ()


def test_conntable_needs_the_digest_to_match():
    dp = dataplane()
    h = dp.plan.flow(flow(1))
    bucket, digest = h.key(0)
    dp.insert_conn(0, bucket, digest ^ 1, 1, now=0)
    assert send(dp, flow(1)).hit_key is None


def test_syn_that_hits_keeps_the_version_and_learns_a_collision():
    dp = dataplane()
    h = dp.plan.flow(flow(1))
    dp.insert_conn(0, *h.key(0), 1, now=0)
    obs = send(dp, flow(1), SYN)
    assert obs.dip in (D2, D3)
    assert obs.learned == ("collision",)


def test_dip_pool_member_is_hash_mod_pool_size():
    dp = dataplane(entry=VipEntry(1, 1))
    for n in range(20):
        ft = flow(n)
        expected = (D2, D3)[dp.plan.flow(ft).dip_hash % 2]
        assert send(dp, ft).dip == expected


def test_dip_pool_miss_drops():
    dp = dataplane(entry=VipEntry(7, 7))
    assert send(dp, flow(1)).action == DROP


def test_transit_table_is_epoch_tagged():
    dp = dataplane()
    h = dp.plan.flow(flow(1))
    assert not dp.transit_hit(h, 0, 1)
    dp.record_transit(h, 0, 1)
    assert dp.transit_hit(h, 0, 1)
    assert not dp.transit_hit(h, 0, 2)  # bumping the epoch clears every cell at once
    dp.record_transit(h, 0, 2)
    assert dp.transit_hit(h, 0, 2)


def test_transit_slots_do_not_overwrite_each_other():
    """One shared epoch array would let a second VIP's recording erase the first's cells."""
    dp = DataPlane.empty(Config(transit_slots=2))
    h = dp.plan.flow(flow(1))
    dp.record_transit(h, 0, 1)
    dp.record_transit(h, 1, 2)
    assert dp.transit_hit(h, 0, 1) and dp.transit_hit(h, 1, 2)


def test_record_phase_records_misses_with_old_version():
    dp = dataplane(entry=VipEntry(0, 1, d.RECORD, 5))
    obs = send(dp, flow(1))
    assert obs.dip == D1
    assert dp.transit_hit(dp.plan.flow(flow(1)), 0, 5)


def test_transit_phase_separates_recorded_from_new():
    dp = dataplane(entry=VipEntry(0, 1, d.TRANSIT, 5))
    dp.record_transit(dp.plan.flow(flow(1)), 0, 5)
    assert send(dp, flow(1)).dip == D1
    fresh = next(flow(n) for n in range(2, 50) if not dp.transit_hit(dp.plan.flow(flow(n)), 0, 5))
    assert send(dp, fresh).dip in (D2, D3)


def test_sealed_phase_drops_transit_hits_without_learning():
    dp = dataplane(entry=VipEntry(0, 1, d.SEALED, 5))
    dp.record_transit(dp.plan.flow(flow(1)), 0, 5)
    obs = send(dp, flow(1))
    assert obs.action == DROP and obs.learned == ()
    assert not dp.learn_queue


def test_syn_authentication():
    config = Config(syn_auth=True)
    dp = dataplane(config)
    ft = flow(1)
    cookie = dp.plan.cookie(ft)
    synack = send(dp, ft, SYN, seq=99)
    assert synack.action == REPLY and synack.reply_flags == SYN | ACK
    assert (synack.reply_seq, synack.reply_ack) == (cookie, 100)
    assert send(dp, ft, ACK, ack=cookie).action == DROP  # wrong: cookie, not cookie+1
    ok = send(dp, ft, ACK, ack=cookie + 1)
    assert ok.action == REPLY and ok.learned == ("auth",)
    assert not dp.conn[0] and [e.kind for e in dp.learn_queue] == ["auth"]
    assert send(dp, ft._replace(src_port=1), SYN).action == REPLY  # not whitelisted until the CPU acts
    dp.add_whitelist(ft.src_ip)
    assert send(dp, ft._replace(src_port=1), SYN).action == FORWARD


def test_udp_passes_syn_authentication():
    config = Config(syn_auth=True)
    dp = DataPlane.empty(config)
    udp_vip = Vip(VIP.ip, 53, 17)
    dp.write_vip(udp_vip, VipEntry(0, 0))
    dp.write_pool(udp_vip, 0, (D1,))
    assert send(dp, FiveTuple(1, udp_vip.ip, 5, 53, 17), 0).action == FORWARD
