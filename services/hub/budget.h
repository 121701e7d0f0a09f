/* The hub's memory budget (--memory-budget): what a snapshot may hold of each store's stream.
 * A snapshot holds, per store, what the store's HTTP/2 window lets it send ahead (in flight, or
 * arrived and held while the merge reads the message before), the copy of the message the merge
 * reads, and the buffer a message split over frames is put together in. The budget is shared by
 * --max-snapshots snapshots and, within one, by its stores: the more stores, the smaller each one's
 * messages (SnapshotRequest.max_chunk_bytes) and window (rpc_call_opts.recv_window), down to floors
 * that still let the merge move (one message in hand, one on its way): 8 KiB a store, so the
 * default budget holds HUB_MAX_STORES stores in each of 4 snapshots. Besides this, each store
 * connection costs a constant the budget does not shrink (docs/hub.md). */
#ifndef NR_HUB_BUDGET_H
#define NR_HUB_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#define HUB_DEFAULT_BUDGET (128u << 20)
#define HUB_MIN_BUDGET     (16u << 20)
#define HUB_CHUNK_MIN      (2u << 10)   /* the least a store takes (STORE_MIN_CHUNK_BYTES) */
#define HUB_CHUNK_MAX      (256u << 10) /* asked of stores at most */
#define HUB_WINDOW_MIN     (4u << 10)   /* a store stream's window, at least ... */
#define HUB_WINDOW_MAX     (2u << 20)   /* ... and at most */

struct hub_share {
    uint32_t chunk;  /* SnapshotRequest.max_chunk_bytes */
    uint32_t window; /* the store stream's receive window */
};

/* Each store's share of a snapshot over n_stores stores (n_stores >= 1). */
void hub_budget_share(uint64_t budget, unsigned max_snapshots, size_t n_stores,
                      struct hub_share *out);

#endif
