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
        const char *node = hub_snap_src_node(src);
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
        snprintf(err, errlen, "cannot write the file's head: %s", nr_strerror(rc));
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
    return pcapng_pcap_header_append(&s->out, s->pcap_link_type, window_snaplen(s));
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
