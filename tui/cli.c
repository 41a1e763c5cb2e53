/* What the headless commands share: configuration, jobs, the first word from pcscd. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cli.h"

bool cli_load_config(cacreg_config *cfg, int argc, char **argv)
{
    const char *file = NULL;
    bool kiosk = false;
    char err[512];
    cacreg_err rc;

    cacreg_config_defaults(cfg);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            file = argv[i + 1];
        if (strcmp(argv[i], "--kiosk") == 0)
            kiosk = true; /* /etc only: nothing from the user's home */
    }
    rc = file ? cacreg_config_load_file(cfg, file, err, sizeof err)
              : cacreg_config_load_standard(cfg, kiosk, err, sizeof err);
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

int cli_common_option(cacreg_config *cfg, int opt, const char *arg)
{
    static const struct {
        int opt;
        const char *key;
    } keys[] = {{'a', "ca_bundle"}, {'r', "crl_file"},      {'o', "ocsp_url"},
                {'m', "pkcs11_module"}, {'R', "reader_filter"}, {'P', "portal_url"}};

    if (opt == 'c')
        return 1; /* read before the other options, by cli_load_config */
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (keys[i].opt == opt)
            return cli_set(cfg, keys[i].key, arg) ? 1 : -1;
    return 0;
}

int cli_options(int argc, char **argv, const char *shortopts, const struct option *opts,
                cacreg_config *cfg, void (*usage)(FILE *),
                bool (*own)(int opt, const char *arg, void *ctx), void *ctx)
{
    int opt;

    if (!cli_load_config(cfg, argc, argv))
        return CLI_USAGE;
    while ((opt = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
        int common = cli_common_option(cfg, opt, optarg);

        if (common < 0)
            return CLI_USAGE;
        if (common > 0)
            continue;
        if (opt == 'h') {
            usage(stdout);
            return CLI_HELP;
        }
        if (!own(opt, optarg, ctx)) {
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return CLI_USAGE;
    }
    return CLI_OK;
}

bool cli_read_secret(int fd, const char *prompt, int idle_s, cacreg_secret *s, bool *idle)
{
    struct termios old, quiet;
    bool tty = fd < 0;
    char c;

    *idle = false;
    cacreg_secret_clear(s);
    if (tty) {
        fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
        if (fd < 0)
            return false;
        if (write(fd, prompt, strlen(prompt)) < 0 || tcgetattr(fd, &old) != 0) {
            close(fd);
            return false;
        }
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t n;

        if (poll(&pfd, 1, idle_s * 1000) == 0) {
            cacreg_secret_clear(s); /* left alone: nothing typed is kept */
            *idle = true;
            break;
        }
        n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || c == '\n')
            break;
        if (c != '\r' && cacreg_secret_append(s, &c, 1) != CACREG_OK) {
            cacreg_secret_clear(s); /* longer than any PIN or password: not kept */
            break;
        }
    }
    c = 0;
    if (tty) {
        tcsetattr(fd, TCSAFLUSH, &old);
        if (write(fd, "\n", 1) != 1) {
            /* nothing more to say to a terminal that went away */
        }
        close(fd);
    }
    return !*idle && cacreg_secret_len(s) > 0;
}

int cli_flow_new(cacreg_flow **f, const cacreg_config *cfg)
{
    char err[512] = "";

    if (cacreg_flow_new(f, cfg, err, sizeof err) == CACREG_OK)
        return CLI_OK;
    fprintf(stderr, "cacreg: %s\n", err);
    return CLI_USAGE;
}

bool cli_flow_busy(const cacreg_flow_state *s)
{
    return s->step == CACREG_STEP_BUSY;
}

static long long now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

bool cli_flow_wait(cacreg_flow *f, bool (*busy)(const cacreg_flow_state *), int wait_ms)
{
    long long end = now_ms() + wait_ms;

    cacreg_flow_handle(f);
    while (busy(cacreg_flow_state_get(f))) {
        struct pollfd pfd = {.fd = cacreg_flow_fd(f), .events = POLLIN};
        long long left = end - now_ms();
        int t = cacreg_flow_timeout_ms(f);

        if (wait_ms >= 0 && left <= 0)
            return false;
        if (wait_ms >= 0 && (t < 0 || t > left))
            t = (int)left;
        if (poll(&pfd, 1, t) < 0 && errno != EINTR)
            return false;
        cacreg_flow_handle(f);
    }
    return true;
}

/* Still finding out whether the module loads and pcscd answers. */
static long long settle_start;
static bool settling(const cacreg_flow_state *s)
{
    /* UP is final; DOWN may turn into DENIED on the watcher's second try. */
    return s->module_loading || s->readers.status == CACREG_PCSC_STARTING ||
           (s->readers.status == CACREG_PCSC_DOWN && now_ms() - settle_start < 1000);
}

static bool no_card(const cacreg_flow_state *s)
{
    return !s->reader[0] && s->readers.status == CACREG_PCSC_UP;
}

int cli_flow_card(cacreg_flow *f, int wait_ms)
{
    const cacreg_flow_state *s = cacreg_flow_state_get(f);

    settle_start = now_ms();
    /* Polled rather than woken: DOWN's second look is a matter of time, not of an event. */
    while (settling(s) && now_ms() - settle_start < 3000) {
        cli_flow_wait(f, settling, 50);
    }
    if (!s->module_loaded) {
        cli_say((cacreg_diagnosis){"No PKCS#11 module.", ""}, s->module_error);
        return CLI_MIDDLEWARE;
    }
    if (s->readers.status != CACREG_PCSC_UP) {
        cli_say((cacreg_diagnosis){"The smart-card service is not available.",
                                   "Run 'cacreg status' for details."},
                s->readers.detail);
        return CLI_MIDDLEWARE;
    }
    cli_flow_wait(f, no_card, wait_ms);
    if (!s->reader[0]) {
        cli_say((cacreg_diagnosis){"No card is in a reader.", "Insert your CAC."}, NULL);
        return CLI_NO_CARD;
    }
    return CLI_OK;
}

int cli_exit_for(cacreg_fail fail)
{
    switch (fail) {
    case CACREG_FAIL_NONE:
        return CLI_OK;
    case CACREG_FAIL_NO_CARD:
        return CLI_NO_CARD;
    case CACREG_FAIL_MIDDLEWARE:
        return CLI_MIDDLEWARE;
    case CACREG_FAIL_CARD:
        return CLI_CARD;
    case CACREG_FAIL_INPUT:
    case CACREG_FAIL_IDLE:
        return CLI_USAGE;
    case CACREG_FAIL_REFUSED:
        return CLI_REFUSED;
    case CACREG_FAIL_PORTAL:
        break;
    }
    return CLI_PORTAL;
}

void cli_say(cacreg_diagnosis d, const char *detail)
{
    printf("%s\n", d.cause);
    if (d.steps && d.steps[0])
        printf("%s\n", d.steps);
    if (detail && detail[0] && strcmp(detail, d.cause) != 0)
        printf("(%s)\n", detail);
}

void cli_flow_finish(cacreg_flow *f)
{
    long long end = now_ms() + 2000;

    cacreg_flow_restart(f);
    cacreg_flow_handle(f);
    /* The logout, not the card read again for a screen there is not. */
    while (cacreg_flow_state_get(f)->requesting && now_ms() < end) {
        struct pollfd pfd = {.fd = cacreg_flow_fd(f), .events = POLLIN};
        poll(&pfd, 1, (int)(end - now_ms()));
        cacreg_flow_handle(f);
    }
}
