/* The memory budget's split (see budget.h). */
#include "hub/budget.h"

static uint64_t clamp(uint64_t v, uint64_t lo, uint64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void hub_budget_share(uint64_t budget, unsigned max_snapshots, size_t n_stores,
                      struct hub_share *out)
{
    uint64_t per_snapshot = budget / (max_snapshots ? max_snapshots : 1);
    uint64_t share = per_snapshot / (n_stores ? n_stores : 1);

    /* What a store costs the hub: its window (what it sent ahead, in flight or held while the
     * merge reads the message before), the copy of the message the merge reads, and the buffer
     * a message split over frames is put together in (kept for the next): window + 2 chunks. A
     * window of two messages lets the store send the next one while the merge reads this one. */
    out->chunk = (uint32_t)clamp(share / 4, HUB_CHUNK_MIN, HUB_CHUNK_MAX);
    out->window = (uint32_t)clamp(share / 2, HUB_WINDOW_MIN, HUB_WINDOW_MAX);
}
