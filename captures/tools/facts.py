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
          "tcp.flags.ack", "tcp.seq", "tcp.len", "tcp.payload"]


def tshark(args):
    return subprocess.run(["tshark", "-n"] + args, check=True,
                          capture_output=True, text=True).stdout


def segments(path):
    out = tshark(["-r", path, "-o", "tcp.desegment_tcp_streams:FALSE",
                  "-o", "tcp.relative_sequence_numbers:TRUE", "-Y", "tcp",
                  "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"]
                 + sum((["-e", f] for f in FIELDS), []))
    for line in out.splitlines():
        v = dict(zip(FIELDS, line.split("\t")))
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
             masked_starttls=False, injected_after_starttls=[])
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


def derive(path):
    streams = {}
    for v in segments(path):
        st = streams.setdefault(v["tcp.stream"], dict(pkts=[], syn=None))
        src = v["ip.src"] or v["ipv6.src"]
        dst = v["ip.dst"] or v["ipv6.dst"]
        sp, dp = int(v["tcp.srcport"]), int(v["tcp.dstport"])
        if v["tcp.flags.syn"] in ("1", "True") and v["tcp.flags.ack"] in ("0", "False"):
            st["syn"] = (src, sp, dst, dp)
        payload = bytes.fromhex(v["tcp.payload"].replace(":", "")) if v["tcp.payload"] else b""
        st["pkts"].append((src, sp, dst, dp, int(v["tcp.seq"]), int(v["tcp.len"] or 0),
                           payload, v["tcp.flags.syn"] in ("1", "True")))
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
        for src, sp, dst, dp, seq, ln, data, syn in st["pkts"]:
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
        sessions.append(s)
    return sessions


def dissector_check(path):
    """Independent facts from tshark's SMTP and TLS dissectors, per stream."""
    out = {}
    opts = ["-o", "tls.desegment_ssl_records:TRUE", "-o",
            "tcp.desegment_tcp_streams:TRUE", "-d", "tcp.port==465,tls"]
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


def expected(d):
    problems, manifest = [], []
    files = sorted(f for f in os.listdir(d) if f.endswith((".pcap", ".pcapng")))
    for name in sorted(set(SCENARIOS) - set(files)):
        problems.append(f"{name}: capture missing")
    for name in files:
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
