/*
 * worker.c: the deadline of worker.h. One worker thread per runner, started lazily and
 * replaced after a hang. The worker and its caller share a small state block under a mutex;
 * whichever of them finishes with it last frees it.
 */
#include "worker.h"

#include <stdlib.h>

#include "sys.h"

enum { IDLE, BUSY, DONE, ABANDONED, QUIT };

typedef struct worker {
    sys_mutex *mutex;
    sys_cond *cond;
    job *job;
    int state;
} worker;

struct runner {
    long timeout_ms;
    worker *current; /* NULL until the first call, and after a hang */
};

/* Abandoned calls still running, process-wide. */
static sys_mutex *stuck_mutex;
static int stuck_count;

static void worker_destroy(worker *w)
{
    sys_cond_free(w->cond);
    sys_mutex_free(w->mutex);
    free(w);
}

static void worker_main(void *raw)
{
    worker *w = (worker *)raw;
    for (;;) {
        job *j;
        sys_mutex_lock(w->mutex);
        while (w->state == IDLE || w->state == DONE)
            sys_cond_wait(w->cond, w->mutex, -1);
        if (w->state == QUIT) {
            sys_mutex_unlock(w->mutex);
            worker_destroy(w);
            return;
        }
        j = w->job;
        sys_mutex_unlock(w->mutex);

        j->run(j);

        sys_mutex_lock(w->mutex);
        if (w->state == ABANDONED) {
            /* The caller answered "hang" long ago and went on without us. */
            sys_mutex_unlock(w->mutex);
            j->release(j, 1);
            worker_destroy(w);
            sys_mutex_lock(stuck_mutex);
            stuck_count--;
            sys_mutex_unlock(stuck_mutex);
            return;
        }
        w->state = DONE;
        sys_cond_broadcast(w->cond);
        sys_mutex_unlock(w->mutex);
    }
}

static worker *worker_start(void)
{
    worker *w = (worker *)calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->mutex = sys_mutex_new();
    w->cond = sys_cond_new();
    w->state = IDLE;
    if (w->mutex == NULL || w->cond == NULL || sys_thread_start(worker_main, w) != 0) {
        worker_destroy(w);
        return NULL;
    }
    return w;
}

int worker_init(void)
{
    stuck_mutex = sys_mutex_new();
    return stuck_mutex == NULL ? -1 : 0;
}

runner *runner_new(long timeout_ms)
{
    runner *r = (runner *)calloc(1, sizeof *r);
    if (r != NULL)
        r->timeout_ms = timeout_ms;
    return r;
}

int runner_call(runner *r, job *j)
{
    worker *w;
    uint64_t deadline;
    if (r->current == NULL) {
        int stuck;
        sys_mutex_lock(stuck_mutex);
        stuck = stuck_count;
        sys_mutex_unlock(stuck_mutex);
        if (stuck >= WORKER_MAX_STUCK)
            return RUN_REFUSED;
        r->current = worker_start();
        if (r->current == NULL)
            return RUN_REFUSED;
    }
    w = r->current;
    deadline = sys_now_ms() + (uint64_t)r->timeout_ms;
    sys_mutex_lock(w->mutex);
    w->job = j;
    w->state = BUSY;
    sys_cond_broadcast(w->cond);
    while (w->state != DONE) {
        uint64_t now = sys_now_ms();
        if (now >= deadline) {
            w->state = ABANDONED;
            sys_mutex_unlock(w->mutex);
            sys_mutex_lock(stuck_mutex);
            stuck_count++;
            sys_mutex_unlock(stuck_mutex);
            r->current = NULL;
            return RUN_HANG;
        }
        sys_cond_wait(w->cond, w->mutex, (long)(deadline - now));
    }
    w->state = IDLE;
    w->job = NULL;
    sys_mutex_unlock(w->mutex);
    return RUN_DONE;
}

void runner_free(runner *r)
{
    if (r == NULL)
        return;
    if (r->current != NULL) {
        worker *w = r->current;
        sys_mutex_lock(w->mutex);
        w->state = QUIT;
        sys_cond_broadcast(w->cond);
        sys_mutex_unlock(w->mutex);
    }
    free(r);
}
