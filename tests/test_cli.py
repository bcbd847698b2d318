"""The command line as a user runs it."""

import json

from silkcheck.cli import main
from silkcheck.examples import EXAMPLES_DIR


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
