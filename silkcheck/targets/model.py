"""The embedded target: the reference model itself."""

from __future__ import annotations

from model.observations import Observation
from model.switch import InvalidEvent, Switch
from silkcheck.trace import Nemesis, Trace, TraceError


class ModelTarget:
    name = "model"

    def run(self, trace: Trace) -> list[Observation]:
        return step_all(Switch.boot(trace.config, trace.vips), trace)


def step_all(switch: Switch, trace: Trace) -> list[Observation]:
    """Every event of ``trace`` through ``switch``; an event the state cannot take is a trace error."""
    observations: list[Observation] = []
    for index, event in enumerate(trace.events):
        if isinstance(event, Nemesis):
            raise TraceError(f"{trace.name or 'trace'}: events[{index}]: the {event.fault} fault acts on a real "
                             "controller: it runs only on --target blackbox")  # fmt: skip
        try:
            observations.append(switch.step(index, event))
        except InvalidEvent as error:
            raise TraceError(f"{trace.name or 'trace'}: events[{index}]: {error}") from None
    return observations
