/* The writer thread (see writer.h). The lock guards the queue, the done list and the pool; a
 * write in the thread's hands is touched by no one else until it is on the done list. */
#include "store/writer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "store/store.h"
#include "util/log.h"

/* At most this many queued writes of one segment go to the device as one (writer.h). */
#define GROUP_MAX 8

/* b follows a in the same files and its bytes start within or right after a's: b's first block
 * (with direct I/O) holds a's last bytes, so a's write may stop where b's begins. */
static bool joins(const struct store_write *a, const struct store_write *b)
{
    return b && a->seg && b->seg == a->seg && b->fd == a->fd && b->direct == a->direct &&
           b->off >= a->off && b->off <= a->off + a->len && b->off + b->len >= a->off + a->len &&
           b->idx_off == a->idx_off + a->rec_len;
}

/* Makes the n writes of g (joined, in order) as one write of the data and one of their index
 * records: the device takes a few large writes faster than many small ones. */
static void make(struct store_write **g, int n)
{
    struct store_write *w = g[0];
    struct store_segment *seg = w->seg;
    struct iovec data[GROUP_MAX], recs[GROUP_MAX];
    size_t len = 0;
    int rc;

    if (!seg) {
        w->rc = 0;
        return;
    }
    for (int i = 0; i < n; i++) {
        /* Each stage up to where the next one starts; the last whole. */
        size_t part = i + 1 < n ? (size_t)(g[i + 1]->off - g[i]->off) : g[i]->len;
        data[i] = (struct iovec){g[i]->stage.buf, part};
        recs[i] = (struct iovec){g[i]->rec, g[i]->rec_len};
        len += part;
    }
    /* Only this thread reads or sets w_broken while writes of the segment are queued. */
    if (seg->w_broken) {
        rc = -ECANCELED;
    } else {
        rc = store_append_flush(w->direct, w->fd, data, n, w->off, len);
        if (rc == 0)
            rc = store_pwritev_all(w->idx_fd, recs, n, w->idx_off);
        if (rc != 0) {
            seg->w_broken = true;
            if (ftruncate(w->fd, (off_t)w->cut_data) != 0 ||
                ftruncate(w->idx_fd, (off_t)w->idx_off) != 0)
                NR_ERROR("cannot cut a failed write back", "segment=%s err=\"%s\"", seg->path,
                         strerror(errno));
        }
    }
    for (int i = 0; i < n; i++)
        g[i]->rc = rc;
}

/* Under the lock: the stage goes back to the pool (or away when grown for a large batch). */
static void give_back(struct store_writer *wr, struct store_write *w)
{
    if (w->counted)
        wr->in_flight--;
    w->counted = false;
    if (!w->stage.buf)
        return;
    if (w->stage.cap > STORE_WRITER_KEEP || wr->n_pool == STORE_WRITER_STAGES)
        store_stage_free(&w->stage);
    else
        wr->pool[wr->n_pool++] = w->stage;
    memset(&w->stage, 0, sizeof(w->stage));
}

static void *writer_main(void *arg)
{
    struct store_writer *wr = arg;

    pthread_mutex_lock(&wr->lock);
    for (;;) {
        struct store_write *g[GROUP_MAX];
        int n = 0;

        while (!wr->head && !wr->stop)
            pthread_cond_wait(&wr->work, &wr->lock);
        if (!wr->head)
            break;
        /* The head, and the writes queued behind it that join it. */
        do {
            struct store_write *w = wr->head;
            wr->head = w->next;
            if (!wr->head)
                wr->tail = NULL;
            w->next = NULL;
            g[n++] = w;
        } while (n < GROUP_MAX && joins(g[n - 1], wr->head));
        if (n > 1)
            wr->grouped += (uint64_t)n - 1;
        wr->busy = true;
        pthread_mutex_unlock(&wr->lock);

        make(g, n);

        pthread_mutex_lock(&wr->lock);
        for (int i = 0; i < n; i++) {
            give_back(wr, g[i]);
            if (wr->done_tail)
                wr->done_tail->next = g[i];
            else
                wr->done_head = g[i];
            wr->done_tail = g[i];
        }
        wr->busy = false;
        pthread_cond_broadcast(&wr->room);
        uv_async_send(&wr->async);
    }
    pthread_mutex_unlock(&wr->lock);
    return NULL;
}

static void finish(struct store *s, struct store_write *w)
{
    s->writer.queued--;
    w->done(s, w);
    store_stage_free(&w->stage);
    free(w);
}

/* Runs done for every write made so far, in order: one at a time off the shared list, since a
 * done may drain the writer (closing a segment) and so complete later writes itself. */
static void complete(struct store *s)
{
    struct store_writer *wr = &s->writer;

    for (;;) {
        struct store_write *w;

        pthread_mutex_lock(&wr->lock);
        w = wr->done_head;
        if (w) {
            wr->done_head = w->next;
            if (!wr->done_head)
                wr->done_tail = NULL;
        }
        pthread_mutex_unlock(&wr->lock);
        if (!w)
            return;
        finish(s, w);
    }
}

static void on_async(uv_async_t *a)
{
    complete(a->data);
}

int store_writer_start(struct store *s)
{
    struct store_writer *wr = &s->writer;
    int rc;

    pthread_mutex_init(&wr->lock, NULL);
    pthread_cond_init(&wr->work, NULL);
    pthread_cond_init(&wr->room, NULL);
    rc = uv_async_init(s->loop, &wr->async, on_async);
    if (rc != 0)
        return rc;
    wr->async.data = s;
    rc = pthread_create(&wr->thread, NULL, writer_main, wr);
    if (rc != 0) {
        uv_close((uv_handle_t *)&wr->async, NULL);
        return -rc;
    }
    wr->started = true;
    return 0;
}

struct store_write *store_writer_take(struct store *s, size_t need)
{
    struct store_writer *wr = &s->writer;
    struct store_write *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->fd = w->idx_fd = -1;
    if (need == 0)
        return w; /* a marker */
    if (wr->started) {
        pthread_mutex_lock(&wr->lock);
        if (wr->in_flight >= STORE_WRITER_STAGES)
            wr->waits++;
        while (wr->in_flight >= STORE_WRITER_STAGES)
            pthread_cond_wait(&wr->room, &wr->lock);
        if (wr->n_pool > 0)
            w->stage = wr->pool[--wr->n_pool];
        wr->in_flight++;
        w->counted = true;
        pthread_mutex_unlock(&wr->lock);
    }
    /* A stage is made to measure; prepare grows it when need was not enough. */
    if (w->stage.cap < need) {
        store_stage_free(&w->stage);
        if (posix_memalign((void **)&w->stage.buf, STORE_APPEND_ALIGN, need) != 0) {
            w->stage.buf = NULL;
            store_writer_discard(s, w);
            return NULL;
        }
        w->stage.cap = need;
    }
    return w;
}

void store_writer_discard(struct store *s, struct store_write *w)
{
    struct store_writer *wr = &s->writer;

    if (wr->started) {
        pthread_mutex_lock(&wr->lock);
        give_back(wr, w);
        pthread_cond_broadcast(&wr->room);
        pthread_mutex_unlock(&wr->lock);
    }
    store_stage_free(&w->stage);
    free(w);
}

void store_writer_queue(struct store *s, struct store_write *w)
{
    struct store_writer *wr = &s->writer;

    wr->queued++;
    if (!wr->started) {
        make(&w, 1);
        finish(s, w);
        return;
    }
    pthread_mutex_lock(&wr->lock);
    if (wr->tail)
        wr->tail->next = w;
    else
        wr->head = w;
    wr->tail = w;
    pthread_cond_signal(&wr->work);
    pthread_mutex_unlock(&wr->lock);
}

void store_writer_drain(struct store *s)
{
    struct store_writer *wr = &s->writer;

    if (!wr->started || wr->queued == 0)
        return;
    pthread_mutex_lock(&wr->lock);
    while (wr->head || wr->busy)
        pthread_cond_wait(&wr->room, &wr->lock);
    pthread_mutex_unlock(&wr->lock);
    complete(s);
}

void store_writer_counters(const struct store *s, struct store_writer_counters *c)
{
    c->queued = s->writer.queued;
    c->waits = s->writer.waits;
    pthread_mutex_lock((pthread_mutex_t *)&s->writer.lock);
    c->grouped = s->writer.grouped;
    pthread_mutex_unlock((pthread_mutex_t *)&s->writer.lock);
}

void store_writer_free(struct store *s)
{
    struct store_writer *wr = &s->writer;

    if (!wr->started)
        return;
    pthread_mutex_lock(&wr->lock);
    wr->stop = true;
    pthread_cond_signal(&wr->work);
    pthread_mutex_unlock(&wr->lock);
    pthread_join(wr->thread, NULL);
    wr->started = false;
    /* Writes the loop never completed (it ended first): their segments are closed already. */
    complete(s);
    for (unsigned i = 0; i < wr->n_pool; i++)
        store_stage_free(&wr->pool[i]);
    wr->n_pool = 0;
    pthread_mutex_destroy(&wr->lock);
    pthread_cond_destroy(&wr->work);
    pthread_cond_destroy(&wr->room);
}
