/*
 * driver_calls.c: driver_calls.h over a shared library with the C ABI of
 * adapters/rust/include/vmbcore.h (the Rust core: adapters/rust/target/release/libvmbcore.so,
 * built by `python adapters/rust/build.py`), loaded at run time from --library.
 *
 * THIS IS THE FILE A DRIVER TEAM REPLACES. Keep the functions of driver_calls.h and their
 * contract; swap each library call below for the driver's own test interface, typically
 *
 *     DeviceIoControl(device, IOCTL_VMBTEST_SEND, &request, sizeof request,
 *                     &reply, sizeof reply, &returned, NULL);
 *
 * to a control device the driver (or a small test driver beside it) exposes, which builds the
 * MDL chain from (ByteOffset, ByteCount, PFNs), calls VmbPacketSendWithExternalMdl and returns
 * its NTSTATUS, and records each completion-routine call for dc_completions. See README.md,
 * "Adapting it to a driver".
 *
 * What this version does:
 *   - before each library call the calling thread records its session in a thread-local
 *     pointer, so the completion routine (which the library calls synchronously, on the
 *     calling thread, inside vmbcore_host_complete and vmbcore_channel_disable) knows whose
 *     completion it is. No lock of ours is held during a call: one call that never returns
 *     does not block the other sessions (the library is thread-safe, vmbcore.h). A session is
 *     used by one thread at a time (its worker, worker.h), and one whose call hung is never
 *     used or freed again by the harness, so the stuck call may still write into it;
 *   - MDLs are laid out as Windows x64 does (a 0x30-byte header, the PFN array right after
 *     it), each with max(PFNs given, ADDRESS_AND_SIZE_TO_SPAN_PAGES) slots so a library that
 *     trusts the span never reads outside the allocation; the library reads them only during
 *     the call (vmbcore.h), so they are freed after it;
 *   - nothing the library returns is trusted: lengths are checked against the capacity given
 *     and the largest ring, handles for NULL, a completion's Length against the most bytes the
 *     host ever completed with; an impossible value is DC_CRASHED naming the function.
 */
#include "driver_calls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sys.h"
#include "vmbcore.h"

/* ---- the library ------------------------------------------------------------------------- */

typedef VMBPACKET (*fn_allocate)(VMBCHANNEL);
typedef void (*fn_free)(VMBPACKET);
typedef void (*fn_set_routine)(VMBPACKET, PFN_VMB_PACKET_COMPLETION_ROUTINE);
typedef NTSTATUS (*fn_send)(VMBPACKET, void *, uint32_t, MDL *, uint32_t, uint32_t, uint32_t);
typedef NTSTATUS (*fn_create)(uint32_t, VMBCHANNEL *);
typedef NTSTATUS (*fn_channel)(VMBCHANNEL);
typedef void (*fn_destroy)(VMBCHANNEL);
typedef NTSTATUS (*fn_read)(VMBCHANNEL, uint8_t *, uint32_t, uint32_t *);
typedef NTSTATUS (*fn_complete)(VMBCHANNEL, uint64_t, NTSTATUS, const uint8_t *, uint32_t);

static struct {
    fn_allocate allocate;
    fn_free free;
    fn_set_routine set_routine;
    fn_send send;
    fn_create create;
    fn_channel open, disable;
    fn_destroy destroy;
    fn_read take, ring;
    fn_complete complete;
} lib;

#define PAGE_SIZE 0x1000u
#define MDL_PAGES_LOCKED 0x2
/* vmbcore.h: ring data sizes up to 64 MiB; a ring copy adds the 4 KiB control page. */
#define MAX_RING_DATA ((uint32_t)64 << 20)
#define MAX_RING_BYTES (PAGE_SIZE + MAX_RING_DATA)
/* Completion-routine calls (and their bytes) held between two dc_completions. */
#define MAX_PENDING_COMPLETIONS 0x10000u
#define MAX_PENDING_BYTES ((size_t)MAX_RING_BYTES)
/* The most memory one send's MDL chain may take here (PFN arrays sized by the span). */
#define MAX_CHAIN_BYTES ((uint64_t)256 << 20)
#define FIRST_CAPACITY ((uint32_t)64 * 1024)

static sys_tls *calling;         /* per thread: the session whose library call is running */
static char target_name[300];
static const char *const capabilities[] = {"ring-bytes", "robust-contract-violations", NULL};

typedef struct channel_entry {
    uint64_t handle;
    uint32_t ring_data_size;
} channel_entry;

struct dc_session {
    channel_entry *channels;
    size_t channel_count, channel_cap;
    dc_completion *calls;
    size_t call_count, call_cap, call_bytes;
    size_t largest_completion; /* the most bytes the host completed a packet with */
    char violation[DC_MESSAGE_SIZE]; /* what the completion routine found impossible */
};

static void say(dc_message *m, const char *text) { snprintf(m->text, sizeof m->text, "%s", text); }

static void *as_pointer(uint64_t handle) { return (void *)(uintptr_t)handle; }
static uint64_t as_handle(const void *pointer) { return (uint64_t)(uintptr_t)pointer; }

static sys_function find(void *library, const char *name, char *missing, size_t size)
{
    sys_function f = sys_library_function(library, name);
    if (f == NULL) {
        size_t used = strlen(missing);
        snprintf(missing + used, size - used, "%s%s", used ? ", " : "", name);
    }
    return f;
}

int dc_init(const char *target, dc_message *m)
{
    char err[DC_MESSAGE_SIZE], missing[DC_MESSAGE_SIZE] = "";
    void *library;
    calling = sys_tls_new();
    if (calling == NULL) {
        say(m, "out of memory");
        return DC_FAILED;
    }
    library = sys_library_open(target, err, sizeof err);
    if (library == NULL) {
        say(m, err);
        return DC_FAILED;
    }
    lib.allocate = (fn_allocate)find(library, "VmbPacketAllocate", missing, sizeof missing);
    lib.free = (fn_free)find(library, "VmbPacketFree", missing, sizeof missing);
    lib.set_routine = (fn_set_routine)find(library, "VmbPacketSetCompletionRoutine", missing,
                                           sizeof missing);
    lib.send = (fn_send)find(library, "VmbPacketSendWithExternalMdl", missing, sizeof missing);
    lib.create = (fn_create)find(library, "vmbcore_channel_create", missing, sizeof missing);
    lib.open = (fn_channel)find(library, "vmbcore_channel_open", missing, sizeof missing);
    lib.disable = (fn_channel)find(library, "vmbcore_channel_disable", missing, sizeof missing);
    lib.destroy = (fn_destroy)find(library, "vmbcore_channel_destroy", missing, sizeof missing);
    lib.take = (fn_read)find(library, "vmbcore_host_take_packet", missing, sizeof missing);
    lib.ring = (fn_read)find(library, "vmbcore_channel_ring_bytes", missing, sizeof missing);
    lib.complete = (fn_complete)find(library, "vmbcore_host_complete", missing, sizeof missing);
    if (missing[0] != '\0') {
        snprintf(m->text, sizeof m->text, "%.100s does not export the vmbcore.h ABI: %.150s missing",
                 target, missing);
        return DC_FAILED;
    }
    snprintf(target_name, sizeof target_name, "vmbcore:%s", target);
    return DC_OK;
}

const char *dc_target_name(void) { return target_name; }
const char *const *dc_capabilities(void) { return capabilities; }

/* ---- a call into the library ------------------------------------------------------------- */

static void enter(dc_session *s) { sys_tls_set(calling, s); }

/* Leaves the library; DC_CRASHED if the completion routine saw something impossible. */
static int leave(dc_session *s, const char *function, dc_message *m)
{
    int status = DC_OK;
    sys_tls_set(calling, NULL);
    if (s->violation[0] != '\0') {
        snprintf(m->text, sizeof m->text, "%.40s %.250s", function, s->violation);
        s->violation[0] = '\0';
        status = DC_CRASHED;
    }
    return status;
}

static void completion_routine(VMBPACKET packet, NTSTATUS status, void *buffer, uint32_t length)
{
    dc_session *s = (dc_session *)sys_tls_get(calling); /* this thread's session */
    dc_completion *call;
    if (s == NULL || s->violation[0] != '\0')
        return;
    if (length > s->largest_completion) {
        snprintf(s->violation, sizeof s->violation,
                 "called the completion routine of packet 0x%llx with Length 0x%lx, more than "
                 "the 0x%lx bytes the host ever completed a packet with: an impossible length",
                 (unsigned long long)as_handle(packet), (unsigned long)length,
                 (unsigned long)s->largest_completion);
        return;
    }
    if (s->call_count >= MAX_PENDING_COMPLETIONS || s->call_bytes + length > MAX_PENDING_BYTES) {
        snprintf(s->violation, sizeof s->violation,
                 "called the completion routine more than %u times (or with more than 0x%lx "
                 "bytes) between two collections: an impossible count",
                 MAX_PENDING_COMPLETIONS, (unsigned long)MAX_PENDING_BYTES);
        return;
    }
    if (s->call_count == s->call_cap) {
        size_t cap = s->call_cap ? 2 * s->call_cap : 16;
        dc_completion *grown = (dc_completion *)realloc(s->calls, cap * sizeof *grown);
        if (grown == NULL) {
            snprintf(s->violation, sizeof s->violation, "(the harness ran out of memory)");
            return;
        }
        s->calls = grown;
        s->call_cap = cap;
    }
    call = &s->calls[s->call_count];
    call->packet = as_handle(packet);
    call->status = status;
    call->len = (buffer != NULL) ? length : 0;
    call->data = NULL;
    if (call->len > 0) {
        call->data = (uint8_t *)malloc(call->len);
        if (call->data == NULL) {
            snprintf(s->violation, sizeof s->violation, "(the harness ran out of memory)");
            return;
        }
        memcpy(call->data, buffer, call->len);
    }
    s->call_count++;
    s->call_bytes += call->len;
}

static int check_status(const char *what, NTSTATUS status, dc_message *m)
{
    if (status == STATUS_SUCCESS)
        return DC_OK;
    snprintf(m->text, sizeof m->text, "%s failed with NTSTATUS 0x%08lx", what,
             (unsigned long)status);
    return DC_FAILED;
}

/* ---- sessions ---------------------------------------------------------------------------- */

int dc_session_open(dc_session **out, dc_message *m)
{
    *out = (dc_session *)calloc(1, sizeof **out);
    if (*out == NULL) {
        say(m, "out of memory");
        return DC_FAILED;
    }
    return DC_OK;
}

int dc_session_reset(dc_session *s, dc_message *m)
{
    size_t i;
    enter(s);
    for (i = 0; i < s->channel_count; i++)
        lib.destroy((VMBCHANNEL)as_pointer(s->channels[i].handle));
    s->channel_count = 0;
    sys_tls_set(calling, NULL);
    s->violation[0] = '\0';
    dc_free_completions(s->calls, s->call_count);
    s->calls = NULL;
    s->call_count = s->call_cap = s->call_bytes = 0;
    s->largest_completion = 0;
    (void)m;
    return DC_OK;
}

void dc_session_close(dc_session *s)
{
    dc_message ignored;
    if (s == NULL)
        return;
    dc_session_reset(s, &ignored);
    free(s->channels);
    free(s);
}

/* ---- channels ---------------------------------------------------------------------------- */

int dc_create_channel(dc_session *s, uint32_t ring_data_size, uint64_t *channel, dc_message *m)
{
    VMBCHANNEL out = NULL;
    NTSTATUS status;
    int result;
    char what[64];
    if (s->channel_count == s->channel_cap) {
        size_t cap = s->channel_cap ? 2 * s->channel_cap : 8;
        channel_entry *grown = (channel_entry *)realloc(s->channels, cap * sizeof *grown);
        if (grown == NULL) {
            say(m, "out of memory");
            return DC_FAILED;
        }
        s->channels = grown;
        s->channel_cap = cap;
    }
    enter(s);
    status = lib.create(ring_data_size, &out);
    result = leave(s, "vmbcore_channel_create", m);
    if (result != DC_OK)
        return result;
    snprintf(what, sizeof what, "vmbcore_channel_create(0x%lx)", (unsigned long)ring_data_size);
    result = check_status(what, status, m);
    if (result != DC_OK)
        return result;
    if (out == NULL) {
        say(m, "vmbcore_channel_create returned STATUS_SUCCESS and a NULL channel");
        return DC_CRASHED;
    }
    s->channels[s->channel_count].handle = as_handle(out);
    s->channels[s->channel_count].ring_data_size = ring_data_size;
    s->channel_count++;
    *channel = as_handle(out);
    return DC_OK;
}

static int channel_call(dc_session *s, fn_channel function, const char *name, uint64_t channel,
                        dc_message *m)
{
    NTSTATUS status;
    int result;
    enter(s);
    status = function((VMBCHANNEL)as_pointer(channel));
    result = leave(s, name, m);
    return result != DC_OK ? result : check_status(name, status, m);
}

int dc_open_channel(dc_session *s, uint64_t channel, dc_message *m)
{
    return channel_call(s, lib.open, "vmbcore_channel_open", channel, m);
}

int dc_disable_channel(dc_session *s, uint64_t channel, dc_message *m)
{
    /* The library runs every outstanding packet's routine before it returns. */
    return channel_call(s, lib.disable, "vmbcore_channel_disable", channel, m);
}

/* ---- packets ----------------------------------------------------------------------------- */

int dc_allocate_packet(dc_session *s, uint64_t channel, uint64_t *packet, dc_message *m)
{
    VMBPACKET out;
    enter(s);
    out = lib.allocate((VMBCHANNEL)as_pointer(channel));
    if (out != NULL)
        lib.set_routine(out, completion_routine);
    *packet = as_handle(out);
    return leave(s, "VmbPacketAllocate", m);
}

int dc_free_packet(dc_session *s, uint64_t packet, dc_message *m)
{
    enter(s);
    lib.free((VMBPACKET)as_pointer(packet));
    return leave(s, "VmbPacketFree", m);
}

static uint64_t span_pages(uint32_t byte_offset, uint32_t byte_count)
{
    /* wdm.h ADDRESS_AND_SIZE_TO_SPAN_PAGES, in 64 bits so it cannot wrap */
    return (((uint64_t)(byte_offset & (PAGE_SIZE - 1)) + byte_count + PAGE_SIZE - 1) >> 12);
}

static void free_chain(MDL *first)
{
    while (first != NULL) {
        MDL *next = first->Next;
        free(first);
        first = next;
    }
}

/* The chain as Windows x64 lays it out; NULL (and a message) if it is too large. */
static MDL *build_chain(const dc_mdl *mdl, size_t count, dc_message *m)
{
    MDL *first = NULL;
    uint64_t total = 0;
    size_t i;
    for (i = 0; i < count; i++) {
        uint64_t slots = span_pages(mdl[i].byte_offset, mdl[i].byte_count);
        if (slots < mdl[i].pfn_count)
            slots = mdl[i].pfn_count;
        total += sizeof(MDL) + 8u * slots;
        if (total > MAX_CHAIN_BYTES) {
            snprintf(m->text, sizeof m->text,
                     "the MDL chain would take more than %lu MiB of PFN arrays in the harness",
                     (unsigned long)(MAX_CHAIN_BYTES >> 20));
            return NULL;
        }
    }
    for (i = count; i-- > 0;) { /* last first, so each can point at its successor */
        uint64_t slots = span_pages(mdl[i].byte_offset, mdl[i].byte_count);
        size_t size;
        MDL *one;
        if (slots < mdl[i].pfn_count)
            slots = mdl[i].pfn_count;
        size = sizeof(MDL) + 8u * (size_t)slots;
        one = (MDL *)calloc(1, size);
        if (one == NULL) {
            free_chain(first);
            say(m, "out of memory for the MDL chain");
            return NULL;
        }
        one->Next = first;
        one->Size = (int16_t)(size <= 0x7FFF ? size : 0);
        one->MdlFlags = MDL_PAGES_LOCKED;
        one->ByteCount = mdl[i].byte_count;
        one->ByteOffset = mdl[i].byte_offset;
        if (mdl[i].pfn_count > 0)
            memcpy(MmGetMdlPfnArray(one), mdl[i].pfns, 8u * mdl[i].pfn_count);
        first = one;
    }
    return first;
}

int dc_send_with_external_mdl(dc_session *s, uint64_t packet, const uint8_t *buffer,
                              uint32_t buffer_length, const dc_mdl *mdl, size_t mdl_count,
                              uint32_t mdl_offset, uint32_t mdl_length, uint32_t flags,
                              uint32_t *ntstatus, dc_message *m)
{
    MDL *chain = NULL;
    int result;
    if (mdl != NULL && mdl_count > 0) {
        chain = build_chain(mdl, mdl_count, m);
        if (chain == NULL)
            return DC_INVALID;
    }
    enter(s);
    /* The library copies Buffer at the call and reads the MDLs only during it. */
    *ntstatus = lib.send((VMBPACKET)as_pointer(packet), (void *)(uintptr_t)buffer,
                         buffer_length, chain, mdl_offset, mdl_length, flags);
    result = leave(s, "VmbPacketSendWithExternalMdl", m);
    free_chain(chain);
    return result;
}

/* ---- the host side ----------------------------------------------------------------------- */

static uint32_t ring_size_of(const dc_session *s, uint64_t channel)
{
    size_t i;
    for (i = 0; i < s->channel_count; i++)
        if (s->channels[i].handle == channel)
            return s->channels[i].ring_data_size < MAX_RING_DATA
                ? s->channels[i].ring_data_size : MAX_RING_DATA;
    return MAX_RING_DATA;
}

/* Calls a (channel, out, capacity, *out_length) function, growing the buffer on
 * STATUS_BUFFER_TOO_SMALL up to `limit` bytes. */
static int read_bytes(dc_session *s, fn_read function, const char *name, uint64_t channel,
                      uint32_t limit, uint8_t **bytes, size_t *len, dc_message *m)
{
    uint32_t capacity = FIRST_CAPACITY < limit ? FIRST_CAPACITY : limit;
    int attempt;
    for (attempt = 0; attempt < 3; attempt++) {
        uint8_t *out = (uint8_t *)malloc(capacity ? capacity : 1);
        uint32_t length = 0;
        NTSTATUS status;
        int result;
        if (out == NULL) {
            say(m, "out of memory");
            return DC_FAILED;
        }
        enter(s);
        status = function((VMBCHANNEL)as_pointer(channel), out, capacity, &length);
        result = leave(s, name, m);
        if (result != DC_OK) {
            free(out);
            return result;
        }
        if (status == STATUS_BUFFER_TOO_SMALL) {
            free(out);
            if (length <= capacity || length > limit) {
                snprintf(m->text, sizeof m->text,
                         "%s returned STATUS_BUFFER_TOO_SMALL asking for 0x%lx bytes when given "
                         "0x%lx (at most 0x%lx can be needed): an impossible length", name,
                         (unsigned long)length, (unsigned long)capacity, (unsigned long)limit);
                return DC_CRASHED;
            }
            capacity = length;
            continue;
        }
        result = check_status(name, status, m);
        if (result != DC_OK) {
            free(out);
            return result;
        }
        if (length > capacity) {
            free(out);
            snprintf(m->text, sizeof m->text,
                     "%s reported out_length 0x%lx, more than the 0x%lx bytes it was given: "
                     "an impossible length", name, (unsigned long)length,
                     (unsigned long)capacity);
            return DC_CRASHED;
        }
        *bytes = out;
        *len = length;
        return DC_OK;
    }
    snprintf(m->text, sizeof m->text,
             "%s returned STATUS_BUFFER_TOO_SMALL three times, though given what it asked", name);
    return DC_CRASHED;
}

int dc_host_take_packet(dc_session *s, uint64_t channel, uint8_t **packet, size_t *len,
                        dc_message *m)
{
    int result = read_bytes(s, lib.take, "vmbcore_host_take_packet", channel,
                            ring_size_of(s, channel), packet, len, m);
    if (result == DC_OK && *len == 0) { /* the ring is empty */
        free(*packet);
        *packet = NULL;
    }
    return result;
}

int dc_ring_bytes(dc_session *s, uint64_t channel, uint8_t **bytes, size_t *len, dc_message *m)
{
    return read_bytes(s, lib.ring, "vmbcore_channel_ring_bytes", channel,
                      PAGE_SIZE + ring_size_of(s, channel), bytes, len, m);
}

int dc_host_complete(dc_session *s, uint64_t channel, uint64_t transaction_id, uint32_t status,
                     const uint8_t *data, size_t len, dc_message *m)
{
    NTSTATUS result_status;
    int result;
    char what[64];
    if (len > 0xFFFFFFFFu) {
        say(m, "the completion data is longer than 4 GiB");
        return DC_INVALID;
    }
    enter(s);
    if (len > s->largest_completion)
        s->largest_completion = len;
    /* The packet's routine runs inside this call, before it returns. */
    result_status = lib.complete((VMBCHANNEL)as_pointer(channel), transaction_id, status,
                                 len ? data : NULL, (uint32_t)len);
    result = leave(s, "vmbcore_host_complete", m);
    if (result != DC_OK)
        return result;
    snprintf(what, sizeof what, "vmbcore_host_complete(0x%llx)",
             (unsigned long long)transaction_id);
    return check_status(what, result_status, m);
}

int dc_completions(dc_session *s, dc_completion **calls, size_t *count, dc_message *m)
{
    enter(s);
    *calls = s->calls;
    *count = s->call_count;
    s->calls = NULL;
    s->call_count = s->call_cap = s->call_bytes = 0;
    return leave(s, "the completion routine", m);
}

void dc_free_completions(dc_completion *calls, size_t count)
{
    size_t i;
    for (i = 0; i < count; i++)
        free(calls[i].data);
    free(calls);
}
