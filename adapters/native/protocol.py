"""The pipe protocol between an :class:`~adapters.native.IsolatedTarget` and its worker: one
request ``(target id, method, args)``, one reply ``("ok", value)``, ``("error", (type name,
message))``, ``("impossible", detail)`` or ``("fault", detail)`` (the guard fault handler's
line, written just before the worker dies of the signal), each a pickle after a 4-byte
little-endian length.

The worker runs a library that is not trusted, and the library could write on the pipe, so a
reply is read as data: at most :data:`MAX_REPLY_BYTES`, unpickled with no class or function
allowed (plain values only), and checked for the shape its method returns. Anything else
raises :class:`ProtocolError`, which the target reports as a crash.
"""

from __future__ import annotations

import io
import os
import pickle
import select
import struct
import time
from typing import IO, Any

from .abi import MAX_RING_BYTES, UINT32_MAX, UINT64_MAX
from .errors import TargetError, show_value

#: The methods a worker forwards: the target interface.
FORWARDED = frozenset(
    {
        "create_channel",
        "open_channel",
        "disable_channel",
        "allocate_packet",
        "free_packet",
        "send_with_external_mdl",
        "host_take_packet",
        "host_complete",
        "completions",
        "ring_bytes",
    }
)
_HEADER = struct.Struct("<I")
#: The longest reply a worker may send: a whole ring of the largest size, with room for the
#: framing. Anything longer is a worker that lost its way (its library wrote on the pipe).
MAX_REPLY_BYTES = 2 * MAX_RING_BYTES
#: The most of a worker's error message kept.
MAX_ERROR_TEXT = 2000
_READ_CHUNK = 1 << 20


class ProtocolError(Exception):
    """A message from the worker that is not one the protocol allows."""


class _PlainUnpickler(pickle.Unpickler):
    """Only plain values (None, bool, int, bytes, str, tuple, list) may cross the pipe: a
    message naming a class or function is refused, so a library writing on the pipe cannot
    make this process run anything."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"the message names {module}.{name}")


def write_message(stream: IO[bytes], message: object) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def _read_exact(fd: int, count: int, deadline: float | None) -> bytes | None:
    """``count`` bytes from ``fd``; None on end of file; TimeoutError past ``deadline``."""
    chunks: list[bytes] = []
    while count > 0:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(count, _READ_CHUNK))
        if not chunk:
            return None
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def read_message(
    fd: int, deadline: float | None, limit: int | None = None
) -> tuple[bool, Any]:
    """``(True, message)``, or ``(False, None)`` on end of file. With ``limit``, a message
    longer than that or not made of plain values raises :class:`ProtocolError`."""
    header = _read_exact(fd, _HEADER.size, deadline)
    if header is None:
        return False, None
    (length,) = _HEADER.unpack(header)
    if limit is not None and length > limit:
        raise ProtocolError(f"a {length}-byte message, more than the {limit} allowed")
    payload = _read_exact(fd, length, deadline)
    if payload is None:
        return False, None
    try:
        return True, _PlainUnpickler(io.BytesIO(payload)).load()
    except Exception as error:  # garbage can fail in many ways; all mean the same here
        raise ProtocolError(f"an unreadable message ({type(error).__name__}: {error})") from None


def _is_int(value: object, limit: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit


def _is_completion(value: object) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 3
        and _is_int(value[0], UINT64_MAX)
        and _is_int(value[1], UINT32_MAX)
        and isinstance(value[2], bytes)
    )


def check_result(method: str, value: Any) -> Any:
    """``value`` if it is what ``method`` returns; ProtocolError otherwise."""
    if method == "create_channel":
        ok = _is_int(value, UINT64_MAX) and value != 0
    elif method == "allocate_packet":
        ok = value is None or (_is_int(value, UINT64_MAX) and value != 0)
    elif method == "send_with_external_mdl":
        ok = _is_int(value, UINT32_MAX)
    elif method == "host_take_packet":
        ok = value is None or (isinstance(value, bytes) and value != b"")
    elif method == "ring_bytes":
        ok = isinstance(value, bytes)
    elif method == "completions":
        ok = isinstance(value, list) and all(_is_completion(c) for c in value)
    else:
        ok = value is None
    if not ok:
        raise ProtocolError(f"{method} answered {show_value(value)}")
    return value


def unpack_reply(reply: Any) -> tuple[str, Any]:
    """``(kind, value)`` of a worker's reply; ProtocolError if it has another shape."""
    if not (isinstance(reply, tuple) and len(reply) == 2 and isinstance(reply[0], str)):
        raise ProtocolError(f"a reply of the wrong shape: {show_value(reply)}")
    kind, value = reply
    if kind == "ok":
        return kind, value
    if kind in ("impossible", "fault") and isinstance(value, str):
        return kind, value[:MAX_ERROR_TEXT]
    if (
        kind == "error"
        and isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, str) for v in value)
    ):
        return kind, (value[0][:100], value[1][:MAX_ERROR_TEXT])
    raise ProtocolError(f"a reply of the wrong shape: {show_value(reply)}")


#: The exceptions a worker's target raises that are raised here as themselves: the caller's
#: bad arguments (ValueError, TypeError) and the harness's failures (TargetError).
_REBUILT: dict[str, type[Exception]] = {
    "TargetError": TargetError,
    "ValueError": ValueError,
    "TypeError": TypeError,
    "AttributeError": AttributeError,
}


def rebuild_error(type_name: str, message: str) -> Exception:
    """The parent's copy of an exception the worker's target raised."""
    kind = _REBUILT.get(type_name)
    if kind is not None:
        return kind(message)
    return TargetError(f"{type_name}: {message}")
