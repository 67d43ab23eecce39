#!/usr/bin/python3
"""Transparent SMTP proxy that intercepts STARTTLS (a TLS "inspection" box).

Runs in the middlebox network namespace (make-path-captures.sh). An nftables
rule REDIRECTs IPv4 TCP port 25 to this proxy; the original destination is
read back with SO_ORIGINAL_DST and the proxy connects there itself, so both
TCP connections end here (the client sees the proxy's SYN-ACK, the server
sees the proxy's address as client).

  plaintext  the SMTP dialogue is relayed unchanged, reply by reply
  STARTTLS   forwarded to the server; the server's reply is relayed to the
             client; if it is 220 the proxy completes TLS WITH THE CLIENT
             using its own certificate (--cert/--key, e.g. a self-signed
             RSA certificate for the server's name made at run time), then
             opens TLS to the real server itself (no verification) and
             relays the decrypted stream in both directions.
  --max-tls 1.2  caps both TLS legs at TLS 1.2 (the Certificate message is
             then visible on the wire).

Only clients that wait for each reply (no pipelining across STARTTLS) are
supported, which is what swaks/smtplib/Postfix do.
"""
import argparse
import asyncio
import socket
import ssl
import struct
import sys

SO_ORIGINAL_DST = 80


def log(msg):
    print(f"tls_intercept_proxy: {msg}", file=sys.stderr, flush=True)


def original_dst(sock):
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, = struct.unpack("!H", raw[2:4])
    return socket.inet_ntoa(raw[4:8]), port


def ep(sockname):
    host, port = sockname[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError, ssl.SSLError):
        pass
    finally:
        try:
            writer.close()
        except (OSError, RuntimeError):
            pass


async def server_replies(sr, cw, state):
    """Relay complete server replies to the client; return the reply that
    answers STARTTLS (not relayed) or None at EOF."""
    lines = []
    while True:
        line = await sr.readline()
        if not line:
            if lines:
                cw.write(b"".join(lines))
            return None
        lines.append(line)
        if line[3:4] == b"-":
            continue
        reply, lines = b"".join(lines), []
        if state["starttls"]:
            return reply
        cw.write(reply)
        await cw.drain()


async def handle(cr, cw, a):
    sock = cw.get_extra_info("socket")
    try:
        host, port = original_dst(sock)
    except OSError as e:
        log(f"no original destination: {e}")
        cw.close()
        return
    peer = cw.get_extra_info("peername")
    try:
        sr, sw = await asyncio.open_connection(host, port)
    except OSError as e:
        log(f"upstream connect failed: {e}")
        cw.close()
        return
    local = sw.get_extra_info("sockname")
    log(f"{ep(peer)} -> {host}:{port} via {ep(local)}")
    srv_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv_ctx.load_cert_chain(a.cert, a.key)
    cli_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cli_ctx.check_hostname = False
    cli_ctx.verify_mode = ssl.CERT_NONE
    if a.max_tls == "1.2":
        srv_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        cli_ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    state = {"starttls": False}
    spump = asyncio.create_task(server_replies(sr, cw, state))
    intercepted = False
    try:
        while True:
            line = await cr.readline()
            if not line:
                break
            if line.rstrip(b"\r\n").upper() != b"STARTTLS":
                sw.write(line)
                await sw.drain()
                continue
            state["starttls"] = True
            sw.write(line)
            await sw.drain()
            reply = await spump
            if reply is None:
                break
            if not reply.startswith(b"220"):
                # refused: relay and carry on in plaintext
                state["starttls"] = False
                cw.write(reply)
                await cw.drain()
                spump = asyncio.create_task(server_replies(sr, cw, state))
                continue
            # Relay the 220 and switch the client side to TLS with no await
            # in between that could let the event loop read the client's
            # ClientHello into the plaintext stream buffer.
            cw.write(reply)
            await cw.start_tls(srv_ctx)
            await sw.start_tls(cli_ctx, server_hostname=a.server_name)
            cobj = cw.get_extra_info("ssl_object")
            sobj = sw.get_extra_info("ssl_object")
            log(f"{ep(peer)}: intercepted; client side {cobj.version()} {cobj.cipher()[0]}, "
                f"server side {sobj.version()} {sobj.cipher()[0]}")
            intercepted = True
            break
    except (ConnectionError, OSError, ssl.SSLError) as e:
        log(f"{ep(peer)}: {e!r}")
    if intercepted:
        await asyncio.gather(pipe(cr, sw), pipe(sr, cw))
    else:
        if not spump.done():
            spump.cancel()
        for w in (cw, sw):
            try:
                w.close()
            except (OSError, RuntimeError):
                pass
    log(f"{ep(peer)}: closed")


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=10026)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--server-name", default="mx.example.org",
                    help="SNI sent to the real server")
    ap.add_argument("--max-tls", choices=("1.2", "1.3"), default="1.3")
    ap.add_argument("--ready-file")
    a = ap.parse_args()
    srv = await asyncio.start_server(lambda r, w: handle(r, w, a),
                                     "0.0.0.0", a.port, reuse_address=True)
    if a.ready_file:
        with open(a.ready_file, "w") as fh:
            fh.write("ready\n")
    log(f"listening on 0.0.0.0:{a.port}, max TLS {a.max_tls}")
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
