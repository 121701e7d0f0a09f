/* Store.Snapshot (see snapshot.h): plan the window's runs, send the header, merge, summarise. */
#include "store/snapshot.h"

#include "store/snapshot_parts.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "netreel/v1/store.pb-c.h"
#include "pcapng/decode.h"
#include "pcapng/encode.h"
#include "pcapng/keylog.h"
#include "pcapng/merge.h"
#include "rpc/status.h"
#include "store/segment.h"
#include "store/select.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/log.h"
#include "util/pbwire.h"
#include "util/prog.h"

#define READ_CHUNK (128u << 10)
/* Its field number (proto/netreel/v1/common.proto): protobuf-c hands the filter over
 * NUL-terminated, and a NUL inside it must be refused, not cut at (pbwire.h). */
#define SNAPSHOT_REQUEST_FILTER 3
#define TURN_BUDGET             (8u << 20) /* bytes produced per loop turn before letting others run */

static void src_release(struct snap_src *src)
{
    nr_buf_free(&src->buf);
    if (src->held) {
        store_segment_release(src->seg);
        src->held = false;
    }
}

static void snapshot_free(uv_handle_t *h)
{
    struct store_snapshot *snap = h->data;

    for (size_t i = 0; i < snap->n_srcs; i++)
        src_release(&snap->srcs[i]);
    for (size_t i = 0; i < snap->n_keys; i++)
        if (snap->keys[i].held)
            store_segment_release(snap->keys[i].seg);
    free(snap->keys);
    nr_buf_free(&snap->keys_read);
    nr_buf_free(&snap->keys_out);
    for (size_t i = 0; i < snap->n_filters; i++)
        pcap_freecode(&snap->filters[i].prog);
    free(snap->filters);
    free(snap->iface_filter);
    store_select_free(snap->select);
    free(snap->srcs);
    for (size_t i = 0; i < snap->n_streams; i++) {
        free(snap->streams[i].out_ids);
        free(snap->streams[i].gap_note);
    }
    free(snap->streams);
    free(snap->filter);
    pcapng_merge_free(&snap->heap);
    nr_buf_free(&snap->out);
    free(snap);
}

static void finish(struct store_snapshot *snap, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void finish(struct store_snapshot *snap, int code, const char *fmt, ...)
{
    char msg[512] = "";
    va_list ap;

    if (snap->finished)
        return;
    snap->finished = true;
    if (fmt) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
    }
    rpc_call_finish(snap->call, code, msg[0] ? msg : NULL);
}

/* Reads the run's next EPB into src->epb: 1, 0 at its end, or a negative error. */
static int src_next(struct snap_src *src)
{
    for (;;) {
        size_t avail = src->buf.len - src->bpos;
        uint32_t type;
        size_t blen;
        int k = avail ? pcapng_block_peek(src->buf.data + src->bpos, avail, &type, &blen) : 0;

        if (k == 1) {
            int rc = pcapng_epb_decode(src->buf.data + src->bpos, blen, &src->epb);
            if (rc != 0)
                return rc;
            src->bpos += blen;
            return 1;
        }
        if (k < 0)
            return k;
        if (src->pos == src->end)
            return avail == 0 ? 0 : NR_EPARSE; /* a torn block inside a run: corruption */
        /* Keep the partial block, read the next piece after it. */
        nr_buf_consume(&src->buf, src->bpos);
        src->bpos = 0;
        {
            size_t want =
                src->end - src->pos < READ_CHUNK ? (size_t)(src->end - src->pos) : READ_CHUNK;
            ssize_t r;
            int rc = nr_buf_reserve(&src->buf, want);
            if (rc != 0)
                return rc;
            do
                r = pread(src->seg->rfd, src->buf.data + src->buf.len, want, (off_t)src->pos);
            while (r < 0 && errno == EINTR);
            if (r < 0)
                return -errno;
            if (r == 0)
                return NR_EPARSE;
            src->buf.len += (size_t)r;
            src->pos += (uint64_t)r;
        }
    }
}

/* Advances src and puts it back in the heap, or lets it go at its end (or past the window). */
static void src_advance(struct store_snapshot *snap, struct snap_src *src)
{
    int rc = src_next(src);

    if (rc == 1 && src->epb.ts_ns <= snap->until &&
        pcapng_merge_push(&snap->heap, src, src->epb.ts_ns, src->rank) == 0)
        return;
    if (rc < 0)
        NR_ERROR("a run cannot be read; its remaining packets are left out",
                 "segment=%s.pcapng offset=%llu err=\"%s\"", src->seg->path,
                 (unsigned long long)src->run.offset, nr_strerror(rc));
    src_release(src);
}

/* Starts the runs that may hold the next packet in time order. */
static void admit(struct store_snapshot *snap)
{
    while (snap->next_src < snap->n_srcs) {
        struct snap_src *src = &snap->srcs[snap->next_src];
        int64_t min;
        if (pcapng_merge_peek(&snap->heap, &min, NULL) && src->run.first_ts_ns > min)
            break;
        snap->next_src++;
        nr_buf_init(&src->buf, PCAPNG_MAX_BLOCK + READ_CHUNK);
        src_advance(snap, src);
    }
}

static bool passes(struct store_snapshot *snap, uint32_t stream, uint32_t out_id,
                   const struct pcapng_epb *epb)
{
    struct pcap_pkthdr hdr = {.caplen = epb->caplen, .len = epb->origlen};

    if (snap->filters &&
        pcap_offline_filter(&snap->filters[snap->iface_filter[out_id]].prog, &hdr, epb->data) == 0)
        return false;
    return !snap->select || store_select_passes(snap->select, stream, out_id, epb);
}

/* Sends what buf holds as one StoreChunk of the given bytes kind (blocks or tls_keylog), and
 * empties it. */
static int send_bytes(struct store_snapshot *snap, Netreel__V1__StoreChunk__KindCase kind,
                      struct nr_buf *buf)
{
    Netreel__V1__StoreChunk c = NETREEL__V1__STORE_CHUNK__INIT;
    ProtobufCBinaryData *field =
        kind == NETREEL__V1__STORE_CHUNK__KIND_BLOCKS ? &c.blocks : &c.tls_keylog;

    if (buf->len == 0)
        return 0;
    c.kind_case = kind;
    field->data = buf->data;
    field->len = buf->len;
    buf->len = 0;
    snap->last_sent = uv_now(snap->s->loop);
    return rpc_call_send(snap->call, &c.base);
}

static int send_blocks(struct store_snapshot *snap)
{
    return send_bytes(snap, NETREEL__V1__STORE_CHUNK__KIND_BLOCKS, &snap->out);
}

static void send_summary(struct store_snapshot *snap);

static void turn_cb(uv_timer_t *t);

static int send_keys(struct store_snapshot *snap)
{
    return send_bytes(snap, NETREEL__V1__STORE_CHUNK__KIND_TLS_KEYLOG, &snap->keys_out);
}

/* Reads the next DSB of key log lines and adds its lines to the message being built; sends
 * that message first when they would take it past the chunk size, and at the end. One DSB
 * per call, so flow control is asked between them. Returns 0, or a negative error after which
 * the call is over. */
static int keys_step(struct store_snapshot *snap)
{
    struct snap_keys *k;
    struct pcapng_dsb dsb;
    ssize_t r;
    int rc;

    if (snap->next_key == snap->n_keys)
        return send_keys(snap);
    k = &snap->keys[snap->next_key];
    if (k->where.length > snap->keys_read.max) {
        rc = NR_EOVERSIZE;
        goto skip;
    }
    nr_buf_reset(&snap->keys_read, 0);
    rc = nr_buf_reserve(&snap->keys_read, k->where.length);
    if (rc != 0)
        goto skip;
    do
        r = pread(k->seg->rfd, snap->keys_read.data, k->where.length, (off_t)k->where.offset);
    while (r < 0 && errno == EINTR);
    rc = r < 0 ? -errno : (uint64_t)r != k->where.length ? NR_EPARSE : 0;
    if (rc == 0)
        rc = pcapng_dsb_decode(snap->keys_read.data, k->where.length, &dsb);
    if (rc == 0 && (dsb.secrets_type != PCAPNG_DSB_TLS_KEYLOG ||
                    pcapng_keylog_validate(dsb.data, dsb.len, NULL, NULL, 0) != 0))
        rc = NR_EPARSE;
    if (rc != 0)
        goto skip;
    if (snap->keys_out.len && snap->keys_out.len + dsb.len > snap->chunk) {
        rc = send_keys(snap);
        if (rc != 0)
            return rc;
    }
    if (nr_buf_append(&snap->keys_out, dsb.data, dsb.len) != 0)
        return -ENOMEM; /* a DSB holds at most a message's worth: only memory can be short */
skip:
    if (rc != 0)
        NR_ERROR("TLS key log lines cannot be read; they are left out",
                 "segment=%s.pcapng offset=%llu err=\"%s\"", k->seg->path,
                 (unsigned long long)k->where.offset, nr_strerror(rc));
    store_segment_release(k->seg);
    k->held = false;
    snap->next_key++;
    return 0;
}

static void produce(struct store_snapshot *snap)
{
    size_t budget = TURN_BUDGET;

    while (!snap->finished && rpc_call_writable(snap->call)) {
        struct snap_src *src;
        int64_t ts;

        if (budget == 0) {
            uv_timer_start(&snap->turn, turn_cb, 0, 0);
            return;
        }
        if (!snap->keys_sent) {
            /* The window's TLS key log lines come first, so a reader can write them ahead of
             * the packets they decrypt. */
            bool last = snap->next_key == snap->n_keys;
            int rc = keys_step(snap);
            if (rc != 0) {
                /* A send that failed ended the call already (as for blocks). */
                if (rc == -ENOMEM)
                    finish(snap, RPC_RESOURCE_EXHAUSTED, "out of memory");
                return;
            }
            snap->keys_sent = last;
            continue;
        }
        admit(snap);
        src = pcapng_merge_pop(&snap->heap, &ts);
        if (!src) {
            if (send_blocks(snap) != 0)
                return;
            if (!snap->follow) {
                send_summary(snap);
                return;
            }
            int rc = store_snap_follow_round(snap);
            if (rc < 0) {
                finish(snap, rc == NR_EPARSE ? RPC_INVALID_ARGUMENT : RPC_RESOURCE_EXHAUSTED, "%s",
                       rc == NR_EPARSE ? snap->compile_err : "cannot follow: out of memory");
                return;
            }
            if (rc > 0) {
                if (store_snap_send_more(snap) != 0)
                    return;
                snap->keys_sent = snap->next_key == snap->n_keys;
                continue;
            }
            if (store_snap_follow_idle(snap) == 0)
                uv_timer_start(&snap->turn, turn_cb, STORE_FOLLOW_ROUND_MS, 0);
            return;
        }
        if (ts == snap->since && snap->skip > 0) {
            snap->skip--; /* the caller has it: a resumed follow */
        } else if (ts >= snap->since) {
            struct snap_stream *ss = &snap->streams[src->stream];
            uint32_t out_id = src->epb.ifid < ss->n_out ? ss->out_ids[src->epb.ifid] : UINT32_MAX;
            if (out_id != UINT32_MAX && passes(snap, src->stream, out_id, &src->epb)) {
                size_t need = src->epb.block_len;
                if (snap->out.len && snap->out.len + need > snap->chunk && send_blocks(snap) != 0)
                    return;
                size_t before = snap->out.len;
                if (pcapng_epb_append_noted(&snap->out, &src->epb, out_id, snap->snaplen,
                                            ss->gap_note) != 0) {
                    finish(snap, RPC_RESOURCE_EXHAUSTED, "out of memory");
                    return;
                }
                free(ss->gap_note); /* said once, on the first packet after the gap */
                ss->gap_note = NULL;
                snap->packets++;
                snap->bytes += snap->out.len - before; /* as sent: after a snaplen cut */
                budget = budget > need ? budget - need : 0;
            }
        }
        src_advance(snap, src);
    }
}

static void turn_cb(uv_timer_t *t)
{
    produce(t->data);
}

static void on_writable(struct rpc_call *call, void *user)
{
    struct store_snapshot *snap = user;

    if (snap->started)
        produce(snap);
}

/* The caller closed its side: a follow ends with what the current round holds, then the
 * summary. */
static void on_half_close(struct rpc_call *call, void *user)
{
    struct store_snapshot *snap = user;

    if (!snap->follow)
        return;
    snap->follow = false;
    if (snap->started && !snap->finished)
        uv_timer_start(&snap->turn, turn_cb, 0, 0);
}

static void on_done(struct rpc_call *call, int code, const char *message, void *user)
{
    struct store_snapshot *snap = user;

    snap->over = true;
    snap->finished = true;
    snap->s->snapshots_active--;
    if (code != RPC_OK)
        NR_INFO("snapshot ended", "code=%s packets=%llu message=\"%s\"", rpc_code_name(code),
                (unsigned long long)snap->packets, message);
    uv_timer_stop(&snap->turn);
    if (!snap->compiling) /* else compile_done frees it */
        uv_close((uv_handle_t *)&snap->turn, snapshot_free);
}

/* On the thread pool: the first programs (compile_filters). */
static void compile_work(uv_work_t *w)
{
    struct store_snapshot *snap = w->data;

    snap->compile_rc = store_snap_compile_filters(snap);
}

static void begin(struct store_snapshot *snap);

static void compile_done(uv_work_t *w, int status)
{
    struct store_snapshot *snap = w->data;

    snap->compiling = false;
    if (snap->over) { /* the call ended meanwhile: on_done left the freeing to us */
        uv_close((uv_handle_t *)&snap->turn, snapshot_free);
        return;
    }
    if (status != 0)
        finish(snap, RPC_INTERNAL, "the filter was not compiled: %s", uv_strerror(status));
    else if (snap->compile_rc == NR_EPARSE)
        finish(snap, RPC_INVALID_ARGUMENT, "%s", snap->compile_err);
    else if (snap->compile_rc != 0)
        finish(snap, RPC_RESOURCE_EXHAUSTED, "cannot compile the filter: %s",
               nr_strerror(snap->compile_rc));
    else
        begin(snap);
}

static int cmp_pod(const void *a, const void *b)
{
    const struct store_pod *x = *(const struct store_pod *const *)a;
    const struct store_pod *y = *(const struct store_pod *const *)b;
    int c = x->family - y->family;

    if (!c)
        c = memcmp(x->ip, y->ip, 16);
    if (!c)
        c = strcmp(x->name, y->name);
    return c;
}

/* The header (first: with the window's pod names) or `more`: the output interfaces given ids
 * since the last one. */
static int send_ifaces(struct store_snapshot *snap, bool first)
{
    Netreel__V1__StoreChunk c = NETREEL__V1__STORE_CHUNK__INIT;
    Netreel__V1__WindowHeader h = NETREEL__V1__WINDOW_HEADER__INIT;
    uint32_t from = snap->n_announced, n_ifs = snap->n_out_ifaces - from;
    Netreel__V1__Interface *ifs = calloc(n_ifs + 1, sizeof(*ifs));
    Netreel__V1__Interface **ifp = calloc(n_ifs + 1, sizeof(*ifp));
    const struct store_pod **pods = NULL;
    Netreel__V1__PodName *pn = NULL, **pnp = NULL;
    char(*names)[2][STORE_MAX_NAME + 1] = NULL;
    size_t n_pods = 0, cap = 0, n_out = 0;
    int rc = -ENOMEM;

    if (!ifs || !ifp)
        goto out;
    for (size_t i = 0; i < snap->n_streams; i++) {
        const struct store_stream *st = snap->streams[i].st;
        for (uint32_t k = 0; k < snap->streams[i].n_out; k++) {
            uint32_t id = snap->streams[i].out_ids[k], o = id - from;
            if (id < from)
                continue;
            netreel__v1__interface__init(&ifs[o]);
            ifs[o].id = id;
            ifs[o].name = (char *)st->ifaces[k].name;
            ifs[o].link_type = st->ifaces[k].link_type;
            ifs[o].snaplen = snap->snaplen && snap->snaplen < st->ifaces[k].snaplen
                                 ? snap->snaplen
                                 : st->ifaces[k].snaplen;
            ifs[o].node = (char *)(st->node[0] ? st->node : snap->s->cfg.node);
            ifs[o].description = st->ifaces[k].desc ? st->ifaces[k].desc : "";
            ifp[o] = &ifs[o];
        }
    }
    /* The union of the pod sets of every segment in the window. */
    for (struct store_segment *seg = snap->s->seg_head; first && seg; seg = seg->next) {
        if (!seg->packets || seg->last_ts_ns < snap->since || seg->first_ts_ns > snap->until)
            continue;
        for (size_t i = 0; i < seg->n_pod_sets; i++) {
            for (size_t k = 0; k < seg->pod_sets[i]->n; k++) {
                if (n_pods == cap) {
                    const struct store_pod **p =
                        realloc(pods, (cap = cap ? cap * 2 : 64) * sizeof(*p));
                    if (!p)
                        goto out;
                    pods = p;
                }
                pods[n_pods++] = &seg->pod_sets[i]->pods[k];
            }
        }
    }
    if (n_pods) {
        qsort(pods, n_pods, sizeof(*pods), cmp_pod);
        pn = calloc(n_pods, sizeof(*pn));
        pnp = calloc(n_pods, sizeof(*pnp));
        names = calloc(n_pods, sizeof(*names));
        if (!pn || !pnp || !names)
            goto out;
        for (size_t i = 0; i < n_pods; i++) {
            const char *slash;
            if (i && cmp_pod(&pods[i - 1], &pods[i]) == 0)
                continue;
            netreel__v1__pod_name__init(&pn[n_out]);
            pn[n_out].ip.data = (uint8_t *)pods[i]->ip;
            pn[n_out].ip.len = pods[i]->family == 4 ? 4 : 16;
            slash = strchr(pods[i]->name, '/');
            snprintf(names[n_out][0], sizeof(names[0][0]), "%.*s",
                     slash ? (int)(slash - pods[i]->name) : 0, pods[i]->name);
            snprintf(names[n_out][1], sizeof(names[0][1]), "%s", slash ? slash + 1 : pods[i]->name);
            pn[n_out].namespace_ = names[n_out][0];
            pn[n_out].name = names[n_out][1];
            pnp[n_out] = &pn[n_out];
            n_out++;
        }
    }
    h.node = snap->s->cfg.node;
    h.n_interfaces = n_ifs;
    h.interfaces = ifp;
    h.n_pods = n_out;
    h.pods = pnp;
    if (first) {
        c.kind_case = NETREEL__V1__STORE_CHUNK__KIND_HEADER;
        c.header = &h;
    } else {
        c.kind_case = NETREEL__V1__STORE_CHUNK__KIND_MORE;
        c.more = &h;
    }
    rc = rpc_call_send(snap->call, &c.base);
    if (rc == 0)
        snap->n_announced = snap->n_out_ifaces;
out:
    free(ifs);
    free(ifp);
    free(pods);
    free(pn);
    free(pnp);
    free(names);
    return rc;
}

int store_snap_send_more(struct store_snapshot *snap)
{
    return snap->n_announced < snap->n_out_ifaces ? send_ifaces(snap, false) : 0;
}

static void send_summary(struct store_snapshot *snap)
{
    Netreel__V1__StoreChunk c = NETREEL__V1__STORE_CHUNK__INIT;
    Netreel__V1__StoreSummary sum = NETREEL__V1__STORE_SUMMARY__INIT;
    Netreel__V1__InterfaceStats *is = calloc(snap->n_streams + 1, sizeof(*is));
    Netreel__V1__InterfaceStats **isp = calloc(snap->n_streams + 1, sizeof(*isp));
    size_t n = 0;

    if (!is || !isp) {
        free(is);
        free(isp);
        finish(snap, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    for (const struct store_segment *seg = snap->s->seg_head; seg; seg = seg->next) {
        if (!seg->packets)
            continue;
        if (!sum.oldest_ns || seg->first_ts_ns < sum.oldest_ns)
            sum.oldest_ns = seg->first_ts_ns;
        if (seg->last_ts_ns > sum.newest_ns)
            sum.newest_ns = seg->last_ts_ns;
    }
    /* A capture's counters cover all its interfaces; they go with its first one. The window's
     * share is the difference between its last batch and the batch before its first. */
    for (size_t i = 0; i < snap->n_streams; i++) {
        const struct snap_stream *ss = &snap->streams[i];
        struct store_counters from = {0}, to;
        const struct store_run *before = NULL;
        if (!ss->has_runs || ss->n_out == 0)
            continue;
        to = ss->max_run.counters;
        for (const struct store_segment *seg = snap->s->seg_head; seg; seg = seg->next) {
            if (seg->stream != ss->st)
                continue;
            for (size_t k = 0; k < seg->n_runs; k++)
                if (seg->runs[k].seq < ss->min_run.seq &&
                    (!before || seg->runs[k].seq > before->seq))
                    before = &seg->runs[k];
        }
        from = before ? before->counters : ss->min_run.counters;
        netreel__v1__interface_stats__init(&is[n]);
        is[n].interface_id = ss->out_ids[0];
        is[n].start_ns = ss->first_ts > snap->since ? ss->first_ts : snap->since;
        is[n].end_ns = ss->last_ts < snap->until ? ss->last_ts : snap->until;
        is[n].received = to.received - (from.received < to.received ? from.received : to.received);
        is[n].dropped = (to.kernel_dropped + to.interface_dropped) -
                        (from.kernel_dropped + from.interface_dropped <=
                                 to.kernel_dropped + to.interface_dropped
                             ? from.kernel_dropped + from.interface_dropped
                             : to.kernel_dropped + to.interface_dropped);
        is[n].capture_dropped =
            to.capture_dropped -
            (from.capture_dropped < to.capture_dropped ? from.capture_dropped : to.capture_dropped);
        isp[n] = &is[n];
        n++;
    }
    sum.packets = snap->packets;
    sum.bytes = snap->bytes;
    sum.lost_segments = snap->lost_segments;
    sum.n_interface_stats = n;
    sum.interface_stats = isp;
    c.kind_case = NETREEL__V1__STORE_CHUNK__KIND_SUMMARY;
    c.summary = &sum;
    if (rpc_call_send(snap->call, &c.base) == 0) {
        snap->s->snapshots_served++;
        NR_INFO("snapshot served", "since_ns=%lld until_ns=%lld packets=%llu bytes=%llu runs=%zu",
                (long long)snap->since, (long long)snap->until, (unsigned long long)snap->packets,
                (unsigned long long)snap->bytes, snap->n_srcs);
        if (store_select_limited(snap->select) > 0)
            NR_WARN("snapshot: the pod regex stopped at its limit on some pod names; those pods "
                    "were selected",
                    "limited_matches=%zu", store_select_limited(snap->select));
        finish(snap, RPC_OK, NULL);
    }
    free(is);
    free(isp);
}

/* The window is collected and its filters compiled: the header, then the packets. */
static void begin(struct store_snapshot *snap)
{
    int rc = send_ifaces(snap, true);

    if (rc != 0) {
        finish(snap, RPC_RESOURCE_EXHAUSTED, "cannot start the snapshot: %s", nr_strerror(rc));
        return;
    }
    snap->started = true;
    produce(snap);
}

static void on_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    struct store_snapshot *snap = user;
    Netreel__V1__SnapshotRequest *req;
    int rc;

    if (snap->requested || snap->finished)
        return;
    req = netreel__v1__snapshot_request__unpack(NULL, len, msg);
    if (!req) {
        finish(snap, RPC_INVALID_ARGUMENT, "cannot parse SnapshotRequest (%zu bytes)", len);
        return;
    }
    if (req->filter && nr_pb_string_has_nul(msg, len, SNAPSHOT_REQUEST_FILTER, req->filter)) {
        finish(snap, RPC_INVALID_ARGUMENT, "the filter holds a NUL byte");
        goto out;
    }
    snap->since = req->since_ns;
    snap->until = req->until_ns ? req->until_ns : nr_now_ns();
    snap->snaplen = req->snaplen;
    snap->follow = req->follow;
    snap->skip = req->skip_at_since;
    if (snap->follow && req->until_ns) {
        finish(snap, RPC_INVALID_ARGUMENT,
               "follow goes on until the call ends: until_ns must be 0");
        goto out;
    }
    if (snap->follow)
        snap->until = INT64_MAX;
    snap->chunk = req->max_chunk_bytes == 0 || req->max_chunk_bytes > STORE_CHUNK_BYTES
                      ? STORE_CHUNK_BYTES
                  : req->max_chunk_bytes < STORE_MIN_CHUNK_BYTES ? STORE_MIN_CHUNK_BYTES
                                                                 : req->max_chunk_bytes;
    if (req->filter && strlen(req->filter) > STORE_MAX_FILTER) {
        finish(snap, RPC_INVALID_ARGUMENT, "filter of %zu bytes: at most %u", strlen(req->filter),
               STORE_MAX_FILTER);
        goto out;
    }
    if (snap->since < 0 || snap->until < snap->since) {
        finish(snap, RPC_INVALID_ARGUMENT,
               "the window is empty or reversed: since_ns %lld, until_ns %lld",
               (long long)snap->since, (long long)snap->until);
        goto out;
    }
    if (req->filter && req->filter[0]) {
        snap->filter = strdup(req->filter);
        if (!snap->filter) {
            finish(snap, RPC_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
    }
    {
        char why[512];
        rc = store_select_new(req, &snap->select, why, sizeof(why));
        if (rc != 0) {
            finish(snap, rc == NR_EPARSE ? RPC_INVALID_ARGUMENT : RPC_RESOURCE_EXHAUSTED, "%s",
                   rc == NR_EPARSE ? why : "out of memory");
            goto out;
        }
    }
    snap->requested = true; /* later requests on the call are ignored */
    rc = snap->follow ? store_snap_follow_round(snap) : store_snap_collect(snap);
    if (rc > 0)
        rc = 0;
    if (rc == 0 && snap->filter && snap->n_filters == 0) {
        int k; /* a window with no interfaces still checks the filter, for Ethernet */
        rc = store_snap_filter_for(snap, 1 /* LINKTYPE_ETHERNET */, &k);
    }
    if (rc != 0) {
        finish(snap, RPC_RESOURCE_EXHAUSTED, "cannot start the snapshot: %s", nr_strerror(rc));
        goto out;
    }
    if (snap->filter) {
        snap->compile.data = snap;
        snap->compiling = true;
        rc = uv_queue_work(snap->s->loop, &snap->compile, compile_work, compile_done);
        if (rc != 0) {
            snap->compiling = false;
            finish(snap, RPC_INTERNAL, "the filter was not compiled: %s", uv_strerror(rc));
        }
        goto out;
    }
    begin(snap);
out:
    netreel__v1__snapshot_request__free_unpacked(req, NULL);
}

static const struct rpc_call_cbs snapshot_cbs = {
    .on_message = on_message,
    .on_writable = on_writable,
    .on_half_close = on_half_close,
    .on_done = on_done,
};

int store_snapshot_start(struct rpc_call *call, void *data)
{
    struct store *s = data;
    struct store_snapshot *snap = calloc(1, sizeof(*snap));

    if (!snap)
        return -ENOMEM;
    snap->s = s;
    snap->call = call;
    pcapng_merge_init(&snap->heap, SIZE_MAX / 2);
    nr_buf_init(&snap->out, STORE_CHUNK_BYTES + PCAPNG_MAX_BLOCK);
    nr_buf_init(&snap->keys_read, PCAPNG_DSB_MIN + PCAPNG_KEYLOG_MAX);
    nr_buf_init(&snap->keys_out, STORE_CHUNK_BYTES);
    uv_timer_init(s->loop, &snap->turn);
    snap->turn.data = snap;
    s->snapshots_active++;
    rpc_call_set_cbs(call, &snapshot_cbs, snap);
    if (s->sync_starved) /* a snapshot's files would take descriptors it needs to sync */
        finish(snap, RPC_RESOURCE_EXHAUSTED,
               "the store cannot sync its files (%s); no snapshot until it can",
               strerror(s->sync_starved));
    return 0;
}
