/* cacreg-portald: the portal of docs/portal-api.md, and the commands that administer it. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "admin.h"
#include "api.h"
#include "audit.h"
#include "config.h"
#include "server.h"

#define TICK_S 1                 /* the CRL's look, the sessions' and limits' sweep */
#define LIMIT_WINDOW_S 60        /* password attempts are counted per minute */

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cacreg-portald [--config FILE] [--KEY VALUE]... [COMMAND]\n"
            "The CAC registration portal (docs/portal-api.md v1) over HTTPS.\n\n"
            "With no command it serves. Options:\n"
            "  --config FILE    the configuration (default %s, if it exists)\n"
            "  --check-config   check the configuration and its files, then exit\n"
            "  --KEY VALUE      any configuration key (portald.conf(5)), '-' for '_'\n"
            "  --help           this text\n"
            "  --version        the version\n\n"
            "Commands on the embedded store:\n%s",
            PORTALD_CONFIG_FILE, admin_usage);
}

/* Writes the port to path, whole or not at all. */
static bool write_port_file(const char *path, int port)
{
    char tmp[CACREG_PATH_MAX + 8];
    FILE *f;

    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f)
        return false;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0)
        return false;
    return rename(tmp, path) == 0;
}

/* The one place the main thread waits: signals and the tick. */
static int serve_loop(const portald_config *cfg, api_context *ctx)
{
    struct pollfd fds[2];
    sigset_t mask;
    struct itimerspec tick = {.it_interval = {.tv_sec = TICK_S}, .it_value = {.tv_sec = TICK_S}};
    int sfd, tfd;
    bool running = true;
    audit_line l;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (sfd < 0 || tfd < 0 || timerfd_settime(tfd, 0, &tick, NULL) != 0) {
        fprintf(stderr, "cacreg-portald: cannot watch signals: %s\n", strerror(errno));
        return EXIT_FAILED;
    }
    fds[0] = (struct pollfd){.fd = sfd, .events = POLLIN};
    fds[1] = (struct pollfd){.fd = tfd, .events = POLLIN};
    while (running) {
        struct signalfd_siginfo si;
        unsigned long long expirations;
        bool refresh = false;

        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
            if (si.ssi_signo == SIGHUP)
                refresh = true;
            else
                running = false;
        }
        if (read(tfd, &expirations, sizeof expirations) == (ssize_t)sizeof expirations)
            refresh = true;
        if (refresh && running) {
            char err[512];
            bool reloaded = false;
            cacreg_err rc = cacreg_checker_refresh(ctx->checker, &reloaded, err, sizeof err);
            if (rc != CACREG_OK || reloaded) {
                audit_begin(&l, "crl", NULL);
                audit_add(&l, "result", rc == CACREG_OK ? "reloaded" : "kept");
                audit_add(&l, "file", cfg->crl_file);
                audit_add(&l, "why", rc == CACREG_OK ? NULL : err);
                audit_send(&l, rc != CACREG_OK);
            }
            sessions_sweep(ctx->sessions, (long long)time(NULL));
        }
    }
    close(sfd);
    close(tfd);
    return EXIT_OK;
}

static int serve(const portald_config *cfg)
{
    cacreg_checker_options copt = {
        .ca_bundle = cfg->ca_bundle,
        .crl_file = cfg->crl_file,
        .ocsp_url = cfg->ocsp_url,
        .ocsp_timeout_s = cfg->ocsp_timeout_s,
        .ocsp_cache_max_s = cfg->ocsp_cache_max_s,
        .soft_fail = cfg->revocation_soft_fail,
    };
    api_context ctx = {
        .cost = {.time = (unsigned)cfg->argon2_time, .memory_kib = (unsigned)cfg->argon2_memory_kib},
    };
    int status = EXIT_FAILED;
    server *srv = NULL;
    char err[1024], port[16];
    sigset_t mask;
    audit_line l;

    audit_open();
    api_init();
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    /* Blocked before any thread starts, so that only the loop's signalfd sees them. */
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (config_open_store(cfg, false, &ctx.store, err, sizeof err) != STORE_OK)
        goto out;
    if (store_check(ctx.store) != STORE_OK) {
        /* Served anyway (the directory may come back): each request that needs it says so. */
        audit_begin(&l, "store_error", NULL);
        audit_add(&l, "during", "start");
        audit_add(&l, "store", store_kind(ctx.store));
        audit_add(&l, "error", store_error(ctx.store));
        audit_send(&l, 1);
        fprintf(stderr, "cacreg-portald: warning: %s\n", store_error(ctx.store));
    }
    if (cacreg_checker_new(&ctx.checker, &copt, err, sizeof err) != CACREG_OK)
        goto out;
    ctx.sessions = sessions_new(cfg->session_ttl_s, (size_t)cfg->max_sessions);
    ctx.password_per_address = limits_new(cfg->password_attempts_per_address, LIMIT_WINDOW_S);
    ctx.password_per_account = limits_new(cfg->password_attempts_per_account, LIMIT_WINDOW_S);
    if (!ctx.sessions || !ctx.password_per_address || !ctx.password_per_account) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    srv = server_start(cfg, &ctx, err, sizeof err);
    if (!srv)
        goto out;
    if (cfg->port_file[0] && !write_port_file(cfg->port_file, server_port(srv))) {
        snprintf(err, sizeof err, "port_file: %.900s cannot be written: %s", cfg->port_file,
                 strerror(errno));
        goto out;
    }
    snprintf(port, sizeof port, "%d", server_port(srv));
    audit_begin(&l, "start", NULL);
    audit_add(&l, "listen", cfg->listen);
    audit_add(&l, "port", port);
    audit_add(&l, "crl", cfg->crl_file[0] ? cfg->crl_file : NULL);
    audit_add(&l, "ocsp", cfg->ocsp_url[0] ? cfg->ocsp_url : NULL);
    audit_add(&l, "revocation_soft_fail", cfg->revocation_soft_fail ? "on" : "off");
    audit_send(&l, cfg->revocation_soft_fail);
    sd_notifyf(0, "READY=1\nSTATUS=Listening on %s (port %s)", cfg->listen, port);
    status = serve_loop(cfg, &ctx);
    sd_notify(0, "STOPPING=1");
    audit_begin(&l, "stop", NULL);
    audit_send(&l, 0);
out:
    if (status != EXIT_OK && err[0] && !srv) {
        fprintf(stderr, "cacreg-portald: %s\n", err);
        audit_begin(&l, "start_failed", NULL);
        audit_add(&l, "why", err);
        audit_send(&l, 1);
    } else if (status != EXIT_OK) {
        fprintf(stderr, "cacreg-portald: %s\n", err);
    }
    server_stop(srv);
    limits_free(ctx.password_per_account);
    limits_free(ctx.password_per_address);
    sessions_free(ctx.sessions);
    cacreg_checker_free(ctx.checker);
    store_close(ctx.store);
    return status;
}

/* --check-config: the files, then the store (a directory: reached, and the service bind). */
static int check_config(const portald_config *cfg)
{
    char err[1024];
    store *s = NULL;
    store_status rc;

    if (!config_check(cfg, err, sizeof err)) {
        fprintf(stderr, "cacreg-portald: %s\n", err);
        return EXIT_FAILED;
    }
    rc = config_open_store(cfg, true, &s, err, sizeof err);
    if (rc == STORE_OK && s && (rc = store_check(s)) != STORE_OK)
        snprintf(err, sizeof err, "%s", store_error(s));
    store_close(s);
    if (rc != STORE_OK) {
        fprintf(stderr, "cacreg-portald: %s\n", err);
        return EXIT_FAILED;
    }
    printf("cacreg-portald: the configuration is good%s\n",
           strcmp(cfg->store, "ldap") == 0 ? " (the directory answered and took the service account)"
                                            : "");
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    bool check_only = false;
    portald_config cfg;
    char err[1024];
    cacreg_err rc;
    int i;

    err[0] = '\0';
    (void)cacreg_harden_process();
    config_defaults(&cfg);
    /* The file first, then the options over it. */
    for (i = 1; i < argc && argv[i] && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("cacreg-portald %s\n", CACREG_VERSION);
            return EXIT_OK;
        }
        if (strcmp(argv[i], "--check-config") == 0)
            continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "cacreg-portald: %s needs a value\n", argv[i]);
            return EXIT_USAGE;
        }
        if (strcmp(argv[i], "--config") == 0)
            config_path = argv[i + 1];
        else if (!config_has_key(argv[i] + 2)) {
            fprintf(stderr, "cacreg-portald: unknown option %s (see --help)\n", argv[i]);
            return EXIT_USAGE;
        }
        i++;
    }
    rc = config_load_file(&cfg, config_path ? config_path : PORTALD_CONFIG_FILE, err, sizeof err);
    if (rc != CACREG_OK && (config_path || rc != CACREG_ERR_NOT_FOUND)) {
        fprintf(stderr, "cacreg-portald: %s\n", err);
        return EXIT_FAILED;
    }
    for (i = 1; i < argc && argv[i] && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--check-config") == 0) {
            check_only = true;
            continue;
        }
        if (i + 1 >= argc || !argv[i + 1])
            return EXIT_USAGE; /* said in the first pass */
        if (strcmp(argv[i], "--config") != 0 &&
            config_set(&cfg, argv[i] + 2, argv[i + 1], err, sizeof err) != CACREG_OK) {
            fprintf(stderr, "cacreg-portald: %s\n", err);
            return EXIT_USAGE;
        }
        i++;
    }
    if (check_only || (i < argc && argv[i] && strcmp(argv[i], "check-config") == 0))
        return check_config(&cfg);
    if (i < argc && argv[i] && strcmp(argv[i], "serve") != 0)
        return admin_run(&cfg, argc - i, argv + i);
    return serve(&cfg);
}
