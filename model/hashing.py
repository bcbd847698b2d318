"""Hash functions bit-exact with BMv2, and the one place that derives every hash use.

BMv2 (``src/bm_sim/calculations.cpp``) computes ``crc32`` as IEEE CRC-32
(``zlib.crc32``) and ``crc16`` as CRC-16/ARC (poly 0x8005 reflected, init 0,
no final xor). Its input is the listed fields' bits concatenated
most-significant-bit first, zero-padded at the end to whole bytes; v1model's
``hash(out r, algo, base, data, max)`` yields ``base + (h mod max)``.

CRC is linear over GF(2) (affine, with the init value), so the usual trick
of salting one input for each use fails twice over: a prepended constant only
XORs a constant into the result, and a byte-rotation of the field order only
multiplies the CRC by a power of x, so two flows that collide under one use
collide under the other. What makes two uses independent is where the fields a
client varies (src_ip, src_port) sit relative to the end of the input. The
orders below were chosen so that, over those 48 bits, the digest and every
stage's bucket index, and every two stages or Bloom hashes, form a full-rank
GF(2) map at every power-of-two table size the config allows
(``tests/test_hashing.py`` checks this). ``hash_uses`` lists, for each use,
the algorithm and field order the P4 program must use.
"""

from __future__ import annotations

import operator
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeVar

from model.config import Config
from model.types import FiveTuple

K = TypeVar("K")
V = TypeVar("V")

FIELD_WIDTHS = {"src_ip": 32, "dst_ip": 32, "src_port": 16, "dst_port": 16, "proto": 8}
IDENTITY = ("src_ip", "dst_ip", "src_port", "dst_port", "proto")


DIGEST_ORDER = IDENTITY
STAGE_ORDERS = (
    ("dst_ip", "src_ip", "src_port", "dst_port", "proto"),
    ("dst_ip", "src_port", "src_ip", "dst_port", "proto"),
    ("dst_ip", "src_port", "dst_port", "src_ip", "proto"),
    ("dst_ip", "src_port", "dst_port", "proto", "src_ip"),
    ("dst_ip", "src_port", "proto", "src_ip", "dst_port"),
    ("dst_ip", "proto", "src_ip", "dst_port", "src_port"),
    ("dst_port", "src_ip", "dst_ip", "proto", "src_port"),
    ("dst_port", "src_port", "src_ip", "dst_ip", "proto"),
)
BLOOM_ORDERS = (
    ("src_ip", "dst_ip", "dst_port", "src_port", "proto"),
    ("src_ip", "dst_ip", "dst_port", "proto", "src_port"),
    ("dst_ip", "src_ip", "dst_port", "src_port", "proto"),
    ("dst_ip", "src_ip", "dst_port", "proto", "src_port"),
)
DIP_ORDER = tuple(reversed(IDENTITY))
COOKIE_ORDER = IDENTITY


class HashUse(NamedTuple):
    name: str
    algorithm: str
    order: tuple[str, ...]


def hash_uses(config: Config) -> list[HashUse]:
    """Every hash the pipeline computes, in the form the P4 program spells it."""
    uses = [HashUse("digest", "crc32", DIGEST_ORDER)]
    uses += [HashUse(f"stage{s}", "crc32", STAGE_ORDERS[s]) for s in range(config.stages)]
    uses += [HashUse(f"bloom{j}", "crc32", BLOOM_ORDERS[j]) for j in range(config.bloom_hashes)]
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


PACKED_WIDTHS = dict(FIELD_WIDTHS, cookie_key=32)
assert all(width % 8 == 0 for width in PACKED_WIDTHS.values())


def field_bytes(ft: FiveTuple, cookie_key: int = 0) -> dict[str, bytes]:
    """Every field ``pack``ed on its own. All are whole bytes wide, so packing fields in any
    order is joining these: a flow's hashes pack its fields once, not once per hash."""
    values = {**ft._asdict(), "cookie_key": cookie_key}
    try:
        return {name: values[name].to_bytes(width // 8, "big") for name, width in PACKED_WIDTHS.items()}
    except OverflowError:  # negative or too wide: let ``pack`` name the value
        return {name: pack(((values[name], width),)) for name, width in PACKED_WIDTHS.items()}


def pack_tuple(ft: FiveTuple, order: Sequence[str], cookie_key: int = 0) -> bytes:
    return join_fields(field_bytes(ft, cookie_key), order)


def join_fields(fields: dict[str, bytes], order: Sequence[str]) -> bytes:
    return b"".join([fields[name] for name in order])


_STRUCT_CODES = {8: "B", 16: "H", 32: "I"}


def tuple_packer(order: Sequence[str]) -> Callable[[FiveTuple], bytes]:
    """``pack_tuple(ft, order)`` as one ``struct`` call. Every new flow packs its fields once per hash
    use; joining per-field bytes for that was a tenth of the model's time on the bench workload (a
    new flow every 20 packets). A value that does not fit raises ``pack``'s ``ValueError``, which names it."""
    layout = struct.Struct(">" + "".join(_STRUCT_CODES[FIELD_WIDTHS[name]] for name in order))
    values = operator.attrgetter(*order)

    def packed(ft: FiveTuple) -> bytes:
        try:
            return layout.pack(*values(ft))
        except struct.error:
            return pack(list(zip(values(ft), (FIELD_WIDTHS[name] for name in order), strict=True)))

    return packed


class FlowHashes(NamedTuple):
    """Everything the data plane derives from one 5-tuple."""

    digest: int
    buckets: tuple[int, ...]
    bloom: tuple[int, ...]
    dip_hash: int
    stage_keys: tuple[tuple[int, int, int], ...]
    """Per stage, (stage, bucket, digest): what an observation reports when this flow hits there, and
    what the CPU's shadow watches. Made once per flow, not once per packet or learn (a packet's tuple
    is one more object for the collector to walk)."""

    def key(self, stage: int) -> tuple[int, int]:
        """The ConnTable match key (bucket, digest) in one stage."""
        return self.buckets[stage], self.digest


class BoundedMemo(dict[K, V]):
    """The values of a pure function of one argument, emptied when it holds ``size`` of them. A
    packet reads its flow's hashes here: a hit is one dict read, where an ``lru_cache`` hit, which
    also reorders its list, cost three times as much (0.3 against 0.7-1.0 µs)."""

    def __init__(self, compute: Callable[[K], V], size: int) -> None:
        super().__init__()
        self.compute = compute
        self.size = size

    def __missing__(self, key: K) -> V:
        if len(self) >= self.size:
            self.clear()
        value = self[key] = self.compute(key)
        return value


class HashPlan:
    """The hash uses of one configuration, with per-flow caches (``flow``, ``cookie``)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._digest_mod = 1 << config.digest_bits
        self._digest_input = tuple_packer(DIGEST_ORDER)
        self._stage_inputs = [tuple_packer(order) for order in STAGE_ORDERS[: config.stages]]
        self._bloom_inputs = [tuple_packer(order) for order in BLOOM_ORDERS[: config.bloom_hashes]]
        self._dip_input = tuple_packer(DIP_ORDER)
        self.flow = BoundedMemo(self._flow, 1 << 16).__getitem__
        self.cookie = BoundedMemo(self._cookie, 1 << 16).__getitem__

    def _flow(self, ft: FiveTuple) -> FlowHashes:
        c = self.config
        digest = crc32(self._digest_input(ft)) % self._digest_mod
        buckets = tuple([crc32(packed(ft)) % c.buckets_per_stage for packed in self._stage_inputs])
        return FlowHashes(
            digest=digest,
            buckets=buckets,
            bloom=tuple([crc32(packed(ft)) % c.bloom_bits for packed in self._bloom_inputs]),
            dip_hash=crc16(self._dip_input(ft)),
            stage_keys=tuple([(stage, bucket, digest) for stage, bucket in enumerate(buckets)]),
        )

    def _cookie(self, ft: FiveTuple) -> int:
        """The SYN-ACK sequence number for ``ft``. A CRC is no MAC: see ``model.dataplane``."""
        return crc32(pack_tuple(ft, ("cookie_key", *COOKIE_ORDER), self.config.cookie_key))


def dip_index(dip_hash: int, pool_size: int) -> int:
    """v1model ``hash(..., base=0, max=pool_size)``: the member of the pool a flow maps to."""
    return dip_hash % pool_size
