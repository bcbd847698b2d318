"""The model's input alphabet: what can happen to a SilkRoad switch.

Every event carries ``t``, a time in ticks (µs), non-decreasing along a trace.
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


class CpuLearns(NamedTuple):
    """The CPU reads up to ``limit`` visible learn events (all if None) and installs."""

    t: int
    limit: int | None = None


class CpuAdvances(NamedTuple):
    """The CPU drains learn events, then moves each update on as far as its guards allow."""

    t: int


class CpuExpires(NamedTuple):
    """The CPU drains learn events, removes idle and torn-down ConnTable entries, reclaims versions."""

    t: int


class LearnLost(NamedTuple):
    """Fault: the ``index``-th queued learn event never reaches the CPU."""

    t: int
    index: int


class LearnDelayed(NamedTuple):
    """Fault: the ``index``-th queued learn event becomes visible ``delay`` ticks after it was sent."""

    t: int
    index: int
    delay: int


class CpuRestarts(NamedTuple):
    """Fault: the switch CPU process restarts and recovers from its journal."""

    t: int


class DipFails(NamedTuple):
    """Fault: a server dies; the CPU removes it from every pool."""

    t: int
    dip: Dip


Event = (
    PacketArrives
    | UpdateRequested
    | CpuLearns
    | CpuAdvances
    | CpuExpires
    | LearnLost
    | LearnDelayed
    | CpuRestarts
    | DipFails
)
FAULTS = (LearnLost, LearnDelayed, CpuRestarts, DipFails)
