"""The boundary between the suite and a target: what crosses it is checked, and blame is kept.

Every call the driver makes on a target goes through :class:`GuardedTarget`. It does two things
that let a verdict be trusted:

* an exception raised *by the target* comes out as :class:`TargetRaised`, so the runner can
  tell it from an exception raised by vmbspec's own code (a bug of ours, which must never be
  reported as the target's failure). An adapter says what kind of fault it was with a
  ``kind`` attribute on its exception (:data:`FAULT_KINDS`): a crash or hang of the target, a
  target that cannot be reached any more (the run stops: nothing more can be judged), or a
  protocol error of a harness (a reply of the wrong shape: the harness's bug, blamed on no
  requirement of the driver). Anything else the target raises is a ``target-error``;
* a value the target returns is checked for its shape before the driver uses it (an NTSTATUS
  is an unsigned 32-bit integer, a packet is bytes, a completion a ``(packet, status, data)``
  triple), so a target returning nonsense is a verdict naming the method, not a ``TypeError``
  deep in the driver.

:func:`check_interface` tells, before a run, which methods of ``conformance/target.py`` an
adapter lacks: one clear message instead of one identical failure per case.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, NoReturn

from vmbspec.conformance.inputs import shorten

U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF
#: The largest packet or ring a target may hand back (the suite's rings are far smaller).
MAX_BYTES = 64 * 1024 * 1024

#: The methods of the target interface (conformance/target.py), each with the check of its
#: result. ``ring_bytes`` is needed only with the ``ring-bytes`` capability; ``close`` is
#: optional.
REQUIRED_METHODS = (
    "create_channel",
    "open_channel",
    "disable_channel",
    "allocate_packet",
    "free_packet",
    "send_with_external_mdl",
    "host_take_packet",
    "host_complete",
    "completions",
)


#: The kinds of fault an adapter may name (``error.kind``), with what each means for a run.
FAULT_KINDS = {
    "crash": "the target crashed; its state is lost, the next target starts afresh",
    "hang": "a call of the target did not return in time; its state is lost",
    "unreachable": "the target cannot be reached any more (its agent stopped answering or "
    "accepting connections): the run stops",
    "protocol-error": "a harness replied in a shape the remote protocol does not allow: the "
    "harness's bug, not a verdict on the driver",
}


def fault_kind(error: BaseException) -> str:
    """The kind an adapter gave ``error`` (one of :data:`FAULT_KINDS`), else "target-error"."""
    kind = getattr(error, "kind", None)
    return kind if isinstance(kind, str) and kind in FAULT_KINDS else "target-error"


class TargetRaised(Exception):
    """The target raised, or returned a value of the wrong shape; ``kind`` is one of
    :data:`FAULT_KINDS` when the adapter said so, else "target-error"."""

    def __init__(self, method: str, message: str, kind: str = "target-error") -> None:
        super().__init__(message)
        self.method = method
        self.kind = kind


class TargetInterfaceError(TypeError):
    """An adapter that lacks methods of the target interface (a mistake in the adapter)."""


def close_quietly(target: Any) -> None:
    """Close a target after its verdict is made: a target that fails to close is not news."""
    close = getattr(target, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()


def check_interface(target: Any) -> None:
    """Raise :class:`TargetInterfaceError` naming every interface method ``target`` lacks."""
    needed = list(REQUIRED_METHODS)
    if "ring-bytes" in frozenset(getattr(target, "capabilities", ()) or ()):
        needed.append("ring_bytes")
    missing = [name for name in needed if not callable(getattr(target, name, None))]
    if missing:
        raise TargetInterfaceError(
            f"the target {type(target).__name__} lacks the method(s) {', '.join(missing)} of "
            "the target interface (conformance/target.py)"
        )


def _is_int(value: Any, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= high


def _handle(value: Any) -> str | None:
    return None if _is_int(value, U64_MAX) else "a handle must be an integer in 0..2**64-1"


def _optional_handle(value: Any) -> str | None:
    return None if value is None else _handle(value)


def _status(value: Any) -> str | None:
    return None if _is_int(value, U32_MAX) else "an NTSTATUS must be an integer in 0..0xFFFFFFFF"


def _data(value: Any) -> str | None:
    if not isinstance(value, bytes | bytearray):
        return "must be bytes"
    return None if len(value) <= MAX_BYTES else f"{len(value)} bytes is more than any ring holds"


def _optional_data(value: Any) -> str | None:
    return None if value is None else _data(value)


def _completions(value: Any) -> str | None:
    if not isinstance(value, list | tuple):
        return "must be a list of (packet, status, data) triples"
    for number, call in enumerate(value, start=1):
        if not isinstance(call, list | tuple) or len(call) != 3:
            return f"item {number} is not a (packet, status, data) triple"
        problem = _handle(call[0]) or _status(call[1]) or _data(call[2])
        if problem:
            return f"item {number}: {problem}"
    return None


def _anything(_value: Any) -> str | None:
    return None


#: method -> the check of its result (a text saying what is wrong, or None).
RESULT_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "create_channel": _handle,
    "open_channel": _anything,
    "disable_channel": _anything,
    "allocate_packet": _optional_handle,
    "free_packet": _anything,
    "send_with_external_mdl": _status,
    "host_take_packet": _optional_data,
    "host_complete": _anything,
    "completions": _completions,
    "ring_bytes": _data,
}


def _describe(error: BaseException) -> str:
    """The message of what the target raised: an adapter's fault (one that names its kind)
    speaks for itself; any other exception is named by its class, which says what broke."""
    text = str(error)
    if text and isinstance(getattr(error, "kind", None), str):
        return shorten(text)
    name = type(error).__name__
    return shorten(f"{name}: {text}" if text else name)


class GuardedTarget:
    """``target`` with every interface call checked (see the module's docstring).
    ``on_raise``, if given, sees each :class:`TargetRaised` before it is raised (and may
    raise something else instead: the runner stops a run on an unreachable target so)."""

    def __init__(
        self, target: Any, on_raise: Callable[[TargetRaised], None] | None = None
    ) -> None:
        self._target = target
        self._on_raise = on_raise
        self.name = getattr(target, "name", type(target).__name__)
        self.capabilities = frozenset(getattr(target, "capabilities", ()) or ())

    def _raise(self, raised: TargetRaised, cause: BaseException | None = None) -> NoReturn:
        if self._on_raise is not None:
            self._on_raise(raised)
        raise raised from cause

    def __getattr__(self, method: str) -> Any:
        check = RESULT_CHECKS.get(method)
        inner = getattr(self._target, method)
        if check is None:
            return inner

        def call(*args: Any) -> Any:
            try:
                result = inner(*args)
            except TargetRaised:
                raise
            except Exception as error:
                self._raise(TargetRaised(method, _describe(error), fault_kind(error)), error)
            problem = check(result)
            if problem is not None:
                self._raise(TargetRaised(
                    method, f"{method} returned {shorten(repr(result), 120)}: {problem}"
                ))
            return result

        return call
