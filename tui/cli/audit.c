/*
 * The kiosk's audit trail: one structured line per event to the system log
 * (syslog(3), which journald and rsyslog take and forward), key=value pairs.
 * Never a PIN, a password or a session token; the card holder's name and
 * EDIPI only when the configuration says audit_identity = yes.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "audit.h"
#include "text.h"

static bool with_identity;

void audit_open(bool identity)
{
    with_identity = identity;
    openlog("cacreg-kiosk", LOG_PID | LOG_NDELAY, LOG_AUTHPRIV);
}

/* A value for a key="value" pair: outside text made safe, no quote to break out with. */
static void value(char *out, size_t size, const char *in)
{
    cacreg_text_safe(out, size, in ? in : "", in ? strlen(in) : 0, CACREG_TEXT_SPACES);
    for (char *p = out; *p; p++)
        if (*p == '"')
            *p = '\'';
}

void audit_result(const cacreg_flow_state *s)
{
    const cacreg_portal_result *r = &s->last;
    const cacreg_cert *c = s->chosen < s->info.ncerts ? &s->info.certs[s->chosen] : NULL;
    char issuer[256] = "", serial[96] = "", holder[256] = "", code[96] = "", outcome[32];

    if (c) {
        value(issuer, sizeof issuer, c->issuer_cn);
        value(serial, sizeof serial, c->serial);
        value(holder, sizeof holder, c->holder);
    }
    value(code, sizeof code, r->error);
    if (s->step == CACREG_STEP_DONE)
        snprintf(outcome, sizeof outcome, "%s",
                 s->done == CACREG_DONE_RESET ? "password_reset_asked"
                                              : cacreg_registration_name(r->registration));
    else
        snprintf(outcome, sizeof outcome, "%s",
                 s->problem.fail == CACREG_FAIL_REFUSED ? "refused" : "failed");
    syslog(LOG_NOTICE,
           "event=result outcome=%s path=%s card=%s issuer=\"%s\" serial=\"%s\" "
           "portal_code=\"%s\" stage=%s%s%s%s%s%s",
           outcome[0] ? outcome : "done",
           s->path == CACREG_PATH_CAC_LOGIN ? "cac_login"
           : s->path == CACREG_PATH_REGISTER ? "register"
                                             : "reset",
           s->info.recognised ? "CAC" : "none", issuer, serial, code,
           s->step == CACREG_STEP_DONE ? "done" : cacreg_stage_name(s->problem.stage),
           with_identity ? " holder=\"" : "", with_identity ? holder : "",
           with_identity ? "\" edipi=\"" : "", with_identity && c ? c->edipi : "",
           with_identity ? "\"" : "");
}

void audit_cleared(void)
{
    syslog(LOG_NOTICE, "event=result outcome=cleared path=register");
}

void audit_line(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsyslog(LOG_NOTICE, fmt, ap);
    va_end(ap);
}
