/*
 * `cacreg login --cac`: the help article's first path without a screen.
 * Card in, certificates read and checked, PIN, TLS login to the portal with
 * the card: logged in, the card registered (or replacing an older one), the
 * password good for 150 days. The PIN comes from a file descriptor or the
 * terminal, never from the command line or the environment.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cacreg.h"
#include "cli.h"

struct login {
    struct cli_flow f;
    bool json;
};

static struct login lg; /* one per process; large (certificates) */





/* Waits for a card in a reader (up to wait_ms); false when none came. */
static bool find_card(int wait_ms)
{
    struct timespec t0, t;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        cacreg_readers r;
        struct pollfd pfd = {.fd = lg.f.events[0], .events = POLLIN};
        cacreg_event ev;
        long left;

        cacreg_watcher_snapshot(lg.f.watcher, &r);
        for (size_t i = 0; i < r.count; i++)
            if (r.readers[i].card_present) {
                snprintf(lg.f.card.reader, sizeof lg.f.card.reader, "%s", r.readers[i].name);
                return true;
            }
        clock_gettime(CLOCK_MONOTONIC, &t);
        left = wait_ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0)
            return false;
        if (poll(&pfd, 1, (int)left) > 0)
            while (cacreg_event_read(lg.f.events[0], &ev) == CACREG_OK) {
            }
    }
}

/* Prints the outcome, for people or (--json) for machines; returns the exit status. */
static int finish(int code, const char *stage, cacreg_diagnosis d, const char *detail,
                  const cacreg_portal_result *r)
{
    if (lg.json) {
        json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:s}", "exit", code, "stage", stage,
                              "cause", d.cause, "steps", d.steps, "detail", detail ? detail : "");
        if (lg.f.card.tries_left >= 0 && strcmp(stage, "pin") == 0)
            json_object_set_new(o, "tries_left", json_integer(lg.f.card.tries_left));
        if (r) {
            json_object_set_new(o, "portal_error", json_string(r->error));
            json_object_set_new(o, "http_status", json_integer(r->http_status));
            if (r->outcome == CACREG_PORTAL_OK) {
                json_object_set_new(o, "username", json_string(r->username));
                json_object_set_new(o, "account_type", json_string(r->account_type));
                json_object_set_new(o, "registration", json_string(r->registration));
                json_object_set_new(o, "certificate_serial", json_string(r->cert_serial));
                json_object_set_new(o, "replaced_serial", json_string(r->replaced_serial));
                json_object_set_new(o, "password_expires", json_string(r->password_expires));
            }
        }
        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
        putchar('\n');
        json_decref(o);
    } else if (code != CLI_OK) {
        printf("%s\n%s\n", d.cause, d.steps);
        if (detail && detail[0] && strcmp(detail, d.cause) != 0)
            printf("(%s)\n", detail);
        if (strcmp(stage, "pin") == 0 && lg.f.card.login == CACREG_LOGIN_WRONG_PIN)
            printf(lg.f.card.tries_left == 1 ? "1 try left before the card locks.\n"
                   : lg.f.card.tries_left > 1 ? "%d tries left.\n" : "",
                   lg.f.card.tries_left);
    }
    return code;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: cacreg login --cac [--pin-fd N] [--json] [--portal URL] [--config FILE]\n"
               "                    [--ca-bundle FILE] [--crl FILE] [--ocsp URL] [--module PATH]\n"
               "                    [--reader TEXT] [--wait MS]\n"
               "\n"
               "Logs in to the portal with the CAC in the reader, which registers the card\n"
               "to your account (replacing an older card's certificates) and renews your\n"
               "password for 150 days. The PIN is read from file descriptor N (one line),\n"
               "or asked for on the terminal; it is sent to the card once.\n"
               "  --wait MS  how long to wait for a card (default 0: it must be in)\n"
               "\n"
               "Exit status: 0 logged in and registered; 1 no card; 2 smart-card service\n"
               "or module missing; 3 the card cannot be used (certificate, wrong or locked\n"
               "PIN: nothing was sent to the portal); 4 bad options; 5 the portal said no;\n"
               "6 the portal cannot be reached or answered something unusable.\n");
}

static int run(int pin_fd, int wait_ms)
{
    cacreg_portal_result r;
    cacreg_readers readers;
    char when[16];
    bool idle;

    if (cli_run_job(lg.f.worker, lg.f.events[0], cli_card_load, &lg.f.card) != CACREG_OK)
        return finish(CLI_MIDDLEWARE, "module", (cacreg_diagnosis){"No PKCS#11 module.", ""},
                      lg.f.card.err, NULL);
    cli_wait_pcsc(lg.f.watcher, 3000);
    cacreg_watcher_snapshot(lg.f.watcher, &readers);
    if (readers.status != CACREG_PCSC_UP)
        return finish(CLI_MIDDLEWARE, "pcsc",
                      (cacreg_diagnosis){"The smart-card service is not available.",
                                         "Run 'cacreg status' for details."},
                      readers.detail, NULL);
    if (!find_card(wait_ms))
        return finish(CLI_NO_CARD, "card",
                      (cacreg_diagnosis){"No card is in a reader.", "Insert your CAC."}, NULL,
                      NULL);
    if (cli_run_job(lg.f.worker, lg.f.events[0], cli_card_read, &lg.f.card) != CACREG_OK)
        return finish(CLI_CARD, "card", cacreg_diagnose_login(CACREG_LOGIN_NO_CARD), lg.f.card.err,
                      NULL);
    if (lg.f.card.verdict != CACREG_VERDICT_OK)
        return finish(CLI_CARD, "preflight", cacreg_diagnose_verdict(lg.f.card.verdict),
                      lg.f.card.verdict_detail, NULL);
    if (lg.f.card.info.pin == CACREG_PIN_LOCKED)
        return finish(CLI_CARD, "pin", cacreg_diagnose_login(CACREG_LOGIN_LOCKED), NULL, NULL);
    if (!lg.json) {
        const cacreg_cert *c = &lg.f.card.info.certs[lg.f.card.chosen];
        printf("Card: %s, identity certificate from %s (serial %s) checked.\n", c->holder,
               c->issuer_cn, c->serial);
        fflush(stdout);
    }
    if (!cli_read_secret(pin_fd, "CAC PIN: ", lg.f.cfg.idle_timeout_s, lg.f.card.pin, &idle))
        return finish(CLI_USAGE, "pin",
                      idle ? CLI_IDLE
                           : (cacreg_diagnosis){"The PIN could not be read.",
                                                "Use --pin-fd, or run from a terminal."},
                      NULL, NULL);
    if (cli_run_job(lg.f.worker, lg.f.events[0], cli_card_pin, &lg.f.card) != CACREG_OK) {
        if (lg.f.card.login != CACREG_LOGIN_OK)
            return finish(lg.f.card.login == CACREG_LOGIN_BAD_FORMAT ? CLI_USAGE : CLI_CARD, "pin",
                          cacreg_diagnose_login(lg.f.card.login), lg.f.card.err, NULL);
        return finish(CLI_CARD, "key", cacreg_diagnose_verdict(CACREG_VERDICT_WRONG_KIND),
                      lg.f.card.err, NULL);
    }
    cli_flow_portal(&lg.f, cacreg_portal_cac_login(lg.f.card.portal), &r);
    if (r.outcome == CACREG_PORTAL_CANCELLED)
        return finish(CLI_NO_CARD, "portal",
                      (cacreg_diagnosis){"The card was removed; nothing was finished.",
                                         "Insert your CAC and start again."},
                      NULL, &r);
    if (r.outcome != CACREG_PORTAL_OK) {
        char clock[256];
        if (!lg.json && cacreg_diagnose_clock(&r, clock, sizeof clock))
            printf("%s\n", clock);
        return finish(r.outcome == CACREG_PORTAL_REFUSED ? CLI_REFUSED : CLI_PORTAL, "portal",
                      cacreg_diagnose_portal(&r), r.message, &r);
    }
    snprintf(when, sizeof when, "%.10s", r.password_expires);
    if (!lg.json) {
        printf("Logged in as %s (%s).\n", r.username, r.display_name);
        if (strcmp(r.registration, "replaced") == 0)
            printf("Your CAC is registered; it replaces the card registered before "
                   "(serial %s).\n", r.replaced_serial);
        else if (strcmp(r.registration, "unchanged") == 0)
            printf("This CAC was registered already.\n");
        else
            printf("Your CAC is registered.\n");
        printf("Your portal password is good until %s (150 days).\n", when);
    }
    return finish(CLI_OK, "done", cacreg_diagnose_portal(&r), NULL, &r);
}

int cli_login(int argc, char **argv)
{
    static const struct option opts[] = {
        {"cac", no_argument, NULL, 'C'},        {"pin-fd", required_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'j'},       {"wait", required_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},       CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    int opt, code, pin_fd = -1, wait_ms = 0;
    bool cac = false;

    lg.f.events[0] = lg.f.events[1] = -1;
    if (!cli_load_config(&lg.f.cfg, argc, argv))
        return CLI_USAGE;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int common = cli_common_option(&lg.f.cfg, opt, optarg);

        if (common < 0)
            return CLI_USAGE;
        if (common > 0)
            continue;
        switch (opt) {
        case 'C':
            cac = true;
            break;
        case 'p':
            pin_fd = (int)strtol(optarg, NULL, 10);
            break;
        case 'j':
            lg.json = true;
            break;
        case 'W':
            wait_ms = (int)strtol(optarg, NULL, 10);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (!cac || optind < argc) {
        usage(stderr);
        return CLI_USAGE;
    }
    code = cli_flow_start(&lg.f);
    if (code == CLI_OK)
        code = run(pin_fd, wait_ms);
    cli_flow_stop(&lg.f);
    return code;
}
