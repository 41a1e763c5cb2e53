/*
 * cacreg: register a CAC with a portal account from a terminal. With no
 * command, the full-screen front end; with a command, a headless one.
 */
#include <stdio.h>
#include <string.h>

#include "cacreg.h"
#include "cli.h"
#include "tui.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: cacreg [--mono] [--ascii] [--kiosk] [options]  the full-screen front end\n"
               "       cacreg status [options]       the readers, the card and its certificates\n"
               "       cacreg login --cac [options]  log in with the CAC, registering it\n"
               "       cacreg register --user NAME   password login, then register the CAC\n"
               "       cacreg reset --user NAME      ask for a new portal password\n"
               "       cacreg --version\n"
               "Run 'cacreg status --help' for its options.\n");
}

int main(int argc, char **argv)
{
    if (cacreg_harden_process() != CACREG_OK) {
        fprintf(stderr, "cacreg: cannot protect this process's memory from core dumps\n");
        return 5;
    }
    if (argc >= 2 && strcmp(argv[1], "status") == 0)
        return cli_status(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "login") == 0)
        return cli_login(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "register") == 0)
        return cli_register(argc - 1, argv + 1, false);
    if (argc >= 2 && strcmp(argv[1], "reset") == 0)
        return cli_register(argc - 1, argv + 1, true);
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("cacreg 0.1\n");
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
