"""Tests of spec.rules: one group per rule of evaluate_send, each asserting the requirement IDs
the verdict cites; then properties over random chains and calls.

Expected ranges, sizes and bounds are computed here from the reference (§3 MDL arithmetic,
§4 wire sizes) with plain ints, not with spec.arith.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmbspec.spec.call import SendCall
from vmbspec.spec.constants import NT_ERROR, NtStatus, PacketType, SendFlags
from vmbspec.spec.lifecycle import ChannelState, PacketState
from vmbspec.spec.mdl import MdlChain, MdlSegment
from vmbspec.spec.readings import PROFILES, Profile, parse_profile
from vmbspec.spec.rules import (
    Accepted,
    Disposition,
    ExpectedRange,
    Rejected,
    SendContext,
    StatusRule,
    Verdict,
    evaluate_send,
)

WAIT = int(SendFlags.WAIT_FOR_COMPLETION)
FORCE = int(SendFlags.FORCE_MDL_LENGTH)
PAGED = int(SendFlags.PAGED_BUFFER)
PAYLOAD = bytes(range(0x40))
S = NtStatus


# ---------------------------------------------------------------------------------------------
# Helpers and oracles
# ---------------------------------------------------------------------------------------------


def seg(byte_offset: int, byte_count: int, base: int = 0x1000) -> MdlSegment:
    return MdlSegment.with_pages(byte_offset, byte_count, base)


def chain(*segments: MdlSegment) -> MdlChain:
    return MdlChain.of(segments)


ONE_PAGE = chain(seg(0, 0x1000))


def send(
    mdl: MdlChain | None = ONE_PAGE,
    offset: int = 0,
    length: int = 0,
    flags: int = WAIT,
    buffer: bytes | None = PAYLOAD,
    buffer_length: int | None = None,
) -> SendCall:
    if buffer_length is None:
        buffer_length = 0 if buffer is None else len(buffer)
    return SendCall(buffer, buffer_length, mdl, offset, length, flags)


def context(
    packet: PacketState = PacketState.IDLE,
    channel: ChannelState = ChannelState.OPEN,
    ring: int = 0x10000,
    free: int | None = None,
    queue_empty: bool = True,
) -> SendContext:
    return SendContext(packet, channel, ring, ring if free is None else free, queue_empty)


def evaluate(call: SendCall, ctx: SendContext | None = None, profile: str = "default") -> Verdict:
    return evaluate_send(call, ctx or context(), parse_profile(profile))


def only_accepted(verdict: Verdict) -> Accepted:
    (outcome,) = verdict.alternatives
    assert isinstance(outcome, Accepted), verdict.describe()
    return outcome


def only_rejected(verdict: Verdict) -> Rejected:
    (outcome,) = verdict.alternatives
    assert isinstance(outcome, Rejected), verdict.describe()
    return outcome


def kinds(verdict: Verdict) -> list[type]:
    return [type(o) for o in verdict.alternatives]


def round8(n: int) -> int:
    return -(-n // 8) * 8


def pfn_count(byte_offset: int, byte_count: int) -> int:
    return -(-(byte_offset + byte_count) // 4096)


def gpa_size(ranges: list[tuple[int, int]], buffer_length: int) -> tuple[int, int]:
    """(data_offset, total) of a GPA-direct packet: descriptor 16, header 8, ranges, payload."""
    data_offset = 16 + 8 + sum(8 + 8 * pfn_count(bo, bc) for bo, bc in ranges)
    return data_offset, round8(data_offset + buffer_length)


def rng(mdl: MdlSegment, mdl_index: int, position: int, count: int) -> ExpectedRange:
    """The range covering ``count`` bytes from ``position`` (counted from the MDL's first page)."""
    first, byte_offset = position // 4096, position % 4096
    pfns = mdl.pfns[first : first + pfn_count(byte_offset, count)]
    return ExpectedRange(mdl_index, byte_offset, count, pfns)


# ---------------------------------------------------------------------------------------------
# READ-A10: only an idle or completed packet may be sent
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [PacketState.QUEUED, PacketState.IN_RING, PacketState.FREED])
def test_sending_a_busy_or_freed_packet_is_a_contract_violation(state: PacketState) -> None:
    rejected = only_rejected(evaluate(send(), context(packet=state)))
    assert rejected.contract_violation
    assert "READ-A10" in rejected.violated
    assert rejected.statuses.allows(S.STATUS_INVALID_DEVICE_STATE)


def test_contract_violation_wins_over_every_other_rule() -> None:
    # Even a call that breaks other rules is reported as the contract violation alone.
    call = send(flags=0, buffer=None, buffer_length=8)
    rejected = only_rejected(evaluate(call, context(packet=PacketState.IN_RING)))
    assert rejected.contract_violation and "SEED-WAIT-MUST" not in rejected.violated


def test_a_completed_packet_may_be_sent_again() -> None:
    accepted = only_accepted(evaluate(send(), context(packet=PacketState.COMPLETED)))
    assert "KMCL-REUSE" in accepted.requirements
    assert "KMCL-REUSE" not in only_accepted(evaluate(send())).requirements


# ---------------------------------------------------------------------------------------------
# READ-A7: flag bits outside 0x7
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [0x8, 0x10, 0x8000_0000])
def test_unknown_flag_bits_may_be_ignored_or_rejected_by_default(extra: int) -> None:
    verdict = evaluate(send(flags=WAIT | extra))
    assert kinds(verdict) == [Accepted, Rejected]
    accepted, plain = verdict.accepted, only_accepted(evaluate(send(flags=WAIT)))
    assert accepted is not None
    # The unknown bits change nothing in the packet; the accepted outcome cites READ-A7 too.
    assert replace(accepted, requirements=()) == replace(plain, requirements=())
    assert "READ-A7" in accepted.requirements
    rejected = verdict.rejected
    assert rejected is not None and rejected.violated == ("READ-A7",)
    assert not rejected.contract_violation


def test_storvsc_flags_0x13_are_the_documented_bits_plus_unknown_ones() -> None:
    verdict = evaluate(send(flags=0x13, length=0x800))
    accepted = verdict.accepted
    assert accepted is not None and accepted.ranges[0].byte_count == 0x800  # FORCE honoured
    assert verdict.rejected is not None and "READ-A7" in verdict.rejected.violated


def test_flags_ignored_profile_only_accepts_unknown_bits() -> None:
    accepted = only_accepted(evaluate(send(flags=WAIT | 0x8), profile="flags-ignored"))
    assert accepted.waits_for_completion


def test_flags_rejected_profile_only_rejects_unknown_bits() -> None:
    rejected = only_rejected(evaluate(send(flags=WAIT | 0x8), profile="flags-rejected"))
    assert rejected.violated == ("READ-A7",)


def test_known_flags_alone_never_raise_read_a7() -> None:
    for flags in range(8):
        assert "READ-A7" not in evaluate(send(flags=flags | WAIT)).requirements


# ---------------------------------------------------------------------------------------------
# SEED-WAIT-MUST / READ-A4: "This flag must be set."
# ---------------------------------------------------------------------------------------------


def test_missing_wait_flag_is_rejected_by_default() -> None:
    rejected = only_rejected(evaluate(send(flags=0)))
    assert set(rejected.violated) == {"SEED-WAIT-MUST", "READ-A4"}


def test_missing_wait_flag_under_caller_rule_may_be_accepted_or_rejected() -> None:
    verdict = evaluate(send(flags=0), profile="wait-caller-rule")
    assert kinds(verdict) == [Accepted, Rejected]
    accepted = verdict.accepted
    assert accepted is not None
    assert not accepted.waits_for_completion
    assert accepted.completion_requested is None  # either descriptor bit conforms
    assert verdict.rejected is not None
    assert set(verdict.rejected.violated) == {"SEED-WAIT-MUST", "READ-A4"}


def test_missing_wait_flag_under_implicit_reading_is_accepted_and_waits() -> None:
    accepted = only_accepted(evaluate(send(flags=0), profile="wait-implicit"))
    assert accepted.waits_for_completion
    assert accepted.completion_requested is True
    assert {"SEED-WAIT-MUST", "READ-A4"} <= set(accepted.requirements)


def test_wait_flag_set_requests_completion() -> None:
    accepted = only_accepted(evaluate(send()))
    assert accepted.waits_for_completion and accepted.completion_requested is True
    assert {"SEED-WAIT", "KMCL-COMPLETION"} <= set(accepted.requirements)


# ---------------------------------------------------------------------------------------------
# READ-A14: Buffer NULL with BufferLength > 0
# ---------------------------------------------------------------------------------------------


def test_null_buffer_with_a_length_is_rejected() -> None:
    rejected = only_rejected(evaluate(send(buffer=None, buffer_length=0x10)))
    assert "READ-A14" in rejected.violated


def test_null_buffer_with_length_zero_sends_no_inline_payload() -> None:
    accepted = only_accepted(evaluate(send(buffer=None)))
    assert accepted.payload == b""
    assert (accepted.data_offset, accepted.total) == gpa_size([(0, 0x1000)], 0)


# ---------------------------------------------------------------------------------------------
# READ-A6: ExternalDataMdl NULL
# ---------------------------------------------------------------------------------------------


def test_null_mdl_with_zero_offset_and_length_sends_an_inband_packet() -> None:
    accepted = only_accepted(evaluate(send(mdl=None, buffer=b"abc")))
    assert accepted.packet_type is PacketType.DATA_INBAND
    assert accepted.ranges == ()
    assert accepted.data_offset == 16
    assert accepted.total == round8(16 + 3)
    assert accepted.payload == b"abc"
    assert "READ-A6" in accepted.requirements


@pytest.mark.parametrize(("offset", "length"), [(1, 0), (0, 1), (0x1000, 0x1000)])
def test_null_mdl_with_an_offset_or_length_is_rejected(offset: int, length: int) -> None:
    rejected = only_rejected(evaluate(send(mdl=None, offset=offset, length=length)))
    assert {"READ-A6", "SEED-MDL"} <= set(rejected.violated)


def test_null_mdl_is_always_rejected_under_reading_a6_b() -> None:
    rejected = only_rejected(evaluate(send(mdl=None), profile="default+A6=b"))
    assert "READ-A6" in rejected.violated


# ---------------------------------------------------------------------------------------------
# SEED-MDLOFFSET / SEED-MDLLENGTH: the sub-buffer lies in the chain
# ---------------------------------------------------------------------------------------------

CHAIN_1800 = chain(seg(0x10, 0x1000, 0x100), seg(0, 0x800, 0x200))


def test_sub_buffer_ending_exactly_at_the_chain_end_is_accepted() -> None:
    accepted = only_accepted(evaluate(send(CHAIN_1800, offset=0x800, length=0x1000)))
    first, second = CHAIN_1800.segments
    assert accepted.ranges == (rng(first, 0, 0x810, 0x800), rng(second, 1, 0, 0x800))
    assert sum(r.byte_count for r in accepted.ranges) == 0x1000


@pytest.mark.parametrize(("offset", "length"), [(0x800, 0x1001), (0x1800, 1), (0, 0x1801)])
def test_sub_buffer_one_byte_past_the_chain_is_rejected(offset: int, length: int) -> None:
    rejected = only_rejected(evaluate(send(CHAIN_1800, offset=offset, length=length)))
    assert {"SEED-MDLOFFSET", "SEED-MDLLENGTH"} <= set(rejected.violated)
    assert "SEED-FORCE-BOUND" not in rejected.violated


def test_offset_plus_length_wrapping_32_bits_is_rejected() -> None:
    # (0xFFFFF000 + 0x2000) mod 2**32 = 0x1000 would pass a 32-bit check on a 0x2000-byte MDL.
    call = send(chain(seg(0, 0x2000)), offset=0xFFFF_F000, length=0x2000)
    rejected = only_rejected(evaluate(call))
    assert {"SEED-MDLOFFSET", "SEED-MDLLENGTH"} <= set(rejected.violated)
    assert any("0x100001000" in reason for reason in rejected.reasons)


def test_offset_past_the_chain_with_length_zero_is_rejected_as_out_of_bounds() -> None:
    rejected = only_rejected(evaluate(send(CHAIN_1800, offset=0x1801, length=0)))
    assert {"SEED-MDLOFFSET", "SEED-MDLLENGTH"} <= set(rejected.violated)


# ---------------------------------------------------------------------------------------------
# SEED-FORCE-BOUND / READ-A3 and SEED-FORCE-FIRST
# ---------------------------------------------------------------------------------------------

FORCED_MDL = seg(0x100, 0x1800, 0x40)  # ROUND_TO_PAGES(0x1900) - 0x100 = 0x1F00
FORCED_BOUND = (0x1900 + 0xFFF) // 0x1000 * 0x1000 - 0x100


@pytest.mark.parametrize("offset", [0, 0x100, FORCED_BOUND - 1])
def test_force_allows_up_to_the_page_rounded_end_of_the_mdl(offset: int) -> None:
    length = FORCED_BOUND - offset
    accepted = only_accepted(evaluate(send(chain(FORCED_MDL), offset, length, WAIT | FORCE)))
    assert accepted.ranges == (rng(FORCED_MDL, 0, 0x100 + offset, length),)
    assert {"SEED-FORCE-LENGTH", "SEED-FORCE-BOUND", "READ-A3"} <= set(accepted.requirements)
    assert accepted.unsafe == ()


@pytest.mark.parametrize("offset", [0, 0x100, FORCED_BOUND - 1])
def test_force_rejects_one_byte_past_the_page_rounded_end(offset: int) -> None:
    length = FORCED_BOUND - offset + 1
    rejected = only_rejected(evaluate(send(chain(FORCED_MDL), offset, length, WAIT | FORCE)))
    assert {"SEED-FORCE-BOUND", "READ-A3"} <= set(rejected.violated)


def test_without_force_the_same_length_past_bytecount_is_rejected() -> None:
    rejected = only_rejected(evaluate(send(chain(FORCED_MDL), 0, 0x1801)))
    assert "SEED-FORCE-BOUND" not in rejected.violated
    assert "SEED-MDLLENGTH" in rejected.violated


def test_force_uses_only_the_first_mdl_of_a_chain() -> None:
    two = chain(seg(0, 0x1000, 0x10), seg(0, 0x1000, 0x20))
    accepted = only_accepted(evaluate(send(two, 0, 0, WAIT | FORCE)))
    assert accepted.ranges == (rng(two.segments[0], 0, 0, 0x1000),)
    assert "SEED-FORCE-FIRST" in accepted.requirements
    # The chain has 0x2000 bytes, but FORCE sees only the first MDL's page-rounded 0x1000.
    rejected = only_rejected(evaluate(send(two, 0, 0x1001, WAIT | FORCE)))
    assert "SEED-FORCE-BOUND" in rejected.violated
    assert len(only_accepted(evaluate(send(two, 0, 0x2000))).ranges) == 2


def test_force_clamp_profile_cuts_a_long_length_to_the_safe_bound() -> None:
    accepted = only_accepted(
        evaluate(send(chain(FORCED_MDL), 0, 0x5000, WAIT | FORCE), profile="force-clamp")
    )
    assert accepted.ranges == (rng(FORCED_MDL, 0, 0x100, FORCED_BOUND),)


def test_unsafe_force_bytecount_profile_names_pfns_past_the_array() -> None:
    # ByteOffset 0x800, ByteCount 0x100: one PFN. ROUND_TO_PAGES(ByteCount) = 0x1000 lets the
    # range run to position 0x1800, into a second page the MDL does not describe.
    mdl = chain(seg(0x800, 0x100, 0x77))
    call = send(mdl, 0, 0x1000, WAIT | FORCE)
    accepted = only_accepted(evaluate(call, profile="unsafe-force-bytecount"))
    assert accepted.unsafe == ("MDL-PFNS",)
    assert accepted.ranges == (ExpectedRange(0, 0x800, 0x1000, (0x77, None)),)
    rejected = only_rejected(evaluate(call))
    assert {"SEED-FORCE-BOUND", "READ-A3"} <= set(rejected.violated)


# ---------------------------------------------------------------------------------------------
# SEED-MDLLENGTH-ZERO / READ-A1: "Use 0 for the entire MDL."
# ---------------------------------------------------------------------------------------------

A1_CHAIN = chain(seg(0x100, 0x1000, 0x10), seg(0, 0x800, 0x20))


def test_length_zero_with_an_offset_sends_the_rest_of_the_chain() -> None:
    accepted = only_accepted(evaluate(send(A1_CHAIN, 0x300, 0)))
    first, second = A1_CHAIN.segments
    assert accepted.ranges == (rng(first, 0, 0x400, 0xD00), rng(second, 1, 0, 0x800))
    assert {"SEED-MDLLENGTH-ZERO", "READ-A1"} <= set(accepted.requirements)


def test_length_zero_with_force_sends_the_rest_of_the_first_mdl() -> None:
    accepted = only_accepted(evaluate(send(A1_CHAIN, 0x300, 0, WAIT | FORCE)))
    assert accepted.ranges == (rng(A1_CHAIN.segments[0], 0, 0x400, 0xD00),)


def test_length_zero_needs_offset_zero_under_reading_a1_c() -> None:
    rejected = only_rejected(evaluate(send(A1_CHAIN, 0x300, 0), profile="zero-length-offset-zero"))
    assert set(rejected.violated) == {"SEED-MDLLENGTH-ZERO", "READ-A1"}
    accepted = only_accepted(evaluate(send(A1_CHAIN, 0, 0), profile="zero-length-offset-zero"))
    assert sum(r.byte_count for r in accepted.ranges) == 0x1800


def test_length_zero_means_the_first_mdl_under_reading_a1_d() -> None:
    accepted = only_accepted(evaluate(send(A1_CHAIN, 0x300, 0), profile="zero-length-first-mdl"))
    assert accepted.ranges == (rng(A1_CHAIN.segments[0], 0, 0x400, 0xD00),)


# ---------------------------------------------------------------------------------------------
# READ-A9: a resolved length of 0
# ---------------------------------------------------------------------------------------------


def test_length_zero_at_the_end_of_the_chain_resolves_to_nothing_and_is_rejected() -> None:
    rejected = only_rejected(evaluate(send(A1_CHAIN, 0x1800, 0)))
    assert {"READ-A9", "WIRE-RANGE-NONEMPTY"} <= set(rejected.violated)


def test_mdl_with_bytecount_zero_is_rejected() -> None:
    empty = chain(seg(0x100, 0, 0x10))  # one PFN, no bytes
    rejected = only_rejected(evaluate(send(empty, 0, 0)))
    assert "READ-A9" in rejected.violated


def test_no_range_reading_sends_an_in_band_packet_for_bytecount_zero() -> None:
    # A GPA-direct packet without ranges is malformed on the wire (spec.wire rejects it).
    accepted = only_accepted(evaluate(send(chain(seg(0, 0)), 0, 0), profile="default+A9=no-range"))
    assert accepted.ranges == ()
    assert accepted.packet_type is PacketType.DATA_INBAND


# ---------------------------------------------------------------------------------------------
# READ-A5: a chain without FORCE_MDL_LENGTH
# ---------------------------------------------------------------------------------------------

THREE = chain(seg(0x200, 0x1000, 0x100), seg(0, 0x2000, 0x200), seg(0xF00, 0x300, 0x300))


def test_chain_spanning_three_mdls_gives_three_ranges_in_order_with_exact_pfns() -> None:
    accepted = only_accepted(evaluate(send(THREE, 0xE00, 0x2300)))
    assert accepted.ranges == (
        ExpectedRange(0, 0x000, 0x200, (0x101,)),  # position 0x1000: second page only
        ExpectedRange(1, 0x000, 0x2000, (0x200, 0x201)),
        ExpectedRange(2, 0xF00, 0x100, (0x300,)),  # no unused PFN 0x301
    )
    assert "READ-A5" in accepted.requirements
    ranges = [(r.byte_offset, r.byte_count) for r in accepted.ranges]
    assert (accepted.data_offset, accepted.total) == gpa_size(ranges, len(PAYLOAD))


def test_chain_first_mdl_profile_uses_only_the_first_mdl() -> None:
    accepted = only_accepted(evaluate(send(THREE, 0, 0), profile="chain-first-mdl"))
    assert accepted.ranges == (ExpectedRange(0, 0x200, 0x1000, (0x100, 0x101)),)
    rejected = only_rejected(evaluate(send(THREE, 0xE00, 0x2300), profile="chain-first-mdl"))
    assert "SEED-MDLLENGTH" in rejected.violated


def test_reading_a5_b_sends_the_rest_of_the_chain_whole() -> None:
    accepted = only_accepted(evaluate(send(THREE, 0x100, 0x100), profile="default+A5=b"))
    assert accepted.ranges == (
        ExpectedRange(0, 0x300, 0x100, (0x100,)),
        ExpectedRange(1, 0, 0x2000, (0x200, 0x201)),
        ExpectedRange(2, 0xF00, 0x300, (0x300, 0x301)),
    )


# ---------------------------------------------------------------------------------------------
# READ-A2: the origin of MdlOffset
# ---------------------------------------------------------------------------------------------

A2_MDL = chain(seg(0x100, 0x2000, 0x40))


def test_offset_counts_from_the_first_described_byte_by_default() -> None:
    accepted = only_accepted(evaluate(send(A2_MDL, 0xF80, 0x100)))
    assert accepted.ranges == (ExpectedRange(0, 0x080, 0x100, (0x41,)),)


def test_reading_a2_b_counts_the_offset_from_the_page_start() -> None:
    accepted = only_accepted(evaluate(send(A2_MDL, 0xF80, 0x100), profile="default+A2=b"))
    assert accepted.ranges == (ExpectedRange(0, 0xF80, 0x100, (0x40, 0x41)),)
    # The bound moves with the origin: ByteOffset + ByteCount bytes from StartVa.
    assert only_accepted(evaluate(send(A2_MDL, 0x2000, 0x100), profile="default+A2=b"))
    assert only_rejected(evaluate(send(A2_MDL, 0x2000, 0x100)))


def test_reading_a2_b_moves_only_the_origin_never_the_bytes_described() -> None:
    b = "default+A2=b"
    # Before ByteOffset lie bytes the MDL does not describe: no sub-buffer may start there.
    rejected = only_rejected(evaluate(send(A2_MDL, 0x80, 0x10), profile=b))
    assert "READ-A2" in rejected.violated
    assert only_rejected(evaluate(send(chain(seg(0x10, 0)), 0, 0), profile=b))
    # MdlLength 0 from the first described byte: the ByteCount bytes, not ByteOffset more.
    whole = only_accepted(evaluate(send(A2_MDL, 0x100, 0), profile=b))
    assert [(r.byte_offset, r.byte_count) for r in whole.ranges] == [(0x100, 0x2000)]
    # On a chain each MDL's range starts at its own ByteOffset.
    two = chain(seg(0x10, 0x10, 0x40), seg(0x20, 0x10, 0x50))
    ranges = only_accepted(evaluate(send(two, 0x10, 0x20), profile=b)).ranges
    assert [(r.mdl_index, r.byte_offset, r.byte_count) for r in ranges] == [
        (0, 0x10, 0x10), (1, 0x20, 0x10)
    ]


def test_reading_a2_b_judges_the_offset_counted_from_the_data() -> None:
    """At the end of the described bytes, counted from StartVa, nothing is left to send: the
    call resolves to 0 bytes (READ-A9), it is not past the bytes described. The simulator's
    A2 (b) + A9 (no-range) sends it without external data; the spec once rejected it, judging
    the raw MdlOffset where the arithmetic had used the one counted from the data."""
    mdl = chain(seg(0x1, 0), seg(0x1, 0))
    rejected = only_rejected(evaluate(send(mdl, 0x1, 0), profile="default+A2=b"))
    assert rejected.violated[:1] == ("READ-A9",), rejected.violated
    accepted = only_accepted(
        evaluate(send(mdl, 0x1, 0), profile="default+A2=b+A9=no-range")
    )
    assert accepted.ranges == ()
    # Counted from the data, MdlLength 0 under A1 (c) needs MdlOffset == ByteOffset.
    both = "default+A2=b+A1=c"
    whole = only_accepted(evaluate(send(A2_MDL, 0x100, 0), profile=both))
    assert [(r.byte_offset, r.byte_count) for r in whole.ranges] == [(0x100, 0x2000)]
    rejected = only_rejected(evaluate(send(A2_MDL, 0x101, 0), profile=both))
    assert rejected.violated[:1] == ("SEED-MDLLENGTH-ZERO",), rejected.violated


# ---------------------------------------------------------------------------------------------
# READ-A13: a packet that can never fit
# ---------------------------------------------------------------------------------------------

LARGEST_FITTING_BUFFER = 0xFFF0 - 40  # total 0xFFF0, + trailer 8 < 0x10000; header is 40 bytes


def test_largest_packet_that_can_fit_the_ring_is_accepted() -> None:
    call = send(buffer=bytes(LARGEST_FITTING_BUFFER))
    accepted = only_accepted(evaluate(call, context(ring=0x10000)))
    assert accepted.total == 0xFFF0
    assert accepted.disposition is Disposition.RING


def test_packet_plus_trailer_filling_the_ring_is_rejected_and_may_return_buffer_overflow() -> None:
    call = send(buffer=bytes(LARGEST_FITTING_BUFFER + 1))  # total 0xFFF8: + 8 == ring size
    verdict = evaluate(call, context(ring=0x10000))
    rejected = only_rejected(verdict)
    assert {"READ-A13", "RING-NEVER-FULL"} <= set(rejected.violated)
    assert rejected.statuses.allows(S.STATUS_BUFFER_OVERFLOW)
    assert rejected.statuses.allows(S.STATUS_INVALID_PARAMETER)
    assert verdict.outcome_for(S.STATUS_BUFFER_OVERFLOW) is rejected
    exact = only_rejected(evaluate(call, context(ring=0x10000), profile="exact-status"))
    assert exact.statuses.allows(S.STATUS_BUFFER_OVERFLOW)


def test_packet_longer_than_length8_can_express_is_rejected_even_on_a_huge_ring() -> None:
    call = send(buffer=bytes(0x7FFF8 - 40 + 1))  # total 0x80000 > 0xFFFF * 8
    rejected = only_rejected(evaluate(call, context(ring=0x10_0000)))
    assert {"READ-A13", "WIRE-LENGTH8"} <= set(rejected.violated)


def test_buffer_overflow_is_not_allowed_for_other_rejections() -> None:
    rejected = only_rejected(evaluate(send(flags=0)))
    assert not rejected.statuses.allows(S.STATUS_BUFFER_OVERFLOW)


# ---------------------------------------------------------------------------------------------
# READ-A8: which failure status
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status",
    [S.STATUS_UNSUCCESSFUL, S.STATUS_INVALID_PARAMETER, S.STATUS_CANCELLED, 0xC000_1234],
)
def test_rejection_allows_any_error_status_by_default(status: int) -> None:
    verdict = evaluate(send(flags=0))
    assert NT_ERROR(status)
    assert verdict.outcome_for(status) is verdict.rejected


@pytest.mark.parametrize(
    "status", [S.STATUS_SUCCESS, S.STATUS_PENDING, S.STATUS_BUFFER_OVERFLOW, 0x4000_0001]
)
def test_rejection_never_allows_a_non_error_status(status: int) -> None:
    verdict = evaluate(send(flags=0))
    assert verdict.rejected is not None and not verdict.rejected.statuses.allows(status)
    assert verdict.outcome_for(status) is None


def test_exact_status_allows_the_status_of_either_broken_rule_on_a_closed_channel() -> None:
    # NULL MDL with MdlOffset 1 (READ-A6) on a disabled channel (KMCL-QUEUE-CLOSED): the
    # status recommended for either rule conforms.
    call = send(mdl=None, offset=1)
    rejected = only_rejected(evaluate(call, context(channel=ChannelState.DISABLED),
                                      "exact-status"))
    assert rejected.statuses.allows(S.STATUS_INVALID_PARAMETER)
    assert rejected.statuses.allows(S.STATUS_DEVICE_REMOVED)
    assert not rejected.statuses.allows(S.STATUS_UNSUCCESSFUL)
    # On an open channel only the rule's own status.
    open_channel = only_rejected(evaluate(call, context(), "exact-status"))
    assert not open_channel.statuses.allows(S.STATUS_DEVICE_REMOVED)


def test_exact_status_profile_allows_only_the_recommended_status() -> None:
    rejected = only_rejected(evaluate(send(flags=0), profile="exact-status"))
    assert rejected.statuses.allows(S.STATUS_INVALID_PARAMETER)
    assert not rejected.statuses.allows(S.STATUS_UNSUCCESSFUL)
    assert not rejected.statuses.allows(S.STATUS_CANCELLED)


def test_status_rule_union_and_description() -> None:
    rule = StatusRule(False, frozenset({S.STATUS_CANCELLED})).union(StatusRule(True))
    assert rule.allows(0xC000_0001) and rule.allows(S.STATUS_CANCELLED)
    assert rule.describe() == "any NT_ERROR status or STATUS_CANCELLED"


# ---------------------------------------------------------------------------------------------
# Disposition: RING, QUEUE (KMCL-QUEUE-FULL, KMCL-QUEUE-CLOSED) or HELD
# ---------------------------------------------------------------------------------------------

TOTAL = gpa_size([(0, 0x1000)], len(PAYLOAD))[1]


def test_packet_goes_to_the_ring_on_an_open_channel_with_room() -> None:
    accepted = only_accepted(evaluate(send(), context(free=TOTAL + 9)))
    assert accepted.total == TOTAL
    assert accepted.disposition is Disposition.RING


def test_packet_is_queued_when_packet_and_trailer_would_fill_the_ring() -> None:
    accepted = only_accepted(evaluate(send(), context(free=TOTAL + 8)))
    assert accepted.disposition is Disposition.QUEUE
    assert "KMCL-QUEUE-FULL" in accepted.requirements


def test_packet_is_queued_behind_a_non_empty_queue() -> None:
    accepted = only_accepted(evaluate(send(), context(queue_empty=False)))
    assert accepted.disposition is Disposition.QUEUE
    assert "KMCL-QUEUE-FULL" in accepted.requirements


def test_packet_is_queued_on_a_channel_not_yet_open() -> None:
    accepted = only_accepted(evaluate(send(), context(channel=ChannelState.NOT_OPEN)))
    assert accepted.disposition is Disposition.QUEUE
    assert "KMCL-QUEUE-CLOSED" in accepted.requirements


def test_send_on_a_disabled_channel_is_held_or_rejected() -> None:
    verdict = evaluate(send(), context(channel=ChannelState.DISABLED))
    assert kinds(verdict) == [Accepted, Rejected]
    assert verdict.accepted is not None and verdict.accepted.disposition is Disposition.HELD
    assert verdict.rejected is not None and verdict.rejected.violated == ("KMCL-QUEUE-CLOSED",)


# ---------------------------------------------------------------------------------------------
# READ-A11: when the in-line buffer is read
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("paged", "ctx", "profile", "late"),
    [
        (False, context(queue_empty=False), "default", True),
        (False, context(channel=ChannelState.NOT_OPEN), "default", True),
        (True, context(queue_empty=False), "default", False),
        (False, context(), "default", False),  # written at the call
        (True, context(), "default", False),
        (False, context(queue_empty=False), "buffer-at-call", False),
    ],
)
def test_payload_may_be_late_only_for_a_queued_non_paged_buffer(
    paged: bool, ctx: SendContext, profile: str, late: bool
) -> None:
    flags = WAIT | (PAGED if paged else 0)
    accepted = only_accepted(evaluate(send(flags=flags), ctx, profile))
    assert accepted.payload_may_be_late is late
    assert accepted.payload == PAYLOAD
    assert ("SEED-PAGED" in accepted.requirements) is paged


# ---------------------------------------------------------------------------------------------
# Verdict
# ---------------------------------------------------------------------------------------------


def test_outcome_for_selects_the_alternative_a_status_belongs_to() -> None:
    verdict = evaluate(send(flags=WAIT | 0x8))
    assert verdict.outcome_for(S.STATUS_SUCCESS) is verdict.accepted
    assert verdict.outcome_for(S.STATUS_INVALID_PARAMETER) is verdict.rejected
    assert verdict.outcome_for(S.STATUS_PENDING) is None
    only_reject = evaluate(send(flags=0))
    assert only_reject.outcome_for(S.STATUS_SUCCESS) is None


def test_verdict_requirements_collect_every_alternative() -> None:
    verdict = evaluate(send(flags=WAIT | 0x8))
    assert "READ-A7" in verdict.requirements
    assert "SEED-SEND" in verdict.requirements
    assert len(verdict.requirements) == len(set(verdict.requirements))


def test_describe_mentions_each_alternative() -> None:
    text = evaluate(send(flags=WAIT | 0x8)).describe()
    assert text.startswith("STATUS_SUCCESS, 1 range(s)")
    assert "(READ-A7)" in text


def test_outcome_for_finds_a_status_allowed_by_any_rejected_alternative() -> None:
    # exact-status, disabled channel, an unknown flag bit: rejecting because the channel is
    # closed (STATUS_DEVICE_REMOVED) and rejecting the unknown bit (STATUS_INVALID_PARAMETER)
    # are both allowed alternatives.
    verdict = evaluate(
        send(flags=WAIT | 0x8), context(channel=ChannelState.DISABLED), "exact-status"
    )
    flag_rejection = next(
        o for o in verdict.alternatives if isinstance(o, Rejected) and "READ-A7" in o.violated
    )
    assert flag_rejection.statuses.allows(S.STATUS_INVALID_PARAMETER)
    assert verdict.outcome_for(S.STATUS_INVALID_PARAMETER) is flag_rejection


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


@st.composite
def chains(draw: st.DrawFn) -> MdlChain:
    segments = []
    for index in range(draw(st.integers(1, 4))):
        byte_offset = draw(st.integers(0, 0xFFF))
        byte_count = draw(st.one_of(st.integers(0, 0x3000), st.integers(0, 0x10_0000)))
        segments.append(seg(byte_offset, byte_count, 0x10_0000 * (index + 1)))
    return MdlChain.of(segments)


@st.composite
def calls(draw: st.DrawFn) -> SendCall:
    mdl = draw(st.one_of(chains(), chains(), st.none()))
    total = 0 if mdl is None else mdl.byte_count
    near = st.integers(0, total + 0x2000)
    offset = draw(st.one_of(st.just(0), near, st.integers(0, 0xFFFF_FFFF)))
    length = draw(st.one_of(st.just(0), near, st.integers(0, 0xFFFF_FFFF)))
    flags = draw(
        st.one_of(
            st.sampled_from([WAIT, WAIT | FORCE, WAIT | PAGED, WAIT | FORCE | PAGED]),
            st.integers(0, 0xFFFF_FFFF),
        )
    )
    buffer = draw(st.one_of(st.binary(max_size=0x100), st.none()))
    buffer_length = draw(st.integers(0, 0x100)) if buffer is None else len(buffer)
    return SendCall(buffer, buffer_length, mdl, offset, length, flags)


@st.composite
def contexts(draw: st.DrawFn) -> SendContext:
    ring = draw(st.sampled_from([0x1000, 0x10000, 0x10_0000]))
    return SendContext(
        draw(st.sampled_from(PacketState)),
        draw(st.sampled_from(ChannelState)),
        ring,
        draw(st.integers(0, ring)),  # free bytes: at most the ring's size
        draw(st.booleans()),
    )


CONTEXTS = contexts()


def oracle_ranges(call: SendCall, forced: bool) -> list[ExpectedRange] | None:
    """The default profile's ranges for an external MDL, or None when out of bounds."""
    assert call.mdl is not None
    segments = call.mdl.segments
    offset = call.mdl_offset
    if forced:
        first = segments[0]
        whole = first.byte_count
        bound = -(-(first.byte_offset + first.byte_count) // 4096) * 4096 - first.byte_offset
    else:
        whole = bound = sum(s.byte_count for s in segments)
    length = call.mdl_length or max(whole - offset, 0)
    if length == 0 or offset + length > bound:
        return None
    if forced:
        return [rng(segments[0], 0, segments[0].byte_offset + offset, length)]
    result, start = [], 0
    for index, segment in enumerate(segments):
        low, high = max(start, offset), min(start + segment.byte_count, offset + length)
        if low < high:
            result.append(rng(segment, index, segment.byte_offset + low - start, high - low))
        start += segment.byte_count
    return result


@settings(max_examples=400, deadline=None)
@given(calls(), CONTEXTS)
def test_default_profile_never_raises_and_accepts_only_ranges_inside_the_mdls(
    call: SendCall, ctx: SendContext
) -> None:
    verdict = evaluate_send(call, ctx)
    assert verdict.alternatives
    accepted = verdict.accepted
    if accepted is None:
        return
    assert accepted.unsafe == ()
    if call.mdl is None:
        assert accepted.packet_type is PacketType.DATA_INBAND and accepted.ranges == ()
        return
    for r in accepted.ranges:
        assert None not in r.pfns
        assert 0 <= r.byte_offset < 4096 and r.byte_count > 0
        assert len(r.pfns) == pfn_count(r.byte_offset, r.byte_count)
        assert set(r.pfns) <= set(call.mdl.segments[r.mdl_index].pfns)
    assert list(accepted.ranges) == oracle_ranges(call, bool(call.flags & FORCE))
    ranges = [(r.byte_offset, r.byte_count) for r in accepted.ranges]
    assert (accepted.data_offset, accepted.total) == gpa_size(ranges, call.buffer_length)
    assert accepted.total + 8 < ctx.ring_data_size


@settings(max_examples=200, deadline=None)
@given(calls(), CONTEXTS, st.sampled_from(sorted(PROFILES)))
def test_every_named_profile_evaluates_without_raising(
    call: SendCall, ctx: SendContext, name: str
) -> None:
    verdict = evaluate_send(call, ctx, PROFILES[name])
    assert verdict.alternatives
    for outcome in verdict.alternatives:
        if isinstance(outcome, Rejected):
            assert outcome.violated and outcome.reasons
        elif None in (p for r in outcome.ranges for p in r.pfns):
            assert outcome.unsafe == ("MDL-PFNS",)


@settings(max_examples=200, deadline=None)
@given(calls(), CONTEXTS)
def test_a_rejection_cites_only_known_requirements_and_allows_an_error_status(
    call: SendCall, ctx: SendContext
) -> None:
    from vmbspec.spec.catalog import CATALOG

    verdict = evaluate_send(call, ctx, Profile.default())
    for outcome in verdict.alternatives:
        CATALOG.require(*outcome.requirements)
        if isinstance(outcome, Rejected):
            assert outcome.statuses.allows(S.STATUS_INVALID_PARAMETER)
            assert not outcome.statuses.allows(S.STATUS_SUCCESS)

