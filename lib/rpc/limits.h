/* The sizes that bound what one HTTP/2 connection may cost us, shared by servers and clients. */
#ifndef NR_RPC_LIMITS_H
#define NR_RPC_LIMITS_H

#include <stddef.h>
#include <stdint.h>

struct rpc_limits {
    uint32_t max_concurrent_streams; /* we accept this many streams at once (default 100) */
    uint32_t stream_window;          /* per-stream receive window (default 16 MiB) */
    uint32_t conn_window;            /* connection receive window (default 64 MiB) */
    uint32_t max_frame_size;         /* largest frame we accept (default 1 MiB) */
    uint32_t max_header_list;        /* bytes of one header list, counted as RFC 7540 does
                                        (default 16 KiB) */
    size_t max_recv_size;            /* default maximum message (4 MiB) */
    size_t max_unfinished;           /* bytes of unfinished messages one connection may hold
                                        across its streams; the stream that passes it gets
                                        RESOURCE_EXHAUSTED (default 64 MiB) */
    size_t max_kept;                 /* bytes of message buffers one connection keeps between
                                        messages for reuse (default 8 MiB) */
    size_t write_high;               /* bytes queued for the socket before we stop producing
                                        frames (default 4 MiB) */
    size_t call_send_high;           /* a call's send queue is "not writable" above this
                                        (default 1 MiB) */
};

void rpc_limits_init(struct rpc_limits *l);

#endif
