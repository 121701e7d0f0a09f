/* libFuzzer target for the gRPC message decoder: whatever the bytes and however they are split,
 * the decoder yields the same messages as when fed at once, and never reads or allocates past
 * its limit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/frame.h"

#define MAX_MESSAGE (64u << 10)

struct digest {
    size_t n;
    size_t total;
    uint64_t hash;
};

static int take(void *arg, const uint8_t *msg, size_t len)
{
    struct digest *d = arg;

    if (len > MAX_MESSAGE)
        abort();
    d->n++;
    d->total += len;
    for (size_t i = 0; i < len; i++)
        d->hash = (d->hash ^ msg[i]) * 0x100000001b3ULL;
    d->hash ^= len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rpc_frame_decoder whole, split;
    struct digest a = {0}, b = {0};
    int ra, rb = 0;
    size_t step;

    if (size < 1)
        return 0;
    step = (size_t)data[0] % 17 + 1;
    data++;
    size--;

    rpc_frame_decoder_init(&whole, MAX_MESSAGE);
    ra = rpc_frame_decoder_feed(&whole, data, size, take, &a);

    rpc_frame_decoder_init(&split, MAX_MESSAGE);
    for (size_t off = 0; off < size && rb == 0; off += step) {
        size_t n = size - off < step ? size - off : step;
        rb = rpc_frame_decoder_feed(&split, data + off, n, take, &b);
    }
    if (ra != rb || a.n != b.n || a.total != b.total || a.hash != b.hash)
        abort();
    if (ra == 0 && rpc_frame_decoder_partial(&whole) != rpc_frame_decoder_partial(&split))
        abort();
    rpc_frame_decoder_free(&whole);
    rpc_frame_decoder_free(&split);
    return 0;
}
