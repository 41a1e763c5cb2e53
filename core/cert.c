/* Certificates: a CAC's certificates into plain fields, the choice, pre-flight checks. */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/http.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "internal.h"
#include "text.h"

struct cacreg_trust {
    X509_STORE *anchors;        /* the CA bundle */
    STACK_OF(X509_CRL) *crls;   /* NULL when no CRL is configured */
    char ocsp_url[CACREG_URL_MAX]; /* "" when no OCSP is configured */
    int ocsp_timeout_s;
};

/* Copies an ASN1 string as UTF-8 into a fixed buffer; "" if it cannot. */
static void asn1_to_buf(const ASN1_STRING *s, char *buf, size_t size)
{
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, s);

    buf[0] = '\0';
    if (n < 0)
        return;
    if ((size_t)n >= size)
        n = (int)size - 1;
    memcpy(buf, utf8, (size_t)n);
    buf[n] = '\0';
    OPENSSL_free(utf8);
}

static void name_to_buf(const X509_NAME *name, char *buf, size_t size)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int n;

    buf[0] = '\0';
    if (!bio)
        return;
    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        n = BIO_read(bio, buf, (int)size - 1);
        buf[n > 0 ? n : 0] = '\0';
    }
    BIO_free(bio);
}

/* AD's name for an attribute of a DN, as its certificate tools print them. */
static const char *ad_attribute_name(int nid)
{
    static const struct {
        int nid;
        const char *name;
    } names[] = {
        {.nid = NID_countryName, .name = "C"},
        {.nid = NID_organizationName, .name = "O"},
        {.nid = NID_organizationalUnitName, .name = "OU"},
        {.nid = NID_commonName, .name = "CN"},
        {.nid = NID_localityName, .name = "L"},
        {.nid = NID_stateOrProvinceName, .name = "S"},
        {.nid = NID_streetAddress, .name = "STREET"},
        {.nid = NID_domainComponent, .name = "DC"},
        {.nid = NID_pkcs9_emailAddress, .name = "E"},
        {.nid = NID_title, .name = "T"},
        {.nid = NID_givenName, .name = "G"},
        {.nid = NID_initials, .name = "I"},
        {.nid = NID_surname, .name = "SN"},
        {.nid = NID_serialNumber, .name = "SERIALNUMBER"},
    };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].nid == nid)
            return names[i].name;
    return NULL;
}

/*
 * A DN most significant RDN first ("C=US,O=...,CN=..."), with AD's attribute
 * names and RFC 4514's escapes: how AD's altSecurityIdentities writes an issuer.
 */
static void name_to_x500(const X509_NAME *name, char *buf, size_t size)
{
    size_t n = 0;
    int last_set = -1;

    buf[0] = '\0';
    for (int i = 0; i < X509_NAME_entry_count(name); i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        const ASN1_OBJECT *obj = X509_NAME_ENTRY_get_object(e);
        const char *attr = ad_attribute_name(OBJ_obj2nid(obj));
        char oid[80], value[256];
        int set = X509_NAME_ENTRY_set(e);

        if (!attr) {
            int k = snprintf(oid, sizeof oid, "OID.");
            OBJ_obj2txt(oid + k, (int)sizeof oid - k, obj, 1);
            attr = oid;
        }
        asn1_to_buf(X509_NAME_ENTRY_get_data(e), value, sizeof value);
        if (n > 0 && n < size)
            buf[n++] = set == last_set ? '+' : ',';
        last_set = set;
        n += (size_t)snprintf(buf + (n < size ? n : size), n < size ? size - n : 0, "%s=", attr);
        for (const char *v = value; *v && n < size; v++) {
            bool special = strchr(",+\"\\<>;", *v) || (v == value && (*v == '#' || *v == ' ')) ||
                           (*v == ' ' && v[1] == '\0');
            if (special && n + 1 < size)
                buf[n++] = '\\';
            if (n < size)
                buf[n++] = *v;
        }
    }
    if (n >= size) {
        buf[0] = '\0'; /* cut, it would match nothing: none at all */
        return;
    }
    buf[n] = '\0';
}

void cacreg_cert_ad_mapping(const cacreg_cert *cert, char *out, size_t size)
{
    if (!cert->issuer_x500[0] || !cert->serial_reversed[0] ||
        snprintf(out, size, "X509:<I>%s<SR>%s", cert->issuer_x500, cert->serial_reversed) >=
            (int)size)
        out[0] = '\0';
}

static void cn_to_buf(const X509_NAME *name, char *buf, size_t size)
{
    int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);

    buf[0] = '\0';
    if (i >= 0)
        asn1_to_buf(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)), buf, size);
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    long long era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static long long asn1_time_to_epoch(const ASN1_TIME *t)
{
    struct tm tm;

    if (!t || !ASN1_TIME_to_tm(t, &tm))
        return 0;
    return days_from_civil(tm.tm_year + 1900LL, (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday) *
               86400 + tm.tm_hour * 3600LL + tm.tm_min * 60LL + tm.tm_sec;
}

/* A ten-digit EDIPI, or false. */
static bool is_edipi(const char *s, size_t len)
{
    if (len != 10)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* "DOE.JANE.Q.1000000001" -> holder "JANE Q DOE", EDIPI "1000000001". */
static void parse_cac_cn(const char *cn, char *holder, size_t hsize, char *edipi, size_t esize)
{
    const char *parts[5];
    size_t lens[5], n = 0;
    const char *p = cn;

    snprintf(holder, hsize, "%s", cn);
    edipi[0] = '\0';
    while (n < 5) {
        const char *dot = strchr(p, '.');
        parts[n] = p;
        lens[n] = dot ? (size_t)(dot - p) : strlen(p);
        n++;
        if (!dot)
            break;
        p = dot + 1;
    }
    if ((n == 2 || n == 3) && !is_edipi(parts[n - 1], lens[n - 1])) {
        /* LAST.FIRST[.MI], the EDIPI in the UPN only */
        if (n == 3)
            snprintf(holder, hsize, "%.*s %.*s %.*s", (int)lens[1], parts[1], (int)lens[2],
                     parts[2], (int)lens[0], parts[0]);
        else
            snprintf(holder, hsize, "%.*s %.*s", (int)lens[1], parts[1], (int)lens[0], parts[0]);
        return;
    }
    if (n < 3 || !is_edipi(parts[n - 1], lens[n - 1]))
        return;
    snprintf(edipi, esize, "%.*s", (int)lens[n - 1], parts[n - 1]);
    /* LAST.FIRST[.MI].EDIPI */
    if (n == 4)
        snprintf(holder, hsize, "%.*s %.*s %.*s", (int)lens[1], parts[1], (int)lens[2], parts[2],
                 (int)lens[0], parts[0]);
    else if (n == 3)
        snprintf(holder, hsize, "%.*s %.*s", (int)lens[1], parts[1], (int)lens[0], parts[0]);
}

static void read_alt_names(X509 *x, cacreg_cert *c)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);

    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type == GEN_OTHERNAME && OBJ_obj2nid(gn->d.otherName->type_id) == NID_ms_upn &&
            gn->d.otherName->value->type == V_ASN1_UTF8STRING)
            asn1_to_buf(gn->d.otherName->value->value.utf8string, c->upn, sizeof c->upn);
        else if (gn->type == GEN_EMAIL && !c->email[0])
            asn1_to_buf(gn->d.rfc822Name, c->email, sizeof c->email);
    }
    GENERAL_NAMES_free(names);
}

static void read_usages(X509 *x, cacreg_cert *c)
{
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
    uint32_t ku = X509_get_key_usage(x);

    if (ku & KU_DIGITAL_SIGNATURE)
        c->key_usage |= CACREG_KU_DIGITAL_SIGNATURE;
    if (ku & KU_NON_REPUDIATION)
        c->key_usage |= CACREG_KU_NON_REPUDIATION;
    if (ku & KU_KEY_ENCIPHERMENT)
        c->key_usage |= CACREG_KU_KEY_ENCIPHERMENT;
    for (int i = 0; eku && i < sk_ASN1_OBJECT_num(eku); i++) {
        switch (OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i))) {
        case NID_client_auth:
            c->eku |= CACREG_EKU_CLIENT_AUTH;
            break;
        case NID_ms_smartcard_login:
            c->eku |= CACREG_EKU_SMARTCARD_LOGON;
            break;
        case NID_email_protect:
            c->eku |= CACREG_EKU_EMAIL;
            break;
        default:
            c->eku |= CACREG_EKU_ANY;
            break;
        }
    }
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
}

/* The same rule the portal applies (docs/portal-api.md): UPN, clientAuth, no email. */
static cacreg_cert_kind classify(const cacreg_cert *c)
{
    if (c->upn[0] && (c->eku & CACREG_EKU_CLIENT_AUTH) && !(c->eku & CACREG_EKU_EMAIL))
        return CACREG_CERT_IDENTITY;
    if ((c->eku & CACREG_EKU_EMAIL) && (c->key_usage & CACREG_KU_DIGITAL_SIGNATURE))
        return CACREG_CERT_EMAIL_SIGNATURE;
    if ((c->eku & CACREG_EKU_EMAIL) || (c->key_usage & CACREG_KU_KEY_ENCIPHERMENT))
        return CACREG_CERT_EMAIL_ENCRYPTION;
    return CACREG_CERT_OTHER;
}

cacreg_err cacreg_cert_parse(cacreg_cert *out, const unsigned char *der, size_t len, char *err,
                             size_t err_size)
{
    const unsigned char *p = der;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    X509 *x;
    BIGNUM *bn;

    memset(out, 0, sizeof *out);
    if (len == 0 || len > CACREG_CERT_DER_MAX) {
        cacreg_errf(err, err_size, "certificate of %zu bytes (at most %d)", len, CACREG_CERT_DER_MAX);
        return CACREG_ERR_CERT;
    }
    x = d2i_X509(NULL, &p, (long)len);
    if (!x || p != der + len) {
        cacreg_errf(err, err_size, "not a DER X.509 certificate");
        X509_free(x);
        ERR_clear_error();
        return CACREG_ERR_CERT;
    }
    name_to_buf(X509_get_subject_name(x), out->subject, sizeof out->subject);
    name_to_buf(X509_get_issuer_name(x), out->issuer, sizeof out->issuer);
    cn_to_buf(X509_get_subject_name(x), out->common_name, sizeof out->common_name);
    cn_to_buf(X509_get_issuer_name(x), out->issuer_cn, sizeof out->issuer_cn);
    name_to_x500(X509_get_issuer_name(x), out->issuer_x500, sizeof out->issuer_x500);
    bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    if (bn) {
        unsigned char bytes[40];
        char *hex = BN_bn2hex(bn), *dec = BN_bn2dec(bn);
        int nbytes = BN_num_bytes(bn);
        if (hex)
            snprintf(out->serial, sizeof out->serial, "%s", hex);
        if (dec)
            snprintf(out->serial_dec, sizeof out->serial_dec, "%s", dec);
        /* The magnitude's bytes, last first (a serial of 0 is one byte 00). */
        if (nbytes <= (int)sizeof bytes && BN_bn2bin(bn, bytes) == nbytes) {
            if (nbytes == 0)
                bytes[nbytes++] = 0;
            for (int i = 0; i < nbytes; i++)
                snprintf(out->serial_reversed + (size_t)2 * i, 3, "%02X", bytes[nbytes - 1 - i]);
        }
        OPENSSL_free(hex);
        OPENSSL_free(dec);
        BN_free(bn);
    }
    out->not_before = asn1_time_to_epoch(X509_get0_notBefore(x));
    out->not_after = asn1_time_to_epoch(X509_get0_notAfter(x));
    read_alt_names(x, out);
    read_usages(x, out);
    out->rsa_key =
        X509_get0_pubkey(x) && EVP_PKEY_get_base_id(X509_get0_pubkey(x)) == EVP_PKEY_RSA;
    parse_cac_cn(out->common_name, out->holder, sizeof out->holder, out->cn_edipi,
                 sizeof out->cn_edipi);
    if (strlen(out->upn) == 14 && strcmp(out->upn + 10, "@mil") == 0 && is_edipi(out->upn, 10))
        snprintf(out->edipi, sizeof out->edipi, "%.10s", out->upn);
    else
        snprintf(out->edipi, sizeof out->edipi, "%s", out->cn_edipi);
    out->edipi_mismatch =
        out->cn_edipi[0] && out->edipi[0] && strcmp(out->cn_edipi, out->edipi) != 0;
    out->kind = classify(out);
    if (X509_digest(x, EVP_sha256(), md, &md_len))
        for (unsigned i = 0; i < md_len; i++)
            snprintf(out->sha256 + (size_t)2 * i, 3, "%02X", md[i]);
    X509_free(x);
    /* Valid UTF-8 from here on (JSON takes nothing else), cut characters replaced. */
    cacreg_text_repair_in_place(out->holder, sizeof out->holder);
    cacreg_text_repair_in_place(out->common_name, sizeof out->common_name);
    cacreg_text_repair_in_place(out->subject, sizeof out->subject);
    cacreg_text_repair_in_place(out->issuer, sizeof out->issuer);
    cacreg_text_repair_in_place(out->issuer_cn, sizeof out->issuer_cn);
    cacreg_text_repair_in_place(out->issuer_x500, sizeof out->issuer_x500);
    cacreg_text_repair_in_place(out->upn, sizeof out->upn);
    cacreg_text_repair_in_place(out->email, sizeof out->email);
    return CACREG_OK;
}

long cacreg_cert_days_left(const cacreg_cert *cert, long long now)
{
    long long left = cert->not_after - now;

    return (long)(left >= 0 ? left / 86400 : -((-left + 86399) / 86400));
}

const char *cacreg_cert_kind_name(cacreg_cert_kind kind)
{
    switch (kind) {
    case CACREG_CERT_IDENTITY:
        return "identity";
    case CACREG_CERT_EMAIL_SIGNATURE:
        return "email signature";
    case CACREG_CERT_EMAIL_ENCRYPTION:
        return "email encryption";
    case CACREG_CERT_OTHER:
        break;
    }
    return "other";
}

size_t cacreg_cert_choose(const cacreg_cert *certs, size_t n)
{
    size_t best = n;

    for (size_t i = 0; i < n; i++)
        if (certs[i].kind == CACREG_CERT_IDENTITY &&
            (best == n || certs[i].not_after > certs[best].not_after))
            best = i;
    return best;
}

const char *cacreg_cert_why_not(const cacreg_cert *cert)
{
    switch (cert->kind) {
    case CACREG_CERT_IDENTITY:
        return NULL;
    case CACREG_CERT_EMAIL_SIGNATURE:
        return "This one signs email. The portal wants the identity certificate, the one "
               "for logging in.";
    case CACREG_CERT_EMAIL_ENCRYPTION:
        return "This one decrypts email and cannot log you in.";
    case CACREG_CERT_OTHER:
        break;
    }
    return "This certificate is not meant for logging in.";
}

const char *cacreg_verdict_name(cacreg_verdict v)
{
    static const char *const names[] = {
        [CACREG_VERDICT_OK] = "ok",
        [CACREG_VERDICT_UNTRUSTED] = "untrusted",
        [CACREG_VERDICT_NOT_YET_VALID] = "not_yet_valid",
        [CACREG_VERDICT_EXPIRED] = "expired",
        [CACREG_VERDICT_REVOKED] = "revoked",
        [CACREG_VERDICT_REVOCATION_UNKNOWN] = "revocation_unknown",
        [CACREG_VERDICT_WRONG_KIND] = "wrong_kind",
        [CACREG_VERDICT_EDIPI_MISMATCH] = "edipi_mismatch",
        [CACREG_VERDICT_NO_TRUST_STORE] = "no_trust_store",
    };

    return (unsigned)v < sizeof names / sizeof names[0] ? names[v] : "unknown";
}

const char *cacreg_verdict_words(cacreg_verdict v)
{
    static const char *const words[] = {
        [CACREG_VERDICT_OK] = "valid",
        [CACREG_VERDICT_UNTRUSTED] = "issuer not trusted",
        [CACREG_VERDICT_NOT_YET_VALID] = "not valid yet",
        [CACREG_VERDICT_EXPIRED] = "expired",
        [CACREG_VERDICT_REVOKED] = "revoked",
        [CACREG_VERDICT_REVOCATION_UNKNOWN] = "revocation unknown",
        [CACREG_VERDICT_WRONG_KIND] = "no identity one",
        [CACREG_VERDICT_EDIPI_MISMATCH] = "names two EDIPIs",
        [CACREG_VERDICT_NO_TRUST_STORE] = "cannot be checked",
    };

    return (unsigned)v < sizeof words / sizeof words[0] ? words[v] : "unknown";
}

static STACK_OF(X509_CRL) *load_crls(const char *path)
{
    STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
    BIO *bio = BIO_new_file(path, "rb");
    X509_CRL *crl;

    if (!crls || !bio)
        goto fail;
    while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL)
        sk_X509_CRL_push(crls, crl);
    if (sk_X509_CRL_num(crls) == 0) { /* maybe DER */
        (void)BIO_reset(bio);
        crl = d2i_X509_CRL_bio(bio, NULL);
        if (!crl)
            goto fail;
        sk_X509_CRL_push(crls, crl);
    }
    ERR_clear_error();
    BIO_free(bio);
    return crls;
fail:
    ERR_clear_error();
    BIO_free(bio);
    sk_X509_CRL_pop_free(crls, X509_CRL_free);
    return NULL;
}

cacreg_err cacreg_trust_load(cacreg_trust **out, const char *ca_bundle, const char *crl_file,
                             char *err, size_t err_size)
{
    cacreg_trust *t = OPENSSL_zalloc(sizeof *t);

    *out = NULL;
    if (!t)
        return CACREG_ERR_NOMEM;
    t->anchors = X509_STORE_new();
    if (!t->anchors)
        goto nomem;
    if (ca_bundle && ca_bundle[0] && !X509_STORE_load_file(t->anchors, ca_bundle)) {
        cacreg_errf(err, err_size, "the CA bundle %s cannot be read", ca_bundle);
        ERR_clear_error();
        cacreg_trust_free(t);
        return CACREG_ERR_NOT_FOUND;
    }
    if (crl_file && crl_file[0]) {
        t->crls = load_crls(crl_file);
        if (!t->crls) {
            cacreg_errf(err, err_size, "the CRL %s cannot be read", crl_file);
            cacreg_trust_free(t);
            return CACREG_ERR_NOT_FOUND;
        }
    }
    *out = t;
    return CACREG_OK;
nomem:
    cacreg_trust_free(t);
    return CACREG_ERR_NOMEM;
}

cacreg_err cacreg_trust_set_ocsp(cacreg_trust *trust, const char *url, int timeout_s)
{
    if (strlen(url) >= sizeof trust->ocsp_url)
        return CACREG_ERR_TOO_LONG;
    snprintf(trust->ocsp_url, sizeof trust->ocsp_url, "%s", url);
    trust->ocsp_timeout_s = timeout_s > 0 ? timeout_s : 5;
    return CACREG_OK;
}

void cacreg_trust_free(cacreg_trust *trust)
{
    if (!trust)
        return;
    X509_STORE_free(trust->anchors);
    sk_X509_CRL_pop_free(trust->crls, X509_CRL_free);
    OPENSSL_free(trust);
}

/* Verifies x's chain at now, with or without the CRL; the X509_V_ error, 0 if fine. */
static int verify_chain(X509 *x, const cacreg_trust *trust, long long now, bool use_crl)
{
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int rc = X509_V_ERR_UNSPECIFIED;

    if (!ctx || !X509_STORE_CTX_init(ctx, trust->anchors, x, NULL))
        goto out;
    if (!use_crl) {
        /* Dates are checked apart, to say which one is wrong. */
        X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_NO_CHECK_TIME);
    } else {
        X509_STORE_CTX_set_time(ctx, 0, (time_t)now);
        X509_STORE_CTX_set0_crls(ctx, trust->crls);
        X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_CRL_CHECK);
    }
    rc = X509_verify_cert(ctx) == 1 ? 0 : X509_STORE_CTX_get_error(ctx);
out:
    X509_STORE_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

enum ocsp_answer { OCSP_GOOD, OCSP_REVOKED, OCSP_NO_ANSWER };

/* A TCP connection within timeout_s, tried once per address; -1 if none answers. */
static int connect_once(const char *host, const char *port, int timeout_s)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int fd = -1;

    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    for (const struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        struct pollfd pfd;
        int err = 0;
        socklen_t len = sizeof err;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
        if (errno != EINPROGRESS || poll(&pfd, 1, timeout_s * 1000) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* Asks the configured OCSP responder about x; the answer must verify against the anchors.
 * revoked_at and next_update (0: none given) are filled when not NULL. */
static enum ocsp_answer ocsp_ask(const cacreg_trust *trust, X509 *x, long long *revoked_at_out,
                                 long long *next_update_out)
{
    enum ocsp_answer answer = OCSP_NO_ANSWER;
    char *host = NULL, *port = NULL, *path = NULL;
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    OCSP_CERTID *id = NULL, *sent_id = NULL;
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    OCSP_RESPONSE *resp = NULL;
    OCSP_BASICRESP *basic = NULL;
    ASN1_GENERALIZEDTIME *this_update, *next_update, *revoked_at;
    BIO *req_bio = NULL, *resp_bio = NULL, *conn = NULL;
    X509 *issuer = NULL;
    int use_ssl, status, reason, fd;

    if (!ctx || !req || !X509_STORE_CTX_init(ctx, trust->anchors, x, NULL) ||
        X509_STORE_CTX_get1_issuer(&issuer, ctx, x) != 1)
        goto out;
    if (!OSSL_HTTP_parse_url(trust->ocsp_url, &use_ssl, NULL, &host, &port, NULL, &path, NULL,
                             NULL))
        goto out;
    id = OCSP_cert_to_id(NULL, x, issuer);
    sent_id = id ? OCSP_CERTID_dup(id) : NULL;
    if (!sent_id || !OCSP_request_add0_id(req, sent_id))
        goto out;
    req_bio = ASN1_item_i2d_mem_bio(ASN1_ITEM_rptr(OCSP_REQUEST), (const ASN1_VALUE *)req);
    if (!req_bio || use_ssl)
        goto out;
    /* Connect once, within the timeout: OpenSSL's own connect retries a refusing
     * responder until the timeout, and a refusal is an answer we want at once. */
    fd = connect_once(host, port, trust->ocsp_timeout_s);
    if (fd < 0 || !(conn = BIO_new_socket(fd, BIO_CLOSE))) {
        if (fd >= 0)
            close(fd);
        goto out;
    }
    resp_bio = OSSL_HTTP_transfer(NULL, host, port, path, use_ssl, NULL, NULL, conn, conn, NULL,
                                  NULL, 0, NULL, "application/ocsp-request", req_bio,
                                  "application/ocsp-response", 1, (size_t)64 * 1024,
                                  trust->ocsp_timeout_s, 0);
    resp = resp_bio ? d2i_OCSP_RESPONSE_bio(resp_bio, NULL) : NULL;
    if (!resp || OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL)
        goto out;
    basic = OCSP_response_get1_basic(resp);
    if (!basic || OCSP_basic_verify(basic, NULL, trust->anchors, 0) <= 0)
        goto out;
    if (!OCSP_resp_find_status(basic, id, &status, &reason, &revoked_at, &this_update,
                               &next_update) ||
        !OCSP_check_validity(this_update, next_update, 300, -1))
        goto out;
    if (status == V_OCSP_CERTSTATUS_GOOD)
        answer = OCSP_GOOD;
    else if (status == V_OCSP_CERTSTATUS_REVOKED)
        answer = OCSP_REVOKED;
    if (revoked_at_out)
        *revoked_at_out = answer == OCSP_REVOKED ? asn1_time_to_epoch(revoked_at) : 0;
    if (next_update_out)
        *next_update_out = next_update ? asn1_time_to_epoch(next_update) : 0;
out:
    ERR_clear_error();
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
    BIO_free(resp_bio);
    BIO_free(req_bio);
    BIO_free_all(conn);
    OCSP_REQUEST_free(req);
    OCSP_CERTID_free(id);
    OPENSSL_free(host);
    OPENSSL_free(port);
    OPENSSL_free(path);
    X509_free(issuer);
    X509_STORE_CTX_free(ctx);
    return answer;
}

/* The day part of an epoch time, "YYYY-MM-DD". */
static void day_string(long long t, char *buf, size_t size)
{
    ASN1_TIME *a = ASN1_TIME_set(NULL, (time_t)t);
    struct tm tm;

    buf[0] = '\0';
    if (a && ASN1_TIME_to_tm(a, &tm))
        strftime(buf, size, "%Y-%m-%d", &tm);
    ASN1_TIME_free(a);
}

/* Revocation by the CRL and/or OCSP, whichever are configured; OK when none is. */
static cacreg_verdict revocation(const cacreg_trust *trust, X509 *x, long long now, char *detail,
                                 size_t detail_size)
{
    bool answered = false;
    int rc = 0;

    if (!trust->crls && !trust->ocsp_url[0])
        return CACREG_VERDICT_OK;
    if (trust->crls) {
        rc = verify_chain(x, trust, now, true);
        if (rc == X509_V_ERR_CERT_REVOKED) {
            cacreg_errf(detail, detail_size, "It has been revoked (listed in the CRL).");
            return CACREG_VERDICT_REVOKED;
        }
        answered = rc == 0;
    }
    if (trust->ocsp_url[0]) {
        enum ocsp_answer a = ocsp_ask(trust, x, NULL, NULL);
        if (a == OCSP_REVOKED) {
            cacreg_errf(detail, detail_size, "It has been revoked (the OCSP responder says so).");
            return CACREG_VERDICT_REVOKED;
        }
        answered |= a == OCSP_GOOD;
    }
    if (answered)
        return CACREG_VERDICT_OK;
    if (rc != 0)
        cacreg_errf(detail, detail_size, "Its revocation status cannot be checked: %s.",
                    X509_verify_cert_error_string(rc));
    else
        cacreg_errf(detail, detail_size, "Its revocation status cannot be checked: the OCSP "
                                         "responder did not answer.");
    return CACREG_VERDICT_REVOCATION_UNKNOWN;
}

cacreg_verdict cacreg_cert_preflight(const cacreg_cert *cert, const cacreg_cert_der *der,
                                     const cacreg_trust *trust, long long now, char *detail,
                                     size_t detail_size)
{
    const unsigned char *p = der->bytes;
    cacreg_verdict v = CACREG_VERDICT_OK;
    char day[16];
    X509 *x;
    int rc;

    cacreg_errf(detail, detail_size, "The certificate passed every check.");
    if (!trust || !trust->anchors) {
        cacreg_errf(detail, detail_size, "No CA bundle is configured to check certificates against.");
        return CACREG_VERDICT_NO_TRUST_STORE;
    }
    x = d2i_X509(NULL, &p, (long)der->len);
    if (!x) {
        ERR_clear_error();
        cacreg_errf(detail, detail_size, "The certificate cannot be read.");
        return CACREG_VERDICT_UNTRUSTED;
    }
    rc = verify_chain(x, trust, now, false);
    if (rc != 0) {
        cacreg_errf(detail, detail_size, "Its issuer (%s) is not one this machine trusts: %s.",
             cert->issuer_cn[0] ? cert->issuer_cn : cert->issuer,
             X509_verify_cert_error_string(rc));
        v = CACREG_VERDICT_UNTRUSTED;
    } else if (now < cert->not_before) {
        day_string(cert->not_before, day, sizeof day);
        cacreg_errf(detail, detail_size, "It is not valid until %s; check this machine's clock.", day);
        v = CACREG_VERDICT_NOT_YET_VALID;
    } else if (now > cert->not_after) {
        day_string(cert->not_after, day, sizeof day);
        cacreg_errf(detail, detail_size, "It expired on %s.", day);
        v = CACREG_VERDICT_EXPIRED;
    } else if ((v = revocation(trust, x, now, detail, detail_size)) != CACREG_VERDICT_OK) {
        /* revoked, or no configured source could answer */
    } else if (cert->kind != CACREG_CERT_IDENTITY) {
        cacreg_errf(detail, detail_size, "%s", cacreg_cert_why_not(cert));
        v = CACREG_VERDICT_WRONG_KIND;
    } else if (cert->edipi_mismatch) {
        cacreg_errf(detail, detail_size,
                    "Its name (CN) says EDIPI %s and its UPN says EDIPI %s; they must be the same.",
                    cert->cn_edipi, cert->edipi);
        v = CACREG_VERDICT_EDIPI_MISMATCH;
    }
    X509_free(x);
    return v;
}

int cacreg_cert_ocsp(const cacreg_trust *trust, const cacreg_cert_der *der, long long *revoked_at,
                     long long *next_update)
{
    const unsigned char *p = der->bytes;
    X509 *x = d2i_X509(NULL, &p, (long)der->len);
    enum ocsp_answer a;

    *revoked_at = 0;
    *next_update = 0;
    if (!x || !trust->ocsp_url[0]) {
        X509_free(x);
        ERR_clear_error();
        return -1;
    }
    a = ocsp_ask(trust, x, revoked_at, next_update);
    X509_free(x);
    return a == OCSP_GOOD ? 0 : a == OCSP_REVOKED ? 1 : -1;
}

long long cacreg_cert_crl_revoked_at(const cacreg_trust *trust, const cacreg_cert_der *der)
{
    const unsigned char *p = der->bytes;
    X509 *x = d2i_X509(NULL, &p, (long)der->len);
    long long at = 0;

    for (int i = 0; x && trust->crls && i < sk_X509_CRL_num(trust->crls) && !at; i++) {
        X509_REVOKED *entry = NULL;
        if (X509_CRL_get0_by_cert(sk_X509_CRL_value(trust->crls, i), &entry, x) == 1 && entry)
            at = asn1_time_to_epoch(X509_REVOKED_get0_revocationDate(entry));
    }
    X509_free(x);
    ERR_clear_error();
    return at;
}
