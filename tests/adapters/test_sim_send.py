"""The simulator's send call: rejections, the packet it emits, the ranges for an MDL chain."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmbspec.adapters.sim import SimTarget

SUCCESS = 0
INVALID_PARAMETER = 0xC000000D
WAIT, FORCE, PAGED = 0x1, 0x2, 0x4

Mdl = tuple[tuple[int, int, tuple[int, ...]], ...]


def one_mdl(byte_offset: int, byte_count: int, first_pfn: int = 0x1000) -> Mdl:
    pages = (byte_offset + byte_count + 0xFFF) >> 12
    return ((byte_offset, byte_count, tuple(range(first_pfn, first_pfn + pages))),)


def send(
    sim: SimTarget,
    channel: int,
    mdl: Sequence[tuple[int, int, Sequence[int]]] | None,
    offset: int = 0,
    length: int = 0,
    flags: int = WAIT,
    payload: bytes = b"",
) -> tuple[int, int]:
    packet = sim.allocate_packet(channel)
    assert packet is not None
    status = sim.send_with_external_mdl(
        packet, bytearray(payload), len(payload), mdl, offset, length, flags
    )
    return status, packet


def sent(sim: SimTarget, channel: int, decoder: Callable[[bytes], Any], **kwargs: Any) -> Any:
    status, _ = send(sim, channel, **kwargs)
    assert status == SUCCESS, sim.last_rejection
    raw = sim.host_take_packet(channel)
    assert raw is not None
    return decoder(raw)


def test_worked_example_from_the_reference(sim, open_channel, decoder) -> None:
    channel = open_channel()
    got = sent(sim, channel, decoder, mdl=one_mdl(0x100, 0x2000, 77), payload=b"\x5a" * 0x40)
    assert got.type == 9
    assert got.flags == 1
    assert got.ranges == [(0x2000, 0x100, (77, 78, 79))]
    assert got.data_offset8 == 7
    assert got.length8 == 15
    assert got.payload == b"\x5a" * 0x40


def test_payload_is_zero_padded_to_eight_bytes(sim, open_channel, decoder) -> None:
    channel = open_channel()
    got = sent(sim, channel, decoder, mdl=one_mdl(0, 0x10), payload=b"\xff" * 0x41)
    assert got.length8 * 8 == 16 + 8 + 8 + 8 + 0x48
    assert got.payload == b"\xff" * 0x41 + bytes(7)


def test_null_mdl_with_zero_offset_and_length_sends_an_in_band_packet(
    sim, open_channel, decoder
) -> None:
    channel = open_channel()
    got = sent(sim, channel, decoder, mdl=None, payload=b"hello")
    assert (got.type, got.data_offset8, got.length8) == (6, 2, 3)
    assert got.payload == b"hello" + bytes(3)


@pytest.mark.parametrize(("offset", "length"), [(1, 0), (0, 1), (0x10, 0x10)])
def test_null_mdl_with_offset_or_length_is_rejected(sim, open_channel, offset, length) -> None:
    channel = open_channel()
    status, _ = send(sim, channel, None, offset, length)
    assert status == INVALID_PARAMETER
    assert sim.host_take_packet(channel) is None


def test_null_buffer_with_a_length_is_rejected_and_without_one_is_fine(
    sim, open_channel, decoder
) -> None:
    channel = open_channel()
    packet = sim.allocate_packet(channel)
    assert sim.send_with_external_mdl(packet, None, 8, one_mdl(0, 64), 0, 0, WAIT) != SUCCESS
    assert sim.send_with_external_mdl(packet, None, 0, one_mdl(0, 64), 0, 0, WAIT) == SUCCESS
    got = decoder(sim.host_take_packet(channel))
    assert got.payload == b""
    assert got.data_offset8 == got.length8 == 5


def test_send_without_wait_for_completion_is_rejected(sim, open_channel) -> None:
    channel = open_channel()
    for flags in (0, FORCE, PAGED, FORCE | PAGED, 0x8):
        assert send(sim, channel, one_mdl(0, 64), flags=flags)[0] == INVALID_PARAMETER
    assert sim.host_take_packet(channel) is None


@pytest.mark.parametrize("flags", [0x9, 0x11, 0x13 & ~FORCE, 0xFFFFFFF9])
def test_bits_outside_the_documented_mask_are_ignored(sim, open_channel, decoder, flags) -> None:
    channel = open_channel()
    plain = sent(sim, channel, decoder, mdl=one_mdl(0x10, 0x3000), length=0x1234)
    odd = sent(sim, channel, decoder, mdl=one_mdl(0x10, 0x3000), length=0x1234, flags=flags)
    assert odd.ranges == plain.ranges


def test_mdl_offset_counts_from_the_first_described_byte(sim, open_channel, decoder) -> None:
    channel = open_channel()
    got = sent(sim, channel, decoder, mdl=one_mdl(0xF00, 0x3000, 10), offset=0x100, length=0x20)
    # byte 0x100 of the MDL is at ByteOffset 0xF00 + 0x100 = 0x1000: page 1, offset 0
    assert got.ranges == [(0x20, 0, (11,))]


def test_mdl_length_zero_means_the_rest_after_the_offset(sim, open_channel, decoder) -> None:
    channel = open_channel()
    got = sent(sim, channel, decoder, mdl=one_mdl(0x200, 0x2000, 10), offset=0x1000)
    assert got.ranges == [(0x1000, 0x200, (11, 12))]


def test_chain_gives_one_range_per_mdl_touched_in_chain_order(sim, open_channel, decoder) -> None:
    channel = open_channel(16384)
    chain = (
        (0x800, 0x1000, (1, 2)),
        (0, 0, ()),
        (0x10, 0x20, (3,)),
        (0, 0x3000, (4, 5, 6)),
        (0x100, 0x100, (7,)),
    )
    got = sent(sim, channel, decoder, mdl=chain, offset=0xC00, length=0x1500)
    assert got.ranges == [
        (0x400, 0xC00 + 0x800 - 0x1000, (2,)),
        (0x20, 0x10, (3,)),
        (0x10E0, 0, (4, 5)),
    ]
    whole = sent(sim, channel, decoder, mdl=chain, offset=0x1000)
    assert whole.ranges == [(0x20, 0x10, (3,)), (0x3000, 0, (4, 5, 6)), (0x100, 0x100, (7,))]


def test_chain_bound_is_the_sum_of_byte_counts(sim, open_channel) -> None:
    channel = open_channel(16384)
    chain = ((0x10, 0x1000, (1, 2)), (0, 0x800, (3,)))
    assert send(sim, channel, chain, 0x800, 0x1000)[0] == SUCCESS
    assert send(sim, channel, chain, 0x800, 0x1001)[0] == INVALID_PARAMETER
    assert send(sim, channel, chain, 0x1800, 0)[0] == INVALID_PARAMETER  # rest is 0 bytes
    assert send(sim, channel, chain, 0x1801, 0)[0] == INVALID_PARAMETER  # past the end


@pytest.mark.parametrize(
    ("byte_offset", "byte_count", "offset", "limit"),
    [
        (0x100, 0x1000, 0, 0x1F00),
        (0x100, 0x1000, 0x1000, 0x1F00),
        (0, 0x1800, 0x10, 0x2000),
        (0xFFF, 1, 0, 1),
        (0x234, 0, 0, 0x1000 - 0x234),
    ],
)
def test_force_bound_at_and_just_past_the_limit(
    sim, open_channel, decoder, byte_offset, byte_count, offset, limit
) -> None:
    """ROUND_TO_PAGES(ByteOffset + ByteCount) - ByteOffset, reading A3 (a)."""
    channel = open_channel(16384)
    mdl = one_mdl(byte_offset, byte_count, 50)
    length = limit - offset
    got = sent(sim, channel, decoder, mdl=mdl, offset=offset, length=length, flags=WAIT | FORCE)
    [(count, page_offset, pfns)] = got.ranges
    assert count == length
    assert page_offset == (byte_offset + offset) & 0xFFF
    assert set(pfns) <= set(mdl[0][2])  # never a PFN past the MDL's array
    assert pfns[-1] == mdl[0][2][-1]  # and the bound reaches its last page
    status, _ = send(sim, channel, mdl, offset, length + 1, flags=WAIT | FORCE)
    assert status == INVALID_PARAMETER


def test_force_uses_only_the_first_mdl(sim, open_channel, decoder) -> None:
    channel = open_channel(16384)
    chain = ((0x100, 0x800, (1,)), (0, 0x2000, (2, 3)))
    got = sent(sim, channel, decoder, mdl=chain, offset=0x10, flags=WAIT | FORCE)
    assert got.ranges == [(0x7F0, 0x110, (1,))]  # length 0: rest of the first ByteCount
    assert send(sim, channel, chain, 0, 0xF01, WAIT | FORCE)[0] == INVALID_PARAMETER
    assert send(sim, channel, chain, 0, 0xF01, WAIT)[0] == SUCCESS  # the chain has room
    assert send(sim, channel, chain, 0x800, 0, WAIT | FORCE)[0] == INVALID_PARAMETER
    assert send(sim, channel, chain, 0x900, 0, WAIT | FORCE)[0] == INVALID_PARAMETER


@pytest.mark.parametrize("flags", [WAIT, WAIT | FORCE])
def test_offset_plus_length_past_2_to_the_32_is_rejected(sim, open_channel, flags) -> None:
    channel = open_channel(16384)
    mdl = one_mdl(0, 0x2000)
    # (0xFFFFF000 + 0x2000) & 0xFFFFFFFF = 0x1000 would pass a 32-bit check
    assert send(sim, channel, mdl, 0xFFFFF000, 0x2000, flags)[0] == INVALID_PARAMETER
    assert send(sim, channel, mdl, 0xFFFFFFFF, 0xFFFFFFFF, flags)[0] == INVALID_PARAMETER
    assert sim.host_take_packet(channel) is None


@pytest.mark.parametrize(
    "mdl",
    [
        (),
        ((0x1000, 0x10, (1,)),),
        ((0x10, 0x1000, (1,)),),
        ((0x10, 0x10, (1, 2)),),
        ((0, -1, ()),),
        ((0, 0x1_0000_0000, ()),),
        ((0, 0x10, (-1,)),),
        ((0, 0x10, (1 << 64,)),),
        ((0, 0x10),),
        ((0, 0x10, None),),
        ((0, "16", (1,)),),
        "not an mdl",
    ],
)
def test_malformed_mdl_is_rejected_not_a_crash(sim, open_channel, mdl) -> None:
    channel = open_channel()
    assert send(sim, channel, mdl, 0, 0)[0] == INVALID_PARAMETER
    assert send(sim, channel, mdl, 0, 0, WAIT | FORCE)[0] == INVALID_PARAMETER


def test_zero_resolved_length_is_rejected(sim, open_channel) -> None:
    channel = open_channel()
    assert send(sim, channel, ((0, 0, ()),))[0] == INVALID_PARAMETER
    assert send(sim, channel, ((0x80, 0, (1,)),), flags=WAIT | FORCE)[0] == INVALID_PARAMETER
    assert send(sim, channel, one_mdl(0, 0x100), 0x100, 0)[0] == INVALID_PARAMETER


def test_a_packet_that_can_never_fit_the_ring_is_rejected(sim, open_channel) -> None:
    channel = open_channel(4096)
    # in-band: 16-byte descriptor + payload; fits iff total + 8 < 4096
    assert send(sim, channel, None, payload=bytes(4080 - 16))[0] == SUCCESS
    assert send(sim, channel, None, payload=bytes(4080 - 16 + 1))[0] == INVALID_PARAMETER
    assert sim.queued_count(channel) == 0  # the second is not queued forever


def test_a_packet_longer_than_length8_allows_is_rejected(sim, open_channel) -> None:
    channel = open_channel(1 << 20)
    limit = 0xFFFF * 8 - 16
    assert send(sim, channel, None, payload=bytes(limit))[0] == SUCCESS
    assert send(sim, channel, None, payload=bytes(limit + 1))[0] == INVALID_PARAMETER


def test_rejected_call_changes_nothing_and_leaves_the_packet_usable(sim, open_channel) -> None:
    channel = open_channel()
    before = sim.ring_bytes(channel)
    status, packet = send(sim, channel, one_mdl(0, 0x100), 0x80, 0x81)
    assert status == INVALID_PARAMETER
    assert sim.ring_bytes(channel) == before
    assert sim.completions() == []
    buffer = bytearray(b"ok")
    assert sim.send_with_external_mdl(packet, buffer, 2, one_mdl(0, 0x100), 0x80, 0x80, 1) == 0


def test_misuse_by_the_caller_of_the_adapter_raises(sim, open_channel) -> None:
    channel = open_channel()
    packet = sim.allocate_packet(channel)
    with pytest.raises(ValueError, match="packet handle"):
        sim.send_with_external_mdl(9999, None, 0, None, 0, 0, 1)
    with pytest.raises(ValueError, match="UINT32"):
        sim.send_with_external_mdl(packet, None, 0, one_mdl(0, 8), -1, 0, 1)
    with pytest.raises(ValueError, match="UINT32"):
        sim.send_with_external_mdl(packet, None, 0, one_mdl(0, 8), 0, 1 << 32, 1)
    with pytest.raises(ValueError, match="exceeds"):
        sim.send_with_external_mdl(packet, bytearray(4), 5, None, 0, 0, 1)
    with pytest.raises(ValueError, match="channel handle"):
        sim.allocate_packet(packet)
    with pytest.raises(ValueError, match="multiple of 4096"):
        sim.create_channel(100)


# -- the ranges describe exactly the sub-buffer ---------------------------------------------------


@st.composite
def chains(draw: st.DrawFn) -> Mdl:
    count = draw(st.integers(1, 4))
    pfn = iter(range(100, 10_000))
    chain = []
    for _ in range(count):
        byte_offset = draw(st.integers(0, 0xFFF))
        byte_count = draw(st.integers(0, 0x2800))
        pages = (byte_offset + byte_count + 0xFFF) >> 12
        chain.append((byte_offset, byte_count, tuple(next(pfn) for _ in range(pages))))
    return tuple(chain)


def bytes_of_chain(chain: Mdl) -> list[tuple[int, int]]:
    """(pfn, page offset) of every byte the chain describes, straight from the MDL rules."""
    out = []
    for byte_offset, byte_count, pfns in chain:
        for k in range(byte_count):
            out.append((pfns[(byte_offset + k) >> 12], (byte_offset + k) & 0xFFF))
    return out


def bytes_of_ranges(ranges: list[tuple[int, int, tuple[int, ...]]]) -> list[tuple[int, int]]:
    out = []
    for byte_count, byte_offset, pfns in ranges:
        for i in range(byte_count):
            out.append((pfns[(byte_offset + i) >> 12], (byte_offset + i) & 0xFFF))
    return out


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chain=chains(), data=st.data())
def test_ranges_cover_exactly_the_sub_buffer_one_per_mdl(
    decoder: Callable[[bytes], Any], chain: Mdl, data: st.DataObject
) -> None:
    total = sum(bc for _, bc, _ in chain)
    offset = data.draw(st.integers(0, total + 2))
    length = data.draw(st.integers(0, total - offset + 2) if offset <= total else st.just(0))
    sim = SimTarget()
    channel = sim.create_channel(1 << 16)
    sim.open_channel(channel)
    status, _ = send(sim, channel, chain, offset, length)
    resolved = length if length else total - offset
    if resolved <= 0 or offset + resolved > total:
        assert status == INVALID_PARAMETER
        return
    assert status == SUCCESS, sim.last_rejection
    got = decoder(sim.host_take_packet(channel))
    assert bytes_of_ranges(got.ranges) == bytes_of_chain(chain)[offset : offset + resolved]
    touched = []
    base = 0
    for index, (_, byte_count, _) in enumerate(chain):
        if max(offset, base) < min(offset + resolved, base + byte_count):
            touched.append(index)
        base += byte_count
    assert len(got.ranges) == len(touched)
    for (count, page_offset, pfns), index in zip(got.ranges, touched, strict=True):
        assert count > 0 and page_offset < 0x1000
        assert set(pfns) <= set(chain[index][2])
