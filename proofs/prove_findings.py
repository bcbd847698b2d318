"""Findings about the shipped model that are not PCC violations, each a trace under ``proofs/findings/``."""

from __future__ import annotations

from pathlib import Path

from model import decisions as d
from model.switch import Switch
from proofs.replay import verdict_of
from silkcheck.trace import load

FINDINGS = Path(__file__).resolve().parent / "findings"


def test_a_silent_unplaced_connection_is_forgotten_and_no_longer_holds_the_update() -> None:
    """Liveness: an unplaced connection silent for idle_timeout + learn_delay_bound is forgotten, so
    the update it held (it arrived before t_req) goes on while the ConnTable bucket is still full;
    its next packet starts a new incarnation. Before the fix the update stayed in RECORD until t=350."""
    trace = load(FINDINGS / "unplaced-silent-blocks-update.json")
    assert not verdict_of(trace).findings
    switch = Switch.boot(trace.config, trace.vips)
    silent = trace.events[2].packet.ft  # type: ignore[union-attr]
    phases = {}
    for index, event in enumerate(trace.events):
        switch.step(index, event)
        phases[event.t] = switch.cpu.vip_entries[silent.vip].phase
        if event.t == 150:
            assert silent not in switch.cpu.known, "forgotten after idle_timeout + learn_delay_bound of silence"
    assert phases[20] == d.RECORD and phases[160] == d.TRANSIT
    limit = trace.config.idle_timeout + trace.config.learn_delay_bound
    assert 150 - trace.events[3].t > limit > 20 - trace.events[3].t  # read at t=4: silent long enough at 150 only
