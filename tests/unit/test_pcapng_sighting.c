/* Tests for lib/pcapng/sighting.c: one packet seen in several places has one key — whatever
 * NAT, TTL, checksums, the link-layer header and tunnels did to it — and two packets have two. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pcapng/sighting.h"

#define LT_EN10MB 1
#define LT_RAW    101
#define LT_SLL2   276

struct pkt {
    uint8_t b[2048];
    size_t n;
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

/* An IPv4 header of protocol proto around l4 (n bytes) at p; returns its length. */
static size_t ipv4(uint8_t *p, const uint8_t src[4], const uint8_t dst[4], uint8_t ttl, uint16_t id,
                   uint8_t proto, const uint8_t *l4, size_t n)
{
    memset(p, 0, 20);
    p[0] = 0x45;
    put16(p + 2, (uint16_t)(20 + n));
    put16(p + 4, id);
    p[6] = 0x40; /* DF */
    p[8] = ttl;
    p[9] = proto;
    put16(p + 10, (uint16_t)(0x1234 + ttl)); /* a checksum that changes with the TTL */
    memcpy(p + 12, src, 4);
    memcpy(p + 16, dst, 4);
    memcpy(p + 20, l4, n);
    return 20 + n;
}

static size_t udp(uint8_t *p, uint16_t sport, uint16_t dport, const char *payload)
{
    size_t n = strlen(payload);

    put16(p, sport);
    put16(p + 2, dport);
    put16(p + 4, (uint16_t)(8 + n));
    put16(p + 6, (uint16_t)(sport ^ dport)); /* a checksum that follows the ports */
    memcpy(p + 8, payload, n);
    return 8 + n;
}

static size_t tcp(uint8_t *p, uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags,
                  const char *payload)
{
    size_t n = strlen(payload);

    memset(p, 0, 24);
    put16(p, sport);
    put16(p + 2, dport);
    put32(p + 4, seq);
    put32(p + 8, 77);
    p[12] = 6 << 4; /* 24 bytes: one option word */
    p[13] = flags;
    put16(p + 14, 65535);
    put16(p + 16, (uint16_t)(sport + dport));
    p[20] = 2; /* MSS */
    p[21] = 4;
    put16(p + 22, flags & 0x02 ? 1460 : 0);
    memcpy(p + 24, payload, n);
    return 24 + n;
}

/* Wraps an IP packet in a link-layer header. */
static void ether(struct pkt *k, const uint8_t *ip, size_t n, uint8_t mac_last)
{
    memset(k->b, 0, 14);
    k->b[5] = mac_last;
    k->b[11] = (uint8_t)(mac_last + 1);
    put16(k->b + 12, ip[0] >> 4 == 6 ? 0x86dd : 0x0800);
    memcpy(k->b + 14, ip, n);
    k->n = 14 + n;
}

static void sll2(struct pkt *k, const uint8_t *ip, size_t n, uint32_t ifindex, uint8_t type)
{
    memset(k->b, 0, 20);
    put16(k->b, ip[0] >> 4 == 6 ? 0x86dd : 0x0800);
    put32(k->b + 4, ifindex);
    k->b[10] = type;
    memcpy(k->b + 20, ip, n);
    k->n = 20 + n;
}

static uint64_t key_of(uint16_t lt, const struct pkt *k)
{
    uint64_t key = 0;

    assert_true(pcapng_sighting_key(lt, k->b, k->n, &key));
    assert_int_not_equal(key, 0);
    return key;
}

static const uint8_t POD_A[4] = {10, 1, 0, 5}, POD_B[4] = {10, 2, 0, 7}, SVC[4] = {10, 96, 0, 10},
                     NODE[4] = {192, 168, 0, 1}, EXT[4] = {203, 0, 113, 9};

static void the_same_packet_through_a_cluster(void **state)
{
    uint8_t l4[256], ip[512];
    size_t n;
    struct pkt a, b, c, d;

    /* pod A -> Service address :80, seen on A's veth (SLL2, in) */
    n = ipv4(ip, POD_A, SVC, 64, 4242, 17, l4, udp(l4, 40000, 80, "GET /"));
    sll2(&a, ip, n, 7, 0);
    /* after kube-proxy's DNAT to pod B:8080, one hop less, on the uplink (SLL2, out) */
    n = ipv4(ip, POD_A, POD_B, 63, 4242, 17, l4, udp(l4, 40000, 8080, "GET /"));
    sll2(&b, ip, n, 2, 4);
    /* on the other node's uplink, as Ethernet from a tcpdump of it */
    ether(&c, ip, n, 9);
    /* with masquerade on egress: the source rewritten too */
    n = ipv4(ip, NODE, POD_B, 62, 4242, 17, l4, udp(l4, 31000, 8080, "GET /"));
    sll2(&d, ip, n, 3, 0);
    assert_true(key_of(LT_SLL2, &a) == key_of(LT_SLL2, &b));
    assert_true(key_of(LT_SLL2, &a) == key_of(LT_EN10MB, &c));
    assert_true(key_of(LT_SLL2, &a) == key_of(LT_SLL2, &d));
    /* RAW: the bare IP packet */
    memcpy(a.b, ip, n);
    a.n = n;
    assert_true(key_of(LT_RAW, &a) == key_of(LT_SLL2, &d));
}

static void different_packets_differ(void **state)
{
    uint8_t l4[256], ip[512];
    size_t n;
    struct pkt a, b;

    n = ipv4(ip, POD_A, POD_B, 64, 1, 17, l4, udp(l4, 1, 2, "hello"));
    sll2(&a, ip, n, 7, 0);
    n = ipv4(ip, POD_A, POD_B, 64, 2, 17, l4, udp(l4, 1, 2, "hello")); /* another id */
    sll2(&b, ip, n, 7, 0);
    assert_true(key_of(LT_SLL2, &a) != key_of(LT_SLL2, &b));
    n = ipv4(ip, POD_A, POD_B, 64, 1, 17, l4, udp(l4, 1, 2, "hellp")); /* another byte */
    sll2(&b, ip, n, 7, 0);
    assert_true(key_of(LT_SLL2, &a) != key_of(LT_SLL2, &b));
    /* TCP: another sequence number; the MSS of a SYN is left out (clamping), not others' */
    n = ipv4(ip, POD_A, POD_B, 64, 0, 6, l4, tcp(l4, 1, 2, 1000, 0x18, "x"));
    sll2(&a, ip, n, 7, 0);
    n = ipv4(ip, POD_A, POD_B, 64, 0, 6, l4, tcp(l4, 1, 2, 1001, 0x18, "x"));
    sll2(&b, ip, n, 7, 0);
    assert_true(key_of(LT_SLL2, &a) != key_of(LT_SLL2, &b));
    n = ipv4(ip, POD_A, POD_B, 64, 0, 6, l4, tcp(l4, 1, 2, 1000, 0x02, ""));
    sll2(&a, ip, n, 7, 0);
    l4[22] = 0x05; /* a clamped MSS */
    l4[23] = 0x00;
    n = ipv4(ip, POD_A, POD_B, 63, 0, 6, l4, 24);
    sll2(&b, ip, n, 8, 4);
    assert_true(key_of(LT_SLL2, &a) == key_of(LT_SLL2, &b));
}

static void tunnels_are_looked_through(void **state)
{
    uint8_t l4[512], inner[512], frame[600], outer[700], vx[700];
    size_t n, in_n;
    struct pkt a, b, c;

    in_n = ipv4(inner, POD_A, POD_B, 63, 99, 17, l4, udp(l4, 5353, 53, "query"));
    sll2(&a, inner, in_n, 11, 4); /* on flannel.1 */
    /* VXLAN on UDP 8472 on the uplink: outer IP/UDP, VXLAN header, inner Ethernet */
    memset(frame, 0, 14);
    put16(frame + 12, 0x0800);
    memcpy(frame + 14, inner, in_n);
    memset(vx, 0, 16);
    put16(vx + 2, 8472);
    put16(vx + 4, (uint16_t)(16 + 14 + in_n));
    vx[8] = 0x08; /* I flag */
    memcpy(vx + 16, frame, 14 + in_n);
    n = ipv4(outer, NODE, EXT, 64, 5, 17, vx, 16 + 14 + in_n);
    sll2(&b, outer, n, 2, 4);
    assert_true(key_of(LT_SLL2, &a) == key_of(LT_SLL2, &b));
    /* IP in IP (Calico): the inner packet is the key */
    n = ipv4(outer, NODE, EXT, 64, 6, 4, inner, in_n);
    sll2(&c, outer, n, 2, 4);
    assert_true(key_of(LT_SLL2, &a) == key_of(LT_SLL2, &c));
    /* Geneve (6081) with 4 bytes of options and an Ethernet payload */
    memset(vx, 0, 20);
    put16(vx + 2, 6081);
    vx[8] = 1; /* opt len: one word */
    put16(vx + 10, 0x6558);
    memcpy(vx + 20, frame, 14 + in_n);
    n = ipv4(outer, NODE, EXT, 64, 7, 17, vx, 20 + 14 + in_n);
    sll2(&c, outer, n, 2, 4);
    assert_true(key_of(LT_SLL2, &a) == key_of(LT_SLL2, &c));
}

static void ipv6_and_fragments(void **state)
{
    uint8_t p[512], q[512];
    struct pkt a, b;
    size_t n = 40 + 8 + 8 + 4;

    memset(p, 0, sizeof(p));
    p[0] = 0x60;
    p[1] = 0x0a; /* traffic class and flow label: left out */
    put16(p + 4, (uint16_t)(n - 40));
    p[6] = 44; /* a fragment header */
    p[7] = 64;
    p[8] = 0xfd;
    p[40] = 17;
    put16(p + 42, 0x0001); /* offset 0, more fragments */
    put32(p + 44, 0xabcdef01);
    put16(p + 48, 1000);
    put16(p + 50, 53);
    put16(p + 52, 12);
    memcpy(p + 56, "abcd", 4);
    memcpy(q, p, n);
    q[1] = 0x00;
    q[7] = 63;
    q[8] = 0xfe;         /* another source address */
    put16(q + 48, 2000); /* another port */
    sll2(&a, p, n, 3, 0);
    sll2(&b, q, n, 4, 4);
    assert_true(key_of(LT_SLL2, &a) == key_of(LT_SLL2, &b));
    put32(q + 44, 0xabcdef02); /* another fragment identification */
    sll2(&b, q, n, 4, 4);
    assert_true(key_of(LT_SLL2, &a) != key_of(LT_SLL2, &b));

    /* an IPv4 later fragment: no transport header, keyed by id, offset and bytes */
    {
        uint8_t ip[64], data[16] = "fragment-bytes!";
        size_t m = ipv4(ip, POD_A, POD_B, 64, 7, 17, data, sizeof(data));
        put16(ip + 6, 0x0020 | 0x2000 >> 8 << 8); /* offset 32 words */
        sll2(&a, ip, m, 3, 0);
        ip[8] = 60;
        memcpy(ip + 12, NODE, 4);
        sll2(&b, ip, m, 4, 4);
        assert_true(key_of(LT_SLL2, &a) == key_of(LT_SLL2, &b));
        put16(ip + 6, 0x0021);
        sll2(&b, ip, m, 4, 4);
        assert_true(key_of(LT_SLL2, &a) != key_of(LT_SLL2, &b));
    }
}

static void icmp_errors_key_the_packet_they_quote(void **state)
{
    uint8_t l4[256], ip[256], icmp[512], err[600];
    size_t n, q;
    struct pkt a, b;

    /* port unreachable quoting a datagram to the Service address, seen before un-DNAT ... */
    q = ipv4(ip, POD_A, POD_B, 63, 4242, 17, l4, udp(l4, 40000, 8080, "GET /"));
    memset(icmp, 0, 8);
    icmp[0] = 3;
    icmp[1] = 3;
    memcpy(icmp + 8, ip, 28);
    n = ipv4(err, POD_B, POD_A, 64, 1, 1, icmp, 8 + 28);
    sll2(&a, err, n, 3, 0);
    /* ... and after it (the quoted header rewritten back, the outer source too) */
    q = ipv4(ip, POD_A, SVC, 64, 4242, 17, l4, udp(l4, 40000, 80, "GET /"));
    memcpy(icmp + 8, ip, 28);
    icmp[2] = 0x55; /* checksum */
    n = ipv4(err, SVC, POD_A, 62, 1, 1, icmp, 8 + 28);
    sll2(&b, err, n, 7, 4);
    assert_true(key_of(LT_SLL2, &a) == key_of(LT_SLL2, &b));
    /* the same error about another datagram differs */
    put16(ip + 4, 4243);
    memcpy(icmp + 8, ip, 28);
    n = ipv4(err, SVC, POD_A, 62, 1, 1, icmp, 8 + 28);
    sll2(&b, err, n, 7, 4);
    assert_true(key_of(LT_SLL2, &a) != key_of(LT_SLL2, &b));
    /* echo: the identifier NAT rewrites is left out, the sequence is not */
    memset(icmp, 0, 16);
    icmp[0] = 8;
    put16(icmp + 4, 0x1111);
    put16(icmp + 6, 1);
    n = ipv4(err, POD_A, EXT, 64, 9, 1, icmp, 16);
    sll2(&a, err, n, 3, 0);
    put16(icmp + 4, 0x2222);
    n = ipv4(err, NODE, EXT, 63, 9, 1, icmp, 16);
    sll2(&b, err, n, 2, 4);
    assert_true(key_of(LT_SLL2, &a) == key_of(LT_SLL2, &b));
    put16(icmp + 6, 2);
    n = ipv4(err, NODE, EXT, 63, 9, 1, icmp, 16);
    sll2(&b, err, n, 2, 4);
    assert_true(key_of(LT_SLL2, &a) != key_of(LT_SLL2, &b));
    (void)q;
}

static void what_has_no_key_and_directions(void **state)
{
    uint8_t arp[42] = {0};
    uint64_t key;
    struct pkt a;
    uint8_t l4[64], ip[128];
    size_t n;

    put16(arp + 12, 0x0806);
    assert_false(pcapng_sighting_key(LT_EN10MB, arp, sizeof(arp), &key));
    assert_false(pcapng_sighting_key(LT_EN10MB, arp, 10, &key));
    assert_false(pcapng_sighting_key(9999, arp, sizeof(arp), &key));
    n = ipv4(ip, POD_A, POD_B, 64, 1, 17, l4, udp(l4, 1, 2, "hi"));
    sll2(&a, ip, n, 3, 4);
    assert_int_equal(pcapng_sighting_direction(LT_SLL2, a.b, a.n), PCAPNG_DIR_OUT);
    a.b[10] = 0;
    assert_int_equal(pcapng_sighting_direction(LT_SLL2, a.b, a.n), PCAPNG_DIR_IN);
    assert_int_equal(pcapng_sighting_direction(LT_SLL2, a.b, 5), PCAPNG_DIR_UNKNOWN);
    assert_int_equal(pcapng_sighting_direction(LT_EN10MB, a.b, a.n), PCAPNG_DIR_UNKNOWN);
    /* an IP header cut short, a length field that lies: no key, no read past the bytes */
    sll2(&a, ip, 12, 3, 0);
    assert_false(pcapng_sighting_key(LT_SLL2, a.b, a.n, &key));
    ip[0] = 0x4f; /* IHL of 60 bytes in a 30-byte packet */
    sll2(&a, ip, n, 3, 0);
    assert_false(pcapng_sighting_key(LT_SLL2, a.b, a.n, &key));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_same_packet_through_a_cluster),
        cmocka_unit_test(different_packets_differ),
        cmocka_unit_test(tunnels_are_looked_through),
        cmocka_unit_test(ipv6_and_fragments),
        cmocka_unit_test(icmp_errors_key_the_packet_they_quote),
        cmocka_unit_test(what_has_no_key_and_directions),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
