#!/usr/bin/env bash
# Copies of the PIN and the passwords in the memory of a running front end,
# counted by a scan of the whole process (memscan, as root) at the moments of
# a person's session and of the next person's: the PIN typed, the login done,
# the start screen, the card pulled, a wrong password and back to the start,
# the next person's PIN prompt. Libraries make copies (OpenSC formats every
# APDU, the VERIFY too; libp11 keeps the PIN; libcurl builds the request):
# none may outlive the person. Prints the table. The plain binary only: ASan's
# allocator keeps freed memory aside on purpose.
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

# shellcheck source=../lib/screen.sh
. "$here/../lib/screen.sh"

ctl unblock valid
insert valid
cat >"$tmp/run.sh" <<RUN
env LANG=C.UTF-8 TERM=xterm-256color "$bin" --portal https://localhost:$port/api/v1/ \
    --ca-bundle $pki/ca-bundle.pem --crl $pki/inter.crl --reader 'Virtual CAC' 2>"$tmp/stderr"
sleep 600
RUN
tmux -S "$sock" -f /dev/null new-session -d -x 80 -y 24 "bash $tmp/run.sh"
server_pid=$(tmux -S "$sock" display -p '#{pid}')
wait_for "Card ready"
pid=$(pane_child)

# The PIN, its VERIFY APDU as OpenSC's CAC driver sends it (P2 00, padded with FF),
# the right password and a wrong one.
patterns=(pin:123456 verify:hex:0020000008313233343536FFFF password:Correct-Horse-1
          wrong:Wrong-Horse-9)
printf '%-34s %5s %7s %9s %6s\n' moment pin verify password wrong
declare -A count=()
scan() { # MOMENT: one row of the table; the counts in count[]
    local line
    quiet "$pid" # whatever the front end does after drawing, done: it waits for keys again
    while read -r label n; do count[$label]=$n; done < <("$here/memscan" "$pid" "${patterns[@]}")
    [ -z "${SECRETS_VERBOSE:-}" ] || "$here/memscan" -v "$pid" "${patterns[@]}" 2>&1 | grep -E "^  " >&2
    line=$(printf '%-34s %5s %7s %9s %6s' "$1" "${count[pin]}" "${count[verify]}" \
        "${count[password]}" "${count[wrong]}")
    echo "$line"
    echo "$line" >>"$tmp/table"
}
# expect PIN VERIFY PASSWORD WRONG: the last row's counts (pin: above the baseline).
expect() {
    local got="$((count[pin] - base)) ${count[verify]} ${count[password]} ${count[wrong]}"
    [ "$got" = "$*" ] || {
        "$here/memscan" -v "$pid" "${patterns[@]}" >&2 || true
        fail "copies (pin-baseline verify password wrong): $got, want $*"
    }
}

scan "start, card in, nothing typed"
base=${count[pin]} # "123456" in some library's data, before anyone typed it
keys c
wait_for "enter your CAC PIN"
typed 123456
wait_for "PIN:      ******"
scan "PIN typed (in cacreg's locked page)"
expect 1 0 0 0
keys Enter
wait_for "You are logged in as jane.doe"
scan "login done"
expect 0 0 0 0
keys Enter
wait_for "Log in with your CAC"
scan "start screen"
expect 0 0 0 0
ctl remove
wait_for "not inserted"
scan "card pulled"
expect 0 0 0 0
keys p
wait_for "Username:"
typed jane.doe
keys Tab
typed Wrong-Horse-9
keys Enter
wait_for "The username or password is wrong"
keys Escape
wait_for "Log in with your CAC"
scan "wrong password, then start screen"
expect 0 0 0 0
keys p
wait_for "Username:"
typed jane.doe
keys Tab
typed Correct-Horse-1
keys Enter
wait_for "Logged in as jane.doe"
scan "password login done"
expect 0 0 0 0
keys Escape
wait_for "Log in with your CAC"
insert valid
wait_for "Card ready"
keys c
wait_for "enter your CAC PIN"
scan "next person's PIN prompt"
expect 0 0 0 0
ok "no copy of the PIN, its VERIFY APDU or a password outlives its use (table above)"
