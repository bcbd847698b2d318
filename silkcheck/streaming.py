"""Replays as streams: events in, observations through the oracle, nothing kept per packet.

Memory then grows with live connections (the model's tables and the oracle's live
incarnations), not with the packets: ``judge_stream`` keeps only the findings and
a few packets of each live incarnation for their report.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from model import events as ev
from model.config import Config
from model.observations import Observation, PacketObservation
from silkcheck import report
from silkcheck.oracle import STREAM_WINDOW, Oracle, Verdict
from silkcheck.trace import Trace, TraceError, TraceWriter


@dataclass
class StreamResult:
    verdict: Verdict
    events: int
    peak_live: int
    """The most incarnations live at once."""


PROGRESS_EVERY = 1_000_000
"""Packets between two progress lines on stderr."""


def judge_stream(config: Config, observations: Iterable[Observation], window: int = STREAM_WINDOW,
                 progress: bool = False) -> StreamResult:  # fmt: skip
    """The oracle's verdict on a stream of observations; with ``progress``, a line on stderr every
    million packets."""
    oracle = Oracle(config, window)
    peak = events = 0
    start = time.perf_counter()
    for o in observations:
        oracle.feed(o)
        events += 1
        peak = max(peak, len(oracle.live))
        if progress and oracle.packets % PROGRESS_EVERY == 0 and type(o) is PacketObservation:
            rate = oracle.packets / (time.perf_counter() - start)
            print(f"... {oracle.packets:,} packets judged, {len(oracle.live):,} live incarnations, "
                  f"{rate:,.0f} packets/s", file=sys.stderr, flush=True)  # fmt: skip
    return StreamResult(oracle.verdict(), events, peak)


def saving(trace: Trace, events: Iterable[ev.Event], path: Path) -> Iterator[ev.Event]:
    """``events`` passed through, each also written to ``path`` as part of ``trace`` (opened now,
    so an unwritable path fails before the long work)."""
    try:
        out = path.open("w")
    except OSError as error:
        raise TraceError(f"{path}: cannot write: {error.strerror}") from None

    def tee() -> Iterator[ev.Event]:
        with out:
            writer = TraceWriter(trace, out)
            for event in events:
                writer.write(event)
                yield event
            writer.close()

    return tee()


def describe(name: str, target: str, result: StreamResult, authenticating: bool = False) -> str:
    v = result.verdict
    lines = [f"{name} on {target}: {v.summary()}",
             f"{v.packets:,} packets and {result.events - v.packets:,} other events judged as a stream: "
             f"{v.connections:,} connection incarnations, at most {result.peak_live:,} live at once"]  # fmt: skip
    if authenticating:
        lines.append(report.authentication(v.auth))
    for finding in v.findings:
        lines += ["", report.explain(finding)]
    return "\n".join(lines)
