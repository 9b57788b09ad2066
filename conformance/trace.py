"""Trace checking: a recording of a real system, replayed through the spec after the fact.

Theory of operation
-------------------
A trace (``docs/trace-format.md``) is JSON Lines: a header, then events in the order they
happened: ``start`` (a fresh target), ``call`` (a call into the target and what it returned),
``packet`` (a packet the host took from a ring), ``host_complete`` (the host completed a
transaction), ``completion`` (the target ran a completion routine), ``error`` (the harness
could not perform a call) and ``end``.

There is no second oracle here. Each session is fed to a :class:`conformance.driver.Driver` as
steps, against a :class:`TraceTarget` that answers every call from the recording: the driver
asks the spec what the call should do and compares it with what was recorded, exactly as it
does against a live target. The checker's only own knowledge is the mapping from events to
steps: handles to the driver's indices, a host completion's transaction id to the packet that
carried it (from the driver's model), and which completion-routine calls belong to which call
(those recorded after it and before the next call).

Ring snapshots are not part of a trace, so the ``ring-bytes`` checks do not run; the in-line
buffer is recorded as it was at the call.

A violation is reported with the requirement IDs the driver names and the events around it.
Suppressions (a TOML file) name a requirement ID and/or an event, each with a reason; a
suppressed violation is listed and, like any violation, ends the check of its session (the
model and the target disagree from there on, so later reports would be its consequences); the
report says how many events that left unchecked. A suppression that matches nothing is
reported, so a fixed issue's suppression must be removed.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.driver import ConformanceFailure, Driver, Evidence, Step, StepError
from spec.readings import Profile

TRACE_VERSION = 1

#: Required fields of each event kind (besides seq, session, event), with their JSON types.
EVENT_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "start": {"target": (str,), "capabilities": (list,)},
    "call": {"method": (str,), "params": (dict,), "result": (int, type(None))},
    "packet": {"channel": (int,), "bytes": (str, type(None))},
    "host_complete": {"channel": (int,), "transaction_id": (int,), "status": (int,),
                      "data": (str,)},
    "completion": {"packet": (int,), "status": (int,), "data": (str,)},
    "error": {"method": (str,), "error": (dict,)},
    "end": {},
}

#: Call methods a trace may hold, and their params (the remote protocol's names).
CALL_PARAMS: dict[str, tuple[str, ...]] = {
    "create_channel": ("ring_data_size",),
    "open_channel": ("channel",),
    "disable_channel": ("channel",),
    "allocate_packet": ("channel",),
    "free_packet": ("packet",),
    "send_with_external_mdl": ("packet", "buffer", "buffer_length", "mdl", "mdl_offset",
                               "mdl_length", "flags"),
}

#: Events shown before and after a violation.
CONTEXT_BEFORE = 4
CONTEXT_AFTER = 3


class TraceFormatError(ValueError):
    """A trace or suppression file that cannot be read; the message names the line."""


@dataclass(frozen=True)
class TraceEvent:
    seq: int
    session: int
    kind: str
    line: int
    data: dict[str, Any]

    def describe(self) -> str:
        d = self.data
        if self.kind == "call":
            params = ", ".join(f"{k}={_short(v)}" for k, v in d["params"].items())
            result = d["result"]
            shown = "" if result is None else f" -> {_short(result)}"
            return f"call {d['method']}({params}){shown}"
        if self.kind == "packet":
            body = "none (ring empty)" if d["bytes"] is None else f"{len(d['bytes']) // 2} bytes"
            return f"packet from channel {_short(d['channel'])}: {body}"
        if self.kind == "host_complete":
            return (f"host_complete channel {_short(d['channel'])} transaction "
                    f"{d['transaction_id']:#x} status {d['status']:#010x}")
        if self.kind == "completion":
            return (f"completion routine: packet {_short(d['packet'])} status "
                    f"{d['status']:#010x} data {d['data'][:16] or '-'}")
        if self.kind == "start":
            return f"start target {d['target']} capabilities {','.join(d['capabilities'])}"
        if self.kind == "error":
            return f"error in {d['method']}: {d['error'].get('message', '')}"
        return self.kind

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "session": self.session, "event": self.kind,
                "line": self.line, **self.data}


def _short(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return f"{value:#x}" if value > 9 else str(value)
    if isinstance(value, str):
        return value if len(value) <= 16 else f"{value[:16]}…({len(value) // 2} bytes)"
    return json.dumps(value)[:40]


def load_trace(path: Path) -> list[TraceEvent]:
    """Every event of the trace at ``path``, validated; TraceFormatError names the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TraceFormatError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise TraceFormatError(f"{path}: cannot read: {error}") from None
    events: list[TraceEvent] = []
    header_seen = False
    last_seq = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            document = json.loads(line)
        except json.JSONDecodeError as error:
            raise TraceFormatError(f"{where}: not JSON ({error.msg})") from None
        if not isinstance(document, dict):
            raise TraceFormatError(f"{where}: each line must be a JSON object")
        if not header_seen:
            if document.get("vmbspec_trace") != TRACE_VERSION:
                raise TraceFormatError(
                    f"{where}: not a vmbspec trace (the first line must be a header with "
                    f'"vmbspec_trace": {TRACE_VERSION})'
                )
            header_seen = True
            continue
        events.append(_event(document, where, number, last_seq))
        last_seq = events[-1].seq
    if not header_seen:
        raise TraceFormatError(f"{path}: empty file, not a vmbspec trace")
    return events


def _event(document: dict[str, Any], where: str, number: int, last_seq: int) -> TraceEvent:
    kind = document.get("event")
    if kind not in EVENT_FIELDS:
        raise TraceFormatError(f"{where}: unknown event {kind!r}; events: "
                               f"{', '.join(EVENT_FIELDS)}")
    seq, session = document.get("seq"), document.get("session")
    for name, value in (("seq", seq), ("session", session)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise TraceFormatError(f"{where}: {name} must be a non-negative integer")
    assert isinstance(seq, int) and isinstance(session, int)
    if seq <= last_seq:
        raise TraceFormatError(f"{where}: seq {seq} does not follow {last_seq}")
    for name, types in EVENT_FIELDS[kind].items():
        if name not in document:
            raise TraceFormatError(f"{where}: a {kind} event needs {name!r}")
        value = document[name]
        if not isinstance(value, types) or isinstance(value, bool):
            raise TraceFormatError(f"{where}: {kind}.{name} has the wrong type "
                                   f"({type(value).__name__})")
    if kind == "call":
        method = document["method"]
        if method not in CALL_PARAMS:
            raise TraceFormatError(f"{where}: unknown call {method!r}; calls: "
                                   f"{', '.join(CALL_PARAMS)}")
        missing = [p for p in CALL_PARAMS[method] if p not in document["params"]]
        if missing:
            raise TraceFormatError(f"{where}: {method} lacks params {', '.join(missing)}")
    for name in ("bytes", "data"):
        value = document.get(name)
        if isinstance(value, str):
            try:
                bytes.fromhex(value)
            except ValueError:
                raise TraceFormatError(f"{where}: {kind}.{name} is not hex") from None
    data = {k: v for k, v in document.items() if k not in ("seq", "session", "event")}
    return TraceEvent(seq, session, str(kind), number, data)


# -- suppressions ---------------------------------------------------------------------------


@dataclass
class Suppression:
    requirement: str | None
    event: int | None
    reason: str
    line: str
    used: int = 0

    def matches(self, violation: Violation) -> bool:
        return (self.requirement is None or self.requirement in violation.requirements) and (
            self.event is None or self.event == violation.seq
        )

    def describe(self) -> str:
        what = " and ".join(
            part for part in (
                f"requirement {self.requirement}" if self.requirement else "",
                f"event {self.event}" if self.event is not None else "",
            ) if part
        )
        return f"{what}: {self.reason}"

    def as_json(self) -> dict[str, Any]:
        return {"requirement": self.requirement, "event": self.event, "reason": self.reason,
                "used": self.used}


def load_suppressions(path: Path, known_requirements: Iterable[str] = ()) -> list[Suppression]:
    """``[[suppress]]`` tables of ``requirement``/``event`` and a ``reason``."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TraceFormatError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise TraceFormatError(f"{path}: not a readable TOML suppression file ({error})") \
            from None
    extra = sorted(set(document) - {"suppress"})
    entries = document.get("suppress", [])
    if extra or not isinstance(entries, list):
        raise TraceFormatError(f"{path}: expected only [[suppress]] tables")
    known = set(known_requirements)
    suppressions = []
    for number, entry in enumerate(entries, start=1):
        where = f"{path}: suppression {number}"
        if not isinstance(entry, dict) or set(entry) - {"requirement", "event", "reason"}:
            raise TraceFormatError(f"{where}: keys are requirement, event and reason")
        requirement, event, reason = entry.get("requirement"), entry.get("event"), entry.get(
            "reason")
        if requirement is None and event is None:
            raise TraceFormatError(f"{where}: needs a requirement, an event, or both")
        if requirement is not None and not isinstance(requirement, str):
            raise TraceFormatError(f"{where}: requirement must be a string")
        if known and requirement is not None and requirement not in known:
            raise TraceFormatError(f"{where}: unknown requirement {requirement!r} "
                                   "(see `vmbspec requirements`)")
        if event is not None and (not isinstance(event, int) or isinstance(event, bool)):
            raise TraceFormatError(f"{where}: event must be an event's seq number")
        if not isinstance(reason, str) or not reason.strip():
            raise TraceFormatError(f"{where}: every suppression needs a reason")
        suppressions.append(Suppression(requirement, event, reason.strip(), where))
    return suppressions


# -- the trace target -----------------------------------------------------------------------


class TraceMismatch(StepError):
    """The driver asked the recording something it does not hold (a checker defect or an
    inconsistent trace)."""


class TraceTarget:
    """The target interface, answered from one session's recording."""

    def __init__(self, name: str, capabilities: Iterable[str]) -> None:
        self.name = name
        # No ring snapshots in a trace: the ring checks cannot run.
        self.capabilities = frozenset(capabilities) - {"ring-bytes"}
        self.current: TraceEvent | None = None
        self.pending: list[tuple[int, int, bytes]] = []

    def _answer(self, kind: str, method: str | None = None) -> TraceEvent:
        event = self.current
        if event is None or event.kind != kind or (
            method is not None and event.data.get("method") != method
        ):
            shown = "nothing" if event is None else event.describe()
            raise TraceMismatch(f"the checker asked for {method or kind}; the trace has {shown}")
        self.current = None
        return event

    def _result(self, method: str) -> Any:
        return self._answer("call", method).data["result"]

    def create_channel(self, ring_data_size: int) -> int:
        result = self._result("create_channel")
        if result is None:
            raise TraceMismatch("create_channel recorded without a handle")
        return int(result)

    def open_channel(self, channel: int) -> None:
        self._result("open_channel")

    def disable_channel(self, channel: int) -> None:
        self._result("disable_channel")

    def allocate_packet(self, channel: int) -> int | None:
        result = self._result("allocate_packet")
        return None if result is None else int(result)

    def free_packet(self, packet: int) -> None:
        self._result("free_packet")

    def send_with_external_mdl(self, packet: int, buffer: Any, buffer_length: int, mdl: Any,
                               mdl_offset: int, mdl_length: int, flags: int) -> int:
        result = self._result("send_with_external_mdl")
        if result is None:
            raise TraceMismatch("send_with_external_mdl recorded without a status")
        return int(result) & 0xFFFF_FFFF

    def host_take_packet(self, channel: int) -> bytes | None:
        data = self._answer("packet").data["bytes"]
        return None if data is None else bytes.fromhex(data)

    def host_complete(self, channel: int, transaction_id: int, status: int, data: bytes) -> None:
        self._answer("host_complete")

    def completions(self) -> list[tuple[int, int, bytes]]:
        calls, self.pending = self.pending, []
        return calls

    def ring_bytes(self, channel: int) -> bytes:
        raise TraceMismatch("a trace holds no ring snapshots")

    def close(self) -> None:
        pass


# -- checking -------------------------------------------------------------------------------


@dataclass
class Violation:
    session: int
    seq: int
    line: int
    kind: str  # "nonconformance", "target-error", "trace-error"
    requirements: tuple[str, ...]
    message: str
    context: list[TraceEvent] = field(default_factory=list)
    suppressed_by: Suppression | None = None
    #: Events of the session after a suppressed violation, which were not checked.
    unchecked: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "event": self.seq,
            "line": self.line,
            "kind": self.kind,
            "requirements": list(self.requirements),
            "message": self.message,
            "context": [e.as_json() for e in self.context],
            "suppressed_by": None if self.suppressed_by is None else
            self.suppressed_by.as_json(),
            "unchecked_events": self.unchecked,
        }


@dataclass
class TraceReport:
    path: str
    profile: Profile
    events: int
    sessions: int
    violations: list[Violation]
    suppressed: list[Violation]
    unused: list[Suppression]
    evidence: Evidence

    @property
    def passed(self) -> bool:
        return not self.violations and not self.unused

    def as_json(self) -> dict[str, Any]:
        return {
            "trace": self.path,
            "profile": self.profile.name,
            "events": self.events,
            "sessions": self.sessions,
            "passed": self.passed,
            "violations": [v.as_json() for v in self.violations],
            "suppressed": [v.as_json() for v in self.suppressed],
            "unused_suppressions": [s.as_json() for s in self.unused],
            "requirements_exercised": dict(sorted(self.evidence.steps.items())),
        }


class _SessionChecker:
    def __init__(self, events: list[TraceEvent], profile: Profile, evidence: Evidence) -> None:
        self.events = events
        self.profile = profile
        self.evidence = evidence
        start = events[0] if events and events[0].kind == "start" else None
        name = start.data["target"] if start else "trace"
        capabilities = start.data["capabilities"] if start else []
        self.target = TraceTarget(str(name), [str(c) for c in capabilities])
        self.driver = Driver(self.target, profile, evidence)
        self.channels: dict[int, int] = {}
        self.packets: dict[int, int] = {}

    def _channel(self, handle: Any) -> int:
        if handle not in self.channels:
            raise TraceMismatch(f"channel {_short(handle)} was never returned by create_channel "
                                "in this session")
        return self.channels[handle]

    def _packet(self, handle: Any) -> int:
        if handle not in self.packets:
            raise TraceMismatch(f"packet {_short(handle)} was never returned by allocate_packet "
                                "in this session")
        return self.packets[handle]

    def step_for(self, event: TraceEvent) -> Step | None:
        d = event.data
        if event.kind == "packet":
            return {"op": "host_take", "channel": self._channel(d["channel"])}
        if event.kind == "host_complete":
            index = self._channel(d["channel"])
            packet = self.driver.channels[index].taken.get(d["transaction_id"])
            if packet is None:
                raise TraceMismatch(f"the host completed transaction {d['transaction_id']:#x}, "
                                    "which it never took from that channel")
            return {"op": "host_complete", "packet": packet, "status": d["status"],
                    "data": d["data"]}
        if event.kind != "call":
            return None
        method, params = d["method"], d["params"]
        if method == "create_channel":
            return {"op": "create_channel", "ring_data_size": params["ring_data_size"]}
        if method in ("open_channel", "disable_channel", "allocate_packet"):
            op = {"open_channel": "open", "disable_channel": "disable",
                  "allocate_packet": "allocate"}[method]
            return {"op": op, "channel": self._channel(params["channel"])}
        if method == "free_packet":
            return {"op": "free", "packet": self._packet(params["packet"])}
        return {
            "op": "send",
            "packet": self._packet(params["packet"]),
            **{k: params[k] for k in CALL_PARAMS[method] if k != "packet"},
        }

    def after(self, event: TraceEvent) -> None:
        if event.kind != "call":
            return
        method, result = event.data["method"], event.data["result"]
        if method == "create_channel":
            self.channels[result] = len(self.driver.channels) - 1
        elif method == "allocate_packet" and result is not None:
            self.packets[result] = len(self.driver.packets) - 1


def check_trace(
    events: list[TraceEvent],
    profile: Profile | None = None,
    suppressions: list[Suppression] | None = None,
    path: str = "trace",
) -> TraceReport:
    """Replays every session of ``events`` through the driver; the report of what broke."""
    profile = profile or Profile.default()
    suppressions = suppressions or []
    evidence = Evidence()
    sessions: dict[int, list[TraceEvent]] = {}
    for event in events:
        sessions.setdefault(event.session, []).append(event)
    violations: list[Violation] = []
    suppressed: list[Violation] = []
    for session_events in sessions.values():
        _check_session(session_events, profile, evidence, suppressions, violations, suppressed)
        evidence.end_case()
    violations.sort(key=lambda v: v.seq)
    unused = [s for s in suppressions if not s.used]
    return TraceReport(path, profile, len(events), len(sessions), violations, suppressed,
                       unused, evidence)


def _check_session(
    events: list[TraceEvent],
    profile: Profile,
    evidence: Evidence,
    suppressions: list[Suppression],
    violations: list[Violation],
    suppressed: list[Violation],
) -> None:
    checker = _SessionChecker(events, profile, evidence)
    target = checker.target
    position = 0
    while position < len(events):
        event = events[position]
        position += 1
        if event.kind in ("start", "end", "completion"):
            if event.kind == "completion":
                target.pending.append(_completion(event))
            continue
        # The completion-routine calls recorded after this event belong to it.
        following = position
        while following < len(events) and events[following].kind == "completion":
            target.pending.append(_completion(events[following]))
            following += 1
        position = following
        violation: Violation | None = None
        if event.kind == "error":
            error = event.data["error"]
            violation = Violation(event.session, event.seq, event.line, "target-error",
                                  ("SEED-RETURN",), f"the harness could not perform "
                                  f"{event.data['method']}: {error.get('message', error)}")
        else:
            try:
                step = checker.step_for(event)
                if step is not None:
                    target.current = event
                    checker.driver.execute(step)
                    checker.after(event)
            except ConformanceFailure as failure:
                violation = Violation(event.session, event.seq, event.line, "nonconformance",
                                      failure.requirements, failure.message)
            except StepError as error:
                violation = Violation(event.session, event.seq, event.line, "trace-error", (),
                                      str(error))
        if violation is None:
            continue
        index = events.index(event)
        violation.context = events[max(0, index - CONTEXT_BEFORE):index + CONTEXT_AFTER + 1]
        match = next((s for s in suppressions if s.matches(violation)), None)
        if match is None or violation.kind == "trace-error":
            violations.append(violation)
        else:
            match.used += 1
            violation.suppressed_by = match
            violation.unchecked = len(events) - position
            suppressed.append(violation)
        # The model and the target disagree from here on, so whatever follows would only
        # repeat the violation's consequences: the session's check ends here.
        return


def _completion(event: TraceEvent) -> tuple[int, int, bytes]:
    d = event.data
    return int(d["packet"]), int(d["status"]) & 0xFFFF_FFFF, bytes.fromhex(d["data"])


def format_report(report: TraceReport) -> str:
    """The human-readable report."""
    lines = [f"trace {report.path}: {report.events} events in {report.sessions} session(s), "
             f"profile {report.profile.name}"]
    for violation in report.suppressed:
        assert violation.suppressed_by is not None
        lines.append(f"suppressed at event {violation.seq}: [{', '.join(violation.requirements)}]"
                     f" {violation.message} (by {violation.suppressed_by.describe()}; the "
                     f"{violation.unchecked} later event(s) of session {violation.session} "
                     "were not checked)")
    for violation in report.violations:
        ids = ", ".join(violation.requirements) or "no requirement: the trace itself"
        lines.append("")
        lines.append(f"VIOLATION at event {violation.seq} (line {violation.line}, session "
                     f"{violation.session}, {violation.kind}): [{ids}]")
        lines.append(f"  {violation.message}")
        lines.append("  events around it:")
        for event in violation.context:
            mark = ">" if event.seq == violation.seq else " "
            lines.append(f"  {mark} {event.seq:>6}  {event.describe()}")
    for suppression in report.unused:
        lines.append(f"unused suppression ({suppression.line}): {suppression.describe()}")
    lines.append("")
    if report.passed:
        lines.append(f"PASS: the trace conforms ({len(report.suppressed)} suppressed)")
    else:
        lines.append(f"FAIL: {len(report.violations)} violation(s), {len(report.unused)} unused "
                     f"suppression(s), {len(report.suppressed)} suppressed")
    return "\n".join(lines)
