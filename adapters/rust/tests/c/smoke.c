/* smoke.c: exercises include/vmbcore.h against the built libvmbcore from C.
 * Built and run by tests/adapters/test_rust_abi.py; prints "smoke: ok" and exits 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmbcore.h"

static int failures;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                    \
        }                                                                  \
    } while (0)

static VMBPACKET last_packet;
static NTSTATUS last_status;
static uint8_t last_data[64];
static uint32_t last_length;
static int calls;

static void on_complete(VMBPACKET packet, NTSTATUS status, void *buffer, uint32_t length)
{
    last_packet = packet;
    last_status = status;
    last_length = length;
    if (length <= sizeof(last_data) && buffer != NULL) {
        memcpy(last_data, buffer, length);
    }
    calls++;
}

static uint16_t u16_at(const uint8_t *b, size_t at) { return (uint16_t)(b[at] | b[at + 1] << 8); }
static uint32_t u32_at(const uint8_t *b, size_t at)
{
    return (uint32_t)b[at] | (uint32_t)b[at + 1] << 8 | (uint32_t)b[at + 2] << 16 |
           (uint32_t)b[at + 3] << 24;
}
static uint64_t u64_at(const uint8_t *b, size_t at)
{
    return (uint64_t)u32_at(b, at) | (uint64_t)u32_at(b, at + 4) << 32;
}

/* One MDL with its PFN array, as Windows lays it out. */
struct mdl3 {
    MDL mdl;
    uint64_t pfn[3];
};

int main(void)
{
    VMBCHANNEL channel = NULL;
    CHECK(vmbcore_channel_create(4095, &channel) == STATUS_INVALID_PARAMETER);
    CHECK(channel == NULL); /* out-param untouched on failure */
    CHECK(vmbcore_channel_create(16384, NULL) == STATUS_INVALID_PARAMETER);
    CHECK(vmbcore_channel_create(16384, &channel) == STATUS_SUCCESS);
    CHECK(channel != NULL);

    VMBPACKET packet = VmbPacketAllocate(channel);
    CHECK(packet != NULL);
    CHECK(VmbPacketAllocate(NULL) == NULL);
    VmbPacketSetCompletionRoutine(packet, on_complete);

    /* The worked example: ByteOffset 0x100, ByteCount 0x2000 -> 3 PFNs; 0x40-byte buffer. */
    struct mdl3 m;
    memset(&m, 0, sizeof(m));
    m.mdl.ByteOffset = 0x100;
    m.mdl.ByteCount = 0x2000;
    m.mdl.Size = (int16_t)sizeof(m);
    m.pfn[0] = 0x1000;
    m.pfn[1] = 0x2000;
    m.pfn[2] = 0x3000;
    CHECK(MmGetMdlPfnArray(&m.mdl) == m.pfn);
    uint8_t buffer[0x40];
    for (int i = 0; i < 0x40; i++) {
        buffer[i] = (uint8_t)i;
    }
    const uint32_t wait = VMBUS_CHANNEL_FORMAT_FLAG_WAIT_FOR_COMPLETION;

    /* Rejections. */
    CHECK(VmbPacketSendWithExternalMdl(packet, buffer, 0x40, &m.mdl, 0, 0, 0) ==
          STATUS_INVALID_PARAMETER);
    CHECK(VmbPacketSendWithExternalMdl(packet, NULL, 1, &m.mdl, 0, 0, wait) ==
          STATUS_INVALID_PARAMETER);
    CHECK(VmbPacketSendWithExternalMdl(packet, buffer, 0x40, NULL, 1, 0, wait) ==
          STATUS_INVALID_PARAMETER);
    CHECK(VmbPacketSendWithExternalMdl(packet, buffer, 0x40, &m.mdl, 0xFFFFF000u, 0x2000,
                                       wait) == STATUS_INVALID_PARAMETER);
    CHECK(VmbPacketSendWithExternalMdl(NULL, buffer, 0x40, &m.mdl, 0, 0, wait) ==
          STATUS_INVALID_PARAMETER);

    /* Accepted before open: queued. */
    CHECK(VmbPacketSendWithExternalMdl(packet, buffer, 0x40, &m.mdl, 0, 0, wait) ==
          STATUS_SUCCESS);
    memset(buffer, 0xEE, sizeof(buffer)); /* copied at the call: must not show */
    CHECK(VmbPacketSendWithExternalMdl(packet, buffer, 0x40, &m.mdl, 0, 0, wait) ==
          STATUS_INVALID_DEVICE_STATE);

    uint8_t out[256];
    uint32_t length = 12345;
    CHECK(vmbcore_host_take_packet(channel, out, sizeof(out), &length) == STATUS_SUCCESS);
    CHECK(length == 0);
    CHECK(vmbcore_channel_open(channel) == STATUS_SUCCESS);
    CHECK(vmbcore_host_take_packet(channel, NULL, 0, &length) == STATUS_BUFFER_TOO_SMALL);
    CHECK(length == 120);
    CHECK(vmbcore_host_take_packet(channel, out, sizeof(out), &length) == STATUS_SUCCESS);
    CHECK(length == 120);
    CHECK(u16_at(out, 0) == 9);
    CHECK(u16_at(out, 2) == 7);
    CHECK(u16_at(out, 4) == 15);
    CHECK(u16_at(out, 6) == 1);
    uint64_t txid = u64_at(out, 8);
    CHECK(u32_at(out, 0x14) == 1);
    CHECK(u32_at(out, 0x18) == 0x2000);
    CHECK(u32_at(out, 0x1C) == 0x100);
    CHECK(u64_at(out, 0x20) == 0x1000 && u64_at(out, 0x28) == 0x2000 &&
          u64_at(out, 0x30) == 0x3000);
    CHECK(out[56] == 0 && out[56 + 0x3F] == 0x3F);

    /* The ring: write index past the packet and its trailer. */
    uint32_t ring_length = 0;
    CHECK(vmbcore_channel_ring_bytes(channel, NULL, 0, &ring_length) == STATUS_BUFFER_TOO_SMALL);
    CHECK(ring_length == 4096 + 16384);
    uint8_t *ring = malloc(ring_length);
    CHECK(vmbcore_channel_ring_bytes(channel, ring, ring_length, &ring_length) == STATUS_SUCCESS);
    CHECK(u32_at(ring, 0) == 128 && u32_at(ring, 4) == 128);
    CHECK(u64_at(ring, 4096 + 120) == 0);
    free(ring);

    /* Completion runs the routine synchronously. */
    CHECK(vmbcore_host_complete(channel, txid + 100, 0, NULL, 0) == STATUS_INVALID_PARAMETER);
    const uint8_t reply[3] = {'o', 'k', '!'};
    CHECK(vmbcore_host_complete(channel, txid, 0x12345678u, reply, 3) == STATUS_SUCCESS);
    CHECK(calls == 1 && last_packet == packet && last_status == 0x12345678u);
    CHECK(last_length == 3 && memcmp(last_data, "ok!", 3) == 0);

    /* Reuse, then disable with the packet outstanding. */
    CHECK(VmbPacketSendWithExternalMdl(packet, NULL, 0, NULL, 0, 0, wait) == STATUS_SUCCESS);
    CHECK(vmbcore_channel_disable(channel) == STATUS_SUCCESS);
    CHECK(calls == 2 && last_status == STATUS_CANCELLED && last_length == 0);
    CHECK(vmbcore_host_take_packet(channel, out, sizeof(out), &length) == STATUS_SUCCESS);
    CHECK(length == 0);
    CHECK(VmbPacketSendWithExternalMdl(packet, NULL, 0, NULL, 0, 0, wait) ==
          STATUS_DEVICE_REMOVED);

    /* A freed handle is recognised. */
    VmbPacketFree(packet);
    CHECK(VmbPacketSendWithExternalMdl(packet, NULL, 0, NULL, 0, 0, wait) ==
          STATUS_INVALID_DEVICE_STATE);
    VmbPacketFree(packet); /* double free: ignored */

    vmbcore_channel_destroy(channel);
    CHECK(vmbcore_channel_open(channel) == STATUS_INVALID_HANDLE);
    vmbcore_channel_destroy(NULL);

    if (failures != 0) {
        fprintf(stderr, "smoke: %d failure(s)\n", failures);
        return 1;
    }
    printf("smoke: ok\n");
    return 0;
}
