"""Exhaustive explicit-state search of the concrete model."""

from __future__ import annotations

from dataclasses import replace

from model import decisions as d
from model.switch import Switch
from proofs import explicit, variants
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


def test_every_state_within_the_depth_of_the_update_scope_keeps_pcc() -> None:
    result = explicit.search(explicit.SCOPES["update"])
    assert result.complete and result.depth_bounded and result.counterexample is None
    assert result.states > 1000 and result.graph.number_of_nodes() == result.states
    vip_tables = (state[0][1] for state in result.graph.nodes)  # the frozen VIPTable of every state
    assert {entry.phase for table in vip_tables for _, entry in table} == set(d.PHASE_NAMES)


def test_the_single_connection_update_scope_is_explored_to_its_fixpoint() -> None:
    result = explicit.search(explicit.SCOPES["update-1"])
    assert result.fixpoint and not result.depth_bounded and result.counterexample is None
    assert result.coverage() == "fixpoint: every reachable state"
    assert result.states > 1000 and result.edges > result.states
    vip_tables = (state[0][1] for state in result.graph.nodes)
    assert {entry.phase for table in vip_tables for _, entry in table} == set(d.PHASE_NAMES)


def test_the_search_finds_the_shortest_path_of_a_variant() -> None:
    variant = variants.VARIANTS_BY_NAME["skip-transit"]
    with variant.applied():
        result = explicit.search(explicit.SCOPES["update"])
        assert result.counterexample is not None and reproduces(result.counterexample)
    assert result.verdict is not None and result.verdict.findings[0].category == VIOLATION
    assert len(result.counterexample.events) <= 6
    assert not reproduces(result.counterexample)


def test_an_incomplete_search_says_so() -> None:
    result = explicit.search(replace(explicit.SCOPES["update-1"], max_states=50))
    assert not result.complete and not result.fixpoint and result.coverage().startswith("INCOMPLETE")


def test_compression_keeps_order_and_short_gaps() -> None:
    labels = explicit._compress({0, 1, 50, 52, 1000}, cap=3)
    assert [labels[t] for t in (0, 1, 50, 52, 1000)] == [0, 1, 4, 6, 9]
