/* The copies of one packet in a snapshot (see sightings.h). */
#include "hub/sightings.h"

#include "hub/clock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pcapng/encode.h"
#include "pcapng/pcap.h"
#include "pcapng/sighting.h"

#define MAX_SIGHTS 6    /* (interface, direction) pairs one group remembers */
#define TABLE_MIN  4096 /* slots, a power of two */
#define RING_MIN   1024 /* queued packets, a power of two */
#define HOLD_BYTES (HUB_SIGHTING_HOLD_MAX + PCAPNG_EPB_MIN + PCAPNG_MAX_SNAPLEN + 64)

#define MAX_SENDS 3 /* sends of the same bytes one group tells apart */

/* Bytes seen recently, and where. The same bytes may be sent again before every copy of the
 * first send was seen (a fast retransmission, a datagram repeated): the k-th sighting at one
 * (interface, direction) belongs to the k-th send, and a send's copies are its sightings
 * elsewhere. */
struct group {
    int64_t first_ts; /* as its slot's (the key is the slot's alone) */
    uint8_t n_sights, n_sends;
    uint32_t sights[MAX_SIGHTS]; /* ifid << 2 | direction */
    uint8_t count[MAX_SIGHTS];   /* sightings there so far */
    int32_t dt[MAX_SIGHTS];      /* the first one's time after first_ts (< the window) */
    struct {
        uint64_t id;   /* mode all: its packet id; mode one: the queue entry of the copy kept */
        uint8_t score; /* of the copy kept */
    } sends[MAX_SENDS];
};

/* A queued packet: its bytes as the file will have them, at [off, off + len) of sg->hold. */
struct entry {
    int64_t ts;
    size_t off, len;
    bool drop;
};

struct iface {
    uint16_t link_type;
    bool pod;
    uint32_t node; /* which store's */
};

struct hub_sightings {
    enum hub_sightings_mode mode;
    bool pcap;
    struct iface *ifaces;
    uint32_t n_ifaces;
    /* The table: what a lookup reads apart from the rest of each group, at the same index. A
     * packet seen once (most of them) lives in its slot alone — its place, its send's id and
     * score — and its group in `table` is made (a second cache miss) only when a second
     * sighting comes. */
    struct slot {
        uint64_t key; /* 0: an empty slot */
        int64_t first_ts;
        uint32_t sight; /* the first sighting's place, while the group is the slot alone */
        uint8_t score;  /* of its send's copy kept, the same */
        bool grouped;   /* the group is in table[] */
        uint64_t id;    /* its send's id (mode all) or queue entry (mode one), the same */
    } * hot;
    struct group *table;
    size_t slots, used;
    uint64_t next_id;
    int64_t latest; /* the newest timestamp taken */
    /* The queued packets' bytes, a ring of HOLD_BYTES: each packet's bytes are contiguous (one
     * that does not fit before the end starts at 0), from the oldest's `off` to `wpos`. */
    uint8_t *hold;
    size_t wpos;
    struct entry *ring;
    size_t ring_cap;
    uint64_t head, tail; /* queue entries [head, tail) */
    struct hub_sighting_stats st;
    struct hub_clock *clock; /* told about packets seen leaving one node and entering another */
};

struct hub_sightings *hub_sightings_new(enum hub_sightings_mode mode, uint32_t n_ifaces, bool pcap)
{
    struct hub_sightings *sg = calloc(1, sizeof(*sg));

    if (!sg)
        return NULL;
    sg->mode = mode;
    sg->pcap = pcap;
    sg->n_ifaces = n_ifaces;
    sg->ifaces = calloc(n_ifaces + 1, sizeof(*sg->ifaces));
    sg->slots = TABLE_MIN;
    sg->table = calloc(sg->slots, sizeof(*sg->table));
    sg->hot = calloc(sg->slots, sizeof(*sg->hot));
    sg->ring_cap = mode == HUB_SIGHTINGS_ONE ? RING_MIN : 0; /* only mode one queues */
    sg->ring = sg->ring_cap ? calloc(sg->ring_cap, sizeof(*sg->ring)) : NULL;
    sg->hold = mode == HUB_SIGHTINGS_ONE ? malloc(HOLD_BYTES) : NULL;
    if (!sg->ifaces || !sg->table || !sg->hot || (sg->ring_cap && (!sg->ring || !sg->hold))) {
        hub_sightings_free(sg);
        return NULL;
    }
    return sg;
}

void hub_sightings_free(struct hub_sightings *sg)
{
    if (!sg)
        return;
    free(sg->ifaces);
    free(sg->table);
    free(sg->hot);
    free(sg->ring);
    free(sg->hold);
    free(sg);
}

void hub_sightings_iface(struct hub_sightings *sg, uint32_t ifid, uint16_t link_type, bool pod,
                         uint32_t node)
{
    if (ifid < sg->n_ifaces)
        sg->ifaces[ifid] = (struct iface){.link_type = link_type, .pod = pod, .node = node};
}

int hub_sightings_grow(struct hub_sightings *sg, uint32_t n_ifaces)
{
    struct iface *v;

    if (n_ifaces <= sg->n_ifaces)
        return 0;
    v = realloc(sg->ifaces, (n_ifaces + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    memset(v + sg->n_ifaces, 0, (n_ifaces + 1 - sg->n_ifaces) * sizeof(*v));
    sg->ifaces = v;
    sg->n_ifaces = n_ifaces;
    return 0;
}

void hub_sightings_advance(struct hub_sightings *sg, int64_t ts_ns)
{
    if (ts_ns > sg->latest)
        sg->latest = ts_ns;
}

void hub_sightings_clock(struct hub_sightings *sg, struct hub_clock *clock)
{
    sg->clock = clock;
}

/* A packet seen leaving a node's own device (an uplink: not a pod's) and entering another
 * node's is a sample of their clocks: sent and received, each on its node's clock. */
/* Only the first send's sightings are paired: a later send's could be taken for the first's. */
static void clock_pairs(struct hub_sightings *sg, const struct group *g, uint8_t k, int64_t ts)
{
    uint32_t sight = g->sights[k];
    const struct iface *in = &sg->ifaces[sight >> 2];
    uint32_t dir = sight & 3;

    if (!sg->clock || in->pod || g->n_sends != 1 || (dir != PCAPNG_DIR_IN && dir != PCAPNG_DIR_OUT))
        return;
    for (uint8_t i = 0; i < g->n_sights; i++) {
        uint32_t odir = g->sights[i] & 3;
        const struct iface *o;
        int64_t ots = g->first_ts + g->dt[i];
        if (i == k || (g->sights[i] >> 2) >= sg->n_ifaces)
            continue;
        o = &sg->ifaces[g->sights[i] >> 2];
        if (o->pod || o->node == in->node || odir == dir ||
            (odir != PCAPNG_DIR_IN && odir != PCAPNG_DIR_OUT))
            continue;
        if (dir == PCAPNG_DIR_IN)
            hub_clock_sample(sg->clock, o->node, in->node, ots, ts);
        else
            hub_clock_sample(sg->clock, in->node, o->node, ts, ots);
    }
}

static bool fresh(const struct hub_sightings *sg, const struct slot *h)
{
    return h->key && h->first_ts >= sg->latest - HUB_SIGHTING_WINDOW_NS;
}

/* How many groups of the table are younger than each horizon WINDOW / 8^i, in one pass over it
 * (it is read at every rebuild: a megabyte at its largest). */
#define HORIZONS 4 /* down to WINDOW / 512 */

static void count_younger(const struct hub_sightings *sg, size_t live[HORIZONS])
{
    int64_t h[HORIZONS];

    for (int i = 0; i < HORIZONS; i++) {
        h[i] = sg->latest - (HUB_SIGHTING_WINDOW_NS >> (3 * i));
        live[i] = 0;
    }
    for (size_t k = 0; k < sg->slots; k++) {
        const struct slot *o = &sg->hot[k];
        for (int i = 0; o->key && i < HORIZONS && o->first_ts >= h[i]; i++)
            live[i]++;
    }
}

/* A table holding the fresh groups of the old one, at most a quarter full so that the next
 * rebuild is as many inserts away (all are dropped when even the largest table would be fuller:
 * a few copies kept twice, never a packet lost). */
static int rebuild(struct hub_sightings *sg)
{
    size_t count[HORIZONS], live, slots = TABLE_MIN;
    int i = 0;
    int64_t horizon;
    struct group *t;
    struct slot *h;

    count_younger(sg, count);
    live = count[0];
    while (slots < 4 * live && slots < HUB_SIGHTING_TABLE_MAX)
        slots *= 2;
    /* Too many packets in the window for the largest table: keep the youngest groups (copies
     * come within a millisecond or so once clocks are aligned); the oldest go first. */
    while (live * 4 > slots && i + 1 < HORIZONS) {
        live = count[++i];
        sg->st.table_shrinks++;
    }
    horizon = HUB_SIGHTING_WINDOW_NS >> (3 * i);
    if (live * 4 > slots) {
        sg->st.table_resets++;
        live = 0;
    }
    t = calloc(slots, sizeof(*t));
    h = calloc(slots, sizeof(*h));
    if (!t || !h) {
        free(t);
        free(h);
        return -ENOMEM;
    }
    sg->used = 0;
    for (size_t j = 0; live && j < sg->slots; j++) {
        const struct slot *o = &sg->hot[j];
        size_t k;
        if (!o->key || o->first_ts < sg->latest - horizon)
            continue;
        for (k = o->key & (slots - 1); h[k].key; k = (k + 1) & (slots - 1)) {
        }
        h[k] = *o;
        if (o->grouped) /* a packet seen once has no group: its pages stay untouched */
            t[k] = sg->table[j];
        sg->used++;
    }
    free(sg->table);
    free(sg->hot);
    sg->table = t;
    sg->hot = h;
    sg->slots = slots;
    return 0;
}

/* The slot of key: the fresh one, or a new one (first seen at ts, its group the slot alone) in
 * place of a stale one or an empty slot. SIZE_MAX when out of memory. */
static size_t slot_of(struct hub_sightings *sg, uint64_t key, int64_t ts, bool *is_new)
{
    size_t k, stale = SIZE_MAX;

    if ((sg->used + 1) * 2 > sg->slots && rebuild(sg) != 0)
        return SIZE_MAX;
    for (k = key & (sg->slots - 1); sg->hot[k].key; k = (k + 1) & (sg->slots - 1)) {
        if (!fresh(sg, &sg->hot[k])) {
            if (stale == SIZE_MAX)
                stale = k;
            continue;
        }
        if (sg->hot[k].key == key) {
            *is_new = false;
            return k;
        }
    }
    if (stale == SIZE_MAX) {
        stale = k;
        sg->used++;
    }
    sg->hot[stale] = (struct slot){.key = key, .first_ts = ts};
    *is_new = true;
    return stale;
}

/* The group of slot k, made from the slot when it was the slot alone (one sighting so far).
 * Only what is read before written: a group's arrays are read below n_sights and n_sends. */
static struct group *group_at(struct hub_sightings *sg, size_t k)
{
    struct slot *h = &sg->hot[k];
    struct group *g = &sg->table[k];

    if (!h->grouped) {
        g->first_ts = h->first_ts;
        g->n_sights = g->n_sends = 1;
        g->sights[0] = h->sight;
        g->count[0] = 1;
        g->dt[0] = 0;
        g->sends[0].id = h->id;
        g->sends[0].score = h->score;
        h->grouped = true;
    }
    return g;
}

/* How much a sighting says "the sender's": entering the node from a pod's device. */
static uint8_t score(const struct iface *in, enum pcapng_direction dir)
{
    return in->pod && dir == PCAPNG_DIR_IN ? 2 : 1;
}

/* A second or later sighting of a group's bytes at place `sight`: which send of them it is
 * (the k-th sighting at one place belongs to the k-th send), and whether that send was seen
 * elsewhere already (*copy). */
static uint8_t take_sighting(struct hub_sightings *sg, struct group *g, uint32_t sight,
                             uint32_t ifid, int64_t ts_ns, bool *copy)
{
    uint8_t k = 0, send;

    while (k < g->n_sights && g->sights[k] != sight)
        k++;
    if ((k < g->n_sights && g->count[k] >= MAX_SENDS) || (k == g->n_sights && k == MAX_SIGHTS)) {
        /* More sends or places than a group tells apart: these bytes start over. */
        g->n_sights = g->n_sends = 0;
        g->first_ts = ts_ns;
        sg->hot[g - sg->table].first_ts = ts_ns;
        k = 0;
    }
    if (k == g->n_sights) { /* a new place */
        g->sights[k] = sight;
        g->count[k] = 0;
        g->dt[k] = (int32_t)(ts_ns - g->first_ts);
        g->n_sights++;
    }
    send = g->count[k]++;
    *copy = send < g->n_sends; /* a copy of a send seen elsewhere already */
    if (!*copy) {              /* a new send of these bytes */
        g->n_sends = send + 1;
        g->sends[send].id = sg->mode == HUB_SIGHTINGS_ALL ? ++sg->next_id : 0;
    }
    if (send == 0 && ifid < sg->n_ifaces)
        clock_pairs(sg, g, k, ts_ns);
    return send;
}

/* The bytes encode() writes for a packet. */
static size_t encoded_len(const struct hub_sightings *sg, const struct pcapng_epb *epb,
                          enum pcapng_direction dir, uint64_t packet_id)
{
    if (sg->pcap)
        return PCAP_RECORD_HEADER_LEN + epb->caplen;
    return pcapng_epb_sighting_len(epb, 0, (uint32_t)dir, packet_id);
}

static int encode(struct hub_sightings *sg, struct nr_buf *b, const struct pcapng_epb *epb,
                  uint32_t ifid, int64_t ts, enum pcapng_direction dir, uint64_t packet_id)
{
    if (sg->pcap)
        return pcapng_pcap_record_append(b, ts, epb->data, epb->caplen, epb->origlen);
    return pcapng_epb_append_sighting(b, epb, ifid, ts, 0, (uint32_t)dir, packet_id);
}

static int ring_grow(struct hub_sightings *sg)
{
    size_t cap = sg->ring_cap * 2;
    struct entry *r = malloc(cap * sizeof(*r));

    if (!r)
        return -ENOMEM;
    for (uint64_t s = sg->head; s < sg->tail; s++)
        r[s & (cap - 1)] = sg->ring[s & (sg->ring_cap - 1)];
    free(sg->ring);
    sg->ring = r;
    sg->ring_cap = cap;
    return 0;
}

static struct entry *at(struct hub_sightings *sg, uint64_t seq)
{
    return &sg->ring[seq & (sg->ring_cap - 1)];
}

/* Writes (or drops) the oldest queued packet. */
static int release_one(struct hub_sightings *sg, struct nr_buf *out)
{
    struct entry *e = at(sg, sg->head);

    if (!e->drop) {
        int rc = nr_buf_append(out, sg->hold + e->off, e->len);
        if (rc != 0)
            return rc;
        sg->st.written++;
    }
    sg->head++;
    if (sg->head == sg->tail)
        sg->wpos = 0;
    return 0;
}

/* Where len more bytes go in the ring, or SIZE_MAX when the queued packets leave no room. */
static size_t room_for(const struct hub_sightings *sg, size_t len)
{
    size_t r = sg->head < sg->tail ? sg->ring[sg->head & (sg->ring_cap - 1)].off : 0;

    if (sg->head == sg->tail)
        return len <= HOLD_BYTES ? 0 : SIZE_MAX;
    if (sg->wpos > r) { /* live bytes in [r, wpos) */
        if (sg->wpos + len <= HOLD_BYTES)
            return sg->wpos;
        return len < r ? 0 : SIZE_MAX; /* wrap: [0, r) is free */
    }
    return sg->wpos + len < r ? sg->wpos : SIZE_MAX; /* wrapped: only [wpos, r) is free */
}

/* Writes the oldest queued packet (which must be due) and the kept ones after it that are due
 * too and lie next to it in the ring's bytes, as many as keep out below until_len, in one copy;
 * or drops the oldest when it is a copy. Returns how many left the queue, or a negative errno. */
static long write_run(struct hub_sightings *sg, struct nr_buf *out, int64_t due, size_t until_len)
{
    const struct entry *e = at(sg, sg->head);
    size_t off = e->off, len = 0, n = 0;
    int rc;

    if (e->drop) {
        release_one(sg, out); /* writes nothing: cannot fail */
        return 1;
    }
    do {
        len += e->len;
        n++;
        e = sg->head + n < sg->tail ? at(sg, sg->head + n) : NULL;
    } while (e && !e->drop && e->ts <= due && e->off == off + len && out->len + len < until_len);
    if ((rc = nr_buf_append(out, sg->hold + off, len)) != 0)
        return rc;
    sg->st.written += n;
    sg->head += n;
    if (sg->head == sg->tail)
        sg->wpos = 0;
    return (long)n;
}

bool hub_sightings_key(const struct hub_sightings *sg, const struct pcapng_epb *epb, uint32_t ifid,
                       uint64_t *key)
{
    const struct iface *in = &sg->ifaces[ifid < sg->n_ifaces ? ifid : sg->n_ifaces];

    return pcapng_sighting_key(in->link_type, epb->data, epb->caplen, key);
}

bool hub_sightings_seen(const struct hub_sightings *sg, const struct pcapng_epb *epb, uint32_t ifid)
{
    uint64_t key;

    if (sg->mode != HUB_SIGHTINGS_ONE || !hub_sightings_key(sg, epb, ifid, &key))
        return false;
    /* The table is never full (it is rebuilt at a quarter): an empty slot ends the probe. */
    for (size_t k = key & (sg->slots - 1); sg->hot[k].key; k = (k + 1) & (sg->slots - 1))
        if (sg->hot[k].key == key)
            return true;
    return false;
}

void hub_sightings_prefetch(const struct hub_sightings *sg, uint64_t key)
{
    __builtin_prefetch(&sg->hot[key & (sg->slots - 1)]);
}

int hub_sightings_put(struct hub_sightings *sg, const struct pcapng_epb *epb, uint32_t ifid,
                      int64_t ts_ns, struct nr_buf *out)
{
    uint64_t key;

    return hub_sightings_put_keyed(sg, epb, ifid, ts_ns,
                                   hub_sightings_key(sg, epb, ifid, &key) ? &key : NULL, out);
}

int hub_sightings_put_keyed(struct hub_sightings *sg, const struct pcapng_epb *epb, uint32_t ifid,
                            int64_t ts_ns, const uint64_t *key, struct nr_buf *out)
{
    const struct iface *in = &sg->ifaces[ifid < sg->n_ifaces ? ifid : sg->n_ifaces];
    enum pcapng_direction dir = pcapng_sighting_direction(in->link_type, epb->data, epb->caplen);
    uint32_t sight = ifid << 2 | (uint32_t)dir;
    struct group *g = NULL;
    struct slot *alone = NULL; /* a first sighting: its group is this slot alone */
    bool is_new, copy = false;
    uint8_t send = 0;
    uint64_t id = 0;
    struct entry *e;
    size_t len, off;
    int rc;

    sg->st.packets++;
    if (ts_ns > sg->latest)
        sg->latest = ts_ns;
    if (key) {
        size_t at_k = slot_of(sg, *key, ts_ns, &is_new);
        if (at_k == SIZE_MAX)
            return -ENOMEM;
        if (is_new) { /* the first sighting of these bytes: a new send, nothing to pair */
            alone = &sg->hot[at_k];
            alone->sight = sight;
            alone->id = id = sg->mode == HUB_SIGHTINGS_ALL ? ++sg->next_id : 0;
        } else {
            g = group_at(sg, at_k);
            send = take_sighting(sg, g, sight, ifid, ts_ns, &copy);
            id = g->sends[send].id;
        }
    }
    if (sg->mode == HUB_SIGHTINGS_PROBE)
        return 0;
    if (sg->mode == HUB_SIGHTINGS_ALL) {
        rc = encode(sg, out, epb, ifid, ts_ns, dir, g || alone ? id : ++sg->next_id);
        if (rc == 0)
            sg->st.written++;
        return rc;
    }

    /* Mode one: queue it (the oldest decided early when there is no room), and decide which
     * copy stays. */
    len = encoded_len(sg, epb, dir, 0);
    /* No room: the oldest is decided early, one for one (releasing more at a time, an eighth
     * of the ring, measured slower: a larger chunk to the caller, and 57 MiB of hub instead of
     * 48, for 1.18x instead of 1.10x of --sightings=all). */
    while ((off = room_for(sg, len)) == SIZE_MAX) {
        if (sg->head == sg->tail)
            return -EOVERFLOW;
        sg->st.early++;
        if ((rc = release_one(sg, out)) != 0)
            return rc;
    }
    if (sg->tail - sg->head == sg->ring_cap && (rc = ring_grow(sg)) != 0)
        return rc;
    {
        struct nr_buf view = {.data = sg->hold + off, .len = 0, .cap = len, .max = len};
        rc = encode(sg, &view, epb, ifid, ts_ns, dir, 0);
        if (rc == 0 && view.len != len)
            rc = -EINVAL; /* cannot happen: encoded_len says what encode writes */
        if (rc != 0)
            return rc;
    }
    sg->wpos = off + len;
    e = at(sg, sg->tail);
    *e = (struct entry){.ts = ts_ns, .off = off, .len = len};
    if (alone) { /* the first copy of a send: kept, for now */
        alone->id = sg->tail;
        alone->score = score(in, dir);
    } else if (g) {
        uint8_t sc = score(in, dir);
        if (!copy) {
            g->sends[send].id = sg->tail;
            g->sends[send].score = sc;
        } else if (sc > g->sends[send].score && g->sends[send].id >= sg->head) {
            at(sg, g->sends[send].id)->drop = true; /* the sender's copy came: it stays */
            g->sends[send].id = sg->tail;
            g->sends[send].score = sc;
            sg->st.copies++;
        } else {
            e->drop = true;
            sg->st.copies++;
        }
    }
    sg->tail++;
    return 0;
}

int hub_sightings_release(struct hub_sightings *sg, struct nr_buf *out, bool all, size_t until_len)
{
    int64_t due = all ? INT64_MAX : sg->latest - HUB_SIGHTING_WINDOW_NS;

    /* Called after every packet: nothing until the oldest is HUB_SIGHTING_RELEASE_SLACK_NS past
     * its window, then every due one, in runs of one copy each. */
    if (!all && sg->head < sg->tail && at(sg, sg->head)->ts > due - HUB_SIGHTING_RELEASE_SLACK_NS)
        return 0;
    while (sg->head < sg->tail) {
        long rc;
        if (at(sg, sg->head)->ts > due)
            return 0;
        if (out->len >= until_len)
            return 1;
        if ((rc = write_run(sg, out, due, until_len)) < 0)
            return (int)rc;
    }
    return 0;
}

uint64_t hub_sightings_written(const struct hub_sightings *sg)
{
    return sg->st.written;
}

void hub_sightings_stats(const struct hub_sightings *sg, struct hub_sighting_stats *st)
{
    *st = sg->st;
}
