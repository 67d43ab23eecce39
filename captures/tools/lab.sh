# shellcheck shell=bash
# shellcheck disable=SC2034  # PIDS, NETNS, CAPPID and loop counters are the callers'
# What make-captures.sh and make-path-captures.sh share, sourced after tools/proc.sh: the
# exit cleanup (Postfix instances, then every process and namespace), a tcpdump capture in a
# namespace, private Postfix instances, and the three-namespace network. The caller sets
# WORK (logs in $WORK/log) and the namespace names and addresses.

PIDS=()          # background processes we started (tcpdump, python servers/proxies)
PF_DIRS=()       # postfix instances we started
NETNS=()         # namespaces we created

cleanup() {
    local rc=$? d
    set +e
    trap - EXIT INT TERM
    for d in "${PF_DIRS[@]}"; do
        pf_stop "$d"
    done
    stop_all $rc
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# cap_start NS IFACE FILE [tcpdump args...] ; sets CAPPID (full snaplen, filter tcp)
cap_start() {
    local ns=$1 ifc=$2 file=$3 name n; shift 3
    name=cap-$(basename "$file")
    spawn "$name" "$ns" tcpdump --immediate-mode -n -U -s 0 -i "$ifc" "$@" -w "$file" tcp
    CAPPID=$BGPID
    for n in $(seq 100); do
        grep -q "listening on" "$WORK/log/$name.log" 2>/dev/null && { sleep 0.2; return 0; }
        sleep 0.1
    done
    die "tcpdump did not start: $(cat "$WORK/log/$name.log")"
}

# pf_init DIR [main.cf setting...] : config_directory with its own queue/data dirs, no
# chroot, no DNS, no local delivery setup of its own; the caller's settings follow.
pf_init() {
    local d=$1; shift
    mkdir -p "$d/queue" "$d/data"
    awk '/^[a-z]/ && NF >= 8 { $5 = "n" } { print }' /etc/postfix/master.cf >"$d/master.cf"
    : >"$d/main.cf"
    postconf -c "$d" -e \
        "compatibility_level = 3.6" \
        "queue_directory = $d/queue" \
        "data_directory = $d/data" \
        "meta_directory = /etc/postfix" \
        "mail_owner = postfix" "setgid_group = postdrop" \
        "maillog_file = $d/maillog" "maillog_file_prefixes = /tmp, /var" \
        "inet_protocols = all" \
        "alias_maps =" "alias_database =" \
        "biff = no" "append_dot_mydomain = no" \
        "smtpd_peername_lookup = no" \
        "smtp_dns_support_level = disabled" \
        "$@"
    chown -R postfix "$d/data"
}

pf_start() {    # pf_start NS DIR
    local ns=$1 d=$2 n
    ip netns exec "$ns" postfix -c "$d" start >>"$WORK/log/postfix.log" 2>&1 \
        || die "postfix -c $d start failed: $(tail -5 "$WORK/log/postfix.log")"
    PF_DIRS+=("$d")
    wait_file "$d/queue/pid/master.pid"
    for n in $(seq 50); do
        grep -q "daemon started" "$d/maillog" 2>/dev/null && break; sleep 0.1
    done
    sleep 0.5
}

pf_stop() {     # pf_stop DIR : postfix stop, then make sure master is gone
    local d=$1 mpid="" keep=() x
    log "stopping postfix $(basename "$d")"
    [ -f "$d/queue/pid/master.pid" ] && mpid=$(tr -dc 0-9 <"$d/queue/pid/master.pid")
    postfix -c "$d" stop >>"$WORK/log/postfix.log" 2>&1 || true
    if [ -n "$mpid" ]; then
        for x in $(seq 50); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$mpid" 2>/dev/null && kill -KILL "$mpid" 2>/dev/null
    fi
    for x in "${PF_DIRS[@]}"; do [ "$x" = "$d" ] || keep+=("$x"); done
    PF_DIRS=("${keep[@]}")
    log "stopped postfix $(basename "$d")"
}

# lab_network: the three namespaces client NS_C (c0: C4, C6), middle NS_M (m0: MA4, MA6;
# m1: MB4, MB6) and server NS_S (s0: S4, S6), joined by veth pairs without offloads (the
# capture shows real MSS-sized segments with correct checksums), the middle forwarding.
lab_network() {
    log "creating namespaces $NS_C $NS_M $NS_S"
    local ns ifc pair feat
    for ns in "$NS_C" "$NS_M" "$NS_S"; do
        ip netns add "$ns"; NETNS+=("$ns")
        ip -n "$ns" link set lo up
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_ra=0 \
            net.ipv6.conf.default.accept_ra=0 \
            net.ipv6.conf.default.router_solicitations=0
    done
    ip link add c0 netns "$NS_C" type veth peer name m0 netns "$NS_M"
    ip link add m1 netns "$NS_M" type veth peer name s0 netns "$NS_S"
    for pair in "$NS_C:c0" "$NS_M:m0" "$NS_M:m1" "$NS_S:s0"; do
        ns=${pair%%:*}; ifc=${pair#*:}
        for feat in tso gso gro tx rx; do
            ip netns exec "$ns" ethtool -K "$ifc" $feat off >/dev/null 2>&1 || true
        done
    done
    ip -n "$NS_C" addr add $C4/24 dev c0
    ip -n "$NS_C" addr add $C6/64 dev c0 nodad
    ip -n "$NS_M" addr add $MA4/24 dev m0
    ip -n "$NS_M" addr add $MA6/64 dev m0 nodad
    ip -n "$NS_M" addr add $MB4/24 dev m1
    ip -n "$NS_M" addr add $MB6/64 dev m1 nodad
    ip -n "$NS_S" addr add $S4/24 dev s0
    ip -n "$NS_S" addr add $S6/64 dev s0 nodad
    for pair in "$NS_C:c0" "$NS_M:m0" "$NS_M:m1" "$NS_S:s0"; do
        ip -n "${pair%%:*}" link set "${pair#*:}" up
    done
    ip -n "$NS_C" route add default via $MA4
    ip -n "$NS_C" -6 route add default via $MA6
    ip -n "$NS_S" route add default via $MB4
    ip -n "$NS_S" -6 route add default via $MB6
    ip netns exec "$NS_M" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    sleep 0.5
}
