/* Retention (docs/design.md §4): max-time, max-size over every segment and index (the active ones
 * included) and a free-disk floor, enforced before each append and on a timer. Whole segments go,
 * the oldest (by newest packet) first, closed ones before active ones. */
#ifndef NR_STORE_RETENTION_H
#define NR_STORE_RETENTION_H

#include <stdint.h>

#include "store/store.h"

/* The next segment to delete to make room for `needed` more bytes at time now, given the bytes
 * free on the file system (`free_bytes`) and its size (`fs_bytes`), or NULL when every limit
 * holds. *why gets the reason. Pure: reads the catalog only. */
struct store_segment *store_retention_pick(const struct store *s, int64_t now_ns, uint64_t needed,
                                           uint64_t free_bytes, uint64_t fs_bytes,
                                           enum store_reason *why);

/* Deletes segments until `needed` more bytes fit every limit. Returns 0, or -ENOSPC when they
 * cannot (nothing is left to delete and the limit still fails), with the reason in *why. */
int store_retention_make_room(struct store *s, uint64_t needed, int64_t now_ns,
                              enum store_reason *why);

/* Free and total bytes of the file system that holds the data directory. */
int store_fs_space(const struct store *s, uint64_t *free_bytes, uint64_t *fs_bytes);

#endif
