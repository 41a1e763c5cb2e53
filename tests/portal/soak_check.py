#!/usr/bin/python3
"""soak_check.py LOG LIST DATABASE [--killed] [--count N]: what make soak's
registrations left in cacreg-portald's store, against what was answered.

LOG is tests/bench/portal_load.c's --log (START_US END_US PERSONA VIA STATUS
RESULT per registration; STATUS 0: no answer), LIST the personas
(tests/bench/mkpersonas.py's soak.list), DATABASE the daemon's SQLite file.

Checks, each printed on its own line (exit 1 on any failure):
  - at least N registrations answered 200, and every other answer is a 0 (no
    answer) only with --killed (the server was killed mid-run);
  - every 200 has its row: an account's row is the certificate of its last
    200, unless another registration of that account (answered 200, or not
    answered at all) ended after that one began, and then it is one of those;
  - no row without a 200 (with --killed: or without a request that got no answer);
  - each answer's result (registered, replaced, unchanged) fits an order of the writes;
  - no account has two cards, no card is on two accounts, every card is on its
    own EDIPI's account;
  - nothing is half-written: SQLite's integrity check, each row's certificate
    object matches its fingerprint, every account with a CAC login answered 200
    has its password extended by 150 days (same transaction), no failures counted.
"""
import argparse
import collections
import json
import sqlite3
import sys
import time

EXTENSION_DAYS = 150


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("list")
    ap.add_argument("database")
    ap.add_argument("--killed", action="store_true")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--started", type=float, default=0, help="the run's start (epoch seconds)")
    args = ap.parse_args()

    personas = {}  # name -> (username, sha256)
    for line in open(args.list):
        name, _edipi, username, _password, sha = line.split()
        personas[name] = (username, sha)
    requests = collections.defaultdict(list)  # username -> [(t0, t1, sha, via, status)]
    statuses = collections.Counter()
    for line in open(args.log):
        t0, t1, name, via, status, _result = line.split()
        username, sha = personas[name]
        requests[username].append((int(t0), int(t1), sha, via, int(status), _result))
        statuses[int(status)] += 1

    db = sqlite3.connect("file:%s?mode=ro" % args.database, uri=True)
    rows = {u: (sha, cert, at) for u, sha, cert, at in
            db.execute("SELECT username, sha256, certificate, registered_at FROM registrations")}
    accounts = {u: (exp, failed) for u, exp, failed in
                db.execute("SELECT username, password_expires, failed_attempts FROM accounts")}
    failures = []

    def check(ok, what):
        print("%s %s" % ("ok:  " if ok else "FAIL:", what))
        if not ok:
            failures.append(what)

    ok200 = statuses[200]
    check(ok200 >= args.count, "%d registrations answered 200 (at least %d)" % (ok200, args.count))
    others = {s: n for s, n in statuses.items() if s not in (200, 0)}
    check(not others, "no answer but 200%s: %s" % (" or none" if args.killed else "", others or "none"))
    if not args.killed:
        check(statuses[0] == 0, "every registration was answered (%d were not)" % statuses[0])
    else:
        print("info: %d registrations got no answer (the kill, and the restart's gap)" % statuses[0])

    lost, stray, wrong = [], [], []
    for username, reqs in requests.items():
        answered = [r for r in reqs if r[4] == 200]
        unanswered = [r for r in reqs if r[4] == 0]
        row = rows.get(username)
        if not answered:
            if row and not any(r[2] == row[0] for r in unanswered):
                stray.append(username)
            continue
        last = max(answered, key=lambda r: r[1])
        # Registrations that may have been applied after the last 200's began.
        racing = {r[2] for r in answered + unanswered if r[1] > last[0] and r[2] != last[2]}
        if row is None:
            lost.append("%s: no row, last 200 was %s" % (username, last[2][:12]))
        elif row[0] != last[2] and row[0] not in racing:
            wrong.append("%s: row %s, last 200 %s" % (username, row[0][:12], last[2][:12]))
    for username, row in rows.items():
        if username not in requests:
            stray.append(username)
    # Each answer's result agrees with an order of the writes: "unchanged" only for a
    # card written (registered, replaced, or possibly by a request never answered)
    # by a request begun before it ended; "registered" only when no write of the
    # account ended before it began (nothing was registered; make soak clears nothing).
    told = []
    for username, reqs in requests.items():
        writes = [r for r in reqs if (r[4] == 200 and r[5] in ("registered", "replaced"))
                  or r[4] == 0]
        for r in reqs:
            if r[4] != 200:
                continue
            if r[5] == "unchanged" and not any(w[2] == r[2] and w[0] < r[1] for w in writes):
                told.append("%s: %s unchanged, never written" % (username, r[2][:12]))
            if r[5] == "registered" and any(w[4] == 200 and w[1] < r[0] for w in writes):
                told.append("%s: %s registered after a write" % (username, r[2][:12]))
            if r[5] not in ("registered", "replaced", "unchanged"):
                told.append("%s: result %s" % (username, r[5]))
    check(not told, "every answer's result fits an order of the writes%s" % (
        "" if not told else ": " + "; ".join(told[:5])))
    check(not lost and not wrong, "every 200 has its row (%d accounts)%s" % (
        len(requests), "" if not (lost or wrong) else ": " + "; ".join((lost + wrong)[:5])))
    check(not stray, "no row without a 200%s%s" % (
        " or an unanswered request" if args.killed else "",
        "" if not stray else ": " + ", ".join(stray[:5])))

    per_account = collections.Counter(db.execute("SELECT username FROM registrations").fetchall())
    per_card = collections.Counter(db.execute("SELECT sha256 FROM registrations").fetchall())
    own = {sha: u for u, sha in personas.values()}
    misplaced = [u for u, (sha, _c, _a) in rows.items() if own.get(sha) != u]
    check(max(per_account.values(), default=1) == 1, "no account has two cards")
    check(max(per_card.values(), default=1) == 1, "no card is on two accounts")
    check(not misplaced, "every card is on its own account%s" % (
        "" if not misplaced else ": " + ", ".join(misplaced[:5])))

    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    check(integrity == "ok", "SQLite integrity check: %s" % integrity)
    torn = []
    for username, (sha, cert, at) in rows.items():
        try:
            obj = json.loads(cert)
            if obj.get("sha256") != sha or not at:
                torn.append(username)
        except ValueError:
            torn.append(username)
    check(not torn, "every row's certificate object matches its fingerprint")
    floor = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                          time.gmtime((args.started or time.time() - 3600) +
                                      EXTENSION_DAYS * 86400 - 60))
    unextended = [u for u, reqs in requests.items()
                  if any(r[3] == "cac" and r[4] == 200 for r in reqs) and accounts[u][0] < floor]
    check(not unextended, "every account with a CAC login answered 200 has 150 days%s" % (
        "" if not unextended else ": " + ", ".join(unextended[:5])))
    counted = [u for u in requests if accounts[u][1] != 0]
    check(not counted, "no wrong password counted")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
