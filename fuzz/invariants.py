"""What must hold after every step: the PCC oracle, and the model's structural invariants.

The oracle is the black-box judge (``silkcheck.oracle.judge``): only its
``violation`` findings fail a run; ``digest-alias``, ``dip-failure`` and
``fault`` findings are the documented residual risks and are counted, not failed.

The structural invariants look inside the model (they are the model's own
consistency, not PCC). ConnTable cannot hold two entries with one
(stage, bucket, digest) key: the data plane keeps each stage as a dict, so
that is structural. What can drift is the CPU's shadow against the tables it
wrote, and the CPU's bookkeeping against a recount. The shadow runs ahead of
the tables by the writes still queued, so it is compared with the tables as
they will be once those are applied (``projected_conn``); what packets see in
between is judged by the oracle and the refinement check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from model import decisions as d
from model import events as ev
from model.config import Config
from model.observations import Observation, PacketObservation
from model.switch import Switch
from model.types import FiveTuple
from model.writes import FORGET, ConnDelete, ConnInsert
from silkcheck.oracle import Verdict, judge
from silkcheck.trace import TraceEvent
from silkcheck.wire import CookieLedger
from spec.check import Refinement
from spec.lemmas import LEMMAS

PCC = "pcc"
INVARIANT = "invariant"
REFINEMENT = "refinement"
CRASH = "crash"


class Failure(NamedTuple):
    category: str
    """``pcc`` (an oracle violation), ``refinement`` (a step the abstract system cannot take),
    ``invariant`` (structural) or ``crash`` (the model raised)."""
    kind: str
    """The oracle finding's kind, the abstract action and what of it fails, the invariant's name,
    or the exception's type."""
    message: str
    at: int
    """Index of the event at which it showed (for an oracle violation: the first offending packet)."""

    @property
    def signature(self) -> tuple[str, str]:
        """What a shrunk trace must still show to count as the same failure."""
        return self.category, self.kind


def oracle_failure(config: Config, observations: Sequence[Observation]) -> tuple[Failure | None, Verdict]:
    verdict = judge(config, observations)
    bad = verdict.violations
    if not bad:
        return None, verdict
    # The kind names every kind of violation present, so shrinking cannot trade one for another.
    kinds = "+".join(sorted({f.kind for f in bad}))
    return Failure(PCC, kinds, bad[0].explanation, max(f.first.index for f in bad)), verdict


# ---------------------------------------------------------------- structural invariants


def projected_conn(s: Switch) -> list[dict[tuple[int, int], int]]:
    """ConnTable (key -> version per stage) once the queued writes have taken effect."""
    tables = [{key: entry.version for key, entry in table.items()} for table in s.dataplane.conn]
    for write in s.pending:
        if isinstance(write, ConnInsert):
            tables[write.stage][(write.bucket, write.digest)] = write.version
        elif isinstance(write, ConnDelete):
            del tables[write.stage][(write.bucket, write.digest)]
    return tables


def shadow_matches_dataplane(s: Switch) -> str | None:
    for stage, (shadow, holds) in enumerate(zip(s.cpu.table, projected_conn(s), strict=True)):
        wrote = {key: conn.version for key, conn in shadow.items()}
        if wrote != holds:
            extra = sorted(set(holds.items()) ^ set(wrote.items()))[:3]
            return f"stage {stage}: CPU shadow and ConnTable differ in (key, version) {extra}"
    return None


def bucket_load_within_slots(s: Switch) -> str | None:
    for stage, (table, projected) in enumerate(zip(s.dataplane.conn, projected_conn(s), strict=True)):
        for bucket, count in Counter(bucket for bucket, _ in table).items():
            if count > s.config.slots_per_bucket:
                return f"stage {stage} bucket {bucket} holds {count} > {s.config.slots_per_bucket} entries"
        load = Counter(bucket for bucket, _ in projected)
        tracked = {b: n for b, n in s.cpu.load[stage].items() if n}
        if tracked != dict(load):
            return f"stage {stage}: CPU bucket loads {tracked} != recount {dict(load)}"
    return None


def version_refcounts(s: Switch) -> str | None:
    recount = Counter((conn.ft.vip, conn.version) for conn in s.cpu.known.values())
    tracked = {key: n for key, n in s.cpu.refs.items() if n}
    if tracked != dict(recount):
        return f"version reference counts {tracked} != recount {dict(recount)}"
    return None


def owned_resolve_to_own_version(s: Switch) -> str | None:
    tables = projected_conn(s)
    for conn in s.cpu.known.values():
        if conn.stage is None:
            continue
        if s.cpu.table[conn.stage].get(conn.hashes.key(conn.stage)) is not conn:
            return f"{conn.ft}: the shadow has no entry of its own at stage {conn.stage}"
        found = next(((stage, t[conn.hashes.key(stage)]) for stage, t in enumerate(tables)
                      if conn.hashes.key(stage) in t), None)  # fmt: skip
        if found is None or found[1] != conn.version:
            got = "a miss" if found is None else f"version {found[1]} at stage {found[0]}"
            return f"{conn.ft} owns version {conn.version} at stage {conn.stage} but its lookup gives {got}"
    return None


StructuralCheck = Callable[[Switch], str | None]
STRUCTURAL: tuple[StructuralCheck, ...] = (
    shadow_matches_dataplane,
    bucket_load_within_slots,
    version_refcounts,
    owned_resolve_to_own_version,
)


@dataclass
class Checker:
    """Checks a switch after every step; remembers which sources proved a cookie."""

    switch: Switch
    wire: CookieLedger = field(default_factory=CookieLedger)
    """Who answered which SYN-ACK, from the observations: never the model's (perhaps mutated) cookie."""
    captured: set[tuple[FiveTuple, int]] = field(default_factory=set)
    """(5-tuple, time) of packets whose lookup hit another VIP's entry: the residual digest
    risk (the oracle's ``digest-alias``), whose learn events carry a version of that other VIP."""
    every: int = 1
    """Check all invariants after every ``every``-th CPU step only (1: after each), except the
    one on in-flight learn events, checked after each: the queue drains, and a bad event in it
    may be gone by the next full check. ``check`` checks all now. Packets are always noted."""
    cpu_steps: int = 0
    now: int = 0
    """The time of the latest step."""
    refine: bool = True
    """Check every step against the abstract system (``spec.check``): the checker must then see
    every step from the switch's boot."""
    invariants: bool = True
    """Check the structural invariants (off: only refinement, when ``refine``)."""
    check_alpha: bool = False
    """The refinement check's debug mode (``Refinement.check_alpha``)."""
    lemmas: bool = False
    """Evaluate the induction's lemmas on α of every state too (with ``refine``; slow)."""
    refinement: Refinement | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.refine:
            self.refinement = Refinement(self.switch, check_alpha=self.check_alpha,
                                         lemmas=LEMMAS if self.lemmas else ())

    def after(self, event: TraceEvent, o: Observation) -> Failure | None:
        """Check the switch after the step that took ``event`` (observed as ``o``)."""
        self.now = o.t
        failure = self._refines(event, o)
        if failure is not None:
            return failure
        if isinstance(o, PacketObservation):
            # A packet changes no state the structural invariants read (only the CPU writes
            # ConnTable and the whitelist), and the learn event it queues carries a version in
            # VIPTable or in an entry: checking after CPU events is exact.
            self.wire.note(o)
            self._note_capture(o)
            return None
        self.cpu_steps += 1
        if not self.invariants:
            return None
        if self.cpu_steps % self.every:
            return self._inflight_learns_carry_live_versions(o.index)
        return self.check(o.index)

    def _refines(self, event: TraceEvent, o: Observation) -> Failure | None:
        if self.refinement is None:
            return None
        sent = ev.PacketArrives(o.t, o.packet) if isinstance(o, PacketObservation) else event
        mismatch = self.refinement.after(o.index, sent, o)  # type: ignore[arg-type]
        if mismatch is None:
            return None
        return Failure(REFINEMENT, f"{mismatch.action}: {mismatch.what}", str(mismatch), o.index)

    def check(self, index: int) -> Failure | None:
        """Every invariant, now (``index``: the event just taken)."""
        for check in STRUCTURAL:
            problem = check(self.switch)
            if problem is not None:
                return Failure(INVARIANT, check.__name__, problem, index)
        return self._whitelist_only_proved(index) or self._inflight_learns_carry_live_versions(index)

    def _note_capture(self, o: PacketObservation) -> None:
        if o.hit_key is None:
            return
        stage, bucket, digest = o.hit_key
        owner = self.switch.entry_owner(stage, (bucket, digest))
        if owner is not None and owner.vip != o.ft.vip:
            self.captured.add((o.ft, o.t))

    def _inflight_learns_carry_live_versions(self, index: int) -> Failure | None:
        """Every queued learn event the CPU will act on and cannot see yet carries a version it could
        not reclaim now: one in its VIP's VIPTable entry (as the CPU wrote it or as packets see it),
        held by a known connection of that VIP, or released less than a learn-delay bound ago.
        (Every CPU step that reclaims reads the visible events first.)

        This is why ``Cpu._reclaim`` waits: a miss learns a VIPTable version, which stays there
        until the learn events are drained a bound after t_seal takes effect; a hit learns its
        entry's version, and the entry (its idle timer refreshed by the hit) outlives the event,
        except when the CPU had already decided to delete it: the hit came between that decision
        and the delete taking effect, which is when the version's wait starts. Excepted: hits on
        another VIP's entry, whose version names no pool of this VIP (digest residual risk).
        Only CPU steps can break it, since a packet's learn event carries a version in VIPTable
        or in an entry. Excepted too: a late event (the ``late_learn`` fault, visible only past
        the bound), for which the bound the wait relies on does not hold; its connection is
        excused as a fault.
        """
        cpu = self.switch.cpu
        now = self.now
        for event in self.switch.dataplane.learn_queue:
            overdue = event.visible > event.sent + self.switch.config.learn_delay_bound
            if event.kind == "auth" or event.visible <= now or overdue or cpu.is_stale(event):
                continue
            if (event.ft, event.sent) in self.captured:
                continue
            key = (event.ft.vip, event.version)
            entries = (cpu.vip_entries[event.ft.vip], self.switch.dataplane.vips[event.ft.vip])
            in_entry = any(event.version in (e.old_version, e.new_version) for e in entries)
            # A queued delete of an entry holding it will restart the wait when it takes effect.
            referenced = cpu.refs.get(key, 0) > 0 or any(
                isinstance(w, ConnDelete) and w.purpose == FORGET and (w.owner.vip, w.version) == key
                for w in self.switch.pending
            )
            waited = now >= cpu.released.get(key, now) + self.switch.config.learn_delay_bound
            if d.may_reclaim(d.CONCRETE, in_entry, referenced, waited):
                problem = (
                    f"a queued {event.kind} learn event of {event.ft} (sent {event.sent}) carries version "
                    f"{event.version}, which the CPU may reclaim now: no VIPTable entry and no known connection "
                    f"of its VIP holds it, and it was released at {cpu.released.get(key)}"
                )
                return Failure(INVARIANT, "inflight_learns_carry_live_versions", problem, index)
        return None

    def _whitelist_only_proved(self, index: int) -> Failure | None:
        unproved = self.switch.dataplane.whitelist - self.wire.proved
        if unproved:
            sources = ", ".join(f"{ip:#x}" for ip in sorted(unproved)[:3])
            message = f"whitelisted without answering a SYN-ACK sent to them: {sources}"
            return Failure(INVARIANT, "whitelist_only_proved", message, index)
        return None
