# shellcheck shell=bash disable=SC2034 # (variables for the scripts that source this)
# The stage the SSH tests and benchmarks share. Source it right after
# `set -euo pipefail`: it starts the script again in network, mount and PID
# namespaces of its own (root only; exit 77 to skip otherwise), then sets up
#   - /run, /tmp private (no pcscd socket to reach, no other bench, nothing
#     left on the machine's /tmp), loopback up;
#   - the bench, the card on "this computer" (CACREG_BENCH, PCSCLITE_CSOCK_NAME);
#   - a test user $user ($uid), only in this mount namespace: a copy of
#     /etc/passwd and /etc/group bound over them, so that the machine's user
#     database is never changed; an unprivileged user, so that the remote side
#     runs as people do (its socket mode, /tmp, no root);
#   - sshd on 127.0.0.1 with a host key and the user's key made here, PidFile
#     in $T, StreamLocalBindUnlink yes; by port: 2222 box (forwarding allowed),
#     2223 noforward (AllowStreamLocalForwarding no), 2224 nodisable
#     (DisableForwarding yes), 2225 nounlink (StreamLocalBindUnlink no), and
#     a second sshd on 2226 noclient whose sessions see no p11-kit-client.so;
#   - ssh's client configuration $T/client/config naming those hosts;
#   - $T/remote-cacreg, the remote cacreg, which notes in $T/rlog/calls its
#     PID, its parent's, its user, the socket, PCSCLITE_CSOCK_NAME and the
#     p11-kit, sshd and ssh processes it sees; $T/old-cacreg, one from before
#     `cacreg ssh`;
#   - bench/lib.sh's helpers (ctl, counter, insert, fail, ok; $bin, $pki, $portal).
# Everything is stopped by PID and removed on exit.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
export CACREG_BUILD=${CACREG_BUILD:-$top/build}
case "$CACREG_BUILD" in /*) ;; *) CACREG_BUILD=$top/$CACREG_BUILD ;; esac

if [ -z "${CACREG_SSH_INSIDE:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "SKIP: $(basename "$0") needs root (namespaces, sshd)"; exit 77; }
    [ -x /usr/sbin/sshd ] || { echo "SKIP: no sshd (apt install openssh-server)"; exit 77; }
    command -v p11-kit >/dev/null || { echo "SKIP: no p11-kit"; exit 77; }
    exec env CACREG_SSH_INSIDE=1 unshare --net --mount --pid --fork --mount-proc \
        --propagation private "$0" "$@"
fi

# --- inside: our own /run (no pcscd socket, no other bench), /tmp and loopback
mount -t tmpfs -o mode=755 tmpfs /run
# A tree or build under the machine's /tmp (a clone there) stays where it was: the
# machine's /tmp is kept aside, and those directories bound into our own /tmp.
mkdir -m 700 /run/machine-tmp
mount --bind /tmp /run/machine-tmp
mount -t tmpfs -o mode=1777 tmpfs /tmp
for d in "$top" "$CACREG_BUILD"; do
    case "$d" in
    /tmp/?*)
        first=${d#/tmp/}
        first=${first%%/*}
        if [ ! -e "/tmp/$first" ]; then
            mkdir -m 755 "/tmp/$first"
            mount --bind "/run/machine-tmp/$first" "/tmp/$first"
        fi
        ;;
    esac
done
mkdir -m 755 /run/sshd
ip link set lo up
unset SSH_AUTH_SOCK XDG_RUNTIME_DIR PCSCLITE_CSOCK_NAME

ssh_dir=$here # this directory
bench_dir=$(cd "$here/../bench" && pwd)
here=$bench_dir # lib.sh and its helpers find the bench and the portal from $here
# shellcheck source-path=SCRIPTDIR source=../bench/lib.sh
. "$bench_dir/lib.sh"

T=$(mktemp -d /tmp/cacreg-ssh-test.XXXXXX)
chmod 755 "$T"
client_so=/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so

cleanup() {
    for f in "$T"/sshd*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
    [ -d "$T/portal" ] && "$portal" stop "$T/portal"
    [ -n "${CACREG_BENCH:-}" ] && "$bench_dir/bench" stop "$CACREG_BENCH"
    rm -rf "$T"
}
trap cleanup EXIT

# --- the local card
CACREG_BENCH=$("$bench_dir/bench" start)
eval "$("$bench_dir/bench" env "$CACREG_BENCH")"
export CACREG_BENCH PCSCLITE_CSOCK_NAME

# --- the test user, in this mount namespace only: a free UID from 61000 up
uid=61000
while getent passwd "$uid" >/dev/null || getent group "$uid" >/dev/null; do uid=$((uid + 1)); done
user=cacregt
cp /etc/passwd "$T/passwd"
cp /etc/group "$T/group"
echo "$user:x:$uid:$uid:cacreg ssh test:$T/home:/bin/sh" >>"$T/passwd"
echo "$user:x:$uid:" >>"$T/group"
mount --bind "$T/passwd" /etc/passwd
mount --bind "$T/group" /etc/group
mkdir -p "$T/home/.ssh" "$T/rlog" "$T/client" "$T/xdg"
chmod 700 "$T/client" "$T/xdg"

ssh-keygen -q -t ed25519 -N '' -C cacreg-test-host -f "$T/host_key"
ssh-keygen -q -t ed25519 -N '' -C cacreg-test-user -f "$T/client/id"
cp "$T/client/id.pub" "$T/home/.ssh/authorized_keys"
echo "cacreg-test-sshd $(cut -d' ' -f1,2 "$T/host_key.pub")" >"$T/client/known_hosts"
chown -R "$uid:$uid" "$T/home" "$T/rlog"

# --- sshd: one server, the forwarding policy by port
cat >"$T/sshd_config" <<EOF
ListenAddress 127.0.0.1:2222
ListenAddress 127.0.0.1:2223
ListenAddress 127.0.0.1:2224
ListenAddress 127.0.0.1:2225
HostKey $T/host_key
PidFile $T/sshd.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile $T/home/.ssh/authorized_keys
StrictModes no
PrintMotd no
PrintLastLog no
LogLevel VERBOSE
AllowStreamLocalForwarding yes
StreamLocalBindUnlink yes
Match LocalPort 2223
    AllowStreamLocalForwarding no
Match LocalPort 2224
    DisableForwarding yes
Match LocalPort 2225
    StreamLocalBindUnlink no
EOF
# StrictModes no: the keys live under /tmp (world-writable), which StrictModes refuses.
/usr/sbin/sshd -f "$T/sshd_config" -E "$T/sshd.log"
# A second sshd where p11-kit-client.so is missing: its own mount namespace hides it.
unshare --mount --propagation private sh -c "mount -t tmpfs tmpfs ${client_so%/*} &&
    exec /usr/sbin/sshd -f '$T/sshd_config' -E '$T/sshd2.log' -o PidFile='$T/sshd2.pid' \
        -o ListenAddress=127.0.0.1:2226"
sshds_up() { [ -s "$T/sshd.pid" ] && [ -s "$T/sshd2.pid" ]; }
within 5 sshds_up || true
listeners=" $(cat "$T/sshd.pid") $(cat "$T/sshd2.pid") "

cat >"$T/client/config" <<EOF
Host *
    HostName 127.0.0.1
    User $user
    IdentityFile $T/client/id
    IdentitiesOnly yes
    UserKnownHostsFile $T/client/known_hosts
    HostKeyAlias cacreg-test-sshd
    StrictHostKeyChecking yes
    BatchMode yes
    LogLevel ERROR
Host box
    Port 2222
Host noforward
    Port 2223
Host nodisable
    Port 2224
Host nounlink
    Port 2225
Host noclient
    Port 2226
EOF

# --- the "remote" cacreg: notes what the checks need, then runs the real one
cat >"$T/remote-cacreg" <<EOF
#!/bin/sh
[ "\$1" = ssh ] && exec "$bin" "\$@"
s=\${P11_KIT_SERVER_ADDRESS#unix:path=}
{
    echo "call \$\$ \$PPID \$(id -un) \$s \${PCSCLITE_CSOCK_NAME:-unset} \$*"
    echo "sock \$(stat -c '%a %U' "\$s")"
    for d in /proc/[0-9]*; do
        c=\$(cat "\$d/comm" 2>/dev/null) || continue
        case \$c in p11-kit-server|p11-kit-remote|sshd|ssh) echo "proc \${d#/proc/} \$c" ;; esac
    done
} >>"$T/rlog/calls"
exec "$bin" "\$@"
EOF
# A cacreg from before `cacreg ssh`: it knows no forwarded card.
cat >"$T/old-cacreg" <<EOF
#!/bin/sh
[ "\$1" = ssh ] && { echo "usage: cacreg ..." >&2; exit 4; }
exec "$bin" "\$@"
EOF
chmod 755 "$T/remote-cacreg" "$T/old-cacreg"

