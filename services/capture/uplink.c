/* The Ingest call and its reconnection (see uplink.h). */
#include "capture/uplink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/pipeline.h"
#include "capture/spool.h"
#include "netreel/v1/store.pb-c.h"
#include "rpc/client.h"
#include "rpc/status.h"
#include "util/log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* A store that takes batches but acknowledges none for this long is hung (stopped, its disk
 * stuck, its node gone without a reset): said once, and counted, while the spool holds on. */
#define STALL_MS 10000

struct capture_uplink {
    struct capture *cap;
    struct rpc_channel *ch;
    struct rpc_call *call;
    uv_timer_t retry, deadline, stall;
    uint64_t backoff_ms;
    uint64_t progress_ms; /* the last ack, or when nothing sent was waiting for one */
    uint32_t sent_ifaces; /* the capture's interfaces 0..sent_ifaces-1 went on this call */
    uint32_t stream;      /* the capture stream of this call's batches */
    /* The next batch is of a new stream and those of this call's are all acknowledged: the
     * call was half-closed, and the next one carries the new stream. */
    bool switching;
    bool acked_on_call, failing, stalled, closing;
    void (*close_cb)(void *arg);
    void *close_arg;
    int handles;
};

static void start_call(struct capture_uplink *up);
static void open_call(struct capture_uplink *up);

/* A call carries one capture stream: at a batch of the next one, once everything this call
 * sent is acknowledged, it is ended (the store finishes it OK) and on_done opens the next. */
static void end_stream(struct capture_uplink *up)
{
    const struct capture_spool *sp = up->cap->spool;

    if (up->switching || sp->head != sp->cursor)
        return; /* already ending, or acks still to come (on_message calls back) */
    up->switching = true;
    rpc_call_close_send(up->call);
}

static void send_spool(struct capture_uplink *up)
{
    struct capture_spool *sp = up->cap->spool;
    struct capture_spool_entry *e;

    while (up->call && !up->switching && rpc_call_writable(up->call) && (e = sp->cursor)) {
        uint8_t *ifs = NULL;
        size_t ifs_len = 0;
        int rc;
        if (e->stream != up->stream) {
            end_stream(up);
            return;
        }
        /* The interfaces this batch needs and this call has not carried yet, in front of it:
         * after a reconnect, the whole table with the first batch. */
        if (e->interfaces > up->sent_ifaces &&
            capture_pipeline_interfaces(up->cap, e->stream, up->sent_ifaces, e->interfaces, &ifs,
                                        &ifs_len) != 0) {
            NR_WARN("out of memory for the interfaces of a batch; it waits", "seq=%" PRIu64,
                    e->seq);
            break; /* the next batch or heartbeat tries again */
        }
        {
            struct iovec head[2] = {{ifs, ifs_len}, {e->bytes, e->len}};
            rc = rpc_call_send_ref(up->call, head, 2, e->body);
        }
        free(ifs);
        capture_spool_next(sp);
        if (rc != 0)
            break;
        if (e->interfaces > up->sent_ifaces) {
            up->cap->c.ifaces_sent += e->interfaces - up->sent_ifaces;
            up->sent_ifaces = e->interfaces;
        }
    }
    if (up->closing && up->call && !up->switching && !sp->cursor)
        rpc_call_close_send(up->call);
}

static void on_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    struct capture_uplink *up = user;
    Netreel__V1__IngestAck *ack = netreel__v1__ingest_ack__unpack(NULL, len, msg);

    if (!ack) {
        NR_WARN("the store sent an ack that does not parse", "bytes=%zu", len);
        return;
    }
    up->cap->c.acked += capture_spool_ack(up->cap->spool, ack->seq);
    netreel__v1__ingest_ack__free_unpacked(ack, NULL);
    up->progress_ms = uv_now(up->cap->loop);
    if (up->cap->spool->cursor && up->cap->spool->cursor->stream != up->stream)
        send_spool(up); /* the batches of a new stream wait for this call's last ack */
    if (up->stalled) {
        up->stalled = false;
        up->failing = false;
        NR_INFO("store reachable again", "store=%s spool_batches=%zu", up->cap->cfg.store,
                up->cap->spool->entries);
    }
    if (!up->acked_on_call) {
        up->acked_on_call = true;
        up->backoff_ms = BACKOFF_MIN_MS;
        if (up->failing)
            NR_INFO("store reachable again", "store=%s spool_batches=%zu", up->cap->cfg.store,
                    up->cap->spool->entries);
        up->failing = false;
    }
}

static void on_writable(struct rpc_call *call, void *user)
{
    send_spool(user);
}

static void retry_cb(uv_timer_t *t)
{
    start_call(t->data);
}

/* Every second: batches sent on a live call, none acknowledged for STALL_MS? */
static void stall_cb(uv_timer_t *t)
{
    struct capture_uplink *up = t->data;
    const struct capture_spool *sp = up->cap->spool;
    uint64_t now = uv_now(up->cap->loop);
    bool waiting = up->call && sp->head && sp->cursor != sp->head;

    if (!waiting || up->closing) {
        up->progress_ms = now;
        return;
    }
    if (up->stalled || now - up->progress_ms < STALL_MS)
        return;
    up->stalled = true;
    up->cap->c.store_errors++;
    if (!up->failing)
        NR_WARN("store not acknowledging; batches wait in the spool",
                "store=%s seconds=%llu spool_batches=%zu", up->cap->cfg.store,
                (unsigned long long)((now - up->progress_ms) / 1000), sp->entries);
    up->failing = true;
}

static void finished(struct capture_uplink *up);

static void on_done(struct rpc_call *call, int code, const char *message, void *user)
{
    struct capture_uplink *up = user;
    unsigned long long seq;

    up->call = NULL;
    if (up->switching) {
        up->switching = false;
        if (code == RPC_OK && up->cap->spool->head) {
            open_call(up); /* the next stream, at once: this one ended as asked */
            if (up->call)
                return;
        }
    }
    if (up->closing) {
        finished(up);
        return;
    }
    if (code == RPC_INVALID_ARGUMENT) {
        /* The store refused a batch: resending it would fail forever. */
        up->cap->c.refused_batches++;
        if (sscanf(message, "batch seq %llu", &seq) == 1 && capture_spool_drop(up->cap->spool, seq))
            NR_ERROR("the store refused a batch; it is dropped", "seq=%llu reason=\"%s\"", seq,
                     message);
        else if (up->cap->spool->head) {
            NR_ERROR("the store refused a batch; the oldest is dropped",
                     "seq=%" PRIu64 " reason=\"%s\"", up->cap->spool->head->seq, message);
            capture_spool_drop(up->cap->spool, up->cap->spool->head->seq);
        }
    } else {
        up->cap->c.store_errors++;
        /* RESOURCE_EXHAUSTED: the store is there but its disk is full (or the batch does not
         * fit its max-size); said as such, not as an unreachable store. */
        if (!up->failing)
            NR_WARN(code == RPC_RESOURCE_EXHAUSTED ? "store has no room; batches wait in the spool"
                                                   : "store unreachable; batches wait in the spool",
                    "store=%s code=%s "
                    "reason=\"%s\"",
                    up->cap->cfg.store, rpc_code_name(code), message);
        up->failing = true;
    }
    capture_spool_rewind(up->cap->spool);
    uv_timer_start(&up->retry, retry_cb, up->backoff_ms, 0);
    up->backoff_ms = up->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : up->backoff_ms * 2;
}

static const struct rpc_call_cbs cbs = {
    .on_message = on_message,
    .on_writable = on_writable,
    .on_done = on_done,
};

/* A new call for the oldest unacknowledged batch's stream (the current one when none waits),
 * which everything unacknowledged is sent again on. */
static void open_call(struct capture_uplink *up)
{
    struct rpc_call_opts opts = {.path = "/netreel.v1.Store/Ingest", .shape = RPC_SHAPE_BIDI};
    const struct capture_spool *sp = up->cap->spool;

    up->acked_on_call = false;
    up->stalled = false;
    up->switching = false;
    up->sent_ifaces = 0;
    up->stream = sp->head ? sp->head->stream : up->cap->stream;
    up->progress_ms = uv_now(up->cap->loop);
    capture_spool_rewind(up->cap->spool);
    up->call = rpc_channel_call(up->ch, &opts, &cbs, up);
    if (!up->call) {
        if (!up->closing)
            uv_timer_start(&up->retry, retry_cb, up->backoff_ms, 0);
        return;
    }
    send_spool(up);
}

static void start_call(struct capture_uplink *up)
{
    if (up->call || up->closing)
        return;
    open_call(up);
}

struct capture_uplink *capture_uplink_new(struct capture *cap, char *err, size_t errlen)
{
    struct capture_uplink *up = calloc(1, sizeof(*up));
    struct rpc_channel_config cfg;

    if (!up) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    up->cap = cap;
    up->backoff_ms = BACKOFF_MIN_MS;
    rpc_channel_config_init(&cfg);
    cfg.target = cap->cfg.store;
    cfg.tls_ca = cap->cfg.tls_ca;
    cfg.tls_cert = cap->cfg.tls_cert;
    cfg.tls_key = cap->cfg.tls_key;
    cfg.backoff_initial_ms = BACKOFF_MIN_MS;
    cfg.backoff_max_ms = BACKOFF_MAX_MS;
    cfg.limits.max_recv_size = 1 << 16; /* acks are small */
    up->ch = rpc_channel_new(cap->loop, &cfg, err, errlen);
    if (!up->ch) {
        free(up);
        return NULL;
    }
    uv_timer_init(cap->loop, &up->retry);
    uv_timer_init(cap->loop, &up->deadline);
    uv_timer_init(cap->loop, &up->stall);
    up->retry.data = up->deadline.data = up->stall.data = up;
    up->progress_ms = uv_now(cap->loop);
    uv_timer_start(&up->stall, stall_cb, 1000, 1000);
    return up;
}

void capture_uplink_kick(struct capture_uplink *up)
{
    if (up->call)
        send_spool(up);
    else if (!uv_is_active((uv_handle_t *)&up->retry))
        start_call(up);
}

bool capture_uplink_connected(const struct capture_uplink *up)
{
    return up->call && !up->failing;
}

static void handle_closed(uv_handle_t *h)
{
    struct capture_uplink *up = h->data;

    if (--up->handles == 0) {
        void (*cb)(void *) = up->close_cb;
        void *arg = up->close_arg;
        free(up);
        if (cb)
            cb(arg);
    }
}

static void channel_closed(void *arg)
{
    struct capture_uplink *up = arg;

    up->handles = 3;
    uv_close((uv_handle_t *)&up->retry, handle_closed);
    uv_close((uv_handle_t *)&up->deadline, handle_closed);
    uv_close((uv_handle_t *)&up->stall, handle_closed);
}

static void finished(struct capture_uplink *up)
{
    uv_timer_stop(&up->retry);
    uv_timer_stop(&up->deadline);
    uv_timer_stop(&up->stall);
    if (up->ch) {
        struct rpc_channel *ch = up->ch;
        up->ch = NULL;
        rpc_channel_close(ch, channel_closed, up);
    }
}

static void deadline_cb(uv_timer_t *t)
{
    struct capture_uplink *up = t->data;

    if (up->cap->spool->entries)
        NR_WARN("stopping with batches the store has not acknowledged", "batches=%zu",
                up->cap->spool->entries);
    if (up->call)
        rpc_call_cancel(up->call); /* on_done follows and finishes */
    else
        finished(up);
}

void capture_uplink_close(struct capture_uplink *up, uint64_t timeout_ms, void (*cb)(void *arg),
                          void *arg)
{
    up->closing = true;
    up->close_cb = cb;
    up->close_arg = arg;
    uv_timer_stop(&up->retry);
    uv_timer_start(&up->deadline, deadline_cb, timeout_ms, 0);
    if (!up->call && up->cap->spool->entries)
        open_call(up); /* one last try to deliver what is left */
    else if (up->call)
        send_spool(up);
    if (!up->call)
        finished(up);
}
