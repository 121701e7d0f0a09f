/* libFuzzer target for pcapng_batch_validate: the first two bytes choose the rules, the rest is
 * a batch. A batch it accepts holds what the info says when walked again and copies to the same
 * bytes; one it refuses is named at a block boundary whose prefix it accepts. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcapng/decode.h"
#include "pcapng/encode.h"
#include "util/error.h"
#include "fuzz.h"

static const uint32_t snaplen_choices[4] = {0, 64, 1500, 65535};
static const int64_t ts_ranges[4][2] = {
    {0, INT64_MAX},
    {1, 1000},
    {INT64_C(1000000000000000000), INT64_C(2000000000000000000)},
    {5, 5},
};

/* Byte 0: bits 0-1 the number of interfaces, 2-3 the timestamp range, 7 sorted. Byte 1: two
 * bits of snaplen choice per interface. */
static void rules_from(const uint8_t *data, uint32_t snaplens[3], struct pcapng_batch_rules *rules)
{
    rules->n_interfaces = data[0] & 3u;
    for (uint32_t i = 0; i < 3; i++)
        snaplens[i] = snaplen_choices[(data[1] >> (2 * i)) & 3u];
    rules->snaplens = snaplens;
    rules->min_ts_ns = ts_ranges[(data[0] >> 2) & 3u][0];
    rules->max_ts_ns = ts_ranges[(data[0] >> 2) & 3u][1];
    rules->sorted = (data[0] & 0x80u) != 0;
}

/* Walks an accepted batch again: every block an EPB within the rules, adding up to info. Each
 * EPB copied whole is the same bytes; copied cut, it still passes. */
static void check_accepted(const uint8_t *batch, size_t len, const struct pcapng_batch_rules *r,
                           const struct pcapng_batch_info *info, struct nr_buf *copy,
                           struct nr_buf *cut, uint32_t cut_to)
{
    struct pcapng_batch_info cut_info;
    uint64_t bytes = 0;
    uint32_t packets = 0;
    int64_t prev = 0;
    size_t blocks = 0;
    size_t off = 0;

    CHECK(pcapng_whole_prefix(batch, len, &blocks) == len);
    CHECK(blocks == info->packets);
    copy->len = 0;
    cut->len = 0;
    while (off < len) {
        struct pcapng_epb epb;
        struct pcapng_epb back;
        uint32_t type;
        size_t block_len;
        uint32_t snaplen;

        CHECK(pcapng_block_peek(batch + off, len - off, &type, &block_len) == 1);
        CHECK(type == PCAPNG_BT_EPB);
        CHECK(pcapng_epb_decode(batch + off, block_len, &epb) == 0);
        CHECK(epb.ifid < r->n_interfaces);
        snaplen = r->snaplens[epb.ifid] ? r->snaplens[epb.ifid] : PCAPNG_MAX_SNAPLEN;
        CHECK(epb.caplen <= snaplen);
        CHECK(epb.ts_ns >= r->min_ts_ns && epb.ts_ns <= r->max_ts_ns);
        if (packets == 0)
            CHECK(epb.ts_ns == info->first_ts_ns);
        else if (r->sorted)
            CHECK(epb.ts_ns >= prev);
        prev = epb.ts_ns;
        bytes += epb.caplen;
        packets++;

        CHECK(pcapng_epb_append_copy(copy, &epb, epb.ifid, 0) == 0);
        CHECK(pcapng_epb_decode(copy->data + copy->len - block_len, block_len, &back) == 0);
        CHECK(back.ifid == epb.ifid && back.ts_ns == epb.ts_ns);
        CHECK(back.caplen == epb.caplen && back.origlen == epb.origlen);
        CHECK(memcmp(back.data, epb.data, epb.caplen) == 0);
        CHECK(back.options_len == epb.options_len);
        CHECK(memcmp(back.options, epb.options, epb.options_len) == 0);
        CHECK(pcapng_epb_append_copy(cut, &epb, epb.ifid, cut_to) == 0);
        off += block_len;
    }
    CHECK(packets == info->packets);
    CHECK(bytes == info->packet_bytes);
    if (packets > 0)
        CHECK(prev == info->last_ts_ns);
    CHECK(copy->len == len);
    CHECK(len == 0 || memcmp(copy->data, batch, len) == 0);

    CHECK(pcapng_batch_validate(cut->data, cut->len, r, &cut_info, NULL, 0) == 0);
    CHECK(cut_info.packets == info->packets);
    CHECK(cut_info.first_ts_ns == info->first_ts_ns);
    CHECK(cut_info.last_ts_ns == info->last_ts_ns);
    CHECK(cut_info.packet_bytes <= info->packet_bytes);
}

/* "block N at offset M: why", on one line; the batch up to M is valid and holds N packets. */
static void check_refused(const uint8_t *batch, size_t len, const struct pcapng_batch_rules *r,
                          const char *err)
{
    struct pcapng_batch_info info;
    char small[24];
    size_t index = 0;
    size_t off = 0;
    int used = 0;

    CHECK(sscanf(err, "block %zu at offset %zu: %n", &index, &off, &used) == 2);
    CHECK(used > 0 && err[used] != '\0');
    CHECK(strchr(err, '\n') == NULL);
    CHECK(off < len && off % 4 == 0);
    CHECK(pcapng_batch_validate(batch, off, r, &info, NULL, 0) == 0);
    CHECK(info.packets == index);

    /* A small buffer gets the same message, cut. */
    CHECK(pcapng_batch_validate(batch, len, r, &info, small, sizeof(small)) == NR_EPARSE);
    CHECK(strlen(small) < sizeof(small));
    CHECK(strncmp(small, err, strlen(small)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct nr_buf copy;
    static struct nr_buf cut;
    struct pcapng_batch_rules rules;
    struct pcapng_batch_info info;
    uint32_t snaplens[3];
    char err[256];
    const uint8_t *batch;
    size_t len;
    int rc;

    if (size < 2)
        return 0;
    if (copy.max == 0) {
        nr_buf_init(&copy, SIZE_MAX / 2);
        nr_buf_init(&cut, SIZE_MAX / 2);
    }
    rules_from(data, snaplens, &rules);
    batch = data + 2;
    len = size - 2;

    memset(&info, 0xa5, sizeof(info));
    rc = pcapng_batch_validate(batch, len, &rules, &info, err, sizeof(err));
    if (rc == 0) {
        CHECK(err[0] == '\0');
        /* The cut length comes from the data too: the first byte, as a few sizes. */
        check_accepted(batch, len, &rules, &info, &copy, &cut, 1u + data[0] % 97u);
    } else {
        CHECK(rc == NR_EPARSE);
        check_refused(batch, len, &rules, err);
    }
    nr_buf_reset(&copy, 1 << 20);
    nr_buf_reset(&cut, 1 << 20);
    return 0;
}
