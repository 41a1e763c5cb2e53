/*
 * The portal's accounts and registrations, behind one interface; one file per
 * backend: store_sqlite.c (the embedded store) and store_ldap.c (the site's
 * directory). No SQL or LDAP outside its backend. Every write is one
 * transaction (SQLite) or one modify (LDAP), and retrying one that was done
 * already changes nothing more. Thread-safe: one store serves every
 * connection.
 */
#ifndef PORTAL_STORE_H
#define PORTAL_STORE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    STORE_OK = 0,
    STORE_NOT_FOUND,     /* no such account (or registration) */
    STORE_NOT_PERMITTED, /* the account may not use a CAC (suspended) */
    STORE_OTHER_OWNER,   /* the certificate is registered to another account */
    STORE_EXISTS,        /* add: the username is taken */
    STORE_INVALID,       /* a value of the wrong form */
    STORE_UNAVAILABLE,   /* the directory cannot be reached or refuses the portal; nothing
                            was written (error says why) */
    STORE_UNSUPPORTED,   /* not done by this backend (a directory's accounts are kept there) */
    STORE_ERROR,         /* the backend failed: error says why */
} store_status;

#define STORE_USERNAME_MAX 64
#define STORE_DISPLAY_MAX 256
#define STORE_HASH_MAX 256
#define STORE_CERT_JSON_MAX 8192
#define STORE_DN_MAX 1024
#define STORE_LOCK_AFTER 5 /* the embedded store: wrong passwords before the account locks */

/* One account, as the contract's account object and the lock need it. */
typedef struct store_account {
    char username[STORE_USERNAME_MAX + 1];
    char display_name[STORE_DISPLAY_MAX + 1];
    char edipi[11];
    char type[16];                          /* "full" or "email_only" */
    char password_hash[STORE_HASH_MAX + 1]; /* argon2id encoded, "" when none is set (SQLite) */
    long long password_expires;             /* seconds since the epoch; 0: not known */
    int failed_attempts;                    /* SQLite; a directory keeps its own count */
    bool permitted;
    char dn[STORE_DN_MAX + 1];              /* the directory's entry; "" for the embedded store */
} store_account;

/* What an account has registered. */
typedef struct store_registration {
    bool registered;
    char sha256[65];
    char cert_json[STORE_CERT_JSON_MAX]; /* the certificate object, as the answers show it */
    long long registered_at;
} store_registration;

/* What store_register did: "registered", "replaced" or "unchanged". */
typedef struct store_register_result {
    const char *result;
    bool replaced;
    char replaced_json[STORE_CERT_JSON_MAX]; /* the certificate removed, when replaced */
    long long registered_at;
    long long password_expires;               /* the account's, after the write */
} store_register_result;

/* A verified identity certificate, as a registration writes it (all borrowed). */
typedef struct store_cert {
    const char *sha256;            /* of the DER, upper-case hex */
    const char *json;              /* the certificate object, as the answers show it */
    const unsigned char *der;      /* userCertificate;binary */
    size_t der_len;
    const char *issuer;            /* RFC 4514 (a directory's GSER assertion) */
    const char *serial_dec;        /* decimal */
    const char *ad_mapping;        /* "X509:<I>...<SR>..." (altSecurityIdentities) */
} store_cert;

/* A password's check. */
typedef enum {
    STORE_PASSWORD_RIGHT,
    STORE_PASSWORD_WRONG,   /* attempts_left before the lock, -1 when the store cannot tell */
    STORE_PASSWORD_LOCKED,  /* locked now (just_locked: by this attempt) */
    STORE_PASSWORD_EXPIRED, /* the directory says the password has expired */
} store_password_verdict;

typedef struct store_password_result {
    store_password_verdict verdict;
    int attempts_left;
    bool just_locked;
} store_password_result;

/* The directory store's settings (portald.conf's ldap_* keys). */
typedef struct store_ldap_options {
    const char *uri;                /* one or more, blank-separated: tried in order */
    bool starttls;                  /* ldap:// URIs: StartTLS (required: TLS always) */
    const char *ca_file;            /* PEM: the directory's CA; its certificate is verified */
    const char *bind_dn;            /* the portal's service account */
    const char *bind_password_file; /* its password, the file's first line */
    const char *base;               /* where accounts are searched */
    const char *user_filter;        /* one %s: the username, e.g. (&(objectClass=posixAccount)(uid=%s)) */
    const char *username_attribute; /* uid, sAMAccountName */
    const char *edipi_attribute;    /* employeeNumber, ... */
    const char *display_attribute;  /* cn, displayName */
    const char *write;              /* "both", "certificate" or "altsecid" */
    const char *certificate_match;  /* "gser" (OpenLDAP) or "binary" (389-ds, AD) */
    const char *password_expiry;    /* "shadow", "pwdlastset" or "none" */
    int timeout_s;                  /* every operation, and each connection attempt */
    int lockout_attempts;           /* the directory's lockout threshold; 0: not known */
    const char *ledger;             /* SQLite file: what this portal wrote, for replace and clear */
} store_ldap_options;

typedef struct store store;

/* Opens (and makes) the embedded store at path; error says why it cannot. Free with store_close(). */
store_status store_open_sqlite(store **out, const char *path, char *error, size_t error_size);

/*
 * Opens the directory store; error says why it cannot (a setting, the password
 * file, the ledger). The directory itself is reached on first use, so a portal
 * starts while it is down. Free with store_close().
 */
store_status store_open_ldap(store **out, const store_ldap_options *opt, char *error,
                             size_t error_size);

void store_close(store *s);

/* "sqlite" or "ldap". */
const char *store_kind(const store *s);

/* The last error's sentence (borrowed until the next call on this thread). */
const char *store_error(store *s);

/*
 * Reaches the directory and binds as the service account (--check-config);
 * STORE_OK for the embedded store.
 */
store_status store_check(store *s);

store_status store_account_get(store *s, const char *username, store_account *out);

/* The account a CAC with this EDIPI logs into: a full account before an email-only one. */
store_status store_account_by_edipi(store *s, const char *edipi, store_account *out);

/*
 * Checks account a's password. The embedded store counts wrong ones toward its
 * lock (STORE_LOCK_AFTER) and forgets them on a right one; a directory binds as
 * the account and its own policy decides (ppolicy, AD's lockout).
 */
store_status store_password_check(store *s, const store_account *a, const char *password,
                                  size_t len, store_password_result *out);

/* Wrong passwords before the lock, for an unknown username's answer; -1 when not known. */
int store_lockout_attempts(const store *s);

/*
 * Spends on an unknown username what checking a known one's password costs (no
 * probing by time): a directory binds as an entry that does not exist. false
 * when the backend leaves it to the caller (the embedded store: the hash's cost).
 */
bool store_password_dummy(store *s, const char *password, size_t len);

/*
 * Registers the certificate to username, as one write: STORE_NOT_PERMITTED for
 * a suspended account (unless !need_permitted), STORE_OTHER_OWNER when another
 * account has it. With password_expires > 0 the password's expiry becomes that
 * (the directory: 150 days from today into its expiry attributes) and the
 * failures count goes back to 0 (a CAC login).
 */
store_status store_register(store *s, const char *username, const store_cert *cert,
                            long long now, long long password_expires, store_register_result *out);

/* Whether another account than username has this certificate registered. */
store_status store_other_owner(store *s, const char *username, const store_cert *cert,
                               bool *other);

store_status store_registration_get(store *s, const char *username, store_registration *out);

/* Clears the account's registration; out says what was cleared (registered false: nothing). */
store_status store_registration_clear(store *s, const char *username, store_registration *out);

/* ---- administration (the embedded store's accounts; STORE_UNSUPPORTED on a directory) ---- */

/* Adds an account (STORE_EXISTS when the username is taken), or replaces it with replace. */
store_status store_account_put(store *s, const store_account *a, bool replace);

/* Sets permitted (suspend, reinstate). */
store_status store_account_set_permitted(store *s, const char *username, bool permitted);

/* Sets the password hash and its expiry; the failures count goes back to 0. */
store_status store_account_set_password(store *s, const char *username, const char *hash,
                                        long long expires);

/* The failures count back to 0 (unlock). */
store_status store_account_unlock(store *s, const char *username);

/* Calls fn for every account, by username. */
store_status store_account_each(store *s, void (*fn)(const store_account *a, void *ctx), void *ctx);

/* Calls fn for every registration, by username (a directory: those this portal wrote). */
store_status store_registration_each(store *s,
                                     void (*fn)(const char *username, const store_registration *r,
                                                void *ctx),
                                     void *ctx);

#endif
