/* `cacreg --version`: the program's version and the libraries it runs with. */
#ifndef VERSION_H
#define VERSION_H

#include <stdio.h>

/* Prints the version, then one line per library, as curl -V does. */
void version_print(FILE *f);

#endif
