"""Tests of spec.wire: the worked example, round trips, strictness rule by rule, the ring."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmbspec.spec import arith
from vmbspec.spec.constants import MAX_PACKET_BYTES, PAGE_SIZE, PacketType
from vmbspec.spec.errors import InvalidValue, WireFormatError
from vmbspec.spec.wire import (
    DecodedPacket,
    GpaRange,
    Packet,
    RingControl,
    RingEntry,
    WireRuleError,
    decode_packet,
    decode_ring_control,
    decode_trailer,
    encode_packet,
    encode_ring,
    encode_ring_control,
    encode_trailer,
    pfn_count,
    read_ring,
)

GPA = PacketType.DATA_USING_GPA_DIRECT
INBAND = PacketType.DATA_INBAND


def make_range(byte_offset: int, byte_count: int, first_pfn: int = 0x1000) -> GpaRange:
    n = pfn_count(byte_offset, byte_count)
    return GpaRange(byte_count, byte_offset, tuple(range(first_pfn, first_pfn + n)))


def example_packet() -> Packet:
    """Reference §4's worked example: one range at 0x100 of 0x2000 bytes, 0x40 payload bytes."""
    return Packet(
        type=GPA,
        flags=1,
        transaction_id=0x1122_3344_5566_7788,
        ranges=(GpaRange(0x2000, 0x100, (0xAAA, 0xBBB, 0xCCC)),),
        payload=bytes(range(0x40)),
    )


def two_range_packet() -> Packet:
    return Packet(GPA, 1, 7, (make_range(0x10, 0x20), make_range(0xFF8, 0x10, 0x5000)), b"abc")


def expect_rule(data: bytes, requirement: str) -> WireRuleError:
    with pytest.raises(WireFormatError) as info:
        decode_packet(data)
    error = info.value
    assert isinstance(error, WireRuleError)
    assert error.requirement == requirement
    assert f"[{requirement}]" in str(error)
    return error


def patch(data: bytes, fmt: str, offset: int, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# The worked example (reference §4)
# ---------------------------------------------------------------------------------------------


def test_worked_example_layout_and_descriptor_bytes() -> None:
    data = encode_packet(example_packet())
    assert len(data) == 15 * 8 == 120
    # type 9, data_offset8 7, length8 15, flags 1, transaction id, little-endian.
    assert data[:16] == bytes.fromhex("0900 0700 0f00 0100 8877665544332211")
    # reserved 0, range_count 1; byte_count 0x2000, byte_offset 0x100; three PFNs.
    assert data[16:24] == bytes.fromhex("00000000 01000000")
    assert data[24:32] == bytes.fromhex("00200000 00010000")
    assert struct.unpack_from("<3Q", data, 32) == (0xAAA, 0xBBB, 0xCCC)
    assert data[56:120] == bytes(range(0x40))


def test_worked_example_decodes_back() -> None:
    decoded = decode_packet(encode_packet(example_packet()))
    assert decoded.data_offset == 56
    assert decoded.total_size == 120
    assert decoded.completion_requested
    assert decoded.to_packet(0x40) == example_packet()


def test_worked_example_pfn_count() -> None:
    assert pfn_count(0x100, 0x2000) == 3
    with pytest.raises(InvalidValue, match=r"\[WIRE-PFN-COUNT\]"):
        GpaRange(0x2000, 0x100, (1, 2))


def test_payload_is_padded_with_zeros() -> None:
    packet = Packet(INBAND, 0, 5, (), b"\xff" * 3)
    data = encode_packet(packet)
    assert data == bytes.fromhex("0600 0200 0300 0000 0500000000000000") + b"\xff\xff\xff" + bytes(
        5
    )
    decoded = decode_packet(data)
    assert decoded.inline == b"\xff\xff\xff" + bytes(5)
    assert decoded.payload(3) == b"\xff\xff\xff"


def test_empty_inband_packet_is_just_the_descriptor() -> None:
    data = encode_packet(Packet(INBAND, 0, 0, (), b""))
    assert data == bytes.fromhex("0600 0200 0200 0000") + bytes(8)
    assert decode_packet(data).inline == b""


# ---------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------

u64s = st.integers(0, 2**64 - 1)


@st.composite
def gpa_ranges(draw: st.DrawFn) -> GpaRange:
    byte_offset = draw(st.one_of(st.sampled_from([0, 1, 0xFF8, 0xFFF]), st.integers(0, 0xFFF)))
    byte_count = draw(
        st.one_of(
            st.sampled_from([1, 0x1000 - byte_offset, 0x1000 - byte_offset + 1, 0x2000]),
            st.integers(1, 16 * PAGE_SIZE),
        )
    )
    n = pfn_count(byte_offset, byte_count)
    pfns = tuple(draw(st.lists(u64s, min_size=n, max_size=n)))
    return GpaRange(byte_count, byte_offset, pfns)


@st.composite
def packets(draw: st.DrawFn) -> Packet:
    packet_type = draw(st.sampled_from([INBAND, GPA]))
    ranges = (
        tuple(draw(st.lists(gpa_ranges(), min_size=1, max_size=4))) if packet_type == GPA else ()
    )
    return Packet(
        type=packet_type,
        flags=draw(st.sampled_from([0, 1])),
        transaction_id=draw(u64s),
        ranges=ranges,
        payload=draw(st.binary(max_size=300)),
    )


@given(packets())
def test_round_trip(packet: Packet) -> None:
    data = encode_packet(packet)
    assert len(data) % 8 == 0
    assert len(data) == packet.total_size
    decoded = decode_packet(data)
    assert (decoded.type, decoded.flags, decoded.transaction_id, decoded.ranges) == (
        packet.type,
        packet.flags,
        packet.transaction_id,
        packet.ranges,
    )
    assert decoded.data_offset == packet.data_offset
    assert decoded.inline[: len(packet.payload)] == packet.payload
    assert not any(decoded.inline[len(packet.payload) :])
    assert len(decoded.inline) - len(packet.payload) < 8
    assert decoded.to_packet(len(packet.payload)) == packet


@given(packets())
def test_sizes_agree_with_spec_arith(packet: Packet) -> None:
    """The encoder and spec.arith.packet_size compute the same GPA-direct layout."""
    if packet.type != GPA:
        return
    terms = [
        arith.RangeTerm(
            present=True,
            mdl_index=0,
            byte_offset=r.byte_offset,
            byte_count=r.byte_count,
            first_pfn=0,
            pfn_count=arith.span_pages(arith.PY, r.byte_offset, r.byte_count),
        )
        for r in packet.ranges
    ]
    size = arith.packet_size(arith.PY, terms, len(packet.payload))
    assert (size.data_offset, size.total) == (packet.data_offset, len(encode_packet(packet)))


@given(st.integers(0, 0xFFF), st.integers(1, 2**32 - 1))
def test_pfn_count_is_span_pages(byte_offset: int, byte_count: int) -> None:
    assert pfn_count(byte_offset, byte_count) == arith.span_pages(arith.PY, byte_offset, byte_count)
    assert pfn_count(byte_offset, byte_count) == -(-(byte_offset + byte_count) // PAGE_SIZE)


# ---------------------------------------------------------------------------------------------
# Nothing but WireFormatError, whatever the bytes
# ---------------------------------------------------------------------------------------------


def decodes_or_rejects(data: bytes) -> DecodedPacket | None:
    """Decode; on success the input must be exactly what the encoder writes for that packet."""
    try:
        decoded = decode_packet(data)
    except WireFormatError as error:
        assert isinstance(error, WireRuleError)
        assert str(error).startswith(f"[{error.requirement}] ")
        return None
    rebuilt = Packet(decoded.type, decoded.flags, decoded.transaction_id, decoded.ranges, b"")
    assert rebuilt.data_offset == decoded.data_offset
    reencoded = encode_packet(
        Packet(decoded.type, decoded.flags, decoded.transaction_id, decoded.ranges, decoded.inline)
    )
    assert reencoded == data
    return decoded


@given(st.binary(max_size=200))
def test_arbitrary_bytes(data: bytes) -> None:
    decodes_or_rejects(data)


@st.composite
def plausible_bytes(draw: st.DrawFn) -> bytes:
    """Bytes whose descriptor is mostly consistent, so the decoder gets past the first checks."""
    body = bytearray(draw(st.binary(min_size=16, max_size=240)))
    body += bytes(-len(body) % 8)
    packet_type = draw(st.sampled_from([6, 9, 7, 0xB, 0]))
    data_offset8 = draw(st.integers(0, len(body) // 8 + 1))
    length8 = draw(st.sampled_from([len(body) // 8, len(body) // 8 + 1]))
    flags = draw(st.sampled_from([0, 1, 2, 0x8000]))
    struct.pack_into("<HHHH", body, 0, packet_type, data_offset8, length8, flags)
    if len(body) >= 24:
        struct.pack_into(
            "<II",
            body,
            16,
            draw(st.sampled_from([0, 1])),
            draw(st.integers(0, 5) | u64s.map(lambda v: v & 0xFFFF_FFFF)),
        )
    if len(body) >= 32 and draw(st.booleans()):
        struct.pack_into(
            "<II", body, 24, draw(st.integers(0, 0x3000)), draw(st.integers(0, 0x1001))
        )
    return bytes(body)


@settings(max_examples=500)
@given(plausible_bytes())
def test_plausible_bytes(data: bytes) -> None:
    decodes_or_rejects(data)


@st.composite
def mutations(draw: st.DrawFn) -> tuple[bytes, bytes]:
    original = encode_packet(draw(packets()))
    kind = draw(st.sampled_from(["flip", "set", "truncate", "extend", "word"]))
    data = bytearray(original)
    if kind == "flip":
        index = draw(st.integers(0, len(data) - 1))
        data[index] ^= 1 << draw(st.integers(0, 7))
    elif kind == "set":
        index = draw(st.integers(0, len(data) - 1))
        data[index] = draw(st.integers(0, 255))
    elif kind == "truncate":
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif kind == "extend":
        data += draw(st.binary(min_size=1, max_size=24))
    else:
        # Overwrite one of the u16/u32 header words with a boundary value.
        offset = draw(st.sampled_from([0, 2, 4, 6, 16, 20, 24, 28]))
        if offset + 4 <= len(data):
            struct.pack_into(
                "<I", data, offset, draw(st.sampled_from([0, 1, 0xFFF, 0x1000, 0xFFFF, 2**32 - 1]))
            )
    return original, bytes(data)


@settings(max_examples=500)
@given(mutations())
def test_mutated_encodings(case: tuple[bytes, bytes]) -> None:
    _, mutated = case
    decodes_or_rejects(mutated)


@pytest.mark.parametrize("cut", range(0, 120, 4))
def test_every_truncation_of_the_example_is_rejected(cut: int) -> None:
    data = encode_packet(example_packet())[:cut]
    with pytest.raises(WireFormatError):
        decode_packet(data)


def test_non_bytes_is_a_caller_mistake() -> None:
    with pytest.raises(TypeError):
        decode_packet("not bytes")  # type: ignore[arg-type]
    assert decode_packet(bytearray(encode_packet(example_packet()))).total_size == 120


# ---------------------------------------------------------------------------------------------
# Strictness, one rule at a time: a valid encoding with exactly that rule broken
# ---------------------------------------------------------------------------------------------

EXAMPLE = encode_packet(example_packet())  # one range, 3 PFNs, data_offset 56, length 120
TWO = encode_packet(two_range_packet())  # ranges at 24 (8+8 bytes) and 40 (8+16 bytes)
INBAND_DATA = encode_packet(Packet(INBAND, 0, 9, (), b"payload!!"))

BREAKS: list[tuple[str, str, Callable[[], bytes]]] = [
    ("shorter than a descriptor", "WIRE-LAYOUT", lambda: EXAMPLE[:15]),
    ("empty", "WIRE-LAYOUT", lambda: b""),
    ("length8 one too large", "WIRE-LENGTH8", lambda: patch(EXAMPLE, "<H", 4, 16)),
    ("length8 one too small", "WIRE-LENGTH8", lambda: patch(EXAMPLE, "<H", 4, 14)),
    ("length8 zero", "WIRE-LENGTH8", lambda: patch(EXAMPLE, "<H", 4, 0)),
    ("bytes after length8", "WIRE-LENGTH8", lambda: EXAMPLE + bytes(8)),
    ("length not a multiple of 8", "WIRE-LENGTH8", lambda: EXAMPLE + bytes(3)),
    ("data_offset8 past length8", "WIRE-LENGTH8", lambda: patch(EXAMPLE, "<H", 2, 16)),
    ("data_offset8 0xFFFF", "WIRE-LENGTH8", lambda: patch(EXAMPLE, "<H", 2, 0xFFFF)),
    ("type completion", "WIRE-LAYOUT", lambda: patch(EXAMPLE, "<H", 0, 0xB)),
    ("type transfer pages", "WIRE-LAYOUT", lambda: patch(EXAMPLE, "<H", 0, 7)),
    ("type 0", "WIRE-LAYOUT", lambda: patch(EXAMPLE, "<H", 0, 0)),
    ("type 0x109", "WIRE-LAYOUT", lambda: patch(EXAMPLE, "<H", 0, 0x109)),
    ("flags bit 1", "WIRE-FLAGS", lambda: patch(EXAMPLE, "<H", 6, 3)),
    ("flags bit 15", "WIRE-FLAGS", lambda: patch(EXAMPLE, "<H", 6, 0x8000)),
    ("in-band flags bit 2", "WIRE-FLAGS", lambda: patch(INBAND_DATA, "<H", 6, 4)),
    ("reserved not zero", "WIRE-LAYOUT", lambda: patch(EXAMPLE, "<I", 16, 1)),
    ("range_count 0", "WIRE-LAYOUT", lambda: patch(EXAMPLE, "<I", 20, 0)),
    ("range_count 2^32-1", "WIRE-LAYOUT", lambda: patch(EXAMPLE, "<I", 20, 2**32 - 1)),
    ("range_count one too many", "WIRE-LAYOUT", lambda: patch(EXAMPLE, "<I", 20, 2)),
    ("range_count one too few", "WIRE-PFN-COUNT", lambda: patch(TWO, "<I", 20, 1)),
    ("data_offset inside the GPA header", "WIRE-LAYOUT", lambda: patch(EXAMPLE, "<H", 2, 2)),
    ("data_offset before the second range", "WIRE-LAYOUT", lambda: patch(TWO, "<H", 2, 5)),
    ("data_offset cuts the second range", "WIRE-PFN-COUNT", lambda: patch(TWO, "<H", 2, 6)),
    ("data_offset cuts the PFNs", "WIRE-PFN-COUNT", lambda: patch(EXAMPLE, "<H", 2, 6)),
    ("data_offset past the ranges", "WIRE-PFN-COUNT", lambda: patch(EXAMPLE, "<H", 2, 8)),
    ("byte_count 0", "WIRE-RANGE-NONEMPTY", lambda: patch(EXAMPLE, "<I", 24, 0)),
    ("second byte_count 0", "WIRE-RANGE-NONEMPTY", lambda: patch(TWO, "<I", 40, 0)),
    ("byte_offset 0x1000", "WIRE-RANGE-OFFSET", lambda: patch(EXAMPLE, "<I", 28, 0x1000)),
    ("byte_offset 2^32-1", "WIRE-RANGE-OFFSET", lambda: patch(EXAMPLE, "<I", 28, 2**32 - 1)),
    ("second byte_offset 0x1000", "WIRE-RANGE-OFFSET", lambda: patch(TWO, "<I", 44, 0x1000)),
    # 0x100 + 0x2F01 spans 4 pages: one PFN too few for the bytes the range claims.
    ("too few PFNs", "WIRE-PFN-COUNT", lambda: patch(EXAMPLE, "<I", 24, 0x2F01)),
    # 0x100 + 0x1000 spans 2 pages: the third PFN is unused (Linux storvsc).
    ("one unused PFN", "WIRE-PFN-COUNT", lambda: patch(EXAMPLE, "<I", 24, 0x1000)),
    # byte_offset 0 turns the same byte_count into 2 pages: the third PFN is unused.
    ("offset 0 shrinks the span", "WIRE-PFN-COUNT", lambda: patch(EXAMPLE, "<I", 28, 0)),
    (
        "byte_count 2^32-1 at offset 0xFFF",
        "WIRE-PFN-COUNT",
        lambda: patch(EXAMPLE, "<II", 24, 2**32 - 1, 0xFFF),
    ),
    ("in-band data_offset 24", "WIRE-LAYOUT", lambda: patch(INBAND_DATA, "<H", 2, 3)),
    ("in-band data_offset 8", "WIRE-LAYOUT", lambda: patch(INBAND_DATA, "<H", 2, 1)),
    ("in-band data_offset 0", "WIRE-LAYOUT", lambda: patch(INBAND_DATA, "<H", 2, 0)),
]


@pytest.mark.parametrize(
    ("requirement", "build"), [b[1:] for b in BREAKS], ids=[b[0] for b in BREAKS]
)
def test_each_rule_is_enforced(requirement: str, build: Callable[[], bytes]) -> None:
    expect_rule(build(), requirement)


def test_the_broken_encodings_start_from_valid_ones() -> None:
    for data in (EXAMPLE, TWO, INBAND_DATA):
        decodes_or_rejects(data)
        decode_packet(data)


def test_too_few_pfns_does_not_allocate_a_huge_range() -> None:
    error = expect_rule(patch(EXAMPLE, "<II", 24, 2**32 - 1, 0xFFF), "WIRE-PFN-COUNT")
    assert "1048577 PFNs" in str(error)


def test_payload_checks_padding_and_length() -> None:
    decoded = decode_packet(encode_packet(Packet(INBAND, 0, 1, (), b"12345")))
    assert decoded.payload(5) == b"12345"
    assert decoded.payload(6) == b"12345\x00"
    assert decoded.payload(8) == b"12345\x00\x00\x00"
    with pytest.raises(WireRuleError, match=r"\[WIRE-LENGTH8\]"):
        decoded.payload(0)  # 16 + 0 is 16, not 24: a whole word of padding is too much
    with pytest.raises(WireRuleError, match=r"\[WIRE-LENGTH8\]"):
        decoded.payload(9)
    with pytest.raises(WireRuleError, match=r"\[WIRE-LAYOUT\]"):
        decoded.payload(4)  # the right length, but "5" would be padding
    dirty = decode_packet(encode_packet(Packet(INBAND, 0, 1, (), b"12345\x00\x00\x01")))
    with pytest.raises(WireRuleError, match=r"\[WIRE-LAYOUT\]"):
        dirty.payload(5)


# ---------------------------------------------------------------------------------------------
# Building values: caller mistakes are InvalidValue/TypeError, never WireFormatError
# ---------------------------------------------------------------------------------------------


def test_range_construction_checks() -> None:
    with pytest.raises(InvalidValue, match=r"\[WIRE-RANGE-NONEMPTY\]"):
        GpaRange(0, 0, ())
    with pytest.raises(InvalidValue, match=r"\[WIRE-RANGE-OFFSET\]"):
        GpaRange(1, 0x1000, (1,))
    with pytest.raises(InvalidValue, match=r"\[WIRE-PFN-COUNT\]"):
        GpaRange(0x1000, 1, (1,))
    with pytest.raises(InvalidValue, match=r"\[WIRE-PFN-COUNT\]"):
        GpaRange(0x1000, 0, (1, 2))
    with pytest.raises(InvalidValue):
        GpaRange(2**32, 0, ())
    with pytest.raises(InvalidValue):
        GpaRange(1, 0, (2**64,))
    with pytest.raises(TypeError):
        GpaRange(True, 0, (1,))
    assert GpaRange(1, 0xFFF, [5]).pfns == (5,)  # type: ignore[arg-type]


def test_packet_construction_checks() -> None:
    one = (make_range(0, 1),)
    with pytest.raises(InvalidValue, match=r"\[WIRE-FLAGS\]"):
        Packet(GPA, 2, 0, one, b"")
    with pytest.raises(InvalidValue, match=r"\[WIRE-LAYOUT\]"):
        Packet(INBAND, 0, 0, one, b"")
    with pytest.raises(InvalidValue, match=r"\[WIRE-LAYOUT\]"):
        Packet(GPA, 1, 0, (), b"")
    with pytest.raises(InvalidValue, match=r"\[WIRE-LAYOUT\]"):
        Packet(PacketType.COMP, 0, 0, (), b"")
    with pytest.raises(TypeError):
        Packet(9, 0, 0, one, b"")  # type: ignore[arg-type]
    with pytest.raises(InvalidValue):
        Packet(GPA, 0, 2**64, one, b"")
    with pytest.raises(TypeError):
        Packet(INBAND, 0, 0, (), "text")  # type: ignore[arg-type]


def test_largest_packet_encodes_and_one_more_word_does_not() -> None:
    largest = Packet(INBAND, 0, 0, (), bytes(MAX_PACKET_BYTES - 16))
    data = encode_packet(largest)
    assert data[4:6] == b"\xff\xff"
    assert decode_packet(data).total_size == MAX_PACKET_BYTES
    with pytest.raises(InvalidValue, match=r"\[WIRE-LENGTH8\]"):
        encode_packet(Packet(INBAND, 0, 0, (), bytes(MAX_PACKET_BYTES - 15)))


def test_data_offset8_overflow_is_a_caller_mistake() -> None:
    # 65536 PFNs take 512 KiB + 8: data_offset alone does not fit 0xFFFF * 8.
    huge = GpaRange(65536 * PAGE_SIZE, 0, tuple(range(65536)))
    with pytest.raises(InvalidValue, match=r"\[WIRE-LENGTH8\].*data_offset8"):
        encode_packet(Packet(GPA, 1, 0, (huge,), b""))


# ---------------------------------------------------------------------------------------------
# Trailer and control page
# ---------------------------------------------------------------------------------------------


def test_trailer_layout() -> None:
    assert encode_trailer(0x1238) == bytes.fromhex("00000000 38120000")
    assert decode_trailer(encode_trailer(0x1238)) == 0x1238
    assert decode_trailer(encode_trailer(2**32 - 8)) == 2**32 - 8


@given(st.integers(0, 2**32 - 1))
def test_trailer_round_trip(start: int) -> None:
    assert decode_trailer(encode_trailer(start)) == start


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(7),
        bytes(9),
        bytes.fromhex("01000000 00000000"),
        bytes.fromhex("00000080 10000000"),
    ],
)
def test_bad_trailers(data: bytes) -> None:
    with pytest.raises(WireRuleError, match=r"\[RING-TRAILER\]"):
        decode_trailer(data)


def test_trailer_start_must_be_u32() -> None:
    with pytest.raises(InvalidValue):
        encode_trailer(2**32)


def test_control_page_layout() -> None:
    control = RingControl(0x10, 0x20, 1, 0x30, 0xABCD)
    page = encode_ring_control(control)
    assert len(page) == 4096
    assert struct.unpack_from("<IIII", page, 0) == (0x10, 0x20, 1, 0x30)
    assert struct.unpack_from("<I", page, 64) == (0xABCD,)
    assert decode_ring_control(page) == control
    assert not control.is_empty


@pytest.mark.parametrize(
    "page",
    [
        bytes(4095),
        bytes(4097),
        encode_ring_control(RingControl(4, 0, 0, 0, 0)),
        encode_ring_control(RingControl(0, 0x13, 0, 0, 0)),
    ],
    ids=["short", "long", "write unaligned", "read unaligned"],
)
def test_bad_control_pages(page: bytes) -> None:
    with pytest.raises(WireRuleError, match=r"\[RING-LAYOUT\]"):
        decode_ring_control(page)


# ---------------------------------------------------------------------------------------------
# The ring
# ---------------------------------------------------------------------------------------------

SMALL = 256  # a small data area keeps wrap-around easy to hit


def test_empty_ring() -> None:
    contents = read_ring(encode_ring(SMALL, 0x40, []), SMALL)
    assert contents.control.is_empty
    assert contents.control.write_index == 0x40
    assert contents.entries == ()


def test_ring_with_two_packets() -> None:
    first, second = EXAMPLE, INBAND_DATA
    ring = encode_ring(PAGE_SIZE, 0, [first, second], interrupt_mask=1, feature_bits=1)
    contents = read_ring(ring, PAGE_SIZE)
    assert contents.control == RingControl(120 + 8 + 32 + 8, 0, 1, 0, 1)
    assert contents.entries == (RingEntry(0, first), RingEntry(128, second))
    assert [decode_packet(e.packet).transaction_id for e in contents.entries] == [
        0x1122_3344_5566_7788,
        9,
    ]
    # The trailers sit right after each packet and record its start.
    area = ring[4096:]
    assert decode_trailer(area[120:128]) == 0
    assert decode_trailer(area[160:168]) == 128


def test_packet_wrapping_around_the_end_of_the_data_area() -> None:
    # 120-byte packet starting 40 bytes before the end: 40 bytes at the end, 80 at the start,
    # then its trailer at 80.
    start = SMALL - 40
    ring = encode_ring(SMALL, start, [EXAMPLE])
    area = ring[4096:]
    assert area[start:] == EXAMPLE[:40]
    assert area[:80] == EXAMPLE[40:]
    assert decode_trailer(area[80:88]) == start
    contents = read_ring(ring, SMALL)
    assert contents.control.write_index == 88
    assert contents.entries == (RingEntry(start, EXAMPLE),)
    assert decode_packet(contents.entries[0].packet) == decode_packet(EXAMPLE)


def test_descriptor_wrapping_around_the_end() -> None:
    start = SMALL - 8  # the descriptor itself is split
    contents = read_ring(encode_ring(SMALL, start, [INBAND_DATA, INBAND_DATA]), SMALL)
    assert contents.entries == (RingEntry(start, INBAND_DATA), RingEntry(32, INBAND_DATA))


def test_trailer_wrapping_to_the_start() -> None:
    start = SMALL - 120  # the packet ends exactly at the end; its trailer is at 0
    ring = encode_ring(SMALL, start, [EXAMPLE, INBAND_DATA])
    assert decode_trailer(ring[4096 : 4096 + 8]) == start
    contents = read_ring(ring, SMALL)
    assert contents.entries == (RingEntry(start, EXAMPLE), RingEntry(8, INBAND_DATA))


def test_ring_never_full() -> None:
    # 120 + 8 + 120 + 8 = 256 would fill a 256-byte ring: the writer must refuse.
    with pytest.raises(InvalidValue, match=r"\[RING-NEVER-FULL\]"):
        encode_ring(SMALL, 0, [EXAMPLE, EXAMPLE])
    contents = read_ring(
        encode_ring(SMALL, 0, [EXAMPLE, encode_packet(Packet(INBAND, 0, 0, (), bytes(96)))]), SMALL
    )
    assert len(contents.entries) == 2
    assert contents.control.write_index == SMALL - 8


def corrupt(ring: bytes, offset: int, fmt: str, *values: int) -> bytes:
    return patch(ring, fmt, offset, *values)


def test_ring_rejects_a_wrong_trailer() -> None:
    ring = encode_ring(SMALL, 0, [EXAMPLE])
    with pytest.raises(WireRuleError, match=r"\[RING-TRAILER\].*records start 0x8"):
        read_ring(corrupt(ring, 4096 + 120, "<Q", 8 << 32), SMALL)
    with pytest.raises(WireRuleError, match=r"\[RING-TRAILER\]"):
        read_ring(corrupt(ring, 4096 + 120, "<Q", 1), SMALL)


def test_ring_rejects_a_wrong_wrapped_trailer() -> None:
    start = SMALL - 40
    ring = encode_ring(SMALL, start, [EXAMPLE])
    with pytest.raises(WireRuleError, match=r"\[RING-TRAILER\]"):
        read_ring(corrupt(ring, 4096 + 80, "<Q", 0), SMALL)


@pytest.mark.parametrize(
    ("write_index", "read_index"),
    [(SMALL, 0), (0, SMALL), (2**32 - 8, 0), (0x13, 0), (0, 0x11)],
)
def test_ring_rejects_bad_indices(write_index: int, read_index: int) -> None:
    ring = encode_ring(SMALL, 0, [])
    with pytest.raises(WireRuleError, match=r"\[RING-LAYOUT\]"):
        read_ring(corrupt(ring, 0, "<II", write_index, read_index), SMALL)


def test_ring_rejects_a_packet_past_write_index() -> None:
    ring = encode_ring(SMALL, 0, [EXAMPLE])
    # write_index just before the trailer: the packet's trailer is not published.
    with pytest.raises(WireRuleError, match=r"\[RING-LAYOUT\].*runs past"):
        read_ring(corrupt(ring, 0, "<I", 120), SMALL)
    # Too few bytes for even a descriptor and a trailer.
    with pytest.raises(WireRuleError, match=r"\[RING-LAYOUT\].*too few"):
        read_ring(corrupt(ring, 0, "<I", 16), SMALL)


def test_ring_rejects_length8_zero_without_looping() -> None:
    ring = encode_ring(SMALL, 0, [EXAMPLE])
    with pytest.raises(WireRuleError, match=r"\[WIRE-LENGTH8\]"):
        read_ring(corrupt(ring, 4096 + 4, "<H", 0), SMALL)


def test_ring_size_must_match() -> None:
    ring = encode_ring(SMALL, 0, [EXAMPLE])
    with pytest.raises(WireRuleError, match=r"\[RING-LAYOUT\]"):
        read_ring(ring + bytes(8), SMALL)
    with pytest.raises(WireRuleError, match=r"\[RING-LAYOUT\]"):
        read_ring(ring[:-8], SMALL)
    with pytest.raises(InvalidValue):
        read_ring(ring, SMALL + 1)
    with pytest.raises(InvalidValue):
        read_ring(ring, 0)


@settings(max_examples=200)
@given(
    st.lists(packets(), max_size=6),
    st.integers(0, 4096 // 8 - 1).map(lambda i: i * 8),
)
def test_ring_round_trip(items: list[Packet], read_index: int) -> None:
    encoded = [encode_packet(p) for p in items]
    if sum(len(e) + 8 for e in encoded) >= PAGE_SIZE:
        return
    contents = read_ring(encode_ring(PAGE_SIZE, read_index, encoded), PAGE_SIZE)
    assert [e.packet for e in contents.entries] == encoded
    position = read_index
    for entry in contents.entries:
        assert entry.start_offset == position
        position = (position + len(entry.packet) + 8) % PAGE_SIZE
    assert contents.control.write_index == position


@settings(max_examples=300)
@given(
    st.lists(packets(), min_size=1, max_size=3),
    st.integers(0, SMALL * 4 // 8 - 1).map(lambda i: i * 8),
    st.data(),
)
def test_corrupted_rings_only_raise_wire_format_error(
    items: list[Packet], read_index: int, data: st.DataObject
) -> None:
    size = SMALL * 4
    encoded = [encode_packet(p) for p in items]
    if sum(len(e) + 8 for e in encoded) >= size:
        return
    ring = bytearray(encode_ring(size, read_index, encoded))
    index = data.draw(st.sampled_from([0, 1, 4, 5]) | st.integers(4096, len(ring) - 1))
    ring[index] = data.draw(st.integers(0, 255))
    try:
        contents = read_ring(bytes(ring), size)
    except WireFormatError:
        return
    for entry in contents.entries:
        decodes_or_rejects(entry.packet)


# ---------------------------------------------------------------------------------------------
# The malformed-input campaign: every decoder, arbitrary and mutated bytes
# (bench/malformed_replay.py runs wire_inputs / check_wire_input for 10,000 inputs)
# ---------------------------------------------------------------------------------------------


@st.composite
def _mutated_control_pages(draw: st.DrawFn) -> bytes:
    page = bytearray(encode_ring_control(RingControl(
        draw(st.integers(0, 0x200)) * 8, draw(st.integers(0, 0x200)) * 8, 0, 0, 1)))
    for _ in range(draw(st.integers(0, 3))):
        offset = draw(st.sampled_from([0, 4, 8, 12, 64]) | st.integers(0, len(page) - 4))
        struct.pack_into("<I", page, offset, draw(st.integers(0, 2**32 - 1)))
    return bytes(page[: draw(st.sampled_from([len(page), len(page), 4095, 16, 0]))])


@st.composite
def _corrupted_rings(draw: st.DrawFn) -> tuple[bytes, int]:
    size = SMALL * 4
    encoded = [encode_packet(p) for p in draw(st.lists(packets(), min_size=1, max_size=3))]
    encoded = [e for e in encoded if len(e) + 8 < size // 4]
    ring = bytearray(encode_ring(size, draw(st.integers(0, size // 8 - 1)) * 8, encoded))
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.sampled_from([0, 1, 4, 5]) | st.integers(4096, len(ring) - 1))
        ring[index] = draw(st.integers(0, 255))
    claimed = draw(st.sampled_from([size, size, size - 8, size + 8]))
    return bytes(ring), claimed


#: (decoder, input) pairs: packets arbitrary, plausible and mutated; trailers; control pages;
#: whole rings with corrupted bytes.
wire_inputs = st.one_of(
    st.tuples(st.just("packet"), st.binary(max_size=300)),
    st.tuples(st.just("packet"), plausible_bytes()),
    st.tuples(st.just("packet"), mutations().map(lambda case: case[1])),
    st.tuples(st.just("trailer"), st.binary(max_size=12)),
    st.tuples(st.just("control"), _mutated_control_pages()),
    st.tuples(st.just("ring"), _corrupted_rings()),
)


def check_wire_input(decoder: str, data: Any) -> str:
    """Decode ``data``: a value, or WireFormatError and nothing else (decodes_or_rejects also
    checks that what decodes re-encodes to the same bytes)."""
    try:
        if decoder == "packet":
            return "decoded" if decodes_or_rejects(data) is not None else "rejected"
        if decoder == "trailer":
            decode_trailer(data)
        elif decoder == "control":
            decode_ring_control(data)
        else:
            ring, size = data
            for entry in read_ring(ring, size).entries:
                decodes_or_rejects(entry.packet)
    except WireFormatError as error:
        assert "\n" not in str(error)
        return "rejected"
    return "decoded"


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(wire_inputs)
def test_campaign_every_decoder_raises_only_wire_format_error(case: tuple[str, Any]) -> None:
    check_wire_input(*case)
