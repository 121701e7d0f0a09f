/* Synthetic TCP for TLS plaintext (see synth.h). */
#include "capture/tls/synth.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcapng/encode.h"
#include "util/error.h"

#define AF_INET_BPF  2
#define AF_INET6_BPF 10

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_PSH 0x08
#define TCP_ACK 0x10

struct conn {
    uint64_t ssl;
    uint32_t pid;
    bool used;
    uint64_t last_use; /* the table's clock: least recently used goes first */
    /* the endpoints as written in the packets: client first */
    uint8_t caddr[16], saddr[16];
    uint16_t cport, sport;
    bool local_is_client; /* the traced process is the client */
    bool placeholder;     /* its socket was not known: made-up endpoints */
    uint32_t cseq, sseq;  /* next sequence number of each side */
    int next;             /* hash chain, -1 ends it */
};

struct capture_tls_synth {
    struct conn *conns;
    size_t max, n;
    int *buckets;
    size_t n_buckets;
    uint64_t clock;
    uint64_t evicted;
    bool sll2; /* LINUX_SLL2 headers instead of Ethernet (capture_tls_synth_set_sll2) */
};

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v;
    h *= 0x100000001b3ULL; /* FNV-1a style, 64-bit */
    h ^= h >> 29;
    return h;
}

static size_t bucket_of(const struct capture_tls_synth *s, uint32_t pid, uint64_t ssl)
{
    return (size_t)(mix(mix(0xcbf29ce484222325ULL, pid), ssl) % s->n_buckets);
}

struct capture_tls_synth *capture_tls_synth_new(size_t max_conns)
{
    struct capture_tls_synth *s = calloc(1, sizeof(*s));

    if (!s || max_conns == 0)
        goto fail;
    s->max = max_conns;
    s->n_buckets = max_conns * 2;
    s->conns = calloc(max_conns, sizeof(*s->conns));
    s->buckets = malloc(s->n_buckets * sizeof(*s->buckets));
    if (!s->conns || !s->buckets)
        goto fail;
    for (size_t i = 0; i < s->n_buckets; i++)
        s->buckets[i] = -1;
    return s;
fail:
    capture_tls_synth_free(s);
    return NULL;
}

void capture_tls_synth_free(struct capture_tls_synth *s)
{
    if (!s)
        return;
    free(s->conns);
    free(s->buckets);
    free(s);
}

size_t capture_tls_synth_conns(const struct capture_tls_synth *s)
{
    return s->n;
}

uint64_t capture_tls_synth_evicted(const struct capture_tls_synth *s)
{
    return s->evicted;
}

static struct conn *find(struct capture_tls_synth *s, uint32_t pid, uint64_t ssl)
{
    for (int i = s->buckets[bucket_of(s, pid, ssl)]; i >= 0; i = s->conns[i].next)
        if (s->conns[i].pid == pid && s->conns[i].ssl == ssl)
            return &s->conns[i];
    return NULL;
}

static void unlink_conn(struct capture_tls_synth *s, int idx)
{
    int *pp = &s->buckets[bucket_of(s, s->conns[idx].pid, s->conns[idx].ssl)];

    while (*pp >= 0 && *pp != idx)
        pp = &s->conns[*pp].next;
    if (*pp == idx)
        *pp = s->conns[idx].next;
    s->conns[idx].used = false;
    s->n--;
}

/* A free slot, forgetting the least recently used connection when the table is full. */
static int free_slot(struct capture_tls_synth *s)
{
    int oldest = -1;

    for (size_t i = 0; i < s->max; i++) {
        if (!s->conns[i].used)
            return (int)i;
        if (oldest < 0 || s->conns[i].last_use < s->conns[oldest].last_use)
            oldest = (int)i;
    }
    unlink_conn(s, oldest);
    s->evicted++;
    return oldest;
}

static void v4_mapped(uint8_t out[16], const uint8_t v4[4])
{
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, v4, 4);
}

static void set_endpoints(struct conn *c, const struct capture_tls_tuple *t, bool local_is_client)
{
    uint8_t laddr[16], raddr[16];
    uint16_t lport, rport;

    if (t->family == AF_INET_BPF) {
        v4_mapped(laddr, t->saddr);
        v4_mapped(raddr, t->daddr);
        lport = t->sport;
        rport = t->dport;
    } else if (t->family == AF_INET6_BPF) {
        memcpy(laddr, t->saddr, 16);
        memcpy(raddr, t->daddr, 16);
        lport = t->sport;
        rport = t->dport;
    } else {
        /* Unknown socket: a placeholder, stable for the connection's life and distinct per
         * connection: fd6e:6574::/32 (a ULA prefix) + pid + SSL* on the process's side,
         * fd6e:6574:ffff:ffff:: port 0 on the peer's. */
        static const uint8_t prefix[4] = {0xfd, 0x6e, 0x65, 0x74};
        memcpy(laddr, prefix, 4);
        laddr[4] = (uint8_t)(c->pid >> 24);
        laddr[5] = (uint8_t)(c->pid >> 16);
        laddr[6] = (uint8_t)(c->pid >> 8);
        laddr[7] = (uint8_t)c->pid;
        for (int i = 0; i < 8; i++)
            laddr[8 + i] = (uint8_t)(c->ssl >> (56 - 8 * i));
        memcpy(raddr, prefix, 4);
        memset(raddr + 4, 0xff, 4);
        memset(raddr + 8, 0, 8);
        lport = (uint16_t)(1024 + mix(c->ssl, c->pid) % 64000);
        rport = 0;
    }
    c->local_is_client = local_is_client;
    c->placeholder = t->family != AF_INET_BPF && t->family != AF_INET6_BPF;
    memcpy(c->caddr, local_is_client ? laddr : raddr, 16);
    memcpy(c->saddr, local_is_client ? raddr : laddr, 16);
    c->cport = local_is_client ? lport : rport;
    c->sport = local_is_client ? rport : lport;
}

/* Initial sequence numbers from the client and server endpoints alone: when both ends of a
 * connection are traced (both on this node), their packets carry the same numbers, and
 * Wireshark takes the second copy for a retransmission instead of more data. */
static void set_isns(struct conn *c)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (int i = 0; i < 16; i++)
        h = mix(h, c->caddr[i]);
    for (int i = 0; i < 16; i++)
        h = mix(h, c->saddr[i]);
    h = mix(mix(h, c->cport), c->sport);
    c->cseq = (uint32_t)h;
    c->sseq = (uint32_t)(h >> 32);
}

static void put16be(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t sum16(uint32_t acc, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        acc += (uint32_t)p[i] << 8 | p[i + 1];
    if (n & 1)
        acc += (uint32_t)p[n - 1] << 8;
    return acc;
}

void capture_tls_synth_set_sll2(struct capture_tls_synth *s, bool sll2)
{
    s->sll2 = sll2;
}

/* One packet: Ethernet (02:00:00:00:00:01 is the client's, ...:02 the server's) or LINUX_SLL2
 * (the sender's address; outgoing when the traced process sent it), IPv6, TCP with a correct
 * checksum, the payload. */
static int append_packet(const struct capture_tls_synth *s, struct nr_buf *out, uint32_t ifid,
                         int64_t ts_ns, const struct conn *c, bool from_client, uint32_t seq,
                         uint32_t ack, uint8_t flags, const uint8_t *payload, uint32_t len,
                         const char *comment)
{
    uint8_t pkt[CAPTURE_TLS_SYNTH_HEADERS_MAX + CAPTURE_TLS_CHUNK];
    size_t hl = s->sll2 ? 20 : 14;
    uint8_t *ip = pkt + hl, *tcp = ip + 40;
    const uint8_t *src = from_client ? c->caddr : c->saddr,
                  *dst = from_client ? c->saddr : c->caddr;
    uint32_t tcp_len = 20 + len, acc;

    if (len > CAPTURE_TLS_CHUNK)
        return -EINVAL;
    memset(pkt, 0, hl + 60);
    if (s->sll2) {
        pkt[0] = 0x86; /* protocol */
        pkt[1] = 0xdd;
        pkt[9] = 1;                                          /* ARPHRD_ETHER */
        pkt[10] = from_client == c->local_is_client ? 4 : 0; /* outgoing, or to us */
        pkt[11] = 6;                                         /* address length */
        pkt[12] = 0x02;
        pkt[17] = from_client ? 1 : 2; /* the sender's */
    } else {
        pkt[0] = 0x02;
        pkt[5] = from_client ? 2 : 1; /* destination */
        pkt[6] = 0x02;
        pkt[11] = from_client ? 1 : 2; /* source */
        pkt[12] = 0x86;
        pkt[13] = 0xdd;
    }
    ip[0] = 0x60;
    put16be(ip + 4, (uint16_t)tcp_len);
    ip[6] = 6; /* TCP */
    ip[7] = 64;
    memcpy(ip + 8, src, 16);
    memcpy(ip + 24, dst, 16);
    put16be(tcp, from_client ? c->cport : c->sport);
    put16be(tcp + 2, from_client ? c->sport : c->cport);
    put32be(tcp + 4, seq);
    put32be(tcp + 8, ack);
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    put16be(tcp + 14, 65535);
    if (len)
        memcpy(tcp + 20, payload, len);
    /* pseudo-header: addresses, upper-layer length, next header */
    acc = sum16(0, ip + 8, 32);
    acc += tcp_len >> 16;
    acc += tcp_len & 0xffff;
    acc += 6;
    acc = sum16(acc, tcp, tcp_len);
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    put16be(tcp + 16, (uint16_t)~acc);
    return pcapng_epb_append(out, ifid, ts_ns, pkt, (uint32_t)(hl + 60 + len),
                             (uint32_t)(hl + 60 + len), comment);
}

static int handshake(const struct capture_tls_synth *s, struct nr_buf *out, uint32_t ifid,
                     int64_t ts_ns, const struct conn *c, const struct capture_tls_hdr *h)
{
    char comment[160];
    char comm[17];
    int rc;

    memcpy(comm, h->comm, 16);
    comm[16] = 0;
    for (char *p = comm; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    snprintf(comment, sizeof(comment), "netreel tls: pid %u %s, SSL* 0x%llx (%s side)%s", h->pid,
             comm, (unsigned long long)h->ssl, c->local_is_client ? "client" : "server",
             h->tuple.family ? "" : ", socket unknown: placeholder addresses");
    rc = append_packet(s, out, ifid, ts_ns, c, true, c->cseq - 1, 0, TCP_SYN, NULL, 0, comment);
    if (rc == 0)
        rc = append_packet(s, out, ifid, ts_ns, c, false, c->sseq - 1, c->cseq, TCP_SYN | TCP_ACK,
                           NULL, 0, NULL);
    if (rc == 0)
        rc = append_packet(s, out, ifid, ts_ns, c, true, c->cseq, c->sseq, TCP_ACK, NULL, 0, NULL);
    return rc;
}

static bool same_tuple(const struct conn *c, const struct capture_tls_tuple *t)
{
    struct conn tmp = *c;

    if (!t->family)
        return true; /* nothing new known: the connection it was */
    set_endpoints(&tmp, t, c->local_is_client);
    return memcmp(tmp.caddr, c->caddr, 16) == 0 && memcmp(tmp.saddr, c->saddr, 16) == 0 &&
           tmp.cport == c->cport && tmp.sport == c->sport;
}

int capture_tls_synth_record(struct capture_tls_synth *s, const void *rec, size_t size,
                             int64_t ts_ns, uint32_t ifid, struct nr_buf *out)
{
    struct capture_tls_hdr h;
    const uint8_t *data = (const uint8_t *)rec + sizeof(h);
    size_t mark = out->len;
    struct conn *c;
    bool new_conn = false, from_client;
    int role = -1; /* the role a replaced placeholder connection had found */
    int packets = 0, rc;

    if (size < sizeof(h))
        return NR_EPARSE;
    memcpy(&h, rec, sizeof(h));
    if (h.len == 0 || h.len > CAPTURE_TLS_CHUNK || size - sizeof(h) < h.len ||
        (h.dir != CAPTURE_TLS_WRITE && h.dir != CAPTURE_TLS_READ))
        return NR_EPARSE;
    if (out->max - out->len < CAPTURE_TLS_SYNTH_MAX_BYTES)
        return -EOVERFLOW;
    c = find(s, h.pid, h.ssl);
    if (c && !same_tuple(c, &h.tuple)) {
        /* The SSL* now serves another connection — or its socket became known: then who spoke
         * first is still what the placeholder saw, not this record's direction. */
        if (c->placeholder)
            role = c->local_is_client;
        unlink_conn(s, (int)(c - s->conns));
        c = NULL;
    }
    if (!c) {
        int idx = free_slot(s);
        size_t b;
        c = &s->conns[idx];
        memset(c, 0, sizeof(*c));
        c->pid = h.pid;
        c->ssl = h.ssl;
        c->used = true;
        /* Who speaks first is taken as the client: both traced ends agree on it. */
        set_endpoints(c, &h.tuple, role >= 0 ? role == 1 : h.dir == CAPTURE_TLS_WRITE);
        set_isns(c);
        b = bucket_of(s, h.pid, h.ssl);
        c->next = s->buckets[b];
        s->buckets[b] = idx;
        s->n++;
        new_conn = true;
    }
    c->last_use = ++s->clock;
    if (new_conn) {
        rc = handshake(s, out, ifid, ts_ns, c, &h);
        if (rc != 0)
            goto fail;
        packets += 3;
    }
    from_client = (h.dir == CAPTURE_TLS_WRITE) == c->local_is_client;
    {
        uint32_t *seq = from_client ? &c->cseq : &c->sseq;
        uint32_t ack = from_client ? c->sseq : c->cseq;
        rc = append_packet(s, out, ifid, ts_ns, c, from_client, *seq, ack, TCP_PSH | TCP_ACK, data,
                           h.len, NULL);
        if (rc != 0)
            goto fail;
        packets++;
        /* Bytes the probe could not send (a call cut at 1 MiB): a gap Wireshark shows as
         * missing, not as data of the wrong place. */
        *seq += h.len + (uint32_t)(h.lost > 0x40000000 ? 0x40000000 : h.lost);
    }
    return packets;
fail:
    out->len = mark;
    if (new_conn)
        unlink_conn(s, (int)(c - s->conns));
    return rc;
}
