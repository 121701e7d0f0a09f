/* Writing pcapng blocks: each function appends one whole block to a bounded buffer, so a
 * caller builds a batch or a file's head in one buffer and writes it with one writev. Every
 * block is little-endian, 4-byte aligned, with its total length at both ends. All return 0, or
 * -EOVERFLOW when the buffer's cap would be passed (the buffer is then unchanged), -ENOMEM, or
 * -EINVAL for arguments that would make an invalid block (named below). */
#ifndef NR_PCAPNG_ENCODE_H
#define NR_PCAPNG_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "pcapng/pcapng.h"
#include "util/buf.h"

/* Section Header Block, version 1.0, section length -1 (unknown: we stream). Options written
 * only when non-NULL and non-empty: shb_comment (opt_comment), shb_hardware, shb_os,
 * shb_userappl. */
int pcapng_shb_append(struct nr_buf *b, const char *comment, const char *hardware, const char *os,
                      const char *userappl);

/* Interface Description Block with if_tsresol 9 (nanoseconds) always, if_name and
 * if_description when non-empty. -EINVAL when snaplen is 0 or > PCAPNG_MAX_SNAPLEN. */
int pcapng_idb_append(struct nr_buf *b, uint16_t link_type, uint32_t snaplen, const char *name,
                      const char *description);

/* Name Resolution Block with one IPv4/IPv6 record per name, then nrb_record_end. -EINVAL for a
 * family other than 4 or 6, or a name longer than 65000 bytes. n may be 0 (an NRB with only the
 * end record). */
int pcapng_nrb_append(struct nr_buf *b, const struct pcapng_name *names, size_t n);

/* Interface Statistics Block with isb_starttime/isb_endtime (when non-zero), isb_ifrecv,
 * isb_ifdrop and isb_osdrop, in nanoseconds like the interface's EPBs. */
int pcapng_isb_append(struct nr_buf *b, const struct pcapng_isb *isb);

/* Enhanced Packet Block without options (comment NULL) or with one opt_comment. -EINVAL when
 * caplen > origlen or caplen > PCAPNG_MAX_SNAPLEN, or ts_ns < 0. */
int pcapng_epb_append(struct nr_buf *b, uint32_t ifid, int64_t ts_ns, const void *data,
                      uint32_t caplen, uint32_t origlen, const char *comment);

/* Copies a decoded EPB as a new block with interface id `ifid`, its packet data cut to
 * `snaplen` bytes when snaplen is non-zero and smaller than caplen (origlen kept), its options
 * kept as they were. The fast path (no cut) is one memcpy and one patched word. */
int pcapng_epb_append_copy(struct nr_buf *b, const struct pcapng_epb *epb, uint32_t ifid,
                           uint32_t snaplen);

/* The same with an opt_comment put before its options (comment NULL: pcapng_epb_append_copy).
 * -EINVAL as pcapng_epb_append_copy, or for a comment longer than an option holds. */
int pcapng_epb_append_noted(struct nr_buf *b, const struct pcapng_epb *epb, uint32_t ifid,
                            uint32_t snaplen, const char *comment);

/* A decoded EPB written again for the hub's file: interface id `ifid`, timestamp ts_ns (the
 * node's clock corrected), its data cut to snaplen when non-zero and smaller, its own options
 * (a comment), then epb_flags (when flags is non-zero: the direction bits; replaces the
 * source's) and epb_packetid (when packet_id is non-zero: every sighting of one packet has the
 * same; replaces the source's). */
int pcapng_epb_append_sighting(struct nr_buf *b, const struct pcapng_epb *epb, uint32_t ifid,
                               int64_t ts_ns, uint32_t snaplen, uint32_t flags, uint64_t packet_id);
/* The bytes pcapng_epb_append_sighting appends for these arguments. */
size_t pcapng_epb_sighting_len(const struct pcapng_epb *epb, uint32_t snaplen, uint32_t flags,
                               uint64_t packet_id);

/* Decryption Secrets Block of secrets_type (PCAPNG_DSB_TLS_KEYLOG: NSS key log lines) holding
 * the len bytes of data, padded to 4, without options. -EINVAL when len is 0 or more than
 * PCAPNG_DSB_MAX_SECRETS. */
int pcapng_dsb_append(struct nr_buf *b, uint32_t secrets_type, const void *data, size_t len);

#endif
