/* Whether this machine knows the terminal: its own file, for term.h's macros stay here. */
#include <stdbool.h>
#include <unistd.h>

#include "tui.h"

#include <term.h> /* after tui.h: its macros (lines, columns...) would rename tui.h's fields */

bool tui_term_known(void)
{
    int found = 0;

    /* Asked before newterm(), which leaks its half-made screen when TERM is unknown. */
    if (setupterm(NULL, STDOUT_FILENO, &found) != OK)
        return false;
    del_curterm(cur_term);
    return true;
}
