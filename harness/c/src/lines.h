/*
 * lines.h: one message per line (docs/remote-protocol.md, "Transport and framing").
 *
 * A line ends with a line feed; a carriage return before it is dropped and blank lines are
 * skipped, so a person can type requests. A line may hold at most max bytes (8 MiB), not
 * counting the line feed (nor one carriage return); a longer one is LINE_TOO_LONG, and the
 * next call first skips the rest of it. The reader never holds more than max + 64 KiB.
 */
#ifndef VMBHARNESS_LINES_H
#define VMBHARNESS_LINES_H

#include <stddef.h>

/* Reads what is there into buffer, waiting at most timeout_ms (< 0: no limit): > 0 bytes,
 * 0 at end of stream, -1 on error, -2 when the time ran out. */
typedef long (*line_source)(void *context, void *buffer, size_t size, long timeout_ms);

typedef struct line_reader {
    char *buffer;
    size_t len;      /* bytes held */
    size_t scanned;  /* bytes of buffer already searched for a line feed */
    size_t cap, max;
    size_t consumed; /* bytes of the line handed out last, dropped at the next call */
    int skipping;    /* the rest of a too-long line is still to come */
    line_source source;
    void *context;
} line_reader;

enum { LINE_OK, LINE_END, LINE_TOO_LONG, LINE_TIMEOUT, LINE_ERROR };

int line_reader_init(line_reader *r, size_t max, line_source source, void *context);
void line_reader_free(line_reader *r);
/* The next non-blank line, in *line (valid until the next call) and *len. timeout_ms bounds
 * the wait for a whole line (< 0: no limit). */
int line_next(line_reader *r, long timeout_ms, const char **line, size_t *len);

#endif
