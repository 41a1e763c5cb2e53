/*
 * libFuzzer target: outside text, as a hostile card, portal or file would send
 * it. Input: a flags byte, a columns byte, a buffer-size byte, then the text.
 * Checked with this file's own UTF-8 reader and its own list of what must not
 * reach a terminal, not with core/text.c's.
 */
#define _XOPEN_SOURCE 700 /* wcwidth */
#include <locale.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "text.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Code points that must never be written raw: C1, bidi and other format
 * characters (Unicode category Cf), line and paragraph separators. */
static const uint32_t forbidden[][2] = {
    {0x0080, 0x009F}, {0x00AD, 0x00AD}, {0x0600, 0x0605}, {0x061C, 0x061C},
    {0x06DD, 0x06DD}, {0x070F, 0x070F}, {0x0890, 0x0891}, {0x08E2, 0x08E2},
    {0x180E, 0x180E}, {0x200B, 0x200F}, {0x2028, 0x202E}, {0x2060, 0x2064},
    {0x2066, 0x206F}, {0xFEFF, 0xFEFF}, {0xFFF9, 0xFFFB}, {0x110BD, 0x110BD},
    {0x110CD, 0x110CD}, {0x13430, 0x1343F}, {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A},
    {0xE0001, 0xE0001}, {0xE0020, 0xE007F},
};

/* Whether a NUL-terminated string is well-formed UTF-8 (and, when strict,
 * holds no code point that must not be written raw). */
static bool check_utf8(const char *s, bool strict)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        uint32_t cp;
        size_t len;
        if (*p < 0x80) {
            cp = *p;
            len = 1;
        } else if ((*p & 0xE0) == 0xC0) {
            cp = *p & 0x1Fu;
            len = 2;
        } else if ((*p & 0xF0) == 0xE0) {
            cp = *p & 0x0Fu;
            len = 3;
        } else if ((*p & 0xF8) == 0xF0) {
            cp = *p & 0x07u;
            len = 4;
        } else {
            return false;
        }
        for (size_t k = 1; k < len; k++) {
            if ((p[k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (p[k] & 0x3Fu);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return false;
        if (strict) {
            if (cp < 0x20 || cp == 0x7F)
                return false;
            for (size_t i = 0; i < sizeof forbidden / sizeof forbidden[0]; i++)
                if (cp >= forbidden[i][0] && cp <= forbidden[i][1])
                    return false;
        }
        p += len;
    }
    return true;
}

/* Reads n hex digits; false if one is not. */
static bool hex(const char *s, int n, uint32_t *value)
{
    *value = 0;
    for (int i = 0; i < n; i++) {
        char c = s[i];
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (uint32_t)(c - 'a' + 10);
        else
            return false;
        *value = *value << 4 | d;
    }
    return true;
}

/* Undoes cacreg_text_safe's escapes into out (as large as s); false on an
 * escape it never writes, or one cut short. Returns the length in *len. */
static bool unescape(const char *s, char *out, size_t *len)
{
    size_t n = 0;

    while (*s) {
        uint32_t cp;
        if (*s != '\\') {
            out[n++] = *s++;
            continue;
        }
        switch (s[1]) {
        case '\\': out[n++] = '\\'; s += 2; continue;
        case 't': out[n++] = '\t'; s += 2; continue;
        case 'n': out[n++] = '\n'; s += 2; continue;
        case 'r': out[n++] = '\r'; s += 2; continue;
        case 'e': out[n++] = '\x1b'; s += 2; continue;
        case 'x':
            if (!hex(s + 2, 2, &cp) || (cp >= 0x20 && cp != 0x7F) || cp == 0)
                return false;
            s += 4;
            break;
        case 'u':
            if (!hex(s + 2, 4, &cp) || cp < 0x80)
                return false;
            s += 6;
            break;
        case 'U':
            if (!hex(s + 2, 8, &cp) || cp <= 0xFFFF || cp > 0x10FFFF)
                return false;
            s += 10;
            break;
        default:
            return false;
        }
        if (cp < 0x80) {
            out[n++] = (char)cp;
        } else if (cp < 0x800) {
            out[n++] = (char)(0xC0 | cp >> 6);
            out[n++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out[n++] = (char)(0xE0 | cp >> 12);
            out[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
            out[n++] = (char)(0x80 | (cp & 0x3F));
        } else {
            out[n++] = (char)(0xF0 | cp >> 18);
            out[n++] = (char)(0x80 | (cp >> 12 & 0x3F));
            out[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
            out[n++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    out[n] = '\0';
    *len = n;
    return true;
}

/* fit()'s output is a prefix of s, then perhaps an ellipsis, within columns. */
static void check_fit(const char *s, int columns, unsigned flags, size_t size)
{
    char *out = malloc(size);
    const char *mark = flags & CACREG_TEXT_ASCII ? "..." : "\xE2\x80\xA6";
    size_t len, mark_len = strlen(mark);
    int mark_cols = flags & CACREG_TEXT_ASCII ? 3 : 1, used;

    if (!out)
        __builtin_trap();
    used = cacreg_text_fit(out, size, s, columns, flags);
    len = strlen(out);
    if (used > columns || cacreg_text_width(out) != used || len >= size)
        __builtin_trap();
    /* A cut s ends with the mark whenever the mark fits. */
    if (strcmp(out, s) != 0 && (flags & CACREG_TEXT_ELLIPSIS) && columns >= mark_cols &&
        size - 1 >= mark_len) {
        if (len < mark_len || strcmp(out + len - mark_len, mark) != 0)
            __builtin_trap();
        len -= mark_len;
    }
    if (strncmp(out, s, len) != 0)
        __builtin_trap();
    /* Cut between characters of well-formed text: what follows in s is not
     * a continuation byte, and out is well-formed too. */
    if (check_utf8(s, false) &&
        (((unsigned char)s[len] & 0xC0) == 0x80 || !check_utf8(out, false)))
        __builtin_trap();
    /* Nor between a character and a zero-width mark after it. */
    if (len > 0 && s[len] != '\0' && check_utf8(s, false)) {
        mbstate_t state;
        wchar_t next;
        memset(&state, 0, sizeof state);
        if (mbrtowc(&next, s + len, 4, &state) > 4 || wcwidth(next) == 0)
            __builtin_trap();
    }
    free(out);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (!setlocale(LC_CTYPE, "C.UTF-8"))
        __builtin_trap();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned flags;
    int columns;
    size_t small_size, len, text_len, big_size, n, back_len;
    const char *in;
    char *text, *big, *small, *back, *repaired;

    if (size < 3)
        return 0;
    flags = data[0] & (CACREG_TEXT_ASCII | CACREG_TEXT_SPACES | CACREG_TEXT_ELLIPSIS);
    columns = data[1] % 100;
    small_size = data[2] % 64;
    in = (const char *)data + 3;
    len = size - 3;
    text_len = strnlen(in, len); /* the text ends at a NUL */
    big_size = 4 * len + 1;      /* the most an escape takes: \xHH for a byte */
    text = malloc(len + 1);
    big = malloc(big_size);
    small = malloc(small_size + 1);
    back = malloc(big_size);
    repaired = malloc(3 * len + 1);
    if (!text || !big || !small || !back || !repaired)
        __builtin_trap();
    memcpy(text, in, text_len);
    text[text_len] = '\0';

    /* Whole: valid UTF-8 with nothing a terminal acts on or hides. */
    n = cacreg_text_safe(big, big_size, in, len, flags);
    if (n != strlen(big) || !check_utf8(big, true))
        __builtin_trap();
    if (flags & CACREG_TEXT_ASCII)
        for (const char *p = big; *p; p++)
            if ((unsigned char)*p >= 0x80)
                __builtin_trap();
    /* Every escape reads back; without ASCII's '?' and SPACES' blanks, to the
     * very text when it was valid UTF-8. */
    if (!unescape(big, back, &back_len))
        __builtin_trap();
    if (!(flags & (CACREG_TEXT_ASCII | CACREG_TEXT_SPACES)) && check_utf8(text, false) &&
        (back_len != text_len || memcmp(back, text, text_len) != 0))
        __builtin_trap();

    /* Cut: a prefix of the whole, of whole characters and escapes. */
    if (cacreg_text_safe(small, small_size, in, len, flags) != n)
        __builtin_trap();
    if (small_size > 0) {
        size_t cut = strlen(small);
        if (cut >= small_size || strncmp(small, big, cut) != 0 || !check_utf8(small, true) ||
            !unescape(small, back, &back_len) || (n < small_size && cut != n))
            __builtin_trap();
    }

    /* Fitted, from the safe text and from the raw text alike. */
    check_fit(big, columns, flags, small_size + 1);
    check_fit(big, columns, flags, big_size);
    check_fit(text, columns, flags, len + 1);

    /* Repaired for JSON: valid UTF-8, the text itself when it was. */
    n = cacreg_text_utf8_repair(repaired, 3 * len + 1, in, len);
    if (n != strlen(repaired) || !check_utf8(repaired, false))
        __builtin_trap();
    if (check_utf8(text, false) && strcmp(repaired, text) != 0)
        __builtin_trap();

    free(text);
    free(big);
    free(small);
    free(back);
    free(repaired);
    return 0;
}
