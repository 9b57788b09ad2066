"""Tests of spec.arith: the wdm.h macros, the no-wrap integer model, plan_external, sizes.

Expected values are computed here with plain Python ints from the definitions quoted in the
reference (§3 for the macros, §4 for the wire sizes), not by calling the code under test.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vmbspec.spec import arith
from vmbspec.spec.arith import PY, ArithReadings, ForcedBound, Segment, ZeroLength
from vmbspec.spec.errors import ArithmeticWrap

UINT32 = st.integers(0, 0xFFFF_FFFF)
U64_MAX = 2**64 - 1


# ---------------------------------------------------------------------------------------------
# Independent oracles (reference §3: wdm.h)
# ---------------------------------------------------------------------------------------------


def wdm_byte_offset(va: int) -> int:
    return va % 4096


def wdm_round_to_pages(n: int) -> int:
    return -(-n // 4096) * 4096  # ceiling to a multiple of the page size


def wdm_span_pages(va: int, n: int) -> int:
    return -(-(va % 4096 + n) // 4096)


def mdl_pfns(byte_offset: int, byte_count: int) -> int:
    return wdm_span_pages(byte_offset, byte_count)


# ---------------------------------------------------------------------------------------------
# Macros
# ---------------------------------------------------------------------------------------------


@given(st.integers(0, U64_MAX))
def test_byte_offset_is_the_position_inside_the_page(va: int) -> None:
    assert arith.byte_offset(PY, va) == wdm_byte_offset(va)


@given(UINT32)
def test_round_to_pages_is_the_next_page_multiple(n: int) -> None:
    rounded = arith.round_to_pages(PY, n)
    assert rounded == wdm_round_to_pages(n)
    assert rounded % 4096 == 0 and n <= rounded < n + 4096


@given(st.integers(0, U64_MAX - 0x1_0000_0000), UINT32)
def test_span_pages_counts_the_pages_a_buffer_touches(va: int, n: int) -> None:
    assert arith.span_pages(PY, va, n) == wdm_span_pages(va, n)


@pytest.mark.parametrize(
    ("va", "n", "pages"),
    [(0, 0, 0), (0x100, 0, 1), (0, 1, 1), (0xFFF, 2, 2), (0x100, 0x2000, 3), (0, 0x2000, 2)],
)
def test_span_pages_examples(va: int, n: int, pages: int) -> None:
    assert arith.span_pages(PY, va, n) == pages


@given(st.integers(0, U64_MAX))
def test_page_index_is_the_page_number(position: int) -> None:
    assert arith.page_index(PY, position) == position // 4096


# ---------------------------------------------------------------------------------------------
# PyArith: never wraps
# ---------------------------------------------------------------------------------------------


def test_pyarith_add_raises_on_64_bit_wrap() -> None:
    assert PY.add(U64_MAX - 1, 1) == U64_MAX
    with pytest.raises(ArithmeticWrap, match="wraps"):
        PY.add(U64_MAX, 1)


def test_pyarith_sub_raises_below_zero() -> None:
    assert PY.sub(5, 5) == 0
    with pytest.raises(ArithmeticWrap, match="below zero"):
        PY.sub(4, 5)


def test_pyarith_shl_raises_when_bits_are_lost() -> None:
    assert PY.shl(1, 63) == 2**63
    with pytest.raises(ArithmeticWrap, match="loses bits"):
        PY.shl(1, 64)
    with pytest.raises(ArithmeticWrap):
        PY.shl(2**61, 3)


def test_pyarith_lit_rejects_values_outside_64_bits() -> None:
    with pytest.raises(ArithmeticWrap):
        PY.lit(-1)
    with pytest.raises(ArithmeticWrap):
        PY.lit(2**64)


def test_round_to_pages_raises_instead_of_wrapping_at_the_top_of_64_bits() -> None:
    with pytest.raises(ArithmeticWrap):
        arith.round_to_pages(PY, U64_MAX)


def test_arithmetic_wrap_is_an_arithmetic_error() -> None:
    assert issubclass(ArithmeticWrap, ArithmeticError)


def test_pyarith_cases_evaluates_only_the_branch_taken() -> None:
    def boom() -> int:
        raise AssertionError("the other branch was evaluated")

    assert PY.cases(True, lambda: 1, boom) == 1
    assert PY.cases(False, boom, lambda: 2) == 2


# ---------------------------------------------------------------------------------------------
# plan_external and packet_size: the worked example of reference §4
# ---------------------------------------------------------------------------------------------


def present(plan: arith.Plan[int, bool]) -> list[arith.RangeTerm[int, bool]]:
    return [term for term in plan.ranges if term.present]


def test_worked_example_one_range_of_three_pfns() -> None:
    plan = arith.plan_external(PY, [Segment(0x100, 0x2000)], 0, 0, False)
    assert plan.in_bounds
    assert plan.length == 0x2000
    (term,) = present(plan)
    assert (term.mdl_index, term.byte_offset, term.byte_count) == (0, 0x100, 0x2000)
    assert (term.first_pfn, term.pfn_count) == (0, 3)


def test_worked_example_packet_size_56_and_120_bytes() -> None:
    plan = arith.plan_external(PY, [Segment(0x100, 0x2000)], 0, 0, False)
    size = arith.packet_size(PY, plan.ranges, 0x40)
    # descriptor 16 + GPA header 8 + range header 8 + 3 PFNs * 8
    assert size.data_offset == 56 and size.data_offset // 8 == 7
    assert size.total == 120 and size.total // 8 == 15


def test_packet_size_skips_absent_ranges_and_pads_to_8() -> None:
    plan = arith.plan_external(
        PY, [Segment(0, 0x1000), Segment(0, 0x1000)], 0x10, 0x20, False
    )
    assert [t.present for t in plan.ranges] == [True, False]
    size = arith.packet_size(PY, plan.ranges, 3)
    assert size.data_offset == 16 + 8 + 8 + 8
    assert size.total == 48


def test_inband_packet_size_is_descriptor_then_padded_payload() -> None:
    size = arith.inband_packet_size(PY, 0x41)
    assert size.data_offset == 16
    assert size.total == 16 + 0x48


# ---------------------------------------------------------------------------------------------
# plan_external: properties over MDL chains
# ---------------------------------------------------------------------------------------------

SEGMENT = st.builds(
    Segment,
    st.integers(0, 0xFFF),
    st.one_of(st.integers(0, 0x3000), st.integers(0, 0xFFFF_FFFF)),
)
CHAINS = st.lists(SEGMENT, min_size=1, max_size=4)


@st.composite
def calls(draw: st.DrawFn) -> tuple[list[Segment[int]], int, int, bool]:
    chain = draw(CHAINS)
    total = sum(s.byte_count for s in chain)
    near = st.integers(0, total + 0x2000)
    offset = draw(st.one_of(near, UINT32, st.just(0)))
    length = draw(st.one_of(near, UINT32, st.just(0)))
    return chain, offset, length, draw(st.booleans())


def oracle_in_bounds(chain: list[Segment[int]], offset: int, length: int, forced: bool) -> bool:
    """Default readings (A1 (a), A3 (a)) over plain ints."""
    if forced:
        first = chain[0]
        whole = first.byte_count
        bound = wdm_round_to_pages(first.byte_offset + first.byte_count) - first.byte_offset
    else:
        whole = bound = sum(s.byte_count for s in chain)
    resolved = length if length else max(whole - offset, 0)
    return resolved > 0 and offset + resolved <= bound


@settings(max_examples=400)
@given(calls())
def test_accepted_plans_name_only_pfns_inside_each_mdl(
    case: tuple[list[Segment[int]], int, int, bool],
) -> None:
    chain, offset, length, forced = case
    plan = arith.plan_external(PY, chain, offset, length, forced)
    assert bool(plan.in_bounds) == oracle_in_bounds(chain, offset, length, forced)
    if not plan.in_bounds:
        return
    terms = present(plan)
    assert terms, "an accepted plan sends at least one range"
    if forced:
        assert [t.mdl_index for t in terms] == [0]
    for term in terms:
        segment = chain[term.mdl_index]
        assert term.first_pfn >= 0
        assert term.first_pfn + term.pfn_count <= mdl_pfns(segment.byte_offset, segment.byte_count)
        assert 0 <= term.byte_offset < 4096
        assert term.byte_count > 0
        assert term.pfn_count == wdm_span_pages(term.byte_offset, term.byte_count)
    assert sum(t.byte_count for t in terms) == plan.length
    assert [t.mdl_index for t in terms] == sorted(t.mdl_index for t in terms)


@settings(max_examples=300)
@given(calls())
def test_unforced_ranges_are_exactly_the_sub_buffer_split_at_mdl_boundaries(
    case: tuple[list[Segment[int]], int, int, bool],
) -> None:
    chain, offset, length, _ = case
    plan = arith.plan_external(PY, chain, offset, length, False)
    assume(plan.in_bounds)
    end = offset + plan.length
    expected = []
    start = 0
    for index, segment in enumerate(chain):
        low, high = max(start, offset), min(start + segment.byte_count, end)
        if low < high:
            position = segment.byte_offset + (low - start)
            expected.append((index, position % 4096, high - low, position // 4096))
        start += segment.byte_count
    got = [(t.mdl_index, t.byte_offset, t.byte_count, t.first_pfn) for t in present(plan)]
    assert got == expected


def test_plan_external_refuses_an_empty_chain() -> None:
    with pytest.raises(ValueError):
        arith.plan_external(PY, [], 0, 0, False)


def test_forced_plan_uses_the_page_rounded_bound_of_the_first_mdl_only() -> None:
    chain = [Segment(0x100, 0x1800), Segment(0, 0x10000)]
    plan = arith.plan_external(PY, chain, 0, 0x1F00, True)
    assert plan.bound == 0x2000 - 0x100
    assert plan.in_bounds
    assert not arith.plan_external(PY, chain, 0, 0x1F01, True).in_bounds


def test_zero_length_first_mdl_reading_resolves_to_the_first_mdl() -> None:
    readings = ArithReadings(zero_length=ZeroLength.FIRST_MDL_ONLY)
    plan = arith.plan_external(
        PY, [Segment(0, 0x1000), Segment(0, 0x1000)], 0x10, 0, False, readings
    )
    assert plan.in_bounds and plan.length == 0x1000 - 0x10


def test_zero_length_error_unless_offset_zero_reading() -> None:
    readings = ArithReadings(zero_length=ZeroLength.ERROR_UNLESS_OFFSET_ZERO)
    chain = [Segment(0, 0x1000)]
    assert not arith.plan_external(PY, chain, 0x10, 0, False, readings).in_bounds
    assert arith.plan_external(PY, chain, 0, 0, False, readings).length == 0x1000


def test_silent_clamp_cuts_the_length_to_the_safe_bound() -> None:
    readings = ArithReadings(forced_bound=ForcedBound.SILENT_CLAMP)
    plan = arith.plan_external(PY, [Segment(0x100, 0x1800)], 0, 0x5000, True, readings)
    assert plan.in_bounds and plan.length == 0x1F00


def test_rounded_bytecount_reading_reads_past_the_pfn_array() -> None:
    # A3 (b): the bound ROUND_TO_PAGES(ByteCount) ignores ByteOffset. With ByteOffset 0x800 and
    # ByteCount 0x100 the MDL has one PFN, yet (b) lets 0x1000 bytes through: they end at
    # position 0x1800, in PFN index 1.
    segment = Segment(0x800, 0x100)
    assert mdl_pfns(0x800, 0x100) == 1
    unsafe = ArithReadings(forced_bound=ForcedBound.ROUNDED_BYTECOUNT)
    plan = arith.plan_external(PY, [segment], 0, 0x1000, True, unsafe)
    assert plan.in_bounds
    (term,) = present(plan)
    assert term.first_pfn + term.pfn_count > mdl_pfns(0x800, 0x100)
    # The default reading refuses the same call.
    assert not arith.plan_external(PY, [segment], 0, 0x1000, True).in_bounds


def test_not_enforced_reading_accepts_any_length() -> None:
    readings = ArithReadings(forced_bound=ForcedBound.NOT_ENFORCED)
    plan = arith.plan_external(PY, [Segment(0, 0x10)], 0, 0xFFFF_FFFF, True, readings)
    assert plan.in_bounds


@given(st.lists(SEGMENT, min_size=1, max_size=4))
def test_chain_byte_count_is_the_sum_of_bytecounts(chain: list[Segment[int]]) -> None:
    assert arith.chain_byte_count(PY, chain) == sum(s.byte_count for s in chain)


@given(st.integers(0, 0xFFF), UINT32)
def test_mdl_pfn_count_is_the_span_of_the_mdl(byte_offset: int, byte_count: int) -> None:
    assert arith.mdl_pfn_count(PY, Segment(byte_offset, byte_count)) == mdl_pfns(
        byte_offset, byte_count
    )
