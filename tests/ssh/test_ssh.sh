#!/usr/bin/env bash
# `cacreg ssh` against a real OpenSSH server on loopback, in namespaces of the
# test's own (network, mount, PID): the bench's card is the "local" one, read
# through p11-kit server; the "remote" side is an sshd session of a test user
# that cannot reach any pcscd, so it sees the card only through the forwarding
# (p11-kit-client.so). Proves: status lists the card; refused forwarding
# (AllowStreamLocalForwarding no, DisableForwarding yes), a stale socket, a
# socket of another user, no p11-kit here, no p11-kit-client.so there, no
# cacreg there and one too old each get their message; nothing is left on
# either side (sockets, files, processes, by path and by PID) after a normal
# end, Ctrl-C and ssh killed. CAC login (the card reset at the end, as a
# second client of pcscd sees it), registration, a pulled card and a wrong PIN
# through the forwarding (at once and on a slow card): the core polls
# p11-kit-client's slots (no PC/SC there).
#
# Runs as root (namespaces, sshd). The test user exists only inside the mount
# namespace (a copy of /etc/passwd and /etc/group bound over them), so the
# machine's user database is never changed.
#
# usage: tests/ssh/test_ssh.sh   (CACREG_BUILD, CACREG_BIN as for the bench tests)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=../lib/screen.sh
. "$(dirname "$0")/../lib/screen.sh"

ca=(--ca-bundle "$pki/ca-bundle.pem" --crl "$pki/inter.crl")
# cssh [cacreg ssh arguments...]: cacreg ssh with the test's client settings; exit in $rc,
# output in $T/out (stdout and stderr).
cssh() {
    rc=0
    XDG_RUNTIME_DIR=$T/xdg "$bin" ssh -F "$T/client/config" "$@" >"$T/out" 2>&1 || rc=$?
}
want() { # exit-status message...: CACREG_TEST_VERBOSE=1 shows every output
    [ -z "${CACREG_TEST_VERBOSE:-}" ] || { echo "--- ${*:2}: exit $rc"; cat "$T/out"; }
    [ "$rc" = "$1" ] || {
        cat "$T/out"
        echo "--- sshd's last words"
        tail -n 15 "$T/sshd.log" "$T/sshd2.log" 2>/dev/null
        fail "exit $rc, want $1: ${*:2}"
    }
}
has() { grep -qF -- "$1" "$T/out" || { cat "$T/out"; fail "no '$1' in the output"; }; }
# wait_exit PID LABEL: its exit status in $rc, within 20 s (else it is killed: a failure).
wait_exit() {
    within 20 dead "$1" || true
    alive_pid "$1" && { kill -KILL "$1"; cat "$T/out"; fail "$2: cacreg ssh did not end within 20 s"; }
    rc=0
    wait "$1" || rc=$?
}
alive_pid() { ! dead "$1"; }

# clean LABEL: nothing of the last session is left, on either side, within 5 s: the
# local private directory, the remote socket (by the path the remote side saw), every
# process the remote side saw while it ran (by PID; the sshd listeners excepted), and
# any p11-kit process at all (this PID namespace is the test's).
clean() {
    local pids sock left=
    touch "$T/rlog/calls" # the remote side may not have run at all
    pids=$(sed -n 's/^proc \([0-9]*\) .*/\1/p; s/^call \([0-9]*\) \([0-9]*\) .*/\1 \2/p' \
        "$T/rlog/calls" | tr ' ' '\n' | sort -u)
    sock=$(sed -n 's/^call [0-9]* [0-9]* [^ ]* \([^ ]*\) .*/\1/p' "$T/rlog/calls" | tail -1)
    leftovers() {
        left=
        for p in $pids; do
            case "$listeners" in *" $p "*) continue ;; esac
            [ "$p" = $$ ] && continue
            alive_pid "$p" && left="$left pid $p ($(cat "/proc/$p/comm" 2>/dev/null))"
        done
        for d in /proc/[0-9]*; do
            case $(cat "$d/comm" 2>/dev/null) in p11-kit-server | p11-kit-remote) left="$left ${d#/proc/}:p11-kit" ;; esac
        done
        [ -n "$sock" ] && [ -e "$sock" ] && left="$left remote socket $sock"
        [ -n "$(ls -A "$T/xdg")" ] && left="$left local $(ls -A "$T/xdg")"
        compgen -G "/tmp/cacreg-ssh-*.sock" >/dev/null && left="$left $(echo /tmp/cacreg-ssh-*.sock)"
        [ -z "$left" ]
    }
    within 5 leftovers || true
    [ -z "$left" ] || fail "$1: left behind:$left"
    rm -f "$T/rlog/calls"
}

# flow NAME COMMANDS...: one check of the flow through the forwarding; nothing left after.
flow() {
    local name=$1
    shift
    "$@"
    clean "$name"
    ok "$name"
}

insert valid

# 1. status lists the card, through p11-kit-client.so only
cssh --remote-cacreg "$T/remote-cacreg" box -- status "${ca[@]}"
want 0 "status through the forwarding"
has "PKCS#11 module: $client_so"
has "Card:           DOE.JANE.Q.1000000001 (Common Access Card"
has "* identity         JANE Q DOE, EDIPI 1000000001"
has "Pre-flight:     ok"
has "Smart cards:    the card reader of your computer, over SSH"
has "Reader:         Virtual CAC Reader 00 00: card present"
read -r _ _ _ ruser rsock rpcsc _ <"$T/rlog/calls"
[ "$ruser" = "$user" ] || fail "the remote side ran as $ruser"
[ "$rpcsc" = unset ] || fail "the remote side was given PCSCLITE_CSOCK_NAME=$rpcsc"
case "$rsock" in /tmp/cacreg-ssh-????????????????.sock) ;; *) fail "remote socket $rsock" ;; esac
grep -q "^sock 600 $user\$" "$T/rlog/calls" || fail "remote socket: $(grep '^sock' "$T/rlog/calls")"
clean status
ok "status through cacreg ssh: the card, via p11-kit-client.so (remote socket 0600, $user's; no pcscd there); nothing left"

# 2. two sessions at once: two sockets, no collision. The second starts once the first is
# up: two sessions that start at the same instant can deadlock OpenSC 0.23 in the second's
# C_Initialize when the first resets the card at its end (1 in 15 such pairs here); 4c
# shows that such a session then ends, and says so, rather than hang.
: >"$T/out2" # emptied here: what is polled for must come from this run
XDG_RUNTIME_DIR=$T/xdg env --default-signal=INT "$bin" ssh -F "$T/client/config" \
    --remote-cacreg "$T/remote-cacreg" -tt box -- status --watch "${ca[@]}" </dev/null >"$T/out2" 2>&1 &
p2=$!
within 10 grep -q "Pre-flight" "$T/out2" || true
grep -q "Pre-flight" "$T/out2" || { cat "$T/out2"; fail "first of two sessions did not report"; }
cssh --remote-cacreg "$T/remote-cacreg" box -- status "${ca[@]}"
want 0 "second of two sessions"
kill -INT "$p2"
wait_exit "$p2" "first of two sessions"
[ "$rc" = 130 ] || { cat "$T/out2"; fail "first of two sessions: exit $rc, want 130"; }
[ "$(grep -c '^call' "$T/rlog/calls")" = 2 ] || fail "two sessions: $(grep -c '^call' "$T/rlog/calls") calls"
[ "$(sed -n 's/^call [0-9]* [0-9]* [^ ]* \([^ ]*\) .*/\1/p' "$T/rlog/calls" | sort -u | wc -l)" = 2 ] ||
    fail "two sessions shared a socket"
clean "two sessions"
ok "two sessions at once: two remote sockets, both list the card; nothing left"

# 3. the local socket: mode 0600 in a 0700 directory; Ctrl-C ends it all (a background job
# of a script ignores SIGINT unless told otherwise)
: >"$T/out" # emptied here: what is polled for must come from this run
XDG_RUNTIME_DIR=$T/xdg env --default-signal=INT "$bin" ssh -F "$T/client/config" --remote-cacreg "$T/remote-cacreg" -tt box \
    -- status --watch "${ca[@]}" </dev/null >"$T/out" 2>&1 &
pid=$!
within 10 grep -q "Pre-flight" "$T/out" || true
grep -q "Pre-flight" "$T/out" || { cat "$T/out"; fail "status --watch did not report"; }
ldir=$(echo "$T"/xdg/cacreg-ssh.*)
[ "$(stat -c %a "$ldir")" = 700 ] || fail "local directory mode $(stat -c %a "$ldir")"
[ "$(stat -c %a "$ldir/p11-kit.sock")" = 600 ] || fail "local socket mode $(stat -c %a "$ldir/p11-kit.sock")"
kill -INT "$pid"
wait_exit "$pid" "Ctrl-C"
want 130 "Ctrl-C"
has "interrupted; the card is no longer lent to box"
clean "Ctrl-C"
ok "local socket 0600 in a 0700 directory; Ctrl-C: exit 130, nothing left on either side"

# 4. ssh killed mid-session
: >"$T/out" # emptied here: what is polled for must come from this run
XDG_RUNTIME_DIR=$T/xdg "$bin" ssh -F "$T/client/config" --remote-cacreg "$T/remote-cacreg" -tt box \
    -- status --watch "${ca[@]}" </dev/null >"$T/out" 2>&1 &
pid=$!
within 10 grep -q "Pre-flight" "$T/out" || true
sshpid=$(ps -o pid=,comm= --ppid "$pid" | awk '$2 == "ssh" { print $1 }')
[ -n "$sshpid" ] || fail "no ssh under cacreg ssh"
kill -KILL "$sshpid"
wait_exit "$pid" "ssh killed"
want 255 "ssh killed"
has "ssh was stopped by signal 9"
clean "ssh killed"
ok "ssh killed: exit 255, said so, nothing left on either side"

# 4b. the connection drops: the remote session's sshd goes away
: >"$T/out" # emptied here: what is polled for must come from this run
XDG_RUNTIME_DIR=$T/xdg "$bin" ssh -F "$T/client/config" --remote-cacreg "$T/remote-cacreg" -tt box \
    -- status --watch "${ca[@]}" </dev/null >"$T/out" 2>&1 &
pid=$!
within 10 grep -q "Pre-flight" "$T/out" || true
session_sshd=
while read -r _ p comm; do
    [ "$comm" = sshd ] || continue
    # the half that holds the connection runs as the user
    [ "$(stat -c %U "/proc/$p" 2>/dev/null)" = "$user" ] && session_sshd=$p
done < <(grep '^proc ' "$T/rlog/calls")
[ -n "$session_sshd" ] || fail "no session sshd seen"
kill -KILL "$session_sshd"
wait_exit "$pid" "connection dropped"
want 255 "connection dropped"
has "closed by remote host"
has "The connection to box ended before cacreg there finished"
clean "connection dropped"
ok "the connection dropped: exit 255, said so, nothing left on either side"

# 4c. a PKCS#11 module here that never returns (OpenSC 0.23 once deadlocked in C_Initialize
# when a second session reset the card; p11-kit remote finalizes the module before it
# serves, so a stuck C_Finalize does the same): the remote cacreg gives up at its card
# deadline, and the `p11-kit remote` stuck in the module, which would keep ssh's forwarded
# channel (and so the session) open for ever, is stopped.
cc -std=c11 -O2 -shared -fPIC -I/usr/include/p11-kit-1 "$ssh_dir/stuckmod.c" -ldl -o "$T/stuckmod.so"
printf 'card_timeout = 2\n' >"$T/fast.conf"
chmod 644 "$T/fast.conf"
for at in initialize finalize; do
    t0=$(date +%s%N)
    : >"$T/out" # emptied here: what is polled for must come from this run
    XDG_RUNTIME_DIR=$T/xdg STUCKMOD_AT=$at "$bin" ssh -F "$T/client/config" --module "$T/stuckmod.so" \
        --remote-cacreg "$T/remote-cacreg" box -- status --config "$T/fast.conf" "${ca[@]}" \
        </dev/null >"$T/out" 2>&1 &
    pid=$!
    wait_exit "$pid" "a module stuck in C_$at"
    took=$((($(date +%s%N) - t0) / 1000000))
    want 2 "stuck in C_$at"
    has "your computer's card cannot be reached"
    has "p11-kit here did not let the card go when cacreg on box finished"
    clean "a module stuck in C_$at"
    ok "a PKCS#11 module here stuck in C_$at: the session ends in $took ms, said so, nothing left on either side"
done

# 5. sshd refuses the forwarding
for host in noforward nodisable; do
    cssh --remote-cacreg "$T/remote-cacreg" "$host" -- status "${ca[@]}"
    want 2 "forwarding refused ($host)"
    has "Error: remote port forwarding failed for listen path /tmp/cacreg-ssh-"
    has "$host did not let this session forward the card"
    has "does not allow forwarding to a socket for you: 'AllowStreamLocalForwarding no'"
    clean "refused ($host)"
done
ok "AllowStreamLocalForwarding no, DisableForwarding yes: exit 2, said with the settings to change"

# 6. a stale socket: refused without StreamLocalBindUnlink, replaced with it
stale=/tmp/cacreg-ssh-test-stale.sock
setpriv --reuid="$uid" --regid="$uid" --clear-groups /usr/bin/python3 -c \
    "import socket; socket.socket(socket.AF_UNIX).bind('$stale')"
cssh --remote-cacreg "$T/remote-cacreg" --remote-socket "$stale" nounlink -- status "${ca[@]}"
want 2 "stale socket"
has "A socket left by an earlier session is in the way there. Remove it:"
has "ssh nounlink rm $stale"
has "'StreamLocalBindUnlink yes'"
[ -S "$stale" ] || fail "the stale socket went away by itself"
cssh --remote-cacreg "$T/remote-cacreg" --remote-socket "$stale" box -- status "${ca[@]}"
want 0 "stale socket, StreamLocalBindUnlink yes"
# A path of the person's choosing is kept (see cmd-ssh.c): this sshd replaces it next time.
[ -S "$stale" ] || fail "a chosen socket path was removed"
rm -f "$stale"
clean "stale socket replaced"
theirs=/tmp/cacreg-ssh-test-root.sock
/usr/bin/python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('$theirs')"
cssh --remote-cacreg "$T/remote-cacreg" --remote-socket "$theirs" box -- status "${ca[@]}"
want 2 "another user's socket"
has "Another user's socket is in the way there"
rm -f "$theirs"
clean "another user's socket"
ok "stale socket: exit 2 with 'rm' and StreamLocalBindUnlink; with it, replaced; another user's: said so"

# 7. what is missing, on either side
mkdir "$T/nop11"
ln -s /usr/bin/ssh "$T/nop11/ssh"
rc=0
PATH=$T/nop11 XDG_RUNTIME_DIR=$T/xdg "$bin" ssh -F "$T/client/config" box -- status >"$T/out" 2>&1 || rc=$?
want 2 "no p11-kit here"
has "p11-kit is not installed on this computer"
clean "no p11-kit here"
cssh --remote-cacreg "$T/remote-cacreg" noclient -- status "${ca[@]}"
want 2 "no p11-kit-client.so there"
has "p11-kit's client module (p11-kit-client.so) is not installed on noclient"
clean "no p11-kit there"
cssh --remote-cacreg /nonexistent/cacreg box -- status
want 127 "no cacreg there"
has "cacreg is not installed on box"
clean "no cacreg there"
cssh --remote-cacreg "$T/old-cacreg" box -- status
want 127 "an old cacreg there"
has "The cacreg on box is too old"
clean "old cacreg there"
cssh --module /nonexistent/opensc-pkcs11.so box -- status
want 2 "no module here"
has "No PKCS#11 module at /nonexistent/opensc-pkcs11.so"
cssh box -- ssh other
want 4 "ssh onwards"
cssh -N box
want 4 "ssh -N"
has "ssh's -N is not for a session that lends a card"
clean "options"
ok "no p11-kit here, no p11-kit-client.so there, no cacreg there, one too old, no module, bad options: each said"

# 8. what a remote flow can learn about the card through p11-kit-client.so, with the
# server started as cacreg ssh starts it (the CAC's token only): the facts the core's
# polling rests on. Checked, so that a p11-kit that behaves otherwise is noticed.
cc -std=c11 -O2 -I/usr/include/p11-kit-1 -pthread "$ssh_dir/slotevents.c" -ldl -o "$T/slotevents"
mkdir -m 700 "$T/p11"
p11-kit server --foreground --provider /usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so \
    --name "$T/p11/sock" 'pkcs11:manufacturer=Common%20Access%20Card' >"$T/p11/out" 2>&1 &
server=$!
within 5 [ -S "$T/p11/sock" ] || fail "p11-kit server: no socket"
# probe ARGS...: slotevents through the p11-kit server; in the background as its own PID
# (exec), so that stopping it stops it.
probe() { exec env -u PCSCLITE_CSOCK_NAME P11_KIT_SERVER_ADDRESS="unix:path=$T/p11/sock" \
    "$T/slotevents" "$client_so" "$@"; }
# server_ready: a module initialised through it (its socket is there before it listens).
server_ready() { (probe list >/dev/null 2>&1); }
within 10 server_ready || fail "p11-kit server: never answered"
# card_served: a module initialised through the server now has the card's slot (OpenSC
# in a new p11-kit remote may look before pcscd's card is ready for it).
card_served() { (probe list 2>/dev/null) | grep -q 'slots=1 present=1'; }
insert valid
within 15 card_served || fail "the server never offered the card"
# The probe polls until its count runs out; each step below waits for the probe to have
# seen the last one (its lines are flushed as they are written).
polled() { grep -q "$1" "$T/poll" 2>/dev/null; }
(probe poll 150 200 >"$T/poll") &
pp=$!
within 15 polled 'present=1' || { cat "$T/poll"; fail "card in: never seen"; }
ctl remove
within 15 polled 'present=0' || { cat "$T/poll"; fail "card out: never seen"; }
ctl insert valid2
"$bench_dir/bench" wait "$CACREG_BENCH" present >/dev/null
n=$(wc -l <"$T/poll")
back() { tail -n +"$((n + 1))" "$T/poll" | grep -q 'present=1 token=CKR_OK'; }
within 15 back || { cat "$T/poll"; fail "card back: never seen"; }
kill "$pp"
wait "$pp" || true
sed -n 2p "$T/poll" | grep -q 'slots=1 present=1 token=CKR_OK event=CKR_FUNCTION_NOT_SUPPORTED' ||
    { cat "$T/poll"; fail "card in: $(sed -n 2p "$T/poll")"; }
grep -q 'slots=1 present=0 token=CKR_TOKEN_NOT_PRESENT' "$T/poll" || { cat "$T/poll"; fail "card out"; }
tail -1 "$T/poll" | grep -q 'slots=1 present=1 token=CKR_OK' || { cat "$T/poll"; fail "card back"; }
(probe wait 1500 >"$T/wait")
grep -q 'wait=CKR_FUNCTION_NOT_SUPPORTED' "$T/wait" || { cat "$T/wait"; fail "blocking wait: $(cat "$T/wait")"; }
ctl remove
"$bench_dir/bench" wait "$CACREG_BENCH" absent >/dev/null
(probe poll 150 200 >"$T/poll") &
pp=$!
within 15 polled 'slots=' || { cat "$T/poll"; fail "no card at connect: the probe never polled"; }
ctl insert valid
"$bench_dir/bench" wait "$CACREG_BENCH" present >/dev/null
n=$(wc -l <"$T/poll")
more() { [ "$(wc -l <"$T/poll")" -ge $((n + 6)) ]; } # six polls with the card in PC/SC's view
within 15 more || { cat "$T/poll"; fail "no card at connect: the probe stopped polling"; }
kill "$pp"
wait "$pp" || true
[ "$(grep -c 'slots=[1-9]' "$T/poll")" = 0 ] || { cat "$T/poll"; fail "no card at connect: a slot came"; }
# The forwarding gone mid-session (the server and its p11-kit remote stopped): the next
# call dies of SIGPIPE unless it is ignored; ignored, CKR_DEVICE_ERROR from then on.
insert valid
for pipe in default ignored; do
    rc=0
    within 15 card_served || fail "forwarding gone: the server never offered the card"
    # The probe, started again if its module did not initialise (p11-kit's remote for it
    # can fail OpenSC's C_Initialize right after another remote let the card go: not
    # what this measures, which is the forwarding's end once the probe has the card).
    for _ in 1 2 3 4 5; do
        : >"$T/poll"
        if [ "$pipe" = ignored ]; then
            (trap '' PIPE; probe poll 150 40 >"$T/poll") &
        else
            (probe poll 150 40 >"$T/poll") &
        fi
        pp=$!
        within 15 polled 'initialize=' || break
        polled 'initialize=CKR_OK' && break
        wait "$pp" || true
    done
    within 15 polled 'slots=1' || { cat "$T/poll"; fail "forwarding gone: the probe never saw the card"; }
    # The server's p11-kit remote for this probe: its child, by PID (the server hands
    # each connection to one).
    remotes=$(ps -o pid= --ppid "$server" | tr -d ' ')
    [ -n "$remotes" ] || fail "forwarding gone: no p11-kit remote under the server"
    if [ "$pipe" = default ]; then
        kill "$server"
        wait "$server" || true
    fi
    # shellcheck disable=SC2086 # one or more PIDs
    kill $remotes 2>/dev/null || true
    wait "$pp" || rc=$?
    if [ "$pipe" = default ]; then
        [ "$rc" = 141 ] || { cat "$T/poll"; fail "forwarding gone, SIGPIPE default: exit $rc, want 141"; }
        p11-kit server --foreground --provider /usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so \
            --name "$T/p11/sock" 'pkcs11:manufacturer=Common%20Access%20Card' >"$T/p11/out" 2>&1 &
        server=$!
        within 10 server_ready || fail "p11-kit server: never answered"
    else
        if [ "$rc" != 0 ] || ! grep -q 'slots_rv=CKR_DEVICE_ERROR' "$T/poll"; then
            cat "$T/poll"
            fail "forwarding gone, SIGPIPE ignored: exit $rc"
        fi
    fi
done
kill "$server"
wait "$server" || true
ok "p11-kit-client.so, CAC token only: C_WaitForSlotEvent is CKR_FUNCTION_NOT_SUPPORTED (blocking or not); a pull and a re-insert show in C_GetSlotInfo; no card at C_Initialize: no slot until the next C_Initialize; the forwarding gone: SIGPIPE at the next call (exit 141), or CKR_DEVICE_ERROR with SIGPIPE ignored"

# 9. the flow through the forwarding: the core polls the module's slots (no PC/SC there)
port=$("$portal" start "$T/portal" --crl "$pki/inter.crl")
portal_url=https://localhost:$port/api/v1/
login_once() { # expected-exit pin: cacreg login --cac through cacreg ssh
    local want_rc=$1 pin=$2 rc=0
    printf '%s\n' "$pin" | XDG_RUNTIME_DIR=$T/xdg "$bin" ssh -F "$T/client/config" \
        --remote-cacreg "$T/remote-cacreg" box -- login --cac --pin-fd 0 "${ca[@]}" \
        --portal "$portal_url" >"$T/out" 2>&1 || rc=$?
    [ "$rc" = "$want_rc" ] || fail "exit $rc, want $want_rc: $(tr '\n' ' ' <"$T/out")"
}
cac_login() {
    local line got='' prc=0
    insert valid
    # Another client of this computer's pcscd, connected from before: once the session
    # is over (the p11-kit server gone), the card must not sign for it.
    coproc HOLDER { exec "$CACREG_BUILD/tests/cardprobe" --hold 2>&1; }
    # shellcheck disable=SC2153 # coproc sets HOLDER_PID
    local holder=$HOLDER_PID out=${HOLDER[0]}
    read -r -t 10 line <&"$out" || fail "cardprobe --hold: no answer"
    [ "$line" = held ] || fail "cardprobe --hold: '$line'"
    login_once 0 123456
    grep -q "Your CAC is registered\|This CAC was registered already" "$T/out" || fail "no registration said"
    if [ "$(counter verifies)" != 1 ] || [ "$(counter signatures)" != 1 ]; then
        fail "one login should cost one VERIFY and one signature: $(counter verifies)/$(counter signatures)"
    fi
    eval "exec ${HOLDER[1]}>&-"
    read -r -t 10 got <&"$out" || true
    wait "$holder" || prc=$?
    case "$got" in
    *sign=6982*) ;;
    *) fail "after cacreg ssh: a client with no PIN could use the card: '$got' (exit $prc)" ;;
    esac
}
register_password() {
    insert emailonly
    printf 'Email-Only-3\n246802\n' | XDG_RUNTIME_DIR=$T/xdg "$bin" ssh -F "$T/client/config" \
        --remote-cacreg "$T/remote-cacreg" box -- register --user linda.loe --password-fd 0 \
        --pin-fd 0 "${ca[@]}" --portal "$portal_url" >"$T/out" 2>&1 ||
        fail "exit $?: $(tr '\n' ' ' <"$T/out")"
    grep -q "Your CAC is registered." "$T/out" || fail "not registered: $(tr '\n' ' ' <"$T/out")"
    if [ "$(counter verifies)" != 1 ] || [ "$(counter signatures)" != 1 ]; then
        fail "one registration should cost one VERIFY and one signature: $(counter verifies)/$(counter signatures)"
    fi
}
wrong_pin() {
    ctl unblock valid
    insert valid
    login_once 3 999999
    grep -q "2 tries left" "$T/out" || fail "no count down: $(tr '\n' ' ' <"$T/out")"
    login_once 3 999999
    grep -q "1 try left" "$T/out" || fail "no count down: $(tr '\n' ' ' <"$T/out")"
    ctl unblock valid
}
card_pulled() { # the card pulled on this computer while the remote flow waits for the PIN
    local rc=0 fifo=$T/pin.fifo
    insert valid
    rm -f "$fifo"
    mkfifo "$fifo"
    : >"$T/out" # emptied here: what is polled for must come from this run
    XDG_RUNTIME_DIR=$T/xdg "$bin" ssh -F "$T/client/config" --remote-cacreg "$T/remote-cacreg" box \
        -- login --cac --pin-fd 0 "${ca[@]}" --portal "$portal_url" <"$fifo" >"$T/out" 2>&1 &
    local p=$!
    exec 7>"$fifo"
    within 10 grep -q "checked" "$T/out" || true
    ctl remove # returns once PC/SC here has seen the pull: whatever asks the card from now on finds it gone
    (trap '' PIPE; echo 123456 >&7) 2>/dev/null || true # the remote side may be gone
    exec 7>&-
    wait "$p" || rc=$?
    [ "$rc" = 1 ] || fail "card pulled: exit $rc, want 1: $(tr '\n' ' ' <"$T/out")"
    grep -q "The card was removed" "$T/out" || fail "card pulled: $(tr '\n' ' ' <"$T/out")"
    [ "$(counter verifies)" = 0 ] || fail "a VERIFY after the card was pulled"
}
# forwarded PID: cacreg ssh PID's p11-kit server has a p11-kit remote for the far side (in $remote).
forwarded() {
    local c
    remote=
    for c in $(ps -o pid= --ppid "$1"); do
        [ "$(cat "/proc/$c/comm" 2>/dev/null)" = p11-kit-server ] || continue
        remote=$(first_child "$c")
    done
    [ -n "$remote" ]
}
late_card() { # no card when the remote cacreg starts; it comes in while login --wait waits
    local rc=0 p first
    ctl remove
    "$here/bench" wait "$CACREG_BENCH" absent >/dev/null
    : >"$T/out" # emptied here: what is polled for must come from this run
    printf '123456\n' | XDG_RUNTIME_DIR=$T/xdg "$bin" ssh -F "$T/client/config" \
        --remote-cacreg "$T/remote-cacreg" box -- login --cac --pin-fd 0 --wait 60000 "${ca[@]}" \
        --portal "$portal_url" >"$T/out" 2>&1 &
    p=$!
    # The far side looked and saw no slot: it loads the module again while there is
    # none, so the p11-kit remote this side's server handed its first connection to
    # gives way to another one.
    within 60 forwarded "$p" || fail "card inserted late: the far side never used the forwarding"
    first=$remote
    another() { forwarded "$p"; [ "$remote" != "$first" ]; }
    within 60 another || fail "card inserted late: the far side never looked again"
    ctl insert valid
    wait "$p" || rc=$?
    [ "$rc" = 0 ] || fail "card inserted late: exit $rc: $(tr '\n' ' ' <"$T/out")"
}
real_pace() { # a slow card (50 ms per APDU; a real CAC answers in ~20): the first look at the slots takes
    # seconds through the forwarding, and the login waits for it (it said "cannot be
    # reached" after 3 s once)
    insert valid
    ctl delay 50
    login_once 0 123456
    ctl delay 0
    grep -q "Your CAC is registered\|This CAC was registered already" "$T/out" || fail "no registration said"
}
# The full-screen front end there, in a terminal here (tmux): the panel says where the card
# is, and a CAC login goes through.
tui_login() {
    local sock=$T/tmux.sock server
    insert valid
    rm -f "$T/tui.exit"
    cat >"$T/tui.sh" <<RUN
XDG_RUNTIME_DIR=$T/xdg "$bin" ssh -F "$T/client/config" --remote-cacreg "$T/remote-cacreg" box \
    -- --portal "$portal_url" ${ca[*]}
echo "\$?" >"$T/tui.exit"
sleep 600
RUN
    tmux -S "$sock" -f /dev/null new-session -d -x 100 -y 30 \
        "env LANG=C.UTF-8 TERM=xterm-256color bash $T/tui.sh"
    server=$(tmux -S "$sock" display -p '#{pid}')
    on_wait_failure() { kill "$server"; }
    screen_has() { wait_for "$1" 15; }
    screen_has "Your computer's card"
    screen_has "forwarded over SSH"
    screen_has "Card ready: JANE Q DOE"
    keys c
    screen_has "enter your CAC PIN"
    typed 123456
    keys Enter
    screen_has "You are logged in as jane.doe"
    keys Enter
    screen_has "Card ready: JANE Q DOE"
    keys q
    within 10 [ -s "$T/tui.exit" ] || true
    kill "$server" 2>/dev/null || true
    [ "$(cat "$T/tui.exit" 2>/dev/null)" = 0 ] || fail "full-screen through cacreg ssh: exit $(cat "$T/tui.exit" 2>/dev/null)"
}
flow "the full-screen front end through cacreg ssh: 'forwarded over SSH' on the panel, a CAC login, Q" tui_login
flow "CAC login through cacreg ssh: one VERIFY, one signature; the card reset when the session ends" cac_login
flow "CAC login through cacreg ssh on a slow card (50 ms per APDU)" real_pace
flow "a card inserted after the remote cacreg started: seen (the module initialised again), logged in" late_card
flow "password-path registration through cacreg ssh: one VERIFY, one signature" register_password
flow "a wrong PIN through cacreg ssh counts down: 2 tries left, then 1" wrong_pin
flow "the card pulled here ends the remote flow with 'card removed', no VERIFY" card_pulled
ctl unblock valid

if [ -n "${CACREG_TEST_VERBOSE:-}" ]; then
    echo "--- what sshd logged about the forwardings"
    grep -iE 'streamlocal|forward|unix_listener|unlink' "$T/sshd.log" | sort | uniq -c | sort -rn | head -20
fi
