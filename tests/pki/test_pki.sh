#!/usr/bin/env bash
# The test PKI is what the personas promise: each ID certificate verifies, or
# fails, against the DoD-like bundle for its persona's reason; the odd and
# hostile personas carry the names and keys they are for; the CRL and an OCSP
# responder both say the "revoked" card is revoked.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
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

# The personas OpenSC reads partly or not at all, and the hostile names: each
# field as personas.txt means it, and each ID certificate still chains to the
# test DoD CA (so it passes pre-flight and reaches the portal).
for p in nokey ec longlabel cjk escape bidi longcn combining emoji upnonly mismatch; do
    expect_verdict "$p" ": OK"
done
# field PERSONA cn|upn: the raw bytes of the ID certificate's CN or UPN, then "|".
field() { /usr/bin/python3 "$here/certfield.py" "$pki/cards/$1/id.pem" "$2"; }
expect_field() { # persona cn|upn want
    local got
    got=$(field "$1" "$2")
    got=${got%|}
    # Shown as shell quoting in the C locale, so this output holds no escape or bidi control.
    [ "$got" = "$3" ] || fail "$1: $2 is $(LC_ALL=C printf '%q' "$got"), want $(LC_ALL=C printf '%q' "$3")"
    echo "ok: $1: $2 = $(LC_ALL=C printf '%q' "$3")"
}
expect_field nokey cn NOKEY.KAREN.K.1000000010
certutil -L -d "sql:$pki/cards/nokey/nssdb" -n id >/dev/null || fail "nokey: no ID certificate in its NSS db"
certutil -K -d "sql:$pki/cards/nokey/nssdb" 2>/dev/null | grep -qw id && fail "nokey: its NSS db has the ID key"
[ "$(certutil -K -d "sql:$pki/cards/nokey/nssdb" 2>/dev/null | grep -cw 'sig\|enc')" = 2 ] ||
    fail "nokey: its NSS db lacks the signature or encryption key"
echo "ok: nokey: ID certificate on the card, its key not; the other two keys are"
openssl x509 -in "$pki/cards/ec/id.pem" -noout -text | grep -q "ASN1 OID: prime256v1" || fail "ec: ID key is not P-256"
certutil -K -d "sql:$pki/cards/ec/nssdb" 2>/dev/null | grep -q "ec .* id$" || fail "ec: no EC ID key in its NSS db"
echo "ok: ec: ID certificate and key are EC P-256"
[ "$(cat "$pki/cards/noncac/atr")" = 3B8C0042454E43482D4E4F4E434143 ] && [ ! -e "$pki/cards/noncac/nssdb" ] ||
    fail "noncac: not an ATR-only card"
echo "ok: noncac: an ATR and no certificates"
expect_field longlabel cn "CASTAÑEDA-LÓPEZ.MARÍA-JOSÉ.Ñ.1000000012"
# OpenSC's label is the CN's first 29 bytes and "..." (32 in all); either cut is mid-character.
for n in 29 32; do
    field longlabel cn | head -c $n | iconv -f UTF-8 -t UTF-8 >/dev/null 2>&1 &&
        fail "longlabel: the CN's first $n bytes are whole characters"
done
echo "ok: longlabel: bytes 29 and 32 of the CN fall inside a character"
expect_field cjk cn "山田.太郎.X.1000000020"
expect_field escape cn $'EVIL\e[2J\e[31m.EVE\e]0;pwned by the card\a.X\nPre-flight: ok.1000000021'
expect_field escape upn $'1000000021@mil\e[2J\e[31m\e]0;pwned by the UPN\a\nfake line'
expect_field bidi cn $'HARRIS\u202E.\u2066ANNA.B.1000000022'
cn=$(field longcn cn)
[ $((${#cn} - 1)) = 2048 ] && [ "${cn%|}" != "${cn%.HUBERT.B.1000000023|}" ] || fail "longcn: CN is not 2048 bytes ending .HUBERT.B.1000000023"
echo "ok: longcn: a CN of 2048 bytes"
expect_field combining cn $'BE\u0301LANGER.RENE\u0301E.E\u0301.1000000024'
expect_field emoji cn $'\U1F600SMILEY.PAT\U1F44D\U1F3FD.\U1F468\u200D\U1F469\u200D\U1F467.1000000025'
expect_field upnonly cn DOE.JANE.Q
expect_field upnonly upn 1000000026@mil
expect_field mismatch cn MISMATCH.MATT.M.1000000027
expect_field mismatch upn 1000000028@mil

# An OCSP responder over the intermediate's database.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
openssl ocsp -index "$pki/inter/index.txt" -port "$port" -rsigner "$pki/ocsp.pem" \
    -rkey "$pki/ocsp.key" -CA "$pki/inter/cert.pem" >"$tmp/ocsp.log" 2>&1 &
ocsp_pid=$!
# It says when it listens; probing it with a connection would use up a request.
# shellcheck source=../lib/wait.sh
. "$(dirname "$0")/../lib/wait.sh"
within 5 grep -q "waiting for OCSP client connections" "$tmp/ocsp.log" || true
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
