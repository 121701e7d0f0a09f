/* fdatasync on the thread pool for the group commit described in sync.h. The job owns
 * duplicates of the descriptors it syncs, so segments may close or rotate while it runs. */
#include "store/sync.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/ingest.h"
#include "util/log.h"

struct sync_job {
    uv_work_t work;
    struct store *s;
    size_t n;
    int errors;
    int first_errno;
    int fds[];
};

static int grow_fds(struct store *s, size_t more)
{
    if (s->n_sync_fds + more > s->cap_sync_fds) {
        size_t cap = (s->n_sync_fds + more) * 2;
        int *p = realloc(s->sync_fds, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        s->sync_fds = p;
        s->cap_sync_fds = cap;
    }
    return 0;
}

void store_sync_adopt(struct store *s, int fd, int idx_fd)
{
    if (grow_fds(s, 2) != 0) {
        /* Without memory we cannot defer: sync here, on the loop, rather than lose it. */
        if (fd >= 0) {
            fdatasync(fd);
            close(fd);
        }
        if (idx_fd >= 0) {
            fdatasync(idx_fd);
            close(idx_fd);
        }
        return;
    }
    if (fd >= 0)
        s->sync_fds[s->n_sync_fds++] = fd;
    if (idx_fd >= 0)
        s->sync_fds[s->n_sync_fds++] = idx_fd;
}

static void sync_work(uv_work_t *w)
{
    struct sync_job *job = (struct sync_job *)w;

    for (size_t i = 0; i < job->n; i++) {
        if (fdatasync(job->fds[i]) != 0 && errno != EINVAL && errno != EROFS &&
            !job->errors++)
            job->first_errno = errno;
        close(job->fds[i]);
    }
}

static void start(struct store *s);

static void sync_done(uv_work_t *w, int status)
{
    struct sync_job *job = (struct sync_job *)w;
    struct store *s = job->s;

    if (job->errors) {
        /* After a failed fdatasync the kernel may have dropped the dirty pages and marked them
         * clean, so a retry would succeed without writing them; which batches are gone cannot
         * be told. Acknowledging them would break DESIGN §4's promise. Stop instead (as
         * PostgreSQL does): the capture keeps every unacknowledged batch, and the restart's
         * recovery keeps only what its index vouches for, whole. */
        NR_ERROR("fdatasync failed: stopping, so that nothing unsynced is acknowledged",
                 "files=%d err=\"%s\"", job->errors, strerror(job->first_errno));
        exit(1);
    }
    free(job);
    s->sync_running = false;
    store_ingest_synced(s, status == 0);
    if (s->sync_again) {
        s->sync_again = false;
        start(s);
    }
}

static void start(struct store *s)
{
    size_t n = s->n_sync_fds;
    struct sync_job *job;

    for (const struct store_segment *seg = s->seg_head; seg; seg = seg->next)
        if (seg->active && seg->dirty)
            n += 2;
    for (const struct store_stream *st = s->streams; st; st = st->next)
        if (st->dir_dirty)
            n++;
    job = malloc(sizeof(*job) + n * sizeof(int));
    if (!job) {
        s->sync_again = true;
        return;
    }
    job->s = s;
    job->n = 0;
    job->errors = 0;
    job->first_errno = 0;
    if (s->n_sync_fds)
        memcpy(job->fds, s->sync_fds, s->n_sync_fds * sizeof(int));
    job->n = s->n_sync_fds;
    s->n_sync_fds = 0;
    for (struct store_segment *seg = s->seg_head; seg; seg = seg->next) {
        if (!seg->active || !seg->dirty)
            continue;
        int a = dup(seg->fd), b = dup(seg->idx_fd);
        if (a >= 0)
            job->fds[job->n++] = a;
        if (b >= 0)
            job->fds[job->n++] = b;
        seg->dirty = false;
    }
    for (struct store_stream *st = s->streams; st; st = st->next) {
        if (!st->dir_dirty)
            continue;
        int d = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d >= 0)
            job->fds[job->n++] = d;
        st->dir_dirty = false;
    }
    store_ingest_sync_begin(s);
    s->sync_running = true;
    if (uv_queue_work(s->loop, &job->work, sync_work, sync_done) != 0) {
        sync_work(&job->work);
        sync_done(&job->work, 0);
    }
}

void store_sync_request(struct store *s)
{
    if (s->sync_running)
        s->sync_again = true;
    else
        start(s);
}

void store_sync_free(struct store *s)
{
    for (size_t i = 0; i < s->n_sync_fds; i++) {
        fdatasync(s->sync_fds[i]);
        close(s->sync_fds[i]);
    }
    free(s->sync_fds);
    s->sync_fds = NULL;
    s->n_sync_fds = s->cap_sync_fds = 0;
}
