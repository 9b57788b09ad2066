"""The remote target protocol, version 1: methods, parameters, results, error codes.

Theory of operation
-------------------
This module is the protocol as data, shared by the client (:mod:`adapters.remote.client`) and
the reference agent (:mod:`adapters.remote.server`); ``docs/remote-protocol.md`` is the same
text for people. It knows JSON-RPC 2.0 envelopes and the value encodings (bytes as lowercase
hex, MDL chains as nested arrays); it knows nothing of sockets, processes or the spec.

The target methods mirror the target interface (``conformance/target.py``) one for one, with
named parameters. :data:`METHODS` lists each with its parameters as ``name -> kind``, where a
kind is one of :data:`KINDS`; :func:`check_params` validates a request's params against it,
and :func:`check_result` a reply's result. A failed check is a :class:`ValueError` whose text
names the parameter.
"""

from __future__ import annotations

import json
from typing import Any

#: The protocol version this module speaks; the handshake states it.
PROTOCOL_VERSION = 1

U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF

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
}

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


def decode_mdl(name: str, value: Any) -> tuple[tuple[int, int, tuple[int, ...]], ...]:
    """``[[byte_offset, byte_count, [pfn, ...]], ...]`` -> the target interface's tuples."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"{name} must be a non-empty array of [byte_offset, byte_count, pfns]")
    chain = []
    for index, segment in enumerate(value):
        if not isinstance(segment, list) or len(segment) != 3 or not isinstance(
            segment[2], list
        ):
            raise ValueError(f"{name}[{index}] must be [byte_offset, byte_count, [pfn, ...]]")
        byte_offset = _check_int(f"{name}[{index}].byte_offset", segment[0], U32_MAX)
        byte_count = _check_int(f"{name}[{index}].byte_count", segment[1], U32_MAX)
        pfns = tuple(_check_int(f"{name}[{index}].pfn", p, U64_MAX) for p in segment[2])
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


def check_params(method: str, params: Any) -> dict[str, Any]:
    """The decoded params of a target method; ValueError naming what is wrong."""
    spec, _ = METHODS[method]
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValueError(f"{method} takes named params (an object)")
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise ValueError(f"{method} has no parameter(s) {', '.join(unknown)}")
    missing = [name for name in spec if name not in params]
    if missing:
        raise ValueError(f"{method} is missing parameter(s) {', '.join(missing)}")
    return {name: decode_value(name, kind, params[name]) for name, kind in spec.items()}


def check_result(method: str, result: Any) -> Any:
    _, kind = METHODS[method]
    return decode_value(f"the result of {method}", kind, result)


# -- envelopes ------------------------------------------------------------------------------


def dumps(message: Any) -> bytes:
    """One message as compact UTF-8 JSON (never a raw line feed)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


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
