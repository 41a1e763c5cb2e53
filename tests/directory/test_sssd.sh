#!/usr/bin/env bash
# The directory store end to end: cacreg-portald with store = ldap writes a
# registration into Debian's slapd, and Debian's sssd logs the bench's card in
# with it (pam_cert_auth through OpenSC, certificate mapping rules for both
# forms the portal writes). In network, mount and PID namespaces of its own
# (root), with its own /etc (sssd.conf, pam.d, nsswitch.conf), its own sssd
# cache and its own bench; everything on loopback, stopped by PID.
#
# Cases: refused before registration; accepted after `cacreg login --cac`;
# accepted after a password-path registration (another person); the newer
# card replaces (the old refused, the new accepted); `register --clear`
# (refused once sssd's cache lets the entry go); one card, one account; the
# password login, and 150 days in shadowLastChange/shadowMax; an unrelated
# certificate and mapping kept through replace and clear; a wrong PIN costs one
# try; slapd stopped (directory_unavailable, in words) and back; slapd hung
# (every operation within ldap_timeout); the service account's password wrong
# in its file (--check-config and the log say which); the ACL (the portal
# writes only its attributes, a person none of them); TLS verified (another CA,
# ldap:// without StartTLS refused); failover (the first URI has no directory);
# filter metacharacters in a username; the directory's own lock (ppolicy,
# attempts_left, 423); ldap_write = certificate; the administration commands.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export CACREG_BUILD=${CACREG_BUILD:-$top/build}
case "$CACREG_BUILD" in /*) ;; *) CACREG_BUILD=$top/$CACREG_BUILD ;; esac

if [ -z "${CACREG_DIRECTORY_INSIDE:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "SKIP: $(basename "$0") needs root (namespaces, sssd)"; exit 77; }
    for p in /usr/sbin/slapd /usr/sbin/sssd /usr/sbin/sssctl /usr/bin/ldapsearch; do
        [ -x "$p" ] || { echo "SKIP: no $p (.ci/install-deps installs slapd, sssd)"; exit 77; }
    done
    exec env CACREG_DIRECTORY_INSIDE=1 unshare --net --mount --pid --fork --mount-proc \
        --propagation private "$0" "$@"
fi

# --- inside: our own /run, loopback, and the bench's helpers
t_start=$(date +%s%N)
mount -t tmpfs -o mode=755 tmpfs /run
ip link set lo up
bench_dir=$(cd "$here/../bench" && pwd)
here=$bench_dir # lib.sh finds the bench and the portal from $here
# shellcheck source-path=SCRIPTDIR source=../bench/lib.sh
. "$bench_dir/lib.sh"
portald=${CACREG_PORTALD:-$CACREG_BUILD/plain/cacreg-portald}
elapsed() { echo $((($(date +%s%N) - t_start) / 1000000)); }

T=$(mktemp -d /tmp/cacreg-directory-test.XXXXXX)
chmod 755 "$T"
slapd_pid= sssd_pid= portald_pid= sink_pid=
cleanup() {
    for p in "$sssd_pid" "$portald_pid" "$slapd_pid" "$sink_pid"; do [ -z "$p" ] || stop_pid "$p"; done
    # The bench's stop is bounded (5 s); past it, the namespace's end (this script is its
    # PID 1) takes whatever is left: noted, not a failure of what was tested (1 run in 25).
    [ -z "${CACREG_BENCH:-}" ] || "$bench_dir/bench" stop "$CACREG_BENCH" ||
        echo "note: the bench did not stop within its bound; the namespace's end stops it"
    rm -rf "$T"
}
trap cleanup EXIT

CACREG_BENCH=$("$bench_dir/bench" start)
eval "$("$bench_dir/bench" env "$CACREG_BENCH")"
export CACREG_BENCH PCSCLITE_CSOCK_NAME

search() { LDAPTLS_CACERT=$pki/ca-bundle.pem ldapsearch -LLL -o ldif-wrap=no -x -H "$ldap_uri" -b "$people" "$@"; }
sha_of() { openssl x509 -in "$pki/cards/$1/id.pem" -noout -fingerprint -sha256 | sed 's/^.*=//; s/://g'; }

# --- slapd (tests/directory/lib.sh): inetOrgPerson, posixAccount, shadowAccount, AD's
# altSecurityIdentities with an equality rule, ppolicy's lockout, the service account's ACL.
# shellcheck source=lib.sh
. "$top/tests/directory/lib.sh"
slapd_setup "$T/slapd"
t0=$(date +%s%N)
start_slapd() { slapd_start; }
start_slapd
slapd_ms=$((($(date +%s%N) - t0) / 1000000))
slapd_seed

# An unrelated certificate and mapping on jane's entry (a server's, another CA's form):
# replace and clear must leave them.
openssl x509 -in "$pki/server.pem" -outform DER -out "$T/unrelated.der"
unrelated_map='X509:<RFC822>jane.doe@example.mil'
{
    slapd_person jane.doe "DOE, JANE Q" 1000000001 61001 Correct-Horse-1 \
        "userCertificate;binary:< file://$T/unrelated.der" "altSecurityIdentities: $unrelated_map"
    slapd_person linda.loe "LOE, LINDA D" 1000000007 61002 Email-Only-3
} | slapd_add
ok "slapd up in ${slapd_ms} ms (schema, ACL, ppolicy, two people)"

# --- the ACL: the service account writes only its attributes; a person writes none of them
acl_try() { # bind-dn password ldif: whether the modify was refused for want of access
    local rc=0
    printf '%b' "$3" | LDAPTLS_CACERT=$pki/ca-bundle.pem ldapmodify -x -H "$ldap_uri" -D "$1" -w "$2" \
        >"$T/acl.out" 2>&1 || rc=$?
    [ "$rc" = 50 ]
}
acl_try "uid=jane.doe,$people" Correct-Horse-1 \
    "dn: uid=jane.doe,$people\nchangetype: modify\nadd: altSecurityIdentities\naltSecurityIdentities: X509:<I>C=XX<SR>01\n" ||
    fail "a person could write altSecurityIdentities: $(cat "$T/acl.out")"
acl_try "uid=jane.doe,$people" Correct-Horse-1 \
    "dn: uid=jane.doe,$people\nchangetype: modify\nreplace: shadowLastChange\nshadowLastChange: 99999\n" ||
    fail "a person could write shadowLastChange"
acl_try "$service_dn" "$service_password" "dn: uid=jane.doe,$people\nchangetype: modify\nreplace: cn\ncn: X\n" ||
    fail "the service account could write cn: $(cat "$T/acl.out")"
acl_try "$service_dn" "$service_password" \
    "dn: cn=default,ou=policies,$suffix\nchangetype: modify\nreplace: pwdMaxFailure\npwdMaxFailure: 99\n" ||
    fail "the service account could write outside people's entries"
ok "ACL: the portal's account writes only userCertificate, altSecurityIdentities and shadow*, on people; people write none of them"

# --- our own /etc (sssctl reads /etc/sssd/sssd.conf whatever -c says), sssd's cache and logs
E=/run/cacreg-test/etc # the upper layer over /etc (tmpfs, as overlayfs wants its work dir)
mkdir -p "$E/sssd" "$E/pam.d" /run/cacreg-test/etc.work
cat >"$E/sssd/sssd.conf" <<EOF
[sssd]
services = nss, pam
domains = test

[nss]
# A login right after a registration must not meet a cached "no such user".
entry_negative_timeout = 0

[pam]
pam_cert_auth = True
pam_cert_db_path = $pki/ca-bundle.pem
pam_p11_allowed_services = +cacreg-test
p11_child_timeout = 10
p11_wait_for_card_timeout = 2

# One rule for both forms the portal writes: OpenLDAP compares userCertificate by
# serial and issuer (GSER), AD's strong mapping is a string (serial bytes reversed).
[certmap/test/portal]
maprule = LDAPU1:(|(userCertificate;binary=\7b serialNumber {serial_number!dec}, issuer rdnSequence:"{issuer_dn!nss_ldap}" \7d)(altSecurityIdentities=X509:<I>{issuer_dn!ad_x500}<SR>{serial_number!hex_ur}))

[domain/test]
id_provider = ldap
auth_provider = ldap
ldap_uri = $ldap_uri
ldap_search_base = $suffix
ldap_tls_cacert = $pki/ca-bundle.pem
ldap_pwd_policy = shadow
ldap_user_certificate = userCertificate;binary
entry_cache_timeout = 5
certificate_verification = no_ocsp
cache_credentials = false
EOF
chmod 600 "$E/sssd/sssd.conf"
printf 'auth required pam_sss.so\naccount required pam_sss.so\n' >"$E/pam.d/cacreg-test"
printf 'passwd: files sss\ngroup: files sss\nshadow: files sss\n' >"$E/nsswitch.conf"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$E,workdir=/run/cacreg-test/etc.work" /etc
mount -t tmpfs -o mode=755 tmpfs /var/lib/sss
mount -t tmpfs -o mode=750 tmpfs /var/log/sssd
# The system log: /dev writable in an overlay, a sink's socket bound at /dev/log (as with-etc).
mkdir -p /run/cacreg-test/dev/up /run/cacreg-test/dev/work /run/cacreg-test/pts
mount --bind /dev/pts /run/cacreg-test/pts
mount -t overlay overlay -o "lowerdir=/dev,upperdir=/run/cacreg-test/dev/up,workdir=/run/cacreg-test/dev/work" /dev
mount --bind /run/cacreg-test/pts /dev/pts
"$bench_dir/logsink" "$T/log.sock" "$T/syslog" &
sink_pid=$!
within 5 [ -S "$T/log.sock" ] || fail "no log sink"
: >/dev/log
mount --bind "$T/log.sock" /dev/log

# start_sssd: on an empty cache (what SSSD#6066 needs for a removed certificate to stop working).
start_sssd() {
    [ -z "$sssd_pid" ] || stop_pid "$sssd_pid"
    rm -rf /var/lib/sss/* /run/sssd.pid
    mkdir -m 700 /var/lib/sss/db /var/lib/sss/secrets
    mkdir -m 755 /var/lib/sss/pipes /var/lib/sss/pubconf /var/lib/sss/gpo_cache
    mkdir -m 775 /var/lib/sss/mc
    mkdir -m 750 /var/lib/sss/pipes/private
    /usr/sbin/sssd -i --logger=files >>"$T/sssd.out" 2>&1 &
    sssd_pid=$!
    within 10 getent passwd jane.doe >/dev/null || fail "sssd does not answer for jane.doe"
}
t0=$(date +%s%N)
start_sssd
ok "sssd answers in $((($(date +%s%N) - t0) / 1000000)) ms"

# sssd_login USER PIN: the smart-card login (echo PIN | sssctl user-checks), its words in $T/sssctl.
sssd_login() {
    printf '%s\n' "$2" | sssctl user-checks "$1" -a auth -s cacreg-test >"$T/sssctl" 2>&1 || true
    grep -q "pam_authenticate for user \[$1\]: Success" "$T/sssctl"
}
accepted() { sssd_login "$1" "$2" || { cat "$T/sssctl"; fail "$3: the card was refused"; }; }
refused() {
    ! sssd_login "$1" "$2" || { cat "$T/sssctl"; fail "$3: the card was accepted"; }
    # Refused for want of a mapping, not a broken stack: no PIN was asked for this card.
    ! grep -q "PIN for" "$T/sssctl" || { cat "$T/sssctl"; fail "$3: sssd mapped the card"; }
}

# --- cacreg-portald on the directory store
printf '%s\n' "$service_password" >"$T/service.secret"
chmod 600 "$T/service.secret"
cat >"$T/portald.conf" <<EOF
listen = 127.0.0.1:0
tls_cert = $pki/server.pem
tls_key = $pki/server.key
tls_client_ca = $pki/tls-accept.pem
ca_bundle = $pki/ca-bundle.pem
crl_file = $pki/inter.crl
database = $T/portal.db
port_file = $T/port
store = ldap
# The first URI has no directory: the second is used (failover).
ldap_uri = ldaps://127.0.0.1:6360 $ldap_uri
ldap_ca_file = $pki/ca-bundle.pem
ldap_bind_dn = $service_dn
ldap_bind_password_file = $T/service.secret
ldap_base = $people
ldap_timeout = 3
ldap_lockout_attempts = 5
EOF
"$portald" --config "$T/portald.conf" --check-config >"$T/check.out" 2>&1 ||
    fail "--check-config: $(cat "$T/check.out")"
grep -q "the directory answered and took the service account" "$T/check.out" || fail "check-config words"
# TLS to the directory is verified: a CA that did not issue slapd's certificate is refused.
sed "s|^ldap_ca_file = .*|ldap_ca_file = $pki/rogue/cert.pem|" "$T/portald.conf" >"$T/rogue.conf"
! "$portald" --config "$T/rogue.conf" --check-config >"$T/check.out" 2>&1 ||
    fail "the directory's certificate was not verified"
grep -q "its certificate is not one ldap_ca_file ($pki/rogue/cert.pem) verifies" "$T/check.out" ||
    fail "rogue CA: $(cat "$T/check.out")"
sed "s|^ldap_uri = .*|ldap_uri = ldap://127.0.0.1:389|" "$T/portald.conf" >"$T/clear.conf"
! "$portald" --config "$T/clear.conf" --check-config >"$T/check.out" 2>&1 ||
    fail "ldap:// without StartTLS was taken"
grep -q "would talk to the directory in clear" "$T/check.out" || fail "clear: $(cat "$T/check.out")"
start_portald() {
    rm -f "$T/port"
    "$portald" --config "$T/portald.conf" >>"$T/portald.out" 2>&1 &
    portald_pid=$!
    within 10 [ -s "$T/port" ] || fail "cacreg-portald did not start: $(cat "$T/portald.out")"
    url=https://localhost:$(cat "$T/port")/api/v1/
}
start_portald
ok "cacreg-portald on store = ldap: --check-config binds as the service account (a CA that did not issue the directory's certificate, and ldap:// without StartTLS, refused); serving"

cacreg() { # expected-exit stdin args...: one cacreg command, its output in $T/out
    local want=$1 input=$2 rc=0
    shift 2
    printf "$input" | "$bin" "$@" --portal "$url" --ca-bundle "$pki/ca-bundle.pem" \
        --crl "$pki/inter.crl" --reader "Virtual CAC" >"$T/out" 2>&1 || rc=$?
    [ "$rc" = "$want" ] || { cat "$T/out"; fail "cacreg $*: exit $rc, want $want"; }
}
has() { grep -q -- "$1" "$T/out" || { cat "$T/out"; fail "no '$1' in cacreg's words"; }; }
on_entry() { # uid: jane's userCertificate (as SHA-256s) and altSecurityIdentities, one per line
    search "(uid=$1)" userCertificate altSecurityIdentities shadowLastChange shadowMax >"$T/entry"
    sed -n 's/^userCertificate;binary:: //p' "$T/entry" | while read -r b64; do
        echo "$b64" | base64 -d | openssl dgst -sha256 -r | cut -c1-64 | tr a-f A-F | sed 's/^/cert /'
    done
    sed -n 's/^altSecurityIdentities: //p' "$T/entry" | sed 's/^/map /'
}
holds() { on_entry "$1" >"$T/values"; grep -qxF "$2" "$T/values"; }
mapping_of() { # persona: the AD strong mapping cacreg status shows for its identity certificate
    "$bin" status --ca-bundle "$pki/ca-bundle.pem" --reader "Virtual CAC" | sed -n 's/^    AD      //p'
}
unrelated_sha=$(openssl dgst -sha256 -r "$T/unrelated.der" | cut -c1-64 | tr a-f A-F)
unrelated_kept() {
    holds jane.doe "cert $unrelated_sha" && holds jane.doe "map $unrelated_map" ||
        { on_entry jane.doe; fail "$1: the unrelated certificate or mapping is gone"; }
}

# --- refused before registration
ctl unblock valid
ctl unblock valid2
insert valid
refused jane.doe 123456 "before registration"
ok "before registration: the card does not log jane.doe in"

# --- cacreg login --cac writes both forms; sssd logs the card in
valid_map=$(mapping_of valid)
[ -n "$valid_map" ] || fail "cacreg status shows no AD mapping"
insert valid
cacreg 0 '123456\n' login --cac --pin-fd 0
has "registered"
holds jane.doe "cert $(sha_of valid)" || { on_entry jane.doe; fail "no userCertificate written"; }
holds jane.doe "map $valid_map" || { on_entry jane.doe; fail "no altSecurityIdentities written"; }
unrelated_kept "registration"
# The mapping as the directory matches it: each form found by its own search.
search "(userCertificate;binary={ serialNumber $(openssl x509 -in "$pki/cards/valid/id.pem" -noout -serial |
    sed 's/^serial=//' | xargs -I{} printf '%d' 0x{}), issuer rdnSequence:\"CN=Test DOD ID CA-59,OU=PKI,OU=DoD,O=U.S. Government,C=US\" })" dn |
    grep -q "uid=jane.doe" || fail "the userCertificate is not found by serial and issuer"
search "(altSecurityIdentities=$valid_map)" dn | grep -q "uid=jane.doe" || fail "the mapping is not found"
accepted jane.doe 123456 "after cacreg login --cac"
ok "cacreg login --cac: userCertificate;binary and X509:<I><SR> written, the unrelated ones kept; sssd logs the card in"

# --- the 150 days, and the password login (portal and sssd)
today=$(($(date +%s) / 86400))
grep -q "^shadowLastChange: $today$" "$T/entry" && grep -q "^shadowMax: 150$" "$T/entry" ||
    { cat "$T/entry"; fail "the 150 days are not in shadowLastChange/shadowMax"; }
cacreg 0 'Correct-Horse-1\n' register --user jane.doe --password-fd 0 --state
has "Current registered information: CN=DOE.JANE.Q.1000000001"
has "SHA-256 $(sha_of valid)"
has "issuer  CN=Test DOD ID CA-59"
ctl remove # no card: sssd asks for the password
"$bench_dir/bench" wait "$CACREG_BENCH" absent >/dev/null
sssd_login jane.doe Correct-Horse-1 || { cat "$T/sssctl"; fail "jane's password does not log in through sssd"; }
grep -q "Password:" "$T/sssctl" || fail "sssd did not ask for a password"
# A username is a value in the filter, never a part of it: wildcards and parentheses find nobody.
for name in '*' 'jane.doe)(uid=*' 'j*' '*)(objectClass=*'; do
    code=$(curl -sS -o "$T/answer" -w '%{http_code}' --cacert "$pki/ca-bundle.pem" \
        -H 'Content-Type: application/json' \
        -d "{\"username\": \"$name\", \"password\": \"Correct-Horse-1\"}" "${url}session")
    [ "$code" = 401 ] && grep -q '"error":"invalid_credentials"' "$T/answer" ||
        fail "username '$name': $code $(cat "$T/answer")"
done
ok "shadowLastChange $today, shadowMax 150; the password logs in to the portal (a bind as jane) and through sssd; the view shows issuer and SHA-256"

# --- a password-path registration for another person
ctl unblock emailonly
insert emailonly
refused linda.loe 246802 "linda before registration"
cacreg 0 'Email-Only-3\n246802\n' register --user linda.loe --password-fd 0 --pin-fd 0
has "Your CAC is registered."
accepted linda.loe 246802 "after cacreg register"
ok "cacreg register (password path) for linda.loe: sssd logs her card in"

# --- one card, one account: jane's card for linda is refused, nothing written to linda
insert valid
cacreg 5 'Email-Only-3\n123456\n' register --user linda.loe --password-fd 0 --pin-fd 0
has "already registered to another account"
! holds linda.loe "cert $(sha_of valid)" || fail "jane's card written to linda"
ok "one card, one account: searched in the directory, refused"

# --- a wrong PIN fails and costs one try
tries() { "$bench_dir/bench" ctl "$CACREG_BENCH" pin "$1" | sed -n 's/.*tries_left=//p'; }
before=$(tries valid)
! sssd_login jane.doe 654321 || fail "a wrong PIN logged in"
[ "$(tries valid)" = $((before - 1)) ] || fail "a wrong PIN cost $((before - $(tries valid))) tries"
accepted jane.doe 123456 "after a wrong PIN"
ok "a wrong PIN fails and costs one try ($before -> $((before - 1))); the right one then logs in"

# --- the newer card replaces: the old one refused, the new one accepted
valid2_map=$(insert valid2 && mapping_of valid2)
insert valid2
cacreg 0 '24681357\n' login --cac --pin-fd 0
has "replace"
has "Machines that have already seen the old card" # SSSD#6066, told to the person
within 5 grep -q "event=registration .*result=replaced.*cached_elsewhere=old_card" "$T/syslog" ||
    { grep registration "$T/syslog"; fail "the audit line does not tell the administrator about sssd's caches"; }
holds jane.doe "cert $(sha_of valid2)" && holds jane.doe "map $valid2_map" || fail "valid2 not written"
! holds jane.doe "cert $(sha_of valid)" && ! holds jane.doe "map $valid_map" ||
    { on_entry jane.doe; fail "valid's values left behind"; }
unrelated_kept "replace"
accepted jane.doe 24681357 "valid2 after replace"
insert valid
if sssd_login jane.doe 123456; then
    echo "SSSD#6066: the replaced card still logs in until sssd's cache is emptied"
fi
start_sssd # SSSD#6066: a certificate removed from the directory logs in until the cache is emptied
refused jane.doe 123456 "the replaced card"
ok "valid2 replaces valid in one modify: valid refused, valid2 accepted, the unrelated ones kept"

# --- clear: the values this portal wrote go, the others stay
insert valid2
cacreg 0 'Correct-Horse-1\n' register --user jane.doe --password-fd 0 --state --clear
has "Registered information cleared."
has "Machines that have already seen the old card"
! holds jane.doe "cert $(sha_of valid2)" && ! holds jane.doe "map $valid2_map" ||
    { on_entry jane.doe; fail "clear left the portal's values"; }
unrelated_kept "clear"
start_sssd
refused jane.doe 24681357 "after clear"
ok "register --clear: the portal's values gone, the unrelated ones kept; refused once sssd's cache is emptied"

# --- slapd stopped: directory_unavailable in words; back, and the next login works
before_entry=$(on_entry jane.doe)
stop_pid "$slapd_pid"
slapd_pid=
cacreg 5 '24681357\n' login --cac --pin-fd 0
has "cannot reach the directory"
within 5 grep -q "event=store_error.*store=ldap.*half_written=no" "$T/syslog" ||
    fail "no audit line for the directory's failure"
start_slapd
[ "$(on_entry jane.doe)" = "$before_entry" ] || fail "something was half-written"
cacreg 0 '24681357\n' login --cac --pin-fd 0
has "registered"
accepted jane.doe 24681357 "after slapd came back"
ok "slapd stopped: 503 directory_unavailable, cacreg says so in words, nothing written; back, the next login works"

# --- administration on a directory: what this portal wrote and the directory holds; accounts are the directory's
"$portald" --config "$T/portald.conf" registration list >"$T/admin.out" 2>&1 || fail "registration list: $(cat "$T/admin.out")"
grep -q "^jane.doe	.*sha256=$(sha_of valid2)" "$T/admin.out" && grep -q "^linda.loe	" "$T/admin.out" ||
    fail "registration list: $(cat "$T/admin.out")"
! "$portald" --config "$T/portald.conf" account list >"$T/admin.out" 2>&1 &&
    grep -q "the accounts are the directory's" "$T/admin.out" || fail "account list: $(cat "$T/admin.out")"
ok "registration list shows what the portal wrote (jane's valid2, linda's); account commands say the accounts are the directory's"

# --- the directory's own lock (ppolicy): attempts_left from its failure count, then 423; the
# portal keeps no lock of its own (the directory unlocks, and the password works again)
password_login() { # user password: the portal's answer in $T/answer, its status out
    curl -sS -o "$T/answer" -w '%{http_code}' --cacert "$pki/ca-bundle.pem" \
        -H 'Content-Type: application/json' -d "{\"username\": \"$1\", \"password\": \"$2\"}" \
        "${url}session"
}
for left in 4 3 2 1; do
    [ "$(password_login linda.loe wrong)" = 401 ] && grep -q "\"attempts_left\":$left" "$T/answer" ||
        fail "wrong password, want attempts_left $left: $(cat "$T/answer")"
done
[ "$(password_login linda.loe wrong)" = 423 ] || fail "the 5th wrong password: $(cat "$T/answer")"
[ "$(password_login linda.loe Email-Only-3)" = 423 ] || fail "locked, the right password: $(cat "$T/answer")"
grep -q '"error":"account_locked"' "$T/answer" || fail "not account_locked: $(cat "$T/answer")"
within 5 grep -q "event=lock .*username=linda.loe" "$T/syslog" || fail "no audit line of the lock"
# Without the threshold in the configuration, the lock is the directory's answer (ppolicy's control).
stop_pid "$portald_pid"
sed -i 's/^ldap_lockout_attempts = 5$/ldap_lockout_attempts = 0\nldap_write = certificate/' "$T/portald.conf"
start_portald
[ "$(password_login linda.loe Email-Only-3)" = 423 ] || fail "ppolicy's lock not read: $(cat "$T/answer")"
printf 'dn: uid=linda.loe,%s\nchangetype: modify\ndelete: pwdAccountLockedTime\n' "$people" |
    ldapmodify -x -H ldap://127.0.0.1 -D "cn=admin,$suffix" -w admin-secret >/dev/null
[ "$(password_login linda.loe Email-Only-3)" = 200 ] || fail "unlocked in the directory: $(cat "$T/answer")"
ok "the directory's lock: attempts_left 4..1, 423 at the 5th, audited; ppolicy's answer alone says locked; unlocked in the directory, the password works"

# --- ldap_write = certificate (set above): only userCertificate;binary is written (a clear, then a register)
insert valid2
cacreg 0 'Correct-Horse-1\n24681357\n' register --user jane.doe --password-fd 0 --pin-fd 0 --clear
holds jane.doe "cert $(sha_of valid2)" && ! holds jane.doe "map $valid2_map" ||
    { on_entry jane.doe; fail "ldap_write = certificate wrote a mapping"; }
unrelated_kept "ldap_write = certificate"
ok "ldap_write = certificate: the clear removed both forms the portal wrote, the register wrote the certificate alone"

# --- a directory that hangs (slapd stopped with SIGSTOP: connections accepted, never answered):
# every operation is bounded by ldap_timeout (3 s here), then 503; SIGCONT, and it works again.
kill -STOP "$slapd_pid"
t0=$(date +%s%N)
cacreg 5 '24681357\n' login --cac --pin-fd 0 # on the open connection: the search times out
has "cannot reach the directory"
hung_ms=$((($(date +%s%N) - t0) / 1000000))
t0=$(date +%s%N)
cacreg 5 '24681357\n' login --cac --pin-fd 0 # a new connection: TLS never answered
has "cannot reach the directory"
hung2_ms=$((($(date +%s%N) - t0) / 1000000))
kill -CONT "$slapd_pid"
[ "$hung_ms" -lt 6000 ] && [ "$hung2_ms" -lt 6000 ] ||
    fail "a hung directory held a login $hung_ms ms, then $hung2_ms ms"
cacreg 0 '24681357\n' login --cac --pin-fd 0
ok "a hung directory: 503 directory_unavailable after $hung_ms ms, then $hung2_ms ms on a new connection (ldap_timeout 3 s); fine once it answers again"

# --- the service account's password wrong in its file: --check-config and the log say which
printf 'not-the-password\n' >"$T/wrong.secret"
chmod 600 "$T/wrong.secret"
sed "s|^ldap_bind_password_file = .*|ldap_bind_password_file = $T/wrong.secret|" "$T/portald.conf" >"$T/wrong.conf"
rc=0
"$portald" --config "$T/wrong.conf" --check-config >"$T/check.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "--check-config with a wrong password: exit $rc"
grep -q "ldap_bind_password_file: .* refused the service account $service_dn with the password in $T/wrong.secret" \
    "$T/check.out" ||
    fail "--check-config does not say which: $(cat "$T/check.out")"
sed -i "s|^port_file = .*|port_file = $T/port2|" "$T/wrong.conf"
"$portald" --config "$T/wrong.conf" >"$T/wrong.out" 2>&1 &
wrong_pid=$!
within 10 grep -q "event=store_error during=start store=ldap.*refused the service account" "$T/syslog" ||
    { stop_pid "$wrong_pid"; fail "the log does not say the service account was refused"; }
stop_pid "$wrong_pid"
ok "a wrong service password: --check-config and the log name the account and the file"

echo "test_sssd: $(elapsed) ms in all"
