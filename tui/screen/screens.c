/*
 * The screens, one per step of the flow and one for the help pages: a
 * title, the keys (the key handler and the key bar read the same table),
 * the entry fields, and a page drawn from the state. A new screen is a
 * table row here and its page function.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tui.h"

#define ESC_BACK {K_ESC, "Esc", "Back", OP_ACT, CACREG_ACT_BACK, NULL}
#define HELP_KEY {'h', "H", "Help", OP_HELP, 0, NULL}, {'?', NULL, NULL, OP_HELP, 0, NULL}
#define END_KEYS {0, NULL, NULL, 0, 0, NULL}

/* ---- pages ---- */

static void page_start(const struct tui *t, const struct tui_layout *l)
{
    const cacreg_flow_state *s = t->s;
    const struct tui_screen *sc = tui_screen(t);
    int x = l->x, y = l->y, w = l->w, line = 0;

    tui_put(t, y++, x, w, ROLE_NORMAL, "Register your CAC with your portal account.");
    y++;
    if (s->notice.diagnosis.cause) {
        y += tui_diagnosis(t, y, x, w, 4, s->notice.diagnosis, NULL,
                           s->notice.fail == CACREG_FAIL_NONE ? ROLE_GOOD : ROLE_WARN);
        y++;
    }
    if (s->card == CACREG_CARD_READ && s->chosen < s->info.ncerts && s->verdict == CACREG_VERDICT_OK &&
        s->info.pin != CACREG_PIN_LOCKED)
        tui_put(t, y++, x, w, ROLE_GOOD, "Card ready: %s", s->info.certs[s->chosen].holder);
    else if (s->card == CACREG_CARD_READ && s->chosen < s->info.ncerts)
        y += tui_text(t, y, x, w, 3,
                      s->info.pin == CACREG_PIN_LOCKED
                          ? "The card's PIN is locked: it cannot be used here."
                          : cacreg_diagnose_verdict(s->verdict).cause,
                      ROLE_BAD);
    else if (s->card == CACREG_CARD_READ)
        tui_put(t, y++, x, w, ROLE_BAD, "This card has no identity certificate to register.");
    else if (s->card == CACREG_CARD_READING)
        tui_put(t, y++, x, w, ROLE_NORMAL, "Reading your card...");
    else if (s->card == CACREG_CARD_FAILED)
        y += tui_text(t, y, x, w, 3,
                      s->card_err == CACREG_ERR_NOT_CAC
                          ? cacreg_diagnose_card(CACREG_ERR_NOT_CAC).cause
                          : cacreg_diagnose_say(CACREG_SAY_CARD_UNREADABLE).cause,
                      ROLE_BAD);
    else
        tui_put(t, y++, x, w, ROLE_NORMAL, "Insert your CAC into the reader, then choose:");
    y++;
    for (const struct tui_key *k = sc->keys; k->key; k++)
        if (k->menu) {
            tui_put(t, y++, x, w, line == t->menu ? ROLE_SELECT : ROLE_NORMAL, "%s %s  %s",
                    line == t->menu ? ">" : " ", k->cap, k->menu);
            line++;
        }
    y++;
    if (y - l->y < l->lines - 2)
        tui_text(t, y, x, w, l->lines - (y - l->y),
                 "A CAC login registers the card to your account (a newer card replaces the "
                 "old one) and renews your portal password for 150 days.",
                 ROLE_DIM);
}

static void page_insert(const struct tui *t, const struct tui_layout *l)
{
    tui_put(t, l->y, l->x, l->w, ROLE_NORMAL, "Insert your CAC into the reader.");
    tui_text(t, l->y + 2, l->x, l->w, 4,
             "Chip first, face up. The reader-status panel shows when it is in; this goes on by "
             "itself.",
             ROLE_DIM);
}

/* What the flow is doing, in words, for the working steps. */
static const char *doing(const cacreg_flow_state *s)
{
    static const char *const asking[CACREG_REQ_COUNT] = {
        [CACREG_REQ_CAC_LOGIN] = "Logging in to the portal with your card",
        [CACREG_REQ_PASSWORD_LOGIN] = "Logging in",
        [CACREG_REQ_GET_REGISTRATION] = "Reading what is registered",
        [CACREG_REQ_CLEAR_REGISTRATION] = "Clearing the registered information",
        [CACREG_REQ_REGISTER] = "Registering your card",
        [CACREG_REQ_PASSWORD_RESET] = "Asking for a new password",
    };

    switch (s->step) {
    case CACREG_STEP_LOADING:
        return "Loading the smart-card software";
    case CACREG_STEP_READING:
        return "Reading your card";
    case CACREG_STEP_CHECKING_PIN:
        return "Checking your PIN with the card";
    case CACREG_STEP_ASKING:
        if (s->request < CACREG_REQ_COUNT && asking[s->request])
            return asking[s->request];
        break;
    default:
        break;
    }
    return "Working";
}

static void page_working(const struct tui *t, const struct tui_layout *l)
{
    static const char spinner[] = "|/-\\";
    const cacreg_flow_state *s = t->s;
    bool card = s->step != CACREG_STEP_ASKING || s->request == CACREG_REQ_CAC_LOGIN ||
                s->request == CACREG_REQ_REGISTER;

    tui_put(t, l->y, l->x, l->w, ROLE_NORMAL, "[%c] %s...", spinner[t->spin % 4], doing(s));
    if (card)
        tui_put(t, l->y + 2, l->x, l->w, ROLE_DIM, "Leave the card in the reader.");
}

static void page_pin(const struct tui *t, const struct tui_layout *l)
{
    const cacreg_flow_state *s = t->s;
    int x = l->x, y = l->y, w = l->w;

    tui_put(t, y++, x, w, ROLE_NORMAL, "%s",
            s->path == CACREG_PATH_REGISTER ? "Register: enter your CAC PIN"
                                            : "CAC login: enter your CAC PIN");
    if (s->chosen < s->info.ncerts)
        tui_put(t, y, x, w, ROLE_DIM, "Card of %s", s->info.certs[s->chosen].holder);
    y += 2;
    tui_put(t, y, x, 9, ROLE_NORMAL, "PIN:");
    y += 2;
    if (s->info.pin == CACREG_PIN_FINAL_TRY || s->tries_left == 1)
        y += tui_text(t, y, x, w, 2, "Last try: one more wrong PIN locks the card.", ROLE_BAD);
    else if (s->tries_left > 0)
        tui_put(t, y++, x, w, s->info.pin == CACREG_PIN_OK ? ROLE_DIM : ROLE_WARN,
                "%d tries left.", s->tries_left);
    else /* a CAC does not tell before a wrong PIN */
        tui_put(t, y++, x, w, ROLE_DIM, "A CAC locks after 3 wrong PINs in a row.");
    y++;
    if (s->problem.diagnosis.cause)
        y += tui_diagnosis(t, y, x, w, 5, s->problem.diagnosis, NULL, ROLE_BAD) + 1;
    tui_text(t, y, x, w, 3,
             "6 to 8 digits, as set at the CAC office. It goes to the card only, once.",
             ROLE_DIM);
}

static void page_fields(const struct tui *t, const struct tui_layout *l)
{
    const cacreg_flow_state *s = t->s;
    const struct tui_screen *sc = tui_screen(t);
    int x = l->x, y = l->y, w = l->w;

    tui_put(t, y, x, w, ROLE_NORMAL, "%s",
            s->step == CACREG_STEP_RESET         ? "I need a password"
            : s->step == CACREG_STEP_CREDENTIALS ? "Log in with your portal username and password"
                                                 : "Register: confirm with your portal password");
    y += 2;
    if (sc->fields[FIELD_USER]) {
        tui_put(t, y, x, 9, ROLE_NORMAL, "Username:");
        y += 2;
    }
    if (sc->fields[FIELD_SECRET]) {
        tui_put(t, y, x, 9, ROLE_NORMAL, "Password:");
        y += 2;
    }
    if (s->problem.diagnosis.cause) {
        y += tui_diagnosis(t, y, x, w, 5, s->problem.diagnosis, NULL, ROLE_BAD);
        if (s->last.attempts_left >= 0 && s->last.reason == CACREG_PORTAL_INVALID_CREDENTIALS &&
            s->problem.stage == CACREG_STAGE_PORTAL) {
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
                 "your account.",
                 ROLE_DIM);
}

static void page_registration(const struct tui *t, const struct tui_layout *l)
{
    const cacreg_flow_state *s = t->s;
    const cacreg_portal_result *a = &s->account, *r = &s->registration;
    int x = l->x, y = l->y, w = l->w;

    tui_put(t, y++, x, w, ROLE_NORMAL, "Logged in as %s (%s)", a->username, a->display_name);
    tui_put(t, y++, x, w, ROLE_DIM, "%s account, password good until %.10s",
            strcmp(a->account_type, "email_only") == 0 ? "Email-only" : "Full",
            a->password_expires[0] ? a->password_expires : "the directory says");
    y++;
    if (s->notice.diagnosis.cause)
        tui_put(t, y++, x, w, ROLE_GOOD, "%s", s->notice.diagnosis.cause);
    if (s->notice.diagnosis.cause && s->notice.detail[0])
        y += tui_text(t, y, x, w, 3, s->notice.detail, ROLE_WARN);
    if (r->registered) {
        tui_put(t, y++, x, w, ROLE_NORMAL, "Current registered information:");
        y += tui_text(t, y, x + 2, w - 2, 3, r->cert_subject, ROLE_NORMAL);
        /* What a directory matches on, for the help desk: issuer, serial, SHA-256. */
        if (r->cert_issuer[0])
            y += tui_text(t, y, x + 2, w - 2, 2, r->cert_issuer, ROLE_DIM);
        tui_put(t, y++, x + 2, w - 2, ROLE_DIM, "Serial %s", r->cert_serial);
        tui_put(t, y++, x + 2, w - 2, ROLE_DIM, "Expires %.10s, registered %.10s",
                r->cert_not_after, r->registered_at);
        if (strlen(r->cert_sha256) == 64) { /* in groups of 8, so that it wraps whole */
            char grouped[80], line[96];
            size_t n = 0;
            for (size_t i = 0; i < 64; i += 8)
                n += (size_t)snprintf(grouped + n, sizeof grouped - n, "%s%.8s", i ? " " : "",
                                      r->cert_sha256 + i);
            snprintf(line, sizeof line, "SHA-256 %s", grouped);
            y += tui_text(t, y, x + 2, w - 2, 2, line, ROLE_DIM);
        }
    } else {
        y += tui_text(t, y, x, w, 2, "Not registered: no CAC is registered to this account.",
                      ROLE_WARN);
    }
    y++;
    tui_put(t, y++, x, w, ROLE_NORMAL, "R  Register the CAC in the reader");
    if (cacreg_flow_can(t->flow, CACREG_ACT_CLEAR))
        tui_put(t, y++, x, w, ROLE_NORMAL, "C  Clear the registered information");
    tui_put(t, y, x, w, ROLE_NORMAL, "L  Log out");
}

static void page_confirm_clear(const struct tui *t, const struct tui_layout *l)
{
    tui_put(t, l->y, l->x, l->w, ROLE_WARN, "Clear the registered information?");
    tui_text(t, l->y + 2, l->x, l->w, 3, t->s->registration.cert_subject, ROLE_NORMAL);
    tui_text(t, l->y + 5, l->x, l->w, 4,
             "After this no CAC logs in to this account until one is registered again.",
             ROLE_DIM);
}

static void page_choose(const struct tui *t, const struct tui_layout *l)
{
    const cacreg_flow_state *s = t->s;
    const cacreg_cert *c;
    const char *why;
    int x = l->x, y = l->y, w = l->w;
    char until[16];
    struct tm tm;
    time_t na;

    tui_put(t, y++, x, w, ROLE_NORMAL, "Choose the certificate to register");
    tui_put(t, y++, x, w, ROLE_DIM, "* marks the one to choose: your name, identity.");
    y++;
    for (size_t i = 0; i < s->info.ncerts; i++, y++) {
        int role = i == t->cert ? ROLE_SELECT : ROLE_NORMAL;
        c = &s->info.certs[i];
        /* The name in 20 columns of its own: measured in columns, cut between characters. */
        tui_put(t, y, x, w, role, "%*s", w, "");
        tui_put(t, y, x, 4, role, "%s %c", i == t->cert ? ">" : " ", i == s->chosen ? '*' : ' ');
        tui_put(t, y, x + 4, 20, role, "%s", c->holder[0] ? c->holder : c->common_name);
        tui_put(t, y, x + 25, w - 25, role, "%s", cacreg_cert_kind_name(c->kind));
    }
    if (t->cert >= s->info.ncerts)
        return;
    c = &s->info.certs[t->cert];
    y++;
    tui_put(t, y++, x, w, ROLE_DIM, "Issued by %s", c->issuer_cn);
    na = (time_t)c->not_after;
    gmtime_r(&na, &tm);
    strftime(until, sizeof until, "%Y-%m-%d", &tm);
    tui_put(t, y++, x, w, ROLE_DIM, "Expires %s, serial %s", until, c->serial);
    why = t->cert == s->chosen ? NULL : cacreg_cert_why_not(c);
    if (why)
        y += tui_text(t, y, x, w, 3, why, ROLE_WARN);
    else if (t->cert == s->chosen && s->verdict != CACREG_VERDICT_OK)
        y += tui_text(t, y, x, w, 3, cacreg_diagnose_verdict(s->verdict).cause, ROLE_BAD);
    if (s->problem.diagnosis.cause && y - l->y < l->lines - 2)
        y += tui_diagnosis(t, y, x, w, 3, s->problem.diagnosis, s->problem.detail, ROLE_BAD);
    if (s->registration.registered && t->cert == s->chosen &&
        strcmp(s->registration.cert_serial, c->serial) != 0 && y - l->y < l->lines - 1)
        tui_text(t, y, x, w, 2, "Registering this card replaces the one registered now.",
                 ROLE_WARN);
}

static void page_done(const struct tui *t, const struct tui_layout *l)
{
    const cacreg_flow_state *s = t->s;
    const cacreg_portal_result *r = &s->last;
    int x = l->x, y = l->y, w = l->w;

    if (s->done == CACREG_DONE_RESET) {
        tui_put(t, y++, x, w, ROLE_GOOD, "Asked for a new password.");
        tui_text(t, y + 1, x, w, 4,
                 "If the account exists, instructions are on their way to its email address "
                 "on file.",
                 ROLE_NORMAL);
        return;
    }
    if (s->done == CACREG_DONE_CAC_LOGIN)
        tui_put(t, y++, x, w, ROLE_GOOD, "You are logged in as %s (%s).", r->username,
                r->display_name);
    if (r->registration == CACREG_REG_REPLACED)
        y += tui_text(t, y, x, w, 2,
                      "Your CAC is registered; it replaces the card registered before.",
                      ROLE_GOOD);
    else if (r->registration == CACREG_REG_UNCHANGED)
        tui_put(t, y++, x, w, ROLE_GOOD, "This CAC was registered already.");
    else
        tui_put(t, y++, x, w, ROLE_GOOD, "Your CAC is registered.");
    y++;
    tui_put(t, y++, x, w, ROLE_NORMAL, "Registered now:");
    y += tui_text(t, y, x + 2, w - 2, 3, r->cert_subject, ROLE_NORMAL);
    tui_put(t, y++, x + 2, w - 2, ROLE_DIM, "Serial %s, expires %.10s", r->cert_serial,
            r->cert_not_after);
    if (r->replaced_serial[0])
        tui_put(t, y++, x + 2, w - 2, ROLE_DIM, "Replaced: serial %s", r->replaced_serial);
    y++;
    if (s->done == CACREG_DONE_CAC_LOGIN && r->password_expires[0]) {
        char line[128];
        snprintf(line, sizeof line, "Your portal password is good until %.10s (150 days).",
                 r->password_expires);
        y += tui_text(t, y, x, w, 2, line, ROLE_NORMAL);
    }
    if (r->note[0]) /* the portal's words about the old card (a directory's caches) */
        y += tui_text(t, y, x, w, 3, r->note, ROLE_WARN);
    y++;
    tui_text(t, y, x, w, 2, "Press Enter to finish. Take your card with you.", ROLE_DIM);
}

static void page_failed(const struct tui *t, const struct tui_layout *l)
{
    const cacreg_flow_state *s = t->s;
    int x = l->x, y = l->y, w = l->w;

    tui_put(t, y, x, w, ROLE_BAD, "%s", "It did not work.");
    y += 2;
    y += tui_diagnosis(t, y, x, w, l->lines - 6, s->problem.diagnosis, s->problem.detail,
                       ROLE_BAD);
    if (s->problem.clock[0])
        y += 1 + tui_text(t, y + 1, x, w, 3, s->problem.clock, ROLE_WARN);
    y++;
    if (cacreg_flow_can(t->flow, CACREG_ACT_NEW_PASSWORD) && y - l->y < l->lines)
        tui_put(t, y++, x, w, ROLE_NORMAL, "N  ask for a new password");
    if (s->card_stuck && y - l->y < l->lines)
        tui_text(t, y, x, w, 3,
                 "cacreg has to stop for this: press Enter to close it, then start it again.",
                 ROLE_WARN);
    else if (y - l->y < l->lines)
        tui_put(t, y, x, w, ROLE_DIM, "Press Enter to go back.");
}

/* The help page wrapped into lines: how many, and (if start) where each begins. */
static int help_lines(const struct tui *t, int w, const char **start, int *len, int max,
                      char *buf, size_t size)
{
    const struct tui_help_page *p = &tui_help_pages[t->help_topic];
    int n = 0;

    snprintf(buf, size, "%s", p->text); /* ours: ASCII, lines end in \n */
    for (char *line = buf; line && *line && n < max;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        if (*line) {
            n += tui_wrap(line, w, start + n, len + n, max - n);
        } else { /* an empty line between paragraphs */
            start[n] = "";
            len[n++] = 0;
        }
        line = end ? end + 1 : NULL;
    }
    return n;
}

#define HELP_MAX_LINES 400

static void page_help(const struct tui *t, const struct tui_layout *l)
{
    char buf[8192];
    const char *start[HELP_MAX_LINES];
    int len[HELP_MAX_LINES], n, rows = l->lines - 3, x = l->x, y = l->y, w = l->w;

    if (!t->help_open) {
        tui_put(t, y, x, w, ROLE_NORMAL, "Help and troubleshooting");
        y += 2;
        for (size_t i = 0; i < tui_help_count; i++)
            tui_put(t, y++, x, w, (int)i == t->help_topic ? ROLE_SELECT : ROLE_NORMAL,
                    "%s %zu  %s", (int)i == t->help_topic ? ">" : " ", i + 1,
                    tui_help_pages[i].title);
        return;
    }
    n = help_lines(t, w, start, len, HELP_MAX_LINES, buf, sizeof buf);
    tui_put(t, y, x, w, ROLE_GOOD, "%s", tui_help_pages[t->help_topic].title);
    y += 2;
    for (int i = 0; i < rows && t->help_scroll + i < n; i++)
        tui_words(t, y + i, x, start[t->help_scroll + i], len[t->help_scroll + i]);
    if (n > rows)
        tui_put(t, y + rows, x, w, ROLE_DIM, "-- lines %d-%d of %d --", t->help_scroll + 1,
                t->help_scroll + rows < n ? t->help_scroll + rows : n, n);
}

void tui_help_key(struct tui *t, int key)
{
    char buf[8192];
    const char *start[HELP_MAX_LINES];
    int len[HELP_MAX_LINES], last;

    t->dirty = true;
    if (key == K_ESC || (key == 'q' && !t->help_open)) {
        if (t->help_open)
            t->help_open = false;
        else
            t->help = false;
    } else if (!t->help_open) {
        if (key == K_UP)
            t->help_topic = t->help_topic > 0 ? t->help_topic - 1 : (int)tui_help_count - 1;
        else if (key == K_DOWN)
            t->help_topic = (t->help_topic + 1) % (int)tui_help_count;
        else if (key >= '1' && key < '1' + (int)tui_help_count)
            t->help_topic = key - '1';
        if (key == K_ENTER || (key >= '1' && key < '1' + (int)tui_help_count)) {
            t->help_open = true;
            t->help_scroll = 0;
        }
    } else if (key == K_ENTER) {
        t->help_open = false;
    } else {
        int step = key == K_UP ? -1 : key == K_DOWN ? 1 : key == K_PAGE_UP ? -10
                 : key == K_PAGE_DOWN || key == ' ' ? 10 : 0;
        last = help_lines(t, t->layout.w, start, len, HELP_MAX_LINES, buf, sizeof buf) -
               (t->layout.lines - 3);
        t->help_scroll += step;
        if (t->help_scroll > last)
            t->help_scroll = last;
        if (t->help_scroll < 0)
            t->help_scroll = 0;
    }
}

/* ---- the table ---- */

static const struct tui_key start_keys[] = {
    {K_UP, "Up/Down", "Move", OP_UP, 0, NULL},
    {K_DOWN, NULL, NULL, OP_DOWN, 0, NULL},
    {K_ENTER, "Enter", "Select", OP_SELECT, 0, NULL},
    {'c', "C", "CAC", OP_ACT, CACREG_ACT_CAC_LOGIN, "Log in with your CAC (recommended)"},
    {'p', "P", "Password", OP_ACT, CACREG_ACT_PASSWORD_LOGIN, "Log in with username and password"},
    {'f', "F", "New password", OP_ACT, CACREG_ACT_NEW_PASSWORD, "I need a password"},
    {'h', "H", "Help", OP_HELP, 0, "Help and troubleshooting"},
    {'?', NULL, NULL, OP_HELP, 0, NULL},
    {'q', "Q", "Quit", OP_QUIT, 0, NULL},
    {'1', NULL, NULL, OP_ACT, CACREG_ACT_CAC_LOGIN, NULL},
    {'2', NULL, NULL, OP_ACT, CACREG_ACT_PASSWORD_LOGIN, NULL},
    {'3', NULL, NULL, OP_ACT, CACREG_ACT_NEW_PASSWORD, NULL},
    {'4', NULL, NULL, OP_HELP, 0, NULL},
    END_KEYS,
};

static const struct tui_key wait_keys[] = {ESC_BACK, HELP_KEY, END_KEYS};
static const struct tui_key working_keys[] = {
    {K_ESC, "Esc", "Cancel", OP_ACT, CACREG_ACT_BACK, NULL}, END_KEYS};
static const struct tui_key field_keys[] = {
    {K_ENTER, "Enter", "OK", OP_SUBMIT, 0, NULL}, ESC_BACK, END_KEYS};
static const struct tui_key registration_keys[] = {
    {'r', "R", "Register", OP_ACT, CACREG_ACT_REGISTER, NULL},
    {'c', "C", "Clear", OP_ACT, CACREG_ACT_CLEAR, NULL},
    {'l', "L", "Log out", OP_ACT, CACREG_ACT_BACK, NULL},
    HELP_KEY,
    {K_ESC, "Esc", "Log out", OP_ACT, CACREG_ACT_BACK, NULL},
    END_KEYS,
};
static const struct tui_key confirm_keys[] = {
    {'y', "Y", "Yes, clear it", OP_ACT, CACREG_ACT_YES, NULL},
    {'n', "N", "No", OP_ACT, CACREG_ACT_NO, NULL},
    ESC_BACK,
    END_KEYS,
};
static const struct tui_key choose_keys[] = {
    {K_UP, "Up/Down", "Move", OP_UP, 0, NULL},
    {K_DOWN, NULL, NULL, OP_DOWN, 0, NULL},
    {K_ENTER, "Enter", "Choose", OP_CHOOSE, 0, NULL},
    ESC_BACK,
    END_KEYS,
};
static const struct tui_key done_keys[] = {
    {K_ENTER, "Enter", "Finish", OP_ACT, CACREG_ACT_RESTART, NULL},
    HELP_KEY,
    {K_ESC, NULL, NULL, OP_ACT, CACREG_ACT_RESTART, NULL},
    END_KEYS,
};
static const struct tui_key failed_keys[] = {
    {K_ENTER, "Enter", "Back", OP_ACT, CACREG_ACT_BACK, NULL},
    {'n', "N", "New password", OP_ACT, CACREG_ACT_NEW_PASSWORD, NULL},
    HELP_KEY,
    ESC_BACK,
    END_KEYS,
};

static const struct tui_screen screens[CACREG_STEP_COUNT] = {
    [CACREG_STEP_START] = {"Start", start_keys, {false, false}, 0, 2, NULL, page_start},
    [CACREG_STEP_INSERT_CARD] = {"Insert your card", wait_keys, {false, false}, 0, 2, NULL,
                                 page_insert},
    [CACREG_STEP_LOADING] = {"Working", working_keys, {false, false}, 0, 2, NULL, page_working},
    [CACREG_STEP_READING] = {"Working", working_keys, {false, false}, 0, 2, NULL, page_working},
    [CACREG_STEP_PIN] = {"PIN", field_keys, {false, true}, 8, 3, "0-9 PIN  Backspace Erase ",
                         page_pin},
    [CACREG_STEP_CHECKING_PIN] = {"Working", working_keys, {false, false}, 0, 2, NULL,
                                  page_working},
    [CACREG_STEP_CREDENTIALS] = {"Password login", field_keys, {true, true}, 32, 2,
                                 "Tab Next field ", page_fields},
    [CACREG_STEP_ASKING] = {"Working", working_keys, {false, false}, 0, 2, NULL, page_working},
    [CACREG_STEP_REGISTRATION] = {"Registration", registration_keys, {false, false}, 0, 2, NULL,
                                  page_registration},
    [CACREG_STEP_CONFIRM_CLEAR] = {"Clear registration", confirm_keys, {false, false}, 0, 2, NULL,
                                   page_confirm_clear},
    [CACREG_STEP_CHOOSE_CERT] = {"Choose a certificate", choose_keys, {false, false}, 0, 2, NULL,
                                 page_choose},
    [CACREG_STEP_CONFIRM_PASSWORD] = {"Confirm", field_keys, {false, true}, 32, 2, NULL,
                                      page_fields},
    [CACREG_STEP_RESET] = {"New password", field_keys, {true, false}, 0, 2, NULL, page_fields},
    [CACREG_STEP_DONE] = {"Done", done_keys, {false, false}, 0, 2, NULL, page_done},
    [CACREG_STEP_FAILED] = {"Problem", failed_keys, {false, false}, 0, 2, NULL, page_failed},
};

/* The help pages' keys go to tui_help_key(); these rows are what the key bar says of them. */
static const struct tui_key help_list_keys[] = {
    {K_UP, "Up/Down", "Move", OP_HELP, 0, NULL},
    {K_ENTER, "Enter", "Read", OP_HELP, 0, NULL},
    {'1', "1-9", "Topic", OP_HELP, 0, NULL},
    {K_ESC, "Esc", "Back", OP_HELP, 0, NULL},
    END_KEYS,
};
static const struct tui_key help_page_keys[] = {
    {K_UP, "Up/Down", "Scroll", OP_HELP, 0, NULL},
    {' ', "Space", "Page", OP_HELP, 0, NULL},
    {K_ESC, "Esc", "Back", OP_HELP, 0, NULL},
    END_KEYS,
};
static const struct tui_screen help_list = {"Help", help_list_keys, {false, false}, 0, 2, NULL,
                                            page_help};
static const struct tui_screen help_page = {"Help", help_page_keys, {false, false}, 0, 2, NULL,
                                            page_help};

const struct tui_screen *tui_screen(const struct tui *t)
{
    if (t->help)
        return t->help_open ? &help_page : &help_list;
    return &screens[t->s->step];
}
