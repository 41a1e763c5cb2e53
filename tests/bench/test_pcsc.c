/*
 * The bench seen from a PC/SC client: insert and remove as events, the PIN
 * policy a real CAC has, the counters, and the per-APDU delay. Runs against a
 * running bench ($CACREG_BENCH, $PCSCLITE_CSOCK_NAME); see tests/run.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <winscard.h>

#include "benchctl.h"

#define EVENT_TIMEOUT_MS 5000

static SCARDCONTEXT ctx;
static char reader[4096];
static DWORD active_protocol;

static void bench_ok(const char *cmd)
{
    char reply[4096];

    if (bench_cmd(reply, sizeof reply, "%s", cmd) != 0)
        fail_msg("bench '%s': %s", cmd, reply);
}

/* Waits for the first reader to reach the state; returns the event state. */
static DWORD wait_card(int present)
{
    SCARD_READERSTATE rs = {.szReader = reader, .dwCurrentState = SCARD_STATE_UNAWARE};
    LONG rv;

    for (;;) {
        rv = SCardGetStatusChange(ctx, EVENT_TIMEOUT_MS, &rs, 1);
        assert_int_equal(rv, SCARD_S_SUCCESS);
        if (!!(rs.dwEventState & SCARD_STATE_PRESENT) == present)
            return rs.dwEventState;
        rs.dwCurrentState = rs.dwEventState & ~SCARD_STATE_CHANGED;
    }
}

static void insert(const char *name)
{
    char cmd[64];

    snprintf(cmd, sizeof cmd, "insert %s", name);
    bench_ok(cmd);
    wait_card(1);
}

static void remove_card(void)
{
    bench_ok("remove");
    wait_card(0);
}

static SCARDHANDLE connect_card(void)
{
    SCARDHANDLE card;
    DWORD proto;
    LONG rv;

    rv = SCardConnect(ctx, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
                      &card, &proto);
    assert_int_equal(rv, SCARD_S_SUCCESS);
    active_protocol = proto;
    return card;
}

/* Sends one APDU and returns its status word. */
static unsigned transmit(SCARDHANDLE card, const unsigned char *apdu, size_t len)
{
    unsigned char rsp[258];
    DWORD rlen = sizeof rsp;
    LONG rv;

    rv = SCardTransmit(card, active_protocol == SCARD_PROTOCOL_T0 ? SCARD_PCI_T0 : SCARD_PCI_T1,
                       apdu, (DWORD)len, NULL, rsp, &rlen);
    if (rv != SCARD_S_SUCCESS)
        fail_msg("SCardTransmit: %s", pcsc_stringify_error(rv));
    assert_true(rlen >= 2);
    return (unsigned)rsp[rlen - 2] << 8 | rsp[rlen - 1];
}

/* VERIFY with a PIN (padded with FF to 8 bytes), or with no data if pin is NULL. */
static unsigned verify(SCARDHANDLE card, const char *pin)
{
    unsigned char apdu[13] = {0x00, 0x20, 0x00, 0x00, 0x08};

    if (!pin)
        return transmit(card, apdu, 4);
    memset(apdu + 5, 0xFF, 8);
    memcpy(apdu + 5, pin, strlen(pin));
    return transmit(card, apdu, sizeof apdu);
}

static int setup(void **state)
{
    char list[4096];
    DWORD len = sizeof list;

    (void)state;
    if (SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx) != SCARD_S_SUCCESS)
        return -1;
    if (SCardListReaders(ctx, NULL, list, &len) != SCARD_S_SUCCESS)
        return -1;
    snprintf(reader, sizeof reader, "%s", list);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    SCardReleaseContext(ctx);
    return 0;
}

/* Before and after each test: no card, no delay, so one failure stays one. */
static int fresh_bench(void **state)
{
    char reply[256];

    (void)state;
    if (bench_cmd(reply, sizeof reply, "remove") < 0 ||
        bench_cmd(reply, sizeof reply, "delay 0") < 0)
        return -1;
    wait_card(0);
    return 0;
}

/* Insert and removal reach a PC/SC client as state-change events, with an ATR. */
static void test_insert_remove_events(void **state)
{
    SCARD_READERSTATE rs = {.szReader = reader, .dwCurrentState = SCARD_STATE_UNAWARE};

    (void)state;
    remove_card();
    assert_int_equal(SCardGetStatusChange(ctx, 0, &rs, 1), SCARD_S_SUCCESS);
    assert_true(rs.dwEventState & SCARD_STATE_EMPTY);
    rs.dwCurrentState = rs.dwEventState & ~SCARD_STATE_CHANGED;

    bench_ok("insert valid");
    assert_int_equal(SCardGetStatusChange(ctx, EVENT_TIMEOUT_MS, &rs, 1), SCARD_S_SUCCESS);
    assert_true(rs.dwEventState & SCARD_STATE_CHANGED);
    assert_true(rs.dwEventState & SCARD_STATE_PRESENT);
    assert_true(rs.cbAtr > 2);
    assert_int_equal(rs.rgbAtr[0], 0x3B);
    rs.dwCurrentState = rs.dwEventState & ~SCARD_STATE_CHANGED;

    bench_ok("remove");
    assert_int_equal(SCardGetStatusChange(ctx, EVENT_TIMEOUT_MS, &rs, 1), SCARD_S_SUCCESS);
    assert_true(rs.dwEventState & SCARD_STATE_CHANGED);
    assert_true(rs.dwEventState & SCARD_STATE_EMPTY);
}

/* 3 tries, 63Cx with the tries left, 6983 once blocked, even after re-insertion. */
static void test_pin_policy(void **state)
{
    char reply[256];
    SCARDHANDLE card;

    (void)state;
    bench_ok("unblock valid");
    insert("valid");
    card = connect_card();
    assert_int_equal(verify(card, NULL), 0x63C3);
    assert_int_equal(verify(card, "999999"), 0x63C2);
    assert_int_equal(verify(card, NULL), 0x63C2);
    assert_int_equal(verify(card, "12"), 0x6A80); /* not a PIN: no try lost */
    assert_int_equal(verify(card, "12ab56"), 0x6A80);
    assert_int_equal(verify(card, NULL), 0x63C2);
    assert_int_equal(verify(card, "123456"), 0x9000); /* right PIN: tries back to 3 */
    assert_int_equal(verify(card, NULL), 0x9000);
    assert_int_equal(verify(card, "111111"), 0x63C2);
    assert_int_equal(verify(card, "222222"), 0x63C1);
    assert_int_equal(verify(card, "333333"), 0x6983);
    assert_int_equal(verify(card, "123456"), 0x6983); /* blocked: right PIN no longer works */
    assert_int_equal(verify(card, NULL), 0x6983);
    SCardDisconnect(card, SCARD_LEAVE_CARD);

    remove_card();
    insert("valid");
    card = connect_card();
    assert_int_equal(verify(card, NULL), 0x6983);
    assert_int_equal(verify(card, "123456"), 0x6983);
    SCardDisconnect(card, SCARD_LEAVE_CARD);
    assert_int_equal(bench_cmd(reply, sizeof reply, "pin valid"), 0);
    assert_string_equal(reply, "ok valid tries_left=0");

    /* A blocked card stays blocked for that card only. */
    remove_card();
    insert("valid2");
    card = connect_card();
    assert_int_equal(verify(card, NULL), 0x63C3);
    SCardDisconnect(card, SCARD_LEAVE_CARD);
    remove_card();
    bench_ok("unblock valid");
}

/* The counters count exactly what was sent, per instruction, per session. */
static void test_counters_match(void **state)
{
    static const unsigned char get_data[] = {0x00, 0xCA, 0x9F, 0x7F, 0x00};
    long apdus0, verifies0, status0, ins_ca0, session0;
    SCARDHANDLE card;

    (void)state;
    insert("valid");
    card = connect_card();
    session0 = bench_counter("session");
    apdus0 = bench_counter("apdus");
    verifies0 = bench_counter("verifies");
    status0 = bench_counter("verify_status");
    ins_ca0 = bench_counter("ins_CA");
    assert_true(apdus0 >= 0);

    for (int i = 0; i < 5; i++)
        transmit(card, get_data, sizeof get_data);
    verify(card, NULL);
    verify(card, NULL);
    verify(card, "123456");

    assert_int_equal(bench_counter("apdus"), apdus0 + 8);
    assert_int_equal(bench_counter("ins_CA"), ins_ca0 + 5);
    assert_int_equal(bench_counter("verify_status"), status0 + 2);
    assert_int_equal(bench_counter("verifies"), verifies0 + 1);
    assert_int_equal(bench_counter("verify_failed"), 0);
    SCardDisconnect(card, SCARD_LEAVE_CARD);

    /* A new insertion is a new session, with counters from zero. */
    remove_card();
    insert("valid");
    assert_int_equal(bench_counter("session"), session0 + 1);
    assert_int_equal(bench_counter("verifies"), 0);
    remove_card();
}

static long ms_since(const struct timespec *t0)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* The per-APDU delay makes the card as slow as a real one. */
static void test_delay(void **state)
{
    static const unsigned char get_data[] = {0x00, 0xCA, 0x9F, 0x7F, 0x00};
    struct timespec t0;
    SCARDHANDLE card;
    long busy0;

    (void)state;
    insert("valid");
    card = connect_card();
    busy0 = bench_counter("busy_us");
    bench_ok("delay 20");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 5; i++)
        transmit(card, get_data, sizeof get_data);
    assert_true(ms_since(&t0) >= 100);
    assert_true(bench_counter("busy_us") - busy0 >= 100000);
    bench_ok("delay 0");
    SCardDisconnect(card, SCARD_LEAVE_CARD);
    remove_card();
}

/* A power cut resets the card: the PIN login is gone, the tries are not. */
static void test_power_cut_logs_out(void **state)
{
    SCARDHANDLE card;

    (void)state;
    bench_ok("unblock valid");
    insert("valid");
    card = connect_card();
    assert_int_equal(verify(card, "999999"), 0x63C2);
    assert_int_equal(verify(card, "123456"), 0x9000);
    assert_int_equal(verify(card, NULL), 0x9000);
    bench_ok("poweroff");
    assert_int_equal(verify(card, NULL), 0x63C3);
    SCardDisconnect(card, SCARD_LEAVE_CARD);
}

/* Commands the bench must refuse, with a reason. */
static void test_control_refusals(void **state)
{
    char reply[4096];

    (void)state;
    assert_int_equal(bench_cmd(reply, sizeof reply, "insert nosuchcard"), -1);
    assert_string_equal(reply, "err no such card: nosuchcard");
    assert_int_equal(bench_cmd(reply, sizeof reply, "insert ../etc"), -1);
    assert_int_equal(bench_cmd(reply, sizeof reply, "delay -5"), -1);
    insert("valid");
    assert_int_equal(bench_cmd(reply, sizeof reply, "insert valid2"), -1);
    assert_string_equal(reply, "err card valid is inserted; remove it first");
    remove_card();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_insert_remove_events, fresh_bench, fresh_bench),
        cmocka_unit_test_setup_teardown(test_pin_policy, fresh_bench, fresh_bench),
        cmocka_unit_test_setup_teardown(test_counters_match, fresh_bench, fresh_bench),
        cmocka_unit_test_setup_teardown(test_delay, fresh_bench, fresh_bench),
        cmocka_unit_test_setup_teardown(test_power_cut_logs_out, fresh_bench, fresh_bench),
        cmocka_unit_test_setup_teardown(test_control_refusals, fresh_bench, fresh_bench),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
