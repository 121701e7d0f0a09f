/* libFuzzer target for lib/pcapng/sighting.c: the key the hub recognises copies of one packet
 * by is computed over packets of every node of a cluster, which anyone on it can send: every
 * length a header gives (IP, extension headers, TCP offset, tunnels inside tunnels, an ICMP
 * error's quoted packet) is one that lies. The first two bytes pick the link type from a small
 * table, the rest is the packet. A key found is non-zero and the same twice; and the key is
 * what sighting.h says it is over: for LINUX_SLL2 around IPv4, neither the link-layer header
 * (but its protocol) nor the TTL or the IP checksum change it, and the same IP packet keys the
 * same as RAW and inside Ethernet. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pcapng/sighting.h"
#include "fuzz.h"

#define LT_EN10MB 1
#define LT_RAW    101
#define LT_SLL2   276

static const uint16_t LINK_TYPES[] = {1, 101, 113, 228, 229, 276, 0, 108};

static bool key_of(uint16_t lt, const uint8_t *p, size_t n, uint64_t *key)
{
    bool ok;

    *key = 0;
    ok = pcapng_sighting_key(lt, p, n, key);
    CHECK(!ok || *key != 0);
    return ok;
}

/* The same IP packet behind another link-layer header: the key cannot tell. */
static void same_packet_elsewhere(const uint8_t *p, size_t n, bool found, uint64_t key)
{
    uint16_t et;
    uint8_t *eth;
    uint64_t k2;

    if (n < 20)
        return;
    et = (uint16_t)(p[0] << 8 | p[1]);
    if (et != 0x0800 && et != 0x86dd)
        return;
    CHECK(key_of(LT_RAW, p + 20, n - 20, &k2) == found);
    CHECK(!found || k2 == key);
    eth = malloc(n - 20 + 14);
    CHECK(eth != NULL);
    memset(eth, 0xee, 12);
    eth[12] = p[0];
    eth[13] = p[1];
    memcpy(eth + 14, p + 20, n - 20);
    CHECK(key_of(LT_EN10MB, eth, n - 20 + 14, &k2) == found);
    CHECK(!found || k2 == key);
    free(eth);
}

/* What changes hop by hop, changed: the SLL2 header but its protocol (another interface,
 * direction, address), the IPv4 TTL and header checksum. */
static void hops_do_not_change_it(const uint8_t *p, size_t n, bool found, uint64_t key)
{
    uint8_t *q;
    uint64_t k2;

    if (n < 40 || p[0] != 0x08 || p[1] != 0x00 || p[20] >> 4 != 4)
        return;
    q = malloc(n);
    CHECK(q != NULL);
    memcpy(q, p, n);
    for (size_t i = 2; i < 20; i++)
        q[i] ^= (uint8_t)(0x5a + i);
    q[10] = p[10] == 4 ? 0 : 4;   /* the other direction */
    q[28] = (uint8_t)(p[28] - 1); /* TTL */
    q[30] ^= 0xa5;                /* header checksum */
    q[31] = (uint8_t)(p[31] + 0x3c);
    CHECK(key_of(LT_SLL2, q, n, &k2) == found);
    CHECK(!found || k2 == key);
    CHECK(pcapng_sighting_direction(LT_SLL2, q, n) ==
          (p[10] == 4 ? PCAPNG_DIR_IN : PCAPNG_DIR_OUT));
    free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint16_t lt;
    const uint8_t *p;
    size_t n;
    uint64_t key, again;
    bool found;
    enum pcapng_direction dir;

    if (size < 2)
        return 0;
    lt =
        LINK_TYPES[(uint16_t)(data[0] << 8 | data[1]) % (sizeof(LINK_TYPES) / sizeof(*LINK_TYPES))];
    p = data + 2;
    n = size - 2;

    found = key_of(lt, p, n, &key);
    CHECK(key_of(lt, p, n, &again) == found);
    CHECK(!found || again == key);

    dir = pcapng_sighting_direction(lt, p, n);
    CHECK(dir == PCAPNG_DIR_UNKNOWN || dir == PCAPNG_DIR_IN || dir == PCAPNG_DIR_OUT);
    CHECK(pcapng_sighting_direction(lt, p, n) == dir);
    if (lt != LT_SLL2 && lt != 113)
        CHECK(dir == PCAPNG_DIR_UNKNOWN);

    if (lt == LT_SLL2) {
        same_packet_elsewhere(p, n, found, key);
        hops_do_not_change_it(p, n, found, key);
    }
    return 0;
}
