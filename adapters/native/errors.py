"""What the native targets raise: a harness call that failed (:class:`TargetError`), a target
that crashed or hung (:class:`TargetCrashed`, whose ``kind`` the suite's runner turns into the
verdict of that name) and a library that returned something impossible
(:class:`ImpossibleResult`, a crash naming the function)."""

from __future__ import annotations

from typing import Any

#: The most calls an isolated target keeps for its crash report (the most recent ones).
MAX_KEPT_CALLS = 1000


class TargetError(RuntimeError):
    """A harness call failed in a way the target interface has no result for."""


class TargetCrashed(Exception):
    """The target died (``kind == "crash"``) or did not answer in time (``kind == "hang"``).

    ``calls`` lists the calls made on an isolated target since its worker last started (the
    last :data:`MAX_KEPT_CALLS` of them), the fatal one last, as ``(method, args)`` (empty in
    process), and ``total`` counts them all; ``stderr`` is the end of what the worker wrote
    there (a Rust panic message, say); the target's state is lost. The suite's runner reads
    ``kind`` and gives the verdict of that name.
    """

    def __init__(
        self,
        kind: str,
        detail: str,
        calls: list[tuple[str, tuple[Any, ...]]],
        stderr: str = "",
        total: int | None = None,
    ) -> None:
        super().__init__(kind, detail, calls)
        self.kind = kind
        self.detail = detail
        self.calls = calls
        self.stderr = stderr
        self.total = len(calls) if total is None else max(total, len(calls))

    def __str__(self) -> str:
        said = f"; the worker's stderr ends: {self.stderr}" if self.stderr else ""
        if not self.calls:
            return f"{self.kind}: {self.detail}{said}"
        last = f"; last call {show_call(self.calls[-1])}"
        return f"{self.kind}: {self.detail} after {self.total} call(s){last}{said}"


class ImpossibleResult(TargetCrashed):
    """The library returned something no correct library can: a length larger than the
    buffer it was given or than any ring, a NULL or duplicate handle on success, a completion
    with more bytes than the host ever sent. The adapter reads nothing on the strength of it
    and reports a ``crash`` naming the function (the library's memory may be corrupt)."""

    def __init__(
        self,
        detail: str,
        calls: list[tuple[str, tuple[Any, ...]]] | None = None,
        stderr: str = "",
        total: int | None = None,
    ) -> None:
        super().__init__("crash", detail, [] if calls is None else calls, stderr, total)


def show_value(value: Any) -> str:
    """Ints in hex, also inside the MDL chain's tuples; long bytes cut short."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:#x}"
    if isinstance(value, tuple):
        inner = ", ".join(show_value(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)[:60]


def show_call(call: tuple[str, tuple[Any, ...]]) -> str:
    method, args = call
    return f"{method}({', '.join(show_value(a) for a in args)})"
