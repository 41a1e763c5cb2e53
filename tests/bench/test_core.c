/*
 * The core against the real stack on the bench: the watcher's events for
 * insert, removal and a pcscd that stops and restarts; the token through
 * libp11 and OpenSC; the PIN counting down with exactly one VERIFY per try,
 * and none once the card is locked. Needs a running bench (see tests/run).
 */
#define _GNU_SOURCE
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "benchctl.h"
#include "parts.h"

#define EVENT_TIMEOUT_MS 8000

static int events[2] = {-1, -1};
static cacreg_watcher *watcher;
static cacreg_token *token;

/* One bench command ("insert" "valid", or "remove" NULL) that must succeed. */
static void bench_ok(const char *cmd, const char *arg)
{
    char reply[4096];

    if (bench_cmd(reply, sizeof reply, "%s%s%s", cmd, arg ? " " : "", arg ? arg : "") != 0)
        fail_msg("bench '%s %s': %s", cmd, arg ? arg : "", reply);
}

/* Waits for an event of type; other events are skipped. */
static void expect_event(cacreg_event_type type, cacreg_event *out)
{
    struct timespec t0, t;
    cacreg_event ev;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd pfd = {.fd = events[0], .events = POLLIN};
        long left;

        while (cacreg_event_read(events[0], &ev) == CACREG_OK)
            if (ev.type == type) {
                if (out)
                    *out = ev;
                return;
            }
        clock_gettime(CLOCK_MONOTONIC, &t);
        left = EVENT_TIMEOUT_MS - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0)
            fail_msg("no event of type %d within %d ms", (int)type, EVENT_TIMEOUT_MS);
        poll(&pfd, 1, (int)left);
    }
}

static void drain(void)
{
    cacreg_event ev;

    while (cacreg_event_read(events[0], &ev) == CACREG_OK) {
    }
}

static void insert(const char *name)
{
    cacreg_event ev;

    bench_ok("remove", NULL);
    bench_ok("insert", name);
    expect_event(CACREG_EV_CARD_IN, &ev);
    assert_non_null(strstr(ev.reader, "Virtual CAC Reader"));
    cacreg_token_forget(token); /* as a front end does on every card event */
}

static void remove_card(void)
{
    cacreg_readers r;

    cacreg_watcher_snapshot(watcher, &r);
    bench_ok("remove", NULL);
    if (r.count > 0 && r.readers[0].card_present)
        expect_event(CACREG_EV_CARD_OUT, NULL);
    cacreg_token_forget(token);
}

static const char *first_reader(void)
{
    static cacreg_readers r;

    cacreg_watcher_snapshot(watcher, &r);
    assert_int_equal(r.status, CACREG_PCSC_UP);
    assert_true(r.count >= 1);
    return r.readers[0].name;
}

static int setup(void **state)
{
    char err[256];

    (void)state;
    if (cacreg_event_pipe(events) != CACREG_OK)
        return -1;
    if (cacreg_token_load(&token, "", false, 3, err, sizeof err) != CACREG_OK) {
        fprintf(stderr, "token: %s\n", err);
        return -1;
    }
    if (cacreg_watcher_start(&watcher, "Virtual CAC", events[1]) != CACREG_OK)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    char reply[256];

    (void)state;
    cacreg_watcher_stop(watcher);
    cacreg_token_free(token);
    close(events[0]);
    close(events[1]);
    bench_cmd(reply, sizeof reply, "remove");
    bench_cmd(reply, sizeof reply, "unblock valid");
    return 0;
}

static void test_watcher_insert_remove(void **state)
{
    cacreg_readers r;
    cacreg_event ev;

    (void)state;
    expect_event(CACREG_EV_PCSC_UP, NULL);
    remove_card();
    drain();
    bench_ok("insert", "valid");
    expect_event(CACREG_EV_CARD_IN, &ev);
    assert_string_equal(ev.reader, "Virtual CAC Reader 00 00");
    cacreg_watcher_snapshot(watcher, &r);
    assert_int_equal(r.status, CACREG_PCSC_UP);
    assert_int_equal(r.count, 2); /* vpcd always makes two readers */
    assert_true(r.readers[0].card_present);
    assert_true(r.readers[0].atr_len > 2);
    assert_false(r.readers[1].card_present);
    bench_ok("remove", NULL);
    expect_event(CACREG_EV_CARD_OUT, &ev);
    assert_string_equal(ev.reader, "Virtual CAC Reader 00 00");
    cacreg_watcher_snapshot(watcher, &r);
    assert_false(r.readers[0].card_present);
}

/* pcscd killed and restarted: reported, and the watcher reconnects by itself. */
static void test_watcher_survives_pcscd_restart(void **state)
{
    cacreg_readers r;

    (void)state;
    drain();
    bench_ok("pcscd", "stop");
    expect_event(CACREG_EV_PCSC_DOWN, NULL);
    cacreg_watcher_snapshot(watcher, &r);
    assert_int_equal(r.status, CACREG_PCSC_DOWN);
    assert_int_equal(r.count, 0);
    assert_non_null(strstr(r.detail, "pcscd"));
    bench_ok("pcscd", "start");
    expect_event(CACREG_EV_PCSC_UP, NULL);
    /* The readers come back, and a card inserted now is seen. */
    bench_ok("insert", "valid");
    expect_event(CACREG_EV_CARD_IN, NULL);
    cacreg_watcher_snapshot(watcher, &r);
    assert_int_equal(r.status, CACREG_PCSC_UP);
    assert_true(r.readers[0].card_present);
    cacreg_token_forget(token);
    remove_card();

    /* A restart in one step (down and up between two polls) too. */
    drain();
    bench_ok("pcscd", "restart");
    expect_event(CACREG_EV_PCSC_DOWN, NULL);
    expect_event(CACREG_EV_PCSC_UP, NULL);
}

/* The certificates are read once per insertion, then served from memory. */
static void test_token_read_once(void **state)
{
    cacreg_card info;
    char err[256];
    long apdus;

    (void)state;
    insert("valid");
    assert_int_equal(cacreg_token_read(token, first_reader(), &info, err, sizeof err), CACREG_OK);
    assert_string_equal(info.label, "DOE.JANE.Q.1000000001");
    assert_true(info.recognised);
    assert_int_equal(info.ncerts, 3);
    assert_int_equal(info.certs[cacreg_cert_choose(info.certs, info.ncerts)].kind,
                     CACREG_CERT_IDENTITY);
    assert_string_equal(info.cert_labels[0], "CAC ID Certificate");
    assert_string_equal(info.cert_ids[0], "0001");
    assert_int_equal(info.pin, CACREG_PIN_OK);
    apdus = bench_counter("apdus");
    for (int i = 0; i < 5; i++)
        assert_int_equal(cacreg_token_read(token, first_reader(), &info, err, sizeof err),
                         CACREG_OK);
    assert_int_equal(bench_counter("apdus"), apdus);
    remove_card();
    assert_int_equal(cacreg_token_read(token, "Virtual CAC Reader 00 00", &info, err, sizeof err),
                     CACREG_ERR_NOT_FOUND);
}

static cacreg_err login(const char *pin, int *tries_left)
{
    cacreg_secret *s = cacreg_secret_new();
    cacreg_err r;
    char err[256];

    assert_non_null(s);
    assert_int_equal(cacreg_secret_append(s, pin, strlen(pin)), CACREG_OK);
    r = cacreg_token_login(token, first_reader(), s, tries_left, err, sizeof err);
    /* Whatever happened, the PIN is gone from the buffer. */
    assert_int_equal(cacreg_secret_len(s), 0);
    for (size_t i = 0; i <= strlen(pin); i++)
        assert_int_equal(cacreg_secret_data(s)[i], 0);
    cacreg_secret_free(s);
    return r;
}

/* Wrong PINs: 2 tries, then 1, then locked; one VERIFY each and none after. */
static void test_wrong_pin_to_lock(void **state)
{
    cacreg_card info;
    char err[256];
    int left;

    (void)state;
    bench_ok("unblock", "valid");
    insert("valid");
    assert_int_equal(login("12ab", &left), CACREG_ERR_PIN_FORMAT);
    assert_int_equal(bench_counter("verifies"), 0);

    assert_int_equal(login("999999", &left), CACREG_ERR_PIN_WRONG);
    assert_int_equal(left, 2);
    assert_int_equal(bench_counter("verifies"), 1);
    assert_int_equal(login("888888", &left), CACREG_ERR_PIN_WRONG);
    assert_int_equal(left, 1);
    assert_int_equal(bench_counter("verifies"), 2);
    assert_int_equal(cacreg_token_read(token, first_reader(), &info, err, sizeof err), CACREG_OK);
    assert_int_equal(info.pin, CACREG_PIN_FINAL_TRY);
    assert_int_equal(login("777777", &left), CACREG_ERR_PIN_LOCKED);
    assert_int_equal(left, 0);
    assert_int_equal(bench_counter("verifies"), 3);

    /* Locked: the right PIN is not even sent. */
    assert_int_equal(login("123456", &left), CACREG_ERR_PIN_LOCKED);
    assert_int_equal(bench_counter("verifies"), 3);
    assert_int_equal(bench_counter("verify_failed"), 3);

    /* Still locked after the card is pulled and put back. */
    remove_card();
    insert("valid");
    assert_int_equal(cacreg_token_read(token, first_reader(), &info, err, sizeof err), CACREG_OK);
    assert_int_equal(info.pin, CACREG_PIN_LOCKED);
    assert_int_equal(login("123456", &left), CACREG_ERR_PIN_LOCKED);
    assert_int_equal(bench_counter("verifies"), 0);
    remove_card();
    bench_ok("unblock", "valid");
}

/* The right PIN logs in with one VERIFY; the identity key then signs, once. */
static void test_right_pin_and_identity_key(void **state)
{
    static const unsigned char data[] = "cacreg test data";
    unsigned char sig[512], sig2[512];
    size_t sig_len = sizeof sig, sig2_len = sizeof sig2;
    cacreg_card info;
    const unsigned char *p;
    EVP_PKEY *key, *pub;
    EVP_MD_CTX *md;
    X509 *cert = NULL, *key_cert = NULL;
    char err[256];
    size_t chosen;
    int left;

    (void)state;
    bench_ok("unblock", "valid");
    insert("valid");
    assert_int_equal(login("123456", &left), CACREG_OK);
    assert_int_equal(bench_counter("verifies"), 1);
    assert_int_equal(bench_counter("verify_failed"), 0);

    assert_int_equal(cacreg_token_identity_key(token, first_reader(), &key, &key_cert, err,
                                               sizeof err),
                     CACREG_OK);
    assert_non_null(key_cert);
    md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &sig_len, data, sizeof data), 1);
    EVP_MD_CTX_free(md);
    assert_int_equal(bench_counter("signatures"), 1);

    /* The card loses its power (and its login): OpenSC must not log in again with a
     * PIN it kept. With its PIN cache on, it would re-send the PIN here; ours is off. */
    bench_ok("poweroff", NULL);
    md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_not_equal(EVP_DigestSign(md, sig2, &sig2_len, data, sizeof data), 1);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    ERR_clear_error();
    assert_int_equal(bench_counter("verifies"), 1);
    assert_int_equal(bench_counter("signatures"), 1);

    /* The first signature verifies with the identity certificate's public key. */
    assert_int_equal(cacreg_token_read(token, first_reader(), &info, err, sizeof err), CACREG_OK);
    chosen = cacreg_cert_choose(info.certs, info.ncerts);
    p = cacreg_token_der(token, chosen)->bytes;
    cert = d2i_X509(NULL, &p, (long)cacreg_token_der(token, chosen)->len);
    assert_int_equal(X509_cmp(cert, key_cert), 0); /* the key came with its certificate */
    X509_free(key_cert);
    pub = X509_get0_pubkey(cert);
    md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub), 1);
    assert_int_equal(EVP_DigestVerify(md, sig, sig_len, data, sizeof data), 1);
    EVP_MD_CTX_free(md);
    X509_free(cert);
    remove_card();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watcher_insert_remove),
        cmocka_unit_test(test_watcher_survives_pcscd_restart),
        cmocka_unit_test(test_token_read_once),
        cmocka_unit_test(test_wrong_pin_to_lock),
        cmocka_unit_test(test_right_pin_and_identity_key),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
