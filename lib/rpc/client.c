/* The client channel: resolves and connects on demand, holds calls until the connection is up,
 * submits them as HTTP/2 requests, and turns responses, trailers, HTTP errors and stream resets
 * into gRPC statuses the way grpc's own clients do. */
#include "rpc/client.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/addr.h"
#include "rpc/internal.h"
#include "rpc/status.h"
#include "rpc/tls.h"
#include "util/error.h"
#include "util/log.h"

struct rpc_channel {
    uv_loop_t *loop;
    struct rpc_limits limits;
    char *target;
    char *host; /* heap strings, not arrays: a hub holds a channel per store, thousands */
    char *authority;
    char *server; /* target and authority: whose TLS sessions it resumes (tls.c) */
    uint16_t port;
    SSL_CTX *ssl_ctx;
    struct rpc_conn *conn;    /* the connection new calls go to (maybe still connecting) */
    struct rpc_conn *conns;   /* every live connection, draining ones included */
    struct rpc_call *pending; /* calls waiting for `conn` or for a free stream on it */
    struct rpc_call *pending_tail;
    int in_close; /* rpc_channel_close is running: do not free yet */
    uv_getaddrinfo_t gai;
    bool resolving;
    struct addrinfo *addrs;
    struct addrinfo *next_addr;
    uint64_t retry_at;
    uint32_t backoff_ms;
    uint32_t backoff_initial;
    uint32_t backoff_max;
    char last_error[200];
    bool closing;
    void (*close_cb)(void *arg);
    void *close_arg;
    bool dialing;                  /* holds one of the thread's dialing slots */
    bool given_up;                 /* its dial closed because no call waits for it any more */
    bool dial_queued;              /* waits for one */
    struct rpc_channel *dial_next; /* in the queue of those waiting */
};

/* The channels of this thread making a connection at once (rpc_client_set_max_dialing). */
static _Thread_local struct {
    unsigned limit, active;
    struct rpc_channel *head, *tail;
} dial;

void rpc_client_tls_handshakes(uint64_t *full, uint64_t *resumed)
{
    rpc_tls__handshakes(full, resumed);
}

void rpc_client_set_max_dialing(unsigned n)
{
    dial.limit = n;
}

struct connect_req {
    uv_connect_t req;
    struct rpc_channel *ch;
    struct rpc_conn *conn;
};

static void try_next_addr(struct rpc_channel *ch);
static void ensure_connect(struct rpc_channel *ch);
static const struct rpc_conn_ops client_ops;

void rpc_channel_config_init(struct rpc_channel_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    rpc_limits_init(&cfg->limits);
    cfg->backoff_initial_ms = 1000;
    cfg->backoff_max_ms = 30000;
}

struct rpc_channel *rpc_channel_new(uv_loop_t *loop, const struct rpc_channel_config *cfg,
                                    char *err, size_t errlen)
{
    struct rpc_channel *ch = calloc(1, sizeof(*ch));
    char host[256];

    signal(SIGPIPE, SIG_IGN); /* as rpc_server_new: a reset peer is an error, not a signal */
    if (!ch) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ch->loop = loop;
    ch->limits = cfg->limits;
    ch->backoff_initial = cfg->backoff_initial_ms ? cfg->backoff_initial_ms : 1000;
    ch->backoff_max = cfg->backoff_max_ms ? cfg->backoff_max_ms : 30000;
    ch->backoff_ms = ch->backoff_initial;
    ch->target = strdup(cfg->target ? cfg->target : "");
    if (!ch->target || nr_addr_split(ch->target, host, sizeof(host), &ch->port, err, errlen) != 0)
        goto fail;
    ch->host = strdup(host);
    ch->authority = strdup(cfg->authority ? cfg->authority : ch->target);
    if (!ch->host || !ch->authority) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->tls || cfg->tls_ca || cfg->tls_cert) {
        size_t n = strlen(ch->target) + strlen(ch->authority) + 2;
        if (!(ch->server = malloc(n))) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        snprintf(ch->server, n, "%s|%s", ch->target, ch->authority);
        ch->ssl_ctx = rpc_tls__client_ctx(cfg->tls_ca, cfg->tls_cert, cfg->tls_key, err, errlen);
        if (!ch->ssl_ctx)
            goto fail;
    }
    return ch;
fail:
    free(ch->target);
    free(ch->host);
    free(ch->authority);
    free(ch->server);
    free(ch);
    return NULL;
}

bool rpc_channel_connected(const struct rpc_channel *ch)
{
    return ch->conn && ch->conn->ready && !ch->conn->goaway_received;
}

/* ---- calls waiting for a connection ---- */

static void leave_channel(struct rpc_call *call);

/* Calls wait in order of creation; the oldest is started first. */
static void pending_add(struct rpc_channel *ch, struct rpc_call *call)
{
    call->channel = ch;
    call->leave_channel = leave_channel;
    call->next = NULL;
    call->prev = ch->pending_tail;
    if (ch->pending_tail)
        ch->pending_tail->next = call;
    else
        ch->pending = call;
    ch->pending_tail = call;
}

/* Takes a call that waits for a connection off its channel's list. */
static void pending_remove(struct rpc_call *call)
{
    struct rpc_channel *ch = call->channel;

    if (!ch)
        return;
    if (call->prev)
        call->prev->next = call->next;
    else
        ch->pending = call->next;
    if (call->next)
        call->next->prev = call->prev;
    else
        ch->pending_tail = call->prev;
    call->next = call->prev = NULL;
    call->channel = NULL;
    call->leave_channel = NULL;
}

/* A call of ch ended before its stream started. */
static void call_ended(struct rpc_channel *ch)
{
    /* The last call waiting for a connection still being made is gone (cancelled, past its
     * deadline): stop making it, so that a server that never answers does not hold a dialing
     * slot that others wait for. */
    if (!ch || ch->pending || !ch->dialing || ch->closing || !ch->conn ||
        ch->conn->settings_received || ch->conn->closing)
        return;
    ch->given_up = true;
    rpc_conn__close(ch->conn, -ECANCELED, RPC_CANCELLED, "no call waits for the connection");
}

static void leave_channel(struct rpc_call *call)
{
    struct rpc_channel *ch = call->channel;

    pending_remove(call);
    call_ended(ch);
}

static void fail_pending(struct rpc_channel *ch, int code, const char *why)
{
    struct rpc_call *call;

    while ((call = ch->pending) != NULL) {
        pending_remove(call);
        rpc_call__fail_async(call, code, why);
    }
}

/* The "host" part of :authority for TLS verification: the authority without its port. */
static void tls_name(const struct rpc_channel *ch, char *out, size_t len)
{
    char host[256];
    uint16_t port;
    char err[8];

    if (nr_addr_split(ch->authority, host, sizeof(host), &port, err, sizeof(err)) == 0)
        snprintf(out, len, "%s", host);
    else
        snprintf(out, len, "%s", ch->authority);
}

static int submit(struct rpc_call *call, struct rpc_conn *conn)
{
    struct rpc_channel *ch = conn->owner;
    static const char ct[] = "application/grpc";
    nghttp2_nv nva[8 + 16];
    size_t n = 0;
    char timeout[10];
    const char *scheme = ch->ssl_ctx ? "https" : "http";

#define NV(name, value)                                                                         \
    nva[n++] = (nghttp2_nv){(uint8_t *)(name), (uint8_t *)(value), strlen(name), strlen(value), \
                            NGHTTP2_NV_FLAG_NONE}
    NV(":method", "POST");
    NV(":scheme", scheme);
    NV(":path", call->path);
    NV(":authority", ch->authority);
    NV("content-type", ct);
    NV("te", "trailers");
    NV("user-agent", "netreel-rpc/0.1");
    if (call->deadline_ms) {
        uint64_t now = uv_now(ch->loop);
        int64_t left = call->deadline_ms > now ? (int64_t)(call->deadline_ms - now) : 0;
        rpc_timeout_format(left * 1000000, timeout);
        NV("grpc-timeout", timeout);
    }
    for (size_t i = 0; i < call->n_req_md && n < sizeof(nva) / sizeof(nva[0]); i++)
        NV(call->req_md[i].name, call->req_md[i].value);
#undef NV
    nghttp2_data_provider prd = rpc_call__data_provider(call);
    int32_t id = nghttp2_submit_request(conn->session, NULL, nva, n, &prd, call);
    if (id < 0)
        return id;
    call->stream_id = id;
    call->headers_sent = true;
    snprintf(call->peer, sizeof(call->peer), "%s", conn->peer);
    rpc_conn__add_call(conn, call);
    rpc_conn__schedule(conn);
    return 0;
}

/* ---- connecting ---- */

/* Takes a dialing slot for ch, or queues it: true when it may dial now. */
static bool dial_take(struct rpc_channel *ch)
{
    if (ch->dialing)
        return true;
    if (dial.limit && dial.active >= dial.limit) {
        if (!ch->dial_queued) {
            ch->dial_queued = true;
            ch->dial_next = NULL;
            if (dial.tail)
                dial.tail->dial_next = ch;
            else
                dial.head = ch;
            dial.tail = ch;
        }
        return false;
    }
    ch->dialing = true;
    dial.active++;
    return true;
}

/* ch no longer dials (connected, failed, closed) or waits to: its slot goes to the next in
 * line. */
static void dial_done(struct rpc_channel *ch)
{
    if (ch->dial_queued) {
        struct rpc_channel **p = &dial.head, *prev = NULL;
        while (*p && *p != ch) {
            prev = *p;
            p = &(*p)->dial_next;
        }
        if (*p)
            *p = ch->dial_next;
        if (dial.tail == ch)
            dial.tail = prev;
        ch->dial_queued = false;
    }
    if (!ch->dialing)
        return;
    ch->dialing = false;
    dial.active--;
    while (dial.head && (!dial.limit || dial.active < dial.limit)) {
        struct rpc_channel *next = dial.head;
        dial.head = next->dial_next;
        if (!dial.head)
            dial.tail = NULL;
        next->dial_queued = false;
        if (!next->closing && next->pending)
            ensure_connect(next);
    }
}

static void connect_failed(struct rpc_channel *ch, const char *why)
{
    snprintf(ch->last_error, sizeof(ch->last_error), "%s", why);
    ch->retry_at = uv_now(ch->loop) + ch->backoff_ms;
    ch->backoff_ms =
        ch->backoff_ms * 8 / 5 > ch->backoff_max ? ch->backoff_max : ch->backoff_ms * 8 / 5;
    if (ch->addrs) {
        uv_freeaddrinfo(ch->addrs);
        ch->addrs = ch->next_addr = NULL;
    }
    NR_DEBUG("connect failed", "target=%s reason=\"%s\"", ch->target, why);
    fail_pending(ch, RPC_UNAVAILABLE, why);
    dial_done(ch);
}

/* Starts waiting calls while the server allows more concurrent streams. Calls stay ours until
 * then (not queued inside nghttp2), so their cancellation and deadline work while they wait. */
static void pump(struct rpc_channel *ch, struct rpc_conn *conn)
{
    struct rpc_call *call;

    /* Like grpc's clients, start calls once the server's SETTINGS told its stream limit; and once
     * it acknowledged ours. A stream opened before that starts with HTTP/2's default window
     * (65535), the ACK then takes the difference to our INITIAL_WINDOW_SIZE off it: a call that
     * had widened its window to less than that (a hub's store call: 4 KiB initial, 16 KiB
     * wanted) was left with none, and the server waited for a WINDOW_UPDATE that never came. */
    if (conn != ch->conn || !conn->ready || !conn->settings_received || !conn->settings_acked ||
        conn->closing || conn->goaway_received)
        return;
    uint32_t max =
        nghttp2_session_get_remote_settings(conn->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    while ((call = ch->pending) != NULL && conn->n_calls < max) {
        pending_remove(call);
        if (submit(call, conn) != 0)
            rpc_call__fail_async(call, RPC_UNAVAILABLE, "cannot start a stream");
    }
}

static void on_ready(struct rpc_conn *conn)
{
    struct rpc_channel *ch = conn->owner;

    if (ch->addrs) {
        uv_freeaddrinfo(ch->addrs);
        ch->addrs = ch->next_addr = NULL;
    }
}

static void on_settings(struct rpc_conn *conn)
{
    struct rpc_channel *ch = conn->owner;

    /* The server speaks HTTP/2: the connection counts as made. */
    ch->backoff_ms = ch->backoff_initial;
    ch->retry_at = 0;
    pump(ch, conn);
    dial_done(ch);
}

static void on_goaway(struct rpc_conn *conn)
{
    struct rpc_channel *ch = conn->owner;

    /* It finishes the streams it has; calls still waiting need a new connection. */
    if (ch->conn != conn || ch->closing)
        return;
    ch->conn = NULL;
    if (ch->pending)
        ensure_connect(ch);
}

static void maybe_finish_close(struct rpc_channel *ch)
{
    if (!ch->closing || ch->conns || ch->resolving || ch->in_close)
        return;
    void (*cb)(void *) = ch->close_cb;
    void *arg = ch->close_arg;
    if (ch->addrs)
        uv_freeaddrinfo(ch->addrs);
    SSL_CTX_free(ch->ssl_ctx);
    free(ch->target);
    free(ch->host);
    free(ch->authority);
    free(ch->server);
    free(ch);
    if (cb)
        cb(arg);
}

static void on_conn_close(struct rpc_conn *conn, int err, const char *why)
{
    struct rpc_channel *ch = conn->owner;
    bool was_current = ch->conn == conn;

    if (conn->prev)
        conn->prev->next = conn->next;
    else
        ch->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    if (was_current)
        ch->conn = NULL;
    if (ch->closing) {
        maybe_finish_close(ch);
        return;
    }
    if (was_current && ch->given_up) {
        /* Closed by call_ended: no error to keep, no backoff. */
        ch->given_up = false;
        if (ch->addrs) {
            uv_freeaddrinfo(ch->addrs);
            ch->addrs = ch->next_addr = NULL;
        }
        dial_done(ch);
        if (ch->pending) /* a call came meanwhile */
            ensure_connect(ch);
    } else if (was_current && conn->settings_received) {
        /* It was up: calls still waiting for a stream get a new connection. */
        if (ch->pending)
            ensure_connect(ch);
    } else if (was_current) {
        /* It never got as far as the server's SETTINGS (refused, TLS failed, not HTTP/2). */
        char msg[200];
        snprintf(msg, sizeof(msg), "%s: %s", ch->target, why);
        snprintf(ch->last_error, sizeof(ch->last_error), "%s", msg);
        /* A TLS failure will not go better on the next address. */
        if (ch->next_addr && err != NR_ETLS)
            try_next_addr(ch);
        else
            connect_failed(ch, msg);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct connect_req *cr = (struct connect_req *)req;
    struct rpc_conn *conn = cr->conn;
    struct rpc_channel *ch = cr->ch;
    char host[256];
    int rv;

    free(cr);
    if (conn->closing)
        return;
    if (status < 0) {
        char why[200];
        snprintf(why, sizeof(why), "connect: %s", uv_strerror(status));
        rpc_conn__close(conn, status, RPC_UNAVAILABLE, why);
        return;
    }
    if (!ch->pending && ch->dialing && conn == ch->conn) {
        ch->given_up = true; /* its calls ended while it connected (call_ended) */
        rpc_conn__close(conn, -ECANCELED, RPC_CANCELLED, "no call waits for the connection");
        return;
    }
    tls_name(ch, host, sizeof(host));
    rv = rpc_conn__start(conn, ch->ssl_ctx, host, ch->server);
    if (rv != 0 && !conn->closing)
        rpc_conn__close(conn, rv, RPC_UNAVAILABLE, "cannot start the connection");
}

static void try_next_addr(struct rpc_channel *ch)
{
    struct addrinfo *ai = ch->next_addr;
    struct rpc_conn *conn;
    struct connect_req *cr;
    int rv;

    if (!ai) {
        connect_failed(ch, ch->last_error[0] ? ch->last_error : "no address to connect to");
        return;
    }
    ch->next_addr = ai->ai_next;
    cr = malloc(sizeof(*cr));
    conn = cr ? rpc_conn__new(ch->loop, false, &ch->limits, &client_ops, ch) : NULL;
    if (!conn) {
        free(cr);
        connect_failed(ch, "out of memory");
        return;
    }
    conn->next = ch->conns;
    if (ch->conns)
        ch->conns->prev = conn;
    ch->conns = conn;
    ch->conn = conn;
    cr->ch = ch;
    cr->conn = conn;
    rv = uv_tcp_connect(&cr->req, &conn->tcp, ai->ai_addr, on_connect);
    if (rv != 0) {
        char why[200];
        free(cr);
        snprintf(why, sizeof(why), "connect: %s", uv_strerror(rv));
        rpc_conn__close(conn, rv, RPC_UNAVAILABLE, why);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct rpc_channel *ch = req->data;

    ch->resolving = false;
    if (ch->closing) {
        if (res)
            uv_freeaddrinfo(res);
        maybe_finish_close(ch);
        return;
    }
    if (status < 0) {
        char why[200];
        snprintf(why, sizeof(why), "%s: cannot resolve %s: %s", ch->target, ch->host,
                 uv_strerror(status));
        connect_failed(ch, why);
        return;
    }
    ch->addrs = ch->next_addr = res;
    ch->last_error[0] = '\0';
    try_next_addr(ch);
}

static void ensure_connect(struct rpc_channel *ch)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    char port[8];
    int rv;

    if (ch->conn || ch->resolving)
        return;
    if (uv_now(ch->loop) < ch->retry_at) {
        char why[260];
        snprintf(why, sizeof(why), "%s (next attempt in %llu ms)", ch->last_error,
                 (unsigned long long)(ch->retry_at - uv_now(ch->loop)));
        fail_pending(ch, RPC_UNAVAILABLE, why);
        return;
    }
    if (!dial_take(ch))
        return; /* its turn comes (dial_done) */
    snprintf(port, sizeof(port), "%u", ch->port);
    ch->gai.data = ch;
    ch->resolving = true;
    rv = uv_getaddrinfo(ch->loop, &ch->gai, on_resolved, ch->host[0] ? ch->host : "localhost", port,
                        &hints);
    if (rv != 0) {
        ch->resolving = false;
        connect_failed(ch, uv_strerror(rv));
    }
}

struct rpc_call *rpc_channel_call(struct rpc_channel *ch, const struct rpc_call_opts *opts,
                                  const struct rpc_call_cbs *cbs, void *user)
{
    size_t max_recv = opts->max_recv_size ? opts->max_recv_size : ch->limits.max_recv_size;
    struct rpc_call *call =
        rpc_call__new(RPC_SIDE_CLIENT, ch->loop, max_recv, ch->limits.call_send_high);

    if (!call)
        return NULL;
    rpc_call_set_cbs(call, cbs, user);
    call->shape = opts->shape;
    call->recv_window = opts->recv_window;
    call->path = strdup(opts->path);
    if (!call->path)
        goto nomem;
    for (const char *const *md = opts->metadata; md && md[0] && md[1]; md += 2) {
        struct rpc_header *h = realloc(call->req_md, (call->n_req_md + 1) * sizeof(*h));
        if (!h)
            goto nomem;
        call->req_md = h;
        h[call->n_req_md].name = strdup(md[0]);
        h[call->n_req_md].value = strdup(md[1]);
        call->n_req_md++;
        if (!h[call->n_req_md - 1].name || !h[call->n_req_md - 1].value)
            goto nomem;
    }
    if (opts->timeout_ms > 0) {
        int64_t ms =
            opts->timeout_ms > INT64_MAX / 1000000 ? INT64_MAX / 1000000 : opts->timeout_ms;
        call->timeout_ns = ms * 1000000;
        call->deadline_ms = uv_now(ch->loop) + (uint64_t)ms;
        rpc_call__start_deadline(call);
    }
    if (ch->closing) {
        rpc_call__fail_async(call, RPC_UNAVAILABLE, "channel closed");
        return call;
    }
    if (ch->conn && (ch->conn->goaway_received || ch->conn->closing))
        ch->conn = NULL; /* it drains or dies on its own; new calls get a new connection */
    pending_add(ch, call);
    if (ch->conn)
        pump(ch, ch->conn);
    else
        ensure_connect(ch);
    return call;
nomem:
    call->handler_done = true;
    call->stream_closed = true;
    rpc_call__maybe_free(call);
    return NULL;
}

void rpc_channel_close(struct rpc_channel *ch, void (*cb)(void *arg), void *arg)
{
    if (ch->closing)
        return; /* already closing (a call's on_done may call it again) */
    ch->closing = true;
    ch->close_cb = cb;
    ch->close_arg = arg;
    ch->in_close = 1;
    dial_done(ch);
    fail_pending(ch, RPC_CANCELLED, "channel closed");
    if (ch->resolving)
        uv_cancel((uv_req_t *)&ch->gai);
    for (struct rpc_conn *c = ch->conns, *next; c; c = next) {
        next = c->next;
        rpc_conn__close(c, -ECANCELED, RPC_CANCELLED, "channel closed");
    }
    ch->in_close = 0;
    maybe_finish_close(ch);
}

/* ---- response headers, trailers, and the status at the end ---- */

static int on_header(struct rpc_call *call, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen)
{
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        int st = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            st = st * 10 + (value[i] - '0');
        call->http_status = st;
        return 0;
    }
    if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        int code = 0;
        bool ok = valuelen > 0 && valuelen <= 3;
        for (size_t i = 0; ok && i < valuelen; i++) {
            ok = value[i] >= '0' && value[i] <= '9';
            code = code * 10 + (value[i] - '0');
        }
        call->code = ok ? code : RPC_UNKNOWN;
        call->have_status = true;
        return 0;
    }
    if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        free(call->message);
        call->message = malloc(valuelen + 1);
        if (!call->message)
            return -ENOMEM;
        rpc_percent_decode((const char *)value, valuelen, call->message, valuelen + 1);
        return 0;
    }
    return rpc_call__add_header(call, name, namelen, value, valuelen);
}

/* A response that is not gRPC (a proxy's error page, say) ends the call with the status its HTTP
 * code maps to, as grpc's clients do; its body is not parsed as messages. */
static void refuse_response(struct rpc_conn *conn, struct rpc_call *call, int code, const char *why)
{
    rpc_call__set_local_status(call, code, why);
    call->recv_failed = true;
    nghttp2_submit_rst_stream(conn->session, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
}

static int on_headers(struct rpc_conn *conn, struct rpc_call *call, const nghttp2_frame *frame)
{
    const char *ct;
    char msg[160];

    if (call->got_headers)
        return 0; /* trailers */
    if (call->http_status < 200) {
        call->http_status = 0; /* 1xx is informational: the final response follows */
        return 0;
    }
    call->got_headers = true;
    if (call->have_status)
        return 0; /* Trailers-Only: grpc-status decides */
    if (call->http_status != 200) {
        snprintf(msg, sizeof(msg), "HTTP status %d", call->http_status);
        refuse_response(conn, call, rpc_code_from_http(call->http_status), msg);
        return 0;
    }
    ct = rpc_call_header(call, "content-type");
    if (!ct || strncmp(ct, "application/grpc", 16) != 0) {
        snprintf(msg, sizeof(msg), "unexpected content-type \"%.64s\"", ct ? ct : "");
        refuse_response(conn, call, RPC_UNKNOWN, msg);
    }
    return 0;
}

static void on_stream_close(struct rpc_conn *conn, struct rpc_call *call, uint32_t error_code)
{
    char msg[160];

    if (call->local_code) {
        rpc_call__end(call, call->local_code, call->local_message);
    } else if (call->have_status) {
        /* rpc_call__done checks that a unary response had exactly one message. */
        rpc_call__end(call, call->code, call->message);
    } else if (call->got_headers && call->http_status != 200) {
        snprintf(msg, sizeof(msg), "HTTP status %d", call->http_status);
        rpc_call__end(call, rpc_code_from_http(call->http_status), msg);
    } else if (error_code != NGHTTP2_NO_ERROR) {
        snprintf(msg, sizeof(msg), "stream reset by the server: %s",
                 nghttp2_http2_strerror(error_code));
        rpc_call__end(call, rpc_code_from_h2_error(error_code), msg);
    } else {
        rpc_call__end(call, RPC_INTERNAL, "stream ended without a gRPC status");
    }
    pump(conn->owner, conn);
}

static const struct rpc_conn_ops client_ops = {
    .on_ready = on_ready,
    .on_settings = on_settings,
    .on_goaway = on_goaway,
    .on_close = on_conn_close,
    .on_header = on_header,
    .on_headers = on_headers,
    .on_stream_close = on_stream_close,
};
