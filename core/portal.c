/* The portal client: docs/portal-api.md over HTTPS, on its own thread. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "internal.h"
#include "text.h"

#define ANSWER_MAX ((size_t)64 * 1024) /* the contract's bound on an answer body */
#define LOW_SPEED_S 6L                     /* seconds under 1 KB/s before giving up */


struct cacreg_portal {
    cacreg_worker *thread;     /* the network thread */
    CURL *easy;                /* one handle, one connection, for the whole flow */
    CURLM *multi;
    pthread_mutex_t lock;
    atomic_bool cancel;
    atomic_bool busy;          /* a request is queued or running: one at a time */
    char base_url[CACREG_URL_MAX];
    cacreg_config cfg;
    X509 *cert;                /* the card's identity certificate and key, or NULL */
    EVP_PKEY *key;
    /* What the last handshake did, seen by on_tls_msg() on the network thread: */
    atomic_bool cert_asked;    /* the server asked for a client certificate */
    atomic_bool cert_sent;     /* we sent the card's certificate */
    atomic_bool signed_ok;     /* and the card's signature (CertificateVerify) went out */
    cacreg_secret *session;    /* the bearer token */
    cacreg_secret *body;       /* a request body that carries a secret */
    char username[128];
    cacreg_request kind;
    char answer[ANSWER_MAX + 1];
    size_t answer_len;
    bool answer_too_large;
    char content_type[128];
    long long date_header;
    char curl_error[CURL_ERROR_SIZE];
    cacreg_portal_result result; /* guarded by lock */
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    cacreg_portal *p = arg;
    size_t len = size * n;

    if (len > ANSWER_MAX - p->answer_len) {
        p->answer_too_large = true;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    memcpy(p->answer + p->answer_len, data, len);
    p->answer_len += len;
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    cacreg_portal *p = arg;
    size_t len = size * n;
    char line[256];

    if (len >= sizeof line)
        return len;
    memcpy(line, data, len);
    line[len] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (strncasecmp(line, "content-type:", 13) == 0) {
        const char *v = line + 13;
        while (*v == ' ')
            v++;
        size_t vlen = strlen(v);
        if (vlen >= sizeof p->content_type)
            vlen = sizeof p->content_type - 1; /* long parameters: the type comes first */
        memcpy(p->content_type, v, vlen);
        p->content_type[vlen] = '\0';
    } else if (strncasecmp(line, "date:", 5) == 0) {
        time_t t = curl_getdate(line + 5, NULL);
        p->date_header = t > 0 ? (long long)t : 0;
    }
    return len;
}

/* Watches the handshake's messages: whether the server asked for the card's
 * certificate, and whether the card's signature went out after it. */
static void on_tls_msg(int write_p, int version, int content_type, const void *buf, size_t len,
                       SSL *ssl, void *arg)
{
    cacreg_portal *p = arg;
    unsigned char type = len > 0 ? *(const unsigned char *)buf : 0;

    (void)version;
    (void)ssl;
    if (content_type != SSL3_RT_HANDSHAKE || len == 0)
        return;
    if (write_p && type == SSL3_MT_CLIENT_HELLO) { /* a new handshake: forget the last one */
        atomic_store(&p->cert_asked, false);
        atomic_store(&p->cert_sent, false);
        atomic_store(&p->signed_ok, false);
    } else if (!write_p && type == SSL3_MT_CERTIFICATE_REQUEST) {
        atomic_store(&p->cert_asked, true);
    } else if (write_p && type == SSL3_MT_CERTIFICATE) {
        atomic_store(&p->cert_sent, true);
    } else if (write_p && type == SSL3_MT_CERTIFICATE_VERIFY) {
        atomic_store(&p->signed_ok, true);
    }
}

/* Installs the card's certificate and key in the TLS context of a new connection. */
static CURLcode on_ssl_ctx(CURL *easy, void *ssl_ctx, void *arg)
{
    cacreg_portal *p = arg;

    (void)easy;
    SSL_CTX_set_msg_callback(ssl_ctx, on_tls_msg);
    SSL_CTX_set_msg_callback_arg(ssl_ctx, p);
    if (p->cert && p->key &&
        (SSL_CTX_use_certificate(ssl_ctx, p->cert) != 1 ||
         SSL_CTX_use_PrivateKey(ssl_ctx, p->key) != 1))
        return CURLE_SSL_CERTPROBLEM;
    return CURLE_OK;
}

cacreg_err cacreg_portal_new(cacreg_portal **out, const cacreg_config *cfg, int event_wr,
                             char *err, size_t err_size)
{
    cacreg_portal *p;
    size_t n = strlen(cfg->portal_url);

    *out = NULL;
    if (n == 0 || strncmp(cfg->portal_url, "https://", 8) != 0) {
        cacreg_errf(err, err_size, "No portal is configured (portal_url, https://.../api/v1/).");
        return CACREG_ERR_CONFIG;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return CACREG_ERR_SYSTEM;
    p = calloc(1, sizeof *p);
    if (!p)
        return CACREG_ERR_NOMEM;
    p->cfg = *cfg;
    snprintf(p->base_url, sizeof p->base_url, "%s%s", cfg->portal_url,
             cfg->portal_url[n - 1] == '/' ? "" : "/");
    pthread_mutex_init(&p->lock, NULL);
    p->session = cacreg_secret_new();
    p->body = cacreg_secret_new();
    p->easy = curl_easy_init();
    p->multi = curl_multi_init();
    if (!p->session || !p->body || !p->easy || !p->multi ||
        cacreg_worker_start(&p->thread, event_wr) != CACREG_OK) {
        cacreg_portal_free(p, -1);
        return CACREG_ERR_NOMEM;
    }
    *out = p;
    return CACREG_OK;
}

void cacreg_portal_forget_card(cacreg_portal *p)
{
    X509_free(p->cert);
    EVP_PKEY_free(p->key);
    p->cert = NULL;
    p->key = NULL;
    /* Close every connection made with the old card: new handles, empty pools. */
    if (p->multi)
        curl_multi_cleanup(p->multi);
    if (p->easy)
        curl_easy_cleanup(p->easy);
    p->easy = curl_easy_init();
    p->multi = curl_multi_init();
}

bool cacreg_portal_free(cacreg_portal *p, int wait_ms)
{
    if (!p)
        return true;
    cacreg_portal_cancel(p);
    if (!cacreg_worker_stop(p->thread, wait_ms)) {
        cacreg_secret_clear(p->body); /* what can be wiped under a stuck thread */
        cacreg_secret_clear(p->session);
        return false;
    }
    X509_free(p->cert);
    EVP_PKEY_free(p->key);
    if (p->multi)
        curl_multi_cleanup(p->multi);
    if (p->easy)
        curl_easy_cleanup(p->easy);
    cacreg_secret_free(p->session);
    cacreg_secret_free(p->body);
    pthread_mutex_destroy(&p->lock);
    OPENSSL_cleanse(p->answer, sizeof p->answer);
    free(p);
    return true;
}

cacreg_err cacreg_portal_use_card(cacreg_portal *p, X509 *cert, EVP_PKEY *key)
{
    if (!cert || !key)
        return CACREG_ERR_NO_KEY;
    cacreg_portal_forget_card(p);
    if (X509_up_ref(cert) != 1)
        return CACREG_ERR_NOMEM;
    if (EVP_PKEY_up_ref(key) != 1) {
        X509_free(cert);
        return CACREG_ERR_NOMEM;
    }
    p->cert = cert;
    p->key = key;
    if (!p->easy || !p->multi)
        return CACREG_ERR_NOMEM;
    return CACREG_OK;
}

void cacreg_portal_cancel(cacreg_portal *p)
{
    atomic_store(&p->cancel, true);
    if (p->multi)
        curl_multi_wakeup(p->multi);
}

void cacreg_portal_result_get(cacreg_portal *p, cacreg_portal_result *out)
{
    pthread_mutex_lock(&p->lock);
    *out = p->result;
    pthread_mutex_unlock(&p->lock);
}

/* Appends text to a secret body as a JSON string's contents. */
static cacreg_err json_escape_into(cacreg_secret *dst, const char *src, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        char esc[8];
        cacreg_err rc;

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            rc = cacreg_secret_append(dst, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            rc = cacreg_secret_append(dst, esc, 6);
        } else {
            rc = cacreg_secret_append(dst, (const char *)&src[i], 1);
        }
        if (rc != CACREG_OK)
            return rc;
    }
    return CACREG_OK;
}

/* ---- answers ---- */

static const char *jstr(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A string of the answer into a field: cut between characters, never inside one. */
static void copy_str(char *dst, size_t size, const char *src)
{
    cacreg_text_utf8_repair(dst, size, src ? src : "", src ? strlen(src) : 0);
}

/* A time field that may be null: a portal whose directory keeps its own expiry does not know it. */
static bool time_or_null(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return json_is_string(v) || json_is_null(v);
}

/* Reads an account object; false if it is not one. */
static bool read_account(json_t *acct, cacreg_portal_result *r)
{
    if (!json_is_object(acct) || !jstr(acct, "username") || !jstr(acct, "type") ||
        !time_or_null(acct, "password_expires"))
        return false;
    copy_str(r->username, sizeof r->username, jstr(acct, "username"));
    copy_str(r->display_name, sizeof r->display_name, jstr(acct, "display_name"));
    copy_str(r->account_type, sizeof r->account_type, jstr(acct, "type"));
    copy_str(r->edipi, sizeof r->edipi, jstr(acct, "edipi"));
    copy_str(r->password_expires, sizeof r->password_expires, jstr(acct, "password_expires"));
    return true;
}

static bool read_cert(json_t *cert, char *subject, size_t ssize, char *serial, size_t nsize,
                      char *not_after, size_t asize)
{
    if (json_is_null(cert))
        return true;
    if (!json_is_object(cert) || !jstr(cert, "serial") || !jstr(cert, "subject"))
        return false;
    copy_str(subject, ssize, jstr(cert, "subject"));
    copy_str(serial, nsize, jstr(cert, "serial"));
    if (not_after)
        copy_str(not_after, asize, jstr(cert, "not_after"));
    return true;
}

/* The certificate an answer registers or shows, into r's cert_ fields. */
static bool read_registered_cert(json_t *cert, cacreg_portal_result *r)
{
    if (!read_cert(cert, r->cert_subject, sizeof r->cert_subject, r->cert_serial,
                   sizeof r->cert_serial, r->cert_not_after, sizeof r->cert_not_after))
        return false;
    if (json_is_object(cert)) {
        copy_str(r->cert_issuer, sizeof r->cert_issuer, jstr(cert, "issuer"));
        copy_str(r->cert_sha256, sizeof r->cert_sha256, jstr(cert, "sha256"));
    }
    return true;
}

static const char *const registration_names[] = {
    [CACREG_REG_NONE] = "", [CACREG_REG_REGISTERED] = "registered",
    [CACREG_REG_REPLACED] = "replaced", [CACREG_REG_UNCHANGED] = "unchanged"};

const char *cacreg_registration_name(cacreg_registration r)
{
    return (unsigned)r <= CACREG_REG_UNCHANGED ? registration_names[r] : "";
}

/* The registration result a string names; CACREG_REG_NONE for none of them. */
static cacreg_registration registration_of(const char *s)
{
    for (int i = CACREG_REG_REGISTERED; s && i <= CACREG_REG_UNCHANGED; i++)
        if (strcmp(s, registration_names[i]) == 0)
            return (cacreg_registration)i;
    return CACREG_REG_NONE;
}

/* The contract's error codes, in cacreg_portal_reason's order. */
static const char *const reason_names[] = {
    [CACREG_PORTAL_NO_CLIENT_CERTIFICATE] = "no_client_certificate",
    [CACREG_PORTAL_UNTRUSTED_ISSUER] = "untrusted_issuer",
    [CACREG_PORTAL_CERTIFICATE_NOT_YET_VALID] = "certificate_not_yet_valid",
    [CACREG_PORTAL_CERTIFICATE_EXPIRED] = "certificate_expired",
    [CACREG_PORTAL_CERTIFICATE_REVOKED] = "certificate_revoked",
    [CACREG_PORTAL_NOT_IDENTITY_CERTIFICATE] = "not_identity_certificate",
    [CACREG_PORTAL_NO_ACCOUNT] = "no_account",
    [CACREG_PORTAL_ACCOUNT_NOT_PERMITTED] = "account_not_permitted",
    [CACREG_PORTAL_REGISTERED_TO_OTHER_ACCOUNT] = "registered_to_other_account",
    [CACREG_PORTAL_EDIPI_MISMATCH] = "edipi_mismatch",
    [CACREG_PORTAL_INVALID_CREDENTIALS] = "invalid_credentials",
    [CACREG_PORTAL_PASSWORD_EXPIRED] = "password_expired",
    [CACREG_PORTAL_ACCOUNT_LOCKED] = "account_locked",
    [CACREG_PORTAL_SESSION_EXPIRED] = "session_expired",
    [CACREG_PORTAL_NO_SESSION] = "no_session",
    [CACREG_PORTAL_REVOCATION_UNAVAILABLE] = "revocation_unavailable",
    [CACREG_PORTAL_DIRECTORY_UNAVAILABLE] = "directory_unavailable",
};

static cacreg_portal_reason reason_of(const char *code)
{
    for (size_t i = 1; i < sizeof reason_names / sizeof reason_names[0]; i++)
        if (reason_names[i] && strcmp(code, reason_names[i]) == 0)
            return (cacreg_portal_reason)i;
    return CACREG_PORTAL_OTHER_REASON;
}

/* Keeps the session token of a login answer in locked memory. */
static bool take_session(cacreg_secret *session, json_t *root)
{
    const char *token = jstr(root, "session");

    if (!token || !token[0] || strlen(token) > 200)
        return false;
    cacreg_secret_clear(session);
    return cacreg_secret_append(session, token, strlen(token)) == CACREG_OK;
}

/* Checks a 2xx answer against the contract for its request; false names what is wrong. */
static bool read_success(cacreg_request kind, cacreg_secret *session, json_t *root,
                         cacreg_portal_result *r)
{
    json_t *reg;

    switch (kind) {
    case CACREG_REQ_CAC_LOGIN:
        reg = json_object_get(root, "registration");
        if (!take_session(session, root) || !read_account(json_object_get(root, "account"), r) ||
            !json_is_object(reg) || !registration_of(jstr(reg, "result")) ||
            !read_registered_cert(json_object_get(reg, "certificate"), r) ||
            !time_or_null(root, "password_expires"))
            return false;
        r->registration = registration_of(jstr(reg, "result"));
        copy_str(r->password_expires, sizeof r->password_expires, jstr(root, "password_expires"));
        copy_str(r->note, sizeof r->note, jstr(reg, "note"));
        r->registered = true;
        {
            char unused[8];
            json_t *old = json_object_get(reg, "replaced");
            if (old && !read_cert(old, unused, sizeof unused, r->replaced_serial,
                                  sizeof r->replaced_serial, NULL, 0))
                return false;
        }
        return true;
    case CACREG_REQ_PASSWORD_LOGIN:
        return take_session(session, root) && read_account(json_object_get(root, "account"), r);
    case CACREG_REQ_GET_REGISTRATION:
        if (!read_account(json_object_get(root, "account"), r) ||
            !json_is_boolean(json_object_get(root, "registered")))
            return false;
        r->registered = json_is_true(json_object_get(root, "registered"));
        copy_str(r->registered_at, sizeof r->registered_at, jstr(root, "registered_at"));
        return read_registered_cert(json_object_get(root, "certificate"), r) &&
               (!r->registered || r->cert_serial[0]);
    case CACREG_REQ_CLEAR_REGISTRATION:
        r->registered = false;
        copy_str(r->note, sizeof r->note, jstr(root, "note"));
        return json_is_false(json_object_get(root, "registered"));
    case CACREG_REQ_REGISTER:
        if (!registration_of(jstr(root, "result")) ||
            !read_registered_cert(json_object_get(root, "certificate"), r))
            return false;
        r->registration = registration_of(jstr(root, "result"));
        copy_str(r->registered_at, sizeof r->registered_at, jstr(root, "registered_at"));
        copy_str(r->note, sizeof r->note, jstr(root, "note"));
        r->registered = true;
        return true;
    case CACREG_REQ_LOGOUT:
    case CACREG_REQ_PASSWORD_RESET:
        return true;
    case CACREG_REQ_NONE:
    case CACREG_REQ_COUNT:
        break;
    }
    return false;
}

/* Turns what came back into a result. */
static void classify(cacreg_portal *p, CURLcode cc, cacreg_portal_result *r)
{
    r->server_time = p->date_header;
    r->clock_skew_s = p->date_header ? (long long)time(NULL) - p->date_header : 0;
    if (atomic_load(&p->cancel) || cc == CURLE_ABORTED_BY_CALLBACK) {
        r->err = CACREG_ERR_CANCELLED;
        cacreg_errf(r->message, sizeof r->message, "Cancelled.");
        return;
    }
    if (cc != CURLE_OK) {
        switch (cc) {
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
            r->err = CACREG_ERR_TLS;
            cacreg_errf(r->message, sizeof r->message,
                        "The portal's server certificate is not trusted: %s",
                        cc == CURLE_SSL_PINNEDPUBKEYNOTMATCH
                            ? "its key is not the one this machine was set up to expect"
                            : p->curl_error);
            return;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CERTPROBLEM:
            if (p->key && atomic_load(&p->cert_sent) && !atomic_load(&p->signed_ok)) {
                /* The card's certificate went out, its signature did not: the card failed. */
                r->err = CACREG_ERR_NO_KEY;
                cacreg_errf(r->message, sizeof r->message,
                            "The card did not sign the portal's login: %s", p->curl_error);
                return;
            }
            r->err = CACREG_ERR_TLS;
            cacreg_errf(r->message, sizeof r->message, "The secure connection failed: %s",
                        p->curl_error);
            return;
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
            r->err = CACREG_ERR_UNREACHABLE;
            cacreg_errf(r->message, sizeof r->message,
                        "The connection to the portal was cut off during its answer (%s).",
                        p->curl_error[0] ? p->curl_error : curl_easy_strerror(cc));
            return;
        case CURLE_FILESIZE_EXCEEDED:
        case CURLE_WRITE_ERROR:
            if (p->answer_too_large || cc == CURLE_FILESIZE_EXCEEDED) {
                r->err = CACREG_ERR_BAD_ANSWER;
                cacreg_errf(r->message, sizeof r->message,
                            "The portal's answer was larger than %zu bytes; it was not read.",
                            ANSWER_MAX);
                return;
            }
            break;
        case CURLE_OPERATION_TIMEDOUT:
            r->err = CACREG_ERR_UNREACHABLE;
            cacreg_errf(r->message, sizeof r->message, "The portal did not answer in time (%s).",
                        p->curl_error);
            return;
        default:
            break;
        }
        r->err = CACREG_ERR_UNREACHABLE;
        cacreg_errf(r->message, sizeof r->message, "The portal cannot be reached: %s.",
                    p->curl_error[0] ? p->curl_error : curl_easy_strerror(cc));
        return;
    }
    curl_easy_getinfo(p->easy, CURLINFO_RESPONSE_CODE, &r->http_status);
    cacreg_portal_parse(p->kind, r->http_status, p->content_type, p->answer, p->answer_len,
                        p->session, r);
    if (p->kind == CACREG_REQ_CAC_LOGIN && r->err == CACREG_OK &&
        !(atomic_load(&p->cert_asked) && atomic_load(&p->signed_ok))) {
        /* The contract: the portal asks for the card in every handshake, and a CAC login
         * is the card's signature. A yes without one is not a CAC login. */
        r->err = CACREG_ERR_BAD_ANSWER;
        cacreg_secret_clear(p->session);
        cacreg_errf(r->message, sizeof r->message,
                    "The portal logged you in without asking for your card's certificate, so "
                    "nothing proves the card is yours: this is not the portal the contract "
                    "describes.");
    }
}

void cacreg_portal_parse(cacreg_request kind, long http_status, const char *content_type,
                         const char *body, size_t len, cacreg_secret *session,
                         cacreg_portal_result *r)
{
    json_error_t jerr;
    json_t *root = NULL;
    bool is_json = strncasecmp(content_type, "application/json", 16) == 0;

    r->http_status = http_status;
    if (r->http_status == 204 && kind == CACREG_REQ_LOGOUT) {
        r->err = CACREG_OK;
        return;
    }
    if (is_json && len <= ANSWER_MAX)
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!is_json || !json_is_object(root)) {
        r->err = CACREG_ERR_BAD_ANSWER;
        if (r->http_status >= 500)
            cacreg_errf(r->message, sizeof r->message,
                        "The portal is having trouble (HTTP %ld); try again in a few minutes.",
                        r->http_status);
        else if (!is_json)
            cacreg_errf(r->message, sizeof r->message,
                        "The portal answered with something that is not its API (HTTP %ld, %s).",
                        r->http_status, content_type[0] ? content_type : "no type");
        else
            cacreg_errf(r->message, sizeof r->message,
                        "The portal's answer could not be read (%s).",
                        root ? "not a JSON object" : jerr.text);
        json_decref(root);
        return;
    }
    if (r->http_status >= 200 && r->http_status < 300) {
        if (read_success(kind, session, root, r)) {
            r->err = CACREG_OK;
        } else {
            r->err = CACREG_ERR_BAD_ANSWER;
            cacreg_errf(r->message, sizeof r->message,
                        "The portal's answer lacks what the API promises; nothing was changed "
                        "here.");
        }
    } else if (jstr(root, "error")) {
        json_t *left = json_object_get(root, "attempts_left");
        r->err = CACREG_ERR_REFUSED;
        copy_str(r->error, sizeof r->error, jstr(root, "error"));
        copy_str(r->message, sizeof r->message, jstr(root, "message"));
        r->reason = reason_of(r->error);
        r->attempts_left = json_is_integer(left) ? (int)json_integer_value(left) : -1;
        if (r->reason == CACREG_PORTAL_SESSION_EXPIRED || r->reason == CACREG_PORTAL_NO_SESSION)
            cacreg_secret_clear(session);
    } else {
        r->err = CACREG_ERR_BAD_ANSWER;
        cacreg_errf(r->message, sizeof r->message, "The portal answered HTTP %ld without saying "
                                                   "why.", r->http_status);
    }
    json_decref(root);
}

/* Sets the options every request has: the portal verified, HTTPS only, no proxy from the environment. */
static void base_options(cacreg_portal *p, struct curl_slist *headers)
{
    CURL *e = p->easy;

    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(e, CURLOPT_CAINFO, p->cfg.ca_bundle);
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never from the environment */
    if (p->cfg.portal_pins[0])
        curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, p->cfg.portal_pins);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)p->cfg.connect_timeout_s);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)p->cfg.total_timeout_s);
    /* A portal that drips its answer is given up in seconds, not at the total timeout:
     * under 1 KB/s for longer than a card takes to sign in the handshake. */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
                     (long)(p->cfg.total_timeout_s < LOW_SPEED_S ? p->cfg.total_timeout_s
                                                                 : LOW_SPEED_S));
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)ANSWER_MAX);
    curl_easy_setopt(e, CURLOPT_VERBOSE, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, p->curl_error);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, p);
    curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
    curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, p);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "cacreg/0.1");
}

/* Each request's route, and what its body carries (docs/portal-api.md). */
static const struct route {
    const char *method, *path;
    bool bearer;   /* sent with the session's token */
    bool username; /* {"username": ...} */
    bool password; /* {"password": ...} */
} routes[CACREG_REQ_COUNT] = {
    [CACREG_REQ_CAC_LOGIN] = {"POST", "cac-login", false, false, false},
    [CACREG_REQ_PASSWORD_LOGIN] = {"POST", "session", false, true, true},
    [CACREG_REQ_GET_REGISTRATION] = {"GET", "registration", true, false, false},
    [CACREG_REQ_CLEAR_REGISTRATION] = {"DELETE", "registration", true, false, false},
    [CACREG_REQ_REGISTER] = {"POST", "registration", true, false, true},
    [CACREG_REQ_LOGOUT] = {"DELETE", "session", true, false, false},
    [CACREG_REQ_PASSWORD_RESET] = {"POST", "password-reset", false, true, false},
};

/* The network thread's job: one request, start to end, cancellable. */
static cacreg_err run_request(void *arg)
{
    cacreg_portal *p = arg;
    const struct route *route = &routes[p->kind];
    cacreg_portal_result r;
    struct curl_slist *headers = NULL;
    cacreg_secret *auth = cacreg_secret_new();
    char url[CACREG_URL_MAX + 32];
    CURLcode cc = CURLE_OK;
    CURLMsg *msg;
    int running = 1, left;

    memset(&r, 0, sizeof r);
    r.attempts_left = -1;
    p->answer_len = 0;
    p->answer_too_large = false;
    p->content_type[0] = '\0';
    p->curl_error[0] = '\0';
    p->date_header = 0;
    snprintf(url, sizeof url, "%s%s", p->base_url, route->path);
    if (cacreg_secret_len(p->body) > 0)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    if (route->bearer && auth) {
        /* curl keeps its own copy of header lines: the one place the token leaves
         * locked memory, for the life of this request. */
        cacreg_secret_append(auth, "Authorization: Bearer ", 22);
        cacreg_secret_append(auth, cacreg_secret_data(p->session), cacreg_secret_len(p->session));
        headers = curl_slist_append(headers, cacreg_secret_data(auth));
    }
    base_options(p, headers);
    curl_easy_setopt(p->easy, CURLOPT_URL, url);
    curl_easy_setopt(p->easy, CURLOPT_CUSTOMREQUEST, route->method);
    if (strcmp(route->method, "GET") == 0) {
        curl_easy_setopt(p->easy, CURLOPT_HTTPGET, 1L);
    } else {
        /* POSTFIELDS does not copy: the body stays in our locked buffer. */
        curl_easy_setopt(p->easy, CURLOPT_POSTFIELDS, cacreg_secret_data(p->body));
        curl_easy_setopt(p->easy, CURLOPT_POSTFIELDSIZE, (long)cacreg_secret_len(p->body));
    }
    curl_multi_add_handle(p->multi, p->easy);
    while (running && !atomic_load(&p->cancel)) {
        if (curl_multi_perform(p->multi, &running) != CURLM_OK)
            break;
        if (running)
            curl_multi_poll(p->multi, NULL, 0, 1000, NULL);
    }
    while ((msg = curl_multi_info_read(p->multi, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE)
            cc = msg->data.result;
    curl_multi_remove_handle(p->multi, p->easy);
    classify(p, atomic_load(&p->cancel) ? CURLE_ABORTED_BY_CALLBACK : cc, &r);
    atomic_store(&p->cancel, false);
    curl_easy_setopt(p->easy, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(headers);
    cacreg_secret_free(auth);
    cacreg_secret_clear(p->body); /* a password is sent once, never again */
    OPENSSL_cleanse(p->answer, p->answer_len);
    pthread_mutex_lock(&p->lock);
    p->result = r;
    pthread_mutex_unlock(&p->lock);
    atomic_store(&p->busy, false);
    return r.err;
}

/* Builds {"key": "value", ...} into the locked body; values may be secrets. */
static cacreg_err body_add(cacreg_portal *p, const char *key, const char *value, size_t len)
{
    cacreg_secret *b = p->body;
    cacreg_err rc;

    rc = cacreg_secret_append(b, cacreg_secret_len(b) ? ", \"" : "{\"", cacreg_secret_len(b) ? 3 : 2);
    if (rc == CACREG_OK)
        rc = cacreg_secret_append(b, key, strlen(key));
    if (rc == CACREG_OK)
        rc = cacreg_secret_append(b, "\": \"", 4);
    if (rc == CACREG_OK)
        rc = json_escape_into(b, value, len);
    if (rc == CACREG_OK)
        rc = cacreg_secret_append(b, "\"", 1);
    return rc;
}

int cacreg_portal_request(cacreg_portal *p, cacreg_request kind, const char *username,
                          cacreg_secret *password)
{
    const struct route *route;
    cacreg_err rc = CACREG_OK;
    int id;

    /* A request in flight: its body may be on its way, and must not be touched. */
    if ((unsigned)kind >= CACREG_REQ_COUNT || kind == CACREG_REQ_NONE || atomic_load(&p->busy)) {
        if (password)
            cacreg_secret_clear(password);
        return -1;
    }
    route = &routes[kind];
    cacreg_secret_clear(p->body);
    if (route->username)
        rc = username ? body_add(p, "username", username, strlen(username)) : CACREG_ERR_INVALID;
    if (rc == CACREG_OK && route->password)
        rc = password ? body_add(p, "password", cacreg_secret_data(password),
                                 cacreg_secret_len(password))
                      : CACREG_ERR_INVALID;
    if (password)
        cacreg_secret_clear(password);
    if (rc == CACREG_OK && cacreg_secret_len(p->body) > 0)
        rc = cacreg_secret_append(p->body, "}", 1);
    if (rc != CACREG_OK) {
        cacreg_secret_clear(p->body);
        return -1;
    }
    p->kind = kind;
    atomic_store(&p->cancel, false);
    atomic_store(&p->busy, true);
    id = cacreg_worker_submit(p->thread, run_request, p);
    if (id < 0) {
        cacreg_secret_clear(p->body);
        atomic_store(&p->busy, false);
    }
    return id;
}
