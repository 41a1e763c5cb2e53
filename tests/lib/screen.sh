# What every screen test does with the program under test in a tmux pane: look
# at the screen, send keys, wait for text to come or go. Source it after
# setting `sock` (the test's own tmux server's socket); it needs `fail`.
#
#   screen [-e]              the pane as text (-e: with its escape sequences)
#   page                     the page's column left of the reader panel (80
#                            columns), as one line: wrapped text unwrapped
#   keys KEY...              tmux send-keys (names: Enter, Escape, C-c, ...)
#   typed TEXT               TEXT typed literally
#   wait_for TEXT [SECONDS]  until TEXT is on the screen (or on the page, unwrapped)
#   gone TEXT [SECONDS]      until TEXT is no longer on the screen
#   swap NAME                the card pulled, the front end showing no card, then
#                            card NAME in (PC/SC sees it): whatever comes on
#                            screen next is about NAME, never the card before
#   pane_pid                 the pid of the program the pane started (its shell)
#   pane_child               the pid of that shell's child: the program under test
#
# A failed wait prints the screen, then calls `on_wait_failure` if the test
# defines one (its logs, its stderr), then fails. SECONDS default to WAIT_SECONDS.

# shellcheck source=wait.sh
. "$(dirname "${BASH_SOURCE[0]}")/wait.sh"

screen() { tmux -S "$sock" capture-pane -p "$@"; }
page() { screen | cut -c1-48 | sed 's/^ *//; s/ *$//' | tr '\n' ' ' | tr -s ' '; }
keys() { tmux -S "$sock" send-keys "$@"; }
typed() { tmux -S "$sock" send-keys -l -- "$1"; }
pane_pid() { tmux -S "$sock" display -p '#{pane_pid}'; }
pane_child() { first_child "$(pane_pid)"; }

_shown() { screen | grep -qF -- "$1" || page | grep -qF -- "$1"; }
_not_shown() { ! screen | grep -qF -- "$1"; }
_wait_failed() {
    screen
    declare -F on_wait_failure >/dev/null && on_wait_failure
    fail "$1"
}

wait_for() {
    within "${2:-$WAIT_SECONDS}" _shown "$1" || _wait_failed "never on screen: $1"
}

gone() {
    within "${2:-$WAIT_SECONDS}" _not_shown "$1" || _wait_failed "still on screen: $1"
}

swap() {
    ctl remove
    wait_for "not inserted"
    ctl insert "$1"
    "$here/bench" wait "$CACREG_BENCH" present >/dev/null || fail "card $1 not seen by PC/SC"
}
