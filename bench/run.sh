#!/usr/bin/env bash
# smtpcap benchmark driver (run by `make bench` from the repository root; see bench/README.md).
#
#   bench/run.sh            throughput: C libpcap floor vs smtpcap (text, --json) vs tshark,
#                           then checks smtpcap's counts against the generator's ground truth
#   bench/run.sh flat       flat memory: smtpcap's peak RSS on BENCH_FLAT_SIZES (default 1G 10G)
#   bench/run.sh hostile    hostile captures: peak RSS must stay <= 256 MiB, exit status 0 or 1
#   bench/run.sh allocs     heap allocations per packet and per session
#   bench/run.sh live       live capture over a veth pair at rising tcpreplay rates: kernel drops
#                           of tcpdump -w /dev/null and of smtpcap (root, tcpreplay)
#
# Environment: BENCH_SIZE (1G), BENCH_SEED (1), BENCH_RUNS (3), BENCH_TSHARK (1; 0 skips tshark),
# BENCH_MAX_RATIO (unset; if set, fail when smtpcap's CPU time exceeds this multiple of the floor),
# BENCH_FLAT_SIZES ("1G 10G"), BENCH_HOSTILE (all six modes), BENCH_HOSTILE_MAX_RSS_MIB (256),
# BENCH_TIMEOUT (1800 seconds per smtpcap run), SMTPCAP (.build/release/smtpcap),
# BENCH_BASELINE (unset; another smtpcap binary, e.g. a build of an earlier commit, timed in the
# same rounds: its rows and the ratio of this build's CPU to it are printed beside).
set -euo pipefail

cd "$(dirname "$0")/.."
mode=${1:-throughput}
BIN=${SMTPCAP:-.build/release/smtpcap}
SEED=${BENCH_SEED:-1}
SIZE=${BENCH_SIZE:-1G}
RUNS=${BENCH_RUNS:-3}
TIMEOUT=${BENCH_TIMEOUT:-1800}
OUT=bench/.out
DATA=bench/data
GEN=$OUT/gen-capture
FLOOR=$OUT/pcap-floor

die() { echo "bench: $*" >&2; exit 1; }

[ -x "$BIN" ] || die "$BIN not found: build it first (make build)"
mkdir -p "$OUT" "$DATA"

# ---- tools ------------------------------------------------------------------------------------
if [ ! -x /usr/bin/time ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bench: installing the 'time' package for /usr/bin/time" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
    fi
    [ -x /usr/bin/time ] || die "/usr/bin/time is missing: apt-get install time"
fi
CC=${CC:-cc}
if [ ! -x "$GEN" ] || [ bench/gen-capture.c -nt "$GEN" ]; then
    $CC -O2 -Wall -o "$GEN" bench/gen-capture.c || die "cannot compile bench/gen-capture.c"
fi
if [ ! -x "$FLOOR" ] || [ bench/pcap-floor.c -nt "$FLOOR" ]; then
    $CC -O2 -Wall -o "$FLOOR" bench/pcap-floor.c -lpcap || die "cannot compile bench/pcap-floor.c (libpcap-dev?)"
fi

# json_get FILE KEY... : a number from a one-line JSON object ("a.b" for nested keys).
json_get() {
    python3 - "$@" <<'EOF'
import json, sys
o = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = o
    for part in k.split("."):
        v = v[part]
    print(v)
EOF
}

# capture NAME ARGS... : generates $DATA/NAME.pcap (+ .json) unless it already exists for the
# same generator version and arguments (recorded in NAME.args).
GEN_VERSION=$(cksum < bench/gen-capture.c | cut -d' ' -f1)
capture() {
    local name=$1; shift
    local f=$DATA/$name.pcap args="$GEN_VERSION $*"
    if [ -f "$f" ] && [ -f "$DATA/$name.json" ] && [ "$(cat "$DATA/$name.args" 2>/dev/null)" = "$args" ]; then
        echo "bench: reusing $f" >&2
    else
        echo "bench: generating $f ($*)" >&2
        rm -f "$f" "$DATA/$name.json" "$DATA/$name.args"
        local t0=$SECONDS
        "$GEN" "$@" --out "$f.tmp" --expected "$DATA/$name.json.tmp" || die "gen-capture failed"
        mv "$f.tmp" "$f"; mv "$DATA/$name.json.tmp" "$DATA/$name.json"
        echo "$args" > "$DATA/$name.args"
        echo "bench: generated $(du -h "$f" | cut -f1) in $((SECONDS - t0)) s" >&2
    fi
}

# timed OKCODES CMD... : runs CMD once (stdout to /dev/null unless $TIMED_STDOUT is set), sets
# T_WALL T_CPU T_RSS_MIB T_RC; fails unless the exit status is in OKCODES (e.g. "0 1").
timed() {
    local ok=$1; shift
    local tf=$OUT/time.txt t_user t_sys t_rss
    set +e
    /usr/bin/time -f '%e %U %S %M' -o "$tf" timeout "$TIMEOUT" "$@" > "${TIMED_STDOUT:-/dev/null}"
    T_RC=$?
    set -e
    # /usr/bin/time writes "Command exited with non-zero status N" before the numbers
    read -r T_WALL t_user t_sys t_rss < <(tail -n 1 "$tf")
    T_CPU=$(awk -v u="$t_user" -v s="$t_sys" 'BEGIN { printf "%.2f", u + s }')
    T_RSS_MIB=$(awk -v k="$t_rss" 'BEGIN { printf "%.1f", k / 1024 }')
    case " $ok " in *" $T_RC "*) ;; *) echo "bench: '$*' exited with status $T_RC" >&2; return 1 ;; esac
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
maxof() { printf '%s\n' "$@" | sort -g | tail -n 1; }
minof() { printf '%s\n' "$@" | sort -g | head -n 1; }

# bench_one LABEL RUNS OKCODES CMD... : appends a table row to $ROWS; sets M_CPU, M_WALL, M_RSS.
ROWS=()
FLOOR_CPU=
FLOOR_MIN=
bench_one() {
    local label=$1 n=$2 ok=$3; shift 3
    local walls=() cpus=() rsss=() i
    for ((i = 1; i <= n; i++)); do
        timed "$ok" "$@" || die "$label failed"
        walls+=("$T_WALL"); cpus+=("$T_CPU"); rsss+=("$T_RSS_MIB")
        echo "bench:   $label run $i: wall ${T_WALL}s cpu ${T_CPU}s rss ${T_RSS_MIB}MiB" >&2
    done
    M_WALL=$(median "${walls[@]}"); M_CPU=$(median "${cpus[@]}"); M_RSS=$(maxof "${rsss[@]}")
    local min_cpu
    min_cpu=$(minof "${cpus[@]}")
    [ -n "$FLOOR_CPU" ] || FLOOR_CPU=$M_CPU
    [ -n "$FLOOR_MIN" ] || FLOOR_MIN=$min_cpu
    ROWS+=("$(awk -v l="$label" -v n="$n" -v w="$M_WALL" -v c="$M_CPU" -v f="$FLOOR_CPU" -v m="$min_cpu" -v fm="$FLOOR_MIN" -v b="$FILE_BYTES" -v r="$M_RSS" \
        'BEGIN { printf "| %s | %d | %.2f | %.2f | %s | %.2f | %s | %.0f | %.1f |", l, n, w, c, (f > 0 ? sprintf("%.1f×", c / f) : "n/a"), m, (fm > 0 ? sprintf("%.1f×", m / fm) : "n/a"), (w > 0 ? b / w / 1e6 : 0), r }')")
}

# Interleaved runs: sample LABEL OKCODES CMD... takes one run; row LABEL turns a label's runs
# into a table row. Rounds of floor, text, JSON spread the machine's drift over all of them.
declare -A S_WALL S_CPU S_RSS S_N
sample() {
    local label=$1 ok=$2; shift 2
    timed "$ok" "$@" || die "$label failed"
    S_WALL[$label]+=" $T_WALL"; S_CPU[$label]+=" $T_CPU"; S_RSS[$label]+=" $T_RSS_MIB"
    S_N[$label]=$(( ${S_N[$label]:-0} + 1 ))
    echo "bench:   $label run ${S_N[$label]}: wall ${T_WALL}s cpu ${T_CPU}s rss ${T_RSS_MIB}MiB" >&2
}
row() {   # row LABEL [FILES]: FILES copies of the capture per run (ratios are per copy)
    local label=$1 k=${2:-1}
    # shellcheck disable=SC2086
    { M_WALL=$(median ${S_WALL[$label]}); M_CPU=$(median ${S_CPU[$label]}); M_RSS=$(maxof ${S_RSS[$label]}); }
    local min_cpu
    # shellcheck disable=SC2086
    min_cpu=$(minof ${S_CPU[$label]})
    [ -n "$FLOOR_CPU" ] || FLOOR_CPU=$M_CPU
    [ -n "$FLOOR_MIN" ] || FLOOR_MIN=$min_cpu
    ROWS+=("$(awk -v l="$label" -v n="${S_N[$label]}" -v w="$M_WALL" -v c="$M_CPU" -v f="$FLOOR_CPU" -v m="$min_cpu" -v fm="$FLOOR_MIN" -v b="$FILE_BYTES" -v r="$M_RSS" -v k="$k" \
        'BEGIN { printf "| %s | %d | %.2f | %.2f | %s | %.2f | %s | %.0f | %.1f |", l, n, w, c, (f > 0 ? sprintf("%.1f×", c / (f * k)) : "n/a"), m, (fm > 0 ? sprintf("%.1f×", m / (fm * k)) : "n/a"), (w > 0 ? b * k / w / 1e6 : 0), r }')")
}

print_table() {
    echo
    echo "| program | runs | wall s (median) | user+sys CPU s (median) | CPU vs floor (medians) | CPU s (fastest run) | vs floor (fastest runs) | MB/s (wall) | peak RSS MiB (max) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${ROWS[@]}"
    echo
}

# check_counts EXPECTED.json SUMMARY.json
check_counts() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
exp = json.load(open(sys.argv[1])); got = json.load(open(sys.argv[2]))
pairs = [("sessions", exp["sessions"], got.get("sessions")),
         ("plaintext_messages", exp["plaintext_messages"], got.get("plaintext_messages")),
         ("packets", exp["packets"], got.get("packets"))]
for v in ("encrypted", "plaintext", "stripped", "inconclusive"):
    pairs.append(("verdicts." + v, exp["verdicts"][v], got.get("verdicts", {}).get(v)))
bad = [(k, e, g) for k, e, g in pairs if e != g]
for k, e, g in pairs:
    print(f"  {k:24} expected {e:>10}  smtpcap {g!s:>10}  {'ok' if e == g else 'MISMATCH'}")
if bad:
    print("bench: smtpcap's counts differ from the generator's ground truth: " +
          ", ".join(f"{k} expected {e} got {g}" for k, e, g in bad), file=sys.stderr)
    sys.exit(1)
EOF
}

summary_of() {   # summary_of PCAP OUTFILE : smtpcap's JSON summary line (last line of --json)
    local rc=0
    timeout "$TIMEOUT" "$BIN" -r "$1" --json | tail -n 1 > "$2" || rc=$?
    # pipefail: smtpcap exits 1 when it reports findings
    [ "$rc" -le 1 ] || die "smtpcap -r $1 --json exited with status $rc"
    grep -q '"type":"summary"' "$2" || die "no summary object at the end of smtpcap --json output"
}

# ---- modes ------------------------------------------------------------------------------------
throughput() {
    local name="smtp-seed$SEED-$SIZE"
    capture "$name" --seed "$SEED" --size "$SIZE"
    local f=$DATA/$name.pcap exp=$DATA/$name.json
    FILE_BYTES=$(stat -c %s "$f")
    echo "bench: $f: $(json_get "$exp" packets) packets, $(json_get "$exp" sessions) sessions, $FILE_BYTES bytes" >&2
    cat "$f" > /dev/null   # warm the page cache: every program reads from memory
    local i
    for ((i = 1; i <= RUNS; i++)); do
        sample "C floor (pcap_next_ex loop)" "0" "$FLOOR" "$f"
        sample "C floor, 64 KiB stdio buffer" "0" "$FLOOR" -b 65536 "$f"
        sample "C mapped walk, no libpcap (pcap-floor -m)" "0" "$FLOOR" -m "$f"
        sample "smtpcap -r F" "0 1" "$BIN" -r "$f"
        sample "smtpcap -r F --json" "0 1" "$BIN" -r "$f" --json
        sample "smtpcap -r F --no-mmap (libpcap reads)" "0 1" "$BIN" -r "$f" --no-mmap
        sample "smtpcap -r F --json --no-mmap" "0 1" "$BIN" -r "$f" --json --no-mmap
        if [ -n "${BENCH_BASELINE:-}" ]; then
            sample "baseline -r F" "0 1" "$BENCH_BASELINE" -r "$f"
            sample "baseline -r F --json" "0 1" "$BENCH_BASELINE" -r "$f" --json
        fi
    done
    # Two cores: the same file given twice, analyzed one file per thread (-j 2) or one after
    # the other (-j 1). Wall time is what --jobs buys; CPU time is per file.
    for ((i = 1; i <= RUNS; i++)); do
        sample "smtpcap -r F -r F --json -j 1 (2 files)" "0 1" "$BIN" -r "$f" -r "$f" --json -j 1
        sample "smtpcap -r F -r F --json -j 2 (2 files)" "0 1" "$BIN" -r "$f" -r "$f" --json -j 2
    done
    row "C floor (pcap_next_ex loop)"
    local floor_cpu=$M_CPU
    row "C floor, 64 KiB stdio buffer"
    row "C mapped walk, no libpcap (pcap-floor -m)"
    row "smtpcap -r F"
    local text_cpu=$M_CPU
    row "smtpcap -r F --json"
    local json_cpu=$M_CPU
    row "smtpcap -r F --no-mmap (libpcap reads)"
    row "smtpcap -r F --json --no-mmap"
    if [ -n "${BENCH_BASELINE:-}" ]; then
        row "baseline -r F"
        local base_text=$M_CPU
        row "baseline -r F --json"
        local base_json=$M_CPU
        BASELINE_NOTE=$(awk -v a="$text_cpu" -v b="$json_cpu" -v x="$base_text" -v y="$base_json" \
            'BEGIN { printf "This build against the baseline (CPU medians): text %+.1f%%, JSON %+.1f%%.", (a / x - 1) * 100, (b / y - 1) * 100 }')
    fi
    row "smtpcap -r F -r F --json -j 1 (2 files)" 2
    row "smtpcap -r F -r F --json -j 2 (2 files)" 2
    if [ "${BENCH_TSHARK:-1}" != 0 ] && command -v tshark >/dev/null; then
        bench_one "tshark -Y smtp -T fields" 1 "0" tshark -r "$f" -Y smtp -T fields -e smtp.req.command
    fi
    echo "Capture: $f ($FILE_BYTES bytes, $(json_get "$exp" packets) packets, $(json_get "$exp" sessions) SMTP sessions, seed $SEED); $(nproc) CPUs."
    print_table
    [ -z "${BASELINE_NOTE:-}" ] || { echo "$BASELINE_NOTE"; echo; }

    echo "Counts (smtpcap --json summary vs generator ground truth $exp):"
    summary_of "$f" "$OUT/summary.json"
    check_counts "$exp" "$OUT/summary.json" || exit 1

    if [ -n "${BENCH_MAX_RATIO:-}" ]; then
        awk -v a="$text_cpu" -v b="$json_cpu" -v f="$floor_cpu" -v m="$BENCH_MAX_RATIO" \
            'BEGIN { exit !((a > b ? a : b) <= f * m) }' ||
            die "smtpcap's CPU time is more than ${BENCH_MAX_RATIO}x the libpcap floor"
        echo "bench: smtpcap within ${BENCH_MAX_RATIO}x of the floor"
    fi
}

flat() {
    local sizes=${BENCH_FLAT_SIZES:-1G 10G} sz first= last=
    ROWS=()
    FLOOR_CPU=0 FLOOR_MIN=0   # no floor in this table: the ratio columns say n/a
    for sz in $sizes; do
        local name="smtp-seed$SEED-$sz"
        capture "$name" --seed "$SEED" --size "$sz"
        local f=$DATA/$name.pcap
        FILE_BYTES=$(stat -c %s "$f")
        FLOOR_CPU=0   # no floor in this table
        TIMED_STDOUT=$OUT/flat-$sz.jsonl bench_one "smtpcap -r F --json ($sz)" 1 "0 1" "$BIN" -r "$f" --json
        tail -n 1 "$OUT/flat-$sz.jsonl" > "$OUT/flat-$sz.summary.json"; rm -f "$OUT/flat-$sz.jsonl"
        echo "Counts for $sz:"
        check_counts "$DATA/$name.json" "$OUT/flat-$sz.summary.json" || exit 1
        [ -n "$first" ] || first=$M_RSS
        last=$M_RSS
    done
    echo "Flat memory: smtpcap's peak RSS by capture size (seed $SEED)."
    print_table
    awk -v a="$first" -v b="$last" 'BEGIN { exit !(b <= a * 1.25 + 16) }' ||
        die "peak RSS grew with the capture: $first MiB -> $last MiB"
    echo "bench: peak RSS flat ($first MiB -> $last MiB)"
}

# hostile_run MODE LIMIT_MIB [SMTPCAP ARGS...]: one run of smtpcap on a hostile capture; appends
# a row to ROWS; sets FAIL when the exit status or the peak RSS is out of bounds.
hostile_run() {
    local m=$1 limit=$2; shift 2
    local f=$DATA/hostile-$m.pcap verdict=ok label=$m counts
    [ $# -eq 0 ] || label="$m, $*"
    TIMED_STDOUT=$OUT/hostile.out timed "0 1" "$BIN" -r "$f" --json "$@" || { verdict="FAIL: exit status $T_RC"; FAIL=1; }
    counts=$(tail -n 1 "$OUT/hostile.out" | python3 -c '
import json, sys
s = json.load(sys.stdin); c = s["capture"]
print(s["sessions"], c["evicted"], c.get("evicted_memory", 0), c["out_of_window"])' 2>/dev/null || echo "? ? ? ?")
    if awk -v r="$T_RSS_MIB" -v m="$limit" 'BEGIN { exit !(r > m) }'; then verdict="FAIL: peak RSS > $limit MiB"; FAIL=1; fi
    echo "bench:   $label: exit $T_RC wall ${T_WALL}s rss ${T_RSS_MIB}MiB" >&2
    # shellcheck disable=SC2086
    ROWS+=("$(printf '| %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s |' "$label" "$(awk -v b="$(stat -c %s "$f")" 'BEGIN { print b / 1048576 }')" \
        "$(json_get "$DATA/hostile-$m.json" packets)" $counts "$T_RC" "$T_WALL" "$T_RSS_MIB" "$verdict")")
}

hostile() {
    local modes=${BENCH_HOSTILE:-synflood longline endless-reply bdat-huge ooo-far buffers fragflood tunnelbomb} m
    local max=${BENCH_HOSTILE_MAX_RSS_MIB:-256} small=${BENCH_HOSTILE_SMALL_MIB:-64}
    ROWS=()
    FAIL=0
    for m in $modes; do
        capture "hostile-$m" --seed "$SEED" --hostile "$m"
        cat "$DATA/hostile-$m.pcap" > /dev/null
        hostile_run "$m" "$max"
    done
    # The same with a smaller budget: --max-memory 64 must keep the peak under 64 MiB.
    for m in $modes; do
        case $m in synflood|buffers|fragflood|tunnelbomb) hostile_run "$m" "$small" --max-memory "$small" ;; esac
    done
    echo
    echo "Hostile captures (smtpcap -r F --json; limit: peak RSS <= $max MiB, or the --max-memory given; exit status 0 or 1):"
    echo
    echo "| capture | MiB | packets | sessions | evicted (table full) | evicted (memory) | out of window | exit | wall s | peak RSS MiB | result |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    [ "$FAIL" = 0 ] || die "hostile captures: at least one run failed (see the table)"
}

# Heap allocations, counted by a malloc interposer: per session on the usual mix, and per
# packet in steady state on two sessions whose 100 MiB messages make up nearly every packet
# (that figure is an upper bound: it includes start-up and the two sessions' own allocations).
allocs() {
    local lib=$OUT/malloc-count.so
    if [ ! -f "$lib" ] || [ bench/malloc-count.c -nt "$lib" ]; then
        $CC -O2 -shared -fPIC -o "$lib" bench/malloc-count.c -ldl || die "cannot compile bench/malloc-count.c"
    fi
    capture "allocs-mix" --seed "$SEED" --size 40M
    capture "allocs-steady" --seed 5 --size 300M --message-size 100M
    local name s p n rows=()
    for name in allocs-mix allocs-steady; do
        s=$(json_get "$DATA/$name.json" sessions)
        p=$(json_get "$DATA/$name.json" packets)
        n=$(LD_PRELOAD=$lib "$BIN" -r "$DATA/$name.pcap" --json 2>&1 >/dev/null | awk '/^mallocs/ { print $2 + $4 + $6 }' || true)
        rows+=("$(awk -v l="$name" -v s="$s" -v p="$p" -v n="$n" 'BEGIN { printf "| %s | %d | %d | %d | %.4f | %.1f |", l, s, p, n, n / p, n / s }')")
    done
    echo
    echo "Heap allocations (malloc+calloc+realloc, start-up included) in smtpcap -r F --json:"
    echo
    echo "| capture | sessions | packets | allocations | per packet | per session |"
    echo "|---|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    echo
}

# Live capture: a generated capture replayed with tcpreplay over a veth pair between two network
# namespaces, at rising rates; tcpdump -w /dev/null and smtpcap capture on the receiving end in
# turn. The table gives each one's kernel drops per rate. Needs root, iproute2 and tcpreplay.
live() {
    [ "$(id -u)" = 0 ] || die "live: needs root (network namespaces)"
    command -v tcpreplay >/dev/null || die "live: tcpreplay is missing (apt-get install tcpreplay)"
    local name="live-seed$SEED-${BENCH_LIVE_SIZE:-200M}"
    capture "$name" --seed "$SEED" --size "${BENCH_LIVE_SIZE:-200M}"
    local f=$DATA/$name.pcap exp=$DATA/$name.json
    local tx=smtpcap-bench-tx rx=smtpcap-bench-rx
    cleanup_live() { ip netns del smtpcap-bench-tx 2>/dev/null || true; ip netns del smtpcap-bench-rx 2>/dev/null || true; }
    trap cleanup_live EXIT
    cleanup_live
    ip netns add "$tx" && ip netns add "$rx"
    ip link add sbtx netns "$tx" type veth peer name sbrx netns "$rx"
    ip -n "$tx" link set sbtx up && ip -n "$rx" link set sbrx up
    ip -n "$tx" addr add 198.51.100.1/24 dev sbtx && ip -n "$rx" addr add 198.51.100.2/24 dev sbrx
    local rates=${BENCH_LIVE_RATES:-"250 500 1000 2000 topspeed"} rate rows=() sent achieved
    local expected_packets expected_sessions
    expected_packets=$(json_get "$exp" packets); expected_sessions=$(json_get "$exp" sessions)
    for rate in $rates; do
        local speed=(--mbps="$rate"); [ "$rate" = topspeed ] && speed=(--topspeed)
        # tcpdump, with the same kernel buffer as smtpcap (16 MiB)
        ip netns exec "$rx" tcpdump -i sbrx -B 16384 -w /dev/null 2> "$OUT/live-tcpdump.err" &
        local pid=$!
        sleep 1
        ip netns exec "$tx" tcpreplay -i sbtx "${speed[@]}" "$f" > "$OUT/live-replay-1.txt" 2>&1 || die "tcpreplay failed"
        sleep 1; kill -INT "$pid"; wait "$pid" || true
        local td_recv td_drop
        td_recv=$(awk '/packets received by filter/ { print $1 }' "$OUT/live-tcpdump.err")
        td_drop=$(awk '/packets dropped by kernel/ { print $1 }' "$OUT/live-tcpdump.err")
        # smtpcap
        ip netns exec "$rx" "$BIN" -i sbrx --json -Z root > "$OUT/live-smtpcap.jsonl" 2> "$OUT/live-smtpcap.err" &
        pid=$!
        sleep 1
        ip netns exec "$tx" tcpreplay -i sbtx "${speed[@]}" "$f" > "$OUT/live-replay-2.txt" 2>&1 || die "tcpreplay failed"
        sleep 1; kill -INT "$pid"; wait "$pid" || true
        local sc
        sc=$(tail -n 1 "$OUT/live-smtpcap.jsonl" | python3 -c '
import json, sys
s = json.load(sys.stdin); c = s["capture"]
print(c.get("received", "?"), c.get("dropped", 0) + c.get("if_dropped", 0), s["sessions"], s["packets"])' 2>/dev/null || echo "? ? ? ?")
        achieved=$(grep -o 'Rated: [0-9.]* Bps, [0-9.]* Mbps' "$OUT/live-replay-2.txt" | awk '{ print $4 }' | head -n 1)
        sent=$(grep -o 'Successful packets: *[0-9]*' "$OUT/live-replay-2.txt" | awk '{ print $3 }' | head -n 1)
        echo "bench:   live $rate: tcpdump received $td_recv dropped $td_drop; smtpcap (received dropped sessions packets) $sc; replay $achieved Mbps" >&2
        # shellcheck disable=SC2086
        rows+=("$(printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |' "$rate" "${achieved:-?}" "${sent:-?}" "${td_recv:-?}" "${td_drop:-?}" $sc)")
    done
    echo
    echo "Live capture over a veth pair (tcpreplay of $f: $expected_packets packets, $expected_sessions sessions); $(nproc) CPUs:"
    echo
    echo "| rate (Mbps asked) | Mbps achieved | packets sent | tcpdump received | tcpdump dropped | smtpcap received | smtpcap dropped | smtpcap sessions | smtpcap packets analyzed |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    echo
}

case "$mode" in
    throughput|bench|"") throughput ;;
    allocs) allocs ;;
    flat) flat ;;
    hostile) hostile ;;
    live) live ;;
    *) die "usage: bench/run.sh [throughput|flat|hostile|allocs|live]" ;;
esac
