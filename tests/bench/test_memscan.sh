#!/usr/bin/env bash
# memscan counts a secret's copies exactly, on a victim made for the test
# (memscan_victim.c): 3 in heap blocks and 1 on the stack (a 4th wiped and
# freed is gone), text read from a pipe and a copy freed unwiped, one on a
# second thread's stack, one deep in a 64 GiB reservation, none in read-only
# data unless --all; a page that cannot be read is skipped; each way of
# finding the pages in use gives the same counts. Needs root (memscan reads
# /proc/PID/mem); no bench.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
memscan=$here/memscan
tmp=$(mktemp -d)
victims=()
cleanup() {
    for pid in "${victims[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
# shellcheck source=../lib/wait.sh
. "$here/../lib/wait.sh"

cc -std=c11 -O0 -Wall -Wextra -Werror -pthread -o "$tmp/victim" "$here/memscan_victim.c"

b_text="memscan-B-$RANDOM$RANDOM-secret"
e_text="memscan victim read-only marker E"

# start_victim BIG_MIB: runs a victim; sets victim, a_hex, c_hex, d_hex.
start_victim() {
    local word
    printf '%s' "$b_text" | "$tmp/victim" "$RANDOM" "$1" >"$tmp/victim.out" &
    victim=$!
    victims+=("$victim")
    within 10 [ -s "$tmp/victim.out" ] || true
    read -r word a_hex c_hex d_hex <"$tmp/victim.out" || true
    [ "$word" = ready ] || fail "victim did not start"
}
patterns() { echo "a:hex:$a_hex" "b:$b_text" "c:hex:$c_hex" "d:hex:$d_hex"; }
# expect WHAT GOT WANT
expect() {
    [ "$2" = "$3" ] || fail "$1: got
$2
want
$3"
    ok "$1"
}
counts() { printf 'a 4\nb 2\nc 1\nd 1\ne %s\n' "$1"; }
# scan ARGS...: memscan's counts into $scanned, its time into $took_ms.
scan() {
    local t0 t1
    t0=$(date +%s%N)
    # shellcheck disable=SC2046
    scanned=$("$memscan" "$@" "$victim" $(patterns) "e:$e_text")
    t1=$(date +%s%N)
    took_ms=$(((t1 - t0) / 1000000))
}

start_victim 65536
# shellcheck disable=SC2046
"$memscan" -v "$victim" $(patterns) "e:$e_text" >"$tmp/v.out" 2>"$tmp/v.err"
sed 's/^/    /' "$tmp/v.out" "$tmp/v.err"
expect "counts (writable and anonymous mappings)" "$(grep -v '^ ' "$tmp/v.out")" "$(counts 0)"

# Where -v says they are: pattern P's lines, then the mapping names among them.
where() { awk -v p="$1" '/^[^ ]/ { on = ($1 == p) } on && /^ / { print }' "$tmp/v.out"; }
expect "a: 3 in [heap]" "$(where a | grep -c ' \[heap\] ')" 3
expect "a: 1 in [stack], main thread's" "$(where a | grep -c " \[stack\], stack of thread $victim ")" 1
expect "b: 2 in [heap] (the read buffer, a block freed unwiped)" "$(where b | grep -c ' \[heap\] ')" 2
where c | grep -q "\[anonymous\], stack of thread [0-9]" || fail "c is not on a thread's stack: $(where c)"
ok "c: on the second thread's stack"
expect "d: 40 GiB - 12 bytes into its mapping" "$(where d | sed 's/.* +//')" 0x9fffffff4
grep -q " 4 KiB unreadable" "$tmp/v.err" || fail "the page past the memfd's end was not skipped as unreadable"
ok "the page past the end of a mapped file: skipped, counted as 4 KiB unreadable"

for pages in auto scan pagemap; do
    if [ "$pages" = scan ] && ! "$memscan" --pages scan "$victim" x:y >/dev/null 2>&1; then
        echo "skip: --pages scan: no PAGEMAP_SCAN ioctl on this kernel ($(uname -r))"
        continue
    fi
    scan --pages "$pages"
    expect "--pages $pages counts, 64 GiB reserved: $took_ms ms" "$scanned" "$(counts 0)"
done

# --all adds read-only file mappings: E is in the victim's read-only data (the
# page it lies in may be mapped twice, read-only data and RELRO).
scan --all
expect "--all: a to d unchanged" "$(echo "$scanned" | grep -v '^e ')" "$(counts 0 | grep -v '^e ')"
e=$(echo "$scanned" | sed -n 's/^e //p')
[ "$e" -ge 1 ] || fail "--all: e=$e, want at least 1"
"$memscan" -v --all "$victim" "e:$e_text" 2>/dev/null | grep '^ ' | grep -v " r--p $tmp/victim " &&
    fail "--all: E found outside the victim's read-only mappings"
ok "--all: e=$e, each in a read-only mapping of the victim binary"

# Every byte read, on a victim with a small reservation: the same counts.
start_victim 64
scan --pages all
expect "--pages all counts, 64 MiB reserved: $took_ms ms" "$scanned" "$(counts 0)"

# Errors: exit 2 with a reason.
"$memscan" 999999999 p:x 2>/dev/null && fail "no such process: exit 0"
"$memscan" "$victim" nolabel 2>/dev/null && fail "a pattern without a label: exit 0"
"$memscan" "$victim" z:hex:0000 2>/dev/null && fail "an all-zero pattern: exit 0"
ok "errors exit non-zero"
echo "all memscan checks passed"
