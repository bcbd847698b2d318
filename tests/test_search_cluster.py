"""The explicit-state search on a Dask cluster: the one-process search's states, edges, depth and
counterexample on two workers; a worker killed mid-search costs a level, not the result."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from proofs import explicit
from silkcheck.cli import main, unsafe_designs
from silkcheck.cluster import open_cluster
from silkcheck.search_cluster import PartitionLost, search_on_cluster

ONE_CONNECTION = explicit.SCOPES["update-1"]
SHALLOW = replace(ONE_CONNECTION, max_depth=8)
WRITE_ORDER_MUTANT = "exec-without-bound-wait"
"""A mutant the refinement check stops in ``update-1-writes`` after some 1,600 states, 8 events deep."""


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with open_cluster(None, 2) as client:
        yield client


@pytest.fixture
def two_workers(client: Any) -> Any:
    client.wait_for_workers(2, timeout=60)  # a killed worker's nanny starts it again
    return client


def test_two_workers_find_the_states_of_one_process(two_workers: Any) -> None:
    one, two = explicit.search(ONE_CONNECTION), search_on_cluster(two_workers, ONE_CONNECTION)
    assert (two.states, two.edges, two.depth, two.workers) == (one.states, one.edges, one.depth, 2)
    assert two.fixpoint and two.phases == one.phases and two.pending_states == one.pending_states


def test_two_workers_find_the_same_refinement_mismatch_by_the_same_path(two_workers: Any) -> None:
    scope = explicit.SCOPES["update-1-writes"]
    with unsafe_designs()[WRITE_ORDER_MUTANT]():
        one = explicit.search(scope, refinement=True)
    two = search_on_cluster(two_workers, scope, refinement=True, design=WRITE_ORDER_MUTANT)
    assert one.mismatch is not None and one.counterexample is not None and two.counterexample is not None
    assert two.mismatch == one.mismatch and two.counterexample.events == one.counterexample.events
    assert (two.states, two.edges) == (one.states, one.edges)


def _killing_a_worker_at_depth(client: Any, depth: int, notes: list[str]) -> Any:
    victim = min(client.run(os.getpid).values())

    def progress(line: str) -> None:
        notes.append(line)
        if f": depth {depth}," in line:
            os.kill(victim, signal.SIGKILL)

    return progress


def test_a_worker_killed_mid_search_costs_a_level_not_the_result(two_workers: Any) -> None:
    notes: list[str] = []
    result = search_on_cluster(two_workers, SHALLOW, _killing_a_worker_at_depth(two_workers, 3, notes))
    one = explicit.search(SHALLOW)
    assert (result.states, result.edges, result.depth) == (one.states, one.edges, one.depth)
    restarts = [line for line in notes if line.startswith("lost partition")]
    assert len(restarts) == 1 and "during level 4: every partition restarts from its checkpoint" in restarts[0]


def test_without_restarts_the_error_names_the_lost_partition_and_what_was_explored(two_workers: Any) -> None:
    notes: list[str] = []
    progress = _killing_a_worker_at_depth(two_workers, 3, notes)
    with pytest.raises(PartitionLost) as lost:
        search_on_cluster(two_workers, SHALLOW, progress, retries=0)
    at_depth_3 = next(line for line in notes if ": depth 3," in line).split(", ")[1]  # "30 states"
    assert re.fullmatch(rf"lost partition [01] \(worker tcp://\S+, pid \d+\) during level 4; {at_depth_3} explored "
                        r"to depth 3; gave up after 0 restarts", str(lost.value))  # fmt: skip


def test_the_search_command_prints_progress_and_coverage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "update-1", "--workers", "2", "--max-depth", "4"]) == 0
    out, err = capsys.readouterr()
    assert "dashboard http" in err and "update-1: depth 4," in err
    assert out.startswith("search update-1 on 2 partitions: no violation:") and "every state within 4 steps" in out


def test_the_search_command_on_one_worker_finds_the_states_of_one_process(capsys: pytest.CaptureFixture[str]) -> None:
    one = explicit.search(SHALLOW)
    assert main(["search", "update-1", "--max-depth", "8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"search update-1 on 1 partition: no violation: {one.states:,} states, {one.edges:,} edges, "
                          f"depth {one.depth},")  # fmt: skip


def test_a_saved_counterexample_of_a_mutant_is_named_for_it(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["search", "update-1-writes", "--refinement", "--mutant", WRITE_ORDER_MUTANT, "--save", str(tmp_path)]
    assert main(args) == 1
    (saved,) = tmp_path.glob("*.json")
    assert saved.name == f"search-update-1-writes-{WRITE_ORDER_MUTANT}.json"
    capsys.readouterr()
    assert main(["replay", str(saved)]) == 2  # its writes are the mutant's: the shipped design cannot run it
    assert f"add --mutant {WRITE_ORDER_MUTANT} to see it fail" in capsys.readouterr().err
    assert main(["replay", str(saved), "--mutant", WRITE_ORDER_MUTANT]) == 1
