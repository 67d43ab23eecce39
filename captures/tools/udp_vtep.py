#!/usr/bin/python3
"""Userspace VXLAN tunnel endpoint (RFC 7348) over a UDP socket.

  udp_vtep.py --tap TAP --local ADDR --remote ADDR --vni N [--port 4789]
              [--ready-file FILE]

Creates the TAP device TAP (IFF_TAP, no packet info), reads Ethernet frames
from it and sends each one as ONE UDP datagram (8-byte VXLAN header with the
I flag and the VNI, then the frame) from [ADDR]:port to [remote]:port;
datagrams received on the socket with that VNI are written back to the TAP.

Used by make-wire-captures.sh for ipv6-fragments.pcap: Linux's vxlan driver
drops (instead of fragmenting) an IPv6-encapsulated frame that exceeds the
underlay MTU, whereas a UDP socket's datagrams larger than the path MTU are
fragmented by the kernel's IPv6 stack (source fragmentation, Fragment
header). The peer is the kernel's vxlan driver, which reassembles and
decapsulates. The encapsulation here is what the kernel would write.
"""
import argparse
import fcntl
import os
import select
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tap", required=True)
    ap.add_argument("--local", required=True)
    ap.add_argument("--remote", required=True)
    ap.add_argument("--vni", type=int, required=True)
    ap.add_argument("--port", type=int, default=4789)
    ap.add_argument("--ready-file")
    a = ap.parse_args()

    tap = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tap, TUNSETIFF, struct.pack("16sH", a.tap.encode(), IFF_TAP | IFF_NO_PI))
    fam = socket.AF_INET6 if ":" in a.local else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((a.local, a.port))
    dst = (a.remote, a.port)
    hdr = struct.pack("!II", 0x08000000, a.vni << 8)
    if a.ready_file:
        with open(a.ready_file, "w") as fh:
            fh.write("ready\n")
    print(f"udp_vtep: {a.tap} <-> udp [{a.local}]:{a.port} -> [{a.remote}]:{a.port} vni {a.vni}",
          file=sys.stderr, flush=True)
    sent = recv = 0
    try:
        while True:
            r, _, _ = select.select([tap, s], [], [])
            if tap in r:
                frame = os.read(tap, 65535)
                s.sendto(hdr + frame, dst)
                sent += 1
            if s in r:
                d, _ = s.recvfrom(65535)
                if len(d) > 8 and d[0] & 0x08 and struct.unpack("!I", d[4:8])[0] >> 8 == a.vni:
                    os.write(tap, d[8:])
                    recv += 1
    except KeyboardInterrupt:
        pass
    finally:
        print(f"udp_vtep: {sent} frames encapsulated, {recv} decapsulated", file=sys.stderr)


if __name__ == "__main__":
    main()
