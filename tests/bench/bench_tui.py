#!/usr/bin/python3
"""The full-screen front end on the bench, measured: time from card insertion
to the certificates on screen; CPU, wake-ups and bytes written while idle at
the start screen; peak RSS; bytes written for one card-insert update and for
one PIN digit. Prints figures; asserts nothing about speed.

usage: bench_tui.py CACREG_BIN PKI_DIR BENCH_DIR [IDLE_SECONDS]
Runs cacreg on a pseudo-terminal of 80x24 (TERM=xterm-256color, UTF-8).
"""
import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

binary, pki, bench_dir = sys.argv[1:4]
idle_s = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0
here = os.path.dirname(os.path.abspath(__file__))


def ctl(*args):
    subprocess.run([os.path.join(here, "bench"), "ctl", bench_dir, *args], check=True,
                   stdout=subprocess.DEVNULL)


def wait_reader(state):
    subprocess.run([os.path.join(here, "bench"), "wait", bench_dir, state], check=True,
                   stdout=subprocess.DEVNULL)


out = bytearray()


def pump(fd, seconds):
    """Reads what cacreg writes for this long."""
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return
            if not data:
                return
            out.extend(data)


def until(fd, needle, since, timeout=15.0):
    """Reads until needle appears after offset since; the time it appeared."""
    end = time.monotonic() + timeout
    while needle not in out[since:]:
        if time.monotonic() > end:
            raise SystemExit("bench_tui: never saw %r" % needle)
        pump(fd, 0.005)
    return time.monotonic()


def settle(fd, quiet=0.5):
    """Reads until nothing has come for `quiet` seconds."""
    while True:
        n = len(out)
        pump(fd, quiet)
        if len(out) == n:
            return


def cpu_and_wakeups(pid):
    """CPU seconds of the process, and context switches of all its threads."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    switches = 0
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, task)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
        except FileNotFoundError:
            pass
    return cpu, switches


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


ctl("remove")
wait_reader("absent")
env = dict(os.environ, TERM="xterm-256color", LANG="C.UTF-8")
env.pop("NO_COLOR", None)
pid, fd = pty.fork()
if pid == 0:
    os.execve(binary, [binary, "--ca-bundle", os.path.join(pki, "ca-bundle.pem"),
                       "--portal", "https://localhost:9/api/v1/", "--reader", "Virtual CAC"], env)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
until(fd, b"Reader status", 0)
until(fd, b"not inserted", 0)
settle(fd, 1.0)

# Idle at the start screen, no card.
cpu0, sw0 = cpu_and_wakeups(pid)
bytes0 = len(out)
pump(fd, idle_s)
cpu1, sw1 = cpu_and_wakeups(pid)
idle_bytes = len(out) - bytes0

# A card goes in: time until its holder's name is on screen, and the bytes it took.
mark = len(out)
t0 = time.monotonic()
ctl("insert", "valid")
seen = until(fd, b"JANE Q DOE", mark)
settle(fd, 1.0)
insert_bytes = len(out) - mark

# One PIN digit.
os.write(fd, b"c")
until(fd, b"enter your CAC PIN", mark)
settle(fd, 0.5)
mark = len(out)
os.write(fd, b"1")
until(fd, b"*", mark)
settle(fd, 0.5)
digit_bytes = len(out) - mark
hwm = status_kb(pid, "VmHWM")

os.write(fd, b"\x1b")
settle(fd, 0.3)
os.write(fd, b"q")
pump(fd, 2.0)
_, status = os.waitpid(pid, 0)
ctl("remove")

print("tui: card inserted -> certificates on screen: %.0f ms (includes pcscd's 400 ms reader poll)"
      % ((seen - t0) * 1000))
print("tui: idle %.0f s at the start screen: CPU %.3f s, wake-ups (context switches, all threads) %d, "
      "bytes written %d" % (idle_s, cpu1 - cpu0, sw1 - sw0, idle_bytes))
print("tui: bytes written for one card-insert update: %d; for one PIN digit: %d"
      % (insert_bytes, digit_bytes))
print("tui: peak RSS %.1f MB; exit status %d" % (hwm / 1024.0, os.waitstatus_to_exitcode(status)))
