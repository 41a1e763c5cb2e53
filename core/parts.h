/*
 * The parts the flow is made of, for `cacreg status` (which uses them
 * without a flow) and the tests: events, the reader watcher, the worker,
 * the token, certificates with their DER and trust, the portal client, and
 * the flow's own machine with the events it is fed. A front end that runs a
 * flow needs only cacreg.h.
 */
#ifndef CACREG_PARTS_H
#define CACREG_PARTS_H

#include <openssl/types.h>

#include "cacreg.h"

/* ---- events (core/event.c) ---- */

/*
 * What the core's threads tell the loop, as fixed-size records on a pipe
 * the loop polls with everything else. Read them with cacreg_event_read().
 */
typedef enum {
    CACREG_EV_READERS,      /* the reader list or a reader's state changed */
    CACREG_EV_CARD_IN,      /* a card was inserted (reader names it) */
    CACREG_EV_CARD_OUT,     /* a card was removed (reader names it) */
    CACREG_EV_PCSC_UP,      /* the smart-card service answers (again) */
    CACREG_EV_PCSC_DOWN,    /* pcscd is not running, or went away */
    CACREG_EV_PCSC_DENIED,  /* pcscd refuses this session (polkit) */
    CACREG_EV_JOB_DONE,     /* a worker job finished: job, status */
    CACREG_EV_POLL,         /* time to look at a forwarded card's slots again */
} cacreg_event_type;

typedef struct cacreg_event {
    cacreg_event_type type;
    int job;             /* CACREG_EV_JOB_DONE: the id cacreg_worker_submit gave */
    cacreg_err status;   /* CACREG_EV_JOB_DONE: what the job returned */
    char reader[128];
} cacreg_event;

/* Reads one event from fd; CACREG_ERR_NOT_FOUND when none is waiting. */
cacreg_err cacreg_event_read(int fd, cacreg_event *ev);

/*
 * Makes the pipe every core thread writes its events to: fds[0] (read,
 * non-blocking) for the loop's poll, fds[1] to hand to the watcher and the
 * worker. The caller closes both, after stopping those.
 */
cacreg_err cacreg_event_pipe(int fds[2]);

/* ---- readers (core/reader.c, pcsc-lite) ---- */

/*
 * A thread with its own PC/SC context that blocks in SCardGetStatusChange
 * (hot-plug through \\?PnP?\Notification) and writes events to a pipe. It
 * reconnects by itself, with a back-off, when pcscd goes away. Readers whose
 * name does not contain filter (if not empty) are ignored. Free with
 * cacreg_watcher_stop().
 */
typedef struct cacreg_watcher cacreg_watcher;

/* Starts the watcher, writing events to event_wr (see cacreg_event_pipe). */
cacreg_err cacreg_watcher_start(cacreg_watcher **out, const char *filter, int event_wr);

/* Stops the thread (SCardCancel and join) and frees it; NULL is allowed. */
void cacreg_watcher_stop(cacreg_watcher *w);

/* Copies the current state. */
void cacreg_watcher_snapshot(cacreg_watcher *w, cacreg_readers *out);

/*
 * Resets the card in reader (a PC/SC connection of its own, left with
 * SCARD_RESET_CARD), so that whatever the card had verified (its PIN) is
 * forgotten and no other program can sign with it. A reader without a card
 * is fine: a card taken out has lost its power, and its login.
 */
cacreg_err cacreg_reader_reset(const char *reader, char *err, size_t err_size);

/*
 * After a read that may have been cut short (the card pulled in the middle,
 * which OpenSC can answer with fewer certificates and no error): true when
 * the card is still in reader and nothing about it changes for wait_ms
 * (pcscd may take a poll interval to see a card go). Blocks: for a job.
 */
bool cacreg_reader_card_stays(const char *reader, int wait_ms);

/* ---- the worker (core/worker.c) ---- */

/*
 * One thread for the slow calls (module load, reading certificates, PIN
 * login, signing), so the loop never waits on a card. Each job ends with a
 * CACREG_EV_JOB_DONE event carrying its id and its result; whatever else
 * the job produces stays in its own struct until that event is read.
 */
typedef struct cacreg_worker cacreg_worker;
typedef cacreg_err (*cacreg_job_fn)(void *arg);

cacreg_err cacreg_worker_start(cacreg_worker **out, int event_wr);

/* Queues fn(arg); returns the job's id (> 0), or -1 when the queue is full. */
int cacreg_worker_submit(cacreg_worker *w, cacreg_job_fn fn, void *arg);

/*
 * Drops the queued jobs, lets the running one finish and joins, waiting at
 * most wait_ms (-1: for ever). False when the running job did not finish in
 * time (stuck in a card call): the thread is left running with w, which is
 * not freed; the process must wipe its secrets and _exit(). NULL is allowed.
 */
bool cacreg_worker_stop(cacreg_worker *w, int wait_ms);

/* ---- certificates with their DER, and trust (core/cert.c) ---- */

#define CACREG_CERT_DER_MAX 8192

/* A certificate's encoding, as the card holds it. */
typedef struct cacreg_cert_der {
    unsigned char bytes[CACREG_CERT_DER_MAX];
    size_t len;
} cacreg_cert_der;

/* Parses a DER certificate. CACREG_ERR_CERT (with a reason in err) if it is not one. */
cacreg_err cacreg_cert_parse(cacreg_cert *out, const unsigned char *der, size_t len, char *err,
                             size_t err_size);

/* Trust anchors and revocation data for pre-flight checks. Free with cacreg_trust_free(). */
typedef struct cacreg_trust cacreg_trust;

/* Loads the CA bundle and, if given, a CRL (PEM or DER). NULL paths are skipped. */
cacreg_err cacreg_trust_load(cacreg_trust **out, const char *ca_bundle, const char *crl_file,
                             char *err, size_t err_size);
void cacreg_trust_free(cacreg_trust *trust);

/*
 * Also asks an OCSP responder (http:// URL) during pre-flight, waiting at most
 * timeout_s. Pre-flight then does network I/O: run it in the worker.
 */
cacreg_err cacreg_trust_set_ocsp(cacreg_trust *trust, const char *url, int timeout_s);

/* Checks a certificate (parsed from der) at time now; detail gets a sentence for a person. */
cacreg_verdict cacreg_cert_preflight(const cacreg_cert *cert, const cacreg_cert_der *der,
                                     const cacreg_trust *trust, long long now, char *detail,
                                     size_t detail_size);

/* ---- tokens (core/token.c, libp11 over the PKCS#11 module) ---- */

/* Our OpenSC settings (what OPENSC_CONF points at): no PIN cache, no card cache on disk
 * unless file_cache, one slot per card, the card reset when OpenSC lets it go. The
 * text's length, 0 if size is too small. cacreg ssh gives them to its p11-kit server. */
size_t cacreg_opensc_conf_text(char *out, size_t size, bool file_cache);

/* The PKCS#11 module, loaded once per process. Free with cacreg_token_free(). */
typedef struct cacreg_token cacreg_token;

/*
 * Loads the module: module_path, or when empty the OpenSC module from
 * p11-kit's registry. Before loading, points OpenSC at our own settings
 * (OPENSC_CONF): no PIN cache, and no file cache unless file_cache.
 */
cacreg_err cacreg_token_load(cacreg_token **out, const char *module_path, bool file_cache,
                             int pin_max_tries, char *err, size_t err_size);
void cacreg_token_free(cacreg_token *t);
/*
 * cacreg_token_free, given at most wait_ms: the module's C_Finalize may never
 * return (a stuck module, a p11-kit server stuck in its own). False when it did
 * not: the thread is left to it, and the process must end with _exit().
 */
bool cacreg_token_free_within(cacreg_token *t, int wait_ms);

/* The module's path as loaded. */
const char *cacreg_token_module(const cacreg_token *t);

/*
 * Reads the token in the slot of reader (or the first token when reader is
 * NULL, for a module without PC/SC): label, serial, PIN state, certificates.
 * Served from memory after the first read, until cacreg_token_forget().
 */
cacreg_err cacreg_token_read(cacreg_token *t, const char *reader, cacreg_card *card, char *err,
                             size_t err_size);

/* The DER of the read card's certificate i; borrowed until cacreg_token_forget(). */
const cacreg_cert_der *cacreg_token_der(const cacreg_token *t, size_t i);

/*
 * Logs in with the PIN: sent to the card once, and wiped from pin whatever
 * happens. A PIN not in form, or a card known to be locked, sends nothing.
 * CACREG_OK, or CACREG_ERR_PIN_WRONG (tries_left says how many remain, -1
 * unknown), PIN_LOCKED, PIN_FORMAT, NO_CARD, CARD (err says how).
 */
cacreg_err cacreg_token_login(cacreg_token *t, const char *reader, cacreg_secret *pin,
                              int *tries_left, char *err, size_t err_size);

/*
 * The private key of the card's identity (PIV Authentication) certificate,
 * and that certificate, for TLS client authentication after a successful
 * login; never another key (the signature key would want the PIN before
 * every signature). Free both (EVP_PKEY_free, X509_free) before
 * cacreg_token_forget().
 */
cacreg_err cacreg_token_identity_key(cacreg_token *t, const char *reader, EVP_PKEY **key,
                                     X509 **cert, char *err, size_t err_size);

/* Forgets what was read and releases the slots (libp11's copy of the PIN with them). */
void cacreg_token_forget(cacreg_token *t);

/* True for p11-kit-client: the card is in a reader of another machine (cacreg ssh),
 * reached over a forwarded socket, and there is no PC/SC here to watch it with. */
bool cacreg_token_module_forwarded(const char *module_path);

/*
 * For such a module, the readers as its slots show them (each slot a reader, its
 * description the name; serials[i] the serial of the card in reader i, "" none),
 * listed afresh: only when no login's key is in use (the key lives in the slots this
 * releases). With no slot the module is initialised again (p11-kit-client's tokens are
 * those of its C_Initialize). CACREG_ERR_UNREACHABLE, out->status DOWN, when it cannot be
 * reached.
 */
#define CACREG_SERIAL_MAX 32
cacreg_err cacreg_token_slots(cacreg_token *t, cacreg_readers *out,
                              char serials[][CACREG_SERIAL_MAX], char *err, size_t err_size);

/* For such a module, after a read that may have been cut short: the card with serial
 * still in reader's slot (cacreg_reader_card_stays() for PC/SC). Lists the slots afresh. */
bool cacreg_token_card_stays(cacreg_token *t, const char *reader, const char *serial);

/* ---- the portal client (core/portal.c, libcurl + jansson) ---- */

/*
 * Talks docs/portal-api.md over HTTPS. Requests run on the client's own
 * thread (curl's multi interface there, cancellable at once): the card signs
 * inside the TLS handshake and OpenSSL cannot wait for it asynchronously, so
 * a request on the loop would freeze the screen. Each request ends with a
 * CACREG_EV_JOB_DONE event; its result is then read with
 * cacreg_portal_result_get(). One easy handle is kept for the whole flow, so
 * the connection and TLS session (and the card's one signature) are reused.
 */
typedef struct cacreg_portal cacreg_portal;

/* Starts the client for cfg's portal, ending requests as events on event_wr. */
cacreg_err cacreg_portal_new(cacreg_portal **out, const cacreg_config *cfg, int event_wr,
                             char *err, size_t err_size);

/*
 * Cancels what is in flight, stops the thread (waiting at most wait_ms),
 * wipes the session. False when the thread is stuck (in a card's signature):
 * p is then left to it, and the process must _exit(). NULL is allowed.
 */
bool cacreg_portal_free(cacreg_portal *p, int wait_ms);

/*
 * Presents this certificate and key as the TLS client identity from the next
 * connection on. The portal takes its own references to both and drops them
 * in cacreg_portal_forget_card(). Call with no request in flight.
 */
cacreg_err cacreg_portal_use_card(cacreg_portal *p, X509 *cert, EVP_PKEY *key);

/* Drops the card's key and every connection that used it (card removed). Call
 * with no request in flight (cancel it and wait for its event first). */
void cacreg_portal_forget_card(cacreg_portal *p);

/*
 * Starts a request; returns its job id (> 0), or -1 when one is already in
 * flight or it cannot be built. username is for PASSWORD_LOGIN and
 * PASSWORD_RESET, password (wiped here, whatever happens) for
 * PASSWORD_LOGIN and REGISTER; NULL otherwise.
 */
int cacreg_portal_request(cacreg_portal *p, cacreg_request kind, const char *username,
                          cacreg_secret *password);

/* Aborts the request in flight; it ends with CACREG_ERR_CANCELLED. */
void cacreg_portal_cancel(cacreg_portal *p);

/* Copies the result of the request that ended last. */
void cacreg_portal_result_get(cacreg_portal *p, cacreg_portal_result *out);

/* ---- the flow's machine (core/flow.c), fed by the engine or by a test ---- */

/*
 * What the flow asks of the world. The engine's functions run the worker,
 * the portal client and the token; a unit test's record the calls. Functions
 * that start a job return its id (> 0), which comes back in the event that
 * ends it, or -1 when it could not be started.
 */
typedef struct cacreg_flow_io {
    void *ctx;
    long long (*now_ms)(void *ctx);                 /* a monotonic clock */
    int (*load_module)(void *ctx);
    int (*read_card)(void *ctx, const char *reader);
    /* Takes the PIN's bytes (pin is wiped); the job ends with a FLOW_EV_PIN_CHECKED. */
    int (*check_pin)(void *ctx, const char *reader, cacreg_secret *pin);
    /* Releases the card's login and what was read (libp11's slots); with reset, the
     * card in reader is reset too, so that it keeps no verified PIN. */
    int (*forget_card)(void *ctx, const char *reader, bool reset);
    /* Gives the portal the identity key of the last right PIN; no request in flight. */
    cacreg_err (*use_key)(void *ctx);
    /* Drops that key from the portal and every connection made with it. */
    void (*drop_key)(void *ctx);
    int (*request)(void *ctx, cacreg_request kind, const char *username, cacreg_secret *password);
    void (*cancel)(void *ctx);
} cacreg_flow_io;

typedef enum {
    CACREG_FLOW_EV_READERS,     /* readers, card_out */
    CACREG_FLOW_EV_LOADED,      /* err, message, module_path */
    CACREG_FLOW_EV_CARD_READ,   /* err, message, card, chosen, verdict, verdict_detail */
    CACREG_FLOW_EV_PIN_CHECKED, /* err (OK, PIN_*, NO_CARD, CARD, NO_KEY), message, tries_left */
    CACREG_FLOW_EV_FORGOTTEN,   /* err */
    CACREG_FLOW_EV_ANSWER,      /* answer */
    CACREG_FLOW_EV_TICK,        /* time passed: timers are checked */
} cacreg_flow_event_type;

/* One thing that happened; pointers are borrowed for the call. */
typedef struct cacreg_flow_event {
    cacreg_flow_event_type type;
    int job;                              /* the id the io gave when the job started */
    cacreg_err err;                       /* how the job ended */
    const char *message;                  /* its sentence, or NULL */
    const cacreg_readers *readers;        /* READERS: the watcher's snapshot */
    const char *card_out;                 /* READERS: the reader whose card went, or NULL */
    const char *module_path;              /* LOADED */
    const cacreg_card *card;              /* CARD_READ */
    size_t chosen;                        /* CARD_READ: the identity certificate, or ncerts */
    cacreg_verdict verdict;               /* CARD_READ: its pre-flight */
    const char *verdict_detail;
    int tries_left;                       /* PIN_CHECKED */
    const cacreg_portal_result *answer;   /* ANSWER */
} cacreg_flow_event;

/*
 * Makes a flow at START that acts through io (copied) for cfg (copied); it
 * asks io to load the module. NULL when locked memory is refused. Free with
 * cacreg_flow_free().
 */
cacreg_flow *cacreg_flow_new(const cacreg_config *cfg, const cacreg_flow_io *io);

/* Wipes the secrets and frees the flow; the io is not called. NULL is allowed. */
void cacreg_flow_free(cacreg_flow *f);

/* Feeds one event; the state changes as it says. */
void cacreg_flow_feed(cacreg_flow *f, const cacreg_flow_event *ev);

#endif
