/* The parts of a Hub.Snapshot (snapshot.h), and what they share: one snapshot is
 *   snapshot.c          the caller's call: its request, the clock probe, the end of it all;
 *   snapshot_streams.c  the stores' streams: one Store.Snapshot call per store, their messages,
 *                       their timeouts;
 *   snapshot_merge.c    the merge: every store's next packet by time, through the sightings
 *                       stage into the file, and the summary at its end;
 *   snapshot_file.c     the file's own blocks: its head (SHB, IDBs, NRBs or the pcap header),
 *                       the TLS key log's DSBs and the statistics at its end.
 * Everything runs on the hub's loop. Internal to services/hub: nothing else includes this. */
#ifndef NR_HUB_SNAPSHOT_PARTS_H
#define NR_HUB_SNAPSHOT_PARTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "hub/clock.h"
#include "hub/hub.h"
#include "hub/sightings.h"
#include "hub/stores.h"
#include "netreel/v1/hub.pb-c.h"
#include "netreel/v1/store.pb-c.h"
#include "pcapng/decode.h"
#include "pcapng/merge.h"
#include "rpc/call.h"
#include "util/buf.h"

/* The most TLS key log text one snapshot keeps for its file; the rest is dropped (and logged). */
#define HUB_KEYLOG_MAX (16u << 20)
/* Slots of the table of lines kept: twice the most lines HUB_KEYLOG_MAX holds (the shortest
 * valid line is 145 bytes), a power of two. 2 MiB, made when a snapshot gets its first line. */
#define HUB_KEYLOG_SLOTS (1u << 18)
/* The clock probe: the window's last seconds, at most so many packets. */
#define HUB_PROBE_NS          (5 * 1000000000LL)
#define HUB_PROBE_MAX_PACKETS 200000u
/* Follow: the lateness when the request names none, the most it may name, how often the merge
 * looks at the watermark while it waits, and how long a store that went away is left before it
 * is called again. */
#define HUB_FOLLOW_LATENESS_NS     (1000 * 1000000LL)
#define HUB_FOLLOW_LATENESS_MAX_NS (60 * 1000000000LL)
#define HUB_FOLLOW_TICK_MS         20
#define HUB_FOLLOW_RETRY_MS        1000
/* Follow: how often --stores is resolved again (a dns: name's answer grows as nodes join), and
 * how many stores may join a follow beyond those it started with. */
#define HUB_FOLLOW_RESOLVE_MS 5000
#define HUB_FOLLOW_JOIN_MAX   256
/* Follow: `more`s a store may send before the file's head, which waits up to --store-timeout for
 * the slowest store's header (a store announces new interfaces at most once a round, 50 ms). */
#define HUB_EARLY_MORE_MAX   256
#define HUB_EARLY_MORE_BYTES (4u << 20) /* what a snapshot holds of them, all stores together */

/* S_RESUME: a follow's store that went away, called again at retry_at; S_REHEADER: called
 * again, its header not in yet (the file's head is out: its interfaces are matched to the
 * file's). */
enum src_state { S_WAIT_HEADER, S_STREAM, S_DONE, S_FAILED, S_RESUME, S_REHEADER };
enum { KEY_NOT_YET, KEY_SET, KEY_NONE };

struct hub_snap;

/* One store's stream within a snapshot. What the merge touches for every packet comes first:
 * with a thousand stores taking turns, each packet's store is cold in the cache. */
struct hub_src {
    struct hub_snap *snap;
    Netreel__V1__StoreChunk *msg; /* the blocks message being merged */
    const uint8_t *blk;           /* its blocks (msg->blocks, here so as not to chase msg) */
    size_t blk_len;
    size_t pos;
    size_t n_ifaces;       /* of its header (and `more`s): ids has them */
    struct pcapng_epb epb; /* its next packet, in the heap when `ready` */
    uint64_t key;          /* its sightings key (hub_sightings_key) ... */
    uint8_t key_state;     /* ... KEY_NOT_YET, KEY_SET or KEY_NONE (the packet has none) */
    uint32_t *ids;         /* the output id of each of its interfaces (from the file's head) */
    size_t n_ids;
    enum src_state state;
    bool ready;
    bool had_blocks; /* its key log lines, which come before its blocks, are all in */
    bool blocked;    /* counted in snap->blocked: streaming, no packet ready, none held */
    bool timed_out;
    uint64_t packets;
    int64_t reached_ns;    /* the time of its last packet merged, on the file's clock */
    int64_t waiting_since; /* when the merge started waiting for it (0: not waiting) */
    /* Follow: the newest time it is known to have got to (its packets, its progress), on the
     * file's clock; its last packet received, on its own clock, and how many it sent stamped
     * exactly that (where a resumed call starts); the interfaces' identities (hash of node,
     * name, description and link type) to match a resumed call's header to. */
    int64_t newest_ns;
    int64_t raw_last;
    uint64_t raw_last_n;
    uint64_t *iface_keys;
    int64_t retry_at;
    int64_t gone_since; /* when it went (S_RESUME, S_REHEADER), 0 while it is there */
    bool idle;          /* its last word was StoreProgress: nothing newer to send */
    bool final; /* its failure is not one a new call mends (a link type a pcap file lacks) */
    struct rpc_call *call;  /* NULL once its call is over */
    struct rpc_channel *ch; /* held for the call (hub_stores_channel), NULL once given back */
    Netreel__V1__StoreChunk *header; /* its WindowHeader, kept for the file's head */
    /* Follow: `more`s that came before the file's head (which waits for every store's header),
     * held until it is out (hub_snap_early_more). */
    Netreel__V1__StoreChunk **early;
    size_t n_early, early_bytes;
    Netreel__V1__StoreChunk *summary;
    char *addr;      /* "10.0.0.7:8897" (hub_store_addr.addr) */
    char *authority; /* what TLS verifies, when not addr */
    char *error;     /* why it is left out, or went (NULL: it was not) */
};

struct hub_snap {
    struct hub *h;
    struct rpc_call *call;
    int64_t since, until;
    char *filter;
    uint32_t snaplen;
    bool pcap;
    uint16_t pcap_link_type;
    struct hub_src *srcs;
    size_t n;
    size_t cap;             /* srcs (and offsets) has room for so many: a follow's joining stores */
    size_t early_bytes;     /* the stores' early `more`s held (hub_src.early), in bytes */
    size_t waiting_headers; /* stores whose header has not come */
    size_t blocked;         /* streaming stores without a packet ready */
    size_t live_calls;
    bool resolving, head_sent, finished, over;
    bool producing;    /* inside produce(): a store's message delivered meanwhile joins that run */
    char refused[400]; /* a store's INVALID_ARGUMENT for the request itself: the call's answer */
    struct pcapng_merge heap;
    uint32_t n_out_ifaces; /* output interfaces the file describes */
    uint32_t idb_snaplen;  /* every IDB's (the head's largest) */
    /* Follow (SnapshotRequest.follow): the caller's end asked (it closed its side), the
     * lateness, the newest time written, packets left out as late, stores resumed, and the
     * watermark the merge computed last (valid while `blocked_gen` is unchanged). */
    bool follow, stopping;
    int64_t lateness_ns;
    int64_t out_ts;
    uint64_t late, resumed;
    uint64_t late_copies; /* late, but copies of packets the stream holds (summary.copies) */
    uint64_t blocked_gen, bound_gen;
    int64_t next_resolve; /* when --stores is resolved again (nr_now_ns) */
    int64_t bound;
    bool bound_valid;
    enum hub_sightings_mode sightings;
    struct hub_sightings *sg; /* the copies of one packet (made with the file's head) */
    /* One clock (hub/clock.h): unless --clock=raw, a probe (a snapshot of its own, writing no
     * file) first reads the window's last HUB_PROBE_NS from every store, and the nodes' clock
     * offsets it measures are taken off every packet's timestamp before the merge. */
    bool raw_clock;
    bool is_probe;
    struct hub_snap *parent;          /* a probe's snapshot, NULL once it is done or gone */
    struct hub_snap *probe;           /* the probe running for this snapshot */
    struct hub_clock *clock;          /* a probe's samples */
    struct hub_clock_offset *offsets; /* per store, once measured (NULL: raw clocks) */
    size_t ref;                       /* the store whose clock the others are aligned to */
    struct hub_resolved stores;       /* kept while the probe runs */
    /* The pod selection, passed on to the stores. */
    char **namespaces;
    size_t n_namespaces;
    char *pod_regex, *label_selector;
    struct nr_buf out;
    /* The stores' TLS key log lines, written as DSBs ahead of the first packet. */
    struct nr_buf keys;
    size_t keys_pos;              /* how much of keys is in the file */
    uint64_t keys_dropped;        /* bytes of lines past HUB_KEYLOG_MAX, or for a pcap file */
    uint64_t *keys_seen;          /* hashes of the lines kept (open addressing, 0: empty) */
    size_t n_keys_seen;           /* a follow's table starts over at half full */
    uint64_t packets, file_bytes; /* packets written */
    uint64_t taken;               /* packets the merge gave */
    uint64_t waits;               /* times the merge stopped to wait for a store's next message */
    int64_t first_ts;             /* of the first packet written */
    uv_timer_t timer;
    int64_t started_ns;
};

/* ---- snapshot.c ---- */

/* Ends the snapshot's call with a status (once; later calls do nothing) and cancels the stores'
 * calls still running. fmt may be NULL. */
void hub_snap_finish(struct hub_snap *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sends what s->out holds (and the summary, if any) to the caller as one FileChunk. 0 or what
 * rpc_call_send returns. A probe sends nothing. */
int hub_snap_send_out(struct hub_snap *s, Netreel__V1__SnapshotSummary *summary);
/* How many stores a snapshot of n makes room for: a follow's, HUB_FOLLOW_JOIN_MAX more. */
size_t hub_snap_capacity(const struct hub_snap *s, size_t n);
/* Frees the snapshot once its caller and every store call are gone. */
void hub_snap_maybe_free(struct hub_snap *s);
/* The probe p has read what it could: its snapshot gets the clock offsets and starts. */
void hub_snap_probe_done(struct hub_snap *p);

/* ---- snapshot_streams.c ---- */

/* Calls Store.Snapshot on every resolved store. */
void hub_snap_start_calls(struct hub_snap *s, const struct hub_resolved *r);
/* Puts the next packet of the store's held message in the merge's heap, or lets the message go
 * and takes the store's next one. */
void hub_snap_src_next(struct hub_src *src);
/* The store's node name ("" when unknown). */
const char *hub_snap_src_node(const struct hub_src *src);
/* Follow: the interfaces stores announced before the file's head, into the file right after it
 * (hub_snap_try_head); hub_snap_src_drop_early forgets a store's. */
void hub_snap_early_more(struct hub_snap *s);
void hub_snap_src_drop_early(struct hub_src *src);
/* A store's addr when there was no memory for it. */
extern char hub_snap_no_addr[];
/* Why the store is left out (or went): "" when it is not. */
const char *hub_snap_src_error(const struct hub_src *src);
/* Starts (again) the timer that leaves out stores silent past --store-timeout. */
void hub_snap_watch_stores(struct hub_snap *s);
/* Follow: the caller closed its side. Every store is asked to end (its call half-closed); a
 * store waiting to be called again is left out. */
void hub_snap_follow_stop(struct hub_snap *s);
/* Follow: the watermark, the time up to which every packet can be written: the least, over
 * the stores the merge waits for, of the newest they got to, or for a store that said it has
 * nothing newer (StoreProgress), of that and the hub's now less the lateness. A store still
 * sending what it has (its window, a backlog) holds it where it got to, as in a snapshot; so
 * does a store that went away, up to --store-timeout: its capture spools meanwhile and sends it
 * all again once it is back, which must not come late. */
int64_t hub_snap_follow_bound(struct hub_snap *s);

/* ---- snapshot_merge.c ---- */

/* Every store has answered with its header (or failed): writes the file's head. */
void hub_snap_try_head(struct hub_snap *s);
/* Merges while the caller can take more and every streaming store has a packet ready. */
void hub_snap_produce(struct hub_snap *s);

/* ---- snapshot_file.c ---- */

/* The file's head: SHB, IDBs and NRBs, or the pcap file header. 0, NR_EPARSE (a pcap file
 * cannot hold the window's link types) or a negative errno, with err set. */
int hub_snap_file_head(struct hub_snap *s, char *err, size_t errlen);
/* Keeps each line of a store's key log message (already validated) once. */
void hub_snap_keys_add(struct hub_snap *s, const uint8_t *p, size_t len);
/* Writes the next DSB of the stores' key log lines. 0 or a negative errno. */
int hub_snap_file_keys(struct hub_snap *s);
/* The Interface Statistics Blocks of the file's end. 0 or a negative errno. */
int hub_snap_file_trailer(struct hub_snap *s);
/* Follow: the interfaces of a header that came after the file's head (a store that joined or
 * was resumed: `resumed` matches them to its earlier ones) or of a `more`, given output ids,
 * with an IDB for each new one. 0, NR_EPARSE (a pcap file cannot hold a new link type: err) or
 * -ENOMEM. */
int hub_snap_file_ifaces(struct hub_snap *s, struct hub_src *src,
                         const Netreel__V1__WindowHeader *hd, bool resumed, char *err,
                         size_t errlen);

#endif
