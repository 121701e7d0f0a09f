/* Pod targeting: which pods of the node to record (name regex, namespaces, excluded namespaces;
 * never hostNetwork, finished or address-less pods), kept current from a list and watch
 * events, and the resulting sorted set of {address, namespace, name}. Pure: no I/O. */
#ifndef NR_KUBE_TARGET_H
#define NR_KUBE_TARGET_H

#include <stdbool.h>
#include <stddef.h>

#include "kube/pod.h"

/* More targeted pods than this (on one node; Kubernetes' default is 110) is refused. */
#define KUBE_TARGET_PODS_MAX 65536

/* The bounds of a pod-name regex (PCRE2's interpreter, no JIT). Every node's capture compiles
 * it, and matches it against names that anyone who may create a pod chooses. Compiling is
 * bounded by the length (16 KiB, what the hub takes in a request's pod_regex), the nesting of
 * parentheses (PCRE2's default, set explicitly) and PCRE2's 64 KiB of compiled code; matching
 * by the match limit (about 1 ms of work) and the heap limit (1 MiB of backtracking frames). */
#define KUBE_REGEX_MAX         16384  /* bytes of pattern */
#define KUBE_REGEX_NEST_MAX    250    /* nested parentheses */
#define KUBE_REGEX_MATCH_LIMIT 100000 /* pcre2_set_match_limit */
#define KUBE_REGEX_HEAP_KIB    1024   /* pcre2_set_heap_limit, in KiB */

/* A compiled pod-name regex (target.c). */
struct kube_regex;

struct kube_selector {
    /* --pod-regex: PCRE2 (Perl/RE2 syntax), unanchored (a substring search, like Kubeshark's);
     * NULL: every name */
    struct kube_regex *re;
    char **namespaces; /* --namespaces: only these (none: all) */
    size_t n_namespaces;
    char **excluded; /* --excluded-namespaces: never these */
    size_t n_excluded;
};

/* Checks a pod-name regex as kube_selector_init compiles it (for `netreel tap`, before anything
 * is installed). Returns 0, -EINVAL with why in err: PCRE2's message and the offset where it
 * stopped ("missing closing parenthesis at offset 4"), the length past KUBE_REGEX_MAX, or GNU's
 * \< or \> (PCRE2 would read them as the characters < and >, which no pod name holds: use \b);
 * or -ENOMEM. The message does not repeat the pattern. */
int kube_regex_check(const char *pattern, char *err, size_t errlen);

/* Compiles the selector. pod_regex NULL or "" matches every name; namespaces and excluded are
 * comma-separated lists (NULL or "" for none; spaces around names and empty items ignored).
 * Returns 0, -EINVAL with the bad name or the bad regex in err ('invalid --pod-regex "PATTERN": '
 * and what kube_regex_check says), or -ENOMEM. On failure s needs no kube_selector_free. */
int kube_selector_init(struct kube_selector *s, const char *pod_regex, const char *namespaces,
                       const char *excluded, char *err, size_t errlen);
void kube_selector_free(struct kube_selector *s);

/* Whether a pod is targeted: its namespace allowed and not excluded, its name matching, not
 * hostNetwork, not finished, with at least one address. A name on which the regex stops at a
 * limit (KUBE_REGEX_MATCH_LIMIT, KUBE_REGEX_HEAP_KIB, or a lower one the pattern sets) counts
 * as matching, so that no pod escapes a recording through its name; *limited (may be NULL) is
 * then set true, and left alone otherwise. Matches use the selector's match data: one thread
 * at a time per selector. */
bool kube_selector_match(const struct kube_selector *s, const struct kube_pod *pod, bool *limited);

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

/* What kube_target_apply returns when a pod joined the target only because the regex stopped
 * at its limit on the pod's name (kube_selector_match): the caller logs it. Once per pod: not
 * for the pod's later events, nor when a relist finds it again while it is in the last
 * committed set. */
#define KUBE_TARGET_LIMITED 1

/* Applies one pod as the API reports it: ADDED or MODIFIED keeps it when the selector
 * matches and drops it otherwise (a pod that finished or lost its address); DELETED drops it.
 * Pods are known by namespace/name. Other event types do nothing. Returns 0,
 * KUBE_TARGET_LIMITED (the pod is kept), -ENOMEM, or NR_EOVERSIZE past KUBE_TARGET_PODS_MAX. */
int kube_target_apply(struct kube_target *t, enum kube_event_type type, const struct kube_pod *pod);

/* Recomputes the set from the pods. Returns 1 when it differs from the last committed set (or
 * is the first one), 0 when it is the same, -ENOMEM (the old set kept). t->set is then
 * current. */
int kube_target_commit(struct kube_target *t);

#endif
