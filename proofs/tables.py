"""Unbounded proofs about the tables: TransitTable epochs, cuckoo writes, versions, SYN authentication.

Each table is abstracted by Z3 arrays and uninterpreted hash functions, so a
proof holds for any number of other connections and any hash values. The
decisions are ``model.decisions``' own, called with the Z3 ``Ops``.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import z3

from model import decisions as d
from model.config import Config
from model.cpu import MISS
from model.dataplane import ConnEntry, DataPlane
from model.hashing import FlowHashes
from proofs.symbolic import SAFE, UNSAFE, Z3, Outcome, find, prove

CONN = z3.IntSort()
"""Connections (5-tuples) are opaque: only equality and the hash functions below matter."""


# ---------------------------------------------------------------- TransitTable (epoch-tagged Bloom filter)
#
# Abstraction: the register array is an SMT array from cell index to epoch;
# hash j of a connection is an uninterpreted function (any hash, any
# collisions, so false positives are possible). Soundness assumption: within
# one update every TransitTable write stores the VIP's current epoch
# (``record_transit`` writes ``vip.epoch``, which the CPU fixes at t_req),
# which the array update "cells in W := epoch" covers for any set W of
# cells written by any number of other connections.


def _bloom(k: int) -> list[z3.FuncDeclRef]:
    return [z3.Function(f"bloom{j}", CONN, z3.IntSort()) for j in range(k)]


def _cells(array: z3.ArrayRef, hashes: list[z3.FuncDeclRef], x: Any) -> list[Any]:
    return [array[h(x)] for h in hashes]


def _record(array: z3.ArrayRef, hashes: list[z3.FuncDeclRef], x: Any, epoch: Any) -> z3.ArrayRef:
    for h in hashes:
        array = z3.Store(array, h(x), epoch)
    return array


def _others_record(array: z3.ArrayRef, written: z3.ArrayRef, epoch: Any) -> z3.ArrayRef:
    i = z3.Int("cell")
    return z3.Lambda([i], z3.If(written[i], epoch, array[i]))


def prove_transit_no_false_negative(k: int) -> Outcome:
    """A connection recorded in this epoch hits TransitTable until the epoch changes."""
    hashes = _bloom(k)
    start = z3.Array("cells_at_t_req", z3.IntSort(), z3.IntSort())
    written = z3.Array("written_by_others", z3.IntSort(), z3.BoolSort())
    x, epoch = z3.Int("x"), z3.Int("epoch")
    after = _others_record(_record(start, hashes, x, epoch), written, epoch)
    claim = d.transit_contains(Z3, _cells(after, hashes, x), epoch)
    return prove(f"TransitTable: no false negative within an epoch (k={k})", [], claim)


def prove_transit_stale_epoch(k: int) -> list[Outcome]:
    """A hit in a fresh epoch comes from this epoch's writes; stale cells matter only once epochs wrap."""
    hashes = _bloom(k)
    stale = z3.Array("stale_cells", z3.IntSort(), z3.IntSort())
    written = z3.Array("written_this_epoch", z3.IntSort(), z3.BoolSort())
    y, epoch, i = z3.Int("y"), z3.Int("epoch"), z3.Int("i")
    now = _others_record(stale, written, epoch)
    hit = d.transit_contains(Z3, _cells(now, hashes, y), epoch)
    explained = z3.And(*(written[h(y)] for h in hashes))
    # Assumption: no cell still holds the new epoch from its previous use. The CPU
    # cycles epochs 1..2^epoch_bits-1, so this holds for 2^epoch_bits-2 updates after a write.
    fresh = z3.ForAll([i], stale[i] != epoch)
    proof = prove(f"TransitTable: a fresh epoch hits only on this epoch's writes (k={k})", [fresh],
                  z3.Implies(hit, explained), hit)  # fmt: skip
    wrapped = find(f"TransitTable: a wrapped epoch makes a stale false positive (k={k})",
                   [hit, z3.Not(z3.Or(*(written[h(y)] for h in hashes)))])  # fmt: skip
    return [proof, wrapped]


# ---------------------------------------------------------------- ConnTable writes (cuckoo moves)
#
# Abstraction: each stage is an SMT array from match key (bucket, digest) to
# version, MISS when empty; a connection's key in each stage is an
# uninterpreted function, so any two connections may share a bucket and a
# digest in any stage. The lookup is the first stage that matches
# (``DataPlane.lookup`` / ``Cpu._resolve``; checked against them by
# enumeration in ``check_lookup``). A write is one array store; the CPU's
# check ``_write_is_safe`` is ``write_keeps_lookup`` for every watcher of the
# written key. Soundness assumption: the watcher set of a key is exactly the
# known connections whose key in that stage is the written key (``Cpu._watch``).


def lookup(tables: list[z3.ArrayRef], keys: list[Any]) -> Any:
    result: Any = z3.IntVal(MISS)
    for table, key in reversed(list(zip(tables, keys, strict=True))):
        result = z3.If(table[key] != MISS, table[key], result)
    return result


def _write(tables: list[z3.ArrayRef], stage: int, key: Any, version: Any) -> list[z3.ArrayRef]:
    return [z3.Store(t, key, version) if s == stage else t for s, t in enumerate(tables)]


class _Conn:
    def __init__(self, name: str, stages: int) -> None:
        self.id = z3.Int(name)
        self.version = z3.Int(f"{name}.version")
        self.placed = z3.Bool(f"{name}.placed")
        self.keys = [z3.Function(f"key{s}", CONN, z3.IntSort())(self.id) for s in range(stages)]


def _keeps(conn: _Conn, is_owner: Any, deleting: bool, before: list[z3.ArrayRef], after: list[z3.ArrayRef]) -> Any:
    return d.write_keeps_lookup(
        Z3, is_owner, z3.BoolVal(deleting), lookup(before, conn.keys), lookup(after, conn.keys), conn.version,
        conn.placed,
    )  # fmt: skip


def prove_cuckoo_moves(stages: int, move_checked: bool = True) -> Outcome:
    """Moving ``o`` (insert the new copy, then delete the old) never changes a placed connection's lookup.

    Shipped CPU: the insert passes ``_write_is_safe`` (``write_keeps_lookup``
    for every watcher of the new key, ``o`` as owner) and the whole move
    passes ``_move_is_safe`` (every watcher of the old key, ``o`` included,
    keeps its result). ``move_checked=False`` is the CPU without the latter.
    """
    total = 0.0
    outcome: Outcome | None = None
    for old_stage in range(stages):
        for new_stage in range(stages):
            if old_stage == new_stage:
                continue
            tables = [z3.Array(f"stage{s}", z3.IntSort(), z3.IntSort()) for s in range(stages)]
            o, x = _Conn("o", stages), _Conn("x", stages)
            old_key, new_key = o.keys[old_stage], o.keys[new_stage]
            inserted = _write(tables, new_stage, new_key, o.version)
            moved = _write(inserted, old_stage, old_key, MISS)
            assumptions = [
                o.placed, o.version >= 0, x.version >= 0,
                z3.Implies(x.id == o.id, z3.And(x.version == o.version, x.placed == o.placed)),
                tables[old_stage][old_key] == o.version, lookup(tables, o.keys) == o.version,
                tables[new_stage][new_key] == MISS,
                *(z3.Implies(c.keys[new_stage] == new_key, _keeps(c, c.id == o.id, False, tables, inserted))
                  for c in (o, x)),
            ]  # fmt: skip
            if move_checked:
                assumptions += [
                    z3.Implies(c.keys[old_stage] == old_key, _keeps(c, False, True, tables, moved)) for c in (o, x)
                ]
            live = z3.And(x.placed, lookup(tables, x.keys) == x.version)
            claim = z3.Implies(live, z3.And(lookup(inserted, x.keys) == x.version, lookup(moved, x.keys) == x.version))
            antecedent = z3.And(live, x.id != o.id, x.keys[old_stage] == old_key)
            step = prove(f"stage {old_stage}→{new_stage}", assumptions, claim, antecedent)
            total += step.seconds
            if outcome is None or not step.proved:
                outcome = step
            if not step.proved:
                break
        if outcome is not None and not outcome.proved:
            break
    assert outcome is not None
    name = f"cuckoo moves never change a placed lookup ({stages} stages, every stage pair)"
    if not move_checked:
        name += " without _move_is_safe"
    return Outcome(name, outcome.status, total, outcome.model, outcome.detail or outcome.name)


def check_lookup() -> Outcome:
    """The Z3 ``lookup`` is ``DataPlane.lookup``: compared on every 2-stage table over 2 keys and 2 versions."""
    start = time.perf_counter()
    config = Config(stages=2, buckets_per_stage=2, digest_bits=1)
    cells = [MISS, 0, 1]
    keys = [(0, 0), (1, 0)]
    for contents in itertools.product(cells, repeat=4):
        dp = DataPlane.empty(config)
        arrays = []
        for stage in range(2):
            array = z3.K(z3.IntSort(), z3.IntVal(MISS))
            for j, key in enumerate(keys):
                version = contents[stage * 2 + j]
                if version != MISS:
                    dp.conn[stage][key] = ConnEntry(version, 0)
                    array = z3.Store(array, key[0], version)
            arrays.append(array)
        for buckets in itertools.product((0, 1), repeat=2):
            found = dp.lookup(FlowHashes(0, buckets, (), 0, ()))
            concrete = MISS if found is None else found[1].version
            symbolic = z3.simplify(lookup(arrays, [z3.IntVal(b) for b in buckets])).as_long()
            if symbolic != concrete:
                return Outcome("Z3 ConnTable lookup == DataPlane.lookup", UNSAFE, time.perf_counter() - start,
                               detail=f"tables {contents}, buckets {buckets}: Z3 {symbolic}, model {concrete}")
    return Outcome("Z3 ConnTable lookup == DataPlane.lookup (exhaustive, 2 stages)", SAFE,
                   time.perf_counter() - start)  # fmt: skip


# ---------------------------------------------------------------- version reclamation
#
# Abstraction: one version v of one VIP and symbolic instants. ``released`` is
# when its last reference went away: the CPU sets it when the reference count
# drops to zero or when an update finishes with v as the old version, so no
# entry, learned connection or VIPTable use of v is later than it. A learn
# event carrying v was sent by a packet that used v, i.e. while v was
# referenced (``sent ≤ released``). Assumption: the CPU reads every learn
# event within the learn-delay bound of its sending; ``learn``, ``advance`` and
# ``expire`` (which frees versions) all drain the visible events first.


def prove_version_reclaim() -> Outcome:
    sent, read, released, now, bound = z3.Ints("sent read released now bound")
    in_entry, referenced = z3.Bools("in_vip_entry referenced")
    freed = d.may_reclaim(Z3, in_entry, referenced, now >= released + bound)
    in_flight = z3.And(sent <= now, now < read)
    assumptions = [bound >= 0, sent <= read, read <= sent + bound, sent <= released, freed]
    claim = z3.Not(in_flight)
    return prove("version reclamation: never while a learn event carrying it is in flight", assumptions, claim,
                 z3.And(sent < now, released < now))  # fmt: skip


def prove_version_reuse() -> Outcome:
    """A reclaimed version is no VIPTable version and no learned connection's (refs count them)."""
    in_entry, referenced, waited = z3.Bools("in_vip_entry referenced waited")
    entry_refers, conn_refers = z3.Bools("entry_refers conn_refers")
    # refs(v) counts the learned connections of v, and an entry exists only for a learned connection.
    assumptions = [z3.Implies(entry_refers, conn_refers), referenced == conn_refers,
                   d.may_reclaim(Z3, in_entry, referenced, waited)]  # fmt: skip
    claim = z3.Not(z3.Or(in_entry, entry_refers, conn_refers))
    return prove("version reclamation: never while an entry or a learned connection refers to it", assumptions, claim)


# ---------------------------------------------------------------- SYN authentication
#
# Abstraction: the cookie is an uninterpreted function of the 5-tuple.
# Assumption (secrecy: an off-path attacker): a packet carries cookie(ft)+1
# only if its sender received the SYN-ACK sent to ft, i.e. owns ft's source
# address. That holds only for an attacker who knows no cookie at all under
# the current key: the cookie is a CRC, and a CRC is not a MAC, so one cookie
# seen at an address the attacker owns gives the cookie of every spoofed flow
# (``proofs.cookie.forgery_trace`` is whitelisted on the shipped design). What
# is proved of the cookie itself (``proofs.cookie.prove_fields_bind``): a
# cookie replayed from a flow that differs in one field (source address,
# source port, VIP, key) never passes. A source enters the whitelist only by
# an "auth" learn event, which only AUTH_WHITELIST sends.


def prove_syn_auth() -> Outcome:
    is_syn, is_bare_ack, whitelisted = z3.Bools("is_syn is_bare_ack whitelisted")
    ack, source_proved = z3.Int("ack"), z3.Bool("source_proved")
    ft = z3.Int("ft")
    cookie = z3.Function("cookie", CONN, z3.IntSort())
    cookie_ok = ack == cookie(ft) + 1
    outcome = d.auth_outcome(Z3, is_syn, is_bare_ack, cookie_ok)
    # Non-whitelisted sources go through auth_outcome; it forwards nothing and learns only AUTH_WHITELIST.
    reaches_dip_or_table = z3.And(z3.Not(whitelisted), outcome == d.AUTH_PASS)
    whitelists = outcome == d.AUTH_WHITELIST
    off_path = z3.Implies(cookie_ok, source_proved)
    claim = z3.And(z3.Not(reaches_dip_or_table), z3.Implies(whitelists, source_proved))
    return prove("SYN authentication (off-path attacker): no DIP, no entry, no whitelist without a valid cookie",
                 [off_path], claim,
                 z3.And(z3.Not(whitelisted), z3.Not(source_proved), is_bare_ack))  # fmt: skip
