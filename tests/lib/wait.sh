# One way for a test to wait: for an event, with a bound. Never a fixed sleep
# followed by a check. Source it; it needs `fail` (tests/bench/lib.sh has it).
#
#   within SECONDS COMMAND...   runs COMMAND every 50 ms until it succeeds: 0, or 1
#                               once SECONDS (decimals allowed) have passed
#   stays SECONDS COMMAND...    COMMAND keeps succeeding for SECONDS: 0, or 1 at its
#                               first failure. Only for "nothing may happen" checks,
#                               which no event can end early; each use says why
#   dead PID                    PID is not running (gone, or a zombie not yet reaped)
#   first_child PID             the pid of PID's first child (nothing when it has none)
#   quiet PID                   until PID's main thread is blocked in its event
#                               loop's wait (poll, select, epoll), its other threads
#                               asleep, no signal pending: it has handled what it
#                               was sent (bounded by WAIT_SECONDS)

# One bound for every wait that does not name its own: generous, since it costs
# nothing unless the event never comes (an ASan binary in a lane of a loaded machine).
WAIT_SECONDS=${WAIT_SECONDS:-20}

# The monotonic-enough clock in microseconds (EPOCHREALTIME's decimal point is the locale's).
_now_us() { echo "${EPOCHREALTIME//[!0-9]/}"; }
# SECONDS (e.g. 10, 0.5) in microseconds.
_us() {
    local whole=${1%%.*} frac=000000
    [[ $1 == *.* ]] && frac=${1#*.}000000
    echo $(( ${whole:-0} * 1000000 + 10#${frac:0:6} ))
}

within() {
    local end
    end=$(( $(_now_us) + $(_us "$1") ))
    shift
    while :; do
        "$@" && return 0
        [ "$(_now_us)" -lt "$end" ] || return 1
        sleep 0.05
    done
}

stays() {
    local end
    end=$(( $(_now_us) + $(_us "$1") ))
    shift
    while :; do
        "$@" || return 1
        [ "$(_now_us)" -lt "$end" ] || return 0
        sleep 0.05
    done
}

# _waiting PID: its main thread blocked in poll/ppoll/select/pselect6/epoll_wait/epoll_pwait(2),
# every other thread asleep, no signal pending.
_waiting() {
    local nr pending task state
    read -r nr _ <"/proc/$1/syscall" 2>/dev/null || return 1
    case "$nr" in 7 | 271 | 23 | 270 | 232 | 281 | 441) ;; *) return 1 ;; esac
    for task in /proc/"$1"/task/*; do
        { read -r state <"$task/stat"; } 2>/dev/null || return 1
        state=${state##*) }
        [ "${state:0:1}" = S ] || return 1
    done
    pending=$(sed -n 's/^\(SigPnd\|ShdPnd\):[[:space:]]*//p' "/proc/$1/status" 2>/dev/null)
    pending=${pending//[0$'\n']/}
    [ -z "$pending" ]
}
quiet() {
    within "$WAIT_SECONDS" _waiting "$1" || fail "pid $1 never went back to waiting"
}

# No pipes below: under pipefail, a reader that stops early (grep -q, head -1) fails
# the pipe with the writer's SIGPIPE now and then, and `set -e` ends the test unsaid.
first_child() {
    local kids=()
    mapfile -t kids < <(ps -o pid= --ppid "$1")
    [ ${#kids[@]} -gt 0 ] && echo $((kids[0]))
    return 0
}
dead() {
    local s
    { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 0
    s=${s##*) }
    [ "${s:0:1}" = Z ]
}
