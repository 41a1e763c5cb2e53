/* What the commands share: one table of options, prompts, and the flow without a screen. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "out.h"

static long long now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

#define ALL_COMMANDS (CMD_TUI | CMD_STATUS | CMD_LOGIN | CMD_REGISTER | CMD_RESET)
#define CARD_COMMANDS ALL_COMMANDS /* reset takes them too, as before: one set of settings */

/* Every option of every command; usage and getopt are made from this. */
static const struct cli_option {
    const char *name;
    const char *arg;      /* its argument's name, or NULL for none */
    const char *key;      /* the configuration key it sets, or NULL */
    const char *help;
    int code;
    unsigned commands;    /* CMD_* bits: the commands that take it */
    unsigned required;    /* CMD_* bits: the commands that cannot go without it */
    bool path;            /* a file: relative to the working directory */
} options[] = {
    {"config", "FILE", NULL,
     "read FILE instead of the standard configuration files", 'c', ALL_COMMANDS | CMD_SSH, 0,
     false},
    {"portal", "URL", "portal_url",
     "the portal's API (https://.../api/v1/)", 'P', ALL_COMMANDS, 0, false},
    {"ca-bundle", "FILE", "ca_bundle",
     "the certificate authorities of cards and of the portal (PEM)", 'a', ALL_COMMANDS, 0,
     true},
    {"crl", "FILE", "crl_file",
     "check cards against this CRL", 'r', CARD_COMMANDS, 0, true},
    {"ocsp", "URL", "ocsp_url",
     "ask this OCSP responder about cards", 'o', CARD_COMMANDS, 0, false},
    {"module", "PATH", "pkcs11_module",
     "the PKCS#11 module (default: OpenSC, from p11-kit)", 'm', CARD_COMMANDS | CMD_SSH, 0,
     true},
    {"reader", "TEXT", "reader_filter",
     "only readers whose name contains TEXT", 'R', CARD_COMMANDS, 0, false},
    {"kiosk", NULL, NULL,
     "no way out; /etc's configuration only (no --config, no settings)", 'K', CMD_TUI, 0,
     false},
    {"once", NULL, NULL,
     "end with the person's session (for cacreg-kiosk; exit status says how it ended)", 'O',
     CMD_TUI, 0, false},
    {"mono", NULL, NULL,
     "no colours (as NO_COLOR does)", 'M', CMD_TUI, 0, false},
    {"ascii", NULL, NULL,
     "ASCII line drawing", 'A', CMD_TUI, 0, false},
    {"json", NULL, NULL,
     "machine-readable output", 'j', CMD_STATUS | CMD_LOGIN, 0, false},
    {"watch", NULL, NULL,
     "after the report, print card and reader events until interrupted", 'w', CMD_STATUS, 0,
     false},
    {"wait", "MS", NULL,
     "how long to wait for the smart-card service (status) or a card (login)", 'W',
     CMD_STATUS | CMD_LOGIN, 0, false},
    {"cac", NULL, NULL,
     "log in with the CAC (required)", 'C', CMD_LOGIN, CMD_LOGIN, false},
    {"user", "NAME", NULL,
     "the portal username (required)", 'u', CMD_REGISTER | CMD_RESET,
     CMD_REGISTER | CMD_RESET, false},
    {"password-fd", "N", NULL,
     "read the password (one line) from descriptor N", 'x', CMD_REGISTER, 0, false},
    {"pin-fd", "N", NULL,
     "read the PIN (one line) from descriptor N", 'p', CMD_LOGIN | CMD_REGISTER, 0, false},
    {"clear", NULL, NULL,
     "clear what is registered first", 'X', CMD_REGISTER, 0, false},
    {"state", NULL, NULL,
     "only show what is registered", 's', CMD_REGISTER, 0, false},
    {"token", "URI", NULL,
     "the tokens to forward (default: pkcs11:manufacturer=Common%20Access%20Card)", 'T',
     CMD_SSH, 0, false},
    {"remote-socket", "PATH", NULL,
     "the socket on the remote machine (default: a new random name in /tmp)", 'S', CMD_SSH, 0,
     false},
    {"remote-cacreg", "PATH", NULL,
     "the cacreg program on the remote machine (default: cacreg)", 'G', CMD_SSH, 0, false},
    {"help", NULL, NULL,
     "this text", 'h', ALL_COMMANDS | CMD_SSH, 0, false},
};

#define NOPTIONS (sizeof options / sizeof options[0])

static void usage(FILE *f, unsigned command, const char *synopsis, const char *about)
{
    out_printf(f, "usage: %s\n\n", synopsis);
    out_words(f, about);
    out_printf(f, "\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        char left[40];
        if (!(options[i].commands & command))
            continue;
        snprintf(left, sizeof left, "--%s%s%s", options[i].name, options[i].arg ? " " : "",
                 options[i].arg ? options[i].arg : "");
        out_printf(f, "  %-20s %s\n", left, options[i].help);
    }
}

bool cli_option_known(unsigned command, const char *name, bool *takes_value)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if ((options[i].commands & command) && strcmp(options[i].name, name) == 0) {
            *takes_value = options[i].arg != NULL;
            return true;
        }
    return false;
}

/* A descriptor number or a time in milliseconds: digits only. */
static bool number(const char *s, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 86400000)
        return false;
    *out = (int)v;
    return true;
}

/* Takes one option's value into o; false when the value is not of its form. */
static bool take(struct cli_opts *o, const struct cli_option *opt, char *arg)
{
    switch (opt->code) {
    case 'c': o->config = arg; return true;
    case 'K': o->kiosk = true; return true;
    case 'O': o->once = true; return true;
    case 'M': o->mono = true; return true;
    case 'A': o->ascii = true; return true;
    case 'j': o->json = true; return true;
    case 'w': o->watch = true; return true;
    case 'C': o->cac = true; return true;
    case 'X': o->clear = true; return true;
    case 's': o->state_only = true; return true;
    case 'u': o->user = arg; return true;
    case 'T': o->token = arg; return true;
    case 'S': o->remote_socket = arg; return true;
    case 'G': o->remote_cacreg = arg; return true;
    case 'W': return number(arg, &o->wait_ms);
    case 'p': return number(arg, &o->pin_fd);
    case 'x': return number(arg, &o->password_fd);
    default: break;
    }
    if (!opt->key || o->nset == CLI_SET_MAX)
        return false;
    o->set[o->nset].key = opt->key;
    o->set[o->nset++].value = arg;
    return true;
}

/* Whether a required option (one of those without a configuration key) was given. */
static bool given(const struct cli_opts *o, int code)
{
    return code == 'C' ? o->cac : code == 'u' ? o->user && o->user[0] : true;
}

/* A path given on the command line, made absolute against the working directory. */
static bool absolute(const char *in, char *out, size_t size)
{
    char cwd[CACREG_PATH_MAX];

    if (in[0] == '/' || !in[0])
        return (size_t)snprintf(out, size, "%s", in) < size;
    if (!getcwd(cwd, sizeof cwd))
        return false;
    return (size_t)snprintf(out, size, "%s/%s", cwd, in) < size;
}

/* Reads the configuration files, then the keys the options set. */
static bool configure(const struct cli_opts *o, cacreg_config *cfg)
{
    char err[512] = "", path[CACREG_PATH_MAX];
    cacreg_err rc;

    cacreg_config_defaults(cfg);
    rc = o->config ? cacreg_config_load_file(cfg, o->config, err, sizeof err)
                   : cacreg_config_load_standard(cfg, o->kiosk, err, sizeof err);
    if (rc == CACREG_ERR_NOT_FOUND) {
        out_printf(stderr, "cacreg: %s: no such file\n", o->config);
        return false;
    }
    if (rc != CACREG_OK) {
        out_printf(stderr, "cacreg: %s\n", err);
        return false;
    }
    for (size_t i = 0; i < o->nset; i++) {
        const char *value = o->set[i].value;
        for (size_t k = 0; k < NOPTIONS; k++)
            if (options[k].key && strcmp(options[k].key, o->set[i].key) == 0 && options[k].path &&
                absolute(value, path, sizeof path))
                value = path;
        if (cacreg_config_set(cfg, o->set[i].key, value, err, sizeof err) != CACREG_OK) {
            out_printf(stderr, "cacreg: %s\n", err);
            return false;
        }
    }
    return true;
}

int cli_parse(unsigned command, int argc, char **argv, const char *synopsis, const char *about,
              struct cli_opts *o, cacreg_config *cfg)
{
    struct option longopts[NOPTIONS + 1];
    size_t n = 0;
    int code;

    memset(o, 0, sizeof *o);
    o->wait_ms = o->pin_fd = o->password_fd = -1;
    for (size_t i = 0; i < NOPTIONS; i++)
        if (options[i].commands & command)
            longopts[n++] = (struct option){options[i].name,
                                            options[i].arg ? required_argument : no_argument,
                                            NULL, options[i].code};
    longopts[n] = (struct option){NULL, 0, NULL, 0};
    optind = 1;
    while ((code = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        const struct cli_option *opt = NULL;
        for (size_t i = 0; i < NOPTIONS && !opt; i++)
            if (options[i].code == code && (options[i].commands & command))
                opt = &options[i];
        if (code == 'h') {
            usage(stdout, command, synopsis, about);
            return CLI_HELP;
        }
        if (!opt) { /* getopt said which */
            usage(stderr, command, synopsis, about);
            return CLI_USAGE;
        }
        if (!take(o, opt, optarg)) {
            out_printf(stderr, "cacreg: --%s: '%s' is not of the right form\n", opt->name,
                    optarg ? optarg : "");
            return CLI_USAGE;
        }
    }
    if (optind < argc) {
        out_printf(stderr, "cacreg: unexpected argument '%s'\n", argv[optind]);
        usage(stderr, command, synopsis, about);
        return CLI_USAGE;
    }
    for (size_t i = 0; i < NOPTIONS; i++)
        if ((options[i].required & command) && !given(o, options[i].code)) {
            out_printf(stderr, "cacreg: --%s is needed here\n", options[i].name);
            usage(stderr, command, synopsis, about);
            return CLI_USAGE;
        }
    if (o->kiosk && (o->config || o->nset > 0)) {
        out_printf(stderr, "cacreg: --kiosk takes its settings from %s only; --config and "
                        "options that change settings are refused\n",
                CACREG_CONFIG_SYSTEM);
        return CLI_USAGE;
    }
    if (o->kiosk && cacreg_clean_environment() != CACREG_OK) {
        out_printf(stderr, "cacreg: the environment cannot be cleared for the kiosk\n");
        return CLI_USAGE;
    }
    if (!configure(o, cfg))
        return CLI_USAGE;
    if (o->kiosk)
        cacreg_config_lock_down(cfg);
    return CLI_OK;
}

int cli_command(unsigned command, int argc, char **argv, const char *synopsis, const char *about,
                int (*run)(cacreg_engine *e, const struct cli_opts *o, const cacreg_config *cfg))
{
    struct cli_opts o;
    cacreg_config cfg;
    cacreg_engine *e = NULL;
    int code = cli_parse(command, argc, argv, synopsis, about, &o, &cfg);

    if (code != CLI_OK)
        return code == CLI_HELP ? CLI_OK : code;
    if (!cli_signals_block()) {
        out_printf(stderr, "cacreg: cannot set up signal handling\n");
        return CLI_USAGE;
    }
    code = cli_engine_new(&e, &cfg);
    if (code != CLI_OK)
        return code;
    code = run(e, &o, &cfg);
    if (cli_interrupted()) {
        code = 128 + cli_interrupted();
        out_printf(stderr, "cacreg: interrupted; the session was ended and the card reset\n");
    }
    /* The session ends: logout, the card's login dropped, the card reset. A signal
     * leaves half a second for it, so that the whole exit stays within a second. */
    cacreg_engine_end(e, cli_interrupted() ? 500 : 2000);
    fflush(stdout);
    if (!cacreg_engine_free(e))
        _exit(code); /* a thread stuck in a card call: the secrets are wiped */
    return code;
}

/* The terminating signals, read from a descriptor: the loops see them with their events. */
static int signal_fd = -1;
static int signal_seen;

bool cli_signals_block(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    sigset_t set;

    sigemptyset(&set);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&set, sigs[i]);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
        return false;
    signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    return signal_fd >= 0;
}

int cli_signal_fd(void)
{
    return signal_fd;
}

int cli_interrupted(void)
{
    struct signalfd_siginfo si;

    if (!signal_seen && signal_fd >= 0 && read(signal_fd, &si, sizeof si) == (ssize_t)sizeof si)
        signal_seen = (int)si.ssi_signo;
    return signal_seen;
}

cacreg_err cli_run_job(cacreg_worker *w, int events_rd, cacreg_job_fn fn, void *arg, int wait_ms)
{
    long long end = now_ms() + wait_ms;
    int id = cacreg_worker_submit(w, fn, arg);
    cacreg_event ev;

    if (id < 0)
        return CACREG_ERR_SYSTEM;
    for (;;) {
        struct pollfd pfd[2] = {{.fd = events_rd, .events = POLLIN},
                                {.fd = signal_fd, .events = POLLIN}};
        long long left = end - now_ms();

        if (left <= 0)
            return CACREG_ERR_TIMEOUT;
        if (poll(pfd, 2, (int)left) < 0 && errno != EINTR)
            return CACREG_ERR_SYSTEM;
        if (cli_interrupted())
            return CACREG_ERR_CANCELLED;
        while (cacreg_event_read(events_rd, &ev) == CACREG_OK)
            if (ev.type == CACREG_EV_JOB_DONE && ev.job == id)
                return ev.status;
    }
}

void cli_wait_pcsc(cacreg_watcher *w, int wait_ms)
{
    for (int waited = 0; waited < wait_ms && !cli_interrupted(); waited += 20) {
        cacreg_readers r;
        cacreg_watcher_snapshot(w, &r);
        /* UP is final; DOWN may turn into DENIED on the watcher's second try. */
        if (r.status == CACREG_PCSC_UP || r.status == CACREG_PCSC_DENIED ||
            (r.status != CACREG_PCSC_STARTING && waited >= 1000))
            break;
        nanosleep(&(struct timespec){.tv_nsec = 20000000}, NULL);
    }
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
        struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN},
                                {.fd = signal_fd, .events = POLLIN}};
        ssize_t n;

        if (poll(pfd, 2, idle_s * 1000) == 0) {
            cacreg_secret_clear(s); /* left alone: nothing typed is kept */
            *idle = true;
            break;
        }
        if (cli_interrupted()) { /* Ctrl-C at the prompt: the echo comes back below */
            cacreg_secret_clear(s);
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

static void trace_to_stderr(const char *line, void *ctx)
{
    (void)ctx;
    out_printf(stderr, "cacreg: flow: %s\n", line);
}

int cli_engine_new(cacreg_engine **e, const cacreg_config *cfg)
{
    char err[512] = "";

    if (cacreg_engine_new(e, cfg, err, sizeof err) == CACREG_OK) {
        if (getenv("CACREG_TRACE"))
            cacreg_flow_trace(cacreg_engine_flow(*e), trace_to_stderr, NULL);
        return CLI_OK;
    }
    out_printf(stderr, "cacreg: %s\n", err);
    return CLI_USAGE;
}

bool cli_flow_wait(cacreg_engine *e, bool (*busy)(const cacreg_flow_state *), int wait_ms)
{
    const cacreg_flow *f = cacreg_engine_flow(e);
    long long end = now_ms() + wait_ms;

    cacreg_engine_handle(e);
    while (busy(cacreg_flow_state_get(f))) {
        struct pollfd pfd[2] = {{.fd = cacreg_engine_fd(e), .events = POLLIN},
                                {.fd = signal_fd, .events = POLLIN}};
        long long left = end - now_ms();
        int t = cacreg_flow_timeout_ms(f);

        if (wait_ms >= 0 && left <= 0)
            return false;
        if (wait_ms >= 0 && (t < 0 || t > left))
            t = (int)left;
        if (poll(pfd, 2, t) < 0 && errno != EINTR)
            return false;
        if (cli_interrupted())
            return false;
        cacreg_engine_handle(e);
    }
    return true;
}

static bool working(const cacreg_flow_state *s)
{
    return cacreg_step_working(s->step);
}

bool cli_flow_settle(cacreg_engine *e)
{
    return cli_flow_wait(e, working, -1) && !cli_interrupted();
}

/* Still finding out whether the module loads and pcscd answers. */
static long long settle_start;
static bool settling(const cacreg_flow_state *s)
{
    /* UP is final; DOWN may turn into DENIED on the watcher's second try. */
    return s->module == CACREG_MODULE_LOADING || s->readers.status == CACREG_PCSC_STARTING ||
           (s->readers.status == CACREG_PCSC_DOWN && now_ms() - settle_start < 1000);
}

static bool no_card(const cacreg_flow_state *s)
{
    return !s->reader[0] && s->readers.status == CACREG_PCSC_UP;
}

int cli_flow_card(cacreg_engine *e, int wait_ms, int card_wait_ms)
{
    const cacreg_flow_state *s = cacreg_flow_state_get(cacreg_engine_flow(e));

    settle_start = now_ms();
    /* Polled rather than woken: DOWN's second look is a matter of time, not of an event. */
    /* pcscd gets 3 s to answer; the module as long as a card job may take (loading it
     * reads the cards in the readers, at a card's pace), and so does the first look at a
     * forwarded card's slots (each goes through ssh to OpenSC on the card's computer). */
    while (settling(s) && !cli_interrupted() &&
           (now_ms() - settle_start < 3000 ||
            ((s->module == CACREG_MODULE_LOADING ||
              (s->readers.forwarded && s->readers.status == CACREG_PCSC_STARTING)) &&
             now_ms() - settle_start < card_wait_ms)))
        cli_flow_wait(e, settling, 50);
    if (cli_interrupted())
        return CLI_INTERRUPTED;
    if (s->module != CACREG_MODULE_LOADED) {
        cli_say((cacreg_diagnosis){"No PKCS#11 module.", ""}, s->module_error);
        return CLI_MIDDLEWARE;
    }
    if (s->readers.status != CACREG_PCSC_UP && s->readers.forwarded) {
        cli_say((cacreg_diagnosis){"The card forwarded from your computer cannot be reached.",
                                   "Start again with 'cacreg ssh' from your computer."},
                s->readers.detail);
        return CLI_MIDDLEWARE;
    }
    if (s->readers.status != CACREG_PCSC_UP) {
        cli_say((cacreg_diagnosis){"The smart-card service is not available.",
                                   "Run 'cacreg status' for details."},
                s->readers.detail);
        return CLI_MIDDLEWARE;
    }
    cli_flow_wait(e, no_card, wait_ms);
    if (cli_interrupted())
        return CLI_INTERRUPTED;
    if (!s->reader[0]) {
        cli_say((cacreg_diagnosis){"No card is in a reader.", "Insert your CAC."}, NULL);
        return CLI_NO_CARD;
    }
    return CLI_OK;
}

int cli_exit_for(cacreg_fail fail)
{
    switch (fail) {
    case CACREG_FAIL_NONE:
        return CLI_OK;
    case CACREG_FAIL_NO_CARD:
        return CLI_NO_CARD;
    case CACREG_FAIL_MIDDLEWARE:
        return CLI_MIDDLEWARE;
    case CACREG_FAIL_CARD:
        return CLI_CARD;
    case CACREG_FAIL_INPUT:
    case CACREG_FAIL_IDLE:
        return CLI_USAGE;
    case CACREG_FAIL_REFUSED:
        return CLI_REFUSED;
    case CACREG_FAIL_PORTAL:
        break;
    }
    return CLI_PORTAL;
}

void cli_say(cacreg_diagnosis d, const char *detail)
{
    out_printf(stdout, "%s\n", d.cause);
    if (d.steps && d.steps[0])
        out_printf(stdout, "%s\n", d.steps);
    if (detail && detail[0] && strcmp(detail, d.cause) != 0)
        out_printf(stdout, "(%s)\n", detail);
}

int cli_stopped(const cacreg_flow_state *s)
{
    const cacreg_problem *p = s->step == CACREG_STEP_START ? &s->notice : &s->problem;
    const cacreg_portal_result *r = &s->last;

    if (!p->diagnosis.cause)
        return CLI_OK;
    cli_say(p->diagnosis, p->detail);
    if (p->clock[0])
        out_printf(stdout, "%s\n", p->clock);
    if (p->err == CACREG_ERR_PIN_WRONG && s->tries_left == 1)
        out_printf(stdout, "1 try left before the card locks.\n");
    else if (p->err == CACREG_ERR_PIN_WRONG && s->tries_left > 1)
        out_printf(stdout, "%d tries left.\n", s->tries_left);
    if (p->stage == CACREG_STAGE_PORTAL && r->attempts_left >= 0 &&
        r->reason == CACREG_PORTAL_INVALID_CREDENTIALS)
        out_printf(stdout, "%d attempts left before the account locks.\n", r->attempts_left);
    return cli_exit_for(p->fail);
}
