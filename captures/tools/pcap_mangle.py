#!/usr/bin/python3
"""Deterministic classic-pcap rewriter (struct only, no dependencies).

  pcap_mangle.py dup  IN OUT N [N ...]   write frame N twice (1-based)
  pcap_mangle.py swap IN OUT N [N ...]   swap frame N with frame N+1
                                         (timestamps stay in place, so the
                                         file looks like packets arriving
                                         out of order)
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


def main():
    op, src, dst = sys.argv[1:4]
    frames = sorted({int(x) for x in sys.argv[4:]})
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
    else:
        raise SystemExit(f"unknown operation {op}")
    write_pcap(dst, e, hdr, pkts)


if __name__ == "__main__":
    main()
