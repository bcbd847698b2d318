"""What the switch sends, matched to what the harness sent, and the drop rule.

Every frame the harness sends carries a number in its IPv4 identification field; a
frame that leaves the switch is matched to the sent frame with the same number (the
program must leave the field alone). What a packet became is known when:

* a frame with its number leaves by a server port (forward, to the frame's
  destination IP:port) or by a client port (a reply); or
* **the drop rule**: a *barrier* sent after it on the same client port has come
  out of every server port, and nothing with its number has. BMv2 keeps the
  packets of one ingress port in order through its single ingress thread, and
  the packets of one egress port in order through egress, so a barrier that
  leaves by port p follows everything sent before it that leaves by p.

A barrier is the next packet of a *barrier connection*, one per server port (a
connection from 192.0.2.0/24, TEST-NET-1, to the first VIP, that the program
forwards like any other). Replies (client ports) are recorded as they come,
without that guarantee: a reply that comes after its packet's barriers is counted
as late, as is a frame that comes back after its packet was judged dropped (a
program that parks packets at the controller breaks the rule; the count shows it).
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from model.observations import DROP, FORWARD, REPLY, PacketObservation
from model.types import Dip, Packet
from silkcheck import frames
from silkcheck.blackbox.ports import PACKET_OUTGOING
from silkcheck.targets import TargetError

IDENT_SPACE = 1 << 16


class BarrierLost(TargetError):
    """A barrier never came back: the program dropped a packet of a barrier connection."""


@dataclass
class Sent:
    index: int
    t: int
    packet: Packet
    order: int


@dataclass
class Round:
    """One barrier per barrier connection, sent after the packet numbered ``order``."""

    order: int
    sent_at: float
    ports_left: set[int]


@dataclass
class WireCounts:
    sent: int = 0
    barriers: int = 0
    late: int = 0
    unknown: int = 0
    duplicates: int = 0


@dataclass
class Wire:
    sockets: dict[int, socket.socket]
    client_ports: tuple[int, ...]
    server_ports: tuple[int, ...]
    counts: WireCounts = field(default_factory=WireCounts)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._resolved = threading.Condition(self._lock)
        self._next_ident = 1
        self._order = 0
        self._in_flight: dict[int, Sent] = {}
        """ident -> a trace packet not yet resolved."""
        self._barrier_idents: dict[int, Round] = {}
        self._rounds: list[Round] = []
        self._probes: dict[int, int | None] = {}
        """ident -> the port a probe came out of (None: not yet)."""
        self._done: dict[int, Sent] = {}
        """ident -> resolved, kept until the ident is reused to recognise late frames."""
        self._results: list[PacketObservation] = []
        self._stop = False
        self._reader = threading.Thread(target=self._read, daemon=True, name="wire-reader")
        self._reader.start()

    # ------------------------------------------------------------ sending

    def _ident(self) -> int:
        ident = self._next_ident
        self._next_ident = self._next_ident % (IDENT_SPACE - 1) + 1
        return ident

    def send_packet(self, index: int, t: int, packet: Packet, port: int) -> None:
        with self._lock:
            ident = self._ident()
            self._order += 1
            self._done.pop(ident, None)
            self._in_flight[ident] = Sent(index, t, packet, self._order)
            self.counts.sent += 1
        self.sockets[port].send(frames.packet_frame(packet)._replace(ident=ident).to_bytes())

    def send_barriers(self, barriers: Iterable[Packet], port: int) -> None:
        with self._lock:
            if self._rounds and self._rounds[-1].order == self._order:
                return  # nothing sent since the last round
            round_ = Round(self._order, time.monotonic(), set(self.server_ports))
            self._rounds.append(round_)
            idents = []
            for _ in barriers:
                ident = self._ident()
                self._barrier_idents[ident] = round_
                idents.append(ident)
            self.counts.barriers += len(idents)
        for ident, packet in zip(idents, barriers, strict=True):
            self.sockets[port].send(frames.packet_frame(packet)._replace(ident=ident).to_bytes())

    def probe(self, packet: Packet, port: int, timeout: float) -> int | None:
        """Send one packet outside any trace and wait for the port it leaves by (None: nothing came)."""
        with self._lock:
            ident = self._ident()
            self._probes[ident] = None
        self.sockets[port].send(frames.packet_frame(packet)._replace(ident=ident).to_bytes())
        deadline = time.monotonic() + timeout
        with self._resolved:
            while self._probes[ident] is None and time.monotonic() < deadline:
                self._resolved.wait(0.05)
            return self._probes.pop(ident)

    # ------------------------------------------------------------ waiting

    def settle(self, barriers: list[Packet], port: int, timeout: float) -> None:
        """Send a barrier round and wait until every packet sent so far is resolved; resend the
        barriers when a round has not come back within a second, give up after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        self.send_barriers(barriers, port)
        while True:
            with self._resolved:
                if not self._in_flight:
                    return
                if time.monotonic() > deadline:
                    left = sorted(self._rounds[-1].ports_left) if self._rounds else []
                    raise BarrierLost(
                        f"{len(self._in_flight)} packets unresolved: no barrier came back from server port(s) "
                        f"{left} within {timeout} s (the program must forward every packet of the barrier "
                        "connections to a server port)"
                    )
                self._resolved.wait(0.05)
                stale = not self._rounds or time.monotonic() - self._rounds[-1].sent_at > 1.0
                if stale:
                    self._order += 1  # a fresh round, though no trace packet was sent since
            if stale:
                self.send_barriers(barriers, port)

    def wait_in_flight_below(self, count: int, timeout: float) -> None:
        """Block until fewer than ``count`` sent packets are unresolved (a sender's window)."""
        deadline = time.monotonic() + timeout
        with self._resolved:
            while len(self._in_flight) >= count:
                if time.monotonic() > deadline:
                    raise BarrierLost(f"{len(self._in_flight)} packets unresolved for {timeout} s")
                self._resolved.wait(0.05)

    def take_results(self) -> list[PacketObservation]:
        """The packets resolved since the last call."""
        with self._lock:
            results, self._results = self._results, []
            return results

    # ------------------------------------------------------------ receiving

    def _read(self) -> None:
        by_fd = {sock.fileno(): (port, sock) for port, sock in self.sockets.items()}
        while not self._stop:
            readable, _, _ = select.select(list(by_fd), [], [], 0.1)
            for fd in readable:
                port, sock = by_fd[fd]
                try:
                    data, address = sock.recvfrom(9216)
                except OSError:
                    continue
                if address[2] == PACKET_OUTGOING:
                    continue  # our own frame, seen on its way out
                self._arrived(port, data)

    def _arrived(self, port: int, data: bytes) -> None:
        try:
            frame = frames.parse(data)
        except ValueError:
            with self._lock:
                self.counts.unknown += 1
            return
        with self._resolved:
            ident = frame.ident
            if ident in self._probes:
                self._probes[ident] = port
            elif ident in self._barrier_idents:
                self._barrier_arrived(self._barrier_idents.pop(ident), port)
            elif ident in self._in_flight:
                sent = self._in_flight.pop(ident)
                self._resolve(ident, sent, _observe(sent, port, frame, self.client_ports))
            elif ident in self._done:
                self.counts.late += 1
            else:
                self.counts.unknown += 1
            self._resolved.notify_all()

    def _barrier_arrived(self, round_: Round, port: int) -> None:
        round_.ports_left.discard(port)
        if round_.ports_left or round_ not in self._rounds:
            return
        # Every packet sent before this round that has not come out was dropped.
        for ident, sent in list(self._in_flight.items()):
            if sent.order <= round_.order:
                del self._in_flight[ident]
                self._resolve(ident, sent, PacketObservation(sent.index, sent.t, sent.packet, DROP,
                                                             path="no frame before the barrier"))  # fmt: skip
        self._rounds = [r for r in self._rounds if r.order > round_.order]

    def _resolve(self, ident: int, sent: Sent, observation: PacketObservation) -> None:
        self._done[ident] = sent
        self._results.append(observation)

    def close(self) -> None:
        self._stop = True
        self._reader.join(timeout=1)


def _observe(sent: Sent, port: int, frame: frames.Frame, client_ports: tuple[int, ...]) -> PacketObservation:
    if port in client_ports:
        return PacketObservation(sent.index, sent.t, sent.packet, REPLY, reply_flags=frame.flags, reply_seq=frame.seq,
                                 reply_ack=frame.ack, path=f"port {port}")  # fmt: skip
    return PacketObservation(sent.index, sent.t, sent.packet, FORWARD, Dip(frame.dst_ip, frame.dst_port),
                             path=f"port {port}")  # fmt: skip
