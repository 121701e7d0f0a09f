/* What the parts of lib/rpc share and its users do not see: the connection (TCP, TLS and the
 * nghttp2 session), the call's fields, and the refcounted buffers output is made of. */
#ifndef NR_RPC_INTERNAL_H
#define NR_RPC_INTERNAL_H

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "rpc/call.h"
#include "rpc/frame.h"
#include "rpc/limits.h"

/* A byte buffer shared by the queues that reference it; freed with its last reference. Its
 * bytes follow it (rpc_wbuf__new), or are the caller's (rpc_wbuf_wrap: cap == len, so nothing is
 * ever appended to them, and release gives them back). */
struct rpc_wbuf {
    unsigned refs;
    size_t len;
    size_t cap;
    uint8_t *data;
    rpc_wbuf_release_fn release;
    void *release_ctx;
    size_t data_cap; /* what release is told was allocated */
    uint8_t inline_data[];
};

struct rpc_wbuf *rpc_wbuf__new(size_t cap);

/* A slice of a wbuf, holding a reference. */
struct rpc_seg {
    struct rpc_wbuf *buf;
    size_t off;
    size_t len;
};

struct rpc_conn;
struct rpc_channel;
struct rpc_server;

struct rpc_header {
    char *name;
    char *value;
};

enum rpc_side { RPC_SIDE_SERVER, RPC_SIDE_CLIENT };

struct rpc_call {
    enum rpc_side side;
    enum rpc_shape shape;
    struct rpc_conn *conn;       /* NULL while a client call waits for its connection */
    struct rpc_channel *channel; /* client: set while the call waits in the channel */
    /* client, set with channel: takes the call off the channel's list when the call ends before
     * its stream starts (the channel's business, reached through this, not by name) */
    void (*leave_channel)(struct rpc_call *call);
    struct rpc_call *next; /* in conn->calls or channel->pending */
    struct rpc_call *prev;
    int32_t stream_id; /* 0 until the stream exists */
    const struct rpc_call_cbs *cbs;
    void *user;
    char *path;
    char peer[64];

    /* receiving */
    struct rpc_frame_decoder dec;
    uint8_t *held; /* received bytes a paused handler has not taken yet */
    size_t held_len;
    size_t held_off;
    size_t held_cap;
    size_t unconsumed;   /* DATA bytes not yet given back to the stream's window */
    size_t unfinished;   /* our share of conn->unfinished */
    size_t kept;         /* our share of conn->kept */
    size_t conn_held;    /* connection window held for messages of a paused call */
    uint64_t recv_count; /* messages handed to on_message */
    bool paused;
    bool deliver_pending; /* conn's idle run must deliver held bytes */
    bool decoding;        /* inside decode(): on_message may be running */
    bool remote_closed;   /* END_STREAM received */
    bool half_close_told;
    bool recv_failed; /* input after an error is dropped */
    bool local_ended; /* we ended it (cancel, deadline, error): input is dropped */

    /* sending */
    struct rpc_seg *sendq; /* ring of segments */
    size_t sendq_cap;
    size_t sendq_head;
    size_t sendq_n;
    size_t queued;             /* bytes in sendq */
    uint64_t send_progress_ms; /* uv_now() when the queue last moved or became non-empty */
    bool sent_any;             /* a message was queued (the first gets a buffer of its size) */
    bool headers_sent;         /* server: response headers; client: request */
    bool local_closed;         /* server: finish called; client: close_send called */
    bool eof_sent;             /* the data provider reported EOF */
    bool trailers_sent;        /* server: the status went out */
    bool data_deferred;
    bool want_writable;

    /* ending */
    int code; /* server: status to send; client: status received */
    char *message;
    bool have_status; /* client: trailers carried grpc-status */
    int local_code;   /* non-zero: we ended it (CANCELLED, DEADLINE_EXCEEDED, ...) */
    char *local_message;
    int http_status;    /* client: :status of the response */
    bool got_headers;   /* client: response headers seen */
    bool handler_done;  /* on_done delivered */
    bool done_pending;  /* client: on_done waits for held messages to be read */
    bool stream_closed; /* the stream is gone (or never existed) */
    bool timer_closing;
    bool dispatched;       /* server: the request's header block was complete */
    bool stalled;          /* server: reset by the stall timeout */
    bool headers_overflow; /* server: the header list passed its limit (answered, not stored) */
    uint64_t born_ms;      /* server: uv_now() when its HEADERS began */
    size_t header_bytes;
    struct rpc_header *headers;
    size_t n_headers;
    size_t max_recv;
    uint32_t recv_window;      /* client: rpc_call_opts.recv_window (0: twice max_recv) */
    size_t send_high;          /* rpc_call_writable() is false at or above this */
    int64_t timeout_ns;        /* server: from grpc-timeout; client: from opts */
    uint64_t deadline_ms;      /* client: uv_now() at which the deadline passes, or 0 */
    struct rpc_header *req_md; /* client: request metadata until the request is sent */
    size_t n_req_md;
    uv_timer_t timer; /* deadline, and on_done for calls without a stream */
};

/* ---- call.c: what server.c, client.c and conn.c do with calls ---- */

struct rpc_call *rpc_call__new(enum rpc_side side, uv_loop_t *loop, size_t max_recv,
                               size_t send_high);
/* Frees the call once on_done was delivered and its stream is gone. */
void rpc_call__maybe_free(struct rpc_call *call);
int rpc_call__add_header(struct rpc_call *call, const uint8_t *name, size_t namelen,
                         const uint8_t *value, size_t valuelen);
/* Counts a received header against the limit as RFC 7540 does (name + value + 32); false once
 * the call's headers pass it (nghttp2 1.52 does not enforce SETTINGS_MAX_HEADER_LIST_SIZE). */
bool rpc_call__count_header(struct rpc_call *call, size_t limit, size_t namelen, size_t valuelen);
/* Delivers on_done once (the caller frees with rpc_call__maybe_free afterwards). */
void rpc_call__done(struct rpc_call *call, int code, const char *message);
/* The stream is over with this status: on_done now, or (client) once held messages are read. */
void rpc_call__end(struct rpc_call *call, int code, const char *message);
/* Ends a call that has no stream: on_done is delivered from the loop. */
void rpc_call__fail_async(struct rpc_call *call, int code, const char *message);
/* Input is still wanted: the handler is there and nothing ended the receiving side. */
bool rpc_call__wants_input(const struct rpc_call *call);
/* Received bytes the paused handler has not taken yet. */
bool rpc_call__held_pending(const struct rpc_call *call);
void rpc_call__held_free(struct rpc_call *call);
/* A receive-side failure: the server answers with the status, the client gives up the call. */
void rpc_call__fail_recv(struct rpc_call *call, int code, const char *message);
/* on_done (or the held messages before it) from the loop: the call's timer, at once. */
void rpc_call__wake(struct rpc_call *call);
/* DATA for the call arrived. */
void rpc_call__on_data(struct rpc_call *call, const uint8_t *data, size_t len);
/* The peer ended its side (END_STREAM). */
void rpc_call__on_remote_close(struct rpc_call *call);
/* Delivers held input and the half-close, and gives window back. */
void rpc_call__deliver(struct rpc_call *call);
/* Widens the stream's receive window to hold the call's largest message.
 * Call once the stream exists and max_recv is known. */
void rpc_call__fit_window(struct rpc_call *call);
/* The stream closed; gives the connection window back. on_done is the caller's business. */
void rpc_call__stream_closed(struct rpc_call *call);
/* Sends on_writable if it was wanted and the queue drained. */
void rpc_call__notify_writable(struct rpc_call *call);
/* Server: the call's output made no progress for stalled_ms: reset it (RST_STREAM CANCEL, on_done
 * DEADLINE_EXCEEDED) and log it. */
void rpc_call__stall(struct rpc_call *call, uint64_t stalled_ms);
/* Starts the deadline timer for timeout_ns. */
void rpc_call__start_deadline(struct rpc_call *call);
void rpc_call__set_local_status(struct rpc_call *call, int code, const char *message);
/* The data provider for the call's stream. */
nghttp2_data_provider rpc_call__data_provider(struct rpc_call *call);
/* Server: submits response headers or Trailers-Only as the call's state requires. */
int rpc_call__server_submit(struct rpc_call *call);
/* Server: builds the trailer list for the call's status into nva (4 entries max). */
size_t rpc_call__trailers(struct rpc_call *call, nghttp2_nv *nva, char *code_buf, char *msg_buf,
                          size_t msg_len);

/* ---- conn.c: one HTTP/2 connection ---- */

struct rpc_conn_ops {
    /* The connection is up (TCP connected; TLS handshake done if any). */
    void (*on_ready)(struct rpc_conn *conn);
    /* The peer's SETTINGS arrived (its stream limit may have changed). May be NULL. */
    void (*on_settings)(struct rpc_conn *conn); /* the peer's SETTINGS, or its ACK of ours */
    /* The peer sent GOAWAY: no new streams on this connection. May be NULL. */
    void (*on_goaway)(struct rpc_conn *conn);
    /* The connection is closing; its calls have had on_done. err < 0 for failures. */
    void (*on_close)(struct rpc_conn *conn, int err, const char *why);
    /* Role-specific nghttp2 callbacks (the server's begin_headers) are added here. May be NULL. */
    void (*setup_callbacks)(nghttp2_session_callbacks *cbs);
    /* One received header of the call's stream, already counted against the header-list limit.
     * Returns 0, or non-zero to reset the stream. */
    int (*on_header)(struct rpc_call *call, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen);
    /* A HEADERS frame for `call` is complete (before its END_STREAM is handled). Returns 0 or
     * an nghttp2 error code. */
    int (*on_headers)(struct rpc_conn *conn, struct rpc_call *call, const nghttp2_frame *frame);
    /* The call's stream closed with an HTTP/2 error code (0 for a clean close). The call is
     * already off the connection's list; deliver on_done if still owed. */
    void (*on_stream_close)(struct rpc_conn *conn, struct rpc_call *call, uint32_t error_code);
};

/* What the server's connections count for its metrics (rpc_server_get_stats). */
struct rpc_conn_stats {
    uint64_t handshake_timeouts;
    uint64_t idle_closed;
    uint64_t stalled_calls;
    uint64_t stalled_conns;
};

struct rpc_conn {
    uv_tcp_t tcp;
    uv_idle_t idle;
    uv_timer_t timer; /* server: handshake, idle and stall timeouts */
    uv_loop_t *loop;
    const struct rpc_conn_ops *ops;
    void *owner;           /* the server or the channel */
    struct rpc_conn *next; /* in the owner's list */
    struct rpc_conn *prev;
    struct rpc_limits limits;
    bool is_server;
    nghttp2_session *session;
    SSL *ssl;
    BIO *rbio; /* a read-only BIO over the bytes tls_read is given (none kept between reads) */
    BIO *wbio; /* a memory BIO: what OpenSSL writes, drained into the output at once */
    bool ready;
    bool closing;
    bool in_nghttp2; /* inside mem_recv/session_send: do not re-enter */
    bool goaway_received;
    bool settings_received; /* the peer's first SETTINGS arrived */
    bool settings_acked;    /* the peer acknowledged ours: they apply to new streams */
    bool read_paused;       /* reading stopped until our output drains (read_pace) */
    bool peer_gone;         /* reading or writing failed: nothing more gets through */
    bool lingering;         /* closed by us: FIN sent, the peer's bytes read and dropped */
    int close_err;          /* rpc_conn__close's err, for on_close after the linger */
    size_t linger_read;     /* bytes read and dropped while lingering */
    uv_shutdown_t shutdown_req;
    int handles_open;
    struct rpc_call *calls; /* calls with a stream on this connection */
    size_t n_calls;
    size_t queued;       /* bytes in its calls' send queues (limits.conn_send_high) */
    size_t unfinished;   /* bytes of unfinished messages across its calls */
    size_t kept;         /* bytes of gathering buffers kept between messages */
    struct rpc_seg *out; /* staged output, not yet handed to uv_write */
    size_t out_n;
    size_t out_cap;
    size_t staged;
    size_t inflight;          /* bytes in uv_write requests */
    struct rpc_wbuf *copybuf; /* tail chunk that small frames are copied into */
    char peer[64];
    char peer_ip[48];             /* its address alone: what the server counts per peer */
    char why[160];                /* why it closed */
    struct rpc_conn_stats *stats; /* the server's, or NULL */
    uint64_t started_ms;          /* uv_now() at rpc_conn__start */
    uint64_t idle_since_ms;       /* when its last call ended (or it started) */
    uint64_t drain_ms;            /* when the idle shutdown notice went out, or 0 */
    uint64_t write_progress_ms;   /* when the socket last took bytes (or output began waiting) */
    size_t write_queue_seen;      /* libuv's write queue size at the last check */
    bool close_deferred;          /* rpc_conn__close was called inside nghttp2 */
    int deferred_err;
    int deferred_code;
};

/* Sets up a connection object (tcp initialised, not connected). NULL on failure. */
struct rpc_conn *rpc_conn__new(uv_loop_t *loop, bool is_server, const struct rpc_limits *limits,
                               const struct rpc_conn_ops *ops, void *owner);
/* The socket is connected: make the session, start TLS if ssl_ctx, start reading. For a client
 * `host` is the name to verify and send as SNI (may be NULL), and `server` names the server for
 * TLS session resumption (rpc_tls__session_use; NULL: none). Returns 0 or negative errno. */
int rpc_conn__start(struct rpc_conn *conn, SSL_CTX *ssl_ctx, const char *host, const char *server);
/* Runs nghttp2's send loop and hands what it produced to the socket; notifies writable calls. */
void rpc_conn__flush(struct rpc_conn *conn);

/* The allocator of every nghttp2 session (mem.c): large blocks mapped, not taken from the heap. */
nghttp2_mem *rpc_mem__nghttp2(void);
/* Makes conn->session (session.c): the shared callbacks (and ops->setup_callbacks), options and
 * SETTINGS from conn->limits, the connection window. 0, -ENOMEM or NR_EPROTO_H2. */
int rpc_conn__session_new(struct rpc_conn *conn);
/* Asks for a flush of pending frames on the next loop turn. */
void rpc_conn__schedule(struct rpc_conn *conn);
/* Closes now: every call on it ends (code for their on_done), handles close, owner told. */
void rpc_conn__close(struct rpc_conn *conn, int err, int code, const char *why);
void rpc_conn__add_call(struct rpc_conn *conn, struct rpc_call *call);
void rpc_conn__remove_call(struct rpc_conn *conn, struct rpc_call *call);

/* ---- output.c: a connection's bytes on their way to the socket ---- */

/* True when as much as limits.write_high waits for the socket: stop producing frames. */
bool rpc_out__full(const struct rpc_conn *conn);
/* Stages a copy of bytes (encrypted first with TLS). 0, -ENOMEM or NR_ETLS. */
int rpc_out__copy(struct rpc_conn *conn, const uint8_t *data, size_t len);
/* Stages a slice of a message buffer: referenced in plaintext, encrypted (copied) with TLS. */
int rpc_out__ref(struct rpc_conn *conn, struct rpc_wbuf *buf, size_t off, size_t len);
/* Moves what OpenSSL produced (handshake records, alerts) into staged output. */
int rpc_out__tls_drain(struct rpc_conn *conn);
/* Hands everything staged to one uv_write. 0 or a negative errno. */
int rpc_out__submit(struct rpc_conn *conn);

#endif
