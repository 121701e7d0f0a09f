/* Store.Snapshot's plan (snapshot_parts.h): which runs, DSBs and interfaces a snapshot reads,
 * and the filter programs for the link types of its interfaces. */
#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/segment.h"
#include "store/snapshot_parts.h"
#include "util/error.h"
#include "util/log.h"

static int by_time(const void *a, const void *b)
{
    const struct snap_src *x = a, *y = b;

    if (x->run.first_ts_ns != y->run.first_ts_ns)
        return x->run.first_ts_ns < y->run.first_ts_ns ? -1 : 1;
    if (x->stream != y->stream)
        return x->stream < y->stream ? -1 : 1;
    return x->run.seq < y->run.seq ? -1 : x->run.seq > y->run.seq;
}

int store_snap_stream_index(struct store_snapshot *snap, struct store_stream *st, size_t *idx)
{
    for (size_t i = 0; i < snap->n_streams; i++) {
        if (snap->streams[i].st == st) {
            *idx = i;
            return 0;
        }
    }
    struct snap_stream *p = realloc(snap->streams, (snap->n_streams + 1) * sizeof(*p));
    if (!p)
        return -ENOMEM;
    snap->streams = p;
    memset(&p[snap->n_streams], 0, sizeof(*p));
    p[snap->n_streams].st = st;
    *idx = snap->n_streams++;
    return 0;
}

/* The index in snap->filters of the program for link type lt, added (not compiled yet) when
 * new. 0 or -ENOMEM. */
int store_snap_filter_for(struct store_snapshot *snap, uint32_t lt, int *k)
{
    struct snap_filter *f;

    for (size_t i = 0; i < snap->n_filters; i++) {
        if (snap->filters[i].link_type == lt) {
            *k = (int)i;
            return 0;
        }
    }
    f = realloc(snap->filters, (snap->n_filters + 1) * sizeof(*f));
    if (!f)
        return -ENOMEM;
    snap->filters = f;
    memset(&f[snap->n_filters], 0, sizeof(*f));
    f[snap->n_filters].link_type = lt;
    *k = (int)snap->n_filters++;
    return 0;
}

/* Compiles the programs not compiled yet: 0, NR_EPARSE (compile_err says why) or -ENOMEM.
 * libpcap's optimizer takes time that grows steeply with the expression (a 5 KiB `host A or
 * host B ...` takes seconds), so it is used on short filters only; longer ones (up to
 * STORE_MAX_FILTER) compile as they are, in about a second at worst. */
int store_snap_compile_filters(struct store_snapshot *snap)
{
    int optimize = strlen(snap->filter) <= STORE_OPTIMIZE_FILTER;

    for (size_t k = 0; k < snap->n_filters; k++) {
        struct snap_filter *f = &snap->filters[k];
        pcap_t *p;
        if (f->compiled)
            continue;
        p = pcap_open_dead((int)f->link_type, PCAPNG_MAX_SNAPLEN);
        if (!p)
            return -ENOMEM;
        if (pcap_compile(p, &f->prog, snap->filter, optimize, PCAP_NETMASK_UNKNOWN) != 0) {
            snprintf(snap->compile_err, sizeof(snap->compile_err),
                     "filter \"%.200s\" does not compile for link type %u: %s", snap->filter,
                     f->link_type, pcap_geterr(p));
            pcap_close(p);
            return NR_EPARSE;
        }
        f->compiled = true;
        pcap_close(p);
    }
    return 0;
}

int store_snap_stream_ifaces(struct store_snapshot *snap, struct snap_stream *ss)
{
    const struct store_stream *st = ss->st;
    uint32_t *ids;
    int rc;

    if (ss->n_out >= st->n_ifaces)
        return 0;
    ids = realloc(ss->out_ids, st->n_ifaces * sizeof(*ids));
    if (!ids)
        return -ENOMEM;
    ss->out_ids = ids;
    if (snap->filter) {
        int *m = realloc(snap->iface_filter, (snap->n_out_ifaces + st->n_ifaces) * sizeof(*m));
        if (!m)
            return -ENOMEM;
        snap->iface_filter = m;
    }
    for (uint32_t k = ss->n_out; k < st->n_ifaces; k++) {
        uint32_t o = snap->n_out_ifaces;
        if (snap->select &&
            store_select_iface(snap->select, o, st->ifaces[k].link_type, st->ifaces[k].desc) != 0)
            return -ENOMEM;
        if (snap->filter &&
            store_snap_filter_for(snap, st->ifaces[k].link_type, &snap->iface_filter[o]) != 0)
            return -ENOMEM;
        ids[k] = o;
        ss->n_out = k + 1;
        snap->n_out_ifaces++;
    }
    /* Later than the first compile (a follow): a new link type compiles here, on the loop. */
    if (snap->filter && snap->started && (rc = store_snap_compile_filters(snap)) != 0)
        return rc;
    return 0;
}

int store_snap_add_src(struct store_snapshot *snap, struct store_segment *seg, size_t si,
                       const struct store_run *r)
{
    struct snap_stream *ss = &snap->streams[si];
    struct snap_src *src;

    if (snap->n_srcs == snap->cap_srcs) {
        size_t cap = snap->cap_srcs ? snap->cap_srcs * 2 : 256;
        struct snap_src *p = realloc(snap->srcs, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        snap->srcs = p;
        snap->cap_srcs = cap;
    }
    if (store_segment_hold(seg) != 0) {
        NR_ERROR("a segment cannot be opened; it is left out", "segment=%s.pcapng err=\"%s\"",
                 seg->path, strerror(errno));
        return 1;
    }
    src = &snap->srcs[snap->n_srcs++];
    memset(src, 0, sizeof(*src));
    src->seg = seg;
    src->held = true;
    src->run = *r;
    src->stream = (uint32_t)si;
    src->pos = r->offset;
    src->end = r->offset + r->length;
    if (!ss->has_runs || r->seq < ss->min_run.seq)
        ss->min_run = *r;
    if (!ss->has_runs || r->seq > ss->max_run.seq)
        ss->max_run = *r;
    ss->has_runs = true;
    if (!ss->first_ts || r->first_ts_ns < ss->first_ts)
        ss->first_ts = r->first_ts_ns;
    if (r->last_ts_ns > ss->last_ts)
        ss->last_ts = r->last_ts_ns;
    return 0;
}

void store_snap_sort_srcs(struct store_snapshot *snap, size_t first)
{
    if (snap->n_srcs > first)
        qsort(snap->srcs + first, snap->n_srcs - first, sizeof(*snap->srcs), by_time);
    for (size_t i = first; i < snap->n_srcs; i++)
        snap->srcs[i].rank = snap->rank++;
}

int store_snap_add_keys(struct store_snapshot *snap, struct store_segment *seg, size_t i)
{
    struct snap_keys *k = realloc(snap->keys, (snap->n_keys + 1) * sizeof(*k));

    if (!k)
        return -ENOMEM;
    snap->keys = k;
    if (store_segment_hold(seg) != 0) {
        NR_ERROR("a segment cannot be opened; its key log lines are left out",
                 "segment=%s.pcapng err=\"%s\"", seg->path, strerror(errno));
        return 0;
    }
    k[snap->n_keys].seg = seg;
    k[snap->n_keys].where = seg->keys[i];
    k[snap->n_keys].held = true;
    snap->n_keys++;
    return 0;
}

static int collect_keys(struct store_snapshot *snap, struct store_segment *seg)
{
    for (size_t i = 0; i < seg->n_keys; i++)
        if (store_snap_add_keys(snap, seg, i) != 0)
            return -ENOMEM;
    return 0;
}

static bool seg_overlaps(const struct store_snapshot *snap, const struct store_segment *seg)
{
    return seg->packets && seg->last_ts_ns >= snap->since && seg->first_ts_ns <= snap->until;
}

/* Whether the stream's segment before seg overlaps the window: secrets learnt after a handshake
 * may come in the batch after it, and that may be the first of the next segment. */
static bool follows_window(const struct store_snapshot *snap, const struct store_segment *seg)
{
    for (const struct store_segment *p = seg->prev; p; p = p->prev)
        if (p->stream == seg->stream)
            return seg_overlaps(snap, p);
    return false;
}

/* Collects every run that overlaps the window, holding its segment. */
int store_snap_collect(struct store_snapshot *snap)
{
    for (struct store_segment *seg = snap->s->seg_head; seg; seg = seg->next) {
        size_t si;
        bool overlaps = seg_overlaps(snap, seg);
        /* Key log lines of the segments of the window, of segments with lines but no packets
         * yet, and of the segment right after a stream's last one in the window (the lines may
         * come in a later segment than their handshake). */
        if (seg->n_keys &&
            (overlaps || (!seg->packets && seg->created_ns <= snap->until) ||
             follows_window(snap, seg)) &&
            collect_keys(snap, seg) != 0)
            return -ENOMEM;
        if (!overlaps)
            continue;
        if (store_snap_stream_index(snap, seg->stream, &si) != 0)
            return -ENOMEM;
        if (snap->select && store_select_add_segment(snap->select, (uint32_t)si, seg, 0) != 0)
            return -ENOMEM;
        for (size_t i = 0; i < seg->n_runs; i++) {
            const struct store_run *r = &seg->runs[i];
            int rc;
            if (!r->packets || r->last_ts_ns < snap->since || r->first_ts_ns > snap->until)
                continue;
            rc = store_snap_add_src(snap, seg, si, r);
            if (rc < 0)
                return rc;
            if (rc > 0)
                break; /* the segment cannot be opened (logged) */
        }
    }
    store_snap_sort_srcs(snap, 0);
    for (size_t i = 0; i < snap->n_streams; i++) {
        int rc = store_snap_stream_ifaces(snap, &snap->streams[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}
