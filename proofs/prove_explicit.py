"""Exhaustive explicit-state search of the concrete model."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fuzz.mutants import MUTANTS_BY_NAME
from model import decisions as d
from model.switch import Switch
from proofs import explicit, variants
from proofs.replay import reproduces
from silkcheck.examples import demo_update
from silkcheck.oracle import VIOLATION
from silkcheck.targets.model import refinement_of

WRITES = explicit.SCOPES["update-1-writes"]


def _contents(switch: Switch) -> explicit.Packed:
    """The packed switch with its sets as sets (their iteration order depends on their history)."""
    packed = explicit.pack(switch)
    return packed._replace(learn_filter=frozenset(packed.learn_filter), dp_whitelist=frozenset(packed.dp_whitelist),
                           cpu_whitelist=frozenset(packed.cpu_whitelist))  # fmt: skip


def test_a_packed_switch_unpacks_to_an_equal_copy_that_steps_alike() -> None:
    trace = demo_update()
    switch = Switch.boot(trace.config, trace.vips)
    for i, event in enumerate(trace.events[:40]):
        switch.step(i, event)
    packed = explicit.pack(switch)
    copy = explicit.unpack(packed, switch.config, switch.dataplane.plan)
    assert explicit.pack(copy) == packed
    for i, event in enumerate(trace.events[40:80], start=40):
        assert copy.step(i, event) == switch.step(i, event)
        assert _contents(copy) == _contents(switch)
    assert explicit.pack(switch) != packed  # the copy shares nothing mutable with the packed state


def test_every_state_within_the_depth_of_the_update_scope_keeps_pcc() -> None:
    result = explicit.search(explicit.SCOPES["update"])
    assert result.complete and result.depth_bounded and result.counterexample is None
    assert result.states > 1000 and result.group == 2  # the two connections are interchangeable
    assert result.phases == set(d.PHASE_NAMES)


def test_the_single_connection_update_scope_is_explored_to_its_fixpoint() -> None:
    result = explicit.search(explicit.SCOPES["update-1"])
    assert result.fixpoint and not result.depth_bounded and result.counterexample is None
    assert result.coverage() == "fixpoint: every reachable state"
    assert result.states > 1000 and result.edges > result.states and result.pending_states == 0
    assert result.phases == set(d.PHASE_NAMES)
    assert result.collision_bound < 1e-9


def _reachable(scope: explicit.Scope) -> set[int]:
    partition = explicit.Partition(explicit.Expander(scope, refinement=False))
    stats = explicit.LevelStats()
    partition.admit([partition.expander.root], stats, 1)
    while partition.frontier:
        partition.expand(stats, scope.max_states)
        assert not stats.findings
    return partition.seen


def test_the_write_granular_scope_reaches_every_atomic_state_and_the_states_between_writes() -> None:
    atomic = replace(explicit.SCOPES["update-1"], delay_faults=False)
    granular = replace(atomic, writes=True)
    atomic_states, granular_states = _reachable(atomic), _reachable(granular)
    assert atomic_states < granular_states
    result = explicit.search(granular)
    assert result.fixpoint and result.states == len(granular_states) and result.pending_states > 0


def test_merged_states_have_the_same_successors() -> None:
    assert explicit.quotient_errors(replace(WRITES, max_depth=9)) == []
    assert explicit.quotient_errors(replace(explicit.SCOPES["expiry"], max_depth=7)) == []


def test_an_image_that_caps_time_gaps_too_short_merges_states_that_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    exact = explicit._ages
    monkeypatch.setattr(explicit, "_ages", lambda times, now, cap: exact(times, now, 1))
    assert explicit.quotient_errors(replace(explicit.SCOPES["expiry"], max_depth=7), limit=1)


def test_every_edge_refines_the_abstract_system() -> None:
    result = explicit.search(replace(WRITES, max_depth=10), refinement=True)
    assert result.complete and result.mismatch is None and result.counterexample is None
    assert result.pending_states > 0


def test_the_refinement_check_on_the_search_edges_stops_a_write_order_mutant() -> None:
    with MUTANTS_BY_NAME["record-before-epoch-bump"].patch():
        result = explicit.search(WRITES, refinement=True)
        assert result.mismatch is not None and result.counterexample is not None
        assert refinement_of(result.counterexample).mismatch == result.mismatch
    assert refinement_of(result.counterexample).mismatch is None


def test_the_search_finds_the_shortest_path_of_a_variant() -> None:
    variant = variants.VARIANTS_BY_NAME["skip-transit"]
    with variant.applied():
        result = explicit.search(explicit.SCOPES["update"])
        assert result.counterexample is not None and reproduces(result.counterexample)
    assert result.verdict is not None and result.verdict.findings[0].category == VIOLATION
    assert len(result.counterexample.events) <= 6
    assert not reproduces(result.counterexample)


def test_two_processes_find_the_same_states() -> None:
    scope = explicit.SCOPES["update"]
    one, two = explicit.search(scope), explicit.search(scope, workers=2)
    assert (two.states, two.edges, two.depth, two.workers) == (one.states, one.edges, one.depth, 2)


def test_a_partition_takes_the_ticks_only_of_the_switch_images_it_owns() -> None:
    scope = explicit.SCOPES["update-1"]
    parts = [explicit.Partition(explicit.Expander(scope, refinement=False), part, 2) for part in range(2)]
    stats = explicit.LevelStats()
    root = parts[0].expander.root
    parts[explicit.owner(root.home, 2)].admit([root], stats, 10**6)
    while any(p.frontier for p in parts):  # the forked search's levels, in one process
        outgoing = [p.expand(stats, 10**6) for p in parts]
        for to, p in enumerate(parts):
            p.admit([node for sent in outgoing for node in sent[to]], stats, 10**6)
    assert sum(p.states for p in parts) == explicit.search(scope).states
    for part, p in enumerate(parts):
        images = p.expander._representatives
        ticked = [image for image, kind, _ in p.expander._moves if kind is type(None)]
        assert ticked and all(explicit.owner(min(images[image].digests), 2) == part for image in ticked)


def test_an_incomplete_search_says_so() -> None:
    result = explicit.search(replace(explicit.SCOPES["update-1"], max_states=50))
    assert not result.complete and not result.fixpoint and result.coverage().startswith("INCOMPLETE")


def test_ages_keep_order_and_short_gaps() -> None:
    ages = explicit._ages([0, 1, 50, 52, 1000], now=1000, cap=3)
    assert [ages[t] for t in (0, 1, 50, 52, 1000)] == [9, 8, 5, 3, 0]


@pytest.mark.parametrize("name, depth", [("expiry", 8), ("collision", 5), ("update-1-writes", None)])
def test_stepping_each_switch_image_once_finds_what_stepping_every_edge_finds(name: str, depth: int | None) -> None:
    scope = explicit.SCOPES[name] if depth is None else replace(explicit.SCOPES[name], max_depth=depth)
    remembered, stepped = explicit.search(scope), explicit.search(scope, memo=False)
    assert (remembered.states, remembered.edges, remembered.depth) == (stepped.states, stepped.edges, stepped.depth)
    assert remembered.phases == stepped.phases and remembered.pending_states == stepped.pending_states


def test_the_memo_steps_each_switch_image_and_letter_once() -> None:
    expander = explicit.Expander(explicit.SCOPES["update-1"], refinement=False)
    partition, stats = explicit.Partition(expander), explicit.LevelStats()
    partition.admit([expander.root], stats, 1)
    while partition.frontier:
        partition.expand(stats, 10**6)
    assert 0 < expander.stepped < stats.edges
