/*
 * pcap_loop.c: the floor for the smtptape benchmark.
 *
 * Opens a capture with pcap_open_offline() and calls pcap_next_ex() on every
 * packet, summing caplen. No decoding at all: this is the cost of just reading
 * the file through libpcap, which any pcap-based tool has to pay.
 *
 * Prints the packet count and the caplen sum so that the loop has an
 * observable result and cannot be optimised away.
 *
 * Build: cc -O2 -o bench/work/pcap_loop bench/pcap_loop.c -lpcap
 * Usage: pcap_loop capture.pcap
 */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s capture.pcap\n", argv[0]);
        return 2;
    }

    char errbuf[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline(argv[1], errbuf);
    if (p == NULL) {
        fprintf(stderr, "pcap_loop: %s\n", errbuf);
        return 1;
    }

    struct pcap_pkthdr *hdr;
    const u_char *data;
    uint64_t packets = 0, bytes = 0;
    int rc;
    while ((rc = pcap_next_ex(p, &hdr, &data)) == 1) {
        packets++;
        bytes += hdr->caplen;
    }
    if (rc == PCAP_ERROR) {
        /* A truncated last record is reported here; say so, but still print
         * what was read. */
        fprintf(stderr, "pcap_loop: %s\n", pcap_geterr(p));
    }
    pcap_close(p);

    printf("packets %llu bytes %llu\n",
           (unsigned long long)packets, (unsigned long long)bytes);
    return rc == PCAP_ERROR ? 1 : 0;
}
