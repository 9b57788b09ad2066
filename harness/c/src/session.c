/*
 * session.c: the protocol of docs/remote-protocol.md, one session at a time.
 *
 * A line is read as JSON within the page's bounds (json.c), checked as a JSON-RPC 2.0
 * request, and dispatched: the session methods (initialize, reset, shutdown) here, the
 * target methods through a table of their parameters, then to driver_calls.h on the worker
 * under the call deadline (worker.h). Every way a request can be wrong is answered with the
 * page's error and the session goes on.
 *
 * Handles: the session remembers every channel and packet handle the driver issued since the
 * last initialize or reset. A handle it never issued, or a packet handle passed as a channel
 * (or the reverse), is error -32602 naming it: it is the client's mistake, and a real driver
 * must never see it. A packet that was issued and then freed stays a valid handle: sending or
 * freeing it again is a contract violation the suite tries on targets that declare
 * robust-contract-violations, and the driver's answer is the result (reading A10).
 */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver_calls.h"
#include "worker.h"

/* JSON-RPC 2.0 error codes (the specification's), then the protocol's. */
#define PARSE_ERROR -32700
#define INVALID_REQUEST -32600
#define METHOD_NOT_FOUND -32601
#define INVALID_PARAMS -32602
#define INTERNAL_ERROR -32603
#define TARGET_ERROR -32000
#define NOT_INITIALIZED -32001
#define UNSUPPORTED_VERSION -32002
#define MESSAGE_TOO_LARGE -32003
#define TARGET_FAULT -32004

#define U32_MAX 0xFFFFFFFFu
/* Handles one session may hold at once (a bound on memory, far above what the suite uses). */
#define MAX_HANDLES ((size_t)1 << 22)
/* Bytes kept of an error message. */
#define MAX_TEXT 300

/* A deliberate fall-through between switch labels: C99 has no [[fallthrough]], and clang
 * (unlike gcc) does not read a comment as one. */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 7)
#define FALLTHROUGH __attribute__((fallthrough))
#else
#define FALLTHROUGH ((void)0)
#endif

/* ---- handles: a map from u64 to a small state (open addressing; 0 is never a handle: NULL) */

typedef struct handle_map {
    uint64_t *keys;
    unsigned char *states;
    size_t cap, count;
} handle_map;

static size_t slot_of(uint64_t key, size_t cap)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (size_t)key & (cap - 1);
}

/* The slot of key, or of the empty slot where it would go (cap > count, so one exists). */
static size_t find_slot(const handle_map *map, uint64_t key)
{
    size_t i;
    for (i = slot_of(key, map->cap); map->keys[i] != 0 && map->keys[i] != key;
         i = (i + 1) & (map->cap - 1)) {
    }
    return i;
}

/* key's state, or 0 when it is not in the map (states are 1 and up). */
static int map_get(const handle_map *map, uint64_t key)
{
    size_t i;
    if (map->cap == 0 || key == 0)
        return 0;
    i = find_slot(map, key);
    return map->keys[i] == key ? map->states[i] : 0;
}

static int map_put(handle_map *map, uint64_t key, int state)
{
    size_t i;
    if (key == 0)
        return -1;
    if (map_get(map, key) == 0 && 2 * (map->count + 1) > map->cap) {
        handle_map grown;
        size_t k;
        if (map->count >= MAX_HANDLES)
            return -1;
        grown.cap = map->cap ? 2 * map->cap : 64;
        grown.keys = (uint64_t *)calloc(grown.cap, sizeof *grown.keys);
        grown.states = (unsigned char *)calloc(grown.cap, 1);
        if (grown.keys == NULL || grown.states == NULL) {
            free(grown.keys);
            free(grown.states);
            return -1;
        }
        for (k = 0; k < map->cap; k++)
            if (map->keys[k] != 0) {
                i = find_slot(&grown, map->keys[k]);
                grown.keys[i] = map->keys[k];
                grown.states[i] = map->states[k];
            }
        free(map->keys);
        free(map->states);
        map->keys = grown.keys;
        map->states = grown.states;
        map->cap = grown.cap;
    }
    i = find_slot(map, key);
    if (map->keys[i] == 0) {
        map->keys[i] = key;
        map->count++;
    }
    map->states[i] = (unsigned char)state;
    return 0;
}

static void map_clear(handle_map *map)
{
    free(map->keys);
    free(map->states);
    map->keys = NULL;
    map->states = NULL;
    map->cap = map->count = 0;
}

enum { NOT_OPEN = 1, OPEN, DISABLED }; /* a channel's state; a packet's is 1 */

/* Transactions the host took (host_take_packet) and has not completed, per channel: a
 * host_complete for any other changes nothing and never reaches the driver. */
typedef struct awaiting {
    uint64_t channel, transaction_id;
    size_t count;
} awaiting;

typedef struct awaiting_list {
    awaiting *items;
    size_t count, cap;
} awaiting_list;

static awaiting *awaiting_find(awaiting_list *list, uint64_t channel, uint64_t transaction_id)
{
    size_t i;
    for (i = 0; i < list->count; i++)
        if (list->items[i].channel == channel && list->items[i].transaction_id == transaction_id)
            return &list->items[i];
    return NULL;
}

static int awaiting_add(awaiting_list *list, uint64_t channel, uint64_t transaction_id)
{
    awaiting *found = awaiting_find(list, channel, transaction_id);
    if (found != NULL) { /* a broken driver may give two outstanding transactions one id */
        found->count++;
        return 0;
    }
    if (list->count >= MAX_HANDLES)
        return -1;
    if (list->count == list->cap) {
        size_t cap = list->cap ? 2 * list->cap : 32;
        awaiting *grown = (awaiting *)realloc(list->items, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        list->items = grown;
        list->cap = cap;
    }
    list->items[list->count].channel = channel;
    list->items[list->count].transaction_id = transaction_id;
    list->items[list->count].count = 1;
    list->count++;
    return 0;
}

static void awaiting_remove(awaiting_list *list, awaiting *item)
{
    if (--item->count == 0)
        *item = list->items[--list->count];
}

/* Every transaction of a disabled channel was cancelled. */
static void awaiting_drop_channel(awaiting_list *list, uint64_t channel)
{
    size_t i = 0;
    while (i < list->count)
        if (list->items[i].channel == channel)
            list->items[i] = list->items[--list->count];
        else
            i++;
}

static void awaiting_clear(awaiting_list *list)
{
    free(list->items);
    list->items = NULL;
    list->count = list->cap = 0;
}

/* ---- the session ------------------------------------------------------------------------- */

struct session {
    const harness_config *config;
    runner *runner;
    dc_session *dc;      /* the target; NULL before initialize, and after a hang */
    int initialized;
    int closing;
    const char *lost;    /* "hang" or "crash" when the target's state was lost, else NULL */
    handle_map channels; /* issued since the last initialize/reset, with their state */
    handle_map packets;  /* issued since the last initialize/reset, freed ones included */
    awaiting_list awaiting;
    int has_ring_bytes;  /* the target declares ring-bytes */
};

typedef struct rpc_error {
    int code;
    jbuf message;
    char data[64]; /* JSON, or "" for none */
} rpc_error;

static int fail(rpc_error *e, int code, const char *message)
{
    e->code = code;
    jbuf_clear(&e->message);
    jbuf_adds(&e->message, message);
    e->data[0] = '\0';
    return -1;
}

/* The start of a value, as JSON, at most 40 bytes (for messages). */
static void add_shown(jbuf *b, const json_value *v)
{
    jbuf shown;
    jbuf_init(&shown);
    jbuf_add_value(&shown, v);
    if (shown.failed)
        jbuf_adds(b, "(a value)");
    else if (shown.len > 40) {
        jbuf_add(b, shown.data, 40);
        jbuf_adds(b, "...");
    } else
        jbuf_add(b, shown.data, shown.len);
    jbuf_free(&shown);
}

session *session_new(const harness_config *config)
{
    session *s = (session *)calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->config = config;
    s->runner = runner_new(config->call_timeout_ms);
    if (s->runner == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

int session_closing(const session *s) { return s->closing; }

/* ---- driver calls as jobs ---------------------------------------------------------------- */

enum {
    M_CREATE_CHANNEL, M_OPEN_CHANNEL, M_DISABLE_CHANNEL, M_ALLOCATE_PACKET, M_FREE_PACKET,
    M_SEND, M_HOST_TAKE_PACKET, M_HOST_COMPLETE, M_COMPLETIONS, M_RING_BYTES,
    M_SESSION_OPEN, M_SESSION_RESET, M_SESSION_CLOSE
};

typedef struct call {
    job base;
    int method;
    dc_session *dc;
    /* arguments */
    uint64_t channel, packet, transaction_id;
    uint32_t ring_data_size, status, buffer_length, mdl_offset, mdl_length, flags;
    uint8_t *buffer; /* NULL: a NULL Buffer; else at least one byte allocated */
    size_t buffer_size;
    dc_mdl *mdl;
    size_t mdl_count;
    uint64_t *pfns;
    uint8_t *data;
    size_t data_len;
    /* results */
    int result;
    dc_message message;
    uint64_t handle;
    uint32_t ntstatus;
    uint8_t *bytes;
    size_t bytes_len;
    dc_completion *calls;
    size_t call_count;
    dc_session *opened;
} call;

static void call_run(job *self)
{
    call *c = (call *)self;
    dc_message *m = &c->message;
    switch (c->method) {
    case M_CREATE_CHANNEL:
        c->result = dc_create_channel(c->dc, c->ring_data_size, &c->handle, m);
        break;
    case M_OPEN_CHANNEL: c->result = dc_open_channel(c->dc, c->channel, m); break;
    case M_DISABLE_CHANNEL: c->result = dc_disable_channel(c->dc, c->channel, m); break;
    case M_ALLOCATE_PACKET:
        c->result = dc_allocate_packet(c->dc, c->channel, &c->handle, m);
        break;
    case M_FREE_PACKET: c->result = dc_free_packet(c->dc, c->packet, m); break;
    case M_SEND:
        c->result = dc_send_with_external_mdl(c->dc, c->packet, c->buffer, c->buffer_length,
                                              c->mdl, c->mdl_count, c->mdl_offset,
                                              c->mdl_length, c->flags, &c->ntstatus, m);
        break;
    case M_HOST_TAKE_PACKET:
        c->result = dc_host_take_packet(c->dc, c->channel, &c->bytes, &c->bytes_len, m);
        break;
    case M_HOST_COMPLETE:
        c->result = dc_host_complete(c->dc, c->channel, c->transaction_id, c->status, c->data,
                                     c->data_len, m);
        break;
    case M_COMPLETIONS:
        c->result = dc_completions(c->dc, &c->calls, &c->call_count, m);
        break;
    case M_RING_BYTES:
        c->result = dc_ring_bytes(c->dc, c->channel, &c->bytes, &c->bytes_len, m);
        break;
    case M_SESSION_OPEN: c->result = dc_session_open(&c->opened, m); break;
    case M_SESSION_RESET: c->result = dc_session_reset(c->dc, m); break;
    case M_SESSION_CLOSE:
        dc_session_close(c->dc);
        c->result = DC_OK;
        break;
    default: c->result = DC_FAILED; break;
    }
}

static void call_release(job *self, int abandoned)
{
    call *c = (call *)self;
    if (abandoned && c->method == M_SESSION_OPEN && c->result == DC_OK)
        dc_session_close(c->opened); /* nobody took it */
    free(c->buffer);
    free(c->mdl);
    free(c->pfns);
    free(c->data);
    free(c->bytes);
    dc_free_completions(c->calls, c->call_count);
    free(c);
}

static call *call_new(session *s, int method)
{
    call *c = (call *)calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->base.run = call_run;
    c->base.release = call_release;
    c->method = method;
    c->dc = s->dc;
    return c;
}

static const char *const METHOD_NAMES[] = {
    "create_channel", "open_channel", "disable_channel", "allocate_packet", "free_packet",
    "send_with_external_mdl", "host_take_packet", "host_complete", "completions",
    "ring_bytes", "initialize", "reset", "shutdown"
};

/* The target's state is gone: its handles mean nothing any more. */
static void forget_handles(session *s)
{
    map_clear(&s->channels);
    map_clear(&s->packets);
    awaiting_clear(&s->awaiting);
}

static void lose(session *s, const char *kind)
{
    s->lost = kind;
}

/* Runs c under the deadline. 0: it ran and succeeded (the caller reads and releases it).
 * -1: e says why; c is released (or belongs to a stuck worker). */
static int execute(session *s, call *c, rpc_error *e)
{
    char text[MAX_TEXT + 120];
    int outcome = runner_call(s->runner, &c->base);
    const char *name = METHOD_NAMES[c->method];
    if (outcome == RUN_HANG || outcome == RUN_REFUSED) {
        if (outcome == RUN_HANG)
            snprintf(text, sizeof text,
                     "the driver call for %s did not return within %ld ms: the target's state "
                     "is lost (send reset, or reconnect)", name, s->config->call_timeout_ms);
        else {
            snprintf(text, sizeof text,
                     "%s was not started: %d earlier driver calls are stuck (or no thread could "
                     "be started); restart the harness", name, WORKER_MAX_STUCK);
            c->base.release(&c->base, 0);
        }
        /* The stuck call may still use the driver session: leave it to that call. */
        s->dc = NULL;
        lose(s, "hang");
        fail(e, TARGET_FAULT, text);
        strcpy(e->data, "{\"kind\":\"hang\"}");
        return -1;
    }
    if (c->result == DC_OK)
        return 0;
    switch (c->result) {
    case DC_INVALID:
        fail(e, INVALID_PARAMS, c->message.text);
        break;
    case DC_CRASHED:
        snprintf(text, sizeof text, "the target crashed in %s: %s", name, c->message.text);
        fail(e, TARGET_FAULT, text);
        strcpy(e->data, "{\"kind\":\"crash\"}");
        lose(s, "crash");
        break;
    default:
        fail(e, TARGET_ERROR, c->message.text);
        break;
    }
    c->base.release(&c->base, 0);
    return -1;
}

/* A fresh target for initialize and reset: the old one reset (or a new one opened). */
static int new_target(session *s, rpc_error *e)
{
    call *c = call_new(s, s->dc != NULL ? M_SESSION_RESET : M_SESSION_OPEN);
    if (c == NULL)
        return fail(e, INTERNAL_ERROR, "out of memory");
    forget_handles(s);
    if (execute(s, c, e) != 0)
        return -1;
    if (c->method == M_SESSION_OPEN) {
        s->dc = c->opened;
        c->opened = NULL;
    }
    c->base.release(&c->base, 0);
    s->lost = NULL;
    return 0;
}

static void close_target(session *s)
{
    rpc_error ignored;
    call *c;
    if (s->dc == NULL)
        return;
    c = call_new(s, M_SESSION_CLOSE);
    s->dc = NULL;
    if (c == NULL)
        return;
    jbuf_init(&ignored.message);
    if (execute(s, c, &ignored) == 0)
        c->base.release(&c->base, 0);
    jbuf_free(&ignored.message);
}

void session_free(session *s)
{
    if (s == NULL)
        return;
    close_target(s);
    forget_handles(s);
    runner_free(s->runner);
    free(s);
}

/* ---- parameters -------------------------------------------------------------------------- */

enum kind { K_U32, K_U64, K_CHANNEL, K_PACKET, K_HEX, K_HEX_OR_NULL, K_MDL_OR_NULL };

typedef struct param {
    const char *name;
    int kind;
} param;

typedef struct method {
    const char *name;
    int id;
    param params[7];
    size_t count;
} method;

static const method METHODS[] = {
    {"create_channel", M_CREATE_CHANNEL, {{"ring_data_size", K_U32}}, 1},
    {"open_channel", M_OPEN_CHANNEL, {{"channel", K_CHANNEL}}, 1},
    {"disable_channel", M_DISABLE_CHANNEL, {{"channel", K_CHANNEL}}, 1},
    {"allocate_packet", M_ALLOCATE_PACKET, {{"channel", K_CHANNEL}}, 1},
    {"free_packet", M_FREE_PACKET, {{"packet", K_PACKET}}, 1},
    {"send_with_external_mdl", M_SEND,
     {{"packet", K_PACKET}, {"buffer", K_HEX_OR_NULL}, {"buffer_length", K_U32},
      {"mdl", K_MDL_OR_NULL}, {"mdl_offset", K_U32}, {"mdl_length", K_U32}, {"flags", K_U32}},
     7},
    {"host_take_packet", M_HOST_TAKE_PACKET, {{"channel", K_CHANNEL}}, 1},
    {"host_complete", M_HOST_COMPLETE,
     {{"channel", K_CHANNEL}, {"transaction_id", K_U64}, {"status", K_U32}, {"data", K_HEX}}, 4},
    {"completions", M_COMPLETIONS, {{NULL, 0}}, 0},
    {"ring_bytes", M_RING_BYTES, {{"channel", K_CHANNEL}}, 1},
};
#define METHOD_COUNT (sizeof METHODS / sizeof METHODS[0])

static int key_is(const json_value *member, const char *name)
{
    size_t n = strlen(name);
    return member->key_len == n && memcmp(member->key, name, n) == 0;
}

/* An integer in [0, limit]; -1 with e set otherwise. */
static int get_uint(const json_value *v, const char *name, uint64_t limit, uint64_t *out,
                    rpc_error *e)
{
    if (v->type == JSON_INT && v->fits_u64 && (!v->negative || v->u.magnitude == 0)
        && v->u.magnitude <= limit) {
        *out = v->u.magnitude;
        return 0;
    }
    {
        char text[64];
        snprintf(text, sizeof text, " must be an integer in [0, 0x%llx], not ",
                 (unsigned long long)limit);
        fail(e, INVALID_PARAMS, name);
        jbuf_adds(&e->message, text);
    }
    add_shown(&e->message, v);
    return -1;
}

static const char *type_name(const json_value *v)
{
    switch ((json_type)v->type) {
    case JSON_NULL: return "null";
    case JSON_FALSE:
    case JSON_TRUE: return "a boolean";
    case JSON_INT:
    case JSON_FLOAT: return "a number";
    case JSON_STRING: return "a string";
    case JSON_ARRAY: return "an array";
    case JSON_OBJECT: return "an object";
    }
    return "a value";
}

/* Hex (lower or upper case, no prefix, no spaces) to malloc'd bytes (at least one byte is
 * allocated, so an empty string is still a real pointer). */
static int get_hex(const json_value *v, const char *name, uint8_t **out, size_t *len,
                   rpc_error *e)
{
    size_t i, n;
    uint8_t *bytes;
    if (v->type != JSON_STRING) {
        fail(e, INVALID_PARAMS, name);
        jbuf_adds(&e->message, " must be a hex string, not ");
        jbuf_adds(&e->message, type_name(v));
        return -1;
    }
    n = v->u.str.len;
    if (n % 2 != 0)
        goto bad;
    for (i = 0; i < n; i++)
        if (json_hex_value(v->u.str.chars[i]) < 0)
            goto bad;
    bytes = (uint8_t *)malloc(n / 2 + 1);
    if (bytes == NULL)
        return fail(e, INTERNAL_ERROR, "out of memory");
    for (i = 0; i < n / 2; i++)
        bytes[i] = (uint8_t)(json_hex_value(v->u.str.chars[2 * i]) * 16
                             + json_hex_value(v->u.str.chars[2 * i + 1]));
    *out = bytes;
    *len = n / 2;
    return 0;
bad:
    fail(e, INVALID_PARAMS, name);
    jbuf_adds(&e->message, " is not valid hex: ");
    add_shown(&e->message, v);
    return -1;
}

/* wdm.h ADDRESS_AND_SIZE_TO_SPAN_PAGES, in 64 bits (it cannot wrap). */
static uint64_t span_pages(uint64_t byte_offset, uint64_t byte_count)
{
    return (byte_offset + byte_count + 4095u) / 4096u;
}

/* [[byte_offset, byte_count, [pfn, ...]], ...] into c->mdl (and c->pfns): only a chain a
 * Windows MDL can describe (a ByteOffset below 4096, exactly the PFNs the MDL spans). */
static int get_mdl(const json_value *v, call *c, rpc_error *e)
{
    const json_value *segment;
    size_t index = 0, pfn_total = 0, used = 0;
    char name[200];
    if (v->type != JSON_ARRAY || v->u.items.count == 0)
        return fail(e, INVALID_PARAMS, "mdl must be null or a non-empty array of "
                    "[byte_offset, byte_count, [pfn, ...]]");
    for (segment = v->u.items.first; segment != NULL; segment = segment->next)
        if (segment->type == JSON_ARRAY && segment->u.items.count == 3
            && segment->u.items.first->next->next->type == JSON_ARRAY)
            pfn_total += segment->u.items.first->next->next->u.items.count;
    c->mdl = (dc_mdl *)calloc(v->u.items.count, sizeof *c->mdl);
    c->pfns = (uint64_t *)malloc((pfn_total ? pfn_total : 1) * sizeof *c->pfns);
    if (c->mdl == NULL || c->pfns == NULL)
        return fail(e, INTERNAL_ERROR, "out of memory");
    c->mdl_count = v->u.items.count;
    for (segment = v->u.items.first; segment != NULL; segment = segment->next, index++) {
        const json_value *offset, *count, *pfns, *pfn;
        uint64_t byte_offset, byte_count, expected;
        if (segment->type != JSON_ARRAY || segment->u.items.count != 3
            || segment->u.items.first->next->next->type != JSON_ARRAY) {
            snprintf(name, sizeof name, "mdl[%lu] must be [byte_offset, byte_count, [pfn, ...]]",
                     (unsigned long)index);
            return fail(e, INVALID_PARAMS, name);
        }
        offset = segment->u.items.first;
        count = offset->next;
        pfns = count->next;
        snprintf(name, sizeof name, "mdl[%lu].byte_offset", (unsigned long)index);
        if (get_uint(offset, name, 4095u, &byte_offset, e) != 0)
            return -1;
        snprintf(name, sizeof name, "mdl[%lu].byte_count", (unsigned long)index);
        if (get_uint(count, name, U32_MAX, &byte_count, e) != 0)
            return -1;
        expected = span_pages(byte_offset, byte_count);
        if (pfns->u.items.count != expected) {
            snprintf(name, sizeof name, "mdl[%lu] has %lu PFNs; an MDL with byte_offset 0x%lx "
                     "and byte_count 0x%lx has exactly %lu", (unsigned long)index,
                     (unsigned long)pfns->u.items.count, (unsigned long)byte_offset,
                     (unsigned long)byte_count, (unsigned long)expected);
            return fail(e, INVALID_PARAMS, name);
        }
        c->mdl[index].byte_offset = (uint32_t)byte_offset;
        c->mdl[index].byte_count = (uint32_t)byte_count;
        c->mdl[index].pfns = c->pfns + used;
        c->mdl[index].pfn_count = pfns->u.items.count;
        snprintf(name, sizeof name, "mdl[%lu].pfn", (unsigned long)index);
        for (pfn = pfns->u.items.first; pfn != NULL; pfn = pfn->next)
            if (get_uint(pfn, name, UINT64_MAX, &c->pfns[used++], e) != 0)
                return -1;
    }
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    const json_value *x = *(const json_value *const *)a, *y = *(const json_value *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int order = memcmp(x->key, y->key, n);
    if (order != 0)
        return order;
    return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

static int is_allowed(const json_value *member, const param *allowed, size_t count)
{
    size_t i;
    for (i = 0; i < count; i++)
        if (key_is(member, allowed[i].name))
            return 1;
    return 0;
}

/* params as an object of names from `allowed` (absent or null: {}), holding every one of the
 * first `required` names; -1 with e set otherwise. values[i]: the value of allowed[i], or NULL. */
static int named_params(const char *method_name, const json_value *params, const param *allowed,
                        size_t count, size_t required, const json_value **values, rpc_error *e)
{
    const json_value *member;
    size_t i, unknown = 0, missing = 0;
    if (params != NULL && params->type != JSON_NULL && params->type != JSON_OBJECT) {
        fail(e, INVALID_PARAMS, method_name);
        jbuf_adds(&e->message, " takes named params (an object), not ");
        jbuf_adds(&e->message, params->type == JSON_ARRAY ? "list" : type_name(params));
        return -1;
    }
    if (params != NULL && params->type == JSON_OBJECT) {
        for (member = params->u.items.first; member != NULL; member = member->next)
            if (!is_allowed(member, allowed, count))
                unknown++;
        if (unknown > 0) {
            const json_value **names = (const json_value **)malloc(unknown * sizeof *names);
            size_t k = 0;
            if (names == NULL)
                return fail(e, INTERNAL_ERROR, "out of memory");
            for (member = params->u.items.first; member != NULL; member = member->next)
                if (!is_allowed(member, allowed, count))
                    names[k++] = member;
            qsort(names, unknown, sizeof *names, compare_names);
            fail(e, INVALID_PARAMS, method_name);
            jbuf_adds(&e->message, " has no parameter(s) ");
            for (k = 0; k < unknown && e->message.len < MAX_TEXT; k++) {
                if (k > 0 && compare_names(&names[k - 1], &names[k]) == 0)
                    continue;
                if (k > 0)
                    jbuf_adds(&e->message, ", ");
                jbuf_add(&e->message, names[k]->key, names[k]->key_len);
            }
            free(names);
            return -1;
        }
    }
    for (i = 0; i < count; i++) {
        values[i] = json_get(params, allowed[i].name);
        if (values[i] == NULL && i < required) {
            if (missing++ == 0) {
                fail(e, INVALID_PARAMS, method_name);
                jbuf_adds(&e->message, " is missing parameter(s) ");
            } else
                jbuf_adds(&e->message, ", ");
            jbuf_adds(&e->message, allowed[i].name);
        }
    }
    return missing > 0 ? -1 : 0;
}

/* The parameters of a target method into c, as the page says: named, every one required,
 * none unknown, each of its kind; a ring size that is a positive multiple of 4096, a buffer no
 * shorter than buffer_length. (The handles are checked later: check_handles.) */
static int get_params(const method *m, const json_value *params, call *c, rpc_error *e)
{
    const json_value *values[7];
    size_t i;
    if (named_params(m->name, params, m->params, m->count, m->count, values, e) != 0)
        return -1;
    for (i = 0; i < m->count; i++) {
        const char *name = m->params[i].name;
        const json_value *v = values[i];
        uint64_t value = 0;
        switch (m->params[i].kind) {
        case K_U32:
            if (get_uint(v, name, U32_MAX, &value, e) != 0)
                return -1;
            if (strcmp(name, "ring_data_size") == 0)
                c->ring_data_size = (uint32_t)value;
            else if (strcmp(name, "buffer_length") == 0)
                c->buffer_length = (uint32_t)value;
            else if (strcmp(name, "mdl_offset") == 0)
                c->mdl_offset = (uint32_t)value;
            else if (strcmp(name, "mdl_length") == 0)
                c->mdl_length = (uint32_t)value;
            else if (strcmp(name, "flags") == 0)
                c->flags = (uint32_t)value;
            else
                c->status = (uint32_t)value;
            break;
        case K_U64:
            if (get_uint(v, name, UINT64_MAX, &c->transaction_id, e) != 0)
                return -1;
            break;
        case K_CHANNEL:
        case K_PACKET:
            if (get_uint(v, name, UINT64_MAX, &value, e) != 0)
                return -1;
            if (m->params[i].kind == K_CHANNEL)
                c->channel = value;
            else
                c->packet = value;
            break;
        case K_HEX:
            if (get_hex(v, name, &c->data, &c->data_len, e) != 0)
                return -1;
            break;
        case K_HEX_OR_NULL:
            if (v->type != JSON_NULL && get_hex(v, name, &c->buffer, &c->buffer_size, e) != 0)
                return -1;
            break;
        case K_MDL_OR_NULL:
            if (v->type != JSON_NULL && get_mdl(v, c, e) != 0)
                return -1;
            break;
        }
    }
    if (m->id == M_CREATE_CHANNEL && (c->ring_data_size == 0 || c->ring_data_size % 4096u)) {
        char text[120];
        snprintf(text, sizeof text, "ring_data_size 0x%lx is not a positive multiple of 4096",
                 (unsigned long)c->ring_data_size);
        return fail(e, INVALID_PARAMS, text);
    }
    if (m->id == M_SEND && c->buffer != NULL && c->buffer_length > c->buffer_size) {
        char text[120];
        snprintf(text, sizeof text, "buffer holds %lu bytes, fewer than buffer_length %lu",
                 (unsigned long)c->buffer_size, (unsigned long)c->buffer_length);
        return fail(e, INVALID_PARAMS, text);
    }
    return 0;
}

/* The handles of a call are ones this target issued, and the call is one a caller may make (a
 * disabled channel is never opened again). */
static int check_handles(session *s, const method *m, const call *c, rpc_error *e)
{
    size_t i;
    char text[200];
    for (i = 0; i < m->count; i++)
        if (m->params[i].kind == K_PACKET && map_get(&s->packets, c->packet) == 0) {
            snprintf(text, sizeof text, "packet %llu%s is no packet this target issued "
                     "(allocate_packet)", (unsigned long long)c->packet,
                     map_get(&s->channels, c->packet) ? " (a channel handle)" : "");
            return fail(e, INVALID_PARAMS, text);
        }
    for (i = 0; i < m->count; i++)
        if (m->params[i].kind == K_CHANNEL) {
            int state = map_get(&s->channels, c->channel);
            if (state == 0) {
                snprintf(text, sizeof text, "channel %llu%s is no channel this target issued "
                         "(create_channel)", (unsigned long long)c->channel,
                         map_get(&s->packets, c->channel) ? " (a packet handle)" : "");
                return fail(e, INVALID_PARAMS, text);
            }
            if (m->id == M_OPEN_CHANNEL && state == DISABLED) {
                snprintf(text, sizeof text, "channel %llu is disabled; a disabled channel is "
                         "never opened again", (unsigned long long)c->channel);
                return fail(e, INVALID_PARAMS, text);
            }
        }
    return 0;
}

/* ---- results ----------------------------------------------------------------------------- */

static int check_reply_room(session *s, size_t hex_bytes, rpc_error *e)
{
    char text[160];
    if (hex_bytes <= (s->config->max_message_bytes - 64) / 2)
        return 0;
    snprintf(text, sizeof text, "the reply would be over %lu bytes, over the %lu-byte limit",
             (unsigned long)(2 * hex_bytes), (unsigned long)s->config->max_message_bytes);
    fail(e, MESSAGE_TOO_LARGE, text);
    snprintf(e->data, sizeof e->data, "{\"max_message_bytes\":%lu}",
             (unsigned long)s->config->max_message_bytes);
    return -1;
}

static int too_many(rpc_error *e)
{
    return fail(e, TARGET_ERROR, "the session holds too many handles");
}

/* What a successful call c changed (handles, channel states, awaited transactions), and its
 * result as JSON. */
static int write_result(session *s, call *c, jbuf *result, rpc_error *e)
{
    size_t i;
    switch (c->method) {
    case M_CREATE_CHANNEL:
        if (map_put(&s->channels, c->handle, NOT_OPEN) != 0)
            return too_many(e);
        jbuf_add_u64(result, c->handle);
        break;
    case M_OPEN_CHANNEL:
        map_put(&s->channels, c->channel, OPEN);
        jbuf_adds(result, "null");
        break;
    case M_DISABLE_CHANNEL:
        map_put(&s->channels, c->channel, DISABLED);
        awaiting_drop_channel(&s->awaiting, c->channel); /* every transaction was cancelled */
        jbuf_adds(result, "null");
        break;
    case M_ALLOCATE_PACKET:
        if (c->handle == 0) {
            jbuf_adds(result, "null");
            break;
        }
        if (map_put(&s->packets, c->handle, 1) != 0)
            return too_many(e);
        jbuf_add_u64(result, c->handle);
        break;
    case M_SEND: jbuf_add_u64(result, c->ntstatus); break;
    case M_HOST_TAKE_PACKET:
        if (c->bytes != NULL && c->bytes_len >= 16) {
            /* A VMBus packet header: type, offset8, length8, flags (u16 each), then the
             * transaction id (u64, little-endian). */
            uint64_t id = 0;
            for (i = 16; i-- > 8;)
                id = (id << 8) | c->bytes[i];
            if (awaiting_add(&s->awaiting, c->channel, id) != 0)
                return too_many(e);
        }
        FALLTHROUGH;
    case M_RING_BYTES:
        if (c->bytes == NULL) {
            jbuf_adds(result, "null");
            break;
        }
        if (check_reply_room(s, c->bytes_len, e) != 0)
            return -1;
        jbuf_add_hex(result, c->bytes, c->bytes_len);
        break;
    case M_HOST_COMPLETE: {
        awaiting *item = awaiting_find(&s->awaiting, c->channel, c->transaction_id);
        if (item != NULL)
            awaiting_remove(&s->awaiting, item);
        jbuf_adds(result, "null");
        break;
    }
    case M_COMPLETIONS:
        jbuf_addc(result, '[');
        for (i = 0; i < c->call_count && !result->failed; i++) {
            if (i > 0)
                jbuf_addc(result, ',');
            jbuf_adds(result, "{\"packet\":");
            jbuf_add_u64(result, c->calls[i].packet);
            jbuf_adds(result, ",\"status\":");
            jbuf_add_u64(result, c->calls[i].status);
            jbuf_adds(result, ",\"data\":");
            jbuf_add_hex(result, c->calls[i].data, c->calls[i].len);
            jbuf_addc(result, '}');
            if (result->len > s->config->max_message_bytes)
                return check_reply_room(s, result->len, e);
        }
        jbuf_addc(result, ']');
        break;
    default: jbuf_adds(result, "null"); break;
    }
    return 0;
}

/* A target method, in the page's order: the params (-32602), a lost target (-32004), the
 * handles (-32602), then the driver. */
static int call_target(session *s, const method *m, const json_value *params, jbuf *result,
                       rpc_error *e)
{
    call *c = call_new(s, m->id);
    int status;
    if (c == NULL)
        return fail(e, INTERNAL_ERROR, "out of memory");
    if (get_params(m, params, c, e) != 0) {
        c->base.release(&c->base, 0);
        return -1;
    }
    if (s->lost != NULL) {
        char text[160];
        snprintf(text, sizeof text, "the target was lost after a %s in an earlier call; send "
                 "reset (or initialize) for a fresh one", s->lost);
        c->base.release(&c->base, 0);
        fail(e, TARGET_FAULT, text);
        snprintf(e->data, sizeof e->data, "{\"kind\":\"%s\"}", s->lost);
        return -1;
    }
    if (check_handles(s, m, c, e) != 0) {
        c->base.release(&c->base, 0);
        return -1;
    }
    if (m->id == M_HOST_COMPLETE
        && awaiting_find(&s->awaiting, c->channel, c->transaction_id) == NULL) {
        /* No transaction awaits it: nothing happens, as on a real host. */
        c->base.release(&c->base, 0);
        jbuf_adds(result, "null");
        return 0;
    }
    if (execute(s, c, e) != 0)
        return -1;
    status = write_result(s, c, result, e);
    c->base.release(&c->base, 0);
    return status;
}

/* ---- session methods --------------------------------------------------------------------- */

static int has_capability(const char *name)
{
    const char *const *capability;
    for (capability = dc_capabilities(); *capability != NULL; capability++)
        if (strcmp(*capability, name) == 0)
            return 1;
    return 0;
}

/* The target's capabilities, except reads-buffer-late: never over the wire, since the buffer
 * the driver gets is the harness's copy, made at the call (docs/remote-protocol.md). */
static void add_capabilities(jbuf *b)
{
    const char *const *capability;
    int any = 0;
    jbuf_addc(b, '[');
    for (capability = dc_capabilities(); *capability != NULL; capability++) {
        if (strcmp(*capability, "reads-buffer-late") == 0)
            continue;
        if (any++)
            jbuf_addc(b, ',');
        jbuf_add_string(b, *capability, strlen(*capability));
    }
    jbuf_addc(b, ']');
}

static void add_target_info(jbuf *b)
{
    jbuf_adds(b, "\"target\":");
    jbuf_add_string(b, dc_target_name(), strlen(dc_target_name()));
    jbuf_adds(b, ",\"capabilities\":");
    add_capabilities(b);
}

static const param INITIALIZE_PARAMS[] = {{"protocol", K_U32}, {"client", K_HEX}};

static int initialize(session *s, const json_value *params, jbuf *result, rpc_error *e)
{
    const json_value *values[2], *version;
    size_t i;
    if (named_params("initialize", params, INITIALIZE_PARAMS, 2, 1, values, e) != 0)
        return -1;
    version = values[0];
    if (version->type != JSON_INT) {
        fail(e, INVALID_PARAMS, "protocol must be a JSON integer, not ");
        add_shown(&e->message, version);
        return -1;
    }
    if (values[1] != NULL && values[1]->type != JSON_STRING)
        return fail(e, INVALID_PARAMS, "client must be a string");
    if (!version->fits_u64 || version->negative || version->u.magnitude != PROTOCOL_VERSION) {
        fail(e, UNSUPPORTED_VERSION, "protocol version ");
        add_shown(&e->message, version);
        jbuf_adds(&e->message, " is not supported");
        strcpy(e->data, "{\"supported\":[1]}");
        return -1;
    }
    if (new_target(s, e) != 0)
        return -1;
    s->initialized = 1;
    jbuf_adds(result, "{\"protocol\":1,\"agent\":\"" HARNESS_AGENT_NAME "\",");
    add_target_info(result);
    jbuf_adds(result, ",\"max_message_bytes\":");
    jbuf_add_u64(result, s->config->max_message_bytes);
    jbuf_adds(result, ",\"methods\":[\"initialize\",\"reset\",\"shutdown\"");
    for (i = 0; i < METHOD_COUNT; i++) {
        if (METHODS[i].id == M_RING_BYTES && !has_capability("ring-bytes"))
            continue;
        jbuf_adds(result, ",\"");
        jbuf_adds(result, METHODS[i].name);
        jbuf_addc(result, '"');
    }
    jbuf_adds(result, "]}");
    return 0;
}

static int dispatch(session *s, const json_value *name, const json_value *params, jbuf *result,
                    rpc_error *e)
{
    size_t i;
    if (json_is_string(name, "initialize"))
        return initialize(s, params, result, e);
    if (json_is_string(name, "shutdown")) {
        if (named_params("shutdown", params, NULL, 0, 0, NULL, e) != 0)
            return -1;
        s->closing = 1;
        close_target(s);
        jbuf_adds(result, "null");
        return 0;
    }
    if (json_is_string(name, "reset")) {
        /* the page's order: initialize first (-32001), then the params (-32602) */
        if (!s->initialized)
            return fail(e, NOT_INITIALIZED, "call initialize first");
        if (named_params("reset", params, NULL, 0, 0, NULL, e) != 0)
            return -1;
        if (new_target(s, e) != 0)
            return -1;
        jbuf_addc(result, '{');
        add_target_info(result);
        jbuf_addc(result, '}');
        return 0;
    }
    for (i = 0; i < METHOD_COUNT; i++)
        if (json_is_string(name, METHODS[i].name))
            break;
    if (i == METHOD_COUNT) {
        fail(e, METHOD_NOT_FOUND, "no method ");
        add_shown(&e->message, name);
        return -1;
    }
    if (!s->initialized)
        return fail(e, NOT_INITIALIZED, "call initialize first");
    if (METHODS[i].id == M_RING_BYTES && !has_capability("ring-bytes"))
        return fail(e, METHOD_NOT_FOUND,
                    "no method \"ring_bytes\": the target does not declare ring-bytes");
    return call_target(s, &METHODS[i], params, result, e);
}

/* ---- envelopes --------------------------------------------------------------------------- */

/* The id to answer with: the request's own if usable (an integer, or a string of at most
 * MAX_ID_CHARS characters), else NULL (written as null). */
static const json_value *usable_id(const json_value *message)
{
    const json_value *id = json_get(message, "id");
    if (id == NULL)
        return NULL;
    if (id->type == JSON_INT)
        return id;
    if (id->type == JSON_STRING && json_string_chars(id) <= MAX_ID_CHARS)
        return id;
    return NULL;
}

static void write_error(jbuf *out, const json_value *id, const rpc_error *e)
{
    size_t shown = e->message.len;
    jbuf_adds(out, "{\"jsonrpc\":\"2.0\",\"id\":");
    if (id != NULL)
        jbuf_add_value(out, id);
    else
        jbuf_adds(out, "null");
    jbuf_adds(out, ",\"error\":{\"code\":");
    jbuf_add_i64(out, e->code);
    jbuf_adds(out, ",\"message\":");
    if (shown > 4 * MAX_TEXT) /* a message quoting a client's long text */
        shown = 4 * MAX_TEXT;
    jbuf_add_string(out, e->message.failed ? "out of memory" : e->message.data,
                     e->message.failed ? 13 : shown);
    if (e->data[0] != '\0') {
        jbuf_adds(out, ",\"data\":");
        jbuf_adds(out, e->data);
    }
    jbuf_adds(out, "}}");
}

static void write_success(jbuf *out, const json_value *id, const jbuf *result)
{
    jbuf_adds(out, "{\"jsonrpc\":\"2.0\",\"id\":");
    if (id != NULL)
        jbuf_add_value(out, id);
    else
        jbuf_adds(out, "null");
    jbuf_adds(out, ",\"result\":");
    jbuf_add(out, result->data, result->len);
    jbuf_addc(out, '}');
}

/* The reply to one request, appended to out; 0 if it wrote one, 1 for a notification. */
static int handle_one(session *s, const json_value *message, jbuf *out)
{
    const json_value *id = message->type == JSON_OBJECT ? usable_id(message) : NULL;
    const json_value *raw_id = json_get(message, "id"), *name = json_get(message, "method");
    const json_value *member;
    rpc_error e;
    jbuf result;
    int valid = message->type == JSON_OBJECT && json_is_string(json_get(message, "jsonrpc"), "2.0")
        && name != NULL && name->type == JSON_STRING;
    if (valid)
        for (member = message->u.items.first; member != NULL; member = member->next)
            if (!key_is(member, "jsonrpc") && !key_is(member, "id") && !key_is(member, "method")
                && !key_is(member, "params"))
                valid = 0;
    if (valid && raw_id != NULL && raw_id->type != JSON_NULL && id == NULL)
        valid = 0;
    jbuf_init(&e.message);
    if (!valid) {
        fail(&e, INVALID_REQUEST, "not a JSON-RPC 2.0 request object");
        write_error(out, id, &e);
        jbuf_free(&e.message);
        return 0;
    }
    if (raw_id == NULL) { /* a notification: never answered (this protocol defines none) */
        jbuf_free(&e.message);
        return 1;
    }
    jbuf_init(&result);
    if (dispatch(s, name, json_get(message, "params"), &result, &e) != 0)
        write_error(out, id, &e);
    else if (result.failed) {
        fail(&e, INTERNAL_ERROR, "out of memory while writing the result");
        write_error(out, id, &e);
    } else
        write_success(out, id, &result);
    jbuf_free(&result);
    jbuf_free(&e.message);
    return 0;
}

void session_reply_unaddressed(jbuf *out, int code, const char *message, const char *data_json)
{
    rpc_error e;
    jbuf_init(&e.message);
    fail(&e, code, message);
    snprintf(e.data, sizeof e.data, "%s", data_json != NULL ? data_json : "");
    write_error(out, NULL, &e);
    jbuf_addc(out, '\n');
    jbuf_free(&e.message);
}

void session_reply_too_large(session *s, jbuf *out)
{
    char text[120], data[64];
    snprintf(text, sizeof text, "a message longer than the %lu-byte limit",
             (unsigned long)s->config->max_message_bytes);
    snprintf(data, sizeof data, "{\"max_message_bytes\":%lu}",
             (unsigned long)s->config->max_message_bytes);
    session_reply_unaddressed(out, MESSAGE_TOO_LARGE, text, data);
}

/* A reply over the limit becomes error -32003 for the same id. */
static void bound_reply(session *s, jbuf *out, size_t start, const json_value *id)
{
    rpc_error e;
    char text[160];
    size_t size = out->len - start;
    if (size <= s->config->max_message_bytes)
        return;
    out->len = start;
    jbuf_init(&e.message);
    snprintf(text, sizeof text, "the reply would be %lu bytes, over the %lu-byte limit",
             (unsigned long)size, (unsigned long)s->config->max_message_bytes);
    fail(&e, MESSAGE_TOO_LARGE, text);
    snprintf(e.data, sizeof e.data, "{\"max_message_bytes\":%lu}",
             (unsigned long)s->config->max_message_bytes);
    write_error(out, id, &e);
    jbuf_free(&e.message);
}

void session_handle_line(session *s, const char *line, size_t len, jbuf *out)
{
    char err[200];
    json_doc *doc = NULL;
    const json_value *root;
    size_t start = out->len;
    int status = json_parse(line, len, &doc, err, sizeof err);
    if (status != JSON_OK) {
        session_reply_unaddressed(out, status == JSON_NOMEM ? INTERNAL_ERROR : PARSE_ERROR, err,
                                  NULL);
        return;
    }
    root = json_root(doc);
    if (root->type == JSON_ARRAY) {
        const json_value *item;
        int any = 0;
        if (root->u.items.count == 0 || root->u.items.count > MAX_BATCH) {
            char text[80];
            if (root->u.items.count == 0)
                snprintf(text, sizeof text, "an empty batch");
            else
                snprintf(text, sizeof text, "a batch of %lu requests (at most %d)",
                         (unsigned long)root->u.items.count, MAX_BATCH);
            session_reply_unaddressed(out, INVALID_REQUEST, text, NULL);
            json_free(doc);
            return;
        }
        jbuf_addc(out, '[');
        for (item = root->u.items.first; item != NULL; item = item->next) {
            size_t before = out->len;
            if (any)
                jbuf_addc(out, ',');
            if (handle_one(s, item, out) == 0)
                any = 1;
            else
                out->len = before;
        }
        if (!any)
            out->len = start;
        else {
            jbuf_addc(out, ']');
            bound_reply(s, out, start, NULL);
            jbuf_addc(out, '\n');
        }
    } else if (handle_one(s, root, out) == 0) {
        bound_reply(s, out, start, root->type == JSON_OBJECT ? usable_id(root) : NULL);
        jbuf_addc(out, '\n');
    }
    json_free(doc);
}
