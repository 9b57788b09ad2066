"""Suppression files: known issues of a target, each with a reason, read with bounds.

A suppression file is TOML (``docs/trace-format.md``, "Suppressions")::

    [[suppress]]
    requirement = "SEED-WAIT-MUST"      # and/or
    event = 1234                        # the seq of the violating event
    reason = "driver 1.2 ignores the flag; fixed in 1.3"

It is read through :func:`conformance.inputs.load_toml_file` (bounded size and depth) and
its schema is checked strictly: only ``[[suppress]]`` tables at the top, only the keys
``requirement``, ``event`` and ``reason`` in each, each of its type and range. A mistake is a
:class:`~conformance.trace_format.TraceFormatError` naming the file and the entry:
``FILE: suppression N: field X: what was wrong``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmbspec.conformance.inputs import InputError, parse_toml, read_bytes, require_int, require_str
from vmbspec.conformance.trace_format import TraceFormatError, printable
from vmbspec.spec.constants import UINT64_MAX

if TYPE_CHECKING:
    from vmbspec.conformance.trace import Violation

#: A suppression file is a short list written by hand.
MAX_SUPPRESSION_BYTES = 1024 * 1024
#: Top level, the [[suppress]] array, its tables: 3 deep; nothing deeper is meaningful.
MAX_SUPPRESSION_DEPTH = 4
MAX_SUPPRESSIONS = 10_000
MAX_REASON = 2000
MAX_REQUIREMENT = 100
KEYS = ("requirement", "event", "reason")


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
        return f"{what}: {printable(self.reason, MAX_REASON)}"

    def as_json(self) -> dict[str, Any]:
        return {"requirement": self.requirement, "event": self.event, "reason": self.reason,
                "used": self.used}


def load_suppressions(path: Path | str, known_requirements: Iterable[str] = ()
                      ) -> list[Suppression]:
    """The ``[[suppress]]`` entries of the file at ``path``, validated."""
    try:
        data = read_bytes(path, "suppression file", MAX_SUPPRESSION_BYTES)
    except InputError as error:
        raise TraceFormatError(str(error)) from error
    return parse_suppressions(data, str(path), known_requirements)


def parse_suppressions(data: bytes | str, name: str = "suppressions",
                       known_requirements: Iterable[str] = ()) -> list[Suppression]:
    """The entries of a suppression file's contents; ``name`` is the file name in errors."""
    if len(data) > MAX_SUPPRESSION_BYTES:
        raise TraceFormatError(f"{name}: larger than {MAX_SUPPRESSION_BYTES} bytes: not a "
                               "suppression file")
    try:
        document = parse_toml(data, name, MAX_SUPPRESSION_DEPTH)
    except InputError as error:
        raise TraceFormatError(str(error)) from error
    extra = sorted(set(document) - {"suppress"})
    if extra:
        raise TraceFormatError(f"{name}: unknown key {printable(extra[0], 40)!r}: a "
                               "suppression file holds only [[suppress]] tables")
    entries = document.get("suppress", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise TraceFormatError(f"{name}: suppress must be [[suppress]] tables")
    if len(entries) > MAX_SUPPRESSIONS:
        raise TraceFormatError(f"{name}: {len(entries)} suppressions (at most "
                               f"{MAX_SUPPRESSIONS})")
    known = set(known_requirements)
    return [_entry(entry, f"{name}: suppression {number}", known)
            for number, entry in enumerate(entries, start=1)]


def _entry(entry: dict[str, Any], where: str, known: set[str]) -> Suppression:
    unknown = sorted(set(entry) - set(KEYS))
    if unknown:
        raise TraceFormatError(f"{where}: unknown key {printable(unknown[0], 40)!r}; keys are "
                               "requirement, event and reason")
    try:
        requirement = entry.get("requirement")
        if requirement is not None:
            requirement = require_str(requirement, f"{where}: field requirement",
                                      MAX_REQUIREMENT)
        event = entry.get("event")
        if isinstance(event, int) and event.bit_length() > 64:  # TOML integers are unbounded
            raise TraceFormatError(f"{where}: field event (an event's seq): an integer of "
                                   f"{event.bit_length()} bits is out of range 0..2**64-1")
        if event is not None:
            event = require_int(event, f"{where}: field event (an event's seq)", 0,
                                UINT64_MAX)
        reason = entry.get("reason")
        if reason is None:
            raise TraceFormatError(f"{where}: every suppression needs a reason")
        reason = require_str(reason, f"{where}: field reason", MAX_REASON)
    except TraceFormatError:
        raise
    except InputError as error:
        raise TraceFormatError(str(error)) from error
    if not reason.strip():
        raise TraceFormatError(f"{where}: every suppression needs a reason (this one is "
                               "blank)")
    if requirement is None and event is None:
        raise TraceFormatError(f"{where}: needs a requirement, an event, or both")
    if known and requirement is not None and requirement not in known:
        raise TraceFormatError(f"{where}: field requirement: unknown requirement "
                               f"{printable(requirement, 40)!r} (see `vmbspec requirements`)")
    return Suppression(requirement, event, reason.strip(), where)
