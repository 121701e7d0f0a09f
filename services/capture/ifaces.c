/* The capture's interfaces, "any" split per device (see ifaces.h). */
#include "capture/ifaces.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/devices.h"
#include "capture/source.h"
#include "pcapng/pcapng.h"
#include "util/log.h"

#define LINKTYPE_LINUX_SLL2 276
#define SLL2_IFINDEX_OFF    4 /* sll2_if_index, big-endian, in the 20-byte header */
#define EPB_IFID_OFF        8
#define EPB_CAPLEN_OFF      20
#define EPB_DATA_OFF        28
#define MAX_UPLINKS         8
#define POD_DEVICES_MAX     1024
#define RETRY_MIN_MS        1000
#define RETRY_MAX_MS        32000
#define TABLE_SLOTS         (2 * CAPTURE_DEVICES_SEEN) /* open addressing, a power of two */
#define RETIRED_MAX         8     /* tables of earlier streams kept for their unsent batches */
#define ROLL_MIN_GAP_MS     60000 /* a new stream at most this often */
#define DEPARTED_MAX        256   /* pods gone from the set whose devices are still named */
#define DEPARTED_GRACE_MS   5000  /* ... for this long: their last packets come a batch later */

/* The table of an earlier stream, while the spool holds batches of it. */
struct retired {
    uint32_t stream, n;
    struct capture_iface *v;
};

/* A device seen on a source: the interface its packets go on now. */
struct seen {
    uint32_t source;
    int32_t ifindex; /* 0: a free slot */
    uint32_t id;
    bool stale; /* what the device is may have changed: described again at its next packet */
};

#define NO_ID UINT32_MAX

struct capture_ifaces {
    struct capture_iface v[CAPTURE_IFACES_MAX];
    uint32_t n;
    uint32_t max;     /* CAPTURE_IFACES_MAX, or less for tests (--test-interfaces-max) */
    uint32_t n_fixed; /* the first ones, made before any device (sources', tls): every stream's */
    uint32_t stream;  /* the capture stream these ids belong to (capture->stream) */
    struct retired retired[RETIRED_MAX];
    size_t n_retired;
    uint64_t rolls, last_roll_ms;
    bool is_device[CAPTURE_IFACES_MAX];
    /* Each source's own interface; NO_ID for a split one until a packet needs it (one whose
     * device cannot be told, or when there is no room for another device): a slot is kept for
     * it. */
    uint32_t own[CAPTURE_MAX_IFACES];
    bool split[CAPTURE_MAX_IFACES];
    uint32_t reserved; /* split sources whose own interface is not made yet */
    struct capture_devices *dev;
    struct seen table[TABLE_SLOTS];
    uint32_t n_seen;
    /* the pods' devices, from the last pod set: ifindex -> index in cap->pods */
    struct owner {
        int32_t ifindex;
        size_t pod;
        bool shared;
    } * owners;
    size_t n_owners;
    /* Owners of the sets before (a copy of each pod): a packet is split up to a batch time and
     * a ring block after it was captured, by when its pod (a Job that just ended) may have left
     * the set; it is still named after it for DEPARTED_GRACE_MS. */
    struct departed {
        int32_t ifindex;
        uint64_t until_ms;
        struct capture_pod pod;
    } * departed;
    size_t n_departed;
    uint64_t unsplit_packets; /* left on their source's interface: no room for another */
    uint64_t renamed;         /* devices given a new interface when their owner changed */
    uint64_t netlink_errors;
    bool warned_full;
    bool unresolved; /* a targeted pod's device is not known */
    uv_timer_t retry;
    uint64_t retry_ms;
};

static bool resolve_owners(struct capture *cap);
static void redescribe(struct capture *cap);

static uint32_t slot_of(uint32_t source, int32_t ifindex)
{
    uint32_t h = ((uint32_t)ifindex * 2654435761u) ^ (source * 40503u);

    return h & (TABLE_SLOTS - 1);
}

static struct seen *lookup(struct capture_ifaces *t, uint32_t source, int32_t ifindex)
{
    for (uint32_t i = slot_of(source, ifindex), k = 0; k < TABLE_SLOTS;
         i = (i + 1) & (TABLE_SLOTS - 1), k++) {
        struct seen *s = &t->table[i];
        if (s->ifindex == 0 || (s->ifindex == ifindex && s->source == source))
            return s;
    }
    return NULL; /* cannot happen: the table is never filled past half */
}

static int add_iface(struct capture_ifaces *t, const char *name, const char *desc,
                     uint32_t link_type, uint32_t snaplen, uint32_t *id)
{
    struct capture_iface *in;

    if (t->n + t->reserved >= t->max)
        return -ENOSPC;
    in = &t->v[t->n];
    snprintf(in->name, sizeof(in->name), "%s", name);
    in->desc = NULL;
    if (desc && desc[0] && !(in->desc = strdup(desc)))
        return -ENOMEM;
    in->link_type = link_type;
    in->snaplen = snaplen;
    *id = t->n++;
    return 0;
}

int capture_ifaces_init(struct capture *cap)
{
    struct capture_ifaces *t = calloc(1, sizeof(*t));
    bool any = false;
    char err[256];

    if (!t)
        return -ENOMEM;
    cap->ifaces = t;
    t->max = cap->cfg.ifaces_max && cap->cfg.ifaces_max < CAPTURE_IFACES_MAX ? cap->cfg.ifaces_max
                                                                             : CAPTURE_IFACES_MAX;
    t->stream = cap->stream;
    for (unsigned i = 0; i < cap->n_sources; i++)
        any |= capture_source_link_type(cap->sources[i]) == LINKTYPE_LINUX_SLL2;
    if (any && !(t->dev = capture_devices_open(err, sizeof(err))))
        NR_WARN("cannot ask the kernel about devices; \"any\" stays one interface", "err=\"%s\"",
                err);
    if (t->dev) {
        uv_timer_init(cap->loop, &t->retry);
        t->retry.data = cap;
    }
    for (unsigned i = 0; i < cap->n_sources; i++) {
        t->own[i] = NO_ID;
        if (t->dev && capture_source_link_type(cap->sources[i]) == LINKTYPE_LINUX_SLL2) {
            t->split[i] = true;
            t->reserved++;
        } else if (capture_ifaces_add(cap, capture_source_name(cap->sources[i]),
                                      (uint32_t)capture_source_link_type(cap->sources[i]),
                                      cap->cfg.snaplen, &t->own[i]) != 0) {
            return -ENOMEM;
        }
        capture_source_set_ifid(cap->sources[i], t->own[i] == NO_ID ? 0 : t->own[i]);
    }
    return 0;
}

int capture_ifaces_add(struct capture *cap, const char *name, uint32_t link_type, uint32_t snaplen,
                       uint32_t *id)
{
    struct capture_ifaces *t = cap->ifaces;
    bool prefix = t->n == t->n_fixed;
    int rc = add_iface(t, name, NULL, link_type, snaplen, id);

    if (rc == 0 && prefix)
        t->n_fixed = t->n; /* made before any device: the next stream keeps it */
    return rc;
}

uint32_t capture_ifaces_next_id(const struct capture *cap)
{
    return cap->ifaces->n;
}

/* A split source's own interface, made the first time a packet needs it. */
static uint32_t own_of(struct capture *cap, uint32_t source)
{
    struct capture_ifaces *t = cap->ifaces;
    char desc[CAPTURE_IFDESC_MAX + 1];

    if (t->own[source] == NO_ID) {
        snprintf(desc, sizeof(desc), "k8s.node=%s;netreel.device=%s;netreel.role=capture",
                 cap->cfg.node, capture_source_name(cap->sources[source]));
        t->reserved--;
        if (add_iface(t, capture_source_name(cap->sources[source]), desc, LINKTYPE_LINUX_SLL2,
                      cap->cfg.snaplen, &t->own[source]) != 0) {
            t->reserved++;
            return 0; /* out of memory for its description: any interface beats none */
        }
    }
    return t->own[source];
}

static void free_table(struct capture_iface *v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        free(v[i].desc);
}

void capture_ifaces_free(struct capture *cap)
{
    struct capture_ifaces *t = cap->ifaces;

    if (!t)
        return;
    free_table(t->v, t->n);
    for (size_t i = 0; i < t->n_retired; i++) {
        free_table(t->retired[i].v, t->retired[i].n);
        free(t->retired[i].v);
    }
    capture_devices_close(t->dev);
    free(t->owners);
    free(t->departed);
    free(t);
    cap->ifaces = NULL;
}

static const char *const overlay_kinds[] = {"vxlan", "geneve", "ipip",   "ip6tnl",   "sit",
                                            "gre",   "gretap", "ip6gre", "wireguard"};

static const char *role_of(const struct capture_nl_link *l, const int32_t *uplinks, int n_uplinks)
{
    if (l->flags & IFF_LOOPBACK)
        return "loopback";
    for (int i = 0; i < n_uplinks; i++)
        if (uplinks[i] == l->ifindex)
            return "uplink";
    for (size_t i = 0; i < sizeof(overlay_kinds) / sizeof(overlay_kinds[0]); i++)
        if (strcmp(l->kind, overlay_kinds[i]) == 0)
            return "overlay";
    if (strcmp(l->kind, "bridge") == 0)
        return "bridge";
    if (strcmp(l->kind, "veth") == 0)
        return "veth";
    if (l->kind[0] == '\0' && !l->has_link_netnsid)
        return "uplink"; /* a NIC: no kind, nothing on the other side */
    return "device";
}

static const struct capture_pod *owner_of(const struct capture *cap, int32_t ifindex)
{
    const struct capture_ifaces *t = cap->ifaces;
    uint64_t now = uv_now(cap->loop);

    for (size_t i = 0; i < t->n_owners; i++)
        if (t->owners[i].ifindex == ifindex && t->owners[i].pod < cap->n_pods)
            return &cap->pods[t->owners[i].pod];
    for (size_t i = t->n_departed; i-- > 0;) /* the newest first */
        if (t->departed[i].ifindex == ifindex && t->departed[i].until_ms > now)
            return &t->departed[i].pod;
    return NULL;
}

static bool same_pod(const struct capture_pod *a, const struct capture_pod *b)
{
    return a->family == b->family && memcmp(a->ip, b->ip, 16) == 0 &&
           strcmp(a->name, b->name) == 0 && strcmp(a->name_space, b->name_space) == 0;
}

void capture_ifaces_pods_leaving(struct capture *cap, const struct capture_pod *next, size_t n_next)
{
    struct capture_ifaces *t = cap->ifaces;
    uint64_t now;
    size_t kept = 0;

    if (!t || !t->n_owners)
        return;
    if (!t->departed && !(t->departed = calloc(DEPARTED_MAX, sizeof(*t->departed))))
        return; /* out of memory: a departed pod's last packets are named after its device */
    now = uv_now(cap->loop);
    for (size_t i = 0; i < t->n_departed; i++) /* the expired go */
        if (t->departed[i].until_ms > now)
            t->departed[kept++] = t->departed[i];
    t->n_departed = kept;
    for (size_t i = 0; i < t->n_owners; i++) {
        const struct owner *o = &t->owners[i];
        size_t k = 0;
        if (o->pod >= cap->n_pods)
            continue;
        while (k < n_next && !same_pod(&next[k], &cap->pods[o->pod]))
            k++;
        if (k < n_next)
            continue;                        /* it stays */
        if (t->n_departed == DEPARTED_MAX) { /* the oldest goes */
            memmove(t->departed, t->departed + 1, (DEPARTED_MAX - 1) * sizeof(*t->departed));
            t->n_departed--;
        }
        t->departed[t->n_departed++] = (struct departed){
            .ifindex = o->ifindex, .until_ms = now + DEPARTED_GRACE_MS, .pod = cap->pods[o->pod]};
    }
}

/* The devices of the node's default routes, at most MAX_UPLINKS. */
static int uplinks_now(struct capture_ifaces *t, int32_t *uplinks)
{
    int n = capture_devices_uplinks(t->dev, uplinks, MAX_UPLINKS);

    if (n < 0) {
        t->netlink_errors++;
        n = 0;
    }
    return n;
}

/* What device ifindex is now: its interface name and description. Returns 0, or -ENODEV when
 * the device is gone (or the kernel did not say): then its index is all the name there is. */
static int describe(struct capture *cap, int32_t ifindex, const int32_t *uplinks, int n_up,
                    char *name, size_t nlen, char *desc, size_t dlen)
{
    struct capture_ifaces *t = cap->ifaces;
    struct capture_nl_link l;
    const struct capture_pod *pod = owner_of(cap, ifindex);
    int rc = capture_devices_link(t->dev, ifindex, &l);

    if (rc != 0) { /* gone already, or the kernel did not say: its index is all there is */
        if (rc != -ENODEV)
            t->netlink_errors++;
        memset(&l, 0, sizeof(l));
        l.ifindex = ifindex;
        snprintf(l.name, sizeof(l.name), "if%d", (int)ifindex);
    }
    if (pod) {
        snprintf(name, nlen, "%s/%s", pod->name_space, pod->name);
        snprintf(desc, dlen,
                 "k8s.node=%s;k8s.namespace=%s;k8s.podName=%s;k8s.podUID=%s;k8s.podLabels=%s;"
                 "netreel.device=%s;netreel.role=pod",
                 cap->cfg.node, pod->name_space, pod->name, pod->uid, pod->labels, l.name);
        return rc ? -ENODEV : 0;
    }
    snprintf(name, nlen, "%s", l.name);
    snprintf(desc, dlen, "k8s.node=%s;netreel.device=%s;netreel.role=%s", cap->cfg.node, l.name,
             rc ? "device" : role_of(&l, uplinks, n_up));
    return rc ? -ENODEV : 0;
}

/* The interface for device ifindex as it is described now: the current one when nothing
 * changed, else a new one (or the source's own when there is no room). */
static uint32_t iface_for(struct capture *cap, uint32_t source, int32_t ifindex,
                          const int32_t *uplinks, int n_up, const uint32_t *current)
{
    struct capture_ifaces *t = cap->ifaces;
    char name[CAPTURE_IFNAME_MAX + 1], desc[CAPTURE_IFDESC_MAX + 1];
    uint32_t id;

    if (describe(cap, ifindex, uplinks, n_up, name, sizeof(name), desc, sizeof(desc)) != 0 &&
        current && t->is_device[*current])
        return *current; /* gone: its last packets stay on the interface they had */
    if (current && t->is_device[*current] && strcmp(t->v[*current].name, name) == 0 &&
        t->v[*current].desc && strcmp(t->v[*current].desc, desc) == 0)
        return *current;
    if (add_iface(t, name, desc, LINKTYPE_LINUX_SLL2, cap->cfg.snaplen, &id) != 0) {
        if (!t->warned_full)
            NR_WARN("no room for another interface; further devices stay on their source's",
                    "max=%u device=%s", t->max, name);
        t->warned_full = true;
        return current ? *current : own_of(cap, source);
    }
    t->is_device[id] = true;
    NR_INFO("interface", "id=%u name=\"%s\" description=\"%s\"", id, name, desc);
    return id;
}

void capture_ifaces_split(struct capture *cap, struct capture_batch *b)
{
    struct capture_ifaces *t = cap->ifaces;
    uint32_t source = 0;
    int32_t last_index = 0, uplinks[MAX_UPLINKS];
    uint32_t last_id = 0;
    int n_up = -1; /* asked for at the first new device */

    if (!t || !b->src)
        return;
    while (source < cap->n_sources && cap->sources[source] != b->src)
        source++;
    if (source == cap->n_sources || !t->split[source])
        return;
    for (size_t i = 0; i < b->n_offsets; i++) {
        uint8_t *p = b->blocks.data + b->offsets[i];
        uint32_t id = NO_ID, be;
        int32_t ifindex = 0;
        if (pcapng_le32(p + EPB_CAPLEN_OFF) >= SLL2_IFINDEX_OFF + 4) {
            memcpy(&be, p + EPB_DATA_OFF + SLL2_IFINDEX_OFF, sizeof(be));
            ifindex = (int32_t)ntohl(be);
        }
        if (ifindex <= 0) {
            id = NO_ID;
        } else if (ifindex == last_index) {
            id = last_id;
        } else {
            struct seen *s = lookup(t, source, ifindex);
            if (s && s->ifindex == ifindex && s->stale) {
                if (n_up < 0)
                    n_up = uplinks_now(t, uplinks);
                id = iface_for(cap, source, ifindex, uplinks, n_up, &s->id);
                if (id != s->id)
                    t->renamed++;
                s->id = id;
                s->stale = false;
            } else if (s && s->ifindex == ifindex) {
                id = s->id;
            } else if (s && t->n_seen < CAPTURE_DEVICES_SEEN) {
                if (n_up < 0) {
                    n_up = uplinks_now(t, uplinks);
                    /* A new device may be the one a pod was waiting for; a device seen before
                     * whose pod is found now gets its new interface too. */
                    if (t->unresolved && resolve_owners(cap)) {
                        redescribe(cap);
                        s = lookup(t, source, ifindex);
                    }
                }
                id = iface_for(cap, source, ifindex, uplinks, n_up, NULL);
                *s = (struct seen){.source = source, .ifindex = ifindex, .id = id};
                t->n_seen++;
            }
            last_index = ifindex;
            last_id = id;
        }
        if (id == NO_ID || id == t->own[source]) {
            id = own_of(cap, source);
            t->unsplit_packets++;
        }
        pcapng_put32(p + EPB_IFID_OFF, id);
    }
}

/* Finds the targeted pods' devices again. Returns whether the map changed. */
static bool resolve_owners(struct capture *cap)
{
    struct capture_ifaces *t = cap->ifaces;
    struct owner *o = calloc(cap->n_pods + 1, sizeof(*o));
    size_t n = 0, kept = 0;
    bool changed;

    if (!o) {
        NR_ERROR("out of memory for the pods' devices; interfaces keep their names", "pods=%zu",
                 cap->n_pods);
        return false;
    }
    /* A node runs ~100 pods; past POD_DEVICES_MAX addresses the rest keep device names. */
    for (size_t i = 0; i < cap->n_pods && i < POD_DEVICES_MAX; i++) {
        int32_t ifindex;
        int rc = capture_devices_pod_device(t->dev, cap->pods[i].family, cap->pods[i].ip, &ifindex);
        if (rc != 0) {
            if (rc != -ENOENT)
                t->netlink_errors++;
            continue;
        }
        o[n++] = (struct owner){.ifindex = ifindex, .pod = i};
    }
    /* A device that leads to two pods is no one pod's (a shared bridge, a routed uplink). */
    for (size_t i = 0; i < n; i++)
        for (size_t k = i + 1; k < n; k++)
            if (o[k].ifindex == o[i].ifindex &&
                (strcmp(cap->pods[o[k].pod].name, cap->pods[o[i].pod].name) != 0 ||
                 strcmp(cap->pods[o[k].pod].name_space, cap->pods[o[i].pod].name_space) != 0))
                o[i].shared = o[k].shared = true;
    for (size_t i = 0; i < n; i++)
        if (!o[i].shared)
            o[kept++] = o[i];
    n = kept;
    changed = n != t->n_owners || (n && memcmp(o, t->owners, n * sizeof(*o)) != 0);
    free(t->owners);
    t->owners = o;
    t->n_owners = n;
    t->unresolved = n < (cap->n_pods < POD_DEVICES_MAX ? cap->n_pods : POD_DEVICES_MAX);
    return changed;
}

/* Every known device is described again at its next packet: those whose description changed
 * get a new interface from then on. Not now: most of them (a deleted pod's) never send again,
 * and an interface made for each would fill the table. */
static void redescribe(struct capture *cap)
{
    struct capture_ifaces *t = cap->ifaces;

    for (uint32_t i = 0; i < TABLE_SLOTS; i++)
        if (t->table[i].ifindex != 0)
            t->table[i].stale = true;
}

/* A pod whose device was not found (a bridge that has not learnt its MAC yet, a device made
 * after its address was known) is looked for again, less often while nothing changes. */
static void on_retry(uv_timer_t *timer)
{
    struct capture *cap = timer->data;
    struct capture_ifaces *t = cap->ifaces;

    if (!t->unresolved)
        return;
    if (resolve_owners(cap)) {
        redescribe(cap);
        t->retry_ms = RETRY_MIN_MS;
    } else if (t->retry_ms < RETRY_MAX_MS) {
        t->retry_ms *= 2;
    }
    if (t->unresolved)
        uv_timer_start(&t->retry, on_retry, t->retry_ms, 0);
}

void capture_ifaces_pods_changed(struct capture *cap)
{
    struct capture_ifaces *t = cap->ifaces;

    if (!t || !t->dev)
        return;
    resolve_owners(cap);
    redescribe(cap); /* a pod's labels may have changed too */
    t->retry_ms = RETRY_MIN_MS;
    if (t->unresolved)
        uv_timer_start(&t->retry, on_retry, t->retry_ms, 0);
}

const struct capture_iface *capture_ifaces_all(const struct capture *cap, uint32_t *n)
{
    *n = cap->ifaces ? cap->ifaces->n : 0;
    return cap->ifaces ? cap->ifaces->v : NULL;
}

const struct capture_iface *capture_ifaces_of(const struct capture *cap, uint32_t stream,
                                              uint32_t *n)
{
    const struct capture_ifaces *t = cap->ifaces;

    *n = 0;
    if (!t)
        return NULL;
    if (stream == t->stream) {
        *n = t->n;
        return t->v;
    }
    for (size_t i = 0; i < t->n_retired; i++)
        if (t->retired[i].stream == stream) {
            *n = t->retired[i].n;
            return t->retired[i].v;
        }
    return NULL;
}

bool capture_ifaces_should_roll(const struct capture *cap, uint64_t now_ms)
{
    const struct capture_ifaces *t = cap->ifaces;
    uint32_t headroom;

    if (!t || !t->dev || t->n_retired == RETIRED_MAX || t->n == t->n_fixed)
        return false;
    if (t->rolls && now_ms - t->last_roll_ms < ROLL_MIN_GAP_MS)
        return false;
    headroom = t->max / 16 ? t->max / 16 : 1;
    return t->n + t->reserved + headroom > t->max ||
           t->n_seen + CAPTURE_DEVICES_SEEN / 16 > CAPTURE_DEVICES_SEEN;
}

int capture_ifaces_roll(struct capture *cap, uint32_t stream, uint64_t now_ms)
{
    struct capture_ifaces *t = cap->ifaces;
    struct capture_iface *old;

    if (t->n_retired == RETIRED_MAX)
        return -ENOSPC;
    if (!(old = malloc(t->n * sizeof(*old))))
        return -ENOMEM;
    memcpy(old, t->v, t->n * sizeof(*old));   /* the devices' descriptions move to it */
    for (uint32_t i = 0; i < t->n_fixed; i++) /* the fixed ones are in both */
        if (t->v[i].desc && !(old[i].desc = strdup(t->v[i].desc))) {
            while (i-- > 0)
                if (t->v[i].desc)
                    free(old[i].desc);
            free(old);
            return -ENOMEM;
        }
    t->retired[t->n_retired++] = (struct retired){.stream = t->stream, .n = t->n, .v = old};
    memset(t->v + t->n_fixed, 0, (t->n - t->n_fixed) * sizeof(t->v[0]));
    t->n = t->n_fixed;
    t->stream = stream;
    memset(t->is_device, 0, sizeof(t->is_device));
    memset(t->table, 0, sizeof(t->table));
    t->n_seen = 0;
    for (unsigned i = 0; i < cap->n_sources; i++)
        if (t->split[i] && t->own[i] != NO_ID) {
            t->own[i] = NO_ID;
            t->reserved++;
        }
    t->warned_full = false;
    t->rolls++;
    t->last_roll_ms = now_ms;
    return 0;
}

void capture_ifaces_release(struct capture *cap, uint32_t oldest)
{
    struct capture_ifaces *t = cap->ifaces;
    size_t kept = 0;

    if (!t)
        return;
    for (size_t i = 0; i < t->n_retired; i++) {
        struct retired *r = &t->retired[i];
        if ((int32_t)(r->stream - oldest) < 0) {
            free_table(r->v, r->n);
            free(r->v);
        } else {
            t->retired[kept++] = *r;
        }
    }
    t->n_retired = kept;
}

void capture_ifaces_metrics(const struct capture *cap, struct nr_metrics *m)
{
    const struct capture_ifaces *t = cap->ifaces;

    if (!t)
        return;
    nr_metrics_family(m, "netreel_capture_interfaces", NR_METRICS_GAUGE,
                      "Interfaces described to the store (sources, tls, and the devices \"any\" "
                      "was split into).");
    nr_metrics_u64(m, NULL, t->n);
    nr_metrics_family(m, "netreel_capture_streams_total", NR_METRICS_COUNTER,
                      "Capture streams begun since the start: the first, and one each time the "
                      "interface table filled up (devices come and go with pods).");
    nr_metrics_u64(m, NULL, t->rolls + 1);
    nr_metrics_family(m, "netreel_capture_pod_devices", NR_METRICS_GAUGE,
                      "Targeted pod addresses whose device on this node is known.");
    nr_metrics_u64(m, NULL, t->n_owners);
    nr_metrics_family(m, "netreel_capture_unsplit_packets_total", NR_METRICS_COUNTER,
                      "Packets of \"any\" left on its own interface: no room for another.");
    nr_metrics_u64(m, NULL, t->unsplit_packets);
    nr_metrics_family(m, "netreel_capture_interfaces_renamed_total", NR_METRICS_COUNTER,
                      "Devices given a new interface because what they are changed.");
    nr_metrics_u64(m, NULL, t->renamed);
    nr_metrics_family(m, "netreel_capture_netlink_errors_total", NR_METRICS_COUNTER,
                      "Failed questions to the kernel about devices.");
    nr_metrics_u64(m, NULL, t->netlink_errors);
}
