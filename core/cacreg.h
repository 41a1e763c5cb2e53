/*
 * cacreg core: the public interface the front ends (tui/, kiosk/) build on.
 * The core never draws, never prints to the terminal and never exits the
 * process: it returns a cacreg_err and, where it helps, a sentence in a
 * caller-owned buffer.
 */
#ifndef CACREG_H
#define CACREG_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/types.h>

/* Every error the core reports; foreign codes are translated at the edge. */
typedef enum {
    CACREG_OK = 0,
    CACREG_ERR_NOMEM,     /* out of memory, or locked memory refused */
    CACREG_ERR_TOO_LONG,  /* input longer than its fixed maximum */
    CACREG_ERR_INVALID,   /* input of the wrong form */
    CACREG_ERR_SYSTEM,    /* an operating-system call failed */
    CACREG_ERR_NOT_FOUND, /* no such file, reader, card or object */
    CACREG_ERR_CONFIG,    /* a configuration file is malformed */
    CACREG_ERR_CERT,      /* a certificate cannot be read */
} cacreg_err;

/* A short, human sentence for an error code; never NULL, static storage. */
const char *cacreg_strerror(cacreg_err err);

/*
 * Makes the process unfit to leak secrets: no core dumps, not ptrace-able by
 * the same user (PR_SET_DUMPABLE). Call first thing in main().
 */
cacreg_err cacreg_harden_process(void);

/* ---- secrets (core/secret.c) ---- */

/* Room for the longest PIN or password a person may type, in bytes. */
#define CACREG_SECRET_MAX 255

/*
 * One PIN or password, held in its own locked (mlock), never-dumped page and
 * wiped with OPENSSL_cleanse when cleared or freed. Free with
 * cacreg_secret_free().
 */
typedef struct cacreg_secret cacreg_secret;

/* Makes an empty secret in locked memory; NULL when memory cannot be locked. */
cacreg_secret *cacreg_secret_new(void);

/* Wipes and frees the secret; NULL is allowed. */
void cacreg_secret_free(cacreg_secret *secret);

/*
 * Appends bytes typed or pasted by a person. Nothing is appended when the
 * result would pass CACREG_SECRET_MAX (CACREG_ERR_TOO_LONG): a paste is taken
 * whole or not at all.
 */
cacreg_err cacreg_secret_append(cacreg_secret *secret, const char *bytes, size_t len);

/* Removes the last character typed (one UTF-8 sequence); false if empty. */
bool cacreg_secret_backspace(cacreg_secret *secret);

/* Wipes the contents; the secret stays usable. */
void cacreg_secret_clear(cacreg_secret *secret);

/* Length in bytes. */
size_t cacreg_secret_len(const cacreg_secret *secret);

/* The bytes, NUL-terminated; borrowed until the next call on this secret. */
const char *cacreg_secret_data(const cacreg_secret *secret);

/* True when the secret is a CAC PIN in form: 6 to 8 ASCII digits. */
bool cacreg_secret_is_pin(const cacreg_secret *secret);

/* ---- certificates (core/cert.c) ---- */

/* What a certificate on a CAC is for. */
typedef enum {
    CACREG_CERT_IDENTITY,         /* PIV Authentication: the one to log in and register with */
    CACREG_CERT_EMAIL_SIGNATURE,  /* signs email */
    CACREG_CERT_EMAIL_ENCRYPTION, /* decrypts email */
    CACREG_CERT_OTHER,
} cacreg_cert_kind;

/* Extended key usages we look at. */
enum {
    CACREG_EKU_CLIENT_AUTH = 1u << 0,
    CACREG_EKU_SMARTCARD_LOGON = 1u << 1,
    CACREG_EKU_EMAIL = 1u << 2,
    CACREG_EKU_ANY = 1u << 3, /* some other usage */
};

/* Key usages, as X.509 numbers them. */
enum {
    CACREG_KU_DIGITAL_SIGNATURE = 1u << 0,
    CACREG_KU_NON_REPUDIATION = 1u << 1,
    CACREG_KU_KEY_ENCIPHERMENT = 1u << 2,
};

#define CACREG_CERT_DER_MAX 8192

/* One certificate, parsed into plain fields. Empty strings where absent. */
typedef struct cacreg_cert {
    char holder[128];     /* "JANE Q DOE", from the CN LAST.FIRST.MI.EDIPI */
    char common_name[128];
    char subject[512];    /* RFC 2253 */
    char issuer[512];
    char issuer_cn[128];
    char serial[80];      /* upper-case hex */
    char edipi[16];       /* from the UPN EDIPI@mil, else from the CN */
    char upn[128];
    char email[128];
    bool edipi_mismatch;  /* the CN and the UPN name different EDIPIs */
    cacreg_cert_kind kind;
    unsigned key_usage;   /* CACREG_KU_* */
    unsigned eku;         /* CACREG_EKU_* */
    long long not_before; /* seconds since the epoch, UTC */
    long long not_after;
    char sha256[65];      /* of the DER, upper-case hex */
    unsigned char der[CACREG_CERT_DER_MAX];
    size_t der_len;
} cacreg_cert;

/* Parses a DER certificate. CACREG_ERR_CERT (with a reason in err) if it is not one. */
cacreg_err cacreg_cert_parse(cacreg_cert *out, const unsigned char *der, size_t len, char *err,
                             size_t err_size);

/* Whole days of validity left at now (negative once expired). */
long cacreg_cert_days_left(const cacreg_cert *cert, long long now);

/* A short name for a kind: "identity", "email signature", ... */
const char *cacreg_cert_kind_name(cacreg_cert_kind kind);

/*
 * The certificate a person is told to choose ("the one with your name", the
 * identity one): the index of the identity certificate valid longest, or n
 * when there is none.
 */
size_t cacreg_cert_choose(const cacreg_cert *certs, size_t n);

/* Why this certificate is not the one to register, in plain words; NULL if it is. */
const char *cacreg_cert_why_not(const cacreg_cert *cert);

/* The pre-flight verdict on a certificate, before anything goes to a portal. */
typedef enum {
    CACREG_VERDICT_OK,
    CACREG_VERDICT_UNTRUSTED,          /* no chain to the configured CA bundle */
    CACREG_VERDICT_NOT_YET_VALID,
    CACREG_VERDICT_EXPIRED,
    CACREG_VERDICT_REVOKED,
    CACREG_VERDICT_REVOCATION_UNKNOWN, /* a check is configured but cannot answer */
    CACREG_VERDICT_WRONG_KIND,         /* not the identity certificate */
    CACREG_VERDICT_EDIPI_MISMATCH,     /* CN and UPN disagree */
    CACREG_VERDICT_NO_TRUST_STORE,     /* the CA bundle cannot be read */
} cacreg_verdict;

/* A machine name for a verdict: "ok", "untrusted", "expired", ... */
const char *cacreg_verdict_name(cacreg_verdict v);

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

/* Checks a certificate at time now; detail gets a sentence for a person. */
cacreg_verdict cacreg_cert_preflight(const cacreg_cert *cert, const cacreg_trust *trust,
                                     long long now, char *detail, size_t detail_size);

/* ---- events (core/event.c) ---- */

/*
 * What the core tells a front end, as fixed-size records on a pipe the front
 * end polls with everything else. Read them with cacreg_event_read().
 */
typedef enum {
    CACREG_EV_READERS,      /* the reader list or a reader's state changed */
    CACREG_EV_CARD_IN,      /* a card was inserted (reader names it) */
    CACREG_EV_CARD_OUT,     /* a card was removed (reader names it) */
    CACREG_EV_PCSC_UP,      /* the smart-card service answers (again) */
    CACREG_EV_PCSC_DOWN,    /* pcscd is not running, or went away */
    CACREG_EV_PCSC_DENIED,  /* pcscd refuses this session (polkit) */
    CACREG_EV_JOB_DONE,     /* a worker job finished: job, status */
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
 * non-blocking) for the front end's poll, fds[1] to hand to the watcher and
 * the worker. The caller closes both, after stopping those.
 */
cacreg_err cacreg_event_pipe(int fds[2]);

/* ---- readers (core/reader.c, pcsc-lite) ---- */

typedef enum {
    CACREG_PCSC_STARTING, /* not asked yet */
    CACREG_PCSC_UP,
    CACREG_PCSC_DOWN,     /* pcscd not running, or restarting */
    CACREG_PCSC_DENIED,   /* pcscd runs but refuses this session */
} cacreg_pcsc_status;

#define CACREG_MAX_READERS 8

/* One reader as last seen. */
typedef struct cacreg_reader {
    char name[128];
    bool card_present;
    bool exclusive;   /* another program holds the card exclusively */
    bool mute;        /* a card that does not answer */
    unsigned char atr[36];
    size_t atr_len;
} cacreg_reader;

/* What the watcher last saw; a plain copy for the front end. */
typedef struct cacreg_readers {
    cacreg_pcsc_status status;
    char detail[512];  /* why, for DOWN and DENIED */
    size_t count;
    cacreg_reader readers[CACREG_MAX_READERS];
} cacreg_readers;

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
 * The polkit rule an administrator adds so that user may use the card
 * readers from a session pcscd otherwise refuses (SSH): the file to write
 * and its text, for CACREG_PCSC_DENIED.
 */
void cacreg_pcsc_polkit_rule(const char *user, char *path, size_t path_size, char *rule,
                             size_t rule_size);

/* ---- the worker (core/worker.c) ---- */

/*
 * One thread for the slow calls (module load, reading certificates, PIN
 * login, signing), so the front end's loop never waits on a card. Each job
 * ends with a CACREG_EV_JOB_DONE event carrying its id and its result.
 */
typedef struct cacreg_worker cacreg_worker;
typedef cacreg_err (*cacreg_job_fn)(void *arg);

cacreg_err cacreg_worker_start(cacreg_worker **out, int event_wr);

/* Queues fn(arg); returns the job's id (> 0), or -1 when the queue is full. */
int cacreg_worker_submit(cacreg_worker *w, cacreg_job_fn fn, void *arg);

/* Lets the running job finish, drops the queued ones, joins; NULL is allowed. */
void cacreg_worker_stop(cacreg_worker *w);

/* ---- tokens (core/token.c, libp11 over the PKCS#11 module) ---- */

#define CACREG_MAX_CERTS 6

typedef enum {
    CACREG_PIN_UNKNOWN,   /* no token, or not asked */
    CACREG_PIN_OK,        /* no failed tries known */
    CACREG_PIN_COUNT_LOW, /* a wrong PIN was entered since the last right one */
    CACREG_PIN_FINAL_TRY, /* one more wrong PIN locks the card */
    CACREG_PIN_LOCKED,    /* locked: the CAC office re-sets it */
} cacreg_pin_state;

/* A card's token, as read once per insertion. */
typedef struct cacreg_token_info {
    char reader[128];
    char slot[128];      /* the PKCS#11 slot description */
    char label[64];
    char manufacturer[64];
    char model[32];
    char serial[32];
    bool recognised;     /* a CAC or PIV token with certificates */
    cacreg_pin_state pin;
    int tries_left;      /* -1 when the flags cannot tell */
    size_t ncerts;
    cacreg_cert certs[CACREG_MAX_CERTS];
    char cert_labels[CACREG_MAX_CERTS][64];
    char cert_ids[CACREG_MAX_CERTS][32]; /* hex */
} cacreg_token_info;

typedef enum {
    CACREG_LOGIN_OK,
    CACREG_LOGIN_WRONG_PIN,  /* tries_left says how many remain (-1: unknown) */
    CACREG_LOGIN_LOCKED,     /* nothing was sent: or the card says it is locked */
    CACREG_LOGIN_BAD_FORMAT, /* not 6-8 digits: nothing was sent */
    CACREG_LOGIN_NO_CARD,
    CACREG_LOGIN_ERROR,      /* the module failed; err says how */
} cacreg_login_result;

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

/* The module's path as loaded. */
const char *cacreg_token_module(const cacreg_token *t);

/*
 * Reads the token in the slot of reader (or the first token when reader is
 * NULL, for a module without PC/SC): label, serial, PIN state, certificates.
 * Served from memory after the first read, until cacreg_token_forget().
 */
cacreg_err cacreg_token_read(cacreg_token *t, const char *reader, cacreg_token_info *info,
                             char *err, size_t err_size);

/*
 * Logs in with the PIN: sent to the card once, and wiped from pin whatever
 * happens. A PIN not in form, or a card known to be locked, sends nothing.
 */
cacreg_login_result cacreg_token_login(cacreg_token *t, const char *reader, cacreg_secret *pin,
                                       int *tries_left, char *err, size_t err_size);

/*
 * The private key of the card's identity (PIV Authentication) certificate,
 * for TLS client authentication, after a successful login; never another
 * key (the signature key would want the PIN before every signature). Free
 * with EVP_PKEY_free(), before cacreg_token_forget().
 */
cacreg_err cacreg_token_identity_key(cacreg_token *t, const char *reader, EVP_PKEY **key,
                                     char *err, size_t err_size);

/* Forgets what was read and releases the slots (libp11's copy of the PIN with them). */
void cacreg_token_forget(cacreg_token *t);

/* ---- configuration (core/config.c) ---- */

#define CACREG_PATH_MAX 1024
#define CACREG_URL_MAX 512

/* Everything a site sets; cacreg_config_defaults() gives the built-in values. */
typedef struct cacreg_config {
    char portal_url[CACREG_URL_MAX];     /* https://.../api/v1/ */
    char ca_bundle[CACREG_PATH_MAX];     /* PEM: issuers of cards and of the portal */
    char pkcs11_module[CACREG_PATH_MAX]; /* "" = OpenSC found through p11-kit */
    char reader_filter[128];             /* substring of the reader name, "" = any */
    int connect_timeout_s;
    int total_timeout_s;
    int idle_timeout_s;                  /* a flow left alone this long starts over */
    char crl_file[CACREG_PATH_MAX];      /* "" = no CRL check */
    char ocsp_url[CACREG_URL_MAX];       /* "" = no OCSP check */
    char portal_pins[CACREG_URL_MAX];    /* "sha256//B64;sha256//B64" pinned portal keys, "" = none */
    int pin_max_tries;                   /* the card's PIN try counter when full (CAC: 3) */
    bool opensc_file_cache;              /* let OpenSC cache card files on disk */
} cacreg_config;

/* Fills in the built-in defaults. */
void cacreg_config_defaults(cacreg_config *cfg);

/*
 * Parses "key = value" lines (and "# comment" lines) from text, naming
 * origin in messages. On CACREG_ERR_CONFIG, err holds "origin:line: what was
 * expected"; cfg keeps the values set before the bad line.
 */
cacreg_err cacreg_config_parse(cacreg_config *cfg, const char *text, size_t len,
                               const char *origin, char *err, size_t err_size);

/* Sets one key, as a file line or a command-line option would. */
cacreg_err cacreg_config_set(cacreg_config *cfg, const char *key, const char *value,
                             char *err, size_t err_size);

/* Reads one file; CACREG_ERR_NOT_FOUND when it does not exist. */
cacreg_err cacreg_config_load_file(cacreg_config *cfg, const char *path, char *err,
                                   size_t err_size);

/*
 * Reads /etc/cacreg/cacreg.conf, then (unless kiosk) the user's
 * $XDG_CONFIG_HOME/cacreg/cacreg.conf; missing files are skipped.
 */
cacreg_err cacreg_config_load_standard(cacreg_config *cfg, bool kiosk, char *err,
                                       size_t err_size);

/* ---- the portal client (core/portal.c, libcurl + jansson) ---- */

/*
 * Talks docs/portal-api.md over HTTPS. Requests run on the client's own
 * thread (curl's multi interface there, cancellable at once): the card signs
 * inside the TLS handshake and OpenSSL cannot wait for it asynchronously, so
 * a request on the front end's loop would freeze the screen. Each request
 * ends with a CACREG_EV_JOB_DONE event; its result is then read with
 * cacreg_portal_result(). One easy handle is kept for the whole flow, so the
 * connection and TLS session (and the card's one signature) are reused.
 */
typedef struct cacreg_portal cacreg_portal;

typedef enum {
    CACREG_PORTAL_OK,         /* the portal answered yes */
    CACREG_PORTAL_REFUSED,    /* the portal answered no: error says why (docs/portal-api.md) */
    CACREG_PORTAL_UNREACHABLE, /* no answer: connection refused, timed out, cut */
    CACREG_PORTAL_TLS,        /* the server's certificate is not trusted, or TLS failed */
    CACREG_PORTAL_BAD_ANSWER, /* an answer that is not the portal API (5xx page, malformed, huge) */
    CACREG_PORTAL_CANCELLED,
} cacreg_portal_outcome;

/* What one request brought back; plain fields, "" where absent. */
typedef struct cacreg_portal_result {
    cacreg_portal_outcome outcome;
    long http_status;
    char error[64];           /* the portal's error code, for REFUSED */
    char message[512];        /* the portal's words, or ours for the other outcomes */
    int attempts_left;        /* -1 unless the portal said */
    long long server_time;    /* its Date header (0: none), for clock skew */
    long long clock_skew_s;   /* this machine's clock minus the portal's (0 if unknown) */
    char username[64], display_name[128], account_type[16], edipi[16];
    char password_expires[32];
    bool registered;
    char registration[16];    /* registered | replaced | unchanged */
    char cert_subject[512], cert_serial[80], cert_not_after[32], registered_at[32];
    char replaced_serial[80];
} cacreg_portal_result;

/* Starts the client for cfg's portal, ending requests as events on event_wr. */
cacreg_err cacreg_portal_new(cacreg_portal **out, const cacreg_config *cfg, int event_wr,
                             char *err, size_t err_size);

/* Cancels what is in flight, stops the thread, wipes the session; NULL is allowed. */
void cacreg_portal_free(cacreg_portal *p);

/*
 * Presents this certificate and key as the TLS client identity from the next
 * connection on (cacreg_token_identity_key gives the key). The portal takes a
 * reference to key and drops it in cacreg_portal_forget_card().
 */
cacreg_err cacreg_portal_use_card(cacreg_portal *p, const cacreg_cert *cert, EVP_PKEY *key);

/* Drops the card's key and every connection that used it (card removed). Call
 * with no request in flight (cancel it and wait for its event first). */
void cacreg_portal_forget_card(cacreg_portal *p);

/* Requests, one at a time; each returns a job id (> 0), or -1 when one is
 * already in flight. Secrets are wiped once sent, whatever the answer. */
int cacreg_portal_cac_login(cacreg_portal *p);
int cacreg_portal_password_login(cacreg_portal *p, const char *username, cacreg_secret *password);
int cacreg_portal_get_registration(cacreg_portal *p);
int cacreg_portal_clear_registration(cacreg_portal *p);
int cacreg_portal_register(cacreg_portal *p, cacreg_secret *password);
int cacreg_portal_logout(cacreg_portal *p);
int cacreg_portal_password_reset(cacreg_portal *p, const char *username);

/* Aborts the request in flight; it ends with CACREG_PORTAL_CANCELLED. */
void cacreg_portal_cancel(cacreg_portal *p);

/* Copies the result of the request that ended last. */
void cacreg_portal_result_get(cacreg_portal *p, cacreg_portal_result *out);

/* ---- diagnosis (core/diagnose.c) ---- */

/* A failure in words a person at a kiosk can act on. Static strings. */
typedef struct cacreg_diagnosis {
    const char *cause; /* one sentence: what is wrong */
    const char *steps; /* what fixes it */
} cacreg_diagnosis;

/* For a pre-flight verdict on the card's certificate. */
cacreg_diagnosis cacreg_diagnose_verdict(cacreg_verdict v);

/* For a portal answer that was not OK (a 403 reason, a lock, a network failure). */
cacreg_diagnosis cacreg_diagnose_portal(const cacreg_portal_result *r);

/* For a PIN login that failed. */
cacreg_diagnosis cacreg_diagnose_login(cacreg_login_result r);

/*
 * When this machine's clock is more than five minutes off the portal's (the
 * usual cause of "not yet valid" and some TLS failures), a sentence saying so
 * goes into buf and true is returned.
 */
bool cacreg_diagnose_clock(const cacreg_portal_result *r, char *buf, size_t size);


/* ---- the flows (core/flow.c) ---- */

/*
 * The help article's paths as one state machine, for every front end: the
 * front end polls cacreg_flow_fd() with its keyboard, calls
 * cacreg_flow_handle() when it is readable (or when cacreg_flow_timeout_ms()
 * has passed), draws cacreg_flow_state(), and turns keys into the calls
 * below. The flow owns the threads, the card, the portal client and the
 * secrets; nothing in it blocks.
 */
typedef struct cacreg_flow cacreg_flow;

typedef enum {
    CACREG_STEP_START,            /* choose a way in */
    CACREG_STEP_INSERT_CARD,      /* the way chosen needs a card in a reader */
    CACREG_STEP_BUSY,             /* working: state.busy says on what */
    CACREG_STEP_PIN,              /* the card's PIN, typed into cacreg_flow_secret() */
    CACREG_STEP_CREDENTIALS,      /* username and password (cacreg_flow_secret()) */
    CACREG_STEP_REGISTRATION,     /* what the account has registered: clear, register */
    CACREG_STEP_CONFIRM_CLEAR,    /* "clear the registered information?" */
    CACREG_STEP_CHOOSE_CERT,      /* which certificate to register */
    CACREG_STEP_CONFIRM_PASSWORD, /* the portal password confirms the registration */
    CACREG_STEP_RESET,            /* username, to ask for a new password */
    CACREG_STEP_DONE,             /* state.done says what was done */
    CACREG_STEP_FAILED,           /* state.diagnosis says why */
} cacreg_step;

typedef enum {
    CACREG_DONE_NONE,
    CACREG_DONE_CAC_LOGIN,  /* logged in with the card; state.last has the registration */
    CACREG_DONE_REGISTERED, /* registered from a password session; state.last */
    CACREG_DONE_RESET,      /* a new password was asked for */
} cacreg_done;

/* What kind of failure, for exit statuses and icons; NONE when all is well. */
typedef enum {
    CACREG_FAIL_NONE,
    CACREG_FAIL_NO_CARD,    /* no card, or it was removed */
    CACREG_FAIL_MIDDLEWARE, /* pcscd or the PKCS#11 module */
    CACREG_FAIL_CARD,       /* the card: certificate, PIN wrong or locked */
    CACREG_FAIL_INPUT,      /* what was typed is not of the right form; nothing sent */
    CACREG_FAIL_REFUSED,    /* the portal said no */
    CACREG_FAIL_PORTAL,     /* the portal cannot be reached or answered nonsense */
    CACREG_FAIL_IDLE,       /* left alone for idle_timeout: everything was cleared */
} cacreg_fail;

/* Everything a front end draws; plain data, valid until the next call on the flow. */
typedef struct cacreg_flow_state {
    cacreg_step step;
    unsigned long generation;   /* changes whenever anything below does */
    const char *busy;           /* STEP_BUSY: "Reading your card", ... */
    bool register_path;         /* the password path (register), not a CAC login */

    /* prerequisites, live */
    bool module_loading;
    bool module_loaded;
    char module[CACREG_PATH_MAX];
    char module_error[512];
    cacreg_readers readers;
    char reader[128];           /* the reader with the card in use; "" when none */
    bool card_reading;
    bool card_read;             /* info below is the card in reader */
    char card_error[512];
    cacreg_token_info info;
    size_t chosen;              /* the identity certificate (info.ncerts: none) */
    cacreg_verdict verdict;     /* pre-flight of the chosen certificate */
    char verdict_detail[512];
    cacreg_login_result login;  /* the last PIN try */
    int tries_left;             /* after the last PIN try; -1 unknown */

    /* the portal */
    char username[128];
    bool session;               /* logged in with a password session */
    cacreg_portal_result account;      /* the password login's answer */
    cacreg_portal_result registration; /* what the account has registered */
    cacreg_portal_result last;         /* the last answer */
    bool requesting;            /* a portal request (a logout too) is in flight */

    /* outcome */
    cacreg_done done;
    cacreg_fail fail;           /* at FAILED, or at an input step after a wrong try */
    const char *stage;          /* where it failed: "module", "pcsc", "card", "preflight",
                                   "pin", "key", "portal", "input", "idle" */
    cacreg_diagnosis diagnosis;
    char detail[512];
    char clock[256];            /* a clock-skew hint, or "" */
    cacreg_diagnosis notice;    /* said once at START: why it came back there; cause NULL if none */
    cacreg_fail notice_fail;
} cacreg_flow_state;

/* Starts the threads and loads the module (in the background) for cfg. */
cacreg_err cacreg_flow_new(cacreg_flow **out, const cacreg_config *cfg, char *err,
                           size_t err_size);

/* Stops everything, wipes every secret, releases the card; NULL is allowed. */
void cacreg_flow_free(cacreg_flow *f);

/* The descriptor to poll for reading. */
int cacreg_flow_fd(const cacreg_flow *f);

/* Milliseconds until the flow wants cacreg_flow_handle() anyway (idle timeout); -1: never. */
int cacreg_flow_timeout_ms(const cacreg_flow *f);

/* Takes what the threads reported and what time has done; never blocks. */
void cacreg_flow_handle(cacreg_flow *f);

/* True when no card job and no portal request is in flight (a logout sent, say). */
bool cacreg_flow_settled(const cacreg_flow *f);

/* The person did something (a key): the idle timer starts again. */
void cacreg_flow_touch(cacreg_flow *f);

const cacreg_flow_state *cacreg_flow_state_get(const cacreg_flow *f);

/*
 * The locked buffer the current step's secret is typed into (the PIN at
 * STEP_PIN, the password at STEP_CREDENTIALS and STEP_CONFIRM_PASSWORD), or
 * NULL. It is wiped when the step is left, whichever way.
 */
cacreg_secret *cacreg_flow_secret(cacreg_flow *f);

/* The actions; each returns false (and changes nothing) when the step does not take it. */
bool cacreg_flow_cac_login(cacreg_flow *f);                   /* START */
bool cacreg_flow_password_login(cacreg_flow *f);              /* START -> CREDENTIALS */
bool cacreg_flow_reset(cacreg_flow *f);                       /* START -> RESET */
bool cacreg_flow_submit(cacreg_flow *f, const char *username); /* PIN, CREDENTIALS, CONFIRM_PASSWORD, RESET */
bool cacreg_flow_register(cacreg_flow *f);                    /* REGISTRATION -> CHOOSE_CERT */
bool cacreg_flow_clear(cacreg_flow *f);                       /* REGISTRATION -> CONFIRM_CLEAR */
bool cacreg_flow_confirm(cacreg_flow *f, bool yes);           /* CONFIRM_CLEAR */
bool cacreg_flow_choose(cacreg_flow *f, size_t cert);         /* CHOOSE_CERT -> PIN */

/* Esc: one step back, cancelling what is in flight; never out of the program. */
void cacreg_flow_back(cacreg_flow *f);

/* Back to START for the next person: logs out, forgets the card's login, wipes everything. */
void cacreg_flow_restart(cacreg_flow *f);

#endif
