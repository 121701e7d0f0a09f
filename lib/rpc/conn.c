/* One HTTP/2 connection on libuv: bytes from the socket (through OpenSSL when TLS is on: the read
 * buffer as a read-only BIO in, a memory BIO out) into nghttp2 (its session: session.c), nghttp2's
 * frames out through output.c, and the connection's life from start to close: timeouts, lingering,
 * closing. */
#include "rpc/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/status.h"
#include "rpc/tls.h"
#include "util/error.h"
#include "util/log.h"

#define RBUF_SIZE          (256u << 10)
#define TLSBUF_SIZE        (64u << 10)
#define OUTBOUND_ITEMS_MAX 1024
#define FLUSH_ROUNDS       8 /* of nghttp2 output the socket takes at once, in one turn */

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void handle_closed(uv_handle_t *h);
static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* ---- the connection ---- */

struct rpc_conn *rpc_conn__new(uv_loop_t *loop, bool is_server, const struct rpc_limits *limits,
                               const struct rpc_conn_ops *ops, void *owner)
{
    struct rpc_conn *conn = calloc(1, sizeof(*conn));

    if (!conn)
        return NULL;
    conn->loop = loop;
    conn->is_server = is_server;
    conn->limits = *limits;
    conn->ops = ops;
    conn->owner = owner;
    if (uv_tcp_init(loop, &conn->tcp) != 0) {
        free(conn);
        return NULL;
    }
    uv_idle_init(loop, &conn->idle);
    uv_timer_init(loop, &conn->timer);
    conn->tcp.data = conn;
    conn->idle.data = conn;
    conn->timer.data = conn;
    conn->handles_open = 3;
    return conn;
}

/* One read buffer per thread, shared by every connection of its loops: read_cb hands all it
 * read to nghttp2 (or OpenSSL) before it returns, so the buffer is free again by the next
 * read of any connection. A buffer per connection cost its pages for each of a hub's
 * thousand store connections. */
static _Thread_local uint8_t *shared_rbuf;
static _Thread_local uint8_t *shared_tlsbuf; /* the same for what TLS decrypts (tls_read) */

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    if (!shared_rbuf)
        shared_rbuf = malloc(RBUF_SIZE);
    *buf = uv_buf_init((char *)shared_rbuf, shared_rbuf ? RBUF_SIZE : 0);
}

static void close_deferred(struct rpc_conn *conn)
{
    if (conn->close_deferred && !conn->in_nghttp2) {
        conn->close_deferred = false;
        rpc_conn__close(conn, conn->deferred_err, conn->deferred_code, conn->why);
    }
}

/* Queues a GOAWAY (unless nghttp2 already has one) and stages it for the socket, for a
 * connection about to close. */
static void goaway_now(struct rpc_conn *conn, uint32_t code)
{
    nghttp2_session_terminate_session(conn->session, code);
    conn->in_nghttp2 = true;
    nghttp2_session_send(conn->session);
    conn->in_nghttp2 = false;
}

/* Feeds plaintext HTTP/2 bytes to nghttp2. Returns 0 or closes the connection and returns < 0. */
static int feed(struct rpc_conn *conn, const uint8_t *data, size_t len)
{
    ssize_t rv;

    conn->in_nghttp2 = true;
    rv = nghttp2_session_mem_recv(conn->session, data, len);
    conn->in_nghttp2 = false;
    close_deferred(conn);
    if (rv < 0) {
        const char *why = rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC ? "not an HTTP/2 client preface"
                          : rv == NGHTTP2_ERR_FLOODED        ? "flooded with control frames"
                                                             : nghttp2_strerror((int)rv);
        uint32_t code = NGHTTP2_PROTOCOL_ERROR;
#ifdef HAVE_NGHTTP2_MAX_CONTINUATIONS
        if (rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
            why = "too many CONTINUATION frames";
            code = NGHTTP2_ENHANCE_YOUR_CALM;
        }
#endif
        NR_INFO("closing connection", "peer=%s reason=\"%s\"", conn->peer, why);
        /* Tell an HTTP/2 peer why with a GOAWAY; not one that does not speak it, nor one that
         * reads nothing (a flood). */
        if (rv != NGHTTP2_ERR_BAD_CLIENT_MAGIC && rv != NGHTTP2_ERR_FLOODED)
            goaway_now(conn, code);
        if (rv == NGHTTP2_ERR_FLOODED)
            conn->peer_gone = true; /* it reads nothing: no linger for its sake */
        rpc_conn__close(conn, NR_EPROTO_H2, conn->is_server ? RPC_CANCELLED : RPC_UNAVAILABLE, why);
        return -1;
    }
    return conn->closing ? -1 : 0;
}

static void tls_fail(struct rpc_conn *conn, const char *what)
{
    char why[160], detail[160];
    long vr = SSL_get_verify_result(conn->ssl);

    if (vr != X509_V_OK)
        snprintf(detail, sizeof(detail), "%s", X509_verify_cert_error_string(vr));
    else
        rpc_tls__error_text(detail, sizeof(detail));
    ERR_clear_error();
    snprintf(why, sizeof(why), "%s: %s", what, detail);
    NR_INFO("tls failed", "peer=%s reason=\"%s\"", conn->peer, why);
    rpc_out__tls_drain(conn); /* the alert, if any */
    rpc_out__submit(conn);
    rpc_conn__close(conn, NR_ETLS, RPC_UNAVAILABLE, why);
}

static void become_ready(struct rpc_conn *conn)
{
    conn->ready = true;
    if (conn->ops->on_ready)
        conn->ops->on_ready(conn);
}

/* Advances the handshake; returns 0 while it goes on or once done, -1 when it failed. */
static int tls_handshake(struct rpc_conn *conn)
{
    int r;

    ERR_clear_error();
    r = SSL_do_handshake(conn->ssl);

    if (rpc_out__tls_drain(conn) != 0 || rpc_out__submit(conn) != 0) {
        rpc_conn__close(conn, -ENOMEM, RPC_UNAVAILABLE, "out of memory");
        return -1;
    }
    if (r != 1) {
        int e = SSL_get_error(conn->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        tls_fail(conn, "TLS handshake failed");
        return -1;
    }
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(conn->ssl, &alpn, &alpn_len);
    if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
        rpc_conn__close(conn, NR_ETLS, RPC_UNAVAILABLE, "peer did not negotiate h2 (ALPN)");
        return -1;
    }
    if (!conn->is_server)
        rpc_tls__count_handshake(conn->ssl);
    /* The handshake's flights (certificates: a few KiB) grew the output BIO, drained now; a
     * memory BIO keeps its size, and a hub keeps a thousand of them: it starts over. */
    BIO *out = BIO_new(BIO_s_mem());
    if (out) {
        BIO_set_mem_eof_return(out, -1);
        SSL_set0_wbio(conn->ssl, out); /* (frees the one before) */
        conn->wbio = out;
    }
    become_ready(conn);
    return conn->closing ? -1 : 0;
}

static void tls_read(struct rpc_conn *conn, const uint8_t *data, size_t len)
{
    /* OpenSSL reads the bytes where they are, from a read-only BIO over them, and takes them
     * all before this returns (what is left of a record waits in its own buffer, which
     * SSL_MODE_RELEASE_BUFFERS frees once empty). A memory BIO kept per connection grew to the
     * largest read and stayed that size: 46 KiB on each of a hub's store connections. */
    BIO *in = BIO_new_mem_buf(data, (int)len);

    if (!in) {
        rpc_conn__close(conn, -ENOMEM, RPC_UNAVAILABLE, "out of memory");
        return;
    }
    BIO_set_mem_eof_return(in, -1); /* drained: "read again later", not the end */
    SSL_set0_rbio(conn->ssl, in);   /* (frees the one before) */
    conn->rbio = in;
    if (!conn->ready && tls_handshake(conn) != 0)
        return;
    if (!conn->ready)
        return;
    /* Decrypted bytes go to nghttp2 at once, like the read buffer's: one buffer per thread. */
    if (!shared_tlsbuf && !(shared_tlsbuf = malloc(TLSBUF_SIZE))) {
        rpc_conn__close(conn, -ENOMEM, RPC_UNAVAILABLE, "out of memory");
        return;
    }
    for (;;) {
        ERR_clear_error();
        int r = SSL_read(conn->ssl, shared_tlsbuf, TLSBUF_SIZE);
        if (r > 0) {
            if (feed(conn, shared_tlsbuf, (size_t)r) != 0)
                return;
            continue;
        }
        int e = SSL_get_error(conn->ssl, r);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            rpc_conn__close(conn, UV_EOF, conn->is_server ? RPC_CANCELLED : RPC_UNAVAILABLE,
                            "connection closed by peer");
            return;
        }
        tls_fail(conn, "TLS read failed");
        return;
    }
    if (rpc_out__tls_drain(conn) != 0)
        rpc_conn__close(conn, -ENOMEM, RPC_UNAVAILABLE, "out of memory");
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct rpc_conn *conn = stream->data;

    if (conn->closing || nread == 0)
        return;
    if (nread < 0) {
        conn->peer_gone = true;
        rpc_conn__close(conn, (int)nread, conn->is_server ? RPC_CANCELLED : RPC_UNAVAILABLE,
                        nread == UV_EOF ? "connection closed by peer" : uv_strerror((int)nread));
        return;
    }
    if (conn->ssl)
        tls_read(conn, (const uint8_t *)buf->base, (size_t)nread);
    else if (feed(conn, (const uint8_t *)buf->base, (size_t)nread) != 0)
        return;
    if (!conn->closing)
        rpc_conn__flush(conn);
}

/* Stops reading while the peer is not reading our output and nghttp2 keeps queueing replies to
 * what it sends (RST_STREAMs for refused streams, say): without this a peer that sends and
 * never reads makes us queue without bound. DATA is bounded by flow control and is not counted,
 * so two peers streaming bulk data at each other do not both stop. */
static void read_pace(struct rpc_conn *conn)
{
    bool backlog = rpc_out__full(conn) &&
                   nghttp2_session_get_outbound_queue_size(conn->session) > OUTBOUND_ITEMS_MAX;

    if (backlog && !conn->read_paused) {
        conn->read_paused = true;
        uv_read_stop((uv_stream_t *)&conn->tcp);
    } else if (!backlog && conn->read_paused) {
        conn->read_paused = false;
        uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb, read_cb);
    }
}

void rpc_conn__flush(struct rpc_conn *conn)
{
    int rv;

    if (conn->closing || !conn->ready || conn->in_nghttp2)
        return;
    for (int round = 0;; round++) {
        conn->in_nghttp2 = true;
        rv = nghttp2_session_send(conn->session);
        conn->in_nghttp2 = false;
        close_deferred(conn);
        if (conn->closing)
            return;
        if (rv != 0) {
            rpc_conn__close(conn, NR_EPROTO_H2, conn->is_server ? RPC_CANCELLED : RPC_UNAVAILABLE,
                            nghttp2_strerror(rv));
            return;
        }
        bool was_full = rpc_out__full(conn);
        rv = rpc_out__submit(conn);
        if (rv != 0) {
            rpc_conn__close(conn, rv, conn->is_server ? RPC_CANCELLED : RPC_UNAVAILABLE,
                            uv_strerror(rv));
            return;
        }
        /* The socket took everything at once (no write_cb will come back here) while nghttp2
         * had more than the output holds: go on, a few rounds in this turn, the rest next. */
        if (!was_full || conn->inflight != 0 || !nghttp2_session_want_write(conn->session))
            break;
        if (round == FLUSH_ROUNDS) {
            rpc_conn__schedule(conn);
            break;
        }
    }
    for (struct rpc_call *c = conn->calls; c && !conn->closing; c = c->next)
        rpc_call__notify_writable(c);
    if (conn->closing)
        return; /* a handler closed its server or channel */
    read_pace(conn);
    if (!nghttp2_session_want_read(conn->session) && !nghttp2_session_want_write(conn->session) &&
        conn->inflight == 0)
        rpc_conn__close(conn, 0, conn->is_server ? RPC_CANCELLED : RPC_UNAVAILABLE,
                        conn->goaway_received ? "connection closed by peer (GOAWAY)"
                                              : "connection closed");
}

static void idle_cb(uv_idle_t *idle)
{
    struct rpc_conn *conn = idle->data;
    struct rpc_call *c, *next;

    uv_idle_stop(idle);
    if (conn->closing)
        return;
    for (c = conn->calls; c; c = next) {
        next = c->next;
        if (c->deliver_pending)
            rpc_call__deliver(c);
    }
    rpc_conn__flush(conn);
}

void rpc_conn__schedule(struct rpc_conn *conn)
{
    if (!conn->closing)
        uv_idle_start(&conn->idle, idle_cb);
}

/* ---- timeouts (server): a peer that says or reads nothing gives its slot back ---- */

/* Closes with the reason "<what> <ms as seconds>s". */
static void close_timed_out(struct rpc_conn *conn, uint64_t *counter, const char *what, uint64_t ms)
{
    char why[160];

    snprintf(why, sizeof(why), "%s %llu.%us", what, (unsigned long long)(ms / 1000),
             (unsigned)(ms % 1000 / 100));
    (*counter)++;
    NR_INFO("closing connection", "peer=%s reason=\"%s\"", conn->peer, why);
    rpc_conn__close(conn, -ETIMEDOUT, RPC_UNAVAILABLE, why);
}

/* The socket took nothing for stall_timeout while output waited: the peer does not read. */
static bool write_stalled(struct rpc_conn *conn, uint64_t now)
{
    size_t wq = uv_stream_get_write_queue_size((uv_stream_t *)&conn->tcp);

    if (conn->inflight == 0 || !conn->limits.stall_timeout_ms)
        return false;
    if (wq != conn->write_queue_seen) {
        conn->write_queue_seen = wq;
        conn->write_progress_ms = now;
    }
    return now - conn->write_progress_ms >= conn->limits.stall_timeout_ms;
}

static void conn_tick(uv_timer_t *t)
{
    struct rpc_conn *conn = t->data;
    const struct rpc_limits *l = &conn->limits;
    struct rpc_conn_stats unused = {0}, *st = conn->stats ? conn->stats : &unused;
    uint64_t now = uv_now(conn->loop);
    struct rpc_call *c, *next;

    if (conn->closing || conn->in_nghttp2)
        return;
    if (!conn->settings_received) {
        if (l->handshake_timeout_ms && now - conn->started_ms >= l->handshake_timeout_ms)
            close_timed_out(conn, &st->handshake_timeouts,
                            conn->ready ? "no HTTP/2 preface within"
                                        : "TLS handshake not finished within",
                            l->handshake_timeout_ms);
        return;
    }
    if (write_stalled(conn, now)) {
        close_timed_out(conn, &st->stalled_conns, "the peer read nothing for",
                        now - conn->write_progress_ms);
        return;
    }
    for (c = conn->calls; c; c = next) {
        next = c->next;
        if (l->handshake_timeout_ms && !c->dispatched && !c->stream_closed &&
            now - c->born_ms >= l->handshake_timeout_ms) {
            /* A header block left open blocks the whole connection (RFC 9113 §6.10). */
            close_timed_out(conn, &st->handshake_timeouts, "request headers not finished within",
                            l->handshake_timeout_ms);
            return;
        }
        /* Not only calls still running: one that failed holds its status behind its queue. */
        if (l->stall_timeout_ms && c->queued > 0 && !c->stalled && !c->stream_closed &&
            now - c->send_progress_ms >= l->stall_timeout_ms) {
            st->stalled_calls++;
            rpc_call__stall(c, now - c->send_progress_ms);
        }
    }
    if (!l->idle_timeout_ms || conn->n_calls > 0 || now - conn->idle_since_ms < l->idle_timeout_ms)
        return;
    if (!conn->drain_ms) {
        /* GOAWAY with the largest stream id first: a request already on its way is still
         * served, and a client learns not to start more before the final GOAWAY. */
        conn->drain_ms = now;
        nghttp2_submit_shutdown_notice(conn->session);
    } else if (now - conn->drain_ms >= 1000) {
        st->idle_closed++;
        NR_DEBUG("closing idle connection", "peer=%s", conn->peer);
        nghttp2_session_terminate_session(conn->session, NGHTTP2_NO_ERROR);
    }
    rpc_conn__flush(conn);
}

static void timer_start(struct rpc_conn *conn)
{
    const struct rpc_limits *l = &conn->limits;
    uint64_t period = UINT64_MAX;

    if (l->handshake_timeout_ms)
        period = l->handshake_timeout_ms;
    if (l->idle_timeout_ms && l->idle_timeout_ms < period)
        period = l->idle_timeout_ms;
    if (l->stall_timeout_ms && l->stall_timeout_ms < period)
        period = l->stall_timeout_ms;
    if (period == UINT64_MAX)
        return;
    /* A timeout fires within a quarter of itself (and a second) after it passed. */
    period = period / 4 < 50 ? 50 : period / 4 > 1000 ? 1000 : period / 4;
    uv_timer_start(&conn->timer, conn_tick, period, period);
}

int rpc_conn__start(struct rpc_conn *conn, SSL_CTX *ssl_ctx, const char *host, const char *server)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss), rv;

    if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&ss, &len) == 0) {
        char ip[INET6_ADDRSTRLEN] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
            snprintf(conn->peer, sizeof(conn->peer), "[%s]:%d", ip, port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
            snprintf(conn->peer, sizeof(conn->peer), "%s:%d", ip, port);
        }
        snprintf(conn->peer_ip, sizeof(conn->peer_ip), "%s", ip);
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    conn->started_ms = conn->idle_since_ms = uv_now(conn->loop);
    if (conn->is_server)
        timer_start(conn);
    rv = rpc_conn__session_new(conn);
    if (rv != 0)
        return rv;
    if (ssl_ctx) {
        conn->ssl = SSL_new(ssl_ctx);
        conn->rbio = BIO_new(BIO_s_mem());
        conn->wbio = BIO_new(BIO_s_mem());
        if (!conn->ssl || !conn->rbio || !conn->wbio) {
            BIO_free(conn->rbio);
            BIO_free(conn->wbio);
            conn->rbio = conn->wbio = NULL;
            return -ENOMEM;
        }
        BIO_set_mem_eof_return(conn->rbio, -1);
        BIO_set_mem_eof_return(conn->wbio, -1);
        SSL_set_bio(conn->ssl, conn->rbio, conn->wbio);
        if (conn->is_server) {
            SSL_set_accept_state(conn->ssl);
        } else {
            SSL_set_connect_state(conn->ssl);
            if (server)
                (void)rpc_tls__session_use(conn->ssl, server); /* (else a full handshake) */
            if (host && *host) {
                struct in6_addr a6;
                struct in_addr a4;
                bool is_ip =
                    inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
                X509_VERIFY_PARAM *param = SSL_get0_param(conn->ssl);
                if (is_ip) {
                    X509_VERIFY_PARAM_set1_ip_asc(param, host);
                } else {
                    SSL_set_tlsext_host_name(conn->ssl, host);
                    SSL_set1_host(conn->ssl, host);
                }
            }
        }
    }
    rv = uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb, read_cb);
    if (rv != 0)
        return rv;
    if (!conn->ssl) {
        become_ready(conn);
        rpc_conn__flush(conn);
    } else if (!conn->is_server) {
        tls_handshake(conn);
    }
    return 0;
}

void rpc_conn__add_call(struct rpc_conn *conn, struct rpc_call *call)
{
    call->conn = conn;
    call->prev = NULL;
    call->next = conn->calls;
    if (conn->calls)
        conn->calls->prev = call;
    conn->calls = call;
    conn->n_calls++;
    conn->queued += call->queued;
}

void rpc_conn__remove_call(struct rpc_conn *conn, struct rpc_call *call)
{
    if (call->prev)
        call->prev->next = call->next;
    else
        conn->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->next = call->prev = NULL;
    call->conn = NULL;
    conn->queued -= call->queued; /* freed with the call */
    if (--conn->n_calls == 0)
        conn->idle_since_ms = uv_now(conn->loop);
}

static void handle_closed(uv_handle_t *h)
{
    struct rpc_conn *conn = h->data;

    if (--conn->handles_open > 0)
        return;
    for (size_t i = 0; i < conn->out_n; i++)
        rpc_wbuf_unref(conn->out[i].buf);
    free(conn->out);
    rpc_wbuf_unref(conn->copybuf);
    SSL_free(conn->ssl);
    free(conn);
}

/* ---- closing: a server lingers so that its last frames reach the peer ---- */

/* Closing a socket with unread bytes in it makes the kernel send RST, and a peer that is still
 * sending (a flood) then loses the GOAWAY that said why. So a server connection we close sends
 * FIN after its last frames and reads and drops what comes for up to LINGER_MS, as HTTP servers
 * do (nginx's lingering_close). */
#define LINGER_MS        1000
#define LINGER_MAX_BYTES (1u << 20) /* a peer that keeps sending does not keep us reading */

static void linger_end(struct rpc_conn *conn)
{
    if (!conn->lingering)
        return;
    conn->lingering = false;
    uv_timer_stop(&conn->timer);
    if (conn->ops->on_close)
        conn->ops->on_close(conn, conn->close_err, conn->why);
    uv_close((uv_handle_t *)&conn->timer, handle_closed);
    uv_close((uv_handle_t *)&conn->tcp, handle_closed);
}

static void linger_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct rpc_conn *conn = stream->data;

    if (nread > 0)
        conn->linger_read += (size_t)nread;
    if (nread < 0 || conn->linger_read > LINGER_MAX_BYTES)
        linger_end(conn); /* the peer is done too, or will not be */
}

static void linger_timer_cb(uv_timer_t *t)
{
    linger_end(t->data);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    /* Nothing: the linger ends on the peer's EOF or on the timer. */
}

static bool linger_start(struct rpc_conn *conn, int err)
{
    if (!conn->is_server || conn->peer_gone || err == -ECANCELED || err == -EMFILE ||
        !conn->session)
        return false;
    if (uv_shutdown(&conn->shutdown_req, (uv_stream_t *)&conn->tcp, shutdown_cb) != 0)
        return false;
    conn->lingering = true;
    conn->close_err = err;
    uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb, linger_read_cb);
    uv_timer_start(&conn->timer, linger_timer_cb, LINGER_MS, 0);
    return true;
}

void rpc_conn__close(struct rpc_conn *conn, int err, int code, const char *why)
{
    struct rpc_call *call;
    bool linger;

    if (conn->closing) {
        if (err == -ECANCELED)
            linger_end(conn); /* the owner shuts down: no more waiting */
        return;
    }
    if (why != conn->why)
        snprintf(conn->why, sizeof(conn->why), "%s", why ? why : "");
    if (conn->in_nghttp2) {
        conn->close_deferred = true;
        conn->deferred_err = err;
        conn->deferred_code = code;
        return;
    }
    conn->closing = true;
    /* A TLS connection closed in good order (nothing failed: idle, done, its owner closing) says
     * so with close_notify; OpenSSL keeps the session resumable only then. */
    if (conn->ssl && conn->ready && (err == 0 || err == -ECANCELED)) {
        ERR_clear_error();
        (void)SSL_shutdown(conn->ssl);
        (void)rpc_out__tls_drain(conn);
    }
    /* Frames already made (an RST_STREAM, a GOAWAY) go out if the socket takes them now. */
    rpc_out__submit(conn);
    uv_read_stop((uv_stream_t *)&conn->tcp);
    uv_idle_stop(&conn->idle);
    uv_timer_stop(&conn->timer);
    while ((call = conn->calls) != NULL) {
        if (conn->session)
            nghttp2_session_set_stream_user_data(conn->session, call->stream_id, NULL);
        rpc_conn__remove_call(conn, call);
        call->stream_closed = true;
        if (!call->handler_done && call->local_code)
            rpc_call__done(call, call->local_code, call->local_message);
        else if (!call->handler_done)
            rpc_call__done(call, code, conn->why);
        rpc_call__maybe_free(call);
    }
    linger = linger_start(conn, err);
    if (!linger && conn->ops->on_close)
        conn->ops->on_close(conn, err, conn->why);
    nghttp2_session_del(conn->session);
    conn->session = NULL;
    uv_close((uv_handle_t *)&conn->idle, handle_closed);
    if (!linger) {
        uv_close((uv_handle_t *)&conn->timer, handle_closed);
        uv_close((uv_handle_t *)&conn->tcp, handle_closed);
    }
}
