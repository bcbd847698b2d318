"""A catalogue of unsafe SilkRoad variants that the fuzzer must kill.

Each mutant is a context manager that patches the shipped model from outside
(``model/`` stays the clean design) to remove exactly one safety mechanism.
Its docstring says which, and why that breaks per-connection consistency.

Mutants that patch ``model.decisions`` change the design, which the proofs
are about (the Z3 encodings call the same functions); the others change the
CPU or the data plane, the code that runs, and are what the refinement check
(``spec``) must catch. Write-order mutants reorder or split the single table
writes of one CPU action: they only show when packets arrive between writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import model.dataplane
import model.switch
from model import decisions as d
from model import hashing
from model.config import Config
from model.cpu import Cpu, CpuLog, SearchMemo
from model.dataplane import DataPlane, LearnChannel, VipEntry, process_packet
from model.types import Dip, Vip
from model.writes import MOVE, PoolWrite, TableWrite, VipWrite

Patcher = Callable[[], contextlib.AbstractContextManager[Any]]


@dataclass(frozen=True)
class Mutant:
    name: str
    mechanism: str
    patch: Patcher

    @property
    def why(self) -> str:
        return (self.patch.__doc__ or "").strip()

    @property
    def layer(self) -> str:
        """``design`` if it patches ``model.decisions`` (what the proofs are about), ``data plane``
        if the packet pipeline (``model.dataplane``'s functions, ``DataPlane``, the hashes, all of
        which a P4 target runs as its own program), else ``cpu``: the switch CPU's code and config,
        which the BMv2 target runs from the model too."""
        return patched_layer(self.patch)


def patched_layer(patch: Patcher) -> str:
    """Which layer of the model ``patch`` changes, found by comparing the model's namespaces inside it."""
    design, pipeline = vars(d), [vars(model.dataplane), vars(hashing), DataPlane.__dict__]
    before = dict(design), [dict(n) for n in pipeline]
    with patch():
        if any(design.get(name) is not value for name, value in before[0].items()):
            return "design"
        for namespace, old in zip(pipeline, before[1], strict=True):
            if any(namespace.get(name) is not value for name, value in old.items()):
                return "data plane"
    return "cpu"


def _decision(name: str, replacement: Callable[..., Any]) -> contextlib.AbstractContextManager[Any]:
    return mock.patch.object(d, name, replacement)


# ---------------------------------------------------------------- update protocol ordering


def exec_without_bound_wait() -> contextlib.AbstractContextManager[Any]:
    """t_exec as soon as the visible learn events are installed, without waiting the learn-delay
    bound after t_req. A connection that started before t_req and whose learn event is still in
    flight is unknown to the CPU and was never recorded: after t_exec it misses TransitTable and
    moves to the new pool."""
    return _decision("may_exec", lambda o, waited, before_req: o.not_(before_req))


def exec_before_old_installed() -> contextlib.AbstractContextManager[Any]:
    """t_exec once the bound has passed even if connections learned before t_req are still not
    in ConnTable (e.g. their bucket is full). They were not recorded in TransitTable, so their
    next miss takes the new version."""
    return _decision("may_exec", lambda o, waited, before_req: waited)


def finish_without_seal() -> contextlib.AbstractContextManager[Any]:
    """The paper's t_finish: clear TransitTable (back to NORMAL) straight from TRANSIT. A Bloom
    false positive or a recorded connection whose learn event is in flight used the old version;
    once TransitTable is gone its next packet takes the new one."""
    original = d.next_phase

    def next_phase(o: Any, phase: Any, exec_ok: Any, seal_ok: Any, finish_ok: Any) -> Any:
        if phase == d.TRANSIT:
            return d.NORMAL if seal_ok else d.TRANSIT
        return original(o, phase, exec_ok, seal_ok, finish_ok)

    return _decision("next_phase", next_phase)


def finish_without_bound_wait() -> contextlib.AbstractContextManager[Any]:
    """t_finish right after t_seal, without the learn-delay bound: learn events sent just before
    the seal (old-version connections) are still in flight when TransitTable is cleared."""
    return _decision("may_finish", lambda o, waited, old_unplaced: o.not_(old_unplaced))


def sealed_forwards_old() -> contextlib.AbstractContextManager[Any]:
    """After t_seal a miss that hits TransitTable is still forwarded with the old version. A
    false positive (or an in-flight recorded connection) then commits to the old pool just
    before TransitTable is cleared, and moves afterwards."""
    return _decision("drops_sealed", lambda o, hit, phase, transit_hit: False)


# ---------------------------------------------------------------- TransitTable and Bloom filter


def record_skips_transit() -> contextlib.AbstractContextManager[Any]:
    """Between t_req and t_exec misses are not recorded in TransitTable. A connection that
    started in that window and is not installed yet misses TransitTable after t_exec and moves."""
    return _decision("records_transit", lambda o, hit, phase: False)


def false_positives_not_learned() -> contextlib.AbstractContextManager[Any]:
    """A miss that hits TransitTable after t_exec is assumed to be a recorded connection the CPU
    already knows, so it is not learned. A Bloom false positive (a new connection) then uses the
    old version, is never installed, and moves to the new version at t_finish."""
    return _decision(
        "learns_new",
        lambda o, hit, phase, transit_hit: o.and_(
            o.not_(hit), o.not_(o.and_(d.consults_transit(o, phase), transit_hit))
        ),
    )


@contextlib.contextmanager
def concurrent_vip_updates() -> Iterator[None]:
    """Updates of different VIPs run at the same time with their own epochs over the one shared
    TransitTable. A second VIP's RECORD overwrites cells with its epoch, so a connection the
    first VIP recorded (still uninstalled) misses TransitTable after t_exec and moves."""
    original = Cpu._start_updates

    def start_updates(self: Cpu, now: int, log: CpuLog) -> None:
        for vip in list(self.requests):
            running = self.updates
            self.updates = {v: up for v, up in running.items() if v == vip}
            with mock.patch.object(self, "requests", {vip: self.requests[vip]}):
                original(self, now, log)
            self.updates = {**running, **self.updates}

    with mock.patch.object(Cpu, "_start_updates", start_updates):
        yield


def updates_start_in_vip_order() -> contextlib.AbstractContextManager[Any]:
    """Waiting updates start in the order the VIPs were configured, not in request order (the
    CPU before issue #12): with one TransitTable slot, a VIP whose request came first waits while
    an earlier-configured VIP's later requests start, for as long as they keep coming. Not a PCC
    violation but a broken service promise, which only the refinement check's first come, first
    served guard can catch."""

    def waiting(self: Cpu) -> list[Vip]:
        return [vip for vip, queue in self.requests.items() if queue and vip not in self.updates]

    return mock.patch.object(Cpu, "waiting", waiting)


@contextlib.contextmanager
def update_preempts_running() -> Iterator[None]:
    """A newer pool request for a VIP abandons its running update and starts over from the old
    version. Connections that took the abandoned update's new version while still uninstalled
    are sent to the old version by the restarted RECORD phase."""
    original = Cpu.request_update

    def request_update(self: Cpu, vip: Vip, pool: tuple[Dip, ...], now: int, log: CpuLog) -> None:
        self.updates.pop(vip, None)
        original(self, vip, pool, now, log)

    with mock.patch.object(Cpu, "request_update", request_update):
        yield


# ---------------------------------------------------------------- digests and the SYN signal


def no_collision_learn() -> contextlib.AbstractContextManager[Any]:
    """A SYN that hits ConnTable is not reported as a collision. A new connection that aliases an
    older one's entry inherits its version and is never learned; when the older entry is removed,
    it misses and takes the current version."""
    return _decision("learns_collision", lambda o, hit, is_syn: False)


@contextlib.contextmanager
def syn_ignores_hit() -> Iterator[None]:
    """A SYN does not trust a ConnTable hit at all and takes the miss version. If it hit another
    connection's entry (a digest alias) its later packets hit that entry and use its version."""

    def packet(self: model.switch.Switch, index: int, e: Any) -> Any:
        if not e.packet.is_syn:
            return process_packet(self.dataplane, index, e.t, e.packet)
        with mock.patch.object(DataPlane, "lookup", lambda dp, h: None):
            return process_packet(self.dataplane, index, e.t, e.packet)

    with mock.patch.dict(model.switch._HANDLERS, {model.switch.ev.PacketArrives: packet}):
        yield


# ---------------------------------------------------------------- cuckoo placement


def cuckoo_unchecked_writes() -> contextlib.AbstractContextManager[Any]:
    """Cuckoo insertions and moves skip the per-write lookup check. An entry written in an earlier
    stage than a known connection's own entry, with the same bucket and digest, captures its
    lookups and hands it the other connection's version."""
    return mock.patch.object(Cpu, "_write_is_safe", lambda self, stage, key, version, owner: True)


def move_delete_unchecked() -> contextlib.AbstractContextManager[Any]:
    """Cuckoo moves skip the check that deleting the old copy keeps every known lookup. A lookup
    that went through the old copy (the mover's, or an alias's) falls through to an entry of
    another version in a later stage."""
    return mock.patch.object(Cpu, "_move_is_safe", lambda self, conn, stage, key: True)


@contextlib.contextmanager
def break_before_make() -> Iterator[None]:
    """A cuckoo move deletes the old copy before it inserts the new one. Between the two writes
    the connection's lookup misses: its packets take the VIP's current version and go elsewhere."""

    def move(self: Cpu, conn: Any, stage: int, now: int, memo: SearchMemo) -> bool:
        if not self._fits_now(conn, stage, memo):
            return False
        if conn.stage is not None:
            self._delete(conn, conn.stage, now, MOVE)
        self._insert(conn, stage, now)
        return True

    with mock.patch.object(Cpu, "_move", move):
        yield


# ---------------------------------------------------------------- versions and teardown


def reclaim_while_referenced() -> contextlib.AbstractContextManager[Any]:
    """A version no longer current is reclaimed even though ConnTable entries still refer to it.
    Their packets find no pool; once the version number is reused for another pool they go to
    that pool's DIPs."""
    return _decision(
        "may_reclaim", lambda o, in_vip_entry, referenced, waited: o.and_(o.not_(in_vip_entry), waited)
    )


def reclaim_without_bound() -> contextlib.AbstractContextManager[Any]:
    """A version is reclaimed as soon as nothing refers to it, without waiting the learn-delay
    bound. A packet that hit an entry between the CPU's decision to delete it and the delete
    taking effect sent a learn event with the entry's version; read after the reclaim, it
    installs the connection with a version whose pool is gone (and may be reused)."""
    original = d.may_reclaim
    return _decision("may_reclaim", lambda o, in_vip_entry, referenced, waited: original(o, in_vip_entry, referenced,
                                                                                         True))  # fmt: skip


@contextlib.contextmanager
def reclaim_overlooks_entries() -> Iterator[None]:
    """Reclamation counts only the connections still waiting to be placed as references to a
    version, not those holding ConnTable entries: a long-lived connection's pool is deleted under
    its entry and, once the version number is reused, replaced by another pool."""
    original = Cpu._reclaim

    def reclaim(self: Cpu, now: int, log: CpuLog) -> None:
        placed: dict[tuple[Vip, int], int] = {}
        for conn in self.known.values():
            if conn.stage is not None:
                placed[(conn.ft.vip, conn.version)] = placed.get((conn.ft.vip, conn.version), 0) + 1
        counted = {key: n - placed.get(key, 0) for key, n in self.refs.items()}
        with mock.patch.object(self, "refs", counted):
            original(self, now, log)

    with mock.patch.object(Cpu, "_reclaim", reclaim):
        yield


def version_counter_wraps() -> contextlib.AbstractContextManager[Any]:
    """An update takes the next version number of a wrap-around counter, whether or not it is
    still in use. After 2^version_bits updates a long-lived connection's version comes round
    again: its pool is overwritten under its ConnTable entry and it moves."""

    def next_version(self: Cpu, vip: Vip) -> int:
        return (self.vip_entries[vip].new_version + 1) % self.config.versions

    return mock.patch.object(Cpu, "_free_version", next_version)


def teardown_without_grace() -> contextlib.AbstractContextManager[Any]:
    """Entries of connections that sent FIN/RST are removed at once, without the teardown grace.
    Late packets of the connection (retransmitted FIN, last ACKs) miss and may take another
    version."""
    return _config_patch("expire", teardown_grace=0)


class _ConfigView:
    """The CPU's config with a few values changed (a real ``Config`` would refuse some of them)."""

    def __init__(self, config: Config, overrides: dict[str, int]) -> None:
        self._config = config
        self._overrides = overrides

    def __getattr__(self, name: str) -> Any:
        return self._overrides.get(name, getattr(self._config, name))


def _config_patch(method: str, **overrides: int) -> contextlib.AbstractContextManager[Any]:
    original = getattr(Cpu, method)

    def patched(self: Cpu, *args: Any) -> None:
        with mock.patch.object(self, "config", _ConfigView(self.config, overrides)):
            original(self, *args)

    return mock.patch.object(Cpu, method, patched)


@contextlib.contextmanager
def fin_deletes_at_once() -> Iterator[None]:
    """The CPU deletes a connection's entry as soon as it reads its FIN/RST, with no grace: the
    last ACKs and retransmitted FINs miss and may take another version."""
    original = Cpu._on_learn

    def on_learn(self: Cpu, event: Any, now: int, log: CpuLog) -> None:
        original(self, event, now, log)
        conn = self.known.get(event.ft)
        if event.kind == "end" and conn is not None and conn.stage is not None and conn.closing:
            self.remove(conn, now)

    with mock.patch.object(Cpu, "_on_learn", on_learn):
        yield


# ---------------------------------------------------------------- the learning channel


@contextlib.contextmanager
def learn_filter_keeps_consumed() -> Iterator[None]:
    """The learning filter forgets an event only when it is lost, not when the CPU reads it. A
    connection whose entry was expired or whose unplaced state a restart dropped can then never
    be learned again: it stays unknown through the next update and moves."""
    original = DataPlane.read_learns

    def read_learns(self: DataPlane, now: int, limit: int | None) -> list[Any]:
        kept = set(self.learn_filter)
        taken = original(self, now, limit)
        self.learn_filter |= kept & {(e.kind, e.ft) for e in taken}
        return taken

    with mock.patch.object(DataPlane, "read_learns", read_learns):
        yield


@contextlib.contextmanager
def learn_filter_keyed_on_digest() -> Iterator[None]:
    """The learning filter de-duplicates events by digest, not by 5-tuple (the ASIC's filter
    hashes what it is given). Two pending connections that share a digest hide each other's
    events: one of them is never learned and moves at the next update."""
    original_learn, original_read = LearnChannel.learn, LearnChannel.read_learns

    def digest_of(self: Any, ft: Any) -> Any:
        return self.plan.flow(ft).digest

    def learn(self: Any, t: int, kind: str, ft: Any, version: int, hit_stage: int | None = None) -> bool:
        if kind in ("new", "auth"):
            key = (kind, digest_of(self, ft))
            if key in self.learn_filter:
                return False
            self.learn_filter.add(key)
            self.learn_queue.append(model.dataplane.LearnEvent(t, t, kind, ft, version, hit_stage))
            return True
        return original_learn(self, t, kind, ft, version, hit_stage)

    def read_learns(self: Any, now: int, limit: int | None) -> list[Any]:
        taken = original_read(self, now, limit)
        for event in taken:
            self.learn_filter.discard((event.kind, digest_of(self, event.ft)))
        return taken

    with mock.patch.object(LearnChannel, "learn", learn), mock.patch.object(LearnChannel, "read_learns", read_learns):
        yield


# ---------------------------------------------------------------- SYN authentication


def auth_accepts_any_ack() -> contextlib.AbstractContextManager[Any]:
    """Any bare ACK from an unknown source whitelists it, whatever its cookie. A spoofing attacker
    gets its source whitelisted and its later SYNs reach servers and consume ConnTable."""
    original = d.auth_outcome
    return _decision("auth_outcome", lambda o, is_syn, is_bare_ack, cookie_ok: original(o, is_syn, is_bare_ack, True))


@contextlib.contextmanager
def auth_learned_before_check() -> Iterator[None]:
    """The data plane sends the ``auth`` learn event for every bare ACK from an unknown source,
    before it compares the ACK with the cookie (the reply still depends on the cookie). The CPU
    whitelists whatever it is told: any spoofed ACK whitelists its source."""
    original = model.dataplane._authenticate

    def authenticate(dp: DataPlane, index: int, t: int, pkt: Any, vip: Any) -> Any:
        observation = original(dp, index, t, pkt, vip)
        bare_ack = pkt.flags & (model.types.SYN | model.types.ACK | model.types.RST) == model.types.ACK
        if bare_ack and not observation.learned and dp.learn(t, "auth", pkt.ft, vip.current):
            observation = observation._replace(learned=("auth",))
        return observation

    with mock.patch.object(model.dataplane, "_authenticate", authenticate):
        yield


def _cookie_without(name: str) -> contextlib.AbstractContextManager[Any]:
    """The SYN cookie (in the SYN-ACK and in the check) hashes the key and the 5-tuple minus ``name``."""
    return mock.patch.object(hashing, "COOKIE_ORDER", tuple(f for f in hashing.COOKIE_ORDER if f != name))


def cookie_without_source() -> contextlib.AbstractContextManager[Any]:
    """The SYN cookie leaves the source address out. One cookie then answers the SYN-ACK of every
    source with that port and VIP: an attacker who owns one address sends a SYN from it, reads the
    cookie, and replays it from spoofed sources; the CPU whitelists them, and their SYNs reach
    servers and take ConnTable space."""
    return _cookie_without("src_ip")


def cookie_without_source_port() -> contextlib.AbstractContextManager[Any]:
    """A whitelist that ignores the source port. The whitelist is keyed on the source address alone,
    so what can ignore the port here is the proof that admits an address: the cookie, which binds
    the proof to the one 5-tuple its SYN-ACK went to. Without the port in the cookie, an ACK from
    any port of an address answers a SYN-ACK sent to another of its ports, and the switch
    whitelists the address on the answer to a SYN-ACK it never sent to that flow: a cookie seen on
    one connection (by whoever reads that connection's packets) opens the address from every port.
    Not an equivalent mutant: the attacker's replay from another port of an address whose SYN-ACK
    it left unanswered is whitelisted here and dropped by the shipped switch, and the wire shows
    no SYN-ACK answered from where it was sent (``whitelist_only_proved``; the oracle's
    ``spoofed`` once the address's next SYN is forwarded)."""
    return _cookie_without("src_port")


# ---------------------------------------------------------------- faults


@contextlib.contextmanager
def restart_drops_updates() -> Iterator[None]:
    """A CPU restart forgets the updates in progress (they were not journaled). VIPTable stays in
    RECORD/TRANSIT; the next request for the VIP starts over from the old version, so connections
    that took the lost update's new version move back."""
    original = Cpu.restart

    def restart(self: Cpu, now: int, log: CpuLog) -> None:
        original(self, now, log)
        self.updates = {}

    with mock.patch.object(Cpu, "restart", restart):
        yield


# ---------------------------------------------------------------- the update protocol's bookkeeping and writes


@contextlib.contextmanager
def seal_ignores_false_positives() -> Iterator[None]:
    """t_seal (and t_finish) wait only for the old-version connections learned before t_exec,
    not for those a Bloom false positive sent to the old version after it: such a connection,
    still unplaced, takes the new version once TransitTable stops answering for it."""
    original = Cpu.unplaced

    def unplaced(self: Cpu, vip: Vip) -> list[Any]:
        up = self.updates.get(vip)
        found = original(self, vip)
        if up is None or up.phase == d.RECORD:
            return found
        executed: dict[Vip, int] = self.__dict__.setdefault("_executed_at", {})
        if up.phase == d.TRANSIT:
            executed[vip] = up.started
        return [c for c in found if c.version != up.old_version or c.sent <= executed.get(vip, up.started)]

    with mock.patch.object(Cpu, "unplaced", unplaced):
        yield


@contextlib.contextmanager
def updates_share_slot_zero() -> Iterator[None]:
    """Every update records into TransitTable slot 0, although updates of different VIPs may run
    at once (one per slot): a second VIP's RECORD overwrites the first VIP's recorded cells with
    its own epoch, and a recorded connection of the first misses after t_exec and moves."""
    original = Cpu._write_vip

    def write_vip(self: Cpu, vip: Vip, entry: VipEntry, now: int, releases: int | None = None) -> None:
        original(self, vip, entry._replace(slot=0), now, releases)

    with mock.patch.object(Cpu, "_write_vip", write_vip):
        yield


@contextlib.contextmanager
def epoch_counter_overflows() -> Iterator[None]:
    """The TransitTable epoch counter counts on past the register's width instead of wrapping
    within it: the VIPTable write then names an epoch the register cells cannot hold (P4Runtime
    refuses the value; a truncating implementation would compare against the wrong epoch)."""
    original = Cpu._start_updates

    def start_updates(self: Cpu, now: int, log: CpuLog) -> None:
        with mock.patch.object(self, "config", _ConfigView(self.config, {"epochs": 1 << 30})):
            original(self, now, log)

    with mock.patch.object(Cpu, "_start_updates", start_updates):
        yield


@contextlib.contextmanager
def record_before_epoch_bump() -> Iterator[None]:
    """An update's VIPTable entry is written in two writes: first the RECORD phase with the slot's
    previous epoch, then the new epoch. Misses in between are recorded under the stale epoch and
    count as unrecorded once the new one is in: after t_exec they would miss TransitTable and move.
    (Phase and epoch live in one VIPTable entry so that one write changes both.) The shipped CPU
    keeps PCC anyway: t_req and the learn-bound wait restart when the second RECORD write takes
    effect, so t_exec waits until such a miss is in ConnTable (a lost learn event of it is left to
    the oracle's ``fault`` excuse). What shows is the stale cell, a Bloom false positive fewer
    once the epoch counter wraps (``fuzz/counterexamples/record-before-epoch-bump.json``)."""
    original = Cpu._write_vip

    def write_vip(self: Cpu, vip: Vip, entry: VipEntry, now: int, releases: int | None = None) -> None:
        previous = self.vip_entries.get(vip)
        if previous is not None and entry.phase == d.RECORD and previous.phase == d.NORMAL:
            original(self, vip, entry._replace(epoch=previous.epoch), now)
        original(self, vip, entry, now, releases)

    with mock.patch.object(Cpu, "_write_vip", write_vip):
        yield


def protocol_waits_from_decision() -> contextlib.AbstractContextManager[Any]:
    """The update protocol times its waits from when the CPU decides a phase change, not from
    when the VIPTable write takes effect. A miss between the decision to start an update and the
    RECORD write is not recorded, yet counts as sent after t_req: t_exec does not wait for it, and
    it misses TransitTable afterwards and moves."""
    original = Cpu.applied

    def applied(self: Cpu, write: TableWrite, now: int) -> None:
        if not isinstance(write, VipWrite):
            original(self, write, now)

    return mock.patch.object(Cpu, "applied", applied)


def sealed_unplaced_forgotten() -> contextlib.AbstractContextManager[Any]:
    """The CPU forgets an unplaced connection of a sealed update's old version after
    idle_timeout + the learn-delay bound of silence, as it does any unplaced one. Its packets
    are dropped unlearned after t_seal, so that silence is the CPU's deafness, not the
    connection's: the update finishes and the connection's next miss takes the new version."""
    return mock.patch.object(Cpu, "_unheard", lambda self, conn: False)


@contextlib.contextmanager
def pool_after_exec_flip() -> Iterator[None]:
    """An update's new pool is installed only at t_exec, right after the VIPTable write that
    sends misses to the new version: packets of new connections in between find no pool. This
    harms availability only: the misses that read the new version there are of connections that
    were not recorded, so they began after t_req; they are dropped, and their learn events carry the
    new version, so their first forwarded packet already reaches the new pool."""
    original = Cpu._emit

    def emit(self: Cpu, write: TableWrite, now: int) -> None:
        held: dict[tuple[Vip, int], PoolWrite] = self.__dict__.setdefault("_held_pools", {})
        current = self.vip_entries.get(write.vip) if isinstance(write, PoolWrite) else None
        if isinstance(write, PoolWrite) and current is not None and write.version != current.new_version:
            held[(write.vip, write.version)] = write
            return
        original(self, write, now)
        if isinstance(write, VipWrite) and write.entry.phase == d.TRANSIT:
            pool = held.pop((write.vip, write.entry.new_version), None)
            if pool is not None:
                original(self, pool, now)

    with mock.patch.object(Cpu, "_emit", emit):
        yield


MUTANTS: tuple[Mutant, ...] = tuple(
    Mutant(patch.__name__.replace("_", "-"), mechanism, patch)
    for mechanism, patch in (
        ("update protocol ordering", exec_without_bound_wait),
        ("update protocol ordering", exec_before_old_installed),
        ("TransitTable clearing", finish_without_seal),
        ("TransitTable clearing", finish_without_bound_wait),
        ("TransitTable clearing", sealed_forwards_old),
        ("TransitTable recording", record_skips_transit),
        ("Bloom false positives", false_positives_not_learned),
        ("concurrent updates on several VIPs", concurrent_vip_updates),
        ("concurrent updates of one VIP", update_preempts_running),
        ("update request order", updates_start_in_vip_order),
        ("digest collisions / SYN signal", no_collision_learn),
        ("digest collisions / SYN signal", syn_ignores_hit),
        ("cuckoo relocation", cuckoo_unchecked_writes),
        ("cuckoo relocation", move_delete_unchecked),
        ("write order: cuckoo relocation", break_before_make),
        ("version reuse", reclaim_while_referenced),
        ("version reuse", reclaim_without_bound),
        ("version reuse", reclaim_overlooks_entries),
        ("version reuse", version_counter_wraps),
        ("teardown", teardown_without_grace),
        ("teardown", fin_deletes_at_once),
        ("learning-queue de-duplication", learn_filter_keeps_consumed),
        ("learning-queue de-duplication", learn_filter_keyed_on_digest),
        ("SYN authentication", auth_accepts_any_ack),
        ("SYN authentication", auth_learned_before_check),
        ("SYN authentication", cookie_without_source),
        ("SYN authentication", cookie_without_source_port),
        ("fault handling", restart_drops_updates),
        ("update protocol bookkeeping", seal_ignores_false_positives),
        ("update protocol bookkeeping", sealed_unplaced_forgotten),
        ("TransitTable slots", updates_share_slot_zero),
        ("TransitTable epochs", epoch_counter_overflows),
        ("write order: TransitTable epoch", record_before_epoch_bump),
        ("write timing: protocol waits", protocol_waits_from_decision),
        ("write order: DIPPoolTable before VIPTable", pool_after_exec_flip),
    )
)
MUTANTS_BY_NAME = {m.name: m for m in MUTANTS}


WRITE_ORDER_MUTANTS = tuple(m for m in MUTANTS if m.mechanism.startswith("write"))
"""The mutants that reorder, split or mistime the single table writes of one CPU action."""

BETWEEN_WRITES_MUTANTS = WRITE_ORDER_MUTANTS + tuple(
    MUTANTS_BY_NAME[name] for name in ("cuckoo-unchecked-writes", "move-delete-unchecked", "teardown-without-grace")
)
"""Issue #11's list: the write-order mutants, the two that skip the CPU's own per-write checks
(which the suite must kill without relying on those checks), and the teardown delete written
before its grace. Each must break PCC, or leave the shipped design, on BMv2 as on the model."""

COUNTEREXAMPLES_DIR = Path(__file__).resolve().parent / "counterexamples"
"""One trace per mutant of ``BETWEEN_WRITES_MUTANTS``, named after it, that shows it with packets
between single writes, on the model and on BMv2 alike: a PCC violation (``expect: fail``), or, for
a mutant that cannot break PCC (its description says why), the packet where it leaves the shipped
design."""


def get_mutant(name: str) -> Mutant:
    if name not in MUTANTS_BY_NAME:
        raise ValueError(f"unknown mutant {name!r}; known: {', '.join(MUTANTS_BY_NAME)}")
    return MUTANTS_BY_NAME[name]
