"""The remote target protocol, version 1: methods, parameters, results, error codes.

Theory of operation
-------------------
This module is the protocol as data, shared by the client (:mod:`adapters.remote.client`) and
the reference agent (:mod:`adapters.remote.server`); ``docs/remote-protocol.md`` is the same
text for people. It knows JSON-RPC 2.0 envelopes and the value encodings (bytes as lowercase
hex, MDL chains as nested arrays); it knows nothing of sockets, processes or the spec.

The target methods mirror the target interface (``conformance/target.py``) one for one, with
named parameters. :data:`METHODS` lists each with its parameters as ``name -> kind``, where a
kind is one of :data:`KINDS`; :func:`check_params` validates a request's params against it
(the agent's side: besides types and ranges, a ring of whole pages, MDLs a Windows MDL can
describe, a buffer no shorter than ``buffer_length``), and :func:`check_result` a reply's
result (the client's side). A failed check is a :class:`ValueError` whose text names the
parameter. Integers are JSON integer literals only: ``4096.0`` and ``true`` are not integers.

Reading a message
-----------------
Both sides read what the other wrote with :func:`decode_message`, never with a bare
``json.loads``: a message comes from outside and may be anything. It must be UTF-8, nest at most
:data:`MAX_DEPTH` arrays and objects deep (checked on the bytes, before parsing, so a
thousand-deep message cannot exhaust the parser's recursion), hold no integer literal of more
than :data:`MAX_INT_DIGITS` digits, and no ``NaN``, ``Infinity`` or number that overflows to
them. Anything else is a :class:`MessageError` saying what was wrong; the agent answers it with
a parse error and goes on, the client turns it into a ``crash`` verdict. Texts that come from
the other side and end up in a message or a report are cut by :func:`clip`.
"""

from __future__ import annotations

import json
import math
import operator
import re
from itertools import accumulate, count
from typing import Any

#: The protocol version this module speaks; the handshake states it.
PROTOCOL_VERSION = 1

U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF
#: An MDL's ByteOffset is the offset of its first byte inside its first page: below this.
PAGE_SIZE = 4096

# -- JSON-RPC 2.0 error codes (the specification's reserved ones, then ours) --------------------
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
#: The backend reported a failure the target interface has no result for.
TARGET_ERROR = -32000
#: A target method before ``initialize``.
NOT_INITIALIZED = -32001
#: ``initialize`` asked for a protocol version the agent does not speak.
UNSUPPORTED_VERSION = -32002
#: A request longer than the agent's message limit (the agent skips the rest of that line).
MESSAGE_TOO_LARGE = -32003
#: The backend itself crashed or hung (``data.kind`` is "crash" or "hang"); its state is lost.
TARGET_FAULT = -32004
#: The agent already serves its maximum of connections; it sends this (id null) and closes.
TOO_MANY_CONNECTIONS = -32005
#: The connection sent nothing for the agent's idle deadline; it sends this (id null), closes.
IDLE_TIMEOUT = -32006

ERROR_NAMES = {
    PARSE_ERROR: "parse error",
    INVALID_REQUEST: "invalid request",
    METHOD_NOT_FOUND: "method not found",
    INVALID_PARAMS: "invalid params",
    INTERNAL_ERROR: "internal error",
    TARGET_ERROR: "target error",
    NOT_INITIALIZED: "not initialized",
    UNSUPPORTED_VERSION: "unsupported protocol version",
    MESSAGE_TOO_LARGE: "message too large",
    TARGET_FAULT: "target fault",
    TOO_MANY_CONNECTIONS: "too many connections",
    IDLE_TIMEOUT: "idle timeout",
}

# -- limits on what is read -----------------------------------------------------------------

#: The deepest nesting a message needs is 5 (a batch, a request, its params, an MDL chain, a
#: segment's PFNs); a message nested deeper than this is refused before it is parsed.
MAX_DEPTH = 32
#: Digits in an integer literal: a u64 has 20; anything much longer is not a size or a handle.
MAX_INT_DIGITS = 40
#: Requests in one batch (the client never sends batches; this bounds an agent's work per line).
MAX_BATCH = 100
#: Characters of a string id (JSON-RPC allows strings; the client uses integers).
MAX_ID_CHARS = 256
#: Characters kept of a text that comes from the other side (an error message, a name, data).
MAX_TEXT = 300

# -- value kinds ----------------------------------------------------------------------------
KINDS = ("u32", "u64", "handle", "hex", "hex?", "mdl?", "handle?", "none", "completions")

#: Target methods: params (name -> kind) and the result's kind.
METHODS: dict[str, tuple[dict[str, str], str]] = {
    "create_channel": ({"ring_data_size": "u32"}, "handle"),
    "open_channel": ({"channel": "handle"}, "none"),
    "disable_channel": ({"channel": "handle"}, "none"),
    "allocate_packet": ({"channel": "handle"}, "handle?"),
    "free_packet": ({"packet": "handle"}, "none"),
    "send_with_external_mdl": (
        {
            "packet": "handle",
            "buffer": "hex?",
            "buffer_length": "u32",
            "mdl": "mdl?",
            "mdl_offset": "u32",
            "mdl_length": "u32",
            "flags": "u32",
        },
        "u32",
    ),
    "host_take_packet": ({"channel": "handle"}, "hex?"),
    "host_complete": (
        {"channel": "handle", "transaction_id": "u64", "status": "u32", "data": "hex"},
        "none",
    ),
    "completions": ({}, "completions"),
    "ring_bytes": ({"channel": "handle"}, "hex"),
}

#: Session methods: the handshake, a fresh target, the end.
SESSION_METHODS = ("initialize", "reset", "shutdown")

#: Bytes in a request: two hex digits a byte, either case, nothing else.
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(name: str, value: Any, limit: int) -> int:
    if not _is_int(value) or not 0 <= value <= limit:
        raise ValueError(f"{name} must be an integer in [0, {limit:#x}], not {value!r:.40}")
    return int(value)


def _check_hex(name: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a hex string, not {type(value).__name__}")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{name} is not valid hex: {value[:40]!r}") from None


def span_pages(byte_offset: int, byte_count: int) -> int:
    """wdm.h ADDRESS_AND_SIZE_TO_SPAN_PAGES: the pages, hence the PFNs, of an MDL whose first
    byte is at ``byte_offset`` (below :data:`PAGE_SIZE`) of its first page. Unbounded ints."""
    return (byte_offset + byte_count + PAGE_SIZE - 1) // PAGE_SIZE


def decode_mdl(name: str, value: Any) -> tuple[tuple[int, int, tuple[int, ...]], ...]:
    """``[[byte_offset, byte_count, [pfn, ...]], ...]`` -> the target interface's tuples.

    Only a chain a Windows MDL can describe (``docs/remote-protocol.md``, "The send's
    parameters"): at least one MDL (``null`` is the NULL pointer), each with a ByteOffset below
    4096 and exactly ADDRESS_AND_SIZE_TO_SPAN_PAGES(ByteOffset, ByteCount) PFNs. Anything else
    is no call a driver can be given, so it is the sender's mistake: ValueError."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"{name} must be null or a non-empty array of "
                         "[byte_offset, byte_count, [pfn, ...]]")
    chain = []
    for index, segment in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(segment, list) or len(segment) != 3 or not isinstance(
            segment[2], list
        ):
            raise ValueError(f"{where} must be [byte_offset, byte_count, [pfn, ...]]")
        byte_offset = _check_int(f"{where}.byte_offset", segment[0], PAGE_SIZE - 1)
        byte_count = _check_int(f"{where}.byte_count", segment[1], U32_MAX)
        expected = span_pages(byte_offset, byte_count)
        if len(segment[2]) != expected:
            raise ValueError(f"{where} has {len(segment[2])} PFNs; an MDL with byte_offset "
                             f"{byte_offset:#x} and byte_count {byte_count:#x} has exactly "
                             f"{expected}")
        pfns = tuple(_check_int(f"{where}.pfn", p, U64_MAX) for p in segment[2])
        chain.append((byte_offset, byte_count, pfns))
    return tuple(chain)


def encode_mdl(chain: Any) -> list[list[Any]] | None:
    if chain is None:
        return None
    return [[int(bo), int(bc), [int(p) for p in pfns]] for bo, bc, pfns in chain]


def decode_value(name: str, kind: str, value: Any) -> Any:
    """A parameter or result of ``kind`` from its JSON form, as the target interface takes it."""
    optional = kind.endswith("?")
    if optional and value is None:
        return None
    base = kind.rstrip("?")
    if base == "u32":
        return _check_int(name, value, U32_MAX)
    if base in ("u64", "handle"):
        return _check_int(name, value, U64_MAX)
    if base == "hex":
        return _check_hex(name, value)
    if base == "mdl":
        return decode_mdl(name, value)
    if base == "none":
        if value is not None:
            raise ValueError(f"{name} must be null")
        return None
    if base == "completions":
        if not isinstance(value, list):
            raise ValueError(f"{name} must be an array of completion objects")
        calls = []
        for index, call in enumerate(value):
            if not isinstance(call, dict) or set(call) != {"packet", "status", "data"}:
                raise ValueError(f"{name}[{index}] must be {{packet, status, data}}")
            calls.append((
                _check_int(f"{name}[{index}].packet", call["packet"], U64_MAX),
                _check_int(f"{name}[{index}].status", call["status"], U32_MAX),
                _check_hex(f"{name}[{index}].data", call["data"]),
            ))
        return calls
    raise ValueError(f"unknown kind {kind!r}")  # pragma: no cover - METHODS is fixed


def encode_value(kind: str, value: Any) -> Any:
    """The JSON form of a target-interface value of ``kind``."""
    if value is None:
        return None
    base = kind.rstrip("?")
    if base == "hex":
        return bytes(value).hex()
    if base == "mdl":
        return encode_mdl(value)
    if base == "completions":
        return [{"packet": int(p), "status": int(s), "data": bytes(d).hex()} for p, s, d in value]
    if base == "none":
        return None
    return int(value)


def named_params(method: str, params: Any, allowed: Any, required: Any = ()) -> dict[str, Any]:
    """``params`` as an object of names from ``allowed`` holding every name of ``required``;
    absent or ``null`` params are ``{}``. ValueError naming what is wrong."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValueError(f"{method} takes named params (an object), not "
                         f"{type(params).__name__}")
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"{method} has no parameter(s) {', '.join(unknown)}")
    missing = [name for name in required if name not in params]
    if missing:
        raise ValueError(f"{method} is missing parameter(s) {', '.join(missing)}")
    return params


def check_params(method: str, params: Any) -> dict[str, Any]:
    """The decoded params of a target method; ValueError naming what is wrong.

    Every parameter is required and none other is allowed. ``create_channel``: the ring's
    data size is a positive multiple of 4096. ``send_with_external_mdl``: a ``buffer`` must
    hold at least ``buffer_length`` bytes (it may hold more; the driver is told
    ``buffer_length``)."""
    spec, _ = METHODS[method]
    params = named_params(method, params, spec, spec)
    for name, kind in spec.items():
        value = params[name]
        if kind.rstrip("?") == "hex" and isinstance(value, str) and not _HEX.fullmatch(value):
            # bytes.fromhex would also take spaces between bytes; a C harness would not.
            raise ValueError(f"{name} is not valid hex (two digits a byte, nothing else): "
                             f"{value[:40]!r}")
    decoded = {name: decode_value(name, kind, params[name]) for name, kind in spec.items()}
    size = decoded.get("ring_data_size")
    if size is not None and (size == 0 or size % PAGE_SIZE):
        raise ValueError(f"ring_data_size {size:#x} is not a positive multiple of {PAGE_SIZE}")
    buffer = decoded.get("buffer")
    if buffer is not None and len(buffer) < decoded["buffer_length"]:
        raise ValueError(f"buffer holds {len(buffer)} bytes, fewer than buffer_length "
                         f"{decoded['buffer_length']}")
    return decoded


def check_result(method: str, result: Any) -> Any:
    _, kind = METHODS[method]
    return decode_value(f"the result of {method}", kind, result)


# -- reading and writing messages -----------------------------------------------------------


class MessageError(ValueError):
    """A line that is not a message this protocol can read; the text says why."""


#: A JSON string: quotes around anything but quotes and backslashes, or escapes.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: Keeps only brackets: an opening one becomes 2, a closing one 0 (see nesting_depth).
_BRACKETS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nesting_depth(line: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest, from its bytes, without parsing
    (and without recursion): brackets inside strings do not count. For a text that is not JSON
    the figure is an estimate, which is enough to refuse it."""
    brackets = _STRING.sub(b'""', line).translate(_BRACKETS, _NOT_BRACKETS)
    # After k+1 brackets, the running sum of 2 per opening one is 2 * opened; the depth is
    # opened - closed = 2 * opened - (k + 1). Iterators in C keep an 8 MiB line quick.
    return max(map(operator.sub, accumulate(brackets), count(1)), default=0)


def _refuse_constant(name: str) -> Any:
    raise MessageError(f"{name} is not a JSON number")


def _bounded_int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise MessageError(f"an integer of {digits} digits (at most {MAX_INT_DIGITS})")
    return int(literal)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise MessageError(f"the number {literal[:40]} overflows")
    return value


def decode_message(line: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """One message from one line, within the limits of the module docstring; MessageError."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MessageError(f"not JSON: not UTF-8 (byte {error.start})") from None
    if line.count(b"[") + line.count(b"{") > max_depth:  # else it cannot nest too deep
        depth = nesting_depth(line)
        if depth > max_depth:
            raise MessageError(f"nested {depth} levels deep (at most {max_depth})")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_int=_bounded_int,
                          parse_float=_finite_float)
    except MessageError:
        raise
    except json.JSONDecodeError as error:
        raise MessageError(f"not JSON: {error.msg} at column {error.colno}") from None
    except (ValueError, RecursionError) as error:  # a guard of Python's own
        raise MessageError(f"not readable JSON: {clip(str(error), 80)}") from None


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` on one line (line breaks shown as ``\\n``) and cut to ``limit`` characters,
    saying how many were left out: for texts from the other side (an agent's error message,
    its stderr, a name) on their way into a one-line error or a report."""
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters left out)"
    return text.replace("\r", "\\r").replace("\n", "\\n")


def clip_data(data: Any, limit: int = MAX_TEXT) -> Any:
    """An error's ``data`` as it came if its JSON is short, else that JSON clipped."""
    try:
        text = json.dumps(data, ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return clip(repr(data), limit)
    return data if len(text) <= limit else clip(text, limit)


def excerpt(line: bytes, limit: int = 80) -> str:
    """The start of a raw line, for a message about it."""
    shown = repr(line[:limit])
    return shown if len(line) <= limit else f"{shown}... ({len(line)} bytes)"


def dumps(message: Any) -> bytes:
    """One message as compact JSON (never a raw line feed). ASCII, so that a string holding a
    lone surrogate (which JSON's ``\\ud800`` escapes allow) is still encodable."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def request(request_id: int, method: str, params: dict[str, Any] | None = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return dumps(message)


def success(request_id: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def failure(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}
