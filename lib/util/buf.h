/* A growable byte buffer with a hard cap set at creation: what a peer or a file can make us
 * hold is bounded where the buffer is made, not where it is filled. */
#ifndef NR_UTIL_BUF_H
#define NR_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

struct nr_buf {
    uint8_t *data;
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
    size_t max; /* len never grows past this */
};

/* An empty buffer that may grow to `max` bytes; allocates nothing yet. */
void nr_buf_init(struct nr_buf *b, size_t max);
void nr_buf_free(struct nr_buf *b);

/* Makes room for `more` bytes past len (allocating by doubling). Returns 0, -EOVERFLOW when
 * len + more > max (nothing changes), or -ENOMEM. */
int nr_buf_reserve(struct nr_buf *b, size_t more);

/* Appends bytes (reserve + copy). Same returns as nr_buf_reserve. */
int nr_buf_append(struct nr_buf *b, const void *p, size_t n);

/* Drops the first n bytes (n <= len), moving the rest to the front. */
void nr_buf_consume(struct nr_buf *b, size_t n);

/* Empties the buffer and keeps its memory, or frees it when more than `keep` is allocated. */
void nr_buf_reset(struct nr_buf *b, size_t keep);

#endif
