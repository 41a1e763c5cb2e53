/* cacreg-portald's configuration: /etc/cacreg/portald.conf, then command-line options. */
#ifndef PORTAL_CONFIG_H
#define PORTAL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "cacreg.h"
#include "store.h"

#define PORTALD_CONFIG_FILE "/etc/cacreg/portald.conf"

/* Everything a site sets; config_defaults() gives the built-in values. */
typedef struct portald_config {
    char listen[128];                      /* ADDRESS:PORT, [IPv6]:PORT */
    char tls_cert[CACREG_PATH_MAX];        /* PEM: the server's certificate and its chain */
    char tls_key[CACREG_PATH_MAX];         /* PEM: its key (readable by the service only) */
    char tls_client_ca[CACREG_PATH_MAX];   /* PEM: issuers the TLS handshake accepts */
    char ca_bundle[CACREG_PATH_MAX];       /* PEM: issuers accepted for CAC registration */
    char crl_file[CACREG_PATH_MAX];        /* "" = no CRL */
    char ocsp_url[CACREG_URL_MAX];         /* "" = no OCSP */
    int ocsp_timeout_s;
    int ocsp_cache_max_s;
    bool revocation_soft_fail;
    char database[CACREG_PATH_MAX];
    int session_ttl_s;
    int max_sessions;
    int threads;                           /* 0: one per processor */
    int connection_timeout_s;
    int connections_per_address;
    int max_connections;
    int password_attempts_per_address;     /* per minute */
    int password_attempts_per_account;     /* per minute */
    int argon2_memory_kib;
    int argon2_time;
    char port_file[CACREG_PATH_MAX];       /* "" = none; the port listened on is written there */
    char access_log[CACREG_PATH_MAX];      /* "" = none; one line per request, no contents */
    char store[16];                        /* "sqlite" (database) or "ldap" (the site's directory) */
    /* The directory store (store = ldap); the database then keeps what this portal wrote. */
    char ldap_uri[1024];                   /* blank-separated, tried in order */
    bool ldap_starttls;
    char ldap_ca_file[CACREG_PATH_MAX];
    char ldap_bind_dn[512];
    char ldap_bind_password_file[CACREG_PATH_MAX];
    char ldap_base[512];
    char ldap_user_filter[512];            /* one %s: the username */
    char ldap_username_attribute[64];
    char ldap_edipi_attribute[64];
    char ldap_display_name_attribute[64];
    char ldap_write[16];                   /* both, certificate, altsecid */
    char ldap_certificate_match[16];       /* gser, binary */
    char ldap_password_expiry[16];         /* shadow, pwdlastset, none */
    int ldap_timeout_s;
    int ldap_lockout_attempts;             /* 0: the directory's threshold is not known */
} portald_config;

void config_defaults(portald_config *cfg);

/* Parses "key = value" lines; on failure err says "origin:line: what". */
cacreg_err config_parse(portald_config *cfg, const char *text, size_t len, const char *origin,
                        char *err, size_t err_size);

/* Reads one file; CACREG_ERR_NOT_FOUND when it does not exist. */
cacreg_err config_load_file(portald_config *cfg, const char *path, char *err, size_t err_size);

/* Sets one key, as a file line or an option (--key-name VALUE) would. */
cacreg_err config_set(portald_config *cfg, const char *key, const char *value, char *err,
                      size_t err_size);

/* Whether key (with '-' taken as '_') is a configuration key. */
bool config_has_key(const char *key);

/* Every key, one per line, for --help and the manual's test. */
void config_keys(void (*fn)(const char *key, void *ctx), void *ctx);

/*
 * What --check-config looks at beyond the syntax: the files can be read, the
 * key is not readable by others, the address parses. false and err when not.
 */
bool config_check(const portald_config *cfg, char *err, size_t err_size);

/*
 * Opens the store the configuration names (the embedded one, or the directory).
 * check_only: a directory store without its ledger (the database is not made),
 * for store_check(); the embedded store is then not opened at all (STORE_OK, *out NULL).
 */
store_status config_open_store(const portald_config *cfg, bool check_only, store **out, char *err,
                               size_t err_size);

#endif
