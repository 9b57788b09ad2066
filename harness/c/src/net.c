/*
 * net.c: the sockets shim of net.h, for Winsock 2 and for POSIX.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "net.h"

#include <stdio.h>
#include <string.h>

#ifdef _WIN32

#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0600 /* WSAPoll: Windows Vista and later */
#endif
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#ifdef _MSC_VER
#pragma comment(lib, "ws2_32.lib")
#endif

typedef SOCKET os_socket;
#define OS_INVALID INVALID_SOCKET
#define os_close closesocket
typedef int os_length;
typedef int os_io_size; /* recv and send take an int count on Windows */
#define SHUT_WR SD_SEND

int net_init(void)
{
    WSADATA data;
    return WSAStartup(MAKEWORD(2, 2), &data) == 0 ? 0 : -1;
}

static int os_poll(struct pollfd *fds, unsigned long count, int ms)
{
    return WSAPoll(fds, count, ms);
}

int net_set_send_timeout(net_socket sock, long ms)
{
    DWORD value = (DWORD)ms;
    return setsockopt((SOCKET)sock, SOL_SOCKET, SO_SNDTIMEO, (const char *)&value,
                      sizeof value) == 0 ? 0 : -1;
}

#else /* POSIX */

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

typedef int os_socket;
#define OS_INVALID (-1)
#define os_close close
typedef socklen_t os_length;
typedef size_t os_io_size; /* recv and send take a size_t count on POSIX */

int net_init(void)
{
    signal(SIGPIPE, SIG_IGN); /* a vanished client is an EPIPE from send(), not a signal */
    return 0;
}

static int os_poll(struct pollfd *fds, unsigned long count, int ms)
{
    int ready;
    do {
        ready = poll(fds, (nfds_t)count, ms);
    } while (ready < 0 && errno == EINTR);
    return ready;
}

int net_set_send_timeout(net_socket sock, long ms)
{
    struct timeval value;
    value.tv_sec = ms / 1000;
    value.tv_usec = (ms % 1000) * 1000;
    return setsockopt((int)sock, SOL_SOCKET, SO_SNDTIMEO, &value, sizeof value) == 0 ? 0 : -1;
}

#endif

net_socket net_listen(const char *host, const char *port, char *err, size_t err_size)
{
    struct addrinfo hints, *found = NULL, *at;
    os_socket listener = OS_INVALID;
    int status, yes = 1;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    status = getaddrinfo(host, port, &hints, &found);
    if (status != 0) {
        snprintf(err, err_size, "cannot resolve %s:%s (getaddrinfo error %d)", host, port,
                 status);
        return NET_INVALID;
    }
    for (at = found; at != NULL; at = at->ai_next) {
        listener = socket(at->ai_family, at->ai_socktype, at->ai_protocol);
        if (listener == OS_INVALID)
            continue;
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, (const char *)&yes, sizeof yes);
        if (bind(listener, at->ai_addr, (os_length)at->ai_addrlen) == 0
            && listen(listener, 16) == 0)
            break;
        os_close(listener);
        listener = OS_INVALID;
    }
    freeaddrinfo(found);
    if (listener == OS_INVALID) {
        snprintf(err, err_size, "cannot listen on %s:%s", host, port);
        return NET_INVALID;
    }
    return (net_socket)listener;
}

int net_local_port(net_socket sock)
{
    struct sockaddr_storage address;
    os_length length = (os_length)sizeof address;
    if (getsockname((os_socket)sock, (struct sockaddr *)&address, &length) != 0)
        return -1;
    if (address.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&address)->sin_port);
    if (address.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&address)->sin6_port);
    return -1;
}

net_socket net_accept(net_socket listener)
{
    os_socket connection = accept((os_socket)listener, NULL, NULL);
    return connection == OS_INVALID ? NET_INVALID : (net_socket)connection;
}

int net_set_nodelay(net_socket sock)
{
    int yes = 1;
    return setsockopt((os_socket)sock, IPPROTO_TCP, TCP_NODELAY, (const char *)&yes,
                      sizeof yes) == 0 ? 0 : -1;
}

int net_wait_readable(net_socket sock, long ms)
{
    struct pollfd entry;
    int ready;
    entry.fd = (os_socket)sock;
    entry.events = POLLIN;
    entry.revents = 0;
    ready = os_poll(&entry, 1, ms < 0 ? -1 : (ms > 0x7fffffffL ? 0x7fffffff : (int)ms));
    if (ready < 0)
        return -1;
    return ready > 0 ? 1 : 0;
}

long net_recv(net_socket sock, void *buffer, size_t size)
{
    os_io_size chunk = (os_io_size)(size > 0x10000000u ? 0x10000000u : size);
    long got;
    for (;;) {
        got = (long)recv((os_socket)sock, (char *)buffer, chunk, 0);
#ifndef _WIN32
        if (got < 0 && errno == EINTR)
            continue;
#endif
        return got < 0 ? -1 : got;
    }
}

int net_send_all(net_socket sock, const void *buffer, size_t size)
{
    const char *at = (const char *)buffer;
    while (size > 0) {
        os_io_size chunk = (os_io_size)(size > 0x10000000u ? 0x10000000u : size);
        long sent = (long)send((os_socket)sock, at, chunk, 0);
#ifndef _WIN32
        if (sent < 0 && errno == EINTR)
            continue;
#endif
        if (sent <= 0)
            return -1;
        at += sent;
        size -= (size_t)sent;
    }
    return 0;
}

void net_shutdown_write(net_socket sock) { shutdown((os_socket)sock, SHUT_WR); }
void net_close(net_socket sock) { os_close((os_socket)sock); }
