#!/usr/bin/python3
"""The reference portal: docs/portal-api.md over HTTPS, for tests and the demo.

Python's standard library serves it (http.server, ssl, sqlite3); Debian's
python3-cryptography parses certificates and speaks OCSP, which the standard
library cannot. Small and readable on purpose: it is test equipment.
"""
import argparse
import base64
import datetime as dt
import hashlib
import hmac
import http.server
import json
import os
import secrets
import socket
import socketserver
import sqlite3
import ssl
import sys
import threading
import time
import urllib.request

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

API = "/api/v1/"
UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
MAX_BODY = 8 * 1024
MAX_FIELD = 1024
LOCK_AFTER = 5
PASSWORD_EXTENSION_DAYS = 150
X509_V_FLAG_NO_CHECK_TIME = 0x200000  # the app checks dates, to say which is wrong


def now():
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def iso(t):
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(s):
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


# ---- passwords ----

def hash_password(password):
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return "scrypt$16384$8$1$%s$%s" % (base64.b64encode(salt).decode(),
                                       base64.b64encode(digest).decode())


def check_password(password, stored):
    _, n, r, p, salt, digest = stored.split("$")
    got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                         p=int(p), dklen=32)
    return hmac.compare_digest(got, base64.b64decode(digest))


DUMMY_HASH = hash_password(secrets.token_hex(8))  # same cost for unknown usernames
# A fixture account's hash until its first password check: hashing every
# fixture password at each start would cost a portal seconds.
UNHASHED = "unhashed"


# ---- certificates ----

class Refusal(Exception):
    """An error answer: status, error code, message, extra fields."""

    def __init__(self, status, error, message, **extra):
        super().__init__(message)
        self.status, self.error, self.message, self.extra = status, error, message, extra


def forbidden(error, message, **extra):
    return Refusal(403, error, message, **extra)


def not_before(cert):
    return cert.not_valid_before.replace(tzinfo=dt.timezone.utc)


def not_after(cert):
    return cert.not_valid_after.replace(tzinfo=dt.timezone.utc)


def signed_by(cert, issuer):
    """True when issuer's key made cert's signature (a certificate, CRL or OCSP answer)."""
    key = issuer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                       cert.signature_hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes,
                       ec.ECDSA(cert.signature_hash_algorithm))
        else:
            return False
        return True
    except InvalidSignature:
        return False


def upn_of(cert):
    """The UPN otherName of the subjectAltName, or None."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for name in san.get_values_for_type(x509.OtherName):
        if name.type_id != UPN_OID:
            continue
        der = name.value  # a DER UTF8String: tag 0x0C, length, bytes
        if len(der) < 2 or der[0] != 0x0C:
            return None
        length, off = der[1], 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(der[2:2 + count], "big")
            off = 2 + count
        return der[off:off + length].decode("utf-8", "replace")
    return None


def edipi_of(cert):
    """The EDIPI from the UPN "EDIPI@mil", else from the CN "LAST.FIRST.MI.EDIPI"."""
    upn = upn_of(cert)
    if upn and upn.lower().endswith("@mil") and upn[:-4].isdigit() and len(upn) == 14:
        return upn[:-4]
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if cns:
        last = str(cns[0].value).rsplit(".", 1)[-1]
        if last.isdigit() and len(last) == 10:
            return last
    return None


def is_identity(cert):
    """The identity (PIV Authentication) certificate: UPN, clientAuth, no emailProtection."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku or ExtendedKeyUsageOID.EMAIL_PROTECTION in eku:
        return False
    return upn_of(cert) is not None


def cert_object(cert):
    der = cert.public_bytes(serialization.Encoding.DER)
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": "%X" % cert.serial_number,
        "edipi": edipi_of(cert),
        "not_before": iso(not_before(cert)),
        "not_after": iso(not_after(cert)),
        "sha256": hashlib.sha256(der).hexdigest().upper(),
    }


class Checker:
    """The portal's certificate checks, in the order docs/portal-api.md gives."""

    def __init__(self, trust_file, crl_file, ocsp_url):
        with open(trust_file, "rb") as f:
            pem = f.read()
        end = b"-----END CERTIFICATE-----"
        self.trusted = [x509.load_pem_x509_certificate(block + end)
                        for block in pem.split(end) if b"-----BEGIN" in block]
        self.crl_file, self.ocsp_url = crl_file, ocsp_url

    def issuer_of(self, cert):
        for ca in self.trusted:
            if ca.subject == cert.issuer and signed_by(cert, ca):
                return ca
        return None

    def check(self, der):
        """Returns (cert, issuer) for an acceptable identity certificate, else raises."""
        if not der:
            raise forbidden("no_client_certificate",
                            "No certificate came with the connection: the card's certificate "
                            "was not offered.")
        cert = x509.load_der_x509_certificate(der)
        extra = {"certificate": cert_object(cert)}
        issuer = self.issuer_of(cert)
        if issuer is None:
            raise forbidden("untrusted_issuer",
                            "The certificate's issuer is not accepted for CAC registration.",
                            issuer=cert.issuer.rfc4514_string(), **extra)
        t = now()
        if t < not_before(cert):
            raise forbidden("certificate_not_yet_valid",
                            "The certificate is not valid until %s." % iso(not_before(cert)),
                            not_before=iso(not_before(cert)), **extra)
        if t > not_after(cert):
            raise forbidden("certificate_expired",
                            "The certificate expired on %s." % iso(not_after(cert))[:10],
                            not_after=iso(not_after(cert)), **extra)
        self.check_revocation(cert, issuer, extra)
        if not is_identity(cert):
            raise forbidden("not_identity_certificate",
                            "This is not the card's identity certificate (the one with your "
                            "name used to log in); an email certificate was chosen.", **extra)
        return cert, issuer

    def check_revocation(self, cert, issuer, extra):
        if not self.crl_file and not self.ocsp_url:
            return
        checked = False
        if self.crl_file:
            with open(self.crl_file, "rb") as f:
                data = f.read()
            crl = (x509.load_pem_x509_crl(data) if data.startswith(b"-----")
                   else x509.load_der_x509_crl(data))
            fresh = crl.next_update is None or crl.next_update.replace(
                tzinfo=dt.timezone.utc) > now()
            if crl.issuer == issuer.subject and crl.is_signature_valid(issuer.public_key()) \
                    and fresh:
                checked = True
                entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
                if entry is not None:
                    raise forbidden("certificate_revoked", "The certificate has been revoked.",
                                    revoked_at=iso(entry.revocation_date), source="crl", **extra)
        if self.ocsp_url:
            status = self.ask_ocsp(cert, issuer)
            if status is not None:
                checked = True
                if status[0] == ocsp.OCSPCertStatus.REVOKED:
                    raise forbidden("certificate_revoked", "The certificate has been revoked.",
                                    revoked_at=iso(status[1]), source="ocsp", **extra)
        if not checked:
            raise Refusal(503, "revocation_unavailable",
                          "The certificate's revocation status cannot be checked now; "
                          "try again later.")

    def ask_ocsp(self, cert, issuer):
        """(status, revoked_at) from a verified OCSP answer, or None."""
        req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
        http_req = urllib.request.Request(
            self.ocsp_url, data=req.public_bytes(serialization.Encoding.DER),
            headers={"Content-Type": "application/ocsp-request"})
        try:
            with urllib.request.urlopen(http_req, timeout=3) as resp:
                answer = ocsp.load_der_ocsp_response(resp.read(65536))
        except (OSError, ValueError):
            return None
        if answer.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            return None
        signer = issuer
        for c in answer.certificates:
            try:
                eku = c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            except x509.ExtensionNotFound:
                continue
            if ExtendedKeyUsageOID.OCSP_SIGNING in eku and signed_by(c, issuer):
                signer = c
        try:
            signer.public_key().verify(answer.signature, answer.tbs_response_bytes,
                                       padding.PKCS1v15(), answer.signature_hash_algorithm)
        except (InvalidSignature, TypeError):
            return None
        if answer.serial_number != cert.serial_number:
            return None
        if answer.certificate_status == ocsp.OCSPCertStatus.UNKNOWN:
            return None
        return answer.certificate_status, answer.revocation_time


# ---- accounts ----

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    username TEXT PRIMARY KEY, display_name TEXT NOT NULL, edipi TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('full', 'email_only')),
    password_hash TEXT NOT NULL, password_expires TEXT NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0, permitted INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS registrations (
    username TEXT PRIMARY KEY REFERENCES accounts(username), sha256 TEXT NOT NULL,
    certificate TEXT NOT NULL, registered_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY, username TEXT NOT NULL, last_used REAL NOT NULL,
    ended INTEGER NOT NULL DEFAULT 0);
"""


class Store:
    """Accounts, registrations and sessions in SQLite; one lock, one connection."""

    def __init__(self, path, fixture):
        new = not os.path.exists(path)
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.lock = threading.Lock()
        self.db.executescript(SCHEMA)
        with open(fixture) as f:
            accounts = json.load(f)["accounts"]
        self.fixture_passwords = {a["username"]: a["password"] for a in accounts}
        if new:
            self.seed(accounts)

    def seed(self, accounts):
        for a in accounts:
            expires = now() + dt.timedelta(days=a["password_expires_in_days"])
            self.db.execute(
                "INSERT INTO accounts (username, display_name, edipi, type, password_hash,"
                " password_expires, permitted) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (a["username"], a["display_name"], a["edipi"], a["type"],
                 UNHASHED, iso(expires), int(a.get("permitted", True))))

    def password_hash(self, account):
        """The account's scrypt hash; a fixture account's is made at its first use."""
        if account["password_hash"] != UNHASHED:
            return account["password_hash"]
        password = self.fixture_passwords.get(account["username"])
        if password is None:  # a database seeded from another fixture: nothing matches
            return DUMMY_HASH
        stored = hash_password(password)
        self.db.execute("UPDATE accounts SET password_hash = ? WHERE username = ?",
                        (stored, account["username"]))
        return stored

    def q(self, sql, *args):
        return self.db.execute(sql, args).fetchall()

    def account(self, username):
        rows = self.q("SELECT * FROM accounts WHERE username = ?", username)
        return rows[0] if rows else None

    def account_by_edipi(self, edipi):
        rows = self.q("SELECT * FROM accounts WHERE edipi = ? ORDER BY type = 'full' DESC", edipi)
        return rows[0] if rows else None

    def registration(self, username):
        rows = self.q("SELECT * FROM registrations WHERE username = ?", username)
        return rows[0] if rows else None

    def register(self, username, cert):
        """Registers cert to the account: (result, replaced certificate or None, when)."""
        obj = cert_object(cert)
        old = self.registration(username)
        when = iso(now())
        if old and old["sha256"] == obj["sha256"]:
            return "unchanged", None, old["registered_at"]
        self.db.execute("INSERT OR REPLACE INTO registrations VALUES (?, ?, ?, ?)",
                        (username, obj["sha256"], json.dumps(obj), when))
        if old:
            return "replaced", json.loads(old["certificate"]), when
        return "registered", None, when

    def other_owner(self, username, cert):
        sha = cert_object(cert)["sha256"]
        rows = self.q("SELECT username FROM registrations WHERE sha256 = ? AND username != ?",
                      sha, username)
        return rows[0]["username"] if rows else None


def account_object(row):
    return {"username": row["username"], "display_name": row["display_name"],
            "edipi": row["edipi"], "type": row["type"],
            "password_expires": row["password_expires"]}


# ---- faults ----

class Fault:
    def __init__(self, spec):
        self.kind, self.value = None, None
        if spec:
            self.kind, _, self.value = spec.partition("=")
            known = {"delay", "close", "status", "malformed", "truncated", "huge",
                     "content-type", "cert", "hostile", "nocertreq"}
            if self.kind not in known:
                raise SystemExit("portal: unknown fault %r" % spec)
            if self.kind == "hostile" and self.value not in ("", "errors"):
                raise SystemExit("portal: --fault hostile or hostile=errors")


# The hostile fault: what it puts around every string a client shows. A screen
# clear, a window title (OSC 0), a clipboard write (OSC 52, "hostile portal" in
# base64), a red colour by the 8-bit CSI (U+009B), bidi controls (RLO, LRI)
# and a newline that starts a fake line.
HOSTILE_HEAD = "\x1b[2J\x1b]0;hostile portal\x07\x1b]52;c;aG9zdGlsZSBwb3J0YWw=\x07"
HOSTILE_TAIL = "\u009b31m\u202e\u2066\nhostile line"
# The fields a client shows a person; the others (session, type, result, edipi,
# sha256, error, api...) keep the values the contract gives them.
HOSTILE_FIELDS = {"username", "display_name", "message", "subject", "issuer", "serial",
                  "not_before", "not_after", "password_expires", "registered_at", "expires_at",
                  "revoked_at", "unlock"}


def hostile_strings(obj):
    """obj with HOSTILE_HEAD and HOSTILE_TAIL around each shown string, at any depth."""
    if isinstance(obj, dict):
        return {k: HOSTILE_HEAD + v + HOSTILE_TAIL if k in HOSTILE_FIELDS and isinstance(v, str)
                else hostile_strings(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [hostile_strings(v) for v in obj]
    return obj


# ---- HTTP ----

def unique_keys(pairs):
    """A JSON object whose keys are all different (a key twice is not JSON we take)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("a key twice")
    return obj


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle and the
    # client's delayed ACK add 40 ms to every answer on a kept connection.
    disable_nagle_algorithm = True
    server_version = "cacreg-reference-portal/1"
    sys_version = ""

    def log_message(self, fmt, *args):  # never bodies, never headers
        self.server.log("%s %s" % (self.client_address[0], fmt % args))

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    ROUTES = {
        "": {"GET": "root"},
        "session": {"POST": "login", "DELETE": "logout"},
        "password-reset": {"POST": "password_reset"},
        "cac-login": {"POST": "cac_login"},
        "registration": {"GET": "get_registration", "DELETE": "clear_registration",
                         "POST": "register"},
    }

    def dispatch(self, method):
        fault = self.server.fault
        name = None
        try:
            path = self.path.split("?", 1)[0]
            if not path.startswith(API):
                raise Refusal(404, "not_found", "No such path.")
            methods = self.ROUTES.get(path[len(API):].rstrip("/"))
            if methods is None:
                raise Refusal(404, "not_found", "No such path.")
            if method not in methods:
                raise Refusal(405, "method_not_allowed", "That method is not allowed here.")
            name = methods[method]
            body = self.read_body()
            with self.server.store.lock:
                status, answer = getattr(self, name)(body)
        except Refusal as r:
            status, answer = r.status, dict(error=r.error, message=r.message, **r.extra)
            if (fault.kind == "hostile" and fault.value != "errors" and name) or \
                    (fault.kind == "nocertreq" and name == "cac_login"):
                with self.server.store.lock:
                    status, answer = self.hostile_success(name)
        if fault.kind == "hostile":
            answer = hostile_strings(answer)
        self.answer(status, answer)

    def hostile_success(self, name):
        """The endpoint's success, for the hostile fault, whatever the request was."""
        der = self.client_der()
        if der:
            cert = x509.load_der_x509_certificate(der)
        else:
            with open(os.path.join(self.server.pki, "cards", "valid", "id.pem"), "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
        store = self.server.store
        row = store.account_by_edipi(edipi_of(cert)) or store.account("jane.doe")
        account = account_object(row) if row else {
            "username": "jane.doe", "display_name": "DOE, JANE Q", "edipi": "1000000001",
            "type": "full", "password_expires": iso(now() + dt.timedelta(days=30))}
        token, expires = self.new_session(account["username"])
        cert, when = cert_object(cert), iso(now())
        password_expires = iso(now() + dt.timedelta(days=PASSWORD_EXTENSION_DAYS))
        return {
            "root": lambda: self.root(None),
            "login": lambda: (200, {"session": token, "expires_at": expires, "account": account}),
            "logout": lambda: (204, None),
            "password_reset": lambda: (202, {"status": "sent", "message": "If the account "
                                             "exists, instructions were sent to its email."}),
            "cac_login": lambda: (200, {
                "session": token, "expires_at": expires,
                "account": dict(account, password_expires=password_expires),
                "registration": {"result": "registered", "certificate": cert, "replaced": None},
                "password_expires": password_expires,
                "password_extended_days": PASSWORD_EXTENSION_DAYS}),
            "get_registration": lambda: (200, {"account": account, "registered": True,
                                               "certificate": cert, "registered_at": when}),
            "clear_registration": lambda: (200, {"registered": False, "cleared": cert}),
            "register": lambda: (200, {"result": "registered", "certificate": cert,
                                       "replaced": None, "registered_at": when}),
        }[name]()

    def read_body(self):
        length = self.headers.get("Content-Length")
        if length is None or length.strip() == "0":
            return {}
        try:
            n = int(length)
        except ValueError:
            raise Refusal(400, "bad_request", "Content-Length is not a number.")
        if n > MAX_BODY:
            # Read a modest excess away so the client sees the answer; hang up on more.
            if n <= 1024 * 1024:
                self.rfile.read(n)
            else:
                self.close_connection = True
            raise Refusal(413, "too_large", "The request body is over 8 KiB.")
        raw = self.rfile.read(n)
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise Refusal(415, "unsupported_media_type", "Send the body as application/json.")
        try:
            body = json.loads(raw, object_pairs_hook=unique_keys)
        except (ValueError, UnicodeDecodeError):
            raise Refusal(400, "bad_request", "The body is not JSON.")
        if not isinstance(body, dict):
            raise Refusal(400, "bad_request", "The body is not a JSON object.")
        return body

    def answer(self, status, obj):
        fault = self.server.fault
        body = b"" if obj is None else json.dumps(obj).encode()
        ctype = "application/json; charset=utf-8"
        if fault.kind == "delay":
            time.sleep(int(fault.value) / 1000)
        elif fault.kind == "status":
            status, ctype = int(fault.value), "text/html"
            body = b"<html><body><h1>%d Proxy Error</h1></body></html>" % status
        elif fault.kind == "malformed":
            status, body = 200, b'{"session": "abc", "account": {"username": jane.doe'
        elif fault.kind == "huge":
            status, body = 200, b'{"pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
        elif fault.kind == "content-type":
            ctype = "text/html"
        self.send_response(status)
        if body or fault.kind in ("truncated", "close"):
            self.send_header("Content-Type", ctype)
        if status == 204:
            body = b""
        cut = fault.kind in ("truncated", "close")
        if status != 204:
            self.send_header("Content-Length", str(len(body) + (100 if fault.kind == "truncated"
                                                               else 0)))
        if cut:
            self.send_header("Connection", "close")
        self.end_headers()
        if fault.kind == "close":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)
        self.wfile.flush()
        if cut:
            self.close_connection = True

    # ---- helpers ----

    def field(self, body, name):
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise Refusal(400, "bad_request", "The field %r is missing or not a string." % name,
                          field=name)
        if len(value) > MAX_FIELD:
            raise Refusal(400, "bad_request", "The field %r is too long." % name, field=name)
        return value

    def new_session(self, username):
        token = secrets.token_urlsafe(32)
        self.server.store.db.execute(
            "INSERT INTO sessions (token_hash, username, last_used) VALUES (?, ?, ?)",
            (hashlib.sha256(token.encode()).hexdigest(), username, time.time()))
        expires = now() + dt.timedelta(seconds=self.server.session_ttl)
        return token, iso(expires)

    def session_account(self):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise Refusal(401, "no_session", "Log in first.")
        token_hash = hashlib.sha256(auth[7:].strip().encode()).hexdigest()
        store = self.server.store
        rows = store.q("SELECT * FROM sessions WHERE token_hash = ?", token_hash)
        if not rows:
            raise Refusal(401, "no_session", "That session is not known; log in again.")
        s = rows[0]
        if s["ended"] or time.time() - s["last_used"] > self.server.session_ttl:
            store.db.execute("UPDATE sessions SET ended = 1 WHERE token_hash = ?", (token_hash,))
            raise Refusal(401, "session_expired", "The session has ended; log in again.")
        store.db.execute("UPDATE sessions SET last_used = ? WHERE token_hash = ?",
                         (time.time(), token_hash))
        return store.account(s["username"]), token_hash

    def password_ok(self, account, password):
        """Checks the password, counting failures toward the lock; raises on failure."""
        store = self.server.store
        if account["failed_attempts"] >= LOCK_AFTER:
            raise Refusal(423, "account_locked", "The account is locked after too many wrong "
                          "passwords.", unlock="Ask the help desk, or log in with your CAC.")
        if check_password(password, store.password_hash(account)):
            store.db.execute("UPDATE accounts SET failed_attempts = 0 WHERE username = ?",
                             (account["username"],))
            return
        failed = account["failed_attempts"] + 1
        store.db.execute("UPDATE accounts SET failed_attempts = ? WHERE username = ?",
                         (failed, account["username"]))
        if failed >= LOCK_AFTER:
            raise Refusal(423, "account_locked", "The account is locked after too many wrong "
                          "passwords.", unlock="Ask the help desk, or log in with your CAC.")
        raise Refusal(401, "invalid_credentials", "The username or password is wrong.",
                      attempts_left=LOCK_AFTER - failed)

    def client_der(self):
        return self.connection.getpeercert(binary_form=True)

    # ---- endpoints ----

    def root(self, body):
        return 200, {"api": "cacreg-portal", "version": 1, "server_time": iso(now()),
                     "session_ttl": self.server.session_ttl,
                     "password_extension_days": PASSWORD_EXTENSION_DAYS}

    def login(self, body):
        username, password = self.field(body, "username"), self.field(body, "password")
        account = self.server.store.account(username)
        if account is None:
            check_password(password, DUMMY_HASH)
            raise Refusal(401, "invalid_credentials", "The username or password is wrong.",
                          attempts_left=LOCK_AFTER)
        self.password_ok(account, password)
        if parse_iso(account["password_expires"]) < now():
            raise Refusal(401, "password_expired", "The password has expired.",
                          reset_path=API + "password-reset")
        token, expires = self.new_session(username)
        return 200, {"session": token, "expires_at": expires, "account": account_object(account)}

    def logout(self, body):
        _, token_hash = self.session_account()
        self.server.store.db.execute("UPDATE sessions SET ended = 1 WHERE token_hash = ?",
                                     (token_hash,))
        return 204, None

    def password_reset(self, body):
        username = self.field(body, "username")
        self.server.log("password reset requested for %r" % username)
        return 202, {"status": "sent", "message": "If %s is an account, instructions to set a "
                     "new password were sent to its email address on file." % username}

    def cac_login(self, body):
        store = self.server.store
        cert, _ = self.server.checker.check(self.client_der())
        extra = {"certificate": cert_object(cert)}
        edipi = edipi_of(cert)
        account = store.account_by_edipi(edipi)
        if account is None:
            raise forbidden("no_account", "No account has this card's EDIPI %s." % edipi,
                            edipi=edipi, **extra)
        if not account["permitted"]:
            raise forbidden("account_not_permitted",
                            "This account may not log in with a CAC.", **extra)
        if store.other_owner(account["username"], cert):
            raise forbidden("registered_to_other_account",
                            "This certificate is registered to a different account.", **extra)
        result, replaced, _ = store.register(account["username"], cert)
        expires = iso(now() + dt.timedelta(days=PASSWORD_EXTENSION_DAYS))
        store.db.execute("UPDATE accounts SET password_expires = ?, failed_attempts = 0"
                         " WHERE username = ?", (expires, account["username"]))
        token, session_expires = self.new_session(account["username"])
        account = store.account(account["username"])
        return 200, {"session": token, "expires_at": session_expires,
                     "account": account_object(account),
                     "registration": {"result": result, "certificate": cert_object(cert),
                                      "replaced": replaced},
                     "password_expires": expires,
                     "password_extended_days": PASSWORD_EXTENSION_DAYS}

    def get_registration(self, body):
        account, _ = self.session_account()
        reg = self.server.store.registration(account["username"])
        return 200, {"account": account_object(account), "registered": reg is not None,
                     "certificate": json.loads(reg["certificate"]) if reg else None,
                     "registered_at": reg["registered_at"] if reg else None}

    def clear_registration(self, body):
        account, _ = self.session_account()
        store = self.server.store
        reg = store.registration(account["username"])
        store.db.execute("DELETE FROM registrations WHERE username = ?", (account["username"],))
        return 200, {"registered": False,
                     "cleared": json.loads(reg["certificate"]) if reg else None}

    def register(self, body):
        account, _ = self.session_account()
        store = self.server.store
        password = self.field(body, "password")
        cert, _ = self.server.checker.check(self.client_der())
        extra = {"certificate": cert_object(cert)}
        if not account["permitted"]:
            raise forbidden("account_not_permitted",
                            "This account may not register a CAC.", **extra)
        if store.other_owner(account["username"], cert):
            raise forbidden("registered_to_other_account",
                            "This certificate is registered to a different account.", **extra)
        if edipi_of(cert) != account["edipi"]:
            raise forbidden("edipi_mismatch", "This card belongs to someone else (EDIPI %s)."
                            % edipi_of(cert), edipi=edipi_of(cert), **extra)
        self.password_ok(account, password)
        result, replaced, when = store.register(account["username"], cert)
        return 200, {"result": result, "certificate": cert_object(cert), "replaced": replaced,
                     "registered_at": when}


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, args):
        super().__init__(("127.0.0.1", args.port), Handler)
        self.fault = Fault(args.fault)
        self.pki = args.pki
        self.session_ttl = args.session_ttl
        self.store = Store(os.path.join(args.data, "portal.db"), args.accounts)
        self.checker = Checker(args.trust or os.path.join(args.pki, "ca-bundle.pem"), args.crl,
                               args.ocsp)
        self.log_file = open(os.path.join(args.data, "portal.log"), "a", buffering=1)
        self.log_lock = threading.Lock()
        self.tls = self.tls_context(args)

    def tls_context(self, args):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        certs = {None: "server.pem", "expired": "server-expired.pem",
                 "wrong-host": "server-wrong-host.pem", "other-ca": "server-other-ca.pem"}
        which = self.fault.value if self.fault.kind == "cert" else None
        if which not in certs:
            raise SystemExit("portal: --fault cert= takes expired, wrong-host or other-ca")
        key = "server.key" if which is None else "server-bad.key"
        ctx.load_cert_chain(os.path.join(args.pki, certs[which]), os.path.join(args.pki, key))
        # nocertreq: a portal that never asks for the card's certificate (and logs people
        # in anyway, as an impostor would): a client must not take that for a CAC login.
        ctx.verify_mode = ssl.CERT_NONE if self.fault.kind == "nocertreq" else ssl.CERT_OPTIONAL
        ctx.load_verify_locations(args.tls_ca or os.path.join(args.pki, "tls-accept.pem"))
        ctx.verify_flags |= X509_V_FLAG_NO_CHECK_TIME
        return ctx

    def log(self, line):
        with self.log_lock:
            self.log_file.write("%s %s\n" % (iso(now()), line))

    def finish_request(self, request, client_address):
        """The TLS handshake happens here, in the connection's own thread."""
        request.settimeout(30)
        try:
            tls = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.log("%s TLS handshake failed: %s" % (client_address[0], e))
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except (ssl.SSLError, OSError) as e:
            self.log("%s connection ended: %s" % (client_address[0], e))
        finally:
            tls.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="directory for portal.db, portal.log, port")
    p.add_argument("--pki", required=True, help="the bench's PKI directory")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--accounts", default=os.path.join(os.path.dirname(__file__),
                                                      "accounts.json"))
    p.add_argument("--trust", help="issuers accepted for CAC registration (PEM bundle)")
    p.add_argument("--tls-ca", help="issuers accepted in the TLS handshake (PEM bundle)")
    p.add_argument("--crl")
    p.add_argument("--ocsp")
    p.add_argument("--session-ttl", type=int, default=900)
    p.add_argument("--fault")
    args = p.parse_args()
    server = Server(args)
    port = server.server_address[1]
    with open(os.path.join(args.data, "port.tmp"), "w") as f:
        f.write("%d\n" % port)
    os.replace(os.path.join(args.data, "port.tmp"), os.path.join(args.data, "port"))
    server.log("listening on 127.0.0.1:%d fault=%s" % (port, args.fault))
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # sqlite commits each write
    main()
