"""The P4Runtime messages of the BMv2 harness's hot path, encoded and decoded by hand.

protobuf < 3.21 (pinned for p4runtime-shell) runs as pure Python here, and building
or parsing one message costs more than BMv2 takes to apply the write it carries.
The messages sent per table write (WriteRequest of table entries) and read
from the stream are a few fields each: they are written and read here in the protobuf wire format
directly, byte for byte what ``SerializeToString`` gives (``tests/test_p4wire.py``
checks both ways against the generated classes). Anything else goes through protobuf.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache

VARINT, LENGTH = 0, 2


_ONE_BYTE = [bytes([value]) for value in range(0x80)]
"""Field keys and lengths are nearly all below 128: their varint is one byte, looked up."""


def varint(value: int) -> bytes:
    if value < 0x80:
        return _ONE_BYTE[value]
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _number(field: int, value: int) -> bytes:
    """A varint field; proto3 leaves a zero out."""
    return varint(field << 3 | VARINT) + varint(value) if value else b""


def _nested(field: int, data: bytes) -> bytes:
    return varint(field << 3 | LENGTH) + varint(len(data)) + data


def _blob(field: int, data: bytes) -> bytes:
    """A bytes field; proto3 leaves an empty one out."""
    return _nested(field, data) if data else b""


# ---------------------------------------------------------------- requests


@lru_cache(maxsize=1 << 14)
def table_entry(table_id: int, exact: tuple[tuple[int, bytes], ...], action_id: int | None = None,
                params: tuple[tuple[int, bytes], ...] = ()) -> bytes:  # fmt: skip
    """Entity{table_entry: TableEntry{table_id, match (exact), action{action{action_id, params}}}}.
    Remembered: runs write the same entries again (every run its boot writes, a delete the key of
    an insert), 88% of a differential campaign's entities."""
    body = _number(1, table_id) + b"".join(_nested(2, _number(1, f) + _nested(2, _blob(1, v))) for f, v in exact)
    if action_id is not None:
        action = _number(1, action_id) + b"".join(_nested(4, _number(2, p) + _blob(3, v)) for p, v in params)
        body += _nested(3, _nested(1, action))
    return _nested(2, body)


def write_request(device_id: int, election: tuple[int, int], updates: Sequence[tuple[int, bytes]]) -> bytes:
    """WriteRequest{device_id, election_id{high, low}, updates{type, entity}} (entities already encoded)."""
    high, low = election
    head = _number(1, device_id) + _nested(3, _number(1, high) + _number(2, low))
    return head + b"".join(_nested(4, _number(1, kind) + _nested(2, entity)) for kind, entity in updates)


# ---------------------------------------------------------------- responses


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a message: varints as int, length-delimited as bytes."""
    at, end = 0, len(data)
    while at < end:
        key, at = _read_varint(data, at)
        field, kind = key >> 3, key & 7
        if kind == VARINT:
            value, at = _read_varint(data, at)
            yield field, value
        elif kind == LENGTH:
            size, at = _read_varint(data, at)
            yield field, data[at : at + size]
            at += size
        elif kind in (1, 5):  # fixed 64 / fixed 32: none in the messages read here, skipped whole
            at += 8 if kind == 1 else 4
        else:
            raise ValueError(f"protobuf wire type {kind} of field {field} cannot be read")


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
