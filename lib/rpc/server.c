/* The gRPC server: accepts connections, checks each request's headers (method, content-type,
 * encoding, timeout, size of the header list) and hands valid calls to their method. */
#include "rpc/server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/addr.h"
#include "rpc/health.h"
#include "rpc/internal.h"
#include "rpc/status.h"
#include "rpc/tls.h"
#include "util/error.h"
#include "util/log.h"

struct rpc_server {
    uv_loop_t *loop;
    struct rpc_server_config cfg;
    char *listen;
    char *tls_cert;
    char *tls_key;
    char *tls_ca;
    struct rpc_method *methods; /* the caller's, then Health's */
    size_t n_methods;
    uv_tcp_t listener;
    bool listening;
    SSL_CTX *ssl_ctx;
    struct rpc_conn *conns;
    size_t n_conns;
    int port;
    struct rpc_health health;
    struct rpc_conn_stats cstats;
    uint64_t refused;      /* connections over max_connections */
    uint64_t refused_peer; /* over max_connections_per_peer */
    bool closing;
    bool in_close; /* rpc_server_close is running: do not free yet */
    void (*close_cb)(void *arg);
    void *close_arg;
};

void rpc_server_config_init(struct rpc_server_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    rpc_limits_init(&cfg->limits);
    cfg->max_connections = 1024;
    cfg->max_connections_per_peer = 64;
}

/* Connections open from conn's address, conn included. */
static unsigned from_peer(const struct rpc_server *s, const struct rpc_conn *conn)
{
    unsigned n = 0;

    for (const struct rpc_conn *c = s->conns; c; c = c->next)
        n += strcmp(c->peer_ip, conn->peer_ip) == 0;
    return n;
}

static void server_free(struct rpc_server *s)
{
    rpc_health_free(&s->health);
    SSL_CTX_free(s->ssl_ctx);
    free(s->methods);
    free(s->listen);
    free(s->tls_cert);
    free(s->tls_key);
    free(s->tls_ca);
    free(s);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

struct rpc_server *rpc_server_new(uv_loop_t *loop, const struct rpc_server_config *cfg,
                                  const struct rpc_method *methods, size_t n_methods)
{
    struct rpc_server *s = calloc(1, sizeof(*s));

    /* A peer that resets its socket must cost a write error, not the process (libuv leaves
     * SIGPIPE to the application). */
    signal(SIGPIPE, SIG_IGN);
    if (!s)
        return NULL;
    s->loop = loop;
    s->cfg = *cfg;
    s->port = -1;
    s->listen = dup_or_null(cfg->listen);
    s->tls_cert = dup_or_null(cfg->tls_cert);
    s->tls_key = dup_or_null(cfg->tls_key);
    s->tls_ca = dup_or_null(cfg->tls_ca);
    s->methods = calloc(n_methods + 2, sizeof(*s->methods));
    if (!s->methods || (cfg->listen && !s->listen) || rpc_health_set(&s->health, "", 1) != 0) {
        server_free(s);
        return NULL;
    }
    memcpy(s->methods, methods, n_methods * sizeof(*methods));
    s->methods[n_methods] = (struct rpc_method){.path = RPC_HEALTH_CHECK_PATH,
                                                .shape = RPC_SHAPE_UNARY,
                                                .start = rpc_health_check_start,
                                                .data = &s->health};
    s->methods[n_methods + 1] = (struct rpc_method){.path = RPC_HEALTH_WATCH_PATH,
                                                    .shape = RPC_SHAPE_SERVER_STREAM,
                                                    .start = rpc_health_watch_start,
                                                    .data = &s->health};
    s->n_methods = n_methods + 2;
    return s;
}

int rpc_server_set_health(struct rpc_server *s, const char *service, int status)
{
    return rpc_health_set(&s->health, service, status);
}

int rpc_server_port(const struct rpc_server *s)
{
    return s->port;
}

void rpc_server_get_stats(const struct rpc_server *s, struct rpc_server_stats *st)
{
    memset(st, 0, sizeof(*st));
    for (const struct rpc_conn *c = s->conns; c; c = c->next) {
        st->connections++;
        st->calls += c->n_calls;
    }
    st->refused_connections = s->refused;
    st->refused_peer_connections = s->refused_peer;
    st->handshake_timeouts = s->cstats.handshake_timeouts;
    st->idle_closed = s->cstats.idle_closed;
    st->stalled_calls = s->cstats.stalled_calls;
    st->stalled_connections = s->cstats.stalled_conns;
}

int rpc_server_metrics_write(const struct rpc_server *s, struct nr_metrics *m)
{
    struct rpc_server_stats st;

    rpc_server_get_stats(s, &st);
    nr_metrics_family(m, "netreel_rpc_connections", NR_METRICS_GAUGE, "gRPC connections open now.");
    nr_metrics_u64(m, NULL, st.connections);
    nr_metrics_family(m, "netreel_rpc_calls", NR_METRICS_GAUGE, "gRPC calls open now.");
    nr_metrics_u64(m, NULL, st.calls);
    nr_metrics_family(m, "netreel_rpc_connections_closed_total", NR_METRICS_COUNTER,
                      "gRPC connections the server closed on its own, by reason.");
    nr_metrics_u64(m, NR_METRICS_LABELS({"reason", "too_many"}), st.refused_connections);
    nr_metrics_u64(m, NR_METRICS_LABELS({"reason", "too_many_from_peer"}),
                   st.refused_peer_connections);
    nr_metrics_u64(m, NR_METRICS_LABELS({"reason", "handshake_timeout"}), st.handshake_timeouts);
    nr_metrics_u64(m, NR_METRICS_LABELS({"reason", "idle_timeout"}), st.idle_closed);
    nr_metrics_u64(m, NR_METRICS_LABELS({"reason", "stall_timeout"}), st.stalled_connections);
    nr_metrics_family(m, "netreel_rpc_calls_stalled_total", NR_METRICS_COUNTER,
                      "gRPC calls reset because the client read nothing (--stall-timeout).");
    return nr_metrics_u64(m, NULL, st.stalled_calls);
}

/* ---- per-request header handling ---- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct rpc_conn *conn = user_data;
    struct rpc_server *s = conn->owner;
    struct rpc_call *call;

    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    /* nghttp2 enforces SETTINGS_MAX_CONCURRENT_STREAMS once acknowledged; this also covers the
     * first round trip, so handlers never outnumber the streams we allow. */
    if (conn->n_calls >= conn->limits.max_concurrent_streams) {
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    call = rpc_call__new(RPC_SIDE_SERVER, s->loop, s->cfg.limits.max_recv_size,
                         s->cfg.limits.call_send_high);
    if (!call)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    call->stream_id = frame->hd.stream_id;
    call->born_ms = uv_now(s->loop);
    snprintf(call->peer, sizeof(call->peer), "%s", conn->peer);
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, call);
    rpc_conn__add_call(conn, call);
    return 0;
}

static int on_header(struct rpc_call *call, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen)
{
    if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
        free(call->path);
        call->path = strndup((const char *)value, valuelen);
        return call->path ? 0 : -ENOMEM;
    }
    return rpc_call__add_header(call, name, namelen, value, valuelen);
}

static void setup_callbacks(nghttp2_session_callbacks *cbs)
{
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
}

static bool is_grpc_content_type(const char *ct)
{
    static const char prefix[] = "application/grpc";
    size_t n = sizeof(prefix) - 1;

    return ct && strncmp(ct, prefix, n) == 0 && (ct[n] == '\0' || ct[n] == '+' || ct[n] == ';');
}

/* Whether the peer's certificate may call m (rpc_method.peers); else why, in msg. */
static bool peer_allowed(struct rpc_conn *conn, const struct rpc_method *m, char *msg, size_t len)
{
    char name[256];

    if (!m->peers || !m->peers[0] || !conn->ssl)
        return true;
    rpc_tls__peer_name(conn->ssl, name, sizeof(name));
    for (size_t i = 0; m->peers[i]; i++)
        if (name[0] && strcmp(name, m->peers[i]) == 0)
            return true;
    snprintf(msg, len, "%.200s is not for certificate \"%.100s\" (it takes %.100s%s)", m->path,
             name[0] ? name : "(none)", m->peers[0], m->peers[1] ? ", ..." : "");
    return false;
}

static const struct rpc_method *find_method(const struct rpc_server *s, const char *path)
{
    for (size_t i = 0; i < s->n_methods; i++)
        if (strcmp(s->methods[i].path, path) == 0)
            return &s->methods[i];
    return NULL;
}

/* Answers a request that is not gRPC at all with a bare HTTP status. */
static void reply_http(struct rpc_call *call, const char *status)
{
    nghttp2_nv nva[] = {
        {(uint8_t *)":status", (uint8_t *)status, 7, strlen(status), NGHTTP2_NV_FLAG_NONE},
    };

    call->headers_sent = call->local_closed = call->eof_sent = true;
    nghttp2_submit_response(call->conn->session, call->stream_id, nva, 1, NULL);
}

static void dispatch(struct rpc_conn *conn, struct rpc_call *call)
{
    struct rpc_server *s = conn->owner;
    const char *method = rpc_call_header(call, ":method");
    const char *enc = rpc_call_header(call, "grpc-encoding");
    const char *timeout = rpc_call_header(call, "grpc-timeout");
    const struct rpc_method *m;
    char msg[256];

    call->dispatched = true;
    if (call->headers_overflow) {
        snprintf(msg, sizeof(msg), "request header list larger than %u bytes",
                 conn->limits.max_header_list);
        rpc_call_finish(call, RPC_RESOURCE_EXHAUSTED, msg);
        return;
    }
    if (!method || strcmp(method, "POST") != 0) {
        reply_http(call, "405");
        return;
    }
    if (!is_grpc_content_type(rpc_call_header(call, "content-type"))) {
        reply_http(call, "415");
        return;
    }
    if (enc && strcmp(enc, "identity") != 0) {
        snprintf(msg, sizeof(msg), "grpc-encoding %s is not supported (identity only)", enc);
        rpc_call_finish(call, RPC_UNIMPLEMENTED, msg);
        return;
    }
    if (timeout && rpc_timeout_parse(timeout, strlen(timeout), &call->timeout_ns) != 0) {
        snprintf(msg, sizeof(msg), "malformed grpc-timeout \"%.32s\"", timeout);
        rpc_call_finish(call, RPC_INTERNAL, msg);
        return;
    }
    m = call->path ? find_method(s, call->path) : NULL;
    if (!m) {
        snprintf(msg, sizeof(msg), "unknown method %.200s", call->path ? call->path : "(none)");
        rpc_call_finish(call, RPC_UNIMPLEMENTED, msg);
        return;
    }
    if (!peer_allowed(call->conn, m, msg, sizeof(msg))) {
        rpc_call_finish(call, RPC_PERMISSION_DENIED, msg);
        return;
    }
    call->shape = m->shape;
    call->max_recv = m->max_recv_size ? m->max_recv_size : s->cfg.limits.max_recv_size;
    if (call->max_recv > RPC_MAX_MESSAGE_LIMIT)
        call->max_recv = RPC_MAX_MESSAGE_LIMIT;
    call->dec.max_message = call->max_recv;
    rpc_call__fit_window(call);
    if (timeout && call->timeout_ns == 0)
        call->timeout_ns = 1; /* "0n": already expired, not "no deadline" */
    rpc_call__start_deadline(call);
    if (m->start(call, m->data) != 0 && !call->local_closed)
        rpc_call_finish(call, RPC_INTERNAL, "the handler could not start");
}

static int on_headers(struct rpc_conn *conn, struct rpc_call *call, const nghttp2_frame *frame)
{
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        dispatch(conn, call);
    return 0;
}

static void on_stream_close(struct rpc_conn *conn, struct rpc_call *call, uint32_t error_code)
{
    if (call->trailers_sent)
        rpc_call__end(call, call->code, call->message);
    else if (call->local_code)
        rpc_call__end(call, call->local_code, call->local_message);
    else
        rpc_call__end(call, RPC_CANCELLED, "cancelled by the client");
}

static void maybe_finish_close(struct rpc_server *s)
{
    if (!s->closing || s->listening || s->n_conns > 0 || s->in_close)
        return;
    void (*cb)(void *) = s->close_cb;
    void *arg = s->close_arg;
    server_free(s);
    if (cb)
        cb(arg);
}

static void on_conn_close(struct rpc_conn *conn, int err, const char *why)
{
    struct rpc_server *s = conn->owner;

    if (conn->prev)
        conn->prev->next = conn->next;
    else
        s->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    s->n_conns--;
    NR_DEBUG("connection closed", "peer=%s reason=\"%s\"", conn->peer, why);
    maybe_finish_close(s);
}

static const struct rpc_conn_ops server_ops = {
    .on_close = on_conn_close,
    .setup_callbacks = setup_callbacks,
    .on_header = on_header,
    .on_headers = on_headers,
    .on_stream_close = on_stream_close,
};

static void on_connection(uv_stream_t *listener, int status)
{
    struct rpc_server *s = listener->data;
    struct rpc_conn *conn;
    int rv;

    if (status < 0) {
        NR_WARN("accept failed", "error=\"%s\"", uv_strerror(status));
        return;
    }
    conn = rpc_conn__new(s->loop, true, &s->cfg.limits, &server_ops, s);
    if (!conn)
        return;
    conn->next = s->conns;
    if (s->conns)
        s->conns->prev = conn;
    s->conns = conn;
    s->n_conns++;
    conn->stats = &s->cstats;
    rv = uv_accept(listener, (uv_stream_t *)&conn->tcp);
    if (rv == 0)
        rv = rpc_conn__start(conn, s->ssl_ctx, NULL, NULL); /* names the peer: no I/O yet */
    if (rv == 0 && s->n_conns > s->cfg.max_connections) {
        NR_WARN("too many connections", "limit=%u", s->cfg.max_connections);
        s->refused++;
        rv = -EMFILE;
    } else if (rv == 0 && s->cfg.max_connections_per_peer &&
               from_peer(s, conn) > s->cfg.max_connections_per_peer) {
        /* One client must not take every descriptor the server has (a store needs them to
         * sync what it acknowledges). */
        if (s->refused_peer++ % 1000 == 0)
            NR_WARN("too many connections from one address", "peer=%s limit=%u refused=%llu",
                    conn->peer_ip, s->cfg.max_connections_per_peer,
                    (unsigned long long)s->refused_peer);
        rv = -EMFILE;
    }
    if (rv != 0)
        rpc_conn__close(conn, rv, RPC_CANCELLED, nr_strerror(rv));
}

/* Resolves the listen address, binding ":port" to every address (IPv6 and IPv4). */
static int bind_listener(struct rpc_server *s, char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char portstr[8];
    int rv;

    rv = nr_addr_split(s->listen, host, sizeof(host), &port, err, errlen);
    if (rv != 0)
        return rv;
    snprintf(portstr, sizeof(portstr), "%u", port);
    rv = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
    if (rv != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", s->listen, gai_strerror(rv));
        return -EINVAL;
    }
    rv = -EADDRNOTAVAIL;
    /* With no host, prefer the IPv6 wildcard: Linux serves IPv4 on it too. */
    for (int pass = 0; pass < 2 && rv != 0; pass++) {
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            if (!host[0] && (pass == 0) != (ai->ai_family == AF_INET6))
                continue;
            rv = uv_tcp_bind(&s->listener, ai->ai_addr, 0);
            if (rv == 0)
                rv = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
            if (rv == 0)
                break;
        }
        if (host[0])
            break;
    }
    freeaddrinfo(res);
    if (rv != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", s->listen, uv_strerror(rv));
        return rv;
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len) == 0)
        s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

int rpc_server_start(struct rpc_server *s, char *err, size_t errlen)
{
    int rv;

    if (!s->listen) {
        snprintf(err, errlen, "no listen address");
        return -EINVAL;
    }
    if (s->tls_cert || s->tls_key || s->tls_ca) {
        s->ssl_ctx = rpc_tls__server_ctx_new(s->tls_cert, s->tls_key, s->tls_ca, err, errlen);
        if (!s->ssl_ctx)
            return NR_ETLS;
    }
    rv = uv_tcp_init(s->loop, &s->listener);
    if (rv != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", s->listen, uv_strerror(rv));
        return rv;
    }
    s->listener.data = s;
    s->listening = true;
    return bind_listener(s, err, errlen);
}

static void listener_closed(uv_handle_t *h)
{
    struct rpc_server *s = h->data;

    s->listening = false;
    maybe_finish_close(s);
}

void rpc_server_close(struct rpc_server *s, void (*cb)(void *arg), void *arg)
{
    if (s->closing)
        return; /* already closing (a handler's on_done may call it again) */
    s->closing = true;
    s->close_cb = cb;
    s->close_arg = arg;
    s->in_close = true;
    for (struct rpc_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        /* Tell the peer with a GOAWAY (written now if the socket takes it) before closing. */
        if (c->ready && c->session && !c->in_nghttp2) {
            nghttp2_session_terminate_session(c->session, NGHTTP2_NO_ERROR);
            rpc_conn__flush(c);
        }
        rpc_conn__close(c, -ECANCELED, RPC_CANCELLED, "server shutting down");
    }
    if (s->listening)
        uv_close((uv_handle_t *)&s->listener, listener_closed);
    s->in_close = false;
    maybe_finish_close(s);
}
