/*
 * Drawing: a title bar, the screen's page on the left, the reader-status
 * panel on the right, a hint line and a key bar made from the screen's keys.
 * Everything is drawn from the flow's state and the front end's own; nothing
 * here changes either. curses sends the terminal only what changed.
 */
#define _GNU_SOURCE
#define _XOPEN_SOURCE_EXTENDED 1
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "text.h"
#include "tui.h"

/* Text from a card, the portal or a file (and our own), made safe to print with
 * core/text.c: controls, escape sequences, bidi and invisible characters shown as
 * visible escapes, invalid UTF-8 replaced; ASCII only when the locale is not UTF-8.
 * A paragraph (spaces) turns line breaks into spaces. */
static void clean(const struct tui *t, const char *in, char *out, size_t size, bool spaces)
{
    cacreg_text_safe(out, size, in ? in : "", in ? strlen(in) : 0,
                     (t->ascii ? CACREG_TEXT_ASCII : 0) | (spaces ? CACREG_TEXT_SPACES : 0));
}

/* Columns the first len bytes of s take on the terminal. */
static int columns(const char *s, size_t len)
{
    return cacreg_text_width_n(s, len);
}

void tui_put(const struct tui *t, int y, int x, int width, int role, const char *fmt, ...)
{
    char raw[1024], text[4096], fit[4096];
    va_list ap;

    if (y < 0 || y >= t->layout.rows || width <= 0)
        return;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    clean(t, raw, text, sizeof text, false);
    /* Cut at a character (a mark stays with its letter), an ellipsis where it was cut. */
    cacreg_text_fit(fit, sizeof fit, text, width,
                    CACREG_TEXT_ELLIPSIS | (t->ascii ? CACREG_TEXT_ASCII : 0));
    attrset(t->attr[role]);
    mvaddstr(y, x, fit);
    attrset(A_NORMAL);
}

/* Bytes of the UTF-8 character at p (the text is clean: valid UTF-8). */
static size_t char_len(const char *p)
{
    unsigned char c = (unsigned char)*p;

    return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

int tui_wrap(const char *text, int width, const char **start, int *len, int max)
{
    const char *p = text;
    int n = 0;

    if (width < 1)
        return 0;
    while (*p && n < max) {
        size_t i = 0, cut = 0;
        int used = 0;

        while (*p == ' ')
            p++;
        if (!*p)
            break;
        /* Character by character while they fit; a line may end before a space, or
         * after a comma (a DN: CN=...,OU=...). */
        while (p[i]) {
            size_t clen = char_len(p + i);
            int w = columns(p + i, clen);
            if (used + w > width)
                break;
            used += w;
            i += clen;
            if (p[i] == ' ' || p[i] == '\0' || p[i - 1] == ',')
                cut = i;
        }
        if (!p[i])
            cut = i;
        else if (cut == 0) /* one word longer than the line: cut it between characters */
            cut = i ? i : char_len(p);
        start[n] = p;
        len[n++] = (int)cut;
        p += cut;
    }
    return n;
}

void tui_words(const struct tui *t, int y, int x, const char *ours, int len)
{
    (void)t;
    mvaddnstr(y, x, ours, len);
}

int tui_text(const struct tui *t, int y, int x, int width, int max_rows, const char *text,
             int role)
{
    char buf[4096] = ""; /* all of it: the analyser cannot follow clean() */
    const char *start[64];
    int len[64], n;

    clean(t, text, buf, sizeof buf, true);
    n = tui_wrap(buf, width, start, len, max_rows < 64 ? max_rows : 64);
    attrset(t->attr[role]);
    for (int i = 0; i < n; i++)
        mvaddnstr(y + i, x, start[i], len[i]);
    attrset(A_NORMAL);
    return n;
}

int tui_diagnosis(const struct tui *t, int y, int x, int w, int rows, cacreg_diagnosis d,
                  const char *detail, int role)
{
    int used = 0;

    if (!d.cause || !d.cause[0])
        return 0;
    used += tui_text(t, y, x, w, rows, d.cause, role);
    if (d.steps && d.steps[0])
        used += tui_text(t, y + used, x, w, rows - used, d.steps, ROLE_NORMAL);
    if (detail && detail[0] && strcmp(detail, d.cause) != 0) {
        char buf[600];
        snprintf(buf, sizeof buf, "(%s)", detail);
        used += tui_text(t, y + used, x, w, rows - used, buf, ROLE_DIM);
    }
    return used;
}

/* A box, in line drawing characters or (ASCII mode) in + - |. */
static void frame(const struct tui *t, int y, int x, int h, int w, const char *title)
{
    if (t->ascii) {
        for (int i = 1; i < w - 1; i++) {
            mvaddch(y, x + i, '-');
            mvaddch(y + h - 1, x + i, '-');
        }
        for (int i = 1; i < h - 1; i++) {
            mvaddch(y + i, x, '|');
            mvaddch(y + i, x + w - 1, '|');
        }
        mvaddch(y, x, '+');
        mvaddch(y, x + w - 1, '+');
        mvaddch(y + h - 1, x, '+');
        mvaddch(y + h - 1, x + w - 1, '+');
    } else {
        mvhline_set(y, x + 1, WACS_HLINE, w - 2);
        mvhline_set(y + h - 1, x + 1, WACS_HLINE, w - 2);
        mvvline_set(y + 1, x, WACS_VLINE, h - 2);
        mvvline_set(y + 1, x + w - 1, WACS_VLINE, h - 2);
        mvadd_wch(y, x, WACS_ULCORNER);
        mvadd_wch(y, x + w - 1, WACS_URCORNER);
        mvadd_wch(y + h - 1, x, WACS_LLCORNER);
        mvadd_wch(y + h - 1, x + w - 1, WACS_LRCORNER);
    }
    if (title)
        tui_put(t, y, x + 2, w - 4, ROLE_NORMAL, " %s ", title);
}

/* ---- the reader-status panel ---- */

/* One prerequisite: a mark, a name and what it is now. */
static int item(const struct tui *t, int y, int x, int ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int item(const struct tui *t, int y, int x, int ok, const char *name, const char *fmt, ...)
{
    char value[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    tui_put(t, y, x, 4, ok > 0 ? ROLE_GOOD : ok < 0 ? ROLE_BAD : ROLE_WARN, "%s",
            ok > 0 ? "[ok]" : ok < 0 ? "[!!]" : "[..]");
    tui_put(t, y, x + 5, TUI_PANEL_W - 8, ROLE_NORMAL, "%s", name);
    tui_put(t, y + 1, x + 5, TUI_PANEL_W - 8, ok < 0 ? ROLE_BAD : ROLE_DIM, "%s", value);
    return 2;
}

static const char *pcsc_words(cacreg_pcsc_status st)
{
    switch (st) {
    case CACREG_PCSC_UP:
        return "running";
    case CACREG_PCSC_DOWN:
        return "not running";
    case CACREG_PCSC_DENIED:
        return "refuses this session";
    case CACREG_PCSC_STARTING:
        break;
    }
    return "checking";
}

static int panel_card(const struct tui *t, int y, int x, const cacreg_reader *in)
{
    const cacreg_flow_state *s = t->s;

    switch (s->card) {
    case CACREG_CARD_NONE:
        if (s->reader[0])
            return item(t, y, x, 0, "Card", "%s", "inserted");
        return item(t, y, x, 0, "Card", "%s", in && in->mute ? "not answering" : "not inserted");
    case CACREG_CARD_READING:
        return item(t, y, x, 0, "Card", "%s", "reading...");
    case CACREG_CARD_FAILED:
        return item(t, y, x, -1, "Card", "%s",
                    s->card_err == CACREG_ERR_NOT_CAC ? "not a CAC" : "cannot be read");
    case CACREG_CARD_READ:
        break;
    }
    return item(t, y, x, s->info.recognised ? 1 : -1, "Card",
                s->info.recognised ? "CAC, %s" : "not a CAC (%s)",
                s->chosen < s->info.ncerts ? s->info.certs[s->chosen].holder : s->info.label);
}

static void panel_pin(const struct tui *t, int y, int x)
{
    const cacreg_flow_state *s = t->s;
    int left = s->tries_left;

    switch (s->info.pin) {
    case CACREG_PIN_LOCKED:
        item(t, y, x, -1, "PIN", "%s", "LOCKED");
        break;
    case CACREG_PIN_FINAL_TRY:
        item(t, y, x, 0, "PIN", "%s", "last try before it locks");
        break;
    case CACREG_PIN_COUNT_LOW:
        item(t, y, x, 0, "PIN", left > 0 ? "%d tries left" : "a wrong PIN was entered", left);
        break;
    default:
        item(t, y, x, 1, "PIN", left > 0 ? "%d tries left" : "no wrong try seen", left);
        break;
    }
}

static void panel(const struct tui *t, int top, int height)
{
    const cacreg_flow_state *s = t->s;
    const cacreg_readers *r = &s->readers;
    int x = t->layout.cols - TUI_PANEL_W, y = top + 1;
    const char *module = strrchr(s->module_path, '/');
    const cacreg_reader *in = NULL;
    bool read = s->card == CACREG_CARD_READ;

    frame(t, top, x, height, TUI_PANEL_W, "Reader status");
    x += 2;
    for (size_t i = 0; i < r->count; i++)
        if (strcmp(r->readers[i].name, s->reader) == 0 || (!in && r->readers[i].card_present))
            in = &r->readers[i];
    if (r->forwarded) /* cacreg ssh: the card is in the person's own computer */
        y += item(t, y, x, r->status == CACREG_PCSC_UP ? 1 : r->status == CACREG_PCSC_STARTING ? 0 : -1,
                  "Your computer's card", "%s",
                  r->status == CACREG_PCSC_UP         ? "forwarded over SSH"
                  : r->status == CACREG_PCSC_STARTING ? "connecting"
                                                      : "connection lost");
    else
        y += item(t, y, x, r->status == CACREG_PCSC_UP ? 1 : r->status == CACREG_PCSC_STARTING ? 0 : -1,
                  "Smart-card service", "pcscd %s", pcsc_words(r->status));
    y += item(t, y, x, s->module == CACREG_MODULE_LOADED ? 1 : s->module == CACREG_MODULE_LOADING ? 0 : -1,
              "PKCS#11 module", "%s",
              s->module == CACREG_MODULE_LOADED    ? (module ? module + 1 : s->module_path)
              : s->module == CACREG_MODULE_LOADING ? "loading"
                                                   : "cannot be loaded");
    if (r->status != CACREG_PCSC_UP)
        y += item(t, y, x, 0, "Reader", "%s",
                  r->forwarded ? "unknown until connected" : "unknown until pcscd runs");
    else if (r->count == 0)
        y += item(t, y, x, -1, "Reader", "%s", "none connected");
    else
        y += item(t, y, x, 1, r->count > 1 ? "Readers" : "Reader", "%s%s",
                  in ? in->name : r->readers[0].name, r->count > 1 ? " (+more)" : "");
    y += panel_card(t, y, x, in);
    if (read)
        y += item(t, y, x, s->info.ncerts ? 1 : -1, "Certificates", "%zu read%s", s->info.ncerts,
                  s->chosen < s->info.ncerts ? ", identity found" : ", no identity one");
    else /* the Card row says when they are being read */
        y += item(t, y, x, 0, "Certificates", "%s", "not read");
    /* Every row is always there: a card going in changes values, not the layout. */
    if (!read) {
        y += item(t, y, x, 0, "Identity certificate", "%s", "not read");
    } else if (s->chosen < s->info.ncerts) {
        long days = cacreg_cert_days_left(&s->info.certs[s->chosen], (long long)time(NULL));
        if (s->verdict == CACREG_VERDICT_OK)
            y += item(t, y, x, 1, "Identity certificate", "valid, %ld days left", days);
        else
            y += item(t, y, x, -1, "Identity certificate", "%s", cacreg_verdict_words(s->verdict));
    } else {
        y += item(t, y, x, -1, "Identity certificate", "%s", "none on the card");
    }
    if (read)
        panel_pin(t, y, x);
    else
        item(t, y, x, 0, "PIN", "%s", "not known yet");
}

/* ---- the frame around the pages ---- */

/* The key bar: the fields' keys, then every key of the screen that works now. */
static void key_bar(const struct tui *t, const struct tui_screen *sc, char *out, size_t size)
{
    size_t n = 0;

    out[0] = '\0';
    if (sc->field_keys && t->form)
        n += (size_t)snprintf(out, size, " %s", sc->field_keys);
    for (const struct tui_key *k = sc->keys; k->key && n < size; k++) {
        if (!k->label || (k->op == OP_ACT && !cacreg_flow_can(t->flow, k->act)) ||
            (k->op == OP_QUIT && t->kiosk))
            continue;
        n += (size_t)snprintf(out + n, size - n, " %s %s ", k->cap, k->label);
    }
}

static void too_small(const struct tui *t)
{
    const struct tui_layout *l = &t->layout;
    int y = l->rows / 2 - 1, x = l->cols > 24 ? (l->cols - 24) / 2 : 0;

    tui_put(t, y, x, l->cols - x, ROLE_BAD, "This terminal is %dx%d;", l->cols, l->rows);
    tui_put(t, y + 1, x, l->cols - x, ROLE_NORMAL, "cacreg needs %dx%d.", TUI_MIN_COLS,
            TUI_MIN_ROWS);
    tui_put(t, y + 2, x, l->cols - x, ROLE_NORMAL, "%s", "Make the window larger.");
}

void tui_layout(struct tui_layout *l, int rows, int cols)
{
    l->rows = rows;
    l->cols = cols;
    l->too_small = cols < TUI_MIN_COLS || rows < TUI_MIN_ROWS;
    l->y = 2;
    l->x = 2;
    l->w = cols - TUI_PANEL_W - 4;
    if (l->w > 76)
        l->w = 76; /* lines longer than this are hard to read */
    l->lines = rows - 5;
    l->panel_h = rows - 4 < 17 ? rows - 4 : 17;
}

void tui_draw(const struct tui *t)
{
    const struct tui_layout *l = &t->layout;
    const struct tui_screen *sc = tui_screen(t);
    char bar[256];

    erase();
    if (l->too_small) {
        too_small(t);
        curs_set(0);
        wnoutrefresh(stdscr);
        doupdate();
        return;
    }
    attrset(t->attr[ROLE_TITLE]);
    mvhline(0, 0, ' ', l->cols);
    tui_put(t, 0, 1, l->cols - 2, ROLE_TITLE, "cacreg - register your CAC");
    tui_put(t, 0, l->cols - 1 - (int)strlen(sc->title), 30, ROLE_TITLE, "%s", sc->title);
    panel(t, 2, l->panel_h);
    sc->draw(t, l);
    if (t->hint[0])
        tui_put(t, l->rows - 2, 1, l->cols - 2, ROLE_WARN, "%s", t->hint);
    attrset(t->attr[ROLE_KEYS]);
    mvhline(l->rows - 1, 0, ' ', l->cols);
    key_bar(t, sc, bar, sizeof bar);
    tui_put(t, l->rows - 1, 0, l->cols, ROLE_KEYS, "%s", bar);
    wnoutrefresh(stdscr);
    if (t->form) {
        curs_set(1);
        touchwin(t->form_win);
        pos_form_cursor(t->form);
        wnoutrefresh(t->form_win);
    } else {
        curs_set(0);
    }
    doupdate();
}
