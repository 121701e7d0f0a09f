/* What the lib/rpc test server and client agree on: the payload pattern and its checksum. */
#ifndef NR_TESTS_RPCTEST_H
#define NR_TESTS_RPCTEST_H

#include <stddef.h>
#include <stdint.h>

#define RPCTEST_FNV_INIT 0xcbf29ce484222325ULL

/* FNV-1a 64 of `len` bytes, continuing from h. */
uint64_t rpctest_fnv(uint64_t h, const uint8_t *p, size_t len);

/* Fills message i's payload: byte j is (i*7 + j*13) & 0xff. */
void rpctest_pattern(uint8_t *p, size_t len, uint64_t i);

#endif
