"""The simulator's ring buffer: layout, wrap-around, trailers, the never-full rule, signals."""

from __future__ import annotations

import struct
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmbspec.adapters.sim.ring import Ring, RingCorrupt

CONTROL = 4096


def packet(total: int, tag: int) -> bytes:
    """A well-formed-enough packet: descriptor with length8, then a recognisable fill."""
    assert total % 8 == 0 and total >= 16
    head = struct.pack("<HHHHQ", 6, 2, total // 8, 1, tag)
    return head + bytes((tag + i) & 0xFF for i in range(total - 16))


def control(ring: Ring) -> tuple[int, int, int, int, int]:
    raw = ring.snapshot()
    write_index, read_index, mask, pending = struct.unpack_from("<IIII", raw, 0)
    (features,) = struct.unpack_from("<I", raw, 64)
    return write_index, read_index, mask, pending, features


def trailer_at(ring: Ring, offset: int) -> tuple[int, int]:
    low, high = struct.unpack_from("<II", ring.snapshot(), CONTROL + offset)
    return low, high


@pytest.mark.parametrize("size", [0, -4096, 4095, 5000, 4096 + 8])
def test_ring_size_must_be_a_positive_multiple_of_4096(size: int) -> None:
    with pytest.raises(ValueError, match="multiple of 4096"):
        Ring(size)


def test_new_ring_is_empty_with_zeroed_indices() -> None:
    ring = Ring(8192)
    assert len(ring.snapshot()) == CONTROL + 8192
    assert control(ring)[:2] == (0, 0)
    assert ring.read() is None


def test_packet_is_followed_by_a_trailer_holding_its_start_offset() -> None:
    ring = Ring(8192)
    first, second = packet(40, 1), packet(64, 2)
    ring.write(first)
    ring.write(second)
    raw = ring.snapshot()
    assert raw[CONTROL : CONTROL + 40] == first
    assert trailer_at(ring, 40) == (0, 0)
    assert raw[CONTROL + 48 : CONTROL + 48 + 64] == second
    assert trailer_at(ring, 48 + 64) == (0, 48)
    assert control(ring)[0] == 48 + 64 + 8
    assert ring.read() == first
    assert control(ring)[1] == 48
    assert ring.read() == second
    assert ring.read() is None


def advance(ring: Ring, to: int) -> None:
    """Move both indices to ``to`` by writing and reading filler packets."""
    while ring.write_index != to:
        step = min(1024, (to - ring.write_index) % ring.data_size) - 8
        ring.write(packet(step, 0))
        ring.read()


def test_packet_wraps_around_the_end_of_the_data_area() -> None:
    ring = Ring(4096)
    advance(ring, 4096 - 48)
    big = packet(200, 7)
    ring.write(big)
    raw = ring.snapshot()
    assert raw[CONTROL + 4096 - 48 : CONTROL + 4096] == big[:48]
    assert raw[CONTROL : CONTROL + 152] == big[48:]
    assert trailer_at(ring, 152) == (0, 4096 - 48)
    assert ring.write_index == 160
    assert ring.read() == big
    assert ring.read_index == 160


def test_trailer_wraps_to_offset_zero_when_the_packet_ends_at_the_end() -> None:
    ring = Ring(4096)
    advance(ring, 4096 - 64)
    ring.write(packet(64, 3))
    assert trailer_at(ring, 0) == (0, 4096 - 64)
    assert ring.write_index == 8
    assert ring.read() == packet(64, 3)


def test_ring_is_never_completely_full() -> None:
    ring = Ring(4096)
    # Empty: free = 4096, so total + 8 < 4096, i.e. total <= 4080 (8-aligned).
    assert ring.fits(4080)
    assert not ring.fits(4088)
    assert not ring.can_ever_fit(4088)
    ring.write(packet(2000, 1))  # used 2008, free 2088
    assert ring.free == 2088
    assert ring.fits(2072)
    assert not ring.fits(2080)  # would leave the ring exactly full
    ring.write(packet(2072, 2))
    assert ring.free == 8
    assert ring.write_index != ring.read_index
    with pytest.raises(AssertionError):
        ring.write(packet(16, 3))


def test_full_is_allowed_switch_lets_the_ring_fill_and_look_empty() -> None:
    ring = Ring(4096, full_is_allowed=True)
    ring.write(packet(2000, 1))
    assert ring.fits(2080)
    ring.write(packet(2080, 2))
    assert ring.write_index == ring.read_index  # the whole ring now reads as empty
    assert ring.read() is None


def test_signal_only_on_empty_to_non_empty_and_unmasked() -> None:
    ring = Ring(8192)
    ring.write(packet(32, 1))
    ring.write(packet(32, 2))
    assert ring.signals == 1
    ring.read()
    ring.write(packet(32, 3))  # not empty before: no signal
    assert ring.signals == 1
    ring.read()
    ring.read()
    ring.write(packet(32, 4))
    assert ring.signals == 2
    ring.read()
    ring.interrupt_mask = 1
    ring.write(packet(32, 5))
    assert ring.signals == 2
    assert control(ring)[2] == 1


def test_reader_rejects_a_corrupted_trailer() -> None:
    ring = Ring(4096)
    ring.write(packet(32, 1))
    ring.buffer[CONTROL + 32 + 4] ^= 0x08
    with pytest.raises(RingCorrupt, match="trailer"):
        ring.read()


def test_reader_rejects_a_length8_larger_than_what_was_written() -> None:
    ring = Ring(4096)
    ring.write(packet(32, 1))
    struct.pack_into("<H", ring.buffer, CONTROL + 4, 100)
    with pytest.raises(RingCorrupt, match="length8"):
        ring.read()


def test_feature_bits_announce_pending_send_size() -> None:
    assert control(Ring(4096))[4] & 1 == 1


@settings(max_examples=200, deadline=None)
@given(
    size=st.sampled_from([4096, 8192]),
    ops=st.lists(st.one_of(st.integers(2, 600).map(lambda n: n * 8), st.none()), max_size=80),
)
def test_ring_behaves_like_a_fifo_of_packets(size: int, ops: list[int | None]) -> None:
    """Against a model: writes happen iff they fit (free computed here from the model),
    reads return packets in order, the indices stay 8-aligned and in range."""
    ring = Ring(size)
    model: deque[bytes] = deque()
    for tag, op in enumerate(ops):
        used = sum(len(p) + 8 for p in model)
        if op is None:
            got = ring.read()
            assert got == (model.popleft() if model else None)
        elif op + 8 < size - used:
            data = packet(op, tag)
            ring.write(data)
            model.append(data)
        else:
            assert not ring.fits(op)
        write_index, read_index = control(ring)[:2]
        assert write_index % 8 == 0 and read_index % 8 == 0
        assert write_index < size and read_index < size
        assert (write_index - read_index) % size == sum(len(p) + 8 for p in model)
    while model:
        assert ring.read() == model.popleft()
    assert ring.read() is None
