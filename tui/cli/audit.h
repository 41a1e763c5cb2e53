/* The kiosk's audit trail in the system log (tui/audit.c). */
#ifndef AUDIT_H
#define AUDIT_H

#include <stdbool.h>

#include "cacreg.h"

/* Opens the log; identity: lines name the card's holder and EDIPI. */
void audit_open(bool identity);

/* The person's result: at DONE (registered, replaced, unchanged) or FAILED (why). */
void audit_result(const cacreg_flow_state *s);

/* The registered information was cleared. */
void audit_cleared(void);

/* A line of the program's own words (its values ours, not outside text). */
void audit_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
