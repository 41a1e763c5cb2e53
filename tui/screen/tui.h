/* The full-screen front end: what its files share. It draws the core's flow
 * state and turns keys into the flow's actions; it decides nothing about
 * cards or portals. Each step has a screen (screens.c): its title, its keys
 * (which the key handler and the key bar both read), its fields and its
 * page. The loop (tui.c) handles keys and the engine's events and marks
 * what changed; drawing (draw.c) draws and changes nothing. */
#ifndef TUI_H
#define TUI_H

#include <stdbool.h>
#include <stddef.h>
#include <wchar.h>

#include <form.h>
#include <ncurses.h>

#include "cacreg.h"

/* The smallest terminal the screens are laid out for. */
#define TUI_MIN_COLS 80
#define TUI_MIN_ROWS 24

/* The reader-status panel's width, at the right. */
#define TUI_PANEL_W 30

/* Semantic colours; the scheme maps them to curses attributes. */
enum tui_role {
    ROLE_NORMAL,
    ROLE_TITLE,   /* the top bar */
    ROLE_KEYS,    /* the key bar */
    ROLE_GOOD,    /* a prerequisite met, a success */
    ROLE_BAD,     /* a failure, a prerequisite missing */
    ROLE_WARN,    /* something to watch: last PIN try, a notice */
    ROLE_SELECT,  /* the highlighted menu line */
    ROLE_FIELD,   /* an entry field */
    ROLE_DIM,     /* explanations */
    ROLE_COUNT
};

/* The help pages, in their menu's order. */
struct tui_help_page {
    const char *title;
    const char *text; /* paragraphs separated by "\n\n"; "\n- " starts a list item */
};
extern const struct tui_help_page tui_help_pages[];
extern const size_t tui_help_count;

/* Keys as the screens name them: a lower-case character, or one of these. */
enum {
    K_ENTER = 0x110000, /* past Unicode: never a character */
    K_ESC,
    K_UP,
    K_DOWN,
    K_TAB,
    K_BACKSPACE,
    K_PAGE_UP,
    K_PAGE_DOWN,
    K_F1,
    K_OTHER,
};

/* What a key does: a flow action, or something of the front end's own. */
enum tui_op {
    OP_ACT,    /* cacreg_flow_do(act) */
    OP_HELP,   /* the help pages over the flow */
    OP_QUIT,   /* not in the kiosk */
    OP_UP,     /* the highlighted line */
    OP_DOWN,
    OP_SELECT, /* START: the highlighted way in */
    OP_CHOOSE, /* CHOOSE_CERT: the highlighted certificate */
    OP_SUBMIT, /* a step with fields: what was typed (or the next field) */
};

/* One key of a screen: the key bar shows cap and label when label is set. */
struct tui_key {
    int key;
    const char *cap;   /* "C", "Enter", "Esc" */
    const char *label; /* "CAC", "Back"; NULL: works, not shown */
    enum tui_op op;
    cacreg_action_kind act; /* OP_ACT, and OP_SELECT's line */
    const char *menu;  /* START: the menu line of this way in */
};

/* Where things go on a screen of this size; computed before drawing. */
struct tui_layout {
    int rows, cols;
    bool too_small;
    int y, x, w, lines; /* the page: top, left, width, rows */
    int panel_h;
};

/* The entry fields a screen can have. */
enum { FIELD_USER, FIELD_SECRET, FIELD_MAX };

struct tui;

/* A step's screen: a mode of the front end. */
struct tui_screen {
    const char *title;
    const struct tui_key *keys;           /* ends with key 0 */
    bool fields[FIELD_MAX];               /* which entry fields it has */
    int secret_width;                     /* columns of the masked field */
    int field_row;                        /* the first field's row on the page */
    const char *field_keys;               /* the fields' own keys, for the key bar */
    void (*draw)(const struct tui *t, const struct tui_layout *l);
};

struct tui {
    cacreg_engine *engine;
    cacreg_flow *flow;
    const cacreg_flow_state *s;
    bool kiosk;
    bool once;             /* --once: the program ends with the person's session */
    bool audit;            /* the kiosk: results to the system log */
    int exit_code;
    bool left_start;       /* --once: the flow left START */
    bool had_card;         /* --once: a card was in */
    bool done_seen;        /* --once: the person's session reached DONE */
    cacreg_fail fail_seen; /* --once: or a failure of this kind */
    long long start_deadline; /* --once: idle at START until then (ms, monotonic) */
    cacreg_step audited;   /* the step the audit trail last saw */
    bool ascii;            /* the locale is not UTF-8: ASCII lines, ASCII text */
    bool mono;             /* --mono: the monochrome scheme even where colours work */
    int attr[ROLE_COUNT];  /* the scheme in use */
    struct tui_layout layout;
    unsigned long drawn;   /* the flow generation on screen */
    bool dirty;            /* the front end's own state changed */
    bool quit;

    cacreg_step step_seen; /* the step the front end's state below is for */
    int menu;              /* START: the highlighted way in */
    size_t cert;           /* CHOOSE_CERT: the highlighted certificate */
    bool help;             /* the help pages are shown over the flow */
    int help_topic;
    bool help_open;        /* reading a page (not the list) */
    int help_scroll;

    /* The step's form: a username field and/or a masked field that shows '*'. */
    FORM *form;
    FIELD *fields[FIELD_MAX + 1];
    int field_of[FIELD_MAX]; /* index in fields[] of FIELD_USER/FIELD_SECRET, -1 none */
    WINDOW *form_win;
    cacreg_step form_step; /* the step the form was made for */
    int focus;             /* FIELD_USER or FIELD_SECRET */
    char username[128];    /* the username field's text */
    bool burst_refused;    /* a paste ran over a field: drop the rest of it */
    char hint[160];        /* the front end's own one-line message ("digits only") */
    unsigned spin;         /* the progress indicator's phase, while busy */
};

/* True when the terminfo database has the terminal TERM names (tui/term.c). */
bool tui_term_known(void);

/* `cacreg [options]`: runs the front end until the person quits; the exit status. */
int tui_main(int argc, char **argv);

/* ---- screens.c ---- */

/* The screen shown now: the step's, or the help pages'. */
const struct tui_screen *tui_screen(const struct tui *t);

/* The help pages' keys, scrolling and topics. */
void tui_help_key(struct tui *t, int key);

/* ---- draw.c ---- */

/* Where the page, the panel and the bars go for the terminal's size now. */
void tui_layout(struct tui_layout *l, int rows, int cols);

/* Draws everything for the current state; changes nothing but the terminal. */
void tui_draw(const struct tui *t);

/* Prints at most width columns of a line at y, x in a role. */
void tui_put(const struct tui *t, int y, int x, int width, int role, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Wraps text into width columns from row y, col x, at most max_rows rows; returns rows used. */
int tui_text(const struct tui *t, int y, int x, int width, int max_rows, const char *text,
             int role);

/* Our own text (a help page's line), as it is: never outside text. */
void tui_words(const struct tui *t, int y, int x, const char *ours, int len);

/* A cause and the steps that fix it, with the detail when it adds something; rows used. */
int tui_diagnosis(const struct tui *t, int y, int x, int w, int rows, cacreg_diagnosis d,
                  const char *detail, int role);

/* Splits text into lines of at most width columns, at spaces where it can;
 * returns how many (at most max), with where each starts and how long it is. */
int tui_wrap(const char *text, int width, const char **start, int *len, int max);

/* ---- form.c ---- */

/* Makes, moves or drops the form for the screen shown now. */
void tui_form_sync(struct tui *t);

/* Frees the form and wipes what its fields held. */
void tui_form_free(struct tui *t);

/* A key while a field has the focus; false when it is not the fields' (a screen key). */
bool tui_form_key(struct tui *t, int kind, wint_t wc, int key);

/* Sets the front end's one-line message. */
void tui_hint(struct tui *t, const char *text);

#endif
