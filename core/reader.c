/* Readers: a PC/SC watcher thread that turns reader and card changes into events. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <winscard.h>

#include "internal.h"

#define PNP_READER "\\\\?PnP?\\Notification"
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 4000

struct cacreg_watcher {
    pthread_t thread;
    pthread_mutex_t lock;
    SCARDCONTEXT ctx;     /* valid while has_ctx; guarded by lock */
    bool has_ctx;
    bool stopping;        /* guarded by lock */
    int event_wr;         /* events out; not ours to close */
    int wake_rd, wake_wr; /* wakes the back-off sleep on stop */
    char filter[128];
    cacreg_readers state; /* guarded by lock */
};

static void emit(cacreg_watcher *w, cacreg_event_type type, const char *reader)
{
    cacreg_event ev;

    memset(&ev, 0, sizeof ev);
    ev.type = type;
    if (reader)
        snprintf(ev.reader, sizeof ev.reader, "%s", reader);
    /* One write of less than PIPE_BUF bytes: never interleaved. */
    if (write(w->event_wr, &ev, sizeof ev) != (ssize_t)sizeof ev)
        return;
}

static bool stopping(cacreg_watcher *w)
{
    bool s;

    pthread_mutex_lock(&w->lock);
    s = w->stopping;
    pthread_mutex_unlock(&w->lock);
    return s;
}

/* Sleeps ms, or less if stop is asked; returns true when stopping. */
static bool backoff_sleep(cacreg_watcher *w, int ms)
{
    struct pollfd pfd = {.fd = w->wake_rd, .events = POLLIN};

    (void)poll(&pfd, 1, ms);
    return stopping(w);
}

/* The socket pcsc-lite clients use. */
static const char *pcsc_socket_path(void)
{
    const char *p = getenv("PCSCLITE_CSOCK_NAME");

    return p && *p ? p : "/run/pcscd/pcscd.comm";
}

/*
 * Tells "pcscd is not running" from "pcscd refused us". pcscd 1.9 refuses a
 * session its polkit policy denies by closing the connection at once; newer
 * ones answer SCARD_W_SECURITY_VIOLATION. So: a refusal code, or a socket
 * that takes connections while contexts keep failing (twice in a row: a
 * daemon restart lasts less), is a refusal; no socket is no daemon.
 * *live_failures counts the failures against a live socket.
 */
static cacreg_pcsc_status diagnose_failure(LONG rv, int *live_failures, char *detail, size_t size)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    const char *path = pcsc_socket_path();
    int fd, ok;

    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    if (!ok) {
        *live_failures = 0;
        snprintf(detail, size, "The smart-card service (pcscd) is not running (%s: %s).", path,
                 strerror(errno));
        return CACREG_PCSC_DOWN;
    }
    if (rv != SCARD_W_SECURITY_VIOLATION && rv != SCARD_E_NO_ACCESS && ++*live_failures < 2) {
        snprintf(detail, size, "The smart-card service (pcscd) is starting or stopping (%s).",
                 pcsc_stringify_error(rv));
        return CACREG_PCSC_DOWN;
    }
    snprintf(detail, size,
             "The smart-card service (pcscd) refuses this session (%s): its polkit policy "
             "allows only local, active sessions, and an SSH session is neither.",
             pcsc_stringify_error(rv));
    return CACREG_PCSC_DENIED;
}

static void set_status(cacreg_watcher *w, cacreg_pcsc_status status, const char *detail)
{
    cacreg_pcsc_status old;

    pthread_mutex_lock(&w->lock);
    old = w->state.status;
    w->state.status = status;
    snprintf(w->state.detail, sizeof w->state.detail, "%s", detail ? detail : "");
    if (status != CACREG_PCSC_UP)
        w->state.count = 0;
    pthread_mutex_unlock(&w->lock);
    if (old == status)
        return;
    emit(w, status == CACREG_PCSC_UP     ? CACREG_EV_PCSC_UP
            : status == CACREG_PCSC_DENIED ? CACREG_EV_PCSC_DENIED
                                           : CACREG_EV_PCSC_DOWN,
         NULL);
}

/* Lists the readers that pass the filter into names; returns how many. */
static size_t list_readers(cacreg_watcher *w, SCARDCONTEXT ctx, char names[][128], LONG *rv)
{
    char buf[4096];
    DWORD len = sizeof buf;
    size_t n = 0;

    *rv = SCardListReaders(ctx, NULL, buf, &len);
    if (*rv == SCARD_E_NO_READERS_AVAILABLE) {
        *rv = SCARD_S_SUCCESS;
        return 0;
    }
    if (*rv != SCARD_S_SUCCESS)
        return 0;
    for (const char *p = buf; *p && p < buf + len && n < CACREG_MAX_READERS; p += strlen(p) + 1) {
        size_t plen = strlen(p);
        if ((w->filter[0] && !strstr(p, w->filter)) || plen >= 128)
            continue; /* filtered out, or a name too long to hand back whole */
        memcpy(names[n++], p, plen + 1);
    }
    return n;
}

/* Records the readers' states and emits what changed. */
static void publish(cacreg_watcher *w, SCARD_READERSTATE *rs, size_t n, bool list_changed)
{
    cacreg_event_type changes[CACREG_MAX_READERS];
    char names[CACREG_MAX_READERS][128];
    size_t nchanges = 0;

    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < n; i++) {
        cacreg_reader *r = &w->state.readers[i];
        bool present = rs[i].dwEventState & SCARD_STATE_PRESENT;
        bool was_present = !list_changed && i < w->state.count && r->card_present &&
                           strcmp(r->name, rs[i].szReader) == 0;

        if (present != was_present && (present || !list_changed)) {
            changes[nchanges] = present ? CACREG_EV_CARD_IN : CACREG_EV_CARD_OUT;
            snprintf(names[nchanges++], 128, "%s", rs[i].szReader);
        }
        snprintf(r->name, sizeof r->name, "%s", rs[i].szReader);
        r->card_present = present;
        r->exclusive = rs[i].dwEventState & SCARD_STATE_EXCLUSIVE;
        r->mute = rs[i].dwEventState & SCARD_STATE_MUTE;
        r->atr_len = present && rs[i].cbAtr <= sizeof r->atr ? rs[i].cbAtr : 0;
        memcpy(r->atr, rs[i].rgbAtr, r->atr_len);
    }
    w->state.count = n;
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < nchanges; i++)
        emit(w, changes[i], names[i]);
    emit(w, CACREG_EV_READERS, NULL);
}

/* Watches with one context until it fails or stop is asked; returns the failure. */
static LONG watch(cacreg_watcher *w, SCARDCONTEXT ctx)
{
    char names[CACREG_MAX_READERS][128];
    SCARD_READERSTATE rs[CACREG_MAX_READERS + 1];
    bool list_changed = true;
    size_t n = 0;
    LONG rv;

    for (;;) {
        if (list_changed) {
            n = list_readers(w, ctx, names, &rv);
            if (rv != SCARD_S_SUCCESS)
                return rv;
            memset(rs, 0, sizeof rs);
            for (size_t i = 0; i < n; i++) {
                rs[i].szReader = names[i];
                rs[i].dwCurrentState = SCARD_STATE_UNAWARE;
            }
            rs[n].szReader = PNP_READER;
            rs[n].dwCurrentState = SCARD_STATE_UNAWARE;
            /* Learn the current state without waiting. */
            rv = SCardGetStatusChange(ctx, 0, rs, (DWORD)n + 1);
            if (rv != SCARD_S_SUCCESS && rv != SCARD_E_TIMEOUT)
                return rv;
            publish(w, rs, n, true);
            list_changed = false;
        }
        for (size_t i = 0; i <= n; i++)
            rs[i].dwCurrentState = rs[i].dwEventState & ~SCARD_STATE_CHANGED;
        if (stopping(w))
            return SCARD_E_CANCELLED;
        rv = SCardGetStatusChange(ctx, INFINITE, rs, (DWORD)n + 1);
        if (rv == SCARD_E_CANCELLED && stopping(w))
            return rv;
        if (rv == SCARD_E_TIMEOUT)
            continue;
        if (rv != SCARD_S_SUCCESS)
            return rv;
        if (rs[n].dwEventState & SCARD_STATE_CHANGED) {
            list_changed = true;
            continue;
        }
        for (size_t i = 0; i < n; i++)
            if (rs[i].dwEventState & (SCARD_STATE_UNKNOWN | SCARD_STATE_IGNORE))
                list_changed = true; /* the reader is gone */
        if (!list_changed)
            publish(w, rs, n, false);
    }
}

static void *watcher_main(void *arg)
{
    cacreg_watcher *w = arg;
    int backoff = BACKOFF_MIN_MS, live_failures = 0;
    char detail[512];

    while (!stopping(w)) {
        SCARDCONTEXT ctx;
        LONG rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);

        if (rv != SCARD_S_SUCCESS) {
            set_status(w, diagnose_failure(rv, &live_failures, detail, sizeof detail), detail);
            if (backoff_sleep(w, backoff))
                break;
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        pthread_mutex_lock(&w->lock);
        w->ctx = ctx;
        w->has_ctx = !w->stopping;
        pthread_mutex_unlock(&w->lock);
        if (!w->has_ctx) {
            SCardReleaseContext(ctx);
            break;
        }
        set_status(w, CACREG_PCSC_UP, NULL);
        backoff = BACKOFF_MIN_MS;
        live_failures = 0;
        rv = watch(w, ctx);
        pthread_mutex_lock(&w->lock);
        w->has_ctx = false;
        pthread_mutex_unlock(&w->lock);
        SCardReleaseContext(ctx);
        if (stopping(w))
            break;
        snprintf(detail, sizeof detail, "The smart-card service (pcscd) went away (%s).",
                 pcsc_stringify_error(rv));
        set_status(w, CACREG_PCSC_DOWN, detail);
        emit(w, CACREG_EV_READERS, NULL);
        if (backoff_sleep(w, backoff))
            break;
    }
    return NULL;
}

cacreg_err cacreg_watcher_start(cacreg_watcher **out, const char *filter, int event_wr)
{
    cacreg_watcher *w = calloc(1, sizeof *w);
    int wake[2] = {-1, -1};

    *out = NULL;
    if (!w)
        return CACREG_ERR_NOMEM;
    if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) < 0)
        goto fail;
    w->event_wr = event_wr;
    w->wake_rd = wake[0];
    w->wake_wr = wake[1];
    snprintf(w->filter, sizeof w->filter, "%s", filter ? filter : "");
    w->state.status = CACREG_PCSC_STARTING;
    pthread_mutex_init(&w->lock, NULL);
    if (pthread_create(&w->thread, NULL, watcher_main, w) != 0) {
        pthread_mutex_destroy(&w->lock);
        goto fail;
    }
    *out = w;
    return CACREG_OK;
fail:
    for (int i = 0; i < 2; i++)
        if (wake[i] >= 0)
            close(wake[i]);
    free(w);
    return CACREG_ERR_SYSTEM;
}

void cacreg_watcher_stop(cacreg_watcher *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_mutex_unlock(&w->lock);
    if (write(w->wake_wr, "x", 1) < 0) {
        /* the pipe is non-blocking and may be full: the thread is waking anyway */
    }
    /* SCardCancel only ends a wait already in progress, so repeat it until the
     * thread, which checks the flag before each wait, has left. */
    for (;;) {
        struct timespec deadline;

        pthread_mutex_lock(&w->lock);
        if (w->has_ctx)
            SCardCancel(w->ctx);
        pthread_mutex_unlock(&w->lock);
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_nsec += 50 * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        if (pthread_timedjoin_np(w->thread, NULL, &deadline) == 0)
            break;
    }
    pthread_mutex_destroy(&w->lock);
    close(w->wake_rd);
    close(w->wake_wr);
    free(w);
}

void cacreg_watcher_snapshot(cacreg_watcher *w, cacreg_readers *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->state;
    pthread_mutex_unlock(&w->lock);
}

void cacreg_pcsc_polkit_rule(const char *user, char *path, size_t path_size, char *rule,
                             size_t rule_size)
{
    char quoted[6 * 64 + 1];
    size_t n = 0;

    /* The name inside a JavaScript string: letters, digits and ._@- as they are, every
     * other byte as \u00XX (a quote, a backslash or an escape sequence cannot get out). */
    for (const unsigned char *p = (const unsigned char *)user; *p && n + 7 < sizeof quoted; p++)
        n += (size_t)snprintf(quoted + n, sizeof quoted - n,
                              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                                      (*p >= '0' && *p <= '9') || strchr("._@-", *p)
                                  ? "%c"
                                  : "\\u%04x",
                              *p);
    quoted[n] = '\0';
    snprintf(path, path_size, "/etc/polkit-1/rules.d/50-cacreg-pcsc.rules");
    snprintf(rule, rule_size,
             "polkit.addRule(function(action, subject) {\n"
             "    if ((action.id == \"org.debian.pcsc-lite.access_pcsc\" ||\n"
             "         action.id == \"org.debian.pcsc-lite.access_card\") &&\n"
             "        subject.user == \"%s\") {\n"
             "        return polkit.Result.YES;\n"
             "    }\n"
             "});\n",
             quoted);
}

cacreg_err cacreg_reader_reset(const char *reader, char *err, size_t err_size)
{
    SCARDCONTEXT ctx;
    SCARDHANDLE card;
    DWORD protocol;
    LONG rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);

    if (rv != SCARD_S_SUCCESS) {
        cacreg_errf(err, err_size, "The smart-card service cannot be reached to reset the card.");
        return CACREG_ERR_SYSTEM;
    }
    rv = SCardConnect(ctx, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
                      &card, &protocol);
    if (rv == SCARD_S_SUCCESS)
        rv = SCardDisconnect(card, SCARD_RESET_CARD);
    SCardReleaseContext(ctx);
    if (rv == SCARD_E_NO_SMARTCARD || rv == SCARD_W_REMOVED_CARD)
        return CACREG_OK; /* gone: a card out of the reader has lost its power, and its login */
    if (rv != SCARD_S_SUCCESS) {
        cacreg_errf(err, err_size, "The card could not be reset (PC/SC error 0x%lx).",
                    (unsigned long)rv);
        return CACREG_ERR_CARD;
    }
    return CACREG_OK;
}

bool cacreg_reader_card_stays(const char *reader, int wait_ms)
{
    SCARDCONTEXT ctx;
    SCARD_READERSTATE rs;
    bool stays = false;
    LONG rv;

    if (SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx) != SCARD_S_SUCCESS)
        return false;
    memset(&rs, 0, sizeof rs);
    rs.szReader = reader;
    rs.dwCurrentState = SCARD_STATE_UNAWARE;
    rv = SCardGetStatusChange(ctx, 0, &rs, 1);
    if (rv == SCARD_S_SUCCESS && (rs.dwEventState & SCARD_STATE_PRESENT)) {
        /* Whatever changes now (the upper 16 bits count insertions and removals) is a card
         * that went, or another card. */
        rs.dwCurrentState = rs.dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
        rv = SCardGetStatusChange(ctx, (DWORD)wait_ms, &rs, 1);
        stays = rv == SCARD_E_TIMEOUT;
    }
    SCardReleaseContext(ctx);
    return stays;
}
