/*
 * What a store backend gives store.c (for store_sqlite.c and store_ldap.c
 * only): one table of its operations. A backend's own struct begins with a
 * struct store, so that store.c's functions reach its table. An operation a
 * backend leaves NULL answers STORE_UNSUPPORTED.
 */
#ifndef PORTAL_STORE_BACKEND_H
#define PORTAL_STORE_BACKEND_H

#include "store.h"

struct store_backend {
    const char *kind;
    void (*close)(store *s);
    const char *(*error)(store *s);
    store_status (*check)(store *s);
    store_status (*account_get)(store *s, const char *username, store_account *out);
    store_status (*account_by_edipi)(store *s, const char *edipi, store_account *out);
    store_status (*password_check)(store *s, const store_account *a, const char *password,
                                   size_t len, store_password_result *out);
    int (*lockout_attempts)(const store *s);
    bool (*password_dummy)(store *s, const char *password, size_t len);
    store_status (*register_cert)(store *s, const char *username, const store_cert *cert,
                                  long long now, long long password_expires,
                                  store_register_result *out);
    store_status (*other_owner)(store *s, const char *username, const store_cert *cert,
                                bool *other);
    store_status (*registration_get)(store *s, const char *username, store_registration *out);
    store_status (*registration_clear)(store *s, const char *username, store_registration *out);
    store_status (*account_put)(store *s, const store_account *a, bool replace);
    store_status (*account_set_permitted)(store *s, const char *username, bool permitted);
    store_status (*account_set_password)(store *s, const char *username, const char *hash,
                                         long long expires);
    store_status (*account_unlock)(store *s, const char *username);
    store_status (*account_each)(store *s, void (*fn)(const store_account *a, void *ctx),
                                 void *ctx);
    store_status (*registration_each)(store *s,
                                      void (*fn)(const char *username,
                                                 const store_registration *r, void *ctx),
                                      void *ctx);
};

struct store {
    const struct store_backend *backend;
};

#endif
