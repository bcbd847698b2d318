"""Real switch ports: veth pairs in a network namespace of our own.

Why veth and not BMv2's nanomsg packet interface: PTF tests run on veth ports
unchanged, nothing needs a native nanomsg binding, and the switch sees ordinary
Linux interfaces as it would in a lab. The namespace keeps the interfaces away from
the host's own network (and the host's away from the switch); IPv6 is off in it so
the kernel sends no router solicitations into the switch.

The switch side of each pair (``sw<port>``) is given to ``simple_switch_grpc`` as
that port; the harness side (``h<port>``) is opened as an ``AF_PACKET`` socket. A
socket belongs to the namespace of the thread that made it, so each is made in a
short-lived thread that enters the namespace (``setns``): the process itself never
changes namespace.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
import uuid
from dataclasses import dataclass, field

from silkcheck.targets import TargetError

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


class PortError(TargetError):
    """The namespace or its interfaces cannot be made (not root, no ``ip``)."""


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PortError(f"ip {' '.join(args)}: {proc.stderr.strip() or 'failed'}")


def can_make_namespaces() -> str | None:
    """None if this process can make network namespaces, else why not."""
    if os.geteuid() != 0:
        return "the black-box target makes a network namespace with veth pairs: run as root"
    if subprocess.run(["ip", "-V"], capture_output=True, check=False).returncode != 0:
        return "the black-box target needs the `ip` command (iproute2)"
    return None


@dataclass
class Namespace:
    """A network namespace holding one veth pair per switch port; removed by ``close``."""

    ports: tuple[int, ...]
    name: str = field(default_factory=lambda: f"silkcheck-{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        problem = can_make_namespaces()
        if problem:
            raise PortError(problem)
        _ip("netns", "add", self.name)
        try:
            self._exec("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            self._exec("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
            self._exec("ip", "link", "set", "lo", "up")
            for port in self.ports:
                self._exec("ip", "link", "add", self.switch_side(port), "type", "veth", "peer", "name",
                           self.harness_side(port))  # fmt: skip
                for end in (self.switch_side(port), self.harness_side(port)):
                    self._exec("ip", "link", "set", end, "up")
        except PortError:
            self.close()
            raise

    def _exec(self, *command: str) -> None:
        _ip("netns", "exec", self.name, *command)

    @staticmethod
    def switch_side(port: int) -> str:
        return f"sw{port}"

    @staticmethod
    def harness_side(port: int) -> str:
        return f"h{port}"

    @property
    def launcher(self) -> tuple[str, ...]:
        """The command prefix that runs a program inside the namespace."""
        return ("ip", "netns", "exec", self.name)

    @property
    def interfaces(self) -> dict[int, str]:
        return {port: self.switch_side(port) for port in self.ports}

    def open_sockets(self, interfaces: dict[int, str] | None = None) -> dict[int, socket.socket]:
        """One raw socket per port, on the harness side of its pair (or on the named interface)."""
        names = interfaces or {port: self.harness_side(port) for port in self.ports}
        made: dict[int, socket.socket] = {}
        failure: list[str] = []

        def enter_and_open() -> None:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    failure.append(f"setns: {os.strerror(ctypes.get_errno())}")
                    return
            finally:
                os.close(fd)
            for port, name in names.items():
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
                sock.bind((name, 0))
                made[port] = sock

        thread = threading.Thread(target=enter_and_open, name=f"enter-{self.name}")
        thread.start()
        thread.join()
        if failure:
            raise PortError(f"cannot enter namespace {self.name}: {failure[0]}")
        return made

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)
