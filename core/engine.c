/*
 * The engine: the flow (core/flow.c) joined to the real world. It owns the
 * reader watcher, the card worker, the token, the portal client and the
 * trust store; it does what the flow asks through the flow's io, and turns
 * what the threads report (fixed-size events on one pipe) into the flow's
 * events. Each card job has its own struct, written by the loop before the
 * job is submitted and read by the loop after its event: the worker owns it
 * in between.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "internal.h"

struct read_job {
    int id;
    char reader[128];
    char err[512];
    cacreg_card card;
    size_t chosen;
    cacreg_verdict verdict;
    char detail[512];
};

struct pin_job {
    int id;
    char reader[128];
    char err[512];
    cacreg_secret *pin;  /* the job's own locked copy, wiped by the login */
    int tries_left;
    EVP_PKEY *key;       /* the identity key and certificate, after a right PIN */
    X509 *cert;
};

struct forget_job {
    int id;
    char reader[128];
    bool reset;
    char err[256];
};

/* A forwarded card (p11-kit-client, cacreg ssh): no PC/SC here, so its slots are polled. */
struct poll_job {
    int id;
    char err[256];
    cacreg_readers readers;
    char serials[CACREG_MAX_READERS][CACREG_SERIAL_MAX];
};

/* How often a forwarded card's slots are looked at: each look is three calls over the
 * forwarding (one round trip each), and a card inserted later needs the module
 * initialised again (a new connection), so not too often either. */
#define POLL_MS 700

struct ticker {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool started, stop;
    int event_wr;
};

struct cacreg_engine {
    cacreg_config cfg;
    cacreg_trust *trust;
    cacreg_worker *worker;
    cacreg_watcher *watcher; /* NULL for a forwarded card: */
    bool forwarded;          /* its slots are polled instead, */
    struct ticker ticker;    /* every POLL_MS, */
    struct poll_job poll;    /* by this job, */
    cacreg_readers remote;   /* into this, */
    char serials[CACREG_MAX_READERS][CACREG_SERIAL_MAX]; /* a swap told by the serial */
    bool key_in_portal;      /* the login's key is the portal's: the slots stay as they are */
    cacreg_portal *portal;
    cacreg_token *token;     /* set by the load job; read after its event */
    int events[2];
    int load_id, portal_id;
    char load_err[512];
    struct read_job read;
    struct pin_job pin;
    struct forget_job forget;
    EVP_PKEY *key;           /* the last right PIN's key, until the portal takes it */
    X509 *cert;
    cacreg_flow *flow;
};

/* ---- the worker's jobs ---- */

static cacreg_err job_load(void *arg)
{
    cacreg_engine *e = arg;

    return cacreg_token_load(&e->token, e->cfg.pkcs11_module, e->cfg.opensc_file_cache,
                             e->cfg.pin_max_tries, e->load_err, sizeof e->load_err);
}

/* A read that got less than a CAC holds: complete only if the card did not go meanwhile. */
#define CAC_CERTS 3
#define CARD_GONE_WAIT_MS 800

static cacreg_err job_poll(void *arg)
{
    cacreg_engine *e = arg;
    struct poll_job *j = &e->poll;

    j->err[0] = '\0';
    return cacreg_token_slots(e->token, &j->readers, j->serials, j->err, sizeof j->err);
}

static cacreg_err job_read(void *arg)
{
    cacreg_engine *e = arg;
    struct read_job *j = &e->read;
    cacreg_err rc = cacreg_token_read(e->token, j->reader, &j->card, j->err, sizeof j->err);

    if ((rc != CACREG_OK || j->card.ncerts < CAC_CERTS) &&
        !(e->forwarded ? cacreg_token_card_stays(e->token, j->reader, j->card.serial)
                       : cacreg_reader_card_stays(j->reader, CARD_GONE_WAIT_MS))) {
        cacreg_token_forget(e->token); /* what was read is a part of the card, at most */
        cacreg_errf(j->err, sizeof j->err, "The card was removed while it was read.");
        return CACREG_ERR_NO_CARD;
    }
    if (rc == CACREG_ERR_NOT_FOUND) /* a card in the reader, and no token in its slot */
        return CACREG_ERR_NOT_CAC;
    if (rc != CACREG_OK)
        return rc;
    j->chosen = cacreg_cert_choose(j->card.certs, j->card.ncerts);
    j->detail[0] = '\0';
    j->verdict = j->chosen < j->card.ncerts
                     ? cacreg_cert_preflight(&j->card.certs[j->chosen],
                                             cacreg_token_der(e->token, j->chosen), e->trust,
                                             (long long)time(NULL), j->detail, sizeof j->detail)
                     : CACREG_VERDICT_WRONG_KIND;
    return CACREG_OK;
}

static cacreg_err job_pin(void *arg)
{
    cacreg_engine *e = arg;
    struct pin_job *j = &e->pin;
    cacreg_err rc;

    j->key = NULL;
    j->cert = NULL;
    rc = cacreg_token_login(e->token, j->reader, j->pin, &j->tries_left, j->err, sizeof j->err);
    if (rc != CACREG_OK)
        return rc;
    /* The loop gives the key to the portal, when no request is using the old one. */
    return cacreg_token_identity_key(e->token, j->reader, &j->key, &j->cert, j->err,
                                     sizeof j->err);
}

static cacreg_err job_forget(void *arg)
{
    cacreg_engine *e = arg;
    struct forget_job *j = &e->forget;

    if (e->token)
        cacreg_token_forget(e->token); /* C_Logout, and the sessions closed */
    if (!j->reset || !j->reader[0])
        return CACREG_OK;
    if (e->forwarded) /* no PC/SC here; the card is reset when the forwarding ends */
        return CACREG_OK;
    return cacreg_reader_reset(j->reader, j->err, sizeof j->err);
}

/* ---- what the flow asks for ---- */

static long long io_now_ms(void *ctx)
{
    struct timespec t;

    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

static int io_load_module(void *ctx)
{
    cacreg_engine *e = ctx;

    e->load_id = cacreg_worker_submit(e->worker, job_load, e);
    return e->load_id;
}

static int io_read_card(void *ctx, const char *reader)
{
    cacreg_engine *e = ctx;

    snprintf(e->read.reader, sizeof e->read.reader, "%s", reader);
    e->read.err[0] = '\0';
    e->read.id = cacreg_worker_submit(e->worker, job_read, e);
    return e->read.id;
}

static int io_check_pin(void *ctx, const char *reader, cacreg_secret *pin)
{
    cacreg_engine *e = ctx;

    cacreg_secret_clear(e->pin.pin);
    if (cacreg_secret_move(e->pin.pin, pin) != CACREG_OK)
        return -1;
    snprintf(e->pin.reader, sizeof e->pin.reader, "%s", reader);
    e->pin.err[0] = '\0';
    e->pin.tries_left = -1;
    e->pin.id = cacreg_worker_submit(e->worker, job_pin, e);
    if (e->pin.id < 0)
        cacreg_secret_clear(e->pin.pin);
    return e->pin.id;
}

static int io_forget_card(void *ctx, const char *reader, bool reset)
{
    cacreg_engine *e = ctx;

    snprintf(e->forget.reader, sizeof e->forget.reader, "%s", reader);
    e->forget.reset = reset;
    e->forget.err[0] = '\0';
    e->forget.id = cacreg_worker_submit(e->worker, job_forget, e);
    return e->forget.id;
}

static void drop_pending_key(cacreg_engine *e)
{
    EVP_PKEY_free(e->key);
    X509_free(e->cert);
    e->key = NULL;
    e->cert = NULL;
}

static cacreg_err io_use_key(void *ctx)
{
    cacreg_engine *e = ctx;
    cacreg_err rc = cacreg_portal_use_card(e->portal, e->cert, e->key);

    e->key_in_portal = rc == CACREG_OK;
    drop_pending_key(e); /* the portal holds its own references */
    return rc;
}

static void io_drop_key(void *ctx)
{
    cacreg_engine *e = ctx;

    drop_pending_key(e);
    cacreg_portal_forget_card(e->portal);
    e->key_in_portal = false;
}

static int io_request(void *ctx, cacreg_request kind, const char *username,
                      cacreg_secret *password)
{
    cacreg_engine *e = ctx;

    e->portal_id = cacreg_portal_request(e->portal, kind, username, password);
    return e->portal_id;
}

static void io_cancel(void *ctx)
{
    cacreg_engine *e = ctx;

    cacreg_portal_cancel(e->portal);
}

/* ---- what the threads report ---- */

/* ---- a forwarded card's slots ---- */

static void *ticker_main(void *arg)
{
    struct ticker *t = arg;
    struct timespec at;

    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        cacreg_event ev = {.type = CACREG_EV_POLL};

        at = cacreg_deadline(POLL_MS);
        while (!t->stop && pthread_cond_timedwait(&t->wake, &t->lock, &at) == 0) {
        }
        if (!t->stop && write(t->event_wr, &ev, sizeof ev) != (ssize_t)sizeof ev) {
            /* the loop is behind: the next tick will do */
        }
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

static cacreg_err ticker_start(struct ticker *t, int event_wr)
{
    t->event_wr = event_wr;
    if (pthread_mutex_init(&t->lock, NULL) != 0)
        return CACREG_ERR_SYSTEM;
    if (cacreg_cond_init_monotonic(&t->wake) != 0) {
        pthread_mutex_destroy(&t->lock);
        return CACREG_ERR_SYSTEM;
    }
    if (pthread_create(&t->thread, NULL, ticker_main, t) != 0) {
        pthread_cond_destroy(&t->wake);
        pthread_mutex_destroy(&t->lock);
        return CACREG_ERR_SYSTEM;
    }
    t->started = true;
    return CACREG_OK;
}

static void ticker_stop(struct ticker *t)
{
    if (!t->started)
        return;
    pthread_mutex_lock(&t->lock);
    t->stop = true;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    t->started = false;
}

/* The polled slots, as the watcher would have told them: the first reader whose card went
 * or changed (another serial in the same slot) is the card taken out. */
static const char *slots_changed(cacreg_engine *e)
{
    const struct poll_job *j = &e->poll;
    static char out[128];

    out[0] = '\0';
    for (size_t i = 0; i < e->remote.count && !out[0]; i++) {
        const cacreg_reader *was = &e->remote.readers[i];
        bool same = false;

        if (!was->card_present)
            continue;
        for (size_t k = 0; k < j->readers.count; k++)
            if (strcmp(j->readers.readers[k].name, was->name) == 0)
                same = j->readers.readers[k].card_present && strcmp(j->serials[k], e->serials[i]) == 0;
        if (!same)
            snprintf(out, sizeof out, "%s", was->name);
    }
    e->remote = j->readers;
    memcpy(e->serials, j->serials, sizeof e->serials);
    return out[0] ? out : NULL;
}

static void readers_now(const cacreg_engine *e, cacreg_readers *out)
{
    if (e->forwarded)
        *out = e->remote;
    else
        cacreg_watcher_snapshot(e->watcher, out);
}

/* Turns one record from the pipe into the flow's event. */
static void deliver(cacreg_engine *e, const cacreg_event *ev)
{
    cacreg_flow_event fe = {.job = ev->job, .err = ev->status, .tries_left = -1};
    cacreg_readers readers;
    cacreg_portal_result answer;
    bool loaded = false;

    if (ev->type == CACREG_EV_POLL) {
        /* Not while a login's key is out (the slots hold it), nor a look still running. */
        if (e->token && !e->poll.id && !e->key && !e->key_in_portal)
            e->poll.id = cacreg_worker_submit(e->worker, job_poll, e);
        if (e->poll.id < 0)
            e->poll.id = 0;
        return;
    }
    if (ev->type == CACREG_EV_JOB_DONE && ev->job == e->poll.id && e->poll.id > 0) {
        const char *out = slots_changed(e);

        e->poll.id = 0;
        readers_now(e, &readers);
        fe.type = CACREG_FLOW_EV_READERS;
        fe.readers = &readers;
        fe.card_out = out;
        cacreg_flow_feed(e->flow, &fe);
        return;
    }
    if (ev->type != CACREG_EV_JOB_DONE) {
        readers_now(e, &readers);
        fe.type = CACREG_FLOW_EV_READERS;
        fe.readers = &readers;
        fe.card_out = ev->type == CACREG_EV_CARD_OUT ? ev->reader : NULL;
    } else if (ev->job == e->load_id) {
        loaded = true;
        fe.type = CACREG_FLOW_EV_LOADED;
        fe.message = e->load_err;
        fe.module_path = e->token ? cacreg_token_module(e->token) : "";
    } else if (ev->job == e->read.id) {
        fe.type = CACREG_FLOW_EV_CARD_READ;
        fe.message = e->read.err;
        fe.card = &e->read.card;
        fe.chosen = e->read.chosen;
        fe.verdict = e->read.verdict;
        fe.verdict_detail = e->read.detail;
    } else if (ev->job == e->pin.id) {
        fe.type = CACREG_FLOW_EV_PIN_CHECKED;
        fe.message = e->pin.err;
        fe.tries_left = e->pin.tries_left;
        drop_pending_key(e);
        e->key = e->pin.key;
        e->cert = e->pin.cert;
        e->pin.key = NULL;
        e->pin.cert = NULL;
    } else if (ev->job == e->forget.id) {
        fe.type = CACREG_FLOW_EV_FORGOTTEN;
        fe.message = e->forget.err;
    } else if (ev->job == e->portal_id) {
        cacreg_portal_result_get(e->portal, &answer);
        fe.type = CACREG_FLOW_EV_ANSWER;
        fe.answer = &answer;
    } else {
        return;
    }
    cacreg_flow_feed(e->flow, &fe);
    if (loaded && e->forwarded) /* the first look at once, not a tick later */
        deliver(e, &(cacreg_event){.type = CACREG_EV_POLL});
}

void cacreg_engine_handle(cacreg_engine *e)
{
    cacreg_event ev;

    while (cacreg_event_read(e->events[0], &ev) == CACREG_OK)
        deliver(e, &ev);
    cacreg_flow_feed(e->flow, &(cacreg_flow_event){.type = CACREG_FLOW_EV_TICK});
}

/* ---- the public side ---- */

cacreg_err cacreg_engine_new(cacreg_engine **out, const cacreg_config *cfg, char *err,
                             size_t err_size)
{
    cacreg_engine *e = calloc(1, sizeof *e);
    cacreg_flow_io io = {.now_ms = io_now_ms,
                         .load_module = io_load_module,
                         .read_card = io_read_card,
                         .check_pin = io_check_pin,
                         .forget_card = io_forget_card,
                         .use_key = io_use_key,
                         .drop_key = io_drop_key,
                         .request = io_request,
                         .cancel = io_cancel};
    cacreg_err rc;

    *out = NULL;
    if (!e)
        return CACREG_ERR_NOMEM;
    e->cfg = *cfg;
    e->events[0] = e->events[1] = -1;
    io.ctx = e;
    rc = cacreg_trust_load(&e->trust, e->cfg.ca_bundle, e->cfg.crl_file, err, err_size);
    if (rc == CACREG_OK && e->cfg.ocsp_url[0])
        rc = cacreg_trust_set_ocsp(e->trust, e->cfg.ocsp_url, e->cfg.connect_timeout_s);
    if (rc == CACREG_OK && !(e->pin.pin = cacreg_secret_new())) {
        cacreg_errf(err, err_size, "locked memory for the PIN and password is not available");
        rc = CACREG_ERR_NOMEM;
    }
    if (rc == CACREG_OK)
        rc = cacreg_event_pipe(e->events);
    if (rc == CACREG_OK)
        rc = cacreg_worker_start(&e->worker, e->events[1]);
    if (rc == CACREG_OK)
        rc = cacreg_portal_new(&e->portal, &e->cfg, e->events[1], err, err_size);
    e->forwarded = cacreg_token_module_forwarded(e->cfg.pkcs11_module);
    e->remote.forwarded = e->forwarded;
    if (rc == CACREG_OK && e->forwarded)
        rc = ticker_start(&e->ticker, e->events[1]);
    else if (rc == CACREG_OK)
        rc = cacreg_watcher_start(&e->watcher, e->cfg.reader_filter, e->events[1]);
    if (rc == CACREG_OK && !(e->flow = cacreg_flow_new(&e->cfg, &io))) {
        cacreg_errf(err, err_size, "locked memory for the PIN and password is not available");
        rc = CACREG_ERR_NOMEM;
    }
    if (rc != CACREG_OK) {
        if (err && !err[0])
            cacreg_errf(err, err_size, "%s", cacreg_strerror(rc));
        /* No job ran yet, so every thread stops and e is freed; the analyser cannot know. */
        cacreg_engine_free(e);
        return rc; // NOLINT(clang-analyzer-unix.Malloc)
    }
    deliver(e, &(cacreg_event){.type = CACREG_EV_READERS}); /* what the watcher knows now */
    *out = e;
    return CACREG_OK;
}

static long long now_ms(void)
{
    return io_now_ms(NULL);
}

void cacreg_engine_end(cacreg_engine *e, int wait_ms)
{
    long long end = now_ms() + wait_ms;

    cacreg_flow_do(e->flow, CACREG_ACT_RESTART);
    cacreg_engine_handle(e);
    while (!cacreg_flow_settled(e->flow) && now_ms() < end) {
        struct pollfd pfd = {.fd = e->events[0], .events = POLLIN};
        poll(&pfd, 1, (int)(end - now_ms()));
        cacreg_engine_handle(e);
    }
}

/* How long the threads get to stop before they are taken as stuck in a card call. */
#define STOP_WAIT_MS 200
/* How long the module gets for its C_Finalize (OpenSC: the card reset, a few ms). */
#define UNLOAD_WAIT_MS 500

bool cacreg_engine_free(cacreg_engine *e)
{
    bool stopped;

    if (!e)
        return true;
    /* The portal's thread first: it may be signing with the card's key. */
    stopped = cacreg_portal_free(e->portal, STOP_WAIT_MS); /* cancels; wipes the session */
    cacreg_watcher_stop(e->watcher);
    ticker_stop(&e->ticker);
    stopped = cacreg_worker_stop(e->worker, STOP_WAIT_MS) && stopped;
    cacreg_secret_clear(e->pin.pin);
    cacreg_flow_free(e->flow); /* the typed PIN and passwords, wiped */
    if (!stopped)
        return false; /* a thread is still in a card call with the token: leave all to it */
    drop_pending_key(e);
    EVP_PKEY_free(e->pin.key);
    X509_free(e->pin.cert);
    stopped = cacreg_token_free_within(e->token, UNLOAD_WAIT_MS);
    e->token = NULL;
    cacreg_trust_free(e->trust);
    cacreg_secret_free(e->pin.pin);
    if (e->events[0] >= 0)
        close(e->events[0]);
    if (e->events[1] >= 0)
        close(e->events[1]);
    free(e);
    return stopped;
}

cacreg_flow *cacreg_engine_flow(cacreg_engine *e)
{
    return e->flow;
}

int cacreg_engine_fd(const cacreg_engine *e)
{
    return e->events[0];
}
