# Process control shared by make-captures.sh and make-wire-captures.sh (sourced; needs T0,
# WORK and the arrays PIDS and NETNS): logging, background processes started by PID in a
# namespace and stopped by PID, the end of a capture.

log() { printf '[%4ds] %s\n' $(( $(date +%s) - T0 )) "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

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
