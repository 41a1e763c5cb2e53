#!/usr/bin/env bash
# The card pulled at a random moment while cacreg reads it, checks its PIN or
# logs in with it, at 20-50 ms per APDU (a real CAC's pace): `cacreg status`,
# `cacreg login --cac` and the full-screen front end. Nothing may hang: each
# run ends in a complete result or "the card was removed" (exit 1), and the
# front end is back at its start screen with the card gone from its panel.
# Prints the figures: runs, hangs, outcomes, the longest time from the pull to
# the end. PULL_RUNS runs of each (default 7: about 20 in all, for make check;
# `make soak` runs 200 or more).
# Needs a running bench (PCSCLITE_CSOCK_NAME, CACREG_BENCH): see tests/run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
runs=${PULL_RUNS:-7}
tmp=$(mktemp -d)
sock=$tmp/tmux.sock
server_pid=
cleanup() {
    stop_tmux
    ctl delay 0 || true
    [ -d "$tmp/portal" ] && "$portal" stop "$tmp/portal"
    rm -rf "$tmp"
}
trap cleanup EXIT
port=$("$portal" start "$tmp/portal" --crl "$pki/inter.crl")
RANDOM=1105 # the same pulls every time

ms() { echo $(($(date +%s%N) / 1000000)); }
hangs=0 complete=0 removed=0 longest=0
declare -A seen=()

# one KIND: a card in, the command started, the card pulled DELAY_MS later.
one() {
    local kind=$1 delay=$((20 + RANDOM % 31)) after=$((100 + RANDOM % 3500)) pid rc t0 t
    ctl unblock valid
    insert valid
    ctl delay "$delay"
    case "$kind" in
    status)
        "$bin" status --ca-bundle "$pki/ca-bundle.pem" --crl "$pki/inter.crl" \
            --reader "Virtual CAC" >"$tmp/out" 2>&1 &
        ;;
    login)
        printf '123456\n' >"$tmp/pin"
        "$bin" login --cac --pin-fd 3 --ca-bundle "$pki/ca-bundle.pem" --crl "$pki/inter.crl" \
            --reader "Virtual CAC" --portal "https://localhost:$port/api/v1/" \
            >"$tmp/out" 2>&1 3<"$tmp/pin" &
        ;;
    esac
    pid=$!
    sleep "$((after / 1000)).$(printf '%03d' $((after % 1000)))" # the pull's moment: the experiment
    t0=$(ms)
    ctl remove
    within 10 dead "$pid" || true
    if ! dead "$pid"; then
        # Where it hangs, for the log: every thread's stack.
        command -v gdb >/dev/null && timeout 30 gdb -p "$pid" -batch -ex 'thread apply all bt' 2>/dev/null |
            grep -E '^(Thread|#)' | head -60
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        hangs=$((hangs + 1))
        echo "HANG: $kind, $delay ms/APDU, pulled after $after ms"
        cat "$tmp/out"
        return
    fi
    rc=0
    wait "$pid" || rc=$?
    t=$(($(ms) - t0))
    [ "$t" -gt "$longest" ] && longest=$t
    if [ "$rc" = 1 ] && grep -qE "removed|No card is in a reader|: no card$" "$tmp/out"; then
        removed=$((removed + 1))
    elif [ "$rc" = 0 ] && { [ "$kind" = login ] || grep -q "^Certificates:   3" "$tmp/out"; }; then
        complete=$((complete + 1))
    else
        cat "$tmp/out"
        fail "$kind, $delay ms/APDU, pulled after $after ms: exit $rc, neither complete nor 'removed' (or gone before)"
    fi
    seen["$kind $rc"]=1
}

# The front end: a card in, pulled while it is read or used; back at the start, no hang.
# shellcheck source=../lib/screen.sh
. "$here/../lib/screen.sh"
tui_one() {
    local delay=$((20 + RANDOM % 31)) after=$((100 + RANDOM % 3500)) t0 t
    ctl remove
    "$here/bench" wait "$CACREG_BENCH" absent >/dev/null
    ctl delay "$delay"
    ctl insert valid
    sleep "$((after / 1000)).$(printf '%03d' $((after % 1000)))" # the pull's moment: the experiment
    t0=$(ms)
    ctl remove
    within 10 _shown "not inserted" || true
    t=$(($(ms) - t0))
    if ! _shown "not inserted"; then
        hangs=$((hangs + 1))
        echo "HANG: front end, $delay ms/APDU, pulled after $after ms"
        screen
        return
    fi
    [ "$t" -gt "$longest" ] && longest=$t
    removed=$((removed + 1))
}

for _ in $(seq "$runs"); do one status; done
for _ in $(seq "$runs"); do one login; done

# The front end, in a pane of its own; a CAC login started on each card, so the pull lands
# in the read, the PIN check or the portal's handshake.
rm -f "$tmp/exit"
cat >"$tmp/run.sh" <<RUN
env LANG=C.UTF-8 TERM=xterm-256color "$bin" --portal "https://localhost:$port/api/v1/" \
    --ca-bundle "$pki/ca-bundle.pem" --crl "$pki/inter.crl" --reader "Virtual CAC" 2>"$tmp/stderr"
echo "\$?" >"$tmp/exit"
sleep 600
RUN
tmux -S "$sock" -f /dev/null new-session -d -x 80 -y 24 "bash $tmp/run.sh"
server_pid=$(tmux -S "$sock" display -p '#{pid}')
wait_for "Reader status"
for _ in $(seq "$runs"); do
    tmux -S "$sock" send-keys c
    tmux -S "$sock" send-keys -l 123456
    tmux -S "$sock" send-keys Enter
    tui_one
    tmux -S "$sock" send-keys Escape
done
tmux -S "$sock" send-keys C-c
t0=$(ms)
within 2 [ -s "$tmp/exit" ] || true
[ -s "$tmp/exit" ] || fail "the front end did not end on Ctrl-C within 2 s after the pulls"
echo "front end: Ctrl-C after the pulls ended it in $(($(ms) - t0)) ms"

total=$((3 * runs))
echo "pulls: $total runs at 20-50 ms/APDU; hangs $hangs; complete $complete; 'card removed' $removed;" \
    "longest pull-to-end $longest ms; outcomes: ${!seen[*]}"
[ "$hangs" = 0 ] || fail "$hangs of $total runs hung"
ok "card pulled at random during reads, PIN and login, $total runs: no hang, each complete or 'removed'"

# A module whose C_Finalize never returns (tests/ssh/stuckmod.c): status and a CAC login
# still end, with their own results, half a second after their work.
cc -std=c11 -O2 -shared -fPIC -I/usr/include/p11-kit-1 "$here/../ssh/stuckmod.c" -ldl \
    -o "$tmp/stuckmod.so"
ctl delay 0
insert valid
for cmd in status login; do
    printf '123456\n' >"$tmp/pin"
    t0=$(ms)
    rc=0
    case $cmd in
    status) args=(status) ;;
    login) args=(login --cac --pin-fd 3 --portal "https://localhost:$port/api/v1/") ;;
    esac
    STUCKMOD_AT=finalize timeout -s KILL 20 "$bin" "${args[@]}" --module "$tmp/stuckmod.so" \
        --ca-bundle "$pki/ca-bundle.pem" --crl "$pki/inter.crl" >"$tmp/out" 2>&1 3<"$tmp/pin" || rc=$?
    t=$(($(ms) - t0))
    [ "$rc" = 0 ] || { cat "$tmp/out"; fail "$cmd with a module stuck in C_Finalize: exit $rc"; }
    echo "$cmd with a module stuck in C_Finalize: exit 0 in $t ms"
    insert valid
done
ok "a module stuck in C_Finalize: status and a CAC login end with their results"
