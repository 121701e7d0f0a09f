/* FNV-1a, 64-bit: the hash the hub keys its small tables with (store channels, node names, TLS
 * key log lines). Not for anything a peer could choose to collide on at scale. */
#ifndef NR_UTIL_HASH_H
#define NR_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t nr_hash_bytes(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 14695981039346656037ull;

    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

#endif
