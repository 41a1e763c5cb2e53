/*
 * The portal's accounts and registrations, behind one interface; one file per
 * backend (store_sqlite.c is the embedded one). No SQL (or LDAP) outside its
 * backend. Every write is one transaction, and retrying one that was done
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
    STORE_ERROR,         /* the backend failed: error says why */
} store_status;

#define STORE_USERNAME_MAX 64
#define STORE_DISPLAY_MAX 256
#define STORE_HASH_MAX 256
#define STORE_CERT_JSON_MAX 8192

/* One account, as the contract's account object and the lock need it. */
typedef struct store_account {
    char username[STORE_USERNAME_MAX + 1];
    char display_name[STORE_DISPLAY_MAX + 1];
    char edipi[11];
    char type[16];                          /* "full" or "email_only" */
    char password_hash[STORE_HASH_MAX + 1]; /* argon2id encoded, "" when none is set */
    long long password_expires;             /* seconds since the epoch */
    int failed_attempts;
    bool permitted;
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

typedef struct store store;

/* Opens (and makes) the store at path; error says why it cannot. Free with store_close(). */
store_status store_open(store **out, const char *path, char *error, size_t error_size);
void store_close(store *s);

/* The last error's sentence (borrowed until the next call on this thread). */
const char *store_error(store *s);

store_status store_account_get(store *s, const char *username, store_account *out);

/* The account a CAC with this EDIPI logs into: a full account before an email-only one. */
store_status store_account_by_edipi(store *s, const char *edipi, store_account *out);

/* A wrong password: the count of failures after this one goes into *failed. */
store_status store_password_failed(store *s, const char *username, int *failed);

/* A right password: the count of failures goes back to 0. */
store_status store_password_ok(store *s, const char *username);

/*
 * Registers the certificate (its SHA-256 and object) to username, in one
 * transaction: STORE_NOT_PERMITTED for a suspended account (unless
 * !need_permitted), STORE_OTHER_OWNER when another account has it. With
 * password_expires > 0 the password's expiry becomes that and the failures
 * count goes back to 0 (a CAC login).
 */
store_status store_register(store *s, const char *username, const char *sha256,
                            const char *cert_json, long long now, long long password_expires,
                            store_register_result *out);

/* Whether another account than username has this certificate registered. */
store_status store_other_owner(store *s, const char *username, const char *sha256, bool *other);

store_status store_registration_get(store *s, const char *username, store_registration *out);

/* Clears the account's registration; out says what was cleared (registered false: nothing). */
store_status store_registration_clear(store *s, const char *username, store_registration *out);

/* ---- administration ---- */

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

/* Calls fn for every registration, by username. */
store_status store_registration_each(store *s,
                                     void (*fn)(const char *username, const store_registration *r,
                                                void *ctx),
                                     void *ctx);

#endif
