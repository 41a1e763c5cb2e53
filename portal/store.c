/* The store interface: each call goes to the backend's table (store_backend.h). */
#include "store_backend.h"

#define CALL(s, op, ...) ((s)->backend->op ? (s)->backend->op((s), __VA_ARGS__) : STORE_UNSUPPORTED)

void store_close(store *s)
{
    if (s)
        s->backend->close(s);
}

const char *store_kind(const store *s)
{
    return s->backend->kind;
}

const char *store_error(store *s)
{
    return s->backend->error(s);
}

store_status store_check(store *s)
{
    return s->backend->check ? s->backend->check(s) : STORE_OK;
}

store_status store_account_get(store *s, const char *username, store_account *out)
{
    return CALL(s, account_get, username, out);
}

store_status store_account_by_edipi(store *s, const char *edipi, store_account *out)
{
    return CALL(s, account_by_edipi, edipi, out);
}

store_status store_password_check(store *s, const store_account *a, const char *password,
                                  size_t len, store_password_result *out)
{
    return CALL(s, password_check, a, password, len, out);
}

int store_lockout_attempts(const store *s)
{
    return s->backend->lockout_attempts ? s->backend->lockout_attempts(s) : -1;
}

bool store_password_dummy(store *s, const char *password, size_t len)
{
    return s->backend->password_dummy && s->backend->password_dummy(s, password, len);
}

store_status store_register(store *s, const char *username, const store_cert *cert,
                            long long now, long long password_expires, store_register_result *out)
{
    return CALL(s, register_cert, username, cert, now, password_expires, out);
}

store_status store_other_owner(store *s, const char *username, const store_cert *cert,
                               bool *other)
{
    return CALL(s, other_owner, username, cert, other);
}

store_status store_registration_get(store *s, const char *username, store_registration *out)
{
    return CALL(s, registration_get, username, out);
}

store_status store_registration_clear(store *s, const char *username, store_registration *out)
{
    return CALL(s, registration_clear, username, out);
}

store_status store_account_put(store *s, const store_account *a, bool replace)
{
    return CALL(s, account_put, a, replace);
}

store_status store_account_set_permitted(store *s, const char *username, bool permitted)
{
    return CALL(s, account_set_permitted, username, permitted);
}

store_status store_account_set_password(store *s, const char *username, const char *hash,
                                        long long expires)
{
    return CALL(s, account_set_password, username, hash, expires);
}

store_status store_account_unlock(store *s, const char *username)
{
    return CALL(s, account_unlock, username);
}

store_status store_account_each(store *s, void (*fn)(const store_account *a, void *ctx), void *ctx)
{
    return CALL(s, account_each, fn, ctx);
}

store_status store_registration_each(store *s,
                                     void (*fn)(const char *username, const store_registration *r,
                                                void *ctx),
                                     void *ctx)
{
    return CALL(s, registration_each, fn, ctx);
}
