/* A gRPC server on libuv: listens (TCP, optionally TLS/mTLS), accepts HTTP/2 connections and
 * dispatches each call to a method of its table. grpc.health.v1.Health is always served. */
#ifndef NR_RPC_SERVER_H
#define NR_RPC_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "rpc/call.h"
#include "rpc/limits.h"
#include "util/metrics.h"

struct rpc_server;

/* Starts one call. Set the call's callbacks with rpc_call_set_cbs() before returning (or
 * finish it right away). A non-zero return finishes the call with INTERNAL. */
typedef int (*rpc_method_start_fn)(struct rpc_call *call, void *data);

struct rpc_method {
    const char *path; /* "/netreel.v1.Store/Ingest" */
    enum rpc_shape shape;
    rpc_method_start_fn start;
    void *data;           /* passed to start */
    size_t max_recv_size; /* 0: the server's max_recv_size */
    /* With mutual TLS, the certificate common names that may call it (NULL-terminated); NULL
     * or empty: any certificate the CA signed. Others get PERMISSION_DENIED. */
    const char *const *peers;
};

struct rpc_server_config {
    const char *listen;   /* "127.0.0.1:8897", ":8898" (all addresses), "[::1]:0" */
    const char *tls_cert; /* PEM; with tls_key turns TLS on */
    const char *tls_key;
    const char *tls_ca;                /* PEM; requires client certificates signed by it (mTLS) */
    struct rpc_limits limits;          /* also the handshake, idle and stall timeouts */
    unsigned max_connections;          /* default 1024; more are closed as they come */
    unsigned max_connections_per_peer; /* from one address; default 64, 0: no limit */
};

/* Fills defaults: listen NULL (must be set), no TLS, rpc_limits_init(), 1024 connections, 64
 * from one address. */
void rpc_server_config_init(struct rpc_server_config *cfg);

/* Creates a server; `methods` must outlive it. NULL on allocation failure. Sets SIGPIPE to be
 * ignored for the process: writes to a reset peer must fail with EPIPE, not kill it. */
struct rpc_server *rpc_server_new(uv_loop_t *loop, const struct rpc_server_config *cfg,
                                  const struct rpc_method *methods, size_t n_methods);

/* Loads TLS material and starts listening. Returns 0, or a negative errno / NR_ETLS with a
 * one-line reason in err ("cannot listen on 127.0.0.1:8897: address already in use"). */
int rpc_server_start(struct rpc_server *s, char *err, size_t errlen);

/* The port actually bound (useful with port 0), or -1 before start. */
int rpc_server_port(const struct rpc_server *s);

/* What the server holds now and what it has closed on its own (timeouts, too many). */
struct rpc_server_stats {
    uint64_t connections;              /* open now */
    uint64_t calls;                    /* open now */
    uint64_t refused_connections;      /* over max_connections */
    uint64_t refused_peer_connections; /* over max_connections_per_peer */
    uint64_t handshake_timeouts;       /* no TLS handshake, preface or request headers in time */
    uint64_t idle_closed;              /* no calls for limits.idle_timeout_ms */
    uint64_t stalled_calls;            /* reset: their output made no progress (stall timeout) */
    uint64_t stalled_connections;      /* closed: the socket took nothing (stall timeout) */
};

void rpc_server_get_stats(const struct rpc_server *s, struct rpc_server_stats *st);

/* Writes those as the netreel_rpc_* families. Returns m->err. */
int rpc_server_metrics_write(const struct rpc_server *s, struct nr_metrics *m);

/* Health of a service ("" is the whole server) for grpc.health.v1: 1 SERVING, 2 NOT_SERVING.
 * Watchers hear of changes. Returns 0 or -ENOMEM. */
int rpc_server_set_health(struct rpc_server *s, const char *service, int status);

/* Stops listening, sends GOAWAY and cancels every call (handlers see on_done CANCELLED), closes
 * connections, then frees the server and calls cb (may be NULL) from the loop. Calling it again
 * while it closes does nothing. */
void rpc_server_close(struct rpc_server *s, void (*cb)(void *arg), void *arg);

#endif
