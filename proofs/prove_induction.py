"""PCC of the whole abstract switch at every depth: 1-induction with strengthening lemmas."""

from __future__ import annotations

import pytest

from proofs import bmc, induction, suite, variants


@pytest.mark.parametrize("scope", suite.INDUCTION_SCOPES, ids=lambda s: s.name)
def test_every_lemma_and_pcc_are_inductive_and_no_lemma_is_vacuous(scope: bmc.BmcScope) -> None:
    r = induction.prove_inductive(scope)
    assert r.base and r.satisfiable and r.property_inductive
    assert not r.broken(), r.broken()
    assert all(c.reached_at is not None and c.reached_at > 0 for c in r.lemmas if c.name.startswith("in "))


def test_the_property_alone_is_not_inductive() -> None:
    assert not any(bmc.k_induction(bmc.BmcScope("two conns"), k)[0] for k in (1, 2))


def test_the_anchor_lemma_is_needed() -> None:
    lemmas = [lemma for lemma in induction.LEMMAS if not lemma.name.startswith("a live anchored")]
    assert not induction.prove_inductive(bmc.BmcScope("two conns"), lemmas).property_inductive


@pytest.mark.parametrize("name", ["skip-transit", "no-learn-wait", "sealed-forwards"])
def test_patching_a_decision_breaks_the_induction(name: str) -> None:
    with variants.VARIANTS_BY_NAME[name].applied():
        r = induction.prove_inductive(bmc.BmcScope("two conns"))
    assert not r.proved and r.broken()
