#!/usr/bin/env bash
# Builds the bench's test PKI in OUTDIR: a DoD-like root and intermediate, an
# untrusted CA, a CRL, an OCSP signer, and one NSS database per card persona.
# Everything is made fresh at test time, dated from "now"; nothing is committed.
#
# usage: mkpki.sh OUTDIR
set -euo pipefail

out=${1:?usage: mkpki.sh OUTDIR}
case "$out" in /*) ;; *) out=$PWD/$out ;; esac
here=$(cd "$(dirname "$0")" && pwd)
personas="$here/personas.txt"

rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cd "$out.tmp"

# openssl ca wants a config file; this one serves the root, the intermediate and
# the untrusted CA, each with its own directory and database.
cat > ca.cnf <<'CNF'
openssl_conf = openssl_init

# X.520 caps a CN at 64 characters and OpenSSL enforces it; the longcn persona
# needs more (real CAs and NSS accept longer ones).
[ openssl_init ]
stbl_section = string_table
[ string_table ]
commonName = max:4096

[ ca ]
default_ca = ca_default

[ ca_default ]
dir = $ENV::CA_DIR
database = $dir/index.txt
new_certs_dir = $dir/new
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_crl_days = 30
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no

[ policy_any ]
countryName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied

[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused

[ ext_root ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ ext_inter ]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ ext_ocsp ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
noCheck = ignored

[ ext_server ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $ENV::SAN

# The identity (PIV Authentication) certificate: client TLS and smart-card logon,
# with the UPN "EDIPI@mil" a real CAC carries.
[ ext_id ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth, msSmartcardLogin
subjectAltName = otherName:msUPN;UTF8:$ENV::UPN
authorityKeyIdentifier = keyid
crlDistributionPoints = URI:http://127.0.0.1/crl/dod-id-ca.crl
certificatePolicies = 2.16.840.1.101.2.1.11.42

# The same, with a UPN any bytes long (control characters included) that the
# config syntax cannot carry: the subjectAltName as DER, made by upn_der.
[ ext_id_upn ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth, msSmartcardLogin
subjectAltName = DER:$ENV::UPN_DER
authorityKeyIdentifier = keyid
crlDistributionPoints = URI:http://127.0.0.1/crl/dod-id-ca.crl
certificatePolicies = 2.16.840.1.101.2.1.11.42

[ ext_sig ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = emailProtection, clientAuth, msSmartcardLogin
subjectAltName = email:$ENV::EMAIL
authorityKeyIdentifier = keyid

[ ext_enc ]
basicConstraints = critical, CA:false
keyUsage = critical, keyEncipherment
extendedKeyUsage = emailProtection
subjectAltName = email:$ENV::EMAIL
authorityKeyIdentifier = keyid
CNF
export OPENSSL_CONF=$PWD/ca.cnf

newca() { # dir
    mkdir -p "$1/new"
    : > "$1/index.txt"
    echo 1000 > "$1/serial"
    echo 01 > "$1/crlnumber"
}

key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }
ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# unesc TEXT: TEXT with printf %b escapes (\e, \a, \n, \xHH, \uXXXX, \UXXXXXXXX) made bytes, as UTF-8.
unesc() { LC_ALL=C.UTF-8 printf '%b' "$1"; }

# subj_value TEXT: TEXT escaped for a value in openssl's -subj (\ / and + are special).
subj_value() {
    local v=${1//\\/\\\\}
    v=${v//\//\\/}
    printf '%s' "${v//+/\\+}"
}

# der_len N: the DER length octets of N, in hex.
der_len() {
    if [ "$1" -lt 128 ]; then printf '%02x' "$1"
    elif [ "$1" -lt 256 ]; then printf '81%02x' "$1"
    else printf '82%04x' "$1"; fi
}

# upn_der UPN: a subjectAltName holding UPN as its msUPN otherName, as DER in hex.
upn_der() {
    local v
    v=$(printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n')
    v="0c$(der_len $((${#v} / 2)))$v"                      # UTF8String
    v="060a2b060104018237140203a0$(der_len $((${#v} / 2)))$v" # msUPN OID, [0] EXPLICIT
    v="a0$(der_len $((${#v} / 2)))$v"                      # otherName [0]
    printf '30%s%s' "$(der_len $((${#v} / 2)))" "$v"        # GeneralNames
}

# ca_sign CADIR CACERT CAKEY EXT SUBJ KEY OUT [openssl ca date options...]
ca_sign() {
    local dir=$1 cacert=$2 cakey=$3 ext=$4 subj=$5 k=$6 crt=$7
    shift 7
    openssl req -new -utf8 -key "$k" -subj "$subj" -out "$crt.csr" 2>/dev/null
    CA_DIR=$dir openssl ca -batch -notext -cert "$cacert" -keyfile "$cakey" \
        -extensions "$ext" -in "$crt.csr" -out "$crt" -multivalue-rdn "$@" 2>ca.err ||
        { cat ca.err >&2; exit 1; }
    rm -f "$crt.csr"
}

export UPN=none UPN_DER=3000 EMAIL=none SAN=DNS:localhost CA_DIR=root

# A root and intermediate shaped like DoD's, and a CA nobody trusts.
newca root; newca inter; newca rogue
key root/key.pem
openssl req -x509 -new -key root/key.pem -days 3650 -extensions ext_root \
    -subj "/C=US/O=U.S. Government/OU=DoD/OU=PKI/CN=Test DoD Root CA 3" -out root/cert.pem
key inter/key.pem
ca_sign root root/cert.pem root/key.pem ext_inter \
    "/C=US/O=U.S. Government/OU=DoD/OU=PKI/CN=Test DOD ID CA-59" inter/key.pem inter/cert.pem -days 2000
key rogue/key.pem
openssl req -x509 -new -key rogue/key.pem -days 3650 -extensions ext_root \
    -subj "/C=US/O=Untrusted Example/CN=Untrusted Test CA" -out rogue/cert.pem

# The OCSP responder's signing certificate, issued by the intermediate.
key ocsp.key
ca_sign inter inter/cert.pem inter/key.pem ext_ocsp \
    "/C=US/O=U.S. Government/OU=DoD/OU=PKI/CN=Test DOD ID CA-59 OCSP" ocsp.key ocsp.pem -days 365

# A server certificate for the reference portal on 127.0.0.1 / localhost.
key server.key
SAN="DNS:localhost,IP:127.0.0.1" ca_sign inter inter/cert.pem inter/key.pem ext_server \
    "/C=US/O=U.S. Government/OU=DoD/CN=localhost" server.key server.pem -days 365

# Server certificates that are wrong, for the portal's fault modes.
key server-bad.key
SAN="DNS:localhost,IP:127.0.0.1" ca_sign inter inter/cert.pem inter/key.pem ext_server \
    "/C=US/O=U.S. Government/OU=DoD/CN=localhost expired" server-bad.key server-expired.pem \
    -startdate 20230101000000Z -enddate 20240101000000Z
SAN="DNS:portal.example.mil" ca_sign inter inter/cert.pem inter/key.pem ext_server \
    "/C=US/O=U.S. Government/OU=DoD/CN=portal.example.mil" server-bad.key server-wrong-host.pem -days 365
SAN="DNS:localhost,IP:127.0.0.1" ca_sign rogue rogue/cert.pem rogue/key.pem ext_server \
    "/C=US/O=Untrusted Example/CN=localhost" server-bad.key server-other-ca.pem -days 365

cat inter/cert.pem root/cert.pem > ca-bundle.pem
# What a portal accepts in the TLS handshake: its own PKI and one more it
# knows but does not accept for CAC registration.
cat inter/cert.pem root/cert.pem rogue/cert.pem > tls-accept.pem
cat root/cert.pem > trust-root.pem

# One card per persona line: name edipi last first mi ca dates pin [options]
# (the options are described in personas.txt).
mkdir -p cards
while read -r name edipi last first mi ca dates pin rest; do
    case "$name" in ''|'#'*) continue ;; esac
    d=cards/$name
    mkdir -p "$d"
    cn= upn= cnpad= idalg=rsa idkey=yes atr=
    read -ra opts <<<"$rest"
    for opt in ${opts[@]+"${opts[@]}"}; do
        case "$opt" in
            cn=*)    cn=$(unesc "${opt#cn=}") ;;
            upn=*)   upn=$(unesc "${opt#upn=}") ;;
            cnpad=*) cnpad=${opt#cnpad=} ;;
            key=ec)  idalg=ec ;;
            idkey=no) idkey=no ;;
            atr=*)   atr=${opt#atr=} ;;
            *) echo "mkpki: $name: unknown option $opt" >&2; exit 1 ;;
        esac
    done
    if [ -n "$atr" ]; then
        # Not a CAC: no certificates, only the ATR vcacd answers with.
        printf '%s\n' "$atr" > "$d/atr"
        continue
    fi
    case "$ca" in
        inter) cadir=inter ;;
        rogue) cadir=rogue ;;
        *) echo "mkpki: unknown CA $ca for $name" >&2; exit 1 ;;
    esac
    case "$dates" in
        expired) dateopt=(-startdate 20230101000000Z -enddate 20240101000000Z) ;;
        newer)   dateopt=(-startdate "$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)" -days 1095) ;;
        *)       dateopt=(-startdate "$(date -u -d '-400 days' +%Y%m%d%H%M%SZ)" -days 1095) ;;
    esac
    last=$(unesc "$last") first=$(unesc "$first") mi=$(unesc "$mi")
    [ -n "$cn" ] || cn="$last.$first.$mi.$edipi"
    if [ -n "$cnpad" ]; then
        # A CN of exactly cnpad bytes: LAST grows by a repeated double-barrel.
        pad=
        while [ $(( $(printf '%s' "$cn$pad" | wc -c) )) -lt "$cnpad" ]; do
            pad="$pad-$last"
        done
        pad=$(printf '%s' "$pad" | head -c $((cnpad - $(printf '%s' "$cn" | wc -c))))
        cn="$last$pad.$first.$mi.$edipi"
    fi
    scn=$(subj_value "$cn")
    base="/C=US/O=U.S. Government/OU=DoD/OU=PKI/OU=USA/CN=$scn"
    export UPN="$edipi@mil"
    export UPN_DER=3000
    id_ext=ext_id
    if [ -n "$upn" ]; then
        UPN_DER=$(upn_der "$upn")
        id_ext=ext_id_upn
    fi
    # An rfc822Name is ASCII: a name that is not gets an address from the EDIPI.
    case "$first.$mi.$last" in
        *[!ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-]*)
            export EMAIL="$edipi.mil@mail.mil" ;;
        *) export EMAIL="$(echo "$first.$mi.$last" | tr 'A-Z' 'a-z').mil@mail.mil" ;;
    esac
    # NSS keeps one nickname per subject, so the three subjects differ.
    for kind in id sig enc; do
        if [ $kind = id ] && [ $idalg = ec ]; then ec_key "$d/$kind.key"; else key "$d/$kind.key"; fi
        ext=ext_$kind
        case $kind in
            id)  subj="$base"; ext=$id_ext ;;
            sig) subj="/C=US/O=U.S. Government/OU=DoD/OU=PKI/OU=USA/OU=Email Signature/CN=$scn" ;;
            enc) subj="/C=US/O=U.S. Government/OU=DoD/OU=PKI/OU=USA/OU=Email Encryption/CN=$scn" ;;
        esac
        ca_sign "$cadir" "$cadir/cert.pem" "$cadir/key.pem" "$ext" "$subj" \
            "$d/$kind.key" "$d/$kind.pem" "${dateopt[@]}"
        openssl pkcs12 -export -in "$d/$kind.pem" -inkey "$d/$kind.key" -name "$kind" \
            -passout pass: -out "$d/$kind.p12"
    done
    mkdir -p "$d/nssdb"
    certutil -N -d "sql:$d/nssdb" --empty-password
    for kind in id sig enc; do
        if [ $kind = id ] && [ $idkey = no ]; then
            # The certificate alone: the card has no private key for it (the
            # key stays in id.key, for software tests).
            certutil -A -d "sql:$d/nssdb" -n id -t ,, -a -i "$d/id.pem"
        else
            pk12util -i "$d/$kind.p12" -d "sql:$d/nssdb" -W "" >/dev/null
        fi
        rm -f "$d/$kind.p12"
    done
    printf '%s\n' "$edipi" > "$d/edipi"
    printf '%s\n' "$pin" > "$d/pin"
done < "$personas"

# An identity certificate whose validity starts next month (a wrong clock, as
# the portal sees it): a software key only, no card.
export UPN="1000000001@mil"
key future.key
ca_sign inter inter/cert.pem inter/key.pem ext_id \
    "/C=US/O=U.S. Government/OU=DoD/OU=PKI/OU=USA/OU=Future/CN=DOE.JANE.Q.1000000001" future.key future.pem \
    -startdate "$(date -u -d '+30 days' +%Y%m%d%H%M%SZ)" -days 365

# Revoke the "revoked" persona's certificates, then publish the CRL.
if [ -d cards/revoked ]; then
    for kind in id sig enc; do
        CA_DIR=inter openssl ca -revoke cards/revoked/$kind.pem -crl_reason keyCompromise \
            -keyfile inter/key.pem -cert inter/cert.pem 2>/dev/null
    done
fi
CA_DIR=inter openssl ca -gencrl -keyfile inter/key.pem -cert inter/cert.pem -out inter.crl 2>/dev/null

cd ..
rm -rf "$out"
mv "$out.tmp" "$out"
