"""Plain-text tables and verdict explanations for people."""

from __future__ import annotations

from collections.abc import Sequence

from model.observations import FORWARD, REPLY, PacketObservation
from model.types import flags_str
from silkcheck.oracle import Finding, Verdict


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(out)


def outcome(p: PacketObservation) -> str:
    if p.action == FORWARD:
        return f"-> {p.dip}"
    if p.action == REPLY:
        return f"reply {flags_str(p.reply_flags)}"
    return "drop"


def connection_table(verdict: Verdict) -> str:
    flagged = {(f.ft, f.incarnation): f.category for f in verdict.findings}
    rows = []
    for inc in verdict.incarnations:
        forwarded = sum(1 for p in inc.packets if p.action == FORWARD)
        rows.append([
            str(inc.ft), inc.number, len(inc.packets), forwarded,
            ", ".join(str(d) for d in inc.dips) or "-",
            flagged.get((inc.ft, inc.number), "ok"),
        ])  # fmt: skip
    return table(["connection", "inc", "packets", "forwarded", "DIPs", "status"], rows)


def explain(finding: Finding) -> str:
    lines = [f"[{finding.category}] {finding.kind}: {finding.explanation}"]
    offending = {p.index for p in finding.offending}
    for p in finding.packets:
        mark = "!!" if p.index in offending else "  "
        lines.append(f"  {mark} #{p.index:<5} t={p.t:<10} {flags_str(p.packet.flags):<4} {outcome(p):<24} {p.path}")
    return "\n".join(lines)
