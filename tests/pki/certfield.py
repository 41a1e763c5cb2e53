#!/usr/bin/python3
"""Prints one field of a PEM certificate as its raw bytes, then "|".

usage: certfield.py CERT.pem cn|upn

The CN of the subject, or the UPN (msUPN otherName) of the subjectAltName,
exactly as encoded: escape sequences, newlines and all. The "|" keeps a
trailing newline through a shell's $(...); strip it with ${v%|}.
"""
import sys
import warnings

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")


def utf8string(der):
    """The contents of a DER UTF8String."""
    if der[0] != 0x0C:
        raise SystemExit("certfield: the UPN is not a UTF8String")
    n, off = der[1], 2
    if n & 0x80:
        n, off = int.from_bytes(der[2:2 + (n & 0x7F)], "big"), 2 + (n & 0x7F)
    return der[off:off + n]


def main():
    path, name = sys.argv[1], sys.argv[2]
    warnings.simplefilter("ignore")  # a CN over X.520's 64 characters is the point of some
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    if name == "cn":
        value = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value.encode()
    elif name == "upn":
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        value = utf8string([n.value for n in san.get_values_for_type(x509.OtherName)
                            if n.type_id == UPN_OID][0])
    else:
        raise SystemExit("usage: certfield.py CERT.pem cn|upn")
    sys.stdout.buffer.write(value + b"|")


if __name__ == "__main__":
    main()
