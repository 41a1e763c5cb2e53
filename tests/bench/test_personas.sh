#!/usr/bin/env bash
# The odd and hostile personas through OpenSC, as any PKCS#11 application sees
# them: what is listed, what is missing, and the token label OpenSC makes of
# each CN (its first 29 bytes and "..." when it is over 32).
# Needs a running bench (PCSCLITE_CSOCK_NAME, CACREG_BENCH): see tests/run.
set -euo pipefail
export LC_ALL=C # byte strings: labels are compared byte for byte

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
ok() { echo "ok: $*"; }
counter() { ctl counters | tr ' ' '\n' | sed -n "s/^$1=//p"; }
reinsert() {
    ctl remove >/dev/null
    bench wait "$CACREG_BENCH" absent >/dev/null
    ctl insert "$1" >/dev/null
    bench wait "$CACREG_BENCH" present >/dev/null
}
pin() { cat "$pki/cards/$1/pin"; }
# Objects of one type (cert, pubkey, privkey) by ID, one "ID label" line each.
objects() { # persona type [login]
    local args=(-O --type "$2")
    [ "${3:-}" = login ] && args+=(--login --pin "$(pin "$1")")
    p11 "${args[@]}" 2>&1 | awk '/label:/ { sub(/^ *label: */, ""); l = $0 } /ID:/ { print $2, l }'
}
expect_objects() { # persona type want [login]
    local got
    got=$(objects "$1" "$2" "${4:-}" | sort | tr '\n' ';')
    [ "$got" = "$3" ] || fail "$1: $2 objects are '$got', want '$3'"
    ok "$1: $2 objects: $3"
}
ALL3="0001 CAC ID Certificate;0002 CAC Email Signature Certificate;0003 CAC Email Encryption Certificate;"
TWO="0002 CAC Email Signature Certificate;0003 CAC Email Encryption Certificate;"
# The label OpenSC 0.23 makes of a CN: the CN, or its first 29 bytes and "...".
want_label() {
    local cn
    cn=$(/usr/bin/python3 "$here/../pki/certfield.py" "$pki/cards/$1/id.pem" cn)
    cn=${cn%|}
    if [ ${#cn} -gt 32 ]; then printf '%s...' "${cn:0:29}"; else printf '%s' "$cn"; fi
}
label() { p11 -L | sed -n '0,/^  token label *: /s/^  token label *: //p'; }

# nokey: OpenSC cannot tell the key is missing; the card refuses to sign with it.
reinsert nokey
expect_objects nokey cert "$ALL3"
expect_objects nokey privkey "$ALL3" login
printf 'cacreg persona test' >"$tmp/data"
if p11 --login --pin "$(pin nokey)" --sign --id 0001 -m SHA256-RSA-PKCS -i "$tmp/data" \
    -o "$tmp/sig" >"$tmp/out" 2>&1; then
    fail "nokey: a signature with the ID key the card does not hold"
fi
grep -q CKR_FUNCTION_FAILED "$tmp/out" || { cat "$tmp/out"; fail "nokey: not CKR_FUNCTION_FAILED"; }
grep -q "apdu 00 42 00 00 .* sw=6985" "$CACREG_BENCH/vcacd.log" || fail "nokey: the card did not answer 6985"
[ "$(counter signatures)" = 0 ] || fail "nokey: a signature was counted"
ok "nokey: signing with 0001 gets 6985 from the card, CKR_FUNCTION_FAILED; the PIN was right"
p11 --login --pin "$(pin nokey)" --sign --id 0002 -m SHA256-RSA-PKCS -i "$tmp/data" -o "$tmp/sig" \
    >/dev/null 2>&1 || fail "nokey: the signature key does not sign"
ok "nokey: the email signature key still signs"

# ec: the CAC driver lists the certificate and its EC public key, no private key.
reinsert ec
expect_objects ec cert "$ALL3"
expect_objects ec privkey "$TWO" login
got=$(p11 -O --type pubkey 2>&1 | awk '/^Public Key Object/ { t = $4 } /ID:/ { print $2, t }' | sort | tr '\n' ';')
[ "$got" = "0001 EC;0002 RSA;0003 RSA;" ] || fail "ec: public keys are '$got'"
ok "ec: public key 0001 is EC, from the certificate"

# noncac: a card, but no token.
reinsert noncac
p11 -L >"$tmp/slots" 2>&1
grep -q "(token not recognized)" "$tmp/slots" || { cat "$tmp/slots"; fail "noncac: a token"; }
[ -z "$(objects noncac cert)$(objects noncac data)" ] || fail "noncac: objects listed"
if p11 --login --pin 123456 -O >"$tmp/out" 2>&1; then fail "noncac: a login"; fi
grep -q CKR_TOKEN_NOT_RECOGNIZED "$tmp/out" || { cat "$tmp/out"; fail "noncac: not CKR_TOKEN_NOT_RECOGNIZED"; }
# The APDUs since the card went in: all refused, SELECTs with 6A82.
awk '/card noncac: not a CAC/ { n = 0; bad = 0; sel = 0 }
     / apdu / { n++; if ($0 ~ / A4 / && $0 ~ /sw=6A82/) sel++; else if ($0 !~ /sw=6D00/) bad++ }
     END { exit !(n > 0 && sel > 0 && bad == 0) }' "$CACREG_BENCH/vcacd.log" ||
    fail "noncac: an APDU was not refused"
ok "noncac: token not recognized, no objects, a login CKR_TOKEN_NOT_RECOGNIZED; every APDU 6A82 or 6D00"

# The token label of each named persona, and its three certificates, whole.
for p in longlabel cjk escape bidi longcn combining emoji upnonly mismatch; do
    reinsert "$p"
    got=$(label)
    want=$(want_label "$p")
    [ "$got" = "$want" ] || fail "$p: token label $(printf '%q' "$got"), want $(printf '%q' "$want")"
    expect_objects "$p" cert "$ALL3"
    p11 --read-object --type cert --id 0001 -o "$tmp/id.der" 2>/dev/null
    openssl x509 -in "$pki/cards/$p/id.pem" -outform DER -out "$tmp/want.der"
    cmp -s "$tmp/id.der" "$tmp/want.der" || fail "$p: the ID certificate read is not the persona's"
    ok "$p: token label $(printf '%q' "$got"); the ID certificate reads back whole"
    if [ "$p" = longlabel ]; then # half a character: a lead byte, then "..."
        case "$(printf '%s' "$got" | od -An -tx1 | tr -d ' \n')" in
            *c32e2e2e) ok "longlabel: the label ends C3 2E 2E 2E: the lead byte of É (C3 89), then ..." ;;
            *) fail "longlabel: the label does not end in a lead byte and '...'" ;;
        esac
    fi
done

ctl remove >/dev/null
echo "all persona checks passed"
