/*
 * `cacreg register --user NAME`: the help article's second path without a
 * screen. Password login; the registration view (current registered
 * information, or not registered); --clear clears it; then the card: its
 * identity certificate, the PIN, the portal password again, and the portal
 * registers it. Also `cacreg reset --user NAME`: "I need a password".
 * Secrets come from descriptors or the terminal, never from the command line.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "cacreg.h"
#include "cli.h"

static cacreg_flow *flow;
static int idle_s; /* idle_timeout: how long a prompt waits for typing */

static int portal_failure(const cacreg_flow_state *s)
{
    const cacreg_portal_result *r = &s->last;

    cli_say(s->diagnosis, s->detail);
    if (r->attempts_left >= 0 && strcmp(r->error, "invalid_credentials") == 0)
        printf("%d attempts left before the account locks.\n", r->attempts_left);
    return cli_exit_for(s->fail);
}

/* Where the flow stopped when it was not where this command wanted it. */
static int stopped(const cacreg_flow_state *s)
{
    if (s->step == CACREG_STEP_START && s->notice.cause) {
        cli_say(s->notice, NULL);
        return cli_exit_for(s->notice_fail);
    }
    if (strcmp(s->stage, "portal") == 0)
        return portal_failure(s);
    cli_say(s->diagnosis, s->detail);
    if (s->login == CACREG_LOGIN_WRONG_PIN && s->tries_left > 0)
        printf("%d %s left.\n", s->tries_left, s->tries_left == 1 ? "try" : "tries");
    return cli_exit_for(s->fail);
}

static void print_registration(const cacreg_flow_state *s)
{
    const cacreg_portal_result *a = &s->account, *r = &s->registration;

    printf("Account:        %s (%s, %s account), password good until %.10s\n", a->username,
           a->display_name, strcmp(a->account_type, "email_only") == 0 ? "email-only" : "full",
           a->password_expires);
    if (r->registered)
        printf("Current registered information: %s, serial %s, expires %.10s, "
               "registered %.10s\n", r->cert_subject, r->cert_serial, r->cert_not_after,
               r->registered_at);
    else
        printf("Not registered: no CAC is registered to this account.\n");
}

/* Types the password kept from its one reading into the step that asks for it. */
static void type_password(const cacreg_secret *password)
{
    cacreg_secret *into = cacreg_flow_secret(flow);

    if (into)
        cacreg_secret_append(into, cacreg_secret_data(password), cacreg_secret_len(password));
}

/* The card part: certificate, PIN, the password again; the portal registers it. */
static int register_card(cacreg_secret *password, int pin_fd)
{
    const cacreg_flow_state *s = cacreg_flow_state_get(flow);
    const cacreg_cert *c;
    bool idle;
    int code = cli_flow_card(flow, 0);

    if (code != CLI_OK)
        return code;
    cacreg_flow_register(flow);
    cli_flow_wait(flow, cli_flow_busy, -1);
    if (s->step != CACREG_STEP_CHOOSE_CERT)
        return stopped(s);
    if (s->chosen >= s->info.ncerts) {
        cli_say(cacreg_diagnose_verdict(CACREG_VERDICT_WRONG_KIND), "no identity certificate");
        return CLI_CARD;
    }
    cacreg_flow_choose(flow, s->chosen);
    if (s->step != CACREG_STEP_PIN)
        return stopped(s);
    c = &s->info.certs[s->chosen];
    printf("Certificate:    %s, identity certificate, issuer %s, serial %s\n", c->holder,
           c->issuer_cn, c->serial);
    fflush(stdout);
    if (!cli_read_secret(pin_fd, "CAC PIN: ", idle_s,
                         cacreg_flow_secret(flow), &idle)) {
        cacreg_secret_clear(cacreg_flow_secret(flow));
        cli_say(idle ? CLI_IDLE : (cacreg_diagnosis){"No PIN was given.", ""}, NULL);
        return CLI_USAGE;
    }
    cacreg_flow_handle(flow);
    cacreg_flow_submit(flow, NULL);
    cli_flow_wait(flow, cli_flow_busy, -1);
    if (s->step != CACREG_STEP_CONFIRM_PASSWORD)
        return stopped(s);
    type_password(password);
    cacreg_flow_submit(flow, NULL);
    cli_flow_wait(flow, cli_flow_busy, -1);
    if (s->step != CACREG_STEP_DONE)
        return stopped(s);
    if (strcmp(s->last.registration, "unchanged") == 0)
        printf("This CAC was registered already.\n");
    else if (strcmp(s->last.registration, "replaced") == 0)
        printf("Your CAC is registered; it replaces the card registered before.\n");
    else
        printf("Your CAC is registered.\n");
    printf("Registered now: %s, serial %s.\n", s->last.cert_subject, s->last.cert_serial);
    return CLI_OK;
}

static int run(const char *user, int password_fd, int pin_fd, bool clear, bool state_only)
{
    const cacreg_flow_state *s = cacreg_flow_state_get(flow);
    cacreg_secret *password = cacreg_secret_new();
    bool idle;
    int code;

    if (!password)
        return CLI_MIDDLEWARE;
    if (!cli_read_secret(password_fd, "Portal password: ", idle_s, password, &idle)) {
        cacreg_secret_free(password);
        cli_say(idle ? CLI_IDLE : (cacreg_diagnosis){"No password was given.", ""}, NULL);
        return CLI_USAGE;
    }
    cacreg_flow_password_login(flow);
    type_password(password);
    cacreg_flow_submit(flow, user);
    cli_flow_wait(flow, cli_flow_busy, -1);
    if (s->step != CACREG_STEP_REGISTRATION) {
        cacreg_secret_free(password);
        return stopped(s);
    }
    print_registration(s);
    if (clear) {
        cacreg_flow_clear(flow);
        cacreg_flow_confirm(flow, true);
        cli_flow_wait(flow, cli_flow_busy, -1);
        if (s->step != CACREG_STEP_REGISTRATION) {
            cacreg_secret_free(password);
            return stopped(s);
        }
        printf("Registered information cleared.\n");
    }
    code = state_only ? CLI_OK : register_card(password, pin_fd);
    cacreg_secret_free(password); /* the one copy kept for the confirmation: wiped */
    return code;
}

static int reset(const char *user)
{
    const cacreg_flow_state *s = cacreg_flow_state_get(flow);

    cacreg_flow_reset(flow);
    cacreg_flow_submit(flow, user);
    cli_flow_wait(flow, cli_flow_busy, -1);
    if (s->step != CACREG_STEP_DONE)
        return stopped(s);
    printf("Asked: if %s is an account, instructions for a new password go to its "
           "email address on file.\n", user);
    return CLI_OK;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cacreg register --user NAME [--password-fd N] [--pin-fd N] [--clear]\n"
            "                       [--state] [--portal URL] [--config FILE] [--ca-bundle FILE]\n"
            "                       [--crl FILE] [--ocsp URL] [--module PATH] [--reader TEXT]\n"
            "       cacreg reset --user NAME [--portal URL] [--config FILE] [--ca-bundle FILE]\n"
            "\n"
            "register: logs in with your username and password, shows what is registered,\n"
            "(--clear: clears it), then registers the CAC in the reader with its PIN; your\n"
            "password confirms the registration. --state only shows what is registered.\n"
            "The password (one line) and the PIN (one line) are read from the descriptors\n"
            "given, or asked for on the terminal.\n"
            "reset: asks the portal to send instructions for a new password.\n"
            "\n"
            "Exit status: 0 done; 1 no card; 2 smart-card service or module missing; 3 the\n"
            "card cannot be used; 4 bad options; 5 the portal said no; 6 the portal cannot\n"
            "be reached or answered something unusable.\n");
}

/* The options of `cacreg register` and `cacreg reset`. */
struct register_opts {
    char user[128];
    int password_fd, pin_fd;
    bool clear, state_only;
};

static bool register_option(int opt, const char *arg, void *ctx)
{
    struct register_opts *o = ctx;

    switch (opt) {
    case 'u':
        snprintf(o->user, sizeof o->user, "%s", arg);
        return true;
    case 'w':
        o->password_fd = (int)strtol(arg, NULL, 10);
        return true;
    case 'p':
        o->pin_fd = (int)strtol(arg, NULL, 10);
        return true;
    case 'x':
        o->clear = true;
        return true;
    case 's':
        o->state_only = true;
        return true;
    default:
        return false;
    }
}

int cli_register(int argc, char **argv, bool reset_only)
{
    static const struct option opts[] = {
        {"user", required_argument, NULL, 'u'},      {"password-fd", required_argument, NULL, 'w'},
        {"pin-fd", required_argument, NULL, 'p'},    {"clear", no_argument, NULL, 'x'},
        {"state", no_argument, NULL, 's'},           {"help", no_argument, NULL, 'h'},
        CLI_COMMON_OPTIONS,                          {NULL, 0, NULL, 0},
    };
    struct register_opts o = {.password_fd = -1, .pin_fd = -1};
    cacreg_config cfg;
    int code = cli_options(argc, argv, "h", opts, &cfg, usage, register_option, &o);

    if (code != CLI_OK)
        return code == CLI_HELP ? CLI_OK : code;
    if (!o.user[0]) {
        usage(stderr);
        return CLI_USAGE;
    }
    idle_s = cfg.idle_timeout_s;
    code = cli_flow_new(&flow, &cfg);
    if (code != CLI_OK)
        return code;
    code = reset_only ? reset(o.user)
                      : run(o.user, o.password_fd, o.pin_fd, o.clear, o.state_only);
    cli_flow_finish(flow);
    cacreg_flow_free(flow);
    return code;
}
