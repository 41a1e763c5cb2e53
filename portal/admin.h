/* Administration of the embedded store: accounts and registrations, from the command line. */
#ifndef PORTAL_ADMIN_H
#define PORTAL_ADMIN_H

#include "config.h"

/* Exit statuses of the commands. */
enum {
    ADMIN_OK = 0,
    ADMIN_FAILED = 1, /* the command could not be done: stderr says why */
    ADMIN_USAGE = 2,  /* the command line is wrong */
};

/* Runs "account ..." or "registration ..." (argv[0] is the noun); the exit status. */
int admin_run(const portald_config *cfg, int argc, char **argv);

/* The commands' usage lines. */
extern const char admin_usage[];

#endif
