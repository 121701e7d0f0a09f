/* gRPC message framing (the 5-byte prefix: compressed flag, 32-bit big-endian length) as a pure,
 * incremental decoder and an encoder. No I/O: DATA frame payloads go in, whole messages come out,
 * however the prefix and payload were split across frames. */
#ifndef NR_RPC_FRAME_H
#define NR_RPC_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RPC_FRAME_PREFIX        5
#define RPC_DEFAULT_MAX_MESSAGE (4u << 20)
/* No method may accept more: twice a message must fit an HTTP/2 window (2^31 - 1). */
#define RPC_MAX_MESSAGE_LIMIT (1u << 30)

/* Called once per whole message. `msg` is valid only during the call. A non-zero return stops
 * rpc_frame_decoder_feed(), which returns that value. */
typedef int (*rpc_frame_msg_fn)(void *arg, const uint8_t *msg, size_t len);

struct rpc_frame_decoder {
    size_t max_message; /* messages longer than this are refused (-EMSGSIZE) */
    uint8_t prefix[RPC_FRAME_PREFIX];
    size_t prefix_len; /* bytes of the prefix seen so far */
    uint32_t msg_len;  /* length from the prefix, once it is whole */
    uint8_t *buf;      /* payload gathered across calls; kept for the next message until
                          rpc_frame_decoder_trim() (a fresh 1 MiB malloc per message costs
                          page faults on bulk streams) */
    size_t buf_len;    /* bytes of the current message in buf */
    size_t buf_cap;
    size_t last_used; /* bytes of the last feed's input taken (less when fn stopped it) */
};

/* Sets up a decoder that refuses messages longer than max_message (0: the 4 MiB default). */
void rpc_frame_decoder_init(struct rpc_frame_decoder *d, size_t max_message);

/* Frees the decoder's buffer. The decoder may be initialised again afterwards. */
void rpc_frame_decoder_free(struct rpc_frame_decoder *d);

/* Feeds `len` bytes and calls fn for every message they complete; a message that lies whole
 * inside `data` is passed in place, without a copy. Returns 0, fn's non-zero return, or:
 *   -EMSGSIZE  a prefix announced a message longer than max_message (RESOURCE_EXHAUSTED);
 *   -EPROTO    the compressed flag is set (we never negotiate compression) or is not 0/1
 *              (INTERNAL);
 *   -ENOMEM.
 * After an error the decoder must not be fed again. */
int rpc_frame_decoder_feed(struct rpc_frame_decoder *d, const uint8_t *data, size_t len,
                           rpc_frame_msg_fn fn, void *arg);

/* True when a message has begun but not ended: at end of stream this is a truncated message. */
bool rpc_frame_decoder_partial(const struct rpc_frame_decoder *d);

/* Bytes of the unfinished message held so far (its prefix included); 0 between messages. */
size_t rpc_frame_decoder_pending(const struct rpc_frame_decoder *d);

/* Frees the gathering buffer if no message is being gathered. Returns the bytes the decoder
 * still holds allocated (0 unless a message is unfinished). */
size_t rpc_frame_decoder_trim(struct rpc_frame_decoder *d);

/* Writes the 5-byte prefix of an uncompressed message of `len` bytes. */
void rpc_frame_prefix(uint8_t out[RPC_FRAME_PREFIX], uint32_t len);

#endif
