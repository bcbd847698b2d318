"""What can be proved about the keyed SYN cookie, and what cannot.

The cookie is ``crc32(cookie_key ‖ src_ip ‖ dst_ip ‖ src_port ‖ dst_port ‖ proto)``
(``model.hashing.HashPlan.cookie``): 136 input bits, 32 output bits. For inputs of one length
a CRC is affine over GF(2) (a theorem of polynomial division; ``is_affine`` tests the model's
function on random triples), so the cookie is M·x ⊕ c for a 32×136 bit matrix M whose columns
are the model's own cookie of each unit input XOR its cookie of zero (``gf2.columns``): the
matrix comes from the code that runs, not from a second copy of the hash.

Proved, for every key, by rank (``prove_fields_bind``): for each field F (the key and each
5-tuple field) the columns of F have full rank, so two inputs that differ in F alone never
share a cookie. Every bit of the key and of the 5-tuple changes the cookie, and a cookie seen
for one flow is never valid, whatever the key, for the flow from another source address or
source port, to another VIP address or port or protocol, nor after a change of key.

Not provable, and false (``two_field_collision``): 32 bits cannot separate the 48 bits of
(src_ip, src_port), so 2^16 such pairs share each cookie, and M does not depend on the key, so
anyone can compute which. Worse (``forge``), one cookie seen gives every other:
cookie(k, t) = cookie(k, a) ⊕ cookie(0, a ⊕ t) ⊕ cookie(0, 0). A CRC is not a MAC.

Secrecy assumption, on which SYN authentication rests (``proofs.tables.prove_syn_auth``): the
attacker is off path, so it knows no cookie under the current key. An attacker who owns an
address and reads the SYN-ACKs sent to it breaks the assumption: ``forgery_trace`` gets a
spoofed source whitelisted on the shipped design (model and BMv2). The fuzzer's attackers
replay the cookies they see and guess near them, but do not compute cookies from CRC
linearity (``fuzz.scenario``); the rank proof is why their replays fail. A keyed MAC (SipHash,
or the HalfSipHash that P4 switches can compute) would weaken the assumption to "the attacker
has not seen the SYN-ACK sent to the source it spoofs".
"""

from __future__ import annotations

import random
import time

from model import events as ev
from model.config import Config
from model.hashing import PACKED_WIDTHS, HashPlan
from model.types import ACK, PROTO_TCP, SYN, Dip, FiveTuple, Packet, Vip, parse_ip
from proofs import gf2
from proofs.replay import verdict_of
from proofs.symbolic import SAFE, UNSAFE, Outcome
from silkcheck.trace import CookieAck, Trace

COOKIE_FIELDS = ("cookie_key", "src_ip", "dst_ip", "src_port", "dst_port", "proto")
"""Every input the cookie must bind, each laid out in its own bits of one integer."""
_OFFSETS = {name: sum(PACKED_WIDTHS[f] for f in COOKIE_FIELDS[:i]) for i, name in enumerate(COOKIE_FIELDS)}
INPUT_BITS = sum(PACKED_WIDTHS[f] for f in COOKIE_FIELDS)
COOKIE_BITS = 32


VIP = Vip(parse_ip("20.0.0.1"), 80, PROTO_TCP)
SEEN = FiveTuple(parse_ip("198.51.100.7"), VIP.ip, 40000, VIP.port, PROTO_TCP)
"""A flow from an address the attacker owns: it reads the SYN-ACK."""
SPOOFED = FiveTuple(parse_ip("172.16.9.9"), VIP.ip, 40000, VIP.port, PROTO_TCP)
"""A source the attacker does not own."""


def packed(key: int, ft: FiveTuple) -> int:
    """The key and a 5-tuple as one integer, ``COOKIE_FIELDS`` from bit 0 up."""
    values = {"cookie_key": key, **ft._asdict()}
    return sum(values[name] << _OFFSETS[name] for name in COOKIE_FIELDS)


def unpacked(x: int) -> tuple[int, FiveTuple]:
    values = {name: x >> _OFFSETS[name] & ((1 << PACKED_WIDTHS[name]) - 1) for name in COOKIE_FIELDS}
    return values.pop("cookie_key"), FiveTuple(**values)


def cookie(x: int) -> int:
    """The model's cookie of the key and 5-tuple packed in ``x``."""
    key, ft = unpacked(x)
    return HashPlan(Config(cookie_key=key)).cookie(ft)


def field_columns(name: str) -> list[int]:
    """The columns of the cookie's matrix for the bits of one field."""
    zero = cookie(0)
    return [cookie(1 << (_OFFSETS[name] + i)) ^ zero for i in range(PACKED_WIDTHS[name])]


def is_affine(samples: int = 200, seed: int = 1) -> bool:
    """The premise of the rank argument, on random triples: cookie(x⊕y⊕z) = cookie(x)⊕cookie(y)⊕cookie(z)."""
    rng = random.Random(seed)
    for _ in range(samples):
        x, y, z = (rng.getrandbits(INPUT_BITS) for _ in range(3))
        if cookie(x ^ y ^ z) != cookie(x) ^ cookie(y) ^ cookie(z):
            return False
    return True


def prove_fields_bind() -> Outcome:
    """Each field alone: full rank, so changing it (and nothing else) always changes the cookie."""
    name = "SYN cookie: changing one field only (key, src_ip, dst_ip, src_port, dst_port or proto) changes it"
    start = time.perf_counter()
    if not is_affine():
        return Outcome(name, UNSAFE, time.perf_counter() - start, detail="the cookie is not affine: no rank argument")
    short = {f: r for f in COOKIE_FIELDS if (r := gf2.rank(field_columns(f))) < min(PACKED_WIDTHS[f], COOKIE_BITS)}
    if short:
        detail = "; ".join(f"{f}: rank {r} of {PACKED_WIDTHS[f]}" for f, r in short.items())
        return Outcome(name, UNSAFE, time.perf_counter() - start, detail=detail)
    return Outcome(name, SAFE, time.perf_counter() - start, detail=f"full rank in each field ({INPUT_BITS} input bits)")


def two_field_collision(first: str = "src_ip", second: str = "src_port") -> tuple[Outcome, FiveTuple, FiveTuple]:
    """Two fields together exceed the cookie's 32 bits: a pair of flows, differing in both, that
    share a cookie under every key, found by linear algebra alone (no key)."""
    start = time.perf_counter()
    both = field_columns(first) + field_columns(second)
    rank, dependency = gf2.reduce(both)
    assert dependency is not None, f"{first}+{second} have rank {rank}: no collision"
    bits = [_OFFSETS[first] + i for i in range(PACKED_WIDTHS[first])]
    bits += [_OFFSETS[second] + i for i in range(PACKED_WIDTHS[second])]
    difference = sum(1 << bit for i, bit in enumerate(bits) if dependency >> i & 1)
    _, a = unpacked(packed(0, SEEN))
    _, b = unpacked(packed(0, SEEN) ^ difference)
    width = PACKED_WIDTHS[first] + PACKED_WIDTHS[second]
    detail = (f"rank {rank} of {width}: 2^{width - rank} flows share each cookie; e.g. {a} and {b}, "
              "computed without the key")  # fmt: skip
    outcome = Outcome(f"SYN cookie: changing {first} and {second} together can keep it", UNSAFE,
                      time.perf_counter() - start, detail=detail)  # fmt: skip
    return outcome, a, b


def _xor(a: FiveTuple, b: FiveTuple) -> FiveTuple:
    return FiveTuple(*(x ^ y for x, y in zip(a, b, strict=True)))


def forgery_mask(seen: FiveTuple, target: FiveTuple) -> int:
    """What turns the cookie of ``seen`` into the cookie of ``target`` under any key: computed
    with key 0, i.e. by anyone."""
    public = HashPlan(Config(cookie_key=0)).cookie
    return public(_xor(seen, target)) ^ public(FiveTuple(0, 0, 0, 0, 0))


def forge(observed: int, seen: FiveTuple, target: FiveTuple) -> int:
    """The cookie of ``target``, from the cookie ``observed`` for ``seen`` and no key."""
    return observed ^ forgery_mask(seen, target)


def forgery_trace() -> Trace:
    """The attacker's SYN from its own address, its forged answer from a spoofed one (the seen
    cookie XOR a key-independent mask, plus 1, computed when sent), a CPU learn, the spoofed
    source's SYN: it reaches a DIP."""
    events = [
        ev.PacketArrives(0, Packet(SEEN, SYN, seq=7)),
        CookieAck(10, Packet(SPOOFED, ACK, seq=1), SEEN, 1, forgery_mask(SEEN, SPOOFED)),
        ev.CpuLearns(20),
        ev.PacketArrives(30, Packet(SPOOFED._replace(src_port=40001), SYN, seq=9)),
    ]
    description = (
        "A CRC is not a MAC: from the cookie of the SYN-ACK sent to its own address, an attacker computes the "
        "cookie of a spoofed source without the key (proofs/cookie.py), and that source is whitelisted and "
        "load-balanced. SYN authentication assumes an off-path attacker."
    )
    return Trace(Config(syn_auth=True, learn_delay_bound=100), {VIP: (Dip(parse_ip("10.0.1.10"), 8080),)}, events,
                 "cookie-forgery", description, "fail")  # fmt: skip


def refute_secrecy() -> tuple[Outcome, Trace]:
    """The secrecy assumption is needed: the forgery trace whitelists a spoofed source on the shipped model."""
    start = time.perf_counter()
    trace = forgery_trace()
    spoofed = [f for f in verdict_of(trace).violations if f.kind == "spoofed"]
    detail = (f"one seen cookie forged another: spoofed {spoofed[0].ft.src_ip:#x} reached a DIP" if spoofed
              else "the forgery was refused")  # fmt: skip
    outcome = Outcome("SYN cookie is not a MAC: an owned address's cookie forges a spoofed one",
                      UNSAFE if spoofed else SAFE, time.perf_counter() - start, detail=detail)  # fmt: skip
    return outcome, trace
