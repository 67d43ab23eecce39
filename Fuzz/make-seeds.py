#!/usr/bin/env python3
"""Seed corpora for the fuzz harnesses, cut from the real captures in captures/.

Usage: make-seeds.py CAPTURES_DIR OUT_DIR
Writes OUT_DIR/{pcap,pcapng,gzip,decode,ipframes,reassembly,smtp,tls,dns}/ seed files.
"""
import os, struct, sys

def frames(path):
    data = open(path, 'rb').read()
    if len(data) < 24:
        return None, []
    magic = data[:4]
    if magic in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1'):
        e = '<'
    elif magic in (b'\xa1\xb2\xc3\xd4', b'\xa1\xb2\x3c\x4d'):
        e = '>'
    else:
        return None, []
    link = struct.unpack(e + 'I', data[20:24])[0]
    out, at = [], 24
    while at + 16 <= len(data):
        _, _, caplen, _ = struct.unpack(e + 'IIII', data[at:at + 16])
        out.append(data[at + 16:at + 16 + caplen])
        at += 16 + caplen
    return link, out

def pcapng_block(e, kind, body):
    body += b'\0' * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(e + 'II', kind, n) + body + struct.pack(e + 'I', n)

def pcapng(e, interfaces, packets, section_options=b''):
    """A section in byte order e: interfaces as (link, snaplen, options), packets as
    (interface, stamp, frame)."""
    out = pcapng_block(e, 0x0A0D0D0A, struct.pack(e + 'IHHq', 0x1A2B3C4D, 1, 0, -1) + section_options)
    for link, snaplen, options in interfaces:
        out += pcapng_block(e, 1, struct.pack(e + 'HHI', link, 0, snaplen) + options)
    for interface, stamp, frame in packets:
        out += pcapng_block(e, 6, struct.pack(e + 'IIIII', interface, stamp >> 32, stamp & 0xffffffff,
                                               len(frame), len(frame)) + frame)
    return out

def pcapng_option(e, code, value):
    return struct.pack(e + 'HH', code, len(value)) + value + b'\0' * (-len(value) % 4)

def pcapng_seeds(src_dir, out, captures):
    """pcapng seeds: the corpus's own pcapng files, and the classic captures rewritten as
    pcapng: little- and big-endian, nanosecond and binary resolutions, and two captures of
    different link types merged into one section (one interface each), as libpcap refuses."""
    d = os.path.join(out, 'pcapng')
    for name in sorted(os.listdir(src_dir)):
        path = os.path.join(src_dir, name)
        if name.endswith('.pcapng') and os.path.getsize(path) <= 64 * 1024:
            open(os.path.join(d, name[:-7]), 'wb').write(open(path, 'rb').read())
    small = [(base, link, fs[:24]) for base, link, fs in captures if link is not None]
    for i, (base, link, fs) in enumerate(small):
        e = '<' if i % 2 == 0 else '>'
        resol = [b'', pcapng_option(e, 9, b'\x09') + pcapng_option(e, 0, b''),
                 pcapng_option(e, 9, b'\x94') + pcapng_option(e, 14, struct.pack(e + 'q', 3)) + pcapng_option(e, 0, b'')][i % 3]
        name = pcapng_option(e, 2, b'eth%d' % i) + pcapng_option(e, 0, b'')
        packets = [(0, 1767225600000000 + k * 1000, f) for k, f in enumerate(fs)]
        open(os.path.join(d, 'rewritten-' + base), 'wb').write(pcapng(e, [(link, 65535, name if i % 3 == 0 else resol)], packets))
    for (a, la, fa), (b, lb, fb) in zip(small, small[1:]):
        if la != lb:
            packets = [(k % 2, 1767225600000000 + k, f) for k, f in enumerate(x for pair in zip(fa[:8], fb[:8]) for x in pair)]
            open(os.path.join(d, 'merged-%s-%s' % (a, b)), 'wb').write(pcapng('<', [(la, 65535, b''), (lb, 0, b'')], packets))

def tcp(link, frame):
    """(src, dst, sport, dport, seq, flags, payload) for Ethernet/SLL2 IPv4/IPv6 TCP, else None."""
    off = {1: 14, 276: 20}.get(link)
    if off is None or len(frame) < off + 20:
        return None
    if link == 1 and frame[12:14] == b'\x81\x00':
        off += 4
    ver = frame[off] >> 4
    if ver == 4:
        ihl = (frame[off] & 15) * 4
        if frame[off + 9] != 6:
            return None
        total = struct.unpack('>H', frame[off + 2:off + 4])[0]
        src, dst, t = frame[off + 12:off + 16], frame[off + 16:off + 20], off + ihl
        end = off + total
    elif ver == 6:
        if frame[off + 6] != 6:
            return None
        plen = struct.unpack('>H', frame[off + 4:off + 6])[0]
        src, dst, t = frame[off + 8:off + 24], frame[off + 24:off + 40], off + 40
        end = t + plen
    else:
        return None
    if len(frame) < t + 20:
        return None
    sport, dport, seq = struct.unpack('>HHI', frame[t:t + 8])
    hl = (frame[t + 12] >> 4) * 4
    return src, dst, sport, dport, seq, frame[t + 13], frame[t + hl:end]

def dns_name(name):
    return b''.join(bytes([len(l)]) + l.encode() for l in name.split('.') if l) + b'\x00'


def dns_seeds(out):
    """MX responses as a resolver returns them (RFC 1035): plain names, compressed names
    (pointers to the question and to earlier answers), no answer, a null MX."""
    d = os.path.join(out, 'dns')
    q = dns_name('example.org')
    header = lambda an: struct.pack('>HHHHHH', 0x1234, 0x8180, 1, an, 0, 0)
    question = q + struct.pack('>HH', 15, 1)
    def mx(pref, target, owner=b'\xc0\x0c'):
        rdata = struct.pack('>H', pref) + target
        return owner + struct.pack('>HHIH', 15, 1, 300, len(rdata)) + rdata
    seeds = {
        'two-mx': header(2) + question + mx(10, dns_name('mx.example.org')) + mx(20, b'\x07refused\xc0\x0c'),
        'compressed': header(1) + question + mx(5, b'\x02mx\xc0\x0c'),
        'none': header(0) + question,
        'null-mx': header(1) + question + mx(0, b'\x00'),
    }
    for name, body in seeds.items():
        open(os.path.join(d, name), 'wb').write(body)


def main():
    src_dir, out = sys.argv[1], sys.argv[2]
    for sub in ('pcap', 'pcapng', 'gzip', 'decode', 'ipframes', 'reassembly', 'smtp', 'tls', 'dns'):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    dns_seeds(out)
    captures = []
    dlt_index = {0: 0, 1: 1, 12: 2, 108: 3, 113: 4, 228: 5, 229: 6, 276: 7}
    for name in sorted(os.listdir(src_dir)):
        if not name.endswith('.pcap'):
            continue
        path = os.path.join(src_dir, name)
        base = name[:-5]
        if os.path.getsize(path) <= 64 * 1024:
            open(os.path.join(out, 'pcap', base), 'wb').write(open(path, 'rb').read())
        link, fs = frames(path)
        captures.append((base, link, fs))
        if link is None:
            continue
        for i, f in enumerate(fs[:12]):
            open(os.path.join(out, 'decode', '%s-%d' % (base, i)), 'wb').write(bytes([dlt_index.get(link, 1)]) + f)
        # Frame sequences for the reassembler: [link][length][frame]..., as many frames from
        # the start as fit in the fuzzer's 16 KiB inputs.
        seq = b''
        for f in fs:
            item = bytes([dlt_index.get(link, 1)]) + struct.pack('>H', len(f)) + f
            if len(seq) + len(item) > 16384:
                break
            seq += item
        open(os.path.join(out, 'ipframes', base), 'wb').write(seq)
        # Streams in capture order: one dialogue per connection, 0x00 between direction changes.
        conns, script = {}, bytearray()
        last_seq = {}
        for f in fs:
            t = tcp(link, f)
            if not t:
                continue
            s, d, sp, dp, seq, flags, payload = t
            server = dp in (25, 587, 465, 2525)
            key = (s, sp, d, dp) if server else (d, dp, s, sp)
            c = conns.setdefault(key, {'dir': 'S', 'buf': bytearray(b'\x08'), 'port': key[3]})
            if payload:
                direction = 'C' if server else 'S'
                if direction != c['dir']:
                    c['buf'] += b'\x00'
                    c['dir'] = direction
                c['buf'] += payload
            # reassembly script: [flags][dir+len][seq delta][payload<=127]
            dkey = (key, server)
            delta = (seq - last_seq.get(dkey, seq)) & 0xffff if dkey in last_seq else 0
            chunk = payload[:127]
            script += bytes([flags & 0x1f, (0 if server else 0x80) | len(chunk)]) + struct.pack('>H', delta) + chunk
            last_seq[dkey] = seq + len(payload)
        if script:
            open(os.path.join(out, 'reassembly', base), 'wb').write(bytes(script[:8192]))
        for i, c in enumerate(conns.values()):
            kind = 'tls' if c['port'] == 465 or b'STARTTLS' in c['buf'] else 'smtp'
            open(os.path.join(out, kind, '%s-%d' % (base, i)), 'wb').write(bytes(c['buf'][:16384]))
            if kind == 'tls':
                open(os.path.join(out, 'smtp', '%s-%d' % (base, i)), 'wb').write(bytes(c['buf'][:16384]))
    pcapng_seeds(src_dir, out, captures)
    gzip_seeds(out)


def gzip_seeds(out):
    """gzip seeds: the pcap and pcapng seeds as they are (the harness compresses them), and a
    few compressed outright (the harness reads those as the .gz file itself), whole and cut."""
    import gzip
    for kind in ('pcap', 'pcapng'):
        names = sorted(os.listdir(os.path.join(out, kind)))
        for name in names[:24]:
            data = open(os.path.join(out, kind, name), 'rb').read()
            open(os.path.join(out, 'gzip', kind + '-' + name), 'wb').write(data)
        for name in names[:4]:
            packed = gzip.compress(open(os.path.join(out, kind, name), 'rb').read(), mtime=0)
            open(os.path.join(out, 'gzip', 'gz-' + kind + '-' + name), 'wb').write(packed)
            open(os.path.join(out, 'gzip', 'gzcut-' + kind + '-' + name), 'wb').write(packed[:len(packed) // 2])

if __name__ == '__main__':
    main()
