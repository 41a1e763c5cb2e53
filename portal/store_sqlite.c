/* The embedded store: SQLite 3 in WAL mode, one connection behind a lock. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "password.h"
#include "store_backend.h"

#define BUSY_TIMEOUT_MS 5000 /* an administration command writing at the same time */

struct sqlite_store {
    struct store base; /* first: store.c's calls reach the table */
    sqlite3 *db;
    pthread_mutex_t lock;
    char error[256];
};

static const char schema[] =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA foreign_keys = ON;"
    "CREATE TABLE IF NOT EXISTS accounts ("
    "  username TEXT PRIMARY KEY, display_name TEXT NOT NULL, edipi TEXT NOT NULL,"
    "  type TEXT NOT NULL CHECK (type IN ('full', 'email_only')),"
    "  password_hash TEXT NOT NULL, password_expires TEXT NOT NULL,"
    "  failed_attempts INTEGER NOT NULL DEFAULT 0, permitted INTEGER NOT NULL DEFAULT 1);"
    "CREATE INDEX IF NOT EXISTS accounts_edipi ON accounts (edipi);"
    "CREATE TABLE IF NOT EXISTS registrations ("
    "  username TEXT PRIMARY KEY REFERENCES accounts(username) ON DELETE CASCADE,"
    "  sha256 TEXT NOT NULL UNIQUE, certificate TEXT NOT NULL, registered_at TEXT NOT NULL);";

/* Times are stored as RFC 3339 text in UTC, readable with the sqlite3 tool. */
static void time_text(long long t, char out[24])
{
    time_t tt = (time_t)t;
    struct tm tm;

    out[0] = '\0';
    if (gmtime_r(&tt, &tm))
        strftime(out, 24, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The seconds since the epoch of a stored time; 0 when it is not one. */
static long long text_time(const unsigned char *text)
{
    struct tm tm = {0};
    const char *end;

    if (!text)
        return 0;
    end = strptime((const char *)text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return end && !*end ? (long long)timegm(&tm) : 0;
}

static store_status fail(struct sqlite_store *s, const char *what)
{
    snprintf(s->error, sizeof s->error, "%s: %s", what, sqlite3_errmsg(s->db));
    return STORE_ERROR;
}

static const struct store_backend sqlite_backend;

store_status store_open_sqlite(store **out, const char *path, char *error, size_t error_size)
{
    struct sqlite_store *s = calloc(1, sizeof *s);
    char *msg = NULL;

    *out = NULL;
    if (!s) {
        snprintf(error, error_size, "out of memory");
        return STORE_ERROR;
    }
    s->base.backend = &sqlite_backend;
    pthread_mutex_init(&s->lock, NULL);
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                          SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
        snprintf(error, error_size, "the database %s cannot be opened: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        store_close(&s->base);
        return STORE_ERROR;
    }
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    /* A 200 means on disk: each commit waits for the write-ahead log to be synced. */
    if (sqlite3_exec(s->db, "PRAGMA synchronous = FULL;", NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(s->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(error, error_size, "the database %s cannot be set up: %s", path,
                 msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        store_close(&s->base);
        return STORE_ERROR;
    }
    *out = &s->base;
    return STORE_OK;
}

static void sqlite_close(store *base)
{
    struct sqlite_store *s = (struct sqlite_store *)base;

    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static const char *sqlite_error(store *base)
{
    return ((struct sqlite_store *)base)->error;
}

/* A prepared statement with its text arguments bound in order (NULL binds NULL). */
static sqlite3_stmt *prepare(struct sqlite_store *s, const char *sql, int nargs, const char *const *args)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    for (int i = 0; i < nargs; i++)
        if (sqlite3_bind_text(st, i + 1, args[i], -1, SQLITE_TRANSIENT) != SQLITE_OK) {
            sqlite3_finalize(st);
            return NULL;
        }
    return st;
}

static void copy_text(char *dst, size_t size, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);

    snprintf(dst, size, "%s", t ? (const char *)t : "");
}

#define ACCOUNT_COLUMNS                                                                          \
    "username, display_name, edipi, type, password_hash, password_expires, failed_attempts, "    \
    "permitted"

static void read_account(sqlite3_stmt *st, store_account *a)
{
    memset(a, 0, sizeof *a);
    copy_text(a->username, sizeof a->username, st, 0);
    copy_text(a->display_name, sizeof a->display_name, st, 1);
    copy_text(a->edipi, sizeof a->edipi, st, 2);
    copy_text(a->type, sizeof a->type, st, 3);
    copy_text(a->password_hash, sizeof a->password_hash, st, 4);
    a->password_expires = text_time(sqlite3_column_text(st, 5));
    a->failed_attempts = sqlite3_column_int(st, 6);
    a->permitted = sqlite3_column_int(st, 7) != 0;
}

/* One account by a query with one argument. */
static store_status account_query(struct sqlite_store *s, const char *sql, const char *arg, store_account *out)
{
    store_status rc;
    sqlite3_stmt *st;
    int step;

    pthread_mutex_lock(&s->lock);
    st = prepare(s, sql, 1, &arg);
    if (!st) {
        rc = fail(s, "reading an account");
        goto out;
    }
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        read_account(st, out);
        rc = STORE_OK;
    } else {
        rc = step == SQLITE_DONE ? STORE_NOT_FOUND : fail(s, "reading an account");
    }
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static store_status sqlite_account_get(store *base, const char *username, store_account *out)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    return account_query(s, "SELECT " ACCOUNT_COLUMNS " FROM accounts WHERE username = ?",
                         username, out);
}

static store_status sqlite_account_by_edipi(store *base, const char *edipi, store_account *out)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    return account_query(s,
                         "SELECT " ACCOUNT_COLUMNS " FROM accounts WHERE edipi = ?"
                         " ORDER BY type = 'full' DESC, username LIMIT 1",
                         edipi, out);
}

/* Runs one statement that changes rows; STORE_NOT_FOUND when it changed none. Locked by caller. */
static store_status exec_change(struct sqlite_store *s, const char *sql, int nargs, const char *const *args,
                                const char *what)
{
    sqlite3_stmt *st = prepare(s, sql, nargs, args);
    int step;

    if (!st)
        return fail(s, what);
    step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_DONE)
        return fail(s, what);
    return sqlite3_changes(s->db) > 0 ? STORE_OK : STORE_NOT_FOUND;
}

static store_status change(struct sqlite_store *s, const char *sql, int nargs, const char *const *args,
                           const char *what)
{
    store_status rc;

    pthread_mutex_lock(&s->lock);
    rc = exec_change(s, sql, nargs, args, what);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static store_status sqlite_password_failed(struct sqlite_store *s, const char *username, int *failed)
{
    const char *args[] = {username};
    store_status rc = STORE_NOT_FOUND;
    sqlite3_stmt *st;
    int step;

    pthread_mutex_lock(&s->lock);
    st = prepare(s,
                 "UPDATE accounts SET failed_attempts = failed_attempts + 1 WHERE username = ?"
                 " RETURNING failed_attempts",
                 1, args);
    if (!st) {
        rc = fail(s, "counting a wrong password");
        goto out;
    }
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *failed = sqlite3_column_int(st, 0);
        rc = STORE_OK;
        step = sqlite3_step(st);
    }
    if (step != SQLITE_DONE)
        rc = fail(s, "counting a wrong password");
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static store_status sqlite_password_ok(struct sqlite_store *s, const char *username)
{
    const char *args[] = {username};

    return change(s, "UPDATE accounts SET failed_attempts = 0 WHERE username = ? AND failed_attempts != 0",
                  1, args, "clearing the failures count") == STORE_ERROR
               ? STORE_ERROR
               : STORE_OK;
}

/* The embedded store's password check: argon2id, and its own lock after STORE_LOCK_AFTER. */
static store_status sqlite_password_check(store *base, const store_account *a,
                                          const char *password, size_t len,
                                          store_password_result *out)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    store_status rc;
    int failed = 0;

    memset(out, 0, sizeof *out);
    out->attempts_left = -1;
    if (a->failed_attempts >= STORE_LOCK_AFTER) {
        out->verdict = STORE_PASSWORD_LOCKED;
        return STORE_OK;
    }
    if (password_check(password, len, a->password_hash)) {
        out->verdict = STORE_PASSWORD_RIGHT;
        return a->failed_attempts > 0 ? sqlite_password_ok(s, a->username) : STORE_OK;
    }
    if ((rc = sqlite_password_failed(s, a->username, &failed)) != STORE_OK)
        return rc;
    if (failed >= STORE_LOCK_AFTER) {
        out->verdict = STORE_PASSWORD_LOCKED;
        out->just_locked = failed == STORE_LOCK_AFTER;
    } else {
        out->verdict = STORE_PASSWORD_WRONG;
        out->attempts_left = STORE_LOCK_AFTER - failed;
    }
    return STORE_OK;
}

static int sqlite_lockout_attempts(const store *s)
{
    (void)s;
    return STORE_LOCK_AFTER;
}

/* The registration of username into out. Locked by caller. */
static store_status read_registration(struct sqlite_store *s, const char *username, store_registration *out)
{
    sqlite3_stmt *st = prepare(s,
                               "SELECT sha256, certificate, registered_at FROM registrations"
                               " WHERE username = ?",
                               1, &username);
    int step;

    memset(out, 0, sizeof *out);
    if (!st)
        return fail(s, "reading a registration");
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        out->registered = true;
        copy_text(out->sha256, sizeof out->sha256, st, 0);
        copy_text(out->cert_json, sizeof out->cert_json, st, 1);
        out->registered_at = text_time(sqlite3_column_text(st, 2));
    }
    sqlite3_finalize(st);
    return step == SQLITE_ROW || step == SQLITE_DONE ? STORE_OK : fail(s, "reading a registration");
}

/* Whether an account other than username holds sha256. Locked by caller. */
static store_status other_owner(struct sqlite_store *s, const char *username, const char *sha256, bool *other)
{
    const char *args[] = {sha256, username};
    sqlite3_stmt *st = prepare(s, "SELECT 1 FROM registrations WHERE sha256 = ? AND username != ?",
                               2, args);
    int step;

    if (!st)
        return fail(s, "looking for the certificate's owner");
    step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return fail(s, "looking for the certificate's owner");
    *other = step == SQLITE_ROW;
    return STORE_OK;
}

static store_status sqlite_other_owner(store *base, const char *username, const store_cert *cert,
                                       bool *other)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    const char *sha256 = cert->sha256;
    store_status rc;

    pthread_mutex_lock(&s->lock);
    rc = other_owner(s, username, sha256, other);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static store_status sqlite_register(store *base, const char *username, const store_cert *cert,
                                    long long now, long long password_expires,
                                    store_register_result *out)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    const char *sha256 = cert->sha256, *cert_json = cert->json;
    store_registration old;
    store_account account;
    char when[24], expires[24];
    const char *args[4];
    store_status rc;
    sqlite3_stmt *st;
    bool other = false;
    int step;

    memset(out, 0, sizeof *out);
    time_text(now, when);
    time_text(password_expires, expires);
    pthread_mutex_lock(&s->lock);
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        rc = fail(s, "starting a registration");
        goto unlock;
    }
    args[0] = username;
    st = prepare(s, "SELECT " ACCOUNT_COLUMNS " FROM accounts WHERE username = ?", 1, args);
    if (!st) {
        rc = fail(s, "reading an account");
        goto rollback;
    }
    step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        read_account(st, &account);
    sqlite3_finalize(st);
    if (step != SQLITE_ROW) {
        rc = step == SQLITE_DONE ? STORE_NOT_FOUND : fail(s, "reading an account");
        goto rollback;
    }
    if (!account.permitted) {
        rc = STORE_NOT_PERMITTED;
        goto rollback;
    }
    if ((rc = other_owner(s, username, sha256, &other)) != STORE_OK)
        goto rollback;
    if (other) {
        rc = STORE_OTHER_OWNER;
        goto rollback;
    }
    if ((rc = read_registration(s, username, &old)) != STORE_OK)
        goto rollback;
    if (old.registered && strcmp(old.sha256, sha256) == 0) {
        out->result = "unchanged";
        out->registered_at = old.registered_at;
    } else {
        args[0] = username;
        args[1] = sha256;
        args[2] = cert_json;
        args[3] = when;
        rc = exec_change(s,
                         "INSERT INTO registrations (username, sha256, certificate, registered_at)"
                         " VALUES (?, ?, ?, ?) ON CONFLICT (username) DO UPDATE SET"
                         " sha256 = excluded.sha256, certificate = excluded.certificate,"
                         " registered_at = excluded.registered_at",
                         4, args, "writing a registration");
        if (rc != STORE_OK) {
            if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE)
                rc = STORE_OTHER_OWNER; /* taken since the look above: not possible inside
                                           one transaction, kept for another backend's sake */
            goto rollback;
        }
        out->result = old.registered ? "replaced" : "registered";
        out->replaced = old.registered;
        if (old.registered)
            memcpy(out->replaced_json, old.cert_json, sizeof out->replaced_json);
        out->registered_at = now;
    }
    out->password_expires = account.password_expires;
    if (password_expires > 0) {
        args[0] = expires;
        args[1] = username;
        rc = exec_change(s,
                         "UPDATE accounts SET password_expires = ?, failed_attempts = 0 WHERE username = ?",
                         2, args, "extending the password");
        if (rc != STORE_OK)
            goto rollback;
        out->password_expires = password_expires;
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rc = fail(s, "committing a registration");
        goto rollback;
    }
    rc = STORE_OK;
    goto unlock;
rollback:
    if (rc == STORE_ERROR) {
        char saved[sizeof s->error];
        memcpy(saved, s->error, sizeof saved);
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        memcpy(s->error, saved, sizeof saved);
    } else {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
unlock:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static store_status sqlite_registration_get(store *base, const char *username, store_registration *out)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    store_status rc;

    pthread_mutex_lock(&s->lock);
    rc = read_registration(s, username, out);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static store_status sqlite_registration_clear(store *base, const char *username, store_registration *out)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    const char *args[] = {username};
    store_status rc;

    pthread_mutex_lock(&s->lock);
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        rc = fail(s, "starting to clear a registration");
        goto out;
    }
    rc = read_registration(s, username, out);
    if (rc == STORE_OK && out->registered)
        rc = exec_change(s, "DELETE FROM registrations WHERE username = ?", 1, args,
                         "clearing a registration");
    if (rc == STORE_OK && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = fail(s, "committing a cleared registration");
    if (rc != STORE_OK)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static store_status sqlite_account_put(store *base, const store_account *a, bool replace)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    char expires[24], failed[16];
    const char *args[8];
    store_status rc;

    if (strcmp(a->type, "full") != 0 && strcmp(a->type, "email_only") != 0)
        return STORE_INVALID;
    time_text(a->password_expires, expires);
    snprintf(failed, sizeof failed, "%d", a->failed_attempts);
    args[0] = a->username;
    args[1] = a->display_name;
    args[2] = a->edipi;
    args[3] = a->type;
    args[4] = a->password_hash;
    args[5] = expires;
    args[6] = failed;
    args[7] = a->permitted ? "1" : "0";
    pthread_mutex_lock(&s->lock);
    rc = exec_change(s,
                     replace ? "INSERT INTO accounts (" ACCOUNT_COLUMNS ") VALUES (?, ?, ?, ?, ?, ?,"
                               " CAST(? AS INTEGER), CAST(? AS INTEGER))"
                               " ON CONFLICT (username) DO UPDATE SET"
                               " display_name = excluded.display_name, edipi = excluded.edipi,"
                               " type = excluded.type, password_hash = excluded.password_hash,"
                               " password_expires = excluded.password_expires,"
                               " permitted = excluded.permitted"
                             : "INSERT INTO accounts (" ACCOUNT_COLUMNS ") VALUES (?, ?, ?, ?, ?, ?,"
                               " CAST(? AS INTEGER), CAST(? AS INTEGER))",
                     8, args, "adding an account");
    if (rc == STORE_ERROR && sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_PRIMARYKEY)
        rc = STORE_EXISTS;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static store_status sqlite_account_set_permitted(store *base, const char *username, bool permitted)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    const char *args[] = {permitted ? "1" : "0", username};

    return change(s, "UPDATE accounts SET permitted = CAST(? AS INTEGER) WHERE username = ?", 2,
                  args, "changing whether the account may use a CAC");
}

static store_status sqlite_account_set_password(store *base, const char *username, const char *hash,
                                        long long expires)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    char when[24];
    const char *args[] = {hash, when, username};

    time_text(expires, when);
    return change(s,
                  "UPDATE accounts SET password_hash = ?, password_expires = ?,"
                  " failed_attempts = 0 WHERE username = ?",
                  3, args, "setting a password");
}

static store_status sqlite_account_unlock(store *base, const char *username)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    const char *args[] = {username};

    return change(s, "UPDATE accounts SET failed_attempts = 0 WHERE username = ?", 1, args,
                  "unlocking the account");
}

static store_status sqlite_account_each(store *base, void (*fn)(const store_account *a, void *ctx), void *ctx)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    store_status rc = STORE_OK;
    store_account a;
    sqlite3_stmt *st;
    int step;

    pthread_mutex_lock(&s->lock);
    st = prepare(s, "SELECT " ACCOUNT_COLUMNS " FROM accounts ORDER BY username", 0, NULL);
    if (!st) {
        rc = fail(s, "listing accounts");
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        read_account(st, &a);
        fn(&a, ctx);
    }
    if (step != SQLITE_DONE)
        rc = fail(s, "listing accounts");
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static store_status sqlite_registration_each(store *base,
                                     void (*fn)(const char *username, const store_registration *r,
                                                void *ctx),
                                     void *ctx)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    store_status rc = STORE_OK;
    store_registration *r = malloc(sizeof *r);
    char username[STORE_USERNAME_MAX + 1];
    sqlite3_stmt *st;
    int step;

    if (!r)
        return STORE_ERROR;
    pthread_mutex_lock(&s->lock);
    st = prepare(s,
                 "SELECT username, sha256, certificate, registered_at FROM registrations"
                 " ORDER BY username",
                 0, NULL);
    if (!st) {
        rc = fail(s, "listing registrations");
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        memset(r, 0, sizeof *r);
        r->registered = true;
        copy_text(username, sizeof username, st, 0);
        copy_text(r->sha256, sizeof r->sha256, st, 1);
        copy_text(r->cert_json, sizeof r->cert_json, st, 2);
        r->registered_at = text_time(sqlite3_column_text(st, 3));
        fn(username, r, ctx);
    }
    if (step != SQLITE_DONE)
        rc = fail(s, "listing registrations");
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&s->lock);
    free(r);
    return rc;
}

static const struct store_backend sqlite_backend = {
    .kind = "sqlite",
    .close = sqlite_close,
    .error = sqlite_error,
    .account_get = sqlite_account_get,
    .account_by_edipi = sqlite_account_by_edipi,
    .password_check = sqlite_password_check,
    .lockout_attempts = sqlite_lockout_attempts,
    .register_cert = sqlite_register,
    .other_owner = sqlite_other_owner,
    .registration_get = sqlite_registration_get,
    .registration_clear = sqlite_registration_clear,
    .account_put = sqlite_account_put,
    .account_set_permitted = sqlite_account_set_permitted,
    .account_set_password = sqlite_account_set_password,
    .account_unlock = sqlite_account_unlock,
    .account_each = sqlite_account_each,
    .registration_each = sqlite_registration_each,
};
