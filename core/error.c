/* Error codes into words, and the process hardening every front end runs. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "cacreg.h"

const char *cacreg_strerror(cacreg_err err)
{
    switch (err) {
    case CACREG_OK:
        return "Success.";
    case CACREG_ERR_NOMEM:
        return "Out of memory, or memory could not be locked.";
    case CACREG_ERR_TOO_LONG:
        return "That is longer than this field allows.";
    case CACREG_ERR_INVALID:
        return "That input is not in the expected form.";
    case CACREG_ERR_SYSTEM:
        return "A system call failed.";
    case CACREG_ERR_NOT_FOUND:
        return "Not found.";
    case CACREG_ERR_CONFIG:
        return "The configuration is not valid.";
    case CACREG_ERR_CERT:
        return "The certificate cannot be read.";
    case CACREG_ERR_NO_CARD:
        return "No card, or the card was removed.";
    case CACREG_ERR_CARD:
        return "The card or its module failed.";
    case CACREG_ERR_PIN_WRONG:
        return "Wrong PIN.";
    case CACREG_ERR_PIN_LOCKED:
        return "The PIN is locked.";
    case CACREG_ERR_PIN_FORMAT:
        return "A CAC PIN is 6 to 8 digits.";
    case CACREG_ERR_NO_KEY:
        return "The identity certificate's key is not on the card.";
    case CACREG_ERR_TIMEOUT:
        return "The card did not answer in time.";
    case CACREG_ERR_NOT_CAC:
        return "The card is not one this program knows (not a CAC).";
    case CACREG_ERR_KEY_UNSUPPORTED:
        return "The card's identity key cannot be used by the smart-card software here.";
    case CACREG_ERR_REFUSED:
        return "The portal refused.";
    case CACREG_ERR_UNREACHABLE:
        return "The portal cannot be reached.";
    case CACREG_ERR_TLS:
        return "The secure connection to the portal failed.";
    case CACREG_ERR_BAD_ANSWER:
        return "The portal's answer cannot be used.";
    case CACREG_ERR_CANCELLED:
        return "Cancelled.";
    }
    return "Unknown error.";
}

cacreg_err cacreg_harden_process(void)
{
    struct rlimit none = {0, 0};

    if (setrlimit(RLIMIT_CORE, &none) != 0)
        return CACREG_ERR_SYSTEM;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return CACREG_ERR_SYSTEM;
    return CACREG_OK;
}

cacreg_err cacreg_clean_environment(void)
{
    static const char *const kept[] = {"TERM", "LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES",
                                       "LANGUAGE", "TZ"};
    char values[sizeof kept / sizeof kept[0]][256];
    bool have[sizeof kept / sizeof kept[0]];
    const size_t n = sizeof kept / sizeof kept[0];

    for (size_t i = 0; i < n; i++) {
        const char *v = getenv(kept[i]);
        have[i] = v && strlen(v) < sizeof values[i];
        if (have[i])
            snprintf(values[i], sizeof values[i], "%s", v);
    }
    if (clearenv() != 0)
        return CACREG_ERR_SYSTEM;
    if (setenv("PATH", "/usr/bin:/bin", 1) != 0)
        return CACREG_ERR_SYSTEM;
    for (size_t i = 0; i < n; i++)
        if (have[i] && setenv(kept[i], values[i], 1) != 0)
            return CACREG_ERR_SYSTEM;
    return CACREG_OK;
}
