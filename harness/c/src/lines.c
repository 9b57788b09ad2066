/*
 * lines.c: the framing of lines.h.
 */
#include "lines.h"

#include <stdlib.h>
#include <string.h>

#include "sys.h"

#define CHUNK ((size_t)64 * 1024)

int line_reader_init(line_reader *r, size_t max, line_source source, void *context)
{
    memset(r, 0, sizeof *r);
    r->max = max;
    r->source = source;
    r->context = context;
    r->cap = CHUNK;
    r->buffer = (char *)malloc(r->cap);
    return r->buffer == NULL ? -1 : 0;
}

void line_reader_free(line_reader *r)
{
    free(r->buffer);
    r->buffer = NULL;
}

static void drop_front(line_reader *r, size_t n)
{
    memmove(r->buffer, r->buffer + n, r->len - n);
    r->len -= n;
    r->scanned = 0;
}

static int is_blank(const char *line, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++)
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r' && line[i] != '\v'
            && line[i] != '\f')
            return 0;
    return 1;
}

/* More bytes into the buffer (growing it up to max + 1 + CHUNK). */
static int fill(line_reader *r, uint64_t deadline, int has_deadline)
{
    long got, wait = -1;
    if (r->cap - r->len < CHUNK / 2 && r->cap < r->max + 1 + CHUNK) {
        size_t cap = r->cap * 2 > r->max + 1 + CHUNK ? r->max + 1 + CHUNK : r->cap * 2;
        char *grown = (char *)realloc(r->buffer, cap);
        if (grown == NULL)
            return LINE_ERROR;
        r->buffer = grown;
        r->cap = cap;
    }
    if (has_deadline) {
        uint64_t now = sys_now_ms();
        if (now >= deadline)
            return LINE_TIMEOUT;
        wait = (long)(deadline - now);
    }
    got = r->source(r->context, r->buffer + r->len, r->cap - r->len, wait);
    if (got == -2)
        return LINE_TIMEOUT;
    if (got < 0)
        return LINE_ERROR;
    if (got == 0)
        return LINE_END;
    r->len += (size_t)got;
    return LINE_OK;
}

int line_next(line_reader *r, long timeout_ms, const char **line, size_t *len)
{
    uint64_t deadline = timeout_ms < 0 ? 0 : sys_now_ms() + (uint64_t)timeout_ms;
    int has_deadline = timeout_ms >= 0;
    if (r->consumed > 0) {
        drop_front(r, r->consumed);
        r->consumed = 0;
    }
    for (;;) {
        char *feed = (char *)memchr(r->buffer + r->scanned, '\n', r->len - r->scanned);
        size_t n, content;
        int status;
        if (feed == NULL) {
            r->scanned = r->len;
            if (r->skipping) { /* the rest of a refused line: drop what came */
                r->len = r->scanned = 0;
            } else if (r->len > r->max + 1) {
                /* No line feed within the limit (plus one carriage return): refuse it now,
                 * skip the rest of it at the next call. */
                r->skipping = 1;
                r->len = r->scanned = 0;
                return LINE_TOO_LONG;
            }
            status = fill(r, deadline, has_deadline);
            if (status != LINE_OK)
                return status;
            continue;
        }
        n = (size_t)(feed - r->buffer);
        if (r->skipping) {
            r->skipping = 0;
            drop_front(r, n + 1);
            continue;
        }
        content = n > 0 && r->buffer[n - 1] == '\r' ? n - 1 : n;
        if (content > r->max) {
            drop_front(r, n + 1);
            return LINE_TOO_LONG;
        }
        while (content > 0 && r->buffer[content - 1] == '\r')
            content--;
        if (is_blank(r->buffer, content)) {
            drop_front(r, n + 1);
            continue;
        }
        *line = r->buffer;
        *len = content;
        r->consumed = n + 1;
        return LINE_OK;
    }
}
