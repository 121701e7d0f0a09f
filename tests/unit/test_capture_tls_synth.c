/* Tests for services/capture/tls/synth.c: plaintext records become a TCP conversation Wireshark
 * can follow (handshake once, seq/ack per direction, both traced ends agreeing), and no record
 * the kernel could hand over makes it write past its buffer or keep unbounded state. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "capture/tls/synth.h"
#include "pcapng/pcapng.h"
#include "util/error.h"

struct pkt {
    const uint8_t *frame;
    uint32_t caplen;
    uint8_t src[16], dst[16];
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t flags;
    const uint8_t *payload;
    uint32_t len;
    int has_comment;
};

static struct capture_tls_rec rec;

static size_t make(uint32_t pid, uint64_t ssl, uint32_t dir, const char *text)
{
    memset(&rec.h, 0, sizeof(rec.h));
    rec.h.pid = pid;
    rec.h.ssl = ssl;
    rec.h.dir = dir;
    rec.h.len = (uint32_t)strlen(text);
    memcpy(rec.h.comm, "python3", 8);
    memcpy(rec.data, text, rec.h.len);
    return sizeof(rec.h) + rec.h.len;
}

static void tuple4(const char *local, uint16_t lport, const char *remote, uint16_t rport)
{
    unsigned a, b, c, d;

    rec.h.tuple.family = 2;
    rec.h.tuple.sport = lport;
    rec.h.tuple.dport = rport;
    sscanf(local, "%u.%u.%u.%u", &a, &b, &c, &d);
    rec.h.tuple.saddr[0] = (uint8_t)a, rec.h.tuple.saddr[1] = (uint8_t)b;
    rec.h.tuple.saddr[2] = (uint8_t)c, rec.h.tuple.saddr[3] = (uint8_t)d;
    sscanf(remote, "%u.%u.%u.%u", &a, &b, &c, &d);
    rec.h.tuple.daddr[0] = (uint8_t)a, rec.h.tuple.daddr[1] = (uint8_t)b;
    rec.h.tuple.daddr[2] = (uint8_t)c, rec.h.tuple.daddr[3] = (uint8_t)d;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* The TCP checksum over the IPv6 pseudo-header must come out as 0xffff. */
static void check_checksum(const uint8_t *ip, uint32_t tcp_len)
{
    uint32_t acc = 0;
    const uint8_t *tcp = ip + 40;

    for (int i = 0; i < 32; i += 2)
        acc += (uint32_t)ip[8 + i] << 8 | ip[9 + i];
    acc += tcp_len + 6;
    for (uint32_t i = 0; i + 1 < tcp_len; i += 2)
        acc += (uint32_t)tcp[i] << 8 | tcp[i + 1];
    if (tcp_len & 1)
        acc += (uint32_t)tcp[tcp_len - 1] << 8;
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    assert_int_equal(acc, 0xffff);
}

/* Decodes the EPBs of buf from *off on. */
static int next_pkt(const struct nr_buf *b, size_t *off, struct pkt *p)
{
    const uint8_t *blk, *ip, *tcp;
    uint32_t total;

    if (*off >= b->len)
        return 0;
    blk = b->data + *off;
    assert_int_equal(pcapng_le32(blk), PCAPNG_BT_EPB);
    total = pcapng_le32(blk + 4);
    assert_true(total >= 32 && *off + total <= b->len);
    memset(p, 0, sizeof(*p));
    p->caplen = pcapng_le32(blk + 20);
    assert_int_equal(p->caplen, pcapng_le32(blk + 24));
    p->frame = blk + 28;
    p->has_comment = total > 32 + PCAPNG_PAD4(p->caplen);
    assert_int_equal(be16(p->frame + 12), 0x86dd);
    ip = p->frame + 14;
    tcp = ip + 40;
    assert_int_equal(ip[0] >> 4, 6);
    assert_int_equal(ip[6], 6);
    assert_int_equal(be16(ip + 4) + 54u, p->caplen);
    check_checksum(ip, be16(ip + 4));
    memcpy(p->src, ip + 8, 16);
    memcpy(p->dst, ip + 24, 16);
    p->sport = be16(tcp);
    p->dport = be16(tcp + 2);
    p->seq = be32(tcp + 4);
    p->ack = be32(tcp + 8);
    p->flags = tcp[13];
    p->payload = tcp + 20;
    p->len = p->caplen - 74;
    *off += total;
    return 1;
}

static const uint8_t mapped_a[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1};
static const uint8_t mapped_b[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2};

static void handshake_then_data_in_both_directions(void **state)
{
    struct capture_tls_synth *s = capture_tls_synth_new(16);
    struct nr_buf out;
    struct pkt p[8];
    size_t off = 0, n;
    uint32_t cisn, sisn;

    (void)state;
    nr_buf_init(&out, 1 << 20);
    /* The client (10.0.0.2:40000) writes first, then reads the answer, then writes again. */
    n = make(7, 0x1000, CAPTURE_TLS_WRITE, "GET / HTTP/1.1\r\n\r\n");
    tuple4("10.0.0.2", 40000, "10.0.0.1", 443);
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 1000, 3, &out), 4);
    n = make(7, 0x1000, CAPTURE_TLS_READ, "HTTP/1.1 200 OK\r\n\r\n");
    tuple4("10.0.0.2", 40000, "10.0.0.1", 443);
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 2000, 3, &out), 1);
    n = make(7, 0x1000, CAPTURE_TLS_WRITE, "bye");
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 3000, 3, &out), 1);
    for (int i = 0; i < 6; i++)
        assert_true(next_pkt(&out, &off, &p[i]));
    assert_false(next_pkt(&out, &off, &p[6]));

    /* SYN from the client with the comment, SYN-ACK, ACK */
    assert_int_equal(p[0].flags, 0x02);
    assert_true(p[0].has_comment);
    assert_memory_equal(p[0].src, mapped_b, 16);
    assert_memory_equal(p[0].dst, mapped_a, 16);
    assert_int_equal(p[0].sport, 40000);
    assert_int_equal(p[0].dport, 443);
    cisn = p[0].seq;
    assert_int_equal(p[1].flags, 0x12);
    assert_false(p[1].has_comment);
    assert_int_equal(p[1].sport, 443);
    assert_int_equal(p[1].ack, cisn + 1);
    sisn = p[1].seq;
    assert_int_equal(p[2].flags, 0x10);
    assert_int_equal(p[2].seq, cisn + 1);
    assert_int_equal(p[2].ack, sisn + 1);
    /* data: each direction's numbers follow what went before */
    assert_int_equal(p[3].flags, 0x18);
    assert_int_equal(p[3].seq, cisn + 1);
    assert_int_equal(p[3].ack, sisn + 1);
    assert_int_equal(p[3].len, 18);
    assert_memory_equal(p[3].payload, "GET / HTTP/1.1\r\n\r\n", 18);
    assert_int_equal(p[4].sport, 443);
    assert_memory_equal(p[4].src, mapped_a, 16);
    assert_int_equal(p[4].seq, sisn + 1);
    assert_int_equal(p[4].ack, cisn + 1 + 18);
    assert_int_equal(p[5].seq, cisn + 1 + 18);
    assert_int_equal(p[5].ack, sisn + 1 + 19);
    assert_memory_equal(p[5].payload, "bye", 3);
    assert_int_equal(capture_tls_synth_conns(s), 1);
    nr_buf_free(&out);
    capture_tls_synth_free(s);
}

/* Beside "any", the same packets with LINUX_SLL2 headers: 20 bytes (protocol IPv6, Ethernet
 * addresses, the sender's), outgoing for what the traced process wrote, to it for what it read;
 * behind them the same IPv6 and TCP. */
static void sll2_headers_beside_any(void **state)
{
    struct capture_tls_synth *s = capture_tls_synth_new(16);
    struct nr_buf out;
    size_t n, off = 0;
    uint8_t types[6];
    int k = 0;

    (void)state;
    nr_buf_init(&out, 1 << 20);
    capture_tls_synth_set_sll2(s, true);
    n = make(7, 0x1000, CAPTURE_TLS_WRITE, "GET / HTTP/1.1\r\n\r\n");
    tuple4("10.0.0.2", 40000, "10.0.0.1", 443);
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 1000, 3, &out), 4);
    n = make(7, 0x1000, CAPTURE_TLS_READ, "HTTP/1.1 200 OK\r\n\r\n");
    tuple4("10.0.0.2", 40000, "10.0.0.1", 443);
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 2000, 3, &out), 1);
    while (off < out.len) {
        const uint8_t *blk = out.data + off, *f = blk + 28, *ip = f + 20;
        uint32_t caplen = pcapng_le32(blk + 20);
        assert_int_equal(be16(f), 0x86dd);
        assert_int_equal(f[11], 6);
        assert_int_equal(ip[0] >> 4, 6);
        assert_int_equal(be16(ip + 4) + 60u, caplen);
        check_checksum(ip, be16(ip + 4));
        types[k++] = f[10];
        off += pcapng_le32(blk + 4);
    }
    assert_int_equal(k, 5);
    /* the client (traced) sends SYN, gets SYN-ACK, sends ACK and GET, gets the answer */
    assert_memory_equal(types, ((uint8_t[]){4, 0, 4, 4, 0}), 5);
    nr_buf_free(&out);
    capture_tls_synth_free(s);
}

static void both_traced_ends_write_the_same_numbers(void **state)
{
    struct capture_tls_synth *s = capture_tls_synth_new(16);
    struct nr_buf out;
    struct pkt c[4], v[4];
    size_t off = 0, n;

    (void)state;
    nr_buf_init(&out, 1 << 20);
    /* the client process (pid 7) writes; the server process (pid 9) reads it */
    n = make(7, 0x1000, CAPTURE_TLS_WRITE, "hello");
    tuple4("10.0.0.2", 40000, "10.0.0.1", 443);
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 1000, 0, &out), 4);
    n = make(9, 0x2000, CAPTURE_TLS_READ, "hello");
    tuple4("10.0.0.1", 443, "10.0.0.2", 40000);
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 1001, 0, &out), 4);
    for (int i = 0; i < 4; i++)
        assert_true(next_pkt(&out, &off, &c[i]));
    for (int i = 0; i < 4; i++)
        assert_true(next_pkt(&out, &off, &v[i]));
    for (int i = 0; i < 4; i++) {
        assert_memory_equal(c[i].src, v[i].src, 16);
        assert_int_equal(c[i].sport, v[i].sport);
        assert_int_equal(c[i].seq, v[i].seq);
        assert_int_equal(c[i].ack, v[i].ack);
        assert_int_equal(c[i].flags, v[i].flags);
    }
    nr_buf_free(&out);
    capture_tls_synth_free(s);
}

/* A server whose first read OpenSSL served from its buffer has no socket yet: a placeholder.
 * When its socket shows, the connection is made again with the real endpoints, and the server
 * is still the server: the traced process read first, so the peer spoke first. */
static void socket_found_later_keeps_who_spoke_first(void **state)
{
    struct capture_tls_synth *s = capture_tls_synth_new(4);
    struct nr_buf out;
    struct pkt p[8];
    size_t off = 0, n;

    (void)state;
    nr_buf_init(&out, 1 << 20);
    n = make(9, 0x2000, CAPTURE_TLS_READ, "GET /");
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 1, 0, &out), 4);
    n = make(9, 0x2000, CAPTURE_TLS_WRITE, "200 OK");
    tuple4("10.0.0.2", 8443, "10.0.0.1", 40000);
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 2, 0, &out), 4);
    for (int i = 0; i < 8; i++)
        assert_true(next_pkt(&out, &off, &p[i]));
    /* The second handshake is the real one: its SYN comes from the client, the peer. */
    assert_int_equal(p[4].flags, 0x02);
    assert_int_equal(p[4].sport, 40000);
    assert_int_equal(p[4].dport, 8443);
    assert_int_equal(p[7].sport, 8443); /* the reply from the server, the traced process */
    assert_memory_equal(p[7].payload, "200 OK", 6);
    nr_buf_free(&out);
    capture_tls_synth_free(s);
}

static void lost_bytes_leave_a_gap(void **state)
{
    struct capture_tls_synth *s = capture_tls_synth_new(4);
    struct nr_buf out;
    struct pkt p[6];
    size_t off = 0, n;

    (void)state;
    nr_buf_init(&out, 1 << 20);
    n = make(7, 0x1000, CAPTURE_TLS_WRITE, "abcd");
    rec.h.lost = 1000;
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 1, 0, &out), 4);
    n = make(7, 0x1000, CAPTURE_TLS_WRITE, "efgh");
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 2, 0, &out), 1);
    for (int i = 0; i < 5; i++)
        assert_true(next_pkt(&out, &off, &p[i]));
    assert_int_equal(p[4].seq, p[3].seq + 4 + 1000);
    nr_buf_free(&out);
    capture_tls_synth_free(s);
}

static void unknown_socket_gets_a_stable_placeholder(void **state)
{
    struct capture_tls_synth *s = capture_tls_synth_new(4);
    struct nr_buf out;
    struct pkt p[6];
    size_t off = 0, n;

    (void)state;
    nr_buf_init(&out, 1 << 20);
    n = make(0x01020304, 0x1122334455667788ULL, CAPTURE_TLS_WRITE, "x");
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 1, 0, &out), 4);
    n = make(0x01020304, 0x1122334455667788ULL, CAPTURE_TLS_WRITE, "y");
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 2, 0, &out), 1);
    for (int i = 0; i < 5; i++)
        assert_true(next_pkt(&out, &off, &p[i]));
    static const uint8_t local[16] = {0xfd, 0x6e, 0x65, 0x74, 1,    2,    3,    4,
                                      0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
    assert_memory_equal(p[0].src, local, 16);
    assert_memory_equal(p[4].src, local, 16);
    assert_int_equal(p[4].sport, p[0].sport);
    assert_int_equal(p[0].dport, 0);
    nr_buf_free(&out);
    capture_tls_synth_free(s);
}

static void bad_records_are_refused_whole(void **state)
{
    struct capture_tls_synth *s = capture_tls_synth_new(4);
    struct nr_buf out;
    size_t n;

    (void)state;
    nr_buf_init(&out, 1 << 20);
    n = make(7, 1, CAPTURE_TLS_WRITE, "data");
    assert_int_equal(capture_tls_synth_record(s, &rec, sizeof(rec.h) - 1, 1, 0, &out), NR_EPARSE);
    assert_int_equal(capture_tls_synth_record(s, &rec, n - 1, 1, 0, &out), NR_EPARSE);
    rec.h.len = CAPTURE_TLS_CHUNK + 1;
    assert_int_equal(capture_tls_synth_record(s, &rec, sizeof(rec), 1, 0, &out), NR_EPARSE);
    rec.h.len = 0;
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 1, 0, &out), NR_EPARSE);
    n = make(7, 1, 2, "data");
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 1, 0, &out), NR_EPARSE);
    rec.h.len = 0xffffffffu;
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 1, 0, &out), NR_EPARSE);
    assert_int_equal(out.len, 0);
    assert_int_equal(capture_tls_synth_conns(s), 0);
    /* the largest record fits in CAPTURE_TLS_SYNTH_MAX_BYTES with its handshake */
    memset(&rec, 'z', sizeof(rec));
    n = make(7, 1, CAPTURE_TLS_READ, "");
    rec.h.len = CAPTURE_TLS_CHUNK;
    memset(rec.h.comm, 0xff, sizeof(rec.h.comm)); /* not text: no NUL at all */
    assert_int_equal(capture_tls_synth_record(s, &rec, sizeof(rec), 1, 0, &out), 4);
    assert_true(out.len <= CAPTURE_TLS_SYNTH_MAX_BYTES);
    nr_buf_free(&out);
    capture_tls_synth_free(s);
}

static void a_full_buffer_changes_nothing(void **state)
{
    struct capture_tls_synth *s = capture_tls_synth_new(4);
    struct nr_buf small, out;
    size_t n = make(7, 1, CAPTURE_TLS_WRITE, "data"), off = 0;
    struct pkt p;

    (void)state;
    nr_buf_init(&small, CAPTURE_TLS_SYNTH_MAX_BYTES - 1);
    nr_buf_init(&out, 1 << 20);
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 1, 0, &small), -EOVERFLOW);
    assert_int_equal(small.len, 0);
    assert_int_equal(capture_tls_synth_conns(s), 0);
    /* the same record later still opens the connection with its handshake */
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 1, 0, &out), 4);
    assert_true(next_pkt(&out, &off, &p));
    assert_int_equal(p.flags, 0x02);
    nr_buf_free(&small);
    nr_buf_free(&out);
    capture_tls_synth_free(s);
}

static void connections_are_bounded_and_reuse_starts_anew(void **state)
{
    struct capture_tls_synth *s = capture_tls_synth_new(2);
    struct nr_buf out;
    size_t n;

    (void)state;
    nr_buf_init(&out, 1 << 22);
    for (uint64_t ssl = 1; ssl <= 3; ssl++) {
        n = make(7, ssl, CAPTURE_TLS_WRITE, "a");
        assert_int_equal(capture_tls_synth_record(s, &rec, n, 1, 0, &out), 4);
    }
    assert_int_equal(capture_tls_synth_conns(s), 2);
    assert_int_equal(capture_tls_synth_evicted(s), 1);
    /* 3 and 2 are known; 1 (least recently used) was forgotten: a new handshake */
    n = make(7, 3, CAPTURE_TLS_WRITE, "a");
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 1, 0, &out), 1);
    n = make(7, 1, CAPTURE_TLS_WRITE, "a");
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 1, 0, &out), 4);
    /* 2 was the oldest then: gone. An SSL* reused for another socket is another connection. */
    n = make(7, 3, CAPTURE_TLS_WRITE, "a");
    tuple4("10.0.0.2", 1, "10.0.0.1", 2);
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 1, 0, &out), 4);
    n = make(7, 3, CAPTURE_TLS_WRITE, "a");
    tuple4("10.0.0.2", 1, "10.0.0.1", 2);
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 1, 0, &out), 1);
    n = make(7, 3, CAPTURE_TLS_READ, "a"); /* no socket known this time: the same connection */
    assert_int_equal(capture_tls_synth_record(s, &rec, n, 1, 0, &out), 1);
    assert_int_equal(capture_tls_synth_conns(s), 2);
    nr_buf_free(&out);
    capture_tls_synth_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handshake_then_data_in_both_directions),
        cmocka_unit_test(sll2_headers_beside_any),
        cmocka_unit_test(both_traced_ends_write_the_same_numbers),
        cmocka_unit_test(lost_bytes_leave_a_gap),
        cmocka_unit_test(socket_found_later_keeps_who_spoke_first),
        cmocka_unit_test(unknown_socket_gets_a_stable_placeholder),
        cmocka_unit_test(bad_records_are_refused_whole),
        cmocka_unit_test(a_full_buffer_changes_nothing),
        cmocka_unit_test(connections_are_bounded_and_reuse_starts_anew),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
