#!/usr/bin/python3
"""aiosmtpd server that greets and answers EHLO like a large mail provider,
with the STARTTLS line deleted from the EHLO reply (make-path-captures.sh,
provider-banners.pcap).

  provider_server.py --profile google|microsoft|yahoo|icloud --listen ADDR...

The greeting and the EHLO reply follow the providers' published/observed
formats; the STARTTLS keyword they normally list is left out (deleted, not
masked: the line is gone and, where it was the last line, the line before it
is the final one). Per-connection parts (queue/session ids, the date, the
client address in the EHLO greeting line) are made at connection time.
MAIL/RCPT/DATA/QUIT replies use the provider's wording where known.
Messages are accepted and discarded. No TLS is offered.

Formats:
  google     220 mx.google.com ESMTP <id> - gsmtp
             250-mx.google.com at your service, [<client ip>]
             SIZE 157286400, 8BITMIME, (STARTTLS), ENHANCEDSTATUSCODES,
             PIPELINING, CHUNKING, SMTPUTF8
  microsoft  220 <host>.mail.protection.outlook.com Microsoft ESMTP MAIL
             Service ready at <RFC 2822 date>
             250-<host>.mail.protection.outlook.com Hello [<client ip>]
             SIZE 157286400, PIPELINING, DSN, ENHANCEDSTATUSCODES,
             (STARTTLS), 8BITMIME, BINARYMIME, CHUNKING, SMTPUTF8
  yahoo      220 mta4265.mail.ne1.yahoo.com ESMTP ready   (the MX in DNS
             is mta7.am0.yahoodns.net; its servers declare *.yahoo.com)
             250-mta4265.mail.ne1.yahoo.com, PIPELINING, SIZE 41943040,
             8BITMIME, (STARTTLS, the last line: 8BITMIME becomes final)
  icloud     220 iCloud iscream SMTP proxy - p00-iscream-smtp-<pod> 3.5.0
             (<build>)      (as observed on mx01.mail.icloud.com, 2023)
             250-p00-iscream-smtp-<pod>, PIPELINING, (STARTTLS),
             8BITMIME, ENHANCEDSTATUSCODES  (only the first two lines were
             observed; the rest of the list is assumed)
"""
import argparse
import asyncio
import random
import string
import sys
import time
from datetime import datetime, timezone

from aiosmtpd.smtp import SMTP

RNG = random.Random()


def rid(n, alphabet=string.ascii_lowercase + string.digits):
    return "".join(RNG.choice(alphabet) for _ in range(n))


class Profile:
    """One provider: greeting, EHLO lines and transaction replies."""
    name = ""
    host = ""

    def __init__(self):
        self.sid = ""

    def greeting(self):            # (hostname, ident) for aiosmtpd: "220 h i"
        raise NotImplementedError

    def ehlo(self, peer_ip):       # complete reply lines, "250-..." / "250 ..."
        raise NotImplementedError

    def mail(self, addr):
        return "250 2.1.0 Ok"

    def rcpt(self, addr):
        return "250 2.1.5 Ok"

    def data(self, size):
        return "250 2.0.0 Ok: queued"

    def quit(self):
        return "221 2.0.0 Bye"


def finish(lines):
    """'250-' on every line but the last, '250 ' on the last."""
    return [("250 " if i == len(lines) - 1 else "250-") + ln for i, ln in enumerate(lines)]


class Google(Profile):
    name = "google"
    host = "mx.google.com"

    def greeting(self):
        # e.g. "d9443c01a7336-1e2a1b2c3d4si1234567plb.123"
        self.sid = f"{rid(13, '0123456789abcdef')}-{rid(16)}si{RNG.randint(1000000, 9999999)}" \
                   f"{rid(3)}.{RNG.randint(100, 999)}"
        return self.host, f"ESMTP {self.sid} - gsmtp"

    def ehlo(self, peer_ip):
        # STARTTLS (between 8BITMIME and ENHANCEDSTATUSCODES) deleted
        return finish([f"{self.host} at your service, [{peer_ip}]", "SIZE 157286400",
                       "8BITMIME", "ENHANCEDSTATUSCODES", "PIPELINING", "CHUNKING",
                       "SMTPUTF8"])

    def mail(self, addr):
        return f"250 2.1.0 OK {self.sid} - gsmtp"

    def rcpt(self, addr):
        return f"250 2.1.5 OK {self.sid} - gsmtp"

    def data(self, size):
        return f"250 2.0.0 OK  {int(time.time())} {self.sid} - gsmtp"

    def quit(self):
        return f"221 2.0.0 closing connection {self.sid} - gsmtp"


class Microsoft(Profile):
    name = "microsoft"
    host = "AM4PEPF00027A6C.mail.protection.outlook.com"

    def greeting(self):
        d = datetime.now(timezone.utc)          # RFC 2822, day without a leading 0
        date = f"{d:%a}, {d.day} {d:%b %Y %H:%M:%S} +0000"
        return self.host, f"Microsoft ESMTP MAIL Service ready at {date}"

    def ehlo(self, peer_ip):
        # STARTTLS (between ENHANCEDSTATUSCODES and 8BITMIME) deleted
        return finish([f"{self.host} Hello [{peer_ip}]", "SIZE 157286400", "PIPELINING",
                       "DSN", "ENHANCEDSTATUSCODES", "8BITMIME", "BINARYMIME", "CHUNKING",
                       "SMTPUTF8"])

    def mail(self, addr):
        return "250 2.1.0 Sender OK"

    def rcpt(self, addr):
        return "250 2.1.5 Recipient OK"

    def data(self, size):
        mid = f"{rid(8, '0123456789ABCDEF')}-{rid(4, '0123456789ABCDEF')}"
        return (f"250 2.6.0 <{mid}@example.net> [InternalId={RNG.randint(10**12, 10**13 - 1)}, "
                f"Hostname=AM9PR02MB7315.eurprd02.prod.outlook.com] {size} bytes in 0.094, "
                f"{size / 1024 / 0.094:.3f} KB/sec Queued mail for delivery")

    def quit(self):
        return "221 2.0.0 Service closing transmission channel"


class Yahoo(Profile):
    name = "yahoo"
    host = "mta4265.mail.ne1.yahoo.com"

    def greeting(self):
        return self.host, "ESMTP ready"

    def ehlo(self, peer_ip):
        # STARTTLS was the LAST line; deleted, so 8BITMIME is now final
        return finish([self.host, "PIPELINING", "SIZE 41943040", "8BITMIME"])

    def mail(self, addr):
        return f"250 sender <{addr}> ok"

    def rcpt(self, addr):
        return f"250 recipient <{addr}> ok"

    def data(self, size):
        return "250 ok dirdel"

    def quit(self):
        return "221 Service Closing transmission"


class ICloud(Profile):
    name = "icloud"
    host = "iCloud"

    def greeting(self):
        self.pod = f"p00-iscream-smtp-{rid(9, '0123456789abcdef')}-{rid(5)}"
        build = f"24{RNG.randint(10, 99)}B{RNG.randint(10, 99)}-{rid(8, '0123456789abcdef')}"
        return self.host, f"iscream SMTP proxy - {self.pod} 3.5.0 ({build})"

    def ehlo(self, peer_ip):
        # STARTTLS (assumed after PIPELINING) deleted
        return finish([self.pod, "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"])

    def mail(self, addr):
        return "250 2.1.0 OK"

    def rcpt(self, addr):
        return "250 2.1.5 OK"

    def data(self, size):
        return f"250 2.0.0 OK {rid(24, '0123456789abcdef')}"

    def quit(self):
        return "221 2.0.0 Bye"


PROFILES = {p.name: p for p in (Google, Microsoft, Yahoo, ICloud)}


class Handler:
    def __init__(self, profile):
        self.p = profile

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return self.p.ehlo(session.peer[0])

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return self.p.mail(address)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        envelope.rcpt_tos.append(address)
        return self.p.rcpt(address)

    async def handle_DATA(self, server, session, envelope):
        print(f"provider_server[{self.p.name}]: message from {envelope.mail_from} to "
              f"{envelope.rcpt_tos}, {len(envelope.content)} bytes", file=sys.stderr, flush=True)
        return self.p.data(len(envelope.content))

    async def handle_QUIT(self, server, session, envelope):
        return self.p.quit()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", choices=sorted(PROFILES), required=True)
    ap.add_argument("--listen", action="append", required=True)
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--ready-file")
    a = ap.parse_args()

    def factory():
        # one profile object per connection: its ids/date are made now
        p = PROFILES[a.profile]()
        host, ident = p.greeting()
        return SMTP(Handler(p), hostname=host, ident=ident, loop=loop,
                    data_size_limit=None)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    for addr in a.listen:
        loop.run_until_complete(loop.create_server(factory, host=addr, port=a.port,
                                                   reuse_address=True))
    if a.ready_file:
        with open(a.ready_file, "w") as fh:
            fh.write("ready\n")
    print(f"provider_server[{a.profile}]: listening on {a.listen} port {a.port}",
          file=sys.stderr, flush=True)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
