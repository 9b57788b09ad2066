/*
 * worker.h: every driver call under a deadline.
 *
 * A driver call can hang (a DeviceIoControl that never returns, a deadlock in the driver).
 * The harness must still answer: it runs each call on a worker thread and waits for it at
 * most the call timeout. A call that overruns is *abandoned*: the session answers with the
 * hang error (-32004, data.kind "hang"), and the worker thread, if the call ever returns,
 * releases the job and ends. The next call gets a fresh worker. So a TCP agent never wedges;
 * it only answers "hang" to every call while the driver stays stuck.
 *
 * At most WORKER_MAX_STUCK abandoned calls may be outstanding in the whole process; past that
 * a call is refused at once (also as a hang) instead of starting yet another thread.
 */
#ifndef VMBHARNESS_WORKER_H
#define VMBHARNESS_WORKER_H

#define WORKER_MAX_STUCK 16

typedef struct job job;
struct job {
    /* Runs on the worker thread. */
    void (*run)(job *self);
    /* Frees the job; called by the worker thread for an abandoned job once run returns,
     * and by the caller otherwise. `abandoned` says which. */
    void (*release)(job *self, int abandoned);
};

typedef struct runner runner;

enum { RUN_DONE, RUN_HANG, RUN_REFUSED };

/* Once, at start-up, before any thread. 0 on success. */
int worker_init(void);
/* NULL when out of memory. */
runner *runner_new(long timeout_ms);
/* Runs j on the worker, waiting at most the timeout.
 * RUN_DONE: j ran; the caller reads its results and releases it.
 * RUN_HANG: j overran and belongs to the worker now (released there).
 * RUN_REFUSED: j did not run (too many stuck calls, or no thread); the caller releases it. */
int runner_call(runner *r, job *j);
/* Ends the worker (an abandoned one ends by itself). */
void runner_free(runner *r);

#endif
