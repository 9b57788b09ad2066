/*
 * net.h: the sockets shim. BSD sockets on POSIX, Winsock 2 on Windows; nothing else in the
 * harness includes a socket header.
 */
#ifndef VMBHARNESS_NET_H
#define VMBHARNESS_NET_H

#include <stddef.h>
#include <stdint.h>

/* A socket: an int on POSIX, a SOCKET (UINT_PTR) on Windows; NET_INVALID for none. */
typedef uintptr_t net_socket;
#define NET_INVALID ((net_socket)~(uintptr_t)0)

/* Once, before any other call (WSAStartup; SIGPIPE ignored on POSIX). 0 on success. */
int net_init(void);

/* A listening TCP socket on host:port (port "0": any free port). NET_INVALID on failure,
 * with a message in err. */
net_socket net_listen(const char *host, const char *port, char *err, size_t err_size);
/* The port a socket is bound to, or -1. */
int net_local_port(net_socket sock);
/* The next connection (blocking), or NET_INVALID. */
net_socket net_accept(net_socket listener);

/* TCP_NODELAY: each reply leaves at once instead of waiting for an ACK (Nagle's algorithm
 * plus the peer's delayed ACK cost 40-200 ms a message). 0 on success. */
int net_set_nodelay(net_socket sock);
/* A send that cannot proceed for `ms` milliseconds fails (a client that stopped reading). */
int net_set_send_timeout(net_socket sock, long ms);

/* 1 when readable (data or end of stream), 0 when `ms` passed first (ms < 0: no limit),
 * -1 on error. poll()/WSAPoll(), so descriptor numbers have no upper bound. */
int net_wait_readable(net_socket sock, long ms);
/* > 0 bytes, 0 at end of stream, -1 on error. */
long net_recv(net_socket sock, void *buffer, size_t size);
/* Sends all of buffer: one send() call unless the socket takes less. 0 on success. */
int net_send_all(net_socket sock, const void *buffer, size_t size);
/* No more sends (the peer reads end of stream after what was sent). */
void net_shutdown_write(net_socket sock);
void net_close(net_socket sock);

#endif
