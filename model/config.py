"""Compile-time and control-plane parameters: the one source of truth.

The P4 build takes its constants from ``Config.p4_constants()`` so that the
model and the compiled program cannot disagree about widths and sizes.
"""

from __future__ import annotations

import reprlib
from dataclasses import asdict, dataclass, fields

MAX_STAGES = 8
MAX_BLOOM_HASHES = 4


class ConfigError(ValueError):
    """A configuration that no SilkRoad switch could have."""


@dataclass(frozen=True)
class Config:
    digest_bits: int = 24
    version_bits: int = 6
    stages: int = 4
    buckets_per_stage: int = 4096
    slots_per_bucket: int = 4
    bloom_bits: int = 2048
    bloom_hashes: int = 3
    epoch_bits: int = 8
    transit_slots: int = 1
    """TransitTable regions, one per update in progress. Updates of different VIPs
    can only overlap in different slots: sharing cells, one VIP's recording would
    overwrite another's epoch and make it miss a recorded connection."""
    syn_auth: bool = False
    cookie_key: int = 0x5EED_C0DE
    idle_timeout: int = 10_000_000
    """Ticks (µs) without a packet after which a ConnTable entry is expired."""
    teardown_grace: int = 1_000_000
    """Ticks after a FIN/RST during which late packets still belong to the connection."""
    learn_delay_bound: int = 1_000
    """Ticks within which a learn event reaches the CPU; a later one counts as lost."""
    cuckoo_depth: int = 4
    """Longest chain of moves the CPU tries before an insertion fails."""
    vip_capacity: int = 1024
    """VIPTable entries: the most VIPs a trace may have."""
    dip_pool_capacity: int = 65536
    """DIPPoolTable entries: the DIPs of every live (VIP, version) pool together. DIPPoolSize (one entry
    per live pool) has the same size, since every pool holds at least one DIP."""
    whitelist_capacity: int = 65536
    """Whitelist entries: the most sources SYN authentication can have proven at once."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            expected = bool if f.type in ("bool", bool) else int
            if type(value) is not expected:
                raise ConfigError(f"config field {f.name!r} must be {expected.__name__}, got {reprlib.repr(value)}")
        self._check_range("digest_bits", 1, 32)
        self._check_range("version_bits", 2, 16)
        self._check_range("stages", 1, MAX_STAGES)
        self._check_range("buckets_per_stage", 1, 1 << 16)
        self._check_range("slots_per_bucket", 1, 64)
        self._check_range("bloom_bits", 1, 1 << 16)
        self._check_range("bloom_hashes", 1, MAX_BLOOM_HASHES)
        self._check_range("epoch_bits", 2, 16)
        self._check_range("transit_slots", 1, 8)
        self._check_range("cookie_key", 0, (1 << 32) - 1)
        self._check_range("idle_timeout", 1, 1 << 62)
        self._check_range("teardown_grace", 0, 1 << 62)
        self._check_range("learn_delay_bound", 0, 1 << 62)
        self._check_range("cuckoo_depth", 0, 64)
        self._check_range("vip_capacity", 1, 1 << 16)
        self._check_range("dip_pool_capacity", 1, 1 << 20)
        self._check_range("whitelist_capacity", 1, 1 << 20)
        if self.teardown_grace < self.learn_delay_bound:
            raise ConfigError(
                f"teardown_grace ({self.teardown_grace}) must be at least learn_delay_bound "
                f"({self.learn_delay_bound}): a SYN reusing a closing connection must reach the CPU "
                "before its entry goes"
            )
        if self.idle_timeout < self.learn_delay_bound:
            raise ConfigError(
                f"idle_timeout ({self.idle_timeout}) must be at least learn_delay_bound "
                f"({self.learn_delay_bound}): an entry a packet hit must outlive that packet's learn event"
            )

    def _check_range(self, name: str, low: int, high: int) -> None:
        # version_bits >= 2 because an update holds an old and a new version at once.
        value = getattr(self, name)
        if not low <= value <= high:
            raise ConfigError(f"config field {name!r} = {value} is out of range [{low}, {high}]")

    @property
    def versions(self) -> int:
        return 1 << self.version_bits

    @property
    def epochs(self) -> int:
        return 1 << self.epoch_bits

    @property
    def max_pool_size(self) -> int:
        """The P4 program keeps a pool's size in 16 bits, and the pool must fit in DIPPoolTable."""
        return min(0xFFFF, self.dip_pool_capacity)

    @property
    def conn_capacity(self) -> int:
        return self.stages * self.buckets_per_stage * self.slots_per_bucket

    def to_dict(self) -> dict[str, int | bool]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Config:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            named = ", ".join(reprlib.repr(name) for name in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise ConfigError(f"unknown config field(s) {named}; known: {', '.join(sorted(known))}")
        return cls(**data)  # type: ignore[arg-type]

    def p4_constants(self) -> dict[str, int]:
        """The ``#define``s the P4 program is compiled with."""
        return {
            "DIGEST_BITS": self.digest_bits,
            "VERSION_BITS": self.version_bits,
            "STAGES": self.stages,
            "BUCKETS_PER_STAGE": self.buckets_per_stage,
            "SLOTS_PER_BUCKET": self.slots_per_bucket,
            "BLOOM_BITS": self.bloom_bits,
            "BLOOM_HASHES": self.bloom_hashes,
            "EPOCH_BITS": self.epoch_bits,
            "TRANSIT_SLOTS": self.transit_slots,
            "SYN_AUTH": int(self.syn_auth),
            "COOKIE_KEY": self.cookie_key,
            "VIP_CAPACITY": self.vip_capacity,
            "DIP_POOL_CAPACITY": self.dip_pool_capacity,
            "WHITELIST_CAPACITY": self.whitelist_capacity,
        }
