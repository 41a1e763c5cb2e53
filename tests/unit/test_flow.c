/*
 * Unit tests for core/flow.c, the flow's state machine, driven by events
 * alone: a fake io records what the flow asks for (jobs, requests, keys),
 * the test feeds back what the threads would report, and a fake clock
 * stands in for time. No thread, no card, no network, no sleeping. Both of
 * the help article's paths to DONE, every failure kind, the card pulled at
 * each step, the idle timeout at each step, Esc from each step. The same
 * paths run for real in tests/bench (test_login.sh, test_register.sh,
 * test_tui.sh).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "parts.h"

#define READER "Virtual CAC Reader 00 00"

/* What the flow asked of the world, and what the world will answer. */
struct fake {
    long long now;
    int next_id;
    int load_id, read_id, pin_id, forget_id, request_id;
    int reads, forgets, resets, use_keys, drop_keys, cancels;
    int pins_sent;
    char pin[16];                /* the last PIN the flow gave away */
    cacreg_request requests[64]; /* every request sent, in order */
    size_t nrequests;
    char username[128];          /* of the last request */
    char password[64];           /* of the last request that carried one */
    bool refuse_requests;        /* the portal client cannot start one */
    bool key_fails;
    bool request_in_flight;
};

static struct fake fk;
static cacreg_config cfg;

static long long io_now(void *ctx)
{
    (void)ctx;
    return fk.now;
}

static int io_load(void *ctx)
{
    (void)ctx;
    return fk.load_id = ++fk.next_id;
}

static int io_read(void *ctx, const char *reader)
{
    (void)ctx;
    assert_string_equal(reader, READER);
    fk.reads++;
    return fk.read_id = ++fk.next_id;
}

static int io_check_pin(void *ctx, const char *reader, cacreg_secret *pin)
{
    (void)ctx;
    assert_string_equal(reader, READER);
    snprintf(fk.pin, sizeof fk.pin, "%s", cacreg_secret_data(pin));
    cacreg_secret_clear(pin); /* taken, as the engine does */
    fk.pins_sent++;
    return fk.pin_id = ++fk.next_id;
}

static int io_forget(void *ctx, const char *reader, bool reset)
{
    (void)ctx;
    fk.forgets++;
    if (reset) {
        assert_string_equal(reader, READER); /* the card the PIN went to */
        fk.resets++;
    }
    return fk.forget_id = ++fk.next_id;
}

static cacreg_err io_use_key(void *ctx)
{
    (void)ctx;
    assert_false(fk.request_in_flight); /* never under a request using the connection */
    fk.use_keys++;
    return fk.key_fails ? CACREG_ERR_NO_KEY : CACREG_OK;
}

static void io_drop_key(void *ctx)
{
    (void)ctx;
    assert_false(fk.request_in_flight);
    fk.drop_keys++;
}

static int io_request(void *ctx, cacreg_request kind, const char *username,
                      cacreg_secret *password)
{
    (void)ctx;
    assert_false(fk.request_in_flight); /* one at a time */
    assert_non_null(password); /* the flow's outgoing buffer, empty or not */
    if (fk.refuse_requests) {
        cacreg_secret_clear(password);
        return -1;
    }
    fk.requests[fk.nrequests++ % 64] = kind;
    snprintf(fk.username, sizeof fk.username, "%s", username ? username : "");
    if (cacreg_secret_len(password))
        snprintf(fk.password, sizeof fk.password, "%s", cacreg_secret_data(password));
    cacreg_secret_clear(password);
    fk.request_in_flight = true;
    return fk.request_id = ++fk.next_id;
}

static void io_cancel(void *ctx)
{
    (void)ctx;
    fk.cancels++;
}

static cacreg_flow *make(void)
{
    static const cacreg_flow_io io = {.now_ms = io_now,
                                      .load_module = io_load,
                                      .read_card = io_read,
                                      .check_pin = io_check_pin,
                                      .forget_card = io_forget,
                                      .use_key = io_use_key,
                                      .drop_key = io_drop_key,
                                      .request = io_request,
                                      .cancel = io_cancel};
    cacreg_flow *f;

    memset(&fk, 0, sizeof fk);
    fk.now = 1000000;
    cacreg_config_defaults(&cfg);
    f = cacreg_flow_new(&cfg, &io);
    assert_non_null(f);
    return f;
}

static const cacreg_flow_state *st(const cacreg_flow *f)
{
    return cacreg_flow_state_get(f);
}

static void feed(cacreg_flow *f, cacreg_flow_event ev)
{
    cacreg_flow_feed(f, &ev);
}

static void loaded(cacreg_flow *f, bool ok)
{
    feed(f, (cacreg_flow_event){.type = CACREG_FLOW_EV_LOADED, .job = fk.load_id,
                                .err = ok ? CACREG_OK : CACREG_ERR_NOT_FOUND,
                                .message = ok ? "" : "The PKCS#11 module cannot be loaded.",
                                .module_path = "/usr/lib/opensc-pkcs11.so"});
}

/* pcscd's state, with the card in the reader or not. */
static void readers(cacreg_flow *f, cacreg_pcsc_status status, bool card)
{
    cacreg_readers r;

    memset(&r, 0, sizeof r);
    r.status = status;
    r.count = status == CACREG_PCSC_UP;
    snprintf(r.readers[0].name, sizeof r.readers[0].name, "%s", READER);
    r.readers[0].card_present = card;
    feed(f, (cacreg_flow_event){.type = CACREG_FLOW_EV_READERS, .readers = &r,
                                .card_out = card ? NULL : READER});
}

/* The card the read job found: JANE Q DOE's three certificates, the identity one first. */
static void card_read(cacreg_flow *f, cacreg_verdict verdict, cacreg_pin_state pin)
{
    static const cacreg_cert_kind kinds[] = {CACREG_CERT_IDENTITY, CACREG_CERT_EMAIL_SIGNATURE,
                                             CACREG_CERT_EMAIL_ENCRYPTION};
    cacreg_card card;

    memset(&card, 0, sizeof card);
    card.recognised = true;
    card.pin = pin;
    card.tries_left = -1;
    card.ncerts = 3;
    for (size_t i = 0; i < 3; i++) {
        snprintf(card.certs[i].holder, sizeof card.certs[i].holder, "JANE Q DOE");
        snprintf(card.certs[i].serial, sizeof card.certs[i].serial, "100%zu", i + 4);
        card.certs[i].kind = kinds[i];
    }
    feed(f, (cacreg_flow_event){.type = CACREG_FLOW_EV_CARD_READ, .job = fk.read_id,
                                .err = CACREG_OK, .message = "", .card = &card, .chosen = 0,
                                .verdict = verdict, .verdict_detail = "checked"});
}

/* Module loaded, pcscd up, the card in and read: the panel is ready. */
static void ready(cacreg_flow *f)
{
    loaded(f, true);
    readers(f, CACREG_PCSC_UP, true);
    card_read(f, CACREG_VERDICT_OK, CACREG_PIN_OK);
}

static void pin_checked(cacreg_flow *f, cacreg_err err, int tries_left)
{
    feed(f, (cacreg_flow_event){.type = CACREG_FLOW_EV_PIN_CHECKED, .job = fk.pin_id, .err = err,
                                .message = "", .tries_left = tries_left});
}

/* The portal's answer to the request in flight: yes (filled in for its kind) or r. */
static void answer(cacreg_flow *f, const cacreg_portal_result *given)
{
    cacreg_portal_result r;

    if (given) {
        r = *given;
    } else {
        memset(&r, 0, sizeof r);
        r.attempts_left = -1;
        snprintf(r.username, sizeof r.username, "jane.doe");
        snprintf(r.password_expires, sizeof r.password_expires, "2027-04-24T00:00:00Z");
        r.registration = CACREG_REG_REGISTERED;
        snprintf(r.cert_serial, sizeof r.cert_serial, "1004");
    }
    assert_true(fk.request_in_flight);
    fk.request_in_flight = false;
    feed(f, (cacreg_flow_event){.type = CACREG_FLOW_EV_ANSWER, .job = fk.request_id,
                                .answer = &r});
}

static cacreg_portal_result refused(cacreg_portal_reason reason, int attempts_left)
{
    cacreg_portal_result r;

    memset(&r, 0, sizeof r);
    r.err = CACREG_ERR_REFUSED;
    r.reason = reason;
    r.attempts_left = attempts_left;
    r.http_status = 403;
    return r;
}

static void tick(cacreg_flow *f, long long ms)
{
    fk.now += ms;
    feed(f, (cacreg_flow_event){.type = CACREG_FLOW_EV_TICK});
}

static void type(cacreg_flow *f, const char *text)
{
    cacreg_secret *s = cacreg_flow_secret(f);

    assert_non_null(s);
    assert_int_equal(cacreg_secret_append(s, text, strlen(text)), CACREG_OK);
}

static bool act(cacreg_flow *f, cacreg_action_kind kind)
{
    return cacreg_flow_do(f, kind);
}

static bool submit(cacreg_flow *f, const char *username)
{
    return cacreg_flow_act(f, (cacreg_action){.kind = CACREG_ACT_SUBMIT, .username = username});
}

static cacreg_request last_request(void)
{
    return fk.nrequests ? fk.requests[(fk.nrequests - 1) % 64] : CACREG_REQ_NONE;
}

/* ---- getting to a step ---- */

/* The CAC login up to its PIN. */
static void to_pin(cacreg_flow *f)
{
    ready(f);
    assert_true(act(f, CACREG_ACT_CAC_LOGIN));
    assert_int_equal(st(f)->step, CACREG_STEP_PIN);
}

/* The password path up to the account's registration view. */
static void to_registration(cacreg_flow *f, bool registered)
{
    cacreg_portal_result reg;

    ready(f);
    assert_true(act(f, CACREG_ACT_PASSWORD_LOGIN));
    type(f, "Correct-Horse-1");
    assert_true(submit(f, "jane.doe"));
    answer(f, NULL);
    assert_int_equal(last_request(), CACREG_REQ_GET_REGISTRATION);
    memset(&reg, 0, sizeof reg);
    reg.registered = registered;
    snprintf(reg.cert_serial, sizeof reg.cert_serial, "%s", registered ? "1004" : "");
    answer(f, &reg);
    assert_int_equal(st(f)->step, CACREG_STEP_REGISTRATION);
}

/* Drives a fresh flow to step (by the CAC path, or by the password path when account). */
static void drive_to(cacreg_flow *f, cacreg_step step, bool account)
{
    switch (step) {
    case CACREG_STEP_START:
        ready(f);
        return;
    case CACREG_STEP_INSERT_CARD:
        if (account) {
            to_registration(f, false);
            readers(f, CACREG_PCSC_UP, false);
            act(f, CACREG_ACT_REGISTER);
        } else {
            loaded(f, true);
            readers(f, CACREG_PCSC_UP, false);
            act(f, CACREG_ACT_CAC_LOGIN);
        }
        break;
    case CACREG_STEP_READING:
        loaded(f, true);
        readers(f, CACREG_PCSC_UP, true); /* being read */
        act(f, CACREG_ACT_CAC_LOGIN);
        break;
    case CACREG_STEP_LOADING:
        readers(f, CACREG_PCSC_UP, true);
        act(f, CACREG_ACT_CAC_LOGIN);
        break;
    case CACREG_STEP_PIN:
    case CACREG_STEP_CHECKING_PIN:
        if (account) {
            to_registration(f, false);
            act(f, CACREG_ACT_REGISTER);
            cacreg_flow_act(f, (cacreg_action){.kind = CACREG_ACT_CHOOSE, .cert = 0});
        } else {
            to_pin(f);
        }
        if (step == CACREG_STEP_CHECKING_PIN) {
            type(f, "123456");
            submit(f, NULL);
        }
        break;
    case CACREG_STEP_ASKING: /* the CAC login, or (account) the registration, in flight */
        drive_to(f, CACREG_STEP_CHECKING_PIN, account);
        pin_checked(f, CACREG_OK, -1);
        if (account) {
            type(f, "Correct-Horse-1");
            submit(f, NULL);
        }
        break;
    case CACREG_STEP_CREDENTIALS:
        ready(f);
        act(f, CACREG_ACT_PASSWORD_LOGIN);
        break;
    case CACREG_STEP_REGISTRATION:
        to_registration(f, true);
        break;
    case CACREG_STEP_CONFIRM_CLEAR:
        to_registration(f, true);
        act(f, CACREG_ACT_CLEAR);
        break;
    case CACREG_STEP_CHOOSE_CERT:
        to_registration(f, true);
        act(f, CACREG_ACT_REGISTER);
        break;
    case CACREG_STEP_CONFIRM_PASSWORD:
        drive_to(f, CACREG_STEP_CHECKING_PIN, true);
        pin_checked(f, CACREG_OK, -1);
        break;
    case CACREG_STEP_RESET:
        ready(f);
        act(f, CACREG_ACT_NEW_PASSWORD);
        break;
    case CACREG_STEP_DONE:
        drive_to(f, CACREG_STEP_ASKING, account);
        answer(f, NULL);
        break;
    case CACREG_STEP_FAILED: {
        cacreg_portal_result r = refused(CACREG_PORTAL_NO_ACCOUNT, -1);
        drive_to(f, CACREG_STEP_ASKING, account);
        answer(f, &r);
        break;
    }
    case CACREG_STEP_COUNT:
        break;
    }
    if (st(f)->step != step)
        fail_msg("drive_to %s: at %s", cacreg_step_name(step), cacreg_step_name(st(f)->step));
}

/* ---- the two paths ---- */

static void test_start(void **state)
{
    cacreg_flow *f = make();

    (void)state;
    assert_int_equal(st(f)->step, CACREG_STEP_START);
    assert_int_equal(st(f)->module, CACREG_MODULE_LOADING);
    assert_true(fk.load_id > 0);
    assert_int_equal(cacreg_flow_timeout_ms(f), -1); /* nothing to wake for at the start */
    assert_null(cacreg_flow_secret(f));
    /* Actions of other steps are refused and change nothing. */
    assert_false(act(f, CACREG_ACT_REGISTER));
    assert_false(submit(f, "x"));
    assert_false(act(f, CACREG_ACT_BACK));
    assert_false(cacreg_flow_can(f, CACREG_ACT_CLEAR));
    ready(f);
    assert_int_equal(st(f)->card, CACREG_CARD_READ);
    assert_string_equal(st(f)->info.certs[0].holder, "JANE Q DOE");
    assert_string_equal(st(f)->module_path, "/usr/lib/opensc-pkcs11.so");
    assert_true(cacreg_flow_settled(f));
    cacreg_flow_free(f);
}

static void test_cac_login_to_done(void **state)
{
    cacreg_flow *f = make();

    (void)state;
    to_pin(f);
    assert_true(cacreg_flow_timeout_ms(f) > 0); /* the idle timer runs at the PIN */
    type(f, "123456");
    assert_true(submit(f, NULL));
    assert_int_equal(st(f)->step, CACREG_STEP_CHECKING_PIN);
    assert_string_equal(fk.pin, "123456");
    assert_int_equal(fk.nrequests, 0);
    assert_false(act(f, CACREG_ACT_BACK)); /* the card is checking: a second at most */
    pin_checked(f, CACREG_OK, -1);
    assert_int_equal(st(f)->step, CACREG_STEP_ASKING);
    assert_int_equal(st(f)->request, CACREG_REQ_CAC_LOGIN);
    assert_int_equal(fk.use_keys, 1); /* the key went in before the request */
    assert_int_equal(last_request(), CACREG_REQ_CAC_LOGIN);
    assert_true(st(f)->requesting);
    answer(f, NULL);
    assert_int_equal(st(f)->step, CACREG_STEP_DONE);
    assert_int_equal(st(f)->done, CACREG_DONE_CAC_LOGIN);
    assert_true(st(f)->session);
    assert_string_equal(st(f)->username, "jane.doe");
    assert_int_equal(fk.pins_sent, 1);
    /* The next person: logged out, the card's key dropped and libp11 told to forget. */
    assert_true(act(f, CACREG_ACT_RESTART));
    assert_int_equal(st(f)->step, CACREG_STEP_START);
    assert_int_equal(last_request(), CACREG_REQ_LOGOUT);
    assert_int_equal(fk.drop_keys, 1);
    assert_true(fk.forgets >= 1);
    assert_false(st(f)->session);
    assert_string_equal(st(f)->username, "");
    answer(f, NULL);
    assert_int_equal(st(f)->step, CACREG_STEP_START); /* the logout's answer changes nothing */
    cacreg_flow_free(f);
}

static void test_password_path_to_done(void **state)
{
    cacreg_flow *f = make();
    cacreg_secret *typed;

    (void)state;
    to_registration(f, false);
    assert_int_equal(fk.requests[0], CACREG_REQ_PASSWORD_LOGIN);
    assert_string_equal(fk.password, "Correct-Horse-1");
    assert_false(st(f)->registration.registered);
    assert_false(cacreg_flow_can(f, CACREG_ACT_CLEAR)); /* nothing to clear */
    assert_true(act(f, CACREG_ACT_REGISTER));
    assert_int_equal(st(f)->step, CACREG_STEP_CHOOSE_CERT);
    /* The email certificate is not the one: said, and the step stays. */
    assert_true(cacreg_flow_act(f, (cacreg_action){.kind = CACREG_ACT_CHOOSE, .cert = 1}));
    assert_int_equal(st(f)->step, CACREG_STEP_CHOOSE_CERT);
    assert_int_equal(st(f)->problem.stage, CACREG_STAGE_CHOOSE);
    assert_true(cacreg_flow_act(f, (cacreg_action){.kind = CACREG_ACT_CHOOSE, .cert = 0}));
    assert_int_equal(st(f)->step, CACREG_STEP_PIN);
    assert_int_equal(st(f)->problem.fail, CACREG_FAIL_NONE);
    type(f, "123456");
    submit(f, NULL);
    pin_checked(f, CACREG_OK, -1);
    assert_int_equal(st(f)->step, CACREG_STEP_CONFIRM_PASSWORD);
    assert_int_equal(fk.use_keys, 1);
    submit(f, NULL); /* nothing typed: said, nothing sent */
    assert_int_equal(st(f)->problem.fail, CACREG_FAIL_INPUT);
    assert_int_equal(last_request(), CACREG_REQ_GET_REGISTRATION);
    type(f, "Correct-Horse-1");
    typed = cacreg_flow_secret(f);
    submit(f, NULL);
    assert_int_equal(st(f)->step, CACREG_STEP_ASKING);
    assert_int_equal(last_request(), CACREG_REQ_REGISTER);
    assert_string_equal(fk.password, "Correct-Horse-1");
    assert_int_equal(cacreg_secret_len(typed), 0); /* moved out of the typing buffer */
    answer(f, NULL);
    assert_int_equal(st(f)->step, CACREG_STEP_DONE);
    assert_int_equal(st(f)->done, CACREG_DONE_REGISTERED);
    assert_int_equal(st(f)->last.registration, CACREG_REG_REGISTERED);
    cacreg_flow_free(f);
}

static void test_clear_and_reset(void **state)
{
    cacreg_flow *f = make();
    cacreg_portal_result none;

    (void)state;
    to_registration(f, true);
    assert_true(act(f, CACREG_ACT_CLEAR));
    assert_int_equal(st(f)->step, CACREG_STEP_CONFIRM_CLEAR);
    assert_true(act(f, CACREG_ACT_NO));
    assert_int_equal(st(f)->step, CACREG_STEP_REGISTRATION);
    assert_true(act(f, CACREG_ACT_CLEAR));
    assert_true(act(f, CACREG_ACT_YES));
    assert_int_equal(last_request(), CACREG_REQ_CLEAR_REGISTRATION);
    answer(f, NULL);
    assert_int_equal(last_request(), CACREG_REQ_GET_REGISTRATION);
    memset(&none, 0, sizeof none);
    answer(f, &none);
    assert_int_equal(st(f)->step, CACREG_STEP_REGISTRATION);
    assert_non_null(strstr(st(f)->notice.diagnosis.cause, "cleared"));
    assert_true(act(f, CACREG_ACT_BACK)); /* L, log out */
    assert_int_equal(st(f)->step, CACREG_STEP_START);
    assert_int_equal(last_request(), CACREG_REQ_LOGOUT);
    answer(f, NULL);

    assert_true(act(f, CACREG_ACT_NEW_PASSWORD));
    assert_int_equal(st(f)->step, CACREG_STEP_RESET);
    assert_true(submit(f, ""));
    assert_int_equal(st(f)->problem.fail, CACREG_FAIL_INPUT);
    assert_true(submit(f, "jane\x1b[2J"));
    assert_int_equal(st(f)->problem.fail, CACREG_FAIL_INPUT); /* not a username */
    assert_true(submit(f, "jane.doe"));
    assert_int_equal(last_request(), CACREG_REQ_PASSWORD_RESET);
    assert_string_equal(fk.username, "jane.doe");
    answer(f, NULL);
    assert_int_equal(st(f)->done, CACREG_DONE_RESET);
    cacreg_flow_free(f);
}

/* ---- failures ---- */

/* Every failure kind the flow can end in, reached by events. */
static void test_failure_kinds(void **state)
{
    cacreg_flow *f;
    cacreg_portal_result r;

    (void)state;
    /* The module is missing. */
    f = make();
    loaded(f, false);
    readers(f, CACREG_PCSC_UP, true);
    act(f, CACREG_ACT_CAC_LOGIN);
    assert_int_equal(st(f)->step, CACREG_STEP_FAILED);
    assert_int_equal(st(f)->problem.fail, CACREG_FAIL_MIDDLEWARE);
    assert_int_equal(st(f)->problem.stage, CACREG_STAGE_MODULE);
    assert_non_null(strstr(st(f)->problem.diagnosis.cause, "PKCS#11 module"));
    cacreg_flow_free(f);

    /* pcscd is down; pcscd refuses this session. */
    for (int denied = 0; denied < 2; denied++) {
        f = make();
        loaded(f, true);
        readers(f, denied ? CACREG_PCSC_DENIED : CACREG_PCSC_DOWN, false);
        act(f, CACREG_ACT_CAC_LOGIN);
        assert_int_equal(st(f)->problem.fail, CACREG_FAIL_MIDDLEWARE);
        assert_int_equal(st(f)->problem.stage, CACREG_STAGE_PCSC);
        assert_non_null(strstr(st(f)->problem.diagnosis.cause, denied ? "refuses" : "not running"));
        cacreg_flow_free(f);
    }

    /* The card's certificate fails pre-flight: no PIN is asked for. */
    f = make();
    loaded(f, true);
    readers(f, CACREG_PCSC_UP, true);
    card_read(f, CACREG_VERDICT_EXPIRED, CACREG_PIN_OK);
    act(f, CACREG_ACT_CAC_LOGIN);
    assert_int_equal(st(f)->problem.fail, CACREG_FAIL_CARD);
    assert_int_equal(st(f)->problem.stage, CACREG_STAGE_PREFLIGHT);
    assert_non_null(strstr(st(f)->problem.diagnosis.cause, "expired"));
    cacreg_flow_free(f);

    /* A locked PIN: stopped before the PIN. */
    f = make();
    loaded(f, true);
    readers(f, CACREG_PCSC_UP, true);
    card_read(f, CACREG_VERDICT_OK, CACREG_PIN_LOCKED);
    act(f, CACREG_ACT_CAC_LOGIN);
    assert_int_equal(st(f)->problem.err, CACREG_ERR_PIN_LOCKED);
    assert_int_equal(fk.pins_sent, 0);
    cacreg_flow_free(f);

    /* The card cannot be read. */
    f = make();
    loaded(f, true);
    readers(f, CACREG_PCSC_UP, true);
    feed(f, (cacreg_flow_event){.type = CACREG_FLOW_EV_CARD_READ, .job = fk.read_id,
                                .err = CACREG_ERR_CERT, .message = "unreadable"});
    act(f, CACREG_ACT_CAC_LOGIN);
    assert_int_equal(st(f)->problem.stage, CACREG_STAGE_CARD);
    assert_string_equal(st(f)->problem.detail, "unreadable");
    cacreg_flow_free(f);

    /* The identity key is not on the card: the login is dropped. */
    f = make();
    drive_to(f, CACREG_STEP_CHECKING_PIN, false);
    pin_checked(f, CACREG_ERR_NO_KEY, -1);
    assert_int_equal(st(f)->problem.stage, CACREG_STAGE_KEY);
    assert_int_equal(fk.drop_keys, 1);
    assert_int_equal(fk.nrequests, 0);
    cacreg_flow_free(f);

    /* The portal says no; cannot be reached (with a clock hint); cannot be asked. */
    f = make();
    drive_to(f, CACREG_STEP_FAILED, false);
    assert_int_equal(st(f)->problem.fail, CACREG_FAIL_REFUSED);
    assert_non_null(strstr(st(f)->problem.diagnosis.cause, "no account"));
    cacreg_flow_free(f);
    f = make();
    drive_to(f, CACREG_STEP_ASKING, false);
    memset(&r, 0, sizeof r);
    r.err = CACREG_ERR_UNREACHABLE;
    r.server_time = 1;
    r.clock_skew_s = 3600;
    answer(f, &r);
    assert_int_equal(st(f)->problem.fail, CACREG_FAIL_PORTAL);
    assert_non_null(strstr(st(f)->problem.clock, "60 minutes ahead"));
    cacreg_flow_free(f);
    f = make();
    ready(f);
    fk.refuse_requests = true;
    act(f, CACREG_ACT_PASSWORD_LOGIN);
    type(f, "pw");
    submit(f, "jane.doe");
    assert_int_equal(st(f)->step, CACREG_STEP_FAILED);
    assert_int_equal(st(f)->problem.fail, CACREG_FAIL_PORTAL);
    cacreg_flow_free(f);

    /* The key cannot be given to the portal: a card problem, nothing sent. */
    f = make();
    drive_to(f, CACREG_STEP_CHECKING_PIN, false);
    fk.key_fails = true;
    pin_checked(f, CACREG_OK, -1);
    assert_int_equal(st(f)->step, CACREG_STEP_FAILED);
    assert_int_equal(st(f)->problem.stage, CACREG_STAGE_KEY);
    assert_int_equal(fk.nrequests, 0);
    cacreg_flow_free(f);
}

/* A wrong PIN stays at the PIN with the count; nothing is ever sent twice. */
static void test_wrong_pin_to_locked(void **state)
{
    cacreg_flow *f = make();

    (void)state;
    to_pin(f);
    type(f, "123");
    submit(f, NULL);
    assert_int_equal(st(f)->step, CACREG_STEP_PIN);
    assert_int_equal(st(f)->problem.err, CACREG_ERR_PIN_FORMAT);
    assert_int_equal(fk.pins_sent, 0); /* not 6-8 digits: not sent */
    assert_int_equal(cacreg_secret_len(cacreg_flow_secret(f)), 0);
    type(f, "111111");
    submit(f, NULL);
    pin_checked(f, CACREG_ERR_PIN_WRONG, 2);
    assert_int_equal(st(f)->step, CACREG_STEP_PIN);
    assert_int_equal(st(f)->problem.fail, CACREG_FAIL_CARD);
    assert_int_equal(st(f)->tries_left, 2);
    assert_int_equal(st(f)->info.pin, CACREG_PIN_COUNT_LOW);
    assert_int_equal(cacreg_secret_len(cacreg_flow_secret(f)), 0);
    type(f, "222222");
    submit(f, NULL);
    pin_checked(f, CACREG_ERR_PIN_WRONG, 1);
    assert_int_equal(st(f)->info.pin, CACREG_PIN_FINAL_TRY);
    type(f, "333333");
    submit(f, NULL);
    pin_checked(f, CACREG_ERR_PIN_LOCKED, 0);
    assert_int_equal(st(f)->step, CACREG_STEP_FAILED);
    assert_int_equal(st(f)->info.pin, CACREG_PIN_LOCKED);
    assert_int_equal(fk.pins_sent, 3);
    assert_string_equal(fk.pin, "333333");
    assert_int_equal(fk.nrequests, 0); /* the portal never asked */
    cacreg_flow_free(f);
}

/* A wrong password comes back to its step with the attempts; an expired one hands off. */
static void test_wrong_and_expired_password(void **state)
{
    cacreg_flow *f = make();
    cacreg_portal_result r = refused(CACREG_PORTAL_INVALID_CREDENTIALS, 4);

    (void)state;
    drive_to(f, CACREG_STEP_CREDENTIALS, false);
    submit(f, "jane.doe"); /* no password: said, nothing sent */
    assert_int_equal(st(f)->problem.fail, CACREG_FAIL_INPUT);
    assert_int_equal(fk.nrequests, 0);
    type(f, "wrong");
    submit(f, "jane.doe");
    answer(f, &r);
    assert_int_equal(st(f)->step, CACREG_STEP_CREDENTIALS);
    assert_int_equal(st(f)->problem.fail, CACREG_FAIL_REFUSED);
    assert_int_equal(st(f)->last.attempts_left, 4);
    assert_int_equal(fk.nrequests, 1); /* not sent again */
    assert_false(st(f)->session);
    r = refused(CACREG_PORTAL_PASSWORD_EXPIRED, -1);
    type(f, "Stale-Pass-5");
    submit(f, "old.timer");
    answer(f, &r);
    assert_int_equal(st(f)->step, CACREG_STEP_FAILED);
    assert_true(cacreg_flow_can(f, CACREG_ACT_NEW_PASSWORD));
    assert_true(act(f, CACREG_ACT_NEW_PASSWORD));
    assert_int_equal(st(f)->step, CACREG_STEP_RESET);
    assert_string_equal(st(f)->username, "old.timer"); /* the name follows */
    cacreg_flow_free(f);

    /* Another failure does not offer the hand-off. */
    f = make();
    drive_to(f, CACREG_STEP_FAILED, false);
    assert_false(cacreg_flow_can(f, CACREG_ACT_NEW_PASSWORD));
    cacreg_flow_free(f);
}

/* ---- every step: the card pulled, left alone, Esc ---- */

/* Where each step goes when the card is pulled (START: started over, and said why). */
static void test_card_pulled_at_each_step(void **state)
{
    static const struct {
        cacreg_step step;
        bool account;
        bool over; /* back to START with "the card was removed" */
    } cases[] = {
        {CACREG_STEP_START, false, false},        {CACREG_STEP_INSERT_CARD, false, false},
        {CACREG_STEP_READING, false, true},       {CACREG_STEP_LOADING, false, true},
        {CACREG_STEP_PIN, false, true},           {CACREG_STEP_CHECKING_PIN, false, true},
        {CACREG_STEP_ASKING, false, true},        {CACREG_STEP_DONE, false, false},
        {CACREG_STEP_FAILED, false, false},       {CACREG_STEP_CREDENTIALS, false, false},
        {CACREG_STEP_REGISTRATION, true, false},  {CACREG_STEP_CONFIRM_CLEAR, true, false},
        {CACREG_STEP_CHOOSE_CERT, true, true},    {CACREG_STEP_PIN, true, true},
        {CACREG_STEP_CONFIRM_PASSWORD, true, true}, {CACREG_STEP_ASKING, true, true},
        {CACREG_STEP_RESET, false, false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cacreg_flow *f = make();
        cacreg_step was = cases[i].step;
        bool in_flight;
        int drops;

        drive_to(f, was, cases[i].account);
        in_flight = fk.request_in_flight;
        drops = fk.drop_keys;
        readers(f, CACREG_PCSC_UP, false);
        if (cases[i].over) {
            if (st(f)->step != CACREG_STEP_START || st(f)->notice.fail != CACREG_FAIL_NO_CARD)
                fail_msg("%s: card pulled, now %s", cacreg_step_name(was),
                         cacreg_step_name(st(f)->step));
            assert_non_null(strstr(st(f)->notice.diagnosis.cause, "removed"));
        } else if (st(f)->step != was) {
            fail_msg("%s: card pulled, now %s", cacreg_step_name(was),
                     cacreg_step_name(st(f)->step));
        }
        assert_int_equal(st(f)->card, CACREG_CARD_NONE);
        if (was == CACREG_STEP_ASKING) {
            /* The request is cancelled; the key is dropped only once the connection is free. */
            assert_true(fk.cancels >= 1);
            assert_int_equal(fk.drop_keys, drops);
            assert_true(in_flight);
            fk.request_in_flight = false;
            feed(f, (cacreg_flow_event){.type = CACREG_FLOW_EV_ANSWER, .job = fk.request_id,
                                        .answer = &(cacreg_portal_result){
                                            .err = CACREG_ERR_CANCELLED}});
        }
        if (was == CACREG_STEP_CHECKING_PIN) /* the PIN was right: that login goes too */
            pin_checked(f, CACREG_OK, -1);
        while (fk.request_in_flight) /* a logout */
            answer(f, NULL);
        if (was == CACREG_STEP_ASKING || was == CACREG_STEP_CHECKING_PIN ||
            was == CACREG_STEP_CONFIRM_PASSWORD)
            assert_true(fk.drop_keys > drops);
        if (was == CACREG_STEP_DONE) /* dropped when it was done */
            assert_int_equal(fk.drop_keys, 1);
        assert_int_equal(st(f)->step, cases[i].over ? CACREG_STEP_START : was);
        if (fk.forgets < 1 && was != CACREG_STEP_INSERT_CARD && was != CACREG_STEP_LOADING)
            fail_msg("%s: libp11 not told to forget the card", cacreg_step_name(was));
        if (cacreg_flow_secret(f))
            assert_int_equal(cacreg_secret_len(cacreg_flow_secret(f)), 0);
        cacreg_flow_free(f);
    }
}

/* Left alone: back to START, everything wiped, at every step a person is asked something. */
static void test_idle_at_each_step(void **state)
{
    static const struct {
        cacreg_step step;
        bool account;
        bool timer; /* the idle timer runs here */
    } cases[] = {
        {CACREG_STEP_START, false, false},        {CACREG_STEP_INSERT_CARD, false, true},
        {CACREG_STEP_PIN, false, true},           {CACREG_STEP_ASKING, false, false},
        {CACREG_STEP_DONE, false, true},          {CACREG_STEP_FAILED, false, true},
        {CACREG_STEP_CREDENTIALS, false, true},   {CACREG_STEP_REGISTRATION, true, true},
        {CACREG_STEP_CONFIRM_CLEAR, true, true},  {CACREG_STEP_CHOOSE_CERT, true, true},
        {CACREG_STEP_PIN, true, true},            {CACREG_STEP_CONFIRM_PASSWORD, true, true},
        {CACREG_STEP_RESET, false, true},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cacreg_flow *f = make();
        cacreg_step was = cases[i].step;
        cacreg_secret *typed;
        bool session;

        drive_to(f, was, cases[i].account);
        session = st(f)->session;
        typed = cacreg_flow_secret(f);
        if (typed)
            type(f, "12345");
        if (!cases[i].timer) {
            assert_int_equal(cacreg_flow_timeout_ms(f), -1);
            tick(f, cfg.idle_timeout_s * 1000LL * 2);
            assert_int_equal(st(f)->step, was);
            cacreg_flow_free(f);
            continue;
        }
        assert_int_equal(cacreg_flow_timeout_ms(f), cfg.idle_timeout_s * 1000);
        tick(f, cfg.idle_timeout_s * 1000LL - 1000);
        cacreg_flow_touch(f); /* a key: the timer starts again */
        tick(f, cfg.idle_timeout_s * 1000LL - 1000);
        if (st(f)->step != was)
            fail_msg("%s: gone before its time", cacreg_step_name(was));
        tick(f, 1000);
        if (st(f)->step != CACREG_STEP_START || st(f)->notice.fail != CACREG_FAIL_IDLE)
            fail_msg("%s: left alone, now %s", cacreg_step_name(was),
                     cacreg_step_name(st(f)->step));
        if (typed)
            assert_int_equal(cacreg_secret_len(typed), 0);
        if (session)
            assert_int_equal(last_request(), CACREG_REQ_LOGOUT);
        assert_string_equal(st(f)->username, "");
        cacreg_flow_free(f);
    }
}

/* A card job that never ends: the person is told the card stopped answering. */
static void test_card_job_deadline(void **state)
{
    cacreg_flow *f = make();

    (void)state;
    drive_to(f, CACREG_STEP_CHECKING_PIN, false);
    assert_int_equal(cacreg_flow_timeout_ms(f), cfg.card_timeout_s * 1000);
    tick(f, cfg.card_timeout_s * 1000LL);
    assert_int_equal(st(f)->step, CACREG_STEP_FAILED);
    assert_int_equal(st(f)->problem.err, CACREG_ERR_TIMEOUT);
    assert_true(st(f)->card_stuck);
    pin_checked(f, CACREG_OK, -1); /* it ends after all: the login is dropped */
    assert_false(st(f)->card_stuck);
    assert_int_equal(fk.drop_keys, 1);
    assert_int_equal(fk.nrequests, 0);
    cacreg_flow_free(f);
}

/* Every way a session that verified a PIN can end resets the card: no one signs with it next. */
static void test_card_reset_at_each_end(void **state)
{
    static const struct {
        const char *how;
        cacreg_step step;
        bool account;
        cacreg_action_kind act; /* ACT_COUNT: left alone for idle_timeout */
    } cases[] = {
        {"done, next person", CACREG_STEP_DONE, false, CACREG_ACT_RESTART},
        {"done, Esc", CACREG_STEP_DONE, false, CACREG_ACT_BACK},
        {"done, left alone", CACREG_STEP_DONE, false, CACREG_ACT_COUNT},
        {"refused: at once", CACREG_STEP_FAILED, false, CACREG_ACT_COUNT},
        {"registered, next person", CACREG_STEP_DONE, true, CACREG_ACT_RESTART},
        {"confirm password, Esc", CACREG_STEP_CONFIRM_PASSWORD, true, CACREG_ACT_BACK},
        {"confirm password, left alone", CACREG_STEP_CONFIRM_PASSWORD, true, CACREG_ACT_COUNT},
        {"refused registration: at once", CACREG_STEP_FAILED, true, CACREG_ACT_COUNT},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cacreg_flow *f = make();
        bool at_once = cases[i].step == CACREG_STEP_FAILED || cases[i].step == CACREG_STEP_DONE;

        drive_to(f, cases[i].step, cases[i].account);
        assert_int_equal(fk.resets, at_once ? 1 : 0);
        if (!at_once && cases[i].act == CACREG_ACT_COUNT) /* at once: the failure did it */
            tick(f, cfg.idle_timeout_s * 1000LL);
        else if (!at_once)
            assert_true(act(f, cases[i].act));
        if (fk.resets != 1)
            fail_msg("%s: %d resets", cases[i].how, fk.resets);
        assert_int_equal(st(f)->card_reset, CACREG_RESET_RUNNING);
        feed(f, (cacreg_flow_event){.type = CACREG_FLOW_EV_FORGOTTEN, .job = fk.forget_id,
                                    .err = CACREG_OK});
        assert_int_equal(st(f)->card_reset, CACREG_RESET_DONE);
        cacreg_flow_free(f);
    }

    /* A reset that fails is tried again, twice, and then said. */
    {
        cacreg_flow *f = make();
        drive_to(f, CACREG_STEP_DONE, false);
        act(f, CACREG_ACT_RESTART);
        for (int i = 0; i < 3; i++)
            feed(f, (cacreg_flow_event){.type = CACREG_FLOW_EV_FORGOTTEN, .job = fk.forget_id,
                                        .err = CACREG_ERR_CARD});
        assert_int_equal(fk.resets, 3);
        assert_int_equal(st(f)->card_reset, CACREG_RESET_FAILED);
        cacreg_flow_free(f);
    }
}

/* Esc from each step: one step back, never out; an account's views need the account. */
static void test_back_from_each_step(void **state)
{
    static const struct {
        cacreg_step step;
        bool account;
        cacreg_step to; /* STEP_COUNT: Esc is not taken there */
    } cases[] = {
        {CACREG_STEP_START, false, CACREG_STEP_COUNT},
        {CACREG_STEP_INSERT_CARD, false, CACREG_STEP_START},
        {CACREG_STEP_INSERT_CARD, true, CACREG_STEP_REGISTRATION},
        {CACREG_STEP_READING, false, CACREG_STEP_START},
        {CACREG_STEP_PIN, false, CACREG_STEP_START},
        {CACREG_STEP_PIN, true, CACREG_STEP_CHOOSE_CERT},
        {CACREG_STEP_CHECKING_PIN, false, CACREG_STEP_COUNT},
        {CACREG_STEP_ASKING, false, CACREG_STEP_START},
        {CACREG_STEP_ASKING, true, CACREG_STEP_REGISTRATION},
        {CACREG_STEP_CREDENTIALS, false, CACREG_STEP_START},
        {CACREG_STEP_REGISTRATION, true, CACREG_STEP_START},
        {CACREG_STEP_CONFIRM_CLEAR, true, CACREG_STEP_REGISTRATION},
        {CACREG_STEP_CHOOSE_CERT, true, CACREG_STEP_REGISTRATION},
        {CACREG_STEP_CONFIRM_PASSWORD, true, CACREG_STEP_REGISTRATION},
        {CACREG_STEP_RESET, false, CACREG_STEP_START},
        {CACREG_STEP_DONE, false, CACREG_STEP_START},
        {CACREG_STEP_FAILED, false, CACREG_STEP_START},
        {CACREG_STEP_FAILED, true, CACREG_STEP_REGISTRATION},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cacreg_flow *f = make();
        cacreg_step was = cases[i].step;
        bool taken;

        drive_to(f, was, cases[i].account);
        if (cacreg_flow_secret(f))
            type(f, "123456");
        taken = act(f, CACREG_ACT_BACK);
        if (cases[i].to == CACREG_STEP_COUNT) {
            assert_false(taken);
            assert_int_equal(st(f)->step, was);
        } else if (st(f)->step != cases[i].to) {
            fail_msg("Esc at %s%s: %s", cacreg_step_name(was), cases[i].account ? " (account)" : "",
                     cacreg_step_name(st(f)->step));
        }
        if (was == CACREG_STEP_ASKING)
            assert_int_equal(fk.cancels, 1);
        if (st(f)->step == CACREG_STEP_REGISTRATION && was == CACREG_STEP_CONFIRM_PASSWORD)
            assert_true(fk.drop_keys >= 1); /* the account's view is without the card's login */
        cacreg_flow_free(f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start),
        cmocka_unit_test(test_cac_login_to_done),
        cmocka_unit_test(test_password_path_to_done),
        cmocka_unit_test(test_clear_and_reset),
        cmocka_unit_test(test_failure_kinds),
        cmocka_unit_test(test_wrong_pin_to_locked),
        cmocka_unit_test(test_wrong_and_expired_password),
        cmocka_unit_test(test_card_pulled_at_each_step),
        cmocka_unit_test(test_idle_at_each_step),
        cmocka_unit_test(test_card_job_deadline),
        cmocka_unit_test(test_back_from_each_step),
        cmocka_unit_test(test_card_reset_at_each_end),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
