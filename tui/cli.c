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

cacreg_err cli_card_load(void *arg)
{
    struct cli_card *c = arg;

    return cacreg_token_load(&c->token, c->cfg->pkcs11_module, c->cfg->opensc_file_cache,
                             c->cfg->pin_max_tries, c->err, sizeof c->err);
}

cacreg_err cli_card_read(void *arg)
{
    struct cli_card *c = arg;
    cacreg_err rc = cacreg_token_read(c->token, c->reader, &c->info, c->err, sizeof c->err);

    if (rc != CACREG_OK)
        return rc;
    c->chosen = cacreg_cert_choose(c->info.certs, c->info.ncerts);
    c->verdict = c->chosen < c->info.ncerts
                     ? cacreg_cert_preflight(&c->info.certs[c->chosen], c->trust,
                                             (long long)time(NULL), c->verdict_detail,
                                             sizeof c->verdict_detail)
                     : CACREG_VERDICT_WRONG_KIND;
    return CACREG_OK;
}

cacreg_err cli_card_pin(void *arg)
{
    struct cli_card *c = arg;
    EVP_PKEY *key;
    cacreg_err rc;

    c->login = cacreg_token_login(c->token, c->reader, c->pin, &c->tries_left, c->err,
                                  sizeof c->err);
    if (c->login != CACREG_LOGIN_OK)
        return CACREG_ERR_INVALID;
    rc = cacreg_token_identity_key(c->token, c->reader, &key, c->err, sizeof c->err);
    if (rc != CACREG_OK)
        return rc;
    rc = cacreg_portal_use_card(c->portal, &c->info.certs[c->chosen], key);
    EVP_PKEY_free(key);
    return rc;
}

int cli_flow_start(struct cli_flow *f)
{
    char err[512];

    f->events[0] = f->events[1] = -1;
    if (cacreg_trust_load(&f->trust, f->cfg.ca_bundle, f->cfg.crl_file, err, sizeof err) !=
        CACREG_OK) {
        fprintf(stderr, "cacreg: %s\n", err);
        return CLI_USAGE;
    }
    if (f->cfg.ocsp_url[0])
        cacreg_trust_set_ocsp(f->trust, f->cfg.ocsp_url, f->cfg.connect_timeout_s);
    f->card.cfg = &f->cfg;
    f->card.trust = f->trust;
    f->card.tries_left = -1;
    f->card.pin = cacreg_secret_new();
    if (!f->card.pin || cacreg_event_pipe(f->events) != CACREG_OK ||
        cacreg_worker_start(&f->worker, f->events[1]) != CACREG_OK ||
        cacreg_watcher_start(&f->watcher, f->cfg.reader_filter, f->events[1]) != CACREG_OK) {
        fprintf(stderr, "cacreg: cannot start (locked memory or threads unavailable)\n");
        return CLI_MIDDLEWARE;
    }
    if (cacreg_portal_new(&f->card.portal, &f->cfg, f->events[1], err, sizeof err) !=
        CACREG_OK) {
        fprintf(stderr, "cacreg: %s\n", err);
        return CLI_USAGE;
    }
    return CLI_OK;
}

void cli_flow_stop(struct cli_flow *f)
{
    cacreg_portal_free(f->card.portal);
    cacreg_watcher_stop(f->watcher);
    cacreg_worker_stop(f->worker);
    cacreg_token_free(f->card.token); /* releases the slots, and libp11's copy of the PIN */
    cacreg_trust_free(f->trust);
    cacreg_secret_free(f->card.pin);
    if (f->events[0] >= 0)
        close(f->events[0]);
    if (f->events[1] >= 0)
        close(f->events[1]);
}

void cli_flow_portal(struct cli_flow *f, int id, cacreg_portal_result *r)
{
    cacreg_event ev;
    bool done = id < 0;

    while (!done) {
        struct pollfd pfd = {.fd = f->events[0], .events = POLLIN};
        if (poll(&pfd, 1, -1) < 0)
            continue;
        while (cacreg_event_read(f->events[0], &ev) == CACREG_OK) {
            if (ev.type == CACREG_EV_JOB_DONE && ev.job == id)
                done = true;
            if (ev.type == CACREG_EV_CARD_OUT && f->card.reader[0] &&
                strcmp(ev.reader, f->card.reader) == 0)
                cacreg_portal_cancel(f->card.portal); /* card pulled: stop, start over */
        }
    }
    cacreg_portal_result_get(f->card.portal, r);
    if (id < 0) {
        r->outcome = CACREG_PORTAL_CANCELLED;
        snprintf(r->message, sizeof r->message, "The request could not be started.");
    }
}
