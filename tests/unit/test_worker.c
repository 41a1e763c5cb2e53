/* Unit tests for core/worker.c and core/event.c: jobs finish as events, in order. */
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "parts.h"

static int ran[32];
static int nran;

static cacreg_err job_record(void *arg)
{
    ran[nran++] = *(int *)arg;
    return *(int *)arg % 2 ? CACREG_ERR_NOT_FOUND : CACREG_OK;
}

static cacreg_err job_slow(void *arg)
{
    (void)arg;
    nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
    return CACREG_OK;
}

static void next_event(int fd, cacreg_event *ev)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    while (cacreg_event_read(fd, ev) != CACREG_OK)
        assert_int_equal(poll(&pfd, 1, 5000), 1);
}

static void test_jobs_finish_as_events_in_order(void **state)
{
    static int args[5] = {0, 1, 2, 3, 4};
    int fds[2], ids[5];
    cacreg_worker *w;
    cacreg_event ev;

    (void)state;
    nran = 0;
    assert_int_equal(cacreg_event_pipe(fds), CACREG_OK);
    assert_int_equal(cacreg_event_read(fds[0], &ev), CACREG_ERR_NOT_FOUND); /* never blocks */
    assert_int_equal(cacreg_worker_start(&w, fds[1]), CACREG_OK);
    for (int i = 0; i < 5; i++) {
        ids[i] = cacreg_worker_submit(w, job_record, &args[i]);
        assert_true(ids[i] > 0);
    }
    for (int i = 0; i < 5; i++) {
        next_event(fds[0], &ev);
        assert_int_equal(ev.type, CACREG_EV_JOB_DONE);
        assert_int_equal(ev.job, ids[i]);
        assert_int_equal(ev.status, i % 2 ? CACREG_ERR_NOT_FOUND : CACREG_OK);
    }
    for (int i = 0; i < 5; i++)
        assert_int_equal(ran[i], i);
    assert_true(cacreg_worker_stop(w, -1));
    close(fds[0]);
    close(fds[1]);
}

/* A full queue refuses, and stop lets the running job end but drops the rest. */
static void test_queue_full_and_stop(void **state)
{
    static int arg = 7;
    int fds[2], accepted = 0;
    cacreg_worker *w;

    (void)state;
    nran = 0;
    assert_int_equal(cacreg_event_pipe(fds), CACREG_OK);
    assert_int_equal(cacreg_worker_start(&w, fds[1]), CACREG_OK);
    assert_true(cacreg_worker_submit(w, job_slow, NULL) > 0);
    for (int i = 0; i < 40; i++)
        if (cacreg_worker_submit(w, job_record, &arg) > 0)
            accepted++;
    assert_true(accepted >= 15 && accepted <= 16);
    assert_true(cacreg_worker_stop(w, 1000));
    assert_true(nran < accepted);
    assert_true(cacreg_worker_stop(NULL, 0));
    close(fds[0]);
    close(fds[1]);
}

/* A job that never ends (a card that stopped answering): stop gives up in time, and says so. */
static atomic_bool release, stuck_started, stuck_ended;

static cacreg_err job_stuck(void *arg)
{
    (void)arg;
    atomic_store(&stuck_started, true);
    while (!atomic_load(&release))
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    atomic_store(&stuck_ended, true);
    return CACREG_OK;
}

/* Waits up to 5 s for flag to be set; whether it was. */
static bool wait_flag(atomic_bool *flag)
{
    for (int i = 0; i < 500 && !atomic_load(flag); i++)
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    return atomic_load(flag);
}

static void test_stop_gives_up_on_a_stuck_job(void **state)
{
    int fds[2];
    cacreg_worker *w;
    struct timespec t0, t1;
    long ms;

    (void)state;
    assert_int_equal(cacreg_event_pipe(fds), CACREG_OK);
    assert_int_equal(cacreg_worker_start(&w, fds[1]), CACREG_OK);
    assert_true(cacreg_worker_submit(w, job_stuck, NULL) > 0);
    assert_true(wait_flag(&stuck_started)); /* the worker is in the job */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_false(cacreg_worker_stop(w, 200));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms >= 190 && ms < 1000);
    atomic_store(&release, true); /* let the abandoned thread end, for the sanitizers */
    assert_true(wait_flag(&stuck_ended));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jobs_finish_as_events_in_order),
        cmocka_unit_test(test_queue_full_and_stop),
        cmocka_unit_test(test_stop_gives_up_on_a_stuck_job),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
