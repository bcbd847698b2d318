"""Bounded model checking of the whole switch: safe to a depth, non-vacuous, and it catches variants."""

from __future__ import annotations

import pytest

from proofs import bmc, variants
from proofs.replay import reproduces


def test_no_violation_to_depth_6_and_the_situations_are_reachable() -> None:
    result = bmc.bmc(bmc.BmcScope("two conns"), 6)
    assert result.safe and result.depth == 6
    assert result.reachable and all(result.reachable.values()), result.reachable


@pytest.mark.parametrize("name", ["skip-transit", "no-learn-wait", "finish-at-exec"])
def test_bmc_finds_the_variant_and_its_trace_reproduces(name: str) -> None:
    variant = variants.VARIANTS_BY_NAME[name]
    scope = bmc.BmcScope("cex", realizable=True)
    with variant.applied():
        result = bmc.bmc(scope, 7)
        assert not result.safe
        trace = bmc.counterexample_trace(result, name, variant.description, bmc.config_for(scope))
        assert reproduces(trace)
    assert not reproduces(trace)
