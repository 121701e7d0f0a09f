/* libFuzzer target for netreel-store's recovery reader (services/store/recover.c, index.c):
 * whatever a crash, a full disk or a hostile hand left in a segment and its index, recovery
 * either refuses it or keeps a segment cut to what its index vouches for (its last record checked
 * to be whole pcapng blocks), whose runs and key log blocks lie inside it, in order, and that a
 * second recovery leaves exactly as it is. Input: 2 bytes (little-endian) giving the index's
 * length in their low 15 bits (the top bit: give every whole record after the header a correct
 * checksum, so that mutated records reach the checks behind it), the index, then the segment's
 * bytes. FUZZ_VERBOSE=1 prints each verdict (to check seeds). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pcapng/decode.h"
#include "store/index.h"
#include "store/recover.h"
#include "store/segment.h"
#include "util/log.h"
#include "fuzz.h"

static char dir[64];

static void put(const char *name, const uint8_t *p, size_t len)
{
    char path[128];
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, p, len) == (ssize_t)len);
    close(fd);
}

/* The scratch directory goes with the process (a crash leaves it, with the input beside it). */
static void remove_dir(void)
{
    char path[128];

    snprintf(path, sizeof(path), "%s/00000001-x.idx", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/00000001-x.pcapng", dir);
    unlink(path);
    rmdir(dir);
}

static size_t file_size(const char *name)
{
    char path[128];
    struct stat sb;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    CHECK(stat(path, &sb) == 0);
    return (size_t)sb.st_size;
}

static void free_store(struct store *s, struct store_segment *seg)
{
    if (seg)
        store_segment_unref(seg);
    while (s->streams) {
        struct store_stream *st = s->streams;
        s->streams = st->next;
        store_stream_free(st);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct store s = {0};
    struct store_segment *seg = NULL;
    size_t ilen;
    int rc;

    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "/dev/shm/fuzz-store-XXXXXX");
        CHECK(mkdtemp(dir));
        atexit(remove_dir);
        nr_log_set_level(NR_LOG_ERROR + 1);
    }
    if (size < 2)
        return 0;
    ilen = (size_t)data[0] | (size_t)(data[1] & 0x7f) << 8;
    if (ilen > size - 2)
        ilen = size - 2;
    if (data[1] & 0x80) {
        uint8_t *idx = malloc(ilen ? ilen : 1);
        char id[STORE_INDEX_MAX_ID + 1];
        size_t hlen = 0;

        CHECK(idx != NULL);
        memcpy(idx, data + 2, ilen);
        if (store_index_header_decode(idx, ilen, id, &hlen) == 1)
            for (size_t o = hlen; o + STORE_INDEX_RECORD_LEN <= ilen; o += STORE_INDEX_RECORD_LEN)
                pcapng_put32(idx + o + 92, store_index_checksum(idx + o, 92));
        put("00000001-x.idx", idx, ilen);
        free(idx);
    } else {
        put("00000001-x.idx", data + 2, ilen);
    }
    put("00000001-x.pcapng", data + 2 + ilen, size - 2 - ilen);
    s.cfg.data_dir = dir;
    rc = store_recover_segment(&s, dir, "00000001-x", &seg);
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "recovery: %d, %zu runs, %zu key log blocks, %u interfaces, %zu pod sets\n",
                rc, seg ? seg->n_runs : 0, seg ? seg->n_keys : 0, seg ? seg->n_ifaces : 0,
                seg ? seg->n_pod_sets : 0);
    if (rc == 0) {
        uint64_t end = 0;

        /* The file is cut to what the index vouches for; runs lie inside it, in order. */
        CHECK(seg->size == file_size("00000001-x.pcapng"));
        for (size_t i = 0; i < seg->n_runs; i++) {
            CHECK(seg->runs[i].offset >= end);
            end = seg->runs[i].offset + seg->runs[i].length;
            CHECK(end <= seg->size);
        }
        /* So do the key log blocks (TLS secrets), each in its own place. */
        end = 0;
        for (size_t i = 0; i < seg->n_keys; i++) {
            CHECK(seg->keys[i].offset >= end);
            end = seg->keys[i].offset + seg->keys[i].length;
            CHECK(end <= seg->size);
        }
        /* Recovery is idempotent: a second pass keeps everything. */
        {
            struct store s2 = {0};
            struct store_segment *seg2 = NULL;
            s2.cfg.data_dir = dir;
            CHECK(store_recover_segment(&s2, dir, "00000001-x", &seg2) == 0);
            CHECK(seg2->size == seg->size && seg2->n_runs == seg->n_runs);
            CHECK(seg2->n_keys == seg->n_keys);
            free_store(&s2, seg2);
        }
    }
    free_store(&s, seg);
    return 0;
}
