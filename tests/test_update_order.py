"""Update requests are served first come, first served across VIPs (issue #12), and the refinement
check holds the CPU to that order."""

from pathlib import Path

from fuzz.mutants import get_mutant
from model import decisions as d
from model import events as ev
from model.cpu import CpuLog, Request
from model.observations import CpuObservation
from model.switch import Switch
from model.writes import VipWrite
from silkcheck.targets.model import run_refined
from silkcheck.trace import load

FCFS = load(Path(__file__).parent / "data" / "updates-start-first-come-first-served.json")


def _starts(observations: list) -> list[tuple[int, str]]:
    """(time, VIP) of each update's RECORD write taking effect: when it started."""
    return [(o.t, str(w.vip)) for o in observations if isinstance(o, CpuObservation) for w in o.applied
            if isinstance(w, VipWrite) and w.entry.phase == d.RECORD]  # fmt: skip


def test_updates_start_in_request_order_across_vips() -> None:
    observations, refined = run_refined(FCFS)
    assert [vip for _, vip in _starts(observations)] == [
        "20.0.0.1:80/tcp", "20.0.0.3:80/tcp", "20.0.0.2:80/tcp", "20.0.0.1:80/tcp"]  # fmt: skip
    assert refined.mismatch is None


def test_refinement_kills_the_vip_order_mutant() -> None:
    with get_mutant("updates-start-in-vip-order").patch():
        observations, refined = run_refined(FCFS)
    assert [vip for _, vip in _starts(observations)][:2] == ["20.0.0.1:80/tcp", "20.0.0.1:80/tcp"]
    assert refined.mismatch is not None
    assert refined.mismatch.what.startswith("guard: updates start first come, first served across VIPs")


def test_a_vip_without_a_free_version_does_not_hold_back_the_others() -> None:
    cpu = Switch.boot(FCFS.config, FCFS.vips).cpu
    _, b, c = sorted(FCFS.vips)
    cpu.requests[c].append(Request(FCFS.vips[c], 5))
    cpu.requests[b].append(Request(FCFS.vips[b], 7))
    assert cpu.waiting() == [c, b]
    for version in range(FCFS.config.versions):
        cpu.pools[c].setdefault(version, FCFS.vips[c])  # c, the oldest, has no free version left
    log = CpuLog()
    cpu._start_updates(9, log)
    assert list(cpu.updates) == [b]
    assert [r.at for r in cpu.requests[c]] == [5]
    assert any("versions are in use" in note for note in log.notes)


def test_a_restart_keeps_the_request_times() -> None:
    switch = Switch.boot(FCFS.config, FCFS.vips)
    for i, e in enumerate(FCFS.events[:5]):
        switch.step(i, e)
    before = {vip: list(q) for vip, q in switch.cpu.requests.items()}
    switch.step(5, ev.CpuRestarts(41))
    assert {vip: list(q) for vip, q in switch.cpu.requests.items()} == before
    assert [r.at for q in before.values() for r in q] == [40, 30, 20]
