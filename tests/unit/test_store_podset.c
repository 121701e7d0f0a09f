/* Tests for services/store/podset.c: a pod set goes into pod set blocks and comes back the same
 * (IPv4 and IPv6, uid and labels or none), an empty set is one block, a big set is consecutive
 * blocks whose (first, count) tile it, and every lie a block can tell is refused with NR_EPARSE
 * before anything of it is kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pcapng/decode.h"
#include "pcapng/pcapng.h"
#include "store/podset.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/error.h"

#define NOW INT64_C(1795600000000000000)

/* Where things are in a block: the header (type, length), the body's fields, the first pod. */
#define B_TOTAL 16u
#define B_FIRST 20u
#define B_COUNT 24u
#define B_POD0  28u
/* In a pod: family, pad, name, uid and labels lengths, address, strings. */
#define P_FAMILY 0u
#define P_NL     2u
#define P_UL     4u
#define P_LL     6u
#define P_ADDR   8u
#define P_STR    24u

struct spec {
    uint8_t family;
    uint8_t ip[16];
    const char *name, *uid, *labels;
};

static struct store_pods *make(const struct spec *s, size_t n, int64_t since_ns)
{
    struct store_pods *p = store_pods_new(n);

    assert_non_null(p);
    p->since_ns = since_ns;
    for (size_t i = 0; i < n; i++) {
        p->pods[i].family = s[i].family;
        memcpy(p->pods[i].ip, s[i].ip, 16);
        assert_int_equal(store_pod_set(&p->pods[i], NULL, s[i].name, s[i].uid, s[i].labels), 0);
        p->n = i + 1;
    }
    return p;
}

/* n generated pods: every fourth IPv6, names "ns-<i%7>/pod-<i>", uids and labels on some. */
static struct store_pods *make_many(size_t n)
{
    struct store_pods *p = store_pods_new(n);

    assert_non_null(p);
    p->since_ns = NOW + (int64_t)n;
    for (size_t i = 0; i < n; i++) {
        char name[64], uid[64], labels[64];
        struct store_pod *x = &p->pods[i];
        x->family = i % 4 == 3 ? 6 : 4;
        memset(x->ip, 0, 16);
        if (x->family == 4) {
            x->ip[0] = 10;
            x->ip[1] = (uint8_t)(i >> 16);
            x->ip[2] = (uint8_t)(i >> 8);
            x->ip[3] = (uint8_t)i;
        } else {
            x->ip[0] = 0xfd;
            x->ip[14] = (uint8_t)(i >> 8);
            x->ip[15] = (uint8_t)i;
        }
        snprintf(name, sizeof(name), "ns-%zu/pod-%zu", i % 7, i);
        snprintf(uid, sizeof(uid), "%08zx-0000-4000-8000-%012zx", i, i * 31);
        snprintf(labels, sizeof(labels), "app=a%zu,idx=%zu", i % 3, i);
        assert_int_equal(store_pod_set(x, NULL, name, i % 5 ? uid : NULL, i % 3 ? labels : NULL),
                         0);
        p->n = i + 1;
    }
    return p;
}

static void same_pods(const struct store_pods *a, const struct store_pods *b)
{
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->since_ns, b->since_ns);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->pods[i].family, b->pods[i].family);
        assert_memory_equal(a->pods[i].ip, b->pods[i].ip, 16);
        assert_string_equal(a->pods[i].name, b->pods[i].name);
        assert_string_equal(a->pods[i].uid, b->pods[i].uid);
        assert_string_equal(a->pods[i].labels, b->pods[i].labels);
    }
}

struct walked {
    size_t n;
    size_t off[256], len[256];
    struct store_podset_part part[256];
};

/* Walks buf as pcapng blocks: every one whole, a pod set block, decoding (into=NULL). */
static void walk(const struct nr_buf *b, struct walked *w)
{
    size_t off = 0;

    w->n = 0;
    while (off < b->len) {
        uint32_t type;
        size_t blen;
        assert_int_equal(pcapng_block_peek(b->data + off, b->len - off, &type, &blen), 1);
        assert_int_equal(type, STORE_PODSET_BLOCK);
        assert_true(w->n < 256);
        memset(&w->part[w->n], 0xa5, sizeof(w->part[w->n]));
        assert_int_equal(store_podset_decode(b->data + off, blen, &w->part[w->n], NULL), 0);
        w->off[w->n] = off;
        w->len[w->n] = blen;
        w->n++;
        off += blen;
    }
    assert_int_equal(off, b->len);
}

/* Appends pods, checks the blocks tile it, decodes them all into a new set (n = total) and
 * compares. */
static void round_trip(const struct store_pods *pods, size_t want_blocks)
{
    static struct walked w;
    struct nr_buf b;
    struct store_pods *back;
    uint32_t next = 0;

    nr_buf_init(&b, 64u << 20);
    assert_int_equal(store_podset_append(&b, pods), 0);
    walk(&b, &w);
    assert_int_equal(w.n, want_blocks);
    for (size_t i = 0; i < w.n; i++) {
        assert_int_equal(w.part[i].since_ns, pods->since_ns);
        assert_int_equal(w.part[i].total, pods->n);
        assert_int_equal(w.part[i].first, next);
        assert_true(w.part[i].count <= STORE_PODSET_PER_BLOCK);
        /* Only the last block of a set is short, and only an empty set has an empty block. */
        if (i + 1 < w.n)
            assert_int_equal(w.part[i].count, STORE_PODSET_PER_BLOCK);
        assert_true(w.part[i].count > 0 || pods->n == 0);
        next += w.part[i].count;
    }
    assert_int_equal(next, pods->n);

    back = store_pods_new(w.part[0].total);
    assert_non_null(back);
    back->n = w.part[0].total;
    back->since_ns = w.part[0].since_ns;
    for (size_t i = 0; i < w.n; i++) {
        struct store_podset_part part;
        assert_int_equal(store_podset_decode(b.data + w.off[i], w.len[i], &part, back), 0);
        assert_int_equal(part.since_ns, w.part[i].since_ns);
        assert_int_equal(part.total, w.part[i].total);
        assert_int_equal(part.first, w.part[i].first);
        assert_int_equal(part.count, w.part[i].count);
    }
    same_pods(pods, back);
    /* A block decoded twice into the same set replaces its pods (ASan: nothing leaks). */
    assert_int_equal(store_podset_decode(b.data + w.off[0], w.len[0], &w.part[0], back), 0);
    same_pods(pods, back);
    store_pods_unref(back);
    nr_buf_free(&b);
}

static void set_round_trips(void **state)
{
    const struct spec s[] = {
        {4,
         {10, 0, 0, 7},
         "default/web-1",
         "5f1c7a3e-1b2c-4d5e-8f90-0123456789ab",
         "app=web,tier=frontend,app.kubernetes.io/name=web"},
        {6,
         {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
         "kube-system/coredns-5d78c9869d-x2x9q",
         "",
         ""},
        {4, {192, 168, 1, 254}, "a/b", NULL, "k=v"},
        {6, {0x20, 0x01, 0x0d, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, "ns/p", "u-1", NULL},
        {4, {0}, "x/\xc3\xa9t\xc3\xa9 \x7e", "uid with spaces", "a=b c"},
    };
    struct store_pods *p = make(s, sizeof(s) / sizeof(s[0]), NOW);
    struct store_pods *neg = make(s, 2, INT64_C(-5));
    struct store_pods *max = make(s + 1, 1, INT64_MAX);

    (void)state;
    round_trip(p, 1);
    round_trip(neg, 1);
    round_trip(max, 1);
    assert_string_equal(p->pods[2].uid, "");
    assert_string_equal(p->pods[3].labels, "");
    store_pods_unref(p);
    store_pods_unref(neg);
    store_pods_unref(max);
}

/* The block's bytes as podset.h describes them. */
static void block_layout(void **state)
{
    const struct spec s[] = {{4, {10, 0, 0, 7}, "default/web-1", "u1", "app=web"}};
    struct store_pods *p = make(s, 1, NOW);
    struct nr_buf b;
    size_t body = 20 + 24 + 13 + 2 + 7;

    (void)state;
    nr_buf_init(&b, 1 << 20);
    assert_int_equal(store_podset_append(&b, p), 0);
    assert_int_equal(b.len, 12 + PCAPNG_PAD4(body));
    assert_int_equal(pcapng_le32(b.data), STORE_PODSET_BLOCK);
    assert_int_equal(pcapng_le32(b.data + 4), b.len);
    assert_int_equal(pcapng_le32(b.data + b.len - 4), b.len);
    assert_int_equal(pcapng_le32(b.data + 8), (uint32_t)NOW);
    assert_int_equal(pcapng_le32(b.data + 12), (uint32_t)((uint64_t)NOW >> 32));
    assert_int_equal(pcapng_le32(b.data + B_TOTAL), 1);
    assert_int_equal(pcapng_le32(b.data + B_FIRST), 0);
    assert_int_equal(pcapng_le32(b.data + B_COUNT), 1);
    assert_int_equal(b.data[B_POD0 + P_FAMILY], 4);
    assert_int_equal(b.data[B_POD0 + 1], 0);
    assert_int_equal(b.data[B_POD0 + P_NL], 13);
    assert_int_equal(b.data[B_POD0 + P_UL], 2);
    assert_int_equal(b.data[B_POD0 + P_LL], 7);
    assert_memory_equal(b.data + B_POD0 + P_ADDR, ((uint8_t[16]){10, 0, 0, 7}), 16);
    assert_memory_equal(b.data + B_POD0 + P_STR, "default/web-1u1app=web", 22);
    nr_buf_free(&b);
    store_pods_unref(p);
}

static void empty_set_is_one_block(void **state)
{
    struct store_pods *p = store_pods_new(0);
    struct store_pods *into = store_pods_new(0);
    struct store_podset_part part;
    struct nr_buf b;
    uint32_t type;
    size_t blen;

    (void)state;
    p->since_ns = NOW;
    round_trip(p, 1);
    nr_buf_init(&b, 1 << 20);
    assert_int_equal(store_podset_append(&b, p), 0);
    assert_int_equal(b.len, 12 + 20);
    assert_int_equal(pcapng_block_peek(b.data, b.len, &type, &blen), 1);
    assert_int_equal(store_podset_decode(b.data, blen, &part, NULL), 0);
    assert_int_equal(part.total, 0);
    assert_int_equal(part.first, 0);
    assert_int_equal(part.count, 0);
    assert_int_equal(part.since_ns, NOW);
    assert_int_equal(store_podset_decode(b.data, blen, &part, into), 0);
    nr_buf_free(&b);
    store_pods_unref(into);
    store_pods_unref(p);
}

static void big_sets_span_blocks(void **state)
{
    const size_t sizes[] = {1,
                            STORE_PODSET_PER_BLOCK - 1,
                            STORE_PODSET_PER_BLOCK,
                            STORE_PODSET_PER_BLOCK + 1,
                            2 * STORE_PODSET_PER_BLOCK + 3,
                            5 * STORE_PODSET_PER_BLOCK};

    (void)state;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct store_pods *p = make_many(sizes[i]);
        round_trip(p, (sizes[i] + STORE_PODSET_PER_BLOCK - 1) / STORE_PODSET_PER_BLOCK);
        store_pods_unref(p);
    }
}

/* The largest pod the store takes (its batch checks: namespace and name of 253 bytes, uid of
 * 63, labels of 1023) round-trips; one byte more of any is refused. */
static void caps(void **state)
{
    char name[2 * STORE_MAX_NAME + 3], uid[STORE_MAX_UID + 2], labels[STORE_MAX_LABELS + 2];
    struct spec s = {6, {0xfd, 1}, name, uid, labels};
    struct store_pods *p;
    struct store_podset_part part;
    struct nr_buf b;

    (void)state;
    memset(name, 'n', sizeof(name));
    name[STORE_MAX_NAME] = '/';
    name[2 * STORE_MAX_NAME + 1] = '\0';
    memset(uid, 'u', sizeof(uid));
    uid[STORE_MAX_UID] = '\0';
    memset(labels, 'l', sizeof(labels));
    labels[STORE_MAX_LABELS] = '\0';
    p = make(&s, 1, NOW);
    round_trip(p, 1);
    store_pods_unref(p);

    /* A whole set of 512 of the largest pods is one block, under PCAPNG_MAX_BLOCK. */
    {
        struct spec many[STORE_PODSET_PER_BLOCK];
        for (size_t i = 0; i < STORE_PODSET_PER_BLOCK; i++)
            many[i] = s;
        p = make(many, STORE_PODSET_PER_BLOCK, NOW);
        round_trip(p, 1);
        store_pods_unref(p);
    }

    for (int which = 0; which < 3; which++) {
        name[2 * STORE_MAX_NAME + 1] = which == 0 ? 'n' : '\0';
        uid[STORE_MAX_UID] = which == 1 ? 'u' : '\0';
        labels[STORE_MAX_LABELS] = which == 2 ? 'l' : '\0';
        name[2 * STORE_MAX_NAME + 2] = '\0';
        uid[STORE_MAX_UID + 1] = '\0';
        labels[STORE_MAX_LABELS + 1] = '\0';
        p = make(&s, 1, NOW);
        nr_buf_init(&b, 1 << 20);
        assert_int_equal(store_podset_append(&b, p), 0);
        if (store_podset_decode(b.data, b.len, &part, NULL) != NR_EPARSE)
            fail_msg("a %s one byte over its cap was taken", which == 0   ? "name"
                                                             : which == 1 ? "uid"
                                                                          : "labels");
        nr_buf_free(&b);
        store_pods_unref(p);
    }
}

/* A valid block of three pods to lie with. */
static void good_block(struct nr_buf *b, struct store_pods **pods)
{
    const struct spec s[] = {
        {4, {10, 0, 0, 1}, "default/web-1", "uid-1", "app=web"},
        {6, {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, "default/db-0", "", ""},
        {4, {10, 0, 0, 3}, "kube-system/dns", "uid-3", "k8s-app=kube-dns"},
    };

    *pods = make(s, 3, NOW);
    nr_buf_init(b, 1 << 20);
    assert_int_equal(store_podset_append(b, *pods), 0);
}

/* Offset of pod i in the good block. */
static size_t pod_at(const uint8_t *blk, size_t i)
{
    size_t off = B_POD0;

    for (size_t k = 0; k < i; k++)
        off += P_STR + (blk[off + P_NL] | blk[off + P_NL + 1] << 8) +
               (blk[off + P_UL] | blk[off + P_UL + 1] << 8) +
               (blk[off + P_LL] | blk[off + P_LL + 1] << 8);
    return off;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* Decoding a copy of the good block changed by the statements must be NR_EPARSE, with into NULL
 * and with a set of its 3 pods (unref'd after: what a refused block had set leaks nothing). */
#define LIE(what, ...)                                                 \
    do {                                                               \
        uint8_t *c = malloc(good.len);                                 \
        size_t len = good.len;                                         \
        struct store_pods *lie_into = store_pods_new(3);               \
        assert_non_null(c);                                            \
        assert_non_null(lie_into);                                     \
        lie_into->n = 3;                                               \
        memcpy(c, good.data, good.len);                                \
        __VA_ARGS__;                                                   \
        if (store_podset_decode(c, len, &part, NULL) != NR_EPARSE)     \
            fail_msg("%s: taken (into NULL)", what);                   \
        if (store_podset_decode(c, len, &part, lie_into) != NR_EPARSE) \
            fail_msg("%s: taken (into a set of 3)", what);             \
        store_pods_unref(lie_into);                                    \
        free(c);                                                       \
    } while (0)

static void lies_are_refused(void **state)
{
    struct nr_buf good;
    struct store_pods *pods, *into;
    struct store_podset_part part;
    size_t p1, p2;

    (void)state;
    good_block(&good, &pods);
    p1 = pod_at(good.data, 1);
    p2 = pod_at(good.data, 2);
    assert_int_equal(store_podset_decode(good.data, good.len, &part, NULL), 0);
    assert_int_equal(part.count, 3);

    /* The block's type and size */
    LIE("wrong block type (an NRB)", pcapng_put32(c, PCAPNG_BT_NRB));
    LIE("wrong block type (the other local-use block)", pcapng_put32(c, 0x8E7E0001u));
    LIE("block shorter than its header", len = 12 + 19);
    LIE("block of 12 bytes", len = 12);
    /* The header's counts */
    LIE("count past total", pcapng_put32(c + B_COUNT, 4));
    LIE("count past total - first", { pcapng_put32(c + B_FIRST, 1); });
    LIE("first past total", {
        pcapng_put32(c + B_FIRST, 4);
        pcapng_put32(c + B_COUNT, 0);
    });
    LIE("first far past total", pcapng_put32(c + B_FIRST, 0xfffffffeu));
    LIE("count wrapping first + count", {
        pcapng_put32(c + B_FIRST, 2);
        pcapng_put32(c + B_COUNT, 0xffffffffu);
    });
    LIE("total past STORE_MAX_PODS", { pcapng_put32(c + B_TOTAL, STORE_MAX_PODS + 1); });
    LIE("count past STORE_PODSET_PER_BLOCK", {
        pcapng_put32(c + B_TOTAL, 1000);
        pcapng_put32(c + B_COUNT, STORE_PODSET_PER_BLOCK + 1);
    });
    LIE("count says more pods than the block holds", {
        pcapng_put32(c + B_TOTAL, 4);
        pcapng_put32(c + B_COUNT, 4);
    });
    LIE("the last pod's fixed part cut by the block's end", len = p2 + P_STR - 1 + 4);
    LIE("the last pod's strings cut by the block's end", len = p2 + P_STR + 3 + 4);
    /* Lengths */
    LIE("name length past the block (within its cap)", put16(c + p2 + P_NL, 500));
    LIE("name length 0xffff", put16(c + B_POD0 + P_NL, 0xffff));
    LIE("labels length past the block (last pod)", put16(c + p2 + P_LL, 600));
    LIE("name length zero", put16(c + B_POD0 + P_NL, 0));
    LIE("name longer than 2 * STORE_MAX_NAME + 1",
        put16(c + B_POD0 + P_NL, 2 * STORE_MAX_NAME + 2));
    LIE("uid longer than STORE_MAX_UID", put16(c + p1 + P_UL, STORE_MAX_UID + 1));
    LIE("labels longer than STORE_MAX_LABELS", put16(c + p1 + P_LL, STORE_MAX_LABELS + 1));
    /* Characters */
    LIE("a name with a control byte", c[B_POD0 + P_STR + 3] = 0x01);
    LIE("a name with a NUL", c[B_POD0 + P_STR + 3] = 0x00);
    LIE("a name with DEL", c[p2 + P_STR] = 0x7f);
    LIE("a uid with a newline", c[B_POD0 + P_STR + 13 + 2] = '\n');
    LIE("labels with an escape", c[p2 + P_STR + 15 + 5 + 3] = 0x1b);
    /* Family */
    LIE("family 5", c[B_POD0 + P_FAMILY] = 5);
    LIE("family 0 (pod 2)", c[p1 + P_FAMILY] = 0);
    LIE("family 10 (AF_INET6)", c[p2 + P_FAMILY] = 10);
    LIE("family 2 (AF_INET)", c[B_POD0 + P_FAMILY] = 2);

    /* `into` with the wrong n */
    into = store_pods_new(4);
    into->n = 2;
    assert_int_equal(store_podset_decode(good.data, good.len, &part, into), NR_EPARSE);
    into->n = 4;
    assert_int_equal(store_podset_decode(good.data, good.len, &part, into), NR_EPARSE);
    into->n = 0;
    assert_int_equal(store_podset_decode(good.data, good.len, &part, into), NR_EPARSE);
    for (size_t i = 0; i < 4; i++)
        assert_null(into->pods[i].name);
    into->n = 3;
    assert_int_equal(store_podset_decode(good.data, good.len, &part, into), 0);
    assert_string_equal(into->pods[2].labels, "k8s-app=kube-dns");
    store_pods_unref(into);

    /* The pad byte after the family is not read: a block with it set is still the same set. */
    into = store_pods_new(3);
    into->n = 3;
    good.data[B_POD0 + 1] = 0x55;
    assert_int_equal(store_podset_decode(good.data, good.len, &part, into), 0);
    assert_string_equal(into->pods[0].name, "default/web-1");
    assert_string_equal(into->pods[1].uid, "");
    store_pods_unref(into);

    nr_buf_free(&good);
    store_pods_unref(pods);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(set_round_trips),
        cmocka_unit_test(block_layout),
        cmocka_unit_test(empty_set_is_one_block),
        cmocka_unit_test(big_sets_span_blocks),
        cmocka_unit_test(caps),
        cmocka_unit_test(lies_are_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
