"""The keyed SYN cookie: every field binds it (GF(2) rank), two fields do not, and it is no MAC."""

from __future__ import annotations

import random
from pathlib import Path
from unittest import mock

import pytest

from model import hashing
from model.config import Config
from model.hashing import HashPlan
from model.types import FiveTuple
from proofs import cookie
from proofs.replay import verdict_of
from proofs.symbolic import SAFE, UNSAFE
from silkcheck.trace import dumps, load

FORGERY = Path(__file__).resolve().parent / "findings" / "cookie-forgery.json"


def test_every_field_and_the_key_bind_the_cookie() -> None:
    assert cookie.is_affine()
    outcome = cookie.prove_fields_bind()
    assert outcome.status == SAFE, outcome.detail


@pytest.mark.parametrize("left_out", hashing.COOKIE_ORDER)
def test_a_cookie_without_a_field_fails_the_proof(left_out: str) -> None:
    order = tuple(f for f in hashing.COOKIE_ORDER if f != left_out)
    with mock.patch.object(hashing, "COOKIE_ORDER", order):
        outcome = cookie.prove_fields_bind()
    assert outcome.status == UNSAFE and outcome.detail.startswith(f"{left_out}: rank 0 of")


def test_the_rank_argument_sees_every_cookie_input() -> None:
    assert cookie.INPUT_BITS == 136
    for field in cookie.COOKIE_FIELDS:
        assert all(cookie.field_columns(field)), field  # every single bit changes the cookie


def test_two_fields_together_can_keep_the_cookie_under_every_key() -> None:
    outcome, a, b = cookie.two_field_collision()
    assert outcome.status == UNSAFE and "rank 32 of 48" in outcome.detail
    assert a.src_ip != b.src_ip and a.src_port != b.src_port and a[1::2] == b[1::2]
    rng = random.Random(4)
    for key in (0, Config().cookie_key, *(rng.getrandbits(32) for _ in range(20))):
        plan = HashPlan(Config(cookie_key=key))
        assert plan.cookie(a) == plan.cookie(b)


def test_one_seen_cookie_forges_any_other_without_the_key() -> None:
    rng = random.Random(9)
    for _ in range(200):
        plan = HashPlan(Config(cookie_key=rng.getrandbits(32)))
        target = FiveTuple(rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(16),
                           rng.getrandbits(8))  # fmt: skip
        assert cookie.forge(plan.cookie(cookie.SEEN), cookie.SEEN, target) == plan.cookie(target)


def test_the_forgery_whitelists_a_spoofed_source_on_the_shipped_model() -> None:
    outcome, trace = cookie.refute_secrecy()
    assert outcome.status == UNSAFE
    assert [(f.kind, f.ft.src_ip) for f in verdict_of(trace).violations] == [("spoofed", cookie.SPOOFED.src_ip)]
    assert FORGERY.read_text() == dumps(trace)  # the saved finding is what the builder makes
    assert load(FORGERY).events == trace.events
