"""The spec's error hierarchy.

Caller mistakes in building a value (a negative ByteCount, a PFN array of the wrong size) are
plain ``ValueError``/``TypeError`` subclasses, as h11 keeps misuse separate from protocol errors.
Operations the documentation forbids on a packet or channel raise :class:`SpecViolation`,
which names the requirement broken, so a failure report can cite the sentence.
"""

from __future__ import annotations


class SpecError(Exception):
    """Base of every error the spec raises on purpose."""


class InvalidValue(SpecError, ValueError):
    """A value given to the spec is out of its documented range (a caller mistake)."""


class InvalidType(InvalidValue, TypeError):
    """A value of the wrong type given to the spec's public constructors (a caller mistake).

    Both an :class:`InvalidValue`, so that every caller mistake is one ``SpecError``, and a
    ``TypeError``, Python's convention for the wrong type.
    """


class SpecViolation(SpecError):
    """An operation that the documentation does not allow in the current state."""

    def __init__(self, requirement: str, message: str) -> None:
        super().__init__(f"[{requirement}] {message}")
        self.requirement = requirement
        self.message = message


class WireFormatError(SpecError, ValueError):
    """Bytes that are not a well-formed packet (or ring trailer) as a correct target emits."""


class ArithmeticWrap(SpecError, ArithmeticError):
    """A size or offset computation left its 64-bit range: the spec never lets that pass."""


class CatalogError(SpecError):
    """The requirement catalog is inconsistent (duplicate or unknown IDs, an untraced rule)."""
