"""The embedded target: the reference model itself."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from model import events as ev
from model.observations import CpuObservation, Observation
from model.switch import InvalidEvent, Switch
from silkcheck.trace import Trace, TraceError, event_to_dict


class ModelTarget:
    name = "model"

    def run(self, trace: Trace) -> list[Observation]:
        return list(self.stream(trace, trace.events))

    def stream(self, trace: Trace, events: Iterable[ev.Event]) -> Iterator[Observation]:
        """``events`` (for ``trace``'s config and VIPs) through a fresh model, one observation at a time."""
        return step_each(Switch.boot(trace.config, trace.vips), trace, events)


def step_each(switch: Switch, trace: Trace, events: Iterable[ev.Event], first: int = 0) -> Iterator[Observation]:
    """Every event through ``switch`` (the first being ``trace``'s events[first]); an event the state
    cannot take, or one that would overfill a table of the P4 program, is an error of the trace's
    file at that event."""
    for index, event in enumerate(events, first):
        try:
            observation = switch.step(index, event)
        except InvalidEvent as error:
            raise event_error(trace, index, event, str(error)) from None
        if isinstance(observation, CpuObservation) and (observation.whitelisted or observation.phases):
            overflow = capacity_overflow(switch)
            if overflow:
                raise event_error(trace, index, event, overflow)
        yield observation


def step_all(switch: Switch, trace: Trace) -> list[Observation]:
    return list(step_each(switch, trace, trace.events))


def event_error(trace: Trace, index: int, event: ev.Event, message: str) -> TraceError:
    where = trace.source or trace.name or "trace"
    return TraceError(f"{where}: events[{index}] ({event_to_dict(event)['kind']}): {message}")


def capacity_overflow(switch: Switch) -> str | None:
    """Why the switch's tables no longer fit the P4 program's (``Config`` capacities), or None.

    Only CPU steps write tables: the whitelist grows by whitelisting, the pools by an update's start
    (which always changes a VIP's phase). A trace whose workload needs more is one the compiled
    program cannot run (BMv2 would refuse the write), so it is refused on every target alike."""
    config = switch.config
    if len(switch.cpu.whitelist) > config.whitelist_capacity:
        return (f"the whitelist would hold {len(switch.cpu.whitelist):,} sources; the P4 program's Whitelist "
                f"holds {config.whitelist_capacity:,} (config whitelist_capacity)")  # fmt: skip
    pooled = sum(len(pool) for versions in switch.cpu.pools.values() for pool in versions.values())
    if pooled > config.dip_pool_capacity:
        return (f"the live pools would hold {pooled:,} DIPs together; the P4 program's DIPPoolTable holds "
                f"{config.dip_pool_capacity:,} (config dip_pool_capacity)")  # fmt: skip
    return None
