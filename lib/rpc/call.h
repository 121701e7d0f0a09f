/* One gRPC call (an HTTP/2 stream), the same object on the server and the client side. Messages
 * go out through a bounded send queue that flow control drains, and come in whole through
 * on_message; a receiver that cannot keep up pauses, which stops the stream's window updates so
 * the sender is held back by HTTP/2 flow control instead of by our memory. */
#ifndef NR_RPC_CALL_H
#define NR_RPC_CALL_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct rpc_call;

/* Bytes sent without a copy: a reference-counted wrapper of the caller's buffer, which the send
 * queue and the connection's output hold until written. release gives the bytes back (on the
 * loop thread) when the last reference goes. */
struct rpc_wbuf;
typedef void (*rpc_wbuf_release_fn)(void *ctx, uint8_t *data, size_t cap);
/* Wraps len bytes at data (cap allocated there) with one reference, the caller's. NULL when
 * out of memory (data stays the caller's). */
struct rpc_wbuf *rpc_wbuf_wrap(uint8_t *data, size_t len, size_t cap, rpc_wbuf_release_fn release,
                               void *ctx);
void rpc_wbuf_unref(struct rpc_wbuf *b);

enum rpc_shape {
    RPC_SHAPE_UNARY,         /* one request, one response */
    RPC_SHAPE_SERVER_STREAM, /* one request, a stream of responses */
    RPC_SHAPE_CLIENT_STREAM, /* a stream of requests, one response */
    RPC_SHAPE_BIDI,          /* both streams */
};

/* What a call tells its owner. Every callback runs on the loop thread, never from inside an
 * rpc_call_* function of the same call. Any member may be NULL. */
struct rpc_call_cbs {
    /* One whole message; `msg` is valid only during the call. */
    void (*on_message)(struct rpc_call *call, const uint8_t *msg, size_t len, void *user);
    /* The peer has sent its last message (server: the client half-closed). */
    void (*on_half_close)(struct rpc_call *call, void *user);
    /* rpc_call_writable() is true again (the call's queue fell below its low mark, and the
     * connection's below its high mark) after it had said false. */
    void (*on_writable)(struct rpc_call *call, void *user);
    /* The call is over, exactly once: finished (the status sent or received), cancelled, past
     * its deadline, or its connection lost. `message` may be empty, never NULL. The call is
     * freed when this returns: do not use it afterwards. */
    void (*on_done)(struct rpc_call *call, int code, const char *message, void *user);
};

/* Sets who receives the call's events. A server handler calls it from its start function. */
void rpc_call_set_cbs(struct rpc_call *call, const struct rpc_call_cbs *cbs, void *user);

/* Queues one message. The queue takes any amount; producers of streams keep it bounded by
 * sending only while rpc_call_writable() and resuming in on_writable. Returns 0, -EPIPE when the
 * sending side is already closed (finished, cancelled, or the call is over), -EMSGSIZE past
 * 4 GiB, or -ENOMEM. */
int rpc_call_send(struct rpc_call *call, const ProtobufCMessage *msg);
/* The same for a message already encoded: len bytes at data. Same returns. */
int rpc_call_send_raw(struct rpc_call *call, const void *data, size_t len);
/* One message of the n_head pieces of head (copied) then body (referenced until written, not
 * copied; body may be NULL): encodings of one protobuf message joined (repeated fields add up,
 * the later of a scalar wins), without the caller copying them together first. Same returns as
 * rpc_call_send. The queue takes a reference of its own: the caller keeps (and drops) its own. */
int rpc_call_send_ref(struct rpc_call *call, const struct iovec *head, int n_head,
                      struct rpc_wbuf *body);

/* True while the send queue is below its high mark (1 MiB + one message by default) and the
 * queues of all the connection's calls together below theirs (16 MiB by default). */
bool rpc_call_writable(const struct rpc_call *call);

/* Sets this call's high mark (limits.call_send_high by default): a handler that knows the size
 * of its messages keeps its send-ahead to a few of them. */
void rpc_call_set_send_high(struct rpc_call *call, size_t bytes);

/* Stops delivering messages: those already received wait, and once the stream's flow-control
 * window is used up the peer cannot send more. resume delivers what waited (on the next loop
 * turn) and reopens the window. */
void rpc_call_pause_recv(struct rpc_call *call);
void rpc_call_resume_recv(struct rpc_call *call);
/* As resume, but the messages already received are delivered before it returns where that is
 * safe (else on the next loop turn, as resume): for a handler that takes one message at a time
 * from many calls and cannot wait a loop turn for each. on_message may run, for this call, from
 * inside this function. */
void rpc_call_resume_recv_now(struct rpc_call *call);

/* Server: ends the call with a status after the queued messages; `message` (may be NULL) is
 * sent percent-encoded. A call with nothing sent yet answers Trailers-Only. on_done follows
 * once the trailers are out (or the stream ends otherwise). Returns 0 or -EPIPE if it was
 * already finished or is over. */
int rpc_call_finish(struct rpc_call *call, int code, const char *message);

/* Server, unary convenience: rpc_call_send + rpc_call_finish(OK). Returns the first error of
 * those two (-EPIPE, -EMSGSIZE, -ENOMEM), or 0. */
int rpc_call_reply(struct rpc_call *call, const ProtobufCMessage *msg);

/* Client: no more messages from us (END_STREAM after the queue drains). 0, or -EPIPE on the
 * server side, when already closed, or when the call is over. */
int rpc_call_close_send(struct rpc_call *call);

/* Either side: abandons the call (RST_STREAM CANCEL); on_done follows with CANCELLED. */
void rpc_call_cancel(struct rpc_call *call);

/* A request header (server) or response header/trailer (client) by lower-case name, or NULL.
 * On the server ":method", ":scheme" and ":authority" are kept too (":path" is rpc_call_path);
 * on the client, ":status", grpc-status and grpc-message are not (they are the call's status). */
const char *rpc_call_header(const struct rpc_call *call, const char *name);

/* The method path, "/package.Service/Method". */
const char *rpc_call_path(const struct rpc_call *call);

/* The peer's address as "ip:port" (server side), or "" when unknown. */
const char *rpc_call_peer(const struct rpc_call *call);

/* Unpacks a message with protobuf-c. Returns NULL when it is malformed. Free the result with
 * protobuf_c_message_free_unpacked(m, NULL). */
ProtobufCMessage *rpc_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *msg,
                             size_t len);

#endif
