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
"""
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
          "frame.protocols", "frame.time_epoch"]


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


def smtp_facts(cli, srv, saw_syn):
    f = dict(ehlo_starttls_offered=[], starttls_command=False,
             starttls_reply=None, tls_handshake=False, tls_version=None,
             plaintext_data_messages=0, plaintext_auth=False,
             masked_starttls=False, injected_after_starttls=[],
             _messages=[], _content=[])
    if is_client_hello(cli):              # implicit TLS
        f["tls_handshake"] = True
        f["tls_version"] = tls_server_version(srv)
        return f
    replies, srv_end = parse_replies(srv)
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
                break
    if bdat_open:
        f["plaintext_data_messages"] += 1
    return f


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
        st["pkts"].append((src, sp, dst, dp, int(v["tcp.seq"]), int(v["tcp.len"] or 0),
                           payload, v["tcp.flags.syn"] in ("1", "True"),
                           int(v["frame.number"]), v["frame.time_epoch"]))
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
        for src, sp, dst, dp, seq, ln, data, syn, _, _ in st["pkts"]:
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
        s = dict(client=endpoint(c_ip, c_port), server=endpoint(s_ip, s_port),
                 ip_version=6 if ":" in c_ip else 4)
        s.update(f)
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


def expected(d):
    problems, manifest = [], []
    files = sorted(f for f in os.listdir(d) if f.endswith((".pcap", ".pcapng")))
    for m in (x for x in WIRE if WIRE[x].get("merge")):
        if os.path.exists(os.path.join(d, m)):
            files = sorted(files + [m])
    for name in sorted((set(SCENARIOS) | set(WIRE)) - set(files)):
        problems.append(f"{name}: capture missing")
    for name in files:
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
