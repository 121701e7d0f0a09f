/* Classic libpcap files, the nanosecond kind (magic 0xA1B23C4D), little-endian: what
 * `--format=pcap` writes for tools that do not read pcapng. One link type per file. */
#ifndef NR_PCAPNG_PCAP_H
#define NR_PCAPNG_PCAP_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define PCAP_NSEC_MAGIC        0xA1B23C4Du
#define PCAP_FILE_HEADER_LEN   24u
#define PCAP_RECORD_HEADER_LEN 16u

/* The 24-byte file header, version 2.4. Returns as the pcapng encoders do; -EINVAL when
 * snaplen is 0. */
int pcapng_pcap_header_append(struct nr_buf *b, uint16_t link_type, uint32_t snaplen);

/* One record: seconds and nanoseconds of ts_ns, caplen bytes of data, origlen. -EINVAL when
 * caplen > origlen, ts_ns < 0 or its seconds do not fit in 32 bits (after 2106). */
int pcapng_pcap_record_append(struct nr_buf *b, int64_t ts_ns, const void *data, uint32_t caplen,
                              uint32_t origlen);

#endif
