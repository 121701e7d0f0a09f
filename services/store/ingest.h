/* Store.Ingest: a capture's bidi stream of PacketBatch in, IngestAck (highest seq on disk) out.
 * Each batch is checked whole before any of it is written, duplicates (by capture_id and seq,
 * also across restarts) are dropped, and acks follow the group commit (sync.h). */
#ifndef NR_STORE_INGEST_H
#define NR_STORE_INGEST_H

#include <stdbool.h>

#include "rpc/call.h"
#include "store/store.h"

/* The Ingest method's start function; data is the struct store. */
int store_ingest_start(struct rpc_call *call, void *data);

/* sync.c: a sync is starting and covers every batch written so far. */
void store_ingest_sync_begin(struct store *s);

/* sync.c: the sync that started last has finished (ok false: it failed, acks wait). */
void store_ingest_synced(struct store *s, bool ok);

/* Closes the active segments of streams no Ingest call feeds any longer and that have been
 * quiet for a rotation period, expires segments by max-time; called by the store's timer. */
void store_ingest_tick(struct store *s, int64_t now_ns);

#endif
