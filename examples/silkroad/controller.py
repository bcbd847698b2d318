"""Example (c)'s controller: ``p4/silkroad.p4`` driven in real time by the model's own ``Cpu``.

The Cpu runs on the controller's clock (µs of wall time) through its public entry points
(``Cpu.boot``, ``advance``, ``expire``, ``request_update``; ``restart`` after a kill) and
the ``model.cpu.Backend`` protocol, here written with p4runtime-shell:

* each step's table writes are queued and then sent one P4Runtime write at a time, in the
  Cpu's order, with packets flowing between them (``apply_next``: a write counts as in
  effect from when the switch acknowledged it, which the update protocol's waits start from);

* learn events are the program's ``report_t`` digests (sent for every miss, SYN hit and
  FIN/RST), stamped with the digest list's switch timestamp, passed through the model's
  own learning filter (``LearnChannel``);
* idle times come from the switch: the ConnTables support idle timeouts, every entry is
  written with one (``CONN_TTL_NS``), and BMv2 times every hit; the controller reads each
  entry's ``time_since_last_hit`` before each expiry pass (and one entry's before a delete
  between passes), and keeps each entry's last hit (``IdleTimes``);
* a journal (the pickled Cpu and backend, written after every step that did something)
  survives a kill; the restarted controller loads it, makes its writes idempotent (an
  insert that exists is a modify, a delete of nothing is nothing: the killed step may have
  made some of them) and calls ``Cpu.restart``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import queue
import sys
import threading
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import p4runtime_sh.shell as sh
from lbshell import connect
from p4.v1 import p4runtime_pb2
from p4runtime_sh.p4runtime import P4RuntimeWriteException

from model.config import Config
from model.cpu import Cpu, CpuLog
from model.dataplane import LearnChannel, LearnEvent
from model.hashing import HashPlan
from model.types import FiveTuple
from silkcheck.blackbox.controller import Pools, ProcessController, SwitchAddress, controller_args, serve_pool_changes
from silkcheck.silkroad_backend import SilkRoadWrites
from silkcheck.targets.bmv2 import LEARN_BITS, REPORT_FIELDS

CONFIG_PATH = Path(__file__).resolve().parent / "config.json"
TICK_S = 0.005
EXPIRE_EVERY_US = 1_000_000
JUMP_US = 50_000
"""A loop that wakes this much later than it slept was paused (or starved): p4runtime-shell's
stream reader may not yet have handed over the digests that came meanwhile, so the step waits
for a ``StreamBarrier`` first. A shorter gap delays a digest by less than this, which the
learn-delay bound (500 ms in config.json) covers beside the digests' own delays."""
BARRIER_TIMEOUT_S = 30.0
CONN_TTL_NS = 4_000_000_000
"""The idle timeout every ConnTable entry is written with, so that the switch reports how long
it has been idle; the Cpu decides expiry (BMv2 also sends one idle notification per entry idle
this long, which the loop discards). Below 4.29 s: BMv2 1.15 computes the remaining TTL as
32-bit milliseconds times 10^6, so a longer one reads back wrapped (measured). An entry idle
for the whole TTL reads as idle TTL: reads must come more often than that (``IdleTimes``)."""


class Controller(ProcessController):
    script = Path(__file__)
    config_path = CONFIG_PATH
    """The Cpu's config (a subclass may name another, e.g. with shorter timeouts)."""

    def start(self, switch: SwitchAddress, pools: Pools, restart: bool) -> None:
        self.extra_args = ("--journal", str(self.log_dir / "journal.pickle"), "--config", str(self.config_path))
        super().start(switch, pools, restart)


def now_us() -> int:
    return time.time_ns() // 1000


class ShellTables:
    """``TableWriter`` over p4runtime-shell; idempotent once ``recovering`` (after a kill)."""

    recovering = False

    def _entry(self, table: str, key: dict[str, int], action: str | None,
               params: dict[str, int] | None) -> sh.TableEntry:  # fmt: skip
        entry = sh.TableEntry(table)(action=action) if action else sh.TableEntry(table)
        for name, value in key.items():
            entry.match[name] = str(value)
        for name, value in (params or {}).items():
            entry.action[name] = str(value)
        if action and table.startswith("ConnTable"):
            entry.idle_timeout_ns = CONN_TTL_NS
        return entry

    def insert(self, table: str, key: dict[str, int], action: str, params: dict[str, int] | None = None) -> None:
        entry = self._entry(table, key, action, params)
        try:
            entry.insert()
        except P4RuntimeWriteException:
            if not self.recovering:
                raise
            entry.modify()

    def modify(self, table: str, key: dict[str, int], action: str, params: dict[str, int] | None = None) -> None:
        self._entry(table, key, action, params).modify()

    def delete(self, table: str, key: dict[str, int]) -> None:
        try:
            self._entry(table, key, None, None).delete()
        except P4RuntimeWriteException:
            if not self.recovering:
                raise


class IdleTimes:
    """Each ConnTable entry's last hit (µs, the controller's clock), from the switch's idle times.

    A read at time ``r`` that says an entry has been idle for ``e < TTL`` puts its last hit at
    ``r - e``. One that says ``TTL`` (the most it can say) means no hit since ``r - TTL``; if the
    previous read started before that, a hit between the two could not be seen by either (a
    pause, a kill): it is assumed at ``r - TTL``, the latest it can have been. Last hits only
    ever move later, so an error can only keep an entry longer, never expire a live one."""

    def __init__(self, stages: int) -> None:
        self.stages = stages
        self.last_hit: dict[tuple[int, int, int], int] = {}
        self.read_at: int | None = None
        """When the last read of every stage started."""
        self.fresh_for: int | None = None
        """The step time ``read_all`` was called for: its figures are current for that step."""

    def read_all(self, step_now: int) -> None:
        started = now_us()
        for stage in range(self.stages):
            self._apply(stage, list(self._request(stage).read()))
        self.read_at, self.fresh_for = started, step_now

    def read_one(self, stage: int, bucket: int, digest: int) -> None:
        request = self._request(stage)
        request.match["bucket"], request.match["digest"] = str(bucket), str(digest)
        self._apply(stage, list(request.read()))

    @staticmethod
    def _request(stage: int) -> sh.TableEntry:
        entry = sh.TableEntry(f"ConnTable{stage}")
        entry.time_since_last_hit  # noqa: B018 - touching it asks the switch for every entry's idle time
        return entry

    def _apply(self, stage: int, entries: list[sh.TableEntry]) -> None:
        done, ttl = now_us(), CONN_TTL_NS // 1000
        for entry in entries:
            key = (stage, _exact(entry, "bucket"), _exact(entry, "digest"))
            if key not in self.last_hit:
                continue  # not the Cpu's (yet): written by the step a kill interrupted
            idle = entry.time_since_last_hit.elapsed_ns // 1000
            if idle < ttl:
                self.last_hit[key] = max(self.last_hit[key], done - idle)
            elif self.read_at is None or done - ttl > self.read_at:
                self.last_hit[key] = max(self.last_hit[key], done - ttl)


def _exact(entry: sh.TableEntry, field: str) -> int:
    return int.from_bytes(entry.match[field].exact.value, "big")


class ShellBackend(SilkRoadWrites, LearnChannel):
    def __init__(self, stages: int) -> None:
        self.tables = ShellTables()
        self.idle = IdleTimes(stages)
        self.last_hit = self.idle.last_hit
        self.vip_written = set()
        self.pool_sizes = {}
        self.learn_queue: deque[LearnEvent] = deque()
        self.learn_filter: set[tuple[str, FiveTuple]] = set()

    def idle_time(self, stage: int, bucket: int, digest: int, now: int) -> int:
        if self.idle.fresh_for != now:
            self.idle.read_one(stage, bucket, digest)
        return max(0, now - self.last_hit[(stage, bucket, digest)])

    def state(self) -> tuple[object, ...]:
        return self.last_hit, self.idle.read_at, self.vip_written, self.pool_sizes

    def restore(self, state: tuple[object, ...]) -> None:
        last_hit, self.idle.read_at, self.vip_written, self.pool_sizes = state  # type: ignore[assignment]
        self.last_hit.update(last_hit)  # type: ignore[call-overload]

    def take_stream(self) -> None:
        """Every report digest the stream has handed over, as learn events; idle notifications
        are dropped (the reads say more)."""
        while sh.client.get_stream_packet("idle_timeout_notification", timeout=0) is not None:
            pass
        while (message := sh.client.get_stream_packet("digest", timeout=0)) is not None:
            digest = message.digest
            sent = digest.timestamp // 1000 if digest.timestamp else now_us()
            for data in digest.data:
                report = {n: int.from_bytes(m.bitstring, "big")
                          for n, m in zip(REPORT_FIELDS, data.struct.members, strict=True)}  # fmt: skip
                ft = FiveTuple(report["src_ip"], report["dst_ip"], report["src_port"], report["dst_port"],
                               report["proto"])  # fmt: skip
                for kind, bit in LEARN_BITS.items():
                    if report["learned"] & bit:
                        self.learn(sent, kind, ft, report["version"])
            ack = p4runtime_pb2.StreamMessageRequest()
            ack.digest_ack.digest_id = digest.digest_id
            ack.digest_ack.list_id = digest.list_id
            sh.client.stream_out_q.put(ack)


class StreamBarrier:
    """Waits until every message the switch sent on the stream before the wait began is in
    p4runtime-shell's queues. The switch answers a change of election id on the stream, after
    what it sent before (the same id again gets no answer from BMv2: measured; PI's
    ``update_connection``), so the controller moves between the two lowest ids it owns
    (``ELECTION_SPAN``) and waits for the answer naming the new one."""

    def __init__(self, election_id: int) -> None:
        self.ids = ((0, election_id), (0, election_id + 1))
        self.current = 0

    def wait(self) -> None:
        self.current ^= 1
        high, low = self.ids[self.current]
        request = p4runtime_pb2.StreamMessageRequest()
        request.arbitration.device_id = sh.client.device_id
        request.arbitration.election_id.high, request.arbitration.election_id.low = high, low
        sh.client.stream_out_q.put(request)
        deadline = time.monotonic() + BARRIER_TIMEOUT_S
        while time.monotonic() < deadline:
            reply = sh.client.get_stream_packet("arbitration", timeout=1)
            named = reply and (reply.arbitration.election_id.high, reply.arbitration.election_id.low)
            if named == (high, low):  # an answer naming another id is an older one (a restart's)
                sh.client.election_id = (high, low)  # writes carry it from now on
                return
        raise SystemExit(f"the switch did not answer a change of election id within {BARRIER_TIMEOUT_S:.0f} s")


def save_journal(path: Path, cpu: Cpu, backend: ShellBackend) -> None:
    """The Cpu without what a restart makes anew: its backend, its hash plan (a cache)."""
    plan = cpu.plan
    cpu.backend, cpu.plan = None, None  # type: ignore[assignment]
    try:
        data = pickle.dumps((cpu, backend.state()))
    finally:
        cpu.backend, cpu.plan = backend, plan
    partial = path.with_suffix(".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def load_journal(path: Path, backend: ShellBackend, plan: HashPlan) -> Cpu:
    cpu, state = pickle.loads(path.read_bytes())
    backend.restore(state)
    cpu.backend, cpu.plan = backend, plan
    return cpu


def apply_writes(cpu: Cpu) -> int:
    """The table writes the Cpu's last steps decided, one P4Runtime write at a time in their order
    (packets keep flowing between them, as on any switch); how many there were."""
    count = 0
    while cpu.pending:
        cpu.apply_next(now_us)
        count += 1
    return count


def did_something(log: CpuLog) -> bool:
    return bool(log.learned or log.lost or log.notes)


def main() -> None:
    args = controller_args()
    own = argparse.ArgumentParser(description="example (c)'s controller options")
    own.add_argument("--journal", type=Path, required=True, help="where the Cpu survives a kill")
    own.add_argument("--config", type=Path, default=CONFIG_PATH, help="the Cpu's config (JSON)")
    options = own.parse_args(args.extra)
    journal = options.journal
    config = Config.from_dict(json.loads(options.config.read_text()))
    connect(args)
    backend = ShellBackend(config.stages)
    plan = HashPlan(config)
    if args.restart and journal.exists():
        backend.tables.recovering = True
        cpu = load_journal(journal, backend, plan)
        cpu.restart(now_us(), CpuLog())
        for vip, pool in args.pools.items():  # what was asked while we were dead
            if cpu.pools[vip].get(cpu.vip_entries[vip].new_version) != pool:
                cpu.request_update(vip, pool, now_us(), CpuLog())
        apply_writes(cpu)
    else:
        digest = sh.DigestEntry("report_t")
        digest.max_timeout_ns = 0
        digest.max_list_size = 1
        digest.ack_timeout_ns = 0
        digest.insert()
        cpu = Cpu.boot(config, plan, backend, args.pools, queued=True)
        apply_writes(cpu)
    save_journal(journal, cpu, backend)
    requests: queue.Queue[tuple[object, object]] = queue.Queue()
    threading.Thread(target=serve_pool_changes, args=(lambda vip, pool: requests.put((vip, pool)),),
                     daemon=True).start()  # fmt: skip
    barrier = StreamBarrier(args.switch.election_id)
    last_expire = last_loop = now_us()
    while True:
        time.sleep(TICK_S)
        now = now_us()
        if now - last_loop > JUMP_US:
            barrier.wait()
        last_loop = now
        backend.take_stream()
        expiring = now - last_expire >= EXPIRE_EVERY_US
        if expiring:  # before any step of this time: one read serves every idle time it asks
            backend.idle.read_all(now)
        log = CpuLog()
        while not requests.empty():
            vip, pool = requests.get()
            cpu.request_update(vip, pool, now, log)  # type: ignore[arg-type]
        cpu.advance(now, log)
        if expiring:
            cpu.expire(now, log)
            last_expire = now
        if apply_writes(cpu) or did_something(log):
            save_journal(journal, cpu, backend)


if __name__ == "__main__":
    main()
