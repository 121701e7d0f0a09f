/* libFuzzer target for unpacking every message of the public API (netreel.v1 and
 * grpc.health.v1) with protobuf-c, and for the pure code that consumes what came off the wire
 * (the PacketBatch's own checks are fuzzed in fuzz_store_batch, which links the store). The
 * first byte picks the message. What unpacks packs to the size protobuf-c computes, and packed
 * again after a round trip gives the same bytes (but for protobuf-c's quirk below). Then, as the
 * programs use it:
 *   StoreChunk (hub): its blocks walked as whole EPBs, stopping at the first that is not;
 *   WindowHeader (hub): its interfaces and pod names written as IDBs and NRBs, which read back
 *     as the same names;
 *   SnapshotRequest, SnapshotSummary, StoreStats (hub, CLI): any time or size formats. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "netreel/v1/common.pb-c.h"
#include "netreel/v1/hub.pb-c.h"
#include "netreel/v1/store.pb-c.h"
#include "pcapng/decode.h"
#include "pcapng/encode.h"
#include "util/parse.h"
#include "fuzz.h"

static const ProtobufCMessageDescriptor *const descs[] = {
    &netreel__v1__interface__descriptor,
    &netreel__v1__pod_name__descriptor,
    &netreel__v1__capture_counters__descriptor,
    &netreel__v1__snapshot_request__descriptor,
    &netreel__v1__packet_batch__descriptor,
    &netreel__v1__ingest_ack__descriptor,
    &netreel__v1__window_header__descriptor,
    &netreel__v1__interface_stats__descriptor,
    &netreel__v1__store_summary__descriptor,
    &netreel__v1__store_chunk__descriptor,
    &netreel__v1__stats_request__descriptor,
    &netreel__v1__capture_stats__descriptor,
    &netreel__v1__deletion_count__descriptor,
    &netreel__v1__store_stats__descriptor,
    &netreel__v1__store_result__descriptor,
    &netreel__v1__snapshot_summary__descriptor,
    &netreel__v1__file_chunk__descriptor,
    &netreel__v1__status_request__descriptor,
    &netreel__v1__store_status__descriptor,
    &netreel__v1__cluster_status__descriptor,
    &grpc__health__v1__health_check_request__descriptor,
    &grpc__health__v1__health_check_response__descriptor,
};
#define N_DESCS (sizeof(descs) / sizeof(descs[0]))

static struct nr_buf out;

/* protobuf-c 1.4 takes an over-long tag of field 0 (80 00) as an unknown field, then packs it
 * as 00, which it refuses to unpack (a store could so make the hub's ClusterStatus, which
 * embeds its StoreStats, unreadable to the CLI): only such a message may fail the round trip. */
static bool has_field_zero(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;

    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return true;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m;

        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (has_field_zero(v[k]))
                    return true;
        } else {
            const ProtobufCMessage *sub = *(ProtobufCMessage *const *)(base + f->offset);
            if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                *(const uint32_t *)(base + f->quantifier_offset) != f->id)
                continue;
            if (sub && has_field_zero(sub))
                return true;
        }
    }
    return false;
}

/* The hub's walk of a store's blocks (services/hub/snapshot.c src_next). */
static void walk_blocks(const ProtobufCBinaryData *blocks)
{
    size_t pos = 0;

    while (pos < blocks->len) {
        struct pcapng_epb epb;
        uint32_t type;
        size_t blen;

        if (pcapng_block_peek(blocks->data + pos, blocks->len - pos, &type, &blen) != 1 ||
            pcapng_epb_decode(blocks->data + pos, blen, &epb) != 0)
            return;
        CHECK(blen <= blocks->len - pos && epb.block_len == blen);
        CHECK(epb.data >= blocks->data + pos && epb.data + epb.caplen <= blocks->data + pos + blen);
        CHECK(epb.ts_ns >= 0);
        pos += blen;
    }
    CHECK(pos == blocks->len);
}

static int count_name(const struct pcapng_name *name, void *arg)
{
    size_t *n = arg;

    CHECK(name->family == 4 || name->family == 6);
    (*n)++;
    return 0;
}

/* The hub's file head from one store's header (services/hub/snapshot.c head_pcapng). */
static void write_head(const Netreel__V1__WindowHeader *hd)
{
    struct pcapng_name names[64];
    static char text[64][512];
    size_t k = 0, written = 0, read = 0, off = 0;

    out.len = 0;
    for (size_t i = 0; i < hd->n_interfaces; i++) {
        const Netreel__V1__Interface *in = hd->interfaces[i];
        char name[512];
        struct pcapng_idb idb;
        size_t before = out.len;
        uint32_t snaplen = in->snaplen ? in->snaplen : PCAPNG_MAX_SNAPLEN;
        int rc;

        snprintf(name, sizeof(name), "%s/%s", in->node && in->node[0] ? in->node : hd->node,
                 in->name);
        rc = pcapng_idb_append(&out, (uint16_t)in->link_type, snaplen, name, NULL);
        if (snaplen > PCAPNG_MAX_SNAPLEN) {
            CHECK(rc < 0 && out.len == before);
            continue;
        }
        CHECK(rc == 0);
        CHECK(pcapng_idb_decode(out.data + before, out.len - before, &idb) == 0);
        CHECK(idb.link_type == (uint16_t)in->link_type && idb.snaplen == snaplen);
        /* A name longer than the decoder keeps comes back cut, never overrun. */
        CHECK(strncmp(idb.name, name, sizeof(idb.name) - 1) == 0);
    }
    for (size_t p = 0; p < hd->n_pods; p++) {
        const Netreel__V1__PodName *pn = hd->pods[p];
        if (pn->ip.len == 4 || pn->ip.len == 16) {
            names[k].family = pn->ip.len == 4 ? 4 : 6;
            memset(names[k].addr, 0, 16);
            memcpy(names[k].addr, pn->ip.data, pn->ip.len);
            snprintf(text[k], sizeof(text[k]), "%s/%s", pn->namespace_, pn->name);
            names[k].name = text[k];
            k++;
        }
        if (k == 64 || (p + 1 == hd->n_pods && k > 0)) {
            CHECK(pcapng_nrb_append(&out, names, k) == 0);
            written += k;
            k = 0;
        }
    }
    /* What was written is whole blocks; the NRBs name every pod kept. */
    CHECK(pcapng_whole_prefix(out.data, out.len, NULL) == out.len);
    while (off < out.len) {
        uint32_t type;
        size_t blen;

        CHECK(pcapng_block_peek(out.data + off, out.len - off, &type, &blen) == 1);
        if (type == PCAPNG_BT_NRB)
            CHECK(pcapng_nrb_foreach(out.data + off, blen, count_name, &read) == 0);
        off += blen;
    }
    CHECK(read == written);
}

static void check_times(int64_t a, int64_t b)
{
    char buf[40];

    /* The hub writes any requested time into a 40-byte buffer for the file's comment. */
    CHECK(nr_format_time(a, 9, buf, sizeof(buf)) > 0);
    CHECK(nr_format_time(b, 9, buf, sizeof(buf)) > 0);
    CHECK(nr_format_time(a, 0, buf, sizeof(buf)) > 0);
}

static void check_size(uint64_t bytes)
{
    char buf[32];

    CHECK(nr_format_size(bytes, buf, sizeof(buf)) > 0);
}

static void consume(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;

    if (d == &netreel__v1__store_chunk__descriptor) {
        const Netreel__V1__StoreChunk *c = (const Netreel__V1__StoreChunk *)m;
        if (c->kind_case == NETREEL__V1__STORE_CHUNK__KIND_BLOCKS)
            walk_blocks(&c->blocks);
        else if (c->kind_case == NETREEL__V1__STORE_CHUNK__KIND_HEADER && c->header)
            write_head(c->header);
        else if (c->kind_case == NETREEL__V1__STORE_CHUNK__KIND_SUMMARY && c->summary)
            check_times(c->summary->oldest_ns, c->summary->newest_ns);
    } else if (d == &netreel__v1__window_header__descriptor) {
        write_head((const Netreel__V1__WindowHeader *)m);
    } else if (d == &netreel__v1__snapshot_request__descriptor) {
        const Netreel__V1__SnapshotRequest *r = (const Netreel__V1__SnapshotRequest *)m;
        check_times(r->since_ns, r->until_ns);
    } else if (d == &netreel__v1__snapshot_summary__descriptor) {
        const Netreel__V1__SnapshotSummary *s = (const Netreel__V1__SnapshotSummary *)m;
        check_times(s->since_ns, s->until_ns);
        check_size(s->bytes);
    } else if (d == &netreel__v1__file_chunk__descriptor) {
        const Netreel__V1__FileChunk *f = (const Netreel__V1__FileChunk *)m;
        if (f->summary) {
            check_times(f->summary->since_ns, f->summary->until_ns);
            check_size(f->summary->bytes);
        }
    } else if (d == &netreel__v1__store_stats__descriptor) {
        const Netreel__V1__StoreStats *s = (const Netreel__V1__StoreStats *)m;
        check_times(s->oldest_ns, s->newest_ns);
        check_size(s->bytes);
        check_size(s->max_bytes);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ProtobufCMessageDescriptor *desc;
    ProtobufCMessage *m, *again;
    uint8_t *packed, *repacked;
    size_t need;

    if (size < 1)
        return 0;
    if (out.max == 0)
        nr_buf_init(&out, 64u << 20);
    desc = descs[data[0] % N_DESCS];
    m = protobuf_c_message_unpack(desc, NULL, size - 1, data + 1);
    if (!m)
        return 0;
    CHECK(m->descriptor == desc);
    CHECK(protobuf_c_message_check(m));

    /* Packs to the size it says, and unpacks from that to a message that packs the same. */
    need = protobuf_c_message_get_packed_size(m);
    packed = malloc(need ? need : 1);
    CHECK(packed != NULL);
    CHECK(protobuf_c_message_pack(m, packed) == need);
    again = protobuf_c_message_unpack(desc, NULL, need, packed);
    if (!again) {
        CHECK(has_field_zero(m));
        goto out;
    }
    CHECK(protobuf_c_message_get_packed_size(again) == need);
    repacked = malloc(need ? need : 1);
    CHECK(repacked != NULL);
    CHECK(protobuf_c_message_pack(again, repacked) == need);
    CHECK(need == 0 || memcmp(packed, repacked, need) == 0);
    free(repacked);
    protobuf_c_message_free_unpacked(again, NULL);

out:
    consume(m);
    free(packed);
    protobuf_c_message_free_unpacked(m, NULL);
    nr_buf_reset(&out, 1 << 20);
    return 0;
}
