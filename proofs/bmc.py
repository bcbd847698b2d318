"""Bounded model checking and k-induction of the whole switch for small scopes.

An abstract transition system over Z3 terms, unrolled step by step. One step
is one named action (guard, then effect), as in ``model.switch``:

``packet i``  a packet of connection i through the pipeline (``packet_version``,
              ``drops_sealed``, ``records_transit``, ``learns_new``,
              ``transit_contains``: all from ``model.decisions`` via the Z3 Ops);
              its learn event, if sent, becomes visible after any delay ≤ B
``learn``     the CPU reads every visible learn event and places the connections
``retry i``   the CPU places a learned connection it could not place before
``advance``   the CPU moves the update on (``next_phase`` of ``may_exec`` /
              ``may_seal`` / ``may_finish``); it has drained the learn events
``update``    an operator requests a new pool (t_req), fresh version and epoch
``expire i``  the CPU removes an entry idle longer than the idle timeout
``lose i``    fault: connection i's queued learn event is lost
``tick``      time passes

Abstractions and their soundness assumptions: connections have their own
ConnTable entries (aliasing is the digest residual risk, and the cuckoo proof
covers the CPU's writes); whether a placement succeeds is a free choice (the
table may be full); the learning filter keeps one queued event per
connection; versions are fresh per update (reclamation proof). Tiny Bloom
filters: each connection's cell is a free constant, so false positives are
reachable. PCC is checked on versions: a forwarded packet of an incarnation
must use its first forwarded packet's version unless a fault lost its learn
event (the oracle's ``fault``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import z3

from model import decisions as d
from model import events as ev
from model.config import Config
from model.hashing import HashPlan
from model.types import ACK, SYN, Dip, FiveTuple, Packet, parse_ip
from proofs.replay import queue_after
from proofs.symbolic import Z3, value
from silkcheck.examples import DEMO_VIP, client
from silkcheck.trace import Trace

ACTIONS = ("packet", "learn", "retry", "advance", "update", "expire", "lose", "tick")
CONN_FIELDS = ("queued", "qver", "qsent", "qvis", "known", "kver", "ksent", "placed", "last_hit", "anchor",
               "last_pkt", "excused")  # fmt: skip
BOOL_FIELDS = {"queued", "known", "placed", "excused"}
GLOBAL_INTS = ("now", "phase", "old", "new", "epoch", "started", "requested", "updates_left")
POOL_DIPS = tuple(Dip(parse_ip("10.0.1.10") + (v << 8), 8080) for v in range(4))
"""Version v's pool is {POOL_DIPS[v]}: a version change is a DIP change."""


@dataclass(frozen=True)
class BmcScope:
    name: str
    connections: int = 2
    updates: int = 1
    bloom_cells: int = 1
    bound: int = 1
    idle_timeout: int = 2
    faults: bool = True
    realizable: bool = False
    """Counterexample mode: placements always succeed (as in a roomy concrete table), no lost events."""
    symbolic_timing: bool = False
    """The learn-delay bound and the idle timeout are free symbols (any B ≥ 0, any timeout ≥ 1),
    not ``bound`` and ``idle_timeout``: an inductive proof then holds for every timing."""


@dataclass
class State:
    g: dict[str, Any]
    conns: list[dict[str, Any]]
    bits: list[Any]
    bad: Any

    @classmethod
    def fresh(cls, k: int, scope: BmcScope) -> State:
        g = {name: z3.Int(f"{name}@{k}") for name in GLOBAL_INTS}
        conns = [
            {f: (z3.Bool if f in BOOL_FIELDS else z3.Int)(f"c{i}.{f}@{k}") for f in CONN_FIELDS}
            for i in range(scope.connections)
        ]
        bits = [z3.Int(f"bit{j}@{k}") for j in range(scope.bloom_cells)]
        return cls(g, conns, bits, z3.Bool(f"bad@{k}"))

    def copy(self) -> State:
        return State(dict(self.g), [dict(c) for c in self.conns], list(self.bits), self.bad)

    def equals(self, other: State) -> Any:
        eqs = [self.g[n] == other.g[n] for n in GLOBAL_INTS]
        eqs += [a[f] == b[f] for a, b in zip(self.conns, other.conns, strict=True) for f in CONN_FIELDS]
        eqs += [a == b for a, b in zip(self.bits, other.bits, strict=True)]
        return z3.And(*eqs, self.bad == other.bad)


@dataclass
class Choice:
    action: Any
    who: Any
    delay: Any
    placements: list[Any]


class System:
    """Init and the step relation of one scope."""

    def __init__(self, scope: BmcScope) -> None:
        self.scope = scope
        self.cell = [z3.Int(f"bloom_cell_of_c{i}") for i in range(scope.connections)]
        self.epochs = 4
        symbolic = scope.symbolic_timing
        self.bound: Any = z3.Int("learn_delay_bound") if symbolic else scope.bound
        self.idle_timeout: Any = z3.Int("idle_timeout") if symbolic else scope.idle_timeout

    def constants(self) -> list[Any]:
        timing = [self.bound >= 0, self.idle_timeout >= 1] if self.scope.symbolic_timing else []
        return [z3.And(c >= 0, c < self.scope.bloom_cells) for c in self.cell] + timing

    def init(self, s: State) -> Any:
        g = s.g
        conds = [g["now"] == 0, g["phase"] == d.NORMAL, g["old"] == 0, g["new"] == 0, g["epoch"] == 0,
                 g["started"] == 0, g["requested"] == 0, g["updates_left"] == self.scope.updates,
                 *(b == 0 for b in s.bits), z3.Not(s.bad)]  # fmt: skip
        for c in s.conns:
            conds += [z3.Not(c["queued"]), z3.Not(c["known"]), z3.Not(c["placed"]), z3.Not(c["excused"]),
                      c["anchor"] == -1, c["last_pkt"] == -1, c["qver"] == 0, c["qsent"] == 0, c["qvis"] == 0,
                      c["kver"] == 0, c["ksent"] == 0, c["last_hit"] == 0]  # fmt: skip
        return z3.And(*conds)

    def choice(self, k: int) -> Choice:
        return Choice(z3.Int(f"action@{k}"), z3.Int(f"who@{k}"), z3.Int(f"delay@{k}"),
                      [z3.Bool(f"placed_c{i}@{k}") for i in range(self.scope.connections)])  # fmt: skip

    # ------------------------------------------------------------ actions: (guard, next state)

    def transit_hit(self, s: State, i: int) -> Any:
        """Would a ConnTable miss of connection i hit TransitTable now?"""
        cells = [self._bit(s, self.cell[i])]
        return z3.And(d.consults_transit(Z3, s.g["phase"]), d.transit_contains(Z3, cells, s.g["epoch"]))

    def miss_version(self, s: State, i: int) -> Any:
        """The version a ConnTable miss of connection i would use now."""
        return d.miss_version(Z3, s.g["phase"], self.transit_hit(s, i), s.g["old"], s.g["new"])

    def packet(self, s: State, i: int, ch: Choice) -> tuple[Any, State]:
        g, c, n = s.g, s.conns[i], s.copy()
        nc = n.conns[i]
        hit = c["placed"]
        transit_hit = z3.And(z3.Not(hit), self.transit_hit(s, i))
        drop = d.drops_sealed(Z3, hit, g["phase"], transit_hit)
        version = d.packet_version(Z3, hit, c["kver"], g["phase"], transit_hit, g["old"], g["new"])
        new_incarnation = z3.Or(c["last_pkt"] < 0, g["now"] - c["last_pkt"] > self.idle_timeout)
        anchor = z3.If(new_incarnation, -1, c["anchor"])
        excused = z3.And(z3.Not(new_incarnation), c["excused"])
        forwarded = z3.Not(drop)
        nc["anchor"] = z3.If(z3.And(forwarded, anchor == -1), version, anchor)
        nc["excused"] = excused
        n.bad = z3.Or(s.bad, z3.And(forwarded, anchor != -1, version != anchor, z3.Not(excused)))
        nc["last_pkt"] = g["now"]
        nc["last_hit"] = z3.If(hit, g["now"], c["last_hit"])
        records = d.records_transit(Z3, hit, g["phase"])
        n.bits = [z3.If(z3.And(records, self.cell[i] == j), g["epoch"], b) for j, b in enumerate(s.bits)]
        learns = z3.And(d.learns_new(Z3, hit, g["phase"], transit_hit), z3.Not(c["queued"]))
        nc["queued"] = z3.Or(c["queued"], learns)
        nc["qver"] = z3.If(learns, version, c["qver"])
        nc["qsent"] = z3.If(learns, g["now"], c["qsent"])
        nc["qvis"] = z3.If(learns, g["now"] + ch.delay, c["qvis"])
        return z3.BoolVal(True), n

    def _bit(self, s: State, index: Any) -> Any:
        term: Any = s.bits[-1]
        for j in reversed(range(len(s.bits) - 1)):
            term = z3.If(index == j, s.bits[j], term)
        return term

    def _visible(self, s: State, c: dict[str, Any]) -> Any:
        return z3.And(c["queued"], c["qvis"] <= s.g["now"])

    def learn(self, s: State, ch: Choice) -> tuple[Any, State]:
        n = s.copy()
        for i, (c, nc) in enumerate(zip(s.conns, n.conns, strict=True)):
            read = self._visible(s, c)
            fresh = z3.And(read, z3.Not(c["known"]))
            placed = z3.BoolVal(True) if self.scope.realizable else ch.placements[i]
            nc["queued"] = z3.And(c["queued"], z3.Not(read))
            nc["known"] = z3.Or(c["known"], fresh)
            nc["kver"] = z3.If(fresh, c["qver"], c["kver"])
            nc["ksent"] = z3.If(fresh, c["qsent"], c["ksent"])
            nc["placed"] = z3.Or(c["placed"], z3.And(fresh, placed))
            nc["last_hit"] = z3.If(z3.And(fresh, placed), s.g["now"], c["last_hit"])
        return z3.Or(*(self._visible(s, c) for c in s.conns)), n

    def retry(self, s: State, i: int) -> tuple[Any, State]:
        c, n = s.conns[i], s.copy()
        n.conns[i]["placed"] = z3.BoolVal(True)
        n.conns[i]["last_hit"] = s.g["now"]
        return z3.And(c["known"], z3.Not(c["placed"])), n

    def advance(self, s: State) -> tuple[Any, State]:
        g, n = s.g, s.copy()
        drained = z3.Not(z3.Or(*(self._visible(s, c) for c in s.conns)))
        waited = g["now"] >= g["started"] + self.bound
        pending = [z3.And(c["known"], z3.Not(c["placed"])) for c in s.conns]
        before_req = z3.Or(*(z3.And(p, c["ksent"] <= g["requested"]) for p, c in zip(pending, s.conns, strict=True)))
        old_pending = z3.Or(*(z3.And(p, c["kver"] == g["old"]) for p, c in zip(pending, s.conns, strict=True)))
        phase = d.next_phase(Z3, g["phase"], d.may_exec(Z3, waited, before_req), d.may_seal(Z3, old_pending),
                             d.may_finish(Z3, waited, old_pending))  # fmt: skip
        changed = phase != g["phase"]
        n.g["phase"] = phase
        n.g["started"] = z3.If(changed, g["now"], g["started"])
        n.g["old"] = z3.If(z3.And(changed, phase == d.NORMAL), g["new"], g["old"])
        return z3.And(drained, g["phase"] != d.NORMAL, changed), n

    def update(self, s: State) -> tuple[Any, State]:
        g, n = s.g, s.copy()
        n.g["new"] = g["new"] + 1
        n.g["phase"] = z3.IntVal(d.RECORD)
        n.g["epoch"] = g["epoch"] % (self.epochs - 1) + 1
        n.g["started"] = g["now"]
        n.g["requested"] = g["now"]
        n.g["updates_left"] = g["updates_left"] - 1
        return z3.And(g["phase"] == d.NORMAL, g["updates_left"] > 0), n

    def expire(self, s: State, i: int) -> tuple[Any, State]:
        c, n = s.conns[i], s.copy()
        n.conns[i]["placed"] = z3.BoolVal(False)
        n.conns[i]["known"] = z3.BoolVal(False)
        drained = z3.Not(z3.Or(*(self._visible(s, x) for x in s.conns)))  # expire drains learn events first
        return z3.And(drained, c["placed"], s.g["now"] - c["last_hit"] > self.idle_timeout), n

    def lose(self, s: State, i: int) -> tuple[Any, State]:
        c, n = s.conns[i], s.copy()
        n.conns[i]["queued"] = z3.BoolVal(False)
        n.conns[i]["excused"] = z3.BoolVal(True)
        enabled = z3.BoolVal(self.scope.faults and not self.scope.realizable)
        return z3.And(enabled, c["queued"]), n

    def tick(self, s: State) -> tuple[Any, State]:
        n = s.copy()
        n.g["now"] = s.g["now"] + 1
        return z3.BoolVal(True), n

    def step(self, s: State, t: State, ch: Choice) -> Any:
        """The transition relation: exactly the chosen action, its guard, its effect."""
        options = []
        for a, name in enumerate(ACTIONS):
            per_conn = name in ("packet", "retry", "expire", "lose")
            for i in range(self.scope.connections) if per_conn else [0]:
                if name == "packet":
                    guard, n = self.packet(s, i, ch)
                elif name == "learn":
                    guard, n = self.learn(s, ch)
                elif per_conn:
                    guard, n = getattr(self, name)(s, i)
                else:
                    guard, n = getattr(self, name)(s)
                options.append(z3.And(ch.action == a, ch.who == i, guard, t.equals(n)))
        return z3.And(ch.delay >= 0, ch.delay <= self.bound, z3.Or(*options))


@dataclass
class BmcResult:
    scope: BmcScope
    depth: int
    seconds: float
    model: z3.ModelRef | None = None
    states: list[State] = field(default_factory=list)
    choices: list[Choice] = field(default_factory=list)
    reachable: dict[str, bool] = field(default_factory=dict)

    @property
    def safe(self) -> bool:
        return self.model is None


def bmc(scope: BmcScope, max_depth: int) -> BmcResult:
    """Unroll up to ``max_depth`` steps; stop at the first depth where a PCC violation is reachable."""
    start = time.perf_counter()
    system = System(scope)
    solver = z3.Solver()
    states = [State.fresh(0, scope)]
    solver.add(*system.constants(), system.init(states[0]))
    choices: list[Choice] = []
    for k in range(1, max_depth + 1):
        states.append(State.fresh(k, scope))
        choices.append(system.choice(k - 1))
        solver.add(system.step(states[-2], states[-1], choices[-1]))
        solver.push()
        solver.add(states[-1].bad)
        if solver.check() == z3.sat:
            model = solver.model()
            return BmcResult(scope, k, time.perf_counter() - start, model, states, choices)
        solver.pop()
    result = BmcResult(scope, max_depth, time.perf_counter() - start, None, states, choices)
    result.reachable = _reachability(solver, system, states)
    return result


def _reachability(solver: z3.Solver, system: System, states: list[State]) -> dict[str, bool]:
    """Non-vacuity: the situations PCC is about are reachable within the unrolled depth."""
    last = states[-1]
    anchored = z3.Or(*(z3.And(c["anchor"] != -1, c["kver"] != c["anchor"]) for c in last.conns))
    situations = {
        "transit phase with a pending old-version connection": z3.Or(*(
            z3.And(s.g["phase"] == d.TRANSIT, c["known"], z3.Not(c["placed"])) for s in states for c in s.conns)),
        "Bloom false positive in TRANSIT": z3.Or(*(
            z3.And(s.g["phase"] == d.TRANSIT, c["anchor"] == s.g["old"], s.g["old"] != s.g["new"],
                   c["last_pkt"] > s.g["requested"])
            for s in states for c in s.conns)),
        "update finished": z3.Or(*(z3.And(s.g["updates_left"] == 0, s.g["phase"] == d.NORMAL) for s in states)),
        "anchor differs from a stale learned version": anchored,
    }  # fmt: skip
    found = {}
    for name, condition in situations.items():
        solver.push()
        solver.add(condition)
        found[name] = solver.check() == z3.sat
        solver.pop()
    return found


def k_induction(scope: BmcScope, k: int) -> tuple[bool, float]:
    """Is ¬bad k-inductive: k safe steps from *any* state imply a safe step k+1? (with the BMC base case)."""
    start = time.perf_counter()
    system = System(scope)
    solver = z3.Solver()
    states = [State.fresh(1000 + j, scope) for j in range(k + 1)]
    solver.add(*system.constants())
    for j in range(k):
        solver.add(z3.Not(states[j].bad), system.step(states[j], states[j + 1], system.choice(1000 + j)))
    solver.add(states[k].bad)
    inductive = solver.check() == z3.unsat
    return inductive, time.perf_counter() - start


# ---------------------------------------------------------------- counterexamples as traces


def counterexample_trace(result: BmcResult, name: str, description: str, config: Config) -> Trace:
    """The BMC path as a trace: connection i is a client whose Bloom cell is the one Z3 chose."""
    assert result.model is not None
    model = result.model
    system = System(result.scope)
    plan = HashPlan(config)
    cells = [value(model, c) for c in system.cell]
    conns = _clients_with_cells(plan, cells)
    trace = Trace(config, {DEMO_VIP: (POOL_DIPS[0],)}, [], name, description, "fail")
    started: set[int] = set()
    version = 0
    for k, choice in enumerate(result.choices[: result.depth]):
        action, who = ACTIONS[value(model, choice.action)], value(model, choice.who)
        now = value(model, result.states[k].g["now"])
        if action == "packet":
            flags = ACK if who in started else SYN
            started.add(who)
            trace.events.append(ev.PacketArrives(now, Packet(conns[who], flags)))
            before, after = result.states[k].conns[who], result.states[k + 1].conns[who]
            delay = value(model, choice.delay)
            if delay and not value(model, before["queued"]) and value(model, after["queued"]):
                index = len(queue_after(trace, len(trace.events))) - 1
                trace.events.append(ev.LearnDelayed(now, index, delay))
        elif action in ("learn", "retry"):
            trace.events.append(ev.CpuLearns(now))
        elif action == "advance":
            trace.events.append(ev.CpuAdvances(now))
        elif action == "update":
            version += 1
            trace.events.append(ev.UpdateRequested(now, DEMO_VIP, (POOL_DIPS[version],)))
        elif action == "expire":
            trace.events.append(ev.CpuExpires(now))
    return trace


def _clients_with_cells(plan: HashPlan, cells: list[int]) -> list[FiveTuple]:
    chosen: list[FiveTuple] = []
    n = 1
    for cell in cells:
        while plan.flow(client(n, 42000 + n)).bloom[0] != cell:
            n += 1
        chosen.append(client(n, 42000 + n))
        n += 1
    return chosen


def config_for(scope: BmcScope) -> Config:
    return Config(bloom_bits=scope.bloom_cells, bloom_hashes=1, learn_delay_bound=scope.bound,
                  idle_timeout=scope.idle_timeout, teardown_grace=scope.bound)  # fmt: skip
