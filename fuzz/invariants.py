"""What must hold after every step: the PCC oracle, and the model's structural invariants.

The oracle is the black-box judge (``silkcheck.oracle.judge``): only its
``violation`` findings fail a run; ``digest-alias``, ``dip-failure`` and
``fault`` findings are the documented residual risks and are counted, not failed.

The structural invariants look inside the model (they are the model's own
consistency, not PCC). ConnTable cannot hold two entries with one
(stage, bucket, digest) key: the data plane keeps each stage as a dict, so
that is structural. What can drift is the CPU's shadow against the tables it
wrote, and the CPU's bookkeeping against a recount.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from model import decisions as d
from model.config import Config
from model.observations import Observation, PacketObservation
from model.switch import Switch
from model.types import FiveTuple
from silkcheck.oracle import Verdict, judge
from silkcheck.wire import CookieLedger

PCC = "pcc"
INVARIANT = "invariant"
CRASH = "crash"


class Failure(NamedTuple):
    category: str
    """``pcc`` (an oracle violation), ``invariant`` (structural) or ``crash`` (the model raised)."""
    kind: str
    """The oracle finding's kind, the invariant's name, or the exception's type."""
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


def shadow_matches_dataplane(s: Switch) -> str | None:
    for stage, (shadow, table) in enumerate(zip(s.cpu.table, s.dataplane.conn, strict=True)):
        wrote = {key: conn.version for key, conn in shadow.items()}
        holds = {key: entry.version for key, entry in table.items()}
        if wrote != holds:
            extra = sorted(set(holds.items()) ^ set(wrote.items()))[:3]
            return f"stage {stage}: CPU shadow and ConnTable differ in (key, version) {extra}"
    return None


def bucket_load_within_slots(s: Switch) -> str | None:
    for stage, table in enumerate(s.dataplane.conn):
        load = Counter(bucket for bucket, _ in table)
        for bucket, count in load.items():
            if count > s.config.slots_per_bucket:
                return f"stage {stage} bucket {bucket} holds {count} > {s.config.slots_per_bucket} entries"
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
    for conn in s.cpu.known.values():
        if conn.stage is None:
            continue
        if s.cpu.table[conn.stage].get(conn.hashes.key(conn.stage)) is not conn:
            return f"{conn.ft}: the shadow has no entry of its own at stage {conn.stage}"
        found = s.dataplane.lookup(conn.hashes)
        if found is None or found[1].version != conn.version:
            got = "a miss" if found is None else f"version {found[1].version} at stage {found[0]}"
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

    def after(self, o: Observation) -> Failure | None:
        """Check the switch after the step that ``o`` observed."""
        if isinstance(o, PacketObservation):
            # A packet changes no state the structural invariants read (only the CPU writes
            # ConnTable and the whitelist), and the learn event it queues carries a version in
            # VIPTable or in an entry: checking after CPU events is exact.
            self.wire.note(o)
            self._note_capture(o)
            return None
        self.cpu_steps += 1
        if self.cpu_steps % self.every:
            return self._inflight_learns_carry_live_versions(o.index)
        return self.check(o.index)

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
        owner = self.switch.cpu.table[stage].get((bucket, digest))
        if owner is not None and owner.ft.vip != o.ft.vip:
            self.captured.add((o.ft, o.t))

    def _inflight_learns_carry_live_versions(self, index: int) -> Failure | None:
        """Every queued learn event the CPU will act on carries a version it could not reclaim
        even without the learn-delay wait: one in its VIP's VIPTable entry or held by a known
        connection of that VIP.

        With ``idle_timeout, teardown_grace >= learn_delay_bound`` (the config's rule) this
        holds, which makes that wait in ``Cpu._reclaim`` redundant and the mutant without it
        equivalent: a miss learns a VIPTable version, which stays there until the learn events
        are drained a bound after t_seal; a hit learns its entry's version, and the entry (its
        idle timer refreshed by the hit) outlives the event. Excepted: hits on another VIP's
        entry, whose version names no pool of this VIP (digest residual risk). Only CPU steps
        can break it, since a packet's learn event carries a version in VIPTable or in an entry.
        """
        cpu = self.switch.cpu
        for event in self.switch.dataplane.learn_queue:
            if event.kind == "auth" or cpu.is_stale(event) or (event.ft, event.sent) in self.captured:
                continue
            entry = cpu.vip_entries[event.ft.vip]
            in_entry = event.version in (entry.old_version, entry.new_version)
            referenced = cpu.refs.get((event.ft.vip, event.version), 0) > 0
            if d.may_reclaim(d.CONCRETE, in_entry, referenced, True):
                problem = (
                    f"a queued {event.kind} learn event of {event.ft} (sent {event.sent}) carries version "
                    f"{event.version}, which no VIPTable entry and no known connection of its VIP holds"
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
