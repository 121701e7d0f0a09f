/* Store.Snapshot: the packets of a time window, exactly (since <= ts <= until), in
 * non-decreasing timestamp order — a k-way merge of the sorted runs (batches) of every capture
 * stream — optionally filtered per packet by a BPF expression and cut to a snaplen. First a
 * WindowHeader (interfaces, pod names), then blocks of at most 1 MiB, then a StoreSummary.
 * Memory is bounded by the runs that overlap in time, not by the window; the caller's reading
 * pace drives the disk reads (flow control). Segments deleted by retention while a snapshot
 * reads them stay readable to it. */
#ifndef NR_STORE_SNAPSHOT_H
#define NR_STORE_SNAPSHOT_H

#include "rpc/call.h"
#include "store/store.h"

/* The Snapshot method's start function; data is the struct store. */
int store_snapshot_start(struct rpc_call *call, void *data);

#endif
