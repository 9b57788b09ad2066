"""Reading a trace file: every record validated where it is read, with bounds.

A trace (``docs/trace-format.md``) comes from outside: a harness around a real driver writes
it from its own log, so it may hold anything. This module turns its bytes into
:class:`TraceEvent` values whose every field has the type and range the checker relies on, or
raises :class:`TraceFormatError` naming the record, its line and the field:
``FILE: record N (line L): field X: what was wrong``. Records are the events after the header,
numbered from 1; blank lines are skipped but counted in line numbers.

The bounds (through :mod:`conformance.inputs`): the file is at most :data:`MAX_TRACE_BYTES`,
a record nests at most :data:`MAX_RECORD_DEPTH` containers deep, an integer has at most 40
digits, ``NaN``/``Infinity`` are refused; lengths, offsets, flags and NTSTATUS values are u32,
handles, PFNs, transaction ids, ``seq`` and ``session`` u64; arrays are bounded
(:data:`MAX_CAPABILITIES`, :data:`MAX_MDL_SEGMENTS`, :data:`MAX_PFNS`). Nothing is allocated
from a length the trace claims: a ``buffer_length`` must equal the bytes of the recorded
``buffer``, so the hex given is all there is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmbspec.conformance.inputs import (
    InputError,
    decode_text,
    parse_json,
    read_bytes,
    require_dict,
    require_int,
    require_list,
    require_str,
    shorten,
)
from vmbspec.spec.constants import PAGE_SIZE, UINT32_MAX, UINT64_MAX

TRACE_VERSION = 1

#: The largest trace read (split a longer recording per session or per run).
MAX_TRACE_BYTES = 64 * 1024 * 1024
#: A record is at most 5 deep (record, params, mdl, segment, pfns); a little slack.
MAX_RECORD_DEPTH = 8
#: Names and capabilities are short words; a message is a sentence.
MAX_NAME = 200
MAX_MESSAGE = 4000
MAX_CAPABILITIES = 64
#: MDLs in one chain: the spec sets no limit; far beyond any real chain.
MAX_MDL_SEGMENTS = 65_536
#: PFNs of one MDL: ADDRESS_AND_SIZE_TO_SPAN_PAGES(0xFFF, 0xFFFFFFFF), the most any MDL has.
MAX_PFNS = (PAGE_SIZE - 1 + UINT32_MAX + PAGE_SIZE - 1) // PAGE_SIZE
#: An NTSTATUS may be recorded as a signed 32-bit value; it is read as its u32.
INT32_MIN = -(1 << 31)

#: The keys of each event kind besides seq, session and event (the docs' table).
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "start": ("target", "capabilities"),
    "call": ("method", "params", "result"),
    "packet": ("channel", "bytes"),
    "host_complete": ("channel", "transaction_id", "status", "data"),
    "completion": ("packet", "status", "data"),
    "error": ("method", "error"),
    "end": (),
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


class TraceFormatError(InputError):
    """A trace or suppression file that cannot be used; the message names the record."""


@dataclass(frozen=True)
class TraceEvent:
    """One validated event: ``data`` holds exactly the kind's fields (see EVENT_FIELDS)."""

    seq: int
    session: int
    kind: str
    line: int
    data: dict[str, Any]

    def describe(self) -> str:
        d = self.data
        if self.kind == "call":
            params = ", ".join(f"{k}={short_value(v)}" for k, v in d["params"].items())
            result = d["result"]
            shown = "" if result is None else f" -> {short_value(result)}"
            return f"call {d['method']}({params}){shown}"
        if self.kind == "packet":
            body = "none (ring empty)" if d["bytes"] is None else f"{len(d['bytes']) // 2} bytes"
            return f"packet from channel {short_value(d['channel'])}: {body}"
        if self.kind == "host_complete":
            return (f"host_complete channel {short_value(d['channel'])} transaction "
                    f"{d['transaction_id']:#x} status {d['status']:#010x}")
        if self.kind == "completion":
            return (f"completion routine: packet {short_value(d['packet'])} status "
                    f"{d['status']:#010x} data {d['data'][:16] or '-'}")
        if self.kind == "start":
            capabilities = ",".join(printable(c) for c in d["capabilities"])
            return f"start target {printable(d['target'])} capabilities {capabilities}"
        if self.kind == "error":
            return f"error in {printable(d['method'])}: {printable(d['error']['message'])}"
        return self.kind

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "session": self.session, "event": self.kind,
                "line": self.line, **self.data}


def printable(text: str, limit: int = 200) -> str:
    """``text`` from a trace, safe to print on one line: control characters escaped, cut."""
    cleaned = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit + 1])
    return shorten(cleaned, limit)


def short_value(value: Any) -> str:
    """A field value in a few characters, for one-line event descriptions."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return f"{value:#x}" if value > 9 else str(value)
    if isinstance(value, str):
        return value if len(value) <= 16 else f"{value[:16]}…({len(value) // 2} bytes)"
    return printable(json.dumps(value), 40)


# -- reading ----------------------------------------------------------------------------------


def load_trace(path: Path | str) -> list[TraceEvent]:
    """Every event of the trace at ``path``, validated; TraceFormatError names the record."""
    try:
        data = read_bytes(path, "trace", MAX_TRACE_BYTES)
    except TraceFormatError:
        raise
    except InputError as error:
        raise TraceFormatError(str(error)) from error
    return parse_trace(data, str(path))


def parse_trace(data: bytes | str, name: str = "trace") -> list[TraceEvent]:
    """The events of a trace's contents; ``name`` is the file name used in errors."""
    if isinstance(data, bytes):
        if len(data) > MAX_TRACE_BYTES:
            raise TraceFormatError(f"{name}: larger than {MAX_TRACE_BYTES} bytes: not a trace")
        try:
            text = decode_text(data, name)
        except InputError as error:
            raise TraceFormatError(str(error)) from error
    else:
        text = data
    events: list[TraceEvent] = []
    header_seen = False
    last_seq: int | None = None
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if not line.strip():
            continue
        if not header_seen:
            _check_header(_parse_line(line, f"{name}: line {number}: header"),
                          f"{name}: line {number}")
            header_seen = True
            continue
        record = _Record(name, len(events) + 1, number)
        event = record.event(_parse_line(line, record.where))
        if last_seq is not None and event.seq <= last_seq:
            raise record.error("seq", f"{event.seq} does not follow {last_seq} (seq must "
                               "increase through the file)")
        last_seq = event.seq
        events.append(event)
    if not header_seen:
        raise TraceFormatError(f"{name}: empty file, not a vmbspec trace")
    return events


def _parse_line(line: str, where: str) -> Any:
    try:
        return parse_json(line, where, MAX_RECORD_DEPTH)
    except InputError as error:
        # One line holds one document: its "line 1" is the record's own line.
        raise TraceFormatError(str(error).replace(" at line 1 column ", " at column ")) \
            from error


def _check_header(document: Any, where: str) -> None:
    version = document.get("vmbspec_trace") if isinstance(document, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version != TRACE_VERSION:
        raise TraceFormatError(
            f"{where}: not a vmbspec trace (the first line must be a header with "
            f'"vmbspec_trace": {TRACE_VERSION})'
        )


class _Record:
    """The validation of one record; every error names the file, record, line and field."""

    def __init__(self, name: str, number: int, line: int) -> None:
        self.line = line
        self.where = f"{name}: record {number} (line {line})"

    def error(self, field: str, message: str) -> TraceFormatError:
        return TraceFormatError(f"{self.where}: field {field}: {message}")

    def _field(self, field: str) -> str:
        return f"{self.where}: field {field}"

    def _check(self, check: Callable[[], Any]) -> Any:
        try:
            return check()
        except TraceFormatError:
            raise
        except InputError as error:
            raise TraceFormatError(str(error)) from error

    def get(self, container: dict[str, Any], key: str, path: str) -> Any:
        if key not in container:
            raise self.error(path, "missing")
        return container[key]

    def u32(self, value: Any, field: str) -> int:
        return int(self._check(lambda: require_int(value, self._field(field), 0, UINT32_MAX)))

    def u64(self, value: Any, field: str) -> int:
        return int(self._check(lambda: require_int(value, self._field(field), 0, UINT64_MAX)))

    def optional_u64(self, value: Any, field: str) -> int | None:
        return None if value is None else self.u64(value, field)

    def status(self, value: Any, field: str) -> int:
        number = self._check(lambda: require_int(value, self._field(field), INT32_MIN,
                                                 UINT32_MAX))
        return int(number) & UINT32_MAX

    def text(self, value: Any, field: str, limit: int = MAX_NAME) -> str:
        return str(self._check(lambda: require_str(value, self._field(field), limit)))

    def array(self, value: Any, field: str, limit: int) -> list[Any]:
        return list(self._check(lambda: require_list(value, self._field(field), limit)))

    def object(self, value: Any, field: str) -> dict[str, Any]:
        return dict(self._check(lambda: require_dict(value, self._field(field))))

    def hex(self, value: Any, field: str) -> str:
        """A hex string of whole bytes (no spaces); the bytes are decoded later from it."""
        text = self.text(value, field, 2 * MAX_TRACE_BYTES)
        if len(text) % 2:
            raise self.error(field, f"hex of {len(text)} digits is not whole bytes")
        try:
            decoded = bytes.fromhex(text)
        except ValueError:
            decoded = b""
        if len(decoded) * 2 != len(text):
            raise self.error(field, f"not hex: {printable(text, 40)!r}")
        return text

    def optional_hex(self, value: Any, field: str) -> str | None:
        return None if value is None else self.hex(value, field)

    # -- the record -------------------------------------------------------------------------

    def event(self, document: Any) -> TraceEvent:
        document = self.object(document, "(the record)")
        kind = self.text(self.get(document, "event", "event"), "event", 40)
        if kind not in EVENT_FIELDS:
            raise self.error("event", f"unknown event {printable(kind, 40)!r}; events: "
                             f"{', '.join(EVENT_FIELDS)}")
        seq = self.u64(self.get(document, "seq", "seq"), "seq")
        session = self.u64(self.get(document, "session", "session"), "session")
        for key in EVENT_FIELDS[kind]:
            self.get(document, key, key)
        data: dict[str, Any] = _EVENT_CHECKS[kind](self, document)
        return TraceEvent(seq, session, kind, self.line, data)

    def _start(self, d: dict[str, Any]) -> dict[str, Any]:
        capabilities = self.array(d["capabilities"], "capabilities", MAX_CAPABILITIES)
        return {
            "target": self.text(d["target"], "target"),
            "capabilities": [self.text(c, f"capabilities[{i}]", MAX_NAME)
                             for i, c in enumerate(capabilities)],
        }

    def _call(self, d: dict[str, Any]) -> dict[str, Any]:
        method = self.text(d["method"], "method", 40)
        if method not in CALL_PARAMS:
            raise self.error("method", f"unknown call {printable(method, 40)!r}; calls: "
                             f"{', '.join(CALL_PARAMS)}")
        raw = self.object(d["params"], "params")
        unknown = sorted(set(raw) - set(CALL_PARAMS[method]))
        if unknown:
            raise self.error("params", f"{method} has no parameter "
                             f"{printable(unknown[0], 40)!r}")
        params = {name: self.get(raw, name, f"params.{name}") for name in CALL_PARAMS[method]}
        return {"method": method, "params": _PARAM_CHECKS[method](self, params),
                "result": _RESULT_CHECKS[method](self, d["result"], "result")}

    def _send_params(self, p: dict[str, Any]) -> dict[str, Any]:
        buffer = self.optional_hex(p["buffer"], "params.buffer")
        buffer_length = self.u32(p["buffer_length"], "params.buffer_length")
        checked = {
            "packet": self.u64(p["packet"], "params.packet"),
            "buffer": buffer,
            "buffer_length": buffer_length,
            "mdl": self._mdl(p["mdl"], "params.mdl"),
            "mdl_offset": self.u32(p["mdl_offset"], "params.mdl_offset"),
            "mdl_length": self.u32(p["mdl_length"], "params.mdl_length"),
            "flags": self.u32(p["flags"], "params.flags"),
        }
        if buffer is not None and len(buffer) // 2 != buffer_length:
            # The recording holds the in-line bytes the call passed: BufferLength of them.
            raise self.error("params.buffer_length", f"{buffer_length}, but "
                             f"params.buffer holds {len(buffer) // 2} byte(s)")
        return checked

    def _mdl(self, value: Any, field: str) -> list[list[Any]] | None:
        if value is None:
            return None
        segments = self.array(value, field, MAX_MDL_SEGMENTS)
        if not segments:
            raise self.error(field, "an MDL chain has at least one MDL (null for no chain)")
        chain = []
        for index, segment in enumerate(segments):
            where = f"{field}[{index}]"
            items = self.array(segment, where, 3)
            if len(items) != 3:
                raise self.error(where, "an MDL is [byte_offset, byte_count, [pfn, ...]]")
            pfns = self.array(items[2], f"{where}[2]", MAX_PFNS)
            chain.append([
                self.u32(items[0], f"{where}[0] (byte_offset)"),
                self.u32(items[1], f"{where}[1] (byte_count)"),
                [self.u64(pfn, f"{where}[2][{i}] (pfn)") for i, pfn in enumerate(pfns)],
            ])
        return chain

    def _packet(self, d: dict[str, Any]) -> dict[str, Any]:
        return {"channel": self.u64(d["channel"], "channel"),
                "bytes": self.optional_hex(d["bytes"], "bytes")}

    def _host_complete(self, d: dict[str, Any]) -> dict[str, Any]:
        return {"channel": self.u64(d["channel"], "channel"),
                "transaction_id": self.u64(d["transaction_id"], "transaction_id"),
                "status": self.status(d["status"], "status"),
                "data": self.hex(d["data"], "data")}

    def _completion(self, d: dict[str, Any]) -> dict[str, Any]:
        return {"packet": self.u64(d["packet"], "packet"),
                "status": self.status(d["status"], "status"),
                "data": self.hex(d["data"], "data")}

    def _error(self, d: dict[str, Any]) -> dict[str, Any]:
        error = self.object(d["error"], "error")
        message = error.get("message", "")
        code = error.get("code")
        return {
            "method": self.text(d["method"], "method", 40),
            "error": {
                "code": None if code is None else self._check(
                    lambda: require_int(code, self._field("error.code"), -(1 << 63),
                                        (1 << 63) - 1)),
                "message": self.text(message, "error.message", MAX_MESSAGE),
            },
        }


def _none(record: _Record, value: Any, field: str) -> None:
    if value is not None:
        raise record.error(field, "must be null (the call returns nothing)")


def _handle(record: _Record, value: Any, field: str) -> int:
    return record.u64(value, field)


def _optional_handle(record: _Record, value: Any, field: str) -> int | None:
    return record.optional_u64(value, field)


def _status(record: _Record, value: Any, field: str) -> int:
    return record.status(value, field)


_EVENT_CHECKS: dict[str, Callable[[_Record, dict[str, Any]], dict[str, Any]]] = {
    "start": _Record._start,
    "call": _Record._call,
    "packet": _Record._packet,
    "host_complete": _Record._host_complete,
    "completion": _Record._completion,
    "error": _Record._error,
    "end": lambda _record, _document: {},
}

_PARAM_CHECKS: dict[str, Callable[[_Record, dict[str, Any]], dict[str, Any]]] = {
    "create_channel": lambda r, p: {"ring_data_size": r.u32(p["ring_data_size"],
                                                            "params.ring_data_size")},
    "open_channel": lambda r, p: {"channel": r.u64(p["channel"], "params.channel")},
    "disable_channel": lambda r, p: {"channel": r.u64(p["channel"], "params.channel")},
    "allocate_packet": lambda r, p: {"channel": r.u64(p["channel"], "params.channel")},
    "free_packet": lambda r, p: {"packet": r.u64(p["packet"], "params.packet")},
    "send_with_external_mdl": _Record._send_params,
}

#: What each call returns: create_channel a handle, allocate_packet a handle or null (no
#: packet), send an NTSTATUS, the others nothing.
_RESULT_CHECKS: dict[str, Callable[[_Record, Any, str], Any]] = {
    "create_channel": _handle,
    "open_channel": _none,
    "disable_channel": _none,
    "allocate_packet": _optional_handle,
    "free_packet": _none,
    "send_with_external_mdl": _status,
}
