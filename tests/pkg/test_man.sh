#!/usr/bin/env bash
# The manual pages against the program, so that they cannot drift apart:
#  - the options each command's --help lists, and those cacreg(1) documents for it;
#  - the keys of core/config.c's table, cacreg.conf(5)'s, and data/cacreg.conf's
#    (which, uncommented, must be accepted);
#  - cacreg-kiosk(8)'s options and `cacreg-kiosk --help`, once the launcher is built;
#  - the polkit actions of data/50-cacreg-group.rules and core/reader.c's rule;
#  - mandoc -Tlint has nothing to say about the pages.
# No bench needed. CACREG_BIN picks the binary (default: $CACREG_BUILD/plain/cacreg).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${CACREG_BUILD:-$top/build}
bin=${CACREG_BIN:-$build/plain/cacreg}
kiosk_bin=${CACREG_KIOSK_BIN:-$build/plain/cacreg-kiosk}
portald_bin=${CACREG_PORTALD:-$build/plain/cacreg-portald}
man=$top/docs/man
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

fail() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }
ok() { echo "ok: $*"; }

# same WHAT LEFT-NAME LEFT RIGHT-NAME RIGHT: two lists (one item a line) hold the same items.
same() {
    local what=$1 lname=$2 left=$3 rname=$4 right=$5 only_left only_right
    only_left=$(comm -23 <(sort -u <<<"$left") <(sort -u <<<"$right") | paste -sd' ')
    only_right=$(comm -13 <(sort -u <<<"$left") <(sort -u <<<"$right") | paste -sd' ')
    if [ -z "$left" ] || [ -z "$right" ]; then
        fail "$what: nothing found in $([ -z "$left" ] && echo "$lname" || echo "$rname")"
    elif [ -n "$only_left$only_right" ]; then
        fail "$what:${only_left:+ only in $lname: $only_left}${only_left:+${only_right:+;}}${only_right:+ only in $rname: $only_right}"
    else
        ok "$what: $(wc -l < <(sort -u <<<"$left")) the same"
    fi
}

# man_options PAGE COMMAND: the options an mdoc page documents for COMMAND: those
# under OPTIONS (every command's) and, under COMMANDS, those in the subsection
# titled with its command line ("cacreg" for the front end, "cacreg status" ...).
# `cacreg ssh` takes few of OPTIONS' options: its subsection lists all it takes.
man_options() {
    awk -v want="$2" '
        /^\.Sh / { sec = $2; cmd = (sec == "OPTIONS" && want != "ssh") ? "*" : ""; next }
        /^\.Ss / && sec == "COMMANDS" { cmd = (NF == 2) ? $2 : $3; next }
        /^\.It / && (cmd == "*" || cmd == want) {
            for (i = 2; i < NF; i++)
                if ($i == "Fl" && $(i + 1) ~ /^-[a-z]/)
                    print "-" $(i + 1)
        }' "$1" | sort -u
}

# help_table: the option names of a --help's option table ("  --name ARG  what").
help_table() { sed -n 's/^ *\(--[a-z][a-z-]*\).*/\1/p' | sort -u; }

# The front end: its own --help (`cacreg --ascii --help`), and what the overview
# (`cacreg --help`) gives it on its own lines ("usage: cacreg [--mono] ...", "cacreg --version").
front=$({
    "$bin" --ascii --help | help_table
    "$bin" --help | sed -n 's/^\(usage:\)\{0,1\} *cacreg \([[-].*\)/\2/p' | grep -o -- '--[a-z][a-z-]*'
} | sort -u)
same "cacreg (front end) options" "--help" "$front" "cacreg.1" "$(man_options "$man/cacreg.1" cacreg)"
for cmd in status login register reset ssh; do
    same "cacreg $cmd options" "--help" "$("$bin" "$cmd" --help | help_table)" \
        "cacreg.1" "$(man_options "$man/cacreg.1" "$cmd")"
done

# The comparison notices a change: cacreg.1 without --watch differs from --help.
grep -v '^\.It Fl -watch$' "$man/cacreg.1" >"$tmp/cacreg.1"
if [ "$(man_options "$tmp/cacreg.1" status)" = "$("$bin" status --help | help_table)" ]; then
    fail "a page without --watch passed the comparison"
else
    ok "a page without --watch fails the comparison"
fi

# Keys: core/config.c's table, cacreg.conf(5)'s KEYS, the example's "#key = default" lines.
code_keys=$(sed -n 's/^ *[A-Z]*_KEY("\([a-z_0-9]*\)".*/\1/p' "$top/core/config.c")
page_keys=$(awk '/^\.Sh / { keys = ($2 == "KEYS") } keys && /^\.It Cm / { print $3 }' \
    "$man/cacreg.conf.5")
example_keys=$(sed -n 's/^#\{0,1\}\([a-z_][a-z_0-9]*\) =.*/\1/p' "$top/data/cacreg.conf")
same "configuration keys" "core/config.c" "$code_keys" "cacreg.conf.5" "$page_keys"
same "example configuration keys" "core/config.c" "$code_keys" "data/cacreg.conf" "$example_keys"

# The example's defaults, uncommented, are accepted (4 is a bad configuration),
# and a wrong key is not (so that the first check means something).
sed -n 's/^#\([a-z_][a-z_0-9]* =\)/\1/p' "$top/data/cacreg.conf" >"$tmp/uncommented.conf"
rc=0
"$bin" status --config "$tmp/uncommented.conf" --wait 0 >"$tmp/out" 2>&1 || rc=$?
if [ "$rc" = 4 ]; then
    fail "the example's defaults are refused: $(cat "$tmp/out")"
else
    ok "the example's defaults, uncommented, are accepted (status exit $rc)"
fi
echo "no_such_key = 1" >>"$tmp/uncommented.conf"
rc=0
"$bin" status --config "$tmp/uncommented.conf" --wait 0 >/dev/null 2>&1 || rc=$?
if [ "$rc" = 4 ]; then ok "an unknown key is refused (exit 4)"; else fail "an unknown key: exit $rc, want 4"; fi

# The kiosk launcher, once it is built.
if [ -x "$kiosk_bin" ]; then
    same "cacreg-kiosk options" "--help" "$("$kiosk_bin" --help | help_table)" \
        "cacreg-kiosk.8" "$(man_options "$man/cacreg-kiosk.8" -)"
else
    echo "skip: cacreg-kiosk options ($kiosk_bin not built)"
fi

# The portal: cacreg-portald(8)'s options and --help; portal/config.c's keys,
# portald.conf(5)'s and portal/portald.conf's (which, uncommented, must pass the
# syntax check: --check-config then speaks of files, not of keys).
if [ -x "$portald_bin" ]; then
    same "cacreg-portald options" "--help" "$("$portald_bin" --help | help_table | grep -v -- '--KEY')" \
        "cacreg-portald.8" "$(man_options "$man/cacreg-portald.8" - | grep -vx -- '--')"
    sed -n 's/^#\([a-z_][a-z_0-9]* =\)/\1/p' "$top/portal/portald.conf" >"$tmp/portald.conf"
    if "$portald_bin" --config "$tmp/portald.conf" --check-config 2>&1 | grep -q "unknown key\|is not"; then
        fail "portal/portald.conf's defaults are refused"
    else
        ok "portal/portald.conf's defaults, uncommented, are taken"
    fi
else
    echo "skip: cacreg-portald options ($portald_bin not built)"
fi
portald_code=$(sed -n 's/^ *[A-Z]*_KEY("\([a-z_0-9]*\)".*/\1/p' "$top/portal/config.c")
same "portald.conf keys" "portal/config.c" "$portald_code" "portald.conf.5" \
    "$(awk '/^\.Sh / { keys = ($2 == "KEYS") } keys && /^\.It Cm / { print $3 }' "$man/portald.conf.5")"
same "example portald.conf keys" "portal/config.c" "$portald_code" "portal/portald.conf" \
    "$(sed -n 's/^#\{0,1\}\([a-z_][a-z_0-9]*\) =.*/\1/p' "$top/portal/portald.conf")"

# The polkit rule shipped for a group allows what cacreg status suggests for a user.
same "polkit actions" "core/reader.c" "$(grep -o 'org\.debian\.pcsc-lite\.[a-z_]*' "$top/core/reader.c")" \
    "50-cacreg-group.rules" "$(grep -o 'org\.debian\.pcsc-lite\.[a-z_]*' "$top/data/50-cacreg-group.rules")"

# mandoc -Tlint, in the pages' directory so that they find each other. A page of
# another package (pcscd(8) ...) that this machine lacks is not the pages' fault.
cd "$man"
lint=$(mandoc -Tlint cacreg.1 cacreg.conf.5 cacreg-kiosk.8 cacreg-portald.8 portald.conf.5 2>&1 | grep -E '^mandoc: [^ ]+:[0-9]+:[0-9]+: ' |
    grep -vE 'referenced manual not found: Xr (pcscd|pkcs11-tool|polkit|ssh|sshd_config|p11-kit|systemd\.exec|bash) ') || true
if [ -z "$lint" ]; then ok "mandoc -Tlint: clean"; else fail "mandoc -Tlint: $lint"; fi

[ "$failed" = 0 ]
