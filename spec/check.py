"""Refinement checking: every step the model takes must be a step of the abstract system.

``Refinement`` follows one ``model.switch.Switch``. After each concrete step it maps
the event to the abstract actions it stands for (a CPU step is the composite the
CPU's method is: read the learn events, place, decide the protocol, start
updates, reclaim, then the first writes take effect), with the abstract
system's free choices solved from the concrete state (which events were read,
which writes were made, which versions and slots an update took), evaluates
their guards and effects with ``spec.concrete.ConcreteDomain``, and compares the
result with α of the switch afterwards. A failure names the event, the
abstract action, and the guard conjunct or the state field that does not hold.

Two shortcuts keep it cheap enough for campaigns, each exact (the reason is
beside it): after a packet or a fault of the learn channel, α is the previous
one with the few paths the step can change read again
(``spec.concrete.alpha_after_packet``), and only those and the step's effects
are compared; the quantifiers over connections range over the ones the CPU
knows or can learn in the step (``spec.concrete.in_scope``). ``check_alpha``
checks both against the plain check on every step (a test runs it on walks
and on every regression trace).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from model import events as ev
from model.observations import DROP, FORWARD, REPLY, CpuObservation, Observation, PacketObservation
from model.switch import Switch
from model.types import ACK, RST, SYN
from spec import system as sy
from spec.concrete import (
    ConcreteDomain,
    Path,
    QueueKeys,
    Readers,
    State,
    abstract_write,
    alpha,
    alpha_after_packet,
    default,
)
from spec.lemmas import Lemma
from spec.system import EMPTY, Step

OUTCOMES = {FORWARD: sy.FORWARD, DROP: sy.DROP, REPLY: sy.REPLY}


class Problem(NamedTuple):
    what: str
    """The guard conjunct that fails, or the state field or observation that differs, by name."""
    detail: str
    """The same, with the connections and values it is about."""


class Mismatch(NamedTuple):
    """Where the concrete step leaves the abstract system."""

    index: int
    """The event's position in the trace."""
    action: str
    """The abstract action (or composite) the event maps to."""
    what: str
    detail: str

    def __str__(self) -> str:
        return f"events[{self.index}] as {self.action}: {self.detail}"


@dataclass
class Refinement:
    """Checks each step of ``switch`` against the abstract system (``after`` every step)."""

    switch: Switch
    state: State = field(init=False)
    ghost: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    decided: list[int] = field(default_factory=list)
    """When the CPU decided each of its pending writes."""
    steps: int = 0
    vips: list[Any] = field(init=False)
    readers: Readers = field(init=False)
    """Every connection that has sent a packet (nothing else can be in any state), by the keys it reads."""
    check_alpha: bool = False
    """Debug mode: check on every step that α read incrementally is α in full, and that quantifying
    over the connections in scope only gives the step's verdict and effect over all of them."""
    lemmas: Sequence[Lemma] = ()
    """Lemmas of the induction (``spec.lemmas``) evaluated on α of the state after every step: one
    that fails on a run that refines the abstract system is not an invariant of it."""
    queue_keys: QueueKeys = field(default_factory=QueueKeys)
    """What is queued, kept from step to step (``ConcreteDomain.queued``)."""

    def __post_init__(self) -> None:
        self.ghost[("now",)] = 0
        self.state = alpha(self.switch, self.decided, self.ghost)
        self.vips = sorted(self.switch.cpu.vip_entries)
        self.readers = Readers(self.switch.dataplane.plan, self.switch.config.stages)

    def after(self, index: int, event: ev.Event, observation: Observation) -> Mismatch | None:
        """Check the step that took ``event`` (observed as ``observation``) from the last state."""
        self.steps += 1
        pre = self.state
        decided = self._decided_after(event, observation)
        post, read = self._alpha_after(event, observation, decided)
        if isinstance(event, ev.PacketArrives):
            self.readers.add(event.packet.ft)
        name, problem, st = self._evaluate(event, observation, pre, (post, read), decided)
        self.ghost.update((path, value) for path, value in st.changes.items() if path[-1] in HISTORY)
        self.decided = decided
        self.state = post
        if problem is None and self.lemmas:
            # Over every connection seen: a lemma may speak of one the CPU does not know.
            everyone = ConcreteDomain(self.switch.config, self.switch.dataplane.plan, self.vips, self.readers)
            problem = _lemma_fails(everyone.about(post), post, self.lemmas)
        return None if problem is None else Mismatch(index, name, *problem)

    def _alpha_after(self, event: ev.Event, obs: Observation, decided: list[int]) -> tuple[State, list[Path] | None]:
        """α of the switch after the step, and the paths it read again (None: all of them). A packet
        or a fault of the learn channel changes few paths (``alpha_after_packet``); a CPU step, in
        full."""
        if isinstance(event, ev.PacketArrives):
            assert isinstance(obs, PacketObservation)
            return alpha_after_packet(self.state, self.switch, event.packet.ft, obs.hit_key)
        if isinstance(event, ev.LearnLost | ev.LearnDelayed):
            return alpha_after_packet(self.state, self.switch, None, None)
        return alpha(self.switch, decided, self.ghost), None

    def _evaluate(self, event: ev.Event, obs: Observation, pre: State, after: tuple[State, list[Path] | None],
                  decided: list[int]) -> tuple[str, Problem | None, Step]:  # fmt: skip
        """The abstract step the event maps to, from ``pre``, judged against α afterwards; with
        ``check_alpha``, first that the shortcuts change nothing (``_shortcut_differs``)."""
        post, read = after
        config, plan = self.switch.config, self.switch.dataplane.plan
        o = ConcreteDomain(config, plan, self.vips, self.readers, before=pre, queue_keys=self.queue_keys)
        name, problem, st = self._abstract_step(o, event, obs, pre, post, read)
        if self.check_alpha:
            everyone = ConcreteDomain(config, plan, self.vips, self.readers)
            full = alpha(self.switch, decided, self.ghost)
            unscoped = self._abstract_step(everyone, event, obs, pre, full, None)
            problem = _shortcut_differs(post, full, (problem, st), unscoped) or problem
        return name, problem, st

    def _abstract_step(self, o: ConcreteDomain, event: ev.Event, obs: Observation, pre: State, post: State,
                       read: list[Path] | None) -> tuple[str, Problem | None, Step]:  # fmt: skip
        st = Step(pre)
        sy.tick(o, st, event.t)
        name, problem = self._composite(o, st, event, obs, pre, post)
        return name, problem or _first_false(st) or _differs(st, pre, post, read), st

    def _decided_after(self, event: ev.Event, observation: Observation) -> list[int]:
        if isinstance(event, ev.CpuWrites):
            return self.decided[event.count :]
        if isinstance(event, ev.CPU_ACTIONS):
            assert isinstance(observation, CpuObservation)
            return [event.t] * observation.pending
        return self.decided

    # ------------------------------------------------------------ events as abstract actions

    def _composite(
        self, o: ConcreteDomain, st: Step, event: ev.Event, obs: Observation, pre: State, post: State
    ) -> tuple[str, Problem | None]:
        if isinstance(event, ev.PacketArrives):
            assert isinstance(obs, PacketObservation)
            return "packet", _packet(o, st, event, obs)
        if isinstance(event, ev.LearnLost):
            sy.lose(o, st, event.index)
            return "lose", None
        if isinstance(event, ev.LearnDelayed):
            e = pre["queue",][event.index]
            sy.delay(o, st, event.index, max(e.visible, e.sent + event.delay))
            return "delay", None
        if isinstance(event, ev.LearnLate):
            e = pre["queue",][event.index]
            sy.late(o, st, event.index, max(e.visible, e.sent + event.delay))
            return "late", None
        assert isinstance(obs, CpuObservation)
        if isinstance(event, ev.CpuWrites):
            for _ in range(event.count):
                sy.apply_write(o, st)
            return "apply_write", None
        flushed = len(pre["pending",])
        sy.flush(o, st, flushed)
        made = [abstract_write(w, event.t) for w in (*obs.applied[flushed:], *self.switch.pending)]
        name, problem = _CPU_STEPS[type(event)](o, st, event, pre, post, made)
        if problem is None and st.get("pending") != tuple(made):
            problem = _writes_differ(st.get("pending"), made)
        for _ in range(len(obs.applied) - flushed):
            sy.apply_write(o, st)
        return name, problem


def _packet(o: ConcreteDomain, st: Step, e: ev.PacketArrives, obs: PacketObservation) -> Problem | None:
    p = e.packet
    bare_ack = p.flags & (SYN | ACK | RST) == ACK
    out = sy.packet(o, st, p.ft, p.is_syn, p.is_end, bare_ack, p.ack, p.is_tcp)
    learned = tuple(sy.EVENT_NAMES[kind] for kind, sent in out.learned if sent)
    expected = {
        "action": OUTCOMES[obs.action] == out.action,
        "DIP": obs.action != FORWARD or obs.dip == out.dest,
        "learn events": obs.learned == learned,
        "ConnTable hit": (obs.hit_key[0] if obs.hit_key else EMPTY) == out.hit_stage,
        "SYN-ACK": (obs.action == REPLY and obs.reply_flags == SYN | ACK) == out.reply_syn_ack,
    }
    wrong = [name for name, ok in expected.items() if not ok]
    if wrong:
        what = f"the packet's {', '.join(wrong)}"
        return Problem(what, f"{what} differ from the abstract pipeline's ({obs.action} {obs.dip} learned "
                             f"{obs.learned}; abstract: {out.action} {out.dest} learned {learned})")  # fmt: skip
    if out.bad:
        return Problem("PCC of the abstract system", f"PCC of the abstract system: packet of {p.ft} went to "
                       f"{out.dest}, its incarnation's anchor is {st.state['conn', p.ft, 'g_anchor']}")  # fmt: skip
    return None


Made = list[sy.Write]
CpuStep = Callable[[ConcreteDomain, Step, Any, State, State, Made], tuple[str, Problem | None]]


def _taken(pre: State, post: State) -> list[bool]:
    """Which queued events a CPU step read: the queue afterwards is what it left, in order. Matched
    from the newest, so of two equal events the older counts as read (the CPU reads oldest first)."""
    left = list(post["queue",])
    taken = []
    for e in reversed(pre["queue",]):
        if left and left[-1] == e:
            left.pop()
            taken.append(False)
        else:
            taken.append(True)
    return taken[::-1]


class _Writes:
    """The writes a CPU step made, read in order as the abstract decisions they stand for."""

    def __init__(self, made: Made) -> None:
        self.made = made
        self.at = 0

    def take(self, kinds: Sequence[int]) -> sy.Write | None:
        while self.at < len(self.made) and self.made[self.at].kind == sy.W_WHITELIST:
            self.at += 1  # made while reading the learn events
        if self.at < len(self.made) and self.made[self.at].kind in kinds:
            self.at += 1
            return self.made[self.at - 1]
        return None

    def places(self) -> list[sy.Place]:
        found = []
        while (w := self.take((sy.W_INSERT, sy.W_MOVE_DELETE))) is not None:
            found.append(sy.Place(True, w.kind == sy.W_MOVE_DELETE, w.owner, w.stage))
        return found

    def starts(self, post: State) -> list[sy.Start]:
        """The updates started, each with its VIP's next waiting request time from ``post`` (a step
        starts at most one update per VIP, after any request it takes)."""
        found = []
        while (w := self.take((sy.W_POOL,))) is not None:
            vip_write = self.take((sy.W_VIP,))
            slot = EMPTY if vip_write is None else vip_write.entry[4]
            found.append(sy.Start(True, w.vip, w.version, slot, w.pool, post["vip", w.vip, "oldest"]))
        return found

    def reclaims(self) -> list[sy.Reclaim]:
        found = []
        while (w := self.take((sy.W_POOL_DELETE,))) is not None:
            found.append(sy.Reclaim(True, w.vip, w.version))
        return found

    def vip_order(self, running: Sequence[Any]) -> list[Any]:
        """The VIPs whose updates the step advanced, in the order it wrote them, then the others."""
        order = []
        while (w := self.take((sy.W_VIP,))) is not None:
            order.append(w.vip)
        return order + [v for v in running if v not in order]

    def rest(self) -> Problem | None:
        self.take(())
        if self.at == len(self.made):
            return None
        w = self.made[self.at]
        what = f"a {sy.WRITE_NAMES[w.kind]} write where the abstract step makes none"
        return Problem(what, f"the CPU made {what}: {w}")


def _learn(o: ConcreteDomain, st: Step, e: ev.CpuLearns, pre: State, post: State,
           made: Made) -> tuple[str, Problem | None]:  # fmt: skip
    writes = _Writes(made)
    sy.cpu_learn(o, st, _taken(pre, post), e.limit, writes.places())
    return "cpu_learn", writes.rest()


def _advance(o: ConcreteDomain, st: Step, e: Any, pre: State, post: State, made: Made) -> tuple[str, Problem | None]:
    writes = _Writes(made)
    places = writes.places()
    order = writes.vip_order([v for v in o.vips() if pre["vip", v, "up"]])
    sy.cpu_advance(o, st, _taken(pre, post), places, order, writes.starts(post), writes.reclaims())
    return "cpu_advance", writes.rest()


def _expire(o: ConcreteDomain, st: Step, e: Any, pre: State, post: State, made: Made) -> tuple[str, Problem | None]:
    writes = _Writes(made)
    places = writes.places()
    deleted = []
    while (w := writes.take((sy.W_FORGET_DELETE,))) is not None:
        deleted.append(w.owner)
    # Known once the step has read its events and not afterwards: forgotten (first the unplaced
    # ones, which need no write).
    taken = _taken(pre, post)
    after_reading = Step(st.state)
    after_reading.changes = dict(st.changes)
    sy.read_learns(o, after_reading, taken, None)
    silent = [c for c in o.conns()
              if after_reading.get("conn", c, "known") and not post["conn", c, "known"]
              and c not in deleted]  # fmt: skip
    forgets = [sy.Forget(True, c) for c in (*silent, *deleted)]
    sy.cpu_expire(o, st, taken, places, forgets, writes.reclaims())
    return "cpu_expire", writes.rest()


def _requested(o: ConcreteDomain, pre: State, post: State, made: Made) -> list[Any]:
    """VIPs a step asked a new pool for: their request queue grew, or an update started from it."""
    started = [w.vip for w in made if w.kind == sy.W_POOL]
    return [v for v in o.vips() if post["vip", v, "requests"] + started.count(v) > pre["vip", v, "requests"]]


def _update(o: ConcreteDomain, st: Step, e: ev.UpdateRequested, pre: State, post: State,
            made: Made) -> tuple[str, Problem | None]:  # fmt: skip
    writes = _Writes(made)
    sy.operator_update(o, st, e.vip, writes.starts(post))
    return "operator_update", writes.rest()


def _dip_fail(o: ConcreteDomain, st: Step, e: ev.DipFails, pre: State, post: State,
              made: Made) -> tuple[str, Problem | None]:  # fmt: skip
    writes = _Writes(made)
    sy.dip_fail(o, st, [(True, v) for v in _requested(o, pre, post, made)], writes.starts(post))
    return "dip_fail", writes.rest()


def _restart(o: ConcreteDomain, st: Step, e: Any, pre: State, post: State, made: Made) -> tuple[str, Problem | None]:
    sy.restart(o, st)
    return "restart", _Writes(made).rest()


_CPU_STEPS: dict[type, CpuStep] = {
    ev.CpuLearns: _learn,
    ev.CpuAdvances: _advance,
    ev.CpuExpires: _expire,
    ev.UpdateRequested: _update,
    ev.DipFails: _dip_fail,
    ev.CpuRestarts: _restart,
}


# ---------------------------------------------------------------- judging a step


def _first_false(st: Step) -> Problem | None:
    for name, cond in st.guards:
        if not cond:
            return Problem(f"guard: {_GENERIC.sub('', name)}", f"guard does not hold: {name}")
    return None


_GENERIC = re.compile(r" \([^)]*\)$")
"""What a guard's name says of the connection or VIP it was evaluated for."""


HISTORY = frozenset(("now", *sy.GHOST_FIELDS))
"""The last names of the history paths: the clock and the ghost fields, the abstract system's own
history, which α does not read (no other path ends in one of them)."""


def _differs(st: Step, pre: State, post: State, read: Iterable[Path] | None) -> Problem | None:
    """The first field where the abstract step's effect and α of the concrete state afterwards differ
    (``read``: the only paths where ``post`` may differ from ``pre``; None: any)."""
    if read is None:
        expected = dict(pre)
        for p, v in st.changes.items():
            if p[-1] in HISTORY:
                continue
            if p in post or v != default(p):
                expected[p] = v
            else:  # left at its default, which α omits
                expected.pop(p, None)
        if expected == post:  # the common case, compared at C speed
            return None
        changed = {p for p, _ in post.items() ^ pre.items()}
        changed |= st.changes.keys()
    else:
        changed = st.changes.keys() | set(read)
    changes = st.changes
    wrong = [p for p in changed if p[-1] not in HISTORY and (changes[p] if p in changes else pre[p]) != post[p]]
    for path in sorted(wrong, key=repr)[:1]:
        expected = st.changes[path] if path in st.changes else pre[path]
        what = f"effect on {path[0]}.{path[-1]}" if path[0] in ("conn", "vip") else f"effect on {path[0]}"
        return Problem(what, f"effect on {_path_text(path)}: the abstract step gives {expected!r}, the model has "
                             f"{post[path]!r}")  # fmt: skip
    return None


def _shortcut_differs(post: State, full: State, scoped: tuple[Problem | None, Step],
                      unscoped: tuple[str, Problem | None, Step]) -> Problem | None:  # fmt: skip
    """Where the refinement check's shortcuts would change its verdict: α read incrementally
    (``post``) against α in full, and the step over the connections in scope judged on the paths
    α read again (``scoped``) against the step over every connection seen judged on all of α in
    full (``unscoped``): the same problem, guard values and effects."""
    if post != full:
        path = sorted(post.keys() ^ full.keys() | {p for p in post.keys() & full.keys() if post[p] != full[p]},
                      key=repr)[0]  # fmt: skip
        return Problem("incremental α", f"incremental α differs from α at {_path_text(path)}: it has "
                       f"{post.get(path, '(default)')!r}, α {full.get(path, '(default)')!r}")  # fmt: skip
    (problem, st), (_, problem_all, everyone) = scoped, unscoped
    same = problem == problem_all and _guard_values(everyone) == _guard_values(st) and all(
        everyone.get(*p) == st.get(*p) for p in everyone.changes.keys() | st.changes.keys())  # fmt: skip
    if same:
        return None
    return Problem("connections in scope", f"the step over every connection seen differs from the step over "
                   f"those in scope ({problem_all} / {problem})")  # fmt: skip


def _guard_values(st: Step) -> list[tuple[str, bool]]:
    return [(name, bool(cond)) for name, cond in st.guards]
def _lemma_fails(o: ConcreteDomain, state: State, lemmas: Sequence[Lemma]) -> Problem | None:
    st = Step(state)
    for lemma in lemmas:
        failing = lemma.failing(o, st)
        if failing:
            about = "the state" if failing[0] is None else str(failing[0])
            return Problem(f"lemma: {lemma.name}", f"lemma does not hold of {about}: {lemma.name}")
    return None


def _writes_differ(spec: Sequence[sy.Write], made: Sequence[sy.Write]) -> Problem:
    for i, (a, b) in enumerate(zip(spec, made, strict=False)):
        if a != b:
            return Problem("the step's writes",
                           f"write #{i} of the step: the abstract step makes {a}, the CPU made {b}")  # fmt: skip
    return Problem("the step's writes", f"the abstract step makes {len(spec)} writes, the CPU made {len(made)}")


def _path_text(path: tuple[Any, ...]) -> str:
    return "/".join(str(p) for p in path)


class Refined(NamedTuple):
    """What the refinement check of one run found: the first mismatch, if any, and how many steps it checked."""

    mismatch: Mismatch | None
    steps: int


def check_run(switch: Switch, events: Sequence[Any], observations: Iterable[Observation]) -> Refined:
    """Check every step of a run of ``events`` on ``switch``, whose ``observations`` step it lazily
    (one event each), stopping at the first step that the abstract system cannot take."""
    refinement = Refinement(switch)
    for index, (event, observation) in enumerate(zip(events, observations, strict=False)):
        packet = isinstance(observation, PacketObservation)
        sent = ev.PacketArrives(observation.t, observation.packet) if packet else event  # type: ignore[union-attr]
        mismatch = refinement.after(index, sent, observation)
        if mismatch is not None:
            return Refined(mismatch, refinement.steps)
    return Refined(None, refinement.steps)
