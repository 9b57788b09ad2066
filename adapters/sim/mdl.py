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

Those are the default options. The reading switches of :mod:`adapters.sim.readings` change
them here, each at one place: the origin of MdlOffset (A2 b, :func:`_from_described_start`),
what MdlLength 0 resolves to (A1, :func:`_resolve_length`), a resolved length of 0 (A9,
:func:`_nothing_to_send`), the FORCE_MDL_LENGTH bound (A3, :func:`_forced_bound`, and the clamp
of A3 c) and which MDLs of a chain the sub-buffer applies to (A5, :func:`_split_chain`).

What it does not know: packets, rings and channels. It either returns ranges (none at all for
A9 no-range) or raises :class:`Rejected` with the reason.

The bug switches of :mod:`adapters.sim.bugs` that live here are marked ``BUG:``. Some of them
make the code ask for a PFN the MDL does not have; C would read past the array, the simulator
returns :data:`POISON_PFN` so the damage is visible on the wire instead of crashing. The
unsafe reading options A3 (b) and (d) reach past the array the same way, on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vmbspec.adapters.sim.consts import (
    MAX_PACKET_SIZE,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    PFN_SIZE,
    U32_MAX,
    U64_MAX,
)
from vmbspec.adapters.sim.readings import DEFAULT_READINGS, Readings
from vmbspec.adapters.sim.wire import GpaRange

#: No range naming more PFNs than this can fit in a packet (length8 is a u16 of 8-byte units).
MAX_RANGE_PFNS = MAX_PACKET_SIZE // PFN_SIZE

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
        pages = span_pages(byte_offset, count)
        if pages > MAX_RANGE_PFNS:
            # Only an unsafe reading (A3 d) asks for this much: never build the array.
            raise Rejected(f"a range of {pages} PFNs can never fit a packet (reading A13)")
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
    raw_chain: object,
    mdl_offset: int,
    mdl_length: int,
    force: bool,
    bugs: frozenset[str],
    readings: Readings = DEFAULT_READINGS,
) -> tuple[GpaRange, ...]:
    """The ranges for the sub-buffer, or Rejected. An empty tuple means no external data at
    all (reading A9 no-range): the caller sends an in-band packet."""
    first = _first(raw_chain)
    if force:
        chain = [parse_mdl(first, 0)]  # the rest of the chain is not even looked at
    else:
        assert isinstance(raw_chain, Sequence)
        chain = [parse_mdl(raw, i) for i, raw in enumerate(raw_chain)]
    offset = _from_described_start(chain[0], mdl_offset, readings)
    if force:
        return _resolve_force(chain[0], offset, mdl_length, bugs, readings)
    return _resolve_chain(chain, offset, mdl_length, bugs, readings)


def _from_described_start(first: Mdl, mdl_offset: int, readings: Readings) -> int:
    """MdlOffset counted from byte 0 of ByteCount, whatever origin the caller counted from.

    Reading A2 (b): MdlOffset counts from StartVa, the start of the first MDL's first page, so
    the data begins at MdlOffset ByteOffset. Only the origin moves: the bytes a range may
    cover are still those the MDL describes, so an offset before ByteOffset is rejected and
    every later rule sees the offset from the data's first byte."""
    if readings["A2"] != "b":
        return mdl_offset
    if mdl_offset < first.byte_offset:
        raise Rejected(
            f"MdlOffset {mdl_offset:#x} from StartVa is before ByteOffset {first.byte_offset:#x}, "
            "the first byte the MDL describes (reading A2 b)"
        )
    return mdl_offset - first.byte_offset


def _resolve_length(mdl_offset: int, mdl_length: int, whole: int, readings: Readings) -> int:
    """MdlLength, with 0 ("Use 0 for the entire MDL") replaced as reading A1 says; ``whole`` is
    what "the entire MDL" is for this call. Rejected when 0 cannot be resolved at all."""
    if mdl_length != 0:
        return mdl_length
    option = readings["A1"]
    if option == "b":
        return whole  # ByteCount bytes from MdlOffset: the bound check decides.
    if option == "c" and mdl_offset != 0:
        raise Rejected(
            f"MdlLength 0 asks for the entire MDL, and MdlOffset is {mdl_offset:#x}, not 0 "
            "(reading A1 c)"
        )
    if mdl_offset > whole:
        raise Rejected(f"MdlOffset {mdl_offset:#x} is past the {whole:#x} bytes described")
    return whole - mdl_offset


def _nothing_to_send(
    used: list[Mdl], mdl_offset: int, whole: int, bugs: frozenset[str], readings: Readings
) -> tuple[GpaRange, ...]:
    """The sub-buffer resolved to 0 bytes (reading A9)."""
    if mdl_offset > whole:
        raise Rejected(f"MdlOffset {mdl_offset:#x} is past the {whole:#x} bytes described")
    if "zero-length-range" in bugs:
        return _empty_range_in_chain(used, mdl_offset, bugs)  # BUG: emit the empty range.
    if readings["A9"] == "no-range":
        return ()  # reading A9 (no-range): a packet without external data.
    raise Rejected("the resolved external length is 0 (reading A9)")


def _forced_bound(first: Mdl, option: str) -> int | None:
    """What MdlOffset + length may not exceed under FORCE_MDL_LENGTH (reading A3); None: no
    bound at all (d)."""
    if option == "b":
        return round_to_pages(first.byte_count)  # unsafe: ignores ByteOffset
    if option == "d":
        return None  # unsafe: not enforced
    return round_to_pages(first.byte_offset + first.byte_count) - first.byte_offset


def _resolve_force(
    first: Mdl, mdl_offset: int, mdl_length: int, bugs: frozenset[str], readings: Readings
) -> tuple[GpaRange, ...]:
    option = readings["A3"]
    if "force-ignores-byteoffset" in bugs:
        option = "b"  # BUG: reading A3 (b) where the simulator claims (a).
    limit = _forced_bound(first, option)
    length = _resolve_length(mdl_offset, mdl_length, first.byte_count, readings)
    if option == "c" and limit is not None:
        # Reading A3 (c): a length past the bound is cut to it, silently.
        length = min(length, max(limit - mdl_offset, 0))
    if length == 0:
        return _nothing_to_send([first], mdl_offset, first.byte_count, bugs, readings)
    end = _end(mdl_offset, length, bugs)
    if limit is not None and end > limit:
        raise Rejected(
            f"MdlOffset {mdl_offset:#x} + length {length:#x} = {mdl_offset + length:#x} exceeds "
            f"the FORCE_MDL_LENGTH bound {limit:#x}"
        )
    return tuple(first.range_at(mdl_offset, length, bugs))


def _split_chain(chain: list[Mdl], readings: Readings) -> tuple[list[Mdl], list[Mdl]]:
    """(the MDLs MdlOffset and MdlLength apply to, the MDLs sent whole after them): reading
    A5 for a chain without FORCE_MDL_LENGTH."""
    option = readings["A5"]
    if len(chain) == 1 or option == "a":
        return chain, []
    if option == "b":
        return chain[:1], chain[1:]
    return chain[:1], []


def _resolve_chain(
    chain: list[Mdl], mdl_offset: int, mdl_length: int, bugs: frozenset[str], readings: Readings
) -> tuple[GpaRange, ...]:
    used, whole_mdls = _split_chain(chain, readings)
    total = sum(mdl.byte_count for mdl in used)
    # Reading A1 (d): "the entire MDL" is the first MDL, even without FORCE_MDL_LENGTH.
    whole = used[0].byte_count if readings["A1"] == "d" else total
    length = _resolve_length(mdl_offset, mdl_length, whole, readings)
    if length == 0:
        return _nothing_to_send(used, mdl_offset, whole, bugs, readings)
    end = _end(mdl_offset, length, bugs)
    if end > total:
        raise Rejected(
            f"MdlOffset {mdl_offset:#x} + length {length:#x} = {mdl_offset + length:#x} exceeds "
            f"the chain's {total:#x} bytes"
        )
    ranges: list[GpaRange] = []
    start, stop = mdl_offset, mdl_offset + length
    base = 0
    for mdl in used:
        low, high = max(start, base), min(stop, base + mdl.byte_count)
        if low < high:
            ranges.extend(mdl.range_at(low - base, high - low, bugs))
        base += mdl.byte_count
    for mdl in whole_mdls:
        if mdl.byte_count:  # reading A5 (b): the rest of the chain, each MDL whole
            ranges.extend(mdl.range_at(0, mdl.byte_count, bugs))
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
