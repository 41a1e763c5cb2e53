/*
 * docs/portal-api.md v1: one table of routes, one handler per request. A
 * handler gets the request (headers it may use, the body's JSON object, the
 * client's certificate only through the core's checker) and returns the
 * contract's error type; the dispatcher turns either into the answer. No I/O
 * but the store's, the checker's and the audit log: the fuzzer drives it.
 */
#ifndef PORTAL_API_H
#define PORTAL_API_H

#include <stdbool.h>
#include <stddef.h>

#include "cacreg.h"
#include "limit.h"
#include "password.h"
#include "session.h"
#include "store.h"

#define API_PREFIX "/api/v1/"
#define API_BODY_MAX ((size_t)8 * 1024)    /* a request body, at most */
#define API_ANSWER_MAX ((size_t)64 * 1024) /* an answer body, at most */
#define API_FIELD_MAX 1024                 /* a string field, in characters */
#define API_PASSWORD_EXTENSION_DAYS 150    /* a CAC login's new password expiry */

/* What every request shares: the store, the sessions, the checks, the limits. */
typedef struct api_context {
    store *store;
    sessions *sessions;
    cacreg_checker *checker;
    limits *password_per_address; /* password attempts per client address */
    limits *password_per_account; /* password attempts per username */
    password_cost cost;           /* the site's hash cost: an unknown username costs as much */
} api_context;

/* One request, as the HTTP layer read it. */
typedef struct api_request {
    const char *method;
    const char *url;            /* the path, without the query */
    const char *content_type;   /* NULL: none */
    const char *authorization;  /* NULL: none */
    char *body;                 /* the bytes read (wiped by api_handle), NUL-terminated */
    size_t body_len;
    bool body_present;          /* a Content-Length over 0, or a chunked body */
    bool body_too_large;        /* over API_BODY_MAX: the rest was not kept */
    const unsigned char *cert_der; /* the TLS client certificate (its issuer known to the
                                      TLS layer), NULL when none was presented */
    size_t cert_len;
    const char *addr;           /* the client's address, for limits and the audit */
} api_request;

/* What to send back. */
typedef struct api_answer {
    unsigned status;
    char *body;        /* JSON, malloc'd (free), NULL for no body (204) */
    size_t body_len;
    int retry_after_s; /* > 0: a Retry-After header */
} api_answer;

/* Sets jansson's allocator to one that wipes what it frees (passwords pass through it). */
void api_init(void);

/* Handles one request at time now; answer is always filled. */
void api_handle(const api_context *ctx, api_request *req, long long now, api_answer *answer);

/* A ready answer for a failure found before a request reaches a handler (HTTP layer). */
void api_error_answer(unsigned status, const char *error, const char *message,
                      api_answer *answer);

#endif
