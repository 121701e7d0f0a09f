/* The pod history a segment keeps: each pod set the capture sent, with the time it took effect
 * and each pod's address, namespace/name, uid and labels, as local-use pcapng blocks of type
 * STORE_PODSET_BLOCK written next to the set's Name Resolution Blocks. They live and die with
 * the segment (its retention, its syncs, its recovery); Wireshark and tshark skip them. A
 * snapshot's pod selection (-n, --pod, -l) reads them to know which pod held an address when a
 * packet was seen.
 *
 * Block body, little-endian: since_ns (i64), total pods in the set (u32), index of the first
 * pod in this block (u32), pods in this block (u32), then per pod: family (u8: 4 or 6), 0 (u8),
 * name length, uid length, labels length (u16 each), the address (16 bytes), the name
 * ("namespace/name"), uid and labels bytes; the body padded to 4. A set of more than
 * STORE_PODSET_PER_BLOCK pods takes several consecutive blocks. Pure: unit-tested and fuzzed
 * (fuzz_store_podset). */
#ifndef NR_STORE_PODSET_H
#define NR_STORE_PODSET_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/buf.h"

#define STORE_PODSET_BLOCK     0x8E7E0002u
#define STORE_PODSET_PER_BLOCK 512u

/* Appends pods as one or more blocks. 0, or what the buffer says (-EOVERFLOW, -ENOMEM). */
int store_podset_append(struct nr_buf *b, const struct store_pods *pods);

/* One block, decoded: its header and its pods. */
struct store_podset_part {
    int64_t since_ns;
    uint32_t total, first, count;
};

/* Decodes the whole block [p, p + block_len) (as pcapng_block_peek found it; type
 * STORE_PODSET_BLOCK) into *part, and when `into` is not NULL, sets into->pods[first ..
 * first + count) (into->n must be total: the set the first block made with store_pods_new).
 * Every length is checked against the block, names and uid against their caps, and names must
 * be printable. Returns 0, NR_EPARSE, or -ENOMEM. */
int store_podset_decode(const uint8_t *p, size_t block_len, struct store_podset_part *part,
                        struct store_pods *into);

#endif
