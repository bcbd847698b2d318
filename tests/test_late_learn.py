"""Learn events later than the learn-delay bound (issue #12): writable as the ``late_learn`` fault,
arriving late on the model, excused as a ``fault`` by the oracle, and steps of the abstract system."""

import json
from pathlib import Path

import pytest

from model import events as ev
from model.observations import CpuObservation
from model.switch import Switch
from silkcheck.oracle import FAULT, VIOLATION, judge
from silkcheck.targets.model import run_refined
from silkcheck.trace import TraceError, dumps, load, loads
from spec.check import Refinement

LATE = Path(__file__).parent / "data" / "late-learn-past-the-bound-is-a-fault.json"


def _with_fault(fault: dict) -> str:
    data = json.loads(LATE.read_text())
    data["events"][1] = {"t": 101, "kind": "fault", "index": 0, **fault}
    return json.dumps(data)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"fault": "late_learn", "delay": 100},
         "events[1] (fault).delay: 100 is out of range [101, 2147483648]: learn_delay_bound is 100, use delay_learn"),
        ({"fault": "late_learn", "delay": -5}, "events[1] (fault).delay: -5 is out of range [101, 2147483648]"),
        ({"fault": "late_learn", "delay": "1000"}, "events[1] (fault).delay: expected an integer"),
        ({"fault": "late_learn"}, "events[1] (fault).delay: missing required field"),
        ({"fault": "delay_learn", "delay": 1000},
         "events[1] (fault).delay: 1000 is out of range [0, 100]: learn_delay_bound is 100, use late_learn"),
    ],
)  # fmt: skip
def test_a_learn_delay_on_the_wrong_side_of_the_bound_is_a_clear_error(fault: dict, message: str) -> None:
    with pytest.raises(TraceError) as error:
        loads(_with_fault(fault), "late.json")
    assert message in str(error.value)
    assert str(error.value).startswith("late.json")


def test_late_learn_round_trips_and_arrives_late() -> None:
    trace = load(LATE)
    assert trace.events[1] == ev.LearnLate(101, 0, 1000)
    assert loads(dumps(trace), "again.json").events == trace.events
    observations, _ = run_refined(trace)
    learned = [o.t for o in observations if isinstance(o, CpuObservation) and o.learned]
    assert learned == [1200]  # visible at 100 + 1000: the advance at 220 did not see it


def test_the_oracle_excuses_the_late_connection_as_a_fault() -> None:
    trace = load(LATE)
    observations, refined = run_refined(trace)
    assert refined.mismatch is None and refined.steps == len(trace.events)
    verdict = judge(trace.config, observations)
    assert verdict.ok
    assert [f.category for f in verdict.findings] == [FAULT]


def test_the_same_move_without_the_late_event_observed_is_a_violation() -> None:
    trace = load(LATE)
    observations, _ = run_refined(trace)
    unobserved = [o for o in observations if not (isinstance(o, CpuObservation) and o.kind == "late_learn")]
    verdict = judge(trace.config, unobserved)
    assert [f.category for f in verdict.findings] == [VIOLATION]


def test_the_same_connection_with_its_event_in_time_does_not_move() -> None:
    trace = loads(_with_fault({"fault": "delay_learn", "delay": 100}), "in-time.json")
    observations, refined = run_refined(trace)
    assert refined.mismatch is None
    verdict = judge(trace.config, observations)
    assert verdict.ok and verdict.findings == []


@pytest.mark.parametrize(("event", "refines"), [(ev.LearnLate(101, 0, 1000), True),
                                                (ev.LearnDelayed(101, 0, 1000), False)])  # fmt: skip
def test_only_the_late_fault_may_take_an_event_past_the_bound(event: ev.Event, refines: bool) -> None:
    """A target whose channel delayed an event past the bound and reported it as a delay within it
    leaves the abstract system at that step: ``delay`` keeps the bound the protocol relies on."""
    trace = load(LATE)
    switch = Switch.boot(trace.config, trace.vips)
    refinement = Refinement(switch)
    assert refinement.after(0, trace.events[0], switch.step(0, trace.events[0])) is None
    switch.dataplane.delay_learn(0, 1000)
    mismatch = refinement.after(1, event, CpuObservation(1, 101, "fault"))
    if refines:
        assert mismatch is None
    else:
        assert mismatch is not None and mismatch.what == "guard: a delay keeps the event within the learn-delay bound"
