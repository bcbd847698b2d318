"""Wire frames for trace packets, and the frames a correct switch sends back.

The differential test compares BMv2's output bytes with the frame the model's
decision implies: the input frame with its destination rewritten (forward),
or addresses and ports swapped with new flags/seq/ack (reply), checksums
recomputed. Checksums are computed as BMv2's ``csum16`` does (a UDP checksum
that sums to zero is sent as 0, not 0xFFFF).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from model.observations import FORWARD, REPLY, PacketObservation
from model.types import PROTO_TCP, Packet

CLIENT_MAC = bytes.fromhex("020000000001")
SWITCH_MAC = bytes.fromhex("020000000002")
ETHERTYPE_IPV4 = 0x0800
TTL = 64
WINDOW = 8192
ETH_LEN = 14
IP_LEN = 20
CLIENT_PORT = 1
"""The switch port clients send from and replies go back out of."""
SERVER_PORT = 2
"""The switch port toward the DIPs."""


class Egress(NamedTuple):
    """A frame a switch sent, and the port it left by."""

    port: int
    frame: bytes


class Frame(NamedTuple):
    """The header fields a frame of ours carries."""

    src_mac: bytes
    dst_mac: bytes
    src_ip: int
    dst_ip: int
    proto: int
    src_port: int
    dst_port: int
    flags: int = 0
    seq: int = 0
    ack: int = 0
    ident: int = 0
    """IPv4 identification: the black-box target numbers the packets it sends in it."""

    def to_bytes(self) -> bytes:
        l4_len = 20 if self.proto == PROTO_TCP else 8
        ip = struct.pack("!BBHHHBBHII", 0x45, 0, IP_LEN + l4_len, self.ident, 0, TTL, self.proto, 0, self.src_ip,
                         self.dst_ip)  # fmt: skip
        ip = ip[:10] + struct.pack("!H", csum16(ip)) + ip[12:]
        if self.proto == PROTO_TCP:
            l4 = struct.pack("!HHIIBBHHH", self.src_port, self.dst_port, self.seq, self.ack, 5 << 4, self.flags,
                             WINDOW, 0, 0)  # fmt: skip
            at = 16
        else:
            l4 = struct.pack("!HHHH", self.src_port, self.dst_port, l4_len, 0)
            at = 6
        pseudo = struct.pack("!IIBBH", self.src_ip, self.dst_ip, 0, self.proto, l4_len)
        l4 = l4[:at] + struct.pack("!H", csum16(pseudo + l4)) + l4[at + 2 :]
        return self.dst_mac + self.src_mac + struct.pack("!H", ETHERTYPE_IPV4) + ip + l4


def csum16(data: bytes) -> int:
    """The Internet checksum (ones' complement of the ones' complement sum)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def packet_frame(packet: Packet) -> Frame:
    """A trace packet as a client sends it to the switch."""
    ft = packet.ft
    return Frame(CLIENT_MAC, SWITCH_MAC, ft.src_ip, ft.dst_ip, ft.proto, ft.src_port, ft.dst_port,
                 packet.flags, packet.seq, packet.ack)  # fmt: skip


def expected_output(obs: PacketObservation) -> Frame | None:
    """The frame a switch that decided ``obs`` sends (None for a drop)."""
    sent = packet_frame(obs.packet)
    if obs.action == FORWARD and obs.dip is not None:
        return sent._replace(dst_ip=obs.dip.ip, dst_port=obs.dip.port)
    if obs.action == REPLY:
        return Frame(sent.dst_mac, sent.src_mac, sent.dst_ip, sent.src_ip, sent.proto, sent.dst_port,
                     sent.src_port, obs.reply_flags, obs.reply_seq, obs.reply_ack)  # fmt: skip
    return None


def parse(data: bytes) -> Frame:
    """The fields of a frame of ours (Ethernet, IPv4 without options, TCP or UDP)."""
    if len(data) < ETH_LEN + IP_LEN + 8:
        raise ValueError(f"frame of {len(data)} bytes is too short for Ethernet/IPv4/L4")
    proto = data[ETH_LEN + 9]
    (ident,) = struct.unpack_from("!H", data, ETH_LEN + 4)
    src_ip, dst_ip = struct.unpack_from("!II", data, ETH_LEN + 12)
    src_port, dst_port = struct.unpack_from("!HH", data, ETH_LEN + IP_LEN)
    flags = seq = ack = 0
    if proto == PROTO_TCP:
        seq, ack = struct.unpack_from("!II", data, ETH_LEN + IP_LEN + 4)
        flags = data[ETH_LEN + IP_LEN + 13]
    return Frame(data[6:12], data[0:6], src_ip, dst_ip, proto, src_port, dst_port, flags, seq, ack, ident)
