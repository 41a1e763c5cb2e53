/*
 * cacreg: register a CAC with a portal account from a terminal. With no
 * command, the full-screen front end; with a command, a headless one.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "tui.h"
#include "out.h"
#include "version.h"

/* The commands, one cmd-*.c each. */
static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"status", cmd_status},
    {"login", cmd_login},
    {"register", cmd_register},
    {"reset", cmd_reset},
    {"ssh", cmd_ssh},
};

static void usage(FILE *f)
{
    out_printf(f, "usage: cacreg [--mono] [--ascii] [--kiosk] [options]  the full-screen front end\n"
               "       cacreg status [options]       the readers, the card and its certificates\n"
               "       cacreg login --cac [options]  log in with the CAC, registering it\n"
               "       cacreg register --user NAME   password login, then register the CAC\n"
               "       cacreg reset --user NAME      ask for a new portal password\n"
               "       cacreg ssh [ssh options] [user@]host [-- cacreg arguments]\n"
               "                                     cacreg on host, the card in this reader\n"
               "       cacreg --version\n"
               "Run 'cacreg COMMAND --help' for a command's options.\n");
}

/*
 * Freed memory overwritten at once (glibc's perturb byte) and never parked in
 * the per-thread cache, which skips the perturb: the copies libraries make of
 * a PIN or a password (OpenSC's APDU log buffer, libcurl's request, libp11's
 * re-login copy) are gone when the library frees them. glibc reads these
 * tunables only at start, so the program starts itself again once, with them.
 */
static void malloc_hygiene(int argc, char **argv)
{
    static const char want[] = "glibc.malloc.perturb=165:glibc.malloc.tcache_count=0";
    static const char *const no_secrets[] = {"status", "reset", "ssh", "--version", "--help", "-h"};
    const char *have = getenv("GLIBC_TUNABLES");
    char tunables[1024];

    for (size_t i = 0; argc >= 2 && i < sizeof no_secrets / sizeof no_secrets[0]; i++)
        if (strcmp(argv[1], no_secrets[i]) == 0)
            return; /* nothing secret is typed: not worth the second start (~50 ms) */
    if (have && strstr(have, want))
        return;
    if ((size_t)snprintf(tunables, sizeof tunables, "%s%s%s", have ? have : "", have ? ":" : "",
                         want) >= sizeof tunables ||
        setenv("GLIBC_TUNABLES", tunables, 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* no /proc: go on without them; the wipes cacreg does itself still happen */
}

int main(int argc, char **argv)
{
    malloc_hygiene(argc, argv);
    /* p11-kit-client writes to its socket without MSG_NOSIGNAL: a forwarding that drops
     * (cacreg ssh) must be an error from the card call, not the end of the process. */
    signal(SIGPIPE, SIG_IGN);
    if (cacreg_harden_process() != CACREG_OK) {
        out_printf(stderr, "cacreg: cannot protect this process's memory from core dumps\n");
        return 5;
    }
    for (size_t i = 0; argc >= 2 && i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        version_print(stdout);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 2 || argv[1][0] == '-')
        return tui_main(argc, argv);
    usage(stderr);
    return 4;
}
