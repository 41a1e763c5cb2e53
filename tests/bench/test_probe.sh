#!/usr/bin/env bash
# cardprobe, the second PC/SC client of issue 11 section 1, on the bench: a
# fresh card refuses it, a card whose PIN someone verified signs for it (and
# the bench counts that signature), and a warm reset or a power-down makes the
# card forget the PIN, as a real card does.
# Needs a running bench (PCSCLITE_CSOCK_NAME, CACREG_BENCH): see tests/run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cardprobe=$CACREG_BUILD/tests/cardprobe
module=$(pkg-config --variable=libdir libpcsclite 2>/dev/null)/opensc-pkcs11.so
[ -e "$module" ] || module=/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so
tmp=$(mktemp -d)
holder_pid='' p11_pid=''
cleanup() {
    [ -z "$holder_pid" ] || kill "$holder_pid" 2>/dev/null || true
    [ -z "$p11_pid" ] || kill "$p11_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# probe WANT_STATUS WANT_LINE [ARGS...]: one probe, its line and exit status.
probe() {
    local want_rc=$1 want=$2 got rc=0
    shift 2
    got=$("$cardprobe" "$@" 2>"$tmp/probe.err") || rc=$?
    [ "$rc" = "$want_rc" ] && [ "$got" = "$want" ] && return 0
    fail "cardprobe $*: got '$got' (exit $rc), want '$want' (exit $want_rc): $(cat "$tmp/probe.err")"
}
signatures() { counter signatures; }
expect_signatures() {
    [ "$(signatures)" = "$1" ] || fail "$2: signatures=$(signatures), want $1"
}
logged_in() { [ "$(counter verifies)" = 1 ]; }

# An attacker's connection held open (cardprobe --hold) keeps the card powered,
# so nothing below depends on how fast the test runs: pcscd powers a card down
# about 0.5 s after its last client leaves, and the card forgets its PIN then.
hold_start() {
    local line
    coproc HOLDER { exec "$cardprobe" --hold 2>&1; }
    # shellcheck disable=SC2153 # coproc sets HOLDER_PID
    holder_pid=$HOLDER_PID
    read -r -t 10 line <&"${HOLDER[0]}" || fail "cardprobe --hold: no answer"
    [ "$line" = held ] || fail "cardprobe --hold: '$line'"
}
# hold_end WANT_STATUS WANT_LINE: the held probe runs now.
hold_end() {
    local got='' rc=0 out=${HOLDER[0]}
    eval "exec ${HOLDER[1]}>&-"
    read -r -t 10 got <&"$out" || true
    wait "$holder_pid" || rc=$?
    holder_pid=
    [ "$rc" = "$1" ] && [ "$got" = "$2" ] && return 0
    fail "held cardprobe: got '$got' (exit $rc), want '$2' (exit $1)"
}

ctl unblock valid
insert valid

# A fresh card: PIN not verified, the private key refused, nothing signed.
probe 1 "verify=63C3 sign=6982"
expect_signatures 0 "refused probe"
ok "fresh card: verify=63C3 sign=6982, exit 1, no signature counted"

# The probe's own VERIFY with the right PIN opens the card; its signature counts.
probe 0 "pin=9000 verify=9000 sign=9000" --verify 123456
expect_signatures 1 "probe after its own VERIFY"
ok "after the probe's VERIFY: pin=9000 verify=9000 sign=9000, exit 0, signatures=1"

# A wrong PIN costs a try, and the card stays shut.
probe 1 "pin=63C2 verify=63C2 sign=6982" --verify 999999
expect_signatures 1 "probe after a wrong PIN"
ctl unblock valid
ok "after a wrong PIN: refused, 2 tries left"

# Not a bench reader: a PC/SC-level failure, exit 2.
probe 2 "" "no such reader"
ok "no reader matching: exit 2"

# pkcs11-tool logged in and still running (blocked reading its input from a
# FIFO after C_Login): another client with no PIN signs with the card.
insert valid
mkfifo "$tmp/in"
pkcs11-tool --module "$module" --login --pin 123456 --sign --id 0001 -m SHA256-RSA-PKCS \
    -i "$tmp/in" -o "$tmp/sig" >"$tmp/p11.out" 2>&1 &
p11_pid=$!
within 10 logged_in || fail "pkcs11-tool did not log in: $(cat "$tmp/p11.out")"
probe 0 "verify=9000 sign=9000"
expect_signatures 1 "probe while pkcs11-tool holds its login"
ok "while pkcs11-tool is logged in: verify=9000 sign=9000, the probe's signature counted"
printf 'cardprobe test %s' "$RANDOM" >"$tmp/in"
wait "$p11_pid" || fail "pkcs11-tool: $(cat "$tmp/p11.out")"
p11_pid=
expect_signatures 2 "pkcs11-tool's own signature"

# Issue 11 section 1 as it happens: an attacker connected first; pkcs11-tool
# logs in, signs and exits (OpenSC leaves the card as it is); the attacker signs.
insert valid
hold_start
pkcs11-tool --module "$module" --login --pin 123456 --sign --id 0001 -m SHA256-RSA-PKCS \
    -i "$tmp/sig" -o "$tmp/sig2" >"$tmp/p11.out" 2>&1 || fail "pkcs11-tool: $(cat "$tmp/p11.out")"
hold_end 0 "verify=9000 sign=9000 reset_seen=0"
expect_signatures 2 "held probe after pkcs11-tool exited"
ok "after pkcs11-tool exited, a client that held a connection signs: signatures=2"

# A warm reset (SCardDisconnect with SCARD_RESET_CARD, from another client)
# clears the security state, as on a real card; the held client sees the reset.
insert valid
hold_start
probe 0 "pin=9000 verify=9000 sign=9000" --verify 123456
probe 0 "verify=9000 sign=9000"
bench_mark
probe 0 "reset=ok" --reset
bench_logged "card valid: reset, PIN login dropped" || fail "vcacd did not see the reset"
probe 1 "verify=63C3 sign=6982"
hold_end 1 "verify=63C3 sign=6982 reset_seen=1"
expect_signatures 2 "probes after a warm reset"
ok "warm reset: the card forgets its PIN (verify=63C3 sign=6982), the held client saw reset_seen=1"

# With nobody connected, pcscd powers the card down and it forgets its PIN.
insert valid
bench_mark
probe 0 "pin=9000 verify=9000 sign=9000" --verify 123456
within 10 bench_logged "card valid: power off, PIN login dropped" || fail "pcscd did not power the card down"
probe 1 "verify=63C3 sign=6982"
ok "idle power-down by pcscd: the card forgets its PIN"

ctl remove
echo "all cardprobe checks passed"
