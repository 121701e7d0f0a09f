/* A libpcap handle and its capture thread (see source.h). */
#include "capture/source.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "capture/kfilter.h"
#include "pcapng/encode.h"
#include "pcapng/pcapng.h"
#include "util/error.h"
#include "util/log.h"

/* Batch buffers per interface: the loop encodes and returns them within milliseconds; more
 * only bridge its slower moments. With none free, the thread waits and the kernel ring (of
 * --buffer-size) holds the packets meanwhile: a loss, if any, is the kernel's, and counted. */
#define POOL_BUFFERS 8

struct capture_source {
    struct capture *cap;
    uint32_t ifid;
    char name[64];
    pcap_t *pcap;
    int link_type;
    pthread_t thread;
    int wake_fd; /* eventfd: wakes the thread for a stop or a new filter */
    bool started;
    bool polling;     /* --read-mode poll: read on the loop when the ring has a block */
    bool poll_paused; /* poll mode: no free buffer, the ring holds the packets */
    uv_poll_t poll;
    uv_timer_t poll_timer; /* batch-time flushes and filter swaps in poll mode */
    /* thread-owned */
    struct capture_batch *cur;
    struct nr_buf scratch;
    /* The ring fills from pcap_activate on, before the first filter is attached: packets stamped
     * before early_until_ns (the attach plus a margin for packets already past the socket's old
     * filter) are run through the first program here. Set before the thread starts. */
    struct bpf_program early;
    bool has_early;
    int64_t early_until_ns;
    /* shared, under lock */
    pthread_mutex_t lock;
    pthread_cond_t freed; /* a buffer came back to free_list */
    struct capture_batch *free_list;
    struct capture_batch *ready_head, *ready_tail;
    struct bpf_program pending;
    bool has_pending;
    struct pcap_stat last_stats;
    char error[256];
    /* atomics */
    int stop;
    uint64_t dropped;
    uint64_t packets, bytes;
};

static int64_t now_ns(clockid_t clock)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_mono_ns(void)
{
    return now_ns(CLOCK_MONOTONIC);
}

/* The margin after the first attach during which packets are still filtered here: the kernel
 * stamps a packet before its socket filter runs, and the old filter (none) may still be running
 * on another CPU when setsockopt returns. Filtering a packet the kernel already filtered with
 * the same program changes nothing. */
#define EARLY_MARGIN_NS (50 * 1000000LL)

static struct capture_batch *batch_new(struct capture_source *src)
{
    const struct capture_config *cfg = &src->cap->cfg;
    struct capture_batch *b = calloc(1, sizeof(*b));

    if (!b)
        return NULL;
    b->src = src;
    /* Room for the batch plus one more packet of the largest size. */
    nr_buf_init(&b->blocks, cfg->batch_bytes + PCAPNG_EPB_MIN + PCAPNG_MAX_SNAPLEN + 64);
    b->cap_offsets = cfg->batch_bytes / PCAPNG_EPB_MIN + 2;
    b->offsets = malloc(b->cap_offsets * sizeof(*b->offsets));
    if (!b->offsets || nr_buf_reserve(&b->blocks, b->blocks.max) != 0) {
        free(b->offsets);
        nr_buf_free(&b->blocks);
        free(b);
        return NULL;
    }
    return b;
}

static void batch_free(struct capture_batch *b)
{
    nr_buf_free(&b->blocks);
    free(b->offsets);
    free(b);
}

static void batch_reset(struct capture_batch *b)
{
    b->next = NULL;
    b->blocks.len = 0;
    b->n_offsets = 0;
    b->packets = 0;
    b->bytes = 0;
    b->first_ts_ns = b->last_ts_ns = 0;
    b->sorted = true;
}

/* A free buffer, waiting for the loop to return one (NULL only when the source stops, or in
 * poll mode, where waiting would stall the loop that returns them). */
static struct capture_batch *pool_get(struct capture_source *src)
{
    struct capture_batch *b;

    pthread_mutex_lock(&src->lock);
    while (!(b = src->free_list) && !src->polling &&
           !__atomic_load_n(&src->stop, __ATOMIC_ACQUIRE)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&src->freed, &src->lock, &until);
    }
    if (b)
        src->free_list = b->next;
    pthread_mutex_unlock(&src->lock);
    if (b)
        batch_reset(b);
    return b;
}

static int64_t epb_ts(const uint8_t *p)
{
    return (int64_t)((uint64_t)pcapng_le32(p + 12) << 32 | pcapng_le32(p + 16));
}

static const uint8_t *sort_base;

static int by_ts(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    int64_t tx = epb_ts(sort_base + x), ty = epb_ts(sort_base + y);

    if (tx != ty)
        return tx < ty ? -1 : 1;
    return x < y ? -1 : x > y; /* stable: the order they came in */
}

static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;

/* Puts the batch's EPBs in timestamp order (they are nearly sorted already: only packets of
 * different CPUs cross). */
static void batch_sort(struct capture_source *src, struct capture_batch *b)
{
    struct nr_buf tmp;

    if (b->sorted)
        return;
    pthread_mutex_lock(&sort_lock); /* qsort has no context argument in C11 */
    sort_base = b->blocks.data;
    qsort(b->offsets, b->n_offsets, sizeof(*b->offsets), by_ts);
    pthread_mutex_unlock(&sort_lock);
    src->scratch.len = 0;
    if (nr_buf_reserve(&src->scratch, b->blocks.len) != 0)
        return; /* cannot happen: scratch is as large as a batch */
    for (size_t i = 0; i < b->n_offsets; i++) {
        const uint8_t *p = b->blocks.data + b->offsets[i];
        uint32_t len = pcapng_le32(p + 4);
        memcpy(src->scratch.data + src->scratch.len, p, len);
        b->offsets[i] = (uint32_t)src->scratch.len;
        src->scratch.len += len;
    }
    tmp = b->blocks;
    b->blocks = src->scratch;
    src->scratch = tmp;
    b->first_ts_ns = epb_ts(b->blocks.data);
    b->last_ts_ns = epb_ts(b->blocks.data + b->offsets[b->n_offsets - 1]);
    b->sorted = true;
}

/* Hands the current batch to the loop. */
static void flush(struct capture_source *src)
{
    struct capture_batch *b = src->cur;

    if (!b || b->packets == 0)
        return;
    src->cur = NULL;
    batch_sort(src, b);
    pcap_stats(src->pcap, &b->stats);
    pthread_mutex_lock(&src->lock);
    if (src->ready_tail)
        src->ready_tail->next = b;
    else
        src->ready_head = b;
    src->ready_tail = b;
    src->last_stats = b->stats;
    /* Poll mode cannot wait for a buffer: stop reading before the ring's packets meet none
     * (they stay in the kernel's ring until one comes back). */
    if (src->polling && !src->free_list)
        pcap_breakloop(src->pcap);
    pthread_mutex_unlock(&src->lock);
    uv_async_send(&src->cap->ready);
}

static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
    struct capture_source *src = (struct capture_source *)user;
    struct capture_batch *b = src->cur;
    /* A nanosecond handle; the skew is a test's (0 otherwise). */
    int64_t ts = (int64_t)h->ts.tv_sec * 1000000000 + h->ts.tv_usec + src->cap->cfg.clock_skew_ns;
    size_t off;

    if (src->has_early) {
        if (ts >= src->early_until_ns) {
            pcap_freecode(&src->early);
            src->has_early = false;
        } else if (pcap_offline_filter(&src->early, h, data) == 0) {
            return; /* caught before the first filter: not asked for */
        }
    }
    if (!b) {
        b = src->cur = pool_get(src);
        if (!b) {
            __atomic_add_fetch(&src->dropped, 1, __ATOMIC_RELAXED);
            return;
        }
        b->started_ns = now_mono_ns();
    }
    off = b->blocks.len;
    if (pcapng_epb_append(&b->blocks, src->ifid, ts, data, h->caplen, h->len, NULL) != 0 ||
        b->n_offsets == b->cap_offsets) {
        b->blocks.len = off;
        __atomic_add_fetch(&src->dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    b->offsets[b->n_offsets++] = (uint32_t)off;
    if (b->packets == 0)
        b->first_ts_ns = ts;
    else if (ts < b->last_ts_ns)
        b->sorted = false;
    if (ts > b->last_ts_ns || b->packets == 0)
        b->last_ts_ns = ts;
    b->packets++;
    b->bytes += h->caplen;
    __atomic_add_fetch(&src->packets, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&src->bytes, h->caplen, __ATOMIC_RELAXED);
    if (b->blocks.len >= src->cap->cfg.batch_bytes)
        flush(src);
}

/* Puts a program on the handle: straight onto the socket, which the kernel swaps atomically
 * (kfilter.h); through libpcap only when the kernel cannot run it (libpcap then filters in user
 * space). Returns 0 or -1 with libpcap's message in its errbuf. */
static int swap_filter(struct capture_source *src, struct bpf_program *prog)
{
    int rc = capture_kfilter_attach(src->pcap, src->link_type, prog);

    if (rc == 0)
        return 0;
    NR_DEBUG("filter goes through libpcap", "iface=%s reason=\"%s\"", src->name, nr_strerror(rc));
    return pcap_setfilter(src->pcap, prog);
}

static void apply_pending(struct capture_source *src)
{
    struct bpf_program prog;
    bool has;

    pthread_mutex_lock(&src->lock);
    has = src->has_pending;
    prog = src->pending;
    src->has_pending = false;
    pthread_mutex_unlock(&src->lock);
    if (!has)
        return;
    if (swap_filter(src, &prog) != 0)
        NR_ERROR("cannot apply the new filter; the old one stays", "iface=%s err=\"%s\"", src->name,
                 pcap_geterr(src->pcap));
    pcap_freecode(&prog);
}

/* Time the thread may sleep: the ring's block timeout, or less when the batch it holds must go
 * out sooner (the kernel does not wake a reader for an empty ring). */
static int poll_timeout_ms(const struct capture_source *src)
{
    int ms = src->cap->cfg.block_timeout_ms;

    if (src->cur) {
        int64_t left = src->cap->cfg.batch_time_ns - (now_mono_ns() - src->cur->started_ns);
        int left_ms = left <= 0 ? 0 : (int)(left / 1000000) + 1;
        if (left_ms < ms)
            ms = left_ms;
    }
    return ms;
}

static void *run(void *arg)
{
    struct capture_source *src = arg;
    struct pollfd fds[2] = {
        {.fd = pcap_get_selectable_fd(src->pcap), .events = POLLIN},
        {.fd = src->wake_fd, .events = POLLIN},
    };

    while (!__atomic_load_n(&src->stop, __ATOMIC_ACQUIRE)) {
        int n;
        if (poll(fds, 2, poll_timeout_ms(src)) < 0 && errno != EINTR)
            break;
        if (fds[1].revents) {
            uint64_t v;
            if (read(src->wake_fd, &v, sizeof(v)) < 0) { /* drained; nothing else to do */
            }
        }
        n = pcap_dispatch(src->pcap, -1, on_packet, (u_char *)src);
        if (n < 0 && n != PCAP_ERROR_BREAK) {
            pthread_mutex_lock(&src->lock);
            snprintf(src->error, sizeof(src->error), "%s", pcap_geterr(src->pcap));
            pthread_mutex_unlock(&src->lock);
            NR_ERROR("capture stopped: reading the interface failed", "iface=%s err=\"%s\"",
                     src->name, pcap_geterr(src->pcap));
            break;
        }
        apply_pending(src);
        if (src->cur && now_mono_ns() - src->cur->started_ns >= src->cap->cfg.batch_time_ns)
            flush(src);
    }
    flush(src);
    uv_async_send(&src->cap->ready);
    return NULL;
}

static void wake(struct capture_source *src)
{
    uint64_t one = 1;

    if (write(src->wake_fd, &one, sizeof(one)) < 0) { /* already pending: enough */
    }
}

struct capture_source *capture_source_open(struct capture *cap, uint32_t ifid, const char *iface,
                                           char *err, size_t errlen)
{
    const struct capture_config *cfg = &cap->cfg;
    char perr[PCAP_ERRBUF_SIZE] = "";
    struct capture_source *src = calloc(1, sizeof(*src));
    int rc;

    if (!src) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    src->cap = cap;
    src->ifid = ifid;
    src->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    snprintf(src->name, sizeof(src->name), "%s", iface);
    pthread_mutex_init(&src->lock, NULL);
    pthread_cond_init(&src->freed, NULL);
    nr_buf_init(&src->scratch, cfg->batch_bytes + PCAPNG_EPB_MIN + PCAPNG_MAX_SNAPLEN + 64);
    src->pcap = pcap_create(iface, perr);
    if (src->wake_fd < 0) {
        snprintf(err, errlen, "%s: eventfd: %s", iface, strerror(errno));
        goto fail;
    }
    if (!src->pcap) {
        snprintf(err, errlen, "%s: %s", iface, perr);
        goto fail;
    }
    pcap_set_snaplen(src->pcap, (int)cfg->snaplen);
    pcap_set_promisc(src->pcap, 0);
    pcap_set_buffer_size(src->pcap, cfg->buffer_size > INT_MAX ? INT_MAX : (int)cfg->buffer_size);
    pcap_set_immediate_mode(src->pcap, 0);
    pcap_set_timeout(src->pcap, cfg->block_timeout_ms);
    if (pcap_set_tstamp_precision(src->pcap, PCAP_TSTAMP_PRECISION_NANO) != 0) {
        snprintf(err, errlen, "%s: nanosecond timestamps are not supported", iface);
        goto fail;
    }
    rc = pcap_activate(src->pcap);
    if (rc < 0) {
        /* libpcap's own message when it has one (it often repeats the status's text). */
        const char *why = pcap_geterr(src->pcap);
        snprintf(err, errlen, "%s: %s", iface, why[0] ? why : pcap_statustostr(rc));
        goto fail;
    }
    if (rc > 0)
        NR_WARN("capture opened with a warning", "iface=%s warning=\"%s\"", iface,
                pcap_statustostr(rc));
    /* "any": the cooked header that carries the interface index (as tcpdump 4.99 asks). */
    if (strcmp(iface, "any") == 0)
        pcap_set_datalink(src->pcap, DLT_LINUX_SLL2);
    src->link_type = pcap_datalink(src->pcap);
    for (int i = 0; i < POOL_BUFFERS; i++) {
        struct capture_batch *b = batch_new(src);
        if (!b) {
            snprintf(err, errlen, "%s: out of memory for batch buffers", iface);
            goto fail;
        }
        b->next = src->free_list;
        src->free_list = b;
    }
    if (nr_buf_reserve(&src->scratch, src->scratch.max) != 0) {
        snprintf(err, errlen, "%s: out of memory for batch buffers", iface);
        goto fail;
    }
    return src;
fail:
    capture_source_close(src);
    return NULL;
}

int capture_source_compile(const struct capture_source *src, const char *expr,
                           struct bpf_program *prog, char *err, size_t errlen)
{
    /* On the live handle, not a dead one of the same link type: libpcap generates Linux's
     * special VLAN loads (the kernel strips the tags) only for live handles. Compiling reads
     * the handle's settings, which the capture thread never changes. */
    if (pcap_compile(src->pcap, prog, expr, 1, PCAP_NETMASK_UNKNOWN) != 0) {
        snprintf(err, errlen, "%s", pcap_geterr(src->pcap));
        return NR_EPARSE;
    }
    return 0;
}

int capture_source_set_filter(struct capture_source *src, struct bpf_program *prog, char *err,
                              size_t errlen)
{
    if (!src->started) {
        if (swap_filter(src, prog) != 0) {
            snprintf(err, errlen, "%s: %s", src->name, pcap_geterr(src->pcap));
            pcap_freecode(prog);
            return NR_EPARSE;
        }
        if (src->has_early)
            pcap_freecode(&src->early);
        src->early = *prog;
        src->has_early = true;
        src->early_until_ns = now_ns(CLOCK_REALTIME) + EARLY_MARGIN_NS;
        memset(prog, 0, sizeof(*prog));
        return 0;
    }
    pthread_mutex_lock(&src->lock);
    if (src->has_pending)
        pcap_freecode(&src->pending);
    src->pending = *prog;
    src->has_pending = true;
    pthread_mutex_unlock(&src->lock);
    memset(prog, 0, sizeof(*prog));
    wake(src); /* apply it now rather than after the block timeout */
    return 0;
}

/* Poll mode: one read of what the ring holds, then the same bookkeeping as the thread. */
static void poll_read(struct capture_source *src)
{
    int n;

    if (!src->cur && !src->free_list) { /* the loop still holds every buffer */
        if (!src->poll_paused)
            uv_poll_stop(&src->poll);
        src->poll_paused = true;
        return;
    }
    n = pcap_dispatch(src->pcap, -1, on_packet, (u_char *)src);

    if (n < 0 && n != PCAP_ERROR_BREAK) {
        pthread_mutex_lock(&src->lock);
        snprintf(src->error, sizeof(src->error), "%s", pcap_geterr(src->pcap));
        pthread_mutex_unlock(&src->lock);
        uv_poll_stop(&src->poll);
        uv_async_send(&src->cap->ready);
        return;
    }
    apply_pending(src);
    if (src->cur && now_mono_ns() - src->cur->started_ns >= src->cap->cfg.batch_time_ns)
        flush(src);
}

static void on_readable(uv_poll_t *p, int status, int events)
{
    poll_read(p->data);
}

static void on_poll_timer(uv_timer_t *t)
{
    poll_read(t->data);
}

int capture_source_start(struct capture_source *src)
{
    int rc;

    if (src->cap->cfg.read_mode_poll) {
        char perr[PCAP_ERRBUF_SIZE];
        int fd = pcap_get_selectable_fd(src->pcap);
        if (fd < 0 || pcap_setnonblock(src->pcap, 1, perr) != 0)
            return -EINVAL;
        uv_poll_init(src->cap->loop, &src->poll, fd);
        uv_timer_init(src->cap->loop, &src->poll_timer);
        src->poll.data = src->poll_timer.data = src;
        uv_poll_start(&src->poll, UV_READABLE, on_readable);
        uv_timer_start(&src->poll_timer, on_poll_timer, (uint64_t)src->cap->cfg.block_timeout_ms,
                       (uint64_t)src->cap->cfg.block_timeout_ms);
        src->polling = src->started = true;
        return 0;
    }
    {
        char perr[PCAP_ERRBUF_SIZE];
        /* The thread polls the ring itself, with a timeout, and reads without blocking. */
        if (pcap_get_selectable_fd(src->pcap) < 0 || pcap_setnonblock(src->pcap, 1, perr) != 0)
            return -EINVAL;
    }
    rc = pthread_create(&src->thread, NULL, run, src);
    if (rc != 0)
        return -rc;
    src->started = true;
    return 0;
}

struct capture_batch *capture_source_take(struct capture_source *src)
{
    struct capture_batch *b;

    pthread_mutex_lock(&src->lock);
    b = src->ready_head;
    src->ready_head = src->ready_tail = NULL;
    pthread_mutex_unlock(&src->lock);
    return b;
}

void capture_source_recycle(struct capture_source *src, struct capture_batch *b)
{
    pthread_mutex_lock(&src->lock);
    b->next = src->free_list;
    src->free_list = b;
    pthread_cond_signal(&src->freed);
    pthread_mutex_unlock(&src->lock);
    if (src->poll_paused && src->polling) { /* on the loop, like poll mode itself */
        src->poll_paused = false;
        uv_poll_start(&src->poll, UV_READABLE, on_readable);
    }
}

void capture_source_stats(struct capture_source *src, struct pcap_stat *st, uint64_t *dropped,
                          uint64_t *packets, uint64_t *bytes)
{
    pthread_mutex_lock(&src->lock);
    *st = src->last_stats;
    pthread_mutex_unlock(&src->lock);
    *dropped = __atomic_load_n(&src->dropped, __ATOMIC_RELAXED);
    *packets = __atomic_load_n(&src->packets, __ATOMIC_RELAXED);
    *bytes = __atomic_load_n(&src->bytes, __ATOMIC_RELAXED);
}

void capture_source_set_ifid(struct capture_source *src, uint32_t ifid)
{
    src->ifid = ifid;
}

const char *capture_source_name(const struct capture_source *src)
{
    return src->name;
}

int capture_source_link_type(const struct capture_source *src)
{
    return src->link_type;
}

int capture_source_failed(struct capture_source *src, char *err, size_t errlen)
{
    int failed;

    pthread_mutex_lock(&src->lock);
    failed = src->error[0] != '\0';
    if (failed)
        snprintf(err, errlen, "%s: %s", src->name, src->error);
    pthread_mutex_unlock(&src->lock);
    return failed;
}

void capture_source_stop(struct capture_source *src)
{
    if (!src->started)
        return;
    if (src->polling) {
        poll_read(src);
        flush(src);
        uv_poll_stop(&src->poll);
        uv_timer_stop(&src->poll_timer);
        uv_close((uv_handle_t *)&src->poll, NULL);
        uv_close((uv_handle_t *)&src->poll_timer, NULL);
        src->started = src->polling = false;
        return;
    }
    __atomic_store_n(&src->stop, 1, __ATOMIC_RELEASE);
    wake(src);
    pthread_join(src->thread, NULL);
    src->started = false;
}

void capture_source_close(struct capture_source *src)
{
    struct capture_batch *b, *next;

    capture_source_stop(src);
    for (b = src->free_list; b; b = next) {
        next = b->next;
        batch_free(b);
    }
    for (b = src->ready_head; b; b = next) {
        next = b->next;
        batch_free(b);
    }
    if (src->cur)
        batch_free(src->cur);
    if (src->has_pending)
        pcap_freecode(&src->pending);
    if (src->has_early)
        pcap_freecode(&src->early);
    if (src->pcap)
        pcap_close(src->pcap);
    nr_buf_free(&src->scratch);
    if (src->wake_fd >= 0)
        close(src->wake_fd);
    pthread_cond_destroy(&src->freed);
    pthread_mutex_destroy(&src->lock);
    free(src);
}
