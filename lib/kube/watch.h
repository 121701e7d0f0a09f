/* Pod targeting kept live from the Kubernetes API: list + watch the pods of one node over
 * libcurl (multi_socket, driven by a libuv loop: nothing blocks it), apply them to a
 * kube_target, and tell the owner each time the target set really changes. Failures keep the
 * last good set and retry with exponential backoff.
 *
 *     struct kube_watch *w = kube_watch_new(loop, &cfg, &sel, &opt, err, sizeof(err));
 *     kube_watch_start(w);               // opt.on_change(set, arg) from now on
 *     ...
 *     kube_watch_close(w, closed, arg);  // closed(arg) once every handle is gone
 */
#ifndef NR_KUBE_WATCH_H
#define NR_KUBE_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kube/config.h"
#include "kube/target.h"

#define KUBE_WATCH_LINE_MAX    (4u << 20)  /* a watch event longer than this is refused */
#define KUBE_WATCH_LIST_MAX    (64u << 20) /* a PodList body longer than this is refused */
#define KUBE_WATCH_TIMEOUT_NS  (INT64_C(300) * 1000000000) /* timeoutSeconds of a watch */
#define KUBE_WATCH_BACKOFF_MIN (INT64_C(1000000000))
#define KUBE_WATCH_BACKOFF_MAX (INT64_C(30) * 1000000000)

struct kube_watch;

struct kube_watch_options {
    const char *node;           /* required: spec.nodeName of the pods to watch (copied) */
    int64_t watch_timeout_ns;   /* 0: KUBE_WATCH_TIMEOUT_NS (rounded to seconds, >= 1 s) */
    size_t max_line;            /* 0: KUBE_WATCH_LINE_MAX */
    size_t max_list;            /* 0: KUBE_WATCH_LIST_MAX */
    int64_t backoff_min_ns;     /* 0: KUBE_WATCH_BACKOFF_MIN; doubled per failure ... */
    int64_t backoff_max_ns;     /* ... up to this (0: KUBE_WATCH_BACKOFF_MAX) */
    int64_t connect_timeout_ns; /* 0: 10 s */
    /* The target set changed (and once for the first list, even when empty). set is valid
     * during the call only. May call kube_watch_close. */
    void (*on_change)(const struct kube_target_set *set, void *arg);
    /* A failure streak began (healthy false, error: one line) or ended (healthy true, error
     * NULL). Not called for the first success. May be NULL; may call kube_watch_close. */
    void (*on_health)(bool healthy, const char *error, void *arg);
    void *arg;
};

/* Counters for /metrics: monotonic except healthy, last_success_ns and addresses. */
struct kube_watch_stats {
    uint64_t requests;       /* HTTP requests started (lists and watches) */
    uint64_t errors;         /* failures: transport, HTTP status, bad or oversized bytes */
    uint64_t relists;        /* lists after the first (410 Gone, lost events, failures) */
    uint64_t events;         /* watch events received (bookmarks included) */
    uint64_t unauthorized;   /* 401 answers (the token is read again and the request retried) */
    uint64_t skipped_pods;   /* list items that were not valid pods */
    uint64_t changes;        /* on_change calls */
    int64_t last_success_ns; /* CLOCK_REALTIME of the last good list, watch or event; 0: never */
    bool healthy;            /* the last request or stream succeeded */
    size_t addresses;        /* entries in the current target set */
};

/* A watch on loop, not started. cfg and sel are the caller's and must stay valid and unchanged
 * until the close callback. Initializes libcurl globally on first use (call it before other
 * threads exist). Returns NULL with a reason in err (bad options, -ENOMEM, libcurl failure). */
struct kube_watch *kube_watch_new(uv_loop_t *loop, const struct kube_config *cfg,
                                  const struct kube_selector *sel,
                                  const struct kube_watch_options *opt, char *err, size_t errlen);

/* Lists the node's pods, then watches them, forever (until close). Returns 0 or -EALREADY. */
int kube_watch_start(struct kube_watch *w);

/* The current counters. */
void kube_watch_get_stats(const struct kube_watch *w, struct kube_watch_stats *st);

/* Stops everything; no callback of opt is called after this returns. close_cb(arg) (may be
 * NULL) runs from the loop once every handle is closed, and w is freed then. Safe to call from
 * on_change / on_health. */
void kube_watch_close(struct kube_watch *w, void (*close_cb)(void *arg), void *arg);

#endif
