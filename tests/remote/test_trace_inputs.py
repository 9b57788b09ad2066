"""Bad input to ``vmbspec trace check`` (issue 9): a trace or suppression file with wrong types,
huge values or deep nesting, a trace whose caller breaks its own contract, and a --json report
that cannot be written. Each ends in a clear message or an invalid-trace verdict with exit 2,
never a traceback, a huge allocation or a verdict against the target."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vmbspec.conformance.inputs import InputError
from vmbspec.conformance.trace import check_trace, parse_suppressions, parse_trace
from vmbspec.conformance.trace_format import TraceFormatError

HEADER = json.dumps({"vmbspec_trace": 1})
START = {"event": "start", "target": "t", "capabilities": []}
CREATE = {"event": "call", "method": "create_channel", "params": {"ring_data_size": 65536},
          "result": 1}
OPEN = {"event": "call", "method": "open_channel", "params": {"channel": 1}, "result": None}
ALLOCATE = {"event": "call", "method": "allocate_packet", "params": {"channel": 1}, "result": 2}
FREE = {"event": "call", "method": "free_packet", "params": {"packet": 2}, "result": None}
DISABLE = {"event": "call", "method": "disable_channel", "params": {"channel": 1},
           "result": None}
END = {"event": "end"}
#: A send with WAIT_FOR_COMPLETION of two in-line bytes: accepted, the packet is in the ring.
SEND = {"event": "call", "method": "send_with_external_mdl",
        "params": {"packet": 2, "buffer": "0102", "buffer_length": 2, "mdl": None,
                   "mdl_offset": 0, "mdl_length": 0, "flags": 1},
        "result": 0}
CLEAN = [START, CREATE, OPEN, ALLOCATE, FREE, DISABLE, END]


def _text(*sessions: list[dict[str, Any]]) -> str:
    lines, seq = [HEADER], 0
    for number, events in enumerate(sessions, start=1):
        for event in events:
            seq += 1
            lines.append(json.dumps({"seq": seq, "session": number, **event}))
    return "\n".join(lines) + "\n"


def _with(event: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {**event, "params": {**event["params"], **params}}


def _run(vmbspec: Callable[..., int], capsys: pytest.CaptureFixture[str],
         *args: str) -> tuple[int, str, str]:
    status = vmbspec(["trace", "check", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err.strip()


def test_the_hand_written_trace_checks_clean() -> None:
    assert check_trace(parse_trace(_text(CLEAN))).passed
    assert check_trace(parse_trace(_text([START, CREATE, OPEN, ALLOCATE, SEND]))).passed


# -- 1. wrong types and values: one line naming the record, its line and the field -------------


@pytest.mark.parametrize(
    ("events", "words"),
    [
        ([{**START, "capabilities": [1]}], "record 1 (line 2): field capabilities[0]: "
         "expected a string, found an integer"),
        ([START, CREATE, OPEN, {"event": "packet", "channel": [], "bytes": None}],
         "record 4 (line 5): field channel: expected an integer, found an array"),
        ([START, _with(CREATE, channel=1)], "record 2 (line 3): field params: create_channel "
         "has no parameter 'channel'"),
        ([START, {**CREATE, "result": None}], "field result: expected an integer, found null"),
        ([START, {**CREATE, "result": True}], "field result: expected an integer, found a "
         "boolean"),
        ([START, CREATE, {**OPEN, "result": 0}], "field result: must be null"),
        ([START, _with(CREATE, ring_data_size=4096.0)], "field params.ring_data_size: "
         "expected an integer, found a number with a fraction"),
        ([START, CREATE, OPEN, ALLOCATE, _with(SEND, buffer_length=2**40)],
         "field params.buffer_length: 1099511627776 is out of range 0x0..0xffffffff"),
        ([START, CREATE, OPEN, ALLOCATE, _with(SEND, buffer_length=0xFFFF_FFFF)],
         "field params.buffer_length: 4294967295, but params.buffer holds 2 byte(s)"),
        ([START, CREATE, OPEN, ALLOCATE, _with(SEND, buffer={"fill": 1},
                                               buffer_length=0xFFFF_FFFF)],
         "field params.buffer: expected a string, found an object"),
        ([START, CREATE, OPEN, ALLOCATE, _with(SEND, buffer="012")], "field params.buffer: "
         "hex of 3 digits is not whole bytes"),
        ([START, CREATE, OPEN, ALLOCATE, _with(SEND, buffer="01 0")], "field params.buffer: "
         "not hex"),
        ([START, CREATE, OPEN, ALLOCATE, _with(SEND, buffer="zz", buffer_length=1)],
         "field params.buffer: not hex"),
        ([START, CREATE, OPEN, ALLOCATE, _with(SEND, mdl=[[0, 4096, [2**64]]])],
         "field params.mdl[0][2][0] (pfn): 18446744073709551616 is out of range"),
        ([START, CREATE, OPEN, ALLOCATE, _with(SEND, mdl=[[0, 4096]])],
         "field params.mdl[0]: an MDL is [byte_offset, byte_count, [pfn, ...]]"),
        ([START, CREATE, OPEN, ALLOCATE, _with(SEND, mdl=[])], "field params.mdl: an MDL "
         "chain has at least one MDL"),
        ([START, CREATE, OPEN, ALLOCATE, _with(SEND, flags=-1)], "field params.flags: -1 is "
         "out of range"),
        ([{**START, "capabilities": ["x"] * 65}], "field capabilities: an array of 65 items"),
        ([START, {"event": "completion", "packet": 2, "status": 2**32, "data": ""}],
         "field status: 4294967296 is out of range"),
        ([START, {"event": "error", "method": "open_channel", "error": "boom"}],
         "field error: expected an object, found a string"),
    ],
)
def test_a_record_of_the_wrong_type_or_range_is_a_one_line_error(
    events: list[dict[str, Any]], words: str, tmp_path: Path, vmbspec: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(_text(events))
    status, out, error = _run(vmbspec, capsys, str(path))
    assert status == 2 and out == ""
    assert error.startswith(f"vmbspec trace: {path}: record ")
    assert words in error and "\n" not in error


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('{"seq": 1, "session": 1, "event": "start", "target": "t", "capabilities": []'
         ', "x": Infinity}', "Infinity is not a JSON number"),
        ('{"seq": NaN, "session": 1, "event": "end"}', "NaN is not a JSON number"),
        ('{"seq": 1' + "0" * 60 + ', "session": 1, "event": "end"}', "an integer of 61 digits"),
        ('{"seq": 1, "session": 1, "event": "end", "x": ' + "[" * 5000 + "]" * 5000 + "}",
         "nested deeper than"),
        ('{"seq": 1, "session": 1, "event": "end", "x": ' + "[" * 20 + "]" * 20 + "}",
         "nested deeper than 8 levels"),
        ('{"seq": 1, "session": 1, "event": "en', "not valid JSON at column"),
        ('[1, 2]', "field (the record): expected an object, found an array"),
    ],
)
def test_json_that_python_accepts_but_a_trace_must_not_is_refused(
    line: str, words: str, tmp_path: Path, vmbspec: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(HEADER + "\n" + line + "\n")
    status, _out, error = _run(vmbspec, capsys, str(path))
    assert status == 2 and words in error and "record 1 (line 2)" in error
    assert "\n" not in error


def test_a_header_that_is_true_rather_than_1_is_not_a_trace() -> None:
    with pytest.raises(TraceFormatError, match="not a vmbspec trace"):
        parse_trace('{"vmbspec_trace": true}\n', "t.jsonl")


def test_a_trace_larger_than_the_bound_is_refused_without_reading_it_all(
    tmp_path: Path, vmbspec: Callable[..., int], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vmbspec.conformance import trace_format

    monkeypatch.setattr(trace_format, "MAX_TRACE_BYTES", 1000)
    path = tmp_path / "t.jsonl"
    path.write_text(_text(CLEAN) * 10)
    status, _out, error = _run(vmbspec, capsys, str(path))
    assert status == 2 and "larger than 1000 bytes" in error


def test_strings_from_the_trace_are_printed_on_one_line(
    tmp_path: Path, vmbspec: Callable[..., int], capsys: pytest.CaptureFixture[str],
) -> None:
    error = {"event": "error", "method": "open\nchannel", "error": {"message": "a\nb\x1b[2J"}}
    path = tmp_path / "t.jsonl"
    path.write_text(_text([{**START, "target": "x\ny"}, error]))
    status, out, _err = _run(vmbspec, capsys, str(path))
    assert status == 1  # the harness's failure is the target's (SEED-RETURN)
    assert "a\\nb\\x1b[2J" in out and "x\\ny" in out and "\x1b" not in out


# -- 2. the recorded caller breaks its contract: an invalid trace, never the target's fault ---


@pytest.mark.parametrize(
    ("events", "rule"),
    [
        ([START, CREATE, OPEN, ALLOCATE, OPEN], "KMCL-QUEUE-CLOSED"),
        ([START, CREATE, OPEN, DISABLE, DISABLE], "READ-A12"),
        ([START, CREATE, OPEN, ALLOCATE, FREE, FREE], "SEED-WAIT"),
        ([START, CREATE, OPEN, ALLOCATE, SEND, FREE], "SEED-WAIT"),
        ([START, CREATE, OPEN, ALLOCATE, SEND, SEND], "READ-A10"),
    ],
    ids=["open-twice", "disable-twice", "free-twice", "free-in-ring", "send-in-ring"],
)
def test_a_caller_that_breaks_its_contract_makes_an_invalid_trace_with_a_report(
    events: list[dict[str, Any]], rule: str, tmp_path: Path, vmbspec: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, report = tmp_path / "t.jsonl", tmp_path / "r.json"
    path.write_text(_text(events))
    status, out, error = _run(vmbspec, capsys, str(path), "--json", str(report))
    assert status == 2 and error == ""
    bad = len(events)
    assert f"INVALID TRACE at event {bad} (line {bad + 1}, session 1, caller-error)" in out
    assert f"the recorded caller broke [{rule}" in out and "not the target" in out
    assert "VIOLATION" not in out and "Traceback" not in out
    document = json.loads(report.read_text())
    assert document["verdict"] == "invalid-trace" and document["valid"] is False
    (violation,) = document["violations"]
    assert violation["kind"] == "caller-error" and violation["event"] == bad
    assert rule in violation["requirements"]


def test_a_robust_target_is_still_judged_on_a_send_of_a_packet_in_the_ring() -> None:
    # With robust-contract-violations the target promises to reject it: that is checked.
    robust = {**START, "capabilities": ["robust-contract-violations"]}
    accepted_again = check_trace(parse_trace(_text([robust, CREATE, OPEN, ALLOCATE, SEND,
                                                    SEND])))
    (violation,) = accepted_again.violations
    assert violation.kind == "nonconformance" and "READ-A10" in violation.requirements
    assert accepted_again.valid and accepted_again.exit_status == 1


def test_an_invalid_session_does_not_hide_a_violation_in_another(
    tmp_path: Path, vmbspec: Callable[..., int], capsys: pytest.CaptureFixture[str],
) -> None:
    no_packet = {**ALLOCATE, "result": None}
    path = tmp_path / "t.jsonl"
    path.write_text(_text([START, CREATE, OPEN, OPEN], [START, CREATE, OPEN, no_packet]))
    status, out, _error = _run(vmbspec, capsys, str(path))
    assert status == 2
    assert "INVALID TRACE at event 4" in out and "VIOLATION at event 8" in out
    assert "KMCL-NO-RESOURCE-FAILURE" in out and "1 violation(s) in the others" in out


def test_a_trace_that_cannot_be_followed_is_invalid_not_a_failure_of_the_target(
    tmp_path: Path, vmbspec: Callable[..., int], capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(_text([START, CREATE, _with(OPEN, channel=5)]))
    status, out, _error = _run(vmbspec, capsys, str(path))
    assert status == 2 and "INVALID TRACE at event 3" in out and "trace-error" in out
    assert "never returned by create_channel" in out and "FAIL" not in out


def test_a_caller_error_is_never_suppressed(tmp_path: Path) -> None:
    (suppression,) = parse_suppressions('[[suppress]]\nevent = 5\nreason = "x"\n')
    report = check_trace(parse_trace(_text([START, CREATE, OPEN, ALLOCATE, OPEN])),
                         suppressions=[suppression])
    assert report.verdict == "invalid-trace" and not report.suppressed


# -- 3. suppression files: bounded TOML, strict schema ---------------------------------------


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("x = " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than"),
        ("[[suppress]]\nrequirement = 'SEED-WAIT'\nreason = 'x'\nx = " + "[" * 10 + "]" * 10,
         "nested deeper than 4 levels"),
        ('[[suppress]]\nrequirement = 1\nreason = "x"\n',
         "suppression 1: field requirement: expected a string, found an integer"),
        ('[[suppress]]\nevent = "7"\nreason = "x"\n',
         "suppression 1: field event (an event's seq): expected an integer, found a string"),
        ('[[suppress]]\nevent = -1\nreason = "x"\n', "field event (an event's seq): -1 is out"),
        ('[[suppress]]\nevent = 1.5\nreason = "x"\n', "expected an integer, found a number"),
        ('[[suppress]]\nevent = 7\nreason = ["x"]\n',
         "suppression 1: field reason: expected a string, found an array"),
        ('[[suppress]]\nevent = 7\nreason = "  "\n', "needs a reason (this one is blank)"),
        ('[[suppress]]\nevent = 7\nreason = "x"\n[[suppress]]\nevent = 8\nreasons = "x"\n',
         "suppression 2: unknown key 'reasons'"),
        ('suppress = 1\n', "suppress must be [[suppress]] tables"),
        ('suppress = [1]\n', "suppress must be [[suppress]] tables"),
        ('[[suppres]]\nevent = 7\nreason = "x"\n', "unknown key 'suppres'"),
        ('[[suppress]]\nevent = 1' + "0" * 4000 + '\nreason = "x"\n',
         "field event (an event's seq): an integer of 13288 bits is out of range"),
        ("\xff", "not UTF-8"),
    ],
)
def test_a_bad_suppression_file_names_the_file_and_the_entry(
    content: str, words: str, tmp_path: Path, vmbspec: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    trace, path = tmp_path / "t.jsonl", tmp_path / "s.toml"
    trace.write_text(_text(CLEAN))
    path.write_bytes(content.encode("latin-1") if content == "\xff" else content.encode())
    status, out, error = _run(vmbspec, capsys, str(trace), "--suppress", str(path))
    assert status == 2 and out == ""
    assert error.startswith(f"vmbspec trace: {path}: ") and words in error
    assert "\n" not in error


def test_a_suppression_file_that_is_a_folder_or_missing_is_a_one_line_error(
    tmp_path: Path, vmbspec: Callable[..., int], capsys: pytest.CaptureFixture[str],
) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text(_text(CLEAN))
    for path, words in ((tmp_path, "is a folder"), (tmp_path / "none.toml", "no such file")):
        status, _out, error = _run(vmbspec, capsys, str(trace), "--suppress", str(path))
        assert status == 2 and words in error and "\n" not in error


# -- 4. a --json report that cannot be written ------------------------------------------------


@pytest.mark.parametrize("where", ["/dev/full", "folder", "missing/r.json"])
def test_an_unwritable_json_report_is_reported_after_the_verdict(
    where: str, tmp_path: Path, vmbspec: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    if where == "/dev/full" and not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    trace = tmp_path / "t.jsonl"
    trace.write_text(_text(CLEAN))
    target = where if where.startswith("/") else str(tmp_path / where)
    if where == "folder":
        Path(target).mkdir()
    status, out, error = _run(vmbspec, capsys, str(trace), "--json", target)
    assert "PASS: the trace conforms" in out  # the verdict is not lost
    assert status == 2
    assert error.startswith(f"vmbspec trace: cannot write the JSON report to {target}: ")
    assert "\n" not in error


def test_a_trace_may_make_more_channels_and_packets_than_a_replayed_sequence() -> None:
    # A real driver's trace can run for hours: the trace checker allocates nothing per
    # channel or packet, so the bounds that protect a live target from a replay file do
    # not apply to it.
    from vmbspec.adapters.sim import SimTarget
    from vmbspec.conformance import steps
    from vmbspec.conformance.driver import Driver, StepError
    from vmbspec.spec.readings import Profile

    far = {"op": "free", "packet": steps.MAX_INDEX + 1}
    with pytest.raises(InputError, match="packet"):
        steps.check_step(far, "step 1")
    assert steps.check_step(far, "step 1", steps.TRACE_LIMITS) == "free"

    create = {"op": "create_channel", "ring_data_size": 4096}
    trace_driver = Driver(SimTarget(), Profile.default(), limits=steps.TRACE_LIMITS)
    sequence_driver = Driver(SimTarget(), Profile.default())
    for _ in range(steps.MAX_CHANNELS):
        trace_driver.execute(create)
        sequence_driver.execute(create)
    trace_driver.execute(create)
    with pytest.raises(StepError, match="channels"):
        sequence_driver.execute(create)
