/* Passwords: argon2id (libargon2), memory-hard, one salt each. */
#ifndef PORTAL_PASSWORD_H
#define PORTAL_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

/* The cost of a new hash; checks read the cost from the stored hash. */
typedef struct password_cost {
    unsigned time;       /* passes (t) */
    unsigned memory_kib; /* m */
} password_cost;

#define PASSWORD_COST_DEFAULT ((password_cost){.time = 2, .memory_kib = 19456})

/* Hashes password into out ("$argon2id$v=19$m=...$salt$hash"); false if it cannot. */
bool password_hash(const char *password, size_t len, password_cost cost, char *out,
                   size_t out_size);

/* True when password matches stored; a stored "" (no password set) matches nothing. */
bool password_check(const char *password, size_t len, const char *stored);

/* Spends a check's time at cost on nothing, for an unknown username (no probing by time). */
void password_dummy_check(const char *password, size_t len, password_cost cost);

#endif
