/* Retention decisions (a pure choice over the catalog) and their application. */
#include "store/retention.h"

#include <errno.h>
#include <sys/statvfs.h>

#include "store/segment.h"
#include "util/log.h"

/* A segment's age: its newest packet, or when it was made if it has none. */
static int64_t newest(const struct store_segment *seg)
{
    return seg->last_ts_ns ? seg->last_ts_ns : seg->created_ns;
}

static struct store_segment *oldest(const struct store *s)
{
    struct store_segment *best = NULL;

    for (struct store_segment *seg = s->seg_head; seg; seg = seg->next) {
        if (!best || (best->active && !seg->active) ||
            (best->active == seg->active && newest(seg) < newest(best)))
            best = seg;
    }
    return best;
}

struct store_segment *store_retention_pick(const struct store *s, int64_t now_ns, uint64_t needed,
                                           uint64_t free_bytes, uint64_t fs_bytes,
                                           enum store_reason *why)
{
    uint64_t floor = (uint64_t)((double)fs_bytes * s->cfg.min_free_pct / 100.0);
    uint64_t free_eff = free_bytes + s->pending_free;

    if (s->cfg.max_time_ns > 0) {
        int64_t horizon = now_ns - s->cfg.max_time_ns;
        for (struct store_segment *seg = s->seg_head; seg; seg = seg->next) {
            if (newest(seg) < horizon) {
                *why = STORE_DEL_MAX_TIME;
                return seg;
            }
        }
    }
    if (s->bytes + needed > s->cfg.max_size && s->seg_head) {
        *why = STORE_DEL_MAX_SIZE;
        return oldest(s);
    }
    if (fs_bytes && (free_eff < needed || free_eff - needed < floor) && s->seg_head) {
        *why = STORE_DEL_MIN_FREE;
        return oldest(s);
    }
    return NULL;
}

int store_fs_space(const struct store *s, uint64_t *free_bytes, uint64_t *fs_bytes)
{
    struct statvfs v;

    if (statvfs(s->cfg.data_dir, &v) != 0)
        return -errno;
    *free_bytes = (uint64_t)v.f_bavail * v.f_frsize;
    *fs_bytes = (uint64_t)v.f_blocks * v.f_frsize;
    return 0;
}

int store_retention_make_room(struct store *s, uint64_t needed, int64_t now_ns,
                              enum store_reason *why)
{
    for (;;) {
        uint64_t free_bytes = 0, fs_bytes = 0;
        struct store_segment *seg;

        if (store_fs_space(s, &free_bytes, &fs_bytes) != 0)
            fs_bytes = 0; /* cannot tell: the floor is not applied */
        seg = store_retention_pick(s, now_ns, needed, free_bytes, fs_bytes, why);
        if (!seg)
            break;
        store_segment_delete(s, seg, *why);
    }
    /* With nothing left to delete, a limit that still fails refuses the write. */
    if (s->bytes + needed > s->cfg.max_size) {
        *why = STORE_DEL_MAX_SIZE;
        return -ENOSPC;
    }
    {
        uint64_t free_bytes = 0, fs_bytes = 0;
        if (store_fs_space(s, &free_bytes, &fs_bytes) == 0 && fs_bytes) {
            uint64_t floor = (uint64_t)((double)fs_bytes * s->cfg.min_free_pct / 100.0);
            if (free_bytes + s->pending_free < needed + floor) {
                *why = STORE_DEL_MIN_FREE;
                return -ENOSPC;
            }
        }
    }
    return 0;
}
