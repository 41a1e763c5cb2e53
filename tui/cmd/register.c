/*
 * `cacreg register --user NAME`: the help article's second path without a
 * screen. Password login; the registration view (current registered
 * information, or not registered); --clear clears it; then the card: its
 * identity certificate, the PIN, the portal password again, and the portal
 * registers it. Secrets come from descriptors or the terminal, never from
 * the command line.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "out.h"

static void print_registration(const cacreg_flow_state *s)
{
    const cacreg_portal_result *a = &s->account, *r = &s->registration;

    out_printf(stdout, "Account:        %s (%s, %s account), password good until %.10s\n", a->username,
           a->display_name, strcmp(a->account_type, "email_only") == 0 ? "email-only" : "full",
           a->password_expires[0] ? a->password_expires : "the directory says");
    if (r->registered) {
        out_printf(stdout, "Current registered information: %s, serial %s, expires %.10s, "
               "registered %.10s\n",
               r->cert_subject, r->cert_serial, r->cert_not_after, r->registered_at);
        /* What a directory matches on (sssd, AD), for a help desk to compare. */
        if (r->cert_issuer[0])
            out_printf(stdout, "  issuer  %s\n", r->cert_issuer);
        if (r->cert_sha256[0])
            out_printf(stdout, "  SHA-256 %s\n", r->cert_sha256);
    } else
        out_printf(stdout, "Not registered: no CAC is registered to this account.\n");
}

/* Types the password kept from its one reading into the step that asks for it. */
static void type_password(cacreg_flow *f, const cacreg_secret *password)
{
    cacreg_secret *into = cacreg_flow_secret(f);

    if (into)
        cacreg_secret_append(into, cacreg_secret_data(password), cacreg_secret_len(password));
}

/* The card part: certificate, PIN, the password again; the portal registers it. */
static int register_card(cacreg_engine *e, const cacreg_secret *password, int pin_fd, int idle_s,
                         int card_wait_ms)
{
    cacreg_flow *f = cacreg_engine_flow(e);
    const cacreg_flow_state *s = cacreg_flow_state_get(f);
    const cacreg_cert *c;
    bool idle;
    int code = cli_flow_card(e, 0, card_wait_ms);

    if (code != CLI_OK)
        return code;
    cacreg_flow_do(f, CACREG_ACT_REGISTER);
    if (!cli_flow_settle(e))
        return CLI_INTERRUPTED;
    if (s->step != CACREG_STEP_CHOOSE_CERT)
        return cli_stopped(s);
    if (s->chosen >= s->info.ncerts) {
        cli_say(cacreg_diagnose_verdict(CACREG_VERDICT_WRONG_KIND), "no identity certificate");
        return CLI_CARD;
    }
    cacreg_flow_act(f, (cacreg_action){.kind = CACREG_ACT_CHOOSE, .cert = s->chosen});
    if (s->step != CACREG_STEP_PIN)
        return cli_stopped(s);
    c = &s->info.certs[s->chosen];
    out_printf(stdout, "Certificate:    %s, identity certificate, issuer %s, serial %s\n", c->holder,
           c->issuer_cn, c->serial);
    fflush(stdout);
    if (!cli_read_secret(pin_fd, "CAC PIN: ", idle_s, cacreg_flow_secret(f), &idle)) {
        cacreg_secret_clear(cacreg_flow_secret(f));
        if (cli_interrupted())
            return CLI_INTERRUPTED;
        cli_say(idle ? cacreg_diagnose_say(CACREG_SAY_IDLE)
                     : (cacreg_diagnosis){"No PIN was given.", ""},
                NULL);
        return CLI_USAGE;
    }
    cacreg_engine_handle(e);
    cacreg_flow_do(f, CACREG_ACT_SUBMIT);
    if (!cli_flow_settle(e))
        return CLI_INTERRUPTED;
    if (s->step != CACREG_STEP_CONFIRM_PASSWORD)
        return cli_stopped(s);
    type_password(f, password);
    cacreg_flow_do(f, CACREG_ACT_SUBMIT);
    if (!cli_flow_settle(e))
        return CLI_INTERRUPTED;
    if (s->step != CACREG_STEP_DONE)
        return cli_stopped(s);
    if (s->last.registration == CACREG_REG_UNCHANGED)
        out_printf(stdout, "This CAC was registered already.\n");
    else if (s->last.registration == CACREG_REG_REPLACED)
        out_printf(stdout, "Your CAC is registered; it replaces the card registered before.\n");
    else
        out_printf(stdout, "Your CAC is registered.\n");
    out_printf(stdout, "Registered now: %s, serial %s.\n", s->last.cert_subject, s->last.cert_serial);
    if (s->last.note[0])
        out_printf(stdout, "%s\n", s->last.note);
    return CLI_OK;
}

static int run(cacreg_engine *e, const struct cli_opts *o, const cacreg_config *cfg)
{
    int idle_s = cfg->idle_timeout_s;
    cacreg_flow *f = cacreg_engine_flow(e);
    const cacreg_flow_state *s = cacreg_flow_state_get(f);
    cacreg_secret *password = cacreg_secret_new();
    bool idle;
    int code;

    if (!password)
        return CLI_MIDDLEWARE;
    if (!cli_read_secret(o->password_fd, "Portal password: ", idle_s, password, &idle)) {
        cacreg_secret_free(password);
        if (cli_interrupted())
            return CLI_INTERRUPTED;
        cli_say(idle ? cacreg_diagnose_say(CACREG_SAY_IDLE)
                     : (cacreg_diagnosis){"No password was given.", ""},
                NULL);
        return CLI_USAGE;
    }
    cacreg_flow_do(f, CACREG_ACT_PASSWORD_LOGIN);
    type_password(f, password);
    cacreg_flow_act(f, (cacreg_action){.kind = CACREG_ACT_SUBMIT, .username = o->user});
    if (!cli_flow_settle(e)) {
        code = CLI_INTERRUPTED;
        goto out;
    }
    if (s->step != CACREG_STEP_REGISTRATION) {
        code = cli_stopped(s);
        goto out;
    }
    print_registration(s);
    if (o->clear) {
        cacreg_flow_do(f, CACREG_ACT_CLEAR);
        cacreg_flow_do(f, CACREG_ACT_YES);
        if (!cli_flow_settle(e)) {
            code = CLI_INTERRUPTED;
            goto out;
        }
        if (s->step != CACREG_STEP_REGISTRATION) {
            code = cli_stopped(s);
            goto out;
        }
        out_printf(stdout, "Registered information cleared.\n");
        if (s->notice.detail[0])
            out_printf(stdout, "%s\n", s->notice.detail);
    }
    code = o->state_only ? CLI_OK : register_card(e, password, o->pin_fd, idle_s,
                                                      cfg->card_timeout_s * 1000);
out:
    cacreg_secret_free(password); /* the one copy kept for the confirmation: wiped */
    return code;
}

int cmd_register(int argc, char **argv)
{
    static const char synopsis[] = "cacreg register --user NAME [options]";
    static const char about[] =
        "Logs in with your username and password, shows what is registered\n"
        "(--clear: clears it), then registers the CAC in the reader with its PIN; your\n"
        "password confirms the registration. --state only shows what is registered.\n"
        "The password (one line) and the PIN (one line) are read from the descriptors\n"
        "given, or asked for on the terminal.\n"
        "\n"
        "Exit status: 0 done; 1 no card; 2 smart-card service or module missing; 3 the\n"
        "card cannot be used; 4 bad options; 5 the portal said no; 6 the portal cannot\n"
        "be reached or answered something unusable.\n";
    return cli_command(CMD_REGISTER, argc, argv, synopsis, about, run);
}

/* "I need a password": the request, for the name given. */
static int reset(cacreg_engine *e, const struct cli_opts *o, const cacreg_config *cfg)
{
    cacreg_flow *f = cacreg_engine_flow(e);
    const cacreg_flow_state *s = cacreg_flow_state_get(f);

    (void)cfg;
    cacreg_flow_do(f, CACREG_ACT_NEW_PASSWORD);
    cacreg_flow_act(f, (cacreg_action){.kind = CACREG_ACT_SUBMIT, .username = o->user});
    if (!cli_flow_settle(e))
        return CLI_INTERRUPTED;
    if (s->step != CACREG_STEP_DONE)
        return cli_stopped(s);
    out_printf(stdout, "Asked: if %s is an account, instructions for a new password go to its "
           "email address on file.\n",
           o->user);
    return CLI_OK;
}

int cmd_reset(int argc, char **argv)
{
    static const char synopsis[] = "cacreg reset --user NAME [options]";
    static const char about[] =
        "Asks the portal to send instructions for a new password to the account's\n"
        "email address on file (\"I need a password\").\n"
        "\n"
        "Exit status: 0 asked; 4 bad options; 5 the portal said no; 6 the portal cannot\n"
        "be reached or answered something unusable.\n";
    return cli_command(CMD_RESET, argc, argv, synopsis, about, reset);
}
