"""Unbounded PCC of the two-phase update, its non-vacuity, and its sensitivity to the decision code."""

from __future__ import annotations

from typing import Any
from unittest import mock

import z3

from model import decisions as d
from proofs import protocol
from proofs.symbolic import SAFE, UNSAFE, VACUOUS, prove

_miss_version = d.miss_version


def test_pcc_across_the_update_is_proved_for_any_arrival_time() -> None:
    outcome = protocol.prove_update_pcc()
    assert outcome.status == SAFE, outcome.detail


def test_every_case_the_proof_speaks_about_is_reachable() -> None:
    s = protocol.schedule()
    cases = s.cases()
    assert {"anchor in record", "anchor in transit", "anchor in sealed", "Bloom false positive used"} <= set(cases)
    for name, condition in cases.items():
        assert prove(name, s.assumptions(), z3.BoolVal(True), condition).status == SAFE, name


def test_flipping_the_transit_table_hit_rule_breaks_the_proof() -> None:
    def flipped(o: d.Ops, phase: Any, transit_hit: Any, old: Any, new: Any) -> Any:
        return _miss_version(o, phase, o.not_(transit_hit), old, new)

    with mock.patch.object(d, "miss_version", flipped):
        outcome = protocol.prove_update_pcc()
    assert outcome.status == UNSAFE


def test_contradictory_assumptions_are_reported_vacuous() -> None:
    with mock.patch.object(d, "may_exec", lambda o, waited, before: False):
        outcome = protocol.prove_update_pcc()
    assert outcome.status == VACUOUS
    assert "unreachable case" in outcome.detail
