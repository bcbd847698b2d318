"""The compiled program on BMv2 against the model. Needs p4c and simple_switch_grpc on PATH."""

import random
import shutil

import pytest

from model.config import Config
from model.cpu import Cpu
from model.hashing import HashPlan, dip_index
from model.types import ACK, PROTO_TCP, PROTO_UDP, Dip, FiveTuple, Packet, Vip, parse_ip
from proofs import cookie
from silkcheck import differential
from silkcheck.cli import main
from silkcheck.examples import EXAMPLES_DIR
from silkcheck.trace import load
from tests.helpers import OTHER_PORT, OWNED, SPOOFED, replay_attack

MISSING = [tool for tool in ("p4c", "simple_switch_grpc") if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"{' and '.join(MISSING)} not on PATH (install p4c/BMv2)")

CONFIGS = {
    "default": Config(),
    # Every stage and Bloom order, full-width digests, the largest tables.
    "widest": Config(digest_bits=32, stages=8, buckets_per_stage=1 << 16, bloom_bits=1 << 16, bloom_hashes=4,
                     version_bits=16, epoch_bits=16, transit_slots=8, syn_auth=True),
    "narrow": Config(digest_bits=1, stages=1, buckets_per_stage=1, bloom_bits=1, bloom_hashes=1, version_bits=2,
                     epoch_bits=2),
}


CAPACITIES = Config(vip_capacity=3, dip_pool_capacity=5, whitelist_capacity=2, syn_auth=True)
"""Table sizes other than the defaults: each must reach the P4 program as its table's size."""


@pytest.fixture(scope="module")
def target():
    from silkcheck.targets.bmv2 import shared_target

    return shared_target()


@pytest.mark.parametrize("name", [*CONFIGS, "capacities"])
def test_p4info_agrees_with_the_config(name):
    from silkcheck.p4build import build
    from silkcheck.p4runtime import P4Info

    config = CONFIGS.get(name, CAPACITIES)
    result = build(config)
    assert "warning" not in result.warnings.lower(), result.warnings
    info = P4Info(result.p4info)
    conn = sorted(t for t in info.tables if t.startswith("ConnTable"))
    assert conn == [f"ConnTable{s}" for s in range(config.stages)]
    for table in conn:
        t = info.tables[table]
        assert t.size == config.buckets_per_stage * config.slots_per_bucket
        assert t.keys["digest"][1] == config.digest_bits
        assert 1 << t.keys["bucket"][1] >= config.buckets_per_stage
    assert info.actions["set_version"].params["version"][1] == config.version_bits
    set_vip = info.actions["set_vip"].params
    assert (set_vip["old_version"][1], set_vip["new_version"][1], set_vip["epoch"][1]) == (
        config.version_bits, config.version_bits, config.epoch_bits)  # fmt: skip
    assert info.tables["DIPPoolSize"].keys["version"][1] == config.version_bits
    transit = info.registers["TransitTable"]
    assert transit.size == config.transit_slots * config.bloom_bits
    assert transit.type_spec.bitstring.bit.bitwidth == config.epoch_bits
    assert 1 << set_vip["slot"][1] >= config.transit_slots
    assert ("Whitelist" in info.tables) == config.syn_auth
    assert info.tables["VIPTable"].size == config.vip_capacity
    assert info.tables["DIPPoolTable"].size == info.tables["DIPPoolSize"].size == config.dip_pool_capacity
    if config.syn_auth:
        assert info.tables["Whitelist"].size == config.whitelist_capacity


@pytest.mark.parametrize("name", CONFIGS)
def test_hashes_agree_bit_for_bit(target, name):
    """Digest, stage buckets, Bloom cells, DIP bucket and cookie over random 5-tuples, as BMv2 computes them."""
    config = CONFIGS[name]
    plan = HashPlan(config)
    dataplane = target.dataplane(config)
    vip = Vip(parse_ip("20.0.0.1"), 80, PROTO_TCP)
    pool = tuple(Dip(parse_ip("10.0.1.0") + i, 8080) for i in range(13))
    Cpu.boot(config, plan, dataplane, {vip: pool})
    rng = random.Random(name)
    for index in range(1500):
        if index % 2:
            ft = FiveTuple(rng.getrandbits(32), vip.ip, rng.getrandbits(16), vip.port, PROTO_TCP)
        else:
            ft = FiveTuple(rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(16),
                           rng.choice((PROTO_TCP, PROTO_UDP)))  # fmt: skip
        report, _ = dataplane.inject(index, Packet(ft, ACK))
        h = plan.flow(ft)
        assert report["digest"] == h.digest, ft
        assert [report.bucket(s) for s in range(config.stages)] == list(h.buckets), ft
        assert [report[f"bloom{j}"] for j in range(config.bloom_hashes)] == list(h.bloom), ft
        assert report["cookie"] == plan.cookie(ft), ft
        if ft.vip == vip and not config.syn_auth:
            assert report["dip_index"] == dip_index(h.dip_hash, len(pool)), ft


@pytest.mark.parametrize("path", sorted(EXAMPLES_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_example_traces_agree(target, path):
    outcome = differential.run_both(load(path), differential.bmv2_runner(target))
    assert outcome.mismatch is None, differential.describe(outcome)
    assert outcome.bmv2_verdict.summary() == outcome.model_verdict.summary()


def test_short_random_campaign_finds_no_mismatch(target, tmp_path):
    result = differential.campaign(12, 1000, differential.bmv2_runner(target), events=40, out_dir=tmp_path)
    assert result.traces == 12
    assert result.packets > 0
    assert result.mismatches == []


def test_replay_on_bmv2(capsys):
    assert main(["replay", str(EXAMPLES_DIR / "demo-update.json"), "--target", "bmv2"]) == 0
    assert "demo-update on bmv2: PASS" in capsys.readouterr().out


@pytest.mark.parametrize("replayed", [OWNED, SPOOFED, OTHER_PORT], ids=["own", "spoofed", "other-port"])
def test_reactive_packets_answer_the_syn_acks_bmv2_sent(target, replayed):
    outcome = differential.run_both(replay_attack(replayed), differential.bmv2_runner(target))
    assert outcome.mismatch is None, differential.describe(outcome)
    assert outcome.bmv2_verdict.ok


def test_the_crc_forgery_whitelists_a_spoofed_source_in_the_p4_program_too(target):
    outcome = differential.run_both(cookie.forgery_trace(), differential.bmv2_runner(target))
    assert outcome.mismatch is None, differential.describe(outcome)
    assert [(f.kind, f.ft.src_ip) for f in outcome.bmv2_verdict.violations] == [("spoofed", cookie.SPOOFED.src_ip)]
