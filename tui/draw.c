/*
 * The screens: a title bar, the step's page on the left, the reader-status
 * panel on the right, a hint line and a key bar. Everything is drawn from
 * the flow's state; curses sends the terminal only what changed.
 */
#define _GNU_SOURCE
#define _XOPEN_SOURCE_EXTENDED 1
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tui.h"

#define PANEL_W 30

/* Text from a card, the portal or a file, made safe to print: no control
 * characters (no escape sequences), and ASCII only when the locale is not UTF-8. */
static void clean(const struct tui *t, const char *in, char *out, size_t size)
{
    size_t n = 0;

    for (; in && *in && n + 1 < size; in++) {
        unsigned char c = (unsigned char)*in;
        out[n++] = c < 0x20 || c == 0x7f || (t->ascii && c >= 0x80) ? '?' : (char)c;
    }
    out[n] = '\0';
}

/* Columns a string takes (UTF-8 continuation bytes take none). */
static int columns(const char *s, size_t len)
{
    int cols = 0;

    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            cols++;
    return cols;
}

/* Prints at most width columns of a line at y, x in a role. */
static void put(struct tui *t, int y, int x, int width, int role, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void put(struct tui *t, int y, int x, int width, int role, const char *fmt, ...)
{
    char raw[1024], text[1024];
    size_t len;
    va_list ap;

    if (y < 0 || y >= t->rows || width <= 0)
        return;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    clean(t, raw, text, sizeof text);
    len = strlen(text);
    while (len > 0 && columns(text, len) > width)
        len--;
    while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
        len--; /* never cut a character in two */
    attrset(t->attr[role]);
    mvaddnstr(y, x, text, (int)len);
    attrset(A_NORMAL);
}

/* Splits text into lines of at most width columns, at spaces where it can;
 * returns how many (at most max), with where each starts and how long it is. */
static int wrap(const char *text, int width, const char **start, int *len, int max)
{
    const char *p = text;
    int n = 0;

    if (width < 1)
        return 0;
    while (*p && n < max) {
        size_t left, cut;
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        left = strlen(p);
        cut = left;
        if (columns(p, left) > width) {
            cut = 0;
            for (size_t i = 0; i < left && columns(p, i) <= width; i++)
                if (p[i] == ' ')
                    cut = i;
            if (cut == 0) /* one long word: cut it */
                for (cut = left; cut > 1 && columns(p, cut) > width; cut--) {
                }
        }
        start[n] = p;
        len[n++] = (int)cut;
        p += cut;
    }
    return n;
}

int tui_text(struct tui *t, int y, int x, int width, int max_rows, const char *text, int role)
{
    char buf[4096] = ""; /* all of it: the analyser cannot follow clean() */
    const char *start[64];
    int len[64], n;

    clean(t, text, buf, sizeof buf);
    n = wrap(buf, width, start, len, max_rows < 64 ? max_rows : 64);
    attrset(t->attr[role]);
    for (int i = 0; i < n; i++)
        mvaddnstr(y + i, x, start[i], len[i]);
    attrset(A_NORMAL);
    return n;
}

/* A box, in line drawing characters or (ASCII mode) in + - |. */
static void frame(struct tui *t, int y, int x, int h, int w, const char *title)
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
        put(t, y, x + 2, w - 4, ROLE_NORMAL, " %s ", title);
}

/* ---- the reader-status panel ---- */

/* One prerequisite: a mark, a name and what it is now. */
static int item(struct tui *t, int y, int x, int ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int item(struct tui *t, int y, int x, int ok, const char *name, const char *fmt, ...)
{
    char value[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    put(t, y, x, 4, ok > 0 ? ROLE_GOOD : ok < 0 ? ROLE_BAD : ROLE_WARN, "%s",
        ok > 0 ? "[ok]" : ok < 0 ? "[!!]" : "[..]");
    put(t, y, x + 5, PANEL_W - 8, ROLE_NORMAL, "%s", name);
    put(t, y + 1, x + 5, PANEL_W - 8, ok < 0 ? ROLE_BAD : ROLE_DIM, "%s", value);
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

static void panel(struct tui *t, int top, int height)
{
    const cacreg_flow_state *s = t->s;
    const cacreg_readers *r = &s->readers;
    int x = t->cols - PANEL_W, y = top + 1;
    const char *module = strrchr(s->module, '/');
    const cacreg_reader *in = NULL;

    frame(t, top, x, height, PANEL_W, "Reader status");
    x += 2;
    for (size_t i = 0; i < r->count; i++)
        if (strcmp(r->readers[i].name, s->reader) == 0 || (!in && r->readers[i].card_present))
            in = &r->readers[i];
    y += item(t, y, x, r->status == CACREG_PCSC_UP ? 1 : r->status == CACREG_PCSC_STARTING ? 0 : -1,
              "Smart-card service", "pcscd %s", pcsc_words(r->status));
    y += item(t, y, x, s->module_loaded ? 1 : s->module_loading ? 0 : -1, "PKCS#11 module", "%s",
              s->module_loaded ? (module ? module + 1 : s->module)
              : s->module_loading ? "loading" : "cannot be loaded");
    if (r->status != CACREG_PCSC_UP)
        y += item(t, y, x, 0, "Reader", "%s", "unknown until pcscd runs");
    else if (r->count == 0)
        y += item(t, y, x, -1, "Reader", "%s", "none connected");
    else
        y += item(t, y, x, 1, r->count > 1 ? "Readers" : "Reader", "%s%s",
                  in ? in->name : r->readers[0].name, r->count > 1 ? " (+more)" : "");
    if (!s->reader[0])
        y += item(t, y, x, 0, "Card", "%s", in && in->mute ? "not answering" : "not inserted");
    else if (s->card_reading)
        y += item(t, y, x, 0, "Card", "%s", "reading...");
    else if (!s->card_read)
        y += item(t, y, x, -1, "Card", "%s", s->card_error[0] ? "cannot be read" : "inserted");
    else
        y += item(t, y, x, s->info.recognised ? 1 : -1, "Card",
                  s->info.recognised ? "CAC, %s" : "not a CAC (%s)",
                  s->chosen < s->info.ncerts ? s->info.certs[s->chosen].holder : s->info.label);
    if (s->card_read)
        y += item(t, y, x, s->info.ncerts ? 1 : -1, "Certificates", "%zu read%s", s->info.ncerts,
                  s->chosen < s->info.ncerts ? ", identity found" : ", no identity one");
    else
        y += item(t, y, x, 0, "Certificates", "%s", s->card_reading ? "reading..." : "not read");
    if (s->card_read && s->chosen < s->info.ncerts) {
        long days = cacreg_cert_days_left(&s->info.certs[s->chosen], (long long)time(NULL));
        if (s->verdict == CACREG_VERDICT_OK)
            y += item(t, y, x, 1, "Identity certificate", "valid, %ld days left", days);
        else
            y += item(t, y, x, -1, "Identity certificate", "%s", cacreg_verdict_name(s->verdict));
    }
    if (s->card_read) {
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
}

/* ---- the pages ---- */

/* A cause and the steps that fix it, with the detail when it adds something. */
static int diagnosis(struct tui *t, int y, int x, int w, int rows, cacreg_diagnosis d,
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

static void page_start(struct tui *t, int y, int x, int w, int rows)
{
    static const char *const ways[] = {"C  Log in with your CAC (recommended)",
                                       "P  Log in with username and password",
                                       "F  I need a password",
                                       "H  Help and troubleshooting"};
    const cacreg_flow_state *s = t->s;
    int y0 = y;

    put(t, y++, x, w, ROLE_NORMAL, "Register your CAC with your portal account.");
    y++;
    if (s->notice.cause) {
        y += diagnosis(t, y, x, w, 4, s->notice, NULL,
                       s->notice_fail == CACREG_FAIL_NONE ? ROLE_GOOD : ROLE_WARN);
        y++;
    }
    if (s->card_read && s->chosen < s->info.ncerts)
        put(t, y++, x, w, ROLE_GOOD, "Card ready: %s", s->info.certs[s->chosen].holder);
    else if (s->card_reading)
        put(t, y++, x, w, ROLE_NORMAL, "Reading your card...");
    else
        put(t, y++, x, w, ROLE_NORMAL, "Insert your CAC into the reader, then choose:");
    y++;
    for (int i = 0; i < 4; i++)
        put(t, y++, x, w, i == t->menu ? ROLE_SELECT : ROLE_NORMAL, "%s %s",
            i == t->menu ? ">" : " ", ways[i]);
    y++;
    if (y - y0 < rows - 2)
        tui_text(t, y, x, w, rows - (y - y0),
                 "A CAC login registers the card to your account (a newer card replaces the "
                 "old one) and renews your portal password for 150 days.",
                 ROLE_DIM);
}

static void page_pin(struct tui *t, int y, int x, int w)
{
    const cacreg_flow_state *s = t->s;

    put(t, y++, x, w, ROLE_NORMAL, "%s", s->register_path ? "Register: enter your CAC PIN"
                                                         : "CAC login: enter your CAC PIN");
    if (s->chosen < s->info.ncerts)
        put(t, y, x, w, ROLE_DIM, "Card of %s", s->info.certs[s->chosen].holder);
    y += 2;
    put(t, y, x, 9, ROLE_NORMAL, "PIN:");
    t->form_y = y;
    t->form_x = x + 10;
    y += 2;
    if (s->info.pin == CACREG_PIN_FINAL_TRY || s->tries_left == 1)
        y += tui_text(t, y, x, w, 2, "Last try: one more wrong PIN locks the card.", ROLE_BAD);
    else if (s->tries_left > 0)
        put(t, y++, x, w, s->info.pin == CACREG_PIN_OK ? ROLE_DIM : ROLE_WARN, "%d tries left.",
            s->tries_left);
    else /* a CAC does not tell before a wrong PIN */
        put(t, y++, x, w, ROLE_DIM, "A CAC locks after 3 wrong PINs in a row.");
    y++;
    if (s->fail != CACREG_FAIL_NONE)
        y += diagnosis(t, y, x, w, 5, s->diagnosis, NULL, ROLE_BAD) + 1;
    tui_text(t, y, x, w, 3,
             "6 to 8 digits, as set at the CAC office. It goes to the card only, once.",
             ROLE_DIM);
}

static void page_fields(struct tui *t, int y, int x, int w)
{
    const cacreg_flow_state *s = t->s;
    const char *title = s->step == CACREG_STEP_RESET ? "I need a password"
                        : s->step == CACREG_STEP_CREDENTIALS
                            ? "Log in with your portal username and password"
                            : "Register: confirm with your portal password";

    put(t, y, x, w, ROLE_NORMAL, "%s", title);
    y += 2;
    t->form_y = y;
    t->form_x = x + 10;
    if (s->step != CACREG_STEP_CONFIRM_PASSWORD) {
        put(t, y, x, 9, ROLE_NORMAL, "Username:");
        y += 2;
    }
    if (s->step != CACREG_STEP_RESET) {
        put(t, y, x, 9, ROLE_NORMAL, "Password:");
        y += 2;
    }
    if (s->fail != CACREG_FAIL_NONE) {
        y += diagnosis(t, y, x, w, 5, s->diagnosis, NULL, ROLE_BAD);
        if (s->last.attempts_left >= 0 && strcmp(s->last.error, "invalid_credentials") == 0) {
            char line[96];
            snprintf(line, sizeof line, "%d attempts left before the account locks.",
                     s->last.attempts_left);
            y += tui_text(t, y, x, w, 2, line, ROLE_WARN);
        }
        y++;
    }
    if (s->step == CACREG_STEP_RESET)
        tui_text(t, y, x, w, 4,
                 "If the account exists, the portal sends instructions for a new password to "
                 "its email address on file. A CAC login works without a password.",
                 ROLE_DIM);
    else if (s->step == CACREG_STEP_CONFIRM_PASSWORD)
        tui_text(t, y, x, w, 4,
                 "Your PIN was accepted. The portal password confirms that this card goes to "
                 "your account.", ROLE_DIM);
}

static void page_registration(struct tui *t, int y, int x, int w)
{
    const cacreg_flow_state *s = t->s;
    const cacreg_portal_result *a = &s->account, *r = &s->registration;

    put(t, y++, x, w, ROLE_NORMAL, "Logged in as %s (%s)", a->username, a->display_name);
    put(t, y++, x, w, ROLE_DIM, "%s account, password good until %.10s",
        strcmp(a->account_type, "email_only") == 0 ? "Email-only" : "Full", a->password_expires);
    y++;
    if (s->notice.cause)
        put(t, y++, x, w, ROLE_GOOD, "%s", s->notice.cause);
    if (r->registered) {
        put(t, y++, x, w, ROLE_NORMAL, "Current registered information:");
        y += tui_text(t, y, x + 2, w - 2, 3, r->cert_subject, ROLE_NORMAL);
        put(t, y++, x + 2, w - 2, ROLE_DIM, "Serial %s", r->cert_serial);
        put(t, y++, x + 2, w - 2, ROLE_DIM, "Expires %.10s, registered %.10s", r->cert_not_after,
            r->registered_at);
    } else {
        y += tui_text(t, y, x, w, 2, "Not registered: no CAC is registered to this account.",
                      ROLE_WARN);
    }
    y++;
    put(t, y++, x, w, ROLE_NORMAL, "R  Register the CAC in the reader");
    if (r->registered)
        put(t, y++, x, w, ROLE_NORMAL, "C  Clear the registered information");
    put(t, y++, x, w, ROLE_NORMAL, "L  Log out");
}

static void page_choose(struct tui *t, int y, int x, int w, int rows)
{
    const cacreg_flow_state *s = t->s;
    const cacreg_cert *c;
    const char *why;
    int y0 = y;

    put(t, y++, x, w, ROLE_NORMAL, "Choose the certificate to register");
    put(t, y++, x, w, ROLE_DIM, "* marks the one to choose: your name, identity.");
    y++;
    for (size_t i = 0; i < s->info.ncerts; i++) {
        c = &s->info.certs[i];
        put(t, y++, x, w, i == t->cert ? ROLE_SELECT : ROLE_NORMAL, "%s %c %-20.20s %s",
            i == t->cert ? ">" : " ", i == s->chosen ? '*' : ' ',
            c->holder[0] ? c->holder : c->common_name, cacreg_cert_kind_name(c->kind));
    }
    if (t->cert >= s->info.ncerts)
        return;
    c = &s->info.certs[t->cert];
    y++;
    put(t, y++, x, w, ROLE_DIM, "Issued by %s", c->issuer_cn);
    {
        char until[16];
        time_t na = (time_t)c->not_after;
        struct tm tm;
        gmtime_r(&na, &tm);
        strftime(until, sizeof until, "%Y-%m-%d", &tm);
        put(t, y++, x, w, ROLE_DIM, "Expires %s, serial %s", until, c->serial);
    }
    why = t->cert == s->chosen ? NULL : cacreg_cert_why_not(c);
    if (why)
        y += tui_text(t, y, x, w, 3, why, ROLE_WARN);
    else if (t->cert == s->chosen && s->verdict != CACREG_VERDICT_OK)
        y += tui_text(t, y, x, w, 3, cacreg_diagnose_verdict(s->verdict).cause, ROLE_BAD);
    if (s->fail != CACREG_FAIL_NONE && y - y0 < rows - 2)
        y += diagnosis(t, y, x, w, 3, s->diagnosis, s->detail, ROLE_BAD);
    if (s->registration.registered && t->cert == s->chosen &&
        strcmp(s->registration.cert_serial, c->serial) != 0 && y - y0 < rows - 1)
        tui_text(t, y, x, w, 2, "Registering this card replaces the one registered now.",
                 ROLE_WARN);
}

static void page_done(struct tui *t, int y, int x, int w)
{
    const cacreg_flow_state *s = t->s;
    const cacreg_portal_result *r = &s->last;

    if (s->done == CACREG_DONE_RESET) {
        put(t, y++, x, w, ROLE_GOOD, "Asked for a new password.");
        tui_text(t, y + 1, x, w, 4,
                 "If the account exists, instructions are on their way to its email address "
                 "on file.", ROLE_NORMAL);
        return;
    }
    if (s->done == CACREG_DONE_CAC_LOGIN)
        put(t, y++, x, w, ROLE_GOOD, "You are logged in as %s (%s).", r->username,
            r->display_name);
    if (strcmp(r->registration, "replaced") == 0)
        y += tui_text(t, y, x, w, 2, "Your CAC is registered; it replaces the card registered "
                      "before.", ROLE_GOOD);
    else if (strcmp(r->registration, "unchanged") == 0)
        put(t, y++, x, w, ROLE_GOOD, "This CAC was registered already.");
    else
        put(t, y++, x, w, ROLE_GOOD, "Your CAC is registered.");
    y++;
    put(t, y++, x, w, ROLE_NORMAL, "Registered now:");
    y += tui_text(t, y, x + 2, w - 2, 3, r->cert_subject, ROLE_NORMAL);
    put(t, y++, x + 2, w - 2, ROLE_DIM, "Serial %s, expires %.10s", r->cert_serial,
        r->cert_not_after);
    if (r->replaced_serial[0])
        put(t, y++, x + 2, w - 2, ROLE_DIM, "Replaced: serial %s", r->replaced_serial);
    y++;
    if (s->done == CACREG_DONE_CAC_LOGIN) {
        char line[128];
        snprintf(line, sizeof line, "Your portal password is good until %.10s (150 days).",
                 r->password_expires);
        y += tui_text(t, y, x, w, 2, line, ROLE_NORMAL);
    }
    y++;
    tui_text(t, y, x, w, 2, "Press Enter to finish. Take your card with you.", ROLE_DIM);
}

static void page_failed(struct tui *t, int y, int x, int w, int rows)
{
    const cacreg_flow_state *s = t->s;
    int y0 = y;

    put(t, y, x, w, ROLE_BAD, "%s", "It did not work.");
    y += 2;
    y += diagnosis(t, y, x, w, rows - 6, s->diagnosis, s->detail, ROLE_BAD);
    if (s->clock[0])
        y += 1 + tui_text(t, y + 1, x, w, 3, s->clock, ROLE_WARN);
    y++;
    if (strcmp(s->last.error, "password_expired") == 0 && y - y0 < rows)
        put(t, y++, x, w, ROLE_NORMAL, "N  ask for a new password");
    if (y - y0 < rows)
        put(t, y, x, w, ROLE_DIM, "Press Enter to go back.");
}

static void page_help(struct tui *t, int y, int x, int w, int rows)
{
    if (!t->help_open) {
        put(t, y, x, w, ROLE_NORMAL, "Help and troubleshooting");
        y += 2;
        for (size_t i = 0; i < tui_help_count; i++)
            put(t, y++, x, w, (int)i == t->help_topic ? ROLE_SELECT : ROLE_NORMAL, "%s %zu  %s",
                (int)i == t->help_topic ? ">" : " ", i + 1, tui_help_pages[i].title);
        return;
    }
    {
        /* The page wrapped into lines, then the window's worth from the scroll position. */
        static char buf[8192];
        static const char *start[400];
        static int len[400];
        const struct tui_help_page *p = &tui_help_pages[t->help_topic];
        int n = 0;

        snprintf(buf, sizeof buf, "%s", p->text); /* ours: ASCII, lines end in \n */
        for (char *line = buf; line && *line && n < 400;) {
            char *end = strchr(line, '\n');
            if (end)
                *end = '\0';
            if (*line)
                n += wrap(line, w, start + n, len + n, 400 - n);
            else if (n < 400) { /* an empty line between paragraphs */
                start[n] = "";
                len[n++] = 0;
            }
            line = end ? end + 1 : NULL;
        }
        put(t, y, x, w, ROLE_GOOD, "%s", p->title);
        y += 2;
        rows -= 3;
        if (t->help_scroll > n - rows)
            t->help_scroll = n - rows > 0 ? n - rows : 0;
        for (int i = 0; i < rows && t->help_scroll + i < n; i++)
            mvaddnstr(y + i, x, start[t->help_scroll + i], len[t->help_scroll + i]);
        if (n > rows)
            put(t, y + rows, x, w, ROLE_DIM, "-- lines %d-%d of %d --", t->help_scroll + 1,
                t->help_scroll + rows < n ? t->help_scroll + rows : n, n);
    }
}

/* ---- the frame around the pages ---- */

static const char *step_title(const struct tui *t)
{
    static const char *const titles[] = {
        [CACREG_STEP_START] = "Start",
        [CACREG_STEP_INSERT_CARD] = "Insert your card",
        [CACREG_STEP_BUSY] = "Working",
        [CACREG_STEP_PIN] = "PIN",
        [CACREG_STEP_CREDENTIALS] = "Password login",
        [CACREG_STEP_REGISTRATION] = "Registration",
        [CACREG_STEP_CONFIRM_CLEAR] = "Clear registration",
        [CACREG_STEP_CHOOSE_CERT] = "Choose a certificate",
        [CACREG_STEP_CONFIRM_PASSWORD] = "Confirm",
        [CACREG_STEP_RESET] = "New password",
        [CACREG_STEP_DONE] = "Done",
        [CACREG_STEP_FAILED] = "Problem",
    };
    return t->help ? "Help" : titles[t->s->step];
}

static const char *key_bar(const struct tui *t)
{
    const cacreg_flow_state *s = t->s;

    if (t->help)
        return t->help_open ? " Up/Down Scroll  Space Page  Esc Back"
                            : " Up/Down Move  Enter Read  1-9 Topic  Esc Back";
    switch (s->step) {
    case CACREG_STEP_START:
        return t->kiosk ? " Up/Down Move  Enter Select  C CAC login  P Password  F New password  H Help"
                        : " Enter Select  C CAC  P Password  F New password  H Help  Q Quit";
    case CACREG_STEP_PIN:
        return " 0-9 PIN  Backspace Erase  Enter OK  Esc Back";
    case CACREG_STEP_CREDENTIALS:
        return " Tab Next field  Enter OK  Esc Back";
    case CACREG_STEP_CONFIRM_PASSWORD:
    case CACREG_STEP_RESET:
        return " Enter OK  Esc Back";
    case CACREG_STEP_REGISTRATION:
        return " R Register  C Clear  L Log out  H Help  Esc Log out";
    case CACREG_STEP_CONFIRM_CLEAR:
        return " Y Yes, clear it  N No  Esc Back";
    case CACREG_STEP_CHOOSE_CERT:
        return " Up/Down Move  Enter Choose  Esc Back";
    case CACREG_STEP_DONE:
        return " Enter Finish  H Help";
    case CACREG_STEP_FAILED:
        return " Enter Back  H Help  Esc Back";
    case CACREG_STEP_BUSY:
        return " Esc Cancel";
    case CACREG_STEP_INSERT_CARD:
        break;
    }
    return " Esc Back  H Help";
}

static void too_small(struct tui *t)
{
    char line[120];
    int y = t->rows / 2 - 1;

    int x = t->cols > 24 ? (t->cols - 24) / 2 : 0;

    snprintf(line, sizeof line, "This terminal is %dx%d;", t->cols, t->rows);
    put(t, y, x, t->cols - x, ROLE_BAD, "%s", line);
    put(t, y + 1, x, t->cols - x, ROLE_NORMAL, "cacreg needs %dx%d.", TUI_MIN_COLS, TUI_MIN_ROWS);
    put(t, y + 2, x, t->cols - x, ROLE_NORMAL, "%s", "Make the window larger.");
}

void tui_draw(struct tui *t)
{
    const cacreg_flow_state *s = t->s;
    static cacreg_step shown = CACREG_STEP_START;
    static const char spinner[] = "|/-\\";
    int w, rows, x = 2, y = 2;

    getmaxyx(stdscr, t->rows, t->cols);
    t->drawn = s->generation;
    t->dirty = false;
    if (s->step != shown) {
        if (s->step == CACREG_STEP_CHOOSE_CERT)
            t->cert = s->chosen < s->info.ncerts ? s->chosen : 0;
        if (s->step == CACREG_STEP_START && shown != CACREG_STEP_START)
            t->menu = 0;
        if (s->step == CACREG_STEP_START)
            t->username[0] = '\0'; /* nothing of the last person's stays */
        shown = s->step;
    }
    erase();
    if (t->cols < TUI_MIN_COLS || t->rows < TUI_MIN_ROWS) {
        tui_form_free(t);
        curs_set(0);
        too_small(t);
        wnoutrefresh(stdscr);
        doupdate();
        return;
    }
    w = t->cols - PANEL_W - 4;
    if (w > 76)
        w = 76; /* lines longer than this are hard to read */
    rows = t->rows - 5;
    attrset(t->attr[ROLE_TITLE]);
    mvhline(0, 0, ' ', t->cols);
    put(t, 0, 1, t->cols - 2, ROLE_TITLE, "cacreg - register your CAC");
    put(t, 0, t->cols - 1 - (int)strlen(step_title(t)), 30, ROLE_TITLE, "%s", step_title(t));
    panel(t, 2, t->rows - 4 < 17 ? t->rows - 4 : 17);
    if (t->help) {
        page_help(t, y, x, w, rows);
    } else {
        switch (s->step) {
        case CACREG_STEP_START:
            page_start(t, y, x, w, rows);
            break;
        case CACREG_STEP_INSERT_CARD:
            put(t, y, x, w, ROLE_NORMAL, "Insert your CAC into the reader.");
            tui_text(t, y + 2, x, w, 4,
                     "Chip first, face up. The reader-status panel shows when it is in; "
                     "this goes on by itself.", ROLE_DIM);
            break;
        case CACREG_STEP_BUSY:
            put(t, y, x, w, ROLE_NORMAL, "[%c] %s...", spinner[t->spin % 4],
                s->busy ? s->busy : "Working");
            if (s->busy && strstr(s->busy, "card"))
                put(t, y + 2, x, w, ROLE_DIM, "Leave the card in the reader.");
            break;
        case CACREG_STEP_PIN:
            page_pin(t, y, x, w);
            break;
        case CACREG_STEP_CREDENTIALS:
        case CACREG_STEP_CONFIRM_PASSWORD:
        case CACREG_STEP_RESET:
            page_fields(t, y, x, w);
            break;
        case CACREG_STEP_REGISTRATION:
            page_registration(t, y, x, w);
            break;
        case CACREG_STEP_CONFIRM_CLEAR:
            put(t, y, x, w, ROLE_WARN, "Clear the registered information?");
            tui_text(t, y + 2, x, w, 3, s->registration.cert_subject, ROLE_NORMAL);
            tui_text(t, y + 5, x, w, 4,
                     "After this no CAC logs in to this account until one is registered "
                     "again.", ROLE_DIM);
            break;
        case CACREG_STEP_CHOOSE_CERT:
            page_choose(t, y, x, w, rows);
            break;
        case CACREG_STEP_DONE:
            page_done(t, y, x, w);
            break;
        case CACREG_STEP_FAILED:
            page_failed(t, y, x, w, rows);
            break;
        }
    }
    if (t->hint[0])
        put(t, t->rows - 2, 1, t->cols - 2, ROLE_WARN, "%s", t->hint);
    attrset(t->attr[ROLE_KEYS]);
    mvhline(t->rows - 1, 0, ' ', t->cols);
    put(t, t->rows - 1, 0, t->cols, ROLE_KEYS, "%s", key_bar(t));
    tui_form_sync(t);
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
