"""Exhaustive explicit-state search of the concrete model."""

from __future__ import annotations

from dataclasses import replace

from model.switch import Switch
from proofs import explicit, variants
from proofs.explicit import DEMO_VIP, DIP1
from proofs.replay import reproduces
from silkcheck.examples import demo_update
from silkcheck.oracle import VIOLATION


def test_clone_is_a_faithful_copy() -> None:
    trace = demo_update()
    switch = Switch.boot(trace.config, trace.vips)
    for i, event in enumerate(trace.events[:40]):
        switch.step(i, event)
    copy = explicit.clone(switch)
    assert explicit.freeze(copy, 1000, 10**9) == explicit.freeze(switch, 1000, 10**9)
    copy.step(0, trace.events[40])
    assert explicit.freeze(copy, 1000, 10**9) != explicit.freeze(switch, 1000, 10**9)


def test_every_reachable_state_of_the_update_scope_keeps_pcc() -> None:
    result = explicit.search(explicit.SCOPES["update"])
    assert result.complete and result.counterexample is None
    assert result.states > 1000 and result.graph.number_of_nodes() == result.states
    assert any(k[0][8] != explicit.freeze(Switch.boot(result.scope.config, {DEMO_VIP: (DIP1,)}), 0, 3)[8]
               for k in result.graph.nodes)  # fmt: skip  (an update happened: the CPU's pools changed)


def test_the_search_finds_the_shortest_path_of_a_variant() -> None:
    variant = variants.VARIANTS_BY_NAME["skip-transit"]
    with variant.applied():
        result = explicit.search(explicit.SCOPES["update"])
        assert result.counterexample is not None and reproduces(result.counterexample)
    assert result.verdict is not None and result.verdict.findings[0].category == VIOLATION
    assert len(result.counterexample.events) <= 6
    assert not reproduces(result.counterexample)


def test_an_incomplete_search_says_so() -> None:
    result = explicit.search(replace(explicit.SCOPES["update"], max_states=50))
    assert not result.complete
