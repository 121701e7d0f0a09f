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

    /* A store's cost is about two messages (the one read, the one arriving) and two windows
     * (what is in flight, and the read buffer it lands in): 2/8 + 2/4 of its share. */
    out->chunk = (uint32_t)clamp(share / 8, HUB_CHUNK_MIN, HUB_CHUNK_MAX);
    out->window = (uint32_t)clamp(share / 4, HUB_WINDOW_MIN, HUB_WINDOW_MAX);
}
