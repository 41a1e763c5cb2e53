/* The headless commands of the cacreg program. */
#ifndef CLI_H
#define CLI_H

/* `cacreg status`; returns the exit status. */
int cli_status(int argc, char **argv);

#endif
