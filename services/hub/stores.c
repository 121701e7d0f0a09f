/* Store lists and their channels (see stores.h). */
#include "hub/stores.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/budget.h"
#include "util/addr.h"
#include "util/hash.h"
#include "util/log.h"

struct hub_channel {
    struct hub_channel *next;
    struct hub_channel *key_next, *ch_next; /* in h->by_key, h->by_ch */
    struct rpc_channel *ch;
    unsigned users;         /* calls that hold it (hub_stores_channel .. hub_stores_release) */
    uint64_t idle_since_ms; /* when users went to 0 (uv_now) */
    char key[];             /* addr + authority, sized to them (a hub may hold thousands) */
};

/* ---- hash indexes ---- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = nr_hash_bytes(s, strlen(s));

    return h ^ h >> 29; /* the low bits pick the slot */
}

static uint64_t hash_ptr(const void *p)
{
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;

    return h ^ h >> 31;
}

/* Puts x at the head of its chains in the indexes k (by key) and c (by rpc_channel). */
static void chan_link(struct hub_channel **k, struct hub_channel **c, size_t slots,
                      struct hub_channel *x)
{
    size_t i = hash_str(x->key) & (slots - 1), j = hash_ptr(x->ch) & (slots - 1);

    x->key_next = k[i];
    k[i] = x;
    x->ch_next = c[j];
    c[j] = x;
}

/* Takes x out of the chain it is on in idx (by key when by_key, else by rpc_channel). */
static void chan_unlink(struct hub_channel **idx, size_t slots, struct hub_channel *x, bool by_key)
{
    size_t i = (by_key ? hash_str(x->key) : hash_ptr(x->ch)) & (slots - 1);

    for (struct hub_channel **pp = &idx[i]; *pp; pp = by_key ? &(*pp)->key_next : &(*pp)->ch_next)
        if (*pp == x) {
            *pp = by_key ? x->key_next : x->ch_next;
            return;
        }
}

/* Grows the channel indexes to twice the channels (a power of two); 0 or -ENOMEM (then the
 * old ones stay). */
static int chan_index_fit(struct hub *h)
{
    size_t slots = h->chan_slots ? h->chan_slots : 64;
    struct hub_channel **k, **c;

    if (h->n_channels * 2 < h->chan_slots)
        return 0;
    while (slots <= h->n_channels * 2)
        slots *= 2;
    k = calloc(slots, sizeof(*k));
    c = calloc(slots, sizeof(*c));
    if (!k || !c) {
        free(k);
        free(c);
        return h->by_key ? 0 : -ENOMEM;
    }
    for (struct hub_channel *x = h->channels; x; x = x->next)
        chan_link(k, c, slots, x);
    free(h->by_key);
    free(h->by_ch);
    h->by_key = k;
    h->by_ch = c;
    h->chan_slots = slots;
    return 0;
}

/* Connections to one store beyond --max-snapshots, for Status calls; past that, calls share. */
#define SPARE_CHANNELS 4u

/* One entry of --stores: a host:port or dns:NAME:PORT. */
struct entry {
    bool dns;
    char name[256];
    uint16_t port;
    char text[300];
};

static int parse_entry(const char *s, size_t len, struct entry *e, char *err, size_t errlen)
{
    char buf[300], why[256];

    memset(e, 0, sizeof(*e));
    if (len == 0 || len >= sizeof(buf)) {
        snprintf(err, errlen, "--stores: an empty or too long entry");
        return -EINVAL;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    snprintf(e->text, sizeof(e->text), "%s", buf);
    e->dns = strncmp(buf, "dns:", 4) == 0;
    if (nr_addr_split(buf + (e->dns ? 4 : 0), e->name, sizeof(e->name), &e->port, why,
                      sizeof(why)) != 0 ||
        !e->name[0] || e->port == 0) {
        snprintf(err, errlen, "--stores: \"%s\": want %s", buf,
                 e->dns ? "dns:NAME:PORT" : "host:port (IPv6 in brackets), port 1-65535");
        return -EINVAL;
    }
    return 0;
}

/* Calls fn for each entry of the spec; stops at the first error. */
static int each_entry(const char *spec, int (*fn)(const struct entry *e, void *arg), void *arg,
                      char *err, size_t errlen)
{
    const char *p = spec;

    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        struct entry e;
        int rc;
        while (len && (*p == ' ')) {
            p++;
            len--;
        }
        while (len && p[len - 1] == ' ')
            len--;
        if (len) {
            rc = parse_entry(p, len, &e, err, errlen);
            if (rc == 0 && fn)
                rc = fn(&e, arg);
            if (rc != 0)
                return rc;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

int hub_stores_check(const char *spec, char *err, size_t errlen)
{
    if (!spec || !spec[0]) {
        snprintf(err, errlen, "--stores: no store given");
        return -EINVAL;
    }
    return each_entry(spec, NULL, NULL, err, errlen);
}

/* ---- resolution ---------------------------------------------------------------------------- */

struct resolve {
    struct hub *h;
    hub_resolve_cb cb;
    void *arg;
    struct entry *entries;
    size_t n_entries, cap_entries;
    size_t pending;
    struct hub_resolved out;
    size_t cap_out;
    uv_timer_t later; /* answers without DNS from the loop, never inside the call */
};

struct lookup {
    uv_getaddrinfo_t req;
    struct resolve *r;
    size_t entry;
};

static int add_entry(const struct entry *e, void *arg)
{
    struct resolve *r = arg;

    if (r->n_entries == r->cap_entries) {
        size_t cap = r->cap_entries ? r->cap_entries * 2 : 8;
        struct entry *p = realloc(r->entries, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        r->entries = p;
        r->cap_entries = cap;
    }
    r->entries[r->n_entries++] = *e;
    return 0;
}

static int add_out(struct resolve *r, const char *addr, const char *authority, const char *fail)
{
    if (r->out.n == HUB_MAX_STORES)
        return -E2BIG;
    if (r->out.n == r->cap_out) {
        size_t cap = r->cap_out ? r->cap_out * 2 : 8;
        struct hub_store_addr *a = realloc(r->out.addrs, cap * sizeof(*a));
        char(*f)[256];
        if (!a)
            return -ENOMEM;
        r->out.addrs = a;
        f = realloc(r->out.failed, cap * sizeof(*f));
        if (!f)
            return -ENOMEM;
        r->out.failed = f;
        r->cap_out = cap;
    }
    snprintf(r->out.addrs[r->out.n].addr, sizeof(r->out.addrs[0].addr), "%s", addr);
    snprintf(r->out.addrs[r->out.n].authority, sizeof(r->out.addrs[0].authority), "%s", authority);
    snprintf(r->out.failed[r->out.n], sizeof(r->out.failed[0]), "%s", fail ? fail : "");
    r->out.n++;
    return 0;
}

static void resolve_free_cb(uv_handle_t *t)
{
    struct resolve *r = t->data;

    free(r->entries);
    free(r);
}

static void finish(struct resolve *r)
{
    struct hub_resolved out = r->out;

    memset(&r->out, 0, sizeof(r->out));
    r->cb(&out, r->arg);
    hub_resolved_free(&out);
    uv_close((uv_handle_t *)&r->later, resolve_free_cb);
}

static void later_cb(uv_timer_t *t)
{
    finish(t->data);
}

static void looked_up(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct lookup *l = (struct lookup *)req;
    struct resolve *r = l->r;
    const struct entry *e = &r->entries[l->entry];
    char authority[300];
    bool any = false;

    snprintf(authority, sizeof(authority), "%s:%u", e->name, e->port);
    for (struct addrinfo *ai = status == 0 ? res : NULL; ai; ai = ai->ai_next) {
        char ip[INET6_ADDRSTRLEN], addr[300];
        const void *src = ai->ai_family == AF_INET
                              ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                              : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        inet_ntop(ai->ai_family, src, ip, sizeof(ip));
        snprintf(addr, sizeof(addr), ai->ai_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, e->port);
        /* getaddrinfo gives one record per socket type: keep each address once. */
        bool seen = false;
        for (size_t i = 0; i < r->out.n; i++)
            seen |= strcmp(r->out.addrs[i].addr, addr) == 0;
        if (!seen && add_out(r, addr, authority, NULL) == 0)
            any = true;
    }
    if (!any) {
        char why[256];
        snprintf(why, sizeof(why), "%s does not resolve: %s", e->name,
                 status ? uv_strerror(status) : "no address");
        add_out(r, e->text, authority, why);
    }
    if (res)
        uv_freeaddrinfo(res);
    free(l);
    if (--r->pending == 0)
        finish(r);
}

int hub_stores_resolve(struct hub *h, hub_resolve_cb cb, void *arg)
{
    struct resolve *r = calloc(1, sizeof(*r));
    char err[256];

    if (!r)
        return -ENOMEM;
    r->h = h;
    r->cb = cb;
    r->arg = arg;
    uv_timer_init(h->loop, &r->later);
    r->later.data = r;
    if (each_entry(h->cfg.stores, add_entry, r, err, sizeof(err)) != 0) {
        uv_close((uv_handle_t *)&r->later, resolve_free_cb);
        return -ENOMEM;
    }
    for (size_t i = 0; i < r->n_entries; i++) {
        const struct entry *e = &r->entries[i];
        if (!e->dns) {
            add_out(r, e->text, e->text, NULL);
            continue;
        }
        struct lookup *l = calloc(1, sizeof(*l));
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        if (!l) {
            add_out(r, e->text, e->text, "out of memory");
            continue;
        }
        l->r = r;
        l->entry = i;
        r->pending++;
        if (uv_getaddrinfo(h->loop, &l->req, looked_up, e->name, NULL, &hints) != 0) {
            r->pending--;
            free(l);
            add_out(r, e->text, e->text, "cannot start a DNS lookup");
        }
    }
    if (r->pending == 0)
        uv_timer_start(&r->later, later_cb, 0, 0);
    return 0;
}

void hub_resolved_free(struct hub_resolved *r)
{
    free(r->addrs);
    free(r->failed);
    memset(r, 0, sizeof(*r));
}

/* ---- channels ------------------------------------------------------------------------------- */

/* hub_stores_close's wait: the channels it closes and those the sweep is closing. */
struct closing {
    size_t left;
    void (*cb)(void *arg);
    void *arg;
};

static void one_closed(void *arg)
{
    struct closing *cl = arg;

    if (--cl->left == 0) {
        if (cl->cb)
            cl->cb(cl->arg);
        free(cl);
    }
}

static void swept_closed(void *arg)
{
    struct hub *h = arg;

    h->chans_closing--;
    if (h->closing_all)
        one_closed(h->closing_all);
    else if (h->chans_closing == 0)
        malloc_trim(0); /* the heap they were in, back to the system: free() keeps it */
}

/* How long a store's idle connection waits before it is closed: the last one used, for
 * --store-idle-timeout (a TLS handshake with each of a thousand stores costs the next snapshot a
 * second or more); the others a burst of snapshots left, an eighth of that, at most 30 s. */
static uint64_t spare_idle_ms(const struct hub *h)
{
    uint64_t t = h->cfg.store_idle_ms / 8;

    return t < 30000 ? t : 30000;
}

/* True when another connection to the same store is in use or was used after c. */
static bool spare(const struct hub *h, const struct hub_channel *c)
{
    for (const struct hub_channel *x = h->by_key[hash_str(c->key) & (h->chan_slots - 1)]; x;
         x = x->key_next)
        if (x != c && strcmp(x->key, c->key) == 0 &&
            (x->users > 0 || x->idle_since_ms > c->idle_since_ms ||
             (x->idle_since_ms == c->idle_since_ms && (uintptr_t)x > (uintptr_t)c)))
            return true;
    return false;
}

/* Closes the idle channels that waited long enough (spare_idle_ms). A burst of snapshots leaves
 * a connection per store per snapshot (15-18 KiB of the hub's memory each, 45 with TLS, and the
 * stores'), and with dns: entries the nodes that left would stay forever. */
static void sweep_cb(uv_timer_t *t)
{
    struct hub *h = t->data;
    uint64_t now = uv_now(h->loop);
    size_t closed = 0;

    h->chans_closing++; /* one trim once all of them are closed, not one for each */
    for (struct hub_channel **pp = &h->channels; *pp;) {
        struct hub_channel *c = *pp;
        uint64_t idle = now - c->idle_since_ms;
        if (c->users > 0 || idle < spare_idle_ms(h) ||
            (idle < h->cfg.store_idle_ms && !spare(h, c))) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        chan_unlink(h->by_key, h->chan_slots, c, true);
        chan_unlink(h->by_ch, h->chan_slots, c, false);
        h->n_channels--;
        h->chans_closing++;
        rpc_channel_close(c->ch, swept_closed, h);
        free(c);
        closed++;
    }
    swept_closed(h);
    if (closed)
        NR_DEBUG("closed idle store connections", "closed=%zu kept=%zu", closed, h->n_channels);
    if (!h->channels)
        uv_timer_stop(&h->sweep);
}

/* Runs the sweep while there are channels: often enough that one goes within a quarter of its
 * wait more. */
static void sweep_arm(struct hub *h)
{
    uint64_t every = spare_idle_ms(h) / 4;

    if (!h->cfg.store_idle_ms)
        return;
    if (!h->sweep_ready) {
        uv_timer_init(h->loop, &h->sweep);
        h->sweep.data = h;
        uv_unref((uv_handle_t *)&h->sweep); /* never what keeps the hub running */
        h->sweep_ready = true;
    }
    if (!uv_is_active((uv_handle_t *)&h->sweep)) {
        every = every < 25 ? 25 : every > 5000 ? 5000 : every;
        uv_timer_start(&h->sweep, sweep_cb, every, every);
    }
}

void hub_stores_count(const struct hub *h, size_t *in_use, size_t *idle)
{
    *in_use = *idle = 0;
    for (const struct hub_channel *c = h->channels; c; c = c->next)
        (*(c->users ? in_use : idle))++;
}

struct rpc_channel *hub_stores_channel(struct hub *h, const char *addr, const char *authority,
                                       char *err, size_t errlen)
{
    struct rpc_channel_config cfg;
    struct hub_channel *c;
    char key[620];

    struct hub_channel *least = NULL;
    unsigned n = 0;

    /* A call paused by the merge holds its connection's window (up to conn_window) until the
     * merge takes its messages: on a connection it shares, every other call starves meanwhile —
     * two snapshots waiting for a slow store would leave this one out of every other snapshot
     * after --store-timeout. So each call gets a connection no other call is using; idle ones
     * are kept for the next calls. */
    snprintf(key, sizeof(key), "%s|%s", addr, authority);
    for (c = h->by_key ? h->by_key[hash_str(key) & (h->chan_slots - 1)] : NULL; c;
         c = c->key_next) {
        if (strcmp(c->key, key) != 0)
            continue;
        if (c->users == 0) {
            c->users++;
            return c->ch;
        }
        if (!least || c->users < least->users)
            least = c;
        n++;
    }
    if (least && n >= h->cfg.max_snapshots + SPARE_CHANNELS) {
        least->users++; /* a flood of Status calls: bounded connections, shared */
        return least->ch;
    }
    c = calloc(1, sizeof(*c) + strlen(key) + 1);
    if (!c || chan_index_fit(h) != 0) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rpc_channel_config_init(&cfg);
    cfg.target = addr;
    cfg.authority = authority;
    cfg.tls_ca = h->cfg.store_tls_ca;
    cfg.tls_cert = h->cfg.store_tls_cert;
    cfg.tls_key = h->cfg.store_tls_key;
    cfg.backoff_initial_ms = 200;
    cfg.backoff_max_ms = 5000;
    /* A paused store holds at most its window: a snapshot widens each stream's from the
     * least to its share of the memory budget (budget.h); the merge holds one message per
     * store and waits for the slowest. */
    cfg.limits.stream_window = HUB_WINDOW_MIN;
    cfg.limits.conn_window = HUB_WINDOW_MAX;
    cfg.limits.max_recv_size = 8u << 20; /* a window's header with every pod of the node */
    cfg.limits.max_kept = HUB_CHUNK_MAX; /* a message buffer kept for reuse, per connection */
    cfg.limits.header_table = 0; /* a few headers a call: no HPACK entries kept per connection */
    c->ch = rpc_channel_new(h->loop, &cfg, err, errlen);
    if (!c->ch) {
        free(c);
        return NULL;
    }
    memcpy(c->key, key, strlen(key) + 1);
    c->users = 1;
    c->next = h->channels;
    h->channels = c;
    h->n_channels++;
    chan_link(h->by_key, h->by_ch, h->chan_slots, c);
    sweep_arm(h);
    return c->ch;
}

void hub_stores_release(struct hub *h, struct rpc_channel *ch)
{
    if (!h->by_ch)
        return;
    for (struct hub_channel *c = h->by_ch[hash_ptr(ch) & (h->chan_slots - 1)]; c; c = c->ch_next) {
        if (c->ch == ch) {
            if (c->users > 0 && --c->users == 0)
                c->idle_since_ms = uv_now(h->loop);
            return;
        }
    }
}

/* Sized to its strings: a hub remembers two names per store it may call (8192), so fixed arrays
 * would cost it 7 MiB. */
struct hub_node_name {
    struct hub_node_name *next;
    struct hub_node_name *addr_next; /* in h->by_addr */
    char *node;
    struct hub_store_clock *clock; /* NULL until a probe measured it */
    char addr[];
};

static void name_free(struct hub_node_name *n)
{
    free(n->node);
    free(n->clock);
    free(n);
}

#define NODE_NAMES_MAX (2 * HUB_MAX_STORES) /* every store of a snapshot, and as many gone */
#define NODE_NAME_MAX  253                  /* a store names its node; Kubernetes' longest */

static void names_forget(struct hub *h)
{
    struct hub_node_name *n;

    while ((n = h->node_names)) {
        h->node_names = n->next;
        name_free(n);
    }
    h->n_node_names = 0;
    free(h->by_addr);
    h->by_addr = NULL;
    h->name_slots = 0;
}

static struct hub_node_name *name_find(const struct hub *h, const char *addr)
{
    if (!h->by_addr)
        return NULL;
    for (struct hub_node_name *n = h->by_addr[hash_str(addr) & (h->name_slots - 1)]; n;
         n = n->addr_next)
        if (strcmp(n->addr, addr) == 0)
            return n;
    return NULL;
}

void hub_stores_remember(struct hub *h, const char *addr, const char *node)
{
    struct hub_node_name *n;

    if (!node || !node[0])
        return;
    n = name_find(h, addr);
    if (n) {
        if (strncmp(n->node, node, NODE_NAME_MAX) != 0) {
            char *d = strndup(node, NODE_NAME_MAX);
            if (!d)
                return; /* the name it had stays */
            free(n->node);
            n->node = d;
        }
        return;
    }
    if (h->n_node_names >= NODE_NAMES_MAX) /* addresses come and go: start over, bounded */
        names_forget(h);
    if (!h->by_addr) { /* sized for the most names at once */
        h->by_addr = calloc(2 * NODE_NAMES_MAX, sizeof(*h->by_addr));
        if (!h->by_addr)
            return;
        h->name_slots = 2 * NODE_NAMES_MAX;
    }
    size_t alen = strlen(addr) + 1;
    n = calloc(1, sizeof(*n) + alen);
    if (!n)
        return;
    memcpy(n->addr, addr, alen);
    if (!(n->node = strndup(node, NODE_NAME_MAX))) {
        free(n);
        return;
    }
    n->next = h->node_names;
    h->node_names = n;
    size_t i = hash_str(n->addr) & (h->name_slots - 1);
    n->addr_next = h->by_addr[i];
    h->by_addr[i] = n;
    h->n_node_names++;
}

const char *hub_stores_node(const struct hub *h, const char *addr)
{
    const struct hub_node_name *n = name_find(h, addr);

    return n ? n->node : NULL;
}

void hub_stores_remember_clock(struct hub *h, const char *addr, const struct hub_store_clock *c)
{
    struct hub_node_name *n = name_find(h, addr);

    if (n && !n->clock)
        n->clock = malloc(sizeof(*n->clock));
    if (n && n->clock)
        *n->clock = *c;
}

const struct hub_store_clock *hub_stores_clock(const struct hub *h, const char *addr)
{
    const struct hub_node_name *n = name_find(h, addr);

    return n ? n->clock : NULL;
}

void hub_stores_close(struct hub *h, void (*cb)(void *arg), void *arg)
{
    struct closing *cl = calloc(1, sizeof(*cl));
    struct hub_channel *c = h->channels;

    h->channels = NULL;
    h->n_channels = 0;
    free(h->by_key);
    free(h->by_ch);
    h->by_key = h->by_ch = NULL;
    h->chan_slots = 0;
    names_forget(h);
    if (h->sweep_ready)
        uv_timer_stop(&h->sweep);
    if (!cl) {
        if (cb)
            cb(arg);
        return;
    }
    cl->cb = cb;
    cl->arg = arg;
    cl->left = 1 + h->chans_closing;
    h->closing_all = cl;
    while (c) {
        struct hub_channel *next = c->next;
        cl->left++;
        rpc_channel_close(c->ch, one_closed, cl);
        free(c);
        c = next;
    }
    one_closed(cl);
}
