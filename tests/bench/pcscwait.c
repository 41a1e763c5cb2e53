/*
 * pcscwait: waits, as a PC/SC client, until the bench's first reader shows
 * the wanted state. Tests wait for events with it instead of sleeping.
 *
 * usage: pcscwait present|absent|reader [TIMEOUT_MS]
 * exit: 0 reached, 1 timed out, 2 PC/SC error (message on stderr)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <winscard.h>

static long elapsed_ms(const struct timespec *t0)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Returns the first reader's name into buf, or an error code. */
static LONG first_reader(SCARDCONTEXT ctx, char *buf, DWORD size)
{
    char list[4096];
    DWORD len = sizeof list;
    LONG rv = SCardListReaders(ctx, NULL, list, &len);

    if (rv != SCARD_S_SUCCESS)
        return rv;
    snprintf(buf, size, "%s", list);
    return SCARD_S_SUCCESS;
}

int main(int argc, char **argv)
{
    SCARDCONTEXT ctx;
    SCARD_READERSTATE rs;
    struct timespec t0;
    char reader[4096];
    long timeout_ms = 10000;
    int want_present;
    LONG rv;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: pcscwait present|absent|reader [TIMEOUT_MS]\n");
        return 2;
    }
    if (argc == 3)
        timeout_ms = strtol(argv[2], NULL, 10);
    clock_gettime(CLOCK_MONOTONIC, &t0);

    /* pcscd may still be starting: retry the context and the reader list. */
    for (;;) {
        rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
        if (rv == SCARD_S_SUCCESS) {
            rv = first_reader(ctx, reader, sizeof reader);
            if (rv == SCARD_S_SUCCESS)
                break;
            SCardReleaseContext(ctx);
        }
        if (elapsed_ms(&t0) > timeout_ms) {
            fprintf(stderr, "pcscwait: no reader: %s\n", pcsc_stringify_error(rv));
            return 1;
        }
        nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL);
    }
    if (strcmp(argv[1], "reader") == 0) {
        printf("%s\n", reader);
        SCardReleaseContext(ctx);
        return 0;
    }
    want_present = strcmp(argv[1], "present") == 0;
    memset(&rs, 0, sizeof rs);
    rs.szReader = reader;
    rs.dwCurrentState = SCARD_STATE_UNAWARE;
    for (;;) {
        long left = timeout_ms - elapsed_ms(&t0);

        if (left < 0)
            left = 0;
        rv = SCardGetStatusChange(ctx, (DWORD)left, &rs, 1);
        if (rv == SCARD_E_TIMEOUT) {
            fprintf(stderr, "pcscwait: timed out waiting for card %s\n", argv[1]);
            SCardReleaseContext(ctx);
            return 1;
        }
        if (rv != SCARD_S_SUCCESS) {
            fprintf(stderr, "pcscwait: %s\n", pcsc_stringify_error(rv));
            SCardReleaseContext(ctx);
            return 2;
        }
        if (!!(rs.dwEventState & SCARD_STATE_PRESENT) == want_present) {
            printf("%s %s\n", reader, argv[1]);
            break;
        }
        rs.dwCurrentState = rs.dwEventState & ~SCARD_STATE_CHANGED;
    }
    SCardReleaseContext(ctx);
    return 0;
}
