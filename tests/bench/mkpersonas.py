#!/usr/bin/python3
"""mkpersonas.py PKI OUTDIR: software-key personas for the portal's load runs.

Each persona is an identity certificate shaped like a CAC's (CN
LOAD.PERSONA.N.EDIPI, UPN EDIPI@mil, client authentication and smart-card
logon), with an RSA-2048 key of its own, issued by the bench PKI's
intermediate (PKI/inter), so that a server does real handshakes and real
chain checks with distinct certificates. Made at test time, dated from now;
nothing is committed.

OUTDIR gets:
  NNN/id.pem, NNN/id.key     one directory per persona
  bench.list                 256 personas, each its own account (make bench)
  soak.list                  200 personas over 150 accounts: 50 accounts have
                             two cards, as valid and valid2, listed side by side
                             (make soak)
  accounts.json              every account, in tests/portal/accounts.json's form
  index.txt                  PKI/inter/index.txt with the personas added, for
                             an `openssl ocsp` responder that knows them
A list line is: NAME EDIPI USERNAME PASSWORD SHA256 (the certificate's, upper-case hex).
"""
import datetime
import hashlib
import json
import os
import secrets
import shutil
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

BENCH = 256          # personas of make bench, one account each
SOAK_ACCOUNTS = 150  # make soak: 200 personas, the last 50 second cards
SOAK_SECOND = 50
UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
SMARTCARD_LOGON = ObjectIdentifier("1.3.6.1.4.1.311.20.2.2")
EDIPI_BASE = 2000000000


def der_utf8(text):
    """An UPN otherName's value: a UTF8String, DER."""
    raw = text.encode()
    assert len(raw) < 128
    return bytes([0x0C, len(raw)]) + raw


def persona(inter_cert, inter_key, n, edipi, not_before, not_after):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cn = "LOAD.PERSONA.%d.%d" % (n, edipi)
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "U.S. Government"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "DoD"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "PKI"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "USA"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])
    ski = inter_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(inter_cert.subject)
            .public_key(key.public_key())
            .serial_number(secrets.randbits(63) | (1 << 62))
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                                  SMARTCARD_LOGON]), critical=False)
            .add_extension(x509.SubjectAlternativeName([
                x509.OtherName(UPN_OID, der_utf8("%d@mil" % edipi))]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False)
            .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                [x509.UniformResourceIdentifier("http://127.0.0.1/crl/dod-id-ca.crl")],
                None, None, None)]), critical=False)
            .add_extension(x509.CertificatePolicies([x509.PolicyInformation(
                ObjectIdentifier("2.16.840.1.101.2.1.11.42"), None)]), critical=False)
            .sign(inter_key, hashes.SHA256()))
    return key, cert


def main():
    pki, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(pki, "inter", "cert.pem"), "rb") as f:
        inter_cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(pki, "inter", "key.pem"), "rb") as f:
        inter_key = serialization.load_pem_private_key(f.read(), None)
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    now = datetime.datetime.now(datetime.timezone.utc)
    not_before, not_after = now - datetime.timedelta(days=30), now + datetime.timedelta(days=1000)
    # (persona number, account number): make bench's, then make soak's.
    plan = [(n, n) for n in range(BENCH)]
    plan += [(BENCH + i, BENCH + i) for i in range(SOAK_ACCOUNTS)]
    plan += [(BENCH + SOAK_ACCOUNTS + i, BENCH + SOAK_ACCOUNTS - SOAK_SECOND + i)
             for i in range(SOAK_SECOND)]
    accounts, lines, index = {}, {}, []
    for n, a in plan:
        edipi = EDIPI_BASE + a
        key, cert = persona(inter_cert, inter_key, n, edipi, not_before, not_after)
        d = os.path.join(tmp, "%03d" % n)
        os.makedirs(d)
        der = cert.public_bytes(serialization.Encoding.DER)
        with open(os.path.join(d, "id.pem"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(os.path.join(d, "id.key"), "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        username, password = "load.%03d" % a, "Load-Pass-%03d" % a
        accounts[a] = {"username": username, "display_name": "PERSONA, LOAD %d" % a,
                       "edipi": str(edipi), "type": "full", "password": password,
                       "password_expires_in_days": 30}
        lines[n] = "%03d %d %s %s %s" % (n, edipi, username, password,
                                         hashlib.sha256(der).hexdigest().upper())
        index.append("V\t%s\t\t%X\tunknown\t%s" % (
            not_after.strftime("%y%m%d%H%M%SZ"), cert.serial_number,
            "/" + "/".join(r.rfc4514_string() for r in cert.subject.rdns)))
    with open(os.path.join(tmp, "bench.list"), "w") as f:
        f.write("".join(lines[n] + "\n" for n in range(BENCH)))
    # A second card right after its first, so that clients starting together often
    # register two cards of one account at once.
    soak = [n for n in range(BENCH, BENCH + SOAK_ACCOUNTS - SOAK_SECOND)]
    for i in range(SOAK_SECOND):
        soak += [BENCH + SOAK_ACCOUNTS - SOAK_SECOND + i, BENCH + SOAK_ACCOUNTS + i]
    with open(os.path.join(tmp, "soak.list"), "w") as f:
        f.write("".join(lines[n] + "\n" for n in soak))
    with open(os.path.join(tmp, "accounts.json"), "w") as f:
        json.dump({"accounts": [accounts[a] for a in sorted(accounts)]}, f, indent=0)
    with open(os.path.join(pki, "inter", "index.txt")) as f:
        inter_index = f.read()
    with open(os.path.join(tmp, "index.txt"), "w") as f:
        f.write(inter_index + "".join(line + "\n" for line in index))
    with open(os.path.join(tmp, "index.txt.attr"), "w") as f:
        f.write("unique_subject = no\n")
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)


if __name__ == "__main__":
    main()
