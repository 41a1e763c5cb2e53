#!/usr/bin/env bash
# make bench's portal rows: full TLS handshakes and complete CAC logins per
# second for cacreg-portald, the Python reference and nginx (a fixed 200 with
# optional client certificates: the mark for a TLS server on this machine), at
# 1, 16 and 64 clients; the daemon's memory; where its time goes; what an
# ECDSA P-256 server key changes. Prints figures; asserts nothing about speed.
#
# The load is tests/bench/portal_load.c over the personas of
# tests/bench/mkpersonas.py (build/personas, made by make bench). Everything
# runs in network and mount namespaces of its own (root), on loopback.
#
#   BENCH_PORTAL_SECONDS   seconds per row (10)
#   BENCH_PORTAL_CLIENTS   the client counts ("1 16 64")
#   BENCH_PORTAL_PARTS     which parts: "compare memory breakdown ecdsa directory" (all)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export CACREG_BUILD=${CACREG_BUILD:-${BUILD:-$top/build}}
case "$CACREG_BUILD" in /*) ;; *) CACREG_BUILD=$top/$CACREG_BUILD ;; esac

if [ -z "${BENCH_PORTAL_INSIDE:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "portal load: skipped (needs root for its namespaces)"; exit 0; }
    exec env BENCH_PORTAL_INSIDE=1 unshare --net --mount --propagation private "$0" "$@"
fi
ip link set lo up

seconds=${BENCH_PORTAL_SECONDS:-10}
client_counts=${BENCH_PORTAL_CLIENTS:-1 16 64}
parts=${BENCH_PORTAL_PARTS:-compare memory breakdown ecdsa directory}
pki=${CACREG_PKI:-$CACREG_BUILD/pki}
personas=$CACREG_BUILD/personas
load=$CACREG_BUILD/tests/portal-load
portal=$here/../portal/portal
[ -f "$personas/.stamp" ] || { echo "portal load: no personas: run make bench"; exit 1; }
[ -x "$load" ] || { echo "portal load: no $load: run make bench-tools"; exit 1; }

# shellcheck source=../lib/wait.sh
fail() { echo "portal load: $*" >&2; exit 1; }
. "$here/../lib/wait.sh"

T=$(mktemp -d /tmp/cacreg-bench-portal.XXXXXX)
pids=()
cleanup() {
    for d in "$T"/portal-*; do [ -d "$d" ] && "$portal" stop "$d"; done
    ! mountpoint -q "$T/tmpfs" || umount "$T/tmpfs"
    [ -z "${slapd_pid:-}" ] || pids+=("$slapd_pid")
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do within 5 dead "$p" || true; done
    rm -rf "$T"
}
trap cleanup EXIT

# cpu_ticks PID...: user + system clock ticks of those processes so far.
cpu_ticks() {
    local total=0 p f
    for p in "$@"; do
        f=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        set -- $f
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}
hz=$(getconf CLK_TCK)

# The processes that serve for a server name: the PID, and nginx's workers.
server_pids() {
    local pid=$1
    echo "$pid"
    ps -o pid= --ppid "$pid" 2>/dev/null || true
}

# start_portald NAME [options]: a cacreg-portald with the personas' accounts; its PID in $spid.
start_portald() {
    local name=$1
    shift
    port=$(PORTAL_IMPL=c "$portal" start "$T/portal-$name" --accounts "$personas/accounts.json" \
        --crl "$pki/inter.crl" --connections-per-address 1000 --max-connections 4096 "$@")
    spid=$(cat "$T/portal-$name/portal.pid")
    url=https://localhost:$port
}
start_python() {
    port=$(PORTAL_IMPL=python "$portal" start "$T/portal-python" --accounts "$personas/accounts.json" \
        --crl "$pki/inter.crl")
    spid=$(cat "$T/portal-python/portal.pid")
    url=https://localhost:$port
}
stop_server() { # the portal directory's, or nginx's
    if [ -d "$T/portal-$1" ]; then
        "$portal" stop "$T/portal-$1"
        rm -rf "$T/portal-$1"
    else
        kill "$spid"
        within 10 dead "$spid" || fail "nginx did not stop"
    fi
}
# start_nginx CERT KEY: nginx answering a fixed 200, client certificates optional.
start_nginx() {
    mkdir -p "$T/nginx"
    cat >"$T/nginx/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $T/nginx/body;
    proxy_temp_path $T/nginx/proxy;
    fastcgi_temp_path $T/nginx/fastcgi;
    uwsgi_temp_path $T/nginx/uwsgi;
    scgi_temp_path $T/nginx/scgi;
    server {
        listen 127.0.0.1:8443 ssl backlog=1024;
        ssl_certificate $1;
        ssl_certificate_key $2;
        ssl_client_certificate $pki/tls-accept.pem;
        ssl_verify_client optional;
        ssl_verify_depth 3;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        location / { default_type application/json; return 200 '{"fixed":true}'; }
    }
}
EOF
    /usr/sbin/nginx -c "$T/nginx/nginx.conf" -p "$T/nginx" &
    spid=$!
    pids+=("$spid")
    within 10 [ -s "$T/nginx/nginx.pid" ] || fail "nginx did not start: $(cat "$T/nginx/error.log")"
    within 10 ss_listening 8443 || fail "nginx does not listen"
    url=https://localhost:8443
}
ss_listening() { ss -Hltn "sport = :$1" | grep -q .; }

# run_load MODE CLIENTS [LIST] [extra]: one row's figures into $row (portal-load's line)
# and the server's CPU per iteration into $server_ms.
run_load() {
    local mode=$1 clients=$2 list=${3:-$personas/bench.list} extra=() t0 t1 done
    shift 3 || shift $#
    extra=("$@")
    [ "$impl" = nginx ] && extra+=(--lenient)
    # shellcheck disable=SC2046 # PIDs are words
    t0=$(cpu_ticks $(server_pids "$spid"))
    row=$("$load" --url "$url" --ca "$pki/ca-bundle.pem" --personas "$personas" --list "$list" \
        --clients "$clients" --mode "$mode" --seconds "$seconds" ${extra[@]+"${extra[@]}"} 2>"$T/load.err") ||
        fail "portal-load failed: $(cat "$T/load.err")"
    # shellcheck disable=SC2046
    t1=$(cpu_ticks $(server_pids "$spid"))
    done=$(field done)
    server_ms=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$done" \
        'BEGIN { if (n > 0) printf "%.2f", t * 1000 / hz / n; else print "-" }')
}
field() { echo "$row" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
per_iteration_ms() { awk -v c="$(field cpu_s)" -v n="$(field done)" 'BEGIN { if (n > 0) printf "%.2f", c * 1000 / n; else print "-" }'; }

header() {
    printf '%-16s %7s  %12s %8s %8s  %7s %7s  %s\n' server clients "$1" "p50 ms" "p99 ms" \
        "srv ms" "tool ms" "errors"
}
print_row() { # NAME CLIENTS
    printf '%-16s %7s  %12s %8s %8s  %7s %7s  %s\n' "$1" "$2" "$(field rate)" "$(field p50_ms)" \
        "$(field p99_ms)" "$server_ms" "$(per_iteration_ms)" "$(field errors)"
}

# start IMPL [CERT KEY]: one of the three servers (the bench's RSA-2048 key by default).
start() {
    impl=$1
    case "$impl" in
    cacreg-portald) start_portald c ${2:+--tls-cert "$2" --tls-key "$3"} ;;
    python) start_python ;;
    nginx) start_nginx "${2:-$pki/server.pem}" "${3:-$pki/server.key}" ;;
    esac
}
stop() { case "$impl" in cacreg-portald) stop_server c ;; python) stop_server python ;; nginx) stop_server nginx ;; esac; }

echo "portal load: $(wc -l <"$personas/bench.list") personas (RSA-2048 client keys, one account each)," \
    "${seconds} s per row, server key RSA-2048 unless said; srv ms and tool ms are the server's and" \
    "the load tool's CPU per handshake or login (2 cores shared by both)"

if [[ " $parts " == *" compare "* ]]; then
    for mode in handshake login; do
        if [ "$mode" = handshake ]; then
            echo "full handshakes/s, each followed by one GET /api/v1/:"
            header "handshakes/s"
        else
            echo "complete CAC logins/s (handshake, POST cac-login, GET registration, DELETE session):"
            header "logins/s"
        fi
        for impl_name in cacreg-portald python nginx; do
            start "$impl_name"
            for clients in $client_counts; do
                run_load "$mode" "$clients"
                print_row "$impl" "$clients"
            done
            stop
        done
    done
fi

if [[ " $parts " == *" memory "* ]]; then
    start cacreg-portald
    (   peak=0
        while :; do
            rss=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$spid/status" 2>/dev/null) || break
            [ -n "$rss" ] || break
            [ "$rss" -le "$peak" ] || { peak=$rss; echo "$peak" >"$T/rss"; }
            sleep 0.1
        done ) &
    sampler=$!
    pids+=("$sampler")
    rss_idle=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$spid/status")
    run_load login 64
    kill "$sampler"
    hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$spid/status")
    anon=$(sed -n 's/^RssAnon:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$spid/status")
    file=$(sed -n 's/^RssFile:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$spid/status")
    printf 'cacreg-portald memory: RSS %.1f MB idle, %.1f MB at most during 64 clients of CAC logins (VmHWM %.1f MB), %s threads\n' \
        "$(awk -v k="$rss_idle" 'BEGIN { print k / 1024 }')" "$(awk -v k="$(cat "$T/rss")" 'BEGIN { print k / 1024 }')" \
        "$(awk -v k="$hwm" 'BEGIN { print k / 1024 }')" "$(ls "/proc/$spid/task" | wc -l)"
    printf '  after it: %.1f MB anonymous (heap, sessions, TLS state), %.1f MB of mapped files (the libraries)\n' \
        "$(awk -v k="$anon" 'BEGIN { print k / 1024 }')" "$(awk -v k="$file" 'BEGIN { print k / 1024 }')"
    stop
fi

# Where the daemon's time goes, at 16 clients of CAC logins: its CPU by library
# (perf), the SQLite commit (the database on disk vs on tmpfs, where fsync is
# free), the OCSP cache (a responder on loopback), and the load tool's share.
if [[ " $parts " == *" breakdown "* ]]; then
    echo "where cacreg-portald's time goes (CAC logins, 16 clients unless said):"
    start cacreg-portald
    if command -v perf >/dev/null && perf record -o "$T/probe.data" -- true >/dev/null 2>&1; then
        perf record -q -o "$T/perf.data" -F 997 -p "$spid" >/dev/null 2>&1 &
        perf_pid=$!
        pids+=("$perf_pid")
        run_load login 16
        kill -INT "$perf_pid"
        within 30 dead "$perf_pid" || true
        perf report -i "$T/perf.data" --no-children --sort dso -g none 2>/dev/null |
            awk '/^ *[0-9.]+%/ { sub("%", "", $1); share[$2] += $1 }
                 END {
                     for (d in share) {
                         g = "other"
                         if (d ~ /libgmp|libhogweed|libnettle|libgnutls|libtasn1|libp11-kit|libidn/) g = "TLS (GnuTLS: handshake, RSA signature, records)"
                         else if (d ~ /libcrypto|libssl/) g = "certificate check (OpenSSL: chain, CRL, parse, session hashes)"
                         else if (d ~ /libsqlite/) g = "SQLite"
                         else if (d ~ /kernel/) g = "kernel (network, syscalls, scheduling)"
                         else if (d ~ /libc\.so/) g = "libc (malloc, locks, recv/send)"
                         else if (d ~ /libmicrohttpd/) g = "libmicrohttpd"
                         else if (d ~ /libjansson|cacreg-portald/) g = "the daemon itself (JSON, routes, sessions)"
                         groups[g] += share[d]
                     }
                     for (g in groups) printf "  %5.1f%%  %s\n", groups[g], g
                 }' | sort -rn -k1
        echo "  (perf, the daemon's CPU samples at ${seconds} s of 16 clients: $(field rate) logins/s, srv ms $server_ms per login)"
    else
        echo "  (perf is not usable here: no CPU profile)"
    fi
    for clients in 1 16; do
        run_load login "$clients"
        disk_rate=$(field rate) disk_p50=$(field p50_ms)
        echo "  SQLite commit, $clients client(s): database on disk $disk_rate logins/s (p50 $disk_p50 ms)"
    done
    stop
    mkdir -p "$T/tmpfs"
    mount -t tmpfs tmpfs "$T/tmpfs"
    for clients in 1 16; do
        start_portald tmpfs --database "$T/tmpfs/portal.db"
        impl=cacreg-portald
        run_load login "$clients"
        echo "  SQLite commit, $clients client(s): database on tmpfs (no disk flush) $(field rate) logins/s (p50 $(field p50_ms) ms)"
        stop_server tmpfs
    done
    openssl ocsp -index "$personas/index.txt" -port 8888 -rsigner "$pki/ocsp.pem" \
        -rkey "$pki/ocsp.key" -CA "$pki/inter/cert.pem" -nmin 60 >"$T/ocsp.log" 2>&1 &
    pids+=($!)
    within 10 ss_listening 8888 || fail "the OCSP responder did not start"
    start_portald ocsp --ocsp-url http://127.0.0.1:8888/
    impl=cacreg-portald
    run_load login 16
    echo "  OCSP (responder on loopback, answers kept to nextUpdate): $(field rate) logins/s, p50 $(field p50_ms) ms, p99 $(field p99_ms) ms (the first login of each of 256 personas asks the responder)"
    stop_server ocsp
    start cacreg-portald
    run_load handshake 16
    echo "  the handshake alone, 16 clients: $(field rate)/s, srv ms $server_ms, load tool $(per_iteration_ms) ms CPU each"
    stop
fi

if [[ " $parts " == *" ecdsa "* ]]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/server-ec.key" 2>/dev/null
    openssl req -new -key "$T/server-ec.key" -subj "/C=US/O=U.S. Government/OU=DoD/CN=localhost" \
        -out "$T/server-ec.csr" 2>/dev/null
    printf 'basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$T/ext"
    openssl x509 -req -in "$T/server-ec.csr" -CA "$pki/inter/cert.pem" -CAkey "$pki/inter/key.pem" \
        -set_serial 0x$(openssl rand -hex 8) -days 30 -extfile "$T/ext" -out "$T/server-ec.crt" 2>/dev/null
    cat "$T/server-ec.crt" "$pki/inter/cert.pem" >"$T/server-ec.pem"
    echo "an ECDSA P-256 server key instead of RSA-2048, 16 clients:"
    header "per second"
    for impl_name in cacreg-portald nginx; do
        start "$impl_name" "$T/server-ec.pem" "$T/server-ec.key"
        for mode in handshake login; do
            run_load "$mode" 16
            print_row "$impl ($mode)" 16
        done
        stop
    done
fi

# The directory store (store = ldap, Debian's slapd on loopback, tests/directory/lib.sh)
# beside the embedded one: a CAC login's rate and latency, and the directory's round
# trips per login (slapd's own count of operations, over 20 logins after a first).
if [[ " $parts " == *" directory "* ]]; then
    # shellcheck source=../directory/lib.sh
    . "$top/tests/directory/lib.sh"
    slapd_setup "$T/slapd" 256 # stats: one line per operation
    slapd_start
    slapd_seed
    while read -r name edipi username password _; do
        slapd_person "$username" "PERSONA, LOAD $name" "$edipi" $((70000 + 10#$name)) "$password"
    done <"$personas/bench.list" | slapd_add
    printf '%s\n' "$service_password" >"$T/service.secret"
    chmod 600 "$T/service.secret"
    echo "a CAC login through the directory store (slapd on loopback, ldaps) beside the embedded store:"
    header "logins/s"
    for store in sqlite ldap; do
        if [ "$store" = ldap ]; then
            start_portald ldap --store ldap --ldap-uri "$ldap_uri" --ldap-ca-file "$pki/ca-bundle.pem" \
                --ldap-bind-dn "$service_dn" --ldap-bind-password-file "$T/service.secret" \
                --ldap-base "$people"
        else
            start_portald sqlite
        fi
        impl=cacreg-portald
        for clients in 1 16; do
            run_load login "$clients"
            print_row "store = $store" "$clients"
        done
        if [ "$store" = ldap ]; then
            # One per operation (slapd's stats log has two lines for some, e.g. SRCH base= and attr=).
            op_lines() {
                grep -E ' op=[0-9]+ (BIND|SRCH|MOD|ADD|DEL|EXT) ' "$T/slapd/slapd.log" |
                    sed -E 's/.*(conn=[0-9]+ op=[0-9]+ [A-Z]+) .*/\1/' | uniq
            }
            ops() { op_lines | wc -l; }
            "$load" --url "$url" --ca "$pki/ca-bundle.pem" --personas "$personas" \
                --list "$personas/bench.list" --clients 1 --mode login --count 1 >/dev/null
            before=$(ops)
            "$load" --url "$url" --ca "$pki/ca-bundle.pem" --personas "$personas" \
                --list "$personas/bench.list" --clients 1 --mode login --count 20 >/dev/null
            after=$(ops)
            op_lines | tail -n $((after - before)) | sed -E 's/.* ([A-Z]+)$/\1/' | sort | uniq -c |
                awk '{ printf "%s %s, ", $1 / 20, $2 }' >"$T/kinds"
            echo "  directory round trips per CAC login (POST cac-login, GET registration, DELETE session):" \
                "$(awk -v n=$((after - before)) 'BEGIN { print n / 20 }') ($(sed 's/, $//' "$T/kinds"))"
            stop_server ldap
        else
            stop_server sqlite
        fi
    done
fi
