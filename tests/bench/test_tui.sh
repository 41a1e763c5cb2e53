#!/usr/bin/env bash
# The full-screen front end, as a person sees it: the real binary in tmux at
# fixed sizes, keys sent with send-keys, the screen read with capture-pane.
# Both paths end to end, wrong PIN and lockout, the card pulled mid-flow, the
# 403 diagnoses, resizing down to "too small", monochrome and ASCII, several
# TERM values, a 10 KB paste into each field, a few thousand random keys, and
# the terminal restored on every exit.
# Needs a running bench (PCSCLITE_CSOCK_NAME, CACREG_BENCH): see tests/run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
tmp=$(mktemp -d)
sock=$tmp/tmux.sock
server_pid=

cleanup() {
    stop_tmux
    [ -d "$tmp/portal" ] && "$portal" stop "$tmp/portal"
    rm -rf "$tmp"
}
trap cleanup EXIT

port=$("$portal" start "$tmp/portal" --crl "$pki/inter.crl")

# tui COLS ROWS [VAR=value...]: cacreg in a new tmux server; the shell around it
# records its exit status and whether the terminal's settings came back.
tui() {
    local cols=$1 rows=$2
    shift 2
    stop_tmux
    rm -f "$tmp/exit" "$tmp/stderr"
    # The settings: on the command line, or (a kiosk reads /etc's only) in the
    # test's own /etc/cacreg/cacreg.conf, laid over /etc in a mount namespace.
    local settings="--portal https://localhost:$port/api/v1/ --ca-bundle $pki/ca-bundle.pem \
        --crl $pki/inter.crl --reader 'Virtual CAC'" wrap=
    if [ "${TUI_ARGS:-}" = --kiosk ]; then
        mkdir -p "$tmp/etc/cacreg"
        printf 'portal_url = https://localhost:%s/api/v1/\nca_bundle = %s\ncrl_file = %s\nreader_filter = Virtual CAC\n' \
            "$port" "$pki/ca-bundle.pem" "$pki/inter.crl" >"$tmp/etc/cacreg/cacreg.conf"
        settings= wrap="$here/with-etc --ns $(cat "$CACREG_BENCH/vcacd.pid") $tmp/etc"
    fi
    cat >"$tmp/run.sh" <<RUN
before=\$(stty -g)
$wrap env LANG=C.UTF-8 TERM=xterm-256color $* "$bin" $settings ${TUI_ARGS:-} \
    2>"$tmp/stderr"
rc=\$?
[ "\$(stty -g)" = "\$before" ] && restored=yes || restored=no
echo "\$rc \$restored" >"$tmp/exit"
sleep 600
RUN
    tmux -S "$sock" -f /dev/null new-session -d -x "$cols" -y "$rows" "bash $tmp/run.sh"
    server_pid=$(tmux -S "$sock" display -p '#{pid}')
    wait_for "Reader status"
}
# shellcheck source=../lib/screen.sh
. "$here/../lib/screen.sh"
on_wait_failure() { [ -s "$tmp/stderr" ] && cat "$tmp/stderr"; }
# quit: Ctrl-C ends it; exit status 0, terminal restored, nothing from the sanitizers.
quit() {
    keys C-c
    within 5 [ -s "$tmp/exit" ] || true
    [ -s "$tmp/exit" ] || { screen; fail "did not quit on Ctrl-C"; }
    [ "$(cat "$tmp/exit")" = "0 yes" ] || { cat "$tmp/stderr"; fail "exit/restored: $(cat "$tmp/exit")"; }
    ! grep -qE "AddressSanitizer|runtime error|LeakSanitizer" "$tmp/stderr" ||
        { cat "$tmp/stderr"; fail "sanitizer report"; }
}
pin() { typed "$1"; keys Enter; }
# login_linda: the password login of the email-only account, from the start screen.
login_linda() {
    keys p
    wait_for "Username:"
    typed linda.loe
    keys Tab
    typed Email-Only-3
    keys Enter
    wait_for "Logged in as linda.loe"
}

ctl unblock valid
insert valid

# The start screen at 80x24: the panel with every prerequisite, the ways in, the key bar.
tui 80 24
wait_for "Card ready: JANE Q DOE"
for text in "pcscd running" "opensc-pkcs11.so" "CAC, JANE Q DOE" "3 read, identity found" \
    "Log in with your CAC (recommended)" "Log in with username and password" \
    "I need a password" "Help and troubleshooting" "Q Quit"; do
    screen | grep -qF -- "$text" || { screen; fail "start screen: no '$text'"; }
done
# Esc at the start stays there: the help page that H opens from the start screen comes
# after it (keys are read in order), then Esc leads back.
keys Escape h
wait_for "The two ways to register"
keys Escape
wait_for "Log in with your CAC"
# Each row's mark says what the row says: a card in is [ok], none is [..].
screen | grep -qF "[ok] Card" || { screen; fail "card in: no [ok] Card"; }
screen | grep -qF "[ok] Smart-card service" || fail "no [ok] Smart-card service"
screen | grep -qF "[ok] Certificates" || fail "no [ok] Certificates"
ok "start screen at 80x24: reader-status panel, ways in, key bar; Esc stays"

# Path 1: CAC login, end to end.
keys c
wait_for "enter your CAC PIN"
typed 123
wait_for "PIN:      ***"
keys Enter
wait_for "A CAC PIN is 6 to 8 digits"
[ "$(counter verifies)" = 0 ] || fail "a malformed PIN was sent to the card"
pin 123456
wait_for "You are logged in as jane.doe"
wait_for "(150 days)"
screen | grep -qF "Your CAC is registered." || fail "not registered"
[ "$(counter verifies)" = 1 ] && [ "$(counter signatures)" = 1 ] ||
    fail "CAC login: $(counter verifies) VERIFY, $(counter signatures) signatures"
# The date on screen is the portal's own (its database), and 150 days from today.
stored=$(/usr/bin/python3 -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("select password_expires from accounts where username = ?",
      ("jane.doe",)).fetchone()[0][:10])' "$tmp/portal/portal.db")
page | grep -qF "good until $stored (150 days)" || { screen; fail "Done: not the portal's date $stored"; }
[ "$stored" = "$(date -u -d '+150 days' +%F)" ] || [ "$stored" = "$(date -u -d '+150 days -2 minutes' +%F)" ] ||
    fail "the portal's date $stored is not 150 days from today"
keys Enter
wait_for "Log in with your CAC"
logouts() { grep -c '"DELETE /api/v1/session' "$tmp/portal/portal.log" || true; }
# The start screen comes back at once; the logout follows on the flow's portal lane,
# ahead of any request of the next person's: wait for it.
one_logout() { [ "$(logouts)" = 1 ]; }
within 5 one_logout || fail "Done, then Enter: no logout within 5 s ($(logouts))"
ok "CAC login end to end: PIN masked, a short PIN refused before the card, logged in, 150 days, 1 VERIFY, 1 signature"

# The same person's newer card: the CAC login replaces the registered one.
swap valid2
wait_for "Card ready: JANE Q DOE"
keys c
wait_for "enter your CAC PIN"
pin 24681357
wait_for "it replaces the card registered before."
wait_for "Replaced: serial"
keys Enter
swap valid
wait_for "Card ready: JANE Q DOE"
ok "the newer card of the same person: registered, replacing the old one (its serial shown)"

# Wrong PIN, then lockout; the tries left are shown each time.
keys c
wait_for "enter your CAC PIN"
pin 000000
wait_for "2 tries left"
screen | grep -qF "The PIN is wrong" || fail "wrong PIN not said"
pin 000000
wait_for "Last try: one more wrong PIN locks the card"
pin 000000
wait_for "PIN is locked"
[ "$(counter verifies)" = 3 ] || fail "$(counter verifies) VERIFYs for 3 wrong PINs"
keys Enter
wait_for "LOCKED"
keys c
wait_for "PIN is locked"
ok "wrong PIN: 2 tries, last try, locked; a locked card stops before the PIN"
quit
ctl unblock valid

# The card pulled mid-flow: at the PIN, with digits typed.
insert valid
tui 80 24
wait_for "Card ready: JANE Q DOE"
keys c
wait_for "enter your CAC PIN"
typed 1234
wait_for "PIN:      ****"
ctl remove
wait_for "The card was removed; nothing was finished."
screen | grep -qF "PIN:" && fail "the PIN field stayed after the card was pulled"
[ "$(counter verifies)" = 0 ] || fail "a PIN was sent"
wait_for "not inserted"
screen | grep -qF "[..] Card" || { screen; fail "no card: the panel's mark is not [..]"; }
screen | grep -qF "[ok] Card" && { screen; fail "no card, and the panel says [ok] Card"; }
screen | grep -qF "[..] Certificates" || { screen; fail "no card: Certificates not [..]"; }
ok "card pulled at the PIN: back to the start, told why, nothing sent; the panel's marks [..]"

# Each 403 and pre-flight diagnosis, in words.
diagnose() { # persona pin text
    swap "$1"
    wait_for "3 read, identity found" # read: "Card ready" only for a card that can be used
    keys c
    if [ "$2" != - ]; then
        wait_for "enter your CAC PIN"
        pin "$2"
    fi
    # The panel may say the verdict first: the page is the problem page, with the words.
    wait_for "It did not work."
    wait_for "$3"
    keys Enter
    wait_for "Log in with your CAC"
}
diagnose noaccount 135790 "no account for the person on this card"
diagnose suspended 864209 "may not use a CAC"
diagnose expired - "certificates have expired"
diagnose revoked - "have been revoked"
diagnose untrusted - "does not trust"
ok "diagnoses: no account, account not permitted, expired, revoked, untrusted issuer"

# Path 2: password login, the registration view, register.
swap emailonly
wait_for "Card ready: LINDA"
keys p
wait_for "Username:"
typed linda.loe
keys Tab
typed Wrong-Pass
keys Enter
wait_for "The username or password is wrong."
wait_for "attempts left before the account locks"
typed Email-Only-3
keys Enter
wait_for "Logged in as linda.loe"
wait_for "Not registered: no CAC is registered"
screen | grep -qF "Email-only account" || fail "account type"
keys r
wait_for "Choose the certificate to register"
screen | grep -qE "> \* LINDA.* identity" || fail "the identity certificate is not marked and preselected"
keys Down
wait_for "signs email"
keys Up Enter
wait_for "Register: enter your CAC PIN"
pin 246802
wait_for "confirm with your portal password"
typed Email-Only-3
keys Enter
wait_for "Your CAC is registered."
[ "$(counter signatures)" = 1 ] || fail "register: $(counter signatures) signatures"
keys Enter
wait_for "Log in with your CAC"
login_linda
wait_for "Current registered information:"
# What a directory matches on: the issuer, the serial and the SHA-256 of what is registered.
linda_sha=$(openssl x509 -in "$pki/cards/emailonly/id.pem" -noout -fingerprint -sha256 | sed 's/^.*=//; s/://g')
shown=$(screen | cut -c1-48 | tr -d ' \n')
[[ $shown == *SHA-256${linda_sha}* ]] || { screen; fail "the registration view lacks the SHA-256"; }
screen | grep -q "CN=Test DOD ID CA-59,OU=PKI" || { screen; fail "the registration view lacks the issuer"; }
keys c
wait_for "Clear the registered information?"
keys y
wait_for "The registered information was cleared."
wait_for "Not registered"
keys Escape
wait_for "Log in with your CAC"
ok "password login (wrong password, attempts left), not registered, chooser, PIN, password: registered, one signature; cleared"

# The register path's own 403s: a card registered to someone else, a card of someone else.
register_refused() { # persona pin text
    swap "$1"
    wait_for "3 read, identity found"
    login_linda
    keys r
    wait_for "Choose the certificate to register"
    keys Enter
    wait_for "Register: enter your CAC PIN"
    pin "$2"
    wait_for "confirm with your portal password"
    typed Email-Only-3
    keys Enter
    wait_for "$3"
    keys Enter
    wait_for "Logged in as linda.loe" # back to the account, not out of it
    keys Escape
    wait_for "Log in with your CAC"
}
register_refused valid2 24681357 "This card is already registered to another account."
register_refused noaccount 135790 "This card belongs to someone else than the account"
ok "register path: registered to another account, and someone else's card, each said; back to the account"

# The card pulled on the register path: at the chooser, and after the PIN at the password.
swap emailonly
wait_for "Card ready: LINDA"
login_linda
keys r
wait_for "Choose the certificate to register"
ctl remove
wait_for "The card was removed; nothing was finished."
screen | grep -qF "Logged in as" && fail "the account stayed on screen after the card was pulled"
swap emailonly
wait_for "Card ready: LINDA"
login_linda
keys r
wait_for "Choose the certificate to register"
keys Enter
wait_for "Register: enter your CAC PIN"
pin 246802
wait_for "confirm with your portal password"
typed Email-Ov
ctl remove
wait_for "The card was removed; nothing was finished."
[ "$(counter signatures 2>/dev/null || echo 0)" = 0 ] || fail "a signature without a card"
gone "Password:"
ok "card pulled at the chooser and at the password: back to the start, account and typing gone"

# Typed ahead: the key that opens the login and the username in one write.
typed "pjane.doe"
keys Tab
typed Correct-Horse-1
keys Enter
wait_for "Logged in as jane.doe"
keys Escape
wait_for "Log in with your CAC"
ok "keys typed ahead land in the step they were typed for"

# An expired password hands off to "I need a password", the username kept.
keys p
wait_for "Username:"
typed old.timer
keys Tab
typed Stale-Pass-5
keys Enter
wait_for "Your portal password has expired."
wait_for "N  ask for a new password"
keys n
wait_for "I need a password"
screen | grep -qF "old.timer" || fail "the username did not follow to the reset"
keys Enter
wait_for "Asked for a new password."
keys Enter
wait_for "Log in with your CAC"
ok "expired password: the problem page offers the reset; the request is sent for the same username"
quit

# The panel live: pcscd goes away and comes back; the card is read again.
insert valid
tui 80 24
wait_for "Card ready: JANE Q DOE"
ctl pcscd stop
wait_for "pcscd not running"
wait_for "Insert your CAC into the reader"
keys c
wait_for "The smart-card service (pcscd) is not running."
keys Enter
ctl pcscd start
wait_for "pcscd running" 10
insert valid # the bench's card process goes with pcscd's connection
wait_for "Card ready: JANE Q DOE" 10
ok "pcscd stopped: the panel says so and CAC login explains it; started again: the card is back"
quit

# Left alone at the PIN for idle_timeout: back to the start, the digits gone.
printf 'idle_timeout = 10\n' >"$tmp/idle.conf"
TUI_ARGS="--config $tmp/idle.conf" tui 80 24
wait_for "Card ready: JANE Q DOE"
keys c
wait_for "enter your CAC PIN"
typed 12
wait_for "PIN:      **"
t0=$(date +%s)
wait_for "Nothing was typed for a while, so this was stopped and cleared." 15
took=$(( $(date +%s) - t0 ))
[ "$took" -ge 9 ] || fail "idle after $took s, want 10"
[ "$(counter verifies)" = 0 ] || fail "a PIN was sent after the idle timeout"
keys c
wait_for "enter your CAC PIN"
screen | grep -qF "PIN:      *" && fail "the digits typed before the idle timeout came back"
ok "idle at the PIN for idle_timeout (10 s): back to the start after $took s, digits wiped, nothing sent"
quit

# Resizing: 80x24 up to 200x60, down to too small, and back.
insert valid
tui 80 24
wait_for "Card ready"
tmux -S "$sock" resize-window -x 200 -y 60
key_bar_at_bottom() { screen | tail -1 | grep -qF "Q Quit"; }
within "$WAIT_SECONDS" key_bar_at_bottom || { screen; fail "200x60: not laid out again"; }
screen | grep -qF "This terminal" && fail "200x60 called too small"
[ "$(screen | wc -l)" = 60 ] || fail "200x60: $(screen | wc -l) rows"
tmux -S "$sock" resize-window -x 60 -y 20
wait_for "This terminal is 60x20;"
wait_for "cacreg needs 80x24."
tmux -S "$sock" resize-window -x 80 -y 24
wait_for "Log in with your CAC"
gone "This terminal is"
ok "resize: 200x60 laid out, 60x20 says too small, 80x24 again"
quit

# Monochrome and ASCII: NO_COLOR, a non-UTF-8 locale, vt100.
tui 80 24 NO_COLOR=1 LANG=C LC_ALL=C TERM=vt100
wait_for "Card ready"
screen | grep -qF "+- Reader status -" || { screen; fail "ASCII line drawing"; }
screen | grep -q "[─│┌]" && fail "box-drawing characters in ASCII mode"
screen -e | grep -qE $'\e\\[[0-9;]*3[0-7](;[0-9]+)*m' && fail "colour with NO_COLOR"
keys c
wait_for "enter your CAC PIN"
keys Escape
wait_for "Log in with your CAC"
quit
for term in xterm linux screen xterm-256color; do
    tui 80 24 TERM=$term
    wait_for "Card ready"
    keys h
    wait_for "The two ways to register"
    keys Enter
    wait_for "lines 1-"
    keys Escape Escape
    wait_for "Log in with your CAC"
    quit
done
ok "monochrome + ASCII on vt100; TERM xterm, linux, screen, xterm-256color usable (help pages too)"

# A 10 KB paste into each field: refused whole, said so, nothing kept or sent.
tui 80 24
wait_for "Card ready"
keys c
wait_for "enter your CAC PIN"
typed "$(head -c 10240 /dev/zero | tr '\0' 7)"
wait_for "A CAC PIN has at most 8 digits"
screen | grep -qF "PIN:      *" && fail "PIN field kept part of the paste"
[ "$(counter verifies)" = 0 ] || fail "a pasted PIN reached the card"
keys Escape
wait_for "Log in with your CAC"
keys p
wait_for "Username:"
typed "$(head -c 10240 /dev/zero | tr '\0' u)"
wait_for "longer than a username can be"
screen | grep -q "Username: *u" && fail "the username field kept part of the paste"
keys Tab
typed "$(head -c 10240 /dev/zero | tr '\0' w)"
wait_for "longer than any password"
screen | grep -qF "Password: *\*" && fail "the password field kept part of the paste"
quiet "$(pane_child)" # the paste handled, the front end waiting for keys again; then
sleep 0.3             # the person's pause: what is typed after a pause is typing, not the paste
typed abc
wait_for "Password: ***"
keys Escape
wait_for "Log in with your CAC"
ok "10 KB paste into the PIN, username and password fields: refused, said so, nothing sent"
quit

# A few thousand random keys: no crash, a sane screen, and a clean exit.
tui 80 24
wait_for "Card ready"
RANDOM=4242
special=(Enter Escape Tab BTab Up Down Left Right Home End BSpace DC PPage NPage F1 C-u C-l)
alpha=abcdefghijklmnoprstuvwxyzABCDEFGHIJKLMNOPRSTUVWXYZ0123456789.-_@!
sent=0
while [ $sent -lt 3000 ]; do
    if [ $((RANDOM % 3)) = 0 ]; then
        keys "${special[$((RANDOM % ${#special[@]}))]}"
        sent=$((sent + 1))
    else
        chunk=
        for _ in $(seq 8); do chunk+=${alpha:$((RANDOM % ${#alpha})):1}; done
        typed "$chunk"
        sent=$((sent + 8))
    fi
done
drawn() {
    local rows=()
    mapfile -t rows < <(screen)
    [[ ${rows[0]} == *"cacreg - register your CAC"* ]] && [[ ${rows[-1]} =~ Esc|Enter ]]
}
within "$WAIT_SECONDS" drawn || { screen; fail "random keys: no title bar or no key bar"; }
# Esc, one at a time (each read alone, not as the start of a sequence), until the start.
for _ in $(seq 12); do
    keys Escape
    within 1 _shown "Log in with your CAC" && break
done
wait_for "Log in with your CAC"
ok "$sent random keys: still drawn, Esc leads back to the start"
quit
ctl unblock valid

# The kiosk has no way out by the keyboard; a terminating signal restores the terminal too.
TUI_ARGS=--kiosk tui 80 24
wait_for "Log in with your CAC"
screen | grep -qF "Q Quit" && fail "the kiosk offers Q Quit"
keys q C-c C-z 'C-\' Escape h # h: the help page, read after the others (keys come in order)
wait_for "The two ways to register"
[ -s "$tmp/exit" ] && fail "the kiosk let a key end it: $(cat "$tmp/exit")"
keys Escape
wait_for "Log in with your CAC"
child=$(pane_child)
kill -TERM "$child"
within 5 [ -s "$tmp/exit" ] || true
[ "$(cat "$tmp/exit")" = "0 yes" ] || fail "SIGTERM: $(cat "$tmp/exit" 2>/dev/null)"
ok "kiosk: q, Ctrl-C, Ctrl-Z, Ctrl-\\ and Esc do not leave it; SIGTERM: terminal restored, exit 0"

# The kiosk takes no code and no settings from the person's environment: a p11-kit
# module of the user's whose name has "opensc" in it, an OpenSSL configuration that
# loads an engine, OpenSC's own variables; the code they name leaves a marker file.
mkdir -p "$tmp/home/.config/pkcs11/modules"
cat >"$tmp/marker.c" <<C
#include <stdio.h>
__attribute__((constructor)) static void mark(void)
{
    FILE *f = fopen("$tmp/marker", "a");
    if (f) {
        fputs("loaded\n", f);
        fclose(f);
    }
}
C
cc -shared -fPIC -o "$tmp/evil-opensc.so" "$tmp/marker.c"
printf 'module: %s\n' "$tmp/evil-opensc.so" >"$tmp/home/.config/pkcs11/modules/evil-opensc.module"
printf 'openssl_conf = init\n[init]\nengines = e\n[e]\nevil = evil_sec\n[evil_sec]\ndynamic_path = %s\n' \
    "$tmp/evil-opensc.so" >"$tmp/openssl.cnf"
hostile="HOME=$tmp/home XDG_CONFIG_HOME=$tmp/home/.config OPENSSL_CONF=$tmp/openssl.cnf"
hostile="$hostile OPENSC_DRIVER=bogus OPENSC_CONF=$tmp/none.conf P11_KIT_SERVER_ADDRESS=unix:path=$tmp/p11"
# Outside the kiosk the same environment does run that code: the test can tell.
rm -f "$tmp/marker"
# shellcheck disable=SC2086
env $hostile "$bin" status --ca-bundle "$pki/ca-bundle.pem" >/dev/null 2>&1 || true
[ -s "$tmp/marker" ] || fail "the marker module never ran outside the kiosk: the test proves nothing"
rm -f "$tmp/marker"
TUI_ARGS=--kiosk tui 80 24 $hostile
wait_for "Card ready: JANE Q DOE"
[ -e "$tmp/marker" ] && fail "the kiosk ran code named by the person's environment: $(cat "$tmp/marker")"
screen | grep -qF "opensc-pkcs11.so" || fail "kiosk: not Debian's OpenSC module"
child=$(pane_child)
kill -TERM "$child"
within 5 [ -s "$tmp/exit" ] || true
ok "kiosk: a user's p11-kit module, OPENSSL_CONF, OPENSC_DRIVER/OPENSC_CONF and P11_KIT_* have no effect (marker file)"

# A terminal type this machine does not know: one clear line, exit status 4, before
# any thread starts (it crashed inside initscr() while the flow's threads ran).
stop_tmux
rm -f "$tmp/exit" "$tmp/stderr"
cat >"$tmp/run.sh" <<RUN
env TERM=xterm-nowhere-known LANG=C.UTF-8 "$bin" --portal https://localhost:$port/api/v1/ \
    --ca-bundle $pki/ca-bundle.pem 2>"$tmp/stderr"
echo "\$?" >"$tmp/exit"
sleep 600
RUN
tmux -S "$sock" -f /dev/null new-session -d -x 80 -y 24 "bash $tmp/run.sh"
server_pid=$(tmux -S "$sock" display -p '#{pid}')
within 5 [ -s "$tmp/exit" ] || true
[ "$(cat "$tmp/exit" 2>/dev/null)" = 4 ] || { cat "$tmp/stderr"; fail "unknown TERM: exit $(cat "$tmp/exit" 2>/dev/null)"; }
grep -q "TERM=xterm-nowhere-known) is not known here" "$tmp/stderr" || { cat "$tmp/stderr"; fail "unknown TERM: message"; }
[ "$(wc -l <"$tmp/stderr")" = 1 ] || { cat "$tmp/stderr"; fail "unknown TERM: more than one line"; }
ok "unknown TERM: one clear line, exit 4"

# Signals a person or a system can send end it with the terminal restored.
for sig in USR1 USR2 ALRM HUP; do
    tui 80 24
    child=$(pane_child)
    kill "-$sig" "$child"
    within 2 [ -s "$tmp/exit" ] || true
    [ "$(cat "$tmp/exit" 2>/dev/null)" = "0 yes" ] || fail "SIG$sig: $(cat "$tmp/exit" 2>/dev/null) (want '0 yes' within 2 s)"
done
ok "SIGUSR1, SIGUSR2, SIGALRM, SIGHUP: terminal restored, exit 0"

# Ctrl-C and Ctrl-\ at the headless PIN prompt: echo comes back, the exit says why.
for key in C-c 'C-\'; do
    stop_tmux
    rm -f "$tmp/exit"
    cat >"$tmp/run.sh" <<RUN
before=\$(stty -g)
"$bin" login --cac --portal https://localhost:$port/api/v1/ --ca-bundle $pki/ca-bundle.pem \
    --crl $pki/inter.crl --reader 'Virtual CAC' >"$tmp/out" 2>"$tmp/stderr"
rc=\$?
[ "\$(stty -g)" = "\$before" ] && restored=yes || restored=no
echo "\$rc \$restored" >"$tmp/exit"
sleep 600
RUN
    tmux -S "$sock" -f /dev/null new-session -d -x 80 -y 24 "bash $tmp/run.sh"
    server_pid=$(tmux -S "$sock" display -p '#{pid}')
    wait_for "CAC PIN:"
    typed 123
    keys "$key"
    within 2 [ -s "$tmp/exit" ] || true
    want=$([ "$key" = C-c ] && echo 130 || echo 131)
    [ "$(cat "$tmp/exit" 2>/dev/null)" = "$want yes" ] ||
        { cat "$tmp/stderr"; fail "$key at the PIN prompt: $(cat "$tmp/exit" 2>/dev/null), want '$want yes'"; }
done
ok "Ctrl-C and Ctrl-\\ at the headless PIN prompt: echo restored, exit 130/131, within 2 s"
