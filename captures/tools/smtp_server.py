#!/usr/bin/python3
"""Small aiosmtpd-based SMTP server used by make-captures.sh.

Listens on every --listen address (IPv4 and/or IPv6) on --port.
  --starttls CERT KEY      offer STARTTLS (TLS context from the files)
  --implicit-tls CERT KEY  TLS from the first byte (port 465 style)
  --refuse-starttls        advertise STARTTLS but answer 454 to it
  --auth tls|plain         offer AUTH PLAIN/LOGIN; 'tls' = only after
                           STARTTLS, 'plain' = also in cleartext
  --hostname NAME          name in the greeting and EHLO reply
                           (default mx.example.org)
  --ident TEXT             greeting text after the name (default "ESMTP";
                           "" = aiosmtpd's own, "Python SMTP <version>")
Credentials accepted: user "alice@example.org", password "S3cr3t-Hunter2".
Messages are accepted and discarded.
"""
import argparse
import asyncio
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

USER = b"alice@example.org"
PASSWORD = b"S3cr3t-Hunter2"


class Handler:
    async def handle_DATA(self, server, session, envelope):
        print(f"smtp_server: message from {envelope.mail_from} to "
              f"{envelope.rcpt_tos}, {len(envelope.content)} bytes",
              file=sys.stderr, flush=True)
        return "250 2.0.0 Ok: queued"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER
          and auth_data.password == PASSWORD)
    return AuthResult(success=ok)


class RefusingSMTP(SMTP):
    async def smtp_STARTTLS(self, arg):
        await self.push("454 4.7.0 TLS not available due to temporary reason")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", action="append", required=True)
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--hostname", default="mx.example.org")
    ap.add_argument("--ident", default="ESMTP")
    ap.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--implicit-tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--refuse-starttls", action="store_true")
    ap.add_argument("--auth", choices=("tls", "plain"))
    ap.add_argument("--ready-file")
    a = ap.parse_args()

    def ctx(files):
        c = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        c.load_cert_chain(*files)
        return c

    tls_context = ctx(a.starttls) if a.starttls else None
    implicit = ctx(a.implicit_tls) if a.implicit_tls else None
    cls = SMTP
    if a.refuse_starttls:
        cls = RefusingSMTP
        # any context: only used so that aiosmtpd advertises STARTTLS
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    kw = dict(hostname=a.hostname, ident=a.ident or None, tls_context=tls_context)
    if a.auth:
        kw.update(authenticator=authenticator,
                  auth_require_tls=(a.auth == "tls"))

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    servers = []
    for addr in a.listen:
        servers.append(loop.run_until_complete(loop.create_server(
            lambda: cls(Handler(), loop=loop, **kw), host=addr, port=a.port,
            ssl=implicit, reuse_address=True)))
    if a.ready_file:
        open(a.ready_file, "w").write("ready\n")
    print(f"smtp_server: listening on {a.listen} port {a.port}",
          file=sys.stderr, flush=True)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
