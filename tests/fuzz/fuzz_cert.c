/* libFuzzer target: certificate bytes, as a card or a server could hand them over. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "parts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cacreg_cert cert;
    char err[256];

    if (cacreg_cert_parse(&cert, data, size, err, sizeof err) != CACREG_OK)
        return 0;
    /* Every field is a terminated string, and the choice is in range. */
    if (strnlen(cert.holder, sizeof cert.holder) == sizeof cert.holder ||
        strnlen(cert.subject, sizeof cert.subject) == sizeof cert.subject ||
        strnlen(cert.edipi, sizeof cert.edipi) == sizeof cert.edipi)
        __builtin_trap();
    if (cacreg_cert_choose(&cert, 1) > 1)
        __builtin_trap();
    (void)cacreg_cert_why_not(&cert);
    (void)cacreg_cert_days_left(&cert, 0);
    return 0;
}
