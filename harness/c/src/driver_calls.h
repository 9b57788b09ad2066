/*
 * driver_calls.h: everything the harness asks of the driver, one function per protocol
 * method. This is the seam a driver team cuts along: driver_calls.c implements it over a
 * shared library with the C ABI of adapters/rust/include/vmbcore.h (the Rust core, or any
 * library with that ABI); a team replaces that one file with calls to its own test interface
 * (typically one DeviceIoControl per function to a test-only control device) and keeps the
 * rest of the harness (protocol, JSON, deadlines, handle checks) as it is.
 *
 * The caller (session.c) has already checked every argument against the protocol: handles
 * were issued by this session (a freed packet stays a valid handle: passing it on is the
 * point, reading A10), integers are in range, buffer holds at least buffer_length bytes, the
 * MDL chain is non-empty. Each function runs on a worker thread under the call deadline
 * (worker.h): if it never returns, the harness answers "hang" and does not wait for it.
 *
 * Every function returns a dc_status and, unless DC_OK, says why in m->text (one line):
 *   DC_FAILED   the driver failed in a way the interface has no result for (a channel that
 *               could not be created or opened, a host_complete for a transaction that is not
 *               awaiting completion): error -32000 "target error";
 *   DC_INVALID  the call cannot be passed to the driver as asked (a request too large for the
 *               harness): error -32602;
 *   DC_CRASHED  the driver returned something impossible (a length past the buffer it was
 *               given, a NULL handle with success): error -32004, data.kind "crash".
 * A send the driver rejects is not an error: dc_send_with_external_mdl returns DC_OK and the
 * NTSTATUS in *ntstatus.
 *
 * Completion routines: the driver records each call (packet, status, bytes) and
 * dc_completions hands them over. host_complete and disable_channel must return only after
 * the routines they trigger have run (a real driver's routines are asynchronous: wait for
 * them, e.g. with an event the routine sets, before completing the IOCTL).
 */
#ifndef VMBHARNESS_DRIVER_CALLS_H
#define VMBHARNESS_DRIVER_CALLS_H

#include <stddef.h>
#include <stdint.h>

#define DC_MESSAGE_SIZE 300

typedef struct dc_message {
    char text[DC_MESSAGE_SIZE];
} dc_message;

enum dc_status { DC_OK = 0, DC_FAILED = 1, DC_INVALID = 2, DC_CRASHED = 3 };

/* One client's target: its channels, packets and pending completions (a real harness: one
 * handle to the control device, opened per session). */
typedef struct dc_session dc_session;

/* One MDL of a chain: ByteOffset, ByteCount and the PFNs given (the span may need more:
 * missing ones are 0). */
typedef struct dc_mdl {
    uint32_t byte_offset, byte_count;
    const uint64_t *pfns;
    size_t pfn_count;
} dc_mdl;

/* One completion-routine call. data is malloc'd (NULL when len is 0). */
typedef struct dc_completion {
    uint64_t packet;
    uint32_t status;
    uint8_t *data;
    size_t len;
} dc_completion;

/* Once at start-up, before any thread: load the library (a real harness: check that the
 * control device is there). `target` is the --library argument. */
int dc_init(const char *target, dc_message *m);
/* The target's name, for initialize and reset. */
const char *dc_target_name(void);
/* The capabilities the target has, sorted, NULL-terminated (docs/remote-protocol.md):
 * "ring-bytes", "robust-contract-violations", "reads-buffer-late". Declare only what is true:
 * a driver that may bug-check on a contract violation must not declare the second. */
const char *const *dc_capabilities(void);

int dc_session_open(dc_session **out, dc_message *m);
/* Releases every channel and packet of the session and forgets its pending completions
 * (those the teardown causes included). */
int dc_session_reset(dc_session *s, dc_message *m);
void dc_session_close(dc_session *s);

int dc_create_channel(dc_session *s, uint32_t ring_data_size, uint64_t *channel, dc_message *m);
int dc_open_channel(dc_session *s, uint64_t channel, dc_message *m);
int dc_disable_channel(dc_session *s, uint64_t channel, dc_message *m);
/* *packet = 0 when VmbPacketAllocate returns NULL. */
int dc_allocate_packet(dc_session *s, uint64_t channel, uint64_t *packet, dc_message *m);
int dc_free_packet(dc_session *s, uint64_t packet, dc_message *m);
/* buffer NULL: a NULL Buffer. Otherwise it holds at least buffer_length bytes (and is a real
 * pointer even when buffer_length is 0). mdl NULL (mdl_count 0): a NULL ExternalDataMdl. */
int dc_send_with_external_mdl(dc_session *s, uint64_t packet, const uint8_t *buffer,
                              uint32_t buffer_length, const dc_mdl *mdl, size_t mdl_count,
                              uint32_t mdl_offset, uint32_t mdl_length, uint32_t flags,
                              uint32_t *ntstatus, dc_message *m);
/* The next packet in the ring without its 8-byte trailer, malloc'd; *packet NULL when the
 * ring is empty. */
int dc_host_take_packet(dc_session *s, uint64_t channel, uint8_t **packet, size_t *len,
                        dc_message *m);
int dc_host_complete(dc_session *s, uint64_t channel, uint64_t transaction_id, uint32_t status,
                     const uint8_t *data, size_t len, dc_message *m);
/* The completion-routine calls since the last dc_completions, in order (malloc'd array). */
int dc_completions(dc_session *s, dc_completion **calls, size_t *count, dc_message *m);
void dc_free_completions(dc_completion *calls, size_t count);
/* The raw outgoing ring, control page then data area, malloc'd (capability ring-bytes). */
int dc_ring_bytes(dc_session *s, uint64_t channel, uint8_t **bytes, size_t *len, dc_message *m);

#endif
