/* libFuzzer target: configuration text, as a malformed or hostile file would be. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cacreg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cacreg_config cfg;
    char err[256];

    cacreg_config_defaults(&cfg);
    if (cacreg_config_parse(&cfg, (const char *)data, size, "fuzz", err, sizeof err) == CACREG_OK) {
        /* Whatever parsed is terminated and within its field. */
        if (strnlen(cfg.portal_url, sizeof cfg.portal_url) == sizeof cfg.portal_url ||
            strnlen(cfg.reader_filter, sizeof cfg.reader_filter) == sizeof cfg.reader_filter)
            __builtin_trap();
    } else if (strnlen(err, sizeof err) == 0) {
        __builtin_trap(); /* every refusal says why */
    }
    return 0;
}
