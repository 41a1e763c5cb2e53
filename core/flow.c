/*
 * The flows: the help article's two paths (CAC login; password login, then
 * register) and the password-reset request, as one state machine. Events in
 * (card and reader changes, finished jobs, portal answers, time), actions in
 * (what the person does), a plain state out. Nothing here waits, starts a
 * thread or touches a card: what the flow wants done goes through its io,
 * which the engine (core/engine.c) or a unit test provides.
 *
 * A step changes in one place, go(), which runs the old step's exit work and
 * the new one's entry work from the table of steps, arms the step's timer
 * and tells the trace. A new step is a row in steps[]; a new portal request
 * a row in requests[] (and its route in core/portal.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parts.h"

/* What the portal connection does next, in order: one request at a time. */
enum lane_op { OP_SEND, OP_USE_KEY, OP_DROP_KEY };

#define LANE_MAX 8

struct lane_entry {
    enum lane_op op;
    cacreg_request kind;   /* OP_SEND */
    unsigned ticket;       /* OP_SEND: matches the step waiting for its answer, 0 none */
};

/* The portal connection: the request in flight and what waits for it. */
struct lane {
    int job;               /* the request in flight, 0 none */
    unsigned ticket;       /* its ticket */
    cacreg_request kind;
    struct lane_entry queue[LANE_MAX];
    size_t count;
};

/* Whether libp11 is logged in to the card (a right PIN) and the portal may have its key. */
enum login { LOGIN_NONE, LOGIN_ACTIVE };

struct cacreg_flow {
    cacreg_config cfg;
    cacreg_flow_io io;
    void (*trace)(const char *line, void *ctx);
    void *trace_ctx;
    cacreg_secret *pin;       /* typed at PIN */
    cacreg_secret *password;  /* typed at CREDENTIALS and CONFIRM_PASSWORD */
    cacreg_secret *outgoing;  /* a password on its way to the portal, queued */
    int load_job, read_job, pin_job, forget_job;
    unsigned card_gen;        /* bumped when the card changes or its login is dropped */
    unsigned read_gen, pin_gen; /* the card_gen a job was started for */
    enum login login;
    bool forget_owed;         /* libp11 is to forget the card: as soon as the worker takes it */
    bool reset_owed;          /* and the card is to be reset: a PIN was verified on it */
    int reset_tries;          /* resets that failed in a row */
    char login_reader[128];   /* the reader whose card a PIN went to */
    struct lane lane;
    unsigned next_ticket, awaiting; /* ASKING's request */
    long long deadline;       /* the step's timer, 0 none */
    cacreg_flow_state st;
};

/* ---- the tables ---- */

enum secret_use { SECRET_NONE, SECRET_PIN, SECRET_PASSWORD };
enum timer { TIMER_NONE, TIMER_IDLE, TIMER_CARD };

#define TAKES(a) (1u << (CACREG_ACT_##a))
#define ALWAYS (TAKES(RESTART))

struct step_def {
    const char *name;
    void (*enter)(cacreg_flow *f);
    void (*leave)(cacreg_flow *f);
    enum secret_use secret;    /* the locked buffer typed into here, wiped on leaving */
    enum timer timer;          /* idle: the person; card: a card job that may hang */
    cacreg_step back;          /* where Esc goes; STEP_COUNT: nowhere */
    bool uses_card;            /* pulling the card starts over */
    bool needs_account;        /* only with a password session, else START instead */
    unsigned takes;            /* the actions it takes */
};

static void enter_start(cacreg_flow *f);
static void enter_asking(cacreg_flow *f);
static void leave_asking(cacreg_flow *f);
static void enter_registration(cacreg_flow *f);
static void end_card(cacreg_flow *f);

#define NO_BACK CACREG_STEP_COUNT

static const struct step_def steps[CACREG_STEP_COUNT] = {
    [CACREG_STEP_START] = {"START", enter_start, NULL, SECRET_NONE, TIMER_NONE, NO_BACK, false,
                           false, TAKES(CAC_LOGIN) | TAKES(PASSWORD_LOGIN) | TAKES(NEW_PASSWORD)},
    [CACREG_STEP_INSERT_CARD] = {"INSERT_CARD", NULL, NULL, SECRET_NONE, TIMER_IDLE,
                                 CACREG_STEP_REGISTRATION, false, false, TAKES(BACK)},
    [CACREG_STEP_LOADING] = {"LOADING", NULL, NULL, SECRET_NONE, TIMER_CARD,
                             CACREG_STEP_REGISTRATION, true, false, TAKES(BACK)},
    [CACREG_STEP_READING] = {"READING", NULL, NULL, SECRET_NONE, TIMER_CARD,
                             CACREG_STEP_REGISTRATION, true, false, TAKES(BACK)},
    [CACREG_STEP_PIN] = {"PIN", NULL, NULL, SECRET_PIN, TIMER_IDLE, CACREG_STEP_CHOOSE_CERT, true,
                         false, TAKES(SUBMIT) | TAKES(BACK)},
    [CACREG_STEP_CHECKING_PIN] = {"CHECKING_PIN", NULL, NULL, SECRET_NONE, TIMER_CARD, NO_BACK,
                                  true, false, 0},
    [CACREG_STEP_CREDENTIALS] = {"CREDENTIALS", NULL, NULL, SECRET_PASSWORD, TIMER_IDLE,
                                 CACREG_STEP_START, false, false, TAKES(SUBMIT) | TAKES(BACK)},
    [CACREG_STEP_ASKING] = {"ASKING", enter_asking, leave_asking, SECRET_NONE, TIMER_NONE,
                            NO_BACK /* the request's */, false, false, TAKES(BACK)},
    [CACREG_STEP_REGISTRATION] = {"REGISTRATION", enter_registration, NULL, SECRET_NONE,
                                  TIMER_IDLE, CACREG_STEP_START, false, true,
                                  TAKES(REGISTER) | TAKES(CLEAR) | TAKES(BACK)},
    [CACREG_STEP_CONFIRM_CLEAR] = {"CONFIRM_CLEAR", NULL, NULL, SECRET_NONE, TIMER_IDLE,
                                   CACREG_STEP_REGISTRATION, false, true,
                                   TAKES(YES) | TAKES(NO) | TAKES(BACK)},
    [CACREG_STEP_CHOOSE_CERT] = {"CHOOSE_CERT", NULL, NULL, SECRET_NONE, TIMER_IDLE,
                                 CACREG_STEP_REGISTRATION, true, true,
                                 TAKES(CHOOSE) | TAKES(BACK)},
    [CACREG_STEP_CONFIRM_PASSWORD] = {"CONFIRM_PASSWORD", NULL, NULL, SECRET_PASSWORD,
                                      TIMER_IDLE, CACREG_STEP_REGISTRATION, true, true,
                                      TAKES(SUBMIT) | TAKES(BACK)},
    [CACREG_STEP_RESET] = {"RESET", NULL, NULL, SECRET_NONE, TIMER_IDLE, CACREG_STEP_START, false,
                           false, TAKES(SUBMIT) | TAKES(BACK)},
    [CACREG_STEP_DONE] = {"DONE", end_card, NULL, SECRET_NONE, TIMER_IDLE, CACREG_STEP_START,
                          false, false, TAKES(BACK)},
    [CACREG_STEP_FAILED] = {"FAILED", end_card, NULL, SECRET_NONE, TIMER_IDLE,
                            CACREG_STEP_REGISTRATION, false, false,
                            TAKES(BACK) | TAKES(NEW_PASSWORD)},
};

static void answered_cac_login(cacreg_flow *f, const cacreg_portal_result *r);
static void answered_password_login(cacreg_flow *f, const cacreg_portal_result *r);
static void answered_registration(cacreg_flow *f, const cacreg_portal_result *r);
static void answered_clear(cacreg_flow *f, const cacreg_portal_result *r);
static void answered_register(cacreg_flow *f, const cacreg_portal_result *r);
static void answered_reset(cacreg_flow *f, const cacreg_portal_result *r);

/* What each portal request is for, as the flow sees it. */
static const struct request_def {
    const char *name;
    bool uses_card;       /* the card's key signs its handshake: pulling the card ends it */
    cacreg_step back;     /* Esc while it is in flight */
    cacreg_step retry;    /* a wrong password goes back here; STEP_COUNT: a failure */
    void (*answered)(cacreg_flow *f, const cacreg_portal_result *r); /* a yes */
} requests[CACREG_REQ_COUNT] = {
    [CACREG_REQ_CAC_LOGIN] = {"cac-login", true, CACREG_STEP_START, NO_BACK, answered_cac_login},
    [CACREG_REQ_PASSWORD_LOGIN] = {"password-login", false, CACREG_STEP_START,
                                   CACREG_STEP_CREDENTIALS, answered_password_login},
    [CACREG_REQ_GET_REGISTRATION] = {"get-registration", false, CACREG_STEP_START, NO_BACK,
                                     answered_registration},
    [CACREG_REQ_CLEAR_REGISTRATION] = {"clear-registration", false, CACREG_STEP_REGISTRATION,
                                       NO_BACK, answered_clear},
    [CACREG_REQ_REGISTER] = {"register", true, CACREG_STEP_REGISTRATION,
                             CACREG_STEP_CONFIRM_PASSWORD, answered_register},
    [CACREG_REQ_LOGOUT] = {"logout", false, CACREG_STEP_START, NO_BACK, NULL},
    [CACREG_REQ_PASSWORD_RESET] = {"password-reset", false, CACREG_STEP_START, NO_BACK,
                                   answered_reset},
};

const char *cacreg_step_name(cacreg_step step)
{
    return (unsigned)step < CACREG_STEP_COUNT ? steps[step].name : "?";
}

bool cacreg_step_working(cacreg_step step)
{
    return step == CACREG_STEP_LOADING || step == CACREG_STEP_READING ||
           step == CACREG_STEP_CHECKING_PIN || step == CACREG_STEP_ASKING;
}

const char *cacreg_stage_name(cacreg_stage stage)
{
    static const char *const names[] = {"",     "module", "pcsc",  "card",   "preflight", "pin",
                                        "key",  "portal", "input", "choose", "idle"};

    return (unsigned)stage < sizeof names / sizeof names[0] ? names[stage] : "";
}

/* ---- small things ---- */

static void tracef(cacreg_flow *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tracef(cacreg_flow *f, const char *fmt, ...)
{
    char line[256];
    va_list ap;

    if (!f->trace)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    f->trace(line, f->trace_ctx);
}

static long long now(const cacreg_flow *f)
{
    return f->io.now_ms(f->io.ctx);
}

static void copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static void set_problem(cacreg_problem *p, cacreg_fail fail, cacreg_stage stage, cacreg_err err,
                        cacreg_diagnosis d, const char *detail)
{
    memset(p, 0, sizeof *p);
    p->fail = fail;
    p->stage = stage;
    p->err = err;
    p->diagnosis = d;
    copy(p->detail, sizeof p->detail, detail);
}

static void clear_problem(cacreg_problem *p)
{
    memset(p, 0, sizeof *p);
}

/* The one place a step changes: exit work, entry work, the timer, the trace. */
static void go(cacreg_flow *f, cacreg_step to)
{
    const struct step_def *from = &steps[f->st.step];

    tracef(f, "%s -> %s", from->name, steps[to].name);
    if (from->secret == SECRET_PIN)
        cacreg_secret_clear(f->pin);
    else if (from->secret == SECRET_PASSWORD)
        cacreg_secret_clear(f->password);
    if (from->leave)
        from->leave(f);
    f->st.step = to;
    clear_problem(&f->st.problem);
    f->deadline = steps[to].timer == TIMER_IDLE   ? now(f) + f->cfg.idle_timeout_s * 1000LL
                  : steps[to].timer == TIMER_CARD ? now(f) + f->cfg.card_timeout_s * 1000LL
                                                  : 0;
    f->st.generation++;
    if (steps[to].enter)
        steps[to].enter(f);
}

/* A failure the person can retry at the same step (wrong PIN, wrong password). */
static void problem(cacreg_flow *f, cacreg_fail fail, cacreg_stage stage, cacreg_err err,
                    cacreg_diagnosis d, const char *detail)
{
    set_problem(&f->st.problem, fail, stage, err, d, detail);
    f->st.generation++;
}

static void fail(cacreg_flow *f, cacreg_fail kind, cacreg_stage stage, cacreg_err err,
                 cacreg_diagnosis d, const char *detail)
{
    go(f, CACREG_STEP_FAILED);
    problem(f, kind, stage, err, d, detail);
}

/* Everything back as it was before the person came; notice says why, if it is not NULL. */
static void start_over(cacreg_flow *f, const cacreg_problem *notice)
{
    go(f, CACREG_STEP_START);
    if (notice)
        f->st.notice = *notice;
}

static void start_over_saying(cacreg_flow *f, cacreg_fail fail, cacreg_stage stage,
                              cacreg_say what)
{
    cacreg_problem notice;

    set_problem(&notice, fail, stage, CACREG_OK, cacreg_diagnose_say(what), NULL);
    start_over(f, &notice);
}

/* ---- the portal connection ---- */

static void lane_push(cacreg_flow *f, enum lane_op op, cacreg_request kind, unsigned ticket)
{
    struct lane *l = &f->lane;

    if (l->count == LANE_MAX) /* cannot happen: at most a drop, a key, a logout and a request */
        return;
    l->queue[l->count++] = (struct lane_entry){op, kind, ticket};
}

/* Forgets the requests not sent yet (a logout stays); a queued password is wiped. */
static void lane_drop_requests(cacreg_flow *f)
{
    struct lane *l = &f->lane;
    size_t kept = 0;

    for (size_t i = 0; i < l->count; i++)
        if (l->queue[i].op != OP_SEND || l->queue[i].kind == CACREG_REQ_LOGOUT)
            l->queue[kept++] = l->queue[i];
    l->count = kept;
    cacreg_secret_clear(f->outgoing);
}

/* Starts what is owed to the card: libp11 forgets it, and (after a PIN) it is reset. */
static void forget_run(cacreg_flow *f)
{
    int id;

    if (!f->forget_owed || f->st.module != CACREG_MODULE_LOADED || f->forget_job > 0)
        return;
    id = f->io.forget_card(f->io.ctx, f->login_reader, f->reset_owed);
    if (id < 0)
        return; /* still owed: tried again after the next event */
    f->forget_job = id;
    f->forget_owed = false;
    if (f->reset_owed)
        f->st.card_reset = CACREG_RESET_RUNNING;
    f->reset_owed = false;
}

static void forget_card(cacreg_flow *f, bool reset)
{
    f->forget_owed = true;
    f->reset_owed = f->reset_owed || reset;
    forget_run(f);
}

static void on_forgotten(cacreg_flow *f, const cacreg_flow_event *ev)
{
    f->forget_job = 0;
    if (f->st.card_reset != CACREG_RESET_RUNNING)
        return;
    if (ev->err == CACREG_OK) {
        f->st.card_reset = CACREG_RESET_DONE;
        f->reset_tries = 0;
    } else if (++f->reset_tries < 3) {
        f->st.card_reset = CACREG_RESET_FAILED;
        forget_card(f, true); /* the card must not stay open for the next person */
    } else {
        f->st.card_reset = CACREG_RESET_FAILED;
    }
}

static void read_card(cacreg_flow *f);

/* The card's key is out of the portal: libp11 lets go, and the card is read again. */
static void card_dropped(cacreg_flow *f)
{
    forget_card(f, true);
    f->card_gen++;
    if (f->st.card != CACREG_CARD_NONE) {
        f->st.card = CACREG_CARD_NONE;
        read_card(f);
    }
}

static void lane_failed(cacreg_flow *f, cacreg_request kind, unsigned ticket);

static bool lane_holds(const cacreg_flow *f, enum lane_op op)
{
    for (size_t i = 0; i < f->lane.count; i++)
        if (f->lane.queue[i].op == op)
            return true;
    return false;
}

/* Runs what waits for the connection, until a request is in flight or nothing waits. */
static void lane_run(cacreg_flow *f)
{
    struct lane *l = &f->lane;

    while (l->job == 0 && l->count > 0) {
        struct lane_entry e = l->queue[0];
        memmove(l->queue, l->queue + 1, (l->count - 1) * sizeof l->queue[0]);
        l->count--;
        switch (e.op) {
        case OP_USE_KEY:
            if (f->io.use_key(f->io.ctx) != CACREG_OK) {
                f->io.drop_key(f->io.ctx);
                card_dropped(f);
                f->login = LOGIN_NONE;
                lane_drop_requests(f);
                if (f->awaiting)
                    lane_failed(f, CACREG_REQ_COUNT, f->awaiting);
            }
            break;
        case OP_DROP_KEY:
            f->io.drop_key(f->io.ctx);
            card_dropped(f);
            break;
        case OP_SEND:
            l->job = f->io.request(f->io.ctx, e.kind, f->st.username, f->outgoing);
            cacreg_secret_clear(f->outgoing); /* sent once, whatever the answer */
            if (l->job < 0) {
                l->job = 0;
                lane_failed(f, e.kind, e.ticket);
                break;
            }
            l->kind = e.kind;
            l->ticket = e.ticket;
            break;
        }
    }
    f->st.requesting = l->job > 0;
}

/* A request that could not be started, or a key that could not be given. */
static void lane_failed(cacreg_flow *f, cacreg_request kind, unsigned ticket)
{
    if (ticket == 0 || ticket != f->awaiting)
        return;
    f->awaiting = 0;
    if (kind == CACREG_REQ_COUNT)
        fail(f, CACREG_FAIL_CARD, CACREG_STAGE_KEY, CACREG_ERR_NO_KEY,
             cacreg_diagnose_card(CACREG_ERR_NO_KEY), NULL);
    else
        fail(f, CACREG_FAIL_PORTAL, CACREG_STAGE_PORTAL, CACREG_ERR_SYSTEM,
             cacreg_diagnose_say(CACREG_SAY_NOT_STARTED), NULL);
}

/* Drops the card's login: the portal's key (once no request uses it), then libp11's. */
static void drop_card_login(cacreg_flow *f)
{
    if (f->login == LOGIN_NONE)
        return;
    f->login = LOGIN_NONE;
    lane_push(f, OP_DROP_KEY, CACREG_REQ_NONE, 0);
    lane_run(f);
}

/* ---- steps' own work ---- */

static void enter_start(cacreg_flow *f)
{
    lane_drop_requests(f);
    drop_card_login(f);
    if (f->st.session) {
        f->st.session = false;
        lane_push(f, OP_SEND, CACREG_REQ_LOGOUT, 0);
        lane_run(f);
    }
    f->st.path = CACREG_PATH_NONE;
    f->st.request = CACREG_REQ_NONE;
    f->st.username[0] = '\0';
    memset(&f->st.account, 0, sizeof f->st.account);
    memset(&f->st.registration, 0, sizeof f->st.registration);
    memset(&f->st.last, 0, sizeof f->st.last);
    f->st.done = CACREG_DONE_NONE;
    clear_problem(&f->st.notice);
}

/* The account's view is without the card's login. */
static void enter_registration(cacreg_flow *f)
{
    drop_card_login(f);
}

/* Done or failed, the card's part of the session is over: its login is dropped (and
 * libp11's copy of the PIN with it), the card reset. */
static void end_card(cacreg_flow *f)
{
    drop_card_login(f);
}

static void enter_asking(cacreg_flow *f)
{
    f->awaiting = ++f->next_ticket ? f->next_ticket : ++f->next_ticket;
    lane_push(f, OP_SEND, f->st.request, f->awaiting);
    lane_run(f);
}

/* Leaving before the answer: the request is taken back, or cancelled in flight. */
static void leave_asking(cacreg_flow *f)
{
    struct lane *l = &f->lane;
    size_t kept = 0;

    if (!f->awaiting)
        return;
    for (size_t i = 0; i < l->count; i++)
        if (l->queue[i].ticket != f->awaiting)
            l->queue[kept++] = l->queue[i];
    if (kept != l->count)
        cacreg_secret_clear(f->outgoing);
    l->count = kept;
    if (l->job > 0 && l->ticket == f->awaiting)
        f->io.cancel(f->io.ctx);
    f->awaiting = 0;
}

static void ask(cacreg_flow *f, cacreg_request kind)
{
    f->st.request = kind;
    go(f, CACREG_STEP_ASKING);
}

/* ---- the card ---- */

static void read_card(cacreg_flow *f)
{
    if (f->st.module != CACREG_MODULE_LOADED || !f->st.reader[0] || f->read_job > 0)
        return;
    f->read_gen = f->card_gen;
    f->read_job = f->io.read_card(f->io.ctx, f->st.reader);
    if (f->read_job < 0) {
        f->read_job = 0;
        f->st.card = CACREG_CARD_FAILED;
        f->st.card_err = CACREG_ERR_SYSTEM;
        copy(f->st.card_error, sizeof f->st.card_error, cacreg_strerror(CACREG_ERR_SYSTEM));
        return;
    }
    f->st.card = CACREG_CARD_READING;
}

/* The card has been read, or could not be: go on with the way that waited for it. */
static void card_ready(cacreg_flow *f)
{
    const cacreg_cert *id = f->st.chosen < f->st.info.ncerts ? &f->st.info.certs[f->st.chosen] : NULL;

    if (f->st.card == CACREG_CARD_FAILED)
        fail(f, f->st.card_err == CACREG_ERR_NO_CARD ? CACREG_FAIL_NO_CARD : CACREG_FAIL_CARD,
             CACREG_STAGE_CARD, f->st.card_err,
             f->st.card_err == CACREG_ERR_NO_CARD || f->st.card_err == CACREG_ERR_NOT_CAC
                 ? cacreg_diagnose_card(f->st.card_err)
                 : cacreg_diagnose_say(CACREG_SAY_CARD_UNREADABLE),
             f->st.card_error);
    else if (id && !id->rsa_key && f->st.info.rsa_only)
        /* Checked before the PIN is asked for: the key could not sign after it. */
        fail(f, CACREG_FAIL_CARD, CACREG_STAGE_KEY, CACREG_ERR_KEY_UNSUPPORTED,
             cacreg_diagnose_card(CACREG_ERR_KEY_UNSUPPORTED), NULL);
    else if (f->st.path == CACREG_PATH_REGISTER)
        go(f, CACREG_STEP_CHOOSE_CERT);
    else if (f->st.verdict != CACREG_VERDICT_OK)
        fail(f, CACREG_FAIL_CARD, CACREG_STAGE_PREFLIGHT, CACREG_ERR_CERT,
             cacreg_diagnose_verdict(f->st.verdict), f->st.verdict_detail);
    else if (f->st.info.pin == CACREG_PIN_LOCKED)
        fail(f, CACREG_FAIL_CARD, CACREG_STAGE_PIN, CACREG_ERR_PIN_LOCKED,
             cacreg_diagnose_card(CACREG_ERR_PIN_LOCKED), NULL);
    else
        go(f, CACREG_STEP_PIN);
}

/* A way that needs the card: now, once it is read, or once it is in. */
static void need_card(cacreg_flow *f)
{
    const cacreg_readers *r = &f->st.readers;

    if (f->st.card == CACREG_CARD_READ || f->st.card == CACREG_CARD_FAILED)
        card_ready(f);
    else if (f->st.module == CACREG_MODULE_FAILED)
        fail(f, CACREG_FAIL_MIDDLEWARE, CACREG_STAGE_MODULE, CACREG_ERR_NOT_FOUND,
             cacreg_diagnose_say(CACREG_SAY_NO_MODULE), f->st.module_error);
    else if (r->status == CACREG_PCSC_DOWN)
        fail(f, CACREG_FAIL_MIDDLEWARE, CACREG_STAGE_PCSC, CACREG_ERR_NOT_FOUND,
             cacreg_diagnose_say(CACREG_SAY_PCSC_DOWN), r->detail);
    else if (r->status == CACREG_PCSC_DENIED)
        fail(f, CACREG_FAIL_MIDDLEWARE, CACREG_STAGE_PCSC, CACREG_ERR_NOT_FOUND,
             cacreg_diagnose_say(CACREG_SAY_PCSC_DENIED), r->detail);
    else if (f->st.reader[0] && f->st.module == CACREG_MODULE_LOADING)
        go(f, CACREG_STEP_LOADING);
    else if (f->st.card == CACREG_CARD_READING)
        go(f, CACREG_STEP_READING);
    else if (f->st.step != CACREG_STEP_INSERT_CARD)
        go(f, CACREG_STEP_INSERT_CARD);
}

/* Does the step (or the request in flight) need the card in the reader? */
static bool card_in_use(const cacreg_flow *f)
{
    if (f->st.step == CACREG_STEP_ASKING)
        return requests[f->st.request].uses_card;
    return steps[f->st.step].uses_card;
}

static void card_gone(cacreg_flow *f, cacreg_say why)
{
    f->card_gen++;
    f->st.reader[0] = '\0';
    f->st.card = CACREG_CARD_NONE;
    f->st.card_error[0] = '\0';
    f->st.tries_left = -1;
    memset(&f->st.info, 0, sizeof f->st.info);
    f->st.chosen = 0;
    if (card_in_use(f))
        start_over_saying(f, why == CACREG_SAY_PCSC_STOPPED ? CACREG_FAIL_MIDDLEWARE
                                                            : CACREG_FAIL_NO_CARD,
                          CACREG_STAGE_CARD, why);
    if (f->login == LOGIN_ACTIVE)
        drop_card_login(f); /* the key, then libp11 */
    else if (!lane_holds(f, OP_DROP_KEY))
        forget_card(f, false); /* what libp11 read; a drop waiting for the portal does it after */
}

static void on_readers(cacreg_flow *f, const cacreg_flow_event *ev)
{
    const cacreg_readers *r = ev->readers;
    bool still_in = false;

    f->st.readers = *r;
    if (f->st.reader[0]) {
        for (size_t i = 0; i < r->count; i++)
            if (strcmp(r->readers[i].name, f->st.reader) == 0 && r->readers[i].card_present)
                still_in = true;
        if (!still_in || r->status != CACREG_PCSC_UP ||
            (ev->card_out && strcmp(ev->card_out, f->st.reader) == 0))
            card_gone(f, r->status != CACREG_PCSC_UP ? CACREG_SAY_PCSC_STOPPED
                                                     : CACREG_SAY_CARD_REMOVED);
    }
    if (f->st.reader[0] || r->status != CACREG_PCSC_UP)
        return;
    for (size_t i = 0; i < r->count; i++)
        if (r->readers[i].card_present && !r->readers[i].mute) {
            copy(f->st.reader, sizeof f->st.reader, r->readers[i].name);
            f->card_gen++;
            read_card(f);
            if (f->st.step == CACREG_STEP_INSERT_CARD)
                need_card(f);
            return;
        }
}

static void on_loaded(cacreg_flow *f, const cacreg_flow_event *ev)
{
    f->load_job = 0;
    if (ev->err == CACREG_OK) {
        f->st.module = CACREG_MODULE_LOADED;
        copy(f->st.module_path, sizeof f->st.module_path, ev->module_path);
        read_card(f);
    } else {
        f->st.module = CACREG_MODULE_FAILED;
        copy(f->st.module_error, sizeof f->st.module_error, ev->message);
    }
    if (f->st.step == CACREG_STEP_LOADING)
        need_card(f);
}

static void on_card_read(cacreg_flow *f, const cacreg_flow_event *ev)
{
    f->read_job = 0;
    if (f->read_gen != f->card_gen) { /* another card, or none, since */
        read_card(f);
        return;
    }
    if (ev->err == CACREG_OK) {
        f->st.card = CACREG_CARD_READ;
        f->st.info = *ev->card;
        f->st.chosen = ev->chosen;
        f->st.verdict = ev->verdict;
        copy(f->st.verdict_detail, sizeof f->st.verdict_detail, ev->verdict_detail);
        f->st.tries_left = ev->card->tries_left;
        f->st.card_error[0] = '\0';
    } else {
        f->st.card = CACREG_CARD_FAILED;
        f->st.card_err = ev->err;
        copy(f->st.card_error, sizeof f->st.card_error, ev->message);
    }
    if (f->st.step == CACREG_STEP_READING)
        card_ready(f);
}

static void on_pin_checked(cacreg_flow *f, const cacreg_flow_event *ev)
{
    cacreg_err err = ev->err;

    f->pin_job = 0;
    if (err == CACREG_OK || err == CACREG_ERR_NO_KEY)
        f->login = LOGIN_ACTIVE; /* libp11 is logged in */
    if (f->pin_gen != f->card_gen || f->st.step != CACREG_STEP_CHECKING_PIN) {
        /* the card went, or the person left, while the card checked the PIN */
        drop_card_login(f);
        return;
    }
    f->st.tries_left = ev->tries_left;
    if (err == CACREG_ERR_PIN_WRONG)
        f->st.info.pin = ev->tries_left == 1 ? CACREG_PIN_FINAL_TRY : CACREG_PIN_COUNT_LOW;
    else if (err == CACREG_ERR_PIN_LOCKED)
        f->st.info.pin = CACREG_PIN_LOCKED;
    else if (err == CACREG_OK)
        f->st.info.pin = CACREG_PIN_OK;
    switch (err) {
    case CACREG_OK:
        lane_push(f, OP_USE_KEY, CACREG_REQ_NONE, 0);
        if (f->st.path == CACREG_PATH_REGISTER) {
            lane_run(f);
            go(f, CACREG_STEP_CONFIRM_PASSWORD);
        } else {
            ask(f, CACREG_REQ_CAC_LOGIN); /* the key goes in before the request */
        }
        return;
    case CACREG_ERR_PIN_WRONG:
    case CACREG_ERR_PIN_FORMAT:
        go(f, CACREG_STEP_PIN);
        problem(f, err == CACREG_ERR_PIN_WRONG ? CACREG_FAIL_CARD : CACREG_FAIL_INPUT,
                CACREG_STAGE_PIN, err, cacreg_diagnose_card(err), ev->message);
        return;
    case CACREG_ERR_NO_CARD:
        start_over_saying(f, CACREG_FAIL_NO_CARD, CACREG_STAGE_CARD, CACREG_SAY_CARD_REMOVED);
        return;
    case CACREG_ERR_NO_KEY:
        drop_card_login(f);
        fail(f, CACREG_FAIL_CARD, CACREG_STAGE_KEY, err,
             cacreg_diagnose_verdict(CACREG_VERDICT_WRONG_KIND), ev->message);
        return;
    default:
        fail(f, CACREG_FAIL_CARD, CACREG_STAGE_PIN, err, cacreg_diagnose_card(err), ev->message);
        return;
    }
}

/* ---- the portal's answers ---- */

static void answered_cac_login(cacreg_flow *f, const cacreg_portal_result *r)
{
    f->st.session = true;
    f->st.done = CACREG_DONE_CAC_LOGIN;
    copy(f->st.username, sizeof f->st.username, r->username);
    f->st.account = *r;
    go(f, CACREG_STEP_DONE);
}

static void answered_password_login(cacreg_flow *f, const cacreg_portal_result *r)
{
    f->st.session = true;
    f->st.account = *r;
    ask(f, CACREG_REQ_GET_REGISTRATION);
}

static void answered_registration(cacreg_flow *f, const cacreg_portal_result *r)
{
    f->st.registration = *r;
    go(f, CACREG_STEP_REGISTRATION);
}

static void answered_clear(cacreg_flow *f, const cacreg_portal_result *r)
{
    /* The portal's note (machines that cached the card) goes with the notice. */
    set_problem(&f->st.notice, CACREG_FAIL_NONE, CACREG_STAGE_NONE, CACREG_OK,
                cacreg_diagnose_say(CACREG_SAY_CLEARED), r->note[0] ? r->note : NULL);
    ask(f, CACREG_REQ_GET_REGISTRATION);
}

static void answered_register(cacreg_flow *f, const cacreg_portal_result *r)
{
    (void)r;
    f->st.done = CACREG_DONE_REGISTERED;
    go(f, CACREG_STEP_DONE);
}

static void answered_reset(cacreg_flow *f, const cacreg_portal_result *r)
{
    (void)r;
    f->st.done = CACREG_DONE_RESET;
    go(f, CACREG_STEP_DONE);
}

static void on_answer(cacreg_flow *f, const cacreg_flow_event *ev)
{
    const cacreg_portal_result *r = ev->answer;
    const struct request_def *req = &requests[f->lane.kind];
    bool ours = f->lane.ticket != 0 && f->lane.ticket == f->awaiting;

    if (ev->job != f->lane.job)
        return;
    f->lane.job = 0;
    f->lane.ticket = 0;
    if (ours) {
        f->awaiting = 0;
        f->st.last = *r;
        if (r->err == CACREG_ERR_REFUSED && r->reason == CACREG_PORTAL_INVALID_CREDENTIALS &&
            req->retry != NO_BACK) {
            /* typed wrong: the same step again, with the attempts left */
            go(f, req->retry);
            problem(f, CACREG_FAIL_REFUSED, CACREG_STAGE_PORTAL, r->err,
                    cacreg_diagnose_portal(r), r->message);
        } else if (r->err == CACREG_ERR_NO_KEY) { /* the card did not sign the handshake */
            fail(f, CACREG_FAIL_CARD, CACREG_STAGE_KEY, r->err, cacreg_diagnose_card(r->err),
                 r->message);
        } else if (r->err != CACREG_OK) {
            fail(f, r->err == CACREG_ERR_REFUSED ? CACREG_FAIL_REFUSED : CACREG_FAIL_PORTAL,
                 CACREG_STAGE_PORTAL, r->err, cacreg_diagnose_portal(r), r->message);
            cacreg_diagnose_clock(r, f->st.problem.clock, sizeof f->st.problem.clock);
        } else {
            req->answered(f, r);
        }
    }
    lane_run(f);
}

/* ---- time ---- */

static void check_timer(cacreg_flow *f)
{
    enum timer timer = steps[f->st.step].timer;

    if (!f->deadline || now(f) < f->deadline)
        return;
    f->deadline = 0;
    if (timer == TIMER_IDLE)
        start_over_saying(f, CACREG_FAIL_IDLE, CACREG_STAGE_IDLE, CACREG_SAY_IDLE);
    else if (timer == TIMER_CARD) {
        f->st.card_stuck = true; /* until a card job ends after all */
        fail(f, CACREG_FAIL_CARD, CACREG_STAGE_CARD, CACREG_ERR_TIMEOUT,
             cacreg_diagnose_say(CACREG_SAY_CARD_STUCK), NULL);
    }
}

/* ---- the public side ---- */

cacreg_flow *cacreg_flow_new(const cacreg_config *cfg, const cacreg_flow_io *io)
{
    cacreg_flow *f = calloc(1, sizeof *f);

    if (!f)
        return NULL;
    f->cfg = *cfg;
    f->io = *io;
    f->st.tries_left = -1;
    f->pin = cacreg_secret_new();
    f->password = cacreg_secret_new();
    f->outgoing = cacreg_secret_new();
    if (!f->pin || !f->password || !f->outgoing) {
        cacreg_flow_free(f);
        return NULL;
    }
    f->st.module = CACREG_MODULE_LOADING;
    f->load_job = f->io.load_module(f->io.ctx);
    if (f->load_job < 0) {
        f->load_job = 0;
        f->st.module = CACREG_MODULE_FAILED;
        copy(f->st.module_error, sizeof f->st.module_error, cacreg_strerror(CACREG_ERR_SYSTEM));
    }
    f->st.step = CACREG_STEP_START;
    enter_start(f);
    return f;
}

void cacreg_flow_free(cacreg_flow *f)
{
    if (!f)
        return;
    cacreg_secret_free(f->pin);
    cacreg_secret_free(f->password);
    cacreg_secret_free(f->outgoing);
    free(f);
}

void cacreg_flow_trace(cacreg_flow *f, void (*fn)(const char *line, void *ctx), void *ctx)
{
    f->trace = fn;
    f->trace_ctx = ctx;
}

void cacreg_flow_feed(cacreg_flow *f, const cacreg_flow_event *ev)
{
    if (ev->type == CACREG_FLOW_EV_LOADED || ev->type == CACREG_FLOW_EV_CARD_READ ||
        ev->type == CACREG_FLOW_EV_PIN_CHECKED || ev->type == CACREG_FLOW_EV_FORGOTTEN)
        f->st.card_stuck = false; /* the worker answers again */
    switch (ev->type) {
    case CACREG_FLOW_EV_READERS:
        on_readers(f, ev);
        break;
    case CACREG_FLOW_EV_LOADED:
        if (ev->job == f->load_job)
            on_loaded(f, ev);
        break;
    case CACREG_FLOW_EV_CARD_READ:
        if (ev->job == f->read_job)
            on_card_read(f, ev);
        break;
    case CACREG_FLOW_EV_PIN_CHECKED:
        if (ev->job == f->pin_job)
            on_pin_checked(f, ev);
        break;
    case CACREG_FLOW_EV_FORGOTTEN:
        if (ev->job == f->forget_job)
            on_forgotten(f, ev);
        break;
    case CACREG_FLOW_EV_ANSWER:
        on_answer(f, ev);
        break;
    case CACREG_FLOW_EV_TICK:
        break;
    }
    forget_run(f);
    check_timer(f);
    f->st.generation++;
}

int cacreg_flow_timeout_ms(const cacreg_flow *f)
{
    long long ms;

    if (!f->deadline)
        return -1;
    ms = f->deadline - now(f);
    return ms < 0 ? 0 : ms > 86400000 ? 86400000 : (int)ms;
}

bool cacreg_flow_settled(const cacreg_flow *f)
{
    return f->lane.job == 0 && f->lane.count == 0 && f->pin_job == 0 && f->read_job == 0 &&
           f->load_job == 0 && f->forget_job == 0 && !f->forget_owed;
}

void cacreg_flow_touch(cacreg_flow *f)
{
    if (steps[f->st.step].timer == TIMER_IDLE)
        f->deadline = now(f) + f->cfg.idle_timeout_s * 1000LL;
}

const cacreg_flow_state *cacreg_flow_state_get(const cacreg_flow *f)
{
    return &f->st;
}

cacreg_secret *cacreg_flow_secret(cacreg_flow *f)
{
    switch (steps[f->st.step].secret) {
    case SECRET_PIN:
        return f->pin;
    case SECRET_PASSWORD:
        return f->password;
    case SECRET_NONE:
        break;
    }
    return NULL;
}

bool cacreg_flow_can(const cacreg_flow *f, cacreg_action_kind kind)
{
    const cacreg_flow_state *s = &f->st;

    if ((unsigned)kind >= CACREG_ACT_COUNT)
        return false;
    if (!((steps[s->step].takes | ALWAYS) & (1u << kind)))
        return false;
    switch (kind) {
    case CACREG_ACT_CLEAR:
        return s->registration.registered;
    case CACREG_ACT_NEW_PASSWORD:
        return s->step == CACREG_STEP_START ||
               (s->last.err == CACREG_ERR_REFUSED &&
                s->last.reason == CACREG_PORTAL_PASSWORD_EXPIRED);
    case CACREG_ACT_BACK:
        return s->step != CACREG_STEP_ASKING || requests[s->request].back != NO_BACK;
    default:
        return true;
    }
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

static void submit_pin(cacreg_flow *f)
{
    if (!cacreg_secret_is_pin(f->pin)) {
        cacreg_secret_clear(f->pin);
        problem(f, CACREG_FAIL_INPUT, CACREG_STAGE_PIN, CACREG_ERR_PIN_FORMAT,
                cacreg_diagnose_card(CACREG_ERR_PIN_FORMAT), NULL);
        return;
    }
    f->pin_gen = f->card_gen;
    copy(f->login_reader, sizeof f->login_reader, f->st.reader);
    f->pin_job = f->io.check_pin(f->io.ctx, f->st.reader, f->pin); /* takes the PIN */
    if (f->pin_job < 0) {
        f->pin_job = 0;
        fail(f, CACREG_FAIL_CARD, CACREG_STAGE_PIN, CACREG_ERR_SYSTEM,
             cacreg_diagnose_card(CACREG_ERR_CARD), NULL);
        return;
    }
    go(f, CACREG_STEP_CHECKING_PIN);
}

/* A password typed at this step goes out with kind; nothing goes without one. */
static void submit_password(cacreg_flow *f, cacreg_request kind)
{
    if (cacreg_secret_len(f->password) == 0) {
        problem(f, CACREG_FAIL_INPUT, CACREG_STAGE_INPUT, CACREG_ERR_INVALID,
                cacreg_diagnose_say(CACREG_SAY_NO_PASSWORD), NULL);
        return;
    }
    cacreg_secret_clear(f->outgoing);
    if (cacreg_secret_move(f->outgoing, f->password) != CACREG_OK) {
        fail(f, CACREG_FAIL_INPUT, CACREG_STAGE_INPUT, CACREG_ERR_TOO_LONG,
             cacreg_diagnose_say(CACREG_SAY_NO_PASSWORD), NULL);
        return;
    }
    ask(f, kind);
}

static bool act_submit(cacreg_flow *f, const cacreg_action *a)
{
    bool named = username_ok(a->username);

    switch (f->st.step) {
    case CACREG_STEP_PIN:
        submit_pin(f);
        break;
    case CACREG_STEP_CREDENTIALS:
        if (!named) {
            cacreg_secret_clear(f->password);
            problem(f, CACREG_FAIL_INPUT, CACREG_STAGE_INPUT, CACREG_ERR_INVALID,
                    cacreg_diagnose_say(CACREG_SAY_BAD_USERNAME), NULL);
            break;
        }
        copy(f->st.username, sizeof f->st.username, a->username);
        submit_password(f, CACREG_REQ_PASSWORD_LOGIN);
        break;
    case CACREG_STEP_CONFIRM_PASSWORD:
        submit_password(f, CACREG_REQ_REGISTER);
        break;
    case CACREG_STEP_RESET:
        if (!named) {
            problem(f, CACREG_FAIL_INPUT, CACREG_STAGE_INPUT, CACREG_ERR_INVALID,
                    cacreg_diagnose_say(CACREG_SAY_BAD_USERNAME), NULL);
            break;
        }
        copy(f->st.username, sizeof f->st.username, a->username);
        ask(f, CACREG_REQ_PASSWORD_RESET);
        break;
    default:
        return false;
    }
    return true;
}

static bool act_cac_login(cacreg_flow *f, const cacreg_action *a)
{
    (void)a;
    f->st.path = CACREG_PATH_CAC_LOGIN;
    need_card(f);
    return true;
}

static bool act_password_login(cacreg_flow *f, const cacreg_action *a)
{
    (void)a;
    f->st.path = CACREG_PATH_REGISTER;
    go(f, CACREG_STEP_CREDENTIALS);
    return true;
}

/* "I need a password": from the start, or from an expired password with its username. */
static bool act_new_password(cacreg_flow *f, const cacreg_action *a)
{
    char username[sizeof f->st.username];

    (void)a;
    copy(username, sizeof username, f->st.username);
    if (f->st.step != CACREG_STEP_START)
        start_over(f, NULL);
    f->st.path = CACREG_PATH_RESET;
    copy(f->st.username, sizeof f->st.username, username);
    go(f, CACREG_STEP_RESET);
    return true;
}

static bool act_register(cacreg_flow *f, const cacreg_action *a)
{
    (void)a;
    need_card(f);
    return true;
}

static bool act_clear(cacreg_flow *f, const cacreg_action *a)
{
    (void)a;
    go(f, CACREG_STEP_CONFIRM_CLEAR);
    return true;
}

static bool act_yes(cacreg_flow *f, const cacreg_action *a)
{
    (void)a;
    ask(f, CACREG_REQ_CLEAR_REGISTRATION);
    return true;
}

static bool act_no(cacreg_flow *f, const cacreg_action *a)
{
    (void)a;
    go(f, CACREG_STEP_REGISTRATION);
    return true;
}

static bool act_choose(cacreg_flow *f, const cacreg_action *a)
{
    if (a->cert >= f->st.info.ncerts)
        return false;
    if (a->cert != f->st.chosen) {
        /* Only the identity certificate logs in; say why this one does not. */
        const char *why = cacreg_cert_why_not(&f->st.info.certs[a->cert]);
        problem(f, CACREG_FAIL_INPUT, CACREG_STAGE_CHOOSE, CACREG_ERR_INVALID,
                cacreg_diagnose_verdict(CACREG_VERDICT_WRONG_KIND), why);
    } else if (f->st.verdict != CACREG_VERDICT_OK) {
        fail(f, CACREG_FAIL_CARD, CACREG_STAGE_PREFLIGHT, CACREG_ERR_CERT,
             cacreg_diagnose_verdict(f->st.verdict), f->st.verdict_detail);
    } else if (f->st.info.pin == CACREG_PIN_LOCKED) {
        fail(f, CACREG_FAIL_CARD, CACREG_STAGE_PIN, CACREG_ERR_PIN_LOCKED,
             cacreg_diagnose_card(CACREG_ERR_PIN_LOCKED), NULL);
    } else {
        go(f, CACREG_STEP_PIN);
    }
    return true;
}

/* Esc: where the step's row (or the request's) says; an account's views need the account. */
static bool act_back(cacreg_flow *f, const cacreg_action *a)
{
    cacreg_step to = f->st.step == CACREG_STEP_ASKING ? requests[f->st.request].back
                                                      : steps[f->st.step].back;

    (void)a;
    if (steps[to].needs_account && !(f->st.session && f->st.path == CACREG_PATH_REGISTER))
        to = CACREG_STEP_START;
    if (to == CACREG_STEP_START)
        start_over(f, NULL);
    else
        go(f, to);
    return true;
}

static bool act_restart(cacreg_flow *f, const cacreg_action *a)
{
    (void)a;
    start_over(f, NULL);
    return true;
}

static bool (*const actions[CACREG_ACT_COUNT])(cacreg_flow *f, const cacreg_action *a) = {
    [CACREG_ACT_CAC_LOGIN] = act_cac_login,   [CACREG_ACT_PASSWORD_LOGIN] = act_password_login,
    [CACREG_ACT_NEW_PASSWORD] = act_new_password, [CACREG_ACT_SUBMIT] = act_submit,
    [CACREG_ACT_REGISTER] = act_register,     [CACREG_ACT_CLEAR] = act_clear,
    [CACREG_ACT_YES] = act_yes,               [CACREG_ACT_NO] = act_no,
    [CACREG_ACT_CHOOSE] = act_choose,         [CACREG_ACT_BACK] = act_back,
    [CACREG_ACT_RESTART] = act_restart,
};

static const char *const action_names[CACREG_ACT_COUNT] = {
    "cac-login", "password-login", "new-password", "submit", "register", "clear",
    "yes",       "no",             "choose",       "back",   "restart"};

bool cacreg_flow_act(cacreg_flow *f, cacreg_action a)
{
    bool done;

    if (!cacreg_flow_can(f, a.kind))
        return false;
    tracef(f, "%s: %s", steps[f->st.step].name, action_names[a.kind]);
    clear_problem(&f->st.notice); /* news is for until the person does something */
    done = actions[a.kind](f, &a);
    f->st.generation++;
    return done;
}

bool cacreg_flow_do(cacreg_flow *f, cacreg_action_kind kind)
{
    return cacreg_flow_act(f, (cacreg_action){.kind = kind});
}
