"""A SilkRoad switch: data plane + switch CPU, and the transitions a trace drives.

What can happen (one named function each, guard first):

===================  =========================================================
``packet``           a packet goes through the ingress pipeline
``update``           an operator requests a new DIP pool (t_req when started)
``cpu_learn``        the CPU reads learn events and installs connections
``cpu_advance``      the CPU drains learn events and advances each update
                     (t_exec, t_seal, t_finish), starts queued ones
``cpu_expire``       the CPU drains learn events, removes idle / torn-down
                     entries, reclaims versions
``lose_learn``       fault: a queued learn event is lost
``delay_learn``      fault: a queued learn event arrives late (within the bound)
``late_learn``       fault: a queued learn event arrives after the bound
``cpu_restart``      fault: the CPU process restarts from its journal
``dip_fail``         fault: a server dies and leaves every pool
``cpu_writes``       the next table writes the CPU queued take effect
===================  =========================================================

The CPU's decisions are instant, its writes are not: every transition that
sets the CPU to work queues the table writes it makes (``model.writes``), of
which the event's ``writes`` take effect at once (all by default); the rest
take effect one by one in later ``cpu_writes`` transitions, with packets in
between. A CPU transition first applies what is still queued: the CPU
finishes one write sequence before it starts the next.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from model import events as ev
from model.config import Config
from model.cpu import Cpu, CpuLog
from model.dataplane import DataPlane, process_packet
from model.observations import CpuObservation, Observation, PacketObservation
from model.types import Dip, FiveTuple, Vip
from model.writes import ConnDelete, ConnInsert, TableWrite, VipWrite, WhitelistAdd


class InvalidEvent(ValueError):
    """An event the switch cannot take in its current state (e.g. no such queued learn event)."""


@dataclass
class Switch:
    config: Config
    dataplane: DataPlane
    cpu: Cpu
    decided_at: int = -1
    """Position of the CPU step whose writes are queued (a step first applies what is queued,
    so the queue only ever holds one step's writes)."""

    @classmethod
    def boot(cls, config: Config, vips: dict[Vip, tuple[Dip, ...]]) -> Switch:
        dataplane = DataPlane.empty(config)
        return cls(config, dataplane, Cpu.boot(config, dataplane.plan, dataplane, vips, queued=True))

    def step(self, index: int, event: ev.Event) -> Observation:
        handler = _HANDLERS[type(event)]
        return handler(self, index, event)

    # ------------------------------------------------------------ transitions

    def packet(self, index: int, e: ev.PacketArrives) -> PacketObservation:
        return process_packet(self.dataplane, index, e.t, e.packet)

    def update(self, index: int, e: ev.UpdateRequested) -> CpuObservation:
        if e.vip not in self.cpu.pools:
            raise InvalidEvent(f"update for unknown VIP {e.vip}")
        if not e.pool:
            raise InvalidEvent(f"update for {e.vip} has an empty pool")
        return self._cpu(index, "update", e, lambda log: self.cpu.request_update(e.vip, e.pool, e.t, log))

    def cpu_learn(self, index: int, e: ev.CpuLearns) -> CpuObservation:
        return self._cpu(index, "learn", e, lambda log: self.cpu.learn(e.t, e.limit, log))

    def cpu_advance(self, index: int, e: ev.CpuAdvances) -> CpuObservation:
        return self._cpu(index, "advance", e, lambda log: self.cpu.advance(e.t, log))

    def cpu_expire(self, index: int, e: ev.CpuExpires) -> CpuObservation:
        return self._cpu(index, "expire", e, lambda log: self.cpu.expire(e.t, log))

    def lose_learn(self, index: int, e: ev.LearnLost) -> CpuObservation:
        self._check_queued(e.index)
        lost = self.dataplane.lose_learn(e.index)
        notes = (f"lost {lost.kind} learn event",)
        return CpuObservation(index, e.t, "lose_learn", lost=((lost.ft, lost.sent),), notes=notes)

    def delay_learn(self, index: int, e: ev.LearnDelayed) -> CpuObservation:
        self._check_queued(e.index)
        if e.delay > self.config.learn_delay_bound:
            raise InvalidEvent(
                f"delay {e.delay} exceeds learn_delay_bound {self.config.learn_delay_bound}: use late_learn"
            )
        delayed = self.dataplane.delay_learn(e.index, e.delay)
        return CpuObservation(index, e.t, "delay_learn", notes=(f"delayed {delayed.kind} learn of {delayed.ft}",))

    def late_learn(self, index: int, e: ev.LearnLate) -> CpuObservation:
        """The event arrives when the channel lets it, past the bound. For the connection it is a loss
        (what its packet told the CPU comes after the protocol stopped waiting for it), observed as
        one, and then a stale arrival that the CPU takes in as it would any event."""
        self._check_queued(e.index)
        if e.delay <= self.config.learn_delay_bound:
            raise InvalidEvent(f"delay {e.delay} is within learn_delay_bound {self.config.learn_delay_bound}: "
                               "use delay_learn")  # fmt: skip
        late = self.dataplane.delay_learn(e.index, e.delay)
        notes = (f"{late.kind} learn of {late.ft} delayed {e.delay}, past the bound",)
        return CpuObservation(index, e.t, "late_learn", lost=((late.ft, late.sent),), notes=notes)

    def cpu_restart(self, index: int, e: ev.CpuRestarts) -> CpuObservation:
        return self._cpu(index, "restart", e, lambda log: self.cpu.restart(e.t, log))

    def dip_fail(self, index: int, e: ev.DipFails) -> CpuObservation:
        return self._cpu(index, "dip_fail", e, lambda log: self.cpu.dip_failed(e.dip, e.t, log))

    def cpu_writes(self, index: int, e: ev.CpuWrites) -> CpuObservation:
        queued = len(self.pending)
        if not 1 <= e.count <= queued:
            raise InvalidEvent(f"{e.count} write(s) asked for, {queued} queued")
        return self._observe(index, e.t, "write", CpuLog(), self._apply(e.t, e.count))

    # ------------------------------------------------------------ helpers

    def _check_queued(self, index: int) -> None:
        queued = len(self.dataplane.learn_queue)
        if not 0 <= index < queued:
            raise InvalidEvent(f"no queued learn event #{index} (the queue holds {queued})")

    @property
    def pending(self) -> deque[TableWrite]:
        assert self.cpu.pending is not None  # ``boot`` queues the CPU's writes
        return self.cpu.pending

    def entry_owner(self, stage: int, key: tuple[int, int]) -> FiveTuple | None:
        """The connection the CPU wrote the entry for that packets find at ``(stage, key)`` now:
        the CPU's shadow runs ahead of the table by the writes still queued."""
        for write in self.pending:
            if isinstance(write, ConnInsert | ConnDelete) and write.at == (stage, *key):
                return write.owner if isinstance(write, ConnDelete) else None
        holder = self.cpu.table[stage].get(key)
        return None if holder is None else holder.ft

    def _cpu(self, index: int, kind: str, e: ev.Event, action: Callable[[CpuLog], None]) -> CpuObservation:
        done = self._apply(e.t, None)  # what the CPU still had to write, first
        log = CpuLog()
        action(log)
        self.decided_at = index
        done += self._apply(e.t, e.writes)  # type: ignore[union-attr]
        return self._observe(index, e.t, kind, log, done)

    def _apply(self, t: int, count: int | None) -> list[tuple[TableWrite, int]]:
        """The oldest ``count`` queued writes (None: all) take effect, one by one, at ``t``;
        each with the position of the step that decided it."""
        pending = self.pending
        done = []
        for _ in range(len(pending) if count is None else min(count, len(pending))):
            done.append((self.cpu.apply_next(lambda: t), self.decided_at))
        return done

    def _observe(
        self, index: int, t: int, kind: str, log: CpuLog, done: list[tuple[TableWrite, int]]
    ) -> CpuObservation:
        return CpuObservation(
            index, t, kind,
            installs=tuple(w.entry(at) for w, at in done if isinstance(w, ConnInsert)),
            removes=tuple(w.entry(at) for w, at in done if isinstance(w, ConnDelete)),
            learned=tuple(log.learned),
            phases=tuple(w.change for w, _ in done if isinstance(w, VipWrite)),
            whitelisted=tuple(w.src_ip for w, _ in done if isinstance(w, WhitelistAdd)),
            lost=tuple(log.lost), failed_dips=tuple(log.failed_dips), notes=tuple(log.notes),
            pending=len(self.pending), applied=tuple(w for w, _ in done),
        )  # fmt: skip


_HANDLERS = {
    ev.PacketArrives: Switch.packet,
    ev.UpdateRequested: Switch.update,
    ev.CpuLearns: Switch.cpu_learn,
    ev.CpuAdvances: Switch.cpu_advance,
    ev.CpuExpires: Switch.cpu_expire,
    ev.LearnLost: Switch.lose_learn,
    ev.LearnDelayed: Switch.delay_learn,
    ev.LearnLate: Switch.late_learn,
    ev.CpuRestarts: Switch.cpu_restart,
    ev.DipFails: Switch.dip_fail,
    ev.CpuWrites: Switch.cpu_writes,
}
