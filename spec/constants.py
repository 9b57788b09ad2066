"""Constants of the KMCL send path, with the source of each value.

Values come from reference section 2 (KMCL.md), which cites the Windows headers
(vmbuskernelmodeclientlibapi.h, ntstatus.h, wdm.h) and the VMBus wire format shared by
Linux include/linux/hyperv.h, FreeBSD, mu_msvm and OpenVMM.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Final

UINT16_MAX: Final = 0xFFFF
UINT32_MAX: Final = 0xFFFF_FFFF
UINT64_MAX: Final = 0xFFFF_FFFF_FFFF_FFFF

# wdm.h: PAGE_SIZE 0x1000, PAGE_SHIFT 12. VMBus PFNs are always 4 KiB pages (reference §4).
PAGE_SIZE: Final = 0x1000
PAGE_SHIFT: Final = 12
PAGE_MASK: Final = PAGE_SIZE - 1


class SendFlags(IntFlag):
    """The Flags parameter of VmbPacketSendWithExternalMdl (seed, "Flags")."""

    WAIT_FOR_COMPLETION = 0x1  # VMBUS_CHANNEL_FORMAT_FLAG_WAIT_FOR_COMPLETION
    FORCE_MDL_LENGTH = 0x2  # VMBUS_CHANNEL_FORMAT_FLAG_FORCE_MDL_LENGTH
    PAGED_BUFFER = 0x4  # VMBUS_CHANNEL_FORMAT_FLAG_PAGED_BUFFER


VMBUS_CHANNEL_FORMAT_FLAG_WAIT_FOR_COMPLETION: Final = int(SendFlags.WAIT_FOR_COMPLETION)
VMBUS_CHANNEL_FORMAT_FLAG_FORCE_MDL_LENGTH: Final = int(SendFlags.FORCE_MDL_LENGTH)
VMBUS_CHANNEL_FORMAT_FLAG_PAGED_BUFFER: Final = int(SendFlags.PAGED_BUFFER)
#: The documented mask (VMBUS_CHANNEL_FORMAT_FLAGS); bits outside it are reading A7.
VMBUS_CHANNEL_FORMAT_FLAGS: Final = 0x7


class NtStatus(IntEnum):
    """The NTSTATUS values named by the reference (ntstatus.h)."""

    STATUS_SUCCESS = 0x0000_0000
    STATUS_PENDING = 0x0000_0103
    STATUS_BUFFER_OVERFLOW = 0x8000_0005
    STATUS_UNSUCCESSFUL = 0xC000_0001
    STATUS_INVALID_PARAMETER = 0xC000_000D
    STATUS_INSUFFICIENT_RESOURCES = 0xC000_009A
    STATUS_NOT_SUPPORTED = 0xC000_00BB
    STATUS_INVALID_PARAMETER_1 = 0xC000_00EF
    STATUS_INVALID_PARAMETER_2 = 0xC000_00F0
    STATUS_INVALID_PARAMETER_3 = 0xC000_00F1
    STATUS_CANCELLED = 0xC000_0120
    STATUS_INVALID_DEVICE_STATE = 0xC000_0184
    STATUS_DEVICE_REMOVED = 0xC000_02B6


def _check_ntstatus(status: int) -> int:
    if isinstance(status, bool) or not isinstance(status, int):
        raise TypeError(f"an NTSTATUS is an int, not {type(status).__name__}")
    if not 0 <= status <= UINT32_MAX:
        raise ValueError(f"an NTSTATUS is a 32-bit value; {status:#x} is out of range")
    return status


def NT_SUCCESS(status: int) -> bool:
    """ntdef.h: ``((NTSTATUS)(Status)) >= 0``, i.e. the sign bit of the 32-bit value is clear."""
    return _check_ntstatus(status) < 0x8000_0000


def NT_ERROR(status: int) -> bool:
    """ntdef.h: ``((ULONG)(Status) >> 30) == 3``, the error severity."""
    return _check_ntstatus(status) >> 30 == 3


def status_name(status: int) -> str:
    """``STATUS_CANCELLED`` for a known value, ``0xC0001234`` otherwise."""
    try:
        return NtStatus(status).name
    except ValueError:
        return f"{status:#010x}"


class PacketType(IntEnum):
    """VMBus packet types (reference §4)."""

    DATA_INBAND = 0x6
    DATA_USING_TRANSFER_PAGES = 0x7
    DATA_USING_GPA_DIRECT = 0x9
    COMP = 0xB


#: Bit 0 of the descriptor's flags: "completion requested" (reference §4).
VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED: Final = 0x1
#: Descriptor (16 bytes) and the GPA-direct header (reserved u32, range_count u32).
PACKET_DESCRIPTOR_SIZE: Final = 16
GPA_DIRECT_HEADER_SIZE: Final = 8
#: A GPA range header (byte_count u32, byte_offset u32) and one PFN (u64).
GPA_RANGE_HEADER_SIZE: Final = 8
PFN_SIZE: Final = 8
#: The 8-byte ring trailer written after every packet (reference §4, ring buffer).
RING_TRAILER_SIZE: Final = 8
#: The control page that precedes the data area of one ring direction.
RING_CONTROL_PAGE_SIZE: Final = PAGE_SIZE
#: length8 and data_offset8 are u16 counts of 8-byte units.
MAX_PACKET_BYTES: Final = UINT16_MAX * 8
