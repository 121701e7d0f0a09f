/* The sizes and times that bound what one HTTP/2 connection may cost us, shared by servers and
 * clients (the timeouts are enforced on the server side only). */
#ifndef NR_RPC_LIMITS_H
#define NR_RPC_LIMITS_H

#include <stddef.h>
#include <stdint.h>

struct rpc_limits {
    uint32_t max_concurrent_streams; /* we accept this many streams at once (default 100) */
    /* Per-stream receive window (default 16 MiB). A client starts calls once the server has
     * acknowledged it; a server should not go below HTTP/2's 65535: a client's streams opened
     * before its ACK would lose the difference then (nghttp2 takes it off every stream). */
    uint32_t stream_window;
    uint32_t conn_window;     /* connection receive window (default 64 MiB) */
    uint32_t max_frame_size;  /* largest frame we accept (default 1 MiB) */
    uint32_t max_header_list; /* bytes of one header list, counted as RFC 7540 does
                                 (default 16 KiB) */
    uint32_t header_table;    /* bytes of HPACK dynamic table, each way (default 4096,
                                 HTTP/2's): 0 keeps no header entries, for a client of
                                 thousands of connections that sends few headers */
    size_t max_recv_size;     /* default maximum message (4 MiB) */
    size_t max_unfinished;    /* bytes of unfinished messages one connection may hold
                                 across its streams; the stream that passes it gets
                                 RESOURCE_EXHAUSTED (default 64 MiB) */
    size_t max_kept;          /* bytes of message buffers one connection keeps between
                                 messages for reuse (default 8 MiB) */
    size_t write_high;        /* bytes queued for the socket before we stop producing
                                 frames (default 4 MiB) */
    size_t call_send_high;    /* a call's send queue is "not writable" above this
                                 (default 1 MiB) */
    size_t conn_send_high;    /* and every call of a connection is "not writable" while
                                 their queues hold this much together (default 16 MiB):
                                 100 streams whose reader is stuck would hold 100 queues */
    /* Server only; 0 turns one off. A peer that says nothing must not keep a connection slot. */
    uint64_t handshake_timeout_ms; /* TLS handshake and the client's preface and SETTINGS, and
                                      any request's header block, must be complete within this
                                      (default 10 s); else the connection is closed */
    uint64_t idle_timeout_ms;      /* a connection without calls this long is sent GOAWAY and
                                      closed (default 5 min) */
    uint64_t stall_timeout_ms;     /* a call whose queued output made no progress this long
                                      (the peer's window stayed closed) is reset, and a
                                      connection whose socket took nothing this long is closed
                                      (default 60 s) */
};

void rpc_limits_init(struct rpc_limits *l);

#endif
