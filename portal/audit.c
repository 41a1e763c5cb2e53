/* Audit lines to syslog, each one line of key=value pairs. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "audit.h"

static bool opened; /* set before any thread starts */

void audit_open(void)
{
    openlog("cacreg-portald", LOG_PID | LOG_NDELAY, LOG_AUTHPRIV);
    opened = true;
}

static void put(audit_line *l, const char *s, size_t n)
{
    if (n > sizeof l->text - 1 - l->len)
        n = sizeof l->text - 1 - l->len;
    memcpy(l->text + l->len, s, n);
    l->len += n;
    l->text[l->len] = '\0';
}

void audit_begin(audit_line *l, const char *event, const char *addr)
{
    l->len = 0;
    l->text[0] = '\0';
    put(l, "event=", 6);
    put(l, event, strlen(event));
    audit_add(l, "addr", addr);
}

/* True when value can go bare: printable ASCII without space, quote, backslash or '='. */
static bool bare(const char *value)
{
    if (!*value)
        return false;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '\\' || *p == '=')
            return false;
    return true;
}

void audit_add(audit_line *l, const char *key, const char *value)
{
    char esc[8];

    if (!value)
        return;
    put(l, " ", 1);
    put(l, key, strlen(key));
    put(l, "=", 1);
    if (bare(value)) {
        put(l, value, strlen(value));
        return;
    }
    put(l, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p < ' ' || *p == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02X", *p);
            put(l, esc, strlen(esc));
        } else if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            put(l, esc, 2);
        } else {
            put(l, (const char *)p, 1); /* UTF-8 passes: the log's reader shows it */
        }
    }
    put(l, "\"", 1);
}

void audit_add_cert(audit_line *l, const cacreg_cert *cert)
{
    if (!cert)
        return;
    audit_add(l, "edipi", cert->edipi[0] ? cert->edipi : NULL);
    audit_add(l, "subject", cert->subject);
    audit_add(l, "issuer", cert->issuer);
    audit_add(l, "serial", cert->serial);
    audit_add(l, "sha256", cert->sha256);
}

void audit_send(const audit_line *l, int warn)
{
    if (!opened)
        return;
    syslog(warn ? LOG_WARNING : LOG_NOTICE, "%s", l->text);
}
