#!/usr/bin/env bash
# cacreg-kiosk, the station, in tmux on the bench and the reference portal,
# with its configuration in the test's own /etc (an overlay in a mount
# namespace) and the system log's socket at /dev/log there: a CAC login and a
# password-path registration through the station; no key or signal gets out,
# no shell under it; a session killed or stuck is replaced; card removal and
# the idle timeout leave nothing of the person on screen or in the history; a
# configuration that is not root's is refused; the person's environment has
# no effect; the card is reset and no secret is left in any process; the audit
# lines say what happened and nothing secret. Needs a running bench.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
kiosk=${CACREG_KIOSK_BIN:-$(dirname "$bin")/cacreg-kiosk}
cardprobe=$CACREG_BUILD/tests/cardprobe
tmp=$(mktemp -d)
sock=$tmp/tmux.sock
server_pid='' sink_pid='' holder_pid=''
stop_tmux() { # lib.sh's, and the station with its session
    local k='' left=''
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        # The station and its session, by PID: a station that outlived its terminal
        # (it ignores SIGHUP) must not outlive the test.
        k=$(kiosk_pid 2>/dev/null || true)
        [ -z "$k" ] || left="$k $({ ps -o pid= --ppid "$k" 2>/dev/null || true; } | tr -d ' ' | tr '\n' ' ')"
    fi
    [ -z "$server_pid" ] || stop_pid "$server_pid"
    # shellcheck disable=SC2086 # a list of PIDs
    [ -z "$left" ] || kill -KILL $left 2>/dev/null || true
    server_pid=
}
cleanup() {
    stop_tmux
    [ -z "$sink_pid" ] || kill "$sink_pid" 2>/dev/null || true
    [ -z "$holder_pid" ] || kill "$holder_pid" 2>/dev/null || true
    [ -d "$tmp/portal" ] && "$portal" stop "$tmp/portal"
    rm -rf "$tmp"
}
trap cleanup EXIT
port=$("$portal" start "$tmp/portal" --crl "$pki/inter.crl")

# The station's /etc: the session's settings and the station's own.
mkdir -p "$tmp/etc/cacreg"
cat >"$tmp/etc/cacreg/cacreg.conf" <<CONF
portal_url = https://localhost:$port/api/v1/
ca_bundle = $pki/ca-bundle.pem
crl_file = $pki/inter.crl
reader_filter = Virtual CAC
idle_timeout = 10
CONF
cat >"$tmp/etc/cacreg/kiosk.conf" <<CONF
station_name = Test station 7
station_help = The CAC office desk is to your left.
reader_filter = Virtual CAC
session_program = $bin
session_timeout = 120
CONF
chmod 644 "$tmp/etc/cacreg/"*.conf
"$here/logsink" "$tmp/log.sock" "$tmp/log" &
sink_pid=$!
within 5 [ -S "$tmp/log.sock" ] || fail "the syslog sink did not start"

# shellcheck source=../lib/screen.sh
. "$here/../lib/screen.sh"
on_wait_failure() { tail -5 "$tmp/log"; }
_in_log() { grep -qE -- "$1" "$tmp/log"; }
logged() { # PATTERN [SECONDS]: a line of the system log matching PATTERN
    within "${2:-$WAIT_SECONDS}" _in_log "$1" && return 0
    cat "$tmp/log"
    fail "never in the log: $1"
}
station() { # [VAR=value...]: the station in a new tmux server
    stop_tmux
    cat >"$tmp/run.sh" <<RUN
$here/with-etc --ns $(cat "$CACREG_BENCH/vcacd.pid") --log $tmp/log.sock $tmp/etc \
    env LANG=C.UTF-8 TERM=xterm-256color $* $kiosk 2>"$tmp/stderr"
echo "\$?" >"$tmp/exit"
sleep 600
RUN
    rm -f "$tmp/exit"
    tmux -S "$sock" -f /dev/null new-session -d -x 80 -y 24 "bash $tmp/run.sh"
    server_pid=$(tmux -S "$sock" display -p '#{pid}')
}
kiosk_pid() { pane_child; } # the launcher: the child of the pane's shell
session_pid() { first_child "$(kiosk_pid)"; }
# no_shell: under the station there is the launcher and at most its one session, cacreg.
no_shell() {
    local k children
    k=$(kiosk_pid)
    [ "$(ps -o comm= -p "$k")" = cacreg-kiosk ] || fail "$1: the pane's process is $(ps -o comm= -p "$k")"
    children=$(ps -o comm= --ppid "$k" | sort -u | tr '\n' ' ' || true)
    case "$children" in "" | "cacreg ") ;; *) fail "$1: under the station: $children" ;; esac
}
nothing_left() { # WHAT: no trace of the last person on screen or in the history
    if tmux -S "$sock" capture-pane -p -S - | grep -qE "JANE|jane.doe|LINDA|linda.loe|logged in|\*\*\*"; then
        tmux -S "$sock" capture-pane -p -S - | grep -nE "JANE|jane.doe|LINDA|linda.loe|logged in|\*\*\*" | head -5
        fail "$1: the last person's session is still on screen or in the history"
    fi
}
cac_login() {
    wait_for "Card ready: JANE Q DOE"
    keys c
    wait_for "enter your CAC PIN"
    typed 123456
    keys Enter
    wait_for "You are logged in as jane.doe"
}

ctl unblock valid
ctl remove
"$here/bench" wait "$CACREG_BENCH" absent >/dev/null
station
wait_for "Test station 7"
wait_for "Insert your CAC to begin."
screen | grep -qF "The CAC office desk is to your left." || fail "no help text"
logged "event=station_start"
ok "idle screen: the station's name, its help text, insert your card"

# Every key and keyboard signal at the idle screen: still there, no shell.
keys q C-c C-z 'C-\' C-d Escape Escape F1 F10 M-x
tmux -S "$sock" send-keys -l -- "$(head -c 4000 /dev/zero | tr '\0' 'x')"
kill -INT "$(kiosk_pid)"; kill -QUIT "$(kiosk_pid)"; kill -TSTP "$(kiosk_pid)"; kill -HUP "$(kiosk_pid)"
# The signals handled, the launcher back at its wait; then nothing may happen (the idle
# screen has no key that shows anything, so this one is watched for half a second).
quiet "$(kiosk_pid)"
no_exit() { [ ! -s "$tmp/exit" ]; }
stays 0.5 no_exit || fail "a key or a signal ended the station: $(cat "$tmp/exit")"
wait_for "Insert your CAC to begin."
no_shell "idle"
ok "idle: q, Ctrl-C/Z/\\/D, Esc, F-keys, Alt, a paste, SIGINT, SIGQUIT, SIGTSTP, SIGHUP: still there, no shell"

# A CAC login through the station, its session a fresh process.
hold() {
    local line
    coproc HOLDER { exec "$cardprobe" --hold 2>&1; }
    # shellcheck disable=SC2153 # coproc sets HOLDER_PID
    holder_pid=$HOLDER_PID
    read -r -t 10 line <&"${HOLDER[0]}" || fail "cardprobe --hold: no answer"
}
probe_refused() {
    local got='' out=${HOLDER[0]} rc=0
    eval "exec ${HOLDER[1]}>&-"
    read -r -t 10 got <&"$out" || true
    wait "$holder_pid" || rc=$?
    holder_pid=
    case "$got" in *sign=6982*) ;; *) fail "$1: a second client could use the card: '$got'" ;; esac
}
ctl insert valid
"$here/bench" wait "$CACREG_BENCH" present >/dev/null
hold
wait_for "Card ready: JANE Q DOE"
first=$(session_pid)
keys q Q h # Q quits cacreg at its start, not in a station's session; h, read after them, opens help
wait_for "The two ways to register"
[ -n "$first" ] && [ "$(session_pid)" = "$first" ] || fail "q ended the session at its start"
keys Escape
wait_for "Card ready: JANE Q DOE"
cac_login
keys C-c C-z 'C-\' q h # h, read after the others, opens help from the Done screen
wait_for "The two ways to register"
keys Escape
wait_for "You are logged in"
[ "$(session_pid)" = "$first" ] || fail "keys ended the session (a new one runs)"
no_shell "in a session"
keys Enter
wait_for "Please take your card."
logged "event=result outcome=registered path=cac_login card=CAC issuer=\"Test DOD ID CA-59\" serial=\"1004\""
logged "event=session_end pid=[0-9]+ reason=done status=0"
nothing_left "after a CAC login"
grep -E "123456|Correct-Horse|1000000001|JANE" "$tmp/log" && fail "the log holds a PIN, a password or the identity"
probe_refused "after a CAC login at the station"
k=$(kiosk_pid)
"$here/memscan" "$k" pin:123456 pw:Correct-Horse-1 >"$tmp/scan"
[ "$(sed -n 's/^pw //p' "$tmp/scan")" = 0 ] || fail "the launcher holds the password"
"$here/memscan" "$k" verify:hex:0020000008313233343536FFFF | grep -q "^verify 0$" || fail "the launcher holds the PIN's APDU"
ok "CAC login through the station: a session of its own, keys kept in, result logged (no PIN, password or EDIPI), the card reset, nothing in the launcher's memory, nothing on screen or in the history"
ctl remove
wait_for "Insert your CAC to begin."

# The password path and a registration, with the next card.
ctl insert valid
"$here/bench" wait "$CACREG_BENCH" present >/dev/null
wait_for "Card ready: JANE Q DOE"
keys p
wait_for "Username:"
typed jane.doe
keys Tab
typed Correct-Horse-1
keys Enter
wait_for "Logged in as jane.doe"
keys r
wait_for "Choose the certificate to register"
keys Enter
wait_for "enter your CAC PIN"
typed 123456
keys Enter
wait_for "confirm with your portal password"
typed Correct-Horse-1
keys Enter
wait_for "Registered now:"
keys Enter
wait_for "Please take your card."
logged "outcome=(registered|unchanged|replaced) path=register"
nothing_left "after a registration"
ok "password login and registration through the station"

# kill -9 of a session: the idle screen back within a second.
ctl remove
"$here/bench" wait "$CACREG_BENCH" absent >/dev/null
ctl insert valid
wait_for "Card ready: JANE Q DOE"
s=$(session_pid)
t0=$(date +%s%N)
kill -KILL "$s"
wait_for "Please take your card." 2
t=$((($(date +%s%N) - t0) / 1000000))
[ "$t" -lt 1000 ] || fail "after kill -9 the idle screen took $t ms"
logged "event=session_end pid=$s reason=crash"
no_shell "after a crash"
ok "kill -9 of a session: idle screen back in $t ms, logged as a crash"

# A session that stops answering (SIGSTOP) is killed past session_timeout, and replaced.
sed -i 's/^session_timeout = .*/session_timeout = 6/' "$tmp/etc/cacreg/kiosk.conf"
ctl remove
station
wait_for "Insert your CAC to begin."
ctl insert valid
wait_for "Card ready: JANE Q DOE"
s=$(session_pid)
kill -STOP "$s"
logged "event=session_stuck pid=$s" 10
wait_for "Please take your card." 3
logged "event=session_end pid=$s reason=stuck"
sed -i 's/^session_timeout = .*/session_timeout = 120/' "$tmp/etc/cacreg/kiosk.conf"
station
ok "a stuck session: killed after session_timeout, the station back"

# Card pulled, and left alone: both back to the idle screen, nothing left.
ctl remove
wait_for "Insert your CAC to begin."
ctl insert valid
cac_login
ctl remove
wait_for "Insert your CAC to begin."
logged "reason=(done|card_pulled)"
nothing_left "after the card was pulled"
ctl insert valid
wait_for "Card ready: JANE Q DOE"
keys p
wait_for "Username:"
typed jane.doe
wait_for "Please take your card." 15
logged "reason=idle"
nothing_left "after the idle timeout"
ok "card pulled, left alone: the idle screen, nothing of the person on screen or in the history"

# The person's environment has no effect on the sessions (marker file).
mkdir -p "$tmp/home/.config/pkcs11/modules"
printf '#include <stdio.h>\n__attribute__((constructor)) static void m(void) { FILE *f = fopen("%s", "a"); if (f) { fputs("loaded\\n", f); fclose(f); } }\n' \
    "$tmp/marker" >"$tmp/marker.c"
cc -shared -fPIC -o "$tmp/evil-opensc.so" "$tmp/marker.c"
printf 'module: %s\n' "$tmp/evil-opensc.so" >"$tmp/home/.config/pkcs11/modules/evil-opensc.module"
# ...and a module the station's own p11-kit registry names: a session loads only the
# PKCS#11 module it is configured with, by its path, never every registered one.
mkdir -p "$tmp/etc/pkcs11/modules"
printf 'module: %s\n' "$tmp/evil-opensc.so" >"$tmp/etc/pkcs11/modules/zz-other.module"
printf 'openssl_conf = init\n[init]\nengines = e\n[e]\nevil = evil_sec\n[evil_sec]\ndynamic_path = %s\n' \
    "$tmp/evil-opensc.so" >"$tmp/openssl.cnf"
ctl remove
station HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/home/.config" OPENSSL_CONF="$tmp/openssl.cnf" \
    OPENSC_DRIVER=bogus P11_KIT_SERVER_ADDRESS=unix:path=/nowhere LD_LIBRARY_PATH="$tmp" \
    http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9
wait_for "Insert your CAC to begin."
ctl insert valid
cac_login
[ -e "$tmp/marker" ] && fail "a session ran code named by the person's environment or the registry"
keys Enter
wait_for "Please take your card."
rm -rf "$tmp/etc/pkcs11"
ok "a hostile environment, ~/.config/pkcs11 modules, a module in the registry: no effect on the station's sessions (marker file)"

# A configuration that is not root's, or writable by others: refused, said, logged.
chmod 666 "$tmp/etc/cacreg/kiosk.conf"
station
wait_for "Out of service"
wait_for "configuration is refused"
logged "event=config_refused why=\".*can be written by others"
chmod 644 "$tmp/etc/cacreg/kiosk.conf"
chown nobody "$tmp/etc/cacreg/kiosk.conf"
station
wait_for "owned by root: refused"
logged "event=config_refused why=\".*not owned by root"
chown root "$tmp/etc/cacreg/kiosk.conf"
ok "a configuration writable by others, or not root's: refused on screen and in the log"

# The sessions' cacreg.conf writable by others: every session would refuse it, so the
# station is out of service and says which file; fixed, a key brings it back.
ctl remove
"$here/bench" wait "$CACREG_BENCH" absent >/dev/null
chmod 666 "$tmp/etc/cacreg/cacreg.conf"
station
wait_for "sessions' configuration is refused"
logged "event=config_refused file=/etc/cacreg/cacreg.conf why=\".*can be written by others"
chmod 644 "$tmp/etc/cacreg/cacreg.conf"
keys Enter
wait_for "Insert your CAC to begin."
printf 'session_program = %s/nonexistent\n' "$tmp" >>"$tmp/etc/cacreg/kiosk.conf"
station
wait_for "nonexistent' cannot be run"
sed -i '$d' "$tmp/etc/cacreg/kiosk.conf"
ok "a cacreg.conf the sessions would refuse, a session_program that cannot run: out of service, said, logged"

# Only root's SIGTERM ends it.
ctl remove
"$here/bench" wait "$CACREG_BENCH" absent >/dev/null
station
wait_for "Insert your CAC to begin."
kill -TERM "$(kiosk_pid)"
within 2 [ -s "$tmp/exit" ] || true
[ "$(cat "$tmp/exit" 2>/dev/null)" = 0 ] || fail "SIGTERM: $(cat "$tmp/exit" 2>/dev/null)"
logged "event=station_stop"
ok "SIGTERM from the service manager: the station stops, logged"

# The unit: systemd-analyze verify has nothing to say (the binary under test in its
# ExecStart; the man page is checked by the package's test), and its exposure.
if command -v systemd-analyze >/dev/null; then
    sed -e "s|^ExecStart=.*|ExecStart=$kiosk|" -e '/^Documentation=/d' \
        "$here/../../kiosk/cacreg-kiosk@.service" >"$tmp/cacreg-kiosk@tty2.service"
    systemd-analyze verify "$tmp/cacreg-kiosk@tty2.service" >"$tmp/verify" 2>&1 || true
    [ ! -s "$tmp/verify" ] || { cat "$tmp/verify"; fail "systemd-analyze verify"; }
    exposure=$(systemd-analyze security --offline=true "$tmp/cacreg-kiosk@tty2.service" 2>/dev/null |
        sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    ok "the unit: systemd-analyze verify clean, exposure $exposure"
fi
