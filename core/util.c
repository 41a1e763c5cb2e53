/* Helpers shared inside the core. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

void cacreg_errf(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;

    if (!err || size == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
}
