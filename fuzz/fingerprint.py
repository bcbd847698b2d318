"""``silkcheck fuzz-fingerprint``: one hash of everything the model did on many random walks.

A change to ``model/`` that must not change behaviour (a cache, a faster
loop) should leave this hash unchanged: run it before and after. It covers
each walk's outcome and the observations of its trace, run again on the
embedded target (a walk's trace holds exactly the events the switch took).
"""

from __future__ import annotations

import hashlib

from fuzz.walk import walk
from silkcheck.targets.model import ModelTarget


def observation_fingerprint(walks: int) -> tuple[str, int]:
    """(sha256 of the outcomes and observations of walks 0..walks-1, steps the walks took)."""
    digest = hashlib.sha256()
    steps = 0
    for seed in range(walks):
        outcome = walk(seed)
        steps += outcome.steps
        digest.update(repr((outcome.failure, ModelTarget().run(outcome.trace))).encode())
    return digest.hexdigest(), steps
