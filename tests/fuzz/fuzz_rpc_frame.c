/* libFuzzer target for the gRPC message decoder: whatever the bytes and however they are split,
 * the decoder yields the same messages as when fed at once — also when the handler pauses it
 * and the rest is fed again from where it stopped, as lib/rpc's calls do — accounts for every
 * byte (messages, their prefixes and what is pending), never reads or allocates past its limit,
 * and what it yields framed again with rpc_frame_prefix decodes to the same messages. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/frame.h"
#include "fuzz.h"

#define MAX_MESSAGE (64u << 10)

struct digest {
    size_t n;
    size_t total;
    uint64_t hash;
    size_t stop_every; /* the handler pauses after every this many messages (0: never) */
    uint8_t *framed;   /* when set, each message is framed again here */
    size_t framed_len;
};

static int take(void *arg, const uint8_t *msg, size_t len)
{
    struct digest *d = arg;

    CHECK(len <= MAX_MESSAGE);
    d->n++;
    d->total += len;
    for (size_t i = 0; i < len; i++)
        d->hash = (d->hash ^ msg[i]) * 0x100000001b3ULL;
    d->hash ^= len;
    if (d->framed) {
        rpc_frame_prefix(d->framed + d->framed_len, (uint32_t)len);
        if (len)
            memcpy(d->framed + d->framed_len + RPC_FRAME_PREFIX, msg, len);
        d->framed_len += RPC_FRAME_PREFIX + len;
    }
    return d->stop_every && d->n % d->stop_every == 0 ? 1 : 0;
}

static void check_same(const struct digest *a, const struct digest *b)
{
    CHECK(a->n == b->n && a->total == b->total && a->hash == b->hash);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rpc_frame_decoder whole, split, paused, again;
    struct digest a = {0}, b = {0}, c = {0}, d = {0};
    int ra, rb = 0, rc = 0;
    size_t step;

    if (size < 1)
        return 0;
    step = (size_t)data[0] % 17 + 1;
    c.stop_every = (size_t)data[0] % 3 + 1;
    data++;
    size--;
    /* Every message framed again takes no more room than it did. */
    a.framed = malloc(size ? size : 1);
    CHECK(a.framed != NULL);

    rpc_frame_decoder_init(&whole, MAX_MESSAGE);
    ra = rpc_frame_decoder_feed(&whole, data, size, take, &a);
    CHECK(ra == 0 || ra == -EMSGSIZE || ra == -EPROTO);
    if (ra == 0) {
        /* Every byte is a message, a prefix or pending. */
        CHECK(whole.last_used == size);
        CHECK(a.total + a.n * RPC_FRAME_PREFIX + rpc_frame_decoder_pending(&whole) == size);
        CHECK(rpc_frame_decoder_partial(&whole) == (rpc_frame_decoder_pending(&whole) > 0));
        CHECK(a.framed_len == size - rpc_frame_decoder_pending(&whole));
        CHECK(memcmp(a.framed, data, a.framed_len) == 0);
    }

    /* In pieces of `step` bytes, trimming the buffer between them as an idle call does. */
    rpc_frame_decoder_init(&split, MAX_MESSAGE);
    for (size_t off = 0; off < size && rb == 0; off += step) {
        size_t n = size - off < step ? size - off : step;
        rb = rpc_frame_decoder_feed(&split, data + off, n, take, &b);
        if (rb == 0 && rpc_frame_decoder_trim(&split) > 0)
            CHECK(rpc_frame_decoder_partial(&split));
    }
    CHECK(ra == rb);
    check_same(&a, &b);
    if (ra == 0)
        CHECK(rpc_frame_decoder_pending(&whole) == rpc_frame_decoder_pending(&split));

    /* Paused by the handler, then fed the rest from where it stopped. */
    rpc_frame_decoder_init(&paused, MAX_MESSAGE);
    for (size_t off = 0; off < size;) {
        rc = rpc_frame_decoder_feed(&paused, data + off, size - off, take, &c);
        CHECK(paused.last_used <= size - off);
        off += paused.last_used;
        if (rc != 1)
            break;
        CHECK(c.n % c.stop_every == 0);
    }
    CHECK(rc == 1 ? ra == 0 : rc == ra);
    check_same(&a, &c);

    /* What came out, framed again, decodes the same. */
    if (ra == 0) {
        rpc_frame_decoder_init(&again, MAX_MESSAGE);
        CHECK(rpc_frame_decoder_feed(&again, a.framed, a.framed_len, take, &d) == 0);
        check_same(&a, &d);
        CHECK(!rpc_frame_decoder_partial(&again));
        rpc_frame_decoder_free(&again);
    }

    rpc_frame_decoder_free(&whole);
    rpc_frame_decoder_free(&split);
    rpc_frame_decoder_free(&paused);
    free(a.framed);
    return 0;
}
