/* libFuzzer target for the segment index's decoders (services/store/index.c), which read what a
 * crash or a hostile hand left on disk: a header either needs more bytes, is refused for good,
 * or decodes to an id that encodes back to the same bytes; a record either is refused or
 * decodes to fields that encode back to the bytes read and decode again the same. Input: one
 * flags byte (bit 0: give each record a correct checksum first, so the checks behind it are
 * reached), then an index. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pcapng/pcapng.h"
#include "store/index.h"
#include "util/error.h"
#include "fuzz.h"

static void check_header(const uint8_t *data, size_t size, size_t *header_len)
{
    char id[STORE_INDEX_MAX_ID + 1];
    uint8_t again[STORE_INDEX_HEADER_MAX];
    size_t hlen = 0;
    int rc = store_index_header_decode(data, size, id, &hlen);

    *header_len = 0;
    if (rc == 1) {
        size_t n = strlen(id);

        CHECK(n >= 1 && n <= STORE_INDEX_MAX_ID);
        CHECK(hlen == 16 + ((n + 7) & ~(size_t)7) && hlen <= size);
        CHECK(store_index_header_encode(again, id) == (int)hlen);
        /* Only the padding after the id may differ from what was read. */
        CHECK(memcmp(again, data, 16 + n) == 0);
        /* Every shorter prefix needs more, never a different verdict. */
        for (size_t cut = 0; cut < hlen; cut += 1 + cut / 8)
            CHECK(store_index_header_decode(data, cut, id, &(size_t){0}) == 0);
        *header_len = hlen;
    } else if (rc == 0) {
        CHECK(size < 16 + 256);
    } else {
        CHECK(rc == NR_EPARSE);
        /* Refused on what it holds: more bytes do not change that. */
        CHECK(size >= 16);
    }
}

static void check_record(const uint8_t *p)
{
    struct store_record r, back;
    uint8_t again[STORE_INDEX_RECORD_LEN];

    memset(&r, 0xa5, sizeof(r));
    if (store_index_record_decode(p, &r) != 0)
        return;
    CHECK(r.kind >= STORE_REC_HEAD && r.kind <= STORE_REC_KEYS);
    CHECK(r.offset <= INT64_MAX && r.length <= INT64_MAX - r.offset);
    store_index_record_encode(again, &r);
    /* Bytes 88..91 are reserved: written 0, covered by the checksum, not read. */
    CHECK(memcmp(again, p, 88) == 0);
    CHECK(store_index_record_decode(again, &back) == 0);
    CHECK(memcmp(&back, &r, sizeof(r)) == 0);
    /* One flipped bit is always caught. */
    again[p[0] % 92] ^= (uint8_t)(1u << (p[1] & 7));
    CHECK(store_index_record_decode(again, &back) == NR_EPARSE);
}

/* Any field values: what encodes decodes to the same, or is refused for its kind or range. */
static void check_encode(const uint8_t *p)
{
    struct store_record r, back;
    uint8_t buf[STORE_INDEX_RECORD_LEN];

    memset(&r, 0, sizeof(r));
    memcpy(&r.kind, p, 4);
    r.kind %= 7;
    memcpy(&r.packets, p + 4, 4);
    memcpy(&r.offset, p + 8, 8);
    memcpy(&r.length, p + 16, 8);
    memcpy(&r.first_ts_ns, p + 24, 8);
    memcpy(&r.last_ts_ns, p + 32, 8);
    memcpy(&r.seq, p + 40, 8);
    memcpy(&r.counters, p + 48, 32);
    memcpy(&r.arrival_ns, p + 80, 8);
    store_index_record_encode(buf, &r);
    if (r.kind < STORE_REC_HEAD || r.kind > STORE_REC_KEYS || r.offset > INT64_MAX ||
        r.length > INT64_MAX - r.offset) {
        CHECK(store_index_record_decode(buf, &back) == NR_EPARSE);
        return;
    }
    CHECK(store_index_record_decode(buf, &back) == 0);
    CHECK(memcmp(&back, &r, sizeof(r)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t rec[STORE_INDEX_RECORD_LEN];
    size_t header_len;
    int fix;

    if (size < 1)
        return 0;
    fix = data[0] & 1;
    data++;
    size--;

    check_header(data, size, &header_len);
    /* Records follow a good header; without one, read them from the start anyway. */
    for (size_t off = header_len; size - off >= STORE_INDEX_RECORD_LEN;
         off += STORE_INDEX_RECORD_LEN) {
        memcpy(rec, data + off, sizeof(rec));
        if (fix)
            pcapng_put32(rec + 92, store_index_checksum(rec, 92));
        check_record(rec);
        check_encode(rec);
    }
    /* The id may be anything the header allows: the encoder takes it back. */
    if (size > 0 && size <= STORE_INDEX_MAX_ID + 1) {
        char id[STORE_INDEX_MAX_ID + 2];
        uint8_t hdr[STORE_INDEX_HEADER_MAX];
        char back[STORE_INDEX_MAX_ID + 1];
        size_t hlen = 0;
        int n;

        memcpy(id, data, size);
        id[size] = '\0';
        n = store_index_header_encode(hdr, id);
        if (strlen(id) == 0 || strlen(id) > STORE_INDEX_MAX_ID) {
            CHECK(n == -EINVAL);
        } else {
            CHECK(n > 0 && store_index_header_decode(hdr, (size_t)n, back, &hlen) == 1);
            CHECK(hlen == (size_t)n && strcmp(back, id) == 0);
        }
    }
    return 0;
}
