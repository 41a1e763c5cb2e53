/* Error codes into words, and the process hardening every front end runs. */
#define _GNU_SOURCE
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
