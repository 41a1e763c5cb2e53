/*
 * The directory store's ledger: which certificates this portal wrote to whose
 * directory entry (SQLite, a table in the portal's database), so that a replace
 * or a clear removes those values and nothing else on the entry. A value is
 * noted before it is written and forgotten once it is removed, so the ledger
 * holds at least what the portal may have written; the directory says what is
 * there. Thread-safe. Used by store_ldap.c only.
 */
#ifndef PORTAL_LEDGER_H
#define PORTAL_LEDGER_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

#define LEDGER_DER_MAX 8192

/* One certificate this portal may have written to an entry. */
typedef struct ledger_row {
    char sha256[65];
    char json[STORE_CERT_JSON_MAX]; /* the certificate object, as the answers show it */
    unsigned char der[LEDGER_DER_MAX];
    size_t der_len;
    char ad_mapping[1024];          /* the altSecurityIdentities value it is written as */
    long long written_at;
} ledger_row;

typedef struct ledger ledger;

/* Opens (and makes) the ledger in the SQLite file path; err says why not. Free with ledger_close(). */
bool ledger_open(ledger **out, const char *path, char *err, size_t err_size);
void ledger_close(ledger *l);

/* username's rows, newest first, at most max, into out; false and err when it cannot be read. */
bool ledger_rows(ledger *l, const char *username, ledger_row *out, size_t max, size_t *n,
                 char *err, size_t err_size);

/* Notes row for username (before it is written); a row noted already gets row's written_at. */
bool ledger_note(ledger *l, const char *username, const ledger_row *row, char *err,
                 size_t err_size);

/* Forgets username's rows but keep_sha256's (NULL: all of them), once they are off the entry. */
bool ledger_forget(ledger *l, const char *username, const char *keep_sha256, char *err,
                   size_t err_size);

/* Calls fn for each username with a row, in order. */
bool ledger_each_username(ledger *l, void (*fn)(const char *username, void *ctx), void *ctx,
                          char *err, size_t err_size);

#endif
