/* Helpers shared inside the core; not part of any interface. */
#ifndef CACREG_INTERNAL_H
#define CACREG_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>

#include "parts.h"

/* Formats a message into a caller's error buffer; does nothing if err is NULL. */
void cacreg_errf(char *err, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A condition variable whose timed waits count on CLOCK_MONOTONIC (a clock set back
 * does not stretch them); pthread_cond_init's result. */
int cacreg_cond_init_monotonic(pthread_cond_t *cond);
/* CLOCK_MONOTONIC's now plus ms (a negative ms as 0): the end of such a timed wait. */
struct timespec cacreg_deadline(int ms);

/*
 * Judges one HTTP answer to a request of kind against docs/portal-api.md and
 * fills r (outcome, fields, or what is wrong); a login's session token goes
 * into session. Pure: no I/O, for the client, the unit tests and the fuzzer.
 */
void cacreg_portal_parse(cacreg_request kind, long http_status, const char *content_type,
                         const char *body, size_t len, cacreg_secret *session,
                         cacreg_portal_result *r);

/*
 * For a portal's check (core/check.c): asks trust's OCSP responder about der
 * (1 revoked, 0 good, -1 no answer or none configured), with when it was
 * revoked and the answer's nextUpdate (0: none given).
 */
int cacreg_cert_ocsp(const cacreg_trust *trust, const cacreg_cert_der *der, long long *revoked_at,
                     long long *next_update);

/* When trust's CRL says der was revoked; 0 when no CRL lists it. */
long long cacreg_cert_crl_revoked_at(const cacreg_trust *trust, const cacreg_cert_der *der);

#endif
