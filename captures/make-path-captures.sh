#!/usr/bin/env bash
# Make the "path" part of the smtpcap corpus: captures whose facts include
# what the network path and the server's identity look like (TTL/hop limit
# of the server's packets, the SYN-ACK's TCP options, the TLS certificate,
# the greeting's host name), not only the SMTP dialogue:
#
#   compare-client.pcap + compare-server.pcap  ONE run captured at both ends
#       (c0 in the client ns, s0 in the server ns): IPv4 through the
#       STARTTLS-masking middlebox, IPv6 direct with STARTTLS + TLS, IPv4
#       through the middlebox in delete mode
#   intercepted-ipv4-direct-ipv6.pcap  a TLS-intercepting transparent proxy
#       (tools/tls_intercept_proxy.py, its own self-signed RSA certificate)
#       on IPv4; IPv6 routed to the real server (other RSA certificate);
#       TLS 1.2 everywhere so the Certificate message is in clear
#   provider-banners.pcap  Google / Microsoft 365 / Yahoo / iCloud style
#       greetings and EHLO replies with STARTTLS deleted
#       (tools/provider_server.py), one plaintext message each, IPv4 + IPv6
#   private-no-starttls.pcap  controls: Postfix (Debian banner) and aiosmtpd
#       (default banner) without STARTTLS, same on IPv4 and IPv6
#   ttl-rewritten.pcap  REWRITTEN: the first session of private-no-starttls
#       with the server's EHLO reply given TTL 254 (tools/pcap_mangle.py ttl):
#       a packet from another box, for server-ttl-changed
#   dual-certificate.pcap  Postfix with an RSA and an ECDSA certificate for
#       mx.example.org; the IPv4 client offers only ECDHE-RSA suites, the
#       IPv6 client only ECDHE-ECDSA suites (TLS 1.2): RSA cert on IPv4,
#       ECDSA cert on IPv6
#
# Real software (aiosmtpd, Postfix 3.7, swaks, Python ssl/OpenSSL) over real
# TCP between three network namespaces joined by veth pairs:
#
#   client ns  c0 ---- m0  middlebox ns  m1 ---- s0  server ns
#   198.51.100.10      198.51.100.1   203.0.113.1     203.0.113.25 (mx.example.org)
#   2001:db8:1::10     2001:db8:1::1  2001:db8:2::1   2001:db8:2::25
#                                                     .31-.34 / ::31-::34 providers
#                                                     .41-.42 / ::41-::42 private
#
# The middlebox forwards IPv4 and IPv6; when a proxy is on, an nftables rule
# REDIRECTs IPv4 TCP port 25 arriving on m0 to it (the proxy terminates TCP:
# its SYN-ACK has TTL 64 at the client, a routed server's has 63). Only
# documentation addresses are used and nothing leaves the namespaces this
# script creates. Run as root on Debian; missing packages are apt-get
# installed. Everything started here is stopped by PID (Postfix with
# `postfix -c DIR stop`, then its master PID) and the namespaces are deleted
# on exit, also when a step fails. Only this script's files are copied to
# captures/; then tools/facts.py rewrites expected.json for the whole corpus
# (the other entries come out unchanged) and the run's own records (proxy
# logs, swaks' peer certificates) are checked against it.
#
# Usage: sudo captures/make-path-captures.sh    (KEEP_WORK=1 keeps the temp dir)
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
# provider look-alikes and private servers: extra addresses on s0
GOOGLE4=203.0.113.31;  GOOGLE6=2001:db8:2::31
MSFT4=203.0.113.32;    MSFT6=2001:db8:2::32
YAHOO4=203.0.113.33;   YAHOO6=2001:db8:2::33
ICLOUD4=203.0.113.34;  ICLOUD6=2001:db8:2::34
PRIVPF4=203.0.113.41;  PRIVPF6=2001:db8:2::41
PRIVAIO4=203.0.113.42; PRIVAIO6=2001:db8:2::42

NS_C=smtpp-cli-$$
NS_M=smtpp-mid-$$
NS_S=smtpp-srv-$$

FROM=bob@example.net
TO=alice@example.org

FILES=(compare-client.pcap compare-server.pcap intercepted-ipv4-direct-ipv6.pcap
    provider-banners.pcap private-no-starttls.pcap dual-certificate.pcap ttl-rewritten.pcap)

# shellcheck source=tools/proc.sh
. "$TOOLS/proc.sh"

[ "$(id -u)" = 0 ] || die "must run as root"

# ---------------------------------------------------------------- packages
export PATH=$PATH:/usr/sbin:/sbin
ensure_packages tcpdump:tcpdump tshark:tshark editcap:wireshark-common swaks:swaks postfix:postfix openssl:openssl \
    ip:iproute2 nft:nftables ethtool:ethtool py:aiosmtpd:python3-aiosmtpd perl:Net::SSLeay:libnet-ssleay-perl

WORK=$(mktemp -d /tmp/smtpcap-path.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/log" "$WORK/raw" "$WORK/peer"

# shellcheck source=tools/lab.sh
. "$TOOLS/lab.sh"

# ---------------------------------------------------------------- network
setup_network() {
    local a
    lab_network
    for a in $GOOGLE4 $MSFT4 $YAHOO4 $ICLOUD4 $PRIVPF4 $PRIVAIO4; do
        ip -n "$NS_S" addr add "$a/24" dev s0
    done
    for a in $GOOGLE6 $MSFT6 $YAHOO6 $ICLOUD6 $PRIVPF6 $PRIVAIO6; do
        ip -n "$NS_S" addr add "$a/64" dev s0 nodad
    done
}

# ---------------------------------------------------------------- TLS
# All certificates say CN=mx.example.org: the real server's RSA and ECDSA
# certificates, and the intercepting proxy's own RSA certificate.
make_certs() {
    local t=$WORK/tls
    mkdir -p "$t"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$t/srv-rsa.key" -out "$t/srv-rsa.pem" \
        -days 30 -subj "/CN=mx.example.org" -addext "subjectAltName=DNS:mx.example.org" 2>/dev/null
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$t/srv-ec.key" -out "$t/srv-ec.pem" -days 30 \
        -subj "/CN=mx.example.org" -addext "subjectAltName=DNS:mx.example.org" 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$t/proxy-rsa.key" -out "$t/proxy-rsa.pem" \
        -days 30 -subj "/CN=mx.example.org" -addext "subjectAltName=DNS:mx.example.org" 2>/dev/null
}
# cert_sha256 PEM : SHA-256 of the certificate's DER, lowercase hex
cert_sha256() { openssl x509 -in "$1" -outform DER | sha256sum | cut -d' ' -f1; }

# Postfix instances here accept mail for example.org and discard it; TLS logged.
PF_EXTRA=("mydestination = example.org, \$myhostname" "local_recipient_maps =" "local_transport = discard"
          "relay_domains =" "mynetworks = 127.0.0.0/8" "smtpd_tls_loglevel = 1")
# Captures keep root (tcpdump -Z root): the run directory is root's.
cap_start_root() { cap_start "$@" -Z root; }

# ---------------------------------------------------------------- servers
# bg_start NAME NS CMD... : start a server/proxy that writes --ready-file
# $WORK/NAME.ready (the caller passes it), wait for it; sets BGPID
bg_start() {
    local name=$1 ns=$2; shift 2
    rm -f "$WORK/$name.ready"
    spawn "$name" "$ns" "$@"
    wait_file "$WORK/$name.ready"
}
bg_stop() { stop_pid "$1"; forget_pid "$1"; }

# ---------------------------------------------------------------- middlebox
MB_PID=""
redirect_on() {   # redirect_on PORT : IPv4 TCP port 25 from the client -> local PORT
    ip netns exec "$NS_M" nft -f - <<EOF
table ip smtpcap {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "m0" tcp dport 25 redirect to :$1
    }
}
EOF
}
strip_on() {      # strip_on mask|delete : tools/strip_proxy.py on IPv4 port 25
    bg_start "strip-$1" "$NS_M" $PY "$TOOLS/strip_proxy.py" --port 10025 --mode "$1" \
        --ready-file "$WORK/strip-$1.ready"
    MB_PID=$BGPID
    redirect_on 10025
}
intercept_on() {  # tools/tls_intercept_proxy.py on IPv4 port 25, TLS 1.2
    bg_start intercept "$NS_M" $PY "$TOOLS/tls_intercept_proxy.py" --port 10026 \
        --cert "$WORK/tls/proxy-rsa.pem" --key "$WORK/tls/proxy-rsa.key" --max-tls 1.2 \
        --ready-file "$WORK/intercept.ready"
    MB_PID=$BGPID
    redirect_on 10026
}
middlebox_off() {
    ip netns exec "$NS_M" nft delete table ip smtpcap 2>/dev/null || true
    if [ -n "$MB_PID" ]; then bg_stop "$MB_PID"; MB_PID=""; fi
}

N_SWAKS=0
# swaks_c LABEL ARGS... : swaks in the client namespace; the transcript goes
# to log/swaks-LABEL.log
swaks_c() {
    local label=$1; shift
    N_SWAKS=$((N_SWAKS + 1))
    ip netns exec "$NS_C" swaks --helo client.example.net --from "$FROM" --to "$TO" \
        --header "Subject: smtpcap path test $N_SWAKS ($label)" \
        --body "smtpcap test message $N_SWAKS: $label" "$@" \
        >"$WORK/log/swaks-$label.log" 2>&1 || die "swaks $label failed: $(tail -3 "$WORK/log/swaks-$label.log")"
}

R=$WORK/raw     # all captures are written here first

# ================================================================ scenarios
setup_network
make_certs

log "1 compare-client + compare-server (one run, captured at both ends)"
bg_start srv-compare "$NS_S" $PY "$TOOLS/smtp_server.py" --listen $S4 --listen $S6 \
    --starttls "$WORK/tls/srv-ec.pem" "$WORK/tls/srv-ec.key" --ready-file "$WORK/srv-compare.ready"
SRV=$BGPID
cap_start_root "$NS_C" c0 "$R/compare-client.pcap"; CAPC=$CAPPID
cap_start_root "$NS_S" s0 "$R/compare-server.pcap"; CAPS=$CAPPID
strip_on mask
swaks_c compare-v4-mask --server $S4 -tlso
middlebox_off
swaks_c compare-v6-direct --server $S6 -tlso
strip_on delete
swaks_c compare-v4-delete --server $S4 -tlso
middlebox_off
cap_stop "$CAPC"; cap_stop "$CAPS"
bg_stop "$SRV"
grep -q "Host did not advertise STARTTLS" "$WORK/log/swaks-compare-v4-mask.log" || die "compare: STARTTLS not stripped (mask)"
grep -q "Host did not advertise STARTTLS" "$WORK/log/swaks-compare-v4-delete.log" || die "compare: STARTTLS not stripped (delete)"
grep -q "220 .*TLS" "$WORK/log/swaks-compare-v6-direct.log" || die "compare: no STARTTLS on IPv6"

log "2 intercepted-ipv4-direct-ipv6 (TLS-intercepting proxy on IPv4, TLS 1.2)"
bg_start srv-intercept "$NS_S" $PY "$TOOLS/smtp_server.py" --listen $S4 --listen $S6 \
    --starttls "$WORK/tls/srv-rsa.pem" "$WORK/tls/srv-rsa.key" --ready-file "$WORK/srv-intercept.ready"
SRV=$BGPID
intercept_on
cap_start_root "$NS_C" c0 "$R/intercepted-ipv4-direct-ipv6.pcap"
for i in 1 2; do
    swaks_c "intercept-v4-$i" --server $S4 -tls --tls-protocol tlsv1_2 \
        --tls-get-peer-cert "$WORK/peer/intercept-v4-$i.pem"
    swaks_c "intercept-v6-$i" --server $S6 -tls --tls-protocol tlsv1_2 \
        --tls-get-peer-cert "$WORK/peer/intercept-v6-$i.pem"
done
cap_stop "$CAPPID"
middlebox_off
bg_stop "$SRV"

log "3 provider-banners (STARTTLS deleted from provider-style EHLO replies)"
PROV_PIDS=()
PROVIDERS=("google,$GOOGLE4,$GOOGLE6" "microsoft,$MSFT4,$MSFT6" "yahoo,$YAHOO4,$YAHOO6"
    "icloud,$ICLOUD4,$ICLOUD6")
for spec in "${PROVIDERS[@]}"; do
    IFS=, read -r prof a4 a6 <<<"$spec"
    bg_start "prov-$prof" "$NS_S" $PY "$TOOLS/provider_server.py" --profile "$prof" \
        --listen "$a4" --listen "$a6" --ready-file "$WORK/prov-$prof.ready"
    PROV_PIDS+=("$BGPID")
done
cap_start_root "$NS_C" c0 "$R/provider-banners.pcap"
for spec in "${PROVIDERS[@]}"; do
    IFS=, read -r prof a4 a6 <<<"$spec"
    swaks_c "provider-$prof-v4" --server "$a4" -tlso
    swaks_c "provider-$prof-v6" --server "$a6" -tlso
done
cap_stop "$CAPPID"
for p in "${PROV_PIDS[@]}"; do bg_stop "$p"; done
for f in "$WORK"/log/swaks-provider-*.log; do
    grep -q "Host did not advertise STARTTLS" "$f" || die "$(basename "$f"): STARTTLS was offered"
done

log "4 private-no-starttls (Postfix Debian banner and aiosmtpd default banner, no TLS)"
PFP=$WORK/pf-private
pf_init "$PFP" "${PF_EXTRA[@]}"
postconf -c "$PFP" -e "myhostname = mail.example.net" "mydomain = example.net" \
    "inet_interfaces = $PRIVPF4, $PRIVPF6" \
    "smtpd_banner = \$myhostname ESMTP \$mail_name (Debian/GNU)" \
    "smtpd_tls_security_level = none"
pf_start "$NS_S" "$PFP"
bg_start srv-private "$NS_S" $PY "$TOOLS/smtp_server.py" --listen $PRIVAIO4 --listen $PRIVAIO6 \
    --hostname mail2.example.net --ident "" --ready-file "$WORK/srv-private.ready"
SRV=$BGPID
cap_start_root "$NS_C" c0 "$R/private-no-starttls.pcap"
swaks_c private-postfix-v4 --server $PRIVPF4 -tlso
swaks_c private-postfix-v6 --server $PRIVPF6 -tlso
swaks_c private-aiosmtpd-v4 --server $PRIVAIO4 -tlso
swaks_c private-aiosmtpd-v6 --server $PRIVAIO6 -tlso
cap_stop "$CAPPID"
bg_stop "$SRV"
pf_stop "$PFP"

log "5 dual-certificate (Postfix with RSA + ECDSA certificates, cipher-dependent)"
PFD=$WORK/pf-dual
pf_init "$PFD" "${PF_EXTRA[@]}"
postconf -c "$PFD" -e "myhostname = mx.example.org" "mydomain = example.org" \
    "inet_interfaces = $S4, $S6" \
    "smtpd_banner = \$myhostname ESMTP Postfix" \
    "smtpd_tls_security_level = may" \
    "smtpd_tls_cert_file = $WORK/tls/srv-rsa.pem" "smtpd_tls_key_file = $WORK/tls/srv-rsa.key" \
    "smtpd_tls_eccert_file = $WORK/tls/srv-ec.pem" "smtpd_tls_eckey_file = $WORK/tls/srv-ec.key"
pf_start "$NS_S" "$PFD"
cap_start_root "$NS_C" c0 "$R/dual-certificate.pcap"
swaks_c dual-v4-rsa --server $S4 -tls --tls-protocol tlsv1_2 \
    --tls-cipher 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256' \
    --tls-get-peer-cert "$WORK/peer/dual-v4.pem"
swaks_c dual-v6-ecdsa --server $S6 -tls --tls-protocol tlsv1_2 \
    --tls-cipher 'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256' \
    --tls-get-peer-cert "$WORK/peer/dual-v6.pem"
cap_stop "$CAPPID"
pf_stop "$PFD"

log "6 ttl-rewritten (one server packet of a real session given another TTL)"
tshark -r "$R/private-no-starttls.pcap" -Y "tcp.stream == 0" -F pcap -w "$WORK/first-session.pcap"
EHLO_FRAME=$(tshark -r "$WORK/first-session.pcap" -Y 'tcp.srcport == 25 && tcp.payload contains "250-"' \
    -T fields -e frame.number | head -1)
[ -n "$EHLO_FRAME" ] || die "no EHLO reply in the first private session"
$PY "$TOOLS/pcap_mangle.py" ttl "$WORK/first-session.pcap" "$R/ttl-rewritten.pcap" 254 "$EHLO_FRAME"

# ---------------------------------------------------------- install + facts
log "copying captures to $OUT"
for f in "${FILES[@]}"; do
    [ -s "$R/$f" ] || die "$f was not produced"
    m=$(od -An -tx1 -N4 "$R/$f" | tr -d ' \n')
    case "$m" in d4c3b2a1|a1b2c3d4) ;; *) die "$f: unexpected file magic $m" ;; esac
    cp "$R/$f" "$OUT/$f"
    chmod 644 "$OUT/$f"
done
log "deriving and verifying facts, writing expected.json"
$PY "$TOOLS/facts.py" expected "$OUT" >"$WORK/log/facts.log" 2>&1 \
    || { cat "$WORK/log/facts.log" >&2; die "fact verification failed"; }
grep -E "^(compare|intercepted|provider|private|dual)|files," "$WORK/log/facts.log" >&2

# ---------------------------------------------------------- checks against the run
log "checking the captures against the run's own records"
# masking is visible only on the client side of the compare run
n_cli=$(tshark -r "$OUT/compare-client.pcap" -n -Y 'frame contains "XXXXXXXA"' 2>/dev/null | wc -l)
n_srv=$(tshark -r "$OUT/compare-server.pcap" -n -Y 'frame contains "XXXXXXXA"' 2>/dev/null | wc -l)
if [ "$n_cli" -lt 1 ] || [ "$n_srv" != 0 ]; then
    die "mask frames: client side $n_cli, server side $n_srv"
fi
# the provider look-alikes never mention STARTTLS
n=$(tshark -r "$OUT/provider-banners.pcap" -n -Y 'frame contains "STARTTLS"' 2>/dev/null | wc -l)
[ "$n" = 0 ] || die "provider-banners.pcap: $n frames mention STARTTLS"
# pairs, proxy logs, certificates seen by swaks
cat "$WORK"/log/strip-*.log >"$WORK/strip-proxy.log"
SRV_RSA=$(cert_sha256 "$WORK/tls/srv-rsa.pem") SRV_EC=$(cert_sha256 "$WORK/tls/srv-ec.pem") \
PROXY_RSA=$(cert_sha256 "$WORK/tls/proxy-rsa.pem") PEER=$WORK/peer \
$PY - "$OUT/expected.json" "$WORK/strip-proxy.log" <<'EOF' || die "run records disagree with expected.json"
import hashlib, json, os, re, subprocess, sys
exp = {e["file"]: e for e in json.load(open(sys.argv[1]))}
bad = []
# 1. the strip proxy logged "C -> S via L" for each relayed session: the
#    client-side session C<->S must be paired with the server-side L<->S
log = re.findall(r"strip_proxy: (\S+) -> (\S+) via (\S+)", open(sys.argv[2]).read())
pairs = {(p["this"]["client"], p["other"]["client"]) for p in exp["compare-client.pcap"]["pairs"]}
for c, s, l in log:
    if (c, l) not in pairs:
        bad.append(f"proxy relayed {c} via {l}, not paired in expected.json")
if len(log) != 2:
    bad.append(f"{len(log)} proxied sessions logged, expected 2")
# 2. certificates: what swaks saw, the files made, what the wire shows
def sha(pem):
    der = subprocess.run(["openssl", "x509", "-in", pem, "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()
want = {"intercepted-ipv4-direct-ipv6.pcap": {4: os.environ["PROXY_RSA"], 6: os.environ["SRV_RSA"]},
        "dual-certificate.pcap": {4: os.environ["SRV_RSA"], 6: os.environ["SRV_EC"]}}
for f, per in want.items():
    for s in exp[f]["sessions"]:
        c = s["certificate"]
        if not c or c["sha256"] != per[s["ip_version"]]:
            bad.append(f"{f} {s['client']}: certificate {c} != {per[s['ip_version']]}")
peer = os.environ["PEER"]
for name, fp in [("intercept-v4-1", "PROXY_RSA"), ("intercept-v4-2", "PROXY_RSA"),
                 ("intercept-v6-1", "SRV_RSA"), ("intercept-v6-2", "SRV_RSA"),
                 ("dual-v4", "SRV_RSA"), ("dual-v6", "SRV_EC")]:
    got = sha(os.path.join(peer, name + ".pem"))
    if got != os.environ[fp]:
        bad.append(f"swaks {name} saw certificate {got}, expected {fp}")
if os.environ["PROXY_RSA"] == os.environ["SRV_RSA"]:
    bad.append("proxy and server certificates are the same")
for b in bad:
    print("RUN CHECK:", b, file=sys.stderr)
print(f"run checks: {len(log)} proxied sessions paired, certificates as made", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
log "certificates: server RSA $(cert_sha256 "$WORK/tls/srv-rsa.pem" | cut -c1-16)..., server ECDSA $(cert_sha256 "$WORK/tls/srv-ec.pem" | cut -c1-16)..., proxy RSA $(cert_sha256 "$WORK/tls/proxy-rsa.pem" | cut -c1-16)..."
for f in "${FILES[@]}"; do ls -l "$OUT/$f" >&2; done
