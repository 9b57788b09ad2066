/*
 * vmbsweep.h: the sweep runner of libvmbcore (src/sweep.rs). It loads ANY library with the
 * ABI of vmbcore.h by path (dlopen) and runs batches of single calls of
 * VmbPacketSendWithExternalMdl in native code, each on a fresh open channel and a fresh
 * packet, with every MDL's PFN array and the in-line buffer ending exactly at a page boundary
 * followed by an inaccessible (PROT_NONE) page, and a guard page before each mapping too.
 *
 * Hand-written and checked in. tests/adapters/test_rust_abi.py checks that the functions
 * declared here are exactly the library's exported vmbsweep_... symbols.
 *
 * Per shape: vmbcore_channel_create(ring_data_size) and vmbcore_channel_open; VmbPacketAllocate
 * and VmbPacketSetCompletionRoutine (a routine counting its calls); the MDL chain laid out as
 * vmbcore.h describes an MDL (max(PFNs given, ADDRESS_AND_SIZE_TO_SPAN_PAGES) PFN slots, the
 * missing ones 0) and the BufferLength bytes of the buffer; VmbPacketSendWithExternalMdl; the
 * count of completion-routine calls so far; vmbcore_host_take_packet with capacity
 * ring_data_size; VmbPacketFree; vmbcore_channel_destroy. The guarded memory stays mapped until
 * the channel is destroyed.
 *
 * Nothing the library returns is followed: an out_length above the capacity given, or a
 * STATUS_BUFFER_TOO_SMALL that contradicts it, is an error code in the shape's record.
 *
 * A read past a guard page kills the process: run the runner in a child process and share
 * VMBSWEEP_PROGRESS with the parent (adapters/native/sweep.py does). Runs are serialised by a
 * process-wide lock. Linux only (elsewhere: VMBSWEEP_UNSUPPORTED).
 *
 * Encodings, little-endian, packed, no alignment:
 *
 *   shape:  u32 mdl_count (0: NULL MDL, at most 256)  u32 MdlOffset  u32 MdlLength  u32 Flags
 *           u32 buffer_present (0: NULL, 1: present)   u32 BufferLength
 *           [BufferLength bytes when present]
 *           mdl_count x { u32 ByteOffset  u32 ByteCount  u32 pfn_count  pfn_count x u64 PFN }
 *   record: u32 status (the send's NTSTATUS)  u32 calls (completion-routine calls right after
 *           the send)  u32 error (VMBSWEEP_SHAPE_...)  u32 detail  u32 packet_length
 *           [packet_length bytes: the packet taken, without its 8-byte trailer; 0: none]
 */
#ifndef VMBSWEEP_H
#define VMBSWEEP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes of vmbsweep_run and vmbsweep_raw_rate. */
#define VMBSWEEP_OK             0 /* every shape ran and has its record */
#define VMBSWEEP_RESULTS_FULL   1 /* progress->shapes_done have records; call again for the
                                     rest (the shape that did not fit runs again) */
#define VMBSWEEP_BAD_ARGUMENT   2 /* a NULL pointer, a zero cycle count, no fault handler */
#define VMBSWEEP_BAD_SHAPE      3 /* the shape at progress->shapes_done is malformed */
#define VMBSWEEP_LOAD_FAILED    4 /* dlopen failed */
#define VMBSWEEP_MISSING_SYMBOL 5 /* the library lacks a function of vmbcore.h */
#define VMBSWEEP_OUT_OF_MEMORY  6 /* guard memory could not be mapped */
#define VMBSWEEP_PANIC          7 /* a bug of the runner */
#define VMBSWEEP_UNSUPPORTED    8 /* not Linux */
#define VMBSWEEP_CYCLE_FAILED   9 /* vmbsweep_raw_rate: a call of a cycle failed */

/* Options of vmbsweep_run. */
#define VMBSWEEP_CATCH_FAULTS 0x1u /* a SIGSEGV/SIGBUS handler records the fault in progress
                                      (address, region, side), then the signal kills the
                                      process as without it */

/* The error field of a record. */
#define VMBSWEEP_SHAPE_OK                  0u /* status, calls and packet are the call's */
#define VMBSWEEP_SHAPE_CHANNEL_CREATE_FAILED 1u /* detail: its NTSTATUS */
#define VMBSWEEP_SHAPE_CHANNEL_NULL        2u /* success and a NULL channel */
#define VMBSWEEP_SHAPE_CHANNEL_OPEN_FAILED 3u /* detail: its NTSTATUS */
#define VMBSWEEP_SHAPE_ALLOCATE_FAILED     4u /* VmbPacketAllocate returned NULL */
#define VMBSWEEP_SHAPE_TAKE_FAILED         5u /* detail: vmbcore_host_take_packet's NTSTATUS */
#define VMBSWEEP_SHAPE_LENGTH_ABOVE_CAPACITY 6u /* detail: the out_length reported */
#define VMBSWEEP_SHAPE_IMPOSSIBLE_TOO_SMALL 7u /* detail: the out_length asked for */

/* fault_region and fault_side of VMBSWEEP_PROGRESS. */
#define VMBSWEEP_REGION_UNKNOWN 0u /* none of the runner's guarded regions */
#define VMBSWEEP_REGION_MDL     1u /* fault_index: the MDL's position in the chain */
#define VMBSWEEP_REGION_BUFFER  2u
#define VMBSWEEP_SIDE_INSIDE    0u
#define VMBSWEEP_SIDE_BEFORE    1u /* the guard page before the region's mapping */
#define VMBSWEEP_SIDE_AFTER     2u /* the guard page right after the region's last byte */

/* Written with volatile stores once the library is loaded (shapes_done 0, fault fields 0: a
 * watcher that still sees the value it put there knows that no shape was reached), then after
 * every shape, so a parent process sharing this memory sees it even when the runner's process
 * dies. */
typedef struct VMBSWEEP_PROGRESS {
    uint64_t shapes_done;   /* shapes with a complete record */
    uint64_t results_len;   /* bytes of records written */
    uint64_t fault_address; /* with VMBSWEEP_CATCH_FAULTS: the faulting address */
    uint32_t fault_signal;  /* 11 SIGSEGV, 7 SIGBUS; 0: no fault caught */
    uint32_t fault_region;
    uint32_t fault_index;
    uint32_t fault_side;
} VMBSWEEP_PROGRESS;

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(VMBSWEEP_PROGRESS) == 40, "VMBSWEEP_PROGRESS layout");
#endif

/* Runs the encoded shapes on the library at library_path, writing one record per shape to
 * results. shapes/results may be NULL when their length is 0; progress is required. */
int32_t vmbsweep_run(const char *library_path, uint32_t ring_data_size, const uint8_t *shapes,
                     size_t shapes_len, uint8_t *results, size_t results_capacity,
                     VMBSWEEP_PROGRESS *progress, uint32_t options);

/* The library's raw rate, timed in native code through dlopen: cycles x
 * (VmbPacketSendWithExternalMdl with an 8-byte buffer and one MDL of one page, MdlLength 0x100,
 * WAIT_FOR_COMPLETION; vmbcore_host_take_packet; vmbcore_host_complete) on one packet of one
 * open 64 KiB channel. Writes the elapsed nanoseconds. */
int32_t vmbsweep_raw_rate(const char *library_path, uint64_t cycles, uint64_t *nanoseconds);

#ifdef __cplusplus
}
#endif

#endif /* VMBSWEEP_H */
