#!/usr/bin/env bash
# Outside text on every output, and diagnoses that say what happened: cards
# whose names hold escape sequences, a newline, bidi controls, CJK, a label cut
# in the middle of a character, the EDIPI only in the UPN or in two versions;
# a portal that puts escape sequences in every string; cards that are not CACs
# or whose key cannot sign; a portal that never asks for the card. No byte of
# outside text reaches a terminal as a control: the raw output is checked.
# Needs a running bench (PCSCLITE_CSOCK_NAME, CACREG_BENCH): see tests/run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
tmp=$(mktemp -d)
sock=$tmp/tmux.sock
server_pid=
cleanup() {
    stop_tmux
    for p in main hostile errors nocert; do [ -d "$tmp/$p" ] && "$portal" stop "$tmp/$p"; done
    rm -rf "$tmp"
}
trap cleanup EXIT
main=$("$portal" start "$tmp/main" --crl "$pki/inter.crl")
hostile=$("$portal" start "$tmp/hostile" --crl "$pki/inter.crl" --fault hostile)
errors=$("$portal" start "$tmp/errors" --crl "$pki/inter.crl" --fault hostile=errors)
nocert=$("$portal" start "$tmp/nocert" --crl "$pki/inter.crl" --fault nocertreq)
pin_of() { awk -v p="$1" '$1 == p { print $8 }' "$here/../pki/personas.txt"; }

# clean FILE WHAT: no ESC, BEL, other C0 but \n and \t, DEL, C1 (U+0080-U+009F as
# UTF-8) or bidi control (U+202A-E, U+2066-9) in FILE's raw bytes.
clean() {
    if LC_ALL=C grep -qP '[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xaa-\xae]|\xe2\x81[\xa6-\xa9]' "$1"; then
        LC_ALL=C grep -naP '[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xaa-\xae]|\xe2\x81[\xa6-\xa9]' "$1" | cat -A | head -5
        fail "$2: outside text reached the output raw"
    fi
}
status() { # [options]: cacreg status, output in $tmp/out, exit status in $rc
    rc=0
    "$bin" status --ca-bundle "$pki/ca-bundle.pem" --crl "$pki/inter.crl" --reader "Virtual CAC" \
        "$@" >"$tmp/out" 2>&1 || rc=$?
}
login() { # PORT PERSONA [options]: cacreg login --cac, output in $tmp/out, exit status in $rc
    local port=$1 persona=$2
    shift 2
    rc=0
    pin_of "$persona" | "$bin" login --cac --pin-fd 0 --ca-bundle "$pki/ca-bundle.pem" \
        --crl "$pki/inter.crl" --reader "Virtual CAC" --portal "https://localhost:$port/api/v1/" \
        "$@" >"$tmp/out" 2>&1 || rc=$?
}

# A card whose names hold a screen clear, a colour, a window title and a newline.
insert escape
status
clean "$tmp/out" "status, escape card"
grep -qF 'EVIL\e[2J\e[31m' "$tmp/out" || { cat "$tmp/out"; fail "status: the escapes not shown visibly"; }
[ "$(grep -c '^Pre-flight:' "$tmp/out")" = 1 ] || { cat "$tmp/out"; fail "status: a newline in the CN made a line"; }
login "$main" escape
clean "$tmp/out" "login, escape card"
ok "escape sequences and a newline in a card's CN and UPN: shown as \\e, \\n; no control reaches the output"

insert bidi
status
clean "$tmp/out" "status, bidi card"
grep -qF '\u202e' "$tmp/out" || { cat "$tmp/out"; fail "status: U+202E not shown visibly"; }
ok "bidi controls in a card's name: shown as \\u202e, \\u2066"

# The label OpenSC cuts in the middle of a character: JSON still has the card.
insert longlabel
status --json
[ "$rc" = 0 ] || { cat "$tmp/out"; fail "status --json, cut label: exit $rc"; }
[ "$(json cards.0.reader <"$tmp/out")" = "Virtual CAC Reader 00 00" ] || { cat "$tmp/out"; fail "status --json: the card was dropped"; }
json cards.0.label <"$tmp/out" | grep -q $'\xef\xbf\xbd' || fail "status --json: the cut character not replaced"
ok "a token label cut mid-character: valid JSON, the card kept, U+FFFD for the cut"

# The EDIPI only in the UPN: the holder is still JANE Q DOE.
insert upnonly
status
grep -q '^  \* identity  *JANE Q DOE, EDIPI 1000000026' "$tmp/out" || { cat "$tmp/out"; fail "upnonly: holder"; }
ok "the EDIPI only in the UPN: holder 'JANE Q DOE'"

# Two EDIPIs: both said, and the card not 'ready'.
insert mismatch
status
[ "$rc" = 3 ] || fail "mismatch: exit $rc"
grep -q "says EDIPI 1000000027 and its UPN says EDIPI 1000000028" "$tmp/out" || { cat "$tmp/out"; fail "mismatch: the numbers"; }
login "$main" mismatch
[ "$rc" = 3 ] || { cat "$tmp/out"; fail "login, mismatch: exit $rc"; }
grep -q "two different DoD ID numbers" "$tmp/out" || { cat "$tmp/out"; fail "login, mismatch: words"; }
[ "$(counter verifies)" = 0 ] || fail "mismatch: the PIN was sent"
ok "CN and UPN EDIPIs that disagree: both numbers said, exit 3, no PIN sent"

# Not a CAC; an EC identity key OpenSC's CAC driver cannot sign with; a key the card refuses.
insert noncac
login "$main" valid
[ "$rc" = 3 ] || { cat "$tmp/out"; fail "noncac: exit $rc"; }
grep -q "not a CAC" "$tmp/out" || { cat "$tmp/out"; fail "noncac: words"; }
grep -q "removed" "$tmp/out" && { cat "$tmp/out"; fail "noncac: called removed"; }
insert ec
login "$main" ec
[ "$rc" = 3 ] || { cat "$tmp/out"; fail "ec: exit $rc"; }
grep -q "elliptic curve" "$tmp/out" || { cat "$tmp/out"; fail "ec: words"; }
[ "$(counter verifies)" = 0 ] || fail "ec: a PIN try was used"
insert nokey
login "$main" nokey
[ "$rc" = 3 ] || { cat "$tmp/out"; fail "nokey: exit $rc (the card failed to sign: a card problem)"; }
grep -q "cannot sign" "$tmp/out" || { cat "$tmp/out"; fail "nokey: words"; }
grep -q "not safe" "$tmp/out" && { cat "$tmp/out"; fail "nokey: called a TLS problem"; }
ok "not a CAC, an EC key (before the PIN), a key the card refuses to use: each said as a card problem, exit 3"

# A portal that never asks for the card: no CAC login, said so.
insert valid
login "$nocert" valid
[ "$rc" = 6 ] || { cat "$tmp/out"; fail "nocertreq: exit $rc"; }
grep -q "without asking for your card's certificate" "$tmp/out" || { cat "$tmp/out"; fail "nocertreq: words"; }
ok "a portal that logs in without asking for the card: refused as not the portal, exit 6"

# A portal with escape sequences in every string, in its yes and in its no.
login "$hostile" valid
[ "$rc" = 0 ] || { cat "$tmp/out"; fail "hostile: exit $rc"; }
clean "$tmp/out" "login, hostile portal"
grep -qF '\e[2J' "$tmp/out" || { cat "$tmp/out"; fail "hostile: not shown visibly"; }
insert noaccount
login "$errors" noaccount
[ "$rc" = 5 ] || { cat "$tmp/out"; fail "hostile=errors: exit $rc"; }
clean "$tmp/out" "login failure, hostile portal"
ok "a portal's escape sequences (ESC [2J, OSC 0, OSC 52, C1 CSI, bidi, newline) in a yes and a no: shown visibly"

# The screen: the same cards and portal, in tmux; the raw screen (capture-pane -e)
# holds only cacreg's own sequences, the pane's title is untouched, the panel's border
# stands at column 80 whatever the name's width.
tui() { # PORT
    stop_tmux
    cat >"$tmp/run.sh" <<RUN
env LANG=C.UTF-8 TERM=xterm-256color "$bin" --portal https://localhost:$1/api/v1/ \
    --ca-bundle $pki/ca-bundle.pem --crl $pki/inter.crl --reader 'Virtual CAC' 2>"$tmp/stderr"
sleep 600
RUN
    tmux -S "$sock" -f /dev/null new-session -d -x 80 -y 24 "bash $tmp/run.sh"
    server_pid=$(tmux -S "$sock" display -p '#{pid}')
    tmux -S "$sock" select-pane -T cacreg-test
}
# shellcheck source=../lib/screen.sh
. "$here/../lib/screen.sh"
border() { # WHAT: every panel row ends at column 80 with its border
    local bad
    bad=$(screen | sed -n '4,18p' | /usr/bin/python3 -c '
import sys, unicodedata
for line in sys.stdin.read().splitlines():
    cols = sum(0 if unicodedata.combining(c) or unicodedata.category(c) == "Cf" else
               2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)
    if cols != 80 or not line.endswith("\u2502"):
        print(cols, line)')
    [ -z "$bad" ] || { screen; echo "$bad"; fail "$1: the panel's border moved"; }
}
insert escape
tui "$main"
wait_for "3 read, identity found"
tmux -S "$sock" capture-pane -p -e >"$tmp/raw"
# cacreg's own sequences are CSI colours; nothing of the card's (no clear, no title, no BEL)
LC_ALL=C grep -qP '\x1b\]|\x07|\x1b\[2J|\x1b\[31m' "$tmp/raw" && { cat -A "$tmp/raw" | head; fail "screen: the card's sequences reached the terminal"; }
[ "$(tmux -S "$sock" display -p '#{pane_title}')" = cacreg-test ] || fail "screen: the card retitled the window"
screen | grep -qF 'EVE\e]0;pwned' || { screen; fail "screen: the escapes not shown visibly"; }
ok "screen, escape card: its sequences shown visibly, none sent to the terminal, the title untouched"
for persona in cjk combining emoji longcn; do
    swap "$persona"
    wait_for "3 read, identity found"
    border "$persona"
done
ok "screen, CJK, combining accents, emoji and a 2 KB name: the panel's border at column 80"
swap mismatch
wait_for "3 read, identity found"
wait_for "names two EDIPIs"
screen | grep -qF "Card ready" && { screen; fail "screen: a card with two EDIPIs is 'ready'"; }
ok "screen, two EDIPIs: no 'Card ready', the panel says 'names two EDIPIs'"
tui "$hostile"
wait_for "names two EDIPIs"
swap valid
wait_for "Card ready"
keys c
wait_for "enter your CAC PIN"
typed 123456
keys Enter
wait_for "You are logged in as"
tmux -S "$sock" capture-pane -p -e >"$tmp/raw"
LC_ALL=C grep -qP '\x1b\]|\x07|\x1b\[2J|\xc2\x9b|\xe2\x80\xae' "$tmp/raw" && { cat -A "$tmp/raw" | head; fail "screen: the portal's sequences reached the terminal"; }
[ "$(tmux -S "$sock" display -p '#{pane_title}')" = cacreg-test ] || fail "screen: the portal retitled the window"
ok "screen, hostile portal: its sequences shown visibly, none sent, the title untouched"
