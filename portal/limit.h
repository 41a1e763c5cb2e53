/*
 * Rate limits: at most max events per key (a client address, an account) in
 * each window of window_s seconds. A fixed table; a key that collides with a
 * live one takes its slot (an attacker's keys cannot grow memory).
 */
#ifndef PORTAL_LIMIT_H
#define PORTAL_LIMIT_H

#include <stdbool.h>

typedef struct limits limits;

/* Free with limits_free(). NULL when out of memory. */
limits *limits_new(int max, int window_s);
void limits_free(limits *l);

/* Counts one event for key; false (and *retry_after_s) when the key is over its limit. */
bool limits_take(limits *l, const char *key, long long now, int *retry_after_s);

#endif
