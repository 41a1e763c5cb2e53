/* Helpers shared inside the core; not part of the public interface. */
#ifndef CACREG_INTERNAL_H
#define CACREG_INTERNAL_H

#include <stddef.h>

/* Formats a message into a caller's error buffer; does nothing if err is NULL. */
void cacreg_errf(char *err, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
