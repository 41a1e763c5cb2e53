/* The contract's routes and their handlers. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "api.h"
#include "audit.h"

#define UNLOCK_WORDS "Ask the help desk, or log in with your CAC."
#define RESET_PATH API_PREFIX "password-reset"

/* The contract's error: status 0 is no error. extra's fields go into the answer. */
typedef struct api_error {
    unsigned status;
    const char *error;
    char message[320];
    json_t *extra;
    int retry_after_s;
} api_error;

/* One request being handled. */
struct call {
    const api_context *ctx;
    api_request *req;
    long long now;
    json_t *body;      /* the request's JSON object ({} without a body) */
    unsigned status;   /* the success's status */
    json_t *answer;    /* the success's body, NULL for none */
};

typedef api_error (*handler_fn)(struct call *c);

struct route {
    const char *path;   /* after /api/v1/, without a trailing slash */
    const char *method;
    handler_fn handler;
};

static const api_error no_error = {.status = 0};

static api_error fail(unsigned status, const char *error, json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static api_error fail(unsigned status, const char *error, json_t *extra, const char *fmt, ...)
{
    api_error e = {.status = status, .error = error, .extra = extra};
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    return e;
}

/* ---- memory that held a password ---- */

static void *wiping_malloc(size_t size)
{
    return malloc(size);
}

static void wiping_free(void *p)
{
    if (p) {
        OPENSSL_cleanse(p, malloc_usable_size(p));
        free(p);
    }
}

void api_init(void)
{
    json_set_alloc_funcs(wiping_malloc, wiping_free);
}

/* ---- the contract's objects ---- */

/* RFC 3339 in UTC; "" for 0. */
static void iso_time(long long t, char out[24])
{
    time_t tt = (time_t)t;
    struct tm tm;

    out[0] = '\0';
    if (t != 0 && gmtime_r(&tt, &tm))
        strftime(out, 24, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *json_time(long long t)
{
    char buf[24];

    iso_time(t, buf);
    return buf[0] ? json_string(buf) : json_null();
}

static json_t *json_text_or_null(const char *s)
{
    return s && s[0] ? json_string(s) : json_null();
}

/* The certificate object of docs/portal-api.md. */
static json_t *cert_object(const cacreg_cert *cert)
{
    const char *serial = cert->serial;

    while (serial[0] == '0' && serial[1]) /* upper-case hex without leading zeros */
        serial++;
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:s}", "subject", cert->subject, "issuer",
                     cert->issuer, "serial", serial, "edipi", json_text_or_null(cert->edipi),
                     "not_before", json_time(cert->not_before), "not_after",
                     json_time(cert->not_after), "sha256", cert->sha256);
}

static json_t *account_object(const store_account *a)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "username", a->username, "display_name",
                     a->display_name, "edipi", a->edipi, "type", a->type, "password_expires",
                     json_time(a->password_expires));
}

/* A stored certificate object, parsed again (null when it cannot be). */
static json_t *stored_cert(const char *text)
{
    json_t *v = json_loads(text, 0, NULL);

    return v ? v : json_null();
}

/*
 * The store could not answer: 503, with the directory's own error when it is
 * the directory (down, or refusing the portal). Nothing is half-written (a
 * write is one transaction, or one LDAP modify), and the audit line says so.
 */
static api_error store_failed(struct call *c, const char *what, store_status rc)
{
    audit_line l;

    audit_begin(&l, "store_error", c->req->addr);
    audit_add(&l, "during", what);
    audit_add(&l, "store", store_kind(c->ctx->store));
    audit_add(&l, "error", store_error(c->ctx->store));
    audit_add(&l, "half_written", "no"); /* one transaction or one modify: all or nothing */
    audit_send(&l, 1);
    if (rc == STORE_UNAVAILABLE)
        return fail(503, "directory_unavailable", NULL,
                    "The portal cannot reach the directory that keeps the accounts now; nothing "
                    "was changed. Try again in a few minutes.");
    return fail(503, "unavailable", NULL, "The portal cannot reach its accounts now; try again later.");
}

/* ---- what a request carries ---- */

/* The string field name: present, a non-empty string, at most API_FIELD_MAX characters. */
static api_error field(struct call *c, const char *name, const char **out, size_t *len)
{
    json_t *v = json_object_get(c->body, name);
    size_t chars = 0;

    if (!json_is_string(v) || json_string_length(v) == 0)
        return fail(400, "bad_request", json_pack("{s:s}", "field", name),
                    "The field '%s' is missing or not a string.", name);
    *out = json_string_value(v);
    *len = json_string_length(v);
    for (size_t i = 0; i < *len; i++)
        chars += ((unsigned char)(*out)[i] & 0xC0) != 0x80;
    if (chars > API_FIELD_MAX)
        return fail(400, "bad_request", json_pack("{s:s}", "field", name),
                    "The field '%s' is too long.", name);
    return no_error;
}

/* The session's account, from Authorization: Bearer. */
/* The session of Authorization: Bearer: its token and username. */
static api_error session_of(struct call *c, const char **token,
                            char username[STORE_USERNAME_MAX + 1])
{
    const char *auth = c->req->authorization;

    if (!auth || strncmp(auth, "Bearer ", 7) != 0)
        return fail(401, "no_session", NULL, "Log in first.");
    auth += 7;
    while (*auth == ' ')
        auth++;
    if (!*auth)
        return fail(401, "no_session", NULL, "Log in first.");
    switch (sessions_touch(c->ctx->sessions, auth, c->now, username)) {
    case SESSION_OK:
        break;
    case SESSION_EXPIRED:
        return fail(401, "session_expired", NULL, "The session has ended; log in again.");
    default:
        return fail(401, "no_session", NULL, "That session is not known; log in again.");
    }
    *token = auth;
    return no_error;
}

/* The session's account, from Authorization: Bearer. */
static api_error session_account(struct call *c, store_account *account, const char **token)
{
    char username[STORE_USERNAME_MAX + 1];
    store_status rc;
    api_error e = session_of(c, token, username);

    if (e.status)
        return e;
    rc = store_account_get(c->ctx->store, username, account);
    if (rc == STORE_NOT_FOUND)
        return fail(401, "no_session", NULL, "That session is not known; log in again.");
    if (rc != STORE_OK)
        return store_failed(c, "reading the session's account", rc);
    return no_error;
}

/*
 * The presented certificate through the core's checks, in the 403 order up to
 * not_identity_certificate; on success check holds the verified identity.
 */
static api_error identity(struct call *c, cacreg_check *check)
{
    json_t *extra;
    char when[24];

    if (!c->req->cert_der)
        return fail(403, "no_client_certificate", NULL,
                    "No certificate came with the connection: the card's certificate was not "
                    "offered.");
    cacreg_checker_check(c->ctx->checker, c->req->cert_der, c->req->cert_len, c->now, check);
    if (!check->readable)
        return fail(403, "untrusted_issuer", json_pack("{s:s}", "issuer", ""),
                    "The certificate cannot be read.");
    extra = json_pack("{s:o}", "certificate", cert_object(&check->cert));
    switch (check->verdict) {
    case CACREG_VERDICT_OK:
    case CACREG_VERDICT_EDIPI_MISMATCH: /* not given by the checker */
        json_decref(extra);
        return no_error;
    case CACREG_VERDICT_UNTRUSTED:
    case CACREG_VERDICT_NO_TRUST_STORE:
        json_object_set_new(extra, "issuer", json_string(check->cert.issuer));
        return fail(403, "untrusted_issuer", extra,
                    "The certificate's issuer is not accepted for CAC registration.");
    case CACREG_VERDICT_NOT_YET_VALID:
        iso_time(check->cert.not_before, when);
        json_object_set_new(extra, "not_before", json_string(when));
        return fail(403, "certificate_not_yet_valid", extra, "The certificate is not valid until %s.",
                    when);
    case CACREG_VERDICT_EXPIRED:
        iso_time(check->cert.not_after, when);
        json_object_set_new(extra, "not_after", json_string(when));
        return fail(403, "certificate_expired", extra, "The certificate expired on %.10s.", when);
    case CACREG_VERDICT_REVOKED:
        json_object_set_new(extra, "revoked_at", json_time(check->revoked_at));
        json_object_set_new(extra, "source", json_string(check->revoked_by));
        return fail(403, "certificate_revoked", extra, "The certificate has been revoked.");
    case CACREG_VERDICT_REVOCATION_UNKNOWN:
        return fail(503, "revocation_unavailable", extra,
                    "The certificate's revocation status cannot be checked now; try again "
                    "later.");
    case CACREG_VERDICT_WRONG_KIND:
        break;
    }
    return fail(403, "not_identity_certificate", extra,
                "This is not the card's identity certificate (the one with your name used to "
                "log in); an email certificate was chosen.");
}

/* The audit line of a certificate operation: event, result or reason, who, which card. */
static void audit_cert_event(struct call *c, const char *event, const char *result,
                             const api_error *e, const char *username, const cacreg_check *check)
{
    audit_line l;

    audit_begin(&l, event, c->req->addr);
    audit_add(&l, "result", e && e->status ? "refused" : result);
    if (e && e->status)
        audit_add(&l, "reason", e->error);
    audit_add(&l, "username", username);
    if (check && check->readable)
        audit_add_cert(&l, &check->cert);
    if (check && check->soft_failed)
        audit_add(&l, "revocation", "soft_failed");
    if (check && check->ocsp_cached)
        audit_add(&l, "ocsp", "cached");
    audit_send(&l, e && e->status);
}

/* The password-attempt limits for this address and username. */
static api_error attempt_allowed(struct call *c, const char *username)
{
    char key[96];
    int retry = 0;
    audit_line l;
    api_error e;

    snprintf(key, sizeof key, "u:%s", username);
    if (limits_take(c->ctx->password_per_address, c->req->addr, c->now, &retry) &&
        limits_take(c->ctx->password_per_account, key, c->now, &retry))
        return no_error;
    audit_begin(&l, "rate_limited", c->req->addr);
    audit_add(&l, "username", username);
    audit_send(&l, 1);
    e = fail(429, "too_many_requests", json_pack("{s:i}", "retry_after", retry),
             "Too many password attempts; try again in %d seconds.", retry);
    e.retry_after_s = retry;
    return e;
}

/*
 * Checks an account's password through the store (the embedded store's lock,
 * or a bind to the directory, whose policy decides): account_locked,
 * invalid_credentials with attempts_left when known, password_expired when the
 * directory says so, or no error.
 */
static api_error password_ok(struct call *c, const store_account *account, const char *password,
                             size_t len, const char *event)
{
    store_password_result r;
    store_status rc = store_password_check(c->ctx->store, account, password, len, &r);
    audit_line l;

    if (rc != STORE_OK)
        return store_failed(c, "checking a password", rc);
    switch (r.verdict) {
    case STORE_PASSWORD_RIGHT:
        return no_error;
    case STORE_PASSWORD_LOCKED:
        if (r.just_locked) {
            audit_begin(&l, "lock", c->req->addr);
            audit_add(&l, "username", account->username);
            audit_add(&l, "during", event);
            audit_send(&l, 1);
        }
        return fail(423, "account_locked", json_pack("{s:s}", "unlock", UNLOCK_WORDS),
                    "The account is locked after too many wrong passwords.");
    case STORE_PASSWORD_EXPIRED:
        return fail(401, "password_expired", json_pack("{s:s}", "reset_path", RESET_PATH),
                    "The password has expired.");
    case STORE_PASSWORD_WRONG:
        break;
    }
    return fail(401, "invalid_credentials",
                r.attempts_left >= 0 ? json_pack("{s:i}", "attempts_left", r.attempts_left) : NULL,
                "The username or password is wrong.");
}

/*
 * What a person and the administrator are told after a card leaves a directory
 * (replaced or cleared): machines that cached it (sssd, SSSD#6066) accept it
 * until their cache is emptied. NULL when nothing left a directory.
 */
static const char *cached_card_note(const struct call *c, bool card_left)
{
    if (!card_left || strcmp(store_kind(c->ctx->store), "ldap") != 0)
        return NULL;
    return "Machines that have already seen the old card (logins through sssd) may still "
           "accept it until their cache is emptied. If it was lost or stolen, tell the help desk "
           "now.";
}

/* The password has expired by the account's date (0: the store does not know one). */
static bool expired(const store_account *a, long long now)
{
    return a->password_expires != 0 && a->password_expires < now;
}

/* The certificate as a registration writes it: fingerprint, object, DER, directory forms. */
static bool store_cert_of(const api_request *req, const cacreg_cert *cert, store_cert *out,
                          char **json, char *mapping, size_t mapping_size)
{
    json_t *obj = cert_object(cert);

    *json = obj ? json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(obj);
    cacreg_cert_ad_mapping(cert, mapping, mapping_size);
    *out = (store_cert){.sha256 = cert->sha256, .json = *json, .der = req->cert_der,
                        .der_len = req->cert_len, .issuer = cert->issuer,
                        .serial_dec = cert->serial_dec, .ad_mapping = mapping};
    return *json != NULL;
}

/* A new session for username: session and expires_at go into obj. */
static api_error new_session(struct call *c, const char *username, json_t *obj)
{
    char token[SESSION_TOKEN_SIZE];
    long long expires = 0;

    if (sessions_start(c->ctx->sessions, username, c->now, token, &expires) != SESSION_OK)
        return fail(503, "unavailable", NULL, "The portal has too many sessions open; try again later.");
    json_object_set_new(obj, "session", json_string(token));
    json_object_set_new(obj, "expires_at", json_time(expires));
    OPENSSL_cleanse(token, sizeof token);
    return no_error;
}

/* ---- the handlers ---- */

static api_error api_root(struct call *c)
{
    c->answer = json_pack("{s:s, s:i, s:o, s:i, s:i}", "api", "cacreg-portal", "version", 1,
                          "server_time", json_time(c->now), "session_ttl",
                          sessions_ttl(c->ctx->sessions), "password_extension_days",
                          API_PASSWORD_EXTENSION_DAYS);
    return no_error;
}

static api_error api_login(struct call *c)
{
    const char *username = NULL, *password = NULL;
    size_t ulen, plen;
    store_account account;
    store_status rc;
    api_error e;
    audit_line l;

    if ((e = field(c, "username", &username, &ulen)).status ||
        (e = field(c, "password", &password, &plen)).status)
        return e;
    if ((e = attempt_allowed(c, username)).status)
        return e;
    rc = store_account_get(c->ctx->store, username, &account);
    if (rc == STORE_NOT_FOUND) {
        int attempts = store_lockout_attempts(c->ctx->store);
        if (!store_password_dummy(c->ctx->store, password, plen))
            password_dummy_check(password, plen, c->ctx->cost);
        e = fail(401, "invalid_credentials",
                 attempts >= 0 ? json_pack("{s:i}", "attempts_left", attempts) : NULL,
                 "The username or password is wrong.");
    } else if (rc != STORE_OK) {
        e = store_failed(c, "reading an account", rc);
    } else if (!(e = password_ok(c, &account, password, plen, "password_login")).status &&
               expired(&account, c->now)) {
        e = fail(401, "password_expired", json_pack("{s:s}", "reset_path", RESET_PATH),
                 "The password has expired.");
    }
    if (!e.status) {
        c->answer = json_object();
        e = new_session(c, account.username, c->answer);
        if (!e.status)
            json_object_set_new(c->answer, "account", account_object(&account));
    }
    audit_begin(&l, "password_login", c->req->addr);
    audit_add(&l, "result", e.status ? "refused" : "ok");
    audit_add(&l, "reason", e.status ? e.error : NULL);
    audit_add(&l, "username", username);
    audit_send(&l, e.status != 0);
    return e;
}

static api_error api_logout(struct call *c)
{
    char username[STORE_USERNAME_MAX + 1];
    const char *token;
    api_error e = session_of(c, &token, username); /* the store is not asked: nothing to read */

    if (e.status)
        return e;
    sessions_end(c->ctx->sessions, token, c->now);
    c->status = 204;
    return no_error;
}

static api_error api_password_reset(struct call *c)
{
    const char *username;
    store_account account;
    size_t len;
    audit_line l;
    store_status rc;
    api_error e = field(c, "username", &username, &len);

    if (e.status)
        return e;
    rc = store_account_get(c->ctx->store, username, &account);
    audit_begin(&l, "reset", c->req->addr);
    audit_add(&l, "result", "requested");
    audit_add(&l, "username", username);
    audit_add(&l, "account", rc == STORE_OK ? "known" : rc == STORE_NOT_FOUND ? "unknown" : "error");
    audit_send(&l, 0);
    c->status = 202;
    c->answer = json_pack("{s:s, s:s++}", "status", "sent", "message", "If ", username,
                          " is an account, instructions to set a new password were sent to its "
                          "email address on file.");
    return no_error;
}

static api_error api_cac_login(struct call *c)
{
    cacreg_check *check = malloc(sizeof *check);
    long long extended = c->now + API_PASSWORD_EXTENSION_DAYS * 86400LL;
    store_register_result *reg = malloc(sizeof *reg);
    store_account account;
    const char *username = NULL;
    char *cert_json = NULL, mapping[1024];
    json_t *registration;
    store_cert cert;
    store_status rc;
    api_error e;

    if (!check || !reg) {
        e = fail(503, "unavailable", NULL, "The portal is out of memory; try again later.");
        goto out;
    }
    memset(check, 0, sizeof *check);
    memset(reg, 0, sizeof *reg);
    if ((e = identity(c, check)).status)
        goto audit;
    rc = store_account_by_edipi(c->ctx->store, check->cert.edipi, &account);
    if (rc == STORE_NOT_FOUND) {
        e = fail(403, "no_account",
                 json_pack("{s:o, s:o}", "edipi", json_text_or_null(check->cert.edipi),
                           "certificate", cert_object(&check->cert)),
                 "No account has this card's EDIPI %s.", check->cert.edipi);
        goto audit;
    }
    if (rc != STORE_OK) {
        e = store_failed(c, "finding the card's account", rc);
        goto audit;
    }
    username = account.username;
    rc = store_cert_of(c->req, &check->cert, &cert, &cert_json, mapping, sizeof mapping)
             ? store_register(c->ctx->store, account.username, &cert, c->now, extended, reg)
             : STORE_ERROR;
    free(cert_json);
    switch (rc) {
    case STORE_OK:
        break;
    case STORE_NOT_PERMITTED:
        e = fail(403, "account_not_permitted",
                 json_pack("{s:o}", "certificate", cert_object(&check->cert)),
                 "This account may not log in with a CAC.");
        goto audit;
    case STORE_OTHER_OWNER:
        e = fail(403, "registered_to_other_account",
                 json_pack("{s:o}", "certificate", cert_object(&check->cert)),
                 "This certificate is registered to a different account.");
        goto audit;
    case STORE_NOT_FOUND:
        e = fail(403, "no_account",
                 json_pack("{s:o, s:o}", "edipi", json_text_or_null(check->cert.edipi),
                           "certificate", cert_object(&check->cert)),
                 "No account has this card's EDIPI %s.", check->cert.edipi);
        goto audit;
    default:
        e = store_failed(c, "registering the card", rc);
        goto audit;
    }
    account.password_expires = reg->password_expires;
    account.failed_attempts = 0;
    c->answer = json_object();
    if ((e = new_session(c, account.username, c->answer)).status)
        goto audit;
    registration = json_pack("{s:s, s:o, s:o}", "result", reg->result, "certificate",
                             cert_object(&check->cert), "replaced",
                             reg->replaced ? stored_cert(reg->replaced_json) : json_null());
    if (cached_card_note(c, reg->replaced))
        json_object_set_new(registration, "note", json_string(cached_card_note(c, true)));
    json_object_set_new(c->answer, "account", account_object(&account));
    json_object_set_new(c->answer, "registration", registration);
    json_object_set_new(c->answer, "password_expires", json_time(reg->password_expires));
    json_object_set_new(c->answer, "password_extended_days",
                        json_integer(API_PASSWORD_EXTENSION_DAYS));
audit:
    audit_cert_event(c, "cac_login", "ok", &e, username, check);
    if (!e.status) {
        audit_line l;
        audit_begin(&l, "registration", c->req->addr);
        audit_add(&l, "result", reg->result ? reg->result : "?");
        audit_add(&l, "via", "cac_login");
        audit_add(&l, "username", username);
        audit_add_cert(&l, &check->cert);
        audit_add(&l, "cached_elsewhere", cached_card_note(c, reg->replaced) ? "old_card" : NULL);
        audit_send(&l, 0);
    }
out:
    free(check);
    free(reg);
    return e;
}

static api_error api_get_registration(struct call *c)
{
    store_registration *reg = malloc(sizeof *reg);
    store_account account;
    const char *token;
    store_status rc;
    api_error e;

    if (!reg)
        return fail(503, "unavailable", NULL, "The portal is out of memory; try again later.");
    if ((e = session_account(c, &account, &token)).status)
        goto out;
    if ((rc = store_registration_get(c->ctx->store, account.username, reg)) != STORE_OK) {
        e = store_failed(c, "reading a registration", rc);
        goto out;
    }
    c->answer = json_pack("{s:o, s:b, s:o, s:o}", "account", account_object(&account),
                          "registered", reg->registered, "certificate",
                          reg->registered ? stored_cert(reg->cert_json) : json_null(),
                          "registered_at", reg->registered ? json_time(reg->registered_at)
                                                           : json_null());
out:
    free(reg);
    return e;
}

static api_error api_clear_registration(struct call *c)
{
    store_registration *reg = malloc(sizeof *reg);
    store_account account;
    const char *token;
    store_status rc;
    audit_line l;
    api_error e;

    if (!reg)
        return fail(503, "unavailable", NULL, "The portal is out of memory; try again later.");
    if ((e = session_account(c, &account, &token)).status)
        goto out;
    if ((rc = store_registration_clear(c->ctx->store, account.username, reg)) != STORE_OK) {
        e = store_failed(c, "clearing a registration", rc);
        goto out;
    }
    c->answer = json_pack("{s:b, s:o}", "registered", 0, "cleared",
                          reg->registered ? stored_cert(reg->cert_json) : json_null());
    if (cached_card_note(c, reg->registered))
        json_object_set_new(c->answer, "note", json_string(cached_card_note(c, true)));
    audit_begin(&l, "registration", c->req->addr);
    audit_add(&l, "result", reg->registered ? "cleared" : "nothing_to_clear");
    audit_add(&l, "username", account.username);
    audit_add(&l, "sha256", reg->registered ? reg->sha256 : NULL);
    audit_add(&l, "cached_elsewhere", cached_card_note(c, reg->registered) ? "old_card" : NULL);
    audit_send(&l, 0);
out:
    free(reg);
    return e;
}

static api_error api_register(struct call *c)
{
    cacreg_check *check = malloc(sizeof *check);
    store_register_result *reg = malloc(sizeof *reg);
    const char *password = NULL, *token;
    store_account account;
    char *cert_json = NULL, mapping[1024];
    store_cert cert;
    bool other = false;
    store_status rc;
    size_t plen = 0;
    api_error e;

    if (!check || !reg) {
        free(check);
        free(reg);
        return fail(503, "unavailable", NULL, "The portal is out of memory; try again later.");
    }
    memset(check, 0, sizeof *check);
    memset(reg, 0, sizeof *reg);
    memset(&account, 0, sizeof account);
    if ((e = session_account(c, &account, &token)).status ||
        (e = field(c, "password", &password, &plen)).status)
        goto out; /* before any certificate: no audit line of a registration */
    /* The certificate before the password: a wrong card costs no password attempt. */
    if ((e = identity(c, check)).status)
        goto audit;
    if (!account.permitted) {
        e = fail(403, "account_not_permitted",
                 json_pack("{s:o}", "certificate", cert_object(&check->cert)),
                 "This account may not register a CAC.");
        goto audit;
    }
    if (!store_cert_of(c->req, &check->cert, &cert, &cert_json, mapping, sizeof mapping)) {
        e = fail(503, "unavailable", NULL, "The portal is out of memory; try again later.");
        goto audit;
    }
    if ((rc = store_other_owner(c->ctx->store, account.username, &cert, &other)) != STORE_OK) {
        e = store_failed(c, "looking for the certificate's owner", rc);
        goto audit;
    }
    if (other) {
        e = fail(403, "registered_to_other_account",
                 json_pack("{s:o}", "certificate", cert_object(&check->cert)),
                 "This certificate is registered to a different account.");
        goto audit;
    }
    if (strcmp(check->cert.edipi, account.edipi) != 0) {
        e = fail(403, "edipi_mismatch",
                 json_pack("{s:o, s:o}", "edipi", json_text_or_null(check->cert.edipi),
                           "certificate", cert_object(&check->cert)),
                 "This card belongs to someone else (EDIPI %s).", check->cert.edipi);
        goto audit;
    }
    if ((e = attempt_allowed(c, account.username)).status ||
        (e = password_ok(c, &account, password, plen, "registration")).status)
        goto audit;
    rc = store_register(c->ctx->store, account.username, &cert, c->now, 0, reg);
    if (rc == STORE_NOT_PERMITTED)
        e = fail(403, "account_not_permitted",
                 json_pack("{s:o}", "certificate", cert_object(&check->cert)),
                 "This account may not register a CAC.");
    else if (rc == STORE_OTHER_OWNER)
        e = fail(403, "registered_to_other_account",
                 json_pack("{s:o}", "certificate", cert_object(&check->cert)),
                 "This certificate is registered to a different account.");
    else if (rc == STORE_NOT_FOUND)
        e = fail(401, "no_session", NULL, "That session is not known; log in again.");
    else if (rc != STORE_OK)
        e = store_failed(c, "registering the card", rc);
    if (e.status)
        goto audit;
    c->answer = json_pack("{s:s, s:o, s:o, s:o}", "result", reg->result, "certificate",
                          cert_object(&check->cert), "replaced",
                          reg->replaced ? stored_cert(reg->replaced_json) : json_null(),
                          "registered_at", json_time(reg->registered_at));
    if (cached_card_note(c, reg->replaced))
        json_object_set_new(c->answer, "note", json_string(cached_card_note(c, true)));
audit:
    {
        audit_line l;
        audit_begin(&l, "registration", c->req->addr);
        audit_add(&l, "result", e.status ? "refused" : reg->result ? reg->result : "?");
        audit_add(&l, "reason", e.status ? e.error : NULL);
        audit_add(&l, "via", "password_session");
        audit_add(&l, "username", account.username);
        if (check->readable)
            audit_add_cert(&l, &check->cert);
        audit_add(&l, "cached_elsewhere",
                  !e.status && cached_card_note(c, reg->replaced) ? "old_card" : NULL);
        if (check->readable && check->soft_failed)
            audit_add(&l, "revocation", "soft_failed");
        audit_send(&l, e.status != 0);
    }
out:
    if (password)
        OPENSSL_cleanse((char *)password, plen);
    free(cert_json);
    free(check);
    free(reg);
    return e;
}

static const struct route routes[] = {
    {.path = "", .method = "GET", .handler = api_root},
    {.path = "session", .method = "POST", .handler = api_login},
    {.path = "session", .method = "DELETE", .handler = api_logout},
    {.path = "password-reset", .method = "POST", .handler = api_password_reset},
    {.path = "cac-login", .method = "POST", .handler = api_cac_login},
    {.path = "registration", .method = "GET", .handler = api_get_registration},
    {.path = "registration", .method = "DELETE", .handler = api_clear_registration},
    {.path = "registration", .method = "POST", .handler = api_register},
};

/* ---- the dispatcher ---- */

/* The route for url and method; *path_known says whether url is a path at all. */
static const struct route *find_route(const char *url, const char *method, bool *path_known)
{
    size_t len;

    *path_known = false;
    if (strncmp(url, API_PREFIX, strlen(API_PREFIX)) != 0)
        return NULL;
    url += strlen(API_PREFIX);
    len = strlen(url);
    while (len > 0 && url[len - 1] == '/')
        len--;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strlen(routes[i].path) != len || strncmp(routes[i].path, url, len) != 0)
            continue;
        *path_known = true;
        if (strcmp(routes[i].method, method) == 0)
            return &routes[i];
    }
    return NULL;
}

/* The body's JSON object, or the contract's reason it is not one. */
static api_error read_body(struct call *c)
{
    api_request *req = c->req;
    const char *ct = req->content_type;
    size_t ct_len;

    if (req->body_too_large)
        return fail(413, "too_large", NULL, "The request body is over 8 KiB.");
    if (!req->body_present || req->body_len == 0) {
        c->body = json_object();
        return no_error;
    }
    while (ct && *ct == ' ')
        ct++;
    ct_len = ct ? strcspn(ct, "; \t") : 0;
    if (!ct || ct_len != strlen("application/json") || strncasecmp(ct, "application/json", ct_len) != 0)
        return fail(415, "unsupported_media_type", NULL, "Send the body as application/json.");
    c->body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
    if (!c->body)
        return fail(400, "bad_request", NULL, "The body is not JSON.");
    if (!json_is_object(c->body))
        return fail(400, "bad_request", NULL, "The body is not a JSON object.");
    return no_error;
}

/* Serializes obj into answer (obj is released). */
static void set_body(api_answer *answer, json_t *obj)
{
    answer->body = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    answer->body_len = answer->body ? strlen(answer->body) : 0;
    json_decref(obj);
    if (obj && (!answer->body || answer->body_len > API_ANSWER_MAX)) {
        free(answer->body);
        answer->status = 500;
        answer->body = strdup("{\"error\":\"internal\",\"message\":\"The answer could not be made.\"}");
        answer->body_len = answer->body ? strlen(answer->body) : 0;
    }
}

static void error_answer(const api_error *e, api_answer *answer)
{
    json_t *obj = e->extra ? e->extra : json_object();

    json_object_set_new(obj, "error", json_string(e->error));
    json_object_set_new(obj, "message", json_string(e->message));
    answer->status = e->status;
    answer->retry_after_s = e->retry_after_s;
    set_body(answer, obj);
}

void api_error_answer(unsigned status, const char *error, const char *message, api_answer *answer)
{
    api_error e = {.status = status, .error = error};

    memset(answer, 0, sizeof *answer);
    snprintf(e.message, sizeof e.message, "%s", message);
    error_answer(&e, answer);
}

void api_handle(const api_context *ctx, api_request *req, long long now, api_answer *answer)
{
    struct call c = {.ctx = ctx, .req = req, .now = now, .status = 200};
    const struct route *route;
    bool path_known;
    api_error e;

    memset(answer, 0, sizeof *answer);
    route = find_route(req->url, req->method, &path_known);
    if (!path_known)
        e = fail(404, "not_found", NULL, "No such path.");
    else if (!route)
        e = fail(405, "method_not_allowed", NULL, "That method is not allowed here.");
    else if (!(e = read_body(&c)).status)
        e = route->handler(&c);
    if (req->body)
        OPENSSL_cleanse(req->body, req->body_len);
    json_decref(c.body); /* strings wiped as they are freed */
    if (e.status) {
        json_decref(c.answer);
        error_answer(&e, answer);
        return;
    }
    answer->status = c.status;
    set_body(answer, c.status == 204 ? (json_decref(c.answer), NULL) : c.answer);
}
