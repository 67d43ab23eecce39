#!/usr/bin/env bash
# Regenerate the "wire" part of the smtpcap corpus: tunnels, IP fragments,
# multi-interface pcapng, rotated files, a long pause inside DATA, and
# tunnel encapsulations re-made with scapy from a real session. Writes the
# files listed in captures/README.md ("Wire captures") and re-runs
# tools/facts.py, which rewrites expected.json for the whole corpus.
#
# REAL (kernel between namespaces, real mail software):
#   VXLAN (kernel vxlan driver, IPv4 underlay, UDP 4789 / 8472)
#
#     ns wa  u0 198.51.100.201 ===== u1 203.0.113.201  ns wb      (underlay veth)
#       vxlan devices created here, then moved into the overlay namespaces:
#     ns c42 vx42 198.51.100.10  ~~VNI 42~~  vx42 203.0.113.25 ns s42
#     ns c43 vx43 198.51.100.10  ~~VNI 43~~  vx43 203.0.113.25 ns s43
#     ns c7  vx7  198.51.100.10  ~~VNI 7, UDP 8472~~  vx7 203.0.113.25 ns s7
#
#   IPv6 underlay with fragments (MTU 1280 underlay, 1500 overlay)
#
#     ns fc c0 198.51.100.10 -- a1 [br0 + tap0]  ns fa  u0 2001:db8:ff::1 (mtu 1280)
#     ns fs s0 203.0.113.25  -- b1 [br0 + vx64]  ns fb  u1 2001:db8:ff::2 (mtu 1280)
#     tap0 is served by tools/udp_vtep.py (userspace VXLAN VNI 64 on a UDP
#     socket: the kernel's IPv6 stack fragments its large datagrams); vx64
#     is the kernel vxlan driver (reassembles, decapsulates).
#
#   Routed (ipv4 fragments, rotation, multi-interface, pause, base sessions)
#
#     ns rc c0 ---- m0 ns rm m1 ---- s0 ns rs
#     198.51.100.10  .1   203.0.113.1  203.0.113.25   (+ 2001:db8:1::/64, 2001:db8:2::/64)
#
# REWRITTEN: gre, gre-ipv6, gre-teb, erspan2, erspan3, ipip, 6in4, 4in6,
# 6in6, mpls, pppoe, geneve (tools/encap.py over the base sessions). The
# kernel here has no GRE/IPIP/SIT/Geneve/802.1Q support, so these cannot
# be made by the kernel.
#
# Only documentation addresses are used and nothing leaves the namespaces
# this script creates. Everything started here is stopped by PID and the
# namespaces are deleted on exit, also when a step fails.
#
# Usage: sudo captures/make-wire-captures.sh      (KEEP_WORK=1 keeps the temp dir)
set -euo pipefail
umask 022

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${OUT:-$HERE}
TOOLS=$HERE/tools
PY=/usr/bin/python3
T0=$(date +%s)

C4=198.51.100.10;  C6=2001:db8:1::10
MA4=198.51.100.1;  MA6=2001:db8:1::1
MB4=203.0.113.1;   MB6=2001:db8:2::1
S4=203.0.113.25;   S6=2001:db8:2::25
UA4=198.51.100.201; UB4=203.0.113.201          # VXLAN IPv4 underlay
UA6=2001:db8:ff::1; UB6=2001:db8:ff::2          # VXLAN IPv6 underlay

P=smtpw-$$
FROM=bob@example.net
TO=alice@example.org

# shellcheck source=tools/proc.sh
. "$TOOLS/proc.sh"

[ "$(id -u)" = 0 ] || die "must run as root"

# ---------------------------------------------------------------- packages
export PATH=$PATH:/usr/sbin:/sbin
ensure_packages tcpdump:tcpdump tshark:tshark editcap:wireshark-common dumpcap:wireshark-common swaks:swaks openssl:openssl \
    ip:iproute2 ethtool:ethtool py:scapy:python3-scapy py:aiosmtpd:python3-aiosmtpd perl:Net::SSLeay:libnet-ssleay-perl

WORK=$(mktemp -d /tmp/smtpcap-wire.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/log" "$WORK/raw" "$WORK/raw/rotated"

# ----------------------------------------------------------- process control
PIDS=()          # background processes we started (tcpdump, dumpcap, python)
NETNS=()         # namespaces we created

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    stop_all $rc
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM





# ---------------------------------------------------------------- capture
# cap_start NS IFACE FILE FILTER [tcpdump args...] ; sets CAPPID
cap_start() {
    local ns=$1 ifc=$2 file=$3 filter=$4; shift 4
    local name; name=cap-$(basename "$file")
    spawn "$name" "$ns" tcpdump --immediate-mode -n -U -s 0 -i "$ifc" -Z root "$@" -w "$file" "$filter"
    CAPPID=$BGPID
    local n
    for n in $(seq 100); do
        grep -q "listening on" "$WORK/log/$name.log" 2>/dev/null && { sleep 0.2; return 0; }
        sleep 0.1
    done
    die "tcpdump did not start: $(cat "$WORK/log/$name.log")"
}


# ---------------------------------------------------------------- network
new_ns() {       # new_ns NAME [ipv6] : namespace with lo up, IPv6 off unless asked
    ip netns add "$1"; NETNS+=("$1")
    ip -n "$1" link set lo up
    if [ "${2:-}" = ipv6 ]; then
        ip netns exec "$1" sysctl -qw net.ipv6.conf.all.accept_ra=0 \
            net.ipv6.conf.default.accept_ra=0 net.ipv6.conf.default.router_solicitations=0
    else
        ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
            net.ipv6.conf.default.disable_ipv6=1
    fi
}

no_offload() {   # no_offload NS IFACE : no TSO/GSO/GRO, no checksum offload
    local f
    for f in tso gso gro tx rx; do
        ip netns exec "$1" ethtool -K "$2" $f off >/dev/null 2>&1 || true
    done
}

# ---------------------------------------------------------------- servers
SRV=()           # "ns:pid" of the aiosmtpd servers running
server_on() {    # server_on NS [smtp_server.py args]
    local ns=$1; shift
    local ready=$WORK/server-$ns.ready
    rm -f "$ready"
    spawn "server-$ns-$(date +%s%N)" "$ns" $PY "$TOOLS/smtp_server.py" --port 25 \
        --ready-file "$ready" "$@"
    SRV+=("$ns:$BGPID")
    wait_file "$ready"
}
server_off() {   # server_off NS
    local e keep=()
    for e in "${SRV[@]}"; do
        if [ "${e%%:*}" = "$1" ]; then stop_pid "${e#*:}"; forget_pid "${e#*:}"; else keep+=("$e"); fi
    done
    SRV=("${keep[@]}")
}

swaks_in() {     # swaks_in NS ARGS...
    local ns=$1; shift
    ip netns exec "$ns" swaks --helo client.example.net --from "$FROM" --to "$TO" "$@" \
        >>"$WORK/log/swaks.log" 2>&1
}

make_cert() {
    mkdir -p "$WORK/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" -days 30 \
        -subj "/CN=mx.example.org" -addext "subjectAltName=DNS:mx.example.org" \
        2>/dev/null
    CERT=$WORK/tls/cert.pem; KEY=$WORK/tls/key.pem
}

R=$WORK/raw
make_cert

# body files: a few KB (fragments), ~2.6 MB (rotation)
$PY -c '
for i in range(1, 81):
    print(f"line {i:03d} of a plaintext body that will be fragmented on its way " + "." * 20)
' >"$WORK/body-6k.txt"
$PY -c '
import sys
w = sys.stdout.write
for i in range(1, 33001):
    w(f"line {i:05d} of a ~2.6 MB plaintext message spread over rotated capture files ....\n")
' >"$WORK/body-2m6.txt"

# ================================================================ VXLAN (IPv4 underlay)
NS_WA=$P-wa; NS_WB=$P-wb
setup_vxlan() {
    log "VXLAN: underlay $NS_WA/$NS_WB, overlays VNI 42, 43 (4789) and 7 (8472)"
    new_ns "$NS_WA"; new_ns "$NS_WB"
    ip link add u0 netns "$NS_WA" type veth peer name u1 netns "$NS_WB"
    no_offload "$NS_WA" u0; no_offload "$NS_WB" u1
    ip -n "$NS_WA" addr add $UA4/32 dev u0
    ip -n "$NS_WB" addr add $UB4/32 dev u1
    ip -n "$NS_WA" link set u0 up; ip -n "$NS_WB" link set u1 up
    ip -n "$NS_WA" route add $UB4/32 dev u0 src $UA4
    ip -n "$NS_WB" route add $UA4/32 dev u1 src $UB4
    local spec vni port c s
    for spec in 42:4789 43:4789 7:8472; do
        vni=${spec%%:*}; port=${spec#*:}
        c=$P-c$vni; s=$P-s$vni
        new_ns "$c"; new_ns "$s"
        # created in the underlay namespace (its UDP socket lives there), then
        # moved into the overlay namespace
        ip -n "$NS_WA" link add vx$vni type vxlan id $vni dstport $port \
            local $UA4 remote $UB4 dev u0
        ip -n "$NS_WB" link add vx$vni type vxlan id $vni dstport $port \
            local $UB4 remote $UA4 dev u1
        ip -n "$NS_WA" link set vx$vni netns "$c"
        ip -n "$NS_WB" link set vx$vni netns "$s"
        no_offload "$c" vx$vni; no_offload "$s" vx$vni
        ip -n "$c" addr add $C4/32 dev vx$vni; ip -n "$c" link set vx$vni up
        ip -n "$s" addr add $S4/32 dev vx$vni; ip -n "$s" link set vx$vni up
        ip -n "$c" route add $S4/32 dev vx$vni src $C4
        ip -n "$s" route add $C4/32 dev vx$vni src $S4
    done
    sleep 0.5
}

setup_vxlan
server_on $P-s42 --listen $S4
server_on $P-s43 --listen $S4
server_on $P-s7 --listen $S4

log "vxlan-two-vnis: same inner 4-tuple in VNI 42 and VNI 43"
cap_start "$NS_WA" u0 "$R/vxlan-two-vnis.pcap" "udp port 4789"
swaks_in $P-c42 --server $S4 --port 25 --local-port 40025 \
    --header "Subject: VNI 42, inner port 40025" --body "smtpcap test message: VXLAN VNI 42" || die swaks
swaks_in $P-c43 --server $S4 --port 25 --local-port 40025 \
    --header "Subject: VNI 43, inner port 40025" --body "smtpcap test message: VXLAN VNI 43" || die swaks
cap_stop "$CAPPID"

log "vxlan-8472: VNI 7 on UDP 8472"
cap_start "$NS_WA" u0 "$R/vxlan-8472.pcap" "udp port 8472"
swaks_in $P-c7 --server $S4 --port 25 --header "Subject: VXLAN on 8472" \
    --body "smtpcap test message: VXLAN VNI 7, UDP port 8472" || die swaks
cap_stop "$CAPPID"

log "vxlan-underlay: plaintext (no STARTTLS offered), then STARTTLS + TLS 1.3, VNI 42"
cap_start "$NS_WA" u0 "$R/vxlan-underlay.pcap" "udp port 4789"
swaks_in $P-c42 --server $S4 --port 25 --header "Subject: VXLAN plaintext" \
    --body "smtpcap test message: VXLAN, server without STARTTLS" || die swaks
server_off $P-s42
server_on $P-s42 --listen $S4 --starttls "$CERT" "$KEY"
swaks_in $P-c42 --server $S4 --port 25 -tls --header "Subject: VXLAN STARTTLS" \
    --body "smtpcap test message: VXLAN, STARTTLS" || die swaks
cap_stop "$CAPPID"
server_off $P-s42; server_off $P-s43; server_off $P-s7

# ================================================================ VXLAN over IPv6, fragments
NS_FA=$P-fa; NS_FB=$P-fb; NS_FC=$P-fc; NS_FS=$P-fs
log "ipv6-fragments: VXLAN VNI 64 over an IPv6 underlay with MTU 1280"
new_ns "$NS_FA" ipv6; new_ns "$NS_FB" ipv6; new_ns "$NS_FC"; new_ns "$NS_FS"
ip link add u0 netns "$NS_FA" type veth peer name u1 netns "$NS_FB"
ip link add c0 netns "$NS_FC" type veth peer name a1 netns "$NS_FA"
ip link add s0 netns "$NS_FS" type veth peer name b1 netns "$NS_FB"
for pair in "$NS_FA:u0" "$NS_FB:u1" "$NS_FA:a1" "$NS_FB:b1" "$NS_FC:c0" "$NS_FS:s0"; do
    no_offload "${pair%%:*}" "${pair#*:}"
done
ip -n "$NS_FA" link set u0 mtu 1280 up; ip -n "$NS_FB" link set u1 mtu 1280 up
ip -n "$NS_FA" addr add $UA6/64 dev u0 nodad
ip -n "$NS_FB" addr add $UB6/64 dev u1 nodad
ip -n "$NS_FA" link add br0 type bridge; ip -n "$NS_FB" link add br0 type bridge
ip -n "$NS_FA" tuntap add dev tap0 mode tap
ip -n "$NS_FB" link add vx64 type vxlan id 64 dstport 4789 local $UB6 remote $UA6
ip -n "$NS_FB" link set vx64 mtu 1500
no_offload "$NS_FA" tap0; no_offload "$NS_FB" vx64
for l in "$NS_FA:tap0" "$NS_FA:a1" "$NS_FB:vx64" "$NS_FB:b1"; do
    ip -n "${l%%:*}" link set "${l#*:}" master br0
    ip -n "${l%%:*}" link set "${l#*:}" up
done
ip -n "$NS_FA" link set br0 up; ip -n "$NS_FB" link set br0 up
ip -n "$NS_FC" addr add $C4/32 dev c0; ip -n "$NS_FC" link set c0 up
ip -n "$NS_FS" addr add $S4/32 dev s0; ip -n "$NS_FS" link set s0 up
ip -n "$NS_FC" route add $S4/32 dev c0 src $C4
ip -n "$NS_FS" route add $C4/32 dev s0 src $S4
rm -f "$WORK/vtep.ready"
spawn vtep "$NS_FA" $PY "$TOOLS/udp_vtep.py" --tap tap0 --local $UA6 --remote $UB6 \
    --vni 64 --ready-file "$WORK/vtep.ready"
VTEP_PID=$BGPID
wait_file "$WORK/vtep.ready"
sleep 1.5                                   # bridges forwarding, underlay ND done
server_on $NS_FS --listen $S4
cap_start "$NS_FA" u0 "$R/ipv6-fragments.pcap" "ip6 and (udp port 4789 or ip6[6] == 44)"
swaks_in $NS_FC --server $S4 --port 25 --header "Subject: VXLAN over IPv6, fragmented" \
    --body "$WORK/body-6k.txt" || die swaks
cap_stop "$CAPPID"
server_off $NS_FS
stop_pid "$VTEP_PID"; forget_pid "$VTEP_PID"

# ================================================================ routed topology
NS_RC=$P-rc; NS_RM=$P-rm; NS_RS=$P-rs
log "routed topology $NS_RC -- $NS_RM -- $NS_RS"
new_ns "$NS_RC" ipv6; new_ns "$NS_RM" ipv6; new_ns "$NS_RS" ipv6
ip link add c0 netns "$NS_RC" type veth peer name m0 netns "$NS_RM"
ip link add m1 netns "$NS_RM" type veth peer name s0 netns "$NS_RS"
for pair in "$NS_RC:c0" "$NS_RM:m0" "$NS_RM:m1" "$NS_RS:s0"; do
    no_offload "${pair%%:*}" "${pair#*:}"
done
ip -n "$NS_RC" addr add $C4/24 dev c0;  ip -n "$NS_RC" addr add $C6/64 dev c0 nodad
ip -n "$NS_RM" addr add $MA4/24 dev m0; ip -n "$NS_RM" addr add $MA6/64 dev m0 nodad
ip -n "$NS_RM" addr add $MB4/24 dev m1; ip -n "$NS_RM" addr add $MB6/64 dev m1 nodad
ip -n "$NS_RS" addr add $S4/24 dev s0;  ip -n "$NS_RS" addr add $S6/64 dev s0 nodad
for pair in "$NS_RC:c0" "$NS_RM:m0" "$NS_RM:m1" "$NS_RS:s0"; do
    ip -n "${pair%%:*}" link set "${pair#*:}" up
done
ip -n "$NS_RC" route add default via $MA4; ip -n "$NS_RC" -6 route add default via $MA6
ip -n "$NS_RS" route add default via $MB4; ip -n "$NS_RS" -6 route add default via $MB6
ip netns exec "$NS_RM" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
sleep 1
server_on $NS_RS --listen $S4 --listen $S6

log "base sessions for the rewritten tunnels (IPv4 and IPv6, plaintext)"
cap_start "$NS_RC" c0 "$R/base-ipv4.pcap" "tcp port 25"
swaks_in $NS_RC --server $S4 --port 25 --header "Subject: tunnelled session (IPv4)" \
    --body "smtpcap test message: base of the re-encapsulated captures, IPv4" || die swaks
cap_stop "$CAPPID"
cap_start "$NS_RC" c0 "$R/base-ipv6.pcap" "tcp port 25"
swaks_in $NS_RC --server $S6 --port 25 --header "Subject: tunnelled session (IPv6)" \
    --body "smtpcap test message: base of the re-encapsulated captures, IPv6" || die swaks
cap_stop "$CAPPID"

log "long-pause-data: client pauses 2 s inside DATA content"
cap_start "$NS_RC" c0 "$R/pause-raw.pcap" "tcp port 25"
ip netns exec "$NS_RC" $PY "$TOOLS/smtp_client.py" pause $S4 25 >>"$WORK/log/pyclient.log" 2>&1 \
    || die "pause client"
cap_stop "$CAPPID"

log "multi-interface: dumpcap -i c0 -i any"
spawn dumpcap "$NS_RC" dumpcap -q -f "tcp port 25" -i c0 -i any -w "$R/multi-interface.pcapng"
DC=$BGPID
for n in $(seq 100); do
    grep -q "File:" "$WORK/log/dumpcap.log" 2>/dev/null && break
    [ -s "$R/multi-interface.pcapng" ] && break
    sleep 0.1
done
sleep 1.5
swaks_in $NS_RC --server $S4 --port 25 --header "Subject: two interfaces in one pcapng" \
    --body "smtpcap test message: captured on c0 and on any" || die swaks
cap_stop "$DC"

log "rotated: tcpdump -C 1 -w rot, one ~2.6 MB message"
cap_start "$NS_RC" c0 "$R/rotated/rot" "tcp port 25" -C 1
swaks_in $NS_RC --server $S4 --port 25 --suppress-data --header "Subject: 2.6 MB message" \
    --body "$WORK/body-2m6.txt" || die swaks
cap_stop "$CAPPID"
n_rot=$(ls "$R/rotated" | wc -l)
[ "$n_rot" -ge 3 ] || die "rotation produced $n_rot files, expected >= 3"

log "ipv4-fragments: client without PMTU discovery (DF clear), router egress MTU 576"
ip netns exec "$NS_RC" sysctl -qw net.ipv4.ip_no_pmtu_disc=1
ip -n "$NS_RM" link set m1 mtu 576
ip -n "$NS_RS" link set s0 mtu 576
# the server still advertises MSS 1460, so the client sends full 1500-byte
# packets that the router must fragment
ip -n "$NS_RS" route replace default via $MB4 advmss 1460
ip -n "$NS_RS" route replace 203.0.113.0/24 dev s0 advmss 1460
cap_start "$NS_RS" s0 "$R/ipv4-fragments.pcap" "ip"
swaks_in $NS_RC --server $S4 --port 25 --header "Subject: fragmented by the router" \
    --body "$WORK/body-6k.txt" || die swaks
cap_stop "$CAPPID"
server_off $NS_RS

# ---------------------------------------------------------- derived files
log "long-pause-data: shift every packet after the pause by 398 s"
PF=$(tshark -r "$R/pause-raw.pcap" -n -Y "frame.time_delta > 1.5" \
    -T fields -e frame.number | head -1)
[ -n "$PF" ] || die "pause-raw.pcap: no 2 s pause found"
editcap -F pcap -r "$R/pause-raw.pcap" "$WORK/pause-a.pcap" "1-$((PF - 1))"
editcap -F pcap -r "$R/pause-raw.pcap" "$WORK/pause-b.pcap" "$PF-1000000"
editcap -F pcap -t 398 "$WORK/pause-b.pcap" "$WORK/pause-b2.pcap"
mergecap -F pcap -a -w "$R/long-pause-data.pcap" "$WORK/pause-a.pcap" "$WORK/pause-b2.pcap"
rm -f "$R/pause-raw.pcap"

log "re-encapsulated copies of the base sessions (scapy)"
for kind in gre gre-ipv6 gre-teb erspan2 erspan3 ipip 6in4 4in6 6in6 mpls pppoe geneve; do
    $PY "$TOOLS/encap.py" $kind "$R/$kind.pcap" "$R/base-ipv4.pcap" "$R/base-ipv6.pcap" \
        2>>"$WORK/log/encap.log" || die "encap.py $kind"
done
mv "$R/base-ipv4.pcap" "$R/base-ipv6.pcap" "$WORK/"

# ---------------------------------------------------------- checks
log "checks"
nfrag=$(tshark -r "$R/ipv4-fragments.pcap" -n -Y "ip.flags.mf == 1 || ip.frag_offset > 0" | wc -l)
[ "$nfrag" -ge 4 ] || die "ipv4-fragments.pcap: only $nfrag fragments"
nfrag6=$(tshark -r "$R/ipv6-fragments.pcap" -n -o ipv6.defragment:FALSE -Y "ipv6.fraghdr" | wc -l)
[ "$nfrag6" -ge 4 ] || die "ipv6-fragments.pcap: only $nfrag6 IPv6 fragments"
log "fragments: IPv4 $nfrag, IPv6 $nfrag6"
tshark -r "$R/multi-interface.pcapng" -n -T fields -e frame.interface_id -e frame.interface_name \
    | sort | uniq -c >&2
[ "$(tshark -r "$R/multi-interface.pcapng" -n -T fields -e frame.interface_id | sort -u | wc -l)" = 2 ] \
    || die "multi-interface.pcapng: packets on fewer than two interfaces"
if tcpdump -r "$R/multi-interface.pcapng" >/dev/null 2>"$WORK/log/tcpdump-pcapng.err"; then
    die "tcpdump read multi-interface.pcapng without complaint"
fi
log "libpcap on multi-interface.pcapng: $(cat "$WORK/log/tcpdump-pcapng.err")"
gap=$(tshark -r "$R/long-pause-data.pcap" -n -T fields -e frame.time_delta_displayed | sort -g | tail -1)
log "long-pause-data: longest gap ${gap}s"

# ---------------------------------------------------------- install + facts
WIRE_FILES=(vxlan-underlay.pcap vxlan-8472.pcap vxlan-two-vnis.pcap ipv4-fragments.pcap
    ipv6-fragments.pcap multi-interface.pcapng long-pause-data.pcap gre.pcap gre-ipv6.pcap
    gre-teb.pcap erspan2.pcap erspan3.pcap ipip.pcap 6in4.pcap 4in6.pcap 6in6.pcap mpls.pcap
    pppoe.pcap geneve.pcap)
log "copying captures to $OUT"
for f in "${WIRE_FILES[@]}"; do
    [ -s "$R/$f" ] || die "$f was not produced"
    cp "$R/$f" "$OUT/$f"
    chmod 644 "$OUT/$f"                     # dumpcap writes 0600
done
rm -rf "$OUT/rotated"
mkdir -p "$OUT/rotated"
cp "$R"/rotated/* "$OUT/rotated/"
log "deriving and verifying facts, writing expected.json"
$PY "$TOOLS/facts.py" expected "$OUT" >"$WORK/log/facts.log" 2>&1 \
    || { cat "$WORK/log/facts.log" >&2; die "fact verification failed"; }
cat "$WORK/log/facts.log" >&2
ls -l "$OUT/rotated" >&2
for f in "${WIRE_FILES[@]}"; do ls -l "$OUT/$f" >&2; done
