/*
 * sys.c: the threads/time/library shim of sys.h, for Win32 and for POSIX.
 *
 * Nothing else in the harness includes an operating-system header, apart from net.c (sockets).
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "sys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32

#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0600 /* condition variables, GetTickCount64: Windows Vista and later */
#endif
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <fcntl.h>
#include <io.h>
#include <process.h>

struct sys_mutex { CRITICAL_SECTION section; };
struct sys_cond { CONDITION_VARIABLE variable; };

sys_mutex *sys_mutex_new(void)
{
    sys_mutex *mutex = (sys_mutex *)malloc(sizeof *mutex);
    if (mutex != NULL)
        InitializeCriticalSection(&mutex->section);
    return mutex;
}

void sys_mutex_free(sys_mutex *mutex)
{
    if (mutex == NULL)
        return;
    DeleteCriticalSection(&mutex->section);
    free(mutex);
}

void sys_mutex_lock(sys_mutex *mutex) { EnterCriticalSection(&mutex->section); }
void sys_mutex_unlock(sys_mutex *mutex) { LeaveCriticalSection(&mutex->section); }

sys_cond *sys_cond_new(void)
{
    sys_cond *cond = (sys_cond *)malloc(sizeof *cond);
    if (cond != NULL)
        InitializeConditionVariable(&cond->variable);
    return cond;
}

void sys_cond_free(sys_cond *cond) { free(cond); }
void sys_cond_broadcast(sys_cond *cond) { WakeAllConditionVariable(&cond->variable); }

int sys_cond_wait(sys_cond *cond, sys_mutex *mutex, long ms)
{
    DWORD wait = ms < 0 ? INFINITE : (DWORD)ms;
    if (!SleepConditionVariableCS(&cond->variable, &mutex->section, wait))
        return GetLastError() == ERROR_TIMEOUT ? 1 : 0;
    return 0;
}

struct sys_tls { DWORD index; };

sys_tls *sys_tls_new(void)
{
    sys_tls *tls = (sys_tls *)malloc(sizeof *tls);
    if (tls == NULL)
        return NULL;
    tls->index = TlsAlloc();
    if (tls->index == TLS_OUT_OF_INDEXES) {
        free(tls);
        return NULL;
    }
    return tls;
}

void *sys_tls_get(sys_tls *tls) { return TlsGetValue(tls->index); }
void sys_tls_set(sys_tls *tls, void *value) { TlsSetValue(tls->index, value); }

struct thread_start { void (*fn)(void *); void *arg; };

static unsigned __stdcall thread_main(void *raw)
{
    struct thread_start start = *(struct thread_start *)raw;
    free(raw);
    start.fn(start.arg);
    return 0;
}

int sys_thread_start(void (*fn)(void *), void *arg)
{
    uintptr_t handle;
    struct thread_start *start = (struct thread_start *)malloc(sizeof *start);
    if (start == NULL)
        return -1;
    start->fn = fn;
    start->arg = arg;
    handle = _beginthreadex(NULL, 0, thread_main, start, 0, NULL);
    if (handle == 0) {
        free(start);
        return -1;
    }
    CloseHandle((HANDLE)handle);
    return 0;
}

uint64_t sys_now_ms(void) { return (uint64_t)GetTickCount64(); }
void sys_sleep_ms(unsigned ms) { Sleep(ms); }

void *sys_library_open(const char *path, char *err, size_t err_size)
{
    HMODULE module = LoadLibraryA(path);
    if (module == NULL)
        snprintf(err, err_size, "cannot load %s (Windows error %lu)", path,
                 (unsigned long)GetLastError());
    return (void *)module;
}

sys_function sys_library_function(void *library, const char *name)
{
    return (sys_function)GetProcAddress((HMODULE)library, name);
}

static int reply_fd = 1;

int sys_stdio_init(void)
{
    if (_setmode(0, _O_BINARY) == -1 || _setmode(1, _O_BINARY) == -1)
        return -1;
    reply_fd = _dup(1);
    if (reply_fd < 0 || _dup2(2, 1) != 0)
        return -1;
    return 0;
}

long sys_stdin_read(void *buffer, size_t size)
{
    unsigned int chunk = size > 0x10000000u ? 0x10000000u : (unsigned int)size;
    int got = _read(0, buffer, chunk);
    return got < 0 ? -1 : (long)got;
}

int sys_stdout_write_all(const void *buffer, size_t size)
{
    const char *at = (const char *)buffer;
    while (size > 0) {
        unsigned int chunk = size > 0x10000000u ? 0x10000000u : (unsigned int)size;
        int wrote = _write(reply_fd, at, chunk);
        if (wrote <= 0)
            return -1;
        at += wrote;
        size -= (size_t)wrote;
    }
    return 0;
}

#else /* POSIX */

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

struct sys_mutex { pthread_mutex_t mutex; };
struct sys_cond { pthread_cond_t cond; };

sys_mutex *sys_mutex_new(void)
{
    sys_mutex *mutex = (sys_mutex *)malloc(sizeof *mutex);
    if (mutex != NULL && pthread_mutex_init(&mutex->mutex, NULL) != 0) {
        free(mutex);
        return NULL;
    }
    return mutex;
}

void sys_mutex_free(sys_mutex *mutex)
{
    if (mutex == NULL)
        return;
    pthread_mutex_destroy(&mutex->mutex);
    free(mutex);
}

void sys_mutex_lock(sys_mutex *mutex) { pthread_mutex_lock(&mutex->mutex); }
void sys_mutex_unlock(sys_mutex *mutex) { pthread_mutex_unlock(&mutex->mutex); }

sys_cond *sys_cond_new(void)
{
    sys_cond *cond = (sys_cond *)malloc(sizeof *cond);
    pthread_condattr_t attributes;
    int failed;
    if (cond == NULL)
        return NULL;
    if (pthread_condattr_init(&attributes) != 0) {
        free(cond);
        return NULL;
    }
#ifndef __APPLE__
    /* Deadlines on the monotonic clock: a change of the time of day moves none of them. */
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
#endif
    failed = pthread_cond_init(&cond->cond, &attributes);
    pthread_condattr_destroy(&attributes);
    if (failed) {
        free(cond);
        return NULL;
    }
    return cond;
}

void sys_cond_free(sys_cond *cond)
{
    if (cond == NULL)
        return;
    pthread_cond_destroy(&cond->cond);
    free(cond);
}

void sys_cond_broadcast(sys_cond *cond) { pthread_cond_broadcast(&cond->cond); }

int sys_cond_wait(sys_cond *cond, sys_mutex *mutex, long ms)
{
    struct timespec until;
    if (ms < 0) {
        pthread_cond_wait(&cond->cond, &mutex->mutex);
        return 0;
    }
#ifdef __APPLE__
    until.tv_sec = ms / 1000;
    until.tv_nsec = (ms % 1000) * 1000000L;
    return pthread_cond_timedwait_relative_np(&cond->cond, &mutex->mutex, &until) == ETIMEDOUT;
#else
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec += 1;
        until.tv_nsec -= 1000000000L;
    }
    return pthread_cond_timedwait(&cond->cond, &mutex->mutex, &until) == ETIMEDOUT;
#endif
}

struct sys_tls { pthread_key_t key; };

sys_tls *sys_tls_new(void)
{
    sys_tls *tls = (sys_tls *)malloc(sizeof *tls);
    if (tls != NULL && pthread_key_create(&tls->key, NULL) != 0) {
        free(tls);
        return NULL;
    }
    return tls;
}

void *sys_tls_get(sys_tls *tls) { return pthread_getspecific(tls->key); }
void sys_tls_set(sys_tls *tls, void *value) { pthread_setspecific(tls->key, value); }

struct thread_start { void (*fn)(void *); void *arg; };

static void *thread_main(void *raw)
{
    struct thread_start start = *(struct thread_start *)raw;
    free(raw);
    start.fn(start.arg);
    return NULL;
}

int sys_thread_start(void (*fn)(void *), void *arg)
{
    pthread_t thread;
    pthread_attr_t attributes;
    struct thread_start *start = (struct thread_start *)malloc(sizeof *start);
    int failed;
    if (start == NULL)
        return -1;
    start->fn = fn;
    start->arg = arg;
    if (pthread_attr_init(&attributes) != 0) {
        free(start);
        return -1;
    }
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    failed = pthread_create(&thread, &attributes, thread_main, start);
    pthread_attr_destroy(&attributes);
    if (failed) {
        free(start);
        return -1;
    }
    return 0;
}

uint64_t sys_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

void sys_sleep_ms(unsigned ms)
{
    struct timespec pause;
    pause.tv_sec = (time_t)(ms / 1000u);
    pause.tv_nsec = (long)(ms % 1000u) * 1000000L;
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
    }
}

void *sys_library_open(const char *path, char *err, size_t err_size)
{
    void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        const char *why = dlerror();
        snprintf(err, err_size, "cannot load %s: %s", path, why != NULL ? why : "dlopen failed");
    }
    return library;
}

sys_function sys_library_function(void *library, const char *name)
{
    void *symbol = dlsym(library, name);
    sys_function function = NULL;
    if (symbol != NULL)
        memcpy(&function, &symbol, sizeof function); /* the bits, as POSIX allows */
    return function;
}

static int reply_fd = 1;

int sys_stdio_init(void)
{
    /* A client that goes away makes write() fail with EPIPE instead of killing us. */
    signal(SIGPIPE, SIG_IGN);
    reply_fd = dup(1);
    if (reply_fd < 0 || dup2(2, 1) < 0)
        return -1;
    return 0;
}

long sys_stdin_read(void *buffer, size_t size)
{
    for (;;) {
        ssize_t got = read(0, buffer, size);
        if (got >= 0)
            return (long)got;
        if (errno != EINTR)
            return -1;
    }
}

int sys_stdout_write_all(const void *buffer, size_t size)
{
    const char *at = (const char *)buffer;
    while (size > 0) {
        ssize_t wrote = write(reply_fd, at, size);
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote <= 0)
            return -1;
        at += wrote;
        size -= (size_t)wrote;
    }
    return 0;
}

#endif
