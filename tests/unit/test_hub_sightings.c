/* Tests for services/hub/sightings.c, as a user of `pcapdump` sees it: one packet between pods
 * on two nodes is in the file once, the sending pod's copy, whatever the nodes' clocks did;
 * nothing that is a packet of its own (a retransmission, a datagram sent twice, ARP, a copy
 * after the window) is ever left out; --sightings=all keeps every copy with one packet id; and
 * however much comes within a window, the stage neither loses a packet nor holds more than its
 * bounds. Packets are LINUX_SLL2 around IPv4/UDP and IPv4/TCP, as `-i any` records them; the
 * output is read back with lib/pcapng/decode.h. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hub/sightings.h"
#include "pcapng/decode.h"
#include "pcapng/pcap.h"
#include "util/buf.h"

#define LT_EN10MB 1
#define LT_SLL2   276
#define SLL2_IN   0 /* PACKET_HOST */
#define SLL2_OUT  4 /* PACKET_OUTGOING */
#define US        INT64_C(1000)
#define MS        INT64_C(1000000)
#define T0        INT64_C(1700000000000000000)
#define W         HUB_SIGHTING_WINDOW_NS
#define OUT_MAX   ((size_t)512 << 20)
#define SKEW      (-1 * MS) /* node 2's clock is a millisecond early */

/* The output interfaces of a two-node cluster as the hub numbers them: pod A's veth on node 1,
 * node 1's uplink, node 2's uplink, pod B's veth on node 2, and one Ethernet interface (a
 * link type that says no direction). */
enum { IF_POD_A, IF_N1, IF_N2, IF_POD_B, IF_ETH, N_IFACES };
static const uint32_t IFINDEX[N_IFACES] = {11, 2, 3, 21, 5};

static const uint8_t POD_A[4] = {10, 244, 1, 5}, POD_B[4] = {10, 244, 2, 7},
                     SVC[4] = {10, 96, 0, 10};

#define PLEN_MAX 65000 /* payload bytes: up to a GRO packet */

struct pkt {
    uint8_t b[PLEN_MAX + 128];
    size_t n;
};

/* One packet as its sender made it; `tag` is in its payload's first 4 bytes (or the ARP target
 * address), so that every copy in the output says which packet it is. */
struct pk {
    uint32_t tag;
    uint8_t proto; /* 6, 17, or 0 for ARP */
    uint16_t ipid;
    size_t plen;  /* payload bytes, >= 4 */
    bool reverse; /* pod B -> pod A (the reply way) */
};

/* One sighting of a packet: where, which way, and how many hops it had made. */
struct ev {
    int64_t ts;
    size_t seq; /* ties keep the order they were made in */
    struct pk p;
    uint32_t ifid;
    uint8_t type;
    int hop;
};

struct evs {
    struct ev *v;
    size_t n, cap;
};

/* A packet of the output, decoded. */
struct rec {
    uint32_t ifid;
    int64_t ts;
    uint32_t caplen, origlen;
    const uint8_t *data;
    uint32_t tag;
    bool has_flags, has_id;
    uint32_t flags;
    uint64_t id;
};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)be16(p) << 16 | be16(p + 2);
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)pcapng_le32(p + 4) << 32 | pcapng_le32(p);
}

/* The packet p as seen on interface ifid (packet type `type`) after `hop` hops: TTL one less a
 * hop, its checksums with it, and from the first hop on kube-proxy's DNAT of the Service address
 * (or, the reply way, its reverse). What stays is what makes it the same packet. */
static void build(struct pkt *k, const struct pk *p, uint32_t ifid, uint8_t type, int hop)
{
    size_t lh = ifid == IF_ETH ? 14 : 20;
    uint8_t *ip = k->b + lh, *l4 = ip + 20, *pay;
    size_t l4len;

    memset(k->b, 0, 128); /* the headers; build() writes every payload byte */
    assert_true(!p->proto || (p->plen >= 4 && p->plen <= PLEN_MAX));
    if (ifid == IF_ETH) {
        k->b[5] = (uint8_t)(hop + 1);
        k->b[11] = (uint8_t)(hop + 7);
        put16(k->b + 12, p->proto ? 0x0800 : 0x0806);
    } else {
        put16(k->b, p->proto ? 0x0800 : 0x0806);
        put32(k->b + 4, IFINDEX[ifid]);
        put16(k->b + 8, 1); /* ARPHRD_ETHER */
        k->b[10] = type;
        k->b[11] = 6;
        k->b[12 + 5] = (uint8_t)(ifid + hop);
    }
    if (!p->proto) { /* ARP request, the tag as the target address */
        put16(ip, 1);
        put16(ip + 2, 0x0800);
        ip[4] = 6;
        ip[5] = 4;
        put16(ip + 6, 1);
        memcpy(ip + 14, POD_A, 4);
        put32(ip + 24, p->tag);
        k->n = lh + 28;
        return;
    }
    l4len = (p->proto == 6 ? 20 : 8) + p->plen;
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(20 + l4len));
    put16(ip + 4, p->ipid);
    ip[6] = 0x40; /* DF */
    ip[8] = (uint8_t)(64 - hop);
    ip[9] = p->proto;
    put16(ip + 10, (uint16_t)(0xb000 + hop * 0x101)); /* follows the TTL */
    if (!p->reverse) {
        memcpy(ip + 12, POD_A, 4);
        memcpy(ip + 16, hop ? POD_B : SVC, 4);
        put16(l4, 40000);
        put16(l4 + 2, hop ? 8080 : 80);
    } else {
        memcpy(ip + 12, hop ? SVC : POD_B, 4);
        memcpy(ip + 16, POD_A, 4);
        put16(l4, hop ? 80 : 8080);
        put16(l4 + 2, 40000);
    }
    if (p->proto == 6) {
        put32(l4 + 4, p->tag * 1000 + 1); /* seq */
        put32(l4 + 8, 77);                /* ack */
        l4[12] = 5 << 4;
        l4[13] = 0x18; /* PSH ACK */
        put16(l4 + 14, 502);
        put16(l4 + 16, (uint16_t)(0x7000 + hop)); /* checksum, NAT changes it */
        pay = l4 + 20;
    } else {
        put16(l4 + 4, (uint16_t)l4len);
        put16(l4 + 6, (uint16_t)(0x5000 + hop)); /* checksum */
        pay = l4 + 8;
    }
    put32(pay, p->tag);
    for (size_t i = 4; i < p->plen; i++)
        pay[i] = (uint8_t)(p->tag * 7 + i);
    k->n = lh + 20 + l4len;
}

/* The tag of an output packet (as build() put it there). */
static uint32_t tag_of(uint32_t ifid, const uint8_t *d, uint32_t caplen)
{
    size_t lh = ifid == IF_ETH ? 14 : 20, l4;
    uint16_t et = be16(d + (ifid == IF_ETH ? 12 : 0));

    assert_true(caplen >= lh + 28);
    if (et == 0x0806)
        return be32(d + lh + 24);
    assert_int_equal(et, 0x0800);
    l4 = lh + (size_t)(d[lh] & 15) * 4;
    l4 += d[lh + 9] == 6 ? 20 : 8;
    assert_true(caplen >= l4 + 4);
    return be32(d + l4);
}

static struct hub_sightings *new_sg(enum hub_sightings_mode mode, bool pcap)
{
    struct hub_sightings *sg = hub_sightings_new(mode, N_IFACES, pcap);

    assert_non_null(sg);
    hub_sightings_iface(sg, IF_POD_A, LT_SLL2, true, 0);
    hub_sightings_iface(sg, IF_N1, LT_SLL2, false, 0);
    hub_sightings_iface(sg, IF_N2, LT_SLL2, false, 1);
    hub_sightings_iface(sg, IF_POD_B, LT_SLL2, true, 1);
    hub_sightings_iface(sg, IF_ETH, LT_EN10MB, false, 0);
    return sg;
}

/* Hands one sighting to the stage and releases what is due, as the hub's snapshot loop does. */
static void feed1(struct hub_sightings *sg, const struct pk *p, uint32_t ifid, uint8_t type,
                  int hop, int64_t ts, struct nr_buf *out)
{
    struct pkt k;
    struct pcapng_epb epb = {0};

    build(&k, p, ifid, type, hop);
    epb.data = k.b;
    epb.caplen = (uint32_t)k.n;
    epb.origlen = (uint32_t)k.n;
    epb.ts_ns = ts;
    epb.ifid = ifid;
    assert_int_equal(hub_sightings_put(sg, &epb, ifid, ts, out), 0);
    assert_int_equal(hub_sightings_release(sg, out, false, SIZE_MAX), 0);
}

static void add(struct evs *e, int64_t ts, const struct pk *p, uint32_t ifid, uint8_t type, int hop)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 64;
        e->v = realloc(e->v, e->cap * sizeof(*e->v));
        assert_non_null(e->v);
    }
    e->v[e->n] =
        (struct ev){.ts = ts, .seq = e->n, .p = *p, .ifid = ifid, .type = type, .hop = hop};
    e->n++;
}

/* Pod A (node 1) to pod B (node 2): in from A's veth, out of node 1's uplink, in at node 2's
 * uplink, out to B's veth; node 2's sightings stamped by its clock (skew). */
static void a_to_b(struct evs *e, const struct pk *p, int64_t t, int64_t skew)
{
    add(e, t, p, IF_POD_A, SLL2_IN, 0);
    add(e, t + 10 * US, p, IF_N1, SLL2_OUT, 1);
    add(e, t + 15 * US + skew, p, IF_N2, SLL2_IN, 2);
    add(e, t + 20 * US + skew, p, IF_POD_B, SLL2_OUT, 3);
}

/* The reply way: pod B sends (node 2's clock), pod A receives. */
static void b_to_a(struct evs *e, const struct pk *p, int64_t t, int64_t skew)
{
    struct pk r = *p;

    r.reverse = true;
    add(e, t + skew, &r, IF_POD_B, SLL2_IN, 0);
    add(e, t + 5 * US + skew, &r, IF_N2, SLL2_OUT, 1);
    add(e, t + 15 * US, &r, IF_N1, SLL2_IN, 2);
    add(e, t + 20 * US, &r, IF_POD_A, SLL2_OUT, 3);
}

/* From outside the cluster to pod B: no pod's device sends it. */
static void ext_to_b(struct evs *e, const struct pk *p, int64_t t, int64_t skew)
{
    add(e, t + skew, p, IF_N2, SLL2_IN, 1);
    add(e, t + 5 * US + skew, p, IF_POD_B, SLL2_OUT, 2);
}

static int ev_cmp(const void *a, const void *b)
{
    const struct ev *x = a, *y = b;

    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The merge's order: by timestamp, ties as made; then every sighting through the stage, and at
 * the end what it still holds. */
static void feed(struct hub_sightings *sg, struct evs *e, struct nr_buf *out)
{
    qsort(e->v, e->n, sizeof(*e->v), ev_cmp);
    for (size_t i = 0; i < e->n; i++)
        feed1(sg, &e->v[i].p, e->v[i].ifid, e->v[i].type, e->v[i].hop, e->v[i].ts, out);
    assert_int_equal(hub_sightings_release(sg, out, true, SIZE_MAX), 0);
}

/* Every block of out must be an EPB; returns them decoded (calloc'd, *n of them). Only
 * epb_flags and epb_packetid may be there, once each. */
static struct rec *decode(const struct nr_buf *out, size_t *n)
{
    struct rec *r = calloc(out->len / PCAPNG_EPB_MIN + 1, sizeof(*r));
    size_t off = 0;

    assert_non_null(r);
    *n = 0;
    while (off < out->len) {
        uint32_t type = 0;
        size_t blen = 0, o = 0;
        struct pcapng_epb epb;
        struct rec *x = &r[*n];

        assert_int_equal(pcapng_block_peek(out->data + off, out->len - off, &type, &blen), 1);
        assert_int_equal(type, PCAPNG_BT_EPB);
        assert_int_equal(pcapng_epb_decode(out->data + off, blen, &epb), 0);
        x->ifid = epb.ifid;
        x->ts = epb.ts_ns;
        x->caplen = epb.caplen;
        x->origlen = epb.origlen;
        x->data = epb.data;
        x->tag = tag_of(epb.ifid, epb.data, epb.caplen);
        while (o + 4 <= epb.options_len) {
            uint16_t code = le16(epb.options + o), len = le16(epb.options + o + 2);
            const uint8_t *v = epb.options + o + 4;
            if (code == 0)
                break;
            assert_true(o + 4 + len <= epb.options_len);
            if (code == 2) {
                assert_false(x->has_flags);
                assert_int_equal(len, 4);
                x->has_flags = true;
                x->flags = pcapng_le32(v);
            } else if (code == 5) {
                assert_false(x->has_id);
                assert_int_equal(len, 8);
                x->has_id = true;
                x->id = le64(v);
            } else {
                fail_msg("option %u in the output", code);
            }
            o += 4 + PCAPNG_PAD4(len);
        }
        off += blen;
        ++*n;
    }
    return r;
}

static void assert_time_order(const struct rec *r, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (r[i].ts < r[i - 1].ts)
            fail_msg("packet %zu at %lld before packet %zu at %lld", i, (long long)r[i].ts, i - 1,
                     (long long)r[i - 1].ts);
}

static void assert_stats(const struct hub_sightings *sg, uint64_t packets, uint64_t written,
                         uint64_t copies)
{
    struct hub_sighting_stats st;

    hub_sightings_stats(sg, &st);
    assert_int_equal(st.packets, packets);
    assert_int_equal(st.written, written);
    assert_int_equal(st.copies, copies);
}

/* The sighting p would have on ifid/type/hop, byte for byte: what the output must hold. */
static void assert_is(const struct rec *r, const struct pk *p, uint32_t ifid, uint8_t type, int hop,
                      int64_t ts)
{
    struct pkt k;

    build(&k, p, ifid, type, hop);
    assert_int_equal(r->ifid, ifid);
    assert_int_equal(r->ts, ts);
    assert_int_equal(r->caplen, k.n);
    assert_int_equal(r->origlen, k.n);
    assert_memory_equal(r->data, k.b, k.n);
}

/* The case of docs/hub.md: a packet from pod A to pod B is seen four times, and node 2's clock
 * is a millisecond early, so its two sightings come first in the merge. The file has it once:
 * the copy entering node 1 from pod A's device, where it stands in time. */
static void one_keeps_the_senders_copy(void **state)
{
    struct hub_sightings *sg = new_sg(HUB_SIGHTINGS_ONE, false);
    struct pk p = {.tag = 1, .proto = 17, .ipid = 4242, .plen = 32};
    struct evs e = {0};
    struct nr_buf out;
    struct rec *r;
    size_t n;

    nr_buf_init(&out, OUT_MAX);
    a_to_b(&e, &p, T0, SKEW);
    feed(sg, &e, &out);
    r = decode(&out, &n);
    assert_int_equal(n, 1);
    assert_is(&r[0], &p, IF_POD_A, SLL2_IN, 0, T0);
    assert_true(r[0].has_flags);
    assert_int_equal(r[0].flags, 1); /* inbound */
    assert_false(r[0].has_id);       /* no packet ids in mode one */
    assert_stats(sg, 4, 1, 3);
    free(r);
    free(e.v);
    nr_buf_free(&out);
    hub_sightings_free(sg);
}

/* seen: a late copy of a packet taken is known, another packet is not; mode all knows none. */
static void seen_knows_a_late_copy(void **state)
{
    struct hub_sightings *sg = new_sg(HUB_SIGHTINGS_ONE, false);
    struct hub_sightings *all = new_sg(HUB_SIGHTINGS_ALL, false);
    struct pk p = {.tag = 1, .proto = 17, .ipid = 4242, .plen = 32};
    struct pk q = {.tag = 2, .proto = 17, .ipid = 4243, .plen = 32};
    struct pcapng_epb epb = {0};
    struct nr_buf out;
    struct pkt k;

    nr_buf_init(&out, OUT_MAX);
    feed1(sg, &p, IF_POD_A, SLL2_IN, 0, T0, &out);
    feed1(all, &p, IF_POD_A, SLL2_IN, 0, T0, &out);
    build(&k, &p, IF_N2, SLL2_IN, 2); /* its copy at node 2's uplink */
    epb.data = k.b;
    epb.caplen = epb.origlen = (uint32_t)k.n;
    assert_true(hub_sightings_seen(sg, &epb, IF_N2));
    assert_false(hub_sightings_seen(all, &epb, IF_N2));
    build(&k, &q, IF_N2, SLL2_IN, 2);
    epb.caplen = epb.origlen = (uint32_t)k.n;
    assert_false(hub_sightings_seen(sg, &epb, IF_N2));
    nr_buf_free(&out);
    hub_sightings_free(sg);
    hub_sightings_free(all);
}

/* Many packets both ways and from outside, interleaved, node 2 a millisecond early: each once,
 * the sender's copy (pod A's, pod B's, or the first when no pod sent it), in time order. With
 * packets 7 ms apart the window ends while the merge goes on, so some leave during the feed. */
static void scenario(int64_t spacing)
{
    enum { N = 60 };
    struct hub_sightings *sg = new_sg(HUB_SIGHTINGS_ONE, false);
    struct evs e = {0};
    struct nr_buf out;
    struct rec *r;
    size_t n, seen[N] = {0};

    nr_buf_init(&out, OUT_MAX);
    for (uint32_t i = 0; i < N; i++) {
        struct pk p = {
            .tag = 100 + i, .proto = i % 2 ? 6 : 17, .ipid = (uint16_t)(500 + i), .plen = 20 + i};
        int64_t t = T0 + (int64_t)i * spacing;
        if (i % 3 == 0)
            a_to_b(&e, &p, t, SKEW);
        else if (i % 3 == 1)
            b_to_a(&e, &p, t, SKEW);
        else
            ext_to_b(&e, &p, t, SKEW);
    }
    feed(sg, &e, &out);
    r = decode(&out, &n);
    assert_int_equal(n, N);
    assert_time_order(r, n);
    for (size_t i = 0; i < n; i++) {
        uint32_t k = r[i].tag - 100, want;
        assert_true(k < N);
        seen[k]++;
        want = k % 3 == 0 ? IF_POD_A : k % 3 == 1 ? IF_POD_B : IF_N2;
        if (r[i].ifid != want)
            fail_msg("packet %u kept from interface %u, not %u", k, r[i].ifid, want);
        assert_true(r[i].has_flags);
        assert_int_equal(r[i].flags, 1);
    }
    for (size_t k = 0; k < N; k++)
        assert_int_equal(seen[k], 1);
    assert_stats(sg, e.n, N, e.n - N);
    free(r);
    free(e.v);
    nr_buf_free(&out);
    hub_sightings_free(sg);
}

static void one_each_packet_once_both_ways(void **state)
{
    scenario(37 * US);
    scenario(7 * MS);
}

/* The same bytes again where they were already seen are a new packet: a TCP retransmission 5 ms
 * and 200 ms later (each with its own four sightings), a datagram the node sends twice, and ARP,
 * which has no key at all: every one of them is in the file. */
static void one_keeps_retransmissions_resends_and_arp(void **state)
{
    struct hub_sightings *sg = new_sg(HUB_SIGHTINGS_ONE, false);
    struct pk seg = {.tag = 7, .proto = 6, .plen = 100};
    struct pk dgram = {.tag = 8, .proto = 17, .ipid = 9, .plen = 40};
    struct pk twice = {.tag = 9, .proto = 17, .ipid = 0, .plen = 16};
    struct pk arp = {.tag = 10};
    struct evs e = {0};
    struct nr_buf out;
    struct rec *r;
    size_t n;

    nr_buf_init(&out, OUT_MAX);
    a_to_b(&e, &seg, T0, SKEW);
    a_to_b(&e, &seg, T0 + 5 * MS, SKEW);
    a_to_b(&e, &seg, T0 + 200 * MS, SKEW);
    /* pod A sends one datagram twice, 2 ms apart, both through the cluster */
    a_to_b(&e, &dgram, T0 + 300 * MS, 0);
    a_to_b(&e, &dgram, T0 + 302 * MS, 0);
    /* the node itself sends one twice on its uplink, 1 ms apart, seen there only */
    add(&e, T0 + 400 * MS, &twice, IF_N1, SLL2_OUT, 0);
    add(&e, T0 + 401 * MS, &twice, IF_N1, SLL2_OUT, 0);
    /* one ARP request seen on four interfaces, around an IP packet: all four stay */
    add(&e, T0 + 500 * MS, &arp, IF_POD_A, SLL2_IN, 0);
    add(&e, T0 + 500 * MS + 1 * US, &arp, IF_N1, SLL2_OUT, 0);
    add(&e, T0 + 500 * MS + 2 * US, &arp, IF_N1, SLL2_OUT, 0);
    a_to_b(&e, &dgram, T0 + 500 * MS + 3 * US, 0);
    add(&e, T0 + 500 * MS + 40 * US, &arp, IF_POD_B, SLL2_IN, 0);
    feed(sg, &e, &out);
    r = decode(&out, &n);
    assert_int_equal(n, 3 + 2 + 2 + 4 + 1);
    assert_time_order(r, n);
    assert_is(&r[0], &seg, IF_POD_A, SLL2_IN, 0, T0);
    assert_is(&r[1], &seg, IF_POD_A, SLL2_IN, 0, T0 + 5 * MS);
    assert_is(&r[2], &seg, IF_POD_A, SLL2_IN, 0, T0 + 200 * MS);
    assert_is(&r[3], &dgram, IF_POD_A, SLL2_IN, 0, T0 + 300 * MS);
    assert_is(&r[4], &dgram, IF_POD_A, SLL2_IN, 0, T0 + 302 * MS);
    assert_is(&r[5], &twice, IF_N1, SLL2_OUT, 0, T0 + 400 * MS);
    assert_is(&r[6], &twice, IF_N1, SLL2_OUT, 0, T0 + 401 * MS);
    assert_int_equal(r[6].flags, 2); /* outbound */
    assert_is(&r[7], &arp, IF_POD_A, SLL2_IN, 0, T0 + 500 * MS);
    assert_is(&r[8], &arp, IF_N1, SLL2_OUT, 0, T0 + 500 * MS + 1 * US);
    assert_is(&r[9], &arp, IF_N1, SLL2_OUT, 0, T0 + 500 * MS + 2 * US);
    assert_is(&r[10], &dgram, IF_POD_A, SLL2_IN, 0, T0 + 500 * MS + 3 * US);
    assert_is(&r[11], &arp, IF_POD_B, SLL2_IN, 0, T0 + 500 * MS + 40 * US);
    assert_stats(sg, e.n, n, e.n - n);
    free(r);
    free(e.v);
    nr_buf_free(&out);
    hub_sightings_free(sg);
}

/* The same bytes sent again before the first send's copies have all been seen: the k-th
 * sighting at one place belongs to the k-th send (a group that remembered one packet per key
 * took the first send's late copy for a copy of the second, and the second's own copy for a
 * third packet). Pod A sends one datagram twice,
 * 1 us apart (a UDP socket that is not connected sends DF datagrams with IPv4 id 0: the same
 * bytes), both cross node 1's uplink 10 us later: the file must hold it twice, from pod A's
 * device. */
static void one_resent_before_its_copies_arrive(void **state)
{
    struct hub_sightings *sg = new_sg(HUB_SIGHTINGS_ONE, false);
    struct pk d = {.tag = 9, .proto = 17, .ipid = 0, .plen = 16};
    struct evs e = {0};
    struct nr_buf out;
    struct rec *r;
    size_t n;

    nr_buf_init(&out, OUT_MAX);
    add(&e, T0, &d, IF_POD_A, SLL2_IN, 0);
    add(&e, T0 + 1 * US, &d, IF_POD_A, SLL2_IN, 0);
    add(&e, T0 + 10 * US, &d, IF_N1, SLL2_OUT, 1);
    add(&e, T0 + 11 * US, &d, IF_N1, SLL2_OUT, 1);
    feed(sg, &e, &out);
    r = decode(&out, &n);
    if (n == 2) {
        assert_is(&r[0], &d, IF_POD_A, SLL2_IN, 0, T0);
        assert_is(&r[1], &d, IF_POD_A, SLL2_IN, 0, T0 + 1 * US);
        assert_stats(sg, 4, 2, 2);
    }
    free(r);
    free(e.v);
    nr_buf_free(&out);
    hub_sightings_free(sg);
    assert_int_equal(n, 2); /* a group of one packet per key gave 3: IF_N1's at T0 + 11 us */
}

/* The same with clock skew. A TCP segment retransmitted
 * 200 us later (a fast retransmission inside a cluster), node 2's clock 1 ms early: node 2
 * sees both sends before node 1 sees the first. The file must hold the segment twice, both from
 * pod A's device (not node 2's uplink copy of the first as well). */
static void one_fast_retransmission_under_skew(void **state)
{
    struct hub_sightings *sg = new_sg(HUB_SIGHTINGS_ONE, false);
    struct pk seg = {.tag = 7, .proto = 6, .plen = 100};
    struct evs e = {0};
    struct nr_buf out;
    struct rec *r;
    size_t n;

    nr_buf_init(&out, OUT_MAX);
    a_to_b(&e, &seg, T0, SKEW);
    a_to_b(&e, &seg, T0 + 200 * US, SKEW);
    feed(sg, &e, &out);
    r = decode(&out, &n);
    if (n == 2) {
        assert_is(&r[0], &seg, IF_POD_A, SLL2_IN, 0, T0);
        assert_is(&r[1], &seg, IF_POD_A, SLL2_IN, 0, T0 + 200 * US);
        assert_stats(sg, 8, 2, 6);
    }
    free(r);
    free(e.v);
    nr_buf_free(&out);
    hub_sightings_free(sg);
    assert_int_equal(n, 2); /* a group of one packet per key gave 3: IF_N2's at T0 - 985 us */
}

/* A sighting more than HUB_SIGHTING_WINDOW_NS after the first is a packet of its own; one just
 * inside the window is a copy. */
static void one_window_ends_a_packet(void **state)
{
    struct hub_sightings *sg = new_sg(HUB_SIGHTINGS_ONE, false);
    struct pk p = {.tag = 3, .proto = 17, .ipid = 1, .plen = 8};
    struct pk q = {.tag = 4, .proto = 6, .plen = 8};
    struct nr_buf out;
    struct rec *r;
    size_t n;

    nr_buf_init(&out, OUT_MAX);
    feed1(sg, &p, IF_POD_A, SLL2_IN, 0, T0, &out);
    feed1(sg, &p, IF_N1, SLL2_OUT, 1, T0 + W + 1, &out);
    feed1(sg, &q, IF_POD_A, SLL2_IN, 0, T0 + 2 * W, &out);
    feed1(sg, &q, IF_N1, SLL2_OUT, 1, T0 + 3 * W - 1, &out);
    /* the sender's copy after the window of the first: kept too */
    feed1(sg, &p, IF_N2, SLL2_IN, 2, T0 + 5 * W, &out);
    feed1(sg, &p, IF_POD_A, SLL2_IN, 0, T0 + 6 * W + 1, &out);
    assert_int_equal(hub_sightings_release(sg, &out, true, SIZE_MAX), 0);
    r = decode(&out, &n);
    assert_int_equal(n, 5);
    assert_is(&r[0], &p, IF_POD_A, SLL2_IN, 0, T0);
    assert_is(&r[1], &p, IF_N1, SLL2_OUT, 1, T0 + W + 1);
    assert_is(&r[2], &q, IF_POD_A, SLL2_IN, 0, T0 + 2 * W);
    assert_is(&r[3], &p, IF_N2, SLL2_IN, 2, T0 + 5 * W);
    assert_is(&r[4], &p, IF_POD_A, SLL2_IN, 0, T0 + 6 * W + 1);
    assert_stats(sg, 6, 5, 1);
    free(r);
    nr_buf_free(&out);
    hub_sightings_free(sg);
}

/* --sightings=all: every sighting at once, with epb_packetid shared by the copies of one packet
 * and by nothing else, and epb_flags where the link-layer header says the direction. */
static void all_writes_every_copy_with_one_id(void **state)
{
    struct hub_sightings *sg = new_sg(HUB_SIGHTINGS_ALL, false);
    struct pk p1 = {.tag = 1, .proto = 17, .ipid = 11, .plen = 30};
    struct pk p2 = {.tag = 2, .proto = 6, .plen = 30};
    struct pk arp = {.tag = 3};
    struct pk eth = {.tag = 4, .proto = 17, .ipid = 12, .plen = 10};
    struct evs e = {0};
    struct nr_buf out;
    struct rec *r;
    size_t n, blocks = 0;
    uint64_t id1 = 0, id2 = 0, id1b = 0;

    nr_buf_init(&out, OUT_MAX);
    a_to_b(&e, &p1, T0, SKEW);
    b_to_a(&e, &p2, T0 + 3 * US, SKEW);
    a_to_b(&e, &p1, T0 + 5 * MS, 0); /* a retransmission: a packet of its own */
    add(&e, T0 + 6 * MS, &arp, IF_POD_A, SLL2_IN, 0);
    add(&e, T0 + 6 * MS + 1, &arp, IF_N1, SLL2_OUT, 0);
    add(&e, T0 + 7 * MS, &eth, IF_ETH, 0, 0);
    add(&e, T0 + 7 * MS + 1, &eth, IF_N1, SLL2_OUT, 1);
    qsort(e.v, e.n, sizeof(*e.v), ev_cmp);
    for (size_t i = 0; i < e.n; i++) {
        size_t before = out.len;
        feed1(sg, &e.v[i].p, e.v[i].ifid, e.v[i].type, e.v[i].hop, e.v[i].ts, &out);
        assert_true(out.len > before); /* written at once */
        blocks++;
        free(decode(&out, &n));
        assert_int_equal(n, blocks);
    }
    assert_int_equal(hub_sightings_release(sg, &out, true, SIZE_MAX), 0);
    r = decode(&out, &n);
    assert_int_equal(n, e.n);
    assert_time_order(r, n);
    for (size_t i = 0; i < n; i++) {
        const struct ev *v = &e.v[i];
        assert_int_equal(r[i].ifid, v->ifid);
        assert_int_equal(r[i].ts, v->ts);
        assert_int_equal(r[i].tag, v->p.tag);
        assert_true(r[i].has_id);
        assert_int_not_equal(r[i].id, 0);
        if (v->ifid == IF_ETH) {
            assert_false(r[i].has_flags); /* Ethernet says no direction */
        } else {
            assert_true(r[i].has_flags);
            assert_int_equal(r[i].flags, v->type == SLL2_OUT ? 2 : 1);
        }
        if (v->p.tag == 1 && v->ts < T0 + 5 * MS) {
            if (!id1)
                id1 = r[i].id;
            assert_true(r[i].id == id1);
        } else if (v->p.tag == 1) {
            if (!id1b)
                id1b = r[i].id;
            assert_true(r[i].id == id1b);
        } else if (v->p.tag == 2) {
            if (!id2)
                id2 = r[i].id;
            assert_true(r[i].id == id2);
        }
    }
    assert_true(id1 && id2 && id1b);
    assert_true(id1 != id2 && id1 != id1b && id2 != id1b);
    /* ARP has no key: each sighting its own id; the Ethernet packet and its SLL2 copy, one */
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            bool same = r[i].tag == r[j].tag && r[i].tag != 3 &&
                        (r[i].tag != 1 || (r[i].ts < T0 + 5 * MS) == (r[j].ts < T0 + 5 * MS));
            if (same != (r[i].id == r[j].id))
                fail_msg("packets %zu (tag %u id %llu) and %zu (tag %u id %llu)", i, r[i].tag,
                         (unsigned long long)r[i].id, j, r[j].tag, (unsigned long long)r[j].id);
        }
    }
    assert_stats(sg, e.n, e.n, 0);
    free(r);
    free(e.v);
    nr_buf_free(&out);
    hub_sightings_free(sg);
}

/* More than HUB_SIGHTING_HOLD_MAX bytes of distinct packets within one window: the oldest are
 * decided early, nothing is lost, the order stays, and what the stage holds stays bounded. Then
 * the same with two sightings a packet: still each once. */
static void one_hold_is_bounded(void **state)
{
    const size_t plen = 1400;
    const size_t per = PCAPNG_EPB_MIN + PCAPNG_PAD4(20 + 20 + 8 + plen) + 12;
    const size_t N = 3 * (size_t)HUB_SIGHTING_HOLD_MAX / 2 / per + 1;
    struct hub_sighting_stats st;

    for (int copies = 0; copies <= 1; copies++) {
        struct hub_sightings *sg = new_sg(HUB_SIGHTINGS_ONE, false);
        struct nr_buf out;
        struct rec *r;
        size_t n, held_max = 0, put = 0;
        int64_t ts = T0;

        nr_buf_init(&out, OUT_MAX);
        for (size_t i = 0; i < N; i++) {
            struct pk p = {.tag = (uint32_t)i, .proto = 17, .ipid = (uint16_t)i, .plen = plen};
            if (copies) {
                feed1(sg, &p, IF_N1, SLL2_OUT, 1, ts++, &out);
                put += per;
            }
            feed1(sg, &p, IF_POD_A, SLL2_IN, 0, ts++, &out);
            put += per;
            /* without copies every byte put comes out: the difference is what is held */
            if (!copies && put - out.len > held_max)
                held_max = put - out.len;
        }
        assert_true(out.len > 0); /* some left before the window was over */
        assert_true(held_max <= 2 * (size_t)HUB_SIGHTING_HOLD_MAX);
        assert_int_equal(hub_sightings_release(sg, &out, true, SIZE_MAX), 0);
        r = decode(&out, &n);
        assert_int_equal(n, N);
        assert_time_order(r, n);
        for (size_t i = 0; i < n; i++) {
            struct pk p = {.tag = (uint32_t)i, .proto = 17, .ipid = (uint16_t)i, .plen = plen};
            assert_int_equal(r[i].tag, i);
            if (r[i].ifid == IF_POD_A)
                assert_is(&r[i], &p, IF_POD_A, SLL2_IN, 0, r[i].ts);
            else
                assert_is(&r[i], &p, IF_N1, SLL2_OUT, 1, r[i].ts);
        }
        hub_sightings_stats(sg, &st);
        assert_int_equal(st.packets, N * (copies ? 2 : 1));
        assert_int_equal(st.written, N);
        assert_int_equal(st.copies, copies ? N : 0);
        assert_true(st.early > 0);
        print_message("hold: %zu sightings of %zu bytes%s, %llu decided early",
                      N * (copies ? 2 : 1), per, copies ? " (two a packet)" : "",
                      (unsigned long long)st.early);
        if (!copies)
            print_message(", at most %zu bytes held", held_max);
        print_message("\n");
        free(r);
        nr_buf_free(&out);
        hub_sightings_free(sg);
    }
}

/* More distinct packets within one window than the table holds (HUB_SIGHTING_TABLE_MAX / 4
 * fresh ones): it starts over, and never a packet is lost; with two sightings a packet, at most
 * one copy more per restart. In mode all, an id is never shared by two packets. */
static void table_is_bounded(void **state)
{
    const size_t N = HUB_SIGHTING_TABLE_MAX / 2 + 4096;

    for (int mode = 0; mode < 3; mode++) {
        bool all = mode == 2, copies = mode >= 1;
        struct hub_sightings *sg = new_sg(all ? HUB_SIGHTINGS_ALL : HUB_SIGHTINGS_ONE, false);
        struct hub_sighting_stats st;
        struct nr_buf out;
        struct rec *r;
        size_t n, extra = 0;
        uint32_t *seen = calloc(N, sizeof(*seen));
        uint32_t *tag_of_id = calloc(2 * N + 2, sizeof(*tag_of_id));
        uint64_t *id_of_tag = calloc(N, sizeof(*id_of_tag));
        int64_t ts = T0;

        assert_true(seen && tag_of_id && id_of_tag);
        nr_buf_init(&out, OUT_MAX);
        for (size_t i = 0; i < N; i++) {
            struct pk p = {
                .tag = (uint32_t)i, .proto = i % 2 ? 6 : 17, .ipid = (uint16_t)i, .plen = 4};
            feed1(sg, &p, IF_POD_A, SLL2_IN, 0, ts++, &out);
            if (copies)
                feed1(sg, &p, IF_N1, SLL2_OUT, 1, ts++, &out);
        }
        assert_int_equal(hub_sightings_release(sg, &out, true, SIZE_MAX), 0);
        hub_sightings_stats(sg, &st);
        r = decode(&out, &n);
        assert_int_equal(n, st.written);
        assert_time_order(r, n);
        for (size_t i = 0; i < n; i++) {
            assert_true(r[i].tag < N);
            seen[r[i].tag]++;
            if (i > 0 && r[i].tag < r[i - 1].tag)
                fail_msg("packet %u after packet %u", r[i].tag, r[i - 1].tag);
            if (!all)
                continue;
            assert_true(r[i].has_id && r[i].id > 0 && r[i].id <= 2 * N + 1);
            if (tag_of_id[r[i].id] == 0)
                tag_of_id[r[i].id] = r[i].tag + 1;
            assert_int_equal(tag_of_id[r[i].id], r[i].tag + 1); /* never two packets' id */
            if (id_of_tag[r[i].tag] && id_of_tag[r[i].tag] != r[i].id)
                extra++; /* the table started over between two sightings */
            id_of_tag[r[i].tag] = r[i].id;
        }
        for (size_t k = 0; k < N; k++) {
            if (seen[k] == 0)
                fail_msg("packet %zu lost (mode %d)", k, mode);
            if (!all)
                extra += seen[k] - 1;
            else
                assert_int_equal(seen[k], 2);
        }
        assert_int_equal(st.packets, N * (copies ? 2 : 1));
        if (mode == 0)
            assert_int_equal(n, N);
        assert_true(extra <= st.table_resets);
        print_message("table: mode %d, %zu packets, %llu table resets, %zu copies kept twice\n",
                      mode, N, (unsigned long long)st.table_resets, extra);
        free(seen);
        free(tag_of_id);
        free(id_of_tag);
        free(r);
        nr_buf_free(&out);
        hub_sightings_free(sg);
    }
}

/* A busy cluster: more packets in one window than the largest table holds a quarter of, each
 * seen four times within 20 us. The table keeps its youngest groups when it is rebuilt, so a
 * packet whose sightings straddle a rebuild is still known: every packet once, none reset. */
static void one_busy_window_keeps_its_young_groups(void **state)
{
    const size_t N = HUB_SIGHTING_TABLE_MAX + 8192; /* 5 us apart: 20 000 in a window */
    struct hub_sightings *sg = new_sg(HUB_SIGHTINGS_ONE, false);
    struct hub_sighting_stats st;
    struct evs e = {0};
    struct nr_buf out;
    struct rec *r;
    uint8_t *seen = calloc(N, 1);
    size_t n;

    (void)state;
    assert_non_null(seen);
    nr_buf_init(&out, OUT_MAX);
    for (size_t i = 0; i < N; i++) {
        struct pk p = {.tag = (uint32_t)i, .proto = 17, .ipid = (uint16_t)i, .plen = 8};
        a_to_b(&e, &p, T0 + (int64_t)i * 5 * US, 0);
    }
    feed(sg, &e, &out);
    hub_sightings_stats(sg, &st);
    r = decode(&out, &n);
    for (size_t i = 0; i < n; i++) {
        assert_true(r[i].tag < N);
        if (seen[r[i].tag]++)
            fail_msg("packet %u written twice", r[i].tag);
    }
    assert_int_equal(n, N);
    assert_true(st.table_shrinks > 0);
    assert_int_equal(st.table_resets, 0);
    assert_int_equal(st.copies, 3 * N);
    free(seen);
    free(r);
    free(e.v);
    nr_buf_free(&out);
    hub_sightings_free(sg);
}

/* xorshift64*: the same inputs on every run and every machine. */
static uint64_t rng_state;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(2685821657736338717);
}

/* Packets of every size from a few bytes to a GRO packet of 64 KiB, both ways and from outside,
 * close together, each node 2 sighting off by up to 2 ms: many times the hold's bytes, so the
 * queue wraps and decides early again and again. Each packet is in the file once, byte for byte
 * one of its sightings, in time order. */
static void one_random_sizes_come_out_intact(void **state)
{
    enum { N = 3000 };

    for (uint64_t seed = 1; seed <= 3; seed++) {
        struct hub_sightings *sg = new_sg(HUB_SIGHTINGS_ONE, false);
        struct hub_sighting_stats st;
        struct evs e = {0};
        struct nr_buf out;
        struct rec *r;
        size_t n, (*idx)[4] = calloc(N, sizeof(*idx)), *cnt = calloc(N, sizeof(*cnt));
        int64_t t = T0;

        assert_true(idx && cnt);
        rng_state = seed * UINT64_C(0x9E3779B97F4A7C15);
        nr_buf_init(&out, OUT_MAX);
        for (uint32_t i = 0; i < N; i++) {
            size_t plen = rng() % 8 == 0 ? 30000 + rng() % (PLEN_MAX - 30000) : 4 + rng() % 1400;
            struct pk p = {
                .tag = i, .proto = rng() % 2 ? 6 : 17, .ipid = (uint16_t)i, .plen = plen};
            int64_t skew = (int64_t)(rng() % (4 * MS)) - 2 * MS;
            t += (int64_t)(rng() % (20 * US));
            switch (rng() % 3) {
            case 0: a_to_b(&e, &p, t, skew); break;
            case 1: b_to_a(&e, &p, t, skew); break;
            default: ext_to_b(&e, &p, t, skew); break;
            }
        }
        feed(sg, &e, &out);
        for (size_t i = 0; i < e.n; i++) {
            uint32_t k = e.v[i].p.tag;
            assert_true(cnt[k] < 4);
            idx[k][cnt[k]++] = i;
        }
        r = decode(&out, &n);
        hub_sightings_stats(sg, &st);
        assert_int_equal(n, N);
        assert_time_order(r, n);
        for (size_t i = 0; i < n; i++) {
            uint32_t k = r[i].tag;
            const struct ev *v = NULL;
            assert_true(k < N);
            assert_true(cnt[k] > 0);
            for (size_t j = 0; j < cnt[k]; j++)
                if (e.v[idx[k][j]].ifid == r[i].ifid && e.v[idx[k][j]].ts == r[i].ts)
                    v = &e.v[idx[k][j]];
            if (!v)
                fail_msg("packet %u on interface %u at %lld was never put", k, r[i].ifid,
                         (long long)r[i].ts);
            assert_is(&r[i], &v->p, v->ifid, v->type, v->hop, v->ts);
            assert_int_equal(r[i].flags, v->type == SLL2_OUT ? 2 : 1);
            cnt[k] = 0; /* once */
        }
        assert_int_equal(st.packets, e.n);
        assert_int_equal(st.written, N);
        assert_int_equal(st.copies, e.n - N);
        assert_true(st.early > 0);
        print_message("random sizes, seed %llu: %zu sightings, %zu bytes out, %llu decided early\n",
                      (unsigned long long)seed, e.n, out.len, (unsigned long long)st.early);
        free(idx);
        free(cnt);
        free(r);
        free(e.v);
        nr_buf_free(&out);
        hub_sightings_free(sg);
    }
}

/* A pcap file: 16-byte record headers, the packet, nothing else. */
static void pcap_records_have_no_options(void **state)
{
    for (int all = 0; all <= 1; all++) {
        struct hub_sightings *sg = new_sg(all ? HUB_SIGHTINGS_ALL : HUB_SIGHTINGS_ONE, true);
        struct pk p = {.tag = 5, .proto = 6, .plen = 13}; /* caplen not a multiple of 4 */
        struct pk arp = {.tag = 6};
        struct evs e = {0};
        struct nr_buf out;
        size_t off = 0, k = 0, want = 0;

        nr_buf_init(&out, OUT_MAX);
        a_to_b(&e, &p, T0 + 123, SKEW);
        add(&e, T0 + 1 * MS, &arp, IF_N1, SLL2_OUT, 0);
        feed(sg, &e, &out);
        for (size_t i = 0; i < e.n; i++) {
            struct pkt b;
            const struct ev *v = &e.v[i];
            if (!all && v->p.tag == 5 && v->ifid != IF_POD_A)
                continue; /* the copies left out */
            build(&b, &v->p, v->ifid, v->type, v->hop);
            assert_true(off + PCAP_RECORD_HEADER_LEN + b.n <= out.len);
            assert_int_equal(pcapng_le32(out.data + off), (uint32_t)(v->ts / 1000000000));
            assert_int_equal(pcapng_le32(out.data + off + 4), (uint32_t)(v->ts % 1000000000));
            assert_int_equal(pcapng_le32(out.data + off + 8), b.n);
            assert_int_equal(pcapng_le32(out.data + off + 12), b.n);
            assert_memory_equal(out.data + off + PCAP_RECORD_HEADER_LEN, b.b, b.n);
            off += PCAP_RECORD_HEADER_LEN + b.n;
            k++;
        }
        want = all ? e.n : 2;
        assert_int_equal(k, want);
        assert_int_equal(off, out.len);
        assert_stats(sg, e.n, want, all ? 0 : e.n - 2);
        free(e.v);
        nr_buf_free(&out);
        hub_sightings_free(sg);
    }
}

/* hub_sightings_release stops once out holds until_len bytes, says so (1), and goes on where it
 * stopped; without `all` it leaves what is not due, and says 0. */
static void release_stops_and_resumes(void **state)
{
    struct hub_sightings *sg = new_sg(HUB_SIGHTINGS_ONE, false);
    struct nr_buf out;
    struct rec *r;
    size_t n, due = 0;
    /* 1 ms apart: release begins once the oldest is HUB_SIGHTING_RELEASE_SLACK_NS past its window
     */
    int64_t step = MS, last = T0 + W + 5 * step;

    nr_buf_init(&out, OUT_MAX);
    for (uint32_t i = 0; i < 10; i++) {
        struct pk p = {.tag = i, .proto = 17, .ipid = (uint16_t)i, .plen = 8};
        struct pkt k;
        struct pcapng_epb epb = {0};
        build(&k, &p, IF_N1, SLL2_OUT, 0);
        epb.data = k.b;
        epb.caplen = epb.origlen = (uint32_t)k.n;
        assert_int_equal(hub_sightings_put(sg, &epb, IF_N1, T0 + i * step, &out), 0);
        due += T0 + i * step <= last - W;
    }
    /* nothing due yet */
    assert_int_equal(hub_sightings_release(sg, &out, false, SIZE_MAX), 0);
    assert_int_equal(out.len, 0);
    {
        struct pk p = {.tag = 10, .proto = 17, .ipid = 10, .plen = 8};
        struct pkt k;
        struct pcapng_epb epb = {0};
        build(&k, &p, IF_N1, SLL2_OUT, 0);
        epb.data = k.b;
        epb.caplen = epb.origlen = (uint32_t)k.n;
        assert_int_equal(hub_sightings_put(sg, &epb, IF_N1, last, &out), 0);
    }
    assert_int_equal(due, 6);
    /* one at a time */
    assert_int_equal(hub_sightings_release(sg, &out, false, 1), 1);
    free(decode(&out, &n));
    assert_int_equal(n, 1);
    assert_int_equal(hub_sightings_release(sg, &out, false, 1), 1); /* out is full already */
    free(decode(&out, &n));
    assert_int_equal(n, 1);
    assert_int_equal(hub_sightings_release(sg, &out, false, out.len + 1), 1);
    free(decode(&out, &n));
    assert_int_equal(n, 2);
    /* the rest of what is due, then 0 with the others still held */
    assert_int_equal(hub_sightings_release(sg, &out, false, SIZE_MAX), 0);
    free(decode(&out, &n));
    assert_int_equal(n, due);
    assert_int_equal(hub_sightings_release(sg, &out, false, SIZE_MAX), 0);
    free(decode(&out, &n));
    assert_int_equal(n, due);
    /* the end of the merge: all, still in steps */
    assert_int_equal(hub_sightings_release(sg, &out, true, out.len + 1), 1);
    free(decode(&out, &n));
    assert_int_equal(n, due + 1);
    assert_int_equal(hub_sightings_release(sg, &out, true, SIZE_MAX), 0);
    r = decode(&out, &n);
    assert_int_equal(n, 11);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(r[i].tag, i);
    assert_time_order(r, n);
    assert_int_equal(hub_sightings_release(sg, &out, true, SIZE_MAX), 0);
    assert_stats(sg, 11, 11, 0);
    free(r);
    nr_buf_free(&out);
    hub_sightings_free(sg);
}

/* An output that cannot take a packet: -EOVERFLOW, and the packet is still there for the next
 * try, not lost. */
static void full_output_loses_nothing(void **state)
{
    struct hub_sightings *sg = new_sg(HUB_SIGHTINGS_ONE, false);
    struct nr_buf small, out;
    struct rec *r;
    size_t n;

    nr_buf_init(&small, 16);
    nr_buf_init(&out, OUT_MAX);
    for (uint32_t i = 0; i < 3; i++) {
        struct pk p = {.tag = i, .proto = 6, .plen = 8};
        feed1(sg, &p, IF_POD_A, SLL2_IN, 0, T0 + i, &out);
    }
    assert_int_equal(hub_sightings_release(sg, &small, true, SIZE_MAX), -EOVERFLOW);
    assert_int_equal(small.len, 0);
    assert_int_equal(hub_sightings_release(sg, &out, true, SIZE_MAX), 0);
    r = decode(&out, &n);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(r[i].tag, i);
    free(r);
    hub_sightings_free(sg);
    /* mode all writes at once: the error is put's */
    sg = new_sg(HUB_SIGHTINGS_ALL, false);
    {
        struct pk p = {.tag = 1, .proto = 6, .plen = 8};
        struct pkt k;
        struct pcapng_epb epb = {0};
        build(&k, &p, IF_POD_A, SLL2_IN, 0);
        epb.data = k.b;
        epb.caplen = epb.origlen = (uint32_t)k.n;
        assert_int_equal(hub_sightings_put(sg, &epb, IF_POD_A, T0, &small), -EOVERFLOW);
    }
    nr_buf_free(&small);
    nr_buf_free(&out);
    hub_sightings_free(sg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_keeps_the_senders_copy),
        cmocka_unit_test(seen_knows_a_late_copy),
        cmocka_unit_test(one_each_packet_once_both_ways),
        cmocka_unit_test(one_keeps_retransmissions_resends_and_arp),
        cmocka_unit_test(one_resent_before_its_copies_arrive),
        cmocka_unit_test(one_fast_retransmission_under_skew),
        cmocka_unit_test(one_window_ends_a_packet),
        cmocka_unit_test(all_writes_every_copy_with_one_id),
        cmocka_unit_test(one_hold_is_bounded),
        cmocka_unit_test(table_is_bounded),
        cmocka_unit_test(one_busy_window_keeps_its_young_groups),
        cmocka_unit_test(one_random_sizes_come_out_intact),
        cmocka_unit_test(pcap_records_have_no_options),
        cmocka_unit_test(release_stops_and_resumes),
        cmocka_unit_test(full_output_loses_nothing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
