/* Store.Ingest (see ingest.h): batch by batch, check, deduplicate, rotate, make room, append. */
#include "store/ingest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "netreel/v1/store.pb-c.h"
#include "pcapng/encode.h"
#include "pcapng/keylog.h"
#include "rpc/status.h"
#include "store/batch.h"
#include "store/retention.h"
#include "store/segment.h"
#include "store/sync.h"
#include "util/error.h"
#include "util/log.h"
#include "util/prog.h"

struct store_ingest {
    struct store_ingest *next;
    struct store *s;
    struct rpc_call *call;
    struct store_stream *st;
    uint64_t id;      /* how the writer's callbacks find the call (it may be gone by then) */
    unsigned pending; /* its writes and markers queued to the writer */
    char peer[64];
    bool written; /* written_seq is set */
    uint64_t written_seq;
    bool sync_pending; /* a running sync covers sync_seq */
    uint64_t sync_seq;
    bool acked;
    uint64_t acked_seq;
    bool half_closed, finished;
};

/* The bytes a new segment's head and a pod/interface update may add, reserved before a write. */
#define HEAD_RESERVE (64u << 10)

static void unlink_ingest(struct store_ingest *ig)
{
    for (struct store_ingest **p = &ig->s->ingests; *p; p = &(*p)->next) {
        if (*p == ig) {
            *p = ig->next;
            return;
        }
    }
}

static void finish(struct store_ingest *ig, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void finish(struct store_ingest *ig, int code, const char *fmt, ...)
{
    char msg[512] = "";
    va_list ap;

    if (ig->finished)
        return;
    ig->finished = true;
    if (fmt) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
    }
    if (code != RPC_OK) {
        char q[600];
        NR_WARN("ingest refused", "peer=%s capture=%s code=%s reason=%s", ig->peer,
                ig->st ? ig->st->capture_id : "?", rpc_code_name(code),
                nr_log_quote(q, sizeof(q), msg));
    }
    rpc_call_finish(ig->call, code, msg[0] ? msg : NULL);
}

static void send_ack(struct store_ingest *ig, uint64_t seq)
{
    Netreel__V1__IngestAck ack = NETREEL__V1__INGEST_ACK__INIT;

    ack.capture_id = ig->st->capture_id;
    ack.seq = seq;
    if (rpc_call_send(ig->call, &ack.base) == 0) {
        ig->acked = true;
        ig->acked_seq = seq;
    }
}

static bool all_acked(const struct store_ingest *ig)
{
    return ig->pending == 0 && (!ig->written || (ig->acked && ig->acked_seq >= ig->written_seq));
}

static struct store_ingest *find_ingest(struct store *s, uint64_t id)
{
    for (struct store_ingest *ig = s->ingests; ig; ig = ig->next)
        if (ig->id == id)
            return ig;
    return NULL;
}

/* A sync is starting: it covers every batch written so far. */
static void sync_begin(struct store *s)
{
    for (struct store_ingest *ig = s->ingests; ig; ig = ig->next) {
        if (ig->written) {
            ig->sync_pending = true;
            ig->sync_seq = ig->written_seq;
        }
    }
}

/* The sync that started last has finished (ok false: acks wait for a sync that covers all). */
static void synced(struct store *s, bool ok)
{
    for (struct store_ingest *ig = s->ingests; ig; ig = ig->next) {
        if (!ig->sync_pending || !ok)
            continue;
        ig->sync_pending = false;
        if (!ig->finished && (!ig->acked || ig->sync_seq > ig->acked_seq))
            send_ack(ig, ig->sync_seq);
        if (ig->half_closed && all_acked(ig))
            finish(ig, RPC_OK, NULL);
    }
}

static const struct store_sync_cbs sync_cbs = {.begin = sync_begin, .end = synced};

/* The batch is written (or needs no write): with a sync interval it is acknowledged now, and
 * synced within the interval; without one the next sync's end acknowledges it. While syncs
 * cannot take every file (sync_starved) nothing is acknowledged before a sync covers it. */
static void written(struct store_ingest *ig, uint64_t seq)
{
    struct store *s = ig->s;

    if (!ig->written || seq > ig->written_seq)
        ig->written_seq = seq;
    ig->written = true;
    store_sync_later(s);
    if (s->cfg.sync_interval_ns <= 0 || s->sync_starved || ig->finished)
        return;
    if (!ig->acked || ig->written_seq > ig->acked_seq)
        send_ack(ig, ig->written_seq);
    if (ig->half_closed && all_acked(ig))
        finish(ig, RPC_OK, NULL);
}

static void done_up_to(struct store_stream *st, uint64_t seq)
{
    if (!st->have_done || seq > st->done_seq)
        st->done_seq = seq;
    st->have_done = true;
}

/* A write of the stream failed (on the writer thread, reported in order). What was queued after
 * it is void: the stream forgets those batches, so that resent they are taken again, and every
 * call of the stream ends with the error — the capture resends what was not acknowledged. */
static void stream_failed(struct store *s, struct store_write *w)
{
    struct store_stream *st = w->st;
    int code = w->rc == -ENOSPC || w->rc == -EDQUOT ? RPC_RESOURCE_EXHAUSTED : RPC_INTERNAL;
    struct store_ingest *ig, *next;

    st->epoch++;
    st->have_seq = st->have_done;
    st->last_seq = st->done_seq;
    if (code == RPC_RESOURCE_EXHAUSTED)
        s->batches_no_room++;
    if (w->seg)
        store_segment_write_failed(s, w, nr_now_ns());
    for (ig = s->ingests; ig; ig = next) {
        next = ig->next;
        if (ig->st == st)
            finish(ig, code, "batch seq %llu: cannot write to %s.pcapng: %s",
                   (unsigned long long)w->run.seq, w->seg ? w->seg->path : "?", nr_strerror(w->rc));
    }
}

/* On the loop, in the order queued: a write (or a marker) of the stream is done. */
static void write_done(struct store *s, struct store_write *w)
{
    struct store_stream *st = w->st;
    struct store_ingest *ig = find_ingest(s, w->owner);
    int rc = w->rc;

    st->pending--;
    if (ig)
        ig->pending--;
    if (w->epoch != st->epoch)
        goto out; /* queued before a failed write of the stream: void */
    if (rc == 0 && w->seg)
        rc = store_segment_written(s, w);
    if (rc != 0) {
        if (!w->rc)
            w->rc = rc;
        stream_failed(s, w);
        goto out;
    }
    if (w->seg) {
        st->packets += w->run.packets;
        st->bytes += w->run.length;
        s->keylog_bytes += w->keylog_len;
    }
    if (w->accepted)
        st->batches++;
    done_up_to(st, w->run.seq);
    if (ig && !ig->finished)
        written(ig, w->run.seq);
out:
    store_segment_write_end(w);
}

static void queue_write(struct store_ingest *ig, struct store_write *w, uint64_t seq)
{
    w->done = write_done;
    w->st = ig->st;
    w->owner = ig->id;
    w->epoch = ig->st->epoch;
    w->run.seq = seq;
    ig->st->pending++;
    ig->pending++;
    store_writer_queue(ig->s, w);
}

/* Batch seq needs no write (a duplicate, no packets, expired): acknowledged once every batch
 * queued before it is written — through a marker in the writer's line while any is. accepted:
 * a new batch (counted as such once settled), not a duplicate. */
static int settled(struct store_ingest *ig, uint64_t seq, bool accepted, char *err, size_t errlen)
{
    struct store_write *w;

    if (ig->st->pending == 0) {
        if (accepted)
            ig->st->batches++;
        done_up_to(ig->st, seq);
        written(ig, seq);
        return RPC_OK;
    }
    w = store_writer_take(ig->s, 0);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return RPC_RESOURCE_EXHAUSTED;
    }
    w->accepted = accepted;
    queue_write(ig, w, seq);
    return RPC_OK;
}

/* The stream took batch seq (queued or settled): later copies of it are duplicates. */
static void taken(struct store_stream *st, uint64_t seq, int64_t now_ns)
{
    st->have_seq = true;
    st->last_seq = seq;
    st->last_batch_ns = now_ns;
}

/* A new stream's directory; its name in data_dir is synced with the stream's first files. */
static int ensure_dir(struct store *s, const char *dir)
{
    if (mkdir(dir, 0700) == 0)
        s->root_dirty = true;
    else if (errno != EEXIST)
        return -errno;
    return 0;
}

static bool rotate_due(const struct store *s, const struct store_segment *seg, size_t len,
                       int64_t now_ns)
{
    return now_ns - seg->created_ns >= s->cfg.time_interval_ns ||
           seg->end + len > s->cfg.segment_cap;
}

static int keys_and_batch(struct store_ingest *ig, const Netreel__V1__PacketBatch *b,
                          const struct store_run *run, const struct nr_buf *dsb, size_t blen,
                          size_t len, int64_t now_ns, char *err, size_t errlen);

/* Writes a checked batch. Returns a gRPC code (RPC_OK) and a message in err. */
static int store_batch(struct store_ingest *ig, const Netreel__V1__PacketBatch *b,
                       const struct pcapng_batch_info *info, bool with_packets, int64_t now_ns,
                       char *err, size_t errlen)
{
    struct store_run run = {
        .first_ts_ns = with_packets ? info->first_ts_ns : 0,
        .last_ts_ns = with_packets ? info->last_ts_ns : 0,
        .seq = b->seq,
        .packets = with_packets ? info->packets : 0,
        .counters = ig->st->counters,
    };
    /* The batch's TLS key log lines go before its packets as one Decryption Secrets Block. */
    struct nr_buf dsb;
    size_t blen = with_packets ? b->blocks.len : 0;
    size_t len;
    int rc;

    nr_buf_init(&dsb, PCAPNG_DSB_MIN + PCAPNG_KEYLOG_MAX);
    if (b->tls_keylog.len && pcapng_dsb_append(&dsb, PCAPNG_DSB_TLS_KEYLOG, b->tls_keylog.data,
                                               b->tls_keylog.len) != 0) {
        nr_buf_free(&dsb);
        snprintf(err, errlen, "out of memory");
        return RPC_RESOURCE_EXHAUSTED;
    }
    len = dsb.len + blen;
    rc = keys_and_batch(ig, b, &run, &dsb, blen, len, now_ns, err, errlen);
    nr_buf_free(&dsb);
    return rc;
}

/* store_batch's body: the segment's end gets the DSB (dsb->len bytes, may be 0) and the blen
 * bytes of EPBs, len in all. */
static int keys_and_batch(struct store_ingest *ig, const Netreel__V1__PacketBatch *b,
                          const struct store_run *run, const struct nr_buf *dsb, size_t blen,
                          size_t len, int64_t now_ns, char *err, size_t errlen)
{
    struct store *s = ig->s;
    struct store_stream *st = ig->st;
    enum store_reason why = STORE_DEL_MAX_SIZE;
    struct store_segment *seg;
    struct store_write *w = NULL;
    int rc;

    if (st->active && rotate_due(s, st->active, len, now_ns))
        store_segment_close(s, st->active, now_ns);
    rc =
        store_retention_make_room(s, len + 2 * STORE_INDEX_RECORD_LEN + HEAD_RESERVE, now_ns, &why);
    if (ig->finished)
        return RPC_ABORTED;
    if (rc != 0) {
        snprintf(err, errlen, "no room for %zu bytes: %s", len,
                 why == STORE_DEL_MIN_FREE ? "the disk is below its free-space floor"
                                           : "the batch does not fit in max-size");
        return RPC_RESOURCE_EXHAUSTED;
    }
    if (!st->active) {
        rc = ensure_dir(s, st->dir);
        if (rc == 0)
            rc = store_segment_create(s, st, now_ns);
        if (rc != 0) {
            snprintf(err, errlen, "cannot create a segment in %s: %s", st->dir, nr_strerror(rc));
            return rc == -ENOSPC ? RPC_RESOURCE_EXHAUSTED : RPC_INTERNAL;
        }
    }
    seg = st->active;
    rc = store_segment_update_meta(s, seg, now_ns);
    /* Writing the metadata above first drained the writer, running the done of earlier
     * writes: one of them may have failed, which ended this call. */
    if (ig->finished)
        return RPC_ABORTED;
    if (rc == 0) {
        w = store_writer_take(s, STORE_APPEND_STAGE_NEED(len));
        rc = w ? store_segment_prepare(s, seg, dsb->data, dsb->len, b->blocks.data, blen, run,
                                       now_ns, w)
               : -ENOMEM;
        if (rc != 0 && w)
            store_writer_discard(s, w);
    }
    if (rc != 0) {
        snprintf(err, errlen, "cannot write to %s.pcapng: %s", seg->path, nr_strerror(rc));
        /* A segment we could not append to is finished; the next batch starts a new one. */
        store_segment_close(s, seg, now_ns);
        return rc == -ENOSPC || rc == -EDQUOT ? RPC_RESOURCE_EXHAUSTED : RPC_INTERNAL;
    }
    taken(st, b->seq, now_ns);
    w->accepted = true;
    w->keylog_len = b->tls_keylog.len;
    queue_write(ig, w, b->seq);
    return RPC_OK;
}

/* Checks that the call's batches keep to one capture id, and finds its stream (NULL for a
 * capture id the store has not seen: it is added once a batch of it passed the checks). */
static int bind_stream(struct store_ingest *ig, const char *capture_id, char *err, size_t errlen)
{
    if (ig->st) {
        if (strcmp(ig->st->capture_id, capture_id) == 0)
            return RPC_OK;
        snprintf(err, errlen, "one Ingest call carries one capture_id (%s, not %s)",
                 ig->st->capture_id, capture_id);
        return RPC_INVALID_ARGUMENT;
    }
    if (store_batch_check_id(capture_id) != 0) {
        snprintf(err, errlen, "capture_id must be 1..%u printable ASCII bytes without spaces",
                 STORE_INDEX_MAX_ID);
        return RPC_INVALID_ARGUMENT;
    }
    ig->st = store_stream_find(ig->s, capture_id);
    if (ig->st)
        NR_INFO("ingest resumed", "peer=%s capture=%s last_seq=%llu", ig->peer, capture_id,
                (unsigned long long)ig->st->last_seq);
    return RPC_OK;
}

/* A new capture id whose first batch passed the checks becomes a stream. */
static int add_stream(struct store_ingest *ig, const char *capture_id, char *err, size_t errlen)
{
    size_t n = 0;

    for (const struct store_stream *st = ig->s->streams; st; st = st->next)
        n++;
    if (n >= STORE_MAX_STREAMS) {
        snprintf(err, errlen,
                 "too many capture streams (%zu); restart the store to forget old ones", n);
        return RPC_RESOURCE_EXHAUSTED;
    }
    if (store_stream_add(ig->s, capture_id, &ig->st) != 0) {
        snprintf(err, errlen, "out of memory");
        return RPC_RESOURCE_EXHAUSTED;
    }
    ig->st->ended = false;
    NR_INFO("ingest started", "peer=%s capture=%s", ig->peer, capture_id);
    return RPC_OK;
}

static int handle(struct store_ingest *ig, const Netreel__V1__PacketBatch *b, char *err,
                  size_t errlen)
{
    struct store *s = ig->s;
    struct store_iface ifaces[STORE_MAX_INTERFACES];
    struct pcapng_batch_info info;
    uint32_t n_ifaces = 0;
    int64_t now_ns = nr_now_ns();
    struct store_stream *st;
    int code = bind_stream(ig, b->capture_id, err, errlen);

    if (code != RPC_OK)
        return code;
    st = ig->st;
    if (st && st->have_seq && b->seq <= st->last_seq) {
        st->duplicates++;
        s->batches_duplicate++;
        return settled(ig, st->last_seq, false, err, errlen);
    }
    code = store_batch_check(&s->cfg, st, b, now_ns, ifaces, &n_ifaces, &info, err, errlen);
    if (code == -ESTALE) /* not the batch's fault: the capture sends the list again, whole */
        return RPC_FAILED_PRECONDITION;
    if (code != 0) {
        s->batches_refused++;
        return RPC_INVALID_ARGUMENT;
    }
    if (!st) {
        code = add_stream(ig, b->capture_id, err, errlen);
        if (code != RPC_OK)
            return code;
        st = ig->st;
    }
    if (b->pods_update) {
        struct store_pods *pods = store_batch_pods(b);
        if (!pods) {
            snprintf(err, errlen, "out of memory");
            return RPC_RESOURCE_EXHAUSTED;
        }
        /* When the capture took it (its clock, like the packets'); a time from the future or
         * before the last set's is the store's own. */
        pods->since_ns = b->pods_since_ns > 0 && b->pods_since_ns <= now_ns + s->cfg.max_future_ns
                             ? b->pods_since_ns
                             : now_ns;
        if (st->pods && pods->since_ns < st->pods->since_ns)
            pods->since_ns = st->pods->since_ns;
        if (st->pods && !st->active) { /* the next segment's head keeps it */
            if (st->n_unwritten == STORE_MAX_UNWRITTEN) {
                store_pods_unref(st->unwritten[0]);
                memmove(st->unwritten, st->unwritten + 1,
                        (STORE_MAX_UNWRITTEN - 1) * sizeof(st->unwritten[0]));
                st->n_unwritten--;
            }
            store_pods_ref(st->pods);
            st->unwritten[st->n_unwritten++] = st->pods;
        }
        store_pods_unref(st->pods);
        st->pods = pods;
    }
    for (uint32_t i = st->n_ifaces; i < n_ifaces; i++) {
        if (ifaces[i].desc && !(ifaces[i].desc = strdup(ifaces[i].desc))) {
            while (i-- > st->n_ifaces)
                free(ifaces[i].desc);
            snprintf(err, errlen, "out of memory");
            return RPC_RESOURCE_EXHAUSTED;
        }
    }
    memcpy(st->ifaces, ifaces, n_ifaces * sizeof(ifaces[0]));
    st->n_ifaces = n_ifaces;
    if (b->node && b->node[0])
        snprintf(st->node, sizeof(st->node), "%s", b->node);
    if (b->counters) {
        st->counters.received = b->counters->received;
        st->counters.kernel_dropped = b->counters->kernel_dropped;
        st->counters.interface_dropped = b->counters->interface_dropped;
        st->counters.capture_dropped = b->counters->capture_dropped;
    }
    bool expired =
        info.packets > 0 && s->cfg.max_time_ns > 0 && info.last_ts_ns < now_ns - s->cfg.max_time_ns;
    if (expired)
        s->batches_expired++; /* already past max-time: retention would delete it at once */
    if ((info.packets > 0 && !expired) || b->tls_keylog.len > 0) {
        /* Key log lines are kept even when the packets expired: they may decrypt later ones. */
        code = store_batch(ig, b, &info, info.packets > 0 && !expired, now_ns, err, errlen);
        if (code == RPC_RESOURCE_EXHAUSTED)
            s->batches_no_room++;
        return code;
    }
    if (b->pods_update && st->active) {
        /* A set that came without packets goes into the pod history now: the next one could
         * replace it before any packet makes a write. */
        int rc = store_segment_update_meta(s, st->active, now_ns);
        if (ig->finished)
            return RPC_ABORTED;
        if (rc != 0)
            NR_WARN("the pod set was not written; its packets keep the pod history they had",
                    "capture=%s err=\"%s\"", st->capture_id, nr_strerror(rc));
    }
    taken(st, b->seq, now_ns);
    return settled(ig, b->seq, true, err, errlen);
}

static void on_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    struct store_ingest *ig = user;
    Netreel__V1__PacketBatch *b;
    char err[512] = "";
    int code;

    if (ig->finished)
        return;
    b = store_batch_unpack(msg, len);
    if (!b) {
        ig->s->batches_refused++;
        finish(ig, RPC_INVALID_ARGUMENT, "cannot parse PacketBatch (%zu bytes)", len);
        return;
    }
    code = handle(ig, b, err, sizeof(err));
    if (code != RPC_OK)
        finish(ig, code, "batch seq %llu: %s", (unsigned long long)b->seq, err);
    store_batch_free(b, msg, len);
}

static void on_half_close(struct rpc_call *call, void *user)
{
    struct store_ingest *ig = user;

    ig->half_closed = true;
    if (all_acked(ig) &&
        (ig->s->cfg.sync_interval_ns > 0 || (!ig->sync_pending && !ig->s->sync_running)))
        finish(ig, RPC_OK, NULL);
    else if (ig->s->cfg.sync_interval_ns <= 0)
        store_sync_request(ig->s);
}

static void on_done(struct rpc_call *call, int code, const char *message, void *user)
{
    struct store_ingest *ig = user;

    if (ig->st) {
        ig->st->ended = code == RPC_OK;
        NR_INFO("ingest ended", "peer=%s capture=%s last_seq=%llu code=%s", ig->peer,
                ig->st->capture_id, (unsigned long long)ig->st->last_seq, rpc_code_name(code));
    }
    unlink_ingest(ig);
    free(ig);
}

bool store_ingest_live(const struct store *s, const struct store_stream *st)
{
    for (const struct store_ingest *ig = s->ingests; ig; ig = ig->next)
        if (ig->st == st && !ig->finished)
            return true;
    return false;
}

static const struct rpc_call_cbs ingest_cbs = {
    .on_message = on_message,
    .on_half_close = on_half_close,
    .on_done = on_done,
};

int store_ingest_start(struct rpc_call *call, void *data)
{
    struct store *s = data;
    struct store_ingest *ig = calloc(1, sizeof(*ig));

    if (!ig)
        return -ENOMEM;
    ig->s = s;
    ig->call = call;
    ig->id = ++s->next_ingest_id;
    snprintf(ig->peer, sizeof(ig->peer), "%s", rpc_call_peer(call));
    ig->next = s->ingests;
    s->ingests = ig;
    rpc_call_set_cbs(call, &ingest_cbs, ig);
    if (s->sync_starved) /* what it wrote could not be acknowledged */
        finish(ig, RPC_RESOURCE_EXHAUSTED,
               "the store cannot sync its files (%s); it takes no new stream until it can",
               strerror(s->sync_starved));
    return 0;
}

void store_ingest_init(struct store *s)
{
    store_sync_set_cbs(s, &sync_cbs);
}

void store_ingest_tick(struct store *s, int64_t now_ns)
{
    enum store_reason why;

    /* Rotation without traffic: a quiet stream's segment is completed on time. */
    for (struct store_stream *st = s->streams; st; st = st->next) {
        if (st->active && now_ns - st->active->created_ns >= s->cfg.time_interval_ns)
            store_segment_close(s, st->active, now_ns);
    }
    store_retention_make_room(s, 0, now_ns, &why);
    if (s->n_sync_fds)
        store_sync_request(s);
}
