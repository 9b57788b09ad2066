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

Reading and validating the file is :mod:`conformance.trace_format` (every record typed and
bounded where it is read); suppression files are :mod:`conformance.suppressions`.

A violation is reported with the requirement IDs the driver names and the events around it.
Its kind says whose it is: ``nonconformance`` and ``target-error`` are the target's;
``caller-error`` (the recorded caller broke its own side of the contract: opened a channel
twice, freed a packet in the ring, sent a busy packet to a target that does not promise to
survive it) and ``trace-error`` (the recording cannot be followed) make the trace *invalid*:
they are never blamed on the target nor suppressed, and the report's verdict is
``invalid-trace`` (exit status 2), with whatever the other sessions showed.
Suppressions (a TOML file) name a requirement ID and/or an event, each with a reason; a
suppressed violation is listed and, like any violation, ends the check of its session (the
model and the target disagree from there on, so later reports would be its consequences); the
report says how many events that left unchecked. A suppression that matches nothing is
reported, so a fixed issue's suppression must be removed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from vmbspec.conformance import steps as step_schema
from vmbspec.conformance.driver import ConformanceFailure, Driver, Evidence, Step, StepError
from vmbspec.conformance.suppressions import Suppression, load_suppressions, parse_suppressions
from vmbspec.conformance.trace_format import (
    CALL_PARAMS,
    EVENT_FIELDS,
    TRACE_VERSION,
    TraceEvent,
    TraceFormatError,
    load_trace,
    parse_trace,
    printable,
    short_value,
)
from vmbspec.spec.errors import SpecError, SpecViolation
from vmbspec.spec.lifecycle import PacketState
from vmbspec.spec.readings import Profile

__all__ = [
    "CALL_PARAMS", "EVENT_FIELDS", "TRACE_VERSION", "Suppression", "TraceEvent",
    "TraceFormatError", "TraceReport", "TraceTarget", "Violation", "check_trace",
    "format_report", "load_suppressions", "load_trace", "parse_suppressions", "parse_trace",
]

#: Events shown before and after a violation.
CONTEXT_BEFORE = 4
CONTEXT_AFTER = 3

#: Kinds of violation that make the trace itself unusable: not the target's doing.
INVALID_KINDS = ("trace-error", "caller-error")


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
    #: "nonconformance" and "target-error" are the target's; "caller-error" (the recorded
    #: caller broke its side of the contract) and "trace-error" (the trace cannot be followed)
    #: make the trace invalid and blame nobody.
    kind: str
    requirements: tuple[str, ...]
    message: str
    context: list[TraceEvent] = field(default_factory=list)
    suppressed_by: Suppression | None = None
    #: Events of the session after a suppressed violation, which were not checked.
    unchecked: int = 0

    @property
    def invalidates_trace(self) -> bool:
        return self.kind in INVALID_KINDS

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
    def invalid(self) -> list[Violation]:
        """The caller errors and trace errors: what makes the trace unusable."""
        return [v for v in self.violations if v.invalidates_trace]

    @property
    def valid(self) -> bool:
        return not self.invalid

    @property
    def passed(self) -> bool:
        return not self.violations and not self.unused

    @property
    def verdict(self) -> str:
        """``invalid-trace`` (exit 2), ``conforms`` (0) or ``does-not-conform`` (1)."""
        if not self.valid:
            return "invalid-trace"
        return "conforms" if self.passed else "does-not-conform"

    @property
    def exit_status(self) -> int:
        return {"conforms": 0, "does-not-conform": 1, "invalid-trace": 2}[self.verdict]

    def as_json(self) -> dict[str, Any]:
        return {
            "trace": self.path,
            "profile": self.profile.name,
            "events": self.events,
            "sessions": self.sessions,
            "verdict": self.verdict,
            "valid": self.valid,
            "passed": self.passed,
            "violations": [v.as_json() for v in self.violations],
            "suppressed": [v.as_json() for v in self.suppressed],
            "unused_suppressions": [s.as_json() for s in self.unused],
            "requirements_exercised": dict(sorted(self.evidence.steps.items())),
        }


class _CallerError(Exception):
    """A recorded call that breaks the caller's side of the contract."""

    def __init__(self, requirements: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.requirements = requirements
        self.message = message


class _SessionChecker:
    def __init__(self, events: list[TraceEvent], profile: Profile, evidence: Evidence) -> None:
        self.events = events
        self.profile = profile
        self.evidence = evidence
        start = events[0] if events and events[0].kind == "start" else None
        name = start.data["target"] if start else "trace"
        capabilities = start.data["capabilities"] if start else []
        self.target = TraceTarget(str(name), [str(c) for c in capabilities])
        self.driver = Driver(self.target, profile, evidence, step_schema.TRACE_LIMITS)
        self.capabilities = self.target.capabilities
        self.channels: dict[int, int] = {}
        self.packets: dict[int, int] = {}

    def _channel(self, handle: Any) -> int:
        if handle not in self.channels:
            raise TraceMismatch(f"channel {short_value(handle)} was never returned by "
                                "create_channel in this session")
        return self.channels[handle]

    def _packet(self, handle: Any) -> int:
        if handle not in self.packets:
            raise TraceMismatch(f"packet {short_value(handle)} was never returned by "
                                "allocate_packet in this session")
        return self.packets[handle]

    def step_for(self, event: TraceEvent) -> Step | None:
        d = event.data
        if event.kind == "packet":
            return {"op": "host_take", "channel": self._channel(d["channel"])}
        if event.kind == "host_complete":
            index = self._channel(d["channel"])
            taken = self.driver.channels[index].taken.get(d["transaction_id"])
            if taken is None:
                raise TraceMismatch(f"the host completed transaction {d['transaction_id']:#x}, "
                                    "which it never took from that channel")
            return {"op": "host_complete", "packet": taken.packet, "status": d["status"],
                    "data": d["data"]}
        if event.kind != "call":
            return None
        method, params = d["method"], d["params"]
        if method == "create_channel":
            size = params["ring_data_size"]
            if size < 4096 or size % 4096:
                raise TraceMismatch(f"create_channel of a {size}-byte ring: the harness's rings "
                                    "are a positive multiple of 4096 bytes")
            return {"op": "create_channel", "ring_data_size": size}
        if method in ("open_channel", "disable_channel", "allocate_packet"):
            op = {"open_channel": "open", "disable_channel": "disable",
                  "allocate_packet": "allocate"}[method]
            return {"op": op, "channel": self._channel(params["channel"])}
        if method == "free_packet":
            return {"op": "free", "packet": self._packet(params["packet"])}
        packet = self._packet(params["packet"])
        self._check_sendable(packet)
        return {
            "op": "send",
            "packet": packet,
            **{k: params[k] for k in CALL_PARAMS[method] if k != "packet"},
        }

    def _check_sendable(self, index: int) -> None:
        # READ-A10: sending a packet that is not idle or completed breaks the caller's
        # contract; only a target that declares robust-contract-violations can be judged on it.
        state = self.driver.packets[index].state
        if state in (PacketState.IDLE, PacketState.COMPLETED):
            return
        if "robust-contract-violations" not in self.capabilities:
            raise _CallerError(
                ("READ-A10", "SEED-ASSOCIATE"),
                f"send on a {state.value} packet: only an idle or completed packet may be sent, "
                "and the trace's target does not declare robust-contract-violations",
            )

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
        violation = _check_session(session_events, profile, evidence)
        evidence.end_case()
        if violation is None:
            continue
        match = next((s for s in suppressions if s.matches(violation)), None)
        if match is None or violation.invalidates_trace:
            violations.append(violation)
        else:
            match.used += 1
            violation.suppressed_by = match
            suppressed.append(violation)
    violations.sort(key=lambda v: v.seq)
    unused = [s for s in suppressions if not s.used]
    return TraceReport(path, profile, len(events), len(sessions), violations, suppressed,
                       unused, evidence)


def _check_session(
    events: list[TraceEvent], profile: Profile, evidence: Evidence
) -> Violation | None:
    """The session's first violation, or None. A violation ends the session's check: the
    model and the target disagree from there on, so whatever follows would only repeat its
    consequences."""
    checker = _SessionChecker(events, profile, evidence)
    target = checker.target
    position = 0
    while position < len(events):
        index = position
        event = events[position]
        position += 1
        if event.kind in ("start", "end", "completion"):
            if event.kind == "completion":
                target.pending.append(_completion(event))
            continue
        # The completion-routine calls recorded after this event belong to it.
        while position < len(events) and events[position].kind == "completion":
            target.pending.append(_completion(events[position]))
            position += 1
        violation = _check_event(checker, event)
        if violation is not None:
            violation.context = events[max(0, index - CONTEXT_BEFORE):index + CONTEXT_AFTER + 1]
            violation.unchecked = len(events) - position
            return violation
    return None


def _check_event(checker: _SessionChecker, event: TraceEvent) -> Violation | None:
    def violation(kind: str, requirements: tuple[str, ...], message: str) -> Violation:
        return Violation(event.session, event.seq, event.line, kind, requirements, message)

    if event.kind == "error":
        error = event.data["error"]
        return violation("target-error", ("SEED-RETURN",), f"the harness could not perform "
                         f"{printable(event.data['method'])}: {printable(error['message'])}")
    caller = event.kind == "call"
    try:
        step = checker.step_for(event)
        if step is not None:
            checker.target.current = event
            checker.driver.execute(step)
            checker.after(event)
    except ConformanceFailure as failure:
        return violation("nonconformance", failure.requirements, failure.message)
    except _CallerError as error:
        return violation("caller-error", error.requirements, error.message)
    except (StepError, SpecError) as error:
        # An event the lifecycles do not allow (the driver raises the spec's SpecViolation or
        # a StepError caused by it): by the caller (open twice, free a packet in the ring...),
        # a breach of its contract; by the host side, a trace that cannot be.
        rule = _cause(error, SpecViolation)
        if isinstance(rule, SpecViolation):
            if caller:
                return violation("caller-error", (rule.requirement,),
                                 f"the caller broke its contract: {rule.message}")
            return violation("trace-error", (), f"the host side did what cannot happen: "
                             f"{rule.message}")
        return violation("trace-error", (), f"the checker cannot follow this event: {error}")
    except Exception as error:
        # The driver may wrap what the recording's target raised (conformance.guard); a
        # mismatch of the recording is still the trace's, anything else is ours.
        mismatch = _cause(error, TraceMismatch)
        if mismatch is None:
            raise
        return violation("trace-error", (), str(mismatch))
    return None


def _cause(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _completion(event: TraceEvent) -> tuple[int, int, bytes]:
    d = event.data
    return int(d["packet"]), int(d["status"]), bytes.fromhex(d["data"])


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
        lines.append("")
        lines.append(_headline(violation))
        lines.append(f"  {violation.message}")
        lines.append("  events around it:")
        for event in violation.context:
            mark = ">" if event.seq == violation.seq else " "
            lines.append(f"  {mark} {event.seq:>6}  {event.describe()}")
    for suppression in report.unused:
        lines.append(f"unused suppression ({suppression.line}): {suppression.describe()}")
    lines.append("")
    lines.append(_summary(report))
    return "\n".join(lines)


def _headline(violation: Violation) -> str:
    where = (f"event {violation.seq} (line {violation.line}, session {violation.session}, "
             f"{violation.kind})")
    if violation.kind == "caller-error":
        return (f"INVALID TRACE at {where}: the recorded caller broke "
                f"[{', '.join(violation.requirements)}], not the target")
    if violation.kind == "trace-error":
        return f"INVALID TRACE at {where}: the trace cannot be followed"
    return f"VIOLATION at {where}: [{', '.join(violation.requirements)}]"


def _summary(report: TraceReport) -> str:
    if not report.valid:
        found = len(report.violations) - len(report.invalid)
        return (f"INVALID TRACE: {len(report.invalid)} session(s) cannot be judged past a "
                f"caller or trace error (not the target's fault); {found} violation(s) in "
                f"the others, {len(report.unused)} unused suppression(s), "
                f"{len(report.suppressed)} suppressed")
    if report.passed:
        return f"PASS: the trace conforms ({len(report.suppressed)} suppressed)"
    return (f"FAIL: {len(report.violations)} violation(s), {len(report.unused)} unused "
            f"suppression(s), {len(report.suppressed)} suppressed")
