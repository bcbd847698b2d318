"""The PCC oracle: a black-box judge of observations.

It sees only what a target did (``model.observations``) and the timing
contract of the trace's config; never a target's internal state. Like
Porcupine, it partitions the history by key — here by *connection
incarnation* — so it is linear in the trace and each finding names just one
connection's packets.

Incarnations. Packets of one 5-tuple belong to one incarnation until a packet
arrives more than ``idle_timeout`` after the previous one, more than
``teardown_grace`` after the previous one once a FIN/RST was seen, or a SYN
arrives after a FIN/RST. A non-SYN packet that starts an incarnation after a
closed one is a leftover of that connection and is closing from the start (the
switch CPU only forgets a FIN when a new SYN arrives). Every forwarded packet
of an incarnation must reach the DIP of its first forwarded packet.

Each finding has a category:

``violation``     a PCC or authentication failure of the design. With SYN authentication on,
                  a packet forwarded from a source that has not proved its address is
                  ``spoofed``: a source proves it by answering, from the 5-tuple a SYN-ACK
                  went to, with that SYN-ACK's cookie + 1 (``silkcheck.wire``).
``digest-alias``  the residual risk of digests: the connection's lookups were
                  captured or released by another connection's entry, written
                  while the CPU had not yet learned this connection, or were
                  captured by an entry of another VIP's connection.
``dip-failure``   the first DIP failed; moving is the only option.
``fault``         a fault destroyed a learn event of this connection, and the CPU has
                  learned nothing from a later packet of it (in any incarnation).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from model.config import Config
from model.observations import FORWARD, CpuObservation, Observation, PacketObservation
from model.types import Dip, FiveTuple
from silkcheck.wire import CookieLedger, is_syn_ack

VIOLATION = "violation"
DIGEST_ALIAS = "digest-alias"
DIP_FAILURE = "dip-failure"
FAULT = "fault"
CATEGORIES = (VIOLATION, DIGEST_ALIAS, DIP_FAILURE, FAULT)


@dataclass
class Incarnation:
    ft: FiveTuple
    number: int
    packets: list[PacketObservation] = field(default_factory=list)
    anchor: PacketObservation | None = None
    ended: bool = False
    offending: list[PacketObservation] = field(default_factory=list)

    @property
    def start(self) -> int:
        return self.packets[0].index

    @property
    def dips(self) -> list[Dip]:
        seen: list[Dip] = []
        for p in self.packets:
            if p.action == FORWARD and p.dip not in seen:
                seen.append(p.dip)  # type: ignore[arg-type]
        return seen


@dataclass
class Finding:
    category: str
    kind: str  # "moved" | "spoofed"
    ft: FiveTuple
    incarnation: int
    offending: list[PacketObservation]
    packets: list[PacketObservation]
    explanation: str

    @property
    def first(self) -> PacketObservation:
        return self.offending[0]


@dataclass
class AuthTally:
    """SYN authentication as the wire shows it (counted only when the config has it on)."""

    syn_acks: int = 0
    proved: int = 0
    """Sources that answered a SYN-ACK sent to them."""
    served: int = 0
    """Of those, sources with a packet forwarded to a DIP after the proof."""
    whitelisted: int = 0
    whitelisted_unproved: int = 0
    """Sources the CPU whitelisted before they answered a SYN-ACK sent to them."""
    entries_unproved: int = 0
    """ConnTable entries the CPU wrote for connections whose source had not proved its address."""


@dataclass
class Verdict:
    findings: list[Finding]
    incarnations: list[Incarnation]
    auth: AuthTally = field(default_factory=AuthTally)

    @property
    def violations(self) -> list[Finding]:
        return [f for f in self.findings if f.category == VIOLATION]

    @property
    def ok(self) -> bool:
        return not self.violations

    def count(self, category: str) -> int:
        return sum(1 for f in self.findings if f.category == category)

    def summary(self) -> str:
        if not self.findings:
            return "PASS"
        parts = [f"{self.count(c)} {c}" for c in CATEGORIES if self.count(c)]
        return ("PASS" if self.ok else "FAIL") + " (" + ", ".join(parts) + ")"


@dataclass
class _History:
    """What the CPU observations say, indexed for the classifiers."""

    key_changes: dict[tuple[int, int, int], list[tuple[int, FiveTuple | None]]] = field(default_factory=dict)
    owner_now: dict[tuple[int, int, int], FiveTuple | None] = field(default_factory=dict)
    learned_at: dict[FiveTuple, list[int]] = field(default_factory=dict)
    installed_at: dict[FiveTuple, list[int]] = field(default_factory=dict)
    lost_at: dict[FiveTuple, list[tuple[int, int]]] = field(default_factory=dict)
    learn_sends: dict[FiveTuple, list[tuple[int, int]]] = field(default_factory=dict)
    """(index, time) of each packet that sent a learn event of its connection."""
    failed_dips: dict[Dip, int] = field(default_factory=dict)
    hit_owner: dict[int, FiveTuple | None] = field(default_factory=dict)

    def record(self, o: CpuObservation) -> None:
        # One CPU step lists its installs and removes apart, not in the order it made them
        # (a move's delete may free a key that another install then takes): what an entry
        # holds afterwards follows from each (key, owner)'s net count of writes.
        net: Counter[tuple[tuple[int, int, int], FiveTuple | None]] = Counter()
        for w in o.installs:
            self.key_changes.setdefault(w.key, []).append((o.index, w.owner))
            net[(w.key, w.owner)] += 1
            if w.owner is not None:
                self.installed_at.setdefault(w.owner, []).append(o.index)
        for w in o.removes:
            self.key_changes.setdefault(w.key, []).append((o.index, w.owner))
            net[(w.key, w.owner)] -= 1
        for (key, owner), change in net.items():
            if change < 0 and self.owner_now.get(key) == owner:
                del self.owner_now[key]
        for (key, owner), change in net.items():
            if change > 0:
                self.owner_now[key] = owner
        for kind, ft in o.learned:
            if kind != "auth":  # whitelisting a source does not teach the CPU the connection
                self.learned_at.setdefault(ft, []).append(o.index)
        for ft, sent in o.lost:
            self.lost_at.setdefault(ft, []).append((o.index, sent))
        for dip in o.failed_dips:
            self.failed_dips.setdefault(dip, o.index)


def _between(indices: Iterable[int], low: int, high: int) -> bool:
    return any(low <= i <= high for i in indices)


def judge(config: Config, observations: Sequence[Observation]) -> Verdict:
    history = _History()
    incarnations: list[Incarnation] = []
    live: dict[FiveTuple, Incarnation] = {}
    counts: dict[FiveTuple, int] = {}
    wire = CookieLedger()
    auth = AuthTally()
    served: set[int] = set()
    spoofed: list[Finding] = []

    for o in observations:
        if isinstance(o, CpuObservation):
            history.record(o)
            if config.syn_auth:
                auth.whitelisted += len(o.whitelisted)
                auth.whitelisted_unproved += sum(1 for ip in o.whitelisted if ip not in wire.proved)
                auth.entries_unproved += sum(1 for w in o.installs if w.owner and w.owner.src_ip not in wire.proved)
            continue
        ft = o.ft
        if any(kind != "auth" for kind in o.learned):
            history.learn_sends.setdefault(ft, []).append((o.index, o.t))
        if o.hit_key is not None:
            history.hit_owner[o.index] = history.owner_now.get(o.hit_key)
        inc = live.get(ft)
        if inc is None or _starts_new(config, inc, o):
            counts[ft] = counts.get(ft, 0) + 1
            # A stray non-SYN packet after a closed connection starts a leftover that is closing too.
            leftover = inc is not None and inc.ended and not o.packet.is_syn
            inc = Incarnation(ft, counts[ft], ended=leftover)
            live[ft] = inc
            incarnations.append(inc)
        inc.packets.append(o)
        if o.packet.is_end:
            inc.ended = True

        if config.syn_auth and o.packet.is_tcp:
            wire.note(o)
            auth.syn_acks += is_syn_ack(o)
            if o.action == FORWARD and ft.src_ip not in wire.proved:
                spoofed.append(
                    Finding(VIOLATION, "spoofed", ft, inc.number, [o], list(inc.packets),
                            f"{ft.src_ip:#x} never returned a valid cookie, yet packet #{o.index} reached {o.dip}")
                )  # fmt: skip
            elif o.action == FORWARD:
                served.add(ft.src_ip)

        if o.action != FORWARD:
            continue
        if inc.anchor is None:
            inc.anchor = o
        elif o.dip != inc.anchor.dip:
            inc.offending.append(o)

    findings = [_classify(inc, history) for inc in incarnations if inc.offending]
    auth.proved, auth.served = len(wire.proved), len(served)
    return Verdict(findings + spoofed, incarnations, auth)


def _starts_new(config: Config, inc: Incarnation, o: PacketObservation) -> bool:
    gap = o.t - inc.packets[-1].t
    if gap > config.idle_timeout:
        return True
    return inc.ended and (o.packet.is_syn or gap > config.teardown_grace)


def _classify(inc: Incarnation, h: _History) -> Finding:
    anchor = inc.anchor
    assert anchor is not None
    first = inc.offending[0]
    upto = [p for p in inc.packets if p.index <= first.index]
    base = (
        f"{inc.ft} incarnation {inc.number}: packet #{anchor.index} went to {anchor.dip}, "
        f"packet #{first.index} to {first.dip}"
    )

    def finding(category: str, explanation: str) -> Finding:
        return Finding(category, "moved", inc.ft, inc.number, inc.offending, upto, explanation)

    failed = h.failed_dips.get(anchor.dip)  # type: ignore[arg-type]
    if failed is not None and failed <= first.index:
        return finding(DIP_FAILURE, f"{base}; {anchor.dip} failed at #{failed}")
    if _fault_shaped(inc, first, h):
        return finding(FAULT, f"{base}; a fault lost its learn event")
    alias = _alias_change(inc, first, h)
    if alias is not None:
        return finding(DIGEST_ALIAS, f"{base}; {alias}")
    return finding(VIOLATION, base)


def _fault_shaped(inc: Incarnation, first: PacketObservation, h: _History) -> bool:
    """Did a fault destroy the learning of a packet of this 5-tuple, and the CPU learn nothing from
    a later packet of it before the first offending one? Then what the CPU believes of the
    connection (its version, whether a SYN reopened it) is what the fault left it, whichever
    incarnation the lost packet belonged to."""
    learned = h.learned_at.get(inc.ft, ())
    for lost, sent in h.lost_at.get(inc.ft, ()):
        if lost > first.index:
            continue
        later = [i for i, t in h.learn_sends.get(inc.ft, ()) if t > sent and i < first.index]
        if not later or not _between(learned, min(later) + 1, first.index):
            return True
    return False


def _alias_change(inc: Incarnation, first: PacketObservation, h: _History) -> str | None:
    """Did another connection's entry, written before the CPU knew this one, change its lookups?"""
    anchor = inc.anchor
    assert anchor is not None
    learned = [i for i in h.learned_at.get(inc.ft, ()) if i >= inc.start]
    for packet in (anchor, first):
        owner = h.hit_owner.get(packet.index)
        if owner is not None and owner.vip != inc.ft.vip:
            # Versions are per VIP: the captor's version names an unrelated pool of this VIP,
            # which may be reclaimed and reused while the captor lives.
            return f"packet #{packet.index} hit the entry of {owner}, a connection of another VIP"
    for packet in (anchor, first):
        if packet.hit_key is None:
            continue
        for index, owner in h.key_changes.get(packet.hit_key, ()):
            if owner == inc.ft or not anchor.index < index <= first.index:
                continue
            if any(i < index for i in learned):
                continue
            stage, bucket, digest = packet.hit_key
            return (
                f"the entry (stage {stage}, bucket {bucket}, digest {digest:#x}) of {owner} changed at #{index}"
                " before the CPU had learned this connection"
            )
    return None
