/*
 * libifdbench: the bench's reader driver for pcscd. It is vsmartcard's vpcd
 * (Debian's libifdvpcd.so, loaded here) with two things a real reader has
 * and vpcd lacks:
 *
 *  - Card events as they happen. pcscd asks a driver without a polling thread
 *    of its own whether a card is present every 400 ms; a CCID reader reports
 *    an insertion or a pull by interrupt. Here a polling thread
 *    (TAG_IFD_POLLING_THREAD_WITH_TIMEOUT) asks vpcd every 20 ms and returns
 *    to pcscd as soon as the answer changes.
 *  - One lock around every call into vpcd for a slot. vpcd's own lock does not
 *    cover the close of a connection after a failed transfer, nor the accept of
 *    the next card's connection, so the two can interleave (see README.md,
 *    "vpcd's defects").
 *
 * The reader's configuration names this file as LIBPATH; the real driver is
 * VPCD_DRIVER, or Debian's path.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include <ifdhandler.h>

#define DEFAULT_DRIVER "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
#define SLOTS 16            /* pcscd's most readers; vpcd's slot is Lun & 0xffff */
#define POLL_MS 20          /* how often the polling thread asks vpcd */
#define RETURN_MS 400       /* pcscd's own period: its power-down timer runs on it */

static struct {
    RESPONSECODE (*create_by_name)(DWORD, LPSTR);
    RESPONSECODE (*create)(DWORD, DWORD);
    RESPONSECODE (*close)(DWORD);
    RESPONSECODE (*get_capabilities)(DWORD, DWORD, PDWORD, PUCHAR);
    RESPONSECODE (*set_capabilities)(DWORD, DWORD, DWORD, PUCHAR);
    RESPONSECODE (*set_protocol)(DWORD, DWORD, UCHAR, UCHAR, UCHAR, UCHAR);
    RESPONSECODE (*power)(DWORD, DWORD, PUCHAR, PDWORD);
    RESPONSECODE (*transmit)(DWORD, SCARD_IO_HEADER, PUCHAR, DWORD, PUCHAR, PDWORD,
                             PSCARD_IO_HEADER);
    RESPONSECODE (*control)(DWORD, DWORD, PUCHAR, DWORD, PUCHAR, DWORD, LPDWORD);
    RESPONSECODE (*presence)(DWORD);
} vpcd;

static pthread_once_t loaded = PTHREAD_ONCE_INIT;
static bool load_ok;
static pthread_mutex_t slot_lock[SLOTS];
static RESPONSECODE last_presence[SLOTS];
static atomic_bool stopping[SLOTS];

/* Loads the real driver and resolves its entry points, once. */
static void load(void)
{
    const char *path = getenv("VPCD_DRIVER");
    void *h = dlopen(path && *path ? path : DEFAULT_DRIVER, RTLD_NOW | RTLD_LOCAL);

    for (int i = 0; i < SLOTS; i++) {
        pthread_mutex_init(&slot_lock[i], NULL);
        last_presence[i] = IFD_ICC_NOT_PRESENT;
    }
    if (!h)
        return;
#define SYM(field, name) (*(void **)&vpcd.field = dlsym(h, name))
    load_ok = SYM(create_by_name, "IFDHCreateChannelByName") && SYM(create, "IFDHCreateChannel") &&
              SYM(close, "IFDHCloseChannel") && SYM(get_capabilities, "IFDHGetCapabilities") &&
              SYM(set_capabilities, "IFDHSetCapabilities") &&
              SYM(set_protocol, "IFDHSetProtocolParameters") && SYM(power, "IFDHPowerICC") &&
              SYM(transmit, "IFDHTransmitToICC") && SYM(control, "IFDHControl") &&
              SYM(presence, "IFDHICCPresence");
#undef SYM
}

/* The slot's lock, or NULL when the driver is missing or the slot is out of range. */
static pthread_mutex_t *enter(DWORD lun)
{
    DWORD slot = lun & 0xffff;

    pthread_once(&loaded, load);
    if (!load_ok || slot >= SLOTS)
        return NULL;
    pthread_mutex_lock(&slot_lock[slot]);
    return &slot_lock[slot];
}

/* Runs one call into vpcd under the slot's lock. */
#define CALL(lun, expr)                                                                      \
    do {                                                                                     \
        pthread_mutex_t *m_ = enter(lun);                                                    \
        RESPONSECODE r_;                                                                     \
        if (!m_)                                                                             \
            return IFD_COMMUNICATION_ERROR;                                                  \
        r_ = (expr);                                                                         \
        pthread_mutex_unlock(m_);                                                            \
        return r_;                                                                           \
    } while (0)

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* pcscd's polling thread: returns when the card comes or goes, or after
 * RETURN_MS at most (pcscd then looks itself, and runs its power-down timer). */
static RESPONSECODE polling(DWORD lun, int timeout_ms)
{
    DWORD slot = lun & 0xffff;
    long until = now_ms() + (timeout_ms < RETURN_MS ? timeout_ms : RETURN_MS);

    if (slot >= SLOTS)
        return IFD_COMMUNICATION_ERROR;
    while (!atomic_exchange(&stopping[slot], false) && now_ms() < until) {
        pthread_mutex_t *m = enter(lun);
        RESPONSECODE r;

        if (!m)
            return IFD_COMMUNICATION_ERROR;
        r = vpcd.presence(lun);
        if (r != last_presence[slot]) {
            last_presence[slot] = r;
            pthread_mutex_unlock(m);
            return IFD_SUCCESS;
        }
        pthread_mutex_unlock(m);
        nanosleep(&(struct timespec){.tv_nsec = POLL_MS * 1000000L}, NULL);
    }
    return IFD_SUCCESS;
}

/* pcscd asks the polling thread to return now: at its end, and whenever the
 * last client of a card disconnects (so that the next wait gets its new timeout). */
static RESPONSECODE stop_polling(DWORD lun)
{
    if ((lun & 0xffff) < SLOTS)
        atomic_store(&stopping[lun & 0xffff], true);
    return IFD_SUCCESS;
}

RESPONSECODE IFDHCreateChannelByName(DWORD Lun, LPSTR DeviceName)
{
    CALL(Lun, vpcd.create_by_name(Lun, DeviceName));
}

RESPONSECODE IFDHCreateChannel(DWORD Lun, DWORD Channel)
{
    CALL(Lun, vpcd.create(Lun, Channel));
}

RESPONSECODE IFDHCloseChannel(DWORD Lun)
{
    CALL(Lun, vpcd.close(Lun));
}

RESPONSECODE IFDHGetCapabilities(DWORD Lun, DWORD Tag, PDWORD Length, PUCHAR Value)
{
    switch (Tag) {
    case TAG_IFD_POLLING_THREAD_WITH_TIMEOUT:
        if (*Length < sizeof(void *))
            return IFD_ERROR_INSUFFICIENT_BUFFER;
        *Length = sizeof(void *);
        *(RESPONSECODE (**)(DWORD, int))Value = polling;
        return IFD_SUCCESS;
    case TAG_IFD_STOP_POLLING_THREAD:
        if (*Length < sizeof(void *))
            return IFD_ERROR_INSUFFICIENT_BUFFER;
        *Length = sizeof(void *);
        *(RESPONSECODE (**)(DWORD))Value = stop_polling;
        return IFD_SUCCESS;
    default:
        CALL(Lun, vpcd.get_capabilities(Lun, Tag, Length, Value));
    }
}

RESPONSECODE IFDHSetCapabilities(DWORD Lun, DWORD Tag, DWORD Length, PUCHAR Value)
{
    CALL(Lun, vpcd.set_capabilities(Lun, Tag, Length, Value));
}

RESPONSECODE IFDHSetProtocolParameters(DWORD Lun, DWORD Protocol, UCHAR Flags, UCHAR PTS1,
                                       UCHAR PTS2, UCHAR PTS3)
{
    CALL(Lun, vpcd.set_protocol(Lun, Protocol, Flags, PTS1, PTS2, PTS3));
}

RESPONSECODE IFDHPowerICC(DWORD Lun, DWORD Action, PUCHAR Atr, PDWORD AtrLength)
{
    CALL(Lun, vpcd.power(Lun, Action, Atr, AtrLength));
}

RESPONSECODE IFDHTransmitToICC(DWORD Lun, SCARD_IO_HEADER SendPci, PUCHAR TxBuffer,
                               DWORD TxLength, PUCHAR RxBuffer, PDWORD RxLength,
                               PSCARD_IO_HEADER RecvPci)
{
    CALL(Lun, vpcd.transmit(Lun, SendPci, TxBuffer, TxLength, RxBuffer, RxLength, RecvPci));
}

RESPONSECODE IFDHControl(DWORD Lun, DWORD dwControlCode, PUCHAR TxBuffer, DWORD TxLength,
                         PUCHAR RxBuffer, DWORD RxLength, LPDWORD pdwBytesReturned)
{
    CALL(Lun, vpcd.control(Lun, dwControlCode, TxBuffer, TxLength, RxBuffer, RxLength,
                           pdwBytesReturned));
}

RESPONSECODE IFDHICCPresence(DWORD Lun)
{
    pthread_mutex_t *m = enter(Lun);
    RESPONSECODE r;

    if (!m)
        return IFD_COMMUNICATION_ERROR;
    r = last_presence[Lun & 0xffff] = vpcd.presence(Lun);
    pthread_mutex_unlock(m);
    return r;
}
