/* Unit tests for core/config.c: table-driven, good and bad lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cacreg.h"

static void test_defaults(void **state)
{
    cacreg_config cfg;

    (void)state;
    cacreg_config_defaults(&cfg);
    assert_int_equal(cfg.pin_max_tries, 3);
    assert_int_equal(cfg.connect_timeout_s, 10);
    assert_false(cfg.opensc_file_cache);
    assert_string_equal(cfg.pkcs11_module, "");
}

static void test_good_file(void **state)
{
    static const char text[] =
        "# a site's settings\n"
        "\n"
        "portal_url = https://portal.example.mil/api/v1/\n"
        "  ca_bundle=/etc/cacreg/dod.pem   \r\n"
        "reader_filter = Virtual CAC\n"
        "connect_timeout = 5\n"
        "opensc_file_cache = yes\n"
        "ocsp_url = http://ocsp.example.mil\n"
        "pin_max_tries = 3"; /* no final newline */
    cacreg_config cfg;
    char err[256] = "";

    (void)state;
    cacreg_config_defaults(&cfg);
    assert_int_equal(cacreg_config_parse(&cfg, text, strlen(text), "t.conf", err, sizeof err),
                     CACREG_OK);
    assert_string_equal(cfg.portal_url, "https://portal.example.mil/api/v1/");
    assert_string_equal(cfg.ca_bundle, "/etc/cacreg/dod.pem");
    assert_string_equal(cfg.reader_filter, "Virtual CAC");
    assert_int_equal(cfg.connect_timeout_s, 5);
    assert_true(cfg.opensc_file_cache);
    assert_string_equal(cfg.ocsp_url, "http://ocsp.example.mil");
}

/* Each bad file names its file and line and says what was expected. */
static void test_bad_lines(void **state)
{
    static const struct {
        const char *text;
        const char *message;
    } cases[] = {
        {"portal_url https://x\n", "bad.conf:1: expected 'key = value' with a lower-case key"},
        {"\n\nnope = 1\n", "bad.conf:3: unknown key 'nope'"},
        {"connect_timeout = soon\n", "bad.conf:1: connect_timeout expects a whole number from 1 to 300"},
        {"connect_timeout = 0\n", "bad.conf:1: connect_timeout expects a whole number from 1 to 300"},
        {"connect_timeout = 99999999999999\n", "bad.conf:1: connect_timeout expects a whole number"},
        {"portal_url = http://plain.example\n", "bad.conf:1: portal_url must be an https:// URL"},
        {"ca_bundle = relative/path.pem\n", "bad.conf:1: ca_bundle must be an absolute path"},
        {"opensc_file_cache = maybe\n", "bad.conf:1: opensc_file_cache expects yes or no"},
        {"= value\n", "bad.conf:1: expected 'key = value'"},
        {"Portal_URL = https://x\n", "bad.conf:1: expected 'key = value'"},
    };
    char err[512];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cacreg_config cfg;
        cacreg_config_defaults(&cfg);
        err[0] = '\0';
        assert_int_equal(cacreg_config_parse(&cfg, cases[i].text, strlen(cases[i].text),
                                             "bad.conf", err, sizeof err),
                         CACREG_ERR_CONFIG);
        if (strncmp(err, cases[i].message, strlen(cases[i].message)) != 0)
            fail_msg("case %zu: got '%s', want '%s...'", i, err, cases[i].message);
    }
}

static void test_long_and_binary_input(void **state)
{
    char *text = malloc(10 * 1024);
    cacreg_config cfg;
    char err[256];

    (void)state;
    /* A pasted 10 KB line. */
    memcpy(text, "reader_filter = ", 16);
    memset(text + 16, 'x', 10 * 1024 - 16);
    cacreg_config_defaults(&cfg);
    assert_int_equal(cacreg_config_parse(&cfg, text, 10 * 1024, "big.conf", err, sizeof err),
                     CACREG_ERR_CONFIG);
    assert_string_equal(err, "big.conf:1: line longer than 4095 characters");
    assert_string_equal(cfg.reader_filter, "");
    /* A value that fits the line but not the field. */
    memset(text + 16, 'x', 200);
    assert_int_equal(cacreg_config_parse(&cfg, text, 216, "f.conf", err, sizeof err),
                     CACREG_ERR_CONFIG);
    assert_string_equal(err, "f.conf:1: reader_filter is longer than 127 characters");
    /* A NUL byte. */
    assert_int_equal(cacreg_config_parse(&cfg, "a\0b = 1\n", 8, "n.conf", err, sizeof err),
                     CACREG_ERR_CONFIG);
    assert_string_equal(err, "n.conf:1: a NUL byte; expected text");
    free(text);
}

static void test_load_file(void **state)
{
    char path[] = "/tmp/cacreg-config-XXXXXX";
    cacreg_config cfg;
    char err[256];
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "total_timeout = 7\nbad line\n", 27), 27);
    close(fd);
    cacreg_config_defaults(&cfg);
    assert_int_equal(cacreg_config_load_file(&cfg, path, err, sizeof err), CACREG_ERR_CONFIG);
    assert_non_null(strstr(err, ":2: expected 'key = value'"));
    assert_int_equal(cfg.total_timeout_s, 7);
    unlink(path);
    assert_int_equal(cacreg_config_load_file(&cfg, path, err, sizeof err), CACREG_ERR_NOT_FOUND);
}

static void test_standard_kiosk_skips_user_file(void **state)
{
    char dir[] = "/tmp/cacreg-xdg-XXXXXX", path[256];
    cacreg_config cfg;
    char err[256];
    FILE *f;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/cacreg", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/cacreg/cacreg.conf", dir);
    f = fopen(path, "w");
    fputs("idle_timeout = 42\n", f);
    fclose(f);
    setenv("XDG_CONFIG_HOME", dir, 1);
    cacreg_config_defaults(&cfg);
    assert_int_equal(cacreg_config_load_standard(&cfg, true, err, sizeof err), CACREG_OK);
    assert_int_equal(cfg.idle_timeout_s, 300);
    assert_int_equal(cacreg_config_load_standard(&cfg, false, err, sizeof err), CACREG_OK);
    assert_int_equal(cfg.idle_timeout_s, 42);
    unlink(path);
    snprintf(path, sizeof path, "%s/cacreg", dir);
    rmdir(path);
    rmdir(dir);
}

/* A kiosk's configuration: root's, in root's directory, writable by no one else. */
static void test_check_owner(void **state)
{
    char dir[] = "/tmp/cacreg-own-XXXXXX", path[256], err[256];
    FILE *f;

    (void)state;
    if (geteuid() != 0)
        skip(); /* the files must be root's to begin with */
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/kiosk.conf", dir);
    assert_int_equal(cacreg_config_check_owner(path, err, sizeof err), CACREG_ERR_NOT_FOUND);
    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(cacreg_config_check_owner(path, err, sizeof err), CACREG_OK);
    assert_int_equal(chmod(path, 0666), 0);
    assert_int_equal(cacreg_config_check_owner(path, err, sizeof err), CACREG_ERR_CONFIG);
    assert_non_null(strstr(err, "can be written by others than root"));
    assert_int_equal(chmod(path, 0664), 0);
    assert_int_equal(cacreg_config_check_owner(path, err, sizeof err), CACREG_ERR_CONFIG);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(chown(path, 65534, 0), 0);
    assert_int_equal(cacreg_config_check_owner(path, err, sizeof err), CACREG_ERR_CONFIG);
    assert_non_null(strstr(err, "not owned by root"));
    assert_int_equal(chown(path, 0, 0), 0);
    assert_int_equal(chmod(dir, 0777), 0); /* its directory: anyone could swap the file */
    assert_int_equal(cacreg_config_check_owner(path, err, sizeof err), CACREG_ERR_CONFIG);
    assert_non_null(strstr(err, dir));
    assert_int_equal(chmod(dir, 0700), 0);
    assert_int_equal(cacreg_config_check_owner("kiosk.conf", err, sizeof err), CACREG_ERR_CONFIG);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_long_and_binary_input),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_standard_kiosk_skips_user_file),
        cmocka_unit_test(test_check_owner),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
