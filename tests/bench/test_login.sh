#!/usr/bin/env bash
# `cacreg login --cac` on the bench against the reference portal: registers,
# unchanged, replaced, 150 days; wrong and locked PINs and bad certificates
# stop before the portal; each 403 becomes a diagnosis; every portal fault
# mode gives a clear failure; one card signature per login; a card pulled
# while the portal is answering cancels the flow.
# Needs a running bench (PCSCLITE_CSOCK_NAME, CACREG_BENCH): see tests/run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
tmp=$(mktemp -d)
cleanup() {
    for d in "$tmp"/portal-*; do [ -d "$d" ] && "$portal" stop "$d"; done
    rm -rf "$tmp"
}
trap cleanup EXIT

start_portal() { # name [fault options...]
    local name=$1
    shift
    "$portal" start "$tmp/portal-$name" --crl "$pki/inter.crl" "$@"
}
login() { # expected-exit pin [options...]: one login, output in $tmp/out
    local want=$1 pin=$2 rc=0
    shift 2
    printf '%s\n' "$pin" | "$bin" login --cac --pin-fd 0 --ca-bundle "$pki/ca-bundle.pem" \
        --crl "$pki/inter.crl" --reader "Virtual CAC" --portal "https://localhost:$port/api/v1/" \
        "$@" >"$tmp/out" 2>&1 || rc=$?
    [ "$rc" = "$want" ] || { cat "$tmp/out"; fail "exit $rc, want $want"; }
}
portal_requests() { grep -c '"POST /api/v1/cac-login' "$tmp/portal-main/portal.log" || true; }

port=$(start_portal main)
ctl unblock valid

insert valid
login 0 123456 --json
[ "$(json registration <"$tmp/out")" = registered ] || { cat "$tmp/out"; fail "first login"; }
[ "$(json username <"$tmp/out")" = jane.doe ] || fail "username"
# 150 days exactly: the instant the portal gives, against now, within two minutes.
off=$(( $(date -d "$(json password_expires <"$tmp/out")" +%s) - $(date +%s) - 150 * 86400 ))
[ "${off#-}" -le 120 ] || fail "password expiry $off s away from 150 days"
logouts=$(grep -c '"DELETE /api/v1/session' "$tmp/portal-main/portal.log" || true)
[ "$logouts" = 1 ] || fail "login --cac did not log out at its end ($logouts logouts)"
[ "$(counter signatures)" = 1 ] && [ "$(counter verifies)" = 1 ] ||
    fail "one login should cost one VERIFY and one signature: $(counter verifies)/$(counter signatures)"
ok "first CAC login registers, password good for 150 days to the minute, one VERIFY and one signature, logged out at the end"

insert valid
login 0 123456
grep -q "This CAC was registered already" "$tmp/out" || { cat "$tmp/out"; fail "unchanged"; }
insert valid2
login 0 24681357
grep -q "it replaces the card registered before" "$tmp/out" || { cat "$tmp/out"; fail "replaced"; }
ok "the same card: unchanged; the person's newer card: replaces the old one"

# A wrong PIN: told, tries left, never re-sent, the portal never asked.
insert valid
before=$(portal_requests)
login 3 999999
grep -q "The PIN is wrong" "$tmp/out" && grep -q "2 tries left" "$tmp/out" || { cat "$tmp/out"; fail "wrong PIN"; }
[ "$(counter verifies)" = 1 ] || fail "a wrong PIN was sent $(counter verifies) times"
login 3 888888
grep -q "1 try left before the card locks" "$tmp/out" || { cat "$tmp/out"; fail "final try"; }
login 3 777777
grep -q "PIN is locked" "$tmp/out" || { cat "$tmp/out"; fail "locked"; }
login 3 123456
grep -q "PIN is locked" "$tmp/out" || { cat "$tmp/out"; fail "still locked"; }
[ "$(counter verifies)" = 3 ] || fail "VERIFYs: $(counter verifies), want 3 (none once locked)"
[ "$(portal_requests)" = "$before" ] || fail "the portal was asked after a PIN failure"
ctl unblock valid
login 4 12ab
grep -q "6 to 8 digits" "$tmp/out" || fail "malformed PIN"
ok "wrong PIN: 2, then 1 tries left, then locked; one VERIFY each, none once locked, portal never asked"

# Bad certificates stop before the PIN and before the portal: the verdict is
# matched, not a word ("expired" is also in the words for an unknown revocation).
for pair in expired:expired revoked:revoked untrusted:untrusted; do
    insert "${pair%%:*}"
    login 3 000000 --json
    [ "$(json stage <"$tmp/out")" = preflight ] || { cat "$tmp/out"; fail "${pair%%:*}: stage"; }
    [ "$(json verdict <"$tmp/out")" = "${pair#*:}" ] || { cat "$tmp/out"; fail "${pair%%:*}: verdict"; }
    [ "$(counter verifies)" = 0 ] || fail "${pair%%:*}: a PIN was sent"
done
# Without a CRL (or OCSP) the expired card is still expired: its own dates say so.
insert expired
rc=0
printf '000000\n' | "$bin" login --cac --pin-fd 0 --ca-bundle "$pki/ca-bundle.pem" \
    --reader "Virtual CAC" --portal "https://localhost:$port/api/v1/" --json >"$tmp/out" 2>&1 || rc=$?
[ "$rc" = 3 ] && [ "$(json verdict <"$tmp/out")" = expired ] ||
    { cat "$tmp/out"; fail "expired card without a CRL: exit $rc"; }
grep -q "expired on 2024-01-01" "$tmp/out" || { cat "$tmp/out"; fail "expired: not its date"; }
[ "$(counter verifies)" = 0 ] || fail "expired without a CRL: a PIN was sent"
[ "$(portal_requests)" = "$before" ] || fail "the portal was asked about a bad card"
ok "expired (with and without a CRL), revoked and untrusted cards: their verdicts, before any PIN or portal request"

# 403s from the portal, in words.
insert noaccount
login 5 135790 --json
[ "$(json portal_error <"$tmp/out")" = no_account ] || { cat "$tmp/out"; fail "no_account"; }
insert suspended
login 5 864209
grep -q "may not use a CAC" "$tmp/out" || { cat "$tmp/out"; fail "suspended"; }
ok "403 no_account and account_not_permitted: exit 5 with the cause and the steps"

# With no CRL here, the revoked card passes pre-flight; the portal's 403 says it.
insert revoked
rc=0
printf '445566\n' | "$bin" login --cac --pin-fd 0 --ca-bundle "$pki/ca-bundle.pem" \
    --reader "Virtual CAC" --portal "https://localhost:$port/api/v1/" --json >"$tmp/out" 2>&1 || rc=$?
[ "$rc" = 5 ] || { cat "$tmp/out"; fail "revoked without a local CRL: exit $rc, want 5"; }
[ "$(json portal_error <"$tmp/out")" = certificate_revoked ] || { cat "$tmp/out"; fail "revoked 403"; }
ok "revoked card with no local CRL: the portal's 403 certificate_revoked, exit 5"

# Portal faults: each a clear failure, exit 6, nothing half done.
insert valid
fault() { # fault-option expected-text
    local fport
    fport=$("$portal" start "$tmp/portal-$1" --fault "$1")
    printf '123456\n' | "$bin" login --cac --pin-fd 0 --ca-bundle "$pki/ca-bundle.pem" \
        --reader "Virtual CAC" --portal "https://localhost:$fport/api/v1/" \
        --config "$tmp/fast.conf" >"$tmp/out" 2>&1 && fail "fault $1: exit 0"
    grep -q "$2" "$tmp/out" || { cat "$tmp/out"; fail "fault $1: no '$2'"; }
    "$portal" stop "$tmp/portal-$1"
    ok "portal fault $1: '$2'"
}
printf 'total_timeout = 2\nconnect_timeout = 2\n' >"$tmp/fast.conf"
fault delay=4000 "did not answer in time"
fault status=502 "having trouble (HTTP 502)"
fault malformed "could not be read"
fault truncated "cut off during its answer"
fault close "cut off during its answer"
fault huge "larger than"
fault content-type "not its API"
fault cert=other-ca "not trusted"
fault cert=expired "not trusted"
fault cert=wrong-host "not trusted"
login 6 123456 --portal "https://localhost:1/api/v1/"
grep -q "cannot be reached" "$tmp/out" || { cat "$tmp/out"; fail "refused"; }
ok "portal not listening: cannot be reached, exit 6"

# The card pulled while the portal takes its time: cancelled, back to the start.
dport=$("$portal" start "$tmp/portal-slow" --fault delay=3000)
insert valid
: >"$tmp/out" # emptied here: what is polled for must come from this run
printf '123456\n' | "$bin" login --cac --pin-fd 0 --ca-bundle "$pki/ca-bundle.pem" \
    --reader "Virtual CAC" --portal "https://localhost:$dport/api/v1/" >"$tmp/out" 2>&1 &
login_pid=$!
signed_once() { [ "$(counter signatures)" = 1 ]; }
within 5 signed_once || true
t0=$(date +%s%N)
ctl remove
rc=0
wait "$login_pid" || rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$rc" = 1 ] || { cat "$tmp/out"; fail "card pulled: exit $rc, want 1"; }
grep -q "The card was removed" "$tmp/out" || { cat "$tmp/out"; fail "card pulled message"; }
[ "$ms" -lt 2500 ] || fail "cancelling took $ms ms"
ok "card pulled while the portal answers: cancelled in $ms ms (before the portal's 3 s), exit 1"

# A pinned portal key: the right pin logs in, a wrong one refuses the server.
right=$(openssl x509 -in "$pki/server.pem" -pubkey -noout | openssl pkey -pubin -outform DER |
    openssl dgst -sha256 -binary | base64)
printf 'portal_pins = sha256//%s\n' "$right" >"$tmp/pinned.conf"
insert valid
login 0 123456 --config "$tmp/pinned.conf"
printf 'portal_pins = sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n' >"$tmp/wrongpin.conf"
insert valid
login 6 123456 --config "$tmp/wrongpin.conf"
grep -q "not the one this machine was set up to expect" "$tmp/out" || { cat "$tmp/out"; fail "pin mismatch"; }
ok "pinned portal key: the right pin logs in, a wrong pin refuses the server"

# A proxy named by the environment is never taken (it would see where we go):
# port 9 here answers nothing, so a login through it would fail.
insert valid
https_proxy=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 ALL_PROXY=http://127.0.0.1:9 \
    login 0 123456
ok "https_proxy and ALL_PROXY in the environment: not taken"

# The card pulled while the PIN is being typed: nothing is sent anywhere.
insert valid
mkfifo "$tmp/pin"
: >"$tmp/out" # emptied here: what is polled for must come from this run
"$bin" login --cac --pin-fd 3 --ca-bundle "$pki/ca-bundle.pem" --reader "Virtual CAC" \
    --portal "https://localhost:$port/api/v1/" 3<"$tmp/pin" >"$tmp/out" 2>&1 &
login_pid=$!
exec 4>"$tmp/pin"
# It says when it has checked the card and waits for the PIN.
within 10 grep -q "identity certificate from" "$tmp/out" || true
grep -q "identity certificate from" "$tmp/out" || { cat "$tmp/out"; fail "never asked for the PIN"; }
before=$(portal_requests)
ctl remove
"$here/bench" wait "$CACREG_BENCH" absent >/dev/null
printf '123456\n' >&4
exec 4>&-
rc=0
wait "$login_pid" || rc=$?
[ "$rc" = 1 ] || { cat "$tmp/out"; fail "card pulled at the PIN: exit $rc, want 1"; }
grep -q "The card was removed" "$tmp/out" || { cat "$tmp/out"; fail "card pulled at the PIN: message"; }
[ "$(portal_requests)" = "$before" ] || fail "the portal was asked without a card"
ok "card pulled while the PIN is typed: no VERIFY, no portal request, told the card was removed"

# Left alone at the PIN prompt for idle_timeout: stopped, nothing sent, nothing kept.
insert valid
printf 'idle_timeout = 10\n' >"$tmp/idle.conf"
rm -f "$tmp/pin"
mkfifo "$tmp/pin"
exec 4<>"$tmp/pin" # a writer that never writes
t0=$(date +%s)
rc=0
"$bin" login --cac --pin-fd 4 --config "$tmp/idle.conf" --ca-bundle "$pki/ca-bundle.pem" \
    --reader "Virtual CAC" --portal "https://localhost:$port/api/v1/" >"$tmp/out" 2>&1 || rc=$?
exec 4>&-
[ "$rc" = 4 ] || { cat "$tmp/out"; fail "idle at the PIN: exit $rc, want 4"; }
grep -q "Nothing was typed for a while" "$tmp/out" || { cat "$tmp/out"; fail "idle message"; }
[ "$(counter verifies)" = 0 ] || fail "a PIN was sent after an idle timeout"
ok "idle at the PIN prompt for idle_timeout (10 s): stopped after $(( $(date +%s) - t0 )) s, nothing sent"
