/* Reading pcapng blocks from memory, trusting nothing: every length is checked against the
 * bytes that are there and against PCAPNG_MAX_BLOCK before it is used. Pure functions, no I/O,
 * so each one is fuzzed (tests/fuzz/fuzz_pcapng_*.c). Where an error message is asked for, it
 * is one line naming the block's index and byte offset and what is wrong with it:
 * "block 17 at offset 12345: captured length 70000 > snaplen 65535 of interface 0". */
#ifndef NR_PCAPNG_DECODE_H
#define NR_PCAPNG_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcapng/pcapng.h"

/* Looks at the block starting at p (len bytes available). Returns:
 *   1 and *type, *block_len when a whole, well-formed block is there: total length >= 12, a
 *     multiple of 4, <= PCAPNG_MAX_BLOCK, <= len, and the trailing copy equal to the leading;
 *   0 when the bytes end before the block does (fewer than 8 bytes, or the length says more
 *     than len) and the block is otherwise plausible — a torn tail, not a lie;
 *   NR_EPARSE when the block is malformed (bad length, mismatched trailer, an SHB whose
 *     byte-order magic is not little-endian 0x1A2B3C4D). */
int pcapng_block_peek(const uint8_t *p, size_t len, uint32_t *type, size_t *block_len);

/* The length of the longest prefix of buf made of whole, well-formed blocks: where recovery
 * cuts a file that was being written when the process died. Sets *blocks to how many there are
 * (may be NULL). Stops at the first torn or malformed block. */
size_t pcapng_whole_prefix(const uint8_t *buf, size_t len, size_t *blocks);

/* Decodes the EPB that is the whole block [p, p + block_len) (as pcapng_block_peek found it).
 * Checks: type 6, block_len >= PCAPNG_EPB_MIN, caplen fits in the block (with its padding),
 * caplen <= origlen, the options inside the block. Returns 0 or NR_EPARSE. */
int pcapng_epb_decode(const uint8_t *p, size_t block_len, struct pcapng_epb *epb);

/* Decodes an IDB (whole block). Reads if_name, if_description and if_tsresol; walks every
 * option with bounds checks. Returns 0 or NR_EPARSE. */
int pcapng_idb_decode(const uint8_t *p, size_t block_len, struct pcapng_idb *idb);

/* Calls fn for each IPv4/IPv6 record of an NRB (whole block), with the name NUL-terminated in a
 * scratch copy (valid during the call; names longer than 1023 bytes are cut). Records of other
 * types are skipped. A record past the block is NR_EPARSE. fn returning non-zero stops the walk
 * and that value is returned. Returns 0 when the walk reached nrb_record_end or the block's
 * end. */
int pcapng_nrb_foreach(const uint8_t *p, size_t block_len,
                       int (*fn)(const struct pcapng_name *name, void *arg), void *arg);

/* One Decryption Secrets Block, decoded in place. */
struct pcapng_dsb {
    uint32_t secrets_type;
    const uint8_t *data; /* len bytes inside the block */
    size_t len;
};

/* Decodes a DSB (whole block): type 10, secrets length within the block with its padding, the
 * padding zero, options (if any) that fit. Returns 0 or NR_EPARSE. */
int pcapng_dsb_decode(const uint8_t *p, size_t block_len, struct pcapng_dsb *dsb);

/* What a batch of EPBs must agree with before any of it is written. */
struct pcapng_batch_rules {
    const uint32_t *snaplens; /* per interface id; an id >= n_interfaces is unknown */
    uint32_t n_interfaces;
    int64_t min_ts_ns; /* timestamps outside [min, max] are not sane */
    int64_t max_ts_ns;
    bool sorted; /* timestamps must not go backwards within the batch */
};

/* What a valid batch holds. */
struct pcapng_batch_info {
    uint32_t packets;
    int64_t first_ts_ns; /* of the first and last EPB (the smallest and largest when sorted) */
    int64_t last_ts_ns;
    uint64_t packet_bytes; /* sum of caplen */
};

/* Validates a batch: `blocks` must be nothing but whole EPBs, back to back, to its last byte.
 * Each EPB: a well-formed block (pcapng_block_peek), decodable (pcapng_epb_decode), a known
 * interface, caplen <= that interface's snaplen, a timestamp within the rules, in order when
 * rules->sorted. An empty batch is valid (0 packets). Returns 0 and fills *info, or NR_EPARSE
 * with a one-line message in err naming the first block that is wrong (see above). */
int pcapng_batch_validate(const uint8_t *blocks, size_t len, const struct pcapng_batch_rules *rules,
                          struct pcapng_batch_info *info, char *err, size_t errlen);

#endif
