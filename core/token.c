/* Tokens: the card through libp11 over the PKCS#11 module (OpenSC by default). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <libp11.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <p11-kit/p11-kit.h>

#include "internal.h"
#include "text.h"

#ifndef P11_MODULE_PATH
#define P11_MODULE_PATH "/usr/lib/x86_64-linux-gnu/pkcs11"
#endif

/* PKCS#11 return values we tell apart (from pkcs11t.h, which libp11 does not export). */
#define CKR_PIN_INCORRECT_ 0xA0UL
#define CKR_PIN_INVALID_ 0xA1UL
#define CKR_PIN_LEN_RANGE_ 0xA2UL
#define CKR_PIN_LOCKED_ 0xA4UL
#define CKR_USER_ALREADY_LOGGED_IN_ 0x100UL
#define CKR_DEVICE_ERROR_ 0x30UL
#define CKR_DEVICE_REMOVED_ 0x32UL
#define CKR_SESSION_HANDLE_INVALID_ 0xB3UL
#define CKR_TOKEN_NOT_PRESENT_ 0xE0UL

struct cacreg_token {
    PKCS11_CTX *ctx;
    bool loaded;          /* PKCS11_CTX_load worked: libp11 crashes unloading otherwise */
    PKCS11_SLOT *slots;
    unsigned nslots;
    bool enumerated;
    char module[CACREG_PATH_MAX];
    int conf_fd;          /* the memfd OPENSC_CONF points at */
    int pin_max_tries;
    bool cached;          /* info holds the card read since the last forget */
    cacreg_card info;
    cacreg_cert_der der[CACREG_MAX_CERTS]; /* info's certificates as the card holds them */
    char wrong_serial[32]; /* the card our own wrong PINs went to, */
    int wrong_seen;        /* and how many since its last right one */
};

/*
 * Our OpenSC settings, in a memory file OPENSC_CONF names: no PIN cache (the
 * PIN goes to the card once, from our locked buffer) and, unless asked, no
 * on-disk card cache (it would keep people's names). A slot's info looks at
 * its own reader only (init_sloppy off, one slot per card): with OpenSC's
 * default, asking about the second reader noticed a card pulled from the
 * first, and libp11 0.4.12 then waited for ever for a session it could not
 * open (fixed in libp11 0.4.14, PR #579). When OpenSC lets a card go (its
 * C_Finalize: the end of this process, or of cacreg ssh's p11-kit server) it
 * resets it, so that a PIN verified through it does not stay verified.
 */
size_t cacreg_opensc_conf_text(char *out, size_t size, bool file_cache)
{
    int n = snprintf(out, size,
                     "app default {\n framework pkcs15 {\n  use_pin_caching = false;\n"
                     "  use_file_caching = %s;\n }\n pkcs11 {\n  init_sloppy = false;\n"
                     "  slots_per_card = 1;\n }\n reader_driver pcsc {\n"
                     "  disconnect_action = reset;\n }\n}\n",
                     file_cache ? "public" : "no");

    return n < 0 || (size_t)n >= size ? 0 : (size_t)n;
}

static int opensc_conf(bool file_cache)
{
    char text[512], path[64];
    int fd = memfd_create("cacreg-opensc.conf", MFD_CLOEXEC);
    ssize_t n = (ssize_t)cacreg_opensc_conf_text(text, sizeof text, file_cache);

    if (fd < 0)
        return -1;
    if (n == 0 || write(fd, text, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    setenv("OPENSC_CONF", path, 1);
    return fd;
}

/* The OpenSC module's path from p11-kit's registry, or false. */
static bool registry_module(char *out, size_t size)
{
    CK_FUNCTION_LIST **mods = p11_kit_modules_load(NULL, P11_KIT_MODULE_UNMANAGED);
    bool found = false;

    for (size_t i = 0; mods && mods[i] && !found; i++) {
        char *name = p11_kit_module_get_name(mods[i]);
        char *path = p11_kit_config_option(mods[i], "module");

        if (name && path && strstr(name, "opensc")) {
            if (path[0] == '/')
                snprintf(out, size, "%s", path);
            else
                snprintf(out, size, "%s/%s", P11_MODULE_PATH, path);
            found = true;
        }
        free(name);
        free(path);
    }
    if (mods)
        p11_kit_modules_release(mods);
    return found;
}

cacreg_err cacreg_token_load(cacreg_token **out, const char *module_path, bool file_cache,
                             int pin_max_tries, char *err, size_t err_size)
{
    cacreg_token *t = calloc(1, sizeof *t);

    *out = NULL;
    if (!t)
        return CACREG_ERR_NOMEM;
    t->conf_fd = -1;
    t->pin_max_tries = pin_max_tries > 0 ? pin_max_tries : 3;
    if (module_path && module_path[0]) {
        snprintf(t->module, sizeof t->module, "%s", module_path);
    } else if (!registry_module(t->module, sizeof t->module)) {
        cacreg_errf(err, err_size, "No OpenSC PKCS#11 module is registered with p11-kit: install the "
                            "opensc-pkcs11 package, or set pkcs11_module.");
        free(t);
        return CACREG_ERR_NOT_FOUND;
    }
    t->conf_fd = opensc_conf(file_cache);
    t->ctx = PKCS11_CTX_new();
    if (!t->ctx || PKCS11_CTX_load(t->ctx, t->module) != 0) {
        cacreg_errf(err, err_size, "The PKCS#11 module %s cannot be loaded.", t->module);
        ERR_clear_error();
        cacreg_token_free(t);
        return CACREG_ERR_NOT_FOUND;
    }
    t->loaded = true;
    *out = t;
    return CACREG_OK;
}

void cacreg_token_free(cacreg_token *t)
{
    if (!t)
        return;
    cacreg_token_forget(t);
    if (t->ctx && t->loaded)
        PKCS11_CTX_unload(t->ctx);
    if (t->ctx)
        PKCS11_CTX_free(t->ctx);
    if (t->conf_fd >= 0)
        close(t->conf_fd);
    free(t);
}

/*
 * Releasing the token ends in the module's C_Finalize, which a stuck module
 * (or, through cacreg ssh, a p11-kit server stuck in its own) never returns
 * from: it runs on a thread of its own, and is left to it after wait_ms.
 * Whichever of the two finishes last frees the record.
 */
struct unload {
    cacreg_token *token;
    pthread_mutex_t lock;
    pthread_cond_t done_cv;
    bool done, abandoned;
};

static void unload_free(struct unload *u)
{
    pthread_cond_destroy(&u->done_cv);
    pthread_mutex_destroy(&u->lock);
    free(u);
}

static void *unload_main(void *arg)
{
    struct unload *u = arg;
    bool abandoned;

    cacreg_token_free(u->token); /* releases the slots, and libp11's copy of the PIN */
    pthread_mutex_lock(&u->lock);
    u->done = true;
    abandoned = u->abandoned;
    pthread_cond_signal(&u->done_cv);
    pthread_mutex_unlock(&u->lock);
    if (abandoned)
        unload_free(u);
    return NULL;
}

bool cacreg_token_free_within(cacreg_token *token, int wait_ms)
{
    struct unload *u = token ? calloc(1, sizeof *u) : NULL;
    struct timespec end;
    pthread_t thread;
    bool done;

    if (!token)
        return true;
    if (!u || pthread_mutex_init(&u->lock, NULL) != 0) {
        free(u);
        cacreg_token_free(token); /* no thread to spare: as before, here */
        return true;
    }
    if (cacreg_cond_init_monotonic(&u->done_cv) != 0) {
        pthread_mutex_destroy(&u->lock);
        free(u);
        cacreg_token_free(token);
        return true;
    }
    u->token = token;
    if (pthread_create(&thread, NULL, unload_main, u) != 0) {
        unload_free(u);
        cacreg_token_free(token);
        return true;
    }
    end = cacreg_deadline(wait_ms);
    pthread_mutex_lock(&u->lock);
    while (!u->done) {
        int rc = pthread_cond_timedwait(&u->done_cv, &u->lock, &end);
        if (rc != 0 && rc != EINTR)
            break; /* ETIMEDOUT, or an error that would come back every time */
    }
    done = u->done;
    u->abandoned = !done;
    pthread_mutex_unlock(&u->lock);
    if (!done) {
        pthread_detach(thread);
        return false;
    }
    pthread_join(thread, NULL);
    unload_free(u);
    return true;
}

const char *cacreg_token_module(const cacreg_token *t)
{
    return t->module;
}

/*
 * Lists the slots afresh (token flags included). Release and enumerate
 * rather than PKCS11_update_slots, which crashes in libp11 0.4.12 when a
 * token's flags have changed under it.
 */
static bool refresh_slots(cacreg_token *t)
{
    if (t->enumerated) {
        PKCS11_release_all_slots(t->ctx, t->slots, t->nslots);
        t->slots = NULL;
        t->nslots = 0;
    }
    if (!t->ctx || !t->loaded) /* a forwarded module that could not be loaded again */
        return t->enumerated = false;
    t->enumerated = PKCS11_enumerate_slots(t->ctx, &t->slots, &t->nslots) == 0;
    ERR_clear_error();
    return t->enumerated;
}

/* Opens the slot's first session, as reading its certificates does. */
static void open_first_session(PKCS11_SLOT *slot)
{
    PKCS11_CERT *certs = NULL;
    unsigned n = 0;

    if (PKCS11_enumerate_certs(slot->token, &certs, &n) != 0)
        ERR_clear_error();
}

/* Compares a slot description (space-padded by some modules) with a reader name. */
static bool same_name(const char *slot, const char *reader)
{
    size_t n = strlen(reader);

    if (strncmp(slot, reader, n) != 0)
        return false;
    for (slot += n; *slot; slot++)
        if (*slot != ' ')
            return false;
    return true;
}

static PKCS11_SLOT *find_slot(cacreg_token *t, const char *reader)
{
    for (unsigned i = 0; i < t->nslots; i++) {
        PKCS11_SLOT *s = &t->slots[i];
        if (reader ? (s->description && same_name(s->description, reader)) : s->token != NULL)
            return s;
    }
    return NULL;
}

/* The PIN state from the token's flags and our own count of wrong PINs. */
static void pin_state(cacreg_token *t, const PKCS11_TOKEN *tok, cacreg_card *info)
{
    int seen = strcmp(t->wrong_serial, info->serial) == 0 ? t->wrong_seen : 0;

    if (tok->userPinLocked) {
        info->pin = CACREG_PIN_LOCKED;
        info->tries_left = 0;
    } else if (tok->userPinFinalTry) {
        info->pin = CACREG_PIN_FINAL_TRY;
        info->tries_left = 1;
    } else if (tok->userPinCountLow || seen > 0) {
        /* Not final: at least 2 left; our own count narrows it when we know the card's maximum. */
        int left = t->pin_max_tries - (seen > 0 ? seen : 1);
        info->pin = CACREG_PIN_COUNT_LOW;
        info->tries_left = left >= 2 ? left : 2;
    } else {
        info->pin = CACREG_PIN_OK;
        info->tries_left = -1;
    }
}

static void hex(const unsigned char *in, size_t len, char *out, size_t size)
{
    size_t i;

    for (i = 0; i < len && 2 * i + 2 < size; i++)
        snprintf(out + (size_t)2 * i, 3, "%02x", in[i]);
    out[2 * i] = '\0';
}

/* Copies a PKCS#11 string field (space-padded, maybe not terminated). */
static void p11_string(const char *in, char *out, size_t size)
{
    size_t n = in ? strnlen(in, size - 1) : 0;

    memcpy(out, in ? in : "", n);
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
    /* OpenSC cuts a long label in the middle of a character: valid UTF-8 from here on. */
    cacreg_text_repair_in_place(out, size);
}

cacreg_err cacreg_token_read(cacreg_token *t, const char *reader, cacreg_card *info, char *err,
                             size_t err_size)
{
    PKCS11_CERT *certs = NULL;
    unsigned ncerts = 0;
    PKCS11_SLOT *slot;
    PKCS11_TOKEN *tok;

    if (t->cached && (!reader || strcmp(t->info.reader, reader) == 0)) {
        *info = t->info;
        return CACREG_OK;
    }
    memset(info, 0, sizeof *info);
    if (!refresh_slots(t)) {
        cacreg_errf(err, err_size, "The PKCS#11 module lists no slots.");
        return CACREG_ERR_NOT_FOUND;
    }
    slot = find_slot(t, reader);
    if (!slot || !slot->token) {
        cacreg_errf(err, err_size, reader ? "The card in %s is not recognised as a smart card with "
                                     "certificates." : "No token is present%s.",
             reader ? reader : "");
        return CACREG_ERR_NOT_FOUND;
    }
    tok = slot->token;
    snprintf(info->reader, sizeof info->reader, "%s", reader ? reader : "");
    p11_string(slot->description, info->slot, sizeof info->slot);
    p11_string(tok->label, info->label, sizeof info->label);
    p11_string(tok->manufacturer, info->manufacturer, sizeof info->manufacturer);
    p11_string(tok->model, info->model, sizeof info->model);
    p11_string(tok->serialnr, info->serial, sizeof info->serial);
    pin_state(t, tok, info);
    if (PKCS11_enumerate_certs(tok, &certs, &ncerts) != 0) {
        ERR_clear_error();
        cacreg_errf(err, err_size, "The certificates on the card cannot be read.");
        return CACREG_ERR_CERT;
    }
    for (unsigned i = 0; i < ncerts && info->ncerts < CACREG_MAX_CERTS; i++) {
        unsigned char *der = NULL;
        int len = certs[i].x509 ? i2d_X509(certs[i].x509, &der) : -1;
        size_t k = info->ncerts;
        char why[128];

        if (len > 0 &&
            cacreg_cert_parse(&info->certs[k], der, (size_t)len, why, sizeof why) == CACREG_OK) {
            memcpy(t->der[k].bytes, der, (size_t)len); /* parse took it: len fits */
            t->der[k].len = (size_t)len;
            snprintf(info->cert_labels[k], sizeof info->cert_labels[k], "%s",
                     certs[i].label ? certs[i].label : "");
            hex(certs[i].id, certs[i].id_len, info->cert_ids[k], sizeof info->cert_ids[k]);
            info->ncerts++;
        }
        OPENSSL_free(der);
    }
    info->recognised = info->ncerts > 0;
    /* OpenSC 0.23's CAC driver lists EC keys' certificates but signs with RSA keys only. */
    info->rsa_only = strstr(info->manufacturer, "Common Access Card") != NULL ||
                     strstr(info->model, "Common Access Card") != NULL;
    t->info = *info;
    t->cached = true;
    return CACREG_OK;
}

const cacreg_cert_der *cacreg_token_der(const cacreg_token *t, size_t i)
{
    return t->cached && i < t->info.ncerts ? &t->der[i] : NULL;
}

cacreg_err cacreg_token_login(cacreg_token *t, const char *reader, cacreg_secret *pin,
                              int *tries_left, char *err, size_t err_size)
{
    cacreg_err result = CACREG_ERR_CARD;
    cacreg_card *info = &t->info;
    unsigned long reason;
    PKCS11_SLOT *slot;

    *tries_left = -1;
    if (!cacreg_secret_is_pin(pin)) {
        cacreg_errf(err, err_size, "A CAC PIN is 6 to 8 digits.");
        result = CACREG_ERR_PIN_FORMAT;
        goto out;
    }
    if (cacreg_token_read(t, reader, info, err, err_size) != CACREG_OK) {
        result = CACREG_ERR_NO_CARD;
        goto out;
    }
    if (info->pin == CACREG_PIN_LOCKED) {
        cacreg_errf(err, err_size, "The card's PIN is locked after too many wrong tries.");
        *tries_left = 0;
        result = CACREG_ERR_PIN_LOCKED;
        goto out;
    }
    slot = find_slot(t, reader);
    if (!slot || !slot->token) {
        result = CACREG_ERR_NO_CARD;
        goto out;
    }
    if (PKCS11_login(slot, 0, cacreg_secret_data(pin)) == 0) {
        t->wrong_seen = 0;
        info->pin = CACREG_PIN_OK;
        info->tries_left = -1;
        result = CACREG_OK;
        goto out;
    }
    reason = ERR_GET_REASON(ERR_peek_last_error());
    ERR_clear_error();
    if (reason == CKR_USER_ALREADY_LOGGED_IN_) {
        /* Logged in by another session: the card did not check this PIN. Log out and
         * let the person try again; nothing here counts as a try. */
        PKCS11_logout(slot);
        cacreg_errf(err, err_size, "The card was logged in already; try again.");
        result = CACREG_ERR_CARD;
        goto out;
    }
    if (reason == CKR_PIN_INCORRECT_ || reason == CKR_PIN_LOCKED_) {
        if (strcmp(t->wrong_serial, info->serial) != 0) {
            snprintf(t->wrong_serial, sizeof t->wrong_serial, "%s", info->serial);
            t->wrong_seen = 0;
        }
        t->wrong_seen++;
        if (refresh_slots(t) && (slot = find_slot(t, reader)) != NULL && slot->token) {
            pin_state(t, slot->token, info);
            /* A session in the new slot's pool at once: libp11 0.4.12 waits for ever
             * when its first session cannot be opened (a card pulled meanwhile). */
            open_first_session(slot);
        }
        if (reason == CKR_PIN_LOCKED_) {
            info->pin = CACREG_PIN_LOCKED;
            info->tries_left = 0;
        }
        *tries_left = info->tries_left;
        result = info->pin == CACREG_PIN_LOCKED ? CACREG_ERR_PIN_LOCKED : CACREG_ERR_PIN_WRONG;
        cacreg_errf(err, err_size, result == CACREG_ERR_PIN_LOCKED
                                ? "Wrong PIN. The card is now locked."
                                : "Wrong PIN.");
        goto out;
    }
    if (reason == CKR_DEVICE_REMOVED_ || reason == CKR_TOKEN_NOT_PRESENT_ ||
        reason == CKR_DEVICE_ERROR_ || reason == CKR_SESSION_HANDLE_INVALID_) {
        cacreg_errf(err, err_size, "The card was removed.");
        result = CACREG_ERR_NO_CARD;
        goto out;
    }
    if (reason == CKR_PIN_LEN_RANGE_ || reason == CKR_PIN_INVALID_) {
        cacreg_errf(err, err_size, "The card refused the PIN's form.");
        result = CACREG_ERR_PIN_FORMAT;
        goto out;
    }
    cacreg_errf(err, err_size, "The card could not check the PIN (PKCS#11 error 0x%lx).", reason);
out:
    cacreg_secret_clear(pin);
    return result;
}

cacreg_err cacreg_token_identity_key(cacreg_token *t, const char *reader, EVP_PKEY **key,
                                     X509 **cert, char *err, size_t err_size)
{
    PKCS11_CERT *certs = NULL;
    unsigned ncerts = 0;
    cacreg_card *info = &t->info;
    PKCS11_SLOT *slot;
    size_t chosen;

    *key = NULL;
    *cert = NULL;
    if (cacreg_token_read(t, reader, info, err, err_size) != CACREG_OK)
        return CACREG_ERR_NO_CARD;
    chosen = cacreg_cert_choose(info->certs, info->ncerts);
    slot = find_slot(t, reader);
    if (chosen == info->ncerts || !slot || !slot->token ||
        PKCS11_enumerate_certs(slot->token, &certs, &ncerts) != 0) {
        ERR_clear_error();
        cacreg_errf(err, err_size, "The card has no identity certificate.");
        return CACREG_ERR_NO_KEY;
    }
    for (unsigned i = 0; i < ncerts && !*key; i++) {
        unsigned char *der = NULL;
        int len = certs[i].x509 ? i2d_X509(certs[i].x509, &der) : -1;
        PKCS11_KEY *k;

        if (der && len == (int)t->der[chosen].len &&
            memcmp(der, t->der[chosen].bytes, (size_t)len) == 0 &&
            (k = PKCS11_find_key(&certs[i])) != NULL &&
            (*key = PKCS11_get_private_key(k)) != NULL && X509_up_ref(certs[i].x509) == 1)
            *cert = certs[i].x509;
        OPENSSL_free(der);
    }
    ERR_clear_error();
    if (!*key || !*cert) {
        EVP_PKEY_free(*key);
        *key = NULL;
        cacreg_errf(err, err_size, "The identity certificate's key is not on the card.");
        return CACREG_ERR_NO_KEY;
    }
    return CACREG_OK;
}

bool cacreg_token_module_forwarded(const char *module_path)
{
    const char *base = module_path ? strrchr(module_path, '/') : NULL;

    base = base ? base + 1 : module_path ? module_path : "";
    return strncmp(base, "p11-kit-client", 14) == 0;
}

cacreg_err cacreg_token_slots(cacreg_token *t, cacreg_readers *out,
                              char serials[][CACREG_SERIAL_MAX], char *err, size_t err_size)
{
    bool listed;

    memset(out, 0, sizeof *out);
    out->forwarded = true;
    listed = t->loaded && refresh_slots(t);
    if (!listed || t->nslots == 0) {
        /* No slot: p11-kit-client's tokens are the ones there were when it was initialised,
         * so a card inserted since is seen only by a module initialised again. */
        if (t->enumerated) {
            PKCS11_release_all_slots(t->ctx, t->slots, t->nslots);
            t->slots = NULL;
            t->nslots = 0;
            t->enumerated = false;
        }
        /* A new context, not the old one loaded again: libp11 0.4.12's load keeps the
         * module's strings in the context, freed by PKCS11_CTX_free only. */
        if (t->loaded)
            PKCS11_CTX_unload(t->ctx);
        PKCS11_CTX_free(t->ctx);
        t->ctx = PKCS11_CTX_new();
        t->loaded = t->ctx && PKCS11_CTX_load(t->ctx, t->module) == 0;
        ERR_clear_error();
        if (!t->loaded) {
            out->status = CACREG_PCSC_DOWN;
            cacreg_errf(err, err_size, "The card forwarded from your computer cannot be reached "
                                       "(the SSH connection or its p11-kit server ended).");
            snprintf(out->detail, sizeof out->detail, "%s", err);
            return CACREG_ERR_UNREACHABLE;
        }
        listed = refresh_slots(t); /* libp11 fails on no slot at all: no card */
    }
    out->status = CACREG_PCSC_UP;
    for (unsigned i = 0; listed && i < t->nslots && out->count < CACREG_MAX_READERS; i++) {
        cacreg_reader *r = &out->readers[out->count];

        p11_string(t->slots[i].description, r->name, sizeof r->name);
        r->card_present = t->slots[i].token != NULL;
        serials[out->count][0] = '\0';
        if (r->card_present)
            p11_string(t->slots[i].token->serialnr, serials[out->count], CACREG_SERIAL_MAX);
        out->count++;
    }
    return CACREG_OK;
}

bool cacreg_token_card_stays(cacreg_token *t, const char *reader, const char *serial)
{
    static cacreg_readers r; /* the worker's; one card job at a time */
    static char serials[CACREG_MAX_READERS][CACREG_SERIAL_MAX];
    char err[256];

    if (cacreg_token_slots(t, &r, serials, err, sizeof err) != CACREG_OK)
        return false;
    for (size_t i = 0; i < r.count; i++)
        if (strcmp(r.readers[i].name, reader) == 0)
            return r.readers[i].card_present && (!serial[0] || strcmp(serials[i], serial) == 0);
    return false;
}

void cacreg_token_forget(cacreg_token *t)
{
    int logged_in = 0;

    /* C_Logout first, where libp11 knows of a login (it sends nothing otherwise). */
    for (unsigned i = 0; t->enumerated && i < t->nslots; i++)
        if (t->slots[i].token && PKCS11_is_logged_in(&t->slots[i], 0, &logged_in) == 0 &&
            logged_in)
            PKCS11_logout(&t->slots[i]);
    ERR_clear_error();
    if (t->enumerated) {
        PKCS11_release_all_slots(t->ctx, t->slots, t->nslots);
        t->slots = NULL;
        t->nslots = 0;
        t->enumerated = false;
    }
    OPENSSL_cleanse(&t->info, sizeof t->info);
    OPENSSL_cleanse(t->der, sizeof t->der);
    t->cached = false;
}
