/* Passwords hashed and checked with libargon2's argon2id. */
#include <pthread.h>
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

static char dummy[128];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void make_dummy(void)
{
    if (!password_hash("no password at all", 18, PASSWORD_COST_DEFAULT, dummy, sizeof dummy))
        dummy[0] = '\0';
}

void password_dummy_check(const char *password, size_t len)
{
    pthread_once(&dummy_once, make_dummy);
    (void)password_check(password, len, dummy);
}
