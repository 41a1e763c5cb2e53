#!/usr/bin/python3
"""The station (cacreg-kiosk) on the bench, measured: time from a card inserted
at the idle screen to the session's screen ready ("Card ready"); time from a
session killed (kill -9) to the idle screen back; the launcher's CPU and
wake-ups while idle. Prints figures; asserts nothing about speed.

usage: bench_kiosk.py KIOSK_BIN CACREG_BIN PKI_DIR BENCH_DIR [IDLE_SECONDS]
Runs the station on a pseudo-terminal of 80x24, its /etc of its own (with-etc).
"""
import os
import pty
import select
import subprocess
import sys
import tempfile
import time

kiosk, cacreg, pki, bench_dir = sys.argv[1:5]
idle_s = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0
here = os.path.dirname(os.path.abspath(__file__))
out = bytearray()


def ctl(*args):
    subprocess.run([os.path.join(here, "bench"), "ctl", bench_dir, *args], check=True,
                   stdout=subprocess.DEVNULL)


def pump(fd, seconds):
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return
            if not data:
                return
            out.extend(data)


def until(fd, needle, since, timeout=20.0):
    end = time.monotonic() + timeout
    while needle not in out[since:]:
        if time.monotonic() > end:
            raise SystemExit("bench_kiosk: never saw %r" % needle)
        pump(fd, 0.005)
    return time.monotonic()


def cpu_and_switches(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    switches = 0
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, task)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt", "nonvoluntary_ctxt")):
                        switches += int(line.split()[1])
        except FileNotFoundError:
            pass
    return cpu, switches


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


tmp = tempfile.mkdtemp()
etc = os.path.join(tmp, "etc")
os.makedirs(os.path.join(etc, "cacreg"))
with open(os.path.join(etc, "cacreg", "cacreg.conf"), "w") as f:
    f.write("portal_url = https://localhost:9/api/v1/\nca_bundle = %s/ca-bundle.pem\n"
            "reader_filter = Virtual CAC\n" % pki)
with open(os.path.join(etc, "cacreg", "kiosk.conf"), "w") as f:
    f.write("reader_filter = Virtual CAC\nsession_program = %s\n" % cacreg)
with open(os.path.join(bench_dir, "vcacd.pid")) as f:
    bench_pid = f.read().strip()
ctl("remove")
env = dict(os.environ, TERM="xterm-256color", LANG="C.UTF-8")
pid, fd = pty.fork()
if pid == 0:
    os.execve(os.path.join(here, "with-etc"),
              ["with-etc", "--ns", bench_pid, etc, kiosk], env)
until(fd, b"Insert your CAC", 0)
pump(fd, 1.0)
station = [p for p in [pid] + children(pid)]
# with-etc execs nsenter, which execs with-etc, then unshare, then sh, then the station: the
# pid stays the same, so pid is the station once it draws.
cpu0, sw0 = cpu_and_switches(pid)
pump(fd, idle_s)
cpu1, sw1 = cpu_and_switches(pid)

mark = len(out)
t0 = time.monotonic()
ctl("insert", "valid")
ready = until(fd, b"Card ready", mark)
session = children(pid)
mark = len(out)
t1 = time.monotonic()
os.kill(session[0], 9)
back = until(fd, b"Please take your card", mark)
ctl("remove")
os.kill(pid, 15)
os.waitpid(pid, 0)
print("kiosk: card inserted at the idle screen -> session ready (holder on screen): %.0f ms "
      "(includes pcscd's 400 ms reader poll)" % ((ready - t0) * 1000))
print("kiosk: session killed (kill -9) -> idle screen back: %.0f ms" % ((back - t1) * 1000))
print("kiosk: idle %.0f s: CPU %.3f s, wake-ups (context switches, all threads) %d"
      % (idle_s, cpu1 - cpu0, sw1 - sw0))
