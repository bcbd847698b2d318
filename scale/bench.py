"""``silkcheck scale-bench``: 10M connections into the compact ConnTable, with figures.

The baseline is the reference model's CPU (``model.cpu.Cpu``) placing a sample
of connections at the same load, in the same process.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from model.config import Config
from model.cpu import CpuLog
from model.switch import Switch
from model.types import PROTO_TCP, Dip, Vip, parse_ip
from scale.analyze import false_hit_theory
from scale.conntable import BulkCpu, Geometry
from scale.flows import Flows, buckets, digests

T = TypeVar("T")
BENCH_VIPS = tuple(Vip(parse_ip("20.0.0.0") + i, 80 + i % 2 * 363, PROTO_TCP) for i in range(16))


def baseline_config(sample: int, load: float, stages: int, slots: int, digest_bits: int) -> Config:
    """The model's config for the baseline: ``sample`` connections at ``load`` (ConfigError if the
    model cannot have that table)."""
    geometry = Geometry.for_load(sample, load, stages, slots)
    return Config(digest_bits=digest_bits, stages=stages, slots_per_bucket=slots,
                  buckets_per_stage=geometry.buckets_per_stage)  # fmt: skip


def scale_geometry(connections: int, load: float, stages: int, slots: int, digest_bits: int,
                   version_bits: int) -> Geometry:  # fmt: skip
    """The compact table sized for ``connections`` at ``load`` (GeometryError if it cannot be)."""
    # Round the bucket count down: the table is then at least ``load`` full.
    return Geometry(stages, int(connections / (load * stages * slots)), slots, digest_bits, version_bits)


def reference_rate(config: Config, sample: int, seed: int) -> float:
    """Connections per second the model's CPU places (learn + cuckoo + per-write checks)."""
    rng = np.random.default_rng(seed)
    flows = Flows.random(rng, sample, BENCH_VIPS)
    switch = Switch.boot(config, dict.fromkeys(BENCH_VIPS, (Dip(parse_ip("10.0.0.1"), 80),)))
    start = time.perf_counter()
    for t, ft in enumerate(flows.five_tuples()):
        switch.dataplane.learn(t, "new", ft, 0)
    switch.cpu.learn(sample, None, CpuLog())
    return sample / (time.perf_counter() - start)


def _timed(label: str, action: Callable[[], T]) -> tuple[T, float]:
    print(f"  {label} ...", end="", flush=True)
    start = time.perf_counter()
    result = action()
    elapsed = time.perf_counter() - start
    print(f" {elapsed:.1f} s", flush=True)
    return result, elapsed


def run_scale_bench(geometry: Geometry, connections: int, seed: int, baseline: Config, sample: int) -> bool:
    """``connections`` into ``geometry``; the baseline is the model (``baseline``) placing ``sample``."""
    stages, slots = geometry.stages, geometry.slots_per_bucket
    digest_bits, version_bits = geometry.digest_bits, geometry.version_bits
    print(f"ConnTable: {stages} stages x {geometry.buckets_per_stage:,} buckets x {slots} slots = "
          f"{geometry.capacity:,} slots; {digest_bits}-bit digest, {version_bits}-bit version")  # fmt: skip
    rng = np.random.default_rng(seed)
    flows, _ = _timed(f"{connections:,} random connections to {len(BENCH_VIPS)} VIPs",
                      lambda: Flows.random(rng, connections, BENCH_VIPS))  # fmt: skip
    strangers = Flows.random(rng, connections, BENCH_VIPS)
    versions = rng.integers(0, 1 << version_bits, connections).astype(np.uint8 if version_bits <= 8 else np.uint16)
    (digest, bucket), hash_s = _timed(
        "hashing (crc32 digest + one crc32 per stage, vectorised)",
        lambda: (digests(flows, digest_bits), buckets(flows, stages, geometry.buckets_per_stage)),
    )
    cpu, index_s = _timed("CPU shadow + alias index", lambda: BulkCpu(geometry, digest, bucket, versions))
    failed, insert_s = _timed("bulk insertion", lambda: cpu.insert(np.arange(connections)))
    members = np.arange(connections)
    (_, found), member_s = _timed("lookup of every member", lambda: cpu.lookup(members))
    stranger_digest = digests(strangers, digest_bits)
    stranger_bucket = buckets(strangers, stages, geometry.buckets_per_stage)
    (stranger_stage, _), stranger_s = _timed(f"lookup of {connections:,} non-members",
                                             lambda: cpu.table.lookup(stranger_digest, stranger_bucket))  # fmt: skip
    placed = cpu.stage_of >= 0
    wrong = int((found[placed] != versions[placed]).sum())
    base, _ = _timed(f"baseline: the model's CPU placing {sample:,} connections",
                     lambda: reference_rate(baseline, sample, seed))  # fmt: skip

    inserted = connections - len(failed)
    total_s = hash_s + index_s + insert_s
    rate = connections / total_s
    table_bytes = cpu.table.nbytes / inserted
    print()
    print(f"inserted:   {inserted:,} of {connections:,} ({len(failed):,} failed); load factor {cpu.table.load:.4f}")
    print(f"placement:  {cpu.stats.first_fit:,} first fit, {cpu.stats.one_step:,} by one-move rounds, "
          f"{cpu.stats.one_by_one:,} one by one; {cpu.stats.moves:,} cuckoo moves; "
          f"{int(cpu.aliased.sum()):,} aliased flows")  # fmt: skip
    print(f"time:       {total_s:.1f} s to insert (hash {hash_s:.1f} + index {index_s:.1f} + place {insert_s:.1f})")
    print(f"insertions: {rate:,.0f}/s  (placement alone {connections / insert_s:,.0f}/s); "
          f"model CPU baseline {base:,.0f}/s -> {rate / base:,.0f}x")  # fmt: skip
    per_stage = cpu.table.fill.sum(axis=1, dtype=np.int64).tolist()
    expected = connections * false_hit_theory(digest_bits, geometry.buckets_per_stage, per_stage)
    by_stage = "/".join(str(n) for n in np.bincount(stranger_stage[stranger_stage >= 0], minlength=stages).tolist())
    print(f"lookups:    {connections / member_s:,.0f}/s members, {connections / stranger_s:,.0f}/s non-members; "
          f"{int((stranger_stage >= 0).sum()):,} false hits (by stage {by_stage}; independent hashes would give "
          f"{expected:,.1f})")  # fmt: skip
    print(f"memory:     table {table_bytes:.2f} bytes/connection (uint32 cells + fill counts); hardware "
          f"{geometry.hardware_bits_per_slot / cpu.table.load / 8:.2f} bytes/connection "
          f"({geometry.hardware_bits_per_slot} bits a slot); CPU shadow {cpu.nbytes / inserted:.1f} bytes/connection")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS:   {peak:,.0f} MiB (flows, hashes, table, shadow)")
    print(f"check:      {wrong:,} members resolve to a version other than their own")
    return wrong == 0 and not len(failed)
