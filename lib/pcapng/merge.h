/* The time-ordered k-way merge both the store (its capture streams' sorted runs) and the hub
 * (its stores' sorted streams) use: a binary min-heap of sources keyed by the timestamp of
 * their next packet. Equal timestamps come out by `rank` (smaller first), then in push order,
 * so a merge is deterministic. The heap holds only pointers; the caller owns the sources and
 * decides when one is ready to be pushed (the hub waits for a source's next message). */
#ifndef NR_PCAPNG_MERGE_H
#define NR_PCAPNG_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pcapng_merge_entry {
    int64_t ts_ns;
    uint64_t rank;
    uint64_t order; /* push order, the last tie-breaker */
    void *source;
};

struct pcapng_merge {
    struct pcapng_merge_entry *heap;
    size_t n;
    size_t cap; /* grows as needed up to max */
    size_t max;
    uint64_t pushes;
};

/* An empty heap that may hold up to `max` sources. */
void pcapng_merge_init(struct pcapng_merge *m, size_t max);
void pcapng_merge_free(struct pcapng_merge *m);

/* Adds a source whose next packet has timestamp ts_ns. Returns 0, -ENOSPC when max sources are
 * already in, or -ENOMEM. */
int pcapng_merge_push(struct pcapng_merge *m, void *source, int64_t ts_ns, uint64_t rank);

/* The source with the smallest (ts, rank, order), removed from the heap; NULL when empty.
 * *ts_ns (may be NULL) gets its key. Push it again with its next timestamp if it has one. */
void *pcapng_merge_pop(struct pcapng_merge *m, int64_t *ts_ns);

/* The smallest key without removing it: true and *ts_ns, *source (either may be NULL), or false
 * when empty. */
bool pcapng_merge_peek(const struct pcapng_merge *m, int64_t *ts_ns, void **source);

static inline size_t pcapng_merge_size(const struct pcapng_merge *m)
{
    return m->n;
}

#endif
