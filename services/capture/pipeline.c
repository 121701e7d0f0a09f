/* Batches into the spool (see pipeline.h). */
#include "capture/pipeline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/ifaces.h"
#include "capture/source.h"
#include "capture/spool.h"
#include "capture/uplink.h"
#include "netreel/v1/store.pb-c.h"
#include "pcapng/keylog.h"
#include "rpc/call.h"
#include "util/error.h"
#include "util/log.h"
#include "util/prog.h"

void capture_pipeline_counters(struct capture *cap, uint64_t *received, uint64_t *kernel_dropped,
                               uint64_t *interface_dropped, uint64_t *capture_dropped)
{
    uint64_t own = cap->c.spool_dropped;

    *received = *kernel_dropped = *interface_dropped = 0;
    for (unsigned i = 0; i < cap->n_sources; i++) {
        struct pcap_stat st;
        uint64_t dropped, packets, bytes;
        capture_source_stats(cap->sources[i], &st, &dropped, &packets, &bytes);
        *received += st.ps_recv;
        *kernel_dropped += st.ps_drop;
        *interface_dropped += st.ps_ifdrop;
        own += dropped;
    }
    *capture_dropped = own;
}

void capture_pipeline_name_stream(struct capture_config *cfg)
{
    snprintf(cfg->capture_id, sizeof(cfg->capture_id), "%.100s@%lld", cfg->node,
             (long long)nr_now_ns());
    for (char *p = cfg->capture_id; *p; p++)
        if (*p <= ' ' || *p >= 0x7f)
            *p = '_';
}

/* The interface table is nearly full (of devices long gone, on a node where pods come and go):
 * a new capture stream, whose table starts again from the fixed interfaces. */
static void new_stream(struct capture *cap)
{
    char old[sizeof(cap->cfg.capture_id)];
    uint32_t n;
    int rc = capture_ifaces_roll(cap, cap->stream + 1, uv_now(cap->loop));

    if (rc != 0) {
        NR_WARN("cannot begin a new capture stream; devices past the table's room stay on their "
                "source's interface",
                "err=\"%s\"", nr_strerror(rc));
        return;
    }
    capture_ifaces_of(cap, cap->stream, &n);
    snprintf(old, sizeof(old), "%s", cap->cfg.capture_id);
    cap->stream++;
    capture_pipeline_name_stream(&cap->cfg);
    if (cap->pods)
        cap->pods_dirty = true; /* the new stream's pod history starts with the set in force */
    NR_INFO("a new capture stream: the interface table was nearly full",
            "old=%s new=%s "
            "interfaces=%u",
            old, cap->cfg.capture_id, n);
}

int capture_pipeline_interfaces(const struct capture *cap, uint32_t stream, uint32_t from,
                                uint32_t to, uint8_t **out, size_t *out_len)
{
    Netreel__V1__PacketBatch m = NETREEL__V1__PACKET_BATCH__INIT;
    Netreel__V1__Interface *ifs, **ifp;
    const struct capture_iface *all;
    uint32_t n;
    uint8_t *bytes = NULL;
    size_t len;

    *out = NULL;
    *out_len = 0;
    all = capture_ifaces_of(cap, stream, &n);
    if (to > n)
        to = n;
    if (from >= to)
        return 0;
    ifs = calloc(to - from, sizeof(*ifs));
    ifp = calloc(to - from, sizeof(*ifp));
    if (!ifs || !ifp)
        goto nomem;
    for (uint32_t i = from; i < to; i++) {
        Netreel__V1__Interface *in = &ifs[i - from];
        netreel__v1__interface__init(in);
        in->id = i;
        in->name = (char *)all[i].name;
        in->description = all[i].desc ? all[i].desc : "";
        in->link_type = all[i].link_type;
        in->snaplen = all[i].snaplen;
        in->node = (char *)cap->cfg.node;
        ifp[i - from] = in;
    }
    m.n_interfaces = to - from;
    m.interfaces = ifp;
    len = netreel__v1__packet_batch__get_packed_size(&m);
    if (!(bytes = malloc(len ? len : 1)))
        goto nomem;
    netreel__v1__packet_batch__pack(&m, bytes);
    free(ifs);
    free(ifp);
    *out = bytes;
    *out_len = len;
    return 0;
nomem:
    free(ifs);
    free(ifp);
    return -ENOMEM;
}

/* ---- a batch's EPBs into the spool without a copy ----
 * A well-filled batch gives its buffer to the spool as the message's body (sent from there
 * without a copy, rpc_call_send_ref) and takes one the store acknowledged earlier from the pool;
 * a batch under half full is copied instead, so that the spool, which counts the body's
 * allocation, does not fill with half-empty buffers. Once the spool is half full (the store
 * slow or away) a taken buffer is also cut to its length (realloc, which shrinks in place), so
 * that its bound still holds as many packets as it says. */

static void blocks_release(void *ctx, uint8_t *data, size_t cap)
{
    struct capture *c = ctx;
    struct capture_blocks_pool *p = &c->blocks_pool;

    if (cap >= c->cfg.batch_bytes && p->n < CAPTURE_BLOCKS_POOL) {
        p->data[p->n] = data;
        p->cap[p->n++] = cap;
    } else {
        free(data);
    }
}

void capture_pipeline_init(struct capture *cap)
{
    nr_buf_init(&cap->keylog, PCAPNG_KEYLOG_MAX);
}

void capture_pipeline_free(struct capture *c)
{
    while (c->blocks_pool.n)
        free(c->blocks_pool.data[--c->blocks_pool.n]);
    nr_buf_free(&c->keylog);
}

/* The body of b's message; *charge is what it counts in the spool. NULL when out of memory. */
static struct rpc_wbuf *take_blocks(struct capture *c, struct capture_batch *b, size_t *charge)
{
    struct nr_buf *bl = &b->blocks;
    struct capture_blocks_pool *p = &c->blocks_pool;
    bool tight = c->spool->bytes > c->spool->max / 2;
    struct rpc_wbuf *w;
    uint8_t *fresh = NULL, *taken;
    size_t fresh_cap = bl->cap, taken_cap = bl->cap;

    if (bl->len < bl->cap / 2) {
        uint8_t *copy = malloc(bl->len);
        if (!copy || !(w = rpc_wbuf_wrap(copy, bl->len, bl->len, blocks_release, c))) {
            free(copy);
            return NULL;
        }
        memcpy(copy, bl->data, bl->len);
        *charge = bl->len;
        return w;
    }
    for (unsigned i = 0; i < p->n; i++) {
        if (p->cap[i] >= bl->cap) {
            fresh = p->data[i];
            fresh_cap = p->cap[i];
            p->data[i] = p->data[--p->n];
            p->cap[i] = p->cap[p->n];
            break;
        }
    }
    if (!fresh && !(fresh = malloc(fresh_cap)))
        return NULL;
    taken = bl->data;
    if (tight && bl->len < bl->cap) {
        uint8_t *cut = realloc(bl->data, bl->len);
        if (cut) {
            taken = cut;
            taken_cap = bl->len;
        }
    }
    w = rpc_wbuf_wrap(taken, bl->len, taken_cap, blocks_release, c);
    if (!w) {
        bl->data = taken;
        bl->cap = taken_cap;
        blocks_release(c, fresh, fresh_cap);
        return NULL;
    }
    *charge = taken_cap;
    bl->data = fresh;
    bl->cap = fresh_cap;
    bl->len = 0;
    return w;
}

/* The head of a message whose `blocks` field (6, bytes) follows it: m packed, then that field's
 * tag and length. */
static uint8_t *pack_head(const Netreel__V1__PacketBatch *m, size_t blocks_len, size_t *len)
{
    size_t n = netreel__v1__packet_batch__get_packed_size(m);
    uint8_t *p = malloc(n + 1 + 10);
    size_t at;

    if (!p)
        return NULL;
    at = netreel__v1__packet_batch__pack(m, p);
    if (blocks_len) {
        p[at++] = 6 << 3 | 2;
        for (uint64_t v = blocks_len;; v >>= 7) {
            p[at++] = (uint8_t)(v & 0x7f) | (v >= 0x80 ? 0x80 : 0);
            if (v < 0x80)
                break;
        }
    }
    *len = at;
    return p;
}

/* Encodes and spools one batch (b may be NULL: an empty one). */
static void spool_batch(struct capture *cap, struct capture_batch *b)
{
    Netreel__V1__PacketBatch m = NETREEL__V1__PACKET_BATCH__INIT;
    Netreel__V1__CaptureCounters cc = NETREEL__V1__CAPTURE_COUNTERS__INIT;
    struct capture_spool_entry meta = {0};
    uint32_t n_ifaces;
    Netreel__V1__PodName *pods = NULL, **podp = NULL;
    bool with_pods;
    uint32_t packets = b ? b->packets : 0;
    uint8_t *bytes = NULL;
    struct rpc_wbuf *body = NULL;
    size_t len, charge = 0, blocks_len = 0;

    /* Old streams' tables go once the spool holds none of their batches. */
    capture_ifaces_release(cap, cap->spool->head ? cap->spool->head->stream : cap->stream);
    if (b && capture_ifaces_should_roll(cap, uv_now(cap->loop)))
        new_stream(cap); /* this batch is the new stream's first: it carries the pod set */
    with_pods = cap->pods_dirty;
    m.capture_id = cap->cfg.capture_id;
    m.node = cap->cfg.node;
    m.seq = cap->next_seq;
    if (b) /* "any": each packet on its device's interface (which may be new) */
        capture_ifaces_split(cap, b);
    /* The interfaces are not in the spooled bytes: the uplink puts in front of them, when it
     * sends them, those of 0..n_ifaces-1 its call has not carried yet. */
    capture_ifaces_all(cap, &n_ifaces);
    if (with_pods) {
        pods = calloc(cap->n_pods + 1, sizeof(*pods));
        podp = calloc(cap->n_pods + 1, sizeof(*podp));
        if (!pods || !podp)
            goto dropped;
        for (size_t i = 0; i < cap->n_pods; i++) {
            netreel__v1__pod_name__init(&pods[i]);
            pods[i].ip.data = cap->pods[i].ip;
            pods[i].ip.len = cap->pods[i].family == 4 ? 4 : 16;
            pods[i].namespace_ = cap->pods[i].name_space;
            pods[i].name = cap->pods[i].name;
            pods[i].uid = cap->pods[i].uid;
            pods[i].labels = cap->pods[i].labels;
            podp[i] = &pods[i];
        }
        m.pods_update = true;
        m.pods_since_ns = cap->pods_since_ns;
        m.n_pods = cap->n_pods;
        m.pods = podp;
    }
    if (b) {
        blocks_len = b->blocks.len; /* not in m: they follow the head as its body */
        m.packet_count = b->packets;
        m.first_ts_ns = b->first_ts_ns;
        m.last_ts_ns = b->last_ts_ns;
    }
    if (cap->keylog.len) { /* handed in since the last batch, with or without packets */
        m.tls_keylog.data = cap->keylog.data;
        m.tls_keylog.len = cap->keylog.len;
    }
    capture_pipeline_counters(cap, &cc.received, &cc.kernel_dropped, &cc.interface_dropped,
                              &cc.capture_dropped);
    m.counters = &cc;
    bytes = pack_head(&m, blocks_len, &len);
    if (!bytes || (blocks_len && !(body = take_blocks(cap, b, &charge))))
        goto dropped;
    meta.seq = m.seq;
    meta.packets = packets;
    meta.interfaces = n_ifaces;
    meta.stream = cap->stream;
    meta.carries_pods = with_pods;
    if (capture_spool_push(cap->spool, bytes, len, body, charge, &meta) != 0)
        goto dropped;
    cap->next_seq++;
    cap->c.batches++;
    if (m.tls_keylog.len) /* the spool's now: a copy of the head, resent until acknowledged */
        nr_buf_reset(&cap->keylog, PCAPNG_KEYLOG_MAX);
    if (with_pods)
        cap->pods_dirty = false;
    free(pods);
    free(podp);
    capture_uplink_kick(cap->uplink);
    return;
dropped:
    /* Whole batches go, newest first: the spool keeps the oldest for the store. */
    if (cap->c.spool_dropped_batches++ == 0 || cap->c.spool_dropped_batches % 1000 == 0)
        NR_WARN("spool full: batches dropped", "dropped_batches=%llu spool_bytes=%zu",
                (unsigned long long)cap->c.spool_dropped_batches, cap->spool->bytes);
    cap->c.spool_dropped += packets;
    free(bytes);
    rpc_wbuf_unref(body);
    free(pods);
    free(podp);
}

void capture_pipeline_ready(uv_async_t *a)
{
    struct capture *cap = a->data;

    for (unsigned i = 0; i < cap->n_sources; i++) {
        struct capture_batch *b = capture_source_take(cap->sources[i]), *next;
        for (; b; b = next) {
            next = b->next;
            cap->c.packets += b->packets;
            cap->c.bytes += b->bytes;
            spool_batch(cap, b);
            capture_source_recycle(cap->sources[i], b);
        }
    }
}

void capture_pipeline_spool(struct capture *cap, struct capture_batch *b)
{
    spool_batch(cap, b);
}

void capture_pipeline_heartbeat(struct capture *cap)
{
    spool_batch(cap, NULL);
}

int capture_pipeline_keylog_add(struct capture *cap, const char *lines, size_t len)
{
    int rc = nr_buf_append(&cap->keylog, lines, len);

    return rc == -EOVERFLOW ? -ENOBUFS : rc;
}

size_t capture_pipeline_keylog_pending(const struct capture *cap)
{
    return cap->keylog.len;
}
