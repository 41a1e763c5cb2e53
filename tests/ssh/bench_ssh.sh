#!/usr/bin/env bash
# Figures, no assertions: `cacreg status` and a `cacreg login --cac` on the
# bench's card through `cacreg ssh` (sshd on loopback, tests/ssh/lib.sh's stage)
# beside the same runs locally: wall time, the card's APDUs (bench counters), PKCS#11 calls
# (pkcs11-spy: under cacreg, and under the p11-kit server, where OpenSC
# works), and what the forwarding costs (ssh's connection, one PKCS#11 round
# trip on the socket and through ssh -R).
#
# usage: tests/ssh/bench_ssh.sh   BENCH_RUNS (default 5), BENCH_DELAY ms per APDU
#                                 (default 0; a real CAC answers in about 20)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

runs=${BENCH_RUNS:-5}
delay=${BENCH_DELAY:-0}
mods=/usr/lib/x86_64-linux-gnu/pkcs11
ca=(--ca-bundle "$pki/ca-bundle.pem")
ms() { echo $(($(date +%s%N) / 1000000)); }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
calls() { grep -cE '^[0-9]+: C_' "$1" || true; }   # pkcs11-spy's log: one "N: C_Name" per call
rtrips() { grep -E '^[0-9]+: C_' "$1" | grep -vc 'C_GetFunctionList' || true; }

# The remote cacreg, timed: how long cacreg itself ran there.
cat >"$T/timed-cacreg" <<EOF
#!/bin/sh
[ "\$1" = ssh ] && exec "$bin" "\$@"
start=\$(date +%s%N)
"$bin" "\$@"
rc=\$?
echo "\$(( (\$(date +%s%N) - start) / 1000000 ))" >>"$T/rlog/remote_ms"
exit \$rc
EOF
# The remote cacreg under pkcs11-spy: the module the remote script names (p11-kit-client.so,
# the argument after --module) goes under the spy; every call it logs is one round trip.
# The spy is copied under a p11-kit-client name so that cacreg there still works in its
# forwarded mode (slots polled, no PC/SC), as it does with the real client module.
cp "$mods/pkcs11-spy.so" "$T/p11-kit-client-spy.so"
cat >"$T/spy-cacreg" <<EOF
#!/bin/sh
[ "\$1" = ssh ] && exec "$bin" "\$@"
cmd=\$1; module=\$3; shift 3
PKCS11SPY=\$module PKCS11SPY_OUTPUT=$T/rlog/spy-remote.log exec "$bin" "\$cmd" --module $T/p11-kit-client-spy.so "\$@"
EOF
chmod 755 "$T/timed-cacreg" "$T/spy-cacreg"
cc -std=c11 -O2 -I/usr/include/p11-kit-1 -pthread "$ssh_dir/slotevents.c" -ldl -o "$T/slotevents"

ctl delay "$delay"
local_ms=() local_apdus=() ssh_ms=() ssh_apdus=() remote_ms=() nowait_ms=()
for _ in $(seq "$runs"); do
    insert valid
    t0=$(ms)
    "$bin" status "${ca[@]}" >/dev/null
    local_ms+=($(($(ms) - t0)))
    local_apdus+=("$(counter apdus)")
    insert valid
    t0=$(ms)
    "$bin" ssh -F "$T/client/config" --remote-cacreg "$T/timed-cacreg" box -- status "${ca[@]}" >/dev/null
    ssh_ms+=($(($(ms) - t0)))
    ssh_apdus+=("$(counter apdus)")
    insert valid
    t0=$(ms)
    "$bin" ssh -F "$T/client/config" --remote-cacreg "$bin" box -- status --wait 0 "${ca[@]}" >/dev/null
    nowait_ms+=($(($(ms) - t0)))
done
mapfile -t remote_ms <"$T/rlog/remote_ms"

# PKCS#11 calls: locally (cacreg on OpenSC); through the forwarding, as the remote
# cacreg makes them (each a round trip) and as p11-kit makes them on OpenSC here.
insert valid
PKCS11SPY=$mods/opensc-pkcs11.so PKCS11SPY_OUTPUT=$T/spy-local.log \
    "$bin" status "${ca[@]}" --module "$mods/pkcs11-spy.so" >/dev/null
insert valid
PKCS11SPY=$mods/opensc-pkcs11.so PKCS11SPY_OUTPUT=$T/spy-server.log \
    "$bin" ssh -F "$T/client/config" --module "$mods/pkcs11-spy.so" --remote-cacreg "$T/spy-cacreg" \
    box -- status "${ca[@]}" >/dev/null
mv "$T/rlog/spy-remote.log" "$T/spy-status-remote.log"

# A CAC login against the reference portal, here and through cacreg ssh: wall time,
# APDUs, and PKCS#11 calls (pkcs11-spy, as above).
port=$("$portal" start "$T/portal" --crl "$pki/inter.crl")
login=(login --cac --pin-fd 0 "${ca[@]}" --portal "https://localhost:$port/api/v1/")
llocal_ms=() llocal_apdus=() lssh_ms=() lssh_apdus=()
for _ in $(seq "$runs"); do
    insert valid
    t0=$(ms)
    printf '123456\n' | "$bin" "${login[@]}" >/dev/null
    llocal_ms+=($(($(ms) - t0)))
    llocal_apdus+=("$(counter apdus)")
    insert valid
    t0=$(ms)
    printf '123456\n' | "$bin" ssh -F "$T/client/config" --remote-cacreg "$bin" box -- "${login[@]}" >/dev/null
    lssh_ms+=($(($(ms) - t0)))
    lssh_apdus+=("$(counter apdus)")
done
insert valid
printf '123456\n' | PKCS11SPY=$mods/opensc-pkcs11.so PKCS11SPY_OUTPUT=$T/spy-login-local.log \
    "$bin" "${login[@]}" --module "$mods/pkcs11-spy.so" >/dev/null
insert valid
printf '123456\n' | "$bin" ssh -F "$T/client/config" --remote-cacreg "$T/spy-cacreg" box -- "${login[@]}" >/dev/null
mv "$T/rlog/spy-remote.log" "$T/spy-login-remote.log"
"$portal" stop "$T/portal"

# The forwarding alone: ssh's connection and a command; one PKCS#11 round trip.
conn=()
for _ in $(seq "$runs"); do
    t0=$(ms)
    ssh -F "$T/client/config" box true
    conn+=($(($(ms) - t0)))
done
mkdir -m 700 "$T/p11"
t0=$(ms)
p11-kit server --foreground --provider "$mods/opensc-pkcs11.so" --name "$T/p11/sock" \
    'pkcs11:manufacturer=Common%20Access%20Card' >"$T/p11/out" 2>&1 &
server=$!
until [ -S "$T/p11/sock" ]; do sleep 0.005; done
server_ms=$(($(ms) - t0))
rtt_socket=$(env -u PCSCLITE_CSOCK_NAME P11_KIT_SERVER_ADDRESS="unix:path=$T/p11/sock" \
    "$T/slotevents" "$mods/p11-kit-client.so" rtt 2000 | sed -n 's/^rtt_us=//p')
rs=/tmp/cacreg-ssh-bench.sock
rtt_ssh=$(ssh -F "$T/client/config" -o ExitOnForwardFailure=yes -R "$rs:$T/p11/sock" box \
    "P11_KIT_SERVER_ADDRESS=unix:path=$rs $T/slotevents $mods/p11-kit-client.so rtt 2000; rm -f $rs" |
    sed -n 's/^rtt_us=//p')
kill "$server"
wait "$server" || true
ctl delay 0

lm=$(printf '%s\n' "${local_ms[@]}" | median)
sm=$(printf '%s\n' "${ssh_ms[@]}" | median)
rm_=$(printf '%s\n' "${remote_ms[@]}" | median)
cm=$(printf '%s\n' "${conn[@]}" | median)
echo "cacreg status on the bench's card (valid), median of $runs runs, card delay $delay ms/APDU"
printf '  %-34s %8s %7s %15s\n' "" "wall ms" "APDUs" "PKCS#11 calls"
printf '  %-34s %8s %7s %15s\n' "locally (cacreg on OpenSC)" "$lm" "$(printf '%s\n' "${local_apdus[@]}" | median)" \
    "$(calls "$T/spy-local.log")"
printf '  %-34s %8s %7s %15s\n' "through cacreg ssh (whole command)" "$sm" "$(printf '%s\n' "${ssh_apdus[@]}" | median)" \
    "$(calls "$T/spy-status-remote.log")"
printf '  %-34s %8s\n' "  of which cacreg on the remote side" "$rm_"
printf '  %-34s %8s\n' "through cacreg ssh, status --wait 0" "$(printf '%s\n' "${nowait_ms[@]}" | median)"
echo "  through cacreg ssh, PKCS#11: $(rtrips "$T/spy-status-remote.log") round trips over the forwarding" \
    "(every call but C_GetFunctionList); $(calls "$T/spy-server.log") calls by p11-kit on OpenSC here" \
    "(its own token walk at each connection included)"
lm2=$(printf '%s\n' "${llocal_ms[@]}" | median)
sm2=$(printf '%s\n' "${lssh_ms[@]}" | median)
echo "cacreg login --cac against the reference portal, median of $runs runs, card delay $delay ms/APDU"
printf '  %-34s %8s %7s %15s\n' "" "wall ms" "APDUs" "PKCS#11 calls"
printf '  %-34s %8s %7s %15s\n' "locally (cacreg on OpenSC)" "$lm2" \
    "$(printf '%s\n' "${llocal_apdus[@]}" | median)" "$(calls "$T/spy-login-local.log")"
printf '  %-34s %8s %7s %15s\n' "through cacreg ssh (whole command)" "$sm2" \
    "$(printf '%s\n' "${lssh_apdus[@]}" | median)" "$(calls "$T/spy-login-remote.log")"
echo "  cost of the forwarding for a login: $((sm2 - lm2)) ms"
echo "the forwarding: ssh connection and 'true' $cm ms; p11-kit server up in $server_ms ms;"
echo "  one PKCS#11 round trip (C_GetSlotList): ${rtt_socket} us on the local socket, ${rtt_ssh} us through ssh -R"
echo "cost of the forwarding for status: $((sm - lm)) ms (through minus locally)"
