/* libFuzzer target for the pod set blocks recovery reads back from a segment
 * (services/store/podset.c): whatever a crash or a hostile hand left there. Input: one block
 * BODY (since_ns, total, first, count, the pods); the target wraps it into a whole block of type
 * STORE_PODSET_BLOCK (header, body padded to 4 with zeros, trailing length), so every mutation
 * lands on what the decoder judges rather than on the framing pcapng_block_peek already checks
 * (fuzz_pcapng_decode covers that). Promises checked: decode with into=NULL is 0 or NR_EPARSE;
 * when 0, the header's numbers are within their caps; for a whole set (first 0, count total) a
 * second decode into store_pods_new(total) gives the same verdict and pods whose name, uid and
 * labels are NUL-terminated, within their caps, without control bytes, and that encode
 * (store_podset_append) to the same bytes the input held but the pad byte, and decode from there
 * the same. For a part of a set of at most 4096 pods, decoding into a set of total sets exactly
 * the pods [first, first + count). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pcapng/decode.h"
#include "pcapng/pcapng.h"
#include "store/podset.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/error.h"
#include "fuzz.h"

#define HEAD      20u
#define POD_FIXED 24u

static void check_pod(const struct store_pod *x)
{
    size_t nl, ul, ll;

    CHECK(x->family == 4 || x->family == 6);
    CHECK(x->name != NULL && x->uid != NULL && x->labels != NULL);
    nl = strnlen(x->name, 2 * STORE_MAX_NAME + 2);
    ul = strnlen(x->uid, STORE_MAX_UID + 1);
    ll = strnlen(x->labels, STORE_MAX_LABELS + 1);
    CHECK(nl >= 1 && nl <= 2 * STORE_MAX_NAME + 1);
    CHECK(ul <= STORE_MAX_UID);
    CHECK(ll <= STORE_MAX_LABELS);
    /* One allocation: name, uid, labels, each after the other's NUL (store_pod_set). */
    CHECK(x->uid == x->name + nl + 1 && x->labels == x->uid + ul + 1);
    for (size_t i = 0; i < nl + 1 + ul + 1 + ll; i++) {
        unsigned char c = (unsigned char)x->name[i];
        if (i == nl || i == nl + 1 + ul)
            CHECK(c == '\0');
        else
            CHECK(c >= 0x20 && c != 0x7f);
    }
}

static void same_pods(const struct store_pods *a, const struct store_pods *b)
{
    CHECK(a->n == b->n);
    for (size_t i = 0; i < a->n; i++) {
        CHECK(a->pods[i].family == b->pods[i].family);
        CHECK(memcmp(a->pods[i].ip, b->pods[i].ip, 16) == 0);
        CHECK(strcmp(a->pods[i].name, b->pods[i].name) == 0);
        CHECK(strcmp(a->pods[i].uid, b->pods[i].uid) == 0);
        CHECK(strcmp(a->pods[i].labels, b->pods[i].labels) == 0);
    }
}

/* The whole set in blk: check its pods, encode them again, compare. */
static void whole_set(const uint8_t *blk, size_t blen, const struct store_podset_part *part)
{
    struct store_podset_part p2;
    struct store_pods *set = store_pods_new(part->total), *back;
    struct nr_buf re;
    uint8_t *mine;
    size_t used = HEAD;
    uint32_t type;
    size_t rlen;

    CHECK(set != NULL);
    set->n = part->total;
    set->since_ns = part->since_ns;
    CHECK(store_podset_decode(blk, blen, &p2, set) == 0);
    CHECK(p2.since_ns == part->since_ns && p2.total == part->total && p2.first == part->first &&
          p2.count == part->count);
    for (size_t i = 0; i < set->n; i++)
        check_pod(&set->pods[i]);

    /* What the decoder took, as the encoder writes it: the input's bytes but each pad byte. */
    mine = malloc(blen);
    CHECK(mine != NULL);
    memcpy(mine, blk + 8, blen - 8);
    for (uint32_t i = 0; i < part->count; i++) {
        uint8_t *x = mine + used;
        x[1] = 0;
        used += POD_FIXED + (size_t)(x[2] | x[3] << 8) + (size_t)(x[4] | x[5] << 8) +
                (size_t)(x[6] | x[7] << 8);
    }
    CHECK(used <= blen - 12);
    nr_buf_init(&re, PCAPNG_MAX_BLOCK);
    CHECK(store_podset_append(&re, set) == 0);
    CHECK(pcapng_block_peek(re.data, re.len, &type, &rlen) == 1);
    CHECK(type == STORE_PODSET_BLOCK && rlen == re.len); /* <= 512 pods: one block */
    CHECK(re.len == 12 + PCAPNG_PAD4(used) && re.len <= blen);
    CHECK(memcmp(re.data + 8, mine, used) == 0);
    back = store_pods_new(set->n);
    CHECK(back != NULL);
    back->n = set->n;
    CHECK(store_podset_decode(re.data, re.len, &p2, back) == 0);
    same_pods(set, back);
    store_pods_unref(back);
    nr_buf_free(&re);
    free(mine);
    store_pods_unref(set);
}

/* A part of a small set: exactly its pods are set. */
static void part_of_set(const uint8_t *blk, size_t blen, const struct store_podset_part *part)
{
    struct store_podset_part p2;
    struct store_pods *set = store_pods_new(part->total);

    CHECK(set != NULL);
    set->n = part->total;
    CHECK(store_podset_decode(blk, blen, &p2, set) == 0);
    for (size_t i = 0; i < set->n; i++) {
        if (i >= part->first && i < (size_t)part->first + part->count)
            check_pod(&set->pods[i]);
        else
            CHECK(set->pods[i].name == NULL);
    }
    /* Into a set of another size: refused. */
    set->n = part->total + 1u;
    CHECK(store_podset_decode(blk, blen, &p2, set) == NR_EPARSE);
    set->n = part->total;
    store_pods_unref(set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t total = 12 + PCAPNG_PAD4(size), blen;
    struct store_podset_part part;
    uint32_t type;
    uint8_t *blk;
    int rc;

    if (total > PCAPNG_MAX_BLOCK)
        return 0;
    blk = calloc(1, total);
    CHECK(blk != NULL);
    pcapng_put32(blk, STORE_PODSET_BLOCK);
    pcapng_put32(blk + 4, (uint32_t)total);
    memcpy(blk + 8, data, size);
    pcapng_put32(blk + total - 4, (uint32_t)total);
    CHECK(pcapng_block_peek(blk, total, &type, &blen) == 1);
    CHECK(type == STORE_PODSET_BLOCK && blen == total);

    rc = store_podset_decode(blk, blen, &part, NULL);
    if (rc == 0) {
        /* The body the decoder saw is the input padded with zeros to 4. */
        CHECK(blen - 12 >= HEAD);
        CHECK(part.total <= STORE_MAX_PODS);
        CHECK(part.first <= part.total && part.count <= part.total - part.first);
        CHECK(part.count <= STORE_PODSET_PER_BLOCK);
        CHECK((size_t)part.count * POD_FIXED <= blen - 12 - HEAD);
        if (part.first == 0 && part.count == part.total)
            whole_set(blk, blen, &part);
        else if (part.total <= 4096)
            part_of_set(blk, blen, &part);
    } else {
        CHECK(rc == NR_EPARSE);
    }
    free(blk);
    return 0;
}
