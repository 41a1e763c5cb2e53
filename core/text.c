/* Outside text made safe for a terminal and measured in columns (see text.h). */
#define _XOPEN_SOURCE 700 /* wcwidth */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <wchar.h>

#include "text.h"

/* What decode() says of an ill-formed sequence: not a code point. */
#define TEXT_BAD UINT32_MAX

/* U+FFFD REPLACEMENT CHARACTER and U+2026 HORIZONTAL ELLIPSIS in UTF-8. */
static const char replacement[] = "\xEF\xBF\xBD";
static const char ellipsis[] = "\xE2\x80\xA6";

/* Code points shown as \u or \U escapes, sorted (text.h says which and why). */
static const struct {
    uint32_t first, last;
} invisible[] = {
    {0x0080, 0x009F},   /* C1 controls */
    {0x00AD, 0x00AD},   /* soft hyphen */
    {0x034F, 0x034F},   /* combining grapheme joiner */
    {0x0600, 0x0605},   /* Arabic number signs (Cf) */
    {0x061C, 0x061C},   /* Arabic letter mark */
    {0x06DD, 0x06DD},   /* Arabic end of ayah */
    {0x070F, 0x070F},   /* Syriac abbreviation mark */
    {0x0890, 0x0891},   /* Arabic pound and piastre marks above */
    {0x08E2, 0x08E2},   /* Arabic disputed end of ayah */
    {0x115F, 0x1160},   /* Hangul fillers */
    {0x17B4, 0x17B5},   /* Khmer inherent vowels */
    {0x180E, 0x180E},   /* Mongolian vowel separator */
    {0x200B, 0x200F},   /* zero-width space, (non-)joiner, LRM, RLM */
    {0x2028, 0x202E},   /* line and paragraph separators, bidi embeddings */
    {0x2060, 0x206F},   /* word joiner, invisible operators, bidi isolates, deprecated */
    {0x3164, 0x3164},   /* Hangul filler */
    {0xFDD0, 0xFDEF},   /* noncharacters */
    {0xFEFF, 0xFEFF},   /* BOM, zero-width no-break space */
    {0xFFA0, 0xFFA0},   /* halfwidth Hangul filler */
    {0xFFF0, 0xFFFB},   /* reserved, interlinear annotation */
    {0x110BD, 0x110BD}, /* Kaithi number sign */
    {0x110CD, 0x110CD}, /* Kaithi number sign above */
    {0x13430, 0x1343F}, /* Egyptian hieroglyph format controls */
    {0x1BCA0, 0x1BCA3}, /* shorthand format controls */
    {0x1D173, 0x1D17A}, /* musical symbol format controls */
    {0xE0000, 0xE00FF}, /* tags (invisible ASCII) */
    {0xE01F0, 0xE0FFF}, /* reserved default-ignorable */
};

/* Whether a code point is one the terminal would act on or show as nothing. */
static bool is_invisible(uint32_t cp)
{
    size_t lo = 0, hi = sizeof invisible / sizeof invisible[0];

    if ((cp & 0xFFFE) == 0xFFFE)
        return true; /* U+xFFFE and U+xFFFF in every plane */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < invisible[mid].first)
            hi = mid;
        else if (cp > invisible[mid].last)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

/*
 * Reads one UTF-8 character from at most avail (>= 1) bytes: returns its
 * length and sets *cp, or for an ill-formed sequence returns the length of
 * its maximal valid prefix (at least 1) and sets *cp to TEXT_BAD. A NUL is
 * never a continuation byte, so this never reads past a string's end.
 */
static size_t decode(const unsigned char *p, size_t avail, uint32_t *cp)
{
    unsigned char lead = p[0], lo = 0x80, hi = 0xBF;
    size_t more;
    uint32_t value;

    if (lead < 0x80) {
        *cp = lead;
        return 1;
    }
    if (lead >= 0xC2 && lead <= 0xDF) {
        more = 1;
        value = lead & 0x1Fu;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        more = 2;
        value = lead & 0x0Fu;
        if (lead == 0xE0)
            lo = 0xA0; /* no overlong forms */
        else if (lead == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        more = 3;
        value = lead & 0x07u;
        if (lead == 0xF0)
            lo = 0x90; /* no overlong forms */
        else if (lead == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        *cp = TEXT_BAD; /* a continuation byte, C0, C1 or F5-FF */
        return 1;
    }
    for (size_t k = 1; k <= more; k++) {
        if (k >= avail || p[k] < lo || p[k] > hi) {
            *cp = TEXT_BAD;
            return k;
        }
        value = value << 6 | (p[k] & 0x3Fu);
        lo = 0x80;
        hi = 0xBF;
    }
    *cp = value;
    return more + 1;
}

/* Where safe() and utf8_repair() write: all or nothing per piece, and once a
 * piece did not fit, nothing after it, while still counting what was needed. */
struct sink {
    char *out;
    size_t size;
    size_t written;
    size_t needed;
    bool full;
};

/* Appends one piece (a character or an escape) whole, or stops the output. */
static void put(struct sink *k, const char *piece, size_t len)
{
    if (!k->full && len < k->size - k->written) {
        memcpy(k->out + k->written, piece, len);
        k->written += len;
    } else {
        k->full = true;
    }
    k->needed = k->needed > SIZE_MAX - len ? SIZE_MAX : k->needed + len;
}

/* Terminates the output and returns what the whole text needed. */
static size_t finish(const struct sink *k)
{
    if (k->size > 0)
        k->out[k->written] = '\0';
    return k->needed;
}

/* Writes an escape: a backslash, a letter, then digits lower-case hex digits
 * of value; returns its length. */
static size_t escape(char *buf, char letter, uint32_t value, int digits)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 2;

    buf[0] = '\\';
    buf[1] = letter;
    for (int shift = 4 * (digits - 1); shift >= 0; shift -= 4)
        buf[n++] = hex[(value >> shift) & 0xFu];
    return n;
}

size_t cacreg_text_safe(char *out, size_t out_size, const char *in, size_t in_len,
                        unsigned flags)
{
    struct sink k = {out, out_size, 0, 0, false};
    const unsigned char *p = (const unsigned char *)in;
    bool ascii = flags & CACREG_TEXT_ASCII, spaces = flags & CACREG_TEXT_SPACES;
    size_t i = 0;

    if (!out)
        k.size = 0;
    while (p && i < in_len && p[i] != '\0') {
        char piece[16];
        size_t len;
        uint32_t cp;
        size_t n = decode(p + i, in_len - i, &cp);

        if (cp == TEXT_BAD) {
            put(&k, ascii ? "?" : replacement, ascii ? 1 : 3);
        } else if (cp == '\\') {
            put(&k, "\\\\", 2);
        } else if (spaces && (cp == '\t' || cp == '\n' || cp == '\r')) {
            put(&k, " ", 1);
        } else if (cp == '\t') {
            put(&k, "\\t", 2);
        } else if (cp == '\n') {
            put(&k, "\\n", 2);
        } else if (cp == '\r') {
            put(&k, "\\r", 2);
        } else if (cp == 0x1B) {
            put(&k, "\\e", 2);
        } else if (cp < 0x20 || cp == 0x7F) {
            len = escape(piece, 'x', cp, 2);
            put(&k, piece, len);
        } else if (is_invisible(cp)) {
            len = cp > 0xFFFF ? escape(piece, 'U', cp, 8) : escape(piece, 'u', cp, 4);
            put(&k, piece, len);
        } else if (ascii && cp >= 0x80) {
            put(&k, "?", 1);
        } else {
            put(&k, (const char *)p + i, n);
        }
        i += n;
    }
    return finish(&k);
}

size_t cacreg_text_utf8_repair(char *out, size_t out_size, const char *in, size_t in_len)
{
    struct sink k = {out, out_size, 0, 0, false};
    const unsigned char *p = (const unsigned char *)in;
    size_t i = 0;

    if (!out)
        k.size = 0;
    while (p && i < in_len && p[i] != '\0') {
        uint32_t cp;
        size_t n = decode(p + i, in_len - i, &cp);

        if (cp == TEXT_BAD)
            put(&k, replacement, 3);
        else
            put(&k, (const char *)p + i, n);
        i += n;
    }
    return finish(&k);
}

/* Columns one decoded character takes: wcwidth's, 1 when it has none. */
static int char_width(uint32_t cp)
{
    int w;

    if (cp == TEXT_BAD)
        return 1; /* shown as U+FFFD or '?' */
    w = wcwidth((wchar_t)cp);
    return w < 0 ? 1 : w;
}

int cacreg_text_width(const char *s)
{
    return cacreg_text_width_n(s, s ? strlen(s) : 0);
}

int cacreg_text_width_n(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    int columns = 0;

    while (i < len) {
        uint32_t cp;
        int w;

        i += decode(p + i, len - i, &cp);
        w = char_width(cp);
        if (columns > INT_MAX - w)
            return INT_MAX;
        columns += w;
    }
    return columns;
}

/*
 * How many bytes of s (len bytes) make whole characters within columns and
 * bytes: stops before the character that would go over, and before the base
 * of a zero-width mark that would; *used gets their columns. Returns len when
 * all of s fits.
 */
static size_t prefix(const unsigned char *p, size_t len, int columns, size_t bytes, int *used)
{
    size_t i = 0, keep = 0;
    int cols = 0, keep_cols = 0;

    while (i < len) {
        uint32_t cp;
        size_t n = decode(p + i, len - i, &cp);
        int w = char_width(cp);

        if (w > 0) { /* a new character starts: all before it is whole */
            keep = i;
            keep_cols = cols;
            if (w > columns - cols)
                break;
        }
        if (n > bytes - i)
            break;
        cols += w;
        i += n;
    }
    if (i == len) {
        keep = len;
        keep_cols = cols;
    }
    *used = keep_cols;
    return keep;
}

int cacreg_text_fit(char *out, size_t out_size, const char *s, int columns, unsigned flags)
{
    const unsigned char *p;
    size_t len, keep;
    const char *mark = flags & CACREG_TEXT_ASCII ? "..." : ellipsis;
    size_t mark_len = strlen(mark);
    int mark_cols = flags & CACREG_TEXT_ASCII ? 3 : 1, used = 0;

    if (!out || out_size == 0)
        return 0;
    if (!s)
        s = "";
    if (columns < 0)
        columns = 0;
    p = (const unsigned char *)s;
    len = strlen(s);
    keep = prefix(p, len, columns, out_size - 1, &used);
    if (keep < len && (flags & CACREG_TEXT_ELLIPSIS) && columns >= mark_cols &&
        out_size - 1 >= mark_len) {
        keep = prefix(p, len, columns - mark_cols, out_size - 1 - mark_len, &used);
        memcpy(out, s, keep);
        memcpy(out + keep, mark, mark_len);
        out[keep + mark_len] = '\0';
        return used + mark_cols;
    }
    memcpy(out, s, keep);
    out[keep] = '\0';
    return used;
}

void cacreg_text_repair_in_place(char *s, size_t size)
{
    char copy[4096];
    size_t len = strnlen(s, size);

    if (len >= sizeof copy)
        len = sizeof copy - 1;
    memcpy(copy, s, len);
    copy[len] = '\0';
    cacreg_text_utf8_repair(s, size, copy, len);
}
