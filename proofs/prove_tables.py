"""TransitTable epochs, cuckoo moves, version reclamation and SYN authentication, unbounded."""

from __future__ import annotations

from unittest import mock

import pytest
import z3

from model import decisions as d
from proofs import tables
from proofs.symbolic import SAFE, UNSAFE


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_transit_table_has_no_false_negative_within_an_epoch(k: int) -> None:
    assert tables.prove_transit_no_false_negative(k).status == SAFE


@pytest.mark.parametrize("k", [1, 3])
def test_a_stale_epoch_only_adds_false_positives(k: int) -> None:
    fresh, wrapped = tables.prove_transit_stale_epoch(k)
    assert fresh.status == SAFE
    assert wrapped.status == UNSAFE  # a wrapped epoch does make a stale false positive: reachable


def test_transit_contains_ignoring_the_epoch_breaks_the_proof() -> None:
    with mock.patch.object(d, "transit_contains", lambda o, cells, epoch: o.and_(*(c != 0 for c in cells))):
        assert tables.prove_transit_stale_epoch(2)[0].status == UNSAFE


@pytest.mark.parametrize("stages", [2, 3, 4])
def test_cuckoo_moves_never_change_a_placed_lookup(stages: int) -> None:
    assert tables.prove_cuckoo_moves(stages).status == SAFE


def test_without_the_move_check_a_lookup_falls_through() -> None:
    assert tables.prove_cuckoo_moves(3, move_checked=False).status == UNSAFE


def test_letting_inserts_change_other_lookups_breaks_the_cuckoo_proof() -> None:
    original = d.write_keeps_lookup

    def lax(o, is_owner, deleting, before, after, own_version, placed):  # type: ignore[no-untyped-def]
        return o.or_(o.not_(is_owner), original(o, is_owner, deleting, before, after, own_version, placed))

    with mock.patch.object(d, "write_keeps_lookup", lax):
        assert tables.prove_cuckoo_moves(2).status == UNSAFE


def test_the_z3_lookup_is_the_data_plane_lookup() -> None:
    assert tables.check_lookup().status == SAFE


def test_version_reclamation() -> None:
    assert tables.prove_version_reclaim().status == SAFE
    assert tables.prove_version_reuse().status == SAFE
    with mock.patch.object(d, "may_reclaim", lambda o, in_entry, referenced, waited: o.not_(in_entry)):
        assert tables.prove_version_reclaim().status == UNSAFE


def test_syn_authentication() -> None:
    assert tables.prove_syn_auth().status == SAFE
    with mock.patch.object(d, "auth_outcome", lambda o, syn, ack, ok: z3.If(syn, d.AUTH_PASS, d.AUTH_DROP)):
        assert tables.prove_syn_auth().status == UNSAFE
