"""Findings about the shipped model that are not PCC violations, each a trace under ``proofs/findings/``."""

from __future__ import annotations

from pathlib import Path

from model import decisions as d
from model.switch import Switch
from proofs.replay import verdict_of
from silkcheck.trace import load

FINDINGS = Path(__file__).resolve().parent / "findings"


def test_an_unplaced_connection_keeps_its_dip_across_an_idle_gap_but_holds_the_update() -> None:
    """Liveness, not safety: an unplaced connection is never expired, so a dead one holds an update
    in RECORD (and its version's reference) for as long as the ConnTable bucket stays full."""
    trace = load(FINDINGS / "unplaced-silent-blocks-update.json")
    assert not verdict_of(trace).findings
    switch = Switch.boot(trace.config, trace.vips)
    silent = trace.events[2].packet.ft  # type: ignore[union-attr]
    phases = []
    for index, event in enumerate(trace.events):
        switch.step(index, event)
        phases.append(switch.cpu.vip_entries[silent.vip].phase)
    last_before_close = next(i for i, e in enumerate(trace.events) if e.t == 320)
    assert trace.events[last_before_close].t - trace.events[2].t > 2 * trace.config.idle_timeout
    assert set(phases[4 : last_before_close + 1]) == {d.RECORD}, "the update waited for the unplaced connection"
    assert phases[-1] == d.TRANSIT and switch.cpu.known[silent].stage is not None
