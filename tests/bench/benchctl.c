/* A client of the bench's control socket, for C tests. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "benchctl.h"

int bench_cmd(char *reply, size_t size, const char *fmt, ...)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    const char *dir = getenv("CACREG_BENCH");
    char line[512];
    size_t got = 0;
    va_list ap;
    int fd, n;

    reply[0] = '\0';
    if (!dir || (size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/ctl.sock", dir) >=
                    sizeof sa.sun_path) {
        snprintf(reply, size, "err CACREG_BENCH is not set to a bench");
        return -1;
    }
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof line - 1) {
        snprintf(reply, size, "err command too long");
        return -1;
    }
    line[n++] = '\n';
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        write(fd, line, (size_t)n) != n) {
        snprintf(reply, size, "err cannot reach the bench");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    while (got < size - 1) {
        ssize_t r = read(fd, reply + got, size - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (reply[got - 1] == '\n')
            break;
    }
    close(fd);
    reply[got] = '\0';
    if (got > 0 && reply[got - 1] == '\n')
        reply[got - 1] = '\0';
    return strncmp(reply, "ok", 2) == 0 ? 0 : -1;
}

long bench_counter(const char *name)
{
    char reply[4096], key[64];
    const char *p;

    if (bench_cmd(reply, sizeof reply, "counters") < 0)
        return -1;
    snprintf(key, sizeof key, " %s=", name);
    p = strstr(reply, key);
    if (!p)
        return strncmp(name, "ins_", 4) == 0 ? 0 : -1;
    return strtol(p + strlen(key), NULL, 10);
}
