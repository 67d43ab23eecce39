# Process control shared by the capture scripts (sourced; needs T0,
# WORK and the arrays PIDS and NETNS): logging, background processes started by PID in a
# namespace and stopped by PID, the end of a capture.

log() { printf '[%4ds] %s\n' $(( $(date +%s) - T0 )) "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ensure_packages NEED...: installs the Debian packages of the needs not met (as root, once).
# A need is COMMAND:PACKAGE (a program on PATH or in /usr/sbin, /sbin), py:MODULE:PACKAGE
# (importable by $PY) or perl:MODULE:PACKAGE. Packages are preseeded so that none asks.
ensure_packages() {
    local need=() item kind name pkg
    for item in "$@"; do
        pkg=${item##*:}
        case $item in
            py:*)   name=${item#py:}; name=${name%:*}; "$PY" -c "import $name" 2>/dev/null || need+=("$pkg") ;;
            perl:*) name=${item#perl:}; name=${name%:*}; perl -M"$name" -e1 2>/dev/null || need+=("$pkg") ;;
            *)      name=${item%%:*}
                    command -v "$name" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$name" >/dev/null 2>&1 \
                        || need+=("$pkg") ;;
        esac
    done
    [ ${#need[@]} -gt 0 ] || return 0
    log "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
}

# stop_pid PID: TERM, wait up to 5 s, then KILL
stop_pid() {
    local pid=$1 n
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for n in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

forget_pid() {
    local p keep=()
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# spawn NAME NS CMD... : start CMD in namespace NS in the background; sets BGPID
spawn() {
    local name=$1 ns=$2; shift 2
    ip netns exec "$ns" "$@" >"$WORK/log/$name.log" 2>&1 &
    BGPID=$!
    PIDS+=("$BGPID")
}

wait_file() {   # wait_file FILE [tries of 0.1s]
    local n
    for n in $(seq "${2:-100}"); do [ -s "$1" ] && return 0; sleep 0.1; done
    die "timeout waiting for $1"
}

cap_stop() {    # cap_stop PID : SIGINT, the capture program flushes and exits
    local pid=$1 n
    sleep 1
    kill -INT "$pid" 2>/dev/null
    for n in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$pid"
    forget_pid "$pid"
}

# stop_all: every process started, newest first, then every namespace made; the work
# directory is kept when asked (KEEP_WORK) or after a failure ($1: the exit status).
stop_all() {
    local rc=$1 d i
    for (( i=${#PIDS[@]}-1; i>=0; i-- )); do
        stop_pid "${PIDS[i]}"
    done
    for d in "${NETNS[@]}"; do
        ip netns del "$d" 2>/dev/null
    done
    if [ -n "${KEEP_WORK:-}" ] || [ "$rc" -ne 0 ]; then
        log "work dir kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    log "done (exit $rc) after $(( $(date +%s) - T0 ))s"
}
