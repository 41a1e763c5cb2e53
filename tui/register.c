/*
 * `cacreg register --user NAME`: the help article's second path without a
 * screen. Password login; the registration view (current registered
 * information, or not registered); --clear clears it; then the card: its
 * identity certificate, the PIN, the portal password again, and the portal
 * registers it. Also `cacreg reset --user NAME`: "I need a password".
 * Secrets come from descriptors or the terminal, never from the command line.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "cacreg.h"
#include "cli.h"

struct reg {
    struct cli_flow f;
    char user[128];
    cacreg_secret *password, *password_again;
};

static struct reg rg; /* one per process; large (certificates) */

/* Runs one portal request and waits for it; the result goes in r. */
static void portal_wait(int id, cacreg_portal_result *r)
{
    cli_flow_portal(&rg.f, id, r);
}





static int say(int code, cacreg_diagnosis d, const char *detail)
{
    printf("%s\n%s\n", d.cause, d.steps);
    if (detail && detail[0] && strcmp(detail, d.cause) != 0)
        printf("(%s)\n", detail);
    return code;
}

static int portal_failure(const cacreg_portal_result *r)
{
    int code = r->outcome == CACREG_PORTAL_REFUSED ? CLI_REFUSED : CLI_PORTAL;

    say(code, cacreg_diagnose_portal(r), r->message);
    if (r->attempts_left >= 0 && strcmp(r->error, "invalid_credentials") == 0)
        printf("%d attempts left before the account locks.\n", r->attempts_left);
    return code;
}

static void print_registration(const cacreg_portal_result *r)
{
    printf("Account:        %s (%s, %s account), password good until %.10s\n", r->username,
           r->display_name, strcmp(r->account_type, "email_only") == 0 ? "email-only" : "full",
           r->password_expires);
    if (r->registered)
        printf("Current registered information: %s, serial %s, expires %.10s, "
               "registered %.10s\n", r->cert_subject, r->cert_serial, r->cert_not_after,
               r->registered_at);
    else
        printf("Not registered: no CAC is registered to this account.\n");
}

/* Finds the card and checks it; 0 when it can be used, else the exit status. */
static int take_card(void)
{
    cacreg_readers readers;

    if (cli_run_job(rg.f.worker, rg.f.events[0], cli_card_load, &rg.f.card) != CACREG_OK)
        return say(CLI_MIDDLEWARE, (cacreg_diagnosis){"No PKCS#11 module.", ""}, rg.f.card.err);
    cli_wait_pcsc(rg.f.watcher, 3000);
    cacreg_watcher_snapshot(rg.f.watcher, &readers);
    for (size_t i = 0; i < readers.count && !rg.f.card.reader[0]; i++)
        if (readers.readers[i].card_present)
            snprintf(rg.f.card.reader, sizeof rg.f.card.reader, "%s", readers.readers[i].name);
    if (!rg.f.card.reader[0])
        return say(CLI_NO_CARD, (cacreg_diagnosis){"No card is in a reader.", "Insert your CAC."},
                   readers.status == CACREG_PCSC_UP ? NULL : readers.detail);
    if (cli_run_job(rg.f.worker, rg.f.events[0], cli_card_read, &rg.f.card) != CACREG_OK)
        return say(CLI_CARD, cacreg_diagnose_login(CACREG_LOGIN_NO_CARD), rg.f.card.err);
    if (rg.f.card.verdict != CACREG_VERDICT_OK)
        return say(CLI_CARD, cacreg_diagnose_verdict(rg.f.card.verdict), rg.f.card.verdict_detail);
    printf("Certificate:    %s, identity certificate, issuer %s, serial %s\n",
           rg.f.card.info.certs[rg.f.card.chosen].holder, rg.f.card.info.certs[rg.f.card.chosen].issuer_cn,
           rg.f.card.info.certs[rg.f.card.chosen].serial);
    return 0;
}

static int run_register(int password_fd, int pin_fd, bool clear, bool state_only)
{
    cacreg_portal_result r;
    bool idle;
    int code;

    if (!cli_read_secret(password_fd, "Portal password: ", rg.f.cfg.idle_timeout_s, rg.password,
                         &idle))
        return say(CLI_USAGE, idle ? CLI_IDLE : (cacreg_diagnosis){"No password was given.", ""},
                   NULL);
    /* Kept for the confirmation the register step asks for; wiped with the other. */
    cacreg_secret_append(rg.password_again, cacreg_secret_data(rg.password),
                         cacreg_secret_len(rg.password));
    portal_wait(cacreg_portal_password_login(rg.f.card.portal, rg.user, rg.password), &r);
    if (r.outcome != CACREG_PORTAL_OK)
        return portal_failure(&r);
    portal_wait(cacreg_portal_get_registration(rg.f.card.portal), &r);
    if (r.outcome != CACREG_PORTAL_OK)
        return portal_failure(&r);
    print_registration(&r);
    if (clear) {
        portal_wait(cacreg_portal_clear_registration(rg.f.card.portal), &r);
        if (r.outcome != CACREG_PORTAL_OK)
            return portal_failure(&r);
        printf("Registered information cleared.\n");
    }
    if (state_only)
        return CLI_OK;
    code = take_card();
    if (code != 0)
        return code;
    if (!cli_read_secret(pin_fd, "CAC PIN: ", rg.f.cfg.idle_timeout_s, rg.f.card.pin, &idle))
        return say(CLI_USAGE, idle ? CLI_IDLE : (cacreg_diagnosis){"No PIN was given.", ""}, NULL);
    if (cli_run_job(rg.f.worker, rg.f.events[0], cli_card_pin, &rg.f.card) != CACREG_OK) {
        say(rg.f.card.login == CACREG_LOGIN_BAD_FORMAT ? CLI_USAGE : CLI_CARD,
            cacreg_diagnose_login(rg.f.card.login), rg.f.card.err);
        if (rg.f.card.login == CACREG_LOGIN_WRONG_PIN && rg.f.card.tries_left > 0)
            printf("%d %s left.\n", rg.f.card.tries_left, rg.f.card.tries_left == 1 ? "try" : "tries");
        return rg.f.card.login == CACREG_LOGIN_BAD_FORMAT ? CLI_USAGE : CLI_CARD;
    }
    portal_wait(cacreg_portal_register(rg.f.card.portal, rg.password_again), &r);
    if (r.outcome == CACREG_PORTAL_CANCELLED)
        return say(CLI_NO_CARD, (cacreg_diagnosis){"The card was removed; nothing was finished.",
                                                   "Insert your CAC and start again."},
                   NULL);
    if (r.outcome != CACREG_PORTAL_OK)
        return portal_failure(&r);
    if (strcmp(r.registration, "unchanged") == 0)
        printf("This CAC was registered already.\n");
    else if (strcmp(r.registration, "replaced") == 0)
        printf("Your CAC is registered; it replaces the card registered before.\n");
    else
        printf("Your CAC is registered.\n");
    printf("Registered now: %s, serial %s.\n", r.cert_subject, r.cert_serial);
    portal_wait(cacreg_portal_logout(rg.f.card.portal), &r);
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

int cli_register(int argc, char **argv, bool reset)
{
    static const struct option opts[] = {
        {"user", required_argument, NULL, 'u'},      {"password-fd", required_argument, NULL, 'w'},
        {"pin-fd", required_argument, NULL, 'p'},    {"clear", no_argument, NULL, 'x'},
        {"state", no_argument, NULL, 's'},           {"help", no_argument, NULL, 'h'},
        CLI_COMMON_OPTIONS,                          {NULL, 0, NULL, 0},
    };
    int opt, code, password_fd = -1, pin_fd = -1;
    bool clear = false, state_only = false;
    cacreg_portal_result r;

    rg.f.events[0] = rg.f.events[1] = -1;
    if (!cli_load_config(&rg.f.cfg, argc, argv))
        return CLI_USAGE;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int common = cli_common_option(&rg.f.cfg, opt, optarg);

        if (common < 0)
            return CLI_USAGE;
        if (common > 0)
            continue;
        switch (opt) {
        case 'u':
            snprintf(rg.user, sizeof rg.user, "%s", optarg);
            break;
        case 'w':
            password_fd = (int)strtol(optarg, NULL, 10);
            break;
        case 'p':
            pin_fd = (int)strtol(optarg, NULL, 10);
            break;
        case 'x':
            clear = true;
            break;
        case 's':
            state_only = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (!rg.user[0] || optind < argc) {
        usage(stderr);
        return CLI_USAGE;
    }
    rg.password = cacreg_secret_new();
    rg.password_again = cacreg_secret_new();
    code = rg.password && rg.password_again ? cli_flow_start(&rg.f) : CLI_MIDDLEWARE;
    if (code != CLI_OK) {
        /* nothing more to do: cli_flow_stop cleans up what started */
    } else if (reset) {
        portal_wait(cacreg_portal_password_reset(rg.f.card.portal, rg.user), &r);
        code = r.outcome == CACREG_PORTAL_OK ? CLI_OK : portal_failure(&r);
        if (code == CLI_OK)
            printf("Asked: if %s is an account, instructions for a new password go to its "
                   "email address on file.\n", rg.user);
    } else {
        code = run_register(password_fd, pin_fd, clear, state_only);
    }
    cli_flow_stop(&rg.f);
    cacreg_secret_free(rg.password);
    cacreg_secret_free(rg.password_again);
    return code;
}
