"""Offset, length, page-span and rounding arithmetic, written once for two kinds of number.

Theory of operation
-------------------
Every computation on MdlOffset, MdlLength, ByteOffset and ByteCount that decides whether a call
is accepted, and which guest pages the emitted packet names, lives in this module and nowhere
else. Each function takes an :class:`Arith` first: an object that supplies the few operations
the formulas use (constants, add, subtract, shifts, masks, unsigned compares, a guarded choice).
:class:`PyArith` evaluates them on Python ints for the executable spec; ``spec.proofs`` supplies
implementations over Z3 (bit-vectors, and exact integers whose range P5 bounds) and proves
properties of *these same functions*, so there
is no second copy of any formula to drift.

The rules this module keeps:

* Words are 64 bits wide. Every input is a UINT32 (ByteOffset is below 4096), so no sum of a few
  inputs can reach 2**64; the Z3 model proves that no operation here wraps (property P5), and
  :class:`PyArith` raises :class:`~spec.errors.ArithmeticWrap` instead of wrapping should a
  caller ever feed it something larger.
* Only shifts, masks, adds, subtracts and compares: symbolic multiply and divide make Z3 slow.
* A subtraction is only evaluated where its operands are ordered. Where that depends on the
  input, the formula uses :meth:`Arith.cases`, which evaluates only the branch taken on ints and
  records the branch condition on Z3, so the "no wrap" obligation is exact, not approximate.

What this module does not know: packet objects, channels, statuses and the reason a call is
rejected. Those are in ``spec.rules``, which reads the predicates computed here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Generic, Protocol, TypeVar

from vmbspec.spec.constants import (
    GPA_DIRECT_HEADER_SIZE,
    GPA_RANGE_HEADER_SIZE,
    MAX_PACKET_BYTES,
    PACKET_DESCRIPTOR_SIZE,
    PAGE_MASK,
    PAGE_SHIFT,
    RING_TRAILER_SIZE,
    UINT64_MAX,
)
from vmbspec.spec.errors import ArithmeticWrap

W = TypeVar("W")
B = TypeVar("B")

WORD_BITS = 64


class Arith(Protocol[W, B]):
    """The operations the formulas may use. ``W`` is a 64-bit unsigned word, ``B`` a truth value."""

    def lit(self, value: int) -> W:
        """A constant word."""
        ...

    def add(self, a: W, b: W) -> W:
        """``a + b``; must not wrap (``PyArith`` raises, Z3 records an obligation)."""
        ...

    def sub(self, a: W, b: W) -> W:
        """``a - b``; must not go below zero (same treatment as :meth:`add`)."""
        ...

    def shl(self, a: W, bits: int) -> W:
        """``a << bits``; must not lose bits."""
        ...

    def shr(self, a: W, bits: int) -> W:
        """``a >> bits`` (logical)."""
        ...

    def band(self, a: W, mask: int) -> W:
        """``a & mask`` for a constant mask."""
        ...

    def ult(self, a: W, b: W) -> B:
        """Unsigned ``a < b``."""
        ...

    def ule(self, a: W, b: W) -> B:
        """Unsigned ``a <= b``."""
        ...

    def eq(self, a: W, b: W) -> B:
        """``a == b``."""
        ...

    def all_of(self, *conds: B) -> B:
        """Conjunction (true when empty)."""
        ...

    def any_of(self, *conds: B) -> B:
        """Disjunction (false when empty)."""
        ...

    def not_(self, cond: B) -> B:
        """Negation."""
        ...

    def cases(self, cond: B, then: Callable[[], W], otherwise: Callable[[], W]) -> W:
        """``then()`` where ``cond`` holds, else ``otherwise()``; each branch sees its guard."""
        ...


class PyArith:
    """:class:`Arith` on Python ints in ``[0, 2**64)``; a wrap raises :class:`ArithmeticWrap`."""

    def lit(self, value: int) -> int:
        if not 0 <= value <= UINT64_MAX:
            raise ArithmeticWrap(f"constant {value} is not a 64-bit unsigned word")
        return value

    def add(self, a: int, b: int) -> int:
        result = a + b
        if result > UINT64_MAX:
            raise ArithmeticWrap(f"{a:#x} + {b:#x} wraps 64 bits")
        return result

    def sub(self, a: int, b: int) -> int:
        if b > a:
            raise ArithmeticWrap(f"{a:#x} - {b:#x} goes below zero")
        return a - b

    def shl(self, a: int, bits: int) -> int:
        result = a << bits
        if result > UINT64_MAX:
            raise ArithmeticWrap(f"{a:#x} << {bits} loses bits")
        return result

    def shr(self, a: int, bits: int) -> int:
        return a >> bits

    def band(self, a: int, mask: int) -> int:
        return a & mask & UINT64_MAX

    def ult(self, a: int, b: int) -> bool:
        return a < b

    def ule(self, a: int, b: int) -> bool:
        return a <= b

    def eq(self, a: int, b: int) -> bool:
        return a == b

    def all_of(self, *conds: bool) -> bool:
        return all(conds)

    def any_of(self, *conds: bool) -> bool:
        return any(conds)

    def not_(self, cond: bool) -> bool:
        return not cond

    def cases(self, cond: bool, then: Callable[[], int], otherwise: Callable[[], int]) -> int:
        return then() if cond else otherwise()


#: The one instance the executable spec uses.
PY = PyArith()


# ---------------------------------------------------------------------------------------------
# The wdm.h macros (reference §3). Exact, over 64-bit words.
# ---------------------------------------------------------------------------------------------


def byte_offset(a: Arith[W, B], va: W) -> W:
    """``BYTE_OFFSET(va) = va & 0xFFF``."""
    return a.band(va, PAGE_MASK)


def round_to_pages(a: Arith[W, B], size: W) -> W:
    """``ROUND_TO_PAGES(n) = (n + 0xFFF) & ~0xFFF``."""
    return a.band(a.add(size, a.lit(PAGE_MASK)), ~PAGE_MASK & UINT64_MAX)


def span_pages(a: Arith[W, B], va: W, size: W) -> W:
    """``ADDRESS_AND_SIZE_TO_SPAN_PAGES(va, n) = ((va & 0xFFF) + n + 0xFFF) >> 12``."""
    return a.shr(a.add(a.add(byte_offset(a, va), size), a.lit(PAGE_MASK)), PAGE_SHIFT)


def page_index(a: Arith[W, B], position: W) -> W:
    """The PFN-array index holding byte ``position - ByteOffset`` of an MDL: ``position >> 12``."""
    return a.shr(position, PAGE_SHIFT)


# ---------------------------------------------------------------------------------------------
# The readings of the seed that change arithmetic (the others are in spec.readings).
# ---------------------------------------------------------------------------------------------


class ZeroLength(Enum):
    """Reading A1: what ``MdlLength == 0`` ("Use 0 for the entire MDL") resolves to."""

    REST_AFTER_OFFSET = "a"  # the rest after MdlOffset, over the same MDLs (IoBuildPartialMdl)
    BYTECOUNT_FROM_OFFSET = "b"  # ByteCount bytes starting at MdlOffset
    ERROR_UNLESS_OFFSET_ZERO = "c"  # only MdlOffset 0 may ask for "the entire MDL"
    FIRST_MDL_ONLY = "d"  # "the entire MDL" is the first MDL even without FORCE_MDL_LENGTH


class ForcedBound(Enum):
    """Reading A3: the bound FORCE_MDL_LENGTH puts on MdlOffset + MdlLength."""

    PAGE_ROUNDED_SPAN = "a"  # <= ROUND_TO_PAGES(ByteOffset + ByteCount) - ByteOffset (safe)
    ROUNDED_BYTECOUNT = "b"  # <= ROUND_TO_PAGES(ByteCount): one PFN too far when ByteOffset != 0
    SILENT_CLAMP = "c"  # a longer length is cut to the bound of (a) and the call accepted
    NOT_ENFORCED = "d"  # any length: reads past the PFN array


class Origin(Enum):
    """Reading A2: where MdlOffset ("The offset from the buffer described by the MDL where the
    data starts") is counted from."""

    MDL_VIRTUAL_ADDRESS = "a"  # byte 0 of ByteCount, MmGetMdlVirtualAddress
    START_VA = "b"  # StartVa, the start of the first page: ByteOffset bytes earlier


class ChainUse(Enum):
    """Reading A5: what MdlOffset and MdlLength apply to on a chain, without FORCE_MDL_LENGTH."""

    ONE_BUFFER = "a"  # the chain is one logical buffer; one GPA range per MDL touched
    FIRST_THEN_WHOLE = "b"  # offset and length on the first MDL, the other MDLs sent whole
    FIRST_ONLY = "c"  # the first MDL only


@dataclass(frozen=True)
class ArithReadings:
    """The readings the formulas below depend on; defaults are the reference's recommendations."""

    zero_length: ZeroLength = ZeroLength.REST_AFTER_OFFSET
    forced_bound: ForcedBound = ForcedBound.PAGE_ROUNDED_SPAN
    origin: Origin = Origin.MDL_VIRTUAL_ADDRESS
    chain_use: ChainUse = ChainUse.ONE_BUFFER


DEFAULT_ARITH_READINGS = ArithReadings()


# ---------------------------------------------------------------------------------------------
# Resolving the sub-buffer and the GPA ranges it becomes.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment(Generic[W]):
    """One MDL of the chain as the formulas see it: ByteOffset (< 4096) and ByteCount."""

    byte_offset: W
    byte_count: W


@dataclass(frozen=True)
class RangeTerm(Generic[W, B]):
    """One GPA range of the emitted packet, present only where ``present`` holds.

    ``first_pfn`` indexes the PFN array of MDL number ``mdl_index``; the range names PFNs
    ``first_pfn .. first_pfn + pfn_count - 1`` of that array.
    """

    present: B
    mdl_index: int
    byte_offset: W
    byte_count: W
    first_pfn: W
    pfn_count: W


@dataclass(frozen=True)
class Plan(Generic[W, B]):
    """What the arithmetic decides about one call.

    ``in_bounds`` is the acceptance predicate of the offset/length rules (SEND-OFFSET-BOUND,
    SEND-FORCED-BOUND, READ-A9); ``length`` is the resolved MdlLength (meaningful only where
    ``in_bounds`` holds); ``bound`` is what ``offset`` + length may not exceed; ``whole`` is what
    "the entire MDL" means for this call. ``offset`` is MdlOffset counted from byte 0 of the
    data the MDL describes, and ``origin_ok`` says MdlOffset does not point before that data
    (both differ from MdlOffset itself only under reading A2 (b)).
    """

    forced: bool
    in_bounds: B
    origin_ok: B
    offset: W
    offset_in_range: B
    length: W
    bound: W
    whole: W
    ranges: tuple[RangeTerm[W, B], ...]


def forced_bound(a: Arith[W, B], first: Segment[W], reading: ForcedBound) -> W:
    """The most MdlOffset + MdlLength may be under FORCE_MDL_LENGTH (reading A3).

    "This only allows exceeding the length of the MDL by rounding up to a page boundary": the
    bytes past ByteCount may only fill the MDL's last page, which ends at
    ``ROUND_TO_PAGES(ByteOffset + ByteCount)`` counted from the start of the first page.
    """
    if reading is ForcedBound.ROUNDED_BYTECOUNT:
        return round_to_pages(a, first.byte_count)
    if reading is ForcedBound.NOT_ENFORCED:
        return a.lit(UINT64_MAX)
    # (a) and the clamp of (c): ROUND_TO_PAGES(bo + bc) >= bo + bc >= bo, so the sub cannot wrap.
    return a.sub(round_to_pages(a, a.add(first.byte_offset, first.byte_count)), first.byte_offset)


def chain_byte_count(a: Arith[W, B], segments: Sequence[Segment[W]]) -> W:
    """The bytes the chain describes: the sum of the ByteCount fields."""
    total = a.lit(0)
    for segment in segments:
        total = a.add(total, segment.byte_count)
    return total


def _resolve_length(
    a: Arith[W, B], mdl_offset: W, mdl_length: W, whole: W, zero_length: ZeroLength
) -> W:
    """MdlLength, with 0 replaced by what "the entire MDL" means under reading A1.

    A result of 0 means "nothing to send" and is rejected by the caller (reading A9).
    """

    def entire() -> W:
        if zero_length is ZeroLength.BYTECOUNT_FROM_OFFSET:
            return whole
        if zero_length is ZeroLength.ERROR_UNLESS_OFFSET_ZERO:
            return a.cases(a.eq(mdl_offset, a.lit(0)), lambda: whole, lambda: a.lit(0))
        # (a) and (d): the rest after MdlOffset; nothing when the offset is past the end.
        return a.cases(
            a.ule(mdl_offset, whole), lambda: a.sub(whole, mdl_offset), lambda: a.lit(0)
        )

    return a.cases(a.eq(mdl_length, a.lit(0)), entire, lambda: mdl_length)


def _range_in_segment(
    a: Arith[W, B],
    index: int,
    segment: Segment[W],
    segment_start: W,
    wanted_start: W,
    wanted_end: W,
) -> RangeTerm[W, B]:
    """The part of ``[wanted_start, wanted_end)`` that falls inside one MDL of the chain."""
    segment_end = a.add(segment_start, segment.byte_count)
    low = a.cases(a.ult(wanted_start, segment_start), lambda: segment_start, lambda: wanted_start)
    high = a.cases(a.ult(segment_end, wanted_end), lambda: segment_end, lambda: wanted_end)
    present = a.ult(low, high)
    count = a.cases(present, lambda: a.sub(high, low), lambda: a.lit(0))
    # low >= segment_start by construction; guarded all the same, so P5 covers it.
    inside = a.cases(present, lambda: a.sub(low, segment_start), lambda: a.lit(0))
    position = a.add(segment.byte_offset, inside)
    first_offset = byte_offset(a, position)
    return RangeTerm(
        present=present,
        mdl_index=index,
        byte_offset=first_offset,
        byte_count=count,
        first_pfn=page_index(a, position),
        pfn_count=span_pages(a, first_offset, count),
    )


def plan_external(
    a: Arith[W, B],
    segments: Sequence[Segment[W]],
    mdl_offset: W,
    mdl_length: W,
    forced: bool,
    readings: ArithReadings = DEFAULT_ARITH_READINGS,
) -> Plan[W, B]:
    """Resolve MdlOffset/MdlLength over an MDL chain into a bound check and GPA ranges.

    Without FORCE_MDL_LENGTH the chain is one logical buffer of ``sum(ByteCount)`` bytes and the
    packet carries one range per MDL it touches (reading A5 (a)); under A5 (b) MdlOffset and
    MdlLength apply to the first MDL and every other MDL is sent whole, one range each; under
    A5 (c) only the first MDL is used. With FORCE_MDL_LENGTH, "only the first MDL in the MDL
    chain is used" and the bound is that of reading A3. Under A2 (b) MdlOffset counts from
    StartVa, so the first ByteOffset bytes of it point before the data; only the origin moves:
    the bytes a sub-buffer may cover are still the ByteCount bytes each MDL describes.
    """
    if not segments:
        raise ValueError("plan_external needs at least one MDL")
    first = segments[0]
    origin_ok: B = a.all_of()
    if readings.origin is Origin.START_VA:
        raw_offset = mdl_offset
        origin_ok = a.ule(first.byte_offset, raw_offset)
        mdl_offset = a.cases(
            origin_ok, lambda: a.sub(raw_offset, first.byte_offset), lambda: a.lit(0)
        )
    rest: Sequence[Segment[W]] = ()
    if forced:
        whole = first.byte_count
        bound = forced_bound(a, first, readings.forced_bound)
        used: Sequence[Segment[W]] = segments[:1]
    else:
        used = segments
        if readings.chain_use is not ChainUse.ONE_BUFFER:
            used = segments[:1]
        if readings.chain_use is ChainUse.FIRST_THEN_WHOLE:
            rest = segments[1:]
        total = chain_byte_count(a, used)
        whole = first.byte_count if readings.zero_length is ZeroLength.FIRST_MDL_ONLY else total
        bound = total
    length = _resolve_length(a, mdl_offset, mdl_length, whole, readings.zero_length)
    if forced and readings.forced_bound is ForcedBound.SILENT_CLAMP:
        room = a.cases(a.ule(mdl_offset, bound), lambda: a.sub(bound, mdl_offset), lambda: a.lit(0))
        length = a.cases(a.ult(room, length), lambda: room, lambda: length)
    end = a.add(mdl_offset, length)
    offset_in_range = a.ult(mdl_offset, bound)
    in_bounds = a.all_of(origin_ok, a.ult(a.lit(0), length), a.ule(end, bound))
    ranges: list[RangeTerm[W, B]] = []
    if forced:
        position = a.add(first.byte_offset, mdl_offset)
        first_offset = byte_offset(a, position)
        ranges.append(
            RangeTerm(
                present=a.all_of(),
                mdl_index=0,
                byte_offset=first_offset,
                byte_count=length,
                first_pfn=page_index(a, position),
                pfn_count=span_pages(a, first_offset, length),
            )
        )
    else:
        start = a.lit(0)
        for index, segment in enumerate(used):
            ranges.append(_range_in_segment(a, index, segment, start, mdl_offset, end))
            start = a.add(start, segment.byte_count)
        # READ-A5 (b): each other MDL whole, a range wherever it describes any byte.
        for index, segment in enumerate(rest, start=len(used)):
            ranges.append(
                _range_in_segment(a, index, segment, a.lit(0), a.lit(0), segment.byte_count)
            )
    return Plan(
        forced=forced,
        in_bounds=in_bounds,
        origin_ok=origin_ok,
        offset=mdl_offset,
        offset_in_range=offset_in_range,
        length=length,
        bound=bound,
        whole=whole,
        ranges=tuple(ranges),
    )


def mdl_pfn_count(a: Arith[W, B], segment: Segment[W]) -> W:
    """The PFNs an MDL carries: ``ADDRESS_AND_SIZE_TO_SPAN_PAGES(ByteOffset, ByteCount)``."""
    return span_pages(a, segment.byte_offset, segment.byte_count)


# ---------------------------------------------------------------------------------------------
# The size of the emitted packet (reference §4).
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PacketSize(Generic[W]):
    """``data_offset`` and ``total`` in bytes; ``total`` is rounded up to 8 (without trailer)."""

    data_offset: W
    total: W


def round_up8(a: Arith[W, B], size: W) -> W:
    """``size`` rounded up to the 8-byte units of data_offset8 and length8."""
    return a.band(a.add(size, a.lit(7)), ~7 & UINT64_MAX)


def range_bytes(a: Arith[W, B], pfn_count: W) -> W:
    """One GPA range on the wire: ``byte_count``, ``byte_offset`` and 8 bytes per PFN."""
    return a.add(a.lit(GPA_RANGE_HEADER_SIZE), a.shl(pfn_count, 3))


def _range_bytes_if_present(a: Arith[W, B], term: RangeTerm[W, B]) -> W:
    return a.cases(term.present, lambda: range_bytes(a, term.pfn_count), lambda: a.lit(0))


def packet_size(
    a: Arith[W, B], ranges: Sequence[RangeTerm[W, B]], buffer_length: W
) -> PacketSize[W]:
    """Header, the present ranges back to back, then the in-line payload padded to 8 bytes."""
    header = a.lit(PACKET_DESCRIPTOR_SIZE + GPA_DIRECT_HEADER_SIZE)
    for term in ranges:
        header = a.add(header, _range_bytes_if_present(a, term))
    return PacketSize(data_offset=header, total=round_up8(a, a.add(header, buffer_length)))


def fits_ring(a: Arith[W, B], data_offset: W, total: W, ring_data_size: W) -> B:
    """Reading A13: the packet can ever be written. data_offset8 and length8 are u16 counts of
    8-byte units (WIRE-LENGTH8), and the packet plus its 8-byte trailer must leave a free
    byte in an empty ring (RING-NEVER-FULL)."""
    return a.all_of(
        a.ule(data_offset, a.lit(MAX_PACKET_BYTES)),
        a.ule(total, a.lit(MAX_PACKET_BYTES)),
        a.ult(a.add(total, a.lit(RING_TRAILER_SIZE)), ring_data_size),
    )


def inband_packet_size(a: Arith[W, B], buffer_length: W) -> PacketSize[W]:
    """An in-band packet (type 6): the descriptor, then the payload padded to 8 bytes."""
    header = a.lit(PACKET_DESCRIPTOR_SIZE)
    return PacketSize(data_offset=header, total=round_up8(a, a.add(header, buffer_length)))
