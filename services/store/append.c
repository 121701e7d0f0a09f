/* Segment appends around the page cache (see append.h). */
#include "store/append.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pcapng/pcapng.h"
#include "util/error.h"
#include "util/log.h"

#define ALIGN STORE_APPEND_ALIGN

static uint64_t align_down(uint64_t v)
{
    return v & ~(uint64_t)(ALIGN - 1);
}

static uint64_t align_up(uint64_t v)
{
    return align_down(v + ALIGN - 1);
}

int store_append_create(struct store_append *a, const char *file)
{
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_DIRECT, 0600);

    memset(a, 0, sizeof(*a));
    if (fd >= 0) {
        if (posix_memalign((void **)&a->tail, ALIGN, ALIGN) != 0) {
            a->tail = NULL;
            (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_DIRECT);
        } else {
            a->direct = true;
        }
        return fd;
    }
    if (errno != EINVAL)
        return -errno;
    /* The file system refuses O_DIRECT (the open failed before creating anything). */
    fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    return fd >= 0 ? fd : -errno;
}

int store_pwritev_all(int fd, const struct iovec *iov_in, int n, uint64_t off)
{
    struct iovec iov[8];
    int i = 0;

    if (n < 0 || n > 8)
        return -EINVAL;
    memcpy(iov, iov_in, (size_t)n * sizeof(*iov));
    while (i < n && iov[i].iov_len == 0)
        i++;
    while (i < n) {
        ssize_t w = pwritev(fd, iov + i, n - i, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        off += (uint64_t)w;
        while (i < n && (size_t)w >= iov[i].iov_len) {
            w -= (ssize_t)iov[i].iov_len;
            i++;
        }
        if (i < n) {
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + w;
            iov[i].iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int buffered_write(struct store_append *a, int fd, uint64_t size, const struct iovec *iov,
                          int n, size_t len)
{
    int rc = store_pwritev_all(fd, iov, n, size);

    if (rc != 0)
        return rc;
    /* Start writing these pages back now rather than at the group commit's fdatasync: the disk
     * then works while the loop takes in the next batches. Only a hint; errors surface at the
     * fdatasync. */
    (void)sync_file_range(fd, (off64_t)size, (off64_t)len, SYNC_FILE_RANGE_WRITE);
    if (size + len > a->file_len)
        a->file_len = size + len;
    return 0;
}

static int stage_reserve(struct store_stage *stage, size_t need)
{
    uint8_t *p;
    size_t cap = stage->cap ? stage->cap : 1u << 20;

    if (stage->cap >= need)
        return 0;
    while (cap < need)
        cap *= 2;
    if (posix_memalign((void **)&p, ALIGN, cap) != 0)
        return -ENOMEM;
    free(stage->buf);
    stage->buf = p;
    stage->cap = cap;
    return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4); /* host order, as every block the store writes */
}

static size_t gather(uint8_t *to, const struct iovec *iov, int n)
{
    size_t at = 0;

    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len == 0)
            continue; /* its base may be NULL */
        memcpy(to + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    return at;
}

/* Builds a direct write of the data in stage: the tail of the last partial block, the data,
 * a padding block to the block boundary. Returns 0 or a negative errno; *padded is the file's
 * new length (the write covers [align_down(size), *padded)). */
static int build_direct(const struct store_append *a, struct store_stage *stage, uint64_t size,
                        const struct iovec *iov, int n, size_t len, uint64_t *padded_out)
{
    uint64_t start = align_down(size), end = size + len, padded = align_up(end);
    size_t at, tail_len = (size_t)(size - start);
    int rc;

    /* Bytes a longer padding block left beyond the new end must be covered again. */
    if (padded < a->file_len)
        padded = a->file_len;
    if (padded > end && padded - end < PCAPNG_BLOCK_MIN)
        padded += ALIGN;
    rc = stage_reserve(stage, (size_t)(padded - start));
    if (rc != 0)
        return rc;
    memcpy(stage->buf, a->tail, tail_len);
    at = tail_len + gather(stage->buf + tail_len, iov, n);
    if (padded > end) {
        uint32_t pad = (uint32_t)(padded - end);
        memset(stage->buf + at, 0, pad);
        put32(stage->buf + at, STORE_APPEND_PAD_TYPE);
        put32(stage->buf + at + 4, pad);
        put32(stage->buf + at + pad - 4, pad);
    }
    *padded_out = padded;
    return 0;
}

int store_append_prepare(struct store_append *a, struct store_stage *stage, uint64_t size,
                         const struct iovec *iov, int n, size_t len, uint64_t *off, size_t *wlen)
{
    uint64_t padded;
    int rc;

    if (!a->direct) {
        rc = stage_reserve(stage, len ? len : 1);
        if (rc != 0)
            return rc;
        gather(stage->buf, iov, n);
        *off = size;
        *wlen = len;
        if (size + len > a->file_len)
            a->file_len = size + len;
        return 0;
    }
    rc = build_direct(a, stage, size, iov, n, len, &padded);
    if (rc != 0)
        return rc;
    *off = align_down(size);
    *wlen = (size_t)(padded - *off);
    a->file_len = padded;
    store_append_commit(a, stage, size, size + len);
    return 0;
}

int store_append_flush(bool direct, int fd, const struct iovec *iov, int n, uint64_t off,
                       size_t len)
{
    int rc = store_pwritev_all(fd, iov, n, off);

    if (rc == 0 && !direct) /* the writeback hint, as buffered_write */
        (void)sync_file_range(fd, (off64_t)off, (off64_t)len, SYNC_FILE_RANGE_WRITE);
    return rc;
}

int store_append_write(struct store_append *a, struct store_stage *stage, int fd, uint64_t size,
                       const struct iovec *iov, int n, size_t len)
{
    uint64_t start = align_down(size), padded;
    int rc;

    if (!a->direct)
        return buffered_write(a, fd, size, iov, n, len);
    rc = build_direct(a, stage, size, iov, n, len, &padded);
    if (rc != 0)
        return rc;
    {
        struct iovec whole = {stage->buf, (size_t)(padded - start)};
        rc = store_pwritev_all(fd, &whole, 1, start);
    }
    if (rc == -EINVAL && size == 0) {
        /* O_DIRECT accepted at open, refused at the write (alignment the device wants more
         * of, or a file system that only pretends): this file goes on without it. */
        NR_DEBUG("direct I/O refused, writing through the page cache", "err=\"%s\"",
                 nr_strerror(rc));
        a->direct = false;
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_DIRECT) != 0)
            return -errno;
        return buffered_write(a, fd, size, iov, n, len);
    }
    if (rc != 0)
        return rc;
    a->file_len = padded;
    return 0;
}

void store_append_commit(struct store_append *a, const struct store_stage *stage, uint64_t size,
                         uint64_t end)
{
    if (!a->direct)
        return;
    /* The stage still holds [align_down(size), end): keep the new last partial block. */
    memcpy(a->tail, stage->buf + (align_down(end) - align_down(size)), (size_t)(end % ALIGN));
}

int store_append_cut(struct store_append *a, int fd, uint64_t size)
{
    if (ftruncate(fd, (off_t)size) != 0)
        return -errno;
    a->file_len = size;
    return 0;
}

void store_append_free(struct store_append *a)
{
    free(a->tail);
    a->tail = NULL;
}

void store_stage_free(struct store_stage *stage)
{
    free(stage->buf);
    stage->buf = NULL;
    stage->cap = 0;
}
