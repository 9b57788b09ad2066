/*
 * main.c: vmbharness, a reference harness for vmbspec's remote target protocol
 * (docs/remote-protocol.md), forwarding every call to a driver through driver_calls.h.
 *
 *   vmbharness --library PATH [--listen stdio|tcp://HOST:PORT] [--call-timeout SECONDS]
 *              [--idle-timeout SECONDS] [--max-connections N]
 *
 * stdio: one session on standard input/output until the input ends or the client says
 * shutdown. TCP: one session per connection, each served by a thread of its own, at most
 * --max-connections at once (one more is sent error -32005 and closed); a connection that
 * sends no whole request for --idle-timeout seconds is sent error -32006 and closed. Every
 * reply is one line written with one write (send) call, and TCP_NODELAY is set, so a reply
 * never waits for Nagle's algorithm and the client's delayed ACK.
 *
 * Exit status: 0 after the input ends (stdio); 2 for a bad command line; 1 if the library
 * cannot be loaded or the address cannot be listened on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver_calls.h"
#include "lines.h"
#include "net.h"
#include "session.h"
#include "sys.h"
#include "worker.h"

#define DEFAULT_CALL_TIMEOUT 5.0
#define DEFAULT_IDLE_TIMEOUT 600.0
#define MAX_SECONDS 86400.0
#define DEFAULT_MAX_CONNECTIONS 8
#define MAX_CONNECTIONS 1024

typedef struct options {
    const char *library;
    const char *listen;
    double call_timeout, idle_timeout;
    long max_connections;
} options;

static harness_config config;
static long idle_timeout_ms;
static long max_connections;
static sys_mutex *count_mutex;
static long active_connections;

static void usage(FILE *to)
{
    fprintf(to,
            "usage: vmbharness --library PATH [--listen stdio|tcp://HOST:PORT] "
            "[--call-timeout SECONDS] [--idle-timeout SECONDS] [--max-connections N]\n"
            "  --library PATH        the driver library (C ABI of vmbcore.h) to forward to\n"
            "  --listen WHERE        stdio (default; also --stdio) or tcp://HOST:PORT (port 0: "
            "any free port)\n"
            "  --call-timeout S      a driver call that takes longer is answered as a hang "
            "(default %g)\n"
            "  --idle-timeout S      TCP: close a connection silent this long (default %g)\n"
            "  --max-connections N   TCP: connections served at once (default %d)\n",
            DEFAULT_CALL_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS);
}

static int usage_error(const char *what, const char *value)
{
    fprintf(stderr, "vmbharness: %s%s%.80s%s (see --help)\n", what, value ? " '" : "",
            value ? value : "", value ? "'" : "");
    return 2;
}

static int parse_seconds(const char *text, double *out)
{
    char *end;
    double value = strtod(text, &end);
    if (end == text || *end != '\0' || !(value > 0.0) || value > MAX_SECONDS)
        return -1;
    *out = value;
    return 0;
}

static int parse_options(int argc, char **argv, options *o)
{
    int i;
    o->library = NULL;
    o->listen = "stdio";
    o->call_timeout = DEFAULT_CALL_TIMEOUT;
    o->idle_timeout = DEFAULT_IDLE_TIMEOUT;
    o->max_connections = DEFAULT_MAX_CONNECTIONS;
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(arg, "--stdio") == 0) {
            o->listen = "stdio";
            continue;
        }
        if (strcmp(arg, "--library") != 0 && strcmp(arg, "--listen") != 0
            && strcmp(arg, "--call-timeout") != 0 && strcmp(arg, "--idle-timeout") != 0
            && strcmp(arg, "--max-connections") != 0)
            return usage_error("unknown option", arg);
        if (value == NULL)
            return usage_error("a value is missing after", arg);
        i++;
        if (strcmp(arg, "--library") == 0)
            o->library = value;
        else if (strcmp(arg, "--listen") == 0)
            o->listen = value;
        else if (strcmp(arg, "--call-timeout") == 0) {
            if (parse_seconds(value, &o->call_timeout) != 0)
                return usage_error("--call-timeout must be a number of seconds above 0 and at "
                                   "most 86400, not", value);
        } else if (strcmp(arg, "--idle-timeout") == 0) {
            if (parse_seconds(value, &o->idle_timeout) != 0)
                return usage_error("--idle-timeout must be a number of seconds above 0 and at "
                                   "most 86400, not", value);
        } else {
            char *end;
            long n = strtol(value, &end, 10);
            if (end == value || *end != '\0' || n < 1 || n > MAX_CONNECTIONS)
                return usage_error("--max-connections must be an integer from 1 to 1024, not",
                                   value);
            o->max_connections = n;
        }
    }
    if (o->library == NULL)
        return usage_error("--library PATH is required (the driver library to forward to)",
                           NULL);
    return 0;
}

/* ---- stdio ------------------------------------------------------------------------------- */

static long stdin_source(void *context, void *buffer, size_t size, long timeout_ms)
{
    (void)context;
    (void)timeout_ms; /* standard input has no idle deadline: its one client started us */
    return sys_stdin_read(buffer, size);
}

/* A reply that could not be built (out of memory) becomes an internal error, id null. */
static void settle(jbuf *out)
{
    if (!out->failed)
        return;
    jbuf_free(out);
    session_reply_unaddressed(out, -32603, "the harness ran out of memory for the reply", NULL);
}

static int serve_stdio(void)
{
    line_reader reader;
    session *s;
    jbuf out;
    if (sys_stdio_init() != 0) {
        fprintf(stderr, "vmbharness: cannot set up the standard streams\n");
        return 1;
    }
    s = session_new(&config);
    if (s == NULL || line_reader_init(&reader, config.max_message_bytes, stdin_source, NULL)) {
        fprintf(stderr, "vmbharness: out of memory\n");
        return 1;
    }
    jbuf_init(&out);
    fprintf(stderr, "vmbharness: serving on stdio\n");
    while (!session_closing(s)) {
        const char *line;
        size_t len;
        int status = line_next(&reader, -1, &line, &len);
        jbuf_clear(&out);
        if (status == LINE_OK)
            session_handle_line(s, line, len, &out);
        else if (status == LINE_TOO_LONG)
            session_reply_too_large(s, &out);
        else
            break;
        settle(&out);
        if (out.len > 0 && sys_stdout_write_all(out.data, out.len) != 0)
            break;
    }
    jbuf_free(&out);
    line_reader_free(&reader);
    session_free(s);
    return 0;
}

/* ---- TCP --------------------------------------------------------------------------------- */

static long socket_source(void *context, void *buffer, size_t size, long timeout_ms)
{
    net_socket socket = *(net_socket *)context;
    int ready = net_wait_readable(socket, timeout_ms);
    if (ready == 0)
        return -2;
    if (ready < 0)
        return -1;
    return net_recv(socket, buffer, size);
}

static void say_goodbye(net_socket socket, int code, const char *message, const char *data)
{
    jbuf out;
    jbuf_init(&out);
    session_reply_unaddressed(&out, code, message, data);
    if (!out.failed)
        net_send_all(socket, out.data, out.len);
    jbuf_free(&out);
}

static void serve_connection(void *raw)
{
    net_socket socket = *(net_socket *)raw;
    line_reader reader;
    session *s = session_new(&config);
    jbuf out;
    free(raw);
    net_set_nodelay(socket);
    net_set_send_timeout(socket, idle_timeout_ms);
    jbuf_init(&out);
    if (s != NULL && line_reader_init(&reader, config.max_message_bytes, socket_source,
                                      &socket) == 0) {
        while (!session_closing(s)) {
            const char *line;
            size_t len;
            int status = line_next(&reader, idle_timeout_ms, &line, &len);
            jbuf_clear(&out);
            if (status == LINE_OK)
                session_handle_line(s, line, len, &out);
            else if (status == LINE_TOO_LONG)
                session_reply_too_large(s, &out);
            else {
                if (status == LINE_TIMEOUT) {
                    char text[120];
                    snprintf(text, sizeof text, "no request for %g s: the agent closes this "
                             "connection", (double)idle_timeout_ms / 1000.0);
                    say_goodbye(socket, -32006, text, NULL);
                }
                break;
            }
            settle(&out);
            /* the whole reply line in one send() call */
            if (out.len > 0 && net_send_all(socket, out.data, out.len) != 0)
                break;
        }
        line_reader_free(&reader);
    }
    jbuf_free(&out);
    session_free(s);
    net_shutdown_write(socket);
    net_close(socket);
    sys_mutex_lock(count_mutex);
    active_connections--;
    sys_mutex_unlock(count_mutex);
}

/* Reads and drops what a refused connection already sent, without waiting: closing a socket
 * with unread data resets it, and the client could lose the refusal before reading it. */
static void drop_what_came(net_socket connection)
{
    char scrap[4096];
    int rounds;
    for (rounds = 0; rounds < 16 && net_wait_readable(connection, 0) == 1; rounds++)
        if (net_recv(connection, scrap, sizeof scrap) <= 0)
            break;
}

static int split_address(const char *listen, char *host, size_t host_size, const char **port)
{
    const char *rest, *colon;
    size_t n;
    if (strncmp(listen, "tcp://", 6) != 0)
        return -1;
    rest = listen + 6;
    if (rest[0] == '[') { /* [IPv6]:PORT */
        const char *close = strchr(rest, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        n = (size_t)(close - rest - 1);
        rest++;
        colon = close + 1;
    } else {
        colon = strrchr(rest, ':');
        if (colon == NULL)
            return -1;
        n = (size_t)(colon - rest);
    }
    if (n == 0 || n >= host_size || colon[1] == '\0')
        return -1;
    memcpy(host, rest, n);
    host[n] = '\0';
    *port = colon + 1;
    {
        const char *p;
        for (p = *port; *p; p++)
            if (*p < '0' || *p > '9')
                return -1;
    }
    if (strtol(*port, NULL, 10) > 65535)
        return -1;
    return 0;
}

static int serve_tcp(const char *listen)
{
    char host[256], err[300];
    const char *port;
    net_socket listener;
    if (split_address(listen, host, sizeof host, &port) != 0)
        return usage_error("--listen must be stdio or tcp://HOST:PORT, not", listen);
    if (net_init() != 0) {
        fprintf(stderr, "vmbharness: cannot start the sockets library\n");
        return 1;
    }
    listener = net_listen(host, port, err, sizeof err);
    if (listener == NET_INVALID) {
        fprintf(stderr, "vmbharness: %s\n", err);
        return 1;
    }
    count_mutex = sys_mutex_new();
    if (count_mutex == NULL)
        return 1;
    fprintf(stderr, "vmbharness: listening on tcp://%s%s%s:%d\n", strchr(host, ':') ? "[" : "",
            host, strchr(host, ':') ? "]" : "", net_local_port(listener));
    fflush(stderr);
    for (;;) {
        net_socket connection = net_accept(listener);
        net_socket *arg;
        int admitted;
        if (connection == NET_INVALID) {
            sys_sleep_ms(10); /* e.g. out of descriptors: do not spin */
            continue;
        }
        sys_mutex_lock(count_mutex);
        admitted = active_connections < max_connections;
        if (admitted)
            active_connections++;
        sys_mutex_unlock(count_mutex);
        if (!admitted) {
            char text[120], data[64];
            snprintf(text, sizeof text, "the agent already serves %ld connections; try again "
                     "later", max_connections);
            snprintf(data, sizeof data, "{\"max_connections\":%ld}", max_connections);
            net_set_send_timeout(connection, 1000);
            say_goodbye(connection, -32005, text, data);
            net_shutdown_write(connection);
            drop_what_came(connection);
            net_close(connection);
            continue;
        }
        arg = (net_socket *)malloc(sizeof *arg);
        if (arg != NULL)
            *arg = connection;
        if (arg == NULL || sys_thread_start(serve_connection, arg) != 0) {
            free(arg);
            net_close(connection);
            sys_mutex_lock(count_mutex);
            active_connections--;
            sys_mutex_unlock(count_mutex);
        }
    }
}

int main(int argc, char **argv)
{
    options o;
    dc_message m;
    int status = parse_options(argc, argv, &o);
    if (status != 0)
        return status;
    if (strcmp(o.listen, "stdio") != 0 && strncmp(o.listen, "tcp://", 6) != 0)
        return usage_error("--listen must be stdio or tcp://HOST:PORT, not", o.listen);
    config.call_timeout_ms = (long)(o.call_timeout * 1000.0 + 0.5);
    if (config.call_timeout_ms < 1)
        config.call_timeout_ms = 1;
    config.max_message_bytes = MAX_MESSAGE_BYTES;
    idle_timeout_ms = (long)(o.idle_timeout * 1000.0 + 0.5);
    if (idle_timeout_ms < 1)
        idle_timeout_ms = 1;
    max_connections = o.max_connections;
    if (worker_init() != 0) {
        fprintf(stderr, "vmbharness: out of memory\n");
        return 1;
    }
    memset(&m, 0, sizeof m);
    if (dc_init(o.library, &m) != DC_OK) {
        fprintf(stderr, "vmbharness: %s\n", m.text);
        return 1;
    }
    if (strcmp(o.listen, "stdio") == 0)
        return serve_stdio();
    return serve_tcp(o.listen);
}
