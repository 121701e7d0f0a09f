/* A snapshot's merge (snapshot_parts.h): once every store has answered, the file's head; then
 * every store's next packet by time, through the sightings stage, into the caller's chunks while
 * the caller can take more; the summary at the end. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/snapshot_parts.h"
#include "rpc/status.h"
#include "util/error.h"
#include "util/log.h"
#include "util/prog.h"

/* The most bytes one loop turn merges before it lets the loop run. */
#define TURN_BUDGET (8u << 20)

static void turn_cb(uv_timer_t *t);

/* The sightings stage, told what each output interface is (the file's head set the bases). */
static int sightings_new(struct hub_snap *s)
{
    s->sg = hub_sightings_new(s->sightings, s->n_out_ifaces, s->pcap);
    if (!s->sg || (s->is_probe && !(s->clock = hub_clock_new(s->n))))
        return -ENOMEM;
    hub_sightings_clock(s->sg, s->clock);
    for (size_t i = 0; i < s->n; i++) {
        const Netreel__V1__WindowHeader *hd = s->srcs[i].header ? s->srcs[i].header->header : NULL;
        for (size_t k = 0; hd && k < hd->n_interfaces; k++) {
            const Netreel__V1__Interface *in = hd->interfaces[k];
            bool pod = in->description && strstr(in->description, "netreel.role=pod") != NULL;
            hub_sightings_iface(s->sg, s->srcs[i].ids[k], (uint16_t)in->link_type, pod,
                                (uint32_t)i);
        }
    }
    return 0;
}

/* Every store has answered with its header (or failed): write the file's head. */
void hub_snap_try_head(struct hub_snap *s)
{
    char err[512];
    int rc;

    if (s->head_sent || s->resolving || s->probe || s->waiting_headers > 0 || s->finished)
        return;
    if (s->refused[0]) {
        hub_snap_finish(s, RPC_INVALID_ARGUMENT, "%s", s->refused);
        return;
    }
    if (s->is_probe) { /* no file: the interfaces' ids are all it needs */
        rc = 0;
        for (size_t i = 0; rc == 0 && i < s->n; i++)
            if (s->srcs[i].header)
                rc = hub_snap_file_ifaces(s, &s->srcs[i], s->srcs[i].header->header, false, err,
                                          sizeof(err));
    } else {
        rc = hub_snap_file_head(s, err, sizeof(err));
    }
    if (rc != 0) {
        hub_snap_finish(s, rc == NR_EPARSE ? RPC_FAILED_PRECONDITION : RPC_INTERNAL, "%s", err);
        return;
    }
    if (sightings_new(s) != 0) {
        hub_snap_finish(s, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    s->head_sent = true;
    hub_snap_early_more(s);
}

static void send_summary(struct hub_snap *s)
{
    Netreel__V1__SnapshotSummary sum = NETREEL__V1__SNAPSHOT_SUMMARY__INIT;
    Netreel__V1__StoreResult *res = calloc(s->n + 1, sizeof(*res));
    Netreel__V1__StoreResult **resp = calloc(s->n + 1, sizeof(*resp));
    size_t missing = 0;

    if (!res || !resp || hub_snap_file_trailer(s) != 0) {
        free(res);
        free(resp);
        hub_snap_finish(s, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        struct hub_src *src = &s->srcs[i];
        netreel__v1__store_result__init(&res[i]);
        res[i].store = src->addr;
        res[i].node = (char *)hub_snap_src_node(src);
        res[i].ok = src->state == S_DONE;
        res[i].error = src->state == S_DONE ? (char *)"" : (char *)hub_snap_src_error(src);
        res[i].packets = src->packets;
        res[i].reached_ns = src->reached_ns;
        if (s->offsets && s->offsets[i].known) {
            res[i].clock_known = true;
            res[i].clock_offset_ns = s->offsets[i].offset_ns;
            res[i].clock_uncertainty_ns = s->offsets[i].uncertainty_ns;
            res[i].clock_samples = s->offsets[i].samples;
        }
        resp[i] = &res[i];
        missing += src->state != S_DONE;
    }
    if (s->keys_dropped)
        NR_WARN("TLS key log lines dropped", "bytes=%llu reason=\"%s\"",
                (unsigned long long)s->keys_dropped,
                s->pcap ? "a pcap file cannot hold them" : "over the 16 MiB a snapshot keeps");
    sum.packets = s->packets;
    sum.late = s->late;
    sum.resumed = s->resumed;
    for (size_t i = 0; i < s->n; i++)
        if (s->srcs[i].summary)
            sum.lost_segments += s->srcs[i].summary->summary->lost_segments;
    if (sum.lost_segments)
        NR_WARN("follow: the stores' retention deleted segments before the stream read them",
                "segments=%llu", (unsigned long long)sum.lost_segments);
    if (s->late)
        NR_WARN("follow: packets came later than the stream had got to; left out",
                "late=%llu lateness_ms=%lld", (unsigned long long)s->late,
                (long long)(s->lateness_ns / 1000000));
    sum.bytes = s->file_bytes + s->out.len;
    sum.n_stores = s->n;
    sum.stores = resp;
    /* The whole retained window (since 0) starts where its first packet does. */
    sum.since_ns = s->since > 0 || !s->packets ? s->since : s->first_ts;
    sum.until_ns = s->until;
    if (s->offsets)
        sum.clock_reference = (char *)hub_snap_src_node(&s->srcs[s->ref]);
    if (s->sg) {
        struct hub_sighting_stats st;
        hub_sightings_stats(s->sg, &st);
        sum.copies = st.copies + s->late_copies;
    }
    if (hub_snap_send_out(s, &sum) == 0) {
        s->h->snapshots_total++;
        s->h->packets_total += s->packets;
        s->h->bytes_total += sum.bytes;
        if (missing)
            s->h->snapshots_partial++;
        NR_INFO(
            "snapshot served",
            "stores=%zu missing=%zu packets=%llu copies=%llu bytes=%llu ms=%lld merge_waits=%llu",
            s->n, missing, (unsigned long long)s->packets, (unsigned long long)sum.copies,
            (unsigned long long)sum.bytes, (long long)((nr_now_ns() - s->started_ns) / 1000000),
            (unsigned long long)s->waits);
        hub_snap_finish(s, RPC_OK, NULL);
    }
    free(res);
    free(resp);
}

/* Follow, with stores the merge waits for: whether the oldest packet in hand is at or before
 * the watermark (hub_snap_follow_bound), computed again only when it may have moved. */
static bool follow_ready(struct hub_snap *s)
{
    int64_t top;

    if (!s->follow)
        return false;
    if (s->bound_gen != s->blocked_gen || !s->bound_valid) {
        s->bound = hub_snap_follow_bound(s);
        s->bound_gen = s->blocked_gen;
        s->bound_valid = true;
    }
    return pcapng_merge_peek(&s->heap, &top, NULL) && top <= s->bound;
}

/* Follow, waiting: the packets the sightings stage holds up to the watermark go out. 0, or -1
 * when the snapshot failed. */
static int follow_flush(struct hub_snap *s)
{
    int rc;

    if (!s->sg || s->bound == INT64_MAX)
        return 0;
    hub_sightings_advance(s->sg, s->bound);
    rc = hub_sightings_release(s->sg, &s->out, false, HUB_CHUNK_BYTES);
    s->packets = hub_sightings_written(s->sg);
    if (rc < 0) {
        hub_snap_finish(s, RPC_INTERNAL, "cannot write a packet: %s", nr_strerror(rc));
        return -1;
    }
    return 0;
}

/* Asks the cache for what the next turn reads of the store it takes: its packet's bytes (hashed
 * by the sightings stage) and the block after it (decoded next). */
static void prefetch_top(const struct hub_snap *s)
{
    void *p;
    const struct hub_src *top;

    if (!pcapng_merge_peek(&s->heap, NULL, &p))
        return;
    top = p;
    __builtin_prefetch(top->epb.data);
    if (top->pos < top->blk_len)
        __builtin_prefetch(top->blk + top->pos);
    if (top->key_state == KEY_SET)
        hub_sightings_prefetch(s->sg, top->key);
}

/* Merges while the caller can take more and every streaming store has a packet ready. */
static void produce_run(struct hub_snap *s)
{
    size_t budget = TURN_BUDGET;

    while (s->head_sent && !s->finished && (s->is_probe || rpc_call_writable(s->call))) {
        struct hub_src *src;
        int64_t ts;
        int rc;

        if (s->follow && s->keys.len > 0 && s->head_sent) {
            /* Lines that came mid-follow go ahead of the packets that follow them. */
            rc = hub_snap_file_keys(s);
            if (rc != 0) {
                hub_snap_finish(s, RPC_INTERNAL, "cannot write the TLS key log: %s",
                                nr_strerror(rc));
                return;
            }
            continue;
        }
        if (s->blocked > 0 && !follow_ready(s)) {
            /* A store's next packet may be the oldest: wait for it (a follow: until the
             * watermark passes the oldest packet in hand). */
            s->waits++;
            if (s->follow && follow_flush(s) != 0)
                return;
            hub_snap_send_out(s, NULL);
            return;
        }
        if (budget == 0) {
            uv_timer_stop(&s->timer);
            uv_timer_start(&s->timer, turn_cb, 0, 1000);
            return;
        }
        if (s->keys.len > 0) {
            /* Every store's key log lines are in (each sent them before its blocks, and no
             * store is blocked): they go ahead of the first packet, where Wireshark reads them
             * before the handshakes they decrypt. */
            rc = hub_snap_file_keys(s);
            if (rc != 0) {
                hub_snap_finish(s, RPC_INTERNAL, "cannot write the TLS key log: %s",
                                nr_strerror(rc));
                return;
            }
            if (s->out.len >= HUB_CHUNK_BYTES && hub_snap_send_out(s, NULL) != 0)
                return;
            continue;
        }
        src = pcapng_merge_pop(&s->heap, &ts);
        if (!src) {
            /* The merge is over: what the sightings stage still holds goes out, then the end. */
            rc = hub_sightings_release(s->sg, &s->out, true, HUB_CHUNK_BYTES);
            s->packets = hub_sightings_written(s->sg);
            if (rc < 0) {
                hub_snap_finish(s, RPC_INTERNAL, "cannot write a packet: %s", nr_strerror(rc));
                return;
            }
            if (rc == 0) {
                if (s->is_probe)
                    hub_snap_probe_done(s);
                else
                    send_summary(s);
                return;
            }
            if (hub_snap_send_out(s, NULL) != 0)
                return;
            continue;
        }
        if (s->follow && ts < s->out_ts) {
            /* Later than what the stream holds already: counted, never written out of order
             * (a copy of a packet the stream holds is a copy left out, not a packet lost). */
            if (hub_sightings_seen(s->sg, &src->epb, src->ids[src->epb.ifid]))
                s->late_copies++;
            else
                s->late++;
            src->ready = false;
            hub_snap_src_next(src);
            continue;
        }
        s->out_ts = ts;
        if (s->taken++ == 0)
            s->first_ts = ts;
        if (s->is_probe && s->taken > HUB_PROBE_MAX_PACKETS) {
            hub_snap_probe_done(s); /* enough to measure with */
            return;
        }
        if (src->key_state == KEY_NOT_YET)
            rc = hub_sightings_put(s->sg, &src->epb, src->ids[src->epb.ifid], ts, &s->out);
        else
            rc = hub_sightings_put_keyed(s->sg, &src->epb, src->ids[src->epb.ifid], ts,
                                         src->key_state == KEY_SET ? &src->key : NULL, &s->out);
        if (rc == 0)
            rc = hub_sightings_release(s->sg, &s->out, false, HUB_CHUNK_BYTES) < 0 ? -ENOMEM : 0;
        if (rc != 0) {
            hub_snap_finish(s, RPC_INTERNAL, "cannot write a packet: %s", nr_strerror(rc));
            return;
        }
        s->packets = hub_sightings_written(s->sg);
        src->packets++;
        src->reached_ns = ts;
        budget = budget > src->epb.block_len ? budget - src->epb.block_len : 0;
        src->ready = false;
        hub_snap_src_next(src);
        prefetch_top(s);
        if (s->out.len >= HUB_CHUNK_BYTES && hub_snap_send_out(s, NULL) != 0)
            return;
    }
}

void hub_snap_produce(struct hub_snap *s)
{
    if (s->producing)
        return; /* a store's message taken from within the run: the run goes on with it */
    s->producing = true;
    produce_run(s);
    s->producing = false; /* s is freed only from a close callback, never from here */
}

static void turn_cb(uv_timer_t *t)
{
    struct hub_snap *s = t->data;

    hub_snap_watch_stores(s);
    hub_snap_produce(s);
}
