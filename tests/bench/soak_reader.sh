#!/usr/bin/env bash
# The bench's reader under pulls (issue 20): SOAK_PULLS times (default 500), a card
# is pulled at a random point of a transfer (cacreg status reading it, 0-50 ms per
# APDU) and the next one inserted at once, as a person swapping cards does. A real
# reader reports every pull and the next card; so must the bench's. A reader is
# wedged when PC/SC does not see the pull within 2 s or the next card within 5 s.
# Prints "pulls N, wedged W" and each wedge's pcscd state; exit 1 on any wedge.
# Needs a running bench (PCSCLITE_CSOCK_NAME, CACREG_BENCH): see tests/run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
pulls=${SOAK_PULLS:-500}
RANDOM=${SOAK_SEED:-2020}
wedged=0 done=0
out=$(mktemp)
trap 'rm -f "$out"; ctl delay 0 || true' EXIT

ms() { echo $(($(date +%s%N) / 1000000)); }
ctl unblock valid
insert valid
t_start=$(ms)
for i in $(seq "$pulls"); do
    delay=$((RANDOM % 51))
    # A status read is ~90 APDUs: pull somewhere in it (or just after).
    after=$((RANDOM % (100 + 95 * delay)))
    ctl delay "$delay"
    "$bin" status --ca-bundle "$pki/ca-bundle.pem" --reader "Virtual CAC" >"$out" 2>&1 &
    pid=$!
    sleep "$((after / 1000)).$(printf '%03d' $((after % 1000)))" # the pull's moment: the experiment
    ctl remove
    wait "$pid" || true
    if ! "$here/bench" wait "$CACREG_BENCH" absent 2000 >/dev/null 2>&1; then
        wedged=$((wedged + 1))
        echo "wedged at pull $i ($delay ms/APDU, after $after ms): the pull was never seen"
        break
    fi
    ctl insert valid
    if ! "$here/bench" wait "$CACREG_BENCH" present 5000 >/dev/null 2>&1; then
        wedged=$((wedged + 1))
        echo "wedged at pull $i ($delay ms/APDU, after $after ms): the next card was never seen"
        break
    fi
    done=$i
done
echo "pulls $done, wedged $wedged ($(( ($(ms) - t_start) / 1000 )) s)"
[ "$wedged" = 0 ]
