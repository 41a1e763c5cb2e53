#!/usr/bin/env bash
# The test PKI is what the personas promise: each ID certificate verifies, or
# fails, against the DoD-like bundle for its persona's reason; the CRL and an
# OCSP responder both say the "revoked" card is revoked.
set -euo pipefail

pki=${CACREG_PKI:-$CACREG_BUILD/pki}
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d)
ocsp_pid=
cleanup() { [ -z "$ocsp_pid" ] || kill "$ocsp_pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

verdict() { # persona [extra openssl verify options]
    local p=$1
    shift
    openssl verify -CAfile "$pki/ca-bundle.pem" -purpose sslclient "$@" "$pki/cards/$p/id.pem" 2>&1 || true
}
expect_verdict() { # persona pattern [options]
    local p=$1 pat=$2 out
    shift 2
    out=$(verdict "$p" "$@")
    echo "$out" | grep -q "$pat" || fail "$p: expected '$pat', got: $out"
    echo "ok: $p: $pat"
}

expect_verdict valid ": OK"
expect_verdict valid2 ": OK"
expect_verdict noaccount ": OK"
expect_verdict emailonly ": OK"
expect_verdict expired "certificate has expired"
expect_verdict untrusted "unable to get local issuer certificate"
expect_verdict revoked "certificate revoked" -crl_check -CRLfile "$pki/inter.crl"
expect_verdict valid ": OK" -crl_check -CRLfile "$pki/inter.crl"

# The identity certificate carries what a CAC's does.
text=$(openssl x509 -in "$pki/cards/valid/id.pem" -noout -text)
for want in "CN = DOE.JANE.Q.1000000001" "UPN::1000000001@mil" "TLS Web Client Authentication" \
    "Microsoft Smartcard Login"; do
    echo "$text" | grep -q "$want" || fail "ID certificate lacks $want"
done
echo "ok: ID certificate has CN LAST.FIRST.MI.EDIPI, UPN EDIPI@mil, clientAuth + smart-card logon"
# The newer card of the same person really is newer.
[ "$(openssl x509 -in "$pki/cards/valid2/id.pem" -noout -startdate | cut -d= -f2 | date -f - +%s)" -gt \
  "$(openssl x509 -in "$pki/cards/valid/id.pem" -noout -startdate | cut -d= -f2 | date -f - +%s)" ] ||
    fail "valid2 is not newer than valid"
echo "ok: valid2 is newer than valid"

# An OCSP responder over the intermediate's database.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
openssl ocsp -index "$pki/inter/index.txt" -port "$port" -rsigner "$pki/ocsp.pem" \
    -rkey "$pki/ocsp.key" -CA "$pki/inter/cert.pem" >"$tmp/ocsp.log" 2>&1 &
ocsp_pid=$!
# It says when it listens; probing it with a connection would use up a request.
for _ in $(seq 100); do grep -q "waiting for OCSP client connections" "$tmp/ocsp.log" && break; sleep 0.05; done
ask() {
    openssl ocsp -issuer "$pki/inter/cert.pem" -cert "$pki/cards/$1/id.pem" \
        -url "http://127.0.0.1:$port" -CAfile "$pki/ca-bundle.pem" 2>&1 || true
}
out=$(ask revoked)
echo "$out" | grep -q ": revoked" || fail "OCSP does not say revoked: $out"
echo "ok: OCSP: revoked is revoked"
out=$(ask valid)
echo "$out" | grep -q ": good" || fail "OCSP does not say good: $out"
echo "ok: OCSP: valid is good"
