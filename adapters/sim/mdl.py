"""From (MDL chain, MdlOffset, MdlLength, FORCE_MDL_LENGTH) to the GPA ranges on the wire.

What this module knows: the Windows MDL (wdm.h) as the interface passes it, a chain of
``(byte_offset, byte_count, pfns)`` tuples, and the rules of docs/target-behaviour.md §4 for
turning a sub-buffer of it into ranges:

- MdlOffset counts from byte 0 of ByteCount (reading A2). Byte ``k`` of one MDL lives in PFN
  index ``(ByteOffset + k) >> 12`` at page offset ``(ByteOffset + k) & 0xFFF``.
- MdlLength 0 means the rest after MdlOffset (reading A1 a): of the whole chain without FORCE,
  of the first MDL's ByteCount with it. A resolved length of 0 is rejected (reading A9).
- Without FORCE the chain is one logical buffer bounded by the sum of ByteCounts; one range per
  MDL touched, in chain order (reading A5 a). With FORCE only the first MDL counts, bounded by
  ``ROUND_TO_PAGES(ByteOffset + ByteCount) - ByteOffset`` (reading A3 a), so that no PFN past
  the MDL's array is ever needed.

Every bound is checked in unbounded Python ints: ``MdlOffset + MdlLength`` may exceed 2^32 and
must then be rejected, not wrapped (the ``wrap32`` bug switch shows what wrapping does).

What it does not know: packets, rings and channels. It either returns ranges or raises
:class:`Rejected` with the reason.

The bug switches of :mod:`adapters.sim.bugs` that live here are marked ``BUG:``. Some of them
make the code ask for a PFN the MDL does not have; C would read past the array, the simulator
returns :data:`POISON_PFN` so the damage is visible on the wire instead of crashing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from adapters.sim.consts import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, U32_MAX, U64_MAX
from adapters.sim.wire import GpaRange

#: What a buggy variant puts on the wire when it reads a PFN past an MDL's array.
POISON_PFN = 0xBAD0BAD0BAD


class Rejected(Exception):
    """The call is invalid; ``reason`` says why (the status is the caller's choice)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def round_to_pages(n: int) -> int:
    """wdm.h ROUND_TO_PAGES, on unbounded ints."""
    return (n + PAGE_MASK) & ~PAGE_MASK


def span_pages(byte_offset: int, byte_count: int) -> int:
    """wdm.h ADDRESS_AND_SIZE_TO_SPAN_PAGES for an offset already inside the first page."""
    return (byte_offset + byte_count + PAGE_MASK) >> PAGE_SHIFT


@dataclass(frozen=True)
class Mdl:
    """One validated MDL: ``byte_offset < 4096`` and exactly ``span_pages`` PFNs."""

    byte_offset: int
    byte_count: int
    pfns: tuple[int, ...]

    def pfn(self, index: int) -> int:
        if 0 <= index < len(self.pfns):
            return self.pfns[index]
        return POISON_PFN  # only reachable through a bug switch

    def range_at(self, k: int, count: int, bugs: frozenset[str]) -> list[GpaRange]:
        """The range(s) for ``count`` bytes starting at byte ``k`` of this MDL."""
        start = self.byte_offset + k
        byte_offset = start & PAGE_MASK
        first_page = start >> PAGE_SHIFT
        if "range-per-page" in bugs and count > 0:
            # BUG: one range per page instead of one per MDL.
            pieces = []
            page, offset, left = first_page, byte_offset, count
            while left > 0:
                piece = min(left, PAGE_SIZE - offset)
                pieces.append(self._range(page, offset, piece, bugs))
                page, offset, left = page + 1, 0, left - piece
            return pieces
        return [self._range(first_page, byte_offset, count, bugs)]

    def _range(
        self, first_page: int, byte_offset: int, count: int, bugs: frozenset[str]
    ) -> GpaRange:
        n = span_pages(byte_offset, count)
        if "extra-pfn" in bugs:
            n += 1  # BUG: one PFN the range does not need.
        pfns = tuple(self.pfn(first_page + i) for i in range(n))
        return GpaRange(byte_count=count, byte_offset=byte_offset, pfns=pfns)


def _int_in(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected(f"MDL {name} is {type(value).__name__}, not an int")
    if not low <= value <= high:
        raise Rejected(f"MDL {name}={value:#x} is outside [{low:#x}, {high:#x}]")
    return value


def parse_mdl(raw: object, position: int) -> Mdl:
    """Validate one ``(byte_offset, byte_count, pfns)`` entry; Rejected if malformed."""
    where = f"#{position}"
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes) or len(raw) != 3:
        raise Rejected(f"MDL {where} is not a (byte_offset, byte_count, pfns) triple")
    byte_offset = _int_in(f"{where} byte_offset", raw[0], 0, PAGE_MASK)
    byte_count = _int_in(f"{where} byte_count", raw[1], 0, U32_MAX)
    pfns = raw[2]
    if not isinstance(pfns, Sequence) or isinstance(pfns, str | bytes):
        raise Rejected(f"MDL {where} pfns is not a sequence")
    expected = span_pages(byte_offset, byte_count)
    if len(pfns) != expected:
        raise Rejected(
            f"MDL {where} has {len(pfns)} PFNs; byte_offset {byte_offset:#x} and byte_count "
            f"{byte_count:#x} span {expected}"
        )
    checked = tuple(_int_in(f"{where} pfn", pfn, 0, U64_MAX) for pfn in pfns)
    return Mdl(byte_offset, byte_count, checked)


def _first(raw_chain: object) -> object:
    if not isinstance(raw_chain, Sequence) or isinstance(raw_chain, str | bytes):
        raise Rejected("the MDL chain is not a sequence")
    if len(raw_chain) == 0:
        raise Rejected("the MDL chain is empty (a non-NULL MDL has at least one entry)")
    return raw_chain[0]


def _end(mdl_offset: int, length: int, bugs: frozenset[str]) -> int:
    end = mdl_offset + length
    if "wrap32" in bugs:
        end &= U32_MAX  # BUG: the sum computed in a u32.
    return end


def resolve(
    raw_chain: object, mdl_offset: int, mdl_length: int, force: bool, bugs: frozenset[str]
) -> tuple[GpaRange, ...]:
    """The ranges for the sub-buffer, or Rejected."""
    if force:
        return _resolve_force(parse_mdl(_first(raw_chain), 0), mdl_offset, mdl_length, bugs)
    _first(raw_chain)
    assert isinstance(raw_chain, Sequence)
    chain = [parse_mdl(raw, i) for i, raw in enumerate(raw_chain)]
    return _resolve_chain(chain, mdl_offset, mdl_length, bugs)


def _resolve_force(
    first: Mdl, mdl_offset: int, mdl_length: int, bugs: frozenset[str]
) -> tuple[GpaRange, ...]:
    if "force-ignores-byteoffset" in bugs:
        limit = round_to_pages(first.byte_count)  # BUG: reading A3 (b).
    else:
        limit = round_to_pages(first.byte_offset + first.byte_count) - first.byte_offset
    length = mdl_length if mdl_length != 0 else first.byte_count - mdl_offset
    if length < 0:
        raise Rejected(f"MdlOffset {mdl_offset:#x} is past ByteCount {first.byte_count:#x}")
    if length == 0:
        if "zero-length-range" not in bugs:
            raise Rejected("the resolved external length is 0 (reading A9)")
        # BUG: emit the empty range.
        return tuple(first.range_at(mdl_offset, 0, bugs))
    end = _end(mdl_offset, length, bugs)
    if end > limit:
        raise Rejected(
            f"MdlOffset {mdl_offset:#x} + length {length:#x} = {mdl_offset + length:#x} exceeds "
            f"the FORCE_MDL_LENGTH bound {limit:#x}"
        )
    return tuple(first.range_at(mdl_offset, length, bugs))


def _resolve_chain(
    chain: list[Mdl], mdl_offset: int, mdl_length: int, bugs: frozenset[str]
) -> tuple[GpaRange, ...]:
    total = sum(mdl.byte_count for mdl in chain)
    length = mdl_length if mdl_length != 0 else total - mdl_offset
    if length < 0:
        raise Rejected(f"MdlOffset {mdl_offset:#x} is past the chain's {total:#x} bytes")
    if length == 0:
        if "zero-length-range" not in bugs:
            raise Rejected("the resolved external length is 0 (reading A9)")
        return _empty_range_in_chain(chain, mdl_offset, bugs)
    end = _end(mdl_offset, length, bugs)
    if end > total:
        raise Rejected(
            f"MdlOffset {mdl_offset:#x} + length {length:#x} = {mdl_offset + length:#x} exceeds "
            f"the chain's {total:#x} bytes"
        )
    ranges: list[GpaRange] = []
    start, stop = mdl_offset, mdl_offset + length
    base = 0
    for mdl in chain:
        low, high = max(start, base), min(stop, base + mdl.byte_count)
        if low < high:
            ranges.extend(mdl.range_at(low - base, high - low, bugs))
        base += mdl.byte_count
    return tuple(ranges)


def _empty_range_in_chain(
    chain: list[Mdl], mdl_offset: int, bugs: frozenset[str]
) -> tuple[GpaRange, ...]:
    """BUG zero-length-range: a 0-byte range where MdlOffset lands in the chain."""
    base = 0
    for mdl in chain:
        if mdl_offset <= base + mdl.byte_count:
            return tuple(mdl.range_at(mdl_offset - base, 0, bugs))
        base += mdl.byte_count
    raise Rejected(f"MdlOffset {mdl_offset:#x} is past the chain's {base:#x} bytes")
