"""The symbolic twin is the model's own decision code, and a drifted twin is caught."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
import z3

from model import decisions as d
from proofs import twin
from proofs.symbolic import Z3Ops


def test_every_decision_has_a_z3_twin_equal_to_the_concrete_function() -> None:
    found = twin.decisions()
    assert {"packet_version", "drops_sealed", "next_phase", "may_exec", "write_keeps_lookup"} <= set(found)
    outcomes = twin.check_all_twins()
    assert outcomes and all(o.proved for o in outcomes), [o for o in outcomes if not o.proved]


def test_a_wrong_z3_operation_is_caught() -> None:
    def swapped_ite(cond: Any, then: Any, other: Any) -> Any:
        return z3.If(cond if not isinstance(cond, bool) else z3.BoolVal(cond), other, then)

    with mock.patch.object(Z3Ops, "ite", staticmethod(swapped_ite)):
        outcomes = twin.check_twin("miss_version", d.miss_version)
    assert not outcomes[0].proved


def test_a_new_decision_needs_a_declared_domain() -> None:
    def weird(o: d.Ops, mystery: Any) -> Any:
        return o.not_(mystery)

    with pytest.raises(twin.UnknownDomain, match="mystery"):
        twin.check_twin("weird", weird)
