/*
 * Unit tests for the portal client's judgement of answers (core/portal.c's
 * cacreg_portal_parse), table-driven over HTTP-reply fixtures in
 * tests/fixtures/portal/: what the contract promises is taken, anything else
 * is a clear "bad answer" that changes nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"

static const char *dir = "tests/fixtures/portal";

static size_t load(const char *name, char *buf, size_t size)
{
    char path[512];
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (!f)
        fail_msg("no fixture %s (run from the top of the tree)", path);
    n = fread(buf, 1, size, f);
    fclose(f);
    return n;
}

static void test_fixtures(void **state)
{
    static const struct {
        const char *file;
        cacreg_request kind;
        long status;
        const char *ctype;
        cacreg_err outcome;
        const char *check; /* a field=value to check, or NULL */
    } cases[] = {
        {"cac_login_registered.json", CACREG_REQ_CAC_LOGIN, 200, "application/json", CACREG_OK,
         "registration=registered"},
        {"cac_login_replaced.json", CACREG_REQ_CAC_LOGIN, 200, "application/json; charset=utf-8",
         CACREG_OK, "replaced_serial=0FF1"},
        {"cac_login_no_session.json", CACREG_REQ_CAC_LOGIN, 200, "application/json",
         CACREG_ERR_BAD_ANSWER, NULL},
        {"cac_login_bad_result.json", CACREG_REQ_CAC_LOGIN, 200, "application/json",
         CACREG_ERR_BAD_ANSWER, NULL},
        {"registration_none.json", CACREG_REQ_GET_REGISTRATION, 200, "application/json", CACREG_OK,
         "account_type=full"},
        /* A directory that keeps its own password expiry: the portal does not know it. */
        {"registration_no_expiry.json", CACREG_REQ_GET_REGISTRATION, 200, "application/json",
         CACREG_OK, "account_type=full"},
        {"registration_registered.json", CACREG_REQ_GET_REGISTRATION, 200, "application/json", CACREG_OK,
         "cert_serial=1002"},
        {"registration_registered_no_cert.json", CACREG_REQ_GET_REGISTRATION, 200, "application/json",
         CACREG_ERR_BAD_ANSWER, NULL},
        {"registration_wrong_types.json", CACREG_REQ_GET_REGISTRATION, 200, "application/json",
         CACREG_ERR_BAD_ANSWER, NULL},
        {"error_403_expired.json", CACREG_REQ_CAC_LOGIN, 403, "application/json", CACREG_ERR_REFUSED,
         "error=certificate_expired"},
        {"error_401_attempts.json", CACREG_REQ_PASSWORD_LOGIN, 401, "application/json",
         CACREG_ERR_REFUSED, "attempts_left=3"},
        {"error_503_directory.json", CACREG_REQ_CAC_LOGIN, 503, "application/json",
         CACREG_ERR_REFUSED, "error=directory_unavailable"},
        {"registration_registered.json", CACREG_REQ_GET_REGISTRATION, 200, "application/json",
         CACREG_OK, "cert_issuer=CN=Test DOD ID CA-59 AB"},
        {"error_no_code.json", CACREG_REQ_GET_REGISTRATION, 400, "application/json", CACREG_ERR_BAD_ANSWER,
         NULL},
        {"proxy_502.html", CACREG_REQ_CAC_LOGIN, 502, "text/html", CACREG_ERR_BAD_ANSWER,
         "message~having trouble (HTTP 502)"},
        {"cac_login_registered.json", CACREG_REQ_CAC_LOGIN, 200, "text/html", CACREG_ERR_BAD_ANSWER,
         "message~not its API"},
        {"truncated.json", CACREG_REQ_CAC_LOGIN, 200, "application/json", CACREG_ERR_BAD_ANSWER,
         "message~could not be read"},
        {"array.json", CACREG_REQ_GET_REGISTRATION, 200, "application/json", CACREG_ERR_BAD_ANSWER, NULL},
        {"duplicate_keys.json", CACREG_REQ_PASSWORD_LOGIN, 200, "application/json",
         CACREG_ERR_BAD_ANSWER, NULL},
    };
    static char body[70000];
    cacreg_secret *session = cacreg_secret_new();

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cacreg_portal_result r;
        size_t len = load(cases[i].file, body, sizeof body);
        char got[600] = "";

        memset(&r, 0, sizeof r);
        r.attempts_left = -1;
        cacreg_secret_clear(session);
        cacreg_portal_parse(cases[i].kind, cases[i].status, cases[i].ctype, body, len, session,
                            &r);
        if (r.err != cases[i].outcome)
            fail_msg("%s: outcome %d, want %d (%s)", cases[i].file, r.err, cases[i].outcome,
                     r.message);
        if (r.err == CACREG_ERR_BAD_ANSWER && !r.message[0])
            fail_msg("%s: a bad answer without a message", cases[i].file);
        if (!cases[i].check)
            continue;
        if (strncmp(cases[i].check, "registration=", 13) == 0)
            snprintf(got, sizeof got, "registration=%s", cacreg_registration_name(r.registration));
        else if (strncmp(cases[i].check, "replaced_serial=", 16) == 0)
            snprintf(got, sizeof got, "replaced_serial=%s", r.replaced_serial);
        else if (strncmp(cases[i].check, "account_type=", 13) == 0)
            snprintf(got, sizeof got, "account_type=%s", r.account_type);
        else if (strncmp(cases[i].check, "cert_serial=", 12) == 0)
            snprintf(got, sizeof got, "cert_serial=%s", r.cert_serial);
        else if (strncmp(cases[i].check, "cert_issuer=", 12) == 0)
            snprintf(got, sizeof got, "cert_issuer=%s %s", r.cert_issuer, r.cert_sha256);
        else if (strncmp(cases[i].check, "error=", 6) == 0)
            snprintf(got, sizeof got, "error=%s", r.error);
        if ((strcmp(cases[i].check, "error=certificate_expired") == 0 &&
             r.reason != CACREG_PORTAL_CERTIFICATE_EXPIRED) ||
            (strcmp(cases[i].check, "error=directory_unavailable") == 0 &&
             r.reason != CACREG_PORTAL_DIRECTORY_UNAVAILABLE))
            fail_msg("%s: the code was not known as its reason", cases[i].file);
        else if (strncmp(cases[i].check, "attempts_left=", 14) == 0)
            snprintf(got, sizeof got, "attempts_left=%d", r.attempts_left);
        if (cases[i].check[7] == '~' && strncmp(cases[i].check, "message~", 8) == 0) {
            if (!strstr(r.message, cases[i].check + 8))
                fail_msg("%s: message '%s' lacks '%s'", cases[i].file, r.message,
                         cases[i].check + 8);
        } else if (strcmp(got, cases[i].check) != 0) {
            fail_msg("%s: got %s, want %s", cases[i].file, got, cases[i].check);
        }
    }
    cacreg_secret_free(session);
}

/* A login answer's token goes to the locked session; an expired session forgets it. */
static void test_session_token(void **state)
{
    static char body[70000];
    cacreg_secret *session = cacreg_secret_new();
    cacreg_portal_result r;
    size_t len;

    (void)state;
    memset(&r, 0, sizeof r);
    len = load("cac_login_registered.json", body, sizeof body);
    cacreg_portal_parse(CACREG_REQ_CAC_LOGIN, 200, "application/json", body, len, session, &r);
    assert_int_equal(r.err, CACREG_OK);
    assert_string_equal(cacreg_secret_data(session), "tok-123");
    assert_string_equal(r.username, "jane.doe");
    assert_string_equal(r.password_expires, "2027-04-24T19:38:03Z");
    len = load("error_401_session_expired.json", body, sizeof body);
    cacreg_portal_parse(CACREG_REQ_GET_REGISTRATION, 401, "application/json", body, len, session, &r);
    assert_int_equal(r.err, CACREG_ERR_REFUSED);
    assert_int_equal(cacreg_secret_len(session), 0);
    /* Logout's 204 has no body, and that is right. */
    memset(&r, 0, sizeof r);
    cacreg_portal_parse(CACREG_REQ_LOGOUT, 204, "", "", 0, session, &r);
    assert_int_equal(r.err, CACREG_OK);
    cacreg_secret_free(session);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_session_token),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
