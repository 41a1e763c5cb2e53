/* Unit tests for core/diagnose.c: every documented failure has its own words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cacreg.h"

/* Every error code docs/portal-api.md lists gets a cause of its own. */
static void test_every_portal_reason_is_named(void **state)
{
    cacreg_portal_result r;
    cacreg_diagnosis unknown, d;

    (void)state;
    memset(&r, 0, sizeof r);
    r.err = CACREG_ERR_REFUSED;
    r.reason = CACREG_PORTAL_OTHER_REASON;
    unknown = cacreg_diagnose_portal(&r);
    for (int i = CACREG_PORTAL_NO_CLIENT_CERTIFICATE; i < CACREG_PORTAL_OTHER_REASON; i++) {
        r.reason = (cacreg_portal_reason)i;
        d = cacreg_diagnose_portal(&r);
        if (d.cause == unknown.cause)
            fail_msg("reason %d has no words of its own", i);
        assert_true(strlen(d.steps) > 0);
    }
}

static void test_outcomes_and_verdicts(void **state)
{
    cacreg_portal_result r;

    (void)state;
    memset(&r, 0, sizeof r);
    for (int o = CACREG_ERR_REFUSED; o <= CACREG_ERR_CANCELLED; o++) {
        r.err = (cacreg_err)o;
        assert_non_null(cacreg_diagnose_portal(&r).cause);
    }
    r.err = CACREG_ERR_TLS;
    assert_non_null(strstr(cacreg_diagnose_portal(&r).steps, "Do not go on"));
    for (int v = CACREG_VERDICT_OK; v <= CACREG_VERDICT_NO_TRUST_STORE; v++)
        assert_true(strlen(cacreg_diagnose_verdict((cacreg_verdict)v).cause) > 0);
    assert_non_null(strstr(cacreg_diagnose_verdict(CACREG_VERDICT_EXPIRED).steps, "CAC office"));
    for (int l = CACREG_ERR_NO_CARD; l <= CACREG_ERR_TIMEOUT; l++)
        assert_true(strlen(cacreg_diagnose_card((cacreg_err)l).cause) > 0);
    assert_non_null(strstr(cacreg_diagnose_card(CACREG_ERR_PIN_LOCKED).steps, "reset"));
    for (int w = CACREG_SAY_CARD_REMOVED; w <= CACREG_SAY_CARD_STUCK; w++)
        assert_true(strlen(cacreg_diagnose_say((cacreg_say)w).cause) > 0);
}

static void test_clock_skew(void **state)
{
    cacreg_portal_result r;
    char buf[256];

    (void)state;
    memset(&r, 0, sizeof r);
    assert_false(cacreg_diagnose_clock(&r, buf, sizeof buf)); /* no Date header */
    r.server_time = (long long)time(NULL);
    r.clock_skew_s = 120;
    assert_false(cacreg_diagnose_clock(&r, buf, sizeof buf)); /* within five minutes */
    r.clock_skew_s = 3600;
    assert_true(cacreg_diagnose_clock(&r, buf, sizeof buf));
    assert_non_null(strstr(buf, "60 minutes ahead of"));
    r.clock_skew_s = -7200;
    assert_true(cacreg_diagnose_clock(&r, buf, sizeof buf));
    assert_non_null(strstr(buf, "120 minutes behind"));
}

/* The polkit rule quotes the user's name for JavaScript: nothing gets out of its string. */
static void test_polkit_rule_quotes_the_user(void **state)
{
    char path[128], rule[1024];

    (void)state;
    cacreg_pcsc_polkit_rule("jane.doe", path, sizeof path, rule, sizeof rule);
    assert_non_null(strstr(rule, "subject.user == \"jane.doe\")"));
    cacreg_pcsc_polkit_rule("x\") || true; evil(\"\x1b[2J\\", path, sizeof path, rule, sizeof rule);
    assert_non_null(strstr(rule, "subject.user == \"x\\u0022\\u0029\\u0020"));
    assert_null(strstr(rule, "evil(\""));
    assert_null(strchr(rule, 0x1b));
    assert_non_null(strstr(rule, "\\u005c\")")); /* the backslash too, then the string ends */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_portal_reason_is_named),
        cmocka_unit_test(test_outcomes_and_verdicts),
        cmocka_unit_test(test_clock_skew),
        cmocka_unit_test(test_polkit_rule_quotes_the_user),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
