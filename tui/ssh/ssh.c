/*
 * `cacreg ssh`: cacreg on a shared machine with the card in this computer's
 * reader. It starts `p11-kit server` for the local PKCS#11 module, exporting
 * only the CAC's token, on a socket in a private directory; runs ssh with that
 * socket forwarded to a new one on the remote machine and cacreg there on
 * p11-kit-client.so; and removes the server, the socket and the directory
 * however the session ends. The remote side removes its socket itself (a small
 * sh script, below). See docs/ssh.md.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "out.h"

#ifndef P11_MODULE_PATH
#define P11_MODULE_PATH "/usr/lib/x86_64-linux-gnu/pkcs11"
#endif

/* OpenSC's CAC driver names every CAC token so; nothing else in the readers is exported. */
#define DEFAULT_TOKEN "pkcs11:manufacturer=Common%20Access%20Card"
#define SSH_ARGS_MAX 96
#define LINE_MAX_ 2048
#define REMOTES_MAX 16  /* `p11-kit remote` processes watched at once (one per connection) */
#define STUCK_MS 5000   /* how long one may outlive its client before it is stopped */

/*
 * What runs on the remote machine, through the remote user's login shell as
 * `sh -c SCRIPT cacreg-ssh SOCKET CACREG rm|keep ARG...`. One line, no single
 * quote and no backslash, so that sh, bash, csh and fish all pass it to sh
 * unchanged. It removes the forwarded socket whatever way it ends (sshd leaves
 * it behind) unless told to keep it, says by its exit status what is missing,
 * and runs cacreg on p11-kit's client module with the socket's address.
 *
 * Only a socket at a path of our own random choice is removed: sshd may run
 * this even when the forwarding failed (ssh ends the connection only when the
 * refusal arrives), and a path someone chose may then hold an older socket,
 * whose removal would hide why the forwarding failed.
 */
static const char remote_script[] =
    "s=$1; c=$2; k=$3; shift 3; if [ \"$k\" = rm ]; then trap \"rm -f $s\" EXIT; fi; "
    "trap \"exit 129\" HUP; trap \"exit 130\" INT; trap \"exit 143\" TERM; "
    "command -v \"$c\" >/dev/null 2>&1 || exit 127; "
    "\"$c\" ssh --help >/dev/null 2>&1 || exit 121; m=; "
    "for f in /usr/lib/*/pkcs11/p11-kit-client.so /usr/lib64/pkcs11/p11-kit-client.so "
    "/usr/lib/pkcs11/p11-kit-client.so /usr/local/lib/pkcs11/p11-kit-client.so; do "
    "if [ -e \"$f\" ]; then m=$f; break; fi; done; [ -n \"$m\" ] || exit 120; "
    "P11_KIT_SERVER_ADDRESS=unix:path=$s; export P11_KIT_SERVER_ADDRESS; "
    "case $1 in status|login|register|reset) a=$1; shift; set -- \"$a\" --module \"$m\" \"$@\";; "
    "*) set -- --module \"$m\" \"$@\";; esac; \"$c\" \"$@\"";

/* The remote script's own exit statuses (cacreg's are 0-6 and 128 + a signal). */
enum {
    REMOTE_NO_CLIENT = 120, /* no p11-kit-client.so there */
    REMOTE_TOO_OLD = 121,   /* a cacreg without `cacreg ssh`: it knows no forwarded card */
    REMOTE_NO_CACREG = 127, /* no cacreg there (sh's "command not found") */
    SSH_FAILED = 255,       /* ssh's own failure: no connection, refused, dropped */
};

/* After a failed forwarding, a second connection looks at the remote path. */
static const char probe_script[] =
    "if [ -e \"$1\" ]; then if [ -O \"$1\" ]; then exit 10; fi; exit 11; fi; exit 12";
enum { PROBE_STALE_OURS = 10, PROBE_STALE_OTHERS = 11, PROBE_ABSENT = 12 };

/* Options of ssh 9.x that take a value (-P: 9.3's tag), and those that are not a session. */
static const char ssh_valued[] = "BbcDEeFIiJLlmOopPQRSWw";
static const char ssh_flags[] = "146AaCfGgKkMNnqsTtVvXxYy";
static const char ssh_refused[] = "fGNMOQSsVW";

struct session {
    /* what the person asked for */
    const char *host;
    char *ssh_opts[SSH_ARGS_MAX];
    size_t nssh;
    bool tty_opt;                /* -t or -T given: ssh decides */
    char **args;                 /* cacreg's arguments on the remote machine */
    int nargs;
    const char *module, *token, *remote_cacreg;
    /* what it made */
    char dir[256], sock[300], conf[300], log[300];
    char remote_sock[108];
    bool chosen_path;            /* --remote-socket: kept, and a failure looked into */
    pid_t server, ssh;
    bool forward_failed;         /* ssh said the remote forwarding was refused */
    bool lost;                   /* ssh said the connection was lost */
    struct remote {              /* the server's `p11-kit remote`s, see watch_remotes() */
        pid_t pid;
        int pidfd;
        long long client_gone;   /* when its connection's far end went, or 0 */
    } remotes[REMOTES_MAX];
    size_t nremotes;
    bool stuck_stopped;          /* one was stuck and had to be stopped */
    bool unwatched;              /* pidfd_getfd refused: said once */
};

static long long now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/* Our OpenSC settings for the server's module, the core's own (no PIN cache, no card
 * cache on disk, one slot per card, the card reset when the server lets it go). */
static bool write_opensc_conf(const char *path)
{
    char text[512];
    size_t n = cacreg_opensc_conf_text(text, sizeof text, false);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    bool ok;

    if (fd < 0)
        return false;
    ok = n > 0 && write(fd, text, n) == (ssize_t)n;
    return close(fd) == 0 && ok;
}

/* A path of safe characters only: it goes into a remote shell's command line. */
static bool plain_path(const char *p)
{
    if (p[0] != '/' || strlen(p) >= 100 || strstr(p, ".."))
        return false;
    for (; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-", *p))
            return false;
    return true;
}

/* Appends s to out, quoted for a POSIX shell; false when out is too small. */
static bool shell_quote(char *out, size_t size, size_t *len, const char *s)
{
    if (*len + 1 >= size)
        return false;
    out[(*len)++] = '\'';
    for (; *s; s++) {
        const char *piece = *s == '\'' ? "'\\''" : NULL;
        size_t n = piece ? 4 : 1;
        if (*len + n + 2 >= size)
            return false;
        memcpy(out + *len, piece ? piece : s, n);
        *len += n;
    }
    out[(*len)++] = '\'';
    out[*len] = '\0';
    return true;
}

/* The remote command line: sh -c SCRIPT cacreg-ssh WORD... ARG...; false if it is too long. */
static bool remote_command(const char *script, const char *const *words, int nwords,
                           char *const *args, int nargs, char *out, size_t size)
{
    size_t len = strlen("sh -c ");

    if (len >= size)
        return false;
    memcpy(out, "sh -c ", len + 1);
    if (!shell_quote(out, size, &len, script))
        return false;
    for (int i = -1; i < nwords + nargs; i++) {
        const char *w = i < 0 ? "cacreg-ssh" : i < nwords ? words[i] : args[i - nwords];
        if (len + 2 >= size)
            return false;
        out[len++] = ' ';
        if (!shell_quote(out, size, &len, w))
            return false;
    }
    return true;
}

/*
 * Starts argv (from PATH) with the given descriptors (-1: ours) and our
 * signals unblocked; it dies with us (PR_SET_PDEATHSIG). own_group: a process
 * group of its own, so that its children can be stopped with it and a Ctrl-C
 * at the terminal does not reach them. Returns its PID, or -1 with *err the
 * exec's errno.
 */
static pid_t spawn(char *const argv[], int in, int out, int err_fd, bool own_group,
                   const char *opensc_conf, int *err)
{
    int report[2];
    pid_t parent = getpid(), pid;
    ssize_t n;

    *err = 0;
    if (pipe2(report, O_CLOEXEC) != 0) {
        *err = errno;
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        *err = errno;
        close(report[0]);
        close(report[1]);
        return -1;
    }
    if (pid == 0) {
        sigset_t none;
        int e;

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL); /* cacreg ignores it (see main.c); ssh and p11-kit do not */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
            _exit(127);
        if (own_group)
            setpgid(0, 0);
        if ((in >= 0 && dup2(in, 0) < 0) || (out >= 0 && dup2(out, 1) < 0) ||
            (err_fd >= 0 && dup2(err_fd, 2) < 0))
            _exit(127);
        if (opensc_conf)
            setenv("OPENSC_CONF", opensc_conf, 1);
        execvp(argv[0], argv);
        e = errno;
        if (write(report[1], &e, sizeof e) < 0) {
            /* the parent sees a short read: a failure all the same */
        }
        _exit(127);
    }
    close(report[1]);
    do
        n = read(report[0], err, sizeof *err);
    while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n > 0) { /* the exec failed */
        waitpid(pid, NULL, 0);
        return -1;
    }
    *err = 0;
    return pid;
}

/* Waits up to ms for pid to end (its status in *status); false if it is still running. */
static bool reap(pid_t pid, int ms, int *status)
{
    long long end = now_ms() + ms;

    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            return true;
        if (now_ms() >= end)
            return false;
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    }
}

/*
 * Stops the p11-kit server and the `p11-kit remote` it started for each
 * connection (its process group). Safe to call at any stage.
 */
static void stop_server(struct session *s)
{
    int status;

    if (s->server <= 0)
        return;
    kill(-s->server, SIGTERM);
    if (!reap(s->server, 2000, &status)) {
        kill(-s->server, SIGKILL);
        reap(s->server, 1000, &status);
    }
    /* its children (one per connection) were in its group */
    for (long long end = now_ms() + 1000; kill(-s->server, 0) == 0 && now_ms() < end;)
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    kill(-s->server, SIGKILL);
    s->server = 0;
}

/*
 * The p11-kit server serves each connection in a `p11-kit remote` child, on
 * its standard input. When the remote cacreg ends, ssh passes the end of its
 * connection on (shutdown of the socket's writing side) and waits for that
 * child to close the socket: ssh ends only when every forwarded channel has
 * closed. A child stuck in its module (OpenSC 0.23 deadlocked in C_Initialize
 * when another session reset the card; a module that never returns) would
 * keep the session, and this command, open for ever. So every child is
 * watched: its socket, taken for a moment with pidfd_getfd (ours only, as
 * root or as its owner: the child of our child), shows whether the far end
 * has gone; a child still there STUCK_MS later is killed.
 */
static void remote_forget(struct session *s, size_t i)
{
    close(s->remotes[i].pidfd);
    s->remotes[i] = s->remotes[--s->nremotes];
}

/* pid's parent (from /proc; after a pidfd_open, so that the number is still pid's), or -1. */
static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512], *p;
    ssize_t n;
    int fd, ppid;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -1;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    /* "pid (comm) state ppid ...": comm may hold anything, so from its last ')' */
    if (!(p = strrchr(buf, ')')) || sscanf(p + 1, " %*c %d", &ppid) != 1)
        return -1;
    return (pid_t)ppid;
}

static void remotes_find(struct session *s)
{
    char path[64], buf[512];
    struct dirent *d;
    DIR *tasks;

    snprintf(path, sizeof path, "/proc/%d/task", (int)s->server);
    if (!(tasks = opendir(path)))
        return;
    while ((d = readdir(tasks)) != NULL) {
        ssize_t n;
        int fd;
        char *p, *end;

        if (d->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%.16s/children", (int)s->server, d->d_name);
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            continue;
        n = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        if (n == (ssize_t)sizeof buf - 1 && (p = strrchr(buf, ' ')) != NULL)
            *p = '\0'; /* the last number may be cut: the next look sees it whole */
        for (p = buf;; p = end) {
            long pid = strtol(p, &end, 10);
            bool known = false;
            int pidfd;

            if (end == p || pid <= 0)
                break;
            for (size_t i = 0; i < s->nremotes; i++)
                known |= s->remotes[i].pid == (pid_t)pid;
            if (known || s->nremotes == REMOTES_MAX || (pidfd = pidfd_open((pid_t)pid, 0)) < 0)
                continue;
            if (parent_of((pid_t)pid) != s->server) { /* gone and its number reused */
                close(pidfd);
                continue;
            }
            s->remotes[s->nremotes++] = (struct remote){.pid = (pid_t)pid, .pidfd = pidfd};
        }
    }
    closedir(tasks);
}

static void watch_remotes(struct session *s)
{
    long long now = now_ms();

    if (s->server <= 0)
        return;
    remotes_find(s);
    for (size_t i = 0; i < s->nremotes;) {
        struct remote *r = &s->remotes[i];
        struct pollfd pfd = {.fd = r->pidfd, .events = POLLIN};
        int sock;

        if (poll(&pfd, 1, 0) == 1) { /* it ended */
            remote_forget(s, i);
            continue;
        }
        /* held for no longer than a poll: a copy kept would keep the connection open */
        if (!r->client_gone && (sock = pidfd_getfd(r->pidfd, STDIN_FILENO, 0)) >= 0) {
            struct pollfd sp = {.fd = sock, .events = POLLRDHUP};
            struct stat st;

            if (fstat(sock, &st) == 0 && S_ISSOCK(st.st_mode) && poll(&sp, 1, 0) == 1 &&
                (sp.revents & (POLLRDHUP | POLLHUP)))
                r->client_gone = now;
            close(sock);
        } else if (!r->client_gone && !s->unwatched) {
            /* a kernel before 5.6, Yama's ptrace_scope 2 or 3, a seccomp filter */
            s->unwatched = true;
            if (isatty(STDERR_FILENO)) /* ssh's terminal is raw */
                out_printf(stderr, "cacreg ssh: cannot watch p11-kit's connections here (%s); if "
                                   "its PKCS#11 module\r\ngets stuck, end the session with "
                                   "Ctrl-C.\r\n",
                           strerror(errno));
            else
                out_printf(stderr, "cacreg ssh: cannot watch p11-kit's connections here (%s); if "
                                   "its PKCS#11 module\ngets stuck, end the session with Ctrl-C.\n",
                           strerror(errno));
        }
        if (r->client_gone && now - r->client_gone >= STUCK_MS) {
            pidfd_send_signal(r->pidfd, SIGKILL, NULL, 0);
            if (!s->stuck_stopped && isatty(STDERR_FILENO)) /* ssh's terminal is raw */
                out_printf(stderr, "cacreg ssh: p11-kit here did not let the card go when cacreg on "
                                   "%s finished (its PKCS#11\r\nmodule is stuck); it was stopped.\r\n",
                           s->host);
            else if (!s->stuck_stopped)
                out_printf(stderr, "cacreg ssh: p11-kit here did not let the card go when cacreg on "
                                   "%s finished (its PKCS#11\nmodule is stuck); it was stopped.\n",
                           s->host);
            s->stuck_stopped = true;
            remote_forget(s, i);
            continue;
        }
        i++;
    }
}

/* Removes the socket, our files and the directory. */
static void remove_files(struct session *s)
{
    if (!s->dir[0])
        return;
    unlink(s->sock);
    unlink(s->conf);
    unlink(s->log);
    rmdir(s->dir);
    s->dir[0] = '\0';
}

/* Prints what p11-kit (or the module under it) wrote to its log, if anything. */
static void show_log(const struct session *s, const char *intro)
{
    char line[LINE_MAX_];
    bool said = false;
    FILE *f = fopen(s->log, "re");

    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0])
            continue;
        if (!said)
            out_printf(stderr, "%s\n", intro);
        said = true;
        out_printf(stderr, "  %s\n", line);
    }
    fclose(f);
}

/* A private directory for the local socket: $XDG_RUNTIME_DIR if it is ours, else /tmp. */
static bool make_dir(struct session *s)
{
    const char *base = getenv("XDG_RUNTIME_DIR");
    struct stat st;

    if (!base || base[0] != '/' || stat(base, &st) != 0 || !S_ISDIR(st.st_mode) ||
        st.st_uid != getuid() || strlen(base) > 150)
        base = "/tmp";
    snprintf(s->dir, sizeof s->dir, "%s/cacreg-ssh.XXXXXX", base);
    if (!mkdtemp(s->dir)) {
        s->dir[0] = '\0';
        return false;
    }
    snprintf(s->sock, sizeof s->sock, "%s/p11-kit.sock", s->dir);
    snprintf(s->conf, sizeof s->conf, "%s/opensc.conf", s->dir);
    snprintf(s->log, sizeof s->log, "%s/p11-kit.log", s->dir);
    return true;
}

/*
 * Starts `p11-kit server` in the foreground on our socket for the module's
 * tokens that match the URI, and waits for it to listen (it prints its
 * address then). Prints why and returns false when it cannot.
 */
static bool start_server(struct session *s)
{
    struct passwd *pw = getpwuid(getuid());
    char *argv[] = {"p11-kit", "server", "--foreground", "--user", pw ? pw->pw_name : "",
                    "--provider", (char *)s->module, "--name", s->sock, (char *)s->token, NULL};
    char buf[512];
    size_t got = 0;
    int out[2], log_fd, null_fd, err;
    long long end = now_ms() + 10000;
    struct stat st;

    if (!pw) { /* the socket is for this user only: never for a name we guessed */
        out_printf(stderr, "cacreg: this user (uid %u) has no name in the user database\n",
                   (unsigned)getuid());
        return false;
    }
    if (!write_opensc_conf(s->conf) ||
        (log_fd = open(s->log, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        out_printf(stderr, "cacreg: cannot write in %s: %s\n", s->dir, strerror(errno));
        return false;
    }
    /* Its standard input is not ours: until a child dup2s its connection there, a
     * child's standard input is this one, which watch_remotes() must not mistake
     * for a connection. */
    if ((null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 || pipe2(out, O_CLOEXEC) != 0) {
        if (null_fd >= 0)
            close(null_fd);
        close(log_fd);
        return false;
    }
    s->server = spawn(argv, null_fd, out[1], log_fd, true, s->conf, &err);
    close(null_fd);
    close(out[1]);
    close(log_fd);
    if (s->server < 0) {
        s->server = 0;
        close(out[0]);
        if (err == ENOENT)
            out_printf(stderr,
                       "p11-kit is not installed on this computer: it is what lends the card to\n"
                       "the remote machine. Install it (Debian, Ubuntu: apt install p11-kit\n"
                       "p11-kit-modules; Fedora: dnf install p11-kit-server).\n");
        else
            out_printf(stderr, "cacreg: cannot start p11-kit: %s\n", strerror(err));
        return false;
    }
    /* "P11_KIT_SERVER_ADDRESS=unix:path=...; export ...": it listens. */
    while (!memmem(buf, got, "P11_KIT_SERVER_ADDRESS=", 23) && got < sizeof buf - 1) {
        struct pollfd pfd[2] = {{.fd = out[0], .events = POLLIN},
                                {.fd = cli_signal_fd(), .events = POLLIN}};
        ssize_t n;

        if (now_ms() >= end || cli_interrupted())
            break;
        if (poll(pfd, 2, (int)(end - now_ms())) <= 0)
            continue;
        if (cli_interrupted())
            break;
        n = read(out[0], buf + got, sizeof buf - 1 - got);
        if (n <= 0)
            break; /* it ended */
        got += (size_t)n;
    }
    close(out[0]);
    if (cli_interrupted())
        return false;
    if (!memmem(buf, got, "P11_KIT_SERVER_ADDRESS=", 23) || lstat(s->sock, &st) != 0 ||
        !S_ISSOCK(st.st_mode)) {
        out_printf(stderr, "p11-kit could not offer the card (p11-kit server, module %s).\n",
                   s->module);
        show_log(s, "It said:");
        return false;
    }
    /* p11-kit binds with umask 066 (mode 0711); the directory is ours alone, and so is this. */
    if (chmod(s->sock, 0600) != 0) {
        out_printf(stderr, "cacreg: cannot protect %s: %s\n", s->sock, strerror(errno));
        return false;
    }
    return true;
}

/* A random socket path in the remote /tmp: two sessions never meet. */
static bool random_remote_path(char *out, size_t size)
{
    unsigned char r[8];

    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return false;
    snprintf(out, size, "/tmp/cacreg-ssh-%02x%02x%02x%02x%02x%02x%02x%02x.sock", r[0], r[1], r[2],
             r[3], r[4], r[5], r[6], r[7]);
    return true;
}

/*
 * The ssh command line: our options first (ssh keeps the first value it is
 * given for each), then the person's, the host and the remote command. A new
 * connection every time (no ControlMaster: a multiplexed forwarding would
 * outlive the session), no RemoteCommand or SessionType from ssh_config.
 */
static size_t ssh_argv(const struct session *s, char **argv, size_t max, char *forward,
                       size_t forward_size, const char *command, bool probe)
{
    size_t n = 0;

    argv[n++] = "ssh";
    argv[n++] = "-o";
    argv[n++] = "ControlPath=none";
    argv[n++] = "-o";
    argv[n++] = "RemoteCommand=none";
    argv[n++] = "-o";
    argv[n++] = "SessionType=default";
    if (probe) {
        argv[n++] = "-o";
        argv[n++] = "BatchMode=yes";
        argv[n++] = "-o";
        argv[n++] = "ClearAllForwardings=yes";
    } else {
        snprintf(forward, forward_size, "%s:%s", s->remote_sock, s->sock);
        argv[n++] = "-o";
        argv[n++] = "ExitOnForwardFailure=yes";
        argv[n++] = "-R";
        argv[n++] = forward;
        if (!s->tty_opt && isatty(STDIN_FILENO))
            argv[n++] = "-t";
    }
    for (size_t i = 0; i < s->nssh && n + 9 < max; i++)
        argv[n++] = s->ssh_opts[i];
    /* A link that dies silently ends the session within 45 s, not at TCP's timeout.
     * After the person's options: an -o ServerAlive... of theirs comes first and wins. */
    argv[n++] = "-o";
    argv[n++] = "ServerAliveInterval=15";
    argv[n++] = "-o";
    argv[n++] = "ServerAliveCountMax=3";
    if (probe)
        argv[n++] = "-T";
    argv[n++] = "--";
    argv[n++] = (char *)s->host;
    argv[n++] = (char *)command;
    argv[n] = NULL;
    return n;
}

/*
 * What is at the remote path, asked over a second connection that cannot
 * prompt (BatchMode): one of PROBE_*, or -1 when it could not be asked.
 */
static int probe_remote_path(const struct session *s)
{
    char command[1024], unused[8], *argv[SSH_ARGS_MAX + 20];
    const char *words[] = {s->remote_sock};
    int null_fd, err, status = -1;
    pid_t pid;

    if (!remote_command(probe_script, words, 1, NULL, 0, command, sizeof command) ||
        (null_fd = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
        return -1;
    ssh_argv(s, argv, sizeof argv / sizeof argv[0], unused, sizeof unused, command, true);
    pid = spawn(argv, null_fd, null_fd, null_fd, false, NULL, &err);
    close(null_fd);
    if (pid < 0)
        return -1;
    if (!reap(pid, 20000, &status)) {
        kill(pid, SIGTERM);
        reap(pid, 1000, &status);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* After ssh's "remote port forwarding failed for listen path": why, in words. */
static int forward_failure(const struct session *s)
{
    /* A new random path cannot be in anyone's way: the server said no. */
    int found = s->chosen_path ? probe_remote_path(s) : PROBE_ABSENT;

    out_printf(stderr, "\n%s did not let this session forward the card to %s.\n", s->host,
               s->remote_sock);
    switch (found) {
    case PROBE_STALE_OURS:
        out_printf(stderr,
                   "A socket left by an earlier session is in the way there. Remove it:\n"
                   "  ssh %s rm %s\n"
                   "or ask the administrator of %s to set 'StreamLocalBindUnlink yes' in "
                   "sshd_config,\nso that sshd replaces old sockets itself.\n",
                   s->host, s->remote_sock, s->host);
        break;
    case PROBE_STALE_OTHERS:
        out_printf(stderr, "Another user's socket is in the way there. Choose another path with\n"
                           "--remote-socket, or leave it out for a new random one.\n");
        break;
    case PROBE_ABSENT:
        out_printf(stderr,
                   "Its sshd does not allow forwarding to a socket for you: "
                   "'AllowStreamLocalForwarding no'\nor 'DisableForwarding yes' in its "
                   "sshd_config, or 'restrict' or 'no-port-forwarding' on\nyour key in "
                   "authorized_keys. Ask its administrator to allow it\n"
                   "(AllowStreamLocalForwarding remote, in a Match block for the people who\n"
                   "register cards there).\n");
        break;
    default:
        out_printf(stderr,
                   "Either its sshd does not allow forwarding to a socket "
                   "(AllowStreamLocalForwarding,\nDisableForwarding, or 'restrict' on your key), "
                   "or an old socket is in the way\n(remove it; 'StreamLocalBindUnlink yes' "
                   "in sshd_config makes sshd do that).\n");
        break;
    }
    return CLI_MIDDLEWARE;
}

/* One line of ssh's standard error: passed on, and what it tells us noted. */
static void ssh_line(struct session *s, char *line)
{
    size_t n = strlen(line);

    while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n'))
        line[--n] = '\0';
    if (strstr(line, "remote port forwarding failed for listen path"))
        s->forward_failed = true;
    if (strstr(line, "closed by remote host") || strstr(line, "Broken pipe") ||
        strstr(line, "Connection reset") || strstr(line, "Timeout, server"))
        s->lost = true;
    /* ssh leaves the terminal raw (no CR added to LF) while its session runs */
    if (isatty(STDERR_FILENO))
        out_printf(stderr, "%s\r\n", line);
    else
        out_printf(stderr, "%s\n", line);
}

/*
 * Runs ssh and passes its standard error on, line by line, until it ends. A
 * terminating signal here is passed to ssh (which ends the session; the
 * remote side removes its socket), with 3 s before it is killed.
 */
static int run_ssh(struct session *s, int *status)
{
    char forward[512], command[8192], *argv[SSH_ARGS_MAX + 20];
    const char *words[] = {s->remote_sock, s->remote_cacreg, s->chosen_path ? "keep" : "rm"};
    char buf[LINE_MAX_];
    size_t got = 0;
    int errp[2], err;
    long long kill_at = -1;
    bool stopping = false;

    if (!remote_command(remote_script, words, 3, s->args, s->nargs, command, sizeof command)) {
        out_printf(stderr, "cacreg: the arguments for cacreg are too long\n");
        return CLI_USAGE;
    }
    ssh_argv(s, argv, sizeof argv / sizeof argv[0], forward, sizeof forward, command, false);
    if (pipe2(errp, O_CLOEXEC) != 0)
        return CLI_MIDDLEWARE;
    s->ssh = spawn(argv, -1, -1, errp[1], false, NULL, &err);
    close(errp[1]);
    if (s->ssh < 0) {
        close(errp[0]);
        if (err == ENOENT)
            out_printf(stderr, "ssh is not installed on this computer (Debian, Ubuntu: apt install "
                               "openssh-client).\n");
        else
            out_printf(stderr, "cacreg: cannot start ssh: %s\n", strerror(err));
        return CLI_MIDDLEWARE;
    }
    fcntl(errp[0], F_SETFL, O_NONBLOCK);
    for (bool open_ = true;; watch_remotes(s)) {
        struct pollfd pfd[2] = {{.fd = open_ ? errp[0] : -1, .events = POLLIN},
                                {.fd = stopping ? -1 : cli_signal_fd(), .events = POLLIN}};
        ssize_t n = -1;

        poll(pfd, 2, 100);
        if (!stopping && cli_interrupted()) {
            kill(s->ssh, SIGTERM);
            stopping = true;
            kill_at = now_ms() + 3000;
        }
        if (kill_at > 0 && now_ms() >= kill_at) {
            kill(s->ssh, SIGKILL);
            kill_at = -1;
        }
        while (open_ && (n = read(errp[0], buf + got, sizeof buf - 1 - got)) != 0) {
            char *nl;
            if (n < 0) {
                if (errno != EINTR)
                    break;
                continue;
            }
            got += (size_t)n;
            buf[got] = '\0';
            while ((nl = memchr(buf, '\n', got)) != NULL) {
                size_t len = (size_t)(nl - buf) + 1;
                *nl = '\0';
                ssh_line(s, buf);
                memmove(buf, buf + len, got - len);
                got -= len;
            }
            if (got == sizeof buf - 1) { /* a line longer than we keep: passed on as it is */
                buf[got] = '\0';
                ssh_line(s, buf);
                got = 0;
            }
        }
        if (open_ && n == 0)
            open_ = false; /* EOF: ssh (and any ProxyJump ssh) closed it */
        if (waitpid(s->ssh, status, WNOHANG) == s->ssh) {
            for (int i = 0; i < 20 && open_; i++) { /* what it wrote last */
                n = read(errp[0], buf + got, sizeof buf - 1 - got);
                if (n > 0)
                    got += (size_t)n;
                else
                    break;
            }
            if (got) {
                buf[got] = '\0';
                ssh_line(s, buf);
            }
            break;
        }
    }
    close(errp[0]);
    s->ssh = 0;
    while (s->nremotes > 0) /* the server, and they with it, are stopped next */
        remote_forget(s, 0);
    return CLI_OK;
}

/* The exit status, said in words where the remote cacreg could not say it itself. */
static int explain(struct session *s, int status)
{
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : SSH_FAILED;

    if (cli_interrupted()) {
        out_printf(stderr, "cacreg ssh: interrupted; the card is no longer lent to %s.\n", s->host);
        return 128 + cli_interrupted();
    }
    if (s->forward_failed)
        return forward_failure(s);
    if (WIFSIGNALED(status)) {
        out_printf(stderr, "ssh was stopped by signal %d; the card is no longer lent to %s.\n",
                   WTERMSIG(status), s->host);
        return SSH_FAILED;
    }
    switch (code) {
    case REMOTE_NO_CACREG:
        out_printf(stderr, "cacreg is not installed on %s (or not on the PATH of a command run by "
                           "ssh there).\nInstall it there, or name it with --remote-cacreg PATH.\n",
                   s->host);
        return REMOTE_NO_CACREG;
    case REMOTE_TOO_OLD:
        out_printf(stderr, "The cacreg on %s is too old to use a card in this computer's reader.\n"
                           "Install a current cacreg there.\n",
                   s->host);
        return REMOTE_NO_CACREG;
    case REMOTE_NO_CLIENT:
        out_printf(stderr, "p11-kit's client module (p11-kit-client.so) is not installed on %s; "
                           "cacreg there\nneeds it to reach the card here. Install it there "
                           "(Debian, Ubuntu: apt install\np11-kit-modules; Fedora: dnf install "
                           "p11-kit-server).\n",
                   s->host);
        return CLI_MIDDLEWARE;
    case SSH_FAILED:
        if (s->lost)
            out_printf(stderr, "The connection to %s ended before cacreg there finished; the card "
                               "here is no\nlonger lent to it.\n",
                       s->host);
        else
            out_printf(stderr, "ssh could not run cacreg on %s (see ssh's message above).\n",
                       s->host);
        return SSH_FAILED;
    case CLI_MIDDLEWARE:
        show_log(s, "p11-kit on this computer said:");
        return code;
    default:
        return code;
    }
}

/*
 * Splits argv into our options (into ours[], for cli_parse), ssh's options, the
 * host and cacreg's arguments. Prints the problem and returns false when an
 * option is unknown, not for a session, or missing its value.
 */
static bool split_args(int argc, char **argv, char **ours, int *nours, struct session *s)
{
    int i = 1;

    ours[(*nours)++] = argv[0];
    for (; i < argc && !s->host; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            out_printf(stderr, "cacreg ssh: the host comes before --\n");
            return false;
        }
        if (a[0] == '-' && a[1] == '-') {
            char name[64];
            bool valued;
            size_t len = strcspn(a + 2, "=");
            snprintf(name, sizeof name, "%.*s", (int)len, a + 2);
            if (!cli_option_known(CMD_SSH, name, &valued)) {
                out_printf(stderr, "cacreg ssh: unknown option '%s' (ssh's options are "
                                   "single letters)\n", a);
                return false;
            }
            ours[(*nours)++] = argv[i];
            if (valued && !a[2 + len] && i + 1 < argc)
                ours[(*nours)++] = argv[++i];
            continue;
        }
        if (a[0] == '-' && a[1]) {
            if (s->nssh + 2 >= SSH_ARGS_MAX) {
                out_printf(stderr, "cacreg ssh: too many ssh options\n");
                return false;
            }
            s->ssh_opts[s->nssh++] = argv[i];
            for (const char *c = a + 1; *c; c++) {
                if (strchr(ssh_refused, *c)) {
                    out_printf(stderr, "cacreg ssh: ssh's -%c is not for a session that lends "
                                       "a card\n", *c);
                    return false;
                }
                if (*c == 't' || *c == 'T')
                    s->tty_opt = true;
                if (strchr(ssh_valued, *c)) {
                    if (!c[1]) {
                        if (i + 1 >= argc) {
                            out_printf(stderr, "cacreg ssh: ssh's -%c needs a value\n", *c);
                            return false;
                        }
                        s->ssh_opts[s->nssh++] = argv[++i];
                    }
                    break;
                }
                if (!strchr(ssh_flags, *c)) {
                    out_printf(stderr, "cacreg ssh: ssh has no option -%c\n", *c);
                    return false;
                }
            }
            continue;
        }
        s->host = a;
    }
    if (i < argc && strcmp(argv[i], "--") == 0)
        i++;
    s->args = argv + i;
    s->nargs = argc - i;
    if (s->nargs > 0 && strcmp(s->args[0], "ssh") == 0) {
        out_printf(stderr, "cacreg ssh: cacreg on the remote machine cannot lend a card onwards\n");
        return false;
    }
    return true;
}

int cmd_ssh(int argc, char **argv)
{
    static const char synopsis[] =
        "cacreg ssh [options] [ssh options] [user@]host [-- cacreg arguments]";
    static const char about[] =
        "Runs cacreg on a remote machine with the card in this computer's reader: p11-kit\n"
        "offers the CAC's token here, on a socket only you can use, ssh forwards it to\n"
        "the remote machine, and cacreg there uses it through p11-kit-client.so. Your PIN\n"
        "reaches the card only as a PKCS#11 login through that forwarding; see docs/ssh.md\n"
        "for what the remote machine's administrator can and cannot see.\n"
        "Options of ssh (-p, -i, -J, -o, -F, -l, ...) and hosts from ssh_config pass\n"
        "through. After --: cacreg's command and arguments there (default: the\n"
        "full-screen front end), e.g. -- login --cac, -- status.\n"
        "\n"
        "Exit status: the remote cacreg's; 2 the card cannot be lent (p11-kit missing\n"
        "on either side, forwarding refused, a socket in the way); 4 bad options;\n"
        "127 no cacreg (or one too old) there; 255 ssh failed or the connection ended.\n";
    char **ours = calloc((size_t)argc + 1, sizeof *ours);
    struct session s = {0};
    struct cli_opts o;
    cacreg_config cfg;
    char module[CACREG_PATH_MAX];
    int nours = 0, code, status = 0;

    if (!ours)
        return CLI_USAGE;
    if (!split_args(argc, argv, ours, &nours, &s)) {
        free(ours);
        return CLI_USAGE;
    }
    code = cli_parse(CMD_SSH, nours, ours, synopsis, about, &o, &cfg);
    free(ours);
    if (code != CLI_OK)
        return code == CLI_HELP ? CLI_OK : code;
    if (!s.host) {
        out_printf(stderr, "usage: %s\n", synopsis);
        return CLI_USAGE;
    }
    snprintf(module, sizeof module, "%s",
             cfg.pkcs11_module[0] ? cfg.pkcs11_module : P11_MODULE_PATH "/opensc-pkcs11.so");
    s.module = module;
    s.token = o.token ? o.token : DEFAULT_TOKEN;
    s.remote_cacreg = o.remote_cacreg ? o.remote_cacreg : "cacreg";
    if (strncmp(s.token, "pkcs11:", 7) != 0) {
        out_printf(stderr, "cacreg ssh: --token takes a PKCS#11 URI (pkcs11:...)\n");
        return CLI_USAGE;
    }
    if (access(s.module, R_OK) != 0) {
        out_printf(stderr, "No PKCS#11 module at %s: install opensc-pkcs11, or set "
                           "pkcs11_module.\n", s.module);
        return CLI_MIDDLEWARE;
    }
    if (o.remote_socket ? !plain_path(o.remote_socket)
                        : !random_remote_path(s.remote_sock, sizeof s.remote_sock)) {
        out_printf(stderr, "cacreg ssh: --remote-socket takes an absolute path of letters, digits "
                           "and /._- (under 100 bytes)\n");
        return CLI_USAGE;
    }
    if (o.remote_socket)
        snprintf(s.remote_sock, sizeof s.remote_sock, "%s", o.remote_socket);
    s.chosen_path = o.remote_socket != NULL;
    if (!cli_signals_block()) {
        out_printf(stderr, "cacreg: cannot set up signal handling\n");
        return CLI_USAGE;
    }
    if (!make_dir(&s)) {
        out_printf(stderr, "cacreg: cannot make a private directory: %s\n", strerror(errno));
        return CLI_MIDDLEWARE;
    }
    if (!start_server(&s)) {
        stop_server(&s);
        remove_files(&s);
        return cli_interrupted() ? 128 + cli_interrupted() : CLI_MIDDLEWARE;
    }
    code = run_ssh(&s, &status);
    stop_server(&s); /* before the explanation: the card is home again */
    if (code == CLI_OK)
        code = explain(&s, status);
    remove_files(&s);
    return code;
}
