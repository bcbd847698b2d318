"""The embedded target (the reference model itself), and the runner every target uses."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from model import events as ev
from model.observations import CpuObservation, Observation, PacketObservation
from model.switch import InvalidEvent, Switch
from model.types import Packet
from silkcheck.trace import CookieAck, Nemesis, Trace, TraceError, TraceEvent, event_to_dict
from silkcheck.wire import CookieLedger
from spec.check import Refined, check_run


@contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """Python's cyclic collector paused for a run that keeps its observations, or a search that keeps
    its states. Named tuples are never untracked by the collector (only exact tuples are), so every
    packet, event and observation a run holds is walked again by each full collection: 15-20% of a
    1M-packet run (``silkcheck bench`` prints both rates); so is every search node, 15-20% of a
    two-connection search. The one cycle a run makes, its ``HashPlan`` with the per-flow caches that
    refer back to it, is freed by the first collection after the run; a whole search leaves some 50
    unreachable objects."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class ModelTarget:
    name = "model"

    def run(self, trace: Trace) -> list[Observation]:
        with cycle_collection_paused():
            return list(self.stream(trace, trace.events))

    def stream(self, trace: Trace, events: Iterable[TraceEvent]) -> Iterator[Observation]:
        """``events`` (for ``trace``'s config and VIPs) through a fresh model, one observation at a time."""
        return step_each(Driver(Switch.boot(trace.config, trace.vips)), trace, events)


class NoCookieToAnswer(InvalidEvent):
    """A reactive packet names a flow the switch has sent no SYN-ACK to (yet)."""


@dataclass
class Driver:
    """Feeds events to a switch (the model's, or one whose data plane is BMv2) one at a time.

    The one place where a reactive packet (``CookieAck``) gets its ack number: from the
    SYN-ACKs this switch has sent, as its observations show them, never from a cookie
    function. What a client can answer is what the target under test told it."""

    switch: Switch
    wire: CookieLedger = field(default_factory=CookieLedger)

    def step(self, index: int, event: TraceEvent) -> Observation:
        if isinstance(event, CookieAck):
            event = self.as_sent(event)
        observation = self.switch.step(index, event)
        if isinstance(observation, PacketObservation):
            self.wire.note(observation)
        return observation

    def as_sent(self, event: CookieAck) -> ev.PacketArrives:
        cookie = self.wire.sent.get(event.cookie_of)
        if cookie is None:
            raise NoCookieToAnswer(f"ack: the switch has sent no SYN-ACK to {event.cookie_of} whose cookie to answer")
        return event.sent_with(cookie)


def run_refined(trace: Trace) -> tuple[list[Observation], Refined]:
    """Run ``trace`` on the model, checking every step against the abstract system the proofs are
    about (``spec``): every observation (the run goes on past a step that does not refine), and
    the first step it cannot take, if any."""
    switch = Switch.boot(trace.config, trace.vips)
    observations: list[Observation] = []
    run = step_each(Driver(switch), trace, trace.events)

    def noted() -> Iterator[Observation]:
        for observation in run:
            observations.append(observation)
            yield observation

    refined = check_run(switch, trace.events, noted())
    observations.extend(run)  # the check stops at its first mismatch
    return observations, refined


def refinement_of(trace: Trace) -> Refined:
    """The first step of ``trace`` on the model that the abstract system cannot take, if any."""
    return run_refined(trace)[1]


def step_each(driver: Driver, trace: Trace, events: Iterable[TraceEvent], first: int = 0) -> Iterator[Observation]:
    """Every event through ``driver``'s switch (the first being ``trace``'s events[first]); an event
    the state cannot take, or one that would overfill a table of the P4 program, is an error of the
    trace's file at that event."""
    for index, event in enumerate(events, first):
        if isinstance(event, Nemesis):
            raise event_error(trace, index, event, f"the {event.fault} fault acts on a real controller: it runs "
                                                   "only on --target blackbox")  # fmt: skip
        try:
            observation = driver.step(index, event)
        except InvalidEvent as error:
            raise event_error(trace, index, event, str(error)) from None
        if isinstance(observation, CpuObservation) and (observation.whitelisted or observation.phases):
            overflow = capacity_overflow(driver.switch)
            if overflow:
                raise event_error(trace, index, event, overflow)
        yield observation


def step_all(switch: Switch, trace: Trace) -> list[Observation]:
    return list(step_each(Driver(switch), trace, trace.events))


def event_error(trace: Trace, index: int, event: TraceEvent, message: str) -> TraceError:
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


def sent_packets(trace: Trace) -> Iterable[tuple[int, Packet]]:
    """(time, packet) of every packet as its client sent it: a reactive packet's ack is the one
    it sent on the model target."""
    if not trace.reactive:
        return ((e.t, e.packet) for e in trace.packets)
    return ((o.t, o.packet) for o in ModelTarget().run(trace) if isinstance(o, PacketObservation))
