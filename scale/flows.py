"""Many 5-tuples as numpy columns, and the model's hashes computed over all of them at once.

``model.hashing`` hashes one flow at a time; here the same CRCs run table-driven
over uint8 columns, vectorised across flows. Every field the data plane hashes
is a whole number of bytes (32, 32, 16, 16, 8 bits), so packing a field order
MSB first is just concatenating big-endian bytes: 13 bytes, no padding.
``tests/test_scale_hashing.py`` checks equality with ``HashPlan.flow``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from model.hashing import BLOOM_ORDERS, DIGEST_ORDER, DIP_ORDER, FIELD_WIDTHS, STAGE_ORDERS
from model.types import PROTO_TCP, PROTO_UDP, FiveTuple, Vip

FIELD_DTYPES = {"src_ip": np.uint32, "dst_ip": np.uint32, "src_port": np.uint16, "dst_port": np.uint16,
                "proto": np.uint8}  # fmt: skip


@dataclass(frozen=True)
class Flows:
    """A column store of 5-tuples (one row per flow)."""

    src_ip: np.ndarray
    dst_ip: np.ndarray
    src_port: np.ndarray
    dst_port: np.ndarray
    proto: np.ndarray

    def __len__(self) -> int:
        return len(self.src_ip)

    def column(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def take(self, index: np.ndarray | slice) -> Flows:
        return Flows(*(self.column(name)[index] for name in FIELD_DTYPES))

    def five_tuple(self, i: int) -> FiveTuple:
        return FiveTuple(*(int(self.column(name)[i]) for name in FIELD_DTYPES))

    def five_tuples(self) -> Iterator[FiveTuple]:
        return (self.five_tuple(i) for i in range(len(self)))

    @classmethod
    def from_tuples(cls, tuples: Iterable[FiveTuple]) -> Flows:
        rows = list(tuples)
        return cls(*(np.array([getattr(ft, name) for ft in rows], dtype=dtype) for name, dtype in FIELD_DTYPES.items()))

    @classmethod
    def random(cls, rng: np.random.Generator, count: int, vips: Sequence[Vip] = ()) -> Flows:
        """Clients with uniformly random addresses and ports; to ``vips`` if given, else to random
        destinations over TCP or UDP (so every hashed bit varies)."""
        src_ip = rng.integers(0, 1 << 32, count, dtype=np.uint32)
        src_port = rng.integers(0, 1 << 16, count, dtype=np.uint16)
        if vips:
            pick = rng.integers(0, len(vips), count)
            dst_ip = np.array([v.ip for v in vips], dtype=np.uint32)[pick]
            dst_port = np.array([v.port for v in vips], dtype=np.uint16)[pick]
            proto = np.array([v.proto for v in vips], dtype=np.uint8)[pick]
        else:
            dst_ip = rng.integers(0, 1 << 32, count, dtype=np.uint32)
            dst_port = rng.integers(0, 1 << 16, count, dtype=np.uint16)
            proto = np.where(rng.random(count) < 0.5, PROTO_TCP, PROTO_UDP).astype(np.uint8)
        return cls(src_ip, dst_ip, src_port, dst_port, proto)

    def byte_rows(self, order: Sequence[str]) -> Iterator[np.ndarray]:
        """The packed hash input of every flow, one uint8 column per byte position (MSB first)."""
        for name in order:
            width = FIELD_WIDTHS[name]
            if width % 8:
                raise ValueError(f"field {name!r} is {width} bits: vectorised packing needs whole bytes")
            values = self.column(name)
            for shift in range(width - 8, -8, -8):
                yield (values >> values.dtype.type(shift)).astype(np.uint8)


class ReflectedCrc:
    """A table-driven reflected CRC (the form of both BMv2 algorithms) over byte columns."""

    def __init__(self, poly: int, init: int, xorout: int) -> None:
        table = np.zeros(256, dtype=np.uint32)
        for byte in range(256):
            crc = byte
            for _ in range(8):
                crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
            table[byte] = crc
        self.table = table
        self.init = np.uint32(init)
        self.xorout = np.uint32(xorout)

    def __call__(self, columns: Iterable[np.ndarray], count: int) -> np.ndarray:
        crc = np.full(count, self.init, dtype=np.uint32)
        eight = np.uint32(8)
        for column in columns:
            crc = self.table[(crc ^ column) & 0xFF] ^ (crc >> eight)
        return crc ^ self.xorout


CRC32 = ReflectedCrc(0xEDB88320, 0xFFFFFFFF, 0xFFFFFFFF)
"""IEEE CRC-32 (``zlib.crc32``), BMv2's ``crc32``."""
CRC16 = ReflectedCrc(0xA001, 0, 0)
"""CRC-16/ARC, BMv2's ``crc16``."""


def digests(flows: Flows, digest_bits: int) -> np.ndarray:
    mask = np.uint32((1 << digest_bits) - 1)
    return CRC32(flows.byte_rows(DIGEST_ORDER), len(flows)) & mask


def buckets(flows: Flows, stages: int, buckets_per_stage: int) -> np.ndarray:
    """uint32[stages, flows]: every flow's bucket in every stage."""
    out = np.empty((stages, len(flows)), dtype=np.uint32)
    for stage in range(stages):
        out[stage] = CRC32(flows.byte_rows(STAGE_ORDERS[stage]), len(flows)) % np.uint32(buckets_per_stage)
    return out


def bloom_cells(flows: Flows, hashes: int, bloom_bits: int) -> np.ndarray:
    """uint32[hashes, flows]: the TransitTable cells each flow sets / reads."""
    out = np.empty((hashes, len(flows)), dtype=np.uint32)
    for j in range(hashes):
        out[j] = CRC32(flows.byte_rows(BLOOM_ORDERS[j]), len(flows)) % np.uint32(bloom_bits)
    return out


def dip_hashes(flows: Flows) -> np.ndarray:
    return CRC16(flows.byte_rows(DIP_ORDER), len(flows))
