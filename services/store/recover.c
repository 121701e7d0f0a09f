/* Startup recovery (see recover.h): indexes are read, checked record by record and cut at the
 * first bad one; the segment file is cut to the last record's end; head and update blocks are
 * parsed for interfaces and pod names. */
#include "store/recover.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pcapng/decode.h"
#include "store/podset.h"
#include "store/segment.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/log.h"

/* An index holds a record per batch; 64 MiB of index is far beyond any segment cap. */
#define INDEX_MAX (64u << 20)

static int read_all(int fd, struct nr_buf *b)
{
    for (;;) {
        int rc = nr_buf_reserve(b, 1 << 16);
        ssize_t r;
        if (rc != 0)
            return rc;
        r = read(fd, b->data + b->len, b->cap - b->len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return 0;
        b->len += (size_t)r;
    }
}

static int read_at(int fd, uint8_t *p, size_t len, uint64_t off)
{
    while (len) {
        ssize_t r = pread(fd, p, len, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : NR_EPARSE;
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

struct meta_ctx {
    struct store_stream *st;
    struct store_pods *pods;
    size_t cap;
    int rc;
};

static int add_name(const struct pcapng_name *name, void *arg)
{
    struct meta_ctx *m = arg;
    struct store_pod *p;

    if (!m->pods || m->pods->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        struct store_pods *n;
        if (cap > STORE_MAX_PODS)
            return NR_EOVERSIZE;
        n = realloc(m->pods, sizeof(*n) + cap * sizeof(n->pods[0]));
        if (!n)
            return -ENOMEM;
        if (!m->pods) {
            n->refs = 1;
            n->n = 0;
        }
        m->pods = n;
        m->cap = cap;
    }
    p = &m->pods->pods[m->pods->n];
    p->family = (uint8_t)name->family;
    memcpy(p->ip, name->addr, 16);
    if (store_pod_set(p, NULL, name->name, NULL, NULL) != 0)
        return -ENOMEM;
    m->pods->n++;
    return 0;
}

/* A pod set a head or update record described becomes the segment's, and the stream's current
 * one (the set's reference goes to the stream). */
static int take_pods(struct store_segment *seg, struct store_pods *p)
{
    struct store_stream *st = seg->stream;
    int rc = store_segment_add_pods(seg, p);

    store_pods_unref(st->pods);
    st->pods = p; /* add_pods took its own reference */
    return rc;
}

/* Parses the IDBs, NRBs and pod set blocks of a head or update record. */
static int parse_meta(struct store_segment *seg, int fd, const struct store_record *r)
{
    struct store_stream *st = seg->stream;
    struct meta_ctx m = {.st = st};
    struct store_pods *set = NULL;
    uint32_t filled = 0;
    bool had_sets = false; /* whole pod set blocks: the NRBs' names are not needed */
    uint8_t *buf;
    size_t off = 0;
    int rc;

    if (r->length > 16u * PCAPNG_MAX_BLOCK)
        return NR_EOVERSIZE;
    buf = malloc(r->length ? r->length : 1);
    if (!buf)
        return -ENOMEM;
    rc = read_at(fd, buf, r->length, r->offset);
    while (rc == 0 && off < r->length) {
        uint32_t type;
        size_t blen;
        int k = pcapng_block_peek(buf + off, r->length - off, &type, &blen);
        if (k != 1) {
            rc = NR_EPARSE;
            break;
        }
        if (type == PCAPNG_BT_IDB) {
            struct pcapng_idb idb;
            rc = pcapng_idb_decode(buf + off, blen, &idb);
            if (rc == 0 && seg->n_ifaces < STORE_MAX_INTERFACES) {
                uint32_t i = seg->n_ifaces++;
                if (i >= st->n_ifaces) {
                    snprintf(st->ifaces[i].name, sizeof(st->ifaces[i].name), "%s", idb.name);
                    st->ifaces[i].link_type = idb.link_type;
                    st->ifaces[i].snaplen = idb.snaplen;
                    free(st->ifaces[i].desc);
                    st->ifaces[i].desc = store_segment_idb_desc(st, &idb);
                    st->n_ifaces = i + 1;
                }
            }
        } else if (type == PCAPNG_BT_NRB) {
            rc = pcapng_nrb_foreach(buf + off, blen, add_name, &m);
        } else if (type == STORE_PODSET_BLOCK) {
            struct store_podset_part part;
            rc = store_podset_decode(buf + off, blen, &part, NULL);
            if (rc == 0 && part.first == 0) { /* a set starts */
                store_pods_unref(set);
                filled = 0;
                set = store_pods_new(part.total);
                if (!set)
                    rc = -ENOMEM;
                else
                    set->n = part.total;
            }
            if (rc == 0 && set && part.first == filled && part.total == set->n) {
                rc = store_podset_decode(buf + off, blen, &part, set);
                set->since_ns = part.since_ns;
                filled += part.count;
                if (rc == 0 && filled == set->n) { /* whole: it joins the history */
                    rc = take_pods(seg, set);
                    set = NULL;
                    had_sets = true;
                }
            }
        }
        off += blen;
    }
    free(buf);
    store_pods_unref(set);              /* a set cut short */
    if (rc == 0 && m.pods && !had_sets) /* a segment written before pod set blocks */
        return take_pods(seg, m.pods);
    store_pods_unref(m.pods);
    return rc;
}

/* Whether [end, size) is exactly the padding block a direct-I/O append leaves (append.h): then
 * the cut is routine after a crash, not a torn write. */
static bool only_padding(int fd, uint64_t end, uint64_t size)
{
    uint8_t b[12];
    uint32_t type, len, trail;

    if (size <= end || size - end < PCAPNG_BLOCK_MIN || size - end > STORE_APPEND_PAD_MAX)
        return false;
    if (read_at(fd, b, 8, end) != 0 || read_at(fd, b + 8, 4, size - 4) != 0)
        return false;
    memcpy(&type, b, 4);
    memcpy(&len, b + 4, 4);
    memcpy(&trail, b + 8, 4);
    return type == STORE_APPEND_PAD_TYPE && len == size - end && trail == len;
}

/* Checks that [offset, offset+length) of the segment is whole blocks. */
static int tail_whole(int fd, const struct store_record *r)
{
    struct nr_buf b;
    int rc;

    if (r->length > 64u << 20)
        return NR_EOVERSIZE;
    nr_buf_init(&b, r->length + 1);
    rc = nr_buf_reserve(&b, r->length);
    if (rc == 0)
        rc = read_at(fd, b.data, r->length, r->offset);
    if (rc == 0 && pcapng_whole_prefix(b.data, r->length, NULL) != r->length)
        rc = NR_EPARSE;
    nr_buf_free(&b);
    return rc;
}

int store_recover_segment(struct store *s, const char *dir, const char *stem,
                          struct store_segment **out)
{
    char path[600], file[640], id[STORE_INDEX_MAX_ID + 1];
    struct store_record *recs = NULL;
    struct store_segment *seg = NULL;
    struct store_stream *st;
    size_t n = 0, keep, hlen = 0;
    struct nr_buf idx;
    struct stat sb;
    int fd = -1, ifd = -1, rc;
    uint32_t segno = (uint32_t)strtoul(stem, NULL, 10);

    nr_buf_init(&idx, INDEX_MAX);
    snprintf(path, sizeof(path), "%s/%s", dir, stem);
    snprintf(file, sizeof(file), "%s.idx", path);
    ifd = open(file, O_RDWR | O_CLOEXEC);
    snprintf(file, sizeof(file), "%s.pcapng", path);
    fd = open(file, O_RDWR | O_CLOEXEC);
    if (ifd < 0 || fd < 0 || fstat(fd, &sb) != 0) {
        rc = -errno;
        goto out;
    }
    rc = read_all(ifd, &idx);
    if (rc != 0)
        goto out;
    rc = store_index_header_decode(idx.data, idx.len, id, &hlen);
    if (rc != 1) {
        rc = NR_EPARSE;
        goto out;
    }
    rc = 0;
    recs = malloc(((idx.len - hlen) / STORE_INDEX_RECORD_LEN + 1) * sizeof(*recs));
    if (!recs) {
        rc = -ENOMEM;
        goto out;
    }
    /* Records are contiguous from offset 0 and inside the file; the first bad one ends them. */
    for (size_t o = hlen; o + STORE_INDEX_RECORD_LEN <= idx.len; o += STORE_INDEX_RECORD_LEN) {
        struct store_record r;
        uint64_t expect = n ? recs[n - 1].offset + recs[n - 1].length : 0;
        if (store_index_record_decode(idx.data + o, &r) != 0 || r.offset != expect ||
            (n == 0) != (r.kind == STORE_REC_HEAD) || r.offset + r.length > (uint64_t)sb.st_size)
            break;
        recs[n++] = r;
        if (r.kind == STORE_REC_CLOSE)
            break;
    }
    /* Whatever the index vouches for last must be whole blocks, or it goes too. */
    keep = n;
    while (keep > 0 && recs[keep - 1].kind != STORE_REC_CLOSE && tail_whole(fd, &recs[keep - 1]))
        keep--;
    if (keep == 0) {
        rc = NR_EPARSE;
        goto out;
    }
    {
        uint64_t end = recs[keep - 1].offset + recs[keep - 1].length;
        uint64_t iend = hlen + keep * STORE_INDEX_RECORD_LEN;
        if ((uint64_t)sb.st_size != end || idx.len != iend) {
            if (idx.len == iend && only_padding(fd, end, (uint64_t)sb.st_size))
                NR_INFO("padding cut from a segment a crash left active",
                        "segment=%s.pcapng from=%lld to=%llu", path, (long long)sb.st_size,
                        (unsigned long long)end);
            else
                NR_WARN("segment cut back to its last whole batch",
                        "segment=%s.pcapng from=%lld to=%llu", path, (long long)sb.st_size,
                        (unsigned long long)end);
            if (ftruncate(fd, (off_t)end) != 0 || ftruncate(ifd, (off_t)iend) != 0 ||
                fdatasync(fd) != 0 || fdatasync(ifd) != 0) {
                rc = -errno;
                goto out;
            }
        }
        st = store_stream_find(s, id);
        if (!st) {
            rc = store_stream_add(s, id, &st);
            if (rc != 0)
                goto out;
            snprintf(st->dir, sizeof(st->dir), "%s", dir);
        }
        seg = store_segment_new(st, segno, path);
        if (!seg) {
            rc = -ENOMEM;
            goto out;
        }
        seg->size = seg->end = end;
        seg->idx_size = seg->idx_end = iend;
        seg->created_ns = recs[0].arrival_ns;
    }
    for (size_t i = 0; i < keep && rc == 0; i++) {
        const struct store_record *r = &recs[i];
        if (r->kind == STORE_REC_HEAD || r->kind == STORE_REC_META) {
            rc = parse_meta(seg, fd, r);
        } else if (r->kind == STORE_REC_KEYS) {
            /* Its seq is not taken as written: the batch's own record may be the one torn. */
            rc = store_segment_add_keys(seg, r->offset, r->length);
        } else if (r->kind == STORE_REC_BATCH) {
            struct store_run run = {
                .offset = r->offset,
                .length = r->length,
                .first_ts_ns = r->first_ts_ns,
                .last_ts_ns = r->last_ts_ns,
                .seq = r->seq,
                .packets = r->packets,
                .counters = r->counters,
            };
            rc = store_segment_add_run(seg, &run);
            if (!st->have_seq || r->seq > st->last_seq) {
                st->have_seq = st->have_done = true;
                st->last_seq = st->done_seq = r->seq; /* on disk: taken and written */
                st->counters = r->counters;
            }
        }
    }
    if (rc != 0)
        goto out;
    if (segno >= st->next_segno)
        st->next_segno = segno + 1;
    *out = seg;
    seg = NULL;
out:
    if (seg)
        store_segment_unref(seg);
    if (fd >= 0)
        close(fd);
    if (ifd >= 0)
        close(ifd);
    free(recs);
    nr_buf_free(&idx);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Recovers the segments of one stream directory, in segment-number order. */
static void recover_dir(struct store *s, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **stems = NULL;
    size_t n = 0, cap = 0;

    if (!d)
        return;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".idx") != 0)
            continue;
        if (n == cap) {
            char **p = realloc(stems, (cap = cap ? cap * 2 : 64) * sizeof(*p));
            if (!p)
                break;
            stems = p;
        }
        stems[n] = strndup(e->d_name, len - 4);
        if (stems[n])
            n++;
    }
    closedir(d);
    if (n > 1)
        qsort(stems, n, sizeof(*stems), by_name);
    for (size_t i = 0; i < n; i++) {
        struct store_segment *seg = NULL;
        int rc = store_recover_segment(s, dir, stems[i], &seg);
        if (rc == 0) {
            store_segment_link(s, seg);
        } else {
            NR_ERROR("segment cannot be recovered; left as it is and not served",
                     "segment=%s/%s.pcapng err=\"%s\"", dir, stems[i], nr_strerror(rc));
        }
        free(stems[i]);
    }
    free(stems);
}

int store_recover(struct store *s)
{
    DIR *d = opendir(s->cfg.data_dir);
    struct dirent *e;
    uint64_t packets = 0;

    if (!d)
        return -errno;
    while ((e = readdir(d))) {
        char dir[600];
        struct stat sb;
        if (e->d_name[0] == '.')
            continue;
        snprintf(dir, sizeof(dir), "%s/%s", s->cfg.data_dir, e->d_name);
        if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode))
            recover_dir(s, dir);
    }
    closedir(d);
    for (const struct store_segment *seg = s->seg_head; seg; seg = seg->next)
        packets += seg->packets;
    NR_INFO("recovered", "segments=%u bytes=%llu packets=%llu", s->n_segments,
            (unsigned long long)s->bytes, (unsigned long long)packets);
    return 0;
}
