/* Store.Snapshot with follow (snapshot_parts.h). A round takes what ingest committed since the
 * last round: the runs past where each capture stream got to (the first round: all of them), by
 * segment number and index within the segment, so a round costs what is new, not what is kept;
 * the DSBs and pod sets likewise. Runs wholly before the window are passed over. The round's runs
 * are merged in time order like a window's; rounds follow each other, so a run committed late
 * (a capture's batch of packets older than the last round's newest) comes in a later round,
 * behind newer packets: the hub's watermark places or counts it. A round runs when the last one
 * is sent and the caller can take more, so a slow reader holds the rounds back, not memory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/ingest.h"
#include "store/segment.h"
#include "store/snapshot_parts.h"
#include "util/error.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/prog.h"

/* Retention deleted `lost` segments of the stream before a round read them (a reader that
 * fell behind): counted, and said on the stream's next packet. */
static void note_gap(struct store_snapshot *snap, struct snap_stream *ss,
                     const struct store_segment *next, uint32_t lost)
{
    char from[40], to[40], note[384];

    snap->lost_segments += lost;
    nr_format_time(ss->taken_ts, 6, from, sizeof(from));
    nr_format_time(next->first_ts_ns, 6, to, sizeof(to));
    snprintf(note, sizeof(note),
             "netreel: %u segment%s of %s deleted by the store's retention before this follow read "
             "%s: packets between %s and %s are missing from the stream",
             lost, lost == 1 ? "" : "s", ss->st->capture_id, lost == 1 ? "it" : "them", from, to);
    NR_WARN("follow: retention deleted segments before the follow read them",
            "capture=%s segments=%u from=%s to=%s", ss->st->capture_id, lost, from, to);
    free(ss->gap_note);
    ss->gap_note = strdup(note);
}

/* Where stream ss is in seg: what of it earlier rounds took (nothing of a newer segment). A
 * newer segment when the current one went before all of it was taken, or with segments missing
 * in between, is a gap. */
static void place(struct store_snapshot *snap, struct snap_stream *ss,
                  const struct store_segment *seg)
{
    uint32_t lost;

    if (ss->placed && seg->segno == ss->segno) {
        ss->seen_cur = true;
        return;
    }
    if (ss->placed) {
        lost = seg->segno - ss->segno - 1 + (!ss->seen_cur && !ss->cur_done);
        if (lost > 0)
            note_gap(snap, ss, seg, lost);
    }
    ss->placed = true;
    ss->seen_cur = true;
    ss->cur_done = false;
    ss->segno = seg->segno;
    ss->n_runs = ss->n_keys = ss->n_sets = 0;
}

/* The new runs of seg (stream si) with packets in the window. Returns how many, or -ENOMEM. */
static int take_runs(struct store_snapshot *snap, struct store_segment *seg, size_t si)
{
    struct snap_stream *ss = &snap->streams[si];
    int added = 0;

    for (size_t i = ss->n_runs; i < seg->n_runs; i++) {
        const struct store_run *r = &seg->runs[i];
        int rc;
        if (r->packets && r->last_ts_ns > snap->newest_ns)
            snap->newest_ns = r->last_ts_ns;
        if (r->packets && r->last_ts_ns > ss->taken_ts)
            ss->taken_ts = r->last_ts_ns;
        if (!r->packets || r->last_ts_ns < snap->since)
            continue;
        rc = store_snap_add_src(snap, seg, si, r);
        if (rc < 0)
            return rc;
        if (rc > 0)
            break; /* the segment cannot be opened (logged): its runs are left out */
        added++;
    }
    ss->n_runs = seg->n_runs;
    ss->cur_done = !seg->active; /* closed: no run comes after these */
    return added;
}

int store_snap_follow_round(struct store_snapshot *snap)
{
    size_t first;
    int added = 0, rc;

    /* The last round is read and sent: its tables start over, so memory stays flat. */
    if (snap->next_src == snap->n_srcs && !pcapng_merge_peek(&snap->heap, NULL, NULL))
        snap->n_srcs = snap->next_src = 0;
    if (snap->next_key == snap->n_keys)
        snap->n_keys = snap->next_key = 0;
    first = snap->n_srcs;
    for (size_t i = 0; i < snap->n_streams; i++)
        snap->streams[i].seen_cur = false;
    for (struct store_segment *seg = snap->s->seg_head; seg; seg = seg->next) {
        struct snap_stream *ss;
        size_t si;
        if (store_snap_stream_index(snap, seg->stream, &si) != 0)
            return -ENOMEM;
        ss = &snap->streams[si];
        if (ss->placed && seg->segno < ss->segno)
            continue; /* done with in an earlier round */
        place(snap, ss, seg);
        if (snap->select && seg->n_pod_sets > ss->n_sets &&
            store_select_add_segment(snap->select, (uint32_t)si, seg, ss->n_sets) != 0)
            return -ENOMEM;
        ss->n_sets = seg->n_pod_sets;
        for (size_t i = ss->n_keys; i < seg->n_keys; i++) {
            if (store_snap_add_keys(snap, seg, i) != 0)
                return -ENOMEM;
            added++;
        }
        ss->n_keys = seg->n_keys;
        rc = take_runs(snap, seg, si);
        if (rc < 0)
            return rc;
        added += rc;
    }
    /* Interfaces the captures added since get ids before a packet can name them. */
    for (size_t i = 0; i < snap->n_streams; i++) {
        if (!snap->streams[i].has_runs)
            continue;
        rc = store_snap_stream_ifaces(snap, &snap->streams[i]);
        if (rc != 0)
            return rc;
    }
    store_snap_sort_srcs(snap, first);
    return added;
}

/* Whether a capture that sent packets lately is not connected, and did not end its call itself
 * (it stopped): after a store restart, or a lost connection, its spool comes once it has
 * reconnected (its backoff may take seconds). */
static bool captures_away(const struct store_snapshot *snap)
{
    int64_t now = nr_now_ns();

    for (size_t i = 0; i < snap->n_streams; i++) {
        const struct snap_stream *ss = &snap->streams[i];
        if (ss->taken_ts > now - STORE_FOLLOW_AWAY_NS && !ss->st->ended &&
            !store_ingest_live(snap->s, ss->st))
            return true;
    }
    return false;
}

int store_snap_follow_idle(struct store_snapshot *snap)
{
    Netreel__V1__StoreChunk c = NETREEL__V1__STORE_CHUNK__INIT;
    Netreel__V1__StoreProgress p = NETREEL__V1__STORE_PROGRESS__INIT;
    uint64_t now = uv_now(snap->s->loop);
    int rc;

    if (now - (uint64_t)snap->last_sent < STORE_FOLLOW_PROGRESS_MS)
        return 0;
    p.newest_ns = snap->newest_ns;
    p.captures_away = captures_away(snap);
    c.kind_case = NETREEL__V1__STORE_CHUNK__KIND_PROGRESS;
    c.progress = &p;
    snap->last_sent = (int64_t)now;
    rc = rpc_call_send(snap->call, &c.base);
    if (rc != 0)
        NR_DEBUG("follow: progress not sent", "err=\"%s\"", nr_strerror(rc));
    return rc;
}
