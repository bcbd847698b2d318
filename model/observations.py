"""What a target did, as seen from outside: the only input of the PCC oracle.

Targets differ only in how they produce these; the oracle never looks at a
target's internal state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from model.types import Dip, FiveTuple, Packet, Vip

if TYPE_CHECKING:
    from model.writes import TableWrite

FORWARD = "forward"
DROP = "drop"
REPLY = "reply"


class PacketObservation(NamedTuple):
    index: int
    """Position of the packet event in the trace."""
    t: int
    packet: Packet
    """The packet as it arrived."""
    action: str
    dip: Dip | None = None
    reply_flags: int = 0
    reply_seq: int = 0
    reply_ack: int = 0
    learned: tuple[str, ...] = ()
    """Kinds of learn event the packet sent to the CPU."""
    hit_key: tuple[int, int, int] | None = None
    """(stage, bucket, digest) of the ConnTable entry the packet hit, if any."""
    path: str = ""
    """How the decision was made (diagnostic, for people)."""
    buckets: tuple[int, ...] = ()
    """The bucket its ConnTable lookup read in each stage (a forwarded packet, where a target reports it)."""
    digest: int | None = None
    """The digest its ConnTable lookup matched on, with ``buckets``."""

    @property
    def ft(self) -> FiveTuple:
        return self.packet.ft

    @property
    def lookup_keys(self) -> tuple[tuple[int, int, int], ...]:
        """The (stage, bucket, digest) keys its lookup read, in the order the stages are tried."""
        return tuple((stage, bucket, self.digest) for stage, bucket in enumerate(self.buckets))  # type: ignore[misc]


class EntryWrite(NamedTuple):
    """One ConnTable write the CPU made."""

    stage: int
    bucket: int
    digest: int
    version: int
    owner: FiveTuple | None
    """The connection the CPU placed there (None: recovered without a 5-tuple)."""
    decided: int = -1
    """Position in the trace of the CPU step that decided the write (-1: the step that observed it)."""

    @property
    def key(self) -> tuple[int, int, int]:
        return self.stage, self.bucket, self.digest


class PhaseChange(NamedTuple):
    vip: Vip
    phase: str
    old_version: int
    new_version: int
    epoch: int


class CpuObservation(NamedTuple):
    index: int
    t: int
    kind: str
    installs: tuple[EntryWrite, ...] = ()
    removes: tuple[EntryWrite, ...] = ()
    learned: tuple[tuple[str, FiveTuple, int], ...] = ()
    """(kind, connection, send time) of each learn event the CPU read."""
    phases: tuple[PhaseChange, ...] = ()
    whitelisted: tuple[int, ...] = ()
    lost: tuple[tuple[FiveTuple, int], ...] = ()
    """Connections whose learning a fault destroyed, each with the time up to which what their
    packets taught the CPU may be gone (a lost event's send time; a restart's own time; a learn
    event delayed past the bound, whose news comes after the CPU stopped waiting: its send time)."""
    failed_dips: tuple[Dip, ...] = ()
    notes: tuple[str, ...] = ()
    pending: int = 0
    """Table writes the CPU made that have not taken effect yet."""
    applied: tuple[TableWrite, ...] = ()
    """Every table write that took effect in this step, in order (``model.writes``)."""


Observation = PacketObservation | CpuObservation
