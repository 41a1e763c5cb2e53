#!/usr/bin/env bash
# shellcheck disable=SC2015 # `test && ok ... || fail ...`: ok never fails
# The Debian package, installed: builds it (`make deb-build`, or takes the
# .debs in CACREG_DEBS), installs it with dpkg -i, checks the installed
# cacreg --version, every manual page under man -l, cacreg status --json (on
# the bench when PCSCLITE_CSOCK_NAME points at one), the completion, the
# group and the conffiles; then dpkg -r leaves only the conffiles and dpkg
# --purge leaves nothing, by the file lists before and after. A trap purges
# whatever happens. Where installing would disturb this machine (a cacreg
# package already installed, a file of the package already there, not root)
# the package is unpacked with dpkg-deb -x instead and the checks that need an
# installed package are skipped, saying so.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${CACREG_BUILD:-$top/build}
pki=${CACREG_PKI:-$build/pki}
tmp=$(mktemp -d)
installed=()
group_made=false
portal_user_made=false
failed=0

fail() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }
ok() { echo "ok: $*"; }
skip() { echo "skip: $*"; }

cleanup() {
    if [ ${#installed[@]} -gt 0 ]; then
        dpkg --purge "${installed[@]}" >/dev/null 2>&1 || true
    fi
    if $portal_user_made && getent passwd cacreg-portal >/dev/null; then
        deluser --system --quiet cacreg-portal || true
        delgroup --system --quiet cacreg-portal 2>/dev/null || true
    fi
    if $group_made && getent group cacreg >/dev/null; then
        getent passwd cacreg-kiosk >/dev/null && deluser --system --quiet cacreg-kiosk
        delgroup --system --quiet cacreg || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# json PATH <file: one value of a JSON document (lists indexed by number).
json() {
    /usr/bin/python3 -c 'import json,sys
d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d = d[int(k)] if isinstance(d, list) else d[k]
print(d)' "$1"
}

# The file names under the places a package writes, less what changes by itself:
# dpkg's and apt's own state, caches (man-db's index), logs, and the backups
# adduser keeps of /etc/group and friends.
files() {
    find /etc /usr /opt /var -xdev \( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/cache \
        -o -path /var/log -o -path /var/tmp -o -path /var/lib/systemd -o -path /var/lib/ucf \) -prune \
        -o -print 2>/dev/null | grep -vxE '/etc/(passwd|group|shadow|gshadow|subuid|subgid)-' | sort
}

# ---- the packages ----
t0=$(date +%s%N)
debs=${CACREG_DEBS:-}
if [ -z "$debs" ]; then
    make -C "$top" --no-print-directory BUILD="$build" deb-build >"$tmp/build.log" 2>&1 ||
        { tail -30 "$tmp/build.log"; fail "make deb-build"; exit 1; }
    debs=$build/deb
fi
deb=$(ls "$debs"/cacreg_*.deb)
kiosk_deb=$(ls "$debs"/cacreg-kiosk_*.deb 2>/dev/null || true)
portal_deb=$(ls "$debs"/cacreg-portal_*.deb)
version=$(cat "$top/VERSION")
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] && ok "package version $version, as VERSION says" ||
    fail "package version $(dpkg-deb -f "$deb" Version), VERSION $version"
echo "built in $((($(date +%s%N) - t0) / 1000000)) ms"

# ---- install, or unpack where installing would disturb the machine ----
why_not=
if [ "$(id -u)" != 0 ]; then
    why_not="not root"
elif dpkg-query -W -f='${db:Status-Status}' cacreg 2>/dev/null | grep -qv '^not-installed$'; then
    why_not="a cacreg package is installed here"
else
    for d in $deb $kiosk_deb $portal_deb; do
        while read -r path; do
            [ -e "$path" ] && [ ! -d "$path" ] && why_not="$path is already there" && break 2
        done < <(dpkg-deb --fsys-tarfile "$d" | tar -t | sed 's|^\./|/|')
    done
fi

if [ -z "$why_not" ]; then
    root=
    getent group cacreg >/dev/null || group_made=true
    getent passwd cacreg-portal >/dev/null || portal_user_made=true
    files >"$tmp/before"
    t0=$(date +%s%N)
    installed=(cacreg)
    to_install=("$deb")
    [ -z "$kiosk_deb" ] || { installed+=(cacreg-kiosk); to_install+=("$kiosk_deb"); }
    installed+=(cacreg-portal)
    to_install+=("$portal_deb")
    if dpkg -i "${to_install[@]}" >"$tmp/dpkg.log" 2>&1; then
        ok "dpkg -i $(basename "$deb") $(basename "${kiosk_deb:-}") $(basename "$portal_deb") ($((($(date +%s%N) - t0) / 1000000)) ms)"
    else
        cat "$tmp/dpkg.log"
        fail "dpkg -i"
        exit 1
    fi
    echo "installed files:"
    dpkg -L "${installed[@]}" | while read -r f; do [ -d "$f" ] || echo "    $f"; done
else
    skip "installing ($why_not): unpacked with dpkg-deb -x instead"
    root=$tmp/root
    dpkg-deb -x "$deb" "$root"
    [ -z "$kiosk_deb" ] || dpkg-deb -x "$kiosk_deb" "$root"
    dpkg-deb -x "$portal_deb" "$root"
fi
bin=$root/usr/bin/cacreg
portald=$root/usr/sbin/cacreg-portald
[ "$("$portald" --version)" = "cacreg-portald $version" ] && ok "cacreg-portald --version: $version" ||
    fail "cacreg-portald --version says '$("$portald" --version)'"
# The shipped configuration, the test PKI's files in place of the site's: --check-config passes.
sed -e "s|^#tls_cert = .*|tls_cert = $pki/server.pem|" -e "s|^#tls_key = .*|tls_key = $pki/server.key|" \
    -e "s|^#tls_client_ca = .*|tls_client_ca = $pki/tls-accept.pem|" \
    -e "s|^#ca_bundle = .*|ca_bundle = $pki/ca-bundle.pem|" "$root/etc/cacreg/portald.conf" >"$tmp/portald.conf"
chmod o-r "$pki/server.key"
"$portald" --config "$tmp/portald.conf" --check-config >"$tmp/check" 2>&1 &&
    ok "the shipped portald.conf with a site's files: --check-config passes" ||
    fail "cacreg-portald --check-config: $(cat "$tmp/check")"

# ---- what it says about itself ----
"$bin" --version >"$tmp/version"
if [ "$(head -1 "$tmp/version")" = "cacreg $version" ]; then
    ok "cacreg --version: cacreg $version"
else
    fail "cacreg --version says '$(head -1 "$tmp/version")', want 'cacreg $version'"
fi
for lib in OpenSSL libcurl libp11 pcsc-lite ncurses jansson; do
    grep -q "^$lib: *[^ ]" "$tmp/version" || fail "cacreg --version names no $lib version"
done
ok "cacreg --version names OpenSSL, libcurl, libp11, pcsc-lite, ncurses, jansson"

# ---- the manual pages render without a warning ----
if [ -z "$root" ]; then
    pages=$(dpkg -L "${installed[@]}" | grep '^/usr/share/man/.*\.gz$' | sort)
else
    pages=$(find "$root/usr/share/man" -name '*.gz' | sort)
fi
[ -n "$pages" ] || fail "no manual page installed"
for page in $pages; do
    warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >"$tmp/page") || true
    if [ -n "$warnings" ] || [ ! -s "$tmp/page" ]; then
        fail "man -l $page: ${warnings:-nothing rendered}"
    else
        ok "man -l ${page#"$root"}: $(wc -l <"$tmp/page") lines, no warning"
    fi
done
if [ -z "$root" ]; then
    [ "$(man -w cacreg.conf 2>/dev/null)" = /usr/share/man/man5/cacreg.conf.5.gz ] &&
        ok "man finds cacreg.conf(5) by name" || fail "man -w cacreg.conf: $(man -w cacreg.conf 2>&1)"
fi

# ---- cacreg status --json: on the bench, or whatever this machine has ----
rc=0
if [ -n "${PCSCLITE_CSOCK_NAME:-}" ]; then
    if [ -n "${CACREG_BENCH:-}" ]; then
        bench=$top/tests/bench/bench
        "$bench" ctl "$CACREG_BENCH" remove >/dev/null
        "$bench" wait "$CACREG_BENCH" absent >/dev/null
        "$bench" ctl "$CACREG_BENCH" insert valid >/dev/null
        "$bench" wait "$CACREG_BENCH" present >/dev/null
    fi
    "$bin" status --json --ca-bundle "$pki/ca-bundle.pem" --reader "Virtual CAC" >"$tmp/status" 2>"$tmp/err" ||
        rc=$?
    if [ "$rc" = 0 ] && [ "$(json pcsc.status <"$tmp/status")" = up ] &&
        [ "$(json cards.0.verdict <"$tmp/status")" = ok ]; then
        ok "cacreg status --json on the bench: exit 0, pcscd up, the card's verdict ok"
    else
        cat "$tmp/status" "$tmp/err"
        fail "cacreg status --json on the bench: exit $rc"
    fi
else
    "$bin" status --json --wait 500 >"$tmp/status" 2>"$tmp/err" || rc=$?
    if { [ "$rc" = 1 ] || [ "$rc" = 2 ]; } && json pcsc.status <"$tmp/status" >/dev/null; then
        ok "cacreg status --json without a bench: exit $rc, pcscd $(json pcsc.status <"$tmp/status")"
    else
        cat "$tmp/status" "$tmp/err"
        fail "cacreg status --json without a bench: exit $rc, want 1 or 2 and a JSON report"
    fi
fi

# ---- the installed package's own checks ----
if [ -z "$root" ]; then
    getent group cacreg >/dev/null && ok "the group cacreg exists" || fail "no group cacreg"
    conffiles=$(dpkg-query -W -f='${Conffiles}\n' "${installed[@]}" | awk 'NF { print $1 }' | sort)
    echo "$conffiles" | grep -qx /etc/cacreg/cacreg.conf && ok "conffiles: $(echo "$conffiles" | paste -sd' ')" ||
        fail "/etc/cacreg/cacreg.conf is not a conffile ($conffiles)"
    if [ -n "$kiosk_deb" ]; then
        id -nG cacreg-kiosk 2>/dev/null | tr ' ' '\n' | grep -qx cacreg &&
            ok "the user cacreg-kiosk exists, in the group cacreg" || fail "no user cacreg-kiosk in the group cacreg"
        enabled=$(systemctl list-unit-files 'cacreg-kiosk*' --state=enabled --no-legend 2>/dev/null || true)
        [ -z "$enabled" ] && ok "no kiosk unit enabled" || fail "kiosk units enabled: $enabled"
    fi
    getent passwd cacreg-portal >/dev/null && ok "the user cacreg-portal exists" || fail "no user cacreg-portal"
    echo "$conffiles" | grep -qx /etc/cacreg/portald.conf && ok "/etc/cacreg/portald.conf is a conffile" ||
        fail "/etc/cacreg/portald.conf is not a conffile"
    enabled=$(systemctl list-unit-files 'cacreg-portald*' --state=enabled --no-legend 2>/dev/null || true)
    [ -z "$enabled" ] && ok "cacreg-portald.service not enabled" || fail "enabled: $enabled"
    if [ -r /usr/share/bash-completion/bash_completion ]; then
        # shellcheck disable=SC2016 # expanded by the inner bash
        got=$(bash -c '. /usr/share/bash-completion/bash_completion
            . /usr/share/bash-completion/completions/cacreg
            c() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
                  _cacreg cacreg "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"; echo "${COMPREPLY[*]}"; }
            c cacreg st; c cacreg status --js; c cacreg register --pass
            [ -z "${PCSCLITE_CSOCK_NAME:-}" ] || c cacreg status --reader "Virtual\ CAC\ Reader\ 00\ 0"' 2>&1 |
            paste -sd'|')
        want="status|--json|--password-fd"
        [ -z "${PCSCLITE_CSOCK_NAME:-}" ] || want+='|Virtual\ CAC\ Reader\ 00\ 00 Virtual\ CAC\ Reader\ 00\ 01'
        [ "$got" = "$want" ] && ok "bash completion: commands, options${PCSCLITE_CSOCK_NAME:+, the bench readers}" ||
            fail "bash completion: '$got', want '$want'"
    else
        skip "bash completion (no bash-completion package)"
    fi

    # ---- removal leaves the conffiles, purge nothing ----
    dpkg -r "${installed[@]}" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -r"; }
    files >"$tmp/removed"
    left=$(comm -13 "$tmp/before" "$tmp/removed")
    extra=$(comm -23 <(echo "$left" | sort) <({ echo "$conffiles"; echo "$conffiles" | xargs -n1 dirname; } | sort -u))
    [ -z "$extra" ] && ok "dpkg -r leaves only the conffiles: $(echo "$left" | paste -sd' ')" ||
        fail "dpkg -r leaves: $extra"
    t0=$(date +%s%N)
    dpkg --purge "${installed[@]}" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg --purge"; }
    installed=()
    files >"$tmp/after"
    left=$(comm -13 "$tmp/before" "$tmp/after")
    gone=$(comm -23 "$tmp/before" "$tmp/after")
    [ -z "$left$gone" ] && ok "dpkg --purge leaves no file behind ($((($(date +%s%N) - t0) / 1000000)) ms)" ||
        fail "after dpkg --purge:${left:+ left: $left}${gone:+ gone: $gone}"
fi

[ "$failed" = 0 ]
