#!/usr/bin/env bash
# Live capture on a VXLAN underlay, as on a traffic-mirror port: two network namespaces joined
# by a veth pair (the underlay, 203.0.113.201 <-> 203.0.113.202), a Linux vxlan device in each
# (VNI 42, UDP 4789) with overlay addresses 198.51.100.10 and 198.51.100.25; aiosmtpd listens on
# the overlay, smtplib sends one message, and smtpcap -i captures the underlay with its default
# filter. Prints smtpcap's JSON output. Root only; everything started is stopped by PID and the
# namespaces are deleted on exit.
#   Tests/Scripts/live-vxlan.sh SMTPCAP
set -euo pipefail
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3   # the one apt-get installs aiosmtpd for
SMTPCAP=$1
A=smtpcap-vxa-$$
B=smtpcap-vxb-$$
WORK=$(mktemp -d /tmp/smtpcap-vxlan.XXXXXX)
PIDS=()
cleanup() {
    set +e
    # KILL: a test runner may start this script with SIGTERM ignored, which its children inherit.
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    ip netns del "$A" 2>/dev/null
    ip netns del "$B" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add "$A"
ip netns add "$B"
ip link add u0 netns "$A" type veth peer name u1 netns "$B"
ip -n "$A" addr add 203.0.113.201/24 dev u0
ip -n "$B" addr add 203.0.113.202/24 dev u1
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set u0 up
ip -n "$B" link set u1 up
ip -n "$A" link add vx0 type vxlan id 42 dstport 4789 remote 203.0.113.202 local 203.0.113.201 dev u0
ip -n "$B" link add vx0 type vxlan id 42 dstport 4789 remote 203.0.113.201 local 203.0.113.202 dev u1
ip -n "$A" addr add 198.51.100.10/24 dev vx0
ip -n "$B" addr add 198.51.100.25/24 dev vx0
ip -n "$A" link set vx0 up
ip -n "$B" link set vx0 up

ip netns exec "$B" "$PY" -c '
import sys, time
from aiosmtpd.controller import Controller
class H:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 queued"
c = Controller(H(), hostname="198.51.100.25", port=25)
c.start()
print("up", flush=True)
time.sleep(60)
' < /dev/null > "$WORK/server.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q up "$WORK/server.out" 2>/dev/null && break; sleep 0.1; done

ip netns exec "$A" "$SMTPCAP" -i u0 --json --sessions 1 --duration 30 > "$WORK/cap.out" 2> "$WORK/cap.err" &
CAP=$!
PIDS+=($CAP)
for _ in $(seq 100); do grep -q "listening on" "$WORK/cap.err" 2>/dev/null && break; sleep 0.1; done

ip netns exec "$A" "$PY" -c '
import smtplib
with smtplib.SMTP("198.51.100.25", 25, timeout=10) as s:
    s.ehlo("client.example.net")
    s.sendmail("bob@example.net", ["alice@example.org"], "Subject: vxlan\r\n\r\nbody\r\n")
'
wait "$CAP" || true
cat "$WORK/cap.out"
