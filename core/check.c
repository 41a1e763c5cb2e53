/* A portal's check of a TLS client certificate, on the client's own certificate code. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

#define OCSP_TIMEOUT_S 3
#define OCSP_CACHE_MAX_S 3600
#define OCSP_CACHE_SLOTS 4096 /* one answer per slot, by the certificate's SHA-256 */

/* A trust (bundle and CRL) shared by the checks running with it. */
struct trust_ref {
    cacreg_trust *trust;
    atomic_int refs;
};

/* One OCSP answer kept. */
struct ocsp_entry {
    char sha256[65];     /* "" when the slot is free */
    int status;          /* 0 good, 1 revoked */
    long long revoked_at;
    long long until;     /* kept until then (seconds since the epoch) */
};

struct cacreg_checker {
    cacreg_checker_options opt;
    char ca_bundle[CACREG_PATH_MAX];
    char crl_file[CACREG_PATH_MAX];
    char ocsp_url[CACREG_URL_MAX];
    pthread_mutex_t lock;       /* current and the CRL's identity */
    struct trust_ref *current;  /* anchors and CRL, no OCSP: the preflight's part */
    struct stat crl_seen;
    cacreg_trust *ocsp;         /* anchors and the OCSP responder: never changes */
    pthread_mutex_t cache_lock;
    struct ocsp_entry *cache;   /* OCSP_CACHE_SLOTS */
};

static void trust_ref_drop(struct trust_ref *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
        cacreg_trust_free(r->trust);
        free(r);
    }
}

/* A new trust from the bundle and the CRL file, with one reference. */
static cacreg_err trust_ref_load(const cacreg_checker *c, struct trust_ref **out, struct stat *st,
                                 char *err, size_t err_size)
{
    struct trust_ref *r = calloc(1, sizeof *r);
    cacreg_err rc;

    *out = NULL;
    if (!r)
        return CACREG_ERR_NOMEM;
    if (c->crl_file[0] && stat(c->crl_file, st) != 0) {
        cacreg_errf(err, err_size, "the CRL %s cannot be read", c->crl_file);
        free(r);
        return CACREG_ERR_NOT_FOUND;
    }
    rc = cacreg_trust_load(&r->trust, c->ca_bundle, c->crl_file, err, err_size);
    if (rc != CACREG_OK) {
        free(r);
        return rc;
    }
    atomic_init(&r->refs, 1);
    *out = r;
    return CACREG_OK;
}

cacreg_err cacreg_checker_new(cacreg_checker **out, const cacreg_checker_options *opt, char *err,
                              size_t err_size)
{
    cacreg_checker *c = calloc(1, sizeof *c);
    cacreg_err rc = CACREG_ERR_NOMEM;

    *out = NULL;
    if (!c)
        return CACREG_ERR_NOMEM;
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->cache_lock, NULL);
    c->opt = *opt;
    if (!opt->ca_bundle || !opt->ca_bundle[0]) {
        cacreg_errf(err, err_size, "no CA bundle is given for the registration issuers");
        rc = CACREG_ERR_CONFIG;
        goto fail;
    }
    if (snprintf(c->ca_bundle, sizeof c->ca_bundle, "%s", opt->ca_bundle) >= (int)sizeof c->ca_bundle ||
        snprintf(c->crl_file, sizeof c->crl_file, "%s", opt->crl_file ? opt->crl_file : "") >=
            (int)sizeof c->crl_file ||
        snprintf(c->ocsp_url, sizeof c->ocsp_url, "%s", opt->ocsp_url ? opt->ocsp_url : "") >=
            (int)sizeof c->ocsp_url) {
        cacreg_errf(err, err_size, "a path or URL is too long");
        rc = CACREG_ERR_TOO_LONG;
        goto fail;
    }
    c->opt.ca_bundle = c->ca_bundle;
    c->opt.crl_file = c->crl_file;
    c->opt.ocsp_url = c->ocsp_url;
    if (c->opt.ocsp_timeout_s <= 0)
        c->opt.ocsp_timeout_s = OCSP_TIMEOUT_S;
    if (c->opt.ocsp_cache_max_s <= 0)
        c->opt.ocsp_cache_max_s = OCSP_CACHE_MAX_S;
    if (c->opt.ocsp_cache_bare_s < 0)
        c->opt.ocsp_cache_bare_s = 0;
    rc = trust_ref_load(c, &c->current, &c->crl_seen, err, err_size);
    if (rc != CACREG_OK)
        goto fail;
    if (c->ocsp_url[0]) {
        if (strncmp(c->ocsp_url, "http://", 7) != 0) {
            cacreg_errf(err, err_size, "the OCSP responder %s is not an http:// URL", c->ocsp_url);
            rc = CACREG_ERR_CONFIG;
            goto fail;
        }
        rc = cacreg_trust_load(&c->ocsp, c->ca_bundle, NULL, err, err_size);
        if (rc == CACREG_OK)
            rc = cacreg_trust_set_ocsp(c->ocsp, c->ocsp_url, c->opt.ocsp_timeout_s);
        if (rc != CACREG_OK)
            goto fail;
        c->cache = calloc(OCSP_CACHE_SLOTS, sizeof *c->cache);
        if (!c->cache) {
            rc = CACREG_ERR_NOMEM;
            goto fail;
        }
    }
    *out = c;
    return CACREG_OK;
fail:
    cacreg_checker_free(c);
    return rc;
}

void cacreg_checker_free(cacreg_checker *c)
{
    if (!c)
        return;
    trust_ref_drop(c->current);
    cacreg_trust_free(c->ocsp);
    free(c->cache);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->cache_lock);
    free(c);
}

/* The same file as before: same inode, size and modification time. */
static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

cacreg_err cacreg_checker_refresh(cacreg_checker *c, bool *reloaded, char *err, size_t err_size)
{
    struct trust_ref *fresh = NULL, *old;
    struct stat st;
    cacreg_err rc;
    bool changed;

    *reloaded = false;
    if (c->cache) { /* forget what is past its time (a slot is reused anyway) */
        long long now = (long long)time(NULL);
        pthread_mutex_lock(&c->cache_lock);
        for (size_t i = 0; i < OCSP_CACHE_SLOTS; i++)
            if (c->cache[i].sha256[0] && c->cache[i].until <= now)
                c->cache[i].sha256[0] = '\0';
        pthread_mutex_unlock(&c->cache_lock);
    }
    if (!c->crl_file[0])
        return CACREG_OK;
    if (stat(c->crl_file, &st) != 0) {
        cacreg_errf(err, err_size, "the CRL %s cannot be read; the one read before stays in use",
                    c->crl_file);
        return CACREG_ERR_NOT_FOUND;
    }
    pthread_mutex_lock(&c->lock);
    changed = !same_file(&st, &c->crl_seen);
    pthread_mutex_unlock(&c->lock);
    if (!changed)
        return CACREG_OK;
    rc = trust_ref_load(c, &fresh, &st, err, err_size);
    pthread_mutex_lock(&c->lock);
    c->crl_seen = st; /* a bad file is reported once, not every second */
    if (rc != CACREG_OK) {
        pthread_mutex_unlock(&c->lock);
        return rc;
    }
    old = c->current;
    c->current = fresh;
    pthread_mutex_unlock(&c->lock);
    trust_ref_drop(old);
    *reloaded = true;
    return CACREG_OK;
}

static size_t cache_slot(const char *sha256)
{
    size_t h = 5381;

    for (const char *p = sha256; *p; p++)
        h = h * 33 + (unsigned char)*p;
    return h % OCSP_CACHE_SLOTS;
}

/* OCSP's answer about der (1 revoked, 0 good, -1 none), from the cache when it is fresh. */
static int ocsp_status(cacreg_checker *c, const cacreg_cert_der *der, const char *sha256,
                       long long now, cacreg_check *out)
{
    struct ocsp_entry *e = &c->cache[cache_slot(sha256)];
    long long revoked_at = 0, next_update = 0, until;
    int status;

    pthread_mutex_lock(&c->cache_lock);
    if (strcmp(e->sha256, sha256) == 0 && e->until > now) {
        status = e->status;
        out->revoked_at = e->revoked_at;
        out->ocsp_cached = true;
        pthread_mutex_unlock(&c->cache_lock);
        return status;
    }
    pthread_mutex_unlock(&c->cache_lock);
    status = cacreg_cert_ocsp(c->ocsp, der, &revoked_at, &next_update);
    if (status < 0)
        return status; /* no answer is not kept: the next check asks again */
    out->revoked_at = revoked_at;
    until = next_update > 0 ? next_update : now + c->opt.ocsp_cache_bare_s;
    if (until > now + c->opt.ocsp_cache_max_s)
        until = now + c->opt.ocsp_cache_max_s;
    if (until > now) {
        pthread_mutex_lock(&c->cache_lock);
        snprintf(e->sha256, sizeof e->sha256, "%s", sha256);
        e->status = status;
        e->revoked_at = revoked_at;
        e->until = until;
        pthread_mutex_unlock(&c->cache_lock);
    }
    return status;
}

void cacreg_checker_check(cacreg_checker *c, const unsigned char *der, size_t len, long long now,
                          cacreg_check *out)
{
    cacreg_cert_der *copy = NULL;
    struct trust_ref *ref;
    char detail[512];
    bool crl_answered;
    cacreg_verdict v;

    memset(out, 0, sizeof *out);
    out->verdict = CACREG_VERDICT_UNTRUSTED;
    if (len == 0 || len > CACREG_CERT_DER_MAX || !(copy = malloc(sizeof *copy)))
        return;
    memcpy(copy->bytes, der, len);
    copy->len = len;
    if (cacreg_cert_parse(&out->cert, der, len, NULL, 0) != CACREG_OK)
        goto out;
    out->readable = true;
    pthread_mutex_lock(&c->lock);
    ref = c->current;
    atomic_fetch_add(&ref->refs, 1);
    pthread_mutex_unlock(&c->lock);
    /* The client's pre-flight, with the CRL and without OCSP: chain, dates, CRL, kind. */
    v = cacreg_cert_preflight(&out->cert, copy, ref->trust, now, detail, sizeof detail);
    if (v == CACREG_VERDICT_REVOKED) {
        out->revoked_by = "crl";
        out->revoked_at = cacreg_cert_crl_revoked_at(ref->trust, copy);
    }
    trust_ref_drop(ref);
    if (v == CACREG_VERDICT_NO_TRUST_STORE)
        v = CACREG_VERDICT_UNTRUSTED;
    if (v == CACREG_VERDICT_UNTRUSTED || v == CACREG_VERDICT_NOT_YET_VALID ||
        v == CACREG_VERDICT_EXPIRED || v == CACREG_VERDICT_REVOKED) {
        out->verdict = v;
        goto out;
    }
    /* Here: OK, WRONG_KIND, EDIPI_MISMATCH (the CRL said good or is not used) or
     * REVOCATION_UNKNOWN (a CRL is configured and could not say). */
    crl_answered = c->crl_file[0] && v != CACREG_VERDICT_REVOCATION_UNKNOWN;
    if (c->ocsp) {
        int status = ocsp_status(c, copy, out->cert.sha256, now, out);
        if (status == 1) {
            out->verdict = CACREG_VERDICT_REVOKED;
            out->revoked_by = "ocsp";
            goto out;
        }
        out->revoked_at = 0;
        if (status < 0 && !crl_answered)
            v = CACREG_VERDICT_REVOCATION_UNKNOWN;
        else
            v = CACREG_VERDICT_OK;
    } else if (v != CACREG_VERDICT_REVOCATION_UNKNOWN) {
        v = CACREG_VERDICT_OK;
    }
    if (v == CACREG_VERDICT_REVOCATION_UNKNOWN) {
        if (!c->opt.soft_fail) {
            out->verdict = v;
            goto out;
        }
        out->soft_failed = true;
    }
    out->verdict = out->cert.kind == CACREG_CERT_IDENTITY ? CACREG_VERDICT_OK
                                                          : CACREG_VERDICT_WRONG_KIND;
out:
    free(copy);
}
