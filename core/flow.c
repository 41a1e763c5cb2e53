/*
 * The flows: the help article's two paths (CAC login; password login, then
 * register) and the password-reset request, as one state machine. Events in
 * (the watcher's card events, the worker's and the portal's finished jobs,
 * the person's actions, the idle clock), a plain state out. The card calls
 * run on the worker, the portal on its own thread; this file only decides.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cacreg.h"
#include "internal.h"

/* What a portal request in flight was for. */
enum ask { ASK_NONE, ASK_CAC_LOGIN, ASK_PASSWORD_LOGIN, ASK_GET_REG, ASK_CLEAR, ASK_REGISTER,
           ASK_LOGOUT, ASK_RESET };

/* What to do once the card has been read. */
enum after { AFTER_NONE, AFTER_CAC_LOGIN, AFTER_REGISTER };

/*
 * What the card jobs share with the worker thread. The loop writes it only
 * before submitting a job and reads it only after the job's event.
 */
struct card_job {
    const cacreg_config *cfg;
    const cacreg_trust *trust;
    cacreg_token *token;
    cacreg_portal *portal;
    char reader[128];
    char err[512];
    cacreg_token_info info;
    size_t chosen;
    cacreg_verdict verdict;
    char verdict_detail[512];
    cacreg_secret *pin;
    size_t use_cert;
    EVP_PKEY *key;                        /* the identity key once the PIN was right */
    cacreg_login_result login;
    int tries_left;
};

struct cacreg_flow {
    cacreg_config cfg;
    cacreg_trust *trust;
    cacreg_worker *worker;
    cacreg_watcher *watcher;
    cacreg_portal *portal;
    int events[2];
    struct card_job job;
    int load_job, read_job, pin_job, portal_job;
    unsigned card_gen, read_gen, pin_gen; /* which insertion a card job was for */
    enum ask asked, queued;               /* the request in flight; one waiting for it */
    bool logout_queued;                   /* and a logout before that one */
    bool ignore_answer;                   /* the request in flight was cancelled */
    bool forget_card_pending;             /* drop the portal's card key once it is idle */
    bool card_logged_in;                  /* the PIN was accepted; the portal has the key */
    EVP_PKEY *pending_key;                /* for the portal, once its request in flight ends */
    bool card_in_use;                     /* the step needs the card: pulling it starts over */
    bool just_cleared;
    enum after after_read;
    cacreg_secret *pin, *password;
    struct timespec idle_deadline;
    cacreg_flow_state st;
};

static const cacreg_diagnosis CARD_REMOVED = {"The card was removed; nothing was finished.",
                                              "Insert your CAC and start again."};
static const cacreg_diagnosis IDLE = {
    "Nothing was typed for a while, so this was stopped and cleared.",
    "Start again when you are ready."};

static void changed(cacreg_flow *f)
{
    f->st.generation++;
}

static void arm_idle(cacreg_flow *f)
{
    clock_gettime(CLOCK_MONOTONIC, &f->idle_deadline);
    f->idle_deadline.tv_sec += f->cfg.idle_timeout_s;
}

static void go(cacreg_flow *f, cacreg_step step)
{
    f->st.step = step;
    if (step != CACREG_STEP_BUSY)
        f->st.busy = NULL;
    arm_idle(f);
    changed(f);
}

static void busy(cacreg_flow *f, const char *what)
{
    go(f, CACREG_STEP_BUSY);
    f->st.busy = what;
}

static void clear_outcome(cacreg_flow *f)
{
    f->st.fail = CACREG_FAIL_NONE;
    f->st.stage = "";
    f->st.diagnosis = (cacreg_diagnosis){"", ""};
    f->st.detail[0] = '\0';
    f->st.clock[0] = '\0';
}

/* A failure the person can retry at the same step (wrong PIN, wrong password). */
static void problem(cacreg_flow *f, cacreg_fail fail, const char *stage, cacreg_diagnosis d,
                    const char *detail)
{
    f->st.fail = fail;
    f->st.stage = stage;
    f->st.diagnosis = d;
    snprintf(f->st.detail, sizeof f->st.detail, "%s", detail ? detail : "");
    changed(f);
}

static void wipe_secrets(cacreg_flow *f);

static void fail(cacreg_flow *f, cacreg_fail fail_kind, const char *stage, cacreg_diagnosis d,
                 const char *detail)
{
    wipe_secrets(f);
    f->after_read = AFTER_NONE;
    f->card_in_use = false;
    problem(f, fail_kind, stage, d, detail);
    go(f, CACREG_STEP_FAILED);
}

/* The PIN is left to a PIN job that is using it: the job wipes it. */
static void wipe_secrets(cacreg_flow *f)
{
    if (f->pin_job <= 0)
        cacreg_secret_clear(f->pin);
    cacreg_secret_clear(f->password);
}

/* ---- the worker's jobs ---- */

static cacreg_err job_load(void *arg)
{
    struct card_job *c = arg;

    return cacreg_token_load(&c->token, c->cfg->pkcs11_module, c->cfg->opensc_file_cache,
                             c->cfg->pin_max_tries, c->err, sizeof c->err);
}

static cacreg_err job_read(void *arg)
{
    struct card_job *c = arg;
    cacreg_err rc = cacreg_token_read(c->token, c->reader, &c->info, c->err, sizeof c->err);

    if (rc != CACREG_OK)
        return rc;
    c->chosen = cacreg_cert_choose(c->info.certs, c->info.ncerts);
    c->verdict = c->chosen < c->info.ncerts
                     ? cacreg_cert_preflight(&c->info.certs[c->chosen], c->trust,
                                             (long long)time(NULL), c->verdict_detail,
                                             sizeof c->verdict_detail)
                     : CACREG_VERDICT_WRONG_KIND;
    return CACREG_OK;
}

static cacreg_err job_pin(void *arg)
{
    struct card_job *c = arg;

    c->key = NULL;
    c->login = cacreg_token_login(c->token, c->reader, c->pin, &c->tries_left, c->err,
                                  sizeof c->err);
    if (c->login != CACREG_LOGIN_OK)
        return CACREG_ERR_INVALID;
    /* The loop hands the key to the portal, when no request is using the old one. */
    return cacreg_token_identity_key(c->token, c->reader, &c->key, c->err, sizeof c->err);
}

static cacreg_err job_forget(void *arg)
{
    struct card_job *c = arg;

    if (c->token)
        cacreg_token_forget(c->token);
    return CACREG_OK;
}

/* ---- the card ---- */

static void read_card(cacreg_flow *f)
{
    if (!f->st.module_loaded || !f->st.reader[0] || f->read_job > 0)
        return;
    snprintf(f->job.reader, sizeof f->job.reader, "%s", f->st.reader);
    f->read_gen = f->card_gen;
    f->read_job = cacreg_worker_submit(f->worker, job_read, &f->job);
    f->st.card_reading = f->read_job > 0;
    changed(f);
}

/* Drops the card's login: the portal's key (once idle), libp11's slots. */
static void drop_card_login(cacreg_flow *f)
{
    f->card_logged_in = false;
    EVP_PKEY_free(f->pending_key);
    f->pending_key = NULL;
    if (f->portal_job > 0) {
        /* The network thread may be using the key: libp11 lets go after it does. */
        f->forget_card_pending = true;
        return;
    }
    cacreg_portal_forget_card(f->portal);
    if (f->st.module_loaded)
        cacreg_worker_submit(f->worker, job_forget, &f->job);
}

/* Gives the portal the card's key, once no request is using the connection. */
static void install_key(cacreg_flow *f)
{
    if (!f->pending_key || f->portal_job > 0)
        return;
    cacreg_portal_use_card(f->portal, &f->job.info.certs[f->job.use_cert], f->pending_key);
    EVP_PKEY_free(f->pending_key); /* the portal holds its own reference */
    f->pending_key = NULL;
}

/* Ends the card's login, if any, and reads the card again for the panel. */
static void log_card_out(cacreg_flow *f)
{
    if (!f->card_logged_in)
        return;
    drop_card_login(f);
    f->card_gen++; /* the forget job drops what libp11 had read */
    f->st.card_read = false;
    read_card(f);
}

/* Cancels the portal request in flight; its answer, when it comes, is dropped. */
static void cancel_request(cacreg_flow *f)
{
    if (f->portal_job > 0 && f->asked != ASK_LOGOUT) {
        cacreg_portal_cancel(f->portal);
        f->ignore_answer = true;
    }
}

static bool send_request(cacreg_flow *f, enum ask what);

static void logout(cacreg_flow *f)
{
    if (!f->st.session)
        return;
    f->st.session = false;
    if (f->portal_job > 0)
        f->logout_queued = true;
    else
        send_request(f, ASK_LOGOUT);
}

/* Everything back as it was before the person came, with a notice on why. */
static void start_over(cacreg_flow *f, const cacreg_diagnosis *notice, cacreg_fail why)
{
    cancel_request(f);
    wipe_secrets(f);
    log_card_out(f);
    f->queued = ASK_NONE;
    logout(f);
    f->after_read = AFTER_NONE;
    f->card_in_use = false;
    f->just_cleared = false;
    f->st.register_path = false;
    f->st.username[0] = '\0';
    memset(&f->st.account, 0, sizeof f->st.account);
    memset(&f->st.registration, 0, sizeof f->st.registration);
    memset(&f->st.last, 0, sizeof f->st.last);
    f->st.done = CACREG_DONE_NONE;
    f->st.login = CACREG_LOGIN_OK;
    clear_outcome(f);
    f->st.notice = notice ? *notice : (cacreg_diagnosis){NULL, NULL};
    f->st.notice_fail = why;
    go(f, CACREG_STEP_START);
}

static void card_gone(cacreg_flow *f)
{
    bool in_use = f->card_in_use || f->after_read != AFTER_NONE;

    f->card_gen++;
    f->st.reader[0] = '\0';
    f->st.card_read = f->st.card_reading = false;
    f->st.card_error[0] = '\0';
    f->st.tries_left = -1;
    memset(&f->st.info, 0, sizeof f->st.info);
    f->st.chosen = 0;
    if (f->card_logged_in) {
        cancel_request(f);
        drop_card_login(f);
    } else if (f->st.module_loaded && !f->forget_card_pending) {
        cacreg_worker_submit(f->worker, job_forget, &f->job);
    }
    if (in_use && f->st.step != CACREG_STEP_INSERT_CARD)
        start_over(f, &CARD_REMOVED, CACREG_FAIL_NO_CARD);
    changed(f);
}

static void readers_changed(cacreg_flow *f, const cacreg_event *ev)
{
    const cacreg_readers *r = &f->st.readers;
    bool still_in = false;

    cacreg_watcher_snapshot(f->watcher, &f->st.readers);
    changed(f);
    if (f->st.reader[0] && ev && ev->type == CACREG_EV_CARD_OUT &&
        strcmp(ev->reader, f->st.reader) == 0) {
        card_gone(f);
    } else if (f->st.reader[0]) {
        for (size_t i = 0; i < r->count; i++)
            if (strcmp(r->readers[i].name, f->st.reader) == 0 && r->readers[i].card_present)
                still_in = true;
        if (!still_in || r->status != CACREG_PCSC_UP)
            card_gone(f);
    }
    if (f->st.reader[0] || r->status != CACREG_PCSC_UP)
        return;
    for (size_t i = 0; i < r->count; i++)
        if (r->readers[i].card_present && !r->readers[i].mute) {
            snprintf(f->st.reader, sizeof f->st.reader, "%s", r->readers[i].name);
            f->card_gen++;
            read_card(f);
            if (f->st.step == CACREG_STEP_INSERT_CARD)
                busy(f, "Reading your card");
            return;
        }
}

static void to_pin(cacreg_flow *f)
{
    f->card_in_use = true;
    f->st.login = CACREG_LOGIN_OK;
    clear_outcome(f);
    go(f, CACREG_STEP_PIN);
}

/* The card has been read (or could not be): go on with what was waiting for it. */
static void card_ready(cacreg_flow *f)
{
    enum after after = f->after_read;

    f->after_read = AFTER_NONE;
    if (after == AFTER_NONE)
        return;
    if (!f->st.card_read) {
        fail(f, CACREG_FAIL_CARD, "card", cacreg_diagnose_login(CACREG_LOGIN_NO_CARD),
             f->st.card_error);
    } else if (after == AFTER_REGISTER) {
        f->card_in_use = true;
        clear_outcome(f);
        go(f, CACREG_STEP_CHOOSE_CERT);
    } else if (f->st.verdict != CACREG_VERDICT_OK) {
        fail(f, CACREG_FAIL_CARD, "preflight", cacreg_diagnose_verdict(f->st.verdict),
             f->st.verdict_detail);
    } else if (f->st.info.pin == CACREG_PIN_LOCKED) {
        fail(f, CACREG_FAIL_CARD, "pin", cacreg_diagnose_login(CACREG_LOGIN_LOCKED), NULL);
    } else {
        f->job.use_cert = f->st.chosen;
        to_pin(f);
    }
}

/* A way in that needs the card: now, once it is read, or once it is in. */
static void need_card(cacreg_flow *f, enum after after)
{
    const cacreg_readers *r = &f->st.readers;

    f->after_read = after;
    if (f->st.card_read) {
        card_ready(f);
    } else if (!f->st.module_loading && !f->st.module_loaded) {
        fail(f, CACREG_FAIL_MIDDLEWARE, "module",
             (cacreg_diagnosis){"The smart-card software (the PKCS#11 module) cannot be loaded.",
                                "Tell the help desk: OpenSC may not be installed."},
             f->st.module_error);
    } else if (r->status == CACREG_PCSC_DOWN) {
        fail(f, CACREG_FAIL_MIDDLEWARE, "pcsc",
             (cacreg_diagnosis){"The smart-card service (pcscd) is not running.",
                                "Tell the help desk: pcscd must be installed and started."},
             r->detail);
    } else if (r->status == CACREG_PCSC_DENIED) {
        fail(f, CACREG_FAIL_MIDDLEWARE, "pcsc",
             (cacreg_diagnosis){"The smart-card service refuses this session.",
                                "Tell the help desk: a polkit rule must allow this user the "
                                "card readers (cacreg status shows it)."},
             r->detail);
    } else if (f->st.card_reading || (f->st.reader[0] && f->st.module_loading)) {
        busy(f, "Reading your card");
    } else if (f->st.reader[0] && f->st.card_error[0]) {
        card_ready(f); /* read and failed: say so */
    } else {
        go(f, CACREG_STEP_INSERT_CARD);
    }
}

/* ---- the portal ---- */

static bool send_request(cacreg_flow *f, enum ask what)
{
    int id = -1;

    switch (what) {
    case ASK_CAC_LOGIN:
        id = cacreg_portal_cac_login(f->portal);
        break;
    case ASK_PASSWORD_LOGIN:
        id = cacreg_portal_password_login(f->portal, f->st.username, f->password);
        break;
    case ASK_GET_REG:
        id = cacreg_portal_get_registration(f->portal);
        break;
    case ASK_CLEAR:
        id = cacreg_portal_clear_registration(f->portal);
        break;
    case ASK_REGISTER:
        id = cacreg_portal_register(f->portal, f->password);
        break;
    case ASK_LOGOUT:
        id = cacreg_portal_logout(f->portal);
        break;
    case ASK_RESET:
        id = cacreg_portal_password_reset(f->portal, f->st.username);
        break;
    case ASK_NONE:
        return true;
    }
    cacreg_secret_clear(f->password); /* sent once, whatever the answer */
    if (id < 0) {
        if (what != ASK_LOGOUT)
            fail(f, CACREG_FAIL_PORTAL, "portal",
                 (cacreg_diagnosis){"The request to the portal could not be started.",
                                    "Try again."},
                 NULL);
        return false;
    }
    f->portal_job = id;
    f->asked = what;
    f->ignore_answer = false;
    f->st.requesting = true;
    return true;
}

/* Asks the portal, or queues the question behind the one in flight (a logout). */
static void ask(cacreg_flow *f, enum ask what, const char *doing)
{
    busy(f, doing);
    if (f->portal_job > 0)
        f->queued = what;
    else
        send_request(f, what);
}

static void portal_failed(cacreg_flow *f, const cacreg_portal_result *r)
{
    char clock[256] = "";

    fail(f, r->outcome == CACREG_PORTAL_REFUSED ? CACREG_FAIL_REFUSED : CACREG_FAIL_PORTAL,
         "portal", cacreg_diagnose_portal(r), r->message);
    if (cacreg_diagnose_clock(r, clock, sizeof clock))
        snprintf(f->st.clock, sizeof f->st.clock, "%s", clock);
}

static bool wrong_password(const cacreg_portal_result *r)
{
    return r->outcome == CACREG_PORTAL_REFUSED && strcmp(r->error, "invalid_credentials") == 0;
}

static void portal_done(cacreg_flow *f)
{
    enum ask what = f->asked;
    bool ignore = f->ignore_answer;
    cacreg_portal_result r;

    f->portal_job = 0;
    f->asked = ASK_NONE;
    f->ignore_answer = false;
    cacreg_portal_result_get(f->portal, &r);
    if (f->forget_card_pending) {
        f->forget_card_pending = false;
        cacreg_portal_forget_card(f->portal);
        cacreg_worker_submit(f->worker, job_forget, &f->job);
    }
    install_key(f);
    if (f->logout_queued) {
        f->logout_queued = false;
        send_request(f, ASK_LOGOUT);
    } else if (f->queued != ASK_NONE) {
        enum ask next = f->queued;
        f->queued = ASK_NONE;
        send_request(f, next);
    }
    f->st.requesting = f->portal_job > 0;
    changed(f);
    if (ignore || what == ASK_LOGOUT || r.outcome == CACREG_PORTAL_CANCELLED)
        return;
    f->st.last = r;
    changed(f);
    if (wrong_password(&r) && (what == ASK_PASSWORD_LOGIN || what == ASK_REGISTER)) {
        /* typed wrong: the same step again, with the attempts left */
        problem(f, CACREG_FAIL_REFUSED, "portal", cacreg_diagnose_portal(&r), r.message);
        go(f, what == ASK_REGISTER ? CACREG_STEP_CONFIRM_PASSWORD : CACREG_STEP_CREDENTIALS);
        return;
    }
    if (r.outcome != CACREG_PORTAL_OK) {
        portal_failed(f, &r);
        return;
    }
    switch (what) {
    case ASK_CAC_LOGIN:
        f->st.session = true;
        f->st.done = CACREG_DONE_CAC_LOGIN;
        f->card_in_use = false;
        snprintf(f->st.username, sizeof f->st.username, "%s", r.username);
        f->st.account = r;
        go(f, CACREG_STEP_DONE);
        break;
    case ASK_PASSWORD_LOGIN:
        f->st.session = true;
        f->st.account = r;
        ask(f, ASK_GET_REG, "Reading what is registered");
        break;
    case ASK_GET_REG:
        f->st.registration = r;
        clear_outcome(f);
        f->st.notice = f->just_cleared
                           ? (cacreg_diagnosis){"The registered information was cleared.", ""}
                           : (cacreg_diagnosis){NULL, NULL};
        f->st.notice_fail = CACREG_FAIL_NONE;
        f->just_cleared = false;
        go(f, CACREG_STEP_REGISTRATION);
        break;
    case ASK_CLEAR:
        f->just_cleared = true;
        ask(f, ASK_GET_REG, "Reading what is registered");
        break;
    case ASK_REGISTER:
        f->card_in_use = false;
        f->st.done = CACREG_DONE_REGISTERED;
        go(f, CACREG_STEP_DONE);
        break;
    case ASK_RESET:
        f->st.done = CACREG_DONE_RESET;
        go(f, CACREG_STEP_DONE);
        break;
    case ASK_LOGOUT:
    case ASK_NONE:
        break;
    }
}

/* ---- the worker's answers ---- */

static void load_done(cacreg_flow *f, cacreg_err rc)
{
    f->load_job = 0;
    f->st.module_loading = false;
    f->st.module_loaded = rc == CACREG_OK;
    if (rc == CACREG_OK)
        snprintf(f->st.module, sizeof f->st.module, "%s", cacreg_token_module(f->job.token));
    else
        snprintf(f->st.module_error, sizeof f->st.module_error, "%s", f->job.err);
    changed(f);
    if (rc == CACREG_OK)
        read_card(f);
    else if (f->after_read != AFTER_NONE)
        need_card(f, f->after_read); /* says the module is missing */
}

static void read_done(cacreg_flow *f, cacreg_err rc)
{
    f->read_job = 0;
    if (f->read_gen != f->card_gen) { /* another card, or none, since */
        read_card(f);
        return;
    }
    f->st.card_reading = false;
    f->st.card_read = rc == CACREG_OK;
    if (rc == CACREG_OK) {
        f->st.info = f->job.info;
        f->st.chosen = f->job.chosen;
        f->st.verdict = f->job.verdict;
        snprintf(f->st.verdict_detail, sizeof f->st.verdict_detail, "%s", f->job.verdict_detail);
        f->st.tries_left = f->job.info.tries_left;
        f->st.card_error[0] = '\0';
    } else {
        snprintf(f->st.card_error, sizeof f->st.card_error, "%s", f->job.err);
    }
    changed(f);
    card_ready(f);
}

static void pin_done(cacreg_flow *f, cacreg_err rc)
{
    cacreg_login_result login = f->job.login;

    f->pin_job = 0;
    cacreg_secret_clear(f->pin); /* the token wiped it; so do we */
    if (login == CACREG_LOGIN_OK)
        f->card_logged_in = true; /* libp11 is logged in */
    if (f->job.key) {
        EVP_PKEY_free(f->pending_key);
        f->pending_key = f->job.key;
        f->job.key = NULL;
    }
    if (f->pin_gen != f->card_gen || f->st.step != CACREG_STEP_BUSY) {
        /* the card went, or the person left, while the card checked the PIN */
        if (f->card_logged_in)
            drop_card_login(f);
        return;
    }
    f->st.login = login;
    f->st.tries_left = f->job.tries_left;
    if (login == CACREG_LOGIN_WRONG_PIN)
        f->st.info.pin = f->job.tries_left == 1 ? CACREG_PIN_FINAL_TRY : CACREG_PIN_COUNT_LOW;
    else if (login == CACREG_LOGIN_LOCKED)
        f->st.info.pin = CACREG_PIN_LOCKED;
    else if (login == CACREG_LOGIN_OK)
        f->st.info.pin = CACREG_PIN_OK;
    switch (login) {
    case CACREG_LOGIN_OK:
        if (rc != CACREG_OK) {
            fail(f, CACREG_FAIL_CARD, "key", cacreg_diagnose_verdict(CACREG_VERDICT_WRONG_KIND),
                 f->job.err);
            return;
        }
        install_key(f);
        if (f->st.register_path) {
            clear_outcome(f);
            go(f, CACREG_STEP_CONFIRM_PASSWORD);
            return;
        }
        install_key(f); /* now, or before the queued login goes out */
        ask(f, ASK_CAC_LOGIN, "Logging in to the portal with your card");
        return;
    case CACREG_LOGIN_WRONG_PIN:
        problem(f, CACREG_FAIL_CARD, "pin", cacreg_diagnose_login(login), f->job.err);
        go(f, CACREG_STEP_PIN);
        return;
    case CACREG_LOGIN_BAD_FORMAT:
        problem(f, CACREG_FAIL_INPUT, "pin", cacreg_diagnose_login(login), NULL);
        go(f, CACREG_STEP_PIN);
        return;
    case CACREG_LOGIN_NO_CARD:
        start_over(f, &CARD_REMOVED, CACREG_FAIL_NO_CARD);
        return;
    case CACREG_LOGIN_LOCKED:
    case CACREG_LOGIN_ERROR:
        break;
    }
    fail(f, CACREG_FAIL_CARD, "pin", cacreg_diagnose_login(login), f->job.err);
}

/* ---- the public side ---- */

cacreg_err cacreg_flow_new(cacreg_flow **out, const cacreg_config *cfg, char *err,
                           size_t err_size)
{
    cacreg_flow *f = calloc(1, sizeof *f);
    cacreg_err rc;

    *out = NULL;
    if (!f)
        return CACREG_ERR_NOMEM;
    f->cfg = *cfg;
    f->events[0] = f->events[1] = -1;
    f->st.tries_left = -1;
    f->st.stage = "";
    f->st.diagnosis = (cacreg_diagnosis){"", ""};
    f->job.cfg = &f->cfg;
    f->job.tries_left = -1;
    f->pin = cacreg_secret_new();
    f->password = cacreg_secret_new();
    f->job.pin = f->pin;
    rc = cacreg_trust_load(&f->trust, f->cfg.ca_bundle, f->cfg.crl_file, err, err_size);
    if (rc == CACREG_OK && f->cfg.ocsp_url[0])
        rc = cacreg_trust_set_ocsp(f->trust, f->cfg.ocsp_url, f->cfg.connect_timeout_s);
    if (rc == CACREG_OK && (!f->pin || !f->password)) {
        cacreg_errf(err, err_size, "locked memory for the PIN and password is not available");
        rc = CACREG_ERR_NOMEM;
    }
    if (rc == CACREG_OK)
        rc = cacreg_event_pipe(f->events);
    if (rc == CACREG_OK)
        rc = cacreg_worker_start(&f->worker, f->events[1]);
    if (rc == CACREG_OK)
        rc = cacreg_portal_new(&f->portal, &f->cfg, f->events[1], err, err_size);
    if (rc == CACREG_OK)
        rc = cacreg_watcher_start(&f->watcher, f->cfg.reader_filter, f->events[1]);
    if (rc != CACREG_OK) {
        if (err && !err[0])
            cacreg_errf(err, err_size, "%s", cacreg_strerror(rc));
        cacreg_flow_free(f);
        return rc;
    }
    f->job.trust = f->trust;
    f->job.portal = f->portal;
    f->load_job = cacreg_worker_submit(f->worker, job_load, &f->job);
    f->st.module_loading = f->load_job > 0;
    cacreg_watcher_snapshot(f->watcher, &f->st.readers);
    go(f, CACREG_STEP_START);
    *out = f;
    return CACREG_OK;
}

void cacreg_flow_free(cacreg_flow *f)
{
    if (!f)
        return;
    cacreg_portal_free(f->portal); /* cancels and joins; wipes the session */
    EVP_PKEY_free(f->pending_key);
    cacreg_watcher_stop(f->watcher);
    cacreg_worker_stop(f->worker);
    cacreg_token_free(f->job.token); /* releases the slots, and libp11's copy of the PIN */
    cacreg_trust_free(f->trust);
    cacreg_secret_free(f->pin);
    cacreg_secret_free(f->password);
    if (f->events[0] >= 0)
        close(f->events[0]);
    if (f->events[1] >= 0)
        close(f->events[1]);
    free(f);
}

int cacreg_flow_fd(const cacreg_flow *f)
{
    return f->events[0];
}

static bool idle_applies(const cacreg_flow *f)
{
    return f->st.step != CACREG_STEP_START && f->st.step != CACREG_STEP_BUSY;
}

int cacreg_flow_timeout_ms(const cacreg_flow *f)
{
    struct timespec now;
    long long ms;

    if (!idle_applies(f))
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &now);
    ms = (f->idle_deadline.tv_sec - now.tv_sec) * 1000LL +
         (f->idle_deadline.tv_nsec - now.tv_nsec) / 1000000;
    return ms < 0 ? 0 : ms > 86400000 ? 86400000 : (int)ms;
}

void cacreg_flow_handle(cacreg_flow *f)
{
    cacreg_event ev;

    while (cacreg_event_read(f->events[0], &ev) == CACREG_OK) {
        if (ev.type != CACREG_EV_JOB_DONE)
            readers_changed(f, &ev);
        else if (ev.job == f->load_job)
            load_done(f, ev.status);
        else if (ev.job == f->read_job)
            read_done(f, ev.status);
        else if (ev.job == f->pin_job)
            pin_done(f, ev.status);
        else if (ev.job == f->portal_job)
            portal_done(f);
    }
    if (idle_applies(f) && cacreg_flow_timeout_ms(f) == 0)
        start_over(f, &IDLE, CACREG_FAIL_IDLE);
}

bool cacreg_flow_settled(const cacreg_flow *f)
{
    return f->portal_job <= 0 && f->pin_job <= 0 && f->read_job <= 0 && f->load_job <= 0 &&
           !f->logout_queued && f->queued == ASK_NONE;
}

void cacreg_flow_touch(cacreg_flow *f)
{
    if (idle_applies(f))
        arm_idle(f);
}

const cacreg_flow_state *cacreg_flow_state_get(const cacreg_flow *f)
{
    return &f->st;
}

cacreg_secret *cacreg_flow_secret(cacreg_flow *f)
{
    switch (f->st.step) {
    case CACREG_STEP_PIN:
        return f->pin;
    case CACREG_STEP_CREDENTIALS:
    case CACREG_STEP_CONFIRM_PASSWORD:
        return f->password;
    default:
        return NULL;
    }
}

/* A way in from START: the last person's notice goes. */
static bool from_start(cacreg_flow *f)
{
    if (f->st.step != CACREG_STEP_START)
        return false;
    f->st.notice = (cacreg_diagnosis){NULL, NULL};
    f->st.notice_fail = CACREG_FAIL_NONE;
    f->st.done = CACREG_DONE_NONE;
    clear_outcome(f);
    return true;
}

bool cacreg_flow_cac_login(cacreg_flow *f)
{
    if (!from_start(f))
        return false;
    f->st.register_path = false;
    need_card(f, AFTER_CAC_LOGIN);
    changed(f);
    return true;
}

bool cacreg_flow_password_login(cacreg_flow *f)
{
    if (!from_start(f))
        return false;
    f->st.register_path = true;
    go(f, CACREG_STEP_CREDENTIALS);
    return true;
}

bool cacreg_flow_reset(cacreg_flow *f)
{
    if (!from_start(f))
        return false;
    go(f, CACREG_STEP_RESET);
    return true;
}

/* A username as typed: printable, not empty, within bounds. */
static bool username_ok(const char *u)
{
    size_t n = u ? strlen(u) : 0;

    if (n == 0 || n >= sizeof ((cacreg_flow_state *)0)->username)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)u[i] < 0x20 || u[i] == 0x7f)
            return false;
    return true;
}

static const cacreg_diagnosis BAD_USERNAME = {
    "Enter your portal username (the one you log in to the portal with).", ""};
static const cacreg_diagnosis NO_PASSWORD = {"Enter your portal password.", ""};

bool cacreg_flow_submit(cacreg_flow *f, const char *username)
{
    switch (f->st.step) {
    case CACREG_STEP_PIN:
        if (!cacreg_secret_is_pin(f->pin)) {
            cacreg_secret_clear(f->pin);
            f->st.login = CACREG_LOGIN_BAD_FORMAT;
            problem(f, CACREG_FAIL_INPUT, "pin", cacreg_diagnose_login(CACREG_LOGIN_BAD_FORMAT),
                    NULL);
            return true;
        }
        clear_outcome(f);
        f->pin_gen = f->card_gen;
        snprintf(f->job.reader, sizeof f->job.reader, "%s", f->st.reader);
        f->pin_job = cacreg_worker_submit(f->worker, job_pin, &f->job);
        if (f->pin_job < 0) {
            f->pin_job = 0;
            fail(f, CACREG_FAIL_CARD, "pin", cacreg_diagnose_login(CACREG_LOGIN_ERROR), NULL);
            return true;
        }
        busy(f, "Checking your PIN with the card");
        return true;
    case CACREG_STEP_CREDENTIALS:
        if (!username_ok(username) || cacreg_secret_len(f->password) == 0) {
            cacreg_secret_clear(f->password);
            problem(f, CACREG_FAIL_INPUT, "input",
                    username_ok(username) ? NO_PASSWORD : BAD_USERNAME, NULL);
            return true;
        }
        clear_outcome(f);
        snprintf(f->st.username, sizeof f->st.username, "%s", username);
        ask(f, ASK_PASSWORD_LOGIN, "Logging in");
        return true;
    case CACREG_STEP_CONFIRM_PASSWORD:
        if (cacreg_secret_len(f->password) == 0) {
            problem(f, CACREG_FAIL_INPUT, "input", NO_PASSWORD, NULL);
            return true;
        }
        clear_outcome(f);
        ask(f, ASK_REGISTER, "Registering your card");
        return true;
    case CACREG_STEP_RESET:
        if (!username_ok(username)) {
            problem(f, CACREG_FAIL_INPUT, "input", BAD_USERNAME, NULL);
            return true;
        }
        clear_outcome(f);
        snprintf(f->st.username, sizeof f->st.username, "%s", username);
        ask(f, ASK_RESET, "Asking for a new password");
        return true;
    default:
        return false;
    }
}

bool cacreg_flow_register(cacreg_flow *f)
{
    if (f->st.step != CACREG_STEP_REGISTRATION)
        return false;
    f->st.notice = (cacreg_diagnosis){NULL, NULL};
    need_card(f, AFTER_REGISTER);
    return true;
}

bool cacreg_flow_clear(cacreg_flow *f)
{
    if (f->st.step != CACREG_STEP_REGISTRATION || !f->st.registration.registered)
        return false;
    f->st.notice = (cacreg_diagnosis){NULL, NULL};
    go(f, CACREG_STEP_CONFIRM_CLEAR);
    return true;
}

bool cacreg_flow_confirm(cacreg_flow *f, bool yes)
{
    if (f->st.step != CACREG_STEP_CONFIRM_CLEAR)
        return false;
    if (yes)
        ask(f, ASK_CLEAR, "Clearing the registered information");
    else
        go(f, CACREG_STEP_REGISTRATION);
    return true;
}

bool cacreg_flow_choose(cacreg_flow *f, size_t cert)
{
    const cacreg_cert *c;

    if (f->st.step != CACREG_STEP_CHOOSE_CERT || cert >= f->st.info.ncerts)
        return false;
    c = &f->st.info.certs[cert];
    if (cert != f->st.chosen) {
        /* Only the identity certificate logs in; say why this one does not. */
        const char *why = cacreg_cert_why_not(c);
        problem(f, CACREG_FAIL_INPUT, "choose", cacreg_diagnose_verdict(CACREG_VERDICT_WRONG_KIND),
                why ? why : "");
        return true;
    }
    if (f->st.verdict != CACREG_VERDICT_OK) {
        fail(f, CACREG_FAIL_CARD, "preflight", cacreg_diagnose_verdict(f->st.verdict),
             f->st.verdict_detail);
        return true;
    }
    if (f->st.info.pin == CACREG_PIN_LOCKED) {
        fail(f, CACREG_FAIL_CARD, "pin", cacreg_diagnose_login(CACREG_LOGIN_LOCKED), NULL);
        return true;
    }
    f->job.use_cert = cert;
    to_pin(f);
    return true;
}

void cacreg_flow_back(cacreg_flow *f)
{
    bool account = f->st.session && f->st.register_path;

    wipe_secrets(f);
    switch (f->st.step) {
    case CACREG_STEP_START:
        return;
    case CACREG_STEP_BUSY:
        if (f->pin_job > 0)
            return; /* the card is checking the PIN: a second at most */
        if (f->asked == ASK_CLEAR || (f->asked == ASK_REGISTER && account)) {
            cancel_request(f);
            break;
        }
        if (f->after_read != AFTER_NONE) { /* reading the card: it goes on for the panel */
            f->after_read = AFTER_NONE;
            break;
        }
        start_over(f, NULL, CACREG_FAIL_NONE);
        return;
    case CACREG_STEP_PIN:
        if (f->st.register_path) {
            f->st.login = CACREG_LOGIN_OK;
            clear_outcome(f);
            go(f, CACREG_STEP_CHOOSE_CERT);
            return;
        }
        start_over(f, NULL, CACREG_FAIL_NONE);
        return;
    case CACREG_STEP_CONFIRM_CLEAR:
    case CACREG_STEP_CHOOSE_CERT:
    case CACREG_STEP_INSERT_CARD:
    case CACREG_STEP_CONFIRM_PASSWORD:
    case CACREG_STEP_FAILED:
        break;
    case CACREG_STEP_CREDENTIALS:
    case CACREG_STEP_REGISTRATION:
    case CACREG_STEP_RESET:
    case CACREG_STEP_DONE:
        start_over(f, NULL, CACREG_FAIL_NONE);
        return;
    }
    if (!account) {
        start_over(f, NULL, CACREG_FAIL_NONE);
        return;
    }
    /* Back to the account's registration view, without the card's login. */
    f->after_read = AFTER_NONE;
    f->card_in_use = false;
    log_card_out(f);
    clear_outcome(f);
    go(f, CACREG_STEP_REGISTRATION);
}

void cacreg_flow_restart(cacreg_flow *f)
{
    start_over(f, NULL, CACREG_FAIL_NONE);
}
