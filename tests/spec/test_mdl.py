"""Tests of spec.mdl: MdlSegment and MdlChain validate on construction; the macro wrappers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmbspec.spec.errors import InvalidValue
from vmbspec.spec.mdl import (
    ADDRESS_AND_SIZE_TO_SPAN_PAGES,
    BYTE_OFFSET,
    ROUND_TO_PAGES,
    MdlChain,
    MdlSegment,
)


def span(byte_offset: int, byte_count: int) -> int:
    """wdm.h ADDRESS_AND_SIZE_TO_SPAN_PAGES, computed with a ceiling division."""
    return -(-(byte_offset % 4096 + byte_count) // 4096)


# ---------------------------------------------------------------------------------------------
# MdlSegment
# ---------------------------------------------------------------------------------------------


@given(st.integers(0, 0xFFF), st.integers(0, 0x10_0000))
def test_segment_accepts_exactly_span_pages_pfns(byte_offset: int, byte_count: int) -> None:
    pfns = tuple(range(7, 7 + span(byte_offset, byte_count)))
    segment = MdlSegment(byte_offset, byte_count, pfns)
    assert segment.pfns == pfns
    assert segment.as_tuple() == (byte_offset, byte_count, pfns)
    assert (segment.as_term.byte_offset, segment.as_term.byte_count) == (byte_offset, byte_count)


@pytest.mark.parametrize("byte_offset", [0x1000, 0x1FFF, 0xFFFF_FFFF])
def test_segment_rejects_byteoffset_of_a_page_or_more(byte_offset: int) -> None:
    with pytest.raises(InvalidValue, match="ByteOffset"):
        MdlSegment(byte_offset, 0x10, (1,))


def test_segment_rejects_negative_byteoffset() -> None:
    with pytest.raises(InvalidValue, match="ByteOffset"):
        MdlSegment(-1, 0x10, (1,))


@pytest.mark.parametrize("byte_count", [-1, 0x1_0000_0000])
def test_segment_rejects_bytecount_outside_uint32(byte_count: int) -> None:
    with pytest.raises(InvalidValue, match="ByteCount"):
        MdlSegment(0, byte_count, (1,))


@pytest.mark.parametrize("pfn", [-1, 2**64])
def test_segment_rejects_pfn_outside_64_bits(pfn: int) -> None:
    with pytest.raises(InvalidValue, match=r"PFN\[1\]"):
        MdlSegment(0, 0x2000, (5, pfn))


@pytest.mark.parametrize(
    ("byte_offset", "byte_count", "pfns"),
    [
        (0x100, 0x2000, (1, 2)),  # needs 3
        (0x100, 0x2000, (1, 2, 3, 4)),  # one unused PFN
        (0, 0x1000, ()),  # needs 1
        (0, 0, (1,)),  # an empty MDL at page offset 0 spans no page
    ],
)
def test_segment_rejects_wrong_pfn_count_citing_mdl_pfns(
    byte_offset: int, byte_count: int, pfns: tuple[int, ...]
) -> None:
    with pytest.raises(InvalidValue, match=r"\[MDL-PFNS\].*exactly"):
        MdlSegment(byte_offset, byte_count, pfns)


def test_segment_with_zero_bytecount_inside_a_page_has_one_pfn() -> None:
    assert MdlSegment(0x100, 0, (9,)).pfns == (9,)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"byte_offset": "0"}, "ByteOffset"),
        ({"byte_offset": True}, "ByteOffset"),
        ({"byte_offset": 0.0}, "ByteOffset"),
        ({"byte_count": None}, "ByteCount"),
        ({"byte_count": False}, "ByteCount"),
        ({"pfns": [1]}, "pfns"),
        ({"pfns": ("1",)}, r"PFN\[0\]"),
        ({"pfns": (True,)}, r"PFN\[0\]"),
    ],
)
def test_segment_rejects_wrong_types_naming_the_field(
    kwargs: dict[str, object], field: str
) -> None:
    args: dict[str, object] = {"byte_offset": 0, "byte_count": 0x10, "pfns": (1,)}
    args.update(kwargs)
    with pytest.raises(TypeError, match=field):
        MdlSegment(**args)  # type: ignore[arg-type]


def test_invalid_value_is_a_value_error() -> None:
    assert issubclass(InvalidValue, ValueError)


def test_segment_is_frozen() -> None:
    segment = MdlSegment.with_pages(0, 0x10)
    with pytest.raises(AttributeError):
        segment.byte_count = 5  # type: ignore[misc]


@given(st.integers(0, 0xFFF), st.integers(0, 0x10_0000), st.integers(0, 2**40))
def test_with_pages_builds_consecutive_pfns_of_the_right_count(
    byte_offset: int, byte_count: int, first_pfn: int
) -> None:
    segment = MdlSegment.with_pages(byte_offset, byte_count, first_pfn)
    n = span(byte_offset, byte_count)
    assert segment.pfns == tuple(first_pfn + i for i in range(n))
    assert (segment.byte_offset, segment.byte_count) == (byte_offset, byte_count)


def test_with_pages_default_first_pfn() -> None:
    assert MdlSegment.with_pages(0x100, 0x2000).pfns == (0x1000, 0x1001, 0x1002)


@pytest.mark.parametrize(("byte_offset", "byte_count"), [(0x1000, 0), (-1, 0), (0, -1)])
def test_with_pages_rejects_invalid_fields(byte_offset: int, byte_count: int) -> None:
    with pytest.raises(InvalidValue):
        MdlSegment.with_pages(byte_offset, byte_count)


# ---------------------------------------------------------------------------------------------
# MdlChain
# ---------------------------------------------------------------------------------------------


def test_chain_must_not_be_empty() -> None:
    with pytest.raises(InvalidValue, match="at least one MDL"):
        MdlChain(())
    with pytest.raises(InvalidValue):
        MdlChain.of([])


def test_chain_given_a_list_is_a_type_error_pointing_at_of() -> None:
    with pytest.raises(TypeError, match=r"MdlChain\.of"):
        MdlChain([MdlSegment.with_pages(0, 1)])  # type: ignore[arg-type]


def test_with_pages_names_bytecount_when_it_is_negative() -> None:
    with pytest.raises(InvalidValue, match="ByteCount"):
        MdlSegment.with_pages(0, -1)


def test_chain_holds_only_segments() -> None:
    with pytest.raises(TypeError, match="MdlSegment"):
        MdlChain((MdlSegment.with_pages(0, 1), (0, 1, (1,))))  # type: ignore[arg-type]


def test_chain_of_a_list_keeps_order_and_sums_bytecounts() -> None:
    segments = [MdlSegment.with_pages(0x10, 0x100), MdlSegment.with_pages(0, 0x2000, 0x50)]
    chain = MdlChain.of(segments)
    assert chain.segments == tuple(segments)
    assert chain.first is segments[0]
    assert chain.byte_count == 0x2100
    assert chain.as_tuples() == (segments[0].as_tuple(), segments[1].as_tuple())


# ---------------------------------------------------------------------------------------------
# The macro wrappers validate their inputs
# ---------------------------------------------------------------------------------------------


@given(st.integers(0, 2**64 - 1))
def test_byte_offset_wrapper(va: int) -> None:
    assert BYTE_OFFSET(va) == va % 4096


@given(st.integers(0, 0xFFFF_FFFF))
def test_round_to_pages_wrapper(size: int) -> None:
    assert ROUND_TO_PAGES(size) == -(-size // 4096) * 4096


@given(st.integers(0, 2**63), st.integers(0, 0xFFFF_FFFF))
def test_span_pages_wrapper(va: int, size: int) -> None:
    assert ADDRESS_AND_SIZE_TO_SPAN_PAGES(va, size) == span(va, size)


def test_macro_wrappers_reject_bad_inputs() -> None:
    with pytest.raises(InvalidValue, match="size"):
        ROUND_TO_PAGES(0x1_0000_0000)
    with pytest.raises(InvalidValue, match="va"):
        BYTE_OFFSET(-1)
    with pytest.raises(TypeError, match="va"):
        ADDRESS_AND_SIZE_TO_SPAN_PAGES("0", 1)  # type: ignore[arg-type]
