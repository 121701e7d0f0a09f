/* lib/pcapng/decode.c: what a torn file, a malformed block and a lying batch each look like to
 * the reader, down to the message a batch's sender gets back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcapng/decode.h"
#include "pcapng/encode.h"
#include "util/error.h"

static uint8_t zeros[PCAPNG_MAX_SNAPLEN];

/* Appends an EPB of caplen zero bytes (origlen caplen + 10). */
static void add_epb(struct nr_buf *b, uint32_t ifid, int64_t ts, uint32_t caplen)
{
    assert_int_equal(pcapng_epb_append(b, ifid, ts, zeros, caplen, caplen + 10, NULL), 0);
}

/* ---- pcapng_block_peek ---- */

static int peek(const uint8_t *p, size_t len)
{
    uint32_t type = 0xdead;
    size_t block_len = 0xbeef;
    int rc = pcapng_block_peek(p, len, &type, &block_len);

    if (rc != 1) {
        /* Untouched unless a block was found. */
        assert_int_equal(type, 0xdead);
        assert_int_equal(block_len, 0xbeef);
    }
    return rc;
}

static void test_peek_whole_blocks(void **state)
{
    struct nr_buf b;
    uint32_t type;
    size_t block_len;

    nr_buf_init(&b, PCAPNG_MAX_BLOCK + 64);
    assert_int_equal(pcapng_shb_append(&b, "c", NULL, NULL, NULL), 0);
    assert_int_equal(pcapng_block_peek(b.data, b.len, &type, &block_len), 1);
    assert_int_equal(type, PCAPNG_BT_SHB);
    assert_int_equal(block_len, b.len);

    /* Trailing bytes after the block are not its business. */
    b.len = 0;
    add_epb(&b, 0, 1, 3);
    add_epb(&b, 0, 1, 3);
    assert_int_equal(pcapng_block_peek(b.data, b.len, &type, &block_len), 1);
    assert_int_equal(type, PCAPNG_BT_EPB);
    assert_int_equal(block_len, 36);

    /* Types we do not know are still blocks; the smallest and the largest lengths pass. */
    {
        uint8_t tiny[12];

        pcapng_put32(tiny, 0x12345678);
        pcapng_put32(tiny + 4, 12);
        pcapng_put32(tiny + 8, 12);
        assert_int_equal(pcapng_block_peek(tiny, sizeof(tiny), &type, &block_len), 1);
        assert_int_equal(type, 0x12345678);
        assert_int_equal(block_len, 12);
    }
    b.len = 0;
    assert_int_equal(nr_buf_reserve(&b, PCAPNG_MAX_BLOCK), 0);
    b.len = PCAPNG_MAX_BLOCK;
    memset(b.data, 0, b.len);
    pcapng_put32(b.data, 0xBAD);
    pcapng_put32(b.data + 4, PCAPNG_MAX_BLOCK);
    pcapng_put32(b.data + PCAPNG_MAX_BLOCK - 4, PCAPNG_MAX_BLOCK);
    assert_int_equal(pcapng_block_peek(b.data, b.len, &type, &block_len), 1);
    assert_int_equal(block_len, PCAPNG_MAX_BLOCK);
    nr_buf_free(&b);
}

static void test_peek_torn(void **state)
{
    uint8_t buf[64];

    memset(buf, 0xff, sizeof(buf));
    /* Fewer than 8 bytes: nothing can be said yet, even of garbage. */
    for (size_t len = 0; len < 8; len++)
        assert_int_equal(peek(buf, len), 0);

    /* A plausible length past the bytes there are. */
    pcapng_put32(buf, PCAPNG_BT_EPB);
    pcapng_put32(buf + 4, 64);
    for (size_t len = 8; len < 64; len++)
        assert_int_equal(peek(buf, len), 0);
    pcapng_put32(buf + 60, 64);
    assert_int_equal(peek(buf, 64), 1);

    /* An SHB cut before its byte-order magic is plausible too. */
    pcapng_put32(buf, PCAPNG_BT_SHB);
    pcapng_put32(buf + 4, 28);
    for (size_t len = 8; len < 12; len++)
        assert_int_equal(peek(buf, len), 0);
}

static void test_peek_malformed(void **state)
{
    static const uint32_t bad_lengths[] = {
        0, 4, 8, 13, 14, 15, 30, PCAPNG_MAX_BLOCK + 4, UINT32_MAX - 3, UINT32_MAX};
    uint8_t buf[64];

    memset(buf, 0, sizeof(buf));
    pcapng_put32(buf, PCAPNG_BT_EPB);
    /* A bad length is a lie however few bytes follow it. */
    for (size_t i = 0; i < sizeof(bad_lengths) / sizeof(bad_lengths[0]); i++) {
        pcapng_put32(buf + 4, bad_lengths[i]);
        assert_int_equal(peek(buf, 8), NR_EPARSE);
        assert_int_equal(peek(buf, sizeof(buf)), NR_EPARSE);
    }

    /* The trailing copy of the length differs. */
    pcapng_put32(buf + 4, 32);
    pcapng_put32(buf + 28, 36);
    assert_int_equal(peek(buf, 32), NR_EPARSE);
    assert_int_equal(peek(buf, 64), NR_EPARSE);
    pcapng_put32(buf + 28, 0);
    assert_int_equal(peek(buf, 32), NR_EPARSE);
    pcapng_put32(buf + 28, 32);
    assert_int_equal(peek(buf, 32), 1);

    /* SHBs: big-endian (or any other) byte-order magic, or too short to hold the header. */
    memset(buf, 0, sizeof(buf));
    pcapng_put32(buf, PCAPNG_BT_SHB);
    pcapng_put32(buf + 4, 28);
    pcapng_put32(buf + 8, 0x4D3C2B1A);
    pcapng_put32(buf + 24, 28);
    assert_int_equal(peek(buf, 28), NR_EPARSE);
    assert_int_equal(peek(buf, 12), NR_EPARSE); /* known as soon as the magic is there */
    pcapng_put32(buf + 8, PCAPNG_BYTE_ORDER_MAGIC);
    assert_int_equal(peek(buf, 28), 1);
    pcapng_put32(buf + 4, 24);
    pcapng_put32(buf + 20, 24);
    assert_int_equal(peek(buf, 28), NR_EPARSE);
    /* A big-endian SHB as a big-endian writer makes it. */
    {
        /* clang-format off */
        static const uint8_t be_shb[28] = {
            0x0A, 0x0D, 0x0D, 0x0A, 0, 0, 0, 28, 0x1A, 0x2B, 0x3C, 0x4D, 0, 1, 0, 0,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 28,
        };
        /* clang-format on */
        assert_int_equal(peek(be_shb, sizeof(be_shb)), NR_EPARSE);
    }
}

/* ---- pcapng_whole_prefix ---- */

static void test_whole_prefix_every_cut(void **state)
{
    const struct pcapng_name names[2] = {
        {.family = 4, .addr = {10, 0, 0, 1}, .name = "default/a"},
        {.family = 6, .addr = {0xfd, [15] = 1}, .name = "default/b"},
    };
    struct pcapng_isb isb = {.ts_ns = 5, .ifrecv = 2};
    size_t ends[16];
    size_t n_blocks = 0;
    struct nr_buf b;
    size_t blocks;

    nr_buf_init(&b, 1 << 16);
#define BLOCK(call)                \
    do {                           \
        assert_int_equal(call, 0); \
        ends[n_blocks++] = b.len;  \
    } while (0)
    BLOCK(pcapng_shb_append(&b, "a file being written", NULL, NULL, NULL));
    BLOCK(pcapng_idb_append(&b, 1, 65535, "eth0", NULL));
    BLOCK(pcapng_nrb_append(&b, names, 2));
    BLOCK(pcapng_epb_append(&b, 0, 1, zeros, 61, 61, NULL));
    BLOCK(pcapng_isb_append(&b, &isb));
    BLOCK(pcapng_epb_append(&b, 0, 7, zeros, 17, 100, "the last one"));
#undef BLOCK

    assert_int_equal(pcapng_whole_prefix(b.data, b.len, &blocks), b.len);
    assert_int_equal(blocks, n_blocks);
    assert_int_equal(pcapng_whole_prefix(b.data, 0, &blocks), 0);
    assert_int_equal(blocks, 0);

    /* Cut anywhere in the last block: the file ends where the block before it did. */
    for (size_t cut = ends[n_blocks - 2]; cut < b.len; cut++) {
        if (pcapng_whole_prefix(b.data, cut, &blocks) != ends[n_blocks - 2])
            fail_msg("cut at %zu: prefix %zu, want %zu", cut,
                     pcapng_whole_prefix(b.data, cut, NULL), ends[n_blocks - 2]);
        assert_int_equal(blocks, n_blocks - 1);
    }
    /* And anywhere at all: the last block boundary at or before the cut. */
    for (size_t cut = 0; cut <= b.len; cut++) {
        size_t want = 0;
        size_t want_blocks = 0;

        while (want_blocks < n_blocks && ends[want_blocks] <= cut)
            want = ends[want_blocks++];
        assert_int_equal(pcapng_whole_prefix(b.data, cut, &blocks), want);
        assert_int_equal(blocks, want_blocks);
    }

    /* A malformed block stops it too, whatever follows. */
    pcapng_put32(b.data + ends[2] - 4, 1234);
    assert_int_equal(pcapng_whole_prefix(b.data, b.len, &blocks), ends[1]);
    assert_int_equal(blocks, 2);
    nr_buf_free(&b);
}

/* ---- pcapng_epb_decode, pcapng_idb_decode, pcapng_nrb_foreach ---- */

static void test_epb_decode_malformed(void **state)
{
    struct pcapng_epb epb;
    struct nr_buf b;
    uint8_t *p;

    nr_buf_init(&b, 4096);
    assert_int_equal(pcapng_epb_append(&b, 1, 2, "abcdefgh", 8, 8, "note"), 0); /* 52 bytes */
    p = b.data;
    assert_int_equal(pcapng_epb_decode(p, b.len, &epb), 0);
    assert_int_equal(epb.options_len, 12);

    /* Lengths that do not agree with the bytes given. */
    assert_int_equal(pcapng_epb_decode(p, b.len - 4, &epb), NR_EPARSE);
    assert_int_equal(pcapng_epb_decode(p, 4, &epb), NR_EPARSE);
    assert_int_equal(pcapng_epb_decode(p, 0, &epb), NR_EPARSE);
    /* Not an EPB. */
    pcapng_put32(p, PCAPNG_BT_ISB);
    assert_int_equal(pcapng_epb_decode(p, b.len, &epb), NR_EPARSE);
    pcapng_put32(p, PCAPNG_BT_EPB);
    /* caplen past the block (with its padding), and past origlen. */
    pcapng_put32(p + 20, 21);
    assert_int_equal(pcapng_epb_decode(p, b.len, &epb), NR_EPARSE);
    pcapng_put32(p + 20, 20); /* just fits, the options taken for data: 20 = 8 + 12 */
    pcapng_put32(p + 24, 20);
    assert_int_equal(pcapng_epb_decode(p, b.len, &epb), 0);
    assert_int_equal(epb.options_len, 0);
    pcapng_put32(p + 24, 19);
    assert_int_equal(pcapng_epb_decode(p, b.len, &epb), NR_EPARSE);
    pcapng_put32(p + 20, 8);
    pcapng_put32(p + 24, 8);
    /* An option longer than the room left for options. */
    p[38] = 9;
    assert_int_equal(pcapng_epb_decode(p, b.len, &epb), NR_EPARSE);
    p[38] = 8; /* 4 + 8 + endofopt's 4: fits exactly, endofopt read as its value */
    assert_int_equal(pcapng_epb_decode(p, b.len, &epb), 0);
    p[38] = 4;
    /* A timestamp past int64. */
    pcapng_put32(p + 12, 0x80000000u);
    assert_int_equal(pcapng_epb_decode(p, b.len, &epb), NR_EPARSE);
    pcapng_put32(p + 12, 0x7fffffffu);
    pcapng_put32(p + 16, 0xffffffffu);
    assert_int_equal(pcapng_epb_decode(p, b.len, &epb), 0);
    assert_int_equal(epb.ts_ns, INT64_MAX);
    /* Shorter than an EPB can be. */
    b.len = 0;
    pcapng_put32(p, PCAPNG_BT_EPB);
    pcapng_put32(p + 4, 28);
    pcapng_put32(p + 24, 28);
    assert_int_equal(pcapng_epb_decode(p, 28, &epb), NR_EPARSE);
    nr_buf_free(&b);
}

static void test_idb_decode_malformed(void **state)
{
    struct pcapng_idb idb = {.snaplen = 77};
    struct nr_buf b;
    uint8_t *p;

    nr_buf_init(&b, 4096);
    assert_int_equal(pcapng_idb_append(&b, 1, 1500, "eth0", NULL), 0); /* 40 bytes */
    p = b.data;
    /* if_name's length past the options (13 would still fit with its padding). */
    p[18] = 13;
    assert_int_equal(pcapng_idb_decode(p, b.len, &idb), 0);
    idb.snaplen = 77;
    p[18] = 17;
    assert_int_equal(pcapng_idb_decode(p, b.len, &idb), NR_EPARSE);
    p[18] = 4;
    /* if_tsresol of the wrong length. */
    p[26] = 2;
    assert_int_equal(pcapng_idb_decode(p, b.len, &idb), NR_EPARSE);
    p[26] = 1;
    assert_int_equal(idb.snaplen, 77); /* untouched on failure */
    /* Not an IDB, or shorter than one. */
    assert_int_equal(pcapng_idb_decode(p, b.len - 4, &idb), NR_EPARSE);
    pcapng_put32(p, PCAPNG_BT_EPB);
    assert_int_equal(pcapng_idb_decode(p, b.len, &idb), NR_EPARSE);

    /* An IDB without options: microseconds, no names. */
    b.len = 0;
    pcapng_put32(p, PCAPNG_BT_IDB);
    pcapng_put32(p + 4, 20);
    pcapng_put32(p + 8, 228);
    pcapng_put32(p + 12, 9000);
    pcapng_put32(p + 16, 20);
    assert_int_equal(pcapng_idb_decode(p, 20, &idb), 0);
    assert_int_equal(idb.link_type, 228);
    assert_int_equal(idb.snaplen, 9000);
    assert_string_equal(idb.name, "");
    assert_string_equal(idb.description, "");
    assert_int_equal(idb.tsresol, 6);
    pcapng_put32(p + 4, 16);
    pcapng_put32(p + 12, 16);
    assert_int_equal(pcapng_idb_decode(p, 16, &idb), NR_EPARSE);
    nr_buf_free(&b);
}

struct seen {
    int calls;
    int stop_at; /* return 42 from this call (1-based), 0: never */
    char last[1100];
    int last_family;
};

static int see_name(const struct pcapng_name *name, void *arg)
{
    struct seen *s = arg;

    s->calls++;
    s->last_family = name->family;
    snprintf(s->last, sizeof(s->last), "%s", name->name);
    return s->calls == s->stop_at ? 42 : 0;
}

/* An NRB made by hand: records given as {type, length, value...}. */
static size_t make_nrb(uint8_t *p, const uint8_t *records, size_t records_len)
{
    size_t total = 12 + records_len;

    pcapng_put32(p, PCAPNG_BT_NRB);
    pcapng_put32(p + 4, (uint32_t)total);
    memcpy(p + 8, records, records_len);
    pcapng_put32(p + total - 4, (uint32_t)total);
    return total;
}

static void test_nrb_foreach_edges(void **state)
{
    /* Records: type, length, value padded to 4. */
    /* clang-format off */
    static const uint8_t two_names[] = {
        1, 0, 8, 0, 10, 0, 0, 1, 'a', 0, 'b', 0, /* IPv4, two names */
        0, 0, 0, 0,                              /* nrb_record_end */
    };
    static const uint8_t other_type[] = {
        9, 0, 4, 0, 1, 2, 3, 4,                  /* a type we skip */
        1, 0, 6, 0, 10, 0, 0, 1, 'c', 0, 0, 0,
    };
    static const uint8_t no_end[] = {1, 0, 6, 0, 10, 0, 0, 1, 'd', 'e', 0, 0};
    static const uint8_t empty_names[] = {1, 0, 7, 0, 10, 0, 0, 1, 0, 0, 0, 0};
    static const uint8_t past[] = {1, 0, 9, 0, 10, 0, 0, 1, 'a', 0, 0, 0};
    static const uint8_t short_v6[] = {2, 0, 8, 0, 1, 2, 3, 4, 'a', 0, 0, 0};
    /* clang-format on */
    uint8_t buf[2048];
    struct seen s = {0};
    size_t len;

    len = make_nrb(buf, two_names, sizeof(two_names));
    assert_int_equal(pcapng_nrb_foreach(buf, len, see_name, &s), 0);
    assert_int_equal(s.calls, 2); /* one call per name */
    assert_string_equal(s.last, "b");
    s = (struct seen){.stop_at = 1};
    assert_int_equal(pcapng_nrb_foreach(buf, len, see_name, &s), 42);
    assert_int_equal(s.calls, 1);

    s = (struct seen){0};
    len = make_nrb(buf, other_type, sizeof(other_type));
    assert_int_equal(pcapng_nrb_foreach(buf, len, see_name, &s), 0);
    assert_int_equal(s.calls, 1);
    assert_string_equal(s.last, "c");

    s = (struct seen){0};
    len = make_nrb(buf, no_end, sizeof(no_end)); /* no end record, name without its NUL */
    assert_int_equal(pcapng_nrb_foreach(buf, len, see_name, &s), 0);
    assert_int_equal(s.calls, 1);
    assert_string_equal(s.last, "de");

    s = (struct seen){0};
    len = make_nrb(buf, empty_names, sizeof(empty_names)); /* nothing to call fn with */
    assert_int_equal(pcapng_nrb_foreach(buf, len, see_name, &s), 0);
    assert_int_equal(s.calls, 0);

    len = make_nrb(buf, past, sizeof(past));
    assert_int_equal(pcapng_nrb_foreach(buf, len, see_name, &s), NR_EPARSE);
    len = make_nrb(buf, short_v6, sizeof(short_v6));
    assert_int_equal(pcapng_nrb_foreach(buf, len, see_name, &s), NR_EPARSE);
    assert_int_equal(pcapng_nrb_foreach(buf, len - 4, see_name, &s), NR_EPARSE);

    /* A name of 2000 bytes reaches fn cut to 1023. */
    {
        char name[2001];
        struct pcapng_name n = {.family = 4, .addr = {1, 2, 3, 4}, .name = name};
        struct nr_buf b;

        memset(name, 'x', 2000);
        name[2000] = '\0';
        s = (struct seen){0};
        nr_buf_init(&b, sizeof(buf));
        assert_int_equal(pcapng_nrb_append(&b, &n, 1), 0);
        assert_int_equal(pcapng_nrb_foreach(b.data, b.len, see_name, &s), 0);
        assert_int_equal(s.calls, 1);
        assert_int_equal(s.last_family, 4);
        assert_int_equal(strlen(s.last), 1023);
        nr_buf_free(&b);
    }
}

/* ---- pcapng_batch_validate ---- */

static const uint32_t snaplens[2] = {65535, 100};

static struct pcapng_batch_rules rules(bool sorted)
{
    return (struct pcapng_batch_rules){
        .snaplens = snaplens,
        .n_interfaces = 2,
        .min_ts_ns = 1,
        .max_ts_ns = 1000,
        .sorted = sorted,
    };
}

static void batch_bad(const struct nr_buf *b, const struct pcapng_batch_rules *r, const char *want)
{
    struct pcapng_batch_info info = {.packets = 12345};
    char err[256] = "";
    int rc = pcapng_batch_validate(b->data, b->len, r, &info, err, sizeof(err));

    if (rc != NR_EPARSE)
        fail_msg("rc %d (%s), want NR_EPARSE with \"%s\"", rc, err, want);
    assert_string_equal(err, want);
    assert_int_equal(info.packets, 12345); /* untouched on failure */
}

static struct pcapng_batch_info batch_ok(const struct nr_buf *b, const struct pcapng_batch_rules *r)
{
    struct pcapng_batch_info info;
    char err[256] = "x";
    int rc = pcapng_batch_validate(b->data, b->len, r, &info, err, sizeof(err));

    if (rc != 0)
        fail_msg("rc %d: %s", rc, err);
    assert_string_equal(err, "");
    return info;
}

/* Four EPBs of 32 bytes each, at offsets 0, 32, 64, 96. */
static void four(struct nr_buf *b)
{
    b->len = 0;
    for (int i = 0; i < 4; i++)
        add_epb(b, (uint32_t)i % 2, 10 + i, 0);
}

static void test_batch_valid(void **state)
{
    struct pcapng_batch_rules r = rules(true);
    struct pcapng_batch_info info;
    struct nr_buf b;

    nr_buf_init(&b, 1 << 20);
    info = batch_ok(&b, &r); /* empty */
    assert_int_equal(info.packets, 0);
    assert_int_equal(info.packet_bytes, 0);

    add_epb(&b, 0, 1, 65535); /* the bounds themselves pass */
    add_epb(&b, 1, 5, 100);
    add_epb(&b, 1, 5, 0);
    assert_int_equal(pcapng_epb_append(&b, 0, 1000, zeros, 3, 3, "with options"), 0);
    info = batch_ok(&b, &r);
    assert_int_equal(info.packets, 4);
    assert_int_equal(info.first_ts_ns, 1);
    assert_int_equal(info.last_ts_ns, 1000);
    assert_int_equal(info.packet_bytes, 65535 + 100 + 3);

    /* Without an error buffer. */
    assert_int_equal(pcapng_batch_validate(b.data, b.len, &r, &info, NULL, 0), 0);
    nr_buf_free(&b);
}

static void test_batch_sorted_vs_unsorted(void **state)
{
    struct pcapng_batch_rules sorted = rules(true);
    struct pcapng_batch_rules unsorted = rules(false);
    struct pcapng_batch_info info;
    struct nr_buf b;

    nr_buf_init(&b, 4096);
    add_epb(&b, 0, 3, 0);
    add_epb(&b, 0, 9, 0);
    add_epb(&b, 0, 9, 0); /* equal is not backwards */
    add_epb(&b, 1, 5, 0);
    add_epb(&b, 1, 7, 0);
    batch_bad(&b, &sorted, "block 3 at offset 96: timestamp 5 goes backwards (previous 9)");
    info = batch_ok(&b, &unsorted);
    assert_int_equal(info.packets, 5);
    assert_int_equal(info.first_ts_ns, 3); /* first and last as they come */
    assert_int_equal(info.last_ts_ns, 7);
    nr_buf_free(&b);
}

static void test_batch_lies(void **state)
{
    struct pcapng_batch_rules r = rules(true);
    struct nr_buf b;

    nr_buf_init(&b, 1 << 20);

    four(&b);
    pcapng_put32(b.data + 96 + 8, 7);
    batch_bad(&b, &r, "block 3 at offset 96: interface id 7 is not known (2 interfaces)");

    four(&b);
    pcapng_put32(b.data + 32 + 4, 13);
    batch_bad(&b, &r, "block 1 at offset 32: block total length 13 is not a multiple of 4");
    pcapng_put32(b.data + 32 + 4, 8);
    batch_bad(&b, &r,
              "block 1 at offset 32: block total length 8 is less than the smallest block (12)");
    pcapng_put32(b.data + 32 + 4, PCAPNG_MAX_BLOCK + 4);
    batch_bad(&b, &r,
              "block 1 at offset 32: block total length 4194308 is more than the largest block "
              "(4194304)");

    b.len = 0;
    add_epb(&b, 0, 10, 28); /* 60 bytes */
    pcapng_put32(b.data + 56, 64);
    batch_bad(&b, &r, "block 0 at offset 0: trailing length 64 differs from leading 60");

    b.len = 0;
    add_epb(&b, 1, 10, 0);
    add_epb(&b, 0, 10, 70000);
    batch_bad(&b, &r, "block 1 at offset 32: captured length 70000 > snaplen 65535 of interface 0");
    b.len = 0;
    add_epb(&b, 1, 10, 101);
    batch_bad(&b, &r, "block 0 at offset 0: captured length 101 > snaplen 100 of interface 1");

    b.len = 0;
    add_epb(&b, 0, 10, 100);
    pcapng_put32(b.data + 24, 90);
    batch_bad(&b, &r, "block 0 at offset 0: captured length 100 > original length 90");
    pcapng_put32(b.data + 24, 200);
    pcapng_put32(b.data + 20, 104 + 1);
    batch_bad(&b, &r, "block 0 at offset 0: captured length 105 runs past the block (length 132)");

    four(&b);
    pcapng_put32(b.data + 64 + 16, 5);
    batch_bad(&b, &r, "block 2 at offset 64: timestamp 5 goes backwards (previous 11)");
    r.sorted = false;
    pcapng_put32(b.data + 64 + 16, 0);
    batch_bad(&b, &r, "block 2 at offset 64: timestamp 0 outside the sane range [1, 1000]");
    pcapng_put32(b.data + 64 + 12, 1);
    batch_bad(&b, &r,
              "block 2 at offset 64: timestamp 4294967296 outside the sane range [1, 1000]");
    pcapng_put32(b.data + 64 + 12, 0xffffffffu);
    batch_bad(&b, &r,
              "block 2 at offset 64: timestamp 18446744069414584320 does not fit in 63 bits");
    r.sorted = true;

    four(&b);
    b.len = 32;
    assert_int_equal(pcapng_idb_append(&b, 1, 100, NULL, NULL), 0);
    batch_bad(&b, &r, "block 1 at offset 32: is not an EPB (type 0x1)");
    b.len = 0;
    assert_int_equal(pcapng_shb_append(&b, NULL, NULL, NULL, NULL), 0);
    batch_bad(&b, &r, "block 0 at offset 0: is not an EPB (type 0xa0d0d0a)");

    /* Torn: the last block is cut, or not even its header is there. */
    four(&b);
    add_epb(&b, 0, 20, 32); /* 64 bytes at offset 128 */
    b.len = 128 + 20;
    batch_bad(&b, &r,
              "block 4 at offset 128: block runs past the end of the batch (length 64, 20 bytes "
              "left)");
    b.len = 128 + 5;
    batch_bad(&b, &r,
              "block 4 at offset 128: block runs past the end of the batch (5 bytes left, too "
              "few for a header)");

    /* Options that run past the block. */
    b.len = 0;
    assert_int_equal(pcapng_epb_append(&b, 0, 10, zeros, 4, 4, "comment"), 0);
    b.data[28 + 4 + 2] = 200; /* opt_comment's length */
    batch_bad(&b, &r,
              "block 0 at offset 0: option 1 of length 200 runs past the options (12 bytes "
              "left)");

    /* No interface at all. */
    four(&b);
    r.n_interfaces = 0;
    r.snaplens = NULL;
    batch_bad(&b, &r, "block 0 at offset 0: interface id 0 is not known (0 interfaces)");
    nr_buf_free(&b);
}

/* pcapng's snaplen 0 is "no limit": only the largest snaplen we write applies. */
static void test_batch_snaplen_zero(void **state)
{
    const uint32_t no_limit[1] = {0};
    struct pcapng_batch_rules r = rules(true);
    struct nr_buf b;

    r.snaplens = no_limit;
    r.n_interfaces = 1;
    nr_buf_init(&b, 1 << 20);
    add_epb(&b, 0, 10, PCAPNG_MAX_SNAPLEN);
    batch_ok(&b, &r);

    /* One word more, made by hand: the encoder would refuse it. */
    b.len = 0;
    add_epb(&b, 0, 10, PCAPNG_MAX_SNAPLEN - 4);
    pcapng_put32(b.data + 4, 32 + PCAPNG_MAX_SNAPLEN + 4);
    pcapng_put32(b.data + 20, PCAPNG_MAX_SNAPLEN + 4);
    pcapng_put32(b.data + 24, PCAPNG_MAX_SNAPLEN + 4);
    assert_int_equal(nr_buf_append(&b, zeros, 8), 0);
    pcapng_put32(b.data + b.len - 4, 32 + PCAPNG_MAX_SNAPLEN + 4);
    batch_bad(&b, &r,
              "block 0 at offset 0: captured length 262148 > snaplen 262144 of interface 0");
    nr_buf_free(&b);
}

static void test_batch_error_buffer(void **state)
{
    struct pcapng_batch_rules r = rules(true);
    struct pcapng_batch_info info;
    struct nr_buf b;
    char err[20];

    nr_buf_init(&b, 4096);
    four(&b);
    pcapng_put32(b.data + 96 + 8, 7);
    memset(err, 'x', sizeof(err));
    assert_int_equal(pcapng_batch_validate(b.data, b.len, &r, &info, err, sizeof(err)), NR_EPARSE);
    assert_string_equal(err, "block 3 at offset 9"); /* cut, terminated */
    memset(err, 'x', sizeof(err));
    assert_int_equal(pcapng_batch_validate(b.data, b.len, &r, &info, err, 1), NR_EPARSE);
    assert_int_equal(err[0], '\0');
    assert_int_equal(err[1], 'x');
    assert_int_equal(pcapng_batch_validate(b.data, b.len, &r, &info, NULL, 0), NR_EPARSE);
    nr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peek_whole_blocks),
        cmocka_unit_test(test_peek_torn),
        cmocka_unit_test(test_peek_malformed),
        cmocka_unit_test(test_whole_prefix_every_cut),
        cmocka_unit_test(test_epb_decode_malformed),
        cmocka_unit_test(test_idb_decode_malformed),
        cmocka_unit_test(test_nrb_foreach_edges),
        cmocka_unit_test(test_batch_valid),
        cmocka_unit_test(test_batch_sorted_vs_unsorted),
        cmocka_unit_test(test_batch_lies),
        cmocka_unit_test(test_batch_snaplen_zero),
        cmocka_unit_test(test_batch_error_buffer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
