/* Defaults for the per-connection bounds: windows large enough for bulk streams, caps on what a
 * peer can make us hold, and how long it may hold it without making progress. */
#include "rpc/limits.h"

#include "rpc/frame.h"

void rpc_limits_init(struct rpc_limits *l)
{
    l->max_concurrent_streams = 100;
    l->stream_window = 16u << 20;
    l->conn_window = 64u << 20;
    l->max_frame_size = 1u << 20;
    l->max_header_list = 16u << 10;
    l->header_table = 4096;
    l->max_recv_size = RPC_DEFAULT_MAX_MESSAGE;
    l->max_unfinished = 64u << 20;
    l->max_kept = 8u << 20;
    l->write_high = 4u << 20;
    l->call_send_high = 1u << 20;
    l->conn_send_high = 16u << 20;
    l->handshake_timeout_ms = 10 * 1000;
    l->idle_timeout_ms = 5 * 60 * 1000;
    l->stall_timeout_ms = 60 * 1000;
}
