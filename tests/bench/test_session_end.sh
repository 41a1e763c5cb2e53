#!/usr/bin/env bash
# When a person's session ends, the card keeps nothing open: after every way
# a session that verified the PIN can end (the headless login done, a signal
# in the middle of it; the front end's done, failed, Esc back, idle timeout,
# Ctrl-C, SIGTERM), a second PC/SC client with no PIN cannot sign with the card.
# The client (cardprobe --hold) holds a connection from before the session, as
# an attacker would: pcscd would otherwise power the idle card down and the
# test would pass by accident. Needs a running bench: see tests/run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
cardprobe=$CACREG_BUILD/tests/cardprobe
tmp=$(mktemp -d)
sock=$tmp/tmux.sock
server_pid='' holder_pid=''
cleanup() {
    stop_tmux
    [ -z "$holder_pid" ] || kill "$holder_pid" 2>/dev/null || true
    for p in main slow; do [ -d "$tmp/$p" ] && "$portal" stop "$tmp/$p"; done
    rm -rf "$tmp"
}
trap cleanup EXIT
port=$("$portal" start "$tmp/main" --crl "$pki/inter.crl")

# The attacker's connection, held from before the session (its probe runs at hold_end).
hold_start() {
    local line
    coproc HOLDER { exec "$cardprobe" --hold 2>&1; }
    # shellcheck disable=SC2153 # coproc sets HOLDER_PID
    holder_pid=$HOLDER_PID
    read -r -t 10 line <&"${HOLDER[0]}" || fail "cardprobe --hold: no answer"
    [ "$line" = held ] || fail "cardprobe --hold: '$line'"
    bench_mark
}
# hold_end HOW: the held probe tries to sign now; the card must refuse it.
hold_end() {
    local got='' rc=0 out=${HOLDER[0]}
    eval "exec ${HOLDER[1]}>&-"
    read -r -t 10 got <&"$out" || true
    wait "$holder_pid" || rc=$?
    holder_pid=
    case "$got" in
    *sign=6982*) [ "$rc" = 1 ] || fail "$1: probe '$got' exit $rc" ;;
    *) fail "$1: a client with no PIN could use the card afterwards: '$got' (exit $rc)" ;;
    esac
}
# A session that verifies the PIN, as a probe in it would see: the card open.
fresh() { ctl unblock "$1"; insert "$1"; }

# The headless CAC login, to its end.
fresh valid
hold_start
printf '123456\n' | "$bin" login --cac --pin-fd 0 --ca-bundle "$pki/ca-bundle.pem" \
    --crl "$pki/inter.crl" --reader "Virtual CAC" --portal "https://localhost:$port/api/v1/" \
    >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "login"; }
[ "$(counter verifies)" = 1 ] || fail "login: no VERIFY: the test proves nothing"
hold_end "login --cac done"
ok "login --cac done: the card refuses a second client afterwards"

# SIGTERM while the portal answers (a slow portal: the PIN is in, the login not done).
slow=$("$portal" start "$tmp/slow" --crl "$pki/inter.crl" --fault delay=5000)
fresh valid
hold_start
printf '123456\n' >"$tmp/pin"
: >"$tmp/out" # emptied here: what is polled for must come from this run
"$bin" login --cac --pin-fd 3 --ca-bundle "$pki/ca-bundle.pem" --crl "$pki/inter.crl" \
    --reader "Virtual CAC" --portal "https://localhost:$slow/api/v1/" >"$tmp/out" 2>&1 3<"$tmp/pin" &
pid=$!
verified() { [ "$(counter verifies)" = 1 ]; }
within 10 verified || fail "SIGTERM case: the PIN never went to the card"
# The login at the portal: the card has signed in the TLS handshake, the answer is 5 s off.
signed() { [ "$(counter signatures)" = 1 ]; }
within 10 signed || fail "SIGTERM case: the card never signed for the portal's handshake"
t0=$(date +%s%N)
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
t=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" = 143 ] || { cat "$tmp/out"; fail "SIGTERM: exit $rc, want 143"; }
[ "$t" -lt 1000 ] || fail "SIGTERM: took $t ms"
hold_end "login --cac, SIGTERM"
ok "login --cac, SIGTERM while the portal answers: exit 143 in $t ms, the card reset"

# The front end, in a pane of its own.
# shellcheck source=../lib/screen.sh
. "$here/../lib/screen.sh"
tui() {
    stop_tmux
    rm -f "$tmp/exit"
    cat >"$tmp/run.sh" <<RUN
printf 'idle_timeout = 10\n' >"$tmp/idle.conf"
env LANG=C.UTF-8 TERM=xterm-256color "$bin" --config "$tmp/idle.conf" \
    --portal https://localhost:$port/api/v1/ --ca-bundle $pki/ca-bundle.pem \
    --crl $pki/inter.crl --reader 'Virtual CAC' 2>"$tmp/stderr"
echo "\$?" >"$tmp/exit"
sleep 600
RUN
    tmux -S "$sock" -f /dev/null new-session -d -x 80 -y 24 "bash $tmp/run.sh"
    server_pid=$(tmux -S "$sock" display -p '#{pid}')
    wait_for "Card ready"
}
cac_login() { # [PIN]
    keys c
    wait_for "enter your CAC PIN"
    typed "${1:-123456}"
    keys Enter
}
# The register path up to the confirmation password: the PIN verified, nothing sent yet.
to_confirm() {
    keys p
    wait_for "Username:"
    typed jane.doe
    keys Tab
    typed Correct-Horse-1
    keys Enter
    wait_for "Logged in as jane.doe"
    keys r
    wait_for "Choose the certificate"
    keys Enter
    wait_for "enter your CAC PIN"
    typed 123456
    keys Enter
    wait_for "confirm with your portal password"
}
ended() { # HOW: the front end is still running; the held probe must be refused
    [ -s "$tmp/exit" ] && fail "$1: the front end ended"
    # The screen may come back before the reset is done (the reset follows on the
    # card's worker): wait for the card to drop its PIN login, then probe.
    within "$WAIT_SECONDS" bench_logged "PIN login dropped" || fail "$1: the card was never reset"
    hold_end "$1"
    ok "front end, $1: the card refuses a second client"
}

fresh valid
hold_start
tui
cac_login
wait_for "You are logged in as jane.doe"
keys Enter
wait_for "Log in with your CAC"
ended "done, then Enter"

fresh noaccount
hold_start
tui
cac_login 135790
wait_for "no account for the person"
ended "refused by the portal (the problem page)"

fresh valid
hold_start
tui
to_confirm
keys Escape
wait_for "Current registered information"
ended "Esc at the confirmation password"

fresh valid
hold_start
tui
cac_login
wait_for "You are logged in as jane.doe"
wait_for "Nothing was typed for a while"
ended "left alone at Done for idle_timeout"

for how in C-c TERM; do
    fresh valid
    hold_start
    tui
    to_confirm
    if [ "$how" = TERM ]; then
        kill -TERM "$(pane_child)"
    else
        keys C-c
    fi
    within 2 [ -s "$tmp/exit" ] || true
    [ "$(cat "$tmp/exit" 2>/dev/null)" = 0 ] || fail "$how at the confirmation: exit $(cat "$tmp/exit" 2>/dev/null)"
    hold_end "$how at the confirmation password"
    ok "front end, $how with the PIN verified: ended within 2 s, the card refuses a second client"
done
