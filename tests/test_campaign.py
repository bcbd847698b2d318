"""Campaigns on a Dask cluster: findings stream back and are saved, a lost worker loses nothing,
the kill table does not depend on the cluster, workers die with the command, the database stays whole."""

from __future__ import annotations

import gc
import math
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from fuzz import database
from fuzz.campaign import FuzzTask, explain, mutant_table, run_campaign, run_fuzz_task, shows
from fuzz.mutants import get_mutant
from fuzz.walk import PCC_ONLY, replay, shrink, walk
from silkcheck.cluster import Channel, ClusterError, Done, TaskStream, open_cluster, parse_address
from silkcheck.trace import Trace, load

KILL_TARGET = "update-preempts-running"
"""A mutant whose walks fail often (several failures per task), so there is something to lose."""


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with open_cluster(None, 2) as client:
        yield client


def test_a_short_campaign_on_a_two_worker_local_cluster(client: Any, tmp_path: Path) -> None:
    result = run_campaign(client, "model", budget=2.0, db=tmp_path, hypothesis_share=0.5, progress=False)
    assert result.found == {} and not result.interrupted
    assert result.tasks >= 2 and result.steps > 1000
    features = set(result.coverage.counts)
    assert {"phase:record", "phase:transit", "cpu:install"} <= features


def test_campaign_saves_failures_and_replays_them_first(client: Any, tmp_path: Path) -> None:
    first = run_campaign(client, "auth-accepts-any-ack", 20, db=tmp_path, stop_on_first=True, progress=False)
    assert first.first is not None and first.first.shrunk
    saved = sorted((tmp_path / "auth-accepts-any-ack").glob("*.json"))
    assert saved and saved[0].with_suffix(".txt").read_text().startswith("[")
    again = run_campaign(client, "auth-accepts-any-ack", 0.5, db=tmp_path, progress=False)
    assert [still for _, still in again.replayed] == [True] * len(saved)


def _kill_a_worker_once_a_failure_is_saved(client: Any, db: Path, killed: list[int]) -> None:
    deadline = time.monotonic() + 30
    while not list(db.glob(f"{KILL_TARGET}/*.json")) and time.monotonic() < deadline:
        time.sleep(0.01)
    pid = sorted(client.run(os.getpid).values())[0]
    os.kill(pid, signal.SIGKILL)
    killed.append(pid)


def test_a_worker_killed_mid_run_loses_nothing(client: Any, tmp_path: Path) -> None:
    tasks = 4
    calm = run_campaign(client, KILL_TARGET, math.inf, db=tmp_path / "calm", hypothesis_share=0, tasks=tasks,
                        progress=False)  # fmt: skip
    assert len(calm.found) >= 2, "the mutant should fail in more than one way"

    killed: list[int] = []
    db = tmp_path / "killed"
    killer = threading.Thread(target=_kill_a_worker_once_a_failure_is_saved, args=(client, db, killed))
    killer.start()
    hit = run_campaign(client, KILL_TARGET, math.inf, db=db, hypothesis_share=0, tasks=tasks, progress=False)
    killer.join()

    assert killed and killed[0] not in client.run(os.getpid).values()
    assert hit.tasks == tasks and hit.lost == []  # the killed worker's tasks ran again elsewhere
    assert set(hit.found) == set(calm.found)
    assert all(found.shrunk for found in hit.found.values())
    entries = {path.stem for path in (db / KILL_TARGET).glob("*.json")}
    assert entries == {f"{category}-{kind}" for category, kind in calm.found}


def test_a_cancelled_task_stops_between_walks(client: Any) -> None:
    stream = TaskStream(client, lambda message: None, prefix="long")
    for index in range(2):  # walks without end, unless the task sees it was cancelled
        stream.submit(run_fuzz_task, FuzzTask("model", "walk", 0, index, 10**9, math.inf))
    time.sleep(1.0)
    stream.close()
    began = time.monotonic()
    # A budget far beyond the two short tasks' few seconds: were the endless tasks still holding
    # both workers, it would end the campaign with its tasks undone.
    result = run_campaign(client, "model", 600, db=None, hypothesis_share=0, tasks=2, progress=False)
    assert result.tasks == 2, f"after {time.monotonic() - began:.0f} s, {result.tasks} of 2 tasks ran"


def _frozen_objects(spec: None, channel: Channel) -> int:
    return gc.get_freeze_count()


def test_a_worker_freezes_its_heap_before_a_task(client: Any) -> None:
    # Dask's and its modules' objects, frozen, are not walked again by each full collection
    # while a task runs (silkcheck.cluster.freeze_heap); a process that did not freeze has none.
    stream = TaskStream(client, lambda message: None, prefix="freeze")
    stream.submit(_frozen_objects, None)
    done: list[Done] = []
    for _ in range(240):  # at most a minute of polls: the task itself takes microseconds
        done += stream.poll()
        if done:
            break
    stream.close()
    assert [d.lost for d in done] == [None]
    assert done[0].result > 10_000


def test_the_kill_table_does_not_depend_on_the_cluster(client: Any) -> None:
    names = ["record-skips-transit", "auth-accepts-any-ack", "cuckoo-unchecked-writes"]
    address = client.scheduler.address
    with open_cluster(address) as remote:
        two, _ = mutant_table(remote, 20, 0, names)
    with open_cluster(None, 1) as local:
        one, _ = mutant_table(local, 20, 0, names)

    def without_times(table: str) -> list[list[str]]:
        rows = [line.split() for line in table.splitlines()[2:]]
        return [[cell for cell in row if not cell.endswith("s") or not cell[:-1].replace(".", "").isdigit()]
                for row in rows]  # fmt: skip

    assert without_times(two) == without_times(one)
    assert "SURVIVED" not in one


def test_the_kill_table_has_a_pcc_trace_of_each_write_level_mutant_or_says_there_is_none(
    client: Any, tmp_path: Path
) -> None:
    """Killed by the refinement check, teardown-without-grace still gets a PCC trace from a PCC-only
    search, saved where ``fuzz --target`` replays it; pool-after-exec-flip cannot break PCC (its
    docstring says why), and the table says the search found nothing."""
    table, killed = mutant_table(client, 8, 0, ["teardown-without-grace", "pool-after-exec-flip"], tmp_path)
    assert killed
    rows = {line.split()[0]: line for line in table.splitlines()[2:]}
    assert "refinement/" in rows["teardown-without-grace"] and "PCC-only search " in rows["teardown-without-grace"]
    saved = tmp_path / "teardown-without-grace" / "pcc-moved.json"
    assert str(saved) in rows["teardown-without-grace"]
    trace = load(saved)
    with get_mutant("teardown-without-grace").patch():
        assert replay(trace.config, trace.vips, trace.events, PCC_ONLY).failure is not None
    assert replay(trace.config, trace.vips, trace.events).failure is None  # the shipped design, every check
    # The search stops at the first walk that ends past its budget: the CPU seconds it reports may round above 8.
    assert re.search(r"NONE: PCC-only search found none in \d+s CPU", rows["pool-after-exec-flip"])
    assert not (tmp_path / "pool-after-exec-flip").exists()


def test_a_scheduler_address_is_checked() -> None:
    assert parse_address("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        parse_address("10.0.0.5:8786")
    with pytest.raises(ClusterError, match="no Dask scheduler answered"), open_cluster("tcp://127.0.0.1:9", timeout=1):
        pass


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_the_fuzz_command_stops_its_workers_and_keeps_its_findings(signum: int, tmp_path: Path) -> None:
    target = "auth-accepts-any-ack"
    command = [sys.executable, "-m", "silkcheck.cli", "fuzz", "--budget", "120s", "--workers", "2",
               "--target", target, "--db", str(tmp_path)]  # fmt: skip
    parent = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    progress: list[str] = []
    threading.Thread(target=lambda: progress.extend(iter(lambda: parent.stderr.read(1), "")), daemon=True).start()
    deadline = time.monotonic() + 60
    while not re.search(r"tasks [1-9]", "".join(progress)) and parent.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # until the campaign has finished a task
    workers = [p for p in psutil.Process(parent.pid).children(recursive=True) if "spawn_main" in _cmdline(p)]
    assert len(workers) == 2 and all(_cpu_seconds(p) > 0.5 for p in workers), "".join(progress)
    parent.send_signal(signum)
    out, _ = parent.communicate(timeout=30)
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert alive == [], f"still running after the parent died: {[p.pid for p in alive]}"
    saved = [load(path) for path in (tmp_path / target).glob("*.json")]
    assert saved and all(trace.events for trace in saved)
    if signum == signal.SIGTERM:
        assert parent.returncode == 1 and "[interrupted]" in out
        assert "whitelisted only by the cookie of the SYN-ACK sent to its 5-tuple" in out  # the spec's guard


def _cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


# ---------------------------------------------------------------- the example database


def _failing_trace(target: str) -> tuple[Trace, Trace, Any]:
    with get_mutant(target).patch():
        out = next(o for seed in range(400) if (o := walk(seed)).failure is not None)
        assert out.failure is not None
        small, failure = shrink(out.trace, out.failure)
    return out.trace, small, failure


def _save_repeatedly(db: Path, target: str, trace: Trace, failure: Any, times: int) -> None:
    text = explain(trace, failure, target)
    for _ in range(times):
        database.save(db, target, trace, failure, text, shows(target))


def _replay_repeatedly(db: Path, target: str, times: int, broken: Any) -> None:
    for _ in range(times):
        database.replay_saved(db, target, shows(target), broken.put)


def test_two_campaigns_saving_at_once_leave_a_whole_database(tmp_path: Path) -> None:
    target = "record-skips-transit"
    raw, small, failure = _failing_trace(target)
    assert len(small.events) < len(raw.events)
    context = multiprocessing.get_context("spawn")  # this process has Dask's threads: no fork
    broken = context.Queue()
    writers = [context.Process(target=_save_repeatedly, args=(tmp_path, target, trace, failure, 40))
               for trace in (raw, small)]  # fmt: skip
    reader = context.Process(target=_replay_repeatedly, args=(tmp_path, target, 40, broken))
    for process in [*writers, reader]:
        process.start()
    for process in [*writers, reader]:
        process.join(timeout=120)
        assert process.exitcode == 0
    assert broken.empty(), broken.get()

    entry = database.entry_path(tmp_path, target, failure)
    kept = load(entry)
    assert len(kept.events) == len(small.events)  # the shorter trace won, whichever wrote last
    assert f"trace: {len(kept.events)} events" in entry.with_suffix(".txt").read_text()
    assert sorted(p.name for p in entry.parent.iterdir()) == [".lock", entry.name, entry.with_suffix(".txt").name]
