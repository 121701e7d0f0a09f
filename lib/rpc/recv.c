/* What a call receives: DATA decoded into messages for its handler, bytes held while the handler
 * is paused, and the stream's window given back only as messages are read. */
#include "rpc/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/status.h"

/* Input is still wanted: the handler is there and nothing ended the receiving side. */
bool rpc_call__wants_input(const struct rpc_call *call)
{
    return !call->handler_done && !call->recv_failed && !call->local_ended;
}

/* Received bytes the paused handler has not taken yet. */
bool rpc_call__held_pending(const struct rpc_call *call)
{
    return call->held_off < call->held_len;
}

void rpc_call__held_free(struct rpc_call *call)
{
    free(call->held);
    call->held = NULL;
    call->held_len = call->held_off = call->held_cap = 0;
}

/* Gives back the connection window held while the handler was paused. */
static void give_back_connection(struct rpc_call *call)
{
    if (call->conn_held == 0 || !call->conn || !call->conn->session)
        return;
    nghttp2_session_consume_connection(call->conn->session, call->conn_held);
    call->conn_held = 0;
    rpc_conn__schedule(call->conn);
}

/* Gives the stream's flow-control window back for the bytes of whole, delivered messages. The
 * connection's window was given back on arrival (on_data) unless the handler was paused, so one
 * stream's unfinished messages never starve the others; what they may hold across a connection
 * is bounded by limits.max_unfinished instead (track_unfinished). What paused handlers hold is
 * bounded by the connection window. */
static void give_back(struct rpc_call *call)
{
    /* With a window of its own (recv_window) a call takes a message larger than its window: the
     * bytes of the one arriving are given back too, as the call is not paused here. */
    size_t pending = call->recv_window ? 0 : rpc_frame_decoder_pending(&call->dec);
    size_t held = call->held_len - call->held_off;
    size_t keep = pending + held;
    size_t n;

    if (!rpc_call__wants_input(call)) {
        keep = 0; /* nothing is gathered any more */
        give_back_connection(call);
    } else if (call->conn_held > held && call->conn && call->conn->session) {
        /* A paused handler took some of what it held: the connection window of those goes back,
         * what it still holds keeps its share. */
        nghttp2_session_consume_connection(call->conn->session, call->conn_held - held);
        call->conn_held = held;
        rpc_conn__schedule(call->conn);
    }
    if (call->unconsumed <= keep || !call->conn || call->stream_closed || call->stream_id <= 0)
        return;
    n = call->unconsumed - keep;
    nghttp2_session_consume_stream(call->conn->session, call->stream_id, n);
    call->unconsumed = keep;
    rpc_conn__schedule(call->conn);
}

/* Keeps the connection's count of bytes in unfinished messages current. */
static void track_unfinished(struct rpc_call *call)
{
    size_t now = rpc_call__wants_input(call) && !call->stream_closed
                     ? rpc_frame_decoder_pending(&call->dec)
                     : 0;

    if (call->conn)
        call->conn->unfinished = call->conn->unfinished - call->unfinished + now;
    call->unfinished = now;
}

/* Between messages, keeps the decoder's buffer for the next one while the connection's kept
 * buffers stay within limits.max_kept; frees it otherwise, and always once input is over. */
static void keep_or_trim(struct rpc_call *call)
{
    struct rpc_conn *conn = call->conn;
    size_t cap = call->dec.buf_cap;

    if (!rpc_call__wants_input(call) || call->stream_closed) {
        rpc_frame_decoder_free(&call->dec);
        cap = 0;
    } else if (rpc_frame_decoder_pending(&call->dec) > 0) {
        return; /* in use: counted as unfinished */
    } else if (!conn || conn->kept - call->kept + cap > conn->limits.max_kept) {
        cap = rpc_frame_decoder_trim(&call->dec);
    }
    if (conn)
        conn->kept = conn->kept - call->kept + cap;
    call->kept = cap;
}

void rpc_call__fit_window(struct rpc_call *call)
{
    /* The bytes of an unfinished message are not given back to the stream (see give_back), and
     * nghttp2 announces consumed bytes only once they reach half the window: the window must
     * hold twice the largest message for the sender never to stall. A call with a window of its
     * own gives those bytes back and takes that window. */
    size_t need = call->recv_window ? call->recv_window : 2 * (call->max_recv + RPC_FRAME_PREFIX);

    if (need > INT32_MAX)
        need = INT32_MAX;
    if (need > call->conn->limits.stream_window)
        nghttp2_session_set_local_window_size(call->conn->session, NGHTTP2_FLAG_NONE,
                                              call->stream_id, (int32_t)need);
}

void rpc_call__stream_closed(struct rpc_call *call)
{
    give_back_connection(call);
    call->unconsumed = 0;
    call->stream_closed = true;
    track_unfinished(call);
    keep_or_trim(call);
}

static bool single_request(const struct rpc_call *call)
{
    return call->side == RPC_SIDE_SERVER &&
           (call->shape == RPC_SHAPE_UNARY || call->shape == RPC_SHAPE_SERVER_STREAM);
}

/* Hands one message to the handler. Returns 1 when the handler paused (stop decoding), else 0. */
static int on_msg(void *arg, const uint8_t *msg, size_t len)
{
    struct rpc_call *call = arg;

    if (!rpc_call__wants_input(call) || (call->side == RPC_SIDE_SERVER && call->local_closed))
        return 0;
    if (single_request(call) && call->recv_count >= 1) {
        rpc_call__fail_recv(call, RPC_UNIMPLEMENTED,
                            "more than one request message for a unary request");
        return 1;
    }
    call->recv_count++;
    if (call->cbs && call->cbs->on_message)
        call->cbs->on_message(call, msg, len, call->user);
    return call->paused || !rpc_call__wants_input(call) ? 1 : 0;
}

/* Decodes bytes and delivers their messages until the handler pauses. Returns how many bytes
 * were taken; the rest must wait for resume. */
static size_t decode(struct rpc_call *call, const uint8_t *data, size_t len)
{
    bool outer = !call->decoding;
    int rv;
    char msg[128];

    call->decoding = true;
    rv = rpc_frame_decoder_feed(&call->dec, data, len, on_msg, call);
    if (outer)
        call->decoding = false;

    if (rv == 0 || rv == 1)
        return rv == 0 ? len : call->dec.last_used;
    if (rv == -EMSGSIZE) {
        snprintf(msg, sizeof(msg), "received message larger than max (%u vs. %zu)",
                 call->dec.msg_len, call->dec.max_message);
        rpc_call__fail_recv(call, RPC_RESOURCE_EXHAUSTED, msg);
    } else if (rv == -EPROTO) {
        rpc_call__fail_recv(call, RPC_INTERNAL, "compressed message without grpc-encoding");
    } else {
        rpc_call__fail_recv(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    return len;
}

/* Keeps bytes the paused handler is not ready for, as they came off the wire: what a peer can
 * make us hold is what its flow-control windows allow, byte for byte. */
static int held_append(struct rpc_call *call, const uint8_t *data, size_t len)
{
    if (call->held_off == call->held_len)
        call->held_off = call->held_len = 0;
    if (call->held_off > 0 && call->held_len + len > call->held_cap) {
        /* What was taken from the front makes room: a handler that never drains what it holds
         * (its peer sends while it takes) must not grow the buffer past its window. */
        memmove(call->held, call->held + call->held_off, call->held_len - call->held_off);
        call->held_len -= call->held_off;
        call->held_off = 0;
    }
    if (call->held_len + len > call->held_cap) {
        size_t cap = call->held_cap ? call->held_cap : 1024;
        while (cap < call->held_len + len)
            cap *= 2;
        uint8_t *p = realloc(call->held, cap);
        if (!p)
            return -ENOMEM;
        call->held = p;
        call->held_cap = cap;
    }
    memcpy(call->held + call->held_len, data, len);
    call->held_len += len;
    return 0;
}

static void after_input(struct rpc_call *call)
{
    track_unfinished(call);
    if (call->conn && call->unfinished > 0 &&
        call->conn->unfinished > call->conn->limits.max_unfinished) {
        char msg[128];
        snprintf(msg, sizeof(msg), "more than %zu MiB of unfinished messages on this connection",
                 call->conn->limits.max_unfinished >> 20);
        rpc_call__fail_recv(call, RPC_RESOURCE_EXHAUSTED, msg);
        track_unfinished(call);
    }
    keep_or_trim(call);
    if (!rpc_call__wants_input(call))
        rpc_call__held_free(call);
    /* Paused or not, the bytes of delivered messages go back to the windows at once: a handler
     * that takes one message at a time would otherwise reopen the window only once it had taken
     * all it held, and its peer could never send ahead. */
    give_back(call);
}

void rpc_call__on_data(struct rpc_call *call, const uint8_t *data, size_t len)
{
    bool hold = rpc_call__wants_input(call) && (call->paused || rpc_call__held_pending(call));

    if (hold)
        call->conn_held += len; /* given back when the paused handler takes its messages */
    else if (call->conn && call->conn->session)
        nghttp2_session_consume_connection(call->conn->session, len);
    call->unconsumed += len;
    if (hold) {
        if (held_append(call, data, len) != 0)
            rpc_call__fail_recv(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
    } else if (rpc_call__wants_input(call)) {
        size_t used = decode(call, data, len);
        if (used < len && rpc_call__wants_input(call) &&
            held_append(call, data + used, len - used) != 0)
            rpc_call__fail_recv(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    after_input(call);
}

/* At the end of the peer's stream, once everything it sent was decoded: a message cut short is
 * an error, else the handler hears of the half-close. */
static void check_end(struct rpc_call *call)
{
    if (!call->remote_closed || call->half_close_told || rpc_call__held_pending(call) ||
        call->paused || !rpc_call__wants_input(call))
        return;
    call->half_close_told = true;
    if (rpc_frame_decoder_partial(&call->dec)) {
        rpc_call__fail_recv(call, RPC_INTERNAL, "stream ended in the middle of a message");
        return;
    }
    if (single_request(call) && call->recv_count == 0 && !call->local_closed) {
        rpc_call_finish(call, RPC_UNIMPLEMENTED, "missing request message for a unary request");
        return;
    }
    if (call->cbs && call->cbs->on_half_close)
        call->cbs->on_half_close(call, call->user);
}

void rpc_call__on_remote_close(struct rpc_call *call)
{
    if (call->remote_closed)
        return;
    call->remote_closed = true;
    check_end(call);
}

void rpc_call__deliver(struct rpc_call *call)
{
    call->deliver_pending = false;
    while (!call->paused && rpc_call__held_pending(call) && rpc_call__wants_input(call)) {
        size_t n = call->held_len - call->held_off;
        call->held_off += decode(call, call->held + call->held_off, n);
    }
    after_input(call);
    check_end(call);
}

void rpc_call_pause_recv(struct rpc_call *call)
{
    call->paused = true;
}

void rpc_call_resume_recv(struct rpc_call *call)
{
    if (!call->paused)
        return;
    call->paused = false;
    if (call->handler_done)
        return;
    if (call->conn && !call->stream_closed) {
        call->deliver_pending = true;
        rpc_conn__schedule(call->conn);
    } else if (call->done_pending) {
        rpc_call__wake(call);
    }
}

void rpc_call_resume_recv_now(struct rpc_call *call)
{
    rpc_call_resume_recv(call);
    /* Not from inside this call's own delivery (its decoding goes on by itself once unpaused)
     * nor from inside nghttp2 on its connection. */
    if (call->deliver_pending && !call->decoding && call->conn && !call->conn->in_nghttp2 &&
        !call->conn->closing)
        rpc_call__deliver(call);
}
