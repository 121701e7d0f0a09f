/* Hub.Snapshot (see snapshot.h): resolve the stores, call Store.Snapshot on each, wait for
 * every header, write the file's head, merge, write the statistics and the summary. */
#include "hub/snapshot.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/budget.h"
#include "hub/clock.h"
#include "hub/sightings.h"
#include "hub/stores.h"
#include "netreel/v1/hub.pb-c.h"
#include "pcapng/decode.h"
#include "pcapng/encode.h"
#include "pcapng/keylog.h"
#include "pcapng/merge.h"
#include "pcapng/pcap.h"
#include "rpc/client.h"
#include "rpc/status.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/pbwire.h"
#include "util/prog.h"

#define TURN_BUDGET (8u << 20)
/* The most TLS key log text one snapshot keeps for its file; the rest is dropped (and logged). */
#define HUB_KEYLOG_MAX (16u << 20)
/* Slots of the table of lines kept: twice the most lines HUB_KEYLOG_MAX holds (the shortest
 * valid line is 145 bytes), a power of two. 2 MiB, made when a snapshot gets its first line. */
#define HUB_KEYLOG_SLOTS (1u << 18)
/* Its field number (proto/netreel/v1/common.proto): protobuf-c hands the filter over
 * NUL-terminated, and a NUL inside it must be refused, not cut at (pbwire.h). */
#define SNAPSHOT_REQUEST_FILTER 3
/* The clock probe: the window's last seconds, at most so many packets. */
#define HUB_PROBE_NS          (5 * 1000000000LL)
#define HUB_PROBE_MAX_PACKETS 200000u

enum src_state { S_WAIT_HEADER, S_STREAM, S_DONE, S_FAILED };
enum { KEY_NOT_YET, KEY_SET, KEY_NONE };

struct hub_snap;

/* One store's stream within a snapshot. What the merge touches for every packet comes first:
 * with a thousand stores taking turns, each packet's store is cold in the cache. */
struct hub_src {
    struct hub_snap *snap;
    Netreel__V1__StoreChunk *msg; /* the blocks message being merged */
    const uint8_t *blk;           /* its blocks (msg->blocks, here so as not to chase msg) */
    size_t blk_len;
    size_t pos;
    size_t n_ifaces;       /* of its header */
    struct pcapng_epb epb; /* its next packet, in the heap when `ready` */
    uint64_t key;          /* its sightings key (hub_sightings_key) ... */
    uint8_t key_state;     /* ... KEY_NOT_YET, KEY_SET or KEY_NONE (the packet has none) */
    uint32_t base;         /* output id of its interface 0 */
    enum src_state state;
    bool ready;
    bool had_blocks; /* its key log lines, which come before its blocks, are all in */
    bool blocked;    /* counted in snap->blocked: streaming, no packet ready, none held */
    bool timed_out;
    uint64_t packets;
    int64_t reached_ns;     /* the time of its last packet merged, on the file's clock */
    int64_t waiting_since;  /* when the merge started waiting for it (0: not waiting) */
    struct rpc_call *call;  /* NULL once its call is over */
    struct rpc_channel *ch; /* held for the call (hub_stores_channel), NULL once given back */
    Netreel__V1__StoreChunk *header; /* its WindowHeader, kept for the file's head */
    Netreel__V1__StoreChunk *summary;
    struct hub_store_addr addr;
    char error[256];
};

struct hub_snap {
    struct hub *h;
    struct rpc_call *call;
    int64_t since, until;
    char *filter;
    uint32_t snaplen;
    bool pcap;
    uint16_t pcap_link_type;
    struct hub_src *srcs;
    size_t n;
    size_t waiting_headers; /* stores whose header has not come */
    size_t blocked;         /* streaming stores without a packet ready */
    size_t live_calls;
    bool resolving, head_sent, finished, over;
    bool producing;    /* inside produce(): a store's message delivered meanwhile joins that run */
    char refused[400]; /* a store's INVALID_ARGUMENT for the request itself: the call's answer */
    struct pcapng_merge heap;
    enum hub_sightings_mode sightings;
    struct hub_sightings *sg; /* the copies of one packet (made with the file's head) */
    /* One clock (hub/clock.h): unless --clock=raw, a probe (a snapshot of its own, writing no
     * file) first reads the window's last HUB_PROBE_NS from every store, and the nodes' clock
     * offsets it measures are taken off every packet's timestamp before the merge. */
    bool raw_clock;
    bool is_probe;
    struct hub_snap *parent;          /* a probe's snapshot, NULL once it is done or gone */
    struct hub_snap *probe;           /* the probe running for this snapshot */
    struct hub_clock *clock;          /* a probe's samples */
    struct hub_clock_offset *offsets; /* per store, once measured (NULL: raw clocks) */
    size_t ref;                       /* the store whose clock the others are aligned to */
    struct hub_resolved stores;       /* kept while the probe runs */
    /* The pod selection, passed on to the stores. */
    char **namespaces;
    size_t n_namespaces;
    char *pod_regex, *label_selector;
    struct nr_buf out;
    /* The stores' TLS key log lines, written as DSBs ahead of the first packet. */
    struct nr_buf keys;
    size_t keys_pos;              /* how much of keys is in the file */
    uint64_t keys_dropped;        /* bytes of lines past HUB_KEYLOG_MAX, or for a pcap file */
    uint64_t *keys_seen;          /* hashes of the lines kept (open addressing, 0: empty) */
    uint64_t packets, file_bytes; /* packets written */
    uint64_t taken;               /* packets the merge gave */
    uint64_t waits;               /* times the merge stopped to wait for a store's next message */
    int64_t first_ts;             /* of the first packet written */
    uv_timer_t timer;
    int64_t started_ns;
};

static void produce(struct hub_snap *s);
static void probe_done(struct hub_snap *p);

static void set_blocked(struct hub_src *src, bool blocked)
{
    if (src->blocked == blocked)
        return;
    src->blocked = blocked;
    if (blocked) {
        src->snap->blocked++;
        src->waiting_since = nr_now_ns();
    } else {
        src->snap->blocked--;
        src->waiting_since = 0;
    }
}

int hub_check_token(const struct hub *h, struct rpc_call *call)
{
    const char *auth = h->token ? rpc_call_header(call, "authorization") : NULL;
    size_t tl, al;
    unsigned diff = 0;

    if (!h->token)
        return 0;
    if (!auth || strncmp(auth, "Bearer ", 7) != 0)
        return -EACCES;
    auth += 7;
    tl = strlen(h->token);
    al = strlen(auth);
    /* Constant time in the token's length: no early exit on the first difference. */
    for (size_t i = 0; i < tl; i++)
        diff |= (unsigned)(h->token[i] ^ (i < al ? auth[i] : 0));
    return diff == 0 && al == tl ? 0 : -EACCES;
}

static void snap_free(uv_handle_t *t)
{
    struct hub_snap *s = t->data;

    for (size_t i = 0; i < s->n; i++) {
        struct hub_src *src = &s->srcs[i];
        if (src->header)
            netreel__v1__store_chunk__free_unpacked(src->header, NULL);
        if (src->summary)
            netreel__v1__store_chunk__free_unpacked(src->summary, NULL);
        if (src->msg)
            netreel__v1__store_chunk__free_unpacked(src->msg, NULL);
    }
    free(s->srcs);
    free(s->filter);
    pcapng_merge_free(&s->heap);
    hub_sightings_free(s->sg);
    hub_clock_free(s->clock);
    free(s->offsets);
    free(s->stores.addrs);
    free(s->stores.failed);
    for (size_t i = 0; i < s->n_namespaces; i++)
        free(s->namespaces[i]);
    free(s->namespaces);
    free(s->pod_regex);
    free(s->label_selector);
    nr_buf_free(&s->out);
    nr_buf_free(&s->keys);
    free(s->keys_seen);
    free(s);
}

/* Frees the snapshot once its caller and every store call are gone. */
static void maybe_free(struct hub_snap *s)
{
    if (s->over && !s->resolving && s->live_calls == 0 && !uv_is_closing((uv_handle_t *)&s->timer))
        uv_close((uv_handle_t *)&s->timer, snap_free);
}

static void finish(struct hub_snap *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void finish(struct hub_snap *s, int code, const char *fmt, ...)
{
    char msg[512] = "";
    va_list ap;

    if (s->finished)
        return;
    s->finished = true;
    if (fmt) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
    }
    if (code != RPC_OK && !s->is_probe) {
        s->h->snapshots_failed++;
        NR_WARN("snapshot failed", "code=%s reason=\"%s\"", rpc_code_name(code), msg);
    }
    if (s->call)
        rpc_call_finish(s->call, code, msg[0] ? msg : NULL);
    if (s->probe) { /* the snapshot is over: its probe is of no use */
        s->probe->parent = NULL;
        finish(s->probe, RPC_CANCELLED, NULL);
        s->probe = NULL;
    }
    if (s->is_probe)
        s->over = true; /* no caller's call to end it */
    /* Stores still streaming are of no use now. */
    for (size_t i = 0; i < s->n; i++)
        if (s->srcs[i].call)
            rpc_call_cancel(s->srcs[i].call);
    if (s->is_probe)
        maybe_free(s);
}

static int send_out(struct hub_snap *s, Netreel__V1__SnapshotSummary *summary)
{
    Netreel__V1__FileChunk c = NETREEL__V1__FILE_CHUNK__INIT;
    int rc;

    if (!s->call) /* a probe writes no file */
        s->out.len = 0;
    if (s->out.len == 0 && !summary)
        return 0;
    c.data.data = s->out.data;
    c.data.len = s->out.len;
    c.summary = summary;
    rc = rpc_call_send(s->call, &c.base);
    s->file_bytes += s->out.len;
    s->out.len = 0;
    return rc;
}

/* ---- the stores' streams ------------------------------------------------------------------- */

static void src_fail(struct hub_src *src, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void src_fail(struct hub_src *src, const char *fmt, ...)
{
    va_list ap;

    if (src->state == S_FAILED)
        return;
    va_start(ap, fmt);
    vsnprintf(src->error, sizeof(src->error), fmt, ap);
    va_end(ap);
    if (src->state == S_WAIT_HEADER)
        src->snap->waiting_headers--;
    set_blocked(src, false);
    src->state = S_FAILED;
    NR_WARN("store left out of a snapshot", "store=%s packets_merged=%llu reason=\"%s\"",
            src->addr.addr, (unsigned long long)src->packets, src->error);
    if (src->call)
        rpc_call_cancel(src->call);
}

/* Puts the next packet of the held message in the heap, or lets the message go. */
/* The packet's time on the reference clock: its node's measured offset taken off (a constant per
 * store, so each store's stream stays in order). */
static int64_t aligned_ts(const struct hub_src *src)
{
    const struct hub_snap *s = src->snap;
    const struct hub_clock_offset *o = s->offsets ? &s->offsets[src - s->srcs] : NULL;
    int64_t ts = src->epb.ts_ns;

    if (o && o->known)
        ts -= o->offset_ns;
    return ts < 0 ? 0 : ts;
}

static void src_next(struct hub_src *src)
{
    struct hub_snap *s = src->snap;
    size_t len = src->blk_len;
    uint32_t type;
    size_t blen;

    if (src->msg && src->pos < len) {
        const uint8_t *p = src->blk + src->pos;
        size_t n_ifaces = src->n_ifaces;
        if (pcapng_block_peek(p, len - src->pos, &type, &blen) != 1 ||
            pcapng_epb_decode(p, blen, &src->epb) != 0 || src->epb.ifid >= n_ifaces) {
            src_fail(src, "it sent blocks that are not whole EPBs of its interfaces");
        } else if (src->epb.caplen > PCAPNG_MAX_SNAPLEN || src->epb.ts_ns < 0 ||
                   (s->pcap && src->epb.ts_ns / 1000000000 > UINT32_MAX)) {
            /* What the output cannot hold would fail the whole file when written: this
             * store is left out instead. */
            src_fail(src, "it sent a packet the file cannot hold (%u bytes captured, at %lld ns)",
                     src->epb.caplen, (long long)src->epb.ts_ns);
        } else if (pcapng_merge_push(&s->heap, src, aligned_ts(src), (uint64_t)(src - s->srcs)) ==
                   0) {
            src->pos += blen;
            src->ready = true;
            /* Its bytes are in the cache now: its key is found here, its table slot fetched
             * when it comes to the top (prefetch_top). */
            src->key_state =
                !s->sg ? KEY_NOT_YET
                : hub_sightings_key(s->sg, &src->epb, src->base + src->epb.ifid, &src->key)
                    ? KEY_SET
                    : KEY_NONE;
            return;
        }
    }
    if (src->msg) {
        netreel__v1__store_chunk__free_unpacked(src->msg, NULL);
        src->msg = NULL;
        src->blk = NULL;
        src->blk_len = 0;
    }
    src->ready = false;
    if (src->state == S_STREAM) {
        set_blocked(src, true);
        /* A message it already sent is taken now, not a loop turn later: with many stores in
         * step, each would otherwise cost a turn and a tiny chunk to the caller. */
        if (src->call)
            rpc_call_resume_recv_now(src->call);
    }
}

static void try_head(struct hub_snap *s);

/* lib/rpc's messages start with the address; the summary names it already. */
static const char *without_addr(const char *message, const char *addr)
{
    size_t n = strlen(addr);

    if (strncmp(message, addr, n) == 0 && message[n] == ':' && message[n + 1] == ' ')
        return message + n + 2;
    return message;
}

/* The store's node: from this snapshot's header, else from an earlier answer at its address. */
static const char *src_node(const struct hub_src *src)
{
    const char *n;

    if (src->header && src->header->header->node && src->header->header->node[0])
        return src->header->header->node;
    n = hub_stores_node(src->snap->h, src->addr.addr);
    return n ? n : "";
}

/* Keeps each line of a store's key log message (already validated) once: a capture that resent
 * a batch, or lines stored in two segments, give the same line twice. Past HUB_KEYLOG_MAX, or
 * without memory for the table, lines are dropped and counted. */
static void keys_add(struct hub_snap *s, const uint8_t *p, size_t len)
{
    size_t off = 0, n;
    const uint8_t *line;

    if (!s->keys_seen)
        s->keys_seen = calloc(HUB_KEYLOG_SLOTS, sizeof(*s->keys_seen));
    while (pcapng_keylog_next(p, len, &off, &line, &n) == 1) {
        uint64_t h = nr_hash_bytes(line, n) | 1; /* 0 marks an empty slot */
        size_t slot;
        if (!s->keys_seen || s->keys.len + n > s->keys.max) {
            s->keys_dropped += n;
            continue;
        }
        for (slot = h & (HUB_KEYLOG_SLOTS - 1); s->keys_seen[slot] && s->keys_seen[slot] != h;
             slot = (slot + 1) & (HUB_KEYLOG_SLOTS - 1))
            ;
        if (s->keys_seen[slot] == h)
            continue; /* a 64-bit hash: two different lines colliding is not a concern */
        if (nr_buf_append(&s->keys, line, n) != 0) {
            s->keys_dropped += n;
            continue;
        }
        s->keys_seen[slot] = h;
    }
}

static void src_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    struct hub_src *src = user;
    struct hub_snap *s = src->snap;
    Netreel__V1__StoreChunk *c =
        (Netreel__V1__StoreChunk *)rpc_unpack(&netreel__v1__store_chunk__descriptor, msg, len);

    if (!c) {
        src_fail(src, "it sent a StoreChunk that does not parse");
        produce(s);
        return;
    }
    switch (c->kind_case) {
    case NETREEL__V1__STORE_CHUNK__KIND_HEADER:
        if (src->state != S_WAIT_HEADER || !c->header)
            break;
        src->header = c;
        src->n_ifaces = c->header->n_interfaces;
        hub_stores_remember(s->h, src->addr.addr, c->header->node);
        src->state = S_STREAM;
        s->waiting_headers--;
        set_blocked(src, true); /* no packet yet */
        try_head(s);
        return;
    case NETREEL__V1__STORE_CHUNK__KIND_TLS_KEYLOG:
        if (src->state != S_STREAM || src->had_blocks)
            break;
        if (pcapng_keylog_validate(c->tls_keylog.data, c->tls_keylog.len, NULL, NULL, 0) != 0) {
            netreel__v1__store_chunk__free_unpacked(c, NULL);
            src_fail(src, "it sent TLS key log lines that are not valid");
            produce(s);
            return;
        }
        if (s->pcap)
            s->keys_dropped += c->tls_keylog.len;
        else if (!s->is_probe)
            keys_add(s, c->tls_keylog.data, c->tls_keylog.len);
        netreel__v1__store_chunk__free_unpacked(c, NULL);
        return;
    case NETREEL__V1__STORE_CHUNK__KIND_BLOCKS:
        if (src->state != S_STREAM || src->msg)
            break;
        src->had_blocks = true;
        src->msg = c;
        src->blk = c->blocks.data;
        src->blk_len = c->blocks.len;
        src->pos = 0;
        rpc_call_pause_recv(call); /* one message per store at a time: back-pressure */
        set_blocked(src, false);
        src_next(src);
        produce(s);
        return;
    case NETREEL__V1__STORE_CHUNK__KIND_SUMMARY:
        if (src->summary)
            break;
        src->summary = c;
        return;
    default: break;
    }
    netreel__v1__store_chunk__free_unpacked(c, NULL);
    if (src->state == S_STREAM || src->state == S_WAIT_HEADER)
        src_fail(src, "it sent its stream out of order");
    produce(s);
}

static void src_done(struct rpc_call *call, int code, const char *message, void *user)
{
    struct hub_src *src = user;
    struct hub_snap *s = src->snap;

    src->call = NULL;
    if (src->ch) {
        hub_stores_release(s->h, src->ch);
        src->ch = NULL;
    }
    s->live_calls--;
    if (code == RPC_OK && src->state == S_STREAM) {
        set_blocked(src, false); /* what it holds is still merged; nothing more comes */
        src->state = S_DONE;
    } else if (code != RPC_OK) {
        /* Every store gets the same request: one that calls it invalid (a filter that does not
         * compile for its link types) speaks for the caller's mistake, not for a missing store. */
        if (code == RPC_INVALID_ARGUMENT && src->state == S_WAIT_HEADER && !s->refused[0]) {
            const char *node = src_node(src);
            snprintf(s->refused, sizeof(s->refused), "store %s: %s", node ? node : src->addr.addr,
                     without_addr(message, src->addr.addr));
        }
        if (src->timed_out) {
            char d[32];
            nr_format_duration(s->h->cfg.store_timeout_ns, d, sizeof(d));
            if (src->had_blocks)
                src_fail(src, "it stopped sending mid-stream: nothing for %s (--store-timeout)", d);
            else
                src_fail(src, "no answer within %s (--store-timeout)", d);
        } else
            src_fail(src, "%s: %s", rpc_code_name(code), without_addr(message, src->addr.addr));
    } else if (src->state == S_WAIT_HEADER) {
        src_fail(src, "it ended its stream without a header");
    }
    try_head(s);
    produce(s);
    maybe_free(s);
}

static const struct rpc_call_cbs src_cbs = {
    .on_message = src_message,
    .on_done = src_done,
};

/* How long a store may keep the merge waiting: --store-timeout, a quarter of it for the clock
 * probe (a slow store is then only not measured, and does not cost the caller twice). */
static int64_t store_timeout(const struct hub_snap *s)
{
    int64_t t = s->h->cfg.store_timeout_ns;

    return s->is_probe ? t / 4 : t;
}

/* How often the store timeouts are checked: a tenth of the timeout, at most a second. */
static uint64_t tick_ms(const struct hub_snap *s)
{
    int64_t ms = store_timeout(s) / 10 / 1000000;

    return ms < 10 ? 10 : ms > 1000 ? 1000 : (uint64_t)ms;
}

/* Stores silent for --store-timeout while the snapshot waits for them are left out. */
static void timer_cb(uv_timer_t *t)
{
    struct hub_snap *s = t->data;
    int64_t now = nr_now_ns();

    for (size_t i = 0; i < s->n; i++) {
        struct hub_src *src = &s->srcs[i];
        bool waiting = src->state == S_WAIT_HEADER || src->blocked;
        if (waiting && src->call && src->waiting_since &&
            now - src->waiting_since > store_timeout(s)) {
            src->timed_out = true;
            rpc_call_cancel(src->call);
        }
    }
}

/* ---- the file -------------------------------------------------------------------------------- */

/* What the file's clock is, for the SHB comment: "; clock of node-1: node-2 -3.012345 ms ±
 * 0.000021 ms (412 packets), node-3 not measured", or "; clocks raw". Returns the length. */
static size_t clock_comment(const struct hub_snap *s, char *buf, size_t len)
{
    size_t o;

    if (!s->offsets)
        return (size_t)snprintf(buf, len, s->n > 1 ? "; clocks raw" : "");
    o = (size_t)snprintf(buf, len, "; clock of %s:", src_node(&s->srcs[s->ref]));
    for (size_t i = 0; i < s->n && o < len; i++) {
        const struct hub_clock_offset *c = &s->offsets[i];
        if (i == s->ref)
            continue;
        if (c->known)
            o +=
                (size_t)snprintf(buf + o, len - o, "%s %s %+.6f ms \xc2\xb1 %.6f ms (%llu packets)",
                                 o > 0 && buf[o - 1] != ':' ? "," : "", src_node(&s->srcs[i]),
                                 (double)c->offset_ns / 1e6, (double)c->uncertainty_ns / 1e6,
                                 (unsigned long long)c->samples);
        else
            o += (size_t)snprintf(buf + o, len - o, "%s %s not measured",
                                  buf[o - 1] != ':' ? "," : "", src_node(&s->srcs[i]));
    }
    return o < len ? o : len - 1;
}

/* The largest snaplen of the window's interfaces: every IDB of the file gets it (a packet's
 * captured length is within its own interface's, so within this), as libpcap-based readers
 * refuse a file whose interfaces differ in it (tcpdump: "an interface has a snapshot length
 * ... different from ... the first interface") and nodes, `tls` and --snaplen can differ. */
static uint32_t window_snaplen(const struct hub_snap *s)
{
    uint32_t snaplen = 0;

    for (size_t i = 0; i < s->n; i++) {
        const Netreel__V1__WindowHeader *hd = s->srcs[i].header ? s->srcs[i].header->header : NULL;
        for (size_t k = 0; hd && k < hd->n_interfaces; k++)
            if (hd->interfaces[k]->snaplen > snaplen)
                snaplen = hd->interfaces[k]->snaplen;
    }
    return snaplen ? snaplen : PCAPNG_MAX_SNAPLEN;
}

static int head_pcapng(struct hub_snap *s, char *err, size_t errlen)
{
    char comment[2048], from[40], to[40];
    size_t o;
    uint32_t base = 0, snaplen = window_snaplen(s);
    int rc;

    if (s->since > 0)
        nr_format_time(s->since, 9, from, sizeof(from));
    else
        snprintf(from, sizeof(from), "the oldest retained");
    nr_format_time(s->until, 9, to, sizeof(to));
    o = (size_t)snprintf(comment, sizeof(comment), "netreel snapshot %s .. %s; stores:", from, to);
    for (size_t i = 0; i < s->n && o < sizeof(comment); i++) {
        const struct hub_src *src = &s->srcs[i];
        const char *node = src_node(src);
        o += (size_t)snprintf(comment + o, sizeof(comment) - o, " %s (%s)%s", node[0] ? node : "?",
                              src->addr.addr, src->state == S_FAILED ? " missing" : "");
    }
    if (o < sizeof(comment))
        o += clock_comment(s, comment + o, sizeof(comment) - o);
    rc = pcapng_shb_append(&s->out, comment, NULL, NULL, "netreel-hub");
    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        struct hub_src *src = &s->srcs[i];
        const Netreel__V1__WindowHeader *hd;
        if (!src->header)
            continue;
        hd = src->header->header;
        src->base = base;
        for (size_t k = 0; rc == 0 && k < hd->n_interfaces; k++) {
            const Netreel__V1__Interface *in = hd->interfaces[k];
            char name[512];
            snprintf(name, sizeof(name), "%s/%s", in->node && in->node[0] ? in->node : hd->node,
                     in->name);
            rc =
                pcapng_idb_append(&s->out, (uint16_t)in->link_type, snaplen, name, in->description);
            base++;
        }
    }
    /* Pod names: every store's, 64 to a block. */
    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        const Netreel__V1__WindowHeader *hd = s->srcs[i].header ? s->srcs[i].header->header : NULL;
        struct pcapng_name names[64];
        char text[64][512];
        size_t k = 0;
        for (size_t p = 0; hd && rc == 0 && p < hd->n_pods; p++) {
            const Netreel__V1__PodName *pn = hd->pods[p];
            if (pn->ip.len != 4 && pn->ip.len != 16)
                continue;
            names[k].family = pn->ip.len == 4 ? 4 : 6;
            memset(names[k].addr, 0, 16);
            memcpy(names[k].addr, pn->ip.data, pn->ip.len);
            snprintf(text[k], sizeof(text[k]), "%s/%s", pn->namespace_, pn->name);
            names[k].name = text[k];
            if (++k == 64) {
                rc = pcapng_nrb_append(&s->out, names, k);
                k = 0;
            }
        }
        /* After the loop, not at its last name: that one may have been skipped. */
        if (rc == 0 && k > 0)
            rc = pcapng_nrb_append(&s->out, names, k);
    }
    if (rc != 0)
        snprintf(err, errlen, "cannot write the file's head: %s", strerror(-rc));
    return rc;
}

static int head_pcap(struct hub_snap *s, char *err, size_t errlen)
{
    int link = -1;
    uint32_t base = 0;

    for (size_t i = 0; i < s->n; i++) {
        struct hub_src *src = &s->srcs[i];
        if (!src->header)
            continue;
        src->base = base;
        for (size_t k = 0; k < src->header->header->n_interfaces; k++, base++) {
            const Netreel__V1__Interface *in = src->header->header->interfaces[k];
            if (link >= 0 && (uint32_t)link != in->link_type) {
                snprintf(err, errlen,
                         "--format pcap holds one link type, this window has %d and %u "
                         "(interface %s/%s): use pcapng",
                         link, in->link_type, in->node, in->name);
                return NR_EPARSE;
            }
            link = (int)in->link_type;
        }
    }
    s->pcap_link_type = (uint16_t)(link < 0 ? 1 : link);
    return pcap_file_header_append(&s->out, s->pcap_link_type, window_snaplen(s));
}

/* The sightings stage, told what each output interface is (the file's head set the bases). */
static int sightings_new(struct hub_snap *s)
{
    uint32_t n = 0;

    for (size_t i = 0; i < s->n; i++)
        if (s->srcs[i].header)
            n = s->srcs[i].base + (uint32_t)s->srcs[i].header->header->n_interfaces;
    s->sg = hub_sightings_new(s->sightings, n, s->pcap);
    if (!s->sg || (s->is_probe && !(s->clock = hub_clock_new(s->n))))
        return -ENOMEM;
    hub_sightings_clock(s->sg, s->clock);
    for (size_t i = 0; i < s->n; i++) {
        const Netreel__V1__WindowHeader *hd = s->srcs[i].header ? s->srcs[i].header->header : NULL;
        for (size_t k = 0; hd && k < hd->n_interfaces; k++) {
            const Netreel__V1__Interface *in = hd->interfaces[k];
            bool pod = in->description && strstr(in->description, "netreel.role=pod") != NULL;
            hub_sightings_iface(s->sg, s->srcs[i].base + (uint32_t)k, (uint16_t)in->link_type, pod,
                                (uint32_t)i);
        }
    }
    return 0;
}

/* Every store has answered with its header (or failed): write the file's head. */
static void try_head(struct hub_snap *s)
{
    char err[512];
    int rc;

    if (s->head_sent || s->resolving || s->probe || s->waiting_headers > 0 || s->finished)
        return;
    if (s->refused[0]) {
        finish(s, RPC_INVALID_ARGUMENT, "%s", s->refused);
        return;
    }
    if (s->is_probe) { /* no file: the interfaces' bases are all it needs */
        uint32_t base = 0;
        for (size_t i = 0; i < s->n; i++) {
            s->srcs[i].base = base;
            if (s->srcs[i].header)
                base += (uint32_t)s->srcs[i].header->header->n_interfaces;
        }
        rc = 0;
    } else {
        rc = s->pcap ? head_pcap(s, err, sizeof(err)) : head_pcapng(s, err, sizeof(err));
    }
    if (rc != 0) {
        finish(s, rc == NR_EPARSE ? RPC_FAILED_PRECONDITION : RPC_INTERNAL, "%s", err);
        return;
    }
    if (sightings_new(s) != 0) {
        finish(s, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    s->head_sent = true;
}

static int trailer(struct hub_snap *s)
{
    int rc = 0;

    for (size_t i = 0; !s->pcap && rc == 0 && i < s->n; i++) {
        const Netreel__V1__StoreSummary *sum =
            s->srcs[i].summary ? s->srcs[i].summary->summary : NULL;
        for (size_t k = 0; sum && rc == 0 && k < sum->n_interface_stats; k++) {
            const Netreel__V1__InterfaceStats *is = sum->interface_stats[k];
            struct pcapng_isb isb = {
                .ifid = s->srcs[i].base + is->interface_id,
                .ts_ns = is->end_ns > 0 ? is->end_ns : 0,
                .start_ns = is->start_ns > 0 ? is->start_ns : 0,
                .end_ns = is->end_ns > 0 ? is->end_ns : 0,
                .ifrecv = is->received,
                .ifdrop = is->dropped,
                .osdrop = is->capture_dropped,
            };
            if (is->interface_id < s->srcs[i].header->header->n_interfaces)
                rc = pcapng_isb_append(&s->out, &isb);
        }
    }
    return rc;
}

static void send_summary(struct hub_snap *s)
{
    Netreel__V1__SnapshotSummary sum = NETREEL__V1__SNAPSHOT_SUMMARY__INIT;
    Netreel__V1__StoreResult *res = calloc(s->n + 1, sizeof(*res));
    Netreel__V1__StoreResult **resp = calloc(s->n + 1, sizeof(*resp));
    size_t missing = 0;

    if (!res || !resp || trailer(s) != 0) {
        free(res);
        free(resp);
        finish(s, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        struct hub_src *src = &s->srcs[i];
        netreel__v1__store_result__init(&res[i]);
        res[i].store = src->addr.addr;
        res[i].node = (char *)src_node(src);
        res[i].ok = src->state == S_DONE;
        res[i].error = src->state == S_DONE ? (char *)"" : src->error;
        res[i].packets = src->packets;
        res[i].reached_ns = src->reached_ns;
        if (s->offsets && s->offsets[i].known) {
            res[i].clock_known = true;
            res[i].clock_offset_ns = s->offsets[i].offset_ns;
            res[i].clock_uncertainty_ns = s->offsets[i].uncertainty_ns;
            res[i].clock_samples = s->offsets[i].samples;
        }
        resp[i] = &res[i];
        missing += src->state != S_DONE;
    }
    if (s->keys_dropped)
        NR_WARN("TLS key log lines dropped", "bytes=%llu reason=\"%s\"",
                (unsigned long long)s->keys_dropped,
                s->pcap ? "a pcap file cannot hold them" : "over the 16 MiB a snapshot keeps");
    sum.packets = s->packets;
    sum.bytes = s->file_bytes + s->out.len;
    sum.n_stores = s->n;
    sum.stores = resp;
    /* The whole retained window (since 0) starts where its first packet does. */
    sum.since_ns = s->since > 0 || !s->packets ? s->since : s->first_ts;
    sum.until_ns = s->until;
    if (s->offsets)
        sum.clock_reference = (char *)src_node(&s->srcs[s->ref]);
    if (s->sg) {
        struct hub_sighting_stats st;
        hub_sightings_stats(s->sg, &st);
        sum.copies = st.copies;
    }
    if (send_out(s, &sum) == 0) {
        s->h->snapshots_total++;
        s->h->packets_total += s->packets;
        s->h->bytes_total += sum.bytes;
        if (missing)
            s->h->snapshots_partial++;
        NR_INFO(
            "snapshot served",
            "stores=%zu missing=%zu packets=%llu copies=%llu bytes=%llu ms=%lld merge_waits=%llu",
            s->n, missing, (unsigned long long)s->packets, (unsigned long long)sum.copies,
            (unsigned long long)sum.bytes, (long long)((nr_now_ns() - s->started_ns) / 1000000),
            (unsigned long long)s->waits);
        finish(s, RPC_OK, NULL);
    }
    free(res);
    free(resp);
}

static void turn_cb(uv_timer_t *t);

/* Writes the next DSB of the stores' key log lines (at most PCAPNG_DSB_MAX_SECRETS of whole
 * lines) into the file. Returns 0 or a negative errno. */
static int keys_out(struct hub_snap *s)
{
    size_t start = s->keys_pos, off = s->keys_pos, len;
    const uint8_t *line;
    int rc;

    while (pcapng_keylog_next(s->keys.data, s->keys.len, &off, &line, &len) == 1) {
        if (off - start > PCAPNG_DSB_MAX_SECRETS) {
            off -= len;
            break;
        }
    }
    rc = pcapng_dsb_append(&s->out, PCAPNG_DSB_TLS_KEYLOG, s->keys.data + start, off - start);
    if (rc != 0)
        return rc;
    s->keys_pos = off;
    if (s->keys_pos == s->keys.len) {
        NR_INFO("TLS key log lines written", "bytes=%zu", s->keys.len);
        nr_buf_free(&s->keys);
        s->keys_pos = 0;
    }
    return 0;
}

/* Asks the cache for what the next turn reads of the store it takes: its packet's bytes (hashed
 * by the sightings stage) and the block after it (decoded next). */
static void prefetch_top(const struct hub_snap *s)
{
    void *p;
    const struct hub_src *top;

    if (!pcapng_merge_peek(&s->heap, NULL, &p))
        return;
    top = p;
    __builtin_prefetch(top->epb.data);
    if (top->pos < top->blk_len)
        __builtin_prefetch(top->blk + top->pos);
    if (top->key_state == KEY_SET)
        hub_sightings_prefetch(s->sg, top->key);
}

/* Merges while the caller can take more and every streaming store has a packet ready. */
static void produce_run(struct hub_snap *s)
{
    size_t budget = TURN_BUDGET;

    while (s->head_sent && !s->finished && (s->is_probe || rpc_call_writable(s->call))) {
        struct hub_src *src;
        int64_t ts;
        int rc;

        if (s->blocked > 0) { /* a store's next packet may be the oldest: wait for it */
            s->waits++;
            send_out(s, NULL);
            return;
        }
        if (budget == 0) {
            uv_timer_stop(&s->timer);
            uv_timer_start(&s->timer, turn_cb, 0, 1000);
            return;
        }
        if (s->keys.len > 0) {
            /* Every store's key log lines are in (each sent them before its blocks, and no
             * store is blocked): they go ahead of the first packet, where Wireshark reads them
             * before the handshakes they decrypt. */
            rc = keys_out(s);
            if (rc != 0) {
                finish(s, RPC_INTERNAL, "cannot write the TLS key log: %s", strerror(-rc));
                return;
            }
            if (s->out.len >= HUB_CHUNK_BYTES && send_out(s, NULL) != 0)
                return;
            continue;
        }
        src = pcapng_merge_pop(&s->heap, &ts);
        if (!src) {
            /* The merge is over: what the sightings stage still holds goes out, then the end. */
            rc = hub_sightings_release(s->sg, &s->out, true, HUB_CHUNK_BYTES);
            s->packets = hub_sightings_written(s->sg);
            if (rc < 0) {
                finish(s, RPC_INTERNAL, "cannot write a packet: %s", strerror(-rc));
                return;
            }
            if (rc == 0) {
                if (s->is_probe)
                    probe_done(s);
                else
                    send_summary(s);
                return;
            }
            if (send_out(s, NULL) != 0)
                return;
            continue;
        }
        if (s->taken++ == 0)
            s->first_ts = ts;
        if (s->is_probe && s->taken > HUB_PROBE_MAX_PACKETS) {
            probe_done(s); /* enough to measure with */
            return;
        }
        if (src->key_state == KEY_NOT_YET)
            rc = hub_sightings_put(s->sg, &src->epb, src->base + src->epb.ifid, ts, &s->out);
        else
            rc = hub_sightings_put_keyed(s->sg, &src->epb, src->base + src->epb.ifid, ts,
                                         src->key_state == KEY_SET ? &src->key : NULL, &s->out);
        if (rc == 0)
            rc = hub_sightings_release(s->sg, &s->out, false, HUB_CHUNK_BYTES) < 0 ? -ENOMEM : 0;
        if (rc != 0) {
            finish(s, RPC_INTERNAL, "cannot write a packet: %s", strerror(-rc));
            return;
        }
        s->packets = hub_sightings_written(s->sg);
        src->packets++;
        src->reached_ns = ts;
        budget = budget > src->epb.block_len ? budget - src->epb.block_len : 0;
        src->ready = false;
        src_next(src);
        prefetch_top(s);
        if (s->out.len >= HUB_CHUNK_BYTES && send_out(s, NULL) != 0)
            return;
    }
}

static void produce(struct hub_snap *s)
{
    if (s->producing)
        return; /* a store's message taken from within the run: the run goes on with it */
    s->producing = true;
    produce_run(s);
    s->producing = false; /* s is freed only from a close callback, never from here */
}

static void turn_cb(uv_timer_t *t)
{
    struct hub_snap *s = t->data;

    uv_timer_start(&s->timer, timer_cb, tick_ms(s), tick_ms(s));
    produce(s);
}

/* ---- the caller's call ----------------------------------------------------------------------- */

/* Calls Store.Snapshot on every resolved store. */
static void start_calls(struct hub_snap *s, const struct hub_resolved *r)
{
    Netreel__V1__SnapshotRequest req = NETREEL__V1__SNAPSHOT_REQUEST__INIT;
    struct hub_share share;
    char err[256];

    hub_budget_share(s->h->cfg.memory_budget, s->h->cfg.max_snapshots, r->n ? r->n : 1, &share);
    s->srcs = calloc(r->n + 1, sizeof(*s->srcs));
    if (!s->srcs) {
        finish(s, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    s->n = r->n;
    req.since_ns = s->since;
    req.until_ns = s->until;
    req.filter = s->filter ? s->filter : (char *)"";
    req.snaplen = s->snaplen;
    req.max_chunk_bytes = share.chunk; /* each store's next message is what it holds here */
    if (!s->is_probe) { /* the pod selection, which the stores apply (the probe reads all) */
        req.n_namespaces = s->n_namespaces;
        req.namespaces = s->namespaces;
        req.pod_regex = s->pod_regex ? s->pod_regex : (char *)"";
        req.label_selector = s->label_selector ? s->label_selector : (char *)"";
    }
    for (size_t i = 0; i < r->n; i++) {
        struct hub_src *src = &s->srcs[i];
        struct rpc_call_opts opts = {.path = "/netreel.v1.Store/Snapshot",
                                     .shape = RPC_SHAPE_SERVER_STREAM,
                                     .recv_window = share.window};
        struct rpc_channel *ch;
        src->snap = s;
        src->addr = r->addrs[i];
        src->state = S_WAIT_HEADER;
        s->waiting_headers++;
        if (r->failed[i][0]) {
            src_fail(src, "%s", r->failed[i]);
            continue;
        }
        ch = hub_stores_channel(s->h, &src->addr, err, sizeof(err));
        src->call = ch ? rpc_channel_call(ch, &opts, &src_cbs, src) : NULL;
        if (!src->call) {
            if (ch)
                hub_stores_release(s->h, ch);
            src_fail(src, "%s", ch ? "out of memory" : err);
            continue;
        }
        src->ch = ch;
        s->live_calls++;
        src->waiting_since = nr_now_ns();
        if (rpc_call_send(src->call, &req.base) != 0 || rpc_call_close_send(src->call) != 0)
            src_fail(src, "cannot send the request");
    }
    try_head(s);
    produce(s);
}

static struct hub_snap *snap_new(struct hub *h, struct rpc_call *call);

/* The probe has read what it could: the nodes' offsets against the first store that answered
 * are the snapshot's, which now starts. */
static void probe_done(struct hub_snap *p)
{
    struct hub_snap *s = p->parent;
    size_t ref = 0;

    if (s) {
        while (ref < p->n && p->srcs[ref].state != S_DONE)
            ref++;
        s->offsets = calloc(p->n + 1, sizeof(*s->offsets));
        if (s->offsets && ref < p->n) {
            hub_clock_solve(p->clock, ref, s->offsets);
            s->ref = ref;
            for (size_t i = 0; i < p->n; i++) {
                struct hub_store_clock hc = {.known = s->offsets[i].known,
                                             .offset_ns = s->offsets[i].offset_ns,
                                             .uncertainty_ns = s->offsets[i].uncertainty_ns,
                                             .samples = s->offsets[i].samples,
                                             .measured_ns = nr_now_ns()};
                snprintf(hc.reference, sizeof(hc.reference), "%s", src_node(&p->srcs[ref]));
                hub_stores_remember_clock(s->h, p->srcs[i].addr.addr, &hc);
            }
            for (size_t i = 0; i < p->n; i++)
                if (i != ref && s->offsets[i].known)
                    NR_INFO("clock offset",
                            "node=%s reference=%s offset_ns=%lld "
                            "uncertainty_ns=%lld packets=%llu",
                            src_node(&p->srcs[i]), src_node(&p->srcs[ref]),
                            (long long)s->offsets[i].offset_ns,
                            (long long)s->offsets[i].uncertainty_ns,
                            (unsigned long long)s->offsets[i].samples);
        } else if (s->offsets) {
            free(s->offsets); /* no store answered the probe: the clocks stay as they are */
            s->offsets = NULL;
        }
        s->probe = NULL;
        p->parent = NULL;
        start_calls(s, &s->stores);
    }
    finish(p, RPC_OK, NULL);
}

/* Starts the clock probe of snapshot s over the stores r: 0, or -ENOMEM (then s goes on without
 * one). */
static int probe_start(struct hub_snap *s, const struct hub_resolved *r)
{
    struct hub_snap *p;

    s->stores.n = r->n;
    s->stores.addrs = malloc(r->n * sizeof(*r->addrs));
    s->stores.failed = malloc(r->n * sizeof(*r->failed));
    p = s->stores.addrs && s->stores.failed ? snap_new(s->h, NULL) : NULL;
    if (!p)
        return -ENOMEM;
    memcpy(s->stores.addrs, r->addrs, r->n * sizeof(*r->addrs));
    memcpy(s->stores.failed, r->failed, r->n * sizeof(*r->failed));
    p->is_probe = true;
    p->parent = s;
    uv_timer_start(&p->timer, timer_cb, tick_ms(p), tick_ms(p)); /* a probe's shorter timeout */
    p->sightings = HUB_SIGHTINGS_PROBE;
    p->until = s->until;
    p->since = s->until - HUB_PROBE_NS > s->since ? s->until - HUB_PROBE_NS : s->since;
    s->probe = p;
    start_calls(p, &s->stores);
    return 0;
}

static void resolved(struct hub_resolved *r, void *arg)
{
    struct hub_snap *s = arg;

    s->resolving = false;
    if (s->over || s->finished) {
        maybe_free(s);
        return;
    }
    /* One clock for the file: with two stores or more, measured first. */
    if (!s->raw_clock && r->n > 1 && probe_start(s, r) == 0)
        return;
    start_calls(s, r);
}

/* Keeps the request's pod selection for the stores' calls. 0 or -ENOMEM. */
static int keep_selection(struct hub_snap *s, const Netreel__V1__SnapshotRequest *req)
{
    if (req->n_namespaces && !(s->namespaces = calloc(req->n_namespaces, sizeof(char *))))
        return -ENOMEM;
    for (size_t i = 0; i < req->n_namespaces; i++) {
        if (!(s->namespaces[i] = strdup(req->namespaces[i])))
            return -ENOMEM;
        s->n_namespaces = i + 1;
    }
    if (req->pod_regex && req->pod_regex[0] && !(s->pod_regex = strdup(req->pod_regex)))
        return -ENOMEM;
    if (req->label_selector && req->label_selector[0] &&
        !(s->label_selector = strdup(req->label_selector)))
        return -ENOMEM;
    return 0;
}

static void on_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    struct hub_snap *s = user;
    Netreel__V1__SnapshotRequest *req;

    if (s->resolving || s->srcs || s->probe || s->finished)
        return;
    req = (Netreel__V1__SnapshotRequest *)rpc_unpack(&netreel__v1__snapshot_request__descriptor,
                                                     msg, len);
    if (!req) {
        finish(s, RPC_INVALID_ARGUMENT, "cannot parse SnapshotRequest (%zu bytes)", len);
        return;
    }
    s->since = req->since_ns;
    s->until = req->until_ns ? req->until_ns : nr_now_ns(); /* one "now" for every store */
    s->snaplen = req->snaplen;
    s->pcap = req->format == NETREEL__V1__FORMAT__FORMAT_PCAP;
    s->sightings = req->sightings == NETREEL__V1__SIGHTINGS__SIGHTINGS_ALL ? HUB_SIGHTINGS_ALL
                                                                           : HUB_SIGHTINGS_ONE;
    s->raw_clock = req->clock == NETREEL__V1__CLOCK__CLOCK_RAW;
    if (req->format != NETREEL__V1__FORMAT__FORMAT_PCAP &&
        req->format != NETREEL__V1__FORMAT__FORMAT_PCAPNG) {
        finish(s, RPC_INVALID_ARGUMENT, "format %d is neither PCAPNG nor PCAP", req->format);
    } else if (req->sightings != NETREEL__V1__SIGHTINGS__SIGHTINGS_ONE &&
               req->sightings != NETREEL__V1__SIGHTINGS__SIGHTINGS_ALL) {
        finish(s, RPC_INVALID_ARGUMENT, "sightings %d is neither ONE nor ALL", req->sightings);
    } else if (req->clock != NETREEL__V1__CLOCK__CLOCK_ALIGNED &&
               req->clock != NETREEL__V1__CLOCK__CLOCK_RAW) {
        finish(s, RPC_INVALID_ARGUMENT, "clock %d is neither ALIGNED nor RAW", req->clock);
    } else if (s->since < 0 || s->until < s->since) {
        finish(s, RPC_INVALID_ARGUMENT, "the window is reversed: since_ns %lld, until_ns %lld",
               (long long)s->since, (long long)s->until);
    } else if (req->filter &&
               nr_pb_string_has_nul(msg, len, SNAPSHOT_REQUEST_FILTER, req->filter)) {
        finish(s, RPC_INVALID_ARGUMENT, "the filter holds a NUL byte");
    } else if (req->filter && strlen(req->filter) > HUB_MAX_FILTER) {
        finish(s, RPC_INVALID_ARGUMENT, "filter of %zu bytes: at most %u", strlen(req->filter),
               HUB_MAX_FILTER);
    } else if (req->filter && req->filter[0] && !(s->filter = strdup(req->filter))) {
        finish(s, RPC_RESOURCE_EXHAUSTED, "out of memory");
    } else if (req->n_namespaces > 256 ||
               (req->pod_regex && strlen(req->pod_regex) > HUB_MAX_FILTER) ||
               (req->label_selector && strlen(req->label_selector) > HUB_MAX_FILTER)) {
        finish(s, RPC_INVALID_ARGUMENT,
               "pod selection: at most 256 namespaces and %u bytes of "
               "regex and of label selector",
               HUB_MAX_FILTER);
    } else if (keep_selection(s, req) != 0) {
        finish(s, RPC_RESOURCE_EXHAUSTED, "out of memory");
    } else if (hub_stores_resolve(s->h, resolved, s) != 0) {
        finish(s, RPC_RESOURCE_EXHAUSTED, "out of memory");
    } else {
        s->resolving = true;
    }
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void on_writable(struct rpc_call *call, void *user)
{
    produce(user);
}

static void on_done(struct rpc_call *call, int code, const char *message, void *user)
{
    struct hub_snap *s = user;

    s->over = true;
    s->finished = true;
    s->h->snapshots_active--;
    if (s->probe) { /* the caller went while the clocks were measured: the probe is of no use */
        s->probe->parent = NULL;
        finish(s->probe, RPC_CANCELLED, NULL);
        s->probe = NULL;
    }
    if (code != RPC_OK)
        NR_INFO("snapshot ended early", "code=%s message=\"%s\" packets=%llu", rpc_code_name(code),
                message, (unsigned long long)s->packets);
    for (size_t i = 0; i < s->n; i++)
        if (s->srcs[i].call)
            rpc_call_cancel(s->srcs[i].call);
    uv_timer_stop(&s->timer);
    maybe_free(s);
}

static const struct rpc_call_cbs snap_cbs = {
    .on_message = on_message,
    .on_writable = on_writable,
    .on_done = on_done,
};

/* A snapshot for the caller's call (NULL: a probe), its timer running. */
static struct hub_snap *snap_new(struct hub *h, struct rpc_call *call)
{
    struct hub_snap *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->h = h;
    s->call = call;
    s->started_ns = nr_now_ns();
    pcapng_merge_init(&s->heap, HUB_MAX_STORES);
    nr_buf_init(&s->out, HUB_CHUNK_BYTES + PCAPNG_MAX_BLOCK + (1u << 20));
    nr_buf_init(&s->keys, HUB_KEYLOG_MAX);
    uv_timer_init(h->loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, timer_cb, tick_ms(s), tick_ms(s));
    return s;
}

int hub_snapshot_start(struct rpc_call *call, void *data)
{
    struct hub *h = data;
    struct hub_snap *s = snap_new(h, call);

    if (!s)
        return -ENOMEM;
    h->snapshots_active++;
    rpc_call_set_cbs(call, &snap_cbs, s);
    if (hub_check_token(h, call) != 0) {
        h->auth_failures++;
        finish(s, RPC_UNAUTHENTICATED, "a valid bearer token is required (--token-file)");
    } else if (h->snapshots_active > h->cfg.max_snapshots) {
        h->refused_busy++;
        finish(s, RPC_RESOURCE_EXHAUSTED, "%u snapshots are running (--max-snapshots)",
               h->cfg.max_snapshots);
    }
    return 0;
}
