/* fdatasync on the thread pool for the group commit described in sync.h. The job owns
 * duplicates of the descriptors it syncs, so segments may close or rotate while it runs. */
#include "store/sync.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "util/prog.h"

struct sync_job {
    uv_work_t work;
    struct store *s;
    size_t n;
    int errors;
    int first_errno;
    /* A dirty file could not be taken (no descriptor for its dup, its directory's open):
     * what it holds is not synced, so this sync acknowledges nothing. */
    int missed_errno;
    int fds[];
};

/* After a failed fdatasync the kernel may have dropped the dirty pages and marked them clean,
 * so a retry would succeed without writing them; which batches are gone cannot be told.
 * Acknowledging them would break the promise that an acknowledged batch is on the disk. Stop
 * instead (as PostgreSQL does): the capture keeps every unacknowledged batch, and the restart's
 * recovery keeps only what its index vouches for, whole. */
static void failed_sync(int files, int err)
{
    NR_ERROR("fdatasync failed: stopping, so that nothing unsynced is acknowledged",
             "files=%d err=\"%s\"", files, strerror(err));
    exit(1);
}

/* fdatasync and close one descriptor here; false (errno set) when the data may not be on the
 * disk. EINVAL/EROFS: a file that cannot be synced holds nothing to lose. */
static bool sync_close(int fd)
{
    bool ok = fdatasync(fd) == 0 || errno == EINVAL || errno == EROFS;
    int e = errno;

    close(fd);
    errno = e;
    return ok;
}

static bool sync_dir(const char *dir)
{
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    return d >= 0 && sync_close(d);
}

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

static void start(struct store *s);

static void on_deadline(uv_timer_t *t)
{
    struct store *s = t->data;

    if (!s->sync_running)
        start(s);
}

/* The next sync starts by now + delay_ns, or by the deadline already set if that is sooner.
 * While a sync runs, its end arms the timer (sync_done). */
/* The timer for the deadline set (after a sync: what was written while it ran waits for it). */
static void arm(struct store *s)
{
    int64_t left = s->sync_deadline_ns - nr_now_ns();

    if (s->sync_deadline_ns && s->sync_timer_ready)
        uv_timer_start(&s->sync_timer, on_deadline, left > 0 ? (uint64_t)(left / 1000000) : 0, 0);
}

static void due_in(struct store *s, int64_t delay_ns)
{
    int64_t at = nr_now_ns() + delay_ns;

    if (s->sync_deadline_ns && s->sync_deadline_ns <= at)
        return;
    s->sync_deadline_ns = at;
    if (!s->sync_running)
        arm(s);
}

void store_sync_init(struct store *s)
{
    uv_timer_init(s->loop, &s->sync_timer);
    s->sync_timer.data = s;
    s->sync_timer_ready = true;
}

void store_sync_set_cbs(struct store *s, const struct store_sync_cbs *cbs)
{
    s->sync_cbs = cbs;
}

void store_sync_later(struct store *s)
{
    if (s->cfg.sync_interval_ns <= 0)
        store_sync_request(s);
    else
        due_in(s, s->cfg.sync_interval_ns);
}

void store_sync_adopt(struct store *s, int fd, int idx_fd)
{
    if (grow_fds(s, 2) != 0) {
        /* Without memory we cannot defer: sync here, on the loop, rather than lose it. */
        if (fd >= 0 && !sync_close(fd))
            failed_sync(1, errno);
        if (idx_fd >= 0 && !sync_close(idx_fd))
            failed_sync(1, errno);
        return;
    }
    if (fd >= 0)
        s->sync_fds[s->n_sync_fds++] = fd;
    if (idx_fd >= 0)
        s->sync_fds[s->n_sync_fds++] = idx_fd;
    due_in(s, 0); /* "at segment close"; not from here: the caller is mid-way through a close */
}

/* Tells the registered callbacks (none in unit tests) that a sync ended. */
static void tell_end(struct store *s, bool ok)
{
    if (s->sync_cbs)
        s->sync_cbs->end(s, ok);
}

static void sync_work(uv_work_t *w)
{
    struct sync_job *job = (struct sync_job *)w;

    for (size_t i = 0; i < job->n; i++)
        if (!sync_close(job->fds[i]) && !job->errors++)
            job->first_errno = errno;
}

static void sync_done(uv_work_t *w, int status)
{
    struct sync_job *job = (struct sync_job *)w;
    struct store *s = job->s;
    int missed = job->missed_errno;

    if (job->errors)
        failed_sync(job->errors, job->first_errno);
    free(job);
    s->sync_running = false;
    if (missed) {
        /* Nothing is acknowledged; the files stay dirty, and the next tick tries again. */
        if (!s->sync_starved)
            NR_ERROR("cannot sync: acknowledgements wait, and new calls are refused", "err=\"%s\"",
                     strerror(missed));
        s->sync_starved = missed;
        s->sync_retry = true;
        tell_end(s, false);
        arm(s);
        return;
    }
    if (s->sync_starved && status == 0) {
        NR_INFO("syncing again: acknowledgements resume", "was=\"%s\"", strerror(s->sync_starved));
        s->sync_starved = 0;
    }
    tell_end(s, status == 0);
    if (s->sync_again) {
        s->sync_again = false;
        start(s);
    } else {
        arm(s);
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
    n += s->root_dirty;
    job = malloc(sizeof(*job) + n * sizeof(int));
    if (!job) {
        s->sync_retry = true; /* the tick tries again */
        return;
    }
    /* Everything written so far is in this sync: no deadline waits. */
    s->sync_deadline_ns = 0;
    if (s->sync_timer_ready)
        uv_timer_stop(&s->sync_timer);
    job->s = s;
    job->n = 0;
    job->errors = 0;
    job->first_errno = 0;
    job->missed_errno = 0;
    s->sync_retry = false;
    if (s->n_sync_fds)
        memcpy(job->fds, s->sync_fds, s->n_sync_fds * sizeof(int));
    job->n = s->n_sync_fds;
    s->n_sync_fds = 0;
    for (struct store_segment *seg = s->seg_head; seg; seg = seg->next) {
        if (!seg->active || !seg->dirty)
            continue;
        int a = dup(seg->fd), b = a >= 0 ? dup(seg->idx_fd) : -1;
        if (a < 0 || b < 0) { /* EMFILE: it stays dirty, and this sync acknowledges nothing */
            job->missed_errno = errno;
            if (a >= 0)
                close(a);
            continue;
        }
        job->fds[job->n++] = a;
        job->fds[job->n++] = b;
        seg->dirty = false;
    }
    for (struct store_stream *st = s->streams; st; st = st->next) {
        int d;
        if (!st->dir_dirty)
            continue;
        d = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d < 0) { /* a new segment's name may not be on the disk: the same */
            job->missed_errno = errno;
            continue;
        }
        job->fds[job->n++] = d;
        st->dir_dirty = false;
    }
    if (s->root_dirty) { /* a new stream directory's name: the same */
        int d = open(s->cfg.data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d < 0) {
            job->missed_errno = errno;
        } else {
            job->fds[job->n++] = d;
            s->root_dirty = false;
        }
    }
    if (s->sync_cbs)
        s->sync_cbs->begin(s);
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

void store_sync_tick(struct store *s)
{
    if (s->sync_retry && !s->sync_running)
        start(s);
}

int store_sync_free(struct store *s)
{
    int errors = 0, first = 0;

    for (size_t i = 0; i < s->n_sync_fds; i++)
        if (!sync_close(s->sync_fds[i]) && !errors++)
            first = errno;
    for (struct store_stream *st = s->streams; st; st = st->next) {
        if (st->dir_dirty && !sync_dir(st->dir) && !errors++)
            first = errno;
        st->dir_dirty = false;
    }
    if (s->root_dirty && !sync_dir(s->cfg.data_dir) && !errors++)
        first = errno;
    s->root_dirty = false;
    free(s->sync_fds);
    s->sync_fds = NULL;
    s->n_sync_fds = s->cap_sync_fds = 0;
    if (errors) {
        NR_ERROR("fdatasync failed at shutdown: a power loss now may cost the last segments "
                 "their last batches",
                 "files=%d err=\"%s\"", errors, strerror(first));
        return -first;
    }
    return 0;
}
