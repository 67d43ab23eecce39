#!/usr/bin/python3
"""Transparent SMTP proxy that strips STARTTLS from EHLO replies.

Runs in the middlebox network namespace. An nftables rule REDIRECTs IPv4
TCP port 25 to this proxy; the original destination is read back with
SO_ORIGINAL_DST and the proxy connects there itself.

Server-to-client data is parsed reply by reply (multi-line replies are
buffered until their final "NNN " line):
  --mode mask    "250-STARTTLS"/"250 STARTTLS" -> "250-XXXXXXXA"/"250 XXXXXXXA"
                 (same length, like a Cisco PIX/ASA "ESMTP inspection")
  --mode delete  the STARTTLS line is removed; if it was the final line the
                 previous line is made final ("250-" -> "250 ").
Client-to-server data is forwarded unchanged.  As soon as server data does
not look like SMTP any more (e.g. TLS) the proxy becomes a plain relay.
"""
import argparse
import asyncio
import re
import socket
import struct
import sys

SO_ORIGINAL_DST = 80
STARTTLS_LINE = re.compile(rb"^(\d{3})([- ])STARTTLS\s*$", re.I)
REPLY_LINE = re.compile(rb"^\d{3}[- ]")


def original_dst(sock):
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, = struct.unpack("!H", raw[2:4])
    addr = socket.inet_ntoa(raw[4:8])
    return addr, port


def rewrite_reply(lines, mode):
    """lines: list of complete reply lines (with CRLF). Returns bytes."""
    out = []
    for ln in lines:
        m = STARTTLS_LINE.match(ln)
        if not m:
            out.append(ln)
            continue
        if mode == "mask":
            out.append(m.group(1) + m.group(2) + b"XXXXXXXA\r\n")
        else:  # delete
            if m.group(2) == b" " and out:
                prev = out.pop()
                out.append(prev[:3] + b" " + prev[4:])
            # line dropped
    return b"".join(out)


async def pump_client_to_server(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            pass


async def pump_server_to_client(reader, writer, mode):
    buf = b""
    pending = []
    raw = False
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if raw:
                writer.write(data)
                await writer.drain()
                continue
            buf += data
            out = b""
            while True:
                if buf and not REPLY_LINE.match(buf[:4]) and len(buf) >= 4:
                    # not SMTP any more: flush and relay raw
                    out += b"".join(pending) + buf
                    pending, buf, raw = [], b"", True
                    break
                i = buf.find(b"\n")
                if i < 0:
                    break
                line, buf = buf[:i + 1], buf[i + 1:]
                pending.append(line)
                if line[3:4] != b"-":
                    out += rewrite_reply(pending, mode)
                    pending = []
            if out:
                writer.write(out)
                await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        if pending or buf:
            writer.write(b"".join(pending) + buf)
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            pass


async def handle(creader, cwriter, mode):
    sock = cwriter.get_extra_info("socket")
    try:
        host, port = original_dst(sock)
    except OSError as e:
        print(f"strip_proxy: no original destination: {e}", file=sys.stderr)
        cwriter.close()
        return
    peer = cwriter.get_extra_info("peername")
    print(f"strip_proxy: {peer[0]}:{peer[1]} -> {host}:{port} ({mode})",
          file=sys.stderr, flush=True)
    try:
        sreader, swriter = await asyncio.open_connection(host, port)
    except OSError as e:
        print(f"strip_proxy: upstream connect failed: {e}", file=sys.stderr)
        cwriter.close()
        return
    # the two ends of the relayed session, for pairing client-side and
    # server-side captures (make-path-captures.sh)
    local = swriter.get_extra_info("sockname")
    print(f"strip_proxy: {peer[0]}:{peer[1]} -> {host}:{port} via {local[0]}:{local[1]}",
          file=sys.stderr, flush=True)
    await asyncio.gather(pump_client_to_server(creader, swriter),
                         pump_server_to_client(sreader, cwriter, mode))
    for w in (cwriter, swriter):
        w.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=10025)
    ap.add_argument("--mode", choices=("mask", "delete"), default="mask")
    ap.add_argument("--ready-file")
    a = ap.parse_args()
    srv = await asyncio.start_server(lambda r, w: handle(r, w, a.mode),
                                     "0.0.0.0", a.port, reuse_address=True)
    if a.ready_file:
        open(a.ready_file, "w").write("ready\n")
    print(f"strip_proxy: listening on 0.0.0.0:{a.port} mode={a.mode}",
          file=sys.stderr, flush=True)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
