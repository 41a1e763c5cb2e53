/*
 * cacreg core: what a front end (tui/, kiosk/) needs. The flow, the secrets
 * typed into it, the configuration, the diagnoses, and the plain data the
 * flow's state carries. The parts the flow owns (threads, the card, the
 * portal client) are in parts.h, for `cacreg status` and the tests.
 *
 * The core never draws, never prints to the terminal and never exits the
 * process: it returns a cacreg_err and, where it helps, a sentence in a
 * caller-owned buffer.
 */
#ifndef CACREG_H
#define CACREG_H

#include <stdbool.h>
#include <stddef.h>

/* Every error the core reports; foreign codes are translated at the edge. */
typedef enum {
    CACREG_OK = 0,
    CACREG_ERR_NOMEM,       /* out of memory, or locked memory refused */
    CACREG_ERR_TOO_LONG,    /* input longer than its fixed maximum */
    CACREG_ERR_INVALID,     /* input of the wrong form */
    CACREG_ERR_SYSTEM,      /* an operating-system call failed */
    CACREG_ERR_NOT_FOUND,   /* no such file, reader, card or object */
    CACREG_ERR_CONFIG,      /* a configuration file is malformed */
    CACREG_ERR_CERT,        /* a certificate cannot be read */
    /* the card */
    CACREG_ERR_NO_CARD,     /* no card, or it was removed */
    CACREG_ERR_CARD,        /* the card or its module failed */
    CACREG_ERR_PIN_WRONG,   /* the card refused the PIN: a try was used */
    CACREG_ERR_PIN_LOCKED,  /* the PIN is locked: nothing was sent */
    CACREG_ERR_PIN_FORMAT,  /* not 6-8 digits: nothing was sent */
    CACREG_ERR_NO_KEY,      /* the identity certificate's key is not on the card */
    CACREG_ERR_TIMEOUT,     /* the card did not answer in time */
    CACREG_ERR_NOT_CAC,     /* a card the PKCS#11 module does not know: not a CAC */
    CACREG_ERR_KEY_UNSUPPORTED, /* the identity key is of a kind the module cannot use here */
    /* the portal */
    CACREG_ERR_REFUSED,     /* the portal answered no: the answer's code says why */
    CACREG_ERR_UNREACHABLE, /* no answer: refused, timed out, cut off */
    CACREG_ERR_TLS,         /* the server is not trusted, or TLS failed */
    CACREG_ERR_BAD_ANSWER,  /* an answer that is not the portal API */
    CACREG_ERR_CANCELLED,   /* cancelled before it ended */
} cacreg_err;

/* A short, human sentence for an error code; never NULL, static storage. */
const char *cacreg_strerror(cacreg_err err);

/*
 * Makes the process unfit to leak secrets: no core dumps, not ptrace-able by
 * the same user (PR_SET_DUMPABLE). Call first thing in main().
 */
cacreg_err cacreg_harden_process(void);

/*
 * For a kiosk, before any library reads its settings: the environment is
 * built from nothing but TERM, the locale, TZ and a fixed PATH, so that
 * OPENSSL_CONF, OPENSC_*, P11_KIT_*, PCSCLITE_*, HOME and XDG_* (a user's
 * p11-kit modules), LD_* and proxies have no effect.
 */
cacreg_err cacreg_clean_environment(void);

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

/* Moves src's bytes to the end of dst inside locked memory; src is wiped. */
cacreg_err cacreg_secret_move(cacreg_secret *dst, cacreg_secret *src);

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
    int card_timeout_s;                  /* a card job taking longer is given up */
    char crl_file[CACREG_PATH_MAX];      /* "" = no CRL check */
    char ocsp_url[CACREG_URL_MAX];       /* "" = no OCSP check */
    char portal_pins[CACREG_URL_MAX];    /* "sha256//B64;sha256//B64" pinned portal keys, "" = none */
    int pin_max_tries;                   /* the card's PIN try counter when full (CAC: 3) */
    bool opensc_file_cache;              /* let OpenSC cache card files on disk */
    /* the kiosk (cacreg-kiosk and cacreg --kiosk) */
    char station_name[128];              /* shown on the idle screen */
    char station_help[512];              /* the office's words on the idle screen */
    int session_timeout_s;               /* a session running longer is stuck: replaced */
    bool audit_identity;                 /* the audit log names the card's holder and EDIPI */
    char session_program[CACREG_PATH_MAX]; /* the front end the launcher runs per person */
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

/*
 * What a kiosk changes in its configuration: the PKCS#11 module by absolute
 * path (Debian's OpenSC module unless one is set), never found through
 * p11-kit's registry, which reads a user's modules too.
 */
void cacreg_config_lock_down(cacreg_config *cfg);

/* Reads one file; CACREG_ERR_NOT_FOUND when it does not exist. */
cacreg_err cacreg_config_load_file(cacreg_config *cfg, const char *path, char *err,
                                   size_t err_size);

/* The system-wide configuration file. */
#define CACREG_CONFIG_SYSTEM "/etc/cacreg/cacreg.conf"

/*
 * For a kiosk's configuration: CACREG_OK when path and its directory are owned
 * by root and writable by no one else (as doas checks its own);
 * CACREG_ERR_NOT_FOUND when path does not exist; else CACREG_ERR_CONFIG and why.
 */
cacreg_err cacreg_config_check_owner(const char *path, char *err, size_t err_size);

/*
 * Reads CACREG_CONFIG_SYSTEM (for a kiosk, only if cacreg_config_check_owner()
 * takes it), then (unless kiosk) the user's
 * $XDG_CONFIG_HOME/cacreg/cacreg.conf; missing files are skipped.
 */
cacreg_err cacreg_config_load_standard(cacreg_config *cfg, bool kiosk, char *err,
                                       size_t err_size);

/* ---- what a card holds (core/cert.c, core/token.c) ---- */

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

/* One certificate, parsed into plain fields (what a screen shows). "" where absent. */
typedef struct cacreg_cert {
    char holder[128];     /* "JANE Q DOE", from the CN LAST.FIRST.MI.EDIPI */
    char common_name[128];
    char subject[512];    /* RFC 2253 */
    char issuer[512];
    char issuer_cn[128];
    char serial[80];      /* upper-case hex */
    char serial_dec[64];  /* the same in decimal (sssd's {serial_number!dec}, GSER's) */
    char serial_reversed[80]; /* its bytes in reverse order, upper-case hex (AD's <SR>) */
    char issuer_x500[512];    /* the issuer most significant RDN first, AD's attribute
                                 names: "C=US,O=...,CN=..." (AD's <I>, sssd's !ad_x500) */
    char edipi[16];       /* from the UPN EDIPI@mil, else from the CN */
    char cn_edipi[16];    /* the one the CN names, "" if none */
    char upn[128];
    char email[128];
    bool edipi_mismatch;  /* the CN and the UPN name different EDIPIs */
    cacreg_cert_kind kind;
    unsigned key_usage;   /* CACREG_KU_* */
    unsigned eku;         /* CACREG_EKU_* */
    long long not_before; /* seconds since the epoch, UTC */
    long long not_after;
    bool rsa_key;         /* its key is RSA (else EC or another kind) */
    char sha256[65];      /* of the DER, upper-case hex */
} cacreg_cert;

/* Whole days of validity left at now (negative once expired). */
long cacreg_cert_days_left(const cacreg_cert *cert, long long now);

/*
 * The certificate's strong mapping for a directory, "X509:<I>issuer<SR>serial"
 * (AD's altSecurityIdentities, KB5014754; sssd's
 * X509:<I>{issuer_dn!ad_x500}<SR>{serial_number!hex_ur}). "" when it does not fit.
 */
void cacreg_cert_ad_mapping(const cacreg_cert *cert, char *out, size_t size);

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

/* A verdict in a few words, for a panel: "valid", "revoked", "names two EDIPIs", ... */
const char *cacreg_verdict_words(cacreg_verdict v);

/* ---- a portal's check of a TLS client certificate (core/check.c) ---- */

/*
 * What a portal (cacreg-portald) asks of the same certificate code the client
 * uses: is this the person's identity certificate, whose EDIPI, and its chain,
 * dates and revocation, in docs/portal-api.md's 403 order. Thread-safe: one
 * checker serves every connection. Free with cacreg_checker_free().
 */
typedef struct cacreg_checker cacreg_checker;

/* What the checker is given; "" (or 0) leaves a part out. */
typedef struct cacreg_checker_options {
    const char *ca_bundle;   /* PEM: the issuers accepted for CAC registration */
    const char *crl_file;    /* PEM or DER CRLs, re-read by cacreg_checker_refresh() */
    const char *ocsp_url;    /* http:// responder */
    int ocsp_timeout_s;      /* one OCSP exchange at most this long (0: 3 s) */
    int ocsp_cache_max_s;    /* an answer is kept until its nextUpdate, at most this (0: 3600) */
    int ocsp_cache_bare_s;   /* an answer without nextUpdate is kept this long (0: none) */
    bool soft_fail;          /* revocation that cannot be had counts as good (said in the result) */
} cacreg_checker_options;

/* One certificate checked: the verdict, the parsed fields, what revocation said. */
typedef struct cacreg_check {
    cacreg_verdict verdict;   /* OK, UNTRUSTED, NOT_YET_VALID, EXPIRED, REVOKED,
                                 REVOCATION_UNKNOWN or WRONG_KIND (never EDIPI_MISMATCH:
                                 a portal takes the UPN's EDIPI) */
    bool readable;            /* cert below holds the certificate's fields */
    cacreg_cert cert;
    const char *revoked_by;   /* REVOKED: "crl" or "ocsp" */
    long long revoked_at;     /* REVOKED: when, 0 if the source did not say */
    bool ocsp_cached;         /* the OCSP answer came from the cache */
    bool soft_failed;         /* revocation could not be had and soft_fail let it pass */
} cacreg_check;

/* Loads the bundle and CRL; CACREG_ERR_NOT_FOUND (and why in err) when one cannot be read. */
cacreg_err cacreg_checker_new(cacreg_checker **out, const cacreg_checker_options *opt, char *err,
                              size_t err_size);

/* Stops using the checker; NULL is allowed. No check may be running. */
void cacreg_checker_free(cacreg_checker *c);

/*
 * Re-reads the CRL file when it changed on disk (its inode, size or time), and
 * forgets the cached OCSP answers that are past their time. *reloaded says
 * whether it was read; on an error the CRL before stays in use and err says why.
 */
cacreg_err cacreg_checker_refresh(cacreg_checker *c, bool *reloaded, char *err, size_t err_size);

/* Checks a DER certificate at time now (seconds since the epoch); may ask OCSP (blocks). */
void cacreg_checker_check(cacreg_checker *c, const unsigned char *der, size_t len, long long now,
                          cacreg_check *out);

#define CACREG_MAX_CERTS 6

typedef enum {
    CACREG_PIN_UNKNOWN,   /* no token, or not asked */
    CACREG_PIN_OK,        /* no failed tries known */
    CACREG_PIN_COUNT_LOW, /* a wrong PIN was entered since the last right one */
    CACREG_PIN_FINAL_TRY, /* one more wrong PIN locks the card */
    CACREG_PIN_LOCKED,    /* locked: the CAC office re-sets it */
} cacreg_pin_state;

/* A card's token, as read once per insertion. */
typedef struct cacreg_card {
    char reader[128];
    char slot[128];      /* the PKCS#11 slot description */
    char label[64];
    char manufacturer[64];
    char model[32];
    char serial[32];
    bool recognised;     /* a CAC or PIV token with certificates */
    bool rsa_only;       /* the module signs with RSA keys only on this card (OpenSC's CAC) */
    cacreg_pin_state pin;
    int tries_left;      /* -1 when the flags cannot tell */
    size_t ncerts;
    cacreg_cert certs[CACREG_MAX_CERTS];
    char cert_labels[CACREG_MAX_CERTS][64];
    char cert_ids[CACREG_MAX_CERTS][32]; /* hex */
} cacreg_card;

/* ---- readers (core/reader.c) ---- */

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
    bool forwarded;    /* no PC/SC here: the card is in a reader of the person's own computer,
                          forwarded over SSH (cacreg ssh); status is that connection's */
    char detail[512];  /* why, for DOWN and DENIED */
    size_t count;
    cacreg_reader readers[CACREG_MAX_READERS];
} cacreg_readers;

/*
 * The polkit rule an administrator adds so that user may use the card
 * readers from a session pcscd otherwise refuses (SSH): the file to write
 * and its text, for CACREG_PCSC_DENIED.
 */
void cacreg_pcsc_polkit_rule(const char *user, char *path, size_t path_size, char *rule,
                             size_t rule_size);

/* ---- the portal's answers (core/portal.c) ---- */

/* The portal requests of docs/portal-api.md; core/portal.c has their routes. */
typedef enum {
    CACREG_REQ_NONE,
    CACREG_REQ_CAC_LOGIN,
    CACREG_REQ_PASSWORD_LOGIN,
    CACREG_REQ_GET_REGISTRATION,
    CACREG_REQ_CLEAR_REGISTRATION,
    CACREG_REQ_REGISTER,
    CACREG_REQ_LOGOUT,
    CACREG_REQ_PASSWORD_RESET,
    CACREG_REQ_COUNT
} cacreg_request;

/* The portal's reasons for no (docs/portal-api.md's error codes). */
typedef enum {
    CACREG_PORTAL_NO_REASON,
    CACREG_PORTAL_NO_CLIENT_CERTIFICATE,
    CACREG_PORTAL_UNTRUSTED_ISSUER,
    CACREG_PORTAL_CERTIFICATE_NOT_YET_VALID,
    CACREG_PORTAL_CERTIFICATE_EXPIRED,
    CACREG_PORTAL_CERTIFICATE_REVOKED,
    CACREG_PORTAL_NOT_IDENTITY_CERTIFICATE,
    CACREG_PORTAL_NO_ACCOUNT,
    CACREG_PORTAL_ACCOUNT_NOT_PERMITTED,
    CACREG_PORTAL_REGISTERED_TO_OTHER_ACCOUNT,
    CACREG_PORTAL_EDIPI_MISMATCH,
    CACREG_PORTAL_INVALID_CREDENTIALS,
    CACREG_PORTAL_PASSWORD_EXPIRED,
    CACREG_PORTAL_ACCOUNT_LOCKED,
    CACREG_PORTAL_SESSION_EXPIRED,
    CACREG_PORTAL_NO_SESSION,
    CACREG_PORTAL_REVOCATION_UNAVAILABLE,
    CACREG_PORTAL_DIRECTORY_UNAVAILABLE, /* the site's directory is down or refuses the portal */
    CACREG_PORTAL_OTHER_REASON, /* a code this client does not know */
} cacreg_portal_reason;

/* What the registration result says was done. */
typedef enum {
    CACREG_REG_NONE,
    CACREG_REG_REGISTERED, /* first registration */
    CACREG_REG_REPLACED,   /* a newer card replaced the one before */
    CACREG_REG_UNCHANGED,  /* this card was registered already */
} cacreg_registration;

/* What one request brought back; plain fields, "" where absent. */
typedef struct cacreg_portal_result {
    cacreg_err err;           /* CACREG_OK, or REFUSED, UNREACHABLE, TLS, BAD_ANSWER, CANCELLED */
    long http_status;
    cacreg_portal_reason reason; /* for CACREG_ERR_REFUSED */
    char error[64];           /* the portal's error code as sent */
    char message[512];        /* the portal's words, or ours for the other outcomes */
    int attempts_left;        /* -1 unless the portal said */
    long long server_time;    /* its Date header (0: none), for clock skew */
    long long clock_skew_s;   /* this machine's clock minus the portal's (0 if unknown) */
    char username[64], display_name[128], account_type[16], edipi[16];
    char password_expires[32];
    bool registered;
    cacreg_registration registration;
    char cert_subject[512], cert_serial[80], cert_not_after[32], registered_at[32];
    char cert_issuer[512], cert_sha256[65]; /* what a directory matches on, with the serial */
    char note[512];           /* the portal's words after a card left its directory, or "" */
    char replaced_serial[80];
} cacreg_portal_result;

/* The code's name as the contract spells it ("registered", "replaced", "unchanged", ""). */
const char *cacreg_registration_name(cacreg_registration r);

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

/* For a card job that failed: a PIN wrong, locked or malformed, a card gone. */
cacreg_diagnosis cacreg_diagnose_card(cacreg_err err);

/* What the flow itself has to say (not a card's or a portal's answer). */
typedef enum {
    CACREG_SAY_CARD_REMOVED,   /* the card went while the flow needed it */
    CACREG_SAY_IDLE,           /* left alone for idle_timeout */
    CACREG_SAY_NO_MODULE,      /* the PKCS#11 module cannot be loaded */
    CACREG_SAY_PCSC_DOWN,      /* pcscd is not running */
    CACREG_SAY_PCSC_DENIED,    /* pcscd refuses this session */
    CACREG_SAY_BAD_USERNAME,   /* the username field is empty or not text */
    CACREG_SAY_NO_PASSWORD,    /* the password field is empty */
    CACREG_SAY_NOT_STARTED,    /* a request could not be started */
    CACREG_SAY_CLEARED,        /* the registered information was cleared */
    CACREG_SAY_CARD_STUCK,     /* the card stopped answering */
    CACREG_SAY_PCSC_STOPPED,   /* pcscd went away while the flow needed the card */
    CACREG_SAY_CARD_UNREADABLE, /* the card's certificates could not be read */
} cacreg_say;

cacreg_diagnosis cacreg_diagnose_say(cacreg_say what);

/*
 * When this machine's clock is more than five minutes off the portal's (the
 * usual cause of "not yet valid" and some TLS failures), a sentence saying so
 * goes into buf and true is returned.
 */
bool cacreg_diagnose_clock(const cacreg_portal_result *r, char *buf, size_t size);

/* ---- the flow (core/flow.c) and what runs it (core/engine.c) ---- */

/*
 * The help article's paths as one state machine, for every front end. The
 * engine owns the threads, the card, the portal client and the secrets;
 * the front end polls cacreg_engine_fd() with its keyboard, calls
 * cacreg_engine_handle() when it is readable (or when
 * cacreg_flow_timeout_ms() has passed), draws cacreg_flow_state_get(), and
 * turns keys into cacreg_flow_act(). Nothing in it blocks.
 */
typedef struct cacreg_engine cacreg_engine;
typedef struct cacreg_flow cacreg_flow;

/* The steps; core/flow.c's table says what each one does. */
typedef enum {
    CACREG_STEP_START,            /* choose a way in */
    CACREG_STEP_INSERT_CARD,      /* the way chosen needs a card in a reader */
    CACREG_STEP_LOADING,          /* waiting for the PKCS#11 module to load */
    CACREG_STEP_READING,          /* waiting for the card's certificates */
    CACREG_STEP_PIN,              /* the card's PIN, typed into cacreg_flow_secret() */
    CACREG_STEP_CHECKING_PIN,     /* the card checks the PIN */
    CACREG_STEP_CREDENTIALS,      /* username and password (cacreg_flow_secret()) */
    CACREG_STEP_ASKING,           /* the portal is asked: state.request says what */
    CACREG_STEP_REGISTRATION,     /* what the account has registered: clear, register */
    CACREG_STEP_CONFIRM_CLEAR,    /* "clear the registered information?" */
    CACREG_STEP_CHOOSE_CERT,      /* which certificate to register */
    CACREG_STEP_CONFIRM_PASSWORD, /* the portal password confirms the registration */
    CACREG_STEP_RESET,            /* username, to ask for a new password */
    CACREG_STEP_DONE,             /* state.done says what was done */
    CACREG_STEP_FAILED,           /* state.problem says why */
    CACREG_STEP_COUNT
} cacreg_step;

/* The step's name, as the flow's trace prints it ("PIN", "ASKING", ...). */
const char *cacreg_step_name(cacreg_step step);

/* True for the steps where work is in progress and the person waits. */
bool cacreg_step_working(cacreg_step step);

/* Which of the help article's ways the person took. */
typedef enum {
    CACREG_PATH_NONE,
    CACREG_PATH_CAC_LOGIN, /* card, PIN: logged in and registered */
    CACREG_PATH_REGISTER,  /* password login, then register the card */
    CACREG_PATH_RESET,     /* "I need a password" */
} cacreg_path;

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

/* Where a failure happened. */
typedef enum {
    CACREG_STAGE_NONE,
    CACREG_STAGE_MODULE,    /* loading the PKCS#11 module */
    CACREG_STAGE_PCSC,      /* the smart-card service */
    CACREG_STAGE_CARD,      /* reading the card */
    CACREG_STAGE_PREFLIGHT, /* checking its certificate */
    CACREG_STAGE_PIN,
    CACREG_STAGE_KEY,       /* the identity key after the PIN */
    CACREG_STAGE_PORTAL,
    CACREG_STAGE_INPUT,     /* what was typed */
    CACREG_STAGE_CHOOSE,    /* the certificate chosen */
    CACREG_STAGE_IDLE,
} cacreg_stage;

/* The stage's machine name ("pin", "portal", ...), for --json. */
const char *cacreg_stage_name(cacreg_stage stage);

/* A failure, or a notice, as the state carries it. */
typedef struct cacreg_problem {
    cacreg_fail fail;           /* NONE for a notice that is good news */
    cacreg_stage stage;
    cacreg_err err;             /* the error behind it, CACREG_OK for a notice */
    cacreg_diagnosis diagnosis; /* cause NULL: no problem */
    char detail[512];           /* the card's or portal's own words, or "" */
    char clock[256];            /* a clock-skew hint, or "" */
} cacreg_problem;

typedef enum { CACREG_MODULE_LOADING, CACREG_MODULE_LOADED, CACREG_MODULE_FAILED } cacreg_module;
typedef enum { CACREG_CARD_NONE, CACREG_CARD_READING, CACREG_CARD_READ, CACREG_CARD_FAILED } cacreg_card_state;

/* Whether the card a PIN went to has been reset since (its security state closed). */
typedef enum {
    CACREG_RESET_NONE,    /* no PIN went to a card yet */
    CACREG_RESET_RUNNING, /* being reset */
    CACREG_RESET_DONE,    /* reset: no other program can sign with it */
    CACREG_RESET_FAILED,  /* the reset failed: the card may still be open */
} cacreg_card_reset;

/* Everything a front end draws; plain data, valid until the next call on the flow. */
typedef struct cacreg_flow_state {
    cacreg_step step;
    unsigned long generation;   /* changes whenever anything below does */
    cacreg_request request;     /* STEP_ASKING: what the portal is asked */
    cacreg_path path;

    /* prerequisites, live */
    cacreg_module module;
    char module_path[CACREG_PATH_MAX];
    char module_error[512];
    cacreg_readers readers;
    char reader[128];           /* the reader with the card in use; "" when none */
    cacreg_card_state card;
    cacreg_err card_err;        /* CARD_FAILED: why (NO_CARD, NOT_CAC, CARD, ...) */
    char card_error[512];
    cacreg_card info;           /* CARD_READ: the card in reader */
    size_t chosen;              /* the identity certificate (info.ncerts: none) */
    cacreg_verdict verdict;     /* pre-flight of the chosen certificate */
    char verdict_detail[512];
    int tries_left;             /* after the last PIN try; -1 unknown */
    cacreg_card_reset card_reset; /* after a session that used the PIN */
    bool card_stuck;            /* a card call passed card_timeout and has not ended: the
                                   card or its reader hangs, and no card job can run */

    /* the portal */
    char username[128];
    bool session;               /* logged in with a password session */
    cacreg_portal_result account;      /* the password login's answer */
    cacreg_portal_result registration; /* what the account has registered */
    cacreg_portal_result last;         /* the last answer */
    bool requesting;            /* a portal request (a logout too) is in flight */

    /* outcome */
    cacreg_done done;
    cacreg_problem problem;     /* at FAILED, or at an input step after a wrong try */
    cacreg_problem notice;      /* why the flow came back to START, or news at REGISTRATION */
} cacreg_flow_state;

/* What a person can do; cacreg_flow_can() says whether the step takes it now. */
typedef enum {
    CACREG_ACT_CAC_LOGIN,      /* START: the card, then its PIN */
    CACREG_ACT_PASSWORD_LOGIN, /* START: username and password */
    CACREG_ACT_NEW_PASSWORD,   /* START, or FAILED on an expired password: ask for one */
    CACREG_ACT_SUBMIT,         /* PIN, CREDENTIALS, CONFIRM_PASSWORD, RESET: what was typed */
    CACREG_ACT_REGISTER,       /* REGISTRATION: register the card in the reader */
    CACREG_ACT_CLEAR,          /* REGISTRATION: clear what is registered (asks first) */
    CACREG_ACT_YES,            /* CONFIRM_CLEAR */
    CACREG_ACT_NO,             /* CONFIRM_CLEAR */
    CACREG_ACT_CHOOSE,         /* CHOOSE_CERT: action.cert */
    CACREG_ACT_BACK,           /* Esc: one step back, cancelling what is in flight */
    CACREG_ACT_RESTART,        /* the next person: log out, forget the card, wipe everything */
    CACREG_ACT_COUNT
} cacreg_action_kind;

typedef struct cacreg_action {
    cacreg_action_kind kind;
    const char *username; /* SUBMIT at CREDENTIALS and RESET */
    size_t cert;          /* CHOOSE */
} cacreg_action;

/* Starts the threads and loads the module (in the background) for cfg. */
cacreg_err cacreg_engine_new(cacreg_engine **out, const cacreg_config *cfg, char *err,
                             size_t err_size);

/*
 * Ends the person's session as the next person's start would (logout, the
 * card's login dropped and the card reset, every secret wiped), waiting at
 * most wait_ms for the portal and the card to be done with it.
 */
void cacreg_engine_end(cacreg_engine *e, int wait_ms);

/*
 * Stops everything, wipes every secret, releases the card; NULL is allowed.
 * False when a thread stuck in a card call (a card that stopped answering)
 * had to be left running: the secrets are wiped, but the process must end
 * with _exit(), since the libraries' exit handlers would wait on that thread.
 */
bool cacreg_engine_free(cacreg_engine *e);

/* The flow the engine runs; borrowed for the engine's life. */
cacreg_flow *cacreg_engine_flow(cacreg_engine *e);

/* The descriptor to poll for reading. */
int cacreg_engine_fd(const cacreg_engine *e);

/* Takes what the threads reported and what time has done; never blocks. */
void cacreg_engine_handle(cacreg_engine *e);

/* Sends every step change, by name, to fn (a debug log); NULL stops it. */
void cacreg_flow_trace(cacreg_flow *f, void (*fn)(const char *line, void *ctx), void *ctx);

/* Milliseconds until the flow wants cacreg_engine_handle() anyway (a timer); -1: never. */
int cacreg_flow_timeout_ms(const cacreg_flow *f);

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

/* True when the step takes this action now (for key bars: a key shown works). */
bool cacreg_flow_can(const cacreg_flow *f, cacreg_action_kind kind);

/*
 * Does what the person asked. False, changing nothing, when the step does
 * not take the action; an action taken can still end in a problem (a PIN
 * not in form, say), which the state says.
 */
bool cacreg_flow_act(cacreg_flow *f, cacreg_action action);

/* cacreg_flow_act() for an action that needs no argument. */
bool cacreg_flow_do(cacreg_flow *f, cacreg_action_kind kind);

#endif
