"""The compiled program on BMv2 against the model. Needs p4c and simple_switch_grpc on PATH."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from unittest import mock

import psutil
import pytest

from fuzz.mutants import BETWEEN_WRITES_MUTANTS, COUNTEREXAMPLES_DIR
from model import decisions
from model import events as ev
from model.config import Config
from model.cpu import Cpu
from model.hashing import HashPlan, dip_index
from model.observations import PacketObservation
from model.types import ACK, PROTO_TCP, PROTO_UDP, Dip, FiveTuple, Packet, Vip, parse_ip
from proofs import cookie
from silkcheck import differential
from silkcheck.cli import main
from silkcheck.examples import EXAMPLES_DIR
from silkcheck.oracle import judge
from silkcheck.targets.model import ModelTarget
from silkcheck.trace import TraceError, dumps, load, loads
from tests.helpers import OTHER_PORT, OWNED, SPOOFED, replay_attack, shipped_refuses

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


def test_concurrent_builds_of_one_config_all_succeed(tmp_path):
    """Two Dask workers starting their switches compile the same config into one folder at once."""
    from concurrent.futures import ThreadPoolExecutor

    from silkcheck.p4build import build

    with ThreadPoolExecutor(4) as pool:
        builds = list(pool.map(lambda _: build(Config(), tmp_path), range(4)))
    assert len({b.directory for b in builds}) == 1
    assert all(b.json.stat().st_size > 0 and b.p4info.stat().st_size > 0 for b in builds)
    assert [path.name for path in builds[0].directory.iterdir() if path.name.startswith(".")] == []


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
    flows = []
    for index in range(1500):
        if index % 2:
            flows.append(FiveTuple(rng.getrandbits(32), vip.ip, rng.getrandbits(16), vip.port, PROTO_TCP))
        else:
            flows.append(FiveTuple(rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(16),
                                   rng.choice((PROTO_TCP, PROTO_UDP))))  # fmt: skip
    results = dataplane.inject([(index, ev.PacketArrives(index, Packet(ft, ACK))) for index, ft in enumerate(flows)])
    for index, ft in enumerate(flows):
        report, _ = results[index + 1]
        h = plan.flow(ft)
        assert report["digest"] == h.digest, ft
        assert [report.bucket(s) for s in range(config.stages)] == list(h.buckets), ft
        assert [report[f"bloom{j}"] for j in range(config.bloom_hashes)] == list(h.bloom), ft
        assert report["cookie"] == plan.cookie(ft), ft
        if ft.vip == vip and not config.syn_auth:
            assert report["dip_index"] == dip_index(h.dip_hash, len(pool)), ft


def test_a_reused_pipeline_starts_each_run_as_a_fresh_push_does(target):
    """Runs of one config after another reuse the loaded program, reset between them: each run's entries
    deleted and TransitTable zeroed. A trace run again right after itself would otherwise meet its own
    ConnTable entries, pools and Bloom cells, and part from the model."""
    from silkcheck.p4runtime import P4RuntimeClient

    traces = [differential.random_trace(seed, "collide", 200) for seed in (11, 12)]
    assert any(isinstance(e, ev.UpdateRequested) for trace in traces for e in trace.events)  # Bloom cells set
    runner = differential.bmv2_runner(target)
    with mock.patch.object(P4RuntimeClient, "push_pipeline", autospec=True,
                           side_effect=P4RuntimeClient.push_pipeline) as push:  # fmt: skip
        runs = [(trace, runner(trace)) for trace in traces for _ in range(2)]
    assert push.call_count <= 1  # at most the first run pushes: the others reset
    for trace, (observations, egress) in runs:
        assert differential.compare(ModelTarget().run(trace), observations, egress) is None, trace.name
    assert runs[0][1][0] == runs[1][1][0] and runs[2][1][0] == runs[3][1][0]


@pytest.mark.parametrize("path", sorted(EXAMPLES_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_example_traces_agree(target, path):
    outcome = differential.run_both(load(path), differential.bmv2_runner(target))
    assert outcome.mismatch is None, differential.describe(outcome)
    assert outcome.bmv2_verdict.summary() == outcome.model_verdict.summary()


@pytest.mark.parametrize("mutant", BETWEEN_WRITES_MUTANTS, ids=lambda m: m.name)
def test_each_write_level_mutant_reproduces_on_bmv2_writes_one_by_one(target, mutant):
    """BMv2 with the mutant's CPU observes what the mutated model does, packet for packet and frame
    for frame, so it breaks PCC where the model does, or leaves the shipped design at the same packet."""
    trace = load(COUNTEREXAMPLES_DIR / f"{mutant.name}.json")
    shipped = ModelTarget().run(trace)
    with mutant.patch():
        model_run = ModelTarget().run(trace)
        bmv2_run = target.run_full(trace)
    assert differential.compare(model_run, bmv2_run.observations, bmv2_run.dataplane.egress) is None
    left = differential.departure(shipped, bmv2_run.observations)
    assert left is not None and left == differential.departure(shipped, model_run)
    verdict = judge(trace.config, bmv2_run.observations)
    assert verdict.ok == (trace.expect == "pass")
    assert verdict.summary() == judge(trace.config, model_run).summary()


def test_replay_on_bmv2_names_the_packet_where_a_mutant_leaves_the_shipped_design(capsys):
    path = str(COUNTEREXAMPLES_DIR / "pool-after-exec-flip.json")
    assert main(["replay", path, "--target", "bmv2", "--mutant", "pool-after-exec-flip", "--summary"]) == 0
    out = capsys.readouterr().out
    assert "pool-after-exec-flip on bmv2 with pool-after-exec-flip applied: PASS" in out
    assert "against the shipped design: leaves the shipped design at packet #2 (t=101," in out
    assert "shipped design forward to 10.0.2.1:8080 (miss:transit-miss:v1), this run drop (no-pool:v1)" in out


def test_replay_on_bmv2_of_a_trace_the_shipped_design_refuses_fails(capsys, tmp_path):
    """No refinement check runs on BMv2: the shipped design's refusal of the mutant's trace is what
    says that the mutant's CPU queued a write the shipped one does not, and it fails the replay."""
    changed = shipped_refuses(tmp_path)
    assert main(["replay", str(changed), "--target", "bmv2", "--mutant", "pool-after-exec-flip", "--summary"]) == 1
    refused = f"{changed}: events[3] (write): 1 write(s) asked for, 0 queued"
    assert f"on bmv2 with pool-after-exec-flip applied: FAIL (the shipped design cannot run it: {refused}; PCC " in (
        capsys.readouterr().out
    )


def test_replay_on_bmv2(capsys):
    assert main(["replay", str(EXAMPLES_DIR / "demo-update.json"), "--target", "bmv2"]) == 0
    assert "demo-update on bmv2: PASS" in capsys.readouterr().out


# ---------------------------------------------------------------- campaigns on a Dask cluster


@pytest.fixture(scope="module")
def cluster():
    from silkcheck.cluster import open_cluster

    with open_cluster(None, 2) as client:
        yield client


def _switches(pids):
    """The BMv2 switches started by the processes ``pids``."""
    return [child for pid in pids for child in psutil.Process(pid).children()
            if child.name().startswith("simple_switch")]  # fmt: skip


def test_a_random_campaign_on_a_two_worker_cluster_each_with_its_switch(cluster, tmp_path):
    result = differential.campaign(cluster, 12, 1000, events=40, out_dir=tmp_path)
    assert result.traces == 12 and result.workers == 2
    assert result.packets > 0 and result.mismatches == [] and result.saved == {}
    assert result.harness_rate > 0
    assert len(_switches(cluster.run(os.getpid).values())) == 2  # one BMv2 per worker process
    assert set(result.cpu_seconds) == {*differential.CPU_PARTS, differential.SWITCH_CPU}
    assert all(seconds > 0 for seconds in result.cpu_seconds.values()), result.cpu_seconds
    assert "CPU per packet" in result.figures()


def test_a_campaign_without_the_refinement_check_says_so_and_still_compares(capsys):
    assert main(["diff", "--random", "3", "--events", "30", "--workers", "1", "--no-anchor", "--no-refinement"]) == 0
    out = capsys.readouterr().out
    assert "refinement: not checked (--no-refinement)" in out and "model and bmv2 agree" in out
    assert "refinement check" not in out and "simple_switch_grpc" in out  # the CPU table: no time spent on it


_PATCHES: list = []


def _sealed_misses_never_dropped(on: bool) -> None:
    """On a worker: the model forwards what the P4 program drops (or no longer, ``on`` False)."""
    if on:
        _PATCHES.append(mock.patch.object(decisions, "drops_sealed", lambda o, hit, phase, transit_hit: False))
        _PATCHES[-1].start()
    else:
        _PATCHES.pop().stop()


def _loads(trace):
    """Whether the trace loader takes the trace back (it refuses the random traces' packets to a
    VIP the trace does not declare)."""
    try:
        loads(dumps(trace))
    except TraceError:
        return False
    return True


def _drops_a_sealed_miss(trace):
    paths = (o.path for o in ModelTarget().run(trace) if isinstance(o, PacketObservation))
    return "miss:sealed-transit-hit" in paths


def test_a_mismatch_found_on_a_worker_is_saved_by_the_client_then_minimized(cluster, tmp_path, capsys):
    seed = next(seed for seed in range(50) if _drops_a_sealed_miss(differential.random_trace(seed, "collide"))
                and _loads(differential.random_trace(seed, "collide")))  # fmt: skip
    cluster.run(_sealed_misses_never_dropped, True)
    try:
        result = differential.campaign(cluster, 1, seed, profiles=("collide",), out_dir=tmp_path)
    finally:
        cluster.run(_sealed_misses_never_dropped, False)
    name = f"random-collide-{seed}"
    assert [m.split(":")[0] for m in result.mismatches] == [name]
    assert result.saved == {name: tmp_path / f"{name}-min.json"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}-min.json"]  # the trace as found is replaced
    err = capsys.readouterr().err
    assert f"mismatch {name} found: saved" in err and f"mismatch {name} minimized: saved" in err
    small = loads(result.saved[name].read_text(), source="the minimized mismatch")
    assert len(small.events) < 60
    with mock.patch.object(decisions, "drops_sealed", lambda o, hit, phase, transit_hit: False):
        patched = ModelTarget().run(small)
    assert patched != ModelTarget().run(small)  # it still shows the difference


def test_a_switch_dies_with_its_worker_and_the_campaign_goes_on(cluster, tmp_path):
    """A worker killed mid-campaign takes its switch with it (the kernel's parent-death signal follows
    the task thread that started it); its batch runs again elsewhere and every trace is compared."""
    killed: list[psutil.Process] = []

    def kill_a_worker(result: differential.CampaignResult) -> None:
        if not killed:
            worker = sorted(cluster.run(os.getpid).values())[0]
            killed.extend(_switches([worker]))
            os.kill(worker, signal.SIGKILL)

    result = differential.campaign(cluster, 24, 3000, events=40, out_dir=tmp_path, progress=kill_a_worker)
    assert len(killed) == 1
    _, alive = psutil.wait_procs(killed, timeout=15)
    assert alive == [], "the killed worker's switch outlived it"
    assert result.traces == 24 and result.mismatches == []


def _is_switch(process: psutil.Process) -> bool:
    """Whether ``process`` is a BMv2 switch; a child that ended since it was listed is not."""
    try:
        return process.name().startswith("simple_switch")
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_diff_ends_its_workers_and_their_switches(signum, tmp_path):
    command = [sys.executable, "-m", "silkcheck.cli", "diff", "--random", "100000", "--workers", "2", "--no-anchor"]
    parent = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 90
    switches: list[psutil.Process] = []
    while len(switches) < 2 and parent.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        switches = [p for p in psutil.Process(parent.pid).children(recursive=True) if _is_switch(p)]
    everything = psutil.Process(parent.pid).children(recursive=True)
    assert len(switches) == 2, parent.stderr.read() if parent.poll() is not None else "no switches"
    time.sleep(1.0)  # both at work
    parent.send_signal(signum)
    out, err = parent.communicate(timeout=60)
    _, alive = psutil.wait_procs(everything, timeout=20)
    assert alive == [], f"still running after the command ended: {[(p.pid, p.name()) for p in alive]}"
    if signum == signal.SIGTERM:
        assert parent.returncode == 130, err
        assert "(interrupted)" in out and "model and bmv2 agree" in out


def test_the_raw_anchor_feeds_the_program_from_a_pcap_file():
    from silkcheck.targets.bmv2 import RawRate, raw_rate

    traces = [differential.random_trace(seed, "wide", 200) for seed in range(3)]
    packets = [event for trace in traces for event in trace.packets]
    raw = raw_rate(differential.PROFILES["wide"], traces[0].vips, packets)
    assert raw.packets == len(packets)
    assert 0 < raw.outputs <= len(packets) and raw.rate > 0
    both = RawRate.together([raw, raw])
    assert both.packets == 2 * raw.packets and both.seconds == raw.seconds and both.rate == 2 * raw.rate


@pytest.mark.parametrize("replayed", [OWNED, SPOOFED, OTHER_PORT], ids=["own", "spoofed", "other-port"])
def test_reactive_packets_answer_the_syn_acks_bmv2_sent(target, replayed):
    outcome = differential.run_both(replay_attack(replayed), differential.bmv2_runner(target))
    assert outcome.mismatch is None, differential.describe(outcome)
    assert outcome.bmv2_verdict.ok


def test_the_crc_forgery_whitelists_a_spoofed_source_in_the_p4_program_too(target):
    outcome = differential.run_both(cookie.forgery_trace(), differential.bmv2_runner(target))
    assert outcome.mismatch is None, differential.describe(outcome)
    assert [(f.kind, f.ft.src_ip) for f in outcome.bmv2_verdict.violations] == [("spoofed", cookie.SPOOFED.src_ip)]
