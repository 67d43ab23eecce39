/*
 * gen-capture: deterministic (by seed) generator of large, realistic synthetic SMTP captures.
 *
 * Writes a classic pcap file (little-endian, microsecond timestamps, LINKTYPE_ETHERNET) of many
 * complete TCP sessions to port 25, about 64 interleaved at a time (IPv4 mostly, some IPv6;
 * addresses only from 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32). Each session has a
 * three-way handshake, data segments of at most one MSS (1448 bytes over IPv4, 1428 over IPv6,
 * both with the TCP timestamp option, so every packet fits a 1500-byte MTU) with correct
 * seq/ack numbers and checksums, a pure ACK from the receiver every second full segment, and a
 * FIN/ACK close in both directions.
 *
 * Session kinds (chosen per session by the seeded PRNG):
 *   ~40% starttls   EHLO reply offers STARTTLS, STARTTLS/220, TLS 1.3 ClientHello (SNI,
 *                   supported_versions 0x0304), ServerHello (0x0304, cipher 0x1302) + CCS,
 *                   then application-data records (random bytes) in both directions; the
 *                   client's records total about --message-size.
 *   ~35% plaintext  no STARTTLS offered; MAIL/RCPT (1-3)/DATA/354, a dot-stuffed body of about
 *                   --message-size bytes, "\r\n.\r\n", 250, QUIT/221.
 *   ~15% stripped   as plaintext but the EHLO reply shows "250-XXXXXXXA" where STARTTLS was.
 *   ~10% pipelined  EHLO offers PIPELINING; MAIL+RCPT+DATA in one segment, 250+250+354 in one
 *                   segment, body; twice per session.
 *
 * Usage: gen-capture --seed N --size BYTES --out FILE [--expected FILE.json]
 *                    [--concurrency 64] [--message-size 40960]
 *        gen-capture --seed N --out FILE --hostile synflood|longline|endless-reply|bdat-huge|ooo-far|buffers|fragflood|tunnelbomb
 *                    [--expected FILE.json]
 * BYTES accepts K, M, G suffixes (powers of 1024).
 */
#define _FILE_OFFSET_BITS 64
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- PRNG (xoshiro256**, seeded with splitmix64) ---------- */
static uint64_t rs[4];
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static inline uint64_t rnd(void) {
    uint64_t r = rotl(rs[1] * 5, 7) * 9, t = rs[1] << 17;
    rs[2] ^= rs[0]; rs[3] ^= rs[1]; rs[1] ^= rs[2]; rs[0] ^= rs[3]; rs[2] ^= t; rs[3] = rotl(rs[3], 45);
    return r;
}
static inline uint32_t rndn(uint32_t n) { return (uint32_t)(((rnd() >> 32) * (uint64_t)n) >> 32); } /* [0,n) */
static inline uint32_t rndr(uint32_t lo, uint32_t hi) { return lo + rndn(hi - lo + 1); }      /* [lo,hi] */
static void seed_rng(uint64_t seed) { uint64_t x = seed; for (int i = 0; i < 4; i++) rs[i] = splitmix64(&x); }

static void die(const char *m) { fprintf(stderr, "gen-capture: %s\n", m); exit(2); }
static void *xmalloc(size_t n) { void *p = malloc(n); if (!p) die("out of memory"); return p; }
static void *xrealloc(void *p, size_t n) { p = realloc(p, n); if (!p) die("out of memory"); return p; }

/* ---------- output ---------- */
#define OUTBUF (8u << 20)
static uint8_t *ob;
static size_t obn;
static FILE *out;
static uint64_t file_bytes, pkt_count, pkt_bytes;
static void flush_out(void) {
    if (obn && fwrite(ob, 1, obn, out) != obn) { perror("gen-capture: write"); exit(2); }
    obn = 0;
}
static inline uint8_t *reserve(size_t n) { if (obn + n > OUTBUF) flush_out(); return ob + obn; }

/* ---------- precomputed payload sources ---------- */
enum { SRC_ARENA = 0, SRC_BODY, SRC_RAND, SRC_FILL };
static uint8_t *randbuf; static size_t randlen;
static uint8_t *bodybuf; static size_t bodylen;
static uint32_t *linestart; static size_t nlines;   /* offsets of every line start in bodybuf */
static uint8_t *fillbuf; static size_t filllen;     /* hostile-mode filler */

static const char *words[] = {
    "the", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are",
    "as", "with", "his", "they", "at", "be", "this", "have", "from", "or", "one", "had", "by",
    "word", "but", "not", "what", "all", "were", "we", "when", "your", "can", "said", "there",
    "use", "an", "each", "which", "she", "do", "how", "their", "if", "will", "up", "other",
    "about", "out", "many", "then", "them", "these", "so", "some", "her", "would", "make",
    "like", "him", "into", "time", "has", "look", "two", "more", "write", "go", "see", "number",
    "no", "way", "could", "people", "my", "than", "first", "water", "been", "call", "who",
    "invoice", "meeting", "quarterly", "report", "attached", "please", "regards", "thanks",
    "schedule", "delivery", "server", "mailbox", "Kind", "Best", "Hello", "Dear", "team",
};
#define NWORDS (sizeof words / sizeof words[0])
static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Text lines as they travel on the wire: CRLF-terminated, at most 998 characters, and every line
 * that begins with '.' is dot-stuffed ("..foo"), so no line is exactly "." inside a body. */
static void build_body(size_t len) {
    bodybuf = xmalloc(len + 2048);
    size_t cap = len / 16 + 16, n = 0, p = 0;
    linestart = xmalloc(cap * sizeof *linestart);
    int b64run = 0;
    while (p < len) {
        if (n == cap) { cap *= 2; linestart = xrealloc(linestart, cap * sizeof *linestart); }
        linestart[n++] = (uint32_t)p;
        uint32_t k = rndn(1000);
        if (b64run == 0 && k < 4) b64run = rndr(20, 400);       /* an "attachment" */
        if (b64run > 0) {                                         /* 76-char base64 lines */
            b64run--;
            for (int i = 0; i < 76; i++) bodybuf[p++] = b64[rndn(64)];
        } else if (k < 80) {                                      /* empty line (paragraph) */
        } else if (k < 110) {                                     /* starts with '.', stuffed */
            bodybuf[p++] = '.'; bodybuf[p++] = '.';
            if (rndn(3)) { const char *w = words[rndn(NWORDS)]; size_t wl = strlen(w); memcpy(bodybuf + p, w, wl); p += wl; }
        } else if (k < 113) {                                     /* a long line near the limit */
            size_t target = rndr(700, 998);
            size_t start = p;
            while (p - start < target) bodybuf[p++] = b64[rndn(64)];
            if (bodybuf[start] == '.') bodybuf[start] = 'x';
        } else {                                                  /* prose, up to ~78 chars */
            size_t target = rndr(20, 78), start = p;
            while (p - start < target) {
                const char *w = words[rndn(NWORDS)]; size_t wl = strlen(w);
                if (p - start + wl + 1 > 998) break;
                memcpy(bodybuf + p, w, wl); p += wl;
                bodybuf[p++] = (rndn(12) == 0) ? ',' : ' ';
            }
            p--;                                                  /* drop the trailing blank */
            if (rndn(8) == 0) bodybuf[p++] = '.';
        }
        bodybuf[p++] = '\r'; bodybuf[p++] = '\n';
    }
    bodylen = p; nlines = n;
}

/* ---------- session scripts ---------- */
typedef struct { uint8_t src; uint32_t off, len; } Chunk;
typedef struct { uint8_t dir, far; uint32_t c0, c1; uint64_t len; } Step;   /* dir 0 = client */

enum { K_STARTTLS, K_PLAIN, K_STRIPPED, K_PIPELINED, K_HOSTILE, NKINDS };
enum { ST_SYN, ST_SYNACK, ST_ACK, ST_DATA, ST_FIN1, ST_FIN2, ST_LASTACK, ST_DONE };

typedef struct {
    int kind, v6, state, messages;
    uint8_t caddr[16], saddr[16];
    uint16_t cport, sport;
    uint32_t seq[2], tsoff[2], tslast[2];
    uint16_t ipid[2];
    uint8_t cmac[6], smac[6];
    /* script */
    uint8_t *arena; size_t an, acap;
    Chunk *chunks; size_t cn, ccap;
    Step *steps; size_t sn, scap;
    /* cursor */
    size_t si, ci; uint32_t coff; uint64_t soff;
    int segs_unacked, pending_ack;   /* pending_ack: 1 + direction that owes a pure ACK */
    uint64_t planned;
} Session;

static uint64_t now_us;              /* capture clock */
static uint32_t msgsize = 40960;

static size_t arena_put(Session *s, const void *p, size_t n) {
    if (s->an + n > s->acap) { s->acap = (s->an + n) * 2 + 4096; s->arena = xrealloc(s->arena, s->acap); }
    size_t o = s->an; memcpy(s->arena + o, p, n); s->an += n; return o;
}
static void add_chunk(Session *s, int src, size_t off, size_t len) {
    if (!len) return;
    if (s->cn == s->ccap) { s->ccap = s->ccap * 2 + 64; s->chunks = xrealloc(s->chunks, s->ccap * sizeof(Chunk)); }
    /* merge with the previous chunk when contiguous (common for arena text) */
    if (s->steps[s->sn - 1].c1 > s->steps[s->sn - 1].c0) {   /* the step already has a chunk */
        Chunk *p = &s->chunks[s->cn - 1];
        if (p->src == src && p->off + p->len == off) { p->len += (uint32_t)len; s->steps[s->sn - 1].len += len; return; }
    }
    s->chunks[s->cn++] = (Chunk){ (uint8_t)src, (uint32_t)off, (uint32_t)len };
    s->steps[s->sn - 1].c1 = (uint32_t)s->cn;
    s->steps[s->sn - 1].len += len;
}
static void begin_step(Session *s, int dir) {
    if (s->sn == s->scap) { s->scap = s->scap * 2 + 32; s->steps = xrealloc(s->steps, s->scap * sizeof(Step)); }
    s->steps[s->sn++] = (Step){ (uint8_t)dir, 0, (uint32_t)s->cn, (uint32_t)s->cn, 0 };
}
static void text(Session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text(Session *s, const char *fmt, ...) {
    char tmp[2048]; va_list ap; va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap); va_end(ap);
    if (n < 0 || n >= (int)sizeof tmp) die("text too long");
    size_t o = arena_put(s, tmp, (size_t)n);
    add_chunk(s, SRC_ARENA, o, (size_t)n);
}
static void bytes(Session *s, const void *p, size_t n) { size_t o = arena_put(s, p, n); add_chunk(s, SRC_ARENA, o, n); }
static void randslice(Session *s, size_t n) {
    while (n) {
        size_t k = n < randlen / 2 ? n : randlen / 2;
        add_chunk(s, SRC_RAND, rndn((uint32_t)(randlen - k)), k);
        n -= k;
    }
}
static void fill(Session *s, uint64_t n) {     /* hostile filler, repeated */
    while (n) { size_t k = n < filllen ? (size_t)n : filllen; add_chunk(s, SRC_FILL, 0, k); n -= k; }
}
/* A body slice: whole lines from bodybuf totalling about n bytes. */
static void bodyslice(Session *s, size_t n) {
    if (n + 4096 > bodylen) n = bodylen - 4096;
    size_t start = linestart[rndn((uint32_t)nlines)];
    if (start + n + 2048 > bodylen) start = linestart[0];
    /* first line start at or after start + n */
    size_t lo = 0, hi = nlines, want = start + n;
    while (lo < hi) { size_t mid = (lo + hi) / 2; if (linestart[mid] < want) lo = mid + 1; else hi = mid; }
    size_t end = lo < nlines ? linestart[lo] : bodylen;
    add_chunk(s, SRC_BODY, start, end - start);
}

static const char *greeting = "220 mx.example.org ESMTP\r\n";

static void ehlo_reply(Session *s, int starttls, int masked, int pipelining) {
    text(s, "250-mx.example.org\r\n");
    if (pipelining) text(s, "250-PIPELINING\r\n");
    text(s, "250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n");
    if (starttls) text(s, "250-STARTTLS\r\n");
    if (masked) text(s, "250-XXXXXXXA\r\n");
    text(s, "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250 SMTPUTF8\r\n");
}

static unsigned msgid;
static void headers(Session *s, unsigned nrcpt, const char rcpts[][40]) {
    text(s, "Received: from client.example.net (client.example.net [198.51.100.%u])\r\n"
            "\tby mx.example.org (Postfix) with ESMTP id %08X\r\n\tfor <%s>; Thu, 1 Jan 2026 00:00:00 +0000 (UTC)\r\n",
         rndr(1, 254), (unsigned)rnd(), rcpts[0]);
    text(s, "From: Sender %u <sender%u@example.net>\r\nTo: %s", rndn(1000), rndn(1000), rcpts[0]);
    for (unsigned i = 1; i < nrcpt; i++) text(s, ", %s", rcpts[i]);
    text(s, "\r\nSubject: %s %s %u\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n"
            "Message-ID: <%u.%08X@client.example.net>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n",
         words[rndn(NWORDS)], words[rndn(NWORDS)], rndn(100000), ++msgid, (unsigned)rnd());
}
static size_t vary(size_t n) { return n / 2 + rndn((uint32_t)n + 1); }   /* n * [0.5, 1.5] */

/* One DATA transaction; pipelined: MAIL+RCPT+DATA in one segment and the replies in one. */
static void transaction(Session *s, int pipelined) {
    unsigned nrcpt = rndr(1, 3);
    char rcpts[3][40];
    for (unsigned i = 0; i < nrcpt; i++) snprintf(rcpts[i], sizeof rcpts[i], "user%u@example.org", rndn(100000));
    unsigned sender = rndn(100000);
    if (pipelined) {
        begin_step(s, 0);
        text(s, "MAIL FROM:<sender%u@example.net> SIZE=%u\r\n", sender, msgsize);
        for (unsigned i = 0; i < nrcpt; i++) text(s, "RCPT TO:<%s>\r\n", rcpts[i]);
        text(s, "DATA\r\n");
        begin_step(s, 1);
        text(s, "250 2.1.0 Ok\r\n");
        for (unsigned i = 0; i < nrcpt; i++) text(s, "250 2.1.5 Ok\r\n");
        text(s, "354 End data with <CR><LF>.<CR><LF>\r\n");
    } else {
        begin_step(s, 0); text(s, "MAIL FROM:<sender%u@example.net>\r\n", sender);
        begin_step(s, 1); text(s, "250 2.1.0 Ok\r\n");
        for (unsigned i = 0; i < nrcpt; i++) {
            begin_step(s, 0); text(s, "RCPT TO:<%s>\r\n", rcpts[i]);
            begin_step(s, 1); text(s, "250 2.1.5 Ok\r\n");
        }
        begin_step(s, 0); text(s, "DATA\r\n");
        begin_step(s, 1); text(s, "354 End data with <CR><LF>.<CR><LF>\r\n");
    }
    begin_step(s, 0);
    headers(s, nrcpt, (const char (*)[40])rcpts);
    bodyslice(s, vary(msgsize));
    text(s, ".\r\n");
    begin_step(s, 1); text(s, "250 2.0.0 Ok: queued as %08X\r\n", (unsigned)rnd());
    s->messages++;
}

static void put16(uint8_t *p, unsigned v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put24(uint8_t *p, unsigned v) { p[0] = (uint8_t)(v >> 16); p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)v; }
static void randfill(uint8_t *p, size_t n) { for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rnd(); }

static void client_hello(Session *s) {
    uint8_t b[512]; size_t p = 0;
    b[p++] = 22; put16(b + p, 0x0301); p += 2; size_t reclen = p; p += 2;
    b[p++] = 1; size_t hslen = p; p += 3;
    put16(b + p, 0x0303); p += 2;
    randfill(b + p, 32); p += 32;                               /* random */
    b[p++] = 32; randfill(b + p, 32); p += 32;                  /* legacy session id */
    static const uint16_t suites[] = { 0x1302, 0x1303, 0x1301, 0xc02c, 0xc030, 0xc02b, 0xc02f, 0xcca9, 0xcca8, 0x009f, 0x009e, 0x00ff };
    put16(b + p, sizeof suites); p += 2;
    for (size_t i = 0; i < sizeof suites / 2; i++) { put16(b + p, suites[i]); p += 2; }
    b[p++] = 1; b[p++] = 0;                                     /* compression: null */
    size_t extlen = p; p += 2;
    static const char sni[] = "mx.example.org";
    put16(b + p, 0x0000); put16(b + p + 2, 5 + sizeof sni - 1); put16(b + p + 4, 3 + sizeof sni - 1);
    b[p + 6] = 0; put16(b + p + 7, sizeof sni - 1); memcpy(b + p + 9, sni, sizeof sni - 1); p += 9 + sizeof sni - 1;
    static const uint8_t ec[] = { 0x00, 0x0b, 0x00, 0x04, 0x03, 0x00, 0x01, 0x02 };                  /* ec_point_formats */
    static const uint8_t groups[] = { 0x00, 0x0a, 0x00, 0x08, 0x00, 0x06, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18 };
    static const uint8_t etm[] = { 0x00, 0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00 };                  /* encrypt_then_mac, ems */
    static const uint8_t sigalgs[] = { 0x00, 0x0d, 0x00, 0x0e, 0x00, 0x0c, 0x04, 0x03, 0x05, 0x03, 0x08, 0x04, 0x08, 0x05, 0x04, 0x01, 0x05, 0x01 };
    static const uint8_t versions[] = { 0x00, 0x2b, 0x00, 0x05, 0x04, 0x03, 0x04, 0x03, 0x03 };     /* TLS1.3, TLS1.2 */
    static const uint8_t psk[] = { 0x00, 0x2d, 0x00, 0x02, 0x01, 0x01 };
    memcpy(b + p, ec, sizeof ec); p += sizeof ec;
    memcpy(b + p, groups, sizeof groups); p += sizeof groups;
    memcpy(b + p, etm, sizeof etm); p += sizeof etm;
    memcpy(b + p, sigalgs, sizeof sigalgs); p += sizeof sigalgs;
    memcpy(b + p, versions, sizeof versions); p += sizeof versions;
    memcpy(b + p, psk, sizeof psk); p += sizeof psk;
    put16(b + p, 0x0033); put16(b + p + 2, 38); put16(b + p + 4, 36); put16(b + p + 6, 0x001d); put16(b + p + 8, 32);
    randfill(b + p + 10, 32); p += 42;                          /* key_share x25519 */
    put16(b + extlen, (unsigned)(p - extlen - 2));
    put24(b + hslen, (unsigned)(p - hslen - 3));
    put16(b + reclen, (unsigned)(p - reclen - 2));
    bytes(s, b, p);
}
static void server_hello(Session *s) {
    uint8_t b[256]; size_t p = 0;
    b[p++] = 22; put16(b + p, 0x0303); p += 2; size_t reclen = p; p += 2;
    b[p++] = 2; size_t hslen = p; p += 3;
    put16(b + p, 0x0303); p += 2;
    randfill(b + p, 32); p += 32;
    b[p++] = 32; randfill(b + p, 32); p += 32;                  /* echoes a session id (random here) */
    put16(b + p, 0x1302); p += 2; b[p++] = 0;
    size_t extlen = p; p += 2;
    put16(b + p, 0x002b); put16(b + p + 2, 2); put16(b + p + 4, 0x0304); p += 6;
    put16(b + p, 0x0033); put16(b + p + 2, 36); put16(b + p + 4, 0x001d); put16(b + p + 6, 32); randfill(b + p + 8, 32); p += 40;
    put16(b + extlen, (unsigned)(p - extlen - 2));
    put24(b + hslen, (unsigned)(p - hslen - 3));
    put16(b + reclen, (unsigned)(p - reclen - 2));
    static const uint8_t ccs[] = { 20, 3, 3, 0, 1, 1 };
    memcpy(b + p, ccs, sizeof ccs); p += sizeof ccs;
    bytes(s, b, p);
}
/* Application-data records (type 23) carrying n bytes of "ciphertext" in records of at most
 * 16384 + 17 bytes (TLS 1.3 inner content type + AEAD tag). */
static void appdata(Session *s, size_t n) {
    while (n) {
        size_t k = n < 16384 ? n : 16384;
        uint8_t h[5] = { 23, 3, 3 }; put16(h + 3, (unsigned)(k + 17));
        bytes(s, h, 5);
        randslice(s, k + 17);
        n -= k;
    }
}

static void script_smtp(Session *s) {
    begin_step(s, 1); text(s, "%s", greeting);
    begin_step(s, 0); text(s, "EHLO client.example.net\r\n");
    begin_step(s, 1);
    switch (s->kind) {
    case K_STARTTLS:
        ehlo_reply(s, 1, 0, 1);
        begin_step(s, 0); text(s, "STARTTLS\r\n");
        begin_step(s, 1); text(s, "220 2.0.0 Ready to start TLS\r\n");
        begin_step(s, 0); client_hello(s);
        begin_step(s, 1); server_hello(s); appdata(s, rndr(1800, 4200));   /* EE, Certificate, CV, Finished */
        begin_step(s, 0); { static const uint8_t ccs[] = { 20, 3, 3, 0, 1, 1 }; bytes(s, ccs, 6); } appdata(s, 36);
        begin_step(s, 0); appdata(s, 25);                                   /* EHLO */
        begin_step(s, 1); appdata(s, rndr(150, 260));                       /* EHLO reply */
        begin_step(s, 0); appdata(s, rndr(70, 160));                        /* MAIL, RCPT, DATA */
        begin_step(s, 1); appdata(s, rndr(60, 110));                        /* 250, 250, 354 */
        begin_step(s, 0); appdata(s, vary(msgsize));                        /* message */
        begin_step(s, 1); appdata(s, rndr(30, 50));                         /* 250 queued */
        begin_step(s, 0); appdata(s, 6); appdata(s, 2);                     /* QUIT, close_notify */
        begin_step(s, 1); appdata(s, 20); appdata(s, 2);                    /* 221, close_notify */
        return;
    case K_PLAIN:     ehlo_reply(s, 0, 0, rndn(2)); transaction(s, 0); break;
    case K_STRIPPED:  ehlo_reply(s, 0, 1, rndn(2)); transaction(s, 0); break;
    case K_PIPELINED: ehlo_reply(s, rndn(2), 0, 1); transaction(s, 1); transaction(s, 1); break;
    }
    begin_step(s, 0); text(s, "QUIT\r\n");
    begin_step(s, 1); text(s, "221 2.0.0 Bye\r\n");
}

/* ---------- packet writer ---------- */
static uint32_t csum_add(const uint8_t *p, size_t n, uint64_t sum) {
    while (n >= 8) { uint64_t w; memcpy(&w, p, 8); sum += (w & 0xffffffffu) + (w >> 32); p += 8; n -= 8; }
    while (n >= 2) { uint16_t w; memcpy(&w, p, 2); sum += w; p += 2; n -= 2; }
    if (n) sum += *p;                          /* little-endian host: the odd byte is the low half */
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint32_t)sum;
}
#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_PSH 0x08
#define F_ACK 0x10

static void tick(void) { now_us += 1 + rndn(120); }

static unsigned mss(const Session *s) { return s->v6 ? 1428 : 1448; }

/* Writes one packet from direction dir with the given flags and the next plen payload bytes
 * gathered from the session's chunks. */
static void emit(Session *s, int dir, unsigned flags, uint32_t seq, uint32_t ack, size_t plen) {
    tick();
    int syn = flags & F_SYN;
    size_t tcph = syn ? 40 : 32, iph = s->v6 ? 40 : 20;
    size_t caplen = 14 + iph + tcph + plen;
    uint8_t *rec = reserve(16 + caplen);
    uint32_t hdr[4] = { (uint32_t)(now_us / 1000000), (uint32_t)(now_us % 1000000), (uint32_t)caplen, (uint32_t)caplen };
    memcpy(rec, hdr, 16);
    uint8_t *e = rec + 16;
    memcpy(e, dir ? s->cmac : s->smac, 6); memcpy(e + 6, dir ? s->smac : s->cmac, 6);
    put16(e + 12, s->v6 ? 0x86dd : 0x0800);
    uint8_t *ip = e + 14, *tcp = ip + iph, *data = tcp + tcph;
    const uint8_t *src = dir ? s->saddr : s->caddr, *dst = dir ? s->caddr : s->saddr;
    size_t tcplen = tcph + plen;
    /* payload first: the checksum covers it */
    if (plen) {
        {
            size_t left = plen; uint8_t *d = data;
            while (left) {
                Chunk *c = &s->chunks[s->ci];
                size_t k = c->len - s->coff; if (k > left) k = left;
                const uint8_t *base = c->src == SRC_ARENA ? s->arena : c->src == SRC_BODY ? bodybuf : c->src == SRC_RAND ? randbuf : fillbuf;
                memcpy(d, base + c->off + s->coff, k);
                d += k; left -= k; s->coff += (uint32_t)k;
                if (s->coff == c->len) { s->ci++; s->coff = 0; }
            }
        }
    }
    /* TCP header */
    put16(tcp, dir ? s->sport : s->cport); put16(tcp + 2, dir ? s->cport : s->sport);
    tcp[4] = (uint8_t)(seq >> 24); tcp[5] = (uint8_t)(seq >> 16); tcp[6] = (uint8_t)(seq >> 8); tcp[7] = (uint8_t)seq;
    if (!(flags & F_ACK)) ack = 0;
    tcp[8] = (uint8_t)(ack >> 24); tcp[9] = (uint8_t)(ack >> 16); tcp[10] = (uint8_t)(ack >> 8); tcp[11] = (uint8_t)ack;
    tcp[12] = (uint8_t)((tcph / 4) << 4); tcp[13] = (uint8_t)flags;
    put16(tcp + 14, syn ? 64240 : 501);       /* scaled by 2^7 after the handshake: ~64 KB */
    tcp[16] = tcp[17] = 0; tcp[18] = tcp[19] = 0;
    uint32_t tsval = (uint32_t)(now_us / 1000) + s->tsoff[dir], tsecr = s->tslast[!dir];
    s->tslast[dir] = tsval;
    uint8_t *o = tcp + 20;
    if (syn) {
        o[0] = 2; o[1] = 4; put16(o + 2, mss(s)); o[4] = 4; o[5] = 2;      /* MSS, SACK permitted */
        o[6] = 8; o[7] = 10; o += 8;
    } else {
        o[0] = 1; o[1] = 1; o[2] = 8; o[3] = 10; o += 4;
    }
    o[0] = (uint8_t)(tsval >> 24); o[1] = (uint8_t)(tsval >> 16); o[2] = (uint8_t)(tsval >> 8); o[3] = (uint8_t)tsval;
    o[4] = (uint8_t)(tsecr >> 24); o[5] = (uint8_t)(tsecr >> 16); o[6] = (uint8_t)(tsecr >> 8); o[7] = (uint8_t)tsecr;
    if (syn) { o[8] = 1; o[9] = 3; o[10] = 3; o[11] = 7; }             /* NOP, window scale 7 */
    /* IP header + pseudo-header checksum */
    uint8_t ph[40]; size_t phn;
    if (s->v6) {
        uint32_t flow = 0x60000000u | ((uint32_t)(s->cport * 2654435761u) & 0xfffff);
        ip[0] = (uint8_t)(flow >> 24); ip[1] = (uint8_t)(flow >> 16); ip[2] = (uint8_t)(flow >> 8); ip[3] = (uint8_t)flow;
        put16(ip + 4, (unsigned)tcplen); ip[6] = 6; ip[7] = 64;
        memcpy(ip + 8, src, 16); memcpy(ip + 24, dst, 16);
        memcpy(ph, src, 16); memcpy(ph + 16, dst, 16);
        ph[32] = 0; ph[33] = 0; put16(ph + 34, (unsigned)tcplen); ph[36] = ph[37] = ph[38] = 0; ph[39] = 6; phn = 40;
    } else {
        ip[0] = 0x45; ip[1] = 0; put16(ip + 2, (unsigned)(20 + tcplen)); put16(ip + 4, s->ipid[dir]++);
        ip[6] = 0x40; ip[7] = 0; ip[8] = 64; ip[9] = 6; ip[10] = ip[11] = 0;
        memcpy(ip + 12, src, 4); memcpy(ip + 16, dst, 4);
        uint16_t c = (uint16_t)~csum_add(ip, 20, 0); memcpy(ip + 10, &c, 2);
        memcpy(ph, src, 4); memcpy(ph + 4, dst, 4); ph[8] = 0; ph[9] = 6; put16(ph + 10, (unsigned)tcplen); phn = 12;
    }
    uint16_t c = (uint16_t)~csum_add(tcp, tcplen, csum_add(ph, phn, 0)); memcpy(tcp + 16, &c, 2);
    obn += 16 + caplen;
    file_bytes += 16 + caplen; pkt_count++; pkt_bytes += caplen;
}

/* Emits the session's next packet; returns 0 when the session is finished. */
static int step_session(Session *s) {
    switch (s->state) {
    case ST_SYN:    emit(s, 0, F_SYN, s->seq[0]++, 0, 0); s->state = ST_SYNACK; return 1;
    case ST_SYNACK: emit(s, 1, F_SYN | F_ACK, s->seq[1]++, s->seq[0], 0); s->state = ST_ACK; return 1;
    case ST_ACK:    emit(s, 0, F_ACK, s->seq[0], s->seq[1], 0); s->state = ST_DATA; return 1;
    case ST_DATA: {
        if (s->pending_ack) {
            int d = s->pending_ack - 1; s->pending_ack = 0;
            emit(s, d, F_ACK, s->seq[d], s->seq[!d], 0);
            return 1;
        }
        Step *st = &s->steps[s->si];
        int d = st->dir;
        uint64_t left = st->len - s->soff;
        size_t n = left < mss(s) ? (size_t)left : mss(s);
        uint32_t seq = st->far ? s->seq[d] + 1000000000u + (uint32_t)s->soff : s->seq[d];
        emit(s, d, F_ACK | (n == left ? F_PSH : 0), seq, s->seq[!d], n);
        s->soff += n;
        if (!st->far) s->seq[d] += (uint32_t)n;
        if (s->soff == st->len) {
            s->si++; s->soff = 0; s->segs_unacked = 0;
            if (s->si == s->sn) s->state = ST_FIN1;
            else if (s->steps[s->si].dir == d) s->pending_ack = 1 + !d;
        } else if (++s->segs_unacked == 2) {
            s->segs_unacked = 0; s->pending_ack = 1 + !d;
        }
        return 1;
    }
    case ST_FIN1:    emit(s, 1, F_FIN | F_ACK, s->seq[1]++, s->seq[0], 0); s->state = ST_FIN2; return 1;
    case ST_FIN2:    emit(s, 0, F_FIN | F_ACK, s->seq[0]++, s->seq[1], 0); s->state = ST_LASTACK; return 1;
    case ST_LASTACK: emit(s, 1, F_ACK, s->seq[1], s->seq[0], 0); s->state = ST_DONE; return 0;
    }
    return 0;
}

static uint64_t nsessions;
static void init_session(Session *s, int kind, int v6) {
    s->kind = kind; s->v6 = v6; s->state = ST_SYN; s->messages = 0;
    s->an = s->cn = s->sn = 0; s->si = s->ci = 0; s->coff = 0; s->soff = 0;
    s->segs_unacked = 0; s->pending_ack = 0;
    uint64_t k = nsessions++;
    /* client addresses cycle through the pool; the port advances once per cycle, so 4-tuples
     * never repeat before ~7 million sessions */
    memset(s->caddr, 0, 16); memset(s->saddr, 0, 16);
    if (v6) {
        static const uint8_t c6[] = { 0x20, 0x01, 0x0d, 0xb8, 0, 1 }, s6[] = { 0x20, 0x01, 0x0d, 0xb8, 0, 2 };
        memcpy(s->caddr, c6, 6); memcpy(s->saddr, s6, 6);
        s->caddr[14] = (uint8_t)((k % 254) >> 8); s->caddr[15] = (uint8_t)(k % 254 + 1);
        s->saddr[15] = (uint8_t)(0x20 + rndr(1, 16));
    } else {
        s->caddr[0] = 198; s->caddr[1] = 51; s->caddr[2] = 100; s->caddr[3] = (uint8_t)(k % 254 + 1);
        s->saddr[0] = 203; s->saddr[1] = 0; s->saddr[2] = 113; s->saddr[3] = (uint8_t)rndr(1, 32);
    }
    s->cport = (uint16_t)(32768 + (k / 254) % 28000);
    s->sport = 25;
    s->seq[0] = (uint32_t)rnd(); s->seq[1] = (uint32_t)rnd();
    s->tsoff[0] = (uint32_t)rnd(); s->tsoff[1] = (uint32_t)rnd(); s->tslast[0] = s->tslast[1] = 0;
    s->ipid[0] = (uint16_t)rnd(); s->ipid[1] = (uint16_t)rnd();
    static const uint8_t cm[6] = { 0x02, 0x00, 0x5e, 0x10, 0x00, 0x01 }, sm[6] = { 0x02, 0x00, 0x5e, 0x10, 0x00, 0x02 };
    memcpy(s->cmac, cm, 6); memcpy(s->smac, sm, 6);
}
static void finish_plan(Session *s) {
    uint64_t payload = 0, segs = 0;
    for (size_t i = 0; i < s->sn; i++) { payload += s->steps[i].len; segs += s->steps[i].len / mss(s) + 1; }
    uint64_t pkts = 7 + segs + segs / 2 + s->sn;
    s->planned = payload + pkts * (16 + 14 + (s->v6 ? 40 : 20) + 32);
}

static void write_pcap_header(void) {
    uint32_t h[6] = { 0xa1b2c3d4, 0x00040002, 0, 0, 262144, 1 };
    memcpy(reserve(24), h, 24); obn += 24; file_bytes += 24;
}

static uint64_t parse_size(const char *a) {
    char *end; errno = 0;
    double v = strtod(a, &end);
    if (errno || end == a || v < 0) die("bad size");
    switch (*end) {
    case 'k': case 'K': v *= 1024.0; end++; break;
    case 'm': case 'M': v *= 1048576.0; end++; break;
    case 'g': case 'G': v *= 1073741824.0; end++; break;
    case 't': case 'T': v *= 1099511627776.0; end++; break;
    }
    if (*end == 'i') end++;
    if (*end == 'B' || *end == 'b') end++;
    if (*end) die("bad size suffix");
    return (uint64_t)v;
}

static void usage(void) {
    fprintf(stderr,
            "usage: gen-capture --seed N --size BYTES --out FILE [--expected FILE.json] [--concurrency 64]\n"
            "                   [--message-size 40960]\n"
            "       gen-capture --seed N --out FILE --hostile synflood|longline|endless-reply|bdat-huge|ooo-far|buffers|fragflood|tunnelbomb\n"
            "                   [--expected FILE.json]\n");
    exit(2);
}

/* ---------- hostile captures ---------- */
static void hostile_session(Session *s, const char *mode) {
    init_session(s, K_HOSTILE, 0);
    s->caddr[3] = 66; s->saddr[3] = 25; s->cport = 40000;
    begin_step(s, 1); text(s, "%s", greeting);
    if (!strcmp(mode, "longline")) {
        /* 64 MiB command line with no LF (then the client gives up and closes) */
        filllen = 8u << 20; fillbuf = xmalloc(filllen); memset(fillbuf, 'A', filllen);
        begin_step(s, 0); text(s, "EHLO "); fill(s, 64ull << 20);
        return;
    }
    begin_step(s, 0); text(s, "EHLO client.example.net\r\n");
    if (!strcmp(mode, "endless-reply")) {
        /* 100 MiB of "250-" continuation lines, never a final "250 " line */
        filllen = 8u << 20; fillbuf = xmalloc(filllen);
        size_t p = 0;
        while (p + 80 <= filllen) { memcpy(fillbuf + p, "250-", 4); for (int i = 4; i < 78; i++) fillbuf[p + i] = b64[rndn(52)]; fillbuf[p + 78] = '\r'; fillbuf[p + 79] = '\n'; p += 80; }
        filllen = p;
        begin_step(s, 1); text(s, "250-mx.example.org\r\n"); fill(s, 100ull << 20);
        return;
    }
    begin_step(s, 1); text(s, "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n");
    if (!strcmp(mode, "bdat-huge")) {
        begin_step(s, 0); text(s, "MAIL FROM:<sender@example.net>\r\n");
        begin_step(s, 1); text(s, "250 2.1.0 Ok\r\n");
        begin_step(s, 0); text(s, "RCPT TO:<user@example.org>\r\n");
        begin_step(s, 1); text(s, "250 2.1.5 Ok\r\n");
        begin_step(s, 0); text(s, "BDAT 9223372036854775807 LAST\r\n"); randslice(s, 200ull << 20);
        return;
    }
    if (!strcmp(mode, "ooo-far")) {
        /* 100k segments, all 1 GB ahead of the next expected sequence number; never filled in */
        begin_step(s, 0); s->steps[s->sn - 1].far = 1; randslice(s, 100000ull * 1448);
        begin_step(s, 0); text(s, "QUIT\r\n");
        begin_step(s, 1); text(s, "221 2.0.0 Bye\r\n");
        return;
    }
    die("unknown --hostile mode");
}

static void synflood(void) {
    Session s = { 0 };
    init_session(&s, K_HOSTILE, 0);
    s.saddr[3] = 25;
    for (uint32_t i = 0; i < 1000000; i++) {
        s.caddr[3] = (uint8_t)(1 + i % 254);
        s.cport = (uint16_t)(1024 + i / 254);
        s.seq[0] = (uint32_t)rnd();
        s.tslast[1] = 0;
        emit(&s, 0, F_SYN, s.seq[0], 0, 0);
    }
}

/* 20,000 connections open at once, each leaving its SMTP machine with a buffer to fill: even
 * ones stop inside the TLS handshake (16,000 bytes of a 16 KiB handshake record each way), odd
 * ones send DATA and 60,000 bytes of content before the server's 354 (held until the reply).
 * Without a budget on those buffers this needs over a GiB; none of the connections ends. */
static uint64_t buffers(void) {
    enum { N = 20000 };
    Session *ss = calloc(N, sizeof *ss);
    if (!ss) die("out of memory");
    static const uint8_t hs[5] = { 22, 3, 3, 0x40, 0x00 };
    for (unsigned i = 0; i < N; i++) {
        Session *s = &ss[i];
        init_session(s, K_HOSTILE, 0);
        s->caddr[3] = (uint8_t)(1 + i % 254); s->cport = (uint16_t)(1024 + i / 254); s->saddr[3] = 25;
        begin_step(s, 1); text(s, "%s", greeting);
        begin_step(s, 0); text(s, "EHLO client.example.net\r\n");
        begin_step(s, 1); text(s, "250-mx.example.org\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n");
        if (i % 2 == 0) {
            begin_step(s, 0); text(s, "STARTTLS\r\n");
            begin_step(s, 1); text(s, "220 2.0.0 Ready to start TLS\r\n");
            begin_step(s, 0); bytes(s, hs, 5); { uint8_t t = 1; bytes(s, &t, 1); } randslice(s, 15999);
            begin_step(s, 1); bytes(s, hs, 5); { uint8_t t = 2; bytes(s, &t, 1); } randslice(s, 15999);
        } else {
            begin_step(s, 0); text(s, "MAIL FROM:<sender@example.net>\r\n");
            begin_step(s, 1); text(s, "250 2.1.0 Ok\r\n");
            begin_step(s, 0); text(s, "RCPT TO:<user@example.org>\r\n");
            begin_step(s, 1); text(s, "250 2.1.5 Ok\r\n");
            begin_step(s, 0); text(s, "DATA\r\n"); randslice(s, 60000);
        }
        finish_plan(s);
    }
    /* Round-robin one packet per connection until every one has sent all it has; no FINs. */
    for (int progressed = 1; progressed;) {
        progressed = 0;
        for (unsigned i = 0; i < N; i++) {
            if (ss[i].state == ST_FIN1) continue;
            step_session(&ss[i]);
            progressed = 1;
        }
    }
    return N;
}

/* One raw frame: Ethernet, then `iplen` bytes for the caller to fill (an IP packet), time
 * stamped now. */
static uint8_t *raw_frame(size_t iplen, unsigned ethertype) {
    tick();
    size_t caplen = 14 + iplen;
    uint8_t *rec = reserve(16 + caplen);
    uint32_t hdr[4] = { (uint32_t)(now_us / 1000000), (uint32_t)(now_us % 1000000), (uint32_t)caplen, (uint32_t)caplen };
    memcpy(rec, hdr, 16);
    uint8_t *e = rec + 16;
    static const uint8_t a[6] = { 2, 0, 0, 0, 0, 1 }, b[6] = { 2, 0, 0, 0, 0, 2 };
    memcpy(e, a, 6); memcpy(e + 6, b, 6);
    put16(e + 12, ethertype);
    /* Counted now; the caller fills the bytes before anything else is reserved. */
    obn += 16 + caplen;
    file_bytes += 16 + caplen; pkt_count++; pkt_bytes += caplen;
    return e + 14;
}

/* An IPv4 header (no options, checksum left 0: smtpcap does not check it). */
static void ipv4_header(uint8_t *ip, size_t total, unsigned id, unsigned frag, unsigned proto,
                        const uint8_t src[4], const uint8_t dst[4]) {
    ip[0] = 0x45; ip[1] = 0; put16(ip + 2, (unsigned)total); put16(ip + 4, id); put16(ip + 6, frag);
    ip[8] = 64; ip[9] = (uint8_t)proto; ip[10] = ip[11] = 0;
    memcpy(ip + 12, src, 4); memcpy(ip + 16, dst, 4);
}

/* 400,000 IPv4 fragments of datagrams that never complete: random ids, offsets up to 8 KB,
 * 256 bytes each, from 254 sources: the reassembler's caps (datagrams, bytes held) are what
 * keeps memory flat. */
static void fragflood(void) {
    static const uint8_t dst[4] = { 203, 0, 113, 25 };
    for (uint32_t i = 0; i < 400000; i++) {
        uint8_t src[4] = { 198, 51, 100, (uint8_t)(1 + i % 254) };
        uint8_t *ip = raw_frame(20 + 256, 0x0800);
        ipv4_header(ip, 20 + 256, (unsigned)rndn(65536), 0x2000 | (unsigned)rndn(1000), 6, src, dst);
        memcpy(ip + 20, randbuf + rndn(randlen - 256), 256);
    }
}

/* 200,000 packets of IP in IP: even ones nested 12 deep (past smtpcap's cap of 6: refused),
 * odd ones 6 deep with outer addresses never seen before, each carrying a SYN to port 25, so
 * every one is a new tunnel context and a new connection. */
static void tunnelbomb(void) {
    for (uint32_t i = 0; i < 200000; i++) {
        unsigned depth = i % 2 ? 6 : 12;
        size_t total = 20 * (depth + 1) + 20;
        uint8_t *ip = raw_frame(total, 0x0800);
        for (unsigned d = 0; d <= depth; d++) {
            uint8_t src[4] = { 198, 51, (uint8_t)(i >> 16), (uint8_t)(i >> 8) }, dst[4] = { 203, 0, (uint8_t)i, (uint8_t)d };
            if (d == depth) { src[0] = 198; src[1] = 51; src[2] = 100; src[3] = 10; dst[0] = 203; dst[1] = 0; dst[2] = 113; dst[3] = 25; }
            ipv4_header(ip, total - 20 * d, (unsigned)i, 0, d == depth ? 6 : 4, src, dst);
            ip += 20;
        }
        memset(ip, 0, 20);
        put16(ip, 1024 + (unsigned)(i % 60000)); put16(ip + 2, 25);
        uint32_t seq = (uint32_t)rnd();
        ip[4] = (uint8_t)(seq >> 24); ip[5] = (uint8_t)(seq >> 16); ip[6] = (uint8_t)(seq >> 8); ip[7] = (uint8_t)seq;
        ip[12] = 5 << 4; ip[13] = F_SYN;
    }
}

int main(int argc, char **argv) {
    uint64_t seed = 1, size = 0;
    const char *outp = NULL, *expp = NULL, *hostile = NULL;
    unsigned conc = 64;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--size")) size = parse_size(v);
        else if (!strcmp(a, "--out")) outp = v;
        else if (!strcmp(a, "--expected")) expp = v;
        else if (!strcmp(a, "--concurrency")) conc = (unsigned)strtoul(v, NULL, 0);
        else if (!strcmp(a, "--message-size")) msgsize = (uint32_t)parse_size(v);
        else if (!strcmp(a, "--hostile")) hostile = v;
        else usage();
    }
    if (!outp || (!hostile && !size) || conc == 0 || conc > 100000 || msgsize == 0 || msgsize > (256u << 20)) usage();
    seed_rng(seed);
    out = fopen(outp, "wb");
    if (!out) { perror(outp); return 2; }
    setvbuf(out, NULL, _IONBF, 0);
    ob = xmalloc(OUTBUF);
    now_us = 1767225600ull * 1000000 + (seed % 86400) * 1000000;   /* 2026-01-01 + seed seconds */

    randlen = 16u << 20;
    if (randlen < 4ull * msgsize) randlen = 4ull * msgsize;
    randbuf = xmalloc(randlen);
    for (size_t i = 0; i + 8 <= randlen; i += 8) { uint64_t r = rnd(); memcpy(randbuf + i, &r, 8); }

    uint64_t kinds[NKINDS] = { 0 }, messages = 0, sessions = 0;
    write_pcap_header();
    if (hostile) {
        if (!strcmp(hostile, "synflood")) synflood();
        else if (!strcmp(hostile, "fragflood")) fragflood();
        else if (!strcmp(hostile, "tunnelbomb")) tunnelbomb();
        else if (!strcmp(hostile, "buffers")) sessions = buffers();
        else {
            Session s = { 0 };
            hostile_session(&s, hostile);
            finish_plan(&s);
            while (step_session(&s)) {}
            sessions = 1;
        }
    } else {
        size_t blen = 8u << 20;
        if (blen < 3ull * msgsize + 65536) blen = 3ull * msgsize + 65536;
        build_body(blen);
        Session *slots = calloc(conc, sizeof *slots);
        Session **active = xmalloc(conc * sizeof *active), **freel = xmalloc(conc * sizeof *freel);
        if (!slots) die("out of memory");
        unsigned nactive = 0, nfree = conc;
        for (unsigned j = 0; j < conc; j++) freel[j] = &slots[conc - 1 - j];
        uint64_t planned = file_bytes;
        int stop = 0;
        for (;;) {
            while (!stop && nactive < conc) {
                if (planned >= size) { stop = 1; break; }
                Session *s = freel[--nfree];
                uint32_t r = rndn(100);
                int kind = r < 40 ? K_STARTTLS : r < 75 ? K_PLAIN : r < 90 ? K_STRIPPED : K_PIPELINED;
                init_session(s, kind, rndn(100) < 15);
                script_smtp(s);
                finish_plan(s);
                planned += s->planned;
                active[nactive++] = s;
            }
            if (nactive == 0) break;
            unsigned j = rndn(nactive);
            Session *s = active[j];
            if (!step_session(s)) {
                kinds[s->kind]++; sessions++;
                if (s->kind != K_STARTTLS) messages += (uint64_t)s->messages;
                active[j] = active[--nactive];
                freel[nfree++] = s;
            }
        }
    }
    flush_out();
    if (fclose(out) != 0) { perror("gen-capture: close"); return 2; }
    if (expp) {
        FILE *e = fopen(expp, "w");
        if (!e) { perror(expp); return 2; }
        fprintf(e, "{\"generator\":\"gen-capture 1\",\"seed\":%llu,\"mode\":\"%s\",\"message_size\":%u,\"concurrency\":%u,"
                   "\"sessions\":%llu,\"starttls_sessions\":%llu,\"plaintext_sessions\":%llu,"
                   "\"stripped_sessions\":%llu,\"pipelined_sessions\":%llu,\"plaintext_messages\":%llu,"
                   "\"packets\":%llu,\"bytes\":%llu,\"file_bytes\":%llu,"
                   "\"verdicts\":{\"encrypted\":%llu,\"plaintext\":%llu,\"stripped\":%llu,\"inconclusive\":0}}\n",
                (unsigned long long)seed, hostile ? hostile : "normal", msgsize, conc,
                (unsigned long long)sessions, (unsigned long long)kinds[K_STARTTLS], (unsigned long long)kinds[K_PLAIN],
                (unsigned long long)kinds[K_STRIPPED], (unsigned long long)kinds[K_PIPELINED], (unsigned long long)messages,
                (unsigned long long)pkt_count, (unsigned long long)pkt_bytes, (unsigned long long)file_bytes,
                (unsigned long long)kinds[K_STARTTLS], (unsigned long long)(kinds[K_PLAIN] + kinds[K_PIPELINED]),
                (unsigned long long)kinds[K_STRIPPED]);
        if (fclose(e) != 0) { perror(expp); return 2; }
    }
    return 0;
}
