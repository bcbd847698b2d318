"""PCC of the abstract system the model refines (``spec.system``): the induction, and that it and
the refinement check notice a weaker system or a wrong abstraction function (non-vacuity)."""

from __future__ import annotations

from typing import Any

import pytest

from fuzz import invariants
from fuzz.invariants import REFINEMENT
from fuzz.walk import Checks, walk
from proofs import abstract
from spec import check, concrete
from spec import lemmas as lm

PCC_LEMMA = lm.LEMMAS[0].name
NAMED_POOLS = "VIPTable names versions whose pools are in"
QUEUED_VERSION = "a watched connection not learned in its incarnation that misses has its version queued or known"


@pytest.fixture(scope="module")
def induction() -> abstract.Induction:
    return abstract.induction()


def test_base_case_hypothesis_and_the_pcc_step_hold(induction: abstract.Induction) -> None:
    assert induction.base and induction.satisfiable and induction.pcc_step


def test_the_live_anchor_lemma_is_inductive_relative_to_the_others(induction: abstract.Induction) -> None:
    assert PCC_LEMMA not in induction.broken()


@pytest.mark.parametrize(
    ("guard", "lemma"),
    [
        ("a ConnTable write keeps every known lookup", PCC_LEMMA),
        # (apply_write's own pool guard is implied by the others and the lemmas: dropping it breaks nothing)
        ("a reclaimed version is unused", NAMED_POOLS),
        ("a forgotten connection was silent past its limit", QUEUED_VERSION),
    ],
)
def test_dropping_a_guard_conjunct_breaks_the_induction(guard: str, lemma: str) -> None:
    assert abstract.induction(targets=[lemma]).lemmas[0].inductive
    with abstract.guard_dropped(guard):
        r = abstract.induction(targets=[lemma])
    assert not r.lemmas[0].inductive


def test_the_refinement_check_holds_on_walks() -> None:
    refined = abstract.refinement_evidence(5)
    assert refined.steps > 0 and not refined.failures


def test_a_wrong_abstraction_function_fails_the_refinement_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """α that maps every connection the CPU knows to the next version: the walks' first learn shows it."""

    def wrong_alpha(*args: Any) -> concrete.State:
        s = concrete.alpha(*args)
        switch = args[0]
        for path in [p for p in s if p[0] == "conn" and p[2] == "kver"]:
            s[path] = (s[path] + 1) % switch.config.versions
        return s

    monkeypatch.setattr(check, "alpha", wrong_alpha)
    failures = [out.failure for out in (walk(seed) for seed in range(3)) if out.failure is not None]
    assert failures and all(f.category == REFINEMENT for f in failures), failures


def test_a_lemma_false_on_concrete_runs_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A queued event "always hits": false of the first miss a walk learns, and the check names it."""
    wrong = lm.Lemma("every queued event hit", lambda o, st, c: o.and_(*(e.hit for e, _ in o.queue(st))),
                     lambda o, st, c: True, per_connection=False)  # fmt: skip
    monkeypatch.setattr(invariants, "LEMMAS", [wrong])
    failure = walk(0, checks=Checks(lemmas=True)).failure
    assert failure is not None and failure.category == REFINEMENT and "every queued event hit" in failure.kind
