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
    static const char *const codes[] = {
        "no_client_certificate", "untrusted_issuer", "certificate_not_yet_valid",
        "certificate_expired", "certificate_revoked", "not_identity_certificate", "no_account",
        "account_not_permitted", "registered_to_other_account", "edipi_mismatch",
        "invalid_credentials", "password_expired", "account_locked", "session_expired",
        "no_session", "revocation_unavailable",
    };
    cacreg_portal_result r;
    cacreg_diagnosis unknown, d;

    (void)state;
    memset(&r, 0, sizeof r);
    r.outcome = CACREG_PORTAL_REFUSED;
    snprintf(r.error, sizeof r.error, "something_new");
    unknown = cacreg_diagnose_portal(&r);
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        snprintf(r.error, sizeof r.error, "%s", codes[i]);
        d = cacreg_diagnose_portal(&r);
        if (d.cause == unknown.cause)
            fail_msg("%s has no words of its own", codes[i]);
        assert_true(strlen(d.steps) > 0);
    }
}

static void test_outcomes_and_verdicts(void **state)
{
    cacreg_portal_result r;

    (void)state;
    memset(&r, 0, sizeof r);
    for (int o = CACREG_PORTAL_OK; o <= CACREG_PORTAL_CANCELLED; o++) {
        r.outcome = (cacreg_portal_outcome)o;
        assert_non_null(cacreg_diagnose_portal(&r).cause);
    }
    r.outcome = CACREG_PORTAL_TLS;
    assert_non_null(strstr(cacreg_diagnose_portal(&r).steps, "Do not go on"));
    for (int v = CACREG_VERDICT_OK; v <= CACREG_VERDICT_NO_TRUST_STORE; v++)
        assert_true(strlen(cacreg_diagnose_verdict((cacreg_verdict)v).cause) > 0);
    assert_non_null(strstr(cacreg_diagnose_verdict(CACREG_VERDICT_EXPIRED).steps, "CAC office"));
    for (int l = CACREG_LOGIN_OK; l <= CACREG_LOGIN_ERROR; l++)
        assert_true(strlen(cacreg_diagnose_login((cacreg_login_result)l).cause) > 0);
    assert_non_null(strstr(cacreg_diagnose_login(CACREG_LOGIN_LOCKED).steps, "reset"));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_portal_reason_is_named),
        cmocka_unit_test(test_outcomes_and_verdicts),
        cmocka_unit_test(test_clock_skew),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
