/* A snapshot's pod selection (see select.h). */
#include "store/select.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/selector.h"
#include "kube/target.h"
#include "pcapng/sighting.h"
#include "util/error.h"

/* An address of a matching pod. */
struct addr {
    uint8_t family;
    uint8_t ip[16];
};

/* One pod set of a stream's history, and the addresses of its matching pods (made when the set
 * is first needed). */
struct set {
    struct store_pods *pods; /* held */
    struct addr *match;
    size_t n_match;
    bool done;
};

struct stream_sets {
    struct set *v;
    size_t n, cap;
    size_t cur; /* the set of the stream's last packet */
};

struct store_select {
    struct kube_selector who; /* namespaces and the name regex */
    struct kube_label_selector labels;
    struct stream_sets *streams;
    size_t n_streams;
    uint8_t *iface; /* per output interface: 0 unknown, 1 a matching pod's device, 2 not */
    uint32_t *link;
    size_t n_ifaces;
    size_t limited; /* names the regex stopped at its limit on (they matched), per pod set */
};

int store_select_new(const Netreel__V1__SnapshotRequest *req, struct store_select **out, char *err,
                     size_t errlen)
{
    struct store_select *sel;
    char *csv = NULL, why[400];
    size_t len = 1;
    int rc;

    *out = NULL;
    if (!req->n_namespaces && (!req->pod_regex || !req->pod_regex[0]) &&
        (!req->label_selector || !req->label_selector[0]))
        return 0;
    if (req->n_namespaces > 256)
        return nr_errf(NR_EPARSE, err, errlen, "pod selection: %zu namespaces, at most 256",
                       req->n_namespaces);
    for (size_t i = 0; i < req->n_namespaces; i++) {
        if (strchr(req->namespaces[i], ','))
            return nr_errf(NR_EPARSE, err, errlen,
                           "pod selection: namespace \"%.64s\" is not "
                           "a DNS label",
                           req->namespaces[i]);
        len += strlen(req->namespaces[i]) + 1;
    }
    sel = calloc(1, sizeof(*sel));
    csv = calloc(1, len);
    if (!sel || !csv) {
        free(sel);
        free(csv);
        return -ENOMEM;
    }
    for (size_t i = 0; i < req->n_namespaces; i++) {
        strcat(csv, req->namespaces[i]);
        if (i + 1 < req->n_namespaces)
            strcat(csv, ",");
    }
    rc = kube_selector_init(&sel->who, req->pod_regex, csv, NULL, why, sizeof(why));
    free(csv);
    if (rc != 0) {
        free(sel);
        return rc == -ENOMEM ? rc : nr_errf(NR_EPARSE, err, errlen, "pod selection: %s", why);
    }
    if (req->label_selector &&
        kube_label_selector_parse(req->label_selector, &sel->labels, why, sizeof(why)) != 0) {
        store_select_free(sel);
        return nr_errf(NR_EPARSE, err, errlen, "%s", why);
    }
    *out = sel;
    return 0;
}

void store_select_free(struct store_select *sel)
{
    if (!sel)
        return;
    kube_selector_free(&sel->who);
    for (size_t i = 0; i < sel->n_streams; i++) {
        for (size_t k = 0; k < sel->streams[i].n; k++) {
            free(sel->streams[i].v[k].match);
            store_pods_unref(sel->streams[i].v[k].pods);
        }
        free(sel->streams[i].v);
    }
    free(sel->streams);
    free(sel->iface);
    free(sel->link);
    free(sel);
}

/* Whether a pod of namespace ns, name and labels is one the selection asks for. A name on
 * which the regex stops at its limit matches (kube_selector_match) and is counted. */
static bool pod_matches(struct store_select *sel, const char *ns, size_t ns_len, const char *name,
                        const char *labels)
{
    struct kube_pod pod = {.n_ips = 1};
    bool limited = false, match;

    if (ns_len == 0 || ns_len >= sizeof(pod.namespace) || strlen(name) >= sizeof(pod.name))
        return false;
    memcpy(pod.namespace, ns, ns_len);
    memcpy(pod.name, name, strlen(name));
    match = kube_selector_match(&sel->who, &pod, &limited) &&
            kube_label_selector_match(&sel->labels, labels);
    sel->limited += limited;
    return match;
}

int store_select_add_segment(struct store_select *sel, uint32_t stream,
                             const struct store_segment *seg, size_t from)
{
    struct stream_sets *ss;

    if (stream >= sel->n_streams) {
        struct stream_sets *v = realloc(sel->streams, (stream + 1) * sizeof(*v));
        if (!v)
            return -ENOMEM;
        memset(v + sel->n_streams, 0, (stream + 1 - sel->n_streams) * sizeof(*v));
        sel->streams = v;
        sel->n_streams = stream + 1;
    }
    ss = &sel->streams[stream];
    for (size_t i = from; i < seg->n_pod_sets; i++) {
        if (ss->n && ss->v[ss->n - 1].pods == seg->pod_sets[i])
            continue; /* the same set, carried into the next segment */
        if (ss->n == ss->cap) {
            size_t cap = ss->cap ? ss->cap * 2 : 8;
            struct set *v = realloc(ss->v, cap * sizeof(*v));
            if (!v)
                return -ENOMEM;
            ss->v = v;
            ss->cap = cap;
        }
        store_pods_ref(seg->pod_sets[i]); /* a follow outlives the segment's deletion */
        ss->v[ss->n++] = (struct set){.pods = seg->pod_sets[i]};
    }
    return 0;
}

int store_select_iface(struct store_select *sel, uint32_t out_id, uint32_t link_type,
                       const char *desc)
{
    const char *ns, *name, *labels, *end;
    char nsb[64], nameb[254], labelsb[STORE_MAX_LABELS + 1];

    if (out_id >= sel->n_ifaces) {
        size_t n = out_id + 1;
        uint8_t *f = realloc(sel->iface, n);
        uint32_t *l = f ? realloc(sel->link, n * sizeof(*l)) : NULL;
        if (f)
            sel->iface = f;
        if (!f || !l)
            return -ENOMEM;
        sel->link = l;
        memset(sel->iface + sel->n_ifaces, 0, n - sel->n_ifaces);
        sel->n_ifaces = n;
    }
    sel->link[out_id] = link_type;
    sel->iface[out_id] = 2;
    /* "k8s.node=N;k8s.namespace=NS;k8s.podName=P;k8s.podUID=U;k8s.podLabels=L;..." */
    if (!desc || !strstr(desc, "netreel.role=pod") || !(ns = strstr(desc, "k8s.namespace=")) ||
        !(name = strstr(desc, "k8s.podName=")) || !(labels = strstr(desc, "k8s.podLabels=")))
        return 0;
    ns += 14;
    name += 12;
    labels += 14;
    end = strchr(ns, ';');
    snprintf(nsb, sizeof(nsb), "%.*s", end ? (int)(end - ns) : (int)strlen(ns), ns);
    end = strchr(name, ';');
    snprintf(nameb, sizeof(nameb), "%.*s", end ? (int)(end - name) : (int)strlen(name), name);
    end = strchr(labels, ';');
    snprintf(labelsb, sizeof(labelsb), "%.*s", end ? (int)(end - labels) : (int)strlen(labels),
             labels);
    if (pod_matches(sel, nsb, strlen(nsb), nameb, labelsb))
        sel->iface[out_id] = 1;
    return 0;
}

static int by_addr(const void *a, const void *b)
{
    const struct addr *x = a, *y = b;

    return x->family != y->family ? x->family - y->family : memcmp(x->ip, y->ip, 16);
}

/* The addresses of the set's matching pods, sorted. */
static void match_set(struct store_select *sel, struct set *s)
{
    s->done = true;
    s->match = calloc(s->pods->n + 1, sizeof(*s->match));
    if (!s->match) /* out of memory: nothing of this set matches, nothing crashes */
        return;
    for (size_t i = 0; i < s->pods->n; i++) {
        const struct store_pod *p = &s->pods->pods[i];
        const char *slash = p->name ? strchr(p->name, '/') : NULL;
        if (slash && pod_matches(sel, p->name, (size_t)(slash - p->name), slash + 1, p->labels)) {
            s->match[s->n_match].family = p->family;
            memcpy(s->match[s->n_match].ip, p->ip, 16);
            s->n_match++;
        }
    }
    qsort(s->match, s->n_match, sizeof(*s->match), by_addr);
}

static bool is_match(const struct set *s, uint8_t family, const uint8_t *ip)
{
    struct addr k = {.family = family};

    memcpy(k.ip, ip, family == 4 ? 4 : 16);
    return s->n_match && bsearch(&k, s->match, s->n_match, sizeof(k), by_addr) != NULL;
}

bool store_select_passes(struct store_select *sel, uint32_t stream, uint32_t out_id,
                         const struct pcapng_epb *epb)
{
    struct stream_sets *ss = stream < sel->n_streams ? &sel->streams[stream] : NULL;
    uint8_t family, src[16] = {0}, dst[16] = {0};
    struct set *s;

    if (out_id < sel->n_ifaces && sel->iface[out_id] == 1)
        return true; /* on a matching pod's own device */
    if (!ss || !ss->n || out_id >= sel->n_ifaces ||
        !pcapng_packet_addrs((uint16_t)sel->link[out_id], epb->data, epb->caplen, &family, src,
                             dst))
        return false;
    while (ss->cur + 1 < ss->n && ss->v[ss->cur + 1].pods->since_ns <= epb->ts_ns)
        ss->cur++;
    s = &ss->v[ss->cur];
    if (s->pods->since_ns > epb->ts_ns)
        return false; /* before the first set known: no pod was known then */
    if (!s->done)
        match_set(sel, s);
    return is_match(s, family, src) || is_match(s, family, dst);
}

size_t store_select_limited(const struct store_select *sel)
{
    return sel ? sel->limited : 0;
}
