/* netreel-store's state: capture streams, their segments on disk, the retention limits and the
 * calls being served. One loop thread owns all of it; fdatasync (sync.c) and the batch writes
 * (writer.c) run elsewhere, on what the loop hands them. */
#ifndef NR_STORE_STORE_H
#define NR_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "store/append.h"
#include "store/index.h"
#include "store/writer.h"

#define STORE_MAX_INTERFACES  256u
#define STORE_MAX_PODS        65536u
#define STORE_MAX_UNWRITTEN   16u    /* pod sets kept for a stream without a segment */
#define STORE_MAX_NAME        253u   /* a Kubernetes name, a node name */
#define STORE_MAX_IFNAME      255u   /* "NAMESPACE/POD" of a pod's device, cut by the capture */
#define STORE_MAX_IFDESC      2047u  /* an interface's if_description */
#define STORE_MAX_FILTER      16384u /* bytes of BPF filter text */
#define STORE_OPTIMIZE_FILTER 2048u  /* longer filters compile without the optimizer */
#define STORE_MAX_STREAMS     4096u  /* capture streams remembered at once */
#define STORE_CHUNK_BYTES \
    (1u << 20) /* a snapshot message, at most (SnapshotRequest.max_chunk_bytes) */
#define STORE_MIN_CHUNK_BYTES (2u << 10) /* ... and the least a request may ask for */
#define STORE_MIN_MAX_SIZE    (16u << 20)
#define STORE_SEGMENT_CAP_MAX (64u << 20)

struct store_config {
    const char *listen;
    const char *data_dir;
    const char *metrics_listen;
    const char *tls_cert, *tls_key, *tls_ca;
    char node[STORE_MAX_NAME + 1];
    int64_t time_interval_ns;
    int64_t max_time_ns;
    uint64_t max_size;
    double min_free_pct;   /* of the file system holding data_dir */
    uint64_t segment_cap;  /* max_size / 16, at most 64 MiB */
    int64_t max_future_ns; /* packets later than now + this are refused */
    int64_t max_past_ns;   /* packets earlier than now - this are refused */
    /* What is written is synced within this (0: each batch is acknowledged only once synced) */
    int64_t sync_interval_ns;
};

struct store_iface {
    char name[STORE_MAX_IFNAME + 1];
    uint32_t link_type;
    uint32_t snaplen;
    char *desc; /* the capture's if_description (the stream owns it), or NULL */
};

/* An immutable set of pod names, shared by the segments it was current in. */
struct store_pod {
    uint8_t family; /* 4 or 6 */
    uint8_t ip[16];
    char *name;   /* "namespace/name"; one allocation with uid and labels after it */
    char *uid;    /* "" when unknown */
    char *labels; /* "k=v,k=v" */
};
struct store_pods {
    unsigned refs;
    int64_t since_ns; /* when the capture took this set (packets before it had the previous) */
    size_t n;
    struct store_pod pods[];
};
#define STORE_MAX_UID    63u
#define STORE_MAX_LABELS 1023u

/* Sets pod p's strings ("namespace/name", uid, labels: NULL for "") in one allocation. 0 or
 * -ENOMEM. */
int store_pod_set(struct store_pod *p, const char *name_space, const char *name, const char *uid,
                  const char *labels);

struct store_stream;

/* A Decryption Secrets Block of TLS key log lines in a segment (STORE_REC_KEYS). */
struct store_keys {
    uint64_t offset, length;
};

struct store_segment {
    struct store_segment *prev, *next; /* the store's list, in creation order */
    struct store_stream *stream;
    uint32_t segno;
    char *path;              /* ".../NNNNNNNN-YYYYmmddTHHMMSSZ" without extension */
    int fd, idx_fd;          /* open for writing while active, else -1 */
    struct store_append out; /* how fd is written (append.h) */
    int rfd;                 /* read descriptor while snapshots hold the segment, else -1 */
    unsigned refs; /* the catalog's (until deleted) + one per snapshot and write in flight */
    unsigned readers;
    bool active, deleted, dirty;
    bool broken;             /* a write failed: closed, never written again */
    bool w_broken;           /* the same, for the writer thread only (writer.c) */
    uint64_t size, idx_size; /* committed bytes */
    uint64_t end, idx_end;   /* the same plus the writes queued to the writer */
    unsigned queued;         /* writes of it prepared and not yet ended (segment.h) */
    int64_t created_ns;
    int64_t first_ts_ns, last_ts_ns; /* over its batches; 0 when it has none */
    uint64_t packets;
    uint32_t n_ifaces;            /* interfaces described in it so far */
    struct store_pods *pods_head; /* the pod set its last NRB described (may be NULL) */
    struct store_pods **pod_sets; /* every pod set described in it */
    size_t n_pod_sets;
    struct store_run *runs;
    size_t n_runs, cap_runs;
    struct store_keys *keys; /* its DSBs of TLS key log lines, in file order */
    size_t n_keys, cap_keys;
};

struct store;

struct store_stream {
    struct store_stream *next;
    struct store *store;
    char capture_id[STORE_INDEX_MAX_ID + 1];
    char dir[512];
    char node[STORE_MAX_NAME + 1];
    uint32_t next_segno;
    bool have_seq;
    uint64_t last_seq; /* the last batch taken, written or queued */
    bool have_done;
    uint64_t done_seq; /* the last batch written (or needing no write) */
    unsigned pending;  /* its writes and markers queued to the writer */
    uint64_t epoch;    /* moves on when a write fails: what was queued before is void */
    struct store_iface ifaces[STORE_MAX_INTERFACES];
    uint32_t n_ifaces;
    struct store_pods *pods; /* the current set, NULL when none was ever sent */
    /* Sets that came while the stream had no active segment, oldest first: the next segment's
     * head keeps them, so the pod history has every set the capture sent. */
    struct store_pods *unwritten[STORE_MAX_UNWRITTEN];
    size_t n_unwritten;
    struct store_counters counters;
    uint64_t batches, packets, bytes, duplicates;
    int64_t last_batch_ns;
    bool ended; /* its capture closed its Ingest call cleanly: it stopped, it does not spool */
    struct store_segment *active;
    bool dir_dirty; /* a file was created in dir since the last sync */
};

enum store_reason { STORE_DEL_MAX_TIME, STORE_DEL_MAX_SIZE, STORE_DEL_MIN_FREE, STORE_DEL_N };

struct store_ingest;
struct store_snapshot;
struct store_sync_cbs;

struct store {
    uv_loop_t *loop;
    struct store_config cfg;
    struct store_stream *streams;
    struct store_segment *seg_head, *seg_tail;
    uint32_t n_segments;
    uint64_t bytes;        /* accounted disk use of every segment and index, 4 KiB blocks */
    uint64_t pending_free; /* deleted segments' bytes that snapshots still hold open */
    uint64_t deleted_segments[STORE_DEL_N], deleted_bytes[STORE_DEL_N];
    uint64_t batches_refused, batches_duplicate, batches_expired, write_errors;
    uint64_t keylog_bytes; /* TLS key log lines written (DSB payload) */
    /* refused with RESOURCE_EXHAUSTED: the limits or the disk left no room */
    uint64_t batches_no_room;
    struct store_ingest *ingests; /* calls waiting for acks */
    uint64_t next_ingest_id;
    unsigned snapshots_active;
    uint64_t snapshots_served;
    struct store_stage stage;   /* writes on the loop are built here (append.h) */
    struct store_writer writer; /* batch writes off the loop (writer.h) */
    /* group commit (sync.c) */
    const struct store_sync_cbs *sync_cbs; /* told of each sync (ingest: acknowledgements) */
    bool sync_running;
    bool sync_again;
    bool sync_retry;  /* the last sync could not take every file: the tick tries again */
    int sync_starved; /* its errno (EMFILE) until a sync takes them all: new calls refused */
    int *sync_fds;    /* descriptors of closed segments still to be synced and closed */
    size_t n_sync_fds, cap_sync_fds;
    bool root_dirty;          /* a stream directory was created in data_dir since the last sync */
    bool sync_timer_ready;    /* store_sync_init ran (not in unit tests) */
    uv_timer_t sync_timer;    /* starts the next sync by its deadline */
    int64_t sync_deadline_ns; /* when the next sync must start (0: nothing waits for one) */
    uv_timer_t timer;         /* retention and rotation without traffic */
};

/* Disk accounting: a file of `size` bytes as du counts it (4 KiB blocks). */
static inline uint64_t store_disk_bytes(uint64_t size)
{
    return (size + 4095) & ~(uint64_t)4095;
}

/* streams.c: pod name sets of n pods, shared by reference (a new one holds one). */
struct store_pods *store_pods_new(size_t n);
void store_pods_ref(struct store_pods *p);
void store_pods_unref(struct store_pods *p);

/* streams.c: the capture streams by id, created on first sight with their directory. */
struct store_stream *store_stream_find(struct store *s, const char *capture_id);
int store_stream_add(struct store *s, const char *capture_id, struct store_stream **out);
/* Frees a stream taken off s->streams: its pod sets and interface descriptions too. */
void store_stream_free(struct store_stream *st);
/* The directory name of a capture id: its safe characters and a hash of the whole id. */
void store_stream_dirname(const char *capture_id, char *buf, size_t len);

#endif
