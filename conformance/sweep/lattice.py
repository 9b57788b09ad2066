"""The lattice of single-call shapes a sweep runs.

A *shape* is one call, in the plain form the native batch runner takes::

    (mdl, mdl_offset, mdl_length, flags, buffer, buffer_length)

with ``mdl`` None (a NULL MDL) or a tuple of ``(byte_offset, byte_count, pfns)`` per MDL, and
``buffer`` None (a NULL Buffer) or bytes.

Theory of operation
-------------------
The lattice is built from the bounds the spec itself computes (``spec.arith``), not from a
hand list:

* per MDL, ByteOffset in the boundary classes :data:`BYTE_OFFSET_CLASSES`, and ByteCount at,
  one below and one above every page multiple ``m`` of :data:`PAGE_MULTIPLES` and every
  ``m - ByteOffset`` (where ``ByteOffset + ByteCount`` crosses a page, which moves
  ``ROUND_TO_PAGES(ByteOffset + ByteCount)`` and the span of pages). Chains of two and three
  MDLs take each MDL from the smaller set :func:`chain_mdls` (ByteCount 0, 1, one page, and
  the counts that end exactly at and just past the first page boundary), so that the
  product stays runnable; in chains of three, ByteOffset is one of
  :data:`CHAIN3_BYTE_OFFSETS`;
* per chain, the bounds ``spec.arith`` computes for it: the chain's ByteCount
  (``chain_byte_count``) and each MDL's end in it, the FORCE_MDL_LENGTH bound of the first MDL
  (``forced_bound``, reading A3 (a) and (b)), ``ROUND_TO_PAGES(ByteCount)`` of the first MDL.
  MdlOffset is 0 or at, one below or one above a bound; MdlLength is 0, or at, one below or
  one above a bound, or a length that makes ``MdlOffset + MdlLength`` end at, just before or
  just past a bound, or at, just before or just past the u32 wrap point ``2**32``;
* Flags: every combination of the three documented flags, each also with the bit 0x8 outside
  the mask;
* the in-line buffer: :data:`BUFFER_BYTES` bytes on every shape of the grid; then a family of
  NULL-MDL shapes (MdlOffset and MdlLength 0 or 1, every Flags value) and of NULL-buffer
  shapes (BufferLength 0 and 1) on a few MDLs.

Shapes that are the same call are counted once (the grid is a set). PFNs are made up: MDL
number ``i`` of a chain names ``PFN_BASE * (i + 1) + j`` for its page ``j``, so a PFN tells
which MDL and which page it came from.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from vmbspec.spec import arith
from vmbspec.spec.arith import PY, ForcedBound, Segment
from vmbspec.spec.constants import PAGE_SHIFT, UINT32_MAX, VMBUS_CHANNEL_FORMAT_FLAGS

Mdl = tuple[tuple[int, int, tuple[int, ...]], ...]
Shape = tuple[Mdl | None, int, int, int, bytes | None, int]

#: ByteOffset classes (issue 10): the first page's start, +1, +8, the middle, -8 and its end.
BYTE_OFFSET_CLASSES = (0, 1, 8, 0x7FF, 0xFF8, 0xFFF)
#: Page multiples (in pages) the ByteCounts of a single MDL are placed around.
PAGE_MULTIPLES = (0, 1, 2)
#: The reduced lattice (``--quick``): the ends of the first page and one page multiple.
QUICK_BYTE_OFFSETS = (0, 0xFFF)
QUICK_PAGE_MULTIPLES = (0, 1)
#: A bit outside VMBUS_CHANNEL_FORMAT_FLAGS (reading A7).
OUTSIDE_BIT = (VMBUS_CHANNEL_FORMAT_FLAGS + 1)
#: The in-line buffer of the grid's shapes.
BUFFER_BYTES = bytes(range(0x30, 0x38))
PFN_BASE = 0x100000
#: The ring of the fresh channel each shape runs on.
RING_DATA_SIZE = 0x4000
MAX_CHAINS = 3
#: The ByteOffset classes of the MDLs of three-MDL chains.
CHAIN3_BYTE_OFFSETS = (0, 1, 0xFFF)


def pfns_of(index: int, byte_offset: int, byte_count: int) -> tuple[int, ...]:
    """The made-up PFN array of MDL ``index``: exactly the pages it spans (MDL-PFNS)."""
    count = arith.mdl_pfn_count(PY, Segment(byte_offset, byte_count))
    base = PFN_BASE * (index + 1)
    return tuple(range(base, base + count))


def _around(value: int) -> Iterator[int]:
    for delta in (-1, 0, 1):
        if 0 <= value + delta <= UINT32_MAX:
            yield value + delta


def _page(multiple: int) -> int:
    return PY.shl(multiple, PAGE_SHIFT)


def byte_counts(byte_offset: int, multiples: Sequence[int]) -> list[int]:
    """ByteCounts at, below and above each page multiple ``m`` and each ``m - ByteOffset``."""
    values: set[int] = set()
    for multiple in multiples:
        boundary = _page(multiple)
        values.update(_around(boundary))
        if boundary >= byte_offset:
            values.update(_around(PY.sub(boundary, byte_offset)))
    return sorted(values)


def single_mdls(offsets: Sequence[int], multiples: Sequence[int]) -> list[tuple[int, int]]:
    """``(ByteOffset, ByteCount)`` of every MDL of a one-MDL chain."""
    return [(bo, bc) for bo in offsets for bc in byte_counts(bo, multiples)]


def chain_mdls(offsets: Sequence[int]) -> list[tuple[int, int]]:
    """The MDLs chains of two or three are made of: ByteCount 0, 1, one page, and the counts
    ending at and just past the first page boundary after ByteOffset."""
    result: set[tuple[int, int]] = set()
    page = _page(1)
    for bo in offsets:
        to_boundary = PY.sub(page, bo)
        for bc in (0, 1, page, to_boundary, PY.add(to_boundary, 1)):
            result.add((bo, bc))
    return sorted(result)


def bounds(chain: Sequence[tuple[int, int]]) -> set[int]:
    """Every bound the spec computes for ``chain`` (see the module)."""
    segments = [Segment(bo, bc) for bo, bc in chain]
    first = segments[0]
    found = {arith.chain_byte_count(PY, segments), first.byte_count,
             arith.round_to_pages(PY, first.byte_count)}
    for reading in (ForcedBound.PAGE_ROUNDED_SPAN, ForcedBound.ROUNDED_BYTECOUNT):
        found.add(arith.forced_bound(PY, first, reading))
    for end in range(1, len(segments)):
        found.add(arith.chain_byte_count(PY, segments[:end]))
    return found


def offsets_and_lengths(chain: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The ``(MdlOffset, MdlLength)`` pairs of a chain."""
    marks = bounds(chain)
    offsets = {0} | {v for b in marks for v in _around(b)}
    wrap = 1 << 32
    pairs: set[tuple[int, int]] = set()
    for offset in offsets:
        lengths = {0} | {v for b in marks for v in _around(b)}
        ends = marks | {wrap}
        for end in ends:
            if end >= offset:
                lengths.update(v for v in _around(end - offset) if v)
        pairs.update((offset, length) for length in lengths)
    return sorted(pairs)


def flag_values() -> list[int]:
    """Every combination of the documented flags, each also with :data:`OUTSIDE_BIT`."""
    combos = list(range(VMBUS_CHANNEL_FORMAT_FLAGS + 1))
    return combos + [c | OUTSIDE_BIT for c in combos]


@dataclass(frozen=True)
class LatticeSpec:
    """What the lattice holds: chains of 1 to ``chains`` MDLs, from these classes."""

    chains: int = 1
    byte_offsets: tuple[int, ...] = BYTE_OFFSET_CLASSES
    page_multiples: tuple[int, ...] = PAGE_MULTIPLES

    @classmethod
    def quick(cls, chains: int = 1) -> LatticeSpec:
        return cls(chains, QUICK_BYTE_OFFSETS, QUICK_PAGE_MULTIPLES)

    @property
    def is_full(self) -> bool:
        return (self.byte_offsets, self.page_multiples) == (BYTE_OFFSET_CLASSES, PAGE_MULTIPLES)

    def describe(self) -> str:
        kind = "full" if self.is_full else "reduced"
        return (f"{kind} lattice, chains of at most {self.chains} MDL(s), ByteOffset in "
                f"{{{', '.join(hex(b) for b in self.byte_offsets)}}}, ByteCount around "
                f"{', '.join(str(m) for m in self.page_multiples)} page(s)")


def _mdl(chain: Sequence[tuple[int, int]]) -> Mdl:
    return tuple((bo, bc, pfns_of(i, bo, bc)) for i, (bo, bc) in enumerate(chain))


def chains_of(spec: LatticeSpec, length: int) -> list[tuple[tuple[int, int], ...]]:
    """Every chain of ``length`` MDLs in the lattice."""
    if length == 1:
        return [(m,) for m in single_mdls(spec.byte_offsets, spec.page_multiples)]
    offsets = spec.byte_offsets
    if length == MAX_CHAINS:
        # Chains of three: ByteOffset at the ends of the page and 1 (the product of six
        # classes would hold about 16 million shapes).
        offsets = tuple(b for b in offsets if b in CHAIN3_BYTE_OFFSETS)
    parts = chain_mdls(offsets)
    chains: list[tuple[tuple[int, int], ...]] = [()]
    for _ in range(length):
        chains = [(*c, m) for c in chains for m in parts]
    return chains


def grid_shapes(spec: LatticeSpec, length: int) -> Iterator[Shape]:
    """The grid of chains of ``length`` MDLs: chain x (MdlOffset, MdlLength) x Flags."""
    flags = flag_values()
    for chain in chains_of(spec, length):
        mdl = _mdl(chain)
        for offset, mdl_length in offsets_and_lengths(chain):
            for flag in flags:
                yield (mdl, offset, mdl_length, flag, BUFFER_BYTES, len(BUFFER_BYTES))


def null_shapes(spec: LatticeSpec) -> Iterator[Shape]:
    """NULL MDL shapes, and NULL Buffer shapes on the one-page MDLs."""
    for offset in (0, 1):
        for mdl_length in (0, 1):
            for flag in flag_values():
                for buffer in (None, BUFFER_BYTES):
                    size = 0 if buffer is None else len(buffer)
                    yield (None, offset, mdl_length, flag, buffer, size)
                yield (None, offset, mdl_length, flag, None, 1)
    for bo in spec.byte_offsets:
        mdl = _mdl([(bo, PY.sub(_page(1), bo))])
        for flag in flag_values():
            for offset, mdl_length in ((0, 0), (0, 1), (1, 0)):
                for buffer_length in (0, 1):
                    yield (mdl, offset, mdl_length, flag, None, buffer_length)


def shapes(spec: LatticeSpec, length: int) -> Iterator[Shape]:
    """The shapes of chains of ``length`` MDLs (0: the NULL-MDL and NULL-buffer family), in a
    fixed order and without repeats (chains, pairs and flags are each distinct, so the grid
    has none by construction; the small family is deduplicated)."""
    if length == 0:
        return iter(dict.fromkeys(null_shapes(spec)))
    return grid_shapes(spec, length)


def _check(spec: LatticeSpec) -> None:
    if not 1 <= spec.chains <= MAX_CHAINS:
        raise ValueError(f"chains of 1 to {MAX_CHAINS} MDLs, not {spec.chains}")


def sizes(spec: LatticeSpec) -> dict[int, int]:
    """The number of shapes per chain length, without building them."""
    _check(spec)
    counts = {0: len(dict.fromkeys(null_shapes(spec)))}
    flags = len(flag_values())
    for length in range(1, spec.chains + 1):
        counts[length] = flags * sum(len(offsets_and_lengths(c))
                                     for c in chains_of(spec, length))
    return counts


def build(spec: LatticeSpec) -> dict[int, list[Shape]]:
    """The whole lattice in memory, keyed by chain length (for small lattices and tests; a
    sweep streams :func:`shapes`)."""
    _check(spec)
    return {length: list(shapes(spec, length)) for length in range(spec.chains + 1)}


def chain_length(shape: Shape) -> int:
    return 0 if shape[0] is None else len(shape[0])
