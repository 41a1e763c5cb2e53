/*
 * `cacreg` with no command: the full-screen front end. One loop waits in
 * poll() on the keyboard, the engine's event pipe and a signal self-pipe,
 * with the flow's timer (and, only while something is in progress, the
 * progress indicator's tick) as its timeout. Keys go to the fields, then to
 * the screen's key table; the screen is drawn once per pass when the flow's
 * state or our own changed.
 */
#define _GNU_SOURCE
#define _XOPEN_SOURCE_EXTENDED 1
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "cli.h"
#include "tui.h"
#include "out.h"

static int signal_pipe[2] = {-1, -1};
static volatile sig_atomic_t curses_on;

static void on_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    int saved = errno;

    if (write(signal_pipe[1], &b, 1) != 1) {
        /* the pipe is full: a quit is already on its way */
    }
    errno = saved;
}

/* A crash still gives the terminal back before the process goes. */
static void on_fatal(int sig)
{
    if (curses_on)
        endwin();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void restore_terminal(void)
{
    if (curses_on) {
        curses_on = 0;
        endwin();
    }
}

static bool setup_signals(void)
{
    struct sigaction sa;
    static const int quit_sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM};
    static const int fatal_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return false;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    for (size_t i = 0; i < sizeof quit_sigs / sizeof quit_sigs[0]; i++)
        sigaction(quit_sigs[i], &sa, NULL);
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_RESETHAND;
    for (size_t i = 0; i < sizeof fatal_sigs / sizeof fatal_sigs[0]; i++)
        sigaction(fatal_sigs[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return true;
}

/* The colour scheme, or the monochrome one (no colours, or NO_COLOR set). */
static void setup_scheme(struct tui *t, bool mono)
{
    static const struct {
        short fg, bg;
        int extra;
    } colours[ROLE_COUNT] = {
        [ROLE_NORMAL] = {-1, -1, 0},
        [ROLE_TITLE] = {COLOR_WHITE, COLOR_BLUE, A_BOLD},
        [ROLE_KEYS] = {COLOR_BLACK, COLOR_CYAN, 0},
        [ROLE_GOOD] = {COLOR_GREEN, -1, 0}, /* colour alone: cheap to switch on and off */
        [ROLE_BAD] = {COLOR_RED, -1, A_BOLD},
        [ROLE_WARN] = {COLOR_YELLOW, -1, A_BOLD},
        [ROLE_SELECT] = {COLOR_BLACK, COLOR_WHITE, 0},
        [ROLE_FIELD] = {-1, -1, 0},
        [ROLE_DIM] = {-1, -1, 0},
    };
    /* Plain roles stay A_NORMAL, not a pair of default colours: a character typed
     * into a field is then one byte to the terminal, with no attribute around it. */
    static const bool plain_role[ROLE_COUNT] = {[ROLE_NORMAL] = true, [ROLE_FIELD] = true,
                                                [ROLE_DIM] = true};
    static const int plain[ROLE_COUNT] = {
        [ROLE_NORMAL] = A_NORMAL, [ROLE_TITLE] = A_REVERSE, [ROLE_KEYS] = A_REVERSE,
        [ROLE_GOOD] = A_BOLD,     [ROLE_BAD] = A_BOLD,      [ROLE_WARN] = A_BOLD,
        [ROLE_SELECT] = A_REVERSE, [ROLE_FIELD] = A_NORMAL, [ROLE_DIM] = A_NORMAL,
    };

    if (mono || getenv("NO_COLOR") || !has_colors() || start_color() != OK) {
        memcpy(t->attr, plain, sizeof plain);
        return;
    }
    use_default_colors();
    for (int r = 0; r < ROLE_COUNT; r++) {
        init_pair((short)(r + 1), colours[r].fg, colours[r].bg);
        t->attr[r] = plain_role[r] ? (int)A_NORMAL : (int)COLOR_PAIR(r + 1) | colours[r].extra;
    }
}

/* ---- keys ---- */

#define CTRL(c) ((c) & 0x1f)

/* A key as the screens name it: a lower-case character or a K_* code. */
static int key_of(int kind, wint_t wc)
{
    static const struct {
        wint_t code;
        int key;
    } codes[] = {{KEY_ENTER, K_ENTER}, {KEY_UP, K_UP},         {KEY_DOWN, K_DOWN},
                 {KEY_BTAB, K_TAB},    {KEY_BACKSPACE, K_BACKSPACE}, {KEY_PPAGE, K_PAGE_UP},
                 {KEY_NPAGE, K_PAGE_DOWN}, {KEY_F(1), K_F1}};

    if (kind == KEY_CODE_YES) {
        for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
            if (codes[i].code == wc)
                return codes[i].key;
        return K_OTHER;
    }
    switch (wc) {
    case '\r':
    case '\n':
        return K_ENTER;
    case 27:
        return K_ESC;
    case '\t':
        return K_TAB;
    case 0x7f:
    case CTRL('h'):
        return K_BACKSPACE;
    case CTRL('p'):
        return K_UP;
    case CTRL('n'):
        return K_DOWN;
    default:
        break;
    }
    return wc >= 'A' && wc <= 'Z' ? (int)(wc - 'A' + 'a') : (int)wc;
}

/* The vi movement keys, where no field takes letters. */
static int alias(int key)
{
    return key == 'k' ? K_UP : key == 'j' ? K_DOWN : key;
}

/* The front end's own state for the step the flow is at now, and its fields. */
static void sync_screen(struct tui *t)
{
    const cacreg_flow_state *s = t->s;

    if (s->step != t->step_seen) {
        if (s->step == CACREG_STEP_CHOOSE_CERT)
            t->cert = s->chosen < s->info.ncerts ? s->chosen : 0;
        if (s->step == CACREG_STEP_START) {
            t->menu = 0;
            t->username[0] = '\0'; /* nothing of the last person's stays */
        }
        if (s->step == CACREG_STEP_RESET) /* an expired password's hand-off brings its name */
            snprintf(t->username, sizeof t->username, "%s", s->username);
        t->step_seen = s->step;
        t->dirty = true;
    }
    tui_form_sync(t);
}

/* The START menu's ways in, counted. */
static int menu_lines(const struct tui_screen *sc)
{
    int n = 0;

    for (const struct tui_key *k = sc->keys; k->key; k++)
        n += k->menu != NULL;
    return n;
}

static void run_key(struct tui *t, const struct tui_screen *sc, const struct tui_key *k)
{
    const cacreg_flow_state *s = t->s;
    int lines = menu_lines(sc), line = 0;

    switch (k->op) {
    case OP_ACT:
        t->hint[0] = '\0';
        if (!cacreg_flow_do(t->flow, k->act))
            tui_hint(t, "That key does nothing here.");
        if (s->card_stuck && s->step == CACREG_STEP_START)
            t->quit = true, t->exit_code = CLI_CARD; /* no card job can run here any more */
        break;
    case OP_HELP:
        t->help = true;
        break;
    case OP_QUIT:
        t->quit = !t->kiosk;
        break;
    case OP_UP:
    case OP_DOWN:
        if (s->step == CACREG_STEP_CHOOSE_CERT) {
            if (k->op == OP_UP && t->cert > 0)
                t->cert--;
            else if (k->op == OP_DOWN && t->cert + 1 < s->info.ncerts)
                t->cert++;
        } else if (lines > 0) {
            t->menu = (t->menu + (k->op == OP_UP ? lines - 1 : 1)) % lines;
        }
        break;
    case OP_SELECT:
        for (const struct tui_key *m = sc->keys; m->key; m++)
            if (m->menu && line++ == t->menu) {
                run_key(t, sc, m);
                break;
            }
        break;
    case OP_CHOOSE:
        cacreg_flow_act(t->flow, (cacreg_action){.kind = CACREG_ACT_CHOOSE, .cert = t->cert});
        break;
    case OP_SUBMIT:
        t->hint[0] = '\0';
        cacreg_flow_act(t->flow, (cacreg_action){.kind = CACREG_ACT_SUBMIT,
                                                 .username = t->username});
        break;
    }
    t->dirty = true;
}

static void on_key(struct tui *t, int kind, wint_t wc)
{
    const struct tui_screen *sc;
    int key = key_of(kind, wc);

    /* Keys typed ahead go to the step they were typed for: a step that changed
     * on the last key gets its fields first. */
    sync_screen(t);
    cacreg_flow_touch(t->flow);
    if (kind == KEY_CODE_YES && wc == KEY_RESIZE) {
        tui_layout(&t->layout, LINES, COLS);
        t->dirty = true;
        return;
    }
    if (kind == OK && wc == CTRL('l')) {
        clearok(curscr, TRUE);
        t->dirty = true;
        return;
    }
    if (kind == OK && wc == CTRL('c') && !t->kiosk) {
        t->quit = true;
        return;
    }
    if (t->burst_refused && kind == OK && wc >= 0x20 && wc != 0x7f)
        return; /* the rest of a paste that ran over the field */
    t->burst_refused = false; /* any other key is the person again */
    if (t->help) {
        tui_help_key(t, alias(key));
        return;
    }
    if (key == K_F1 && !t->form) {
        t->help = true;
        t->dirty = true;
        return;
    }
    if (tui_form_key(t, kind, wc, key))
        return;
    key = t->form ? key : alias(key);
    sc = tui_screen(t);
    for (const struct tui_key *k = sc->keys; k->key; k++)
        if (k->key == key) {
            run_key(t, sc, k);
            return;
        }
}

/* ---- the loop ---- */

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* The kiosk's audit trail: a line when the person's session gets its result. */
static void audit_steps(struct tui *t)
{
    const cacreg_flow_state *s = t->s;

    if (!t->audit || s->step == t->audited)
        return;
    if (s->step == CACREG_STEP_DONE || s->step == CACREG_STEP_FAILED)
        audit_result(s);
    else if (s->step == CACREG_STEP_REGISTRATION && s->notice.diagnosis.cause &&
             s->notice.diagnosis.cause == cacreg_diagnose_say(CACREG_SAY_CLEARED).cause)
        audit_cleared();
    t->audited = s->step;
}

/* --once's exit statuses: how the person's session ended, for the kiosk launcher. */
enum {
    ONCE_DONE = 0,    /* done: logged in, registered, asked for a password */
    ONCE_IDLE = 7,    /* left alone */
    ONCE_LEFT = 8,    /* back at the start without a result (Esc, next person) */
};

/* --once: ends the program when the person's session is over, with how it ended. */
static void once_check(struct tui *t, int idle_s)
{
    const cacreg_flow_state *s = t->s;

    if (!t->once)
        return;
    if (s->reader[0])
        t->had_card = true;
    if (s->step != CACREG_STEP_START) {
        t->left_start = true;
        t->done_seen = t->done_seen || s->step == CACREG_STEP_DONE;
        if (s->step == CACREG_STEP_FAILED && s->problem.fail != CACREG_FAIL_NONE)
            t->fail_seen = s->problem.fail;
        t->start_deadline = 0;
        return;
    }
    if (t->left_start) {
        t->exit_code = t->done_seen                 ? ONCE_DONE
                       : t->fail_seen               ? cli_exit_for(t->fail_seen)
                       : s->notice.fail == CACREG_FAIL_IDLE ? ONCE_IDLE
                       : s->notice.fail             ? cli_exit_for(s->notice.fail)
                                                    : ONCE_LEFT;
        t->quit = true;
    } else if (t->had_card && !s->reader[0]) {
        t->exit_code = CLI_NO_CARD; /* pulled before anything was done */
        t->quit = true;
    } else if (!t->start_deadline) {
        t->start_deadline = now_ms() + idle_s * 1000LL;
    } else if (now_ms() >= t->start_deadline) {
        t->exit_code = ONCE_IDLE;
        t->quit = true;
    }
}

static void loop(struct tui *t, int idle_s)
{
    long long last_key = 0;

    while (!t->quit) {
        struct pollfd pfd[3] = {{.fd = STDIN_FILENO, .events = POLLIN},
                                {.fd = cacreg_engine_fd(t->engine), .events = POLLIN},
                                {.fd = signal_pipe[0], .events = POLLIN}};
        int timeout = cacreg_flow_timeout_ms(t->flow);
        bool working = cacreg_step_working(t->s->step);
        int kind, n;
        wint_t wc;

        sync_screen(t);
        audit_steps(t);
        once_check(t, idle_s);
        if (t->quit)
            break;
        if (t->start_deadline) { /* --once at START: its own idle clock */
            long long left = t->start_deadline - now_ms();
            if (timeout < 0 || left < timeout)
                timeout = left < 0 ? 0 : (int)left;
        }
        if (t->dirty || t->s->generation != t->drawn) {
            tui_draw(t);
            t->drawn = t->s->generation;
            t->dirty = false;
        }
        if (working && (timeout < 0 || timeout > 150))
            timeout = 150; /* the progress indicator turns only while work is in progress */
        n = poll(pfd, 3, timeout);
        if (n < 0 && errno != EINTR)
            break;
        if (pfd[2].revents & POLLIN)
            break; /* a terminating signal: restore the terminal, wipe, go */
        cacreg_engine_handle(t->engine);
        if (n == 0 && working) {
            t->spin++;
            t->dirty = true;
        }
        if (pfd[0].revents & (POLLHUP | POLLERR))
            break; /* the terminal went away */
        while ((kind = get_wch(&wc)) != ERR && !t->quit) {
            long long now = now_ms();
            /* A paste arrives as one stream of keys; a pause ends it. */
            if (now - last_key > 100)
                t->burst_refused = false;
            last_key = now;
            if (t->start_deadline) /* a key at START: the person is there */
                t->start_deadline = now + idle_s * 1000LL;
            on_key(t, kind, wc);
        }
    }
}

/* The terminal, before any thread starts: false (said on stderr) when it cannot be used. */
static bool setup_terminal(struct tui *t)
{
    SCREEN *screen = tui_term_known() ? newterm(NULL, stdout, stdin) : NULL;

    if (!screen) {
        out_printf(stderr, "cacreg: this terminal (TERM=%s) is not known here; try TERM=xterm or "
                        "TERM=vt100, or use the headless commands (cacreg --help).\n",
                getenv("TERM") ? getenv("TERM") : "");
        return false;
    }
    set_term(screen);
    curses_on = 1;
    raw(); /* ^C, ^Z and ^\ are keys: a kiosk has no way out to a shell */
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(25);
    curs_set(0);
    leaveok(stdscr, TRUE); /* the cursor shows only in a field: never moved for nothing */
    setup_scheme(t, t->mono);
    tui_layout(&t->layout, LINES, COLS);
    return true;
}

int tui_main(int argc, char **argv)
{
    static const char synopsis[] = "cacreg [options]";
    static const char about[] =
        "The full-screen front end: log in with the CAC, or with a username and\n"
        "password and register the CAC; keyboard only.\n";
    static struct tui t;
    struct cli_opts o;
    cacreg_config cfg;
    char err[512] = "";
    const char *codeset;
    int code, saved_err = -1;

    t.field_of[FIELD_USER] = t.field_of[FIELD_SECRET] = -1;
    t.form_step = CACREG_STEP_COUNT;
    t.step_seen = CACREG_STEP_COUNT;
    setlocale(LC_ALL, "");
    codeset = nl_langinfo(CODESET);
    if (!codeset || strcmp(codeset, "UTF-8") != 0)
        t.ascii = true;
    code = cli_parse(CMD_TUI, argc, argv, synopsis, about, &o, &cfg);
    if (code != CLI_OK)
        return code == CLI_HELP ? CLI_OK : code;
    t.kiosk = o.kiosk;
    t.once = o.once;
    t.audit = o.kiosk;
    t.audited = CACREG_STEP_START;
    if (t.audit)
        audit_open(cfg.audit_identity);
    t.mono = o.mono;
    t.ascii = t.ascii || o.ascii;
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        out_printf(stderr, "cacreg: the full-screen front end needs a terminal; "
                        "see 'cacreg --help' for the headless commands.\n");
        return CLI_USAGE;
    }
    if (!setup_signals()) {
        out_printf(stderr, "cacreg: cannot set up signal handling\n");
        return CLI_USAGE;
    }
    atexit(restore_terminal);
    if (!setup_terminal(&t))
        return CLI_USAGE;
    if (isatty(STDERR_FILENO)) {
        /* Libraries (libp11, OpenSC) print to stderr: not over the screen. */
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        saved_err = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        if (null >= 0) {
            dup2(null, STDERR_FILENO);
            close(null);
        }
    }
    if (cacreg_engine_new(&t.engine, &cfg, err, sizeof err) != CACREG_OK) {
        restore_terminal();
        if (saved_err >= 0)
            dup2(saved_err, STDERR_FILENO);
        out_printf(stderr, "cacreg: %s\n", err);
        return CLI_USAGE;
    }
    t.flow = cacreg_engine_flow(t.engine);
    t.s = cacreg_flow_state_get(t.flow);
    t.dirty = true;
    loop(&t, cfg.idle_timeout_s);
    tui_form_free(&t);
    restore_terminal();
    /* The session ends as the next person's start would: logout, the card reset. Half a
     * second for it, so that a signal's exit stays within a second. */
    cacreg_engine_end(t.engine, 500);
    if (!cacreg_engine_free(t.engine))
        _exit(t.exit_code); /* a thread stuck in a card call: the secrets are wiped */
    if (saved_err >= 0)
        close(saved_err);
    return t.exit_code;
}
