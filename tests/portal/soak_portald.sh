#!/usr/bin/env bash
# make soak: nothing lost. 2,000 registrations (CAC logins and password-path
# registrations, alternately) from 200 personas over 150 accounts (50 with two
# cards) at 32 clients against cacreg-portald, then tests/portal/soak_check.py
# on what the store holds; then the same with kill -9 of the server in the
# middle and a restart. In network and mount namespaces of its own (root).
#
#   SOAK_REGISTRATIONS (2000)  SOAK_CLIENTS (32)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export CACREG_BUILD=${CACREG_BUILD:-${BUILD:-$top/build}}
case "$CACREG_BUILD" in /*) ;; *) CACREG_BUILD=$top/$CACREG_BUILD ;; esac

if [ -z "${SOAK_PORTALD_INSIDE:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "SKIP: $(basename "$0") needs root (namespaces)"; exit 77; }
    exec env SOAK_PORTALD_INSIDE=1 unshare --net --mount --propagation private "$0" "$@"
fi
ip link set lo up

fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck source=../lib/wait.sh
. "$here/../lib/wait.sh"

count=${SOAK_REGISTRATIONS:-2000}
clients=${SOAK_CLIENTS:-32}
pki=${CACREG_PKI:-$CACREG_BUILD/pki}
personas=$CACREG_BUILD/personas
load=$CACREG_BUILD/tests/portal-load
portal=$here/portal
port=8443
[ -f "$personas/.stamp" ] || fail "no personas: run make soak (it makes them)"

T=$(mktemp -d /tmp/cacreg-soak-portald.XXXXXX)
load_pid=
cleanup() {
    [ -z "$load_pid" ] || { kill "$load_pid" 2>/dev/null || true; within 10 dead "$load_pid" || true; }
    for d in "$T"/run*; do [ -d "$d" ] && "$portal" stop "$d"; done
    rm -rf "$T"
}
trap cleanup EXIT

# start DIR: cacreg-portald on $port with the personas' accounts; no limit the load would reach.
start() {
    PORTAL_IMPL=c "$portal" start "$1" --port "$port" --accounts "$personas/accounts.json" \
        --crl "$pki/inter.crl" --connections-per-address 1000 --max-connections 4096 \
        --password-attempts-per-address 100000 --password-attempts-per-account 100000 >/dev/null
}
run_load() { # LOG
    "$load" --url "https://localhost:$port" --ca "$pki/ca-bundle.pem" --personas "$personas" \
        --list "$personas/soak.list" --clients "$clients" --mode register --count "$count" --log "$1"
}
lines() { [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ]; }

echo "nothing lost: $count registrations from $(wc -l <"$personas/soak.list") personas at $clients clients"
mkdir -p "$T/run1"
start "$T/run1"
t0=$(date +%s)
run_load "$T/run1/load.log" | sed 's/^/load: /'
"$portal" stop "$T/run1"
/usr/bin/python3 "$here/soak_check.py" "$T/run1/load.log" "$personas/soak.list" \
    "$T/run1/portal.db" --count "$count" --started "$t0" || fail "the plain run lost something"

echo "the same, with kill -9 of cacreg-portald after $((count / 2)) registrations and a restart"
mkdir -p "$T/run2"
start "$T/run2"
t0=$(date +%s)
run_load "$T/run2/load.log" >"$T/run2/load.out" &
load_pid=$!
within 120 lines "$T/run2/load.log" $((count / 2)) || fail "half the registrations never came"
pid=$(cat "$T/run2/portal.pid")
kill -KILL "$pid"
within 10 dead "$pid" || fail "cacreg-portald outlived kill -9"
echo "killed cacreg-portald (pid $pid) at $(wc -l <"$T/run2/load.log") registrations"
start "$T/run2"
within 300 dead "$load_pid" || fail "the load did not finish after the restart"
wait "$load_pid" || fail "the load tool failed"
load_pid=
sed 's/^/load: /' "$T/run2/load.out"
"$portal" stop "$T/run2"
/usr/bin/python3 "$here/soak_check.py" "$T/run2/load.log" "$personas/soak.list" \
    "$T/run2/portal.db" --count "$count" --started "$t0" --killed ||
    fail "the run with kill -9 lost something"
echo "nothing lost"
