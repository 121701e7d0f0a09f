/* The parts of a Store.Snapshot (snapshot.h), and what they share:
 *   snapshot.c         the call: its request, the window's runs merged in time order, the
 *                      header, the key log lines, the summary;
 *   snapshot_plan.c    which runs, DSBs and interfaces it reads, and the filter programs;
 *   snapshot_follow.c  follow: each round takes what ingest committed since the last one (the
 *                      first round is the window), interfaces that appear meanwhile, and the
 *                      progress messages of a store with nothing newer.
 * Everything runs on the store's loop. Internal to services/store: nothing else includes this. */
#ifndef NR_STORE_SNAPSHOT_PARTS_H
#define NR_STORE_SNAPSHOT_PARTS_H

#include <pcap/pcap.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "netreel/v1/store.pb-c.h"
#include "pcapng/decode.h"
#include "pcapng/merge.h"
#include "rpc/call.h"
#include "store/select.h"
#include "store/store.h"
#include "util/buf.h"

/* Follow: how often a round looks for what ingest committed, and how long a store with nothing
 * newer stays silent before it says so (StoreProgress). */
#define STORE_FOLLOW_ROUND_MS    50
#define STORE_FOLLOW_PROGRESS_MS 250
/* A capture stream whose newest packet is this recent, without an Ingest call open, is away: a
 * follow's progress says so, and the hub waits for what it spooled. */
#define STORE_FOLLOW_AWAY_NS (10 * 1000000000LL)

/* One sorted run (a batch) being read. */
struct snap_src {
    struct store_segment *seg;
    struct store_run run; /* a copy: the active segment's run array may move */
    uint32_t stream;      /* index into snap->streams */
    uint64_t pos, end;    /* file offsets still to read */
    struct nr_buf buf;
    size_t bpos;
    struct pcapng_epb epb;
    uint64_t rank;
    bool held;
};

struct snap_stream {
    struct store_stream *st;
    uint32_t *out_ids; /* the output id of each of its interfaces given one so far ... */
    uint32_t n_out;    /* ... (its first n_out) */
    struct store_run min_run, max_run; /* by seq; valid when has_runs */
    bool has_runs;
    int64_t first_ts, last_ts;
    /* Follow: where the rounds got to in it. Segments before segno are done; of segment segno,
     * the first n_runs runs, n_keys DSBs and n_sets pod sets are taken. */
    bool placed;
    uint32_t segno;
    size_t n_runs, n_keys, n_sets;
    bool seen_cur;    /* this round found segment segno still there */
    bool cur_done;    /* segment segno was closed and every run of it taken */
    int64_t taken_ts; /* the newest packet time of the runs taken */
    char *gap_note;   /* retention overtook it: the comment its next packet carries */
};

/* One DSB of TLS key log lines to send before the packets, its segment held. */
struct snap_keys {
    struct store_segment *seg;
    struct store_keys where;
    bool held;
};

struct snap_filter {
    uint32_t link_type;
    struct bpf_program prog;
    bool compiled;
};

struct store_snapshot {
    struct store *s;
    struct rpc_call *call;
    int64_t since, until;
    uint32_t snaplen;
    uint32_t chunk; /* blocks and key log messages hold at most this, or one block */
    char *filter;
    struct snap_src *srcs;
    size_t n_srcs, next_src, cap_srcs;
    struct snap_stream *streams;
    size_t n_streams;
    struct snap_filter *filters;
    size_t n_filters;
    int *iface_filter;           /* output interface id -> index in filters */
    struct store_select *select; /* -n, --pod, -l (select.h); NULL: every packet */
    uv_work_t compile;           /* the filters compile on the thread pool */
    bool compiling;
    int compile_rc;
    char compile_err[512];
    uint32_t n_out_ifaces;
    uint32_t n_announced; /* output interfaces the caller was told of (header, `more`) */
    struct pcapng_merge heap;
    struct nr_buf out;
    struct snap_keys *keys; /* in segment and file order */
    size_t n_keys, next_key;
    struct nr_buf keys_read, keys_out; /* one DSB read; the tls_keylog message being built */
    uint64_t packets, bytes;
    uint64_t rank; /* the next run's tie-break in the merge */
    uint64_t skip; /* packets stamped exactly `since` still to leave out (skip_at_since) */
    uv_timer_t turn;
    bool keys_sent;                          /* every tls_keylog message went */
    bool requested, started, finished, over; /* started: the header went, packets follow */
    /* Follow */
    bool follow;
    int64_t newest_ns;      /* the newest packet timestamp the rounds have seen */
    int64_t last_sent;      /* loop time (ms) of the last message, for progress */
    uint64_t lost_segments; /* deleted before a round read them */
};

/* ---- snapshot_plan.c ---- */

/* Collects every run of the window (and its DSBs), holding their segments; its streams'
 * interfaces get ids. 0 or -ENOMEM. */
int store_snap_collect(struct store_snapshot *snap);
/* The index in snap->filters of the program for link type lt, added (not compiled yet) when
 * new. 0 or -ENOMEM. */
int store_snap_filter_for(struct store_snapshot *snap, uint32_t lt, int *k);
/* Compiles the programs not compiled yet: 0, NR_EPARSE (compile_err says why) or -ENOMEM. */
int store_snap_compile_filters(struct store_snapshot *snap);

/* The stream's index in snap->streams, added (with no interfaces given ids yet) when new.
 * 0 or -ENOMEM. */
int store_snap_stream_index(struct store_snapshot *snap, struct store_stream *st, size_t *idx);
/* Gives ids to the stream's interfaces that have none yet (its capture may have added some):
 * registered with the selection and, with a filter, a compiled program for a new link type.
 * 0, NR_EPARSE (the filter does not compile for a new link type) or -ENOMEM. */
int store_snap_stream_ifaces(struct store_snapshot *snap, struct snap_stream *ss);
/* Adds run r of seg (stream si) to the runs to read, holding seg. 0, 1 when seg cannot be
 * opened (logged: it is left out), or -ENOMEM. */
int store_snap_add_src(struct store_snapshot *snap, struct store_segment *seg, size_t si,
                       const struct store_run *r);
/* Adds the DSB `i` of seg to the key log lines to send, holding seg. 0 or -ENOMEM. */
int store_snap_add_keys(struct store_snapshot *snap, struct store_segment *seg, size_t i);
/* Orders the runs added since `first` by time and gives them their ranks. */
void store_snap_sort_srcs(struct store_snapshot *snap, size_t first);

/* ---- snapshot.c ---- */

/* Sends StoreChunk `more`: the output interfaces given ids since the last header. */
int store_snap_send_more(struct store_snapshot *snap);

/* ---- snapshot_follow.c ---- */

/* A round: every run and DSB committed since the last round (all of them the first time) with
 * packets in the window, and the pod sets and interfaces that came with them. Returns how many
 * runs and DSBs it added, or a negative errno. */
int store_snap_follow_round(struct store_snapshot *snap);
/* Nothing to send: after STORE_FOLLOW_PROGRESS_MS of silence a StoreProgress goes, and the next
 * round is due in STORE_FOLLOW_ROUND_MS. 0 or what rpc_call_send returns. */
int store_snap_follow_idle(struct store_snapshot *snap);

#endif
