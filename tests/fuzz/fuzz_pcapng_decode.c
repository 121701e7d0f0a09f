/* libFuzzer target for lib/pcapng/decode.c: any bytes as a pcapng file. The whole prefix is
 * made of blocks pcapng_block_peek accepts, each block decodes as its type says into fields
 * that lie within it, and what decodes encodes again to the same fields. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcapng/decode.h"
#include "pcapng/encode.h"
#include "pcapng/keylog.h"
#include "util/error.h"
#include "fuzz.h"

#define MAX_NAMES 32

struct names {
    size_t n;    /* names seen */
    size_t kept; /* of which copied below */
    struct pcapng_name name[MAX_NAMES];
    char text[MAX_NAMES][1024];
    int stop_at; /* 1-based call that returns 7, 0: none */
};

static int collect(const struct pcapng_name *name, void *arg)
{
    struct names *s = arg;
    size_t len = strlen(name->name);

    CHECK(name->family == 4 || name->family == 6);
    CHECK(len > 0 && len <= 1023);
    if (s->kept < MAX_NAMES) {
        s->name[s->kept] = *name;
        memcpy(s->text[s->kept], name->name, len + 1);
        s->name[s->kept].name = s->text[s->kept];
        s->kept++;
    }
    s->n++;
    return (int)s->n == s->stop_at ? 7 : 0;
}

static void check_epb(const uint8_t *p, size_t block_len, struct nr_buf *scratch)
{
    struct pcapng_epb epb;
    struct pcapng_epb copy;

    if (pcapng_epb_decode(p, block_len, &epb) != 0)
        return;
    CHECK(epb.block_len == block_len);
    CHECK(epb.data == p + 28);
    CHECK(epb.caplen <= epb.origlen);
    CHECK(PCAPNG_EPB_MIN + PCAPNG_PAD4(epb.caplen) + epb.options_len == block_len);
    CHECK(epb.options == epb.data + PCAPNG_PAD4(epb.caplen));
    CHECK(epb.ts_ns >= 0);

    /* Its copy, cut or not, decodes to the same fields; a copy is not let past the largest
     * snaplen, though a block may be. */
    scratch->len = 0;
    if (epb.caplen > PCAPNG_MAX_SNAPLEN) {
        CHECK(pcapng_epb_append_copy(scratch, &epb, 0, 0) == -EINVAL);
        CHECK(scratch->len == 0);
        if (epb.caplen / 2 > PCAPNG_MAX_SNAPLEN)
            return;
    }
    CHECK(pcapng_epb_append_copy(scratch, &epb, epb.ifid + 1, epb.caplen / 2) == 0);
    CHECK(pcapng_epb_decode(scratch->data, scratch->len, &copy) == 0);
    CHECK(copy.ifid == epb.ifid + 1);
    CHECK(copy.ts_ns == epb.ts_ns);
    CHECK(copy.caplen == (epb.caplen / 2 ? epb.caplen / 2 : epb.caplen));
    CHECK(copy.origlen == epb.origlen);
    CHECK(memcmp(copy.data, epb.data, copy.caplen) == 0);
    CHECK(copy.options_len == epb.options_len);
    CHECK(memcmp(copy.options, epb.options, epb.options_len) == 0);
}

static void check_idb(const uint8_t *p, size_t block_len, struct nr_buf *scratch)
{
    struct pcapng_idb idb;
    struct pcapng_idb back;

    if (pcapng_idb_decode(p, block_len, &idb) != 0)
        return;
    CHECK(memchr(idb.name, '\0', sizeof(idb.name)) != NULL);
    CHECK(memchr(idb.description, '\0', sizeof(idb.description)) != NULL);
    if (idb.snaplen == 0 || idb.snaplen > PCAPNG_MAX_SNAPLEN)
        return;
    scratch->len = 0;
    CHECK(pcapng_idb_append(scratch, idb.link_type, idb.snaplen, idb.name, idb.description) == 0);
    CHECK(pcapng_idb_decode(scratch->data, scratch->len, &back) == 0);
    CHECK(back.link_type == idb.link_type);
    CHECK(back.snaplen == idb.snaplen);
    CHECK(strcmp(back.name, idb.name) == 0);
    CHECK(strcmp(back.description, idb.description) == 0);
    CHECK(back.tsresol == 9);
}

static void check_nrb(const uint8_t *p, size_t block_len, struct nr_buf *scratch)
{
    static struct names seen;
    static struct names again;
    size_t n;

    memset(&seen, 0, sizeof(seen));
    if (pcapng_nrb_foreach(p, block_len, collect, &seen) != 0)
        return;
    n = seen.n;
    /* A callback's non-zero stops the walk and comes back. */
    if (n > 0) {
        memset(&again, 0, sizeof(again));
        again.stop_at = (int)(n + 1) / 2;
        CHECK(pcapng_nrb_foreach(p, block_len, collect, &again) == 7);
        CHECK(again.n == (size_t)again.stop_at);
    }
    /* The names kept, written again, read back the same. */
    scratch->len = 0;
    CHECK(pcapng_nrb_append(scratch, seen.name, seen.kept) == 0);
    memset(&again, 0, sizeof(again));
    CHECK(pcapng_nrb_foreach(scratch->data, scratch->len, collect, &again) == 0);
    CHECK(again.n == seen.kept);
    for (size_t i = 0; i < seen.kept; i++) {
        CHECK(again.name[i].family == seen.name[i].family);
        CHECK(memcmp(again.name[i].addr, seen.name[i].addr, 16) == 0);
        CHECK(strcmp(again.text[i], seen.text[i]) == 0);
    }
}

static void check_dsb(const uint8_t *p, size_t block_len, struct nr_buf *scratch)
{
    struct pcapng_dsb dsb;
    struct pcapng_dsb back;

    if (pcapng_dsb_decode(p, block_len, &dsb) != 0)
        return;
    CHECK(dsb.data == p + 16);
    CHECK(PCAPNG_DSB_MIN + PCAPNG_PAD4(dsb.len) <= block_len);
    if (dsb.len == 0 || dsb.len > PCAPNG_DSB_MAX_SECRETS)
        return;
    scratch->len = 0;
    CHECK(pcapng_dsb_append(scratch, dsb.secrets_type, dsb.data, dsb.len) == 0);
    CHECK(pcapng_dsb_decode(scratch->data, scratch->len, &back) == 0);
    CHECK(back.secrets_type == dsb.secrets_type && back.len == dsb.len);
    CHECK(memcmp(back.data, dsb.data, dsb.len) == 0);
}

/* Any bytes as key log text: what validates is whole lines, walked back to its exact length,
 * each line short and ending in a newline. */
static void check_keylog(const uint8_t *p, size_t len)
{
    size_t lines = 0, off = 0, n = 0, line_len;
    const uint8_t *line;
    char err[256];

    if (pcapng_keylog_validate(p, len, &lines, err, sizeof(err)) != 0) {
        CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
        return;
    }
    while (pcapng_keylog_next(p, len, &off, &line, &line_len) == 1) {
        CHECK(line_len > 0 && line_len <= PCAPNG_KEYLOG_LINE_MAX);
        CHECK(line[line_len - 1] == '\n');
        n++;
    }
    CHECK(off == len && n == lines);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct nr_buf scratch;
    size_t blocks = 0;
    size_t prefix = pcapng_whole_prefix(data, size, &blocks);
    size_t off = 0;
    size_t n = 0;
    uint32_t type;
    size_t block_len;
    int rc;

    if (scratch.max == 0)
        nr_buf_init(&scratch, 2 * PCAPNG_MAX_BLOCK);
    CHECK(prefix <= size);
    CHECK(prefix % 4 == 0);
    CHECK(blocks <= prefix / PCAPNG_BLOCK_MIN);
    CHECK(pcapng_whole_prefix(data, size, NULL) == prefix);

    /* The prefix again, block by block; each block decodes as its type says. */
    while (off < prefix) {
        CHECK(pcapng_block_peek(data + off, size - off, &type, &block_len) == 1);
        CHECK(block_len >= PCAPNG_BLOCK_MIN && block_len % 4 == 0);
        CHECK(block_len <= PCAPNG_MAX_BLOCK && block_len <= prefix - off);
        CHECK(pcapng_le32(data + off + 4) == block_len);
        CHECK(pcapng_le32(data + off + block_len - 4) == block_len);
        switch (type) {
        case PCAPNG_BT_EPB: check_epb(data + off, block_len, &scratch); break;
        case PCAPNG_BT_IDB: check_idb(data + off, block_len, &scratch); break;
        case PCAPNG_BT_NRB: check_nrb(data + off, block_len, &scratch); break;
        case PCAPNG_BT_SHB: CHECK(block_len >= 28); break;
        case PCAPNG_BT_DSB: check_dsb(data + off, block_len, &scratch); break;
        default: break;
        }
        off += block_len;
        n++;
    }
    CHECK(off == prefix);
    CHECK(n == blocks);
    /* Where the prefix stops, no whole block starts. */
    if (prefix < size) {
        rc = pcapng_block_peek(data + prefix, size - prefix, &type, &block_len);
        CHECK(rc == 0 || rc == NR_EPARSE);
    }

    /* The decoders take any length they are given, not only what peek found. */
    check_epb(data, size, &scratch);
    check_idb(data, size, &scratch);
    check_nrb(data, size, &scratch);
    check_dsb(data, size, &scratch);
    check_keylog(data, size);
    nr_buf_reset(&scratch, 1 << 20);
    return 0;
}
