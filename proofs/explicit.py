"""Exhaustive explicit-state search of the *concrete* model for small scopes.

The search steps ``model.switch.Switch`` with events from a small alphabet
(packets of a few connections, update requests, CPU learn/advance/expire
steps, a clock tick, learn-delay faults) and keys each state by ``freeze``:
a canonical hashable image of the whole switch with every time stored
relative to the clock and capped just above the largest timing constant, so
the reachable state space is finite. The search state also carries, per
connection, the DIP of its incarnation's first forwarded packet (the anchor)
and the age of its last packet, so PCC is checked on every edge, hence on
every path. The reachable graph is a ``networkx.DiGraph``; breadth-first order
makes the first bad edge the end of a shortest counterexample path, which is
replayed as a trace and judged by the black-box oracle.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from typing import Any

import networkx as nx

from model import events as ev
from model.config import Config
from model.cpu import Cpu, Known
from model.dataplane import ConnEntry, DataPlane
from model.observations import FORWARD, PacketObservation
from model.switch import Switch
from model.types import ACK, SYN, Dip, FiveTuple, Packet
from proofs.replay import verdict_of
from silkcheck.examples import DEMO_VIP, DIP1, DIP2, client
from silkcheck.oracle import VIOLATION, Verdict
from silkcheck.trace import Trace

Frozen = tuple[Any, ...]


def _compress(times: set[int], cap: int) -> dict[int, int]:
    """Relabel instants keeping their order and every gap up to ``cap``.

    The model only compares a difference of two instants with a constant
    below ``cap`` (learn-delay bound, idle timeout, teardown grace) or orders
    two instants, so states that differ only in longer gaps behave the same:
    this makes the relabelled state an exact (bisimilar) quotient.
    """
    labels: dict[int, int] = {}
    label, previous = 0, None
    for t in sorted(times):
        if previous is not None:
            label += min(t - previous, cap)
        labels[t] = label
        previous = t
    return labels


def freeze(switch: Switch, now: int, cap: int, expiry: bool = True) -> Frozen:
    """The switch's whole state, canonical and hashable, every instant as a compressed age.

    Without ``expiry`` in the alphabet, what only ``Cpu.expire`` reads (idle
    timers, SYN/FIN send times, expiry times) is left out: still exact.
    """
    dp, cpu = switch.dataplane, switch.cpu
    times = {now}
    if expiry:
        times |= {e.last_hit for table in dp.conn for e in table.values()}
        times |= {t for c in cpu.known.values() for t in (c.opened, c.ended, c.seen) if t >= 0}
        times |= set(cpu.expired.values())
    times |= {t for e in dp.learn_queue for t in (e.sent, e.visible)}
    times |= {c.sent for c in cpu.known.values()}
    times |= {t for u in cpu.updates.values() for t in (u.started, u.requested)}
    times |= set(cpu.released.values())
    labels = _compress(times, cap)

    def age(t: int) -> int | None:
        return labels[now] - labels[t] if t >= 0 and t in labels else None

    conn = tuple(tuple(sorted((k, e.version, age(e.last_hit)) for k, e in table.items())) for table in dp.conn)
    queue = tuple((age(e.sent), age(e.visible), e.kind, e.ft, e.version) for e in dp.learn_queue)
    known = tuple(sorted(((c.ft, c.version, age(c.sent), age(c.opened), age(c.ended), age(c.seen), c.stage)
                          for c in cpu.known.values()), key=repr))  # fmt: skip
    updates = tuple(sorted((vip, u.old_version, u.new_version, u.epoch, u.slot, u.phase, age(u.started),
                            age(u.requested)) for vip, u in cpu.updates.items()))  # fmt: skip
    return (
        conn, tuple(sorted(dp.vips.items())), tuple(sorted(dp.pools.items())), tuple(map(tuple, dp.transit)),
        tuple(sorted(dp.whitelist)), queue, tuple(sorted(dp.learn_filter)), known,
        tuple(sorted(cpu.vip_entries.items())),
        tuple(sorted((vip, tuple(sorted(p.items()))) for vip, p in cpu.pools.items())),
        tuple(sorted((k, v) for k, v in cpu.refs.items() if v)),
        tuple(sorted((k, age(t)) for k, t in cpu.released.items() if k[1] in cpu.pools[k[0]])),
        updates, tuple(sorted((vip, tuple(q)) for vip, q in cpu.requests.items())), tuple(sorted(cpu.whitelist)),
        tuple(sorted((ft, age(t)) for ft, t in cpu.expired.items())), cpu.epoch, tuple(cpu.pending or ()),
    )  # fmt: skip


_CLONED = {
    DataPlane: {"config", "plan", "conn", "vips", "pools", "transit", "whitelist", "learn_queue", "learn_filter"},
    Cpu: {"config", "plan", "backend", "known", "table", "load", "watchers", "vip_entries", "pools", "refs",
          "released", "updates", "requests", "whitelist", "expired", "epoch", "generation", "pending"},
    Known: {"ft", "hashes", "version", "sent", "opened", "ended", "stage", "seen", "failed_at"},
}  # fmt: skip


def check_clone_covers_model() -> None:
    """``clone`` copies field by field: refuse to run if the model grew a field it does not know."""
    for cls, known in _CLONED.items():
        names = {f.name for f in fields(cls)}
        if names != known:
            changed = sorted(names ^ known)
            raise RuntimeError(f"proofs/explicit.py clone() is out of date for {cls.__name__}: fields {changed}")


def clone(switch: Switch) -> Switch:
    """A copy of the switch sharing only immutable parts (10x faster than ``copy.deepcopy``)."""
    dp, cpu = switch.dataplane, switch.cpu
    new_dp = DataPlane(
        dp.config, dp.plan, [{k: ConnEntry(e.version, e.last_hit) for k, e in t.items()} for t in dp.conn],
        dict(dp.vips), dict(dp.pools), [list(cells) for cells in dp.transit], set(dp.whitelist), deque(dp.learn_queue),
        set(dp.learn_filter),
    )  # fmt: skip
    known = {ft: Known(c.ft, c.hashes, c.version, c.sent, c.opened, c.ended, c.stage, c.seen, c.failed_at)
             for ft, c in cpu.known.items()}  # fmt: skip
    new_cpu = Cpu(
        cpu.config, cpu.plan, new_dp, known, [{k: known[c.ft] for k, c in t.items()} for t in cpu.table],
        [dict(x) for x in cpu.load], {k: set(v) for k, v in cpu.watchers.items()}, dict(cpu.vip_entries),
        {vip: dict(p) for vip, p in cpu.pools.items()}, dict(cpu.refs), dict(cpu.released), dict(cpu.updates),
        {vip: deque(q) for vip, q in cpu.requests.items()}, set(cpu.whitelist), dict(cpu.expired), cpu.epoch,
        cpu.generation, None if cpu.pending is None else deque(cpu.pending),
    )  # fmt: skip
    return Switch(switch.config, new_dp, new_cpu)


@dataclass(frozen=True)
class Scope:
    name: str
    config: Config
    connections: int
    updates: int
    """How many pool updates the operator may request along a path."""
    delay_faults: bool = True
    expiry: bool = True
    max_states: int = 200_000
    max_depth: int | None = None
    """Explore every state within this many steps (None: until no new state)."""

    @property
    def conns(self) -> list[FiveTuple]:
        return [client(n, 40000 + n) for n in range(1, self.connections + 1)]

    @property
    def cap(self) -> int:
        c = self.config
        return max(c.learn_delay_bound, c.idle_timeout, c.teardown_grace) + 1


POOLS = ((DIP2,), (DIP1,))
"""Update n installs POOLS[n % 2]: every version change moves every connection's DIP."""


@dataclass(frozen=True)
class Watch:
    """Search-side bookkeeping per connection: anchor DIP and age of the last packet."""

    anchors: tuple[tuple[FiveTuple, Dip | None, int], ...]
    updates_used: int

    def anchor(self, ft: FiveTuple) -> tuple[Dip | None, int]:
        for f, dip, last in self.anchors:
            if f == ft:
                return dip, last
        return None, -1


@dataclass
class Node:
    switch: Switch
    now: int
    watch: Watch
    depth: int


@dataclass
class SearchResult:
    scope: Scope
    graph: nx.DiGraph
    states: int
    edges: int
    seconds: float
    depth: int
    counterexample: Trace | None = None
    verdict: Verdict | None = None
    complete: bool = True
    """No state budget was hit (with ``depth_bounded``: every state within the depth)."""
    depth_bounded: bool = False

    @property
    def rate(self) -> float:
        return self.states / self.seconds if self.seconds else 0.0

    @property
    def fixpoint(self) -> bool:
        """Every reachable state was explored: the frontier ran empty, no depth or state budget cut it."""
        return self.complete and not self.depth_bounded and self.counterexample is None

    def release(self) -> None:
        """Free the graph now. A networkx graph sits in a reference cycle, so once dropped it waits
        for the cyclic collector, which then walks every state (~10 s per 100,000 states)."""
        self.graph.clear()

    def coverage(self) -> str:
        if not self.complete:
            return f"INCOMPLETE: stopped at the budget of {self.scope.max_states} states"
        if self.depth_bounded:
            return f"every state within {self.scope.max_depth} steps"
        return "fixpoint: every reachable state"


def _letters(scope: Scope, node: Node) -> Iterator[tuple[str, Callable[[int], ev.Event] | None]]:
    """The alphabet enabled in ``node``: (label, event at time t) — None for the clock tick."""
    for ft in scope.conns:
        started = node.watch.anchor(ft)[1] >= 0
        flags = ACK if started else SYN
        yield f"{'ack' if started else 'syn'} c{ft.src_ip & 0xFF}", lambda t, ft=ft, flags=flags: ev.PacketArrives(
            t, Packet(ft, flags)
        )
    if node.watch.updates_used < scope.updates:
        pool = POOLS[node.watch.updates_used % 2]
        yield "update", lambda t, pool=pool: ev.UpdateRequested(t, DEMO_VIP, pool)
    yield "learn", lambda t: ev.CpuLearns(t)
    if len(node.switch.dataplane.learn_queue) > 1:
        yield "learn 1", lambda t: ev.CpuLearns(t, 1)
    yield "advance", lambda t: ev.CpuAdvances(t)
    if scope.expiry:
        yield "expire", lambda t: ev.CpuExpires(t)
    if scope.delay_faults:
        for i, event in enumerate(node.switch.dataplane.learn_queue):
            if event.visible < event.sent + scope.config.learn_delay_bound:
                yield f"delay learn {i}", lambda t, i=i: ev.LearnDelayed(t, i, scope.config.learn_delay_bound)
    yield "tick", None


def _watch_after(scope: Scope, watch: Watch, obs: PacketObservation | None, ticked: bool) -> tuple[Watch, bool]:
    """Update anchors; report whether ``obs`` broke PCC (a forwarded packet off its incarnation's anchor)."""
    moved = False
    anchors = []
    cap = scope.cap
    for ft, dip, last in watch.anchors:
        if obs is not None and obs.ft == ft:
            if last >= 0 and last > scope.config.idle_timeout:
                dip = None  # the oracle starts a new incarnation after an idle gap
            if obs.action == FORWARD:
                if dip is None:
                    dip = obs.dip
                elif obs.dip != dip:
                    moved = True
            last = 0
        elif ticked and last >= 0:
            last = min(last + 1, cap)
        anchors.append((ft, dip, last))
    return Watch(tuple(anchors), watch.updates_used), moved


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """The graph holds hundreds of thousands of tuples that the cyclic collector would scan
    again and again (half the search time) for nothing: states hold no reference cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def search(scope: Scope, progress: Callable[[int], None] | None = None, cyclic_gc: bool = False) -> SearchResult:
    """Breadth-first over reachable states; stop at the first violation the oracle confirms.

    ``cyclic_gc`` leaves the cyclic collector on: the benchmark's baseline.
    """
    with contextlib.nullcontext() if cyclic_gc else _without_cyclic_gc():
        return _search(scope, progress)


def _search(scope: Scope, progress: Callable[[int], None] | None) -> SearchResult:
    check_clone_covers_model()
    start = time.perf_counter()
    boot = Switch.boot(scope.config, {DEMO_VIP: (DIP1,)})
    root = Node(boot, 0, Watch(tuple((ft, None, -1) for ft in scope.conns), 0), 0)
    key0 = (freeze(boot, 0, scope.cap, scope.expiry), root.watch)
    graph = nx.DiGraph()
    graph.add_node(key0, depth=0)
    parent: dict[Any, tuple[Any, ev.Event | None]] = {key0: (None, None)}
    nodes: dict[Any, Node] = {key0: root}
    frontier = deque([key0])
    depth = 0
    result = SearchResult(scope, graph, 0, 0, 0.0, 0)
    while frontier:
        key = frontier.popleft()
        node = nodes.pop(key)
        depth = max(depth, node.depth)
        if scope.max_depth is not None and depth >= scope.max_depth:
            result.depth_bounded = True
            continue
        for label, make in list(_letters(scope, node)):
            switch = node.switch if make is None else clone(node.switch)  # a tick only moves the clock
            now = node.now + (1 if make is None else 0)
            event = None if make is None else make(now)
            obs = None if event is None else switch.step(0, event)
            watch = node.watch
            if isinstance(event, ev.UpdateRequested):
                watch = Watch(watch.anchors, watch.updates_used + 1)
            watch, moved = _watch_after(scope, watch, obs if isinstance(obs, PacketObservation) else None,
                                        make is None)  # fmt: skip
            succ = (freeze(switch, now, scope.cap, scope.expiry), watch)
            if succ not in graph:
                graph.add_node(succ, depth=node.depth + 1)
                parent[succ] = (key, event)
                nodes[succ] = Node(switch, now, watch, node.depth + 1)
                frontier.append(succ)
                if progress and len(graph) % 5000 == 0:
                    progress(len(graph))
            graph.add_edge(key, succ, label=label)
            if moved:
                trace = _path_trace(scope, parent, key, event)
                verdict = verdict_of(trace)
                if any(f.category == VIOLATION for f in verdict.findings):
                    result.counterexample, result.verdict = trace, verdict
                    frontier.clear()
                    break
        if len(graph) >= scope.max_states:
            result.complete = False
            break
    result.states, result.edges = graph.number_of_nodes(), graph.number_of_edges()
    result.seconds, result.depth = time.perf_counter() - start, depth
    return result


def _path_trace(scope: Scope, parent: dict[Any, tuple[Any, ev.Event | None]], key: Any, last: ev.Event | None) -> Trace:
    events: list[ev.Event] = [] if last is None else [last]
    while key is not None:
        key, event = parent[key]
        if event is not None:
            events.append(event)
    events.reverse()
    return Trace(scope.config, {DEMO_VIP: (DIP1,)}, events, f"search-{scope.name}",
                 f"shortest counterexample path found by exhaustive search of scope {scope.name}", "fail")  # fmt: skip


_UPDATE_CONFIG = Config(digest_bits=8, stages=2, buckets_per_stage=2, slots_per_bucket=1, bloom_bits=2, bloom_hashes=1,
                        version_bits=2, epoch_bits=2, learn_delay_bound=1, idle_timeout=1, teardown_grace=1)
_EXPIRY_CONFIG = replace(_UPDATE_CONFIG, bloom_bits=1)

SCOPES = {
    # Whole reachable graphs (fixpoints). One connection: with two, the graph passes a million states.
    "update-1": Scope("update-1", _UPDATE_CONFIG, connections=1, updates=1, expiry=False),
    "expiry-1": Scope("expiry-1", _EXPIRY_CONFIG, connections=1, updates=1),
    "two-updates-1": Scope("two-updates-1", _UPDATE_CONFIG, connections=1, updates=2, expiry=False),
    # Bigger scopes, every state within a depth.
    "update": Scope("update", _UPDATE_CONFIG, connections=2, updates=1, expiry=False, max_depth=7),
    "expiry": Scope("expiry", _EXPIRY_CONFIG, connections=1, updates=2, max_depth=9),
    "full-table": Scope("full-table", replace(_UPDATE_CONFIG, stages=1, buckets_per_stage=1), connections=2, updates=1,
                        expiry=False, max_depth=6),
    "collision": Scope(
        "collision",
        Config(digest_bits=1, stages=2, buckets_per_stage=1, slots_per_bucket=1, bloom_bits=1, bloom_hashes=1,
               version_bits=2, epoch_bits=2, learn_delay_bound=0, idle_timeout=1, teardown_grace=0),
        connections=3, updates=1, delay_faults=False, max_depth=6,
    ),
}  # fmt: skip
