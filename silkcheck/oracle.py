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
``write-race``    the residual risk of writing entries one by one: the connection's own
                  entry, as the CPU knew it from an earlier incarnation of the 5-tuple,
                  was removed (idle, or closed past its grace) or installed by a write
                  the CPU decided before this incarnation's first packet, and took
                  effect after it. The CPU cannot know of an incarnation that starts
                  between its decision and the write, and no table write can be made
                  conditional on what packets did meanwhile.
``dip-failure``   the first DIP failed; moving is the only option.
``fault``         a fault destroyed a learn event of this connection (lost it, or delayed
                  it past the learn-delay bound), and the CPU has learned nothing from a
                  later packet of it (in any incarnation).

Streaming. ``Oracle`` takes observations one at a time (in time order) and keeps
state per live incarnation: one is dropped once ``idle_timeout`` has passed since
its last packet (any later packet of its 5-tuple starts a new one), and the CPU
history is pruned to what live incarnations can still be judged against. Every
finding is classified at its first offending packet, from the history up to
that packet, which is all the classification reads. Per 5-tuple it keeps only
what later incarnations are numbered and judged by (a few integers). ``judge``
is the oracle keeping every incarnation and packet, for the callers that report
them all.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from model.config import Config
from model.observations import FORWARD, CpuObservation, EntryWrite, Observation, PacketObservation
from model.types import Dip, FiveTuple
from silkcheck.wire import CookieLedger, is_syn_ack

VIOLATION = "violation"
DIGEST_ALIAS = "digest-alias"
WRITE_RACE = "write-race"
DIP_FAILURE = "dip-failure"
FAULT = "fault"
CATEGORIES = (VIOLATION, DIGEST_ALIAS, WRITE_RACE, DIP_FAILURE, FAULT)
STREAM_WINDOW = 8
"""Packets a streaming oracle keeps per incarnation for its report: the first ones, then the latest."""

Key = tuple[int, int, int]


class KeyChange(NamedTuple):
    """A ConnTable write at one key, as a CPU step observed it."""

    index: int
    """Where it took effect."""
    decided: int
    """Where the CPU decided it (what the CPU knew then is what it could protect)."""
    owner: FiveTuple | None
    version: int
    removed: bool


@dataclass(eq=False)
class Incarnation:
    ft: FiveTuple
    number: int
    start: int
    """Index of its first packet."""
    last_t: int
    serial: int = 0
    """Order of creation among all incarnations (findings are reported in this order)."""
    packets: list[PacketObservation] = field(default_factory=list)
    """Its packets: all of them, or for a streaming oracle the first and latest few."""
    seen: int = 0
    """How many packets it had."""
    anchor: PacketObservation | None = None
    anchor_entry: EntryWrite | None = None
    """The write of the ConnTable entry the anchor hit, when it did."""
    ended: bool = False
    offending: list[PacketObservation] = field(default_factory=list)
    first_learned: int | None = None
    """The first CPU observation that learned its 5-tuple from a packet sent since its start (or
    since a fault last destroyed all the CPU had learned of it)."""
    learned_until: int = 0
    """Send time of the latest of its packets whose learn event the CPU read."""
    forgotten: int | None = None
    """The CPU observation where a fault last destroyed all the CPU had learned of it."""
    finding: Finding | None = None

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
    """Every incarnation (``judge``); empty for a streaming oracle, which counts them instead."""
    auth: AuthTally = field(default_factory=AuthTally)
    connections: int = 0
    """How many incarnations there were."""
    packets: int = 0

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


class _Flow:
    """What the oracle remembers of a 5-tuple beyond its live incarnation."""

    __slots__ = ("healer_t", "last_send_t", "lost", "number", "was_ended")

    def __init__(self) -> None:
        self.number = 0
        self.was_ended = False
        """Whether its latest incarnation (if no longer live) had seen a FIN/RST."""
        self.last_send_t: int | None = None
        """Time of its latest packet that sent a learn event."""
        self.healer_t: int | None = None
        """Time of its latest learn-sending packet before the CPU last learned it."""
        self.lost: list[tuple[int, int]] = []
        """(observation index, send time) of each destroyed learn event a later one has not healed."""

    def healed(self, sent: int) -> bool:
        """Did a packet sent after ``sent`` send a learn event that the CPU then learned?"""
        return self.healer_t is not None and self.healer_t > sent


class Oracle:
    """The PCC oracle over a stream of observations; ``window`` None keeps every incarnation and packet."""

    def __init__(self, config: Config, window: int | None = STREAM_WINDOW) -> None:
        self.config = config
        self.window = window
        self.flows: dict[FiveTuple, _Flow] = {}
        self.live: OrderedDict[FiveTuple, Incarnation] = OrderedDict()
        """Live incarnations, least recently active first."""
        self.awaiting: OrderedDict[int, Incarnation] = OrderedDict()
        """Live, anchored and not yet offending, by anchor index: what CPU history must be kept for."""
        self.kept: list[Incarnation] = []
        self.moved: list[tuple[int, Finding]] = []
        """Each incarnation's "moved" finding, with the incarnation's serial."""
        self.spoofed: list[Finding] = []
        self.connections = 0
        self.packets = 0
        self.now = 0
        # CPU history.
        self.key_changes: dict[Key, list[KeyChange]] = {}
        self.changes_kept = 0
        self.changes_limit = 1024
        self.entry_now: dict[Key, EntryWrite] = {}
        """What each ConnTable key holds, as the latest install there."""
        self.failed_dips: dict[Dip, int] = {}
        self.wire = CookieLedger()
        self.auth = AuthTally()
        self.served: set[int] = set()

    # ------------------------------------------------------------ feeding

    def feed(self, o: Observation) -> None:
        if o.t < self.now:
            raise ValueError(f"observation #{o.index} at t={o.t} comes after t={self.now}: the oracle needs time order")
        if o.t > self.now:
            self.now = o.t
            self._expire()
        if isinstance(o, CpuObservation):
            self._record(o)
        else:
            self._packet(o)

    def feed_all(self, observations: Iterable[Observation]) -> Oracle:
        for o in observations:
            self.feed(o)
        return self

    def verdict(self) -> Verdict:
        moved = [finding for _, finding in sorted(self.moved, key=lambda item: item[0])]
        self.auth.proved, self.auth.served = len(self.wire.proved), len(self.served)
        return Verdict(moved + self.spoofed, self.kept, self.auth, self.connections, self.packets)

    def live_connections(self) -> int:
        return len(self.live)

    def _expire(self) -> None:
        horizon = self.now - self.config.idle_timeout
        while self.live:
            inc = next(iter(self.live.values()))
            if inc.last_t >= horizon:
                return
            # Any later packet of its 5-tuple comes more than idle_timeout after its last: a new incarnation.
            del self.live[inc.ft]
            flow = self.flows[inc.ft]
            flow.was_ended = inc.ended
            if inc.anchor is not None and inc.finding is None:
                del self.awaiting[inc.anchor.index]

    # ------------------------------------------------------------ CPU observations

    def _record(self, o: CpuObservation) -> None:
        # One CPU step lists its installs and removes apart, not in the order it made them
        # (a move's delete may free a key that another install then takes): what an entry
        # holds afterwards follows from each (key, owner)'s net count of writes.
        net: Counter[tuple[Key, FiveTuple | None]] = Counter()
        installed: dict[tuple[Key, FiveTuple | None], EntryWrite] = {}
        for w in o.installs:
            self._key_change(o, w, removed=False)
            net[(w.key, w.owner)] += 1
            installed[(w.key, w.owner)] = w
        for w in o.removes:
            self._key_change(o, w, removed=True)
            net[(w.key, w.owner)] -= 1
        for (key, owner), change in net.items():
            if change < 0 and (held := self.entry_now.get(key)) is not None and held.owner == owner:
                del self.entry_now[key]
        for (key, owner), change in net.items():
            if change > 0:
                self.entry_now[key] = installed[(key, owner)]
        for kind, ft, sent in o.learned:
            if kind == "auth":  # whitelisting a source does not teach the CPU the connection
                continue
            flow = self.flows.get(ft)
            if flow is not None:
                flow.healer_t = flow.last_send_t
            inc = self.live.get(ft)
            if inc is not None and sent >= inc.packets[0].t:
                if inc.first_learned is None:
                    inc.first_learned = o.index
                inc.learned_until = max(inc.learned_until, sent)
        for ft, sent in o.lost:
            self.flows.setdefault(ft, _Flow()).lost.append((o.index, sent))
            # What the CPU learned of the live incarnation up to ``sent`` may be gone (a restart): writes
            # it decides from here until it learns the incarnation again could not protect it.
            inc = self.live.get(ft)
            if inc is not None and inc.first_learned is not None and inc.learned_until <= sent:
                inc.first_learned, inc.forgotten = None, o.index
        for dip in o.failed_dips:
            self.failed_dips.setdefault(dip, o.index)
        if self.config.syn_auth:
            proved = self.wire.proved
            self.auth.whitelisted += len(o.whitelisted)
            self.auth.whitelisted_unproved += sum(1 for ip in o.whitelisted if ip not in proved)
            self.auth.entries_unproved += sum(1 for w in o.installs if w.owner and w.owner.src_ip not in proved)

    def _key_change(self, o: CpuObservation, w: EntryWrite, removed: bool) -> None:
        decided = o.index if w.decided < 0 else w.decided
        self.key_changes.setdefault(w.key, []).append(KeyChange(o.index, decided, w.owner, w.version, removed))
        self.changes_kept += 1
        if self.changes_kept > self.changes_limit:
            self._prune_changes()

    def _prune_changes(self) -> None:
        """Drop the key changes no awaiting incarnation can be judged against (they precede every anchor)."""
        oldest = next(iter(self.awaiting), None)
        if oldest is None:
            self.key_changes.clear()
            self.changes_kept = 0
        else:
            kept: dict[Key, list[KeyChange]] = {}
            for key, changes in self.key_changes.items():
                recent = [c for c in changes if c.index > oldest]
                if recent:
                    kept[key] = recent
            self.key_changes = kept
            self.changes_kept = sum(len(c) for c in kept.values())
        self.changes_limit = max(1024, 2 * self.changes_kept)

    # ------------------------------------------------------------ packets

    def _packet(self, o: PacketObservation) -> None:
        self.packets += 1
        ft = o.ft
        flow = self.flows.get(ft)
        if flow is None:
            flow = self.flows[ft] = _Flow()
        if any(kind != "auth" for kind in o.learned):
            flow.last_send_t = o.t
        inc = self.live.get(ft)
        if inc is None or self._starts_new(inc, o):
            # A stray non-SYN packet after a closed connection starts a leftover that is closing too.
            previous_ended = inc.ended if inc is not None else flow.number > 0 and flow.was_ended
            if inc is not None and inc.anchor is not None and inc.finding is None:
                del self.awaiting[inc.anchor.index]
            flow.number += 1
            inc = Incarnation(ft, flow.number, o.index, o.t, self.connections,
                              ended=previous_ended and not o.packet.is_syn)  # fmt: skip
            self.connections += 1
            self.live[ft] = inc
            self.live.move_to_end(ft)
            if self.window is None:
                self.kept.append(inc)
        else:
            self.live.move_to_end(ft)
        inc.last_t = o.t
        self._keep(inc.packets, inc.seen, o)
        inc.seen += 1
        if o.packet.is_end:
            inc.ended = True

        if self.config.syn_auth and o.packet.is_tcp:
            self._authentication(inc, o)

        if o.action != FORWARD:
            return
        if inc.anchor is None:
            inc.anchor = o
            if o.hit_key is not None:
                inc.anchor_entry = self.entry_now.get(o.hit_key)
            self.awaiting[o.index] = inc
        elif o.dip != inc.anchor.dip:
            if inc.finding is None:
                del self.awaiting[inc.anchor.index]
                inc.offending.append(o)
                inc.finding = self._classify(inc, flow, o)
                self.moved.append((inc.serial, inc.finding))
            else:
                self._keep(inc.offending, len(inc.offending), o)

    def _keep(self, kept: list[PacketObservation], seen: int, o: PacketObservation) -> None:
        """Append ``o``; a streaming oracle keeps the first half-window and then the latest half."""
        if self.window is None or seen < self.window:
            kept.append(o)
        else:
            del kept[self.window // 2]
            kept.append(o)

    def _authentication(self, inc: Incarnation, o: PacketObservation) -> None:
        ft = o.ft
        self.wire.note(o)
        self.auth.syn_acks += is_syn_ack(o)
        if o.action == FORWARD and ft.src_ip not in self.wire.proved:
            self.spoofed.append(
                Finding(VIOLATION, "spoofed", ft, inc.number, [o], list(inc.packets),
                        f"{ft.src_ip:#x} never returned a valid cookie, yet packet #{o.index} reached {o.dip}")
            )  # fmt: skip
        elif o.action == FORWARD:
            self.served.add(ft.src_ip)

    def _starts_new(self, inc: Incarnation, o: PacketObservation) -> bool:
        gap = o.t - inc.last_t
        if gap > self.config.idle_timeout:
            return True
        return inc.ended and (o.packet.is_syn or gap > self.config.teardown_grace)

    # ------------------------------------------------------------ classifying, at the first offending packet

    def _classify(self, inc: Incarnation, flow: _Flow, first: PacketObservation) -> Finding:
        anchor = inc.anchor
        assert anchor is not None
        base = (
            f"{inc.ft} incarnation {inc.number}: packet #{anchor.index} went to {anchor.dip}, "
            f"packet #{first.index} to {first.dip}"
        )

        def finding(category: str, explanation: str) -> Finding:
            return Finding(category, "moved", inc.ft, inc.number, inc.offending, list(inc.packets), explanation)

        failed = self.failed_dips.get(anchor.dip)  # type: ignore[arg-type]
        if failed is not None:
            return finding(DIP_FAILURE, f"{base}; {anchor.dip} failed at #{failed}")
        if self._fault_shaped(flow):
            return finding(FAULT, f"{base}; a fault lost its learn event or delayed it past the bound")
        residual = self._residual(inc, first)
        if residual is not None:
            return finding(residual[0], f"{base}; {residual[1]}")
        return finding(VIOLATION, base)

    def _fault_shaped(self, flow: _Flow) -> bool:
        """Did a fault destroy the learning of a packet of this 5-tuple, and the CPU learn nothing from
        a later packet of it since? Then what the CPU believes of the connection (its version, whether
        a SYN reopened it) is what the fault left it, whichever incarnation the lost packet belonged to."""
        flow.lost = [(index, sent) for index, sent in flow.lost if not flow.healed(sent)]
        return bool(flow.lost)

    def _residual(self, inc: Incarnation, first: PacketObservation) -> tuple[str, str] | None:
        """Did a CPU write change this incarnation's lookups before the CPU had learned anything of it
        (``digest-alias`` if another connection's entry was involved, ``write-race`` if only this
        5-tuple's own entry, written before the incarnation began), or did it hit another VIP's entry?"""
        anchor = inc.anchor
        assert anchor is not None
        first_entry = self.entry_now.get(first.hit_key) if first.hit_key is not None else None
        captors = [(p, entry.owner) for p, entry in ((anchor, inc.anchor_entry), (first, first_entry))
                   if entry is not None and entry.owner not in (None, inc.ft)]  # fmt: skip
        for packet, owner in captors:
            if owner.vip != inc.ft.vip:  # type: ignore[union-attr]
                # Versions are per VIP: the captor's version names an unrelated pool of this VIP,
                # which may be reclaimed and reused while the captor lives.
                return DIGEST_ALIAS, f"packet #{packet.index} hit the entry of {owner}, a connection of another VIP"
        for packet in (anchor, first):
            if packet.hit_key is None:
                continue
            for change in self.key_changes.get(packet.hit_key, ()):
                if not anchor.index < change.index:
                    continue
                origin = self._capture_origin(inc, packet.hit_key, change)
                if origin is None:
                    continue
                key, change = origin
                if inc.first_learned is not None and inc.first_learned < change.decided:
                    continue
                stage, bucket, digest = key
                where = f"(stage {stage}, bucket {bucket}, digest {digest:#x})"
                since = ""
                if key != packet.hit_key:
                    since = (f"; packet #{packet.index} found the same version at (stage {packet.hit_key[0]}, "
                             f"bucket {packet.hit_key[1]})")  # fmt: skip
                if change.owner != inc.ft or captors:
                    learned = "learned this incarnation"
                    if inc.forgotten is not None and inc.forgotten <= change.decided:
                        learned += f" again (a fault at #{inc.forgotten} destroyed what it knew of it)"
                    return DIGEST_ALIAS, (f"the entry {where} of {change.owner} changed at #{change.index} (decided "
                                          f"at #{change.decided}) before the CPU {learned}{since}")  # fmt: skip
                if change.decided < inc.start:
                    done = "removed" if change.removed else "installed"
                    return WRITE_RACE, (f"its own entry {where} was {done} at #{change.index} by a write "
                                        f"decided at #{change.decided}, before this incarnation's first "
                                        f"packet{since}")  # fmt: skip
        return None

    def _capture_origin(self, inc: Incarnation, key: Key, change: KeyChange) -> tuple[Key, KeyChange] | None:
        """The write that made what ``inc``'s lookup found through ``change``: ``change`` itself, or, when
        ``change`` installed an entry of the same version as the very entry the lookup was reaching just
        before (a cuckoo move's copy, made before it breaks, or another connection's entry in an earlier
        stage), the write that made that entry; None when that entry predates the anchor. The lookup's
        version, so its DIP, stayed as it was, so the CPU had nothing to protect there; a write that
        changes the version the lookup reaches (an entry off the path before, behind another entry, or of
        another version) is judged by its own decision."""
        assert inc.anchor is not None
        path = inc.anchor.lookup_keys
        while not change.removed and change.owner is not None and key in path:
            reached = self._first_entry_before(inc, path, change.index)
            if reached is None or reached[0] == key:
                break
            old_key, old = reached
            if old.version != change.version:
                break
            if old.index <= inc.anchor.index:
                return None
            key, change = old_key, old
        return key, change

    def _first_entry_before(self, inc: Incarnation, path: tuple[Key, ...], index: int) -> tuple[Key, KeyChange] | None:
        """The first key on ``path`` that held an entry just before CPU observation ``index``, with the change
        that put it there (index -1: it was there when the anchor hit it); None when no key did, or when the
        history cannot tell."""
        anchor = inc.anchor
        assert anchor is not None
        hit_stage = anchor.hit_key[0] if anchor.hit_key is not None else len(path)
        for stage, key in enumerate(path):
            if stage > hit_stage:
                return None  # what the stages behind the anchor's hit held, no packet showed
            held: KeyChange | None = None
            if stage == hit_stage:
                entry = inc.anchor_entry
                owner, version = (entry.owner, entry.version) if entry is not None else (None, -1)
                held = KeyChange(-1, -1, owner, version, removed=False)
            for change in self.key_changes.get(key, ()):
                if change.index >= index:
                    break
                if change.index <= anchor.index:
                    continue
                if not change.removed:
                    held = change
                elif held is not None and held.owner == change.owner:
                    held = None
            if held is not None:
                return key, held
        return None


def judge(config: Config, observations: Iterable[Observation]) -> Verdict:
    """The verdict on a whole history, keeping every incarnation and packet for the report."""
    return Oracle(config, window=None).feed_all(observations).verdict()
