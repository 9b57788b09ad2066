/*
 * vmbcore.h: the C ABI of vmbcore, an independent implementation of the KMCL send path.
 *
 * Hand-written and checked in. tests/adapters/test_rust_abi.py compiles tests/c/smoke.c
 * against it and checks that the functions declared here are exactly the library's exported
 * Vmb... and vmbcore_... symbols.
 *
 * The KMCL functions (VmbPacket*) mirror vmbuskernelmodeclientlibapi.h. The harness functions
 * (vmbcore_<object>_<verb>) play the rest of the world: they create, open and disable a
 * channel, and play the host endpoint that takes packets from the ring and completes them.
 *
 * Conventions: every pointer is NULL-checked; out-parameters are written only on success
 * (exception: the needed length that comes with STATUS_BUFFER_TOO_SMALL); no Rust panic
 * crosses this boundary (it becomes STATUS_UNSUCCESSFUL, NULL or nothing). Handles are opaque
 * tokens that the library never dereferences: a freed packet handle is recognised and refused
 * with STATUS_INVALID_DEVICE_STATE. All functions are thread-safe (one process-wide lock).
 *
 * What a caller may rely on, and what the native adapter (adapters/native/) checks of any
 * library with this ABI, reporting a library that breaks it as a crash naming the function:
 * on STATUS_SUCCESS *out_length is at most the capacity given, and on STATUS_BUFFER_TOO_SMALL
 * it is more than the capacity; a packet is at most ring_data_size bytes and a ring copy at
 * most 4096 + ring_data_size; a handle returned on success is not NULL and not one already
 * live (a channel not yet destroyed, a packet not yet freed); a completion routine's Length is
 * at most the longest data the host has completed with. (How often a routine runs is judged by
 * the conformance suite; the adapter only refuses more than 65536 calls between collections.)
 */
#ifndef VMBCORE_H
#define VMBCORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint32_t NTSTATUS;

#define STATUS_SUCCESS              ((NTSTATUS)0x00000000u)
#define STATUS_UNSUCCESSFUL         ((NTSTATUS)0xC0000001u) /* caught panic, broken invariant */
#define STATUS_INVALID_HANDLE       ((NTSTATUS)0xC0000008u) /* unknown or destroyed channel */
#define STATUS_INVALID_PARAMETER    ((NTSTATUS)0xC000000Du)
#define STATUS_BUFFER_TOO_SMALL     ((NTSTATUS)0xC0000023u)
#define STATUS_CANCELLED            ((NTSTATUS)0xC0000120u) /* completion status on disable */
#define STATUS_INVALID_DEVICE_STATE ((NTSTATUS)0xC0000184u) /* packet queued/in flight/freed */
#define STATUS_DEVICE_REMOVED       ((NTSTATUS)0xC00002B6u) /* send on a disabled channel */

#define VMBUS_CHANNEL_FORMAT_FLAG_WAIT_FOR_COMPLETION 0x1u /* required */
#define VMBUS_CHANNEL_FORMAT_FLAG_FORCE_MDL_LENGTH    0x2u
#define VMBUS_CHANNEL_FORMAT_FLAG_PAGED_BUFFER        0x4u /* the buffer is always copied */

typedef struct VMBCHANNEL__ *VMBCHANNEL;
typedef struct VMBPACKET__ *VMBPACKET;

/* Runs synchronously inside vmbcore_host_complete / vmbcore_channel_disable, outside the
 * library's lock (it may call any function here). Buffer: the host's completion bytes, valid
 * only during the call, NULL when Length is 0. */
typedef void (*PFN_VMB_PACKET_COMPLETION_ROUTINE)(VMBPACKET Packet, NTSTATUS Status,
                                                  void *Buffer, uint32_t Length);

/* The Windows x64 MDL header (wdm.h). The PFN array (uint64_t each) follows the header
 * directly, at +0x30, with ADDRESS_AND_SIZE_TO_SPAN_PAGES(ByteOffset, ByteCount) =
 * ((ByteOffset & 0xFFF) + ByteCount + 0xFFF) >> 12 entries. ByteOffset must be < 0x1000;
 * chains longer than 64 MDLs are rejected. Only ByteCount, ByteOffset, Next and the PFNs
 * are read. */
typedef struct _MDL {
    struct _MDL *Next;      /* +0x00 */
    int16_t Size;           /* +0x08 */
    int16_t MdlFlags;       /* +0x0A */
    void *Process;          /* +0x10 */
    void *MappedSystemVa;   /* +0x18 */
    void *StartVa;          /* +0x20 */
    uint32_t ByteCount;     /* +0x28 */
    uint32_t ByteOffset;    /* +0x2C */
} MDL, *PMDL;

#define MmGetMdlPfnArray(Mdl) ((uint64_t *)((MDL *)(Mdl) + 1))

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(offsetof(MDL, ByteCount) == 0x28, "x64 MDL layout");
_Static_assert(offsetof(MDL, ByteOffset) == 0x2C, "x64 MDL layout");
_Static_assert(sizeof(MDL) == 0x30, "x64 MDL layout: PFN array at +0x30");
#endif

/* ---- KMCL ---------------------------------------------------------------------------- */

/* A new idle packet object of Channel, or NULL on failure (unknown channel). */
VMBPACKET VmbPacketAllocate(VMBCHANNEL Channel);

/* Frees an idle or completed packet. Freeing a queued/in-flight/unknown packet is a contract
 * violation and is ignored. */
void VmbPacketFree(VMBPACKET Packet);

/* Registers the packet's completion routine (NULL removes it). Without a routine a
 * completion calls nothing and the packet stays allocated (the real KMCL default routine
 * would free it). */
void VmbPacketSetCompletionRoutine(VMBPACKET Packet, PFN_VMB_PACKET_COMPLETION_ROUTINE Routine);

/* Sends Buffer (copied at the call) and the sub-buffer [MdlOffset, MdlOffset + length) of
 * ExternalDataMdl as one GPA-direct packet (type 6 in-band when the MDL is NULL).
 * Returns STATUS_SUCCESS (written to the ring, or queued), STATUS_INVALID_PARAMETER for a
 * rejected call, STATUS_INVALID_DEVICE_STATE for a queued/in-flight/freed packet,
 * STATUS_DEVICE_REMOVED on a disabled channel. The MDL is read only during the call. */
NTSTATUS VmbPacketSendWithExternalMdl(VMBPACKET PacketObject, void *Buffer,
                                      uint32_t BufferLength, MDL *ExternalDataMdl,
                                      uint32_t MdlOffset, uint32_t MdlLength, uint32_t Flags);

/* ---- harness ------------------------------------------------------------------------- */

/* A channel, not yet open; ring_data_size: a multiple of 4096 from 4096 to 64 MiB. */
NTSTATUS vmbcore_channel_create(uint32_t ring_data_size, VMBCHANNEL *out);

/* Opens the channel: queued packets are written in FIFO order. Idempotent. */
NTSTATUS vmbcore_channel_open(VMBCHANNEL channel);

/* Disables the channel for good: every outstanding packet's routine runs once with
 * STATUS_CANCELLED before this returns; afterwards the host sees nothing. */
NTSTATUS vmbcore_channel_disable(VMBCHANNEL channel);

/* Frees the channel and its packets; calls no routine. */
void vmbcore_channel_destroy(VMBCHANNEL channel);

/* The host removes the next packet from the ring (without the 8-byte trailer). Empty ring:
 * STATUS_SUCCESS with *out_length 0. capacity too small: STATUS_BUFFER_TOO_SMALL with
 * *out_length = the needed length, and the packet stays in the ring. out may be NULL when
 * capacity is 0. */
NTSTATUS vmbcore_host_take_packet(VMBCHANNEL channel, uint8_t *out, uint32_t capacity,
                                  uint32_t *out_length);

/* The host completes a transaction it took: the packet's routine runs with status and the
 * length bytes at data. STATUS_INVALID_PARAMETER if transaction_id is not awaiting
 * completion; ignored (STATUS_SUCCESS) after disable. */
NTSTATUS vmbcore_host_complete(VMBCHANNEL channel, uint64_t transaction_id, NTSTATUS status,
                               const uint8_t *data, uint32_t length);

/* A copy of the raw outgoing ring: the 4096-byte control page then the data area. Same
 * buffer protocol as vmbcore_host_take_packet. */
NTSTATUS vmbcore_channel_ring_bytes(VMBCHANNEL channel, uint8_t *out, uint32_t capacity,
                                    uint32_t *out_length);

#ifdef __cplusplus
}
#endif

#endif /* VMBCORE_H */
