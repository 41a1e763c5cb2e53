/* Configuration: /etc/cacreg/cacreg.conf, the user's file, then options. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cacreg.h"
#include "internal.h"

#define CONFIG_FILE_MAX ((size_t)64 * 1024)
#define CONFIG_LINE_MAX 4096

enum value_type { V_STRING, V_URL, V_PATH, V_INT, V_BOOL };

/* One configuration key: where it goes and what it accepts. */
struct key {
    const char *name;
    enum value_type type;
    size_t offset;
    size_t size; /* of the string field */
    int min, max;
};

#define STR_KEY(n, t, f) {n, t, offsetof(cacreg_config, f), sizeof(((cacreg_config *)0)->f), 0, 0}
#define INT_KEY(n, f, lo, hi) {n, V_INT, offsetof(cacreg_config, f), 0, lo, hi}
#define BOOL_KEY(n, f) {n, V_BOOL, offsetof(cacreg_config, f), 0, 0, 1}

static const struct key keys[] = {
    STR_KEY("portal_url", V_URL, portal_url),
    STR_KEY("ca_bundle", V_PATH, ca_bundle),
    STR_KEY("pkcs11_module", V_PATH, pkcs11_module),
    STR_KEY("reader_filter", V_STRING, reader_filter),
    INT_KEY("connect_timeout", connect_timeout_s, 1, 300),
    INT_KEY("total_timeout", total_timeout_s, 1, 3600),
    INT_KEY("idle_timeout", idle_timeout_s, 10, 86400),
    INT_KEY("card_timeout", card_timeout_s, 2, 600),
    STR_KEY("crl_file", V_PATH, crl_file),
    STR_KEY("ocsp_url", V_URL, ocsp_url),
    STR_KEY("portal_pins", V_STRING, portal_pins),
    INT_KEY("pin_max_tries", pin_max_tries, 1, 15),
    BOOL_KEY("opensc_file_cache", opensc_file_cache),
    /* the kiosk */
    STR_KEY("station_name", V_STRING, station_name),
    STR_KEY("station_help", V_STRING, station_help),
    INT_KEY("session_timeout", session_timeout_s, 5, 86400),
    BOOL_KEY("audit_identity", audit_identity),
    STR_KEY("session_program", V_PATH, session_program),
};

void cacreg_config_defaults(cacreg_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->ca_bundle, sizeof cfg->ca_bundle, "%s", "/etc/ssl/certs/ca-certificates.crt");
    cfg->connect_timeout_s = 10;
    cfg->total_timeout_s = 60;
    cfg->idle_timeout_s = 300;
    cfg->card_timeout_s = 30;
    cfg->pin_max_tries = 3;
    cfg->opensc_file_cache = false;
    snprintf(cfg->station_name, sizeof cfg->station_name, "%s", "CAC registration");
    cfg->session_timeout_s = 900;
    snprintf(cfg->session_program, sizeof cfg->session_program, "%s", "/usr/bin/cacreg");
}

cacreg_err cacreg_config_check_owner(const char *path, char *err, size_t err_size)
{
    char dir[CACREG_PATH_MAX];
    const char *slash = strrchr(path, '/');
    struct stat st;

    if (!slash || (size_t)(slash - path) >= sizeof dir) {
        cacreg_errf(err, err_size, "%s: not an absolute path", path);
        return CACREG_ERR_CONFIG;
    }
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    if (!dir[0])
        snprintf(dir, sizeof dir, "/");
    for (int i = 0; i < 2; i++) {
        const char *which = i ? dir : path;
        if (stat(which, &st) != 0) {
            if (i == 0 && errno == ENOENT)
                return CACREG_ERR_NOT_FOUND;
            cacreg_errf(err, err_size, "%s: %s", which, strerror(errno));
            return CACREG_ERR_CONFIG;
        }
        if (st.st_uid != 0) {
            cacreg_errf(err, err_size, "%s is not owned by root: refused", which);
            return CACREG_ERR_CONFIG;
        }
        if (st.st_mode & (S_IWGRP | S_IWOTH)) {
            cacreg_errf(err, err_size, "%s can be written by others than root: refused", which);
            return CACREG_ERR_CONFIG;
        }
    }
    return CACREG_OK;
}

/* Parses a decimal integer that fills the whole string. */
static bool parse_int(const char *s, long *out)
{
    long v = 0;
    bool neg = false;

    if (*s == '-') {
        neg = true;
        s++;
    }
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 100000000L)
            return false;
        v = v * 10 + (*s - '0');
    }
    *out = neg ? -v : v;
    return true;
}

cacreg_err cacreg_config_set(cacreg_config *cfg, const char *key, const char *value, char *err,
                             size_t err_size)
{
    const struct key *k = NULL;
    char *field;
    size_t len = strlen(value);

    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(keys[i].name, key) == 0)
            k = &keys[i];
    if (!k) {
        char known[512];
        size_t n = 0;

        for (size_t i = 0; i < sizeof keys / sizeof keys[0] && n < sizeof known; i++)
            n += (size_t)snprintf(known + n, sizeof known - n, "%s%s", i ? ", " : "", keys[i].name);
        cacreg_errf(err, err_size, "unknown key '%.64s' (known: %s)", key, known);
        return CACREG_ERR_CONFIG;
    }
    field = (char *)cfg + k->offset;
    switch (k->type) {
    case V_URL:
        if (len > 0 && strncmp(value, "https://", 8) != 0 &&
            !(strcmp(key, "ocsp_url") == 0 && strncmp(value, "http://", 7) == 0)) {
            cacreg_errf(err, err_size, "%s must be an https:// URL", key);
            return CACREG_ERR_CONFIG;
        }
        /* fall through */
    case V_STRING:
    case V_PATH:
        if (len >= k->size) {
            cacreg_errf(err, err_size, "%s is longer than %zu characters", key, k->size - 1);
            return CACREG_ERR_CONFIG;
        }
        if (k->type == V_PATH && len > 0 && value[0] != '/') {
            cacreg_errf(err, err_size, "%s must be an absolute path", key);
            return CACREG_ERR_CONFIG;
        }
        memcpy(field, value, len + 1);
        return CACREG_OK;
    case V_INT: {
        long v;
        if (!parse_int(value, &v) || v < k->min || v > k->max) {
            cacreg_errf(err, err_size, "%s expects a whole number from %d to %d", key, k->min, k->max);
            return CACREG_ERR_CONFIG;
        }
        *(int *)(void *)field = (int)v;
        return CACREG_OK;
    }
    case V_BOOL:
        if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0) {
            *(bool *)(void *)field = true;
        } else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0) {
            *(bool *)(void *)field = false;
        } else {
            cacreg_errf(err, err_size, "%s expects yes or no", key);
            return CACREG_ERR_CONFIG;
        }
        return CACREG_OK;
    }
    return CACREG_ERR_CONFIG;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

cacreg_err cacreg_config_parse(cacreg_config *cfg, const char *text, size_t len,
                               const char *origin, char *err, size_t err_size)
{
    const char *p = text, *end = text + len;
    unsigned line_no = 0;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        const char *k0, *k1, *v0, *v1;
        char key[64], value[CONFIG_LINE_MAX], msg[512];
        cacreg_err rc;

        line_no++;
        if (line_end - p >= CONFIG_LINE_MAX) {
            cacreg_errf(err, err_size, "%s:%u: line longer than %d characters", origin, line_no,
                 CONFIG_LINE_MAX - 1);
            return CACREG_ERR_CONFIG;
        }
        if (memchr(p, '\0', (size_t)(line_end - p))) {
            cacreg_errf(err, err_size, "%s:%u: a NUL byte; expected text", origin, line_no);
            return CACREG_ERR_CONFIG;
        }
        k0 = p;
        while (k0 < line_end && is_space(*k0))
            k0++;
        p = eol ? eol + 1 : end;
        if (k0 == line_end || *k0 == '#')
            continue;
        k1 = k0;
        while (k1 < line_end && (*k1 == '_' || (*k1 >= 'a' && *k1 <= 'z') ||
                                 (*k1 >= '0' && *k1 <= '9')))
            k1++;
        v0 = k1;
        while (v0 < line_end && is_space(*v0))
            v0++;
        if (k1 == k0 || v0 == line_end || *v0 != '=') {
            cacreg_errf(err, err_size, "%s:%u: expected 'key = value' with a lower-case key",
                 origin, line_no);
            return CACREG_ERR_CONFIG;
        }
        if ((size_t)(k1 - k0) >= sizeof key) {
            cacreg_errf(err, err_size, "%s:%u: key too long", origin, line_no);
            return CACREG_ERR_CONFIG;
        }
        v0++;
        while (v0 < line_end && is_space(*v0))
            v0++;
        v1 = line_end;
        while (v1 > v0 && is_space(v1[-1]))
            v1--;
        memcpy(key, k0, (size_t)(k1 - k0));
        key[k1 - k0] = '\0';
        memcpy(value, v0, (size_t)(v1 - v0));
        value[v1 - v0] = '\0';
        rc = cacreg_config_set(cfg, key, value, msg, sizeof msg);
        if (rc != CACREG_OK) {
            cacreg_errf(err, err_size, "%s:%u: %s", origin, line_no, msg);
            return rc;
        }
    }
    return CACREG_OK;
}

cacreg_err cacreg_config_load_file(cacreg_config *cfg, const char *path, char *err,
                                   size_t err_size)
{
    char *buf = NULL;
    size_t len;
    cacreg_err rc;
    FILE *f = fopen(path, "r");

    if (!f) {
        if (errno == ENOENT)
            return CACREG_ERR_NOT_FOUND;
        cacreg_errf(err, err_size, "%s: %s", path, strerror(errno));
        return CACREG_ERR_CONFIG;
    }
    buf = malloc(CONFIG_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return CACREG_ERR_NOMEM;
    }
    len = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
    if (ferror(f)) {
        cacreg_errf(err, err_size, "%s: cannot be read", path);
        rc = CACREG_ERR_CONFIG;
        goto out;
    }
    if (len > CONFIG_FILE_MAX) {
        cacreg_errf(err, err_size, "%s: larger than %zu bytes", path, CONFIG_FILE_MAX);
        rc = CACREG_ERR_CONFIG;
        goto out;
    }
    rc = cacreg_config_parse(cfg, buf, len, path, err, err_size);
out:
    free(buf);
    fclose(f);
    return rc;
}

cacreg_err cacreg_config_load_standard(cacreg_config *cfg, bool kiosk, char *err,
                                       size_t err_size)
{
    char path[CACREG_PATH_MAX];
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    cacreg_err rc;

    /* a kiosk's settings are root's, as doas checks its own */
    rc = kiosk ? cacreg_config_check_owner(CACREG_CONFIG_SYSTEM, err, err_size) : CACREG_OK;
    if (rc == CACREG_OK)
        rc = cacreg_config_load_file(cfg, CACREG_CONFIG_SYSTEM, err, err_size);
    if (rc != CACREG_OK && rc != CACREG_ERR_NOT_FOUND)
        return rc;
    if (kiosk)
        return CACREG_OK;
    if (xdg && xdg[0] == '/')
        snprintf(path, sizeof path, "%s/cacreg/cacreg.conf", xdg);
    else if (home && home[0] == '/')
        snprintf(path, sizeof path, "%s/.config/cacreg/cacreg.conf", home);
    else
        return CACREG_OK;
    rc = cacreg_config_load_file(cfg, path, err, err_size);
    return rc == CACREG_ERR_NOT_FOUND ? CACREG_OK : rc;
}

#ifndef P11_MODULE_PATH
#define P11_MODULE_PATH "/usr/lib/x86_64-linux-gnu/pkcs11"
#endif

void cacreg_config_lock_down(cacreg_config *cfg)
{
    if (!cfg->pkcs11_module[0])
        snprintf(cfg->pkcs11_module, sizeof cfg->pkcs11_module, "%s/opensc-pkcs11.so",
                 P11_MODULE_PATH);
}
