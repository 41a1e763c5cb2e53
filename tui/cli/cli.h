/* The commands of the cacreg program (one cmd-*.c each), and what they share:
 * one table of options, exit statuses, prompts, and driving the flow without
 * a screen. */
#ifndef CLI_H
#define CLI_H

#include <stdio.h>

#include "parts.h"

/* Exit statuses of the headless commands (documented in their --help). */
enum {
    CLI_OK = 0,         /* status: a card is ready; login: logged in */
    CLI_NO_CARD = 1,    /* no reader, or no card in any */
    CLI_MIDDLEWARE = 2, /* pcscd down or refusing, or no PKCS#11 module */
    CLI_CARD = 3,       /* the card cannot be used as it is (certificate, PIN) */
    CLI_USAGE = 4,      /* bad options or configuration */
    CLI_REFUSED = 5,    /* the portal said no */
    CLI_PORTAL = 6,     /* the portal cannot be reached or gave an unusable answer */
    CLI_INTERRUPTED = -2, /* a signal: cli_command() exits 128 + its number */
};

/* The commands, as bits for the option table. */
enum cli_command {
    CMD_TUI = 1u << 0,
    CMD_STATUS = 1u << 1,
    CMD_LOGIN = 1u << 2,
    CMD_REGISTER = 1u << 3,
    CMD_RESET = 1u << 4,
    CMD_SSH = 1u << 5,
};

#define CLI_SET_MAX 16

/* Every option of every command, parsed once. */
struct cli_opts {
    const char *config;           /* --config FILE */
    struct {
        const char *key, *value;
    } set[CLI_SET_MAX];           /* configuration keys set by options, in order */
    size_t nset;
    bool kiosk, mono, ascii;      /* the front end */
    bool once;                    /* the front end ends with the person's session */
    bool json, watch;             /* status, login */
    int wait_ms;                  /* status, login: -1 unless given */
    bool cac;                     /* login */
    int pin_fd, password_fd;      /* -1 unless given */
    const char *user;             /* register, reset */
    bool clear, state_only;       /* register */
    const char *token;            /* ssh: the p11-kit token URI to forward, or NULL */
    const char *remote_socket;    /* ssh: the socket's path on the remote machine, or NULL */
    const char *remote_cacreg;    /* ssh: the cacreg program there, or NULL */
};

/* What cli_parse() returns when it printed --help: the command exits 0. */
#define CLI_HELP (-1)

/*
 * Reads argv's options for command (one of CMD_*) into o, then the
 * configuration into cfg: --config FILE, or the standard files (only
 * /etc's with --kiosk), then the options that set keys. CLI_OK; CLI_HELP
 * when --help was printed; CLI_USAGE (the problem printed, with usage)
 * for an option the command does not take, a bad value, a stray argument,
 * or --config and key options with --kiosk. about is the command's
 * description for --help, before the options.
 */
int cli_parse(unsigned command, int argc, char **argv, const char *synopsis, const char *about,
              struct cli_opts *o, cacreg_config *cfg);

/*
 * A headless command that drives the flow: cli_parse(), an engine for the
 * configuration, run(), then the session logged out and everything freed.
 * Returns the exit status.
 */
int cli_command(unsigned command, int argc, char **argv, const char *synopsis, const char *about,
                int (*run)(cacreg_engine *e, const struct cli_opts *o, const cacreg_config *cfg));

/* `cacreg status`; returns the exit status. */
int cmd_status(int argc, char **argv);

/* `cacreg login --cac`; returns the exit status. */
int cmd_login(int argc, char **argv);

/* `cacreg register`; returns the exit status. */
int cmd_register(int argc, char **argv);

/* `cacreg reset`; returns the exit status. */
int cmd_reset(int argc, char **argv);

/* `cacreg ssh`; returns the exit status. */
int cmd_ssh(int argc, char **argv);

/* Whether command takes the long option name (without "--"); *takes_value says
 * whether it needs a value. For commands that pass other programs' options on. */
bool cli_option_known(unsigned command, const char *name, bool *takes_value);

/*
 * Blocks the terminating signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT), before
 * any thread starts, and reads them from a descriptor the waits below poll.
 */
bool cli_signals_block(void);

/* That descriptor, or -1. */
int cli_signal_fd(void);

/* The terminating signal that came, or 0. */
int cli_interrupted(void);

/*
 * Runs fn(arg) on the worker and waits for its event, at most wait_ms (a
 * card that stopped answering: CACREG_ERR_TIMEOUT) or until a signal
 * (CACREG_ERR_CANCELLED); other events stay unread.
 */
cacreg_err cli_run_job(cacreg_worker *w, int events_rd, cacreg_job_fn fn, void *arg, int wait_ms);

/* Waits up to wait_ms for the watcher to know whether pcscd is up. */
void cli_wait_pcsc(cacreg_watcher *w, int wait_ms);

/*
 * Reads one line from fd, or from the terminal without echo after prompt
 * (fd < 0). Nothing typed for idle_s seconds ends it: false, *idle set, and
 * whatever was typed is wiped.
 */
bool cli_read_secret(int fd, const char *prompt, int idle_s, cacreg_secret *s, bool *idle);

/*
 * The headless commands drive the engine's flow as the screen does: start
 * it, let it settle, act, wait for the step to change.
 */

/* Starts an engine for cfg; prints why and returns an exit status on failure. */
int cli_engine_new(cacreg_engine **e, const cacreg_config *cfg);

/* Waits up to wait_ms (-1: for ever) while busy(state) holds; false on time out. */
bool cli_flow_wait(cacreg_engine *e, bool (*busy)(const cacreg_flow_state *), int wait_ms);

/* Waits while the flow works (a working step); false when a signal came. */
bool cli_flow_settle(cacreg_engine *e);

/* Waits for the module (up to card_wait_ms) and pcscd to be known, then for a card up
 * to wait_ms; 0 when one is in, else prints why and returns the exit status. */
int cli_flow_card(cacreg_engine *e, int wait_ms, int card_wait_ms);

/* The exit status for a failure kind. */
int cli_exit_for(cacreg_fail fail);

/* Prints a diagnosis (cause, steps, and the detail when it adds something). */
void cli_say(cacreg_diagnosis d, const char *detail);

/* Prints where the flow stopped (the notice, or the problem); returns the exit status. */
int cli_stopped(const cacreg_flow_state *s);

#endif
