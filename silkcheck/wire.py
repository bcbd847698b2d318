"""SYN authentication as seen on the wire: which SYN-ACKs went where, which ACKs answered them.

One ledger, read by everything that must not trust a target's cookie function: the
runner resolves a reactive packet's ack from the SYN-ACKs the target sent
(``silkcheck.targets.model.Driver``), the oracle and the whitelist invariant judge who
proved its address. A source proves its address by a bare ACK carrying cookie + 1 of
the last SYN-ACK sent to that ACK's own 5-tuple: the switch cannot know who answers,
only that the answer came back to where the SYN-ACK went.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from model.observations import REPLY, PacketObservation
from model.types import ACK, RST, SYN, FiveTuple, Packet

U32 = 0xFFFFFFFF


def is_bare_ack(packet: Packet) -> bool:
    """A TCP ACK without SYN or RST: the only packet that can answer a SYN cookie."""
    return packet.is_tcp and packet.flags & (SYN | ACK | RST) == ACK


def is_syn_ack(o: PacketObservation) -> bool:
    return o.action == REPLY and o.reply_flags == SYN | ACK


@dataclass
class CookieLedger:
    sent: dict[FiveTuple, int] = field(default_factory=dict)
    """The sequence number (cookie) of the last SYN-ACK sent to each 5-tuple."""
    proved: set[int] = field(default_factory=set)
    """Sources that answered a SYN-ACK sent to them."""

    def note(self, o: PacketObservation) -> None:
        if is_syn_ack(o):
            self.sent[o.ft] = o.reply_seq
            return
        if not self.sent:  # no SYN-ACK went out (SYN authentication off, or none yet): nothing to answer
            return
        cookie = self.sent.get(o.ft)
        if cookie is not None and is_bare_ack(o.packet) and o.packet.ack == (cookie + 1) & U32:
            self.proved.add(o.ft.src_ip)
