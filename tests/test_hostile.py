"""Hostile inputs: a short Hypothesis run over every command (``silkcheck hostile`` is the long one)."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.machines import DrawChooser
from silkcheck import hostile
from silkcheck.hostile import ACCEPTED, CLEAR, HANG, TRACEBACK, Case, Materials, controls, draw_case, run_case

MATERIALS = Materials()
TIMEOUT = 60.0
"""Generous: a clear error comes in well under a second; only a hang takes this long."""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    hostile.preload()
    return tmp_path_factory.mktemp("hostile")


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_malformed_input_gets_a_clear_error(workdir: Path, data: st.DataObject) -> None:
    case = draw_case(DrawChooser(data), MATERIALS)
    outcome = run_case(case, workdir, TIMEOUT)
    assert outcome.verdict == CLEAR, (case.kind, case.argv, outcome.code, outcome.stderr[-2000:])


def test_valid_controls_pass_as_documented(workdir: Path) -> None:
    for case in controls(MATERIALS.trace, MATERIALS.pcap):
        outcome = run_case(case, workdir, TIMEOUT)
        assert outcome.verdict == CLEAR, (case.argv, outcome.code, outcome.stderr[-2000:])


def test_each_class_of_outcome_is_told_apart(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = (("trace.json", MATERIALS.trace),)
    valid_called_bad = Case("probe/accepted", ("pcap", "trace.json", "out.pcap"), files)
    assert run_case(valid_called_bad, workdir, TIMEOUT).verdict == ACCEPTED
    slow = Case("probe/hang", ("fuzz-bench", "--seconds", "60"))
    outcome = run_case(slow, workdir, 1.0)
    assert outcome.verdict == HANG and outcome.seconds < 10

    from silkcheck import cli

    def broken(config: object, observations: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "judge", broken)  # the forked child inherits the broken oracle
    assert run_case(Case("probe/crash", ("replay", "trace.json"), files), workdir, TIMEOUT).verdict == TRACEBACK
