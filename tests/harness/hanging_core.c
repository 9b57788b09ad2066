/*
 * hanging_core.c: a library with the C ABI of vmbcore.h that forwards every call to the real
 * Rust core (dlopen'ed from $VMBCORE_REAL), except that vmbcore_channel_open never returns for
 * a channel created with a ring of HANGING_RING bytes. tests/harness/test_c_harness.py uses it
 * to check that the C harness answers a driver call that hangs with the hang error (-32004,
 * data.kind "hang") and keeps serving.
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmbcore.h"

#define HANGING_RING 0x3000u

static void *real;
static VMBCHANNEL hanging[64];
static int hanging_count;

static void *lookup(const char *name)
{
    void *symbol;
    if (real == NULL) {
        const char *path = getenv("VMBCORE_REAL");
        real = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
        if (real == NULL) {
            fprintf(stderr, "hanging_core: cannot load $VMBCORE_REAL\n");
            abort();
        }
    }
    symbol = dlsym(real, name);
    if (symbol == NULL)
        abort();
    return symbol;
}


VMBPACKET VmbPacketAllocate(VMBCHANNEL channel)
{
    VMBPACKET (*f)(VMBCHANNEL);
    void *p = lookup("VmbPacketAllocate");
    memcpy(&f, &p, sizeof f);
    return f(channel);
}

void VmbPacketFree(VMBPACKET packet)
{
    void (*f)(VMBPACKET);
    void *p = lookup("VmbPacketFree");
    memcpy(&f, &p, sizeof f);
    f(packet);
}

void VmbPacketSetCompletionRoutine(VMBPACKET packet, PFN_VMB_PACKET_COMPLETION_ROUTINE routine)
{
    void (*f)(VMBPACKET, PFN_VMB_PACKET_COMPLETION_ROUTINE);
    void *p = lookup("VmbPacketSetCompletionRoutine");
    memcpy(&f, &p, sizeof f);
    f(packet, routine);
}

NTSTATUS VmbPacketSendWithExternalMdl(VMBPACKET packet, void *buffer, uint32_t buffer_length,
                                      MDL *mdl, uint32_t mdl_offset, uint32_t mdl_length,
                                      uint32_t flags)
{
    NTSTATUS (*f)(VMBPACKET, void *, uint32_t, MDL *, uint32_t, uint32_t, uint32_t);
    void *p = lookup("VmbPacketSendWithExternalMdl");
    memcpy(&f, &p, sizeof f);
    return f(packet, buffer, buffer_length, mdl, mdl_offset, mdl_length, flags);
}

NTSTATUS vmbcore_channel_create(uint32_t ring_data_size, VMBCHANNEL *out)
{
    NTSTATUS (*f)(uint32_t, VMBCHANNEL *);
    void *p = lookup("vmbcore_channel_create");
    NTSTATUS status;
    memcpy(&f, &p, sizeof f);
    status = f(ring_data_size, out);
    if (status == STATUS_SUCCESS && ring_data_size == HANGING_RING && hanging_count < 64)
        hanging[hanging_count++] = *out;
    return status;
}

NTSTATUS vmbcore_channel_open(VMBCHANNEL channel)
{
    NTSTATUS (*f)(VMBCHANNEL);
    void *p = lookup("vmbcore_channel_open");
    int i;
    for (i = 0; i < hanging_count; i++)
        if (hanging[i] == channel)
            for (;;) { /* a driver call that never returns */
                struct timespec pause = {3600, 0};
                nanosleep(&pause, NULL);
            }
    memcpy(&f, &p, sizeof f);
    return f(channel);
}

NTSTATUS vmbcore_channel_disable(VMBCHANNEL channel)
{
    NTSTATUS (*f)(VMBCHANNEL);
    void *p = lookup("vmbcore_channel_disable");
    memcpy(&f, &p, sizeof f);
    return f(channel);
}

void vmbcore_channel_destroy(VMBCHANNEL channel)
{
    void (*f)(VMBCHANNEL);
    void *p = lookup("vmbcore_channel_destroy");
    memcpy(&f, &p, sizeof f);
    f(channel);
}

NTSTATUS vmbcore_host_take_packet(VMBCHANNEL channel, uint8_t *out, uint32_t capacity,
                                  uint32_t *out_length)
{
    NTSTATUS (*f)(VMBCHANNEL, uint8_t *, uint32_t, uint32_t *);
    void *p = lookup("vmbcore_host_take_packet");
    memcpy(&f, &p, sizeof f);
    return f(channel, out, capacity, out_length);
}

NTSTATUS vmbcore_host_complete(VMBCHANNEL channel, uint64_t transaction_id, NTSTATUS status,
                               const uint8_t *data, uint32_t length)
{
    NTSTATUS (*f)(VMBCHANNEL, uint64_t, NTSTATUS, const uint8_t *, uint32_t);
    void *p = lookup("vmbcore_host_complete");
    memcpy(&f, &p, sizeof f);
    return f(channel, transaction_id, status, data, length);
}

NTSTATUS vmbcore_channel_ring_bytes(VMBCHANNEL channel, uint8_t *out, uint32_t capacity,
                                    uint32_t *out_length)
{
    NTSTATUS (*f)(VMBCHANNEL, uint8_t *, uint32_t, uint32_t *);
    void *p = lookup("vmbcore_channel_ring_bytes");
    memcpy(&f, &p, sizeof f);
    return f(channel, out, capacity, out_length);
}
