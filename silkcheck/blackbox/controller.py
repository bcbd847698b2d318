"""The controller adapter: how the black-box target starts, steers and stops a user's controller.

An adapter is a small Python class (``--controller path/to/file.py:Class`` or
``module:Class``) with three methods::

    start(switch: SwitchAddress, pools: dict[Vip, tuple[Dip, ...]], restart: bool) -> None
        # returns once the controller has installed the initial VIPs and pools
        # (restart=True: the controller was killed; the pipeline and tables are still there)
    change_pool(vip: Vip, pool: tuple[Dip, ...]) -> None
        # ask for a pool change; returns at once, the controller applies it when it will
    stop() -> None

and one optional hook: ``process`` (a ``subprocess.Popen``), the controller's process, which
the nemesis pauses (SIGSTOP/SIGCONT) and kills (SIGKILL). Without it those faults are skipped.

``ProcessController`` is such an adapter for a controller that is a Python script of its
own (p4runtime-shell allows one connection per process): the script is started with its
switch address and pools on the command line, reports ``ready`` on stdout, and reads pool
changes as JSON lines on stdin. ``run_controller`` is that script's side of the protocol.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import itertools
import json
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple, Protocol

from model.types import Dip, Vip
from silkcheck.processes import stop_process
from silkcheck.targets import TargetError
from silkcheck.trace import dip_text, parse_dip, parse_vip, vip_text

READY = "ready"
START_TIMEOUT_S = 60.0
START_ATTEMPTS = 3

Pools = dict[Vip, tuple[Dip, ...]]


class ControllerError(TargetError):
    """The controller did not start, or its adapter cannot be loaded."""


class ControllerExited(ControllerError):
    """The controller's process ended before it reported ready: worth another start (an adapter
    may raise it too). On a loaded machine p4runtime-shell gives up on a switch that takes more
    than 2 s to answer its arbitration, and exits."""


ELECTION_SPAN = 1 << 16
"""A controller owns the election ids from its ``election_id`` up to the next multiple of this."""


def election_ids() -> Iterator[int]:
    """The election ids a harness hands out, one per client, each above every earlier one's span."""
    return (n * ELECTION_SPAN for n in itertools.count(1))


class SwitchAddress(NamedTuple):
    grpc_address: str
    device_id: int
    election_id: int
    """Each (re)start gets a higher one, so a new controller is primary even while the
    switch has not yet noticed that the previous one is gone. The controller may change to any
    id below ``election_id + ELECTION_SPAN`` (P4Runtime answers a change of election id on the
    stream, after everything sent before it: a barrier)."""


class ControllerAdapter(Protocol):
    def start(self, switch: SwitchAddress, pools: Pools, restart: bool) -> None: ...
    def change_pool(self, vip: Vip, pool: tuple[Dip, ...]) -> None: ...
    def stop(self) -> None: ...


def load_adapter(spec: str) -> type[ControllerAdapter]:
    """``path/to/file.py:Class`` or ``package.module:Class``."""
    if spec.count(":") != 1:
        raise ControllerError(f"--controller {spec!r}: expected FILE.py:CLASS or MODULE:CLASS")
    where, name = spec.split(":")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ControllerError(f"--controller {spec!r}: no such file {path}")
        module_spec = importlib.util.spec_from_file_location(f"silkcheck_controller_{path.stem}", path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as error:
            raise ControllerError(f"--controller {spec!r}: cannot import {where}: {error}") from None
    adapter = getattr(module, name, None)
    if adapter is None:
        raise ControllerError(f"--controller {spec!r}: {where} has no {name}")
    return adapter  # type: ignore[no-any-return]


def pools_text(pools: Pools) -> str:
    return json.dumps({vip_text(v): [dip_text(d) for d in p] for v, p in pools.items()})


def parse_pools(text: str) -> Pools:
    return {parse_vip(v): tuple(parse_dip(d) for d in p) for v, p in json.loads(text).items()}


def start_controller(adapter: ControllerAdapter, address: Callable[[], SwitchAddress], pools: Pools, restart: bool,
                     attempts: int = START_ATTEMPTS) -> int:  # fmt: skip
    """``adapter.start``, again (with a fresh address: a higher election id) while the controller
    exits during its start, up to ``attempts`` times; returns how many starts failed first."""
    for failed in range(attempts):
        try:
            adapter.start(address(), pools, restart)
            return failed
        except ControllerExited:
            if failed == attempts - 1:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")


class ProcessController:
    """An adapter for a controller script run in its own process (subclass it and set ``script``)."""

    script: Path
    extra_args: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.log_dir = Path(tempfile.mkdtemp(prefix="silkcheck-controller-"))
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"controller-{self.starts}.log"

    def start(self, switch: SwitchAddress, pools: Pools, restart: bool) -> None:
        self.starts += 1
        command = [
            sys.executable, str(self.script), "--grpc", switch.grpc_address, "--device-id", str(switch.device_id),
            "--election-id", str(switch.election_id), "--pools", pools_text(pools), *self.extra_args,
        ]  # fmt: skip
        if restart:
            command.append("--restart")
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                            text=True, bufsize=1)  # fmt: skip
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Poll the controller's stdout for its ``ready`` line; fail if it exits or takes too long."""
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if readable:
                line = self.process.stdout.readline()
                if line.strip() == READY:
                    return
                if not line:  # stdout closed: the process is ending
                    stop_process(self.process, grace_s=5)
                    raise ControllerExited(f"{self.script} exited before it reported ready:\n{self.log_tail()}")
        stop_process(self.process, grace_s=0)
        raise ControllerError(f"{self.script} did not report ready within {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def change_pool(self, vip: Vip, pool: tuple[Dip, ...]) -> None:
        if self.process is None or self.process.stdin is None:
            return
        try:
            self.process.stdin.write(json.dumps({"vip": vip_text(vip), "pool": [dip_text(d) for d in pool]}) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the controller is dead (a kill): the request is lost, as the operator's would be

    def stop(self) -> None:
        """End the controller and remove its folder (logs, journal): what went wrong at a start
        is in the error it raised."""
        if self.process is not None:
            stop_process(self.process)
        self.process = None
        shutil.rmtree(self.log_dir, ignore_errors=True)


# ---------------------------------------------------------------- the controller process's side


class ControllerArgs(NamedTuple):
    switch: SwitchAddress
    pools: Pools
    restart: bool
    extra: list[str]


def controller_args(argv: list[str] | None = None) -> ControllerArgs:
    parser = argparse.ArgumentParser(description="a load-balancer controller run by silkcheck's black-box target")
    parser.add_argument("--grpc", required=True, help="the switch's P4Runtime address")
    parser.add_argument("--device-id", type=int, default=0)
    parser.add_argument("--election-id", type=int, default=1)
    parser.add_argument("--pools", required=True, help='JSON: {"VIP": ["DIP", ...]}')
    parser.add_argument("--restart", action="store_true", help="the tables are already there: recover, do not reset")
    args, extra = parser.parse_known_args(argv)
    switch = SwitchAddress(args.grpc, args.device_id, args.election_id)
    return ControllerArgs(switch, parse_pools(args.pools), args.restart, extra)


def serve_pool_changes(change_pool: Callable[[Vip, tuple[Dip, ...]], None]) -> None:
    """Report ``ready``, then apply each pool change read from stdin until it closes."""
    print(READY, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        change_pool(parse_vip(request["vip"]), tuple(parse_dip(d) for d in request["pool"]))
