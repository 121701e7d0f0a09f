/* Store.Ingest: a capture's bidi stream of PacketBatch in, IngestAck (highest seq on disk) out.
 * Each batch is checked whole before any of it is written, duplicates (by capture_id and seq,
 * also across restarts) are dropped, and acks follow the group commit (sync.h). */
#ifndef NR_STORE_INGEST_H
#define NR_STORE_INGEST_H

#include "rpc/call.h"
#include <stdbool.h>

#include "store/store.h"

/* The Ingest method's start function; data is the struct store. */
int store_ingest_start(struct rpc_call *call, void *data);

/* Has the group commit (sync.h) tell ingest when each sync starts and ends: the acks follow
 * them. main, once, before the loop runs. */
void store_ingest_init(struct store *s);

/* Closes the active segments of streams no Ingest call feeds any longer and that have been
 * quiet for a rotation period, expires segments by max-time; called by the store's timer. */
void store_ingest_tick(struct store *s, int64_t now_ns);

/* Whether a capture is sending the stream's batches now (an Ingest call of it is open). */
bool store_ingest_live(const struct store *s, const struct store_stream *st);

#endif
