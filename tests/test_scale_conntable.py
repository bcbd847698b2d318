"""The compact ConnTable against the reference model: same hashes, same lookup semantics."""

from __future__ import annotations

import numpy as np
import pytest

from model import events as ev
from model.config import Config
from model.dataplane import DataPlane
from model.hashing import HashPlan
from model.switch import Switch
from model.types import PROTO_TCP, PROTO_UDP, Dip, FiveTuple, Vip, parse_ip
from scale.conntable import MISS, BulkCpu, ConnTable, Geometry, GeometryError
from scale.flows import Flows, bloom_cells, buckets, digests, dip_hashes

VIPS = (Vip(parse_ip("20.0.0.1"), 80, PROTO_TCP), Vip(parse_ip("20.0.0.2"), 53, PROTO_UDP))
POOL = (Dip(parse_ip("10.0.1.10"), 8080),)


def test_vectorised_hashes_equal_the_models_on_random_flows() -> None:
    rng = np.random.default_rng(7)
    flows = Flows.random(rng, 4000)
    config = Config(digest_bits=20, stages=8, buckets_per_stage=40_000, bloom_bits=3000, bloom_hashes=4)
    plan = HashPlan(config)
    digest = digests(flows, config.digest_bits)
    bucket = buckets(flows, config.stages, config.buckets_per_stage)
    bloom = bloom_cells(flows, config.bloom_hashes, config.bloom_bits)
    dip = dip_hashes(flows)
    for i, ft in enumerate(flows.five_tuples()):
        h = plan.flow(ft)
        assert (h.digest, h.buckets, h.bloom, h.dip_hash) == (
            int(digest[i]), tuple(bucket[:, i].tolist()), tuple(bloom[:, i].tolist()), int(dip[i])
        ), ft


def _workload(config: Config, members: int, strangers: int, seed: int) -> tuple[Flows, np.ndarray, BulkCpu, Flows]:
    rng = np.random.default_rng(seed)
    flows = Flows.random(rng, members + strangers, VIPS)
    versions = rng.integers(0, config.versions, members).astype(np.uint8)
    member_flows, stranger_flows = flows.take(slice(0, members)), flows.take(slice(members, None))
    geometry = Geometry.from_config(config)
    cpu = BulkCpu(
        geometry,
        digests(member_flows, config.digest_bits),
        buckets(member_flows, config.stages, config.buckets_per_stage),
        versions,
    )
    return member_flows, versions, cpu, stranger_flows


def _reference(config: Config, flows: Flows, versions: np.ndarray) -> Switch:
    """The model's CPU learns the same connections, in the same order, with the same versions."""
    switch = Switch.boot(config, dict.fromkeys(VIPS, POOL))
    for t, (ft, version) in enumerate(zip(flows.five_tuples(), versions.tolist(), strict=True)):
        switch.dataplane.learn(t, "new", ft, version)
    switch.step(len(flows), ev.CpuLearns(len(flows)))
    return switch


def _model_lookup(dataplane: DataPlane, ft: FiveTuple) -> tuple[int, int]:
    found = dataplane.lookup(dataplane.plan.flow(ft))
    return (MISS, MISS) if found is None else (found[0], found[1].version)


def _compact_lookup(table: ConnTable, config: Config, flows: Flows) -> list[tuple[int, int]]:
    stage, version = table.lookup(digests(flows, config.digest_bits),
                                  buckets(flows, config.stages, config.buckets_per_stage))  # fmt: skip
    return list(zip(stage.tolist(), version.tolist(), strict=True))


def _as_dataplane(table: ConnTable, config: Config) -> DataPlane:
    """The compact table's entries written into the reference data plane."""
    dataplane = DataPlane.empty(config)
    for stage, bucket, digest, version in table.entries():
        dataplane.insert_conn(stage, bucket, digest, version, 0)
    return dataplane


def test_first_fit_places_exactly_like_the_reference_cpu() -> None:
    """Without aliases or cuckoo moves the vectorised first fit is the reference's one-by-one
    first fit: the same entries, so every lookup agrees, members' and strangers'."""
    config = Config(digest_bits=24, stages=4, buckets_per_stage=256, slots_per_bucket=4)
    flows, versions, cpu, strangers = _workload(config, 1800, 3000, seed=1)
    assert not cpu.insert(np.arange(len(flows))).size
    assert cpu.stats.moves == 0 and not cpu.aliased.any(), "precondition: the first-fit regime"
    switch = _reference(config, flows, versions)
    reference = {(s, b, d, e.version) for s, table in enumerate(switch.dataplane.conn) for (b, d), e in table.items()}
    assert set(cpu.table.entries()) == reference
    for batch in (flows, strangers):
        assert _compact_lookup(cpu.table, config, batch) == [_model_lookup(switch.dataplane, ft)
                                                             for ft in batch.five_tuples()]  # fmt: skip


def test_high_load_small_digests_keep_the_lookup_semantics_and_every_lookup_safe() -> None:
    """8-bit digests and 85% load: many aliases and cuckoo moves, so placements differ from the
    reference's. Both must give every placed connection its own version (a connection neither could
    place may be captured by an alias that was there before it was learned: the residual digest risk);
    the compact lookup must mean exactly ``DataPlane.lookup``."""
    config = Config(digest_bits=8, stages=4, buckets_per_stage=64, slots_per_bucket=4, cuckoo_depth=4)
    flows, versions, cpu, strangers = _workload(config, 870, 3000, seed=2)
    failed = cpu.insert(np.arange(len(flows)))
    assert cpu.aliased.sum() > 100 and cpu.stats.moves > 0, "precondition: aliases and moves happen"
    switch = _reference(config, flows, versions)

    compact = _compact_lookup(cpu.table, config, flows)
    model = [_model_lookup(switch.dataplane, ft) for ft in flows.five_tuples()]
    placed_in_model = {ft for ft, known in switch.cpu.known.items() if known.stage is not None}
    for i, ft in enumerate(flows.five_tuples()):
        own = int(versions[i])
        compact_placed = i not in set(failed.tolist())
        if compact_placed:
            assert compact[i][1] == own
        if ft in placed_in_model:
            assert model[i][1] == own
    assert len(failed) < len(flows) // 10 and len(placed_in_model) > len(flows) * 9 // 10

    as_model = _as_dataplane(cpu.table, config)
    for batch in (flows, strangers):
        expected = [_model_lookup(as_model, ft) for ft in batch.five_tuples()]
        assert _compact_lookup(cpu.table, config, batch) == expected
    hits = sum(1 for stage, _ in _compact_lookup(cpu.table, config, strangers) if stage != MISS)
    assert hits > 0, "8-bit digests at 85% load must give strangers false hits"


def test_table_invariants_hold_after_bulk_insertion() -> None:
    config = Config(digest_bits=10, stages=3, buckets_per_stage=128, slots_per_bucket=2)
    _, _, cpu, _ = _workload(config, 700, 0, seed=3)
    cpu.insert(np.arange(400))
    cpu.insert(np.arange(400, 700))
    table = cpu.table
    valid = (table.cells >> np.uint32(31)).astype(bool)
    assert (valid.sum(axis=2) == table.fill).all()
    assert (valid == (cpu.owner >= 0)).all()
    for stage in range(config.stages):
        keys = [(b, d) for s, b, d, _ in table.entries() if s == stage]
        assert len(keys) == len(set(keys))
    placed = np.nonzero(cpu.stage_of >= 0)[0]
    assert (cpu.lookup(placed)[1] == cpu.versions[placed]).all()


def test_bad_geometry_is_refused_with_the_reason() -> None:
    with pytest.raises(GeometryError, match="at most 31"):
        Geometry(4, 1024, 4, digest_bits=28, version_bits=6)
    with pytest.raises(GeometryError, match="stages"):
        Geometry(9, 1024, 4)
