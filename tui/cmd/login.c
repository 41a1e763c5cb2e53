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

#include "cli.h"
#include "out.h"

/* Prints the outcome for machines (--json); returns the exit status. */
static int print_json(int code, const cacreg_flow_state *s)
{
    const cacreg_problem *p = s->step == CACREG_STEP_START ? &s->notice : &s->problem;
    const cacreg_portal_result *r = &s->last;
    const char *stage = code == CLI_OK ? "done" : cacreg_stage_name(p->stage);
    cacreg_diagnosis d = code == CLI_OK ? cacreg_diagnose_portal(r) : p->diagnosis;
    json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:s}", "exit", code, "stage", stage, "cause",
                          d.cause ? d.cause : "", "steps", d.steps ? d.steps : "", "detail",
                          code == CLI_OK ? "" : p->detail);

    if (code != CLI_OK && p->stage == CACREG_STAGE_PREFLIGHT)
        json_object_set_new(o, "verdict", json_string(cacreg_verdict_name(s->verdict)));
    if (s->tries_left >= 0 && p->stage == CACREG_STAGE_PIN)
        json_object_set_new(o, "tries_left", json_integer(s->tries_left));
    if (code == CLI_OK || p->stage == CACREG_STAGE_PORTAL) {
        json_object_set_new(o, "portal_error", json_string(r->error));
        json_object_set_new(o, "http_status", json_integer(r->http_status));
        if (r->err == CACREG_OK) {
            json_object_set_new(o, "username", json_string(r->username));
            json_object_set_new(o, "account_type", json_string(r->account_type));
            json_object_set_new(o, "registration",
                                json_string(cacreg_registration_name(r->registration)));
            json_object_set_new(o, "certificate_serial", json_string(r->cert_serial));
            json_object_set_new(o, "replaced_serial", json_string(r->replaced_serial));
            json_object_set_new(o, "password_expires", json_string(r->password_expires));
        }
    }
    json_dumpf(o, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
    out_printf(stdout, "\n");
    json_decref(o);
    return code;
}

/* The flow's outcome once it stops working: failed, back at the start, done. */
static int outcome(const cacreg_flow_state *s, bool json)
{
    const cacreg_portal_result *r = &s->last;
    int code;

    if (s->step != CACREG_STEP_DONE) {
        if (json) {
            const cacreg_problem *p = s->step == CACREG_STEP_START ? &s->notice : &s->problem;
            return print_json(cli_exit_for(p->fail), s);
        }
        return cli_stopped(s);
    }
    code = CLI_OK;
    if (json)
        return print_json(code, s);
    out_printf(stdout, "Logged in as %s (%s).\n", r->username, r->display_name);
    if (r->registration == CACREG_REG_REPLACED)
        out_printf(stdout, "Your CAC is registered; it replaces the card registered before "
               "(serial %s).\n", r->replaced_serial);
    else if (r->registration == CACREG_REG_UNCHANGED)
        out_printf(stdout, "This CAC was registered already.\n");
    else
        out_printf(stdout, "Your CAC is registered.\n");
    if (r->password_expires[0])
        out_printf(stdout, "Your portal password is good until %.10s (150 days).\n",
                   r->password_expires);
    if (r->note[0])
        out_printf(stdout, "%s\n", r->note);
    return code;
}

/* A problem found here, not by the flow: printed as the flow's would be. */
static int said(int code, cacreg_diagnosis d, bool json)
{
    if (json) {
        json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:s}", "exit", code, "stage", "pin", "cause",
                              d.cause, "steps", d.steps ? d.steps : "", "detail", "");
        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
        out_printf(stdout, "\n");
        json_decref(o);
    } else {
        cli_say(d, NULL);
    }
    return code;
}

static int run(cacreg_engine *e, const struct cli_opts *o, const cacreg_config *cfg)
{
    cacreg_flow *f = cacreg_engine_flow(e);
    const cacreg_flow_state *s = cacreg_flow_state_get(f);
    bool idle;
    int code = cli_flow_card(e, o->wait_ms > 0 ? o->wait_ms : 0, cfg->card_timeout_s * 1000);

    if (code != CLI_OK)
        return code;
    cacreg_flow_do(f, CACREG_ACT_CAC_LOGIN);
    if (!cli_flow_settle(e))
        return CLI_INTERRUPTED;
    if (s->step != CACREG_STEP_PIN)
        return outcome(s, o->json);
    if (!o->json) {
        const cacreg_cert *c = &s->info.certs[s->chosen];
        out_printf(stdout, "Card: %s, identity certificate from %s (serial %s) checked.\n", c->holder,
               c->issuer_cn, c->serial);
        fflush(stdout);
    }
    if (!cli_read_secret(o->pin_fd, "CAC PIN: ", cfg->idle_timeout_s, cacreg_flow_secret(f),
                         &idle)) {
        cacreg_secret_clear(cacreg_flow_secret(f));
        if (cli_interrupted())
            return CLI_INTERRUPTED;
        return said(CLI_USAGE,
                    idle ? cacreg_diagnose_say(CACREG_SAY_IDLE)
                         : (cacreg_diagnosis){"The PIN could not be read.",
                                              "Use --pin-fd, or run from a terminal."},
                    o->json);
    }
    cacreg_engine_handle(e); /* a card pulled while the PIN was typed ends it here */
    cacreg_flow_do(f, CACREG_ACT_SUBMIT);
    if (!cli_flow_settle(e))
        return CLI_INTERRUPTED;
    return outcome(s, o->json);
}

int cmd_login(int argc, char **argv)
{
    static const char synopsis[] = "cacreg login --cac [options]";
    static const char about[] =
        "Logs in to the portal with the CAC in the reader, which registers the card\n"
        "to your account (replacing an older card's certificates) and renews your\n"
        "password for 150 days. The PIN is read from --pin-fd's descriptor (one line),\n"
        "or asked for on the terminal; it is sent to the card once. --wait MS: how long\n"
        "to wait for a card (default 0: it must be in).\n"
        "\n"
        "Exit status: 0 logged in and registered; 1 no card; 2 smart-card service\n"
        "or module missing; 3 the card cannot be used (certificate, wrong or locked\n"
        "PIN: nothing was sent to the portal); 4 bad options; 5 the portal said no;\n"
        "6 the portal cannot be reached or answered something unusable.\n";
    return cli_command(CMD_LOGIN, argc, argv, synopsis, about, run);
}
