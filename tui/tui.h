/* The full-screen front end: what its files share. It draws the core's flow
 * state and turns keys into the flow's actions; it decides nothing about
 * cards or portals. */
#ifndef TUI_H
#define TUI_H

#include <stdbool.h>
#include <stddef.h>

#include <form.h>
#include <ncurses.h>

#include "cacreg.h"

/* The smallest terminal the screens are laid out for. */
#define TUI_MIN_COLS 80
#define TUI_MIN_ROWS 24

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

/* The entry fields a step can have. */
enum { FIELD_USER, FIELD_SECRET, FIELD_MAX };

struct tui {
    cacreg_flow *flow;
    const cacreg_flow_state *s;
    bool kiosk;
    bool ascii;            /* the locale is not UTF-8: ASCII lines, ASCII text */
    bool mono;             /* --mono: the monochrome scheme even where colours work */
    int attr[ROLE_COUNT];  /* the scheme in use */
    int rows, cols;
    unsigned long drawn;   /* the flow generation on screen */
    bool dirty;            /* the front end's own state changed */
    bool quit;

    int menu;              /* START: the highlighted way in */
    size_t cert;           /* CHOOSE_CERT: the highlighted certificate */
    bool help;             /* the help pages are shown over the flow */
    int help_topic;
    bool help_open;        /* reading a page (not the list) */
    int help_scroll;

    /* The step's form: a username field and/or a masked field that shows '*'. */
    cacreg_step form_step; /* the step the form was made for */
    FORM *form;
    FIELD *fields[FIELD_MAX + 1];
    int field_of[FIELD_MAX]; /* index in fields[] of FIELD_USER/FIELD_SECRET, -1 none */
    WINDOW *form_win;
    int form_y, form_x;    /* where the form window sits */
    int focus;             /* FIELD_USER or FIELD_SECRET */
    char username[128];    /* the username field's text */
    bool burst_refused;    /* a paste ran over a field: drop the rest of it */
    char hint[160];        /* the front end's own one-line message ("digits only") */
    unsigned spin;         /* the progress indicator's phase, while busy */
};

/* `cacreg [options]`: runs the front end until the person quits; the exit status. */
int tui_main(int argc, char **argv);

/* Draws everything for the current state; the loop calls it when something changed. */
void tui_draw(struct tui *t);

/* Wraps text into width columns from row y, col x, at most max_rows rows; returns rows used. */
int tui_text(struct tui *t, int y, int x, int width, int max_rows, const char *text, int role);

/* The form for the current step, made or kept (draw calls it). */
void tui_form_sync(struct tui *t);

/* Frees the form and wipes what its fields held. */
void tui_form_free(struct tui *t);

#endif
