/*
 * pcap-floor: the floor for the benchmark. Opens a capture with pcap_open_offline and loops
 * pcap_next_ex over every packet, touching each packet's first byte and summing caplen, so the
 * loop cannot be optimized away. Prints the packet and byte counts.
 *
 * With -b BYTES it opens the file itself with a stdio buffer of that size (as smtpcap does,
 * 65536) and hands it to pcap_fopen_offline: the same loop with fewer read system calls.
 *
 *   cc -O2 -o pcap-floor pcap-floor.c -lpcap
 *   pcap-floor [-b BYTES] FILE
 */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    long buffer = 0;
    if (argc == 4 && strcmp(argv[1], "-b") == 0) { buffer = atol(argv[2]); argv += 2; argc -= 2; }
    if (argc != 2 || buffer < 0) { fprintf(stderr, "usage: pcap-floor [-b BYTES] FILE\n"); return 2; }
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
