"""Hashes against known vectors and against bit-by-bit reference CRCs."""

import random

import pytest

from model.config import Config
from model.hashing import (
    BLOOM_ORDERS,
    DIGEST_ORDER,
    DIP_ORDER,
    STAGE_ORDERS,
    HashPlan,
    crc16,
    crc32,
    dip_index,
    hash_uses,
    pack,
    pack_tuple,
    tuple_packer,
)
from model.types import FiveTuple
from proofs.gf2 import rank


def reference_crc(data: bytes, width: int, poly_reflected: int, init: int, xorout: int) -> int:
    """Bit-serial reflected CRC, written independently of the table-driven code."""
    crc = init
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly_reflected if crc & 1 else crc >> 1
    return (crc ^ xorout) & ((1 << width) - 1)


def test_catalogue_check_values():
    # The CRC catalogue's check values for the ASCII string "123456789".
    assert crc16(b"123456789") == 0xBB3D  # CRC-16/ARC, BMv2 crc16
    assert crc32(b"123456789") == 0xCBF43926  # CRC-32/ISO-HDLC, BMv2 crc32


def test_crcs_match_bit_serial_reference():
    rng = random.Random(5)
    for _ in range(200):
        data = rng.randbytes(rng.randrange(0, 40))
        assert crc16(data) == reference_crc(data, 16, 0xA001, 0, 0)
        assert crc32(data) == reference_crc(data, 32, 0xEDB88320, 0xFFFFFFFF, 0xFFFFFFFF)


def test_pack_is_msb_first_and_zero_padded_at_the_end():
    assert pack([(0b101, 3), (0b1, 1)]) == bytes([0b1011_0000])
    assert pack([(0xABC, 12)]) == bytes([0xAB, 0xC0])
    assert pack([(1, 32), (2, 16), (3, 8)]) == bytes([0, 0, 0, 1, 0, 2, 3])


def test_five_tuple_packs_to_13_bytes_in_field_order():
    ft = FiveTuple(0x01020304, 0x0A0B0C0D, 0x1111, 0x2222, 6)
    assert pack_tuple(ft, DIGEST_ORDER).hex() == "010203040a0b0c0d1111222206"
    assert pack_tuple(ft, DIP_ORDER).hex() == "06222211110a0b0c0d01020304"
    assert pack_tuple(ft, STAGE_ORDERS[0]).hex() == "0a0b0c0d010203041111222206"


def test_flow_hashes_are_the_documented_uses():
    config = Config(digest_bits=24, stages=4, buckets_per_stage=4096, bloom_bits=2048, bloom_hashes=3)
    plan = HashPlan(config)
    ft = FiveTuple(0xC0A80001, 0x14000001, 40000, 80, 6)
    h = plan.flow(ft)
    assert h.digest == crc32(pack_tuple(ft, DIGEST_ORDER)) % (1 << 24)
    assert h.buckets == tuple(crc32(pack_tuple(ft, STAGE_ORDERS[s])) % 4096 for s in range(4))
    assert h.bloom == tuple(crc32(pack_tuple(ft, BLOOM_ORDERS[j])) % 2048 for j in range(3))
    assert dip_index(h.dip_hash, 3) == crc16(pack_tuple(ft, DIP_ORDER)) % 3
    assert h.stage_keys == tuple((s, h.buckets[s], h.digest) for s in range(4))
    assert h.digest == crc32(bytes.fromhex("c0a80001140000019c40005006")) % (1 << 24)
    assert h.dip_hash == crc16(bytes.fromhex("0600509c4014000001c0a80001"))


def test_tuple_packer_packs_as_pack_tuple_in_every_order():
    rng = random.Random(7)
    flows = [FiveTuple(rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(16),
                       rng.getrandbits(8)) for _ in range(200)]  # fmt: skip
    for order in (DIGEST_ORDER, DIP_ORDER, *STAGE_ORDERS, *BLOOM_ORDERS):
        packed = tuple_packer(order)
        assert all(packed(ft) == pack_tuple(ft, order) for ft in flows)


def test_flow_hashes_of_a_field_out_of_range_name_the_value():
    with pytest.raises(ValueError, match="value 65536 does not fit in 16 bits"):
        HashPlan(Config()).flow(FiveTuple(1, 2, 65536, 80, 6))


def test_frozen_vectors():
    """The values the P4 program must reproduce; a change here is a change of the wire contract."""
    plan = HashPlan(Config())
    ft = FiveTuple(0xC0A80001, 0x14000001, 40000, 80, 6)
    h = plan.flow(ft)
    assert h.digest == 14807411
    assert h.buckets == (1897, 315, 1925, 3368)
    assert h.bloom == (1848, 1192, 290)
    assert h.dip_hash == 22974
    assert plan.cookie(ft) == 790665792
    config = Config()
    assert plan.cookie(ft) == crc32(config.cookie_key.to_bytes(4, "big") + bytes.fromhex("c0a80001140000019c40005006"))


def test_every_use_has_its_own_field_order_per_algorithm():
    uses = hash_uses(Config(stages=8, bloom_hashes=4))
    seen = [(u.algorithm, u.order) for u in uses]
    assert len(seen) == len(set(seen))


def _linear_rows(order: tuple[str, ...], crc, bits: int) -> list[int]:
    """The GF(2) map from the client-varied bits (src_ip, src_port) to the low ``bits`` of a hash.

    CRC is affine, so column i is h(e_i) ^ h(0); row j (an int over the 48 input bits) says
    which input bits output bit j depends on."""
    base = FiveTuple(0, 0x14000001, 0, 80, 6)
    zero = crc(pack_tuple(base, order))
    columns = []
    for i in range(48):
        ft = base._replace(src_ip=1 << i if i < 32 else 0, src_port=1 << (i - 32) if i >= 32 else 0)
        columns.append((crc(pack_tuple(ft, order)) ^ zero) & ((1 << bits) - 1))
    return [sum((c >> j & 1) << i for i, c in enumerate(columns)) for j in range(bits)]


def test_hash_uses_are_independent_on_the_client_fields():
    """Full rank: for flows of one VIP, a digest collision says nothing about a bucket collision,
    and a collision in one stage (or Bloom hash) nothing about another, at every power-of-two size."""
    digest = _linear_rows(DIGEST_ORDER, crc32, 24)
    for k in range(1, 17):
        for order in STAGE_ORDERS:
            assert rank(digest + _linear_rows(order, crc32, k)) == 24 + k, (order, k)
        for group in (STAGE_ORDERS, BLOOM_ORDERS):
            for i, a in enumerate(group):
                for b in group[i + 1 :]:
                    assert rank(_linear_rows(a, crc32, k) + _linear_rows(b, crc32, k)) == 2 * k, (a, b, k)


def test_a_byte_rotation_of_the_digest_order_is_not_independent():
    """Why the orders are not rotations: moving proto to the front only multiplies the CRC by x^8."""
    rotated = ("proto", "src_ip", "dst_ip", "src_port", "dst_port")
    assert rank(_linear_rows(DIGEST_ORDER, crc32, 24) + _linear_rows(rotated, crc32, 12)) < 36


def test_stage_buckets_collide_independently():
    """CRC is linear: a shared order with different salts would collide in every stage at once."""
    plan = HashPlan(Config(stages=4, buckets_per_stage=64))
    rng = random.Random(1)
    flows = [FiveTuple(rng.getrandbits(32), 0x14000001, rng.randrange(1, 65536), 80, 6) for _ in range(3000)]
    pairs_same_stage0 = 0
    pairs_same_all = 0
    by_bucket: dict[int, list] = {}
    for ft in flows:
        by_bucket.setdefault(plan.flow(ft).buckets[0], []).append(ft)
    for group in by_bucket.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                pairs_same_stage0 += 1
                pairs_same_all += plan.flow(a).buckets[1:] == plan.flow(b).buckets[1:]
    assert pairs_same_stage0 > 1000
    # Independent stages: about 1/64^3 of stage-0 collisions also collide elsewhere.
    assert pairs_same_all <= pairs_same_stage0 / 1000
