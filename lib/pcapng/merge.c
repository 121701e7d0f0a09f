/* The k-way merge's binary min-heap (see merge.h): keyed by (timestamp, rank, push order), so
 * equal timestamps leave in an order that does not depend on the heap's shape. */
#include "pcapng/merge.h"

#include <errno.h>
#include <stdlib.h>

void pcapng_merge_init(struct pcapng_merge *m, size_t max)
{
    m->heap = NULL;
    m->n = 0;
    m->cap = 0;
    m->max = max;
    m->pushes = 0;
}

void pcapng_merge_free(struct pcapng_merge *m)
{
    free(m->heap);
    m->heap = NULL;
    m->n = 0;
    m->cap = 0;
}

static bool entry_less(const struct pcapng_merge_entry *a, const struct pcapng_merge_entry *b)
{
    if (a->ts_ns != b->ts_ns)
        return a->ts_ns < b->ts_ns;
    if (a->rank != b->rank)
        return a->rank < b->rank;
    return a->order < b->order;
}

static int heap_grow(struct pcapng_merge *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct pcapng_merge_entry *heap;

    if (cap > m->max || cap < m->cap)
        cap = m->max;
    if (cap > SIZE_MAX / sizeof(*heap))
        return -ENOMEM;
    heap = realloc(m->heap, cap * sizeof(*heap));
    if (heap == NULL)
        return -ENOMEM;
    m->heap = heap;
    m->cap = cap;
    return 0;
}

int pcapng_merge_push(struct pcapng_merge *m, void *source, int64_t ts_ns, uint64_t rank)
{
    struct pcapng_merge_entry e = {ts_ns, rank, m->pushes, source};
    size_t i;

    if (m->n >= m->max)
        return -ENOSPC;
    if (m->n == m->cap) {
        int rc = heap_grow(m);

        if (rc < 0)
            return rc;
    }
    m->pushes++;
    /* Sift up: move parents down until e's place is found. */
    for (i = m->n++; i > 0;) {
        size_t parent = (i - 1) / 2;

        if (!entry_less(&e, &m->heap[parent]))
            break;
        m->heap[i] = m->heap[parent];
        i = parent;
    }
    m->heap[i] = e;
    return 0;
}

void *pcapng_merge_pop(struct pcapng_merge *m, int64_t *ts_ns)
{
    struct pcapng_merge_entry top;
    struct pcapng_merge_entry last;
    size_t i = 0;

    if (m->n == 0)
        return NULL;
    top = m->heap[0];
    last = m->heap[--m->n];
    /* Sift the last entry down from the root: move the smaller child up until it fits. */
    for (;;) {
        size_t child = 2 * i + 1;

        if (child >= m->n)
            break;
        if (child + 1 < m->n && entry_less(&m->heap[child + 1], &m->heap[child]))
            child++;
        if (!entry_less(&m->heap[child], &last))
            break;
        m->heap[i] = m->heap[child];
        i = child;
    }
    if (m->n > 0)
        m->heap[i] = last;
    if (ts_ns)
        *ts_ns = top.ts_ns;
    return top.source;
}

bool pcapng_merge_peek(const struct pcapng_merge *m, int64_t *ts_ns, void **source)
{
    if (m->n == 0)
        return false;
    if (ts_ns)
        *ts_ns = m->heap[0].ts_ns;
    if (source)
        *source = m->heap[0].source;
    return true;
}
