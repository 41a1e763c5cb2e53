/*
 * The entry fields: a username field in curses' form library, and a masked
 * field that shows one '*' per character while the characters themselves
 * go straight into the core's locked buffer (the field never holds the
 * secret; ncurses frees its buffers without wiping them).
 */
#define _GNU_SOURCE
#define _XOPEN_SOURCE_EXTENDED 1
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "tui.h"

#define USER_MAX 32 /* columns of the username field, and its longest name */

void tui_hint(struct tui *t, const char *text)
{
    snprintf(t->hint, sizeof t->hint, "%s", text);
    t->dirty = true;
}

void tui_form_free(struct tui *t)
{
    if (t->form) {
        unpost_form(t->form);
        free_form(t->form);
        t->form = NULL;
    }
    for (int i = 0; i < FIELD_MAX; i++) {
        if (t->fields[i])
            free_field(t->fields[i]); /* the masked field held only '*' */
        t->fields[i] = NULL;
    }
    if (t->form_win) {
        delwin(t->form_win);
        t->form_win = NULL;
    }
    t->field_of[FIELD_USER] = t->field_of[FIELD_SECRET] = -1;
    t->form_step = CACREG_STEP_COUNT;
}

/* Shows as many '*' as the secret has characters; the secret stays in the core. */
static void show_stars(struct tui *t)
{
    char stars[40];
    cacreg_secret *sec = cacreg_flow_secret(t->flow);
    size_t n = 0, len = sec ? cacreg_secret_len(sec) : 0;
    const char *d = sec ? cacreg_secret_data(sec) : "";
    size_t width = (size_t)tui_screen(t)->secret_width;

    for (size_t i = 0; i < len && n < width && n + 1 < sizeof stars; i++)
        if (((unsigned char)d[i] & 0xC0) != 0x80) /* one star per character */
            stars[n++] = '*';
    stars[n] = '\0';
    if (t->field_of[FIELD_SECRET] < 0)
        return;
    set_field_buffer(t->fields[t->field_of[FIELD_SECRET]], 0, stars);
    if (t->focus == FIELD_SECRET)
        form_driver(t->form, REQ_END_LINE); /* the cursor after the last '*', where it is */
}

static void focus_field(struct tui *t, int which)
{
    if (t->field_of[which] < 0)
        return;
    t->focus = which;
    set_current_field(t->form, t->fields[t->field_of[which]]);
    form_driver(t->form, REQ_END_LINE);
}

/* One field: plain characters on '_', so that a character typed is one byte out. */
static FIELD *make_field(struct tui *t, int width, int row)
{
    FIELD *f = new_field(1, width, row, 0, 0, 0);

    if (!f)
        return NULL;
    field_opts_off(f, O_AUTOSKIP | O_BLANK);
    set_field_pad(f, '_');
    set_field_back(f, (chtype)t->attr[ROLE_FIELD]);
    set_field_fore(f, (chtype)t->attr[ROLE_FIELD]);
    return f;
}

void tui_form_sync(struct tui *t)
{
    const struct tui_screen *sc = tui_screen(t);
    cacreg_step step = t->s->step;
    const struct tui_layout *l = &t->layout;
    int n = 0, row = 0, y = l->y + sc->field_row, x = l->x + 10;

    if (t->help || l->too_small || (!sc->fields[FIELD_USER] && !sc->fields[FIELD_SECRET])) {
        tui_form_free(t);
        return;
    }
    if (t->form && t->form_step == step) {
        int wy, wx;
        getbegyx(t->form_win, wy, wx);
        if (wy == y && wx == x)
            return;
    }
    if (t->form_step != step)
        t->focus = sc->fields[FIELD_USER] && !(step == CACREG_STEP_CREDENTIALS && t->username[0])
                       ? FIELD_USER
                       : FIELD_SECRET; /* back after a wrong password: the username stays */
    tui_form_free(t);
    if (sc->fields[FIELD_USER]) {
        t->fields[n] = make_field(t, USER_MAX, row);
        if (t->fields[n])
            set_field_buffer(t->fields[n], 0, t->username);
        t->field_of[FIELD_USER] = n++;
        row += 2;
    }
    if (sc->fields[FIELD_SECRET]) {
        t->fields[n] = make_field(t, sc->secret_width, row);
        if (t->fields[n])
            field_opts_off(t->fields[n], O_EDIT); /* keys go to the core's locked buffer */
        t->field_of[FIELD_SECRET] = n++;
        row++;
    }
    t->fields[n] = NULL;
    for (int i = 0; i < n; i++)
        if (!t->fields[i]) {
            tui_form_free(t);
            return;
        }
    t->form = new_form(t->fields);
    t->form_win = newwin(row, USER_MAX + 2, y, x);
    if (!t->form || !t->form_win) {
        tui_form_free(t);
        return;
    }
    t->form_step = step;
    set_form_win(t->form, t->form_win);
    set_form_sub(t->form, t->form_win);
    post_form(t->form);
    show_stars(t);
    focus_field(t, t->focus);
}

/* Reads the username field back after an edit. */
static void read_user_field(struct tui *t)
{
    const char *buf;
    size_t len;

    form_driver(t->form, REQ_VALIDATION);
    buf = field_buffer(t->fields[t->field_of[FIELD_USER]], 0);
    len = buf ? strlen(buf) : 0;
    while (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '_'))
        len--;
    if (len >= sizeof t->username)
        len = sizeof t->username - 1;
    memcpy(t->username, buf ? buf : "", len);
    t->username[len] = '\0';
}

/* A character or an edit for the username field; past its 32 characters the field is cleared. */
static void type_user(struct tui *t, int kind, wint_t wc)
{
    int rc;

    if (kind == OK && (wc < 0x20 || wc == 0x7f))
        return;
    if (kind == OK && strlen(t->username) >= USER_MAX) {
        set_field_buffer(t->fields[t->field_of[FIELD_USER]], 0, "");
        t->username[0] = '\0';
        t->burst_refused = true;
        tui_hint(t, "That was longer than a username can be; the field was cleared.");
        return;
    }
    rc = form_driver_w(t->form, kind, wc);
    if (rc != E_OK && rc != E_REQUEST_DENIED && rc != E_UNKNOWN_COMMAND)
        tui_hint(t, "That key does nothing here.");
    read_user_field(t);
    t->dirty = true;
}

/* A character typed into the masked field: into the core's locked buffer. */
static void type_secret(struct tui *t, wint_t wc)
{
    cacreg_secret *sec = cacreg_flow_secret(t->flow);
    bool pin = t->s->step == CACREG_STEP_PIN;
    char mb[MB_LEN_MAX];
    mbstate_t ps;
    size_t n;

    if (!sec)
        return;
    if (pin && (wc < '0' || wc > '9')) {
        tui_hint(t, "A PIN is digits only.");
        return;
    }
    if (pin && cacreg_secret_len(sec) >= 8) {
        cacreg_secret_clear(sec);
        t->burst_refused = true;
        tui_hint(t, "A CAC PIN has at most 8 digits; what was typed was cleared.");
        show_stars(t);
        return;
    }
    memset(&ps, 0, sizeof ps);
    n = wcrtomb(mb, (wchar_t)wc, &ps);
    if (n == (size_t)-1 || cacreg_secret_append(sec, mb, n) != CACREG_OK) {
        cacreg_secret_clear(sec);
        t->burst_refused = true;
        tui_hint(t, "That was longer than any password; what was typed was cleared.");
    }
    OPENSSL_cleanse(mb, sizeof mb);
    show_stars(t);
    t->dirty = true;
}

/* Keys of the masked field; true when taken. */
static bool secret_key(struct tui *t, int kind, wint_t wc, int key)
{
    cacreg_secret *sec = cacreg_flow_secret(t->flow);

    if (!sec)
        return false;
    if (key == K_BACKSPACE || (kind == OK && wc == ('u' & 0x1f))) {
        if (key == K_BACKSPACE)
            cacreg_secret_backspace(sec);
        else
            cacreg_secret_clear(sec);
        show_stars(t);
        t->dirty = true;
        return true;
    }
    if (kind == OK && wc >= 0x20 && wc != 0x7f) {
        type_secret(t, wc);
        return true;
    }
    return false;
}

/* Keys of the username field; true when taken. */
static bool user_key(struct tui *t, int kind, wint_t wc, int key)
{
    static const struct {
        wint_t key;
        int req;
    } edits[] = {{KEY_LEFT, REQ_PREV_CHAR}, {KEY_RIGHT, REQ_NEXT_CHAR}, {KEY_HOME, REQ_BEG_LINE},
                 {KEY_END, REQ_END_LINE},   {KEY_DC, REQ_DEL_CHAR}};

    if (key == K_BACKSPACE) {
        type_user(t, KEY_CODE_YES, REQ_DEL_PREV);
        return true;
    }
    if (kind == KEY_CODE_YES) {
        for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++)
            if (edits[i].key == wc) {
                type_user(t, KEY_CODE_YES, (wint_t)edits[i].req);
                return true;
            }
        return false;
    }
    if (wc == ('u' & 0x1f)) {
        type_user(t, KEY_CODE_YES, REQ_CLR_FIELD);
        return true;
    }
    if (wc >= 0x20 && wc != 0x7f) {
        type_user(t, OK, wc);
        return true;
    }
    return false;
}

bool tui_form_key(struct tui *t, int kind, wint_t wc, int key)
{
    bool two = t->field_of[FIELD_USER] >= 0 && t->field_of[FIELD_SECRET] >= 0;

    if (!t->form)
        return false;
    if (two && (key == K_TAB || key == K_UP || key == K_DOWN ||
                (kind == KEY_CODE_YES && wc == KEY_BTAB) ||
                (key == K_ENTER && t->focus == FIELD_USER))) {
        focus_field(t, t->focus == FIELD_USER ? FIELD_SECRET : FIELD_USER);
        t->dirty = true;
        return true;
    }
    if (key == K_ENTER || key == K_ESC)
        return false; /* the screen's */
    return t->focus == FIELD_SECRET ? secret_key(t, kind, wc, key) : user_key(t, kind, wc, key);
}
