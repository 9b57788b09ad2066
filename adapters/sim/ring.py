"""One direction of a VMBus ring buffer, in a real ``bytearray``.

Layout (Linux include/linux/hyperv.h ``struct hv_ring_buffer``; reference §4): a 4096-byte
control page, then a data area of ``D`` bytes::

    +0  u32 write_index      byte offset in the data area where the writer writes next
    +4  u32 read_index       byte offset where the reader reads next (empty when equal)
    +8  u32 interrupt_mask   the reader sets it non-zero to say "do not signal me"
    +12 u32 pending_send_size the writer's wish: signal me when this much room is free
    +64 u32 feature_bits     bit 0: the writer uses pending_send_size

Rules the writer keeps (docs/target-behaviour.md "Channel"):

- packets are written circularly: a packet, or its trailer, may wrap past the end of the data;
- after each packet an 8-byte trailer whose upper 32 bits are the packet's start offset;
- the ring is never completely full: ``total`` bytes fit iff ``total + 8 < free``, with
  ``free = D - used``, because a full ring would have equal indices and look empty;
- the payload is written first, the new write index published after it, and the reader
  signalled only on empty -> non-empty while its interrupt_mask is 0.

The reader half (:meth:`Ring.read`) is the host's: it trusts nothing it finds and raises
:class:`RingCorrupt` on a bad descriptor or trailer, which would mean the writer is broken.
The indices live only in the control page (read back with ``struct``), so what the suite
inspects through ``ring_bytes`` is exactly what the simulator itself uses.
"""

from __future__ import annotations

import struct

from vmbspec.adapters.sim.consts import (
    CONTROL_PAGE_SIZE,
    DESCRIPTOR_SIZE,
    FEATURE_PENDING_SEND_SIZE,
    PAGE_SIZE,
    RING_FEATURE_BITS,
    RING_INTERRUPT_MASK,
    RING_PENDING_SEND_SIZE,
    RING_READ_INDEX,
    RING_WRITE_INDEX,
    TRAILER_SIZE,
    U32_MAX,
)

#: Largest data area accepted: indices are u32, and the simulator keeps the ring in memory.
MAX_DATA_SIZE = 1 << 28


class RingCorrupt(AssertionError):
    """The reader found something no correct writer produces."""


class Ring:
    """Writer and reader of one ring. ``full_is_allowed`` is the ``ring-full`` bug switch."""

    def __init__(self, data_size: int, *, full_is_allowed: bool = False) -> None:
        if isinstance(data_size, bool) or not isinstance(data_size, int):
            raise ValueError(f"ring data size must be an int, not {type(data_size).__name__}")
        if data_size <= 0 or data_size % PAGE_SIZE:
            raise ValueError(f"ring data size {data_size} is not a positive multiple of 4096")
        if data_size > MAX_DATA_SIZE:
            raise ValueError(f"ring data size {data_size:#x} exceeds {MAX_DATA_SIZE:#x}")
        self.data_size = data_size
        self.buffer = bytearray(CONTROL_PAGE_SIZE + data_size)
        self.signals = 0
        self._full_is_allowed = full_is_allowed
        self._put32(RING_FEATURE_BITS, FEATURE_PENDING_SEND_SIZE)

    # -- control page -------------------------------------------------------------------------

    def _get32(self, offset: int) -> int:
        value: int = struct.unpack_from("<I", self.buffer, offset)[0]
        return value

    def _put32(self, offset: int, value: int) -> None:
        if not 0 <= value <= U32_MAX:
            raise AssertionError(f"control field +{offset} value {value:#x} does not fit a u32")
        struct.pack_into("<I", self.buffer, offset, value)

    @property
    def write_index(self) -> int:
        return self._get32(RING_WRITE_INDEX)

    @property
    def read_index(self) -> int:
        return self._get32(RING_READ_INDEX)

    @property
    def interrupt_mask(self) -> int:
        return self._get32(RING_INTERRUPT_MASK)

    @interrupt_mask.setter
    def interrupt_mask(self, value: int) -> None:
        """The reader's side of the control page."""
        self._put32(RING_INTERRUPT_MASK, value)

    @property
    def pending_send_size(self) -> int:
        return self._get32(RING_PENDING_SEND_SIZE)

    @pending_send_size.setter
    def pending_send_size(self, value: int) -> None:
        self._put32(RING_PENDING_SEND_SIZE, value)

    # -- room ---------------------------------------------------------------------------------

    @property
    def used(self) -> int:
        return (self.write_index - self.read_index) % self.data_size

    @property
    def free(self) -> int:
        return self.data_size - self.used

    @property
    def is_empty(self) -> bool:
        return self.write_index == self.read_index

    def fits(self, total: int) -> bool:
        """Room for a packet of ``total`` bytes plus its trailer, never filling the ring."""
        if self._full_is_allowed:
            return total + TRAILER_SIZE <= self.free  # BUG ring-full
        return total + TRAILER_SIZE < self.free

    def can_ever_fit(self, total: int) -> bool:
        return total + TRAILER_SIZE < self.data_size

    # -- circular copy ------------------------------------------------------------------------

    def _copy_in(self, offset: int, data: bytes) -> int:
        """Write ``data`` at data-area ``offset``, wrapping; returns the offset after it."""
        first = min(len(data), self.data_size - offset)
        base = CONTROL_PAGE_SIZE
        self.buffer[base + offset : base + offset + first] = data[:first]
        rest = len(data) - first
        if rest:
            self.buffer[base : base + rest] = data[first:]
        return (offset + len(data)) % self.data_size

    def _copy_out(self, offset: int, length: int) -> bytes:
        first = min(length, self.data_size - offset)
        base = CONTROL_PAGE_SIZE
        out = bytes(self.buffer[base + offset : base + offset + first])
        if length > first:
            out += bytes(self.buffer[base : base + length - first])
        return out

    # -- writer -------------------------------------------------------------------------------

    def write(self, packet: bytes) -> None:
        """Append one packet and its trailer. The caller has checked :meth:`fits`."""
        total = len(packet)
        if total % 8 or total < DESCRIPTOR_SIZE:
            raise AssertionError(f"packet of {total} bytes is not a whole 8-aligned packet")
        if not self.fits(total):
            raise AssertionError(f"packet of {total} bytes does not fit {self.free} free")
        was_empty = self.is_empty
        start = self.write_index
        after = self._copy_in(start, packet)
        trailer = struct.pack("<II", 0, start)  # upper 32 bits: the start offset
        after = self._copy_in(after, trailer)
        # Publish only after the bytes are in place: the reader trusts write_index.
        self._put32(RING_WRITE_INDEX, after)
        if was_empty and self.interrupt_mask == 0:
            self.signals += 1

    # -- reader (host side) -------------------------------------------------------------------

    def read(self) -> bytes | None:
        """Remove the next packet (without trailer); None if the ring is empty."""
        read_index, write_index = self.read_index, self.write_index
        if read_index == write_index:
            return None
        for name, index in (("read_index", read_index), ("write_index", write_index)):
            if index % 8 or index >= self.data_size:
                raise RingCorrupt(f"{name} {index:#x} is not 8-aligned below {self.data_size:#x}")
        available = (write_index - read_index) % self.data_size
        descriptor = self._copy_out(read_index, DESCRIPTOR_SIZE)
        length8: int = struct.unpack_from("<H", descriptor, 4)[0]
        total = length8 * 8
        if total < DESCRIPTOR_SIZE or total + TRAILER_SIZE > available:
            raise RingCorrupt(
                f"packet at {read_index:#x} has length8 {length8}, {available} bytes available"
            )
        packet = self._copy_out(read_index, total)
        low, start = struct.unpack("<II", self._copy_out((read_index + total) % self.data_size, 8))
        if low != 0 or start != read_index:
            raise RingCorrupt(f"trailer of the packet at {read_index:#x} is ({low:#x}, {start:#x})")
        self._put32(RING_READ_INDEX, (read_index + total + TRAILER_SIZE) % self.data_size)
        return packet

    def snapshot(self) -> bytes:
        return bytes(self.buffer)
