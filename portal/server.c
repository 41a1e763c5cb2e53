/* libmicrohttpd on GnuTLS: the TLS handshake, the request's bytes, the answer. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <openssl/crypto.h>

#include "audit.h"
#include "server.h"

#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define BODY_DRAIN_MAX ((size_t)1024 * 1024) /* past this, a too-large body is not read */
#define CHAIN_MAX 8                           /* client certificates looked at */
#define MEMORY_LIMIT ((size_t)32 * 1024)      /* per connection: headers and the body's buffer */
#define LISTEN_BACKLOG 1024
#define PEM_MAX ((size_t)1024 * 1024)

struct server {
    struct MHD_Daemon *daemon;
    char *cert, *key, *trust; /* libmicrohttpd keeps pointers to them: kept until the stop */
    size_t key_len;
    const api_context *ctx;
    gnutls_x509_trust_list_t client_trust; /* the issuers the handshake accepts */
    int port;
    int access_log;           /* -1: none */
};

/* The handshake's trust, for the verify callback (one server per process). */
static gnutls_x509_trust_list_t handshake_trust;

/* One request's bytes as they arrive. */
struct request_state {
    char body[API_BODY_MAX + 1];
    size_t len;
    size_t seen;        /* every byte, kept or not */
    bool present;
    bool too_large;
};

/* libmicrohttpd's own words go to the log (never a request's contents: it has none). */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    audit_line l;
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    audit_begin(&l, "http_error", NULL);
    audit_add(&l, "what", msg);
    audit_send(&l, 1);
}

/*
 * The handshake's check of a client certificate: its issuer must be one the
 * TLS layer knows (dates are not looked at here: the contract answers those
 * with a 403 that says which). Anything else is a fatal alert: unknown_ca when
 * the issuer is unknown, bad_certificate otherwise.
 */
static int verify_client(gnutls_session_t session)
{
    gnutls_x509_crt_t chain[CHAIN_MAX];
    const gnutls_datum_t *peers;
    unsigned n = 0, status = 0, imported = 0;
    int ret;

    peers = gnutls_certificate_get_peers(session, &n);
    if (!peers || n == 0)
        return 0; /* asked, not required: the operations that need one say so */
    if (n > CHAIN_MAX)
        n = CHAIN_MAX;
    for (; imported < n; imported++) {
        if (gnutls_x509_crt_init(&chain[imported]) < 0)
            break;
        if (gnutls_x509_crt_import(chain[imported], &peers[imported], GNUTLS_X509_FMT_DER) < 0) {
            gnutls_x509_crt_deinit(chain[imported]);
            break;
        }
    }
    ret = imported == n ? gnutls_x509_trust_list_verify_crt2(
                              handshake_trust, chain, n, NULL, 0,
                              GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
                                  GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS,
                              &status, NULL)
                        : GNUTLS_E_CERTIFICATE_ERROR;
    for (unsigned i = 0; i < imported; i++)
        gnutls_x509_crt_deinit(chain[i]);
    if (ret == 0 && status == 0)
        return 0;
    /* The alert is sent here: libmicrohttpd closes a failed handshake without one. */
    (void)gnutls_alert_send(session, GNUTLS_AL_FATAL,
                            ret == 0 && (status & GNUTLS_CERT_SIGNER_NOT_FOUND)
                                ? GNUTLS_A_UNKNOWN_CA
                                : GNUTLS_A_BAD_CERTIFICATE);
    return GNUTLS_E_CERTIFICATE_ERROR;
}

/* Each new connection's TLS session gets the client-certificate check. */
static void on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    const union MHD_ConnectionInfo *info;

    (void)cls;
    (void)socket_context;
    if (code != MHD_CONNECTION_NOTIFY_STARTED)
        return;
    info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (info && info->tls_session)
        gnutls_session_set_verify_function((gnutls_session_t)info->tls_session, verify_client);
}

static void client_address(struct MHD_Connection *connection, char *out, size_t size)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = info ? info->client_addr : NULL;

    snprintf(out, size, "unknown");
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)size);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)size);
}

/* One line of the access log: when, who, the request line, the status; never contents. */
static void access_line(const server *s, const char *addr, const char *method, const char *url,
                        const char *version, unsigned status)
{
    char line[1024], when[24];
    time_t now = time(NULL);
    struct tm tm;
    size_t n;
    int len;

    if (s->access_log < 0)
        return;
    when[0] = '\0';
    if (gmtime_r(&now, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    len = snprintf(line, sizeof line, "%s %s \"%.16s %.512s %.16s\" %u\n", when, addr, method, url,
                   version, status);
    n = len < 0 ? 0 : (size_t)len < sizeof line ? (size_t)len : sizeof line - 1;
    for (size_t i = 0; i + 1 < n; i++) /* one request, one line */
        if ((unsigned char)line[i] < ' ' || line[i] == 0x7f)
            line[i] = '?';
    line[n - 1] = '\n';
    (void)!write(s->access_log, line, n); /* O_APPEND: whole lines */
}

/* Sends answer (its body is freed). */
static enum MHD_Result send_answer(struct MHD_Connection *connection, api_answer *answer)
{
    struct MHD_Response *r;
    enum MHD_Result ret;
    char retry[16];

    r = MHD_create_response_from_buffer(answer->body_len, answer->body,
                                        answer->body ? MHD_RESPMEM_MUST_FREE
                                                     : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(answer->body);
        return MHD_NO;
    }
    if (answer->body)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
    if (answer->retry_after_s > 0) {
        snprintf(retry, sizeof retry, "%d", answer->retry_after_s);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, retry);
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    ret = MHD_queue_response(connection, answer->status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    server *s = cls;
    struct request_state *st = *con_cls;
    const union MHD_ConnectionInfo *info;
    char addr[INET6_ADDRSTRLEN + 1];
    api_request req = {0};
    api_answer answer;
    unsigned cert_n = 0;
    const gnutls_datum_t *peers = NULL;

    (void)version;
    if (!st) { /* the headers are in */
        const char *cl = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        const char *te = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_TRANSFER_ENCODING);
        st = malloc(sizeof *st);
        if (!st)
            return MHD_NO;
        st->len = st->seen = 0;
        st->body[0] = '\0';
        st->too_large = false;
        st->present = (cl && strspn(cl, "0 ") != strlen(cl)) || te;
        *con_cls = st;
        if (cl && strlen(cl) > 7 && strspn(cl, "0123456789") == strlen(cl) &&
            strtoull(cl, NULL, 10) > BODY_DRAIN_MAX) {
            /* Not worth reading: answered now, and the connection closes after it. */
            api_error_answer(413, "too_large", "The request body is over 8 KiB.", &answer);
            return send_answer(connection, &answer);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) { /* a part of the body */
        size_t n = *upload_data_size;
        st->seen += n;
        if (!st->too_large && n <= API_BODY_MAX - st->len) {
            memcpy(st->body + st->len, upload_data, n);
            st->len += n;
            st->body[st->len] = '\0';
        } else {
            st->too_large = true;
        }
        *upload_data_size = 0;
        if (st->seen > BODY_DRAIN_MAX) {
            api_error_answer(413, "too_large", "The request body is over 8 KiB.", &answer);
            return send_answer(connection, &answer);
        }
        return MHD_YES;
    }
    client_address(connection, addr, sizeof addr);
    info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (info && info->tls_session)
        peers = gnutls_certificate_get_peers((gnutls_session_t)info->tls_session, &cert_n);
    req.method = method;
    req.url = url;
    req.content_type = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_CONTENT_TYPE);
    req.authorization = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_AUTHORIZATION);
    req.body = st->body;
    req.body_len = st->len;
    req.body_present = st->present || st->seen > 0;
    req.body_too_large = st->too_large;
    req.cert_der = peers && cert_n > 0 ? peers[0].data : NULL;
    req.cert_len = peers && cert_n > 0 ? peers[0].size : 0;
    req.addr = addr;
    api_handle(s->ctx, &req, (long long)time(NULL), &answer);
    access_line(s, addr, method, url, version, answer.status);
    return send_answer(connection, &answer);
}

/* A request is over: its bytes are wiped (a password may be among them). */
static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    struct request_state *st = *con_cls;

    (void)cls;
    (void)connection;
    (void)code;
    if (st) {
        OPENSSL_cleanse(st->body, st->len);
        free(st);
        *con_cls = NULL;
    }
}

/* A whole PEM file into a NUL-terminated buffer; NULL and err if it cannot. */
static char *read_pem(const char *key, const char *path, size_t *len, char *err, size_t err_size)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (!f) {
        snprintf(err, err_size, "%s: %s cannot be read: %s", key, path, strerror(errno));
        return NULL;
    }
    buf = malloc(PEM_MAX + 1);
    n = buf ? fread(buf, 1, PEM_MAX + 1, f) : 0;
    fclose(f);
    if (!buf || n == 0 || n > PEM_MAX) {
        snprintf(err, err_size, "%s: %s is empty or too large", key, path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* cfg->listen as a socket address. */
static bool listen_address(const char *listen, struct sockaddr_storage *ss, char *err,
                           size_t err_size)
{
    const char *colon = strrchr(listen, ':');
    char host[128];
    long port;
    char *end;

    memset(ss, 0, sizeof *ss);
    if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof host)
        goto bad;
    port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535 || end == colon + 1)
        goto bad;
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    if (host[0] == '[') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        size_t hl = strlen(host);
        if (hl < 2 || host[hl - 1] != ']')
            goto bad;
        host[hl - 1] = '\0';
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
            goto bad;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            goto bad;
    }
    return true;
bad:
    snprintf(err, err_size, "listen: '%s' is not ADDRESS:PORT", listen);
    return false;
}

server *server_start(const portald_config *cfg, const api_context *ctx, char *err,
                     size_t err_size)
{
    server *s = calloc(1, sizeof *s);
    char *cert = NULL, *key = NULL, *trust = NULL;
    size_t cert_len = 0, key_len = 0, trust_len = 0;
    struct sockaddr_storage ss;
    const union MHD_DaemonInfo *info;
    unsigned threads = (unsigned)cfg->threads;
    gnutls_datum_t trust_pem;
    long cpus;

    if (!s)
        return NULL;
    s->ctx = ctx;
    s->access_log = -1;
    if (cfg->access_log[0]) {
        s->access_log = open(cfg->access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (s->access_log < 0) {
            snprintf(err, err_size, "access_log: %s cannot be written: %s", cfg->access_log,
                     strerror(errno));
            goto fail;
        }
    }
    if (!listen_address(cfg->listen, &ss, err, err_size) ||
        !(cert = read_pem("tls_cert", cfg->tls_cert, &cert_len, err, err_size)) ||
        !(key = read_pem("tls_key", cfg->tls_key, &key_len, err, err_size)) ||
        !(trust = read_pem("tls_client_ca", cfg->tls_client_ca, &trust_len, err, err_size)))
        goto fail;
    trust_pem.data = (unsigned char *)trust;
    trust_pem.size = (unsigned)trust_len;
    if (gnutls_x509_trust_list_init(&s->client_trust, 0) < 0 ||
        gnutls_x509_trust_list_add_trust_mem(s->client_trust, &trust_pem, NULL,
                                             GNUTLS_X509_FMT_PEM, 0, 0) <= 0) {
        snprintf(err, err_size, "tls_client_ca: %s holds no certificate GnuTLS can read",
                 cfg->tls_client_ca);
        goto fail;
    }
    handshake_trust = s->client_trust;
    if (threads == 0) {
        cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 1 ? (unsigned)cpus : 2;
    }
    /*
     * poll, not epoll: libmicrohttpd 0.9.75's epoll mode spins a thread on a TLS
     * handshake waiting for the client (a record header and no more kept one core
     * busy for the whole connection_timeout; an ordinary handshake cost ~90 empty
     * epoll_wait and recv calls). poll waits. make bench found it; test_portald's
     * test_half_a_handshake_costs_no_cpu keeps it so.
     */
    s->daemon = MHD_start_daemon(
        MHD_USE_TLS | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG, 0, NULL,
        NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_HTTPS_MEM_KEY, key,
        MHD_OPTION_HTTPS_MEM_TRUST, trust, MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->connection_timeout_s, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)cfg->connections_per_address, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT, MEMORY_LIMIT,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)LISTEN_BACKLOG, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, err_size,
                 "cannot listen on %s with that certificate and key (in use, not allowed, or "
                 "the key does not match)",
                 cfg->listen);
        goto fail;
    }
    info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    s->cert = cert;
    s->key = key;
    s->key_len = key_len;
    s->trust = trust;
    return s;
fail:
    s->cert = cert;
    s->key = key;
    s->key_len = key_len;
    s->trust = trust;
    server_stop(s);
    return NULL;
}

int server_port(const server *s)
{
    return s->port;
}

void server_stop(server *s)
{
    if (!s)
        return;
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    if (s->client_trust)
        gnutls_x509_trust_list_deinit(s->client_trust, 1);
    handshake_trust = NULL;
    if (s->access_log >= 0)
        close(s->access_log);
    if (s->key)
        OPENSSL_cleanse(s->key, s->key_len);
    free(s->key);
    free(s->cert);
    free(s->trust);
    free(s);
}
