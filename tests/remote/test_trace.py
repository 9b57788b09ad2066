"""Traces: the agent records one, it checks clean; an edited one is caught with the right
requirement ID; suppressions are used strictly; bad files are one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from vmbspec.conformance import run_conformance
from vmbspec.conformance.targets import resolve_target
from vmbspec.conformance.trace import check_trace, load_trace


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shlex
    import sys

    path = tmp_path_factory.mktemp("trace") / "sim.jsonl"
    command = shlex.join([sys.executable, "-m", "vmbspec.conformance.cli_agent", "--backend", "sim",
                          "--quiet", "--trace", str(path)])
    _name, factory = resolve_target("remote:stdio:" + command, {"timeout": 10.0})
    report = run_conformance(factory, examples=15)
    factory.close()  # type: ignore[attr-defined]
    assert report.passed
    return path


def _edit(source: Path, target: Path, change: Callable[[dict], bool]) -> int:
    """Copies the trace, applying ``change`` to the first event it accepts; that event's seq."""
    lines, edited = [], 0
    for line in source.read_text().splitlines():
        document = json.loads(line)
        if not edited and "seq" in document and change(document):
            edited = document["seq"]
            line = json.dumps(document)
        lines.append(line)
    target.write_text("\n".join(lines) + "\n")
    assert edited
    return edited


def _drop_wait_flag(event: dict) -> bool:
    if event.get("method") != "send_with_external_mdl" or event["result"] != 0:
        return False
    if not event["params"]["flags"] & 1:
        return False
    event["params"]["flags"] &= ~1
    return True


def test_a_trace_recorded_from_the_simulator_checks_clean(
    recorded: Path, vmbspec: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    header = json.loads(recorded.read_text().splitlines()[0])
    assert header["vmbspec_trace"] == 1
    kinds = {e.kind for e in load_trace(recorded)}
    assert {"start", "call", "packet", "host_complete", "completion", "end"} <= kinds
    assert vmbspec(["trace", "check", str(recorded)]) == 0
    assert "PASS" in capsys.readouterr().out


def test_an_edited_send_is_reported_with_its_requirement_and_the_events_around_it(
    recorded: Path, tmp_path: Path, vmbspec: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.jsonl"
    seq = _edit(recorded, bad, _drop_wait_flag)
    out = tmp_path / "r.json"
    assert vmbspec(["trace", "check", str(bad), "--json", str(out)]) == 1
    text = capsys.readouterr().out
    assert f"VIOLATION at event {seq}" in text and "SEED-WAIT-MUST" in text
    assert "events around it" in text
    document = json.loads(out.read_text())
    (violation,) = document["violations"]
    assert violation["event"] == seq and "SEED-WAIT-MUST" in violation["requirements"]
    assert any(e["seq"] == seq for e in violation["context"]) and len(violation["context"]) > 1


def test_an_edited_packet_is_caught_as_a_wire_violation(recorded: Path, tmp_path: Path) -> None:
    def corrupt_pfn(event: dict) -> bool:
        data = event.get("bytes")
        if event.get("event") != "packet" or not data or int(data[:4], 16) != 0x0900:
            return False
        raw = bytearray.fromhex(data)
        raw[0x20] ^= 0x01  # the first range's first PFN
        event["bytes"] = raw.hex()
        return True

    bad = tmp_path / "bad.jsonl"
    seq = _edit(recorded, bad, corrupt_pfn)
    report = check_trace(load_trace(bad))
    (violation,) = report.violations
    assert violation.seq == seq and "MDL-PFNS" in violation.requirements


def test_an_edited_completion_status_breaks_the_completion_rule(
    recorded: Path, tmp_path: Path
) -> None:
    def change_status(event: dict) -> bool:
        if event.get("event") != "completion" or event["status"] != 0:
            return False
        event["status"] = 0xC0000001
        return True

    bad = tmp_path / "bad.jsonl"
    _edit(recorded, bad, change_status)
    report = check_trace(load_trace(bad))
    assert report.violations and "KMCL-COMPLETION" in report.violations[0].requirements


def test_suppressions_silence_a_known_issue_and_an_unused_one_fails(
    recorded: Path, tmp_path: Path, vmbspec: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.jsonl"
    seq = _edit(recorded, bad, _drop_wait_flag)
    by_id = tmp_path / "by-id.toml"
    by_id.write_text('[[suppress]]\nrequirement = "SEED-WAIT-MUST"\n'
                     'reason = "driver 1.2 ignores the flag (bug 42)"\n')
    assert vmbspec(["trace", "check", str(bad), "--suppress", str(by_id)]) == 0
    assert "suppressed at event" in capsys.readouterr().out
    by_event = tmp_path / "by-event.toml"
    by_event.write_text(f'[[suppress]]\nevent = {seq}\nreason = "seen once"\n')
    assert vmbspec(["trace", "check", str(bad), "--suppress", str(by_event)]) == 0
    capsys.readouterr()
    stale = tmp_path / "stale.toml"
    stale.write_text(by_id.read_text())
    assert vmbspec(["trace", "check", str(recorded), "--suppress", str(stale)]) == 1
    assert "unused suppression" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "no such file"),
        ("", "not a vmbspec trace"),
        ('{"hello": 1}\n', "not a vmbspec trace"),
        ('{"vmbspec_trace": 1}\nnot json\n', "record 1 (line 2): not valid JSON"),
        ('{"vmbspec_trace": 1}\n{"seq": 1, "session": 1, "event": "teleport"}\n',
         "unknown event"),
        ('{"vmbspec_trace": 1}\n{"seq": 1, "session": 1, "event": "call", "method": "send_'
         'with_external_mdl", "params": {}, "result": 0}\n', "field params.packet: missing"),
        ('{"vmbspec_trace": 1}\n{"seq": 2, "session": 1, "event": "end"}\n'
         '{"seq": 1, "session": 1, "event": "end"}\n', "does not follow"),
    ],
)
def test_a_bad_trace_is_a_one_line_error(
    content: str | None, words: str, tmp_path: Path, vmbspec: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "t.jsonl"
    if content is not None:
        path.write_text(content)
    assert vmbspec(["trace", "check", str(path)]) == 2
    error = capsys.readouterr().err.strip()
    assert words in error and "\n" not in error


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('[[suppress]]\nrequirement = "SEED-WAIT-MUST"\n', "needs a reason"),
        ('[[suppress]]\nreason = "x"\n', "needs a requirement, an event"),
        ('[[suppress]]\nrequirement = "NO-SUCH-ID"\nreason = "x"\n', "unknown requirement"),
        ("[[suppress]\n", "not valid TOML"),
    ],
)
def test_a_bad_suppression_file_is_a_one_line_error(
    content: str, words: str, recorded: Path, tmp_path: Path, vmbspec: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(content)
    assert vmbspec(["trace", "check", str(recorded), "--suppress", str(path)]) == 2
    error = capsys.readouterr().err.strip()
    assert words in error and "\n" not in error


def test_a_trace_that_names_an_unknown_handle_is_reported_as_a_trace_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"vmbspec_trace": 1}\n'
                    '{"seq": 1, "session": 1, "event": "start", "target": "x", '
                    '"capabilities": []}\n'
                    '{"seq": 2, "session": 1, "event": "call", "method": "open_channel", '
                    '"params": {"channel": 5}, "result": null}\n')
    report = check_trace(load_trace(path))
    (violation,) = report.violations
    assert violation.kind == "trace-error" and "never returned by create_channel" in (
        violation.message)
