#!/usr/bin/python3
"""SMTP server that offers STARTTLS but never completes TLS (probe-env.sh).

Speaks just enough SMTP for a client to reach STARTTLS: a 220 greeting,
EHLO (advertising PIPELINING, 8BITMIME and STARTTLS), HELO, NOOP, RSET,
QUIT; anything else gets 502. STARTTLS is answered
"220 2.0.0 Ready to start TLS"; then, as soon as the first bytes of the
client's TLS ClientHello arrive, depending on --on-hello:
  close    close the connection (FIN)                          (default)
  reset    abort it (RST, SO_LINGER 0)
  garbage  send non-TLS bytes ("garbage\\r\\n" + 64 x 0x00), then close
The ClientHello is read, never answered.

  drop_tls_server.py --listen ADDR [--listen ADDR...] [--port 25]
                     [--hostname droptls.example.net] [--on-hello MODE]
                     [--ready-file FILE]
"""
import argparse
import asyncio
import socket
import struct
import sys


def log(msg):
    print(f"drop_tls_server: {msg}", file=sys.stderr, flush=True)


async def session(reader, writer, a):
    peer = writer.get_extra_info("peername")
    log(f"connection from {peer[0]} port {peer[1]}")

    def reply(text):
        writer.write(text.encode() + b"\r\n")

    try:
        reply(f"220 {a.hostname} ESMTP")
        await writer.drain()
        while True:
            line = await asyncio.wait_for(reader.readline(), 60)
            if not line:
                log("client closed before STARTTLS")
                return
            verb = line.strip().split(b" ", 1)[0].upper()
            if verb == b"EHLO":
                reply(f"250-{a.hostname}")
                reply("250-PIPELINING")
                reply("250-8BITMIME")
                reply("250 STARTTLS")
            elif verb == b"HELO":
                reply(f"250 {a.hostname}")
            elif verb in (b"NOOP", b"RSET"):
                reply("250 2.0.0 Ok")
            elif verb == b"QUIT":
                reply("221 2.0.0 Bye")
                await writer.drain()
                return
            elif verb == b"STARTTLS":
                reply("220 2.0.0 Ready to start TLS")
                await writer.drain()
                hello = await asyncio.wait_for(reader.read(65536), 60)
                kind = "a TLS ClientHello" if hello[:1] == b"\x16" else "non-TLS data"
                log(f"got {len(hello)} bytes ({kind}) after STARTTLS: {a.on_hello}")
                if a.on_hello == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                elif a.on_hello == "garbage":
                    writer.write(b"garbage\r\n" + b"\x00" * 64)
                    await writer.drain()
                return
            else:
                reply("502 5.5.2 Error: command not recognized")
            await writer.drain()
    except (ConnectionError, OSError, asyncio.TimeoutError) as e:
        log(f"connection error: {e!r}")
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", action="append", required=True)
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--hostname", default="droptls.example.net")
    ap.add_argument("--on-hello", choices=("close", "reset", "garbage"), default="close")
    ap.add_argument("--ready-file")
    a = ap.parse_args()
    servers = [await asyncio.start_server(lambda r, w: session(r, w, a), addr, a.port,
                                          reuse_address=True)
               for addr in a.listen]
    if a.ready_file:
        with open(a.ready_file, "w") as f:
            f.write("ready\n")
    log(f"listening on {a.listen} port {a.port}, on ClientHello: {a.on_hello}")
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
