"""The example database: one shrunk trace per failure signature and target, safe to share.

``<db>/<target>/<category>-<kind>.json`` is the trace (the trace language),
``.txt`` beside it a one-screen explanation. Several campaigns may write one
database at once (two terminals, two clusters sharing a home directory):

* every file is written to a temporary name in its directory and renamed
  over the old one, so a reader sees the old file or the new one, never half;
* a save holds an exclusive ``flock`` on ``<db>/<target>/.lock`` while it
  decides and renames the pair, and a replay holds it shared, so a
  ``.json`` and its ``.txt`` always belong together;
* a save keeps the entry already there if that one is no longer and still
  shows the same failure: a campaign never replaces a better trace another
  one saved meanwhile.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator
from pathlib import Path

from fuzz.invariants import Failure
from silkcheck import atomic
from silkcheck.trace import Trace, TraceError, dumps, load

Shows = Callable[[Trace], Failure | None]
"""Runs a trace on the database's target: the failure it shows, or None."""
LOCK = ".lock"


def target_dir(db: Path, target: str) -> Path:
    return db / target


def entry_path(db: Path, target: str, failure: Failure) -> Path:
    category, kind = failure.signature
    return target_dir(db, target) / f"{category}-{kind}.json"


@contextlib.contextmanager
def locked(directory: Path, exclusive: bool) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / LOCK).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save(db: Path, target: str, trace: Trace, failure: Failure, explanation: str, shows: Shows) -> Path | None:
    """Save ``trace`` as the entry for ``failure``'s signature unless the entry there is at least as
    short and still shows that failure; the path if saved."""
    path = entry_path(db, target, failure)
    with locked(path.parent, exclusive=True):
        if _better_entry(path, len(trace.events), failure, shows):
            return None
        atomic.write_text(path.with_suffix(".txt"), explanation + "\n")
        atomic.write_text(path, dumps(trace))
    return path


def _better_entry(path: Path, events: int, failure: Failure, shows: Shows) -> bool:
    try:
        saved = load(path)
    except (OSError, TraceError):
        return False  # missing or unreadable: replace it
    if len(saved.events) > events:
        return False
    shown = shows(saved)
    return shown is not None and shown.signature == failure.signature


def replay_saved(db: Path, target: str, shows: Shows, warn: Callable[[str], None]) -> list[tuple[Path, bool]]:
    """Run every saved trace of ``target``: (path, still fails)."""
    directory = target_dir(db, target)
    if not directory.is_dir():
        return []
    results = []
    with locked(directory, exclusive=False):
        for path in sorted(directory.glob("*.json")):
            try:
                trace = load(path)
            except TraceError as error:
                warn(f"skipping {path}: {error}")
                continue
            results.append((path, shows(trace) is not None))
    return results
