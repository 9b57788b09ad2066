/*
 * session.h: one client's conversation with the harness (the stdio streams, or one TCP
 * connection): JSON-RPC 2.0 requests in, replies out, each target method checked against
 * docs/remote-protocol.md and forwarded to driver_calls.h under the call deadline.
 */
#ifndef VMBHARNESS_SESSION_H
#define VMBHARNESS_SESSION_H

#include <stddef.h>

#include "json.h"

#define HARNESS_AGENT_NAME "vmbharness-c"
#define PROTOCOL_VERSION 1
#define MAX_MESSAGE_BYTES ((size_t)8 * 1024 * 1024)
#define MAX_BATCH 100
#define MAX_ID_CHARS 256

typedef struct harness_config {
    long call_timeout_ms;     /* the deadline of one driver call */
    size_t max_message_bytes; /* of a request and of a reply, line feed not counted */
} harness_config;

typedef struct session session;

/* NULL when out of memory. */
session *session_new(const harness_config *config);
/* The reply to one line (without its line feed) appended to out, line feed included; nothing
 * for a notification. */
void session_handle_line(session *s, const char *line, size_t len, jbuf *out);
/* The reply to a line over the size limit (error -32003, id null), appended to out. */
void session_reply_too_large(session *s, jbuf *out);
/* An error line with id null (-32006 idle timeout, -32005 too many connections). */
void session_reply_unaddressed(jbuf *out, int code, const char *message, const char *data_json);
/* Whether the client said shutdown. */
int session_closing(const session *s);
/* Releases the target (under the deadline) and the session. */
void session_free(session *s);

#endif
