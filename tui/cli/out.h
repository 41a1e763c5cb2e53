/* The cacreg program's one way to write words: outside text made safe, widths in columns. */
#ifndef OUT_H
#define OUT_H

#include <stdio.h>

/*
 * printf(3) for the program's words: every %s argument is made safe for a
 * terminal (core/text.c) and its width and precision count columns. The
 * format is ours; %d, %u, %x, %c, %f with l, ll or z as printf has them,
 * no '*' but for %s.
 */
void out_printf(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes the program's own text as it is (help, several lines); never outside text. */
void out_words(FILE *f, const char *ours);

#endif
