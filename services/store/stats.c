/* Store.Stats (see stats.h). */
#include "store/stats.h"

#include <errno.h>
#include <stdlib.h>

#include "netreel/v1/store.pb-c.h"
#include "rpc/status.h"
#include "store/retention.h"
#include "store/segment.h"
#include "util/metrics.h"
#include "util/version.h"

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

int store_metrics_write(const struct store *s, struct nr_buf *b)
{
    struct nr_metrics m;
    uint64_t packets = 0, free_bytes = 0, fs_bytes = 0;
    int64_t oldest = 0, newest = 0;

    for (const struct store_segment *seg = s->seg_head; seg; seg = seg->next) {
        packets += seg->packets;
        if (seg->packets && (!oldest || seg->first_ts_ns < oldest))
            oldest = seg->first_ts_ns;
        if (seg->last_ts_ns > newest)
            newest = seg->last_ts_ns;
    }
    store_fs_space(s, &free_bytes, &fs_bytes);
    nr_metrics_init(&m, b);
    nr_metrics_family(&m, "netreel_store_info", NR_METRICS_GAUGE, "The store's version and node.");
    nr_metrics_u64(&m, NR_METRICS_LABELS({"version", NR_VERSION}, {"node", s->cfg.node}), 1);
    nr_metrics_family(&m, "netreel_store_bytes", NR_METRICS_GAUGE,
                      "Disk used by all segments and their indexes, in 4 KiB blocks.");
    nr_metrics_u64(&m, NULL, s->bytes);
    nr_metrics_family(&m, "netreel_store_max_bytes", NR_METRICS_GAUGE, "The --max-size limit.");
    nr_metrics_u64(&m, NULL, s->cfg.max_size);
    nr_metrics_family(&m, "netreel_store_segments", NR_METRICS_GAUGE, "Segments on disk.");
    nr_metrics_u64(&m, NULL, s->n_segments);
    nr_metrics_family(&m, "netreel_store_packets", NR_METRICS_GAUGE, "Packets retained.");
    nr_metrics_u64(&m, NULL, packets);
    nr_metrics_family(&m, "netreel_store_oldest_timestamp_seconds", NR_METRICS_GAUGE,
                      "Timestamp of the oldest packet retained (0: none).");
    nr_metrics_double(&m, NULL, (double)oldest / 1e9);
    nr_metrics_family(&m, "netreel_store_newest_timestamp_seconds", NR_METRICS_GAUGE,
                      "Timestamp of the newest packet retained (0: none).");
    nr_metrics_double(&m, NULL, (double)newest / 1e9);
    nr_metrics_family(&m, "netreel_store_disk_free_bytes", NR_METRICS_GAUGE,
                      "Free bytes on the data directory's file system.");
    nr_metrics_u64(&m, NULL, free_bytes);
    nr_metrics_family(&m, "netreel_store_deleted_segments_total", NR_METRICS_COUNTER,
                      "Segments deleted by retention, by reason.");
    for (int r = 0; r < STORE_DEL_N; r++)
        nr_metrics_u64(&m, NR_METRICS_LABELS({"reason", store_reason_names[r]}),
                       s->deleted_segments[r]);
    nr_metrics_family(&m, "netreel_store_deleted_bytes_total", NR_METRICS_COUNTER,
                      "Bytes deleted by retention, by reason.");
    for (int r = 0; r < STORE_DEL_N; r++)
        nr_metrics_u64(&m, NR_METRICS_LABELS({"reason", store_reason_names[r]}),
                       s->deleted_bytes[r]);
    nr_metrics_family(&m, "netreel_store_batches_total", NR_METRICS_COUNTER,
                      "Batches received, by what became of them.");
    {
        uint64_t written = 0;
        for (const struct store_stream *st = s->streams; st; st = st->next)
            written += st->batches;
        nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "accepted"}), written);
    }
    nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "duplicate"}), s->batches_duplicate);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "refused"}), s->batches_refused);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "expired"}), s->batches_expired);
    nr_metrics_u64(&m, NR_METRICS_LABELS({"result", "no_room"}), s->batches_no_room);
    nr_metrics_family(&m, "netreel_store_write_errors_total", NR_METRICS_COUNTER,
                      "Appends that failed (and were cut back).");
    nr_metrics_u64(&m, NULL, s->write_errors);
    nr_metrics_family(&m, "netreel_store_tls_keylog_bytes_total", NR_METRICS_COUNTER,
                      "Bytes of TLS key log lines written (as Decryption Secrets Blocks).");
    nr_metrics_u64(&m, NULL, s->keylog_bytes);
    {
        struct store_writer_counters wc;
        store_writer_counters(s, &wc);
        nr_metrics_family(&m, "netreel_store_writes_queued", NR_METRICS_GAUGE,
                          "Batch writes queued to the writer thread, not yet done.");
        nr_metrics_u64(&m, NULL, wc.queued);
        nr_metrics_family(&m, "netreel_store_writer_waits_total", NR_METRICS_COUNTER,
                          "Times taking in a batch waited for the disk (every stage buffer "
                          "in flight).");
        nr_metrics_u64(&m, NULL, wc.waits);
        nr_metrics_family(&m, "netreel_store_writes_grouped_total", NR_METRICS_COUNTER,
                          "Batch writes made together with the one queued before them (one "
                          "write to the device for several batches).");
        nr_metrics_u64(&m, NULL, wc.grouped);
    }
    nr_metrics_family(&m, "netreel_store_snapshots_active", NR_METRICS_GAUGE,
                      "Snapshots being served.");
    nr_metrics_u64(&m, NULL, s->snapshots_active);
    nr_metrics_family(&m, "netreel_store_snapshots_total", NR_METRICS_COUNTER,
                      "Snapshots served to the end.");
    nr_metrics_u64(&m, NULL, s->snapshots_served);
    nr_metrics_family(&m, "netreel_store_capture_packets_total", NR_METRICS_COUNTER,
                      "Packets stored per capture stream.");
    for (const struct store_stream *st = s->streams; st; st = st->next)
        nr_metrics_u64(&m, NR_METRICS_LABELS({"capture", st->capture_id}), st->packets);
    nr_metrics_family(&m, "netreel_store_capture_dropped_total", NR_METRICS_COUNTER,
                      "Packets the capture reports lost, per stream and where.");
    for (const struct store_stream *st = s->streams; st; st = st->next) {
        nr_metrics_u64(&m, NR_METRICS_LABELS({"capture", st->capture_id}, {"where", "kernel"}),
                       st->counters.kernel_dropped);
        nr_metrics_u64(&m, NR_METRICS_LABELS({"capture", st->capture_id}, {"where", "interface"}),
                       st->counters.interface_dropped);
        nr_metrics_u64(&m, NR_METRICS_LABELS({"capture", st->capture_id}, {"where", "capture"}),
                       st->counters.capture_dropped);
    }
    nr_metrics_family(&m, "netreel_store_capture_last_batch_timestamp_seconds", NR_METRICS_GAUGE,
                      "When each capture stream's last batch arrived.");
    for (const struct store_stream *st = s->streams; st; st = st->next)
        nr_metrics_double(&m, NR_METRICS_LABELS({"capture", st->capture_id}),
                          (double)st->last_batch_ns / 1e9);
    return m.err;
}
