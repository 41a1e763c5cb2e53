/* Fixed-window counters in a direct-mapped table behind a lock. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limit.h"

#define SLOTS 4096
#define KEY_MAX 96

struct slot {
    char key[KEY_MAX];
    long long window_start;
    int count;
};

struct limits {
    pthread_mutex_t lock;
    int max, window_s;
    struct slot *slots;
};

limits *limits_new(int max, int window_s)
{
    limits *l = calloc(1, sizeof *l);

    if (!l)
        return NULL;
    l->slots = calloc(SLOTS, sizeof *l->slots);
    if (!l->slots) {
        free(l);
        return NULL;
    }
    l->max = max;
    l->window_s = window_s > 0 ? window_s : 60;
    pthread_mutex_init(&l->lock, NULL);
    return l;
}

void limits_free(limits *l)
{
    if (!l)
        return;
    pthread_mutex_destroy(&l->lock);
    free(l->slots);
    free(l);
}

static size_t slot_of(const char *key)
{
    size_t h = 5381;

    for (const char *p = key; *p; p++)
        h = h * 33 + (unsigned char)*p;
    return h % SLOTS;
}

bool limits_take(limits *l, const char *key, long long now, int *retry_after_s)
{
    char k[KEY_MAX];
    struct slot *s;
    bool ok;

    if (l->max <= 0)
        return true; /* no limit */
    snprintf(k, sizeof k, "%s", key);
    pthread_mutex_lock(&l->lock);
    s = &l->slots[slot_of(k)];
    if (strcmp(s->key, k) != 0 || now - s->window_start >= l->window_s) {
        memcpy(s->key, k, sizeof k);
        s->window_start = now;
        s->count = 0;
    }
    ok = s->count < l->max;
    if (ok)
        s->count++;
    else
        *retry_after_s = (int)(s->window_start + l->window_s - now);
    pthread_mutex_unlock(&l->lock);
    return ok;
}
