/* libFuzzer target: a portal's answer body, for every request kind, as 200 and as 403. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cacreg_secret *session;
    cacreg_portal_result r;

    if (!session)
        session = cacreg_secret_new();
    for (int kind = CACREG_REQ_CAC_LOGIN; kind < CACREG_REQ_COUNT; kind++) {
        for (int i = 0; i < 2; i++) {
            memset(&r, 0, sizeof r);
            cacreg_portal_parse((cacreg_request)kind, i ? 403 : 200, "application/json",
                                (const char *)data, size, session, &r);
            /* Every field stays a terminated string; every failure says why. */
            if (strnlen(r.message, sizeof r.message) == sizeof r.message ||
                strnlen(r.username, sizeof r.username) == sizeof r.username ||
                strnlen(r.cert_subject, sizeof r.cert_subject) == sizeof r.cert_subject)
                __builtin_trap();
            if (r.err == CACREG_ERR_BAD_ANSWER && !r.message[0])
                __builtin_trap();
        }
    }
    return 0;
}
