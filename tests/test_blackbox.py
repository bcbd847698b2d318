"""The black-box target: its trace events, workloads, shrinking, and real runs on BMv2 with veth pairs.

The real runs need p4c, simple_switch_grpc and root (a network namespace); without them they skip.
"""

import os
import shutil
from pathlib import Path

import pytest

from model import events as ev
from model.config import Config
from silkcheck.blackbox.examples import DIPS, VIP, example
from silkcheck.blackbox.harness import check_blackbox_trace
from silkcheck.blackbox.shrink import Budget, ddmin, shrink
from silkcheck.blackbox.workload import WorkloadSpec, generate, nemesis_kinds
from silkcheck.oracle import judge
from silkcheck.targets.model import ModelTarget
from silkcheck.trace import Nemesis, TraceError, dumps, load, loads

DATA = Path(__file__).parent / "data" / "blackbox"
"""Black-box traces (some hold nemesis faults the model refuses, so not among the model regressions)."""
MOVED = DATA / "stateless-moved.json"
LATE_DIGEST = DATA / "flip-late-digest.json"

NO_NAMESPACES = [] if os.geteuid() == 0 else ["root (for a network namespace with veth pairs)"]
MISSING = [tool for tool in ("p4c", "simple_switch_grpc") if shutil.which(tool) is None] + NO_NAMESPACES
needs_bmv2 = pytest.mark.skipif(bool(MISSING), reason=f"{' and '.join(MISSING)} missing")
needs_namespaces = pytest.mark.skipif(bool(NO_NAMESPACES), reason=" ".join(NO_NAMESPACES) + " missing")


def workload(seed=1, **kw):
    spec = WorkloadSpec(duration_us=2_000_000, **kw)
    return generate(spec, Config(), {VIP: DIPS[:2]}, DIPS, seed)


def test_nemesis_faults_round_trip_through_the_trace_language():
    trace = workload(nemesis=nemesis_kinds("all"))
    faults = [e for e in trace.events if isinstance(e, Nemesis)]
    assert faults and {f.fault for f in faults} <= set(nemesis_kinds("all"))
    assert loads(dumps(trace)).events == trace.events


def test_a_nemesis_fault_without_its_duration_is_an_error_naming_the_field():
    text = dumps(workload(nemesis=("digest_delay",))).replace('"duration": ', '"lasting": ', 1)
    with pytest.raises(TraceError, match=r"events\[\d+\] \(fault\)\.duration: missing"):
        loads(text, "t.json")


def test_the_model_refuses_nemesis_faults_and_blackbox_refuses_cpu_steps():
    trace = workload(nemesis=("controller_kill",))
    with pytest.raises(TraceError, match="runs only on --target blackbox"):
        ModelTarget().run(trace)
    trace.events.append(ev.CpuLearns(trace.events[-1].t))
    with pytest.raises(TraceError, match="holds only packet, update and nemesis"):
        check_blackbox_trace(trace)


def test_workloads_are_reproducible_from_their_seed_and_open_bursts_at_updates():
    assert workload(3).events == workload(3).events != workload(4).events
    trace = workload(3, burst=5)
    updates = [e.t for e in trace.events if isinstance(e, ev.UpdateRequested)]
    syns = [e.t for e in trace.events if isinstance(e, ev.PacketArrives) and e.packet.is_syn]
    assert updates and all(sum(abs(t - u) <= 2000 for t in syns) >= 5 for u in updates)


def test_nemesis_kinds_name_the_unknown_fault():
    with pytest.raises(ValueError, match="unknown nemesis fault"):
        nemesis_kinds("digest_delay,unplug")


def test_shrink_keeps_one_violating_connection_and_what_it_needs():
    """Shrinking with a deterministic judge: the trace's two packets and its update, among noise."""
    trace = load(MOVED)
    noise = workload(5, connections_per_s=20.0, burst=0)
    events = sorted(trace.events + [e for e in noise.events if isinstance(e, ev.PacketArrives)], key=lambda e: e.t)
    big = trace.__class__(trace.config, trace.vips, events)
    ft = trace.packets[0].packet.ft
    runs = []

    def still_fails(candidate):
        runs.append(len(candidate.events))
        has = [e for e in candidate.events if isinstance(e, ev.PacketArrives) and e.packet.ft == ft]
        return len(has) == 2 and any(isinstance(e, ev.UpdateRequested) for e in candidate.events)

    small = shrink(big, _verdict_naming(trace), still_fails, Budget(200))
    assert [type(e) for e in small.events] == [ev.PacketArrives, ev.UpdateRequested, ev.PacketArrives]
    assert small.events[0].t == 10_000
    assert len(runs) < 60 < len(events)  # delta debugging, not a run per event


def test_ddmin_finds_the_two_items_that_matter_and_stops_at_its_budget():
    def fails(items):
        return {17, 63} <= set(items)

    budget = Budget(10_000)
    assert ddmin(range(1000), fails, budget) == [17, 63]
    assert budget.spent < 200  # removing one item at a time takes 1,000 runs
    tight = Budget(3)
    partial = ddmin(range(1000), fails, tight)
    assert tight.spent == 3 and fails(partial) and len(partial) < 1000


def _verdict_naming(trace):
    from model.observations import FORWARD, PacketObservation
    from silkcheck.oracle import VIOLATION, Finding, Verdict

    second = trace.packets[1]
    moved = PacketObservation(2, second.t, second.packet, FORWARD)
    return Verdict([Finding(VIOLATION, "moved", second.packet.ft, 1, [moved], [], "")], [])


# ---------------------------------------------------------------- on BMv2, with veth pairs


@needs_namespaces
def test_the_bench_baseline_finds_a_rate_at_which_a_bare_veth_pair_loses_nothing():
    from silkcheck.blackbox.bench import loopback, traffic

    measured = loopback(traffic(VIP, 500, 8), VIP)
    assert measured.flat_out.packets == 500 and measured.flat_out.late == 0
    assert measured.lossless is not None and measured.lossless.forwarded == 500


@pytest.fixture(scope="module")
def sessions():
    from silkcheck.blackbox.harness import Session

    opened = {}

    def get(name):
        if name not in opened:
            opened[name] = Session(example(name).setup())
        return opened[name]

    yield get
    for session in opened.values():
        session.close()


@needs_bmv2
def test_the_stateless_example_moves_the_connection_of_its_shrunk_counterexample(sessions):
    trace = load(MOVED)
    run = sessions("stateless").run(trace)
    verdict = judge(trace.config, run.observations)
    assert [f.category for f in verdict.findings] == ["violation"]
    assert run.stats.packets == 2 and run.recorded.events[1].t > run.recorded.events[0].t


@needs_bmv2
def test_silkroad_keeps_that_connection_and_the_flip_example_too(sessions):
    """(b) installs the connection long before the update; (c) is PCC-safe."""
    trace = load(MOVED)
    for name in ("flip", "silkroad"):
        verdict = judge(trace.config, sessions(name).run(trace).observations)
        assert verdict.ok, name


@needs_bmv2
def test_the_flip_example_moves_a_connection_whose_digest_the_nemesis_delays_and_silkroad_keeps_it(sessions):
    """(b)'s shrunk counterexample: a packet, its digest held 200 ms by the proxy, a pool change,
    the connection's next packet. (b) sends it by the new pool; (c) keeps it."""
    trace = load(LATE_DIGEST)
    run = sessions("flip").run(trace)
    assert [f.category for f in judge(trace.config, run.observations).findings] == ["violation"]
    assert run.stats.proxy["digests_delayed"] >= 1
    assert judge(trace.config, sessions("silkroad").run(trace).observations).ok


@needs_bmv2
def test_drops_are_known_by_the_barrier_rule(sessions):
    """A packet to a VIP the program does not know is dropped: the barrier after it says so."""
    trace = load(MOVED)
    stray = trace.packets[0].packet
    stray = stray._replace(ft=stray.ft._replace(dst_port=81))
    trace.events.insert(0, ev.PacketArrives(0, stray))
    run = sessions("stateless").run(trace)
    actions = [o.action for o in run.observations if hasattr(o, "action")]
    assert actions == ["drop", "forward", "forward"]


@needs_bmv2
def test_the_exported_ptf_test_of_the_stateless_counterexample_fails_on_it_and_passes_on_silkroad(tmp_path):
    """PTF runs the exported test on each setup: (a) moves the connection, (c) keeps it. ptf
    imports every module in its test folder: it must get one holding only the test."""
    from silkcheck.blackbox.ptf_export import export_ptf, run_ptf

    (tmp_path / "beside.py").write_text("raise RuntimeError('ptf imported a module beside the test')\n")
    test = export_ptf(load(MOVED), example("stateless").setup(), tmp_path / "moved_cex.py")
    assert run_ptf(test, example("stateless").setup()) != 0
    assert run_ptf(test, example("silkroad").setup()) == 0


SHORT_IDLE = DATA / "silkroad-short-idle-config.json"


def _conn_table_keys(session, stages):
    """(stage, bucket, digest) of every ConnTable entry in the switch, read over P4Runtime."""
    from p4.v1 import p4runtime_pb2 as p4r

    from silkcheck.p4runtime import P4RuntimeClient, decode

    client = P4RuntimeClient(session.switch.grpc_address, election_id=1000)
    keys = set()
    try:
        for stage in range(stages):
            table = session.info.tables[f"ConnTable{stage}"]
            names = {field_id: name for name, (field_id, _) in table.keys.items()}
            request = p4r.ReadRequest(device_id=0)
            request.entities.add().table_entry.table_id = table.id
            for response in client.stub.Read(request):
                for entity in response.entities:
                    match = {names[m.field_id]: decode(m.exact.value) for m in entity.table_entry.match}
                    keys.add((stage, match["bucket"], match["digest"]))
    finally:
        client.close()
    return keys


@needs_bmv2
def test_silkroad_keeps_a_connection_that_outlives_the_idle_timeout_and_expires_a_silent_one():
    """(c) with a 5 s idle timeout: A sends every 250 ms for 7 s while its pool changes to DIPs it
    never had (an expiry would move it), B sends once. The Cpu learns A's hits from the switch's
    idle times (no packet of A reports a hit), so A keeps its entry, and B's is expired."""
    import json

    from model.hashing import HashPlan
    from model.types import ACK, PSH, FiveTuple, Packet, parse_ip
    from silkcheck.blackbox.harness import Session, Setup
    from silkcheck.trace import Trace

    config = Config.from_dict(json.loads(SHORT_IDLE.read_text()))
    base = example("silkroad").setup()
    setup = Setup(base.program, base.p4info, f"{Path(__file__).parent / 'silkroad_short_idle.py'}:Controller")
    a = FiveTuple(parse_ip("198.18.7.1"), VIP.ip, 40001, VIP.port, VIP.proto)
    b = FiveTuple(parse_ip("198.18.7.2"), VIP.ip, 40002, VIP.port, VIP.proto)
    events = [ev.PacketArrives(t, Packet(a, PSH | ACK)) for t in range(100_000, 7_100_000, 250_000)]
    events.append(ev.PacketArrives(150_000, Packet(b, ACK)))
    events += [ev.UpdateRequested(2_000_000, VIP, DIPS[2:4]), ev.UpdateRequested(4_000_000, VIP, DIPS[2:3])]
    trace = Trace(config, {VIP: DIPS[:2]}, sorted(events, key=lambda e: e.t))
    with Session(setup) as session:
        run = session.run(trace)
        keys = _conn_table_keys(session, config.stages)
    verdict = judge(config, run.observations)
    assert verdict.ok, verdict.summary()
    plan = HashPlan(config)
    placed = {ft for ft in (a, b) for s in range(config.stages) if (s, *plan.flow(ft).key(s)) in keys}
    assert placed == {a}


TOOLS_MISSING = [tool for tool in ("p4c", "simple_switch_grpc") if shutil.which(tool) is None]


@pytest.mark.skipif(bool(TOOLS_MISSING), reason=f"{' and '.join(TOOLS_MISSING)} not on PATH")
def test_pause_at_prints_a_p4runtime_shell_command_that_reads_the_paused_tables():
    """replay --target bmv2 --pause-at N: the printed p4runtime-shell command, run as printed
    with commands on its stdin, reads as many VIPTable and ConnTable entries as the model has
    after events[:N]; Enter ends the replay."""
    import subprocess
    import sys

    from model.switch import Switch

    trace_path = Path(__file__).parent.parent / "examples" / "demo-update.json"
    trace, pause_at = load(trace_path), 15
    model = Switch.boot(trace.config, trace.vips)
    for index, event in enumerate(trace.events[:pause_at]):
        model.step(index, event)
    placed = sum(len(stage) for stage in model.cpu.table)
    silkcheck = Path(sys.executable).with_name("silkcheck")
    replay = subprocess.Popen([str(silkcheck), "replay", str(trace_path), "--target", "bmv2", "--pause-at",
                               str(pause_at)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        printed = []
        for line in replay.stdout:
            printed.append(line)
            if "press Enter" in line:
                break
        command = next(line for line in printed if "p4runtime_sh" in line).split()
        reads = "".join(f"print('{t}', len(list(TableEntry('{t}').read())))\n"
                        for t in ["VIPTable", *(f"ConnTable{s}" for s in range(trace.config.stages))])  # fmt: skip
        shell = subprocess.run(command, input=reads + "exit\n", capture_output=True, text=True, timeout=120)
        counts = dict(line.split()[-2:] for line in shell.stdout.splitlines() if "Table" in line and ">>>" in line)
        assert counts["VIPTable"] == "1", shell.stdout + shell.stderr
        assert sum(int(counts[f"ConnTable{s}"]) for s in range(trace.config.stages)) == placed > 0
        replay.stdin.write("\n")
        replay.stdin.flush()
        assert replay.wait(timeout=60) == 0
    finally:
        if replay.poll() is None:
            replay.kill()
            replay.wait()
