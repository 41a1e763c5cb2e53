/* portald.conf: "key = value" lines and "# comments", as cacreg.conf. */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#define CONFIG_FILE_MAX ((size_t)64 * 1024)
#define CONFIG_LINE_MAX 4096

enum value_type { V_STRING, V_PATH, V_URL, V_INT, V_BOOL, V_CHOICE };

/* One key: where it goes and what it accepts. */
struct key {
    const char *name;
    enum value_type type;
    size_t offset;
    size_t size; /* of a string field */
    int min, max;
    const char *const *choices; /* V_CHOICE: the words it takes, NULL-terminated */
};

/* NOLINTBEGIN(bugprone-macro-parentheses): f names a field, it cannot be parenthesized */
#define STR_KEY(n, t, f)                                                                         \
    {.name = (n), .type = (t), .offset = offsetof(portald_config, f),                            \
     .size = sizeof(((portald_config *)0)->f)}
#define INT_KEY(n, f, lo, hi)                                                                    \
    {.name = (n), .type = V_INT, .offset = offsetof(portald_config, f), .min = (lo), .max = (hi)}
#define BOOL_KEY(n, f) {.name = (n), .type = V_BOOL, .offset = offsetof(portald_config, f)}
#define CHOICE_KEY(n, f, c)                                                                      \
    {.name = (n), .type = V_CHOICE, .offset = offsetof(portald_config, f),                       \
     .size = sizeof(((portald_config *)0)->f), .choices = (c)}
/* NOLINTEND(bugprone-macro-parentheses) */

static const char *const store_kinds[] = {"sqlite", "ldap", NULL};
static const char *const ldap_writes[] = {"both", "certificate", "altsecid", NULL};
static const char *const ldap_matches[] = {"gser", "binary", NULL};
static const char *const ldap_expiries[] = {"shadow", "pwdlastset", "none", NULL};

static const struct key keys[] = {
    STR_KEY("listen", V_STRING, listen),
    STR_KEY("tls_cert", V_PATH, tls_cert),
    STR_KEY("tls_key", V_PATH, tls_key),
    STR_KEY("tls_client_ca", V_PATH, tls_client_ca),
    STR_KEY("ca_bundle", V_PATH, ca_bundle),
    STR_KEY("crl_file", V_PATH, crl_file),
    STR_KEY("ocsp_url", V_URL, ocsp_url),
    INT_KEY("ocsp_timeout", ocsp_timeout_s, 1, 30),
    INT_KEY("ocsp_cache_max", ocsp_cache_max_s, 1, 86400),
    BOOL_KEY("revocation_soft_fail", revocation_soft_fail),
    STR_KEY("database", V_PATH, database),
    INT_KEY("session_ttl", session_ttl_s, 1, 86400),
    INT_KEY("max_sessions", max_sessions, 1, 1000000),
    INT_KEY("threads", threads, 0, 64),
    INT_KEY("connection_timeout", connection_timeout_s, 1, 600),
    INT_KEY("connections_per_address", connections_per_address, 0, 100000),
    INT_KEY("max_connections", max_connections, 1, 100000),
    INT_KEY("password_attempts_per_address", password_attempts_per_address, 0, 100000),
    INT_KEY("password_attempts_per_account", password_attempts_per_account, 0, 100000),
    INT_KEY("argon2_memory_kib", argon2_memory_kib, 8, 4194304),
    INT_KEY("argon2_time", argon2_time, 1, 100),
    STR_KEY("port_file", V_PATH, port_file),
    STR_KEY("access_log", V_PATH, access_log),
    CHOICE_KEY("store", store, store_kinds),
    STR_KEY("ldap_uri", V_STRING, ldap_uri),
    BOOL_KEY("ldap_starttls", ldap_starttls),
    STR_KEY("ldap_ca_file", V_PATH, ldap_ca_file),
    STR_KEY("ldap_bind_dn", V_STRING, ldap_bind_dn),
    STR_KEY("ldap_bind_password_file", V_PATH, ldap_bind_password_file),
    STR_KEY("ldap_base", V_STRING, ldap_base),
    STR_KEY("ldap_user_filter", V_STRING, ldap_user_filter),
    STR_KEY("ldap_username_attribute", V_STRING, ldap_username_attribute),
    STR_KEY("ldap_edipi_attribute", V_STRING, ldap_edipi_attribute),
    STR_KEY("ldap_display_name_attribute", V_STRING, ldap_display_name_attribute),
    CHOICE_KEY("ldap_write", ldap_write, ldap_writes),
    CHOICE_KEY("ldap_certificate_match", ldap_certificate_match, ldap_matches),
    CHOICE_KEY("ldap_password_expiry", ldap_password_expiry, ldap_expiries),
    INT_KEY("ldap_timeout", ldap_timeout_s, 1, 60),
    INT_KEY("ldap_lockout_attempts", ldap_lockout_attempts, 0, 1000),
};

void config_defaults(portald_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->listen, sizeof cfg->listen, "%s", "0.0.0.0:443");
    snprintf(cfg->tls_cert, sizeof cfg->tls_cert, "%s", "/etc/cacreg/portald.pem");
    snprintf(cfg->tls_key, sizeof cfg->tls_key, "%s", "/etc/cacreg/portald.key");
    snprintf(cfg->tls_client_ca, sizeof cfg->tls_client_ca, "%s", "/etc/cacreg/client-ca.pem");
    snprintf(cfg->ca_bundle, sizeof cfg->ca_bundle, "%s", "/etc/cacreg/registration-ca.pem");
    snprintf(cfg->database, sizeof cfg->database, "%s", "/var/lib/cacreg-portal/portal.db");
    cfg->ocsp_timeout_s = 3;
    cfg->ocsp_cache_max_s = 3600;
    cfg->session_ttl_s = 900;
    cfg->max_sessions = 10000;
    cfg->connection_timeout_s = 15;
    cfg->connections_per_address = 64;
    cfg->max_connections = 1024;
    cfg->password_attempts_per_address = 60;
    cfg->password_attempts_per_account = 10;
    cfg->argon2_memory_kib = 19456;
    cfg->argon2_time = 2;
    snprintf(cfg->store, sizeof cfg->store, "%s", "sqlite");
    snprintf(cfg->ldap_ca_file, sizeof cfg->ldap_ca_file, "%s", "/etc/cacreg/directory-ca.pem");
    snprintf(cfg->ldap_bind_password_file, sizeof cfg->ldap_bind_password_file, "%s",
             "/etc/cacreg/directory.secret");
    snprintf(cfg->ldap_user_filter, sizeof cfg->ldap_user_filter, "%s",
             "(&(objectClass=posixAccount)(uid=%s))");
    snprintf(cfg->ldap_username_attribute, sizeof cfg->ldap_username_attribute, "%s", "uid");
    snprintf(cfg->ldap_edipi_attribute, sizeof cfg->ldap_edipi_attribute, "%s", "employeeNumber");
    snprintf(cfg->ldap_display_name_attribute, sizeof cfg->ldap_display_name_attribute, "%s", "cn");
    snprintf(cfg->ldap_write, sizeof cfg->ldap_write, "%s", "both");
    snprintf(cfg->ldap_certificate_match, sizeof cfg->ldap_certificate_match, "%s", "gser");
    snprintf(cfg->ldap_password_expiry, sizeof cfg->ldap_password_expiry, "%s", "shadow");
    cfg->ldap_timeout_s = 3; /* under a client's 6 s without an answer (cacreg's) */
}

/* The key named name, with '-' taken as '_'; NULL if none. */
static const struct key *find_key(const char *name)
{
    char norm[64];
    size_t i;

    for (i = 0; i < sizeof norm - 1 && name[i]; i++)
        norm[i] = name[i] == '-' ? '_' : name[i];
    norm[i] = '\0';
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        if (strcmp(keys[k].name, norm) == 0)
            return &keys[k];
    return NULL;
}

bool config_has_key(const char *key)
{
    return find_key(key) != NULL;
}

void config_keys(void (*fn)(const char *key, void *ctx), void *ctx)
{
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        fn(keys[k].name, ctx);
}

/* A whole decimal number in [min, max]. */
static bool parse_int(const char *s, int min, int max, int *out)
{
    long v = 0;

    if (!*s)
        return false;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > 100000000L)
            return false;
        v = v * 10 + (*p - '0');
    }
    if (v < min || v > max)
        return false;
    *out = (int)v;
    return true;
}

cacreg_err config_set(portald_config *cfg, const char *key, const char *value, char *err,
                      size_t err_size)
{
    const struct key *k = find_key(key);
    char *field;

    if (!k) {
        snprintf(err, err_size, "unknown key '%s'", key);
        return CACREG_ERR_CONFIG;
    }
    field = (char *)cfg + k->offset;
    switch (k->type) {
    case V_STRING:
    case V_PATH:
    case V_URL:
        if (strlen(value) >= k->size) {
            snprintf(err, err_size, "%s: longer than %zu bytes", k->name, k->size - 1);
            return CACREG_ERR_CONFIG;
        }
        if (k->type == V_PATH && value[0] && value[0] != '/') {
            snprintf(err, err_size, "%s: '%s' is not an absolute path", k->name, value);
            return CACREG_ERR_CONFIG;
        }
        if (k->type == V_URL && value[0] && strncmp(value, "http://", 7) != 0) {
            snprintf(err, err_size, "%s: '%s' is not an http:// URL", k->name, value);
            return CACREG_ERR_CONFIG;
        }
        memcpy(field, value, strlen(value) + 1);
        return CACREG_OK;
    case V_INT:
        if (!parse_int(value, k->min, k->max, (int *)(void *)field)) {
            snprintf(err, err_size, "%s: '%s' is not a whole number from %d to %d", k->name,
                     value, k->min, k->max);
            return CACREG_ERR_CONFIG;
        }
        return CACREG_OK;
    case V_CHOICE:
        for (const char *const *c = k->choices; *c; c++)
            if (strcmp(value, *c) == 0) {
                memcpy(field, value, strlen(value) + 1);
                return CACREG_OK;
            }
        {
            char words[128] = "";
            for (const char *const *c = k->choices; *c; c++)
                snprintf(words + strlen(words), sizeof words - strlen(words), "%s%s",
                         c == k->choices ? "" : c[1] ? ", " : " or ", *c);
            snprintf(err, err_size, "%s: '%s' is not %s", k->name, value, words);
        }
        return CACREG_ERR_CONFIG;
    case V_BOOL:
        if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 || strcmp(value, "1") == 0) {
            *(bool *)(void *)field = true;
        } else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 ||
                   strcmp(value, "0") == 0) {
            *(bool *)(void *)field = false;
        } else {
            snprintf(err, err_size, "%s: '%s' is not yes or no", k->name, value);
            return CACREG_ERR_CONFIG;
        }
        return CACREG_OK;
    }
    return CACREG_ERR_CONFIG;
}

/* s without the blanks at either end, in place. */
static char *trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        *--end = '\0';
    return s;
}

cacreg_err config_parse(portald_config *cfg, const char *text, size_t len, const char *origin,
                        char *err, size_t err_size)
{
    char line[CONFIG_LINE_MAX], why[512];
    const char *p = text, *end = text + len;
    unsigned lineno = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char *l, *eq;

        lineno++;
        if (n >= sizeof line) {
            snprintf(err, err_size, "%s:%u: the line is longer than %zu bytes", origin, lineno,
                     sizeof line - 1);
            return CACREG_ERR_CONFIG;
        }
        memcpy(line, p, n);
        line[n] = '\0';
        p += n + (nl ? 1 : 0);
        if (memchr(line, '\0', n)) {
            snprintf(err, err_size, "%s:%u: a NUL byte", origin, lineno);
            return CACREG_ERR_CONFIG;
        }
        l = trim(line);
        if (!*l || *l == '#')
            continue;
        eq = strchr(l, '=');
        if (!eq) {
            snprintf(err, err_size, "%s:%u: expected 'key = value'", origin, lineno);
            return CACREG_ERR_CONFIG;
        }
        *eq = '\0';
        if (config_set(cfg, trim(l), trim(eq + 1), why, sizeof why) != CACREG_OK) {
            snprintf(err, err_size, "%s:%u: %s", origin, lineno, why);
            return CACREG_ERR_CONFIG;
        }
    }
    return CACREG_OK;
}

cacreg_err config_load_file(portald_config *cfg, const char *path, char *err, size_t err_size)
{
    FILE *f = fopen(path, "rb");
    char *text;
    size_t n;
    cacreg_err rc;

    if (!f) {
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? CACREG_ERR_NOT_FOUND : CACREG_ERR_CONFIG;
    }
    text = malloc(CONFIG_FILE_MAX + 1);
    if (!text) {
        fclose(f);
        return CACREG_ERR_NOMEM;
    }
    n = fread(text, 1, CONFIG_FILE_MAX + 1, f);
    fclose(f);
    if (n > CONFIG_FILE_MAX) {
        snprintf(err, err_size, "%s: larger than %zu bytes", path, CONFIG_FILE_MAX);
        free(text);
        return CACREG_ERR_CONFIG;
    }
    rc = config_parse(cfg, text, n, path, err, err_size);
    free(text);
    return rc;
}

/* A readable regular file, or why not. */
static bool readable(const char *key, const char *path, char *err, size_t err_size)
{
    struct stat st;

    if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
        snprintf(err, err_size, "%s: %s cannot be read: %s", key, path, strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, err_size, "%s: %s is not a file", key, path);
        return false;
    }
    return true;
}

bool config_check(const portald_config *cfg, char *err, size_t err_size)
{
    struct stat st;
    char host[128];
    const char *colon;

    colon = strrchr(cfg->listen, ':');
    if (!colon || colon == cfg->listen) {
        snprintf(err, err_size, "listen: '%s' is not ADDRESS:PORT", cfg->listen);
        return false;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - cfg->listen), cfg->listen);
    {
        unsigned char addr[16];
        size_t hl = strlen(host);
        int port = 0;
        if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
            memmove(host, host + 1, hl - 2);
            host[hl - 2] = '\0';
            if (inet_pton(AF_INET6, host, addr) != 1) {
                snprintf(err, err_size, "listen: '%s' is not an IPv6 address", host);
                return false;
            }
        } else if (inet_pton(AF_INET, host, addr) != 1) {
            snprintf(err, err_size, "listen: '%s' is not an IPv4 address (IPv6 in brackets)", host);
            return false;
        }
        if (!parse_int(colon + 1, 0, 65535, &port)) {
            snprintf(err, err_size, "listen: '%s' is not a port", colon + 1);
            return false;
        }
    }
    if (!readable("tls_cert", cfg->tls_cert, err, err_size) ||
        !readable("tls_key", cfg->tls_key, err, err_size) ||
        !readable("tls_client_ca", cfg->tls_client_ca, err, err_size) ||
        !readable("ca_bundle", cfg->ca_bundle, err, err_size) ||
        (cfg->crl_file[0] && !readable("crl_file", cfg->crl_file, err, err_size)))
        return false;
    if (stat(cfg->tls_key, &st) == 0 && (st.st_mode & S_IROTH)) {
        snprintf(err, err_size, "tls_key: %s can be read by every user (chmod o-r)", cfg->tls_key);
        return false;
    }
    if (strcmp(cfg->store, "ldap") != 0)
        return true;
    if (!readable("ldap_ca_file", cfg->ldap_ca_file, err, err_size) ||
        !readable("ldap_bind_password_file", cfg->ldap_bind_password_file, err, err_size))
        return false;
    if (stat(cfg->ldap_bind_password_file, &st) == 0 && (st.st_mode & (S_IROTH | S_IWOTH))) {
        snprintf(err, err_size,
                 "ldap_bind_password_file: %s can be read or written by every user (chmod o-rw)",
                 cfg->ldap_bind_password_file);
        return false;
    }
    return true;
}

store_status config_open_store(const portald_config *cfg, bool check_only, store **out, char *err,
                               size_t err_size)
{
    store_ldap_options opt = {
        .uri = cfg->ldap_uri,
        .starttls = cfg->ldap_starttls,
        .ca_file = cfg->ldap_ca_file,
        .bind_dn = cfg->ldap_bind_dn,
        .bind_password_file = cfg->ldap_bind_password_file,
        .base = cfg->ldap_base,
        .user_filter = cfg->ldap_user_filter,
        .username_attribute = cfg->ldap_username_attribute,
        .edipi_attribute = cfg->ldap_edipi_attribute,
        .display_attribute = cfg->ldap_display_name_attribute,
        .write = cfg->ldap_write,
        .certificate_match = cfg->ldap_certificate_match,
        .password_expiry = cfg->ldap_password_expiry,
        .timeout_s = cfg->ldap_timeout_s,
        .lockout_attempts = cfg->ldap_lockout_attempts,
        .ledger = check_only ? NULL : cfg->database,
    };

    *out = NULL;
    if (strcmp(cfg->store, "ldap") == 0)
        return store_open_ldap(out, &opt, err, err_size);
    if (check_only)
        return STORE_OK;
    return store_open_sqlite(out, cfg->database, err, err_size);
}
