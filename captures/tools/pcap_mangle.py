#!/usr/bin/python3
"""Deterministic classic-pcap rewriter (struct only, no dependencies).

  pcap_mangle.py dup  IN OUT N [N ...]   write frame N twice (1-based)
  pcap_mangle.py swap IN OUT N [N ...]   swap frame N with frame N+1
                                         (timestamps stay in place, so the
                                         file looks like packets arriving
                                         out of order)
  pcap_mangle.py ttl  IN OUT T N [N ...]  set the IPv4 TTL of Ethernet frame
                                         N to T and recompute its header
                                         checksum
Frames are the packet numbers tshark/editcap show (1-based).
"""
import struct
import sys


def read_pcap(path):
    data = open(path, "rb").read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise SystemExit(f"{path}: not a classic pcap file")
    hdr = data[:24]
    pkts, off = [], 24
    while off + 16 <= len(data):
        ts_s, ts_f, incl, orig = struct.unpack(e + "IIII", data[off:off + 16])
        pkts.append([ts_s, ts_f, orig, data[off + 16:off + 16 + incl]])
        off += 16 + incl
    return e, hdr, pkts


def write_pcap(path, e, hdr, pkts):
    with open(path, "wb") as f:
        f.write(hdr)
        for ts_s, ts_f, orig, body in pkts:
            f.write(struct.pack(e + "IIII", ts_s, ts_f, len(body), orig))
            f.write(body)


def set_ttl(body, ttl):
    """An Ethernet frame with IPv4 inside, its TTL set and checksum redone."""
    if len(body) < 34 or body[12:14] != b"\x08\x00":
        raise SystemExit("ttl: not an Ethernet/IPv4 frame")
    ihl = (body[14] & 0x0f) * 4
    h = bytearray(body[14:14 + ihl])
    h[8] = ttl
    h[10:12] = b"\x00\x00"
    total = sum(struct.unpack("!%dH" % (ihl // 2), bytes(h)))
    while total > 0xffff:
        total = (total & 0xffff) + (total >> 16)
    h[10:12] = struct.pack("!H", ~total & 0xffff)
    return body[:14] + bytes(h) + body[14 + ihl:]


def main():
    op, src, dst = sys.argv[1:4]
    args = sys.argv[4:]
    ttl = None
    if op == "ttl":
        ttl, args = int(args[0]), args[1:]
    frames = sorted({int(x) for x in args})
    e, hdr, pkts = read_pcap(src)
    if op == "dup":
        out = []
        for i, p in enumerate(pkts, 1):
            out.append(p)
            if i in frames:
                out.append(list(p))
        pkts = out
    elif op == "swap":
        for n in frames:
            a, b = pkts[n - 1], pkts[n]
            # exchange contents, keep the time line monotonic
            a[2:], b[2:] = b[2:], a[2:]
    elif op == "ttl":
        for n in frames:
            pkts[n - 1][3] = set_ttl(pkts[n - 1][3], ttl)
    else:
        raise SystemExit(f"unknown operation {op}")
    write_pcap(dst, e, hdr, pkts)


if __name__ == "__main__":
    main()
