#!/usr/bin/env bash
# `cacreg register` and `cacreg reset` on the bench against the reference
# portal: the registration view, register, clear and register again, one card
# signature per registration, wrong password, someone else's card, an expired
# password, and the password-reset request.
# Needs a running bench (PCSCLITE_CSOCK_NAME, CACREG_BENCH): see tests/run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
tmp=$(mktemp -d)
trap '"$portal" stop "$tmp/portal"; "$portal" stop "$tmp/slow"; rm -rf "$tmp"' EXIT

port=$("$portal" start "$tmp/portal" --crl "$pki/inter.crl")
run() { # expected-exit stdin-lines args...
    local want=$1 input=$2 rc=0
    shift 2
    printf "$input" | "$bin" "$@" --portal "https://localhost:$port/api/v1/" \
        --ca-bundle "$pki/ca-bundle.pem" --crl "$pki/inter.crl" --reader "Virtual CAC" \
        >"$tmp/out" 2>&1 || rc=$?
    [ "$rc" = "$want" ] || { cat "$tmp/out"; fail "exit $rc, want $want ($*)"; }
}
has() { grep -q "$1" "$tmp/out" || { cat "$tmp/out"; fail "no '$1'"; }; }

ctl unblock emailonly
insert emailonly
run 0 'Email-Only-3\n' register --user linda.loe --password-fd 0 --state
has "email-only account"
has "Not registered"
ok "the registration view: email-only account, not registered"

run 0 'Email-Only-3\n246802\n' register --user linda.loe --password-fd 0 --pin-fd 0
has "Your CAC is registered."
has "Registered now: CN=LOE.LINDA.D.1000000007"
[ "$(counter signatures)" = 1 ] || fail "register cost $(counter signatures) signatures"
run 0 'Email-Only-3\n' register --user linda.loe --password-fd 0 --state
has "Current registered information: CN=LOE.LINDA.D.1000000007"
ok "register with card, PIN and password (one signature); the view shows it"

insert emailonly
run 0 'Email-Only-3\n246802\n' register --user linda.loe --password-fd 0 --pin-fd 0 --clear
has "Registered information cleared."
has "Your CAC is registered."
ok "clear the registered information, then register again"

run 5 'wrong-one\n' register --user linda.loe --password-fd 0 --state
has "The username or password is wrong."
has "4 attempts left"
ok "a wrong portal password: exit 5 with attempts left"

# jane's account, linda's card (registered to linda): refused, in words.
run 5 'Correct-Horse-1\n246802\n' register --user jane.doe --password-fd 0 --pin-fd 0
has "already registered to another account"
ok "someone else's card: refused, said so"

# jane's account, a card registered nowhere but not hers: edipi_mismatch.
insert noaccount
run 5 'Correct-Horse-1\n135790\n' register --user jane.doe --password-fd 0 --pin-fd 0
has "belongs to someone else"
ok "a card that is not the account holder's: refused, said so"

run 5 'Stale-Pass-5\n' register --user old.timer --password-fd 0 --state
has "password has expired"
has "Log in with your CAC"
ok "an expired password: told to log in with the CAC or ask for a new password"

# jane through the second path: clear, register her card, then her newer card replaces it.
insert valid
run 0 'Correct-Horse-1\n123456\n' register --user jane.doe --password-fd 0 --pin-fd 0 --clear
has "Your CAC is registered."
insert valid2
run 0 'Correct-Horse-1\n24681357\n' register --user jane.doe --password-fd 0 --pin-fd 0
has "it replaces the card registered before"
ok "register jane's card, then her newer card replaces it"

insert suspended
run 5 'Suspended-4\n864209\n' register --user sally.sue --password-fd 0 --pin-fd 0
has "may not use a CAC"
insert expired
run 3 'Roe-Pass-2026\n112233\n' register --user richard.roe --password-fd 0 --pin-fd 0
has "have expired"
[ "$(counter verifies)" = 0 ] || fail "an expired card was asked for its PIN"
ok "suspended account: refused by the portal; expired card: stopped before its PIN"

# The card pulled while the portal registers it: cancelled, nothing half done.
dport=$("$portal" start "$tmp/slow" --crl "$pki/inter.crl" --fault delay=1500)
insert emailonly
: >"$tmp/out" # emptied here: what is polled for must come from this run
printf 'Email-Only-3\n246802\n' | "$bin" register --user linda.loe --password-fd 0 --pin-fd 0 \
    --portal "https://localhost:$dport/api/v1/" --ca-bundle "$pki/ca-bundle.pem" \
    --reader "Virtual CAC" >"$tmp/out" 2>&1 &
reg_pid=$!
signed_once() { [ "$(counter signatures)" = 1 ]; }
within 10 signed_once || true
[ "$(counter signatures)" = 1 ] || { cat "$tmp/out"; fail "the register step never started"; }
ctl remove
rc=0
wait "$reg_pid" || rc=$?
"$portal" stop "$tmp/slow"
[ "$rc" = 1 ] || { cat "$tmp/out"; fail "card pulled while registering: exit $rc, want 1"; }
has "The card was removed; nothing was finished."
ok "card pulled while the portal registers it: cancelled, exit 1"

run 0 '' reset --user jane.doe
has "instructions for a new password"
ok "password reset request"
ctl remove
