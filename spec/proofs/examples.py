"""The two bounds checks that ``docs/prove-your-own-check.md`` shows, so a test runs exactly them.

Both are written the way a user writes their implementation's check for ``vmbspec prove
--check``: a function over the :class:`~spec.arith.Arith` interface of one MDL's ByteOffset and
ByteCount, MdlOffset, MdlLength and whether FORCE_MDL_LENGTH is set, returning "accept".

* :func:`overflow_safe_check` compares ``MdlOffset <= bound`` and then ``length <= bound -
  MdlOffset``, so nothing can wrap, whatever the width: it is equivalent to the spec's rule.
* :func:`naive_32bit_check` computes ``MdlOffset + length`` in a UINT32, as C code with 32-bit
  locals does. The mask ``& 0xFFFFFFFF`` models the wrap; ``vmbspec prove`` finds the call
  (MdlOffset near 4 GiB) that it wrongly accepts.
"""

from __future__ import annotations

from vmbspec.spec.arith import Arith, B, W

UINT32_MASK = 0xFFFF_FFFF
PAGE_MASK = 0xFFF


def _bound(a: Arith[W, B], byte_offset: W, byte_count: W, forced: bool) -> W:
    """What MdlOffset + length may not exceed: ByteCount, or under FORCE_MDL_LENGTH the end of
    the MDL's last page counted from its first byte (reading A3 (a))."""
    if not forced:
        return byte_count
    span_end = a.add(byte_offset, byte_count)
    page_end = a.band(a.add(span_end, a.lit(PAGE_MASK)), ~PAGE_MASK & 0xFFFF_FFFF_FFFF_FFFF)
    return a.sub(page_end, byte_offset)  # page_end >= span_end >= byte_offset


def _length(a: Arith[W, B], byte_count: W, mdl_offset: W, mdl_length: W) -> W:
    """MdlLength, or for 0 "the entire MDL": the bytes after MdlOffset (reading A1 (a))."""
    rest = a.cases(
        a.ule(mdl_offset, byte_count), lambda: a.sub(byte_count, mdl_offset), lambda: a.lit(0)
    )
    return a.cases(a.eq(mdl_length, a.lit(0)), lambda: rest, lambda: mdl_length)


def overflow_safe_check(
    a: Arith[W, B], byte_offset: W, byte_count: W, mdl_offset: W, mdl_length: W, forced: bool
) -> B:
    """``length != 0 && MdlOffset <= bound && length <= bound - MdlOffset``."""
    bound = _bound(a, byte_offset, byte_count, forced)
    length = _length(a, byte_count, mdl_offset, mdl_length)
    room = a.cases(
        a.ule(mdl_offset, bound), lambda: a.sub(bound, mdl_offset), lambda: a.lit(0)
    )
    return a.all_of(a.ult(a.lit(0), length), a.ule(mdl_offset, bound), a.ule(length, room))


def naive_32bit_check(
    a: Arith[W, B], byte_offset: W, byte_count: W, mdl_offset: W, mdl_length: W, forced: bool
) -> B:
    """``UINT32 end = MdlOffset + length; length != 0 && end <= bound`` - the sum wraps."""
    bound = _bound(a, byte_offset, byte_count, forced)
    length = _length(a, byte_count, mdl_offset, mdl_length)
    end32 = a.band(a.add(mdl_offset, length), UINT32_MASK)  # a UINT32 local: wraps at 2**32
    return a.all_of(a.ult(a.lit(0), length), a.ule(end32, bound))
