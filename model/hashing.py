"""Hash functions bit-exact with BMv2, and the one place that derives every hash use.

BMv2 (``src/bm_sim/calculations.cpp``) computes ``crc32`` as IEEE CRC-32
(``zlib.crc32``) and ``crc16`` as CRC-16/ARC (poly 0x8005 reflected, init 0,
no final xor). Its input is the listed fields' bits concatenated
most-significant-bit first, zero-padded at the end to whole bytes; v1model's
``hash(out r, algo, base, data, max)`` yields ``base + (h mod max)``.

CRC is affine over GF(2): ``crc(a ^ b) = crc(a) ^ crc(b) ^ crc(0)`` for
equal-length inputs. A constant salt prepended to the fields therefore only
XORs a constant into the result, and two flows that collide under one salt
collide under every salt. Distinct uses thus hash the *same fields in a
different order* (a different linear map), never the same order with a
different salt. ``HASH_USES`` lists, for each use, the algorithm and field
order the P4 program must use.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from model.config import Config
from model.types import FiveTuple

FIELD_WIDTHS = {"src_ip": 32, "dst_ip": 32, "src_port": 16, "dst_port": 16, "proto": 8}
IDENTITY = ("src_ip", "dst_ip", "src_port", "dst_port", "proto")


def _rotate(order: tuple[str, ...], k: int) -> tuple[str, ...]:
    return order[k:] + order[:k]


REVERSED = tuple(reversed(IDENTITY))
STAGE_ORDERS = tuple(_rotate(IDENTITY, k) for k in range(1, 5)) + tuple(_rotate(REVERSED, k) for k in range(1, 5))
BLOOM_ORDERS = tuple(_rotate(IDENTITY, k) for k in range(4))
DIGEST_ORDER = IDENTITY
DIP_ORDER = REVERSED
COOKIE_ORDER = IDENTITY


class HashUse(NamedTuple):
    name: str
    algorithm: str
    order: tuple[str, ...]


def hash_uses(config: Config) -> list[HashUse]:
    """Every hash the pipeline computes, in the form the P4 program spells it."""
    uses = [HashUse("digest", "crc32", DIGEST_ORDER)]
    uses += [HashUse(f"stage{s}", "crc32", STAGE_ORDERS[s]) for s in range(config.stages)]
    uses += [HashUse(f"bloom{j}", "crc16", BLOOM_ORDERS[j]) for j in range(config.bloom_hashes)]
    uses.append(HashUse("dip", "crc16", DIP_ORDER))
    uses.append(HashUse("cookie", "crc32", ("cookie_key", *COOKIE_ORDER)))
    return uses


def _crc16_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC16 = _crc16_table()


def crc16(data: bytes) -> int:
    """CRC-16/ARC, as BMv2's ``crc16``."""
    crc = 0
    for byte in data:
        crc = (crc >> 8) ^ _CRC16[(crc ^ byte) & 0xFF]
    return crc


def crc32(data: bytes) -> int:
    """IEEE CRC-32, as BMv2's ``crc32``."""
    return zlib.crc32(data)


ALGORITHMS = {"crc16": crc16, "crc32": crc32}


def pack(fields: Sequence[tuple[int, int]]) -> bytes:
    """Concatenate (value, width) pairs MSB first, zero-padded at the end to whole bytes."""
    value = 0
    bits = 0
    for field_value, width in fields:
        if not 0 <= field_value < 1 << width:
            raise ValueError(f"value {field_value} does not fit in {width} bits")
        value = (value << width) | field_value
        bits += width
    pad = -bits % 8
    return (value << pad).to_bytes((bits + pad) // 8, "big")


def pack_tuple(ft: FiveTuple, order: Sequence[str], cookie_key: int = 0) -> bytes:
    values = ft._asdict()
    values["cookie_key"] = cookie_key
    widths = dict(FIELD_WIDTHS, cookie_key=32)
    return pack([(values[name], widths[name]) for name in order])


class FlowHashes(NamedTuple):
    """Everything the data plane derives from one 5-tuple."""

    digest: int
    buckets: tuple[int, ...]
    bloom: tuple[int, ...]
    dip_hash: int

    def key(self, stage: int) -> tuple[int, int]:
        """The ConnTable match key (bucket, digest) in one stage."""
        return self.buckets[stage], self.digest


class HashPlan:
    """The hash uses of one configuration, with a per-flow cache."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._digest_mod = 1 << config.digest_bits
        self._stage_orders = STAGE_ORDERS[: config.stages]
        self._bloom_orders = BLOOM_ORDERS[: config.bloom_hashes]
        self.flow = lru_cache(maxsize=1 << 16)(self._flow)

    def _flow(self, ft: FiveTuple) -> FlowHashes:
        c = self.config
        return FlowHashes(
            digest=crc32(pack_tuple(ft, DIGEST_ORDER)) % self._digest_mod,
            buckets=tuple(crc32(pack_tuple(ft, order)) % c.buckets_per_stage for order in self._stage_orders),
            bloom=tuple(crc16(pack_tuple(ft, order)) % c.bloom_bits for order in self._bloom_orders),
            dip_hash=crc16(pack_tuple(ft, DIP_ORDER)),
        )

    def cookie(self, ft: FiveTuple) -> int:
        """The SYN-ACK sequence number for ``ft``. A CRC is no MAC: see ``model.dataplane``."""
        return crc32(pack_tuple(ft, ("cookie_key", *COOKIE_ORDER), self.config.cookie_key))


def dip_index(dip_hash: int, pool_size: int) -> int:
    """v1model ``hash(..., base=0, max=pool_size)``: the member of the pool a flow maps to."""
    return dip_hash % pool_size
