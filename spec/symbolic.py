"""The abstract system over Z3 terms: what ``proofs/`` unroll for BMC and k-induction.

``SymbolicDomain`` is ``spec.system.Domain`` for a ``Scope``: a few connections, a
tiny ConnTable whose keys are free constants (so any two connections may alias in
any stage), Bloom cells that are free constants (so false positives happen), learn
and write queues of bounded length kept in order (oldest first, no holes). A state
is a fresh Z3 constant per path; ``transition`` is the disjunction of every action
of ``spec.system`` with its choices free (which connection, which events a CPU step
reads, which decisions it makes, how many of its writes take effect at once).

What a scope leaves out, each an assumption of the proofs over it: SYN
authentication (its own proof: ``proofs/tables.py``, ``proofs/cookie.py``); more
learn events in flight or writes queued than the scope's bounds (a step that would
overflow one is not taken); more decisions per CPU step than ``places`` / one start /
one reclaim; connections of more than ``vips`` VIPs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import z3

from model import decisions as d
from spec import system as sy
from spec.system import EMPTY, NEVER, Event, Step, Write


def _as_bool(value: Any) -> Any:
    return z3.BoolVal(value) if isinstance(value, bool) else value


class Z3Ops:
    """``model.decisions.Ops`` over Z3 terms (Python bools and ints are lifted)."""

    @staticmethod
    def ite(cond: Any, then: Any, other: Any) -> Any:
        if isinstance(cond, bool):
            return then if cond else other
        return z3.If(cond, then, other)

    @staticmethod
    def and_(*args: Any) -> Any:
        return z3.And(*(_as_bool(a) for a in args))

    @staticmethod
    def or_(*args: Any) -> Any:
        return z3.Or(*(_as_bool(a) for a in args))

    @staticmethod
    def not_(arg: Any) -> Any:
        return z3.Not(_as_bool(arg))

    @staticmethod
    def eq(a: Any, b: Any) -> Any:
        return _as_bool(a == b)


Z3 = Z3Ops()

EVENT_FIELDS = Event._fields
WRITE_FIELDS = tuple(f for f in Write._fields if f != "entry") + tuple(f"entry{i}" for i in range(5))
BOOL_PATHS = {"known", "khit", "g_closed", "g_excused", "g_tied", "up", "present", "valid", "hit", "bad"}
BOOL_TABLES = {"wl", "cwl"}


@dataclass(frozen=True)
class Scope:
    """The size of the abstract system a proof is about."""

    name: str
    connections: int = 2
    vips: int = 1
    stages: int = 2
    keys: int = 2
    """Keys per stage: connections alias where their free key constants agree."""
    cells: int = 1
    """Bloom cells per TransitTable slot."""
    bloom_hashes: int = 1
    slots: int = 1
    versions: int = 4
    epochs: int = 4
    queue: int = 3
    pending: int = 3
    places: int = 2
    bound: int = 1
    idle_timeout: int = 2
    teardown_grace: int = 1
    faults: bool = True
    """Learn events may be lost or delayed, and the CPU may restart."""
    symbolic_timing: bool = False
    """The learn-delay bound, idle timeout and teardown grace are free (with the config's rules)."""


class SymbolicDomain:
    """``spec.system.Domain`` over Z3 terms for one scope (constants shared by every state)."""

    ite = staticmethod(Z3.ite)
    and_ = staticmethod(Z3.and_)
    or_ = staticmethod(Z3.or_)
    not_ = staticmethod(Z3.not_)
    eq = staticmethod(Z3.eq)
    syn_auth = False

    @staticmethod
    def may(cond: Any) -> bool:
        return not (cond is False or (z3.is_expr(cond) and z3.is_false(cond)))

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.stages = scope.stages
        self.versions = scope.versions
        self.epochs = scope.epochs
        self.transit_slots = scope.slots
        if scope.symbolic_timing:
            self.bound: Any = z3.Int("learn_delay_bound")
            self.idle_timeout: Any = z3.Int("idle_timeout")
            self.teardown_grace: Any = z3.Int("teardown_grace")
        else:
            self.bound, self.idle_timeout, self.teardown_grace = scope.bound, scope.idle_timeout, scope.teardown_grace
        n = scope.connections
        self._keys = [[z3.Int(f"key_c{c}_s{s}") for s in range(scope.stages)] for c in range(n)]
        self._cells = [[z3.Int(f"cell_c{c}_{j}") for j in range(scope.bloom_hashes)] for c in range(n)]

    def constants(self) -> list[Any]:
        """What the hash constants and the timing may be."""
        s = self.scope
        facts = [z3.And(k >= 0, k < s.keys) for ks in self._keys for k in ks]
        facts += [z3.And(i >= 0, i < s.cells) for cs in self._cells for i in cs]
        if s.symbolic_timing:
            # The config's rules (``Config.__post_init__``): teardown grace and idle timeout cover the bound.
            facts += [self.bound >= 0, self.idle_timeout >= 1, self.teardown_grace >= self.bound,
                      self.idle_timeout >= self.bound]  # fmt: skip
        return facts

    # ------------------------------------------------------------ scope

    def conns(self) -> Sequence[Any]:
        return range(self.scope.connections)

    def readers(self, stage: Any, key: Any) -> Sequence[Any]:
        return self.conns()

    def vips(self) -> Sequence[Any]:
        return range(self.scope.vips)

    def refer(self, ref: Any) -> list[tuple[Any, Any]]:
        return [(c, self.eq(ref, c)) for c in self.conns()]

    def refer_vip(self, ref: Any) -> list[tuple[Any, Any]]:
        return [(v, self.eq(ref, v)) for v in self.vips()]

    def same(self, ref: Any, c: Any) -> Any:
        return self.eq(ref, c)

    def vip_of(self, c: int) -> int:
        return c % self.scope.vips

    def key(self, c: int, stage: int) -> Any:
        return self._keys[c][stage]

    def cells(self, c: int) -> Sequence[Any]:
        return self._cells[c]

    def dest(self, c: int, pool: Any) -> Any:
        """Every pool is its own destination: two versions' pools never agree."""
        return pool

    def src(self, c: int) -> Any:
        return c

    def cookie(self, c: int) -> Any:
        return 0

    # ------------------------------------------------------------ tables indexed by terms

    def _cells_of(self, table: str) -> list[tuple[Any, ...]]:
        s = self.scope
        if table in ("entry", "timer", "evip"):
            return list(itertools.product(range(s.stages), range(s.keys)))
        if table in ("pool", "cpool"):
            return list(itertools.product(range(s.vips), range(s.versions)))
        if table == "cell":
            return list(itertools.product(range(s.slots), range(s.cells)))
        if table in ("wl", "cwl"):
            return [(c,) for c in range(s.connections)]
        raise KeyError(f"no table {table} in the scope")

    def read(self, st: Step, table: str, *index: Any) -> Any:
        cells = self._cells_of(table)
        value = st.get(table, *cells[-1])
        for at in reversed(cells[:-1]):
            value = self.ite(self.and_(*(self.eq(i, a) for i, a in zip(index, at, strict=True))), st.get(table, *at),
                             value)  # fmt: skip
        return value

    def update(self, st: Step, table: str, cond: Any, value: Any, *index: Any) -> None:
        for at in self._cells_of(table):
            here = self.and_(cond, *(self.eq(i, a) for i, a in zip(index, at, strict=True)))
            st.set(self.ite(here, value, st.get(table, *at)), table, *at)

    @staticmethod
    def is_pool(x: Any) -> Any:
        return x >= EMPTY

    def keys_of(self, stage: int) -> Sequence[Any]:
        return range(self.scope.keys)

    def cell_indices(self) -> Sequence[tuple[Any, Any]]:
        return list(itertools.product(range(self.scope.slots), range(self.scope.cells)))

    def ordered(self, st: Step) -> Sequence[Any]:
        facts = []
        for name, size in (("queue", self.scope.queue), ("pending", self.scope.pending)):
            facts += [z3.Implies(st.get(name, j, "valid"), st.get(name, j - 1, "valid")) for j in range(1, size)]
        return facts

    # ------------------------------------------------------------ the learn queue, oldest first

    def queue(self, st: Step) -> Sequence[tuple[Event, Any]]:
        return [(Event(*(st.get("queue", j, f) for f in EVENT_FIELDS)), st.get("queue", j, "valid"))
                for j in range(self.scope.queue)]  # fmt: skip

    def queued(self, st: Step, kind: Any, c: Any) -> Any:
        return self.or_(*(self.and_(there, self.eq(e.kind, kind), self.eq(e.conn, c)) for e, there in self.queue(st)))

    def queue_add(self, st: Step, event: Event, cond: Any) -> None:
        self._append(st, "queue", EVENT_FIELDS, tuple(event), cond, "the learn queue has room (scope)")

    def queue_drop(self, st: Step, gone: Sequence[Any]) -> None:
        slots = [(tuple(e), self.and_(there, self.not_(g))) for (e, there), g in zip(self.queue(st), gone, strict=True)]
        self._compact(st, "queue", EVENT_FIELDS, slots)

    def queue_set(self, st: Step, index: int, event: Event) -> None:
        for f, value in zip(EVENT_FIELDS, event, strict=True):
            st.set(value, "queue", index, f)

    # ------------------------------------------------------------ the write queue, oldest first

    def pending(self, st: Step) -> Sequence[tuple[Write, Any]]:
        return [(self._write(st, j), st.get("pending", j, "valid")) for j in range(self.scope.pending)]

    def _write(self, st: Step, j: int) -> Write:
        fields = {f: st.get("pending", j, f) for f in WRITE_FIELDS}
        entry = tuple(fields.pop(f"entry{i}") for i in range(5))
        return Write(**fields, entry=entry)

    def pending_append(self, st: Step, write: Write, cond: Any) -> None:
        self._append(st, "pending", WRITE_FIELDS, _write_values(write), cond, "the write queue has room (scope)")

    def pending_pop(self, st: Step) -> tuple[Write, Any]:
        slots = self.pending(st)
        head, there = slots[0]
        kept = [(_write_values(w), valid) for w, valid in slots[1:]] + [(_write_values(head), False)]
        for j, (values, valid) in enumerate(kept):
            for f, value in zip(WRITE_FIELDS, values, strict=True):
                st.set(self.ite(there, value, st.get("pending", j, f)), "pending", j, f)
            st.set(self.ite(there, valid, st.get("pending", j, "valid")), "pending", j, "valid")
        return head, there

    # ------------------------------------------------------------ queues kept in order without holes

    def _append(self, st: Step, name: str, fields: Sequence[str], values: Sequence[Any], cond: Any, room: str) -> None:
        size = self.scope.queue if name == "queue" else self.scope.pending
        count = sum(self.ite(st.get(name, j, "valid"), 1, 0) for j in range(size))
        st.require(room, self.or_(self.not_(cond), count < size))
        for j in range(size):
            here = self.and_(cond, self.eq(count, j))
            for f, value in zip(fields, values, strict=True):
                st.set(self.ite(here, value, st.get(name, j, f)), name, j, f)
            st.set(self.or_(here, st.get(name, j, "valid")), name, j, "valid")

    def _compact(self, st: Step, name: str, fields: Sequence[str], slots: Sequence[tuple[Sequence[Any], Any]]) -> None:
        """Keep the slots whose flag holds, in order, from slot 0."""
        positions, count = [], 0
        for _, keep in slots:
            positions.append(count)
            count = count + self.ite(keep, 1, 0)
        for j in range(len(slots)):
            chosen = [(values, self.and_(keep, self.eq(at, j))) for (values, keep), at in zip(slots, positions,
                                                                                              strict=True)]  # fmt: skip
            for f_index, f in enumerate(fields):
                value = st.get(name, j, f)
                for values, pick in chosen:
                    value = self.ite(pick, values[f_index], value)
                st.set(value, name, j, f)
            st.set(self.or_(*(pick for _, pick in chosen)), name, j, "valid")


def _write_values(w: Write) -> tuple[Any, ...]:
    """A write's fields in ``WRITE_FIELDS`` order."""
    fields = w._asdict()
    entry = fields.pop("entry")
    return (*fields.values(), *entry)


# ---------------------------------------------------------------- states


def state_paths(scope: Scope) -> list[tuple[Any, ...]]:
    """Every path of a state of the scope."""
    paths: list[tuple[Any, ...]] = [("now",), ("epoch",), ("bad",)]
    paths += [("vip", v, f) for v in range(scope.vips) for f in sy.VIP_FIELDS]
    for table in ("entry", "timer", "evip"):
        paths += [(table, s, k) for s in range(scope.stages) for k in range(scope.keys)]
    for table in ("pool", "cpool"):
        paths += [(table, v, ver) for v in range(scope.vips) for ver in range(scope.versions)]
    paths += [("cell", slot, i) for slot in range(scope.slots) for i in range(scope.cells)]
    paths += [(table, c) for table in ("wl", "cwl") for c in range(scope.connections)]
    paths += [("conn", c, f) for c in range(scope.connections) for f in (*sy.CONN_FIELDS, *sy.GHOST_FIELDS)]
    paths += [("queue", j, f) for j in range(scope.queue) for f in (*EVENT_FIELDS, "valid")]
    paths += [("pending", j, f) for j in range(scope.pending) for f in (*WRITE_FIELDS, "valid")]
    return paths


def fresh_state(scope: Scope, tag: str) -> dict[tuple[Any, ...], Any]:
    """A state of free constants, named by ``tag`` (e.g. the unrolling depth)."""
    return {path: (z3.Bool if path[-1] in BOOL_PATHS or path[0] in BOOL_TABLES else z3.Int)(
                f"{'.'.join(map(str, path))}@{tag}")
            for path in state_paths(scope)}  # fmt: skip


def initial(scope: Scope, s: dict[tuple[Any, ...], Any]) -> Any:
    """The switch after boot: every VIP on version 0 with pool 0, empty tables and queues."""
    values: dict[tuple[Any, ...], Any] = {("now",): 0, ("epoch",): 0, ("bad",): False}
    for v in range(scope.vips):
        values |= {("vip", v, f): value for f, value in zip(("present", "phase", "old", "new", "epoch", "slot"),
                                                              (True, d.NORMAL, 0, 0, 0, 0), strict=True)}  # fmt: skip
        values |= {("vip", v, f): value for f, value in zip(sy.CPU_ENTRY, (d.NORMAL, 0, 0, 0, 0), strict=True)}
        values |= {("vip", v, f): value for f, value in zip(sy.UPDATE_FIELDS, sy.UPDATE_IDLE, strict=True)}
        values[("vip", v, "requests")] = 0
        values[("vip", v, "oldest")] = NEVER
        for version in range(scope.versions):
            values[("pool", v, version)] = values[("cpool", v, version)] = 0 if version == 0 else EMPTY
    for table, empty in (("entry", EMPTY), ("timer", NEVER), ("evip", EMPTY)):
        values |= {(table, st, k): empty for st in range(scope.stages) for k in range(scope.keys)}
    values |= {("cell", slot, i): 0 for slot in range(scope.slots) for i in range(scope.cells)}
    values |= {(table, c): False for table in ("wl", "cwl") for c in range(scope.connections)}
    defaults = {**sy.FORGOTTEN, "expired": NEVER, "xstage": EMPTY, "g_start": NEVER, "g_last": NEVER, "g_closed": False,
                "g_anchor": EMPTY, "g_excused": False, "g_lost": NEVER, "g_cookie": NEVER, "g_tied": False}  # fmt: skip
    values |= {
        ("conn", c, f): defaults[f] for c in range(scope.connections) for f in (*sy.CONN_FIELDS, *sy.GHOST_FIELDS)
    }
    values |= {(name, j, "valid"): False for name, size in (("queue", scope.queue), ("pending", scope.pending))
               for j in range(size)}  # fmt: skip
    return z3.And(*(s[path] == value for path, value in values.items()))


# ---------------------------------------------------------------- the transition relation


class System:
    """Init and the step relation of the abstract system in one scope, unrolled on fresh states.

    A step is exactly one action of ``spec.system`` with free choices; a CPU step (learn,
    advance, expire, an operator's update, a restart) decides once the writes it made before
    have taken effect; its writes take effect in later ``apply_write`` steps, with packets
    between any two of them (a concrete step that makes some at once is one of these runs)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.o = SymbolicDomain(scope)
        self.paths = state_paths(scope)

    def fresh(self, tag: str) -> dict[tuple[Any, ...], Any]:
        return fresh_state(self.scope, tag)

    def init(self, s: dict[tuple[Any, ...], Any]) -> Any:
        return initial(self.scope, s)

    def step(self, pre: dict[tuple[Any, ...], Any], post: dict[tuple[Any, ...], Any], tag: str) -> Any:
        """pre → post is one step of the abstract system (choices named by ``tag``): the action chosen
        (``action@tag``), its guard and choice constraints, and every path's new value."""
        choice = z3.Int(f"action@{tag}")
        steps = []
        conditions = []
        for k, (_, act) in enumerate(self.actions(tag)):
            st = Step(pre)
            constraints = act(st) or []
            conditions.append(z3.Implies(choice == k, z3.And(*[_as_bool(g) for _, g in st.guards], *constraints)))
            steps.append(st)
        facts = [choice >= 0, choice < len(steps), *conditions]
        for path in self.paths:
            changed = [(k, st.changes[path]) for k, st in enumerate(steps) if path in st.changes]
            value = pre[path]
            for k, new in changed:
                value = z3.If(choice == k, new, value)
            facts.append(post[path] == value)
        return z3.And(*facts)

    def action_names(self) -> list[str]:
        return [name for name, _ in self.actions("names")]

    def actions(self, tag: str) -> list[tuple[str, Any]]:
        o, scope = self.o, self.scope
        found: list[tuple[str, Any]] = [("tick", lambda st: sy.tick(o, st, st.get("now") + 1))]
        for c in o.conns():
            found.append((f"packet c{c}", lambda st, c=c: self._packet(st, c, tag)))
        found.append(("apply_write", lambda st: sy.apply_write(o, st)))
        if scope.faults:
            for j in range(scope.queue):
                found.append((f"lose {j}", lambda st, j=j: sy.lose(o, st, j)))
                found.append((f"delay {j}", lambda st, j=j: self._delay(st, j, tag)))
            found.append(("restart", lambda st: (self._flush(st), sy.restart(o, st))[-1]))
        found.append(("cpu_learn", lambda st: self._learn(st, tag)))
        found.append(("cpu_advance", lambda st: self._advance(st, tag)))
        found.append(("cpu_expire", lambda st: self._expire(st, tag)))
        found.append(("operator_update", lambda st: self._update(st, tag)))
        return found

    # ------------------------------------------------------------ each action with its choices free

    def _packet(self, st: Step, c: int, tag: str) -> list[Any]:
        is_syn, is_end = z3.Bool(f"syn@{tag}"), z3.Bool(f"end@{tag}")
        out = sy.packet(self.o, st, c, is_syn, is_end, False, 0, True)
        st.set(z3.Or(st.get("bad"), out.bad), "bad")
        return []

    def _delay(self, st: Step, j: int, tag: str) -> list[Any]:
        sy.delay(self.o, st, j, z3.Int(f"visible@{tag}"))
        return []

    def _flush(self, st: Step) -> None:
        """A CPU step starts once its earlier writes have taken effect: here as ``apply_write``
        steps before it (with or without packets between), which covers the concrete CPU making
        them first (``spec.system.flush``) and keeps each step's formula small."""
        st.require("the CPU's earlier writes have taken effect", self.o.not_(self.o.pending(st)[0][1]))

    def _taken(self, tag: str) -> list[Any]:
        return [z3.Bool(f"read{j}@{tag}") for j in range(self.scope.queue)]

    def _places(self, tag: str) -> list[sy.Place]:
        return [sy.Place(z3.Bool(f"place{i}@{tag}"), z3.Bool(f"move_delete{i}@{tag}"), z3.Int(f"place_conn{i}@{tag}"),
                         z3.Int(f"place_stage{i}@{tag}")) for i in range(self.scope.places)]  # fmt: skip

    def _places_range(self, places: Sequence[sy.Place]) -> list[Any]:
        n = self.scope.connections
        return [z3.And(p.conn >= 0, p.conn < n) for p in places]

    def _start(self, st: Step, tag: str) -> tuple[list[sy.Start], list[Any]]:
        s = sy.Start(z3.Bool(f"start@{tag}"), z3.Int(f"start_vip@{tag}"), z3.Int(f"start_version@{tag}"),
                     z3.Int(f"start_slot@{tag}"), z3.Int(f"start_pool@{tag}"),
                     z3.Int(f"start_next_oldest@{tag}"))  # fmt: skip
        scope = self.scope
        pools = [
            st.get(t, v, ver) for t in ("pool", "cpool") for v in range(scope.vips) for ver in range(scope.versions)
        ]
        pending = [w.pool for w, _ in self.o.pending(st)]
        # A new pool is a new destination: it is none of those the switch holds or will write.
        fresh = [s.pool >= 1, *(s.pool != p for p in (*pools, *pending))]
        return [s], [z3.And(s.vip >= 0, s.vip < scope.vips), *fresh]

    def _reclaim(self, tag: str) -> tuple[list[sy.Reclaim], list[Any]]:
        r = sy.Reclaim(z3.Bool(f"reclaim@{tag}"), z3.Int(f"reclaim_vip@{tag}"), z3.Int(f"reclaim_version@{tag}"))
        # A table read at an index out of range would alias its last cell: the CPU names real versions.
        return [r], [r.version >= 0, r.version < self.scope.versions]

    def _learn(self, st: Step, tag: str) -> list[Any]:
        self._flush(st)
        limit = z3.Int(f"limit@{tag}")
        places = self._places(tag)
        sy.cpu_learn(self.o, st, self._taken(tag), limit, places)
        return [limit >= 1, *self._places_range(places)]

    def _advance(self, st: Step, tag: str) -> list[Any]:
        self._flush(st)
        places = self._places(tag)
        taken = self._taken(tag)
        # The update to start is chosen against the state after the step's reads and phase changes.
        starts, fresh = self._start(st, tag)
        reclaims, in_range = self._reclaim(tag)
        sy.cpu_advance(self.o, st, taken, places, list(self.o.vips()), starts, reclaims)
        return [*self._places_range(places), *fresh, *in_range]

    def _expire(self, st: Step, tag: str) -> list[Any]:
        self._flush(st)
        places = self._places(tag)
        forgets = [sy.Forget(z3.Bool(f"forget_c{c}@{tag}"), c) for c in self.o.conns()]
        reclaims, in_range = self._reclaim(tag)
        sy.cpu_expire(self.o, st, self._taken(tag), places, forgets, reclaims)
        return [*self._places_range(places), *in_range]

    def _update(self, st: Step, tag: str) -> list[Any]:
        self._flush(st)
        vip = z3.Int(f"update_vip@{tag}")
        starts, fresh = self._start(st, tag)
        sy.operator_update(self.o, st, vip, starts)
        return [vip >= 0, vip < self.scope.vips, *fresh]
