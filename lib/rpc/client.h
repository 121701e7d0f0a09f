/* A gRPC client channel on libuv: one HTTP/2 connection to a target, made when the first call
 * needs it and made again after it is lost (with exponential backoff between failed attempts). */
#ifndef NR_RPC_CLIENT_H
#define NR_RPC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "rpc/call.h"
#include "rpc/limits.h"

struct rpc_channel;

struct rpc_channel_config {
    const char *target;    /* "host:port", "[v6]:port" */
    const char *authority; /* :authority and the TLS name to verify; default: target's host */
    bool tls;              /* TLS even without tls_ca (verifying against the system's CAs) */
    const char *tls_ca;    /* PEM: the CA the server's certificate must chain to; implies TLS */
    const char *tls_cert;  /* PEM: our client certificate (mTLS) */
    const char *tls_key;
    struct rpc_limits limits;
    uint32_t backoff_initial_ms; /* default 1000 */
    uint32_t backoff_max_ms;     /* default 30000 */
};

void rpc_channel_config_init(struct rpc_channel_config *cfg);

/* Creates a channel (no connection yet). NULL with a reason in err when the target is malformed
 * or the TLS material cannot be loaded. Ignores SIGPIPE for the process, as rpc_server_new. */
struct rpc_channel *rpc_channel_new(uv_loop_t *loop, const struct rpc_channel_config *cfg,
                                    char *err, size_t errlen);

struct rpc_call_opts {
    const char *path; /* "/netreel.v1.Store/Ingest" */
    enum rpc_shape shape;
    int64_t timeout_ms;          /* 0: no deadline */
    size_t max_recv_size;        /* 0: the channel's limit */
    const char *const *metadata; /* name, value, name, value, ..., NULL (lower-case names) */
    /* 0: the stream's receive window holds twice the largest message (a paused call holds up
     * to that). Else the window is this (at least the channel's stream_window, which it starts
     * at): the bytes of a message still arriving are given back while the call is not paused,
     * so a message larger than the window still comes, and a paused call holds at most its
     * unfinished message and this. For calls that must each cost little (a hub's thousand
     * store streams). */
    uint32_t recv_window;
};

/* Starts a call; it waits for the connection if one is being made. Returns NULL only when out
 * of memory; every other failure arrives in on_done (UNAVAILABLE when the target cannot be
 * reached). */
struct rpc_call *rpc_channel_call(struct rpc_channel *ch, const struct rpc_call_opts *opts,
                                  const struct rpc_call_cbs *cbs, void *user);

/* True while a connection is up. */
bool rpc_channel_connected(const struct rpc_channel *ch);

/* Cancels every call (on_done CANCELLED), closes the connection, frees the channel and calls cb
 * (may be NULL) once all of that is done — possibly before this returns. Calling it again while
 * it closes does nothing. */
void rpc_channel_close(struct rpc_channel *ch, void (*cb)(void *arg), void *arg);

/* TLS handshakes the client connections of this process finished: full ones, and those that
 * resumed a session the same server gave before (no certificates, no signatures). */
void rpc_client_tls_handshakes(uint64_t *full, uint64_t *resumed);

/* At most n channels of this thread make a connection at once (TCP connect, TLS handshake, the
 * server's SETTINGS); the others wait their turn, first come first served, their calls' deadlines
 * running. For a process that dials thousands of servers at once (the hub). 0: no limit (the
 * default). */
void rpc_client_set_max_dialing(unsigned n);

#endif
