"""The simulator's own copy of the numbers it needs.

Deliberately not shared with ``spec/``: a spec and a target that read one table of constants
would agree on a wrong value by construction. Sources: KMCL header (flags), ntstatus.h
(statuses), wdm.h (page macros), Linux include/linux/hyperv.h and OpenVMM vmbus_ring (wire).
"""

from __future__ import annotations

# Flags of VmbPacketSendWithExternalMdl (vmbuskernelmodeclientlibapi.h).
FLAG_WAIT_FOR_COMPLETION = 0x1
FLAG_FORCE_MDL_LENGTH = 0x2
FLAG_PAGED_BUFFER = 0x4

# NTSTATUS values, as unsigned 32-bit ints (ntstatus.h).
STATUS_SUCCESS = 0x00000000
STATUS_UNSUCCESSFUL = 0xC0000001
STATUS_INVALID_PARAMETER = 0xC000000D
STATUS_CANCELLED = 0xC0000120
STATUS_INVALID_DEVICE_STATE = 0xC0000184
STATUS_DEVICE_REMOVED = 0xC00002B6

# Pages: Hyper-V PFNs are always 4 KiB, whatever the guest's page size (hyperv.h).
PAGE_SIZE = 0x1000
PAGE_SHIFT = 12
PAGE_MASK = PAGE_SIZE - 1

# VMBus packet types (hyperv.h enum vmbus_packet_type).
PACKET_TYPE_INBAND = 6
PACKET_TYPE_GPA_DIRECT = 9
# Descriptor flag bit 0: completion requested.
PACKET_FLAG_COMPLETION_REQUESTED = 0x1

DESCRIPTOR_SIZE = 16  # u16 type, u16 data_offset8, u16 length8, u16 flags, u64 transaction_id
GPA_HEADER_SIZE = 8  # u32 reserved, u32 range_count
RANGE_HEADER_SIZE = 8  # u32 byte_count, u32 byte_offset
PFN_SIZE = 8
TRAILER_SIZE = 8
# length8 is a u16 counting 8-byte units.
MAX_PACKET_SIZE = 0xFFFF * 8

# Ring buffer control page (hyperv.h struct hv_ring_buffer).
CONTROL_PAGE_SIZE = 0x1000
RING_WRITE_INDEX = 0
RING_READ_INDEX = 4
RING_INTERRUPT_MASK = 8
RING_PENDING_SEND_SIZE = 12
RING_FEATURE_BITS = 64
FEATURE_PENDING_SEND_SIZE = 0x1

U16_MAX = 0xFFFF
U32_MAX = 0xFFFFFFFF
U64_MAX = 0xFFFFFFFFFFFFFFFF
