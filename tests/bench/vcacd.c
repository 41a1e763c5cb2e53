/*
 * vcacd: the bench's virtual CAC. It runs pcscd with the vpcd reader driver in
 * a private mount and network namespace, and plays the card side of vpcd's
 * socket protocol with libcacard emulating a CAC from a persona's NSS database,
 * or, for a persona with an "atr" file, a card that is not a CAC at all.
 * A line-based control socket inserts and removes named cards and reads the
 * counters. See tests/bench/README.md.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libcacard.h>

#define VPCD_PORT 35963 /* free to use: the network namespace is ours alone */
#define MAX_CARDS 32
#define NAME_MAX_LEN 32
#define PIN_TRIES 3
#define MAX_CLIENTS 8
#define LINE_MAX_LEN 512

/* Counters of one card session, shared with the card process. */
struct card_counters {
    unsigned long session;       /* insertions so far, this one included */
    unsigned long apdus;
    unsigned long by_ins[256];
    unsigned long verifies;      /* VERIFY with PIN data */
    unsigned long verify_failed; /* of those, wrong or blocked */
    unsigned long verify_status; /* VERIFY without data (asks tries left) */
    unsigned long signatures;    /* completed private-key operations */
    unsigned long bytes_in, bytes_out;
    unsigned long busy_us;       /* time spent answering APDUs */
};

/* What the supervisor and the card process share, in one MAP_SHARED page. */
struct shared {
    struct card_counters now;  /* the current (or last) card session */
    struct card_counters total;
    volatile int delay_ms;     /* per-APDU delay, 0 for none */
    volatile int mute;         /* card stops answering APDUs */
    volatile int power_cuts;   /* bumped by "poweroff": the card loses power */
    char card[NAME_MAX_LEN];   /* persona inserted, "" when none */
    struct {
        char name[NAME_MAX_LEN];
        int tries_left;
    } pins[MAX_CARDS];
};

static struct shared *sh;
static const char *pki_dir;
static int log_fd = -1;
static pid_t pcscd_pid = -1;
static pid_t card_pid = -1;
/* Where pcscd finds its reader configuration, once RUNDIR/run is /run. */
static const char conf_dir[] = "/run/reader.conf.d";
static int pcscd_log_fd = -1;

/* Writes one line to the bench log. */
static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    char line[LINE_MAX_LEN];
    struct timespec ts;
    va_list ap;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    n = snprintf(line, sizeof line, "%lld.%03ld [%d] ", (long long)ts.tv_sec,
                 ts.tv_nsec / 1000000, (int)getpid());
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    if (log_fd >= 0 && write(log_fd, line, (size_t)n) < 0)
        return;
}

static void die(const char *what);

/* Formats a path into a PATH_MAX buffer; a path that does not fit is fatal. */
static void pathf(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pathf(char *buf, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, PATH_MAX, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= PATH_MAX) {
        errno = ENAMETOOLONG;
        die(fmt);
    }
}

static void die(const char *what)
{
    fprintf(stderr, "vcacd: %s: %s\n", what, strerror(errno));
    logf_("fatal: %s: %s", what, strerror(errno));
    exit(1);
}

/* Finds (or makes) the PIN record of a persona. */
static int *pin_tries(const char *name)
{
    for (int i = 0; i < MAX_CARDS; i++) {
        if (strcmp(sh->pins[i].name, name) == 0)
            return &sh->pins[i].tries_left;
        if (sh->pins[i].name[0] == '\0') {
            snprintf(sh->pins[i].name, sizeof sh->pins[i].name, "%s", name);
            sh->pins[i].tries_left = PIN_TRIES;
            return &sh->pins[i].tries_left;
        }
    }
    return NULL;
}

static unsigned long now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long)ts.tv_sec * 1000000UL + (unsigned long)ts.tv_nsec / 1000UL;
}

/* ---- the card process ---- */

struct card {
    VReader *reader;           /* NULL for a card that is not a CAC */
    unsigned char atr[40];
    int atr_len;
    bool powered;
    bool verified;
    char pin[9];
    int *tries_left;
    const char *name;
};

/* Reads exactly len bytes; 0 on success, -1 on EOF or error. */
static int read_full(int fd, unsigned char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* Sends one framed vpcd message in a single write. */
static int send_frame(int fd, const unsigned char *data, size_t len)
{
    unsigned char frame[2 + 65536];
    size_t off = 0;

    frame[0] = (unsigned char)(len >> 8);
    frame[1] = (unsigned char)len;
    memcpy(frame + 2, data, len);
    while (off < len + 2) {
        ssize_t w = write(fd, frame + off, len + 2 - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

static void card_power_on(struct card *c)
{
    if (c->reader) { /* a card that is not a CAC keeps the ATR it was given */
        c->atr_len = (int)sizeof c->atr;
        vreader_power_on(c->reader, c->atr, &c->atr_len);
    }
    c->powered = true;
    c->verified = false;
}

static void card_power_off(struct card *c)
{
    if (c->reader)
        vreader_power_off(c->reader);
    c->powered = false;
    c->verified = false;
}

/* The value of a hex digit, or -1. */
static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Reads PKI/cards/NAME/atr (hex) into c->atr: the persona is not a CAC.
 * Returns 0 when it is one of those, -1 when there is no such file. */
static int load_atr(const char *name, struct card *c)
{
    char path[PATH_MAX], hex[2 * sizeof c->atr + 2];
    FILE *f;
    size_t n;

    pathf(path, "%s/cards/%s/atr", pki_dir, name);
    f = fopen(path, "r");
    if (!f)
        return -1;
    n = fread(hex, 1, sizeof hex - 1, f);
    fclose(f);
    hex[n] = '\0';
    c->atr_len = 0;
    for (const char *p = hex; p + 1 < hex + n && c->atr_len < (int)sizeof c->atr; p += 2) {
        int hi = hex_digit(p[0]), lo = hex_digit(p[1]);
        if (hi < 0 || lo < 0)
            break;
        c->atr[c->atr_len++] = (unsigned char)(hi << 4 | lo);
    }
    return c->atr_len >= 2 ? 0 : -1;
}

/* Reads the persona's PIN from PKI/cards/NAME/pin. */
static int load_pin(const char *name, char *pin, size_t size)
{
    char path[PATH_MAX];
    FILE *f;
    size_t n;

    pathf(path, "%s/cards/%s/pin", pki_dir, name);
    f = fopen(path, "r");
    if (!f)
        return -1;
    n = fread(pin, 1, size - 1, f);
    fclose(f);
    while (n > 0 && (pin[n - 1] == '\n' || pin[n - 1] == '\r'))
        n--;
    pin[n] = '\0';
    return n >= 6 && n <= 8 ? 0 : -1;
}

/*
 * The PIN policy a real CAC has and libcacard lacks: 6-8 digits, 3 tries,
 * 63Cx with the tries left, 6983 once blocked. Returns true when it answered
 * the APDU itself (sw set); false to pass a correct PIN on to libcacard.
 */
static bool pin_policy(struct card *c, const unsigned char *apdu, size_t len, unsigned *sw)
{
    unsigned char p1 = apdu[2];
    size_t lc, plen;
    char given[9];

    if (p1 == 0xFF) { /* logout (reset security status) */
        c->verified = false;
        return false;
    }
    if (len <= 5) { /* no data: how many tries are left? */
        sh->now.verify_status++;
        if (*c->tries_left <= 0)
            *sw = 0x6983;
        else if (c->verified)
            *sw = 0x9000;
        else
            *sw = 0x63C0u | (unsigned)*c->tries_left;
        return true;
    }
    sh->now.verifies++;
    if (*c->tries_left <= 0) {
        sh->now.verify_failed++;
        *sw = 0x6983;
        return true;
    }
    lc = apdu[4];
    if (lc != len - 5 || lc > 8) {
        *sw = 0x6700;
        return true;
    }
    for (plen = 0; plen < lc && apdu[5 + plen] != 0xFF; plen++)
        given[plen] = (char)apdu[5 + plen];
    given[plen] = '\0';
    if (plen < 6 || strspn(given, "0123456789") != plen) {
        /* Not a PIN at all: refused without costing a try, as a CAC does. */
        memset(given, 0, sizeof given);
        sh->now.verify_failed++;
        *sw = 0x6A80;
        return true;
    }
    if (strcmp(given, c->pin) == 0) {
        *c->tries_left = PIN_TRIES;
        memset(given, 0, sizeof given);
        return false;
    }
    memset(given, 0, sizeof given);
    sh->now.verify_failed++;
    c->verified = false;
    (*c->tries_left)--;
    logf_("card %s: wrong PIN, %d tries left", c->name, *c->tries_left);
    *sw = *c->tries_left <= 0 ? 0x6983 : 0x63C0u | (unsigned)*c->tries_left;
    return true;
}

/* Answers one command APDU into rsp; returns the response length. */
static int card_apdu(struct card *c, unsigned char *apdu, size_t len,
                     unsigned char *rsp, int rsp_size)
{
    unsigned sw = 0;
    int rlen = rsp_size;
    unsigned char ins = len >= 2 ? apdu[1] : 0;

    if (!c->powered)
        card_power_on(c);
    if (!c->reader) { /* not a CAC: no file to select, no command known */
        sw = ins == 0xA4 ? 0x6A82 : 0x6D00;
        rsp[0] = (unsigned char)(sw >> 8);
        rsp[1] = (unsigned char)sw;
        return 2;
    }
    if (len >= 4 && ins == 0x20 && pin_policy(c, apdu, len, &sw)) {
        rsp[0] = (unsigned char)(sw >> 8);
        rsp[1] = (unsigned char)sw;
        return 2;
    }
    /* A private-key operation needs the PIN verified since the card was powered,
     * as on a real CAC (libcacard's soft keys would sign regardless). */
    if (ins == 0x42 && !c->verified) {
        rsp[0] = 0x69;
        rsp[1] = 0x82;
        return 2;
    }
    if (vreader_xfr_bytes(c->reader, apdu, (int)len, rsp, &rlen) != VREADER_OK) {
        rsp[0] = 0x6F;
        rsp[1] = 0x00;
        return 2;
    }
    if (rlen >= 2) {
        sw = (unsigned)rsp[rlen - 2] << 8 | rsp[rlen - 1];
        if (ins == 0x20 && len > 5 && sw == 0x9000)
            c->verified = true;
        /* CAC SIGN/DECRYPT: P1 0x00 is the last (or only) block. */
        if (ins == 0x42 && len >= 4 && apdu[2] == 0x00 &&
            (sw == 0x9000 || (sw & 0xFF00) == 0x6100))
            sh->now.signatures++;
    }
    return rlen;
}

static int connect_vpcd(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(VPCD_PORT)};
    int one = 1;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int tries = 0; tries < 200; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return fd;
        }
        close(fd);
        usleep(50000);
    }
    return -1;
}

/* Answers vpcd's messages on fd until it closes the connection. */
static void serve_vpcd(struct card *c, int fd, int *power_cuts)
{
    unsigned char msg[65536], rsp[65536];
    const char *name = c->name;
    int one = 1;

    for (;;) {
        unsigned char hdr[2];
        size_t len;
        unsigned long t0;
        int rlen;

        setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
        if (read_full(fd, hdr, 2) < 0)
            return;
        len = (size_t)hdr[0] << 8 | hdr[1];
        if (read_full(fd, msg, len) < 0)
            return;
        t0 = now_us();
        if (len == 1) {
            bool was_verified = c->verified;

            switch (msg[0]) {
            case 0: /* power off */
                card_power_off(c);
                logf_("card %s: power off%s", name, was_verified ? ", PIN login dropped" : "");
                break;
            case 1: /* power on */
                if (!c->powered) {
                    card_power_on(c);
                    logf_("card %s: power on", name);
                }
                break;
            case 2: /* reset */
                card_power_off(c);
                card_power_on(c);
                logf_("card %s: reset%s", name, was_verified ? ", PIN login dropped" : "");
                break;
            case 4: /* get ATR: from the cache, never by powering on again */
                if (send_frame(fd, c->atr, (size_t)c->atr_len) < 0)
                    return;
                break;
            default:
                break;
            }
            continue;
        }
        if (sh->power_cuts != *power_cuts) { /* power was cut since the last APDU */
            *power_cuts = sh->power_cuts;
            card_power_off(c);
            card_power_on(c);
            logf_("card %s: power cut: reset, logged out", name);
        }
        while (sh->mute)
            usleep(20000);
        if (sh->delay_ms > 0)
            usleep((useconds_t)sh->delay_ms * 1000);
        sh->now.apdus++;
        if (len >= 2)
            sh->now.by_ins[msg[1]]++;
        sh->now.bytes_in += len;
        rlen = card_apdu(c, msg, len, rsp, (int)sizeof rsp);
        sh->now.bytes_out += (unsigned long)rlen;
        sh->now.busy_us += now_us() - t0;
        /* The log never holds VERIFY data: it is a PIN. */
        logf_("apdu %02X %02X %02X %02X len=%zu sw=%02X%02X", msg[0], len > 1 ? msg[1] : 0,
              len > 2 ? msg[2] : 0, len > 3 ? msg[3] : 0, len, rlen >= 2 ? rsp[rlen - 2] : 0,
              rlen >= 2 ? rsp[rlen - 1] : 0);
        if (send_frame(fd, rsp, (size_t)rlen) < 0)
            return;
    }
}

/* The card process: one persona, inserted until killed. */
static int card_main(const char *name)
{
    char opts[PATH_MAX + 128];
    struct card c = {.name = name};
    VCardEmulOptions *options;
    int fd, power_cuts = sh->power_cuts;

    if (load_atr(name, &c) == 0) {
        logf_("card %s: not a CAC (ATR from its atr file): every APDU refused", name);
    } else {
        if (load_pin(name, c.pin, sizeof c.pin) < 0) {
            logf_("card %s: no usable PIN file", name);
            return 2;
        }
        c.tries_left = pin_tries(name);
        snprintf(opts, sizeof opts,
                 "db=\"sql:%s/cards/%s/nssdb\" use_hw=no soft=(,VCAC-%s,CAC,,id,sig,enc)",
                 pki_dir, name, name);
        options = vcard_emul_options(opts);
        if (!options || vcard_emul_init(options) != VCARD_EMUL_OK) {
            logf_("card %s: libcacard could not load the NSS database", name);
            return 2;
        }
        snprintf(opts, sizeof opts, "VCAC-%s", name);
        c.reader = vreader_get_reader_by_name(opts);
        if (!c.reader || vreader_card_is_present(c.reader) != VREADER_OK) {
            logf_("card %s: libcacard made no card", name);
            return 2;
        }
    }
    card_power_on(&c); /* the ATR is answered from this cache from now on */
    logf_("card %s: inserted, session %lu", name, sh->now.session);
    /* A card stays in its reader until it is pulled (this process is killed):
     * when vpcd drops the connection (it does after any failed transfer, and
     * may close a fresh one when a failure of the card before races with it),
     * the card connects again, as a card still in a real reader is seen again. */
    for (int connections = 0;; connections++) {
        fd = connect_vpcd();
        if (fd < 0) {
            logf_("card %s: cannot reach vpcd: %s", name, strerror(errno));
            return 2;
        }
        if (connections > 0)
            logf_("card %s: connected to vpcd again (%d)", name, connections);
        serve_vpcd(&c, fd, &power_cuts);
        close(fd);
        logf_("card %s: vpcd closed the connection", name);
        card_power_off(&c);
    }
}

/* ---- the supervisor ---- */

/* Adds the finished session's counters to the totals. */
static void counters_close_session(void)
{
    struct card_counters *n = &sh->now, *t = &sh->total;

    t->apdus += n->apdus;
    for (int i = 0; i < 256; i++)
        t->by_ins[i] += n->by_ins[i];
    t->verifies += n->verifies;
    t->verify_failed += n->verify_failed;
    t->verify_status += n->verify_status;
    t->signatures += n->signatures;
    t->bytes_in += n->bytes_in;
    t->bytes_out += n->bytes_out;
    t->busy_us += n->busy_us;
}

/* The path of NAME in this program's directory (the bench's build), into
 * buf[PATH_MAX]; -1 when it cannot be known. */
static int beside_me(char *buf, const char *name)
{
    ssize_t n = readlink("/proc/self/exe", buf, PATH_MAX - 1);
    char *slash;

    if (n <= 0)
        return -1;
    buf[n] = '\0';
    slash = strrchr(buf, '/');
    if (!slash || (size_t)(slash - buf) + 2 + strlen(name) > PATH_MAX)
        return -1;
    snprintf(slash + 1, PATH_MAX - (size_t)(slash + 1 - buf), "%s", name);
    return 0;
}

/* Waits, up to timeout_ms, until pcscd reports the reader without a card, as
 * a PC/SC client does (tests/bench/pcscwait, beside this program). A real
 * reader reports a pull at once; vpcd's only between two of pcscd's polls,
 * 400 ms apart, so a card inserted before that poll would take the place of
 * the one pulled unseen, and pcscd would keep the reader's state from before
 * (a failed reset leaves it "mute" for good): the wedged reader of issue 20. */
static void wait_pull_seen(int timeout_ms)
{
    char exe[PATH_MAX], arg[16];
    pid_t pid;
    int status;

    if (pcscd_pid <= 0 || beside_me(exe, "pcscwait") < 0)
        return;
    snprintf(arg, sizeof arg, "%d", timeout_ms);
    pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(log_fd, 2);
        /* pcscd's own socket in this namespace, whatever the caller's was */
        setenv("PCSCLITE_CSOCK_NAME", "/run/pcscd/pcscd.comm", 1);
        execl(exe, "pcscwait", "absent", arg, (char *)NULL);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        logf_("pcscd did not report the pull within %d ms", timeout_ms);
}

/* Ends the card process, if any; pull_seen_ms > 0: then waits that long at most
 * for PC/SC to see the reader empty (a pull, as the remove command makes one). */
static void reap_card(int pull_seen_ms)
{
    if (card_pid > 0) {
        kill(card_pid, SIGTERM);
        waitpid(card_pid, NULL, 0);
        card_pid = -1;
        if (pull_seen_ms > 0)
            wait_pull_seen(pull_seen_ms);
    }
    if (sh->card[0]) {
        logf_("card %s removed", sh->card);
        counters_close_session();
        sh->card[0] = '\0';
    }
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n >= NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
              s[i] == '_'))
            return false;
    return true;
}

static int insert_card(const char *name, char *reply, size_t size)
{
    char path[PATH_MAX];
    struct card_counters fresh;
    pid_t pid;

    if (!valid_name(name)) {
        snprintf(reply, size, "err bad card name");
        return -1;
    }
    pathf(path, "%s/cards/%s/nssdb", pki_dir, name);
    if (access(path, R_OK) != 0) {
        pathf(path, "%s/cards/%s/atr", pki_dir, name); /* a card that is not a CAC */
        if (access(path, R_OK) != 0) {
            snprintf(reply, size, "err no such card: %s", name);
            return -1;
        }
    }
    if (sh->card[0]) {
        snprintf(reply, size, "err card %s is inserted; remove it first", sh->card);
        return -1;
    }
    if (!pin_tries(name)) {
        snprintf(reply, size, "err too many cards");
        return -1;
    }
    memset(&fresh, 0, sizeof fresh);
    fresh.session = sh->now.session + 1;
    sh->now = fresh;
    snprintf(sh->card, sizeof sh->card, "%s", name);
    pid = fork();
    if (pid < 0) {
        snprintf(reply, size, "err fork: %s", strerror(errno));
        sh->card[0] = '\0';
        return -1;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGTERM, SIG_DFL);
        _exit(card_main(name));
    }
    card_pid = pid;
    logf_("card %s inserted (pid %d)", name, (int)pid);
    snprintf(reply, size, "ok inserted %s session %lu", name, sh->now.session);
    return 0;
}

static void print_counters(char *reply, size_t size, const struct card_counters *c,
                           const char *label)
{
    size_t n;

    n = (size_t)snprintf(reply, size,
                         "%s session=%lu apdus=%lu verifies=%lu verify_failed=%lu "
                         "verify_status=%lu signatures=%lu bytes_in=%lu bytes_out=%lu "
                         "busy_us=%lu",
                         label, c->session, c->apdus, c->verifies, c->verify_failed,
                         c->verify_status, c->signatures, c->bytes_in, c->bytes_out,
                         c->busy_us);
    for (int i = 0; i < 256 && n < size; i++)
        if (c->by_ins[i])
            n += (size_t)snprintf(reply + n, size - n, " ins_%02X=%lu", i, c->by_ins[i]);
}

static void start_pcscd(void)
{
    pid_t pid = fork();

    if (pid < 0)
        die("fork pcscd");
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(pcscd_log_fd, 1);
        dup2(pcscd_log_fd, 2);
        if (getenv("VCACD_PCSCD_DEBUG")) /* every driver call in pcscd.log */
            execlp("pcscd", "pcscd", "--foreground", "--debug", "--config", conf_dir,
                   (char *)NULL);
        else
            execlp("pcscd", "pcscd", "--foreground", "--config", conf_dir, (char *)NULL);
        _exit(127);
    }
    pcscd_pid = pid;
    logf_("pcscd started (pid %d)", (int)pid);
}

static void stop_pcscd(int sig)
{
    if (pcscd_pid > 0) {
        kill(pcscd_pid, sig);
        waitpid(pcscd_pid, NULL, 0);
        logf_("pcscd stopped (signal %d)", sig);
        pcscd_pid = -1;
    }
}

/* Runs one control command; the reply is one line. Returns 1 to quit. */
static int command(char *line, char *reply, size_t size)
{
    char *arg = strchr(line, ' ');

    if (arg)
        *arg++ = '\0';
    if (strcmp(line, "insert") == 0 && arg) {
        insert_card(arg, reply, size);
    } else if (strcmp(line, "remove") == 0) {
        if (!sh->card[0]) {
            snprintf(reply, size, "ok no card");
        } else {
            reap_card(3000);
            snprintf(reply, size, "ok removed");
        }
    } else if (strcmp(line, "status") == 0) {
        snprintf(reply, size, "ok card=%s pcscd=%d delay_ms=%d mute=%d",
                 sh->card[0] ? sh->card : "-", (int)pcscd_pid, sh->delay_ms, sh->mute);
    } else if (strcmp(line, "counters") == 0) {
        print_counters(reply, size, &sh->now, "ok");
    } else if (strcmp(line, "totals") == 0) {
        struct card_counters t = sh->total;
        if (sh->card[0]) { /* include the session still open */
            struct card_counters saved = sh->total;
            counters_close_session();
            t = sh->total;
            sh->total = saved;
        }
        print_counters(reply, size, &t, "ok");
    } else if (strcmp(line, "delay") == 0 && arg) {
        char *end;
        long ms = strtol(arg, &end, 10);
        if (*end || ms < 0 || ms > 10000) {
            snprintf(reply, size, "err delay wants 0..10000 ms");
        } else {
            sh->delay_ms = (int)ms;
            snprintf(reply, size, "ok delay_ms=%ld", ms);
        }
    } else if (strcmp(line, "poweroff") == 0) {
        sh->power_cuts++;
        snprintf(reply, size, "ok power cut: the card resets and forgets its PIN login");
    } else if (strcmp(line, "mute") == 0 && arg) {
        sh->mute = strcmp(arg, "on") == 0;
        snprintf(reply, size, "ok mute=%d", sh->mute);
    } else if (strcmp(line, "pin") == 0 && arg && valid_name(arg)) {
        int *t = pin_tries(arg);
        snprintf(reply, size, "ok %s tries_left=%d", arg, t ? *t : -1);
    } else if (strcmp(line, "block") == 0 && arg && valid_name(arg)) {
        int *t = pin_tries(arg);
        if (t)
            *t = 0;
        snprintf(reply, size, "ok %s tries_left=%d", arg, t ? *t : -1);
    } else if (strcmp(line, "unblock") == 0 && arg && valid_name(arg)) {
        int *t = pin_tries(arg);
        if (t)
            *t = PIN_TRIES;
        snprintf(reply, size, "ok %s tries_left=%d", arg, t ? *t : -1);
    } else if (strcmp(line, "pcscd") == 0 && arg) {
        if (strcmp(arg, "stop") == 0) {
            stop_pcscd(SIGTERM);
        } else if (strcmp(arg, "start") == 0) {
            if (pcscd_pid < 0)
                start_pcscd();
        } else if (strcmp(arg, "restart") == 0) {
            stop_pcscd(SIGTERM);
            start_pcscd();
        } else {
            snprintf(reply, size, "err pcscd start|stop|restart");
            return 0;
        }
        snprintf(reply, size, "ok pcscd=%d", (int)pcscd_pid);
    } else if (strcmp(line, "quit") == 0) {
        snprintf(reply, size, "ok bye");
        return 1;
    } else {
        snprintf(reply, size,
                 "err commands: insert NAME | remove | status | counters | totals | "
                 "delay MS | mute on|off | poweroff | pin NAME | block NAME | unblock NAME | "
                 "pcscd start|stop|restart | quit");
    }
    return 0;
}

/* Brings the loopback interface of our new network namespace up. */
static void loopback_up(void)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        die("socket");
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        die("SIOCGIFFLAGS lo");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
        die("SIOCSIFFLAGS lo");
    close(fd);
}

static int open_ctl_socket(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        die(path);
    }
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 8) < 0)
        die("control socket");
    return fd;
}

static void write_reader_conf(const char *dir)
{
    char path[PATH_MAX], driver[PATH_MAX];
    FILE *f;

    if (beside_me(driver, "libifdbench.so") < 0)
        die("the bench's reader driver (libifdbench.so beside vcacd)");

    pathf(path, "%s/run/reader.conf.d", dir);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        die(path);
    pathf(path, "%s/run/reader.conf.d/vpcd", dir);
    f = fopen(path, "w");
    if (!f)
        die(path);
    fprintf(f, "FRIENDLYNAME \"Virtual CAC Reader\"\n"
               "DEVICENAME   /dev/null:%d\n"
               "LIBPATH      %s\n",
            VPCD_PORT, driver);
    fclose(f);
}

/* "vcacd ctl RUNDIR COMMAND...": sends one command, prints the reply and
 * exits 0 when it starts with "ok". */
static int ctl_main(int argc, char **argv)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char line[LINE_MAX_LEN] = "", reply[4096];
    size_t n = 0;
    int fd;

    for (int i = 3; i < argc; i++)
        n += (size_t)snprintf(line + n, sizeof line - n, "%s%s", i > 3 ? " " : "", argv[i]);
    if (n >= sizeof line - 1) {
        fprintf(stderr, "vcacd ctl: command too long\n");
        return 2;
    }
    line[n++] = '\n';
    if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/ctl.sock", argv[2]) >=
        sizeof sa.sun_path) {
        fprintf(stderr, "vcacd ctl: path too long\n");
        return 2;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        fprintf(stderr, "vcacd ctl: cannot reach the bench at %s: %s\n", sa.sun_path,
                strerror(errno));
        return 2;
    }
    if (write(fd, line, n) != (ssize_t)n)
        return 2;
    n = 0;
    while (n < sizeof reply - 1) {
        ssize_t r = read(fd, reply + n, sizeof reply - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (reply[n - 1] == '\n')
            break;
    }
    reply[n] = '\0';
    close(fd);
    fputs(reply, stdout);
    return strncmp(reply, "ok", 2) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    char path[PATH_MAX], runpath[PATH_MAX];
    struct pollfd pfd[2 + MAX_CLIENTS];
    char inbuf[MAX_CLIENTS][LINE_MAX_LEN];
    size_t inlen[MAX_CLIENTS] = {0};
    int clients[MAX_CLIENTS];
    int ctl_fd, sig_fd, run_fd, quit = 0;
    const char *run_dir;
    sigset_t mask;

    if (argc >= 4 && strcmp(argv[1], "ctl") == 0)
        return ctl_main(argc, argv);
    if (argc != 3) {
        fprintf(stderr, "usage: vcacd RUNDIR PKIDIR\n"
                        "       vcacd ctl RUNDIR COMMAND...\n"
                        "  RUNDIR gets ctl.sock, run/pcscd/pcscd.comm and the logs\n");
        return 2;
    }
    run_dir = argv[1];
    pki_dir = argv[2];
    for (int i = 0; i < MAX_CLIENTS; i++)
        clients[i] = -1;

    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        die("mmap");
    memset(sh, 0, sizeof *sh);

    /* Everything under RUNDIR is opened before /run is covered. */
    run_fd = open(run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (run_fd < 0)
        die(run_dir);
    pathf(path, "%s/vcacd.log", run_dir);
    log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    pathf(path, "%s/pcscd.log", run_dir);
    pcscd_log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0 || pcscd_log_fd < 0)
        die(path);
    pathf(runpath, "%s/run", run_dir);
    if (mkdir(runpath, 0755) < 0 && errno != EEXIST)
        die(runpath);
    write_reader_conf(run_dir);
    pathf(path, "%s/run/pcscd", run_dir);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        die(path);
    pathf(path, "%s/ctl.sock", run_dir);
    ctl_fd = open_ctl_socket(path);

    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sig_fd < 0)
        die("signalfd");
    signal(SIGPIPE, SIG_IGN);

    /* A mount namespace of our own, where /run is ours, so pcscd's fixed
     * socket path lands in RUNDIR; a network namespace of our own, so vpcd's
     * port never meets another bench's. */
    if (unshare(CLONE_NEWNS | CLONE_NEWNET) < 0)
        die("unshare (the bench needs root or user namespaces)");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        die("make / private");
    if (mount(runpath, "/run", NULL, MS_BIND, NULL) < 0)
        die("bind RUNDIR/run over /run");
    loopback_up();
    start_pcscd();
    logf_("vcacd ready: pki %s", pki_dir);

    while (!quit) {
        int n = 0;

        pfd[n++] = (struct pollfd){.fd = sig_fd, .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = ctl_fd, .events = POLLIN};
        for (int i = 0; i < MAX_CLIENTS; i++)
            pfd[n++] = (struct pollfd){.fd = clients[i], .events = POLLIN};
        if (poll(pfd, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        if (pfd[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sig_fd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGCHLD) {
                    pid_t pid;
                    int status;
                    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                        if (pid == card_pid) {
                            logf_("card process ended (status %d)", status);
                            card_pid = -1;
                            reap_card(0);
                        } else if (pid == pcscd_pid) {
                            logf_("pcscd ended (status %d)", status);
                            pcscd_pid = -1;
                        }
                    }
                } else {
                    quit = 1;
                }
            }
        }
        if (pfd[1].revents & POLLIN) {
            int fd = accept4(ctl_fd, NULL, NULL, SOCK_CLOEXEC);
            int slot = -1;
            for (int i = 0; i < MAX_CLIENTS && fd >= 0; i++)
                if (clients[i] < 0) {
                    slot = i;
                    break;
                }
            if (slot < 0 && fd >= 0) {
                close(fd);
            } else if (fd >= 0) {
                clients[slot] = fd;
                inlen[slot] = 0;
            }
        }
        for (int i = 0; i < MAX_CLIENTS; i++) {
            char reply[4096];
            char *nl;
            ssize_t r;

            if (clients[i] < 0 || !(pfd[2 + i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            r = read(clients[i], inbuf[i] + inlen[i], sizeof inbuf[i] - 1 - inlen[i]);
            if (r <= 0) {
                close(clients[i]);
                clients[i] = -1;
                continue;
            }
            inlen[i] += (size_t)r;
            inbuf[i][inlen[i]] = '\0';
            while ((nl = strchr(inbuf[i], '\n')) != NULL) {
                size_t used = (size_t)(nl - inbuf[i]) + 1;
                *nl = '\0';
                if (nl > inbuf[i] && nl[-1] == '\r')
                    nl[-1] = '\0';
                quit |= command(inbuf[i], reply, sizeof reply - 1);
                strcat(reply, "\n");
                if (write(clients[i], reply, strlen(reply)) < 0)
                    logf_("control client went away");
                memmove(inbuf[i], inbuf[i] + used, inlen[i] - used + 1);
                inlen[i] -= used;
            }
            if (inlen[i] >= sizeof inbuf[i] - 1) { /* a line too long: drop the client */
                close(clients[i]);
                clients[i] = -1;
            }
        }
    }
    reap_card(0);
    stop_pcscd(SIGTERM);
    unlinkat(run_fd, "ctl.sock", 0);
    logf_("vcacd stopped");
    return 0;
}
