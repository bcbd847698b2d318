"""``silkcheck analyze``: what digest widths, stages, slots and Bloom sizes cost, measured
on the compact ConnTable with the model's own hashes, next to what theory expects.

Experiments (each row of the output is one design point):

``load``       the load factor reached before the first insertion failure (batches of
               0.5% of the capacity), against the asymptotic orientability threshold
               of S-choice cuckoo hashing with k-slot buckets (Fountoulakis, Khosla and
               Panagiotou): the unbounded-relocation limit a bounded search approaches;
               and the offline optimum for the same flows (a maximum matching of flows
               to bucket slots, networkx): how many of them any placement could hold.
``false-hit``  how often a non-member (a new connection's first packet) hits ConnTable.
               With per-stage entry counts N_s and B buckets, a random flow misses stage
               s with probability 1 - N_s/(B·2^d) (a bucket's digests are distinct), so
               p = 1 - Π_s (1 - N_s/(B·2^d)) ≈ 1 - (1 - 2^-d)^(S·k·load). A false hit by
               a TCP SYN is *caught* (learned as a collision); others are captured
               silently: the oracle's ``digest-alias``.
``bloom``      TransitTable false positives after recording n connections, n = new
               connections per second x the update window (insertion latency); theory
               (1 - e^(-kn/m))^k.

Each row also gives the PCC consequences at the given rates (DESIGN: ~1M new
connections/min per ToR, ~100 updates/min, ms insertion latency): silent digest
aliases per update, SYN-caught collisions per minute, new connections sent to the
old pool by Bloom false positives per update, and memory bits per connection.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from statistics import NormalDist
from typing import Protocol, TypeVar

import numpy as np

from model.hashing import BLOOM_ORDERS, STAGE_ORDERS
from model.types import PROTO_TCP, PROTO_UDP, Vip, parse_ip
from scale.conntable import BulkCpu, Geometry
from scale.flows import CRC32, Flows, buckets, digests

T = TypeVar("T")


@dataclass(frozen=True)
class Sweep:
    digest_bits: tuple[int, ...]
    stages: tuple[int, ...]
    slots: tuple[int, ...]
    loads: tuple[float, ...]
    bloom_bits: tuple[int, ...]
    bloom_hashes: tuple[int, ...]
    latencies_ms: tuple[float, ...]
    capacity: int
    """ConnTable slots in each experiment (65,536 is the model's default ConnTable). With small
    digests most flows share a key somewhere and are placed one by one, so this sets the time."""
    lookups: int
    """Non-member lookups per false-hit point."""
    bloom_trials: int
    bloom_queries: int
    """Non-member queries per Bloom point, spread over the trials (a fresh filter each)."""

    def problems(self, rates: Rates | None = None) -> list[str]:
        """What no switch (or no hash of the model) could have, one line each; with ``rates``, also
        Bloom points that would draw more flows than fit in memory."""
        ranges = [("digest_bits", 1, 25), ("stages", 1, len(STAGE_ORDERS)), ("slots", 1, 255),
                  ("bloom_bits", 1, 1 << 16), ("bloom_hashes", 1, len(BLOOM_ORDERS))]  # fmt: skip
        found = [f"{name} {value} is out of range [{low}, {high}]" for name, low, high in ranges
                 for value in getattr(self, name) if not low <= value <= high]  # fmt: skip
        found += [f"load {load} is not in (0, 1]" for load in self.loads if not 0 < load <= 1]
        found += [f"latency {ms} ms is not positive" for ms in self.latencies_ms if not ms > 0]
        if rates is not None:
            found += [f"latency {ms} ms at {rates.new_conns_per_min:g} new connections/min records "
                      f"{rates.new_conns_per_s * ms / 1000:,.0f} connections per Bloom trial: more than "
                      f"{MAX_DRAWN_FLOWS:,} flows over {self.bloom_trials} trials"
                      for ms in self.latencies_ms
                      if rates.new_conns_per_s * ms / 1000 * self.bloom_trials > MAX_DRAWN_FLOWS]  # fmt: skip
        return found


MAX_DRAWN_FLOWS = 50_000_000
"""Flows one Bloom latency point may draw (tens of bytes each, with their CRCs)."""
QUICK = Sweep((8, 12, 16), (2, 4), (2, 4), (0.5, 0.9), (1024, 2048), (1, 2, 3, 4), (2.0, 10.0, 30.0),
              capacity=16_384, lookups=200_000, bloom_trials=100, bloom_queries=400_000)  # fmt: skip
FULL = Sweep((8, 12, 16, 24), (2, 3, 4, 8), (1, 2, 4, 8), (0.5, 0.9, 0.95), (1024, 2048, 8192), (1, 2, 3, 4),
             (1.0, 2.0, 5.0, 10.0, 30.0), capacity=65_536, lookups=1_000_000, bloom_trials=400,
             bloom_queries=4_000_000)  # fmt: skip

ANALYZE_VIPS = (Vip(parse_ip("20.0.0.1"), 80, PROTO_TCP), Vip(parse_ip("20.0.0.1"), 443, PROTO_TCP),
                Vip(parse_ip("20.0.0.2"), 53, PROTO_UDP))  # fmt: skip
"""Random flows go to these unless ``--vip`` names others."""


@dataclass(frozen=True)
class Rates:
    new_conns_per_min: float = 1_000_000
    updates_per_min: float = 100
    version_bits: int = 6

    @property
    def new_conns_per_s(self) -> float:
        return self.new_conns_per_min / 60


class FlowSource(Protocol):
    name: str
    available: int | None
    """How many distinct flows it can give (None: any number)."""

    def draw(self, count: int) -> tuple[Flows, np.ndarray]:
        """Up to ``count`` distinct flows, and whether each opens with a TCP SYN."""
        ...


@dataclass
class RandomSource:
    """Clients with random addresses and ports to the given VIPs."""

    rng: np.random.Generator
    vips: Sequence[Vip]
    syn_share: float
    name: str = "random"
    available: int | None = None

    def draw(self, count: int) -> tuple[Flows, np.ndarray]:
        return Flows.random(self.rng, count, self.vips), self.rng.random(count) < self.syn_share


@dataclass
class CaptureSource:
    """The distinct flows of a capture, in a fresh random order each draw."""

    flows: Flows
    opens_with_syn: np.ndarray
    rng: np.random.Generator
    name: str = "capture"

    @property
    def available(self) -> int:
        return len(self.flows)

    def draw(self, count: int) -> tuple[Flows, np.ndarray]:
        pick = self.rng.permutation(len(self.flows))[:count]
        return self.flows.take(pick), self.opens_with_syn[pick]


# ---------------------------------------------------------------- theory


def _poisson_tail(mean: float, at_least: int) -> float:
    return 1 - math.exp(-mean) * sum(mean**j / math.factorial(j) for j in range(at_least))


def load_threshold(stages: int, slots: int) -> float:
    """Asymptotic maximum load of S-choice cuckoo hashing with k-slot buckets (NaN for one stage,
    where the first failure is a balls-into-bins overflow with no threshold)."""
    if stages < 2:
        return math.nan

    def excess(x: float) -> float:
        return x * _poisson_tail(x, slots) / _poisson_tail(x, slots + 1) - stages * slots

    low, high = 1e-9, 100.0
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (low, mid) if excess(mid) > 0 else (mid, high)
    x = (low + high) / 2
    return x / (stages * _poisson_tail(x, slots) ** (stages - 1)) / slots


def offline_optimum(flow_buckets: np.ndarray, slots: int) -> int:
    """The most of these flows any placement holds (``flow_buckets[stage, flow]``, ``slots`` per
    bucket), with unbounded relocation and free choice of which to leave out: a maximum bipartite
    matching of flows to bucket slots (Hopcroft-Karp). The finite-size counterpart of
    ``load_threshold``, for the very flows the bounded cuckoo search was given. Digest clashes (two
    flows with one key in one bucket) are ignored: at 2^-d per pair they change no row."""
    import networkx as nx

    stages, count = flow_buckets.shape
    graph = nx.Graph()
    flows = [("flow", i) for i in range(count)]
    graph.add_nodes_from(flows)
    graph.add_edges_from((("flow", i), (stage, int(flow_buckets[stage, i]), slot))
                         for i in range(count) for stage in range(stages) for slot in range(slots))  # fmt: skip
    matching = nx.bipartite.hopcroft_karp_matching(graph, top_nodes=flows)
    return sum(1 for flow in flows if flow in matching)


def false_hit_theory(digest_bits: int, buckets_per_stage: int, per_stage: Sequence[int]) -> float:
    miss = 1.0
    for entries in per_stage:
        miss *= 1 - entries / (buckets_per_stage * 2**digest_bits)
    return 1 - miss


def bloom_theory(bits: int, hashes: int, recorded: int) -> float:
    return (1 - math.exp(-hashes * recorded / bits)) ** hashes


def bloom_standard_error(bits: int, hashes: int, recorded: int, trials: int, queries: int) -> float:
    """Of the measured rate: binomial over the queries, plus the spread of the filters' fill
    (the variance of the empty cells after ``hashes * recorded`` throws, by the delta method)."""
    p = bloom_theory(bits, hashes, recorded)
    throws = hashes * recorded
    empty = bits * (1 - 1 / bits) ** throws
    empty_var = empty + bits * (bits - 1) * (1 - 2 / bits) ** throws - empty**2
    fill = 1 - empty / bits
    filter_var = (hashes * fill ** (hashes - 1)) ** 2 * max(empty_var, 0.0) / bits**2
    return math.sqrt(p * (1 - p) / queries + filter_var / trials)


def critical_z(tests: int, family_error: float = 1e-3) -> float:
    """Two-sided z bound for ``tests`` comparisons at a family-wise error rate (Bonferroni)."""
    return NormalDist().inv_cdf(1 - family_error / (2 * max(tests, 1)))


def judge_rows(rows: list[dict[str, object]], standard_error: list[float], z_bound: float) -> None:
    """Add each row's z score and whether it agrees with theory within ``z_bound`` standard errors."""
    for row, se in zip(rows, standard_error, strict=True):
        gap = float(row["measured_rate"]) - float(row["theory_rate"])  # type: ignore[arg-type]
        z = gap / se if se > 0 else (0.0 if gap == 0 else math.copysign(math.inf, gap))
        row["z"] = round(z, 2)
        row["vs_theory"] = "ok" if abs(z) <= z_bound else ("ABOVE" if z > 0 else "BELOW")


# ---------------------------------------------------------------- experiments


@dataclass
class Results:
    load: list[dict[str, object]] = field(default_factory=list)
    false_hit: list[dict[str, object]] = field(default_factory=list)
    bloom: list[dict[str, object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _progress(points: list[T]) -> Iterator[T]:
    """Yield the design points, showing which one is being measured."""
    for number, point in enumerate(points, 1):
        print(f" {number}/{len(points)}", end="\b" * (len(str(number)) + len(str(len(points))) + 2), flush=True)
        yield point


def _capacity(limit: int, source: FlowSource, flows_per_slot: float) -> int:
    """``limit`` slots, or fewer when the source cannot give ``flows_per_slot`` flows for each."""
    return limit if source.available is None else min(limit, int(source.available / flows_per_slot))


def measure_load(sweep: Sweep, source: FlowSource, results: Results) -> None:
    digest_bits = max(sweep.digest_bits)
    for stages, slots in _progress(list(product(sweep.stages, sweep.slots))):
        capacity = _capacity(sweep.capacity, source, 1.0)
        geometry = Geometry(stages, max(1, capacity // (stages * slots)), slots, digest_bits)
        flows, _ = source.draw(geometry.capacity)
        # One version for all: an alias then never makes a placement unsafe, so the first failure
        # is the table's capacity, not a connection captured before it was learned.
        flow_buckets = buckets(flows, stages, geometry.buckets_per_stage)
        cpu = BulkCpu(geometry, digests(flows, digest_bits), flow_buckets, np.zeros(len(flows), dtype=np.uint8))
        batch = max(1, geometry.capacity // 200)
        reached = 0
        for start in range(0, len(flows), batch):
            if len(cpu.insert(np.arange(start, min(start + batch, len(flows))))):
                break
            reached = cpu.table.connections
        else:
            results.notes.append(f"load S={stages} k={slots}: the {len(flows)} flows ran out before a failure")
        results.load.append({
            "stages": stages, "slots": slots, "capacity": geometry.capacity,
            "measured_load": reached / geometry.capacity,
            "offline_load": offline_optimum(flow_buckets, slots) / geometry.capacity,
            "theory_load": load_threshold(stages, slots),
            "cuckoo_moves": cpu.stats.moves,
        })  # fmt: skip


def measure_false_hits(sweep: Sweep, source: FlowSource, rates: Rates, rng: np.random.Generator,
                       results: Results) -> None:  # fmt: skip
    for digest_bits, stages, slots, load in _progress(list(product(sweep.digest_bits, sweep.stages, sweep.slots,
                                                                   sweep.loads))):  # fmt: skip
        capacity = _capacity(sweep.capacity, source, 2 * load)
        geometry = Geometry(stages, max(1, capacity // (stages * slots)), slots, digest_bits,
                            rates.version_bits)  # fmt: skip
        members = int(load * geometry.capacity)
        if source.available is not None:
            members = min(members, source.available // 2)
        flows, syn = source.draw(members + sweep.lookups if source.available is None else source.available)
        member_flows, strangers = flows.take(slice(0, members)), flows.take(slice(members, None))
        syn = syn[members:]
        cpu = BulkCpu(geometry, digests(member_flows, digest_bits),
                      buckets(member_flows, stages, geometry.buckets_per_stage),
                      rng.integers(0, 1 << rates.version_bits, members).astype(np.uint16))  # fmt: skip
        cpu.insert(np.arange(members))
        if not len(strangers):
            results.notes.append(f"false-hit d={digest_bits} S={stages} k={slots}: no flows to look up")
            continue
        stage_hit, _ = cpu.table.lookup(digests(strangers, digest_bits),
                                        buckets(strangers, stages, geometry.buckets_per_stage))  # fmt: skip
        hits = stage_hit >= 0
        per_stage = cpu.table.fill.sum(axis=1, dtype=np.int64).tolist()
        theory = false_hit_theory(digest_bits, geometry.buckets_per_stage, per_stage)
        measured = float(hits.mean())
        syn_share = float(syn.mean())
        uncaught = float((hits & ~syn).mean())
        achieved = cpu.table.load
        by_stage = np.bincount(stage_hit[hits], minlength=stages).tolist()
        results.false_hit.append({
            "digest_bits": digest_bits, "stages": stages, "slots": slots,
            "buckets": geometry.buckets_per_stage, "load": round(achieved, 4),
            "lookups": len(strangers), "false_hits": int(hits.sum()),
            "hits_by_stage": "/".join(str(h) for h in by_stage),
            "measured_rate": measured, "theory_rate": theory,
            "syn_caught": int((hits & syn).sum()), "theory_syn_caught_rate": theory * syn_share,
            "alias_per_update": rates.new_conns_per_min * uncaught / rates.updates_per_min,
            "theory_alias_per_update":
                rates.new_conns_per_min * theory * (1 - syn_share) / rates.updates_per_min,
            "collisions_per_min": rates.new_conns_per_min * measured * syn_share,
            "hardware_bits_per_conn": geometry.hardware_bits_per_slot / max(achieved, 1e-9),
        })  # fmt: skip


def measure_bloom(sweep: Sweep, source: FlowSource, rates: Rates, results: Results) -> None:
    hashes_needed = max(sweep.bloom_hashes)
    per_trial = max(1, sweep.bloom_queries // sweep.bloom_trials)
    for latency in _progress(list(sweep.latencies_ms)):
        recorded = max(1, round(rates.new_conns_per_s * latency / 1000))
        if source.available is not None and recorded >= source.available:
            results.notes.append(f"bloom {latency} ms: {recorded} recorded connections, the source has "
                                 f"{source.available} flows")  # fmt: skip
            continue
        trials = []  # per trial: (the recorded flows' CRCs, the queries' CRCs), a fresh filter each
        for _ in range(sweep.bloom_trials):
            flows, _ = source.draw(recorded + per_trial)
            crc = np.stack([CRC32(flows.byte_rows(BLOOM_ORDERS[j]), len(flows)) for j in range(hashes_needed)])
            trials.append((crc[:, :recorded], crc[:, recorded:]))
        for bits in sweep.bloom_bits:
            for hashes in sweep.bloom_hashes:
                positives = asked = 0
                for members, queries in trials:
                    cells = np.zeros(bits, dtype=bool)
                    cells[(members[:hashes] % np.uint32(bits)).ravel()] = True
                    positives += int(cells[queries[:hashes] % np.uint32(bits)].all(axis=0).sum())
                    asked += queries.shape[1]
                theory = bloom_theory(bits, hashes, recorded)
                window_conns = rates.new_conns_per_s * latency / 1000
                results.bloom.append({
                    "bloom_bits": bits, "hashes": hashes, "latency_ms": latency, "recorded": recorded,
                    "trials": len(trials), "queries": asked, "false_positives": positives,
                    "measured_rate": positives / asked, "theory_rate": theory,
                    "misdirected_per_update": window_conns * positives / asked,
                    "theory_misdirected_per_update": window_conns * theory,
                })  # fmt: skip


# ---------------------------------------------------------------- output


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}"
    return str(value)


def _print_rows(title: str, rows: list[dict[str, object]]) -> None:
    from silkcheck.report import table

    if not rows:
        return
    print(f"== {title}")
    print(table(list(rows[0]), [[_fmt(v) for v in row.values()] for row in rows]))
    print()


def _write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    if not rows:
        return
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _measured_vs_theory(rows: list[dict[str, object]], series: Callable[[dict[str, object]], str], x_key: str,
                        xlabel: str, ylabel: str, title: str, path: Path) -> Path:  # fmt: skip
    """One line (theory) and dots (measured) per series, log scale; zero measurements are not drawn."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    grouped: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        grouped.setdefault(series(row), []).append(row)
    for label, members in sorted(grouped.items()):
        x = [r[x_key] for r in members]
        line = ax.semilogy(x, [max(float(r["theory_rate"]), 1e-12) for r in members], "-", alpha=0.6)[0]  # type: ignore[arg-type]
        ax.semilogy(x, [float(r["measured_rate"]) or np.nan for r in members], "o",  # type: ignore[arg-type]
                    color=line.get_color(), label=label)  # fmt: skip
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=6, ncol=2)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _plots(results: Results, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    if results.false_hit:
        written.append(_measured_vs_theory(
            results.false_hit, lambda r: f"S={r['stages']} k={r['slots']} load={float(r['load']):.1f}",  # type: ignore[arg-type]
            "digest_bits", "digest bits", "false hits per non-member lookup",
            "ConnTable digest false hits: measured (dots) vs theory (lines)", out / "false_hits.png",
        ))  # fmt: skip
    if results.bloom:
        written.append(_measured_vs_theory(
            results.bloom, lambda r: f"m={r['bloom_bits']} k={r['hashes']}", "recorded",
            "connections recorded in TransitTable (new conns/s x insertion latency)", "false positives per query",
            "TransitTable Bloom false positives: measured (dots) vs theory (lines)", out / "bloom.png",
        ))  # fmt: skip
    if results.load:
        fig, ax = plt.subplots(figsize=(8, 5))
        labels = [f"S={r['stages']} k={r['slots']}" for r in results.load]
        x = np.arange(len(labels))
        for offset, key, label in ((-0.27, "measured_load", "measured (first failure)"),
                                   (0.0, "offline_load", "offline optimum of the same flows"),
                                   (0.27, "theory_load", "asymptotic threshold")):  # fmt: skip
            ax.bar(x + offset, [float(r[key]) for r in results.load], 0.27, label=label)
        ax.set_xticks(x, labels, rotation=45)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("load factor")
        ax.set_title("ConnTable load before the first insertion failure")
        ax.legend()
        written.append(out / "load.png")
        fig.savefig(written[-1], dpi=120, bbox_inches="tight")
        plt.close(fig)
    return written


def run_analyze(sweep: Sweep, rates: Rates, source: FlowSource, out: Path, seed: int) -> Results:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 1])  # the versions: a stream apart from the source's flows
    results = Results()
    steps = [
        ("load factor before the first failure", lambda: measure_load(sweep, source, results)),
        ("digest false hits", lambda: measure_false_hits(sweep, source, rates, rng, results)),
        ("TransitTable false positives", lambda: measure_bloom(sweep, source, rates, results)),
    ]
    for label, step in steps:
        start = time.perf_counter()
        print(f"measuring {label} ({source.name} flows) ...", end="", flush=True)
        step()
        print(f" {time.perf_counter() - start:.1f} s", flush=True)
    z_bound = critical_z(len(results.false_hit) + len(results.bloom))
    judge_rows(results.false_hit, [math.sqrt(float(r["theory_rate"]) * (1 - float(r["theory_rate"]))
                                             / int(r["lookups"])) for r in results.false_hit], z_bound)  # type: ignore[arg-type]
    judge_rows(results.bloom, [bloom_standard_error(int(r["bloom_bits"]), int(r["hashes"]), int(r["recorded"]),
                                                    int(r["trials"]), int(r["queries"]))
                               for r in results.bloom], z_bound)  # type: ignore[arg-type]
    print(f"rates: {rates.new_conns_per_min:,.0f} new connections/min, {rates.updates_per_min:,.0f} updates/min\n")
    _print_rows("ConnTable load before the first insertion failure", results.load)
    _print_rows("digest false hits per non-member lookup, and what they cost", results.false_hit)
    _print_rows("TransitTable false positives, and new connections sent to the old pool", results.bloom)
    print(f"vs_theory: ok when |z| <= {z_bound:.2f} (Bonferroni over {len(results.false_hit) + len(results.bloom)} "
          "rows at a family-wise error of 0.1%); ABOVE/BELOW otherwise")  # fmt: skip
    for note in results.notes:
        print(f"note: {note}")
    for name, rows in (("load", results.load), ("false_hits", results.false_hit), ("bloom", results.bloom)):
        _write_csv(out / f"{name}.csv", rows)
    for path in _plots(results, out):
        print(f"wrote {path}")
    print(f"wrote CSVs to {out}/")
    return results
