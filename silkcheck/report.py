"""Plain-text tables and verdict explanations for people."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from model.observations import FORWARD, REPLY, PacketObservation
from model.types import flags_str
from silkcheck.oracle import CATEGORIES, AuthTally, Finding, Verdict

if TYPE_CHECKING:
    from spec.check import Refined


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


def authentication(auth: AuthTally) -> str:
    return (
        f"SYN authentication: {auth.syn_acks:,} SYN-ACKs sent; {auth.proved:,} sources answered theirs, "
        f"{auth.served:,} of them served (reached a DIP); whitelisted: {auth.whitelisted:,} sources, "
        f"{auth.whitelisted_unproved:,} that had not answered; ConnTable entries of sources that had not "
        f"answered: {auth.entries_unproved:,}"
    )


def summary(verdict: Verdict, events: int, packets: int, authenticating: bool, explained: int = 5) -> str:
    """A few lines however long the trace: counts, the authentication tally, the first findings."""
    counts = ", ".join(f"{verdict.count(c):,} {c}" for c in CATEGORIES if verdict.count(c)) or "none"
    lines = [
        f"{events:,} events, {packets:,} packets, {len(verdict.incarnations):,} connections "
        f"({len({inc.ft.src_ip for inc in verdict.incarnations}):,} sources); findings: {counts}"
    ]
    if authenticating:
        lines.append(authentication(verdict.auth))
    for finding in verdict.findings[:explained]:
        lines += ["", explain(finding)]
    if len(verdict.findings) > explained:
        lines.append(f"({len(verdict.findings) - explained:,} more findings; replay without --summary for all)")
    return "\n".join(lines)


def headline(verdict: Verdict, refined: Refined | None, refusal: str | None = None) -> str:
    """A run's verdict in a word or two and the check that failed: the PCC oracle's summary, or,
    where the run leaves the abstract system (``refined``, on the model) or is one the shipped design
    cannot run (``refusal``, under a mutant), FAIL naming that first (the exit code follows it)."""
    problems = [f"the shipped design cannot run it: {refusal}"] if refusal else []
    if refined is not None and refined.mismatch is not None:
        problems.append(f"refinement: events[{refined.mismatch.index}] as {refined.mismatch.action}")
    if not problems:
        return verdict.summary()
    return f"FAIL ({'; '.join(problems)}; PCC oracle: {verdict.summary()})"


def refinement(refined: Refined) -> str:
    """One line: does the run refine the abstract system the proofs are about?"""
    if refined.mismatch is None:
        return f"refinement: every one of the {refined.steps:,} steps is a step of the proved abstract system (spec)"
    return f"refinement: FAILS: {refined.mismatch} (the model left the proved abstract system there)"
