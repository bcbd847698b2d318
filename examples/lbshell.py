"""p4runtime-shell helpers the example controllers share: VIP-keyed entries and pool writes.

The controllers run as scripts (``python examples/NAME/controller.py``), so they find
this module by putting ``examples/`` on ``sys.path``.
"""

from __future__ import annotations

import grpc
import p4runtime_sh.shell as sh

from model.types import Dip, Vip, ip_str
from silkcheck.blackbox.controller import START_TIMEOUT_S, ControllerArgs


def connect(args: ControllerArgs) -> None:
    """A p4runtime-shell session, once the switch's P4Runtime address accepts connections
    (p4runtime-shell allows only 2 s from its first connection attempt to the arbitration)."""
    with grpc.insecure_channel(args.switch.grpc_address) as channel:
        grpc.channel_ready_future(channel).result(timeout=START_TIMEOUT_S)
    sh.setup(device_id=args.switch.device_id, grpc_addr=args.switch.grpc_address,
             election_id=(0, args.switch.election_id), verbose=False)  # fmt: skip


def vip_entry(table: str, vip: Vip, action: str | None = None) -> sh.TableEntry:
    entry = sh.TableEntry(table)(action=action) if action else sh.TableEntry(table)
    entry.match["ip"] = ip_str(vip.ip)
    entry.match["port"] = str(vip.port)
    entry.match["proto"] = str(vip.proto)
    return entry


def member(vip: Vip, index: int, dip: Dip | None = None) -> sh.TableEntry:
    entry = vip_entry("DIPPoolTable", vip, "rewrite_dip" if dip else None)
    entry.match["index"] = str(index)
    if dip is not None:
        entry.action["ip"] = ip_str(dip.ip)
        entry.action["port"] = str(dip.port)
    return entry


def param(entry: sh.TableEntry, name: str) -> int:
    return int.from_bytes(entry.action[name].value, "big")


class PoolWriter:
    """Each VIP's pool as VIPTable's size and DIPPoolTable's members, rewritten in place:
    members first, then the size, then the members beyond it are deleted."""

    def __init__(self) -> None:
        self.sizes: dict[Vip, int] = {}

    def recover(self, vip: Vip) -> None:
        """After a restart: the size the switch holds for ``vip`` (none: 0)."""
        for entry in vip_entry("VIPTable", vip).read():
            self.sizes[vip] = param(entry, "size")

    def write(self, vip: Vip, pool: tuple[Dip, ...]) -> None:
        old = self.sizes.get(vip, 0)
        for index, dip in enumerate(pool):
            entry = member(vip, index, dip)
            entry.modify() if index < old else entry.insert()
        size = vip_entry("VIPTable", vip, "set_pool_size")
        size.action["size"] = str(len(pool))
        size.modify() if old else size.insert()
        for index in range(len(pool), old):
            member(vip, index).delete()
        self.sizes[vip] = len(pool)
