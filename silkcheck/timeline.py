"""Counterexample timelines: one lane per connection, plus the CPU and the update phases.

``text_timeline`` prints one row per event with a column per lane;
``html_timeline`` writes a self-contained Porcupine-like page where every
packet is a box on its connection's lane, coloured by the DIP it reached,
and the violating packets are outlined in red.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from model import events as ev
from model.observations import FORWARD, REPLY, CpuObservation, Observation, PacketObservation
from model.types import FiveTuple, flags_str
from silkcheck.oracle import VIOLATION, Verdict
from silkcheck.trace import CookieAck, Trace, TraceEvent, cookie_ack_text, dip_text, vip_text

CPU_LANE = "CPU"
UPDATE_LANE = "update"
LANE_WIDTH = 22
MAX_CONNECTION_LANES = 8


def describe(e: TraceEvent) -> str:
    """One short line for an event."""
    text = _describe(e)
    if isinstance(e, ev.CPU_ACTIONS) and e.writes is not None:
        text += f" (first {e.writes} write{'s' * (e.writes != 1)})"
    return text


def _describe(e: ev.Event) -> str:
    match e:
        case ev.PacketArrives(_, p):
            return f"{p.ft} {flags_str(p.flags)}"
        case CookieAck(_, p):
            return f"{p.ft} {flags_str(p.flags)} ack={cookie_ack_text(e)}"
        case ev.UpdateRequested(_, vip, pool):
            return f"update {vip_text(vip)} -> [{', '.join(dip_text(x) for x in pool)}]"
        case ev.CpuLearns(_, limit):
            return "cpu learn " + ("all" if limit is None else str(limit))
        case ev.CpuAdvances():
            return "cpu advance"
        case ev.CpuExpires():
            return "cpu expire"
        case ev.LearnLost(_, index):
            return f"fault: learn event #{index} lost"
        case ev.LearnDelayed(_, index, delay):
            return f"fault: learn event #{index} delayed {delay}"
        case ev.LearnLate(_, index, delay):
            return f"fault: learn event #{index} delayed {delay}, past the bound"
        case ev.CpuRestarts():
            return "fault: CPU restart"
        case ev.DipFails(_, dip):
            return f"fault: {dip_text(dip)} fails"
        case ev.CpuWrites(_, count):
            return f"cpu: next {count} write{'s' * (count != 1)}"
    raise TypeError(f"not an event: {e!r}")


def _packet_cell(o: PacketObservation) -> str:
    flags = flags_str(o.packet.flags)
    if o.action == FORWARD:
        return f"{flags}->{o.dip}"
    return f"{flags} {'reply' if o.action == REPLY else 'drop'}"


def _cpu_cell(o: CpuObservation) -> str:
    parts = [o.kind]
    if o.installs:
        parts.append(f"+{len(o.installs)}")
    if o.removes:
        parts.append(f"-{len(o.removes)}")
    if o.lost:
        parts.append(f"lost {len(o.lost)}")
    if o.pending:
        parts.append(f"({o.pending} queued)")
    return " ".join(parts)


def _phase_cell(o: CpuObservation) -> str:
    return " ".join(f"{p.phase} v{p.old_version}->v{p.new_version}" for p in o.phases)


def lanes(verdict: Verdict) -> list[FiveTuple]:
    """Connections to draw: the violating ones first, then others by first packet."""
    bad = [f.ft for f in verdict.findings if f.category == VIOLATION]
    rest = [inc.ft for inc in verdict.incarnations if inc.ft not in bad]
    ordered = list(dict.fromkeys(bad + rest))
    return ordered[:MAX_CONNECTION_LANES]


def offending_indices(verdict: Verdict) -> set[int]:
    return {p.index for f in verdict.findings for p in f.offending}


def text_timeline(trace: Trace, observations: Sequence[Observation], verdict: Verdict) -> str:
    conns = lanes(verdict)
    bad = offending_indices(verdict)
    names = [f"c{i}" for i in range(len(conns))]
    head = ["  #", "t".rjust(8), *(n.ljust(LANE_WIDTH) for n in names), CPU_LANE.ljust(14), UPDATE_LANE]
    out = ["  ".join(head)]
    out += [f"  {name} = {ft}" for name, ft in zip(names, conns, strict=True)]
    for o in observations:
        cells = [""] * len(conns)
        cpu = phase = ""
        mark = "  "
        if isinstance(o, PacketObservation):
            if o.ft not in conns:
                continue
            cells[conns.index(o.ft)] = _packet_cell(o)
            mark = "!!" if o.index in bad else "  "
        else:
            cpu, phase = _cpu_cell(o), _phase_cell(o)
        row = [f"{mark}{o.index:>3}", str(o.t).rjust(8), *(c[:LANE_WIDTH].ljust(LANE_WIDTH) for c in cells)]
        out.append("  ".join([*row, cpu.ljust(14), phase]).rstrip())
    hidden = len({inc.ft for inc in verdict.incarnations}) - len(conns)
    if hidden > 0:
        out.append(f"({hidden} more connections not drawn)")
    return "\n".join(out)


_PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#bab0ac")


def html_timeline(trace: Trace, observations: Sequence[Observation], verdict: Verdict, out: str | Path) -> None:
    conns = lanes(verdict)
    bad = offending_indices(verdict)
    rows = [*(str(ft) for ft in conns), CPU_LANE, UPDATE_LANE]
    colours: dict[str, str] = {}
    step, lane_h, left = 26, 34, 260
    width = left + step * (len(observations) + 1)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{lane_h * len(rows) + 30}">']
    for i, name in enumerate(rows):
        y = 20 + i * lane_h
        svg.append(f'<text x="4" y="{y + 18}" font-size="12">{html.escape(name)}</text>')
        svg.append(f'<line x1="{left}" y1="{y + lane_h - 4}" x2="{width}" y2="{y + lane_h - 4}" stroke="#ddd"/>')
    for o in observations:
        x = left + step * o.index
        if isinstance(o, PacketObservation):
            if o.ft not in conns:
                continue
            lane = conns.index(o.ft)
            key = str(o.dip) if o.action == FORWARD else o.action
            fill = colours.setdefault(key, _PALETTE[len(colours) % len(_PALETTE)])
            stroke = ' stroke="red" stroke-width="3"' if o.index in bad else ""
            title = f"#{o.index} t={o.t} {flags_str(o.packet.flags)} {_packet_cell(o)} {o.path}"
        else:
            lane = len(conns) + (1 if o.phases else 0)
            fill, stroke = "#999", ""
            title = f"#{o.index} t={o.t} {_cpu_cell(o)} {_phase_cell(o)} {' '.join(o.notes)}"
        y = 20 + lane * lane_h
        svg.append(
            f'<rect x="{x}" y="{y + 4}" width="{step - 4}" height="{lane_h - 12}" fill="{fill}"{stroke}>'
            f"<title>{html.escape(title)}</title></rect>"
        )
    svg.append("</svg>")
    legend = " ".join(
        f'<span style="background:{c};color:white;padding:2px 6px">{html.escape(k)}</span>' for k, c in colours.items()
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(trace.name or 'trace')}</title>"
        "<style>body{font-family:sans-serif} .bar{overflow-x:auto}</style></head><body>"
        f"<h2>{html.escape(trace.name or 'trace')}: {html.escape(verdict.summary())}</h2>"
        f"<p>Packets coloured by DIP reached: {legend}. Red outline: violating packet. "
        "Hover a box for details.</p>"
        f"<div class='bar'>{''.join(svg)}</div></body></html>"
    )
    Path(out).write_text(page)
