"""Fixtures for the simulator's own tests.

The packet decoder here is written independently of ``adapters/sim/wire.py`` (straight from
reference §4), so that an encoder bug is not mirrored by a decoder sharing its code. It is
strict: anything inconsistent raises ValueError.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from adapters.sim import SimTarget


@dataclass(frozen=True)
class Decoded:
    type: int
    data_offset8: int
    length8: int
    flags: int
    transaction_id: int
    ranges: list[tuple[int, int, tuple[int, ...]]]  # (byte_count, byte_offset, pfns)
    payload: bytes  # from data_offset8 * 8 to the end (includes the zero padding)


def decode(packet: bytes) -> Decoded:
    if len(packet) < 16 or len(packet) % 8:
        raise ValueError(f"{len(packet)} bytes is not a packet")
    ptype, off8, len8, flags, tid = struct.unpack_from("<HHHHQ", packet)
    if len8 * 8 != len(packet):
        raise ValueError(f"length8 {len8} but {len(packet)} bytes")
    ranges: list[tuple[int, int, tuple[int, ...]]] = []
    if ptype == 9:
        reserved, count = struct.unpack_from("<II", packet, 16)
        if reserved:
            raise ValueError("reserved is not 0")
        pos = 24
        for _ in range(count):
            byte_count, byte_offset = struct.unpack_from("<II", packet, pos)
            n = -(-(byte_offset + byte_count) // 4096)
            pfns = struct.unpack_from(f"<{n}Q", packet, pos + 8)
            ranges.append((byte_count, byte_offset, tuple(pfns)))
            pos += 8 + 8 * n
        if pos != off8 * 8:
            raise ValueError(f"ranges end at {pos}, data_offset8 says {off8 * 8}")
    elif ptype == 6:
        if off8 != 2:
            raise ValueError(f"in-band packet with data_offset8 {off8}")
    else:
        raise ValueError(f"unexpected packet type {ptype}")
    return Decoded(ptype, off8, len8, flags, tid, ranges, bytes(packet[off8 * 8 :]))


@pytest.fixture
def sim() -> Iterator[SimTarget]:
    target = SimTarget()
    yield target
    target.close()


@pytest.fixture
def decoder() -> Callable[[bytes], Decoded]:
    return decode


@pytest.fixture
def open_channel(sim: SimTarget) -> Callable[[int], int]:
    """Create and open a channel of the given ring data size."""

    def make(size: int = 8192) -> int:
        channel = sim.create_channel(size)
        sim.open_channel(channel)
        return channel

    return make
