# shellcheck shell=bash
# shellcheck disable=SC2034  # PIDS, NETNS, CAPPID and loop counters are the callers'
# What make-captures.sh and make-path-captures.sh share, sourced after tools/proc.sh: the
# exit cleanup (Postfix instances, then every process and namespace), a tcpdump capture in a
# namespace, and private Postfix instances. The caller sets WORK (logs in $WORK/log).

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
