/* A connection's nghttp2 session: the callbacks both sides share (frames to and from the calls,
 * DATA sent as slices of the calls' buffers), and the session's options and first SETTINGS from
 * the connection's limits. */
#include "rpc/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/status.h"
#include "util/error.h"
#include "util/log.h"

/* ---- nghttp2 callbacks shared by both sides ---- */

static ssize_t send_cb(nghttp2_session *session, const uint8_t *data, size_t len, int flags,
                       void *user_data)
{
    struct rpc_conn *conn = user_data;

    if (rpc_out__full(conn))
        return NGHTTP2_ERR_WOULDBLOCK;
    if (rpc_out__copy(conn, data, len) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)len;
}

static int send_data_cb(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *source, void *user_data)
{
    struct rpc_conn *conn = user_data;
    struct rpc_call *call = source->ptr;
    static const uint8_t zeros[256];

    if (rpc_out__full(conn))
        return NGHTTP2_ERR_WOULDBLOCK;
    if (rpc_out__copy(conn, framehd, 9) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (frame->data.padlen > 0) {
        uint8_t padlen = (uint8_t)(frame->data.padlen - 1);
        if (rpc_out__copy(conn, &padlen, 1) != 0)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    while (length > 0) {
        struct rpc_seg *seg = &call->sendq[call->sendq_head];
        size_t n = seg->len < length ? seg->len : length;
        if (rpc_out__ref(conn, seg->buf, seg->off, n) != 0)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        seg->off += n;
        seg->len -= n;
        length -= n;
        call->queued -= n;
        conn->queued -= n;
        call->send_progress_ms = uv_now(conn->loop);
        if (seg->len == 0) {
            rpc_wbuf_unref(seg->buf);
            seg->buf = NULL;
            call->sendq_head = (call->sendq_head + 1) % call->sendq_cap;
            call->sendq_n--;
        }
    }
    if (frame->data.padlen > 1 && rpc_out__copy(conn, zeros, frame->data.padlen - 1) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static ssize_t read_length_cb(nghttp2_session *session, uint8_t frame_type, int32_t stream_id,
                              int32_t session_window, int32_t stream_window,
                              uint32_t max_frame_size, void *user_data)
{
    struct rpc_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
    int64_t n = session_window < stream_window ? session_window : stream_window;

    if (n > (int64_t)max_frame_size)
        n = max_frame_size;
    /* No larger than what is queued (nothing: the empty frame that ends the stream): nghttp2
     * sizes its frame buffer to this, a 1 MiB buffer per connection for a 30-byte request
     * otherwise. */
    if (call && frame_type == NGHTTP2_DATA && (size_t)n > call->queued)
        n = (int64_t)call->queued;
    return n > 0 ? (ssize_t)n : 1;
}

static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                              const uint8_t *data, size_t len, void *user_data)
{
    struct rpc_call *call = nghttp2_session_get_stream_user_data(session, stream_id);

    if (!call || call->stream_closed) {
        /* Nobody reads it: give the window back at once. */
        nghttp2_session_consume(session, stream_id, len);
        return 0;
    }
    rpc_call__on_data(call, data, len);
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct rpc_conn *conn = user_data;
    struct rpc_call *call;
    int rv;

    if (frame->hd.type == NGHTTP2_GOAWAY) {
        conn->goaway_received = true;
        if (conn->ops->on_goaway)
            conn->ops->on_goaway(conn);
        return 0;
    }
    if (frame->hd.type == NGHTTP2_SETTINGS) {
        if (frame->hd.flags & NGHTTP2_FLAG_ACK)
            conn->settings_acked = true;
        else
            conn->settings_received = true;
        if (conn->ops->on_settings)
            conn->ops->on_settings(conn);
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!call)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS) {
        rv = conn->ops->on_headers(conn, call, frame);
        if (rv != 0)
            return rv;
    }
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        rpc_call__on_remote_close(call);
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct rpc_conn *conn = user_data;
    struct rpc_call *call;

    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!call)
        return 0;
    if (!conn->is_server) {
        /* The stream exists only once its HEADERS are out: now its window can be widened. */
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST)
            rpc_call__fit_window(call);
        return 0;
    }
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    /* PROTOCOL-HTTP2: a server that ends its side before the client did resets the stream with
     * NO_ERROR, so the client stops sending into a stream nobody reads. */
    call->trailers_sent = true;
    if (!call->remote_closed)
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    struct rpc_conn *conn = user_data;
    struct rpc_call *call = nghttp2_session_get_stream_user_data(session, stream_id);

    if (!call || call->stream_closed)
        return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    rpc_call__stream_closed(call);
    rpc_conn__remove_call(conn, call);
    conn->ops->on_stream_close(conn, call, error_code);
    rpc_call__maybe_free(call);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    struct rpc_conn *conn = user_data;
    struct rpc_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);

    if (!call)
        return 0;
    if (!rpc_call__count_header(call, conn->limits.max_header_list, namelen, valuelen)) {
        if (!conn->is_server)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        /* Decoded (HPACK's state depends on it) but not kept: dispatch answers with a status. */
        call->headers_overflow = true;
        return 0;
    }
    if (call->headers_overflow)
        return 0;
    return conn->ops->on_header(call, name, namelen, value, valuelen) == 0
               ? 0
               : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

static int on_error(nghttp2_session *session, int lib_error_code, const char *msg, size_t len,
                    void *user_data)
{
    struct rpc_conn *conn = user_data;

    NR_DEBUG("http2 error", "peer=%s error=\"%.*s\"", conn->peer, (int)len, msg);
    return 0;
}

/* ---- the session ---- */

int rpc_conn__session_new(struct rpc_conn *conn)
{
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    const struct rpc_limits *l = &conn->limits;
    int rv;

    if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0) {
        rv = -ENOMEM;
        goto out;
    }
    nghttp2_session_callbacks_set_send_callback(cbs, send_cb);
    nghttp2_session_callbacks_set_send_data_callback(cbs, send_data_cb);
    nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, read_length_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_error_callback2(cbs, on_error);
    if (conn->ops->setup_callbacks)
        conn->ops->setup_callbacks(cbs);

    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_no_closed_streams(opt, 1);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, l->header_table);
#ifdef HAVE_NGHTTP2_STREAM_RESET_RATE_LIMIT
    /* CVE-2023-44487 (rapid reset): a burst of 1000 resets, then 33 a second. */
    nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
#endif
#ifdef HAVE_NGHTTP2_MAX_CONTINUATIONS
    /* CVE-2024-28182: a header block may not be spread over endless CONTINUATION frames. */
    nghttp2_option_set_max_continuations(opt, 8);
#endif
    rv = conn->is_server
             ? nghttp2_session_server_new3(&conn->session, cbs, conn, opt, rpc_mem__nghttp2())
             : nghttp2_session_client_new3(&conn->session, cbs, conn, opt, rpc_mem__nghttp2());
    if (rv != 0) {
        rv = -ENOMEM;
        goto out;
    }
    nghttp2_settings_entry iv[6] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, l->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, l->stream_window},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, l->max_frame_size},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, l->max_header_list},
    };
    size_t n = 4;

    if (!conn->is_server) /* a server says nothing of push */
        iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
    if (l->header_table != 4096) /* the table we decode with, when not HTTP/2's default */
        iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, l->header_table};
    rv = nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, iv, n);
    if (rv == 0)
        rv = nghttp2_session_set_local_window_size(conn->session, NGHTTP2_FLAG_NONE, 0,
                                                   (int32_t)l->conn_window);
    if (rv != 0)
        rv = NR_EPROTO_H2;
out:
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    return rv;
}
