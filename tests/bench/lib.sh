# Helpers the bench's shell tests share. Source it after setting `here`
# (this directory); the bench is named by $CACREG_BENCH.

# What the tests run: the PKI, the cacreg binary under test, the reference portal.
pki=${CACREG_PKI:-$CACREG_BUILD/pki}
bin=${CACREG_BIN:-$CACREG_BUILD/plain/cacreg}
case "$bin" in /*) ;; *) bin=$PWD/$bin ;; esac # the same file from any directory or namespace
portal=$here/../portal/portal

fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck source=../lib/wait.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/wait.sh"
ok() { echo "ok: $*"; }
ctl() { "$here/bench" ctl "$CACREG_BENCH" "$@" >/dev/null; }
# counter NAME: one counter of the card session now in the reader.
counter() { "$here/bench" ctl "$CACREG_BENCH" counters | tr ' ' '\n' | sed -n "s/^$1=//p"; }
# json a.0.b <file: one value of a JSON document (lists indexed by number).
json() { /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d = d[int(k)] if isinstance(d, list) else d[k]
print(d)' "$1"; }
# bench_mark, then bench_logged PATTERN: whether the bench's log (one line per APDU,
# power-off and reset: tests/bench/README.md) has a line matching PATTERN since the mark.
bench_mark() { bench_log_from=$(($(wc -l <"$CACREG_BENCH/vcacd.log") + 1)); }
bench_logged() { tail -n +"${bench_log_from:-1}" "$CACREG_BENCH/vcacd.log" | grep -qE -- "$1"; }
# insert NAME: pull whatever card is in, insert NAME, and wait until PC/SC sees it.
insert() {
    ctl remove
    "$here/bench" wait "$CACREG_BENCH" absent >/dev/null
    ctl insert "$1"
    "$here/bench" wait "$CACREG_BENCH" present >/dev/null
}

# stop_pid PID: SIGTERM to PID, then up to 5 s for it to end (or be left a zombie).
stop_pid() {
    kill -0 "$1" 2>/dev/null || return 0
    kill "$1" 2>/dev/null || true
    within 5 dead "$1" || true
}
# stop_tmux: the test's tmux server ($server_pid, if any), by PID.
stop_tmux() {
    [ -z "${server_pid:-}" ] || stop_pid "$server_pid"
    server_pid=
}
