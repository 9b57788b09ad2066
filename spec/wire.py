"""The bytes a correct VmbPacketSendWithExternalMdl puts in the ring, encoded and strictly decoded.

Theory of operation
-------------------
This module knows the VMBus wire format of reference §4 and nothing about the call that
produces it: a :class:`Packet` is a descriptor, for GPA direct (type 9) a header and GPA ranges,
then the in-line payload padded with zeros to a multiple of 8 bytes; the outgoing ring is a 4 KiB
control page and a circular data area in which each packet is followed by an 8-byte trailer.

* :func:`encode_packet` writes what a correct target writes. The only choices it makes are the
  ones reference §4 leaves none of: ranges back to back right after the header, the payload
  right after the ranges, the smallest padding.
* :func:`decode_packet` is the checkpoint for bytes a target wrote. It is *strict*: it accepts
  exactly the encodings :func:`encode_packet` can produce (up to the padding bytes, which it
  cannot tell from payload), and it fails on anything else with :class:`WireRuleError`, a
  :class:`~spec.errors.WireFormatError` naming the requirement broken. No other exception can
  escape for any input: every size is a Python int and is compared with what is left of the
  buffer *before* a slice or an unpack, so nothing wraps and nothing reads past the end.
* :func:`read_ring` walks the data area from ``read_index`` to ``write_index``, taking each
  packet by its ``length8`` and checking its trailer; it returns the packets as bytes, so the
  caller decides whether a malformed packet or a malformed ring is the finding.

What this module does not know: which ranges and payload a given call should produce (that is
``spec.arith`` and ``spec.rules``), completion packets (type 0xB) and transfer pages (type 7),
which a send never emits and the decoder therefore rejects, and whether the ring is "full" by a
reader's definition. Caller mistakes in building a value (a PFN list of the wrong length, a
range given to an in-band packet) raise :class:`~spec.errors.InvalidValue` or ``TypeError``,
never :class:`~spec.errors.WireFormatError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

from vmbspec.spec.constants import (
    GPA_DIRECT_HEADER_SIZE,
    GPA_RANGE_HEADER_SIZE,
    MAX_PACKET_BYTES,
    PACKET_DESCRIPTOR_SIZE,
    PAGE_MASK,
    PAGE_SHIFT,
    PFN_SIZE,
    RING_CONTROL_PAGE_SIZE,
    RING_TRAILER_SIZE,
    UINT16_MAX,
    UINT32_MAX,
    UINT64_MAX,
    VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
    PacketType,
)
from vmbspec.spec.errors import InvalidValue, WireFormatError

__all__ = [
    "SUPPORTED_TYPES",
    "BytesLike",
    "DecodedPacket",
    "GpaRange",
    "Packet",
    "RingContents",
    "RingControl",
    "RingEntry",
    "WireRuleError",
    "decode_packet",
    "decode_ring_control",
    "decode_trailer",
    "encode_packet",
    "encode_ring",
    "encode_ring_control",
    "encode_trailer",
    "pfn_count",
    "read_ring",
]

#: The packet types a send emits: in-band without external data (reading A6), GPA direct with.
SUPPORTED_TYPES: Final = frozenset({PacketType.DATA_INBAND, PacketType.DATA_USING_GPA_DIRECT})
#: The only descriptor flag a data packet may carry (WIRE-FLAGS).
_ALLOWED_FLAGS: Final = VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED
#: The largest byte_offset of a range: an offset inside the first 4 KiB page (WIRE-RANGE-OFFSET).
_MAX_BYTE_OFFSET: Final = PAGE_MASK
#: The smallest range on the wire: its header and one PFN (byte_count is at least 1).
_MIN_RANGE_BYTES: Final = GPA_RANGE_HEADER_SIZE + PFN_SIZE
#: Where the ranges start in a GPA direct packet.
_GPA_HEADER_END: Final = PACKET_DESCRIPTOR_SIZE + GPA_DIRECT_HEADER_SIZE
#: Control page field offsets (reference §4, ring buffer). Not in spec.constants.
_FEATURE_BITS_OFFSET: Final = 64

_DESCRIPTOR: Final = struct.Struct("<HHHHQ")
_GPA_HEADER: Final = struct.Struct("<II")
_RANGE_HEADER: Final = struct.Struct("<II")
_U32: Final = struct.Struct("<I")
#: What the decoders read: any bytes-like object (copied to ``bytes`` first).
BytesLike = bytes | bytearray | memoryview
_U64: Final = struct.Struct("<Q")
_CONTROL_HEAD: Final = struct.Struct("<IIII")


class WireRuleError(WireFormatError):
    """A :class:`~spec.errors.WireFormatError` that names the requirement the bytes break.

    ``str()`` is ``"[REQ-ID] message"``, the format of :class:`~spec.errors.SpecViolation`.
    """

    def __init__(self, requirement: str, message: str) -> None:
        super().__init__(f"[{requirement}] {message}")
        self.requirement = requirement
        self.message = message


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


def _check_uint(name: str, value: object, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} is an int, not {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise InvalidValue(f"{name} = {value} is outside [0, {maximum:#x}]")
    return value


def _as_bytes(name: str, value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{name} is bytes, not {type(value).__name__}")


def pfn_count(byte_offset: int, byte_count: int) -> int:
    """The PFNs a range carries: ``ceil((byte_offset + byte_count) / 4096)`` (WIRE-PFN-COUNT).

    The same value as ``ADDRESS_AND_SIZE_TO_SPAN_PAGES`` (``spec.arith.span_pages``) for an
    offset below 4096; computed on Python ints, so it cannot wrap.
    """
    return (byte_offset + byte_count + PAGE_MASK) >> PAGE_SHIFT


@dataclass(frozen=True)
class GpaRange:
    """One GPA range: ``{u32 byte_count; u32 byte_offset; u64 pfn[n]}`` (reference §4)."""

    byte_count: int
    byte_offset: int
    pfns: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_uint("byte_count", self.byte_count, UINT32_MAX)
        if self.byte_count == 0:
            # WIRE-RANGE-NONEMPTY: OpenVMM rejects EmptyByteCount; reading A9.
            raise InvalidValue("[WIRE-RANGE-NONEMPTY] a GPA range of 0 bytes is invalid")
        _check_uint("byte_offset", self.byte_offset, UINT32_MAX)
        if self.byte_offset > _MAX_BYTE_OFFSET:
            # WIRE-RANGE-OFFSET: OpenVMM rejects OffsetTooLarge.
            raise InvalidValue(
                f"[WIRE-RANGE-OFFSET] byte_offset {self.byte_offset:#x} is beyond the first page"
            )
        if not isinstance(self.pfns, tuple):
            if isinstance(self.pfns, str | bytes) or not isinstance(self.pfns, Iterable):
                raise TypeError(f"pfns is a tuple of ints, not {type(self.pfns).__name__}")
            object.__setattr__(self, "pfns", tuple(self.pfns))
        for index, pfn in enumerate(self.pfns):
            _check_uint(f"pfns[{index}]", pfn, UINT64_MAX)
        wanted = pfn_count(self.byte_offset, self.byte_count)
        if len(self.pfns) != wanted:
            # WIRE-PFN-COUNT: not one PFN more (Linux storvsc) nor fewer (OpenVMM RangeTooSmall).
            raise InvalidValue(
                f"[WIRE-PFN-COUNT] a range of {self.byte_count:#x} bytes at offset "
                f"{self.byte_offset:#x} has {wanted} PFNs, not {len(self.pfns)}"
            )

    @property
    def wire_size(self) -> int:
        """Bytes this range takes on the wire."""
        return GPA_RANGE_HEADER_SIZE + PFN_SIZE * len(self.pfns)


def _check_type(value: object) -> PacketType:
    if not isinstance(value, PacketType):
        raise TypeError(f"type is a PacketType, not {type(value).__name__}")
    if value not in SUPPORTED_TYPES:
        raise InvalidValue(f"[WIRE-LAYOUT] a send emits type 6 or 9, not {value.name}")
    return value


def _check_ranges(packet_type: PacketType, ranges: tuple[GpaRange, ...]) -> None:
    for index, gpa_range in enumerate(ranges):
        if not isinstance(gpa_range, GpaRange):
            raise TypeError(f"ranges[{index}] is a GpaRange, not {type(gpa_range).__name__}")
    if packet_type is PacketType.DATA_INBAND and ranges:
        raise InvalidValue("[WIRE-LAYOUT] an in-band packet (type 6) carries no GPA ranges")
    if packet_type is PacketType.DATA_USING_GPA_DIRECT and not ranges:
        # A send without external data is an in-band packet (reading A6); 0 bytes is A9.
        raise InvalidValue("[WIRE-LAYOUT] a GPA direct packet (type 9) carries at least one range")


def _header_size(packet_type: PacketType, ranges: Sequence[GpaRange]) -> int:
    """``data_offset`` in bytes: everything before the in-line payload."""
    if packet_type is PacketType.DATA_INBAND:
        return PACKET_DESCRIPTOR_SIZE
    return _GPA_HEADER_END + sum(r.wire_size for r in ranges)


def _round8(size: int) -> int:
    return (size + 7) & ~7


@dataclass(frozen=True)
class Packet:
    """A packet as a correct send writes it; ``payload`` is the in-line area without padding."""

    type: PacketType
    flags: int
    transaction_id: int
    ranges: tuple[GpaRange, ...]
    payload: bytes

    def __post_init__(self) -> None:
        _check_type(self.type)
        _check_uint("flags", self.flags, UINT16_MAX)
        if self.flags & ~_ALLOWED_FLAGS:
            raise InvalidValue(
                f"[WIRE-FLAGS] only bit 0 (completion requested) may be set, not {self.flags:#x}"
            )
        _check_uint("transaction_id", self.transaction_id, UINT64_MAX)
        if not isinstance(self.ranges, tuple):
            object.__setattr__(self, "ranges", tuple(self.ranges))
        _check_ranges(self.type, self.ranges)
        object.__setattr__(self, "payload", _as_bytes("payload", self.payload))

    @property
    def data_offset(self) -> int:
        """Where the payload starts, in bytes (``data_offset8 * 8``)."""
        return _header_size(self.type, self.ranges)

    @property
    def total_size(self) -> int:
        """The encoded length in bytes (``length8 * 8``), without the ring trailer."""
        return _round8(self.data_offset + len(self.payload))


@dataclass(frozen=True)
class DecodedPacket:
    """What :func:`decode_packet` learns from the bytes.

    ``inline`` is everything from ``data_offset`` to the end: the payload *and* its padding,
    which the bytes alone cannot separate. :meth:`payload` separates them given the length.
    """

    type: PacketType
    flags: int
    transaction_id: int
    ranges: tuple[GpaRange, ...]
    data_offset: int
    inline: bytes

    @property
    def completion_requested(self) -> bool:
        """Bit 0 of the descriptor's flags."""
        return bool(self.flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED)

    @property
    def total_size(self) -> int:
        """``length8 * 8``."""
        return self.data_offset + len(self.inline)

    def payload(self, length: int) -> bytes:
        """The first ``length`` in-line bytes, after checking the rest is the minimal zero padding.

        Raises :class:`WireRuleError` (WIRE-LENGTH8) if the packet is not exactly
        ``data_offset + length`` rounded up to 8, or (WIRE-LAYOUT) if a padding byte is not 0.
        """
        _check_uint("length", length, MAX_PACKET_BYTES)
        if _round8(self.data_offset + length) != self.total_size:
            raise WireRuleError(
                "WIRE-LENGTH8",
                f"{len(self.inline)} in-line bytes are not {length} payload bytes padded to 8",
            )
        if any(self.inline[length:]):
            raise WireRuleError("WIRE-LAYOUT", "the padding after the payload is not zero")
        return self.inline[:length]

    def to_packet(self, length: int) -> Packet:
        """The :class:`Packet` that encodes to these bytes, given the payload length."""
        return Packet(self.type, self.flags, self.transaction_id, self.ranges, self.payload(length))


# ---------------------------------------------------------------------------------------------
# Packets
# ---------------------------------------------------------------------------------------------


def encode_packet(packet: Packet) -> bytes:
    """The bytes of ``packet``: descriptor, header and ranges, payload, zero padding."""
    if not isinstance(packet, Packet):
        raise TypeError(f"encode_packet takes a Packet, not {type(packet).__name__}")
    data_offset = packet.data_offset
    total = packet.total_size
    # WIRE-LENGTH8: both fields are u16 counts of 8-byte units.
    if data_offset // 8 > UINT16_MAX:
        raise InvalidValue(
            f"[WIRE-LENGTH8] data_offset {data_offset} bytes does not fit a u16 data_offset8"
        )
    if total // 8 > UINT16_MAX:
        raise InvalidValue(
            f"[WIRE-LENGTH8] a packet of {total} bytes exceeds the u16 length8 "
            f"({MAX_PACKET_BYTES} bytes)"
        )
    out = bytearray(total)
    _DESCRIPTOR.pack_into(
        out, 0, int(packet.type), data_offset // 8, total // 8, packet.flags, packet.transaction_id
    )
    if packet.type is PacketType.DATA_USING_GPA_DIRECT:
        _GPA_HEADER.pack_into(out, PACKET_DESCRIPTOR_SIZE, 0, len(packet.ranges))
        position = _GPA_HEADER_END
        for gpa_range in packet.ranges:
            _RANGE_HEADER.pack_into(out, position, gpa_range.byte_count, gpa_range.byte_offset)
            position += GPA_RANGE_HEADER_SIZE
            struct.pack_into(f"<{len(gpa_range.pfns)}Q", out, position, *gpa_range.pfns)
            position += PFN_SIZE * len(gpa_range.pfns)
    out[data_offset : data_offset + len(packet.payload)] = packet.payload
    return bytes(out)


def _decode_ranges(data: bytes, range_count: int, end: int) -> tuple[tuple[GpaRange, ...], int]:
    """The ``range_count`` ranges starting at byte 24, none reaching past ``end``."""
    position = _GPA_HEADER_END
    ranges: list[GpaRange] = []
    for index in range(range_count):
        if end - position < GPA_RANGE_HEADER_SIZE:
            # WIRE-LAYOUT: range_count ranges, headers included, lie before the payload.
            raise WireRuleError(
                "WIRE-LAYOUT", f"range {index} of {range_count} starts past data_offset {end}"
            )
        byte_count, byte_offset = _RANGE_HEADER.unpack_from(data, position)
        position += GPA_RANGE_HEADER_SIZE
        if byte_count == 0:
            # WIRE-RANGE-NONEMPTY: OpenVMM EmptyByteCount.
            raise WireRuleError("WIRE-RANGE-NONEMPTY", f"range {index} has byte_count 0")
        if byte_offset > _MAX_BYTE_OFFSET:
            # WIRE-RANGE-OFFSET: OpenVMM OffsetTooLarge.
            raise WireRuleError(
                "WIRE-RANGE-OFFSET",
                f"range {index} has byte_offset {byte_offset:#x} > {_MAX_BYTE_OFFSET:#x}",
            )
        count = pfn_count(byte_offset, byte_count)  # u32 + 0xFFF + 0xFFF: no wrap on ints
        if count > (end - position) // PFN_SIZE:
            # WIRE-PFN-COUNT: OpenVMM RangeTooSmall; compared before the PFNs are read.
            raise WireRuleError(
                "WIRE-PFN-COUNT",
                f"range {index} ({byte_count:#x} bytes at offset {byte_offset:#x}) needs "
                f"{count} PFNs; only {(end - position) // PFN_SIZE} fit before data_offset {end}",
            )
        pfns = struct.unpack_from(f"<{count}Q", data, position)
        position += PFN_SIZE * count
        ranges.append(GpaRange(byte_count, byte_offset, pfns))
    return tuple(ranges), position


def decode_packet(data: BytesLike) -> DecodedPacket:
    """Decode one packet (without its ring trailer), accepting only what a correct send writes.

    Raises :class:`WireRuleError` for any malformed input and no other exception for bytes;
    ``TypeError`` only if ``data`` is not bytes-like at all.
    """
    data = _as_bytes("data", data)
    size = len(data)
    if size < PACKET_DESCRIPTOR_SIZE:
        # WIRE-LAYOUT: the 16-byte descriptor is always present.
        raise WireRuleError("WIRE-LAYOUT", f"{size} bytes are too short for a descriptor")
    raw_type, data_offset8, length8, flags, transaction_id = _DESCRIPTOR.unpack_from(data, 0)
    length = length8 * 8
    data_offset = data_offset8 * 8
    # WIRE-LENGTH8: length8 * 8 is exactly the packet's size...
    if length != size:
        raise WireRuleError(
            "WIRE-LENGTH8", f"length8 {length8} ({length} bytes) but the packet has {size} bytes"
        )
    # ...and data_offset8 * 8 does not pass it.
    if data_offset > length:
        raise WireRuleError(
            "WIRE-LENGTH8",
            f"data_offset8 {data_offset8} ({data_offset} bytes) is past length8 {length8}",
        )
    # WIRE-LAYOUT: a send emits in-band (6) or GPA direct (9) data packets only.
    if raw_type == PacketType.DATA_INBAND:
        packet_type = PacketType.DATA_INBAND
    elif raw_type == PacketType.DATA_USING_GPA_DIRECT:
        packet_type = PacketType.DATA_USING_GPA_DIRECT
    else:
        raise WireRuleError("WIRE-LAYOUT", f"packet type {raw_type:#x} is not 6 or 9")
    # WIRE-FLAGS: bit 0 only; OpenVMM rejects the others.
    if flags & ~_ALLOWED_FLAGS:
        raise WireRuleError("WIRE-FLAGS", f"flags {flags:#06x} set bits other than bit 0")

    ranges: tuple[GpaRange, ...] = ()
    header_end = PACKET_DESCRIPTOR_SIZE
    if packet_type is PacketType.DATA_USING_GPA_DIRECT:
        if data_offset < _GPA_HEADER_END:
            # WIRE-LAYOUT: the GPA direct header lies before the payload.
            raise WireRuleError(
                "WIRE-LAYOUT",
                f"data_offset {data_offset} is inside the {_GPA_HEADER_END}-byte GPA direct header",
            )
        reserved, range_count = _GPA_HEADER.unpack_from(data, PACKET_DESCRIPTOR_SIZE)
        if reserved != 0:
            # WIRE-LAYOUT: "reserved, write 0".
            raise WireRuleError("WIRE-LAYOUT", f"the GPA direct reserved field is {reserved:#x}")
        if range_count == 0:
            # WIRE-LAYOUT: a send without external data is in-band (A6); 0 bytes is rejected (A9).
            raise WireRuleError("WIRE-LAYOUT", "a GPA direct packet with range_count 0")
        # A huge range_count cannot make this loop long: every range consumes at least
        # _MIN_RANGE_BYTES of the space before data_offset or raises.
        ranges, header_end = _decode_ranges(data, range_count, data_offset)
    if data_offset != header_end:
        if packet_type is PacketType.DATA_INBAND:
            # WIRE-LAYOUT: an in-band payload starts right after the 16-byte descriptor.
            raise WireRuleError(
                "WIRE-LAYOUT",
                f"an in-band packet has data_offset {data_offset}, not {PACKET_DESCRIPTOR_SIZE}",
            )
        # WIRE-PFN-COUNT: the payload follows the last range directly (WIRE-LAYOUT), so 8-byte
        # words left between them are what unused PFNs appended to the last range look like
        # (Linux storvsc "Don't pass unused PFNs"), or a range that range_count does not count.
        raise WireRuleError(
            "WIRE-PFN-COUNT",
            f"{data_offset - header_end} bytes between the end of the last range ({header_end}) "
            f"and data_offset {data_offset}: unused PFNs, or ranges not in range_count "
            "(WIRE-LAYOUT)",
        )
    return DecodedPacket(
        type=packet_type,
        flags=flags,
        transaction_id=transaction_id,
        ranges=ranges,
        data_offset=data_offset,
        inline=data[data_offset:],
    )


# ---------------------------------------------------------------------------------------------
# The ring: trailer, control page, data area
# ---------------------------------------------------------------------------------------------


def encode_trailer(start_offset: int) -> bytes:
    """The 8-byte trailer after a packet that starts at ``start_offset`` (RING-TRAILER)."""
    _check_uint("start_offset", start_offset, UINT32_MAX)
    return _U64.pack(start_offset << 32)


def decode_trailer(data: BytesLike) -> int:
    """The start offset a trailer records; RING-TRAILER: 8 bytes, the lower 32 bits zero."""
    data = _as_bytes("data", data)
    if len(data) != RING_TRAILER_SIZE:
        raise WireRuleError("RING-TRAILER", f"a trailer is 8 bytes, not {len(data)}")
    (value,) = _U64.unpack(data)
    if value & UINT32_MAX:
        raise WireRuleError("RING-TRAILER", f"trailer {value:#018x} has low 32 bits set")
    return int(value >> 32)


@dataclass(frozen=True)
class RingControl:
    """The fields of a ring's control page that reference §4 names (all u32)."""

    write_index: int
    read_index: int
    interrupt_mask: int
    pending_send_size: int
    feature_bits: int

    def __post_init__(self) -> None:
        for name in (
            "write_index",
            "read_index",
            "interrupt_mask",
            "pending_send_size",
            "feature_bits",
        ):
            _check_uint(name, getattr(self, name), UINT32_MAX)

    @property
    def is_empty(self) -> bool:
        """Reference §4: the ring is empty when the indices are equal."""
        return self.write_index == self.read_index


def encode_ring_control(control: RingControl) -> bytes:
    """A 4096-byte control page holding ``control``, every other byte zero."""
    page = bytearray(RING_CONTROL_PAGE_SIZE)
    _CONTROL_HEAD.pack_into(
        page,
        0,
        control.write_index,
        control.read_index,
        control.interrupt_mask,
        control.pending_send_size,
    )
    _U32.pack_into(page, _FEATURE_BITS_OFFSET, control.feature_bits)
    return bytes(page)


def decode_ring_control(page: BytesLike) -> RingControl:
    """The control page's fields; RING-LAYOUT: 4096 bytes, both indices 8-aligned."""
    page = _as_bytes("page", page)
    if len(page) != RING_CONTROL_PAGE_SIZE:
        raise WireRuleError(
            "RING-LAYOUT", f"a control page is {RING_CONTROL_PAGE_SIZE} bytes, not {len(page)}"
        )
    write_index, read_index, interrupt_mask, pending = _CONTROL_HEAD.unpack_from(page, 0)
    (feature_bits,) = _U32.unpack_from(page, _FEATURE_BITS_OFFSET)
    for name, index in (("write_index", write_index), ("read_index", read_index)):
        if index % 8:
            raise WireRuleError("RING-LAYOUT", f"{name} {index:#x} is not 8-aligned")
    return RingControl(write_index, read_index, interrupt_mask, pending, feature_bits)


class RingEntry(NamedTuple):
    """One packet found in the ring: where it starts in the data area, and its bytes."""

    start_offset: int
    packet: bytes


@dataclass(frozen=True)
class RingContents:
    """A decoded ring direction: its control page and the packets between the indices."""

    control: RingControl
    entries: tuple[RingEntry, ...]


def _check_data_size(data_size: int) -> int:
    _check_uint("data_size", data_size, UINT32_MAX)
    if data_size == 0 or data_size % 8:
        raise InvalidValue(f"data_size {data_size} is not a positive multiple of 8")
    return data_size


def _read_circular(area: bytes, start: int, count: int) -> bytes:
    """``count`` bytes of the data area from ``start``, wrapping at its end (``count <= size``)."""
    first = area[start : start + count]
    return first + area[: count - len(first)]


def _write_circular(area: bytearray, start: int, chunk: bytes) -> int:
    """Write ``chunk`` at ``start``, wrapping at the end; return the position after it."""
    head = min(len(chunk), len(area) - start)
    area[start : start + head] = chunk[:head]
    area[: len(chunk) - head] = chunk[head:]
    return (start + len(chunk)) % len(area)


def read_ring(ring: BytesLike, data_size: int) -> RingContents:
    """The packets between ``read_index`` and ``write_index`` of one ring direction.

    ``ring`` is the 4096-byte control page followed by ``data_size`` bytes of data area. Each
    packet is taken by its ``length8`` and must be followed by a trailer naming its start
    (RING-TRAILER); packets and trailers may wrap around the end of the data area. The packet
    bytes are *not* decoded: pass them to :func:`decode_packet`.
    """
    ring = _as_bytes("ring", ring)
    _check_data_size(data_size)
    if len(ring) != RING_CONTROL_PAGE_SIZE + data_size:
        raise WireRuleError(
            "RING-LAYOUT",
            f"a ring of {data_size} data bytes is {RING_CONTROL_PAGE_SIZE + data_size} bytes "
            f"with its control page, not {len(ring)}",
        )
    control = decode_ring_control(ring[:RING_CONTROL_PAGE_SIZE])
    area = ring[RING_CONTROL_PAGE_SIZE:]
    for name, index in (("write_index", control.write_index), ("read_index", control.read_index)):
        if index >= data_size:
            raise WireRuleError(
                "RING-LAYOUT", f"{name} {index:#x} is not below the data size {data_size:#x}"
            )
    position = control.read_index
    used = (control.write_index - control.read_index) % data_size
    entries: list[RingEntry] = []
    while used:
        # Indices are 8-aligned and so is every length8 * 8, so used >= 8 here.
        if used < PACKET_DESCRIPTOR_SIZE + RING_TRAILER_SIZE:
            raise WireRuleError(
                "RING-LAYOUT",
                f"{used} bytes before write_index at {position:#x}: too few for a packet "
                "and its trailer",
            )
        descriptor = _read_circular(area, position, PACKET_DESCRIPTOR_SIZE)
        length8 = int.from_bytes(descriptor[4:6], "little")
        length = length8 * 8
        if length < PACKET_DESCRIPTOR_SIZE:
            # WIRE-LENGTH8: a packet is at least its descriptor; also keeps the walk moving.
            raise WireRuleError(
                "WIRE-LENGTH8", f"the packet at {position:#x} has length8 {length8}"
            )
        if length + RING_TRAILER_SIZE > used:
            raise WireRuleError(
                "RING-LAYOUT",
                f"the packet at {position:#x} ({length} bytes and trailer) runs past "
                f"write_index {control.write_index:#x}",
            )
        packet = _read_circular(area, position, length)
        trailer_at = (position + length) % data_size
        recorded = decode_trailer(_read_circular(area, trailer_at, RING_TRAILER_SIZE))
        if recorded != position:
            raise WireRuleError(
                "RING-TRAILER",
                f"the trailer of the packet at {position:#x} records start {recorded:#x}",
            )
        entries.append(RingEntry(position, packet))
        position = (trailer_at + RING_TRAILER_SIZE) % data_size
        used -= length + RING_TRAILER_SIZE
    return RingContents(control, tuple(entries))


def encode_ring(
    data_size: int,
    read_index: int,
    packets: Sequence[bytes],
    *,
    interrupt_mask: int = 0,
    pending_send_size: int = 0,
    feature_bits: int = 0,
) -> bytes:
    """A ring holding ``packets`` from ``read_index`` on, as a correct writer leaves it.

    Each packet is followed by its trailer, wrapping at the end of the data area; bytes outside
    the used part are zero. Raises :class:`~spec.errors.InvalidValue` if the packets and their
    trailers do not leave at least one free byte (reference §4: the ring is never full).
    """
    _check_data_size(data_size)
    _check_uint("read_index", read_index, data_size - 1)
    if read_index % 8:
        raise InvalidValue(f"[RING-LAYOUT] read_index {read_index:#x} is not 8-aligned")
    area = bytearray(data_size)
    position = read_index
    used = 0
    for number, raw in enumerate(packets):
        packet = _as_bytes(f"packets[{number}]", raw)
        if len(packet) % 8:
            raise InvalidValue(f"packets[{number}] is {len(packet)} bytes, not a multiple of 8")
        used += len(packet) + RING_TRAILER_SIZE
        if used >= data_size:
            raise InvalidValue(
                f"[RING-NEVER-FULL] packets and trailers take {used} bytes; a ring of "
                f"{data_size} holds at most {data_size - 8}"
            )
        start = position
        for chunk in (packet, encode_trailer(start)):
            position = _write_circular(area, position, chunk)
    control = RingControl(position, read_index, interrupt_mask, pending_send_size, feature_bits)
    return encode_ring_control(control) + bytes(area)
