/* The bounded spool of encoded batches the store has not acknowledged yet: sent in order, resent
 * from the oldest after a reconnect, freed when an ack covers them. When it is full a new batch
 * is refused (the caller drops it whole and counts it): memory never grows past the bound and
 * nothing waits. */
#ifndef NR_CAPTURE_SPOOL_H
#define NR_CAPTURE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rpc_wbuf;

struct capture_spool_entry {
    struct capture_spool_entry *next;
    uint64_t seq;
    /* The encoded PacketBatch, without its interfaces: bytes, then body (the EPBs of its
     * `blocks` field, sent without a copy; NULL without packets). */
    uint8_t *bytes;
    size_t len;
    struct rpc_wbuf *body;
    size_t charge; /* what it counts against the bound: len and the body's allocation */
    uint32_t packets;
    uint32_t interfaces; /* the capture's interfaces 0..interfaces-1 it needs the store to know */
    uint32_t stream;     /* the capture stream (capture_id) it belongs to: one per Ingest call */
    bool carries_pods;
};

struct capture_spool {
    struct capture_spool_entry *head, *tail;
    struct capture_spool_entry *cursor; /* the next entry to send on this call */
    size_t bytes, max, entries;
};

void capture_spool_init(struct capture_spool *sp, size_t max);
void capture_spool_free(struct capture_spool *sp);

/* Appends an entry like `meta` (its seq, packets, interfaces, stream, carries_pods), taking
 * `bytes` (malloc'ed) and the reference to `body` (may be NULL; body_cap bytes allocated) on
 * success. Returns 0, or -ENOSPC when it does not fit (both stay the caller's), or -ENOMEM. */
int capture_spool_push(struct capture_spool *sp, uint8_t *bytes, size_t len, struct rpc_wbuf *body,
                       size_t body_cap, const struct capture_spool_entry *meta);

/* Frees every entry with seq <= `seq`; returns how many. */
size_t capture_spool_ack(struct capture_spool *sp, uint64_t seq);

/* Drops the entry with this seq (the store refused it); true when there was one. */
bool capture_spool_drop(struct capture_spool *sp, uint64_t seq);

/* The next entry to send, advancing the cursor; NULL when all were sent. */
struct capture_spool_entry *capture_spool_next(struct capture_spool *sp);

/* A new call: everything unacknowledged is sent again, oldest first. */
void capture_spool_rewind(struct capture_spool *sp);

#endif
