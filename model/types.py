"""The vocabulary of SilkRoad: addresses, 5-tuples, packets, TCP flags.

Plain immutable values only; they are shared by the model, the trace language,
the targets and the oracle.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import NamedTuple

PROTO_TCP = 6
PROTO_UDP = 17
PROTO_NAMES = {"tcp": PROTO_TCP, "udp": PROTO_UDP}
PROTO_BY_NUMBER = {number: name for name, number in PROTO_NAMES.items()}

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
FLAG_LETTERS = {"F": FIN, "S": SYN, "R": RST, "P": PSH, "A": ACK}


class FiveTuple(NamedTuple):
    src_ip: int
    dst_ip: int
    src_port: int
    dst_port: int
    proto: int

    @property
    def vip(self) -> Vip:
        return Vip(self.dst_ip, self.dst_port, self.proto)

    def __str__(self) -> str:
        return (
            f"{ip_str(self.src_ip)}:{self.src_port}->{ip_str(self.dst_ip)}:{self.dst_port}"
            f"/{PROTO_BY_NUMBER.get(self.proto, self.proto)}"
        )


class Vip(NamedTuple):
    """A virtual service: what clients address."""

    ip: int
    port: int
    proto: int

    def __str__(self) -> str:
        return f"{ip_str(self.ip)}:{self.port}/{PROTO_BY_NUMBER.get(self.proto, self.proto)}"


class Dip(NamedTuple):
    """A direct (real server) address."""

    ip: int
    port: int

    def __str__(self) -> str:
        return f"{ip_str(self.ip)}:{self.port}"


class Packet(NamedTuple):
    ft: FiveTuple
    flags: int = 0
    seq: int = 0
    ack: int = 0

    @property
    def is_tcp(self) -> bool:
        return self.ft.proto == PROTO_TCP

    @property
    def is_syn(self) -> bool:
        """A connection-opening SYN (not a SYN-ACK)."""
        return self.ft.proto == PROTO_TCP and self.flags & (SYN | ACK) == SYN

    @property
    def is_end(self) -> bool:
        return self.ft.proto == PROTO_TCP and bool(self.flags & (FIN | RST))


def ip_str(value: int) -> str:
    if 0 <= value < 1 << 32:  # inet_ntoa writes what IPv4Address does, four times faster
        return socket.inet_ntoa(value.to_bytes(4, "big"))
    return str(ipaddress.IPv4Address(value))  # its error names the value


def parse_ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def flags_str(flags: int) -> str:
    return "".join(letter for letter, bit in FLAG_LETTERS.items() if flags & bit) or "."


def parse_flags(text: str) -> int:
    flags = 0
    for letter in text:
        if letter == ".":
            continue
        if letter not in FLAG_LETTERS:
            raise ValueError(f"unknown TCP flag {letter!r} (expected letters from {''.join(FLAG_LETTERS)})")
        flags |= FLAG_LETTERS[letter]
    return flags
