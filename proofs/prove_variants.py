"""Every unsafe protocol variant is refuted by a Z3 counterexample that replays on the model."""

from __future__ import annotations

import pytest

from proofs import variants
from proofs.replay import COUNTEREXAMPLES_DIR, reproduces
from proofs.symbolic import UNSAFE
from silkcheck.trace import load


@pytest.mark.parametrize("variant", variants.VARIANTS, ids=lambda v: v.name)
def test_z3_or_the_search_refutes_the_variant_with_a_trace_that_reproduces(variant: variants.Variant) -> None:
    r = variants.refute(variant)
    assert r.outcome.status == UNSAFE
    assert r.reproduces, "the Z3 counterexample must be a PCC violation on the patched concrete model"
    assert r.minimal is not None and len(r.minimal.events) <= len(r.trace.events)  # type: ignore[union-attr]
    assert r.safe_on_shipped, "the same trace must pass on the shipped design"


@pytest.mark.parametrize("variant", variants.VARIANTS, ids=lambda v: v.name)
def test_the_saved_minimal_trace_reproduces(variant: variants.Variant) -> None:
    trace = load(COUNTEREXAMPLES_DIR / f"{variant.name}.json")
    with variant.applied():
        assert reproduces(trace)
    assert not reproduces(trace)


def test_the_unchecked_cuckoo_move_is_refuted_by_a_random_walk() -> None:
    walks, trace = variants.refute_unchecked_move()
    assert trace is not None, f"no violation in {walks} walks"
    with variants.unchecked_move():
        assert reproduces(trace)
    assert not reproduces(trace)
    saved = load(COUNTEREXAMPLES_DIR / f"{variants.UNCHECKED_MOVE[0]}.json")
    with variants.unchecked_move():
        assert reproduces(saved)
