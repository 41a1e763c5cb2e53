/*
 * Outside text made safe for a terminal and measured in columns.
 *
 * Every string that comes from a card, the portal or a file goes through
 * cacreg_text_safe() before it is shown, on every output path (the
 * full-screen front end, the headless commands, --watch), as OpenBSD's tools
 * pass text through vis(3) before printing it. JSON output goes through
 * cacreg_text_utf8_repair() instead, which keeps controls (JSON escapes them)
 * but guarantees valid UTF-8.
 *
 * Buffers: the caller owns every buffer, in and out; nothing here allocates,
 * keeps a pointer or prints. Output is always NUL-terminated when out_size > 0
 * and is never cut inside a UTF-8 sequence or inside an escape.
 *
 * Input: in is read up to in_len bytes or its first NUL byte, whichever comes
 * first, so a fixed-size field that may lack its NUL can be passed with its size.
 * UTF-8 is decoded here, strictly (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF), whatever the process locale. Each ill-formed
 * sequence (its maximal valid prefix, as Unicode recommends) becomes one U+FFFD.
 *
 * Escapes written by cacreg_text_safe(), all printable ASCII:
 *   \\          a backslash (doubled, so the escapes read back unambiguously)
 *   \t \n \r \e tab, line feed, carriage return, escape (0x1b)
 *   \xHH        any other C0 control (0x01-0x1f) and DEL (0x7f)
 *   \uHHHH      C1 controls (U+0080-U+009F); bidi controls (U+061C, U+200E,
 *   \UHHHHHHHH  U+200F, U+202A-U+202E, U+2066-U+2069); every other format
 *               character (category Cf: soft hyphen, zero-width space and
 *               joiners, word joiner, BOM, tags U+E0000-U+E007F, ...); line
 *               and paragraph separators (U+2028, U+2029); the other invisible
 *               default-ignorable characters (U+034F, U+115F, U+1160, U+17B4,
 *               U+17B5, U+3164, U+FFA0, reserved U+2065, U+FFF0-U+FFF8,
 *               U+E0080-U+E00FF, U+E01F0-U+E0FFF); noncharacters (U+FDD0-U+FDEF,
 *               U+xFFFE, U+xFFFF). Lower-case hex; \U above U+FFFF.
 * Variation selectors (U+FE00-U+FE0F, U+E0100-U+E01EF, Mongolian U+180B-U+180D,
 * U+180F) are kept: they change how the character before them looks, not
 * what the terminal does.
 *
 * Widths come from wcwidth(3), the same table ncurses uses, so they need
 * LC_CTYPE set to a UTF-8 locale (setlocale(LC_ALL, "") in main, as the front
 * ends do). Outside one, wcwidth knows no non-ASCII character: use
 * CACREG_TEXT_ASCII so that everything shown is ASCII. A character wcwidth
 * calls unprintable (or does not know) counts as 1 column.
 */
#ifndef CACREG_TEXT_H
#define CACREG_TEXT_H

#include <stddef.h>

/* Flags for cacreg_text_safe() and cacreg_text_fit(). */
enum {
    /* ASCII only, for a locale that is not UTF-8: any other character is
     * written as '?' (one per character, not per byte), ill-formed UTF-8 too,
     * and fit()'s ellipsis is "..." instead of U+2026. */
    CACREG_TEXT_ASCII = 1u << 0,
    /* Tab, line feed and carriage return become one space each instead of
     * \t \n \r, for text that is wrapped into a paragraph anyway. */
    CACREG_TEXT_SPACES = 1u << 1,
    /* fit() ends a string it had to cut with an ellipsis, when one fits. */
    CACREG_TEXT_ELLIPSIS = 1u << 2,
};

/*
 * Writes in, made safe to print, into out as NUL-terminated UTF-8 (or ASCII).
 * Returns, like snprintf, the length of the whole safe text without its NUL:
 * out holds all of it when the result is < out_size; otherwise it holds the
 * longest prefix of whole characters and whole escapes that fits. out may be
 * NULL when out_size is 0, to measure.
 */
size_t cacreg_text_safe(char *out, size_t out_size, const char *in, size_t in_len,
                        unsigned flags);

/*
 * Columns a NUL-terminated string takes on a terminal (wcwidth per character:
 * 2 for CJK and most emoji, 0 for combining marks); INT_MAX at most.
 */
int cacreg_text_width(const char *s);

/* The same for the first len bytes of s (a line being wrapped). */
int cacreg_text_width_n(const char *s, size_t len);

/*
 * Writes into out the longest prefix of s that takes at most columns columns
 * and fits out_size, cut between characters and never between a character and
 * the zero-width marks after it; with CACREG_TEXT_ELLIPSIS, a cut string ends
 * with an ellipsis (unless columns is narrower than the ellipsis, or out_size
 * too small for it).
 * Returns the columns written, for padding. s should be cacreg_text_safe()'s
 * output; other text is never cut inside a character either.
 */
int cacreg_text_fit(char *out, size_t out_size, const char *s, int columns, unsigned flags);

/*
 * Writes in into out as valid UTF-8 (for JSON, which refuses anything else),
 * each ill-formed sequence, a final cut one included, replaced by U+FFFD;
 * controls are left as they are. Returns what cacreg_text_safe() returns.
 */
size_t cacreg_text_utf8_repair(char *out, size_t out_size, const char *in, size_t in_len);

/* The same in place, for a field of size bytes (at most 4 KiB of it is kept). */
void cacreg_text_repair_in_place(char *s, size_t size);

#endif
