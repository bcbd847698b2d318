"""The embedded target: the reference model itself."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from model import events as ev
from model.observations import Observation
from model.switch import InvalidEvent, Switch
from silkcheck.trace import Trace, TraceError


class ModelTarget:
    name = "model"

    def run(self, trace: Trace) -> list[Observation]:
        return list(self.stream(trace, trace.events))

    def stream(self, trace: Trace, events: Iterable[ev.Event]) -> Iterator[Observation]:
        """``events`` (for ``trace``'s config and VIPs) through a fresh model, one observation at a time."""
        return step_each(Switch.boot(trace.config, trace.vips), trace.name, events)


def step_each(switch: Switch, name: str, events: Iterable[ev.Event], first: int = 0) -> Iterator[Observation]:
    """Every event through ``switch`` (the first being ``events[first]`` of the trace); an event
    the state cannot take is a trace error."""
    for index, event in enumerate(events, first):
        try:
            yield switch.step(index, event)
        except InvalidEvent as error:
            raise TraceError(f"{name or 'trace'}: events[{index}]: {error}") from None


def step_all(switch: Switch, trace: Trace) -> list[Observation]:
    return list(step_each(switch, trace.name, trace.events))
