/* Validation of incoming PacketBatches (see batch.h). */
#include "store/batch.h"

#include "pcapng/keylog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/pbwire.h"

#define BLOCKS_FIELD 6 /* PacketBatch.blocks */

Netreel__V1__PacketBatch *store_batch_unpack(const uint8_t *msg, size_t len)
{
    struct nr_pb_field f;
    Netreel__V1__PacketBatch *b;
    uint8_t *rest;
    size_t end, rest_len;

    /* The usual way for anything but one non-empty blocks field (several: the last wins, which
     * protobuf-c knows how to do). */
    if (nr_pb_field_find(msg, len, BLOCKS_FIELD, &f) != 1 || f.len == 0)
        return netreel__v1__packet_batch__unpack(NULL, len, msg);
    end = f.value + f.len;
    rest_len = len - (end - f.start);
    rest = malloc(rest_len ? rest_len : 1);
    if (!rest)
        return NULL;
    memcpy(rest, msg, f.start);
    memcpy(rest + f.start, msg + end, len - end);
    b = netreel__v1__packet_batch__unpack(NULL, rest_len, rest);
    free(rest);
    if (b) {
        b->blocks.data = (uint8_t *)msg + f.value;
        b->blocks.len = f.len;
    }
    return b;
}

void store_batch_free(Netreel__V1__PacketBatch *b, const uint8_t *msg, size_t len)
{
    uintptr_t p, m = (uintptr_t)msg;

    if (!b)
        return;
    p = (uintptr_t)b->blocks.data;
    if (b->blocks.data && p >= m && p < m + len) { /* in msg: not protobuf-c's to free */
        b->blocks.data = NULL;
        b->blocks.len = 0;
    }
    netreel__v1__packet_batch__free_unpacked(b, NULL);
}

/* A name we put in files and logs: 1..max bytes, no control characters. */
static bool name_ok(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

int store_batch_check_id(const char *capture_id)
{
    size_t n = capture_id ? strlen(capture_id) : 0;

    if (n == 0 || n > STORE_INDEX_MAX_ID)
        return NR_EPARSE;
    for (size_t i = 0; i < n; i++)
        if (capture_id[i] <= 0x20 || capture_id[i] >= 0x7f)
            return NR_EPARSE;
    return 0;
}

static int check_interfaces(const struct store_stream *st, const Netreel__V1__PacketBatch *b,
                            struct store_iface *ifaces, uint32_t *n_ifaces, char *err,
                            size_t errlen)
{
    uint32_t known = st ? st->n_ifaces : 0, first;

    if (st)
        memcpy(ifaces, st->ifaces, known * sizeof(*ifaces));
    *n_ifaces = known;
    if (b->n_interfaces == 0)
        return 0;
    /* The list is ids first..first+n-1: the whole table (first 0) or what the store may not
     * have heard of yet on this call (first at most the ids it knows). */
    first = b->interfaces[0]->id;
    if (first > known)
        return nr_errf(-ESTALE, err, errlen,
                       "the interfaces start at id %u, but this stream knows ids 0..%u only: send "
                       "them from 0",
                       first, known ? known - 1 : 0);
    if (b->n_interfaces > STORE_MAX_INTERFACES - first)
        return nr_errf(NR_EPARSE, err, errlen, "interfaces up to id %zu: at most %u",
                       first + b->n_interfaces - 1, STORE_MAX_INTERFACES);
    for (size_t j = 0; j < b->n_interfaces; j++) {
        const Netreel__V1__Interface *in = b->interfaces[j];
        uint32_t i = first + (uint32_t)j;
        if (in->id != i)
            return nr_errf(NR_EPARSE, err, errlen,
                           "interface %zu of the list has id %u, not %u: ids must follow each "
                           "other",
                           j, in->id, i);
        if (!name_ok(in->name, STORE_MAX_IFNAME))
            return nr_errf(NR_EPARSE, err, errlen,
                           "interface %u: its name must be 1..%u bytes without control characters",
                           i, STORE_MAX_IFNAME);
        if (in->description && in->description[0] && !name_ok(in->description, STORE_MAX_IFDESC))
            return nr_errf(NR_EPARSE, err, errlen,
                           "interface %u: its description must be at most %u bytes without "
                           "control characters",
                           i, STORE_MAX_IFDESC);
        if (in->link_type > 0xffff)
            return nr_errf(NR_EPARSE, err, errlen,
                           "interface %u: link type %u does not fit 16 bits", i, in->link_type);
        if (in->snaplen == 0 || in->snaplen > PCAPNG_MAX_SNAPLEN)
            return nr_errf(NR_EPARSE, err, errlen, "interface %u: snaplen %u is not in 1..%u", i,
                           in->snaplen, PCAPNG_MAX_SNAPLEN);
        if (i < known) {
            const struct store_iface *k = &ifaces[i];
            if (strcmp(k->name, in->name) != 0 || k->link_type != in->link_type ||
                k->snaplen != in->snaplen)
                return nr_errf(NR_EPARSE, err, errlen,
                               "interface %u changed from %s (link type %u, snaplen %u) to %s "
                               "(link type %u, snaplen %u); a new interface needs a new id",
                               i, k->name, k->link_type, k->snaplen, in->name, in->link_type,
                               in->snaplen);
            continue;
        }
        snprintf(ifaces[i].name, sizeof(ifaces[i].name), "%s", in->name);
        ifaces[i].link_type = in->link_type;
        ifaces[i].snaplen = in->snaplen;
        /* Borrowed from the batch: the caller keeps a copy (store_batch_check's contract). */
        ifaces[i].desc = in->description && in->description[0] ? in->description : NULL;
    }
    if (first + b->n_interfaces > known)
        *n_ifaces = first + (uint32_t)b->n_interfaces;
    return 0;
}

static int check_pods(const Netreel__V1__PacketBatch *b, char *err, size_t errlen)
{
    if (!b->pods_update) {
        if (b->n_pods)
            return nr_errf(NR_EPARSE, err, errlen, "pods are sent without pods_update");
        return 0;
    }
    if (b->n_pods > STORE_MAX_PODS)
        return nr_errf(NR_EPARSE, err, errlen, "%zu pods: at most %u", b->n_pods, STORE_MAX_PODS);
    for (size_t i = 0; i < b->n_pods; i++) {
        const Netreel__V1__PodName *p = b->pods[i];
        if (p->ip.len != 4 && p->ip.len != 16)
            return nr_errf(NR_EPARSE, err, errlen, "pod %zu: an address of %zu bytes (4 or 16)", i,
                           p->ip.len);
        if (!name_ok(p->namespace_, STORE_MAX_NAME) || !name_ok(p->name, STORE_MAX_NAME))
            return nr_errf(NR_EPARSE, err, errlen,
                           "pod %zu: namespace and name must be 1..%u bytes without control "
                           "characters",
                           i, STORE_MAX_NAME);
        if ((p->uid && p->uid[0] && !name_ok(p->uid, STORE_MAX_UID)) ||
            (p->labels && p->labels[0] && !name_ok(p->labels, STORE_MAX_LABELS)))
            return nr_errf(NR_EPARSE, err, errlen,
                           "pod %zu: uid and labels must be at most %u and %u bytes without "
                           "control characters",
                           i, STORE_MAX_UID, STORE_MAX_LABELS);
    }
    return 0;
}

int store_batch_check(const struct store_config *cfg, const struct store_stream *st,
                      const Netreel__V1__PacketBatch *b, int64_t now_ns, struct store_iface *ifaces,
                      uint32_t *n_ifaces, struct pcapng_batch_info *info, char *err, size_t errlen)
{
    uint32_t snaplens[STORE_MAX_INTERFACES];
    struct pcapng_batch_rules rules = {0};
    int rc;

    if (store_batch_check_id(b->capture_id) != 0)
        return nr_errf(NR_EPARSE, err, errlen,
                       "capture_id must be 1..%u printable ASCII bytes without spaces",
                       STORE_INDEX_MAX_ID);
    if (b->node && b->node[0] && !name_ok(b->node, STORE_MAX_NAME))
        return nr_errf(NR_EPARSE, err, errlen,
                       "node must be 1..%u bytes without control characters", STORE_MAX_NAME);
    rc = check_interfaces(st, b, ifaces, n_ifaces, err, errlen);
    if (rc == 0)
        rc = check_pods(b, err, errlen);
    if (rc != 0)
        return rc;
    if (b->blocks.len > 0 && *n_ifaces == 0)
        return nr_errf(NR_EPARSE, err, errlen, "packets before any interface was described");
    for (uint32_t i = 0; i < *n_ifaces; i++)
        snaplens[i] = ifaces[i].snaplen;
    rules.snaplens = snaplens;
    rules.n_interfaces = *n_ifaces;
    rules.min_ts_ns = now_ns - cfg->max_past_ns;
    rules.max_ts_ns = now_ns + cfg->max_future_ns;
    rules.sorted = true;
    rc = pcapng_batch_validate(b->blocks.data, b->blocks.len, &rules, info, err, errlen);
    if (rc != 0)
        return rc;
    if (info->packets != b->packet_count)
        return nr_errf(NR_EPARSE, err, errlen, "packet_count says %u, the blocks hold %u",
                       b->packet_count, info->packets);
    if (info->packets > 0 &&
        (info->first_ts_ns != b->first_ts_ns || info->last_ts_ns != b->last_ts_ns))
        return nr_errf(NR_EPARSE, err, errlen,
                       "first_ts_ns/last_ts_ns say %lld..%lld, the blocks hold %lld..%lld",
                       (long long)b->first_ts_ns, (long long)b->last_ts_ns,
                       (long long)info->first_ts_ns, (long long)info->last_ts_ns);
    if (pcapng_keylog_validate(b->tls_keylog.data, b->tls_keylog.len, NULL, err, errlen) != 0) {
        char why[256];
        snprintf(why, sizeof(why), "tls_keylog: %s", err);
        return nr_errf(NR_EPARSE, err, errlen, "%s", why);
    }
    return 0;
}

struct store_pods *store_batch_pods(const Netreel__V1__PacketBatch *b)
{
    struct store_pods *p = store_pods_new(b->n_pods);

    if (!p)
        return NULL;
    for (size_t i = 0; i < b->n_pods; i++) {
        const Netreel__V1__PodName *in = b->pods[i];
        struct store_pod *out = &p->pods[i];
        out->family = in->ip.len == 4 ? 4 : 6;
        memcpy(out->ip, in->ip.data, in->ip.len);
        if (store_pod_set(out, in->namespace_, in->name, in->uid, in->labels) != 0) {
            store_pods_unref(p);
            return NULL;
        }
        p->n = i + 1;
    }
    return p;
}
