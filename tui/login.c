/*
 * `cacreg login --cac`: the help article's first path without a screen.
 * Card in, certificates read and checked, PIN, TLS login to the portal with
 * the card: logged in, the card registered (or replacing an older one), the
 * password good for 150 days. The PIN comes from a file descriptor or the
 * terminal, never from the command line or the environment.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cacreg.h"
#include "cli.h"

static bool json;
static cacreg_flow *flow;

/* Prints the outcome, for people or (--json) for machines; returns the exit status. */
static int finish(int code, const char *stage, cacreg_diagnosis d, const char *detail,
                  const cacreg_portal_result *r)
{
    const cacreg_flow_state *s = cacreg_flow_state_get(flow);

    if (json) {
        json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:s}", "exit", code, "stage", stage,
                              "cause", d.cause, "steps", d.steps ? d.steps : "", "detail",
                              detail ? detail : "");
        if (s->tries_left >= 0 && strcmp(stage, "pin") == 0)
            json_object_set_new(o, "tries_left", json_integer(s->tries_left));
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
        cli_say(d, detail);
        if (s->clock[0])
            printf("%s\n", s->clock);
        if (strcmp(stage, "pin") == 0 && s->login == CACREG_LOGIN_WRONG_PIN)
            printf(s->tries_left == 1 ? "1 try left before the card locks.\n"
                   : s->tries_left > 1 ? "%d tries left.\n" : "",
                   s->tries_left);
    }
    return code;
}

/* The flow's outcome once it stops working: failed, back at the start, done. */
static int outcome(void)
{
    const cacreg_flow_state *s = cacreg_flow_state_get(flow);
    const cacreg_portal_result *r = &s->last;

    if (s->step == CACREG_STEP_START && s->notice.cause)
        return finish(cli_exit_for(s->notice_fail), "card", s->notice, NULL, NULL);
    if (s->step != CACREG_STEP_DONE)
        return finish(cli_exit_for(s->fail), s->stage, s->diagnosis, s->detail,
                      strcmp(s->stage, "portal") == 0 ? r : NULL);
    if (!json) {
        printf("Logged in as %s (%s).\n", r->username, r->display_name);
        if (strcmp(r->registration, "replaced") == 0)
            printf("Your CAC is registered; it replaces the card registered before "
                   "(serial %s).\n", r->replaced_serial);
        else if (strcmp(r->registration, "unchanged") == 0)
            printf("This CAC was registered already.\n");
        else
            printf("Your CAC is registered.\n");
        printf("Your portal password is good until %.10s (150 days).\n", r->password_expires);
    }
    return finish(CLI_OK, "done", cacreg_diagnose_portal(r), NULL, r);
}

static int run(const cacreg_config *cfg, int pin_fd, int wait_ms)
{
    const cacreg_flow_state *s;
    bool idle;
    int code = cli_flow_new(&flow, cfg);

    if (code != CLI_OK)
        return code;
    s = cacreg_flow_state_get(flow);
    code = cli_flow_card(flow, wait_ms);
    if (code != CLI_OK)
        return code;
    cacreg_flow_cac_login(flow);
    cli_flow_wait(flow, cli_flow_busy, -1);
    if (s->step != CACREG_STEP_PIN)
        return outcome();
    if (!json) {
        const cacreg_cert *c = &s->info.certs[s->chosen];
        printf("Card: %s, identity certificate from %s (serial %s) checked.\n", c->holder,
               c->issuer_cn, c->serial);
        fflush(stdout);
    }
    if (!cli_read_secret(pin_fd, "CAC PIN: ", cfg->idle_timeout_s, cacreg_flow_secret(flow),
                         &idle)) {
        cacreg_secret_clear(cacreg_flow_secret(flow));
        return finish(CLI_USAGE, "pin",
                      idle ? CLI_IDLE
                           : (cacreg_diagnosis){"The PIN could not be read.",
                                                "Use --pin-fd, or run from a terminal."},
                      NULL, NULL);
    }
    cacreg_flow_handle(flow); /* a card pulled while the PIN was typed ends it here */
    cacreg_flow_submit(flow, NULL);
    cli_flow_wait(flow, cli_flow_busy, -1);
    return outcome();
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

/* The options of `cacreg login`. */
struct login_opts {
    bool cac;
    int pin_fd, wait_ms;
};

static bool login_option(int opt, const char *arg, void *ctx)
{
    struct login_opts *o = ctx;

    switch (opt) {
    case 'C':
        o->cac = true;
        return true;
    case 'p':
        o->pin_fd = (int)strtol(arg, NULL, 10);
        return true;
    case 'j':
        json = true;
        return true;
    case 'W':
        o->wait_ms = (int)strtol(arg, NULL, 10);
        return true;
    default:
        return false;
    }
}

int cli_login(int argc, char **argv)
{
    static const struct option opts[] = {
        {"cac", no_argument, NULL, 'C'},        {"pin-fd", required_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'j'},       {"wait", required_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},       CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    struct login_opts o = {.pin_fd = -1};
    cacreg_config cfg;
    int code = cli_options(argc, argv, "h", opts, &cfg, usage, login_option, &o);

    if (code != CLI_OK)
        return code == CLI_HELP ? CLI_OK : code;
    if (!o.cac) {
        usage(stderr);
        return CLI_USAGE;
    }
    code = run(&cfg, o.pin_fd, o.wait_ms);
    if (flow)
        cli_flow_finish(flow);
    cacreg_flow_free(flow);
    return code;
}
