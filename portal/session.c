/* Sessions in memory, by the SHA-256 of their token; an open-addressed table behind a lock. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "session.h"

#define TOKEN_BYTES 32 /* 256 bits */

struct entry {
    unsigned char hash[32];
    bool used;            /* the slot holds a session (live or ended) */
    bool ended;
    long long last_used;  /* or when it ended */
    char username[STORE_USERNAME_MAX + 1];
};

#define FIRST_SLOTS 1024 /* the table grows from this, doubling, to twice max_sessions */

struct sessions {
    pthread_mutex_t lock;
    int ttl_s;
    size_t slots;         /* a power of two, at least twice the sessions held */
    size_t max_slots;     /* the power of two at least twice max_sessions */
    size_t count;
    size_t max_sessions;
    struct entry *table;
};

sessions *sessions_new(int ttl_s, size_t max_sessions)
{
    sessions *s = calloc(1, sizeof *s);

    if (!s)
        return NULL;
    s->ttl_s = ttl_s;
    s->max_sessions = max_sessions;
    s->max_slots = 16;
    while (s->max_slots < 2 * max_sessions)
        s->max_slots *= 2;
    /* Memory for the sessions there are, not for all there may be (RSS at 64 clients). */
    s->slots = s->max_slots < FIRST_SLOTS ? s->max_slots : FIRST_SLOTS;
    s->table = calloc(s->slots, sizeof *s->table);
    if (!s->table) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void sessions_free(sessions *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s->table, s->slots * sizeof *s->table);
    free(s->table);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int sessions_ttl(const sessions *s)
{
    return s->ttl_s;
}

static void token_hash(const char *token, unsigned char hash[32])
{
    unsigned int len = 32;

    EVP_Digest(token, strlen(token), hash, &len, EVP_sha256(), NULL);
}

/* The slot holding hash, or the free slot where it would go. Locked by caller. */
static struct entry *find(sessions *s, const unsigned char hash[32])
{
    uint64_t h;

    memcpy(&h, hash, sizeof h);
    for (size_t i = 0; i < s->slots; i++) {
        struct entry *e = &s->table[(h + i) & (s->slots - 1)];
        if (!e->used || memcmp(e->hash, hash, 32) == 0)
            return e;
    }
    return NULL; /* not reached: the table is never more than half full */
}

/* Removes e and re-places the entries after it (linear probing). Locked by caller. */
static void remove_entry(sessions *s, struct entry *e)
{
    size_t i = (size_t)(e - s->table);

    OPENSSL_cleanse(e, sizeof *e);
    s->count--;
    for (size_t j = (i + 1) & (s->slots - 1); s->table[j].used; j = (j + 1) & (s->slots - 1)) {
        struct entry moved = s->table[j];
        memset(&s->table[j], 0, sizeof moved);
        *find(s, moved.hash) = moved;
    }
}

/* Doubles the table when it would be more than half full. Locked by caller. */
static void grow(sessions *s)
{
    struct entry *old = s->table, *bigger;
    size_t old_slots = s->slots;

    if (2 * (s->count + 1) <= s->slots || s->slots >= s->max_slots)
        return;
    bigger = calloc(2 * old_slots, sizeof *bigger);
    if (!bigger)
        return; /* stays as it is: sessions_start refuses past half full */
    s->table = bigger;
    s->slots = 2 * old_slots;
    for (size_t i = 0; i < old_slots; i++)
        if (old[i].used)
            *find(s, old[i].hash) = old[i];
    OPENSSL_cleanse(old, old_slots * sizeof *old);
    free(old);
}

/* base64url without padding of 32 bytes: 43 characters. */
static void encode_token(const unsigned char bytes[TOKEN_BYTES], char out[SESSION_TOKEN_SIZE])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;

    for (size_t i = 0; i < TOKEN_BYTES; i++) {
        acc = (acc << 8) | bytes[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = alphabet[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

session_status sessions_start(sessions *s, const char *username, long long now,
                              char token[SESSION_TOKEN_SIZE], long long *expires)
{
    unsigned char bytes[TOKEN_BYTES], hash[32];
    struct entry *e;

    if (RAND_bytes(bytes, sizeof bytes) != 1)
        return SESSION_FULL;
    encode_token(bytes, token);
    OPENSSL_cleanse(bytes, sizeof bytes);
    token_hash(token, hash);
    pthread_mutex_lock(&s->lock);
    grow(s);
    if (s->count >= s->max_sessions || 2 * (s->count + 1) > s->slots) {
        pthread_mutex_unlock(&s->lock);
        OPENSSL_cleanse(token, SESSION_TOKEN_SIZE);
        return SESSION_FULL;
    }
    e = find(s, hash);
    memcpy(e->hash, hash, sizeof hash);
    e->used = true;
    e->ended = false;
    e->last_used = now;
    snprintf(e->username, sizeof e->username, "%s", username);
    s->count++;
    pthread_mutex_unlock(&s->lock);
    *expires = now + s->ttl_s;
    return SESSION_OK;
}

session_status sessions_touch(sessions *s, const char *token, long long now,
                              char username[STORE_USERNAME_MAX + 1])
{
    unsigned char hash[32];
    session_status rc;
    struct entry *e;

    token_hash(token, hash);
    pthread_mutex_lock(&s->lock);
    e = find(s, hash);
    if (!e || !e->used) {
        rc = SESSION_UNKNOWN;
    } else if (e->ended || now - e->last_used > s->ttl_s) {
        if (!e->ended) {
            e->ended = true;
            e->last_used = now;
        }
        rc = SESSION_EXPIRED;
    } else {
        e->last_used = now;
        snprintf(username, STORE_USERNAME_MAX + 1, "%s", e->username);
        rc = SESSION_OK;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void sessions_end(sessions *s, const char *token, long long now)
{
    unsigned char hash[32];
    struct entry *e;

    token_hash(token, hash);
    pthread_mutex_lock(&s->lock);
    e = find(s, hash);
    if (e && e->used && !e->ended) {
        e->ended = true;
        e->last_used = now;
    }
    pthread_mutex_unlock(&s->lock);
}

void sessions_sweep(sessions *s, long long now)
{
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->slots; i++) {
        struct entry *e = &s->table[i];
        /* Idle past ttl: expired, then remembered as such for one more ttl. */
        while (e->used && now - e->last_used > 2LL * s->ttl_s)
            remove_entry(s, e); /* what moves into this slot is looked at too */
    }
    pthread_mutex_unlock(&s->lock);
}
