/*
 * The audit trail: one key=value line per event to the system log (authpriv,
 * ident cacreg-portald). Values are quoted when they need it, with every
 * control character escaped, so one event is one line whatever a certificate
 * says. Never a password, a token or anything typed with a PIN.
 */
#ifndef PORTAL_AUDIT_H
#define PORTAL_AUDIT_H

#include <stddef.h>

#include "cacreg.h"

typedef struct audit_line {
    char text[2048];
    size_t len;
} audit_line;

/* Opens the system log for the daemon's lines; before it, lines go nowhere (the fuzzer). */
void audit_open(void);

/* Starts a line with event=NAME and, when there is one, addr=ADDRESS. */
void audit_begin(audit_line *l, const char *event, const char *addr);

/* Adds key=value (skipped when value is NULL). */
void audit_add(audit_line *l, const char *key, const char *value);

/* Adds the certificate's EDIPI, subject, issuer, serial and SHA-256. */
void audit_add_cert(audit_line *l, const cacreg_cert *cert);

/* Sends the line, at LOG_NOTICE, or LOG_WARNING when warn. */
void audit_send(const audit_line *l, int warn);

#endif
