/* The worker: one thread for slow card calls, each finishing as an event. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define QUEUE_MAX 16

/* Job ids are unique across every worker of the process (the portal's thread
 * is one too): their events share one pipe. */
static atomic_int next_id = 1;

struct job {
    cacreg_job_fn fn;
    void *arg;
    int id;
};

struct cacreg_worker {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t gone;   /* the thread has left its loop (monotonic clock) */
    struct job queue[QUEUE_MAX];
    size_t head, count;
    bool stopping;
    bool exited;
    bool abandoned;        /* stop gave up waiting: the thread frees w when it ends */
    int event_wr; /* not ours to close */
};

static void free_worker(cacreg_worker *w)
{
    pthread_cond_destroy(&w->gone);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

static void *worker_main(void *arg)
{
    cacreg_worker *w = arg;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        struct job job;
        cacreg_event ev;

        while (w->count == 0 && !w->stopping)
            pthread_cond_wait(&w->wake, &w->lock);
        if (w->stopping)
            break;
        job = w->queue[w->head];
        w->head = (w->head + 1) % QUEUE_MAX;
        w->count--;
        pthread_mutex_unlock(&w->lock);

        memset(&ev, 0, sizeof ev);
        ev.type = CACREG_EV_JOB_DONE;
        ev.job = job.id;
        ev.status = job.fn(job.arg);
        if (write(w->event_wr, &ev, sizeof ev) != (ssize_t)sizeof ev) {
            /* the front end has gone; nothing is waiting for this */
        }
        pthread_mutex_lock(&w->lock);
    }
    w->exited = true;
    pthread_cond_broadcast(&w->gone);
    if (w->abandoned) {
        pthread_mutex_unlock(&w->lock);
        free_worker(w);
        return NULL;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

cacreg_err cacreg_worker_start(cacreg_worker **out, int event_wr)
{
    cacreg_worker *w = calloc(1, sizeof *w);

    *out = NULL;
    if (!w)
        return CACREG_ERR_NOMEM;

    w->event_wr = event_wr;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    cacreg_cond_init_monotonic(&w->gone);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        pthread_cond_destroy(&w->gone);
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return CACREG_ERR_SYSTEM;
    }
    *out = w;
    return CACREG_OK;
}

int cacreg_worker_submit(cacreg_worker *w, cacreg_job_fn fn, void *arg)
{
    int id = -1;

    pthread_mutex_lock(&w->lock);
    if (w->count < QUEUE_MAX && !w->stopping) {
        id = atomic_fetch_add(&next_id, 1);
        if (id <= 0) { /* wrapped: start again at 1 */
            atomic_store(&next_id, 2);
            id = 1;
        }
        w->queue[(w->head + w->count) % QUEUE_MAX] = (struct job){fn, arg, id};
        w->count++;
        pthread_cond_signal(&w->wake);
    }
    pthread_mutex_unlock(&w->lock);
    return id;
}

bool cacreg_worker_stop(cacreg_worker *w, int wait_ms)
{
    struct timespec end;
    bool exited;

    if (!w)
        return true;
    end = cacreg_deadline(wait_ms);
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    w->count = 0;
    pthread_cond_signal(&w->wake);
    while (!w->exited) {
        if (wait_ms < 0)
            pthread_cond_wait(&w->gone, &w->lock);
        else if (pthread_cond_timedwait(&w->gone, &w->lock, &end) == ETIMEDOUT)
            break;
    }
    exited = w->exited;
    if (!exited) {
        /* A job stuck in a library call: the thread keeps w, and frees it if it ever
         * ends; the process must _exit. */
        w->abandoned = true;
        pthread_detach(w->thread);
        pthread_mutex_unlock(&w->lock);
        return false;
    }
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    free_worker(w);
    return true;
}
