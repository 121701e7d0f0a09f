/* libFuzzer target for what netreel-store does with an Ingest message before any byte reaches
 * disk (services/store/batch.c): unpack a PacketBatch (its blocks left in place: the same
 * message protobuf-c's own unpack gives), check it against the stream it belongs to, build its
 * pod set. A batch it accepts holds nothing but whole EPBs of known interfaces,
 * within their snaplens and the time window, as many and as early and late as it claims; the
 * stream's interfaces only grow; sent again on the stream it built, it is accepted the same.
 * Input: one flags byte (bit 0: the stream already knows two interfaces; bit 1: make the
 * batch's count and first/last timestamps true, so the checks behind them are reached), then
 * the protobuf bytes of the PacketBatch. FUZZ_VERBOSE=1 prints each verdict (to check seeds). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcapng/decode.h"
#include "store/batch.h"
#include "util/error.h"
#include "fuzz.h"

#define NOW INT64_C(1795600000000000000)

static const struct store_config cfg = {
    .max_future_ns = 3600 * INT64_C(1000000000),
    .max_past_ns = 30 * 86400 * INT64_C(1000000000),
};

static void known_stream(struct store_stream *st)
{
    memset(st, 0, sizeof(*st));
    snprintf(st->capture_id, sizeof(st->capture_id), "node-a@1");
    snprintf(st->ifaces[0].name, sizeof(st->ifaces[0].name), "eth0");
    st->ifaces[0].link_type = 1;
    st->ifaces[0].snaplen = 128;
    snprintf(st->ifaces[1].name, sizeof(st->ifaces[1].name), "eth1");
    st->ifaces[1].link_type = 1;
    st->ifaces[1].snaplen = 65535;
    st->n_ifaces = 2;
}

/* The claims a batch makes, made true by the rules the store applies. */
static void fix_claims(Netreel__V1__PacketBatch *b, const struct store_stream *st)
{
    uint32_t snaplens[STORE_MAX_INTERFACES];
    struct pcapng_batch_rules rules = {0};
    struct pcapng_batch_info info;
    uint32_t n = 0;

    if (st) {
        for (uint32_t i = 0; i < st->n_ifaces; i++)
            snaplens[i] = st->ifaces[i].snaplen;
        n = st->n_ifaces;
    }
    /* the batch's list: consecutive ids from one the stream knows */
    if (b->n_interfaces > 0 && b->interfaces[0]->id <= n &&
        b->n_interfaces <= STORE_MAX_INTERFACES - b->interfaces[0]->id) {
        uint32_t first = b->interfaces[0]->id;
        for (size_t i = 0; i < b->n_interfaces; i++)
            snaplens[first + i] = b->interfaces[i]->snaplen;
        if (first + b->n_interfaces > n)
            n = first + (uint32_t)b->n_interfaces;
    }
    rules.snaplens = snaplens;
    rules.n_interfaces = n;
    rules.min_ts_ns = NOW - cfg.max_past_ns;
    rules.max_ts_ns = NOW + cfg.max_future_ns;
    rules.sorted = true;
    if (pcapng_batch_validate(b->blocks.data, b->blocks.len, &rules, &info, NULL, 0) == 0) {
        b->packet_count = info.packets;
        b->first_ts_ns = info.first_ts_ns;
        b->last_ts_ns = info.last_ts_ns;
    }
}

static void check_accepted(const Netreel__V1__PacketBatch *b, const struct store_stream *st,
                           const struct store_iface *ifaces, uint32_t n_ifaces,
                           const struct pcapng_batch_info *info)
{
    static struct store_stream again;
    static struct store_iface ifaces2[STORE_MAX_INTERFACES];
    struct pcapng_batch_info info2;
    uint32_t n2 = 0;
    uint64_t bytes = 0;
    size_t off = 0;
    char err[256];
    struct store_pods *pods;

    CHECK(store_batch_check_id(b->capture_id) == 0);
    CHECK(n_ifaces <= STORE_MAX_INTERFACES);
    if (st) {
        CHECK(n_ifaces >= st->n_ifaces);
        CHECK(memcmp(ifaces, st->ifaces, st->n_ifaces * sizeof(*ifaces)) == 0);
    }
    for (uint32_t i = 0; i < n_ifaces; i++) {
        size_t len = strnlen(ifaces[i].name, sizeof(ifaces[i].name));
        CHECK(len > 0 && len < sizeof(ifaces[i].name));
        CHECK(ifaces[i].snaplen > 0 && ifaces[i].snaplen <= PCAPNG_MAX_SNAPLEN);
        CHECK(ifaces[i].link_type <= 0xffff);
    }

    /* The blocks, walked again: whole EPBs of known interfaces, as the batch claims. */
    CHECK(info->packets == b->packet_count);
    CHECK(info->packet_bytes <= b->blocks.len);
    CHECK(pcapng_whole_prefix(b->blocks.data, b->blocks.len, NULL) == b->blocks.len);
    while (off < b->blocks.len) {
        struct pcapng_epb epb;
        uint32_t type;
        size_t blen;

        CHECK(pcapng_block_peek(b->blocks.data + off, b->blocks.len - off, &type, &blen) == 1);
        CHECK(type == PCAPNG_BT_EPB);
        CHECK(pcapng_epb_decode(b->blocks.data + off, blen, &epb) == 0);
        CHECK(epb.ifid < n_ifaces && epb.caplen <= ifaces[epb.ifid].snaplen);
        CHECK(epb.ts_ns >= info->first_ts_ns && epb.ts_ns <= info->last_ts_ns);
        CHECK(epb.ts_ns >= NOW - cfg.max_past_ns && epb.ts_ns <= NOW + cfg.max_future_ns);
        bytes += epb.caplen;
        off += blen;
    }
    CHECK(off == b->blocks.len && bytes == info->packet_bytes);
    if (info->packets > 0)
        CHECK(info->first_ts_ns == b->first_ts_ns && info->last_ts_ns == b->last_ts_ns);

    /* The same batch again, on the stream as it now stands. */
    memset(&again, 0, sizeof(again));
    memcpy(again.ifaces, ifaces, n_ifaces * sizeof(*ifaces));
    again.n_ifaces = n_ifaces;
    CHECK(store_batch_check(&cfg, &again, b, NOW, ifaces2, &n2, &info2, err, sizeof(err)) == 0);
    CHECK(n2 == n_ifaces && memcmp(ifaces2, ifaces, n_ifaces * sizeof(*ifaces)) == 0);
    CHECK(memcmp(&info2, info, sizeof(info2)) == 0);

    if (!b->pods_update) {
        CHECK(b->n_pods == 0);
        return;
    }
    CHECK(b->n_pods <= STORE_MAX_PODS);
    pods = store_batch_pods(b);
    if (!pods)
        return; /* out of memory */
    CHECK(pods->n == b->n_pods);
    for (size_t i = 0; i < pods->n; i++) {
        CHECK(pods->pods[i].family == (b->pods[i]->ip.len == 4 ? 4 : 6));
        CHECK(strlen(pods->pods[i].name) ==
              strlen(b->pods[i]->namespace_) + 1 + strlen(b->pods[i]->name));
    }
    store_pods_unref(pods);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct store_stream known;
    static struct store_iface ifaces[STORE_MAX_INTERFACES];
    static int verbose = -1;
    Netreel__V1__PacketBatch *b;
    struct store_stream *st = NULL;
    struct pcapng_batch_info info;
    uint32_t n_ifaces = 0;
    char err[256];
    int rc;

    if (verbose < 0)
        verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (size < 1)
        return 0;
    /* The store's unpack, blocks left in place, is protobuf-c's to the byte. */
    b = store_batch_unpack(data + 1, size - 1);
    {
        Netreel__V1__PacketBatch *ref = netreel__v1__packet_batch__unpack(NULL, size - 1, data + 1);
        CHECK((b == NULL) == (ref == NULL));
        if (b) {
            size_t n = netreel__v1__packet_batch__get_packed_size(b);
            uint8_t *x = malloc(n + 1), *y = malloc(n + 1);
            CHECK(x && y && netreel__v1__packet_batch__get_packed_size(ref) == n);
            netreel__v1__packet_batch__pack(b, x);
            netreel__v1__packet_batch__pack(ref, y);
            CHECK(memcmp(x, y, n) == 0);
            free(x);
            free(y);
        }
        netreel__v1__packet_batch__free_unpacked(ref, NULL);
    }
    if (!b)
        return 0;
    if (data[0] & 1) {
        known_stream(&known);
        st = &known;
    }
    if (data[0] & 2)
        fix_claims(b, st);

    err[0] = '\0';
    memset(&info, 0xa5, sizeof(info));
    rc = store_batch_check(&cfg, st, b, NOW, ifaces, &n_ifaces, &info, err, sizeof(err));
    if (verbose)
        fprintf(stderr, "%s\n", rc == 0 ? "accepted" : err);
    if (rc == 0) {
        check_accepted(b, st, ifaces, n_ifaces, &info);
    } else {
        /* -ESTALE: the list starts past the ids the stream knows (the capture resends it) */
        CHECK(rc == NR_EPARSE || (rc == -ESTALE && b->n_interfaces > 0 &&
                                  b->interfaces[0]->id > (st ? st->n_ifaces : 0)));
        CHECK(err[0] != '\0' && strchr(err, '\n') == NULL && strlen(err) < sizeof(err));
    }
    store_batch_free(b, data + 1, size - 1);
    return 0;
}
