#!/usr/bin/env bash
# The bench starts and stops cleanly: two at once do not meet, stopping one
# leaves no process and no file behind, and it starts again right after.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bench() { "$here/bench" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck source=../lib/wait.sh
. "$here/../lib/wait.sh"

# Every process under PID, itself included.
descendants() {
    local pid=$1 child
    echo "$pid"
    for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
        descendants "$child"
    done
}

a= b=
cleanup() {
    [ -z "$a" ] || bench stop "$a" || true
    [ -z "$b" ] || bench stop "$b" || true
}
trap cleanup EXIT

# Other benches may come and go in /run meanwhile (tests/run runs lanes side by side):
# what is compared is /run without them, and this test's own directories by name.
others() { ls /run | grep -v '^cacreg-bench\.' || true; }
run_before=$(others)
home_before=$(ls -a "$HOME")
for round in 1 2; do
    a=$(bench start)
    b=$(bench start)
    [ "$a" != "$b" ] || fail "two benches share a directory"

    # A card in bench A is not seen in bench B.
    bench ctl "$a" insert valid >/dev/null
    bench wait "$a" present 5000 >/dev/null || fail "bench A: card not seen"
    if bench wait "$b" present 600 >/dev/null 2>&1; then fail "bench B sees bench A's card"; fi
    echo "ok: round $round: two benches side by side, each with its own reader"

    pids=$(descendants "$(cat "$a/vcacd.pid")")
    [ "$(echo "$pids" | wc -l)" -ge 3 ] || fail "expected vcacd, pcscd and a card process, got: $pids"
    bench stop "$a"
    [ ! -e "$a" ] || fail "bench directory $a left behind"
    a=
    for pid in $pids; do
        # Gone, or a zombie that init has yet to reap: either way, not running.
        if ! dead "$pid"; then
            fail "process $pid ($(cat /proc/"$pid"/comm)) still runs after stop"
        fi
    done
    echo "ok: round $round: stop ended $(echo $pids | wc -w) processes by PID and removed the directory"
    bench stop "$b"
    [ ! -e "$b" ] || fail "bench directory $b left behind"
    b=
done
[ "$(others)" = "$run_before" ] || fail "files left in /run: $(diff <(echo "$run_before") <(others))"
[ "$(ls -a "$HOME")" = "$home_before" ] || fail "files left in \$HOME"
echo "ok: nothing left in /run or \$HOME"
