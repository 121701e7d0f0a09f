/* Pod targeting glued to the capture (see targeting.h). */
#include "capture/targeting.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "capture/filter.h"
#include "capture/ifaces.h"
#include "capture/pipeline.h"
#include "capture/tls/iface.h"
#include "kube/config.h"
#include "kube/filter.h"
#include "kube/watch.h"
#include "util/error.h"
#include "util/log.h"
#include "util/metrics.h"

static struct {
    struct kube_config cfg;
    struct kube_selector sel;
    struct kube_watch *watch;
    struct nr_buf text;
    uint64_t filter_errors;
    bool active;
    void (*close_cb)(void *arg);
    void *close_arg;
} t;

/* Reads a file the config names into a blob, so it need not be readable after the capture
 * gave up root. */
static int inline_file(char **path, struct kube_blob *blob, char *err, size_t errlen)
{
    struct stat sb;
    int fd, rc = 0;

    if (!*path)
        return 0;
    fd = open(*path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) != 0 || sb.st_size > KUBE_CONFIG_FILE_MAX) {
        snprintf(err, errlen, "cannot read %s: %s", *path,
                 fd < 0 || errno ? strerror(errno) : "too large");
        rc = -EINVAL;
        goto out;
    }
    free(blob->data);
    blob->len = (size_t)sb.st_size;
    blob->data = malloc(blob->len + 1);
    if (!blob->data || read(fd, blob->data, blob->len) != (ssize_t)blob->len) {
        snprintf(err, errlen, "cannot read %s", *path);
        rc = -EIO;
        goto out;
    }
    free(*path);
    *path = NULL;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

static void on_change(const struct kube_target_set *set, void *arg)
{
    struct capture *cap = arg;
    struct capture_pod *pods = calloc(set->n + 1, sizeof(*pods));
    char err[512];
    bool everything = false;
    int rc;

    if (!pods) {
        NR_ERROR("out of memory for the pod set; the last filter stays", "pods=%zu", set->n);
        return;
    }
    rc = kube_filter_build(set, &t.text);
    if (rc == NR_EOVERSIZE) {
        /* Too many addresses for one filter: record the whole node rather than miss pods. */
        NR_WARN("more targeted addresses than a filter can hold; recording everything",
                "addresses=%zu max=%d", set->n, KUBE_FILTER_HOSTS_MAX);
        rc = capture_filter_apply(cap, NULL, err, sizeof(err));
        everything = true;
    } else if (rc == 0) {
        /* A change of what the pods are (labels) and not of their addresses keeps the filter. */
        const char *now = cap->filter_wanted ? cap->filter_wanted : cap->filter_base;
        if (!now || strcmp(now, (const char *)t.text.data) != 0)
            rc = capture_filter_apply(cap, (const char *)t.text.data, err, sizeof(err));
    } else {
        snprintf(err, sizeof(err), "%s", nr_strerror(rc));
    }
    if (rc != 0) {
        t.filter_errors++;
        NR_ERROR("the targeted pods' filter cannot be applied; the last filter stays",
                 "pods=%zu err=\"%s\"", set->n, err);
        free(pods);
        return;
    }
    for (size_t i = 0; i < set->n; i++) {
        const struct kube_target_entry *e = &set->entries[i];
        pods[i].family = e->ip.family == AF_INET ? 4 : 6;
        memcpy(pods[i].ip, e->ip.addr, 16);
        snprintf(pods[i].name_space, sizeof(pods[i].name_space), "%s", e->namespace);
        snprintf(pods[i].name, sizeof(pods[i].name), "%s", e->name);
        snprintf(pods[i].uid, sizeof(pods[i].uid), "%s", e->uid);
        snprintf(pods[i].labels, sizeof(pods[i].labels), "%s", e->labels);
    }
    /* The set before is still waiting for a batch to carry it: it goes now, in one of its own,
     * so that the store's pod history has every set, each from when it held. */
    if (cap->pods_dirty)
        capture_pipeline_heartbeat(cap);
    /* The TLS probes follow the same pods (their network namespaces). */
    capture_tls_iface_target(cap->tls, everything ? NULL : set);
    capture_ifaces_pods_leaving(cap, pods, set->n);
    free(cap->pods);
    cap->pods = pods;
    cap->n_pods = set->n;
    cap->pods_dirty = true;
    {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        cap->pods_since_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec +
                             cap->cfg.clock_skew_ns; /* as the packets' time stamps */
    }
    capture_ifaces_pods_changed(cap); /* their devices become interfaces named after them */
    NR_INFO("targeted pods changed", "addresses=%zu", set->n);
}

static void on_health(bool healthy, const char *error, void *arg)
{
    if (healthy)
        NR_INFO("Kubernetes API reachable again", "source=\"%s\"", t.cfg.source);
    else
        NR_WARN("Kubernetes API failing; the last filter stays", "source=\"%s\" err=\"%s\"",
                t.cfg.source, error ? error : "");
}

int capture_targeting_new(struct capture *cap, char *err, size_t errlen)
{
    const struct capture_config *c = &cap->cfg;
    struct kube_watch_options opt = {
        .node = c->node,
        .on_change = on_change,
        .on_health = on_health,
        .arg = cap,
    };
    int rc;

    if (!c->kube || c->bpf_override)
        return 0;
    kube_config_init(&t.cfg);
    nr_buf_init(&t.text, 1u << 20);
    rc = c->kubeconfig ? kube_config_load(&t.cfg, c->kubeconfig, NULL, 0, err, errlen)
                       : kube_config_in_cluster(&t.cfg, NULL, err, errlen);
    if (rc == 0)
        rc = inline_file(&t.cfg.ca_file, &t.cfg.ca_data, err, errlen);
    if (rc == 0)
        rc = inline_file(&t.cfg.cert_file, &t.cfg.cert_data, err, errlen);
    if (rc == 0)
        rc = inline_file(&t.cfg.key_file, &t.cfg.key_data, err, errlen);
    if (rc != 0)
        return rc;
    rc = kube_selector_init(&t.sel, c->pod_regex, c->namespaces, c->excluded_namespaces, err,
                            errlen);
    if (rc != 0)
        return rc;
    t.watch = kube_watch_new(cap->loop, &t.cfg, &t.sel, &opt, err, errlen);
    if (!t.watch)
        return -EINVAL;
    t.active = true;
    return 0;
}

int capture_targeting_start(struct capture *cap)
{
    if (!t.active)
        return 0;
    NR_INFO("pod targeting started", "source=\"%s\" node=%s", t.cfg.source, cap->cfg.node);
    return kube_watch_start(t.watch);
}

void capture_targeting_metrics(const struct capture *cap, struct nr_metrics *m)
{
    struct kube_watch_stats st;

    if (!t.active || !t.watch)
        return;
    kube_watch_get_stats(t.watch, &st);
    nr_metrics_family(m, "netreel_capture_kube_healthy", NR_METRICS_GAUGE,
                      "1 while the Kubernetes API answers the pod list and watch.");
    nr_metrics_u64(m, NULL, st.healthy ? 1 : 0);
    nr_metrics_family(m, "netreel_capture_kube_errors_total", NR_METRICS_COUNTER,
                      "Failed requests to the Kubernetes API (the last filter stays).");
    nr_metrics_u64(m, NULL, st.errors);
    nr_metrics_family(m, "netreel_capture_kube_relists_total", NR_METRICS_COUNTER,
                      "Pod lists after the first (410 Gone, failures).");
    nr_metrics_u64(m, NULL, st.relists);
    nr_metrics_family(m, "netreel_capture_kube_events_total", NR_METRICS_COUNTER,
                      "Watch events received.");
    nr_metrics_u64(m, NULL, st.events);
    nr_metrics_family(m, "netreel_capture_kube_last_success_timestamp_seconds", NR_METRICS_GAUGE,
                      "When the API last answered.");
    nr_metrics_double(m, NULL, (double)st.last_success_ns / 1e9);
    nr_metrics_family(m, "netreel_capture_targeted_addresses", NR_METRICS_GAUGE,
                      "Pod addresses the filter records.");
    nr_metrics_u64(m, NULL, st.addresses);
    nr_metrics_family(m, "netreel_capture_kube_filter_errors_total", NR_METRICS_COUNTER,
                      "Pod sets whose filter could not be applied (the last one stayed).");
    nr_metrics_u64(m, NULL, t.filter_errors);
}

static void watch_closed(void *arg)
{
    t.watch = NULL;
    kube_selector_free(&t.sel);
    kube_config_free(&t.cfg);
    nr_buf_free(&t.text);
    if (t.close_cb)
        t.close_cb(t.close_arg);
}

void capture_targeting_close(struct capture *cap, void (*cb)(void *arg), void *arg)
{
    if (!t.active) {
        cb(arg);
        return;
    }
    t.active = false;
    t.close_cb = cb;
    t.close_arg = arg;
    kube_watch_close(t.watch, watch_closed, NULL);
}
