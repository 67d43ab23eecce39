/*
 * pcap-floor: the floor for the benchmark. Opens a capture with pcap_open_offline and loops
 * pcap_next_ex over every packet, touching each packet's first byte and summing caplen, so the
 * loop cannot be optimized away. Prints the packet and byte counts.
 *
 * With -b BYTES it opens the file itself with a stdio buffer of that size (as smtpcap's
 * --no-mmap reader does, 65536) and hands it to pcap_fopen_offline: the same loop with fewer
 * read system calls.
 *
 * With -m it does not use libpcap's reader at all: it maps the file (as smtpcap's default
 * reader does for plain pcap files) and walks the records, reading one byte of every 64 of
 * each packet so every cache line of the data is brought in, as smtpcap's scans do. The
 * floor for a reader that copies nothing.
 *
 *   cc -O2 -o pcap-floor pcap-floor.c -lpcap
 *   pcap-floor [-b BYTES | -m] FILE
 */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Native-order pcap 2.4 only; the walk stops at the first record that does not fit. */
static int mapped_walk(const char *path) {
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) { perror("pcap-floor"); if (fd >= 0) close(fd); return 2; }
    if (st.st_size < 24) { fprintf(stderr, "pcap-floor: %s: shorter than a pcap file header\n", path); close(fd); return 2; }
    size_t size = (size_t)st.st_size;
    const uint8_t *base = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);  /* the mapping stays */
    if (base == MAP_FAILED) { perror("pcap-floor: mmap"); return 2; }
    madvise((void *)base, size, MADV_SEQUENTIAL);
    uint32_t magic;
    memcpy(&magic, base, 4);
    if (magic != 0xa1b2c3d4 && magic != 0xa1b23c4d) {
        fprintf(stderr, "pcap-floor: -m reads native-order pcap only\n");
        munmap((void *)base, size);
        return 2;
    }
    uint64_t packets = 0, bytes = 0, touch = 0;
    size_t at = 24, released = 0;
    const size_t step = 1 << 20;  /* as smtpcap's reader */
    while (at + 16 <= size) {
        uint32_t caplen;
        memcpy(&caplen, base + at + 8, 4);
        at += 16;
        if (caplen > size - at) break;
        for (uint32_t i = 0; i < caplen; i += 64) touch += base[at + i];
        at += caplen;
        packets++;
        bytes += caplen;
        /* Give back pages behind the walk, as smtpcap does, so its RSS is comparable. */
        if (at - released >= 2 * step) {
            size_t end = (at - step) & ~(size_t)4095;
            madvise((void *)(base + released), end - released, MADV_DONTNEED);
            released = end;
        }
    }
    munmap((void *)base, size);
    printf("packets %llu bytes %llu touch %llu\n", (unsigned long long)packets, (unsigned long long)bytes,
           (unsigned long long)touch);
    return 0;
}

int main(int argc, char **argv) {
    long buffer = 0;
    if (argc == 3 && strcmp(argv[1], "-m") == 0) return mapped_walk(argv[2]);
    if (argc == 4 && strcmp(argv[1], "-b") == 0) { buffer = atol(argv[2]); argv += 2; argc -= 2; }
    if (argc != 2 || buffer < 0) { fprintf(stderr, "usage: pcap-floor [-b BYTES | -m] FILE\n"); return 2; }
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p;
    char *vbuf = NULL;
    if (buffer > 0) {
        FILE *f = fopen(argv[1], "rb");
        if (!f) { perror("pcap-floor"); return 2; }
        vbuf = malloc((size_t)buffer);
        if (!vbuf || setvbuf(f, vbuf, _IOFBF, (size_t)buffer) != 0) { fprintf(stderr, "pcap-floor: setvbuf\n"); return 2; }
        p = pcap_fopen_offline(f, err);
        if (!p) fclose(f);
    } else {
        p = pcap_open_offline(argv[1], err);
    }
    if (!p) { fprintf(stderr, "pcap-floor: %s\n", err); return 2; }
    struct pcap_pkthdr *h;
    const u_char *data;
    uint64_t packets = 0, bytes = 0, touch = 0;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
        packets++;
        bytes += h->caplen;
        if (h->caplen) touch += data[0];
    }
    if (rc == PCAP_ERROR) { fprintf(stderr, "pcap-floor: %s\n", pcap_geterr(p)); pcap_close(p); return 2; }
    pcap_close(p);
    free(vbuf);
    printf("packets %llu bytes %llu touch %llu\n", (unsigned long long)packets, (unsigned long long)bytes,
           (unsigned long long)touch);
    return 0;
}
