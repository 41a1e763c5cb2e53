/* Events: fixed-size records from the core's threads to the front end's loop. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "parts.h"

cacreg_err cacreg_event_read(int fd, cacreg_event *ev)
{
    ssize_t n;

    do {
        n = read(fd, ev, sizeof *ev);
    } while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof *ev)
        return CACREG_OK;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return CACREG_ERR_NOT_FOUND;
    return CACREG_ERR_SYSTEM;
}

cacreg_err cacreg_event_pipe(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) < 0)
        return CACREG_ERR_SYSTEM;
    if (fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0) {
        close(fds[0]);
        close(fds[1]);
        return CACREG_ERR_SYSTEM;
    }
    return CACREG_OK;
}
