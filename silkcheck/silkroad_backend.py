"""The switch CPU's table writes for ``p4/silkroad.p4``: ``model.cpu.Backend`` over any P4Runtime writer.

Two controllers drive the program with the model's ``Cpu``: the BMv2 target (lockstep, over
``silkcheck.p4runtime.Tables``) and example (c) of the black-box target (real time, over
p4runtime-shell). Both write through ``SilkRoadWrites``, so the write order that keeps every
intermediate state safe without atomic batches is written once.
"""

from __future__ import annotations

from typing import Protocol

from model.dataplane import VipEntry
from model.types import Dip, Vip


class TableWriter(Protocol):
    """Single P4Runtime writes, keys and action parameters as integers."""

    def insert(self, table: str, key: dict[str, int], action: str, params: dict[str, int] | None = None) -> None: ...
    def modify(self, table: str, key: dict[str, int], action: str, params: dict[str, int] | None = None) -> None: ...
    def delete(self, table: str, key: dict[str, int]) -> None: ...


def vip_key(vip: Vip) -> dict[str, int]:
    return {"ip": vip.ip, "port": vip.port, "proto": vip.proto}


class SilkRoadWrites:
    """The write half of ``model.cpu.Backend``; ``idle_time`` and ``read_learns`` are the user's.
    ``last_hit`` holds what the user knows of each ConnTable entry's hits (insertion counts as one)."""

    tables: TableWriter
    last_hit: dict[tuple[int, int, int], int]
    vip_written: set[Vip]
    pool_sizes: dict[tuple[Vip, int], int]

    def insert_conn(self, stage: int, bucket: int, digest: int, version: int, now: int) -> None:
        self.tables.insert(f"ConnTable{stage}", {"bucket": bucket, "digest": digest}, "set_version",
                           {"version": version})  # fmt: skip
        self.last_hit[(stage, bucket, digest)] = now

    def delete_conn(self, stage: int, bucket: int, digest: int) -> None:
        self.tables.delete(f"ConnTable{stage}", {"bucket": bucket, "digest": digest})
        del self.last_hit[(stage, bucket, digest)]

    def write_pool(self, vip: Vip, version: int, pool: tuple[Dip, ...]) -> None:
        """Members first, then the size that makes them reachable: never a size without its members."""
        key = vip_key(vip) | {"version": version}
        for index, dip in enumerate(pool):
            self.tables.insert("DIPPoolTable", key | {"index": index}, "rewrite_dip", {"ip": dip.ip, "port": dip.port})
        self.tables.insert("DIPPoolSize", key, "set_pool_size", {"size": len(pool)})
        self.pool_sizes[(vip, version)] = len(pool)

    def delete_pool(self, vip: Vip, version: int) -> None:
        """The size first: from then on the version misses (drop), as in the model."""
        key = vip_key(vip) | {"version": version}
        self.tables.delete("DIPPoolSize", key)
        for index in range(self.pool_sizes.pop((vip, version))):
            self.tables.delete("DIPPoolTable", key | {"index": index})

    def write_vip(self, vip: Vip, entry: VipEntry) -> None:
        params = {"old_version": entry.old_version, "new_version": entry.new_version, "phase": entry.phase,
                  "epoch": entry.epoch, "slot": entry.slot}  # fmt: skip
        if vip in self.vip_written:
            self.tables.modify("VIPTable", vip_key(vip), "set_vip", params)
        else:
            self.tables.insert("VIPTable", vip_key(vip), "set_vip", params)
            self.vip_written.add(vip)

    def add_whitelist(self, src_ip: int) -> None:
        self.tables.insert("Whitelist", {"src_ip": src_ip}, "NoAction")
