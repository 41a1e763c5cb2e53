/* Passwords hashed and checked with libargon2's argon2id. */
#include <string.h>

#include <argon2.h>
#include <openssl/rand.h>

#include "password.h"

#define SALT_BYTES 16
#define HASH_BYTES 32

bool password_hash(const char *password, size_t len, password_cost cost, char *out,
                   size_t out_size)
{
    unsigned char salt[SALT_BYTES];

    if (RAND_bytes(salt, sizeof salt) != 1 ||
        argon2_encodedlen(cost.time, cost.memory_kib, 1, SALT_BYTES, HASH_BYTES, Argon2_id) >
            out_size)
        return false;
    return argon2id_hash_encoded(cost.time, cost.memory_kib, 1, password, len, salt, sizeof salt,
                                 HASH_BYTES, out, out_size) == ARGON2_OK;
}

bool password_check(const char *password, size_t len, const char *stored)
{
    if (strncmp(stored, "$argon2id$", 10) != 0)
        return false;
    return argon2id_verify(stored, password, len) == ARGON2_OK;
}

void password_dummy_check(const char *password, size_t len, password_cost cost)
{
    unsigned char hash[HASH_BYTES];
    static const unsigned char salt[SALT_BYTES] = "cacreg-portald!";

    /* The same work as a check of a stored hash of that cost; the result is not looked at. */
    (void)argon2id_hash_raw(cost.time, cost.memory_kib, 1, password, len, salt, sizeof salt, hash,
                            sizeof hash);
}
