/* Appends to a segment's pcapng file, bypassing the page cache where the file system allows.
 *
 * With direct I/O (O_DIRECT) every write covers whole 4 KiB blocks from an aligned buffer: the
 * partial block the previous append left is written again, the new bytes follow it, and the
 * rest of the last block is filled with a padding block (a local-use pcapng block type that
 * tshark, Wireshark and our own readers skip). The file is whole pcapng blocks at every moment,
 * so the active segment reads as it stands; closing cuts the padding off. Where O_DIRECT is
 * refused (at open or at the first write) the file falls back to plain writes with an early
 * writeback hint.
 *
 * Why: a recorder writes each byte once and rarely reads it soon. Copying it into the page
 * cache was the store's largest CPU cost under load (perf, bench/capture.sh), and its writeback
 * made the group commit's fdatasync slow. */
#ifndef NR_STORE_APPEND_H
#define NR_STORE_APPEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define STORE_APPEND_ALIGN 4096u
/* The padding block's type: the most significant bit makes it local use (pcapng §4). */
#define STORE_APPEND_PAD_TYPE 0x8E7E0001u
/* What padding may add after the data: less than two blocks. */
#define STORE_APPEND_PAD_MAX (2u * STORE_APPEND_ALIGN)

struct store_append {
    bool direct;       /* writes go around the page cache */
    uint64_t file_len; /* the file's length: the data plus any padding block */
    uint8_t *tail;     /* direct: the bytes of the data's last partial block */
};

/* The aligned buffer direct writes are built in; one per store, grown on demand. */
struct store_stage {
    uint8_t *buf;
    size_t cap;
};

/* Creates `file` (O_EXCL, 0600), direct if the file system takes it. Returns the descriptor
 * or a negative errno. */
int store_append_create(struct store_append *a, const char *file);

/* Writes the n pieces of iov (len bytes in all) at `size`, the end of the data so far. Returns
 * 0, or a negative errno. Then the caller either commits the new end (store_append_commit, before
 * the stage is used again) or cuts the file back to `size` (store_append_cut). */
int store_append_write(struct store_append *a, struct store_stage *stage, int fd, uint64_t size,
                       const struct iovec *iov, int n, size_t len);
void store_append_commit(struct store_append *a, const struct store_stage *stage, uint64_t size,
                         uint64_t end);

/* The same append in two steps, for a write made on another thread (writer.h). prepare builds in
 * stage the bytes one write puts at *off (*wlen of them: for direct I/O whole blocks with the
 * previous tail and a padding block; otherwise the data as it is) and takes them as written —
 * the tail and the file's length move on, so the next append can be prepared before this one
 * is on disk. If the write then fails, the file is cut back and not appended to again. */
int store_append_prepare(struct store_append *a, struct store_stage *stage, uint64_t size,
                         const struct iovec *iov, int n, size_t len, uint64_t *off, size_t *wlen);
/* The write of prepared stages (n pieces, at most 8, len bytes in all, contiguous in the file
 * from off); on any thread. Returns 0 or a negative errno. */
int store_append_flush(bool direct, int fd, const struct iovec *iov, int n, uint64_t off,
                       size_t len);
/* What a stage needs at most for an append of len bytes. */
#define STORE_APPEND_STAGE_NEED(len) ((size_t)(len) + 4u * STORE_APPEND_ALIGN)

/* Cuts the file to `size` bytes of data, padding included. Returns 0 or a negative errno. */
int store_append_cut(struct store_append *a, int fd, uint64_t size);

void store_append_free(struct store_append *a);

/* Writes every byte of the n (at most 8) pieces of iov at `off`, or fails; short writes go on
 * where they stopped. Returns 0 or a negative errno. */
int store_pwritev_all(int fd, const struct iovec *iov, int n, uint64_t off);
void store_stage_free(struct store_stage *stage);

#endif
