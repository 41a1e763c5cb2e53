/* A client of the bench's control socket, for C tests. */
#ifndef BENCHCTL_H
#define BENCHCTL_H

#include <stddef.h>

/*
 * Sends one command (printf-style) to the bench named by $CACREG_BENCH and
 * puts its one-line reply, without the newline, into reply. Returns 0 when the
 * reply starts with "ok", -1 otherwise (reply says why).
 */
int bench_cmd(char *reply, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reads one counter ("apdus", "verifies", "ins_20", ...) of the current card
 * session; -1 when the bench cannot be asked. Absent ins_XX counters are 0. */
long bench_counter(const char *name);

#endif
