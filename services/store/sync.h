/* Group commit: what ingest wrote is fdatasync'ed on libuv's thread pool, many batches per
 * sync, and a batch is acknowledged only once a sync that started after it was written has
 * finished — so an acked batch survives power loss, and the loop never waits for the disk. */
#ifndef NR_STORE_SYNC_H
#define NR_STORE_SYNC_H

#include "store/store.h"

/* Takes ownership of a closed segment's descriptors (either may be -1): the next sync flushes
 * and closes them. */
void store_sync_adopt(struct store *s, int fd, int idx_fd);

/* Asks for a sync of everything written so far: starts one now, or right after the one
 * running. When it ends, store_ingest_synced() acknowledges what it covered. */
void store_sync_request(struct store *s);

/* Frees what a store that is shutting down still holds for syncing (after the loop ended). */
void store_sync_free(struct store *s);

#endif
