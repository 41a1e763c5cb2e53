# The mutations `make mutate` makes: each breaks one guarantee we promise, in
# one source file, by a search and replace with the number of times the search
# text must occur (a mutation that no longer applies is reported STALE, never
# skipped in silence), and names the tests that must each fail on the broken
# code.
#
# Tests: "unit:NAME" is build/plain/tests/NAME (cmocka, no bench);
# "bench:NAME" is tests/bench/NAME.sh and "portal:NAME" tests/portal/NAME.sh,
# each run on a fresh bench with the mutated plain binaries; "ssh:NAME" is
# tests/ssh/NAME.sh (its own bench and sshd); "directory:NAME" is tests/directory/NAME.sh
# (its own bench, slapd and sssd); "portald:NAME [SELECTOR]" is tests/portal/NAME.py,
# with an optional unittest selector (its own daemons, no bench).
#
# Add one whenever a guarantee lands: the cheapest test that should notice,
# and the end-to-end test where the guarantee is one a person sees.

from collections import namedtuple

Mutation = namedtuple("Mutation", "name file find replace count tests why")


def M(name, file, find, replace, tests, why, count=1):
    return Mutation(name, file, find, replace, count, tuple(tests), why)


MUTATIONS = [
    # -- secrets --
    M("wipe-skipped", "core/secret.c",
      "OPENSSL_cleanse(secret->bytes, sizeof secret->bytes);",
      "(void)secret->bytes;",
      ["unit:test_secret", "bench:test_secrets"],
      "a cleared PIN or password stays in its locked page"),
    M("wrong-pin-resent", "core/token.c",
      "if (PKCS11_login(slot, 0, cacreg_secret_data(pin)) == 0) {",
      "if (PKCS11_login(slot, 0, cacreg_secret_data(pin)) == 0 ||\n"
      "        PKCS11_login(slot, 0, cacreg_secret_data(pin)) == 0) {",
      ["bench:test_login"],
      "a wrong PIN is sent to the card a second time (one try lost)"),
    M("pin-in-clear", "tui/screen/form.c",
      "stars[n++] = '*';",
      "stars[n++] = d[i];",
      ["bench:test_tui"],
      "the PIN field shows the digits"),
    M("idle-keeps-digits", "core/flow.c",
      "if (from->secret == SECRET_PIN)",
      "if (from->secret == SECRET_PIN && f->deadline)",
      ["unit:test_flow"],
      "the idle timeout leaves the PIN typed so far in memory"),
    M("malloc-hygiene-off", "tui/main.c",
      "    malloc_hygiene(argc, argv);",
      "    if (argc < 0)\n        malloc_hygiene(argc, argv);",
      ["bench:test_secrets"],
      "freed library memory keeps PIN and password copies"),

    # -- TLS --
    M("tls-peer-unverified", "core/portal.c",
      "CURLOPT_SSL_VERIFYPEER, 1L",
      "CURLOPT_SSL_VERIFYPEER, 0L",
      ["bench:test_login"],
      "a portal whose certificate no trusted CA signed is talked to"),
    M("tls-host-unverified", "core/portal.c",
      "CURLOPT_SSL_VERIFYHOST, 2L",
      "CURLOPT_SSL_VERIFYHOST, 0L",
      ["bench:test_login"],
      "a portal certificate for another host is accepted"),

    M("portal-pins-ignored", "core/portal.c",
      "curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, p->cfg.portal_pins);",
      "(void)e;",
      ["bench:test_login"],
      "portal_pins set, and a portal with another key is talked to"),
    M("proxy-from-environment", "core/portal.c",
      'curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never from the environment */',
      "/* a proxy from the environment */",
      ["bench:test_login"],
      "https_proxy in the environment sees every portal request"),

    # -- the card's certificate --
    M("expiry-unchecked", "core/cert.c",
      "} else if (now > cert->not_after) {",
      "} else if (now < 0 && now > cert->not_after) {",
      ["unit:test_cert", "bench:test_login"],
      "an expired card passes pre-flight"),

    # -- the portal session --
    M("no-logout", "core/flow.c",
      "lane_push(f, OP_SEND, CACREG_REQ_LOGOUT, 0);",
      "(void)0;",
      ["unit:test_flow", "bench:test_login"],
      "a session is never logged out (DELETE /api/v1/session)"),
    M("149-days-client", "tui/screen/screens.c",
      "(150 days).",
      "(149 days).",
      ["bench:test_tui"],
      "the Done screen promises 149 days"),
    M("149-days-portal", "tests/portal/server.py",
      "PASSWORD_EXTENSION_DAYS = 150",
      "PASSWORD_EXTENSION_DAYS = 149",
      ["bench:test_login", "portal:test_card_curl"],
      "the portal extends the password by 149 days"),
    M("pull-during-answer-ignored", "core/flow.c",
      "return requests[f->st.request].uses_card;",
      "return false;",
      ["unit:test_flow", "bench:test_login"],
      "a card pulled while the portal answers does not cancel the login"),

    # -- the screen --
    M("panel-always-ok", "tui/screen/draw.c",
      'return item(t, y, x, 0, "Card", "%s", in && in->mute',
      'return item(t, y, x, 1, "Card", "%s", in && in->mute',
      ["bench:test_tui"],
      "the reader panel says [ok] Card with no card in"),

    # -- the kiosk --
    M("kiosk-q-quits", "tui/screen/tui.c",
      "t->quit = !t->kiosk;",
      "t->quit = true;",
      ["bench:test_kiosk"],
      "q ends a kiosk session (a way out)"),
    M("kiosk-reads-user-config", "core/config.c",
      "    if (kiosk)\n        return CACREG_OK;\n    if (xdg",
      "    if (xdg",
      ["unit:test_config"],
      "the kiosk takes settings from the person's own configuration"),
    M("kiosk-environment-kept", "tui/cli/cli.c",
      "if (o->kiosk && cacreg_clean_environment() != CACREG_OK) {",
      "if (0 && o->kiosk && cacreg_clean_environment() != CACREG_OK) {",
      ["bench:test_tui"],
      "a kiosk session runs code the person's environment names"),
    M("kiosk-config-not-locked", "tui/cli/cli.c",
      "        cacreg_config_lock_down(cfg);",
      "        (void)cfg;",
      ["bench:test_kiosk"],
      "a kiosk session loads every module p11-kit's registry names"),
    M("kiosk-config-any-owner", "core/config.c",
      "if (st.st_mode & (S_IWGRP | S_IWOTH)) {",
      "if (st.st_mode & 0) {",
      ["unit:test_config", "bench:test_kiosk"],
      "a kiosk configuration others can write is used"),
    M("launcher-no-respawn", "kiosk/kiosk.c",
      "if (pid == s->session)",
      "if (pid == s->session && pid < 0)",
      ["bench:test_kiosk"],
      "a session that dies leaves the station dead"),

    # -- session end and hangs --
    M("no-card-reset", "core/engine.c",
      "if (!j->reset || !j->reader[0])",
      "if (j->reset || !j->reset)",
      ["bench:test_session_end"],
      "a card stays PIN-verified for the next person"),
    M("failed-keeps-login", "core/flow.c",
      '[CACREG_STEP_FAILED] = {"FAILED", end_card,',
      '[CACREG_STEP_FAILED] = {"FAILED", NULL,',
      ["unit:test_flow", "bench:test_session_end"],
      "a failure leaves the card logged in until the person moves on"),
    M("no-card-deadline", "core/flow.c",
      '[CACREG_STEP_CHECKING_PIN] = {"CHECKING_PIN", NULL, NULL, SECRET_NONE, TIMER_CARD,',
      '[CACREG_STEP_CHECKING_PIN] = {"CHECKING_PIN", NULL, NULL, SECRET_NONE, TIMER_NONE,',
      ["unit:test_flow"],
      "a card that never answers the PIN leaves the screen at 'Checking'"),
    M("partial-read-trusted", "core/engine.c",
      "if ((rc != CACREG_OK || j->card.ncerts < CAC_CERTS) &&",
      "if ((rc != CACREG_OK) &&",
      ["bench:test_pull"],
      "a card pulled mid-read is shown as a card with fewer certificates"),

    # -- outside text and diagnoses --
    M("commands-print-raw", "tui/cli/out.c",
      "cacreg_text_safe(safe, sizeof safe, arg ? arg : \"(null)\", arg ? strlen(arg) : 6, text_flags());",
      "snprintf(safe, sizeof safe, \"%s\", arg ? arg : \"(null)\");",
      ["bench:test_outside_text"],
      "a certificate's escape sequences reach the terminal from the commands"),
    M("screen-prints-raw", "tui/screen/draw.c",
      "    cacreg_text_safe(out, size, in ? in : \"\", in ? strlen(in) : 0,\n"
      "                     (t->ascii ? CACREG_TEXT_ASCII : 0) | (spaces ? CACREG_TEXT_SPACES : 0));",
      "    (void)t;\n    (void)spaces;\n    snprintf(out, size, \"%s\", in ? in : \"\");",
      ["bench:test_outside_text"],
      "a certificate's escape sequences reach the terminal from the screen"),
    M("unsigned-handshake-not-said", "core/portal.c",
      "if (p->key && atomic_load(&p->cert_sent) && !atomic_load(&p->signed_ok)) {",
      "if (p->key && atomic_load(&p->cert_sent) && !atomic_load(&p->signed_ok) && !p->key) {",
      ["bench:test_outside_text"],
      "a card that cannot sign is blamed on the portal"),
    M("no-cert-request-not-said", "core/portal.c",
      "} else if (!write_p && type == SSL3_MT_CERTIFICATE_REQUEST) {",
      "} else if (!write_p && type == SSL3_MT_CERTIFICATE_REQUEST && write_p) {",
      ["bench:test_outside_text"],
      "a portal that never asked for the card is taken for a CAC login"),
]

# -- a card forwarded over SSH (cacreg ssh) --
MUTATIONS += [
    M("forwarded-slots-not-polled", "core/engine.c",
      "if (e->token && !e->poll.id && !e->key && !e->key_in_portal)",
      "if (e->token && !e->poll.id && !e->key && !e->key_in_portal && !e->forwarded)",
      ["ssh:test_ssh"],
      "the remote cacreg never sees the card forwarded from the person's computer"),
    M("forwarded-no-reinit", "core/token.c",
      "    if (!listed || t->nslots == 0) {",
      "    if (false) {",
      ["ssh:test_ssh"],
      "a card inserted after cacreg ssh started is never seen"),
    M("stuck-remote-kept", "tui/ssh/ssh.c",
      "if (r->client_gone && now - r->client_gone >= STUCK_MS) {",
      "if (r->client_gone && now - r->client_gone >= STUCK_MS && false) {",
      ["ssh:test_ssh"],
      "a p11-kit remote stuck in its module holds the ssh session open for ever"),
    M("forwarded-settle-short", "tui/cli/cli.c",
      "(s->readers.forwarded && s->readers.status == CACREG_PCSC_STARTING)) &&",
      "false) &&",
      ["ssh:test_ssh"],
      "on a slow card the remote login gives up before its first look at the slots"),
    M("finalize-unbounded", "core/token.c",
      "    if (!u || pthread_mutex_init(&u->lock, NULL) != 0) {",
      "    if (true || pthread_mutex_init(&u->lock, NULL) != 0) {",
      ["bench:test_pull"],
      "a module whose C_Finalize never returns keeps cacreg from ending"),
]

# -- the portal server (cacreg-portald) --
MUTATIONS += [
    M("portald-tls-spins", "portal/server.c",
      "MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG",
      "MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG",
      ["portald:test_portald TestHostileClients.test_half_a_handshake_costs_no_cpu"],
      "half a TLS handshake makes a server thread spin (libmicrohttpd 0.9.75's epoll mode)"),
    M("portald-sessions-lost-growing", "portal/session.c",
      "            *find(s, old[i].hash) = old[i];",
      "            (void)old[i];",
      ["portald:test_portald TestSessions"],
      "the session table grows and forgets the sessions it held: people are logged out"),
    M("portald-replace-unwritten", "portal/store_sqlite.c",
      "if (old.registered && strcmp(old.sha256, sha256) == 0) {",
      "if (old.registered) {",
      ["portal:soak_portald"],
      "a newer card is answered 200 (unchanged) and never written: the old card stays"),
]

# -- the directory store (store = ldap) --
MUTATIONS += [
    M("ldap-clear-everything", "portal/store_ldap.c",
      "    cleared = remove_noted(&e, noted, n, NULL, c);",
      "    cleared = remove_noted(&e, noted, n, NULL, c);\n"
      "    change_string(c, LDAP_MOD_DELETE, ATTR_ALTSEC, NULL);",
      ["directory:test_sssd"],
      "a clear removes mappings this portal never wrote (the unrelated one on the entry)"),
    M("ldap-replace-keeps-old", "portal/store_ldap.c",
      "if (keep_sha256 && strcmp(r->row.sha256, keep_sha256) == 0)",
      "if (keep_sha256)",
      ["directory:test_sssd"],
      "a newer card is added and the old one's values stay: the old card still logs in"),
    M("ldap-owner-unchecked", "portal/store_ldap.c",
      "        *other |= found && strcasecmp(found, dn) != 0;",
      "        (void)dn;",
      ["directory:test_sssd"],
      "one card lands on two accounts: the directory is not asked who holds it"),
    M("ldap-tls-unverified", "portal/store_ldap.c",
      "demand = LDAP_OPT_X_TLS_DEMAND",
      "demand = LDAP_OPT_X_TLS_NEVER",
      ["directory:test_sssd"],
      "the directory's certificate is not verified (a man in the middle gets the service password)"),
    M("ldap-no-reconnect", "portal/store_ldap.c",
      "    if (*ld && connection_lost(code)) {",
      "    if (*ld && connection_lost(code) && false) {",
      ["directory:test_sssd"],
      "after the directory restarts, the portal keeps its dead connection: 503 for ever"),
    M("ldap-handshake-unbounded", "portal/store_ldap.c",
      "ldap_set_option(ld, LDAP_OPT_CONNECT_ASYNC, LDAP_OPT_ON) != LDAP_OPT_SUCCESS ||",
      "",
      ["directory:test_sssd"],
      "a directory that accepts the connection and never answers holds the request (the TLS "
      "handshake spins past ldap_timeout)"),
    M("ldap-filter-unescaped", "portal/store_ldap.c",
      "(int)(hole - template), template, esc.bv_val, hole + 2);",
      "(int)(hole - template), template, value, hole + 2);",
      ["directory:test_sssd"],
      "a username is put into the filter as it is: 'j*' logs in as jane.doe with her password"),
    M("ldap-lock-unread", "portal/store_ldap.c",
      "    if (pp == PP_accountLocked) {",
      "    if (pp == PP_accountLocked && false) {",
      ["directory:test_sssd"],
      "the directory's lock is not read from its answer: a locked account is told the password is wrong"),
    M("ldap-149-days", "portal/store_ldap.c",
      "#define EXTENSION_DAYS 150",
      "#define EXTENSION_DAYS 149",
      ["directory:test_sssd"],
      "a CAC login gives the password 149 days in the directory"),
    M("portald-directory-words", "portal/api.c",
      "    if (rc == STORE_UNAVAILABLE)",
      "    if (rc == STORE_UNAVAILABLE && false)",
      ["directory:test_sssd"],
      "the directory down is answered as a plain 'unavailable': cacreg cannot say what is down"),
]

# `make check` runs these through --self-test: the first must be caught by its
# test, the second must be reported as no longer applying.
SELF_TEST = [
    M("self-test-pin-wipe", "core/flow.c",
      "if (from->secret == SECRET_PIN)",
      "if (from->secret == SECRET_PIN && 0)",
      ["unit:test_flow"],
      "leaving the PIN step keeps the digits"),
    M("self-test-stale", "core/flow.c",
      "this text is not in flow.c",
      "",
      ["unit:test_flow"],
      "a mutation whose text has gone"),
]
