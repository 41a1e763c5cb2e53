/*
 * libFuzzer target: cacreg-portald's request handling (portal/api.c) from the
 * bytes of a request: method, path, Content-Type, Authorization and the body,
 * one per line; whatever follows is presented as the client certificate (DER),
 * so the core's checker sees garbage certificates too. The store is SQLite in memory,
 * with one account; every answer must be the contract's JSON within 64 KiB.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static api_context ctx;

static void setup(void)
{
    cacreg_checker_options opt = {.ca_bundle = getenv("FUZZ_CA_BUNDLE")};
    store_account a = {.username = "jane.doe", .display_name = "DOE, JANE Q",
                       .edipi = "1000000001", .type = "full", .permitted = true,
                       .password_expires = 4102444800LL};
    char err[256];

    api_init();
    ctx.cost = (password_cost){.time = 1, .memory_kib = 8};
    if (store_open_sqlite(&ctx.store, ":memory:", err, sizeof err) != STORE_OK)
        abort();
    if (!password_hash("Correct-Horse-1", 15, ctx.cost, a.password_hash, sizeof a.password_hash) ||
        store_account_put(ctx.store, &a, false) != STORE_OK)
        abort();
    if (!opt.ca_bundle)
        opt.ca_bundle = "build/pki/ca-bundle.pem";
    if (cacreg_checker_new(&ctx.checker, &opt, err, sizeof err) != CACREG_OK) {
        fprintf(stderr, "fuzz_portald: %s (set FUZZ_CA_BUNDLE)\n", err);
        abort();
    }
    ctx.sessions = sessions_new(900, 1000);
    ctx.password_per_address = limits_new(0, 60);
    ctx.password_per_account = limits_new(0, 60);
}

/* The next line of the input into out (NUL-terminated, cut at size); the rest after it. */
static const uint8_t *line(const uint8_t *p, const uint8_t *end, char *out, size_t size)
{
    size_t n = 0;

    while (p < end && *p != '\n') {
        if (n + 1 < size && *p)
            out[n++] = (char)*p;
        p++;
    }
    out[n] = '\0';
    return p < end ? p + 1 : p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char method[16], url[256], ctype[128], auth[128], *body;
    size_t body_len;
    const uint8_t *p = data, *end = data + size;
    api_request req = {0};
    api_answer answer;
    json_t *parsed;

    if (!ctx.store)
        setup();
    p = line(p, end, method, sizeof method);
    p = line(p, end, url, sizeof url);
    p = line(p, end, ctype, sizeof ctype);
    p = line(p, end, auth, sizeof auth);
    body = malloc(API_BODY_MAX + 2);
    if (!body)
        return 0;
    p = line(p, end, body, API_BODY_MAX + 2);
    body_len = strlen(body);
    req.method = method;
    req.url = url;
    req.content_type = ctype[0] ? ctype : NULL;
    req.authorization = auth[0] ? auth : NULL;
    req.body = body;
    req.body_len = body_len > API_BODY_MAX ? API_BODY_MAX : body_len;
    req.body_present = body_len > 0;
    req.body_too_large = body_len > API_BODY_MAX;
    if (end > p) {
        req.cert_der = (const unsigned char *)p;
        req.cert_len = (size_t)(end - p);
    }
    req.addr = "127.0.0.1";
    api_handle(&ctx, &req, 1800000000LL, &answer);
    /* Every answer: a status the contract has, and JSON within its bound (or none for 204). */
    if (answer.status < 200 || answer.status > 599)
        __builtin_trap();
    if (answer.status == 204) {
        if (answer.body)
            __builtin_trap();
    } else {
        if (!answer.body || answer.body_len > API_ANSWER_MAX)
            __builtin_trap();
        parsed = json_loadb(answer.body, answer.body_len, 0, NULL);
        if (!json_is_object(parsed))
            __builtin_trap();
        if (answer.status >= 400 && (!json_is_string(json_object_get(parsed, "error")) ||
                                     !json_is_string(json_object_get(parsed, "message"))))
            __builtin_trap();
        json_decref(parsed);
    }
    free(answer.body);
    free(body);
    return 0;
}
