/*
 * sys.h: the threads/time/library shim. Everything the harness needs from the operating
 * system apart from sockets (net.h) is here, so that the rest is plain C99:
 *
 *   - locks and condition variables with a timed wait (the per-call deadline, worker.c);
 *   - detached threads (the worker that makes driver calls; one per TCP connection) and a
 *     thread-local pointer;
 *   - a monotonic clock in milliseconds;
 *   - loading a shared library and finding a function in it (driver_calls.c);
 *   - the standard streams as raw binary descriptors (stdio mode).
 *
 * sys.c implements it twice: Win32 (MSVC, _WIN32) and POSIX (Linux, the BSDs, macOS).
 */
#ifndef VMBHARNESS_SYS_H
#define VMBHARNESS_SYS_H

#include <stddef.h>
#include <stdint.h>

typedef struct sys_mutex sys_mutex;
typedef struct sys_cond sys_cond;

/* NULL when out of memory (or the system refused). */
sys_mutex *sys_mutex_new(void);
void sys_mutex_free(sys_mutex *mutex);
void sys_mutex_lock(sys_mutex *mutex);
void sys_mutex_unlock(sys_mutex *mutex);

sys_cond *sys_cond_new(void);
void sys_cond_free(sys_cond *cond);
void sys_cond_broadcast(sys_cond *cond);
/* Waits (mutex held) until woken or `ms` milliseconds pass (ms < 0: no limit). Returns 1 on
 * timeout, 0 otherwise (a wake-up may be spurious: callers re-check their condition). */
int sys_cond_wait(sys_cond *cond, sys_mutex *mutex, long ms);

/* A thread-local pointer (NULL in every thread until set). NULL when out of keys/memory. */
typedef struct sys_tls sys_tls;
sys_tls *sys_tls_new(void);
void *sys_tls_get(sys_tls *tls);
void sys_tls_set(sys_tls *tls, void *value);

/* Starts a detached thread running fn(arg). 0 on success. */
int sys_thread_start(void (*fn)(void *), void *arg);

/* Milliseconds of a monotonic clock (not the time of day). */
uint64_t sys_now_ms(void);
void sys_sleep_ms(unsigned ms);

/* A function pointer of no particular type: cast it to the function's own type. (ISO C does
 * not allow converting dlsym's void * to a function pointer; sys.c copies the bits.) */
typedef void (*sys_function)(void);

/* Loads a shared library (dlopen / LoadLibrary). NULL on failure, with a message in err. */
void *sys_library_open(const char *path, char *err, size_t err_size);
/* The exported function `name`, or NULL. */
sys_function sys_library_function(void *library, const char *name);

/* stdio mode: makes the standard streams binary (Windows), keeps a private descriptor for
 * replies and points file descriptor 1 at standard error, so nothing a driver library prints
 * can corrupt a reply. 0 on success. */
int sys_stdio_init(void);
/* Reads what is there from standard input: > 0 bytes, 0 at end of input, -1 on error. */
long sys_stdin_read(void *buffer, size_t size);
/* Writes all of buffer to the reply stream: one write call unless the pipe takes less. */
int sys_stdout_write_all(const void *buffer, size_t size);

#endif
