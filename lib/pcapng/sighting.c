/* The invariant bytes of a packet, hashed (see sighting.h). */
#include "pcapng/sighting.h"

#include <string.h>

#define LT_NULL   0
#define LT_EN10MB 1
#define LT_RAW    101
#define LT_LOOP   108
#define LT_SLL    113
#define LT_IPV4   228
#define LT_IPV6   229
#define LT_SLL2   276
#define ET_IPV4   0x0800
#define ET_IPV6   0x86dd
#define ET_VLAN   0x8100
#define ET_QINQ   0x88a8
#define ET_TEB    0x6558 /* Geneve: an Ethernet frame inside */
#define MAX_DEPTH 3      /* tunnels inside tunnels looked through */

#define SEED 0x6e657472656c2d31ull

struct hash {
    uint64_t h;
};

/* Entering a tunnel: the key is the inner packet's alone, whatever the outer headers mixed. */
static void restart(struct hash *s)
{
    s->h = SEED;
}

static void mix(struct hash *s, uint64_t v)
{
    s->h ^= v + 0x9e3779b97f4a7c15ull + (s->h << 6) + (s->h >> 2);
    s->h *= 0xff51afd7ed558ccdull;
    s->h ^= s->h >> 33;
}

/* One 8-byte word into one of four lanes (xxHash64's round: the lanes' multiplies do not wait
 * for each other, where mix()'s chain does; a payload's 256 bytes cost a quarter). */
static uint64_t lane(uint64_t acc, uint64_t w)
{
    acc += w * 0xc2b2ae3d27d4eb4full;
    acc = acc << 31 | acc >> 33;
    return acc * 0x9e3779b185ebca87ull;
}

static void mix_bytes(struct hash *s, const uint8_t *p, size_t n)
{
    uint64_t w;

    mix(s, n);
    if (n >= 32) {
        uint64_t l[4] = {s->h, s->h ^ 0x60ea27eeadc0b5d6ull, s->h + 0x61c8864e7a143579ull,
                         s->h - 0x3c6ef372fe94f82bull},
                 v[4];
        for (; n >= 32; p += 32, n -= 32) {
            memcpy(v, p, 32);
            l[0] = lane(l[0], v[0]);
            l[1] = lane(l[1], v[1]);
            l[2] = lane(l[2], v[2]);
            l[3] = lane(l[3], v[3]);
        }
        for (int i = 0; i < 4; i++)
            mix(s, l[i]);
    }
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&w, p, 8);
        mix(s, w);
    }
    w = 0;
    memcpy(&w, p, n);
    mix(s, w);
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* The payload a key covers: what was captured of it, at most PCAPNG_SIGHTING_PAYLOAD bytes, and
 * its length on the wire (from the headers, not the capture). */
static void payload(struct hash *s, const uint8_t *p, size_t have, size_t wire)
{
    size_t n = have < wire ? have : wire;

    mix(s, wire);
    mix_bytes(s, p, n < PCAPNG_SIGHTING_PAYLOAD ? n : PCAPNG_SIGHTING_PAYLOAD);
}

static bool key_ip(struct hash *s, const uint8_t *p, size_t n, int depth);
static bool key_ether(struct hash *s, const uint8_t *p, size_t n, int depth);

/* The fields of a packet an ICMP error quotes (its IP header and 8 bytes): those that NAT leaves
 * alone. */
static void key_quoted(struct hash *s, const uint8_t *p, size_t n)
{
    if (n >= 20 && p[0] >> 4 == 4) {
        size_t ihl = (size_t)(p[0] & 15) * 4;
        mix(s, (uint64_t)be16(p + 2) << 32 | (uint64_t)be16(p + 4) << 16 | p[9]);
        if (ihl >= 20 && n >= ihl + 8 && (be16(p + 6) & 0x1fff) == 0) {
            const uint8_t *l4 = p + ihl;
            mix(s, p[9] == 6 ? (uint64_t)l4[4] << 24 | l4[5] << 16 | l4[6] << 8 | l4[7]
                             : be16(l4 + 4));
        }
    } else if (n >= 48 && p[0] >> 4 == 6) {
        const uint8_t *l4 = p + 40;
        mix(s, (uint64_t)be16(p + 4) << 8 | p[6]);
        mix(s, p[6] == 6 ? (uint64_t)l4[4] << 24 | l4[5] << 16 | l4[6] << 8 | l4[7] : be16(l4 + 4));
    }
}

static bool key_l4(struct hash *s, uint8_t proto, const uint8_t *p, size_t n, size_t wire, bool v6,
                   int depth)
{
    mix(s, proto);
    switch (proto) {
    case 6: { /* TCP: no ports; no options on a SYN (MSS clamping rewrites them) */
        size_t off = n >= 13 ? (size_t)(p[12] >> 4) * 4 : 0;
        if (n < 20 || off < 20 || off > wire)
            return false;
        mix_bytes(s, p + 4, 12); /* seq, ack, offset, flags, window */
        mix(s, be16(p + 18));    /* urgent pointer */
        if (!(p[13] & 0x02) && n >= off)
            mix_bytes(s, p + 20, off - 20);
        payload(s, n > off ? p + off : p, n > off ? n - off : 0, wire - off);
        return true;
    }
    case 17: { /* UDP: no ports, no checksum; tunnels looked through */
        uint16_t dport;
        if (n < 8)
            return false;
        dport = be16(p + 2);
        if (depth < MAX_DEPTH && (dport == 4789 || dport == 8472) && n >= 16 && (p[8] & 0x08)) {
            restart(s);
            return key_ether(s, p + 16, n - 16, depth + 1);
        }
        if (depth < MAX_DEPTH && dport == 6081 && n >= 16 && be16(p + 10) == ET_TEB &&
            n >= 16 + (size_t)(p[8] & 0x3f) * 4) {
            size_t opt = (size_t)(p[8] & 0x3f) * 4;
            restart(s);
            return key_ether(s, p + 16 + opt, n - 16 - opt, depth + 1);
        }
        mix(s, be16(p + 4));
        payload(s, p + 8, n - 8, wire >= 8 ? wire - 8 : 0);
        return true;
    }
    case 132: /* SCTP: the verification tag and the chunks, no ports, no checksum */
        if (n < 12)
            return false;
        mix_bytes(s, p + 4, 4);
        payload(s, p + 12, n - 12, wire >= 12 ? wire - 12 : 0);
        return true;
    case 1:
    case 58: { /* ICMP, ICMPv6 */
        uint8_t type;
        bool echo, error;
        if (n < 8)
            return false;
        type = p[0];
        echo = v6 ? (type == 128 || type == 129) : (type == 8 || type == 0);
        error = v6 ? type < 128 : (type == 3 || type == 4 || type == 5 || type == 11 || type == 12);
        mix(s, (uint64_t)type << 8 | p[1]);
        if (echo) { /* the identifier is NAT's to rewrite */
            mix(s, be16(p + 6));
            payload(s, p + 8, n - 8, wire - 8);
        } else if (error) {
            key_quoted(s, p + 8, n - 8);
        } else {
            payload(s, p + 4, n - 4, wire - 4);
        }
        return true;
    }
    case 4:  /* IP in IP */
    case 41: /* IPv6 in IPv4 (or in IPv6) */
        if (depth < MAX_DEPTH) {
            restart(s);
            return key_ip(s, p, n, depth + 1);
        }
        /* fall through */
    default: payload(s, p, n, wire); return true;
    }
}

static bool key_ip(struct hash *s, const uint8_t *p, size_t n, int depth)
{
    if (n >= 20 && p[0] >> 4 == 4) {
        size_t ihl = (size_t)(p[0] & 15) * 4, total = be16(p + 2);
        uint16_t frag = be16(p + 6);
        if (ihl < 20 || total < ihl || n < ihl)
            return false;
        /* total length, identification, flags and fragment offset, protocol */
        mix(s, (uint64_t)total << 48 | (uint64_t)be16(p + 4) << 32 | (uint64_t)frag << 8 | p[9]);
        if (n > total)
            n = total;       /* Ethernet padding */
        if (frag & 0x1fff) { /* a later fragment: no transport header */
            payload(s, p + ihl, n - ihl, total - ihl);
            return true;
        }
        return key_l4(s, p[9], p + ihl, n - ihl, total - ihl, false, depth);
    }
    if (n >= 40 && p[0] >> 4 == 6) {
        size_t plen = be16(p + 4), off = 40;
        uint8_t next = p[6];
        mix(s, plen);
        if (n > 40 + plen)
            n = 40 + plen;
        /* extension headers: hop-by-hop, routing, destination options, fragment */
        for (int i = 0; i < 8; i++) {
            if ((next == 0 || next == 43 || next == 60) && n >= off + 8) {
                size_t len = ((size_t)p[off + 1] + 1) * 8;
                next = p[off];
                off += len;
            } else if (next == 44 && n >= off + 8) {
                mix_bytes(s, p + off + 2, 6); /* offset, M flag, identification */
                next = p[off];
                off += 8;
                if (be16(p + off - 6) & 0xfff8) { /* a later fragment */
                    if (off > n)
                        return false;
                    payload(s, p + off, n - off, 40 + plen > off ? 40 + plen - off : 0);
                    return true;
                }
            } else {
                break;
            }
        }
        if (off > n || off > 40 + plen)
            return false;
        return key_l4(s, next, p + off, n - off, 40 + plen - off, true, depth);
    }
    return false;
}

static bool key_ethertype(struct hash *s, uint16_t et, const uint8_t *p, size_t n, int depth)
{
    return (et == ET_IPV4 || et == ET_IPV6) && key_ip(s, p, n, depth);
}

static bool key_ether(struct hash *s, const uint8_t *p, size_t n, int depth)
{
    size_t off = 12;
    uint16_t et;

    if (n < 14)
        return false;
    et = be16(p + 12);
    while ((et == ET_VLAN || et == ET_QINQ) && n >= off + 6) {
        off += 4;
        et = be16(p + off);
    }
    return key_ethertype(s, et, p + off + 2, n - off - 2, depth);
}

enum pcapng_direction pcapng_sighting_direction(uint16_t link_type, const uint8_t *data,
                                                size_t caplen)
{
    uint16_t type;

    if (link_type == LT_SLL2 && caplen >= 20)
        type = data[10];
    else if (link_type == LT_SLL && caplen >= 16)
        type = be16(data);
    else
        return PCAPNG_DIR_UNKNOWN;
    return type == 4 ? PCAPNG_DIR_OUT : PCAPNG_DIR_IN;
}

/* Where the IP header starts after the link layer, or NULL. */
static const uint8_t *ip_start(uint16_t link_type, const uint8_t *d, size_t caplen, size_t *n)
{
    size_t off = 0;
    uint16_t et = 0;

    switch (link_type) {
    case LT_EN10MB:
        if (caplen < 14)
            return NULL;
        off = 12;
        et = be16(d + 12);
        while ((et == ET_VLAN || et == ET_QINQ) && caplen >= off + 6) {
            off += 4;
            et = be16(d + off);
        }
        off += 2;
        break;
    case LT_SLL2:
        if (caplen < 20)
            return NULL;
        et = be16(d);
        off = 20;
        break;
    case LT_SLL:
        if (caplen < 16)
            return NULL;
        et = be16(d + 14);
        off = 16;
        break;
    case LT_RAW:
    case LT_IPV4:
    case LT_IPV6: et = caplen && d[0] >> 4 == 6 ? ET_IPV6 : ET_IPV4; break;
    case LT_NULL:
    case LT_LOOP:
        if (caplen < 5)
            return NULL;
        off = 4;
        et = d[4] >> 4 == 6 ? ET_IPV6 : ET_IPV4;
        break;
    default: return NULL;
    }
    if ((et != ET_IPV4 && et != ET_IPV6) || off > caplen)
        return NULL;
    *n = caplen - off;
    return d + off;
}

bool pcapng_packet_addrs(uint16_t link_type, const uint8_t *data, size_t caplen, uint8_t *family,
                         uint8_t src[16], uint8_t dst[16])
{
    size_t n;
    const uint8_t *p = ip_start(link_type, data, caplen, &n);

    if (p && n >= 20 && p[0] >> 4 == 4) {
        *family = 4;
        memcpy(src, p + 12, 4);
        memcpy(dst, p + 16, 4);
        return true;
    }
    if (p && n >= 40 && p[0] >> 4 == 6) {
        *family = 6;
        memcpy(src, p + 8, 16);
        memcpy(dst, p + 24, 16);
        return true;
    }
    return false;
}

bool pcapng_sighting_key(uint16_t link_type, const uint8_t *data, size_t caplen, uint64_t *key)
{
    struct hash s = {.h = SEED};
    bool ok = false;

    switch (link_type) {
    case LT_EN10MB: ok = key_ether(&s, data, caplen, 0); break;
    case LT_SLL2:
        ok = caplen >= 20 && key_ethertype(&s, be16(data), data + 20, caplen - 20, 0);
        break;
    case LT_SLL:
        ok = caplen >= 16 && key_ethertype(&s, be16(data + 14), data + 16, caplen - 16, 0);
        break;
    case LT_RAW:
    case LT_IPV4:
    case LT_IPV6: ok = key_ip(&s, data, caplen, 0); break;
    case LT_NULL:
    case LT_LOOP: ok = caplen >= 4 && key_ip(&s, data + 4, caplen - 4, 0); break;
    default: break;
    }
    if (ok)
        *key = s.h ? s.h : 1;
    return ok;
}
