#!/usr/bin/python3
"""Per-session SMTP facts of the capture corpus, from the wire.

  facts.py derive FILE          print the facts derived from FILE (JSON)
  facts.py expected DIR         check every capture in DIR against the
                                scenario table below and write
                                DIR/expected.json; exit 1 on any mismatch

The facts are derived independently of smtpcap: tshark extracts every TCP
segment (tcp.payload, relative seq, no desegmentation); this script
reassembles both directions by sequence number (dropping duplicates,
recording gaps), pairs SMTP commands with replies in order (which also
covers PIPELINING), skips DATA content / BDAT chunks, and reads the TLS
ClientHello / ServerHello records after STARTTLS's 220 (or from the first
byte for implicit TLS). A second, independent check uses tshark's own SMTP
and TLS dissectors (smtp.req.command, ServerHello supported_version).
The scenario table states what the generator did; both must agree.

Path captures (make-path-captures.sh, table PATH) also get, per session:
server_name (first word of the 220 greeting), path (TTL / hop limit of the
client's SYN, the server's SYN-ACK and first data packet, the SYN-ACK's TCP
options as a fingerprint string, TTL changes after the SYN-ACK) and
certificate (SHA-256, key type/bits and chain length of a TLS <= 1.2
Certificate message, from tshark's tls.handshake.certificate and openssl,
checked against this script's own reassembly), and the two files of one
run captured at both ends get "pairs" (which session is which).
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

SMTP_PORTS = {25, 465, 587}
GAP = b"\x00<gap>\x00"


def S(ipv, ehlo, stls, reply, hs, ver, data, auth=False, masked=False,
      notes=""):
    return dict(ip_version=ipv, ehlo_starttls_offered=ehlo,
                starttls_command=stls, starttls_reply=reply, tls_handshake=hs,
                tls_version=ver, plaintext_data_messages=data,
                plaintext_auth=auth, masked_starttls=masked, notes=notes)


TLS13 = "Postfix client -> Postfix server (relayhost), STARTTLS offered and " \
    "used, TLS 1.3; mail content encrypted."
TLS12 = "Postfix client -> Postfix server, STARTTLS offered and used; client " \
    "limited to TLS 1.2 (smtp_tls_protocols excludes TLSv1.3); content encrypted."
MASKED = "Postfix -> Postfix over IPv4 through the middlebox: EHLO reply " \
    "line '250-STARTTLS' rewritten to '250-XXXXXXXA'; client saw no STARTTLS " \
    "and delivered in plaintext (STARTTLS stripping)."
V6_OK = "Same delivery over IPv6, routed untouched by the middlebox: " \
    "STARTTLS offered and used, TLS 1.3."
MULTI = "swaks, plaintext DATA with a ~7 KB body sent in several " \
    "full-size segments; STARTTLS offered but not used."
NOTLS = "Postfix -> Postfix, server has smtpd_tls_security_level=none: no " \
    "STARTTLS in the EHLO reply, mail delivered in plaintext."

SCENARIOS = {
    "postfix-starttls-tls13.pcap": [S(4, [True], True, 220, True, "TLSv1.3", 0, notes=TLS13)],
    "postfix-starttls-tls12.pcap": [S(4, [True], True, 220, True, "TLSv1.2", 0, notes=TLS12)],
    "no-starttls-plaintext.pcap": [S(4, [False], False, None, False, None, 1, notes=NOTLS)],
    "stripped-ipv4-intact-ipv6.pcap": [
        S(4, [False], False, None, False, None, 1, masked=True, notes=MASKED),
        S(6, [True], True, 220, True, "TLSv1.3", 0, notes=V6_OK)],
    "default.pcap": [
        S(4, [False], False, None, False, None, 1, masked=True, notes=MASKED),
        S(6, [True], True, 220, True, "TLSv1.3", 0, notes=V6_OK)],
    "stripped-deleted.pcap": [S(4, [False], False, None, False, None, 1, notes=(
        "Postfix -> Postfix over IPv4 through the middlebox in delete mode: "
        "the '250-STARTTLS' line was removed from the EHLO reply (no X "
        "mask left); client delivered in plaintext."))],
    "starttls-unused.pcap": [S(4, [True], False, None, False, None, 1, notes=(
        "swaks without -tls against Postfix: STARTTLS offered but never "
        "issued; plaintext DATA."))],
    "submission-auth-tls.pcap": [S(4, [True], True, 220, True, "TLSv1.3", 0, notes=(
        "swaks -tls -a PLAIN to aiosmtpd on port 587: STARTTLS, then AUTH "
        "PLAIN and DATA inside TLS 1.3 (AUTH is not offered before TLS)."))],
    "auth-plaintext.pcap": [
        S(4, [False], False, None, False, None, 1, auth=True, notes=(
            "swaks -a PLAIN to aiosmtpd on 587 over IPv4, no TLS offered: "
            "AUTH PLAIN with credentials in cleartext, 235, plaintext DATA.")),
        S(6, [False], False, None, False, None, 1, auth=True, notes=(
            "swaks -a LOGIN to aiosmtpd on 587 over IPv6, no TLS offered: "
            "AUTH LOGIN (334 username/password exchange) in cleartext, "
            "plaintext DATA."))],
    "starttls-refused.pcap": [S(4, [True], True, 454, False, None, 1, notes=(
        "aiosmtpd advertises STARTTLS but answers 454 to it; swaks "
        "-tls-optional continues in plaintext and sends the mail."))],
    "starttls-injection.pcap": [S(4, [True], True, 220, True, "TLSv1.3", 0, notes=(
        "Python client sends 'STARTTLS\\r\\nRSET\\r\\n' in ONE TCP segment "
        "(command injection after STARTTLS); Postfix answers 220 only to "
        "STARTTLS and discards the pipelined RSET; TLS 1.3 handshake, EHLO and "
        "QUIT inside TLS. No mail sent."))],
    "bdat-plaintext.pcap": [S(6, [True], False, None, False, None, 1, notes=(
        "Python client over IPv6 to Postfix: CHUNKING, 'BDAT n' + "
        "'BDAT m LAST' (one message in two chunks) in plaintext; STARTTLS "
        "offered but unused."))],
    "pipelining-two-messages.pcap": [S(4, [True], False, None, False, None, 2, notes=(
        "Python client to Postfix: PIPELINING, MAIL/RCPT/DATA batched in one "
        "segment per message, two messages in one session, plaintext."))],
    "helo-only.pcap": [S(4, [], False, None, False, None, 1, notes=(
        "smtplib helo(): HELO instead of EHLO (so no EHLO reply and no "
        "extension list), one plaintext DATA message."))],
    "implicit-tls-465.pcap": [S(4, [], False, None, True, "TLSv1.3", 0, notes=(
        "swaks --tls-on-connect to aiosmtpd on port 465: TLS ClientHello is "
        "the first client data (implicit TLS 1.3); whole SMTP session "
        "encrypted, no plaintext SMTP at all."))],
    "data-multisegment.pcap": [S(4, [True], False, None, False, None, 1, notes=MULTI)],
    # ---- capture-format variants (same facts as the source capture)
    "cooked-sll2.pcap": [S(4, [True], True, 220, True, "TLSv1.3", 0, notes=(
        "Captured at the same time as postfix-starttls-tls13.pcap but in the "
        "server namespace with 'tcpdump -i any -y LINUX_SLL2' (Linux cooked "
        "v2 link type); same session seen from the server side."))],
    "stripped-ipv4-intact-ipv6.pcapng": [
        S(4, [False], False, None, False, None, 1, masked=True,
          notes="pcapng copy (editcap -F pcapng) of stripped-ipv4-intact-ipv6.pcap. " + MASKED),
        S(6, [True], True, 220, True, "TLSv1.3", 0, notes=V6_OK)],
    "vlan.pcap": [S(4, [True], True, 220, True, "TLSv1.3", 0, notes=(
        "postfix-starttls-tls13.pcap with an 802.1Q tag (VLAN 100) added to "
        "every frame by tcprewrite --enet-vlan=add."))],
    # ---- damage variants
    "snaplen-80.pcap": [S(4, [], True, 220, True, None, 0, notes=(
        "postfix-starttls-tls13.pcap cut to 80 bytes per frame (editcap -s "
        "80): 14 bytes of TCP payload per IPv4 segment survive. 'STARTTLS' "
        "and '220 2.0.0 Read' are visible, the EHLO reply is cut after "
        "'250-mx.example' (keyword list not observable, so no complete EHLO "
        "reply: []; an analyzer must not claim STARTTLS was missing). The "
        "TLS records start (ClientHello type 1) is visible but the ServerHello "
        "extensions are cut off, so the TLS version is not observable (null). "
        "Every payload-bearing frame is truncated."))],
    "mid-session.pcap": [S(4, [], False, None, False, None, 1, notes=(
        "no-starttls-plaintext.pcap from the client's MAIL FROM segment "
        "onwards (editcap -r N-): no SYN, no greeting, no EHLO (so []); "
        "MAIL/RCPT/DATA pipelined, 354 and the plaintext content are seen."))],
    "lost-segment.pcap": [S(4, [True], False, None, False, None, 1, notes=(
        "data-multisegment.pcap with the second full-size DATA body segment "
        "removed (editcap): a sequence gap inside the message content; the "
        "end-of-data '.' and the 250 reply are still there. " + MULTI))],
    "reordered.pcap": [S(4, [True], False, None, False, None, 1, notes=(
        "data-multisegment.pcap with the second full-size DATA body segment "
        "swapped with the frame after it (timestamps kept in order): "
        "out-of-order arrival. " + MULTI))],
    "duplicated.pcap": [S(4, [True], False, None, False, None, 1, notes=(
        "data-multisegment.pcap with every client->server segment carrying "
        "payload written twice (retransmission-like exact duplicates). " + MULTI))],
}

# ---- wire captures (make-wire-captures.sh): tunnels, fragments, pcapng with
# two interfaces, rotated files, a long pause inside DATA. Extra facts per
# session: "tunnel" (encapsulation layers outermost first, as seen in the
# client's packets; null = none) and "interface" (pcapng: names of the
# capture interfaces the session's packets were captured on; null = pcap).
VX_O = "198.51.100.201 -> 203.0.113.201"
O4 = "198.51.100.200 -> 203.0.113.200"
O6 = "2001:db8:ff::1 -> 2001:db8:ff::2"
PLAIN = S(4, [False], False, None, False, None, 1)
PLAIN6 = S(6, [False], False, None, False, None, 1)
SWAKS = ("swaks (plaintext, no STARTTLS offered) -> aiosmtpd (tools/smtp_server.py), "
         "inner 198.51.100.10 -> 203.0.113.25:25")
BASE4 = ("REWRITTEN: every packet of a real plaintext session (swaks -> aiosmtpd over "
         "IPv4, routed between namespaces, captured with tcpdump on the client veth; "
         "not shipped) re-encapsulated by tools/encap.py (scapy), original timestamps; ")
BASE6 = BASE4.replace("over IPv4", "over IPv6 (2001:db8:1::10 -> 2001:db8:2::25)")


def WS(base, tunnel, notes, interface=None):
    d = dict(base)
    d.update(tunnel=tunnel, interface=interface, notes=notes)
    return d


def vx(vni, port=4789, outer=VX_O):
    return dict(type="vxlan", vni=vni, udp_port=port, outer=outer)


def gre(proto, key=None, outer=O4):
    return dict(type="gre", protocol=proto, key=key, outer=outer)


WIRE = {
    "vxlan-underlay.pcap": dict(sessions=[
        WS(PLAIN, [vx(42)], "REAL: Linux vxlan devices (VNI 42, UDP 4789) over an IPv4 "
           "veth underlay 198.51.100.201 <-> 203.0.113.201, captured on the underlay veth "
           "(every SMTP packet inside UDP/4789). " + SWAKS + "."),
        WS(S(4, [True], True, 220, True, "TLSv1.3", 0), [vx(42)],
           "REAL: same VXLAN overlay; swaks -tls -> aiosmtpd with STARTTLS: STARTTLS, 220, "
           "TLS 1.3, mail encrypted.")]),
    "vxlan-8472.pcap": dict(decode=["-d", "udp.port==8472,vxlan"], sessions=[
        WS(PLAIN, [vx(7, 8472)], "REAL: Linux vxlan VNI 7 on UDP port 8472 (the old Linux "
           "default; tshark needs -d udp.port==8472,vxlan), IPv4 underlay, captured on the "
           "underlay veth. " + SWAKS + ".")]),
    "vxlan-two-vnis.pcap": dict(sessions=[
        WS(PLAIN, [vx(42)], "REAL: two overlays share one underlay: VNI 42 and VNI 43 each "
           "join a client namespace 198.51.100.10 and a server namespace 203.0.113.25. This "
           "session: VNI 42, swaks --local-port 40025. Same inner 4-tuple as the next session; "
           "the two must not be merged."),
        WS(PLAIN, [vx(43)], "REAL: VNI 43, swaks --local-port 40025 from the other client "
           "namespace with the same address: identical inner 4-tuple "
           "198.51.100.10:40025 -> 203.0.113.25:25, a different VNI.")]),
    "ipv4-fragments.pcap": dict(fragments=True, sessions=[
        WS(PLAIN, None, "REAL: client with net.ipv4.ip_no_pmtu_disc=1 (DF clear) -> router "
           "namespace whose egress veth has MTU 576 -> server (server advertises MSS 1460 "
           "via a route advmss); captured on the server's veth: every full-size client "
           "segment arrives as 3 IPv4 fragments. " + SWAKS + ", ~6.5 KB body.")]),
    "ipv6-fragments.pcap": dict(fragments=True, sessions=[
        WS(PLAIN, [vx(64, outer=O6)], "REAL (kernel fragmentation): VXLAN VNI 64 over an "
           "IPv6 underlay 2001:db8:ff::1 <-> ::2 with MTU 1280, overlay MTU 1500, captured "
           "on the underlay. The client-side VTEP is tools/udp_vtep.py (userspace VXLAN on a "
           "TAP device; Linux's vxlan driver drops oversize IPv6-encapsulated frames instead "
           "of fragmenting), so the kernel's IPv6 UDP stack fragments each large datagram "
           "(Fragment header); the server side is the kernel vxlan driver. Server->client "
           "packets are small (not fragmented). " + SWAKS + ", ~6.5 KB body.")]),
    # The interface is part of a session's identity (the packets of one interface are one
    # vantage point), so the one TCP connection is two sessions, one per interface; each
    # interface's facts are derived from its packets alone (tshark -Y frame.interface_id).
    "multi-interface.pcapng": dict(per_interface=True, sessions=[
        WS(PLAIN, None, "REAL: dumpcap -i c0 -i any in the client namespace: one pcapng "
           "with interface 0 = c0 (Ethernet) and interface 1 = any (Linux cooked); every "
           "packet of the ONE TCP connection is in the file twice, once per interface. libpcap "
           "(tcpdump -r) refuses the file. This session: its packets on c0. " + SWAKS + ".",
           interface="c0"),
        WS(PLAIN, None, "REAL: the same connection's packets on the 'any' interface (Linux "
           "cooked), the second session of this file.", interface="any")]),
    "long-pause-data.pcap": dict(pause=True, sessions=[
        WS(PLAIN, None, "REAL session, timestamps edited: tools/smtp_client.py pause -> "
           "aiosmtpd; the client sends the first half of the DATA content, sleeps 2 s, "
           "sends the rest. Every packet after the pause was shifted 398 s later "
           "(editcap -r split, editcap -t 398, mergecap -a), so ~400 s pass inside DATA.")]),
    "rotated/rot": dict(merge=True, sessions=[
        WS(PLAIN, None, "REAL: tcpdump -C 1 -w rot on the client veth (files rot, rot1, "
           "rot2, ... exactly as tcpdump named them) during ONE plaintext session: swaks "
           "-> aiosmtpd with a ~2.6 MB body. Facts are of the files concatenated in order "
           "(mergecap -a rot rot1 rot2 ...); the session spans every file.")]),
    "gre.pcap": dict(sessions=[WS(PLAIN, [gre("0x0800", 1234)], BASE4 +
        "outer IPv4 198.51.100.200 <-> 203.0.113.200 / GRE (RFC 2890, key 1234, sequence "
        "numbers per direction) / inner IPv4.")]),
    "gre-ipv6.pcap": dict(sessions=[WS(PLAIN6, [gre("0x86dd", None, O6)], BASE6 +
        "outer IPv6 2001:db8:ff::1 <-> ::2 / GRE (no key, no sequence) / inner IPv6.")]),
    "gre-teb.pcap": dict(sessions=[WS(PLAIN, [gre("0x6558", 1234)], BASE4 +
        "outer IPv4 / GRE key 1234, protocol 0x6558 (transparent Ethernet bridging) / the "
        "whole inner Ethernet frame.")]),
    "erspan2.pcap": dict(sessions=[WS(PLAIN, [dict(type="erspan", erspan_type=2, session_id=100,
                                                  outer=O4)], BASE4 +
        "ERSPAN type II: outer IPv4 198.51.100.200 -> 203.0.113.200 for BOTH directions "
        "(a mirror sent to a collector) / GRE with sequence number, protocol 0x88BE / "
        "ERSPAN II header (version field 1, session id 100) / inner Ethernet frame.")]),
    "erspan3.pcap": dict(sessions=[WS(PLAIN, [dict(type="erspan", erspan_type=3, session_id=100,
                                                  outer=O4)], BASE4 +
        "ERSPAN type III: as erspan2 but GRE protocol 0x22EB and the 12-byte ERSPAN III "
        "header (version field 2, session id 100, timestamp = capture time in 100 ns units "
        "mod 2^32, granularity 01, P=1, frame type 0 Ethernet, hardware id 1) / inner "
        "Ethernet frame.")]),
    "ipip.pcap": dict(sessions=[WS(PLAIN, [dict(type="ipip", outer=O4)], BASE4 +
        "outer IPv4 protocol 4 / inner IPv4.")]),
    "6in4.pcap": dict(sessions=[WS(PLAIN6, [dict(type="6in4", outer=O4)], BASE6 +
        "outer IPv4 protocol 41 (as a tunnel broker delivers) / inner IPv6.")]),
    "4in6.pcap": dict(sessions=[WS(PLAIN, [dict(type="4in6", outer=O6)], BASE4 +
        "outer IPv6 next header 4 / inner IPv4.")]),
    "6in6.pcap": dict(sessions=[WS(PLAIN6, [dict(type="6in6", outer=O6)], BASE6 +
        "outer IPv6 next header 41 / inner IPv6.")]),
    "mpls.pcap": dict(sessions=[WS(PLAIN, [dict(type="mpls", labels=[1000, 2000])], BASE4 +
        "EtherType 0x8847, two MPLS labels (client->server 1000 then 2000 bottom-of-stack; "
        "server->client 1001/2001), TTL 64 / inner IPv4.")]),
    "pppoe.pcap": dict(sessions=[
        WS(PLAIN, [dict(type="pppoe", session_id=0x11, ppp_protocol="0x0021")], BASE4 +
           "EtherType 0x8864 PPPoE session stage, session id 0x0011, PPP protocol 0x0021 / "
           "inner IPv4."),
        WS(PLAIN6, [dict(type="pppoe", session_id=0x12, ppp_protocol="0x0057")], BASE6 +
           "PPPoE session id 0x0012, PPP protocol 0x0057 / inner IPv6 (later in time).")]),
    "geneve.pcap": dict(sessions=[WS(PLAIN, [dict(type="geneve", vni=99, udp_port=6081,
                                                  options=1, outer=O4)], BASE4 +
        "outer IPv4 / UDP 6081 / Geneve (VNI 99, protocol 0x6558, one option TLV class "
        "0xffff type 0x01 with 4 bytes) / inner Ethernet frame; UDP checksum computed.")]),
}

# ---- path captures (make-path-captures.sh): what the network path and the
# server's identity look like. Extra facts per session: "server_name" (first
# word of the greeting), "path" (TTL / hop limit of the client's SYN, the
# server's SYN-ACK and first data packet, the SYN-ACK's TCP options, TTL
# changes after the SYN-ACK) and "certificate" (leaf certificate of a TLS
# <= 1.2 Certificate message, else null). The table gives the expected TTLs
# (server_ttl, server_data_ttl, client_ttl) and, for certificates, a label:
# every session with the same label must show the same certificate, and
# different labels different ones (across all path files).
ROUTED = (63, 63, 64)       # client-side capture, server one router away
PROXIED = (64, 64, 64)      # client-side capture, a proxy in the middlebox answered
AT_SRV_PROXY = (64, 64, 64) # server-side capture, client = the proxy (middlebox itself)
AT_SRV_ROUTED = (64, 64, 63)  # server-side capture, client one router away
CERT_SRV_RSA = ("server-rsa", "rsa", 2048, 1)
CERT_SRV_EC = ("server-ecdsa", "ecdsa", 256, 1)
CERT_PROXY = ("proxy-rsa", "rsa", 2048, 1)
MX = "mx.example.org"
MSFT_HOST = "AM4PEPF00027A6C.mail.protection.outlook.com"


def PS(base, server_name, ttl, cert=None, notes="", ttl_changes=0):
    d = dict(base)
    d.update(server_name=server_name, ttl=ttl, cert=cert, notes=notes, ttl_changes=ttl_changes)
    return d


CMP_MASK = ("REAL, client side (tcpdump -i c0 in the client namespace), captured in the "
            "same run as compare-server.pcap. swaks -tlso -> aiosmtpd (STARTTLS offered) over "
            "IPv4 through the middlebox: nftables REDIRECTs port 25 to tools/strip_proxy.py "
            "--mode mask, which terminates TCP (SYN-ACK TTL 64 from the middlebox itself, a "
            "routed server's would be 63) and rewrites '250-STARTTLS' to '250-XXXXXXXA'; swaks "
            "saw no STARTTLS and sent the message in plaintext.")
CMP_V6 = ("REAL: same run, IPv6, routed untouched through the middlebox (hop limit 63): "
          "STARTTLS offered and used, TLS 1.3 (certificate encrypted, so null).")
CMP_DEL = ("REAL: same run, IPv4 through tools/strip_proxy.py --mode delete: the "
           "'250-STARTTLS' line is gone from the EHLO reply (no mask left), plaintext "
           "message; proxy TTL 64.")
SRV_SIDE = ("REAL, server side (tcpdump -i s0 in the server namespace), the same run as "
            "compare-client.pcap. ")
INTERCEPT4 = ("REAL: swaks -tls --tls-protocol tlsv1_2 over IPv4; the middlebox REDIRECTs port "
              "25 to tools/tls_intercept_proxy.py, which relays the plaintext dialogue "
              "unchanged, forwards STARTTLS, relays the server's 220, completes TLS 1.2 with "
              "the client using ITS OWN self-signed RSA-2048 certificate (CN mx.example.org, "
              "made at run time) and opens its own TLS 1.2 connection to the real server. The "
              "client sees the proxy's certificate and TTL 64 (TCP terminated in the middlebox).")
DIRECT6 = ("REAL: swaks -tls --tls-protocol tlsv1_2 over IPv6, routed untouched (hop limit "
           "63) to the real server (aiosmtpd, its own RSA-2048 certificate, also CN "
           "mx.example.org): a different certificate than on IPv4.")
PROVIDER = ("REAL: swaks -tlso -> tools/provider_server.py (aiosmtpd) presenting {who}'s "
            "greeting and EHLO reply formats with the STARTTLS line DELETED ({how}); swaks "
            "saw no STARTTLS and sent one message in plaintext. Server {addr}, routed (TTL 63).")
PRIV_PF = ("REAL control: swaks -tlso -> Postfix 3.7, smtpd_tls_security_level = none, "
           "banner '$myhostname ESMTP $mail_name (Debian/GNU)' = '220 mail.example.net ESMTP "
           "Postfix (Debian/GNU)'; no STARTTLS offered, plaintext message; the same on IPv4 "
           "and IPv6 ({fam}).")
PRIV_AIO = ("REAL control: swaks -tlso -> aiosmtpd with its default greeting '220 "
            "mail2.example.net Python SMTP 1.4.3', no STARTTLS offered, plaintext message; "
            "the same on IPv4 and IPv6 ({fam}).")
DUAL = ("REAL: Postfix 3.7 smtpd with smtpd_tls_cert_file/key_file (RSA 2048) AND "
        "smtpd_tls_eccert_file/eckey_file (ECDSA P-256), both CN mx.example.org; swaks -tls "
        "--tls-protocol tlsv1_2 --tls-cipher {ciphers}: OpenSSL picks the {kind} certificate "
        "for the offered suites. Routed (TTL 63); message inside TLS.")
PLAIN_NO = S(4, [False], False, None, False, None, 1)
TLS12 = S(4, [True], True, 220, True, "TLSv1.2", 0)
TLS13_6 = S(6, [True], True, 220, True, "TLSv1.3", 0)


def v6(base):
    d = dict(base)
    d["ip_version"] = 6
    return d


def provider(who, host, how, a4, a6):
    return [PS(PLAIN_NO, host, ROUTED, notes=PROVIDER.format(who=who, how=how, addr=a4)),
            PS(v6(PLAIN_NO), host, ROUTED, notes=PROVIDER.format(who=who, how=how, addr=a6))]


PATH = {
    "compare-client.pcap": dict(pair_with="compare-server.pcap",
                                matched_by=["message", "4-tuple", "message"], sessions=[
        PS(S(4, [False], False, None, False, None, 1, masked=True), MX, PROXIED, notes=CMP_MASK),
        PS(TLS13_6, MX, ROUTED, notes=CMP_V6),
        PS(PLAIN_NO, MX, PROXIED, notes=CMP_DEL)]),
    "compare-server.pcap": dict(pair_with="compare-client.pcap",
                                matched_by=["message", "4-tuple", "message"], sessions=[
        PS(S(4, [True], False, None, False, None, 1), MX, AT_SRV_PROXY, notes=SRV_SIDE + (
            "The masked session of the client side as the server saw it: the client is the "
            "proxy 203.0.113.1 (SYN TTL 64), the EHLO reply still lists STARTTLS, it is never "
            "issued; plaintext message (looks like 'STARTTLS offered, unused').")),
        PS(TLS13_6, MX, AT_SRV_ROUTED, notes=SRV_SIDE + (
            "The IPv6 session, same 4-tuple on both sides (client hop limit 63 here): STARTTLS, "
            "TLS 1.3.")),
        PS(S(4, [True], False, None, False, None, 1), MX, AT_SRV_PROXY, notes=SRV_SIDE + (
            "The delete-mode session as the server saw it: client 203.0.113.1, STARTTLS "
            "offered, not used; plaintext message."))]),
    "intercepted-ipv4-direct-ipv6.pcap": dict(sessions=[
        PS(TLS12, MX, PROXIED, CERT_PROXY, INTERCEPT4),
        PS(v6(TLS12), MX, ROUTED, CERT_SRV_RSA, DIRECT6),
        PS(TLS12, MX, PROXIED, CERT_PROXY, "Second IPv4 session: " + INTERCEPT4),
        PS(v6(TLS12), MX, ROUTED, CERT_SRV_RSA, "Second IPv6 session: " + DIRECT6)]),
    "provider-banners.pcap": dict(sessions=(
        provider("Google", "mx.google.com", "greeting '220 mx.google.com ESMTP <id> - gsmtp', "
                 "EHLO '250-mx.google.com at your service, [<client ip>]', SIZE 157286400, "
                 "8BITMIME, ENHANCEDSTATUSCODES, PIPELINING, CHUNKING, SMTPUTF8",
                 "203.0.113.31", "2001:db8:2::31")
        + provider("Microsoft 365", MSFT_HOST, "greeting '220 " + MSFT_HOST + " Microsoft "
                   "ESMTP MAIL Service ready at <RFC 2822 date>', EHLO '250-" + MSFT_HOST
                   + " Hello [<client ip>]', SIZE 157286400, PIPELINING, DSN, "
                   "ENHANCEDSTATUSCODES, 8BITMIME, BINARYMIME, CHUNKING, SMTPUTF8",
                   "203.0.113.32", "2001:db8:2::32")
        + provider("Yahoo", "mta4265.mail.ne1.yahoo.com", "greeting '220 mta4265.mail.ne1.yahoo.com "
                   "ESMTP ready' (the MX mta7.am0.yahoodns.net declares a *.yahoo.com name), EHLO "
                   "'250-mta4265.mail.ne1.yahoo.com', PIPELINING, SIZE 41943040, "
                   "'250 8BITMIME': STARTTLS was the last line, so 8BITMIME became final",
                   "203.0.113.33", "2001:db8:2::33")
        + provider("Apple iCloud", "iCloud", "greeting '220 iCloud iscream SMTP proxy - "
                   "p00-iscream-smtp-<pod> 3.5.0 (<build>)' as observed from "
                   "mx01.mail.icloud.com, so the greeting's first word is 'iCloud'; EHLO "
                   "'250-p00-iscream-smtp-<pod>', PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES "
                   "(the list after PIPELINING is assumed)",
                   "203.0.113.34", "2001:db8:2::34"))),
    "private-no-starttls.pcap": dict(sessions=[
        PS(PLAIN_NO, "mail.example.net", ROUTED, notes=PRIV_PF.format(fam="IPv4, 203.0.113.41")),
        PS(v6(PLAIN_NO), "mail.example.net", ROUTED,
           notes=PRIV_PF.format(fam="IPv6, 2001:db8:2::41")),
        PS(PLAIN_NO, "mail2.example.net", ROUTED, notes=PRIV_AIO.format(fam="IPv4, 203.0.113.42")),
        PS(v6(PLAIN_NO), "mail2.example.net", ROUTED,
           notes=PRIV_AIO.format(fam="IPv6, 2001:db8:2::42"))]),
    "ttl-rewritten.pcap": dict(sessions=[
        PS(PLAIN_NO, "mail.example.net", ROUTED, ttl_changes=1, notes=(
            "REWRITTEN: the first (IPv4, Postfix) session of private-no-starttls.pcap alone, "
            "its frames unchanged but one: the server's EHLO reply, whose IPv4 TTL "
            "tools/pcap_mangle.py ttl set to 254 (checksum recomputed), as a box one hop away "
            "with an initial TTL of 255 would send it had it rewritten or injected the reply. "
            "Every other server packet keeps the server's TTL 63."))]),
    "dual-certificate.pcap": dict(sessions=[
        PS(TLS12, MX, ROUTED, CERT_SRV_RSA, "IPv4. " + DUAL.format(
            ciphers="'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256'", kind="RSA")),
        PS(v6(TLS12), MX, ROUTED, CERT_SRV_EC, "IPv6. " + DUAL.format(
            ciphers="'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256'",
            kind="ECDSA"))]),
}

# facts that cannot be re-derived from a damaged file by the reassembler:
# they are taken from the scenario table (see notes) instead
UNVERIFIABLE = {
    "snaplen-80.pcap": {"ehlo_starttls_offered", "masked_starttls",
                        "tls_version", "plaintext_data_messages",
                        "starttls_command", "starttls_reply", "tls_handshake"},
}


def truncated_check(path, want):
    """Per-frame check for snaplen-truncated files: the STARTTLS command, its
    220 reply and the ClientHello start must be visible in single frames."""
    problems = []
    seen = []
    for v in segments(path):
        p = bytes.fromhex(v["tcp.payload"].replace(":", "")) if v["tcp.payload"] else b""
        up = int(v["tcp.dstport"]) in SMTP_PORTS
        if up and p.startswith(b"STARTTLS\r\n"):
            seen.append("STARTTLS")
        elif not up and p.startswith(b"220 ") and seen[-1:] == ["STARTTLS"]:
            seen.append("220")
        elif up and len(p) >= 6 and p[0] == 0x16 and p[5] == 1 and seen[-1:] == ["220"]:
            seen.append("ClientHello")
    got = dict(starttls_command="STARTTLS" in seen,
               starttls_reply=220 if "220" in seen else None,
               tls_handshake="ClientHello" in seen)
    for k, g in got.items():
        if g != want[k]:
            problems.append(f"{path}: per-frame {k} {g!r}, expected {want[k]!r}")
    return problems

FIELDS = ["frame.number", "tcp.stream", "ip.src", "ip.dst", "ipv6.src",
          "ipv6.dst", "tcp.srcport", "tcp.dstport", "tcp.flags.syn",
          "tcp.flags.ack", "tcp.seq", "tcp.len", "tcp.payload",
          "frame.protocols", "frame.time_epoch", "ip.ttl", "ipv6.hlim",
          "tcp.options"]


def tshark(args):
    return subprocess.run(["tshark", "-n"] + args, check=True,
                          capture_output=True, text=True).stdout


def inner_ip(protocols):
    """'ip' or 'ipv6': the innermost IP layer carrying the TCP segment."""
    toks = protocols.split(":")
    toks = toks[:toks.index("tcp")] if "tcp" in toks else toks
    ips = [t for t in toks if t in ("ip", "ipv6")]
    return ips[-1] if ips else "ip"


def segments(path, decode=()):
    """TCP segments; addresses and ports are those of the INNERMOST IP/TCP
    (last occurrence), which for a capture without tunnels is the only one.
    ICMP errors quoting a TCP header are not segments."""
    out = tshark(["-r", path] + list(decode) + ["-o", "tcp.desegment_tcp_streams:FALSE",
                  "-o", "tcp.relative_sequence_numbers:TRUE", "-Y", "tcp && !icmp && !icmpv6",
                  "-T", "fields", "-E", "separator=\t", "-E", "occurrence=l"]
                 + sum((["-e", f] for f in FIELDS), []))
    for line in out.splitlines():
        v = dict(zip(FIELDS, line.split("\t")))
        # both IPv4 and IPv6 present (6in4, 4in6): keep only the inner family
        if v["ip.src"] and v["ipv6.src"]:
            drop = "ipv6" if inner_ip(v["frame.protocols"]) == "ip" else "ip"
            v[drop + ".src"] = v[drop + ".dst"] = ""
        yield v


def endpoint(ip, port):
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def reassemble(segs, isn):
    """segs: list of (seq, declared_len, bytes). Returns (bytes, gaps, trunc)."""
    buf, gaps, trunc = b"", 0, False
    cur = isn
    for seq, ln, data in sorted(segs, key=lambda s: s[0]):
        if len(data) < ln:
            trunc = True
        if seq + ln <= cur:
            continue                      # duplicate / retransmission
        if seq > cur:
            buf += GAP
            gaps += 1
            cur = seq
        buf += data[cur - seq:]
        if len(data) < ln:
            buf += GAP
        cur = seq + ln
    return buf, gaps, trunc


def parse_replies(data):
    """Sequential SMTP replies; stops at the first non-reply bytes.
    Returns (list of (code, [lines]), offset where parsing stopped)."""
    replies, pos, cur = [], 0, []
    while pos < len(data):
        end = data.find(b"\r\n", pos)
        if end < 0:
            break
        line = data[pos:end]
        if not re.match(rb"^\d{3}( |-|$)", line):
            break
        pos = end + 2
        cur.append(line)
        if line[3:4] != b"-":
            replies.append((int(line[:3]), cur))
            cur = []
    return replies, pos


def tls_server_version(data):
    """Version selected in the first ServerHello found in TLS records."""
    hs = b""
    pos = 0
    while pos + 5 <= len(data) and data[pos] in (0x14, 0x15, 0x16, 0x17):
        ln = int.from_bytes(data[pos + 3:pos + 5], "big")
        if data[pos] == 0x16:
            hs += data[pos + 5:pos + 5 + ln]
        pos += 5 + ln
        if len(hs) >= 4 and hs[0] == 2 and len(hs) >= 4 + int.from_bytes(hs[1:4], "big"):
            break
    if len(hs) < 4 or hs[0] != 2:
        return None
    body = hs[4:4 + int.from_bytes(hs[1:4], "big")]
    legacy = int.from_bytes(body[0:2], "big")
    p = 2 + 32
    p += 1 + body[p]                      # session id
    p += 2 + 1                            # cipher suite, compression
    version = legacy
    if p + 2 <= len(body):
        end = p + 2 + int.from_bytes(body[p:p + 2], "big")
        p += 2
        while p + 4 <= end:
            et, el = int.from_bytes(body[p:p + 2], "big"), int.from_bytes(body[p + 2:p + 4], "big")
            if et == 0x002b and el == 2:
                version = int.from_bytes(body[p + 4:p + 6], "big")
            p += 4 + el
    return {0x0304: "TLSv1.3", 0x0303: "TLSv1.2", 0x0302: "TLSv1.1",
            0x0301: "TLSv1.0"}.get(version, hex(version))


def is_client_hello(data):
    return len(data) >= 6 and data[0] == 0x16 and data[1] == 3 and data[5] == 1


def tls_certificates(data):
    """DER certificates of the first Certificate handshake message (type 11)
    in the plaintext handshake records of a server's TLS stream, or None.
    Stops at ChangeCipherSpec, so only a TLS <= 1.2 Certificate (sent in
    clear) is found; TLS 1.3 encrypts it."""
    hs, pos = b"", 0
    while pos + 5 <= len(data) and data[pos] in (0x14, 0x15, 0x16, 0x17):
        ln = int.from_bytes(data[pos + 3:pos + 5], "big")
        if data[pos] != 0x16:
            break
        hs += data[pos + 5:pos + 5 + ln]
        pos += 5 + ln
    p = 0
    while p + 4 <= len(hs):
        t, ln = hs[p], int.from_bytes(hs[p + 1:p + 4], "big")
        body = hs[p + 4:p + 4 + ln]
        if len(body) < ln:
            return None
        if t == 11:
            certs, q = [], 3
            end = 3 + int.from_bytes(body[0:3], "big")
            while q + 3 <= end:
                cl = int.from_bytes(body[q:q + 3], "big")
                certs.append(body[q + 3:q + 3 + cl])
                q += 3 + cl
            return certs
        p += 4 + ln
    return None


def options_fingerprint(hexopts):
    """TCP options (raw bytes, hex) as 'mss=1460,sack,ts,nop,wscale=7': wire
    order, stop at EOL (kind 0, not printed)."""
    b = bytes.fromhex(hexopts.replace(":", "")) if hexopts else b""
    toks, i = [], 0
    while i < len(b):
        k = b[i]
        if k == 0:
            break
        if k == 1:
            toks.append("nop")
            i += 1
            continue
        ln = b[i + 1] if i + 1 < len(b) else 0
        v = b[i + 2:i + ln]
        if k == 2:
            toks.append(f"mss={int.from_bytes(v, 'big')}")
        elif k == 3:
            toks.append(f"wscale={v[0] if v else ''}")
        else:
            toks.append({4: "sack", 5: "sackblk", 8: "ts"}.get(k, f"opt{k}"))
        i += max(ln, 2)
    return ",".join(toks)


def smtp_facts(cli, srv, saw_syn):
    f = dict(ehlo_starttls_offered=[], starttls_command=False,
             starttls_reply=None, tls_handshake=False, tls_version=None,
             plaintext_data_messages=0, plaintext_auth=False,
             masked_starttls=False, injected_after_starttls=[],
             _messages=[], _content=[])
    f["_certs"] = None
    f["server_name"] = None
    if is_client_hello(cli):              # implicit TLS
        f["tls_handshake"] = True
        f["tls_version"] = tls_server_version(srv)
        f["_certs"] = tls_certificates(srv)
        return f
    replies, srv_end = parse_replies(srv)
    if saw_syn and replies and replies[0][0] == 220:
        words = replies[0][1][0][4:].split()
        f["server_name"] = words[0].decode("latin-1") if words else None
    ri = 1 if saw_syn else 0              # skip the greeting
    pos, auth_cont, bdat_open = 0, False, False

    def next_reply():
        nonlocal ri
        r = replies[ri] if ri < len(replies) else (None, [])
        ri += 1
        return r

    while pos < len(cli):
        end = cli.find(b"\r\n", pos)
        if end < 0:
            break
        line = cli[pos:end]
        pos = end + 2
        code, lines = next_reply()
        if auth_cont:                     # SASL continuation line
            auth_cont = code == 334
            continue
        words = line.split()
        cmd = words[0].upper() if words else b""
        if cmd == b"EHLO":
            kws = [ln[4:].split()[0].upper() if len(ln) > 4 and ln[4:].split() else b""
                   for ln in lines[1:]]
            f["ehlo_starttls_offered"].append(code == 250 and b"STARTTLS" in kws)
            if any(re.fullmatch(rb"X{4,}[A-Z]?", k) for k in kws):
                f["masked_starttls"] = True
        elif cmd == b"AUTH":
            f["plaintext_auth"] = True
            auth_cont = code == 334
        elif cmd == b"DATA" and code == 354:
            e = cli.find(b"\r\n.\r\n", pos - 2)
            # content as sent (dot-stuffed), up to and including the CRLF
            # before the terminating ".CRLF"
            f["_messages"].append((e + 2 if e >= 0 else len(cli)) - pos)
            f["_content"].append((pos, e + 2 if e >= 0 else len(cli)))
            if e < 0:
                pos = len(cli)
            else:
                pos = e + 5
                next_reply()              # reply to the content
            f["plaintext_data_messages"] += 1
        elif cmd == b"BDAT" and len(words) >= 2 and words[1].isdigit():
            pos += int(words[1])
            bdat_open = True
            if len(words) >= 3 and words[2].upper() == b"LAST":
                f["plaintext_data_messages"] += 1
                bdat_open = False
        elif cmd == b"STARTTLS":
            f["starttls_command"] = True
            f["starttls_reply"] = code
            if code == 220:
                rest = cli[pos:]
                # plaintext pipelined after STARTTLS (command injection)
                while rest and not is_client_hello(rest):
                    e = rest.find(b"\r\n")
                    if e < 0:
                        break
                    f["injected_after_starttls"].append(rest[:e].decode("latin-1"))
                    rest = rest[e + 2:]
                f["tls_handshake"] = is_client_hello(rest)
                f["tls_version"] = tls_server_version(srv[srv_end:])
                f["_certs"] = tls_certificates(srv[srv_end:])
                break
    if bdat_open:
        f["plaintext_data_messages"] += 1
    return f


def key_info(der):
    """(key_type, key_bits) of a DER certificate, from openssl x509 -text."""
    txt = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-text"], input=der,
                         capture_output=True, check=True).stdout.decode()
    alg = re.search(r"Public Key Algorithm: (\S+)", txt).group(1)
    kt = {"rsaEncryption": "rsa", "id-ecPublicKey": "ecdsa", "ED25519": "ed25519",
          "ED448": "ed448", "dsaEncryption": "dsa", "rsassaPss": "rsa-pss"}.get(alg, alg)
    bits = re.search(r"Public-Key: \((\d+) bit\)", txt)
    return kt, int(bits.group(1)) if bits else {"ed25519": 256, "ed448": 456}.get(kt)


def cert_facts(chain):
    """certificate fact from a list of DER certificates (leaf first)."""
    kt, kb = key_info(chain[0])
    return dict(sha256=hashlib.sha256(chain[0]).hexdigest(), key_type=kt, key_bits=kb,
                chain_length=len(chain))


def path_facts(pkts, c_ip, c_port):
    """TTL (IPv4) / hop limit (IPv6) of the client's SYN, the server's SYN-ACK
    and first payload packet, the SYN-ACK's TCP options, and how many server
    packets after the SYN-ACK carry another TTL. pkts: derive()'s tuples."""
    up = [(p[0], p[1]) == (c_ip, c_port) for p in pkts]
    syn = next((p for p, u in zip(pkts, up) if u and p[7] and not p[12]), None)
    ia = next((i for i, (p, u) in enumerate(zip(pkts, up)) if not u and p[7] and p[12]), None)
    data = next((p for p, u in zip(pkts, up) if not u and p[5] > 0), None)
    sa = pkts[ia] if ia is not None else None
    return dict(
        server_ttl=sa[10] if sa else None,
        server_data_ttl=data[10] if data else None,
        client_ttl=syn[10] if syn else None,
        syn_ack=options_fingerprint(sa[11]) if sa else None,
        server_ttl_changes=(sum(1 for p, u in zip(pkts[ia + 1:], up[ia + 1:])
                                if not u and p[10] != sa[10]) if sa else None))


def derive(path, decode=()):
    streams = {}
    for v in segments(path, decode):
        st = streams.setdefault(v["tcp.stream"], dict(pkts=[], syn=None, frames=[]))
        st["frames"].append((int(v["frame.number"]), v["frame.time_epoch"]))
        src = v["ip.src"] or v["ipv6.src"]
        dst = v["ip.dst"] or v["ipv6.dst"]
        sp, dp = int(v["tcp.srcport"]), int(v["tcp.dstport"])
        if v["tcp.flags.syn"] in ("1", "True") and v["tcp.flags.ack"] in ("0", "False"):
            st["syn"] = (src, sp, dst, dp)
        payload = bytes.fromhex(v["tcp.payload"].replace(":", "")) if v["tcp.payload"] else b""
        ttl = v["ipv6.hlim"] if ":" in src else v["ip.ttl"]
        st["pkts"].append((src, sp, dst, dp, int(v["tcp.seq"]), int(v["tcp.len"] or 0),
                           payload, v["tcp.flags.syn"] in ("1", "True"),
                           int(v["frame.number"]), v["frame.time_epoch"],
                           int(ttl) if ttl else None, v["tcp.options"],
                           v["tcp.flags.ack"] in ("1", "True")))
    sessions = []
    for sid in sorted(streams, key=int):
        st = streams[sid]
        if st["syn"]:
            c_ip, c_port, s_ip, s_port = st["syn"]
        else:
            src, sp, dst, dp = st["pkts"][0][:4]
            if dp in SMTP_PORTS:
                c_ip, c_port, s_ip, s_port = src, sp, dst, dp
            else:
                c_ip, c_port, s_ip, s_port = dst, dp, src, sp
        dirs = {True: [], False: []}
        isn = {True: None, False: None}
        for src, sp, dst, dp, seq, ln, data, syn, *_ in st["pkts"]:
            up = (src, sp) == (c_ip, c_port)
            if syn:
                isn[up] = seq + 1
            elif ln:
                dirs[up].append((seq, ln, data))
        for up in (True, False):
            if isn[up] is None:
                isn[up] = min((s[0] for s in dirs[up]), default=0)
        cli, cgaps, ctr = reassemble(dirs[True], isn[True])
        srv, sgaps, str_ = reassemble(dirs[False], isn[False])
        f = smtp_facts(cli, srv, st["syn"] is not None)
        chain = f.pop("_certs")
        s = dict(client=endpoint(c_ip, c_port), server=endpoint(s_ip, s_port),
                 ip_version=6 if ":" in c_ip else 4)
        s.update(f)
        s["_stream"] = sid
        s["path"] = path_facts(st["pkts"], c_ip, c_port)
        s["_message_sha256"] = [hashlib.sha256(cli[a:b]).hexdigest() for a, b in f["_content"]]
        s["certificate"] = cert_facts(chain) if chain else None
        s["_gaps"] = cgaps + sgaps
        s["_truncated"] = ctr or str_
        s["_midstream"] = st["syn"] is None
        s["_up_frames"] = [p[8] for p in st["pkts"] if (p[0], p[1]) == (c_ip, c_port)]
        s["_frames"] = [p[8] for p in st["pkts"]]
        # longest silence between two packets of the session, and whether the
        # packet after it is client data inside a DATA content range
        best = (0.0, False)
        prev = None
        for p in st["pkts"]:
            t = float(p[9])
            if prev is not None and t - prev > best[0]:
                up = (p[0], p[1]) == (c_ip, c_port)
                off = p[4] - isn[True]
                inside = up and p[5] > 0 and any(a <= off < b for a, b in f["_content"])
                best = (t - prev, inside)
            prev = t
        s["_pause"] = best
        sessions.append(s)
    return sessions


def dissector_check(path, decode=()):
    """Independent facts from tshark's SMTP and TLS dissectors, per stream."""
    out = {}
    opts = ["-o", "tls.desegment_ssl_records:TRUE", "-o",
            "tcp.desegment_tcp_streams:TRUE", "-d", "tcp.port==465,tls"] + list(decode)
    for line in tshark(["-r", path] + opts + ["-Y", "smtp.req.command", "-T", "fields",
                        "-e", "tcp.stream", "-e", "smtp.req.command"]).splitlines():
        sid, cmds = line.split("\t", 1)
        out.setdefault(sid, dict(cmds=set(), ver=None))["cmds"].update(
            c.upper() for c in cmds.split(","))
    for line in tshark(["-r", path] + opts + ["-Y", "tls.handshake.type == 2", "-T", "fields",
                        "-e", "tcp.stream", "-e", "tls.handshake.extensions.supported_version",
                        "-e", "tls.handshake.version"]).splitlines():
        sid, sv, lv = (line.split("\t") + ["", ""])[:3]
        v = (sv or lv).split(",")[0]
        out.setdefault(sid, dict(cmds=set(), ver=None))["ver"] = {
            "0x0304": "TLSv1.3", "0x0303": "TLSv1.2"}.get(v, v)
    return [out.get(str(i), dict(cmds=set(), ver=None)) for i in range(len(out) + 50)]


KEYS = ["ip_version", "ehlo_starttls_offered", "starttls_command",
        "starttls_reply", "tls_handshake", "tls_version",
        "plaintext_data_messages", "plaintext_auth", "masked_starttls"]


TUNNEL_FIELDS = ["frame.number", "frame.protocols", "ip.src", "ip.dst", "ipv6.src",
                 "ipv6.dst", "udp.dstport", "vxlan.vni", "geneve.vni",
                 "geneve.option.class", "gre.key", "gre.proto", "erspan.version",
                 "erspan.spanid", "mpls.label", "pppoe.session_id", "ppp.protocol",
                 "frame.interface_id", "frame.interface_name", "frame.encap_type"]
ENCAP = {"1": "EN10MB", "25": "LINUX_SLL", "210": "LINUX_SLL2"}


def frame_info(path, decode=()):
    """Per frame: encapsulation layers outside the innermost IP (outermost
    first) and the capture interface, from tshark's dissection."""
    out = tshark(["-r", path] + list(decode) + ["-T", "fields", "-E", "separator=\t",
                  "-E", "occurrence=a", "-E", "aggregator=,"]
                 + sum((["-e", f] for f in TUNNEL_FIELDS), []))
    info = {}
    for line in out.splitlines():
        v = dict(zip(TUNNEL_FIELDS, line.split("\t")))
        a = {k: (v.get(k) or "").split(",") if v.get(k) else [] for k in TUNNEL_FIELDS}
        toks = v["frame.protocols"].split(":")
        if "tcp" not in toks:
            info[int(v["frame.number"])] = dict(layers=None, iface=v["frame.interface_name"],
                                                 iface_id=v["frame.interface_id"], encap=v["frame.encap_type"])
            continue
        toks = toks[:toks.index("tcp")]
        ipi = [i for i, t in enumerate(toks) if t in ("ip", "ipv6")]
        inner = ipi[-1] if ipi else len(toks)
        n = dict(ip=0, ipv6=0, udp=0, vxlan=0, geneve=0, gre=0, erspan=0)
        layers = []
        hex4 = lambda x: f"0x{int(x, 0):04x}"
        for i, t in enumerate(toks[:inner]):
            if t in ("ip", "ipv6"):
                k = n[t]
                n[t] += 1
                outer = f"{a[t + '.src'][k]} -> {a[t + '.dst'][k]}"
                rest = [x for x in toks[i + 1:] if x not in ("ipv6.fraghdr", "ipv6.hopopts")]
                nxt = rest[0] if rest else ""
                if nxt == "udp":
                    u = n["udp"]
                    n["udp"] += 1
                    port = int(a["udp.dstport"][u])
                    if rest[1:2] == ["vxlan"]:
                        layers.append(dict(type="vxlan", vni=int(a["vxlan.vni"][n["vxlan"]], 0),
                                           udp_port=port, outer=outer))
                        n["vxlan"] += 1
                    elif rest[1:2] == ["geneve"]:
                        layers.append(dict(type="geneve", vni=int(a["geneve.vni"][n["geneve"]], 0),
                                           udp_port=port, options=len(a["geneve.option.class"]),
                                           outer=outer))
                        n["geneve"] += 1
                    else:
                        layers.append(dict(type="udp?", udp_port=port, outer=outer))
                elif nxt == "gre":
                    g = n["gre"]
                    n["gre"] += 1
                    if rest[1:2] == ["erspan"]:
                        e = n["erspan"]
                        n["erspan"] += 1
                        layers.append(dict(type="erspan",
                                           erspan_type={"1": 2, "2": 3}.get(a["erspan.version"][e]),
                                           session_id=int(a["erspan.spanid"][e], 0), outer=outer))
                    else:
                        key = a["gre.key"][g] if g < len(a["gre.key"]) else None
                        layers.append(dict(type="gre", protocol=hex4(a["gre.proto"][g]),
                                           key=int(key, 0) if key else None, outer=outer))
                elif nxt in ("ip", "ipv6"):
                    name = {("ip", "ip"): "ipip", ("ip", "ipv6"): "6in4",
                            ("ipv6", "ip"): "4in6", ("ipv6", "ipv6"): "6in6"}[(t, nxt)]
                    layers.append(dict(type=name, outer=outer))
                else:
                    layers.append(dict(type=f"{t}/{nxt}?", outer=outer))
            elif t == "mpls":
                layers.append(dict(type="mpls", labels=[int(x, 0) for x in a["mpls.label"]]))
            elif t == "pppoes":
                layers.append(dict(type="pppoe", session_id=int(a["pppoe.session_id"][0], 0),
                                   ppp_protocol=hex4(a["ppp.protocol"][0])))
            elif t == "vlan":
                layers.append(dict(type="vlan"))
        info[int(v["frame.number"])] = dict(layers=layers, iface=v["frame.interface_name"],
                                             iface_id=v["frame.interface_id"], encap=v["frame.encap_type"])
    return info


def count_frames(path, flt=None, decode=()):
    args = ["-r", path] + list(decode) + (["-Y", flt] if flt else []) + ["-T", "fields", "-e", "frame.number"]
    return len(tshark(args).split())


def wire_entry(d, name):
    """expected.json entry of a make-wire-captures.sh file, and problems."""
    spec = WIRE[name]
    decode = spec.get("decode", [])
    problems, entry, tmp = [], dict(file=name), None
    path = os.path.join(d, name)
    if spec.get("merge"):
        rdir = os.path.dirname(path)
        base = os.path.basename(name)
        parts = sorted((f for f in os.listdir(rdir) if re.fullmatch(re.escape(base) + r"\d*", f)),
                       key=lambda f: int(f[len(base):] or 0))
        rel = [os.path.join(os.path.dirname(name), f) for f in parts]
        fd, tmp = tempfile.mkstemp(suffix=".pcap")
        os.close(fd)
        subprocess.run(["mergecap", "-F", "pcap", "-a", "-w", tmp] + [os.path.join(d, r) for r in rel],
                       check=True, capture_output=True)
        entry["merge"] = rel
        entry["files"] = []
        for r in rel:
            n = count_frames(os.path.join(d, r))
            entry["files"].append(dict(file=r, packets=n, bytes=os.path.getsize(os.path.join(d, r))))
            if count_frames(os.path.join(d, r), "tcp.port == 25") == 0:
                problems.append(f"{r}: no packet of the session")
        if len(rel) < 3:
            problems.append(f"{name}: {len(rel)} rotated files, expected >= 3")
        path = tmp
    try:
        info = frame_info(path, decode)
        entry["packets"] = count_frames(path)
        if spec.get("per_interface"):
            # One part per interface: the packets of each, derived on their own.
            got, disc, parts = [], [], []
            for iid in sorted({int(fi["iface_id"]) for fi in info.values()}):
                fd, part = tempfile.mkstemp(suffix=".pcapng")
                os.close(fd)
                parts.append(part)
                subprocess.run(["tshark", "-r", path, "-Y", f"frame.interface_id == {iid}", "-w", part],
                               check=True, capture_output=True)
                name_of = next(fi["iface"] for fi in info.values() if int(fi["iface_id"]) == iid)
                part_info = frame_info(part, decode)
                for g in derive(part, decode):
                    g["_iface"] = name_of
                    g["_info"] = part_info
                    got.append(g)
                disc += dissector_check(part, decode)[:len(derive(part, decode))]
            for part in parts:
                os.unlink(part)
        else:
            got = derive(path, decode)
            disc = dissector_check(path, decode)
        if spec.get("fragments"):
            # frames that are IP fragments (reassembly off, so each one counts)
            nodefrag = list(decode) + ["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"]
            entry["fragments"] = dict(
                ipv4=count_frames(path, "ip.flags.mf == 1 || ip.frag_offset > 0", nodefrag),
                ipv6=count_frames(path, "ipv6.fraghdr", nodefrag))
            if not sum(entry["fragments"].values()):
                problems.append(f"{name}: no IP fragments")
        if path.endswith(".pcapng"):
            ifs = {}
            for fi in info.values():
                x = ifs.setdefault(int(fi["iface_id"]), dict(
                    id=int(fi["iface_id"]), name=fi["iface"],
                    link_type=ENCAP.get(fi["encap"], fi["encap"]), packets=0))
                x["packets"] += 1
            entry["interfaces"] = [ifs[k] for k in sorted(ifs)]
    finally:
        if tmp:
            os.unlink(tmp)
    want = spec["sessions"]
    if len(got) != len(want):
        problems.append(f"{name}: {len(got)} TCP sessions on the wire, {len(want)} expected")
    sessions = []
    for i, (g, w) in enumerate(zip(got, want)):
        for k in KEYS:
            if g[k] != w[k]:
                problems.append(f"{name} session {i}: {k} derived {g[k]!r}, expected {w[k]!r}")
        dc = disc[i]
        if any(c.startswith("STAR") for c in dc["cmds"]) != w["starttls_command"]:
            problems.append(f"{name} session {i}: tshark smtp.req.command {sorted(dc['cmds'])} vs starttls_command {w['starttls_command']}")
        if ("AUTH" in dc["cmds"]) != w["plaintext_auth"]:
            problems.append(f"{name} session {i}: tshark AUTH vs plaintext_auth {w['plaintext_auth']}")
        if dc["ver"] != w["tls_version"]:
            problems.append(f"{name} session {i}: tshark ServerHello {dc['ver']} vs tls_version {w['tls_version']}")
        if w["plaintext_data_messages"] and not {"DATA", "BDAT"} & dc["cmds"]:
            problems.append(f"{name} session {i}: tshark sees no DATA/BDAT {sorted(dc['cmds'])}")
        finfo = g.get("_info", info)
        shapes = {json.dumps(finfo[f]["layers"]) for f in g["_up_frames"]}
        if len(shapes) != 1:
            problems.append(f"{name} session {i}: client packets in {len(shapes)} different encapsulations")
        tun = finfo[g["_up_frames"][0]]["layers"] or None
        if tun != w["tunnel"]:
            problems.append(f"{name} session {i}: tunnel derived {tun!r}, expected {w['tunnel']!r}")
        iface = None
        if "_iface" in g:
            iface = g["_iface"]
        elif path.endswith(".pcapng"):
            ids = sorted({(int(info[f]["iface_id"]), info[f]["iface"]) for f in g["_frames"]})
            iface = [n for _, n in ids]
        if iface != w["interface"]:
            problems.append(f"{name} session {i}: interface derived {iface!r}, expected {w['interface']!r}")
        if len(g["_messages"]) != w["plaintext_data_messages"]:
            problems.append(f"{name} session {i}: {len(g['_messages'])} DATA contents measured")
        s = dict(client=g["client"], server=g["server"])
        s.update({k: w[k] for k in KEYS})
        s["tunnel"] = w["tunnel"]
        s["interface"] = w["interface"]
        s["message_sizes"] = g["_messages"]
        if spec.get("merge") and not (g["_messages"] and g["_messages"][0] >= 2_500_000):
            problems.append(f"{name} session {i}: message sizes {g['_messages']}, expected one >= 2.5 MB")
        if spec.get("pause"):
            sec, inside = g["_pause"]
            s["longest_pause_seconds"] = round(sec, 3)
            s["pause_inside_data"] = inside
            if not (399 <= sec <= 402 and inside):
                problems.append(f"{name} session {i}: longest pause {sec:.3f}s inside DATA={inside}")
        s["notes"] = w["notes"]
        sessions.append(s)
        print(f"{name} #{i}: {g['client']} -> {g['server']} "
              + " ".join(f"{k}={g[k]}" for k in KEYS)
              + f" tunnel={json.dumps(tun)} interface={iface} messages={g['_messages']}"
              + (f" pause={g['_pause']}" if spec.get("pause") else "")
              + (f" gaps={g['_gaps']}" if g["_gaps"] else ""))
    entry["sessions"] = sessions
    return entry, problems


# ---- path captures: certificate, greeting and SYN-ACK from tshark's own
# dissection (the independent derivation), compared with derive()'s.
TLS_OPTS = ["-o", "tls.desegment_ssl_records:TRUE", "-o", "tcp.desegment_tcp_streams:TRUE",
            "-d", "tcp.port==465,tls"]


def first_per_stream(path, flt, fields, extra=()):
    """{tcp.stream: [field values]} of the first frame per stream matching flt."""
    out = tshark(["-r", path] + list(extra) + ["-Y", flt, "-T", "fields", "-E", "separator=\t",
                  "-E", "occurrence=a", "-E", "aggregator=,", "-e", "tcp.stream"]
                 + sum((["-e", f] for f in fields), []))
    res = {}
    for line in out.splitlines():
        v = line.split("\t")
        res.setdefault(v[0], v[1:])
    return res


def tshark_certificates(path):
    """{stream: (sender endpoint, [DER, ...])} of the first Certificate message."""
    res = {}
    for sid, (s4, s6, sp, certs) in first_per_stream(
            path, "tls.handshake.certificate",
            ["ip.src", "ipv6.src", "tcp.srcport", "tls.handshake.certificate"], TLS_OPTS).items():
        res[sid] = (endpoint(s4 or s6, int(sp)),
                    [bytes.fromhex(c.replace(":", "")) for c in certs.split(",") if c])
    return res


def tshark_greetings(path):
    """{stream: server name}: first word of the first SMTP response if 220."""
    res = {}
    for sid, (code, text) in first_per_stream(path, "smtp.response.code",
                                              ["smtp.response.code", "smtp.rsp.parameter"]).items():
        words = text.split(",")[0].split()
        res[sid] = words[0] if code.split(",")[0] == "220" and words else None
    return res


def tshark_synack(path):
    """{stream: fingerprint} of the first SYN-ACK, from tshark's option fields."""
    res = {}
    for sid, (kinds, mss, ws) in first_per_stream(
            path, "tcp.flags.syn == 1 && tcp.flags.ack == 1",
            ["tcp.option_kind", "tcp.options.mss_val", "tcp.options.wscale.shift"]).items():
        mss, ws, toks = iter(mss.split(",")), iter(ws.split(",")), []
        for k in (int(x) for x in kinds.split(",") if x):
            if k == 0:
                break
            toks.append({1: "nop", 4: "sack", 5: "sackblk", 8: "ts"}.get(k) or (
                f"mss={next(mss)}" if k == 2 else f"wscale={next(ws)}" if k == 3 else f"opt{k}"))
        res[sid] = ",".join(toks)
    return res


def path_entry(d, name, cache):
    """expected.json entry of a make-path-captures.sh file, and problems."""
    spec = PATH[name]
    path = os.path.join(d, name)
    problems, sessions = [], []
    got = cache.setdefault(name, derive(path))
    disc = dissector_check(path)
    certs, greet, synack = tshark_certificates(path), tshark_greetings(path), tshark_synack(path)
    want = spec["sessions"]
    if len(got) != len(want):
        problems.append(f"{name}: {len(got)} TCP sessions on the wire, {len(want)} expected")
    for i, (g, w) in enumerate(zip(got, want)):
        sid = g["_stream"]
        for k in KEYS + ["server_name"]:
            if g[k] != w[k]:
                problems.append(f"{name} session {i}: {k} derived {g[k]!r}, expected {w[k]!r}")
        dc = disc[int(sid)]
        if any(c.startswith("STAR") for c in dc["cmds"]) != w["starttls_command"]:
            problems.append(f"{name} session {i}: tshark smtp.req.command {sorted(dc['cmds'])} vs starttls_command {w['starttls_command']}")
        if ("AUTH" in dc["cmds"]) != w["plaintext_auth"]:
            problems.append(f"{name} session {i}: tshark AUTH vs plaintext_auth {w['plaintext_auth']}")
        if dc["ver"] != w["tls_version"]:
            problems.append(f"{name} session {i}: tshark ServerHello {dc['ver']} vs tls_version {w['tls_version']}")
        if w["plaintext_data_messages"] and "DATA" not in dc["cmds"]:
            problems.append(f"{name} session {i}: tshark sees no DATA {sorted(dc['cmds'])}")
        if len(g["_messages"]) != w["plaintext_data_messages"]:
            problems.append(f"{name} session {i}: {len(g['_messages'])} DATA contents measured")
        if greet.get(sid) != g["server_name"]:
            problems.append(f"{name} session {i}: tshark greeting name {greet.get(sid)!r} vs {g['server_name']!r}")
        pth = g["path"]
        ttl = (pth["server_ttl"], pth["server_data_ttl"], pth["client_ttl"])
        if ttl != tuple(w["ttl"]):
            problems.append(f"{name} session {i}: TTLs (server, server data, client) {ttl}, expected {w['ttl']}")
        if pth["server_ttl_changes"] != w["ttl_changes"]:
            problems.append(f"{name} session {i}: {pth['server_ttl_changes']} server TTL changes, expected {w['ttl_changes']}")
        if not pth["syn_ack"] or pth["syn_ack"] != synack.get(sid):
            problems.append(f"{name} session {i}: SYN-ACK options {pth['syn_ack']!r}, tshark {synack.get(sid)!r}")
        # the certificate fact comes from tshark's Certificate message; the
        # one derive() read from its own reassembly must be the same
        cert = None
        if sid in certs:
            sender, chain = certs[sid]
            if sender != g["server"]:
                problems.append(f"{name} session {i}: Certificate sent by {sender}, not the server")
            cert = cert_facts(chain)
        if cert != g["certificate"]:
            problems.append(f"{name} session {i}: certificate tshark {cert} vs reassembled {g['certificate']}")
        wc = w["cert"]
        if (cert is None) != (wc is None):
            problems.append(f"{name} session {i}: certificate {cert}, expected {wc}")
        elif cert and (cert["key_type"], cert["key_bits"], cert["chain_length"]) != tuple(wc[1:]):
            problems.append(f"{name} session {i}: certificate {cert}, expected {wc}")
        s = dict(client=g["client"], server=g["server"])
        s.update({k: w[k] for k in KEYS})
        s["server_name"] = g["server_name"]
        s["path"] = pth
        s["certificate"] = cert
        s["notes"] = w["notes"]
        sessions.append(s)
        print(f"{name} #{i}: {g['client']} -> {g['server']} "
              + " ".join(f"{k}={g[k]}" for k in KEYS)
              + f" server_name={g['server_name']} path={json.dumps(pth)}"
              + (f" cert={cert['key_type']}/{cert['key_bits']} {cert['sha256'][:16]}..." if cert else "")
              + (f" gaps={g['_gaps']}" if g["_gaps"] else ""))
    return dict(file=name, sessions=sessions), problems


def path_pairs(d, name, cache):
    """Which session of PATH[name]['pair_with'] (the same run seen at the
    other end) is which session of name: the same client/server endpoints,
    else (a proxy in between) the byte-identical plaintext message."""
    spec = PATH[name]
    other = spec["pair_with"]
    a = cache.setdefault(name, derive(os.path.join(d, name)))
    b = cache.setdefault(other, derive(os.path.join(d, other)))
    pairs, problems, used = [], [], set()
    for i, g in enumerate(a):
        how, j = "4-tuple", next((j for j, h in enumerate(b) if j not in used
                                  and (h["client"], h["server"]) == (g["client"], g["server"])), None)
        if j is None and g["_message_sha256"]:
            cand = [j for j, h in enumerate(b)
                    if j not in used and h["_message_sha256"] == g["_message_sha256"]]
            how, j = "message", (cand[0] if len(cand) == 1 else None)
        if j is None:
            problems.append(f"{name} session {i}: no counterpart in {other}")
            continue
        used.add(j)
        pairs.append(dict(this=dict(session=i, client=g["client"], server=g["server"]),
                          other=dict(file=other, session=j, client=b[j]["client"],
                                     server=b[j]["server"]),
                          matched_by=how))
    if [p["matched_by"] for p in pairs] != spec["matched_by"] or len(used) != len(b):
        problems.append(f"{name}: pairs {[(p['this']['session'], p['other']['session'], p['matched_by']) for p in pairs]}, "
                        f"expected every session matched by {spec['matched_by']}")
    return pairs, problems


def cert_labels(manifest):
    """Same label -> same certificate, different labels -> different ones."""
    seen, problems = {}, []
    for e in manifest:
        if e["file"] not in PATH:
            continue
        for i, (s, w) in enumerate(zip(e["sessions"], PATH[e["file"]]["sessions"])):
            if w["cert"] and s["certificate"]:
                seen.setdefault(w["cert"][0], set()).add(s["certificate"]["sha256"])
    for label, shas in seen.items():
        if len(shas) != 1:
            problems.append(f"certificate {label}: {len(shas)} different certificates")
    firsts = [sorted(v)[0] for v in seen.values()]
    if len(set(firsts)) != len(firsts):
        problems.append(f"certificates of different labels are identical: {seen}")
    return problems


def expected(d):
    problems, manifest = [], []
    files = sorted(f for f in os.listdir(d) if f.endswith((".pcap", ".pcapng")))
    for m in (x for x in WIRE if WIRE[x].get("merge")):
        if os.path.exists(os.path.join(d, m)):
            files = sorted(files + [m])
    for name in sorted((set(SCENARIOS) | set(WIRE) | set(PATH)) - set(files)):
        problems.append(f"{name}: capture missing")
    cache = {}
    for name in files:
        if name in PATH:
            entry, p = path_entry(d, name, cache)
            problems += p
            manifest.append(entry)
            continue
        if name in WIRE:
            entry, p = wire_entry(d, name)
            problems += p
            manifest.append(entry)
            continue
        if name not in SCENARIOS:
            problems.append(f"{name}: not in the scenario table")
            continue
        path = os.path.join(d, name)
        got = derive(path)
        want = SCENARIOS[name]
        skip = UNVERIFIABLE.get(name, set())
        if len(got) != len(want):
            problems.append(f"{name}: {len(got)} TCP sessions on the wire, {len(want)} expected")
        disc = dissector_check(path)
        if name in UNVERIFIABLE:
            problems += truncated_check(path, want[0])
        sessions = []
        for i, (g, w) in enumerate(zip(got, want)):
            for k in KEYS:
                if k not in skip and g[k] != w[k]:
                    problems.append(f"{name} session {i}: {k} derived {g[k]!r}, expected {w[k]!r}")
            # tshark dissector cross-check (not meaningful for damaged files)
            if name not in UNVERIFIABLE and not g["_midstream"]:
                dc = disc[i]
                # Wireshark's SMTP dissector reports STARTTLS as "STAR"
                if any(c.startswith("STAR") for c in dc["cmds"]) != w["starttls_command"]:
                    problems.append(f"{name} session {i}: tshark smtp.req.command {sorted(dc['cmds'])} vs starttls_command {w['starttls_command']}")
                if ("AUTH" in dc["cmds"]) != w["plaintext_auth"]:
                    problems.append(f"{name} session {i}: tshark AUTH {sorted(dc['cmds'])} vs plaintext_auth {w['plaintext_auth']}")
                if dc["ver"] != w["tls_version"]:
                    problems.append(f"{name} session {i}: tshark ServerHello {dc['ver']} vs tls_version {w['tls_version']}")
            s = dict(client=g["client"], server=g["server"])
            s.update({k: w[k] for k in KEYS})
            s["notes"] = w["notes"]
            sessions.append(s)
            print(f"{name} #{i}: {g['client']} -> {g['server']} "
                  + " ".join(f"{k}={g[k]}" for k in KEYS)
                  + (f" injected={g['injected_after_starttls']}" if g["injected_after_starttls"] else "")
                  + (f" gaps={g['_gaps']}" if g["_gaps"] else "")
                  + (" truncated" if g["_truncated"] else "")
                  + (" midstream" if g["_midstream"] else ""))
        manifest.append(dict(file=name, sessions=sessions))
    for entry in manifest:
        if entry["file"] in PATH and "pair_with" in PATH[entry["file"]] \
                and os.path.exists(os.path.join(d, PATH[entry["file"]]["pair_with"])):
            entry["pairs"], p = path_pairs(d, entry["file"], cache)
            problems += p
            for pr in entry["pairs"]:
                print(f"{entry['file']} pair: #{pr['this']['session']} {pr['this']['client']} = "
                      f"{pr['other']['file']} #{pr['other']['session']} {pr['other']['client']} "
                      f"({pr['matched_by']})")
    problems += cert_labels(manifest)
    with open(os.path.join(d, "expected.json"), "w") as fh:
        json.dump(manifest, fh, indent=2)
        fh.write("\n")
    for p in problems:
        print("MISMATCH:", p)
    print(f"{len(manifest)} files, {sum(len(m['sessions']) for m in manifest)} sessions, "
          f"{len(problems)} problems")
    return 1 if problems else 0


def main():
    if sys.argv[1] == "derive":
        json.dump(derive(sys.argv[2]), sys.stdout, indent=1, default=str)
        print()
        return 0
    if sys.argv[1] == "expected":
        return expected(sys.argv[2])
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
