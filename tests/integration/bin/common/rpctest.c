/* The payload pattern and checksum shared by rpc-test-server and rpc-test-client. */
#include "common/rpctest.h"

uint64_t rpctest_fnv(uint64_t h, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void rpctest_pattern(uint8_t *p, size_t len, uint64_t i)
{
    for (size_t j = 0; j < len; j++)
        p[j] = (uint8_t)(i * 7 + j * 13);
}
