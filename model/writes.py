"""The switch CPU's table writes, one record per single write.

The CPU never writes two entries at once: hardware writes over PCIe one by one,
and BMv2's P4Runtime server rejects atomic batches. So a CPU action is an
ordered list of these records, and the state between two of them is a state
that packets see. In the model the records wait in the CPU's write queue
until the switch applies them (``model.switch``); a controller that talks to a
real switch applies each as it is made.

Each record applies itself to a ``Backend`` (the model's ``DataPlane`` or the
P4Runtime one) through the same operations either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from model.decisions import PHASE_NAMES
from model.observations import EntryWrite, PhaseChange
from model.types import Dip, FiveTuple, Vip

if TYPE_CHECKING:
    from model.cpu import Backend
    from model.dataplane import VipEntry

MOVE = "move"
"""A delete that ends a cuckoo move: the connection's new copy is already in."""
FORGET = "forget"
"""A delete of the entry of a connection the CPU forgets (idle, or torn down after its grace)."""


class ConnInsert(NamedTuple):
    stage: int
    bucket: int
    digest: int
    version: int
    owner: FiveTuple

    kind = "conn-insert"

    @property
    def at(self) -> tuple[int, int, int]:
        return self.stage, self.bucket, self.digest

    def apply(self, backend: Backend, now: int) -> None:
        backend.insert_conn(self.stage, self.bucket, self.digest, self.version, now)

    def entry(self, decided: int) -> EntryWrite:
        return EntryWrite(self.stage, self.bucket, self.digest, self.version, self.owner, decided)


class ConnDelete(NamedTuple):
    stage: int
    bucket: int
    digest: int
    version: int
    owner: FiveTuple
    purpose: str
    """``MOVE`` or ``FORGET``: what the CPU meant the delete to do to its owner's lookups."""

    @property
    def kind(self) -> str:
        return f"conn-delete:{self.purpose}"

    @property
    def at(self) -> tuple[int, int, int]:
        return self.stage, self.bucket, self.digest

    def apply(self, backend: Backend, now: int) -> None:
        backend.delete_conn(self.stage, self.bucket, self.digest)

    def entry(self, decided: int) -> EntryWrite:
        return EntryWrite(self.stage, self.bucket, self.digest, self.version, self.owner, decided)


class PoolWrite(NamedTuple):
    vip: Vip
    version: int
    pool: tuple[Dip, ...]

    kind = "pool-write"

    def apply(self, backend: Backend, now: int) -> None:
        backend.write_pool(self.vip, self.version, self.pool)


class PoolDelete(NamedTuple):
    vip: Vip
    version: int

    kind = "pool-delete"

    def apply(self, backend: Backend, now: int) -> None:
        backend.delete_pool(self.vip, self.version)


class VipWrite(NamedTuple):
    vip: Vip
    entry: VipEntry
    releases: int | None = None
    """The version this write stops VIPTable from naming (t_finish's old version): its
    reclamation wait starts when the write is applied."""

    @property
    def kind(self) -> str:
        return f"vip-write:{PHASE_NAMES[self.entry.phase]}"

    def apply(self, backend: Backend, now: int) -> None:
        backend.write_vip(self.vip, self.entry)

    @property
    def change(self) -> PhaseChange:
        e = self.entry
        return PhaseChange(self.vip, PHASE_NAMES[e.phase], e.old_version, e.new_version, e.epoch)


class WhitelistAdd(NamedTuple):
    src_ip: int

    kind = "whitelist-add"

    def apply(self, backend: Backend, now: int) -> None:
        backend.add_whitelist(self.src_ip)


TableWrite = ConnInsert | ConnDelete | PoolWrite | PoolDelete | VipWrite | WhitelistAdd
WRITE_KINDS = ("conn-insert", f"conn-delete:{MOVE}", f"conn-delete:{FORGET}", "pool-write", "pool-delete",
               *(f"vip-write:{name}" for name in PHASE_NAMES.values()), "whitelist-add")  # fmt: skip
