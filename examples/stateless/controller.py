"""Example (a)'s controller, written with p4runtime-shell: it writes each VIP's pool.

``Controller`` is the adapter silkcheck's black-box target loads
(``--controller examples/stateless/controller.py:Controller``); it runs this file as
the controller's own process. A pool change rewrites the pool in place: there is no
state to keep, and nothing keeps a connection where it was.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lbshell import PoolWriter, connect

from silkcheck.blackbox.controller import ProcessController, controller_args, serve_pool_changes


class Controller(ProcessController):
    script = Path(__file__)


def main() -> None:
    args = controller_args()
    connect(args)
    writer = PoolWriter()
    for vip, pool in args.pools.items():
        if args.restart:
            writer.recover(vip)
        writer.write(vip, pool)
    serve_pool_changes(writer.write)


if __name__ == "__main__":
    main()
