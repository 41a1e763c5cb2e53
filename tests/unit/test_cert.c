/*
 * Unit tests for core/cert.c: the personas' certificates (from the test PKI
 * that tests/pki/mkpki.sh makes, at $CACREG_PKI or $CACREG_BUILD/pki) and
 * certificates made here for the edge cases no persona has.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "parts.h"

static char pki[1024];

/* Reads PKI/cards/PERSONA/KIND.pem into a parsed certificate. */
/* The last certificate load() read, as DER, for pre-flight. */
static cacreg_cert_der last_der;

static void load(cacreg_cert *c, const char *persona, const char *kind)
{
    char path[1200], err[256];
    unsigned char *der = NULL;
    FILE *f;
    X509 *x;
    int len;

    snprintf(path, sizeof path, "%s/cards/%s/%s.pem", pki, persona, kind);
    f = fopen(path, "r");
    if (!f)
        fail_msg("no %s: build the PKI first (make bench-tools)", path);
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    len = i2d_X509(x, &der);
    assert_true(len > 0);
    assert_int_equal(cacreg_cert_parse(c, der, (size_t)len, err, sizeof err), CACREG_OK);
    memcpy(last_der.bytes, der, (size_t)len);
    last_der.len = (size_t)len;
    OPENSSL_free(der);
    X509_free(x);
}

static void test_identity_fields(void **state)
{
    cacreg_cert c;

    (void)state;
    load(&c, "valid", "id");
    assert_string_equal(c.common_name, "DOE.JANE.Q.1000000001");
    assert_string_equal(c.holder, "JANE Q DOE");
    assert_string_equal(c.edipi, "1000000001");
    assert_string_equal(c.upn, "1000000001@mil");
    assert_false(c.edipi_mismatch);
    assert_int_equal(c.kind, CACREG_CERT_IDENTITY);
    assert_true(c.eku & CACREG_EKU_CLIENT_AUTH);
    assert_true(c.eku & CACREG_EKU_SMARTCARD_LOGON);
    assert_false(c.eku & CACREG_EKU_EMAIL);
    assert_string_equal(c.issuer_cn, "Test DOD ID CA-59");
    assert_non_null(strstr(c.subject, "CN=DOE.JANE.Q.1000000001"));
    assert_int_equal(strlen(c.sha256), 64);
    assert_string_equal(c.issuer_x500, "C=US,O=U.S. Government,OU=DoD,OU=PKI,CN=Test DOD ID CA-59");
    assert_true(c.not_after > c.not_before);
    assert_true(cacreg_cert_days_left(&c, (long long)time(NULL)) > 300);
    assert_null(cacreg_cert_why_not(&c));
}

static void test_kinds(void **state)
{
    static const struct {
        const char *kind_file;
        cacreg_cert_kind kind;
    } cases[] = {
        {"id", CACREG_CERT_IDENTITY},
        {"sig", CACREG_CERT_EMAIL_SIGNATURE},
        {"enc", CACREG_CERT_EMAIL_ENCRYPTION},
    };
    cacreg_cert c;

    (void)state;
    for (size_t i = 0; i < 3; i++) {
        load(&c, "valid", cases[i].kind_file);
        assert_int_equal(c.kind, cases[i].kind);
        assert_string_equal(c.holder, "JANE Q DOE");
        assert_string_equal(c.edipi, "1000000001"); /* from the CN where there is no UPN */
    }
    load(&c, "valid", "sig");
    assert_string_equal(c.email, "jane.q.doe.mil@mail.mil");
    assert_non_null(cacreg_cert_why_not(&c));
    assert_string_equal(cacreg_cert_kind_name(CACREG_CERT_EMAIL_SIGNATURE), "email signature");
}

/* The identity certificate is chosen whatever the order on the card. */
static void test_choose(void **state)
{
    static cacreg_cert certs[3];

    (void)state;
    load(&certs[0], "valid", "enc");
    load(&certs[1], "valid", "sig");
    load(&certs[2], "valid", "id");
    assert_int_equal(cacreg_cert_choose(certs, 3), 2);
    assert_int_equal(cacreg_cert_choose(certs, 2), 2); /* none among the first two */
    assert_int_equal(cacreg_cert_choose(certs, 0), 0);
}

/* Each persona's identity certificate gets its verdict. */
static void test_preflight_personas(void **state)
{
    static const struct {
        const char *persona, *kind;
        cacreg_verdict verdict;
        const char *detail;
    } cases[] = {
        {"valid", "id", CACREG_VERDICT_OK, "passed every check"},
        {"valid2", "id", CACREG_VERDICT_OK, "passed"},
        {"emailonly", "id", CACREG_VERDICT_OK, "passed"},
        {"noaccount", "id", CACREG_VERDICT_OK, "passed"},  /* a good card; the portal says no */
        {"suspended", "id", CACREG_VERDICT_OK, "passed"},
        {"expired", "id", CACREG_VERDICT_EXPIRED, "It expired on 2024-01-01."},
        {"revoked", "id", CACREG_VERDICT_REVOKED, "revoked"},
        {"untrusted", "id", CACREG_VERDICT_UNTRUSTED, "Untrusted Test CA"},
        {"valid", "sig", CACREG_VERDICT_WRONG_KIND, "signs email"},
    };
    char bundle[1200], crl[1200], err[256], detail[512];
    cacreg_trust *trust;
    cacreg_cert c;

    (void)state;
    snprintf(bundle, sizeof bundle, "%s/ca-bundle.pem", pki);
    snprintf(crl, sizeof crl, "%s/inter.crl", pki);
    assert_int_equal(cacreg_trust_load(&trust, bundle, crl, err, sizeof err), CACREG_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        load(&c, cases[i].persona, cases[i].kind);
        cacreg_verdict v = cacreg_cert_preflight(&c, &last_der, trust, (long long)time(NULL), detail,
                                                 sizeof detail);
        if (v != cases[i].verdict || !strstr(detail, cases[i].detail))
            fail_msg("%s/%s: got %s '%s', want %s '%s'", cases[i].persona, cases[i].kind,
                     cacreg_verdict_name(v), detail, cacreg_verdict_name(cases[i].verdict),
                     cases[i].detail);
    }
    /* The same card before it was issued: a clock set too far back. */
    load(&c, "valid", "id");
    assert_int_equal(cacreg_cert_preflight(&c, &last_der, trust, c.not_before - 86400, detail, sizeof detail),
                     CACREG_VERDICT_NOT_YET_VALID);
    assert_non_null(strstr(detail, "clock"));
    cacreg_trust_free(trust);

    /* Without a CRL, the revoked card cannot be told apart. */
    assert_int_equal(cacreg_trust_load(&trust, bundle, NULL, err, sizeof err), CACREG_OK);
    load(&c, "revoked", "id");
    assert_int_equal(cacreg_cert_preflight(&c, &last_der, trust, (long long)time(NULL), detail, sizeof detail),
                     CACREG_VERDICT_OK);
    /* Without a CRL or OCSP, an expired card is still expired (its dates say so). */
    load(&c, "expired", "id");
    assert_int_equal(cacreg_cert_preflight(&c, &last_der, trust, (long long)time(NULL), detail, sizeof detail),
                     CACREG_VERDICT_EXPIRED);
    assert_non_null(strstr(detail, "It expired on 2024-01-01."));
    /* ...and a valid one is valid until its last second, expired the second after. */
    load(&c, "valid", "id");
    assert_int_equal(cacreg_cert_preflight(&c, &last_der, trust, c.not_after, detail, sizeof detail),
                     CACREG_VERDICT_OK);
    assert_int_equal(cacreg_cert_preflight(&c, &last_der, trust, c.not_after + 1, detail, sizeof detail),
                     CACREG_VERDICT_EXPIRED);
    cacreg_trust_free(trust);
    assert_int_equal(cacreg_cert_preflight(&c, &last_der, NULL, 0, detail, sizeof detail),
                     CACREG_VERDICT_NO_TRUST_STORE);
}

static void test_trust_load_errors(void **state)
{
    cacreg_trust *trust;
    char err[256], bundle[1200];

    (void)state;
    assert_int_equal(cacreg_trust_load(&trust, "/nonexistent/bundle.pem", NULL, err, sizeof err),
                     CACREG_ERR_NOT_FOUND);
    assert_null(trust);
    assert_non_null(strstr(err, "/nonexistent/bundle.pem"));
    snprintf(bundle, sizeof bundle, "%s/ca-bundle.pem", pki);
    assert_int_equal(cacreg_trust_load(&trust, bundle, "/nonexistent.crl", err, sizeof err),
                     CACREG_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "CRL"));
}

/* A self-signed certificate with the given CN and UPN, for edge cases. */
static size_t make_cert(unsigned char *der, const char *cn, const char *upn)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    unsigned char *p = der;
    char san[200];
    size_t len;

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, key);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    snprintf(san, sizeof san, "otherName:msUPN;UTF8:%s", upn);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_ext_key_usage, "clientAuth");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    X509_sign(x, key, EVP_sha256());
    len = (size_t)i2d_X509(x, &p);
    X509_free(x);
    EVP_PKEY_free(key);
    return len;
}

static void test_edipi_mismatch_and_odd_names(void **state)
{
    static unsigned char der[4096];
    cacreg_cert c;
    char err[128];
    size_t len;

    (void)state;
    len = make_cert(der, "DOE.JANE.Q.1000000001", "2000000002@mil");
    assert_int_equal(cacreg_cert_parse(&c, der, len, err, sizeof err), CACREG_OK);
    assert_string_equal(c.edipi, "2000000002");
    assert_true(c.edipi_mismatch);

    len = make_cert(der, "Some Service Account", "svc@example.com");
    assert_int_equal(cacreg_cert_parse(&c, der, len, err, sizeof err), CACREG_OK);
    assert_string_equal(c.holder, "Some Service Account");
    assert_string_equal(c.edipi, "");
    assert_false(c.edipi_mismatch);

    len = make_cert(der, "SMITH.JOHN.1234567890", "1234567890@mil"); /* no middle initial */
    assert_int_equal(cacreg_cert_parse(&c, der, len, err, sizeof err), CACREG_OK);
    assert_string_equal(c.holder, "JOHN SMITH");
    assert_string_equal(c.serial, "07");
}

/* A certificate with this serial (hex) and issuer (name=value,... in DER order). */
static size_t make_issued(unsigned char *der, const char *serial_hex, const char *const *issuer)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    BIGNUM *bn = NULL;
    unsigned char *p = der;
    size_t len;

    X509_set_version(x, 2);
    assert_true(BN_hex2bn(&bn, serial_hex) > 0);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
                               (const unsigned char *)"SUBJECT.ONE.A.1000000001", -1, -1, 0);
    for (size_t i = 0; issuer[i]; i += 2)
        X509_NAME_add_entry_by_txt(X509_get_issuer_name(x), issuer[i], MBSTRING_UTF8,
                                   (const unsigned char *)issuer[i + 1], -1, -1, 0);
    X509_set_pubkey(x, key);
    X509_sign(x, key, EVP_sha256());
    len = (size_t)i2d_X509(x, &p);
    X509_free(x);
    EVP_PKEY_free(key);
    return len;
}

/* The values a directory matches on: AD's <I> and <SR>, sssd's decimal serial. */
static void test_directory_mapping(void **state)
{
    static const char *const dod[] = {"C", "US", "O", "U.S. Government", "OU", "DoD", "OU", "PKI",
                                      "CN", "DOD ID CA-59", NULL};
    static const char *const odd[] = {"DC", "mil", "ST", "Virginia", "emailAddress", "ca@x.mil",
                                      "CN", "A, B+C \"D\"", NULL};
    static const struct {
        const char *serial;
        const char *const *issuer;
        const char *dec, *reversed, *mapping;
    } cases[] = {
        {.serial = "1004", .issuer = dod, .dec = "4100", .reversed = "0410",
         .mapping = "X509:<I>C=US,O=U.S. Government,OU=DoD,OU=PKI,CN=DOD ID CA-59<SR>0410"},
        /* A high bit: DER adds a 00 byte, the magnitude has none (as sssd's hex_ur). */
        {.serial = "8A0102", .issuer = dod, .dec = "9044226", .reversed = "02018A",
         .mapping = "X509:<I>C=US,O=U.S. Government,OU=DoD,OU=PKI,CN=DOD ID CA-59<SR>02018A"},
        {.serial = "7", .issuer = dod, .dec = "7", .reversed = "07",
         .mapping = "X509:<I>C=US,O=U.S. Government,OU=DoD,OU=PKI,CN=DOD ID CA-59<SR>07"},
        {.serial = "1234567890ABCDEF01", .issuer = odd, .dec = "335812727627494321921",
         .reversed = "01EFCDAB9078563412",
         .mapping = "X509:<I>DC=mil,S=Virginia,E=ca@x.mil,CN=A\\, B\\+C \\\"D\\\"<SR>01EFCDAB9078563412"},
    };
    static unsigned char der[4096];
    char err[128], mapping[1024];
    cacreg_cert c;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = make_issued(der, cases[i].serial, cases[i].issuer);
        assert_int_equal(cacreg_cert_parse(&c, der, len, err, sizeof err), CACREG_OK);
        assert_string_equal(c.serial_dec, cases[i].dec);
        assert_string_equal(c.serial_reversed, cases[i].reversed);
        cacreg_cert_ad_mapping(&c, mapping, sizeof mapping);
        assert_string_equal(mapping, cases[i].mapping);
        cacreg_cert_ad_mapping(&c, mapping, 20); /* too small: nothing, not a cut value */
        assert_string_equal(mapping, "");
    }
}

static void test_garbage(void **state)
{
    static unsigned char junk[CACREG_CERT_DER_MAX + 1];
    cacreg_cert c;
    char err[128];

    (void)state;
    memset(junk, 0x30, sizeof junk);
    assert_int_equal(cacreg_cert_parse(&c, junk, 100, err, sizeof err), CACREG_ERR_CERT);
    assert_string_equal(err, "not a DER X.509 certificate");
    assert_int_equal(cacreg_cert_parse(&c, junk, 0, err, sizeof err), CACREG_ERR_CERT);
    assert_int_equal(cacreg_cert_parse(&c, junk, sizeof junk, err, sizeof err), CACREG_ERR_CERT);
    assert_non_null(strstr(err, "at most"));
}

int main(void)
{
    const char *env = getenv("CACREG_PKI"), *build = getenv("CACREG_BUILD");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_fields),
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_choose),
        cmocka_unit_test(test_preflight_personas),
        cmocka_unit_test(test_trust_load_errors),
        cmocka_unit_test(test_edipi_mismatch_and_odd_names),
        cmocka_unit_test(test_directory_mapping),
        cmocka_unit_test(test_garbage),
    };

    if (env)
        snprintf(pki, sizeof pki, "%s", env);
    else
        snprintf(pki, sizeof pki, "%s/pki", build ? build : "build");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
