/* The gRPC length-prefixed message decoder/encoder: state is only the prefix bytes seen and the
 * payload gathered so far, so any split of the byte stream yields the same messages. */
#include "rpc/frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void rpc_frame_decoder_init(struct rpc_frame_decoder *d, size_t max_message)
{
    memset(d, 0, sizeof(*d));
    d->max_message = max_message ? max_message : RPC_DEFAULT_MAX_MESSAGE;
}

void rpc_frame_decoder_free(struct rpc_frame_decoder *d)
{
    free(d->buf);
    d->buf = NULL;
    d->buf_len = 0;
    d->buf_cap = 0;
    d->prefix_len = 0;
}

bool rpc_frame_decoder_partial(const struct rpc_frame_decoder *d)
{
    return d->prefix_len > 0;
}

size_t rpc_frame_decoder_pending(const struct rpc_frame_decoder *d)
{
    if (d->prefix_len < RPC_FRAME_PREFIX)
        return d->prefix_len;
    return RPC_FRAME_PREFIX + d->buf_len;
}

size_t rpc_frame_decoder_trim(struct rpc_frame_decoder *d)
{
    if (d->prefix_len < RPC_FRAME_PREFIX || d->buf_len == 0) {
        free(d->buf);
        d->buf = NULL;
        d->buf_cap = 0;
    }
    return d->buf_cap;
}

/* Makes room for `need` gathered bytes, growing geometrically up to the announced length, so a
 * prefix alone does not commit the memory it announces. */
static int buf_grow(struct rpc_frame_decoder *d, size_t need)
{
    size_t cap = d->buf_cap ? d->buf_cap : 16384;
    uint8_t *p;

    if (need <= d->buf_cap)
        return 0;
    while (cap < need)
        cap *= 2;
    if (cap > d->msg_len)
        cap = d->msg_len;
    p = realloc(d->buf, cap);
    if (!p)
        return -ENOMEM;
    d->buf = p;
    d->buf_cap = cap;
    return 0;
}

void rpc_frame_prefix(uint8_t out[RPC_FRAME_PREFIX], uint32_t len)
{
    out[0] = 0;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
}

/* Validates a whole prefix and returns 0 or the error for it. */
static int prefix_check(struct rpc_frame_decoder *d)
{
    const uint8_t *p = d->prefix;

    if (p[0] != 0)
        return -EPROTO;
    d->msg_len = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    if (d->msg_len > d->max_message)
        return -EMSGSIZE;
    return 0;
}

int rpc_frame_decoder_feed(struct rpc_frame_decoder *d, const uint8_t *data, size_t len,
                           rpc_frame_msg_fn fn, void *arg)
{
    const size_t total = len;
    int rv = 0;

    while (len > 0) {
        if (d->prefix_len < RPC_FRAME_PREFIX) {
            size_t n = RPC_FRAME_PREFIX - d->prefix_len;
            if (n > len)
                n = len;
            memcpy(d->prefix + d->prefix_len, data, n);
            d->prefix_len += n;
            data += n;
            len -= n;
            if (d->prefix_len < RPC_FRAME_PREFIX)
                break;
            rv = prefix_check(d);
            if (rv != 0)
                break;
            d->buf_len = 0;
            if (d->msg_len <= len) {
                /* Whole message in this piece: hand it over in place. */
                const uint8_t *msg = data;
                data += d->msg_len;
                len -= d->msg_len;
                d->prefix_len = 0;
                rv = fn(arg, msg, d->msg_len);
                if (rv != 0)
                    break;
                continue;
            }
            continue;
        }
        size_t n = d->msg_len - d->buf_len;
        if (n > len)
            n = len;
        rv = buf_grow(d, d->buf_len + n);
        if (rv != 0)
            break;
        memcpy(d->buf + d->buf_len, data, n);
        d->buf_len += n;
        data += n;
        len -= n;
        if (d->buf_len < d->msg_len)
            break;
        d->buf_len = 0;
        d->prefix_len = 0;
        rv = fn(arg, d->buf, d->msg_len);
        if (rv != 0)
            break;
    }
    d->last_used = total - len;
    return rv;
}
