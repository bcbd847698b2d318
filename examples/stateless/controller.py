"""Example (a)'s controller, written with p4runtime-shell: it writes each VIP's pool.

``Controller`` is the adapter silkcheck's black-box target loads
(``--controller examples/stateless/controller.py:Controller``); it runs this file as
the controller's own process. A pool change rewrites the members in place, then the
size, then deletes the members beyond it: there is no state to keep, and nothing to
keep a connection where it was.
"""

from __future__ import annotations

from pathlib import Path

import p4runtime_sh.shell as sh

from model.types import Dip, Vip, ip_str
from silkcheck.blackbox.controller import ProcessController, controller_args, serve_pool_changes


class Controller(ProcessController):
    script = Path(__file__)


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


class PoolWriter:
    def __init__(self) -> None:
        self.sizes: dict[Vip, int] = {}

    def recover(self, vip: Vip) -> None:
        """After a restart: the size the switch holds for ``vip`` (0 if none)."""
        for entry in vip_entry("VIPTable", vip).read():
            self.sizes[vip] = _size(entry)

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


def _size(entry: sh.TableEntry) -> int:
    return int.from_bytes(entry.action["size"].value, "big")


def main() -> None:
    args = controller_args()
    sh.setup(device_id=args.switch.device_id, grpc_addr=args.switch.grpc_address,
             election_id=(0, args.switch.election_id), verbose=False)  # fmt: skip
    writer = PoolWriter()
    for vip, pool in args.pools.items():
        if args.restart:
            writer.recover(vip)
        writer.write(vip, pool)
    serve_pool_changes(writer.write)


if __name__ == "__main__":
    main()
