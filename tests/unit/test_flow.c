/*
 * Unit tests for core/flow.c without a card: pcscd pointed at a socket that
 * does not exist, a PKCS#11 module that is not there, a portal port that
 * refuses. The steps, the failures they end in, what Esc does, and that the
 * secrets typed are wiped whichever way a step is left. The card and portal
 * paths run for real in tests/bench (test_login.sh, test_register.sh,
 * test_tui.sh).
 */
#define _GNU_SOURCE
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cacreg.h"

static long long now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/* Runs the flow until pred holds, for at most ms; true if it did. */
static bool run_until(cacreg_flow *f, bool (*pred)(const cacreg_flow_state *), int ms)
{
    long long end = now_ms() + ms;

    for (;;) {
        struct pollfd pfd = {.fd = cacreg_flow_fd(f), .events = POLLIN};
        cacreg_flow_handle(f);
        if (pred(cacreg_flow_state_get(f)))
            return true;
        if (now_ms() >= end)
            return false;
        poll(&pfd, 1, 20);
    }
}

static bool settled(const cacreg_flow_state *s)
{
    return !s->module_loading && s->readers.status != CACREG_PCSC_STARTING;
}

static bool not_busy(const cacreg_flow_state *s)
{
    return s->step != CACREG_STEP_BUSY;
}

static cacreg_flow *make(void)
{
    cacreg_config cfg;
    cacreg_flow *f = NULL;
    char err[512] = "";

    cacreg_config_defaults(&cfg);
    assert_int_equal(cacreg_config_set(&cfg, "pkcs11_module", "/nonexistent/opensc-pkcs11.so",
                                       err, sizeof err),
                     CACREG_OK);
    assert_int_equal(cacreg_config_set(&cfg, "portal_url", "https://127.0.0.1:1/api/v1/", err,
                                       sizeof err),
                     CACREG_OK);
    cfg.connect_timeout_s = 2;
    assert_int_equal(cacreg_flow_new(&f, &cfg, err, sizeof err), CACREG_OK);
    assert_true(run_until(f, settled, 5000));
    return f;
}

static void type(cacreg_flow *f, const char *text)
{
    cacreg_secret *s = cacreg_flow_secret(f);

    assert_non_null(s);
    assert_int_equal(cacreg_secret_append(s, text, strlen(text)), CACREG_OK);
}

static int setup(void **state)
{
    (void)state;
    /* No pcscd here: a socket path that does not exist. */
    setenv("PCSCLITE_CSOCK_NAME", "/nonexistent/pcscd.comm", 1);
    return 0;
}

static void test_starts_at_start_with_the_middleware_known(void **state)
{
    cacreg_flow *f = make();
    const cacreg_flow_state *s = cacreg_flow_state_get(f);

    (void)state;
    assert_int_equal(s->step, CACREG_STEP_START);
    assert_false(s->module_loaded);
    assert_true(s->module_error[0] != '\0');
    assert_int_equal(s->readers.status, CACREG_PCSC_DOWN);
    assert_int_equal(cacreg_flow_timeout_ms(f), -1); /* no timer at the start: nothing to wake for */
    assert_null(cacreg_flow_secret(f));
    cacreg_flow_free(f);
}

static void test_cac_login_without_module_says_so(void **state)
{
    cacreg_flow *f = make();
    const cacreg_flow_state *s = cacreg_flow_state_get(f);

    (void)state;
    assert_true(cacreg_flow_cac_login(f));
    assert_int_equal(s->step, CACREG_STEP_FAILED);
    assert_int_equal(s->fail, CACREG_FAIL_MIDDLEWARE);
    assert_string_equal(s->stage, "module");
    assert_non_null(strstr(s->diagnosis.cause, "PKCS#11 module"));
    /* Actions of other steps are refused and change nothing. */
    assert_false(cacreg_flow_cac_login(f));
    assert_false(cacreg_flow_register(f));
    assert_false(cacreg_flow_submit(f, "x"));
    cacreg_flow_back(f);
    assert_int_equal(s->step, CACREG_STEP_START);
    assert_int_equal(s->fail, CACREG_FAIL_NONE);
    cacreg_flow_free(f);
}

static void test_credentials_checked_before_anything_is_sent(void **state)
{
    cacreg_flow *f = make();
    const cacreg_flow_state *s = cacreg_flow_state_get(f);
    char long_name[200];

    (void)state;
    assert_true(cacreg_flow_password_login(f));
    assert_int_equal(s->step, CACREG_STEP_CREDENTIALS);
    assert_true(cacreg_flow_timeout_ms(f) > 0); /* the idle clock runs at input steps */
    type(f, "Correct-Horse-1");
    assert_true(cacreg_flow_submit(f, ""));
    assert_int_equal(s->step, CACREG_STEP_CREDENTIALS);
    assert_int_equal(s->fail, CACREG_FAIL_INPUT);
    assert_int_equal(cacreg_secret_len(cacreg_flow_secret(f)), 0); /* wiped, not kept */
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    type(f, "Correct-Horse-1");
    assert_true(cacreg_flow_submit(f, long_name));
    assert_int_equal(s->fail, CACREG_FAIL_INPUT);
    assert_true(cacreg_flow_submit(f, "jane\x1b[2J"));
    assert_int_equal(s->fail, CACREG_FAIL_INPUT);
    assert_true(cacreg_flow_submit(f, "jane.doe")); /* no password typed */
    assert_int_equal(s->fail, CACREG_FAIL_INPUT);
    assert_int_equal(s->step, CACREG_STEP_CREDENTIALS);
    cacreg_flow_free(f);
}

static void test_unreachable_portal_fails_and_wipes(void **state)
{
    cacreg_flow *f = make();
    const cacreg_flow_state *s = cacreg_flow_state_get(f);
    cacreg_secret *password;

    (void)state;
    cacreg_flow_password_login(f);
    password = cacreg_flow_secret(f);
    type(f, "Correct-Horse-1");
    assert_true(cacreg_flow_submit(f, "jane.doe"));
    assert_int_equal(s->step, CACREG_STEP_BUSY);
    assert_int_equal(cacreg_secret_len(password), 0); /* handed to the request, wiped here */
    assert_null(cacreg_flow_secret(f));
    assert_true(run_until(f, not_busy, 10000));
    assert_int_equal(s->step, CACREG_STEP_FAILED);
    assert_int_equal(s->fail, CACREG_FAIL_PORTAL);
    assert_int_equal(s->last.outcome, CACREG_PORTAL_UNREACHABLE);
    assert_false(s->session);
    cacreg_flow_back(f);
    assert_int_equal(s->step, CACREG_STEP_START);
    cacreg_flow_free(f);
}

static void test_back_wipes_what_was_typed(void **state)
{
    cacreg_flow *f = make();
    const cacreg_flow_state *s = cacreg_flow_state_get(f);
    cacreg_secret *password;

    (void)state;
    cacreg_flow_password_login(f);
    password = cacreg_flow_secret(f);
    type(f, "half a passw");
    cacreg_flow_back(f);
    assert_int_equal(s->step, CACREG_STEP_START);
    assert_int_equal(cacreg_secret_len(password), 0);
    /* Restart does the same from anywhere. */
    cacreg_flow_password_login(f);
    type(f, "another");
    cacreg_flow_restart(f);
    assert_int_equal(s->step, CACREG_STEP_START);
    assert_int_equal(cacreg_secret_len(password), 0);
    assert_string_equal(s->username, "");
    cacreg_flow_free(f);
}

static void test_reset_request(void **state)
{
    cacreg_flow *f = make();
    const cacreg_flow_state *s = cacreg_flow_state_get(f);

    (void)state;
    assert_true(cacreg_flow_reset(f));
    assert_int_equal(s->step, CACREG_STEP_RESET);
    assert_null(cacreg_flow_secret(f)); /* nothing secret is asked for */
    assert_true(cacreg_flow_submit(f, ""));
    assert_int_equal(s->fail, CACREG_FAIL_INPUT);
    assert_true(cacreg_flow_submit(f, "jane.doe"));
    assert_string_equal(s->username, "jane.doe");
    assert_true(run_until(f, not_busy, 10000));
    assert_int_equal(s->step, CACREG_STEP_FAILED); /* the port refuses */
    assert_int_equal(s->fail, CACREG_FAIL_PORTAL);
    cacreg_flow_free(f);
}

static void test_busy_back_cancels(void **state)
{
    cacreg_config cfg;
    cacreg_flow *f = NULL;
    char err[512] = "";
    const cacreg_flow_state *s;

    (void)state;
    cacreg_config_defaults(&cfg);
    cacreg_config_set(&cfg, "pkcs11_module", "/nonexistent/p11.so", err, sizeof err);
    /* A blackhole address: the connect waits, so the request is in flight. */
    cacreg_config_set(&cfg, "portal_url", "https://192.0.2.1/api/v1/", err, sizeof err);
    cfg.connect_timeout_s = 30;
    assert_int_equal(cacreg_flow_new(&f, &cfg, err, sizeof err), CACREG_OK);
    s = cacreg_flow_state_get(f);
    cacreg_flow_password_login(f);
    type(f, "pw");
    cacreg_flow_submit(f, "jane.doe");
    assert_int_equal(s->step, CACREG_STEP_BUSY);
    cacreg_flow_back(f); /* Esc while the portal is asked */
    assert_int_equal(s->step, CACREG_STEP_START);
    /* The cancelled request ends quickly and changes nothing. */
    {
        long long t0 = now_ms();
        while (!cacreg_flow_settled(f) && now_ms() - t0 < 3000) {
            struct pollfd pfd = {.fd = cacreg_flow_fd(f), .events = POLLIN};
            poll(&pfd, 1, 20);
            cacreg_flow_handle(f);
        }
        assert_true(cacreg_flow_settled(f));
    }
    assert_int_equal(s->step, CACREG_STEP_START);
    assert_int_equal(s->fail, CACREG_FAIL_NONE);
    cacreg_flow_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_starts_at_start_with_the_middleware_known),
        cmocka_unit_test(test_cac_login_without_module_says_so),
        cmocka_unit_test(test_credentials_checked_before_anything_is_sent),
        cmocka_unit_test(test_unreachable_portal_fails_and_wipes),
        cmocka_unit_test(test_back_wipes_what_was_typed),
        cmocka_unit_test(test_reset_request),
        cmocka_unit_test(test_busy_back_cancels),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
