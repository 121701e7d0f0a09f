/* Encoding of the segment sidecar index (see index.h): little-endian fields, a 32-bit FNV-1a
 * checksum at the end of each record so a torn write is recognised rather than believed. */
#include "store/index.h"

#include <errno.h>
#include <string.h>

#include "pcapng/pcapng.h"
#include "util/error.h"

static void put64(uint8_t *p, uint64_t v)
{
    pcapng_put32(p, (uint32_t)v);
    pcapng_put32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)pcapng_le32(p) | (uint64_t)pcapng_le32(p + 4) << 32;
}

uint32_t store_index_checksum(const uint8_t *p, size_t len)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

int store_index_header_encode(uint8_t *buf, const char *capture_id)
{
    size_t n = strlen(capture_id);
    size_t padded = (n + 7) & ~(size_t)7;

    if (n == 0 || n > STORE_INDEX_MAX_ID)
        return -EINVAL;
    memcpy(buf, STORE_INDEX_MAGIC, 8);
    pcapng_put32(buf + 8, STORE_INDEX_VERSION);
    pcapng_put32(buf + 12, (uint32_t)n);
    memset(buf + 16, 0, padded);
    memcpy(buf + 16, capture_id, n);
    return (int)(16 + padded);
}

int store_index_header_decode(const uint8_t *buf, size_t len, char *id, size_t *header_len)
{
    uint32_t n;
    size_t padded;

    if (len < 16)
        return 0;
    if (memcmp(buf, STORE_INDEX_MAGIC, 8) != 0 || pcapng_le32(buf + 8) != STORE_INDEX_VERSION)
        return NR_EPARSE;
    n = pcapng_le32(buf + 12);
    if (n == 0 || n > STORE_INDEX_MAX_ID)
        return NR_EPARSE;
    padded = ((size_t)n + 7) & ~(size_t)7;
    if (len < 16 + padded)
        return 0;
    if (memchr(buf + 16, 0, n))
        return NR_EPARSE;
    memcpy(id, buf + 16, n);
    id[n] = '\0';
    *header_len = 16 + padded;
    return 1;
}

void store_index_record_encode(uint8_t *buf, const struct store_record *r)
{
    pcapng_put32(buf, r->kind);
    pcapng_put32(buf + 4, r->packets);
    put64(buf + 8, r->offset);
    put64(buf + 16, r->length);
    put64(buf + 24, (uint64_t)r->first_ts_ns);
    put64(buf + 32, (uint64_t)r->last_ts_ns);
    put64(buf + 40, r->seq);
    put64(buf + 48, r->counters.received);
    put64(buf + 56, r->counters.kernel_dropped);
    put64(buf + 64, r->counters.interface_dropped);
    put64(buf + 72, r->counters.capture_dropped);
    put64(buf + 80, (uint64_t)r->arrival_ns);
    pcapng_put32(buf + 88, 0);
    pcapng_put32(buf + 92, store_index_checksum(buf, 92));
}

int store_index_record_decode(const uint8_t *buf, struct store_record *r)
{
    if (pcapng_le32(buf + 92) != store_index_checksum(buf, 92))
        return NR_EPARSE;
    r->kind = pcapng_le32(buf);
    if (r->kind < STORE_REC_HEAD || r->kind > STORE_REC_KEYS)
        return NR_EPARSE;
    r->packets = pcapng_le32(buf + 4);
    r->offset = get64(buf + 8);
    r->length = get64(buf + 16);
    r->first_ts_ns = (int64_t)get64(buf + 24);
    r->last_ts_ns = (int64_t)get64(buf + 32);
    r->seq = get64(buf + 40);
    r->counters.received = get64(buf + 48);
    r->counters.kernel_dropped = get64(buf + 56);
    r->counters.interface_dropped = get64(buf + 64);
    r->counters.capture_dropped = get64(buf + 72);
    r->arrival_ns = (int64_t)get64(buf + 80);
    if (r->offset > INT64_MAX || r->length > INT64_MAX - r->offset)
        return NR_EPARSE;
    return 0;
}
