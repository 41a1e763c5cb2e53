/*
 * cacreg-kiosk: a console (or an SSH forced command) as a walk-up CAC
 * registration station. Between people it shows the station's idle screen
 * (its name, the office's words, the readers' state, "out of service" with
 * what the operator should check); a card inserted starts the next person's
 * session as a fresh process (`cacreg --kiosk --once`, from an environment
 * built from nothing), so nothing of one person's memory can reach the next.
 * The launcher never holds a PIN, a password or a session token. A session
 * that dies is replaced at once; one stuck past session_timeout is killed; a
 * crash loop backs off and says so. Every event goes to the system log.
 * Only a signal from root (the service manager's SIGTERM) stops the station.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <ncurses.h>
#include <systemd/sd-daemon.h>

#include "parts.h"
#include "text.h"

#define KIOSK_CONFIG "/etc/cacreg/kiosk.conf"
#define CRASH_WINDOW_MS 60000 /* crashes counted over this long */
#define CRASHES_TO_BACK_OFF 3
#define BACKOFF_MAX_S 60

/* How a session ended, from its exit status (cacreg --once's) or its death. */
static const char *const session_reasons[] = {
    [0] = "done",         [1] = "card_pulled", [2] = "middleware", [3] = "card_problem",
    [4] = "input",        [5] = "refused",     [6] = "portal",     [7] = "idle",
    [8] = "left",
};

struct station {
    cacreg_config cfg;
    const char *config_path;
    char config_problem[384];  /* the configuration refused: why */
    char session_problem[384]; /* the sessions' configuration (cacreg.conf) refused: why */
    cacreg_watcher *watcher;
    cacreg_readers readers;
    int events[2];
    pid_t session;             /* the person's session, 0 none */
    long long session_started;
    bool killed;               /* we killed it: stuck */
    bool card_left;            /* a session ended with the card still in */
    long long crashes[CRASHES_TO_BACK_OFF];
    int ncrash, backoff_s;
    long long backoff_until;
    struct termios sane;       /* the terminal as the station found it */
    bool have_sane;
    bool curses_on;
    uint64_t watchdog_us;
    long long watchdog_next;
};

static int signal_pipe[2] = {-1, -1};
static volatile sig_atomic_t stop_asked;

static long long now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

static void on_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    int saved = errno;

    if (sig == SIGTERM)
        stop_asked = 1;
    if (write(signal_pipe[1], &b, 1) != 1) {
        /* full: the loop is already on its way */
    }
    errno = saved;
}

/* Only the service manager ends the station; the keyboard's signals do nothing. */
static bool setup_signals(void)
{
    static const int ignored[] = {SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGPIPE, SIGUSR1,
                                  SIGUSR2, SIGALRM, SIGHUP};
    struct sigaction sa;

    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return false;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        sigaction(ignored[i], &sa, NULL);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* SIGHUP is ignored: a terminal that is really gone shows as POLLHUP on it. */
    return true;
}

/* A value for the log: outside text made safe, no quote to break out of key="value" with. */
static void safe_value(char *out, size_t size, const char *in)
{
    cacreg_text_safe(out, size, in ? in : "", in ? strlen(in) : 0, CACREG_TEXT_SPACES);
    for (char *p = out; *p; p++)
        if (*p == '"')
            *p = '\'';
}

/* ---- the screen ---- */

static void line(struct station *s, int y, int attr, const char *text)
{
    char safe[1024], fit[1024];

    (void)s;
    if (y < 0 || y >= LINES)
        return;
    safe_value(safe, sizeof safe, text);
    cacreg_text_fit(fit, sizeof fit, safe, COLS - 4, CACREG_TEXT_ELLIPSIS);
    attrset(attr);
    mvaddstr(y, 2, fit);
    attrset(A_NORMAL);
}

/* A paragraph, wrapped at spaces into the screen's width; the rows it took. */
static int para(struct station *s, int y, int attr, const char *text)
{
    char safe[1024], row[1024];
    const char *p = safe;
    int rows = 0, width = COLS - 4;

    safe_value(safe, sizeof safe, text);
    while (*p && y + rows < LINES - 1) {
        size_t len = strlen(p), cut = len;
        while (cut > 0 && cacreg_text_width_n(p, cut) > width) {
            size_t space = cut;
            while (space > 0 && p[space - 1] != ' ')
                space--;
            cut = space > 0 ? space - 1 : cut - 1; /* at a space, or a character less */
            while (cut > 0 && ((unsigned char)p[cut] & 0xC0) == 0x80)
                cut--;
        }
        if (cut == 0)
            cut = 1;
        snprintf(row, sizeof row, "%.*s", (int)cut, p);
        line(s, y + rows++, attr, row);
        p += cut;
        while (*p == ' ')
            p++;
    }
    return rows;
}

/* Why the station cannot take a card now, in words for the operator; NULL if it can. */
static const char *out_of_service(const struct station *s, char *buf, size_t size)
{
    const cacreg_readers *r = &s->readers;

    if (s->config_problem[0])
        snprintf(buf, size, "the configuration is refused (%s). Operator: fix its owner and "
                            "mode (root, not writable by others).",
                 s->config_problem);
    else if (s->session_problem[0])
        snprintf(buf, size, "the sessions' configuration is refused (%s). Operator: fix "
                            CACREG_CONFIG_SYSTEM ".",
                 s->session_problem);
    else if (s->backoff_until > now_ms())
        snprintf(buf, size, "the registration program failed %d times in a minute; trying "
                            "again in %lld s. Operator: see the system log.",
                 s->ncrash, (s->backoff_until - now_ms() + 999) / 1000);
    else if (r->status == CACREG_PCSC_DOWN)
        snprintf(buf, size, "the smart-card service is not running. Operator: start pcscd.");
    else if (r->status == CACREG_PCSC_DENIED)
        snprintf(buf, size, "the smart-card service refuses this station. Operator: install "
                            "the polkit rule for the kiosk user.");
    else if (r->status == CACREG_PCSC_UP && r->count == 0)
        snprintf(buf, size, "no card reader is connected. Operator: plug the reader in.");
    else
        return NULL;
    return buf;
}

static void draw(struct station *s)
{
    const cacreg_readers *r = &s->readers;
    char why[512], text[768];
    const char *oos = out_of_service(s, why, sizeof why);
    int y = 5;

    erase();
    attrset(A_REVERSE);
    mvhline(0, 0, ' ', COLS);
    attrset(A_NORMAL);
    line(s, 0, A_REVERSE, s->cfg.station_name);
    if (oos) {
        snprintf(text, sizeof text, "Out of service: %s", oos);
        line(s, 2, A_BOLD, "This station cannot register cards right now.");
        y = 4 + para(s, 3, A_NORMAL, text);
    } else if (s->card_left) {
        line(s, 2, A_BOLD, "Please take your card.");
        line(s, 3, A_NORMAL, "The next person: insert your CAC to begin.");
    } else {
        line(s, 2, A_BOLD, "Insert your CAC to begin.");
        line(s, 3, A_NORMAL, "Chip first, face up. Register it, or log in with it.");
    }
    if (s->cfg.station_help[0])
        y += para(s, y, A_NORMAL, s->cfg.station_help);
    y++;
    snprintf(text, sizeof text, "Smart-card service: %s",
             r->status == CACREG_PCSC_UP       ? "running"
             : r->status == CACREG_PCSC_DOWN   ? "not running"
             : r->status == CACREG_PCSC_DENIED ? "refuses this station"
                                               : "checking");
    line(s, y++, A_NORMAL, text);
    for (size_t i = 0; i < r->count && y < LINES - 2; i++) {
        snprintf(text, sizeof text, "Reader: %s: %s", r->readers[i].name,
                 r->readers[i].card_present ? "card in" : "no card");
        line(s, y++, A_NORMAL, text);
    }
    attrset(A_REVERSE);
    mvhline(LINES - 1, 0, ' ', COLS);
    attrset(A_NORMAL);
    line(s, LINES - 1, A_REVERSE, "Insert your card. Enter: start again with the card in.");
    wnoutrefresh(stdscr);
    doupdate();
}

/* The screen and the terminal's scrollback cleared, its state as the station found it:
 * nothing of the last person's stays, not even in the history. */
static void fresh_terminal(struct station *s)
{
    static const char clear_all[] = "\033[H\033[2J\033[3J";

    if (s->have_sane)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &s->sane);
    if (write(STDOUT_FILENO, clear_all, sizeof clear_all - 1) < 0) {
        /* the terminal went: the hangup ends the station */
    }
}

static bool curses_start(struct station *s)
{
    if (!s->curses_on) {
        if (!isendwin() || !stdscr) {
            if (!newterm(NULL, stdout, stdin))
                return false;
        }
        s->curses_on = true;
    }
    raw();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    curs_set(0);
    leaveok(stdscr, TRUE);
    clearok(curscr, TRUE);
    return true;
}

/* ---- sessions ---- */

/* The session's environment, built from nothing: the terminal, the locale, a fixed PATH,
 * and glibc's wiping of freed memory (cacreg sets it itself otherwise, with a re-exec). */
static void session_environment(char **env, char bufs[][256], size_t n)
{
    static const char *const kept[] = {"TERM", "LANG", "LC_ALL"};
    size_t k = 0;

    snprintf(bufs[k], 256, "PATH=/usr/bin:/bin");
    env[k] = bufs[k];
    k++;
    snprintf(bufs[k], 256, "GLIBC_TUNABLES=glibc.malloc.perturb=165:glibc.malloc.tcache_count=0");
    env[k] = bufs[k];
    k++;
    for (size_t i = 0; i < sizeof kept / sizeof kept[0] && k + 1 < n; i++) {
        const char *v = getenv(kept[i]);
        if (v && strlen(v) < 200 && !strchr(v, '\n')) {
            snprintf(bufs[k], 256, "%s=%s", kept[i], v);
            env[k] = bufs[k];
            k++;
        }
    }
    env[k] = NULL;
}

static void start_session(struct station *s)
{
    char *argv[] = {"cacreg", "--kiosk", "--once", NULL};
    char bufs[8][256];
    char *env[8];
    pid_t pid;

    session_environment(env, bufs, 8);
    if (s->curses_on)
        endwin();
    fresh_terminal(s);
    pid = fork();
    if (pid < 0) {
        syslog(LOG_ERR, "event=session_start_failed error=\"%s\"", strerror(errno));
        return;
    }
    if (pid == 0) {
        struct sigaction sa;
        sigset_t none;

        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++)
            sigaction(sig, &sa, NULL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        umask(077);
        execve(s->cfg.session_program, argv, env);
        _exit(127);
    }
    s->session = pid;
    s->session_started = now_ms();
    s->killed = false;
    s->card_left = false;
    syslog(LOG_NOTICE, "event=session_start pid=%d", (int)pid);
}

/* A crash: counted; a few in a minute and the station waits before the next session. */
static void crashed(struct station *s)
{
    long long now = now_ms();
    int recent = 0;

    memmove(s->crashes, s->crashes + 1, sizeof s->crashes - sizeof s->crashes[0]);
    s->crashes[CRASHES_TO_BACK_OFF - 1] = now;
    for (int i = 0; i < CRASHES_TO_BACK_OFF; i++)
        recent += s->crashes[i] && now - s->crashes[i] < CRASH_WINDOW_MS;
    s->ncrash = recent;
    if (recent < CRASHES_TO_BACK_OFF)
        return;
    s->backoff_s = s->backoff_s ? s->backoff_s * 2 : 2;
    if (s->backoff_s > BACKOFF_MAX_S)
        s->backoff_s = BACKOFF_MAX_S;
    s->backoff_until = now + s->backoff_s * 1000LL;
    syslog(LOG_WARNING, "event=crash_loop crashes=%d backoff_s=%d", recent, s->backoff_s);
}

static void session_ended(struct station *s, int status)
{
    const char *reason = "crash";
    int code = -1;

    if (s->killed) {
        reason = "stuck";
    } else if (WIFEXITED(status)) {
        code = WEXITSTATUS(status);
        if ((size_t)code < sizeof session_reasons / sizeof session_reasons[0])
            reason = session_reasons[code];
    }
    syslog(LOG_NOTICE, "event=session_end pid=%d reason=%s status=%d seconds=%lld",
           (int)s->session, reason, code, (now_ms() - s->session_started) / 1000);
    if (!strcmp(reason, "crash") || !strcmp(reason, "stuck"))
        crashed(s);
    else
        s->backoff_s = 0;
    s->session = 0;
    fresh_terminal(s);
    curses_start(s);
    cacreg_watcher_snapshot(s->watcher, &s->readers);
    for (size_t i = 0; i < s->readers.count; i++)
        s->card_left = s->card_left || s->readers.readers[i].card_present;
}

static bool card_in(const struct station *s)
{
    for (size_t i = 0; i < s->readers.count; i++)
        if (s->readers.readers[i].card_present)
            return true;
    return false;
}

/* ---- the loop ---- */

static void reap(struct station *s)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        if (pid == s->session)
            session_ended(s, status);
}

static int timeout_ms(const struct station *s)
{
    long long t = -1, now = now_ms();

    if (s->session)
        t = s->session_started + s->cfg.session_timeout_s * 1000LL;
    else if (s->backoff_until > now)
        t = s->backoff_until;
    if (s->watchdog_us && (t < 0 || s->watchdog_next < t))
        t = s->watchdog_next;
    return t < 0 ? -1 : t <= now ? 0 : t - now > 86400000 ? 86400000 : (int)(t - now);
}

/* The sessions' configuration, checked as `cacreg --kiosk` will check it, before each
 * session (and after every event while idle, so that a fix is seen at once): a station
 * whose every session would refuse it is out of service, and says why. */
static void check_session_config(struct station *s)
{
    static cacreg_config cfg;
    char err[512] = "", was[sizeof s->session_problem];

    snprintf(was, sizeof was, "%s", s->session_problem);
    cacreg_config_defaults(&cfg);
    if (cacreg_config_load_standard(&cfg, true, err, sizeof err) != CACREG_OK)
        safe_value(s->session_problem, sizeof s->session_problem, err);
    else if (!cfg.portal_url[0])
        snprintf(s->session_problem, sizeof s->session_problem, "it names no portal_url");
    else
        s->session_problem[0] = '\0';
    if (s->session_problem[0] && strcmp(was, s->session_problem) != 0)
        syslog(LOG_ERR, "event=config_refused file=%s why=\"%s\"", CACREG_CONFIG_SYSTEM,
               s->session_problem);
}

static void keys(struct station *s)
{
    int ch;

    while ((ch = getch()) != ERR) /* every key is the station's; Enter restarts a session */
        if ((ch == '\r' || ch == '\n' || ch == KEY_ENTER) && card_in(s) && !out_of_service(s,
                (char[512]){0}, 512))
            start_session(s);
}

static int run(struct station *s)
{
    char why[512];
    bool tty_gone = false;

    while (!stop_asked) {
        /* A terminal that hung up answers every poll at once: watched no more, and the
         * station ends once its session has. */
        struct pollfd pfd[3] = {{.fd = signal_pipe[0], .events = POLLIN},
                                {.fd = s->events[0], .events = POLLIN},
                                {.fd = tty_gone ? -1 : STDIN_FILENO, .events = s->session ? 0 : POLLIN}};
        cacreg_event ev;
        bool inserted = false;
        unsigned char b;

        if (!s->session)
            draw(s);
        if (poll(pfd, 3, timeout_ms(s)) < 0 && errno != EINTR)
            break;
        while (read(signal_pipe[0], &b, 1) == 1) {
            /* SIGCHLD or SIGTERM: reaped below, or the loop ends */
        }
        reap(s);
        while (cacreg_event_read(s->events[0], &ev) == CACREG_OK)
            inserted = inserted || ev.type == CACREG_EV_CARD_IN;
        cacreg_watcher_snapshot(s->watcher, &s->readers);
        if (!card_in(s))
            s->card_left = false;
        if (s->session && now_ms() >= s->session_started + s->cfg.session_timeout_s * 1000LL &&
            !s->killed) {
            syslog(LOG_WARNING, "event=session_stuck pid=%d seconds=%d", (int)s->session,
                   s->cfg.session_timeout_s);
            s->killed = true;
            kill(s->session, SIGKILL);
        }
        if (s->watchdog_us && now_ms() >= s->watchdog_next) {
            sd_notify(0, "WATCHDOG=1");
            s->watchdog_next = now_ms() + (long long)(s->watchdog_us / 2000);
        }
        if (pfd[2].revents & (POLLHUP | POLLERR))
            tty_gone = true; /* the session has its SIGHUP, or session_timeout ends it */
        if (!s->session && tty_gone)
            break; /* the terminal went */
        if (!s->session)
            check_session_config(s);
        if (!s->session)
            keys(s);
        if (!s->session && inserted && !out_of_service(s, why, sizeof why))
            start_session(s);
    }
    return 0;
}

/* The configuration: root's, not writable by others (as doas checks its own). */
static bool load_config(struct station *s)
{
    char err[512] = "";
    cacreg_err rc;

    cacreg_config_defaults(&s->cfg);
    rc = cacreg_config_check_owner(s->config_path, err, sizeof err);
    if (rc == CACREG_OK)
        rc = cacreg_config_load_file(&s->cfg, s->config_path, err, sizeof err);
    if (rc == CACREG_OK && access(s->cfg.session_program, X_OK) != 0) {
        snprintf(err, sizeof err, "session_program '%.300s' cannot be run", s->cfg.session_program);
        rc = CACREG_ERR_CONFIG;
    }
    if (rc == CACREG_OK)
        return true;
    if (rc == CACREG_ERR_NOT_FOUND)
        snprintf(err, sizeof err, "%s does not exist", s->config_path);
    safe_value(s->config_problem, sizeof s->config_problem, err);
    syslog(LOG_ERR, "event=config_refused why=\"%s\"", s->config_problem);
    fprintf(stderr, "cacreg-kiosk: configuration refused: %s\n", s->config_problem);
    return false;
}

static void usage(FILE *f)
{
    fputs("usage: cacreg-kiosk [--config FILE]\n\n"
          "A CAC registration station on this terminal: an idle screen between people, a\n"
          "fresh `cacreg --kiosk --once` for each card inserted. See cacreg-kiosk(8).\n\n"
          "  --config FILE        read FILE instead of " KIOSK_CONFIG " (root's, writable\n"
          "                       by no one else)\n"
          "  --help               this text\n",
          f);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    static struct station s;
    int opt;

    s.config_path = KIOSK_CONFIG;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt == 'c') {
            s.config_path = optarg;
        } else {
            usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 4;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 4;
    }
    setlocale(LC_ALL, "");
    umask(077);
    /* Nothing from whoever started it: its own PC/SC, OpenSSL... settings are the system's. */
    if (cacreg_clean_environment() != CACREG_OK || cacreg_harden_process() != CACREG_OK ||
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        fprintf(stderr, "cacreg-kiosk: cannot harden this process\n");
        return 5;
    }
    openlog("cacreg-kiosk", LOG_PID | LOG_NDELAY, LOG_AUTHPRIV);
    if (!setup_signals() || cacreg_event_pipe(s.events) != CACREG_OK) {
        fprintf(stderr, "cacreg-kiosk: cannot set up its signals and events\n");
        return 5;
    }
    load_config(&s);
    check_session_config(&s);
    if (cacreg_watcher_start(&s.watcher, s.cfg.reader_filter, s.events[1]) != CACREG_OK) {
        fprintf(stderr, "cacreg-kiosk: cannot watch the readers\n");
        return 5;
    }
    s.have_sane = tcgetattr(STDIN_FILENO, &s.sane) == 0;
    if (!curses_start(&s)) {
        fprintf(stderr, "cacreg-kiosk: this terminal (TERM=%s) is not known here\n",
                getenv("TERM") ? getenv("TERM") : "");
        return 4;
    }
    cacreg_watcher_snapshot(s.watcher, &s.readers);
    if (sd_watchdog_enabled(0, &s.watchdog_us) > 0)
        s.watchdog_next = now_ms() + (long long)(s.watchdog_us / 2000);
    else
        s.watchdog_us = 0;
    sd_notify(0, "READY=1");
    syslog(LOG_NOTICE, "event=station_start config=%s", s.config_path);
    run(&s);
    sd_notify(0, "STOPPING=1");
    if (s.session) {
        pid_t gone = 0;

        kill(s.session, SIGTERM);
        for (int i = 0; i < 20 && (gone = waitpid(s.session, NULL, WNOHANG)) == 0; i++)
            nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL);
        if (gone == 0) { /* still running: once reaped, its number may be another's */
            kill(s.session, SIGKILL);
            waitpid(s.session, NULL, 0);
        }
    }
    if (s.curses_on)
        endwin();
    fresh_terminal(&s);
    cacreg_watcher_stop(s.watcher);
    syslog(LOG_NOTICE, "event=station_stop");
    closelog();
    return 0;
}
