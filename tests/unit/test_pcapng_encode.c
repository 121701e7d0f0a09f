/* lib/pcapng/encode.c and pcap.c: each block byte for byte as the draft lays it out, what the
 * decoders read back from it, and files that tshark and capinfos open without a complaint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pcapng/decode.h"
#include "pcapng/encode.h"
#include "pcapng/pcap.h"
#include "util/error.h"

#define LE32(v) (uint8_t)(v), (uint8_t)((v) >> 8), (uint8_t)((v) >> 16), (uint8_t)((v) >> 24)
#define LE16(v) (uint8_t)(v), (uint8_t)((v) >> 8)

/* Fails with both buffers in hex from the first byte that differs. */
static void bytes_equal(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len)
{
    size_t i = 0;

    while (i < got_len && i < want_len && got[i] == want[i])
        i++;
    if (i == got_len && i == want_len)
        return;
    print_error("length %zu, want %zu; first difference at byte %zu\n", got_len, want_len, i);
    for (size_t j = i & ~(size_t)15; j < i + 16 && (j < got_len || j < want_len); j++)
        print_error("  %4zu: got %02x want %02x\n", j, j < got_len ? got[j] : 0,
                    j < want_len ? want[j] : 0);
    fail();
}

static void test_shb_layout(void **state)
{
    /* One row per field, as the draft draws the block. */
    /* clang-format off */
    static const uint8_t bare[] = {
        LE32(0x0A0D0D0Au), LE32(28), LE32(0x1A2B3C4Du), LE16(1), LE16(0),
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, LE32(28),
    };
    static const uint8_t with_opts[] = {
        LE32(0x0A0D0D0Au), LE32(56), LE32(0x1A2B3C4Du), LE16(1), LE16(0),
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        LE16(1), LE16(7), 'n', 'e', 't', 'r', 'e', 'e', 'l', 0, /* opt_comment, padded */
        LE16(3), LE16(5), 'L', 'i', 'n', 'u', 'x', 0, 0, 0,     /* shb_os */
        LE16(0), LE16(0), LE32(56),
    };
    /* clang-format on */
    struct nr_buf b;

    nr_buf_init(&b, 4096);
    assert_int_equal(pcapng_shb_append(&b, NULL, NULL, NULL, NULL), 0);
    bytes_equal(b.data, b.len, bare, sizeof(bare));
    b.len = 0;
    assert_int_equal(pcapng_shb_append(&b, "", NULL, "", ""), 0); /* empty is absent */
    bytes_equal(b.data, b.len, bare, sizeof(bare));
    b.len = 0;
    assert_int_equal(pcapng_shb_append(&b, "netreel", "", "Linux", NULL), 0);
    bytes_equal(b.data, b.len, with_opts, sizeof(with_opts));
    nr_buf_free(&b);
}

static void test_idb_layout(void **state)
{
    /* One row per field, as the draft draws the block. */
    /* clang-format off */
    static const uint8_t want[] = {
        LE32(1), LE32(52), LE16(1), LE16(0), LE32(65535),
        LE16(2), LE16(4), 'e', 't', 'h', '0',               /* if_name */
        LE16(3), LE16(5), 'd', '/', 'p', '-', '0', 0, 0, 0, /* if_description */
        LE16(9), LE16(1), 9, 0, 0, 0,                       /* if_tsresol: ns */
        LE16(0), LE16(0), LE32(52),
    };
    static const uint8_t bare[] = {
        LE32(1), LE32(32), LE16(276), LE16(0), LE32(262144),
        LE16(9), LE16(1), 9, 0, 0, 0, LE16(0), LE16(0), LE32(32),
    };
    /* clang-format on */
    struct nr_buf b;

    nr_buf_init(&b, 4096);
    assert_int_equal(pcapng_idb_append(&b, 1, 65535, "eth0", "d/p-0"), 0);
    bytes_equal(b.data, b.len, want, sizeof(want));
    b.len = 0;
    assert_int_equal(pcapng_idb_append(&b, 276, PCAPNG_MAX_SNAPLEN, NULL, ""), 0);
    bytes_equal(b.data, b.len, bare, sizeof(bare));
    b.len = 0;
    assert_int_equal(pcapng_idb_append(&b, 1, 0, "eth0", NULL), -EINVAL);
    assert_int_equal(pcapng_idb_append(&b, 1, PCAPNG_MAX_SNAPLEN + 1, "eth0", NULL), -EINVAL);
    assert_int_equal(b.len, 0);
    nr_buf_free(&b);
}

static void test_nrb_layout(void **state)
{
    /* One row per field, as the draft draws the block. */
    /* clang-format off */
    static const uint8_t want[] = {
        LE32(4), LE32(56),
        LE16(1), LE16(8), 10, 0, 0, 1, 'a', '/', 'b', 0,
        LE16(2), LE16(23), 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        'n', 's', '/', 'p', 'o', 'd', 0, 0,
        LE16(0), LE16(0), LE32(56),
    };
    /* clang-format on */
    static const uint8_t empty[] = {LE32(4), LE32(16), LE16(0), LE16(0), LE32(16)};
    struct pcapng_name names[2] = {
        {.family = 4, .addr = {10, 0, 0, 1}, .name = "a/b"},
        {.family = 6, .addr = {0xfd, [15] = 1}, .name = "ns/pod"},
    };
    struct nr_buf b;
    char *huge;

    nr_buf_init(&b, 1 << 20);
    assert_int_equal(pcapng_nrb_append(&b, names, 2), 0);
    bytes_equal(b.data, b.len, want, sizeof(want));
    b.len = 0;
    assert_int_equal(pcapng_nrb_append(&b, NULL, 0), 0);
    bytes_equal(b.data, b.len, empty, sizeof(empty));
    b.len = 0;

    names[1].family = 5;
    assert_int_equal(pcapng_nrb_append(&b, names, 2), -EINVAL);
    names[1].family = 6;
    huge = malloc(65002);
    assert_non_null(huge);
    memset(huge, 'x', 65001);
    huge[65001] = '\0';
    names[0].name = huge;
    assert_int_equal(pcapng_nrb_append(&b, names, 1), -EINVAL);
    huge[65000] = '\0'; /* the longest allowed */
    assert_int_equal(pcapng_nrb_append(&b, names, 1), 0);
    assert_int_equal(b.len, 16 + 4 + PCAPNG_PAD4(4 + 65000 + 1));
    free(huge);
    nr_buf_free(&b);
}

static void test_isb_layout(void **state)
{
    /* One row per field, as the draft draws the block. */
    /* clang-format off */
    static const uint8_t want[] = {
        LE32(5), LE32(76), LE32(1), LE32(1), LE32(2),
        LE16(3), LE16(8), LE32(0), LE32(5),   /* isb_endtime: high word, low word */
        LE16(4), LE16(8), LE32(100), LE32(0), /* isb_ifrecv: a little-endian u64 */
        LE16(5), LE16(8), LE32(2), LE32(1),   /* isb_ifdrop */
        LE16(7), LE16(8), LE32(3), LE32(0),   /* isb_osdrop */
        LE16(0), LE16(0), LE32(76),
    };
    /* clang-format on */
    struct pcapng_isb isb = {
        .ifid = 1,
        .ts_ns = INT64_C(0x100000002),
        .end_ns = 5,
        .ifrecv = 100,
        .ifdrop = UINT64_C(0x100000002),
        .osdrop = 3,
    };
    struct nr_buf b;

    nr_buf_init(&b, 4096);
    assert_int_equal(pcapng_isb_append(&b, &isb), 0);
    bytes_equal(b.data, b.len, want, sizeof(want));
    b.len = 0;
    isb.start_ns = 7;
    assert_int_equal(pcapng_isb_append(&b, &isb), 0);
    assert_int_equal(b.len, 88);
    assert_int_equal(pcapng_le32(b.data + 20), 2 | 8 << 16); /* isb_starttime first */
    assert_int_equal(pcapng_le32(b.data + 28), 7);
    b.len = 0;
    isb.ts_ns = -1;
    assert_int_equal(pcapng_isb_append(&b, &isb), -EINVAL);
    assert_int_equal(b.len, 0);
    nr_buf_free(&b);
}

static void test_epb_layout(void **state)
{
    /* One row per field, as the draft draws the block. */
    /* clang-format off */
    static const uint8_t want[] = {
        LE32(6), LE32(40), LE32(0), LE32(2), LE32(3), LE32(5), LE32(60),
        'a', 'b', 'c', 'd', 'e', 0, 0, 0, LE32(40),
    };
    static const uint8_t with_comment[] = {
        LE32(6), LE32(52), LE32(3), LE32(2), LE32(3), LE32(5), LE32(60),
        'a', 'b', 'c', 'd', 'e', 0, 0, 0,
        LE16(1), LE16(2), 'h', 'i', 0, 0, LE16(0), LE16(0), LE32(52),
    };
    static const uint8_t empty[] = {
        LE32(6), LE32(32), LE32(0), LE32(0), LE32(0), LE32(0), LE32(0), LE32(32),
    };
    /* clang-format on */
    int64_t ts = INT64_C(0x200000003);
    struct nr_buf b;

    nr_buf_init(&b, 4096);
    assert_int_equal(pcapng_epb_append(&b, 0, ts, "abcde", 5, 60, NULL), 0);
    bytes_equal(b.data, b.len, want, sizeof(want));
    b.len = 0;
    assert_int_equal(pcapng_epb_append(&b, 3, ts, "abcde", 5, 60, "hi"), 0);
    bytes_equal(b.data, b.len, with_comment, sizeof(with_comment));
    b.len = 0;
    assert_int_equal(pcapng_epb_append(&b, 0, 0, NULL, 0, 0, ""), 0);
    bytes_equal(b.data, b.len, empty, sizeof(empty));
    b.len = 0;

    assert_int_equal(pcapng_epb_append(&b, 0, ts, "abcde", 5, 4, NULL), -EINVAL);
    assert_int_equal(pcapng_epb_append(&b, 0, -1, "abcde", 5, 60, NULL), -EINVAL);
    assert_int_equal(pcapng_epb_append(&b, 0, ts, NULL, 1, 60, NULL), -EINVAL);
    assert_int_equal(
        pcapng_epb_append(&b, 0, ts, "abcde", PCAPNG_MAX_SNAPLEN + 1, PCAPNG_MAX_SNAPLEN + 1, NULL),
        -EINVAL);
    assert_int_equal(b.len, 0);
    nr_buf_free(&b);
}

/* A block that does not fit leaves the buffer as it was, whatever the block. */
static void test_overflow_leaves_buffer_unchanged(void **state)
{
    struct pcapng_isb isb = {.ts_ns = 1};
    struct pcapng_name name = {.family = 4, .name = "x"};
    struct nr_buf b;

    nr_buf_init(&b, 59);
    assert_int_equal(pcapng_epb_append(&b, 0, 1, "abcd", 4, 4, NULL), 0); /* 36 bytes */
    assert_int_equal(pcapng_shb_append(&b, NULL, NULL, NULL, NULL), -EOVERFLOW);
    assert_int_equal(pcapng_idb_append(&b, 1, 100, NULL, NULL), -EOVERFLOW);
    assert_int_equal(pcapng_isb_append(&b, &isb), -EOVERFLOW);
    assert_int_equal(pcapng_nrb_append(&b, &name, 1), -EOVERFLOW);
    assert_int_equal(pcapng_epb_append(&b, 0, 1, "abcd", 4, 4, NULL), -EOVERFLOW);
    assert_int_equal(pcapng_pcap_header_append(&b, 1, 100), -EOVERFLOW);
    assert_int_equal(pcapng_pcap_record_append(&b, 1, "abcdabcd", 8, 8), -EOVERFLOW);
    assert_int_equal(b.len, 36);
    assert_int_equal(pcapng_epb_append(&b, 0, 1, NULL, 0, 0, NULL), -EOVERFLOW); /* 32 > 23 */
    assert_int_equal(pcapng_pcap_record_append(&b, 1, "abcdabc", 7, 7), 0);      /* 23 fits */
    assert_int_equal(b.len, 59);
    nr_buf_free(&b);
}

static void test_epb_round_trip(void **state)
{
    uint8_t data[300];
    struct pcapng_epb epb;
    struct nr_buf b;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + 1);
    nr_buf_init(&b, 1 << 16);
    for (uint32_t caplen = 0; caplen <= 9; caplen++) {
        for (int comment = 0; comment < 2; comment++) {
            int64_t ts = INT64_C(1700000000123456789) + caplen;

            b.len = 0;
            assert_int_equal(pcapng_epb_append(&b, caplen, ts, data, caplen, caplen + 40,
                                               comment ? "a comment" : NULL),
                             0);
            assert_int_equal(b.len % 4, 0);
            assert_int_equal(pcapng_epb_decode(b.data, b.len, &epb), 0);
            assert_int_equal(epb.ifid, caplen);
            assert_int_equal(epb.ts_ns, ts);
            assert_int_equal(epb.caplen, caplen);
            assert_int_equal(epb.origlen, caplen + 40);
            assert_ptr_equal(epb.data, b.data + 28);
            assert_memory_equal(epb.data, data, caplen);
            assert_int_equal(epb.options_len, comment ? 4 + 12 + 4 : 0);
            if (comment)
                assert_memory_equal(epb.options + 4, "a comment", 9);
            assert_int_equal(epb.block_len, b.len);
        }
    }
    b.len = 0;
    assert_int_equal(pcapng_epb_append(&b, 0, INT64_MAX, data, 300, 1500, NULL), 0);
    assert_int_equal(pcapng_epb_decode(b.data, b.len, &epb), 0);
    assert_int_equal(epb.ts_ns, INT64_MAX);
    assert_int_equal(epb.caplen, 300);
    nr_buf_free(&b);
}

/* The hub's copy of a packet: new interface and time, the source's comment kept, its own
 * epb_flags replaced, epb_packetid added; the length it announces is the length it writes. */
static void test_epb_sighting_options(void **state)
{
    static const uint8_t data[5] = {1, 2, 3, 4, 5};
    struct pcapng_epb in, out;
    struct nr_buf b;
    size_t len;

    nr_buf_init(&b, 4096);
    assert_int_equal(pcapng_epb_append(&b, 0, 1000, data, 5, 9, "netreel tls: pid 7"), 0);
    assert_int_equal(pcapng_epb_decode(b.data, b.len, &in), 0);
    {
        struct nr_buf c;
        nr_buf_init(&c, 4096);
        len = pcapng_epb_sighting_len(&in, 0, 2, 77);
        assert_int_equal(pcapng_epb_append_sighting(&c, &in, 3, 500, 0, 2, 77), 0);
        assert_int_equal(c.len, len);
        assert_int_equal(pcapng_epb_decode(c.data, c.len, &out), 0);
        assert_int_equal(out.ifid, 3);
        assert_int_equal(out.ts_ns, 500);
        assert_int_equal(out.caplen, 5);
        assert_int_equal(out.origlen, 9);
        assert_memory_equal(out.data, data, 5);
        /* comment (1), then flags (2) = 2, then packet id (5) = 77, then the end */
        assert_int_equal(out.options[0], 1);
        assert_memory_equal(out.options + 4, "netreel tls: pid 7", 18);
        assert_int_equal(out.options[24], 2);
        assert_int_equal(out.options[28], 2);
        assert_int_equal(out.options[32], 5);
        assert_int_equal(out.options[36], 77);
        assert_int_equal(out.options[44], 0);
        assert_int_equal(out.options_len, 48);
        /* again from the copy, with other flags: one epb_flags, one id, not two */
        c.len = 0;
        in = out;
        nr_buf_free(&b);
        nr_buf_init(&b, 4096);
        assert_int_equal(pcapng_epb_append_sighting(&b, &in, 1, 600, 3, 1, 78), 0);
        assert_int_equal(pcapng_epb_decode(b.data, b.len, &out), 0);
        assert_int_equal(out.caplen, 3); /* cut */
        assert_int_equal(out.options_len, 48);
        assert_int_equal(out.options[28], 1);
        assert_int_equal(out.options[36], 78);
        /* no options at all: none written, not even the end */
        nr_buf_free(&c);
    }
    nr_buf_free(&b);
    nr_buf_init(&b, 4096);
    assert_int_equal(pcapng_epb_append(&b, 0, 1000, data, 5, 5, NULL), 0);
    assert_int_equal(pcapng_epb_decode(b.data, b.len, &in), 0);
    {
        struct nr_buf c;
        nr_buf_init(&c, 4096);
        assert_int_equal(pcapng_epb_append_sighting(&c, &in, 0, 1, 0, 0, 0), 0);
        assert_int_equal(c.len, PCAPNG_EPB_MIN + 8);
        assert_int_equal(pcapng_epb_sighting_len(&in, 0, 0, 0), c.len);
        nr_buf_free(&c);
    }
    nr_buf_free(&b);
}

static void test_idb_round_trip(void **state)
{
    char long_name[3000];
    struct pcapng_idb idb;
    struct nr_buf b;

    memset(long_name, 'n', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    nr_buf_init(&b, 8192);
    assert_int_equal(pcapng_idb_append(&b, 276, 1234, "any", "kube-system/coredns-0"), 0);
    assert_int_equal(pcapng_idb_decode(b.data, b.len, &idb), 0);
    assert_int_equal(idb.link_type, 276);
    assert_int_equal(idb.snaplen, 1234);
    assert_string_equal(idb.name, "any");
    assert_string_equal(idb.description, "kube-system/coredns-0");
    assert_int_equal(idb.tsresol, 9);

    /* Names longer than the struct's arrays come back cut, still terminated. */
    b.len = 0;
    assert_int_equal(pcapng_idb_append(&b, 1, 100, long_name, long_name), 0);
    assert_int_equal(pcapng_idb_decode(b.data, b.len, &idb), 0);
    assert_int_equal(strlen(idb.name), sizeof(idb.name) - 1);
    assert_int_equal(strlen(idb.description), sizeof(idb.description) - 1);
    assert_memory_equal(idb.name, long_name, sizeof(idb.name) - 1);
    nr_buf_free(&b);
}

struct name_list {
    size_t n;
    struct pcapng_name names[8];
    char text[8][64];
};

static int collect_name(const struct pcapng_name *name, void *arg)
{
    struct name_list *l = arg;

    assert_true(l->n < 8);
    l->names[l->n] = *name;
    snprintf(l->text[l->n], sizeof(l->text[0]), "%s", name->name);
    l->names[l->n].name = l->text[l->n];
    l->n++;
    return 0;
}

static void test_nrb_round_trip(void **state)
{
    const struct pcapng_name names[3] = {
        {.family = 4, .addr = {192, 168, 1, 2}, .name = "default/web-0"},
        {.family = 6, .addr = {0x20, 0x01, 0x0d, 0xb8, [15] = 0x42}, .name = "kube-system/dns"},
        {.family = 4, .addr = {10, 1, 2, 3}, .name = "a"},
    };
    struct name_list got = {0};
    struct nr_buf b;

    nr_buf_init(&b, 4096);
    assert_int_equal(pcapng_nrb_append(&b, names, 3), 0);
    assert_int_equal(pcapng_nrb_foreach(b.data, b.len, collect_name, &got), 0);
    assert_int_equal(got.n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(got.names[i].family, names[i].family);
        assert_memory_equal(got.names[i].addr, names[i].addr, names[i].family == 4 ? 4 : 16);
        assert_string_equal(got.names[i].name, names[i].name);
    }
    nr_buf_free(&b);
}

/* epb_append_copy: the same block with a new interface id, or cut to a snaplen. */
static void test_epb_copy(void **state)
{
    uint8_t data[100];
    struct pcapng_epb src;
    struct pcapng_epb copy;
    struct nr_buf in;
    struct nr_buf out;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(255 - i);
    nr_buf_init(&in, 4096);
    nr_buf_init(&out, 4096);
    assert_int_equal(pcapng_epb_append(&in, 2, 123456789, data, 99, 1500, "kept"), 0);
    assert_int_equal(pcapng_epb_decode(in.data, in.len, &src), 0);

    /* No cut (no snaplen, equal, larger): byte for byte but the interface id. */
    static const uint32_t no_cut[] = {0, 99, 100, PCAPNG_MAX_SNAPLEN};
    for (size_t i = 0; i < sizeof(no_cut) / sizeof(no_cut[0]); i++) {
        out.len = 0;
        assert_int_equal(pcapng_epb_append_copy(&out, &src, 7, no_cut[i]), 0);
        assert_int_equal(out.len, in.len);
        assert_memory_equal(out.data, in.data, 8);
        assert_int_equal(pcapng_le32(out.data + 8), 7);
        assert_memory_equal(out.data + 12, in.data + 12, in.len - 12);
    }

    /* Cut: caplen is the snaplen, origlen and options as they were. */
    for (uint32_t snaplen = 1; snaplen < 99; snaplen += 13) {
        out.len = 0;
        assert_int_equal(pcapng_epb_append_copy(&out, &src, 1, snaplen), 0);
        assert_int_equal(out.len, 32 + PCAPNG_PAD4(snaplen) + src.options_len);
        assert_int_equal(pcapng_epb_decode(out.data, out.len, &copy), 0);
        assert_int_equal(copy.ifid, 1);
        assert_int_equal(copy.ts_ns, 123456789);
        assert_int_equal(copy.caplen, snaplen);
        assert_int_equal(copy.origlen, 1500);
        assert_memory_equal(copy.data, data, snaplen);
        for (size_t i = snaplen; i < PCAPNG_PAD4(snaplen); i++)
            assert_int_equal(copy.data[i], 0); /* padding is zeros, not the cut-off bytes */
        assert_int_equal(copy.options_len, src.options_len);
        assert_memory_equal(copy.options, src.options, src.options_len);
    }

    /* A copy that does not fit changes nothing; a struct not laid out as decoded is refused. */
    out.max = in.len - 1;
    out.len = 0;
    assert_int_equal(pcapng_epb_append_copy(&out, &src, 1, 0), -EOVERFLOW);
    assert_int_equal(pcapng_epb_append_copy(&out, &src, 1, 98), -EOVERFLOW);
    assert_int_equal(out.len, 0);
    out.max = 4096;
    copy = src;
    copy.block_len += 4;
    assert_int_equal(pcapng_epb_append_copy(&out, &copy, 1, 0), -EINVAL);
    copy = src;
    copy.origlen = 10;
    assert_int_equal(pcapng_epb_append_copy(&out, &copy, 1, 5), -EINVAL);
    assert_int_equal(out.len, 0);
    nr_buf_free(&in);
    nr_buf_free(&out);
}

/* A block may hold more than the largest snaplen (someone else's file); a copy may not. */
/* epb_append_noted: the copy with an opt_comment first, its own options after it. */
static void test_epb_noted(void **state)
{
    static const char note[] = "netreel: 2 segments deleted";
    uint8_t data[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    struct pcapng_epb src, copy;
    struct nr_buf in, out;
    size_t opt = 4 + PCAPNG_PAD4(sizeof(note) - 1);

    nr_buf_init(&in, 4096);
    nr_buf_init(&out, 4096);
    /* Without options of its own, and with one (a comment of its own, kept after the note). */
    assert_int_equal(pcapng_epb_append(&in, 2, 42, data, 10, 10, NULL), 0);
    assert_int_equal(pcapng_epb_decode(in.data, in.len, &src), 0);
    assert_int_equal(pcapng_epb_append_noted(&out, &src, 5, 0, note), 0);
    assert_int_equal(pcapng_epb_decode(out.data, out.len, &copy), 0);
    assert_int_equal(copy.ifid, 5);
    assert_int_equal(copy.ts_ns, 42);
    assert_memory_equal(copy.data, data, 10);
    assert_int_equal(copy.options_len, opt + 4);
    assert_int_equal(copy.options[0] | copy.options[1] << 8, 1); /* opt_comment */
    assert_int_equal(copy.options[2] | copy.options[3] << 8, sizeof(note) - 1);
    assert_memory_equal(copy.options + 4, note, sizeof(note) - 1);
    assert_int_equal(pcapng_le32(copy.options + opt), 0); /* opt_endofopt */

    in.len = out.len = 0;
    assert_int_equal(pcapng_epb_append(&in, 2, 42, data, 10, 10, "own"), 0);
    assert_int_equal(pcapng_epb_decode(in.data, in.len, &src), 0);
    assert_int_equal(pcapng_epb_append_noted(&out, &src, 1, 4, note), 0); /* and cut */
    assert_int_equal(pcapng_epb_decode(out.data, out.len, &copy), 0);
    assert_int_equal(copy.caplen, 4);
    assert_int_equal(copy.origlen, 10);
    assert_int_equal(copy.options_len, opt + 8 + 4);
    assert_memory_equal(copy.options + opt, "\x01\x00\x03\x00own\x00", 8);

    /* No note: the plain copy, byte for byte. */
    out.len = 0;
    assert_int_equal(pcapng_epb_append_noted(&out, &src, 2, 0, NULL), 0);
    assert_int_equal(out.len, in.len);
    assert_memory_equal(out.data, in.data, in.len);
    nr_buf_free(&in);
    nr_buf_free(&out);
}

static void test_epb_copy_of_a_jumbo_block(void **state)
{
    const uint32_t caplen = PCAPNG_MAX_SNAPLEN + 1000;
    const size_t total = 32 + PCAPNG_PAD4(caplen);
    struct pcapng_epb epb;
    struct pcapng_epb copy;
    uint8_t *block = calloc(1, total);
    struct nr_buf out;

    assert_non_null(block);
    pcapng_put32(block, PCAPNG_BT_EPB);
    pcapng_put32(block + 4, (uint32_t)total);
    pcapng_put32(block + 16, 77);
    pcapng_put32(block + 20, caplen);
    pcapng_put32(block + 24, caplen);
    pcapng_put32(block + total - 4, (uint32_t)total);
    assert_int_equal(pcapng_epb_decode(block, total, &epb), 0);
    assert_int_equal(epb.caplen, caplen);

    nr_buf_init(&out, 2 * total);
    assert_int_equal(pcapng_epb_append_copy(&out, &epb, 0, 0), -EINVAL);
    assert_int_equal(pcapng_epb_append_copy(&out, &epb, 0, PCAPNG_MAX_SNAPLEN + 1), -EINVAL);
    assert_int_equal(out.len, 0);
    assert_int_equal(pcapng_epb_append_copy(&out, &epb, 0, PCAPNG_MAX_SNAPLEN), 0);
    assert_int_equal(pcapng_epb_decode(out.data, out.len, &copy), 0);
    assert_int_equal(copy.caplen, PCAPNG_MAX_SNAPLEN);
    assert_int_equal(copy.origlen, caplen);
    assert_int_equal(copy.ts_ns, 77);
    nr_buf_free(&out);
    free(block);
}

/* Strings that do not fit in one option, and blocks longer than any reader takes. */
static void test_too_long(void **state)
{
    char *s = malloc(65537);
    struct pcapng_name *names = calloc(65, sizeof(*names));
    struct nr_buf b;

    assert_non_null(s);
    assert_non_null(names);
    memset(s, 'a', 65536);
    s[65536] = '\0';
    nr_buf_init(&b, 8 << 20);
    assert_int_equal(pcapng_shb_append(&b, s, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(pcapng_shb_append(&b, NULL, NULL, NULL, s), -EINVAL);
    assert_int_equal(pcapng_idb_append(&b, 1, 100, NULL, s), -EINVAL);
    assert_int_equal(pcapng_epb_append(&b, 0, 0, NULL, 0, 0, s), -EINVAL);
    assert_int_equal(b.len, 0);
    s[65535] = '\0'; /* the longest an option holds */
    assert_int_equal(pcapng_epb_append(&b, 0, 0, NULL, 0, 0, s), 0);
    assert_int_equal(b.len, 32 + 4 + 65536 + 4);

    /* 65 names of 65000 bytes: past PCAPNG_MAX_BLOCK. */
    b.len = 0;
    s[65000] = '\0';
    for (size_t i = 0; i < 65; i++)
        names[i] = (struct pcapng_name){.family = 4, .name = s};
    assert_int_equal(pcapng_nrb_append(&b, names, 65), -EINVAL);
    assert_int_equal(b.len, 0);
    assert_int_equal(pcapng_nrb_append(&b, names, 64), 0);
    names[0].name = NULL;
    assert_int_equal(pcapng_nrb_append(&b, names, 1), -EINVAL);
    nr_buf_free(&b);
    free(names);
    free(s);
}

static void test_pcap_layout(void **state)
{
    /* One row per field, as the draft draws the block. */
    /* clang-format off */
    static const uint8_t want[] = {
        LE32(0xA1B23C4Du), LE16(2), LE16(4), LE32(0), LE32(0), LE32(65535), LE32(1),
        LE32(1), LE32(500000000), LE32(3), LE32(70), 'x', 'y', 'z',
        LE32(0xFFFFFFFFu), LE32(999999999), LE32(0), LE32(0),
    };
    /* clang-format on */
    int64_t last = INT64_C(0xFFFFFFFF) * 1000000000 + 999999999;
    struct nr_buf b;

    nr_buf_init(&b, 4096);
    assert_int_equal(pcapng_pcap_header_append(&b, 1, 65535), 0);
    assert_int_equal(pcapng_pcap_record_append(&b, 1500000000, "xyz", 3, 70), 0);
    assert_int_equal(pcapng_pcap_record_append(&b, last, NULL, 0, 0), 0);
    bytes_equal(b.data, b.len, want, sizeof(want));

    b.len = 0;
    assert_int_equal(pcapng_pcap_header_append(&b, 1, 0), -EINVAL);
    assert_int_equal(pcapng_pcap_record_append(&b, last + 1, "x", 1, 1), -EINVAL); /* 2106 */
    assert_int_equal(pcapng_pcap_record_append(&b, -1, "x", 1, 1), -EINVAL);
    assert_int_equal(pcapng_pcap_record_append(&b, 0, "xy", 2, 1), -EINVAL);
    assert_int_equal(b.len, 0);
    nr_buf_free(&b);
}

/* ---- files real tools read ---- */

/* An Ethernet/IPv4/UDP frame of `len` bytes (>= 42) from src to dst. */
static size_t make_frame(uint8_t *f, size_t len, const uint8_t src[4], const uint8_t dst[4])
{
    static const uint8_t eth[14] = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00};
    size_t ip_len = len - 14;
    uint32_t sum = 0;

    memset(f, 0, len);
    memcpy(f, eth, sizeof(eth));
    f[14] = 0x45;
    f[16] = (uint8_t)(ip_len >> 8);
    f[17] = (uint8_t)ip_len;
    f[22] = 64; /* TTL */
    f[23] = 17; /* UDP */
    memcpy(f + 26, src, 4);
    memcpy(f + 30, dst, 4);
    for (size_t i = 14; i < 34; i += 2)
        sum += (uint32_t)(f[i] << 8 | f[i + 1]);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    f[24] = (uint8_t)(~sum >> 8);
    f[25] = (uint8_t)~sum;
    f[34] = 0x30; /* ports 12345 -> 9999 */
    f[35] = 0x39;
    f[36] = 0x27;
    f[37] = 0x0f;
    f[38] = (uint8_t)((ip_len - 20) >> 8);
    f[39] = (uint8_t)(ip_len - 20);
    return len;
}

static void write_file(const char *path, const struct nr_buf *b)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(b->data, 1, b->len, f), b->len);
    assert_int_equal(fclose(f), 0);
}

/* Reads a whole small file into buf (NUL-terminated). */
static void read_text(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* stderr without the one line tshark prints for every run as root: about us, not the file. */
static void strip_root_warning(char *s)
{
    static const char *prefix = "Running as user \"root\"";
    char *line = strstr(s, prefix);

    if (line) {
        char *end = strchr(line, '\n');
        const char *rest = end ? end + 1 : "";

        memmove(line, rest, strlen(rest) + 1);
    }
}

/* Runs `tool args FILE`, asserting exit 0 and a quiet stderr; leaves stdout in out. */
static void run_tool(const char *dir, const char *tool_args, const char *file, char *out,
                     size_t out_size)
{
    char cmd[1024];
    char err_path[512];
    char out_path[512];
    char err[4096];
    int rc;

    snprintf(out_path, sizeof(out_path), "%s/stdout", dir);
    snprintf(err_path, sizeof(err_path), "%s/stderr", dir);
    snprintf(cmd, sizeof(cmd), "%s '%s' >'%s' 2>'%s'", tool_args, file, out_path, err_path);
    rc = system(cmd);
    read_text(err_path, err, sizeof(err));
    read_text(out_path, out, out_size);
    strip_root_warning(err);
    if (rc != 0 || err[0] != '\0')
        fail_msg("%s: exit status %d, stderr:\n%s\nstdout:\n%s", cmd, rc, err, out);
}

static void test_tools_read_our_files(void **state)
{
    static const uint8_t pod_a[4] = {10, 244, 1, 5};
    static const uint8_t pod_b[4] = {10, 244, 2, 9};
    const struct pcapng_name names[2] = {
        {.family = 4, .addr = {10, 244, 1, 5}, .name = "default/web-0"},
        {.family = 6, .addr = {0xfd, 0, [15] = 7}, .name = "default/db-0"},
    };
    const int64_t t0 = INT64_C(1767225600) * 1000000000; /* 2026-01-01 */
    char dir[] = "/tmp/test_pcapng_XXXXXX";
    char path[512];
    char out[16384];
    uint8_t frame[200];
    struct nr_buf b;

    if (access("/usr/bin/tshark", X_OK) != 0)
        skip();
    assert_non_null(mkdtemp(dir));
    nr_buf_init(&b, 1 << 20);

    assert_int_equal(pcapng_shb_append(&b, "made by test_pcapng_encode", NULL, "Linux", "netreel"),
                     0);
    assert_int_equal(pcapng_idb_append(&b, 1, 65535, "eth0", "node-a uplink"), 0);
    assert_int_equal(pcapng_idb_append(&b, 1, 64, "veth1", "default/web-0"), 0);
    assert_int_equal(pcapng_nrb_append(&b, names, 2), 0);
    make_frame(frame, 60, pod_a, pod_b);
    assert_int_equal(pcapng_epb_append(&b, 0, t0, frame, 60, 60, NULL), 0);
    make_frame(frame, 200, pod_b, pod_a);
    assert_int_equal(pcapng_epb_append(&b, 1, t0 + 1500, frame, 64, 200, "cut to 64"), 0);
    make_frame(frame, 99, pod_a, pod_b);
    assert_int_equal(pcapng_epb_append(&b, 0, t0 + 1000000001, frame, 99, 99, NULL), 0);
    for (uint32_t ifid = 0; ifid < 2; ifid++) {
        struct pcapng_isb isb = {
            .ifid = ifid,
            .ts_ns = t0 + 2000000000,
            .start_ns = t0,
            .end_ns = t0 + 2000000000,
            .ifrecv = 3,
            .ifdrop = ifid,
            .osdrop = 0,
        };
        assert_int_equal(pcapng_isb_append(&b, &isb), 0);
    }
    snprintf(path, sizeof(path), "%s/made.pcapng", dir);
    write_file(path, &b);

    run_tool(dir, "tshark -r", path, out, sizeof(out));
    assert_non_null(strstr(out, "10.244.1.5"));
    assert_null(strstr(out, "Malformed"));
    run_tool(dir, "tshark -N n -r", path, out, sizeof(out));
    assert_non_null(strstr(out, "default/web-0")); /* the NRB's name, read back */
    run_tool(dir, "tshark -V -r", path, out, sizeof(out));
    assert_non_null(strstr(out, "cut to 64"));
    assert_non_null(strstr(out, "Frame Length: 200 bytes"));
    assert_non_null(strstr(out, "Capture Length: 64 bytes"));
    run_tool(dir, "capinfos", path, out, sizeof(out));
    assert_non_null(strstr(out, "Number of packets:   3"));
    assert_non_null(strstr(out, "made by test_pcapng_encode"));
    assert_non_null(strstr(out, "nanoseconds"));
    unlink(path);

    b.len = 0;
    assert_int_equal(pcapng_pcap_header_append(&b, 1, 65535), 0);
    make_frame(frame, 60, pod_a, pod_b);
    assert_int_equal(pcapng_pcap_record_append(&b, t0 + 123456789, frame, 60, 60), 0);
    make_frame(frame, 150, pod_b, pod_a);
    assert_int_equal(pcapng_pcap_record_append(&b, t0 + 987654321, frame, 100, 150), 0);
    snprintf(path, sizeof(path), "%s/made.pcap", dir);
    write_file(path, &b);
    run_tool(dir, "tshark -r", path, out, sizeof(out));
    assert_non_null(strstr(out, "10.244.2.9"));
    assert_null(strstr(out, "Malformed"));
    run_tool(dir, "capinfos", path, out, sizeof(out));
    assert_non_null(strstr(out, "Number of packets:   2"));
    assert_non_null(strstr(out, "nanoseconds"));
    unlink(path);

    snprintf(path, sizeof(path), "%s/stdout", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/stderr", dir);
    unlink(path);
    assert_int_equal(rmdir(dir), 0);
    nr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shb_layout),
        cmocka_unit_test(test_idb_layout),
        cmocka_unit_test(test_nrb_layout),
        cmocka_unit_test(test_isb_layout),
        cmocka_unit_test(test_epb_layout),
        cmocka_unit_test(test_overflow_leaves_buffer_unchanged),
        cmocka_unit_test(test_epb_round_trip),
        cmocka_unit_test(test_idb_round_trip),
        cmocka_unit_test(test_epb_sighting_options),
        cmocka_unit_test(test_nrb_round_trip),
        cmocka_unit_test(test_epb_copy),
        cmocka_unit_test(test_epb_noted),
        cmocka_unit_test(test_epb_copy_of_a_jumbo_block),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_pcap_layout),
        cmocka_unit_test(test_tools_read_our_files),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
