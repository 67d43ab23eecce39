/*
 * pcap-floor: the floor for the benchmark. Opens a capture with pcap_open_offline and loops
 * pcap_next_ex over every packet, touching each packet's first byte and summing caplen, so the
 * loop cannot be optimized away. Prints the packet and byte counts.
 *
 *   cc -O2 -o pcap-floor pcap-floor.c -lpcap
 *   pcap-floor FILE
 */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: pcap-floor FILE\n"); return 2; }
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline(argv[1], err);
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
    printf("packets %llu bytes %llu touch %llu\n", (unsigned long long)packets, (unsigned long long)bytes,
           (unsigned long long)touch);
    return 0;
}
