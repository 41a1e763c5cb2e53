/* Helpers shared inside the core; not part of the public interface. */
#ifndef CACREG_INTERNAL_H
#define CACREG_INTERNAL_H

#include <stddef.h>

/* Formats a message into a caller's error buffer; does nothing if err is NULL. */
void cacreg_errf(char *err, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#include "cacreg.h"

/* The portal requests (core/portal.c). */
enum request_kind { R_CAC_LOGIN, R_PASSWORD_LOGIN, R_GET_REG, R_CLEAR_REG, R_REGISTER, R_LOGOUT,
                    R_RESET };

/*
 * Judges one HTTP answer to a request of kind against docs/portal-api.md and
 * fills r (outcome, fields, or what is wrong); a login's session token goes
 * into session. Pure: no I/O, for the client, the unit tests and the fuzzer.
 */
void cacreg_portal_parse(enum request_kind kind, long http_status, const char *content_type,
                         const char *body, size_t len, cacreg_secret *session,
                         cacreg_portal_result *r);

#endif
