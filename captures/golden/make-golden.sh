#!/usr/bin/env bash
# Writes the golden outputs that lock smtpcap's behaviour: for every capture in captures/ and
# in ../shared/peer-captures (when present), stdout of four runs (text, JSON, text with the
# transcript, JSON with the transcript) and the exit status. GoldenOutputTests replays them
# with both readers. Run it only when a change of output is intended, and say why in the commit.
#   captures/golden/make-golden.sh [path/to/smtpcap]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$(realpath "${1:-$root/.build/release/smtpcap}")"
status="$here/status.tsv"
: > "$status"
modes=("text:" "json:--json" "verbose:-v" "verbose-json:-v --json")
run_dir() {  # $1: prefix for golden names, $2: folder of captures
    local prefix="$1" dir="$2"
    (cd "$dir" && for f in $(ls | grep -E '\.(pcap|pcapng)$' | sort); do
        for m in "${modes[@]}"; do
            name="${m%%:*}"; args="${m#*:}"
            out="$here/$prefix$f.$name.out"
            set +e; "$bin" -r "$f" $args > "$out" 2>/dev/null; rc=$?; set -e
            printf '%s\t%s\t%s\n' "$prefix$f" "$name" "$rc" >> "$status"
        done
    done)
}
run_dir "" "$root/captures"
peers="$root/../shared/peer-captures"
if [ -d "$peers" ]; then run_dir "peer-" "$peers"; fi
echo "wrote $(wc -l < "$status") golden runs to $here"
