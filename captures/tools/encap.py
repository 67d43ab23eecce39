#!/usr/bin/python3
"""Re-encapsulate every packet of a real captured session in a tunnel.

  encap.py KIND OUT.pcap BASE4.pcap [BASE6.pcap]

BASE4/BASE6 are classic pcap files (link type Ethernet) of ONE real SMTP
session each, over IPv4 / IPv6, captured by make-wire-captures.sh. Every
frame is rewritten (scapy builds the outer headers and computes lengths and
checksums; the inner packet or frame is copied byte for byte, Ethernet
padding dropped) and written with the ORIGINAL timestamp. The client is the
sender of the SYN; "c->s" packets use the outer addresses as given below,
"s->c" packets the reverse (except ERSPAN, a one-way mirror to a collector).

KIND        outer headers                                         inner
gre         Eth/IPv4 198.51.100.200->203.0.113.200/GRE K+S        IPv4 packet (0x0800)
            (RFC 2890: key 1234, sequence number per direction)
gre-ipv6    Eth/IPv6 2001:db8:ff::1->2001:db8:ff::2/GRE           IPv6 packet (0x86DD)
gre-teb     Eth/IPv4/GRE K (key 1234) protocol 0x6558             whole Ethernet frame
erspan2     Eth/IPv4/GRE S 0x88BE/ERSPAN type II (ver 1, id 100)  whole Ethernet frame
erspan3     Eth/IPv4/GRE S 0x22EB/ERSPAN type III (ver 2, id 100, whole Ethernet frame
            100 ns timestamp from the capture time, FT=0 Ethernet)
ipip        Eth/IPv4 protocol 4                                   IPv4 packet
6in4        Eth/IPv4 protocol 41                                  IPv6 packet (BASE6)
4in6        Eth/IPv6 next header 4                                IPv4 packet
6in6        Eth/IPv6 next header 41                               IPv6 packet (BASE6)
mpls        Eth 0x8847, two labels (c->s 1000/2000, s->c 1001/2001) IPv4 packet
pppoe       Eth 0x8864 PPPoE session 0x0011, PPP 0x0021           IPv4 packet
            + session 0x0012, PPP 0x0057 carrying BASE6          IPv6 packet
geneve      Eth/IPv4/UDP 6081/Geneve VNI 99, one option TLV       whole Ethernet frame
            (class 0xffff type 0x01, 4 bytes), protocol 0x6558
"""
import struct
import sys

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

O4 = ("198.51.100.200", "203.0.113.200")
O6 = ("2001:db8:ff::1", "2001:db8:ff::2")
MAC = ("02:00:00:00:c8:01", "02:00:00:00:c8:02")   # tunnel end near client / server
GRE_KEY = 1234
ERSPAN_ID = 100
GENEVE_VNI = 99


def read_pcap(path):
    with open(path, "rb") as fh:
        data = fh.read()
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        e = "<"
    elif magic == b"\xa1\xb2\xc3\xd4":
        e = ">"
    else:
        raise SystemExit(f"{path}: not a microsecond classic pcap")
    linktype = struct.unpack(e + "I", data[20:24])[0]
    if linktype != 1:
        raise SystemExit(f"{path}: link type {linktype}, need Ethernet")
    pos, out = 24, []
    while pos + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack(e + "IIII", data[pos:pos + 16])
        frame = data[pos + 16:pos + 16 + incl]
        if incl != orig:
            raise SystemExit(f"{path}: truncated frame")
        out.append((sec, usec, frame))
        pos += 16 + incl
    return out


def write_pcap(path, recs):
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for sec, usec, frame in recs:
            fh.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
            fh.write(frame)


def session(path):
    """[(sec, usec, ethernet frame without padding, inner IP bytes, c2s)]"""
    recs = read_pcap(path)
    client = None
    out = []
    for sec, usec, frame in recs:
        et = struct.unpack("!H", frame[12:14])[0]
        ipb = frame[14:]
        if et == 0x0800:
            ipb = ipb[:struct.unpack("!H", ipb[2:4])[0]]
            src, proto, thl = ipb[12:16], ipb[9], (ipb[0] & 15) * 4
        elif et == 0x86DD:
            ipb = ipb[:40 + struct.unpack("!H", ipb[4:6])[0]]
            src, proto, thl = ipb[8:24], ipb[6], 40
        else:
            continue                      # ARP / ND are not part of the session
        if proto != 6:
            continue
        flags = ipb[thl + 13]
        if client is None and flags & 0x12 == 0x02:
            client = src
        if client is None:
            raise SystemExit(f"{path}: first TCP packet is not a SYN")
        out.append((sec, usec, frame[:14 + len(ipb)], ipb, src == client))
    return out


def gre(flags_proto, key=None, seq=None):
    flags, proto = flags_proto
    h = struct.pack("!HH", flags, proto)
    if key is not None:
        h += struct.pack("!I", key)
    if seq is not None:
        h += struct.pack("!I", seq)
    return h


def eth(c2s, etype):
    a, b = (MAC[0], MAC[1]) if c2s else (MAC[1], MAC[0])
    return Ether(src=a, dst=b, type=etype)


class Outer:
    """Outer IPv4/IPv6 with a per-direction IP ID counter."""

    def __init__(self):
        self.ipid = {True: 0x1000, False: 0x2000}

    def v4(self, c2s, proto, payload, mirror=False):
        s, d = O4 if (c2s or mirror) else O4[::-1]
        self.ipid[c2s] += 1
        return bytes(eth(True if mirror else c2s, 0x0800) /
                     IP(src=s, dst=d, proto=proto, ttl=64, id=self.ipid[c2s] & 0xFFFF) /
                     Raw(payload))

    def v6(self, c2s, nh, payload):
        s, d = O6 if c2s else O6[::-1]
        return bytes(eth(c2s, 0x86DD) / IPv6(src=s, dst=d, nh=nh, hlim=64) / Raw(payload))


def build(kind, base4, base6):
    o = Outer()
    seq = {True: 0, False: 0}
    out = []

    def nseq(c2s):
        seq[c2s] += 1
        return seq[c2s]

    src = base6 if kind in ("gre-ipv6", "6in4", "6in6") else base4
    if kind == "pppoe":
        src = []
    for sec, usec, frame, ipb, c2s in src:
        if kind == "gre":
            f = o.v4(c2s, 47, gre((0x3000, 0x0800), GRE_KEY, nseq(c2s)) + ipb)
        elif kind == "gre-ipv6":
            f = o.v6(c2s, 47, gre((0x0000, 0x86DD)) + ipb)
        elif kind == "gre-teb":
            f = o.v4(c2s, 47, gre((0x2000, 0x6558), GRE_KEY) + frame)
        elif kind == "erspan2":
            n = nseq(True)
            hdr = struct.pack("!II", (1 << 28) | ERSPAN_ID, 0)
            f = o.v4(c2s, 47, gre((0x1000, 0x88BE), None, n) + hdr + frame, mirror=True)
        elif kind == "erspan3":
            n = nseq(True)
            ts = (sec * 10_000_000 + usec * 10) & 0xFFFFFFFF      # 100 ns units
            w1 = (2 << 28) | ERSPAN_ID
            # SGT 0, P=1 (Ethernet frame), FT 0, HW ID 1, D 0 (ingress), Gra 01 (100 ns), O 0
            w3 = (1 << 15) | (0 << 10) | (1 << 4) | (0 << 3) | (1 << 1) | 0
            hdr = struct.pack("!III", w1, ts, w3)
            f = o.v4(c2s, 47, gre((0x1000, 0x22EB), None, n) + hdr + frame, mirror=True)
        elif kind == "ipip":
            f = o.v4(c2s, 4, ipb)
        elif kind == "6in4":
            f = o.v4(c2s, 41, ipb)
        elif kind == "4in6":
            f = o.v6(c2s, 4, ipb)
        elif kind == "6in6":
            f = o.v6(c2s, 41, ipb)
        elif kind == "mpls":
            labels = (1000, 2000) if c2s else (1001, 2001)
            stack = struct.pack("!II", (labels[0] << 12) | 64, (labels[1] << 12) | 0x100 | 64)
            f = bytes(eth(c2s, 0x8847) / Raw(stack + ipb))
        elif kind == "geneve":
            opt = struct.pack("!HBB", 0xFFFF, 0x01, 1) + struct.pack("!I", 42)
            gh = struct.pack("!BBH", (0 << 6) | (len(opt) // 4), 0, 0x6558) + \
                struct.pack("!I", GENEVE_VNI << 8) + opt
            sport = 49152 + (0x1234 if c2s else 0x2345)      # flow-hash style source port
            s, d = O4 if c2s else O4[::-1]
            o.ipid[c2s] += 1
            f = bytes(eth(c2s, 0x0800) / IP(src=s, dst=d, ttl=64, id=o.ipid[c2s]) /
                      UDP(sport=sport, dport=6081) / Raw(gh + frame))
        else:
            raise SystemExit(f"unknown kind {kind}")
        out.append((sec, usec, f))
    if kind == "pppoe":
        for (b, sid, proto) in ((base4, 0x0011, 0x0021), (base6, 0x0012, 0x0057)):
            for sec, usec, frame, ipb, c2s in b:
                ppp = struct.pack("!H", proto) + ipb
                hdr = struct.pack("!BBHH", 0x11, 0x00, sid, len(ppp))
                out.append((sec, usec, bytes(eth(c2s, 0x8864) / Raw(hdr + ppp))))
        out.sort(key=lambda r: (r[0], r[1]))
    return out


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    kind, dst = sys.argv[1], sys.argv[2]
    base4 = session(sys.argv[3])
    base6 = session(sys.argv[4]) if len(sys.argv) > 4 else []
    if kind in ("gre-ipv6", "6in4", "6in6", "pppoe") and not base6:
        raise SystemExit(f"{kind} needs the IPv6 session")
    recs = build(kind, base4, base6)
    write_pcap(dst, recs)
    print(f"encap.py {kind}: {len(recs)} frames -> {dst}", file=sys.stderr)


if __name__ == "__main__":
    main()
