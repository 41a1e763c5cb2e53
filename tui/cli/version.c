/*
 * `cacreg --version`: the version (from the VERSION file, through the
 * Makefile) and the libraries this process runs with. Where a library can
 * say its version at run time it is asked; libp11, pcsc-lite and p11-kit
 * cannot, so the versions they had at build time are printed, marked so.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <ncurses.h>
#include <openssl/crypto.h>

#include "out.h"
#include "version.h"

#ifndef CACREG_VERSION
#define CACREG_VERSION "unknown"
#endif
#ifndef CACREG_LIBP11_VERSION
#define CACREG_LIBP11_VERSION "unknown"
#endif
#ifndef CACREG_PCSCLITE_VERSION
#define CACREG_PCSCLITE_VERSION "unknown"
#endif
#ifndef CACREG_P11KIT_VERSION
#define CACREG_P11KIT_VERSION "unknown"
#endif

void version_print(FILE *f)
{
    const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);

    out_printf(f, "cacreg %s\n", CACREG_VERSION);
    out_printf(f, "OpenSSL:   %s\n", OpenSSL_version(OPENSSL_VERSION));
    out_printf(f, "libcurl:   %s (%s)\n", curl->version,
               curl->ssl_version ? curl->ssl_version : "no TLS");
    out_printf(f, "libp11:    %s (built with)\n", CACREG_LIBP11_VERSION);
    out_printf(f, "pcsc-lite: %s (built with)\n", CACREG_PCSCLITE_VERSION);
    out_printf(f, "p11-kit:   %s (built with)\n", CACREG_P11KIT_VERSION);
    out_printf(f, "ncurses:   %s\n", curses_version());
    out_printf(f, "jansson:   %s\n", jansson_version_str());
}
