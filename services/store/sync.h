/* Group commit: what ingest wrote is fdatasync'ed on libuv's thread pool, many batches per
 * sync, so the loop never waits for the disk. A sync starts at the latest --sync-interval after
 * the first write it covers, and as soon as a segment closes: a power loss loses at most the
 * writes of the last interval (and of the sync running then). With --sync-interval 0 a sync
 * starts at each write and a batch is acknowledged only once a sync that started after it was
 * written has finished. */
#ifndef NR_STORE_SYNC_H
#define NR_STORE_SYNC_H

#include <stdbool.h>

#include "store/store.h"

/* What a sync tells the code that acknowledges writes by it (ingest registers them with
 * store_sync_set_cbs), on the loop. */
struct store_sync_cbs {
    /* A sync is starting: it covers everything written so far. */
    void (*begin)(struct store *s);
    /* The sync that started last has finished; ok false: it did not cover every dirty file
     * (or did not run), so what it covered may not be acknowledged yet. */
    void (*end)(struct store *s, bool ok);
};

/* Arms the timer that starts syncs (main, once the loop exists). Without it (unit tests) what
 * is written is synced by store_sync_free. */
void store_sync_init(struct store *s);

/* Has every sync from now on tell cbs (which must outlive s: a static). Without it (unit
 * tests) syncs tell no one. */
void store_sync_set_cbs(struct store *s, const struct store_sync_cbs *cbs);

/* Something was written: a sync starts within the sync interval (now, with interval 0). */
void store_sync_later(struct store *s);

/* Takes ownership of a closed segment's descriptors (either may be -1): a sync starts soon and
 * flushes and closes them (out of memory: syncs them now, and stops the store if that fails). */
void store_sync_adopt(struct store *s, int fd, int idx_fd);

/* Asks for a sync of everything written so far: starts one now, or right after the one
 * running. When it ends, the end callback (store_sync_set_cbs) is told. */
void store_sync_request(struct store *s);

/* A sync that could not take every dirty file (no descriptor: EMFILE) acknowledges nothing,
 * leaves them dirty and sets s->sync_starved (new calls are refused meanwhile); the store's
 * once-a-second tick calls this to try again. */
void store_sync_tick(struct store *s);

/* Syncs and closes what a store that is shutting down still holds (after the loop ended), and
 * the directories that gained a file since the last sync. 0, or a negative errno (logged) when
 * an fdatasync failed. */
int store_sync_free(struct store *s);

#endif
