#!/usr/bin/python3
"""Scripted SMTP clients for the scenarios swaks/Postfix cannot produce.

  smtp_client.py MODE HOST PORT
MODE:
  injection   EHLO, then "STARTTLS\\r\\nRSET\\r\\n" in ONE send() (one TCP
              segment), TLS handshake after the 220, EHLO, QUIT inside TLS.
  bdat        EHLO, MAIL, RCPT, "BDAT n" + chunk, "BDAT m LAST" + chunk, QUIT
              (plaintext CHUNKING, RFC 3030).
  pipelining  EHLO, then two mail transactions whose MAIL/RCPT/DATA are sent
              as one batch each (RFC 2920), then QUIT.
  helo        smtplib: HELO (never EHLO), one plaintext DATA message, QUIT.
  pause       EHLO, MAIL, RCPT, DATA, the first half of the message, a
              2-second pause INSIDE the content, the rest, ".", QUIT
              (make-wire-captures.sh, long-pause-data.pcap).
"""
import smtplib
import socket
import ssl
import sys
import time

HELO_NAME = "client.example.net"
FROM = "bob@example.net"
TO = "alice@example.org"


def body(subject):
    return (f"From: {FROM}\r\nTo: {TO}\r\nSubject: {subject}\r\n"
            f"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n"
            f"smtpcap test message: {subject}\r\n").encode()


class Conn:
    def __init__(self, host, port):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.s = socket.socket(fam, socket.SOCK_STREAM)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s.connect((host, port))
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def reply(self):
        """Read one (possibly multi-line) reply; return (code, text)."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                d = self.s.recv(65536)
                if not d:
                    raise EOFError("connection closed")
                self.buf += d
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if line[3:4] != b"-":
                code = int(line[:3])
                print(f"<< {lines!r}", file=sys.stderr)
                return code, lines

    def expect(self, code):
        c, lines = self.reply()
        if c != code:
            raise SystemExit(f"expected {code}, got {lines!r}")
        return lines


def injection(host, port):
    c = Conn(host, port)
    c.expect(220)
    c.send(f"EHLO {HELO_NAME}\r\n".encode())
    lines = c.expect(250)
    assert any(b"STARTTLS" in ln for ln in lines), "no STARTTLS offered"
    # The injection: both commands in one send() -> one TCP segment.
    c.send(b"STARTTLS\r\nRSET\r\n")
    c.expect(220)
    extra = c.buf
    c.buf = b""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c.s = ctx.wrap_socket(c.s, server_hostname="mx.example.org")
    print(f"TLS {c.s.version()}; plaintext bytes after 220: {extra!r}",
          file=sys.stderr)
    c.send(f"EHLO {HELO_NAME}\r\n".encode())
    c.expect(250)
    c.send(b"QUIT\r\n")
    c.reply()
    c.s.close()


def bdat(host, port):
    c = Conn(host, port)
    c.expect(220)
    c.send(f"EHLO {HELO_NAME}\r\n".encode())
    lines = c.expect(250)
    assert any(b"CHUNKING" in ln for ln in lines), "no CHUNKING offered"
    c.send(f"MAIL FROM:<{FROM}>\r\n".encode())
    c.expect(250)
    c.send(f"RCPT TO:<{TO}>\r\n".encode())
    c.expect(250)
    msg = body("BDAT chunking test")
    half = len(msg) // 2
    one, two = msg[:half], msg[half:]
    c.send(f"BDAT {len(one)}\r\n".encode() + one)
    c.expect(250)
    c.send(f"BDAT {len(two)} LAST\r\n".encode() + two)
    c.expect(250)
    c.send(b"QUIT\r\n")
    c.reply()
    c.s.close()


def pipelining(host, port):
    c = Conn(host, port)
    c.expect(220)
    c.send(f"EHLO {HELO_NAME}\r\n".encode())
    lines = c.expect(250)
    assert any(b"PIPELINING" in ln for ln in lines), "no PIPELINING"
    for n in (1, 2):
        c.send(f"MAIL FROM:<{FROM}>\r\nRCPT TO:<{TO}>\r\nDATA\r\n".encode())
        c.expect(250)
        c.expect(250)
        c.expect(354)
        c.send(body(f"pipelined message {n}") + b".\r\n")
        c.expect(250)
    c.send(b"QUIT\r\n")
    c.reply()
    c.s.close()


def helo(host, port):
    s = smtplib.SMTP(host, port, local_hostname=HELO_NAME, timeout=20)
    s.set_debuglevel(1)
    s.helo(HELO_NAME)
    s.sendmail(FROM, [TO], body("HELO-only client"))
    s.quit()


def pause(host, port):
    c = Conn(host, port)
    c.expect(220)
    c.send(f"EHLO {HELO_NAME}\r\n".encode())
    c.expect(250)
    c.send(f"MAIL FROM:<{FROM}>\r\n".encode())
    c.expect(250)
    c.send(f"RCPT TO:<{TO}>\r\n".encode())
    c.expect(250)
    c.send(b"DATA\r\n")
    c.expect(354)
    msg = body("pause inside DATA") + b"".join(
        f"line {i:02d} of the body; the client pauses after line 10\r\n".encode()
        for i in range(1, 21))
    cut = msg.index(b"line 11 ")
    c.send(msg[:cut])
    time.sleep(2)
    c.send(msg[cut:] + b".\r\n")
    c.expect(250)
    c.send(b"QUIT\r\n")
    c.reply()
    c.s.close()


if __name__ == "__main__":
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"injection": injection, "bdat": bdat, "pipelining": pipelining,
     "helo": helo, "pause": pause}[mode](host, port)
    time.sleep(0.2)
