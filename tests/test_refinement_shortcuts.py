"""The refinement check's shortcuts (α read again only where a step can change it, quantifiers over
the connections in scope only) give the verdicts and effects of the check without them."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.invariants import REFINEMENT, Checker
from fuzz.walk import Checks, walk
from model.switch import Switch
from silkcheck.targets.model import Driver
from silkcheck.trace import load
from spec import check, concrete
from spec.system import EMPTY, Event

CHECKED = Checks(check_alpha=True)
REGRESSIONS = sorted((Path(__file__).parent / "data").glob("*.json"))


def test_incremental_alpha_is_alpha_at_every_step_of_walks() -> None:
    steps = 0
    for seed in range(30):
        outcome = walk(seed, checks=CHECKED)
        assert outcome.failure is None, outcome.failure
        steps += outcome.steps
    assert steps > 5_000


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.stem for p in REGRESSIONS])
def test_regression_traces_refine_with_the_shortcuts_checked(path: Path) -> None:
    trace = load(path)
    switch = Switch.boot(trace.config, trace.vips)
    driver, checker = Driver(switch), Checker(switch, invariants=False, check_alpha=True)
    for index, event in enumerate(trace.events):
        assert checker.after(event, driver.step(index, event)) is None


def _first_failure() -> str:
    for seed in range(10):
        failure = walk(seed, checks=CHECKED).failure
        if failure is not None:
            assert failure.category == REFINEMENT
            return failure.kind
    raise AssertionError("no walk failed")


def test_an_incremental_alpha_that_misses_the_hit_timer_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    after_packet = concrete.alpha_after_packet

    def without_timer(before: concrete.State, switch: Switch, ft: object, hit_key: object) -> object:
        return after_packet(before, switch, ft, None)

    monkeypatch.setattr(check, "alpha_after_packet", without_timer)
    assert _first_failure().endswith("incremental α")


def test_a_scope_that_leaves_out_a_known_connection_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(concrete, "in_scope", lambda before, conns: [])
    assert _first_failure().endswith("connections in scope")


def test_the_kept_queue_keys_follow_appends_and_are_read_again_after_any_other_change() -> None:
    keys = concrete.QueueKeys()
    a, b, c = (Event(kind, conn, 0, 0, 0, False, EMPTY) for kind, conn in ((0, "x"), (1, "x"), (0, "y")))
    assert keys.of((a,)) == {(0, "x")}
    assert keys.of((a, b)) == {(0, "x"), (1, "x")}  # appended
    assert keys.of((a, b, c)) == {(0, "x"), (1, "x"), (0, "y")}
    assert keys.of((b, c)) == {(1, "x"), (0, "y")}  # the CPU read one
    assert keys.of((a, c)) == {(0, "x"), (0, "y")}  # as long, another event
