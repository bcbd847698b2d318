"""Counterexamples are traces: replay on the concrete model, judge, shrink, save."""

from __future__ import annotations

from pathlib import Path

from model.dataplane import LearnEvent
from model.switch import InvalidEvent, Switch
from silkcheck.oracle import VIOLATION, Verdict, judge
from silkcheck.targets.model import ModelTarget
from silkcheck.trace import Trace, TraceError, save

COUNTEREXAMPLES_DIR = Path(__file__).resolve().parent / "counterexamples"


def verdict_of(trace: Trace) -> Verdict:
    return judge(trace.config, ModelTarget().run(trace))


def reproduces(trace: Trace) -> bool:
    """Does the concrete model, judged by the black-box oracle, show a PCC ``violation``?"""
    try:
        verdict = verdict_of(trace)
    except TraceError:
        return False  # a shrunk trace may name a learn event that no longer exists
    return any(f.category == VIOLATION for f in verdict.findings)


def minimize(trace: Trace) -> Trace:
    """Drop events one at a time while the violation still reproduces (a 1-minimal trace)."""
    events = list(trace.events)
    shrunk = True
    while shrunk:
        shrunk = False
        for i in reversed(range(len(events))):
            candidate = Trace(trace.config, trace.vips, events[:i] + events[i + 1 :], trace.name, trace.description,
                              trace.expect)  # fmt: skip
            if reproduces(candidate):
                events = candidate.events
                shrunk = True
    return Trace(trace.config, trace.vips, events, trace.name, trace.description, trace.expect)


def save_counterexample(trace: Trace, directory: Path = COUNTEREXAMPLES_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{trace.name}.json"
    save(trace, path)
    return path


def queue_after(trace: Trace, count: int) -> list[LearnEvent]:
    """The learn queue after the first ``count`` events of ``trace``."""
    switch = Switch.boot(trace.config, trace.vips)
    for index, event in enumerate(trace.events[:count]):
        try:
            switch.step(index, event)
        except InvalidEvent as error:
            raise TraceError(f"{trace.name}: events[{index}]: {error}") from None
    return list(switch.dataplane.learn_queue)
