/* The headless commands of the cacreg program, and what they share. */
#ifndef CLI_H
#define CLI_H

#include <getopt.h>
#include <stdio.h>

#include "cacreg.h"

/* Exit statuses of the headless commands (documented in their --help). */
enum {
    CLI_OK = 0,         /* status: a card is ready; login: logged in */
    CLI_NO_CARD = 1,    /* no reader, or no card in any */
    CLI_MIDDLEWARE = 2, /* pcscd down or refusing, or no PKCS#11 module */
    CLI_CARD = 3,       /* the card cannot be used as it is (certificate, PIN) */
    CLI_USAGE = 4,      /* bad options or configuration */
    CLI_REFUSED = 5,    /* the portal said no */
    CLI_PORTAL = 6,     /* the portal cannot be reached or gave an unusable answer */
};

/* `cacreg status`; returns the exit status. */
int cli_status(int argc, char **argv);

/* `cacreg login --cac`; returns the exit status. */
int cli_login(int argc, char **argv);

/* `cacreg register` (or, with reset, `cacreg reset`); returns the exit status. */
int cli_register(int argc, char **argv, bool reset);

/*
 * Loads the configuration: the --config FILE among argv if there is one,
 * else the standard files. Prints the problem and returns false on error.
 */
bool cli_load_config(cacreg_config *cfg, int argc, char **argv);

/* What cli_options() returns when it printed --help: the command exits 0. */
#define CLI_HELP (-1)

/*
 * Loads the configuration (cli_load_config), then reads argv's options with
 * getopt_long: the common ones (CLI_COMMON_OPTIONS) into cfg, -h/--help
 * prints usage and gives CLI_HELP, every other one goes to own(), which
 * returns false for an option it does not know. CLI_OK when all were taken;
 * CLI_USAGE (the problem printed) when one was not, or a stray argument.
 */
int cli_options(int argc, char **argv, const char *shortopts, const struct option *opts,
                cacreg_config *cfg, void (*usage)(FILE *),
                bool (*own)(int opt, const char *arg, void *ctx), void *ctx);

/* Sets key from a command-line option; prints the problem and returns false on error. */
bool cli_set(cacreg_config *cfg, const char *key, const char *value);

/* Runs fn(arg) on the worker and waits for its event; other events stay unread. */
cacreg_err cli_run_job(cacreg_worker *w, int events_rd, cacreg_job_fn fn, void *arg);

/* Waits up to wait_ms for the watcher to know whether pcscd is up. */
void cli_wait_pcsc(cacreg_watcher *w, int wait_ms);

/* The long options every command takes, mapped to configuration keys by cli_common_option(). */
#define CLI_COMMON_OPTIONS                                                                   \
    {"config", required_argument, NULL, 'c'}, {"ca-bundle", required_argument, NULL, 'a'},  \
        {"crl", required_argument, NULL, 'r'}, {"ocsp", required_argument, NULL, 'o'},      \
        {"module", required_argument, NULL, 'm'}, {"reader", required_argument, NULL, 'R'}, \
        {"portal", required_argument, NULL, 'P'}

/* Applies one of CLI_COMMON_OPTIONS: 1 taken, 0 not one of them, -1 bad value (printed). */
int cli_common_option(cacreg_config *cfg, int opt, const char *arg);

/*
 * Reads one line from fd, or from the terminal without echo after prompt
 * (fd < 0). Nothing typed for idle_s seconds ends it: false, *idle set, and
 * whatever was typed is wiped.
 */
bool cli_read_secret(int fd, const char *prompt, int idle_s, cacreg_secret *s, bool *idle);

/* What a flow left alone for idle_timeout says. */
#define CLI_IDLE                                                                             \
    ((cacreg_diagnosis){"Nothing was typed for a while, so this was stopped and cleared.",   \
                        "Start again when you are ready."})

/*
 * The headless commands drive the core's flow (core/flow.c) as the screen
 * does: start it, let it settle, act, wait for the step to change.
 */

/* Starts a flow for cfg; prints why and returns an exit status on failure. */
int cli_flow_new(cacreg_flow **f, const cacreg_config *cfg);

/* Waits up to wait_ms (-1: for ever) while busy(state) holds; false on time out. */
bool cli_flow_wait(cacreg_flow *f, bool (*busy)(const cacreg_flow_state *), int wait_ms);

/* Waits for the module and pcscd to be known, then for a card up to wait_ms;
 * 0 when one is in, else prints why and returns the exit status. */
int cli_flow_card(cacreg_flow *f, int wait_ms);

/* True while the flow works (STEP_BUSY). */
bool cli_flow_busy(const cacreg_flow_state *s);

/* The exit status for a failure kind. */
int cli_exit_for(cacreg_fail fail);

/* Prints a diagnosis (cause, steps, and the detail when it adds something). */
void cli_say(cacreg_diagnosis d, const char *detail);

/* Asks the portal to end the session and waits (two seconds at most) for it to go. */
void cli_flow_finish(cacreg_flow *f);

#endif
