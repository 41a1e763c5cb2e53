/*
 * The directory store: accounts are the site's LDAP directory entries
 * (libldap, OpenLDAP's), found under a base with a filter; a password is
 * checked by binding as the entry; a registration writes the identity
 * certificate as userCertificate;binary and/or AD's strong mapping
 * altSecurityIdentities X509:<I>..<SR>.., in one modify of the entry.
 *
 * Beside it, the ledger (ledger.c, in the portal's database) notes what this
 * portal wrote for whom, so that replace and clear remove only those values
 * and leave every other certificate on the entry.
 *
 * TLS always, verified against the configured CA (ldaps://, or ldap:// with
 * StartTLS); the URIs are tried in order; a connection found gone is made
 * again; every operation is bounded by ldap_timeout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <ldap.h>
#include <openssl/crypto.h>

#include "ledger.h"
#include "store_backend.h"

#define PASSWORD_MAX 512
#define VALUES_MAX 32          /* certificates or mappings of one entry looked at */
#define FILTER_MAX 8192
#define DAY_S 86400LL
#define EXTENSION_DAYS 150     /* written as shadowMax: the days a CAC login gives */
#define ATTR_CERT "userCertificate;binary"
#define ATTR_ALTSEC "altSecurityIdentities"

enum expiry { EXPIRY_SHADOW, EXPIRY_PWDLASTSET, EXPIRY_NONE };

struct ldap_store {
    struct store base; /* first: store.c's calls reach the table */
    char uri[1024];
    bool starttls;
    char ca_file[1024];
    char bind_dn[STORE_DN_MAX + 1];
    char password_file[1024];
    char password[PASSWORD_MAX + 1]; /* the service account's, wiped at close */
    size_t password_len;
    char base_dn[STORE_DN_MAX + 1];
    char user_filter[512];
    char username_attr[64], edipi_attr[64], display_attr[64];
    bool write_cert, write_altsec, match_gser;
    enum expiry expiry;
    int timeout_s;
    int lockout_attempts;
    pthread_mutex_t lock;       /* the service connection */
    LDAP *ld;
    pthread_mutex_t bind_lock;  /* the connection passwords are checked on */
    LDAP *binder;
    pthread_mutex_t write_lock; /* one registration or clear at a time: look, then write */
    ledger *ledger;             /* what this portal wrote; NULL for --check-config */
};

/* The last failure's sentence, per thread (store_error's promise). */
static _Thread_local char last_error[768];

/* An entry's values, as one registration looks at them. */
struct entry {
    char dn[STORE_DN_MAX + 1];
    store_account account;
    long long shadow_last_change, shadow_max; /* days; -1 when absent */
    struct berval *certs[VALUES_MAX];         /* userCertificate values (malloc'd copies) */
    size_t ncerts;
    char *altsecs[VALUES_MAX];                /* altSecurityIdentities values */
    size_t naltsecs;
    int failures;                             /* pwdFailureTime values or badPwdCount; -1 none */
};

/* A ledger row, and whether its values are on the entry now. */
struct noted {
    ledger_row row;
    bool cert_present, altsec_present;
};

#define NOTED_MAX 8

static struct ldap_store *of(store *s)
{
    return (struct ldap_store *)s;
}

static store_status say(store_status rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static store_status say(store_status rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return rc;
}

/* Whether an LDAP result means the connection is no good (drop it, make another). */
static bool connection_lost(int code)
{
    return code == LDAP_SERVER_DOWN || code == LDAP_CONNECT_ERROR || code == LDAP_TIMEOUT ||
           code == LDAP_UNAVAILABLE || code == LDAP_BUSY || code == LDAP_LOCAL_ERROR;
}

/* An LDAP failure as the store's: the directory is down or refuses (nothing was written). */
static store_status ldap_failed(struct ldap_store *s, LDAP **ld, const char *what, int code)
{
    char *diag = NULL;

    if (*ld)
        ldap_get_option(*ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
    say(STORE_UNAVAILABLE, "%s: the directory (%s): %s (%d)%s%s", what, s->uri,
        ldap_err2string(code), code, diag && diag[0] ? ": " : "", diag ? diag : "");
    ldap_memfree(diag);
    if (*ld && connection_lost(code)) {
        ldap_unbind_ext_s(*ld, NULL, NULL);
        *ld = NULL;
    }
    return STORE_UNAVAILABLE;
}

/* A new connection's handle with TLS verified against the CA, StartTLS done when asked. */
static store_status open_connection(struct ldap_store *s, LDAP **out)
{
    struct timeval tv = {.tv_sec = s->timeout_s};
    int version = LDAP_VERSION3, demand = LDAP_OPT_X_TLS_DEMAND, newctx = 0, rc;
    int tls_min = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2;
    LDAP *ld = NULL;

    *out = NULL;
    rc = ldap_initialize(&ld, s->uri);
    if (rc != LDAP_SUCCESS)
        return say(STORE_UNAVAILABLE, "ldap_uri: '%s' cannot be used: %s", s->uri,
                   ldap_err2string(rc));
    if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version) != LDAP_OPT_SUCCESS ||
        ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
        ldap_set_option(ld, LDAP_OPT_RESTART, LDAP_OPT_ON) != LDAP_OPT_SUCCESS ||
        /* Without it libldap 2.5's TLS handshake spins on a directory that never
         * answers; with it, the handshake waits in poll() within the network timeout. */
        ldap_set_option(ld, LDAP_OPT_CONNECT_ASYNC, LDAP_OPT_ON) != LDAP_OPT_SUCCESS ||
        ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) != LDAP_OPT_SUCCESS ||
        ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv) != LDAP_OPT_SUCCESS ||
        ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, s->ca_file) != LDAP_OPT_SUCCESS ||
        ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) != LDAP_OPT_SUCCESS ||
        ldap_set_option(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &tls_min) != LDAP_OPT_SUCCESS ||
        ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &newctx) != LDAP_OPT_SUCCESS) {
        ldap_unbind_ext_s(ld, NULL, NULL);
        return say(STORE_UNAVAILABLE, "ldap_ca_file: TLS to the directory cannot be set up with %s",
                   s->ca_file);
    }
    if (s->starttls && (rc = ldap_start_tls_s(ld, NULL, NULL)) != LDAP_SUCCESS)
        return ldap_failed(s, &ld, "StartTLS", rc == LDAP_SUCCESS ? LDAP_OTHER : rc);
    *out = ld;
    return STORE_OK;
}

/* The service connection, made and bound as the service account when there is none. Locked. */
static store_status service(struct ldap_store *s)
{
    struct berval cred = {.bv_len = s->password_len, .bv_val = s->password};
    store_status rc;
    int code;

    if (s->ld)
        return STORE_OK;
    if ((rc = open_connection(s, &s->ld)) != STORE_OK)
        return rc;
    code = ldap_sasl_bind_s(s->ld, s->bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
    if (code == LDAP_INVALID_CREDENTIALS) {
        ldap_unbind_ext_s(s->ld, NULL, NULL);
        s->ld = NULL;
        return say(STORE_UNAVAILABLE,
                   "ldap_bind_password_file: the directory (%s) refused the service account %s "
                   "with the password in %s: %s",
                   s->uri, s->bind_dn, s->password_file, ldap_err2string(code));
    }
    if (code == LDAP_SERVER_DOWN || code == LDAP_CONNECT_ERROR) {
        char what[1200];
        snprintf(what, sizeof what,
                 "connecting: no directory of ldap_uri answered, or its certificate is not one "
                 "ldap_ca_file (%s) verifies for its name",
                 s->ca_file);
        return ldap_failed(s, &s->ld, what, code);
    }
    if (code != LDAP_SUCCESS)
        return ldap_failed(s, &s->ld, "binding as the service account", code);
    return STORE_OK;
}

/* The filter template with its %s replaced by value, escaped for a filter. */
static bool fill_filter(const char *template, const char *value, char *out, size_t size)
{
    struct berval in = {.bv_len = strlen(value), .bv_val = (char *)value}, esc = {0};
    const char *hole = strstr(template, "%s");
    int n;

    if (!hole || ldap_bv2escaped_filter_value(&in, &esc) != 0)
        return false;
    n = snprintf(out, size, "%.*s%s%s", (int)(hole - template), template, esc.bv_val, hole + 2);
    ber_memfree(esc.bv_val);
    return n > 0 && (size_t)n < size;
}

static void entry_free(struct entry *e)
{
    for (size_t i = 0; i < e->ncerts; i++)
        ber_bvfree(e->certs[i]);
    for (size_t i = 0; i < e->naltsecs; i++)
        free(e->altsecs[i]);
    e->ncerts = e->naltsecs = 0;
}

/* Whether attribute name (with options, e.g. ";binary") is base, ignoring case. */
static bool is_attr(const char *name, const char *base)
{
    size_t n = strcspn(name, ";");

    return strlen(base) == n && strncasecmp(name, base, n) == 0;
}

/* One entry of a search result into e: the account and the values a registration looks at. */
static void read_entry(struct ldap_store *s, LDAP *ld, LDAPMessage *msg, struct entry *e)
{
    BerElement *ber = NULL;
    char *dn = ldap_get_dn(ld, msg), *attr;

    memset(e, 0, sizeof *e);
    e->shadow_last_change = e->shadow_max = -1;
    e->failures = -1;
    snprintf(e->dn, sizeof e->dn, "%s", dn ? dn : "");
    ldap_memfree(dn);
    snprintf(e->account.dn, sizeof e->account.dn, "%s", e->dn);
    snprintf(e->account.type, sizeof e->account.type, "full");
    e->account.permitted = true;
    for (attr = ldap_first_attribute(ld, msg, &ber); attr;
         attr = ldap_next_attribute(ld, msg, ber)) {
        struct berval **v = ldap_get_values_len(ld, msg, attr);
        size_t n = v ? (size_t)ldap_count_values_len(v) : 0;
        char first[512] = "";

        if (n > 0)
            snprintf(first, sizeof first, "%.*s", (int)v[0]->bv_len, v[0]->bv_val);
        if (is_attr(attr, "userCertificate")) {
            for (size_t i = 0; i < n && e->ncerts < VALUES_MAX; i++)
                if ((e->certs[e->ncerts] = ber_bvdup(v[i])) != NULL)
                    e->ncerts++;
        } else if (is_attr(attr, ATTR_ALTSEC)) {
            /* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): each copy is kept in e, freed by entry_free() */
            for (size_t i = 0; i < n && e->naltsecs < VALUES_MAX; i++)
                if ((e->altsecs[e->naltsecs] = strndup(v[i]->bv_val, v[i]->bv_len)) != NULL)
                    e->naltsecs++;
        } else if (is_attr(attr, s->username_attr)) {
            snprintf(e->account.username, sizeof e->account.username, "%s", first);
        } else if (is_attr(attr, s->display_attr)) {
            snprintf(e->account.display_name, sizeof e->account.display_name, "%s", first);
        } else if (is_attr(attr, s->edipi_attr)) {
            if (strlen(first) == 10 && strspn(first, "0123456789") == 10)
                snprintf(e->account.edipi, sizeof e->account.edipi, "%s", first);
        } else if (is_attr(attr, "shadowLastChange")) {
            e->shadow_last_change = strtoll(first, NULL, 10);
        } else if (is_attr(attr, "shadowMax")) {
            e->shadow_max = strtoll(first, NULL, 10);
        } else if (is_attr(attr, "pwdFailureTime")) {
            e->failures = (int)n;
        } else if (is_attr(attr, "badPwdCount")) {
            e->failures = (int)strtol(first, NULL, 10);
        }
        ldap_value_free_len(v);
        ldap_memfree(attr);
    }
    ber_free(ber, 0);
    if (!e->account.display_name[0])
        snprintf(e->account.display_name, sizeof e->account.display_name, "%s",
                 e->account.username);
    if (s->expiry == EXPIRY_SHADOW && e->shadow_last_change >= 0 && e->shadow_max >= 0)
        e->account.password_expires = (e->shadow_last_change + e->shadow_max) * DAY_S;
}

/*
 * The one entry filter selects under the base, into e. The first operation of
 * a request: a connection found gone is made again and the search asked once
 * more. STORE_NOT_FOUND for none; more than one is an error (a filter that
 * does not pick one person).
 */
static store_status find_entry(struct ldap_store *s, const char *filter, struct entry *e)
{
    char *attrs[] = {"userCertificate;binary", ATTR_ALTSEC, s->username_attr, s->display_attr,
                     s->edipi_attr, "shadowLastChange", "shadowMax", "pwdFailureTime",
                     "badPwdCount", NULL};
    struct timeval tv = {.tv_sec = s->timeout_s};
    LDAPMessage *res = NULL, *msg;
    store_status rc = STORE_OK;
    int code = LDAP_SUCCESS, count;

    for (int attempt = 0; attempt < 2; attempt++) {
        if ((rc = service(s)) != STORE_OK)
            return rc;
        code = ldap_search_ext_s(s->ld, s->base_dn, LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL,
                                 NULL, &tv, 2, &res);
        /* Once more only for a connection found gone (the directory restarted): a
         * directory that is slow to answer is not asked twice, so a request stays
         * within one ldap_timeout. */
        if (code != LDAP_SERVER_DOWN || attempt == 1)
            break;
        ldap_msgfree(res);
        res = NULL;
        ldap_failed(s, &s->ld, "searching", code); /* dropped: once more, on a new connection */
    }
    if (code == LDAP_NO_SUCH_OBJECT) {
        ldap_msgfree(res);
        return say(STORE_UNAVAILABLE, "ldap_base: %s is not in the directory (%s)", s->base_dn,
                   s->uri);
    }
    if (code != LDAP_SUCCESS && code != LDAP_SIZELIMIT_EXCEEDED) {
        ldap_msgfree(res);
        return ldap_failed(s, &s->ld, "searching for an account", code);
    }
    count = ldap_count_entries(s->ld, res);
    if (count > 1 || code == LDAP_SIZELIMIT_EXCEEDED)
        rc = say(STORE_ERROR, "ldap_user_filter: more than one entry under %s matches %s",
                 s->base_dn, filter);
    else if (count <= 0 || !(msg = ldap_first_entry(s->ld, res)))
        rc = STORE_NOT_FOUND;
    else
        read_entry(s, s->ld, msg, e);
    ldap_msgfree(res);
    return rc;
}

/* The entry of username. Locked. */
static store_status entry_by_username(struct ldap_store *s, const char *username, struct entry *e)
{
    char filter[FILTER_MAX];

    if (!fill_filter(s->user_filter, username, filter, sizeof filter))
        return STORE_NOT_FOUND; /* too long to be anyone's */
    return find_entry(s, filter, e);
}

static store_status ldap_account_get(store *base, const char *username, store_account *out)
{
    struct ldap_store *s = of(base);
    struct entry e = {0};
    store_status rc;

    pthread_mutex_lock(&s->lock);
    rc = entry_by_username(s, username, &e);
    pthread_mutex_unlock(&s->lock);
    if (rc == STORE_OK)
        *out = e.account;
    entry_free(&e);
    return rc;
}

static store_status ldap_account_by_edipi(store *base, const char *edipi, store_account *out)
{
    struct ldap_store *s = of(base);
    char any[FILTER_MAX], filter[FILTER_MAX];
    const char *hole = strstr(s->user_filter, "%s");
    struct entry e = {0};
    store_status rc;

    if (strlen(edipi) != 10 || strspn(edipi, "0123456789") != 10)
        return STORE_NOT_FOUND;
    /* The template's other parts with any username, and the EDIPI's attribute. */
    snprintf(any, sizeof any, "%.*s*%s", (int)(hole - s->user_filter), s->user_filter, hole + 2);
    if (snprintf(filter, sizeof filter, "(&%s(%s=%s))", any, s->edipi_attr, edipi) >=
        (int)sizeof filter)
        return STORE_NOT_FOUND;
    pthread_mutex_lock(&s->lock);
    rc = find_entry(s, filter, &e);
    pthread_mutex_unlock(&s->lock);
    if (rc == STORE_OK)
        *out = e.account;
    entry_free(&e);
    return rc;
}

/* The failures the directory counts for dn (ppolicy's pwdFailureTime, AD's badPwdCount); -1. */
static int failures_of(struct ldap_store *s, const char *dn)
{
    char *attrs[] = {"pwdFailureTime", "badPwdCount", NULL};
    struct timeval tv = {.tv_sec = s->timeout_s};
    LDAPMessage *res = NULL, *msg;
    struct entry e = {0};
    int failures = -1, code;

    pthread_mutex_lock(&s->lock);
    if (service(s) == STORE_OK) {
        code = ldap_search_ext_s(s->ld, dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL,
                                 NULL, &tv, 1, &res);
        if (code == LDAP_SUCCESS && (msg = ldap_first_entry(s->ld, res))) {
            read_entry(s, s->ld, msg, &e);
            failures = e.failures < 0 ? 0 : e.failures;
            entry_free(&e);
        } else if (code != LDAP_SUCCESS) {
            ldap_failed(s, &s->ld, "reading the failures count", code);
        }
        ldap_msgfree(res);
    }
    pthread_mutex_unlock(&s->lock);
    return failures;
}

/* AD's reason in a bind's diagnostic ("... data 775, ..."): locked, expired, or neither. */
static store_password_verdict ad_reason(const char *diag)
{
    static const struct {
        const char *code;
        store_password_verdict verdict;
    } reasons[] = {
        {.code = "data 775", .verdict = STORE_PASSWORD_LOCKED},  /* locked out */
        {.code = "data 533", .verdict = STORE_PASSWORD_LOCKED},  /* disabled */
        {.code = "data 532", .verdict = STORE_PASSWORD_EXPIRED}, /* password expired */
        {.code = "data 773", .verdict = STORE_PASSWORD_EXPIRED}, /* must change */
    };

    for (size_t i = 0; diag && i < sizeof reasons / sizeof reasons[0]; i++)
        if (strstr(diag, reasons[i].code))
            return reasons[i].verdict;
    return STORE_PASSWORD_WRONG;
}

/*
 * A bind as the account on the password connection, with the password policy
 * control: the directory's own lock and expiry decide. Its result code, and
 * the policy's error (PP_noError when it gave none). Locked.
 */
static int bind_as(struct ldap_store *s, const char *dn, const char *password, size_t len,
                   LDAPPasswordPolicyError *pp, char *diag_out, size_t diag_size)
{
    struct berval cred = {.bv_len = len, .bv_val = (char *)password};
    struct timeval tv = {.tv_sec = s->timeout_s};
    LDAPControl *ctrl = NULL, *ctrls[2] = {NULL, NULL}, **answer = NULL, *policy;
    LDAPMessage *res = NULL;
    char *diag = NULL;
    int msgid = -1, code, err = LDAP_OTHER;
    ber_int_t expire = -1, grace = -1;

    *pp = PP_noError;
    diag_out[0] = '\0';
    if (ldap_create_passwordpolicy_control(s->binder, &ctrl) == LDAP_SUCCESS)
        ctrls[0] = ctrl;
    code = ldap_sasl_bind(s->binder, dn, LDAP_SASL_SIMPLE, &cred, ctrls, NULL, &msgid);
    if (ctrl)
        ldap_control_free(ctrl);
    if (code != LDAP_SUCCESS)
        return code;
    code = ldap_result(s->binder, msgid, LDAP_MSG_ALL, &tv, &res);
    if (code == 0) {
        ldap_msgfree(res);
        return LDAP_TIMEOUT;
    }
    if (code < 0) {
        ldap_get_option(s->binder, LDAP_OPT_RESULT_CODE, &err);
        return err == LDAP_SUCCESS ? LDAP_SERVER_DOWN : err;
    }
    if (ldap_parse_result(s->binder, res, &err, NULL, &diag, NULL, &answer, 1) != LDAP_SUCCESS)
        return LDAP_OTHER;
    policy = answer ? ldap_control_find(LDAP_CONTROL_PASSWORDPOLICYRESPONSE, answer, NULL) : NULL;
    if (policy)
        ldap_parse_passwordpolicy_control(s->binder, policy, &expire, &grace, pp);
    snprintf(diag_out, diag_size, "%s", diag ? diag : "");
    ldap_memfree(diag);
    ldap_controls_free(answer);
    return err;
}

static store_status ldap_password_check(store *base, const store_account *a, const char *password,
                                        size_t len, store_password_result *out)
{
    struct ldap_store *s = of(base);
    LDAPPasswordPolicyError pp = PP_noError;
    char diag[512];
    store_status rc = STORE_OK;
    int code = LDAP_OTHER;

    memset(out, 0, sizeof *out);
    out->attempts_left = -1;
    out->verdict = STORE_PASSWORD_WRONG;
    if (len == 0 || !a->dn[0]) /* an empty password binds anonymously: never a login */
        return STORE_OK;
    pthread_mutex_lock(&s->bind_lock);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!s->binder && (rc = open_connection(s, &s->binder)) != STORE_OK)
            break;
        code = bind_as(s, a->dn, password, len, &pp, diag, sizeof diag);
        if (!connection_lost(code))
            break;
        rc = ldap_failed(s, &s->binder, "checking a password", code);
        if (code == LDAP_TIMEOUT || attempt == 1) /* a bind that may have counted: once */
            break;
        rc = STORE_OK; /* the connection had gone: once more on a new one */
    }
    pthread_mutex_unlock(&s->bind_lock);
    if (rc != STORE_OK)
        return rc;
    if (code == LDAP_SUCCESS) {
        out->verdict = STORE_PASSWORD_RIGHT;
        return STORE_OK;
    }
    if (code != LDAP_INVALID_CREDENTIALS)
        return say(STORE_UNAVAILABLE, "checking a password: the directory (%s): %s (%d)%s%s",
                   s->uri, ldap_err2string(code), code, diag[0] ? ": " : "", diag);
    if (pp == PP_accountLocked) {
        out->verdict = STORE_PASSWORD_LOCKED;
        return STORE_OK;
    }
    if (pp == PP_passwordExpired) {
        out->verdict = STORE_PASSWORD_EXPIRED;
        return STORE_OK;
    }
    out->verdict = ad_reason(diag);
    if (out->verdict == STORE_PASSWORD_WRONG && s->lockout_attempts > 0) {
        int failures = failures_of(s, a->dn);
        if (failures >= 0) {
            out->attempts_left = s->lockout_attempts - failures;
            if (out->attempts_left <= 0) { /* this one reached the directory's threshold */
                out->verdict = STORE_PASSWORD_LOCKED;
                out->just_locked = true;
                out->attempts_left = -1;
            }
        }
    }
    return STORE_OK;
}

/* An unknown username: a bind as an entry the base does not hold, as long as a known one's. */
static bool ldap_password_dummy(store *base, const char *password, size_t len)
{
    struct ldap_store *s = of(base);
    store_account nobody = {.permitted = true};
    store_password_result r;

    static const char rdn[] = "cn=cacreg-portald-no-such-account,";

    if (strlen(rdn) + strlen(s->base_dn) < sizeof nobody.dn) {
        memcpy(nobody.dn, rdn, strlen(rdn));
        memcpy(nobody.dn + strlen(rdn), s->base_dn, strlen(s->base_dn) + 1);
        (void)ldap_password_check(base, &nobody, password, len, &r);
    }
    return true;
}

static int ldap_lockout_attempts(const store *base)
{
    const struct ldap_store *s = (const struct ldap_store *)base;

    return s->lockout_attempts > 0 ? s->lockout_attempts : -1;
}

/* ---- the ledger: what this portal wrote ---- */

/* The rows noted for username, with whether each is on the entry now. */
static store_status noted_for(struct ldap_store *s, const char *username, const struct entry *e,
                              struct noted *out, size_t *n)
{
    ledger_row *rows = calloc(NOTED_MAX, sizeof *rows);
    char err[512];

    *n = 0;
    if (!rows)
        return say(STORE_ERROR, "out of memory");
    if (!ledger_rows(s->ledger, username, rows, NOTED_MAX, n, err, sizeof err)) {
        free(rows);
        return say(STORE_ERROR, "%s", err);
    }
    for (size_t k = 0; k < *n; k++) {
        struct noted *r = &out[k];
        r->row = rows[k];
        r->cert_present = r->altsec_present = false;
        for (size_t i = 0; i < e->ncerts && r->row.der_len; i++)
            r->cert_present |= e->certs[i]->bv_len == r->row.der_len &&
                               memcmp(e->certs[i]->bv_val, r->row.der, r->row.der_len) == 0;
        for (size_t i = 0; i < e->naltsecs && r->row.ad_mapping[0]; i++)
            r->altsec_present |= strcasecmp(e->altsecs[i], r->row.ad_mapping) == 0;
    }
    free(rows);
    return STORE_OK;
}

/* Notes that cert may be written to username's entry (before it is), at when. */
static store_status note(struct ldap_store *s, const char *username, const store_cert *cert,
                         long long when)
{
    ledger_row *row = calloc(1, sizeof *row);
    store_status rc = STORE_OK;
    char err[512];

    if (!row || cert->der_len > sizeof row->der) {
        free(row);
        return say(STORE_ERROR, "the certificate cannot be noted");
    }
    snprintf(row->sha256, sizeof row->sha256, "%s", cert->sha256);
    snprintf(row->json, sizeof row->json, "%s", cert->json);
    memcpy(row->der, cert->der, cert->der_len);
    row->der_len = cert->der_len;
    snprintf(row->ad_mapping, sizeof row->ad_mapping, "%s", cert->ad_mapping);
    row->written_at = when;
    if (!ledger_note(s->ledger, username, row, err, sizeof err))
        rc = say(STORE_ERROR, "%s", err);
    free(row);
    return rc;
}

/* Forgets every row of username but keep_sha256's (NULL: all), once they are off the entry. */
static void forget(struct ldap_store *s, const char *username, const char *keep_sha256)
{
    char err[512];

    /* Removed from the entry already: a row left over only widens what counts as ours. */
    (void)ledger_forget(s->ledger, username, keep_sha256, err, sizeof err);
}

/* ---- registrations ---- */

/* The search for cert on anyone's entry: the forms this portal writes, as the directory matches them. */
static bool cert_filter(struct ldap_store *s, const store_cert *cert, char *out, size_t size)
{
    struct berval in, esc = {0};
    char assertion[2048];
    size_t n = 0;
    int len = 0;

    out[0] = '\0';
    if (s->write_cert) {
        if (s->match_gser) { /* OpenLDAP: certificateExactMatch on serial and issuer */
            len = snprintf(assertion, sizeof assertion, "{ serialNumber %s, issuer rdnSequence:\"",
                           cert->serial_dec);
            for (const char *p = cert->issuer; *p && (size_t)len + 3 < sizeof assertion; p++) {
                if (*p == '"')
                    assertion[len++] = '"'; /* a quote in a GSER string is doubled */
                assertion[len++] = *p;
            }
            if ((size_t)len + 4 >= sizeof assertion)
                return false;
            memcpy(assertion + len, "\" }", 4);
            in = (struct berval){.bv_len = strlen(assertion), .bv_val = assertion};
        } else { /* 389-ds, AD: the certificate's bytes */
            in = (struct berval){.bv_len = cert->der_len, .bv_val = (char *)cert->der};
        }
        if (ldap_bv2escaped_filter_value(&in, &esc) != 0)
            return false;
        len = snprintf(out, size, "(%s=%s)", ATTR_CERT, esc.bv_val);
        ber_memfree(esc.bv_val);
        if (len < 0 || (size_t)len >= size)
            return false;
        n = (size_t)len;
    }
    if (s->write_altsec && cert->ad_mapping[0]) {
        in = (struct berval){.bv_len = strlen(cert->ad_mapping), .bv_val = (char *)cert->ad_mapping};
        if (ldap_bv2escaped_filter_value(&in, &esc) != 0)
            return false;
        len = snprintf(out + n, size - n, "(%s=%s)", ATTR_ALTSEC, esc.bv_val);
        ber_memfree(esc.bv_val);
        if (len < 0 || (size_t)len >= size - n)
            return false;
        n += (size_t)len;
    }
    if (n == 0)
        return false;
    /* (|(a)(b)) when two */
    if (s->write_cert && s->write_altsec && cert->ad_mapping[0]) {
        if (n + 4 > size)
            return false;
        memmove(out + 2, out, n + 1);
        memcpy(out, "(|", 2);
        memcpy(out + n + 2, ")", 2);
    }
    return true;
}

/* Whether an entry other than dn holds cert in a form this portal writes. Locked. */
static store_status held_elsewhere(struct ldap_store *s, const char *dn, const store_cert *cert,
                                   bool *other)
{
    char filter[FILTER_MAX * 2], *attrs[] = {LDAP_NO_ATTRS, NULL};
    struct timeval tv = {.tv_sec = s->timeout_s};
    LDAPMessage *res = NULL, *msg;
    store_status rc;
    int code;

    *other = false;
    if (!cert_filter(s, cert, filter, sizeof filter))
        return say(STORE_ERROR, "the certificate's search filter cannot be made");
    if ((rc = service(s)) != STORE_OK)
        return rc;
    code = ldap_search_ext_s(s->ld, s->base_dn, LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL, NULL,
                             &tv, 16, &res);
    if (code != LDAP_SUCCESS && code != LDAP_SIZELIMIT_EXCEEDED) {
        ldap_msgfree(res);
        return ldap_failed(s, &s->ld, "searching the directory for the certificate", code);
    }
    for (msg = ldap_first_entry(s->ld, res); msg; msg = ldap_next_entry(s->ld, msg)) {
        char *found = ldap_get_dn(s->ld, msg);
        *other |= found && strcasecmp(found, dn) != 0;
        ldap_memfree(found);
    }
    ldap_msgfree(res);
    return STORE_OK;
}

static store_status ldap_other_owner(store *base, const char *username, const store_cert *cert,
                                     bool *other)
{
    struct ldap_store *s = of(base);
    struct entry e = {0};
    store_status rc;

    pthread_mutex_lock(&s->lock);
    rc = entry_by_username(s, username, &e);
    if (rc == STORE_OK)
        rc = held_elsewhere(s, e.dn, cert, other);
    entry_free(&e);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* A modify's list of changes, with room for what one registration does. */
struct changes {
    LDAPMod mods[2 * NOTED_MAX + 6];
    LDAPMod *list[2 * NOTED_MAX + 7];
    struct berval bvs[2 * NOTED_MAX + 6];
    struct berval *bv_lists[2 * NOTED_MAX + 6][2];
    char *str_lists[2 * NOTED_MAX + 6][2];
    char numbers[2][32];
    size_t n;
};

static void change_bytes(struct changes *c, int op, const unsigned char *bytes, size_t len)
{
    size_t i = c->n++;

    c->bvs[i] = (struct berval){.bv_len = len, .bv_val = (char *)bytes};
    c->bv_lists[i][0] = &c->bvs[i];
    c->bv_lists[i][1] = NULL;
    c->mods[i] = (LDAPMod){.mod_op = op | LDAP_MOD_BVALUES, .mod_type = ATTR_CERT,
                           .mod_vals.modv_bvals = c->bv_lists[i]};
    c->list[i] = &c->mods[i];
    c->list[c->n] = NULL;
}

static void change_string(struct changes *c, int op, const char *attr, const char *value)
{
    size_t i = c->n++;

    c->str_lists[i][0] = (char *)value;
    c->str_lists[i][1] = NULL;
    c->mods[i] = (LDAPMod){.mod_op = op, .mod_type = (char *)attr,
                           .mod_vals.modv_strvals = c->str_lists[i]};
    c->list[i] = &c->mods[i];
    c->list[c->n] = NULL;
}

/* The entry's own spelling of an altSecurityIdentities value (what a delete must name). */
static const char *altsec_on_entry(const struct entry *e, const char *mapping)
{
    for (size_t i = 0; i < e->naltsecs; i++)
        if (strcasecmp(e->altsecs[i], mapping) == 0)
            return e->altsecs[i];
    return NULL;
}

/* Applies changes to dn as one modify (atomic on the entry). Locked. */
static store_status modify(struct ldap_store *s, const char *dn, struct changes *c, const char *what)
{
    struct timeval tv = {.tv_sec = s->timeout_s};
    LDAPMessage *res = NULL;
    int msgid, code, err = LDAP_OTHER;

    if (c->n == 0)
        return STORE_OK;
    if ((code = ldap_modify_ext(s->ld, dn, c->list, NULL, NULL, &msgid)) != LDAP_SUCCESS)
        return ldap_failed(s, &s->ld, what, code);
    code = ldap_result(s->ld, msgid, LDAP_MSG_ALL, &tv, &res);
    if (code <= 0) {
        ldap_msgfree(res);
        return ldap_failed(s, &s->ld, what, code == 0 ? LDAP_TIMEOUT : LDAP_SERVER_DOWN);
    }
    if (ldap_parse_result(s->ld, res, &err, NULL, NULL, NULL, NULL, 1) != LDAP_SUCCESS)
        err = LDAP_OTHER;
    return err == LDAP_SUCCESS ? STORE_OK : ldap_failed(s, &s->ld, what, err);
}

/* Adds the removal of every noted value on the entry but keep's to c; the newest removed into out. */
static const struct noted *remove_noted(const struct entry *e, const struct noted *noted, size_t n,
                                        const char *keep_sha256, struct changes *c)
{
    const struct noted *newest = NULL;

    for (size_t i = 0; i < n; i++) {
        const struct noted *r = &noted[i];
        const char *spelled = r->altsec_present ? altsec_on_entry(e, r->row.ad_mapping) : NULL;
        if (keep_sha256 && strcmp(r->row.sha256, keep_sha256) == 0)
            continue;
        if (r->cert_present)
            change_bytes(c, LDAP_MOD_DELETE, r->row.der, r->row.der_len);
        if (spelled)
            change_string(c, LDAP_MOD_DELETE, ATTR_ALTSEC, spelled);
        if ((r->cert_present || spelled) && (!newest || r->row.written_at > newest->row.written_at))
            newest = r;
    }
    return newest;
}

static store_status ldap_register(store *base, const char *username, const store_cert *cert,
                                  long long now, long long password_expires,
                                  store_register_result *out)
{
    struct ldap_store *s = of(base);
    struct noted *noted = calloc(NOTED_MAX, sizeof *noted);
    const struct noted *replaced = NULL, *same = NULL;
    struct changes *c = calloc(1, sizeof *c);
    bool other = false, cert_there, altsec_there;
    struct entry e = {0};
    store_status rc;
    size_t n = 0;

    memset(out, 0, sizeof *out);
    if (!noted || !c) {
        free(noted);
        free(c);
        return say(STORE_ERROR, "out of memory");
    }
    if (!s->write_cert && !cert->ad_mapping[0]) {
        free(noted);
        free(c);
        return say(STORE_ERROR, "the certificate has no AD mapping to write (ldap_write = altsecid)");
    }
    pthread_mutex_lock(&s->write_lock);
    pthread_mutex_lock(&s->lock);
    if ((rc = entry_by_username(s, username, &e)) != STORE_OK)
        goto out;
    /* One card, one account: asked of the directory, not of what this portal remembers. */
    if ((rc = held_elsewhere(s, e.dn, cert, &other)) != STORE_OK)
        goto out;
    if (other) {
        rc = STORE_OTHER_OWNER;
        goto out;
    }
    if ((rc = noted_for(s, username, &e, noted, &n)) != STORE_OK)
        goto out;
    cert_there = false;
    for (size_t i = 0; i < e.ncerts; i++)
        cert_there |= e.certs[i]->bv_len == cert->der_len &&
                      memcmp(e.certs[i]->bv_val, cert->der, cert->der_len) == 0;
    altsec_there = cert->ad_mapping[0] && altsec_on_entry(&e, cert->ad_mapping);
    for (size_t i = 0; i < n; i++)
        if (strcmp(noted[i].row.sha256, cert->sha256) == 0)
            same = &noted[i];
    replaced = remove_noted(&e, noted, n, cert->sha256, c);
    if (s->write_cert && !cert_there)
        change_bytes(c, LDAP_MOD_ADD, cert->der, cert->der_len);
    if (s->write_altsec && !altsec_there && cert->ad_mapping[0])
        change_string(c, LDAP_MOD_ADD, ATTR_ALTSEC, cert->ad_mapping);
    out->result = replaced ? "replaced" : c->n == 0 ? "unchanged" : "registered";
    out->registered_at = c->n == 0 && same ? same->row.written_at : now;
    out->password_expires = e.account.password_expires;
    if (password_expires > 0 && s->expiry == EXPIRY_SHADOW) {
        long long today = now / DAY_S;
        snprintf(c->numbers[0], sizeof c->numbers[0], "%lld", today);
        snprintf(c->numbers[1], sizeof c->numbers[1], "%d", EXTENSION_DAYS);
        change_string(c, LDAP_MOD_REPLACE, "shadowLastChange", c->numbers[0]);
        change_string(c, LDAP_MOD_REPLACE, "shadowMax", c->numbers[1]);
        out->password_expires = (today + EXTENSION_DAYS) * DAY_S;
    } else if (password_expires > 0 && s->expiry == EXPIRY_PWDLASTSET) {
        change_string(c, LDAP_MOD_REPLACE, "pwdLastSet", "-1"); /* AD: now; its policy counts */
        out->password_expires = 0;
    }
    /* Noted before it is written: a write whose answer is lost is still known as ours.
     * A card on the entry already but not noted (put there by hand) becomes ours too. */
    if ((strcmp(out->result, "unchanged") != 0 || !same) &&
        (rc = note(s, username, cert, out->registered_at)) != STORE_OK)
        goto out;
    if ((rc = modify(s, e.dn, c, "writing the registration")) != STORE_OK)
        goto out;
    if (replaced) {
        out->replaced = true;
        snprintf(out->replaced_json, sizeof out->replaced_json, "%s", replaced->row.json);
    }
    forget(s, username, cert->sha256);
out:
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&s->write_lock);
    entry_free(&e);
    free(noted);
    free(c);
    return rc;
}

static store_status ldap_registration_get(store *base, const char *username,
                                          store_registration *out)
{
    struct ldap_store *s = of(base);
    struct noted *noted = calloc(NOTED_MAX, sizeof *noted);
    struct entry e = {0};
    store_status rc;
    size_t n = 0;

    memset(out, 0, sizeof *out);
    if (!noted)
        return say(STORE_ERROR, "out of memory");
    pthread_mutex_lock(&s->lock);
    rc = entry_by_username(s, username, &e);
    pthread_mutex_unlock(&s->lock);
    if (rc == STORE_OK)
        rc = noted_for(s, username, &e, noted, &n);
    /* The newest of what this portal wrote that the entry still holds. */
    for (size_t i = 0; rc == STORE_OK && i < n && !out->registered; i++) {
        if (!noted[i].cert_present && !noted[i].altsec_present)
            continue;
        out->registered = true;
        snprintf(out->sha256, sizeof out->sha256, "%s", noted[i].row.sha256);
        snprintf(out->cert_json, sizeof out->cert_json, "%s", noted[i].row.json);
        out->registered_at = noted[i].row.written_at;
    }
    entry_free(&e);
    free(noted);
    return rc;
}

static store_status ldap_registration_clear(store *base, const char *username,
                                            store_registration *out)
{
    struct ldap_store *s = of(base);
    struct noted *noted = calloc(NOTED_MAX, sizeof *noted);
    struct changes *c = calloc(1, sizeof *c);
    const struct noted *cleared;
    struct entry e = {0};
    store_status rc;
    size_t n = 0;

    memset(out, 0, sizeof *out);
    if (!noted || !c) {
        free(noted);
        free(c);
        return say(STORE_ERROR, "out of memory");
    }
    pthread_mutex_lock(&s->write_lock);
    pthread_mutex_lock(&s->lock);
    if ((rc = entry_by_username(s, username, &e)) != STORE_OK ||
        (rc = noted_for(s, username, &e, noted, &n)) != STORE_OK)
        goto out;
    cleared = remove_noted(&e, noted, n, NULL, c);
    if ((rc = modify(s, e.dn, c, "clearing the registration")) != STORE_OK)
        goto out;
    if (cleared) {
        out->registered = true;
        snprintf(out->sha256, sizeof out->sha256, "%s", cleared->row.sha256);
        snprintf(out->cert_json, sizeof out->cert_json, "%s", cleared->row.json);
        out->registered_at = cleared->row.written_at;
    }
    forget(s, username, NULL);
out:
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&s->write_lock);
    entry_free(&e);
    free(noted);
    free(c);
    return rc;
}

/* One account of ldap_registration_each's walk. */
struct each {
    struct ldap_store *s;
    void (*fn)(const char *username, const store_registration *r, void *ctx);
    void *ctx;
    store_registration *r;
    store_status rc;
};

static store_status ldap_registration_get(store *base, const char *username,
                                          store_registration *out);

static void each_username(const char *username, void *ctx)
{
    struct each *w = ctx;
    store_status rc;

    if (w->rc != STORE_OK)
        return;
    rc = ldap_registration_get(&w->s->base, username, w->r);
    if (rc == STORE_OK && w->r->registered)
        w->fn(username, w->r, w->ctx);
    else if (rc != STORE_OK && rc != STORE_NOT_FOUND) /* gone from the directory: skipped */
        w->rc = rc;
}

/* What this portal wrote and the directory still holds, account by account (administration). */
static store_status ldap_registration_each(store *base,
                                           void (*fn)(const char *username,
                                                      const store_registration *r, void *ctx),
                                           void *ctx)
{
    struct each w = {.s = of(base), .fn = fn, .ctx = ctx, .r = malloc(sizeof *w.r), .rc = STORE_OK};
    char err[512];

    if (!w.r)
        return say(STORE_ERROR, "out of memory");
    if (!ledger_each_username(w.s->ledger, each_username, &w, err, sizeof err))
        w.rc = say(STORE_ERROR, "%s", err);
    free(w.r);
    return w.rc;
}

static store_status ldap_check(store *base)
{
    struct ldap_store *s = of(base);
    store_status rc;
    struct entry e = {0};
    char filter[FILTER_MAX];

    pthread_mutex_lock(&s->lock);
    rc = service(s);
    /* The base must be there: a search that selects nobody answers whether it is. */
    if (rc == STORE_OK && fill_filter(s->user_filter, "cacreg-portald-check-config", filter,
                                      sizeof filter)) {
        rc = find_entry(s, filter, &e);
        entry_free(&e);
        if (rc == STORE_NOT_FOUND || rc == STORE_ERROR)
            rc = STORE_OK;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static const char *ldap_error(store *base)
{
    (void)base;
    return last_error;
}

static void ldap_close(store *base)
{
    struct ldap_store *s = of(base);

    if (s->ld)
        ldap_unbind_ext_s(s->ld, NULL, NULL);
    if (s->binder)
        ldap_unbind_ext_s(s->binder, NULL, NULL);
    ledger_close(s->ledger);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->bind_lock);
    pthread_mutex_destroy(&s->write_lock);
    OPENSSL_cleanse(s->password, sizeof s->password);
    free(s);
}

static const struct store_backend ldap_backend = {
    .kind = "ldap",
    .close = ldap_close,
    .error = ldap_error,
    .check = ldap_check,
    .account_get = ldap_account_get,
    .account_by_edipi = ldap_account_by_edipi,
    .password_check = ldap_password_check,
    .lockout_attempts = ldap_lockout_attempts,
    .password_dummy = ldap_password_dummy,
    .register_cert = ldap_register,
    .other_owner = ldap_other_owner,
    .registration_get = ldap_registration_get,
    .registration_clear = ldap_registration_clear,
    .registration_each = ldap_registration_each,
};

/* Each URI is ldaps://, or ldap:// with StartTLS: never a directory in clear. */
static bool uris_secure(const char *uris, bool starttls, char *err, size_t err_size)
{
    const char *p = uris;
    size_t count = 0;

    for (;;) {
        LDAPURLDesc *desc = NULL;
        char one[1024];
        size_t n;
        bool ok;

        p += strspn(p, " \t,");
        n = strcspn(p, " \t,");
        if (n == 0)
            break;
        snprintf(one, sizeof one, "%.*s", (int)n, p);
        p += n;
        count++;
        if (ldap_url_parse(one, &desc) != LDAP_URL_SUCCESS) {
            snprintf(err, err_size, "ldap_uri: '%s' is not an LDAP URI", one);
            return false;
        }
        ok = strcasecmp(desc->lud_scheme, "ldaps") == 0 ||
             (strcasecmp(desc->lud_scheme, "ldap") == 0 && starttls);
        ldap_free_urldesc(desc);
        if (!ok) {
            snprintf(err, err_size,
                     "ldap_uri: %s would talk to the directory in clear: use ldaps://, or "
                     "ldap:// with ldap_starttls = yes",
                     one);
            return false;
        }
    }
    if (count == 0)
        snprintf(err, err_size, "ldap_uri: no directory is named (store = ldap needs one)");
    return count > 0;
}

/* The service account's password: the file's first line. */
static bool read_password(struct ldap_store *s, char *err, size_t err_size)
{
    FILE *f = fopen(s->password_file, "r");
    char line[PASSWORD_MAX + 2];
    size_t n;

    if (!f) {
        snprintf(err, err_size, "ldap_bind_password_file: %s cannot be read: %s", s->password_file,
                 strerror(errno));
        return false;
    }
    if (!fgets(line, sizeof line, f))
        line[0] = '\0';
    fclose(f);
    n = strcspn(line, "\r\n");
    if (n == 0 || n > PASSWORD_MAX) {
        OPENSSL_cleanse(line, sizeof line);
        snprintf(err, err_size, "ldap_bind_password_file: %s holds no password on its first line "
                 "(or one over %d bytes)", s->password_file, PASSWORD_MAX);
        return false;
    }
    memcpy(s->password, line, n);
    s->password[n] = '\0';
    s->password_len = n;
    OPENSSL_cleanse(line, sizeof line);
    return true;
}

store_status store_open_ldap(store **out, const store_ldap_options *opt, char *error,
                             size_t error_size)
{
    struct ldap_store *s = calloc(1, sizeof *s);
    const char *hole;

    *out = NULL;
    if (!s) {
        snprintf(error, error_size, "out of memory");
        return STORE_ERROR;
    }
    s->base.backend = &ldap_backend;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->bind_lock, NULL);
    pthread_mutex_init(&s->write_lock, NULL);
    snprintf(s->uri, sizeof s->uri, "%s", opt->uri);
    s->starttls = opt->starttls;
    snprintf(s->ca_file, sizeof s->ca_file, "%s", opt->ca_file);
    snprintf(s->bind_dn, sizeof s->bind_dn, "%s", opt->bind_dn);
    snprintf(s->password_file, sizeof s->password_file, "%s", opt->bind_password_file);
    snprintf(s->base_dn, sizeof s->base_dn, "%s", opt->base);
    snprintf(s->user_filter, sizeof s->user_filter, "%s", opt->user_filter);
    snprintf(s->username_attr, sizeof s->username_attr, "%s", opt->username_attribute);
    snprintf(s->edipi_attr, sizeof s->edipi_attr, "%s", opt->edipi_attribute);
    snprintf(s->display_attr, sizeof s->display_attr, "%s", opt->display_attribute);
    s->write_cert = strcmp(opt->write, "altsecid") != 0;
    s->write_altsec = strcmp(opt->write, "certificate") != 0;
    s->match_gser = strcmp(opt->certificate_match, "binary") != 0;
    s->expiry = strcmp(opt->password_expiry, "none") == 0         ? EXPIRY_NONE
                : strcmp(opt->password_expiry, "pwdlastset") == 0 ? EXPIRY_PWDLASTSET
                                                                   : EXPIRY_SHADOW;
    s->timeout_s = opt->timeout_s > 0 ? opt->timeout_s : 3;
    s->lockout_attempts = opt->lockout_attempts;
    hole = strstr(s->user_filter, "%s");
    if (!uris_secure(s->uri, s->starttls, error, error_size))
        goto fail;
    if (!s->bind_dn[0] || !s->base_dn[0]) {
        snprintf(error, error_size, "%s: store = ldap needs it", !s->bind_dn[0] ? "ldap_bind_dn"
                                                                                : "ldap_base");
        goto fail;
    }
    if (!hole || strstr(hole + 2, "%") || strchr(s->user_filter, '%') != hole ||
        s->user_filter[0] != '(') {
        snprintf(error, error_size,
                 "ldap_user_filter: '%s' is not a filter with one %%s for the username",
                 s->user_filter);
        goto fail;
    }
    if (!read_password(s, error, error_size))
        goto fail;
    if (opt->ledger && !ledger_open(&s->ledger, opt->ledger, error, error_size))
        goto fail;
    *out = &s->base;
    return STORE_OK;
fail:
    ldap_close(&s->base);
    return STORE_ERROR;
}
