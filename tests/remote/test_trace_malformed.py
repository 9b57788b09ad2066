"""Malformed-input campaign for ``vmbspec trace check`` (issue 9, item 5).

Two interfaces take input from outside: the trace (JSON Lines) and the suppression file
(TOML). For each, Hypothesis generates random documents and mutations of valid ones (a trace
recorded from the simulator through the reference agent, a suppression file naming its
requirements): fields replaced by wrong types, huge integers, NaN and Infinity, deep nesting,
truncated lines, records duplicated, dropped, reordered or moved to another session, calls
repeated (a caller breaking its contract). Every input must end in a clean
:class:`~conformance.inputs.InputError` or a verdict whose report renders, never another
exception. A few inputs also go through the command line's ``main()`` to check the exit
statuses: 0, 1 or 2, and a single line on standard error when 2 without a report.

The generators are shared with ``bench/malformed_trace.py``, which runs 10,000 inputs per
interface; here each test is bounded to a few hundred examples.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmbspec.conformance.inputs import InputError
from vmbspec.conformance.trace import (
    TraceEvent,
    check_trace,
    format_report,
    parse_suppressions,
    parse_trace,
)
from vmbspec.spec.catalog import CATALOG

HEADER = {"vmbspec_trace": 1, "recorded_by": "test"}
#: Keys a record may hold, so random records hit the validator's branches.
KEYS = ("seq", "session", "event", "target", "capabilities", "method", "params", "result",
        "channel", "bytes", "transaction_id", "status", "data", "packet", "error")
PARAM_KEYS = ("ring_data_size", "channel", "packet", "buffer", "buffer_length", "mdl",
              "mdl_offset", "mdl_length", "flags")
KINDS = ("start", "call", "packet", "host_complete", "completion", "error", "end", "nope")
METHODS = ("create_channel", "open_channel", "disable_channel", "allocate_packet",
           "free_packet", "send_with_external_mdl", "host_take_packet")
#: Lines of a recorded session longer than this are left out of the seeds (big buffers make
#: every mutated example slow without reaching new code).
MAX_SEED_LINE = 3000
DEEP = "__deep_{}__"
DEEP_MARKER = re.compile(r'"__deep_(\d+)__"')


# -- the judges: what every input must come to -------------------------------------------------


def judge_trace(text: str) -> str:
    """``input-error`` or the report's verdict; any other exception escapes (a crash)."""
    try:
        events = parse_trace(text, "t.jsonl")
    except InputError as error:
        _one_line(str(error))
        return "input-error"
    return _verdict(events, [])


def judge_suppressions(text: str, events: list[TraceEvent]) -> str:
    """``input-error``, or the verdict of ``events`` checked with the suppressions."""
    try:
        suppressions = parse_suppressions(text, "s.toml", CATALOG.requirements)
    except InputError as error:
        _one_line(str(error))
        return "input-error"
    return _verdict(events, suppressions)


def _verdict(events: list[TraceEvent], suppressions: list[Any]) -> str:
    report = check_trace(events, suppressions=suppressions, path="t.jsonl")
    format_report(report)
    json.dumps(report.as_json(), allow_nan=False)
    assert report.exit_status in (0, 1, 2)
    return report.verdict


def _one_line(message: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message, message


# -- seeds: a trace recorded from the simulator ---------------------------------------------


def record_sessions(directory: Path, examples: int = 6) -> list[list[dict[str, Any]]]:
    """The sessions of a trace the reference agent records while the suite runs against the
    simulator, each a list of records (the short ones only)."""
    from vmbspec.conformance import run_conformance
    from vmbspec.conformance.targets import resolve_target

    path = directory / "sim.jsonl"
    command = shlex.join([sys.executable, "-m", "vmbspec.conformance.cli_agent", "--backend", "sim",
                          "--quiet", "--trace", str(path)])
    _name, factory = resolve_target("remote:stdio:" + command, {"timeout": 10.0})
    try:
        report = run_conformance(factory, examples=examples)
    finally:
        factory.close()
    assert report.passed
    sessions: dict[int, list[dict[str, Any]]] = {}
    too_long: set[int] = set()
    for line in path.read_text().splitlines()[1:]:
        record = json.loads(line)
        sessions.setdefault(record["session"], []).append(record)
        if len(line) > MAX_SEED_LINE:
            too_long.add(record["session"])
    kept = [s for number, s in sessions.items() if number not in too_long and len(s) > 2]
    assert len(kept) >= 10
    return kept


def assemble(sessions: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The sessions as one trace: seq renumbered from 1, sessions from 1."""
    records, seq = [], 0
    for number, session in enumerate(sessions, start=1):
        for record in session:
            seq += 1
            records.append({**record, "seq": seq, "session": number})
    return records


def render(records: list[Any], header: Any = HEADER) -> str:
    lines = [json.dumps(header)] + [json.dumps(r) for r in records]
    text = "\n".join(lines) + "\n"
    # Deep nesting is spliced in as text (json.dumps would recurse as deep).
    return DEEP_MARKER.sub(lambda m: "[" * int(m[1]) + "]" * int(m[1]), text)


# -- generators ------------------------------------------------------------------------------


def nasty_values() -> st.SearchStrategy[Any]:
    """Values of the wrong type or range for any field."""
    return st.one_of(
        st.none(), st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([0, 1, 4095, 4096, 2**31, 2**32 - 1, 2**32, 2**40, 2**63, 2**64 - 1,
                         2**64, -1, -(2**31), 10**39, 10**41, 10**300]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.sampled_from(["", "00", "0", "zz", "0102", "ff" * 40, "01 02", "\u2028", "\x00"]),
        st.lists(st.integers(min_value=-5, max_value=2**65), max_size=4),
        st.dictionaries(st.sampled_from(("fill", "message", "code", "x")),
                        st.integers(min_value=-1, max_value=2**40), max_size=2),
        st.integers(min_value=7, max_value=5000).map(DEEP.format),
        st.sampled_from([[[0, 4096, []]], [[0, 4096, [1]]], [[4096, 1, [1]]], [],
                         [[0, 2**32 - 1, [1]]], [[0, 1]], [[0, 1, [1], 4]]]),
    )


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS + PARAM_KEYS) | st.text(max_size=4), inner,
                          max_size=5),
        max_leaves=12,
    )


@st.composite
def random_records(draw: st.DrawFn) -> dict[str, Any]:
    """A record built from the format's vocabulary, with random values."""
    record: dict[str, Any] = {
        "seq": draw(st.integers(min_value=-2, max_value=40) | nasty_values()),
        "session": draw(st.integers(min_value=0, max_value=3) | nasty_values()),
        "event": draw(st.sampled_from(KINDS) | nasty_values()),
    }
    for key in draw(st.lists(st.sampled_from(KEYS[3:]), max_size=6, unique=True)):
        if key == "method":
            record[key] = draw(st.sampled_from(METHODS) | nasty_values())
        elif key == "params":
            record[key] = draw(st.dictionaries(st.sampled_from(PARAM_KEYS),
                                               nasty_values(), max_size=7)
                               | nasty_values())
        else:
            record[key] = draw(nasty_values())
    return record


@st.composite
def random_traces(draw: st.DrawFn) -> str:
    """Random JSON lines: a header (or not), random records, random values, random text."""
    kind = draw(st.integers(min_value=0, max_value=3))
    if kind == 0:
        return draw(st.text(max_size=200))
    if kind == 1:
        return draw(st.binary(max_size=200)).decode("utf-8", "replace")
    header = draw(st.sampled_from([HEADER, {"vmbspec_trace": True}, {"vmbspec_trace": 2},
                                   {"vmbspec_trace": 1.0}, [1], None]) | json_values())
    if kind == 2:
        return render(draw(st.lists(json_values(), max_size=8)), header)
    return render(draw(st.lists(random_records(), max_size=10)),
                  draw(st.sampled_from([HEADER, header])))


def _paths(record: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Places a value can be replaced at: top-level keys, params, MDL elements."""
    paths: list[tuple[Any, ...]] = [(key,) for key in record]
    params = record.get("params")
    if isinstance(params, dict):
        paths += [("params", key) for key in params]
        mdl = params.get("mdl")
        if isinstance(mdl, list):
            for i, segment in enumerate(mdl[:3]):
                paths.append(("params", "mdl", i))
                if isinstance(segment, list):
                    paths += [("params", "mdl", i, j) for j in range(len(segment))]
    return paths


def _set(record: dict[str, Any], path: tuple[Any, ...], value: Any, delete: bool) -> None:
    container: Any = record
    for step in path[:-1]:
        container = container[step]
    if delete and isinstance(container, dict):
        del container[path[-1]]
    else:
        container[path[-1]] = value


@st.composite
def mutated_traces(draw: st.DrawFn, seeds: list[list[dict[str, Any]]]) -> str:
    """A valid recorded trace (one to three sessions) with one to four mutations."""
    sessions = draw(st.lists(st.sampled_from(seeds), min_size=1, max_size=3))
    records = json.loads(json.dumps(assemble(sessions)))  # a deep copy
    renumber = draw(st.booleans())
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        if not records:
            break
        at = draw(st.integers(min_value=0, max_value=len(records) - 1))
        operation = draw(st.sampled_from(("replace", "replace", "replace", "delete-field",
                                          "add-field", "duplicate", "drop", "swap", "session",
                                          "kind", "result")))
        record = records[at]
        if operation in ("replace", "delete-field"):
            path = draw(st.sampled_from(_paths(record)))
            _set(record, path, draw(nasty_values()), operation == "delete-field")
        elif operation == "add-field":
            record[draw(st.sampled_from(KEYS) | st.text(max_size=4))] = draw(nasty_values())
        elif operation == "duplicate":
            # A repeated call: with renumbering, a caller opening, freeing... twice.
            records.insert(at, json.loads(json.dumps(record)))
        elif operation == "drop":
            del records[at]
        elif operation == "swap":
            other = draw(st.integers(min_value=0, max_value=len(records) - 1))
            records[at], records[other] = records[other], records[at]
        elif operation == "session":
            record["session"] = draw(st.integers(min_value=1, max_value=4))
        elif operation == "kind":
            record["event"] = draw(st.sampled_from(KINDS))
            if "method" in record:
                record["method"] = draw(st.sampled_from(METHODS))
        else:
            record["result"] = draw(st.sampled_from([None, 0, 1, 2, 0xC000000D, 0x103])
                                    | st.integers(min_value=0, max_value=2**32 - 1))
    if renumber:
        for seq, record in enumerate(records, start=1):
            if isinstance(record, dict):
                record["seq"] = seq
    text = render(records)
    lines = text.split("\n")
    cut = draw(st.integers(min_value=0, max_value=6))
    if cut == 0:  # a truncated line, as a crashed recorder leaves
        line = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        lines[line] = lines[line][:draw(st.integers(min_value=0, max_value=len(lines[line])))]
    elif cut == 1:  # a stray line
        lines.insert(draw(st.integers(min_value=0, max_value=len(lines))),
                     draw(st.text(max_size=30)))
    return "\n".join(lines)


def trace_inputs(seeds: list[list[dict[str, Any]]]) -> st.SearchStrategy[str]:
    return st.one_of(random_traces(), mutated_traces(seeds), mutated_traces(seeds))


# -- suppression files -------------------------------------------------------------------------


def _toml(value: Any) -> str:
    """A value as a TOML literal (strings in JSON's escapes, which TOML shares)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    return str(value)


def toml_values() -> st.SearchStrategy[str]:
    """TOML literals of every type, sizes and depths, as text."""
    return st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70).map(_toml),
        st.sampled_from(["-1", "0", "18446744073709551615", "18446744073709551616",
                         "1" + "0" * 50, "1" + "0" * 4000, "0x10", "1_000", "inf", "nan",
                         "-inf", "1.5", "true", "1979-05-27", "1979-05-27T07:32:00Z",
                         "07:32:00", '""', '"  "', "''", '"SEED-WAIT-MUST"', '"NO-SUCH"',
                         "[]", "{}", '["SEED-WAIT"]', '"""multi\nline"""']),
        st.text(max_size=20).map(_toml),
        st.integers(min_value=2, max_value=5000).map(lambda n: "[" * n + "]" * n),
        st.recursive(st.integers(min_value=-3, max_value=3) | st.text(max_size=4),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=3), inner, max_size=2),
                     max_leaves=6).map(_toml),
    )


@st.composite
def valid_suppressions(draw: st.DrawFn, events: list[TraceEvent]) -> list[dict[str, str]]:
    """Entries as key -> TOML literal; they name requirements and events of the seed trace."""
    seqs = [e.seq for e in events] or [1]
    requirements = sorted(CATALOG.requirements)
    entries = []
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        entry: dict[str, str] = {}
        which = draw(st.integers(min_value=0, max_value=2))
        if which in (0, 2):
            entry["requirement"] = _toml(draw(st.sampled_from(requirements)))
        if which in (1, 2):
            entry["event"] = str(draw(st.sampled_from(seqs)))
        entry["reason"] = _toml(draw(st.text(min_size=1, max_size=30)))
        entries.append(entry)
    return entries


def render_suppressions(entries: list[dict[str, str]], top: dict[str, str] | None = None,
                        header: str = "[[suppress]]") -> str:
    lines = [f"{json.dumps(k)} = {v}" for k, v in (top or {}).items()]
    for entry in entries:
        lines.append(header)
        lines += [f"{key} = {literal}" for key, literal in entry.items()]
    return "\n".join(lines) + "\n"


@st.composite
def mutated_suppressions(draw: st.DrawFn, events: list[TraceEvent]) -> str:
    entries = draw(valid_suppressions(events)) or [{"reason": '"x"'}]
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        entry = draw(st.sampled_from(entries))
        operation = draw(st.sampled_from(("replace", "replace", "delete", "add", "rename")))
        key = draw(st.sampled_from(sorted(entry) or ["reason"]))
        if operation == "replace":
            entry[key] = draw(toml_values())
        elif operation == "delete":
            entry.pop(key, None)
        elif operation == "add":
            entry[draw(st.sampled_from(("requirement", "event", "reason", "reasons", "x",
                                        '"a.b"', "suppress")))] = draw(toml_values())
        else:
            entry[draw(st.sampled_from(("Requirement", "events", "why")))] = entry.pop(key, '""')
    top = draw(st.dictionaries(st.sampled_from(("suppress", "x", "version")), toml_values(),
                               max_size=1))
    header = draw(st.sampled_from(["[[suppress]]"] * 6 + ["[suppress]", "[[suppres]]",
                                                           "[[suppress.x]]", "[x]"]))
    text = render_suppressions(entries, top, header)
    if draw(st.integers(min_value=0, max_value=5)) == 0:
        text = text[:draw(st.integers(min_value=0, max_value=len(text)))]
    return text


def random_suppressions() -> st.SearchStrategy[str]:
    alphabet = st.sampled_from([*"[]{}=\"'.,#\n -_0123456789abcdefrsuptqion", "\\u", "\x00"])
    return st.one_of(
        st.text(max_size=120),
        st.lists(alphabet, max_size=80).map("".join),
        st.lists(st.tuples(st.sampled_from(("requirement", "event", "reason", "x", "suppress")),
                           toml_values()), max_size=5)
        .map(lambda pairs: render_suppressions([{k: v for k, v in pairs}])),
    )


def suppression_inputs(events: list[TraceEvent]) -> st.SearchStrategy[str]:
    return st.one_of(random_suppressions(), mutated_suppressions(events),
                     mutated_suppressions(events))


# -- the tests ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[list[dict[str, Any]]]:
    return record_sessions(tmp_path_factory.mktemp("seeds"))


@pytest.fixture(scope="module")
def seed_events(seeds: list[list[dict[str, Any]]]) -> list[TraceEvent]:
    return parse_trace(render(assemble(seeds[:8])), "seed.jsonl")


CAMPAIGN = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_the_seeds_are_valid_and_check_clean(seeds: list[list[dict[str, Any]]]) -> None:
    assert judge_trace(render(assemble(seeds))) == "conforms"


def test_malformed_traces_end_in_an_input_error_or_a_verdict(
    seeds: list[list[dict[str, Any]]],
) -> None:
    outcomes: set[str] = set()

    @CAMPAIGN
    @given(text=trace_inputs(seeds))
    def run(text: str) -> None:
        outcomes.add(judge_trace(text))

    run()
    # The campaign reaches past the reader: into verdicts, including invalid traces.
    assert {"input-error", "conforms", "invalid-trace"} <= outcomes, outcomes


def test_malformed_suppression_files_end_in_an_input_error_or_a_verdict(
    seed_events: list[TraceEvent],
) -> None:
    outcomes: set[str] = set()

    @CAMPAIGN
    @given(text=suppression_inputs(seed_events))
    def run(text: str) -> None:
        outcomes.add(judge_suppressions(text, seed_events))

    run()
    assert {"input-error", "conforms", "does-not-conform"} <= outcomes, outcomes


def test_through_the_command_line_the_exit_status_says_what_happened(
    seeds: list[list[dict[str, Any]]], seed_events: list[TraceEvent], tmp_path: Path,
    vmbspec: Callable[..., int], capsys: pytest.CaptureFixture[str],
) -> None:
    trace, suppress = tmp_path / "t.jsonl", tmp_path / "s.toml"
    trace.write_text(render(assemble(seeds[:8])))

    @settings(CAMPAIGN, max_examples=40)
    @given(text=trace_inputs(seeds), suppressions=suppression_inputs(seed_events),
           which=st.booleans())
    def run(text: str, suppressions: str, which: bool) -> None:
        args = ["trace", "check", str(trace)]
        if which:
            trace.write_text(text, encoding="utf-8", errors="surrogatepass")
            expected = judge_trace(text)
        else:
            trace.write_text(render(assemble(seeds[:8])))
            suppress.write_text(suppressions, encoding="utf-8", errors="surrogatepass")
            args += ["--suppress", str(suppress)]
            expected = judge_suppressions(suppressions, seed_events)
        status = vmbspec(args)
        out, err = capsys.readouterr()
        assert status == {"input-error": 2, "invalid-trace": 2, "conforms": 0,
                          "does-not-conform": 1}[expected]
        if expected == "input-error":
            assert out == "" and err.count("\n") == 1 and err.startswith("vmbspec trace: ")
        else:
            assert err == "" and "Traceback" not in out

    run()
