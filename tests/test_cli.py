"""The command line as a user runs it."""

import json

from silkcheck.cli import main
from silkcheck.examples import EXAMPLES_DIR
from tests.helpers import shipped_refuses


def test_verify_prints_a_verdict_for_every_example(capsys):
    assert main(["verify"]) == 0
    out = capsys.readouterr().out
    for path in EXAMPLES_DIR.glob("*.json"):
        assert path.stem in out
    assert "verify: OK" in out


def test_replay_prints_verdict_and_connection_table(capsys):
    assert main(["replay", str(EXAMPLES_DIR / "demo-update.json")]) == 0
    out = capsys.readouterr().out
    assert "demo-update on model: PASS" in out
    assert "192.168.0.1:40000->20.0.0.1:80/tcp" in out


def test_replay_exits_1_and_explains_a_violation(monkeypatch, capsys):
    """A model whose misses ignore TransitTable moves the recorded connections of the demo."""
    from model import decisions

    monkeypatch.setattr(decisions, "miss_version", lambda o, phase, hit, old, new: new)
    assert main(["replay", str(EXAMPLES_DIR / "demo-update.json")]) == 1
    out = capsys.readouterr().out
    assert "demo-update on model: FAIL" in out
    assert "[violation] moved:" in out
    assert "!!" in out  # the offending packets are marked


def test_bad_trace_exits_2_with_a_clear_message(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text('{"format": "silkcheck-trace", "version": 1, "vips": [], "events": []}')
    assert main(["replay", str(path)]) == 2
    assert "broken.json: trace.vips: expected a non-empty list of VIPs" in capsys.readouterr().err


def test_invalid_event_for_the_state_exits_2(tmp_path, capsys):
    path = tmp_path / "lost.json"
    data = json.loads((EXAMPLES_DIR / "digest-collision.json").read_text())
    data["events"].insert(0, {"t": 0, "kind": "fault", "fault": "lose_learn", "index": 3})
    path.write_text(json.dumps(data))
    assert main(["replay", str(path)]) == 2
    assert "lost.json: events[0] (fault): no queued learn event #3 (the queue holds 0)" in capsys.readouterr().err


def test_pcap_command(tmp_path, capsys):
    out = tmp_path / "x.pcap"
    assert main(["pcap", str(EXAMPLES_DIR / "syn-flood.json"), str(out)]) == 0
    assert out.stat().st_size > 0


def test_a_whitelist_the_p4_program_cannot_hold_is_refused_at_the_event(tmp_path, capsys):
    import dataclasses

    from silkcheck.trace import load, save

    trace = load(EXAMPLES_DIR / "syn-flood.json")  # three clients prove their address
    trace.config = dataclasses.replace(trace.config, whitelist_capacity=2)
    path = tmp_path / "small-whitelist.json"
    save(trace, path)
    assert main(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert "small-whitelist.json: events[" in err and "(cpu): the whitelist would hold 3 sources" in err


def test_replay_with_a_mutant_shows_the_saved_counterexample_fail(capsys):
    from proofs.replay import COUNTEREXAMPLES_DIR

    path = str(COUNTEREXAMPLES_DIR / "bmc-skip-transit.json")
    assert main(["replay", path]) == 0
    assert "add --mutant skip-transit to see it fail" in capsys.readouterr().out
    assert main(["replay", path, "--mutant", "skip-transit"]) == 1
    assert "with skip-transit applied: FAIL" in capsys.readouterr().out
    assert main(["replay", path, "--mutant", "skip-transti"]) == 2
    assert "unknown mutant 'skip-transti'; known: " in capsys.readouterr().err
    assert main(["replay", path, "--mutant", "skip-transit", "--target", "bmv2"]) == 2
    assert "replay it on --target model" in capsys.readouterr().err


def test_replay_with_a_mutant_names_where_it_leaves_the_shipped_design(capsys, tmp_path):
    from fuzz.mutants import COUNTEREXAMPLES_DIR

    path = str(COUNTEREXAMPLES_DIR / "break-before-make.json")
    assert main(["replay", path, "--summary"]) == 0
    assert "add --mutant break-before-make to see it fail" in capsys.readouterr().out
    assert main(["replay", path, "--mutant", "break-before-make", "--summary"]) == 1
    assert ("against the shipped design: leaves the shipped design at packet #9 (t=207, "
            "192.168.0.1:1016->20.0.0.1:80/tcp): shipped design forward to 10.0.1.1:8080 (hit:stage0:v0), "
            "this run forward to 10.0.2.1:8080 (miss:normal:v1)") in capsys.readouterr().out  # fmt: skip
    # A write event only the mutant's queue can serve: the shipped design refuses the trace.
    changed = shipped_refuses(tmp_path)
    assert main(["replay", str(changed), "--mutant", "pool-after-exec-flip", "--summary"]) == 1
    out = capsys.readouterr().out
    refused = f"{changed}: events[3] (write): 1 write(s) asked for, 0 queued"
    assert f"applied: FAIL (the shipped design cannot run it: {refused}; refinement: events[0] as " in out
    assert f"against the shipped design: the shipped design cannot run this trace: {refused}" in out


def test_a_replay_whose_run_does_not_refine_says_so_in_its_headline(capsys):
    """A mutant that keeps PCC but leaves the abstract system: the headline names the failed check
    that the exit code reports, not the PCC oracle's PASS alone."""
    from fuzz.mutants import COUNTEREXAMPLES_DIR

    path = str(COUNTEREXAMPLES_DIR / "pool-after-exec-flip.json")
    assert main(["replay", path, "--mutant", "pool-after-exec-flip", "--summary"]) == 1
    headline = capsys.readouterr().out.splitlines()[0]
    assert headline == ("pool-after-exec-flip on model with pool-after-exec-flip applied: FAIL (refinement: "
                        "events[0] as operator_update; PCC oracle: PASS)")  # fmt: skip


def test_an_internal_error_exits_3_with_the_traceback_in_a_file(monkeypatch, tmp_path, capsys):
    import tempfile

    from silkcheck import cli

    def broken(config, observations):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(cli, "judge", broken)
    assert main(["replay", str(EXAMPLES_DIR / "demo-update.json")]) == 3
    err = capsys.readouterr().err
    assert "internal error (a bug in silkcheck, not in your input): ZeroDivisionError: a bug" in err
    assert "Traceback" not in err
    (saved,) = tmp_path.glob("silkcheck-crash-*.txt")
    assert str(saved) in err and "ZeroDivisionError: a bug" in saved.read_text()


def test_options_are_checked_before_any_work(tmp_path, capsys):
    cases = [
        (["diff", "--random", "-1"], "argument --random: -1 is out of range"),
        (["fuzz", "--target", "bmv2", "--budget", "0s"], "argument --budget: 0s is not in (0 s"),
        (["fuzz", "--budget", "\u0663\u0660s"], "argument --budget: '\u0663\u0660s'"),
        (["replay", str(EXAMPLES_DIR / "syn-flood.json"), "--target", "bmv"],
         "argument --target: unknown target 'bmv'; known: model, bmv2"),
        (["bench", "--packets", "1e3"], "argument --packets: '1e3' is not a decimal integer"),
        (["fuzz-bench", "--seconds", "nan"], "argument --seconds: 'nan' is not a finite number"),
        (["pcap", str(EXAMPLES_DIR / "syn-flood.json"), str(tmp_path / "no" / "x.pcap")], "does not exist"),
        (["replay", str(EXAMPLES_DIR / "syn-flood.json"), "--html", str(tmp_path)], "it is a directory"),
        (["analyze", "--quick", "--out", str(EXAMPLES_DIR / "syn-flood.json")], "is not a directory"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
