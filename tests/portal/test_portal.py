#!/usr/bin/python3
"""The reference portal against docs/portal-api.md, over real HTTPS.

Every endpoint and every error reason, with the personas' certificates as
software keys (the same certificates the bench's cards carry; the card path
itself is tests/portal/test_card_curl.sh). Each test class starts its own
portal (tests/portal/portal) and stops it by PID.
"""
import datetime as dt
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PORTAL = os.path.join(HERE, "portal")
BUILD = os.environ.get("CACREG_BUILD", os.path.join(HERE, "..", "..", "build"))
PKI = os.environ.get("CACREG_PKI", os.path.join(BUILD, "pki"))
CA = os.path.join(PKI, "ca-bundle.pem")
JANE = ("jane.doe", "Correct-Horse-1")


def card(persona, kind="id"):
    d = os.path.join(PKI, "cards", persona)
    return os.path.join(d, kind + ".pem"), os.path.join(d, kind + ".key")


def parse_time(s):
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


class Portal:
    """One reference portal of our own, started and stopped by PID."""

    def __init__(self, *options):
        self.dir = tempfile.mkdtemp(prefix="cacreg-portal-")
        out = subprocess.run([PORTAL, "start", self.dir, *options], check=True,
                             capture_output=True, text=True)
        self.port = int(out.stdout.strip())

    def stop(self):
        subprocess.run([PORTAL, "stop", self.dir], check=True)
        shutil.rmtree(self.dir)

    def conn(self, cert=None, host="localhost", cafile=CA):
        ctx = ssl.create_default_context(cafile=cafile)
        if cert:
            ctx.load_cert_chain(*cert)
        return http.client.HTTPSConnection(host, self.port, context=ctx, timeout=10)

    def call(self, method, path, body=None, token=None, cert=None, conn=None, headers=None,
             raw=None):
        """One request; returns (status, parsed JSON or None, response headers)."""
        c = conn or self.conn(cert)
        h = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        if token:
            h["Authorization"] = "Bearer " + token
        c.request(method, "/api/v1/" + path, body=data, headers=h)
        r = c.getresponse()
        payload = r.read()
        if conn is None:
            c.close()
        parsed = json.loads(payload) if payload else None
        return r.status, parsed, r


class PortalTest(unittest.TestCase):
    options = ("--crl", os.path.join(PKI, "inter.crl"))

    @classmethod
    def setUpClass(cls):
        cls.portal = Portal(*cls.options)

    @classmethod
    def tearDownClass(cls):
        cls.portal.stop()

    def call(self, *args, **kwargs):
        return self.portal.call(*args, **kwargs)

    def login(self, user=JANE):
        status, body, _ = self.call("POST", "session", {"username": user[0], "password": user[1]})
        self.assertEqual(status, 200, body)
        return body["session"]

    def assertError(self, answer, status, error):
        got_status, body, resp = answer
        self.assertEqual((got_status, body and body.get("error")), (status, error), body)
        self.assertTrue(body["message"])
        self.assertTrue(resp.getheader("Content-Type").startswith("application/json"))
        return body


class TestRootAndConventions(PortalTest):
    def test_root(self):
        status, body, resp = self.call("GET", "")
        self.assertEqual(status, 200)
        self.assertEqual(body["api"], "cacreg-portal")
        self.assertEqual(body["version"], 1)
        self.assertEqual(body["password_extension_days"], 150)
        self.assertTrue(resp.getheader("Date"))
        skew = abs((parse_time(body["server_time"]) - dt.datetime.now(dt.timezone.utc))
                   .total_seconds())
        self.assertLess(skew, 60)

    def test_not_found_and_method(self):
        self.assertError(self.call("GET", "nothing-here"), 404, "not_found")
        self.assertError(self.call("PUT", "session", {}), 405, "method_not_allowed")

    def test_bad_bodies(self):
        self.assertError(self.call("POST", "session", raw=b"{not json",
                                   headers={"Content-Type": "application/json"}),
                         400, "bad_request")
        self.assertError(self.call("POST", "session", raw=b"[1, 2]",
                                   headers={"Content-Type": "application/json"}),
                         400, "bad_request")
        body = self.assertError(self.call("POST", "session", {"username": "jane.doe"}),
                                400, "bad_request")
        self.assertEqual(body["field"], "password")
        self.assertError(self.call("POST", "session", {"username": "x" * 2000, "password": "p"}),
                         400, "bad_request")
        self.assertError(self.call("POST", "session", raw=b'{"username": "a"}',
                                   headers={"Content-Type": "text/plain"}),
                         415, "unsupported_media_type")
        self.assertError(self.call("POST", "session", raw=b"x" * 10240,
                                   headers={"Content-Type": "application/json"}),
                         413, "too_large")
        self.assertError(self.call("POST", "session",
                                   raw=b'{"username": "jane.doe", "username": "x", "password": "p"}',
                                   headers={"Content-Type": "application/json"}),
                         400, "bad_request")
        self.assertError(self.call("PATCH", "session", {}), 405, "method_not_allowed")

    def test_keep_alive(self):
        conn = self.portal.conn()
        for _ in range(3):
            status, _, resp = self.call("GET", "", conn=conn)
            self.assertEqual(status, 200)
            self.assertNotEqual(resp.getheader("Connection"), "close")
        conn.close()

    def test_tls_floor_and_verification(self):
        ctx = ssl.create_default_context(cafile=CA)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        with self.assertRaises(ssl.SSLError):
            http.client.HTTPSConnection("localhost", self.portal.port, context=ctx,
                                        timeout=5).request("GET", "/api/v1/")


class TestUnknownIssuer(PortalTest):
    """A client certificate from a CA the TLS layer does not know at all ends the
    handshake with the alert unknown_ca (one it knows but does not accept for
    registration is a 403 untrusted_issuer, above)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="cacreg-unknown-ca-")
        key, ca, ckey, csr, cert = (os.path.join(cls.tmp, n) for n in
                                    ("ca.key", "ca.pem", "id.key", "id.csr", "id.pem"))
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
            "-subj", "/CN=Nobody Knows This CA", "-days", "2", "-out", ca)
        run("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", ckey,
            "-subj", "/CN=DOE.JANE.Q.1000000001", "-out", csr)
        run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", key,
            "-CAcreateserial", "-days", "2", "-out", cert)
        cls.cert = (cert, ckey)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.tmp)

    def test_unknown_ca_alert(self):
        ctx = ssl.create_default_context(cafile=CA)
        ctx.load_cert_chain(*self.cert)
        # The alert is read, not raced by a request: with TLS 1.3 the server's
        # verdict on the client certificate arrives after the client's handshake
        # is over, and data sent into a closed connection can get a reset instead.
        with socket.create_connection(("127.0.0.1", self.portal.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                with self.assertRaises(ssl.SSLError) as e:
                    tls.recv(1)
        self.assertIn("UNKNOWN_CA", str(e.exception).upper())


class TestPasswordLogin(PortalTest):
    def test_login_logout(self):
        status, body, _ = self.call("POST", "session", {"username": "jane.doe",
                                                        "password": "Correct-Horse-1"})
        self.assertEqual(status, 200)
        self.assertEqual(body["account"]["username"], "jane.doe")
        self.assertEqual(body["account"]["type"], "full")
        self.assertEqual(body["account"]["edipi"], "1000000001")
        token = body["session"]
        self.assertEqual(self.call("GET", "registration", token=token)[0], 200)
        status, payload, _ = self.call("DELETE", "session", token=token)
        self.assertEqual((status, payload), (204, None))
        self.assertError(self.call("GET", "registration", token=token), 401, "session_expired")

    def test_wrong_password_then_lock(self):
        for left in (4, 3, 2, 1):
            body = self.assertError(self.call("POST", "session", {"username": "john.smith",
                                                                  "password": "nope"}),
                                    401, "invalid_credentials")
            self.assertEqual(body["attempts_left"], left)
        body = self.assertError(self.call("POST", "session", {"username": "john.smith",
                                                              "password": "nope"}),
                                423, "account_locked")
        self.assertIn("CAC", body["unlock"])
        # Locked: even the right password is refused.
        self.assertError(self.call("POST", "session", {"username": "john.smith",
                                                       "password": "Smith-Pass-7"}),
                         423, "account_locked")

    def test_unknown_user_looks_like_wrong_password(self):
        body = self.assertError(self.call("POST", "session", {"username": "no.body",
                                                              "password": "x"}),
                                401, "invalid_credentials")
        self.assertEqual(body["attempts_left"], 5)

    def test_password_expired(self):
        body = self.assertError(self.call("POST", "session", {"username": "old.timer",
                                                              "password": "Stale-Pass-5"}),
                                401, "password_expired")
        self.assertEqual(body["reset_path"], "/api/v1/password-reset")

    def test_email_only_account(self):
        status, body, _ = self.call("POST", "session", {"username": "linda.loe",
                                                        "password": "Email-Only-3"})
        self.assertEqual(status, 200)
        self.assertEqual(body["account"]["type"], "email_only")

    def test_sessions(self):
        self.assertError(self.call("GET", "registration"), 401, "no_session")
        self.assertError(self.call("GET", "registration", token="made-up"), 401, "no_session")
        self.assertError(self.call("DELETE", "session"), 401, "no_session")

    def test_password_reset(self):
        for user in ("jane.doe", "no.such.user"):
            status, body, _ = self.call("POST", "password-reset", {"username": user})
            self.assertEqual(status, 202)
            self.assertEqual(body["status"], "sent")
        self.assertError(self.call("POST", "password-reset", {}), 400, "bad_request")


class TestSessionExpiry(PortalTest):
    options = ("--session-ttl", "1")

    def test_idle_session_expires(self):
        token = self.login()
        time.sleep(2.2)
        self.assertError(self.call("GET", "registration", token=token), 401, "session_expired")


class TestCacLogin(PortalTest):
    def test_register_replace_unchanged_and_150_days(self):
        token = self.login()
        before = self.call("GET", "registration", token=token)[1]
        self.assertFalse(before["registered"])
        self.assertIsNone(before["certificate"])
        old_expiry = parse_time(before["account"]["password_expires"])

        status, body, _ = self.call("POST", "cac-login", cert=card("valid"))
        self.assertEqual(status, 200, body)
        self.assertEqual(body["registration"]["result"], "registered")
        self.assertIsNone(body["registration"]["replaced"])
        self.assertEqual(body["registration"]["certificate"]["edipi"], "1000000001")
        new_expiry = parse_time(body["password_expires"])
        want = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=150)
        self.assertLess(abs((new_expiry - want).total_seconds()), 120)
        self.assertGreater(new_expiry, old_expiry)
        self.assertEqual(body["password_extended_days"], 150)
        self.assertEqual(body["account"]["password_expires"], body["password_expires"])
        first_serial = body["registration"]["certificate"]["serial"]

        status, body, _ = self.call("POST", "cac-login", cert=card("valid"))
        self.assertEqual(body["registration"]["result"], "unchanged")

        status, body, _ = self.call("POST", "cac-login", cert=card("valid2"))
        self.assertEqual(status, 200)
        self.assertEqual(body["registration"]["result"], "replaced")
        self.assertEqual(body["registration"]["replaced"]["serial"], first_serial)

        # The CAC login's session works, and shows the newer card.
        reg = self.call("GET", "registration", token=body["session"])[1]
        self.assertTrue(reg["registered"])
        self.assertEqual(reg["certificate"]["sha256"],
                         body["registration"]["certificate"]["sha256"])
        self.assertTrue(reg["registered_at"])

    def test_email_only_account_registers_by_cac(self):
        status, body, _ = self.call("POST", "cac-login", cert=card("emailonly"))
        self.assertEqual(status, 200, body)
        self.assertEqual(body["account"]["type"], "email_only")

    def test_403_reasons(self):
        cases = [
            (None, "no_client_certificate"),
            (card("untrusted"), "untrusted_issuer"),
            ((os.path.join(PKI, "future.pem"), os.path.join(PKI, "future.key")),
             "certificate_not_yet_valid"),
            (card("expired"), "certificate_expired"),
            (card("revoked"), "certificate_revoked"),
            (card("valid", "sig"), "not_identity_certificate"),
            (card("noaccount"), "no_account"),
            (card("suspended"), "account_not_permitted"),
        ]
        for cert, reason in cases:
            with self.subTest(reason=reason):
                body = self.assertError(self.call("POST", "cac-login", cert=cert), 403, reason)
                if cert:
                    self.assertIn("certificate", body)
        body = self.assertError(self.call("POST", "cac-login", cert=card("revoked")), 403,
                                "certificate_revoked")
        self.assertEqual(body["source"], "crl")
        body = self.assertError(self.call("POST", "cac-login", cert=card("expired")), 403,
                                "certificate_expired")
        self.assertEqual(body["not_after"], "2024-01-01T00:00:00Z")
        body = self.assertError(self.call("POST", "cac-login", cert=card("noaccount")), 403,
                                "no_account")
        self.assertEqual(body["edipi"], "1000000006")

    def test_odd_and_hostile_personas(self):
        """Every persona with an ID certificate of the test DoD CA reaches its own account
        (here with the software key; nokey's card lacks it, ec's OpenSC cannot use it)."""
        for persona, username in [
                ("nokey", "karen.nokey"), ("ec", "ellen.curve"), ("longlabel", "maria.castaneda"),
                ("cjk", "taro.yamada"), ("escape", "eve.evil"), ("bidi", "anna.harris"),
                ("longcn", "hubert.wolfe"), ("combining", "renee.belanger"),
                ("emoji", "pat.smiley"), ("upnonly", "jane.upnonly"),
                ("mismatch", "matt.mismatch")]:  # the portal reads the UPN's EDIPI first
            with self.subTest(persona=persona):
                status, body, _ = self.call("POST", "cac-login", cert=card(persona))
                self.assertEqual(status, 200, body)
                self.assertEqual(body["account"]["username"], username)

    def test_cac_login_unlocks(self):
        for _ in range(5):
            self.call("POST", "session", {"username": "richard.roe", "password": "nope"})
        self.assertError(self.call("POST", "session", {"username": "richard.roe",
                                                       "password": "Roe-Pass-2026"}),
                         423, "account_locked")
        # richard's card is expired; the lock stays until a good CAC login.
        self.assertError(self.call("POST", "cac-login", cert=card("expired")), 403,
                         "certificate_expired")
        self.assertError(self.call("POST", "session", {"username": "richard.roe",
                                                       "password": "Roe-Pass-2026"}),
                         423, "account_locked")


class TestRegisterFromPasswordSession(PortalTest):
    def test_register_clear_and_again(self):
        token = self.login()
        conn = self.portal.conn(card("valid"))
        status, body, _ = self.call("POST", "registration", {"password": JANE[1]}, token=token,
                                    conn=conn)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"], "registered")
        status, body, _ = self.call("POST", "registration", {"password": JANE[1]}, token=token,
                                    conn=conn)
        self.assertEqual(body["result"], "unchanged")
        conn.close()
        reg = self.call("GET", "registration", token=token)[1]
        self.assertTrue(reg["registered"])
        self.assertEqual(reg["certificate"]["edipi"], "1000000001")

        status, body, _ = self.call("DELETE", "registration", token=token)
        self.assertEqual(status, 200)
        self.assertFalse(body["registered"])
        self.assertEqual(body["cleared"]["edipi"], "1000000001")
        self.assertFalse(self.call("GET", "registration", token=token)[1]["registered"])
        status, body, _ = self.call("DELETE", "registration", token=token)
        self.assertIsNone(body["cleared"])

        status, body, _ = self.call("POST", "registration", {"password": JANE[1]}, token=token,
                                    cert=card("valid2"))
        self.assertEqual(body["result"], "registered")
        status, body, _ = self.call("POST", "registration", {"password": JANE[1]}, token=token,
                                    cert=card("valid"))
        self.assertEqual(body["result"], "replaced")

    def test_wrong_password_keeps_session(self):
        token = self.login(("edgar.poe", "Raven-Never-9"))
        # edgar's own card is revoked: the certificate is refused before the password.
        self.assertError(self.call("POST", "registration", {"password": "wrong"}, token=token,
                                   cert=card("revoked")), 403, "certificate_revoked")
        token = self.login(("linda.loe", "Email-Only-3"))
        body = self.assertError(self.call("POST", "registration", {"password": "wrong"},
                                          token=token, cert=card("emailonly")),
                                401, "invalid_credentials")
        self.assertEqual(body["attempts_left"], 4)
        status, body, _ = self.call("POST", "registration", {"password": "Email-Only-3"},
                                    token=token, cert=card("emailonly"))
        self.assertEqual(status, 200, body)

    def test_403_reasons(self):
        token = self.login()
        for cert, reason in [(None, "no_client_certificate"),
                             (card("untrusted"), "untrusted_issuer"),
                             (card("expired"), "certificate_expired"),
                             (card("revoked"), "certificate_revoked"),
                             (card("valid", "sig"), "not_identity_certificate"),
                             (card("noaccount"), "edipi_mismatch")]:
            with self.subTest(reason=reason):
                self.assertError(self.call("POST", "registration", {"password": JANE[1]},
                                           token=token, cert=cert), 403, reason)
        sally = self.login(("sally.sue", "Suspended-4"))
        self.assertError(self.call("POST", "registration", {"password": "Suspended-4"},
                                   token=sally, cert=card("suspended")),
                         403, "account_not_permitted")

    def test_registered_to_other_account(self):
        # jane registers her card; linda, logged in, presents jane's card.
        self.assertEqual(self.call("POST", "cac-login", cert=card("valid2"))[0], 200)
        linda = self.login(("linda.loe", "Email-Only-3"))
        self.assertError(self.call("POST", "registration", {"password": "Email-Only-3"},
                                   token=linda, cert=card("valid2")),
                         403, "registered_to_other_account")

    def test_needs_a_session(self):
        self.assertError(self.call("POST", "registration", {"password": "x"},
                                   cert=card("valid")), 401, "no_session")


class TestOcsp(unittest.TestCase):
    """Revocation by OCSP alone, against `openssl ocsp` over the test CA's database."""

    @classmethod
    def setUpClass(cls):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cls.ocsp_log = tempfile.NamedTemporaryFile(prefix="cacreg-ocsp-", suffix=".log")
        cls.ocsp = subprocess.Popen(
            ["openssl", "ocsp", "-index", os.path.join(PKI, "inter", "index.txt"),
             "-port", str(port), "-rsigner", os.path.join(PKI, "ocsp.pem"),
             "-rkey", os.path.join(PKI, "ocsp.key"), "-CA", os.path.join(PKI, "inter", "cert.pem")],
            stdout=cls.ocsp_log, stderr=subprocess.STDOUT)
        # It says when it listens; a probing connection would count as a broken request.
        for _ in range(100):
            with open(cls.ocsp_log.name, "rb") as f:
                if b"waiting for OCSP client connections" in f.read():
                    break
            time.sleep(0.05)
        cls.portal = Portal("--ocsp", "http://127.0.0.1:%d" % port)
        cls.down = Portal("--ocsp", "http://127.0.0.1:1")

    @classmethod
    def tearDownClass(cls):
        cls.portal.stop()
        cls.down.stop()
        cls.ocsp.terminate()
        cls.ocsp.wait()
        cls.ocsp_log.close()

    def test_ocsp(self):
        status, body, _ = self.portal.call("POST", "cac-login", cert=card("revoked"))
        self.assertEqual((status, body["error"], body["source"]),
                         (403, "certificate_revoked", "ocsp"))
        status, body, _ = self.portal.call("POST", "cac-login", cert=card("valid"))
        self.assertEqual(status, 200, body)

    def test_responder_down(self):
        status, body, _ = self.down.call("POST", "cac-login", cert=card("valid"))
        self.assertEqual((status, body["error"]), (503, "revocation_unavailable"))


class TestFaults(unittest.TestCase):
    """Each --fault mode does to a client what docs/portal-api.md says."""

    def with_fault(self, fault):
        portal = Portal("--fault", fault)
        self.addCleanup(portal.stop)
        return portal

    def raw(self, portal, cafile=CA, host="localhost"):
        c = portal.conn(host=host, cafile=cafile)
        c.request("GET", "/api/v1/")
        return c.getresponse()

    def test_delay(self):
        portal = self.with_fault("delay=300")
        t0 = time.monotonic()
        self.assertEqual(self.raw(portal).status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)

    def test_status(self):
        for code in (500, 502, 503):
            with self.subTest(code=code):
                r = self.raw(self.with_fault("status=%d" % code))
                self.assertEqual(r.status, code)
                self.assertEqual(r.getheader("Content-Type"), "text/html")
                self.assertIn(b"<html>", r.read())

    def test_malformed(self):
        r = self.raw(self.with_fault("malformed"))
        self.assertEqual(r.status, 200)
        with self.assertRaises(ValueError):
            json.loads(r.read())

    def test_truncated_and_close(self):
        for fault in ("truncated", "close"):
            with self.subTest(fault=fault):
                r = self.raw(self.with_fault(fault))
                with self.assertRaises(http.client.IncompleteRead):
                    r.read()

    def test_huge(self):
        r = self.raw(self.with_fault("huge"))
        self.assertGreaterEqual(int(r.getheader("Content-Length")), 10 * 1024 * 1024)

    def test_content_type(self):
        r = self.raw(self.with_fault("content-type"))
        self.assertEqual(r.getheader("Content-Type"), "text/html")
        self.assertEqual(json.loads(r.read())["api"], "cacreg-portal")

    # What --fault hostile puts around every string a client shows.
    HEAD = "\x1b[2J\x1b]0;hostile portal\x07\x1b]52;c;aG9zdGlsZSBwb3J0YWw=\x07"
    TAIL = "\u009b31m\u202e\u2066\nhostile line"

    def assertHostile(self, value, inner=None):
        self.assertTrue(value.startswith(self.HEAD) and value.endswith(self.TAIL), repr(value))
        if inner is not None:
            self.assertEqual(value[len(self.HEAD):-len(self.TAIL)], inner)

    def test_hostile(self):
        portal = self.with_fault("hostile")
        # A wrong password logs in: every request succeeds, in the contract's shape.
        status, body, resp = portal.call("POST", "session", {"username": "jane.doe",
                                                             "password": "wrong"})
        self.assertEqual(status, 200, body)
        self.assertTrue(resp.getheader("Content-Type").startswith("application/json"))
        self.assertHostile(body["account"]["username"], "jane.doe")
        self.assertHostile(body["account"]["display_name"], "DOE, JANE Q")
        self.assertHostile(body["account"]["password_expires"])
        self.assertHostile(body["expires_at"])
        self.assertEqual((body["account"]["type"], body["account"]["edipi"]), ("full", "1000000001"))
        token = body["session"]
        self.assertTrue(token)

        status, body, _ = portal.call("POST", "cac-login", cert=card("noaccount"))
        self.assertEqual(status, 200, body)
        self.assertEqual(body["registration"]["result"], "registered")
        cert = body["registration"]["certificate"]
        for field in ("subject", "issuer", "serial", "not_before", "not_after"):
            self.assertHostile(cert[field])
        self.assertHostile(cert["subject"], "CN=MOE.MARY.C.1000000006,OU=USA,OU=PKI,OU=DoD,"
                                            "O=U.S. Government,C=US")
        self.assertEqual(cert["edipi"], "1000000006")
        self.assertEqual(len(cert["sha256"]), 64)
        self.assertHostile(body["password_expires"])

        status, body, _ = portal.call("GET", "registration", token="made-up")
        self.assertEqual(status, 200, body)
        self.assertTrue(body["registered"])
        self.assertHostile(body["registered_at"])
        self.assertHostile(body["certificate"]["subject"])
        status, body, _ = portal.call("POST", "registration", {"password": "x"}, token=token,
                                      cert=card("valid"))
        self.assertEqual((status, body["result"]), (200, "registered"), body)
        self.assertHostile(body["registered_at"])
        status, body, _ = portal.call("POST", "password-reset", {"username": "jane.doe"})
        self.assertEqual(status, 202, body)
        self.assertHostile(body["message"])
        self.assertEqual(portal.call("DELETE", "session", token=token)[0], 204)

    def test_hostile_errors(self):
        portal = self.with_fault("hostile=errors")
        status, body, _ = portal.call("POST", "cac-login", cert=card("noaccount"))
        self.assertEqual((status, body["error"]), (403, "no_account"))
        self.assertHostile(body["message"], "No account has this card's EDIPI 1000000006.")
        self.assertHostile(body["certificate"]["subject"])
        status, body, _ = portal.call("POST", "session", {"username": "jane.doe",
                                                          "password": "Correct-Horse-1"})
        self.assertEqual(status, 200, body)
        self.assertHostile(body["account"]["username"], "jane.doe")

    def test_bad_server_certificates(self):
        for fault, why in (("cert=expired", "expired"), ("cert=wrong-host", "match"),
                           ("cert=other-ca", "certificate verify failed")):
            with self.subTest(fault=fault):
                portal = self.with_fault(fault)
                with self.assertRaises(ssl.SSLCertVerificationError) as e:
                    self.raw(portal)
                self.assertIn(why, str(e.exception))


if __name__ == "__main__":
    unittest.main(verbosity=2)
