/* Unit tests for core/secret.c and core/error.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "cacreg.h"

static void test_append_and_read(void **state)
{
    cacreg_secret *s = cacreg_secret_new();

    (void)state;
    assert_non_null(s);
    assert_int_equal(cacreg_secret_len(s), 0);
    assert_string_equal(cacreg_secret_data(s), "");
    assert_int_equal(cacreg_secret_append(s, "1234", 4), CACREG_OK);
    assert_int_equal(cacreg_secret_append(s, "56", 2), CACREG_OK);
    assert_int_equal(cacreg_secret_len(s), 6);
    assert_string_equal(cacreg_secret_data(s), "123456");
    cacreg_secret_free(s);
}

/* A paste longer than the field is refused whole and changes nothing. */
static void test_too_long_paste_is_refused_whole(void **state)
{
    char paste[10240];
    cacreg_secret *s = cacreg_secret_new();

    (void)state;
    memset(paste, '7', sizeof paste);
    assert_int_equal(cacreg_secret_append(s, "12", 2), CACREG_OK);
    assert_int_equal(cacreg_secret_append(s, paste, sizeof paste), CACREG_ERR_TOO_LONG);
    assert_string_equal(cacreg_secret_data(s), "12");
    /* Exactly up to the maximum fits; one more byte does not. */
    assert_int_equal(cacreg_secret_append(s, paste, CACREG_SECRET_MAX - 2), CACREG_OK);
    assert_int_equal(cacreg_secret_len(s), CACREG_SECRET_MAX);
    assert_int_equal(cacreg_secret_append(s, "7", 1), CACREG_ERR_TOO_LONG);
    assert_int_equal(cacreg_secret_len(s), CACREG_SECRET_MAX);
    cacreg_secret_free(s);
}

static void test_nul_byte_is_invalid(void **state)
{
    cacreg_secret *s = cacreg_secret_new();

    (void)state;
    assert_int_equal(cacreg_secret_append(s, "12\0004", 4), CACREG_ERR_INVALID);
    assert_int_equal(cacreg_secret_len(s), 0);
    cacreg_secret_free(s);
}

/* Backspace removes one character, a whole UTF-8 sequence, and wipes it. */
static void test_backspace_utf8(void **state)
{
    cacreg_secret *s = cacreg_secret_new();
    const char *data;

    (void)state;
    assert_int_equal(cacreg_secret_append(s, "a\xc3\xa9\xe2\x82\xac", 6), CACREG_OK); /* aé€ */
    data = cacreg_secret_data(s);
    assert_true(cacreg_secret_backspace(s));
    assert_string_equal(data, "a\xc3\xa9");
    assert_int_equal(data[3], 0);
    assert_int_equal(data[4], 0);
    assert_true(cacreg_secret_backspace(s));
    assert_string_equal(data, "a");
    assert_true(cacreg_secret_backspace(s));
    assert_false(cacreg_secret_backspace(s));
    assert_int_equal(cacreg_secret_len(s), 0);
    cacreg_secret_free(s);
}

static void test_clear_wipes(void **state)
{
    cacreg_secret *s = cacreg_secret_new();
    const char *data;

    (void)state;
    assert_int_equal(cacreg_secret_append(s, "hunter22", 8), CACREG_OK);
    data = cacreg_secret_data(s);
    cacreg_secret_clear(s);
    assert_int_equal(cacreg_secret_len(s), 0);
    for (int i = 0; i < 9; i++)
        assert_int_equal(data[i], 0);
    cacreg_secret_free(s);
}

static void test_is_pin(void **state)
{
    static const struct {
        const char *text;
        bool is_pin;
    } cases[] = {
        {"123456", true}, {"1234567", true}, {"12345678", true}, {"12345", false},
        {"123456789", false}, {"12345a", false}, {"", false}, {" 123456", false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cacreg_secret *s = cacreg_secret_new();
        assert_int_equal(cacreg_secret_append(s, cases[i].text, strlen(cases[i].text)), CACREG_OK);
        assert_int_equal(cacreg_secret_is_pin(s), cases[i].is_pin);
        cacreg_secret_free(s);
    }
}

static void test_free_null(void **state)
{
    (void)state;
    cacreg_secret_free(NULL);
}

static void test_harden_process(void **state)
{
    struct rlimit core;

    (void)state;
    assert_int_equal(cacreg_harden_process(), CACREG_OK);
    assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
    assert_int_equal(getrlimit(RLIMIT_CORE, &core), 0);
    assert_int_equal(core.rlim_cur, 0);
}

static void test_strerror_covers_codes(void **state)
{
    (void)state;
    for (int e = CACREG_OK; e <= CACREG_ERR_CERT; e++)
        assert_string_not_equal(cacreg_strerror((cacreg_err)e), "Unknown error.");
    assert_string_equal(cacreg_strerror((cacreg_err)999), "Unknown error.");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_read),
        cmocka_unit_test(test_too_long_paste_is_refused_whole),
        cmocka_unit_test(test_nul_byte_is_invalid),
        cmocka_unit_test(test_backspace_utf8),
        cmocka_unit_test(test_clear_wipes),
        cmocka_unit_test(test_is_pin),
        cmocka_unit_test(test_free_null),
        cmocka_unit_test(test_harden_process),
        cmocka_unit_test(test_strerror_covers_codes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
