/* Unit tests for core/text.c: hostile and foreign text, table-driven. */
#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "text.h"

#define FFFD "\xEF\xBF\xBD"

/* A test case's input: the bytes up to len, or to the NUL when len is 0. */
struct text_case {
    const char *what;
    const char *in;
    size_t len;
    unsigned flags;
    const char *want;
};

/* Encodes a code point as UTF-8 into buf (5 bytes); returns its length. */
static size_t utf8(uint32_t cp, char *buf)
{
    size_t n;

    if (cp < 0x80) {
        buf[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        buf[0] = (char)(0xC0 | cp >> 6);
        buf[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        buf[0] = (char)(0xE0 | cp >> 12);
        buf[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        buf[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        buf[0] = (char)(0xF0 | cp >> 18);
        buf[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        buf[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        buf[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    buf[n] = '\0';
    return n;
}

/* Runs cases through cacreg_text_safe (repair false) or _utf8_repair (true). */
static void run_cases(const struct text_case *cases, size_t count, bool repair)
{
    char out[256];

    for (size_t i = 0; i < count; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);
        size_t n = repair ? cacreg_text_utf8_repair(out, sizeof out, cases[i].in, len)
                          : cacreg_text_safe(out, sizeof out, cases[i].in, len, cases[i].flags);
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("%s: got '%s', want '%s'", cases[i].what, out, cases[i].want);
        if (n != strlen(cases[i].want))
            fail_msg("%s: returned %zu, want %zu", cases[i].what, n, strlen(cases[i].want));
    }
}

/* Escape sequences a hostile portal or card would send are shown, not run. */
static void test_escape_sequences(void **state)
{
    static const struct text_case cases[] = {
        {"ESC [2J", "DOE\x1b[2JJANE", 0, 0, "DOE\\e[2JJANE"},
        {"SGR red", "\x1b[31mred\x1b[0m", 0, 0, "\\e[31mred\\e[0m"},
        {"OSC 0 title, BEL", "\x1b]0;pwned\x07x", 0, 0, "\\e]0;pwned\\x07x"},
        {"OSC 52 clipboard, ST", "\x1b]52;c;cm0gLXJm\x1b\\", 0, 0, "\\e]52;c;cm0gLXJm\\e\\\\"},
        {"8-bit CSI byte", "\x9b" "2J", 0, 0, FFFD "2J"},
        {"8-bit CSI as U+009B", "\xC2\x9b" "31m", 0, 0, "\\u009b31m"},
        {"U+0085 next line", "a\xC2\x85" "b", 0, 0, "a\\u0085b"},
        {"newline in a name", "DOE.JANE\nLogged in as root", 0, 0,
         "DOE.JANE\\nLogged in as root"},
        {"carriage return", "ok\rFAIL", 0, 0, "ok\\rFAIL"},
        {"tab", "a\tb", 0, 0, "a\\tb"},
        {"spaces flag", "a\tb\nc\r\nd", 0, CACREG_TEXT_SPACES, "a b c  d"},
        {"spaces flag keeps ESC escaped", "a\x1b", 0, CACREG_TEXT_SPACES, "a\\e"},
        {"other C0", "\x01\x08\x0b\x0c\x1f", 0, 0, "\\x01\\x08\\x0b\\x0c\\x1f"},
        {"DEL", "a\x7f", 0, 0, "a\\x7f"},
        {"backslash doubled", "DOMAIN\\user \\e", 0, 0, "DOMAIN\\\\user \\\\e"},
        {"NUL ends the text", "ab\0\x1b[2J", 6, 0, "ab"},
        {"in_len ends the text", "abcdef", 3, 0, "abc"},
        {"plain text unchanged", "DOE.JANE.Q.1234567890", 0, 0, "DOE.JANE.Q.1234567890"},
    };

    (void)state;
    run_cases(cases, sizeof cases / sizeof cases[0], false);
}

/* Bidi controls and other invisible format characters are shown by number. */
static void test_invisible_characters(void **state)
{
    static const uint32_t escaped[] = {
        0x202A, 0x202B, 0x202C, 0x202D, 0x202E, /* embeddings and overrides */
        0x2066, 0x2067, 0x2068, 0x2069,         /* isolates */
        0x200E, 0x200F, 0x061C,                 /* marks */
        0x200B, 0x200C, 0x200D, 0x2060, 0x2061, 0x2064, /* zero-width, joiners */
        0xFEFF, 0x00AD, 0x2028, 0x2029, 0x180E, 0x034F, 0x115F, 0x3164, 0xFFA0,
        0xFFF9, 0xFDD0, 0xFFFE, 0xFFFF, 0x1FFFF, 0x10FFFF,
        0x110BD, 0x13430, 0x1BCA0, 0x1D173, 0xE0001, 0xE0041, 0xE007F,
        0x0080, 0x0090, 0x009F,
    };
    static const uint32_t kept[] = {
        0x00A0, 0x00E9, 0x0301, 0x05D0, 0x0627, 0x200A, 0x2010, 0x2027, 0x202F, 0x2070,
        0x3000, 0x5C71, 0xFE0F, 0xFFFD, 0x1F600, 0xE0100, 0x10000,
    };
    char in[8], out[32], want[32];

    (void)state;
    for (size_t i = 0; i < sizeof escaped / sizeof escaped[0]; i++) {
        uint32_t cp = escaped[i];
        size_t len = utf8(cp, in);
        if (cp > 0xFFFF)
            snprintf(want, sizeof want, "x\\U%08x", (unsigned)cp);
        else
            snprintf(want, sizeof want, "x\\u%04x", (unsigned)cp);
        out[0] = 'x';
        cacreg_text_safe(out + 1, sizeof out - 1, in, len, 0);
        if (strcmp(out, want) != 0)
            fail_msg("U+%04X: got '%s', want '%s'", (unsigned)cp, out, want);
        cacreg_text_safe(out + 1, sizeof out - 1, in, len, CACREG_TEXT_ASCII);
        if (strcmp(out, want) != 0)
            fail_msg("U+%04X, ASCII: got '%s', want '%s'", (unsigned)cp, out, want);
    }
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        size_t len = utf8(kept[i], in);
        cacreg_text_safe(out, sizeof out, in, len, 0);
        if (strcmp(out, in) != 0)
            fail_msg("U+%04X: got '%s', want it unchanged", (unsigned)kept[i], out);
    }
}

/* Every code point comes out as itself or as its escape, never anything else. */
static void test_every_code_point(void **state)
{
    char in[8], out[32], esc[16];
    size_t changed = 0;

    (void)state;
    for (uint32_t cp = 1; cp <= 0x10FFFF; cp++) {
        size_t len;
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        len = utf8(cp, in);
        cacreg_text_safe(out, sizeof out, in, len, 0);
        if (strcmp(out, in) == 0) {
            if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == '\\')
                fail_msg("U+%04X passed unchanged", (unsigned)cp);
            continue;
        }
        changed++;
        if (cp > 0xFFFF)
            snprintf(esc, sizeof esc, "\\U%08x", (unsigned)cp);
        else
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
        if (strcmp(out, esc) != 0 && (cp >= 0x80 || out[0] != '\\' || strlen(out) > 4))
            fail_msg("U+%04X came out as '%s'", (unsigned)cp, out);
    }
    /* 31 C0 controls (NUL ends the text), DEL, the backslash, 32 C1 controls,
     * 34 noncharacters U+xFFFE/F and the rest of text.h's list: another count
     * means the list changed, and text.h should say so. */
    assert_int_equal(changed, 4079);
}

/* Ill-formed UTF-8: each maximal invalid prefix is one U+FFFD (or '?'). */
static void test_invalid_utf8(void **state)
{
    static const struct text_case cases[] = {
        {"lone continuation", "a\x80" "b", 0, 0, "a" FFFD "b"},
        {"two continuations", "\x80\xBF", 0, 0, FFFD FFFD},
        {"overlong slash C0 AF", "\xC0\xAF", 0, 0, FFFD FFFD},
        {"overlong NUL C0 80", "a\xC0\x80" "b", 0, 0, "a" FFFD FFFD "b"},
        {"overlong 3-byte", "\xE0\x80\xAF", 0, 0, FFFD FFFD FFFD},
        {"overlong 4-byte", "\xF0\x80\x80\xAF", 0, 0, FFFD FFFD FFFD FFFD},
        {"surrogate D800", "\xED\xA0\x80", 0, 0, FFFD FFFD FFFD},
        {"surrogate pair", "\xED\xA0\xBD\xED\xB8\x80", 0, 0, FFFD FFFD FFFD FFFD FFFD FFFD},
        {"above U+10FFFF", "\xF4\x90\x80\x80", 0, 0, FFFD FFFD FFFD FFFD},
        {"F5", "\xF5\x80", 0, 0, FFFD FFFD},
        {"0xFF", "x\xFFy", 0, 0, "x" FFFD "y"},
        {"0xFE", "\xFE", 0, 0, FFFD},
        {"truncated at the end", "YAMADA \xE5\xB1", 0, 0, "YAMADA " FFFD},
        {"truncated 4-byte", "\xF0\x9F\x98", 0, 0, FFFD},
        {"truncated then ASCII", "\xE5\xB1x", 0, 0, FFFD "x"},
        {"cut by in_len", "\xE5\xB1\xB1", 2, 0, FFFD},
        {"lead then lead", "\xC3\xC3\xA9", 0, 0, FFFD "\xC3\xA9"},
        {"ASCII mode", "x\xFF\xE5\xB1y", 0, CACREG_TEXT_ASCII, "x??y"},
    };

    (void)state;
    run_cases(cases, sizeof cases / sizeof cases[0], false);
}

/* ASCII mode for a locale that is not UTF-8: one '?' per character. */
static void test_ascii_mode(void **state)
{
    static const struct text_case cases[] = {
        {"accents", "Jos\xC3\xA9 Mar\xC3\xAD" "a", 0, CACREG_TEXT_ASCII, "Jos? Mar?a"},
        {"CJK", "\xE5\xB1\xB1\xE7\x94\xB0", 0, CACREG_TEXT_ASCII, "??"},
        {"combining accent", "e\xCC\x81", 0, CACREG_TEXT_ASCII, "e?"},
        {"emoji", "\xF0\x9F\x98\x80", 0, CACREG_TEXT_ASCII, "?"},
        {"controls escaped as ever", "\x1b[1m\n", 0, CACREG_TEXT_ASCII, "\\e[1m\\n"},
        {"RLO escaped, not ?", "\xE2\x80\xAE" "abc", 0, CACREG_TEXT_ASCII, "\\u202eabc"},
        {"ASCII unchanged", "DOE.JANE", 0, CACREG_TEXT_ASCII, "DOE.JANE"},
    };

    (void)state;
    run_cases(cases, sizeof cases / sizeof cases[0], false);
}

/* A full buffer cuts between characters and escapes, and says what it needed. */
static void test_truncation(void **state)
{
    static const struct {
        const char *what;
        const char *in;
        size_t size;
        const char *want;
        size_t needed;
    } cases[] = {
        {"fits exactly", "abc", 4, "abc", 3},
        {"one short", "abcd", 4, "abc", 4},
        {"escape never cut", "abc\x1b", 5, "abc", 5},
        {"escape just fits", "abc\x1b", 6, "abc\\e", 5},
        {"\\u escape never cut", "a\xE2\x80\xAE", 7, "a", 7},
        {"character never cut", "ab\xE5\xB1\xB1", 5, "ab", 5},
        {"character just fits", "ab\xE5\xB1\xB1", 6, "ab\xE5\xB1\xB1", 5},
        {"nothing after a cut", "abc\xE5\xB1\xB1" "d", 5, "abc", 7},
        {"U+FFFD never cut", "ab\xFF", 5, "ab", 5},
        {"size 1", "abc", 1, "", 3},
    };
    char out[64];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n;
        memset(out, 'Z', sizeof out);
        n = cacreg_text_safe(out, cases[i].size, cases[i].in, strlen(cases[i].in), 0);
        if (strcmp(out, cases[i].want) != 0 || n != cases[i].needed)
            fail_msg("%s: got '%s' (%zu), want '%s' (%zu)", cases[i].what, out, n,
                     cases[i].want, cases[i].needed);
        assert_int_equal(out[cases[i].size], 'Z'); /* nothing written past size */
    }
    /* Measuring alone. */
    assert_int_equal(cacreg_text_safe(NULL, 0, "\x1b\xE2\x80\xAE", 4, 0), 8);
    memset(out, 'Z', sizeof out);
    assert_int_equal(cacreg_text_safe(out, 0, "abc", 3, 0), 3);
    assert_int_equal(out[0], 'Z');
    assert_int_equal(cacreg_text_safe(out, sizeof out, NULL, 0, 0), 0);
    assert_string_equal(out, "");
}

/* A 2 KB CN of escape sequences: all shown, or cut at an escape when short. */
static void test_long_hostile_name(void **state)
{
    enum { REPEAT = 400 };                 /* 400 x 6 bytes: 2400 bytes in */
    static const char unit[] = "\x1b[31mX"; /* shown as \e[31mX, 7 bytes */
    char *in = malloc(REPEAT * 6 + 1), *out = malloc(REPEAT * 7 + 1), small[256];
    size_t n;

    (void)state;
    assert_non_null(in);
    assert_non_null(out);
    for (size_t i = 0; i < REPEAT; i++)
        memcpy(in + i * 6, unit, 6);
    in[REPEAT * 6] = '\0';
    n = cacreg_text_safe(out, REPEAT * 7 + 1, in, REPEAT * 6, 0);
    assert_int_equal(n, REPEAT * 7);
    assert_int_equal(strlen(out), REPEAT * 7);
    assert_null(strchr(out, '\x1b'));
    assert_memory_equal(out, "\\e[31mX\\e[31mX", 14);
    n = cacreg_text_safe(small, sizeof small, in, REPEAT * 6, 0);
    assert_int_equal(n, REPEAT * 7);
    assert_int_equal(strlen(small), 255); /* 36 units of 7, then "\e[" */
    assert_string_equal(small + 252, "\\e[");
    assert_null(strchr(small, '\x1b'));
    free(in);
    free(out);
}

/* Columns per wcwidth: CJK 2, combining marks 0, emoji as the table says. */
static void test_width(void **state)
{
    static const struct {
        const char *s;
        int columns;
    } cases[] = {
        {"", 0},
        {"DOE.JANE", 8},
        {"\xE5\xB1\xB1\xE7\x94\xB0\xE5\xA4\xAA\xE9\x83\x8E", 8}, /* 山田太郎 */
        {"\xED\x95\x9C\xEA\xB5\xAD", 4},                         /* 한국 */
        {"\xEF\xBC\xA1\xEF\xBC\xA2", 4},                         /* fullwidth AB */
        {"e\xCC\x81", 1},                                         /* e + acute */
        {"Jose\xCC\x81 Garci\xCC\x81" "a", 11},
        {"\xF0\x9F\x98\x80", 2},                   /* U+1F600 */
        {"\xE2\x9D\xA4\xEF\xB8\x8F", 1},           /* heart + VS16: wcwidth says 1 */
        {"\xE2\x80\xA6", 1},                       /* ellipsis */
        {FFFD, 1},
        {"\xFF", 1},                               /* ill-formed: shown as one U+FFFD */
        {"\xE5\xB1", 1},                           /* cut: one U+FFFD */
        {"\\e[2J", 5},
        {"\x1b", 1},                               /* no width of its own: 1 */
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (cacreg_text_width(cases[i].s) != cases[i].columns)
            fail_msg("case %zu '%s': %d columns, want %d", i, cases[i].s,
                     cacreg_text_width(cases[i].s), cases[i].columns);
    assert_int_equal(cacreg_text_width(NULL), 0);
}

/* fit() cuts at a character, never half a wide one, and marks the cut. */
static void test_fit(void **state)
{
#define YAMADA "\xE5\xB1\xB1\xE7\x94\xB0"
#define TARO "\xE5\xA4\xAA\xE9\x83\x8E"
#define ELL "\xE2\x80\xA6"
#define GRIN "\xF0\x9F\x98\x80"
#define E_ACUTE "e\xCC\x81"
    static const struct {
        const char *s;
        int columns;
        unsigned flags;
        size_t size;
        const char *want;
        int used;
    } cases[] = {
        {YAMADA TARO, 5, 0, 64, YAMADA, 4},
        {YAMADA TARO, 5, CACREG_TEXT_ELLIPSIS, 64, YAMADA ELL, 5},
        {YAMADA TARO, 7, CACREG_TEXT_ELLIPSIS, 64, YAMADA "\xE5\xA4\xAA" ELL, 7},
        {YAMADA TARO, 4, CACREG_TEXT_ELLIPSIS, 64, "\xE5\xB1\xB1" ELL, 3},
        {YAMADA TARO, 8, CACREG_TEXT_ELLIPSIS, 64, YAMADA TARO, 8},
        {YAMADA TARO, 1, 0, 64, "", 0},
        {YAMADA TARO, 1, CACREG_TEXT_ELLIPSIS, 64, ELL, 1},
        {YAMADA TARO, 3, CACREG_TEXT_ASCII | CACREG_TEXT_ELLIPSIS, 64, "...", 3},
        {E_ACUTE E_ACUTE E_ACUTE, 2, 0, 64, E_ACUTE E_ACUTE, 2},
        {E_ACUTE E_ACUTE E_ACUTE, 2, CACREG_TEXT_ELLIPSIS, 64, E_ACUTE ELL, 2},
        {"a" E_ACUTE, 10, 0, 3, "a", 1}, /* the mark's bytes do not fit: nor its base */
        {"a" E_ACUTE, 10, 0, 5, "a" E_ACUTE, 2},
        {GRIN GRIN GRIN, 5, CACREG_TEXT_ELLIPSIS, 64, GRIN GRIN ELL, 5},
        {GRIN GRIN GRIN, 4, CACREG_TEXT_ELLIPSIS, 64, GRIN ELL, 3},
        {"DOE.JOHN.QUINCY", 8, CACREG_TEXT_ASCII | CACREG_TEXT_ELLIPSIS, 64, "DOE.J...", 8},
        {"abcdef", 2, CACREG_TEXT_ASCII | CACREG_TEXT_ELLIPSIS, 64, "ab", 2},
        {"abcdefgh", 80, CACREG_TEXT_ELLIPSIS, 6, "ab" ELL, 3}, /* cut by bytes */
        {"abcdefgh", 80, 0, 6, "abcde", 5},
        {"abc", 3, CACREG_TEXT_ELLIPSIS, 64, "abc", 3},
        {"abc", 0, CACREG_TEXT_ELLIPSIS, 64, "", 0},
        {"abc", -5, 0, 64, "", 0},
        {"", 10, CACREG_TEXT_ELLIPSIS, 64, "", 0},
        {"ab\xE5\xB1", 2, 0, 64, "ab", 2}, /* ill-formed input: a U+FFFD's column */
    };
    char out[64];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int used = cacreg_text_fit(out, cases[i].size, cases[i].s, cases[i].columns,
                                   cases[i].flags);
        if (strcmp(out, cases[i].want) != 0 || used != cases[i].used)
            fail_msg("case %zu: got '%s' (%d columns), want '%s' (%d)", i, out, used,
                     cases[i].want, cases[i].used);
        assert_int_equal(cacreg_text_width(out), used);
    }
    /* A wide character at every odd budget: never half of one. */
    for (int columns = 1; columns < 12; columns += 2) {
        int used = cacreg_text_fit(out, sizeof out, YAMADA TARO TARO, columns, 0);
        assert_int_equal(used, columns - 1);
        assert_int_equal(strlen(out), (size_t)(columns - 1) / 2 * 3);
    }
    assert_int_equal(cacreg_text_fit(out, 0, "abc", 10, 0), 0);
#undef YAMADA
#undef TARO
#undef ELL
#undef GRIN
#undef E_ACUTE
}

/* A 2 KB CJK name fits 80 columns as 39 characters and an ellipsis. */
static void test_fit_long_cjk(void **state)
{
    enum { CHARS = 700 };
    char *name = malloc(CHARS * 3 + 1), out[512];
    int used;

    (void)state;
    assert_non_null(name);
    for (size_t i = 0; i < CHARS; i++)
        memcpy(name + i * 3, "\xE5\xB1\xB1", 3);
    name[CHARS * 3] = '\0';
    assert_int_equal(cacreg_text_width(name), 2 * CHARS);
    used = cacreg_text_fit(out, sizeof out, name, 80, CACREG_TEXT_ELLIPSIS);
    assert_int_equal(used, 79);
    assert_int_equal(strlen(out), 39 * 3 + 3);
    assert_string_equal(out + 39 * 3, "\xE2\x80\xA6");
    free(name);
}

/* JSON gets valid UTF-8: what jansson refused, it takes after repair. */
static void test_utf8_repair(void **state)
{
    static const struct text_case cases[] = {
        {"label cut mid-character", "YAMADA \xE5\xB1", 0, 0, "YAMADA " FFFD},
        {"valid unchanged", "ok \xE5\xB1\xB1 e\xCC\x81 \xF0\x9F\x98\x80", 0, 0,
         "ok \xE5\xB1\xB1 e\xCC\x81 \xF0\x9F\x98\x80"},
        {"controls kept", "a\x1b[2J\n\xE2\x80\xAE", 0, 0, "a\x1b[2J\n\xE2\x80\xAE"},
        {"overlong", "\xC0\x80", 0, 0, FFFD FFFD},
        {"surrogate", "\xED\xA0\x80", 0, 0, FFFD FFFD FFFD},
        {"8-bit byte", "caf\xE9", 0, 0, "caf" FFFD},
        {"fixed field padded with NULs", "LABEL\0\0\0", 8, 0, "LABEL"},
    };
    char out[64];
    json_t *j;

    (void)state;
    run_cases(cases, sizeof cases / sizeof cases[0], true);
    j = json_string("YAMADA \xE5\xB1");
    assert_null(j); /* the bug: jansson drops the whole value */
    cacreg_text_utf8_repair(out, sizeof out, "YAMADA \xE5\xB1", 9);
    j = json_string(out);
    assert_non_null(j);
    json_decref(j);
    /* A cut never leaves half a U+FFFD. */
    assert_int_equal(cacreg_text_utf8_repair(out, 5, "ab\xFF", 3), 5);
    assert_string_equal(out, "ab");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_sequences),
        cmocka_unit_test(test_invisible_characters),
        cmocka_unit_test(test_every_code_point),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_ascii_mode),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_long_hostile_name),
        cmocka_unit_test(test_width),
        cmocka_unit_test(test_fit),
        cmocka_unit_test(test_fit_long_cjk),
        cmocka_unit_test(test_utf8_repair),
    };

    /* Widths come from wcwidth, which needs a UTF-8 LC_CTYPE (see text.h). */
    if (!setlocale(LC_CTYPE, "C.UTF-8")) {
        fprintf(stderr, "test_text: no C.UTF-8 locale\n");
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
