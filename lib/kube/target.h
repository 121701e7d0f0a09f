/* Pod targeting: which pods of the node to record (name regex, namespaces, excluded namespaces;
 * never hostNetwork, finished or address-less pods), kept current from a list and watch
 * events, and the resulting sorted set of {address, namespace, name}. Pure: no I/O. */
#ifndef NR_KUBE_TARGET_H
#define NR_KUBE_TARGET_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include "kube/pod.h"

/* More targeted pods than this (on one node; Kubernetes' default is 110) is refused. */
#define KUBE_TARGET_PODS_MAX 65536

struct kube_selector {
    regex_t re; /* --pod-regex: POSIX ERE, unanchored (a substring search, like Kubeshark's) */
    bool have_re;
    char **namespaces; /* --namespaces: only these (none: all) */
    size_t n_namespaces;
    char **excluded; /* --excluded-namespaces: never these */
    size_t n_excluded;
};

/* Compiles the selector. pod_regex NULL or "" matches every name; namespaces and excluded are
 * comma-separated lists (NULL or "" for none; spaces around names and empty items ignored).
 * Returns 0, -EINVAL with the regcomp message or the bad name in err, or -ENOMEM. On failure
 * s needs no kube_selector_free. */
int kube_selector_init(struct kube_selector *s, const char *pod_regex, const char *namespaces,
                       const char *excluded, char *err, size_t errlen);
void kube_selector_free(struct kube_selector *s);

/* Whether a pod is targeted: its namespace allowed and not excluded, its name matching, not
 * hostNetwork, not finished, with at least one address. */
bool kube_selector_match(const struct kube_selector *s, const struct kube_pod *pod);

/* One address of a targeted pod. */
struct kube_target_entry {
    struct kube_ip ip;
    char namespace[KUBE_NAMESPACE_MAX + 1];
    char name[KUBE_NAME_MAX + 1];
    char uid[KUBE_UID_MAX + 1];
    char labels[KUBE_LABELS_MAX + 1]; /* "k=v,k=v" (kube_pod's) */
};

/* Sorted by address, then namespace, then name; an address may appear twice when two pods
 * claim it (briefly, while one replaces another). */
struct kube_target_set {
    struct kube_target_entry *entries;
    size_t n;
};

/* The targeted pods (a copy of each) and the set last computed from them. The selector is
 * the caller's and must outlive the target. */
struct kube_target {
    const struct kube_selector *sel;
    struct kube_pod *pods; /* targeted pods, unordered */
    size_t n_pods, cap_pods;
    struct kube_target_set set; /* what kube_target_commit last produced */
    bool committed;             /* set has been produced at least once */
};

void kube_target_init(struct kube_target *t, const struct kube_selector *sel);
void kube_target_free(struct kube_target *t);

/* Forgets every pod (the start of a relist); the last committed set stays. */
void kube_target_clear(struct kube_target *t);

/* Applies one pod as the API reports it: ADDED or MODIFIED keeps it when the selector
 * matches and drops it otherwise (a pod that finished or lost its address); DELETED drops it.
 * Pods are known by namespace/name. Other event types do nothing. Returns 0, -ENOMEM, or
 * NR_EOVERSIZE past KUBE_TARGET_PODS_MAX. */
int kube_target_apply(struct kube_target *t, enum kube_event_type type, const struct kube_pod *pod);

/* Recomputes the set from the pods. Returns 1 when it differs from the last committed set (or
 * is the first one), 0 when it is the same, -ENOMEM (the old set kept). t->set is then
 * current. */
int kube_target_commit(struct kube_target *t);

#endif
