/* What the headless commands share: configuration, jobs, the first word from pcscd. */
#define _GNU_SOURCE
#include <poll.h>
#include <string.h>
#include <time.h>

#include "cli.h"

bool cli_load_config(cacreg_config *cfg, int argc, char **argv)
{
    const char *file = NULL;
    char err[512];
    cacreg_err rc;

    cacreg_config_defaults(cfg);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            file = argv[i + 1];
    rc = file ? cacreg_config_load_file(cfg, file, err, sizeof err)
              : cacreg_config_load_standard(cfg, false, err, sizeof err);
    if (rc == CACREG_ERR_NOT_FOUND) {
        fprintf(stderr, "cacreg: %s: no such file\n", file);
        return false;
    }
    if (rc != CACREG_OK) {
        fprintf(stderr, "cacreg: %s\n", err);
        return false;
    }
    return true;
}

bool cli_set(cacreg_config *cfg, const char *key, const char *value)
{
    char err[512];

    if (cacreg_config_set(cfg, key, value, err, sizeof err) == CACREG_OK)
        return true;
    fprintf(stderr, "cacreg: %s\n", err);
    return false;
}

cacreg_err cli_run_job(cacreg_worker *w, int events_rd, cacreg_job_fn fn, void *arg)
{
    int id = cacreg_worker_submit(w, fn, arg);
    cacreg_event ev;

    if (id < 0)
        return CACREG_ERR_SYSTEM;
    for (;;) {
        struct pollfd pfd = {.fd = events_rd, .events = POLLIN};
        if (poll(&pfd, 1, -1) < 0)
            continue;
        while (cacreg_event_read(events_rd, &ev) == CACREG_OK)
            if (ev.type == CACREG_EV_JOB_DONE && ev.job == id)
                return ev.status;
    }
}

void cli_wait_pcsc(cacreg_watcher *w, int wait_ms)
{
    for (int waited = 0; waited < wait_ms; waited += 20) {
        cacreg_readers r;
        cacreg_watcher_snapshot(w, &r);
        /* UP is final; DOWN may turn into DENIED on the watcher's second try. */
        if (r.status == CACREG_PCSC_UP || r.status == CACREG_PCSC_DENIED ||
            (r.status != CACREG_PCSC_STARTING && waited >= 1000))
            break;
        nanosleep(&(struct timespec){.tv_nsec = 20000000}, NULL);
    }
}
