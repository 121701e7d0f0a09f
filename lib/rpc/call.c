/* The call: its send queue and data provider, and the one-time end of its life (on_done). What
 * it receives: recv.c. */
#include "rpc/internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/status.h"
#include "util/log.h"

#define SEND_CHUNK (16u << 10)

static void timer_cb(uv_timer_t *t);

struct rpc_call *rpc_call__new(enum rpc_side side, uv_loop_t *loop, size_t max_recv,
                               size_t send_high)
{
    struct rpc_call *call = calloc(1, sizeof(*call));

    if (!call)
        return NULL;
    call->side = side;
    /* Twice the largest message must fit a stream's window (rpc_call__fit_window). */
    call->max_recv = max_recv < RPC_MAX_MESSAGE_LIMIT ? max_recv : RPC_MAX_MESSAGE_LIMIT;
    call->send_high = send_high;
    rpc_frame_decoder_init(&call->dec, max_recv);
    uv_timer_init(loop, &call->timer);
    call->timer.data = call;
    return call;
}

static void call_free(uv_handle_t *h)
{
    free(h->data);
}

void rpc_call__maybe_free(struct rpc_call *call)
{
    if (!call->handler_done || !call->stream_closed || call->timer_closing)
        return;
    call->timer_closing = true;
    while (call->sendq_n > 0) {
        rpc_wbuf_unref(call->sendq[call->sendq_head].buf);
        call->sendq_head = (call->sendq_head + 1) % call->sendq_cap;
        call->sendq_n--;
    }
    free(call->sendq);
    rpc_call__held_free(call);
    rpc_frame_decoder_free(&call->dec);
    for (size_t i = 0; i < call->n_headers; i++) {
        free(call->headers[i].name);
        free(call->headers[i].value);
    }
    free(call->headers);
    for (size_t i = 0; i < call->n_req_md; i++) {
        free(call->req_md[i].name);
        free(call->req_md[i].value);
    }
    free(call->req_md);
    free(call->path);
    free(call->message);
    free(call->local_message);
    uv_timer_stop(&call->timer);
    uv_close((uv_handle_t *)&call->timer, call_free);
}

void rpc_call_set_cbs(struct rpc_call *call, const struct rpc_call_cbs *cbs, void *user)
{
    call->cbs = cbs;
    call->user = user;
}

const char *rpc_call_path(const struct rpc_call *call)
{
    return call->path ? call->path : "";
}

const char *rpc_call_peer(const struct rpc_call *call)
{
    return call->peer;
}

const char *rpc_call_header(const struct rpc_call *call, const char *name)
{
    for (size_t i = 0; i < call->n_headers; i++)
        if (strcmp(call->headers[i].name, name) == 0)
            return call->headers[i].value;
    return NULL;
}

int rpc_call__add_header(struct rpc_call *call, const uint8_t *name, size_t namelen,
                         const uint8_t *value, size_t valuelen)
{
    struct rpc_header *h = realloc(call->headers, (call->n_headers + 1) * sizeof(*h));

    if (!h)
        return -ENOMEM;
    call->headers = h;
    h = &call->headers[call->n_headers];
    h->name = strndup((const char *)name, namelen);
    h->value = strndup((const char *)value, valuelen);
    if (!h->name || !h->value) {
        free(h->name);
        free(h->value);
        return -ENOMEM;
    }
    call->n_headers++;
    return 0;
}

bool rpc_call__count_header(struct rpc_call *call, size_t limit, size_t namelen, size_t valuelen)
{
    call->header_bytes += namelen + valuelen + 32;
    return call->header_bytes <= limit;
}

/* protobuf-c 1.4 keeps an over-long tag of field number 0 ("80 00") as an unknown field, then
 * packs it as "00", which nobody reads back: a message holding one must not pass, or a peer
 * could make whatever we re-send it in (the hub's ClusterStatus) unreadable. Walks the
 * sub-messages too. */
static bool has_field_zero(const ProtobufCMessage *m, int depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;

    if (depth > 32)
        return true;
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return true;
    for (unsigned f = 0; f < d->n_fields; f++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[f];
        const char *at = (const char *)m + fd->offset;
        if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        /* A oneof member's storage is shared: only the one its case names holds a message. */
        if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)((const char *)m + fd->quantifier_offset) != fd->id)
            continue;
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)m + fd->quantifier_offset);
            ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)at;
            for (size_t i = 0; i < n; i++)
                if (v[i] && has_field_zero(v[i], depth + 1))
                    return true;
        } else {
            const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)at;
            if (sub && has_field_zero(sub, depth + 1))
                return true;
        }
    }
    return false;
}

ProtobufCMessage *rpc_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *msg, size_t len)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, msg);

    if (m && has_field_zero(m, 0)) {
        protobuf_c_message_free_unpacked(m, NULL);
        return NULL;
    }
    return m;
}

/* ---- ending ---- */

void rpc_call__set_local_status(struct rpc_call *call, int code, const char *message)
{
    if (call->local_code != 0)
        return;
    call->local_code = code;
    free(call->local_message);
    call->local_message = strdup(message ? message : "");
}

void rpc_call__done(struct rpc_call *call, int code, const char *message)
{
    char msg[96];

    if (call->handler_done)
        return;
    if (call->side == RPC_SIDE_CLIENT && code == RPC_OK && call->recv_count != 1 &&
        (call->shape == RPC_SHAPE_UNARY || call->shape == RPC_SHAPE_CLIENT_STREAM)) {
        snprintf(msg, sizeof(msg), "expected one response message, got %llu",
                 (unsigned long long)call->recv_count);
        code = RPC_UNIMPLEMENTED;
        message = msg;
    }
    call->handler_done = true;
    call->done_pending = false;
    uv_timer_stop(&call->timer);
    if (call->cbs && call->cbs->on_done)
        call->cbs->on_done(call, code, message ? message : "", call->user);
}

void rpc_call__end(struct rpc_call *call, int code, const char *message)
{
    if (call->handler_done)
        return;
    if (call->side == RPC_SIDE_CLIENT && rpc_call__held_pending(call) && !call->local_ended) {
        /* Messages that arrived before the status are still the caller's to read. */
        rpc_call__set_local_status(call, code, message);
        call->done_pending = true;
        if (!call->paused)
            uv_timer_start(&call->timer, timer_cb, 0, 0);
        return;
    }
    rpc_call__held_free(call);
    rpc_call__done(call, code, message);
}

void rpc_call__fail_async(struct rpc_call *call, int code, const char *message)
{
    rpc_call__set_local_status(call, code, message);
    call->stream_closed = true;
    call->done_pending = true;
    uv_timer_start(&call->timer, timer_cb, 0, 0);
}

static void kick(struct rpc_call *call)
{
    if (!call->conn || call->stream_closed)
        return;
    if (call->data_deferred && call->stream_id > 0) {
        call->data_deferred = false;
        nghttp2_session_resume_data(call->conn->session, call->stream_id);
    }
    rpc_conn__schedule(call->conn);
}

/* Ends the stream from our side with an RST_STREAM, or (no stream yet) from the loop. */
static void reset(struct rpc_call *call, int code, const char *message)
{
    rpc_call__set_local_status(call, code, message);
    call->local_ended = true;
    if (call->conn && call->stream_id > 0 && !call->stream_closed) {
        nghttp2_submit_rst_stream(call->conn->session, NGHTTP2_FLAG_NONE, call->stream_id,
                                  NGHTTP2_CANCEL);
        rpc_conn__schedule(call->conn);
    } else if (!call->stream_closed) {
        if (call->side == RPC_SIDE_CLIENT && call->leave_channel)
            call->leave_channel(call);
        rpc_call__fail_async(call, code, message);
    }
}

void rpc_call__stall(struct rpc_call *call, uint64_t stalled_ms)
{
    char msg[160];

    snprintf(msg, sizeof(msg),
             "the client read nothing for %llu.%us (%zu bytes waiting): call reset (stall timeout)",
             (unsigned long long)(stalled_ms / 1000), (unsigned)(stalled_ms % 1000 / 100),
             call->queued);
    NR_WARN("call stalled", "peer=%s path=%s queued=%zu reason=\"%s\"", call->peer,
            rpc_call_path(call), call->queued, msg);
    call->stalled = true;
    reset(call, RPC_DEADLINE_EXCEEDED, msg);
}

void rpc_call_cancel(struct rpc_call *call)
{
    if (call->handler_done || call->local_ended)
        return;
    if (call->done_pending) {
        /* The stream is over and its status waits behind held messages the caller now does not
         * want: end it from the loop, as CANCELLED. */
        call->local_ended = true;
        rpc_call__held_free(call);
        call->local_code = 0;
        rpc_call__set_local_status(call, RPC_CANCELLED, "cancelled");
        uv_timer_start(&call->timer, timer_cb, 0, 0);
        return;
    }
    reset(call, RPC_CANCELLED, "cancelled");
}

/* A receive-side failure: the server answers with the status, the client gives up the call. */
void rpc_call__fail_recv(struct rpc_call *call, int code, const char *message)
{
    call->recv_failed = true;
    call->local_ended = true;
    if (call->side == RPC_SIDE_SERVER && !call->local_closed)
        rpc_call_finish(call, code, message);
    else if (call->side == RPC_SIDE_CLIENT)
        reset(call, code, message);
}

static void deadline(struct rpc_call *call)
{
    if (call->handler_done || call->stream_closed)
        return;
    if (call->side == RPC_SIDE_SERVER && !call->headers_sent && !call->local_closed) {
        rpc_call__set_local_status(call, RPC_DEADLINE_EXCEEDED, "deadline exceeded");
        call->local_ended = true;
        rpc_call_finish(call, RPC_DEADLINE_EXCEEDED, "deadline exceeded");
        return;
    }
    reset(call, RPC_DEADLINE_EXCEEDED, "deadline exceeded");
}

static void timer_cb(uv_timer_t *t)
{
    struct rpc_call *call = t->data;

    if (!call->done_pending) {
        deadline(call);
        return;
    }
    rpc_call__deliver(call);
    if (call->done_pending && !rpc_call__held_pending(call)) {
        rpc_call__done(call, call->local_code, call->local_message);
        rpc_call__maybe_free(call);
    }
}

void rpc_call__wake(struct rpc_call *call)
{
    uv_timer_start(&call->timer, timer_cb, 0, 0);
}

void rpc_call__start_deadline(struct rpc_call *call)
{
    if (call->timeout_ns <= 0)
        return;
    uint64_t ms = (uint64_t)call->timeout_ns / 1000000 + (call->timeout_ns % 1000000 != 0);
    uv_timer_start(&call->timer, timer_cb, ms, 0);
}

/* ---- sending ---- */

/* Room for `more` slices in the send queue, so that pushing them cannot fail. */
static int sendq_room(struct rpc_call *call, size_t more)
{
    if (call->sendq_n + more > call->sendq_cap) {
        size_t cap = call->sendq_cap ? call->sendq_cap * 2 : 4;
        struct rpc_seg *q = malloc(cap * sizeof(*q));
        if (!q)
            return -ENOMEM;
        for (size_t i = 0; i < call->sendq_n; i++)
            q[i] = call->sendq[(call->sendq_head + i) % call->sendq_cap];
        free(call->sendq);
        call->sendq = q;
        call->sendq_cap = cap;
        call->sendq_head = 0;
    }
    return 0;
}

static int sendq_push(struct rpc_call *call, struct rpc_wbuf *buf, size_t off, size_t len)
{
    if (sendq_room(call, 1) != 0)
        return -ENOMEM;
    call->sendq[(call->sendq_head + call->sendq_n) % call->sendq_cap] =
        (struct rpc_seg){buf, off, len};
    call->sendq_n++;
    return 0;
}

/* Returns room for `need` bytes at the end of the send queue, counted as queued. */
static uint8_t *send_reserve(struct rpc_call *call, size_t need)
{
    if (call->sendq_n > 0) {
        struct rpc_seg *tail =
            &call->sendq[(call->sendq_head + call->sendq_n - 1) % call->sendq_cap];
        struct rpc_wbuf *b = tail->buf;
        if (tail->off + tail->len == b->len && b->cap - b->len >= need) {
            uint8_t *p = b->data + b->len;
            b->len += need;
            tail->len += need;
            call->queued += need;
            if (call->conn)
                call->conn->queued += need;
            return p;
        }
    }
    /* A call's first message gets a buffer of its own size (a client's one request: a hub has
     * thousands waiting to connect); later ones share SEND_CHUNK buffers. */
    size_t cap = need > SEND_CHUNK || !call->sent_any ? need : SEND_CHUNK;
    struct rpc_wbuf *b = rpc_wbuf__new(cap);

    call->sent_any = true;
    if (!b)
        return NULL;
    if (sendq_push(call, b, 0, need) != 0) {
        rpc_wbuf_unref(b);
        return NULL;
    }
    b->len = need;
    call->queued += need;
    if (call->conn)
        call->conn->queued += need;
    return b->data;
}

/* Checks the call can send a message of `len` bytes and reserves room for its prefix and the
 * first `copied` of them. Returns the payload's place, or NULL with *rv set. */
static uint8_t *send_begin(struct rpc_call *call, size_t copied, size_t len, int *rv)
{
    uint8_t *p;

    if (call->handler_done || call->local_closed || call->stream_closed || call->local_code != 0) {
        *rv = -EPIPE;
        return NULL;
    }
    if (len > UINT32_MAX) {
        *rv = -EMSGSIZE;
        return NULL;
    }
    if (call->queued == 0 && call->conn)
        call->send_progress_ms = uv_now(call->conn->loop); /* the stall clock starts now */
    p = send_reserve(call, RPC_FRAME_PREFIX + copied);
    if (!p) {
        *rv = -ENOMEM;
        return NULL;
    }
    rpc_frame_prefix(p, (uint32_t)len);
    return p + RPC_FRAME_PREFIX;
}

/* The message is queued: mark back-pressure, make sure headers and DATA get going. */
static void send_end(struct rpc_call *call)
{
    if (!rpc_call_writable(call))
        call->want_writable = true;
    if (call->side == RPC_SIDE_SERVER && !call->headers_sent && call->conn)
        rpc_call__server_submit(call);
    kick(call);
}

int rpc_call_send_raw(struct rpc_call *call, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};

    return rpc_call_send_ref(call, &iov, 1, NULL);
}

int rpc_call_send_ref(struct rpc_call *call, const struct iovec *head, int n_head,
                      struct rpc_wbuf *body)
{
    size_t copied = 0, len;
    int rv = 0;
    uint8_t *p;

    for (int i = 0; i < n_head; i++) {
        if (head[i].iov_len > SIZE_MAX - copied)
            return -EMSGSIZE;
        copied += head[i].iov_len;
    }
    len = copied + (body ? body->len : 0);
    if (len < copied)
        return -EMSGSIZE;
    /* The body's slice must find room after the head's, or the prefix would promise bytes
     * that never come. */
    if (body && sendq_room(call, 2) != 0)
        return -ENOMEM;
    p = send_begin(call, copied, len, &rv);
    if (!p)
        return rv;
    for (int i = 0; i < n_head; i++) {
        if (head[i].iov_len > 0)
            memcpy(p, head[i].iov_base, head[i].iov_len);
        p += head[i].iov_len;
    }
    if (body && body->len > 0) {
        body->refs++;
        (void)sendq_push(call, body, 0, body->len); /* cannot fail: room was made */
        call->queued += body->len;
        if (call->conn)
            call->conn->queued += body->len;
    }
    send_end(call);
    return 0;
}

int rpc_call_send(struct rpc_call *call, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    int rv = 0;
    uint8_t *p = send_begin(call, len, len, &rv);

    if (!p)
        return rv;
    protobuf_c_message_pack(msg, p);
    send_end(call);
    return 0;
}

bool rpc_call_writable(const struct rpc_call *call)
{
    const struct rpc_conn *conn = call->conn;

    return call->queued < call->send_high && (!conn || conn->queued < conn->limits.conn_send_high);
}

void rpc_call_set_send_high(struct rpc_call *call, size_t bytes)
{
    call->send_high = bytes;
}

void rpc_call__notify_writable(struct rpc_call *call)
{
    if (!call->want_writable || call->queued > call->send_high / 2 || call->handler_done ||
        (call->conn && call->conn->queued >= call->conn->limits.conn_send_high))
        return;
    call->want_writable = false;
    if (call->cbs && call->cbs->on_writable)
        call->cbs->on_writable(call, call->user);
}

static ssize_t data_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                            size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                            void *user_data)
{
    struct rpc_call *call = source->ptr;

    if (call->queued > 0) {
        *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
        return (ssize_t)(call->queued < length ? call->queued : length);
    }
    if (!call->local_closed) {
        call->data_deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    call->eof_sent = true;
    if (call->side == RPC_SIDE_SERVER) {
        nghttp2_nv nva[2];
        char code[12], msg[1024];
        size_t n = rpc_call__trailers(call, nva, code, msg, sizeof(msg));
        *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        if (nghttp2_submit_trailer(session, stream_id, nva, n) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
}

nghttp2_data_provider rpc_call__data_provider(struct rpc_call *call)
{
    nghttp2_data_provider prd;

    prd.source.ptr = call;
    prd.read_callback = data_read_cb;
    return prd;
}

/* Values are copied: they often live on the stack, and nghttp2 packs the frame later. */
#define NV(n, v, vl)                                                                      \
    {                                                                                     \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NO_COPY_NAME \
    }

size_t rpc_call__trailers(struct rpc_call *call, nghttp2_nv *nva, char *code_buf, char *msg_buf,
                          size_t msg_len)
{
    size_t n = 0;
    int len = snprintf(code_buf, 12, "%d", call->code);

    nva[n++] = (nghttp2_nv)NV("grpc-status", code_buf, (size_t)len);
    if (call->message && call->message[0]) {
        size_t full = rpc_percent_encode(call->message, msg_buf, msg_len);
        size_t used = full < msg_len ? full : strlen(msg_buf);
        nva[n++] = (nghttp2_nv)NV("grpc-message", msg_buf, used);
    }
    return n;
}

int rpc_call__server_submit(struct rpc_call *call)
{
    nghttp2_session *session = call->conn->session;
    static const char ct[] = "application/grpc";
    nghttp2_nv nva[4] = {NV(":status", "200", 3), NV("content-type", ct, sizeof(ct) - 1)};
    char code[12], msg[1024];
    int rv;

    call->headers_sent = true;
    if (call->local_closed && call->queued == 0) {
        /* Trailers-Only: the status in the only HEADERS frame. */
        size_t n = rpc_call__trailers(call, nva + 2, code, msg, sizeof(msg));
        call->eof_sent = true;
        rv = nghttp2_submit_response(session, call->stream_id, nva, 2 + n, NULL);
    } else {
        nghttp2_data_provider prd = rpc_call__data_provider(call);
        rv = nghttp2_submit_response(session, call->stream_id, nva, 2, &prd);
    }
    rpc_conn__schedule(call->conn);
    return rv == 0 ? 0 : -EPROTO;
}

int rpc_call_finish(struct rpc_call *call, int code, const char *message)
{
    if (call->side != RPC_SIDE_SERVER || call->local_closed || call->handler_done ||
        call->stream_closed)
        return -EPIPE;
    call->local_closed = true;
    call->code = code;
    free(call->message);
    call->message = message ? strdup(message) : NULL;
    if (!call->conn)
        return 0;
    if (!call->headers_sent)
        return rpc_call__server_submit(call);
    kick(call);
    return 0;
}

int rpc_call_reply(struct rpc_call *call, const ProtobufCMessage *msg)
{
    int rv = rpc_call_send(call, msg);

    return rv != 0 ? rv : rpc_call_finish(call, RPC_OK, NULL);
}

int rpc_call_close_send(struct rpc_call *call)
{
    if (call->side != RPC_SIDE_CLIENT || call->local_closed || call->handler_done)
        return -EPIPE;
    call->local_closed = true;
    kick(call);
    return 0;
}
