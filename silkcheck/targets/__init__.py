"""Targets run a trace and return observations; they differ in nothing else."""

from __future__ import annotations

from typing import Protocol

from model.observations import Observation
from silkcheck.trace import Trace


class TargetError(RuntimeError):
    """A target that cannot run: a missing tool, a failed build, a switch that went away."""


class Target(Protocol):
    name: str

    def run(self, trace: Trace) -> list[Observation]: ...


def get_target(name: str) -> Target:
    if name == "model":
        from silkcheck.targets.model import ModelTarget

        return ModelTarget()
    if name == "bmv2":
        from silkcheck.targets.bmv2 import shared_target

        return shared_target()
    raise ValueError(f"unknown target {name!r}; available: model, bmv2")
