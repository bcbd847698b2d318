"""The model's input alphabet: what can happen to a SilkRoad switch.

Every event carries ``t``, a time in ticks (µs), non-decreasing along a trace.

An event that sets the switch CPU to work (an update request, a CPU step, a
restart, a DIP failure) carries ``writes``: how many of the table writes the
CPU makes take effect at once (None: all of them). The rest wait, in order,
for ``CpuWrites`` events, and packets in between see the half-written tables.
The CPU finishes what it still had to write before it starts anything else.
"""

from __future__ import annotations

from typing import NamedTuple

from model.types import Dip, Packet, Vip


class PacketArrives(NamedTuple):
    t: int
    packet: Packet


class UpdateRequested(NamedTuple):
    """An operator asks for a new DIP pool for ``vip`` (t_req once the CPU starts it)."""

    t: int
    vip: Vip
    pool: tuple[Dip, ...]
    writes: int | None = None


class CpuLearns(NamedTuple):
    """The CPU reads up to ``limit`` visible learn events (all if None) and installs."""

    t: int
    limit: int | None = None
    writes: int | None = None


class CpuAdvances(NamedTuple):
    """The CPU drains learn events, then moves each update on as far as its guards allow."""

    t: int
    writes: int | None = None


class CpuExpires(NamedTuple):
    """The CPU drains learn events, removes idle and torn-down ConnTable entries, reclaims versions."""

    t: int
    writes: int | None = None


class LearnLost(NamedTuple):
    """Fault: the ``index``-th queued learn event never reaches the CPU."""

    t: int
    index: int


class LearnDelayed(NamedTuple):
    """Fault: the ``index``-th queued learn event becomes visible ``delay`` ticks after it was sent."""

    t: int
    index: int
    delay: int


class LearnLate(NamedTuple):
    """Fault: the ``index``-th queued learn event becomes visible ``delay`` ticks after it was sent,
    later than the learn-delay bound the update protocol and version reuse wait for: a channel that
    breaks its promise. What the event tells the CPU arrives after the CPU stopped waiting for it."""

    t: int
    index: int
    delay: int


class CpuRestarts(NamedTuple):
    """Fault: the switch CPU process restarts and recovers from its journal (which holds the
    writes it had not made yet: it makes them first)."""

    t: int
    writes: int | None = None


class DipFails(NamedTuple):
    """Fault: a server dies; the CPU removes it from every pool."""

    t: int
    dip: Dip
    writes: int | None = None


class CpuWrites(NamedTuple):
    """The next ``count`` table writes the CPU has queued take effect, one after another."""

    t: int
    count: int = 1


Event = (
    PacketArrives
    | UpdateRequested
    | CpuLearns
    | CpuAdvances
    | CpuExpires
    | LearnLost
    | LearnDelayed
    | LearnLate
    | CpuRestarts
    | DipFails
    | CpuWrites
)
CPU_ACTIONS = (UpdateRequested, CpuLearns, CpuAdvances, CpuExpires, CpuRestarts, DipFails)
"""Events that set the CPU to work: they carry ``writes``."""
FAULTS = (LearnLost, LearnDelayed, LearnLate, CpuRestarts, DipFails)
