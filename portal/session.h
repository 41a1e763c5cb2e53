/*
 * Sessions: 256 random bits given to the client once, kept only as their
 * SHA-256, in memory (a restart logs everyone out). A session ends after ttl
 * seconds without a request, or at logout; an ended one is remembered for
 * another ttl so its token answers session_expired, then forgotten (no_session).
 */
#ifndef PORTAL_SESSION_H
#define PORTAL_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

/* The token as the client sends it: 43 base64url characters and a NUL. */
#define SESSION_TOKEN_SIZE 44

typedef enum { SESSION_OK, SESSION_UNKNOWN, SESSION_EXPIRED, SESSION_FULL } session_status;

typedef struct sessions sessions;

/* At most max_sessions live at once (new logins are refused past it). Free with sessions_free(). */
sessions *sessions_new(int ttl_s, size_t max_sessions);
void sessions_free(sessions *s);

int sessions_ttl(const sessions *s);

/* A new session for username: the token (wipe it once sent) and its idle expiry. */
session_status sessions_start(sessions *s, const char *username, long long now,
                              char token[SESSION_TOKEN_SIZE], long long *expires);

/* The session's username, its idle time starting again; or why there is none. */
session_status sessions_touch(sessions *s, const char *token, long long now,
                              char username[STORE_USERNAME_MAX + 1]);

/* Ends the session (logout): its token answers SESSION_EXPIRED from then on. */
void sessions_end(sessions *s, const char *token, long long now);

/* Forgets the sessions ended or idle for long enough. */
void sessions_sweep(sessions *s, long long now);

#endif
