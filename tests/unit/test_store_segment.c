/* Tests for services/store/segment.c, index.c, writer.c and recover.c: a segment is a complete
 * pcapng file at every commit, and recovery keeps exactly what the index vouches for — whatever
 * byte the process died at.
 *
 * Batches go in as ingest writes them: store_writer_take, store_segment_prepare,
 * store_writer_queue, then on the loop the write's done commits it (store_segment_written) and
 * lets go of the segment (store_segment_write_end). As in netreel-store the writer thread is
 * started and the done callbacks run from the loop's uv_async; one test also runs without the
 * thread, where a queued write is made at once. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "pcapng/decode.h"
#include "pcapng/encode.h"
#include "store/index.h"
#include "store/recover.h"
#include "store/podset.h"
#include "store/segment.h"
#include "store/store.h"
#include "store/writer.h"
#include "util/error.h"

#define T0         INT64_C(1795600000000000000)
#define MAX_WRITES 16

struct fixture {
    char dir[64];
    struct store s;
    struct store_stream *st;
    uv_loop_t loop;
    bool threaded;
    /* Writes queued to the writer, and done (on the loop), with their seqs in done order. */
    unsigned n_queued, n_done;
    uint64_t done_seq[MAX_WRITES];
};

static int setup_with(void **state, bool threaded)
{
    struct fixture *f = calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/netreel-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->s.loop = &f->loop;
    f->threaded = threaded;
    if (threaded) {
        assert_int_equal(store_writer_start(&f->s), 0);
        assert_true(f->s.writer.started);
    }
    f->s.cfg.data_dir = f->dir;
    f->s.cfg.max_size = 1u << 30;
    snprintf(f->s.cfg.node, sizeof(f->s.cfg.node), "node-a");
    assert_int_equal(store_stream_add(&f->s, "cap-1", &f->st), 0);
    assert_int_equal(mkdir(f->st->dir, 0750), 0);
    f->st->n_ifaces = 1;
    snprintf(f->st->ifaces[0].name, sizeof(f->st->ifaces[0].name), "eth0");
    f->st->ifaces[0].link_type = 1;
    f->st->ifaces[0].snaplen = 65535;
    *state = f;
    return 0;
}

/* As netreel-store runs: with the writer thread. */
static int setup(void **state)
{
    return setup_with(state, true);
}

/* Without it (pthread_create failed): each write made and done when queued. */
static int setup_inline(void **state)
{
    return setup_with(state, false);
}

static void free_store(struct store *s)
{
    while (s->seg_head)
        store_segment_delete(s, s->seg_head, STORE_DEL_MAX_TIME);
    for (size_t i = 0; i < s->n_sync_fds; i++)
        close(s->sync_fds[i]);
    free(s->sync_fds);
    while (s->streams) {
        struct store_stream *st = s->streams;
        s->streams = st->next;
        store_stream_free(st);
    }
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    /* As netreel-store stops: the writes done, the segments closed, the loop's handles
     * closed, then the thread joined. */
    store_writer_drain(&f->s);
    free_store(&f->s);
    if (f->s.writer.started)
        uv_close((uv_handle_t *)&f->s.writer.async, NULL);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    store_writer_free(&f->s);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static size_t read_file(const char *path, uint8_t **out)
{
    struct stat sb;
    int fd = open(path, O_RDONLY);

    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &sb), 0);
    *out = malloc((size_t)sb.st_size + 1);
    assert_int_equal(read(fd, *out, (size_t)sb.st_size), sb.st_size);
    close(fd);
    return (size_t)sb.st_size;
}

static void write_file(const char *path, const uint8_t *p, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, len), (ssize_t)len);
    close(fd);
}

static struct fixture *fixture_of(struct store *s)
{
    return (struct fixture *)(void *)((char *)s - offsetof(struct fixture, s));
}

/* A write's done, on the loop, as ingest's: it commits the batch, and lets go of the segment. */
static void write_done(struct store *s, struct store_write *w)
{
    struct fixture *f = fixture_of(s);
    struct store_segment *seg = w->seg;
    unsigned refs = seg->refs, queued = seg->queued;

    assert_int_equal(w->rc, 0);
    assert_true(f->n_done < f->n_queued);
    f->done_seq[f->n_done++] = w->run.seq;
    assert_int_equal(store_segment_written(s, w), 0);
    assert_int_equal(seg->size, w->data_end);
    assert_int_equal(seg->idx_size, w->idx_off + w->rec_len);
    store_segment_write_end(w);
    assert_null(w->seg);
    assert_int_equal(seg->refs, refs - 1);
    assert_int_equal(seg->queued, queued - 1);
}

/* Runs the loop until n writes in all are done (the writer's uv_async completes them); without
 * the thread they were done when queued. */
static void wait_done(struct fixture *f, unsigned n)
{
    if (!f->threaded) {
        assert_int_equal(f->n_done, n);
        return;
    }
    while (f->n_done < n)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->n_done, n);
}

/* What a queued batch is to become: a DSB (keys_len bytes, 0: none) right before the EPBs
 * (len bytes, 0: none), their index records at idx_off, and the bytes themselves. */
struct queued {
    uint64_t seq;
    uint32_t packets;
    int64_t first_ts_ns, last_ts_ns;
    uint64_t keys_off, keys_len, off, len, idx_off;
    uint8_t *bytes; /* the DSB and the EPBs, keys_len + len of them */
};

/* Queues a batch through the writer as ingest does (store_writer_take, store_segment_prepare,
 * store_writer_queue): with dsb (may be NULL) its key log lines, then n packets of `size`
 * bytes from ts. The place is reserved at once; nothing is committed before the write's done. */
static struct queued queue_batch(struct fixture *f, uint64_t seq, const struct nr_buf *dsb, int n,
                                 int64_t ts, uint32_t size)
{
    struct store_segment *seg = f->st->active;
    struct nr_buf b;
    uint8_t data[1600];
    struct store_run run = {
        .seq = seq,
        .packets = (uint32_t)n,
        .first_ts_ns = n ? ts : 0,
        .last_ts_ns = n ? ts + n - 1 : 0,
        .counters = {.received = seq * 10, .kernel_dropped = seq},
    };
    size_t dlen = dsb ? dsb->len : 0;
    uint64_t size_before = seg->size, idx_size_before = seg->idx_size;
    struct queued q = {.seq = seq,
                       .packets = run.packets,
                       .first_ts_ns = run.first_ts_ns,
                       .last_ts_ns = run.last_ts_ns,
                       .keys_off = seg->end,
                       .keys_len = dlen,
                       .idx_off = seg->idx_end};
    struct store_write *w;

    nr_buf_init(&b, 1 << 20);
    for (int i = 0; i < n; i++) {
        memset(data, (int)(seq * 16 + (uint64_t)i), sizeof(data));
        assert_int_equal(pcapng_epb_append(&b, 0, ts + i, data, size, size, NULL), 0);
    }
    q.off = seg->end + dlen;
    q.len = b.len;
    q.bytes = malloc(dlen + b.len + 1);
    if (dlen)
        memcpy(q.bytes, dsb->data, dlen);
    if (b.len)
        memcpy(q.bytes + dlen, b.data, b.len);

    w = store_writer_take(&f->s, STORE_APPEND_STAGE_NEED(dlen + b.len));
    assert_non_null(w);
    assert_int_equal(
        store_segment_prepare(&f->s, seg, dsb ? dsb->data : NULL, dlen, b.data, b.len, &run, T0, w),
        0);
    /* A prepared write holds its segment until its done ends it (the catalog holds the other
     * reference). */
    assert_int_equal(seg->queued, f->n_queued + 1 - f->n_done);
    assert_int_equal(seg->refs, 1 + f->n_queued + 1 - f->n_done);
    /* Its place: right after what is written or queued, in both files. */
    assert_ptr_equal(w->seg, seg);
    assert_int_equal(w->data_start, q.keys_off);
    assert_int_equal(w->data_end, q.off + q.len);
    assert_int_equal(w->run.offset, q.off);
    assert_int_equal(w->run.length, q.len);
    assert_int_equal(w->keys_len, dlen);
    assert_int_equal(w->rec_len, ((dlen ? 1u : 0u) + (b.len ? 1u : 0u)) * STORE_INDEX_RECORD_LEN);
    assert_int_equal(seg->end, q.off + q.len);
    assert_int_equal(seg->idx_end, q.idx_off + w->rec_len);
    /* Not committed: snapshots do not see it yet. */
    assert_int_equal(seg->size, size_before);
    assert_int_equal(seg->idx_size, idx_size_before);
    w->done = write_done;
    f->n_queued++;
    store_writer_queue(&f->s, w);
    /* In flight until done (without the thread: done already, and let go). */
    assert_int_equal(seg->queued, f->n_queued - f->n_done);
    assert_int_equal(seg->refs, 1 + f->n_queued - f->n_done);
    nr_buf_free(&b);
    return q;
}

/* After q's write is done: the segment, its runs and both files say what q was. run_index: its
 * run among the segment's (when it has EPBs), keys_index: its DSB among the segment's. */
static void check_written(struct fixture *f, const struct queued *q, size_t run_index,
                          size_t keys_index)
{
    const struct store_segment *seg = f->st->active;
    char path[700];
    uint8_t *p;
    size_t len, at = q->idx_off;
    struct store_record rec;

    assert_true(seg->size >= q->off + q->len);
    assert_true(seg->idx_size >= q->idx_off + STORE_INDEX_RECORD_LEN);
    if (q->keys_len) {
        assert_true(keys_index < seg->n_keys);
        assert_int_equal(seg->keys[keys_index].offset, q->keys_off);
        assert_int_equal(seg->keys[keys_index].length, q->keys_len);
    }
    if (q->len) {
        const struct store_run *r = &seg->runs[run_index];
        assert_true(run_index < seg->n_runs);
        assert_int_equal(r->offset, q->off);
        assert_int_equal(r->length, q->len);
        assert_int_equal(r->seq, q->seq);
        assert_int_equal(r->packets, q->packets);
        assert_int_equal(r->first_ts_ns, q->first_ts_ns);
        assert_int_equal(r->last_ts_ns, q->last_ts_ns);
        assert_int_equal(r->counters.received, q->seq * 10);
    }

    /* The index: a KEYS record for the DSB, then the batch's BATCH record, where reserved. */
    snprintf(path, sizeof(path), "%s.idx", seg->path);
    len = read_file(path, &p);
    assert_true(len >= seg->idx_size);
    if (q->keys_len) {
        assert_int_equal(store_index_record_decode(p + at, &rec), 0);
        assert_int_equal(rec.kind, STORE_REC_KEYS);
        assert_int_equal(rec.offset, q->keys_off);
        assert_int_equal(rec.length, q->keys_len);
        assert_int_equal(rec.seq, q->seq);
        assert_int_equal(rec.arrival_ns, T0);
        at += STORE_INDEX_RECORD_LEN;
    }
    if (q->len) {
        assert_int_equal(store_index_record_decode(p + at, &rec), 0);
        assert_int_equal(rec.kind, STORE_REC_BATCH);
        assert_int_equal(rec.offset, q->off);
        assert_int_equal(rec.length, q->len);
        assert_int_equal(rec.seq, q->seq);
        assert_int_equal(rec.packets, q->packets);
        assert_int_equal(rec.first_ts_ns, q->first_ts_ns);
        assert_int_equal(rec.last_ts_ns, q->last_ts_ns);
        assert_int_equal(rec.counters.received, q->seq * 10);
        assert_int_equal(rec.counters.kernel_dropped, q->seq);
        assert_int_equal(rec.arrival_ns, T0);
    }
    free(p);

    /* The segment: the bytes, where the records say. */
    snprintf(path, sizeof(path), "%s.pcapng", seg->path);
    len = read_file(path, &p);
    assert_true(len >= q->off + q->len);
    assert_memory_equal(p + q->keys_off, q->bytes, q->keys_len + q->len);
    free(p);
}

/* Every segment's disk use is accounted, queued writes included. */
static void check_accounting(const struct store *s)
{
    uint64_t bytes = 0;

    for (const struct store_segment *seg = s->seg_head; seg; seg = seg->next)
        bytes += store_segment_disk(seg);
    assert_int_equal(s->bytes, bytes);
}

/* Appends a batch of n packets of `size` bytes starting at ts, seq, and waits for it: then it is
 * committed, its run the segment's last and its records the index's last. */
static void add_batch(struct fixture *f, uint64_t seq, int n, int64_t ts, uint32_t size)
{
    size_t runs = f->st->active->n_runs;
    uint64_t packets = f->st->active->packets;
    struct queued q = queue_batch(f, seq, NULL, n, ts, size);

    wait_done(f, f->n_queued);
    assert_int_equal(f->done_seq[f->n_done - 1], seq);
    assert_int_equal(f->st->active->n_runs, runs + 1);
    assert_int_equal(f->st->active->packets, packets + (uint64_t)n);
    assert_int_equal(f->st->active->size, q.off + q.len);
    assert_int_equal(f->st->active->idx_size, q.idx_off + STORE_INDEX_RECORD_LEN);
    assert_int_equal(f->st->active->end, f->st->active->size);
    assert_int_equal(f->st->active->idx_end, f->st->active->idx_size);
    assert_int_equal(f->st->active->queued, 0);
    assert_int_equal(f->st->active->refs, 1);
    assert_true(f->st->active->dirty);
    check_written(f, &q, runs, 0);
    check_accounting(&f->s);
    free(q.bytes);
}

/* Block types of a whole pcapng file, in order, as a string: "S" SHB, "I" IDB, "N" NRB,
 * "E" EPB, "T" ISB. The whole file must be whole blocks. */
static void block_types(const char *path, char *out, size_t outlen)
{
    uint8_t *p;
    size_t len = read_file(path, &p), off = 0, o = 0, blocks;

    assert_int_equal(pcapng_whole_prefix(p, len, &blocks), len);
    while (off < len && o + 1 < outlen) {
        uint32_t type;
        size_t blen;
        assert_int_equal(pcapng_block_peek(p + off, len - off, &type, &blen), 1);
        out[o++] = type == PCAPNG_BT_SHB           ? 'S'
                   : type == PCAPNG_BT_IDB         ? 'I'
                   : type == PCAPNG_BT_NRB         ? 'N'
                   : type == PCAPNG_BT_EPB         ? 'E'
                   : type == PCAPNG_BT_ISB         ? 'T'
                   : type == PCAPNG_BT_DSB         ? 'D'
                   : type == STORE_APPEND_PAD_TYPE ? 'P'
                   : type == STORE_PODSET_BLOCK    ? 'H' /* the pod history */
                                                   : '?';
        off += blen;
    }
    out[o] = '\0';
    free(p);
}

static struct store_pods *pods_of(const char *name, uint8_t last_octet)
{
    struct store_pods *p = store_pods_new(1);

    p->n = 1;
    p->pods[0].family = 4;
    memcpy(p->pods[0].ip, (uint8_t[]){10, 0, 0, last_octet}, 4);
    assert_int_equal(store_pod_set(&p->pods[0], NULL, name, "uid-1", "app=web"), 0);
    return p;
}

static void segment_is_complete_pcapng_at_every_commit(void **state)
{
    struct fixture *f = *state;
    char path[700], types[64], want[64];
    const char *pad;

    f->st->pods = pods_of("default/web-1", 7);
    assert_int_equal(store_segment_create(&f->s, f->st, T0), 0);
    /* Direct I/O pads the active segment to whole 4 KiB blocks with one padding block. */
    pad = f->st->active->out.direct ? "P" : "";
    snprintf(path, sizeof(path), "%s.pcapng", f->st->active->path);
    block_types(path, types, sizeof(types));
    snprintf(want, sizeof(want), "SINH%s", pad);
    assert_string_equal(types, want);

    add_batch(f, 1, 2, T0, 100);
    block_types(path, types, sizeof(types));
    snprintf(want, sizeof(want), "SINHEE%s", pad);
    assert_string_equal(types, want);

    /* A new interface and a new pod set arrive mid-segment: appended, then the packets. */
    f->st->n_ifaces = 2;
    snprintf(f->st->ifaces[1].name, sizeof(f->st->ifaces[1].name), "eth1");
    f->st->ifaces[1].link_type = 1;
    f->st->ifaces[1].snaplen = 1500;
    store_pods_unref(f->st->pods);
    f->st->pods = pods_of("default/web-2", 8);
    assert_int_equal(store_segment_update_meta(&f->s, f->st->active, T0), 0);
    add_batch(f, 2, 3, T0 + 10, 60);
    block_types(path, types, sizeof(types));
    snprintf(want, sizeof(want), "SINHEEINHEEE%s", pad);
    assert_string_equal(types, want);

    store_segment_close(&f->s, f->st->active, T0 + 20);
    assert_null(f->st->active);
    block_types(path, types, sizeof(types));
    assert_string_equal(types, "SINHEEINHEEET");
    assert_true(f->s.bytes >= 8192);
}

/* The segment with three batches that the recovery tests cut; returns the stem. The batches
 * are queued behind one another before any is done, as under load (the writer thread may make
 * them as one write). */
static void three_batches(struct fixture *f, char *stem, size_t len, uint64_t *batch_end)
{
    struct queued q[3];

    assert_int_equal(store_segment_create(&f->s, f->st, T0), 0);
    q[0] = queue_batch(f, 1, NULL, 2, T0, 100);
    q[1] = queue_batch(f, 2, NULL, 2, T0 + 10, 200);
    q[2] = queue_batch(f, 3, NULL, 3, T0 + 20, 300);
    wait_done(f, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(f->done_seq[i], i + 1);
        batch_end[i] = q[i].off + q[i].len;
        check_written(f, &q[i], i, 0);
        free(q[i].bytes);
    }
    assert_int_equal(q[1].off, batch_end[0]);
    assert_int_equal(q[2].off, batch_end[1]);
    assert_int_equal(f->st->active->size, batch_end[2]);
    assert_int_equal(f->st->active->n_runs, 3);
    assert_int_equal(f->st->active->packets, 7);
    snprintf(stem, len, "%s", strrchr(f->st->active->path, '/') + 1);
}

/* Batches queued faster than the device takes them: each has its place at once, none is
 * visible before its write is done, and they are done and committed in the order queued. */
static void queued_batches_commit_in_order(void **state)
{
    struct fixture *f = *state;
    struct queued q[8];
    struct store_writer_counters c;
    char path[700], types[64], want[64];
    uint64_t head;

    assert_int_equal(store_segment_create(&f->s, f->st, T0), 0);
    head = f->st->active->size;
    for (size_t i = 0; i < 8; i++) {
        q[i] = queue_batch(f, 10 + i, NULL, 1 + (int)i % 3, T0 + 10 * (int64_t)i,
                           60 + 200 * (uint32_t)i);
        if (i > 0)
            assert_int_equal(q[i].off, q[i - 1].off + q[i - 1].len);
        /* Until the loop runs, the thread's writes are not committed. */
        if (f->threaded)
            assert_int_equal(f->st->active->size, head);
        check_accounting(&f->s);
    }
    assert_int_equal(q[0].off, head);
    store_writer_counters(&f->s, &c);
    assert_int_equal(c.queued, f->threaded ? 8 : 0);
    wait_done(f, 8);
    store_writer_counters(&f->s, &c);
    assert_int_equal(c.queued, 0);
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(f->done_seq[i], 10 + i);
        check_written(f, &q[i], i, 0);
        free(q[i].bytes);
    }
    assert_int_equal(f->st->active->n_runs, 8);
    assert_int_equal(f->st->active->size, q[7].off + q[7].len);
    assert_int_equal(f->st->active->idx_size, q[7].idx_off + STORE_INDEX_RECORD_LEN);
    assert_int_equal(f->st->active->queued, 0);
    assert_int_equal(f->st->active->refs, 1);
    snprintf(path, sizeof(path), "%s.pcapng", f->st->active->path);
    block_types(path, types, sizeof(types));
    snprintf(want, sizeof(want), "SI%s%s", "EEEEEEEEEEEEEEE", f->st->active->out.direct ? "P" : "");
    assert_string_equal(types, want);
    store_segment_close(&f->s, f->st->active, T0 + 100);
    block_types(path, types, sizeof(types));
    assert_string_equal(types, "SIEEEEEEEEEEEEEEET");
    check_accounting(&f->s);
}

static void expect_recovered(struct fixture *f, const char *stem, uint64_t size, size_t runs,
                             uint64_t last_seq)
{
    struct store r = {0};
    struct store_segment *seg = NULL;
    char path[700];
    uint8_t *p;
    size_t len;

    r.cfg = f->s.cfg;
    assert_int_equal(store_recover_segment(&r, f->st->dir, stem, &seg), 0);
    assert_int_equal(seg->size, size);
    assert_int_equal(seg->n_runs, runs);
    assert_int_equal(r.streams->last_seq, last_seq);
    assert_int_equal(seg->n_ifaces, 1);
    snprintf(path, sizeof(path), "%s/%s.pcapng", f->st->dir, stem);
    len = read_file(path, &p);
    assert_int_equal(len, size);
    assert_int_equal(pcapng_whole_prefix(p, len, NULL), len);
    free(p);
    store_segment_link(&r, seg);
    free_store(&r);
}

/* The process died while writing the last block: at every byte of it, recovery keeps the two
 * whole batches (the third was never acknowledged: its record vouches for more than is there). */
static void recovery_cuts_a_torn_last_block_at_every_offset(void **state)
{
    struct fixture *f = *state;
    char stem[128], data_path[700], idx_path[700];
    uint64_t end[3];
    uint8_t *data, *idx;
    size_t dlen, ilen;

    three_batches(f, stem, sizeof(stem), end);
    snprintf(data_path, sizeof(data_path), "%s/%s.pcapng", f->st->dir, stem);
    snprintf(idx_path, sizeof(idx_path), "%s/%s.idx", f->st->dir, stem);
    dlen = read_file(data_path, &data);
    ilen = read_file(idx_path, &idx);
    /* With direct I/O a padding block follows the data: a crash leaves the file so, and
     * recovery cuts the padding off. */
    assert_true(dlen >= end[2] && dlen <= end[2] + STORE_APPEND_PAD_MAX);
    write_file(idx_path, idx, ilen);
    expect_recovered(f, stem, end[2], 3, 3);
    /* Then the process died in the last batch. */
    dlen = end[2];
    size_t last_block = dlen - (PCAPNG_EPB_MIN + 300);
    for (size_t cut = last_block; cut < dlen; cut++) {
        write_file(data_path, data, cut);
        write_file(idx_path, idx, ilen);
        expect_recovered(f, stem, end[1], 2, 2);
    }
    /* The whole file but garbage after it: cut to the last record. */
    write_file(data_path, data, dlen);
    {
        int fd = open(data_path, O_WRONLY | O_APPEND);
        assert_int_equal(write(fd, "garbage!", 8), 8);
        close(fd);
    }
    write_file(idx_path, idx, ilen);
    expect_recovered(f, stem, end[2], 3, 3);
    free(data);
    free(idx);
}

/* The process died between the batch's bytes and its record, or while writing the record. */
static void recovery_drops_a_batch_without_its_whole_record(void **state)
{
    struct fixture *f = *state;
    char stem[128], data_path[700], idx_path[700];
    uint64_t end[3];
    uint8_t *data, *idx;
    size_t dlen, ilen;

    three_batches(f, stem, sizeof(stem), end);
    snprintf(data_path, sizeof(data_path), "%s/%s.pcapng", f->st->dir, stem);
    snprintf(idx_path, sizeof(idx_path), "%s/%s.idx", f->st->dir, stem);
    dlen = read_file(data_path, &data);
    ilen = read_file(idx_path, &idx);
    assert_true(dlen >= end[2]);
    dlen = end[2]; /* without the padding block direct I/O leaves after the data */
    for (size_t cut = ilen - STORE_INDEX_RECORD_LEN; cut < ilen; cut++) {
        write_file(data_path, data, dlen);
        write_file(idx_path, idx, cut);
        expect_recovered(f, stem, end[1], 2, 2);
    }
    /* A record whose bytes were overwritten: its checksum fails, it and what follows go. */
    write_file(data_path, data, dlen);
    idx[ilen - STORE_INDEX_RECORD_LEN + 20] ^= 0x40;
    write_file(idx_path, idx, ilen);
    expect_recovered(f, stem, end[1], 2, 2);
    /* The record is intact but the bytes it vouches for are not whole blocks. */
    idx[ilen - STORE_INDEX_RECORD_LEN + 20] ^= 0x40;
    data[dlen - 1] ^= 0x01; /* the last block's trailing length */
    write_file(data_path, data, dlen);
    write_file(idx_path, idx, ilen);
    expect_recovered(f, stem, end[1], 2, 2);
    free(data);
    free(idx);
}

/* Targeting can go down to no pod at all: the empty set is the segment's without a block
 * (there was a failed zero-length write here, and under UBSan a memcpy from NULL). */
static void pod_set_that_becomes_empty(void **state)
{
    struct fixture *f = *state;
    char path[700], types[64], want[64];
    const char *pad;

    f->st->pods = pods_of("default/web-1", 7);
    assert_int_equal(store_segment_create(&f->s, f->st, T0), 0);
    pad = f->st->active->out.direct ? "P" : "";
    store_pods_unref(f->st->pods);
    f->st->pods = store_pods_new(0);
    assert_int_equal(store_segment_update_meta(&f->s, f->st->active, T0), 0);
    assert_ptr_equal(f->st->active->pods_head, f->st->pods);
    add_batch(f, 1, 2, T0, 100);
    snprintf(path, sizeof(path), "%s.pcapng", f->st->active->path);
    block_types(path, types, sizeof(types));
    /* No name, but the pod history says when the set became empty. */
    snprintf(want, sizeof(want), "SINHHEE%s", pad);
    assert_string_equal(types, want);
}

/* A crash between a stream folder's mkdir and its first segment leaves the folder empty. */
static void recovery_takes_an_empty_stream_folder(void **state)
{
    struct fixture *f = *state;
    struct store r = {0};

    r.cfg = f->s.cfg;
    assert_int_equal(store_recover(&r), 0);
    assert_null(r.seg_head);
    assert_int_equal(r.n_segments, 0);
    free_store(&r);
}

static void recovery_refuses_what_is_not_ours(void **state)
{
    struct fixture *f = *state;
    struct store r = {0};
    struct store_segment *seg = NULL;
    char stem[128], idx_path[700];
    uint64_t end[3];

    three_batches(f, stem, sizeof(stem), end);
    snprintf(idx_path, sizeof(idx_path), "%s/%s.idx", f->st->dir, stem);
    write_file(idx_path, (const uint8_t *)"NOTANIDX\1\0\0\0\5\0\0\0cap-1\0\0\0", 24);
    r.cfg = f->s.cfg;
    assert_int_equal(store_recover_segment(&r, f->st->dir, stem, &seg), NR_EPARSE);
    assert_null(seg);
    free_store(&r);
}

static void index_records_round_trip_and_detect_damage(void **state)
{
    struct store_record in =
                            {
                                .kind = STORE_REC_BATCH,
                                .packets = 7,
                                .offset = 4096,
                                .length = 812,
                                .first_ts_ns = T0,
                                .last_ts_ns = T0 + 99,
                                .seq = 42,
                                .counters = {.received = 1,
                                             .kernel_dropped = 2,
                                             .interface_dropped = 3,
                                             .capture_dropped = 4},
                                .arrival_ns = T0 + 5,
                            },
                        out;
    uint8_t buf[STORE_INDEX_RECORD_LEN], hdr[STORE_INDEX_HEADER_MAX];
    char id[STORE_INDEX_MAX_ID + 1];
    size_t hlen = 0;
    char long_id[300];

    (void)state;
    store_index_record_encode(buf, &in);
    assert_int_equal(store_index_record_decode(buf, &out), 0);
    assert_memory_equal(&in, &out, sizeof(in));
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] ^= 0x10;
        assert_int_equal(store_index_record_decode(buf, &out), NR_EPARSE);
        buf[i] ^= 0x10;
    }
    assert_int_equal(store_index_header_encode(hdr, "node-a@1795600000"), 40);
    assert_int_equal(store_index_header_decode(hdr, 40, id, &hlen), 1);
    assert_string_equal(id, "node-a@1795600000");
    assert_int_equal(hlen, 40);
    assert_int_equal(store_index_header_decode(hdr, 20, id, &hlen), 0);
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_int_equal(store_index_header_encode(hdr, long_id), -EINVAL);
    assert_int_equal(store_index_header_encode(hdr, ""), -EINVAL);
}

/* A batch with TLS key log lines, as ingest writes it: one DSB, then its EPBs (n may be 0: a
 * DSB alone), in one write; waits for it. run_index and keys_index: what the batch's run and
 * DSB are to be among the segment's. */
static void write_keys(struct fixture *f, uint64_t seq, const char *keys, int n, int64_t ts,
                       size_t run_index, size_t keys_index)
{
    struct nr_buf dsb;
    struct queued q;

    nr_buf_init(&dsb, 1 << 21);
    assert_int_equal(pcapng_dsb_append(&dsb, PCAPNG_DSB_TLS_KEYLOG, keys, strlen(keys)), 0);
    q = queue_batch(f, seq, &dsb, n, ts, 100);
    assert_int_equal(q.off, q.keys_off + dsb.len);
    wait_done(f, f->n_queued);
    assert_int_equal(f->done_seq[f->n_done - 1], seq);
    assert_int_equal(f->st->active->n_keys, keys_index + 1);
    assert_int_equal(f->st->active->n_runs, run_index + (n ? 1 : 0));
    assert_int_equal(f->st->active->size, q.off + q.len);
    assert_int_equal(f->st->active->idx_size, q.idx_off + (n ? 2 : 1) * STORE_INDEX_RECORD_LEN);
    assert_int_equal(f->st->active->refs, 1);
    check_written(f, &q, run_index, keys_index);
    check_accounting(&f->s);
    free(q.bytes);
    nr_buf_free(&dsb);
}

#define KEYLINE                                                                       \
    "CLIENT_RANDOM 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef " \
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"

static void keys_go_before_their_packets_and_survive_recovery(void **state)
{
    struct fixture *f = *state;
    struct store r = {0};
    struct store_segment *seg = NULL;
    char path[700], types[64], want[64], stem[128];
    const char *pad;
    struct pcapng_dsb dsb;
    uint8_t *p;

    assert_int_equal(store_segment_create(&f->s, f->st, T0), 0);
    pad = f->st->active->out.direct ? "P" : "";
    snprintf(path, sizeof(path), "%s.pcapng", f->st->active->path);
    snprintf(stem, sizeof(stem), "%s", strrchr(f->st->active->path, '/') + 1);
    add_batch(f, 1, 2, T0, 100);
    write_keys(f, 2, KEYLINE, 3, T0 + 10, 1, 0);
    write_keys(f, 3, KEYLINE KEYLINE, 0, 0, 2, 1); /* key log lines without packets */
    block_types(path, types, sizeof(types));
    snprintf(want, sizeof(want), "SIEEDEEED%s", pad); /* no pods: no NRB */
    assert_string_equal(types, want);
    seg = f->st->active;
    assert_int_equal(seg->n_runs, 2);
    assert_int_equal(seg->n_keys, 2);
    assert_int_equal(seg->runs[1].offset, seg->keys[0].offset + seg->keys[0].length);
    assert_int_equal(seg->packets, 5);
    read_file(path, &p);
    assert_int_equal(pcapng_dsb_decode(p + seg->keys[1].offset, seg->keys[1].length, &dsb), 0);
    assert_int_equal(dsb.len, 2 * strlen(KEYLINE));
    free(p);

    /* Killed now: recovery finds both DSBs and both runs; the keys-only batch's seq is not
     * taken as written (a KEYS record is no proof its batch's EPBs are on disk). */
    r.cfg = f->s.cfg;
    seg = NULL;
    assert_int_equal(store_recover_segment(&r, f->st->dir, stem, &seg), 0);
    assert_int_equal(seg->n_keys, 2);
    assert_int_equal(seg->n_runs, 2);
    assert_int_equal(seg->keys[0].offset, f->st->active->keys[0].offset);
    assert_int_equal(r.streams->last_seq, 2);
    store_segment_link(&r, seg);
    free_store(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(segment_is_complete_pcapng_at_every_commit, setup,
                                        teardown),
        {"segment_is_complete_pcapng_at_every_commit without the writer thread",
         segment_is_complete_pcapng_at_every_commit, setup_inline, teardown, NULL},
        cmocka_unit_test_setup_teardown(queued_batches_commit_in_order, setup, teardown),
        {"queued_batches_commit_in_order without the writer thread", queued_batches_commit_in_order,
         setup_inline, teardown, NULL},
        cmocka_unit_test_setup_teardown(recovery_cuts_a_torn_last_block_at_every_offset, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(recovery_drops_a_batch_without_its_whole_record, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(pod_set_that_becomes_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(recovery_takes_an_empty_stream_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(recovery_refuses_what_is_not_ours, setup, teardown),
        cmocka_unit_test(index_records_round_trip_and_detect_damage),
        cmocka_unit_test_setup_teardown(keys_go_before_their_packets_and_survive_recovery, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
