"""VMBus packet encoding: the descriptor, the GPA-direct header and its ranges.

Every field is packed through :func:`u16`, :func:`u32` or :func:`u64`, which refuse a value that
does not fit instead of letting ``struct`` raise deep inside or, worse, masking it: a size that
would wrap in C must be caught here, before the bytes exist. Sizes are validated by the caller
(the never-fits rule keeps ``length8`` and ``data_offset8`` within u16); the checks below are
the last line, and reaching one means the simulator itself is wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vmbspec.adapters.sim.consts import (
    DESCRIPTOR_SIZE,
    GPA_HEADER_SIZE,
    PACKET_FLAG_COMPLETION_REQUESTED,
    PACKET_TYPE_GPA_DIRECT,
    PACKET_TYPE_INBAND,
    PFN_SIZE,
    RANGE_HEADER_SIZE,
    U16_MAX,
    U32_MAX,
    U64_MAX,
)


class FieldOverflow(AssertionError):
    """A value does not fit its wire field: a defect in the simulator, never a caller error."""


def _check(name: str, value: int, limit: int) -> int:
    if not 0 <= value <= limit:
        raise FieldOverflow(f"{name}={value:#x} does not fit (max {limit:#x})")
    return value


def u16(name: str, value: int) -> bytes:
    return struct.pack("<H", _check(name, value, U16_MAX))


def u32(name: str, value: int) -> bytes:
    return struct.pack("<I", _check(name, value, U32_MAX))


def u64(name: str, value: int) -> bytes:
    return struct.pack("<Q", _check(name, value, U64_MAX))


def align8(n: int) -> int:
    return (n + 7) & ~7


@dataclass(frozen=True)
class GpaRange:
    """One ``{u32 byte_count; u32 byte_offset; u64 pfn[n]}`` entry as it goes on the wire."""

    byte_count: int
    byte_offset: int
    pfns: tuple[int, ...]

    @property
    def size(self) -> int:
        return RANGE_HEADER_SIZE + PFN_SIZE * len(self.pfns)

    def encode(self) -> bytes:
        parts = [u32("byte_count", self.byte_count), u32("byte_offset", self.byte_offset)]
        parts.extend(u64("pfn", pfn) for pfn in self.pfns)
        return b"".join(parts)


@dataclass(frozen=True)
class PacketLayout:
    """Everything about a packet except its transaction id and payload bytes.

    ``ranges`` is None for an in-band packet (type 6, no GPA-direct header). Built at the call
    so that the never-fits rule can be decided before anything is accepted.
    ``completion_requested`` is the descriptor's flag bit 0; it is clear only for a send
    without WAIT_FOR_COMPLETION accepted under reading A4 (b): such a packet completes when it
    is written, and asks the host for nothing.
    """

    ranges: tuple[GpaRange, ...] | None
    payload_length: int
    completion_requested: bool = True

    @property
    def header_size(self) -> int:
        if self.ranges is None:
            return DESCRIPTOR_SIZE
        return DESCRIPTOR_SIZE + GPA_HEADER_SIZE + sum(r.size for r in self.ranges)

    @property
    def total(self) -> int:
        """The packet's size on the ring, without trailer: length8 * 8."""
        return align8(self.header_size + self.payload_length)

    def encode(self, transaction_id: int, payload: bytes) -> bytes:
        if len(payload) != self.payload_length:
            raise FieldOverflow(
                f"payload is {len(payload)} bytes, layout says {self.payload_length}"
            )
        header_size = self.header_size
        if header_size % 8:
            raise FieldOverflow(f"header size {header_size} is not 8-aligned")
        total = self.total
        packet_type = PACKET_TYPE_INBAND if self.ranges is None else PACKET_TYPE_GPA_DIRECT
        parts = [
            u16("type", packet_type),
            u16("data_offset8", header_size // 8),
            u16("length8", total // 8),
            u16("flags", PACKET_FLAG_COMPLETION_REQUESTED if self.completion_requested else 0),
            u64("transaction_id", transaction_id),
        ]
        if self.ranges is not None:
            parts.append(u32("reserved", 0))
            parts.append(u32("range_count", len(self.ranges)))
            parts.extend(r.encode() for r in self.ranges)
        parts.append(payload)
        body = b"".join(parts)
        return body + bytes(total - len(body))
