"""The Windows MDL as the send path sees it (reference §3, wdm.h).

An MDL describes ``ByteCount`` bytes that start ``ByteOffset`` bytes into the first of its
pages; the PFN array that follows the structure names exactly
``ADDRESS_AND_SIZE_TO_SPAN_PAGES(ByteOffset, ByteCount)`` pages (MDL-PFNS). Chains are linked
through ``Next``. Here a chain is a tuple of segments, first MDL first; the fields that the send
path never reads (``Process``, ``MappedSystemVa``, ``MdlFlags``) are left out, and ``StartVa``
only matters through ``ByteOffset`` (``MmGetMdlVirtualAddress = StartVa + ByteOffset``).

The macros are functions over ints; they call the one implementation in ``spec.arith`` so the
Z3 model proves properties of the very code that evaluates them here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vmbspec.spec import arith
from vmbspec.spec.constants import PAGE_SIZE, UINT32_MAX, UINT64_MAX
from vmbspec.spec.errors import InvalidType, InvalidValue


def shown_int(value: int) -> str:
    """``value`` for a message; a huge one by its size (Python refuses to print an int of more
    than 4300 digits, and nobody wants to read one)."""
    if value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    return str(value)


def _require_uint(name: str, value: object, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidType(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise InvalidValue(f"{name} = {shown_int(value)} is outside 0..{maximum:#x}")
    return value


def BYTE_OFFSET(va: int) -> int:
    """``va & (PAGE_SIZE - 1)``."""
    return arith.byte_offset(arith.PY, _require_uint("va", va, UINT64_MAX))


def ROUND_TO_PAGES(size: int) -> int:
    """``(size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)``, without wrapping (64-bit input)."""
    return arith.round_to_pages(arith.PY, _require_uint("size", size, UINT32_MAX))


def ADDRESS_AND_SIZE_TO_SPAN_PAGES(va: int, size: int) -> int:
    """The pages a buffer of ``size`` bytes starting at ``va`` touches."""
    return arith.span_pages(
        arith.PY, _require_uint("va", va, UINT64_MAX), _require_uint("size", size, UINT32_MAX)
    )


@dataclass(frozen=True)
class MdlSegment:
    """One MDL: ``ByteOffset`` (< 4096), ``ByteCount`` (UINT32) and its PFN array.

    Validated on construction (MDL-BYTEOFFSET, MDL-PFNS): the PFN array must have exactly
    ``ADDRESS_AND_SIZE_TO_SPAN_PAGES(ByteOffset, ByteCount)`` entries, each a 64-bit PFN.
    """

    byte_offset: int
    byte_count: int
    pfns: tuple[int, ...]

    def __post_init__(self) -> None:
        _require_uint("ByteOffset", self.byte_offset, PAGE_SIZE - 1)
        _require_uint("ByteCount", self.byte_count, UINT32_MAX)
        if not isinstance(self.pfns, tuple):
            raise InvalidType(f"pfns must be a tuple, not {type(self.pfns).__name__}")
        for index, pfn in enumerate(self.pfns):
            _require_uint(f"PFN[{index}]", pfn, UINT64_MAX)
        expected = ADDRESS_AND_SIZE_TO_SPAN_PAGES(self.byte_offset, self.byte_count)
        if len(self.pfns) != expected:
            raise InvalidValue(
                f"[MDL-PFNS] an MDL with ByteOffset {self.byte_offset:#x} and ByteCount "
                f"{self.byte_count:#x} has exactly {expected} PFNs, not {len(self.pfns)}"
            )

    @classmethod
    def with_pages(cls, byte_offset: int, byte_count: int, first_pfn: int = 0x1000) -> MdlSegment:
        """An MDL over consecutive made-up PFNs ``first_pfn, first_pfn + 1, ...``."""
        count = ADDRESS_AND_SIZE_TO_SPAN_PAGES(
            _require_uint("ByteOffset", byte_offset, PAGE_SIZE - 1),
            _require_uint("ByteCount", byte_count, UINT32_MAX),
        )
        _require_uint("first_pfn", first_pfn, UINT64_MAX)
        return cls(byte_offset, byte_count, tuple(range(first_pfn, first_pfn + count)))

    @property
    def as_term(self) -> arith.Segment[int]:
        """The segment as :mod:`spec.arith` formulas see it."""
        return arith.Segment(self.byte_offset, self.byte_count)

    def as_tuple(self) -> tuple[int, int, tuple[int, ...]]:
        """The plain form the target interface takes."""
        return (self.byte_offset, self.byte_count, self.pfns)


@dataclass(frozen=True)
class MdlChain:
    """An MDL chain (``Next`` links), first MDL first. At least one MDL."""

    segments: tuple[MdlSegment, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.segments, tuple):
            raise InvalidType(
                f"an MDL chain is a tuple of MdlSegment, not {type(self.segments).__name__}"
                " (MdlChain.of takes any iterable)"
            )
        if not self.segments:
            raise InvalidValue("an MDL chain has at least one MDL")
        for segment in self.segments:
            if not isinstance(segment, MdlSegment):
                raise InvalidType(
                    f"an MDL chain holds MdlSegment, not {type(segment).__name__}"
                )

    @classmethod
    def of(cls, segments: Iterable[MdlSegment]) -> MdlChain:
        if not isinstance(segments, Iterable) or isinstance(segments, (str, bytes)):
            kind = type(segments).__name__
            raise InvalidType(f"MdlChain.of takes an iterable of MdlSegment, not {kind}")
        return cls(tuple(segments))

    @property
    def first(self) -> MdlSegment:
        return self.segments[0]

    @property
    def byte_count(self) -> int:
        """The bytes the whole chain describes."""
        return arith.chain_byte_count(arith.PY, [s.as_term for s in self.segments])

    def as_tuples(self) -> tuple[tuple[int, int, tuple[int, ...]], ...]:
        return tuple(segment.as_tuple() for segment in self.segments)
