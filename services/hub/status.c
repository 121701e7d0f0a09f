/* Hub.Status (see status.h). */
#include "hub/status.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/token.h"
#include "hub/stores.h"
#include "netreel/v1/hub.pb-c.h"
#include "rpc/client.h"
#include "rpc/status.h"
#include "util/log.h"
#include "util/parse.h"

struct status_one {
    struct status_req *req;
    struct hub_store_addr addr;
    struct rpc_call *call;
    struct rpc_channel *ch; /* held for the call, NULL once given back */
    bool reachable;
    char error[256];
    Netreel__V1__StoreStats *stats;
};

struct status_req {
    struct hub *h;
    struct rpc_call *call;
    struct status_one *ones;
    size_t n, left;       /* stores whose answer (or failure) has not come */
    size_t next;          /* the first store not asked yet */
    size_t in_flight;     /* Stats calls running: at most HUB_STATUS_CALLS */
    uint64_t deadline_ms; /* the whole answer's, on the loop's clock (as the calls' timeouts) */
    bool resolving, asked, replied, over;
};

static void req_free(struct status_req *r)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->ones[i].stats)
            netreel__v1__store_stats__free_unpacked(r->ones[i].stats, NULL);
    free(r->ones);
    free(r);
}

static void maybe_free(struct status_req *r)
{
    if (r->over && !r->resolving && r->left == 0)
        req_free(r);
}

static void reply(struct status_req *r)
{
    Netreel__V1__ClusterStatus out = NETREEL__V1__CLUSTER_STATUS__INIT;
    Netreel__V1__StoreStatus *st = calloc(r->n + 1, sizeof(*st));
    Netreel__V1__StoreStatus **stp = calloc(r->n + 1, sizeof(*stp));
    Netreel__V1__StoreStats *known = calloc(r->n + 1, sizeof(*known));

    if (!st || !stp || !known) {
        rpc_call_finish(r->call, RPC_RESOURCE_EXHAUSTED, "out of memory");
    } else {
        for (size_t i = 0; i < r->n; i++) {
            netreel__v1__store_status__init(&st[i]);
            st[i].store = r->ones[i].addr.addr;
            st[i].reachable = r->ones[i].reachable;
            st[i].error = r->ones[i].error;
            st[i].stats = r->ones[i].stats;
            const struct hub_store_clock *hc = hub_stores_clock(r->h, r->ones[i].addr.addr);
            if (hc && hc->known) {
                st[i].clock_known = true;
                st[i].clock_offset_ns = hc->offset_ns;
                st[i].clock_uncertainty_ns = hc->uncertainty_ns;
                st[i].clock_reference = (char *)hc->reference;
                st[i].clock_measured_ns = hc->measured_ns;
            }
            if (!st[i].stats && hub_stores_node(r->h, r->ones[i].addr.addr)) {
                /* Unreachable now: at least the node it answered for before. */
                netreel__v1__store_stats__init(&known[i]);
                known[i].node = (char *)hub_stores_node(r->h, r->ones[i].addr.addr);
                st[i].stats = &known[i];
            }
            stp[i] = &st[i];
        }
        out.n_stores = r->n;
        out.stores = stp;
        rpc_call_reply(r->call, &out.base);
        r->h->status_total++;
    }
    free(st);
    free(stp);
    free(known);
}

static void one_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    struct status_one *o = user;

    if (o->stats)
        return;
    o->stats =
        (Netreel__V1__StoreStats *)rpc_unpack(&netreel__v1__store_stats__descriptor, msg, len);
    if (!o->stats)
        snprintf(o->error, sizeof(o->error), "%s sent StoreStats that do not parse", o->addr.addr);
    else if (o->stats->node && o->stats->node[0])
        hub_stores_remember(o->req->h, o->addr.addr, o->stats->node); /* named when it is down */
}

static void ask_more(struct status_req *r);

static void one_done(struct rpc_call *call, int code, const char *message, void *user)
{
    struct status_one *o = user;
    struct status_req *r = o->req;

    o->call = NULL;
    r->in_flight--;
    if (o->ch) {
        hub_stores_release(r->h, o->ch);
        o->ch = NULL;
    }
    o->reachable = code == RPC_OK && o->stats;
    if (code != RPC_OK)
        snprintf(o->error, sizeof(o->error), "%s: %s", rpc_code_name(code), message);
    r->left--;
    ask_more(r);
    maybe_free(r);
}

static const struct rpc_call_cbs one_cbs = {.on_message = one_message, .on_done = one_done};

/* Asks one store for its Stats. false when it cannot be asked (its error set). */
static bool ask(struct status_req *r, struct status_one *o)
{
    Netreel__V1__StatsRequest sreq = NETREEL__V1__STATS_REQUEST__INIT;
    int64_t left_ms = (int64_t)(r->deadline_ms - uv_now(r->h->loop));
    struct rpc_call_opts opts = {
        .path = "/netreel.v1.Store/Stats",
        .shape = RPC_SHAPE_UNARY,
        .timeout_ms = left_ms, /* used only when > 0 */
    };
    struct rpc_channel *ch;
    char err[256];

    if (left_ms <= 0) {
        char d[32];
        nr_format_duration(r->h->cfg.store_timeout_ns, d, sizeof(d));
        snprintf(o->error, sizeof(o->error),
                 "not asked: the answer was due within %s (--store-timeout)", d);
        return false;
    }
    ch = hub_stores_channel(r->h, o->addr.addr, o->addr.authority, err, sizeof(err));
    o->call = ch ? rpc_channel_call(ch, &opts, &one_cbs, o) : NULL;
    if (!o->call) {
        if (ch)
            hub_stores_release(r->h, ch);
        snprintf(o->error, sizeof(o->error), "%s", ch ? "out of memory" : err);
        return false;
    }
    o->ch = ch;
    r->in_flight++;
    rpc_call_send(o->call, &sreq.base);
    rpc_call_close_send(o->call);
    return true;
}

/* Keeps HUB_STATUS_CALLS stores asked at once (a thousand stores are not a thousand calls in
 * flight, nor a thousand answers held at once); answers the caller once every store has answered
 * or failed. */
static void ask_more(struct status_req *r)
{
    while (!r->over && r->in_flight < HUB_STATUS_CALLS && r->next < r->n) {
        struct status_one *o = &r->ones[r->next++];
        if (o->error[0] || !ask(r, o))
            r->left--; /* failed to resolve, or cannot be asked */
    }
    if (r->left == 0 && !r->over && !r->replied) {
        r->replied = true;
        reply(r);
    }
}

static void resolved(struct hub_resolved *res, void *arg)
{
    struct status_req *r = arg;

    r->resolving = false;
    if (r->over) {
        maybe_free(r);
        return;
    }
    r->ones = calloc(res->n + 1, sizeof(*r->ones));
    if (!r->ones) {
        rpc_call_finish(r->call, RPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    r->n = r->left = res->n;
    for (size_t i = 0; i < res->n; i++) {
        struct status_one *o = &r->ones[i];
        o->req = r;
        o->addr = res->addrs[i];
        if (res->failed[i][0])
            snprintf(o->error, sizeof(o->error), "%s", res->failed[i]);
    }
    ask_more(r);
}

static void on_message(struct rpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    struct status_req *r = user;

    if (r->asked)
        return;
    r->asked = true;
    if (hub_stores_resolve(r->h, resolved, r) != 0)
        rpc_call_finish(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
    else
        r->resolving = true;
}

static void on_done(struct rpc_call *call, int code, const char *message, void *user)
{
    struct status_req *r = user;

    r->over = true;
    r->left -= r->n - r->next; /* those not asked yet never will be */
    r->next = r->n;
    for (size_t i = 0; i < r->n; i++)
        if (r->ones[i].call)
            rpc_call_cancel(r->ones[i].call);
    maybe_free(r);
}

static const struct rpc_call_cbs status_cbs = {.on_message = on_message, .on_done = on_done};

int hub_status_start(struct rpc_call *call, void *data)
{
    struct hub *h = data;
    struct status_req *r = calloc(1, sizeof(*r));

    if (!r)
        return -ENOMEM;
    r->h = h;
    r->call = call;
    r->deadline_ms = uv_now(h->loop) + (uint64_t)(h->cfg.store_timeout_ns / 1000000);
    rpc_call_set_cbs(call, &status_cbs, r);
    if (hub_check_token(h, call) != 0) {
        h->auth_failures++;
        rpc_call_finish(call, RPC_UNAUTHENTICATED,
                        "a valid bearer token is required (--token-file)");
    }
    return 0;
}
