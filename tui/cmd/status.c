/*
 * `cacreg status`: the readers, the card, its token and PIN state, its
 * certificates with the chosen one marked, and the pre-flight verdict,
 * without curses; --json for machines, --watch for events as they happen.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "text.h"
#include "out.h"

struct status {
    cacreg_config cfg;
    cacreg_trust *trust;
    char trust_error[256];
    cacreg_token *token;
    char token_error[256];
    cacreg_worker *worker;
    cacreg_watcher *watcher;     /* NULL for a card forwarded over SSH: */
    bool forwarded;              /* the module's slots are the readers, */
    cacreg_readers slots;        /* as the last look at them saw them */
    char serials[CACREG_MAX_READERS][CACREG_SERIAL_MAX];
    char slots_error[256];
    int events[2];
    bool json, watch;
    bool stuck;                  /* a job did not end within card_timeout */
    /* the job in flight */
    char job_reader[128];
    cacreg_card job_info;
    char job_error[256];
    size_t job_chosen;           /* the certificate to register, ncerts if none */
    cacreg_verdict job_verdict;  /* pre-flight on it (may ask OCSP: done in the job) */
    char job_detail[512];
};

static struct status st; /* one per process; large (certificates) */

static cacreg_err job_load(void *arg)
{
    struct status *s = arg;

    return cacreg_token_load(&s->token, s->cfg.pkcs11_module, s->cfg.opensc_file_cache,
                             s->cfg.pin_max_tries, s->token_error, sizeof s->token_error);
}

static cacreg_err job_read(void *arg)
{
    struct status *s = arg;
    cacreg_card *info = &s->job_info;
    cacreg_err rc;

    rc = cacreg_token_read(s->token, s->job_reader[0] ? s->job_reader : NULL, info, s->job_error,
                           sizeof s->job_error);
    /* Less than a CAC holds (OpenSC answers a card pulled mid-read so, without an
     * error): a result only if the card is still there. */
    if ((rc != CACREG_OK || info->ncerts < 3) && s->job_reader[0] &&
        !(s->forwarded ? cacreg_token_card_stays(s->token, s->job_reader, info->serial)
                       : cacreg_reader_card_stays(s->job_reader, 800))) {
        cacreg_token_forget(s->token);
        snprintf(s->job_error, sizeof s->job_error, "The card was removed while it was read.");
        return CACREG_ERR_NO_CARD;
    }
    if (rc != CACREG_OK)
        return rc;
    s->job_chosen = cacreg_cert_choose(info->certs, info->ncerts);
    s->job_verdict = CACREG_VERDICT_OK;
    s->job_detail[0] = '\0';
    if (s->job_chosen < info->ncerts)
        s->job_verdict = cacreg_cert_preflight(&info->certs[s->job_chosen],
                                               cacreg_token_der(s->token, s->job_chosen),
                                               s->trust, (long long)time(NULL), s->job_detail,
                                               sizeof s->job_detail);
    return CACREG_OK;
}

/* A forwarded card: the module's slots, looked at afresh. */
static cacreg_err job_slots(void *arg)
{
    struct status *s = arg;

    return cacreg_token_slots(s->token, &s->slots, s->serials, s->slots_error,
                              sizeof s->slots_error);
}

/* Runs one job on the worker and waits for it, at most card_timeout: after a card that
 * stopped answering (the worker stuck in a card call), no job runs again. */
static cacreg_err run_job(cacreg_job_fn fn)
{
    cacreg_err rc;

    if (st.stuck)
        return CACREG_ERR_TIMEOUT;
    rc = cli_run_job(st.worker, st.events[0], fn, &st, st.cfg.card_timeout_s * 1000);
    st.stuck = rc == CACREG_ERR_TIMEOUT;
    return rc;
}

/* A reader's name for JSON, which takes valid UTF-8 only (a driver's name may not be). */
static json_t *utf8(const char *s)
{
    char buf[512];

    cacreg_text_utf8_repair(buf, sizeof buf, s, strlen(s));
    return json_string(buf);
}

static const char *pcsc_name(cacreg_pcsc_status s)
{
    switch (s) {
    case CACREG_PCSC_UP:
        return "up";
    case CACREG_PCSC_DOWN:
        return "down";
    case CACREG_PCSC_DENIED:
        return "denied";
    case CACREG_PCSC_STARTING:
        break;
    }
    return "starting";
}

static const char *pin_name(cacreg_pin_state p)
{
    static const char *const names[] = {"unknown", "ok", "count_low", "final_try", "locked"};

    return (unsigned)p < 5 ? names[p] : "unknown";
}

static void day(long long t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(buf, size, "%Y-%m-%d", &tm);
}

static void atr_hex(const cacreg_reader *r, char *buf, size_t size)
{
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < r->atr_len && n + 4 < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%02X", i ? " " : "", r->atr[i]);
}

/* The verdict on the card the last read job saw, and the exit code it gives. */
static int card_verdict(const cacreg_card *info, size_t *chosen, cacreg_verdict *v,
                        char *detail, size_t size)
{
    *chosen = st.job_chosen;
    *v = st.job_verdict;
    snprintf(detail, size, "%s", st.job_detail);
    if (!info->recognised) {
        snprintf(detail, size, "The card has no certificates this program can read.");
        return CLI_CARD;
    }
    if (*chosen >= info->ncerts) {
        snprintf(detail, size, "None of the card's certificates is an identity certificate.");
        *v = CACREG_VERDICT_WRONG_KIND;
        return CLI_CARD;
    }
    if (*v != CACREG_VERDICT_OK || info->pin == CACREG_PIN_LOCKED)
        return CLI_CARD;
    return CLI_OK;
}

static json_t *card_json(const cacreg_card *info, int *code)
{
    char detail[512], nb[16], na[16];
    json_t *certs = json_array(), *card;
    cacreg_verdict v;
    size_t chosen;

    *code = card_verdict(info, &chosen, &v, detail, sizeof detail);
    for (size_t i = 0; i < info->ncerts; i++) {
        const cacreg_cert *c = &info->certs[i];
        const char *why = i == chosen ? NULL : cacreg_cert_why_not(c);
        json_t *obj;
        char mapping[1024];
        day(c->not_before, nb, sizeof nb);
        day(c->not_after, na, sizeof na);
        cacreg_cert_ad_mapping(c, mapping, sizeof mapping);
        obj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:b, s:o, s:b}",
                        "label", info->cert_labels[i], "id", info->cert_ids[i], "kind",
                        cacreg_cert_kind_name(c->kind), "holder", c->holder, "edipi", c->edipi,
                        "subject", c->subject, "issuer", c->issuer, "serial", c->serial,
                        "not_before", nb, "not_after", na, "days_left",
                        (json_int_t)cacreg_cert_days_left(c, (long long)time(NULL)), "chosen",
                        i == chosen, "why_not", why ? json_string(why) : json_null(),
                        "edipi_mismatch", c->edipi_mismatch);
        /* What a directory matches on (sssd: issuer and serial; AD: the strong mapping). */
        json_object_set_new(obj, "serial_decimal", json_string(c->serial_dec));
        json_object_set_new(obj, "sha256", json_string(c->sha256));
        json_object_set_new(obj, "directory_mapping", mapping[0] ? json_string(mapping) : json_null());
        json_array_append_new(certs, obj);
    }
    card = json_pack("{s:s, s:s, s:s, s:s, s:b, s:{s:s, s:o}, s:o, s:o, s:s, s:s}", "reader",
                     info->reader, "label", info->label, "model", info->model, "serial",
                     info->serial, "recognised", info->recognised, "pin", "state",
                     pin_name(info->pin), "tries_left",
                     info->tries_left >= 0 ? json_integer(info->tries_left) : json_null(),
                     "certificates", certs, "chosen",
                     chosen < info->ncerts ? json_integer((json_int_t)chosen) : json_null(),
                     "verdict", cacreg_verdict_name(v), "verdict_detail", detail);
    return card;
}

static void print_card(const cacreg_card *info, int *code)
{
    char detail[512], na[16];
    cacreg_verdict v;
    size_t chosen;

    *code = card_verdict(info, &chosen, &v, detail, sizeof detail);
    out_printf(stdout, "Card:           %s (%s %s, serial %s)\n", info->label[0] ? info->label : "(no label)",
           info->manufacturer, info->model, info->serial);
    switch (info->pin) {
    case CACREG_PIN_LOCKED:
        out_printf(stdout, "PIN:            locked after too many wrong tries; the CAC office can reset it\n");
        break;
    case CACREG_PIN_FINAL_TRY:
        out_printf(stdout, "PIN:            1 try left: one more wrong PIN locks the card\n");
        break;
    case CACREG_PIN_COUNT_LOW:
        out_printf(stdout, "PIN:            %d tries left\n", info->tries_left);
        break;
    default:
        out_printf(stdout, "PIN:            ok\n");
        break;
    }
    out_printf(stdout, "Certificates:   %zu\n", info->ncerts);
    for (size_t i = 0; i < info->ncerts; i++) {
        const cacreg_cert *c = &info->certs[i];
        day(c->not_after, na, sizeof na);
        out_printf(stdout, "  %s %-16s %s, EDIPI %s, issuer %s, serial %s, expires %s (%ld days)\n",
               i == chosen ? "*" : " ", cacreg_cert_kind_name(c->kind), c->holder,
               c->edipi[0] ? c->edipi : "-", c->issuer_cn, c->serial, na,
               cacreg_cert_days_left(c, (long long)time(NULL)));
        if (i != chosen && cacreg_cert_why_not(c))
            out_printf(stdout, "    %s\n", cacreg_cert_why_not(c));
        if (i == chosen) { /* what a directory will match on, for the help desk to compare */
            char mapping[1024];
            cacreg_cert_ad_mapping(c, mapping, sizeof mapping);
            out_printf(stdout, "    issuer  %s\n", c->issuer);
            out_printf(stdout, "    serial  %s (decimal %s)\n", c->serial, c->serial_dec);
            out_printf(stdout, "    SHA-256 %s\n", c->sha256);
            if (mapping[0])
                out_printf(stdout, "    AD      %s\n", mapping);
        }
    }
    out_printf(stdout, "Pre-flight:     %s: %s\n", cacreg_verdict_name(v), detail);
}

/* Shows the card the last read job saw (into jcards with --json); returns its exit code. */
static int show_card(json_t *jcards)
{
    int code;

    if (st.json)
        json_array_append_new(jcards, card_json(&st.job_info, &code));
    else
        print_card(&st.job_info, &code);
    return code;
}

/* One full report; returns the exit code it stands for. */
static int report(void)
{
    cacreg_readers readers;
    json_t *root = NULL, *jreaders = NULL, *jcards = NULL;
    int code = CLI_NO_CARD;
    char atr[128];
    cacreg_err rc;

    if (st.forwarded)
        readers = st.slots;
    else
        cacreg_watcher_snapshot(st.watcher, &readers);
    if (st.json) {
        root = json_object();
        json_object_set_new(root, "pcsc", json_pack("{s:s, s:s, s:b}", "status",
                                                    pcsc_name(readers.status), "detail",
                                                    readers.detail, "forwarded", st.forwarded));
        json_object_set_new(root, "module", st.token ? json_string(cacreg_token_module(st.token))
                                                     : json_null());
        if (!st.token)
            json_object_set_new(root, "module_error", json_string(st.token_error));
        json_object_set_new(root, "trust_error",
                            st.trust ? json_null() : json_string(st.trust_error));
        jreaders = json_array();
        jcards = json_array();
        json_object_set_new(root, "readers", jreaders);
        json_object_set_new(root, "cards", jcards);
    } else if (st.forwarded) {
        out_printf(stdout, "Smart cards:    %s%s%s\n", readers.status == CACREG_PCSC_UP
                                                      ? "the card reader of your computer, over SSH"
                                                      : "your computer's card cannot be reached",
                   readers.status != CACREG_PCSC_UP && readers.detail[0] ? ": " : "",
                   readers.status != CACREG_PCSC_UP ? readers.detail : "");
        out_printf(stdout, "PKCS#11 module: %s\n", st.token ? cacreg_token_module(st.token) : st.token_error);
        if (!st.trust)
            out_printf(stdout, "CA bundle:      %s\n", st.trust_error);
        if (readers.status == CACREG_PCSC_UP && readers.count == 0)
            out_printf(stdout, "Readers:        none with a card\n");
    } else {
        out_printf(stdout, "Smart cards:    %s%s%s\n", readers.status == CACREG_PCSC_UP ? "pcscd running"
                                           : readers.status == CACREG_PCSC_DENIED
                                               ? "pcscd refuses this session"
                                               : "pcscd not running",
               readers.detail[0] ? ": " : "", readers.detail);
        out_printf(stdout, "PKCS#11 module: %s\n", st.token ? cacreg_token_module(st.token) : st.token_error);
        if (readers.status == CACREG_PCSC_DENIED) {
            char path[128], rule[1024];
            const char *user = getenv("USER");
            cacreg_pcsc_polkit_rule(user ? user : "USERNAME", path, sizeof path, rule,
                                    sizeof rule);
            out_printf(stdout, "                An administrator can allow it with this rule in %s:\n",
                       path);
            out_words(stdout, rule); /* the user's name in it is quoted for JavaScript */
        }
        if (!st.trust)
            out_printf(stdout, "CA bundle:      %s\n", st.trust_error);
        if (readers.status == CACREG_PCSC_UP && readers.count == 0)
            out_printf(stdout, "Readers:        none connected\n");
    }
    if (readers.status != CACREG_PCSC_UP || !st.token)
        code = CLI_MIDDLEWARE;
    for (size_t i = 0; i < readers.count; i++) {
        const cacreg_reader *r = &readers.readers[i];
        atr_hex(r, atr, sizeof atr);
        if (st.json)
            json_array_append_new(jreaders,
                                  json_pack("{s:o, s:b, s:b, s:b, s:s}", "name", utf8(r->name),
                                            "card_present", r->card_present, "exclusive",
                                            r->exclusive, "mute", r->mute, "atr", atr));
        else
            out_printf(stdout, "Reader:         %s: %s%s%s\n", r->name,
                   r->card_present ? "card present" : "no card", r->mute ? " (not answering)" : "",
                   r->exclusive ? " (in use by another program)" : "");
        if (!r->card_present || !st.token || code == CLI_MIDDLEWARE)
            continue;
        snprintf(st.job_reader, sizeof st.job_reader, "%s", r->name);
        rc = run_job(job_read);
        if (rc == CACREG_ERR_CANCELLED)
            break; /* a signal: the report ends here */
        if (rc != CACREG_OK) {
            /* A job still stuck in the card may yet write its error: not read here. */
            const char *why = rc == CACREG_ERR_TIMEOUT
                                  ? "The card does not answer; take it out and put it back."
                                  : st.job_error;
            if (st.json)
                json_array_append_new(jcards, json_pack("{s:o, s:b, s:s}", "reader", utf8(r->name),
                                                        "recognised", 0, "error", why));
            else
                out_printf(stdout, "Card:           %s\n", why);
            code = code == CLI_OK ? CLI_OK : rc == CACREG_ERR_NO_CARD ? CLI_NO_CARD : CLI_CARD;
            continue;
        }
        int card_code = show_card(jcards);
        if (code != CLI_OK)
            code = card_code;
    }
    /* No PC/SC and no forwarding we know of: the module's own slots. */
    if (readers.status != CACREG_PCSC_UP && st.token && !st.forwarded) {
        st.job_reader[0] = '\0';
        if (run_job(job_read) == CACREG_OK)
            code = show_card(jcards);
    }
    if (st.json) {
        json_object_set_new(root, "exit", json_integer(code));
        json_dumpf(root, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
        out_printf(stdout, "\n");
        json_decref(root);
    }
    fflush(stdout);
    return code;
}

/* Prints one event line in --watch mode. */
static void print_event(const cacreg_event *ev)
{
    static const char *const names[] = {"readers",     "card_in",  "card_out", "pcsc_up",
                                        "pcsc_down",   "pcsc_denied", "job_done", "poll"};
    char when[32];
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%H:%M:%S", &tm);
    if (st.json) {
        char at[48];
        json_t *o;
        snprintf(at, sizeof at, "%s.%03ld", when, ts.tv_nsec / 1000000);
        o = json_pack("{s:s, s:s, s:o}", "event", names[ev->type], "time", at, "reader",
                      utf8(ev->reader));
        if (o)
            json_dumpf(o, stdout, JSON_COMPACT);
        json_decref(o);
        out_printf(stdout, "\n");
    } else
        out_printf(stdout, "%s.%03ld %s%s%s\n", when, ts.tv_nsec / 1000000, names[ev->type],
               ev->reader[0] ? " " : "", ev->reader);
    fflush(stdout);
}

/* A forwarded card has no PC/SC events: its slots looked at every POLL_MS, the changes
 * told as the watcher tells them. */
#define POLL_MS 700
static void poll_slots(void)
{
    cacreg_readers was = st.slots;
    char was_serials[CACREG_MAX_READERS][CACREG_SERIAL_MAX];
    bool changed = false;

    memcpy(was_serials, st.serials, sizeof was_serials);
    run_job(job_slots);
    for (size_t i = 0; i < was.count; i++) { /* out: gone, or another card */
        bool same = false;
        for (size_t k = 0; k < st.slots.count; k++)
            if (strcmp(st.slots.readers[k].name, was.readers[i].name) == 0)
                same = st.slots.readers[k].card_present == was.readers[i].card_present &&
                       strcmp(st.serials[k], was_serials[i]) == 0;
        if (was.readers[i].card_present && !same) {
            cacreg_event ev = {.type = CACREG_EV_CARD_OUT};
            snprintf(ev.reader, sizeof ev.reader, "%s", was.readers[i].name);
            print_event(&ev);
            cacreg_token_forget(st.token);
        }
        changed = changed || !same;
    }
    for (size_t k = 0; k < st.slots.count; k++) { /* in: new, or another card */
        bool same = false;
        for (size_t i = 0; i < was.count; i++)
            if (strcmp(st.slots.readers[k].name, was.readers[i].name) == 0)
                same = was.readers[i].card_present == st.slots.readers[k].card_present &&
                       strcmp(st.serials[k], was_serials[i]) == 0;
        if (st.slots.readers[k].card_present && !same) {
            cacreg_event ev = {.type = CACREG_EV_CARD_IN};
            snprintf(ev.reader, sizeof ev.reader, "%s", st.slots.readers[k].name);
            print_event(&ev);
            changed = true;
        }
    }
    if (st.slots.status != was.status) {
        cacreg_event ev = {.type = st.slots.status == CACREG_PCSC_UP ? CACREG_EV_PCSC_UP
                                                                     : CACREG_EV_PCSC_DOWN};
        print_event(&ev);
    }
    if (changed && st.slots.status == CACREG_PCSC_UP)
        report();
}

static int watch_loop(void)
{
    for (;;) {
        struct pollfd pfd[2] = {{.fd = st.events[0], .events = POLLIN},
                                {.fd = cli_signal_fd(), .events = POLLIN}};
        cacreg_event ev;

        int n = poll(pfd, 2, st.forwarded ? POLL_MS : -1);

        if (n == 0 && st.forwarded && st.token) {
            poll_slots();
            continue;
        }
        if (n < 0)
            continue;
        if (cli_interrupted())
            return CLI_OK; /* --watch ends when interrupted */
        while (cacreg_event_read(st.events[0], &ev) == CACREG_OK) {
            if (ev.type == CACREG_EV_READERS || ev.type == CACREG_EV_JOB_DONE)
                continue;
            print_event(&ev);
            if (ev.type == CACREG_EV_CARD_OUT || ev.type == CACREG_EV_PCSC_DOWN)
                cacreg_token_forget(st.token); /* the card left: forget it and its PIN */
            if (ev.type == CACREG_EV_CARD_IN && st.token)
                report();
        }
    }
}

int cmd_status(int argc, char **argv)
{
    static const char synopsis[] = "cacreg status [options]";
    static const char about[] =
        "Shows the smart-card service, the readers, the card and its PIN state, the\n"
        "card's certificates (* marks the one to register) and the pre-flight verdict.\n"
        "--wait MS: how long to wait for the smart-card service at start (default 3000).\n"
        "\n"
        "Exit status: 0 a card is ready to register; 1 no reader or no card;\n"
        "2 smart-card service or PKCS#11 module missing or refusing; 3 the card\n"
        "cannot be used as it is (see Pre-flight); 4 bad options or configuration.\n";
    struct cli_opts o;
    int code, wait_ms;

    st.events[0] = st.events[1] = -1;
    code = cli_parse(CMD_STATUS, argc, argv, synopsis, about, &o, &st.cfg);
    if (code != CLI_OK)
        return code == CLI_HELP ? CLI_OK : code;
    st.json = o.json;
    st.watch = o.watch;
    wait_ms = o.wait_ms >= 0 ? o.wait_ms : 3000;

    if (cacreg_trust_load(&st.trust, st.cfg.ca_bundle, st.cfg.crl_file, st.trust_error,
                          sizeof st.trust_error) != CACREG_OK)
        st.trust = NULL;
    else if (st.cfg.ocsp_url[0])
        cacreg_trust_set_ocsp(st.trust, st.cfg.ocsp_url, st.cfg.connect_timeout_s);
    st.forwarded = cacreg_token_module_forwarded(st.cfg.pkcs11_module);
    st.slots.forwarded = st.forwarded;
    if (!cli_signals_block() || cacreg_event_pipe(st.events) != CACREG_OK ||
        cacreg_worker_start(&st.worker, st.events[1]) != CACREG_OK ||
        (!st.forwarded &&
         cacreg_watcher_start(&st.watcher, st.cfg.reader_filter, st.events[1]) != CACREG_OK)) {
        out_printf(stderr, "cacreg: cannot start: %s\n", cacreg_strerror(CACREG_ERR_SYSTEM));
        return CLI_MIDDLEWARE;
    }
    if (run_job(job_load) != CACREG_OK)
        st.token = NULL;

    if (st.forwarded && st.token) /* no pcscd to wait for: the slots, once */
        run_job(job_slots);
    else if (st.forwarded)
        snprintf(st.slots.detail, sizeof st.slots.detail, "%s", st.token_error);
    else
        cli_wait_pcsc(st.watcher, wait_ms);
    code = report();
    if (st.watch && !cli_interrupted())
        code = watch_loop();
    else if (cli_interrupted())
        code = 128 + cli_interrupted();

    fflush(stdout);
    cacreg_watcher_stop(st.watcher);
    if (!cacreg_worker_stop(st.worker, 200) || !cacreg_token_free_within(st.token, 500))
        _exit(code); /* a job or the module stuck in a card call: nothing secret was typed here */
    cacreg_trust_free(st.trust);
    close(st.events[0]);
    close(st.events[1]);
    return code;
}
