/* Output of a connection: frames staged as slices of refcounted buffers (message payloads are
 * referenced, not copied; small frames are copied into a chunk), encrypted on the way when TLS
 * is on, and handed to the socket in one uv_write per flush. */
#include "rpc/internal.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/status.h"
#include "util/error.h"

#define COPYBUF_MIN (1u << 10)  /* a connection of small frames holds this ... */
#define COPYBUF_MAX (64u << 10) /* ... and one that copies much grows to this */

struct rpc_write {
    uv_write_t req;
    struct rpc_conn *conn;
    size_t n;
    size_t bytes;
    struct rpc_seg segs[];
};

struct rpc_wbuf *rpc_wbuf__new(size_t cap)
{
    struct rpc_wbuf *b = malloc(sizeof(*b) + cap);

    if (b) {
        memset(b, 0, sizeof(*b));
        b->refs = 1;
        b->cap = cap;
        b->data = b->inline_data;
    }
    return b;
}

struct rpc_wbuf *rpc_wbuf_wrap(uint8_t *data, size_t len, size_t cap, rpc_wbuf_release_fn release,
                               void *ctx)
{
    struct rpc_wbuf *b = calloc(1, sizeof(*b));

    if (b) {
        b->refs = 1;
        b->len = b->cap = len;
        b->data = data;
        b->release = release;
        b->release_ctx = ctx;
        b->data_cap = cap;
    }
    return b;
}

void rpc_wbuf_unref(struct rpc_wbuf *b)
{
    if (!b || --b->refs > 0)
        return;
    if (b->release)
        b->release(b->release_ctx, b->data, b->data_cap);
    free(b);
}

/* ---- staging output ---- */

bool rpc_out__full(const struct rpc_conn *conn)
{
    return conn->staged + conn->inflight >= conn->limits.write_high;
}

static int out_push(struct rpc_conn *conn, struct rpc_wbuf *buf, size_t off, size_t len)
{
    if (len == 0)
        return 0;
    if (conn->out_n > 0) {
        struct rpc_seg *last = &conn->out[conn->out_n - 1];
        if (last->buf == buf && last->off + last->len == off) {
            last->len += len;
            conn->staged += len;
            return 0;
        }
    }
    if (conn->out_n == conn->out_cap) {
        size_t cap = conn->out_cap ? conn->out_cap * 2 : 16;
        struct rpc_seg *out = realloc(conn->out, cap * sizeof(*out));
        if (!out)
            return -ENOMEM;
        conn->out = out;
        conn->out_cap = cap;
    }
    buf->refs++;
    conn->out[conn->out_n++] = (struct rpc_seg){buf, off, len};
    conn->staged += len;
    return 0;
}

/* Makes sure the copy buffer has room; returns the room or 0 when out of memory. */
static size_t copybuf_room(struct rpc_conn *conn)
{
    /* Nothing staged or in flight refers to its bytes: start over at its first page, so that a
     * connection of small frames touches one page, not all 64 KiB (a hub has a thousand). */
    if (conn->copybuf && conn->copybuf->refs == 1)
        conn->copybuf->len = 0;
    if (!conn->copybuf || conn->copybuf->len == conn->copybuf->cap) {
        /* Full while in use: the next is twice as large, up to COPYBUF_MAX. */
        size_t cap = conn->copybuf ? conn->copybuf->cap * 2 : COPYBUF_MIN;
        struct rpc_wbuf *b = rpc_wbuf__new(cap < COPYBUF_MAX ? cap : COPYBUF_MAX);
        if (!b)
            return 0;
        rpc_wbuf_unref(conn->copybuf);
        conn->copybuf = b;
    }
    return conn->copybuf->cap - conn->copybuf->len;
}

static int out_copy_raw(struct rpc_conn *conn, const uint8_t *data, size_t len)
{
    while (len > 0) {
        size_t n = copybuf_room(conn);
        if (n == 0)
            return -ENOMEM;
        if (n > len)
            n = len;
        struct rpc_wbuf *b = conn->copybuf;
        memcpy(b->data + b->len, data, n);
        int rv = out_push(conn, b, b->len, n);
        if (rv != 0)
            return rv;
        b->len += n;
        data += n;
        len -= n;
    }
    return 0;
}

/* Moves what OpenSSL produced into staged output. */
int rpc_out__tls_drain(struct rpc_conn *conn)
{
    size_t pending;

    while ((pending = BIO_ctrl_pending(conn->wbio)) > 0) {
        size_t n = copybuf_room(conn);
        if (n == 0)
            return -ENOMEM;
        if (n > pending)
            n = pending;
        struct rpc_wbuf *b = conn->copybuf;
        int r = BIO_read(conn->wbio, b->data + b->len, (int)n);
        if (r <= 0)
            return NR_ETLS;
        int rv = out_push(conn, b, b->len, (size_t)r);
        if (rv != 0)
            return rv;
        b->len += (size_t)r;
    }
    return 0;
}

static int tls_write(struct rpc_conn *conn, const uint8_t *data, size_t len)
{
    while (len > 0) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        int r;
        /* The error queue is per thread: another connection's failure must not look like ours. */
        ERR_clear_error();
        r = SSL_write(conn->ssl, data, chunk);
        if (r <= 0)
            return NR_ETLS;
        data += r;
        len -= (size_t)r;
        int rv = rpc_out__tls_drain(conn);
        if (rv != 0)
            return rv;
    }
    return 0;
}

int rpc_out__copy(struct rpc_conn *conn, const uint8_t *data, size_t len)
{
    return conn->ssl ? tls_write(conn, data, len) : out_copy_raw(conn, data, len);
}

/* Stages a slice of a message buffer: referenced in plaintext, encrypted (copied) with TLS. */
int rpc_out__ref(struct rpc_conn *conn, struct rpc_wbuf *buf, size_t off, size_t len)
{
    return conn->ssl ? tls_write(conn, buf->data + off, len) : out_push(conn, buf, off, len);
}

static void write_cb(uv_write_t *req, int status)
{
    struct rpc_write *w = (struct rpc_write *)req;
    struct rpc_conn *conn = w->conn;

    for (size_t i = 0; i < w->n; i++)
        rpc_wbuf_unref(w->segs[i].buf);
    conn->inflight -= w->bytes;
    conn->write_progress_ms = uv_now(conn->loop);
    free(w);
    if (conn->closing)
        return;
    if (status < 0) {
        conn->peer_gone = true;
        rpc_conn__close(conn, status, conn->is_server ? RPC_CANCELLED : RPC_UNAVAILABLE,
                        uv_strerror(status));
        return;
    }
    rpc_conn__flush(conn);
}

/* Writes what the socket takes now, when nothing is queued on it (uv_try_write): what it took
 * needs no write request, no poll for writability and no callback a loop turn later. Returns
 * how many of the n bufs it took whole, the next one advanced past what it took of it. */
static size_t write_now(struct rpc_conn *conn, uv_buf_t *bufs, size_t n)
{
    size_t done = 0;
    int rv;

    if (conn->inflight != 0)
        return 0;
    rv = uv_try_write((uv_stream_t *)&conn->tcp, bufs, (unsigned)n);
    if (rv <= 0)
        return 0; /* EAGAIN; any other error comes again from uv_write, as it did */
    conn->write_progress_ms = uv_now(conn->loop);
    for (size_t took = (size_t)rv; done < n && took >= bufs[done].len; done++)
        took -= bufs[done].len;
    if (done < n) {
        size_t took = (size_t)rv;
        for (size_t i = 0; i < done; i++)
            took -= bufs[i].len;
        bufs[done].base += took;
        bufs[done].len -= took;
    }
    return done;
}

/* A connection of small frames whose output is all written lets its copy buffer go: a hub
 * with thousands of store connections would otherwise hold a kilobyte each while they only
 * send window updates now and then. One that copies much (TLS, grown past COPYBUF_MIN)
 * keeps it. */
static void drop_idle_copybuf(struct rpc_conn *conn)
{
    if (conn->copybuf && conn->copybuf->refs == 1 && conn->copybuf->cap == COPYBUF_MIN) {
        rpc_wbuf_unref(conn->copybuf);
        conn->copybuf = NULL;
    }
}

/* Hands everything staged to the socket: what it takes now, the rest to one uv_write. */
int rpc_out__submit(struct rpc_conn *conn)
{
    struct rpc_write *w;
    uv_buf_t *bufs;
    size_t done, left = 0;
    int rv;

    if (conn->out_n == 0)
        return 0;
    w = malloc(sizeof(*w) + conn->out_n * (sizeof(struct rpc_seg) + sizeof(uv_buf_t)));
    if (!w)
        return -ENOMEM;
    w->conn = conn;
    w->n = conn->out_n;
    w->bytes = conn->staged;
    memcpy(w->segs, conn->out, conn->out_n * sizeof(struct rpc_seg));
    bufs = (uv_buf_t *)(w->segs + w->n);
    for (size_t i = 0; i < w->n; i++)
        bufs[i] =
            uv_buf_init((char *)w->segs[i].buf->data + w->segs[i].off, (unsigned)w->segs[i].len);
    conn->out_n = 0;
    done = write_now(conn, bufs, w->n);
    if (done == w->n) {
        for (size_t i = 0; i < w->n; i++)
            rpc_wbuf_unref(w->segs[i].buf);
        free(w);
        conn->staged = 0;
        drop_idle_copybuf(conn);
        return 0;
    }
    for (size_t i = done; i < w->n; i++)
        left += bufs[i].len;
    if (conn->inflight == 0)
        conn->write_progress_ms = uv_now(conn->loop); /* the wait for the peer starts now */
    w->bytes = left; /* the slices taken already are let go with the rest, in write_cb */
    conn->inflight += left;
    conn->staged = 0;
    rv = uv_write(&w->req, (uv_stream_t *)&conn->tcp, bufs + done, (unsigned)(w->n - done),
                  write_cb);
    if (rv < 0) {
        for (size_t i = 0; i < w->n; i++)
            rpc_wbuf_unref(w->segs[i].buf);
        conn->inflight -= w->bytes;
        free(w);
    }
    return rv;
}
