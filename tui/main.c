/*
 * cacreg: register a CAC with a portal account from a terminal. With no
 * command, the full-screen front end; with a command, a headless one.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "tui.h"

/* The commands, one cmd-*.c each. */
static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"status", cmd_status},
    {"login", cmd_login},
    {"register", cmd_register},
    {"reset", cmd_reset},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: cacreg [--mono] [--ascii] [--kiosk] [options]  the full-screen front end\n"
               "       cacreg status [options]       the readers, the card and its certificates\n"
               "       cacreg login --cac [options]  log in with the CAC, registering it\n"
               "       cacreg register --user NAME   password login, then register the CAC\n"
               "       cacreg reset --user NAME      ask for a new portal password\n"
               "       cacreg --version\n"
               "Run 'cacreg COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (cacreg_harden_process() != CACREG_OK) {
        fprintf(stderr, "cacreg: cannot protect this process's memory from core dumps\n");
        return 5;
    }
    for (size_t i = 0; argc >= 2 && i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
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
