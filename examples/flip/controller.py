"""Example (b)'s controller, written with p4runtime-shell: connections learned from digests.

Each ``learn`` digest names a new connection and the DIP its first packet got; the
controller installs that ConnTable entry. A pool change is written at once (as in
example (a)): connections already installed stay, but one whose digest is still on its
way, or waiting here, is moved. After a restart the installed connections are still in
the switch; the controller reads back the pool sizes and carries on.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import p4runtime_sh.shell as sh
from lbshell import PoolWriter, connect
from p4.v1 import p4runtime_pb2
from p4runtime_sh.p4runtime import P4RuntimeWriteException

from silkcheck.blackbox.controller import ProcessController, controller_args, serve_pool_changes

FIELDS = ("src_ip", "dst_ip", "src_port", "dst_port", "proto", "dip_ip", "dip_port")


class Controller(ProcessController):
    script = Path(__file__)


def install(values: dict[str, int]) -> None:
    entry = sh.TableEntry("ConnTable")(action="rewrite_dip")
    for name in FIELDS[:5]:
        entry.match[name] = str(values[name])
    entry.action["ip"] = str(values["dip_ip"])
    entry.action["port"] = str(values["dip_port"])
    with contextlib.suppress(P4RuntimeWriteException):  # learned twice (a second packet missed too): it stands
        entry.insert()


def learn_forever() -> None:
    while True:
        message = sh.client.get_stream_packet("digest", timeout=1)
        if message is None:
            continue
        for data in message.digest.data:
            install({n: int.from_bytes(m.bitstring, "big") for n, m in zip(FIELDS, data.struct.members, strict=True)})
        ack = p4runtime_pb2.StreamMessageRequest()
        ack.digest_ack.digest_id = message.digest.digest_id
        ack.digest_ack.list_id = message.digest.list_id
        sh.client.stream_out_q.put(ack)


def main() -> None:
    args = controller_args()
    connect(args)
    if not args.restart:
        digest = sh.DigestEntry("learn_t")
        digest.max_timeout_ns = 0
        digest.max_list_size = 1
        digest.ack_timeout_ns = 0
        digest.insert()
    writer = PoolWriter()
    for vip, pool in args.pools.items():
        if args.restart:
            writer.recover(vip)
        writer.write(vip, pool)
    threading.Thread(target=learn_forever, daemon=True).start()
    serve_pool_changes(writer.write)


if __name__ == "__main__":
    main()
