#!/usr/bin/env bash
# Test environment for `smtpcap probe`: three network namespaces, a DNS server and SMTP servers.
#
#   client ns (NS_C) c0 ---- m0  middle ns (NS_M)  m1 ---- s0  server ns (NS_S)
#   198.51.100.10           198.51.100.1     203.0.113.1     203.0.113.25 .26 .27 .53
#   2001:db8:1::10          2001:db8:1::1    2001:db8:2::1   2001:db8:2::25 ::26 ::27
#
# Server namespace:
#   203.0.113.25 / 2001:db8:2::25  mx.example.org: aiosmtpd with STARTTLS (captures/tools/
#                                  smtp_server.py, self-signed RSA cert for mx.example.org)
#   203.0.113.26 / 2001:db8:2::26  refused.example.org: nothing listens, connections get RST
#   203.0.113.27 / 2001:db8:2::27  droptls.example.net: offers STARTTLS, answers it 220, then
#                                  closes when the ClientHello arrives (drop_tls_server.py)
#   203.0.113.53                   dnsmasq, only local data, no upstream:
#       example.org          MX 10 mx.example.org, MX 20 refused.example.org
#       droptls.example.net  MX 10 droptls.example.net
#       mx / refused / droptls / nomx.example.com (no MX)  A and AAAA as above (nomx: .25/::25)
#       anything else        NXDOMAIN (a name with records but none of the type: NODATA)
# Middle namespace: forwards IPv4 and IPv6; nftables REDIRECTs IPv4 TCP to 203.0.113.25 port 25
# (only that address, so .26 still answers RST and .27 still offers STARTTLS) to the corpus's
# captures/tools/strip_proxy.py --mode mask: STARTTLS reads "XXXXXXXA" over IPv4, intact over
# IPv6. Client namespace: /etc/netns/NS_C/resolv.conf names 203.0.113.53, so
# `ip netns exec NS_C CMD` resolves with that dnsmasq (res_query, getaddrinfo, dig).
# Offloads (TSO/GSO/GRO, checksum) are off on every veth: captured segments are real-sized.
#
# Usage (root; missing Debian packages are apt-get installed):
#   probe-env.sh up DIR      build everything, write DIR/env, run `check`; returns when ready.
#                            PROBE_ENV_DROPTLS=close|reset|garbage: what droptls does when the
#                            ClientHello arrives (default close: FIN).
#                            A DIR that still holds an environment is taken down first. When a
#                            step fails, what was made is taken down again (exit status 1).
#   probe-env.sh check DIR   self-checks from the client namespace (DNS, SMTP, TLS, masking)
#   probe-env.sh down DIR    stop every process started (TERM, KILL after 2 s), delete the
#                            namespaces and /etc/netns/<ns>; also after a failed or killed `up`.
#                            Logs, certificate and DIR/env stay in DIR.
# DIR/env is shell-sourceable KEY=VALUE lines (names, addresses, PIDs); READY=1 once `up` is done.
set -euo pipefail
umask 022
export PATH=$PATH:/usr/sbin:/sbin

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOOLS=$(cd "$HERE/../../captures/tools" && pwd)
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3   # the one apt-get installs aiosmtpd for

C4=198.51.100.10;  C6=2001:db8:1::10
MA4=198.51.100.1;  MA6=2001:db8:1::1
MB4=203.0.113.1;   MB6=2001:db8:2::1
MX4=203.0.113.25;  MX6=2001:db8:2::25
REF4=203.0.113.26; REF6=2001:db8:2::26
DROP4=203.0.113.27; DROP6=2001:db8:2::27
DNS4=203.0.113.53
NS_RE='^smtpcap-probe-(cli|mid|srv)-[0-9]+$'
NETNS_MARK=/etc/netns/.smtpcap-probe-env-made-this-directory

T0=${EPOCHREALTIME/./}
log() {
    local ms=$(( (${EPOCHREALTIME/./} - T0) / 1000 ))
    printf '[probe-env %d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*" >&2
}
die() { log "ERROR: $*"; exit 1; }
usage() { echo "usage: $0 up|check|down DIR" >&2; exit 2; }

# ------------------------------------------------------------------ packages
ensure_packages() {
    local need=() pair cmd pkg
    for pair in ip:iproute2 nft:nftables ethtool:ethtool openssl:openssl dnsmasq:dnsmasq-base \
                dig:bind9-dnsutils setsid:util-linux; do
        cmd=${pair%%:*}; pkg=${pair#*:}
        command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
    done
    [ -x "$PY" ] || command -v "$PY" >/dev/null 2>&1 || need+=(python3)
    "$PY" -c 'import aiosmtpd' 2>/dev/null || need+=(python3-aiosmtpd)
    if [ ${#need[@]} -gt 0 ]; then
        log "installing: ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 \
            || { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; } \
            || die "could not install ${need[*]}"
    fi
}

# ------------------------------------------------------------------ DIR/env
# envset KEY VALUE: appended at once, so that `down` finds everything even after a killed `up`
envset() {
    printf '%s=%q\n' "$1" "$2" >>"$DIR/env"
    printf -v "$1" '%s' "$2"
}

load_env() {
    local v
    for v in NS_C NS_M NS_S READY "${!PID_@}"; do unset "$v"; done
    [ -f "$DIR/env" ] || return 1
    # shellcheck source=/dev/null
    . "$DIR/env"
    local ns
    for ns in "${NS_C:-}" "${NS_M:-}" "${NS_S:-}"; do
        [ -z "$ns" ] || [[ $ns =~ $NS_RE ]] || die "$DIR/env: unexpected namespace name '$ns'"
    done
}

# ------------------------------------------------------------------ processes
# ours PID: the process is alive and is one this DIR started (its command line names DIR;
# a reused PID or a zombie does not)
ours() {
    local cmd
    [ -r "/proc/$1/cmdline" ] || return 1
    cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
    case "$cmd" in *"$DIR/"*) return 0 ;; *) return 1 ;; esac
}

# stop_pids PID...: TERM to all, up to 2 s grace, then KILL (a runner may have started us with
# SIGTERM ignored, which ignores it in every child too), then wait until they are gone
stop_pids() {
    local p left
    for p in "$@"; do ours "$p" && kill -TERM "$p" 2>/dev/null; done
    for _ in $(seq 20); do
        left=0
        for p in "$@"; do ours "$p" && left=1; done
        [ $left = 0 ] && return 0
        sleep 0.1
    done
    for p in "$@"; do ours "$p" && { log "PID $p ignored TERM: KILL"; kill -KILL "$p" 2>/dev/null; }; done
    for _ in $(seq 50); do
        left=0
        for p in "$@"; do ours "$p" && left=1; done
        [ $left = 0 ] && return 0
        sleep 0.1
    done
    log "WARNING: still running after KILL: $*"
}

# spawn NAME NS CMD...: CMD in namespace NS, detached (own session, stdin /dev/null, output in
# DIR/log/NAME.log), default TERM/INT handling restored; its PID goes to DIR/env as PID_NAME.
# setsid does not fork here (a background job is no process group leader) and `ip netns exec`
# execs CMD: the PID is CMD's.
# Every descriptor above 2 is closed first: a caller may watch one it gave this script for
# the script's end (Foundation's Process does), and a daemon holding it would hide that end.
spawn() {
    local name=$1 ns=$2; shift 2
    (
        for fd in /proc/"$BASHPID"/fd/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
        done
        exec setsid env --default-signal=TERM,INT,HUP ip netns exec "$ns" "$@" \
            </dev/null >"$DIR/log/$name.log" 2>&1
    ) &
    envset "PID_$name" "$!"
}

# wait_ready NAME FILE: until FILE exists; fails early if the process died
wait_ready() {
    local name=$1 file=$2 pidvar="PID_$1"
    for _ in $(seq 150); do
        [ -s "$file" ] && return 0
        ours "${!pidvar}" || die "$name exited: $(tail -5 "$DIR/log/$name.log")"
        sleep 0.1
    done
    die "$name not ready after 15 s: $(tail -5 "$DIR/log/$name.log")"
}

# ------------------------------------------------------------------ down
do_down() {
    load_env || { log "no $DIR/env: nothing to take down"; return 0; }
    local pids=() v ns p left
    for v in "${!PID_@}"; do pids+=("${!v}"); done
    # also one started by an `up` killed before it could write the PID down
    for ns in "${NS_C:-}" "${NS_M:-}" "${NS_S:-}"; do
        if [ -n "$ns" ] && [ -e "/run/netns/$ns" ]; then
            for p in $(ip netns pids "$ns" 2>/dev/null); do ours "$p" && pids+=("$p"); done
        fi
    done
    [ ${#pids[@]} -eq 0 ] || stop_pids "${pids[@]}"
    for ns in "${NS_C:-}" "${NS_M:-}" "${NS_S:-}"; do
        [ -n "$ns" ] || continue
        if [ -e "/run/netns/$ns" ]; then
            left=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
            [ -z "$left" ] || log "WARNING: processes not started by probe-env.sh still in $ns: $left"
            ip netns del "$ns" 2>/dev/null || log "WARNING: could not delete namespace $ns"
        fi
        [ -d "/etc/netns/$ns" ] && rm -rf "/etc/netns/${ns:?}"
    done
    if [ -f "$NETNS_MARK" ] && [ "$(find /etc/netns -mindepth 1 | wc -l)" = 1 ]; then
        rm -f "$NETNS_MARK"; rmdir /etc/netns 2>/dev/null || true
    fi
    rm -f "$DIR"/run/*.ready "$DIR"/run/dnsmasq.pid
    sed -i 's/^READY=.*/READY=0/' "$DIR/env"
    log "down: ${NS_C:-} ${NS_M:-} ${NS_S:-}"
}

# ------------------------------------------------------------------ check
do_check() {
    load_env || die "no $DIR/env"
    [ -e "/run/netns/${NS_C:-none}" ] || die "not up: no namespace ${NS_C:-}"
    local fail=0 out
    ok() { log "check ok: $*"; }
    bad() { log "check FAILED: $*"; fail=1; }
    expect() {  # expect WHAT WANT GOT
        if [ "$3" = "$2" ]; then ok "$1: ${3//$'\n'/, }"; else bad "$1: got '${3//$'\n'/, }', want '${2//$'\n'/, }'"; fi
    }
    cdig() { ip netns exec "$NS_C" dig +time=2 +tries=2 "$@" 2>&1 || true; }
    status() { grep -o 'status: [A-Z]*' | cut -d' ' -f2; }

    # DNS, straight to dnsmasq and through the client's resolv.conf (the /etc/netns bind mount)
    expect "MX example.org @$DNS4" $'10 mx.example.org.\n20 refused.example.org.' \
        "$(cdig +short MX example.org @"$DNS4" | sort)"
    expect "MX droptls.example.net (resolv.conf)" "10 droptls.example.net." \
        "$(cdig +short MX droptls.example.net)"
    expect "MX nomx.example.com (resolv.conf)" "NOERROR 0" \
        "$(cdig MX nomx.example.com | status) $(cdig +short MX nomx.example.com | grep -c . || true)"
    expect "A nosuch.example.org (resolv.conf)" NXDOMAIN "$(cdig A nosuch.example.org | status)"
    expect "MX example.invalid (resolv.conf)" NXDOMAIN "$(cdig MX example.invalid | status)"

    # TLS over IPv6 (routed untouched), with OpenSSL's STARTTLS
    out=$(ip netns exec "$NS_C" timeout 10 openssl s_client -starttls smtp -name probe.example.net \
            -connect "[$MX6]:25" -servername mx.example.org </dev/null 2>&1 || true)
    if grep -q 'subject=CN *= *mx.example.org' <<<"$out" && grep -q '^New, TLS' <<<"$out"; then
        ok "openssl s_client -starttls smtp [$MX6]:25: $(grep -m1 '^New, ' <<<"$out")"
    else
        bad "openssl s_client -starttls smtp [$MX6]:25: $(tail -5 <<<"$out")"
    fi

    # SMTP behaviour of every address, with getaddrinfo through the client's resolv.conf
    ip netns exec "$NS_C" "$PY" - "$MX4" "$MX6" "$REF4" "$REF6" "$DROP4" "$DROP6" <<'EOF' || fail=1
import smtplib, socket, ssl, sys
mx4, mx6, ref4, ref6, drop4, drop6 = sys.argv[1:]
fail = False
def report(good, what):
    global fail
    print(f"[probe-env check.py] check {'ok' if good else 'FAILED'}: {what}", file=sys.stderr, flush=True)
    fail = fail or not good

def addrs(name):
    try:
        return sorted({ai[4][0] for ai in socket.getaddrinfo(name, 25, type=socket.SOCK_STREAM)})
    except socket.gaierror as e:
        return [f"error: {e}"]
for name, want in (("mx.example.org", [mx6, mx4]), ("nomx.example.com", [mx6, mx4]),
                   ("refused.example.org", [ref6, ref4]), ("droptls.example.net", [drop6, drop4])):
    got = addrs(name)
    report(got == want, f"getaddrinfo {name}: {got}")
got = addrs("nosuch.example.org")
report(len(got) == 1 and got[0].startswith("error:"), f"getaddrinfo nosuch.example.org: {got}")

def ehlo(addr):
    with smtplib.SMTP(addr, 25, local_hostname="probe.example.net", timeout=10) as s:
        code, text = s.ehlo()
        return code, text.decode(errors="replace").upper().split("\n")
for addr, masked in ((mx4, True), (mx6, False)):
    try:
        code, lines = ehlo(addr)
        has_mask = any(l.strip() == "XXXXXXXA" for l in lines)
        has_tls = any(l.strip() == "STARTTLS" for l in lines)
        good = code == 250 and (has_mask, has_tls) == (masked, not masked)
        report(good, f"EHLO {addr}: {'STARTTLS masked as XXXXXXXA' if has_mask else 'STARTTLS offered' if has_tls else lines}")
    except Exception as e:
        report(False, f"EHLO {addr}: {e!r}")

for addr in (ref4, ref6):
    try:
        socket.create_connection((addr, 25), timeout=5).close()
        report(False, f"connect {addr} port 25: accepted")
    except ConnectionRefusedError:
        report(True, f"connect {addr} port 25: refused (RST)")
    except Exception as e:
        report(False, f"connect {addr} port 25: {e!r}")

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for addr in (drop4, drop6):
    try:
        s = smtplib.SMTP(addr, 25, local_hostname="probe.example.net", timeout=10)
        s.ehlo()
        offered = s.has_extn("starttls")
        code, _ = s.docmd("STARTTLS")
        try:
            ssl_sock = ctx.wrap_socket(s.sock, server_hostname="droptls.example.net")
            report(False, f"droptls {addr}: TLS handshake succeeded")
            ssl_sock.close()
        except (ssl.SSLError, OSError) as e:
            report(offered and code == 220, f"droptls {addr}: STARTTLS offered={offered}, reply {code}, handshake failed: {type(e).__name__}")
        s.close()
    except Exception as e:
        report(False, f"droptls {addr}: {e!r}")
sys.exit(1 if fail else 0)
EOF
    [ $fail = 0 ] || { log "check: FAILED (logs in $DIR/log)"; return 1; }
    log "check: all ok"
}

# ------------------------------------------------------------------ up
UP_DONE=0
up_cleanup() {
    local rc=$?
    trap - EXIT
    if [ $UP_DONE != 1 ]; then
        set +e
        log "up failed (exit $rc): taking down what was made; logs in $DIR/log"
        do_down
        [ $rc != 0 ] || rc=1
    fi
    exit $rc
}

do_up() {
    DROPTLS_MODE=${PROBE_ENV_DROPTLS:-close}
    case "$DROPTLS_MODE" in close|reset|garbage) ;; *) die "PROBE_ENV_DROPTLS: close, reset or garbage" ;; esac
    ensure_packages
    if [ -f "$DIR/env" ]; then
        log "$DIR/env exists: taking that environment down first"
        do_down
    fi
    mkdir -p "$DIR/log" "$DIR/run" "$DIR/tls"
    rm -f "$DIR"/run/* "$DIR"/log/*
    : >"$DIR/env"
    trap up_cleanup EXIT
    trap 'exit 130' INT TERM

    envset DIR "$DIR"
    envset READY 0
    envset NS_C "smtpcap-probe-cli-$$"
    envset NS_M "smtpcap-probe-mid-$$"
    envset NS_S "smtpcap-probe-srv-$$"
    # /etc/netns made here is marked, so that the last `down` (of any DIR) removes it again
    [ -d /etc/netns ] || { mkdir /etc/netns && : >"$NETNS_MARK"; }

    # ------------------------------------------------------------ certificate (meanwhile)
    envset CERT "$DIR/tls/cert.pem"
    envset KEY "$DIR/tls/key.pem"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$KEY" -out "$CERT" -days 30 \
        -subj "/CN=mx.example.org" -addext "subjectAltName=DNS:mx.example.org" \
        </dev/null >"$DIR/log/openssl.log" 2>&1 &
    envset PID_CERT "$!"

    # ------------------------------------------------------------ network
    local ns pair ifc feat a ready
    for ns in "$NS_C" "$NS_M" "$NS_S"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        # no RA, and no DAD (also not for the link-local addresses): IPv6 usable at once
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_ra=0 \
            net.ipv6.conf.default.accept_ra=0 net.ipv6.conf.default.router_solicitations=0 \
            net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
    mkdir -p "/etc/netns/$NS_C"
    printf '# probe-env.sh: dnsmasq in %s\nnameserver %s\noptions timeout:2 attempts:2\n' \
        "$NS_S" "$DNS4" >"/etc/netns/$NS_C/resolv.conf"
    ip link add c0 netns "$NS_C" type veth peer name m0 netns "$NS_M"
    ip link add m1 netns "$NS_M" type veth peer name s0 netns "$NS_S"
    for pair in "$NS_C:c0" "$NS_M:m0" "$NS_M:m1" "$NS_S:s0"; do
        ns=${pair%%:*}; ifc=${pair#*:}
        for feat in tso gso gro tx rx; do
            ip netns exec "$ns" ethtool -K "$ifc" "$feat" off >/dev/null 2>&1 || true
        done
    done
    ip -n "$NS_C" addr add "$C4/24" dev c0
    ip -n "$NS_C" addr add "$C6/64" dev c0 nodad
    ip -n "$NS_M" addr add "$MA4/24" dev m0
    ip -n "$NS_M" addr add "$MA6/64" dev m0 nodad
    ip -n "$NS_M" addr add "$MB4/24" dev m1
    ip -n "$NS_M" addr add "$MB6/64" dev m1 nodad
    for a in "$MX4" "$REF4" "$DROP4" "$DNS4"; do ip -n "$NS_S" addr add "$a/24" dev s0; done
    for a in "$MX6" "$REF6" "$DROP6"; do ip -n "$NS_S" addr add "$a/64" dev s0 nodad; done
    for pair in "$NS_C:c0" "$NS_M:m0" "$NS_M:m1" "$NS_S:s0"; do
        ip -n "${pair%%:*}" link set "${pair#*:}" up
    done
    ip -n "$NS_C" route add default via "$MA4"
    ip -n "$NS_C" -6 route add default via "$MA6"
    ip -n "$NS_S" route add default via "$MB4"
    ip -n "$NS_S" -6 route add default via "$MB6"
    ip netns exec "$NS_M" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    # The kernel takes a link's carrier change in (linkwatch) up to a second later, and IPv6
    # ignores the link until then: a neighbour solicitation sent before is lost and the first
    # IPv6 connection waits a second for its retransmission. Wait for operstate UP and a
    # usable link-local address on every veth.
    for _ in $(seq 50); do
        ready=1
        for pair in "$NS_C:c0" "$NS_M:m0" "$NS_M:m1" "$NS_S:s0"; do
            ns=${pair%%:*}; ifc=${pair#*:}
            ip -n "$ns" -o link show dev "$ifc" | grep -q 'state UP' || ready=0
            a=$(ip -n "$ns" -6 -o addr show dev "$ifc" scope link)
            [ -n "$a" ] && ! grep -q tentative <<<"$a" || ready=0
        done
        [ $ready = 0 ] || break
        sleep 0.05
    done
    [ $ready = 1 ] || die "veths not up after 2.5 s"

    log "network: $NS_C $NS_M $NS_S"

    # ------------------------------------------------------------ certificate
    wait "$PID_CERT" || die "openssl req: $(cat "$DIR/log/openssl.log")"

    # ------------------------------------------------------------ servers (started together)
    # dnsmasq: binds as root, then runs as its default user; writes pid file and log first
    spawn DNSMASQ "$NS_S" dnsmasq --keep-in-foreground --conf-file=/dev/null \
        --no-resolv --no-hosts --no-poll --port 53 --listen-address="$DNS4" --bind-interfaces \
        --pid-file="$DIR/run/dnsmasq.pid" --log-facility="$DIR/log/dnsmasq-queries.log" \
        --log-queries --local-ttl=60 \
        --local=/example.org/ --local=/example.net/ --local=/example.com/ --local=/#/ \
        --mx-host=example.org,mx.example.org,10 --mx-host=example.org,refused.example.org,20 \
        --mx-host=droptls.example.net,droptls.example.net,10 \
        --host-record="mx.example.org,$MX4,$MX6" \
        --host-record="refused.example.org,$REF4,$REF6" \
        --host-record="droptls.example.net,$DROP4,$DROP6" \
        --host-record="nomx.example.com,$MX4,$MX6"
    spawn SMTP "$NS_S" "$PY" "$TOOLS/smtp_server.py" --listen "$MX4" --listen "$MX6" --port 25 \
        --hostname mx.example.org --starttls "$CERT" "$KEY" --ready-file "$DIR/run/smtp.ready"
    spawn DROPTLS "$NS_S" "$PY" "$HERE/drop_tls_server.py" --listen "$DROP4" --listen "$DROP6" \
        --port 25 --hostname droptls.example.net --on-hello "$DROPTLS_MODE" \
        --ready-file "$DIR/run/droptls.ready"
    spawn PROXY "$NS_M" "$PY" "$TOOLS/strip_proxy.py" --port 10025 --mode mask \
        --ready-file "$DIR/run/proxy.ready"
    wait_ready SMTP "$DIR/run/smtp.ready"
    wait_ready DROPTLS "$DIR/run/droptls.ready"
    wait_ready PROXY "$DIR/run/proxy.ready"
    wait_ready DNSMASQ "$DIR/run/dnsmasq.pid"
    log "servers started"
    # only mx.example.org's IPv4 address: .26 must still answer RST (the proxy would accept,
    # then close) and .27 must still offer STARTTLS
    ip netns exec "$NS_M" nft -f - <<EOF
table ip smtpcap_probe {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "m0" ip daddr $MX4 tcp dport 25 redirect to :10025
    }
}
EOF
    local out=""
    for _ in $(seq 50); do
        out=$(ip netns exec "$NS_C" dig +short +time=1 +tries=1 A mx.example.org 2>/dev/null || true)
        [ "$out" = "$MX4" ] && break
        ours "$PID_DNSMASQ" || die "dnsmasq exited: $(tail -5 "$DIR/log/DNSMASQ.log")"
        sleep 0.1
    done
    [ "$out" = "$MX4" ] || die "dnsmasq does not answer from $NS_C: '$out'"
    log "dnsmasq answers"

    do_check || die "self-check failed"

    # the final DIR/env, in one piece
    local tmp="$DIR/env.tmp"
    {
        printf '# smtpcap probe-env.sh %s, %s\n' "$(date -u +%FT%TZ)" "$DIR"
        printf '%s=%q\n' DIR "$DIR" NS_C "$NS_C" NS_M "$NS_M" NS_S "$NS_S" \
            IF_C c0 IF_M_CLIENT m0 IF_M_SERVER m1 IF_S s0 \
            CLIENT4 "$C4" CLIENT6 "$C6" MID_CLIENT4 "$MA4" MID_CLIENT6 "$MA6" \
            MID_SERVER4 "$MB4" MID_SERVER6 "$MB6" \
            MX4 "$MX4" MX6 "$MX6" REFUSED4 "$REF4" REFUSED6 "$REF6" \
            DROPTLS4 "$DROP4" DROPTLS6 "$DROP6" DROPTLS_MODE "$DROPTLS_MODE" DNS4 "$DNS4" \
            MASKED4 "$MX4" \
            RESOLV_CONF "/etc/netns/$NS_C/resolv.conf" CERT "$CERT" KEY "$KEY" \
            PID_DNSMASQ "$PID_DNSMASQ" PID_SMTP "$PID_SMTP" PID_DROPTLS "$PID_DROPTLS" \
            PID_PROXY "$PID_PROXY"
        printf 'READY=1\n'
    } >"$tmp"
    mv "$tmp" "$DIR/env"
    UP_DONE=1
    log "up: ready ($NS_C $NS_M $NS_S), $DIR/env"
}

# ------------------------------------------------------------------ main
[ $# -eq 2 ] || usage
CMD=$1
[ "$(id -u)" = 0 ] || die "must run as root"
[ -n "$2" ] || usage
[ "$CMD" != up ] || mkdir -p "$2"
[ -d "$2" ] || die "no directory $2"
DIR=$(cd "$2" && pwd -P)
case "$CMD" in
    up) do_up ;;
    check) do_check ;;
    down) do_down ;;
    *) usage ;;
esac
