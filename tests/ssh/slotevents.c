/*
 * slotevents: what a PKCS#11 module says about slots and card events, for the
 * SSH tests (p11-kit-client.so over a forwarded p11-kit server). Test
 * equipment, not part of cacreg.
 *
 *   slotevents MODULE list            one line per slot: id, token present, C_GetTokenInfo
 *   slotevents MODULE poll MS COUNT   every MS ms: slots, present, token info, event (no block)
 *   slotevents MODULE wait MS         C_WaitForSlotEvent blocking, given up after MS ms
 *   slotevents MODULE rtt N           N calls of C_GetSlotList (a count): the mean in µs
 *
 * Every line is "key=value ..."; return values as CKR_ names where known.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST *p11;

static const char *rv_name(CK_RV rv)
{
    static char other[32];

    switch (rv) {
    case CKR_OK: return "CKR_OK";
    case CKR_NO_EVENT: return "CKR_NO_EVENT";
    case CKR_FUNCTION_NOT_SUPPORTED: return "CKR_FUNCTION_NOT_SUPPORTED";
    case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
    case CKR_TOKEN_NOT_RECOGNIZED: return "CKR_TOKEN_NOT_RECOGNIZED";
    case CKR_SLOT_ID_INVALID: return "CKR_SLOT_ID_INVALID";
    case CKR_DEVICE_REMOVED: return "CKR_DEVICE_REMOVED";
    case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
    case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
    case CKR_CRYPTOKI_NOT_INITIALIZED: return "CKR_CRYPTOKI_NOT_INITIALIZED";
    default: break;
    }
    snprintf(other, sizeof other, "0x%lx", (unsigned long)rv);
    return other;
}

static long long now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/* One line: the slots, how many hold a token, the first slot's token, a non-blocking event. */
static void look(void)
{
    CK_SLOT_ID slots[16], ev_slot = 0;
    CK_ULONG n = 16, present = 0;
    CK_RV rv = p11->C_GetSlotList(CK_FALSE, slots, &n), tok_rv = CKR_OK, ev;
    CK_TOKEN_INFO ti;

    if (rv != CKR_OK) {
        printf("t=%lld slots_rv=%s\n", now_ms(), rv_name(rv));
        return;
    }
    for (CK_ULONG i = 0; i < n; i++) {
        CK_SLOT_INFO si;
        if (p11->C_GetSlotInfo(slots[i], &si) == CKR_OK && (si.flags & CKF_TOKEN_PRESENT))
            present++;
    }
    if (n > 0)
        tok_rv = p11->C_GetTokenInfo(slots[0], &ti);
    ev = p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &ev_slot, NULL);
    printf("t=%lld slots=%lu present=%lu token=%s event=%s\n", now_ms(), n, present,
           n ? rv_name(tok_rv) : "-", rv_name(ev));
    fflush(stdout);
}

static void *blocking_wait(void *arg)
{
    CK_SLOT_ID slot = 0;
    CK_RV rv = p11->C_WaitForSlotEvent(0, &slot, NULL);

    (void)arg;
    printf("wait=%s slot=%lu\n", rv_name(rv), (unsigned long)slot);
    fflush(stdout);
    _exit(0);
}

int main(int argc, char **argv)
{
    CK_C_INITIALIZE_ARGS init = {.flags = CKF_OS_LOCKING_OK};
    CK_RV (*get)(CK_FUNCTION_LIST **);
    void *lib;
    CK_RV rv;

    if (argc < 3) {
        fprintf(stderr, "usage: slotevents MODULE list|poll MS COUNT|wait MS|rtt N\n");
        return 2;
    }
    lib = dlopen(argv[1], RTLD_NOW);
    if (!lib || !(get = (CK_RV(*)(CK_FUNCTION_LIST **))dlsym(lib, "C_GetFunctionList")) ||
        get(&p11) != CKR_OK) {
        fprintf(stderr, "slotevents: cannot load %s\n", argv[1]);
        return 2;
    }
    rv = p11->C_Initialize(&init);
    printf("initialize=%s\n", rv_name(rv));
    if (rv != CKR_OK)
        return 1;
    if (strcmp(argv[2], "list") == 0) {
        look();
    } else if (strcmp(argv[2], "poll") == 0 && argc == 5) {
        int ms = atoi(argv[3]), count = atoi(argv[4]);
        for (int i = 0; i < count; i++) {
            look();
            usleep((useconds_t)ms * 1000);
        }
    } else if (strcmp(argv[2], "rtt") == 0 && argc == 4) {
        int calls = atoi(argv[3]);
        struct timespec a, b;
        CK_ULONG n;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (int i = 0; i < calls; i++)
            p11->C_GetSlotList(CK_FALSE, NULL, &n);
        clock_gettime(CLOCK_MONOTONIC, &b);
        printf("rtt_us=%.0f\n", calls > 0 ? ((b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3) / calls : 0.0);
    } else if (strcmp(argv[2], "wait") == 0 && argc == 4) {
        pthread_t t;
        pthread_create(&t, NULL, blocking_wait, NULL);
        usleep((useconds_t)atoi(argv[3]) * 1000);
        printf("wait=still-blocked\n");
        fflush(stdout);
        _exit(0);
    }
    p11->C_Finalize(NULL);
    return 0;
}
