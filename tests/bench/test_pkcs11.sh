#!/usr/bin/env bash
# The bench through OpenSC, as any PKCS#11 application sees it: the three
# certificates of a CAC, login and an RSA signature that verifies, and the
# PIN counting down to a lock that survives re-insertion.
# Needs a running bench (PCSCLITE_CSOCK_NAME, CACREG_BENCH): see tests/run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pki=${CACREG_PKI:-$CACREG_BUILD/pki}
module=$(pkg-config --variable=libdir libpcsclite 2>/dev/null)/opensc-pkcs11.so
[ -e "$module" ] || module=/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

bench() { "$here/bench" "$@"; }
ctl() { bench ctl "$CACREG_BENCH" "$@"; }
p11() { pkcs11-tool --module "$module" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
counter() { ctl counters | tr ' ' '\n' | sed -n "s/^$1=//p"; }
expect() { # expect WHAT GOT WANT
    [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
    echo "ok: $1 = $3"
}
reinsert() {
    ctl remove >/dev/null
    bench wait "$CACREG_BENCH" absent >/dev/null
    ctl insert "$1" >/dev/null
    bench wait "$CACREG_BENCH" present >/dev/null
}

ctl unblock valid >/dev/null
reinsert valid

# The token and its three certificates, exactly those of the persona.
p11 -L >"$tmp/slots"
grep -q "token label *: DOE.JANE.Q.1000000001" "$tmp/slots" || { cat "$tmp/slots"; fail "token label"; }
p11 -O --type cert >"$tmp/certs"
expect "certificates listed" "$(grep -c 'Certificate Object' "$tmp/certs")" 3
for label in "CAC ID Certificate" "CAC Email Signature Certificate" "CAC Email Encryption Certificate"; do
    grep -q "label: *$label" "$tmp/certs" || fail "no certificate labelled $label"
done
i=1
for kind in id sig enc; do
    p11 --read-object --type cert --id "000$i" -o "$tmp/$kind.der" 2>/dev/null
    openssl x509 -in "$pki/cards/valid/$kind.pem" -outform DER -out "$tmp/$kind.want.der"
    cmp -s "$tmp/$kind.der" "$tmp/$kind.want.der" || fail "certificate $i is not the persona's $kind certificate"
    echo "ok: certificate 000$i is the persona's $kind certificate"
    i=$((i + 1))
done

# Login with the right PIN and an RSA signature with the identity key.
reinsert valid
printf 'cacreg bench test %s' "$RANDOM" >"$tmp/data"
p11 --login --pin 123456 --sign --id 0001 -m SHA256-RSA-PKCS -i "$tmp/data" -o "$tmp/sig" 2>"$tmp/err" ||
    { cat "$tmp/err"; fail "sign"; }
openssl x509 -in "$pki/cards/valid/id.pem" -pubkey -noout >"$tmp/id.pub"
openssl dgst -sha256 -verify "$tmp/id.pub" -signature "$tmp/sig" "$tmp/data" | grep -q "Verified OK" ||
    fail "signature does not verify"
echo "ok: signature verifies with the ID certificate's key"
expect "VERIFYs with a PIN in this session" "$(counter verifies)" 1
expect "signatures in this session" "$(counter signatures)" 1

# Wrong PINs: CKR_PIN_INCORRECT with tries going down, then CKR_PIN_LOCKED.
reinsert valid
for want_left in 2 1; do
    if p11 --login --pin 999999 -O >"$tmp/out" 2>&1; then fail "a wrong PIN logged in"; fi
    grep -q CKR_PIN_INCORRECT "$tmp/out" || { cat "$tmp/out"; fail "no CKR_PIN_INCORRECT"; }
    expect "tries left" "$(ctl pin valid)" "ok valid tries_left=$want_left"
done
p11 -L | grep -q "final user PIN try" || fail "token does not flag the final try"
echo "ok: token flags the final PIN try"
if p11 --login --pin 999999 -O >"$tmp/out" 2>&1; then fail "a wrong PIN logged in"; fi
grep -q CKR_PIN_LOCKED "$tmp/out" || { cat "$tmp/out"; fail "third wrong PIN did not lock"; }
echo "ok: third wrong PIN gives CKR_PIN_LOCKED"
expect "VERIFYs sent for three logins" "$(counter verifies)" 3

# Still locked after the card is pulled and put back, even with the right PIN.
reinsert valid
p11 -L | grep -q "user PIN locked" || fail "token not flagged as locked after re-insertion"
if p11 --login --pin 123456 -O >"$tmp/out" 2>&1; then fail "a locked card logged in"; fi
grep -q CKR_PIN_LOCKED "$tmp/out" || { cat "$tmp/out"; fail "locked card did not say CKR_PIN_LOCKED"; }
echo "ok: still locked after re-insertion"

ctl unblock valid >/dev/null
ctl remove >/dev/null
echo "all pkcs11-tool checks passed"
