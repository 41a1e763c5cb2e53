#!/usr/bin/env bash
# The portal contract from a client nobody here wrote: curl, with the bench's
# virtual CAC through OpenSSL's PKCS#11 engine (libp11 over OpenSC), against
# the reference portal. CAC login registers, a second card replaces, the
# password moves to 150 days, each persona gets its 403, and registration
# from a password session works with the card.
# Needs a running bench (PCSCLITE_CSOCK_NAME, CACREG_BENCH): see tests/run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bench=$here/../bench/bench
pki=${CACREG_PKI:-$CACREG_BUILD/pki}
multiarch=$(gcc -print-multiarch)
tmp=$(mktemp -d)
portal_dir=$tmp/portal
cleanup() { "$here/portal" stop "$portal_dir" || true; rm -rf "$tmp"; }
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
ctl() { "$bench" ctl "$CACREG_BENCH" "$@"; }
json() { /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d = d[k] if d is not None else None
print("null" if d is None else d)' "$1"; }

cat >"$tmp/openssl.cnf" <<CNF
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = /usr/lib/$multiarch/engines-3/pkcs11.so
MODULE_PATH = /usr/lib/$multiarch/opensc-pkcs11.so
init = 0
CNF

port=$("$here/portal" start "$portal_dir" --crl "$pki/inter.crl")
url=https://localhost:$port/api/v1

insert() {
    ctl remove >/dev/null
    "$bench" wait "$CACREG_BENCH" absent >/dev/null
    ctl insert "$1" >/dev/null
    "$bench" wait "$CACREG_BENCH" present >/dev/null
    card=$1
}
# card_curl ID [curl args...]: curl presenting the card's certificate ID (01 = identity).
card_curl() {
    local id=$1
    shift
    OPENSSL_CONF=$tmp/openssl.cnf curl -sS --cacert "$pki/ca-bundle.pem" --engine pkcs11 \
        --cert-type ENG --cert "pkcs11:id=%00%$id;type=cert" \
        --key-type ENG --key "pkcs11:id=%00%$id;type=private" --pass "$(cat "$pki/cards/$card/pin")" "$@"
}
plain_curl() { curl -sS --cacert "$pki/ca-bundle.pem" "$@"; }
password_login() {
    plain_curl -H 'Content-Type: application/json' -d "{\"username\":\"$1\",\"password\":\"$2\"}" "$url/session"
}
days_from_now() { echo $(( ($(date -d "$1" +%s) - $(date +%s)) / 86400 )); }

# 1. A first CAC login registers the card and moves the password to 150 days.
before=$(password_login jane.doe Correct-Horse-1 | json account.password_expires)
[ "$(days_from_now "$before")" -lt 40 ] || fail "jane's password should start near 30 days"
insert valid
answer=$(card_curl 01 -X POST "$url/cac-login")
[ "$(echo "$answer" | json registration.result)" = registered ] || fail "first CAC login: $answer"
after=$(echo "$answer" | json password_expires)
off=$(( $(date -d "$after" +%s) - $(date +%s) - 150 * 86400 ))
[ "${off#-}" -le 120 ] || fail "password expiry $after is $off s away from 150 days out"
ok "first CAC login registers; password expiry $before -> $after (150 days)"
[ "$(ctl counters | tr ' ' '\n' | sed -n 's/^signatures=//p')" = 1 ] || fail "more than one signature for one login"
ok "one CAC login through curl costs the card one signature"
first_serial=$(echo "$answer" | json registration.certificate.serial)

answer=$(card_curl 01 -X POST "$url/cac-login")
[ "$(echo "$answer" | json registration.result)" = unchanged ] || fail "same card again: $answer"
ok "the same card again: unchanged"

# 2. The person's newer card replaces the old one.
insert valid2
answer=$(card_curl 01 -X POST "$url/cac-login")
[ "$(echo "$answer" | json registration.result)" = replaced ] || fail "newer card: $answer"
[ "$(echo "$answer" | json registration.replaced.serial)" = "$first_serial" ] || fail "replaced the wrong certificate"
token=$(echo "$answer" | json session)
want=$(openssl x509 -in "$pki/cards/valid2/id.pem" -outform DER | sha256sum | cut -d' ' -f1 | tr a-f A-F)
got=$(plain_curl -H "Authorization: Bearer $token" "$url/registration" | json certificate.sha256)
[ "$got" = "$want" ] || fail "registered certificate is not valid2's ID certificate"
ok "the newer card replaces the old one; the registration shows the newer card's ID certificate"

# 3. Each 403 reason for its persona.
expect_403() { # reason answer
    [ "$(echo "$2" | json error)" = "$1" ] || fail "expected 403 $1, got: $2"
    ok "403 $1"
}
expect_403 not_identity_certificate "$(card_curl 02 -X POST "$url/cac-login")"
expect_403 no_client_certificate "$(plain_curl -X POST "$url/cac-login")"
for pair in expired:certificate_expired revoked:certificate_revoked untrusted:untrusted_issuer \
    noaccount:no_account suspended:account_not_permitted; do
    insert "${pair%%:*}"
    expect_403 "${pair#*:}" "$(card_curl 01 -X POST "$url/cac-login")"
done

# 4. Log in with a password, then register the card (an email-only account).
token=$(password_login linda.loe Email-Only-3 | json session)
insert emailonly
state=$(plain_curl -H "Authorization: Bearer $token" "$url/registration")
[ "$(echo "$state" | json registered)" = False ] || fail "linda should start unregistered: $state"
answer=$(card_curl 01 -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"password":"wrong"}' "$url/registration")
[ "$(echo "$answer" | json error)" = invalid_credentials ] || fail "wrong password: $answer"
[ "$(echo "$answer" | json attempts_left)" = 4 ] || fail "attempts_left: $answer"
ok "register with a wrong portal password: 401, 4 attempts left"
answer=$(card_curl 01 -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"password":"Email-Only-3"}' "$url/registration")
[ "$(echo "$answer" | json result)" = registered ] || fail "register: $answer"
state=$(plain_curl -H "Authorization: Bearer $token" "$url/registration")
[ "$(echo "$state" | json account.type)" = email_only ] && [ "$(echo "$state" | json registered)" = True ] ||
    fail "registration state after register: $state"
ok "password session + card + password: registered (email-only account)"
answer=$(plain_curl -X DELETE -H "Authorization: Bearer $token" "$url/registration")
[ "$(echo "$answer" | json cleared.edipi)" = 1000000007 ] || fail "clear: $answer"
ok "clear registered information"

# 5. The two reasons that need a password session: someone else's card.
insert valid2
expect_403 registered_to_other_account "$(card_curl 01 -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d '{"password":"Email-Only-3"}' "$url/registration")"
jane=$(password_login jane.doe Correct-Horse-1 | json session)
insert emailonly
expect_403 edipi_mismatch "$(card_curl 01 -H "Authorization: Bearer $jane" \
    -H 'Content-Type: application/json' -d '{"password":"Correct-Horse-1"}' "$url/registration")"

ctl remove >/dev/null
echo "all curl + card checks passed"
