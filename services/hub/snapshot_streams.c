/* A snapshot's stores' streams (snapshot_parts.h): one Store.Snapshot call per store, each held
 * one message at a time (its call paused meanwhile) so that the caller's back-pressure reaches
 * the stores; their headers, key log lines, blocks and summaries; the stores that fail or stay
 * silent past --store-timeout, left out. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/budget.h"
#include "hub/snapshot_parts.h"
#include "pcapng/keylog.h"
#include "rpc/client.h"
#include "rpc/status.h"
#include "util/error.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/prog.h"

/* Whether the merge waits for this store's next message (counted in snap->blocked). */
static void set_blocked(struct hub_src *src, bool blocked)
{
    if (src->blocked == blocked)
        return;
    src->blocked = blocked;
    if (blocked) {
        src->snap->blocked++;
        src->snap->blocked_gen++; /* a follow's watermark may move back */
        src->waiting_since = nr_now_ns();
    } else {
        src->snap->blocked--;
        src->waiting_since = 0;
    }
}

static void src_fail(struct hub_src *src, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

char hub_snap_no_addr[] = "(out of memory)";

/* The store's address, as small as it is: 0, or -ENOMEM (then addr is hub_snap_no_addr). */
static int set_addr(struct hub_src *src, const struct hub_store_addr *a)
{
    src->addr = strdup(a->addr);
    if (src->addr && strcmp(a->authority, a->addr) != 0)
        src->authority = strdup(a->authority);
    if (src->addr && (src->authority || strcmp(a->authority, a->addr) == 0))
        return 0;
    free(src->addr);
    src->addr = hub_snap_no_addr;
    return -ENOMEM;
}

const char *hub_snap_src_error(const struct hub_src *src)
{
    return src->error ? src->error : src->state == S_FAILED ? "out of memory" : "";
}

/* Follow: a store that goes away is called again (not once the caller asked for the end). */
static bool resumable(const struct hub_src *src)
{
    const struct hub_snap *s = src->snap;

    return s->follow && !s->is_probe && !s->stopping && !s->finished && !s->refused[0] &&
           !src->final;
}

static void src_fail(struct hub_src *src, const char *fmt, ...)
{
    va_list ap;
    char error[256];

    if (src->state == S_FAILED || src->state == S_RESUME)
        return;
    va_start(ap, fmt);
    vsnprintf(error, sizeof(error), fmt, ap);
    va_end(ap);
    free(src->error);
    src->error = strdup(error);   /* (NULL: hub_snap_src_error says it) */
    hub_snap_src_drop_early(src); /* a call again sends a header with them */
    if (src->state == S_WAIT_HEADER)
        src->snap->waiting_headers--;
    if (resumable(src)) {
        /* Until it is back, the merge waits for it up to --store-timeout from when it went
         * (hub_snap_follow_bound): its capture spools meanwhile. */
        src->state = S_RESUME;
        src->retry_at = nr_now_ns() + HUB_FOLLOW_RETRY_MS * 1000000LL;
        if (!src->gone_since) /* silent since it was last heard, when that is why it went */
            src->gone_since =
                src->timed_out && src->waiting_since ? src->waiting_since : nr_now_ns();
        set_blocked(src, !src->ready);
        NR_WARN("follow: a store went away; it is called again",
                "store=%s packets=%llu reason=\"%s\"", src->addr, (unsigned long long)src->packets,
                hub_snap_src_error(src));
        if (src->call)
            rpc_call_cancel(src->call);
        return;
    }
    set_blocked(src, false);
    src->state = S_FAILED;
    if (src->snap->finished) /* its calls cancelled as the snapshot ended (its caller went) */
        NR_DEBUG("store call ended with the snapshot", "store=%s packets_merged=%llu reason=\"%s\"",
                 src->addr, (unsigned long long)src->packets, hub_snap_src_error(src));
    else
        NR_WARN("store left out of a snapshot", "store=%s packets_merged=%llu reason=\"%s\"",
                src->addr, (unsigned long long)src->packets, hub_snap_src_error(src));
    if (src->call)
        rpc_call_cancel(src->call);
}

/* The packet's time on the reference clock: its node's measured offset taken off (a constant per
 * store, so each store's stream stays in order). */
static int64_t align(const struct hub_src *src, int64_t ts)
{
    const struct hub_snap *s = src->snap;
    const struct hub_clock_offset *o = s->offsets ? &s->offsets[src - s->srcs] : NULL;

    if (o && o->known)
        ts -= o->offset_ns;
    return ts < 0 ? 0 : ts;
}

static int64_t aligned_ts(const struct hub_src *src)
{
    return align(src, src->epb.ts_ns);
}

/* Follow: where a blocks message takes the store's stream (its last packet, and how many it
 * sent stamped exactly that: where a resumed call starts), walked once on arrival. */
static void note_reached(struct hub_src *src, const uint8_t *p, size_t len)
{
    size_t pos = 0, blen;
    uint32_t type;
    struct pcapng_epb epb;

    while (pos < len && pcapng_block_peek(p + pos, len - pos, &type, &blen) == 1) {
        if (pcapng_epb_decode(p + pos, blen, &epb) != 0)
            return; /* the merge finds it and fails the store */
        if (epb.ts_ns > src->raw_last) {
            src->raw_last = epb.ts_ns;
            src->raw_last_n = 1;
        } else if (epb.ts_ns == src->raw_last) {
            src->raw_last_n++;
        }
        pos += blen;
    }
    if (src->raw_last && align(src, src->raw_last) > src->newest_ns)
        src->newest_ns = align(src, src->raw_last);
}

void hub_snap_src_next(struct hub_src *src)
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
                : hub_sightings_key(s->sg, &src->epb, src->ids[src->epb.ifid], &src->key)
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
    if (src->state == S_STREAM || src->state == S_RESUME || src->state == S_REHEADER) {
        set_blocked(src, true);
        /* A message it already sent is taken now, not a loop turn later: with many stores in
         * step, each would otherwise cost a turn and a tiny chunk to the caller. */
        if (src->call)
            rpc_call_resume_recv_now(src->call);
    }
}

/* lib/rpc's messages start with the address; the summary names it already. */
static const char *without_addr(const char *message, const char *addr)
{
    size_t n = strlen(addr);

    if (strncmp(message, addr, n) == 0 && message[n] == ':' && message[n + 1] == ' ')
        return message + n + 2;
    return message;
}

/* The store's node: from this snapshot's header, else from an earlier answer at its address. */
const char *hub_snap_src_node(const struct hub_src *src)
{
    const char *n;

    if (src->header && src->header->header->node && src->header->header->node[0])
        return src->header->header->node;
    n = hub_stores_node(src->snap->h, src->addr);
    return n ? n : "";
}

/* Follow: the header of a store called again (or first heard of after the file's head): its
 * interfaces matched to the ones the file has, new ones described. */
static void rejoin(struct hub_src *src, Netreel__V1__StoreChunk *c)
{
    struct hub_snap *s = src->snap;
    bool back = src->header != NULL; /* resumed, rather than joined */
    char err[256];

    if (!s->head_sent) { /* the head is not out yet: this header goes into it */
        if (src->header)
            netreel__v1__store_chunk__free_unpacked(src->header, NULL);
        hub_snap_src_drop_early(src);
        src->header = c;
        src->n_ifaces = c->header->n_interfaces;
        src->n_ids = 0;
        src->state = S_STREAM;
        set_blocked(src, true);
        hub_snap_try_head(s);
        return;
    }
    int rc = hub_snap_file_ifaces(s, src, c->header, src->header != NULL, err, sizeof(err));
    if (rc != 0) {
        src->final = rc == NR_EPARSE;
        netreel__v1__store_chunk__free_unpacked(c, NULL);
        src_fail(src, "%s", err);
        hub_snap_produce(s);
        return;
    }
    if (src->header)
        netreel__v1__store_chunk__free_unpacked(src->header, NULL);
    src->header = c;
    hub_stores_remember(s->h, src->addr, c->header->node);
    src->state = S_STREAM;
    src->gone_since = 0;
    src->idle = false; /* what it has comes first */
    s->resumed += back;
    NR_INFO(back ? "follow: a store is back" : "follow: a store is followed",
            "store=%s since_ns=%lld", src->addr, (long long)src->raw_last);
    set_blocked(src, !src->ready);
    hub_snap_produce(s);
}

/* Takes the store's held `more`s (n of them) off it and out of the snapshot's count. */
static Netreel__V1__StoreChunk **early_take(struct hub_src *src, size_t *n)
{
    Netreel__V1__StoreChunk **early = src->early;

    *n = src->n_early;
    src->early = NULL;
    src->n_early = 0;
    src->snap->early_bytes -= src->early_bytes;
    src->early_bytes = 0;
    return early;
}

void hub_snap_src_drop_early(struct hub_src *src)
{
    size_t n;
    Netreel__V1__StoreChunk **early = early_take(src, &n);

    for (size_t i = 0; i < n; i++)
        netreel__v1__store_chunk__free_unpacked(early[i], NULL);
    free(early);
}

/* A `more` before the file's head: its interfaces continue what the store announced so far
 * (so its blocks may use them at once); held, they are described once the head is out. Takes c. */
static int hold_early(struct hub_src *src, Netreel__V1__StoreChunk *c, size_t len, char *err,
                      size_t errlen)
{
    struct hub_snap *s = src->snap;
    const Netreel__V1__WindowHeader *hd = c->more;
    Netreel__V1__StoreChunk **v;

    for (size_t k = 0; k < hd->n_interfaces; k++)
        if (hd->interfaces[k]->id != src->n_ifaces + k) {
            snprintf(err, errlen, "it sent interfaces out of order");
            return -1;
        }
    if (src->n_early >= HUB_EARLY_MORE_MAX) {
        snprintf(err, errlen,
                 "it announced new interfaces more than %d times before the file's head",
                 HUB_EARLY_MORE_MAX);
        return -1;
    }
    if (len > HUB_EARLY_MORE_BYTES - s->early_bytes) {
        snprintf(err, errlen,
                 "the stores announced more than %u MiB of new interfaces before the file's head",
                 HUB_EARLY_MORE_BYTES >> 20);
        return -1;
    }
    v = realloc(src->early, (src->n_early + 1) * sizeof(*v));
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    src->early = v;
    src->early[src->n_early++] = c;
    src->early_bytes += len;
    s->early_bytes += len;
    src->n_ifaces += hd->n_interfaces;
    return 0;
}

/* Follow: interfaces the store's captures added, continuing its own ids, into the file (mid-file
 * IDBs). Takes c; 0, or -1 with the store failed. */
static int more_apply(struct hub_src *src, Netreel__V1__StoreChunk *c, size_t len)
{
    struct hub_snap *s = src->snap;
    const Netreel__V1__WindowHeader *hd = c->more;
    char err[256];
    int rc = 0;

    if (!s->head_sent) {
        if (hold_early(src, c, len, err, sizeof(err)) == 0)
            return 0;
        rc = -1;
    } else {
        for (size_t k = 0; k < hd->n_interfaces; k++)
            if (hd->interfaces[k]->id != src->n_ids + k)
                rc = -1;
        if (rc == 0) {
            rc = hub_snap_file_ifaces(s, src, hd, false, err, sizeof(err));
            src->final = rc == NR_EPARSE;
        } else {
            snprintf(err, sizeof(err), "it sent interfaces out of order");
        }
    }
    netreel__v1__store_chunk__free_unpacked(c, NULL);
    if (rc != 0)
        src_fail(src, "%s", err);
    return rc;
}

void hub_snap_early_more(struct hub_snap *s)
{
    for (size_t i = 0; i < s->n; i++) {
        struct hub_src *src = &s->srcs[i];
        size_t n, k = 0;
        Netreel__V1__StoreChunk **early = early_take(src, &n);

        for (; k < n && src->state == S_STREAM; k++)
            more_apply(src, early[k], 0); /* (a failure ends the loop: no more S_STREAM) */
        for (; k < n; k++)                /* it failed: what it had announced goes with it */
            netreel__v1__store_chunk__free_unpacked(early[k], NULL);
        free(early);
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
        hub_snap_produce(s);
        return;
    }
    switch (c->kind_case) {
    case NETREEL__V1__STORE_CHUNK__KIND_HEADER:
        if (src->state == S_REHEADER && c->header) {
            rejoin(src, c);
            return;
        }
        if (src->state != S_WAIT_HEADER || !c->header)
            break;
        src->header = c;
        src->n_ifaces = c->header->n_interfaces;
        hub_stores_remember(s->h, src->addr, c->header->node);
        src->state = S_STREAM;
        s->waiting_headers--;
        set_blocked(src, true); /* no packet yet */
        hub_snap_try_head(s);
        return;
    case NETREEL__V1__STORE_CHUNK__KIND_MORE:
        if (!s->follow || src->state != S_STREAM || !c->more)
            break;
        more_apply(src, c, len);
        hub_snap_produce(s);
        return;
    case NETREEL__V1__STORE_CHUNK__KIND_PROGRESS:
        if (!s->follow || src->state != S_STREAM || !c->progress)
            break;
        if (c->progress->newest_ns > 0 && align(src, c->progress->newest_ns) > src->newest_ns)
            src->newest_ns = align(src, c->progress->newest_ns);
        src->idle = !c->progress->captures_away; /* else its captures' spool is to come */
        if (src->blocked)
            src->waiting_since = nr_now_ns(); /* it is alive: not cut out */
        s->blocked_gen++;                     /* the watermark may move */
        netreel__v1__store_chunk__free_unpacked(c, NULL);
        hub_snap_produce(s);
        return;
    case NETREEL__V1__STORE_CHUNK__KIND_TLS_KEYLOG:
        if (src->state != S_STREAM || (src->had_blocks && !s->follow))
            break;
        if (pcapng_keylog_validate(c->tls_keylog.data, c->tls_keylog.len, NULL, NULL, 0) != 0) {
            netreel__v1__store_chunk__free_unpacked(c, NULL);
            src_fail(src, "it sent TLS key log lines that are not valid");
            hub_snap_produce(s);
            return;
        }
        if (s->pcap)
            s->keys_dropped += c->tls_keylog.len;
        else if (!s->is_probe)
            hub_snap_keys_add(s, c->tls_keylog.data, c->tls_keylog.len);
        netreel__v1__store_chunk__free_unpacked(c, NULL);
        return;
    case NETREEL__V1__STORE_CHUNK__KIND_BLOCKS:
        if (src->state != S_STREAM || src->msg)
            break;
        src->had_blocks = true;
        if (s->follow) {
            note_reached(src, c->blocks.data, c->blocks.len);
            src->idle = false;
        }
        src->msg = c;
        src->blk = c->blocks.data;
        src->blk_len = c->blocks.len;
        src->pos = 0;
        rpc_call_pause_recv(call); /* one message per store at a time: back-pressure */
        set_blocked(src, false);
        hub_snap_src_next(src);
        hub_snap_produce(s);
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
    hub_snap_produce(s);
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
    if (code == RPC_OK && src->state == S_STREAM && resumable(src)) {
        src_fail(src, "it ended its stream"); /* a follow's store ends only when asked */
    } else if (code == RPC_OK && src->state == S_STREAM) {
        set_blocked(src, false); /* what it holds is still merged; nothing more comes */
        src->state = S_DONE;
    } else if (code != RPC_OK) {
        /* Every store gets the same request: one that calls it invalid (a filter that does not
         * compile for its link types) speaks for the caller's mistake, not for a missing store. */
        if (code == RPC_INVALID_ARGUMENT && src->state == S_WAIT_HEADER && !s->refused[0]) {
            const char *node = hub_snap_src_node(src);
            snprintf(s->refused, sizeof(s->refused), "store %s: %s", node ? node : src->addr,
                     without_addr(message, src->addr));
        }
        if (src->timed_out) {
            char d[32];
            nr_format_duration(s->h->cfg.store_timeout_ns, d, sizeof(d));
            if (src->had_blocks)
                src_fail(src, "it stopped sending mid-stream: nothing for %s (--store-timeout)", d);
            else
                src_fail(src, "no answer within %s (--store-timeout)", d);
        } else
            src_fail(src, "%s: %s", rpc_code_name(code), without_addr(message, src->addr));
    } else if (src->state == S_WAIT_HEADER || src->state == S_REHEADER) {
        src_fail(src, "it ended its stream without a header");
    }
    hub_snap_try_head(s);
    hub_snap_produce(s);
    hub_snap_maybe_free(s);
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

static void src_redial(struct hub_src *src);

/* Follow: --stores resolved again; addresses not followed yet join (from where the stream has
 * got to), called at the next tick. */
static void joined(struct hub_resolved *r, void *arg)
{
    struct hub_snap *s = arg;

    s->resolving = false;
    if (s->over || s->finished) {
        hub_snap_maybe_free(s);
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        struct hub_src *src;
        size_t k;
        if (r->failed[i][0])
            continue;
        for (k = 0; k < s->n && strcmp(s->srcs[k].addr, r->addrs[i].addr) != 0; k++)
            ;
        if (k < s->n)
            continue;
        if (s->n == s->cap) {
            NR_WARN("follow: a store joined past the most a follow takes; it is not followed",
                    "store=%s most=%zu", r->addrs[i].addr, s->cap);
            continue;
        }
        src = &s->srcs[s->n];
        src->snap = s;
        if (set_addr(src, &r->addrs[i]) != 0) { /* not followed, as if it had not joined yet */
            src->addr = NULL;
            NR_WARN("follow: a store joined but is not followed", "store=%s reason=\"%s\"",
                    r->addrs[i].addr, "out of memory");
            continue;
        }
        s->n++;
        src->state = S_RESUME;
        src->retry_at = 0;
        src->raw_last = s->out_ts;     /* from where the stream is: its packets before are late */
        src->gone_since = nr_now_ns(); /* never heard: it holds nobody back past the lateness */
        set_blocked(src, true);
        NR_INFO("follow: a store joined", "store=%s", src->addr);
    }
}

/* How often the store timeouts are checked: a tenth of the timeout, at most a second; a
 * follow's merge also looks at its watermark, which moves with the clock. */
static uint64_t tick_ms(const struct hub_snap *s)
{
    int64_t ms = store_timeout(s) / 10 / 1000000;

    if (s->follow && ms > HUB_FOLLOW_TICK_MS)
        ms = HUB_FOLLOW_TICK_MS;
    return ms < 10 ? 10 : ms > 1000 ? 1000 : (uint64_t)ms;
}

/* Stores silent for --store-timeout while the snapshot waits for them are left out (a follow's
 * are called again); once a follow's end is asked for, stores get the lateness and 2 s to end. */
static void timer_cb(uv_timer_t *t)
{
    struct hub_snap *s = t->data;
    int64_t now = nr_now_ns(), limit = store_timeout(s);

    if (s->stopping && limit > s->lateness_ns + 2000000000LL)
        limit = s->lateness_ns + 2000000000LL;
    for (size_t i = 0; i < s->n; i++) {
        struct hub_src *src = &s->srcs[i];
        bool waiting = src->state == S_WAIT_HEADER || src->state == S_REHEADER || src->blocked;
        if (waiting && src->call && src->waiting_since && now - src->waiting_since > limit) {
            src->timed_out = true;
            rpc_call_cancel(src->call);
        } else if (src->state == S_RESUME && !src->call && !src->msg && now >= src->retry_at) {
            /* (what it sent before it went is merged first: its interfaces may change) */
            src_redial(src);
        }
    }
    if (s->follow && s->head_sent && !s->stopping && !s->finished && !s->resolving &&
        now >= s->next_resolve) {
        s->next_resolve = now + HUB_FOLLOW_RESOLVE_MS * 1000000LL;
        s->resolving = hub_stores_resolve(s->h, joined, s) == 0;
    }
    if (s->follow) {
        s->blocked_gen++; /* the clock moved the watermark */
        hub_snap_produce(s);
    }
}

void hub_snap_follow_stop(struct hub_snap *s)
{
    if (!s->follow || s->stopping)
        return;
    s->stopping = true;
    s->until = nr_now_ns();
    for (size_t i = 0; i < s->n; i++) {
        struct hub_src *src = &s->srcs[i];
        if (src->call) {
            src->waiting_since = nr_now_ns();
            if (rpc_call_close_send(src->call) != 0)
                rpc_call_cancel(src->call);
        } else if (src->state == S_RESUME) {
            set_blocked(src, false);
            src->state = S_FAILED; /* its error says why it went */
        }
    }
    hub_snap_produce(s);
}

int64_t hub_snap_follow_bound(struct hub_snap *s)
{
    int64_t now = nr_now_ns(), floor = now - s->lateness_ns, bound = INT64_MAX;

    for (size_t i = 0; i < s->n; i++) {
        const struct hub_src *src = &s->srcs[i];
        int64_t at;
        if (!src->blocked)
            continue;
        if (src->gone_since)
            /* gone a while: what its capture spools is still to come */
            at = src->header && now - src->gone_since < s->h->cfg.store_timeout_ns ? src->newest_ns
                 : src->newest_ns > floor                                          ? src->newest_ns
                                                                                   : floor;
        else if (src->idle)
            at = src->newest_ns > floor ? src->newest_ns : floor;
        else
            at = src->newest_ns; /* still sending what it has: its next message is due */
        if (at < bound)
            bound = at;
    }
    return bound;
}

/* Calls Store.Snapshot on src's store with req (since and skip_at_since set by the caller).
 * 0, or -1 when the call could not be made (src_fail says why). */
static int src_call(struct hub_src *src, Netreel__V1__SnapshotRequest *req, uint32_t window)
{
    struct hub_snap *s = src->snap;
    struct rpc_call_opts opts = {.path = "/netreel.v1.Store/Snapshot",
                                 .shape = RPC_SHAPE_SERVER_STREAM,
                                 .recv_window = window};
    struct rpc_channel *ch;
    char err[256];
    int rv;

    ch = hub_stores_channel(s->h, src->addr, src->authority ? src->authority : src->addr, err,
                            sizeof(err));
    src->call = ch ? rpc_channel_call(ch, &opts, &src_cbs, src) : NULL;
    if (!src->call) {
        if (ch)
            hub_stores_release(s->h, ch);
        src_fail(src, "%s", ch ? "out of memory" : err);
        return -1;
    }
    src->ch = ch;
    s->live_calls++;
    src->waiting_since = nr_now_ns();
    /* A follow keeps its side open: closing it is how the end is asked for. */
    rv = rpc_call_send(src->call, &req->base);
    if (rv == 0 && !req->follow)
        rv = rpc_call_close_send(src->call);
    if (rv == -EPIPE)
        return 0; /* over already (its channel waits before it dials again): src_done says why */
    if (rv != 0) {
        src_fail(src, "cannot send the request: %s", strerror(-rv));
        return -1;
    }
    return 0;
}

/* The request every store of s gets, and each store's share of the budget. */
static void fill_request(struct hub_snap *s, Netreel__V1__SnapshotRequest *req,
                         struct hub_share *share)
{
    hub_budget_share(s->h->cfg.memory_budget, s->h->cfg.max_snapshots, s->n ? s->n : 1, share);
    req->since_ns = s->since;
    req->until_ns = s->follow && !s->is_probe ? 0 : s->until;
    req->follow = s->follow && !s->is_probe && !s->stopping;
    req->filter = s->filter ? s->filter : (char *)"";
    req->snaplen = s->snaplen;
    req->max_chunk_bytes = share->chunk; /* each store's next message is what it holds here */
    if (!s->is_probe) { /* the pod selection, which the stores apply (the probe reads all) */
        req->n_namespaces = s->n_namespaces;
        req->namespaces = s->namespaces;
        req->pod_regex = s->pod_regex ? s->pod_regex : (char *)"";
        req->label_selector = s->label_selector ? s->label_selector : (char *)"";
    }
}

/* Calls Store.Snapshot on every resolved store. */
void hub_snap_start_calls(struct hub_snap *s, const struct hub_resolved *r)
{
    Netreel__V1__SnapshotRequest req = NETREEL__V1__SNAPSHOT_REQUEST__INIT;
    struct hub_share share;

    s->cap = hub_snap_capacity(s, r->n);
    s->srcs = calloc(s->cap + 1, sizeof(*s->srcs));
    if (!s->srcs) {
        hub_snap_finish(s, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    s->n = r->n;
    s->next_resolve = nr_now_ns() + HUB_FOLLOW_RESOLVE_MS * 1000000LL;
    fill_request(s, &req, &share);
    for (size_t i = 0; i < r->n; i++) {
        struct hub_src *src = &s->srcs[i];
        src->snap = s;
        src->state = S_WAIT_HEADER;
        s->waiting_headers++;
        if (set_addr(src, &r->addrs[i]) != 0) {
            src_fail(src, "out of memory");
            continue;
        }
        if (r->failed[i][0]) {
            src_fail(src, "%s", r->failed[i]);
            continue;
        }
        src_call(src, &req, share.window);
    }
    hub_snap_try_head(s);
    hub_snap_produce(s);
}

/* Follow: calls again a store that went away, from where its stream got to. */
static void src_redial(struct hub_src *src)
{
    struct hub_snap *s = src->snap;
    Netreel__V1__SnapshotRequest req = NETREEL__V1__SNAPSHOT_REQUEST__INIT;
    struct hub_share share;

    fill_request(s, &req, &share);
    if (src->raw_last) {
        req.since_ns = src->raw_last;
        req.skip_at_since = src->raw_last_n;
    }
    src->state = S_REHEADER;
    free(src->error);
    src->error = NULL;
    src->timed_out = false;
    src->had_blocks = false;
    NR_INFO("follow: calling a store again", "store=%s since_ns=%lld skip=%llu", src->addr,
            (long long)req.since_ns, (unsigned long long)req.skip_at_since);
    if (src_call(src, &req, share.window) != 0)
        return;
}

/* Checks, every tick, the stores the snapshot waits for against their timeout. */
void hub_snap_watch_stores(struct hub_snap *s)
{
    uv_timer_start(&s->timer, timer_cb, tick_ms(s), tick_ms(s));
}
