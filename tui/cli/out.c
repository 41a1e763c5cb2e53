/*
 * The one way the cacreg program writes words to a stream: out_printf(). Every
 * %s argument is taken for outside text (a card's name, a portal's message, a
 * file's path) and made safe for a terminal with core/text.c before it is
 * written: controls and escape sequences, bidi and invisible characters shown
 * as visible escapes, invalid UTF-8 replaced, ASCII only outside a UTF-8
 * locale. Its width and precision count columns, not bytes, and cut between
 * characters. `make lint` checks that nothing else in tui/ prints.
 */
#define _GNU_SOURCE
#include <langinfo.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "out.h"
#include "text.h"

/* Outside a UTF-8 locale only ASCII is written. */
static unsigned text_flags(void)
{
    const char *codeset = nl_langinfo(CODESET);

    return codeset && strcmp(codeset, "UTF-8") == 0 ? 0 : CACREG_TEXT_ASCII;
}

/* One %s: made safe, cut to prec columns, padded to width columns. */
static void put_text(FILE *f, const char *arg, int width, int prec, bool left)
{
    char safe[8192], cut[8192];
    const char *text = safe;
    int cols, pad;

    cacreg_text_safe(safe, sizeof safe, arg ? arg : "(null)", arg ? strlen(arg) : 6, text_flags());
    if (prec >= 0) {
        cacreg_text_fit(cut, sizeof cut, safe, prec, text_flags());
        text = cut;
    }
    cols = cacreg_text_width(text);
    pad = width > cols ? width - cols : 0;
    if (!left)
        fprintf(f, "%*s", pad, "");
    fputs(text, f);
    if (left)
        fprintf(f, "%*s", pad, "");
}

/* Reads a number in a conversion (width or precision); *p moves past it. */
static int number(const char **p, va_list *ap)
{
    int n = 0;

    if (**p == '*') {
        (*p)++;
        return va_arg(*ap, int);
    }
    while (**p >= '0' && **p <= '9')
        n = n * 10 + (*(*p)++ - '0');
    return n;
}

/* One conversion other than %s, formatted by the C library from its own spec (taken
 * from out_printf's format, which is a literal of ours; no '*' in it). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void put_number(FILE *f, const char *spec, size_t len, char conv, const char *mod,
                       va_list *ap)
{
    char fmt[32];

    if (len >= sizeof fmt)
        return;
    memcpy(fmt, spec, len);
    fmt[len] = '\0';
    if (strchr("di", conv))
        fprintf(f, fmt, !strcmp(mod, "ll") ? va_arg(*ap, long long)
                        : !strcmp(mod, "l") || !strcmp(mod, "z") ? (long long)va_arg(*ap, long)
                                                                 : (long long)va_arg(*ap, int));
    else if (strchr("uxXo", conv))
        fprintf(f, fmt, !strcmp(mod, "ll") ? va_arg(*ap, unsigned long long)
                        : !strcmp(mod, "l") || !strcmp(mod, "z")
                            ? (unsigned long long)va_arg(*ap, unsigned long)
                            : (unsigned long long)va_arg(*ap, unsigned));
    else if (conv == 'c')
        fputc(va_arg(*ap, int), f);
    else if (strchr("feEgG", conv))
        fprintf(f, fmt, va_arg(*ap, double));
}
#pragma GCC diagnostic pop

void out_printf(FILE *f, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    for (const char *p = fmt; *p;) {
        const char *spec = p, *next = strchr(p, '%');
        char mod[3] = "";
        int width = -1, prec = -1;
        bool left = false;
        char conv;
        size_t m = 0;

        if (*p != '%') { /* our own words, as they are */
            size_t n = next ? (size_t)(next - p) : strlen(p);
            fwrite(p, 1, n, f);
            p += n;
            continue;
        }
        for (p++; *p && strchr("-+ #0", *p); p++)
            left = left || *p == '-';
        if ((*p >= '0' && *p <= '9') || *p == '*')
            width = number(&p, &ap);
        if (*p == '.') {
            p++;
            prec = number(&p, &ap);
        }
        while (*p && strchr("hlz", *p) && m + 1 < sizeof mod)
            mod[m++] = *p++;
        mod[m] = '\0';
        conv = *p ? *p++ : '\0';
        if (conv == 's')
            put_text(f, va_arg(ap, const char *), width, prec, left);
        else if (conv == '%')
            fputc('%', f);
        else if (conv && strchr("diuxXocfeEgG", conv))
            put_number(f, spec, (size_t)(p - spec), conv, mod, &ap);
    }
    va_end(ap);
}

void out_words(FILE *f, const char *ours)
{
    fputs(ours, f);
}
