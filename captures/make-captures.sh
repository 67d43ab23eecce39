#!/usr/bin/env bash
# Regenerate the smtpcap test corpus (captures/*.pcap*, expected.json).
#
# Real mail software (Postfix, swaks, aiosmtpd, Python smtplib/ssl) talks
# over real TCP between three network namespaces joined by veth pairs:
#
#   client ns  c0 ---- m0  middlebox ns  m1 ---- s0  server ns
#   198.51.100.10      198.51.100.1   203.0.113.1     203.0.113.25
#   2001:db8:1::10     2001:db8:1::1  2001:db8:2::1   2001:db8:2::25
#
# Only documentation addresses are used and nothing leaves the namespaces
# this script creates. Captures are taken with tcpdump inside the
# namespaces (normally on the client's c0). Run as root on Debian; missing
# packages are apt-get installed. Everything started here is stopped by PID
# and the namespaces are deleted on exit, also when a step fails.
#
# Usage: sudo captures/make-captures.sh        (KEEP_WORK=1 keeps the temp dir)
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

NS_C=smtpcap-cli-$$
NS_M=smtpcap-mid-$$
NS_S=smtpcap-srv-$$

FROM=bob@example.net
TO=alice@example.org
AUTH_USER=alice@example.org
AUTH_PASS=S3cr3t-Hunter2

# shellcheck source=tools/proc.sh
. "$TOOLS/proc.sh"

[ "$(id -u)" = 0 ] || die "must run as root"

# ---------------------------------------------------------------- packages
export PATH=$PATH:/usr/sbin:/sbin
ensure_packages tcpdump:tcpdump tshark:tshark editcap:wireshark-common tcprewrite:tcpreplay swaks:swaks postfix:postfix \
    openssl:openssl ip:iproute2 nft:nftables ethtool:ethtool py:aiosmtpd:python3-aiosmtpd perl:Net::SSLeay:libnet-ssleay-perl

WORK=$(mktemp -d /tmp/smtpcap-captures.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/log" "$WORK/raw"

# ----------------------------------------------------------- process control
# shellcheck source=tools/lab.sh
. "$TOOLS/lab.sh"

# ---------------------------------------------------------------- network

# ---------------------------------------------------------------- TLS
make_cert() {
    mkdir -p "$WORK/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" -days 30 \
        -subj "/CN=mx.example.org" -addext "subjectAltName=DNS:mx.example.org" \
        2>/dev/null
    CERT=$WORK/tls/cert.pem; KEY=$WORK/tls/key.pem
}

# ---------------------------------------------------------------- postfix
# Every instance here: one connection per delivery, the stock banner, TLS logged.
PF_EXTRA=("smtp_connection_cache_on_demand = no" "smtpd_banner = \$myhostname ESMTP Postfix"
          "smtp_tls_loglevel = 1" "smtpd_tls_loglevel = 1")
PFS=$WORK/pf-server
PFC=$WORK/pf-client

setup_server_postfix() {   # setup_server_postfix tls|notls
    [ -d "$PFS" ] || pf_init "$PFS" "${PF_EXTRA[@]}"
    postconf -c "$PFS" -e \
        "myhostname = mx.example.org" "mydomain = example.org" \
        "inet_interfaces = $S4, $S6" \
        "mydestination = example.org, mx.example.org" \
        "local_recipient_maps =" "local_transport = discard" \
        "relay_domains =" "mynetworks = 127.0.0.0/8"
    if [ "$1" = tls ]; then
        postconf -c "$PFS" -e "smtpd_tls_security_level = may" \
            "smtpd_tls_cert_file = $CERT" "smtpd_tls_key_file = $KEY"
    else
        postconf -c "$PFS" -e "smtpd_tls_security_level = none"
    fi
}

setup_client_postfix() {   # setup_client_postfix RELAYHOST [extra main.cf lines...]
    [ -d "$PFC" ] || pf_init "$PFC" "${PF_EXTRA[@]}"
    local relay=$1; shift
    postconf -c "$PFC" -e \
        "myhostname = client.example.net" "mydomain = example.net" \
        "myorigin = example.net" "inet_interfaces = loopback-only" \
        "mydestination =" "mynetworks = 127.0.0.0/8 [::1]/128" \
        "relayhost = $relay" "smtp_tls_security_level = may" \
        "smtp_tls_protocols = !SSLv2, !SSLv3" "$@"
}

SENT=0
# pf_deliver SUBJECT : inject one message into the client instance (over its
# loopback, not captured) and wait until it has been relayed to the server
pf_deliver() {
    local subject=$1 n
    ip netns exec "$NS_C" swaks --server 127.0.0.1 --port 25 --helo localhost \
        --from "$FROM" --to "$TO" --header "Subject: $subject" \
        --body "smtpcap test message: $subject" >>"$WORK/log/inject.log" 2>&1 \
        || die "injection into client postfix failed"
    SENT=$((SENT + 1))
    for n in $(seq 200); do
        [ "$(grep -c 'status=sent' "$PFC/maillog" 2>/dev/null)" -ge $SENT ] && break
        if grep -qE 'status=(deferred|bounced)' "$PFC/maillog" 2>/dev/null; then
            die "delivery failed: $(grep -E 'status=' "$PFC/maillog" | tail -1)"
        fi
        sleep 0.1
    done
    [ "$(grep -c 'status=sent' "$PFC/maillog")" -ge $SENT ] || die "delivery timed out"
    sleep 0.5
}

# ---------------------------------------------------------------- middlebox
MB_PID=""
middlebox_on() {   # middlebox_on mask|delete : IPv4 port 25 -> proxy
    rm -f "$WORK/proxy.ready"
    spawn "proxy-$1" "$NS_M" $PY "$TOOLS/strip_proxy.py" --port 10025 --mode "$1" \
        --ready-file "$WORK/proxy.ready"
    MB_PID=$BGPID
    wait_file "$WORK/proxy.ready"
    ip netns exec "$NS_M" nft -f - <<EOF
table ip smtpcap {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "m0" tcp dport 25 redirect to :10025
    }
}
EOF
}

middlebox_off() {
    ip netns exec "$NS_M" nft delete table ip smtpcap 2>/dev/null || true
    [ -n "$MB_PID" ] && { stop_pid "$MB_PID"; forget_pid "$MB_PID"; MB_PID=""; }
}

# ---------------------------------------------------------------- aiosmtpd
SRV_PID=""
server_on() {   # server_on PORT [smtp_server.py args]
    local port=$1; shift
    rm -f "$WORK/server.ready"
    spawn "server-$port" "$NS_S" $PY "$TOOLS/smtp_server.py" --listen $S4 --listen $S6 \
        --port "$port" --ready-file "$WORK/server.ready" "$@"
    SRV_PID=$BGPID
    wait_file "$WORK/server.ready"
}
server_off() {
    [ -n "$SRV_PID" ] && { stop_pid "$SRV_PID"; forget_pid "$SRV_PID"; SRV_PID=""; }
}

swaks_c() {     # swaks in the client namespace
    ip netns exec "$NS_C" swaks --helo client.example.net --from "$FROM" --to "$TO" "$@" \
        >>"$WORK/log/swaks.log" 2>&1
}
pyclient() {
    ip netns exec "$NS_C" $PY "$TOOLS/smtp_client.py" "$@" >>"$WORK/log/pyclient.log" 2>&1
}

R=$WORK/raw     # all captures are written here first

# ================================================================ scenarios
lab_network
make_cert

log "server: Postfix with STARTTLS"
setup_server_postfix tls
pf_start "$NS_S" "$PFS"

log "1a postfix-starttls-tls13 (+ cooked-sll2 from the server side)"
setup_client_postfix "[$S4]:25"
pf_start "$NS_C" "$PFC"
cap_start "$NS_C" c0 "$R/postfix-starttls-tls13.pcap"; CAP1=$CAPPID
cap_start "$NS_S" any "$R/cooked-sll2.pcap" -y LINUX_SLL2; CAP2=$CAPPID
pf_deliver "Postfix relay, STARTTLS TLS 1.3"
cap_stop "$CAP1"; cap_stop "$CAP2"

log "1b postfix-starttls-tls12"
setup_client_postfix "[$S4]:25" "smtp_tls_protocols = !SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.3"
postfix -c "$PFC" reload >>"$WORK/log/postfix.log" 2>&1; sleep 1
cap_start "$NS_C" c0 "$R/postfix-starttls-tls12.pcap"
pf_deliver "Postfix relay, STARTTLS TLS 1.2"
cap_stop "$CAPPID"

log "3a stripped-ipv4-intact-ipv6 (middlebox masks STARTTLS on IPv4)"
middlebox_on mask
setup_client_postfix "[$S4]:25"
postfix -c "$PFC" reload >>"$WORK/log/postfix.log" 2>&1; sleep 1
cap_start "$NS_C" c0 "$R/stripped-ipv4-intact-ipv6.pcap"
pf_deliver "over IPv4 through the middlebox"
setup_client_postfix "[ipv6:$S6]:25"
postfix -c "$PFC" reload >>"$WORK/log/postfix.log" 2>&1; sleep 1
pf_deliver "over IPv6, routed untouched"
cap_stop "$CAPPID"
middlebox_off

log "3b stripped-deleted (middlebox deletes the STARTTLS line)"
middlebox_on delete
setup_client_postfix "[$S4]:25"
postfix -c "$PFC" reload >>"$WORK/log/postfix.log" 2>&1; sleep 1
cap_start "$NS_C" c0 "$R/stripped-deleted.pcap"
pf_deliver "STARTTLS line deleted by the middlebox"
cap_stop "$CAPPID"
middlebox_off
pf_stop "$PFC"

log "4 starttls-unused (swaks, no -tls)"
cap_start "$NS_C" c0 "$R/starttls-unused.pcap"
swaks_c --server $S4 --port 25 --header "Subject: STARTTLS offered, not used" \
    --body "smtpcap test message: plaintext although STARTTLS was offered" || die swaks
cap_stop "$CAPPID"

log "7 starttls-injection"
cap_start "$NS_C" c0 "$R/starttls-injection.pcap"
pyclient injection $S4 25 || die "injection client"
cap_stop "$CAPPID"

log "8a bdat-plaintext (IPv6)"
cap_start "$NS_C" c0 "$R/bdat-plaintext.pcap"
pyclient bdat $S6 25 || die "bdat client"
cap_stop "$CAPPID"

log "8b pipelining-two-messages"
cap_start "$NS_C" c0 "$R/pipelining-two-messages.pcap"
pyclient pipelining $S4 25 || die "pipelining client"
cap_stop "$CAPPID"

log "8c helo-only"
cap_start "$NS_C" c0 "$R/helo-only.pcap"
pyclient helo $S4 25 || die "helo client"
cap_stop "$CAPPID"

log "data-multisegment (base of the damage variants)"
$PY -c '
import sys
for i in range(1, 101):
    print(f"line {i:03d} of a multi-segment plaintext body for smtpcap " + "." * 12)
' >"$WORK/bigbody.txt"
cap_start "$NS_C" c0 "$R/data-multisegment.pcap"
swaks_c --server $S4 --port 25 --header "Subject: multi-segment body" \
    --body "$WORK/bigbody.txt" || die swaks
cap_stop "$CAPPID"

log "2 no-starttls-plaintext (server without TLS)"
pf_stop "$PFS"
setup_server_postfix notls
pf_start "$NS_S" "$PFS"
setup_client_postfix "[$S4]:25"
pf_start "$NS_C" "$PFC"
cap_start "$NS_C" c0 "$R/no-starttls-plaintext.pcap"
pf_deliver "server offers no STARTTLS"
cap_stop "$CAPPID"
pf_stop "$PFC"
pf_stop "$PFS"

log "5a submission-auth-tls (aiosmtpd on 587, AUTH after STARTTLS)"
server_on 587 --starttls "$CERT" "$KEY" --auth tls
cap_start "$NS_C" c0 "$R/submission-auth-tls.pcap"
swaks_c --server $S4 --port 587 -tls -a PLAIN -au "$AUTH_USER" -ap "$AUTH_PASS" \
    --header "Subject: submission with AUTH inside TLS" || die swaks
cap_stop "$CAPPID"
server_off

log "5b auth-plaintext (AUTH PLAIN and AUTH LOGIN in cleartext)"
server_on 587 --auth plain
cap_start "$NS_C" c0 "$R/auth-plaintext.pcap"
swaks_c --server $S4 --port 587 -a PLAIN -au "$AUTH_USER" -ap "$AUTH_PASS" \
    --header "Subject: AUTH PLAIN in cleartext" || die swaks
swaks_c --server $S6 --port 587 -a LOGIN -au "$AUTH_USER" -ap "$AUTH_PASS" \
    --header "Subject: AUTH LOGIN in cleartext" || die swaks
cap_stop "$CAPPID"
server_off

log "6 starttls-refused (454, client continues in plaintext)"
server_on 25 --refuse-starttls
cap_start "$NS_C" c0 "$R/starttls-refused.pcap"
swaks_c --server $S4 --port 25 -tlso --header "Subject: STARTTLS refused" || die swaks
cap_stop "$CAPPID"
server_off

log "9 implicit-tls-465"
server_on 465 --implicit-tls "$CERT" "$KEY"
cap_start "$NS_C" c0 "$R/implicit-tls-465.pcap"
swaks_c --server $S4 --port 465 --tls-on-connect --header "Subject: implicit TLS" || die swaks
cap_stop "$CAPPID"
server_off

# ---------------------------------------------------------- derived files
log "10 format and damage variants"
cp "$R/stripped-ipv4-intact-ipv6.pcap" "$R/default.pcap"
editcap -F pcapng "$R/stripped-ipv4-intact-ipv6.pcap" "$R/stripped-ipv4-intact-ipv6.pcapng"
tcprewrite --enet-vlan=add --enet-vlan-tag=100 --enet-vlan-cfi=0 --enet-vlan-pri=0 \
    --infile="$R/postfix-starttls-tls13.pcap" --outfile="$R/vlan.pcap"
editcap -F pcap -s 80 "$R/postfix-starttls-tls13.pcap" "$R/snaplen-80.pcap"

# frames (1-based) of client->server segments of the DATA body
body_frames() {
    tshark -r "$1" -n -Y "tcp.dstport == 25 && tcp.len > 0" -T fields -e frame.number -e tcp.len \
        | awk '$2 > 1000 { print $1 }'
}
mapfile -t BF < <(body_frames "$R/data-multisegment.pcap")
[ ${#BF[@]} -ge 3 ] || die "data-multisegment: expected >= 3 full-size body segments, got ${#BF[@]}"
# lost segment: drop the 2nd full-size body segment
editcap -F pcap "$R/data-multisegment.pcap" "$R/lost-segment.pcap" "${BF[1]}"
# reordered: the 2nd full-size body segment is swapped with the next frame
$PY "$TOOLS/pcap_mangle.py" swap "$R/data-multisegment.pcap" "$R/reordered.pcap" "${BF[1]}"
# duplicated: every client->server segment with payload written twice
mapfile -t CF < <(tshark -r "$R/data-multisegment.pcap" -n -Y "tcp.dstport == 25 && tcp.len > 0" \
    -T fields -e frame.number)
$PY "$TOOLS/pcap_mangle.py" dup "$R/data-multisegment.pcap" "$R/duplicated.pcap" "${CF[@]}"
# mid-session: starts at the client's MAIL FROM segment
MF=$(tshark -r "$R/no-starttls-plaintext.pcap" -n -Y 'smtp.req.command == "MAIL"' \
    -T fields -e frame.number | head -1)
[ -n "$MF" ] || die "no MAIL FROM in no-starttls-plaintext.pcap"
editcap -F pcap -r "$R/no-starttls-plaintext.pcap" "$R/mid-session.pcap" "$MF-1000000"

# ---------------------------------------------------------- install + facts
log "copying captures to $OUT"
# only this script's files: the make-wire-captures.sh files stay in place
for f in "$R"/*.pcap "$R"/*.pcapng; do rm -f "$OUT/$(basename "$f")"; done
cp "$R"/*.pcap "$R"/*.pcapng "$OUT"/
for f in "$OUT"/*.pcap "$OUT"/*.pcapng; do     # file format matches the name
    m=$(od -An -tx1 -N4 "$f" | tr -d ' \n')
    case "$f:$m" in
        *.pcap:d4c3b2a1|*.pcap:a1b2c3d4|*.pcap:4d3cb2a1|*.pcap:a1b23c4d) ;;
        *.pcapng:0a0d0d0a) ;;
        *) die "$(basename "$f"): unexpected file magic $m" ;;
    esac
done
log "deriving and verifying facts, writing expected.json"
$PY "$TOOLS/facts.py" expected "$OUT" >"$WORK/log/facts.log" 2>&1 \
    || { cat "$WORK/log/facts.log" >&2; die "fact verification failed"; }
cat "$WORK/log/facts.log" >&2
# the fake credentials may be on the wire (base64) only where AUTH was sent
# in cleartext: auth-plaintext.pcap
for f in "$OUT"/*.pcap "$OUT"/*.pcapng; do
    hits=$(tshark -r "$f" -n -Y 'frame contains "S3cr3t-Hunter2" || frame contains "AGFsaWNlQGV4YW1wbGUub3JnAFMzY3IzdC1IdW50ZXIy" || frame contains "UzNjcjN0LUh1bnRlcjI="' \
        -T fields -e frame.number 2>/dev/null | wc -l)
    case "$(basename "$f"):$hits" in
        auth-plaintext.pcap:2) ;;
        auth-plaintext.pcap:*) die "auth-plaintext.pcap: expected 2 frames with credentials, got $hits" ;;
        *:0) ;;
        *) die "$(basename "$f"): credentials visible in cleartext" ;;
    esac
done
du -sh "$OUT" >&2
