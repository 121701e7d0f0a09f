/* Store.Stats (see stats.h). */
#include "store/stats.h"

#include <errno.h>
#include <stdlib.h>

#include "netreel/v1/store.pb-c.h"
#include "rpc/status.h"
#include "store/segment.h"

static void on_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    const struct store *s = user;
    Netreel__V1__StoreStats out = NETREEL__V1__STORE_STATS__INIT;
    Netreel__V1__CaptureStats *cs = NULL, **csp = NULL;
    Netreel__V1__CaptureCounters *cc = NULL;
    Netreel__V1__DeletionCount del[STORE_DEL_N], *delp[STORE_DEL_N];
    size_t n = 0;

    for (const struct store_stream *st = s->streams; st; st = st->next)
        n++;
    cs = calloc(n + 1, sizeof(*cs));
    csp = calloc(n + 1, sizeof(*csp));
    cc = calloc(n + 1, sizeof(*cc));
    if (!cs || !csp || !cc) {
        rpc_call_finish(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    out.node = (char *)s->cfg.node;
    for (const struct store_segment *seg = s->seg_head; seg; seg = seg->next) {
        if (!seg->packets)
            continue;
        if (!out.oldest_ns || seg->first_ts_ns < out.oldest_ns)
            out.oldest_ns = seg->first_ts_ns;
        if (seg->last_ts_ns > out.newest_ns)
            out.newest_ns = seg->last_ts_ns;
        out.packets += seg->packets;
    }
    out.bytes = s->bytes;
    out.max_bytes = s->cfg.max_size;
    out.segments = s->n_segments;
    out.max_time_ns = s->cfg.max_time_ns;
    n = 0;
    for (const struct store_stream *st = s->streams; st; st = st->next, n++) {
        netreel__v1__capture_stats__init(&cs[n]);
        netreel__v1__capture_counters__init(&cc[n]);
        cs[n].capture_id = (char *)st->capture_id;
        cs[n].last_seq = st->last_seq;
        cs[n].batches = st->batches;
        cs[n].packets = st->packets;
        cs[n].bytes = st->bytes;
        cs[n].last_batch_ns = st->last_batch_ns;
        cc[n].received = st->counters.received;
        cc[n].kernel_dropped = st->counters.kernel_dropped;
        cc[n].interface_dropped = st->counters.interface_dropped;
        cc[n].capture_dropped = st->counters.capture_dropped;
        cs[n].counters = &cc[n];
        csp[n] = &cs[n];
    }
    out.n_captures = n;
    out.captures = csp;
    for (int r = 0; r < STORE_DEL_N; r++) {
        netreel__v1__deletion_count__init(&del[r]);
        del[r].reason = (char *)store_reason_names[r];
        del[r].segments = s->deleted_segments[r];
        del[r].bytes = s->deleted_bytes[r];
        delp[r] = &del[r];
    }
    out.n_deletions = STORE_DEL_N;
    out.deletions = delp;
    rpc_call_reply(call, &out.base);
out:
    free(cs);
    free(csp);
    free(cc);
}

static const struct rpc_call_cbs stats_cbs = {.on_message = on_message};

int store_stats_start(struct rpc_call *call, void *data)
{
    rpc_call_set_cbs(call, &stats_cbs, data);
    return 0;
}
