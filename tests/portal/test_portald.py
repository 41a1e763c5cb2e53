#!/usr/bin/python3
"""cacreg-portald beyond the contract suite: its audit lines, hostile clients,
the CRL re-read on change, its stop, its configuration and its administration
commands. Real TLS with the bench PKI's certificates; every daemon is started
here and stopped by its PID; every wait has a bound.

The daemon runs under tests/bench/with-etc, so that /etc/cacreg/portald.conf is
the test's own and the system log (/dev/log) is tests/bench/logsink's socket.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("CACREG_BUILD", os.path.join(TOP, "build"))
PKI = os.environ.get("CACREG_PKI", os.path.join(BUILD, "pki"))
PORTALD = os.environ.get("CACREG_PORTALD", os.path.join(BUILD, "plain", "cacreg-portald"))
CA = os.path.join(PKI, "ca-bundle.pem")
WITH_ETC = os.path.join(TOP, "tests", "bench", "with-etc")
LOGSINK = os.path.join(TOP, "tests", "bench", "logsink")
JANE = ("jane.doe", "Correct-Horse-1")


def card(persona, kind="id"):
    d = os.path.join(PKI, "cards", persona)
    return os.path.join(d, kind + ".pem"), os.path.join(d, kind + ".key")


def wait_for(what, predicate, seconds=5.0):
    """Waits for predicate() to be true, at most seconds; fails the test otherwise."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("never happened within %.1f s: %s" % (seconds, what))


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def admin(data, *args, stdin=None, config=None):
    """Runs a cacreg-portald command on data's store: (exit status, stdout, stderr)."""
    cmd = [PORTALD, "--config", config or "/dev/null", "--database",
           os.path.join(data, "portal.db"), "--argon2-memory-kib", "1024", "--argon2-time", "1",
           *args]
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


class Portald:
    """One cacreg-portald of our own, with its /etc and its system log."""

    def __init__(self, **keys):
        self.dir = tempfile.mkdtemp(prefix="cacreg-portald-")
        self.etc = os.path.join(self.dir, "etc")
        os.makedirs(os.path.join(self.etc, "cacreg"))
        self.log = os.path.join(self.dir, "syslog")
        self.sock = os.path.join(self.dir, "log.sock")
        self.sink = subprocess.Popen([LOGSINK, self.sock, self.log])
        wait_for("the log sink's socket", lambda: os.path.exists(self.sock))
        rc, out, err = admin(self.dir, "account", "import", os.path.join(HERE, "accounts.json"))
        assert rc == 0, err
        conf = {"listen": "127.0.0.1:0", "tls_cert": os.path.join(PKI, "server.pem"),
                "tls_key": os.path.join(PKI, "server.key"),
                "tls_client_ca": os.path.join(PKI, "tls-accept.pem"), "ca_bundle": CA,
                "crl_file": os.path.join(self.dir, "portal.crl"),
                "database": os.path.join(self.dir, "portal.db"),
                "port_file": os.path.join(self.dir, "port")}
        conf.update(keys)
        shutil.copy(os.path.join(PKI, "inter.crl"), conf["crl_file"])
        self.crl = conf["crl_file"]
        # The daemon reads /etc/cacreg/portald.conf by itself: the test's, in its overlay.
        with open(os.path.join(self.etc, "cacreg", "portald.conf"), "w") as f:
            f.write("# written by test_portald.py\n")
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, v))
        self.out = open(os.path.join(self.dir, "out"), "w")
        self.proc = subprocess.Popen([WITH_ETC, "--log", self.sock, self.etc, PORTALD],
                                     stdout=self.out, stderr=subprocess.STDOUT)
        port_file = conf["port_file"]
        wait_for("the port file", lambda: os.path.exists(port_file) or self.proc.poll() is not None)
        if self.proc.poll() is not None:
            with open(os.path.join(self.dir, "out")) as f:
                raise AssertionError("cacreg-portald did not start: " + f.read())
        with open(port_file) as f:
            self.port = int(f.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.sink.send_signal(signal.SIGTERM)
        self.sink.wait(timeout=10)
        self.out.close()
        shutil.rmtree(self.dir)

    def conn(self, cert=None):
        ctx = ssl.create_default_context(cafile=CA)
        if cert:
            ctx.load_cert_chain(*cert)
        return http.client.HTTPSConnection("localhost", self.port, context=ctx, timeout=10)

    def call(self, method, path, body=None, token=None, cert=None):
        c = self.conn(cert)
        h = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if token:
            h["Authorization"] = "Bearer " + token
        c.request(method, "/api/v1/" + path, body=data, headers=h)
        r = c.getresponse()
        payload = r.read()
        c.close()
        return r.status, (json.loads(payload) if payload else None), r

    def tls_socket(self):
        ctx = ssl.create_default_context(cafile=CA)
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return ctx.wrap_socket(s, server_hostname="localhost")

    def lines(self):
        with open(self.log, "rb") as f:
            return [line.decode("utf-8", "replace") for line in f]

    def logged(self, *parts, seconds=5.0):
        """The first system-log line holding every part (waits for it, bounded)."""
        return wait_for("a log line with %s" % (parts,), lambda: next(
            (line for line in self.lines() if all(p in line for p in parts)), None), seconds)


class TestAudit(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Portald()

    @classmethod
    def tearDownClass(cls):
        cls.p.stop()

    def test_cac_login_and_registration_lines(self):
        status, body, _ = self.p.call("POST", "cac-login", cert=card("valid"))
        self.assertEqual(status, 200, body)
        sha = body["registration"]["certificate"]["sha256"]
        serial = body["registration"]["certificate"]["serial"]
        line = self.p.logged("event=cac_login", "result=ok", "sha256=" + sha)
        for part in ("cacreg-portald", "addr=127.0.0.1", "username=jane.doe", "edipi=1000000001",
                     'issuer="CN=Test DOD ID CA-59,', "serial=" + serial):
            self.assertIn(part, line)
        self.p.logged("event=registration", "via=cac_login", "sha256=" + sha)
        self.assertNotIn(body["session"], "".join(self.p.lines()))

    def test_refused_registration_line(self):
        status, body, _ = self.p.call("POST", "session", {"username": JANE[0],
                                                          "password": JANE[1]})
        token = body["session"]
        status, body, _ = self.p.call("POST", "registration", {"password": JANE[1]}, token=token,
                                      cert=card("noaccount"))
        self.assertEqual((status, body["error"]), (403, "edipi_mismatch"))
        line = self.p.logged("event=registration", "result=refused", "reason=edipi_mismatch")
        self.assertIn("edipi=1000000006", line)
        self.assertIn("sha256=" + body["certificate"]["sha256"], line)
        log = "".join(self.p.lines())
        self.assertNotIn(JANE[1], log)
        self.assertNotIn(token, log)

    def test_lock_and_reset_lines(self):
        for _ in range(5):
            self.p.call("POST", "session", {"username": "john.smith", "password": "nope-secret"})
        self.p.logged("event=lock", "username=john.smith")
        self.p.logged("event=password_login", "result=refused", "reason=account_locked")
        self.assertEqual(self.p.call("POST", "password-reset", {"username": "john.smith"})[0], 202)
        self.p.logged("event=reset", "username=john.smith", "account=known")
        self.assertNotIn("nope-secret", "".join(self.p.lines()))

    def test_refused_cac_login_line(self):
        self.assertEqual(self.p.call("POST", "cac-login", cert=card("revoked"))[0], 403)
        self.p.logged("event=cac_login", "result=refused", "reason=certificate_revoked",
                      "edipi=1000000004")

    def test_hostile_certificate_text_stays_one_line(self):
        self.assertEqual(self.p.call("POST", "cac-login", cert=card("escape"))[0], 200)
        line = self.p.logged("event=cac_login", "edipi=1000000021")
        self.assertNotIn("\x1b", line)
        self.assertNotIn("\n", line.rstrip("\n"))
        self.assertIn("1B[2J", line)  # escaped, as the certificate's name shows it


class TestHostileClients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Portald(connection_timeout="2", connections_per_address="4",
                        password_attempts_per_account="3")

    @classmethod
    def tearDownClass(cls):
        cls.p.stop()

    def test_slow_headers_are_cut(self):
        s = self.p.tls_socket()
        s.sendall(b"GET /api/v1/ HTTP/1.1\r\nHost: localhost\r\n")  # and never the end
        t0 = time.monotonic()
        s.settimeout(6)
        try:
            data = s.recv(4096)
        except (ConnectionError, ssl.SSLError):
            data = b""
        self.assertEqual(data, b"")
        self.assertLess(time.monotonic() - t0, 5)
        s.close()

    def test_half_a_handshake_costs_no_cpu(self):
        # A TLS record header promising a ClientHello, then nothing: the daemon waits for
        # the rest without spinning (libmicrohttpd 0.9.75's epoll mode spun one core for
        # the whole connection_timeout on this; make bench found it).
        def cpu_ticks():
            with open("/proc/%d/stat" % self.p.proc.pid) as f:  # with-etc execs the daemon
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])
        held = [socket.create_connection(("127.0.0.1", self.p.port), timeout=10)
                for _ in range(2)]
        try:
            for s in held:
                s.sendall(b"\x16\x03\x01\x02\x00\x01")
            # Nothing may happen for a second (no event ends this early): the CPU stays unspent.
            before, end = cpu_ticks(), time.monotonic() + 1.0
            while time.monotonic() < end:
                spent = (cpu_ticks() - before) / os.sysconf("SC_CLK_TCK")
                self.assertLess(spent, 0.2, "%.2f s of CPU for two half handshakes" % spent)
                time.sleep(0.05)
        finally:
            for s in held:
                s.close()

    def test_connections_per_address(self):
        held = [self.p.tls_socket() for _ in range(4)]
        try:
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                extra = self.p.tls_socket()
                extra.sendall(b"GET /api/v1/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
                if not extra.recv(4096):
                    raise ConnectionError("closed")
        finally:
            for s in held:
                s.close()
        # The held ones gone, the address is served again (bounded wait for the count).
        def served():
            try:
                return self.p.call("GET", "")[0] == 200
            except (ssl.SSLError, ConnectionError):
                return False
        wait_for("a connection accepted again", served)

    def test_password_rate_limit(self):
        for _ in range(3):
            self.assertEqual(self.p.call("POST", "session", {"username": "edgar.poe",
                                                             "password": "x"})[0], 401)
        status, body, resp = self.p.call("POST", "session", {"username": "edgar.poe",
                                                             "password": "Raven-Never-9"})
        self.assertEqual((status, body["error"]), (429, "too_many_requests"), body)
        self.assertGreater(body["retry_after"], 0)
        self.assertEqual(resp.getheader("Retry-After"), str(body["retry_after"]))
        self.p.logged("event=rate_limited", "username=edgar.poe")

    def test_garbage_then_served(self):
        for garbage in (b"\x00\xff\x13 not http at all\r\n\r\n",
                        b"GET /api/v1/ HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                        b"GET /api/v1/ HTTP/1.1\r\n" + b"X-Big: " + b"a" * 40000 + b"\r\n\r\n",
                        b"POST /api/v1/session HTTP/1.1\r\nHost: x\r\n"
                        b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
                        b"zz\r\n"):
            with self.subTest(garbage=garbage[:40]):
                s = self.p.tls_socket()
                s.settimeout(6)
                try:
                    s.sendall(garbage)
                    answer = s.recv(4096)
                except (ConnectionError, ssl.SSLError):
                    answer = b""
                s.close()
                # An HTTP error or a closed connection; never a success, never a hang.
                self.assertFalse(answer.startswith(b"HTTP/1.1 2"), answer[:100])
                self.assertEqual(self.p.call("GET", "")[0], 200)

    def test_too_large_declared_body(self):
        s = self.p.tls_socket()
        s.settimeout(6)
        s.sendall(b"POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100000000\r\n\r\n{")
        answer = b""
        while b'"too_large"' not in answer:  # bounded by the socket's timeout
            part = s.recv(4096)
            if not part:
                break
            answer += part
        s.close()
        self.assertTrue(answer.startswith(b"HTTP/1.1 413"), answer[:100])
        self.assertIn(b'"too_large"', answer)


class TestRevocationAndStop(unittest.TestCase):
    def test_crl_reread_when_it_changes(self):
        p = Portald()
        self.addCleanup(p.stop)
        status, body, _ = p.call("POST", "cac-login", cert=card("revoked"))
        self.assertEqual((status, body["error"], body["source"]), (403, "certificate_revoked", "crl"))
        # A file that is no CRL: said, and the one before stays in use.
        with open(p.crl + ".new", "w") as f:
            f.write("not a CRL\n")
        os.replace(p.crl + ".new", p.crl)
        p.logged("event=crl", "result=kept")
        self.assertEqual(p.call("POST", "cac-login", cert=card("revoked"))[0], 403)
        # A new CRL from the same CA that no longer lists the card: taken within the tick.
        ca = os.path.join(p.dir, "ca")
        shutil.copytree(os.path.join(PKI, "inter"), ca)
        with open(os.path.join(ca, "index.txt")) as f:
            rows = [r.split("\t") for r in f.read().splitlines()]
        with open(os.path.join(ca, "index.txt"), "w") as f:
            for r in rows:
                if r[0] == "R":
                    r[0], r[2] = "V", ""
                f.write("\t".join(r) + "\n")
        env = dict(os.environ, CA_DIR=ca, OPENSSL_CONF=os.path.join(PKI, "ca.cnf"), UPN="none",
                   UPN_DER="3000", EMAIL="none", SAN="DNS:localhost")
        subprocess.run(["openssl", "ca", "-gencrl", "-keyfile", os.path.join(ca, "key.pem"),
                        "-cert", os.path.join(ca, "cert.pem"), "-out", p.crl + ".new"],
                       env=env, check=True, capture_output=True)
        os.replace(p.crl + ".new", p.crl)
        p.logged("event=crl", "result=reloaded")
        status, body, _ = p.call("POST", "cac-login", cert=card("revoked"))
        self.assertEqual(status, 200, body)

    def test_stale_crl_fails_closed(self):
        p = Portald()
        self.addCleanup(p.stop)
        ca = os.path.join(p.dir, "ca")
        shutil.copytree(os.path.join(PKI, "inter"), ca)
        env = dict(os.environ, CA_DIR=ca, OPENSSL_CONF=os.path.join(PKI, "ca.cnf"), UPN="none",
                   UPN_DER="3000", EMAIL="none", SAN="DNS:localhost")
        subprocess.run(["openssl", "ca", "-gencrl", "-crlsec", "1", "-keyfile",
                        os.path.join(ca, "key.pem"), "-cert", os.path.join(ca, "cert.pem"),
                        "-out", p.crl + ".new"], env=env, check=True, capture_output=True)
        os.replace(p.crl + ".new", p.crl)
        p.logged("event=crl", "result=reloaded")
        # Its nextUpdate a second away: once past, no answer can be had, and none is made up.
        status, body = wait_for("the CRL to go stale", lambda: (lambda r: r if r[0] == 503 else None)(
            p.call("POST", "cac-login", cert=card("valid"))[:2]), 5)
        self.assertEqual(body["error"], "revocation_unavailable")
        p.logged("event=cac_login", "reason=revocation_unavailable")

    def test_sigterm_ends_within_a_second(self):
        p = Portald()
        self.addCleanup(p.stop)
        c = p.conn()  # an idle kept connection does not hold the stop
        c.request("GET", "/api/v1/")
        c.getresponse().read()
        t0 = time.monotonic()
        p.proc.send_signal(signal.SIGTERM)
        p.proc.wait(timeout=5)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(p.proc.returncode, 0)
        p.logged("event=stop")
        c.close()


class TestAdministration(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="cacreg-portald-admin-")
        self.addCleanup(shutil.rmtree, self.dir)

    def test_accounts(self):
        rc, out, err = admin(self.dir, "account", "add", "amy.adams", "--edipi", "1000000099",
                             "--display-name", "ADAMS, AMY", "--password-stdin",
                             stdin="Amy-Pass-99\n")
        self.assertEqual(rc, 0, err)
        rc, out, err = admin(self.dir, "account", "add", "amy.adams", "--edipi", "1000000099",
                             "--display-name", "ADAMS, AMY")
        self.assertEqual(rc, 1)
        self.assertIn("that username is taken", err)
        rc, out, err = admin(self.dir, "account", "add", "bad name", "--edipi", "1",
                             "--display-name", "X")
        self.assertEqual(rc, 1)
        self.assertIn("is not a username", err)
        rc, out, err = admin(self.dir, "account", "add", "bob", "--edipi", "123",
                             "--display-name", "X")
        self.assertIn("is not 10 digits", err)
        rc, out, _ = admin(self.dir, "account", "show", "amy.adams")
        self.assertIn("edipi=1000000099", out)
        self.assertIn("password=set", out)
        self.assertIn("no registration", out)
        for verb, words in (("suspend", "suspended"), ("reinstate", "reinstated"),
                            ("unlock", "unlocked")):
            rc, out, _ = admin(self.dir, "account", verb, "amy.adams")
            self.assertEqual((rc, words in out), (0, True), out)
        rc, _, err = admin(self.dir, "account", "suspend", "no.one")
        self.assertEqual((rc, "no such account" in err), (1, True), err)
        rc, out, err = admin(self.dir, "account", "password", "amy.adams", stdin="New-Pass-1\n")
        self.assertEqual(rc, 0, err)
        rc, _, err = admin(self.dir, "account", "password", "amy.adams", stdin="")
        self.assertEqual((rc, "no password" in err), (1, True))
        rc, _, err = admin(self.dir, "account", "frobnicate", "x")
        self.assertEqual((rc, "unknown command" in err), (2, True))

    def test_import_csv_and_json(self):
        csv = os.path.join(self.dir, "people.csv")
        with open(csv, "w") as f:
            f.write('username,edipi,display_name,type,permitted,password\n'
                    'carl.csv,1000000031,"CSV, CARL",full,yes,Carl-Pass-1\n'
                    'dora.csv,1000000032,"CSV, DORA ""D""",email_only,no,\n'
                    'bad.row,12,"BAD",full,yes,\n')
        rc, out, err = admin(self.dir, "account", "import", csv)
        self.assertEqual(rc, 1)
        self.assertIn("imported 2 account(s), 1 refused", out)
        self.assertIn("is not 10 digits", err)
        rc, out, _ = admin(self.dir, "account", "list")
        self.assertIn("carl.csv\tedipi=1000000031\ttype=full\tpermitted=yes", out)
        self.assertIn('dora.csv\tedipi=1000000032\ttype=email_only\tpermitted=no', out)
        self.assertIn('display_name=CSV, DORA "D"', out)
        bad = os.path.join(self.dir, "bad.json")
        with open(bad, "w") as f:
            f.write('{"accounts": [1, 2')
        rc, _, err = admin(self.dir, "account", "import", bad)
        self.assertEqual(rc, 1)
        self.assertIn("bad.json:1:", err)
        rc, _, err = admin(self.dir, "account", "import", os.path.join(self.dir, "none.json"))
        self.assertEqual(rc, 1)

    def test_registrations_and_check_config(self):
        p = Portald()
        self.addCleanup(p.stop)
        self.assertEqual(p.call("POST", "cac-login", cert=card("valid"))[0], 200)
        rc, out, err = admin(p.dir, "registration", "list")
        self.assertEqual(rc, 0, err)
        self.assertIn("jane.doe\tregistered_at=", out)
        self.assertIn("subject=CN=DOE.JANE.Q.1000000001", out)
        rc, out, _ = admin(p.dir, "registration", "clear", "jane.doe")
        self.assertIn("registration cleared", out)
        rc, out, _ = admin(p.dir, "registration", "clear", "jane.doe")
        self.assertIn("had no registration", out)
        conf = os.path.join(p.etc, "cacreg", "portald.conf")
        rc, out, err = admin(p.dir, "--check-config", config=conf)
        self.assertEqual(rc, 0, err)
        self.assertIn("the configuration is good", out)
        bad = os.path.join(p.dir, "bad.conf")
        for text, words in (("listen = nowhere\n", "is not ADDRESS:PORT"),
                            ("session_ttl = soon\n", "session_ttl: 'soon' is not a whole number"),
                            ("colour = blue\n", "unknown key 'colour'"),
                            ("tls_key = /nonexistent/key.pem\n", "tls_key: /nonexistent/key.pem")):
            with open(conf) as f, open(bad, "w") as g:
                g.write(f.read() + text)
            rc, _, err = admin(p.dir, "--check-config", config=bad)
            self.assertEqual(rc, 1 if "listen" in text or "tls_key" in text else rc, err)
            self.assertNotEqual(rc, 0)
            self.assertIn(words, err)


class TestSessions(unittest.TestCase):
    def test_many_sessions_all_kept(self):
        # The session table starts small and grows (memory for the sessions there are):
        # 1,200 sessions, past two doublings, each still known afterwards.
        p = Portald(password_attempts_per_account="100000", password_attempts_per_address="100000")
        try:
            c = p.conn()
            tokens = []
            for _ in range(1200):
                c.request("POST", "/api/v1/session", body=json.dumps(
                    {"username": JANE[0], "password": JANE[1]}).encode(),
                    headers={"Content-Type": "application/json"})
                r = c.getresponse()
                body = json.loads(r.read())
                self.assertEqual(r.status, 200, body)
                tokens.append(body["session"])
            for t in tokens:
                c.request("GET", "/api/v1/registration", headers={"Authorization": "Bearer " + t})
                r = c.getresponse()
                r.read()
                self.assertEqual(r.status, 200, "a session was lost when the table grew")
            c.close()
        finally:
            p.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
