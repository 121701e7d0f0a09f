/* Segment files: one pcapng file per capture stream and rotation period, with its sidecar
 * index (index.h). Appends go to the end with pwritev at the committed size, so a failed write
 * is cut back and leaves the file as it was; closed segments are immutable. */
#ifndef NR_STORE_SEGMENT_H
#define NR_STORE_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "pcapng/pcapng.h"
#include "store/store.h"

/* Creates the stream's next segment and makes it the active one: NAME.idx with its header,
 * NAME.pcapng with SHB, one IDB per known interface and an NRB of the current pods. Returns 0,
 * or a negative errno (the files are removed again). */
int store_segment_create(struct store *s, struct store_stream *st, int64_t now_ns);

/* The capture's description of an interface, as a segment's IDB carries it (a copy the caller
 * owns), or NULL when the IDB holds only the store's own default ("node/name") or none. */
char *store_segment_idb_desc(const struct store_stream *st, const struct pcapng_idb *idb);

/* Appends what the stream learnt since the segment's head: IDBs of new interfaces, an NRB when
 * the pod set changed. 0 when there is nothing to do. Returns 0 or a negative errno. */
int store_segment_update_meta(struct store *s, struct store_segment *seg, int64_t now_ns);

/* Appends one validated batch of EPBs (len bytes) and its index record, through the writer
 * thread (writer.h): builds it into w (a stage from store_writer_take) and reserves its place;
 * w->seg then holds the segment (a reference, and a place among its writes in flight) until
 * store_segment_write_end. The caller queues w. With dsb (dsb_len bytes: one whole Decryption
 * Secrets Block) the block goes right before the EPBs in the same write, with a STORE_REC_KEYS
 * record before the batch's; len may then be 0 (a batch of key log lines only: no BATCH record,
 * no run). Returns 0 or a negative errno (then nothing changed and w is the caller's to
 * discard). */
int store_segment_prepare(struct store *s, struct store_segment *seg, const uint8_t *dsb,
                          size_t dsb_len, const uint8_t *blocks, size_t len,
                          const struct store_run *run, int64_t now_ns, struct store_write *w);
/* When a prepared write is done, on the loop, in order: written commits it (the batch becomes
 * visible to snapshots and the segment dirty for the next sync; returns 0 or -ENOMEM);
 * write_failed closes the segment, whose files the writer cut back to the last good write. */
int store_segment_written(struct store *s, struct store_write *w);
void store_segment_write_failed(struct store *s, struct store_write *w, int64_t now_ns);
/* The last thing a write's done does, whatever became of the write (a marker's too: it holds
 * nothing): the segment lets go of w, and may be freed here; w->seg is NULL after. */
void store_segment_write_end(struct store_write *w);

/* Completes the active segment: ISBs with the stream's counters, the CLOSE record; hands its
 * descriptors to the syncer (which syncs and closes them). Errors are logged; the segment is
 * closed in any case (what was committed stays readable). */
void store_segment_close(struct store *s, struct store_segment *seg, int64_t now_ns);

/* Deletes a segment for `why`: closes it if active, unlinks both files, logs and counts it,
 * takes it out of the catalog. Snapshots holding it keep reading through their descriptor. */
void store_segment_delete(struct store *s, struct store_segment *seg, enum store_reason why);

/* Snapshot side: holds the segment and its read descriptor (opened on first use). Returns 0 or
 * a negative errno; store_segment_release undoes it. */
int store_segment_hold(struct store_segment *seg);
void store_segment_release(struct store_segment *seg);

/* Catalog membership and memory. */
void store_segment_link(struct store *s, struct store_segment *seg);
struct store_segment *store_segment_new(struct store_stream *st, uint32_t segno, const char *path);
void store_segment_unref(struct store_segment *seg);
int store_segment_add_run(struct store_segment *seg, const struct store_run *run);
int store_segment_add_keys(struct store_segment *seg, uint64_t offset, uint64_t length);
int store_segment_add_pods(struct store_segment *seg, struct store_pods *pods);

/* Accounted disk use of a segment (both files). */
uint64_t store_segment_disk(const struct store_segment *seg);

extern const char *const store_reason_names[STORE_DEL_N];

#endif
