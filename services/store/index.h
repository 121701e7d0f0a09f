/* The sidecar index of a segment (NAME.idx beside NAME.pcapng): a header naming the capture
 * stream, then one fixed-size, checksummed record per thing appended to the segment — its head
 * (SHB, IDBs, NRB), each batch of EPBs with its seq, time range and counters, interface or pod
 * updates, and the closing statistics. A record is written after the bytes it describes, so the
 * index is the segment's commit log: recovery keeps exactly the bytes the index vouches for,
 * and startup reads indexes, never packet data. Pure encode/decode, fuzzed. */
#ifndef NR_STORE_INDEX_H
#define NR_STORE_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define STORE_INDEX_MAGIC      "NRSEGIDX"
#define STORE_INDEX_VERSION    1u
#define STORE_INDEX_MAX_ID     255u /* bytes of a capture_id */
#define STORE_INDEX_RECORD_LEN 96u
/* magic, version, id length, id padded to 8 */
#define STORE_INDEX_HEADER_MAX (16u + 256u)

enum store_record_kind {
    STORE_REC_HEAD = 1,  /* SHB, IDBs and NRB at offset 0; `packets` = interfaces in it */
    STORE_REC_META = 2,  /* IDBs or an NRB appended mid-segment; `packets` = interfaces now */
    STORE_REC_BATCH = 3, /* one batch of EPBs */
    STORE_REC_CLOSE = 4, /* the ISBs written at close; the segment is complete */
    STORE_REC_KEYS = 5,  /* a DSB of TLS key log lines a batch carried, right before its EPBs
                          * (the batch's record follows in the same write); `seq` = the batch's */
};

struct store_counters {
    uint64_t received;
    uint64_t kernel_dropped;
    uint64_t interface_dropped;
    uint64_t capture_dropped;
};

/* One batch as the index recorded it: a sorted run of EPBs inside a segment. */
struct store_run {
    uint64_t offset, length;
    int64_t first_ts_ns, last_ts_ns;
    uint64_t seq;
    uint32_t packets;
    struct store_counters counters;
};

struct store_record {
    uint32_t kind;
    uint32_t packets;
    uint64_t offset; /* where the described bytes start in the segment */
    uint64_t length;
    int64_t first_ts_ns;
    int64_t last_ts_ns;
    uint64_t seq;
    struct store_counters counters; /* cumulative, as the batch carried them */
    int64_t arrival_ns;             /* when the store wrote it (wall clock) */
};

/* Encodes the header for capture_id into buf (at least STORE_INDEX_HEADER_MAX bytes). Returns
 * its length, or -EINVAL when the id is empty or longer than STORE_INDEX_MAX_ID. */
int store_index_header_encode(uint8_t *buf, const char *capture_id);

/* Decodes a header from the start of an index: 1 and the id (NUL-terminated, id has room for
 * STORE_INDEX_MAX_ID + 1) and *header_len, 0 when len is too short to tell, NR_EPARSE when it
 * is not an index of ours or its version is unknown. */
int store_index_header_decode(const uint8_t *buf, size_t len, char *id, size_t *header_len);

/* The checksum a record carries in its last 4 bytes (FNV-1a over the 92 before them). */
uint32_t store_index_checksum(const uint8_t *p, size_t len);

/* Encodes a record into exactly STORE_INDEX_RECORD_LEN bytes, with its checksum. */
void store_index_record_encode(uint8_t *buf, const struct store_record *r);

/* Decodes STORE_INDEX_RECORD_LEN bytes: 0, or NR_EPARSE when the checksum does not match or the
 * kind is unknown (a torn or overwritten record). */
int store_index_record_decode(const uint8_t *buf, struct store_record *r);

#endif
