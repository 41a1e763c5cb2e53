#!/usr/bin/env bash
# `cacreg status` on the bench: every persona's verdict and exit status, the
# JSON form, a locked PIN, pcscd gone, and --watch printing card events.
# Needs a running bench (PCSCLITE_CSOCK_NAME, CACREG_BENCH): see tests/run.
# CACREG_BIN picks the binary (the tests run the plain and the sanitized one).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
tmp=$(mktemp -d)
watch_pid=
cleanup() {
    [ -z "$watch_pid" ] || kill "$watch_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

status() { # expected-exit args...: runs cacreg status, checks the exit status, keeps the output
    local want=$1 rc=0
    shift
    "$bin" status --ca-bundle "$pki/ca-bundle.pem" --crl "$pki/inter.crl" --reader "Virtual CAC" \
        "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
    [ "$rc" = "$want" ] || { cat "$tmp/out" "$tmp/err"; fail "exit $rc, want $want ($*)"; }
}

ctl remove
"$here/bench" wait "$CACREG_BENCH" absent >/dev/null
status 1
grep -q "Reader:         Virtual CAC Reader 00 00: no card" "$tmp/out" || fail "no-card output"
ok "no card: exit 1"

insert valid
status 0
grep -q '^  \* identity  *JANE Q DOE, EDIPI 1000000001' "$tmp/out" || { cat "$tmp/out"; fail "identity not marked"; }
grep -q "This one signs email" "$tmp/out" || fail "no reason given for the signature certificate"
grep -q "Pre-flight:     ok" "$tmp/out" || fail "pre-flight"
ok "valid card: exit 0, identity certificate marked, the others explained"
# What a directory matches on, for the help desk: the issuer, the serial, the SHA-256, AD's form.
id_pem=$pki/cards/valid/id.pem
serial=$(openssl x509 -in "$id_pem" -noout -serial | sed 's/^serial=0*//')
sha=$(openssl x509 -in "$id_pem" -noout -fingerprint -sha256 | sed 's/^.*=//; s/://g')
grep -q "^    issuer  CN=Test DOD ID CA-59,OU=PKI,OU=DoD,O=U.S. Government,C=US$" "$tmp/out" ||
    { cat "$tmp/out"; fail "the identity certificate's issuer not shown"; }
grep -q "^    serial  $serial (decimal $((16#$serial)))$" "$tmp/out" || fail "serial not shown"
grep -q "^    SHA-256 $sha$" "$tmp/out" || fail "SHA-256 not shown"
reversed=$(echo "$serial" | sed 's/^\(.\(..\)*\)$/0\1/' | fold -w2 | tac | tr -d '\n')
grep -qF "    AD      X509:<I>C=US,O=U.S. Government,OU=DoD,OU=PKI,CN=Test DOD ID CA-59<SR>$reversed" \
    "$tmp/out" || { cat "$tmp/out"; fail "the AD mapping not shown (want <SR>$reversed)"; }
ok "the identity certificate's issuer, serial, SHA-256 and AD mapping shown"

status 0 --json
[ "$(json cards.0.chosen <"$tmp/out")" = 0 ] || fail "json chosen"
[ "$(json cards.0.certificates.0.kind <"$tmp/out")" = identity ] || fail "json kind"
[ "$(json cards.0.verdict <"$tmp/out")" = ok ] || fail "json verdict"
[ "$(json pcsc.status <"$tmp/out")" = up ] || fail "json pcsc"
[ "$(json cards.0.certificates.1.why_not <"$tmp/out")" != None ] || fail "json why_not"
[ "$(json cards.0.certificates.0.sha256 <"$tmp/out")" = "$sha" ] || fail "json sha256"
[ "$(json cards.0.certificates.0.serial_decimal <"$tmp/out")" = $((16#$serial)) ] || fail "json serial"
json cards.0.certificates.0.directory_mapping <"$tmp/out" | grep -qF "<SR>$reversed" ||
    fail "json directory_mapping"
ok "--json: chosen, kinds, verdict"

for pair in expired:expired revoked:revoked untrusted:untrusted; do
    insert "${pair%%:*}"
    status 3 --json
    [ "$(json cards.0.verdict <"$tmp/out")" = "${pair#*:}" ] || { cat "$tmp/out"; fail "${pair%%:*}"; }
    ok "${pair%%:*} card: exit 3, verdict ${pair#*:}"
done

ctl block valid
insert valid
status 3
grep -q "PIN:            locked" "$tmp/out" || { cat "$tmp/out"; fail "locked PIN not shown"; }
ctl unblock valid
ok "locked PIN: exit 3, shown as locked"

ctl pcscd stop
status 2 --wait 1000
grep -q "pcscd not running" "$tmp/out" || { cat "$tmp/out"; fail "pcscd down not reported"; }
ctl pcscd start
"$here/bench" wait "$CACREG_BENCH" reader 5000 >/dev/null
ok "pcscd stopped: exit 2, reported as not running"

status 4 --frobnicate
# A relative path on the command line is the working directory's, as curl's and
# OpenSC's are; in a configuration file it is refused (its meaning would depend on
# where the program happens to run).
abs_bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
insert valid
(cd "$pki" && "$abs_bin" status --ca-bundle ca-bundle.pem --crl inter.crl --reader "Virtual CAC" \
    >"$tmp/out" 2>"$tmp/err") || { cat "$tmp/out" "$tmp/err"; fail "relative --ca-bundle"; }
grep -q "Pre-flight:     ok" "$tmp/out" || { cat "$tmp/out"; fail "relative --ca-bundle: pre-flight"; }
printf 'ca_bundle = relative.pem\n' >"$tmp/rel.conf"
status 4 --config "$tmp/rel.conf"
grep -q "ca_bundle must be an absolute path" "$tmp/err" || fail "relative path in a file: message"
printf 'connect_timeout = soon\n' >"$tmp/bad.conf"
status 4 --config "$tmp/bad.conf"
grep -q "bad.conf:1: connect_timeout expects a whole number" "$tmp/err" || { cat "$tmp/err"; fail "config error"; }
status 4 --config="$tmp/bad.conf" # the same file, the other spelling: read, not ignored
grep -q "bad.conf:1: connect_timeout expects a whole number" "$tmp/err" || { cat "$tmp/err"; fail "--config=FILE ignored"; }
status 4 --pin-fd 0 # another command's option
status 4 --wait soon
grep -q -- "--wait: 'soon' is not of the right form" "$tmp/err" || { cat "$tmp/err"; fail "--wait soon"; }
# The kiosk reads /etc's configuration only: --config and settings are refused, said why.
for args in "--config $tmp/bad.conf" "--portal https://localhost/api/v1/"; do
    rc=0
    # shellcheck disable=SC2086
    "$bin" --kiosk $args >"$tmp/out" 2>"$tmp/err" </dev/null || rc=$?
    [ "$rc" = 4 ] || fail "--kiosk $args: exit $rc, want 4"
    grep -q "kiosk takes its settings from /etc/cacreg/cacreg.conf only" "$tmp/err" ||
        { cat "$tmp/err"; fail "--kiosk $args: message"; }
done
ok "bad options and configuration: exit 4 with file:line; --config=FILE read; --kiosk refuses --config and settings"

# --watch: card events as they happen, until interrupted.
ctl remove
"$here/bench" wait "$CACREG_BENCH" absent >/dev/null
"$bin" status --watch --ca-bundle "$pki/ca-bundle.pem" --reader "Virtual CAC" >"$tmp/watch" 2>&1 &
watch_pid=$!
within 5 grep -q "^Reader:" "$tmp/watch" || true
ctl insert valid
card_shown() { grep -q "card_in" "$tmp/watch" && grep -q "^Card:" "$tmp/watch"; }
within 5 card_shown || true
ctl remove
within 5 grep -q "card_out" "$tmp/watch" || true
kill -INT "$watch_pid"
rc=0
wait "$watch_pid" || rc=$?
watch_pid=
[ "$rc" = 0 ] || { cat "$tmp/watch"; fail "--watch exit $rc after SIGINT"; }
grep -q "card_in Virtual CAC Reader 00 00" "$tmp/watch" || { cat "$tmp/watch"; fail "no card_in"; }
grep -q "card_out Virtual CAC Reader 00 00" "$tmp/watch" || { cat "$tmp/watch"; fail "no card_out"; }
grep -q "^Card:           DOE.JANE.Q.1000000001" "$tmp/watch" || { cat "$tmp/watch"; fail "inserted card not reported"; }
ok "--watch: card_in, the card's report, card_out, clean exit on SIGINT"

# Revocation by OCSP alone, against `openssl ocsp` over the test CA's database.
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
openssl ocsp -index "$pki/inter/index.txt" -port "$port" -rsigner "$pki/ocsp.pem" \
    -rkey "$pki/ocsp.key" -CA "$pki/inter/cert.pem" >"$tmp/ocsp.log" 2>&1 &
ocsp_pid=$!
trap 'kill "$ocsp_pid" 2>/dev/null || true; cleanup' EXIT
within 5 grep -q "waiting for OCSP client connections" "$tmp/ocsp.log" || true
ocsp_status() { # expected-exit persona
    local rc=0
    insert "$2"
    "$bin" status --ca-bundle "$pki/ca-bundle.pem" --ocsp "$3" --reader "Virtual CAC" --json \
        >"$tmp/out" 2>&1 || rc=$?
    [ "$rc" = "$1" ] || { cat "$tmp/out"; fail "OCSP $2: exit $rc, want $1"; }
}
ocsp_status 3 revoked "http://127.0.0.1:$port"
[ "$(json cards.0.verdict <"$tmp/out")" = revoked ] || fail "OCSP revoked"
grep -q "OCSP responder says so" "$tmp/out" || fail "OCSP revoked detail"
ocsp_status 0 valid "http://127.0.0.1:$port"
ok "OCSP: revoked card revoked, valid card good"
kill "$ocsp_pid"
wait "$ocsp_pid" 2>/dev/null || true
ocsp_status 3 valid "http://127.0.0.1:$port"
[ "$(json cards.0.verdict <"$tmp/out")" = revocation_unknown ] || fail "OCSP down"
ok "OCSP responder down: revocation_unknown, exit 3"
ctl remove

# A pcscd that refuses the session, as pcscd 1.9's polkit check does for an
# SSH login: it takes the connection and closes it at once. (As root on the
# bench the real pcscd never refuses, so this one socket stands in for it.)
/usr/bin/python3 - "$tmp/refusing.comm" >"$tmp/refuser.log" 2>&1 <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(8)
open(sys.argv[1] + ".ready", "w").close()
while True:
    c, _ = s.accept()
    c.close()
PY
refuser_pid=$!
trap 'kill "$refuser_pid" 2>/dev/null || true; cleanup' EXIT
within 5 [ -e "$tmp/refusing.comm.ready" ] || true
rc=0
PCSCLITE_CSOCK_NAME=$tmp/refusing.comm USER=jdoe "$bin" status --wait 3000 >"$tmp/out" 2>&1 || rc=$?
kill "$refuser_pid"
[ "$rc" = 2 ] || { cat "$tmp/out"; fail "refused session: exit $rc, want 2"; }
grep -q "pcscd refuses this session" "$tmp/out" || { cat "$tmp/out"; fail "refusal not diagnosed"; }
grep -q 'subject.user == "jdoe"' "$tmp/out" || { cat "$tmp/out"; fail "no polkit rule for the user"; }
grep -q "/etc/polkit-1/rules.d/" "$tmp/out" || fail "no rule file named"
ok "a pcscd that refuses the session: exit 2, diagnosed, with the polkit rule to add"
