"""pcap files both ways, as streams: trace packets out as Ethernet frames, capture records in.

The writer packs each frame with ``silkcheck.frames`` (the bytes BMv2 is fed) and
writes classic pcap records through one buffered file: no per-packet objects
beyond the frame. The reader takes classic pcap (µs or ns) and pcapng (any
interface time resolution) one record at a time, and refuses a cut-off or
corrupt file with the packet number and the field at fault.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

from model.types import Packet
from silkcheck import inputs
from silkcheck.frames import packet_frame
from silkcheck.trace import Trace, TraceError

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
SNAPLEN = 65535
MAX_RECORD = 1 << 18
"""Larger than any capture tool's snap length (Wireshark's is 262,144): a bigger record is corruption."""
WRITE_BUFFER = 1 << 20

CLASSIC_MAGICS = {
    b"\xa1\xb2\xc3\xd4": (">", 1_000),  # byte order, nanoseconds per timestamp fraction unit
    b"\xd4\xc3\xb2\xa1": ("<", 1_000),
    b"\xa1\xb2\x3c\x4d": (">", 1),
    b"\x4d\x3c\xb2\xa1": ("<", 1),
}
PCAPNG_SECTION = 0x0A0D0D0A
PCAPNG_BYTE_ORDER = 0x1A2B3C4D
PCAPNG_INTERFACE, PCAPNG_OLD_PACKET, PCAPNG_SIMPLE_PACKET, PCAPNG_ENHANCED_PACKET = 1, 2, 3, 6
OPTION_TSRESOL, OPTION_TSOFFSET = 9, 14


class PcapError(TraceError):
    """A capture file silkcheck cannot read, and where it goes wrong."""


# ---------------------------------------------------------------- writing

_RECORD = struct.Struct("<IIII")


class PcapWriter:
    """Classic little-endian pcap with µs timestamps, written record by record."""

    def __init__(self, path: str | Path, linktype: int = LINKTYPE_ETHERNET) -> None:
        self.path = Path(path)
        try:
            self._file: BinaryIO = self.path.open("wb", buffering=WRITE_BUFFER)
        except OSError as error:
            raise PcapError(f"{path}: cannot write: {error.strerror}") from None
        self._file.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, linktype))
        self.count = 0

    def write(self, micros: int, frame: bytes, wire_length: int | None = None) -> None:
        """``frame`` as captured; ``wire_length`` the packet's length on the wire, if the capture cut it."""
        seconds, fraction = divmod(micros, 1_000_000)
        wire = len(frame) if wire_length is None else wire_length
        self._file.write(_RECORD.pack(seconds, fraction, len(frame), wire))
        self._file.write(frame)
        self.count += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_packets(packets: Iterable[tuple[int, Packet]], path: str | Path) -> int:
    """Every (time in µs, packet) as an Ethernet frame."""
    with PcapWriter(path) as writer:
        for t, packet in packets:
            writer.write(t, packet_frame(packet).to_bytes())
        return writer.count


def export_pcap(trace: Trace, path: str | Path) -> int:
    """The trace's packets as a pcap that Wireshark opens; timestamps are the trace's ticks (µs).
    A reactive packet carries the ack it sent when the trace ran on the model."""
    from silkcheck.targets.model import sent_packets

    return write_packets(sent_packets(trace), path)


# ---------------------------------------------------------------- reading


class Record(NamedTuple):
    number: int
    """1-based position among the capture's packets."""
    nanos: int
    """Timestamp in ns since the epoch (as the capture states it)."""
    linktype: int
    data: bytes
    wire_length: int
    """The packet's length on the wire (``data`` may hold only its first bytes: the snap length)."""


def read_records(path: str | Path) -> Iterator[Record]:
    """The packet records of a pcap or pcapng file, in file order."""
    path = Path(path)
    with inputs.open_binary(path, "capture") as file:  # any size: it is read a record at a time
        magic = file.read(4)
        if magic in CLASSIC_MAGICS:
            yield from _classic(path, file, *CLASSIC_MAGICS[magic])
        elif len(magic) == 4 and struct.unpack("<I", magic)[0] == PCAPNG_SECTION:
            yield from _pcapng(path, file, magic)
        else:
            raise PcapError(f"{path}: not a pcap or pcapng capture (it starts with {magic.hex() or 'nothing'})")


def _exact(path: Path, file: BinaryIO, size: int, what: str) -> bytes:
    data = file.read(size)
    if len(data) != size:
        raise PcapError(f"{path}: truncated: {what} has {len(data)} of its {size} bytes")
    return data


def _classic(path: Path, file: BinaryIO, endian: str, unit_ns: int) -> Iterator[Record]:
    header = _exact(path, file, 20, "the file header")
    major, minor, _, _, _, network = struct.unpack(endian + "HHiIII", header)
    if (major, minor) != (2, 4):
        raise PcapError(f"{path}: pcap version {major}.{minor}: silkcheck reads version 2.4, the only one in use")
    linktype = network & 0xFFFF
    record = struct.Struct(endian + "IIII")
    number = 0
    while head := file.read(16):
        number += 1
        if len(head) != 16:
            raise PcapError(f"{path}: truncated: packet #{number}'s record header is cut off")
        seconds, fraction, caplen, wire_length = record.unpack(head)
        if caplen > MAX_RECORD:
            raise PcapError(f"{path}: packet #{number}: record length {caplen:,} exceeds {MAX_RECORD:,} bytes: "
                            "the capture is corrupt")  # fmt: skip
        _captured_within_wire(path, f"packet #{number}", caplen, wire_length)
        data = _exact(path, file, caplen, f"packet #{number}")
        yield Record(number, seconds * 1_000_000_000 + fraction * unit_ns, linktype, data, wire_length)


def _captured_within_wire(path: Path, what: str, caplen: int, wire_length: int) -> None:
    if caplen > wire_length:
        raise PcapError(f"{path}: {what}: {caplen:,} bytes captured of a packet {wire_length:,} bytes long on the "
                        "wire: the capture is corrupt")  # fmt: skip


class _Interface(NamedTuple):
    linktype: int
    units_per_second: int
    offset_s: int


def _pcapng(path: Path, file: BinaryIO, magic: bytes) -> Iterator[Record]:
    endian = "<"
    interfaces: list[_Interface] = []
    number = 0
    first = True
    while True:
        head = magic + file.read(4) if first else file.read(8)
        if not head:
            return
        where = f"the block after packet #{number}" if number else "the first block"
        if len(head) != 8:
            raise PcapError(f"{path}: truncated: {where} is cut off in its header")
        if first or struct.unpack("<I", head[:4])[0] == PCAPNG_SECTION:
            order = _exact(path, file, 4, f"{where} (section header)")
            if order == struct.pack("<I", PCAPNG_BYTE_ORDER):
                endian = "<"
            elif order == struct.pack(">I", PCAPNG_BYTE_ORDER):
                endian = ">"
            else:
                raise PcapError(f"{path}: {where}: section header byte-order magic {order.hex()} is not 1a2b3c4d")
            interfaces = []
            kind, length = struct.unpack(endian + "II", head)
            body = order + _block_rest(path, file, endian, length, 4, where)
            first = False
            continue
        kind, length = struct.unpack(endian + "II", head)
        body = _block_rest(path, file, endian, length, 0, where)
        if kind == PCAPNG_INTERFACE:
            interfaces.append(_interface(path, body, endian, where))
        elif kind in (PCAPNG_ENHANCED_PACKET, PCAPNG_OLD_PACKET):
            number += 1
            what = f"packet #{number}"
            if len(body) < 20:
                raise PcapError(f"{path}: {what}: packet block of {length} bytes is too short")
            if kind == PCAPNG_ENHANCED_PACKET:
                interface, high, low, caplen, wire_length = struct.unpack_from(endian + "IIIII", body)
            else:
                interface, _, high, low, caplen, wire_length = struct.unpack_from(endian + "HHIIII", body)
            if interface >= len(interfaces):
                raise PcapError(f"{path}: {what}: interface {interface} was never described "
                                f"({len(interfaces)} interface blocks so far)")  # fmt: skip
            if 20 + caplen > len(body):
                raise PcapError(f"{path}: truncated: {what} claims {caplen:,} bytes, its block holds "
                                f"{len(body) - 20:,}")  # fmt: skip
            _captured_within_wire(path, what, caplen, wire_length)
            link = interfaces[interface]
            units = (high << 32 | low) + link.offset_s * link.units_per_second
            nanos = units * 1_000_000_000 // link.units_per_second
            yield Record(number, nanos, link.linktype, body[20 : 20 + caplen], wire_length)
        elif kind == PCAPNG_SIMPLE_PACKET:
            raise PcapError(f"{path}: packet #{number + 1} is a simple packet block, which has no timestamp")


def _block_rest(path: Path, file: BinaryIO, endian: str, length: int, read: int, where: str) -> bytes:
    """The body of a block whose 8-byte head (and ``read`` more bytes) were read; checks both lengths."""
    if length < 12 + read or length % 4 or length > MAX_RECORD + 64:
        raise PcapError(f"{path}: {where}: block length {length:,} is impossible (the capture is corrupt)")
    rest = _exact(path, file, length - 8 - read, where)
    trailer = struct.unpack(endian + "I", rest[-4:])[0]
    if trailer != length:
        raise PcapError(f"{path}: {where}: block length {length:,} at its start but {trailer:,} at its end "
                        "(the capture is corrupt)")  # fmt: skip
    return rest[:-4]


def _interface(path: Path, body: bytes, endian: str, where: str) -> _Interface:
    if len(body) < 8:
        raise PcapError(f"{path}: {where}: interface block is too short")
    linktype = struct.unpack_from(endian + "H", body)[0]
    units, offset = 1_000_000, 0
    at = 8
    while at + 4 <= len(body):
        code, size = struct.unpack_from(endian + "HH", body, at)
        value = body[at + 4 : at + 4 + size]
        if code == 0:
            break
        if code == OPTION_TSRESOL and size == 1:
            exponent = value[0] & 0x7F
            if exponent > 30:
                raise PcapError(f"{path}: {where}: if_tsresol {value[0]:#x} asks for time units below 1e-30 s")
            units = 2**exponent if value[0] & 0x80 else 10**exponent
        elif code == OPTION_TSOFFSET and size == 8:
            offset = struct.unpack(endian + "q", value)[0]
        at += 4 + (size + 3) // 4 * 4
    return _Interface(linktype, units, offset)
