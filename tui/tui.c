/*
 * `cacreg` with no command: the full-screen front end. One loop waits in
 * poll() on the keyboard, the flow's event pipe and a signal self-pipe, with
 * the flow's idle deadline (and, only while something is in progress, the
 * progress indicator's tick) as its timeout. Keys become flow actions; the
 * screen is drawn when the flow's state or our own changed.
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
#include <wchar.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "tui.h"

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
    static const int quit_sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};
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
        [ROLE_GOOD] = {COLOR_GREEN, -1, A_BOLD},
        [ROLE_BAD] = {COLOR_RED, -1, A_BOLD},
        [ROLE_WARN] = {COLOR_YELLOW, -1, A_BOLD},
        [ROLE_SELECT] = {COLOR_BLACK, COLOR_WHITE, 0},
        [ROLE_FIELD] = {-1, -1, A_UNDERLINE},
        [ROLE_DIM] = {-1, -1, 0},
    };
    static const int plain[ROLE_COUNT] = {
        [ROLE_NORMAL] = A_NORMAL, [ROLE_TITLE] = A_REVERSE, [ROLE_KEYS] = A_REVERSE,
        [ROLE_GOOD] = A_BOLD,     [ROLE_BAD] = A_BOLD,      [ROLE_WARN] = A_BOLD,
        [ROLE_SELECT] = A_REVERSE, [ROLE_FIELD] = A_UNDERLINE, [ROLE_DIM] = A_NORMAL,
    };

    if (mono || getenv("NO_COLOR") || !has_colors() || start_color() != OK) {
        memcpy(t->attr, plain, sizeof plain);
        return;
    }
    use_default_colors();
    for (int r = 0; r < ROLE_COUNT; r++) {
        init_pair((short)(r + 1), colours[r].fg, colours[r].bg);
        t->attr[r] = (int)COLOR_PAIR(r + 1) | colours[r].extra;
    }
}

/* ---- the form ---- */

void tui_form_free(struct tui *t)
{
    if (t->form) {
        unpost_form(t->form);
        free_form(t->form);
        t->form = NULL;
    }
    for (int i = 0; i < FIELD_MAX; i++) {
        if (t->fields[i])
            free_field(t->fields[i]); /* the masked field held only '*' */
        t->fields[i] = NULL;
    }
    if (t->form_win) {
        delwin(t->form_win);
        t->form_win = NULL;
    }
    t->field_of[FIELD_USER] = t->field_of[FIELD_SECRET] = -1;
    t->form_step = CACREG_STEP_START;
}

static bool step_has_user(cacreg_step s)
{
    return s == CACREG_STEP_CREDENTIALS || s == CACREG_STEP_RESET;
}

static bool step_has_secret(cacreg_step s)
{
    return s == CACREG_STEP_CREDENTIALS || s == CACREG_STEP_PIN ||
           s == CACREG_STEP_CONFIRM_PASSWORD;
}

static int secret_width(const struct tui *t)
{
    return t->s->step == CACREG_STEP_PIN ? 8 : 32;
}

/* Shows as many '*' as the secret has characters; the secret stays in the core. */
static void show_stars(struct tui *t)
{
    char stars[40];
    cacreg_secret *sec = cacreg_flow_secret(t->flow);
    size_t n = 0, len = sec ? cacreg_secret_len(sec) : 0;
    const char *d = sec ? cacreg_secret_data(sec) : "";

    for (size_t i = 0; i < len && n < (size_t)secret_width(t); i++)
        if (((unsigned char)d[i] & 0xC0) != 0x80) /* one star per character */
            stars[n++] = '*';
    stars[n] = '\0';
    if (t->field_of[FIELD_SECRET] >= 0)
        set_field_buffer(t->fields[t->field_of[FIELD_SECRET]], 0, stars);
}

static void focus_field(struct tui *t, int which)
{
    if (t->field_of[which] < 0)
        return;
    t->focus = which;
    set_current_field(t->form, t->fields[t->field_of[which]]);
    form_driver(t->form, REQ_END_LINE);
}

void tui_form_sync(struct tui *t)
{
    cacreg_step step = t->s->step;
    int n = 0, row = 0, width = 34;

    if (t->help || (!step_has_user(step) && !step_has_secret(step))) {
        tui_form_free(t);
        return;
    }
    if (t->form && t->form_step == step) {
        int y, x;
        getbegyx(t->form_win, y, x);
        if (y == t->form_y && x == t->form_x)
            return;
    }
    if (t->form_step != step) {
        t->focus = step_has_user(step) ? FIELD_USER : FIELD_SECRET;
        if (step == CACREG_STEP_CREDENTIALS && t->username[0])
            t->focus = FIELD_SECRET; /* back after a wrong password: the username stays */
    }
    tui_form_free(t);
    if (step_has_user(step)) {
        t->fields[n] = new_field(1, 32, row, 0, 0, 0);
        set_field_buffer(t->fields[n], 0, t->username);
        t->field_of[FIELD_USER] = n++;
        row += 2;
    }
    if (step_has_secret(step)) {
        t->fields[n] = new_field(1, secret_width(t), row, 0, 0, 0);
        field_opts_off(t->fields[n], O_EDIT); /* keys go to the core's locked buffer */
        t->field_of[FIELD_SECRET] = n++;
        row++;
    }
    t->fields[n] = NULL;
    for (int i = 0; i < n; i++) {
        if (!t->fields[i]) {
            tui_form_free(t);
            return;
        }
        field_opts_off(t->fields[i], O_AUTOSKIP | O_BLANK);
        set_field_back(t->fields[i], (chtype)t->attr[ROLE_FIELD]);
        set_field_fore(t->fields[i], (chtype)t->attr[ROLE_FIELD]);
    }
    t->form = new_form(t->fields);
    t->form_win = newwin(row, width, t->form_y, t->form_x);
    if (!t->form || !t->form_win) {
        tui_form_free(t);
        return;
    }
    t->form_step = step;
    set_form_win(t->form, t->form_win);
    set_form_sub(t->form, t->form_win);
    post_form(t->form);
    show_stars(t);
    focus_field(t, t->focus);
}

/* Reads the username field back after an edit. */
static void read_user_field(struct tui *t)
{
    const char *buf;
    size_t len;

    form_driver(t->form, REQ_VALIDATION);
    buf = field_buffer(t->fields[t->field_of[FIELD_USER]], 0);
    len = buf ? strlen(buf) : 0;
    while (len > 0 && buf[len - 1] == ' ')
        len--;
    if (len >= sizeof t->username)
        len = sizeof t->username - 1;
    memcpy(t->username, buf ? buf : "", len);
    t->username[len] = '\0';
}

static void hint(struct tui *t, const char *text)
{
    snprintf(t->hint, sizeof t->hint, "%s", text);
    t->dirty = true;
}

/* A character or an edit for the username field; past its 32 characters the field is cleared. */
static void type_user(struct tui *t, int kind, wint_t wc)
{
    int rc;

    if (kind == OK && (wc < 0x20 || wc == 0x7f))
        return;
    if (kind == OK && strlen(t->username) >= 32) {
        set_field_buffer(t->fields[t->field_of[FIELD_USER]], 0, "");
        t->username[0] = '\0';
        t->burst_refused = true;
        hint(t, "That was longer than a username can be; the field was cleared.");
        return;
    }
    rc = form_driver_w(t->form, kind, wc);
    if (rc != E_OK && rc != E_REQUEST_DENIED && rc != E_UNKNOWN_COMMAND)
        hint(t, "That key does nothing here.");
    read_user_field(t);
    t->dirty = true;
}

/* A character typed into the masked field: into the core's locked buffer. */
static void type_secret(struct tui *t, wint_t wc)
{
    cacreg_secret *sec = cacreg_flow_secret(t->flow);
    bool pin = t->s->step == CACREG_STEP_PIN;
    char mb[MB_LEN_MAX];
    mbstate_t ps;
    size_t n;

    if (!sec)
        return;
    if (pin && (wc < '0' || wc > '9')) {
        hint(t, "A PIN is digits only.");
        return;
    }
    if (pin && cacreg_secret_len(sec) >= 8) {
        cacreg_secret_clear(sec);
        t->burst_refused = true;
        hint(t, "A CAC PIN has at most 8 digits; what was typed was cleared.");
        show_stars(t);
        return;
    }
    memset(&ps, 0, sizeof ps);
    n = wcrtomb(mb, (wchar_t)wc, &ps);
    if (n == (size_t)-1 || cacreg_secret_append(sec, mb, n) != CACREG_OK) {
        cacreg_secret_clear(sec);
        t->burst_refused = true;
        hint(t, "That was longer than any password; what was typed was cleared.");
    }
    OPENSSL_cleanse(mb, sizeof mb);
    show_stars(t);
    t->dirty = true;
}

/* ---- keys ---- */

#define CTRL(c) ((c) & 0x1f)

static bool is_enter(int kind, wint_t wc)
{
    return (kind == OK && (wc == '\r' || wc == '\n')) || (kind == KEY_CODE_YES && wc == KEY_ENTER);
}

static bool is_backspace(int kind, wint_t wc)
{
    return (kind == OK && (wc == 0x7f || wc == CTRL('h'))) ||
           (kind == KEY_CODE_YES && wc == KEY_BACKSPACE);
}

static bool is_up(int kind, wint_t wc)
{
    return kind == KEY_CODE_YES ? wc == KEY_UP : wc == 'k' || wc == CTRL('p');
}

static bool is_down(int kind, wint_t wc)
{
    return kind == KEY_CODE_YES ? wc == KEY_DOWN : wc == 'j' || wc == CTRL('n');
}

static wint_t lower(int kind, wint_t wc)
{
    return kind == OK && wc >= 'A' && wc <= 'Z' ? wc - 'A' + 'a' : wc;
}

/* Keys while one of the step's fields has the focus. */
static void field_key(struct tui *t, int kind, wint_t wc)
{
    cacreg_secret *sec = cacreg_flow_secret(t->flow);
    bool two = t->field_of[FIELD_USER] >= 0 && t->field_of[FIELD_SECRET] >= 0;

    if (is_enter(kind, wc)) {
        if (two && t->focus == FIELD_USER) {
            focus_field(t, FIELD_SECRET);
        } else {
            t->hint[0] = '\0';
            cacreg_flow_submit(t->flow, t->username);
        }
        t->dirty = true;
    } else if (two && ((kind == OK && wc == '\t') || (kind == KEY_CODE_YES && (wc == KEY_DOWN || wc == KEY_BTAB || wc == KEY_UP)))) {
        focus_field(t, t->focus == FIELD_USER ? FIELD_SECRET : FIELD_USER);
        t->dirty = true;
    } else if (t->focus == FIELD_SECRET) {
        if (is_backspace(kind, wc) && sec) {
            cacreg_secret_backspace(sec);
            show_stars(t);
            t->dirty = true;
        } else if (kind == OK && wc == CTRL('u') && sec) {
            cacreg_secret_clear(sec);
            show_stars(t);
            t->dirty = true;
        } else if (kind == OK && wc >= 0x20 && wc != 0x7f) {
            type_secret(t, wc);
        }
    } else if (is_backspace(kind, wc)) {
        type_user(t, KEY_CODE_YES, REQ_DEL_PREV);
    } else if (kind == KEY_CODE_YES) {
        static const struct {
            wint_t key;
            int req;
        } edits[] = {{KEY_LEFT, REQ_PREV_CHAR}, {KEY_RIGHT, REQ_NEXT_CHAR},
                     {KEY_HOME, REQ_BEG_LINE},  {KEY_END, REQ_END_LINE},
                     {KEY_DC, REQ_DEL_CHAR}};
        for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++)
            if (edits[i].key == wc)
                type_user(t, KEY_CODE_YES, (wint_t)edits[i].req);
    } else if (wc == CTRL('u')) {
        type_user(t, KEY_CODE_YES, REQ_CLR_FIELD);
    } else {
        type_user(t, OK, wc);
    }
}

static void help_key(struct tui *t, int kind, wint_t wc)
{
    wint_t c = lower(kind, wc);

    if ((kind == OK && c == 27) || (kind == OK && c == 'q' && !t->help_open)) {
        if (t->help_open)
            t->help_open = false;
        else
            t->help = false;
    } else if (!t->help_open && is_up(kind, wc)) {
        t->help_topic = t->help_topic > 0 ? t->help_topic - 1 : (int)tui_help_count - 1;
    } else if (!t->help_open && is_down(kind, wc)) {
        t->help_topic = (t->help_topic + 1) % (int)tui_help_count;
    } else if (!t->help_open && kind == OK && c >= '1' && c < '1' + (wint_t)tui_help_count) {
        t->help_topic = (int)(c - '1');
        t->help_open = true;
        t->help_scroll = 0;
    } else if (!t->help_open && is_enter(kind, wc)) {
        t->help_open = true;
        t->help_scroll = 0;
    } else if (t->help_open && (is_up(kind, wc) || (kind == KEY_CODE_YES && wc == KEY_PPAGE))) {
        t->help_scroll = t->help_scroll > 0 ? t->help_scroll - (wc == KEY_PPAGE ? 10 : 1) : 0;
        if (t->help_scroll < 0)
            t->help_scroll = 0;
    } else if (t->help_open && (is_down(kind, wc) || (kind == KEY_CODE_YES && wc == KEY_NPAGE) ||
                                (kind == OK && wc == ' '))) {
        t->help_scroll += kind == OK && wc == ' ' ? 10 : wc == KEY_NPAGE ? 10 : 1;
    } else if (t->help_open && is_enter(kind, wc)) {
        t->help_open = false;
    }
    t->dirty = true;
}

static void start_key(struct tui *t, int kind, wint_t wc)
{
    static const wint_t letters[] = {'c', 'p', 'f', 'h'};
    wint_t c = lower(kind, wc);
    int pick = -1;

    if (is_up(kind, wc))
        t->menu = (t->menu + 3) % 4;
    else if (is_down(kind, wc))
        t->menu = (t->menu + 1) % 4;
    else if (is_enter(kind, wc))
        pick = t->menu;
    else if (kind == OK && c >= '1' && c <= '4')
        pick = (int)(c - '1');
    for (int i = 0; i < 4 && kind == OK; i++)
        if (c == letters[i])
            pick = i;
    if (kind == OK && c == 'q' && !t->kiosk)
        t->quit = true;
    t->dirty = true;
    if (pick < 0)
        return;
    t->menu = pick;
    t->hint[0] = '\0';
    if (pick == 0)
        cacreg_flow_cac_login(t->flow);
    else if (pick == 1)
        cacreg_flow_password_login(t->flow);
    else if (pick == 2)
        cacreg_flow_reset(t->flow);
    else
        t->help = true;
}

static void key(struct tui *t, int kind, wint_t wc)
{
    const cacreg_flow_state *s = t->s;
    wint_t c = lower(kind, wc);
    bool in_field;

    /* Keys typed ahead go to the step they were typed for: a step that changed
     * on the last key gets its screen (and its fields) first. */
    if (s->generation != t->drawn)
        tui_draw(t);
    in_field = t->form && !t->help;
    cacreg_flow_touch(t->flow);
    if (kind == KEY_CODE_YES && wc == KEY_RESIZE) {
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
    if (kind == KEY_CODE_YES && wc == KEY_F(1) && !in_field) {
        t->help = true;
        t->dirty = true;
        return;
    }
    if (t->help) {
        help_key(t, kind, wc);
        return;
    }
    if (kind == OK && wc == 27) { /* Esc: back, never out */
        t->hint[0] = '\0';
        if (step_has_user(s->step))
            t->username[0] = '\0';
        cacreg_flow_back(t->flow);
        t->dirty = true;
        return;
    }
    if (in_field) {
        field_key(t, kind, wc);
        return;
    }
    switch (s->step) {
    case CACREG_STEP_START:
        start_key(t, kind, wc);
        return;
    case CACREG_STEP_REGISTRATION:
        if (kind == OK && c == 'r')
            cacreg_flow_register(t->flow);
        else if (kind == OK && c == 'c' && !cacreg_flow_clear(t->flow))
            hint(t, "Nothing is registered to clear.");
        else if (kind == OK && c == 'l')
            cacreg_flow_back(t->flow);
        break;
    case CACREG_STEP_CONFIRM_CLEAR:
        if (kind == OK && (c == 'y' || c == 'n'))
            cacreg_flow_confirm(t->flow, c == 'y');
        break;
    case CACREG_STEP_CHOOSE_CERT:
        if (is_up(kind, wc) && t->cert > 0)
            t->cert--;
        else if (is_down(kind, wc) && t->cert + 1 < s->info.ncerts)
            t->cert++;
        else if (is_enter(kind, wc))
            cacreg_flow_choose(t->flow, t->cert);
        break;
    case CACREG_STEP_DONE:
        if (is_enter(kind, wc))
            cacreg_flow_restart(t->flow);
        break;
    case CACREG_STEP_FAILED:
        if (is_enter(kind, wc)) {
            cacreg_flow_back(t->flow);
        } else if (kind == OK && c == 'n' && strcmp(s->last.error, "password_expired") == 0) {
            cacreg_flow_restart(t->flow); /* the hand-off: ask for a new password */
            cacreg_flow_reset(t->flow);
        }
        break;
    default:
        break;
    }
    if (kind == OK && (c == 'h' || c == '?'))
        t->help = true;
    t->dirty = true;
}

/* ---- the loop ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: cacreg [--kiosk] [--mono] [--ascii] [--portal URL] [--config FILE]\n"
               "              [--ca-bundle FILE] [--crl FILE] [--ocsp URL] [--module PATH]\n"
               "              [--reader TEXT]\n"
               "The full-screen front end: log in with the CAC, or with a username and\n"
               "password and register the CAC; keyboard only. --mono: no colours (as\n"
               "NO_COLOR does); --ascii: ASCII line drawing; --kiosk: no way out, and\n"
               "only /etc's configuration.\n");
}

/* The front end's own options; ctx is the struct tui. */
static bool tui_option(int opt, const char *arg, void *ctx)
{
    struct tui *t = ctx;

    (void)arg;
    switch (opt) {
    case 'K':
        t->kiosk = true;
        return true;
    case 'M':
        t->mono = true;
        return true;
    case 'A':
        t->ascii = true;
        return true;
    default:
        return false;
    }
}

static void loop(struct tui *t)
{
    struct timespec last_key = {0, 0};

    while (!t->quit) {
        struct pollfd pfd[3] = {{.fd = STDIN_FILENO, .events = POLLIN},
                                {.fd = cacreg_flow_fd(t->flow), .events = POLLIN},
                                {.fd = signal_pipe[0], .events = POLLIN}};
        int timeout = cacreg_flow_timeout_ms(t->flow);
        int kind, n;
        wint_t wc;

        if (t->dirty || t->s->generation != t->drawn)
            tui_draw(t);
        if (t->s->step == CACREG_STEP_BUSY && (timeout < 0 || timeout > 150))
            timeout = 150; /* the progress indicator turns only while work is in progress */
        n = poll(pfd, 3, timeout);
        if (n < 0 && errno != EINTR)
            break;
        if (pfd[2].revents & POLLIN)
            break; /* a terminating signal: restore the terminal, wipe, go */
        cacreg_flow_handle(t->flow);
        if (n == 0 && t->s->step == CACREG_STEP_BUSY) {
            t->spin++;
            t->dirty = true;
        }
        if (pfd[0].revents & (POLLHUP | POLLERR))
            break; /* the terminal went away */
        while ((kind = get_wch(&wc)) != ERR && !t->quit) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            /* A paste arrives as one stream of keys; a pause ends it. */
            if ((now.tv_sec - last_key.tv_sec) * 1000 + (now.tv_nsec - last_key.tv_nsec) / 1000000 >
                100)
                t->burst_refused = false;
            last_key = now;
            key(t, kind, wc);
        }
    }
}

int tui_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"kiosk", no_argument, NULL, 'K'}, {"mono", no_argument, NULL, 'M'},
        {"ascii", no_argument, NULL, 'A'}, {"help", no_argument, NULL, 'h'},
        CLI_COMMON_OPTIONS,                {NULL, 0, NULL, 0},
    };
    static struct tui t;
    cacreg_config cfg;
    char err[512] = "";
    const char *codeset;
    int code;

    t.field_of[FIELD_USER] = t.field_of[FIELD_SECRET] = -1;
    setlocale(LC_ALL, "");
    codeset = nl_langinfo(CODESET);
    if (!codeset || strcmp(codeset, "UTF-8") != 0)
        t.ascii = true;
    code = cli_options(argc, argv, "h", opts, &cfg, usage, tui_option, &t);
    if (code != CLI_OK)
        return code == CLI_HELP ? CLI_OK : code;
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "cacreg: the full-screen front end needs a terminal; "
                        "see 'cacreg --help' for the headless commands.\n");
        return CLI_USAGE;
    }
    if (!setup_signals()) {
        fprintf(stderr, "cacreg: cannot set up signal handling\n");
        return CLI_USAGE;
    }
    if (cacreg_flow_new(&t.flow, &cfg, err, sizeof err) != CACREG_OK) {
        fprintf(stderr, "cacreg: %s\n", err);
        return CLI_USAGE;
    }
    t.s = cacreg_flow_state_get(t.flow);
    if (isatty(STDERR_FILENO)) {
        /* Libraries (libp11, OpenSC) print to stderr: not over the screen. */
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, STDERR_FILENO);
            close(null);
        }
    }
    atexit(restore_terminal);
    if (!initscr()) {
        cacreg_flow_free(t.flow);
        return CLI_USAGE;
    }
    curses_on = 1;
    raw(); /* ^C, ^Z and ^\ are keys: a kiosk has no way out to a shell */
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(25);
    curs_set(0);
    setup_scheme(&t, t.mono);
    t.dirty = true;
    loop(&t);
    tui_form_free(&t);
    restore_terminal();
    cacreg_flow_free(t.flow); /* wipes the PIN and password, logs the card out */
    return CLI_OK;
}
