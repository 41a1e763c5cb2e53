# shellcheck shell=bash
# A slapd of the test's own for the directory store (tests/directory/test_sssd.sh,
# tests/bench/bench_portal.sh): Debian's slapd on 127.0.0.1 (ldap 389, ldaps 636)
# with inetOrgPerson, posixAccount, shadowAccount, AD's altSecurityIdentities
# (Microsoft's OID, EQUALITY caseIgnoreMatch, on an auxiliary class), ppolicy's
# lockout after 5, and the ACL that lets the portal's service account write
# only what a registration writes, on people's entries. Source it in a network
# namespace of the caller's own; it needs $pki (the bench PKI) and `within`
# and `fail` (tests/lib/wait.sh, tests/bench/lib.sh).
#
#   slapd_setup DIR [LOGLEVEL]   writes DIR/slapd.conf and its schema (LOGLEVEL: slapd -d)
#   slapd_start                  starts it; $slapd_pid; waits until it answers
#   slapd_seed                   the suffix, ou=people, the service account, the policy
#   slapd_person UID CN EDIPI UIDNUMBER PASSWORD [LDIF LINES...]   one person
#   slapd_add                    ldapadd as the directory's admin, LDIF on stdin

suffix=dc=cacreg,dc=test
people=ou=people,$suffix
service_dn=cn=portal,ou=services,$suffix
service_password=portal-secret
ldap_uri=ldaps://127.0.0.1:636

slapd_setup() {
    slapd_dir=$1
    slapd_debug=${2:-0}
    mkdir -p "$slapd_dir/db"
    cat >"$slapd_dir/cacreg-test.schema" <<'EOF'
attributetype ( 1.2.840.113556.1.4.867 NAME 'altSecurityIdentities'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
objectclass ( 1.3.6.1.4.1.4203.666.11.99.1 NAME 'cacregTestMapping' AUXILIARY
    MAY altSecurityIdentities )
EOF
    cat >"$slapd_dir/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
include $slapd_dir/cacreg-test.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
pidfile $slapd_dir/slapd.pid
argsfile $slapd_dir/slapd.args
TLSCertificateFile $pki/server.pem
TLSCertificateKeyFile $pki/server.key
TLSCACertificateFile $pki/ca-bundle.pem
database mdb
maxsize 268435456
suffix "$suffix"
rootdn "cn=admin,$suffix"
rootpw admin-secret
directory $slapd_dir/db
index uid,employeeNumber,altSecurityIdentities eq
overlay ppolicy
ppolicy_default "cn=default,ou=policies,$suffix"
ppolicy_use_lockout
# The portal's service account writes exactly these, on people's entries; nobody else does.
access to dn.subtree="$people" filter=(objectClass=posixAccount)
        attrs=userCertificate,altSecurityIdentities,shadowLastChange,shadowMax
    by dn.exact="$service_dn" write
    by * read
access to attrs=userPassword
    by anonymous auth
    by * none
access to dn.subtree="$people" attrs=pwdFailureTime
    by dn.exact="$service_dn" read
    by * none
access to *
    by * read
EOF
}

slapd_start() {
    /usr/sbin/slapd -f "$slapd_dir/slapd.conf" -h "ldap://127.0.0.1:389/ ldaps://127.0.0.1:636/" \
        -d "$slapd_debug" >>"$slapd_dir/slapd.log" 2>&1 &
    slapd_pid=$!
    _slapd_up() { ldapsearch -x -H ldap://127.0.0.1 -b "" -s base >/dev/null 2>&1; }
    within 10 _slapd_up || fail "slapd did not come up: $(tail -5 "$slapd_dir/slapd.log")"
}

slapd_add() { ldapadd -x -H ldap://127.0.0.1 -D "cn=admin,$suffix" -w admin-secret >/dev/null; }

slapd_seed() {
    slapd_add <<EOF
dn: $suffix
objectClass: dcObject
objectClass: organization
o: cacreg test
dc: cacreg

dn: $people
objectClass: organizationalUnit
ou: people

dn: ou=services,$suffix
objectClass: organizationalUnit
ou: services

dn: ou=policies,$suffix
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,$suffix
objectClass: pwdPolicy
objectClass: device
cn: default
pwdAttribute: userPassword
pwdMaxFailure: 5
pwdLockout: TRUE

dn: $service_dn
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: portal
userPassword: $service_password
EOF
}

# slapd_person UID CN EDIPI UIDNUMBER PASSWORD [LINE...]: one person's entry, as LDIF on stdout.
slapd_person() {
    local uid=$1 cn=$2 edipi=$3 number=$4 password=$5
    shift 5
    printf '%s\n' "dn: uid=$uid,$people" "objectClass: inetOrgPerson" "objectClass: posixAccount" \
        "objectClass: shadowAccount" "objectClass: cacregTestMapping" "uid: $uid" "cn: $cn" \
        "sn: ${cn%%,*}" "employeeNumber: $edipi" "uidNumber: $number" "gidNumber: $number" \
        "homeDirectory: /tmp" "loginShell: /bin/sh" "userPassword: $password" "$@" ""
}
