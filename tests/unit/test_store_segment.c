/* Tests for services/store/segment.c, index.c and recover.c: a segment is a complete pcapng
 * file at every commit, and recovery keeps exactly what the index vouches for — whatever byte
 * the process died at. */
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

#define T0 INT64_C(1795600000000000000)

struct fixture {
    char dir[64];
    struct store s;
    struct store_stream *st;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/netreel-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
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

    free_store(&f->s);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Appends a batch of n packets of `size` bytes starting at ts, seq. */
static void add_batch(struct fixture *f, uint64_t seq, int n, int64_t ts, uint32_t size)
{
    struct nr_buf b;
    uint8_t data[1600];
    struct store_run run = {
        .seq = seq, .packets = (uint32_t)n, .first_ts_ns = ts, .last_ts_ns = ts + n - 1};

    nr_buf_init(&b, 1 << 20);
    for (int i = 0; i < n; i++) {
        memset(data, (int)(seq * 16 + (uint64_t)i), sizeof(data));
        assert_int_equal(pcapng_epb_append(&b, 0, ts + i, data, size, size, NULL), 0);
    }
    assert_int_equal(store_segment_append(&f->s, f->st->active, b.data, b.len, &run, T0), 0);
    nr_buf_free(&b);
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

/* The segment with three batches that the recovery tests cut; returns the stem. */
static void three_batches(struct fixture *f, char *stem, size_t len, uint64_t *batch_end)
{
    assert_int_equal(store_segment_create(&f->s, f->st, T0), 0);
    add_batch(f, 1, 2, T0, 100);
    batch_end[0] = f->st->active->size;
    add_batch(f, 2, 2, T0 + 10, 200);
    batch_end[1] = f->st->active->size;
    add_batch(f, 3, 3, T0 + 20, 300);
    batch_end[2] = f->st->active->size;
    snprintf(stem, len, "%s", strrchr(f->st->active->path, '/') + 1);
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

static void keys_written(struct store *s, struct store_write *w)
{
    assert_int_equal(w->rc, 0);
    assert_int_equal(store_segment_written(s, w), 0);
}

/* Through the writer (without its thread: made at once), as ingest does: a DSB and its EPBs,
 * then a DSB alone. */
static void write_keys(struct fixture *f, uint64_t seq, const char *keys, int n, int64_t ts)
{
    struct nr_buf dsb, b;
    uint8_t data[100] = {0};
    struct store_run run = {.seq = seq, .packets = (uint32_t)n, .first_ts_ns = ts,
                            .last_ts_ns = ts + n - 1};
    struct store_write *w;

    nr_buf_init(&dsb, 1 << 21);
    nr_buf_init(&b, 1 << 20);
    assert_int_equal(pcapng_dsb_append(&dsb, PCAPNG_DSB_TLS_KEYLOG, keys, strlen(keys)), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(pcapng_epb_append(&b, 0, ts + i, data, 100, 100, NULL), 0);
    w = store_writer_take(&f->s, STORE_APPEND_STAGE_NEED(dsb.len + b.len));
    assert_non_null(w);
    assert_int_equal(store_segment_prepare(&f->s, f->st->active, dsb.data, dsb.len, b.data, b.len,
                                           &run, T0, w),
                     0);
    w->done = keys_written;
    store_writer_queue(&f->s, w);
    nr_buf_free(&dsb);
    nr_buf_free(&b);
}

#define KEYLINE "CLIENT_RANDOM 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef " \
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
    write_keys(f, 2, KEYLINE, 3, T0 + 10);
    write_keys(f, 3, KEYLINE KEYLINE, 0, 0); /* key log lines without packets */
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
