/* Segment files on disk: creation with a complete pcapng head, appends that are all-or-nothing,
 * the closing statistics, deletion, and the read descriptors snapshots hold. */
#include "store/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "pcapng/encode.h"
#include "store/podset.h"
#include "store/sync.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/log.h"
#include "util/version.h"
#include "util/prog.h"

const char *const store_reason_names[STORE_DEL_N] = {"max_time", "max_size", "min_free_disk"};

uint64_t store_segment_disk(const struct store_segment *seg)
{
    /* The file's length (padding included) and what queued writes will add. */
    uint64_t data = seg->out.file_len > seg->size ? seg->out.file_len : seg->size;
    uint64_t idx = seg->idx_end > seg->idx_size ? seg->idx_end : seg->idx_size;

    if (seg->end > data)
        data = seg->end;

    return store_disk_bytes(data) + store_disk_bytes(idx);
}

struct store_segment *store_segment_new(struct store_stream *st, uint32_t segno, const char *path)
{
    struct store_segment *seg = calloc(1, sizeof(*seg));

    if (!seg)
        return NULL;
    seg->path = strdup(path);
    if (!seg->path) {
        free(seg);
        return NULL;
    }
    seg->stream = st;
    seg->segno = segno;
    seg->fd = seg->idx_fd = seg->rfd = -1;
    seg->refs = 1;
    return seg;
}

static void segment_free(struct store_segment *seg)
{
    if (seg->fd >= 0)
        close(seg->fd);
    if (seg->idx_fd >= 0)
        close(seg->idx_fd);
    if (seg->rfd >= 0)
        close(seg->rfd);
    store_append_free(&seg->out);
    for (size_t i = 0; i < seg->n_pod_sets; i++)
        store_pods_unref(seg->pod_sets[i]);
    free(seg->pod_sets);
    free(seg->runs);
    free(seg->keys);
    free(seg->path);
    free(seg);
}

void store_segment_unref(struct store_segment *seg)
{
    if (--seg->refs == 0)
        segment_free(seg);
}

void store_segment_link(struct store *s, struct store_segment *seg)
{
    seg->prev = s->seg_tail;
    seg->next = NULL;
    if (s->seg_tail)
        s->seg_tail->next = seg;
    else
        s->seg_head = seg;
    s->seg_tail = seg;
    s->n_segments++;
    s->bytes += store_segment_disk(seg);
}

static void segment_unlink(struct store *s, struct store_segment *seg)
{
    if (seg->prev)
        seg->prev->next = seg->next;
    else
        s->seg_head = seg->next;
    if (seg->next)
        seg->next->prev = seg->prev;
    else
        s->seg_tail = seg->prev;
    seg->prev = seg->next = NULL;
    s->n_segments--;
    s->bytes -= store_segment_disk(seg);
}

/* `arr` (capacity *cap elements of `size` bytes) with room for n in all, doubling from `first`:
 * arr itself, or its reallocation; NULL when out of memory (arr and *cap unchanged). */
static void *grow(void *arr, size_t *cap, size_t n, size_t size, size_t first)
{
    size_t c = *cap ? *cap : first;
    void *p;

    if (n <= *cap)
        return arr;
    while (c < n)
        c *= 2;
    p = realloc(arr, c * size);
    if (p)
        *cap = c;
    return p;
}

/* Room for n runs in all. */
static int reserve_runs(struct store_segment *seg, size_t n)
{
    struct store_run *r = grow(seg->runs, &seg->cap_runs, n, sizeof(*r), 64);

    if (!r)
        return -ENOMEM;
    seg->runs = r;
    return 0;
}

/* Room for n key log blocks in all. */
static int reserve_keys(struct store_segment *seg, size_t n)
{
    struct store_keys *k = grow(seg->keys, &seg->cap_keys, n, sizeof(*k), 16);

    if (!k)
        return -ENOMEM;
    seg->keys = k;
    return 0;
}

int store_segment_add_keys(struct store_segment *seg, uint64_t offset, uint64_t length)
{
    int rc = reserve_keys(seg, seg->n_keys + 1);

    if (rc != 0)
        return rc;
    seg->keys[seg->n_keys].offset = offset;
    seg->keys[seg->n_keys].length = length;
    seg->n_keys++;
    return 0;
}

int store_segment_add_run(struct store_segment *seg, const struct store_run *run)
{
    int rc = reserve_runs(seg, seg->n_runs + 1);

    if (rc != 0)
        return rc;
    seg->runs[seg->n_runs++] = *run;
    if (run->packets) {
        if (!seg->first_ts_ns || run->first_ts_ns < seg->first_ts_ns)
            seg->first_ts_ns = run->first_ts_ns;
        if (run->last_ts_ns > seg->last_ts_ns)
            seg->last_ts_ns = run->last_ts_ns;
    }
    seg->packets += run->packets;
    return 0;
}

int store_segment_add_pods(struct store_segment *seg, struct store_pods *pods)
{
    struct store_pods **p = realloc(seg->pod_sets, (seg->n_pod_sets + 1) * sizeof(*p));

    if (!p)
        return -ENOMEM;
    seg->pod_sets = p;
    store_pods_ref(pods);
    seg->pod_sets[seg->n_pod_sets++] = pods;
    seg->pods_head = pods;
    return 0;
}

/* Appends data (iov) to the segment and then its record to the index, on the loop (no write of
 * the segment queued: see drain_for); on any failure both files are cut back to their committed
 * sizes, so nothing half-written remains. */
static int append(struct store *s, struct store_segment *seg, const struct iovec *iov, int n,
                  size_t len, struct store_record *rec)
{
    uint8_t buf[STORE_INDEX_RECORD_LEN];
    struct iovec riov = {buf, sizeof(buf)};
    uint64_t before = store_segment_disk(seg);
    int rc;

    rec->offset = seg->size;
    rec->length = len;
    store_index_record_encode(buf, rec);
    rc = store_append_write(&seg->out, &s->stage, seg->fd, seg->size, iov, n, len);
    if (rc == 0)
        rc = store_pwritev_all(seg->idx_fd, &riov, 1, seg->idx_size);
    if (rc != 0) {
        s->write_errors++;
        if (store_append_cut(&seg->out, seg->fd, seg->size) != 0 ||
            ftruncate(seg->idx_fd, (off_t)seg->idx_size) != 0)
            NR_ERROR("cannot cut a failed write back", "segment=%s err=\"%s\"", seg->path,
                     strerror(errno));
        s->bytes += store_segment_disk(seg) - before;
        return rc;
    }
    store_append_commit(&seg->out, &s->stage, seg->size, seg->size + len);
    seg->size += len;
    seg->idx_size += sizeof(buf);
    seg->end = seg->size;
    seg->idx_end = seg->idx_size;
    seg->dirty = true;
    s->bytes += store_segment_disk(seg) - before;
    return 0;
}

/* Before the loop writes to seg itself: every queued write made and done. False when that
 * closed seg (a queued write failed). */
static bool drain_for(struct store *s, struct store_segment *seg)
{
    store_writer_drain(s);
    return seg->active;
}

static void segment_name(const struct store_stream *st, uint32_t segno, int64_t now_ns, char *buf,
                         size_t len)
{
    time_t t = (time_t)(now_ns / 1000000000);
    struct tm tm;
    char stamp[32];

    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(buf, len, "%s/%08u-%s", st->dir, segno, stamp);
}

static int pods_nrb(struct nr_buf *b, const struct store_pods *pods)
{
    struct pcapng_name names[64];
    size_t done = 0;
    int rc = 0;

    /* One NRB per 64 names keeps every block far below PCAPNG_MAX_BLOCK. */
    while (rc == 0 && done < pods->n) {
        size_t k = 0;
        for (; k < 64 && done + k < pods->n; k++) {
            const struct store_pod *p = &pods->pods[done + k];
            names[k].family = p->family;
            memcpy(names[k].addr, p->ip, 16);
            names[k].name = p->name;
        }
        rc = pcapng_nrb_append(b, names, k);
        done += k;
    }
    /* And the set with its time, uids and labels: the pod history of pod selection. */
    return rc == 0 ? store_podset_append(b, pods) : rc;
}

/* What an IDB says when the capture gave no description: where the interface is. */
static void default_desc(const struct store_stream *st, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", st->node[0] ? st->node : "?", name);
}

char *store_segment_idb_desc(const struct store_stream *st, const struct pcapng_idb *idb)
{
    char def[STORE_MAX_NAME + STORE_MAX_IFNAME + 2];

    default_desc(st, idb->name, def, sizeof(def));
    if (!idb->description[0] || strcmp(idb->description, def) == 0)
        return NULL;
    return strdup(idb->description);
}

static int idb_of(struct nr_buf *b, const struct store_stream *st, uint32_t i)
{
    char desc[STORE_MAX_NAME + STORE_MAX_IFNAME + 2];

    /* The capture's description (a pod's Kubernetes fields), else where the interface is. */
    default_desc(st, st->ifaces[i].name, desc, sizeof(desc));
    return pcapng_idb_append(b, (uint16_t)st->ifaces[i].link_type, st->ifaces[i].snaplen,
                             st->ifaces[i].name, st->ifaces[i].desc ? st->ifaces[i].desc : desc);
}

int store_segment_create(struct store *s, struct store_stream *st, int64_t now_ns)
{
    char path[600], file[640], comment[STORE_INDEX_MAX_ID + STORE_MAX_NAME + 64];
    uint8_t hdr[STORE_INDEX_HEADER_MAX];
    struct store_segment *seg = NULL;
    struct nr_buf head;
    struct store_record rec = {.kind = STORE_REC_HEAD};
    int rc, hlen;

    nr_buf_init(&head, PCAPNG_MAX_BLOCK * 4);
    segment_name(st, st->next_segno, now_ns, path, sizeof(path));
    seg = store_segment_new(st, st->next_segno, path);
    if (!seg) {
        rc = -ENOMEM;
        goto out;
    }
    snprintf(comment, sizeof(comment), "netreel-store node=%s capture=%s", s->cfg.node,
             st->capture_id);
    rc = pcapng_shb_append(&head, comment, NULL, NULL, "netreel-store " NR_VERSION);
    for (uint32_t i = 0; rc == 0 && i < st->n_ifaces; i++)
        rc = idb_of(&head, st, i);
    for (size_t i = 0; rc == 0 && i < st->n_unwritten; i++)
        rc = store_podset_append(&head, st->unwritten[i]);
    if (rc == 0 && st->pods)
        rc = pods_nrb(&head, st->pods);
    if (rc != 0)
        goto out;

    snprintf(file, sizeof(file), "%s.idx", path);
    seg->idx_fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (seg->idx_fd < 0) {
        rc = -errno;
        goto out;
    }
    snprintf(file, sizeof(file), "%s.pcapng", path);
    seg->fd = store_append_create(&seg->out, file);
    if (seg->fd < 0) {
        rc = seg->fd;
        goto out;
    }
    hlen = store_index_header_encode(hdr, st->capture_id);
    if (hlen < 0) {
        rc = hlen;
        goto out;
    }
    {
        struct iovec iov = {hdr, (size_t)hlen};
        rc = store_pwritev_all(seg->idx_fd, &iov, 1, 0);
        if (rc != 0)
            goto out;
        seg->idx_size = seg->idx_end = (uint64_t)hlen;
    }
    seg->created_ns = now_ns;
    seg->active = true;
    store_segment_link(s, seg);
    rec.packets = st->n_ifaces;
    rec.arrival_ns = now_ns;
    {
        struct iovec iov = {head.data, head.len};
        rc = append(s, seg, &iov, 1, head.len, &rec);
    }
    if (rc != 0) {
        segment_unlink(s, seg);
        goto out;
    }
    seg->n_ifaces = st->n_ifaces;
    for (size_t i = 0; rc == 0 && i < st->n_unwritten; i++)
        rc = store_segment_add_pods(seg, st->unwritten[i]);
    if (rc == 0 && st->pods)
        rc = store_segment_add_pods(seg, st->pods);
    if (rc != 0) {
        segment_unlink(s, seg);
        goto out;
    }
    st->next_segno++;
    st->active = seg;
    while (st->n_unwritten)
        store_pods_unref(st->unwritten[--st->n_unwritten]);
    st->dir_dirty = true;
    NR_DEBUG("segment opened", "segment=%s.pcapng", path);
out:
    nr_buf_free(&head);
    if (rc != 0 && seg) {
        if (seg->fd >= 0) {
            snprintf(file, sizeof(file), "%s.pcapng", path);
            unlink(file);
        }
        if (seg->idx_fd >= 0) {
            snprintf(file, sizeof(file), "%s.idx", path);
            unlink(file);
        }
        store_segment_unref(seg);
    }
    return rc;
}

int store_segment_update_meta(struct store *s, struct store_segment *seg, int64_t now_ns)
{
    const struct store_stream *st = seg->stream;
    bool new_pods = st->pods && st->pods != seg->pods_head;
    struct store_record rec = {.kind = STORE_REC_META, .arrival_ns = now_ns};
    struct nr_buf b;
    int rc = 0;

    if (seg->n_ifaces == st->n_ifaces && !new_pods)
        return 0;
    if (!drain_for(s, seg))
        return -EIO;
    nr_buf_init(&b, PCAPNG_MAX_BLOCK * 4);
    for (uint32_t i = seg->n_ifaces; rc == 0 && i < st->n_ifaces; i++)
        rc = idb_of(&b, st, i);
    if (rc == 0 && new_pods)
        rc = pods_nrb(&b, st->pods);
    if (rc == 0 && b.len > 0) {
        struct iovec iov = {b.data, b.len};
        rec.packets = st->n_ifaces;
        rc = append(s, seg, &iov, 1, b.len, &rec);
    }
    if (rc == 0) {
        seg->n_ifaces = st->n_ifaces;
        if (new_pods)
            rc = store_segment_add_pods(seg, st->pods);
    }
    nr_buf_free(&b);
    return rc;
}

/* The index record of a batch (its offset and length are store_segment_prepare's to set). */
static struct store_record batch_record(const struct store_run *run, int64_t now_ns)
{
    struct store_record rec = {
        .kind = STORE_REC_BATCH,
        .packets = run->packets,
        .first_ts_ns = run->first_ts_ns,
        .last_ts_ns = run->last_ts_ns,
        .seq = run->seq,
        .counters = run->counters,
        .arrival_ns = now_ns,
    };

    return rec;
}

int store_segment_prepare(struct store *s, struct store_segment *seg, const uint8_t *dsb,
                          size_t dsb_len, const uint8_t *blocks, size_t len,
                          const struct store_run *run, int64_t now_ns, struct store_write *w)
{
    struct store_record rec = batch_record(run, now_ns);
    struct store_record krec = {.kind = STORE_REC_KEYS, .seq = run->seq, .arrival_ns = now_ns};
    struct iovec iov[2] = {{(void *)dsb, dsb_len}, {(void *)blocks, len}};
    uint64_t before = store_segment_disk(seg);
    /* The slots now, so that committing the write cannot fail once it is on disk. */
    int rc = reserve_runs(seg, seg->n_runs + seg->queued + 1);

    if (rc == 0)
        rc = reserve_keys(seg, seg->n_keys + seg->queued + 1);
    if (rc == 0 && dsb_len == 0 && len == 0)
        rc = -EINVAL;
    if (rc == 0)
        rc = store_append_prepare(&seg->out, &w->stage, seg->end, dsb_len ? iov : iov + 1,
                                  dsb_len ? (len ? 2 : 1) : 1, dsb_len + len, &w->off, &w->len);
    if (rc != 0)
        return rc;
    w->rec_len = 0;
    w->keys_len = dsb_len;
    if (dsb_len) {
        krec.offset = seg->end;
        krec.length = dsb_len;
        store_index_record_encode(w->rec, &krec);
        w->rec_len += STORE_INDEX_RECORD_LEN;
        w->keys_off = seg->end;
    }
    if (len) {
        rec.offset = seg->end + dsb_len;
        rec.length = len;
        store_index_record_encode(w->rec + w->rec_len, &rec);
        w->rec_len += STORE_INDEX_RECORD_LEN;
    }
    len += dsb_len;
    w->seg = seg;
    w->fd = seg->fd;
    w->idx_fd = seg->idx_fd;
    w->direct = seg->out.direct;
    w->idx_off = seg->idx_end;
    w->cut_data = seg->end;
    w->data_start = seg->end;
    w->data_end = seg->end + len;
    w->run = *run;
    w->run.offset = seg->end + dsb_len;
    w->run.length = len - dsb_len;
    seg->end += len;
    seg->idx_end += w->rec_len;
    s->bytes += store_segment_disk(seg) - before;
    seg->refs++;
    seg->queued++;
    return 0;
}

int store_segment_written(struct store *s, struct store_write *w)
{
    struct store_segment *seg = w->seg;
    /* Their slots were reserved: these cannot fail. */
    int rc = w->keys_len ? store_segment_add_keys(seg, w->keys_off, w->keys_len) : 0;

    if (rc == 0 && w->run.length)
        rc = store_segment_add_run(seg, &w->run);
    if (rc != 0)
        return rc; /* not committed: closing cuts it off */
    seg->size = w->data_end;
    seg->idx_size = w->idx_off + w->rec_len;
    seg->dirty = true;
    return 0;
}

void store_segment_write_failed(struct store *s, struct store_write *w, int64_t now_ns)
{
    struct store_segment *seg = w->seg;

    if (seg->broken)
        return;
    seg->broken = true;
    if (w->rc != -ECANCELED)
        s->write_errors++;
    NR_ERROR("cannot write to a segment: closing it", "segment=%s.pcapng err=\"%s\"", seg->path,
             nr_strerror(w->rc));
    if (seg->active)
        store_segment_close(s, seg, now_ns);
}

void store_segment_write_end(struct store_write *w)
{
    struct store_segment *seg = w->seg;

    if (!seg)
        return;
    w->seg = NULL;
    seg->queued--;
    store_segment_unref(seg);
}

static bool any_active(const struct store *s)
{
    for (const struct store_stream *st = s->streams; st; st = st->next)
        if (st->active)
            return true;
    return false;
}

void store_segment_close(struct store *s, struct store_segment *seg, int64_t now_ns)
{
    struct store_stream *st = seg->stream;
    struct store_record rec = {.kind = STORE_REC_CLOSE, .arrival_ns = now_ns};
    struct nr_buf b;
    int rc = 0;

    if (!drain_for(s, seg))
        return; /* closed meanwhile, after a failed write */
    nr_buf_init(&b, 64u << 10);
    if (seg->n_ifaces > 0 && !seg->broken) {
        /* A capture's counters cover all its interfaces: they go on the first one. */
        struct pcapng_isb isb = {
            .ifid = 0,
            .ts_ns = seg->last_ts_ns ? seg->last_ts_ns : now_ns,
            .end_ns = seg->last_ts_ns,
            .ifrecv = st->counters.received,
            .ifdrop = st->counters.interface_dropped,
            .osdrop = st->counters.kernel_dropped + st->counters.capture_dropped,
        };
        rc = pcapng_isb_append(&b, &isb);
        if (rc == 0) {
            struct iovec iov = {b.data, b.len};
            rec.counters = st->counters;
            rc = append(s, seg, &iov, 1, b.len, &rec);
        }
    }
    if (rc != 0)
        NR_WARN("cannot write the closing statistics", "segment=%s.pcapng err=\"%s\"", seg->path,
                nr_strerror(rc));
    nr_buf_free(&b);
    if (seg->broken) {
        /* Only what was committed stays: a failed write was cut back by the writer, but writes
         * queued after a failure seen only here (out of memory) were made. */
        uint64_t before = store_segment_disk(seg);
        if (store_append_cut(&seg->out, seg->fd, seg->size) != 0 ||
            ftruncate(seg->idx_fd, (off_t)seg->idx_size) != 0)
            NR_ERROR("cannot cut a failed segment back", "segment=%s.pcapng err=\"%s\"", seg->path,
                     strerror(errno));
        seg->end = seg->size;
        seg->idx_end = seg->idx_size;
        s->bytes -= before - store_segment_disk(seg);
    } else if (seg->out.file_len != seg->size) {
        /* A closed segment ends with its last block: the padding goes. */
        uint64_t before = store_segment_disk(seg);
        if (store_append_cut(&seg->out, seg->fd, seg->size) != 0)
            NR_WARN("cannot cut the padding off a closed segment", "segment=%s.pcapng err=\"%s\"",
                    seg->path, strerror(errno));
        s->bytes -= before - store_segment_disk(seg);
    }
    store_append_free(&seg->out);
    store_sync_adopt(s, seg->fd, seg->idx_fd);
    seg->fd = seg->idx_fd = -1;
    seg->active = false;
    if (st->active == seg)
        st->active = NULL;
    if (!any_active(s))
        store_stage_free(&s->stage); /* idle or shutting down: the buffer goes until needed */
    NR_DEBUG("segment closed", "segment=%s.pcapng bytes=%llu packets=%llu", seg->path,
             (unsigned long long)seg->size, (unsigned long long)seg->packets);
}

void store_segment_delete(struct store *s, struct store_segment *seg, enum store_reason why)
{
    char file[640];
    uint64_t disk;

    if (seg->active)
        store_segment_close(s, seg, nr_now_ns());
    disk = store_segment_disk(seg);
    snprintf(file, sizeof(file), "%s.pcapng", seg->path);
    if (unlink(file) != 0 && errno != ENOENT)
        NR_ERROR("cannot delete a segment", "segment=%s err=\"%s\"", file, strerror(errno));
    snprintf(file, sizeof(file), "%s.idx", seg->path);
    if (unlink(file) != 0 && errno != ENOENT)
        NR_ERROR("cannot delete an index", "index=%s err=\"%s\"", file, strerror(errno));
    s->deleted_segments[why]++;
    s->deleted_bytes[why] += disk;
    NR_INFO("segment deleted", "segment=%s.pcapng reason=%s bytes=%llu newest_ns=%lld", seg->path,
            store_reason_names[why], (unsigned long long)seg->size, (long long)seg->last_ts_ns);
    segment_unlink(s, seg);
    seg->deleted = true;
    if (seg->readers > 0)
        s->pending_free += disk; /* freed when the last snapshot lets go */
    store_segment_unref(seg);
}

int store_segment_hold(struct store_segment *seg)
{
    if (seg->rfd < 0) {
        char file[640];
        snprintf(file, sizeof(file), "%s.pcapng", seg->path);
        seg->rfd = open(file, O_RDONLY | O_CLOEXEC);
        if (seg->rfd < 0)
            return -errno;
    }
    seg->refs++;
    seg->readers++;
    return 0;
}

void store_segment_release(struct store_segment *seg)
{
    if (--seg->readers == 0) {
        if (seg->rfd >= 0)
            close(seg->rfd);
        seg->rfd = -1;
        if (seg->deleted) {
            struct store *s = seg->stream->store;
            uint64_t disk = store_segment_disk(seg);
            s->pending_free -= disk < s->pending_free ? disk : s->pending_free;
        }
    }
    store_segment_unref(seg);
}
