/* A snapshot file's own blocks (snapshot_parts.h): the head (SHB with the window, the stores
 * and the clocks; an IDB per node and interface; NRBs of pod names; or the classic pcap
 * header), the stores' TLS key log lines as DSBs, and the statistics at the end. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/snapshot_parts.h"
#include "pcapng/encode.h"
#include "pcapng/keylog.h"
#include "pcapng/pcap.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/parse.h"

/* What the file's clock is, for the SHB comment: "; clock of node-1: node-2 -3.012345 ms ±
 * 0.000021 ms (412 packets), node-3 not measured", or "; clocks raw". Returns the length. */
static size_t clock_comment(const struct hub_snap *s, char *buf, size_t len)
{
    size_t o;

    if (!s->offsets)
        return (size_t)snprintf(buf, len, s->n > 1 ? "; clocks raw" : "");
    o = (size_t)snprintf(buf, len, "; clock of %s:", hub_snap_src_node(&s->srcs[s->ref]));
    for (size_t i = 0; i < s->n && o < len; i++) {
        const struct hub_clock_offset *c = &s->offsets[i];
        if (i == s->ref)
            continue;
        if (c->known)
            o +=
                (size_t)snprintf(buf + o, len - o, "%s %s %+.6f ms \xc2\xb1 %.6f ms (%llu packets)",
                                 o > 0 && buf[o - 1] != ':' ? "," : "",
                                 hub_snap_src_node(&s->srcs[i]), (double)c->offset_ns / 1e6,
                                 (double)c->uncertainty_ns / 1e6, (unsigned long long)c->samples);
        else
            o += (size_t)snprintf(buf + o, len - o, "%s %s not measured",
                                  buf[o - 1] != ':' ? "," : "", hub_snap_src_node(&s->srcs[i]));
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

/* What makes an interface the same one in a resumed call's header: its node, name,
 * description and link type. */
static uint64_t iface_key(const Netreel__V1__WindowHeader *hd, const Netreel__V1__Interface *in)
{
    char buf[1024];
    int n =
        snprintf(buf, sizeof(buf), "%s%c%s%c%s%c%u", in->node && in->node[0] ? in->node : hd->node,
                 0, in->name, 0, in->description ? in->description : "", 0, in->link_type);

    return nr_hash_bytes(buf, n < 0 ? 0 : (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* A new output interface for `in`: its IDB (or, in a pcap file, its link type checked against
 * the file's), and the sightings stage told of it once there is one. Its id, or -1 with err. */
static int64_t new_iface(struct hub_snap *s, struct hub_src *src,
                         const Netreel__V1__WindowHeader *hd, const Netreel__V1__Interface *in,
                         char *err, size_t errlen)
{
    uint32_t id = s->n_out_ifaces;
    int rc = 0;

    if (s->pcap) {
        if (s->pcap_link_type && s->pcap_link_type != in->link_type) {
            snprintf(err, errlen,
                     "--format pcap holds one link type, this window has %u and %u "
                     "(interface %s/%s): use pcapng",
                     s->pcap_link_type, in->link_type, in->node, in->name);
            return -1;
        }
        s->pcap_link_type = (uint16_t)in->link_type;
    } else if (!s->is_probe) { /* a probe writes no file */
        char name[512];
        snprintf(name, sizeof(name), "%s/%s", in->node && in->node[0] ? in->node : hd->node,
                 in->name);
        rc = pcapng_idb_append(&s->out, (uint16_t)in->link_type, s->idb_snaplen, name,
                               in->description);
    }
    if (rc == 0 && s->sg) {
        bool pod = in->description && strstr(in->description, "netreel.role=pod") != NULL;
        rc = hub_sightings_grow(s->sg, id + 1);
        if (rc == 0)
            hub_sightings_iface(s->sg, id, (uint16_t)in->link_type, pod, (uint32_t)(src - s->srcs));
    }
    if (rc != 0) {
        snprintf(err, errlen, "cannot describe an interface: %s", nr_strerror(rc));
        return -1;
    }
    s->n_out_ifaces++;
    return id;
}

/* Gives the interfaces of hd (a header, or a `more` that continues the ones src has) output
 * ids. With `resumed`, hd replaces src's interfaces: one of the same identity keeps its id. */
int hub_snap_file_ifaces(struct hub_snap *s, struct hub_src *src,
                         const Netreel__V1__WindowHeader *hd, bool resumed, char *err,
                         size_t errlen)
{
    size_t first = resumed ? 0 : src->n_ids, n = first + hd->n_interfaces;
    uint32_t *ids = calloc(n + 1, sizeof(*ids));
    uint64_t *keys = calloc(n + 1, sizeof(*keys));

    if (!ids || !keys) {
        free(ids);
        free(keys);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (first) {
        memcpy(ids, src->ids, first * sizeof(*ids));
        memcpy(keys, src->iface_keys, first * sizeof(*keys));
    }
    for (size_t k = 0; k < hd->n_interfaces; k++) {
        const Netreel__V1__Interface *in = hd->interfaces[k];
        size_t j = 0;
        int64_t id = -1;
        keys[first + k] = iface_key(hd, in);
        for (j = 0; resumed && j < src->n_ids && src->iface_keys[j] != keys[first + k]; j++)
            ;
        if (resumed && j < src->n_ids)
            id = src->ids[j];
        else
            id = new_iface(s, src, hd, in, err, errlen);
        if (id < 0) {
            free(ids);
            free(keys);
            return s->pcap ? NR_EPARSE : -ENOMEM;
        }
        ids[first + k] = (uint32_t)id;
    }
    free(src->ids);
    free(src->iface_keys);
    src->ids = ids;
    src->iface_keys = keys;
    src->n_ids = n;
    src->n_ifaces = n;
    return 0;
}

static int head_pcapng(struct hub_snap *s, char *err, size_t errlen)
{
    char comment[2048], from[40], to[40];
    size_t o;
    int rc;

    if (s->since > 0)
        nr_format_time(s->since, 9, from, sizeof(from));
    else
        snprintf(from, sizeof(from), "the oldest retained");
    nr_format_time(s->until, 9, to, sizeof(to));
    o = (size_t)snprintf(comment, sizeof(comment),
                         s->follow ? "netreel follow from %s, live from %s on; stores:"
                                   : "netreel snapshot %s .. %s; stores:",
                         from, to);
    for (size_t i = 0; i < s->n && o < sizeof(comment); i++) {
        const struct hub_src *src = &s->srcs[i];
        const char *node = hub_snap_src_node(src);
        o += (size_t)snprintf(comment + o, sizeof(comment) - o, " %s (%s)%s", node[0] ? node : "?",
                              src->addr, src->state == S_FAILED ? " missing" : "");
    }
    if (o < sizeof(comment))
        o += clock_comment(s, comment + o, sizeof(comment) - o);
    rc = pcapng_shb_append(&s->out, comment, NULL, NULL, "netreel-hub");
    s->idb_snaplen = window_snaplen(s);
    for (size_t i = 0; rc == 0 && i < s->n; i++)
        if (s->srcs[i].header)
            rc =
                hub_snap_file_ifaces(s, &s->srcs[i], s->srcs[i].header->header, false, err, errlen);
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
        snprintf(err, errlen, "cannot write the file's head: %s", nr_strerror(rc));
    return rc;
}

static int head_pcap(struct hub_snap *s, char *err, size_t errlen)
{
    int rc = 0;

    s->pcap_link_type = 0;
    for (size_t i = 0; rc == 0 && i < s->n; i++)
        if (s->srcs[i].header)
            rc =
                hub_snap_file_ifaces(s, &s->srcs[i], s->srcs[i].header->header, false, err, errlen);
    if (rc != 0)
        return rc;
    if (!s->pcap_link_type)
        s->pcap_link_type = 1;
    s->idb_snaplen = window_snaplen(s);
    return pcapng_pcap_header_append(&s->out, s->pcap_link_type, s->idb_snaplen);
}

int hub_snap_file_trailer(struct hub_snap *s)
{
    int rc = 0;

    for (size_t i = 0; !s->pcap && rc == 0 && i < s->n; i++) {
        const Netreel__V1__StoreSummary *sum =
            s->srcs[i].summary ? s->srcs[i].summary->summary : NULL;
        for (size_t k = 0; sum && rc == 0 && k < sum->n_interface_stats; k++) {
            const Netreel__V1__InterfaceStats *is = sum->interface_stats[k];
            struct pcapng_isb isb = {
                .ifid = is->interface_id < s->srcs[i].n_ids ? s->srcs[i].ids[is->interface_id] : 0,
                .ts_ns = is->end_ns > 0 ? is->end_ns : 0,
                .start_ns = is->start_ns > 0 ? is->start_ns : 0,
                .end_ns = is->end_ns > 0 ? is->end_ns : 0,
                .ifrecv = is->received,
                .ifdrop = is->dropped,
                .osdrop = is->capture_dropped,
            };
            if (is->interface_id < s->srcs[i].n_ids)
                rc = pcapng_isb_append(&s->out, &isb);
        }
    }
    return rc;
}

/* Keeps each line of a store's key log message (already validated) once: a capture that resent
 * a batch, or lines stored in two segments, give the same line twice. Past HUB_KEYLOG_MAX, or
 * without memory for the table, lines are dropped and counted. */
void hub_snap_keys_add(struct hub_snap *s, const uint8_t *p, size_t len)
{
    size_t off = 0, n;
    const uint8_t *line;

    if (!s->keys_seen)
        s->keys_seen = calloc(HUB_KEYLOG_SLOTS, sizeof(*s->keys_seen));
    while (pcapng_keylog_next(p, len, &off, &line, &n) == 1) {
        uint64_t h = nr_hash_bytes(line, n) | 1; /* 0 marks an empty slot */
        size_t slot;
        if (s->keys_seen && s->n_keys_seen >= HUB_KEYLOG_SLOTS / 2) {
            /* A follow takes lines for as long as it runs: the table forgets the old ones (a
             * line sent again much later is written twice, which Wireshark does not mind). */
            memset(s->keys_seen, 0, HUB_KEYLOG_SLOTS * sizeof(*s->keys_seen));
            s->n_keys_seen = 0;
        }
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
        s->n_keys_seen++;
    }
}

/* Writes the next DSB of the stores' key log lines (at most PCAPNG_DSB_MAX_SECRETS of whole
 * lines) into the file. Returns 0 or a negative errno. */
int hub_snap_file_keys(struct hub_snap *s)
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

int hub_snap_file_head(struct hub_snap *s, char *err, size_t errlen)
{
    return s->pcap ? head_pcap(s, err, errlen) : head_pcapng(s, err, errlen);
}
