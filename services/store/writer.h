/* The store's writer thread: batches are written to their segments off the loop, so that the
 * loop takes in the next batches while the device writes the last ones.
 *
 * The loop prepares each write (the bytes in a stage buffer of the writer's pool, the index
 * record, the offsets: append.h's prepare) and queues it; the thread writes the data, then the
 * record, strictly in the order queued; the loop learns of it in that same order (done, on the
 * loop) and only then makes the batch visible to snapshots and eligible for an ack. A write that
 * fails cuts both files back to where it started, and every later write queued for that segment
 * is skipped (-ECANCELED): a segment never has a hole.
 *
 * Everything else that touches a segment's files (its head, metadata, closing, deletion) runs
 * on the loop after store_writer_drain(), as before the writer existed. The loop waits only when
 * every stage buffer is in flight: memory stays at STORE_WRITER_STAGES buffers.
 *
 * The thread makes the writes queued behind one another in the same segment's files as one write
 * each of the data and the index (up to 8: with direct I/O each stage starts with the block
 * the one before ends in, so each but the last is cut where the next begins): under load the
 * device takes a few large writes rather than many small ones.
 *
 * Without the thread (not started: pthread_create failed, or a unit test runs without it) a
 * queued write is made and done at once, on the loop. */
#ifndef NR_STORE_WRITER_H
#define NR_STORE_WRITER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "store/append.h"
#include "store/index.h"

#define STORE_WRITER_STAGES 4u
/* A stage grown past this for one large batch is freed once written, not kept in the pool. */
#define STORE_WRITER_KEEP (4u << 20)

struct store;
struct store_segment;
struct store_stream;
struct store_write;

typedef void (*store_write_done_fn)(struct store *s, struct store_write *w);

struct store_write {
    struct store_write *next;
    /* The write (seg NULL: a marker without I/O that only keeps its place in the order). The
     * segment is held while the write is in flight: its preparer takes it, its done lets go
     * (segment.h). The writer only writes its files (and sets w_broken when that fails). */
    struct store_segment *seg;
    int fd, idx_fd;
    bool direct;
    struct store_stage stage; /* from the pool; bytes [0, len) go to off */
    bool counted;             /* holds one of the pool's STORE_WRITER_STAGES shares */
    uint64_t off;
    size_t len;
    uint8_t rec[2 * STORE_INDEX_RECORD_LEN]; /* a KEYS record and a BATCH record, or one */
    size_t rec_len;
    uint64_t idx_off;  /* where rec goes, and the index's length to cut back to */
    uint64_t cut_data; /* the data file's length to cut back to */
    int rc;            /* the thread's result: 0 or a negative errno */
    /* For the loop when it is done. */
    store_write_done_fn done;
    uint64_t data_start, data_end; /* the batch's bytes in the segment */
    uint64_t keys_off, keys_len;   /* its DSB in the segment (keys_len 0: none) */
    size_t keylog_len;             /* the key log lines in that DSB (for the metrics) */
    struct store_run run;
    struct store_stream *st;
    uint64_t owner; /* the ingest call's id */
    bool accepted;  /* a new batch of the stream (not a duplicate's marker) */
    uint64_t epoch; /* the stream's epoch when queued (ingest.c) */
};

struct store_writer {
    bool started;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work;             /* the thread waits for writes */
    pthread_cond_t room;             /* the loop waits for a stage or for the queue to empty */
    uv_async_t async;                /* writes done: complete them on the loop */
    struct store_write *head, *tail; /* queued */
    struct store_write *done_head, *done_tail;
    bool busy, stop;
    struct store_stage pool[STORE_WRITER_STAGES];
    unsigned n_pool;
    unsigned in_flight; /* stages taken and not yet given back (at most STORE_WRITER_STAGES) */
    unsigned queued;    /* writes queued or being written (the loop's count) */
    uint64_t waits;     /* times the loop waited for a stage (the loop's count) */
    uint64_t grouped;   /* writes made as part of the one before them (under the lock) */
};

/* Starts the thread on s->loop. Returns 0 or a negative errno (the store then writes on its
 * loop, as without a writer). */
int store_writer_start(struct store *s);

/* A write with a stage of at least `need` bytes; waits while every stage is in flight. NULL when
 * out of memory. Either queue it or give it back with store_writer_discard. */
struct store_write *store_writer_take(struct store *s, size_t need);
void store_writer_discard(struct store *s, struct store_write *w);

/* Queues w (its done runs later, on the loop), or without the thread writes it and runs done
 * now. */
void store_writer_queue(struct store *s, struct store_write *w);

/* Waits until every queued write is made, and runs their done, in order. */
void store_writer_drain(struct store *s);

struct store_writer_counters {
    uint64_t queued;  /* writes queued and not yet done */
    uint64_t waits;   /* times the loop waited for a stage */
    uint64_t grouped; /* writes made together with the one before them */
};
void store_writer_counters(const struct store *s, struct store_writer_counters *c);

/* After the loop ended: stops and joins the thread, frees the pool. */
void store_writer_free(struct store *s);

#endif
