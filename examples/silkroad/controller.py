"""Example (c)'s controller: ``p4/silkroad.p4`` driven in real time by the model's own ``Cpu``.

The Cpu runs on the controller's clock (µs of wall time) through its public entry points
(``Cpu.boot``, ``advance``, ``expire``, ``request_update``; ``restart`` after a kill) and
the ``model.cpu.Backend`` protocol, here written with p4runtime-shell:

* learn events are the program's ``report_t`` digests (sent for every miss, SYN hit and
  FIN/RST), stamped with the digest list's switch timestamp, passed through the model's
  own learning filter (``LearnChannel``);
* idle times: BMv2's P4Runtime server gives no usable time-since-last-hit (measured: the
  value does not reset on a hit), and the program reports no plain hits, so an entry's
  idle timer restarts at insertion and at each digest that reports a hit on it (a SYN
  hit, a FIN/RST). A connection that keeps sending for longer than ``idle_timeout``
  without one is expired while alive: the config's 30 s idle timeout is that limit;
* a journal (the pickled Cpu and backend, written after every step that did something)
  survives a kill; the restarted controller loads it, makes its writes idempotent (an
  insert that exists is a modify, a delete of nothing is nothing: the killed step may have
  made some of them) and calls ``Cpu.restart``.
"""

from __future__ import annotations

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
"""A loop that wakes this much later than it slept was paused (or starved): the stream reader
may not have handed over every digest that arrived meanwhile, so wait a tick before acting."""


class Controller(ProcessController):
    script = Path(__file__)

    def start(self, switch: SwitchAddress, pools: Pools, restart: bool) -> None:
        self.extra_args = ("--journal", str(self.log_dir / "journal.pickle"))
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


class ShellBackend(SilkRoadWrites, LearnChannel):
    def __init__(self) -> None:
        self.tables = ShellTables()
        self.last_hit: dict[tuple[int, int, int], int] = {}
        self.vip_written = set()
        self.pool_sizes = {}
        self.learn_queue: deque[LearnEvent] = deque()
        self.learn_filter: set[tuple[str, FiveTuple]] = set()

    def idle_time(self, stage: int, bucket: int, digest: int, now: int) -> int:
        return now - self.last_hit[(stage, bucket, digest)]

    def state(self) -> tuple[object, ...]:
        return self.last_hit, self.vip_written, self.pool_sizes

    def take_digests(self) -> None:
        """Every report digest the stream has handed over, as learn events."""
        while (message := sh.client.get_stream_packet("digest", timeout=0)) is not None:
            digest = message.digest
            sent = digest.timestamp // 1000 if digest.timestamp else now_us()
            for data in digest.data:
                report = {n: int.from_bytes(m.bitstring, "big")
                          for n, m in zip(REPORT_FIELDS, data.struct.members, strict=True)}  # fmt: skip
                ft = FiveTuple(report["src_ip"], report["dst_ip"], report["src_port"], report["dst_port"],
                               report["proto"])  # fmt: skip
                if report["hit"]:
                    key = (report["hit_stage"], report[f"bucket{report['hit_stage']}"], report["digest"])
                    if key in self.last_hit:
                        self.last_hit[key] = max(self.last_hit[key], sent)
                for kind, bit in LEARN_BITS.items():
                    if report["learned"] & bit:
                        self.learn(sent, kind, ft, report["version"])
            ack = p4runtime_pb2.StreamMessageRequest()
            ack.digest_ack.digest_id = digest.digest_id
            ack.digest_ack.list_id = digest.list_id
            sh.client.stream_out_q.put(ack)


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
    cpu, (backend.last_hit, backend.vip_written, backend.pool_sizes) = pickle.loads(path.read_bytes())
    cpu.backend, cpu.plan = backend, plan
    return cpu


def did_something(log: CpuLog) -> bool:
    return bool(log.installs or log.removes or log.learned or log.phases or log.whitelisted or log.lost or log.notes)


def main() -> None:
    args = controller_args()
    journal = Path(args.extra[args.extra.index("--journal") + 1])
    config = Config.from_dict(json.loads(CONFIG_PATH.read_text()))
    connect(args)
    backend = ShellBackend()
    plan = HashPlan(config)
    if args.restart and journal.exists():
        backend.tables.recovering = True
        cpu = load_journal(journal, backend, plan)
        cpu.restart(now_us(), CpuLog())
        for vip, pool in args.pools.items():  # what was asked while we were dead
            if cpu.pools[vip].get(cpu.vip_entries[vip].new_version) != pool:
                cpu.request_update(vip, pool, now_us(), CpuLog())
    else:
        digest = sh.DigestEntry("report_t")
        digest.max_timeout_ns = 0
        digest.max_list_size = 1
        digest.ack_timeout_ns = 0
        digest.insert()
        cpu = Cpu.boot(config, plan, backend, args.pools)
    save_journal(journal, cpu, backend)
    requests: queue.Queue[tuple[object, object]] = queue.Queue()
    threading.Thread(target=serve_pool_changes, args=(lambda vip, pool: requests.put((vip, pool)),),
                     daemon=True).start()  # fmt: skip
    last_expire = last_loop = now_us()
    while True:
        time.sleep(TICK_S)
        now = now_us()
        jumped = now - last_loop > JUMP_US
        last_loop = now
        if jumped:
            continue
        backend.take_digests()
        log = CpuLog()
        while not requests.empty():
            vip, pool = requests.get()
            cpu.request_update(vip, pool, now, log)  # type: ignore[arg-type]
        cpu.advance(now, log)
        if now - last_expire >= EXPIRE_EVERY_US:
            cpu.expire(now, log)
            last_expire = now
        if did_something(log):
            save_journal(journal, cpu, backend)


if __name__ == "__main__":
    main()
