/* cacreg-portald account ... / registration ...: the embedded store by hand. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "admin.h"
#include "password.h"
#include "store.h"

#define IMPORT_FILE_MAX ((size_t)16 * 1024 * 1024)
#define DEFAULT_EXPIRES_DAYS 90

const char admin_usage[] =
    "  account add USERNAME --edipi EDIPI --display-name NAME [--type full|email_only]\n"
    "              [--expires-days N] [--suspended] [--password-stdin]\n"
    "  account import FILE.json|FILE.csv\n"
    "  account show USERNAME\n"
    "  account list\n"
    "  account suspend|reinstate|unlock USERNAME\n"
    "  account password USERNAME [--expires-days N]   (the password on standard input)\n"
    "  registration list\n"
    "  registration clear USERNAME\n";

/* An option's value, or NULL after saying it is missing. */
static const char *value_of(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "cacreg-portald: %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static bool is_edipi(const char *s)
{
    return strlen(s) == 10 && strspn(s, "0123456789") == 10;
}

/* Whether text is a username the portal takes: 1-64 bytes of letters, digits, . _ - @. */
static bool is_username(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n <= STORE_USERNAME_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@") == n;
}

/* One line from standard input, without its newline, into buf; false if none. */
static bool read_password(char *buf, size_t size)
{
    size_t n;

    if (!fgets(buf, (int)size, stdin))
        return false;
    n = strcspn(buf, "\r\n");
    buf[n] = '\0';
    return n > 0;
}

static const char *status_words(store_status rc, store *s)
{
    switch (rc) {
    case STORE_OK:
        return "done";
    case STORE_NOT_FOUND:
        return "no such account";
    case STORE_EXISTS:
        return "that username is taken";
    case STORE_INVALID:
        return "a value is not of the right form";
    case STORE_NOT_PERMITTED:
        return "the account may not use a CAC";
    case STORE_OTHER_OWNER:
        return "the certificate is registered to another account";
    case STORE_UNSUPPORTED:
        return "the accounts are the directory's (store = ldap): manage them there";
    case STORE_UNAVAILABLE:
    case STORE_ERROR:
        break;
    }
    return store_error(s);
}

static void day(long long t, char out[24])
{
    time_t tt = (time_t)t;
    struct tm tm;

    out[0] = '\0';
    if (gmtime_r(&tt, &tm))
        strftime(out, 24, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void print_account(const store_account *a, void *ctx)
{
    char expires[24];

    (void)ctx;
    day(a->password_expires, expires);
    printf("%s\tedipi=%s\ttype=%s\tpermitted=%s\tfailed_attempts=%d%s\tpassword_expires=%s\t"
           "password=%s\tdisplay_name=%s\n",
           a->username, a->edipi, a->type, a->permitted ? "yes" : "no", a->failed_attempts,
           a->failed_attempts >= 5 ? " (locked)" : "", expires, a->password_hash[0] ? "set" : "none",
           a->display_name);
}

static void print_registration(const char *username, const store_registration *r, void *ctx)
{
    json_t *cert = json_loads(r->cert_json, 0, NULL);
    char when[24];

    (void)ctx;
    day(r->registered_at, when);
    printf("%s\tregistered_at=%s\tsha256=%s\tserial=%s\tsubject=%s\n", username, when, r->sha256,
           cert ? json_string_value(json_object_get(cert, "serial")) : "?",
           cert ? json_string_value(json_object_get(cert, "subject")) : "?");
    json_decref(cert);
}

/* The account a, with password (hashed here) if not NULL; one upsert. */
static int put_account(store *s, const portald_config *cfg, store_account *a, const char *password,
                       bool replace, const char *origin)
{
    password_cost cost = {.time = (unsigned)cfg->argon2_time,
                          .memory_kib = (unsigned)cfg->argon2_memory_kib};
    store_status rc;

    if (!is_username(a->username)) {
        fprintf(stderr, "cacreg-portald: %s'%s' is not a username (1-64 of A-Z a-z 0-9 . _ - @)\n",
                origin, a->username);
        return ADMIN_FAILED;
    }
    if (!is_edipi(a->edipi)) {
        fprintf(stderr, "cacreg-portald: %s%s: the EDIPI '%s' is not 10 digits\n", origin,
                a->username, a->edipi);
        return ADMIN_FAILED;
    }
    if (strcmp(a->type, "full") != 0 && strcmp(a->type, "email_only") != 0) {
        fprintf(stderr, "cacreg-portald: %s%s: the type '%s' is not full or email_only\n", origin,
                a->username, a->type);
        return ADMIN_FAILED;
    }
    if (password && !password_hash(password, strlen(password), cost, a->password_hash,
                                   sizeof a->password_hash)) {
        fprintf(stderr, "cacreg-portald: %s%s: the password cannot be hashed (argon2_memory_kib?)\n",
                origin, a->username);
        return ADMIN_FAILED;
    }
    if (!password && replace) { /* keep the stored hash */
        store_account old;
        if (store_account_get(s, a->username, &old) == STORE_OK)
            memcpy(a->password_hash, old.password_hash, sizeof a->password_hash);
    }
    rc = store_account_put(s, a, replace);
    if (rc != STORE_OK) {
        fprintf(stderr, "cacreg-portald: %s%s: %s\n", origin, a->username, status_words(rc, s));
        return ADMIN_FAILED;
    }
    return ADMIN_OK;
}

static int account_add(store *s, const portald_config *cfg, int argc, char **argv)
{
    store_account a = {.permitted = true};
    char password[256];
    bool from_stdin = false;
    long days = DEFAULT_EXPIRES_DAYS;
    const char *v;
    int rc;

    if (argc < 3) {
        fprintf(stderr, "cacreg-portald: account add needs a USERNAME\n");
        return ADMIN_USAGE;
    }
    snprintf(a.username, sizeof a.username, "%s", argv[2]);
    snprintf(a.type, sizeof a.type, "full");
    for (int i = 3; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--suspended") == 0) {
            a.permitted = false;
            continue;
        }
        if (strcmp(opt, "--password-stdin") == 0) {
            from_stdin = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "cacreg-portald: account add: %s needs a value\n", opt);
            return ADMIN_USAGE;
        }
        v = argv[++i];
        if (strcmp(opt, "--edipi") == 0) {
            snprintf(a.edipi, sizeof a.edipi, "%s", strlen(v) == 10 ? v : "not-10");
        } else if (strcmp(opt, "--display-name") == 0) {
            snprintf(a.display_name, sizeof a.display_name, "%s", v);
        } else if (strcmp(opt, "--type") == 0) {
            snprintf(a.type, sizeof a.type, "%s", v);
        } else if (strcmp(opt, "--expires-days") == 0) {
            days = strtol(v, NULL, 10);
        } else {
            fprintf(stderr, "cacreg-portald: account add: unknown option %s\n", opt);
            return ADMIN_USAGE;
        }
    }
    if (!a.edipi[0] || !a.display_name[0]) {
        fprintf(stderr, "cacreg-portald: account add needs --edipi and --display-name\n");
        return ADMIN_USAGE;
    }
    if (from_stdin && !read_password(password, sizeof password)) {
        fprintf(stderr, "cacreg-portald: no password on standard input\n");
        return ADMIN_FAILED;
    }
    a.password_expires = (long long)time(NULL) + days * 86400LL;
    rc = put_account(s, cfg, &a, from_stdin ? password : NULL, false, "");
    OPENSSL_cleanse(password, sizeof password);
    OPENSSL_cleanse(&a, sizeof a);
    if (rc == ADMIN_OK)
        printf("added %s\n", argv[2]);
    return rc;
}

/* One imported account from a JSON object. */
static int import_json_account(store *s, const portald_config *cfg, json_t *o, size_t index)
{
    store_account a = {.permitted = true};
    json_t *v;
    char origin[64];
    const char *password = json_string_value(json_object_get(o, "password"));
    int rc;

    snprintf(origin, sizeof origin, "account %zu: ", index + 1);
    if (!json_is_object(o) || !json_is_string(json_object_get(o, "username")) ||
        !json_is_string(json_object_get(o, "edipi")) ||
        !json_is_string(json_object_get(o, "display_name"))) {
        fprintf(stderr, "cacreg-portald: %sneeds username, edipi and display_name as strings\n",
                origin);
        return ADMIN_FAILED;
    }
    snprintf(a.username, sizeof a.username, "%s", json_string_value(json_object_get(o, "username")));
    snprintf(a.edipi, sizeof a.edipi, "%.10s", json_string_value(json_object_get(o, "edipi")));
    if (strlen(json_string_value(json_object_get(o, "edipi"))) != 10)
        a.edipi[0] = 'x';
    snprintf(a.display_name, sizeof a.display_name, "%s",
             json_string_value(json_object_get(o, "display_name")));
    v = json_object_get(o, "type");
    snprintf(a.type, sizeof a.type, "%s", json_is_string(v) ? json_string_value(v) : "full");
    v = json_object_get(o, "permitted");
    a.permitted = !json_is_false(v);
    v = json_object_get(o, "password_expires_in_days");
    a.password_expires = (long long)time(NULL) +
                         (json_is_integer(v) ? json_integer_value(v) : DEFAULT_EXPIRES_DAYS) * 86400LL;
    v = json_object_get(o, "password_hash");
    if (!password && json_is_string(v))
        snprintf(a.password_hash, sizeof a.password_hash, "%s", json_string_value(v));
    rc = put_account(s, cfg, &a, password, true, origin);
    OPENSSL_cleanse(&a, sizeof a);
    return rc;
}

/* The next line of text (cut at its newline, in place), *rest after it; NULL at the end. */
static char *next_line(char **rest)
{
    char *line = *rest, *nl;

    if (!line || !*line)
        return NULL;
    nl = strchr(line, '\n');
    if (nl) {
        *nl = '\0';
        *rest = nl + 1;
    } else {
        *rest = line + strlen(line);
    }
    line[strcspn(line, "\r")] = '\0';
    return line;
}

/* The fields of one CSV line (RFC 4180 quotes), in place; their count. */
static size_t csv_fields(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line, *out;

    while (n < max) {
        fields[n++] = out = p;
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == '"' && p[1] == '"') {
                    *out++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else if (!*p) {
                    break;
                } else {
                    *out++ = *p++;
                }
            }
            while (*p && *p != ',')
                p++;
        } else {
            while (*p && *p != ',')
                *out++ = *p++;
        }
        if (*p != ',') {
            *out = '\0';
            break;
        }
        p++;
        *out = '\0';
    }
    return n;
}

/*
 * CSV: a header line naming the columns (username, edipi, display_name, and
 * any of type, permitted, password_expires_in_days, password), then one
 * account per line.
 */
static int import_csv(store *s, const portald_config *cfg, char *text)
{
    static const char *const names[] = {"username", "edipi", "display_name", "type", "permitted",
                                        "password_expires_in_days", "password"};
    enum { NCOL = sizeof names / sizeof names[0] };
    int col[NCOL], failed = 0, done = 0;
    char *fields[32], *line, *rest = text;
    size_t n, lineno = 1;

    for (size_t k = 0; k < NCOL; k++)
        col[k] = -1;
    line = next_line(&rest);
    if (!line) {
        fprintf(stderr, "cacreg-portald: the CSV file is empty\n");
        return ADMIN_FAILED;
    }
    n = csv_fields(line, fields, 32);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < NCOL; k++)
            if (strcmp(fields[i], names[k]) == 0)
                col[k] = (int)i;
    if (col[0] < 0 || col[1] < 0 || col[2] < 0) {
        fprintf(stderr, "cacreg-portald: the CSV header must name username, edipi and display_name\n");
        return ADMIN_FAILED;
    }
    while ((line = next_line(&rest)) != NULL) {
        json_t *o = json_object();
        lineno++;
        if (!*line) {
            json_decref(o);
            continue;
        }
        n = csv_fields(line, fields, 32);
        for (size_t k = 0; k < NCOL; k++) {
            if (col[k] < 0 || (size_t)col[k] >= n || !fields[col[k]][0])
                continue;
            if (k == 4)
                json_object_set_new(o, names[k], json_boolean(strcmp(fields[col[k]], "no") != 0 &&
                                                              strcmp(fields[col[k]], "false") != 0 &&
                                                              strcmp(fields[col[k]], "0") != 0));
            else if (k == 5)
                json_object_set_new(o, names[k], json_integer(strtol(fields[col[k]], NULL, 10)));
            else
                json_object_set_new(o, names[k], json_string(fields[col[k]]));
        }
        if (import_json_account(s, cfg, o, lineno - 2) == ADMIN_OK)
            done++;
        else
            failed++;
        json_decref(o);
    }
    printf("imported %d account(s), %d refused\n", done, failed);
    return failed ? ADMIN_FAILED : ADMIN_OK;
}

static int account_import(store *s, const portald_config *cfg, const char *path)
{
    json_error_t jerr;
    json_t *doc, *list;
    size_t index, n;
    json_t *o;
    int failed = 0, done = 0;
    FILE *f;
    char *text;
    int rc;

    if (strlen(path) > 4 && strcmp(path + strlen(path) - 4, ".csv") == 0) {
        f = fopen(path, "rb");
        if (!f) {
            fprintf(stderr, "cacreg-portald: %s: %s\n", path, strerror(errno));
            return ADMIN_FAILED;
        }
        text = malloc(IMPORT_FILE_MAX + 1);
        n = text ? fread(text, 1, IMPORT_FILE_MAX + 1, f) : 0;
        fclose(f);
        if (!text || n > IMPORT_FILE_MAX) {
            fprintf(stderr, "cacreg-portald: %s: larger than 16 MiB\n", path);
            free(text);
            return ADMIN_FAILED;
        }
        text[n] = '\0';
        rc = import_csv(s, cfg, text);
        OPENSSL_cleanse(text, n);
        free(text);
        return rc;
    }
    doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        fprintf(stderr, "cacreg-portald: %s:%d: %s\n", path, jerr.line, jerr.text);
        return ADMIN_FAILED;
    }
    list = json_is_array(doc) ? doc : json_object_get(doc, "accounts");
    if (!json_is_array(list)) {
        fprintf(stderr, "cacreg-portald: %s: expected a list of accounts, or {\"accounts\": [...]}\n",
                path);
        json_decref(doc);
        return ADMIN_FAILED;
    }
    json_array_foreach(list, index, o) {
        if (import_json_account(s, cfg, o, index) == ADMIN_OK)
            done++;
        else
            failed++;
    }
    json_decref(doc);
    printf("imported %d account(s), %d refused\n", done, failed);
    return failed ? ADMIN_FAILED : ADMIN_OK;
}

static int account_password(store *s, const portald_config *cfg, int argc, char **argv)
{
    password_cost cost = {.time = (unsigned)cfg->argon2_time,
                          .memory_kib = (unsigned)cfg->argon2_memory_kib};
    char password[256], hash[STORE_HASH_MAX + 1];
    long days = DEFAULT_EXPIRES_DAYS;
    store_status rc;
    const char *v;

    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--expires-days") == 0 && (v = value_of(argc, argv, &i))) {
            days = strtol(v, NULL, 10);
        } else {
            fprintf(stderr, "cacreg-portald: account password: unknown option %s\n", argv[i]);
            return ADMIN_USAGE;
        }
    }
    if (!read_password(password, sizeof password)) {
        fprintf(stderr, "cacreg-portald: no password on standard input\n");
        return ADMIN_FAILED;
    }
    if (!password_hash(password, strlen(password), cost, hash, sizeof hash)) {
        OPENSSL_cleanse(password, sizeof password);
        fprintf(stderr, "cacreg-portald: the password cannot be hashed\n");
        return ADMIN_FAILED;
    }
    OPENSSL_cleanse(password, sizeof password);
    rc = store_account_set_password(s, argv[2], hash, (long long)time(NULL) + days * 86400LL);
    if (rc != STORE_OK) {
        fprintf(stderr, "cacreg-portald: %s: %s\n", argv[2], status_words(rc, s));
        return ADMIN_FAILED;
    }
    printf("password set for %s (unlocked)\n", argv[2]);
    return ADMIN_OK;
}

/* A command on one account that changes one thing. */
static int account_change(store *s, const char *what, const char *username)
{
    store_status rc;

    if (strcmp(what, "suspend") == 0)
        rc = store_account_set_permitted(s, username, false);
    else if (strcmp(what, "reinstate") == 0)
        rc = store_account_set_permitted(s, username, true);
    else
        rc = store_account_unlock(s, username);
    if (rc != STORE_OK) {
        fprintf(stderr, "cacreg-portald: %s: %s\n", username, status_words(rc, s));
        return ADMIN_FAILED;
    }
    printf("%s: %s\n", username,
           strcmp(what, "suspend") == 0     ? "suspended (no CAC login or registration)"
           : strcmp(what, "reinstate") == 0 ? "reinstated"
                                            : "unlocked");
    return ADMIN_OK;
}

static int run(store *s, const portald_config *cfg, int argc, char **argv)
{
    const char *noun = argv[0], *verb = argc > 1 ? argv[1] : "";
    store_registration *reg;
    store_account a;
    store_status rc;

    if (strcmp(noun, "account") == 0) {
        if (strcmp(verb, "list") == 0) {
            rc = store_account_each(s, print_account, NULL);
            if (rc != STORE_OK)
                fprintf(stderr, "cacreg-portald: account list: %s\n", status_words(rc, s));
            return rc == STORE_OK ? ADMIN_OK : ADMIN_FAILED;
        }
        if (strcmp(verb, "add") == 0)
            return account_add(s, cfg, argc, argv);
        if (argc < 3) {
            fprintf(stderr, "cacreg-portald: account %s needs an argument\n", verb);
            return ADMIN_USAGE;
        }
        if (strcmp(verb, "import") == 0)
            return account_import(s, cfg, argv[2]);
        if (strcmp(verb, "password") == 0)
            return account_password(s, cfg, argc, argv);
        if (argc > 3) {
            fprintf(stderr, "cacreg-portald: account %s takes one USERNAME\n", verb);
            return ADMIN_USAGE;
        }
        if (strcmp(verb, "show") == 0) {
            rc = store_account_get(s, argv[2], &a);
            if (rc != STORE_OK) {
                fprintf(stderr, "cacreg-portald: %s: %s\n", argv[2], status_words(rc, s));
                return ADMIN_FAILED;
            }
            print_account(&a, NULL);
            reg = malloc(sizeof *reg);
            if (reg && store_registration_get(s, argv[2], reg) == STORE_OK && reg->registered)
                print_registration(argv[2], reg, NULL);
            else if (reg)
                printf("%s\tno registration\n", argv[2]);
            free(reg);
            return ADMIN_OK;
        }
        if (strcmp(verb, "suspend") == 0 || strcmp(verb, "reinstate") == 0 ||
            strcmp(verb, "unlock") == 0)
            return account_change(s, verb, argv[2]);
    } else if (strcmp(noun, "registration") == 0) {
        if (strcmp(verb, "list") == 0 && argc == 2) {
            rc = store_registration_each(s, print_registration, NULL);
            if (rc != STORE_OK)
                fprintf(stderr, "cacreg-portald: registration list: %s\n", status_words(rc, s));
            return rc == STORE_OK ? ADMIN_OK : ADMIN_FAILED;
        }
        if (strcmp(verb, "clear") == 0 && argc == 3) {
            reg = malloc(sizeof *reg);
            rc = reg ? store_account_get(s, argv[2], &a) : STORE_ERROR;
            if (rc == STORE_OK)
                rc = store_registration_clear(s, argv[2], reg);
            if (rc != STORE_OK) {
                fprintf(stderr, "cacreg-portald: %s: %s\n", argv[2], status_words(rc, s));
                free(reg);
                return ADMIN_FAILED;
            }
            printf("%s: %s\n", argv[2], reg->registered ? "registration cleared" : "had no registration");
            free(reg);
            return ADMIN_OK;
        }
    }
    fprintf(stderr, "cacreg-portald: unknown command: %s %s\nCommands:\n%s", noun, verb, admin_usage);
    return ADMIN_USAGE;
}

int admin_run(const portald_config *cfg, int argc, char **argv)
{
    char err[512];
    store *s;
    int rc;

    if (config_open_store(cfg, false, &s, err, sizeof err) != STORE_OK) {
        fprintf(stderr, "cacreg-portald: %s\n", err);
        return ADMIN_FAILED;
    }
    rc = run(s, cfg, argc, argv);
    store_close(s);
    return rc;
}
