"""``silkcheck analyze`` in a reduced form: measured rates agree with theory within statistical error."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from statistics import NormalDist
from unittest import mock

import numpy as np

import scale.flows
from scale.analyze import (
    ANALYZE_VIPS,
    RandomSource,
    Rates,
    Results,
    Sweep,
    bloom_standard_error,
    load_threshold,
    measure_false_hits,
    offline_optimum,
    run_analyze,
)

# Stages 0..2 only: stage 3 of model.hashing is correlated with the digest (see the last test).
REDUCED = Sweep(digest_bits=(8, 11), stages=(1, 2, 3), slots=(4,), loads=(0.9,), bloom_bits=(1024,),
                bloom_hashes=(2, 3), latencies_ms=(5.0, 20.0), capacity=8192, lookups=100_000, bloom_trials=50,
                bloom_queries=200_000)  # fmt: skip
FAMILY_ERROR = 1e-3


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_reduced_analyze_agrees_with_theory_within_statistical_error(tmp_path: Path) -> None:
    source = RandomSource(np.random.default_rng(11), ANALYZE_VIPS, syn_share=0.9)
    run_analyze(REDUCED, Rates(), source, tmp_path, seed=11)
    for name in ("load", "false_hits", "bloom"):
        assert (tmp_path / f"{name}.csv").stat().st_size > 0
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    false_hits, bloom = _rows(tmp_path / "false_hits.csv"), _rows(tmp_path / "bloom.csv")
    assert len(false_hits) == 6 and len(bloom) == 4
    # Bonferroni: every row within z standard errors, at a family-wise error of 0.1%.
    z = NormalDist().inv_cdf(1 - FAMILY_ERROR / (2 * (len(false_hits) + len(bloom))))
    for row in false_hits:
        p, lookups = float(row["theory_rate"]), int(row["lookups"])
        assert int(row["false_hits"]) > 0
        tolerance = z * math.sqrt(p * (1 - p) / lookups)
        assert abs(float(row["measured_rate"]) - p) <= tolerance, row
        assert int(row["syn_caught"]) <= int(row["false_hits"])
    for row in bloom:
        p = float(row["theory_rate"])
        se = bloom_standard_error(1024, int(row["hashes"]), int(row["recorded"]), int(row["trials"]),
                                  int(row["queries"]))  # fmt: skip
        assert se >= math.sqrt(p * (1 - p) / int(row["queries"]))
        assert abs(float(row["measured_rate"]) - p) <= z * se, row
    for row in _rows(tmp_path / "load.csv"):
        assert 0 < float(row["measured_load"]) <= float(row["offline_load"]) <= 1


def test_the_offline_optimum_is_a_maximum_matching_of_flows_to_slots() -> None:
    # Three flows that all choose bucket 0 of both stages, one slot each: two fit.
    assert offline_optimum(np.zeros((2, 3), dtype=np.uint32), slots=1) == 2
    # Flows 0, 1, 2 choose (0, 0), (0, 1), (1, 1) in the two stages: each gets a slot of its own.
    assert offline_optimum(np.array([[0, 0, 1], [0, 1, 1]], dtype=np.uint32), slots=1) == 3
    # One stage, two buckets of two slots, five flows in bucket 0: two fit there, none elsewhere.
    assert offline_optimum(np.zeros((1, 5), dtype=np.uint32), slots=2) == 2


def test_load_threshold_matches_the_known_cuckoo_thresholds() -> None:
    # Published thresholds: 2 choices x 1 slot = 1/2, 3 x 1 = 0.9179, 4 x 1 = 0.9768, 2 x 2 = 0.8970.
    for stages, slots, known in ((2, 1, 0.5), (3, 1, 0.9179), (4, 1, 0.9768), (2, 2, 0.8970)):
        assert abs(load_threshold(stages, slots) - known) < 5e-4
    assert math.isnan(load_threshold(1, 4))


def test_analyze_flags_a_stage_hash_that_is_a_byte_shift_of_the_digest_hash() -> None:
    """CRC is linear: a stage hashing (proto, src_ip, dst_ip, src_port, dst_port) computes, for two flows
    of one protocol, the digest's CRC difference shifted by a byte. With a power-of-two bucket count the
    bucket and the digest then share bits and false hits exceed theory; analyze must say so. (This is
    what model.hashing's stage 3 does; here it is put in stage 0.)"""
    shifted = (("proto", "src_ip", "dst_ip", "src_port", "dst_port"), *scale.flows.STAGE_ORDERS[1:])
    sweep = Sweep(digest_bits=(8,), stages=(1,), slots=(4,), loads=(0.9,), bloom_bits=(), bloom_hashes=(),
                  latencies_ms=(), capacity=8192, lookups=100_000, bloom_trials=1, bloom_queries=1)  # fmt: skip
    results = Results()
    with mock.patch.object(scale.flows, "STAGE_ORDERS", shifted):
        measure_false_hits(sweep, RandomSource(np.random.default_rng(5), ANALYZE_VIPS, 0.9), Rates(),
                           np.random.default_rng(5), results)  # fmt: skip
    (row,) = results.false_hit
    p, lookups = float(row["theory_rate"]), int(row["lookups"])
    z = NormalDist().inv_cdf(1 - FAMILY_ERROR / 2)
    assert float(row["measured_rate"]) - p > z * math.sqrt(p * (1 - p) / lookups), row



def test_a_sweep_no_switch_could_have_is_refused_on_the_command_line(capsys: object) -> None:
    from silkcheck.cli import main

    for option, value, message in [("--stages", "9", "9 is out of range [1, 8]"),
                                   ("--bloom-hashes", "5", "5 is out of range [1, 4]"),
                                   ("--loads", "1.5", "1.5 is out of range (0, 1]"),
                                   ("--latencies-ms", "nan", "'nan' is not a finite number"),
                                   ("--digest-bits", "30", "analyze: digest_bits 30 is out of range [1, 25]")]:
        assert main(["analyze", "--quick", option, value]) == 2
        assert message in capsys.readouterr().err  # type: ignore[attr-defined]
