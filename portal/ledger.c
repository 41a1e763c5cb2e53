/* The directory store's ledger in SQLite (WAL, synchronous = FULL), one connection behind a lock. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "ledger.h"

#define BUSY_TIMEOUT_MS 5000 /* an administration command writing at the same time */

struct ledger {
    sqlite3 *db;
    pthread_mutex_t lock;
};

static const char schema[] =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = FULL;"
    "CREATE TABLE IF NOT EXISTS directory_writes ("
    "  username TEXT NOT NULL, sha256 TEXT NOT NULL, certificate TEXT NOT NULL,"
    "  der BLOB NOT NULL, ad_mapping TEXT NOT NULL, written_at INTEGER NOT NULL,"
    "  PRIMARY KEY (username, sha256));";

static bool failed(ledger *l, const char *what, char *err, size_t err_size)
{
    snprintf(err, err_size, "%s: %s", what, sqlite3_errmsg(l->db));
    return false;
}

bool ledger_open(ledger **out, const char *path, char *err, size_t err_size)
{
    ledger *l = calloc(1, sizeof *l);
    char *msg = NULL;

    *out = NULL;
    if (!l) {
        snprintf(err, err_size, "out of memory");
        return false;
    }
    pthread_mutex_init(&l->lock, NULL);
    if (sqlite3_open_v2(path, &l->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(l->db, BUSY_TIMEOUT_MS) != SQLITE_OK ||
        sqlite3_exec(l->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, err_size, "database: %s cannot hold what the portal writes: %s", path,
                 msg ? msg : l->db ? sqlite3_errmsg(l->db) : "out of memory");
        sqlite3_free(msg);
        ledger_close(l);
        return false;
    }
    *out = l;
    return true;
}

void ledger_close(ledger *l)
{
    if (!l)
        return;
    sqlite3_close(l->db);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static void copy_text(char *dst, size_t size, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);

    snprintf(dst, size, "%s", t ? (const char *)t : "");
}

bool ledger_rows(ledger *l, const char *username, ledger_row *out, size_t max, size_t *n,
                 char *err, size_t err_size)
{
    sqlite3_stmt *st = NULL;
    bool ok = true;
    int step;

    *n = 0;
    pthread_mutex_lock(&l->lock);
    if (sqlite3_prepare_v2(l->db,
                           "SELECT sha256, certificate, der, ad_mapping, written_at FROM "
                           "directory_writes WHERE username = ? ORDER BY written_at DESC",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, username, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
        ok = failed(l, "reading what the portal wrote", err, err_size);
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
        ledger_row *r = &out[*n];
        const void *der = sqlite3_column_blob(st, 2);
        int der_len = sqlite3_column_bytes(st, 2);
        memset(r, 0, sizeof *r);
        copy_text(r->sha256, sizeof r->sha256, st, 0);
        copy_text(r->json, sizeof r->json, st, 1);
        if (der && der_len > 0 && (size_t)der_len <= sizeof r->der) {
            memcpy(r->der, der, (size_t)der_len);
            r->der_len = (size_t)der_len;
        }
        copy_text(r->ad_mapping, sizeof r->ad_mapping, st, 3);
        r->written_at = sqlite3_column_int64(st, 4);
        (*n)++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        ok = failed(l, "reading what the portal wrote", err, err_size);
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&l->lock);
    return ok;
}

bool ledger_note(ledger *l, const char *username, const ledger_row *row, char *err,
                 size_t err_size)
{
    sqlite3_stmt *st = NULL;
    bool ok = true;

    pthread_mutex_lock(&l->lock);
    if (sqlite3_prepare_v2(l->db,
                           "INSERT INTO directory_writes (username, sha256, certificate, der,"
                           " ad_mapping, written_at) VALUES (?, ?, ?, ?, ?, ?)"
                           " ON CONFLICT (username, sha256) DO UPDATE SET"
                           " written_at = excluded.written_at",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, username, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, row->sha256, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, row->json, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_blob(st, 4, row->der, (int)row->der_len, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_text(st, 5, row->ad_mapping, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_int64(st, 6, row->written_at) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
        ok = failed(l, "noting what the portal writes", err, err_size);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&l->lock);
    return ok;
}

bool ledger_forget(ledger *l, const char *username, const char *keep_sha256, char *err,
                   size_t err_size)
{
    sqlite3_stmt *st = NULL;
    bool ok = true;

    pthread_mutex_lock(&l->lock);
    if (sqlite3_prepare_v2(l->db, "DELETE FROM directory_writes WHERE username = ? AND sha256 != ?",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, username, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, keep_sha256 ? keep_sha256 : "", -1, SQLITE_TRANSIENT) !=
            SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE)
        ok = failed(l, "forgetting what the portal removed", err, err_size);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&l->lock);
    return ok;
}

bool ledger_each_username(ledger *l, void (*fn)(const char *username, void *ctx), void *ctx,
                          char *err, size_t err_size)
{
    char (*names)[STORE_USERNAME_MAX + 1] = NULL;
    size_t count = 0, cap = 0;
    sqlite3_stmt *st = NULL;
    bool ok = true;

    pthread_mutex_lock(&l->lock);
    if (sqlite3_prepare_v2(l->db, "SELECT DISTINCT username FROM directory_writes ORDER BY username",
                           -1, &st, NULL) != SQLITE_OK) {
        ok = failed(l, "listing what the portal wrote", err, err_size);
    } else {
        while (sqlite3_step(st) == SQLITE_ROW) {
            if (count == cap) {
                void *more = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names);
                if (!more)
                    break;
                names = more;
            }
            copy_text(names[count++], sizeof names[0], st, 0);
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&l->lock);
    for (size_t i = 0; i < count; i++) /* outside the lock: fn may read the ledger */
        fn(names[i], ctx);
    free(names);
    return ok;
}
