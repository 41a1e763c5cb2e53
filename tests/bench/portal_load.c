/*
 * portal-load: drives a portal (docs/portal-api.md) with many software-key
 * personas at once, through libcurl's multi interface on one thread. Test
 * equipment for make bench and make soak: it prints figures, it judges
 * nothing about speed.
 *
 * usage: portal-load --url URL --ca FILE --personas DIR --list FILE --clients N
 *                    --mode handshake|login|register (--seconds S | --count N)
 *                    [--log FILE] [--lenient]
 *
 * Every iteration opens a new connection with a full handshake (no session
 * resumption) presenting its persona's certificate, the personas taken in
 * turn from the list (tests/bench/mkpersonas.py: NAME EDIPI USERNAME PASSWORD
 * SHA256 per line):
 *   handshake  GET /api/v1/                                         (200)
 *   login      POST cac-login, GET registration, DELETE session     (200 200 204)
 *   register   alternately a CAC login (POST cac-login, DELETE session) and a
 *              password-path registration (POST session, POST registration,
 *              DELETE session); --log gets one line per registration:
 *              START_US END_US PERSONA VIA STATUS RESULT (STATUS 0: no answer)
 * --lenient takes any 2xx as success and needs no session token (nginx's fixed 200).
 * --seconds S stops starting iterations after S seconds; --count N once N have
 * succeeded. A client whose iteration failed waits 50 ms before its next.
 *
 * Prints one line: clients= seconds= done= rate= p50_ms= p99_ms= max_ms=
 * errors= cpu_s= (this process's own CPU time, user + system).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <curl/curl.h>

#define BODY_MAX ((size_t)64 * 1024)
#define TOKEN_MAX 128
#define PEM_MAX ((size_t)64 * 1024)
#define RETRY_PAUSE_US 50000
#define DRAIN_US 20000000LL /* iterations still running after the end: waited for at most */
#define ERRORS_SHOWN 5

enum mode { MODE_HANDSHAKE, MODE_LOGIN, MODE_REGISTER };
enum via { VIA_CAC, VIA_PASSWORD };

struct persona {
    char name[16];
    char username[64];
    char password[64];
    struct curl_blob cert, key;
};

/* One simulated client: one easy handle, one iteration at a time. */
struct client {
    CURL *easy;
    struct curl_slist *headers;
    int persona;
    enum via via;
    int step;
    long long started_us;
    long long not_before_us; /* after a failure */
    bool busy;
    char body[BODY_MAX + 1];
    size_t body_len;
    char token[TOKEN_MAX];
    char request_body[256];
};

/* One request of an iteration. */
struct step {
    const char *method;
    const char *path;
    long expect;  /* the status that lets the iteration go on */
    int body;     /* 0 none, 1 {"username","password"}, 2 {"password"} */
    bool bearer;
};

static const struct step handshake_steps[] = {
    {.method = "GET", .path = "", .expect = 200},
};
static const struct step login_steps[] = {
    {.method = "POST", .path = "cac-login", .expect = 200},
    {.method = "GET", .path = "registration", .expect = 200, .bearer = true},
    {.method = "DELETE", .path = "session", .expect = 204, .bearer = true},
};
static const struct step cac_register_steps[] = {
    {.method = "POST", .path = "cac-login", .expect = 200},
    {.method = "DELETE", .path = "session", .expect = 204, .bearer = true},
};
static const struct step password_register_steps[] = {
    {.method = "POST", .path = "session", .expect = 200, .body = 1},
    {.method = "POST", .path = "registration", .expect = 200, .body = 2, .bearer = true},
    {.method = "DELETE", .path = "session", .expect = 204, .bearer = true},
};

static struct {
    const char *url, *ca, *dir, *list, *log_path;
    enum mode mode;
    int clients;
    double seconds;
    long count;
    bool lenient;
} opt = {.clients = 1, .mode = MODE_HANDSHAKE};

static struct persona *personas;
static int persona_count;
static int next_persona;
static long long *latencies;
static size_t latency_count, latency_cap;
static long done_in_window, succeeded, errors;
static FILE *log_file;

static long long now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void die(const char *what, const char *arg)
{
    fprintf(stderr, "portal-load: %s%s\n", what, arg);
    exit(2);
}

static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = malloc(PEM_MAX);

    if (!f || !buf)
        die("cannot read ", path);
    *len = fread(buf, 1, PEM_MAX - 1, f);
    fclose(f);
    buf[*len] = '\0';
    return buf;
}

static void load_personas(void)
{
    FILE *f = fopen(opt.list, "r");
    char line[512], path[4096];
    int cap = 0;

    if (!f)
        die("cannot read ", opt.list);
    while (fgets(line, sizeof line, f)) {
        struct persona *p;
        char edipi[32], sha[80];
        if (persona_count == cap) {
            cap = cap ? cap * 2 : 256;
            personas = realloc(personas, (size_t)cap * sizeof *personas);
            if (!personas)
                die("out of memory", "");
        }
        p = &personas[persona_count];
        if (sscanf(line, "%15s %31s %63s %63s %79s", p->name, edipi, p->username, p->password,
                   sha) != 5)
            continue;
        snprintf(path, sizeof path, "%s/%s/id.pem", opt.dir, p->name);
        p->cert.data = read_file(path, &p->cert.len);
        snprintf(path, sizeof path, "%s/%s/id.key", opt.dir, p->name);
        p->key.data = read_file(path, &p->key.len);
        p->cert.flags = p->key.flags = CURL_BLOB_NOCOPY;
        persona_count++;
    }
    fclose(f);
    if (persona_count == 0)
        die("no persona in ", opt.list);
}

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
    struct client *c = userp;
    size_t len = size * n;

    if (len > BODY_MAX - c->body_len)
        len = BODY_MAX - c->body_len;
    memcpy(c->body + c->body_len, data, len);
    c->body_len += len;
    c->body[c->body_len] = '\0';
    return size * n;
}

/* The string value of "key" in a JSON body (a flat search, blanks allowed: enough for our answers). */
static bool json_string_of(const char *body, const char *key, char *out, size_t size)
{
    char pattern[64];
    const char *p, *end;

    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    p = strstr(body, pattern);
    if (!p)
        return false;
    p += strlen(pattern);
    p += strspn(p, " \t\r\n");
    if (*p++ != ':')
        return false;
    p += strspn(p, " \t\r\n");
    if (*p++ != '"')
        return false;
    end = strchr(p, '"');
    if (!end || (size_t)(end - p) >= size)
        return false;
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
    return true;
}

static const struct step *steps_of(const struct client *c, int *n)
{
    switch (opt.mode) {
    case MODE_HANDSHAKE:
        *n = 1;
        return handshake_steps;
    case MODE_LOGIN:
        *n = 3;
        return login_steps;
    case MODE_REGISTER:
        break;
    }
    if (c->via == VIA_CAC) {
        *n = 2;
        return cac_register_steps;
    }
    *n = 3;
    return password_register_steps;
}

static void start_step(CURLM *multi, struct client *c)
{
    const struct persona *p = &personas[c->persona];
    int n;
    const struct step *s = &steps_of(c, &n)[c->step];
    char url[1024], auth[TOKEN_MAX + 32];

    curl_easy_reset(c->easy);
    curl_slist_free_all(c->headers);
    c->headers = NULL;
    c->body_len = 0;
    c->body[0] = '\0';
    snprintf(url, sizeof url, "%s/api/v1/%s", opt.url, s->path);
    curl_easy_setopt(c->easy, CURLOPT_URL, url);
    curl_easy_setopt(c->easy, CURLOPT_CAINFO, opt.ca);
    curl_easy_setopt(c->easy, CURLOPT_SSL_SESSIONID_CACHE, 0L);
    curl_easy_setopt(c->easy, CURLOPT_SSLCERT_BLOB, &p->cert);
    curl_easy_setopt(c->easy, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(c->easy, CURLOPT_SSLKEY_BLOB, &p->key);
    curl_easy_setopt(c->easy, CURLOPT_SSLKEYTYPE, "PEM");
    curl_easy_setopt(c->easy, CURLOPT_FRESH_CONNECT, c->step == 0 ? 1L : 0L);
    curl_easy_setopt(c->easy, CURLOPT_FORBID_REUSE, c->step == n - 1 ? 1L : 0L);
    curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
    curl_easy_setopt(c->easy, CURLOPT_PROXY, "");
    curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, s->method);
    if (s->body == 1)
        snprintf(c->request_body, sizeof c->request_body,
                 "{\"username\":\"%s\",\"password\":\"%s\"}", p->username, p->password);
    else if (s->body == 2)
        snprintf(c->request_body, sizeof c->request_body, "{\"password\":\"%s\"}", p->password);
    if (s->body) {
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->request_body);
        c->headers = curl_slist_append(c->headers, "Content-Type: application/json");
    } else if (strcmp(s->method, "POST") == 0) {
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE, 0L);
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, "");
    }
    if (s->bearer) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token);
        c->headers = curl_slist_append(c->headers, auth);
    }
    c->headers = curl_slist_append(c->headers, "Expect:");
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
    curl_multi_add_handle(multi, c->easy);
}

static void start_iteration(CURLM *multi, struct client *c, long long now)
{
    c->persona = next_persona;
    next_persona = (next_persona + 1) % persona_count;
    if (opt.mode == MODE_REGISTER)
        c->via = c->via == VIA_CAC ? VIA_PASSWORD : VIA_CAC;
    c->step = 0;
    c->started_us = now;
    c->token[0] = '\0';
    c->busy = true;
    start_step(multi, c);
}

static void record_latency(long long us)
{
    if (latency_count == latency_cap) {
        latency_cap = latency_cap ? latency_cap * 2 : 4096;
        latencies = realloc(latencies, latency_cap * sizeof *latencies);
        if (!latencies)
            die("out of memory", "");
    }
    latencies[latency_count++] = us;
}

/* The registration step's line for make soak's checks. */
static void log_registration(const struct client *c, long long t0, long long end, long status,
                             const char *result)
{
    if (!log_file)
        return;
    fprintf(log_file, "%lld %lld %s %s %ld %s\n", t0, end, personas[c->persona].name,
            c->via == VIA_CAC ? "cac" : "password", status, result);
}

static void iteration_failed(struct client *c, const char *what, long status, const char *detail)
{
    errors++;
    if (errors <= ERRORS_SHOWN)
        fprintf(stderr, "portal-load: persona %s: %s: status %ld %.200s\n",
                personas[c->persona].name, what, status, detail);
    c->busy = false;
    c->not_before_us = now_us() + RETRY_PAUSE_US;
}

/* A request ended: the next step, or the iteration's end; true when it ended well. */
static bool step_done(CURLM *multi, struct client *c, CURLcode rc, long long end_us)
{
    int n;
    const struct step *s = &steps_of(c, &n)[c->step];
    long status = 0;
    char result[32] = "-";
    bool ok, registration_step;

    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(multi, c->easy);
    if (rc != CURLE_OK)
        status = 0;
    ok = rc == CURLE_OK && (opt.lenient ? status >= 200 && status < 300 : status == s->expect);
    registration_step = opt.mode == MODE_REGISTER &&
                        (strcmp(s->path, "cac-login") == 0 || strcmp(s->path, "registration") == 0);
    if (registration_step) {
        if (status == 200 && !json_string_of(c->body, "result", result, sizeof result))
            snprintf(result, sizeof result, "?");
        if (status != 200 && status != 0 && !json_string_of(c->body, "error", result, sizeof result))
            snprintf(result, sizeof result, "?");
        log_registration(c, c->started_us, end_us, status, result);
    }
    if (!ok) {
        iteration_failed(c, s->path[0] ? s->path : "/", status,
                         rc != CURLE_OK ? curl_easy_strerror(rc) : c->body);
        return false;
    }
    if (!c->token[0] && !json_string_of(c->body, "session", c->token, sizeof c->token) &&
        strcmp(s->path, "cac-login") == 0 && !opt.lenient) {
        iteration_failed(c, "no session token", status, c->body);
        return false;
    }
    if (++c->step < n) {
        start_step(multi, c);
        return false;
    }
    c->busy = false;
    succeeded++;
    record_latency(end_us - c->started_us);
    return true;
}

static int compare_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return (x > y) - (x < y);
}

static double percentile_ms(double q)
{
    size_t i;

    if (latency_count == 0)
        return 0;
    i = (size_t)(q * (double)(latency_count - 1) + 0.5);
    return (double)latencies[i] / 1000.0;
}

static void usage(void)
{
    fprintf(stderr, "usage: portal-load --url URL --ca FILE --personas DIR --list FILE "
                    "--clients N --mode handshake|login|register (--seconds S | --count N) "
                    "[--log FILE] [--lenient]\n");
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--lenient") == 0) {
            opt.lenient = true;
            continue;
        }
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--url") == 0)
            opt.url = v;
        else if (strcmp(a, "--ca") == 0)
            opt.ca = v;
        else if (strcmp(a, "--personas") == 0)
            opt.dir = v;
        else if (strcmp(a, "--list") == 0)
            opt.list = v;
        else if (strcmp(a, "--log") == 0)
            opt.log_path = v;
        else if (strcmp(a, "--clients") == 0)
            opt.clients = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--seconds") == 0)
            opt.seconds = strtod(v, NULL);
        else if (strcmp(a, "--count") == 0)
            opt.count = strtol(v, NULL, 10);
        else if (strcmp(a, "--mode") == 0)
            opt.mode = strcmp(v, "login") == 0      ? MODE_LOGIN
                       : strcmp(v, "register") == 0 ? MODE_REGISTER
                       : strcmp(v, "handshake") == 0
                           ? MODE_HANDSHAKE
                           : (usage(), MODE_HANDSHAKE);
        else
            usage();
    }
    if (!opt.url || !opt.ca || !opt.dir || !opt.list || opt.clients < 1 ||
        (opt.seconds <= 0 && opt.count <= 0))
        usage();
}

int main(int argc, char **argv)
{
    struct client *clients;
    long long t0, end_us, stop_us;
    struct rusage ru;
    CURLM *multi;
    int running = 0, busy;

    parse_args(argc, argv);
    load_personas();
    if (opt.log_path && !(log_file = fopen(opt.log_path, "w")))
        die("cannot write ", opt.log_path);
    if (log_file)
        setvbuf(log_file, NULL, _IOLBF, 0); /* whole lines, as they happen: watched while it runs */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)opt.clients * 2);
    clients = calloc((size_t)opt.clients, sizeof *clients);
    if (!clients || !multi)
        die("out of memory", "");
    for (int i = 0; i < opt.clients; i++) {
        clients[i].easy = curl_easy_init();
        clients[i].via = (i % 2) ? VIA_CAC : VIA_PASSWORD; /* flipped before the first */
    }
    t0 = now_us();
    end_us = opt.seconds > 0 ? t0 + (long long)(opt.seconds * 1e6) : -1;
    stop_us = end_us > 0 ? end_us + DRAIN_US : -1;
    for (;;) {
        long long now = now_us(), wake_us = -1;
        bool starting = (end_us < 0 || now < end_us) && (opt.count <= 0 || succeeded < opt.count);
        int timeout_ms = 100;
        CURLMsg *msg;
        int left;
        bool ended = false;

        busy = 0;
        for (int i = 0; i < opt.clients; i++)
            busy += clients[i].busy;
        for (int i = 0; i < opt.clients && starting; i++) {
            struct client *c = &clients[i];
            if (c->busy || (opt.count > 0 && succeeded + busy >= opt.count))
                continue;
            if (now >= c->not_before_us) {
                start_iteration(multi, c, now);
                busy++;
            } else if (wake_us < 0 || c->not_before_us < wake_us) {
                wake_us = c->not_before_us;
            }
        }
        if (!busy && (!starting || wake_us < 0))
            break;
        if (stop_us > 0 && now > stop_us)
            break;
        curl_multi_perform(multi, &running);
        while ((msg = curl_multi_info_read(multi, &left))) {
            struct client *c = NULL;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            now = now_us();
            if (step_done(multi, c, msg->data.result, now) && (end_us < 0 || now <= end_us))
                done_in_window++;
            ended |= !c->busy;
        }
        if (ended)
            continue; /* a client is free: its next iteration starts now */
        if (wake_us > 0 && (wake_us - now) / 1000 < timeout_ms)
            timeout_ms = (int)((wake_us - now) / 1000) + 1;
        curl_multi_poll(multi, NULL, 0, timeout_ms, NULL);
    }
    getrusage(RUSAGE_SELF, &ru);
    {
        double elapsed = opt.seconds > 0 ? opt.seconds : (double)(now_us() - t0) / 1e6;
        qsort(latencies, latency_count, sizeof *latencies, compare_ll);
        printf("clients=%d seconds=%.2f done=%ld rate=%.1f p50_ms=%.1f p99_ms=%.1f max_ms=%.1f "
               "errors=%ld cpu_s=%.2f\n",
               opt.clients, elapsed, opt.seconds > 0 ? done_in_window : succeeded,
               (double)(opt.seconds > 0 ? done_in_window : succeeded) / elapsed,
               percentile_ms(0.50), percentile_ms(0.99), percentile_ms(1.0), errors,
               (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    }
    for (int i = 0; i < opt.clients; i++) {
        curl_multi_remove_handle(multi, clients[i].easy);
        curl_easy_cleanup(clients[i].easy);
        curl_slist_free_all(clients[i].headers);
    }
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    if (log_file && fclose(log_file) != 0)
        die("cannot write ", opt.log_path);
    return 0;
}
